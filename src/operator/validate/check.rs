//! The check framework: which check a line is ([`CheckId`], what code compares), its verdict,
//! its line as `validate` prints it, and the report that ends a run (the count per verdict;
//! exit 1 naming the failed checks).

use crate::config::Config;
use crate::error::{failed, Result};

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Worth knowing, not a failure.
    Warn,
    Fail,
    /// Not checked (what it needs is missing or failed).
    Skip,
}

/// Which check a line is; its name is what the line shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckId {
    Config,
    /// The nginx checks as a group (all skipped, or what the host checks hold).
    Nginx,
    NginxRunning,
    NginxDump,
    NginxIncludes,
    NginxUsesVar,
    NginxUpstream,
    NginxDefaultServer,
    Include,
    NginxServesLive,
    NginxFrontPort,
    NginxKeepalive,
    Nftables,
    /// The checks that need the target host, skipped elsewhere.
    HostChecks,
    Appspec,
    Hooks,
    /// The timeout of the hook that runs this binary (a file name, nonstop's or not).
    Timeout(String),
    WriteAccess,
    Supervisor,
    Java,
    Jar,
    HealthPath,
    /// `app.cds`: whether the jar can be extracted for a class-data archive.
    Cds,
}

impl CheckId {
    /// The name on the check's line.
    pub fn name(&self) -> std::borrow::Cow<'static, str> {
        use CheckId::*;
        match self {
            Config => "config",
            Nginx => "nginx",
            NginxRunning => "nginx running",
            NginxDump => "nginx -T",
            NginxIncludes => "nginx includes",
            NginxUsesVar => "nginx uses var",
            NginxUpstream => "nginx upstream",
            NginxDefaultServer => "nginx default server",
            Include => "include",
            NginxServesLive => "nginx serves live",
            NginxFrontPort => "nginx front port",
            NginxKeepalive => "nginx keepalive",
            Nftables => "nftables",
            HostChecks => "host checks",
            Appspec => "appspec",
            Hooks => "hooks",
            Timeout(binary) => return format!("timeout {binary}").into(),
            WriteAccess => "write access",
            Supervisor => "supervisor",
            Java => "java",
            Jar => "jar",
            HealthPath => "health path",
            Cds => "app.cds",
        }
        .into()
    }
}

impl std::fmt::Display for CheckId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(&self.name())
    }
}

/// One check's line.
#[derive(Debug, Clone)]
pub struct Check {
    pub verdict: Verdict,
    pub id: CheckId,
    pub detail: String,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = match self.verdict {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "skip",
        };
        write!(f, "{v:<5} {:<21} {}", self.id, self.detail)
    }
}

pub fn check(verdict: Verdict, id: CheckId, detail: impl Into<String>) -> Check {
    Check {
        verdict,
        id,
        detail: detail.into(),
    }
}

/// The run's last line: how many checks had each verdict; `Err` (exit 1) naming the failed
/// ones when any failed.
pub fn report(all: &[Check]) -> Result<()> {
    let failed_names: Vec<String> = all
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .map(|c| c.id.to_string())
        .collect();
    let ok = all.iter().filter(|c| c.verdict == Verdict::Ok).count();
    crate::outln!(
        "{} checks: {ok} ok, {} failed, {} warnings, {} skipped",
        all.len(),
        failed_names.len(),
        all.iter().filter(|c| c.verdict == Verdict::Warn).count(),
        all.iter().filter(|c| c.verdict == Verdict::Skip).count()
    );
    if failed_names.is_empty() {
        Ok(())
    } else {
        Err(failed(format!(
            "{} of {} checks failed: {}",
            failed_names.len(),
            all.len(),
            failed_names.join(", ")
        )))
    }
}

/// The config check's line: the file, the app, its slots.
pub(super) fn describe(cfg: &Config) -> String {
    let slots: Vec<String> = cfg
        .slots
        .iter()
        .map(|s| format!("{} {}", s.name, s.port))
        .collect();
    format!(
        "{}: app {}, {} slots ({}){}",
        cfg.path.display(),
        cfg.app.name,
        cfg.slots.len(),
        slots.join(", "),
        if cfg.balanced() { ", balanced" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_shows_the_checks_name_padded() {
        let c = check(Verdict::Fail, CheckId::Timeout("stop".into()), "why");
        assert_eq!(c.to_string(), format!("FAIL  {:<21} why", "timeout stop"));
        assert_eq!(
            check(Verdict::Ok, CheckId::NginxDump, "x").to_string(),
            "ok    nginx -T              x"
        );
        assert_eq!(CheckId::HostChecks.name(), "host checks");
    }
}

//! The hooks of an appspec: they run the stage binaries in a working order, from files in the
//! bundle, and each hook's timeout covers what its binary may wait plus a margin.

use super::appspec::{Hook, EVENTS, MAX_TIMEOUT};
use super::check::{check, Check, CheckId, Verdict};
use crate::config::Config;
use crate::stage_table::{self, secs, Stage};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// Events whose scripts come from the last successful revision, not the one being deployed.
const PREVIOUS_REVISION: [&str; 3] = ["BeforeBlockTraffic", "AfterBlockTraffic", "ApplicationStop"];

/// What a hook binary may wait at most, as (duration, explanation), or `None` for a script
/// nonstop does not know: [`Stage::max_wait`] of the stage it runs.
pub fn max_wait(cfg: &Config, binary: &str) -> Option<(Duration, String)> {
    Stage::of_name(binary).map(|s| s.max_wait(cfg))
}

/// The margin a timeout must leave above the wait: 10 %, at least 10 s.
pub fn margin(wait: Duration) -> Duration {
    (wait / 10).max(Duration::from_secs(10))
}

/// The binary a hook runs: the file name of its location.
pub(super) fn binary_of(h: &Hook) -> String {
    Path::new(&h.location)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(super) fn hook_checks(
    cfg: &Config,
    bundle: &Path,
    hooks: &[Hook],
    project: bool,
) -> Vec<Check> {
    let mut out = vec![];
    // Order and presence.
    let mut problems = vec![];
    let position = |b: &str| {
        hooks
            .iter()
            .enumerate()
            .find(|(_, h)| binary_of(h) == b)
            .map(|(i, h)| {
                (
                    EVENTS
                        .iter()
                        .position(|e| *e == h.event)
                        .unwrap_or(usize::MAX),
                    i,
                )
            })
    };
    let mut last: Option<(&str, (usize, usize))> = None;
    for row in stage_table::STAGES {
        let b = row.name;
        let p = position(b);
        match p {
            None if row.balanced_only => {
                if cfg.balanced() {
                    problems.push(format!("balanced mode but no hook runs bin/{b}: the other slots keep the old release"));
                }
                continue;
            }
            None => {
                problems.push(format!("no hook runs bin/{b}"));
                continue;
            }
            Some(p) => {
                if let Some((prev, lp)) = last {
                    if p < lp {
                        problems.push(format!("bin/{b} runs before bin/{prev}"));
                    }
                }
                last = Some((b, p));
            }
        }
    }
    for h in hooks {
        if PREVIOUS_REVISION.contains(&h.event.as_str()) && Stage::of_name(&binary_of(h)).is_some()
        {
            problems.push(format!(
                "{} runs in {}, which runs the previous revision's scripts (and nothing on a first deployment): use AfterInstall",
                h.location, h.event
            ));
        }
        let file = bundle.join(h.location.trim_start_matches('/'));
        let bundled = project
            && h.location
                .trim_start_matches('/')
                .strip_prefix("bin/")
                .is_some_and(|b| stage_table::BINARIES.contains(&b));
        if !file.is_file() && !bundled {
            problems.push(format!(
                "{} is not in the bundle ({})",
                h.location,
                file.display()
            ));
        }
    }
    let order: Vec<String> = hooks
        .iter()
        .map(|h| format!("{} {}", h.event, h.location))
        .collect();
    out.push(if problems.is_empty() {
        check(Verdict::Ok, CheckId::Hooks, order.join(", "))
    } else {
        check(Verdict::Fail, CheckId::Hooks, problems.join("; "))
    });
    // Timeouts.
    for h in hooks {
        let b = binary_of(h);
        let name = CheckId::Timeout(b.clone());
        let Some((wait, why)) = max_wait(cfg, &b) else {
            out.push(check(
                Verdict::Skip,
                name.clone(),
                format!(
                    "{} {}: not a nonstop binary; its wait is unknown",
                    h.event, h.location
                ),
            ));
            continue;
        };
        let m = margin(wait);
        let need = wait + m;
        let have = h.timeout.unwrap_or(MAX_TIMEOUT);
        let have_s = match h.timeout {
            Some(t) => format!("{t} s"),
            None => format!("{MAX_TIMEOUT} s (the default)"),
        };
        let mut line = String::new();
        let _ = write!(line, "{} {}: timeout {have_s}", h.event, h.location);
        if Duration::from_secs(have) >= need {
            out.push(check(
                Verdict::Ok,
                name.clone(),
                format!(
                    "{line} covers {why} = {} + margin {} = {}",
                    secs(wait),
                    secs(m),
                    secs(need)
                ),
            ));
        } else {
            out.push(check(
                Verdict::Fail,
                name.clone(),
                format!(
                    "{line} is shorter than {why} = {} + margin {} = {}: the agent would SIGTERM it and fail the deployment first",
                    secs(wait),
                    secs(m),
                    secs(need)
                ),
            ));
        }
    }
    out
}

/// `project`: the appspec is a project's (validate off the host), beside which `nonstop
/// bundle` will put the binaries in bin/: their absence there is not a problem yet.
pub(super) fn appspec_checks(
    cfg: &Config,
    path: &Path,
    project: bool,
) -> (Vec<Check>, Option<Vec<Hook>>) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return (
                vec![
                    check(
                        Verdict::Fail,
                        CheckId::Appspec,
                        format!("cannot read {}: {e} (give --appspec PATH)", path.display()),
                    ),
                    check(Verdict::Skip, CheckId::Hooks, "needs appspec.yml"),
                ],
                None,
            )
        }
    };
    let (format, hooks) = super::appspec::appspec_format(&text);
    let mut out = vec![match &format {
        Ok(summary) => check(
            Verdict::Ok,
            CheckId::Appspec,
            format!("{}: {summary}", path.display()),
        ),
        Err(problems) => check(
            Verdict::Fail,
            CheckId::Appspec,
            format!("{}: {}", path.display(), problems.join("; ")),
        ),
    }];
    let Some(hooks) = hooks else {
        out.push(check(
            Verdict::Skip,
            CheckId::Hooks,
            "appspec.yml has no readable hooks",
        ));
        return (out, None);
    };
    let bundle = path.parent().unwrap_or(Path::new("/"));
    out.extend(hook_checks(cfg, bundle, &hooks, project));
    (out, Some(hooks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_a_tenth_and_at_least_ten_seconds() {
        assert_eq!(margin(Duration::from_secs(20)), Duration::from_secs(10));
        assert_eq!(margin(Duration::from_secs(150)), Duration::from_secs(15));
    }
}

//! The operator's command, `nonstop`: `status`, `history`, `rollback`, `deploy`, `validate`, `init`,
//! `bundle` (the CodeDeploy zip, built by `nonstop` itself), and the generated shell completions and man page. One file per subcommand; this file holds what
//! they share (the per-stage summary lines, the history record, UTC parsing).
//!
//! Each command that works on an app takes the [`Run`] its entry built. `deploy` and
//! `rollback` compose the stage functions of [`crate::stages`] (the code the hook binaries
//! run), under the run's one lock ([`Run::lock`]) for the whole command; `status` and
//! `validate` only read and take no lock.

pub mod bundle;
pub mod deploy;
pub mod history;
pub mod init;
pub mod logs;
pub mod nginx_conf;
pub mod report;
pub mod rollback;
pub mod status;
pub mod validate;

use crate::error::{Context, Result};
use crate::log::human;
use crate::run::Run;
use crate::state::{Action, Outcome};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The binaries every bundle carries, in `bin/` (what `bundle` packs and `validate` expects
/// beside the hooks): the stage table's ([`crate::stage_table::BINARIES`]).
pub const BINARIES: [&str; 6] = crate::stage_table::BINARIES;

/// Runs stages one after the other and prints one summary line per stage on stdout as each
/// one ends: its name, `ok` or `FAILED`, and how long it took.
#[derive(Debug, Default)]
pub struct Stages {
    /// (stage, ok, took) in order.
    pub done: Vec<(Action, bool, Duration)>,
    /// When each stage of `done` started.
    pub started: Vec<SystemTime>,
}

impl Stages {
    /// Run `f` as `stage`, print its line, and pass its result on.
    pub fn run<T>(&mut self, stage: Action, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let t0 = Instant::now();
        self.started.push(SystemTime::now());
        let r = f();
        let took = t0.elapsed();
        crate::cli::out(stage_line(&stage.as_string(), r.is_ok(), took));
        self.done.push((stage, r.is_ok(), took));
        r
    }

    /// The stage that failed, if one did.
    pub fn failed_stage(&self) -> Option<&Action> {
        self.done.iter().find(|(_, ok, _)| !ok).map(|(a, _, _)| a)
    }
}

/// `health         ok      1.21 s`
pub fn stage_line(name: &str, ok: bool, took: Duration) -> String {
    format!(
        "{name:<14} {:<7} {:>9}",
        if ok { "ok" } else { "FAILED" },
        human(took)
    )
}

/// Record the whole command (`deploy`, `rollback`) in the state history, after the events the
/// stages recorded themselves: its total time and, on failure, the stage that failed.
pub fn record_run(
    run: &Run,
    action: Action,
    slot: &str,
    release: Option<String>,
    t0: Instant,
    r: &Result<()>,
    stages: &Stages,
) {
    let outcome = match (r, stages.failed_stage()) {
        (Err(e), Some(s)) => Outcome::FailedAt {
            stage: s.clone(),
            reason: e.to_string(),
        },
        _ => Outcome::of(r),
    };
    run.record(action, slot, release, t0, outcome);
}

/// Parse `2026-11-22T06:40:01.123Z` (what [`crate::log::utc_millis`] writes; the fraction
/// is optional).
pub fn parse_utc(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.splitn(3, '-');
    let y: i64 = d.next()?.parse().ok()?;
    let mo: i64 = d.next()?.parse().ok()?;
    let day: i64 = d.next()?.parse().ok()?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.splitn(3, ':');
    let h: i64 = t.next()?.parse().ok()?;
    let mi: i64 = t.next()?.parse().ok()?;
    let sec: i64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let ms: u64 = format!("{frac:0<3}").get(..3)?.parse().ok()?;
    // Howard Hinnant's days_from_civil.
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms))
}

/// `45 s`, `3 m 12 s`, `2 h 05 m`, `3 d 04 h`: how long something has been running.
pub fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} m {:02} s", s / 60, s % 60),
        3600..=86_399 => format!("{} h {:02} m", s / 3600, s % 3600 / 60),
        _ => format!("{} d {:02} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Lay out rows as columns separated by two spaces (the last column is not padded).
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|v| v.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, v) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line += v;
            } else {
                line += &format!("{v:<w$}  ", w = widths[c]);
            }
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

/// `nonstop completions SHELL`: the completion script for `cmd` on stdout.
pub fn completions(mut cmd: clap::Command, shell: clap_complete::Shell) -> Result<()> {
    let name = cmd.get_name().to_string();
    let mut script = vec![];
    clap_complete::generate(shell, &mut cmd, name, &mut script);
    crate::cli::out_raw(&script);
    Ok(())
}

/// `nonstop man [DIR]`: the man page on stdout, or into DIR as `nonstop.1` plus one page per
/// visible subcommand (`nonstop-status.1`, ...).
pub fn man(cmd: clap::Command, dir: Option<&Path>) -> Result<()> {
    let render = |c: clap::Command| -> Result<Vec<u8>> {
        let mut buf = vec![];
        clap_mangen::Man::new(c)
            .render(&mut buf)
            .context("cannot render the man page")?;
        Ok(buf)
    };
    let Some(dir) = dir else {
        crate::cli::out_raw(&render(cmd)?);
        return Ok(());
    };
    std::fs::create_dir_all(dir).context(format!("cannot create {}", dir.display()))?;
    let name = cmd.get_name().to_string();
    let mut cmd = cmd;
    cmd.build();
    let mut pages = vec![(format!("{name}.1"), render(cmd.clone())?)];
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        // A one-shot command: leaking the few names clap wants as &'static str is fine.
        let full: &'static str = Box::leak(format!("{name}-{}", sub.get_name()).into_boxed_str());
        let bin: &'static str = Box::leak(full.replacen('-', " ", 1).into_boxed_str());
        let sub = sub.clone().name(full).bin_name(bin);
        pages.push((format!("{full}.1"), render(sub)?));
    }
    for (file, page) in pages {
        let p = dir.join(&file);
        crate::fsx::write_atomic(&p, &page, 0o644)?;
        crate::cli::out(p.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_log_writes() {
        for ms in [0u64, 951_782_400_000, 1_795_329_601_123, 4_102_444_799_999] {
            let t = UNIX_EPOCH + Duration::from_millis(ms);
            assert_eq!(parse_utc(&crate::log::utc_millis(t)), Some(t), "{ms}");
        }
        assert_eq!(
            parse_utc("1970-01-01T00:00:01Z"),
            Some(UNIX_EPOCH + Duration::from_secs(1))
        );
        assert_eq!(parse_utc("2026-13-01T00:00:00Z"), None);
        assert_eq!(parse_utc("yesterday"), None);
    }

    #[test]
    fn formats_uptime_and_tables() {
        assert_eq!(uptime(Duration::from_secs(45)), "45 s");
        assert_eq!(uptime(Duration::from_secs(192)), "3 m 12 s");
        assert_eq!(uptime(Duration::from_secs(7500)), "2 h 05 m");
        assert_eq!(
            uptime(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3 d 04 h"
        );
        let t = table(&[
            vec!["SLOT".into(), "PORT".into(), "HEALTH".into()],
            vec!["blue".into(), "8081".into(), "up".into()],
        ]);
        assert_eq!(t, "SLOT  PORT  HEALTH\nblue  8081  up\n");
        assert_eq!(
            stage_line("health", true, Duration::from_millis(1210)),
            "health         ok         1.21 s"
        );
    }
}

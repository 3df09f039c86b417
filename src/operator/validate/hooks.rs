//! The hooks of an appspec: they run the stage binaries in a working order, from files in the
//! bundle, and each hook's timeout covers what its binary may wait plus a margin.

use super::appspec::{Hook, EVENTS, MAX_TIMEOUT};
use super::check::{check, Check, CheckId, Verdict};
use crate::config::Config;
use crate::nginx;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// Events whose scripts come from the last successful revision, not the one being deployed.
const PREVIOUS_REVISION: [&str; 3] = ["BeforeBlockTraffic", "AfterBlockTraffic", "ApplicationStop"];
/// The stage binaries, in the order a deployment must run them.
pub(super) const ORDER: [&str; 5] = ["stop", "start", "health", "switch", "deploy-second"];

/// What a hook binary may wait at most, as (duration, explanation), or `None` for a script
/// nonstop does not know. These are the bounds the binaries enforce themselves; the margin
/// covers the work around them (process start, nginx commands, copying the jar).
pub fn max_wait(cfg: &Config, binary: &str) -> Option<(Duration, String)> {
    let port_free = Duration::from_secs(5);
    let pid_file = Duration::from_secs(10);
    let confirm = nginx::CONFIRM;
    let probe = cfg.health.timeout;
    // Balanced mode: a slot leaves rotation (one reload) and drains before it is stopped.
    let (out, out_s) = if cfg.balanced() {
        (
            cfg.stop.drain + confirm,
            format!(
                "stop.drain {} + {} reload confirmation + ",
                secs(cfg.stop.drain),
                secs(confirm)
            ),
        )
    } else {
        (Duration::ZERO, String::new())
    };
    Some(match binary {
        "stop" => (
            out + cfg.stop.grace + port_free,
            format!(
                "{out_s}stop.grace {} + {} for the port to be free",
                secs(cfg.stop.grace),
                secs(port_free)
            ),
        ),
        "start" => (
            pid_file,
            format!("{} for the app's pid file", secs(pid_file)),
        ),
        "health" => (
            cfg.health.deadline + probe,
            format!(
                "health.deadline {} + one probe (health.timeout {})",
                secs(cfg.health.deadline),
                secs(probe)
            ),
        ),
        "switch" => (
            probe + confirm,
            format!(
                "one probe (health.timeout {}) + {} reload confirmation",
                secs(probe),
                secs(confirm)
            ),
        ),
        "deploy-second" => {
            let n = cfg.slots.len().saturating_sub(1) as u32;
            let one =
                out + cfg.stop.grace + port_free + pid_file + cfg.health.deadline + probe + confirm;
            (
                one * n,
                format!(
                    "{n} other slot(s) x ({out_s}stop.grace {} + {} + health.deadline {} + health.timeout {} + {} back into rotation)",
                    secs(cfg.stop.grace),
                    secs(port_free + pid_file),
                    secs(cfg.health.deadline),
                    secs(probe),
                    secs(confirm)
                ),
            )
        }
        _ => return None,
    })
}

/// The margin a timeout must leave above the wait: 10 %, at least 10 s.
pub fn margin(wait: Duration) -> Duration {
    (wait / 10).max(Duration::from_secs(10))
}

pub(super) fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{s:.1} s")
    }
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
    for b in ORDER {
        let p = position(b);
        match p {
            None if b == "deploy-second" => {
                if cfg.balanced() {
                    problems.push("balanced mode but no hook runs bin/deploy-second: the other slots keep the old release".to_string());
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
        if PREVIOUS_REVISION.contains(&h.event.as_str()) && ORDER.contains(&binary_of(h).as_str()) {
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
                .is_some_and(|b| crate::operator::bundle::BINARIES.contains(&b));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_margin_is_a_tenth_and_at_least_ten_seconds() {
        assert_eq!(margin(Duration::from_secs(20)), Duration::from_secs(10));
        assert_eq!(margin(Duration::from_secs(150)), Duration::from_secs(15));
    }
}

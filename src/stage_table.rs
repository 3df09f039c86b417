//! The one table of the deployment stages: each stage's name (its binary in `bin/` and
//! `src/bin/`, and its name in the history), the CodeDeploy lifecycle event the shipped
//! appspecs run it in, whether only balanced mode runs it, and the most it may wait (from the
//! config and the fixed budgets below). `validate` reads the hooks' order and the wait budgets
//! from it, `bundle` its binaries, the history its names; tests/tables.rs checks the Makefile's
//! and dist-check.sh's lists, `src/bin/` and the appspecs against it.

use crate::config::Config;
use crate::nginx;
use std::time::Duration;

/// A deployment stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Stop,
    Start,
    Health,
    Switch,
    DeploySecond,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    pub stage: Stage,
    /// The binary's name, and the stage's in the history.
    pub name: &'static str,
    /// The lifecycle event the shipped appspecs run it in.
    pub hook: &'static str,
    /// Only balanced mode runs it (the other slots' roll).
    pub balanced_only: bool,
}

/// The stages in the order a deployment runs them.
pub const STAGES: [Row; 5] = [
    Row {
        stage: Stage::Stop,
        name: "stop",
        hook: "AfterInstall",
        balanced_only: false,
    },
    Row {
        stage: Stage::Start,
        name: "start",
        hook: "ApplicationStart",
        balanced_only: false,
    },
    Row {
        stage: Stage::Health,
        name: "health",
        hook: "ValidateService",
        balanced_only: false,
    },
    Row {
        stage: Stage::Switch,
        name: "switch",
        hook: "ValidateService",
        balanced_only: false,
    },
    Row {
        stage: Stage::DeploySecond,
        name: "deploy-second",
        hook: "ValidateService",
        balanced_only: true,
    },
];

/// The stage binaries, in the order a deployment runs them.
pub const NAMES: [&str; 5] = {
    let mut out = [""; 5];
    let mut i = 0;
    while i < STAGES.len() {
        out[i] = STAGES[i].name;
        i += 1;
    }
    out
};

/// The stages a blue/green deployment runs (none that only balanced mode runs), in order.
pub const BLUE_GREEN: [&str; 4] = {
    let mut out = [""; 4];
    let (mut i, mut n) = (0, 0);
    while i < STAGES.len() {
        if !STAGES[i].balanced_only {
            out[n] = STAGES[i].name;
            n += 1;
        }
        i += 1;
    }
    assert!(
        n == out.len(),
        "BLUE_GREEN's length is the count of such stages"
    );
    out
};

/// Every binary of a release and a bundle: the stages, then the operator's `nonstop`.
pub const BINARIES: [&str; 6] = {
    let mut out = ["nonstop"; 6];
    let mut i = 0;
    while i < STAGES.len() {
        out[i] = STAGES[i].name;
        i += 1;
    }
    out
};

/// After `stop` has ended the app: how long its port may take to be free.
pub const PORT_FREE: Duration = Duration::from_secs(5);
/// After `start` has launched the app: how long its pid file may take to appear.
pub const PID_FILE: Duration = Duration::from_secs(10);

/// How long `health` waits for the class-data archive's dump from the healthy, not yet live
/// slot (`app.cds: auto`; 2–10 s for a Spring Boot app on a small host).
pub const CDS_DUMP: Duration = Duration::from_secs(30);

impl Stage {
    /// The stage's row.
    pub fn row(self) -> &'static Row {
        STAGES
            .iter()
            .find(|r| r.stage == self)
            .expect("every stage has a row")
    }

    /// The binary's name, and the stage's in the history.
    pub fn name(self) -> &'static str {
        self.row().name
    }

    /// The stage a binary (a hook's file name) runs, if it is one.
    pub fn of_name(name: &str) -> Option<Stage> {
        STAGES.iter().find(|r| r.name == name).map(|r| r.stage)
    }

    /// What the stage's binary may wait at most, as (duration, explanation). These are the
    /// bounds the binaries enforce themselves; a hook's timeout adds a margin for the work
    /// around them (process start, nginx commands, copying the jar).
    pub fn max_wait(self, cfg: &Config) -> (Duration, String) {
        let (port_free, pid_file) = (PORT_FREE, PID_FILE);
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
        match self {
            Stage::Stop => (
                out + cfg.stop.grace + port_free,
                format!(
                    "{out_s}stop.grace {} + {} for the port to be free",
                    secs(cfg.stop.grace),
                    secs(port_free)
                ),
            ),
            Stage::Start => (
                pid_file,
                format!("{} for the app's pid file", secs(pid_file)),
            ),
            Stage::Health => {
                let (dump, dump_s) = match cfg.app.cds {
                    crate::config::CdsMode::Off => (Duration::ZERO, String::new()),
                    _ => (
                        CDS_DUMP,
                        format!(" + {} for the class-data archive (app.cds)", secs(CDS_DUMP)),
                    ),
                };
                (
                    cfg.health.deadline + probe + dump,
                    format!(
                        "health.deadline {} + one probe (health.timeout {}){dump_s}",
                        secs(cfg.health.deadline),
                        secs(probe)
                    ),
                )
            }
            Stage::Switch => {
                let (watch, watch_s) = watch_wait(cfg);
                (
                    probe + confirm + watch,
                    format!(
                        "one probe (health.timeout {}) + {} reload confirmation{watch_s}",
                        secs(probe),
                        secs(confirm)
                    ),
                )
            }
            Stage::DeploySecond => {
                let n = cfg.slots.len().saturating_sub(1) as u32;
                let one = out
                    + cfg.stop.grace
                    + port_free
                    + pid_file
                    + cfg.health.deadline
                    + probe
                    + confirm;
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
        }
    }
}

/// What the `switch` hook's watch adds to the hook's wait, for `validate`'s timeout check:
/// `watch.duration`, each of `watch.probes` (`health.timeout` each) at every judgement, and the
/// switch back (one probe and a reload confirmation); zero when the hook does not watch
/// (`watch.enabled` off, or balanced mode).
pub fn watch_wait(cfg: &Config) -> (Duration, String) {
    if !cfg.watch.enabled || cfg.balanced() {
        return (Duration::ZERO, String::new());
    }
    let w = &cfg.watch;
    let judgements = w
        .duration
        .as_millis()
        .div_ceil(w.interval.as_millis().max(1)) as u32;
    let probes = cfg.health.timeout * w.probes.len() as u32 * judgements;
    let back = cfg.health.timeout + nginx::CONFIRM;
    let mut why = format!(" + watch.duration {}", secs(w.duration));
    if !w.probes.is_empty() {
        why += &format!(
            " + {} watch.probes x {judgements} judgements x health.timeout {}",
            w.probes.len(),
            secs(cfg.health.timeout)
        );
    }
    why += &format!(
        " + the switch back (one probe + {} reload confirmation)",
        secs(nginx::CONFIRM)
    );
    (w.duration + probes + back, why)
}

/// A duration in whole seconds (`35 s`), else to a tenth (`0.5 s`).
pub fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{s:.1} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lists_come_from_the_rows() {
        assert_eq!(
            NAMES,
            ["stop", "start", "health", "switch", "deploy-second"]
        );
        assert_eq!(BLUE_GREEN, ["stop", "start", "health", "switch"]);
        assert_eq!(BINARIES[5], "nonstop");
        assert_eq!(&BINARIES[..5], &NAMES);
        for r in STAGES {
            assert_eq!(Stage::of_name(r.name), Some(r.stage));
            assert_eq!(r.stage.name(), r.name);
        }
        assert_eq!(Stage::of_name("nonstop"), None);
    }

    #[test]
    fn waits_add_up_from_the_config_and_the_fixed_budgets() {
        let cfg =
            crate::config::parse("app:\n  name: a\n", std::path::Path::new("/x/n.yml")).unwrap();
        let (d, why) = Stage::Stop.max_wait(&cfg);
        assert_eq!(d, cfg.stop.grace + PORT_FREE);
        assert!(why.ends_with("+ 5 s for the port to be free"), "{why}");
        assert_eq!(Stage::Start.max_wait(&cfg).0, PID_FILE);
        assert_eq!(secs(Duration::from_millis(500)), "0.5 s");
    }
}

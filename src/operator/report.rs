//! `nonstop deploy --json` and `nonstop rollback --json`: one JSON object on stdout for the
//! engine that runs nonstop on each host (Ansible, a CI job, a script), while the stage lines
//! and the log go to stderr. The exit code stays the contract (0 done, 1 failed, 2 usage or
//! config, 3 lock held); the document says what happened in a form an engine can act on:
//! `changed` (Ansible's changed), the typed `outcome`, the slot, release and version, and when
//! each stage ran and how long it took.
//!
//! The command fills a [`Report`] as it goes; [`run`] finishes it from the command's result
//! (the outcome of a failure is classified from the stages that ran) and prints it, also when
//! the command failed before its first stage (a config error, the lock held).

use super::Stages;
use crate::error::{Error, Result};
use crate::state::Action;
use serde::Serialize;
use std::time::{Instant, SystemTime};

/// What a `deploy` or `rollback` run came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The new release serves (exit 0).
    Deployed,
    /// The jar (by sha256) already runs live and healthy: nothing was done (exit 0).
    Unchanged,
    /// Back on the previous slot and release (exit 0).
    RolledBack,
    /// Failed before traffic moved (a refusal, stop, start, health, or a switch whose nginx
    /// transaction put the previous files back): the old release still serves (exit 1, or 2 for
    /// a usage or config error).
    FailedBeforeSwitch,
    /// `--watch` judged the new release bad and switched back to the old slot (exit 1).
    SwitchedBack,
    /// Failed after the switch (balanced mode's roll of the other slots, or a switch back that
    /// did not happen): see `error` and `nonstop status` (exit 1).
    FailedAfterSwitch,
    /// Another nonstop run holds the lock; nothing was done (exit 3).
    Busy,
}

impl Outcome {
    /// Whether the run changed what serves (or started or stopped an app).
    fn changed(self, stages_ran: bool) -> bool {
        match self {
            Outcome::Unchanged | Outcome::Busy => false,
            Outcome::Deployed | Outcome::RolledBack | Outcome::SwitchedBack => true,
            Outcome::FailedBeforeSwitch | Outcome::FailedAfterSwitch => stages_ran,
        }
    }
}

/// One stage as it ran.
#[derive(Debug, Clone, Serialize)]
pub struct StageTiming {
    pub stage: String,
    pub ok: bool,
    /// UTC, milliseconds (`2026-12-06T23:59:01.123Z`).
    pub started_at: String,
    pub ms: u64,
}

/// The `--json` document.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `deploy` or `rollback`.
    pub command: &'static str,
    /// The deployment id (`DEPLOYMENT_ID`, else `deploy-TIME` / `rollback-TIME`).
    pub id: Option<String>,
    /// Ansible's `changed`: false for `unchanged` and `busy`, and for a failure before any
    /// stage ran.
    pub changed: bool,
    pub outcome: Outcome,
    /// The process's exit code.
    pub exit_code: u8,
    /// The slot that serves (or would have) the release: the deploy's target, the rollback's
    /// slot, the live slot when `unchanged`.
    pub slot: Option<String>,
    /// The slot live before the run.
    pub previous: Option<String>,
    /// The release folder (`workdir/releases/<release>`) and the app's version it carries.
    pub release: Option<String>,
    pub version: Option<String>,
    /// sha256 of the jar deployed (deploy only).
    pub sha256: Option<String>,
    pub started_at: String,
    pub ended_at: String,
    pub took_ms: u64,
    /// Each stage in order, as the stage lines show them.
    pub stages: Vec<StageTiming>,
    /// Why it failed: the last stderr line's reason.
    pub error: Option<String>,
    #[serde(skip)]
    t0: Instant,
}

impl Report {
    pub fn new(command: &'static str) -> Report {
        let start = SystemTime::now();
        Report {
            command,
            id: None,
            changed: false,
            outcome: Outcome::FailedBeforeSwitch,
            exit_code: 0,
            slot: None,
            previous: None,
            release: None,
            version: None,
            sha256: None,
            started_at: crate::log::utc_millis(start),
            ended_at: String::new(),
            took_ms: 0,
            stages: vec![],
            error: None,
            t0: Instant::now(),
        }
    }

    /// Take the stages' timings from `st`.
    pub fn stages(&mut self, st: &Stages) {
        self.stages = st
            .done
            .iter()
            .zip(&st.started)
            .map(|((stage, ok, took), started)| StageTiming {
                stage: stage.as_string(),
                ok: *ok,
                started_at: crate::log::utc_millis(*started),
                ms: took.as_millis() as u64,
            })
            .collect();
    }

    /// Finish the report from the command's result: an outcome the command did not set is
    /// classified from the stages that ran.
    fn finish(&mut self, r: &Result<()>, set: Option<Outcome>) {
        let ran = |a: &Action| self.stages.iter().any(|s| s.stage == a.as_string());
        let ok = |a: &Action| self.stages.iter().any(|s| s.stage == a.as_string() && s.ok);
        self.outcome = match (r, set) {
            (_, Some(o)) => o,
            (Ok(()), None) => match self.command {
                "rollback" => Outcome::RolledBack,
                _ => Outcome::Deployed,
            },
            (Err(e), None) if e.kind() == crate::error::Kind::LockHeld => Outcome::Busy,
            (Err(_), None) if ran(&Action::Watch) && !ok(&Action::Watch) => Outcome::SwitchedBack,
            (Err(_), None) if ok(&Action::Switch) => Outcome::FailedAfterSwitch,
            (Err(_), None) => Outcome::FailedBeforeSwitch,
        };
        self.exit_code = r.as_ref().err().map_or(0, Error::exit_code);
        self.error = r
            .as_ref()
            .err()
            .map(|e| e.to_string().replace(['\n', '\r'], " "));
        self.changed = self.outcome.changed(!self.stages.is_empty());
        self.ended_at = crate::log::utc_millis(SystemTime::now());
        self.took_ms = self.t0.elapsed().as_millis() as u64;
    }
}

/// Whether a run's outcome is already decided by the command (`unchanged`, or a watch whose
/// switch back is known) rather than classified from its result.
#[derive(Debug, Default)]
pub struct Decided(pub Option<Outcome>);

/// Run `body` (a `deploy` or `rollback`), filling a [`Report`]; with `json`, the stage lines go
/// to stderr and the finished report is printed on stdout as one JSON object, whatever the
/// result. The result is passed on unchanged (its exit code and last line).
pub fn run(
    json: bool,
    command: &'static str,
    body: impl FnOnce(&mut Report, &mut Decided) -> Result<()>,
) -> Result<()> {
    if json {
        crate::cli::lines_on_stderr();
    }
    let mut rep = Report::new(command);
    let mut decided = Decided::default();
    let r = body(&mut rep, &mut decided);
    rep.finish(&r, decided.0);
    if json {
        match serde_json::to_string(&rep) {
            Ok(text) => crate::cli::out_document(&text),
            Err(e) => log::error!("cannot encode the report: {e}"),
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn stages(list: &[(Action, bool)]) -> Stages {
        let mut st = Stages::default();
        for (a, ok) in list {
            st.done.push((a.clone(), *ok, Duration::from_millis(5)));
            st.started.push(SystemTime::now());
        }
        st
    }

    fn finished(command: &'static str, st: &[(Action, bool)], r: Result<()>) -> Report {
        let mut rep = Report::new(command);
        rep.stages(&stages(st));
        rep.finish(&r, None);
        rep
    }

    #[test]
    fn outcomes_are_classified_from_the_stages_that_ran() {
        use Action::*;
        let all = [(Stop, true), (Start, true), (Health, true), (Switch, true)];
        let r = finished("deploy", &all, Ok(()));
        assert_eq!(
            (r.outcome, r.changed, r.exit_code),
            (Outcome::Deployed, true, 0)
        );
        let r = finished("rollback", &[(Switch, true)], Ok(()));
        assert_eq!(r.outcome, Outcome::RolledBack);
        let r = finished(
            "deploy",
            &[(Stop, true), (Start, true), (Health, false)],
            Err(crate::error::failed("slot blue is not healthy")),
        );
        assert_eq!(
            (r.outcome, r.changed, r.exit_code, r.error.as_deref()),
            (
                Outcome::FailedBeforeSwitch,
                true,
                1,
                Some("slot blue is not healthy")
            )
        );
        let r = finished(
            "deploy",
            &[],
            Err(Error::LockHeld {
                path: "/s/lock".into(),
                holder: Some("nonstop deploy pid 7".into()),
            }),
        );
        assert_eq!(
            (r.outcome, r.changed, r.exit_code),
            (Outcome::Busy, false, 3)
        );
        let r = finished(
            "deploy",
            &[],
            Err(Error::config("/a/n.yml", None, None, "bad key")),
        );
        assert_eq!(
            (r.outcome, r.changed, r.exit_code),
            (Outcome::FailedBeforeSwitch, false, 2)
        );
        let mut watched = all.to_vec();
        watched.push((Watch, false));
        let r = finished("deploy", &watched, Err(crate::error::failed("5xx")));
        assert_eq!((r.outcome, r.changed), (Outcome::SwitchedBack, true));
        let mut second = all.to_vec();
        second.push((DeploySecond, false));
        let r = finished("deploy", &second, Err(crate::error::failed("x")));
        assert_eq!(r.outcome, Outcome::FailedAfterSwitch);
        let text = serde_json::to_value(&r).unwrap();
        assert_eq!(text["outcome"], "failed_after_switch");
        assert_eq!(text["stages"][4]["stage"], "deploy-second");
        assert_eq!(text["stages"][0]["ms"], 5);
    }

    #[test]
    fn a_decided_outcome_wins() {
        let mut rep = Report::new("deploy");
        rep.finish(&Ok(()), Some(Outcome::Unchanged));
        let v = serde_json::to_value(&rep).unwrap();
        assert_eq!(v["outcome"], "unchanged");
        assert_eq!(v["changed"], false);
        assert_eq!(v["exit_code"], 0);
    }
}

//! The run context: what one run of a binary (a hook binary, or one `nonstop` command) works
//! with, built once at its entry ([`crate::cli::main`], or the `nonstop` command that loads the
//! config) and passed down to the stages, the operator commands and the watch as `&Run`.
//!
//! A [`Run`] holds the config, the supervisor chosen once from `app.supervisor`, the traffic
//! seam chosen once from `traffic.via` (which keeps this run's nftables listing while the run
//! holds its lock), the deployment id, and the run lock once taken. Nothing of a run is kept
//! in the process: two runs in one process (two configs, two state folders) use their own id,
//! lock and state, and a second run never sees the first one's choices.
//!
//! Invariants:
//! - the deployment id is `DEPLOYMENT_ID` as the process found it (the CodeDeploy agent sets it
//!   for every hook of one deployment), else, for a command that is a deployment of its own
//!   (`nonstop deploy`, `nonstop rollback`), `KIND-<UTC time>` made once ([`Run::deployment_id`]);
//!   it reaches a launched app's environment explicitly ([`crate::supervisor::Start`]), never
//!   through the process's own environment;
//! - the lock is taken once per run ([`Run::lock`]): a stage called inside a command that holds
//!   it runs under that lock; any other run, in this process or another, gets exit 3;
//! - what a run learns under its lock (the nftables listing) is forgotten when the lock is
//!   released;
//! - a run's changes to the state file are made here ([`Run::record`], [`Run::record_live`],
//!   [`Run::record_canary`], [`Run::record_event`]): the stages, the commands and the watch
//!   say what happened, this module writes it.

use crate::config::{self, Config, Slot};
use crate::error::Result;
use crate::lock;
use crate::slots::{self, Roles};
use crate::state::{self, Action, Outcome, State};
use crate::supervisor::{self, Supervisor};
use crate::traffic::{self, Traffic};
use std::path::Path;
use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime};

/// One run of a binary; see the module doc.
pub struct Run {
    /// The config, as loaded (or as a command changed it before the run began: `deploy --jar`).
    pub cfg: Config,
    /// The supervisor, chosen once from `app.supervisor`.
    pub sup: &'static dyn Supervisor,
    /// The traffic seam, chosen once from `traffic.via`.
    pub traffic: Box<dyn Traffic>,
    id: OnceLock<String>,
    lock: Mutex<Option<lock::Lock>>,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Run")
            .field("config", &self.cfg.path)
            .field("supervisor", &self.sup.kind())
            .field("traffic", &self.traffic.via())
            .field("deployment_id", &self.id.get())
            .finish()
    }
}

/// `DEPLOYMENT_ID` as this process found it, if set and not empty.
fn id_from_env() -> Option<String> {
    std::env::var("DEPLOYMENT_ID")
        .ok()
        .filter(|v| !v.is_empty())
}

impl Run {
    /// The run for `cfg`: the seams chosen, the deployment id read from `DEPLOYMENT_ID`.
    pub fn new(cfg: Config) -> Run {
        Run::with_id(cfg, id_from_env())
    }

    /// The run for `cfg` with the deployment id `id` (`None`: none yet).
    pub fn with_id(cfg: Config, id: Option<String>) -> Run {
        let sup = supervisor::by_kind(supervisor::choose(&cfg));
        let traffic = traffic::seam(&cfg, Some(sup));
        let cell = OnceLock::new();
        if let Some(id) = id {
            let _ = cell.set(id);
        }
        Run {
            cfg,
            sup,
            traffic,
            id: cell,
            lock: Mutex::new(None),
        }
    }

    /// Load the config (see [`config::load`]) and make its run.
    pub fn load(path: Option<&Path>) -> Result<Run> {
        Ok(Run::new(config::load(path)?))
    }

    /// A run of `cfg` with this run's deployment id and supervisor (for a command that changes
    /// its config before it begins: `deploy --jar`). It holds no lock.
    pub fn with_config(&self, cfg: Config) -> Run {
        let traffic = traffic::seam(&cfg, Some(self.sup));
        let id = OnceLock::new();
        if let Some(v) = self.id.get() {
            let _ = id.set(v.clone());
        }
        Run {
            cfg,
            sup: self.sup,
            traffic,
            id,
            lock: Mutex::new(None),
        }
    }

    /// The deployment id, if the run has one (`DEPLOYMENT_ID`, or one [`Run::deployment_id`]
    /// made).
    pub fn id(&self) -> Option<&str> {
        self.id.get().map(String::as_str)
    }

    /// The deployment id of a command that is a deployment of its own: `DEPLOYMENT_ID` when
    /// the CodeDeploy agent (or the caller) set it, else `KIND-<UTC time>` (e.g.
    /// `rollback-20261122T064001.123Z`), made once; the stages name the release after it and
    /// record it in the history.
    pub fn deployment_id(&self, kind: &str) -> &str {
        self.id.get_or_init(|| {
            let now = crate::log::utc_millis(SystemTime::now()).replace(['-', ':'], "");
            format!("{kind}-{now}")
        })
    }

    /// Take the run lock for `binary` (exit 3 when another run holds it), or, when this run
    /// holds it already (a command that runs several stages took it first), a guard that holds
    /// nothing: the stages run under the command's lock and no other run slips in between.
    pub fn lock(&self, binary: &str) -> Result<Held<'_>> {
        let mut held = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = held.as_ref() {
            log::debug!("{binary}: {} is held by this run already", l.path.display());
            return Ok(Held {
                run: self,
                outer: false,
            });
        }
        *held = Some(lock::acquire(&self.cfg.state_dir, binary)?);
        self.traffic.hold(true);
        Ok(Held {
            run: self,
            outer: true,
        })
    }

    /// True while this run holds its lock.
    pub fn holds_lock(&self) -> bool {
        self.lock
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// The slots' roles now, reconciled with `st` through this run's traffic seam.
    pub fn roles(&self, st: &State) -> Result<Roles<'_>> {
        slots::roles_with(&*self.traffic, &self.cfg, st)
    }

    /// Record `action` on `slot` in the state history with its outcome, this run's deployment
    /// id and `release`'s version.
    pub fn record(
        &self,
        action: Action,
        slot: &str,
        release: Option<String>,
        t0: Instant,
        outcome: Outcome,
    ) {
        let version = release
            .as_deref()
            .and_then(|r| crate::releases::release_version(&self.cfg, r));
        state::record_event(
            &self.cfg.state_dir,
            self.id(),
            action,
            slot,
            (release, version),
            t0,
            outcome,
        );
    }

    /// After a switch to `target`: the state's live slot, the slot traffic came from
    /// (`previous`, kept when `None`), the release and jar `target` runs (`pf`), the time; no
    /// canary.
    pub fn record_live(
        &self,
        target: &Slot,
        previous: Option<&Slot>,
        pf: Option<&crate::process::PidFile>,
    ) -> Result<State> {
        state::update(&self.cfg.state_dir, |s| {
            if let Some(old) = previous {
                s.previous = Some(old.name.clone());
            }
            s.live = Some(target.name.clone());
            s.release = pf.map(|p| p.release.clone());
            s.jar = pf.map(|p| p.jar.clone());
            s.time = Some(crate::log::utc_millis(SystemTime::now()));
            s.canary = None;
        })
    }

    /// The canary in progress (`None`: none, after an abort).
    pub fn record_canary(&self, canary: Option<state::Canary>) -> Result<State> {
        state::update(&self.cfg.state_dir, |s| s.canary = canary)
    }

    /// Append `ev`, made by the caller (the watch's verdict), to the history as it is.
    pub fn record_event(&self, ev: state::Event) -> Result<State> {
        state::update(&self.cfg.state_dir, |s| s.record(ev))
    }

    /// Who answers on `slot`'s port (see [`supervisor::answerer`]).
    pub fn answerer(&self, slot: &Slot) -> crate::process::Answerer {
        supervisor::answerer(self.sup, &self.cfg, slot)
    }

    /// Who runs on `slot`'s port (see [`supervisor::owner`]).
    pub fn owner(&self, slot: &Slot) -> Option<crate::process::Owner> {
        supervisor::owner(self.sup, &self.cfg, slot)
    }

    /// The slot's running app, if it runs.
    pub fn running_app(&self, slot: &Slot) -> Option<crate::process::PidFile> {
        supervisor::running_app(self.sup, &self.cfg, slot)
    }

    /// Where the truth of which slot is live is, for messages.
    pub fn truth(&self) -> String {
        self.traffic.truth(&self.cfg)
    }

    /// The slot named `name`.
    pub fn slot(&self, name: &str) -> Result<&Slot> {
        self.cfg.slot(name)
    }
}

/// The slot a stage acts on.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// `--slot NAME` as a binary's flag gives it; `None`: the idle slot.
    Flag(Option<&'a str>),
    /// A slot the caller resolved already (a command that runs several stages resolves its
    /// target once): the stage acts on it as on `--slot NAME`.
    Slot(&'a Slot),
}

impl<'a> From<Option<&'a str>> for Target<'a> {
    fn from(flag: Option<&'a str>) -> Self {
        Target::Flag(flag)
    }
}

impl<'a> Target<'a> {
    /// The slot named, if one is (`--slot NAME`, or a resolved slot).
    pub fn named(&self) -> Option<&'a str> {
        match *self {
            Target::Flag(f) => f,
            Target::Slot(s) => Some(s.name.as_str()),
        }
    }

    /// The slot: the one named or resolved, else the idle one of `roles`.
    pub fn resolve<'x>(self, roles: &Roles<'x>, cfg: &'x Config) -> Result<&'x Slot>
    where
        'a: 'x,
    {
        match self {
            Target::Flag(f) => roles.target(cfg, f),
            Target::Slot(s) => Ok(s),
        }
    }
}

/// The run lock as [`Run::lock`] gave it: released when the guard that took it is dropped.
#[derive(Debug)]
pub struct Held<'r> {
    run: &'r Run,
    /// This guard took the lock (not one nested inside the run's own).
    outer: bool,
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        if self.outer {
            // What the run learned under the lock is forgotten before the lock is released.
            self.run.traffic.hold(false);
            self.run
                .lock
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_in(dir: &Path) -> Run {
        let yml = format!(
            "app:\n  name: demo\n  supervisor: builtin\nstate_dir: {}\n",
            dir.join("state").display()
        );
        let cfg: Config = config::parse(&yml, &dir.join("nonstop.yml")).unwrap();
        Run::with_id(cfg, None)
    }

    #[test]
    fn a_run_that_holds_its_lock_lets_its_own_stages_in_and_no_one_else() {
        let d = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let run = run_in(d.path());
        let outer = run.lock("nonstop deploy").unwrap();
        let inner = run.lock("stop").expect("a stage inside the run's lock");
        drop(inner);
        run.lock("start").expect("still held by the outer guard");
        // Another run (another state_dir) is not covered.
        let run2 = run_in(other.path());
        let o = run2.lock("stop").unwrap();
        assert_eq!(
            lock::acquire(&run2.cfg.state_dir, "stop")
                .unwrap_err()
                .exit_code(),
            3
        );
        drop(o);
        // Another run of the same state_dir (in this process or another) sees it held.
        let same = run_in(d.path());
        assert_eq!(same.lock("stop").unwrap_err().exit_code(), 3);
        let text = std::fs::read_to_string(run.cfg.state_dir.join("lock")).unwrap();
        assert!(text.contains("nonstop deploy pid"), "{text}");
        drop(outer);
        assert!(!run.holds_lock());
        let again = same.lock("stop").unwrap();
        assert_eq!(run.lock("start").unwrap_err().exit_code(), 3);
        drop(again);
    }

    #[test]
    fn a_run_holds_its_lock_through_nested_guards_until_the_outer_one_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let run = run_in(d.path());
        assert!(!run.holds_lock());
        let outer = run.lock("nonstop rollback").unwrap();
        let inner = run.lock("switch").unwrap();
        assert!(run.holds_lock());
        drop(inner);
        assert!(run.holds_lock(), "the nested guard held nothing");
        drop(outer);
        assert!(!run.holds_lock());
        let again = run.lock("switch").unwrap();
        assert!(run.holds_lock());
        drop(again);
        assert!(!run.holds_lock());
    }

    #[test]
    fn each_run_chooses_its_own_seams_from_its_own_config() {
        let d = tempfile::tempdir().unwrap();
        let a = run_in(d.path());
        let mut cfg = a.cfg.clone();
        cfg.app.supervisor = supervisor::Choice::Systemd;
        cfg.traffic.via = traffic::Via::Nftables;
        let b = Run::new(cfg);
        assert_eq!(a.sup.kind(), supervisor::Kind::Builtin);
        assert_eq!(b.sup.kind(), supervisor::Kind::Systemd);
        assert_eq!(a.traffic.via(), traffic::Via::NginxReload);
        assert_eq!(b.traffic.via(), traffic::Via::Nftables);
        assert_eq!(
            run_in(d.path()).sup.kind(),
            supervisor::Kind::Builtin,
            "a later run is not given an earlier run's choice"
        );
    }

    #[test]
    fn each_run_keeps_its_own_deployment_id() {
        let d = tempfile::tempdir().unwrap();
        let a = run_in(d.path());
        let b = run_in(d.path());
        assert_eq!(a.id(), None);
        let id = a.deployment_id("deploy").to_string();
        assert!(id.starts_with("deploy-"), "{id}");
        assert_eq!(a.deployment_id("rollback"), id, "made once");
        assert_eq!(b.id(), None, "another run does not see it");
        assert!(b.deployment_id("rollback").starts_with("rollback-"));
        let c = Run::with_id(a.cfg.clone(), Some("d-ABC".into()));
        assert_eq!(c.deployment_id("deploy"), "d-ABC");
        assert_eq!(c.with_config(c.cfg.clone()).id(), Some("d-ABC"));
    }
}

//! What the stages call and both supervisors implement: the [`Supervisor`] trait and its
//! types, and the app's user (`app.user`, `app.group`) either one runs the JVM as.

use crate::config::{Config, Slot};
use crate::error::Result;
use crate::process::{ExitRecord, PidFile, SlotProcess};
use serde::Serialize;
use std::time::Duration;

/// The supervisor a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Builtin,
    Systemd,
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kind::Builtin => "builtin",
            Kind::Systemd => "systemd",
        })
    }
}

/// What is needed to start a release on a slot (built by the stages from the config).
#[derive(Debug, Clone)]
pub struct Start<'a> {
    pub slot: &'a Slot,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: std::path::PathBuf,
    pub jar: std::path::PathBuf,
    pub release: String,
    /// The run's deployment id: the builtin supervisor hands it to the app as `DEPLOYMENT_ID`
    /// (as the hook's own environment does under CodeDeploy).
    pub deployment_id: Option<String>,
}

/// How a stop went.
#[derive(Debug, Clone, Copy)]
pub struct Stopped {
    pub took: Duration,
    /// SIGKILL was needed after `stop.grace`.
    pub killed: bool,
}

/// A slot's supervision as `status` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Supervision {
    /// The unit (systemd), `None` for builtin.
    pub unit: Option<String>,
    /// systemd's ActiveState (`active`, `activating`, `failed`, `inactive`, …).
    pub active: Option<String>,
    /// The unit starts at boot.
    pub enabled: Option<bool>,
    /// Restarts systemd made since the unit was last started by nonstop.
    pub restarts: Option<u32>,
}

/// The interface the stages use; one implementation per supervisor.
pub trait Supervisor: Sync {
    fn kind(&self) -> Kind;
    /// Start `start` on its slot (whose port is free) and return its pid file.
    fn launch(&self, cfg: &Config, start: &Start) -> Result<PidFile>;
    /// The slot's app as its supervisor knows it.
    fn app(&self, cfg: &Config, slot: &Slot) -> SlotProcess;
    /// Every process that belongs to the app `pf` (its process tree, or its unit's cgroup).
    fn family(&self, cfg: &Config, slot: &Slot, pf: &PidFile) -> std::collections::HashSet<i32>;
    /// Stop the slot's app `pf` (proved the slot's by the caller): SIGTERM, `stop.grace`,
    /// SIGKILL.
    fn stop(&self, cfg: &Config, slot: &Slot, pf: &PidFile) -> Result<Stopped>;
    /// The slot has no running app: make sure its supervisor does not start one behind
    /// nonstop's back (systemd: a unit waiting to restart a crashed app is stopped).
    fn settle(&self, cfg: &Config, slot: &Slot) -> Result<()>;
    /// How the slot's app last ended, if it did.
    fn last_exit(&self, cfg: &Config, slot: &Slot) -> Option<ExitRecord>;
    /// The last `n` lines the app wrote.
    fn log_tail(&self, cfg: &Config, slot: &Slot, n: usize) -> Vec<String>;
    /// Where its output goes, for messages (`log /path` or `journalctl -u UNIT`).
    fn log_hint(&self, cfg: &Config, slot: &Slot) -> String;
    /// Print the last `n` lines of the app's output to stdout and, with `follow`, new ones
    /// until interrupted.
    fn logs(&self, cfg: &Config, slot: &Slot, n: usize, follow: bool) -> Result<()>;
    /// After `live` became live: it starts at boot, the others only if
    /// `app.standby_at_boot`. Builtin: nothing starts at boot (a warning says so once).
    fn at_boot(&self, cfg: &Config, live: &Slot) -> Result<()>;
    /// Make `argv` run once at every boot before `before` starts (systemd: a oneshot unit
    /// `nonstop-<app>-<name>.service`, written and enabled if it is not already); builtin:
    /// nothing can, and `Ok(false)` says so. `Ok(true)`: it will run at boot.
    fn boot_command(&self, cfg: &Config, name: &str, argv: &[String], before: &str)
        -> Result<bool>;
    /// What `status` shows about the slot's supervision.
    fn supervision(&self, cfg: &Config, slot: &Slot) -> Supervision;
}

/// uid and gid for `app.user` / `app.group` from the user database (`None`: the user nonstop
/// runs as).
pub fn resolve_user(cfg: &Config) -> Result<Option<(u32, u32)>> {
    let Some(user) = &cfg.app.user else {
        return Ok(None);
    };
    let (uid, gid) = crate::userdb::user(user)
        .map(|a| (a.uid, a.gid))
        .ok_or_else(|| {
            crate::error::failed(format!("app.user {user:?} is not a user of this host"))
        })?;
    let gid = match &cfg.app.group {
        None => gid,
        Some(g) => crate::userdb::group_id(g).ok_or_else(|| {
            crate::error::failed(format!("app.group {g:?} is not a group of this host"))
        })?,
    };
    Ok(Some((uid, gid)))
}

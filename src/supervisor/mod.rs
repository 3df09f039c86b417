//! Who keeps a slot's app running: the seam between the stages and the two supervisors.
//!
//! - [`builtin`]: nonstop's own supervisor process (a re-executed nonstop in its own session;
//!   pid file + /proc proofs; the log file `workdir/logs/<slot>.log`). For containers, CI and
//!   laptops, and any host where systemd is not PID 1.
//! - [`systemd`]: one generated unit per slot, `nonstop-<app>@<slot>.service`, in a cgroup of
//!   its own (so the CodeDeploy agent's restart does not take the JVM with it), started at boot
//!   when it is the live slot, restarted on failure with a start limit, logging to journald.
//!
//! The choice is made once per run ([`crate::run::Run`]) from `app.supervisor` ([`Choice`]; `auto` picks systemd
//! when PID 1 is systemd and nonstop may manage the app's units: root, or `sudo nonstop setup`
//! set the app up) and
//! the stages call only the [`Supervisor`] trait. **Only [`systemd`] runs `systemctl` and
//! `journalctl`; only [`crate::process`] sends signals.**

pub mod builtin;
pub mod systemd;

use crate::config::{Config, Slot};
use crate::error::Result;
use crate::process::{self, Answerer, ExitRecord, Owner, PidFile, SlotProcess};
use serde::Serialize;
use std::time::Duration;

/// `app.supervisor` as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Choice {
    #[default]
    Auto,
    Systemd,
    Builtin,
}

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

/// The supervisor of `kind`. A run chooses it once ([`choose`], in [`crate::run::Run`]) and
/// passes it down; nothing in the process remembers the choice.
pub fn by_kind(kind: Kind) -> &'static dyn Supervisor {
    match kind {
        Kind::Builtin => &builtin::Builtin,
        Kind::Systemd => &systemd::Systemd,
    }
}

/// Resolve `app.supervisor`: `auto` is systemd when PID 1 is systemd and the app's units can
/// be managed (root, or the app is set up on this host).
pub fn choose(cfg: &Config) -> Kind {
    match cfg.app.supervisor {
        Choice::Builtin => Kind::Builtin,
        Choice::Systemd => Kind::Systemd,
        Choice::Auto if systemd::available(&cfg.app.name) => Kind::Systemd,
        Choice::Auto => Kind::Builtin,
    }
}

/// Prove who answers on `slot`'s port under `sup` (see [`process::answerer_of`]).
pub fn answerer(sup: &dyn Supervisor, cfg: &Config, slot: &Slot) -> Answerer {
    process::answerer_of(
        sup.app(cfg, slot),
        |pf| sup.family(cfg, slot, pf),
        slot.port,
    )
}

/// Who runs on `slot`'s port, and how sure nonstop is that it is the slot's app.
pub fn owner(sup: &dyn Supervisor, cfg: &Config, slot: &Slot) -> Option<Owner> {
    process::owner_of(answerer(sup, cfg, slot), slot.port)
}

/// The slot's running app, if it runs.
pub fn running_app(sup: &dyn Supervisor, cfg: &Config, slot: &Slot) -> Option<PidFile> {
    match sup.app(cfg, slot) {
        SlotProcess::Running(pf) => Some(pf),
        _ => None,
    }
}

/// uid and gid for `app.user` / `app.group` from /etc/passwd and /etc/group (`None`: the
/// user nonstop runs as).
pub fn resolve_user(cfg: &Config) -> Result<Option<(u32, u32)>> {
    let Some(user) = &cfg.app.user else {
        return Ok(None);
    };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let (uid, gid) = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == user)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .ok_or_else(|| {
            crate::error::failed(format!("app.user {user:?} is not a user of this host"))
        })?;
    let gid = match &cfg.app.group {
        None => gid,
        Some(g) => std::fs::read_to_string("/etc/group")
            .unwrap_or_default()
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() > 2 && f[0] == g)
            .and_then(|f| f[2].parse().ok())
            .ok_or_else(|| {
                crate::error::failed(format!("app.group {g:?} is not a group of this host"))
            })?,
    };
    Ok(Some((uid, gid)))
}

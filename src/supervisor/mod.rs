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
//! the stages call only the [`Supervisor`] trait ([`seam`]: the trait, its types, the app's user). **Only [`systemd`] runs `systemctl` and
//! `journalctl`; only [`crate::process`] sends signals.**

pub mod builtin;
pub mod seam;
pub mod systemd;

pub use crate::config::Choice;
use crate::config::{Config, Slot};
use crate::process::{self, Answerer, Owner, PidFile, SlotProcess};
pub use seam::{resolve_user, Kind, Start, Stopped, Supervision, Supervisor};

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

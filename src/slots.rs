//! Which slot is live and which is idle, and whether nonstop can be sure of it.
//!
//! The nginx include is the truth: the live slot is the one whose port it names, read as nginx
//! reads it ([`nginx::parse_include`]). The idle slot is the next one after the live slot
//! (wrapping), or the first slot when no slot is live.
//!
//! Before acting, a command reconciles three facts: the include, whether the running nginx has
//! loaded it (its newest worker started after the include and the upstream file last changed:
//! [`nginx::not_loaded`]), and the state file's record of the live slot. Any disagreement is a
//! [`Doubt`]; [`Roles::certain`] turns it into a refusal naming the repair (`switch --slot
//! NAME`). This detects an interrupted switch without a journal: a switch killed between its
//! write and its reload leaves the include newer than nginx's workers, and one killed between
//! the reload and the state write leaves the state naming the old slot.

use crate::config::{Config, Slot};
use crate::error::{Error, Refusal, Result};
use crate::state::State;

pub use crate::traffic::Doubt;

/// The repair command as hints print it: the operator's command, which works as printed on
/// the host (the `switch` hook binary takes the same flags).
pub const SWITCH: &str = "nonstop switch";

/// The roles of the slots right now.
#[derive(Debug, Clone)]
pub struct Roles<'a> {
    /// The slot the include names (what nginx serves unless there is a [`Doubt`]).
    pub live: Option<&'a Slot>,
    /// The slot the next deployment goes to.
    pub idle: &'a Slot,
    /// The port the include names, if it names one.
    pub include_port: Option<u16>,
    /// Why the above may not be what nginx serves.
    pub doubt: Option<Doubt>,
    /// The slot the state file records as live (what nginx served after the last switch
    /// nonstop completed).
    pub recorded: Option<&'a Slot>,
}

/// The idle slot when slot number `live` is live: the one after it (the first when none is).
pub fn after(cfg: &Config, live: Option<usize>) -> &Slot {
    &cfg.slots[live.map_or(0, |i| (i + 1) % cfg.slots.len())]
}

/// Read the include, check nginx loaded it and the state agrees, and work out the roles (for a
/// reader without a run: each call asks the truth again).
pub fn roles<'a>(cfg: &'a Config, st: &State) -> Result<Roles<'a>> {
    roles_with(&*crate::traffic::of(cfg), cfg, st)
}

/// [`roles`] through the traffic seam `traffic` (a run's own: [`crate::run::Run::roles`]).
pub fn roles_with<'a>(
    traffic: &dyn crate::traffic::Traffic,
    cfg: &'a Config,
    st: &State,
) -> Result<Roles<'a>> {
    let (include_port, mut doubt) = match traffic.live(cfg) {
        Ok(p) => (p, None),
        // A fresh host in nftables mode: no table yet, and no switch was ever recorded.
        Err(Doubt::TableMissing) if st.live.is_none() => (None, None),
        Err(d) => (None, Some(d)),
    };
    let live_idx = include_port.and_then(|p| cfg.slots.iter().position(|s| s.port == p));
    if let (Some(p), None) = (include_port, live_idx) {
        log::warn!(
            "{} points at port {p}, which is no slot; treating no slot as live",
            traffic.truth(cfg)
        );
    }
    let live = live_idx.map(|i| &cfg.slots[i]);
    let idle = after(cfg, live_idx);
    if doubt.is_none() {
        if let Some(recorded) = st.live.as_deref() {
            if Some(recorded) != live.map(|s| s.name.as_str()) {
                doubt = Some(Doubt::StateDisagrees {
                    recorded: recorded.to_string(),
                    include: live.map(|s| s.name.clone()),
                });
            }
        }
    }
    Ok(Roles {
        live,
        idle,
        include_port,
        doubt,
        recorded: st.live.as_deref().and_then(|n| cfg.slot(n).ok()),
    })
}

impl<'a> Roles<'a> {
    /// The slot a binary acts on: `--slot NAME` if given, else the idle slot.
    pub fn target(&self, cfg: &'a Config, flag: Option<&str>) -> Result<&'a Slot> {
        match flag {
            Some(name) => cfg.slot(name),
            None => Ok(self.idle),
        }
    }

    /// True if `slot` is the live one.
    pub fn is_live(&self, slot: &Slot) -> bool {
        self.live.is_some_and(|l| l.name == slot.name)
    }

    /// `Ok` when nonstop knows what nginx serves, or when not knowing cannot hurt (no slot
    /// runs an app), or when `force` says to trust the include; else the refusal of `command`,
    /// naming the repair. `force_flag`: the command takes `--force`.
    pub fn certain(
        &self,
        sup: &dyn crate::supervisor::Supervisor,
        cfg: &Config,
        command: &str,
        force: bool,
        force_flag: bool,
    ) -> Result<()> {
        let Some(doubt) = &self.doubt else {
            return Ok(());
        };
        let what = doubt.describe(cfg);
        if *doubt == Doubt::NftMissing {
            // Neither --force nor an empty host helps: no table can be read or loaded.
            return Err(Error::refused(
                Refusal::Doubt {
                    command: command.into(),
                },
                format!("refusing to {command}: {what}"),
            ));
        }
        if force {
            log::warn!(
                "--force: acting on what {} names although {what}",
                crate::traffic::of(cfg).truth(cfg)
            );
            return Ok(());
        }
        let running: Vec<&str> = cfg
            .slots
            .iter()
            .filter(|s| crate::supervisor::owner(sup, cfg, s).is_some())
            .map(|s| s.name.as_str())
            .collect();
        if running.is_empty() {
            log::warn!("{what}; no slot runs an app, so there is nothing nginx could be serving to protect");
            return Ok(());
        }
        let repair = self.repair(cfg, doubt, &running);
        Err(Error::refused(
            Refusal::Doubt {
                command: command.into(),
            },
            format!(
                "refusing to {command}: cannot tell which slot nginx serves: {what}; {repair}{}",
                if force_flag {
                    format!(
                        ", or give --force to trust {}",
                        crate::traffic::of(cfg).truth(cfg)
                    )
                } else {
                    String::new()
                }
            ),
        ))
    }
    /// The repair of `doubt` as a hint that works as printed: `run `nonstop switch --slot
    /// NAME` …`, naming the slot the last completed switch recorded while it runs an app (else
    /// the one running slot, else every running slot). `running`: the slots that run an app.
    pub fn repair(&self, cfg: &Config, doubt: &Doubt, running: &[&str]) -> String {
        if *doubt == Doubt::NftMissing {
            return "install nftables".into();
        }
        let recorded = self
            .recorded
            .map(|s| s.name.as_str())
            .filter(|r| running.contains(r));
        let name = match (recorded, running) {
            (Some(r), _) => format!("`{SWITCH} --slot {r}`"),
            (None, [one]) => format!("`{SWITCH} --slot {one}`"),
            (None, many) => format!("`{SWITCH} --slot NAME` (NAME one of: {})", many.join(", ")),
        };
        match doubt {
            Doubt::StateDisagrees {
                recorded,
                include: Some(inc),
            } => format!(
                "run `{SWITCH} --slot {inc}` to record what {} names, or `{SWITCH} --slot {recorded}` to go back",
                crate::traffic::of(cfg).truth(cfg)
            ),
            Doubt::StateDisagrees { recorded, .. } if running.contains(&recorded.as_str()) => {
                format!("run `{SWITCH} --slot {recorded}` to go back to it")
            }
            _ => format!(
                "run {name} to make that slot live{}",
                match cfg.traffic.via {
                    crate::traffic::Via::NginxReload => " and reload nginx",
                    crate::traffic::Via::Nftables => " and load the table again",
                }
            ),
        }
    }
}

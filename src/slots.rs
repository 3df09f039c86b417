//! Which slot is live and which is idle. The nginx include is the truth: the live slot is the
//! one whose port it names. The idle slot is the next one after the live slot (wrapping), or
//! the first slot when there is no include yet or it names a port that is no slot.

use crate::config::{Config, Slot};
use crate::error::Result;
use crate::nginx;
use crate::state::State;

/// The roles of the slots right now.
#[derive(Debug, Clone)]
pub struct Roles<'a> {
    /// The slot nginx sends traffic to, if any.
    pub live: Option<&'a Slot>,
    /// The slot the next deployment goes to.
    pub idle: &'a Slot,
    /// The port the include names, if there is an include.
    pub include_port: Option<u16>,
}

/// Read the include and work out the roles; warns where the state file disagrees.
pub fn roles<'a>(cfg: &'a Config, st: &State) -> Result<Roles<'a>> {
    let include_port = nginx::read_include_port(cfg)?;
    let live_idx = include_port.and_then(|p| cfg.slots.iter().position(|s| s.port == p));
    if let (Some(p), None) = (include_port, live_idx) {
        log::warn!(
            "{} points at port {p}, which is no slot; treating no slot as live",
            cfg.nginx.include.display()
        );
    }
    let live = live_idx.map(|i| &cfg.slots[i]);
    let idle = &cfg.slots[live_idx.map_or(0, |i| (i + 1) % cfg.slots.len())];
    let recorded = st.live.as_deref();
    if recorded.is_some() && recorded != live.map(|s| s.name.as_str()) {
        log::warn!(
            "state file says {} is live but the nginx include says {}; trusting the include",
            recorded.unwrap_or("none"),
            live.map_or("none", |s| s.name.as_str())
        );
    }
    Ok(Roles {
        live,
        idle,
        include_port,
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
}

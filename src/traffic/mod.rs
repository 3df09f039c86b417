//! How requests reach the live slot(s): the seam between the stages and the two ways of
//! steering traffic, chosen once from `traffic.via`.
//!
//! - [`reload`] (`nginx-reload`, the default): the include (`set $service_url …;`) and, in
//!   balanced mode, the upstream file name the slots; a change rewrites them and reloads nginx
//!   ([`crate::nginx::apply`]). The files are the truth.
//! - [`nft`] (`nftables`): nginx proxies to one front port (`traffic.port`) and never reloads;
//!   an nftables table of nonstop's own (`nonstop_<app>`) DNATs each new connection to the live
//!   slot, or spreads them over the slots in rotation. A change is one atomic `nft -f`
//!   transaction, checked by the kernel and confirmed after. The table is the truth.
//!
//! The stages call only [`Traffic`]: `switch`, `deploy-second`, canary and drain never touch
//! nginx files or nft themselves.

pub mod nft;
pub mod reload;
pub mod watcher;

use crate::config::Config;
use crate::error::Result;
use crate::nginx::Rotation;
use crate::slots::Doubt;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// `traffic.via`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// Rewrite nginx files and reload nginx.
    #[default]
    NginxReload,
    /// Steer new connections with an nftables DNAT rule; nginx is never reloaded.
    Nftables,
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Via::NginxReload => "nginx-reload",
            Via::Nftables => "nftables",
        })
    }
}

/// One way of steering traffic.
pub trait Traffic: Sync {
    fn via(&self) -> Via;
    /// The live slot's port as the truth says (`None`: no slot), or why it cannot be known.
    fn live(&self, cfg: &Config) -> std::result::Result<Option<u16>, Doubt>;
    /// The rotation now, by slot port in slot order (blue/green: only the live slot is up).
    fn rotation(&self, cfg: &Config) -> Result<Rotation>;
    /// Make `rot` the rotation and, when given, `live` the live port, in one transaction.
    /// `always`: apply even when nothing seems to change (the repair of a doubt). Returns how
    /// long it took.
    fn apply(
        &self,
        cfg: &Config,
        rot: &Rotation,
        live: Option<u16>,
        always: bool,
    ) -> Result<Duration>;
    /// Where the truth is, for messages and `status` (a file, or a table).
    fn truth(&self, cfg: &Config) -> String;
    /// What one [`Traffic::apply`] is called in messages ("in one reload").
    fn change(&self) -> &'static str;
}

/// The rotation by slot, in slot order: each slot's entries in `recorded` (a slot it lacks or
/// lists only `down` is out; one listed more than once is in with the weights of its lines
/// that are up, as nginx balances), or without a record only the `live` slot up (blue/green).
pub fn by_slot(
    cfg: &Config,
    recorded: Option<&[(u16, crate::nginx::Member)]>,
    live: Option<u16>,
) -> Rotation {
    use crate::nginx::Member;
    cfg.slots
        .iter()
        .map(|s| {
            let m = match recorded {
                // nginx takes every `server` line as a server of its own: a slot listed
                // twice gets the traffic of each line that is not `down`.
                Some(entries) => {
                    let ups: Vec<u32> = entries
                        .iter()
                        .filter_map(|(p, m)| match m {
                            Member::Up(w) if *p == s.port => Some(*w),
                            _ => None,
                        })
                        .collect();
                    if ups.is_empty() {
                        Member::Down
                    } else {
                        Member::Up(ups.iter().sum())
                    }
                }
                None if live == Some(s.port) => Member::Up(1),
                None => Member::Down,
            };
            (s.port, m)
        })
        .collect()
}

/// The traffic seam for `cfg`.
pub fn of(cfg: &Config) -> &'static dyn Traffic {
    match cfg.traffic.via {
        Via::NginxReload => &reload::Reload,
        Via::Nftables => &nft::Nft,
    }
}

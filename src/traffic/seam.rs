//! What the stages call and both ways of steering implement: the [`Traffic`] trait, the
//! rotation by slot it reads and applies, and [`Doubt`], why the live slot cannot be known.

use super::Via;
use crate::config::Config;
use crate::error::Result;
use crate::nginx::Rotation;
use std::path::PathBuf;
use std::time::Duration;

/// Why nonstop cannot be sure which slot nginx serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Doubt {
    /// The include does not exist: nginx serves whatever it loaded before it was deleted.
    IncludeMissing,
    /// The include cannot be read as nginx reads it (or at all).
    IncludeUnreadable(String),
    /// The include has no `set $VARIABLE …;`.
    NoSet,
    /// A file nonstop owns changed after nginx last loaded its configuration.
    NotLoaded(PathBuf),
    /// nftables mode: no `nft` program on this host, so the table can be neither read nor
    /// changed.
    NftMissing,
    /// nftables mode: nonstop's table is not loaded (after a reboot, before its boot unit).
    TableMissing,
    /// nftables mode: the table cannot be listed or carries no state of nonstop's.
    TableUnreadable(String),
    /// nftables mode: the table's rule is not the one its recorded state means.
    TableDiffers(String),
    /// The state file records another live slot than the include names.
    StateDisagrees {
        recorded: String,
        include: Option<String>,
    },
}

/// One way of steering traffic.
pub trait Traffic: Send + Sync {
    fn via(&self) -> Via;
    /// The run that uses this seam took (`true`) or released (`false`) its lock: what the seam
    /// keeps for the run (nftables: the table's listing) is kept only while the lock is held.
    fn hold(&self, _held: bool) {}
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

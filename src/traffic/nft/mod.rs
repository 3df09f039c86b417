//! `traffic.via: nftables`: nginx proxies every request to one front port on 127.0.0.1
//! (`traffic.port`, where nothing listens) and is never reloaded by a deploy; nonstop owns one
//! table, `ip nonstop_<app>`, whose nat output chain DNATs each new connection to that port:
//! to the live slot (blue/green), or spread over the slots in rotation with their weights
//! (balanced, canary: `numgen random mod TOTAL map { … }`). Connections already established
//! keep their slot (conntrack), so in-flight requests finish where they started, and no idle
//! keep-alive connection of nginx's is closed.
//!
//! Every change is one `nft -f` transaction (`add table`, `delete table`, the new table: atomic,
//! no moment without a rule), checked by the kernel as a whole (it commits all of it or none),
//! and confirmed after: the objects the kernel echoes for the committed batch (`nft -e`, printed
//! from the kernel's own notifications) must be the table, chain and rule meant; when nft echoes
//! nothing or something else, the table is listed and its rule must be the rule meant. nonstop
//! never touches another table and never flushes the ruleset. A run lists the table once (its
//! reconcile) and, while it holds its lock, reuses that listing until it changes the table: a
//! switch runs `nft` twice, one listing and one transaction. The table's comment records the state (`live=…`, the rotation),
//! so the table is the truth, as the include is in reload mode; a table that is missing (after
//! a reboot, before the boot unit ran) or whose rule is not the one its comment describes is a
//! [`Doubt`], and `switch --slot NAME` repairs it. The last ruleset applied is kept in
//! `state_dir/traffic.nft` and loaded at boot, before nginx, by a unit the supervisor installs.
//!
//! **This is the only module that runs `nft`** (argv lists; every value in a rule is a port or
//! 127.0.0.1, and the table name is checked).
//!
//! One file per concern: [`rules`] (the table as text and its reading back), [`run`] (running
//! nft, listing the table, the root helper's sudo line), [`steer`] (the root helper); here,
//! the [`Traffic`] on top of them.

pub mod rules;
pub mod run;
pub mod steer;

pub use rules::{render, rule, ruleset_path, table_name, Steering};
pub use run::{installed, nft_bin, want_path, Missing, NFT_MISSING};
pub use steer::{check_steering, seed_want, steer};

use super::{Doubt, Traffic, Via};
use crate::config::Config;
use crate::error::{failed, Context, Result};
use crate::fsx;
use crate::nginx::Rotation;
use rules::{comment, echoed, front, parse_listing, targets};
use run::{helper, list_table, missing, nft, nft_commit, root, steered, sudo_steer, unlisted};
use std::time::{Duration, Instant};
use steer::apply_through_helper;
pub(super) use steer::{apply_entry, recorded, steered_entry};

/// See the module doc. One per run ([`crate::run::Run`]): it keeps the run's listing.
pub struct Nft {
    /// The run's supervisor (it loads the table at boot); `None`: the one `app.supervisor`
    /// chooses.
    sup: Option<&'static dyn crate::supervisor::Supervisor>,
    /// The table as this run listed it, `(table, listing)`: kept only while the run holds its
    /// lock ([`Traffic::hold`]), and forgotten before any change.
    snapshot: std::sync::Mutex<Option<(String, Option<String>)>>,
    /// The run holds its lock.
    held: std::sync::atomic::AtomicBool,
}

impl Nft {
    /// The seam for a run whose supervisor is `sup`.
    pub fn new(sup: Option<&'static dyn crate::supervisor::Supervisor>) -> Nft {
        Nft {
            sup,
            snapshot: std::sync::Mutex::new(None),
            held: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl Nft {
    /// Forget the run's listing: the next [`Nft::listing`] asks the kernel.
    pub(super) fn forget(&self) {
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The table as loaded now: `Ok(None)` when it does not exist. A run that holds its lock
    /// lists the table once: no one else changes it meanwhile but by hand, and every change of
    /// nonstop's own ([`Nft::apply`]) forgets the listing first. A run without the lock
    /// (`status`, `validate`) always asks the kernel.
    pub(super) fn listing(&self, cfg: &Config) -> std::result::Result<Option<String>, Doubt> {
        match helper(cfg) {
            Some(e) if !root() => {
                let out = sudo_steer(&e, &["--show"])
                    .map_err(|e| Doubt::TableUnreadable(e.to_string()))?;
                return Ok(Some(out).filter(|o| !o.trim().is_empty()));
            }
            _ => {}
        }
        if !installed() {
            return Err(Doubt::NftMissing);
        }
        let table = table_name(cfg);
        let held = self.held.load(std::sync::atomic::Ordering::Relaxed);
        if let (true, Some((t, text))) = (
            held,
            self.snapshot
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref(),
        ) {
            if *t == table {
                return Ok(text.clone());
            }
        }
        let text = list_table(&table)?;
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) =
            held.then(|| (table, text.clone()));
        Ok(text)
    }

    /// Read the table: what its comment says, checked against its rule.
    pub fn read(&self, cfg: &Config) -> std::result::Result<Steering, Doubt> {
        let text = self.listing(cfg)?.ok_or(Doubt::TableMissing)?;
        parse_listing(&text, front(cfg), cfg.balanced())
    }
}

/// Whether `table` is loaded now (root): `Err` when nft cannot say.
pub(super) fn table_loaded(table: &str) -> Result<bool> {
    list_table(table).map(|t| t.is_some()).map_err(unlisted)
}

/// The `nft` program for the watcher's `nft monitor`.
pub(super) fn nft_program() -> Result<String> {
    nft_bin().map_err(|_| failed(NFT_MISSING))
}

impl Traffic for Nft {
    fn via(&self) -> Via {
        Via::Nftables
    }

    fn hold(&self, held: bool) {
        self.forget();
        self.held.store(held, std::sync::atomic::Ordering::Relaxed);
    }

    fn live(&self, cfg: &Config) -> std::result::Result<Option<u16>, Doubt> {
        self.read(cfg).map(|s| s.live)
    }

    fn rotation(&self, cfg: &Config) -> Result<Rotation> {
        let recorded = self.read(cfg).ok();
        let live = recorded.as_ref().and_then(|s| s.live);
        let entries = recorded
            .as_ref()
            .filter(|_| cfg.balanced())
            .map(|r| r.rotation.as_slice());
        Ok(super::by_slot(cfg, entries, live))
    }

    fn apply(
        &self,
        cfg: &Config,
        rot: &Rotation,
        live: Option<u16>,
        always: bool,
    ) -> Result<Duration> {
        let t0 = Instant::now();
        nft_bin().map_err(|_| missing())?;
        let before = self.read(cfg).ok();
        // `live: None` keeps the table's live slot; blue/green's rotation is that slot alone.
        let live = live.or(before.as_ref().and_then(|b| b.live));
        let want = Steering {
            live,
            rotation: if cfg.balanced() {
                rot.clone()
            } else {
                super::by_slot(cfg, None, live)
            },
        };
        if !always && before.as_ref() == Some(&want) {
            log::info!(
                "table ip {} already steers as wanted; nothing to change",
                table_name(cfg)
            );
            return Ok(t0.elapsed());
        }
        if let Some(e) = helper(cfg) {
            // A change of nonstop's own: the run's listing is forgotten first.
            self.forget();
            return apply_through_helper(cfg, &e, &want, t0);
        }
        let text = render(cfg, &want);
        fsx::create_dirs(&cfg.state_dir)
            .context(format!("cannot create {}", cfg.state_dir.display()))?;
        let next = cfg.state_dir.join("traffic.nft.next");
        // Read by nft at once, then kept for boot: a record, not waited on the disk for.
        fsx::write_atomic_record(&next, text.as_bytes(), 0o644)?;
        let next_s = next.to_string_lossy().into_owned();
        // No separate `nft -c`: the kernel checks the batch and commits all of it or none, and
        // a check is a kernel transaction of its own (as long as the change itself).
        // Whatever the command said, the kernel's table is the truth: nft killed or failing
        // after its commit has still moved traffic, and one failing before has changed nothing.
        // Its echo confirms what the kernel committed; without one that matches, and after any
        // failure, the table is listed from the kernel.
        self.forget();
        let ran = nft_commit(&next_s);
        let now = match &ran {
            Ok(echo) if echoed(cfg, &want, echo) => Ok(want.clone()),
            _ => self.read(cfg),
        };
        match (&ran, &now) {
            (Ok(_), Ok(n)) if *n == want => {}
            (Err(e), Ok(n)) if *n == want => log::warn!(
                "{e}, but the kernel holds the table meant: table ip {} is applied",
                table_name(cfg)
            ),
            (Err(e), _) => {
                let _ = std::fs::remove_file(&next);
                let what = match &now {
                    Ok(n) if Some(n) == before.as_ref() => {
                        "the table is as before: nothing changed".to_string()
                    }
                    Err(Doubt::TableMissing) if before.is_none() => {
                        "there is still no table: nothing changed".to_string()
                    }
                    Ok(n) => format!("the table now says {}", comment(n)),
                    Err(d) => d.describe(cfg),
                };
                return Err(failed(format!("{e}; read back from the kernel: {what}")));
            }
            (Ok(_), other) => {
                let why = match other {
                    Ok(now) => format!("it says {}", comment(now)),
                    Err(d) => format!("{d:?}"),
                };
                // Put the previous table back (itself one transaction), if there was one.
                self.forget();
                let back = before
                    .as_ref()
                    .map(|b| {
                        let _ = fsx::write_atomic(&next, render(cfg, b).as_bytes(), 0o644);
                        nft(&["-f", &next_s]).is_ok()
                    })
                    .unwrap_or(false);
                let _ = std::fs::remove_file(&next);
                return Err(failed(format!(
                    "table ip {} is not what was applied ({why}){}",
                    table_name(cfg),
                    if back {
                        "; the previous table is back"
                    } else {
                        ""
                    }
                )));
            }
        }
        // Kept for the boot unit; the kernel table is the truth, so a failure is a warning.
        if let Err(e) = std::fs::rename(&next, ruleset_path(cfg)) {
            log::warn!(
                "could not keep {} for boot: {e}",
                ruleset_path(cfg).display()
            );
        }
        if let Some(e) = steered(cfg) {
            // Set up on this host (a root deploy sets itself up): setup's steering unit loads
            // the table at boot and again after a ruleset flush, from steer.want.
            if let Err(err) = fsx::write_atomic_record(
                &want_path(&e.state_dir),
                format!("{}\n", comment(&want)).as_bytes(),
                0o644,
            ) {
                log::warn!(
                    "the table will not come back by itself after a flush or a reboot: {err}"
                );
            }
            return Ok(done(cfg, &want, t0));
        }
        let boot = [
            // Traffic has moved: nothing here fails the change.
            nft_bin().unwrap_or_else(|_| "/usr/sbin/nft".into()),
            "-f".to_string(),
            ruleset_path(cfg).to_string_lossy().into_owned(),
        ];
        let sup = self
            .sup
            .unwrap_or_else(|| crate::supervisor::by_kind(crate::supervisor::choose(cfg)));
        match sup.boot_command(cfg, "traffic", &boot, "nginx.service") {
            Ok(true) => {}
            Ok(false) => log::debug!(
                "no supervisor to load {} at boot: after a reboot, `nonstop switch --slot NAME` loads the table",
                ruleset_path(cfg).display()
            ),
            Err(e) => log::warn!("the table will not come back at boot by itself: {e}"),
        }
        Ok(done(cfg, &want, t0))
    }

    fn truth(&self, cfg: &Config) -> String {
        format!("nftables table ip {}", table_name(cfg))
    }

    fn change(&self) -> &'static str {
        "nft transaction"
    }
}

/// Log a change done and say how long it took.
fn done(cfg: &Config, want: &Steering, t0: Instant) -> Duration {
    log::info!(
            "table ip {}: new connections to 127.0.0.1:{} now go to {} ({} in one nft transaction; nginx not reloaded)",
            table_name(cfg),
            front(cfg),
            match targets(cfg, want).as_slice() {
                [] => "nothing".to_string(),
                t => t
                    .iter()
                    .map(|(p, w)| if t.len() > 1 { format!("{p} (weight {w})") } else { p.to_string() })
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            crate::log::human(t0.elapsed())
        );
    t0.elapsed()
}

#[cfg(test)]
mod tests;

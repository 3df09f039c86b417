//! `nonstop steer --app APP --watch` (root, the main process of setup's steering unit
//! `nonstop-<app>-traffic.service`): the app's table comes back by itself whatever removed it.
//!
//! A ruleset flush removes every table, nonstop's with the others: `nftables.service` on start,
//! restart, reload and stop (Debian's `/etc/nftables.conf` begins with `flush ruleset`), a
//! firewalld or ufw reload that rebuilds the ruleset, `nft flush ruleset` by hand. systemd
//! ordering covers only the first of these, so the unit watches the kernel instead: it runs
//! `nft monitor` (the kernel's own notifications, one line per object, each batch closed by
//! `# new generation N by process P (NAME)`), and when a batch deleted the app's table and
//! the table is still gone after it, it loads it again from the recorded steering (what
//! `--boot` loads: `state_dir/steer.want`, checked against the registry). It also looks every
//! [`RECHECK`] in case a notification was lost (the kernel drops them when a reader lags).
//!
//! It restores a table that is **missing**, never one that differs: nonstop's own changes
//! replace the table in one transaction (it is never missing in between), so a missing table
//! is always someone else's doing, and loading the recorded steering cannot undo a switch. A
//! table changed by hand (a rule inserted) is left as it is: every changing command refuses
//! on it and `status` shows it as a doubt, until `nonstop switch --slot NAME` repairs it.
//!
//! Each restore is recorded in the app's history as a `restore` event (when, how long, what
//! removed the table), which `nonstop status` shows.

use crate::error::{failed, Context, Result};
use crate::registry::Entry;
use crate::state::{Action, Event, Outcome};
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

/// How often the table is looked at without a notification.
pub const RECHECK: Duration = Duration::from_secs(5);

/// What one batch of notifications says about the app's table.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The table was deleted in this batch (it may have been added again in the same one).
    pub deleted: bool,
    /// Who committed the batch: `process P (NAME)`, from its `# new generation` line.
    pub by: Option<String>,
}

/// Reads `nft monitor`'s lines for `table`: [`Batches::line`] returns a [`Batch`] at the end of
/// every batch that touched the table.
#[derive(Debug)]
pub struct Batches {
    table: String,
    touched: bool,
    deleted: bool,
}

impl Batches {
    pub fn new(table: &str) -> Batches {
        Batches {
            table: table.to_string(),
            touched: false,
            deleted: false,
        }
    }

    /// Feed one line; `Some` when it closed a batch that touched the table.
    pub fn line(&mut self, line: &str) -> Option<Batch> {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("# new generation ") {
            let b = Batch {
                deleted: self.deleted,
                by: rest.split_once(" by ").map(|(_, by)| by.trim().to_string()),
            };
            let touched = std::mem::take(&mut self.touched);
            self.deleted = false;
            return touched.then_some(b);
        }
        let words: Vec<&str> = l.split_whitespace().collect();
        // `VERB OBJECT ip TABLE …` (`delete table ip nonstop_x`, `add rule ip nonstop_x out …`).
        if words.len() >= 4 && words[2] == "ip" && words[3] == self.table {
            self.touched = true;
            if words[0] == "delete" && words[1] == "table" {
                self.deleted = true;
            }
        }
        None
    }
}

/// The watcher's loop: see the module doc. Returns only on an error (the unit starts it again).
pub fn watch(app: &str) -> Result<()> {
    let (e, front) = super::nft::steered_entry(app)?;
    watch_entry(&e, front, &AtomicBool::new(false))
}

/// [`watch`] for a registry entry, until `stop` is set (looked at every 100 ms).
pub fn watch_entry(e: &Entry, front: u16, stop: &AtomicBool) -> Result<()> {
    log::info!(
        "watching the ruleset: table ip {} is loaded again whenever it disappears",
        e.table
    );
    let nft = super::nft::nft_program()?;
    let mut child = Command::new(&nft)
        .arg("monitor")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context(format!("cannot run `{nft} monitor`"))?;
    let out = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    let table = e.table.clone();
    std::thread::spawn(move || {
        let mut batches = Batches::new(&table);
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if let Some(b) = batches.line(&line) {
                if tx.send(b).is_err() {
                    break;
                }
            }
        }
    });
    // Listening first, then the first look: a flush between the two is not missed.
    restore_if_missing(e, front, None);
    let mut looked = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(());
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(b) if b.deleted => {
                restore_if_missing(e, front, Some(&b));
                looked = Instant::now();
            }
            Ok(_) => {}
            Err(mpsc::RecvTimeoutError::Timeout) if looked.elapsed() >= RECHECK => {
                restore_if_missing(e, front, None);
                looked = Instant::now();
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().ok();
                return Err(failed(format!(
                    "`{nft} monitor` ended ({}): the unit starts the watch again",
                    status.map_or("no status".into(), |s| s.to_string())
                )));
            }
        }
    }
}

/// Load `e`'s table from its recorded steering when it is not loaded; record it in the history.
/// A failure is logged (and recorded) and tried again at the next notification or check.
fn restore_if_missing(e: &Entry, front: u16, batch: Option<&Batch>) {
    let seen = Instant::now();
    let at = SystemTime::now();
    let want = match super::nft::table_loaded(&e.table).and_then(|loaded| {
        if loaded {
            Ok(None)
        } else {
            super::nft::recorded(e)
        }
    }) {
        Ok(Some(want)) => want,
        Ok(None) => return,
        Err(err) => {
            log::error!(
                "cannot tell whether table ip {} needs loading again: {err}",
                e.table
            );
            return;
        }
    };
    let removed = match batch.and_then(|b| b.by.as_deref()) {
        Some(by) => format!(
            "table ip {} was deleted at {} by {by} (a ruleset flush: nftables.service, firewalld, ufw or `nft flush ruleset`)",
            e.table,
            crate::log::utc_millis(at)
        ),
        None => format!(
            "table ip {} was found missing at {}",
            e.table,
            crate::log::utc_millis(at)
        ),
    };
    let r = super::nft::apply_entry(e, front, &want);
    let took = seen.elapsed();
    match &r {
        Ok(()) => log::warn!(
            "{removed}: loaded it again in {} (new connections to 127.0.0.1:{front} reach port {} again)",
            crate::log::human(took),
            want.live.map_or("none".into(), |p| p.to_string())
        ),
        Err(err) => log::error!("{removed}: cannot load it again: {err}"),
    }
    let slot = want
        .live
        .and_then(|p| e.slots.iter().find(|s| s.port == p))
        .map_or(String::new(), |s| s.name.clone());
    record(e, &slot, took, Outcome::of(&r), removed);
}

/// Append the `restore` event to the app's history: under the app's lock (waited for in the
/// background while a deploy holds it), the state file given back to the state folder's owner.
fn record(e: &Entry, slot: &str, took: Duration, outcome: Outcome, note: String) {
    let ev = Event {
        time: crate::log::utc_millis(SystemTime::now()),
        action: Action::Restore,
        slot: slot.to_string(),
        outcome,
        duration_ms: took.as_millis() as u64,
        by: Some("nonstop steer --watch".into()),
        note: Some(note),
        ..Default::default()
    };
    let dir = e.state_dir.clone();
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(3600);
        // A lock file root created would lock the hook user out: without one (nothing ever
        // ran), nothing else writes the state either.
        let lock_file = dir.join("lock");
        loop {
            let lock = if lock_file.exists() {
                match crate::lock::acquire(&dir, "nonstop steer --watch") {
                    Ok(l) => Some(l),
                    Err(crate::error::Error::LockHeld { .. }) if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(200));
                        continue;
                    }
                    Err(err) => {
                        log::warn!("cannot record the restore in the history: {err}");
                        return;
                    }
                }
            } else {
                None
            };
            let r = crate::state::update(&dir, |s| s.record(ev));
            if let Err(err) = &r {
                log::warn!("cannot record the restore in the history: {err}");
            }
            give_back(&dir);
            drop(lock);
            return;
        }
    });
}

/// The state file to the state folder's owner (root wrote it; the hook user writes it next).
fn give_back(dir: &std::path::Path) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(m) = std::fs::metadata(dir) {
        let _ = std::os::unix::fs::lchown(crate::state::path(dir), Some(m.uid()), Some(m.gid()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_that_deleted_the_table_is_told_from_nonstops_own_replace() {
        let mut b = Batches::new("nonstop_shop_api");
        let feed = |b: &mut Batches, text: &str| -> Vec<Batch> {
            text.lines().filter_map(|l| b.line(l)).collect()
        };
        // nonstop's own switch (nft 1.0.6's notifications): deleted and added in one batch.
        let own = "add table ip nonstop_shop_api\ndelete table ip nonstop_shop_api\nadd table ip nonstop_shop_api\n\
                   add chain ip nonstop_shop_api out { type nat hook output priority -100; policy accept; }\n\
                   add rule ip nonstop_shop_api out ip daddr 127.0.0.1 tcp dport 18500 dnat to 127.0.0.1:9082\n\
                   # new generation 2 by process 17958 (nft)\n";
        assert_eq!(
            feed(&mut b, own),
            vec![Batch {
                deleted: true,
                by: Some("process 17958 (nft)".into())
            }]
        );
        // Another table, another app's table (a prefix of the name): nothing.
        let other = "add table inet filter\ndelete table ip nonstop_shop\n# new generation 3 by process 1 (nft)\n";
        assert!(feed(&mut b, other).is_empty());
        // A rule inserted by hand: touched, not deleted.
        let hand = "insert rule ip nonstop_shop_api out tcp dport 18500 redirect to :9081\n# new generation 4 by process 9 (nft)\n";
        assert_eq!(
            feed(&mut b, hand),
            vec![Batch {
                deleted: false,
                by: Some("process 9 (nft)".into())
            }]
        );
        // `nft flush ruleset`: the rules, the chain, the table, the others.
        let flush = "delete rule ip nonstop_shop_api out handle 3\ndelete chain ip nonstop_shop_api out\n\
                     delete table ip nonstop_shop_api\ndelete table inet filter\n# new generation 5 by process 20 (nft)\n";
        assert!(feed(&mut b, flush)[0].deleted);
    }
}

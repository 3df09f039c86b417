//! The run lock: an exclusive, non-blocking flock on `state_dir/lock`, held for the whole run by
//! every binary that changes something. A second run fails at once with exit 3 and is told who
//! holds the lock. The kernel releases it when the holder exits, however it exits.
//!
//! A command that runs several stages (`nonstop deploy`, `nonstop rollback`) takes the lock once
//! with [`acquire_spanning`]; while that guard lives, the stages' own [`acquire`] calls in the
//! same process for the same `state_dir` return a guard that holds nothing, so the stages run
//! unchanged and no other run can slip in between them.
//!
//! [`held`] numbers the runs: what a run may keep for its own duration (the nftables table it
//! listed) is kept under that number, and a lock dropped is never held again.

use crate::error::{failed, Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Lock files this process holds through [`acquire_spanning`].
static SPANNING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Lock files this process holds the flock of now, each with its run's number ([`held`]).
static HELD: Mutex<Vec<(PathBuf, u64)>> = Mutex::new(Vec::new());

/// The last run number given out.
static RUNS: AtomicU64 = AtomicU64::new(0);

/// The number of the run that holds `state_dir`'s lock in this process now (the same from the
/// flock's acquire to its release, through nested guards; another for every later acquire), or
/// `None` when this process does not hold it.
pub fn held(state_dir: &Path) -> Option<u64> {
    let path = state_dir.join("lock");
    HELD.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, run)| *run)
}

/// Held until dropped.
#[derive(Debug)]
pub struct Lock {
    /// `None` for a guard nested inside an [`acquire_spanning`] one: it holds nothing.
    _file: Option<File>,
    pub path: PathBuf,
    spanning: bool,
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Before the file (and so the flock) is closed.
        if self._file.is_some() {
            let mut held = HELD.lock().unwrap_or_else(|e| e.into_inner());
            held.retain(|(p, _)| p != &self.path);
        }
        if self.spanning {
            let mut held = SPANNING.lock().unwrap_or_else(|e| e.into_inner());
            held.retain(|p| p != &self.path);
        }
    }
}

/// Take the lock for a command that runs several stages, each of which calls [`acquire`]
/// itself: until the returned guard is dropped, those nested calls succeed without locking
/// again (in this process only; every other run still gets exit 3).
pub fn acquire_spanning(state_dir: &Path, binary: &str) -> Result<Lock> {
    let mut lock = acquire(state_dir, binary)?;
    lock.spanning = true;
    SPANNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(lock.path.clone());
    Ok(lock)
}

/// Take the lock for `binary`, or fail with [`Error::LockHeld`].
pub fn acquire(state_dir: &Path, binary: &str) -> Result<Lock> {
    crate::fsx::create_dirs(state_dir)
        .map_err(|e| failed(format!("cannot create {}: {e}", state_dir.display())))?;
    let path = state_dir.join("lock");
    if SPANNING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&path)
    {
        log::debug!("{binary}: {} is held by this run already", path.display());
        return Ok(Lock {
            _file: None,
            path,
            spanning: false,
        });
    }
    // O_NOFOLLOW: a symlink planted at the lock's path is refused, never truncated through.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .mode(0o644)
        .open(&path)
        .map_err(|e| failed(format!("cannot open {}: {e}", path.display())))?;
    // 0644 whatever the umask, so that the operator can read who holds it.
    let _ = file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    if let Err(e) = rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        if e == rustix::io::Errno::WOULDBLOCK {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(Error::LockHeld {
                path,
                holder: Some(holder.to_string()).filter(|h| !h.is_empty()),
            });
        }
        return Err(failed(format!("cannot lock {}: {e}", path.display())));
    }
    let me = format!(
        "{binary} pid {} since {}",
        std::process::id(),
        crate::log::utc_millis(std::time::SystemTime::now())
    );
    let _ = file.set_len(0);
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.write_all(me.as_bytes());
    HELD.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((path.clone(), RUNS.fetch_add(1, Ordering::Relaxed) + 1));
    Ok(Lock {
        _file: Some(file),
        path,
        spanning: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_is_refused_with_exit_3() {
        let d = tempfile::tempdir().unwrap();
        let held = acquire(d.path(), "switch").unwrap();
        let e = acquire(d.path(), "stop").unwrap_err();
        assert_eq!(e.exit_code(), 3);
        assert!(
            matches!(&e, Error::LockHeld { path, holder: Some(h) }
                if *path == d.path().join("lock") && h.starts_with("switch pid ")),
            "{e:?}"
        );
        drop(held);
        acquire(d.path(), "stop").unwrap();
    }

    #[test]
    fn a_symlink_at_the_lock_path_is_refused_not_truncated() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"precious").unwrap();
        std::os::unix::fs::symlink(&victim, d.path().join("lock")).unwrap();
        let e = acquire(d.path(), "stop").unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert_eq!(e.kind(), crate::error::Kind::Failed);
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    }

    #[test]
    fn a_spanning_lock_lets_its_own_stages_in_and_no_one_else() {
        let d = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let outer = acquire_spanning(d.path(), "nonstop deploy").unwrap();
        let inner = acquire(d.path(), "stop").expect("a stage inside the spanning lock");
        drop(inner);
        acquire(d.path(), "start").expect("still held by the spanning guard");
        // Another state_dir is not covered.
        let o = acquire(other.path(), "stop").unwrap();
        assert_eq!(acquire(other.path(), "stop").unwrap_err().exit_code(), 3);
        drop(o);
        // Another process sees the lock held: the file lock is real.
        let text = std::fs::read_to_string(d.path().join("lock")).unwrap();
        assert!(text.contains("nonstop deploy pid"), "{text}");
        drop(outer);
        let again = acquire(d.path(), "stop").unwrap();
        assert_eq!(acquire(d.path(), "start").unwrap_err().exit_code(), 3);
        drop(again);
    }

    #[test]
    fn a_run_keeps_its_number_through_nested_guards_and_a_later_run_gets_another() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(held(d.path()), None);
        let outer = acquire_spanning(d.path(), "nonstop rollback").unwrap();
        let run = held(d.path()).expect("held");
        let inner = acquire(d.path(), "switch").unwrap();
        assert_eq!(held(d.path()), Some(run));
        drop(inner);
        assert_eq!(held(d.path()), Some(run), "the nested guard held nothing");
        drop(outer);
        assert_eq!(held(d.path()), None);
        let again = acquire(d.path(), "switch").unwrap();
        assert!(held(d.path()).is_some_and(|n| n != run));
        drop(again);
        assert_eq!(held(d.path()), None);
    }
}

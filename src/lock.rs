//! The run lock: an exclusive, non-blocking flock on `state_dir/lock`, held for the whole run by
//! every binary that changes something. A second run fails at once with exit 3 and is told who
//! holds the lock. The kernel releases it when the holder exits, however it exits.
//!
//! A run takes it once, through [`crate::run::Run::lock`]: a command that runs several stages
//! (`nonstop deploy`, `nonstop rollback`) takes it first and its stages then run under it. This
//! module keeps nothing in the process: a second run in this process is another run.

use crate::error::{failed, Error, Result};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Held until dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
    pub path: PathBuf,
}

/// Take the lock for `binary`, or fail with [`Error::LockHeld`].
pub fn acquire(state_dir: &Path, binary: &str) -> Result<Lock> {
    crate::fsx::create_dirs(state_dir)
        .map_err(|e| failed(format!("cannot create {}: {e}", state_dir.display())))?;
    let path = state_dir.join("lock");
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
    Ok(Lock { _file: file, path })
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
}

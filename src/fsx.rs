//! Filesystem helpers shared by the modules that write files: atomic replace and log tails.

use crate::error::{Context, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// A temp file name beside `path` that no one can predict: pid, time and a counter.
fn temp_name(dir: &Path, name: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    dir.join(format!(
        ".{name}.nonstop-{}-{nanos:x}{}.tmp",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Replace `path` with `bytes` atomically: a new temp file in the same folder (created with
/// `O_EXCL|O_NOFOLLOW` under an unpredictable name, so nothing planted there is written
/// through), fsync, chmod `mode`, rename over the target, fsync the folder. Readers see the
/// old or the new bytes, never a mix. A symlink at `path` is replaced, never written through.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    write_atomic_owned(path, bytes, mode, None)
}

/// [`write_atomic`], giving the new file `owner` (uid, gid) when set.
pub fn write_atomic_owned(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<()> {
    atomic_io(path, bytes, mode, owner).context(format!("cannot write {}", path.display()))
}

/// [`write_atomic`] for a record whose truth is elsewhere (the state file, the ruleset kept for
/// boot): replaced atomically the same way, without waiting for the disk (no fsync). Readers
/// see the old or the new bytes; after a power loss it may be the old ones (ext4 and xfs write
/// a renamed-over file's data before the rename), never a mix.
pub fn write_atomic_record(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    atomic_io_with(path, mode, None, false, |f| f.write_all(bytes))
        .context(format!("cannot write {}", path.display()))
}

/// [`write_atomic`] for content that is streamed rather than held in memory: `fill` writes the
/// new file (a bundle's zip) through the temp file; on any error the temp file is removed and
/// `path` is untouched.
pub fn write_atomic_with(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    atomic_io_with(path, mode, None, true, fill)
}

fn atomic_io(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> std::io::Result<()> {
    atomic_io_with(path, mode, owner, true, |f| f.write_all(bytes))
}

fn atomic_io_with(
    path: &Path,
    mode: u32,
    owner: Option<(u32, u32)>,
    sync: bool,
    fill: impl FnOnce(&mut File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = temp_name(dir, &name);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .mode(mode)
        .open(&tmp)?;
    let write = || -> std::io::Result<()> {
        fill(&mut f)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&f, Some(uid), Some(gid))?;
        }
        if sync {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if sync {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    };
    let r = write();
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

/// A file's bytes and metadata before nonstop replaced it, to put it back exactly.
#[derive(Debug, Clone)]
pub struct Original {
    pub bytes: Vec<u8>,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: std::time::SystemTime,
}

/// What is at `path` now: `None` if nothing. A symlink (or anything but a regular file) is an
/// error: nonstop owns regular files only and never writes through a link it did not make.
pub fn read_original(path: &Path) -> Result<Option<Original>> {
    use std::os::unix::fs::MetadataExt;
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(crate::error::failed(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    if !meta.file_type().is_file() {
        return Err(crate::error::Error::refused(crate::error::Refusal::NotOurs { path: path.to_path_buf() }, format!(
            "{} is {}, not a regular file: nonstop writes only regular files (point the config at the real file)",
            path.display(),
            if meta.file_type().is_symlink() { "a symlink" } else { "not a file" }
        )));
    }
    let bytes = fs::read(path).context(format!("cannot read {}", path.display()))?;
    Ok(Some(Original {
        bytes,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        mtime: meta.modified().unwrap_or(std::time::UNIX_EPOCH),
    }))
}

/// Replace the file at `path` with `bytes`, keeping the mode and (as root) the owner of
/// `like`, the file it replaces (0644 for a new file). Atomic (see [`write_atomic`]), except
/// when the folder is not writable but the file is (an include owned by the deploy user in
/// root's /etc/nginx/conf.d): then the bytes are written in place with one `pwrite` and a
/// truncate on a descriptor opened with `O_NOFOLLOW`, and fsynced. Returns whether the write
/// was in place.
pub fn replace(path: &Path, bytes: &[u8], like: Option<&Original>) -> Result<bool> {
    let mode = like.map_or(0o644, |o| o.mode);
    let owner = like
        .filter(|o| rustix::process::geteuid().is_root() && o.uid != 0)
        .map(|o| (o.uid, o.gid));
    match atomic_io(path, bytes, mode, owner) {
        Ok(()) => Ok(false),
        Err(e) if like.is_some() && matches!(e.kind(), std::io::ErrorKind::PermissionDenied) => {
            write_in_place(path, bytes).map(|()| true).map_err(|e2| {
                crate::error::failed(format!(
                    "cannot write {}: {e} (its folder), and {e2} (the file itself)",
                    path.display()
                ))
            })
        }
        Err(e) => Err(crate::error::failed(format!(
            "cannot write {}: {e}",
            path.display()
        ))),
    }
}

fn write_in_place(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    f.write_all_at(bytes, 0)?;
    f.set_len(bytes.len() as u64)?;
    f.sync_all()
}

/// Set a file's modification time (to put back the one a restored file had).
pub fn set_mtime(path: &Path, t: std::time::SystemTime) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
        .and_then(|f| f.set_modified(t))
        .context(format!("cannot set the time of {}", path.display()))
}

/// `mkdir -p` with mode 0755 for every folder it creates, whatever the umask: a hardened
/// `umask 027` (which the CodeDeploy agent's unit sources from /etc/profile) must not lock the
/// app user or the operator out of nonstop's folders.
pub fn create_dirs(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dirs(parent)?;
    }
    create_dir(path).or_else(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_dir() {
            Ok(())
        } else {
            Err(e)
        }
    })
}

/// `mkdir` with mode 0755 whatever the umask (fails if it exists).
pub fn create_dir(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().mode(0o755).create(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}

/// The last `n` lines of a text file (reads at most its last 64 KiB). Missing file: empty.
pub fn tail(path: &Path, n: usize) -> Vec<String> {
    let Ok(mut f) = File::open(path) else {
        return vec![];
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(64 * 1024);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.read_to_end(&mut buf).is_err() {
        return vec![];
    }
    let text = String::from_utf8_lossy(&buf);
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(n);
    lines[skip..].iter().map(|l| l.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.inc");
        write_atomic(&p, b"one\n", 0o644).unwrap();
        write_atomic(&p, b"two\n", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two\n");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn a_symlink_is_refused_and_its_target_kept() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("real.inc");
        fs::write(&target, b"keep\n").unwrap();
        let link = d.path().join("x.inc");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = read_original(&link).unwrap_err();
        assert!(
            matches!(&e, crate::error::Error::Refused { refusal: crate::error::Refusal::NotOurs { path }, .. } if *path == link),
            "{e:?}"
        );
        assert!(e.to_string().contains("is a symlink"), "{e}");
        assert!(read_original(&d.path().join("none")).unwrap().is_none());
        // write_atomic replaces the link itself, never the file it points at.
        write_atomic(&link, b"new\n", 0o644).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"keep\n");
        assert!(!fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn replace_keeps_mode_and_restores_time() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x.inc");
        fs::write(&p, b"one\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o640)).unwrap();
        let orig = read_original(&p).unwrap().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!replace(&p, b"two\n", Some(&orig)).unwrap(), "atomic");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o640
        );
        assert!(fs::metadata(&p).unwrap().modified().unwrap() > orig.mtime);
        replace(&p, &orig.bytes, Some(&orig)).unwrap();
        set_mtime(&p, orig.mtime).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"one\n");
        assert_eq!(fs::metadata(&p).unwrap().modified().unwrap(), orig.mtime);
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temp file left"
        );
    }

    #[test]
    fn tail_takes_last_lines() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        fs::write(&p, "a\nb\nc\nd\n").unwrap();
        assert_eq!(tail(&p, 2), vec!["c", "d"]);
        assert!(tail(&d.path().join("none"), 3).is_empty());
    }
}

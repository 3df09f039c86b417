//! The low part of `app.cds` (see [`crate::cds`]): where a release keeps its extracted jar and
//! class-data archive, the JDK a `java` belongs to, whether an archive may be used (the JDK
//! build, size and sha256 it was recorded with), and `run-slot`'s checks of a launch's archive
//! option. Only files and the JDK's own `release` file: the pid-file check and `run-slot` read
//! it without reaching the supervisors.

use crate::error::{failed, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The folder inside a release that holds everything of this module.
pub const DIR: &str = "cds";

pub const APP: &str = "app";

pub const ARCHIVE: &str = "app.jsa";

pub const ARCHIVE_META: &str = "archive.json";

pub const USE: &str = "-XX:SharedArchiveFile=";

/// The extracted twin of a release's jar: `releases/<release>/cds/app/<jar name>`.
pub fn twin(release_jar: &Path) -> Option<PathBuf> {
    Some(
        release_jar
            .parent()?
            .join(DIR)
            .join(APP)
            .join(release_jar.file_name()?),
    )
}

/// True if `arg` (a command-line word) is the extracted twin of `release_jar`: the app a pid
/// file names runs either.
pub fn runs_twin(arg: &str, release_jar: &Path) -> bool {
    twin(release_jar).is_some_and(|t| t.as_os_str() == arg)
}

/// The JDK a `java` binary belongs to, from its `release` file (no JVM is started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jdk {
    pub home: PathBuf,
    pub version: String,
    pub major: u32,
    /// What must match between the JVM that made an archive and the one that uses it: home,
    /// version and the libjvm.so's size and time (a rebuilt package at the same path).
    pub build: String,
}

impl Jdk {
    /// The JDK of `java` (symlinks resolved), or why it cannot be told.
    pub fn of(java: &Path) -> std::result::Result<Jdk, String> {
        let real = fs::canonicalize(java).map_err(|e| format!("{}: {e}", java.display()))?;
        let home = real
            .parent()
            .and_then(Path::parent)
            .ok_or_else(|| format!("{} is not in a JDK's bin/", real.display()))?
            .to_path_buf();
        let text = fs::read_to_string(home.join("release"))
            .map_err(|e| format!("cannot read {}: {e}", home.join("release").display()))?;
        let version = text
            .lines()
            .find_map(|l| l.strip_prefix("JAVA_VERSION="))
            .map(|v| v.trim().trim_matches('"').to_string())
            .ok_or_else(|| format!("{} names no JAVA_VERSION", home.join("release").display()))?;
        let mut parts = version.split(['.', '-', '+']);
        let major = match parts.next().and_then(|p| p.parse::<u32>().ok()) {
            Some(1) => parts.next().and_then(|p| p.parse().ok()).unwrap_or(1),
            Some(m) => m,
            None => return Err(format!("cannot read the JDK version {version:?}")),
        };
        let libjvm = home.join("lib/server/libjvm.so");
        let stamp = fs::metadata(&libjvm)
            .map(|m| {
                let t = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_secs());
                format!("libjvm {} bytes, mtime {t}", m.len())
            })
            .unwrap_or_else(|_| "no lib/server/libjvm.so".into());
        Ok(Jdk {
            build: format!("{} {version} ({stamp})", home.display()),
            home,
            version,
            major,
        })
    }
}

/// How an archive was made: `cds/archive.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArchiveMeta {
    /// [`Jdk::build`] of the JVM that dumped it.
    pub jdk: String,
    pub size: u64,
    pub sha256: String,
    pub dumped_at: String,
    pub dump_ms: u64,
}

pub fn read_json<T: for<'de> Deserialize<'de>>(p: &Path) -> Option<T> {
    if !regular(p) {
        return None;
    }
    serde_json::from_slice(&fs::read(p).ok()?).ok()
}

pub fn sha256_of(p: &Path) -> std::io::Result<String> {
    let mut f = fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The archive in `dir` if this JDK build made it and its bytes are the recorded ones:
/// `Ok(None)` when there is none, `Err(why)` when there is one that must not be used.
pub fn usable(dir: &Path, jdk: &Jdk) -> std::result::Result<Option<(PathBuf, u64)>, String> {
    let archive = dir.join(ARCHIVE);
    let m = match fs::symlink_metadata(&archive) {
        Err(_) => return Ok(None),
        Ok(m) if !m.file_type().is_file() => {
            return Err(format!("{} is not a regular file", archive.display()))
        }
        Ok(m) => m,
    };
    let meta: ArchiveMeta = read_json(&dir.join(ARCHIVE_META)).ok_or_else(|| {
        format!(
            "{} has no readable {ARCHIVE_META} beside it",
            archive.display()
        )
    })?;
    if meta.jdk != jdk.build {
        return Err(format!(
            "it was made by another JDK build ({}), this start runs {}",
            meta.jdk, jdk.build
        ));
    }
    if m.len() != meta.size {
        return Err(format!(
            "it is {} bytes, {} were written",
            m.len(),
            meta.size
        ));
    }
    let sum = sha256_of(&archive).map_err(|e| format!("cannot read it: {e}"))?;
    if sum != meta.sha256 {
        return Err("its bytes changed since it was written (sha256)".into());
    }
    Ok(Some((archive, m.len())))
}

/// `run-slot`'s check of a launch file's archive option: it names `cds/app.jsa` in the
/// release folder `cwd` (resolved), nothing else.
pub fn check_launch(argv: &[String], cwd: &Path) -> Result<()> {
    for a in argv.iter().filter_map(|a| a.strip_prefix(USE)) {
        let want = cwd.join(DIR).join(ARCHIVE);
        // A missing archive is left out by `vet`; its folder must still be the release's.
        let p = Path::new(a);
        let got = fs::canonicalize(p).unwrap_or_else(|_| {
            p.parent()
                .and_then(|d| fs::canonicalize(d).ok())
                .map_or_else(
                    || p.to_path_buf(),
                    |d| d.join(p.file_name().unwrap_or_default()),
                )
        });
        if got != want {
            return Err(failed(format!(
                "the launch's class-data archive {a} is not {}",
                want.display()
            )));
        }
    }
    Ok(())
}

/// True if `jar` (resolved) is the extracted jar of release folder `cwd` (resolved).
pub fn in_release(jar: &Path, cwd: &Path) -> bool {
    jar.parent() == Some(cwd.join(DIR).join(APP).as_path())
}

/// `run-slot`, just before the exec: an archive that is not usable (another JDK build, other
/// bytes) is left out, said on stderr (the journal), and the JVM starts without it.
pub fn vet(argv: &[String], cwd: &Path) -> Vec<String> {
    let Some(i) = argv.iter().position(|a| a.starts_with(USE)) else {
        return argv.to_vec();
    };
    let why = match argv.first().map(|j| Jdk::of(Path::new(j))) {
        Some(Ok(jdk)) => match usable(&cwd.join(DIR), &jdk) {
            Ok(Some(_)) => return argv.to_vec(),
            Ok(None) => "it is gone".to_string(),
            Err(why) => why,
        },
        Some(Err(why)) => why,
        None => "no java".into(),
    };
    eprintln!(
        "nonstop run-slot: app.cds: starting without the class-data archive {}: {why}",
        &argv[i][USE.len()..]
    );
    let mut out = argv.to_vec();
    out.remove(i);
    out
}

/// A regular file, not through a symlink.
pub fn regular(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file())
}

//! The release store, `workdir/releases/<name>/`: which jar a deploy takes (`app.jar`, newest
//! match), the copy of it into a new release folder (never over a running JVM's jar), the jar a
//! recorded release holds (what `nonstop rollback` launches again), the app's version a jar
//! carries (what people call a release: `1.4.2`, not `deploy-20261206T200531.565Z`), and
//! pruning beyond `keep_releases`.
//!
//! Launching a release is not its business: [`crate::stages::launch_release`] does that.

use crate::config::Config;
use crate::error::{failed, Context, Result};
use crate::process;
use crate::state::{self, State};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The newest file matching `app.jar` (wildcards in the file name only).
pub fn resolve_jar(cfg: &Config) -> Result<PathBuf> {
    let pattern = &cfg.app.jar;
    let dir = pattern.parent().unwrap_or(Path::new("/"));
    let name = pattern
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut best: Option<(SystemTime, PathBuf)> = None;
    let entries = fs::read_dir(dir).map_err(|e| {
        failed(format!(
            "no jar: cannot read {} for app.jar {:?}: {e}",
            dir.display(),
            name
        ))
    })?;
    for e in entries.flatten() {
        let fname = e.file_name().to_string_lossy().into_owned();
        if !glob_match(&name, &fname) {
            continue;
        }
        // Follow symlinks (app.jar -> app-1.2.jar); a dangling one is reported, not skipped.
        let meta = fs::metadata(e.path())
            .map_err(|err| failed(format!("jar {} is unreadable: {err}", e.path().display())))?;
        if !meta.is_file() {
            continue;
        }
        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        if best
            .as_ref()
            .is_none_or(|(t, p)| (mtime, e.path()) > (*t, p.clone()))
        {
            best = Some((mtime, e.path()));
        }
    }
    best.map(|(_, p)| p)
        .ok_or_else(|| failed(format!("no jar matches {}", pattern.display())))
}

/// `*` and `?` matching of one file name.
pub fn glob_match(pat: &str, name: &str) -> bool {
    fn m(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => m(&p[1..], n) || (!n.is_empty() && m(p, &n[1..])),
            (Some('?'), Some(_)) => m(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    m(&p, &n)
}

/// Longest deployment id used as a release folder name as it is.
const ID_MAX: usize = 64;

/// The release folder name for deployment id `id`: the id itself when it is 1 to [`ID_MAX`]
/// characters of `[A-Za-z0-9._-]` (and not only dots); a longer one is cut to its first
/// [`ID_MAX`] characters plus `-` and the first 12 hex digits of its sha256, so the name stays
/// far below NAME_MAX (255 bytes) and is still the same for the same id and different for
/// another. `None` (use the time instead) for an id with any other character.
pub fn release_name(id: &str) -> Option<String> {
    if id.is_empty()
        || id.chars().all(|c| c == '.')
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return None;
    }
    if id.len() <= ID_MAX {
        return Some(id.to_string());
    }
    let hash: String = Sha256::digest(id.as_bytes())
        .iter()
        .take(6)
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(format!("{}-{hash}", &id[..ID_MAX]))
}

/// Copy `jar` to `releases/<release_name(deployment_id) or UTC time>[-N]/<name>` (always a
/// new file, so a running JVM's jar is never overwritten; never a name the state records, so a
/// recorded release never comes to mean another jar). Returns the release name and the copied
/// jar.
pub fn new_release(
    cfg: &Config,
    deployment_id: Option<&str>,
    jar: &Path,
) -> Result<(String, PathBuf)> {
    let base = deployment_id
        .and_then(release_name)
        .unwrap_or_else(|| crate::log::utc_compact(SystemTime::now()));
    let root = cfg.releases_dir();
    crate::fsx::create_dirs(&root).context(format!("cannot create {}", root.display()))?;
    // A name the state records (a pruned release's) is not given to another jar.
    let st = state::load(&cfg.state_dir);
    let recorded = |name: &str| {
        st.release.as_deref() == Some(name)
            || st
                .history
                .iter()
                .any(|e| e.release.as_deref() == Some(name))
    };
    let mut name = base.clone();
    let mut n = 1;
    let dir = loop {
        let d = root.join(&name);
        let made = if recorded(&name) {
            Err(std::io::ErrorKind::AlreadyExists.into())
        } else {
            crate::fsx::create_dir(&d)
        };
        match made {
            Ok(()) => break d,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                n += 1;
                name = format!("{base}-{n}");
            }
            Err(e) => return Err(failed(format!("cannot create {}: {e}", d.display()))),
        }
    };
    let file = jar
        .file_name()
        .ok_or_else(|| failed("jar path has no file name"))?;
    let dest = dir.join(file);
    let tmp = dir.join(".copying");
    let copy = fs::copy(jar, &tmp)
        .and_then(|_| fs::File::open(&tmp)?.sync_all())
        .and_then(|_| fs::rename(&tmp, &dest));
    if let Err(e) = copy {
        let _ = fs::remove_dir_all(&dir);
        return Err(failed(format!("cannot copy jar {}: {e}", jar.display())));
    }
    log::info!(
        "release {name}: copied {} to {}",
        jar.display(),
        dest.display()
    );
    Ok((name, dest))
}

/// The release folders in the store, newest first (by the folder's time).
pub fn newest_first(cfg: &Config) -> Vec<String> {
    let mut dirs: Vec<(SystemTime, String)> = fs::read_dir(cfg.releases_dir())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| {
            (
                e.metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH),
                e.file_name().to_string_lossy().into_owned(),
            )
        })
        .collect();
    dirs.sort_by(|a, b| b.cmp(a));
    dirs.into_iter().map(|(_, name)| name).collect()
}

/// Remove releases beyond `keep_releases` (newest kept), never `current` nor one that
/// [`named_releases`] names (the live release, every slot's rollback target, every pid file's).
pub fn prune_releases(cfg: &Config, current: &str) {
    let root = cfg.releases_dir();
    let named = named_releases(cfg, &state::load(&cfg.state_dir));
    for name in newest_first(cfg).into_iter().skip(cfg.keep_releases) {
        if name == current {
            continue;
        }
        if let Some((_, why)) = named.iter().find(|(r, _)| *r == name) {
            log::info!(
                "kept release {name} beyond keep_releases {}: it is {why}",
                cfg.keep_releases
            );
            continue;
        }
        match fs::remove_dir_all(root.join(&name)) {
            Ok(()) => log::info!("pruned release {name}"),
            Err(e) => log::warn!("could not prune release {name}: {e}"),
        }
    }
}

/// The releases something still names, each with why (the first reason found): the state's
/// live release, the release each slot served at its last successful switch (what
/// `nonstop rollback` launches again; every slot the history or the config knows), and the
/// release each slot's pid file names, running or not.
pub fn named_releases(cfg: &Config, st: &State) -> Vec<(String, String)> {
    let mut named: Vec<(String, String)> = vec![];
    let mut add = |release: Option<String>, why: String| {
        if let Some(r) = release {
            if !named.iter().any(|(n, _)| *n == r) {
                named.push((r, why));
            }
        }
    };
    add(
        st.release.clone(),
        "the live release in the state file".into(),
    );
    let mut slots: Vec<&str> = cfg.slots.iter().map(|s| s.name.as_str()).collect();
    for e in &st.history {
        if !slots.contains(&e.slot.as_str()) {
            slots.push(&e.slot);
        }
    }
    for name in slots {
        add(
            st.served_release(name),
            format!("what slot {name} served at its last switch (its rollback target)"),
        );
    }
    for s in &cfg.slots {
        add(
            process::read_pid_file(&cfg.pid_file(s)).map(|p| p.release),
            format!("named by slot {}'s pid file", s.name),
        );
    }
    named
}

/// The one jar inside a release folder (`workdir/releases/<release>/`).
pub fn release_jar(cfg: &Config, release: &str) -> Result<PathBuf> {
    let dir = cfg.releases_dir().join(release);
    let entries = fs::read_dir(&dir).map_err(|e| {
        failed(format!(
            "release {release} is gone ({}: {e}); it may have been pruned (keep_releases {})",
            dir.display(),
            cfg.keep_releases
        ))
    })?;
    entries
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "jar") && p.is_file())
        .ok_or_else(|| {
            failed(format!(
                "release {release} holds no jar in {}",
                dir.display()
            ))
        })
}

/// The longest version shown; a longer one is cut (with `…`).
const VERSION_MAX: usize = 64;

/// The app's version `jar` carries: its manifest's `Implementation-Version` (Maven and Gradle
/// write it; Spring Boot's parent POM turns it on), else its file name without `.jar`
/// (`myapp-1.4.2`). Control characters are dropped and a long one is cut to 64 characters: the
/// text is the jar's, and it goes into `state.json` and onto a terminal.
pub fn jar_version(jar: &Path) -> String {
    let from_manifest = crate::jar::read(jar).ok().and_then(|j| {
        j.manifest
            .and_then(|m| m.get("Implementation-Version").map(str::to_string))
    });
    let raw = from_manifest
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| {
            let name = jar.file_name().map(|n| n.to_string_lossy().into_owned());
            let name = name.unwrap_or_default();
            name.strip_suffix(".jar").unwrap_or(&name).to_string()
        });
    let clean: String = raw.trim().chars().filter(|c| !c.is_control()).collect();
    if clean.chars().count() > VERSION_MAX {
        clean.chars().take(VERSION_MAX - 1).chain(['…']).collect()
    } else {
        clean
    }
}

/// The version of recorded release `release` ([`jar_version`] of its jar); `None` when its
/// folder is gone (pruned) or holds no jar.
pub fn release_version(cfg: &Config, release: &str) -> Option<String> {
    release_jar(cfg, release).ok().map(|j| jar_version(&j))
}

/// `version 1.4.2` of recorded release `release`, for a line that already names the release;
/// `version unknown` when it cannot be read (its folder pruned).
pub fn version_words(cfg: &Config, release: &str) -> String {
    match release_version(cfg, release) {
        Some(v) => format!("version {v}"),
        None => "version unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A jar (a zip) holding only `manifest` as META-INF/MANIFEST.MF.
    fn jar_with_manifest(path: &Path, manifest: &str) {
        use std::io::Write;
        let f = fs::File::create(path).unwrap();
        let mut z = zip::ZipWriter::new(f);
        z.start_file(
            "META-INF/MANIFEST.MF",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        z.write_all(manifest.as_bytes()).unwrap();
        z.finish().unwrap();
    }

    #[test]
    fn a_jars_version_is_its_implementation_version_else_its_file_name() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("shop-9.jar");
        jar_with_manifest(
            &a,
            "Manifest-Version: 1.0\r\nImplementation-Version: 1.4.2\r\nMain-Class: A\r\n\r\n",
        );
        assert_eq!(jar_version(&a), "1.4.2");
        let b = d.path().join("spring-app-v2-42.jar");
        jar_with_manifest(&b, "Manifest-Version: 1.0\nMain-Class: A\n\n");
        assert_eq!(jar_version(&b), "spring-app-v2-42");
        let c = d.path().join("c.jar");
        fs::write(&c, b"not a zip").unwrap();
        assert_eq!(jar_version(&c), "c", "an unreadable jar: its file name");
        let e = d.path().join("e.jar");
        let long = "9".repeat(200);
        jar_with_manifest(
            &e,
            &format!("Implementation-Version: 1.0\u{1b}[31m{long}\n\n"),
        );
        let v = jar_version(&e);
        assert!(!v.contains('\u{1b}') && v.chars().count() == VERSION_MAX && v.ends_with('…'));
    }

    #[test]
    fn release_names_are_bounded_deterministic_and_unique_per_id() {
        assert_eq!(release_name("d-ABC123XYZ").as_deref(), Some("d-ABC123XYZ"));
        let at_max = "a".repeat(ID_MAX);
        assert_eq!(release_name(&at_max), Some(at_max.clone()));
        let long = format!("d-{}", "x".repeat(298));
        let name = release_name(&long).unwrap();
        assert_eq!(name.len(), ID_MAX + 13, "{name}");
        assert!(name.starts_with(&long[..ID_MAX]), "{name}");
        // sha256("d-xxx...x", 300 characters), as `printf %s ID | sha256sum` prints it.
        assert_eq!(&name[ID_MAX..], "-205970f14967", "{name}");
        assert_eq!(release_name(&long), Some(name.clone()), "deterministic");
        let other = format!("{}y", &long[..299]);
        let other_name = release_name(&other).unwrap();
        assert_ne!(other_name, name, "same first 64 characters, another id");
        assert_eq!(other_name[..ID_MAX], name[..ID_MAX]);
        for bad in ["", ".", "..", "d/../x", "d 1", "d\u{e9}", "a;b"] {
            assert_eq!(release_name(bad), None, "{bad:?}");
        }
        assert_eq!(release_name(".hidden").as_deref(), Some(".hidden"));
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.jar", "app-1.0.jar"));
        assert!(glob_match("app-?.jar", "app-2.jar"));
        assert!(!glob_match("*.jar", "app.jar.bak"));
        assert!(!glob_match("app-*.jar", "other.jar"));
    }
}

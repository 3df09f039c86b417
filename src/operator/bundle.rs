//! `nonstop bundle --jar PATH [--config nonstop.yml] [--appspec appspec.yml] [-o FILE.zip]`:
//! the CodeDeploy bundle, built by the `nonstop` binary itself (no Rust toolchain, no `zip`
//! program on the build machine).
//!
//! Layout (what the appspec's hooks and the binaries' config lookup expect):
//!
//! ```text
//! app/<jar>       0644   the --jar file, under its own name
//! appspec.yml     0644   --appspec [default: appspec.yml next to the config]
//! bin/<binary>    0755   stop, start, health, switch, deploy-second, nonstop: the files beside
//!                        the running `nonstop` (std::env::current_exe's folder)
//! nonstop.yml     0644   --config [default: as `nonstop validate` finds it: $NONSTOP_CONFIG,
//!                        deploy/nonstop.yml, nonstop.yml, …]
//! ```
//!
//! Before anything is written, the bundle is laid out in a temp folder of symlinks and the
//! bundle-time checks of `nonstop validate` run on it ([`validate::bundle_checks`], the same
//! functions): the config loads (else exit 2), appspec.yml follows the agent's rules, its
//! hooks run the stages in order from files that are in the bundle, each hook's timeout covers
//! what its binary may wait plus the margin, and `app.jar` finds the bundle's jar (a zip). A
//! failed check refuses the bundle (exit 1, the last line says which and why) and no zip is
//! written. The checks that need the target host ([`validate::HOST_CHECKS`]: nginx, write
//! access, the supervisor, java) are named as skipped: `bin/nonstop validate` runs them there.
//!
//! The zip is reproducible: entries sorted by name, every timestamp 1980-01-01 00:00:00 (the
//! zip epoch), modes fixed (0755 for `bin/*` and the folders, 0644 for the rest), deflated.
//! Same inputs, same bytes. It is written atomically (temp file beside it, fsync, rename).

use super::validate::{self, Check, CheckId, Verdict};
use crate::config;
use crate::error::{failed, Context, Result};
use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The binaries every bundle carries, in `bin/`: the table's ([`crate::stage_table::BINARIES`]).
pub const BINARIES: [&str; 6] = crate::stage_table::BINARIES;
/// `-o` when not given.
pub const DEFAULT_OUTPUT: &str = "nonstop-bundle.zip";

/// What `bundle` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub jar: PathBuf,
    pub config: Option<PathBuf>,
    pub appspec: Option<PathBuf>,
    pub output: Option<PathBuf>,
}

/// One zip entry: a file copied from `source`, or a folder (`source: None`).
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub source: Option<PathBuf>,
    pub mode: u32,
}

/// Check, then write the bundle (see the module doc) and print what was checked and written.
pub fn run(o: &Options) -> Result<()> {
    let t0 = Instant::now();
    let config_path = config::locate_in_project(o.config.as_deref())?;
    // A config that does not load is a config error (exit 2), named with its own path.
    config::load(Some(&config_path))?;
    let appspec = o.appspec.clone().unwrap_or_else(|| {
        config_path
            .parent()
            .unwrap_or(Path::new("."))
            .join("appspec.yml")
    });
    if !appspec.is_file() {
        return Err(failed(format!(
            "no appspec at {}: give --appspec PATH (`nonstop init` writes deploy/appspec.yml; \
             the release tarball has appspec/appspec.yml and appspec/appspec-balanced.yml)",
            appspec.display()
        )));
    }
    if !o.jar.is_file() {
        return Err(failed(format!(
            "no jar at {}: build it first (e.g. `mvn -B package`, then the boot jar in target/)",
            o.jar.display()
        )));
    }
    let bin_dir = binaries_dir()?;
    let entries = layout(&bin_dir, &o.jar, &config_path, &appspec)?;
    let output = o
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_OUTPUT));

    let checks = check(&entries)?;
    for c in &checks {
        crate::cli::out(c);
    }
    let host = Check {
        verdict: Verdict::Skip,
        id: CheckId::HostChecks,
        detail: format!(
            "{} need the target host: run bin/nonstop validate there",
            validate::host_checks()
        ),
    };
    crate::cli::out(&host);
    let failures: Vec<String> = checks
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .map(|c| format!("{}: {}", c.id, c.detail))
        .collect();
    if !failures.is_empty() {
        return Err(failed(format!(
            "refusing to write {}: {} of {} checks failed: {}",
            output.display(),
            failures.len(),
            checks.len(),
            failures.join("; ")
        )));
    }

    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).context(format!("cannot create {}", dir.display()))?;
    }
    write_zip(&output, &entries)?;
    let bytes = std::fs::read(&output).context(format!("cannot read {}", output.display()))?;
    let sha = Sha256::digest(&bytes);
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    crate::outln!(
        "wrote {}: {} entries, {}, sha256 {hex}, in {}",
        output.display(),
        entries.len(),
        crate::log::human_bytes(bytes.len() as u64),
        crate::log::human(t0.elapsed())
    );
    Ok(())
}

/// The folder of the running `nonstop`, where the hook binaries must be.
fn binaries_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find the running nonstop binary")?;
    Ok(exe.parent().unwrap_or(Path::new("/")).to_path_buf())
}

/// The bundle's entries, sorted by name (folders included), from the files they come from.
pub fn layout(bin_dir: &Path, jar: &Path, config: &Path, appspec: &Path) -> Result<Vec<Entry>> {
    let file = |name: String, source: &Path, mode: u32| Entry {
        name,
        source: Some(source.to_path_buf()),
        mode,
    };
    let dir = |name: &str| Entry {
        name: name.into(),
        source: None,
        mode: 0o755,
    };
    let jar_name = jar
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| failed(format!("--jar {}: not a file name", jar.display())))?;
    let mut entries = vec![
        dir("app/"),
        file(format!("app/{jar_name}"), jar, 0o644),
        file("appspec.yml".into(), appspec, 0o644),
        dir("bin/"),
        file("nonstop.yml".into(), config, 0o644),
    ];
    for b in BINARIES {
        let p = bin_dir.join(b);
        let executable = std::fs::metadata(&p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        if !executable {
            return Err(failed(format!(
                "no executable {}: nonstop bundle takes the hook binaries from the folder of the \
                 running nonstop ({}); run the nonstop of an unpacked release tarball (or of \
                 `cargo build --bins`)",
                p.display(),
                bin_dir.display()
            )));
        }
        entries.push(file(format!("bin/{b}"), &p, 0o755));
    }
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

/// A temp folder holding the bundle's layout as symlinks, removed when dropped.
struct Stage(PathBuf);

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Lay the entries out as symlinks in a temp folder and run [`validate::bundle_checks`] there,
/// exactly as `nonstop validate` would see the unpacked bundle; the temp folder's name is cut
/// from the details (`appspec.yml: version 0.0, ...`).
fn check(entries: &[Entry]) -> Result<Vec<Check>> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let root =
        std::env::temp_dir().join(format!(".nonstop-bundle-{}-{nanos:x}", std::process::id()));
    std::fs::create_dir(&root).context(format!("cannot create {}", root.display()))?;
    let stage = Stage(root);
    for e in entries {
        let p = stage.0.join(&e.name);
        match &e.source {
            None => std::fs::create_dir(&p).context(format!("cannot create {}", p.display()))?,
            Some(src) => {
                let src = std::path::absolute(src).unwrap_or_else(|_| src.clone());
                std::os::unix::fs::symlink(&src, &p)
                    .context(format!("cannot link {}", p.display()))?
            }
        }
    }
    let cfg = config::load(Some(&stage.0.join("nonstop.yml")))?;
    let mut checks = validate::bundle_checks(&cfg, &stage.0.join("appspec.yml"));
    // A jar found outside the bundle is not the bundle's: `start` would take the host's.
    // `..` is refused as an absolute path is: `app/../../x/*.jar` starts with the bundle's
    // folder, component by component, and still names a file outside it.
    let climbs = cfg
        .app
        .jar
        .components()
        .any(|c| c == std::path::Component::ParentDir);
    if climbs || !cfg.app.jar.starts_with(&stage.0) {
        if let Some(c) = checks.iter_mut().find(|c| c.id == CheckId::Jar) {
            c.verdict = Verdict::Fail;
            c.detail =
                format!(
                "app.jar {} is outside the bundle{}: start would look for the jar on the host, \
                 never at this bundle's app/ (write `app.jar: app/*.jar`)",
                cfg.app.jar.display(),
                if climbs { " (it climbs out with ..)" } else { "" }
            );
        }
    }
    let prefix = format!("{}/", stage.0.display());
    for c in &mut checks {
        c.detail = c.detail.replace(&prefix, "");
    }
    Ok(checks)
}

/// Write the zip (see the module doc: sorted, fixed times and modes, deflated) atomically.
pub fn write_zip(output: &Path, entries: &[Entry]) -> Result<()> {
    use zip::write::SimpleFileOptions;
    use zip::{CompressionMethod, DateTime, ZipWriter};
    crate::fsx::write_atomic_with(output, 0o644, |f| {
        let failed = std::rc::Rc::new(std::cell::Cell::new(None));
        let out = Quiet {
            inner: f,
            failed: failed.clone(),
            pos: 0,
            end: 0,
        };
        let mut z = ZipWriter::new(std::io::BufWriter::with_capacity(1 << 16, out));
        for e in entries {
            let opts = SimpleFileOptions::default()
                .last_modified_time(DateTime::default())
                .unix_permissions(e.mode);
            match &e.source {
                None => z.add_directory(e.name.as_str(), opts)?,
                Some(src) => {
                    let mut from = std::fs::File::open(src).map_err(|err| {
                        std::io::Error::new(err.kind(), format!("{}: {err}", src.display()))
                    })?;
                    let len = from.metadata()?.len();
                    z.start_file(
                        e.name.as_str(),
                        opts.compression_method(CompressionMethod::Deflated)
                            .large_file(len >= u64::from(u32::MAX)),
                    )?;
                    std::io::copy(&mut from, &mut z)?;
                }
            }
        }
        z.finish()?
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)?;
        match failed.take() {
            Some(kind) => Err(std::io::Error::from(kind)),
            None => Ok(()),
        }
    })
    .context(format!("cannot write {}", output.display()))
}

/// The zip's file, which goes quiet after its first error (a full disk): every later write and
/// seek is dropped and reported done, at positions that go on as if it had been written (so the
/// zip writer's offsets stay consistent). The error itself has already gone up to the caller;
/// what this silences is `ZipWriter`'s `Drop`, which finalizes an unfinished archive and prints
/// its own failure on stderr without a newline, in front of nonstop's last line.
struct Quiet<W> {
    inner: W,
    /// The first error's kind, once there was one.
    failed: std::rc::Rc<std::cell::Cell<Option<std::io::ErrorKind>>>,
    /// The position and the end, as the zip writer sees them.
    pos: u64,
    end: u64,
}

impl<W> Quiet<W> {
    fn note<T>(&self, r: std::io::Result<T>) -> std::io::Result<T> {
        if let Err(e) = &r {
            self.failed.set(Some(e.kind()));
        }
        r
    }
    fn quiet(&self) -> bool {
        self.failed.get().is_some()
    }
    fn moved(&mut self, pos: u64) -> u64 {
        self.pos = pos;
        self.end = self.end.max(pos);
        pos
    }
}

impl<W: std::io::Write> std::io::Write for Quiet<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = if self.quiet() {
            buf.len()
        } else {
            let r = self.inner.write(buf);
            self.note(r)?
        };
        self.moved(self.pos + n as u64);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.quiet() {
            return Ok(());
        }
        let r = self.inner.flush();
        self.note(r)
    }
}

impl<W: std::io::Seek> std::io::Seek for Quiet<W> {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        use std::io::SeekFrom;
        if !self.quiet() {
            let r = self.inner.seek(to);
            let pos = self.note(r)?;
            return Ok(self.moved(pos));
        }
        let base = match to {
            SeekFrom::Start(n) => return Ok(self.moved(n)),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.end.checked_add_signed(d),
        };
        Ok(self.moved(base.unwrap_or(0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_sorted_with_fixed_modes() {
        let d = tempfile::tempdir().unwrap();
        let bin = d.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        for b in BINARIES {
            let p = bin.join(b);
            std::fs::write(&p, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        let jar = d.path().join("shop-1.0.jar");
        std::fs::write(&jar, "PK\x03\x04").unwrap();
        let cfg = d.path().join("nonstop.yml");
        let spec = d.path().join("appspec.yml");
        let entries = layout(&bin, &jar, &cfg, &spec).unwrap();
        let names: Vec<(&str, u32)> = entries.iter().map(|e| (e.name.as_str(), e.mode)).collect();
        assert_eq!(
            names,
            [
                ("app/", 0o755),
                ("app/shop-1.0.jar", 0o644),
                ("appspec.yml", 0o644),
                ("bin/", 0o755),
                ("bin/deploy-second", 0o755),
                ("bin/health", 0o755),
                ("bin/nonstop", 0o755),
                ("bin/start", 0o755),
                ("bin/stop", 0o755),
                ("bin/switch", 0o755),
                ("nonstop.yml", 0o644),
            ]
        );
        std::fs::remove_file(bin.join("deploy-second")).unwrap();
        let e = layout(&bin, &jar, &cfg, &spec).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(e.to_string().contains("deploy-second"), "{e}");
    }
}

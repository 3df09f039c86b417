//! `app.cds`: a class-data archive per release, made from the running app, so that every later
//! start of the same release (the other slots of a roll, a restart, the live slot after a
//! reboot, a rollback) boots from it.
//!
//! Everything lives in the release's own folder, owned as the release is:
//!
//! ```text
//! releases/<release>/<app>.jar          the jar as shipped (never changed)
//! releases/<release>/cds/app/<app>.jar  the release extracted (Spring Boot's `jarmode=tools`)
//! releases/<release>/cds/app/lib/       its libraries
//! releases/<release>/cds/app.jsa        the dynamic class-data archive
//! releases/<release>/cds/archive.json   how it was made: the JDK build, size, sha256
//! releases/<release>/cds/boots.json     measured boots (launch to healthy), by how it started
//! releases/<release>/cds/refused        why the release cannot be extracted (it runs as shipped)
//! ```
//!
//! The steps: [`plan`] (in `start`, once per launch) extracts the release the first time
//! (to a temp folder, then one rename) and picks the JVM options: the archive when one exists
//! that this JDK build made and whose bytes are the recorded ones, else
//! `-XX:+RecordDynamicDumpInfo`. [`before_switch`] (in `health`, once the new slot is healthy
//! and before any traffic goes to it) starts a detached nonstop that asks that JVM for its
//! archive (`VM.cds dynamic_dump`, what `jcmd` sends, over the JVM's attach socket, which
//! `-XX:+StartAttachListener` opens at boot: no jcmd, so a JRE is enough, and no SIGQUIT; as
//! the user the JVM runs as, never as root), writes it beside the release, and waits for it up
//! to [`crate::stage_table::CDS_DUMP`]. The JVM writes the archive at a safepoint, pausing the
//! app for the 2–10 s of the dump: done before the switch, that pause meets no request. A dump
//! never fails a stage. [`healthy`] records each boot's time for `status`.
//!
//! A missing, stale or mismatched archive never stops a start: nonstop checks the JDK build,
//! the size and the sha256 recorded beside it (a truncated archive crashes JDK 17 with SIGBUS,
//! so the JVM's own check is not enough), says once why it is not used, removes it, and
//! starts the JVM recording again; `-Xshare:auto` keeps the JVM's own fallback for the rest.

pub use crate::config::CdsMode as Mode;
use crate::config::{Config, Slot};
use crate::error::{failed, Result};
use crate::process;
pub use archive::*;

pub mod archive;
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

const BOOTS: &str = "boots.json";
const REFUSED: &str = "refused";
const DUMPING: &str = "dumping.json";
const DUMP_LOG: &str = "dump.log";
/// Set (to a JSON [`Dump`]) when nonstop is re-executed to dump an archive in the background.
pub const DUMP_ENV: &str = "NONSTOP_CDS_DUMP";
/// The JVM options that mean the operator manages class data sharing themselves.
const THEIRS: [&str; 6] = [
    "-Xshare:off",
    "-XX:SharedArchiveFile",
    "-XX:ArchiveClassesAtExit",
    "-XX:+AutoCreateSharedArchive",
    "-XX:AOTCache",
    "-XX:AOTMode",
];
const NOT_BOOT: &str = "it is not a Spring Boot jar (nothing to extract)";
const RECORD: &str = "-XX:+RecordDynamicDumpInfo";
/// The attach socket from boot: the dump needs no SIGQUIT to wake the JVM's attach listener.
const LISTEN: &str = "-XX:+StartAttachListener";
/// How long a start waits for an archive being dumped of the same release (one that `health`
/// left going on): a dump takes 2–10 s, a boot without the archive seconds more.
const DUMP_WAIT: Duration = crate::stage_table::CDS_DUMP;

/// `releases/<release>/cds`
pub fn dir(cfg: &Config, release: &str) -> PathBuf {
    cfg.releases_dir().join(release).join(DIR)
}

/// What a launch runs: the jar for `-jar` and the JVM options to put before it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub jar: PathBuf,
    pub opts: Vec<String>,
}

/// Why the release extracts or not (Spring Boot 3.3+'s `jarmode=tools`): `Ok` or the reason.
pub fn extractable(jar: &crate::jar::Jar) -> std::result::Result<(), String> {
    match jar.kind() {
        crate::jar::Kind::SpringBoot { version, .. } => {
            if jar
                .names
                .iter()
                .any(|n| n.starts_with("BOOT-INF/lib/spring-boot-jarmode-tools-"))
            {
                Ok(())
            } else if jar
                .names
                .iter()
                .any(|n| n.starts_with("BOOT-INF/lib/spring-boot-jarmode-layertools-"))
            {
                Err(format!("Spring Boot {version} has `jarmode=layertools` only (3.3 added `jarmode=tools`): its layers are folders, and a class-data archive holds classes from jars only"))
            } else {
                Err(format!("this Spring Boot {version} jar has no spring-boot-jarmode-tools in BOOT-INF/lib (Spring Boot 3.3+ adds it unless the build turns it off)"))
            }
        }
        crate::jar::Kind::Plain { .. } => Err(NOT_BOOT.into()),
        crate::jar::Kind::BrokenSpringBoot(why) | crate::jar::Kind::NotRunnable(why) => Err(why),
    }
}

/// The jar and options a start of `release` uses (see the module docs). Never fails: whatever
/// goes wrong, the jar as shipped runs, and the reason is logged.
pub fn plan(cfg: &Config, release: &str, release_jar: &Path, java: &Path) -> Plan {
    let fat = Plan {
        jar: release_jar.to_path_buf(),
        opts: vec![],
    };
    if cfg.app.cds == Mode::Off {
        return fat;
    }
    if let Some(o) = cfg
        .app
        .java_opts
        .iter()
        .find(|o| THEIRS.iter().any(|t| o.starts_with(t)))
    {
        log::info!("app.cds: app.java_opts has {o}: nonstop leaves class data sharing to it");
        return fat;
    }
    let jdk = match Jdk::of(java) {
        Ok(j) if j.major >= 17 => j,
        Ok(j) => {
            log::info!(
                "app.cds: JDK {} cannot dump an archive from a running app (17+ can); release {release} runs as shipped",
                j.version
            );
            return fat;
        }
        Err(why) => {
            log::info!(
                "app.cds: cannot tell the JDK's version ({why}); release {release} runs as shipped"
            );
            return fat;
        }
    };
    let dir = release_jar.parent().unwrap_or(Path::new(".")).join(DIR);
    match prepare(&dir, release_jar, java) {
        Ok(Some(jar)) => {
            wait_for_dump(&dir);
            let opts = match usable(&dir, &jdk) {
                Ok(Some((archive, size))) => {
                    log::info!(
                        "app.cds: release {release} starts from its class-data archive {} ({})",
                        archive.display(),
                        crate::log::human_bytes(size)
                    );
                    vec![format!("{USE}{}", archive.display()), "-Xshare:auto".into()]
                }
                Ok(None) => {
                    log::info!("app.cds: release {release} starts extracted and records its classes; its archive is made once it is healthy, before the switch");
                    vec![RECORD.into(), LISTEN.into()]
                }
                Err(why) => {
                    log::warn!("app.cds: not using the class-data archive of release {release}: {why}; removed it, this start records a new one");
                    let _ = fs::remove_file(dir.join(ARCHIVE_META));
                    let _ = fs::remove_file(dir.join(ARCHIVE));
                    vec![RECORD.into(), LISTEN.into()]
                }
            };
            Plan { jar, opts }
        }
        Ok(None) => fat,
        Err(why) if why == NOT_BOOT => {
            log::debug!("app.cds: release {release} runs as shipped: {why}");
            fat
        }
        Err(why) => {
            log::warn!(
                "app.cds: cannot extract release {release}: {why}; it starts from the jar as shipped, without a class-data archive (`app.cds: off` silences this)"
            );
            fat
        }
    }
}

/// Extract the release once. `Ok(Some(jar))`: the extracted jar; `Ok(None)`: the release was
/// refused before (said then); `Err`: refused now (recorded, said by the caller).
fn prepare(
    dir: &Path,
    release_jar: &Path,
    java: &Path,
) -> std::result::Result<Option<PathBuf>, String> {
    match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(format!("{} is not a folder", dir.display())),
        Err(_) => {
            // A plain jar leaves no trace: there is nothing to extract, nothing to record.
            if crate::jar::read(release_jar)
                .is_ok_and(|j| matches!(j.kind(), crate::jar::Kind::Plain { .. }))
            {
                return Err(NOT_BOOT.into());
            }
            crate::fsx::create_dir(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?
        }
    }
    if fs::symlink_metadata(dir.join(REFUSED)).is_ok() {
        log::debug!(
            "app.cds: {} says why it runs as shipped",
            dir.join(REFUSED).display()
        );
        return Ok(None);
    }
    let jar = twin(release_jar).ok_or("the jar has no file name")?;
    if regular(&jar) {
        return Ok(Some(jar));
    }
    let r = extract(dir, release_jar, java);
    if let Err(why) = &r {
        let _ = crate::fsx::write_atomic(&dir.join(REFUSED), format!("{why}\n").as_bytes(), 0o644);
    }
    r.map(|()| Some(jar))
}

fn extract(dir: &Path, release_jar: &Path, java: &Path) -> std::result::Result<(), String> {
    let read = crate::jar::read(release_jar)?;
    extractable(&read)?;
    let t0 = Instant::now();
    // What an extraction killed halfway left (any run's), then this run's own temp folder.
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_name()
            .to_string_lossy()
            .starts_with(&format!(".{APP}.tmp-"))
        {
            let _ = fs::remove_dir_all(e.path());
        }
    }
    let tmp = dir.join(format!(".{APP}.tmp-{}", std::process::id()));
    let argv: Vec<String> = vec![
        java.to_string_lossy().into_owned(),
        "-Djarmode=tools".into(),
        "-jar".into(),
        release_jar.to_string_lossy().into_owned(),
        "extract".into(),
        "--destination".into(),
        tmp.to_string_lossy().into_owned(),
    ];
    let (ok, out) = crate::nginx::run(&argv).map_err(|e| e.to_string())?;
    let name = release_jar.file_name().ok_or("the jar has no file name")?;
    if !ok || !regular(&tmp.join(name)) {
        let _ = fs::remove_dir_all(&tmp);
        return Err(format!(
            "`java -Djarmode=tools -jar {} extract` failed: {}",
            release_jar.display(),
            crate::nginx::telling_line(&out)
        ));
    }
    fs::rename(&tmp, dir.join(APP)).map_err(|e| {
        let _ = fs::remove_dir_all(&tmp);
        format!("cannot rename {} into place: {e}", tmp.display())
    })?;
    log::info!(
        "app.cds: extracted {} into {} in {}",
        release_jar.display(),
        dir.join(APP).display(),
        crate::log::human(t0.elapsed())
    );
    Ok(())
}

fn write_json<T: Serialize>(p: &Path, v: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(v).map_err(|e| failed(e.to_string()))?;
    s.push('\n');
    crate::fsx::write_atomic(p, s.as_bytes(), 0o644)
}

/// An in-flight dump of this release, if its dumper still runs.
fn dumping(dir: &Path) -> Option<Dump> {
    read_json::<Dump>(&dir.join(DUMPING))
        .filter(|d| d.dumper.is_some_and(|(p, t)| process::same_process(p, t)))
}

fn wait_for_dump(dir: &Path) {
    let t0 = Instant::now();
    let mut said = false;
    while dumping(dir).is_some() && t0.elapsed() < DUMP_WAIT {
        if crate::interrupt::requested() {
            return;
        }
        if !said {
            log::info!("app.cds: waiting (at most {DUMP_WAIT:?}) for the archive being dumped from the slot that was healthy first");
            said = true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---------- before the switch: the dump ----------

/// What the detached dumper needs; serialized into [`DUMP_ENV`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dump {
    pub pid: i32,
    pub start_time: u64,
    pub dir: PathBuf,
    pub jdk: String,
    pub release: String,
    /// The systemd launch file of the slot: rewritten to use the archive, so the unit's next
    /// start (a restart, a reboot) boots from it.
    pub launch_file: PathBuf,
    /// The dumper's own pid and start time, once it runs.
    #[serde(default)]
    pub dumper: Option<(i32, u64)>,
}

/// Before traffic goes to `slot` (healthy, not live): when its JVM records (started without
/// an archive), start a detached nonstop that dumps the archive beside the release, and wait
/// for it up to `budget` (the JVM pauses while it writes: no request may meet that). Never
/// fails; a dump that outlasts `budget` goes on in the background.
pub fn before_switch(
    sup: &dyn crate::supervisor::Supervisor,
    cfg: &Config,
    slot: &Slot,
    budget: Duration,
) {
    if cfg.app.cds == Mode::Off {
        return;
    }
    let Some(pf) = crate::supervisor::running_app(sup, cfg, slot) else {
        return;
    };
    let cmd = process::cmdline(pf.pid);
    if !cmd.iter().any(|a| a == RECORD) {
        return;
    }
    let dir = dir(cfg, &pf.release);
    if regular(&dir.join(ARCHIVE)) {
        return;
    }
    if dumping(&dir).is_none() && !start_dump(cfg, slot, &pf, &cmd, &dir) {
        return;
    }
    let t0 = std::time::Instant::now();
    while dumping(&dir).is_some() && t0.elapsed() < budget {
        std::thread::sleep(Duration::from_millis(100));
    }
    let archive = dir.join(ARCHIVE);
    let going_on = dumping(&dir).is_some();
    match fs::metadata(&archive) {
        Ok(m) if !going_on => log::info!(
            "app.cds: release {}'s class-data archive dumped from slot {} before the switch in {} ({} MB): {}",
            pf.release,
            slot.name,
            crate::log::human(t0.elapsed()),
            m.len() / 1_000_000,
            archive.display()
        ),
        _ if going_on => log::warn!(
            "app.cds: release {}'s archive dump from slot {} goes on after {}; it continues in the background, and slot {} may pause while it ends",
            pf.release,
            slot.name,
            crate::log::human(budget),
            slot.name
        ),
        _ => log::warn!(
            "app.cds: no class-data archive for release {} (see {})",
            pf.release,
            dir.join("dump.log").display()
        ),
    }
}

/// Start the detached dumper of `pf`'s archive into `dir`; false when it cannot start.
fn start_dump(
    cfg: &Config,
    slot: &Slot,
    pf: &process::PidFile,
    cmd: &[String],
    dir: &Path,
) -> bool {
    let jdk = match cmd.first().map(|j| Jdk::of(Path::new(j))) {
        Some(Ok(j)) => j,
        _ => return false,
    };
    // The attach socket takes the JVM's own user only; nonstop never attaches as another
    // (root) user.
    let euid = rustix::process::geteuid().as_raw();
    if uid_of(pf.pid) != Some(euid) {
        log::info!(
            "app.cds: the app (pid {}) runs as another user than nonstop (uid {euid}): no class-data archive is made for release {}",
            pf.pid,
            pf.release
        );
        return false;
    }
    let spec = Dump {
        pid: pf.pid,
        start_time: pf.start_time,
        dir: dir.to_path_buf(),
        jdk: jdk.build,
        release: pf.release.clone(),
        launch_file: cfg.run_dir().join(format!("{}.launch.json", slot.name)),
        dumper: None,
    };
    match spawn_dumper(&spec) {
        Ok(pid) => {
            log::info!(
                "app.cds: dumping release {}'s class-data archive from slot {} (pid {}, not yet live) as pid {pid} into {}",
                pf.release,
                slot.name,
                pf.pid,
                dir.join(ARCHIVE).display()
            );
            true
        }
        Err(e) => {
            log::warn!("app.cds: cannot start the archive dump: {e}");
            false
        }
    }
}

fn uid_of(pid: i32) -> Option<u32> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn spawn_dumper(spec: &Dump) -> Result<i32> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::process::CommandExt;
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(spec.dir.join(DUMP_LOG))
        .map_err(|e| {
            failed(format!(
                "cannot open {}: {e}",
                spec.dir.join(DUMP_LOG).display()
            ))
        })?;
    let log2 = log.try_clone().map_err(|e| failed(e.to_string()))?;
    let exe = std::env::current_exe().map_err(|e| failed(e.to_string()))?;
    let json = serde_json::to_string(spec).map_err(|e| failed(e.to_string()))?;
    let mut cmd = std::process::Command::new(&exe);
    cmd.env(DUMP_ENV, json)
        .env_remove(crate::supervisor::builtin::SUPERVISE_ENV)
        .current_dir(&spec.dir)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2);
    // Safety: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| rustix::process::setsid().map(drop).map_err(Into::into));
    }
    let child = cmd
        .spawn()
        .map_err(|e| failed(format!("cannot start {}: {e}", exe.display())))?;
    let pid = child.id() as i32;
    // The marker a start of the same release waits on; the dumper removes it.
    let mut marked = spec.clone();
    marked.dumper = Some((pid, process::stat(pid).map_or(0, |s| s.start_time)));
    let _ = write_json(&spec.dir.join(DUMPING), &marked);
    Ok(pid)
}

/// The detached dumper's main (see [`before_switch`]).
pub fn dump_main(spec: OsString) -> ExitCode {
    let say = |m: &str| {
        eprintln!(
            "{} nonstop app.cds: {m}",
            crate::log::utc_millis(SystemTime::now())
        )
    };
    let spec: Dump = match serde_json::from_str(&spec.to_string_lossy()) {
        Ok(s) => s,
        Err(e) => {
            say(&format!("bad {DUMP_ENV}: {e}"));
            return ExitCode::from(2);
        }
    };
    let r = dump(&spec);
    let _ = fs::remove_file(spec.dir.join(DUMPING));
    match r {
        Ok(m) => {
            say(&format!(
                "dumped release {}'s archive ({} bytes) in {} ms",
                spec.release, m.size, m.dump_ms
            ));
            ExitCode::SUCCESS
        }
        Err(e) => {
            say(&format!("no archive for release {}: {e}", spec.release));
            ExitCode::from(1)
        }
    }
}

fn dump(spec: &Dump) -> Result<ArchiveMeta> {
    // The JVM the switch saw, still recording.
    if !process::same_process(spec.pid, spec.start_time)
        || !process::cmdline(spec.pid).iter().any(|a| a == RECORD)
    {
        return Err(failed(format!("pid {} is no longer the app", spec.pid)));
    }
    let meta = fs::symlink_metadata(&spec.dir).map_err(|e| failed(e.to_string()))?;
    if !meta.is_dir() {
        return Err(failed(format!("{} is not a folder", spec.dir.display())));
    }
    let tmp = spec.dir.join(format!(".{ARCHIVE}.tmp"));
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed(format!("cannot remove {}: {e}", tmp.display()))),
    }
    let t0 = Instant::now();
    let command = format!("VM.cds dynamic_dump {}", tmp.display());
    let (ok, out) = match attach(spec.pid, &command) {
        Ok(r) => r,
        Err(e) => (false, e),
    };
    let took = t0.elapsed();
    let written = fs::symlink_metadata(&tmp)
        .ok()
        .filter(|m| m.file_type().is_file());
    let Some(m) = written.filter(|m| ok && m.len() > 0) else {
        let _ = fs::remove_file(&tmp);
        return Err(failed(format!(
            "`{command}` to pid {} failed: {}",
            spec.pid,
            out.trim().replace('\n', "; ")
        )));
    };
    let meta = ArchiveMeta {
        jdk: spec.jdk.clone(),
        size: m.len(),
        sha256: sha256_of(&tmp).map_err(|e| failed(e.to_string()))?,
        dumped_at: crate::log::utc_millis(SystemTime::now()),
        dump_ms: took.as_millis() as u64,
    };
    // The record first: an archive without one is refused (and removed) by the next start.
    write_json(&spec.dir.join(ARCHIVE_META), &meta)?;
    fs::rename(&tmp, spec.dir.join(ARCHIVE)).map_err(|e| failed(e.to_string()))?;
    refresh_launch_file(spec);
    Ok(meta)
}

/// How long the JVM may take to write its archive (2–3 s on a calm machine).
const ATTACH_TIMEOUT: Duration = Duration::from_secs(120);

/// One command over HotSpot's attach socket (`/tmp/.java_pid<pid>` as the JVM sees /tmp,
/// reached through /proc/<pid>/root): what `jcmd <pid> <command>` sends, protocol 1. Returns
/// whether the JVM said 0 and its output.
fn attach(pid: i32, command: &str) -> std::result::Result<(bool, String), String> {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    let name = format!("tmp/.java_pid{pid}");
    let sock = [format!("/proc/{pid}/root/{name}"), format!("/{name}")]
        .into_iter()
        .find(|p| {
            fs::symlink_metadata(p).is_ok_and(|m| {
                use std::os::unix::fs::FileTypeExt;
                m.file_type().is_socket()
            })
        })
        .ok_or_else(|| {
            format!("pid {pid} has no attach socket /{name} (started without {LISTEN}?)")
        })?;
    let mut s = UnixStream::connect(&sock).map_err(|e| format!("cannot connect to {sock}: {e}"))?;
    let _ = s.set_read_timeout(Some(ATTACH_TIMEOUT));
    let _ = s.set_write_timeout(Some(Duration::from_secs(10)));
    // "1" (the protocol), "jcmd", then three arguments: the command line and two empty ones.
    let mut req = b"1\0jcmd\0".to_vec();
    req.extend_from_slice(command.as_bytes());
    req.extend_from_slice(b"\0\0\0");
    s.write_all(&req)
        .map_err(|e| format!("cannot write to {sock}: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out)
        .map_err(|e| format!("no answer from pid {pid}: {e}"))?;
    let (code, rest) = out.split_once('\n').unwrap_or((out.as_str(), ""));
    Ok((
        code.trim() == "0" && !rest.contains("Error"),
        rest.to_string(),
    ))
}

/// systemd: the slot's launch file for this release records; make it use the archive, so the
/// unit's next start (after a crash or a reboot) boots from it.
fn refresh_launch_file(spec: &Dump) {
    let Some(mut v) = read_json::<serde_json::Value>(&spec.launch_file) else {
        return;
    };
    if v.get("release").and_then(|r| r.as_str()) != Some(spec.release.as_str()) {
        return;
    }
    let Some(argv) = v.get_mut("argv").and_then(|a| a.as_array_mut()) else {
        return;
    };
    let Some(i) = argv.iter().position(|a| a.as_str() == Some(RECORD)) else {
        return;
    };
    argv.retain(|a| a.as_str() != Some(LISTEN));
    argv.splice(
        i..=i,
        [
            serde_json::Value::String(format!("{USE}{}", spec.dir.join(ARCHIVE).display())),
            serde_json::Value::String("-Xshare:auto".into()),
        ],
    );
    if let Err(e) = write_json(&spec.launch_file, &v) {
        eprintln!(
            "nonstop app.cds: cannot update {}: {e}",
            spec.launch_file.display()
        );
    }
}

// ---------- systemd's run-slot ----------

// ---------- boots, for status ----------

/// Measured boots of a release (launch to healthy, ms), newest last, by how the JVM started.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Boots {
    /// From its class-data archive.
    #[serde(default)]
    pub archive: Vec<u64>,
    /// Extracted, without an archive (recording one).
    #[serde(default)]
    pub extracted: Vec<u64>,
    /// The jar as shipped (the release could not be extracted).
    #[serde(default)]
    pub jar: Vec<u64>,
}

const BOOTS_KEPT: usize = 5;

/// `health` found `pf`'s app healthy: record how long its boot took, by how it started.
pub fn healthy(cfg: &Config, pf: &process::PidFile) {
    if cfg.app.cds == Mode::Off {
        return;
    }
    let dir = dir(cfg, &pf.release);
    if !fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
        return;
    }
    let Some(started) = process::started_at(pf.pid) else {
        return;
    };
    let ms = SystemTime::now()
        .duration_since(started)
        .unwrap_or_default()
        .as_millis() as u64;
    let cmd = process::cmdline(pf.pid);
    let mut b: Boots = read_json(&dir.join(BOOTS)).unwrap_or_default();
    let list = if cmd.iter().any(|a| a.starts_with(USE)) {
        &mut b.archive
    } else if cmd.iter().any(|a| a == RECORD) {
        &mut b.extracted
    } else {
        &mut b.jar
    };
    list.push(ms);
    if list.len() > BOOTS_KEPT {
        list.remove(0);
    }
    if let Err(e) = write_json(&dir.join(BOOTS), &b) {
        log::debug!("app.cds: {e}");
    }
}

// ---------- status ----------

/// One release as `status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ReleaseDisk {
    pub release: String,
    /// Everything in the release folder (jar, extracted tree, archive).
    pub disk_bytes: u64,
    /// The class-data archive's size, if there is one.
    pub archive_bytes: Option<u64>,
    /// Why it runs as shipped (cannot be extracted).
    pub refused: Option<String>,
    pub boots: Boots,
}

fn du(p: &Path) -> u64 {
    let Ok(m) = fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return m.len();
    }
    fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| du(&e.path()))
        .sum::<u64>()
        + m.len()
}

/// Every release in the store, newest first, with its disk use and archive.
pub fn releases(cfg: &Config) -> Vec<ReleaseDisk> {
    crate::releases::newest_first(cfg)
        .into_iter()
        .map(|name| {
            let d = dir(cfg, &name);
            ReleaseDisk {
                disk_bytes: du(&cfg.releases_dir().join(&name)),
                archive_bytes: fs::symlink_metadata(d.join(ARCHIVE))
                    .ok()
                    .filter(|m| m.file_type().is_file())
                    .map(|m| m.len()),
                refused: fs::read_to_string(d.join(REFUSED))
                    .ok()
                    .map(|s| s.trim().to_string()),
                boots: read_json(&d.join(BOOTS)).unwrap_or_default(),
                release: name,
            }
        })
        .collect()
}

fn secs(ms: &[u64]) -> Option<String> {
    let last = ms.last()?;
    Some(format!("{:.1} s", *last as f64 / 1000.0))
}

/// The `RELEASES` rows of `status`: release, disk, archive, the last measured boots.
pub fn rows(rs: &[ReleaseDisk]) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "RELEASE",
        "DISK",
        "ARCHIVE",
        "BOOT (last, launch to healthy)",
    ]
    .map(String::from)
    .to_vec()];
    for r in rs {
        let boots: Vec<String> = [
            (secs(&r.boots.jar), "as shipped"),
            (secs(&r.boots.extracted), "extracted"),
            (secs(&r.boots.archive), "from the archive"),
        ]
        .into_iter()
        .filter_map(|(s, how)| s.map(|s| format!("{s} {how}")))
        .collect();
        rows.push(vec![
            r.release.clone(),
            crate::log::human_bytes(r.disk_bytes),
            match (&r.archive_bytes, &r.refused) {
                (Some(n), _) => crate::log::human_bytes(*n),
                (None, Some(_)) => "none (cannot be extracted)".into(),
                (None, None) => "-".into(),
            },
            if boots.is_empty() {
                "-".into()
            } else {
                boots.join(", ")
            },
        ]);
    }
    rows
}

#[cfg(test)]
mod tests;

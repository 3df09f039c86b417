//! Launching an app under the builtin supervisor: a tiny supervisor (the same nonstop binary
//! re-executed with `NONSTOP_SUPERVISE` set) in its own session with stdin from /dev/null and
//! stdout/stderr appended to the slot's log, so it neither holds the CodeDeploy hook's pipes
//! nor receives the hook's process-group SIGTERM. The supervisor starts `java`, writes the pid
//! file (pid plus its /proc start time), waits, and records the exit status so `health` can
//! report why an app died.

use crate::error::{failed, Context, Result};
use crate::error::{Error, Refusal};
use crate::fsx::write_atomic;
use crate::process::{boot_id, read_pid_file, stat, ExitRecord, PidFile};
use serde::{Deserialize, Serialize};
use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// Set (to a JSON [`Launch`]) when a nonstop binary is re-executed as a supervisor.
pub const SUPERVISE_ENV: &str = "NONSTOP_SUPERVISE";

/// Everything the supervisor needs; serialized into [`SUPERVISE_ENV`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Launch {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub log: PathBuf,
    pub pid_file: PathBuf,
    pub exit_file: PathBuf,
    pub slot: String,
    pub port: u16,
    pub jar: PathBuf,
    pub release: String,
    /// uid and gid the app runs as (`app.user`); `None`: the user nonstop runs as.
    #[serde(default)]
    pub run_as: Option<(u32, u32)>,
}

/// Start the app described by `spec` and return its pid file once the supervisor wrote it.
pub fn launch(spec: &Launch) -> Result<PidFile> {
    for d in [&spec.cwd, &spec.pid_file, &spec.log] {
        let dir = if d == &spec.cwd {
            d.as_path()
        } else {
            d.parent().unwrap_or(Path::new("/"))
        };
        crate::fsx::create_dirs(dir).context(format!("cannot create {}", dir.display()))?;
    }
    let _ = fs::remove_file(&spec.pid_file);
    let _ = fs::remove_file(&spec.exit_file);
    let log = open_log(&spec.log)?;
    // 0644 whatever the umask: the operator reads it without root.
    let _ = log.set_permissions(fs::Permissions::from_mode(0o644));
    let log2 = log
        .try_clone()
        .context("cannot duplicate the log descriptor")?;
    close_inherited_on_exec();
    let exe = std::env::current_exe().context("cannot find the running binary")?;
    let json = serde_json::to_string(spec).context("cannot encode the launch")?;
    let mut cmd = Command::new(&exe);
    cmd.env(SUPERVISE_ENV, json)
        .current_dir(&spec.cwd)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // Safety: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| rustix::process::setsid().map(drop).map_err(Into::into));
    }
    let mut child = cmd
        .spawn()
        .context(format!("cannot start {}", exe.display()))?;
    let sup = child.id() as i32;
    let t0 = Instant::now();
    loop {
        if let Some(pf) = read_pid_file(&spec.pid_file).filter(|p| p.supervisor == sup) {
            return Ok(pf);
        }
        if let Ok(Some(st)) = child.try_wait() {
            return Err(failed(format!(
                "the app's supervisor exited at once ({st}); see {}",
                spec.log.display()
            )));
        }
        if t0.elapsed() > Duration::from_secs(10) {
            return Err(failed(format!(
                "no pid file {} 10 s after launch; see {}",
                spec.pid_file.display(),
                spec.log.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Open the slot's log for appending, never through what someone planted at its path: a
/// symlink is refused (`O_NOFOLLOW`; as root, appending through it would write into any file
/// it names), and so is anything but a regular file with a single link.
fn open_log(path: &Path) -> Result<fs::File> {
    use std::os::unix::fs::MetadataExt;
    let refuse = |what: &str| {
        Error::refused(Refusal::NotOurs { path: path.to_path_buf() }, format!(
            "refusing to write the app's output to {}: it is {what}, not the log file nonstop creates (remove it)",
            path.display()
        ))
    };
    let log = match OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o644)
        // NONBLOCK: a FIFO planted there fails at once instead of blocking the open.
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            let to = fs::read_link(path)
                .map(|t| format!(" to {}", t.display()))
                .unwrap_or_default();
            return Err(refuse(&format!("a symlink{to}")));
        }
        Err(e) => return Err(failed(format!("cannot open log {}: {e}", path.display()))),
    };
    let meta = log
        .metadata()
        .context(format!("cannot open log {}", path.display()))?;
    if !meta.file_type().is_file() {
        return Err(refuse("not a regular file"));
    }
    if meta.nlink() > 1 {
        return Err(refuse(&format!("a hard link ({} names)", meta.nlink())));
    }
    rustix::fs::fcntl_setfl(&log, rustix::fs::OFlags::APPEND)
        .context(format!("cannot open log {}", path.display()))?;
    Ok(log)
}

/// Mark every descriptor above 2 close-on-exec, so a launched app inherits only 0, 1 and 2
/// even when our own parent (the CodeDeploy agent, a CI runner) leaked descriptors to us.
fn close_inherited_on_exec() {
    let Ok(dir) = fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        // Safety: the fd is only borrowed for the fcntl call; a closed fd just fails.
        let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
        let _ = rustix::io::fcntl_setfd(b, rustix::io::FdFlags::CLOEXEC);
    }
}

/// The supervisor's main: run the app, publish its pid, record how it ended.
pub fn supervise(spec: OsString) -> ExitCode {
    let spec: Launch = match serde_json::from_str(&spec.to_string_lossy()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("nonstop supervisor: bad {SUPERVISE_ENV}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut cmd = Command::new(&spec.argv[0]);
    cmd.args(&spec.argv[1..])
        .env_remove(SUPERVISE_ENV)
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&spec.cwd)
        .stdin(Stdio::null());
    if let Some((uid, gid)) = spec.run_as {
        cmd.uid(uid).gid(gid);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("nonstop supervisor: cannot run {}: {e}", spec.argv[0]);
            let rec = ExitRecord {
                pid: 0,
                code: Some(127),
                signal: None,
                at: crate::log::utc_millis(SystemTime::now()),
            };
            let _ = write_json(&spec.exit_file, &rec);
            return ExitCode::from(1);
        }
    };
    let pid = child.id() as i32;
    let pf = PidFile {
        pid,
        start_time: stat(pid).map(|s| s.start_time).unwrap_or(0),
        supervisor: std::process::id() as i32,
        slot: spec.slot.clone(),
        port: spec.port,
        jar: spec.jar.clone(),
        release: spec.release.clone(),
        started_at: crate::log::utc_millis(SystemTime::now()),
        boot_id: boot_id(),
    };
    if let Err(e) = write_json(&spec.pid_file, &pf) {
        eprintln!("nonstop supervisor: {e}");
    }
    let status = child.wait();
    let rec = ExitRecord {
        pid,
        code: status.as_ref().ok().and_then(|s| s.code()),
        signal: status.as_ref().ok().and_then(|s| s.signal()),
        at: crate::log::utc_millis(SystemTime::now()),
    };
    let _ = write_json(&spec.exit_file, &rec);
    eprintln!("nonstop supervisor: app pid {pid} ended: {rec}");
    ExitCode::SUCCESS
}

fn write_json<T: Serialize>(path: &Path, v: &T) -> Result<()> {
    let mut s = serde_json::to_string_pretty(v).context("cannot encode")?;
    s.push('\n');
    write_atomic(path, s.as_bytes(), 0o644)
}

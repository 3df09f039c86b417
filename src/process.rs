//! Processes: launching a slot's app, finding who serves a port, proving a process is the
//! slot's app, and stopping it. **This is the only module that sends signals.**
//!
//! An app is launched through a tiny supervisor (the same nonstop binary re-executed with
//! `NONSTOP_SUPERVISE` set) in its own session with stdin from /dev/null and stdout/stderr
//! appended to the slot's log, so it neither holds the CodeDeploy hook's pipes nor receives the
//! hook's process-group SIGTERM. The supervisor starts `java`, writes the pid file (pid plus its
//! /proc start time), waits, and records the exit status so `health` can report why an app died.
//!
//! Everything about other processes is read from /proc: no lsof, no fuser.

use crate::error::{failed, Context, Result};
use crate::fsx::write_atomic;
use crate::interrupt;
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

/// What `start` records about a running app: `workdir/run/<slot>.pid`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PidFile {
    pub pid: i32,
    /// Field 22 of /proc/PID/stat: proves the pid was not reused.
    pub start_time: u64,
    pub supervisor: i32,
    pub slot: String,
    pub port: u16,
    pub jar: PathBuf,
    pub release: String,
    pub started_at: String,
    /// `/proc/sys/kernel/random/boot_id` when the app started: a pid file from before a reboot
    /// names no process of this boot, whatever its pid and start time (absent in old files).
    #[serde(default)]
    pub boot_id: Option<String>,
}

/// Why a slot's pid file names no running app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stale {
    /// Written before the host last booted.
    BeforeReboot,
    /// The process is gone (or its pid now belongs to another process).
    Exited,
    /// The pid runs, with the recorded start time, but its command line is not this slot's
    /// java with this jar and port (a forged or hand-edited pid file).
    NotTheApp(String),
}

/// What a slot's pid file says now.
#[derive(Debug, Clone)]
pub enum SlotProcess {
    /// No pid file (or an unreadable one).
    None,
    /// The recorded process runs and is the slot's app.
    Running(PidFile),
    /// A pid file naming no running app of the slot.
    Stale(PidFile, Stale),
}

/// This boot's id, if the kernel exposes it.
pub fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl PidFile {
    /// Is the recorded process running now, in this boot, as this slot's app?
    pub fn check(&self) -> std::result::Result<(), Stale> {
        if self.boot_id.is_some() && self.boot_id != boot_id() {
            return Err(Stale::BeforeReboot);
        }
        if !same_process(self.pid, self.start_time) {
            return Err(Stale::Exited);
        }
        // The app's command line names its jar and its port: a pid file that names another
        // process (forged, or copied from elsewhere) with a matching start time is refused.
        let cmd = cmdline(self.pid);
        let jar = self.jar.to_string_lossy();
        let port_arg = format!("-Dserver.port={}", self.port);
        // (or its extracted twin, `app.cds`)
        if !cmd
            .iter()
            .any(|a| *a == jar || crate::cds::runs_twin(a, &self.jar))
            || !cmd.contains(&port_arg)
        {
            return Err(Stale::NotTheApp(cmd.join(" ")));
        }
        Ok(())
    }

    /// True if [`PidFile::check`] passes.
    pub fn running(&self) -> bool {
        self.check().is_ok()
    }
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stale::BeforeReboot => write!(f, "it is from before the host last booted"),
            Stale::Exited => write!(f, "that process is gone"),
            Stale::NotTheApp(cmd) => write!(
                f,
                "that pid runs something else ({})",
                if cmd.is_empty() {
                    "command line unknown"
                } else {
                    cmd
                }
            ),
        }
    }
}

/// The slot's process as its pid file tells it.
pub fn slot_process(pid_file: &Path) -> SlotProcess {
    match read_pid_file(pid_file) {
        None => SlotProcess::None,
        Some(pf) => match pf.check() {
            Ok(()) => SlotProcess::Running(pf),
            Err(why) => SlotProcess::Stale(pf, why),
        },
    }
}

/// The running app a pid file names, if it is running (see [`PidFile::check`]).
pub fn running_app(pid_file: &Path) -> Option<PidFile> {
    read_pid_file(pid_file).filter(PidFile::running)
}

/// How an app ended, written by its supervisor: `workdir/run/<slot>.exit`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExitRecord {
    pub pid: i32,
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub at: String,
}

impl ExitRecord {
    /// The app ended the way a graceful stop ends: exit status 0, 143 (128 + SIGTERM: what a
    /// JVM returns after its shutdown hooks ran on SIGTERM, Spring Boot's graceful shutdown
    /// included), or killed by SIGTERM itself (a process with no handler). Not a failure.
    pub fn graceful(&self) -> bool {
        matches!(
            (self.code, self.signal),
            (Some(0 | 143), _) | (None, Some(15))
        )
    }
}

impl std::fmt::Display for ExitRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.code, self.signal) {
            (Some(143), _) => write!(f, "exit status 143 (SIGTERM)"),
            (Some(c), _) => write!(f, "exit status {c}"),
            (_, Some(s)) => write!(f, "killed by signal {s}"),
            _ => write!(f, "unknown exit status"),
        }
    }
}

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
        failed(format!(
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

/// Read a pid file; a missing or unreadable one is `None`.
pub fn read_pid_file(path: &Path) -> Option<PidFile> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// Read an exit record; missing is `None`.
pub fn read_exit_record(path: &Path) -> Option<ExitRecord> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

// ---------- /proc readers ----------

/// The parts of /proc/PID/stat nonstop uses.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub state: char,
    pub ppid: i32,
    pub start_time: u64,
}

/// /proc/PID/stat, or `None` if there is no such process.
pub fn stat(pid: i32) -> Option<Stat> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(Stat {
        state: f.first()?.chars().next()?,
        ppid: f.get(1)?.parse().ok()?,
        start_time: f.get(19)?.parse().ok()?,
    })
}

/// When `pid` started, as wall-clock time: its /proc start time (clock ticks since boot)
/// placed against /proc/uptime, so the boot time's whole-second rounding does not enter.
pub fn started_at(pid: i32) -> Option<SystemTime> {
    let ticks = stat(pid)?.start_time;
    let hz = rustix::param::clock_ticks_per_second().max(1);
    let up: f64 = fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    let age = up - ticks as f64 / hz as f64;
    SystemTime::now().checked_sub(Duration::from_secs_f64(age.max(0.0)))
}

/// Running (a zombie or a dead task counts as exited).
pub fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|s| !matches!(s.state, 'Z' | 'X' | 'x'))
}

/// The same process as recorded: alive and with the recorded start time.
pub fn same_process(pid: i32, start_time: u64) -> bool {
    stat(pid).is_some_and(|s| s.start_time == start_time && !matches!(s.state, 'Z' | 'X' | 'x'))
}

/// Command line of a process as a list of arguments.
pub fn cmdline(pid: i32) -> Vec<String> {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Pids of the live children of `ppid`.
pub fn children(ppid: i32) -> Vec<i32> {
    all_pids()
        .filter(|&p| stat(p).is_some_and(|s| s.ppid == ppid && !matches!(s.state, 'Z' | 'X')))
        .collect()
}

fn all_pids() -> impl Iterator<Item = i32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
}

/// TCP socket states from /proc/net/tcp.
const TCP_ESTABLISHED: u8 = 0x01;
const TCP_SYN_RECV: u8 = 0x03;
const TCP_LISTEN: u8 = 0x0A;

/// One row of /proc/net/tcp{,6}: local port, remote port, state, inode.
#[derive(Debug, Clone, Copy)]
pub struct TcpRow {
    pub local_port: u16,
    pub remote_port: u16,
    pub state: u8,
    pub inode: u64,
}

/// The IPv4 and IPv6 TCP sockets of this network namespace whose state is in `states`.
/// Asks the kernel through netlink sock_diag (as `ss` does), which filters by state before
/// anything is copied: a busy host can hold 100,000 TIME_WAIT sockets, and /proc/net/tcp
/// lists every one of them (seconds of CPU per read). Falls back to /proc/net/tcp{,6}.
pub fn tcp_sockets(states: &[u8]) -> Vec<TcpRow> {
    let mask = states.iter().fold(0u32, |m, s| m | (1 << s));
    match sock_diag(mask) {
        Ok(rows) => rows,
        Err(e) => {
            log::debug!("sock_diag unavailable ({e}); reading /proc/net/tcp");
            proc_net_tcp()
                .into_iter()
                .filter(|r| states.contains(&r.state))
                .collect()
        }
    }
}

/// One inet_diag dump per address family (AF_INET, AF_INET6) for TCP sockets in `mask`.
fn sock_diag(mask: u32) -> std::io::Result<Vec<TcpRow>> {
    use rustix::net::{
        netlink, recv, send, socket, AddressFamily, RecvFlags, SendFlags, SocketType,
    };
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const NLM_F_REQUEST_DUMP: u16 = 0x1 | 0x300;
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    let fd = socket(
        AddressFamily::NETLINK,
        SocketType::RAW,
        Some(netlink::SOCK_DIAG),
    )?;
    let mut rows = vec![];
    let mut buf = vec![0u8; 64 * 1024];
    for (seq, family) in [(1u32, 2u8), (2, 10)] {
        // struct nlmsghdr (16 bytes) + struct inet_diag_req_v2 (56 bytes)
        let mut req = Vec::with_capacity(72);
        req.extend_from_slice(&72u32.to_ne_bytes());
        req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        req.extend_from_slice(&NLM_F_REQUEST_DUMP.to_ne_bytes());
        req.extend_from_slice(&seq.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes());
        req.extend_from_slice(&[family, 6 /* IPPROTO_TCP */, 0, 0]);
        req.extend_from_slice(&mask.to_ne_bytes());
        req.extend_from_slice(&[0u8; 48]);
        send(&fd, &req, SendFlags::empty())?;
        'dump: loop {
            let (n, _) = recv(&fd, &mut buf[..], RecvFlags::empty())?;
            if n == 0 {
                break;
            }
            let mut off = 0;
            while off + 16 <= n {
                let word = |at: usize| u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap());
                let len = word(off) as usize;
                let kind = u16::from_ne_bytes([buf[off + 4], buf[off + 5]]);
                if len < 16 || off + len > n {
                    return Err(std::io::Error::other("malformed sock_diag reply"));
                }
                match kind {
                    NLMSG_DONE => break 'dump,
                    NLMSG_ERROR => {
                        let code = word(off + 16) as i32;
                        return Err(std::io::Error::from_raw_os_error(-code));
                    }
                    _ if len >= 16 + 72 => {
                        // struct inet_diag_msg: state at 1, sport/dport (big endian) at 4/6,
                        // inode at 68.
                        let m = &buf[off + 16..off + len];
                        rows.push(TcpRow {
                            state: m[1],
                            local_port: u16::from_be_bytes([m[4], m[5]]),
                            remote_port: u16::from_be_bytes([m[6], m[7]]),
                            inode: u64::from(u32::from_ne_bytes(m[68..72].try_into().unwrap())),
                        });
                    }
                    _ => {}
                }
                off += (len + 3) & !3;
            }
        }
    }
    Ok(rows)
}

/// Every row of /proc/net/tcp and /proc/net/tcp6 (the slow path).
fn proc_net_tcp() -> Vec<TcpRow> {
    let mut rows = vec![];
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = |addr: &str| {
                addr.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            if let (Some(lp), Some(rp), Some(st), Some(ino)) = (
                f.get(1).and_then(|a| port(a)),
                f.get(2).and_then(|a| port(a)),
                f.get(3).and_then(|s| u8::from_str_radix(s, 16).ok()),
                f.get(9).and_then(|i| i.parse().ok()),
            ) {
                rows.push(TcpRow {
                    local_port: lp,
                    remote_port: rp,
                    state: st,
                    inode: ino,
                });
            }
        }
    }
    rows
}

/// Inodes of the sockets listening on `port`.
pub fn listen_inodes(port: u16) -> Vec<u64> {
    tcp_sockets(&[TCP_LISTEN])
        .into_iter()
        .filter(|r| r.local_port == port)
        .map(|r| r.inode)
        .collect()
}

/// True if some socket listens on `port`.
pub fn port_in_use(port: u16) -> bool {
    !listen_inodes(port).is_empty()
}

/// Established TCP connections to a server on `port` (accepted by it), counted once.
pub fn established_to(port: u16) -> usize {
    tcp_sockets(&[TCP_ESTABLISHED])
        .into_iter()
        .filter(|r| r.local_port == port && r.inode != 0)
        .count()
}

/// Connections to a server on `port` that it has to serve or cut: established, accepted or
/// still waiting in its listen queue (an established socket the app has not accepted yet has
/// no inode), and those whose handshake is under way (SYN_RECV). What a drain waits for.
pub fn in_flight_to(port: u16) -> usize {
    tcp_sockets(&[TCP_ESTABLISHED, TCP_SYN_RECV])
        .into_iter()
        .filter(|r| r.local_port == port)
        .count()
}

/// Connections to `port` that conntrack saw start but whose handshake has not completed
/// (`SYN_SENT`, `SYN_RECV`): a SYN steered (DNATed) to `port` that no socket table shows yet,
/// because the packet still waits in the loopback backlog. `None` when
/// /proc/net/nf_conntrack cannot be read (no conntrack, or no procfs view of it).
pub fn connecting_to(port: u16) -> Option<usize> {
    let text = fs::read_to_string("/proc/net/nf_conntrack").ok()?;
    Some(count_connecting(&text, port))
}

/// [`connecting_to`] on the text of /proc/net/nf_conntrack: a `tcp` entry in `SYN_SENT` or
/// `SYN_RECV` whose original destination port, or whose reply's source port (the port after
/// DNAT), is `port`.
fn count_connecting(text: &str, port: u16) -> usize {
    let want = port.to_string();
    text.lines()
        .filter(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.get(2) == Some(&"tcp")
                && w.iter().any(|x| *x == "SYN_SENT" || *x == "SYN_RECV")
                && (w.iter().filter_map(|x| x.strip_prefix("dport=")).next() == Some(&want)
                    || w.iter().filter_map(|x| x.strip_prefix("sport=")).nth(1) == Some(&want))
        })
        .count()
}

/// Inodes of the sockets `pid` holds open.
pub fn socket_inodes(pid: i32) -> Vec<u64> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return vec![];
    };
    dir.flatten()
        .filter_map(|e| {
            let l = fs::read_link(e.path()).ok()?;
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect()
}

/// True if `pid` holds one of `inodes` open.
pub fn holds_socket(pid: i32, inodes: &[u64]) -> bool {
    socket_inodes(pid).iter().any(|i| inodes.contains(i))
}

/// The listening sockets `pid` holds (for nginx: the master's listeners).
pub fn listening_sockets_of(pid: i32) -> Vec<u64> {
    let listening: std::collections::HashSet<u64> = tcp_sockets(&[TCP_LISTEN])
        .into_iter()
        .map(|r| r.inode)
        .collect();
    socket_inodes(pid)
        .into_iter()
        .filter(|i| listening.contains(i))
        .collect()
}

/// The process holding the LISTEN socket on `port`, if any can be seen.
pub fn listener(port: u16) -> Option<i32> {
    listeners(port).into_iter().next()
}

/// Every process holding a LISTEN socket on `port` (a socket inherited across fork is held by
/// parent and child; IPv4 and IPv6 sockets are separate), lowest pid first.
pub fn listeners(port: u16) -> Vec<i32> {
    let inodes = listen_inodes(port);
    if inodes.is_empty() {
        return vec![];
    }
    all_pids().filter(|&p| holds_socket(p, &inodes)).collect()
}

/// `pid` and every process below it (children, grandchildren, ...).
pub fn tree(pid: i32) -> std::collections::HashSet<i32> {
    let parents: Vec<(i32, i32)> = all_pids()
        .filter_map(|p| Some((p, stat(p)?.ppid)))
        .collect();
    let mut out = std::collections::HashSet::from([pid]);
    loop {
        let before = out.len();
        for (p, pp) in &parents {
            if out.contains(pp) {
                out.insert(*p);
            }
        }
        if out.len() == before {
            return out;
        }
    }
}

/// Who answers on a slot's port, proved against its pid file.
#[derive(Debug, Clone)]
pub enum Answerer {
    /// The slot's app (the pid file's process or one of its descendants) holds every LISTEN
    /// socket on the port: `listener` is the one that holds it.
    App { pf: PidFile, listener: i32 },
    /// The slot's app runs but nothing listens on the port yet.
    NotListening(PidFile),
    /// The slot has no running app of nonstop's (why, when a pid file exists).
    NoApp(Option<Stale>),
    /// Another process holds the port: its pid (if visible) and command line.
    Stranger { pid: Option<i32>, cmd: String },
}

/// Prove who answers on `port` for the slot whose pid file is `pid_file` (the builtin
/// supervisor's view: the app is the pid file's process and its descendants).
pub fn answerer(pid_file: &Path, port: u16) -> Answerer {
    answerer_of(slot_process(pid_file), |pf| tree(pf.pid), port)
}

/// Prove who answers on `port` for a slot whose app is `app`; `family` gives every process
/// that belongs to the app (its process tree, or its systemd unit's cgroup).
pub fn answerer_of(
    app: SlotProcess,
    family: impl Fn(&PidFile) -> std::collections::HashSet<i32>,
    port: u16,
) -> Answerer {
    let holders = listeners(port);
    let listening = !holders.is_empty() || port_in_use(port);
    let app = match app {
        SlotProcess::Running(pf) => pf,
        SlotProcess::Stale(_, why) if !listening => return Answerer::NoApp(Some(why)),
        SlotProcess::None if !listening => return Answerer::NoApp(None),
        SlotProcess::Stale(..) | SlotProcess::None => return stranger(&holders, None),
    };
    if !listening {
        return Answerer::NotListening(app);
    }
    let family = family(&app);
    match holders.iter().filter(|h| family.contains(h)).max() {
        Some(&listener) if holders.iter().all(|h| family.contains(h)) => {
            Answerer::App { pf: app, listener }
        }
        _ => stranger(&holders, Some(&family)),
    }
}

/// The first holder of the port outside `ours` (a pid is `None` when /proc hides it).
fn stranger(holders: &[i32], ours: Option<&std::collections::HashSet<i32>>) -> Answerer {
    let pid = holders
        .iter()
        .copied()
        .find(|h| ours.is_none_or(|o| !o.contains(h)));
    Answerer::Stranger {
        pid,
        cmd: pid.map(|p| cmdline(p).join(" ")).unwrap_or_default(),
    }
}

impl Answerer {
    /// `Ok(listener pid)` when the slot's own app answers; else why traffic must not go there.
    pub fn proven(&self, slot: &str, port: u16) -> std::result::Result<i32, String> {
        match self {
            Answerer::App { listener, .. } => Ok(*listener),
            Answerer::NotListening(pf) => Err(format!(
                "the app of slot {slot} (pid {}) does not listen on port {port}",
                pf.pid
            )),
            Answerer::NoApp(None) => Err(format!(
                "slot {slot} runs no app started by nonstop (no pid file): run start first"
            )),
            Answerer::NoApp(Some(why)) => Err(format!(
                "slot {slot} runs no app started by nonstop (its pid file is stale: {why}): run start first"
            )),
            Answerer::Stranger { pid: Some(pid), cmd } => Err(format!(
                "port {port} of slot {slot} is held by pid {pid}, which is not the slot's app ({})",
                if cmd.is_empty() { "command line unknown" } else { cmd }
            )),
            Answerer::Stranger { pid: None, .. } => Err(format!(
                "port {port} of slot {slot} is held by a process this user cannot see in /proc, not by the slot's app"
            )),
        }
    }
}

// ---------- whose process is it ----------

/// Who serves a slot's port, and how sure we are it is the slot's app.
#[derive(Debug, Clone)]
pub enum Owner {
    /// Started by nonstop: pid file, same start time, and it holds the port (or nobody does yet).
    Ours(PidFile),
    /// Not from our pid file, but a `java` with the port on its command line.
    JavaWithPort { pid: i32, cmd: String },
    /// Something else holds the port (pid unknown if /proc does not show it to us).
    Foreign { pid: Option<i32>, cmd: String },
}

impl Owner {
    pub fn pid(&self) -> Option<i32> {
        match self {
            Owner::Ours(p) => Some(p.pid),
            Owner::JavaWithPort { pid, .. } => Some(*pid),
            Owner::Foreign { pid, .. } => *pid,
        }
    }
}

/// Who runs on `port`, given the slot's pid file (the builtin supervisor's view). The pid
/// file's process is ours when it runs as the slot's app ([`PidFile::check`]) and it or its
/// descendants (a java wrapper that does not exec) hold every LISTEN socket on the port, or
/// nobody holds one yet.
pub fn owner(pid_file: &Path, port: u16) -> Option<Owner> {
    owner_of(answerer(pid_file, port), port)
}

/// Who runs on `port`, from what [`answerer_of`] proved.
pub fn owner_of(answerer: Answerer, port: u16) -> Option<Owner> {
    let holder = match answerer {
        Answerer::App { pf, .. } | Answerer::NotListening(pf) => return Some(Owner::Ours(pf)),
        Answerer::NoApp(_) => return None,
        Answerer::Stranger { pid, .. } => pid,
    };
    let cmd = holder.map(cmdline).unwrap_or_default();
    let shown = cmd.join(" ");
    let is_java = cmd
        .first()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n == "java");
    let port_s = port.to_string();
    let names_port = cmd
        .iter()
        .any(|a| *a == port_s || a.ends_with(&format!("={port_s}")));
    match holder {
        Some(pid) if is_java && names_port => Some(Owner::JavaWithPort { pid, cmd: shown }),
        pid => Some(Owner::Foreign { pid, cmd: shown }),
    }
}

/// SIGTERM `pid`, wait up to `grace` for it to exit (a zombie counts), then SIGKILL and wait
/// again. `start_time` guards against pid reuse. Returns how long the shutdown took and
/// whether SIGKILL was needed.
pub fn terminate(pid: i32, start_time: u64, grace: Duration) -> Result<(Duration, bool)> {
    use rustix::process::{kill_process, Pid, Signal};
    let target = Pid::from_raw(pid).ok_or_else(|| failed(format!("invalid pid {pid}")))?;
    let gone = || !same_process(pid, start_time);
    let t0 = Instant::now();
    if gone() {
        return Ok((Duration::ZERO, false));
    }
    kill_process(target, Signal::TERM).context(format!("cannot send SIGTERM to pid {pid}"))?;
    log::info!(
        "sent SIGTERM to pid {pid}; waiting up to {:?} for it to exit",
        grace
    );
    while t0.elapsed() < grace {
        if gone() {
            return Ok((t0.elapsed(), false));
        }
        interrupt::sleep(Duration::from_millis(20), "waiting for the app to exit")?;
    }
    if gone() {
        return Ok((t0.elapsed(), false));
    }
    log::warn!(
        "pid {pid} still running {:?} after SIGTERM; sending SIGKILL",
        grace
    );
    kill_process(target, Signal::KILL).context(format!("cannot send SIGKILL to pid {pid}"))?;
    let t1 = Instant::now();
    while t1.elapsed() < Duration::from_secs(10) {
        if gone() {
            return Ok((t0.elapsed(), true));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(failed(format!("pid {pid} survived SIGKILL for 10 s")))
}

/// Wait until nothing listens on `port`, up to `limit`.
pub fn wait_port_free(port: u16, limit: Duration) -> bool {
    let t0 = Instant::now();
    loop {
        if !port_in_use(port) {
            return true;
        }
        if t0.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_the_app_has_not_accepted_yet_is_in_flight() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        // The kernel completed the handshake; the connection waits in the listen queue.
        assert_eq!(established_to(port), 0, "an accepted-only count misses it");
        assert_eq!(in_flight_to(port), 1);
        let (a, _) = l.accept().unwrap();
        assert_eq!(in_flight_to(port), 1);
        drop((a, c));
    }

    #[test]
    fn conntrack_entries_mid_handshake_count_by_the_port_after_dnat() {
        let text = "\
ipv4     2 tcp      6 118 SYN_SENT src=127.0.0.1 dst=127.0.0.1 sport=40001 dport=18090 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=8082 dport=40001 mark=0 use=1
ipv4     2 tcp      6 59 SYN_RECV src=127.0.0.1 dst=127.0.0.1 sport=40002 dport=8082 src=127.0.0.1 dst=127.0.0.1 sport=8082 dport=40002 mark=0 use=1
ipv4     2 tcp      6 431999 ESTABLISHED src=127.0.0.1 dst=127.0.0.1 sport=40003 dport=18090 src=127.0.0.1 dst=127.0.0.1 sport=8082 dport=40003 [ASSURED] mark=0 use=1
ipv4     2 tcp      6 118 SYN_SENT src=127.0.0.1 dst=127.0.0.1 sport=40004 dport=18090 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=8081 dport=40004 mark=0 use=1
ipv4     2 udp      17 29 src=127.0.0.1 dst=127.0.0.1 sport=8082 dport=53 [UNREPLIED] src=127.0.0.1 dst=127.0.0.1 sport=53 dport=8082 mark=0 use=1
";
        assert_eq!(count_connecting(text, 8082), 2);
        assert_eq!(count_connecting(text, 8081), 1);
        assert_eq!(count_connecting(text, 18090), 2);
    }

    #[test]
    fn sock_diag_agrees_with_proc() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (_a, _) = l.accept().unwrap();
        let fast =
            sock_diag((1 << TCP_LISTEN) | (1 << TCP_ESTABLISHED)).expect("sock_diag works here");
        let slow = proc_net_tcp();
        for rows in [&fast, &slow] {
            assert!(rows
                .iter()
                .any(|r| r.state == TCP_LISTEN && r.local_port == port));
            assert_eq!(
                rows.iter()
                    .filter(|r| r.state == TCP_ESTABLISHED && r.local_port == port)
                    .count(),
                1
            );
        }
        assert!(fast
            .iter()
            .all(|r| r.state == TCP_LISTEN || r.state == TCP_ESTABLISHED));
        assert_eq!(established_to(port), 1);
        assert_eq!(in_flight_to(port), 1);
        assert!(port_in_use(port));
        assert_eq!(listener(port), Some(std::process::id() as i32));
        drop(c);
    }
}

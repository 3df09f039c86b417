//! The systemd supervisor: each slot is an instance of the app's template unit,
//! `nonstop-<app>@<slot>.service`, which `sudo nonstop setup` writes once to /etc/systemd/system
//! (marked `# Managed by nonstop`; a unit without the marker is never touched). A deploy never
//! writes a unit: `start` writes the slot's launch file (`workdir/run/<slot>.launch.json`: the
//! release, the java command line, the release folder) and starts the instance; the unit's
//! `ExecStart=` is the root-owned nonstop in its `run-slot` mode, which checks the launch file
//! against the registry (the slot's port, a folder under the app's releases) and execs java, so
//! the unit's main process is the JVM.
//!
//! The unit runs as the app user setup fixed, with `KillSignal=SIGTERM`,
//! `TimeoutStopSec=stop.grace`, `SuccessExitStatus=143` (a JVM ended by SIGTERM),
//! `Restart=on-failure` with at most 3 starts in 60 s. Its own cgroup: the CodeDeploy agent's
//! restart does not kill it. The unit's MainPID and cgroup prove the app: a process on the port
//! outside that cgroup is a stranger. `app.env` (passwords, often) is in neither the unit nor
//! the launch file but in setup's root-only `/etc/nonstop/apps/<app>.env` (`EnvironmentFile=`).
//!
//! **This is the only module that runs `systemctl` and `journalctl`** (argv lists; as root, or
//! through `sudo -n` otherwise).

use super::{Kind, Start, Stopped, Supervision, Supervisor};
use crate::config::{Config, Slot};
use crate::error::{failed, Context, Result};
use crate::process::{self, ExitRecord, PidFile, SlotProcess};
use crate::{fsx, interrupt};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// Where generated units go.
pub const UNIT_DIR: &str = "/etc/systemd/system";
/// The first line of every unit nonstop writes: the proof that it may rewrite or remove it.
pub const MARKER: &str = "# Managed by nonstop";

/// See the module doc.
pub struct Systemd;

/// `nonstop-<app>@<slot>.service`: `@` cannot occur in an app name, so two apps never share
/// a unit (see [`crate::registry`]).
pub fn unit_name(cfg: &Config, slot: &Slot) -> String {
    crate::registry::unit(&cfg.app.name, &slot.name)
}

/// The unit an older nonstop wrote for the slot, `nonstop-<app>-<slot>.service`, when it is
/// there and its marker line names this app and slot (another app's unit may have that name:
/// app `shop` slot `api-blue` and app `shop-api` slot `blue`).
pub fn legacy_unit(cfg: &Config, slot: &Slot) -> Option<String> {
    let name = format!("nonstop-{}-{}.service", cfg.app.name, slot.name);
    let text = std::fs::read_to_string(PathBuf::from(UNIT_DIR).join(&name)).ok()?;
    let first = text.lines().next()?;
    let ours = first.starts_with(&format!("{MARKER}: slot {} (port ", slot.name))
        && first.contains(&format!(") of {}, release ", cfg.app.name));
    ours.then_some(name)
}

/// The unit that runs the slot now: an older nonstop's unit while it is still active (it is
/// stopped by its own name, and the slot's next start uses the new one), else
/// [`unit_name`].
fn unit_of(cfg: &Config, slot: &Slot) -> String {
    if let Some(old) = legacy_unit(cfg, slot) {
        let state = show(&old).get("ActiveState").cloned().unwrap_or_default();
        if matches!(
            state.as_str(),
            "active" | "activating" | "reloading" | "deactivating"
        ) {
            return old;
        }
    }
    unit_name(cfg, slot)
}

/// True when PID 1 is systemd and this user may manage `app`'s units: root, or the app is
/// set up on this host (`sudo nonstop setup`).
pub fn available(app: &str) -> bool {
    Path::new("/run/systemd/system").is_dir()
        && (root()
            || crate::registry::read(Path::new(crate::registry::DIR), app)
                .is_ok_and(|e| e.is_some()))
}

fn root() -> bool {
    rustix::process::geteuid().is_root()
}

/// `argv` as root: directly when root, else through `sudo -n`.
fn privileged(argv: &[&str]) -> Command {
    let mut c = if root() {
        Command::new(argv[0])
    } else {
        let mut c = Command::new("sudo");
        c.arg("-n").arg(argv[0]);
        c
    };
    c.args(&argv[1..]).stdin(Stdio::null());
    c
}

/// Run `systemctl ARGS`; on failure the error is systemctl's first line (its reason; the
/// hint to read the journal follows it).
fn systemctl(args: &[&str]) -> Result<String> {
    let mut argv = vec!["systemctl", "--no-ask-password"];
    argv.extend_from_slice(args);
    let out = privileged(&argv)
        .output()
        .context(format!("cannot run `{}`", argv.join(" ")))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    Err(failed(format!(
        "`{}` failed: {}",
        argv.join(" "),
        crate::nginx::telling_line(&text)
    )))
}

/// `journalctl -u UNIT -n N --no-pager -o FORMAT`
fn journal<'a>(unit: &'a str, n: &'a str, format: &'a str) -> Vec<&'a str> {
    vec![
        "journalctl",
        "-u",
        unit,
        "-n",
        n,
        "--no-pager",
        "-o",
        format,
    ]
}

/// journalctl as this user: the journal is readable by root and the groups `adm` and
/// `systemd-journal` (ec2-user and ubuntu are in them), so no sudo line is needed.
fn journalctl(argv: &[&str]) -> Command {
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..]).stdin(Stdio::null());
    c
}

/// `systemctl show UNIT` as a map of the properties nonstop reads (reading needs no root).
fn show(unit: &str) -> HashMap<String, String> {
    Command::new("systemctl")
        .args([
            "--no-ask-password",
            "show",
            unit,
            "-p",
            "LoadState,ActiveState,SubState,MainPID,NRestarts,UnitFileState,ControlGroup,Result,ExecMainPID,ExecMainCode,ExecMainStatus,ExecMainExitTimestampMonotonic,FragmentPath",
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
    .lines()
    .filter_map(|l| l.split_once('='))
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// One argument of `ExecStart=` (or value of `Environment=`), quoted for systemd: `"…"` with
/// `\` and `"` escaped, `%` doubled (specifiers) and `$` doubled (variable expansion).
fn quote(arg: &str) -> Result<String> {
    if arg.chars().any(|c| c.is_control()) {
        return Err(failed(format!(
            "{arg:?} holds a control character: it cannot go into a systemd unit"
        )));
    }
    let mut q = String::from("\"");
    for c in arg.chars() {
        match c {
            '\\' => q.push_str("\\\\"),
            '"' => q.push_str("\\\""),
            '%' => q.push_str("%%"),
            '$' => q.push_str("$$"),
            c => q.push(c),
        }
    }
    q.push('"');
    Ok(q)
}

/// The `EnvironmentFile=` of an app's slot units: `app.env` as `KEY="VALUE"` lines. The values are
/// often secrets, so they are not in the unit (mode 0644, readable by every user) but in this
/// file, mode 0600 and owned by root, which systemd reads as root before it drops to `User=`.
/// Inside double quotes systemd's parser (systemd.exec(5), `EnvironmentFile=`) turns `\"`,
/// `\\`, `` \` `` and `\$` into the character itself and expands no variables and no `%`
/// specifiers: every value reaches the JVM byte for byte (`pa$$w0rd$1` stays that). A control
/// character is refused, as in the unit.
pub fn render_env_file(app: &str, env: &[(String, String)]) -> Result<String> {
    let mut text = format!(
        "{MARKER}: app.env of app {app}, read by systemd as root when a slot's unit starts.\n\
         # Written by `sudo nonstop setup` (mode 0600, owner root); edit nonstop.yml and run it again.\n"
    );
    for (k, v) in env {
        if v.chars().any(|c| c.is_control()) {
            return Err(failed(format!(
                "app.env {k} holds a control character: it cannot go into a systemd environment file"
            )));
        }
        let mut q = String::new();
        for c in v.chars() {
            if matches!(c, '"' | '\\' | '`' | '$') {
                q.push('\\');
            }
            q.push(c);
        }
        text += &format!("{k}=\"{q}\"\n");
    }
    Ok(text)
}

/// Where setup keeps an app's `app.env`: `/etc/nonstop/apps/<app>.env`, mode 0600, owner root
/// (beside the registry entry; the hook user cannot read it, systemd reads it as root).
pub fn env_file(dir: &Path, app: &str) -> PathBuf {
    dir.join(format!("{app}.env"))
}

/// The digest of what the env file holds, kept in the registry entry (which the hook user can
/// read) so that a deploy can tell whether its config's `app.env` is what setup installed.
pub fn env_digest(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Setup's part (as root): write `text` as the app's env file, atomically (a planted symlink is
/// replaced, never written through), mode 0600; or remove it when `app.env` is empty. Returns
/// whether it changed.
pub fn write_env_file(path: &Path, text: Option<&str>) -> Result<bool> {
    let now = fsx::read_original(path)?;
    match text {
        None if now.is_none() => Ok(false),
        None => {
            std::fs::remove_file(path).context(format!("cannot remove {}", path.display()))?;
            Ok(true)
        }
        Some(t) if now.as_ref().is_some_and(|o| o.bytes == t.as_bytes()) => Ok(false),
        Some(t) => {
            fsx::write_atomic(path, t.as_bytes(), 0o600)?;
            Ok(true)
        }
    }
}

/// The template unit of `e`'s slots, `nonstop-<app>@.service`, written by setup: the JVM runs
/// as the user setup fixed, started by the root-owned nonstop in its `run-slot` mode (which
/// checks the slot's launch file against the registry and execs java, so the unit's main
/// process is the JVM). A deploy never writes a unit: it writes the launch file, then starts
/// `nonstop-<app>@<slot>.service`.
pub fn render_template(cfg: &Config, e: &crate::registry::Entry) -> Result<String> {
    let mut user = format!("User={}\n", e.app_user);
    if let Some(g) = &e.app_group {
        user += &format!("Group={g}\n");
    }
    // app.env (secrets, often) is never in the unit, which every user may read, nor in the
    // launch file the deploy user writes: setup keeps it root-only and systemd reads it.
    if e.env_sha256.is_some() {
        user += &format!(
            "EnvironmentFile={}\n",
            env_file(Path::new(crate::registry::DIR), &e.app).display()
        );
    }
    Ok(format!(
        "{MARKER}: the slots of app {app} (instance = slot), written by `sudo nonstop setup`.\n\
         # A slot runs the release its last `start` chose (checked by `nonstop run-slot`).\n\
         [Unit]\n\
         Description=nonstop {app} slot %i\n\
         After=network.target\n\
         StartLimitIntervalSec=60\n\
         StartLimitBurst=3\n\n\
         [Service]\n\
         Type=exec\n\
         {user}ExecStart={bin} run-slot --app {app} --slot %i\n\
         KillSignal=SIGTERM\n\
         TimeoutStopSec={grace}\n\
         SuccessExitStatus=143\n\
         Restart=on-failure\n\
         RestartSec=500ms\n\
         SyslogIdentifier=nonstop-{app}@%i\n\n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        app = e.app,
        bin = quote(&e.nonstop.to_string_lossy())?,
        grace = cfg.stop.grace.as_millis().div_ceil(1000).max(1),
    ))
}

/// Write `text` as unit `name` (as root), unless it already holds it; refuses a unit nonstop
/// did not write. Returns whether the file changed.
fn write_unit(name: &str, text: &str) -> Result<bool> {
    let path = PathBuf::from(UNIT_DIR).join(name);
    match fsx::read_original(&path)? {
        Some(o) if o.bytes == text.as_bytes() => return Ok(false),
        Some(o) if !o.bytes.starts_with(MARKER.as_bytes()) => {
            return Err(failed(format!(
            "{} exists and was not written by nonstop (no `{MARKER}` line): refusing to replace it",
            path.display()
        )))
        }
        _ => {}
    }
    if !root() {
        return Err(failed(format!(
            "{} needs root: run `sudo nonstop setup --user USER` once",
            path.display()
        )));
    }
    fsx::write_atomic(&path, text.as_bytes(), 0o644)?;
    Ok(true)
}

/// Setup's part (as root): the template unit for `e`, and an older nonstop's per-slot units
/// that no longer run retired (disabled, removed). Returns what changed, one line each.
pub fn install_units(cfg: &Config, e: &crate::registry::Entry) -> Result<Vec<String>> {
    let mut changed = vec![];
    let text = render_template(cfg, e)?;
    if write_unit(&e.template_unit, &text)? {
        changed.push(format!("installed {UNIT_DIR}/{}", e.template_unit));
    }
    if e.traffic == crate::traffic::Via::Nftables {
        changed.extend(install_steering_unit(e)?);
    }
    for s in &cfg.slots {
        let Some(old) = legacy_unit(cfg, s) else {
            continue;
        };
        if unit_of(cfg, s) == old {
            changed.push(format!(
                "kept {old} (an older nonstop's unit) while it runs slot {}: the slot's next start uses {}; run setup again after that to remove it",
                s.name,
                unit_name(cfg, s)
            ));
            continue;
        }
        let _ = systemctl(&["disable", "--quiet", &old]);
        let path = PathBuf::from(UNIT_DIR).join(&old);
        std::fs::remove_file(&path).context(format!("cannot remove {}", path.display()))?;
        changed.push(format!(
            "removed {} (an older nonstop's unit for slot {}, not running)",
            path.display(),
            s.name
        ));
    }
    if !changed.is_empty() {
        systemctl(&["daemon-reload"])?;
    }
    Ok(changed)
}

/// `nonstop-<app>-traffic.service`: the app's steering. Before nginx at boot it loads the
/// table (`steer --boot`, from the recorded steering); then it stays, watching the ruleset
/// (`steer --watch`, see [`crate::traffic::watcher`]), and loads the table again whenever it
/// disappears, whatever flushed it (nftables.service, firewalld, ufw, `nft flush ruleset`).
/// Not `PartOf=nftables.service`: stopping the firewall must not stop the steering (its stop
/// flushes the ruleset too). A unit that changed, or does not run, is (re)started.
pub fn install_steering_unit(e: &crate::registry::Entry) -> Result<Vec<String>> {
    let mut changed = vec![];
    let unit = steering_unit(&e.app);
    let text = format!(
        "{MARKER}: steering of app {app}, written by `sudo nonstop setup`.\n\
         # Loads the table before nginx at boot, then loads it again whenever it disappears.\n\
         [Unit]\n\
         Description=nonstop {app}: steering (at boot, and again after a ruleset flush)\n\
         DefaultDependencies=no\n\
         After=local-fs.target nftables.service\n\
         Before=nginx.service network-pre.target shutdown.target\n\
         Wants=network-pre.target\n\
         Conflicts=shutdown.target\n\
         StartLimitIntervalSec=0\n\n\
         [Service]\n\
         Type=exec\n\
         ExecStartPre=-{bin} steer --app {app} --boot\n\
         ExecStart={bin} steer --app {app} --watch\n\
         ExecReload={bin} steer --app {app} --boot\n\
         Restart=always\n\
         RestartSec=1s\n\n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        app = e.app,
        bin = quote(&e.nonstop.to_string_lossy())?,
    );
    let written = write_unit(&unit, &text)?;
    if written {
        changed.push(format!("installed {UNIT_DIR}/{unit}"));
        systemctl(&["daemon-reload"])?;
    }
    if show(&unit)
        .get("UnitFileState")
        .is_none_or(|v| v != "enabled")
    {
        systemctl(&["enable", "--quiet", &unit])?;
        changed.push(format!(
            "enabled {unit} (the table at boot, before nginx, and again after a ruleset flush)"
        ));
    }
    let active = show(&unit)
        .get("ActiveState")
        .is_some_and(|v| v == "active");
    if written || !active {
        // The watch starts with the table loaded from the record: no gap in the steering.
        systemctl(&["restart", &unit])?;
        changed.push(format!("started {unit} (watching the ruleset)"));
    }
    Ok(changed)
}

/// `nonstop-<app>-traffic.service`
pub fn steering_unit(app: &str) -> String {
    format!("nonstop-{app}-traffic.service")
}

/// What a slot's next start runs, written by `start` (the deploy user) beside the pid files
/// and read by `nonstop run-slot` in the unit (as the app user), which checks it against the
/// registry before it execs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Launch {
    pub release: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

/// `workdir/run/<slot>.launch.json`
pub fn launch_path(workdir: &Path, slot: &str) -> PathBuf {
    workdir.join("run").join(format!("{slot}.launch.json"))
}

/// Check `l` for slot `slot` of entry `e`: the slot is one setup fixed, the release folder is
/// under the app's releases folder (symlinks resolved), the jar is in it, and the one
/// `-Dserver.port` is the slot's port. Returns the argv to exec.
pub fn check_launch(e: &crate::registry::Entry, slot: &str, l: &Launch) -> Result<()> {
    let s = e.slot(slot).ok_or_else(|| {
        failed(format!(
            "slot {slot:?} is not one of app {}'s slots in the registry",
            e.app
        ))
    })?;
    let rel_ok = !l.release.is_empty()
        && l.release != "."
        && l.release != ".."
        && l.release
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    let releases = e.workdir.join("releases");
    if !rel_ok || l.cwd != releases.join(&l.release) {
        return Err(failed(format!(
            "release {:?} in {:?} is not a folder of {}",
            l.release,
            l.cwd,
            releases.display()
        )));
    }
    let canon = |p: &Path| {
        std::fs::canonicalize(p)
            .map_err(|err| failed(format!("cannot resolve {}: {err}", p.display())))
    };
    let (releases_c, cwd_c) = (canon(&releases)?, canon(&l.cwd)?);
    if cwd_c.parent() != Some(releases_c.as_path()) {
        return Err(failed(format!(
            "{} resolves to {}, outside {}",
            l.cwd.display(),
            cwd_c.display(),
            releases_c.display()
        )));
    }
    let jar = l
        .argv
        .iter()
        .position(|a| a == "-jar")
        .and_then(|i| l.argv.get(i + 1))
        .ok_or_else(|| failed("the launch has no `-jar JAR`"))?;
    let jar_c = canon(Path::new(jar))?;
    if jar_c.parent() != Some(cwd_c.as_path()) {
        return Err(failed(format!(
            "jar {jar} is not in release folder {}",
            l.cwd.display()
        )));
    }
    let ports: Vec<&String> = l
        .argv
        .iter()
        .filter(|a| a.starts_with("-Dserver.port=") || a.starts_with("--server.port="))
        .collect();
    let want = format!("-Dserver.port={}", s.port);
    if ports.len() != 1 || *ports[0] != want {
        return Err(failed(format!(
            "the launch sets the port with {ports:?}; slot {slot} of {} has port {} (fixed by setup)",
            e.app, s.port
        )));
    }
    if !l.argv.first().is_some_and(|j| Path::new(j).is_absolute()) {
        return Err(failed("the launch's java is not an absolute path"));
    }
    Ok(())
}

/// `nonstop run-slot --app APP --slot SLOT`, the template unit's `ExecStart=` (as the app
/// user): read the registry (root-owned) and the slot's launch file, check it
/// ([`check_launch`]), and exec java in the release folder. Returns only on failure.
pub fn run_slot(app: &str, slot: &str) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let e = crate::registry::read(Path::new(crate::registry::DIR), app)?
        .ok_or_else(|| failed(format!("app {app} is not set up on this host")))?;
    let p = launch_path(&e.workdir, slot);
    let text = std::fs::read_to_string(&p).context(format!("cannot read {}", p.display()))?;
    let l: Launch = serde_json::from_str(&text)
        .map_err(|err| failed(format!("{} is not a launch file: {err}", p.display())))?;
    check_launch(&e, slot, &l)?;
    let err = Command::new(&l.argv[0])
        .args(&l.argv[1..])
        .envs(l.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&l.cwd)
        .exec();
    Err(failed(format!("cannot run {}: {err}", l.argv[0])))
}

/// True if unit `name` (or, for an instance `a@b.service`, its template `a@.service`) exists
/// and carries nonstop's marker.
/// True when `unit` starts at boot: the link `enable` makes for `WantedBy=multi-user.target`,
/// read from the disk (the manager's `UnitFileState` is cached until its next reload, which
/// `enable --no-reload` does not make).
fn enabled_at_boot(unit: &str) -> bool {
    Path::new(UNIT_DIR)
        .join("multi-user.target.wants")
        .join(unit)
        .symlink_metadata()
        .is_ok()
}

fn ours(name: &str) -> bool {
    let file = match name.split_once('@') {
        Some((head, _)) if !Path::new(UNIT_DIR).join(name).exists() => format!("{head}@.service"),
        _ => name.to_string(),
    };
    std::fs::read(PathBuf::from(UNIT_DIR).join(file))
        .is_ok_and(|b| b.starts_with(MARKER.as_bytes()))
}

fn main_pid(props: &HashMap<String, String>) -> i32 {
    props
        .get("MainPID")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// Now on the wall clock and on CLOCK_MONOTONIC (the clock of systemd's `…Monotonic`
/// timestamps), to turn the latter into UTC.
fn clocks() -> (SystemTime, Duration) {
    let m = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (
        SystemTime::now(),
        Duration::new(m.tv_sec as u64, m.tv_nsec as u32),
    )
}

/// How the unit's main process last ended, from `systemctl show`. The time is taken from
/// `ExecMainExitTimestampMonotonic` (microseconds, not a local-time text such as `Sun
/// 2026-12-06 20:07:25 UTC` that depends on the host's time zone) and written as the rest of
/// nonstop writes times: UTC, RFC 3339 (`2026-12-06T20:07:25.412Z`).
fn exit_record(
    props: &HashMap<String, String>,
    (wall, mono): (SystemTime, Duration),
) -> Option<ExitRecord> {
    let exited_us: u64 = props
        .get("ExecMainExitTimestampMonotonic")?
        .parse()
        .ok()
        .filter(|&us| us > 0)?;
    let ago = mono.saturating_sub(Duration::from_micros(exited_us));
    let pid = props.get("ExecMainPID")?.parse().ok()?;
    let status: i32 = props.get("ExecMainStatus")?.parse().ok()?;
    let (code, signal) = match props.get("ExecMainCode").map(|c| c.as_str()) {
        Some("1") => (Some(status), None),
        _ => (None, Some(status)),
    };
    Some(ExitRecord {
        pid,
        code,
        signal,
        at: crate::log::utc_millis(wall.checked_sub(ago).unwrap_or(wall)),
    })
}

/// What makes a steering unit follow the firewall's own unit: Debian's `nftables.service` runs
/// `nft -f /etc/nftables.conf`, which begins with `flush ruleset`, on start, restart and reload,
/// removing nonstop's table with every other. `PartOf=` restarts this unit with it (after it:
/// `After=`), `ReloadPropagatedFrom=` reloads it with it; either loads the table again.
const FOLLOW_NFTABLES: &str = "PartOf=nftables.service\nReloadPropagatedFrom=nftables.service\n";

/// How long `run-slot` may take to check the launch file and exec java.
const RUN_SLOT_EXEC: Duration = Duration::from_secs(10);

/// Wait until the unit's main process `pid` is the JVM. `Type=exec` counts the unit started
/// once `nonstop run-slot` runs; it checks the launch file and then execs java in the same
/// process (same pid, same start time), so a pid file written, or a proof made, before that
/// exec would see `run-slot`'s command line and call the slot's app a stranger. Bounded; a
/// process that ends meanwhile (run-slot refused the launch file) is left for the health wait
/// to report with its exit and the journal.
fn exec_of_java(pid: i32, unit: &str) -> Result<()> {
    let t0 = Instant::now();
    while process::cmdline(pid).iter().any(|a| a == "run-slot") {
        if t0.elapsed() > RUN_SLOT_EXEC {
            return Err(failed(format!(
                "{unit}'s run-slot (pid {pid}) did not start java within {} s; see `journalctl -u {unit}`",
                RUN_SLOT_EXEC.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

impl Supervisor for Systemd {
    fn kind(&self) -> Kind {
        Kind::Systemd
    }

    fn launch(&self, cfg: &Config, start: &Start) -> Result<PidFile> {
        let unit = unit_name(cfg, start.slot);
        super::resolve_user(cfg)?;
        let dir = Path::new(crate::registry::DIR);
        let entry = crate::registry::read(dir, &cfg.app.name)?;
        if root() && entry.as_ref().is_none_or(|e| e.hook_user == "root") {
            // Root deploys set the app up themselves (no sudo rules: no other user).
            for line in crate::setup::install(cfg, "root", dir)? {
                log::info!("setup: {line}");
            }
        }
        let Some(entry) = crate::registry::for_config(cfg)? else {
            return Err(failed(format!(
                "app {} is not set up on this host: run `sudo nonstop setup --user {} --config {}` once",
                cfg.app.name,
                crate::setup::user_name().unwrap_or_else(|| "USER".into()),
                cfg.path.display()
            )));
        };
        // app.env reaches the JVM from the root-only file setup wrote; a config whose app.env
        // differs from it would start the app with other values than it says.
        let want = (!start.env.is_empty())
            .then(|| render_env_file(&cfg.app.name, &start.env).map(|t| env_digest(&t)))
            .transpose()?;
        if want != entry.env_sha256 {
            return Err(failed(format!(
                "app.env in {} is not what setup installed ({}): run `sudo nonstop setup --user {} --config {}` again",
                cfg.path.display(),
                env_file(Path::new(crate::registry::DIR), &cfg.app.name).display(),
                entry.hook_user,
                cfg.path.display()
            )));
        }
        fsx::create_dirs(&cfg.run_dir())
            .context(format!("cannot create {}", cfg.run_dir().display()))?;
        let launch = Launch {
            release: start.release.clone(),
            argv: start.argv.clone(),
            // app.env comes from setup's root-only EnvironmentFile, not from this
            // world-readable file.
            env: vec![],
            cwd: start.cwd.clone(),
        };
        let mut json = serde_json::to_string_pretty(&launch).context("cannot encode")?;
        json.push('\n');
        fsx::write_atomic(
            &launch_path(&cfg.app.workdir, &start.slot.name),
            json.as_bytes(),
            0o644,
        )?;
        let _ = systemctl(&["reset-failed", &unit]);
        systemctl(&["start", &unit])?;
        let props = show(&unit);
        let pid = main_pid(&props);
        if pid == 0 {
            return Err(failed(format!(
                "{unit} started but has no main process ({}); see `journalctl -u {unit}`",
                props
                    .get("ActiveState")
                    .map_or("state unknown", |s| s.as_str())
            )));
        }
        exec_of_java(pid, &unit)?;
        let pf = PidFile {
            pid,
            start_time: process::stat(pid).map_or(0, |s| s.start_time),
            supervisor: 0,
            slot: start.slot.name.clone(),
            port: start.slot.port,
            jar: start.jar.clone(),
            release: start.release.clone(),
            started_at: crate::log::utc_millis(SystemTime::now()),
            boot_id: process::boot_id(),
        };
        fsx::create_dirs(&cfg.run_dir())
            .context(format!("cannot create {}", cfg.run_dir().display()))?;
        let mut json = serde_json::to_string_pretty(&pf).context("cannot encode")?;
        json.push('\n');
        fsx::write_atomic(&cfg.pid_file(start.slot), json.as_bytes(), 0o644)?;
        let _ = std::fs::remove_file(cfg.exit_file(start.slot));
        Ok(pf)
    }

    fn app(&self, cfg: &Config, slot: &Slot) -> SlotProcess {
        let recorded = process::read_pid_file(&cfg.pid_file(slot));
        let unit = unit_of(cfg, slot);
        let props = show(&unit);
        let pid = main_pid(&props);
        match recorded {
            None => SlotProcess::None,
            // Started by the builtin supervisor before this host moved to systemd.
            Some(pf) if pf.supervisor != 0 => match pf.check() {
                Ok(()) => SlotProcess::Running(pf),
                Err(why) => SlotProcess::Stale(pf, why),
            },
            Some(pf) if pid == 0 => {
                let why = pf.check().err().unwrap_or(process::Stale::Exited);
                SlotProcess::Stale(pf, why)
            }
            // The unit's main process now (systemd may have restarted it, or the host
            // rebooted): the release and jar are the ones nonstop recorded at its start.
            Some(recorded) => {
                let pf = PidFile {
                    pid,
                    start_time: process::stat(pid).map_or(0, |s| s.start_time),
                    boot_id: process::boot_id(),
                    started_at: process::started_at(pid)
                        .map_or(recorded.started_at.clone(), crate::log::utc_millis),
                    ..recorded
                };
                match pf.check() {
                    Ok(()) => SlotProcess::Running(pf),
                    Err(why) => SlotProcess::Stale(pf, why),
                }
            }
        }
    }

    fn family(&self, cfg: &Config, slot: &Slot, pf: &PidFile) -> HashSet<i32> {
        if pf.supervisor != 0 {
            return process::tree(pf.pid);
        }
        let props = show(&unit_of(cfg, slot));
        let cg = props.get("ControlGroup").cloned().unwrap_or_default();
        let procs: HashSet<i32> = [
            "/sys/fs/cgroup",
            "/sys/fs/cgroup/unified",
            "/sys/fs/cgroup/systemd",
        ]
        .iter()
        .filter(|_| !cg.is_empty())
        .filter_map(|root| std::fs::read_to_string(format!("{root}{cg}/cgroup.procs")).ok())
        .flat_map(|t| {
            t.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
        if procs.is_empty() {
            process::tree(pf.pid)
        } else {
            procs
        }
    }

    fn stop(&self, cfg: &Config, slot: &Slot, pf: &PidFile) -> Result<Stopped> {
        if pf.supervisor != 0 {
            return super::builtin::terminate_app(cfg, slot, pf, |pf| process::tree(pf.pid));
        }
        let unit = unit_of(cfg, slot);
        let t0 = Instant::now();
        systemctl(&["stop", "--no-block", &unit])?;
        log::info!(
            "asked systemd to stop {unit} (SIGTERM, SIGKILL after {:?})",
            cfg.stop.grace
        );
        let limit = cfg.stop.grace + Duration::from_secs(15);
        loop {
            let props = show(&unit);
            let state = props.get("ActiveState").map_or("", |s| s.as_str());
            if matches!(state, "inactive" | "failed") {
                let killed = props.get("Result").is_some_and(|r| r == "timeout");
                return Ok(Stopped {
                    took: t0.elapsed(),
                    killed,
                });
            }
            if t0.elapsed() > limit {
                return Err(failed(format!(
                    "{unit} still {state} {} after `systemctl stop`",
                    crate::log::human(t0.elapsed())
                )));
            }
            interrupt::sleep(Duration::from_millis(50), "waiting for the app to exit")?;
        }
    }

    fn settle(&self, cfg: &Config, slot: &Slot) -> Result<()> {
        let unit = unit_of(cfg, slot);
        if !ours(&unit) {
            return Ok(());
        }
        let props = show(&unit);
        let state = props.get("ActiveState").map_or("", |s| s.as_str());
        if matches!(
            state,
            "activating" | "active" | "reloading" | "deactivating"
        ) {
            log::info!(
                "{unit} is {state} ({}) with no app on port {}: stopping it so systemd does not start one",
                props.get("SubState").map_or("?", |s| s.as_str()),
                slot.port
            );
            systemctl(&["stop", "--no-block", &unit])?;
        }
        Ok(())
    }

    fn last_exit(&self, cfg: &Config, slot: &Slot) -> Option<ExitRecord> {
        exit_record(&show(&unit_of(cfg, slot)), clocks())
    }

    fn log_tail(&self, cfg: &Config, slot: &Slot, n: usize) -> Vec<String> {
        let unit = unit_of(cfg, slot);
        let n = n.to_string();
        let out = journalctl(&journal(&unit, &n, "cat"))
            .stderr(Stdio::null())
            .output();
        match out {
            Ok(o) => String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(str::to_string)
                .collect(),
            Err(_) => vec![],
        }
    }

    fn log_hint(&self, cfg: &Config, slot: &Slot) -> String {
        format!("journalctl -u {}", unit_of(cfg, slot))
    }

    fn logs(&self, cfg: &Config, slot: &Slot, n: usize, follow: bool) -> Result<()> {
        let unit = unit_of(cfg, slot);
        let n = n.to_string();
        let mut argv = journal(&unit, &n, "short-iso");
        if follow {
            argv.push("-f");
        }
        // journalctl writes straight to our stdout: a closed pipe ends it as it ends us.
        let st = journalctl(&argv)
            .stdout(Stdio::inherit())
            .status()
            .context("cannot run journalctl")?;
        if st.success() || follow {
            Ok(())
        } else {
            Err(failed(format!("`{}` failed ({st})", argv.join(" "))))
        }
    }

    fn at_boot(&self, cfg: &Config, live: &Slot) -> Result<()> {
        let mut first_err = None;
        let mut units = vec![];
        for s in &cfg.slots {
            let unit = unit_of(cfg, s);
            // An older nonstop's unit no longer running its slot must not start at boot.
            if let Some(old) = legacy_unit(cfg, s).filter(|o| *o != unit) {
                units.push((old, false));
            }
            units.push((unit, s.name == live.name || cfg.app.standby_at_boot));
        }
        for (unit, want) in units {
            if !ours(&unit) {
                continue;
            }
            if want == enabled_at_boot(&unit) {
                continue;
            }
            let verb = if want { "enable" } else { "disable" };
            // No daemon-reload (0.5 s and more on a small host, on every switch): the link is
            // what the next boot reads. A sudo rule from an older setup lacks `--no-reload`.
            let r = systemctl(&[verb, "--quiet", "--no-reload", &unit])
                .or_else(|_| systemctl(&[verb, "--quiet", &unit]));
            match &r {
                Ok(_) => log::info!(
                    "{unit} {} at boot",
                    if want { "starts" } else { "no longer starts" }
                ),
                Err(e) => log::warn!("{e}"),
            }
            if let (Err(e), None) = (r, &first_err) {
                first_err = Some(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    fn boot_command(
        &self,
        cfg: &Config,
        name: &str,
        argv: &[String],
        before: &str,
    ) -> Result<bool> {
        let unit = format!("nonstop-{}-{name}.service", cfg.app.name);
        let mut exec = vec![];
        for a in argv {
            exec.push(quote(a)?);
        }
        let text = format!(
            "{MARKER}: run at boot for {app} before {before}.\n\
             [Unit]\n\
             Description=nonstop {app}: {name} at boot\n\
             DefaultDependencies=no\n\
             After=local-fs.target nftables.service\n\
             Before={before} network-pre.target\n\
             Wants=network-pre.target\n\
             {FOLLOW_NFTABLES}\n\
             [Service]\n\
             Type=oneshot\n\
             RemainAfterExit=yes\n\
             ExecStart={exec}\n\
             ExecReload={exec}\n\n\
             [Install]\n\
             WantedBy=multi-user.target\n",
            app = cfg.app.name,
            exec = exec.join(" "),
        );
        if write_unit(&unit, &text)? {
            systemctl(&["daemon-reload"])?;
        }
        let enabled = show(&unit)
            .get("UnitFileState")
            .is_some_and(|v| v == "enabled");
        if !enabled {
            systemctl(&["enable", "--quiet", &unit])?;
            log::info!("{unit} runs at boot, before {before}");
        }
        Ok(true)
    }

    fn supervision(&self, cfg: &Config, slot: &Slot) -> Supervision {
        let unit = unit_of(cfg, slot);
        let props = show(&unit);
        if props.get("LoadState").is_none_or(|s| s == "not-found") {
            return Supervision {
                unit: Some(unit),
                ..Default::default()
            };
        }
        Supervision {
            active: props.get("ActiveState").cloned(),
            enabled: Some(enabled_at_boot(&unit)),
            restarts: props.get("NRestarts").and_then(|n| n.parse().ok()),
            unit: Some(unit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_quotes_every_argument() {
        assert_eq!(quote("-Dx=a b").unwrap(), "\"-Dx=a b\"");
        assert_eq!(quote("50%$HOME\"\\").unwrap(), "\"50%%$$HOME\\\"\\\\\"");
        assert!(quote("a\nExecStartPre=/bin/evil").is_err());
    }

    #[test]
    fn renders_a_template_with_the_settings_that_matter() {
        let cfg = crate::config::parse(
            "app:\n  name: shop\n  user: app\n  env: {A: \"1 2\"}\nstop:\n  grace: 35s\n",
            Path::new("/x/n.yml"),
        )
        .unwrap();
        let e = crate::registry::Entry::of(
            &cfg,
            "ec2-user",
            Path::new("/usr/local/libexec/nonstop/shop/nonstop"),
        );
        let u = render_template(&cfg, &e).unwrap();
        assert!(u.starts_with(MARKER), "{u}");
        for want in [
            "ExecStart=\"/usr/local/libexec/nonstop/shop/nonstop\" run-slot --app shop --slot %i\n",
            "User=app\n",
            "TimeoutStopSec=35\n",
            "SuccessExitStatus=143\n",
            "Restart=on-failure\n",
            "StartLimitBurst=3\n",
            "KillSignal=SIGTERM\n",
            "Type=exec\n",
            "WantedBy=multi-user.target\n",
        ] {
            assert!(u.contains(want), "{want:?} missing in:\n{u}");
        }
        // Nothing the deploy user writes reaches the unit; app.env's values are in setup's
        // root-only file, which the unit names.
        assert!(!u.contains("Environment="), "{u}");
        assert!(
            u.contains("EnvironmentFile=/etc/nonstop/apps/shop.env\n"),
            "{u}"
        );
        assert!(!u.contains("1 2"), "no value in the unit:\n{u}");
        assert_eq!(unit_name(&cfg, &cfg.slots[1]), "nonstop-shop@green.service");
    }

    #[test]
    fn a_launch_must_stay_in_the_apps_releases_and_port() {
        let d = tempfile::tempdir().unwrap();
        let work = d.path().join("work");
        let rel = work.join("releases/r1");
        std::fs::create_dir_all(&rel).unwrap();
        std::fs::write(rel.join("app.jar"), b"jar").unwrap();
        std::fs::create_dir_all(d.path().join("elsewhere")).unwrap();
        std::fs::write(d.path().join("elsewhere/evil.jar"), b"x").unwrap();
        let cfg = crate::config::parse(
            &format!("app:\n  name: shop\n  workdir: {}\n", work.display()),
            Path::new("/x/n.yml"),
        )
        .unwrap();
        let e = crate::registry::Entry::of(&cfg, "ec2-user", Path::new("/n"));
        let jar = rel.join("app.jar").to_string_lossy().into_owned();
        let good = Launch {
            release: "r1".into(),
            argv: vec![
                "/usr/bin/java".into(),
                "-Dserver.port=8081".into(),
                "-jar".into(),
                jar.clone(),
            ],
            env: vec![],
            cwd: rel.clone(),
        };
        check_launch(&e, "blue", &good).unwrap();
        let bad = |f: &dyn Fn(&mut Launch), why: &str| {
            let mut l = good.clone();
            f(&mut l);
            let m = check_launch(&e, "blue", &l).unwrap_err().to_string();
            assert!(m.contains(why), "{why}: {m}");
        };
        bad(&|l| l.argv[1] = "-Dserver.port=22".into(), "has port 8081");
        bad(&|l| l.argv.push("--server.port=22".into()), "has port 8081");
        bad(
            &|l| l.argv[3] = d.path().join("elsewhere/evil.jar").to_string_lossy().into(),
            "is not in release folder",
        );
        bad(&|l| l.release = "..".into(), "is not a folder of");
        bad(
            &|l| l.cwd = d.path().join("elsewhere"),
            "is not a folder of",
        );
        bad(&|l| l.argv[0] = "java".into(), "not an absolute path");
        // A release folder that is a symlink out of the releases folder.
        std::os::unix::fs::symlink(d.path().join("elsewhere"), work.join("releases/r2")).unwrap();
        bad(
            &|l| {
                l.release = "r2".into();
                l.cwd = work.join("releases/r2");
                l.argv[3] = work.join("releases/r2/evil.jar").to_string_lossy().into();
            },
            "outside",
        );
        let m = check_launch(&e, "red", &good).unwrap_err().to_string();
        assert!(m.contains("not one of app shop's slots"), "{m}");
    }
    #[test]
    fn the_exit_time_is_rfc3339_utc_whatever_the_hosts_time_zone() {
        let props: HashMap<String, String> = [
            ("ExecMainPID", "4242"),
            ("ExecMainCode", "1"),
            ("ExecMainStatus", "143"),
            // What the text form would say on a host in Berlin.
            ("ExecMainExitTimestamp", "Sun 2026-12-06 21:07:25 CET"),
            ("ExecMainExitTimestampMonotonic", "90000000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        // 100 s after boot on the monotonic clock is 2026-12-06T20:07:35.250Z on the wall.
        let wall = std::time::UNIX_EPOCH + Duration::from_millis(1_796_587_655_250);
        let r = exit_record(&props, (wall, Duration::from_secs(100))).unwrap();
        assert_eq!(r.at, "2026-12-06T20:07:25.250Z");
        assert_eq!((r.pid, r.code, r.signal), (4242, Some(143), None));
        assert!(crate::operator::parse_utc(&r.at).is_some());
        // A unit whose process never exited has a zero timestamp: no record.
        let mut never = props.clone();
        never.insert("ExecMainExitTimestampMonotonic".into(), "0".into());
        assert!(exit_record(&never, (wall, Duration::from_secs(100))).is_none());
    }

    /// systemd's reading of a double-quoted `KEY="…"` line of an `EnvironmentFile=`
    /// (systemd.exec(5)): a backslash before `"`, `\`, `` ` `` or `$` keeps that character, any
    /// other backslash is kept with what follows; nothing is expanded.
    fn systemd_reads(line: &str) -> (String, String) {
        let (k, v) = line.split_once('=').unwrap();
        let v = v.strip_prefix('"').unwrap().strip_suffix('"').unwrap();
        let mut out = String::new();
        let mut it = v.chars();
        while let Some(c) = it.next() {
            match c {
                '\\' => match it.next().unwrap() {
                    n @ ('"' | '\\' | '`' | '$') => out.push(n),
                    n => {
                        out.push('\\');
                        out.push(n)
                    }
                },
                '"' => panic!("an unescaped quote ends the value early: {line}"),
                c => out.push(c),
            }
        }
        (k.to_string(), out)
    }

    #[test]
    fn app_env_reaches_the_jvm_unchanged_from_a_root_only_file() {
        let values = [
            ("DB_PASSWORD", "pa$$w0rd$1"),
            ("HOME_REF", "${HOME}/x $HOME"),
            ("PERCENT", "50% %n %%"),
            ("QUOTES", "it's \"quoted\" `cmd` \\n back\\slash"),
            ("SPACES", "  lead and trail  "),
            ("EMPTY", ""),
        ];
        let env: Vec<(String, String)> = values
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let text = render_env_file("shop", &env).unwrap();
        assert!(text.starts_with(MARKER), "{text}");
        let read: Vec<(String, String)> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(systemd_reads)
            .collect();
        assert_eq!(read, env, "{text}");
        assert!(
            text.contains("DB_PASSWORD=\"pa\\$\\$w0rd\\$1\"\n"),
            "{text}"
        );
        let bad = vec![("A".to_string(), "x\nB=evil".to_string())];
        assert!(render_env_file("shop", &bad).is_err());

        // Written 0600, owned by root (systemd reads it before it drops to User=),
        // atomically: no temp file left; a planted symlink is refused, never written through.
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep\n").unwrap();
        let p = env_file(d.path(), "shop");
        assert_eq!(p, d.path().join("shop.env"));
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        if root() {
            use std::os::unix::fs::MetadataExt;
            let e = write_env_file(&p, Some(&text)).unwrap_err().to_string();
            assert!(e.contains("is a symlink"), "{e}");
            assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
            std::fs::remove_file(&p).unwrap();
            assert!(write_env_file(&p, Some(&text)).unwrap());
            let m = std::fs::symlink_metadata(&p).unwrap();
            assert!(m.file_type().is_file());
            assert_eq!(m.mode() & 0o7777, 0o600);
            assert_eq!(m.uid(), 0);
            assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
            assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
            assert_eq!(
                std::fs::read_dir(d.path()).unwrap().count(),
                2,
                "no temp file"
            );
            assert!(!write_env_file(&p, Some(&text)).unwrap(), "unchanged");
            assert!(
                write_env_file(&p, None).unwrap(),
                "an emptied app.env removes it"
            );
            assert!(!p.exists());
        }
    }
}

//! The systemd supervisor: each slot is its own unit, `nonstop-<app>@<slot>.service`, a file
//! nonstop generates in /etc/systemd/system (marked `# Managed by nonstop`; a unit without the
//! marker is never touched). A generated file rather than a template unit with drop-ins: one
//! file says everything about a slot (`systemctl cat` shows it whole), and rewriting it at each
//! start is one atomic write.
//!
//! The unit runs the same java command line as the builtin supervisor, from the release folder,
//! as `app.user`/`app.group` (default: the user nonstop runs as, as with builtin, so a switch of
//! supervisor changes no file ownership). `KillSignal=SIGTERM`, `TimeoutStopSec=stop.grace`,
//! `SuccessExitStatus=143` (a JVM ended by SIGTERM), `Restart=on-failure` with at most 3 starts
//! in 60 s. Its own cgroup: the CodeDeploy agent's restart does not kill it. The unit's MainPID
//! and cgroup prove the app: a process on the port outside that cgroup is a stranger.
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
            "LoadState,ActiveState,SubState,MainPID,NRestarts,UnitFileState,ControlGroup,Result,ExecMainPID,ExecMainCode,ExecMainStatus,ExecMainExitTimestamp,FragmentPath",
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
    if e.traffic == crate::traffic::Via::Nftables && e.hook_user != "root" {
        let unit = format!("nonstop-{}-traffic.service", e.app);
        let text = format!(
            "{MARKER}: steering of app {app} at boot, written by `sudo nonstop setup`.\n\
             [Unit]\n\
             Description=nonstop {app}: steering at boot\n\
             DefaultDependencies=no\n\
             After=local-fs.target nftables.service\n\
             Before=nginx.service network-pre.target\n\
             Wants=network-pre.target\n\n\
             [Service]\n\
             Type=oneshot\n\
             RemainAfterExit=yes\n\
             ExecStart={bin} steer --app {app} --boot\n\n\
             [Install]\n\
             WantedBy=multi-user.target\n",
            app = e.app,
            bin = quote(&e.nonstop.to_string_lossy())?,
        );
        if write_unit(&unit, &text)? {
            changed.push(format!("installed {UNIT_DIR}/{unit}"));
            systemctl(&["daemon-reload"])?;
        }
        if show(&unit)
            .get("UnitFileState")
            .is_none_or(|v| v != "enabled")
        {
            systemctl(&["enable", "--quiet", &unit])?;
            changed.push(format!("enabled {unit} (the table at boot, before nginx)"));
        }
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
        } else if crate::registry::for_config(cfg)?.is_none() {
            return Err(failed(format!(
                "app {} is not set up on this host: run `sudo nonstop setup --user {} --config {}` once",
                cfg.app.name,
                crate::setup::user_name().unwrap_or_else(|| "USER".into()),
                cfg.path.display()
            )));
        }
        fsx::create_dirs(&cfg.run_dir())
            .context(format!("cannot create {}", cfg.run_dir().display()))?;
        let launch = Launch {
            release: start.release.clone(),
            argv: start.argv.clone(),
            env: start.env.clone(),
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
        let props = show(&unit_of(cfg, slot));
        let at = props
            .get("ExecMainExitTimestamp")
            .filter(|t| !t.is_empty())?;
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
            at: at.clone(),
        })
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
            let enabled = show(&unit)
                .get("UnitFileState")
                .is_some_and(|v| v == "enabled");
            if want == enabled {
                continue;
            }
            let r = systemctl(&[if want { "enable" } else { "disable" }, "--quiet", &unit]);
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
             After=local-fs.target\n\
             Before={before} network-pre.target\n\
             Wants=network-pre.target\n\n\
             [Service]\n\
             Type=oneshot\n\
             RemainAfterExit=yes\n\
             ExecStart={exec}\n\n\
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
            enabled: props.get("UnitFileState").map(|s| s == "enabled"),
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
        // Nothing the deploy user writes reaches the unit.
        assert!(!u.contains("Environment="), "{u}");
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
}

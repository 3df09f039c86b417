//! The systemd supervisor: each slot is its own unit, `nonstop-<app>-<slot>.service`, a file
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
//! `app.env` (passwords, often) is not in the unit, which every user may read, but in
//! `nonstop-<app>-<slot>.env` beside it, mode 0600, owned by root, named by `EnvironmentFile=`.
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

/// `nonstop-<app>-<slot>.service`
pub fn unit_name(cfg: &Config, slot: &Slot) -> String {
    format!("nonstop-{}-{}.service", cfg.app.name, slot.name)
}

/// True when PID 1 is systemd and this user may manage units (root, or `sudo -n` works).
pub fn available() -> bool {
    if !Path::new("/run/systemd/system").is_dir() {
        return false;
    }
    root()
        || Command::new("sudo")
            .args(["-n", "systemctl", "--version"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
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

/// `systemctl show UNIT` as a map of the properties nonstop reads.
fn show(unit: &str) -> HashMap<String, String> {
    systemctl(&[
        "show",
        unit,
        "-p",
        "LoadState,ActiveState,SubState,MainPID,NRestarts,UnitFileState,ControlGroup,Result,ExecMainPID,ExecMainCode,ExecMainStatus,ExecMainExitTimestampMonotonic,FragmentPath",
    ])
    .unwrap_or_default()
    .lines()
    .filter_map(|l| l.split_once('='))
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// One argument of `ExecStart=`, quoted for systemd: `"…"` with `\` and `"` escaped, `%`
/// doubled (specifiers) and `$` doubled (variable expansion, which `ExecStart=` does).
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

/// A value systemd takes to the end of the line (a path): no control characters, `%` doubled.
fn plain(v: &str) -> Result<String> {
    if v.chars().any(|c| c.is_control()) || v.trim() != v {
        return Err(failed(format!("{v:?} cannot go into a systemd unit")));
    }
    Ok(v.replace('%', "%%"))
}

/// The file holding a unit's `app.env`: `nonstop-<app>-<slot>.env` beside the unit.
pub fn env_file_name(unit: &str) -> String {
    format!("{}.env", unit.strip_suffix(".service").unwrap_or(unit))
}

/// The `EnvironmentFile=` of a slot's unit: `app.env` as `KEY="VALUE"` lines. The values are
/// often secrets, so they are not in the unit (mode 0644, readable by every user) but in this
/// file, mode 0600 and owned by root, which systemd reads as root before it drops to `User=`.
/// Inside double quotes systemd's parser (systemd.exec(5), `EnvironmentFile=`) turns `\"`,
/// `\\`, `` \` `` and `\$` into the character itself and expands no variables and no `%`
/// specifiers: every value reaches the JVM byte for byte (`pa$$w0rd$1` stays that). A control
/// character is refused, as in the unit.
pub fn render_env_file(slot: &str, env: &[(String, String)]) -> Result<String> {
    let mut text = format!(
        "{MARKER}: app.env of slot {slot}, read by systemd as root when the unit starts.\n\
         # Rewritten by every `start` (mode 0600, owner root); edit nonstop.yml instead.\n"
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

/// Write `text` as `dir/name` with mode 0600, owned by root: atomically when root, else through
/// `sudo -n install -m 0600` from a 0600 file of the deploy user's in the run folder.
fn write_env_file(cfg: &Config, dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if root() {
        fsx::write_atomic(&path, text.as_bytes(), 0o600)?;
        return Ok(path);
    }
    let tmp = cfg.run_dir().join(name);
    fsx::create_dirs(&cfg.run_dir())
        .context(format!("cannot create {}", cfg.run_dir().display()))?;
    fsx::write_atomic(&tmp, text.as_bytes(), 0o600)?;
    let st = privileged(&[
        "install",
        "-m",
        "0600",
        &tmp.to_string_lossy(),
        &path.to_string_lossy(),
    ])
    .status()
    .context("cannot run `sudo -n install`")?;
    let _ = std::fs::remove_file(&tmp);
    if !st.success() {
        return Err(failed(format!(
            "`sudo -n install -m 0600 … {}` failed ({st}): the deploy user needs the sudo rules `nonstop init` writes",
            path.display()
        )));
    }
    Ok(path)
}

/// The unit file for `start`.
pub fn render_unit(cfg: &Config, start: &Start) -> Result<String> {
    let slot = start.slot;
    let mut exec = vec![];
    for a in &start.argv {
        exec.push(quote(a)?);
    }
    // The values live in the 0600 environment file; the unit only names it.
    let env = if start.env.is_empty() {
        String::new()
    } else {
        let file = PathBuf::from(UNIT_DIR).join(env_file_name(&unit_name(cfg, slot)));
        format!("EnvironmentFile={}\n", plain(&file.to_string_lossy())?)
    };
    // app.user, else the user nonstop runs as (as the builtin supervisor does): hooks run
    // as ec2-user start JVMs as ec2-user, not as systemd's default, root.
    let mut user = String::new();
    match (&cfg.app.user, root()) {
        (Some(u), _) => user += &format!("User={u}\n"),
        (None, false) => user += &format!("User={}\n", rustix::process::geteuid().as_raw()),
        (None, true) => {}
    }
    match (&cfg.app.group, &cfg.app.user, root()) {
        (Some(g), _, _) => user += &format!("Group={g}\n"),
        (None, None, false) => user += &format!("Group={}\n", rustix::process::getegid().as_raw()),
        _ => {}
    }
    Ok(format!(
        "{MARKER}: slot {slot} (port {port}) of {app}, release {release}.\n\
         # Rewritten by every `start`; edit nonstop.yml instead. See `nonstop status`.\n\
         [Unit]\n\
         Description=nonstop {app} slot {slot} (port {port})\n\
         After=network.target\n\
         StartLimitIntervalSec=60\n\
         StartLimitBurst=3\n\n\
         [Service]\n\
         Type=exec\n\
         {user}WorkingDirectory={cwd}\n\
         {env}ExecStart={exec}\n\
         KillSignal=SIGTERM\n\
         TimeoutStopSec={grace}\n\
         SuccessExitStatus=143\n\
         Restart=on-failure\n\
         RestartSec=500ms\n\
         SyslogIdentifier=nonstop-{app}-{slot}\n\n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        slot = slot.name,
        port = slot.port,
        app = cfg.app.name,
        release = start.release,
        cwd = plain(&start.cwd.to_string_lossy())?,
        exec = exec.join(" "),
        grace = cfg.stop.grace.as_millis().div_ceil(1000).max(1),
    ))
}

/// Write `text` as unit `name`, unless it already holds it; refuses a unit nonstop did not
/// write. Returns whether the file changed.
fn write_unit(cfg: &Config, name: &str, text: &str) -> Result<bool> {
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
    if root() {
        fsx::write_atomic(&path, text.as_bytes(), 0o644)?;
    } else {
        // Written as the deploy user beside its pid files, then installed by root.
        let tmp = cfg.run_dir().join(name);
        fsx::create_dirs(&cfg.run_dir())
            .context(format!("cannot create {}", cfg.run_dir().display()))?;
        fsx::write_atomic(&tmp, text.as_bytes(), 0o644)?;
        let st = privileged(&[
            "install",
            "-m",
            "0644",
            &tmp.to_string_lossy(),
            &path.to_string_lossy(),
        ])
        .status()
        .context("cannot run `sudo -n install`")?;
        let _ = std::fs::remove_file(&tmp);
        if !st.success() {
            return Err(failed(format!(
                "`sudo -n install … {}` failed ({st}): the deploy user needs the sudo rules `nonstop init` writes",
                path.display()
            )));
        }
    }
    log::info!("wrote unit {}", path.display());
    Ok(true)
}

/// True if unit `name` exists and carries nonstop's marker.
fn ours(name: &str) -> bool {
    std::fs::read(PathBuf::from(UNIT_DIR).join(name))
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

impl Supervisor for Systemd {
    fn kind(&self) -> Kind {
        Kind::Systemd
    }

    fn launch(&self, cfg: &Config, start: &Start) -> Result<PidFile> {
        let unit = unit_name(cfg, start.slot);
        super::resolve_user(cfg)?;
        // app.env, before the unit that names it; an emptied app.env empties an old file too.
        let env_name = env_file_name(&unit);
        let env_dir = Path::new(UNIT_DIR);
        if !start.env.is_empty() || env_dir.join(&env_name).exists() {
            let text = render_env_file(&start.slot.name, &start.env)?;
            write_env_file(cfg, env_dir, &env_name, &text)?;
        }
        if write_unit(cfg, &unit, &render_unit(cfg, start)?)? {
            systemctl(&["daemon-reload"])?;
        }
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
        let unit = unit_name(cfg, slot);
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
        let props = show(&unit_name(cfg, slot));
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
        let unit = unit_name(cfg, slot);
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
        let unit = unit_name(cfg, slot);
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
        exit_record(&show(&unit_name(cfg, slot)), clocks())
    }

    fn log_tail(&self, cfg: &Config, slot: &Slot, n: usize) -> Vec<String> {
        let unit = unit_name(cfg, slot);
        let n = n.to_string();
        let out = privileged(&journal(&unit, &n, "cat"))
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
        format!("journalctl -u {}", unit_name(cfg, slot))
    }

    fn logs(&self, cfg: &Config, slot: &Slot, n: usize, follow: bool) -> Result<()> {
        let unit = unit_name(cfg, slot);
        let n = n.to_string();
        let mut argv = journal(&unit, &n, "short-iso");
        if follow {
            argv.push("-f");
        }
        // journalctl writes straight to our stdout: a closed pipe ends it as it ends us.
        let st = privileged(&argv)
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
        for s in &cfg.slots {
            let unit = unit_name(cfg, s);
            if !ours(&unit) {
                continue;
            }
            let want = s.name == live.name || cfg.app.standby_at_boot;
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
        if write_unit(cfg, &unit, &text)? {
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
        let unit = unit_name(cfg, slot);
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

    #[test]
    fn renders_a_unit_with_the_settings_that_matter() {
        let cfg = crate::config::parse(
            "app:\n  name: shop\n  user: app\n  env: {A: \"1 2\"}\nstop:\n  grace: 35s\n",
            Path::new("/x/n.yml"),
        )
        .unwrap();
        let start = Start {
            slot: &cfg.slots[1],
            argv: vec![
                "/usr/bin/java".into(),
                "-Dserver.port=8082".into(),
                "-jar".into(),
                "/r/a.jar".into(),
            ],
            env: vec![("A".into(), "1 2".into())],
            cwd: "/opt/nonstop/shop/releases/r1".into(),
            jar: "/r/a.jar".into(),
            release: "r1".into(),
        };
        let u = render_unit(&cfg, &start).unwrap();
        assert!(u.starts_with(MARKER), "{u}");
        for want in [
            "ExecStart=\"/usr/bin/java\" \"-Dserver.port=8082\" \"-jar\" \"/r/a.jar\"\n",
            "User=app\n",
            "EnvironmentFile=/etc/systemd/system/nonstop-shop-green.env\n",
            "WorkingDirectory=/opt/nonstop/shop/releases/r1\n",
            "TimeoutStopSec=35\n",
            "SuccessExitStatus=143\n",
            "Restart=on-failure\n",
            "StartLimitBurst=3\n",
            "KillSignal=SIGTERM\n",
            "WantedBy=multi-user.target\n",
        ] {
            assert!(u.contains(want), "{want:?} missing in:\n{u}");
        }
        assert_eq!(unit_name(&cfg, &cfg.slots[1]), "nonstop-shop-green.service");
        assert!(!u.contains("Environment="), "no value in the unit:\n{u}");
        assert!(!u.contains("1 2"), "no value in the unit:\n{u}");
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
        let text = render_env_file("blue", &env).unwrap();
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
        assert!(render_env_file("blue", &bad).is_err());

        // Written 0600, owned by the user nonstop runs as (root on a host: systemd reads it
        // before it drops to User=), atomically: no temp file left, a planted symlink replaced.
        let cfg = crate::config::parse("app:\n  name: shop\n", Path::new("/x/n.yml")).unwrap();
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep\n").unwrap();
        let name = env_file_name("nonstop-shop-blue.service");
        assert_eq!(name, "nonstop-shop-blue.env");
        std::os::unix::fs::symlink(&victim, d.path().join(&name)).unwrap();
        if root() {
            use std::os::unix::fs::MetadataExt;
            let p = write_env_file(&cfg, d.path(), &name, &text).unwrap();
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
        }
    }
}

//! Running systemd's programs: `systemctl` (as root, or through `sudo -n`), `journalctl` (as
//! this user: the journal's groups may read it), and `systemctl show`'s properties, the unit's
//! main process and how it last ended among them.

use crate::error::{Error, Result, Tool};
use crate::process::ExitRecord;
use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

pub(super) fn root() -> bool {
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
pub(super) fn systemctl(args: &[&str]) -> Result<String> {
    let mut argv = vec!["systemctl", "--no-ask-password"];
    argv.extend_from_slice(args);
    let out = privileged(&argv)
        .output()
        .map_err(|e| Error::spawn(format!("`{}`", argv.join(" ")), e))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    Err(Error::Command {
        tool: Tool::Systemctl,
        argv: argv.iter().map(|a| a.to_string()).collect(),
        status: out.status,
        reason: crate::nginx::telling_line(&text),
        io: None,
    })
}

/// `journalctl -u UNIT -n N --no-pager -o FORMAT`
pub(super) fn journal<'a>(unit: &'a str, n: &'a str, format: &'a str) -> Vec<&'a str> {
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
pub(super) fn journalctl(argv: &[&str]) -> Command {
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..]).stdin(Stdio::null());
    c
}

/// `systemctl show UNIT` as a map of the properties nonstop reads (reading needs no root).
pub(super) fn show(unit: &str) -> HashMap<String, String> {
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

pub(super) fn main_pid(props: &HashMap<String, String>) -> i32 {
    props
        .get("MainPID")
        .and_then(|p| p.parse().ok())
        .unwrap_or(0)
}

/// Now on the wall clock and on CLOCK_MONOTONIC (the clock of systemd's `…Monotonic`
/// timestamps), to turn the latter into UTC.
pub(super) fn clocks() -> (SystemTime, Duration) {
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
pub(super) fn exit_record(
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

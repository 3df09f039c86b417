//! /proc readers: a process's state, parent and start time, its command line, its children
//! and descendants, when it started, and this boot's id.

use std::fs;
use std::time::{Duration, SystemTime};

/// This boot's id, if the kernel exposes it.
pub fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

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

pub(super) fn all_pids() -> impl Iterator<Item = i32> {
    fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
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

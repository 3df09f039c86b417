//! Proving who answers on a slot's port: the slot's own app (its pid file's process and its
//! family holding every LISTEN socket on the port), nobody yet, or a stranger; and, for the
//! stages that stop an app, whose process it is.

use super::pidfile::{slot_process, PidFile, SlotProcess, Stale};
use super::procfs::{cmdline, tree};
use super::sockets::{listeners, port_in_use};
use std::path::Path;

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

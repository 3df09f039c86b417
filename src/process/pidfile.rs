//! What a supervisor records about a slot's app: its pid file `workdir/run/<slot>.pid` (pid,
//! /proc start time, boot id, jar, port) and how it ended (`workdir/run/<slot>.exit`), and the
//! check that a pid file still names this slot's running app.

use super::procfs::{boot_id, cmdline, same_process};
use serde::{Deserialize, Serialize};
use std::fs;
use std::path::{Path, PathBuf};

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
            .any(|a| *a == jar || crate::cds::archive::runs_twin(a, &self.jar))
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

/// Read a pid file; a missing or unreadable one is `None`.
pub fn read_pid_file(path: &Path) -> Option<PidFile> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// Read an exit record; missing is `None`.
pub fn read_exit_record(path: &Path) -> Option<ExitRecord> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

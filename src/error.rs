//! The crate's one error type: each variant is a kind of failure with its data, and the
//! process exit code comes from the kind ([`Error::exit_code`], one match).
//!
//! Exit codes are a contract with CodeDeploy and with people: 0 done, 1 failed,
//! 2 usage or configuration error, 3 another nonstop run holds the lock. Code and tests
//! tell errors apart by their kind ([`Error::kind`], or matching the variant and its data),
//! never by their text; the text (`Display`) is what the user reads on the last stderr line.

use std::fmt::Display;
use std::path::PathBuf;
use std::process::ExitStatus;

/// Everything that can go wrong in nonstop, classified by what the caller should do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad flags or arguments (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The configuration file is malformed, unsafe or asks for what setup did not fix (exit
    /// 2), at `file[:line[:col]]`.
    #[error("{}{}: {msg}", file.display(), at(*line, *col))]
    Config {
        file: PathBuf,
        line: Option<usize>,
        col: Option<usize>,
        msg: String,
    },
    /// No config file where nonstop looks (exit 2): not given by `--config` nor by the
    /// variable `env`, and not at any of the places `tried`.
    #[error("no config file: give --config PATH or set {env} (also looked at {})", tried.join(", "))]
    NoConfig {
        env: &'static str,
        tried: Vec<String>,
    },
    /// Another nonstop run holds the state lock (exit 3); `holder` is what it wrote there.
    #[error("another nonstop run holds {} ({}); try again when it finishes", path.display(), holder.as_deref().unwrap_or("unknown holder"))]
    LockHeld {
        path: PathBuf,
        holder: Option<String>,
    },
    /// A program nonstop needs is not on this host (exit 1); `msg` says how to get it.
    #[error("{msg}")]
    NotInstalled { program: String, msg: String },
    /// A program could not be started (exit 1); `command` as shown to the user.
    #[error("cannot run {command}: {source}")]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    /// A program ran and failed (exit 1): `argv` as shown, its exit status, its most telling
    /// output line, and, when the program names an errno (nft does, as text), its kind.
    #[error("{}", command_text(*tool, argv, status, reason))]
    Command {
        tool: Tool,
        argv: Vec<String>,
        status: ExitStatus,
        reason: String,
        io: Option<std::io::ErrorKind>,
    },
    /// `nginx -t` (the configured test command) rejected the new files (exit 1); they were
    /// put back and nginx was not reloaded.
    #[error("nginx rejected the new config: {reason} (`{}`); previous files restored, nginx not reloaded", argv.join(" "))]
    NginxRejected { argv: Vec<String>, reason: String },
    /// The nginx test or reload command could not run (exit 1); the files were put back and
    /// nginx was not reloaded.
    #[error("{why}; previous files restored, nginx not reloaded")]
    NginxNotRun { why: String },
    /// The reload was not confirmed (exit 1); the files were put back, and reloaded again when
    /// `reloaded` (else nginx may serve either version).
    #[error("reload not applied: {why}; previous files restored{}", if *reloaded { " and reloaded" } else { " but not reloaded: nginx may still serve either version, and the next nonstop run will refuse until `nonstop switch --slot NAME` repairs it" })]
    NginxNotApplied { why: String, reloaded: bool },
    /// A safety rule refused the command (exit 1): what was refused, and the message.
    #[error("{msg}")]
    Refused { refusal: Refusal, msg: String },
    /// A slot's app is not (or not provably) healthy (exit 1).
    #[error("{msg}")]
    Health {
        slot: String,
        why: Unhealthy,
        msg: String,
    },
    /// A termination signal ended a long wait (exit 1).
    #[error("interrupted by {signal} during {during}")]
    Interrupted {
        signal: &'static str,
        during: String,
    },
    /// Anything else that was attempted and failed (exit 1): nothing branches on it.
    #[error("{0}")]
    Failed(String),
}

/// A program whose failure is an [`Error::Command`]; it decides how the failure reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Nft,
    Systemctl,
    Journalctl,
    /// `sudo -n nonstop steer …`, the hook user's way to the root-owned steering.
    SudoSteer,
    /// `visudo -c -q -f FILE`, setup's check of the sudo rules it writes.
    Visudo,
}

/// What a safety rule refused ([`Error::Refused`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Stopping or starting over the live slot (never, even with `--force`).
    LiveSlot { slot: String },
    /// Signalling a process nonstop cannot prove is the slot's app.
    Unproven { pid: i32 },
    /// Starting an app on a port something already holds.
    PortInUse { port: u16 },
    /// A port held by a process this user cannot see in /proc.
    Unseen { port: u16 },
    /// Changing anything while it is not certain which slot nginx serves.
    Doubt { command: String },
    /// Switching traffic to a slot whose app is not proven or not healthy.
    Switch { slot: String },
    /// Signalling a pid the nginx pid file names that is not an nginx master.
    NotNginxMaster { pid: i32 },
    /// Taking the last healthy slot out of rotation.
    LastInRotation { slot: String },
    /// Writing through something that is not the regular file nonstop writes (a symlink, a
    /// folder, a device), or replacing a unit nonstop did not write.
    NotOurs { path: PathBuf },
    /// Running a slot's launch file that is not what setup fixed (`run-slot`, as root).
    Launch { slot: String },
    /// Overwriting files the user has (`nonstop init` without `--force`).
    Overwrite { paths: Vec<String> },
}

/// Why a slot's app is not healthy ([`Error::Health`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unhealthy {
    /// No pid file: nonstop started no app there.
    NotStarted,
    /// The pid file names a process that is gone or another one.
    Stale,
    /// The port answers, but not from the slot's own app.
    Stranger,
    /// A Spring Boot app answering a steady 404 at the health path.
    Steady404,
    /// No passing probe before `health.deadline`.
    Deadline,
    /// The app exited while being polled.
    Exited,
}

/// An [`Error`]'s kind without its data, for tests and callers that only ask "which".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Usage,
    Config,
    NoConfig,
    LockHeld,
    NotInstalled,
    Spawn,
    Command,
    NginxRejected,
    NginxNotRun,
    NginxNotApplied,
    Refused,
    Health,
    Interrupted,
    Failed,
}

impl Kind {
    /// The process exit code for an error of this kind.
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Usage | Kind::Config | Kind::NoConfig => 2,
            Kind::LockHeld => 3,
            Kind::NotInstalled
            | Kind::Spawn
            | Kind::Command
            | Kind::NginxRejected
            | Kind::NginxNotRun
            | Kind::NginxNotApplied
            | Kind::Refused
            | Kind::Health
            | Kind::Interrupted
            | Kind::Failed => 1,
        }
    }
}

impl Error {
    /// This error's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Error::Usage(_) => Kind::Usage,
            Error::Config { .. } => Kind::Config,
            Error::NoConfig { .. } => Kind::NoConfig,
            Error::LockHeld { .. } => Kind::LockHeld,
            Error::NotInstalled { .. } => Kind::NotInstalled,
            Error::Spawn { .. } => Kind::Spawn,
            Error::Command { .. } => Kind::Command,
            Error::NginxRejected { .. } => Kind::NginxRejected,
            Error::NginxNotRun { .. } => Kind::NginxNotRun,
            Error::NginxNotApplied { .. } => Kind::NginxNotApplied,
            Error::Refused { .. } => Kind::Refused,
            Error::Health { .. } => Kind::Health,
            Error::Interrupted { .. } => Kind::Interrupted,
            Error::Failed(_) => Kind::Failed,
        }
    }

    /// The process exit code for this error (from its [`Kind`]).
    pub fn exit_code(&self) -> u8 {
        self.kind().exit_code()
    }

    /// A config error at `file[:line[:col]]`.
    pub fn config(
        file: impl Into<PathBuf>,
        line: Option<usize>,
        col: Option<usize>,
        msg: impl Into<String>,
    ) -> Error {
        Error::Config {
            file: file.into(),
            line,
            col,
            msg: msg.into(),
        }
    }

    /// A safety rule's refusal.
    pub fn refused(refusal: Refusal, msg: impl Into<String>) -> Error {
        Error::Refused {
            refusal,
            msg: msg.into(),
        }
    }

    /// `slot`'s app is not healthy, for `why`.
    pub fn health(slot: &str, why: Unhealthy, msg: impl Into<String>) -> Error {
        Error::Health {
            slot: slot.into(),
            why,
            msg: msg.into(),
        }
    }

    /// `cannot run COMMAND: SOURCE`.
    pub fn spawn(command: impl Into<String>, source: std::io::Error) -> Error {
        Error::Spawn {
            command: command.into(),
            source,
        }
    }
}

/// `:LINE:COL`, `:LINE` or nothing.
fn at(line: Option<usize>, col: Option<usize>) -> String {
    match (line, col) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

/// How a failed program reads: "`ARGV` failed (STATUS): REASON" for nft, journalctl without a
/// reason, systemctl and sudo without the status (their reason says it), visudo naming the
/// file it rejects.
fn command_text(tool: Tool, argv: &[String], status: &ExitStatus, reason: &str) -> String {
    let shown = argv.join(" ");
    match tool {
        Tool::Nft => format!("`{shown}` failed ({status}): {reason}"),
        Tool::Journalctl => format!("`{shown}` failed ({status})"),
        Tool::Systemctl | Tool::SudoSteer => format!("`{shown}` failed: {reason}"),
        Tool::Visudo => format!(
            "visudo rejects the sudo rules for {}: {reason}",
            argv.last().map_or("", String::as_str)
        ),
    }
}

/// Shorthand for a [`Error::Failed`] with a message.
pub fn failed(msg: impl Into<String>) -> Error {
    Error::Failed(msg.into())
}

/// Crate-wide result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach "what we were doing" to low-level errors, turning them into [`Error::Failed`].
pub trait Context<T> {
    /// Map the error to `Failed("{what}: {err}")`.
    fn context(self, what: impl Display) -> Result<T>;
}

impl<T, E: Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Display) -> Result<T> {
        self.map_err(|e| Error::Failed(format!("{what}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    fn one_of_each() -> Vec<Error> {
        let io = || std::io::Error::from(std::io::ErrorKind::NotFound);
        vec![
            Error::Usage("--canary takes 1 to 99".into()),
            Error::config("/srv/app/nonstop.yml", Some(5), Some(3), "invalid port"),
            Error::NoConfig {
                env: "NONSTOP_CONFIG",
                tried: vec!["/etc/nonstop/nonstop.yml".into()],
            },
            Error::LockHeld {
                path: "/srv/app/state/lock".into(),
                holder: None,
            },
            Error::NotInstalled {
                program: "nft".into(),
                msg: "nft is not installed".into(),
            },
            Error::spawn("`nft list tables`", io()),
            Error::Command {
                tool: Tool::Nft,
                argv: vec!["nft".into(), "list".into()],
                status: ExitStatus::from_raw(1 << 8),
                reason: "Error: no".into(),
                io: None,
            },
            Error::NginxRejected {
                argv: vec!["nginx".into(), "-t".into()],
                reason: "[emerg] x".into(),
            },
            Error::NginxNotRun {
                why: "cannot run `nginx -t`".into(),
            },
            Error::NginxNotApplied {
                why: "no new workers".into(),
                reloaded: true,
            },
            Error::refused(
                Refusal::LiveSlot {
                    slot: "blue".into(),
                },
                "refusing to stop slot blue",
            ),
            Error::health("blue", Unhealthy::Deadline, "slot blue not healthy"),
            Error::Interrupted {
                signal: "SIGTERM",
                during: "health".into(),
            },
            failed("cannot write /x"),
        ]
    }

    #[test]
    fn the_exit_code_comes_from_the_kind() {
        for e in one_of_each() {
            let want = match e.kind() {
                Kind::Usage | Kind::Config | Kind::NoConfig => 2,
                Kind::LockHeld => 3,
                _ => 1,
            };
            assert_eq!(e.exit_code(), want, "{:?}", e.kind());
        }
        let kinds: std::collections::HashSet<String> = one_of_each()
            .iter()
            .map(|e| format!("{:?}", e.kind()))
            .collect();
        assert_eq!(kinds.len(), one_of_each().len(), "one error of each kind");
        assert_eq!(Kind::Usage.exit_code(), 2);
        assert_eq!(Kind::Config.exit_code(), 2);
        assert_eq!(Kind::NoConfig.exit_code(), 2);
        assert_eq!(Kind::LockHeld.exit_code(), 3);
        assert_eq!(Kind::Refused.exit_code(), 1);
        assert_eq!(Kind::Health.exit_code(), 1);
        assert_eq!(Kind::Interrupted.exit_code(), 1);
        assert_eq!(Kind::Failed.exit_code(), 1);
    }

    #[test]
    fn the_text_is_rendered_from_the_data() {
        assert_eq!(
            Error::config("/a/n.yml", Some(5), Some(3), "bad").to_string(),
            "/a/n.yml:5:3: bad"
        );
        assert_eq!(
            Error::config("/a/n.yml", Some(5), None, "bad").to_string(),
            "/a/n.yml:5: bad"
        );
        assert_eq!(
            Error::config("/a/n.yml", None, None, "bad").to_string(),
            "/a/n.yml: bad"
        );
        let held = Error::LockHeld {
            path: "/s/lock".into(),
            holder: Some("switch pid 7 since x".into()),
        };
        assert_eq!(
            held.to_string(),
            "another nonstop run holds /s/lock (switch pid 7 since x); try again when it finishes"
        );
        let e = Error::Command {
            tool: Tool::Nft,
            argv: vec!["nft".into(), "list".into(), "tables".into()],
            status: ExitStatus::from_raw(1 << 8),
            reason: "Error: x".into(),
            io: None,
        };
        assert_eq!(
            e.to_string(),
            "`nft list tables` failed (exit status: 1): Error: x"
        );
        assert_eq!(
            Error::Interrupted {
                signal: "SIGINT",
                during: "the drain".into()
            }
            .to_string(),
            "interrupted by SIGINT during the drain"
        );
        assert_eq!(
            Error::spawn(
                "sudo",
                std::io::Error::from_raw_os_error(rustix::io::Errno::NOENT.raw_os_error())
            )
            .to_string(),
            "cannot run sudo: No such file or directory (os error 2)"
        );
    }
}

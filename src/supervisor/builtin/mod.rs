//! The builtin supervisor: the app runs under a re-executed nonstop ([`launch()`]) in
//! its own session, its pid file `workdir/run/<slot>.pid` and /proc prove it, its exit is
//! recorded in `workdir/run/<slot>.exit`, and its output is appended to
//! `workdir/logs/<slot>.log`. Nothing restarts it and nothing starts it at boot: that is what
//! the systemd supervisor is for. `logs -f` follows the log file (`follow.rs`).

mod follow;
pub mod launch;

pub use launch::{launch, supervise, Launch, SUPERVISE_ENV};

use super::{Kind, Start, Stopped, Supervision, Supervisor};
use crate::config::{Config, Slot};
use crate::error::Result;
use crate::fsx;
use crate::process::{self, Answerer, ExitRecord, PidFile, SlotProcess};
use std::collections::HashSet;

/// See the module doc.
pub struct Builtin;

impl Supervisor for Builtin {
    fn kind(&self) -> Kind {
        Kind::Builtin
    }

    fn launch(&self, cfg: &Config, start: &Start) -> Result<PidFile> {
        let log = cfg.log_file(start.slot);
        rotate_log(cfg, &log);
        // The app inherits this process's environment; the run's deployment id is handed on
        // explicitly (first, so that `app.env` still wins, as it did over the inherited one).
        let env = start
            .deployment_id
            .iter()
            .map(|id| ("DEPLOYMENT_ID".to_string(), id.clone()))
            .chain(start.env.iter().cloned())
            .collect();
        let spec = Launch {
            argv: start.argv.clone(),
            env,
            cwd: start.cwd.clone(),
            log,
            pid_file: cfg.pid_file(start.slot),
            exit_file: cfg.exit_file(start.slot),
            slot: start.slot.name.clone(),
            port: start.slot.port,
            jar: start.jar.clone(),
            release: start.release.clone(),
            run_as: super::resolve_user(cfg)?,
        };
        launch(&spec)
    }

    fn app(&self, cfg: &Config, slot: &Slot) -> SlotProcess {
        process::slot_process(&cfg.pid_file(slot))
    }

    fn family(&self, _cfg: &Config, _slot: &Slot, pf: &PidFile) -> HashSet<i32> {
        process::tree(pf.pid)
    }

    fn stop(&self, cfg: &Config, slot: &Slot, pf: &PidFile) -> Result<Stopped> {
        terminate_app(cfg, slot, pf, |pf| process::tree(pf.pid))
    }

    fn settle(&self, _cfg: &Config, _slot: &Slot) -> Result<()> {
        Ok(())
    }

    fn last_exit(&self, cfg: &Config, slot: &Slot) -> Option<ExitRecord> {
        process::read_exit_record(&cfg.exit_file(slot))
    }

    fn log_tail(&self, cfg: &Config, slot: &Slot, n: usize) -> Vec<String> {
        fsx::tail(&cfg.log_file(slot), n)
    }

    fn log_hint(&self, cfg: &Config, slot: &Slot) -> String {
        format!("log {}", cfg.log_file(slot).display())
    }

    fn logs(&self, cfg: &Config, slot: &Slot, n: usize, follow: bool) -> Result<()> {
        let path = cfg.log_file(slot);
        for l in fsx::tail(&path, n) {
            crate::out::out(l);
        }
        if !follow {
            return Ok(());
        }
        follow::follow_file(&path)
    }

    fn at_boot(&self, _cfg: &Config, _live: &Slot) -> Result<()> {
        Ok(())
    }

    fn boot_command(&self, _: &Config, _: &str, _: &[String], _: &str) -> Result<bool> {
        Ok(false)
    }

    fn supervision(&self, _cfg: &Config, _slot: &Slot) -> Supervision {
        Supervision::default()
    }
}

/// SIGTERM the app `pf` and wait (see [`process::terminate`]). A java wrapper that does not
/// exec leaves the JVM as a descendant holding the port: it is signalled first (its graceful
/// shutdown), then the wrapper.
pub fn terminate_app(
    cfg: &Config,
    slot: &Slot,
    pf: &PidFile,
    family: impl Fn(&PidFile) -> HashSet<i32>,
) -> Result<Stopped> {
    let listener = match process::answerer_of(SlotProcess::Running(pf.clone()), family, slot.port) {
        Answerer::App { listener, .. } if listener != pf.pid => Some(listener),
        _ => None,
    };
    let start_time = |pid| process::stat(pid).map(|s| s.start_time).unwrap_or(0);
    let (took, killed) = match listener {
        Some(l) => {
            log::info!(
                "pid {l}, a descendant of pid {}, holds the port and is signalled first",
                pf.pid
            );
            let (t1, k1) = process::terminate(l, start_time(l), cfg.stop.grace)?;
            let (_, k2) = process::terminate(pf.pid, pf.start_time, cfg.stop.grace)?;
            (t1, k1 || k2)
        }
        None => process::terminate(pf.pid, pf.start_time, cfg.stop.grace)?,
    };
    Ok(Stopped { took, killed })
}

/// Before a new app opens the slot's log: when it is over `logs.max_size`, shift it to
/// `<slot>.log.1` (… up to `logs.keep`, the oldest dropped), so logs do not grow without bound
/// across releases. A running app's log is never touched here (its slot's port is free).
fn rotate_log(cfg: &Config, log: &std::path::Path) {
    let big = std::fs::metadata(log).is_ok_and(|m| m.len() > cfg.logs.max_size);
    if !big {
        return;
    }
    let name = |i: usize| {
        let mut p = log.as_os_str().to_owned();
        p.push(format!(".{i}"));
        std::path::PathBuf::from(p)
    };
    if cfg.logs.keep == 0 {
        let _ = std::fs::remove_file(log);
        return;
    }
    let _ = std::fs::remove_file(name(cfg.logs.keep));
    for i in (1..cfg.logs.keep).rev() {
        let _ = std::fs::rename(name(i), name(i + 1));
    }
    match std::fs::rename(log, name(1)) {
        Ok(()) => log::info!(
            "rotated {} (over {} bytes) to {}",
            log.display(),
            cfg.logs.max_size,
            name(1).display()
        ),
        Err(e) => log::warn!("could not rotate {}: {e}", log.display()),
    }
}

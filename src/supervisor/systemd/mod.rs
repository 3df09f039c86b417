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
//!
//! One file per concern: [`ctl`] (running systemctl and journalctl, reading a unit's
//! properties), [`env`](mod@env) (the root-only `app.env` file), [`units`] (the units setup writes and
//! their names), [`run_slot`](mod@run_slot) (the launch file and the unit's check of it); here, the
//! [`Supervisor`] on top of them.

pub mod ctl;
pub mod env;
pub mod run_slot;
pub mod units;

pub use env::{env_digest, env_file, render_env_file, write_env_file, MARKER};
pub use run_slot::{check_launch, launch_path, run_slot, Launch};
pub use units::{
    install_steering_unit, install_units, legacy_unit, render_template, steering_unit, unit_name,
    UNIT_DIR,
};

use super::{Kind, Start, Stopped, Supervision, Supervisor};
use crate::config::{Config, Slot};
use crate::error::{failed, Context, Error, Result, Tool};
use crate::process::{self, ExitRecord, PidFile, SlotProcess};
use crate::{fsx, interrupt};
use ctl::{clocks, exit_record, journal, journalctl, main_pid, root, show, systemctl};
use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};
use units::{enabled_at_boot, ours, quote, unit_of, write_unit, FOLLOW_NFTABLES};

/// See the module doc.
pub struct Systemd;

/// True when PID 1 is systemd and this user may manage `app`'s units: root, or the app is
/// set up on this host (`sudo nonstop setup`).
pub fn available(app: &str) -> bool {
    Path::new("/run/systemd/system").is_dir()
        && (root()
            || crate::registry::read(Path::new(crate::registry::DIR), app)
                .is_ok_and(|e| e.is_some()))
}

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
            for line in crate::setup::install(cfg, "root", dir, None)? {
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
            .map_err(|e| Error::spawn("journalctl", e))?;
        if st.success() || follow {
            Ok(())
        } else {
            Err(Error::Command {
                tool: Tool::Journalctl,
                argv: argv.iter().map(|a| a.to_string()).collect(),
                status: st,
                reason: String::new(),
                io: None,
            })
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
            // what the next boot reads. As root, the link itself; through sudo, systemctl (a
            // sudo rule from an older setup lacks `--no-reload`).
            let r = if root() {
                units::set_at_boot(Path::new(units::UNIT_DIR), &unit, want)
            } else {
                systemctl(&[verb, "--quiet", "--no-reload", &unit])
                    .or_else(|_| systemctl(&[verb, "--quiet", &unit]))
                    .map(drop)
            };
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
mod tests;

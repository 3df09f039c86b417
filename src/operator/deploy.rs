//! `nonstop deploy [--jar PATH]`: stop, start, health, switch (and deploy-second in balanced
//! mode) in one run, holding the lock throughout, with one summary line per stage on stdout.
//!
//! Each stage is the very function the hook binary of that name calls ([`stages::stop`],
//! [`stages::start`], [`stages::health`], [`stages::switch`], [`stages::deploy_second`]), so a
//! deploy by hand behaves exactly like one run by the CodeDeploy agent. `--jar` is handed to
//! `start` by pointing `app.jar` at that one file. `--watch` then watches the new release
//! ([`crate::watch`]) and switches back on a breach.
//!
//! Deploying the jar that already serves (the same sha256 as the live slot's own app, which
//! answers its health probe; in balanced mode every slot's) changes nothing: no stage runs,
//! nothing is recorded, and the run says so and exits 0 (`unchanged` in the `--json` report,
//! [`super::report`]).

use super::report::{Decided, Outcome, Report};
use super::{record_run, Stages};
use crate::config::{Config, Slot};
use crate::error::{failed, Context, Result};
use crate::log::human;
use crate::process::{Owner, PidFile};
use crate::run::{Run, Target};
use crate::stages::{self, SwitchMode};
use crate::state::Action;
use crate::{health, process, slots, state};
use std::path::Path;
use std::time::{Duration, Instant};

/// Run a whole deployment to the idle slot (or `slot`) with the newest jar (or `jar`), then
/// watch the new release for `watch` (or `watch.duration` when `watch.enabled`); `rep` gets
/// what happened, `decided` an outcome the result alone does not tell.
pub fn run(
    run: &Run,
    slot: Option<&str>,
    jar: Option<&Path>,
    watch: Option<Duration>,
    rep: &mut Report,
    decided: &mut Decided,
) -> Result<()> {
    let t0 = Instant::now();
    let watch = crate::watch::duration(&run.cfg, watch)?;
    let id = run.deployment_id("deploy");
    rep.id = Some(id.to_string());
    let with_jar = with_jar(&run.cfg, jar)?.map(|cfg| run.with_config(cfg));
    let run = with_jar.as_ref().unwrap_or(run);
    let cfg = &run.cfg;
    let _lock = run.lock("nonstop deploy")?;
    let jar = crate::releases::resolve_jar(cfg)?;
    let roles = run.roles(&state::load(&cfg.state_dir))?;
    rep.previous = roles.live.map(|l| l.name.clone());
    let sha =
        super::status::sha256_file(&jar).context(format!("cannot read jar {}", jar.display()))?;
    rep.sha256 = Some(sha.clone());
    if let Some((live, pf)) = already_live(run, &roles, &sha) {
        crate::outln!(
            "deploy {id}: {} ({}) is live already on slot {} (port {}, release {}, sha256 {}), healthy: nothing to do",
            crate::releases::jar_version(&jar),
            jar.file_name().map_or_else(
                || jar.display().to_string(),
                |n| n.to_string_lossy().into_owned()
            ),
            live.name,
            live.port,
            pf.release,
            &sha[..12]
        );
        rep.slot = Some(live.name.clone());
        rep.version = crate::releases::release_version(cfg, &pf.release);
        rep.release = Some(pf.release);
        decided.0 = Some(Outcome::Unchanged);
        return Ok(());
    }
    let target = roles.target(cfg, slot)?;
    rep.slot = Some(target.name.clone());
    crate::outln!(
        "deploy {id}: {} ({}) to slot {} (port {}); live now: {}",
        crate::releases::jar_version(&jar),
        // The file name: its folder is in the log (`release …: copied … to …`).
        jar.file_name().map_or_else(
            || jar.display().to_string(),
            |n| n.to_string_lossy().into_owned()
        ),
        target.name,
        target.port,
        live_now(run, roles.live)
    );
    // Resolved once: every stage acts on this slot.
    let to = Target::Slot(target);
    let mut st = Stages::default();
    let r = (|| {
        st.run(Action::Stop, || stages::stop(run, to, false))?;
        st.run(Action::Start, || stages::start(run, to))?;
        st.run(Action::Health, || stages::health(run, to))?;
        // The old release's figures are read just before the switch.
        let mut armed = watch
            .and_then(|_| crate::watch::arm(run, roles.live.filter(|l| l.name != target.name)));
        st.run(Action::Switch, || {
            stages::switch(run, to, false, SwitchMode::Full)
        })?;
        if cfg.balanced() {
            st.run(Action::DeploySecond, || stages::deploy_second(run, None))?;
        }
        if let (Some(a), Some(d)) = (armed.as_mut(), watch) {
            st.run(Action::Watch, || crate::watch::watch(run, a, target, d))?;
        }
        Ok(())
    })();
    let release = process::read_pid_file(&stages::pid_path(cfg, target)).map(|p| p.release);
    rep.stages(&st);
    rep.version = release
        .as_deref()
        .and_then(|r| crate::releases::release_version(cfg, r));
    rep.release.clone_from(&release);
    if r.is_err() && st.failed_stage() == Some(&Action::Watch) {
        // Switched back only when the old slot serves again.
        let back = run
            .roles(&state::load(&cfg.state_dir))
            .ok()
            .and_then(|now| now.live.map(|l| l.name.clone()));
        decided.0 = Some(if back.is_some() && back == rep.previous {
            Outcome::SwitchedBack
        } else {
            Outcome::FailedAfterSwitch
        });
    }
    record_run(
        run,
        Action::Deploy,
        &target.name,
        release.clone(),
        t0,
        &r,
        &st,
    );
    r?;
    let old = roles.live.filter(|l| l.name != target.name);
    crate::outln!(
        "deployed release {} ({}) to slot {} (port {}) in {}{}",
        release.as_deref().unwrap_or("?"),
        release.as_deref().map_or_else(
            || "version unknown".to_string(),
            |r| crate::releases::version_words(cfg, r)
        ),
        target.name,
        target.port,
        human(t0.elapsed()),
        rollback_target(run, old)
    );
    Ok(())
}

/// The live slot as the first line names it: `green (port 8082)`, or `none (…)`.
fn live_now(run: &Run, live: Option<&Slot>) -> String {
    match live {
        None => "none".to_string(),
        Some(l) if run.running_app(l).is_none() => format!(
            "none ({} names slot {}, which runs no app)",
            run.truth(),
            l.name
        ),
        Some(l) => format!("{} (port {})", l.name, l.port),
    }
}

/// The end of the last line: what `old`, the slot traffic came from, is now. Only a slot whose
/// own app still runs is an instant rollback target.
fn rollback_target(run: &Run, old: Option<&Slot>) -> String {
    match old {
        Some(o) if !run.cfg.balanced() && run.running_app(o).is_some() => {
            format!("; {} keeps running as the rollback target", o.name)
        }
        Some(o) if !run.cfg.balanced() => format!(
            "; {} runs no app, so there is no instant rollback target",
            o.name
        ),
        _ => String::new(),
    }
}

/// The live slot and its app's pid file when the jar whose sha256 is `sha` serves already: the
/// live slot's own app runs it and answers its health probe (in balanced mode, every slot's).
fn already_live<'a>(
    run: &'a Run,
    roles: &slots::Roles<'a>,
    sha: &str,
) -> Option<(&'a Slot, PidFile)> {
    let cfg = &run.cfg;
    let live = roles.live?;
    let serving: Vec<&Slot> = if cfg.balanced() {
        cfg.slots.iter().collect()
    } else {
        vec![live]
    };
    let mut found = None;
    for s in serving {
        let Some(Owner::Ours(pf)) = run.owner(s) else {
            return None;
        };
        if super::status::sha256_file(&pf.jar).ok()? != sha || health::check_once(cfg, s).1.is_err()
        {
            return None;
        }
        if s.name == live.name {
            found = Some(pf);
        }
    }
    found.map(|pf| (live, pf))
}

/// `cfg` with `app.jar` set to exactly `jar` (made absolute), when one is given.
fn with_jar(cfg: &Config, jar: Option<&Path>) -> Result<Option<Config>> {
    let Some(jar) = jar else {
        return Ok(None);
    };
    let abs =
        std::fs::canonicalize(jar).map_err(|e| failed(format!("--jar {}: {e}", jar.display())))?;
    if !abs.is_file() {
        return Err(failed(format!("--jar {}: not a file", jar.display())));
    }
    let name = abs.file_name().map(|n| n.to_string_lossy().into_owned());
    if name.as_deref().is_none_or(|n| n.contains(['*', '?'])) {
        return Err(failed(format!(
            "--jar {}: a file name with * or ? would be read as a pattern; rename it",
            jar.display()
        )));
    }
    let mut c = cfg.clone();
    c.app.jar = abs;
    Ok(Some(c))
}

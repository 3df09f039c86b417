//! `nonstop rollback`: back to the slot that was live before (the state's `previous`, or
//! `--slot NAME`) and the release it served then.
//!
//! - If that slot still runs that release and answers its health probe, rollback is one
//!   [`stages::switch`] (same probe, same nginx transaction, same record as `switch`): no process
//!   is started or stopped, and it takes about as long as an nginx reload.
//! - Otherwise the release is started again on that slot (which, with two slots, is the idle
//!   one): [`stages::stop`] whatever runs there, [`stages::launch_release`] the release's own
//!   jar (never a copy over it), [`stages::health`], [`stages::switch`].
//!
//! In balanced mode [`stages::deploy_second`] then rolls the other slots to that release too.
//! The release a slot served is read from the state history: the release recorded by the last
//! successful switch to that slot ([`crate::state::State::served_release`]).

use super::{record_run, Stages};
use crate::config::Slot;
use crate::error::{failed, Result};
use crate::log::human;
use crate::process::{self, Owner};
use crate::run::{Run, Target};
use crate::stages::{self, SwitchMode};
use crate::state::Action;
use crate::{health, releases, slots, state};
use std::time::Instant;

/// What `nonstop rollback` would do now. Decided only by [`plan`]: `status` shows it and
/// `rollback` does it, so the two never disagree.
#[derive(Debug, Clone)]
pub struct Plan<'a> {
    /// The live slot, rolled back from.
    pub from: &'a Slot,
    /// The slot rolled back to.
    pub to: &'a Slot,
    /// The release `to` served at its last successful switch.
    pub release: String,
    /// `None`: a switch only (`to` runs `release` healthy); else why `release` has to be
    /// started on `to` again (words that follow "slot NAME").
    pub restart: Option<String>,
}

/// What a rollback to the previous slot (or `slot`) would do now, or why there is none.
pub fn plan<'a>(
    run: &'a Run,
    st: &state::State,
    roles: &slots::Roles<'a>,
    slot: Option<&str>,
) -> Result<Plan<'a>> {
    let cfg = &run.cfg;
    let live = roles.live.ok_or_else(|| {
        failed(format!(
            "no slot is live ({} names none): nothing to roll back from",
            run.truth()
        ))
    })?;
    let target = match slot {
        Some(name) => cfg.slot(name)?,
        None => {
            let prev = st.previous.as_deref().ok_or_else(|| {
                failed(
                    "the state records no previous slot: name one, `nonstop rollback --slot NAME`",
                )
            })?;
            cfg.slot(prev)?
        }
    };
    if target.name == live.name {
        return Err(failed(format!(
            "slot {} is live already: nothing to roll back to",
            target.name
        )));
    }
    let release = st.served_release(&target.name).ok_or_else(|| {
        failed(format!(
            "no release of slot {} was ever switched live in the recorded history: nothing to roll back to (`nonstop rollback --slot NAME` for another slot, or `nonstop deploy`)",
            target.name
        ))
    })?;
    let restart = ready(run, target, &release);
    Ok(Plan {
        from: live,
        to: target,
        release,
        restart,
    })
}

/// Roll back to the previous slot (or `slot`); `rep` gets what happened.
pub fn run(run: &Run, slot: Option<&str>, rep: &mut super::report::Report) -> Result<()> {
    let cfg = &run.cfg;
    let t0 = Instant::now();
    let id = run.deployment_id("rollback");
    rep.id = Some(id.to_string());
    let _lock = run.lock("nonstop rollback")?;
    let st = state::load(&cfg.state_dir);
    let roles = run.roles(&st)?;
    let Plan {
        from: live,
        to: target,
        release: want,
        restart: why_not,
    } = plan(run, &st, &roles, slot)?;
    rep.previous = Some(live.name.clone());
    rep.slot = Some(target.name.clone());
    rep.release = Some(want.clone());
    rep.version = releases::release_version(cfg, &want);
    let live_release = release_words(run, live);
    crate::outln!(
        "rollback {id}: from slot {} (port {}, release {live_release}) to slot {} (port {}, release {want}): back to {}",
        live.name, live.port, target.name, target.port, releases::version_words(cfg, &want)
    );

    // Resolved once: every stage acts on this slot.
    let to = Target::Slot(target);
    let mut st_run = Stages::default();
    let r = match &why_not {
        // The plan has just proven the slot's app and probed its health, under this lock.
        None => st_run.run(Action::Switch, || {
            stages::switch_probed(run, to, false, SwitchMode::Full, true)
        }),
        Some(why) => {
            crate::outln!(
                "slot {} {why}: starting release {want} on it again",
                target.name
            );
            (|| {
                let jar = releases::release_jar(cfg, &want)?;
                st_run.run(Action::Stop, || stages::stop(run, to, false))?;
                st_run.run(Action::Start, || {
                    stages::launch_release(run, target, &want, &jar).map(drop)
                })?;
                st_run.run(Action::Health, || stages::health(run, to))?;
                st_run.run(Action::Switch, || {
                    stages::switch(run, to, false, SwitchMode::Full)
                })
            })()
        }
    };
    let r = r.and_then(|()| {
        if cfg.balanced() {
            st_run.run(Action::DeploySecond, || stages::deploy_second(run, None))
        } else {
            Ok(())
        }
    });
    rep.stages(&st_run);
    record_run(
        run,
        Action::Rollback,
        &target.name,
        Some(want.clone()),
        t0,
        &r,
        &st_run,
    );
    r?;
    let took = human(t0.elapsed());
    let how = match why_not {
        None => "switch only, no process started",
        Some(_) => "release started again",
    };
    crate::outln!(
        "rolled back to slot {} (port {}, release {want}) in {took}: back to {}; {how}; {}",
        target.name,
        target.port,
        releases::version_words(cfg, &want),
        left_behind(run, live)
    );
    Ok(())
}

/// The release `slot` runs, for the first line: `R`, `R, not running` or `?, not running`.
fn release_words(run: &Run, slot: &Slot) -> String {
    match run.owner(slot) {
        Some(Owner::Ours(pf)) => pf.release,
        _ => match process::read_pid_file(&stages::pid_path(&run.cfg, slot)) {
            Some(pf) => format!("{}, not running", pf.release),
            None => "?, not running".into(),
        },
    }
}

/// What is true now of `slot`, the slot rolled back from, as the end of the last line: it
/// keeps running only if its own app (pid file checked in /proc) still does.
fn left_behind(run: &Run, slot: &Slot) -> String {
    match run.owner(slot) {
        Some(Owner::Ours(_)) => format!("{} keeps running", slot.name),
        None => format!(
            "{} is not running (nothing listens on port {})",
            slot.name, slot.port
        ),
        Some(o) => format!(
            "{}'s app is not running: port {} is held by pid {} that nonstop did not start",
            slot.name,
            slot.port,
            o.pid().map_or("?".to_string(), |p| p.to_string())
        ),
    }
}

/// `None` when `slot` runs `release` (started by nonstop) and answers its health probe now;
/// else why not, as words that follow "slot NAME".
fn ready(run: &Run, slot: &Slot, release: &str) -> Option<String> {
    match run.owner(slot) {
        None => Some("is stopped".into()),
        Some(Owner::Ours(pf)) if pf.release != release => {
            Some(format!("runs release {}, not {release}", pf.release))
        }
        Some(Owner::Ours(_)) => match health::check_once(&run.cfg, slot) {
            (_, Ok(())) => None,
            (_, Err(why)) => Some(format!("is unhealthy ({why})")),
        },
        Some(o) => Some(format!(
            "is held by pid {} that nonstop did not start",
            o.pid().map_or("?".to_string(), |p| p.to_string())
        )),
    }
}

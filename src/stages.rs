//! The deployment stages (`stop`, `start`, `health`, `switch`) composed from the other modules.
//! Each binary in `src/bin/` parses flags and calls exactly one of these; any later command
//! that runs several stages calls the same functions, never a copy.

use crate::config::{Config, Slot};
use crate::error::{failed, Error, Refusal, Result};
use crate::log::human;
use crate::nginx::Member;
use crate::process::{self, Owner};
use crate::run::{Run, Target};
use crate::state::{self, Action};
use crate::{health, rotation, slots, supervisor};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `workdir/run/<slot>.pid`
pub fn pid_path(cfg: &Config, slot: &Slot) -> PathBuf {
    cfg.pid_file(slot)
}

/// `workdir/run/<slot>.exit`
pub fn exit_path(cfg: &Config, slot: &Slot) -> PathBuf {
    cfg.exit_file(slot)
}

/// Record `action` on `slot` in the state history with its outcome and duration.
fn record(
    run: &Run,
    action: Action,
    slot: &Slot,
    release: Option<String>,
    t0: Instant,
    r: &Result<()>,
) {
    run.record(action, &slot.name, release, t0, state::Outcome::of(r));
}

// ---------- stop ----------

/// `stop`: stop the app on the idle slot (or `slot`). Never the live slot.
pub fn stop(run: &Run, slot: Target<'_>, force: bool) -> Result<()> {
    let cfg = &run.cfg;
    let _lock = run.lock("stop")?;
    let roles = run.roles(&state::load(&cfg.state_dir))?;
    roles.certain(run.sup, cfg, "stop", force, true)?;
    let target = slot.resolve(&roles, cfg)?;
    if roles.is_live(target) {
        return Err(Error::refused(
            Refusal::LiveSlot {
                slot: target.name.clone(),
            },
            format!(
                "refusing to stop slot {} (port {}): it is live, {} points at it",
                target.name,
                target.port,
                run.truth()
            ),
        ));
    }
    let t0 = Instant::now();
    let r = leave_rotation(run, target).and_then(|_| stop_slot(run, target, force));
    record(run, Action::Stop, target, None, t0, &r);
    r
}

/// In balanced mode, take `slot` out of rotation and drain it before it is stopped.
/// Returns the connections the drain left open (0 when nothing to do).
pub fn leave_rotation(run: &Run, slot: &Slot) -> Result<usize> {
    if !run.cfg.balanced() {
        return Ok(0);
    }
    rotation::take_out(run, slot)
}

/// Stop whatever runs on `slot`'s port, if it is provably the slot's app (or `force`).
/// Callers guarantee `slot` is not live. Nothing running is success.
pub fn stop_slot(run: &Run, slot: &Slot, force: bool) -> Result<()> {
    let (cfg, sup) = (&run.cfg, run.sup);
    let pid_file = pid_path(cfg, slot);
    let owner = match run.owner(slot) {
        Some(Owner::Foreign { pid: None, cmd }) => unseen_unit(run, slot)
            .map_or(Some(Owner::Foreign { pid: None, cmd }), |pf| {
                Some(Owner::Ours(pf))
            }),
        o => o,
    };
    let (pid, how) = match &owner {
        None => {
            sup.settle(cfg, slot)?;
            let _ = fs::remove_file(&pid_file);
            log::info!(
                "nothing running on slot {} (port {}); nothing to stop",
                slot.name,
                slot.port
            );
            return Ok(());
        }
        Some(Owner::Ours(pf)) => (
            pf.pid,
            format!("started by nonstop ({}), release {}", sup.kind(), pf.release),
        ),
        Some(Owner::JavaWithPort { pid, cmd }) => {
            log::warn!("pid {pid} on port {} was not started by nonstop but is java with the port on its command line: {cmd}", slot.port);
            (*pid, "java with the port on its command line".to_string())
        }
        Some(Owner::Foreign { pid: Some(pid), cmd }) if force => {
            log::warn!("--force: stopping pid {pid} on port {} although nonstop cannot prove it is the app: {cmd}", slot.port);
            (*pid, "forced".to_string())
        }
        Some(Owner::Foreign { pid: Some(pid), cmd }) => {
            return Err(Error::refused(Refusal::Unproven { pid: *pid }, format!(
                "refusing to stop pid {pid} on port {}: nonstop did not start it and it is not java with that port on its command line ({}); give --force if it is the app",
                slot.port,
                if cmd.is_empty() { "command line unknown" } else { cmd }
            )))
        }
        Some(Owner::Foreign { pid: None, .. }) => {
            return Err(Error::refused(Refusal::Unseen { port: slot.port }, format!(
                "port {} is in use by a process this user cannot see in /proc; cannot stop it",
                slot.port
            )))
        }
    };
    log::info!(
        "stopping slot {} (port {}): pid {pid}, {how}",
        slot.name,
        slot.port
    );
    let supervisor::Stopped { took, killed } = match &owner {
        Some(Owner::Ours(pf)) => sup.stop(cfg, slot, pf)?,
        _ => {
            let start_time = process::stat(pid).map(|s| s.start_time).unwrap_or(0);
            let (took, killed) = process::terminate(pid, start_time, cfg.stop.grace)?;
            supervisor::Stopped { took, killed }
        }
    };
    if !process::wait_port_free(slot.port, Duration::from_secs(5)) {
        return Err(failed(format!(
            "pid {pid} exited but port {} is still in use 5 s later",
            slot.port
        )));
    }
    let _ = fs::remove_file(&pid_file);
    let ended = ended_words(run, slot, owner.as_ref());
    if killed {
        log::warn!(
            "stopped slot {} in {}: it ignored SIGTERM for {:?} and was killed",
            slot.name,
            human(took),
            cfg.stop.grace
        );
    } else {
        log::info!(
            "stopped slot {} gracefully in {}{ended}; port {} is free",
            slot.name,
            human(took),
            slot.port
        );
    }
    Ok(())
}

/// The slot's app when its port is held by processes this user cannot see and the slot's own
/// systemd unit (nonstop's: its marker) runs it as another user whose descriptors this user
/// cannot read: an older nonstop's unit, whose JVM runs as root, after the hooks moved to
/// ec2-user. systemd stops the unit by its name (its own cgroup, nothing else), and the port
/// must be free after it, so nothing but that unit is stopped on this weaker proof.
fn unseen_unit(run: &Run, slot: &Slot) -> Option<process::PidFile> {
    if run.sup.kind() != supervisor::Kind::Systemd {
        return None;
    }
    match run.sup.app(&run.cfg, slot) {
        process::SlotProcess::Running(pf)
            if pf.supervisor == 0 && fs::read_dir(format!("/proc/{}/fd", pf.pid)).is_err() =>
        {
            log::warn!(
                "port {} is held by a process this user cannot see; slot {}'s unit runs pid {} as another user: stopping that unit, the port must then be free",
                slot.port,
                slot.name,
                pf.pid
            );
            Some(pf)
        }
        _ => None,
    }
}

/// How the app `owner` ended, as its supervisor recorded it (it writes the record right after
/// the app's exit), as the end of the "stopped" line: a JVM's graceful shutdown on SIGTERM
/// exits 143, which is no failure.
fn ended_words(run: &Run, slot: &Slot, owner: Option<&Owner>) -> String {
    let ended = match owner {
        Some(Owner::Ours(pf)) => exit_status(run, slot, pf.pid),
        _ => None,
    };
    ended.map_or(String::new(), |r| {
        let odd = if r.graceful() {
            ""
        } else {
            " (not 0 or 143: see its log)"
        };
        format!("; the app ended with {r}{odd}")
    })
}

/// The supervisor's exit record of `pid` on `slot`, waiting up to 500 ms for it to appear.
fn exit_status(run: &Run, slot: &Slot, pid: i32) -> Option<process::ExitRecord> {
    let t0 = Instant::now();
    loop {
        if let Some(r) = run.sup.last_exit(&run.cfg, slot).filter(|r| r.pid == pid) {
            return Some(r);
        }
        if t0.elapsed() > Duration::from_millis(500) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ---------- start ----------

/// `start`: copy the newest jar to a new release folder and launch it on the idle slot.
pub fn start(run: &Run, slot: Target<'_>) -> Result<()> {
    let cfg = &run.cfg;
    let _lock = run.lock("start")?;
    let roles = run.roles(&state::load(&cfg.state_dir))?;
    roles.certain(run.sup, cfg, "start", false, false)?;
    let target = slot.resolve(&roles, cfg)?;
    if roles.is_live(target) {
        return Err(Error::refused(
            Refusal::LiveSlot {
                slot: target.name.clone(),
            },
            format!(
                "refusing to start on slot {}: it is live; start deploys to an idle slot",
                target.name
            ),
        ));
    }
    let t0 = Instant::now();
    let jar = crate::releases::resolve_jar(cfg)?;
    let r = start_slot(run, target, &jar);
    let release = r.as_ref().ok().map(|p| p.release.clone());
    let r = r.map(drop);
    record(run, Action::Start, target, release, t0, &r);
    r
}

/// The release the slot's pid file names, if any.
fn slot_release(cfg: &Config, slot: &Slot) -> Option<String> {
    process::read_pid_file(&pid_path(cfg, slot)).map(|p| p.release)
}

/// Copy `jar` into a new release and launch it on `slot`. Returns the pid file.
pub fn start_slot(run: &Run, slot: &Slot, jar: &Path) -> Result<process::PidFile> {
    let cfg = &run.cfg;
    if let Some(o) = run.owner(slot) {
        let who = match o {
            Owner::Ours(p) => format!("pid {} (nonstop, release {})", p.pid, p.release),
            Owner::JavaWithPort { pid, cmd }
            | Owner::Foreign {
                pid: Some(pid),
                cmd,
            } => {
                format!("pid {pid} ({cmd})")
            }
            Owner::Foreign { pid: None, .. } => "an unknown process".into(),
        };
        return Err(Error::refused(Refusal::PortInUse { port: slot.port }, format!(
            "port {} of slot {} is in use by {who}; stop it first (the bundle's `bin/stop --slot {}`)",
            slot.port, slot.name, slot.name
        )));
    }
    java_path(cfg)?;
    let (release, release_jar) = crate::releases::new_release(cfg, run.id(), jar)?;
    crate::releases::prune_releases(cfg, &release);
    launch_release(run, slot, &release, &release_jar)
}

/// Launch an existing release's jar on `slot` (its port must be free).
pub fn launch_release(
    run: &Run,
    slot: &Slot,
    release: &str,
    release_jar: &Path,
) -> Result<process::PidFile> {
    let cfg = &run.cfg;
    if process::port_in_use(slot.port) {
        return Err(Error::refused(
            Refusal::PortInUse { port: slot.port },
            format!(
                "port {} of slot {} is in use; stop it first (the bundle's `bin/stop --slot {}`)",
                slot.port, slot.name, slot.name
            ),
        ));
    }
    if !release_jar.is_file() {
        return Err(failed(format!(
            "release {release} has no jar at {}",
            release_jar.display()
        )));
    }
    let java = java_path(cfg)?;
    let cds = crate::cds::plan(cfg, release, release_jar, &java);
    let mut argv = vec![java.to_string_lossy().into_owned()];
    argv.extend(cfg.app.java_opts.iter().cloned());
    argv.extend(cds.opts);
    argv.push(format!("-Dserver.port={}", slot.port));
    argv.push(format!("-Dspring.profiles.active={}", slot.profile));
    argv.push("-jar".into());
    argv.push(cds.jar.to_string_lossy().into_owned());
    argv.extend(cfg.app.args.iter().cloned());
    let start = supervisor::Start {
        slot,
        argv,
        env: cfg
            .app
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        cwd: cfg.releases_dir().join(release),
        jar: release_jar.to_path_buf(),
        release: release.to_string(),
        deployment_id: run.id().map(str::to_string),
    };
    log::debug!("launching {}", start.argv.join(" "));
    let sup = run.sup;
    let pf = sup.launch(cfg, &start)?;
    log::info!(
        "started slot {} (port {}, profile {}) as pid {} under the {} supervisor: release {release}, {}",
        slot.name,
        slot.port,
        slot.profile,
        pf.pid,
        sup.kind(),
        sup.log_hint(cfg, slot)
    );
    Ok(pf)
}

/// The java to run: `app.java`, else `$JAVA_HOME/bin/java`, else `java` on PATH.
pub fn java_path(cfg: &Config) -> Result<PathBuf> {
    if let Some(j) = &cfg.app.java {
        return which::which(j)
            .map_err(|_| java_missing(format!("app.java {j:?} not found or not executable")));
    }
    if let Some(home) = std::env::var_os("JAVA_HOME").filter(|h| !h.is_empty()) {
        let j = PathBuf::from(home).join("bin/java");
        if j.is_file() {
            return Ok(j);
        }
    }
    which::which("java")
        .map_err(|_| java_missing("java not found: set app.java or JAVA_HOME, or put java on PATH"))
}

/// No java where nonstop looks, as an error.
fn java_missing(msg: impl Into<String>) -> Error {
    Error::NotInstalled {
        program: "java".into(),
        msg: msg.into(),
    }
}

// ---------- health ----------

/// `health`: wait until the idle slot (or `slot`) is healthy and proven to be the slot's app.
pub fn health(run: &Run, slot: Target<'_>) -> Result<()> {
    health_forced(run, slot, false)
}

/// [`health`]; `force`: poll the port without proving who answers (an app nonstop did not
/// start).
pub fn health_forced(run: &Run, slot: Target<'_>, force: bool) -> Result<()> {
    let cfg = &run.cfg;
    let roles = run.roles(&state::load(&cfg.state_dir))?;
    if let Some(d) = &roles.doubt {
        log::warn!("cannot tell which slot nginx serves: {}", d.describe(cfg));
    }
    let target = slot.resolve(&roles, cfg)?;
    health::wait_healthy(run.sup, cfg, target, force)?;
    // Healthy and not yet live: the moment to dump its class-data archive (the JVM pauses
    // while it writes), never on the slot that serves.
    if !roles.is_live(target) {
        crate::cds::before_switch(run.sup, cfg, target, crate::stage_table::CDS_DUMP);
    }
    Ok(())
}

// ---------- switch ----------

/// What `switch` should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchMode {
    /// Make the slot live (and, balanced, put it into rotation).
    Full,
    /// Balanced only: put the slot into rotation with about this percent of requests.
    Canary(u8),
    /// Finish a canary: equal weights, the include points at the canary slot.
    Promote,
    /// Undo a canary: the canary slot leaves rotation, the others get equal weights.
    Abort,
}

/// `switch`: point nginx at the idle slot (or `slot`) after one health probe (unless `force`).
/// The old slot keeps running as the instant rollback target.
pub fn switch(run: &Run, slot: Target<'_>, force: bool, mode: SwitchMode) -> Result<()> {
    switch_probed(run, slot, force, mode, false)
}

/// The slot `slot` will most likely resolve to, from the state file alone: the one named, else
/// the one after the recorded live slot (the idle slot of [`slots::Roles`] when the truth
/// agrees with the record).
fn likely_target<'c>(cfg: &'c Config, st: &state::State, slot: Target<'c>) -> Option<&'c Slot> {
    match slot.named() {
        Some(name) => cfg.slot(name).ok(),
        None => {
            let live = st
                .live
                .as_deref()
                .and_then(|n| cfg.slots.iter().position(|s| s.name == n));
            Some(slots::after(cfg, live))
        }
    }
}

/// [`switch`]; `probed`: the caller holds the lock and has just proven the target slot's app
/// and probed its health (`nonstop rollback`'s plan), so the switch does not do it again.
pub fn switch_probed(
    run: &Run,
    slot: Target<'_>,
    force: bool,
    mode: SwitchMode,
    probed: bool,
) -> Result<()> {
    let cfg = &run.cfg;
    if mode != SwitchMode::Full && !cfg.balanced() {
        return Err(Error::Usage(
            "--canary, --promote and --abort need balanced mode (nginx.upstream_file, or traffic.balanced with nftables)".into(),
        ));
    }
    let _lock = run.lock("switch")?;
    let st = state::load(&cfg.state_dir);
    // The slot a full switch most likely goes to (the one named, else the one after the
    // recorded live slot) is proven and probed while the truth is read (an `nft` listing
    // takes as long): the truth decides, and another target is checked again.
    let likely = (mode == SwitchMode::Full && !probed && !force)
        .then(|| likely_target(cfg, &st, slot))
        .flatten();
    let (roles, early) = std::thread::scope(|s| {
        let early = likely.map(|t| s.spawn(move || (t, check_target(run.sup, cfg, t))));
        let roles = run.roles(&st);
        let early = early.map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
        (roles, early)
    });
    let roles = roles?;
    match (&roles.doubt, mode, slot.named()) {
        // Without nft there is nothing to repair with: say so before anything else.
        (Some(slots::Doubt::NftMissing), _, _) => {
            roles.certain(run.sup, cfg, "switch", force, false)?
        }
        // `switch --slot NAME` is the repair: it proves NAME, writes the files and reloads.
        (Some(d), SwitchMode::Full, Some(name)) => log::warn!(
            "cannot tell which slot nginx serves: {}; switching to slot {name} repairs it",
            d.describe(cfg)
        ),
        (Some(_), _, _) => roles.certain(run.sup, cfg, "switch", force, true)?,
        (None, _, _) => {}
    }
    let target = match (mode, slot.named(), &st.canary) {
        (SwitchMode::Promote | SwitchMode::Abort, None, Some(c)) => cfg.slot(&c.slot)?,
        (SwitchMode::Promote | SwitchMode::Abort, None, None) => {
            return Err(failed(
                "no canary in progress (give --slot NAME to name one)",
            ))
        }
        _ => slot.resolve(&roles, cfg)?,
    };
    let t0 = Instant::now();
    let r = match mode {
        SwitchMode::Full => switch_to_with(run, &roles, target, force, probed, early),
        SwitchMode::Canary(p) => canary(run, &roles, target, p, force),
        SwitchMode::Promote => switch_to(run, &roles, target, true),
        SwitchMode::Abort => abort_canary(run, &roles, target),
    };
    let action = match mode {
        SwitchMode::Full => Action::Switch,
        SwitchMode::Canary(p) => Action::Canary(p),
        SwitchMode::Promote => Action::Promote,
        SwitchMode::Abort => Action::Abort,
    };
    record(run, action, target, slot_release(cfg, target), t0, &r);
    r
}

/// The proof that `target`'s own app holds its port, then one probe of its health: the
/// listener's pid and the probe's latency, or why the switch must not go there.
pub(crate) type Checked = Result<(i32, Duration)>;

/// [`Checked`] for `target`, now.
fn check_target(sup: &dyn supervisor::Supervisor, cfg: &Config, target: &Slot) -> Checked {
    let listener = supervisor::answerer(sup, cfg, target)
        .proven(&target.name, target.port)
        .map_err(|why| {
            Error::refused(Refusal::Switch { slot: target.name.clone() }, format!(
                "refusing to switch to slot {}: {why}; nginx untouched (--force sends traffic there anyway)",
                target.name
            ))
        })?;
    let (p, verdict) = health::check_once(cfg, target);
    verdict.map_err(|why| {
        Error::refused(
            Refusal::Switch {
                slot: target.name.clone(),
            },
            format!(
                "refusing to switch to slot {}: health probe failed ({why}); nginx untouched",
                target.name
            ),
        )
    })?;
    Ok((listener, p.latency))
}

/// The check of `target` before a switch ([`check_target`], or `early`'s when it was made for
/// `target` under this run's lock), unless `force`; an unproven or unhealthy slot is refused.
fn probe_before_switch(
    run: &Run,
    target: &Slot,
    force: bool,
    early: Option<(&Slot, Checked)>,
) -> Result<()> {
    if force {
        log::warn!(
            "--force: using slot {} without a health probe or proof of who answers",
            target.name
        );
        return Ok(());
    }
    let checked = match early {
        Some((s, c)) if s.name == target.name => c,
        _ => check_target(run.sup, &run.cfg, target),
    };
    let (listener, latency) = checked?;
    log::info!(
        "slot {} answered health in {} (port {} held by its app, pid {listener})",
        target.name,
        human(latency),
        target.port
    );
    Ok(())
}

/// Balanced: `target` joins the rotation with about `percent` of requests; the include and
/// the other slots' membership stay as they are.
fn canary(run: &Run, roles: &slots::Roles, target: &Slot, percent: u8, force: bool) -> Result<()> {
    if !(1..=99).contains(&percent) {
        return Err(Error::Usage(format!(
            "--canary takes 1 to 99 (percent), not {percent}"
        )));
    }
    if roles.is_live(target) {
        return Err(failed(format!(
            "slot {} is live; a canary goes to another slot",
            target.name
        )));
    }
    probe_before_switch(run, target, force, None)?;
    let mut rot = rotation::read(run)?;
    let others: Vec<u16> = rot
        .iter()
        .filter(|(p, m)| *p != target.port && *m != Member::Down)
        .map(|(p, _)| *p)
        .collect();
    if others.is_empty() {
        return Err(failed(
            "no other slot is in rotation: a canary needs something to compare with",
        ));
    }
    // Each old slot gets 100-p, the canary p per old slot: its share is p/100.
    let k = others.len() as u32;
    for e in rot.iter_mut() {
        if others.contains(&e.0) {
            e.1 = Member::Up(100 - u32::from(percent));
        }
    }
    rotation::set(&mut rot, target, Member::Up(u32::from(percent) * k));
    rotation::apply(run, &rot, None)?;
    run.record_canary(Some(state::Canary {
        slot: target.name.clone(),
        percent,
    }))?;
    log::info!(
        "canary: slot {} (port {}) now gets about {percent}% of requests; `nonstop switch --promote` completes, `nonstop switch --abort` undoes",
        target.name,
        target.port
    );
    Ok(())
}

/// Balanced: take the canary slot back out; the other slots return to equal weights.
fn abort_canary(run: &Run, roles: &slots::Roles, target: &Slot) -> Result<()> {
    if roles.is_live(target) {
        return Err(failed(format!(
            "slot {} is live; nothing to abort",
            target.name
        )));
    }
    let mut rot = rotation::read(run)?;
    for e in rot.iter_mut() {
        e.1 = match e.1 {
            Member::Up(_) if e.0 != target.port => Member::Up(1),
            _ => Member::Down,
        };
    }
    rotation::apply(run, &rot, None)?;
    run.record_canary(None)?;
    log::info!(
        "canary aborted: slot {} is out of rotation (its app keeps running)",
        target.name
    );
    Ok(())
}

/// Make `target` live (see [`switch`]); the caller holds the lock.
pub fn switch_to(run: &Run, roles: &slots::Roles, target: &Slot, force: bool) -> Result<()> {
    switch_to_with(run, roles, target, force, false, None)
}

/// [`switch_to`]; `probed`: see [`switch_probed`]; `early`: see [`probe_before_switch`].
fn switch_to_with(
    run: &Run,
    roles: &slots::Roles,
    target: &Slot,
    force: bool,
    probed: bool,
    early: Option<(&Slot, Checked)>,
) -> Result<()> {
    let cfg = &run.cfg;
    let mut rot = rotation::read(run)?;
    let in_rotation = !cfg.balanced() || rotation::member(&rot, target) == Member::Up(1);
    if roles.is_live(target) && in_rotation && roles.doubt.is_none() {
        log::info!("slot {} is already live; nothing to switch", target.name);
        return Ok(());
    }
    if !probed {
        probe_before_switch(run, target, force, early)?;
    }
    // Balanced: the slot joins the rotation and every slot in it gets an equal weight again.
    for e in rot.iter_mut() {
        if e.1 != Member::Down || e.0 == target.port {
            e.1 = Member::Up(1);
        }
    }
    // In doubt, apply even if the truth already says the right thing: nginx may not have
    // loaded the files, or the table may be missing.
    let traffic = &*run.traffic;
    let took = traffic.apply(cfg, &rot, Some(target.port), roles.doubt.is_some())?;
    if crate::interrupt::requested() {
        log::warn!(
            "a termination signal arrived during the {}; it was completed first",
            match traffic.via() {
                crate::traffic::Via::NginxReload => "nginx transaction",
                crate::traffic::Via::Nftables => "nft transaction",
            }
        );
    }
    // Traffic has moved: from here on nothing fails the switch. A state file that cannot be
    // written is a warning (the include is the truth; the next run names the repair).
    let pf = process::read_pid_file(&pid_path(cfg, target));
    // The slot traffic came from: in doubt, the one the last completed switch recorded.
    let previous = match roles.doubt {
        Some(_) => roles.recorded.or(roles.live),
        None => roles.live,
    }
    .filter(|l| l.name != target.name);
    if let Err(e) = run.record_live(target, previous, pf.as_ref()) {
        log::warn!(
            "nginx serves slot {} now, but the state file could not record it: {e}",
            target.name
        );
    }
    // The live slot's app comes back after a reboot (systemd); a failure here is a warning:
    // traffic has moved.
    if let Err(e) = run.sup.at_boot(cfg, target) {
        log::warn!(
            "slot {} is live, but its start at boot could not be set: {e}",
            target.name
        );
    }
    // nftables mode never touches nginx: the table steers new connections.
    let moved = match traffic.via() {
        crate::traffic::Via::NginxReload => "switched nginx",
        crate::traffic::Via::Nftables => "steered new connections",
    };
    match previous {
        Some(old) if run.running_app(old).is_some() => log::info!(
            "{moved} from slot {} (port {}) to slot {} (port {}) in {}; {} keeps running as the rollback target",
            old.name, old.port, target.name, target.port, human(took), old.name
        ),
        Some(old) => log::info!(
            "{moved} from slot {} (port {}) to slot {} (port {}) in {}; {} runs no app, so there is no instant rollback target",
            old.name, old.port, target.name, target.port, human(took), old.name
        ),
        None => log::info!(
            "{moved} to slot {} (port {}) in {}",
            target.name,
            target.port,
            human(took)
        ),
    }
    Ok(())
}

// ---------- deploy-second ----------

/// `deploy-second`: after `switch`, roll every other slot (or just `slot`) to the release the
/// live slot runs, one at a time: out of rotation, drain, stop, start, health, back in. Stops
/// at the first failure with that slot out of rotation and the others serving.
pub fn deploy_second(run: &Run, slot: Option<&str>) -> Result<()> {
    let cfg = &run.cfg;
    let _lock = run.lock("deploy-second")?;
    let roles = run.roles(&state::load(&cfg.state_dir))?;
    roles.certain(run.sup, cfg, "deploy-second", false, false)?;
    let live = roles.live.ok_or_else(|| {
        failed(format!(
            "no slot is live ({} names none): run `nonstop switch --slot NAME` first",
            run.truth()
        ))
    })?;
    let pf = run.running_app(live).ok_or_else(|| {
        failed(format!(
            "the live slot {} runs no app started by nonstop: nothing to roll out",
            live.name
        ))
    })?;
    let targets: Vec<&Slot> = match slot {
        Some(name) => {
            let s = cfg.slot(name)?;
            if roles.is_live(s) {
                return Err(failed(format!(
                    "slot {name} is the live slot; deploy-second rolls the others"
                )));
            }
            vec![s]
        }
        None => cfg.slots.iter().filter(|s| !roles.is_live(s)).collect(),
    };
    if !cfg.balanced() {
        log::warn!("blue/green mode: rolling the other slots replaces the instant rollback target");
    }
    log::info!(
        "rolling {} slot(s) to release {} (live on slot {})",
        targets.len(),
        pf.release,
        live.name
    );
    // Balanced: a rolled slot goes back in with the next slot's take-out, in one reload.
    let mut pending: Option<&Slot> = None;
    for s in targets {
        let t0 = Instant::now();
        let r = roll_slot(run, s, &pf.release, &pf.jar, &mut pending);
        record(
            run,
            Action::DeploySecond,
            s,
            Some(pf.release.clone()),
            t0,
            &r,
        );
        r.map_err(|e| {
            let out = if cfg.balanced() {
                rotation::out_of_rotation(run).join(", ")
            } else {
                String::new()
            };
            failed(format!(
                "deploy-second stopped at slot {}: {e}; {} while the others serve",
                s.name,
                if out.is_empty() {
                    "nothing else was changed".to_string()
                } else {
                    format!("out of rotation: {out}")
                }
            ))
        })?;
    }
    if let Some(last) = pending {
        rotation::put_in(run, last)?;
    }
    Ok(())
}

/// Bring one non-live slot to `release`: skip if it already runs it healthy and in rotation.
/// Balanced: `pending` (the slot rolled before, waiting to go back in) joins the rotation in
/// the same transaction that takes `s` out, and `s` becomes the pending one when healthy.
fn roll_slot<'a>(
    run: &Run,
    s: &'a Slot,
    release: &str,
    jar: &Path,
    pending: &mut Option<&'a Slot>,
) -> Result<()> {
    let cfg = &run.cfg;
    let current = run.running_app(s);
    let in_rotation = !cfg.balanced() || rotation::member(&rotation::read(run)?, s) != Member::Down;
    if current.as_ref().is_some_and(|p| p.release == release)
        && in_rotation
        && health::check_once(cfg, s).1.is_ok()
    {
        log::info!(
            "slot {} already runs release {release} healthy; skipping",
            s.name
        );
        return Ok(());
    }
    let t0 = Instant::now();
    if cfg.balanced() {
        rotation::swap(run, pending.take(), s)?;
    }
    stop_slot(run, s, false)?;
    launch_release(run, s, release, jar)?;
    health::wait_healthy(run.sup, cfg, s, false)?;
    if cfg.balanced() {
        *pending = Some(s);
    }
    log::info!(
        "slot {} rolled to release {release} in {}",
        s.name,
        human(t0.elapsed())
    );
    Ok(())
}

//! After a switch: watch the new release in nginx's access log for a while, judge it against
//! the old release's figures from just before the switch, and switch back on a breach.
//!
//! - [`sample`]: the log format the site defines (`log_format nonstop_<app>`) and its parser;
//! - [`tail`]: reading the log as it grows, across a rotation or a truncation;
//! - [`figures`]: a window's request count, 5xx share, p50 and p99;
//! - [`verdict`]: the judgement, a typed [`verdict::Verdict`] recorded in the history.
//!
//! Which requests are the new release's: in nginx-reload mode `$upstream_addr` names the
//! slot's port, so a request is the new release's when nginx sent it to the new slot's port
//! (requests the old workers still finish on the old port after the reload are left out); the
//! baseline is the requests sent to the old slot's port. In nftables mode nginx sees only the
//! front port: a request logged after the switch is the new release's, one logged in the
//! baseline window before it (and after the switch that made the old slot live) the old
//! release's.
//!
//! A bad verdict switches back through [`stages::switch`] when
//! [`crate::operator::rollback::plan`] says the old slot still runs its release healthy (a
//! switch only); otherwise the release stays and the last line says to run `nonstop rollback`.

pub mod canary;
pub mod figures;
pub mod per_slot;
pub mod probe;
pub mod sample;
pub mod tail;
pub mod verdict;

use crate::config::{Config, Slot};
use crate::error::{failed, Error, Result};
use crate::log::human;
use crate::releases;
use crate::run::{Run, Target};
use crate::stages::{self, SwitchMode};
use crate::state::{self, Action, Outcome};
use figures::Figures;
use sample::Sample;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tail::{LogEvent, Tail};
use verdict::{judge, Thresholds, Verdict};

/// How much of the log's end is read for the baseline (a busy site logs far less in a minute).
const BASELINE_BYTES: u64 = 32 << 20;

/// What happened during a watch, in order (the progress lines are made from these).
#[derive(Debug, Clone, PartialEq)]
pub enum WatchEvent {
    /// The old release's figures from just before the switch.
    Baseline(Figures),
    /// One judgement, every `watch.interval`.
    Judged { verdict: Verdict, left: Duration },
    /// The log was rotated or truncated and is read on.
    LogReopened(LogEvent),
    /// Lines that are not in the nonstop format (another `log_format` on that file).
    Unparsed { lines: u64 },
    /// The old slot is live again.
    SwitchedBack { took: Duration, live_for: Duration },
}

/// The watch set up before the switch: the log's end and the old release's figures.
#[derive(Debug)]
pub struct Armed {
    tail: Tail,
    before: Figures,
    old: Slot,
    /// The release the old slot serves (the one switched back to).
    old_release: Option<String>,
    pub events: Vec<WatchEvent>,
}

/// The watch duration a command runs with: `--watch` first, else `watch.duration` when
/// `watch.enabled`. Balanced mode rolls every slot to the new release, leaving none to switch
/// back to: `--watch` is then a usage error and `watch.enabled` is passed over with a warning.
pub fn duration(cfg: &Config, flag: Option<Duration>) -> Result<Option<Duration>> {
    match (flag, cfg.balanced()) {
        (Some(_), true) => Err(Error::Usage(
            "--watch needs blue/green mode: balanced mode rolls every slot to the new release, leaving none to switch back to; watch a balanced release as a canary: `nonstop switch --canary 10,50,100 --watch 60s`".into(),
        )),
        (Some(d), false) => Ok(Some(d)),
        (None, true) if cfg.watch.enabled => {
            log::warn!("watch.enabled is passed over in balanced mode: no slot is left to switch back to");
            Ok(None)
        }
        (None, _) => Ok(cfg.watch.enabled.then_some(cfg.watch.duration)),
    }
}

/// Before the switch: the log's current end, and the figures of the requests `old` answered in
/// the last `watch.baseline`. `None` (with a warning) when `old` runs no app: there is then
/// nothing to compare with or to switch back to.
pub fn arm(run: &Run, old: Option<&Slot>) -> Option<Armed> {
    let cfg = &run.cfg;
    let Some(old) = old.filter(|o| run.running_app(o).is_some()) else {
        log::warn!(
            "watch: no slot runs the old release, so there is nothing to compare with or switch back to: not watching"
        );
        return None;
    };
    let tail = Tail::at_end(&cfg.watch.log);
    let st = state::load(&cfg.state_dir);
    let mut since =
        epoch_ms(SystemTime::now()).saturating_sub(cfg.watch.baseline.as_millis() as u64);
    // nftables mode tells the releases apart by time only: the baseline starts no earlier than
    // the switch that made the old slot live (before it, another slot answered, e.g. a bad
    // release just switched back from).
    if cfg.traffic.via == crate::traffic::Via::Nftables {
        if let Some(t) = st.time.as_deref().and_then(crate::operator::parse_utc) {
            since = since.max(epoch_ms(t));
        }
    }
    let lines = tail::lines_before(&cfg.watch.log, tail.offset(), BASELINE_BYTES);
    let samples: Vec<Sample> = lines
        .iter()
        .filter_map(|l| sample::parse(l).ok())
        .filter(|s| s.at_ms >= since && old_release_served(cfg, s, old))
        .collect();
    let before = Figures::of(&samples);
    if !lines.is_empty() && lines.iter().all(|l| sample::parse(l).is_err()) {
        log::warn!(
            "watch: no line of {} is in the nonstop_{} format: is the site's access_log using it?",
            cfg.watch.log.display(),
            cfg.app.name
        );
    }
    log::info!(
        "watch: before the switch, slot {} answered {} (last {}, {})",
        old.name,
        before.describe(),
        human(cfg.watch.baseline),
        cfg.watch.log.display()
    );
    Some(Armed {
        tail,
        before,
        old: old.clone(),
        old_release: st.served_release(&old.name),
        events: vec![WatchEvent::Baseline(before)],
    })
}

/// Whether a sample from before the switch is the old release's (see the module doc).
fn old_release_served(cfg: &Config, s: &Sample, old: &Slot) -> bool {
    match cfg.traffic.via {
        crate::traffic::Via::NginxReload => s.upstream_port == Some(old.port),
        crate::traffic::Via::Nftables => true,
    }
}

/// Whether a sample logged after the switch (at `switched_ms`) is the new release's.
fn new_release_served(cfg: &Config, s: &Sample, new: &Slot, switched_ms: u64) -> bool {
    match cfg.traffic.via {
        crate::traffic::Via::NginxReload => s.upstream_port == Some(new.port),
        crate::traffic::Via::Nftables => s.at_ms >= switched_ms,
    }
}

/// After the switch to `new`: watch for `dur`, judging every `watch.interval` on every request
/// since the switch, and switch back to the old slot on a bad verdict (a p99 breach once two
/// judgements in a row, or the last one, find it). Records the verdict in the history. `Ok` for a good or
/// an inconclusive window (the release is kept); a failure whose message gives the figures for
/// a bad one.
pub fn watch(run: &Run, armed: &mut Armed, new: &Slot, dur: Duration) -> Result<Verdict> {
    let cfg = &run.cfg;
    let t0 = Instant::now();
    let switched_ms = epoch_ms(SystemTime::now());
    let th = Thresholds::of(&cfg.watch);
    let mut seen: Vec<Sample> = vec![];
    let mut unparsed = 0u64;
    let mut slow_before = false;
    // One line redrawn in place on a terminal, a log line every 5 s otherwise.
    let mut progress = crate::progress::Progress::window(format!("watch slot {}", new.name), dur);
    crate::outln!(
        "watch: slot {} for {} (judged every {}; slot {} is the way back)",
        new.name,
        human(dur),
        human(cfg.watch.interval),
        armed.old.name
    );
    let verdict = loop {
        let left = dur.saturating_sub(t0.elapsed());
        crate::interrupt::sleep(
            cfg.watch.interval.min(left),
            &format!(
                "the watch; slot {} stays live, `nonstop rollback` switches back to slot {}",
                new.name, armed.old.name
            ),
        )?;
        for ev in armed.tail.read() {
            match ev {
                LogEvent::Line(l) => match sample::parse(&l) {
                    Ok(s) if new_release_served(cfg, &s, new, switched_ms) => seen.push(s),
                    Ok(_) => {}
                    Err(_) => unparsed += 1,
                },
                other => {
                    log::info!(
                        "watch: {} was {}: reading on from its start",
                        cfg.watch.log.display(),
                        if other == LogEvent::Rotated {
                            "rotated (a new file)"
                        } else {
                            "truncated"
                        }
                    );
                    armed.events.push(WatchEvent::LogReopened(other));
                }
            }
        }
        let now = Figures::of(&seen);
        let v = verdict::with_probe(
            judge(now, armed.before, &th),
            probe::first_failure(cfg, new),
        );
        let left = dur.saturating_sub(t0.elapsed());
        log::debug!(
            "watch: slot {}: {}; {} left",
            new.name,
            now.describe(),
            human(left)
        );
        progress.update(&now.describe());
        armed.events.push(WatchEvent::Judged {
            verdict: v.clone(),
            left,
        });
        // A 5xx breach counts at once; a p99 breach when the next judgement confirms it (or
        // at the end): a fresh JVM's first slow calls fade as requests accumulate.
        let confirmed = !v.is_slow() || slow_before || left.is_zero();
        slow_before = v.is_slow();
        if (v.is_bad() && confirmed) || left.is_zero() {
            break v;
        }
    };
    progress.finish();
    if unparsed > 0 {
        armed.events.push(WatchEvent::Unparsed { lines: unparsed });
        log::warn!(
            "watch: {unparsed} lines of {} are not in the nonstop_{} format and were left out",
            cfg.watch.log.display(),
            cfg.app.name
        );
    }
    let release = crate::process::read_pid_file(&stages::pid_path(cfg, new)).map(|p| p.release);
    if !verdict.is_bad() {
        record(run, new, release, t0, &verdict, Outcome::Ok);
        crate::outln!(
            "watch: {}: {}; release kept on slot {}",
            verdict.kind(),
            verdict.describe(),
            new.name
        );
        return Ok(verdict);
    }
    let live_for = t0.elapsed();
    let back = switch_back(run, &armed.old);
    let why = match &back {
        Ok(took) => {
            armed.events.push(WatchEvent::SwitchedBack {
                took: *took,
                live_for: live_for + *took,
            });
            format!(
                "watch: {}; switched back to slot {} ({}) in {}, {} after the switch",
                verdict.describe(),
                armed.old.name,
                armed
                    .old_release
                    .as_deref()
                    .map_or("release unknown".into(), |r| releases::version_words(
                        cfg, r
                    )),
                human(*took),
                human(live_for + *took)
            )
        }
        Err(e) => format!(
            "watch: {}; NOT switched back to slot {}: {e}",
            verdict.describe(),
            armed.old.name
        ),
    };
    record(
        run,
        new,
        release,
        t0,
        &verdict,
        Outcome::Failed(why.clone()),
    );
    Err(failed(why))
}

/// Back to `old` as `nonstop rollback` would, when that is a switch only.
fn switch_back(run: &Run, old: &Slot) -> Result<Duration> {
    let st = state::load(&run.cfg.state_dir);
    let roles = run.roles(&st)?;
    let plan = crate::operator::rollback::plan(run, &st, &roles, Some(&old.name))?;
    if let Some(why) = plan.restart {
        return Err(failed(format!(
            "slot {} {why}; `nonstop rollback` starts release {} there again",
            old.name, plan.release
        )));
    }
    let t = Instant::now();
    stages::switch(run, Target::Slot(old), false, SwitchMode::Full)?;
    Ok(t.elapsed())
}

/// The verdict as a `watch` event in the history.
pub(super) fn record(
    run: &Run,
    slot: &Slot,
    release: Option<String>,
    t0: Instant,
    v: &Verdict,
    outcome: Outcome,
) {
    let cfg = &run.cfg;
    let version = release
        .as_deref()
        .and_then(|r| releases::release_version(cfg, r));
    let ev = state::Event {
        time: crate::log::utc_millis(SystemTime::now()),
        deployment_id: run.id().map(str::to_string),
        action: Action::Watch,
        slot: slot.name.clone(),
        release,
        outcome,
        duration_ms: t0.elapsed().as_millis() as u64,
        version,
        by: Some(state::by()),
        verdict: Some(v.clone()),
        note: None,
    };
    if let Err(e) = run.record_event(ev) {
        log::warn!("could not record the watch's verdict in the state file: {e}");
    }
}

/// `nonstop switch --watch DURATION`: under one lock, the baseline, the switch, the watch.
pub fn switch(run: &Run, slot: Option<&str>, force: bool, dur: Duration) -> Result<()> {
    let cfg = &run.cfg;
    let _lock = run.lock("nonstop switch")?;
    let st = state::load(&cfg.state_dir);
    let roles = run.roles(&st)?;
    let target = roles.target(cfg, slot)?;
    let mut armed = arm(run, roles.live.filter(|l| l.name != target.name));
    stages::switch(run, Target::Slot(target), force, SwitchMode::Full)?;
    match armed.as_mut() {
        Some(a) => watch(run, a, target, dur).map(drop),
        None => Ok(()),
    }
}

fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

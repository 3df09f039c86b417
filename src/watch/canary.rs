//! A stepped canary with analysis: `nonstop switch --canary 10,50,100 --watch 60s` (balanced
//! mode). The new slot joins the rotation with the first step's share of requests; for each
//! step nonstop watches for the watch duration and judges the canary's figures against the
//! old slots' over the same window ([`super::per_slot`] says how each traffic mode tells the
//! slots apart), with the limits of a blue/green watch. A good step raises the weight to the
//! next; `100` promotes (the canary slot becomes live, every slot in rotation with one weight).
//! A breach aborts at once (the canary slot leaves the rotation, the old slots serve as
//! before), records the verdict and fails with its figures. Too few requests in a step leaves
//! the canary where it is (inconclusive: `--promote` or `--abort` by hand).

use super::per_slot::Source;
use super::verdict::{judge, Thresholds, Verdict};
use crate::config::Slot;
use crate::error::{failed, Error, Result};
use crate::log::human;
use crate::nginx::Member;
use crate::run::{Run, Target};
use crate::stages::{self, SwitchMode};
use crate::state::Outcome;
use crate::{rotation, state};
use std::time::{Duration, Instant};

/// `--canary` steps: percents, rising, each 1 to 100 (100 only last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steps(pub Vec<u8>);

/// Parse `10` or `10,50,100`.
pub fn parse_steps(s: &str) -> std::result::Result<Steps, String> {
    let mut v: Vec<u8> = vec![];
    for part in s.split(',') {
        let p: u8 = part
            .trim()
            .parse()
            .ok()
            .filter(|p| (1..=100).contains(p))
            .ok_or_else(|| format!("{part:?} is not a percent from 1 to 100 (e.g. 10,50,100)"))?;
        if v.last().is_some_and(|&last| p <= last) {
            return Err(format!("steps must rise: {s:?}"));
        }
        v.push(p);
    }
    if v == [100] {
        return Err("--canary 100 is --promote".into());
    }
    Ok(Steps(v))
}

/// `nonstop switch --canary STEPS`: one step without a watch is the hook's `--canary P`;
/// with a watch (`--watch`, or `watch.duration` when `watch.enabled`) every step is judged.
pub fn switch(
    run: &Run,
    slot: Option<&str>,
    force: bool,
    steps: &Steps,
    watch: Option<Duration>,
) -> Result<()> {
    let cfg = &run.cfg;
    if !cfg.balanced() {
        return Err(Error::Usage(
            "--canary needs balanced mode (nginx.upstream_file, or traffic.balanced with nftables)"
                .into(),
        ));
    }
    let watch = watch.or(cfg.watch.enabled.then_some(cfg.watch.duration));
    match (steps.0.as_slice(), watch) {
        ([p], None) => stages::switch(run, slot.into(), force, SwitchMode::Canary(*p)),
        (_, None) => Err(Error::Usage(
            "canary steps need --watch DURATION: each step is judged before the next".into(),
        )),
        (_, Some(d)) => stepped(run, slot, force, &steps.0, d),
    }
}

/// The stepped canary (see the module doc) under one lock.
fn stepped(run: &Run, slot: Option<&str>, force: bool, steps: &[u8], dur: Duration) -> Result<()> {
    let cfg = &run.cfg;
    let _lock = run.lock("nonstop switch")?;
    let st = state::load(&cfg.state_dir);
    let roles = run.roles(&st)?;
    let target = roles.target(cfg, slot)?.clone();
    let rot = rotation::read(run)?;
    let old: Vec<&Slot> = cfg
        .slots
        .iter()
        .filter(|s| s.name != target.name && matches!(rotation::member(&rot, s), Member::Up(_)))
        .collect();
    if old.is_empty() {
        return Err(failed(
            "no other slot is in rotation: a canary needs something to compare with",
        ));
    }
    let old_names = old
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let against = format!(
        "on slot{} {old_names}",
        if old.len() > 1 { "s" } else { "" }
    );
    let mut source = Source::open(cfg, &target, &old)?;
    let th = Thresholds::of(&cfg.watch);
    let release = crate::process::read_pid_file(&stages::pid_path(cfg, &target)).map(|p| p.release);
    for (i, &p) in steps.iter().enumerate() {
        if p == 100 {
            stages::switch(run, Target::Slot(&target), false, SwitchMode::Promote)?;
            crate::outln!(
                "canary 100 %: slot {} promoted: live, every slot in rotation with one weight",
                target.name
            );
            return Ok(());
        }
        stages::switch(
            run,
            Target::Slot(&target),
            force && i == 0,
            SwitchMode::Canary(p),
        )?;
        source.begin();
        crate::outln!(
            "canary {p} %: slot {} for {} (judged every {} against slot{} {old_names} over the same window)",
            target.name,
            human(dur),
            human(cfg.watch.interval),
            if old.len() > 1 { "s" } else { "" }
        );
        let t0 = Instant::now();
        let mut progress =
            crate::progress::Progress::window(format!("canary {p} % on slot {}", target.name), dur);
        let mut slow_before = false;
        let verdict = loop {
            let left = dur.saturating_sub(t0.elapsed());
            crate::interrupt::sleep(
                cfg.watch.interval.min(left),
                &format!("the canary's {p} % step; the canary stays at {p} %: `nonstop switch --promote` completes, `nonstop switch --abort` undoes"),
            )?;
            let (now, before) = source.read();
            let v = super::verdict::with_probe(
                judge(now, before, &th),
                super::probe::first_failure(cfg, &target),
            );
            let left = dur.saturating_sub(t0.elapsed());
            progress.update(&format!(
                "{}; old 5xx {}",
                now.describe(),
                super::figures::percent(before.error_share())
            ));
            // As after a switch: a 5xx breach counts at once, a latency breach when the next
            // judgement (or the last) confirms it.
            let confirmed = !v.is_slow() || slow_before || left.is_zero();
            slow_before = v.is_slow();
            if (v.is_bad() && confirmed) || left.is_zero() {
                break v;
            }
        };
        progress.finish();
        if source.unparsed() > 0 {
            log::warn!(
                "watch: {} lines of {} are not in the nonstop_{} format and were left out",
                source.unparsed(),
                cfg.watch.log.display(),
                cfg.app.name
            );
        }
        match &verdict {
            Verdict::Bad { .. } => {
                let live_for = t0.elapsed();
                let t = Instant::now();
                let back = stages::switch(run, Target::Slot(&target), false, SwitchMode::Abort);
                let why = match back {
                    Ok(()) => format!(
                        "watch: canary at {p} %: {}; aborted: slot {} out of rotation in {}, {} into the step",
                        verdict.describe_against(&against),
                        target.name,
                        human(t.elapsed()),
                        human(live_for + t.elapsed())
                    ),
                    Err(e) => format!(
                        "watch: canary at {p} %: {}; NOT aborted: {e}",
                        verdict.describe_against(&against)
                    ),
                };
                super::record(
                    run,
                    &target,
                    release,
                    t0,
                    &verdict,
                    Outcome::Failed(why.clone()),
                );
                return Err(failed(why));
            }
            Verdict::Inconclusive { .. } => {
                super::record(run, &target, release, t0, &verdict, Outcome::Ok);
                crate::outln!(
                    "canary {p} %: inconclusive: {}; the canary stays at {p} %: `nonstop switch --promote` completes, `nonstop switch --abort` undoes",
                    verdict.describe_against(&against)
                );
                return Ok(());
            }
            Verdict::Ok { .. } => {
                super::record(run, &target, release.clone(), t0, &verdict, Outcome::Ok);
                crate::outln!("canary {p} %: ok: {}", verdict.describe_against(&against));
            }
        }
    }
    crate::outln!(
        "canary: slot {} stays at {} %: `nonstop switch --promote` completes, `nonstop switch --abort` undoes",
        target.name,
        steps.last().copied().unwrap_or(0)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_rise_from_1_to_100() {
        assert_eq!(parse_steps("10"), Ok(Steps(vec![10])));
        assert_eq!(parse_steps("10,50,100"), Ok(Steps(vec![10, 50, 100])));
        assert_eq!(parse_steps("5, 25"), Ok(Steps(vec![5, 25])));
        assert!(parse_steps("50,10").unwrap_err().contains("must rise"));
        assert!(parse_steps("10,10").is_err());
        assert!(parse_steps("0").is_err());
        assert!(parse_steps("101").is_err());
        assert!(parse_steps("10,,50").is_err());
        assert!(parse_steps("100").unwrap_err().contains("--promote"));
    }
}

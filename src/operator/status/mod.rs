//! `nonstop status [--json]`: what runs where, right now. Per slot: port, profile, state (live
//! / standby / stopped), rotation (balanced mode: in / out, with its weight; `-` without an
//! upstream file), pid, uptime, release (jar and its sha256), one health probe with its
//! latency; then the last deployments from the state history.
//!
//! It reads the include (the truth for "live"), the upstream file, the pid files (each checked
//! against /proc), the exit records the supervisor writes when an app ends (`run/<slot>.exit`,
//! shown for a slot where nothing runs), and the state file. It changes nothing and takes no lock, so it works while a
//! deployment runs.

use super::{parse_utc, table, uptime};
use crate::config::Slot;
use crate::error::{Context, Result};
use crate::log::human;
use crate::nginx::Member;
use crate::process::{ExitRecord, Owner};
use crate::run::Run;
use crate::state::{Action, Event, State};
use crate::{health, rotation, state};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Everything `status` shows (this is also the `--json` document).
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub app: String,
    pub config: PathBuf,
    pub include: Include,
    /// How traffic is steered: `nginx-reload` (the include is the truth) or `nftables` (the
    /// table is), and where that truth is.
    pub traffic: TrafficNow,
    /// The slot the include names, if any.
    pub live: Option<String>,
    /// The rollback target recorded by the last switch.
    pub previous: Option<String>,
    /// What `nonstop rollback` would do now (the very decision it makes).
    pub rollback: RollbackNow,
    /// True when an upstream file balances requests over the slots.
    pub balanced: bool,
    pub slots: Vec<SlotStatus>,
    /// The last watch's verdict (`deploy --watch`, `switch --watch`, a canary step); `None`
    /// when none is recorded.
    pub watch: Option<LastWatch>,
    /// Newest first.
    pub deployments: Vec<Deployment>,
    /// The release store: each release's disk use, class-data archive and measured boots.
    pub releases: Vec<crate::cds::ReleaseDisk>,
}

/// The newest `watch` event of the history.
#[derive(Debug, Clone, Serialize)]
pub struct LastWatch {
    pub time: String,
    /// The slot watched (the new release's).
    pub slot: String,
    pub version: Option<String>,
    /// `ok`, `inconclusive` or `bad`.
    pub verdict: &'static str,
    /// The figures in words, and for a bad one what was done (`…; switched back to slot green
    /// (version 1.4.1) in 14 ms, …`).
    pub detail: String,
    /// The verdict as recorded: its figures before and after and the limit broken.
    pub figures: crate::watch::verdict::Verdict,
}

/// The newest recorded watch verdict.
fn last_watch(history: &[Event]) -> Option<LastWatch> {
    let e = history
        .iter()
        .rev()
        .find(|e| e.action == Action::Watch && e.verdict.is_some())?;
    let v = e.verdict.clone()?;
    let detail = match &e.outcome {
        crate::state::Outcome::Failed(why) => why
            .strip_prefix("watch: ")
            .unwrap_or(why.as_str())
            .to_string(),
        _ => v.describe(),
    };
    Some(LastWatch {
        time: e.time.clone(),
        slot: e.slot.clone(),
        version: e.version.clone(),
        verdict: v.kind(),
        detail,
        figures: v,
    })
}

/// What `nonstop rollback` would do now, from [`super::rollback::plan`].
#[derive(Debug, Clone, Serialize)]
pub struct RollbackNow {
    /// `switch` (the slot runs its release healthy), `restart` (its release is started on it
    /// again, then a switch), or `none` (rollback refuses: `why`).
    pub action: &'static str,
    pub slot: Option<String>,
    pub release: Option<String>,
    /// Why a restart is needed, or why there is no rollback.
    pub why: Option<String>,
}

/// The traffic seam in use.
#[derive(Debug, Clone, Serialize)]
pub struct TrafficNow {
    pub via: crate::traffic::Via,
    /// The include file, or `nftables table ip nonstop_<app>`.
    pub truth: String,
    /// nftables mode: the front port nginx proxies to.
    pub front_port: Option<u16>,
    /// nftables mode: the last time the steering unit loaded the table again after someone
    /// removed it (a ruleset flush), from the history.
    pub restored: Option<Restored>,
}

/// A `restore` event of the history: the table loaded again by the steering unit.
#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub time: String,
    /// The live slot the table steers to again.
    pub slot: String,
    /// `ok`, or why it could not be loaded again.
    pub outcome: String,
    pub duration_ms: u64,
    /// What removed the table, and when.
    pub note: Option<String>,
}

/// The newest `restore` event of `history`.
fn restored(history: &[Event]) -> Option<Restored> {
    history
        .iter()
        .rev()
        .find(|e| e.action == Action::Restore)
        .map(|e| Restored {
            time: e.time.clone(),
            slot: e.slot.clone(),
            outcome: e.outcome.as_string(),
            duration_ms: e.duration_ms,
            note: e.note.clone(),
        })
}

/// The include file and the port it names.
#[derive(Debug, Clone, Serialize)]
pub struct Include {
    pub path: PathBuf,
    /// `None` when the file does not exist or names no port.
    pub port: Option<u16>,
    /// Why nonstop cannot be sure nginx serves what the include names (every changing
    /// command refuses until `nonstop switch --slot NAME` repairs it); `None` when it can.
    pub doubt: Option<String>,
    /// The repair of the doubt, as a command that works as printed.
    pub repair: Option<String>,
}

/// One slot.
#[derive(Debug, Clone, Serialize)]
pub struct SlotStatus {
    pub name: String,
    pub port: u16,
    pub profile: String,
    /// `live` (the include names it), `standby` (running and healthy, not live), `unhealthy`
    /// (running, not live, failing its health probe: booting, hung or crash-looping) or
    /// `stopped`.
    pub state: SlotState,
    /// Balanced mode: `in` or `out` of the upstream's rotation (`in` with `weight`); `None`
    /// without an upstream file.
    pub rotation: Option<String>,
    pub weight: Option<u32>,
    /// True for the rollback target.
    pub previous: bool,
    /// Who holds the port: `nonstop` (its pid file, verified in /proc), `java` (a java with the
    /// port on its command line), `foreign`, or `None` when nothing listens.
    pub owner: Option<String>,
    pub pid: Option<i32>,
    pub started_at: Option<String>,
    pub uptime_s: Option<u64>,
    pub release: Option<String>,
    /// The app's version in that release (the jar's `Implementation-Version`, else its file
    /// name).
    pub version: Option<String>,
    pub jar: Option<PathBuf>,
    pub sha256: Option<String>,
    /// One probe now; `None` when nothing listens on the port.
    pub health: Option<HealthNow>,
    /// How the slot's last app ended (`{pid, code, signal, at}`, from `run/<slot>.exit`), when
    /// nothing listens on its port now; `None` otherwise or when nothing was recorded.
    pub exit: Option<ExitRecord>,
    /// Who keeps its app running: `builtin` or `systemd`.
    pub supervisor: crate::supervisor::Kind,
    /// systemd: `unit`, `active` (its ActiveState), `enabled` (starts at boot), `restarts`
    /// (NRestarts); all `null` under builtin.
    #[serde(flatten)]
    pub supervision: crate::supervisor::Supervision,
}

/// A slot's state; in JSON the lower-case names `live`, `standby`, `unhealthy`, `stopped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SlotState {
    /// The include names it.
    Live,
    /// Its app runs and answers its health probe, and it is not live: ready to switch to.
    Standby,
    /// Its app runs (or its port is held) but fails its health probe, and it is not live.
    Unhealthy,
    /// Nothing holds its port, and it is not live.
    Stopped,
}

impl std::fmt::Display for SlotState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SlotState::Live => "live",
            SlotState::Standby => "standby",
            SlotState::Unhealthy => "unhealthy",
            SlotState::Stopped => "stopped",
        })
    }
}

/// One probe's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct HealthNow {
    pub ok: bool,
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// The verdict in words (`HTTP 200` or why it is not healthy).
    pub detail: String,
}

/// One deployment, pieced together from the history's events.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Deployment {
    pub id: Option<String>,
    /// When its first step started (UTC).
    pub time: String,
    pub duration_ms: u64,
    /// The slot it deployed to (the switch's, else the last step's).
    pub slot: String,
    pub release: Option<String>,
    /// The app's version in `release`, as recorded when it ran.
    pub version: Option<String>,
    /// Who ran it, from where: `codedeploy (group G)`, `ssh USER from ADDRESS`, or a user.
    pub by: Option<String>,
    /// `ok`, `failed at STAGE: why`, `incomplete (last step: STAGE)`, or `by hand: STEPS`
    /// for steps run without a deployment id.
    pub outcome: String,
    /// The recorded steps in order (`stop`, `start`, `switch`, `deploy`, `rollback`, ...).
    pub steps: Vec<String>,
}

/// Print the status of every slot (or only `slot`) as text or JSON.
pub fn run(run: &Run, slot: Option<&str>, json: bool) -> Result<()> {
    if let Some(name) = slot {
        run.slot(name)?;
    }
    let mut s = collect(run)?;
    if let Some(name) = slot {
        s.slots.retain(|x| x.name == name);
    }
    if json {
        let text = serde_json::to_string_pretty(&s).context("cannot encode the status")?;
        crate::cli::out(text);
    } else {
        crate::cli::out_raw(render(&s).as_bytes());
    }
    Ok(())
}

/// Gather the status (reads only).
pub fn collect(run: &Run) -> Result<Status> {
    let cfg = &run.cfg;
    let st = state::load(&cfg.state_dir);
    let roles = run.roles(&st)?;
    let rot = if cfg.balanced() {
        Some(rotation::read(run)?)
    } else {
        None
    };
    let slots: Vec<SlotStatus> = cfg
        .slots
        .iter()
        .map(|s| slot_status(run, s, roles.is_live(s), &st, rot.as_ref()))
        .collect();
    let running: Vec<&str> = slots
        .iter()
        .filter(|x| x.owner.is_some())
        .map(|x| x.name.as_str())
        .collect();
    let repair = roles.doubt.as_ref().map(|d| roles.repair(cfg, d, &running));
    let rollback = match super::rollback::plan(run, &st, &roles, None) {
        Ok(p) => RollbackNow {
            action: if p.restart.is_some() {
                "restart"
            } else {
                "switch"
            },
            slot: Some(p.to.name.clone()),
            release: Some(p.release),
            why: p.restart.map(|w| format!("slot {} {w}", p.to.name)),
        },
        Err(e) => RollbackNow {
            action: "none",
            slot: None,
            release: None,
            why: Some(e.to_string()),
        },
    };
    Ok(Status {
        app: cfg.app.name.clone(),
        config: cfg.path.clone(),
        include: Include {
            path: cfg.nginx.include.clone(),
            port: roles.include_port,
            doubt: roles.doubt.as_ref().map(|d| d.describe(cfg)),
            repair,
        },
        traffic: TrafficNow {
            via: cfg.traffic.via,
            truth: run.truth(),
            front_port: cfg.traffic.port,
            restored: restored(&st.history),
        },
        live: roles.live.map(|l| l.name.clone()),
        previous: st.previous.clone(),
        rollback,
        balanced: cfg.balanced(),
        slots,
        watch: last_watch(&st.history),
        deployments: deployments(&st.history),
        releases: crate::cds::releases(cfg),
    })
}

fn slot_status(
    run: &Run,
    s: &Slot,
    live: bool,
    st: &State,
    rot: Option<&crate::nginx::Rotation>,
) -> SlotStatus {
    let (cfg, sup) = (&run.cfg, run.sup);
    let owner = run.owner(s);
    let pf = match &owner {
        Some(Owner::Ours(pf)) => Some(pf.clone()),
        _ => None,
    };
    let (rotation, weight) = match rot.map(|r| rotation::member(r, s)) {
        Some(Member::Up(w)) => (Some("in".to_string()), Some(w)),
        Some(Member::Down) => (Some("out".to_string()), None),
        None => (None, None),
    };
    let health = owner.as_ref().map(|_| {
        let (p, verdict) = health::check_once(cfg, s);
        HealthNow {
            ok: verdict.is_ok(),
            status: p.status,
            latency_ms: p.latency.as_millis() as u64,
            detail: match verdict {
                Ok(()) => format!("HTTP {}", p.status.unwrap_or(0)),
                Err(why) => why,
            },
        }
    });
    let started = pf.as_ref().and_then(|p| parse_utc(&p.started_at));
    SlotStatus {
        name: s.name.clone(),
        port: s.port,
        profile: s.profile.clone(),
        state: if live {
            SlotState::Live
        } else if health.as_ref().is_some_and(|h| h.ok) {
            SlotState::Standby
        } else if owner.is_some() {
            SlotState::Unhealthy
        } else {
            SlotState::Stopped
        },
        rotation,
        weight,
        previous: st.previous.as_deref() == Some(s.name.as_str()) && !live,
        owner: owner.as_ref().map(|o| {
            match o {
                Owner::Ours(_) => "nonstop",
                Owner::JavaWithPort { .. } => "java",
                Owner::Foreign { .. } => "foreign",
            }
            .into()
        }),
        pid: owner.as_ref().and_then(Owner::pid),
        started_at: pf.as_ref().map(|p| p.started_at.clone()),
        uptime_s: started.map(|t| {
            SystemTime::now()
                .duration_since(t)
                .unwrap_or_default()
                .as_secs()
        }),
        release: pf.as_ref().map(|p| p.release.clone()),
        version: pf.as_ref().map(|p| crate::releases::jar_version(&p.jar)),
        sha256: pf.as_ref().and_then(|p| sha256_file(&p.jar).ok()),
        jar: pf.map(|p| p.jar),
        health,
        exit: owner.is_none().then(|| sup.last_exit(cfg, s)).flatten(),
        supervisor: sup.kind(),
        supervision: sup.supervision(cfg, s),
    }
}

/// The sha256 of a file, in hex.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>())
}

/// The deployments as a table, newest first; `by` adds the column of who ran each.
pub fn deployments_table(ds: &[Deployment], by: bool) -> String {
    let dash = || "-".to_string();
    let mut head = vec![
        "ID", "STARTED", "DURATION", "SLOT", "VERSION", "RELEASE", "OUTCOME",
    ];
    if by {
        head.push("BY");
    }
    let mut rows = vec![head.into_iter().map(String::from).collect::<Vec<_>>()];
    for d in ds {
        let mut row = vec![
            d.id.clone().unwrap_or_else(dash),
            d.time.clone(),
            human(Duration::from_millis(d.duration_ms)),
            d.slot.clone(),
            d.version.clone().unwrap_or_else(dash),
            d.release.clone().unwrap_or_else(dash),
            d.outcome.replace(['\n', '\r'], " "),
        ];
        if by {
            row.push(d.by.clone().unwrap_or_else(dash));
        }
        rows.push(row);
    }
    table(&rows)
}

/// Steps that make a slot live and so complete a deployment.
fn completes(action: &Action) -> bool {
    action.makes_live()
}

/// Piece deployments together from the history (oldest first in, newest first out). Steps
/// with the same deployment id belong together, except that a new `stop` or `start` after a
/// completed or failed step begins a new deployment (runs by hand and the test harness reuse
/// one id); the `deploy`/`rollback` summary of `nonstop` closes its run.
pub fn deployments(history: &[Event]) -> Vec<Deployment> {
    let mut groups: Vec<Vec<&Event>> = vec![];
    // The steering unit's restores belong to no deployment (status shows the last one).
    for e in history.iter().filter(|e| e.action != Action::Restore) {
        let starts_new = match groups.last() {
            None => true,
            Some(g) => {
                let last = g.last().expect("groups are never empty");
                let closed = matches!(last.action, Action::Deploy | Action::Rollback);
                let ended = g.iter().any(|x| completes(&x.action) || !x.outcome.is_ok());
                closed
                    || last.deployment_id != e.deployment_id
                    || (ended && matches!(e.action, Action::Stop | Action::Start))
            }
        };
        if starts_new {
            groups.push(vec![e]);
        } else {
            groups.last_mut().expect("just checked").push(e);
        }
    }
    groups.iter().rev().map(|g| summarize(g)).collect()
}

fn summarize(g: &[&Event]) -> Deployment {
    let first = g[0];
    let last = g[g.len() - 1];
    let start = parse_utc(&first.time).map(|t| {
        t.checked_sub(Duration::from_millis(first.duration_ms))
            .unwrap_or(t)
    });
    let end = parse_utc(&last.time);
    let duration_ms = match (start, end) {
        (Some(s), Some(e)) => e.duration_since(s).unwrap_or_default().as_millis() as u64,
        _ => g.iter().map(|e| e.duration_ms).sum(),
    };
    let summary = g
        .iter()
        .rev()
        .find(|e| matches!(e.action, Action::Deploy | Action::Rollback));
    let switch = g.iter().rev().find(|e| completes(&e.action));
    let failure = g.iter().find(|e| !e.outcome.is_ok());
    let outcome = match (summary, failure) {
        (Some(s), _) => s.outcome.to_string(),
        (None, Some(f)) => format!(
            "failed at {}: {}",
            f.action,
            f.outcome.reason().unwrap_or_default()
        ),
        (None, None) if switch.is_some() => "ok".into(),
        (None, None) if first.deployment_id.is_none() => format!(
            "by hand: {}",
            g.iter()
                .map(|e| e.action.as_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        (None, None) => format!("incomplete (last step: {})", last.action),
    };
    let slot_of = summary.or(switch).unwrap_or(&last);
    Deployment {
        id: first.deployment_id.clone(),
        time: start.map_or(first.time.clone(), crate::log::utc_millis),
        duration_ms,
        slot: slot_of.slot.clone(),
        release: summary
            .or(switch)
            .and_then(|e| e.release.clone())
            .or_else(|| g.iter().rev().find_map(|e| e.release.clone())),
        version: summary
            .or(switch)
            .and_then(|e| e.version.clone())
            .or_else(|| g.iter().rev().find_map(|e| e.version.clone())),
        by: first.by.clone(),
        outcome,
        steps: g.iter().map(|e| e.action.to_string()).collect(),
    }
}

/// `exited: exit status 3 at 2026-11-22T07:13:34.211Z` (or `killed by signal 9 at ...`, or
/// `stopped: exit status 143 (SIGTERM) at ...` for a graceful stop).
fn exited(e: &ExitRecord) -> String {
    match (e.code, e.signal) {
        _ if e.graceful() => format!("stopped: {e} at {}", e.at),
        (None, Some(_)) => format!("{e} at {}", e.at),
        _ => format!("exited: {e} at {}", e.at),
    }
}

/// The text form.
pub fn render(s: &Status) -> String {
    let mut out = String::new();
    out += &format!("app      {} (config {})\n", s.app, s.config.display());
    let truth = match s.traffic.via {
        crate::traffic::Via::NginxReload => s.include.path.display().to_string(),
        crate::traffic::Via::Nftables => format!(
            "{} (nginx -> 127.0.0.1:{}, never reloaded)",
            s.traffic.truth,
            s.traffic.front_port.unwrap_or(0)
        ),
    };
    out += &format!(
        "{:<8} {truth} -> {}\n",
        match s.traffic.via {
            crate::traffic::Via::NginxReload => "nginx",
            crate::traffic::Via::Nftables => "traffic",
        },
        match (s.include.port, &s.live) {
            (None, _) if s.include.doubt.is_some() => "no port read".to_string(),
            (None, _) => "no slot is live yet".to_string(),
            (Some(p), Some(l)) => format!("port {p} = slot {l}"),
            (Some(p), None) => format!("port {p}, which is no slot"),
        }
    );
    if let Some(r) = &s.traffic.restored {
        out += &format!(
            "restored {} at {} (slot {}, {}, in {} ms): {}\n",
            s.traffic.truth,
            r.time,
            if r.slot.is_empty() { "none" } else { &r.slot },
            r.outcome,
            r.duration_ms,
            r.note.as_deref().unwrap_or("it was missing")
        );
    }
    if let Some(d) = &s.include.doubt {
        out += &format!(
            "DOUBT    cannot tell which slot nginx serves: {d}; deploys refuse until you {}\n",
            s.include
                .repair
                .as_deref()
                .unwrap_or("run `nonstop switch --slot NAME`")
        );
    }
    let r = &s.rollback;
    out += &match (r.action, &r.slot, &r.release) {
        ("switch", Some(slot), Some(rel)) => {
            format!("rollback {slot} (`nonstop rollback` switches back to it: release {rel})\n")
        }
        ("restart", Some(slot), Some(rel)) => format!(
            "rollback {slot} (`nonstop rollback` starts its release {rel} on it again: {})\n",
            r.why.as_deref().unwrap_or("it is not ready")
        ),
        _ => format!(
            "rollback none ({})\n",
            r.why.as_deref().unwrap_or("nothing to roll back to")
        ),
    };
    if let Some(w) = &s.watch {
        out += &format!(
            "watch    {} (slot {}{}, {}): {}\n",
            w.verdict,
            w.slot,
            w.version
                .as_deref()
                .map_or(String::new(), |v| format!(", version {v}")),
            w.time,
            w.detail
        );
    }
    out.push('\n');
    let mut rows = vec![[
        "SLOT", "PORT", "PROFILE", "STATE", "ROTATION", "PID", "UPTIME", "VERSION", "RELEASE",
        "HEALTH",
    ]
    .map(String::from)
    .to_vec()];
    for x in &s.slots {
        let dash = || "-".to_string();
        rows.push(vec![
            x.name.clone(),
            x.port.to_string(),
            x.profile.clone(),
            x.state.to_string(),
            match (&x.rotation, x.weight) {
                (Some(r), Some(w)) if w != 1 => format!("{r} (weight {w})"),
                (Some(r), _) => r.clone(),
                (None, _) => dash(),
            },
            x.pid.map_or_else(dash, |p| {
                if x.owner.as_deref() == Some("nonstop") {
                    p.to_string()
                } else {
                    format!("{p} ({})", x.owner.as_deref().unwrap_or("?"))
                }
            }),
            x.uptime_s
                .map_or_else(dash, |u| uptime(Duration::from_secs(u))),
            x.version.clone().unwrap_or_else(dash),
            x.release.clone().unwrap_or_else(dash),
            match (&x.health, &x.exit) {
                (None, Some(e)) if x.state == SlotState::Live => {
                    format!("down: nothing listens; {}", exited(e))
                }
                (None, None) if x.state == SlotState::Live => "down: nothing listens".into(),
                (None, Some(e)) => exited(e),
                (None, None) => dash(),
                (Some(h), _) if h.ok => format!("up: {} in {} ms", h.detail, h.latency_ms),
                (Some(h), _) => format!("DOWN: {} ({} ms)", h.detail, h.latency_ms),
            },
        ]);
    }
    out += &table(&rows);
    let jars: Vec<Vec<String>> = s
        .slots
        .iter()
        .filter_map(|x| {
            let jar = x.jar.as_ref()?;
            Some(vec![
                x.name.clone(),
                jar.display().to_string(),
                format!("sha256 {}", x.sha256.as_deref().unwrap_or("(unreadable)")),
            ])
        })
        .collect();
    if !jars.is_empty() {
        out += "\nJARS\n";
        out += &table(&jars);
    }
    let units: Vec<Vec<String>> = s
        .slots
        .iter()
        .filter_map(|x| {
            let u = &x.supervision;
            let unit = u.unit.clone()?;
            Some(vec![
                x.name.clone(),
                unit,
                u.active.clone().unwrap_or_else(|| "not installed".into()),
                match u.enabled {
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => "-".into(),
                },
                u.restarts.map_or("-".into(), |n| n.to_string()),
            ])
        })
        .collect();
    if !units.is_empty() {
        let mut rows = vec![["SLOT", "UNIT", "ACTIVE", "AT BOOT", "RESTARTS"]
            .map(String::from)
            .to_vec()];
        rows.extend(units);
        out += "\nSYSTEMD\n";
        out += &table(&rows);
    }
    if !s.releases.is_empty() {
        let total: u64 = s.releases.iter().map(|r| r.disk_bytes).sum();
        out += &format!("\nRELEASES ({} on disk)\n", crate::log::human_bytes(total));
        out += &table(&crate::cds::rows(&s.releases));
    }
    out += "\nLAST DEPLOYMENTS\n";
    if s.deployments.is_empty() {
        out += "none recorded\n";
    } else {
        let recent: Vec<Deployment> = s.deployments.iter().take(5).cloned().collect();
        out += &deployments_table(&recent, false);
    }
    out
}

#[cfg(test)]
mod tests;

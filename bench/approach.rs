//! The deploy approaches, each run in its own world (a private nginx on loopback from the test
//! harness, app ports outside the ephemeral range like 8081/8082 in production) with the same
//! app and load: ~`pre` of load, the deploy, ~`post` of load. The app is the Maven-built Spring
//! Boot jar with its real boot ([`Boot::Spring`]), or the stand-in with a configured boot delay
//! ([`Boot::Delay`]). The two nftables approaches run on a thread of their own that first enters
//! a network namespace of its own (the harness's `enter_netns`): nginx, the JVMs, the hooks and
//! the load threads started from it live there, and nonstop's nft table never touches the
//! machine's own rules.

use crate::common::{nginx_bin, signal, wait_until, App, Client, Env, SPRING_HEALTH_PATH};
use crate::load::{Load, Mix, Rec};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// Set by SIGINT/SIGTERM: runs end early, worlds are cleaned up, `main` exits 130.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The stand-in's boot delay while setting a world up (not measured).
const SETUP_BOOT_MS: u64 = 300;
/// Polling interval of "is it up yet" loops that stand in for a health check (nonstop's
/// `health.interval` in the harness config is the same 100 ms).
const POLL: Duration = Duration::from_millis(100);
/// The JVM readiness prober's interval.
const PROBE_EVERY: Duration = Duration::from_millis(10);
/// The hooks of appspec/appspec.yml, in order.
const BLUEGREEN_HOOKS: [&str; 4] = nonstop::stage_table::BLUE_GREEN;
/// The hooks of appspec/appspec-balanced.yml, in order.
const BALANCED_HOOKS: [&str; 5] = nonstop::stage_table::NAMES;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approach {
    /// kill -9 the app, start the new jar on the same port (what teams did before blue/green).
    KillRestart,
    /// bench/legacy/{stop,start,health}.sh (health.sh calls switch.sh's switch_proxy).
    Legacy,
    /// A bare `nginx -s reload`, nothing else: the floor nginx itself sets.
    Reload,
    /// nonstop blue/green: the stop, start, health, switch binaries run as CodeDeploy hooks.
    BlueGreen,
    /// nonstop balanced rolling deploy over 3 slots: the same hooks plus deploy-second.
    Balanced,
    /// nonstop blue/green with `traffic.via: nftables`: nginx proxies to a fixed front port and
    /// is never reloaded; the switch is one nft transaction (in a network namespace).
    NftBlueGreen,
    /// nonstop balanced over 3 slots with `traffic.via: nftables` (`traffic.balanced`): the
    /// table spreads new connections over the slots in rotation (in a network namespace).
    NftBalanced,
}

impl Approach {
    pub const ALL: [Approach; 7] = [
        Approach::KillRestart,
        Approach::Legacy,
        Approach::Reload,
        Approach::BlueGreen,
        Approach::Balanced,
        Approach::NftBlueGreen,
        Approach::NftBalanced,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Approach::KillRestart => "kill-restart",
            Approach::Legacy => "legacy-scripts",
            Approach::Reload => "nginx-reload",
            Approach::BlueGreen => "nonstop-bluegreen",
            Approach::Balanced => "nonstop-balanced",
            Approach::NftBlueGreen => "nonstop-nft-bluegreen",
            Approach::NftBalanced => "nonstop-nft-balanced",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Approach::KillRestart => "kill -9 + restart, one port",
            Approach::Legacy => "legacy scripts",
            Approach::Reload => "bare nginx -s reload",
            Approach::BlueGreen => "nonstop blue/green",
            Approach::Balanced => "nonstop balanced (3 slots)",
            Approach::NftBlueGreen => "nonstop blue/green, nftables",
            Approach::NftBalanced => "nonstop balanced (3 slots), nftables",
        }
    }

    /// A nonstop approach (its hooks' times go in the per-hook table).
    pub fn is_nonstop(self) -> bool {
        matches!(
            self,
            Approach::BlueGreen
                | Approach::Balanced
                | Approach::NftBlueGreen
                | Approach::NftBalanced
        )
    }

    /// A balanced roll over 3 slots (its load includes the slow requests).
    pub fn is_balanced(self) -> bool {
        matches!(self, Approach::Balanced | Approach::NftBalanced)
    }

    pub fn from_key(k: &str) -> Option<Approach> {
        Approach::ALL.into_iter().find(|a| a.key() == k)
    }
}

/// The app a run deploys and how it boots.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Boot {
    /// examples/spring-boot-app: a real Spring Boot 3 jar, booting as long as it takes.
    Spring,
    /// examples/demo-app, sleeping this many seconds before it binds its port.
    Delay(f64),
}

impl Boot {
    /// `spring`, `20s`, `1_5s`: for file names and results.json.
    pub fn key(self) -> String {
        match self {
            Boot::Spring => "spring".into(),
            Boot::Delay(b) => format!("{b}s").replace('.', "_"),
        }
    }

    /// `Spring Boot`, `stand-in, 20 s`: for tables.
    pub fn label(self) -> String {
        match self {
            Boot::Spring => "Spring Boot".into(),
            Boot::Delay(b) => format!("stand-in, {b} s"),
        }
    }

    /// The configured boot delay (none for the real app).
    pub fn configured(self) -> Option<Duration> {
        match self {
            Boot::Spring => None,
            Boot::Delay(b) => Some(Duration::from_secs_f64(b)),
        }
    }

    fn app(self) -> App {
        match self {
            Boot::Spring => App::Spring,
            Boot::Delay(_) => App::StandIn,
        }
    }

    /// `-Ddemo.boot-ms` for the measured deploy (ignored by the Spring Boot app).
    fn ms(self) -> u64 {
        self.configured().map_or(0, |d| d.as_millis() as u64)
    }
}

/// Load settings shared by every run.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Keep-alive connections of the client that retries once.
    pub conns: usize,
    /// Keep-alive connections of the client that never retries.
    pub never_retry: usize,
    pub pause: Duration,
    pub pre: Duration,
    pub post: Duration,
    /// Slow requests kept in flight during the balanced rolls, and how long each takes.
    pub slow: usize,
    pub slow_ms: u64,
}

/// A stage of a deploy (a zero-length one is a point marker), as offsets from the load's t0.
#[derive(Debug, Clone)]
pub struct Stage {
    pub name: String,
    pub start: Duration,
    pub end: Duration,
}

#[derive(Debug, Clone)]
pub enum Status {
    Ok,
    Failed(String),
}

/// A moment in nonstop's log worth a timeline marker or a number.
#[derive(Debug, Clone, PartialEq)]
pub enum LogEvent {
    /// `nginx reloaded …`.
    Reload,
    /// `table ip nonstop_…: new connections … now go to …`.
    Nft,
    /// A slot leaves rotation.
    Out(String),
    /// A slot rolled to the release (it goes back in with the next change).
    In(String),
    /// A slot drained: how long it took.
    Drained(String, Duration),
    /// A drain gave up with this many connections open (stopping cut them).
    DrainGaveUp(String, usize),
}

/// A slot's drain, from nonstop's log.
#[derive(Debug, Clone)]
pub struct Drain {
    pub slot: String,
    /// How long the drain waited; `None` when it gave up.
    pub took: Option<Duration>,
    /// Connections it cut by giving up.
    pub cut: usize,
}

/// Everything one run measured.
pub struct Outcome {
    pub approach: Approach,
    pub boot: Boot,
    pub status: Status,
    pub deploy_start: Duration,
    pub deploy_end: Duration,
    pub run_end: Duration,
    pub stages: Vec<Stage>,
    /// The new JVM's process start (from /proc) to its first answer with the new version.
    pub launch_to_ready: Option<Duration>,
    /// App boots the deploy waits for one after another (3 for a 3-slot rolling deploy).
    pub boots: u32,
    /// Each new JVM's process start to its first answer with the new version, in the order the
    /// deploy started them (`None`: not measured).
    pub boots_measured: Vec<Option<BootWindow>>,
    /// When each slot left rotation (from nonstop's log), from the load's t0.
    pub take_outs: Vec<(String, Duration)>,
    pub drains: Vec<Drain>,
    /// Slot name -> port.
    pub slot_ports: Vec<(String, u16)>,
    /// How long each slow request takes in the app (balanced rolls).
    pub slow_ms: u64,
    pub records: Vec<Rec>,
    /// What nginx answered after the run.
    pub serving: String,
}

impl Outcome {
    fn empty(approach: Approach, boot: Boot, status: Status) -> Outcome {
        Outcome {
            approach,
            boot,
            status,
            deploy_start: Duration::ZERO,
            deploy_end: Duration::ZERO,
            run_end: Duration::ZERO,
            stages: vec![],
            launch_to_ready: None,
            boots: 1,
            boots_measured: vec![],
            take_outs: vec![],
            drains: vec![],
            slot_ports: vec![],
            slow_ms: 0,
            records: vec![],
            serving: String::new(),
        }
    }
}

/// Run `approach` with the app `boot` says.
pub fn run(approach: Approach, boot: Boot, p: Params) -> Outcome {
    let r = match approach {
        Approach::KillRestart => kill_restart(boot, p),
        Approach::Legacy => legacy(boot, p),
        Approach::Reload => reload(boot, p),
        Approach::BlueGreen => bluegreen(boot, p),
        Approach::Balanced => balanced(boot, p),
        Approach::NftBlueGreen | Approach::NftBalanced => in_netns(approach, boot, p),
    };
    r.unwrap_or_else(|e| Outcome::empty(approach, boot, e))
}

// ---------- the approaches ----------

/// Approach 1, one port: kill -9 the running app, start the new jar, wait until it answers health.
fn kill_restart(boot: Boot, p: Params) -> Result<Outcome, Status> {
    let w = World::new(1, boot)?;
    let port = w.env.ports[0];
    let jar1 = w.jar("v1")?;
    let jar2 = w.jar("v2")?;
    let mut old = spawn_java(&w, SETUP_BOOT_MS, &jar1, port, "real1", "v1.log").map_err(fail)?;
    w.point_nginx(port)?;
    w.measure(Approach::KillRestart, boot, p, |tl| {
        tl.stage("kill -9", || {
            old.kill().map_err(|e| format!("kill: {e}"))?;
            old.wait().map_err(|e| format!("wait: {e}")).map(drop)
        })?;
        tl.probe(port);
        tl.stage("java -jar v2", || {
            w.spawn(boot.ms(), &jar2, port, "real1", "v2.log")
        })?;
        tl.stage("until healthy", || {
            wait_health(port, w.health_path(), Duration::from_secs(120))
        })
    })
}

/// Approach 2: the legacy scripts, run as CodeDeploy runs them: stop.sh in AfterInstall,
/// start.sh in ApplicationStart, health.sh in ValidateService (it calls switch.sh's
/// switch_proxy).
fn legacy(boot: Boot, p: Params) -> Result<Outcome, Status> {
    let w = World::new(2, boot)?;
    let (p1, p2) = (w.env.ports[0], w.env.ports[1]);
    // Steady state after earlier deploys: both apps run v1 from the same jar path, real1 is live.
    let repo = w.env.path("legacy/app");
    std::fs::create_dir_all(repo.join("zip")).map_err(fail)?;
    // The two property files start.sh names in -Dspring.config.location (the seed's OAuth and
    // database settings; empty here): Spring Boot refuses to start without them.
    for f in [
        "application-oauth.properties",
        "application-real-db.properties",
    ] {
        std::fs::write(w.env.path("legacy").join(f), "").map_err(fail)?;
    }
    let jar = repo.join("demo-app.jar");
    std::fs::copy(w.app_jar("v1"), &jar).map_err(fail)?;
    std::fs::copy(&jar, repo.join("zip/demo-app.jar")).map_err(fail)?;
    w.spawn(SETUP_BOOT_MS, &jar, p1, "real1", "real1.log")
        .map_err(fail)?;
    w.spawn(SETUP_BOOT_MS, &jar, p2, "real2", "real2.log")
        .map_err(fail)?;
    wait_answer(addr(p2), "v1 real2")?;
    w.point_nginx(p1)?;
    // CodeDeploy's Install step: the new bundle's jar lands in zip/ (not part of the deploy time).
    std::fs::copy(w.app_jar("v2"), repo.join("zip/demo-app.jar")).map_err(fail)?;
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/legacy");
    let vars: Vec<(String, String)> = vec![
        (
            "NGINX_URL".into(),
            format!("http://127.0.0.1:{}", w.env.nginx_port),
        ),
        ("PORT_REAL1".into(), p1.to_string()),
        ("PORT_REAL2".into(), p2.to_string()),
        ("REPOSITORY".into(), repo.display().to_string()),
        (
            "APP_CONFIG_DIR".into(),
            w.env.path("legacy").display().to_string(),
        ),
        ("JAVA_OPTS".into(), java_opts(&w, boot.ms()).join(" ")),
        ("APP_HOST".into(), "127.0.0.1".into()),
        (
            "SERVICE_URL_INC".into(),
            w.env.include_path().display().to_string(),
        ),
        ("NGINX_RELOAD".into(), w.reload_argv().join(" ")),
        ("SUDO".into(), String::new()),
    ];
    w.measure(Approach::Legacy, boot, p, |tl| {
        for s in ["stop.sh", "start.sh", "health.sh"] {
            if s == "start.sh" {
                tl.probe(p2);
            }
            let t0 = tl.t0;
            let marks = Arc::new(Mutex::new(vec![]));
            let m = marks.clone();
            tl.stage(s, || {
                run_script(&scripts.join(s), &vars, move |line| {
                    // switch.sh's first line: the include is about to be rewritten.
                    if line.contains("Port 전환") {
                        m.lock().unwrap().push(t0.elapsed());
                    }
                })
            })?;
            for at in marks.lock().unwrap().iter() {
                tl.mark("switch_proxy", *at);
            }
        }
        Ok(())
    })
}

/// Approach 3: a bare `nginx -s reload` with nothing changed: what every switch costs at the least.
fn reload(boot: Boot, p: Params) -> Result<Outcome, Status> {
    let w = World::new(1, boot)?;
    let port = w.env.ports[0];
    w.spawn(SETUP_BOOT_MS, &w.jar("v1")?, port, "real1", "v1.log")
        .map_err(fail)?;
    w.point_nginx(port)?;
    let argv = w.reload_argv();
    w.measure(Approach::Reload, boot, p, |tl| {
        tl.stage("nginx -s reload", || run_argv(&argv))
    })
}

/// Approach 4: nonstop blue/green: the real binaries run as CodeDeploy hooks (`Env::hook`).
fn bluegreen(boot: Boot, p: Params) -> Result<Outcome, Status> {
    bluegreen_in(World::new(2, boot)?, Approach::BlueGreen, boot, p)
}

/// A blue/green deploy of v2 through the hooks in world `w` (reload or nftables mode).
fn bluegreen_in(
    mut w: World,
    approach: Approach,
    boot: Boot,
    p: Params,
) -> Result<Outcome, Status> {
    // Steady state after earlier deploys: v1 live on blue, v1 on green as the rollback target.
    for _ in 0..2 {
        setup_deploy(&w.env, &BLUEGREEN_HOOKS)?;
    }
    set_boot(&mut w.env, boot.ms());
    w.env.stage_jar("v2");
    let idle = idle_port(&w.env);
    let env = &w.env;
    w.measure(approach, boot, p, |tl| {
        deploy_hooks(env, tl, &BLUEGREEN_HOOKS, idle, &[])
    })
}

/// Approach 5: nonstop balanced rolling deploy over 3 slots behind an nginx upstream (the
/// harness's `Env::balanced`: `/api/` goes to the upstream, so the load does too): stop, start,
/// health, switch on the idle slot, then deploy-second rolls the other two one at a time.
fn balanced(boot: Boot, p: Params) -> Result<Outcome, Status> {
    balanced_in(World::balanced(3, boot)?, Approach::Balanced, boot, p)
}

/// A rolling deploy of v2 over the 3 slots of world `w` through appspec-balanced.yml's hooks.
fn balanced_in(mut w: World, approach: Approach, boot: Boot, p: Params) -> Result<Outcome, Status> {
    // Steady state after an earlier deploy: v1 on all three slots, all in rotation.
    setup_deploy(&w.env, &BALANCED_HOOKS)?;
    set_boot(&mut w.env, boot.ms());
    w.env.stage_jar("v2");
    let idle = idle_port(&w.env);
    let others = other_ports(&w.env, idle);
    let env = &w.env;
    let mut o = w.measure(approach, boot, p, |tl| {
        deploy_hooks(env, tl, &BALANCED_HOOKS, idle, &others)
    })?;
    o.boots = 3;
    Ok(o)
}

/// Approaches 6 and 7 on a thread of their own that enters a network namespace of its own
/// first (`Env::nftables_with` does): everything the world starts from that thread (nginx,
/// the hooks, the JVMs, the load and prober threads) inherits it, and the world's nft table
/// goes with it when its last process ends.
fn in_netns(approach: Approach, boot: Boot, p: Params) -> Result<Outcome, Status> {
    let t = std::thread::Builder::new()
        .name(approach.key().into())
        .spawn(move || match approach {
            Approach::NftBalanced => nft_balanced(boot, p),
            _ => nft_bluegreen(boot, p),
        })
        .map_err(fail)?;
    t.join().unwrap_or_else(|_| {
        Err(Status::Failed(
            "the network namespace's thread panicked (see stderr)".into(),
        ))
    })
}

/// Approach 6: nonstop blue/green in nftables mode: the same hooks as approach 4; `switch`
/// changes the table's DNAT rule, nginx (proxying to the front port) is never reloaded.
fn nft_bluegreen(boot: Boot, p: Params) -> Result<Outcome, Status> {
    bluegreen_in(
        World::nftables(2, boot, false)?,
        Approach::NftBlueGreen,
        boot,
        p,
    )
}

/// Approach 7: nonstop balanced over 3 slots in nftables mode: the table spreads `/` over the
/// slots in rotation; the hooks of appspec-balanced.yml roll all three, each slot leaving the
/// map and draining (the slow requests in flight finish on it) before it stops.
fn nft_balanced(boot: Boot, p: Params) -> Result<Outcome, Status> {
    balanced_in(
        World::nftables(3, boot, true)?,
        Approach::NftBalanced,
        boot,
        p,
    )
}

/// The ports deploy-second rolls after `idle`, in its order (slot order, live and idle skipped:
/// the live slot after `switch` is the idle one).
fn other_ports(env: &Env, idle: u16) -> Vec<u16> {
    env.ports.iter().copied().filter(|&p| p != idle).collect()
}

/// The port of the slot the next deploy goes to: the one after the live slot (nonstop's rule).
fn idle_port(env: &Env) -> u16 {
    let live = env.state()["live"].as_str().unwrap_or("").to_string();
    let at = env.names.iter().position(|n| *n == live).unwrap_or(0);
    env.ports[(at + 1) % env.ports.len()]
}

/// One setup deploy of v1 through `bins` with the short setup boot (not measured).
fn setup_deploy(env: &Env, bins: &[&str]) -> Result<(), Status> {
    env.stage_jar("v1");
    for b in bins {
        let r = env.hook(b, &[]);
        if r.code != 0 {
            return Err(Status::Failed(format!(
                "setup: {b} exit {}: {}",
                r.code,
                r.last_line()
            )));
        }
    }
    Ok(())
}

/// The measured deploy: each hook a stage; a JVM prober on `idle` once `stop` freed it, and
/// on each of `others` when deploy-second starts (it waits for the slot's old JVM to end); the
/// moments nonstop logs (reloads, table changes, slots leaving and re-entering rotation,
/// drains) as markers and numbers.
fn deploy_hooks(
    env: &Env,
    tl: &mut Timeline,
    bins: &[&str],
    idle: u16,
    others: &[u16],
) -> Result<(), String> {
    for b in bins {
        if *b == "start" {
            tl.probe(idle);
        }
        if *b == "deploy-second" {
            for &p in others {
                tl.probe(p);
            }
        }
        let r = tl.stage(b, || Ok(env.hook(b, &[])))?;
        for line in r.stderr.lines() {
            if let Some((at, ev)) = nonstop_event(line) {
                tl.log_event(ev, at);
            }
        }
        if r.code != 0 {
            return Err(format!("{b} exit {}: {}", r.code, r.last_line()));
        }
    }
    Ok(())
}

/// A nonstop log line worth a marker or a number: its time and what it says.
fn nonstop_event(line: &str) -> Option<(SystemTime, LogEvent)> {
    let (stamp, rest) = line.split_once(' ')?;
    let msg = rest.split_once("]: ").map_or(rest, |(_, m)| m);
    let word = |s: &str, n: usize| s.split_whitespace().nth(n).map(str::to_string);
    let ev = if msg.starts_with("nginx reloaded") {
        LogEvent::Reload
    } else if msg.starts_with("table ip ") && msg.contains(" now go to ") {
        LogEvent::Nft
    } else if let Some(r) = msg.strip_prefix("taking slot ") {
        LogEvent::Out(word(r, 0)?)
    } else if let Some(r) = msg.strip_prefix("putting slot ") {
        // `putting slot B back in and taking slot S out of rotation …`
        let (_, taking) = r.split_once(" taking slot ")?;
        LogEvent::Out(word(taking, 0)?)
    } else if msg.starts_with("slot ") && msg.contains(" rolled to release ") {
        LogEvent::In(word(msg, 1)?)
    } else if let Some(r) = msg.strip_prefix("slot ") {
        // `slot X drained in 1.23 s: no connection in flight` / `… in 850 ms: …`
        let (slot, after) = r.split_once(" drained in ")?;
        let (n, unit) = after.split_once(':')?.0.split_once(' ')?;
        let n: f64 = n.parse().ok()?;
        let took = match unit {
            "ms" => Duration::from_secs_f64(n / 1000.0),
            "s" => Duration::from_secs_f64(n),
            _ => return None,
        };
        LogEvent::Drained(slot.to_string(), took)
    } else if let Some(r) = msg.strip_prefix("drain of slot ") {
        // `drain of slot X gave up after 15s with N connection(s) still open; …`
        let (slot, after) = r.split_once(' ')?;
        let (_, with) = after.split_once(" with ")?;
        LogEvent::DrainGaveUp(slot.to_string(), word(with, 0)?.parse().ok()?)
    } else {
        return None;
    };
    Some((parse_utc_millis(stamp)?, ev))
}

/// `2026-11-22T06:56:35.587Z` (nonstop's log time stamps) as a SystemTime.
fn parse_utc_millis(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let d: Vec<i64> = date
        .split('-')
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let (hms, ms) = time.split_once('.')?;
    let t: Vec<i64> = hms
        .split(':')
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    let (&[y, m, day], &[hh, mm, ss]) = (d.as_slice(), t.as_slice()) else {
        return None;
    };
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    let ms: u64 = ms.parse().ok()?;
    Some(
        SystemTime::UNIX_EPOCH
            + Duration::from_secs(u64::try_from(secs).ok()?)
            + Duration::from_millis(ms),
    )
}

// ---------- a world: the harness Env, low ports, cleanup ----------

struct World {
    /// Kills every java whose command line names this world's folder (the legacy scripts'
    /// nohup'd JVMs, nonstop's, ours) before `env` stops nonstop's apps and nginx.
    _reaper: Reaper,
    /// JVMs this process started, reaped when the world ends.
    children: Mutex<Vec<Child>>,
    /// What the load requests through nginx.
    path: &'static str,
    env: Env,
}

impl World {
    fn new(slots: usize, boot: Boot) -> Result<World, Status> {
        check_interrupt()?;
        let env = match boot.app() {
            App::Spring => Env::spring(slots),
            App::SpringLarge => Env::with_app(slots, App::SpringLarge, false),
            App::StandIn => Env::new(slots),
        };
        World::with(env, "/")
    }

    /// Balanced mode: nginx balances `/api/` over an upstream of every slot.
    fn balanced(slots: usize, boot: Boot) -> Result<World, Status> {
        check_interrupt()?;
        let env = match boot.app() {
            App::Spring => Env::spring_balanced(slots),
            App::SpringLarge => Env::with_app(slots, App::SpringLarge, true),
            App::StandIn => Env::balanced(slots),
        };
        World::with(env, "/api/")
    }

    /// nftables mode (`Env::nftables_with`: this thread enters a network namespace of its
    /// own): nginx proxies `/` to the front port, the table steers it (`balanced`: spreads it
    /// over the slots in rotation).
    fn nftables(slots: usize, boot: Boot, balanced: bool) -> Result<World, Status> {
        check_interrupt()?;
        World::with(Env::nftables_with(slots, boot.app(), balanced), "/")
    }

    /// The app's jar for `version` where the harness builds it.
    fn app_jar(&self, version: &str) -> PathBuf {
        match self.env.app {
            App::Spring => crate::common::spring_jar(version),
            App::SpringLarge => crate::common::spring_large_jar(version),
            App::StandIn => crate::common::demo_jar(version),
        }
    }

    /// What "healthy" means for this world's app (the Spring Boot app: its readiness group).
    fn health_path(&self) -> &'static str {
        match self.env.app {
            App::Spring | App::SpringLarge => SPRING_HEALTH_PATH,
            App::StandIn => "/actuator/health",
        }
    }

    fn with(mut env: Env, path: &'static str) -> Result<World, Status> {
        let reaper = Reaper(env.dir.path().to_path_buf());
        env.ports = (0..env.ports.len())
            .map(|_| loop {
                let p = low_port();
                if Some(p) != env.front {
                    break p;
                }
            })
            .collect();
        set_boot(&mut env, SETUP_BOOT_MS);
        std::fs::write(
            env.include_path(),
            format!("set $service_url http://127.0.0.1:{};\n", env.ports[0]),
        )
        .map_err(fail)?;
        if env.balanced && env.front.is_none() {
            let servers: String = env
                .ports
                .iter()
                .map(|p| format!("    server 127.0.0.1:{p} down;\n"))
                .collect();
            std::fs::write(
                env.upstream_path(),
                format!("upstream demo {{\n{servers}}}\n"),
            )
            .map_err(fail)?;
        }
        Ok(World {
            _reaper: reaper,
            children: Mutex::new(vec![]),
            path,
            env,
        })
    }

    /// The app's jar for `version`, copied into this world (so the reaper knows its JVMs).
    fn jar(&self, version: &str) -> Result<PathBuf, Status> {
        let dir = self.env.path("jars");
        std::fs::create_dir_all(&dir).map_err(fail)?;
        let jar = dir.join(format!("app-{version}.jar"));
        std::fs::copy(self.app_jar(version), &jar).map_err(fail)?;
        Ok(jar)
    }

    /// Start a JVM and keep it to be reaped with the world.
    fn spawn(
        &self,
        boot_ms: u64,
        jar: &Path,
        port: u16,
        profile: &str,
        log: &str,
    ) -> Result<(), String> {
        let child = spawn_java(self, boot_ms, jar, port, profile, log)?;
        self.children.lock().unwrap().push(child);
        Ok(())
    }

    fn reload_argv(&self) -> Vec<String> {
        vec![
            nginx_bin().display().to_string(),
            "-p".into(),
            self.env.path("nginx").display().to_string(),
            "-c".into(),
            self.env.path("nginx/nginx.conf").display().to_string(),
            "-s".into(),
            "reload".into(),
        ]
    }

    /// Point nginx at `port` (as switch.sh would) and wait until nginx answers from that app.
    fn point_nginx(&self, port: u16) -> Result<(), Status> {
        std::fs::write(
            self.env.include_path(),
            format!("set $service_url http://127.0.0.1:{port};\n"),
        )
        .map_err(fail)?;
        run_argv(&self.reload_argv()).map_err(Status::Failed)?;
        let want = format!(" {port}");
        let answers = || {
            let (status, body) = self.env.get("/");
            status == 200 && body.trim_end().ends_with(&want)
        };
        setup_wait(&format!("nginx answers from port {port}"), answers)
    }

    /// Wait until nginx runs exactly one worker (the harness config has `worker_processes 1`):
    /// an old worker left from a setup reload would still serve the old include to the first
    /// connections of the load.
    fn settle_nginx(&self) -> Result<(), Status> {
        setup_wait("nginx runs one worker", || {
            std::fs::read_to_string(self.env.path("nginx/nginx.pid"))
                .ok()
                .and_then(|p| p.trim().parse::<i32>().ok())
                .is_some_and(|m| nonstop::process::children(m).len() == 1)
        })
    }

    /// Load for `pre`, `deploy` (timed, with its stages), load for `post`; then the records.
    fn measure(
        &self,
        approach: Approach,
        boot: Boot,
        p: Params,
        deploy: impl FnOnce(&mut Timeline) -> Result<(), String>,
    ) -> Result<Outcome, Status> {
        self.settle_nginx()?;
        let t0 = Instant::now();
        let mix = Mix {
            conns: p.conns,
            never_retry: p.never_retry,
            pause: p.pause,
            slow: if approach.is_balanced() { p.slow } else { 0 },
            slow_ms: p.slow_ms,
            slow_ramp: p.pre,
        };
        let load = Load::start(self.env.nginx_addr(), self.path, mix, t0, "v2");
        let mut tl = Timeline {
            t0,
            t0_wall: SystemTime::now(),
            stages: vec![],
            probers: vec![],
            take_outs: vec![],
            drains: vec![],
        };
        let mut status = sleep_checked(p.pre).map_or_else(Status::Failed, |_| Status::Ok);
        let deploy_start = t0.elapsed();
        if matches!(status, Status::Ok) {
            if let Err(e) = deploy(&mut tl) {
                status = Status::Failed(e);
            }
        }
        let deploy_end = t0.elapsed();
        if let Err(e) = sleep_checked(p.post) {
            status = Status::Failed(e);
        }
        let records = load.finish();
        let run_end = t0.elapsed();
        let boots_measured: Vec<Option<BootWindow>> =
            tl.probers.drain(..).map(|p| p.finish(t0)).collect();
        let launch_to_ready = boots_measured.first().copied().flatten().map(|b| b.took());
        let (st, body) = self.env.get(self.path);
        let serving = format!("{st} {}", body.trim());
        // Every approach but the bare reload ends with nginx serving v2.
        let want = if approach == Approach::Reload {
            "v1 "
        } else {
            "v2 "
        };
        if matches!(status, Status::Ok) && !body.starts_with(want) {
            status = Status::Failed(format!("after the deploy nginx answers {serving:?}"));
        }
        Ok(Outcome {
            approach,
            boot,
            status,
            deploy_start,
            deploy_end,
            run_end,
            stages: tl.stages,
            launch_to_ready,
            boots: 1,
            boots_measured,
            take_outs: tl.take_outs,
            drains: tl.drains,
            slot_ports: self
                .env
                .names
                .iter()
                .cloned()
                .zip(self.env.ports.iter().copied())
                .collect(),
            slow_ms: p.slow_ms,
            records,
            serving,
        })
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for c in self.children.get_mut().unwrap().iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Where a deploy records its stages.
pub struct Timeline {
    t0: Instant,
    /// The wall clock at `t0`, to place nonstop's log time stamps.
    t0_wall: SystemTime,
    stages: Vec<Stage>,
    probers: Vec<Prober>,
    take_outs: Vec<(String, Duration)>,
    drains: Vec<Drain>,
}

impl Timeline {
    fn stage<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
        check_interrupt().map_err(|_| "interrupted".to_string())?;
        let start = self.t0.elapsed();
        let r = f();
        self.stages.push(Stage {
            name: name.into(),
            start,
            end: self.t0.elapsed(),
        });
        r
    }

    fn mark(&mut self, name: &str, at: Duration) {
        self.stages.push(Stage {
            name: name.into(),
            start: at,
            end: at,
        });
    }

    /// A marker at a wall-clock time (a log line's time stamp).
    fn mark_wall(&mut self, name: &str, at: SystemTime) {
        if let Ok(d) = at.duration_since(self.t0_wall) {
            self.mark(name, d);
        }
    }

    /// A nonstop log event: a marker (`reload`, `nft`, `X out`, `X in`), a take-out, a drain.
    fn log_event(&mut self, ev: LogEvent, at: SystemTime) {
        let since = at.duration_since(self.t0_wall).ok();
        match ev {
            LogEvent::Reload => self.mark_wall("reload", at),
            LogEvent::Nft => self.mark_wall("nft", at),
            LogEvent::Out(slot) => {
                self.mark_wall(&format!("{slot} out"), at);
                if let Some(d) = since {
                    self.take_outs.push((slot, d));
                }
            }
            LogEvent::In(slot) => self.mark_wall(&format!("{slot} in"), at),
            LogEvent::Drained(slot, took) => self.drains.push(Drain {
                slot,
                took: Some(took),
                cut: 0,
            }),
            LogEvent::DrainGaveUp(slot, cut) => self.drains.push(Drain {
                slot,
                took: None,
                cut,
            }),
        }
    }

    /// Start watching `port` for the new version (it first waits until the JVMs that hold the
    /// port now have ended, so that it never holds a connection to a slot that drains).
    fn probe(&mut self, port: u16) {
        self.probers.push(Prober::start(port));
    }
}

/// A new JVM's process start and its first answer with the new version, from the load's t0.
#[derive(Debug, Clone, Copy)]
pub struct BootWindow {
    pub launched: Duration,
    pub ready: Duration,
}

impl BootWindow {
    /// JVM start -> ready.
    pub fn took(&self) -> Duration {
        self.ready.saturating_sub(self.launched)
    }
}

/// Polls the new app directly every 10 ms; on its first answer with the new version, finds its
/// JVM in /proc and reports its process start and that moment.
struct Prober {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Option<(Instant, Instant)>>,
}

impl Prober {
    fn start(port: u16) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let old = java_pids(port);
        let thread = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut last = String::new();
            while !s.load(Ordering::Relaxed)
                && t0.elapsed() < Duration::from_secs(150)
                && old
                    .iter()
                    .any(|pid| Path::new(&format!("/proc/{pid}")).exists())
            {
                std::thread::sleep(PROBE_EVERY);
            }
            while !s.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(150) {
                let mut c = Client::new(addr(port));
                match c.request("GET", "/", b"") {
                    Ok((200, body)) if body.starts_with("v2 ") => {
                        let ready = Instant::now();
                        let launched = java_started(port);
                        if launched.is_none() {
                            eprintln!("bench: prober: v2 answers on port {port}, but no java with -Dserver.port={port} is in /proc");
                        }
                        return launched.map(|l| (l, ready));
                    }
                    Ok((st, body)) => last = format!("HTTP {st} {}", body.trim()),
                    Err(f) => last = f.err,
                }
                std::thread::sleep(PROBE_EVERY);
            }
            eprintln!(
                "bench: prober: no answer from v2 on port {port} after {:?}; last: {last}",
                t0.elapsed()
            );
            None
        });
        Prober { stop, thread }
    }

    fn finish(self, t0: Instant) -> Option<BootWindow> {
        self.stop.store(true, Ordering::Relaxed);
        let (launched, ready) = self.thread.join().ok().flatten()?;
        Some(BootWindow {
            launched: launched.saturating_duration_since(t0),
            ready: ready.saturating_duration_since(t0),
        })
    }
}

/// The pids of the `java … -Dserver.port=PORT` processes now.
fn java_pids(port: u16) -> Vec<i32> {
    let flag = format!("-Dserver.port={port}");
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|&pid| {
                    let cmd = nonstop::process::cmdline(pid);
                    is_java(&cmd) && cmd.contains(&flag)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// When the newest `java … -Dserver.port=PORT` process started, as an Instant (10 ms ticks).
fn java_started(port: u16) -> Option<Instant> {
    let ticks = java_pids(port)
        .into_iter()
        .filter_map(|pid| nonstop::process::stat(pid).map(|s| s.start_time))
        .max()?;
    let uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    // Field 22 of /proc/PID/stat counts USER_HZ ticks since boot; USER_HZ is 100 on Linux.
    let ago = uptime - ticks as f64 / 100.0;
    Instant::now().checked_sub(Duration::from_secs_f64(ago.max(0.0)))
}

fn is_java(cmd: &[String]) -> bool {
    cmd.first()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n == "java")
}

struct Reaper(PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        let dir = self.0.display().to_string();
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return;
        };
        for pid in rd
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        {
            let cmd = nonstop::process::cmdline(pid);
            if is_java(&cmd) && cmd.iter().any(|a| a.contains(&dir)) {
                signal(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

// ---------- helpers ----------

fn fail(e: impl std::fmt::Display) -> Status {
    Status::Failed(format!("setup: {e}"))
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn check_interrupt() -> Result<(), Status> {
    if INTERRUPTED.load(Ordering::Relaxed) {
        Err(Status::Failed("interrupted".into()))
    } else {
        Ok(())
    }
}

fn sleep_checked(d: Duration) -> Result<(), String> {
    let t0 = Instant::now();
    while t0.elapsed() < d {
        if INTERRUPTED.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        std::thread::sleep((d - t0.elapsed()).min(Duration::from_millis(50)));
    }
    Ok(())
}

/// A free port below the ephemeral range (like 8081/8082), so no client socket's port can
/// collide with an app port (which `lsof -ti tcp:PORT` in stop.sh would also match).
fn low_port() -> u16 {
    static TAKEN: Mutex<Option<HashSet<u16>>> = Mutex::new(None);
    let mut taken = TAKEN.lock().unwrap();
    let taken = taken.get_or_insert_with(HashSet::new);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos() as usize
        + std::process::id() as usize;
    for i in 0..4000 {
        let port = 20_000 + ((seed + i * 7919) % 12_000) as u16;
        if !taken.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.insert(port);
            return port;
        }
    }
    panic!("no free port in 20000..32000");
}

/// The stand-in's boot delay (the Spring Boot app boots as it does); rewrites the config.
fn set_boot(env: &mut Env, boot_ms: u64) {
    if env.app == App::Spring {
        env.write_config();
        return;
    }
    env.java_opts.retain(|o| !o.starts_with("-Ddemo.boot-ms="));
    env.java_opts.push(format!("-Ddemo.boot-ms={boot_ms}"));
    env.write_config();
}

/// The harness's JVM options with `boot_ms` (for the stand-in).
fn java_opts(w: &World, boot_ms: u64) -> Vec<String> {
    if w.env.app == App::Spring {
        return w.env.java_opts.clone();
    }
    let mut o: Vec<String> = w
        .env
        .java_opts
        .iter()
        .filter(|o| !o.starts_with("-Ddemo.boot-ms="))
        .cloned()
        .collect();
    o.push(format!("-Ddemo.boot-ms={boot_ms}"));
    o
}

/// `java OPTS -Dserver.port=PORT -Dspring.profiles.active=PROFILE -jar JAR`, output to a log.
fn spawn_java(
    w: &World,
    boot_ms: u64,
    jar: &Path,
    port: u16,
    profile: &str,
    log: &str,
) -> Result<Child, String> {
    let logs = w.env.path("logs");
    std::fs::create_dir_all(&logs).map_err(|e| e.to_string())?;
    let out = std::fs::File::create(logs.join(log)).map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    Command::new("java")
        .args(java_opts(w, boot_ms))
        .arg(format!("-Dserver.port={port}"))
        .arg(format!("-Dspring.profiles.active={profile}"))
        .arg("-jar")
        .arg(jar)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("java: {e}"))
}

/// Poll GET `path` on `port` every [`POLL`] until 200.
fn wait_health(port: u16, path: &str, limit: Duration) -> Result<(), String> {
    let t0 = Instant::now();
    loop {
        let round = Instant::now();
        if let Ok((200, _)) = Client::new(addr(port)).request("GET", path, b"") {
            return Ok(());
        }
        if t0.elapsed() > limit {
            return Err(format!("port {port} not healthy after {limit:?}"));
        }
        sleep_checked(POLL.saturating_sub(round.elapsed()))?;
    }
}

/// Poll GET / at `a` until the body starts with `prefix`.
fn wait_answer(a: SocketAddr, prefix: &str) -> Result<(), Status> {
    setup_wait(
        &format!("{a} answers {prefix:?}"),
        || matches!(Client::new(a).request("GET", "/", b""), Ok((200, body)) if body.starts_with(prefix)),
    )
}

/// Wait up to 120 s (polling every 20 ms) until `cond` holds during a world's set-up (two
/// Spring Boot JVMs booting at once on two cores take a while).
fn setup_wait(what: &str, mut cond: impl FnMut() -> bool) -> Result<(), Status> {
    let held = wait_until(Duration::from_secs(120), || {
        INTERRUPTED.load(Ordering::Relaxed) || cond()
    });
    check_interrupt()?;
    if held {
        Ok(())
    } else {
        Err(Status::Failed(format!(
            "setup: timed out waiting until {what}"
        )))
    }
}

fn run_argv(argv: &[String]) -> Result<(), String> {
    let out = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", argv[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}` failed: {}",
            argv.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Run a legacy script with `vars`, echoing its output to stderr and handing each stdout line
/// to `on_line` as it arrives.
fn run_script(
    script: &Path,
    vars: &[(String, String)],
    mut on_line: impl FnMut(&str),
) -> Result<(), String> {
    let name = script.file_name().unwrap().to_string_lossy().into_owned();
    let mut child = Command::new("bash")
        .arg(script)
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{name}: {e}"))?;
    let stderr = child.stderr.take().unwrap();
    let tag = name.clone();
    let errs = std::thread::spawn(move || {
        for l in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("  [{tag} stderr] {l}");
        }
    });
    for l in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        eprintln!("  [{name}] {l}");
        on_line(&l);
    }
    let st = child.wait().map_err(|e| format!("{name}: {e}"))?;
    let _ = errs.join();
    if st.success() {
        Ok(())
    } else {
        Err(format!("{name} exited with {st}"))
    }
}

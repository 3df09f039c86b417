//! The config as written in YAML (each section with its defaults), and its parse: the values
//! checked by their types ([`super::values`]), then the checks across fields and sections
//! (duplicate slots, a deadline shorter than the interval, the traffic mode's needs), located
//! by searching the source text.

use super::types::{App, Choice, Config, Health, Logs, Nginx, Slot, Stop, TrafficCfg, Via, Watch};
use super::values::*;
use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

// ---------- raw, as written in YAML ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    app: RawApp,
    #[serde(default = "default_slots")]
    slots: Vec<RawSlot>,
    #[serde(default)]
    health: RawHealth,
    #[serde(default)]
    stop: RawStop,
    #[serde(default)]
    nginx: RawNginx,
    #[serde(default)]
    logs: RawLogs,
    #[serde(default)]
    traffic: RawTraffic,
    state_dir: Option<PathBuf>,
    #[serde(default = "default_keep")]
    keep_releases: Keep,
    #[serde(default)]
    watch: RawWatch,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWatch {
    enabled: bool,
    duration: Positive,
    interval: Positive,
    baseline: Positive,
    min_requests: MinRequests,
    errors: Percent,
    errors_factor: Factor,
    p99_factor: Factor,
    p99_margin: Dur,
    log: Option<PathBuf>,
    probes: Vec<ProbePath>,
}

impl Default for RawWatch {
    fn default() -> Self {
        RawWatch {
            enabled: false,
            duration: Positive(Duration::from_secs(60)),
            interval: Positive(Duration::from_secs(5)),
            baseline: Positive(Duration::from_secs(60)),
            min_requests: MinRequests(50),
            errors: Percent(0.01),
            errors_factor: Factor(2.0),
            p99_factor: Factor(2.0),
            p99_margin: Dur(Duration::from_millis(100)),
            log: None,
            probes: vec![],
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: AppName,
    #[serde(default = "default_jar")]
    jar: JarGlob,
    java: Option<String>,
    #[serde(default)]
    java_opts: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<EnvName, String>,
    workdir: Option<PathBuf>,
    #[serde(default)]
    supervisor: Choice,
    user: Option<UserName>,
    group: Option<UserName>,
    #[serde(default)]
    standby_at_boot: bool,
    #[serde(default)]
    cds: super::types::CdsMode,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawTraffic {
    via: Via,
    port: Option<Port>,
    balanced: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLogs {
    max_size: Size,
    keep: usize,
}

impl Default for RawLogs {
    fn default() -> Self {
        RawLogs {
            max_size: Size(100 << 20),
            keep: 5,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlot {
    name: SlotName,
    port: Port,
    profile: Profile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHealth {
    path: HttpPath,
    status: Option<HttpStatus>,
    body: Option<String>,
    interval: Positive,
    timeout: Positive,
    deadline: Dur,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawStop {
    grace: Dur,
    drain: Dur,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawNginx {
    include: PathBuf,
    variable: NginxVar,
    host: Host,
    test: Argv,
    reload: Argv,
    pid_file: PathBuf,
    upstream_file: Option<PathBuf>,
    upstream_name: Option<UpstreamName>,
}

fn default_slots() -> Vec<RawSlot> {
    [("blue", 8081, "real1"), ("green", 8082, "real2")]
        .into_iter()
        .map(|(n, p, pr)| RawSlot {
            name: SlotName(n.into()),
            port: Port(p),
            profile: Profile(pr.into()),
        })
        .collect()
}

fn default_keep() -> Keep {
    Keep(5)
}

fn default_jar() -> JarGlob {
    JarGlob("*.jar".into())
}

impl Default for RawHealth {
    fn default() -> Self {
        RawHealth {
            path: HttpPath("/actuator/health".into()),
            status: None,
            body: None,
            interval: Positive(Duration::from_millis(500)),
            timeout: Positive(Duration::from_secs(2)),
            deadline: Dur(Duration::from_secs(120)),
        }
    }
}

impl Default for RawStop {
    fn default() -> Self {
        RawStop {
            grace: Dur(Duration::from_secs(35)),
            drain: Dur(Duration::from_secs(30)),
        }
    }
}

impl Default for RawNginx {
    fn default() -> Self {
        RawNginx {
            include: "/etc/nginx/conf.d/service-url.inc".into(),
            variable: NginxVar("service_url".into()),
            host: Host("127.0.0.1".into()),
            test: Argv(vec!["nginx".into(), "-t".into()]),
            reload: Argv(vec!["nginx".into(), "-s".into(), "reload".into()]),
            pid_file: "/run/nginx.pid".into(),
            upstream_file: None,
            upstream_name: None,
        }
    }
}

/// Parse and validate `text`, which was read from `path` (relative paths resolve against
/// the file's folder).
pub fn parse(text: &str, path: &Path) -> Result<Config> {
    let raw: RawConfig = serde_yaml::from_str(text).map_err(|e| {
        let msg = e.to_string();
        match e.location() {
            Some(l) => {
                let suffix = format!(" at line {} column {}", l.line(), l.column());
                let msg = msg.replace(&suffix, "");
                Error::config(path, Some(l.line()), Some(l.column()), msg)
            }
            None => Error::config(path, None, None, msg),
        }
    })?;
    // A config error at the `nth` line holding `needle`.
    let at = |needle: &str, nth: usize, msg: String| {
        Error::config(path, line_of(text, needle, nth), None, msg)
    };
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = abs.parent().unwrap_or(Path::new("/")).to_path_buf();
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            dir.join(p)
        }
    };

    if raw.slots.len() < 2 || raw.slots.len() > 16 {
        return Err(at(
            "slots:",
            0,
            format!("slots: want 2 to 16 slots, found {}", raw.slots.len()),
        ));
    }
    for (i, s) in raw.slots.iter().enumerate() {
        for t in &raw.slots[..i] {
            if t.name == s.name {
                return Err(at(
                    &s.name.0,
                    1,
                    format!("duplicate slot name {:?}", s.name.0),
                ));
            }
            if t.port.0 == s.port.0 {
                return Err(at(
                    &s.port.0.to_string(),
                    1,
                    format!("duplicate slot port {}", s.port.0),
                ));
            }
        }
    }
    let h = raw.health;
    if h.deadline.0 < h.interval.0 {
        return Err(at(
            match line_of(text, "deadline:", 0) {
                Some(_) => "deadline:",
                None => "health:",
            },
            0,
            format!(
                "health.deadline {} is shorter than one health.interval {}",
                crate::log::human(h.deadline.0),
                crate::log::human(h.interval.0)
            ),
        ));
    }
    let front = raw.traffic.port.map(|p| p.0);
    match (raw.traffic.via, front) {
        (Via::Nftables, None) => {
            return Err(at(
                "traffic:",
                0,
                "traffic.via nftables needs traffic.port: the front port nginx proxies to".into(),
            ))
        }
        (_, Some(p)) if raw.slots.iter().any(|s| s.port.0 == p) => {
            return Err(at(
                "traffic:",
                0,
                format!("traffic.port {p} is a slot's port: the front port must be one nothing listens on"),
            ))
        }
        (Via::NginxReload, _) if raw.traffic.balanced => {
            return Err(at(
                "balanced:",
                0,
                "traffic.balanced is for nftables mode; in nginx-reload mode balanced means nginx.upstream_file".into(),
            ))
        }
        _ => {}
    }
    let w = raw.watch;
    if w.interval.0 > w.duration.0 {
        return Err(at(
            "watch:",
            0,
            format!(
                "watch.interval {} is longer than watch.duration {}",
                crate::log::human(w.interval.0),
                crate::log::human(w.duration.0)
            ),
        ));
    }
    let name = raw.app.name.0;
    let jar_pattern = PathBuf::from(&raw.app.jar.0);
    Ok(Config {
        path: abs.clone(),
        app: App {
            jar: resolve(&jar_pattern),
            java: raw.app.java.filter(|j| !j.is_empty()),
            java_opts: raw.app.java_opts,
            args: raw.app.args,
            env: raw.app.env.into_iter().map(|(k, v)| (k.0, v)).collect(),
            workdir: resolve(
                &raw.app
                    .workdir
                    .unwrap_or_else(|| PathBuf::from("/opt/nonstop").join(&name)),
            ),
            name: name.clone(),
            supervisor: raw.app.supervisor,
            user: raw.app.user.map(|u| u.0),
            group: raw.app.group.map(|g| g.0),
            standby_at_boot: raw.app.standby_at_boot,
            cds: raw.app.cds,
        },
        traffic: TrafficCfg {
            via: raw.traffic.via,
            port: front,
            balanced: raw.traffic.balanced,
        },
        logs: Logs {
            max_size: raw.logs.max_size.0,
            keep: raw.logs.keep,
        },
        slots: raw
            .slots
            .into_iter()
            .map(|s| Slot {
                name: s.name.0,
                port: s.port.0,
                profile: s.profile.0,
            })
            .collect(),
        health: Health {
            path: h.path.0,
            status: h.status.map(|s| s.0),
            body: h.body.filter(|b| !b.is_empty()),
            interval: h.interval.0,
            timeout: h.timeout.0,
            deadline: h.deadline.0,
        },
        stop: Stop {
            grace: raw.stop.grace.0,
            drain: raw.stop.drain.0,
        },
        nginx: Nginx {
            include: resolve(&raw.nginx.include),
            variable: raw.nginx.variable.0,
            host: raw.nginx.host.0,
            test: raw.nginx.test.0,
            reload: raw.nginx.reload.0,
            pid_file: resolve(&raw.nginx.pid_file),
            upstream_file: raw.nginx.upstream_file.as_deref().map(resolve),
            upstream_name: raw
                .nginx
                .upstream_name
                .map_or_else(|| name.clone(), |n| n.0),
        },
        state_dir: resolve(
            &raw.state_dir
                .unwrap_or_else(|| PathBuf::from("/var/lib/nonstop").join(&name)),
        ),
        keep_releases: raw.keep_releases.0,
        watch: Watch {
            enabled: w.enabled,
            duration: w.duration.0,
            interval: w.interval.0,
            baseline: w.baseline.0,
            min_requests: w.min_requests.0,
            errors: w.errors.0,
            errors_factor: w.errors_factor.0,
            p99_factor: w.p99_factor.0,
            p99_margin: w.p99_margin.0,
            log: resolve(
                &w.log
                    .unwrap_or_else(|| PathBuf::from(format!("/var/log/nginx/{name}.access.log"))),
            ),
            probes: w.probes.into_iter().map(|p| p.0).collect(),
        },
    })
}

/// 1-based line of the `nth` (0-based) line containing `needle`.
fn line_of(text: &str, needle: &str, nth: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .nth(nth)
        .map(|(i, _)| i + 1)
}

//! Health checks: one HTTP probe of a slot, the verdict on it, and the polling loop that
//! `health` runs until the slot is healthy, its process dies, or the deadline passes (or, for a
//! Spring Boot app, a steady 404 from the app itself shows the path will never answer).
//!
//! Probes go straight to the app on loopback (never through a proxy), with every timeout set,
//! and judge the status code as well as the body.

use crate::config::{Config, Slot};
use crate::error::{Error, Result, Unhealthy};
use crate::{interrupt, process};
use std::time::{Duration, Instant};

/// What one probe saw.
#[derive(Debug, Clone)]
pub struct Probe {
    pub status: Option<u16>,
    pub body: String,
    /// Transport error (connection refused, timeout), if there was no response.
    pub error: Option<String>,
    pub latency: Duration,
}

impl std::fmt::Display for Probe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.error, self.status) {
            (Some(e), _) => write!(f, "no response ({e})"),
            (None, Some(s)) => {
                let mut body: String = self.body.chars().take(200).collect();
                body = body.replace(['\n', '\r'], " ");
                write!(f, "HTTP {s}, body {body:?}")
            }
            (None, None) => write!(f, "no response"),
        }
    }
}

/// The URL probed for `slot`.
pub fn url(cfg: &Config, slot: &Slot) -> String {
    format!("http://{}:{}{}", cfg.nginx.host, slot.port, cfg.health.path)
}

/// An HTTP agent for loopback probes: no proxy, statuses are data, every timeout set.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(timeout))
        .timeout_connect(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .timeout_recv_body(Some(timeout))
        .max_idle_connections(0)
        .build()
        .into()
}

/// Probe `slot` once.
pub fn probe(agent: &ureq::Agent, cfg: &Config, slot: &Slot) -> Probe {
    let t0 = Instant::now();
    match agent.get(url(cfg, slot)).call() {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let body = resp
                .body_mut()
                .with_config()
                .limit(64 * 1024)
                .read_to_string()
                .unwrap_or_default();
            Probe {
                status: Some(status),
                body,
                error: None,
                latency: t0.elapsed(),
            }
        }
        Err(e) => Probe {
            status: None,
            body: String::new(),
            error: Some(e.to_string()),
            latency: t0.elapsed(),
        },
    }
}

/// `Ok` if the probe counts as healthy under `cfg.health`, else why not.
pub fn judge(cfg: &Config, p: &Probe) -> std::result::Result<(), String> {
    let Some(status) = p.status else {
        return Err(p.to_string());
    };
    let status_ok = match cfg.health.status {
        Some(want) => status == want,
        None => (200..300).contains(&status),
    };
    if !status_ok {
        return Err(format!("unexpected status: {p}"));
    }
    match &cfg.health.body {
        Some(want) if !p.body.contains(want.as_str()) => Err(format!("body lacks {want:?}: {p}")),
        Some(_) => Ok(()),
        None => match serde_json::from_str::<serde_json::Value>(&p.body) {
            Ok(serde_json::Value::Object(m)) => match m.get("status") {
                Some(serde_json::Value::String(s)) if s == "UP" => Ok(()),
                Some(other) => Err(format!("status is {other}, not \"UP\": {p}")),
                None => Ok(()),
            },
            _ => Ok(()),
        },
    }
}

/// One probe and its verdict.
pub fn check_once(cfg: &Config, slot: &Slot) -> (Probe, std::result::Result<(), String>) {
    let p = probe(&agent(cfg.health.timeout), cfg, slot);
    let v = judge(cfg, &p);
    (p, v)
}

/// Poll `slot` every `health.interval` until it is healthy (returns how long that took), its
/// process exits (fails at once with the exit status and the log tail), or `health.deadline`
/// passes (fails with the last status and body). While nothing listens on the port yet, the
/// next probe goes out as soon as the port opens rather than at the next interval.
///
/// A passing probe counts only when the slot's own app (its pid file's process or a
/// descendant) holds the port: a stranger that answers fails at once with its pid and command
/// line. A slot with no running app of nonstop's fails at once too (a stale pid file says why:
/// exited, from before a reboot). `force` polls the port without either proof.
pub fn wait_healthy(
    sup: &dyn crate::supervisor::Supervisor,
    cfg: &Config,
    slot: &Slot,
    force: bool,
) -> Result<Duration> {
    let pid_path = cfg.pid_file(slot);
    let watched = match sup.app(cfg, slot) {
        process::SlotProcess::Running(pf) => {
            log::info!(
                "waiting for slot {} (pid {}, port {}) to pass {} (deadline {:?})",
                slot.name,
                pf.pid,
                slot.port,
                url(cfg, slot),
                cfg.health.deadline
            );
            Some(pf)
        }
        _ if force => {
            log::warn!(
                "--force: polling {} without watching or proving a process",
                url(cfg, slot)
            );
            None
        }
        process::SlotProcess::None => {
            return Err(Error::health(&slot.name, Unhealthy::NotStarted, format!(
                "slot {} runs no app started by nonstop (no pid file {}): start it first (the bundle's `bin/start --slot {}`, or `nonstop deploy`), or give --force to poll its port anyway",
                slot.name,
                pid_path.display(),
                slot.name
            )))
        }
        process::SlotProcess::Stale(pf, process::Stale::Exited) => {
            return Err(died(sup, cfg, slot, pf.pid, None))
        }
        process::SlotProcess::Stale(pf, why) => {
            return Err(Error::health(&slot.name, Unhealthy::Stale, format!(
                "slot {} runs no app: its pid file {} (pid {}, started {}) is stale: {why}; run start",
                slot.name,
                pid_path.display(),
                pf.pid,
                pf.started_at
            )))
        }
    };
    let agent = agent(cfg.health.timeout);
    let t0 = Instant::now();
    let mut tries = 0u32;
    // A steady 404: since when, and what it likely means (worked out once, when it is needed).
    let mut not_found_since: Option<Instant> = None;
    let mut not_found: Option<NotFound> = None;
    let mut progress =
        crate::progress::Progress::new(format!("slot {} health", slot.name), cfg.health.deadline);
    loop {
        interrupt::check("health check")?;
        let round = Instant::now();
        tries += 1;
        let p = probe(&agent, cfg, slot);
        let mut verdict = judge(cfg, &p);
        if verdict.is_ok() && !force {
            match crate::supervisor::answerer(sup, cfg, slot) {
                process::Answerer::App { .. } => {}
                // The app went away between the probe and now: the exit check below says so.
                process::Answerer::NoApp(_) | process::Answerer::NotListening(_) => {
                    verdict = Err("answered, but the slot's app no longer holds the port".into())
                }
                stranger => {
                    progress.finish();
                    let why = stranger
                        .proven(&slot.name, slot.port)
                        .err()
                        .unwrap_or_default();
                    return Err(Error::health(&slot.name, Unhealthy::Stranger, format!(
                        "slot {} answers health, but not from its app: {why}; give --force if that process is the app",
                        slot.name
                    )));
                }
            }
        }
        // 404 from the slot's own app: the path does not exist there (yet, or ever).
        let own_404 = p.status == Some(404)
            && verdict.is_err()
            && (force
                || matches!(
                    crate::supervisor::answerer(sup, cfg, slot),
                    process::Answerer::App { .. }
                ));
        if !own_404 {
            not_found_since = None;
        } else {
            let since = *not_found_since.get_or_insert_with(Instant::now);
            let steady = since.elapsed();
            if steady >= NOT_FOUND_HINT && not_found.is_none() {
                let nf = NotFound::of(cfg, slot, watched.as_ref().map(|pf| pf.jar.as_path()));
                progress.finish();
                log::warn!(
                    "slot {} has answered HTTP 404 at {} for {}: {}",
                    slot.name,
                    cfg.health.path,
                    crate::log::human(steady),
                    nf.hint
                );
                not_found = Some(nf);
            }
            // A Spring Boot app has all its routes once it answers at all: this 404 stays.
            if let Some(nf) = not_found.as_ref().filter(|nf| nf.stays && !force) {
                if steady >= NOT_FOUND_FAIL {
                    progress.finish();
                    return Err(Error::health(&slot.name, Unhealthy::Steady404, format!(
                        "slot {} answers HTTP 404 at {} from its own app for {} ({tries} probes), and a Spring Boot app that answers has all its routes, so it stays 404: {}; not waiting out health.deadline {}",
                        slot.name,
                        cfg.health.path,
                        crate::log::human(steady),
                        nf.hint,
                        crate::log::human(cfg.health.deadline)
                    )));
                }
            }
        }
        match verdict {
            Ok(()) => {
                progress.finish();
                log::info!(
                    "slot {} healthy after {} ({tries} probes, last took {})",
                    slot.name,
                    crate::log::human(t0.elapsed()),
                    crate::log::human(p.latency)
                );
                if let Some(pf) = &watched {
                    crate::cds::healthy(cfg, pf);
                }
                return Ok(t0.elapsed());
            }
            Err(why) => {
                log::debug!("probe {tries}: {why}");
                progress.update(&format!("probe {tries}: {why}"));
            }
        }
        if let Some(pf) = &watched {
            if !pf.running() {
                progress.finish();
                return Err(died(sup, cfg, slot, pf.pid, Some(t0.elapsed())));
            }
        }
        if t0.elapsed() >= cfg.health.deadline {
            let hint = match (&not_found, not_found_since) {
                (Some(nf), Some(_)) => format!("; {}", nf.hint),
                _ => String::new(),
            };
            return Err(Error::health(
                &slot.name,
                Unhealthy::Deadline,
                format!(
                    "slot {} not healthy after {} ({tries} probes); last: {p}{hint}",
                    slot.name,
                    crate::log::human(t0.elapsed())
                ),
            ));
        }
        let next = round + cfg.health.interval;
        if p.status.is_none() && !process::port_in_use(slot.port) {
            // Nothing listens yet: watch the port (a cheap kernel query) and probe as soon as
            // it opens, instead of sleeping out the interval after the app became ready.
            while Instant::now() < next && !process::port_in_use(slot.port) {
                interrupt::sleep(PORT_WATCH, "health check")?;
            }
        } else {
            interrupt::sleep(
                next.saturating_duration_since(Instant::now()),
                "health check",
            )?;
        }
    }
}

/// How often `wait_healthy` looks for the slot's port to open while nothing listens on it.
const PORT_WATCH: Duration = Duration::from_millis(20);
/// A 404 from the slot's own app this long says what is likely wrong (a warning)...
const NOT_FOUND_HINT: Duration = Duration::from_secs(5);
/// ...and this long fails the wait, for a Spring Boot app (whose routes are all in place once
/// it answers: its 404 will not turn into a 200).
const NOT_FOUND_FAIL: Duration = Duration::from_secs(10);

/// What a steady 404 at `health.path` likely means, from the slot's jar.
struct NotFound {
    /// It is a Spring Boot jar: the 404 stays, and the wait may end early.
    stays: bool,
    hint: String,
}

impl NotFound {
    fn of(cfg: &Config, slot: &Slot, jar: Option<&std::path::Path>) -> NotFound {
        let path = cfg.health.path.as_str();
        let read = jar.and_then(|j| crate::jar::read(j).ok());
        let probes = read.as_ref().and_then(|j| {
            crate::jar::probes(
                j,
                &cfg.app.java_opts,
                &cfg.app.args,
                &cfg.app.env,
                &[slot.profile.as_str()],
            )
        });
        let bare = path.split('?').next().unwrap_or("").trim_end_matches('/');
        let probe_path =
            ["/actuator/health/readiness", "/actuator/health/liveness"].contains(&bare);
        let hint = match &probes {
            Some(p) if probe_path && !p.served() => format!(
                "{}: set {}=true (application.properties, or -D{}=true in app.java_opts), or use health.path: /actuator/health",
                p.why(),
                crate::jar::PROBES,
                crate::jar::PROBES
            ),
            Some(p) if probe_path => format!(
                "{}, yet it answers 404: is spring-boot-starter-actuator in the jar, and are Actuator's endpoints under /actuator (management.endpoints.web.base-path) on this port (management.server.port)?",
                p.why()
            ),
            Some(p) => format!(
                "Spring Boot {} has no {path}: check health.path (Actuator's are /actuator/health and /actuator/health/readiness)",
                p.version
            ),
            None => format!("the app has no {path}: check health.path"),
        };
        NotFound {
            stays: probes.is_some(),
            hint,
        }
    }
}

/// The error for an app that exited: its status and its log tail, from its supervisor.
/// `after`: how long into the health wait it exited; `None` when it had exited before.
fn died(
    sup: &dyn crate::supervisor::Supervisor,
    cfg: &Config,
    slot: &Slot,
    pid: i32,
    after: Option<Duration>,
) -> crate::error::Error {
    // The supervisor records the exit right after the app exits; give it a moment.
    let mut rec = None;
    for _ in 0..50 {
        rec = sup.last_exit(cfg, slot).filter(|r| r.pid == pid);
        if rec.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let hint = sup.log_hint(cfg, slot);
    let lines = sup.log_tail(cfg, slot, 30);
    log::error!("last {} lines ({hint}):", lines.len());
    for l in &lines {
        log::error!("| {l}");
    }
    let status = rec.as_ref().map_or(
        "an exit status nobody recorded (its supervisor was killed too, or the host rebooted)"
            .to_string(),
        |r| r.to_string(),
    );
    let when = match (after, &rec) {
        (Some(d), _) => format!("after {} while waiting for health", crate::log::human(d)),
        (None, Some(r)) => format!("at {}, before the health check began", r.at),
        (None, None) => "before the health check began".into(),
    };
    Error::health(
        &slot.name,
        Unhealthy::Exited,
        format!(
            "slot {} app (pid {pid}) exited with {status} {when}; {hint}",
            slot.name
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        crate::config::parse(
            &format!("app:\n  name: a\n{extra}"),
            std::path::Path::new("/x/n.yml"),
        )
        .unwrap()
    }
    fn probe(status: u16, body: &str) -> Probe {
        Probe {
            status: Some(status),
            body: body.into(),
            error: None,
            latency: Duration::ZERO,
        }
    }

    #[test]
    fn judges_status_and_body() {
        let c = cfg("");
        assert!(judge(&c, &probe(200, r#"{"status":"UP"}"#)).is_ok());
        assert!(judge(&c, &probe(200, r#"{"status":"DOWN"}"#)).is_err());
        assert!(judge(&c, &probe(204, "")).is_ok());
        assert!(judge(&c, &probe(503, r#"{"status":"UP"}"#)).is_err());
        let c = cfg("health:\n  status: 200\n  body: real\n");
        assert!(judge(&c, &probe(200, "real2")).is_ok());
        assert!(judge(&c, &probe(201, "real2")).is_err());
        assert!(judge(&c, &probe(200, "fake")).is_err());
    }
}

//! Which slot answered a request, for a canary: the figures of the canary slot and of the old
//! slots over the same window, in each traffic mode.
//!
//! - nginx-reload mode ([`Source::Log`]): nginx's access log, where `$upstream_addr` names the
//!   port of the slot that answered; percentiles as in a blue/green watch.
//! - nftables mode ([`Source::Actuator`]): nginx proxies to the front port and the table
//!   spreads new connections at random, so nothing in nginx's log names the slot. Each slot's
//!   own counters are read instead, straight from its port: Spring Boot Actuator's
//!   `http.server.requests` (`/actuator/metrics/http.server.requests`: COUNT and TOTAL_TIME,
//!   and the COUNT of `?tag=outcome:SERVER_ERROR`), once when the window opens and at every
//!   judgement (Actuator counts these reads too: two per read, taken off the count). The
//!   difference gives requests, 5xx and the mean latency (no percentiles:
//!   the p99 limit applies to the mean), and leaves out nginx's own 502/504 (a request that
//!   reached no app is counted by no app). The app must expose the endpoint
//!   (`management.endpoints.web.exposure.include=health,metrics`); a canary checks that on
//!   every slot before any traffic moves.

use super::figures::Figures;
use super::sample::{self, Sample};
use super::tail::{LogEvent, Tail};
use crate::config::{Config, Slot};
use crate::error::{failed, Result};
use crate::traffic::Via;
use std::path::PathBuf;

/// Where a canary's per-slot figures come from (see the module doc).
pub enum Source {
    Log {
        log: PathBuf,
        tail: Tail,
        canary_port: u16,
        old_ports: Vec<u16>,
        canary: Vec<Sample>,
        old: Vec<Sample>,
        unparsed: u64,
    },
    Actuator {
        agent: ureq::Agent,
        /// `http://HOST:` (the port follows).
        host: String,
        /// `/actuator` (from `health.path`).
        base: String,
        canary_port: u16,
        old_ports: Vec<u16>,
        /// Each port's counters when the window opened.
        start: Vec<(u16, Counters)>,
        /// Reads of every port's counters since the window opened (its own read included):
        /// each is two requests the app counts too, taken off the request count.
        reads: u64,
    },
}

/// One slot's `http.server.requests` counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    pub count: f64,
    pub errors: f64,
    pub total_s: f64,
}

impl Source {
    /// The source for `cfg`'s traffic mode; in nftables mode every slot's metrics endpoint must
    /// answer first.
    pub fn open(cfg: &Config, canary: &Slot, old: &[&Slot]) -> Result<Source> {
        let old_ports: Vec<u16> = old.iter().map(|s| s.port).collect();
        match cfg.traffic.via {
            Via::NginxReload => Ok(Source::Log {
                log: cfg.watch.log.clone(),
                tail: Tail::at_end(&cfg.watch.log),
                canary_port: canary.port,
                old_ports,
                canary: vec![],
                old: vec![],
                unparsed: 0,
            }),
            Via::Nftables => {
                let s = Source::Actuator {
                    agent: crate::health::agent(cfg.health.timeout),
                    host: format!("http://{}:", cfg.nginx.host),
                    base: actuator_base(&cfg.health.path),
                    canary_port: canary.port,
                    old_ports,
                    start: vec![],
                    reads: 0,
                };
                if let Source::Actuator {
                    agent, host, base, ..
                } = &s
                {
                    for slot in std::iter::once(canary).chain(old.iter().copied()) {
                        let url = format!("{host}{}{base}/metrics", slot.port);
                        let st = agent
                            .get(&url)
                            .call()
                            .map(|r| r.status().as_u16())
                            .map_err(|e| e.to_string());
                        if st != Ok(200) {
                            return Err(failed(format!(
                                "a canary in nftables mode judges each slot by its own Actuator counters, and slot {} does not serve them ({url}: {}): expose them with management.endpoints.web.exposure.include=health,metrics; no traffic moved",
                                slot.name,
                                st.map_or_else(|e| e, |c| format!("HTTP {c}"))
                            )));
                        }
                    }
                }
                Ok(s)
            }
        }
    }

    /// A new window opens now: what was counted before is left out.
    pub fn begin(&mut self) {
        let ports = match self {
            Source::Log {
                tail, canary, old, ..
            } => {
                tail.read();
                canary.clear();
                old.clear();
                return;
            }
            Source::Actuator {
                canary_port,
                old_ports,
                ..
            } => std::iter::once(*canary_port)
                .chain(old_ports.iter().copied())
                .collect::<Vec<u16>>(),
        };
        let now: Vec<(u16, Counters)> = ports
            .into_iter()
            .map(|p| (p, self.counters(p).unwrap_or_default()))
            .collect();
        if let Source::Actuator { start, reads, .. } = self {
            *start = now;
            *reads = 1;
        }
    }

    /// The canary's figures and the old slots' since [`Source::begin`].
    pub fn read(&mut self) -> (Figures, Figures) {
        match self {
            Source::Log {
                log,
                tail,
                canary_port,
                old_ports,
                canary,
                old,
                unparsed,
            } => {
                for ev in tail.read() {
                    match ev {
                        LogEvent::Line(l) => match sample::parse(&l) {
                            Ok(s) if s.upstream_port == Some(*canary_port) => canary.push(s),
                            Ok(s) if s.upstream_port.is_some_and(|p| old_ports.contains(&p)) => {
                                old.push(s)
                            }
                            Ok(_) => {}
                            Err(_) => *unparsed += 1,
                        },
                        other => log::info!(
                            "watch: {} was {}: reading on from its start",
                            log.display(),
                            if other == LogEvent::Rotated {
                                "rotated (a new file)"
                            } else {
                                "truncated"
                            }
                        ),
                    }
                }
                (Figures::of(canary.iter()), Figures::of(old.iter()))
            }
            Source::Actuator {
                canary_port,
                old_ports,
                start,
                reads,
                ..
            } => {
                // nonstop's own reads so far: the app counts each (Actuator records a request
                // when it ends, so this read's own two are not in what it returns).
                let own = 2.0 * *reads as f64;
                *reads += 1;
                let (canary_port, old_ports, start) =
                    (*canary_port, old_ports.clone(), start.clone());
                let delta = |s: &Source, p: u16| -> Counters {
                    let was = start
                        .iter()
                        .find(|(q, _)| *q == p)
                        .map(|(_, c)| *c)
                        .unwrap_or_default();
                    match s.counters(p) {
                        Ok(now) => Counters {
                            count: (now.count - was.count - own).max(0.0),
                            errors: (now.errors - was.errors).max(0.0),
                            total_s: (now.total_s - was.total_s).max(0.0),
                        },
                        Err(e) => {
                            log::warn!("watch: port {p}'s Actuator counters: {e}");
                            Counters::default()
                        }
                    }
                };
                let c = delta(self, canary_port);
                let mut o = Counters::default();
                for p in old_ports {
                    let d = delta(self, p);
                    o.count += d.count;
                    o.errors += d.errors;
                    o.total_s += d.total_s;
                }
                (figures_of(c), figures_of(o))
            }
        }
    }

    /// Log lines that were not in the nonstop format (reload mode).
    pub fn unparsed(&self) -> u64 {
        match self {
            Source::Log { unparsed, .. } => *unparsed,
            Source::Actuator { .. } => 0,
        }
    }

    /// `port`'s counters now (nftables mode).
    fn counters(&self, port: u16) -> std::result::Result<Counters, String> {
        let Source::Actuator {
            agent, host, base, ..
        } = self
        else {
            return Ok(Counters::default());
        };
        let url = format!("{host}{port}{base}/metrics/http.server.requests");
        let all = measurements(agent, &url)?;
        let errors = measurements(agent, &format!("{url}?tag=outcome:SERVER_ERROR"))?;
        Ok(Counters {
            count: stat(&all, "COUNT"),
            errors: stat(&errors, "COUNT"),
            total_s: stat(&all, "TOTAL_TIME"),
        })
    }
}

fn figures_of(c: Counters) -> Figures {
    let mean_ms = if c.count > 0.0 {
        (c.total_s * 1000.0 / c.count).round() as u64
    } else {
        0
    };
    Figures::of_counts(c.count.round() as u64, c.errors.round() as u64, mean_ms)
}

/// `/actuator` from `health.path` (`/actuator/health/readiness`; `/manage/health` gives
/// `/manage`), else `/actuator`.
pub fn actuator_base(health_path: &str) -> String {
    match health_path.find("/health") {
        Some(i) if i > 0 => health_path[..i].to_string(),
        _ => "/actuator".into(),
    }
}

/// A metric's measurements (`[]` when the metric has no meter yet: Actuator's 404).
fn measurements(agent: &ureq::Agent, url: &str) -> std::result::Result<Vec<(String, f64)>, String> {
    let mut r = agent.get(url).call().map_err(|e| e.to_string())?;
    match r.status().as_u16() {
        200 => {}
        404 => return Ok(vec![]),
        s => return Err(format!("{url}: HTTP {s}")),
    }
    let body = r
        .body_mut()
        .with_config()
        .limit(256 * 1024)
        .read_to_string()
        .map_err(|e| e.to_string())?;
    parse_measurements(&body).ok_or_else(|| format!("{url}: not Actuator's metric JSON"))
}

/// `{"name":…,"measurements":[{"statistic":"COUNT","value":3.0},…]}` → (statistic, value).
pub fn parse_measurements(body: &str) -> Option<Vec<(String, f64)>> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v.get("measurements")?
        .as_array()?
        .iter()
        .map(|m| {
            Some((
                m.get("statistic")?.as_str()?.to_string(),
                m.get("value")?.as_f64()?,
            ))
        })
        .collect()
}

fn stat(m: &[(String, f64)], name: &str) -> f64 {
    m.iter().find(|(n, _)| n == name).map_or(0.0, |(_, v)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_actuators_metric_json() {
        let body = r#"{"name":"http.server.requests","baseUnit":"seconds","measurements":[{"statistic":"COUNT","value":120.0},{"statistic":"TOTAL_TIME","value":1.5},{"statistic":"MAX","value":0.25}],"availableTags":[{"tag":"outcome","values":["SUCCESS"]}]}"#;
        let m = parse_measurements(body).unwrap();
        assert_eq!(stat(&m, "COUNT"), 120.0);
        assert_eq!(stat(&m, "TOTAL_TIME"), 1.5);
        assert_eq!(stat(&m, "nothing"), 0.0);
        assert_eq!(parse_measurements("<html>"), None);
        let f = figures_of(Counters {
            count: 120.0,
            errors: 6.0,
            total_s: 1.5,
        });
        assert_eq!(
            (f.requests, f.errors, f.p99_ms, f.mean_only),
            (120, 6, 13, true)
        );
        assert_eq!(f.describe(), "5xx 5.0 % over 120 requests, mean 13 ms");
        assert_eq!(actuator_base("/actuator/health/readiness"), "/actuator");
        assert_eq!(actuator_base("/manage/health"), "/manage");
        assert_eq!(actuator_base("/ping"), "/actuator");
    }
}

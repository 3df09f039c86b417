//! `watch.probes`: the paths a team names as its smoke test, sent (GET) straight to the new
//! slot's port every `watch.interval` while it is watched. A probe that gets no answer, or an
//! answer of 400 or above, is a breach ([`super::verdict::Breach::Probe`]) whatever the
//! traffic: it catches a broken endpoint that live traffic has not reached yet. The probes
//! bypass nginx, so they are not in the access log nonstop judges.

use crate::config::{Config, Slot};

/// The first of `cfg.watch.probes` that fails on `slot`: (path, what it got).
pub fn first_failure(cfg: &Config, slot: &Slot) -> Option<(String, String)> {
    if cfg.watch.probes.is_empty() {
        return None;
    }
    let agent = crate::health::agent(cfg.health.timeout);
    for path in &cfg.watch.probes {
        let url = format!("http://{}:{}{path}", cfg.nginx.host, slot.port);
        let got = match agent.get(&url).call() {
            Ok(r) if r.status().as_u16() < 400 => continue,
            Ok(r) => format!("HTTP {}", r.status().as_u16()),
            Err(e) => format!("no answer ({e})"),
        };
        return Some((path.clone(), got));
    }
    None
}

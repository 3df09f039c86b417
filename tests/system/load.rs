//! Probes from this machine to a host's nginx (http://HOST_IP/ on the ec2host bridge), bounded
//! in count and time: one GET on a fresh connection, and probes every 100 ms that record each
//! answer's status and time; and the keep-alive GET + POST load, tests/common's
//! [`crate::common::Traffic`] (each request counted by kind, raw and after the retry a browser
//! would make) with tighter bounds. Every request goes through the one strict client.

use crate::common::{Client, Load, Traffic};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// `conns` keep-alive connections to `addr`, `pause` between a connection's requests, each
/// stopping by itself after 180 s or 200,000 requests.
pub fn keep_alive(addr: SocketAddr, conns: usize, pause: Duration) -> Load {
    Traffic::start_within(addr, "/", conns, pause, Duration::from_secs(180), 200_000)
}

/// One GET / on a fresh connection with `timeout` for connect, write and read, through the
/// one strict client (tests/common/http.rs): the status of a whole response (0 when none
/// came, whatever the kind) and the body.
pub fn get(addr: SocketAddr, timeout: Duration) -> (u16, String) {
    Client::with_timeout(addr, timeout)
        .request("GET", "/", b"")
        .unwrap_or((0, String::new()))
}

/// One probe's answer: when (since the probes started), the status (0: none), the version.
#[derive(Debug, Clone)]
pub struct Hit {
    pub at: Duration,
    pub status: u16,
    pub version: String,
}

/// Probes every `every` on fresh connections, in a thread, for `total` (bounded by itself).
pub struct Probes {
    handle: std::thread::JoinHandle<Vec<Hit>>,
}

impl Probes {
    pub fn start(addr: SocketAddr, every: Duration, total: Duration) -> Probes {
        let t0 = Instant::now();
        let handle = std::thread::spawn(move || {
            let mut hits = vec![];
            let mut next = t0;
            while t0.elapsed() < total {
                let (status, body) = get(addr, Duration::from_secs(1));
                hits.push(Hit {
                    at: t0.elapsed(),
                    status,
                    version: body.split_whitespace().next().unwrap_or("").into(),
                });
                next += every;
                if let Some(d) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                } else {
                    next = Instant::now();
                }
            }
            hits
        });
        Probes { handle }
    }

    /// Wait for the probes to end (after `total`).
    pub fn join(self) -> Vec<Hit> {
        self.handle.join().unwrap()
    }
}

/// "N probes over T s: K x 200, M others (statuses {..}), first 200 at .., longest run of
/// non-200 .. ms".
pub fn describe(hits: &[Hit]) -> String {
    let ok = hits.iter().filter(|h| h.status == 200).count();
    let mut others: BTreeMap<u16, usize> = BTreeMap::new();
    for h in hits.iter().filter(|h| h.status != 200) {
        *others.entry(h.status).or_default() += 1;
    }
    format!(
        "{} probes over {:.1?}: {ok} x 200, {} others {others:?} (0 = no HTTP answer); longest outage {:?}",
        hits.len(),
        hits.last().map(|h| h.at).unwrap_or_default(),
        hits.len() - ok,
        longest_outage(hits),
    )
}

/// The longest time from a non-200 answer to the next 200 (or the last probe).
pub fn longest_outage(hits: &[Hit]) -> Duration {
    let mut worst = Duration::ZERO;
    let mut since: Option<Duration> = None;
    for h in hits {
        match (h.status == 200, since) {
            (false, None) => since = Some(h.at),
            (true, Some(s)) => {
                worst = worst.max(h.at - s);
                since = None;
            }
            _ => {}
        }
    }
    if let (Some(s), Some(last)) = (since, hits.last()) {
        worst = worst.max(last.at - s);
    }
    worst
}

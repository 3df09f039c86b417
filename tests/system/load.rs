//! Load from this machine to a host's nginx (http://HOST_IP/ on the ec2host bridge), bounded in
//! count and time: keep-alive GET + POST loops that count failures raw and after one retry of a
//! request that failed on a reused connection (the `Client` of tests/common), and probes on a
//! fresh connection every 100 ms that record each answer's status and time.

use crate::common::Client;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Any one load loop stops by itself after this long or this many requests.
const MAX_TIME: Duration = Duration::from_secs(180);
const MAX_REQUESTS: usize = 200_000;

/// What the load saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub requests: usize,
    pub ok: usize,
    /// Failures a client without retry sees.
    pub raw_failed: usize,
    /// Failures left after one retry of a request that failed on a reused connection.
    pub failed: usize,
    /// Body's first word (the app version) -> 200 answers.
    pub versions: BTreeMap<String, usize>,
    /// The first few failures, for the assertion message.
    pub errors: Vec<String>,
    pub took: Duration,
}

impl Tally {
    pub fn summary(&self) -> String {
        format!(
            "{} requests in {:.1?}, {} failed ({} raw failures before one retry on a reused keep-alive connection); versions {:?}",
            self.requests, self.took, self.failed, self.raw_failed, self.versions
        )
    }
}

/// Client threads sending GET / and POST / through the host's nginx until [`Load::finish`].
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Tally>>,
    t0: Instant,
}

impl Load {
    /// `conns` keep-alive connections, `pause` between a connection's requests.
    pub fn start(addr: SocketAddr, conns: usize, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..conns)
            .map(|i| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut c = Client::new(addr);
                    let mut t = Tally::default();
                    let t0 = Instant::now();
                    while !stop.load(Ordering::Relaxed)
                        && t0.elapsed() < MAX_TIME
                        && t.requests < MAX_REQUESTS
                    {
                        let (method, body): (&str, &[u8]) = if (t.requests + i) % 4 == 0 {
                            ("POST", b"order=42&qty=1")
                        } else {
                            ("GET", b"")
                        };
                        t.requests += 1;
                        let mut r = c.request(method, "/", body);
                        if let Err(f) = &r {
                            t.raw_failed += 1;
                            if f.reused {
                                r = c.request(method, "/", body);
                            }
                        } else if !matches!(r, Ok((200, _))) {
                            t.raw_failed += 1;
                        }
                        match r {
                            Ok((200, text)) => {
                                t.ok += 1;
                                let v = text.split_whitespace().next().unwrap_or("").to_string();
                                *t.versions.entry(v).or_default() += 1;
                            }
                            Ok((s, text)) => {
                                t.failed += 1;
                                if t.errors.len() < 5 {
                                    t.errors.push(format!("HTTP {s}: {}", text.trim()));
                                }
                            }
                            Err(f) => {
                                t.failed += 1;
                                if t.errors.len() < 5 {
                                    t.errors.push(f.err);
                                }
                            }
                        }
                        std::thread::sleep(pause);
                    }
                    t
                })
            })
            .collect();
        Load {
            stop,
            threads,
            t0: Instant::now(),
        }
    }

    /// Stop, wait for the requests in flight, sum what every connection saw.
    pub fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Tally::default();
        for t in self.threads {
            let t = t.join().unwrap();
            all.requests += t.requests;
            all.ok += t.ok;
            all.raw_failed += t.raw_failed;
            all.failed += t.failed;
            for (k, v) in t.versions {
                *all.versions.entry(k).or_default() += v;
            }
            all.errors.extend(t.errors);
        }
        all.errors.truncate(10);
        all.took = self.t0.elapsed();
        all
    }
}

/// One GET / on a fresh connection with `timeout` for connect, write and read: the status
/// (0 when no HTTP answer came) and the body.
pub fn get(addr: SocketAddr, timeout: Duration) -> (u16, String) {
    let once = || -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf)?;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        Ok((status, body))
    };
    once().unwrap_or((0, String::new()))
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

//! The recording load generator: `conns` threads, each with one keep-alive HTTP/1.1 connection
//! to nginx (the harness [`Client`]), sending GETs and POSTs back to back (with `pause` between
//! them) until stopped, and recording every request: when it started, how long it took, its
//! final status or error, and whether it failed raw (as a client without retry would see it)
//! and was retried once because it failed on a reused keep-alive connection.

use crate::common::Client;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Hard bounds per connection, whatever the caller does.
const MAX_RUN: Duration = Duration::from_secs(180);
const MAX_REQUESTS: usize = 2_000_000;

/// Which app version answered a successful request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// The version being replaced.
    Old,
    /// The version being deployed.
    New,
    /// Not a 200, or a body that names neither.
    Other,
}

/// One logical request (a retry is part of the request it retries).
#[derive(Debug, Clone)]
pub struct Rec {
    /// Offset of the first attempt's start from the load's `t0`.
    pub start: Duration,
    /// First attempt's start to the final answer (including a retry).
    pub latency: Duration,
    /// Final HTTP status; 0 when the final attempt got no response.
    pub status: u16,
    /// The first attempt failed (transport error or a status other than 200).
    pub raw_failed: bool,
    /// The first attempt failed on a reused keep-alive connection and was sent again.
    pub retried: bool,
    pub served: Served,
    /// The final attempt's transport error, or the raw one when a retry succeeded.
    pub error: Option<String>,
}

impl Rec {
    /// Failed even after the one retry.
    pub fn failed(&self) -> bool {
        self.status != 200
    }
}

/// Load running in the background.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Rec>>>,
}

impl Load {
    /// Start `conns` connections to `addr` requesting `path`. Responses whose first word is
    /// `new_version` count as [`Served::New`], any other `v…` as [`Served::Old`].
    pub fn start(
        addr: SocketAddr,
        path: &'static str,
        conns: usize,
        pause: Duration,
        t0: Instant,
        new_version: &'static str,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..conns)
            .map(|i| {
                let stop = stop.clone();
                std::thread::spawn(move || run_conn(addr, path, i, pause, t0, new_version, &stop))
            })
            .collect();
        Load { stop, threads }
    }

    /// Stop and return every record, ordered by start.
    pub fn finish(self) -> Vec<Rec> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all: Vec<Rec> = self
            .threads
            .into_iter()
            .flat_map(|t| t.join().expect("load thread panicked"))
            .collect();
        all.sort_by_key(|r| r.start);
        all
    }
}

fn run_conn(
    addr: SocketAddr,
    path: &str,
    i: usize,
    pause: Duration,
    t0: Instant,
    new_version: &str,
    stop: &AtomicBool,
) -> Vec<Rec> {
    let mut c = Client::new(addr);
    let mut out = Vec::with_capacity(65_536);
    let began = Instant::now();
    let mut n = i;
    while !stop.load(Ordering::Relaxed) && began.elapsed() < MAX_RUN && out.len() < MAX_REQUESTS {
        n += 1;
        // The harness's mix: every fourth request is a small form POST.
        let (method, body): (&str, &[u8]) = if n % 4 == 0 {
            ("POST", b"order=42&qty=1")
        } else {
            ("GET", b"")
        };
        let s = Instant::now();
        let mut r = c.request(method, path, body);
        let mut raw_error = None;
        let mut retried = false;
        if let Err(f) = &r {
            raw_error = Some(f.err.clone());
            if f.reused {
                retried = true;
                r = c.request(method, path, body);
            }
        }
        let latency = s.elapsed();
        let (status, served, error) = match r {
            Ok((status, text)) => {
                let served = match text.split_whitespace().next() {
                    _ if status != 200 => Served::Other,
                    Some(v) if v == new_version => Served::New,
                    Some(v) if v.starts_with('v') => Served::Old,
                    _ => Served::Other,
                };
                (status, served, raw_error)
            }
            Err(f) => (0, Served::Other, Some(f.err)),
        };
        out.push(Rec {
            start: s.duration_since(t0),
            latency,
            status,
            raw_failed: retried || status != 200,
            retried,
            served,
            error,
        });
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    out
}

//! The recording load generator. Three kinds of client, each on its own threads ([`Client`] is
//! the harness's keep-alive HTTP/1.1 client), sending until stopped and recording every
//! request: when it started, how long it took, its final status or error, and which version
//! (and port) answered.
//!
//! - [`ClientKind::Retrying`]: `conns` keep-alive connections, GETs and every fourth a POST, a
//!   request that failed on a reused keep-alive connection is sent once more (as browsers and
//!   most HTTP clients do); a record says whether it failed raw and whether it was retried.
//! - [`ClientKind::NeverRetry`]: `never_retry` more keep-alive connections with the same mix,
//!   behaving as Go's `net/http` does for a POST: a connection the server closed while it was
//!   idle is dropped before use (Go's read loop notices the EOF and takes it out of the pool),
//!   and a request that fails is final, never sent again (stricter than Go for a GET, which Go
//!   retries once on a reused connection).
//! - [`ClientKind::Slow`]: `slow` senders, each keeping one `GET …/slow?ms=N` in flight on a
//!   fresh connection (requests that take N ms, for the balanced rolls: slots leave rotation
//!   and drain while they run); a failure is final.

use crate::common::Client;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Hard bounds per connection, whatever the caller does.
const MAX_RUN: Duration = Duration::from_secs(240);
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

/// Which client sent a request (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    Retrying,
    NeverRetry,
    Slow,
}

/// One logical request (a retry is part of the request it retries).
#[derive(Debug, Clone)]
pub struct Rec {
    pub client: ClientKind,
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
    /// The never-retry client found its idle connection closed by the server before this
    /// request and sent it on a new one (as Go does).
    pub after_server_close: bool,
    /// The app's port the answer names (its body's last word), when it answered 200.
    pub port: Option<u16>,
    /// The final attempt's transport error, or the raw one when a retry succeeded.
    pub error: Option<String>,
}

impl Rec {
    /// Failed even after the one retry (or, for the clients that never retry, failed).
    pub fn failed(&self) -> bool {
        self.status != 200
    }
}

/// What to send.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// Keep-alive connections of the retrying client.
    pub conns: usize,
    /// Keep-alive connections of the client that never retries.
    pub never_retry: usize,
    /// Pause between a response and the next request on a keep-alive connection.
    pub pause: Duration,
    /// Senders of slow requests (0: none) and how long each request takes in the app.
    pub slow: usize,
    pub slow_ms: u64,
    /// The slow senders' first requests are spread over this much time from the start, so
    /// that all of them are in flight when the deploy starts and they end at different times.
    pub slow_ramp: Duration,
}

/// Load running in the background.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Rec>>>,
}

impl Load {
    /// Start the `mix` to `addr` requesting `path` (slow requests: `{path}slow?ms=N`).
    /// Responses whose first word is `new_version` count as [`Served::New`], any other `v…` as
    /// [`Served::Old`].
    pub fn start(
        addr: SocketAddr,
        path: &'static str,
        mix: Mix,
        t0: Instant,
        new_version: &'static str,
    ) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let slow_path: &'static str =
            Box::leak(format!("{path}slow?ms={}", mix.slow_ms).into_boxed_str());
        let kinds = std::iter::repeat_n(ClientKind::Retrying, mix.conns)
            .chain(std::iter::repeat_n(ClientKind::NeverRetry, mix.never_retry))
            .chain(std::iter::repeat_n(ClientKind::Slow, mix.slow));
        let threads = kinds
            .enumerate()
            .map(|(i, kind)| {
                let stop = stop.clone();
                let pause = mix.pause;
                std::thread::spawn(move || match kind {
                    ClientKind::Slow => {
                        // Staggered, so that requests leave and arrive all the time.
                        let k = (i - mix.conns - mix.never_retry) as u32;
                        let at = mix.slow_ramp.min(Duration::from_millis(mix.slow_ms)) * k
                            / mix.slow as u32;
                        run_slow(addr, slow_path, at, t0, new_version, &stop)
                    }
                    kind => run_conn(addr, path, kind, i, pause, t0, new_version, &stop),
                })
            })
            .collect();
        Load { stop, threads }
    }

    /// Stop, wait for the requests in flight, and return every record, ordered by start.
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

/// Version and port named by a 200 answer (`v2 real1 8081`).
fn served(status: u16, text: &str, new_version: &str) -> (Served, Option<u16>) {
    if status != 200 {
        return (Served::Other, None);
    }
    let port = text.split_whitespace().last().and_then(|p| p.parse().ok());
    let v = match text.split_whitespace().next() {
        Some(v) if v == new_version => Served::New,
        Some(v) if v.starts_with('v') => Served::Old,
        _ => Served::Other,
    };
    (v, port)
}

#[allow(clippy::too_many_arguments)]
fn run_conn(
    addr: SocketAddr,
    path: &str,
    kind: ClientKind,
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
        let after_server_close = kind == ClientKind::NeverRetry && c.drop_if_server_closed();
        let s = Instant::now();
        let mut r = c.request(method, path, body);
        let mut raw_error = None;
        let mut retried = false;
        if let Err(f) = &r {
            raw_error = Some(f.err.clone());
            if f.reused && kind == ClientKind::Retrying {
                retried = true;
                r = c.request(method, path, body);
            }
        }
        let latency = s.elapsed();
        let (status, (served, port), error) = match r {
            Ok((status, text)) => (status, served(status, &text, new_version), raw_error),
            Err(f) => (0, (Served::Other, None), Some(f.err)),
        };
        out.push(Rec {
            client: kind,
            start: s.duration_since(t0),
            latency,
            status,
            raw_failed: retried || status != 200,
            retried,
            served,
            after_server_close,
            port,
            error,
        });
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    out
}

/// One slow request after another, each on a fresh connection, from `first` after `t0` on.
fn run_slow(
    addr: SocketAddr,
    path: &str,
    first: Duration,
    t0: Instant,
    new_version: &str,
    stop: &AtomicBool,
) -> Vec<Rec> {
    let mut out = vec![];
    while t0.elapsed() < first && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let began = Instant::now();
    while !stop.load(Ordering::Relaxed) && began.elapsed() < MAX_RUN {
        let s = Instant::now();
        let r = Client::new(addr).request("GET", path, b"");
        let (status, (served, port), error) = match r {
            Ok((status, text)) => (status, served(status, &text, new_version), None),
            Err(f) => (0, (Served::Other, None), Some(f.err)),
        };
        out.push(Rec {
            client: ClientKind::Slow,
            start: s.duration_since(t0),
            latency: s.elapsed(),
            status,
            raw_failed: status != 200,
            retried: false,
            served,
            after_server_close: false,
            port,
            error,
        });
    }
    out
}

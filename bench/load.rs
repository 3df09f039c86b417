//! The recording load generator. Three kinds of client, each on its own threads, all the
//! harness's one strict client ([`Client`], tests/common/http.rs: every body read to its framed
//! end, each outcome by [`Kind`]), sending until stopped and recording every request: when it
//! started, how long it took, how it ended, and which version (and port) answered.
//!
//! - [`ClientKind::Retrying`]: `conns` keep-alive connections, GETs and every fourth a POST, as
//!   Go's `net/http` and browsers send them ([`Client::send`]): a connection the server closed
//!   while idle is replaced before use, and only a GET that failed on a reused connection
//!   before any byte of its response is sent once more; a record says whether it failed raw
//!   and whether it was retried.
//! - [`ClientKind::NeverRetry`]: `never_retry` more keep-alive connections with the same mix,
//!   each request final, never sent again, a GET as a POST ([`Client::send_once`]).
//! - [`ClientKind::Slow`]: `slow` senders, each keeping one `GET …/slow?ms=N` in flight on a
//!   fresh connection (requests that take N ms, for the balanced rolls: slots leave rotation
//!   and drain while they run); a failure is final.

use crate::common::{Client, Kind, Outcome};
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
    /// Final HTTP status; 0 when the final attempt got no whole response.
    pub status: u16,
    /// How the request ended (after the retry, for the retrying client).
    pub kind: Kind,
    /// How its first attempt ended.
    pub raw_kind: Kind,
    /// The first attempt failed (any [`Kind`] but ok, or a status other than 200).
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
        self.kind != Kind::Ok || self.status != 200
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

/// The record of one request that started at `s`.
fn rec(client: ClientKind, o: &Outcome, s: Instant, t0: Instant, new_version: &str) -> Rec {
    let status = if matches!(o.kind, Kind::Ok | Kind::Status) {
        o.status
    } else {
        0
    };
    let (served, port) = served(status, &o.body, new_version);
    let error = match (&o.error, &o.retried) {
        (Some(e), _) => Some(format!("{}: {e}", o.kind)),
        (None, Some(f)) => Some(format!("{} (retried): {}", f.kind, f.err)),
        (None, None) if o.kind != Kind::Ok => Some(format!("{}: HTTP {}", o.kind, o.status)),
        (None, None) => None,
    };
    Rec {
        client,
        start: s.duration_since(t0),
        latency: s.elapsed(),
        status,
        kind: o.kind,
        raw_kind: o.raw_kind(),
        raw_failed: o.raw_kind() != Kind::Ok || status != 200,
        retried: o.retried.is_some(),
        served,
        after_server_close: o.after_server_close,
        port,
        error,
    }
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
        let s = Instant::now();
        let o = if kind == ClientKind::Retrying {
            c.send(method, path, body)
        } else {
            c.send_once(method, path, body)
        };
        out.push(rec(kind, &o, s, t0, new_version));
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
        let o = Client::new(addr).send_once("GET", path, b"");
        out.push(rec(ClientKind::Slow, &o, s, t0, new_version));
    }
    out
}

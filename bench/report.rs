//! From records to numbers: per-run summaries, the markdown table, results.json, the target
//! checks for nonstop (the reload rows' and the nftables steering's for the nftables rows), and the
//! hand-written SVG timelines. The raw / after-retry columns and the latencies are the
//! retrying client's; the never-retry client and the slow requests are counted on their own.

use crate::approach::{Approach, Boot, Outcome, Status};
use crate::load::{ClientKind, Rec, Served};
use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

/// Timeline bucket width.
pub const BUCKET: Duration = Duration::from_millis(100);

#[derive(Debug, Clone, Serialize)]
pub struct StageOut {
    pub name: String,
    /// Seconds from the deploy's start.
    pub start_s: f64,
    pub end_s: f64,
}

/// Requests per [`BUCKET`], from the load's start.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Buckets {
    pub ok_old: Vec<u32>,
    pub ok_new: Vec<u32>,
    /// Failed raw, succeeded on the one retry.
    pub retried_ok: Vec<u32>,
    /// Failed after the retry (or without one).
    pub failed: Vec<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub approach: String,
    pub label: String,
    /// The app and its boot: `spring` (the Spring Boot jar) or the stand-in's delay (`20`).
    pub app: String,
    /// `Spring Boot`, `stand-in, 20 s`.
    pub app_label: String,
    /// The stand-in's configured boot delay; `null` for the Spring Boot app.
    pub boot_s: Option<f64>,
    /// "ok", or why there are no numbers.
    pub status: String,
    pub deploy_wall_s: Option<f64>,
    /// App boots the deploy waits for in sequence (3 for a 3-slot rolling deploy).
    pub boots: u32,
    /// Deploy wall time minus `boots` × the configured boot delay (the Spring Boot app: ×
    /// its measured JVM start → ready).
    pub wall_minus_boot_s: Option<f64>,
    /// The new JVM's process start to its first answer with the new version (10 ms probes).
    pub launch_to_ready_s: Option<f64>,
    /// The same for every new JVM of the deploy, in the order they started (balanced: 3).
    pub boots_measured_s: Vec<Option<f64>>,
    /// Each measured new JVM's process start and first answer with v2, in seconds from the
    /// deploy's start: where the deploy waited for the app and where for nonstop.
    pub boot_windows: Vec<[f64; 2]>,
    /// Deploy wall time minus the sum of the measured JVM start → ready of every new JVM
    /// (`null` when one was not measured).
    pub wall_minus_measured_boots_s: Option<f64>,
    /// Time the balanced roll's drains waited for requests in flight (from nonstop's log).
    pub drain_s: f64,
    /// Connections cut by drains that gave up.
    pub drain_cut: usize,
    /// Each drain: `red 4.86 s`, or `red gave up, cut N`.
    pub drains: Vec<String>,
    /// Each drain's wait in seconds, in log order (`null`: it gave up).
    pub drain_waits_s: Vec<Option<f64>>,
    /// The retrying client's requests (the raw / after-retry / latency figures are its own).
    pub requests: usize,
    pub failed_raw: usize,
    pub failed_after_retry: usize,
    pub retried: usize,
    /// Final failures that were an HTTP status (502 …) rather than a transport error.
    pub failed_http: usize,
    pub window_requests: usize,
    /// The client that never retries: its requests and its failures (each final).
    pub never_retry_requests: usize,
    pub never_retry_failed: usize,
    pub never_retry_errors: Vec<String>,
    /// Its idle connections the server closed (a reload's old worker) that it dropped and
    /// redialed before sending, as Go's net/http does: requests a client without that check
    /// would have sent on a dead connection.
    pub never_retry_redials: usize,
    /// Slow requests (`/slow?ms=N`, balanced rolls): sent, failed, and how long each takes.
    pub slow_requests: usize,
    pub slow_failed: usize,
    pub slow_ms: Option<u64>,
    /// Slots taken out of rotation during the deploy (from nonstop's log).
    pub take_outs: usize,
    /// Slow requests in flight on a slot at the moment it left rotation, summed over take-outs.
    pub slow_in_flight_at_take_out: usize,
    /// Take-outs with at least one slow request in flight on that slot.
    pub take_outs_with_slow: usize,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Seconds from the load's start to the deploy's start.
    pub deploy_start_s: f64,
    pub run_s: f64,
    pub stages: Vec<StageOut>,
    pub errors: Vec<String>,
    pub serving: String,
    pub timeline: Buckets,
}

impl Summary {
    pub fn ok(&self) -> bool {
        self.status == "ok"
    }
}

pub fn summarize(o: &Outcome) -> Summary {
    let (status, measured) = match &o.status {
        Status::Ok => ("ok".to_string(), true),
        Status::Failed(why) => (format!("FAILED: {why}"), false),
    };
    let secs = |d: Duration| d.as_secs_f64();
    let wall = o.deploy_end.saturating_sub(o.deploy_start);
    let boot_applies = !matches!(o.approach, Approach::Reload);
    let boot = o
        .boot
        .configured()
        .or(o.launch_to_ready)
        .map(|d| secs(d) * f64::from(o.boots));
    let kind = |k: ClientKind| o.records.iter().filter(move |r| r.client == k);
    let retrying: Vec<&Rec> = kind(ClientKind::Retrying).collect();
    let never: Vec<&Rec> = kind(ClientKind::NeverRetry).collect();
    let slow: Vec<&Rec> = kind(ClientKind::Slow).collect();
    let mut window: Vec<Duration> = retrying
        .iter()
        .filter(|r| r.start >= o.deploy_start && r.start <= o.deploy_end)
        .map(|r| r.latency)
        .collect();
    window.sort();
    let pct = |q: f64| -> Option<f64> {
        if window.is_empty() {
            return None;
        }
        let rank = ((q * window.len() as f64).ceil() as usize).clamp(1, window.len());
        Some(window[rank - 1].as_secs_f64() * 1000.0)
    };
    // The raw failures by kind, each with its count and first error:
    // `body cut ×2: HTTP 200: body ended at byte 512 of 4096 (ok on retry)`.
    let distinct = |recs: &[&Rec]| {
        let mut kinds: Vec<(crate::common::Kind, usize, String)> = vec![];
        for r in recs.iter().filter(|r| r.raw_failed) {
            let e = match (&r.error, r.status) {
                (Some(e), 200) => format!("{e} (ok on retry)"),
                (Some(e), _) => e.clone(),
                (None, s) => format!("HTTP {s}"),
            };
            match kinds.iter_mut().find(|(k, _, _)| *k == r.raw_kind) {
                Some((_, n, _)) => *n += 1,
                None => kinds.push((r.raw_kind, 1, e)),
            }
        }
        kinds
            .into_iter()
            .map(|(k, n, e)| format!("{k} ×{n}: {e}"))
            .collect::<Vec<_>>()
    };
    let errors = distinct(&retrying);
    // A slow request is in flight on a slot as it leaves rotation when it started before and
    // ended after that moment and the slot's port answered it (a failed one names no port:
    // counted when it was open at that moment at all).
    let port_of = |slot: &str| {
        o.slot_ports
            .iter()
            .find(|(n, _)| n == slot)
            .map(|(_, p)| *p)
    };
    let in_flight: Vec<usize> = o
        .take_outs
        .iter()
        .map(|(slot, at)| {
            slow.iter()
                .filter(|r| r.start < *at && r.start + r.latency > *at)
                .filter(|r| r.port.is_none() || r.port == port_of(slot))
                .count()
        })
        .collect();
    let boots_sum: Option<f64> = if o.boots_measured.is_empty() {
        None
    } else {
        o.boots_measured
            .iter()
            .map(|b| b.map(|b| secs(b.took())))
            .sum::<Option<f64>>()
    };
    Summary {
        approach: o.approach.key().into(),
        label: o.approach.label().into(),
        app: o.boot.key(),
        app_label: o.boot.label(),
        boot_s: o.boot.configured().map(secs),
        status,
        deploy_wall_s: measured.then(|| secs(wall)),
        boots: o.boots,
        wall_minus_boot_s: boot
            .filter(|_| measured && boot_applies)
            .map(|b| secs(wall) - b),
        launch_to_ready_s: o.launch_to_ready.map(secs),
        boots_measured_s: o
            .boots_measured
            .iter()
            .map(|b| b.map(|b| secs(b.took())))
            .collect(),
        boot_windows: o
            .boots_measured
            .iter()
            .flatten()
            .map(|b| {
                [
                    secs(b.launched) - secs(o.deploy_start),
                    secs(b.ready) - secs(o.deploy_start),
                ]
            })
            .collect(),
        wall_minus_measured_boots_s: boots_sum.filter(|_| measured_ok(o)).map(|b| secs(wall) - b),
        drain_s: o.drains.iter().filter_map(|d| d.took).map(secs).sum(),
        drain_cut: o.drains.iter().map(|d| d.cut).sum(),
        drain_waits_s: o.drains.iter().map(|d| d.took.map(secs)).collect(),
        drains: o
            .drains
            .iter()
            .map(|d| match d.took {
                Some(t) => format!("{} {:.2} s", d.slot, secs(t)),
                None => format!("{} gave up, cut {}", d.slot, d.cut),
            })
            .collect(),
        requests: retrying.len(),
        failed_raw: retrying.iter().filter(|r| r.raw_failed).count(),
        failed_after_retry: retrying.iter().filter(|r| r.failed()).count(),
        retried: retrying.iter().filter(|r| r.retried).count(),
        failed_http: retrying
            .iter()
            .filter(|r| r.failed() && r.status != 0)
            .count(),
        window_requests: window.len(),
        never_retry_requests: never.len(),
        never_retry_failed: never.iter().filter(|r| r.failed()).count(),
        never_retry_errors: distinct(&never),
        never_retry_redials: never.iter().filter(|r| r.after_server_close).count(),
        slow_requests: slow.len(),
        slow_failed: slow.iter().filter(|r| r.failed()).count(),
        slow_ms: o.approach.is_balanced().then_some(o.slow_ms),
        take_outs: o.take_outs.len(),
        slow_in_flight_at_take_out: in_flight.iter().sum(),
        take_outs_with_slow: in_flight.iter().filter(|&&n| n > 0).count(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        max_ms: window.last().map(|d| d.as_secs_f64() * 1000.0),
        deploy_start_s: secs(o.deploy_start),
        run_s: secs(o.run_end),
        stages: o
            .stages
            .iter()
            .map(|s| StageOut {
                name: s.name.clone(),
                start_s: secs(s.start) - secs(o.deploy_start),
                end_s: secs(s.end) - secs(o.deploy_start),
            })
            .collect(),
        errors,
        serving: o.serving.clone(),
        timeline: buckets(&o.records, o.run_end),
    }
}

/// The run has numbers (not failed, a deploy that boots a JVM).
fn measured_ok(o: &Outcome) -> bool {
    matches!(o.status, Status::Ok) && o.approach != Approach::Reload
}

/// The keep-alive clients' requests per bucket (the slow requests are counted on their own).
fn buckets(records: &[Rec], run_end: Duration) -> Buckets {
    let n = (run_end.as_millis() / BUCKET.as_millis()) as usize + 1;
    let mut b = Buckets {
        ok_old: vec![0; n],
        ok_new: vec![0; n],
        retried_ok: vec![0; n],
        failed: vec![0; n],
    };
    for r in records.iter().filter(|r| r.client != ClientKind::Slow) {
        let i = ((r.start.as_millis() / BUCKET.as_millis()) as usize).min(n - 1);
        if r.failed() {
            b.failed[i] += 1;
        } else if r.raw_failed {
            b.retried_ok[i] += 1;
        } else if r.served == Served::New {
            b.ok_new[i] += 1;
        } else {
            b.ok_old[i] += 1;
        }
    }
    b
}

// ---------- markdown ----------

fn f2(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.2} s"))
}

fn ms(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| {
        if v < 10.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.0}")
        }
    })
}

/// The results table, the nonstop stage table and the target check. `img` prefixes the SVG
/// links (relative to where the markdown lives).
pub fn markdown(all: &[Summary], boots: &[Boot], img: &str) -> String {
    let mut m = String::new();
    let _ = writeln!(
        m,
        "| app | approach | deploy wall time | wall − boot | JVM start → ready | requests | failed raw | failed after 1 retry | never-retry client: failed / requests | p50 / p99 / max latency in deploy (ms) |"
    );
    let _ = writeln!(m, "|---|---|---|---|---|---|---|---|---|---|");
    for s in all {
        if !s.ok() {
            let _ = writeln!(
                m,
                "| {} | {} | {} | | | | | | | |",
                s.app_label, s.label, s.status
            );
            continue;
        }
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} / {} / {} |",
            s.app_label,
            s.label,
            f2(s.deploy_wall_s),
            if s.boots > 1 {
                format!("{} ({} boots)", f2(s.wall_minus_boot_s), s.boots)
            } else {
                f2(s.wall_minus_boot_s)
            },
            f2(s.launch_to_ready_s),
            s.requests,
            s.failed_raw,
            s.failed_after_retry,
            s.never_retry_failed,
            s.never_retry_requests,
            ms(s.p50_ms),
            ms(s.p99_ms),
            ms(s.max_ms)
        );
    }
    let slow_rows: Vec<&Summary> = all
        .iter()
        .filter(|s| s.ok() && s.slow_ms.is_some())
        .collect();
    if !slow_rows.is_empty() {
        let _ = writeln!(
            m,
            "\nSlow requests in the balanced rolls (each on a fresh connection, a failure is final):\n"
        );
        let _ = writeln!(
            m,
            "| app | approach | slow requests | failed | slots taken out | take-outs with one in flight on that slot | in flight at take-outs | drains waited | cut by a drain |"
        );
        let _ = writeln!(m, "|---|---|---|---|---|---|---|---|---|");
        for s in slow_rows {
            let _ = writeln!(
                m,
                "| {} | {} | {} × {:.0} s | {} | {} | {} | {} | {:.2} s | {} |",
                s.app_label,
                s.label,
                s.slow_requests,
                s.slow_ms.unwrap_or(0) as f64 / 1000.0,
                s.slow_failed,
                s.take_outs,
                s.take_outs_with_slow,
                s.slow_in_flight_at_take_out,
                s.drain_s,
                s.drain_cut
            );
        }
    }
    let _ = writeln!(
        m,
        "\nnonstop, time per hook (each a separate process, run as the CodeDeploy agent runs it):\n"
    );
    let _ = writeln!(
        m,
        "| app | mode | stop | start | health | switch | deploy-second | total |"
    );
    let _ = writeln!(m, "|---|---|---|---|---|---|---|---|");
    for s in all
        .iter()
        .filter(|s| s.ok() && Approach::from_key(&s.approach).is_some_and(Approach::is_nonstop))
    {
        let d = |n: &str| {
            s.stages
                .iter()
                .find(|st| st.name == n)
                .map_or("–".into(), |st| format!("{:.2} s", st.end_s - st.start_s))
        };
        let _ = writeln!(
            m,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            s.app_label,
            s.label,
            d("stop"),
            d("start"),
            d("health"),
            d("switch"),
            d("deploy-second"),
            f2(s.deploy_wall_s)
        );
    }
    let _ = writeln!(
        m,
        "\nTargets for nonstop in this run (0 failures after retry; raw failures no more than the bare reload; wall − boot under 0.5 s, where boot is the stand-in's configured delay or the Spring Boot app's measured JVM start → ready):\n"
    );
    let mark = |ok: bool| if ok { "met" } else { "**NOT met**" };
    for &b in boots {
        let find = |a: Approach| {
            all.iter()
                .find(|s| s.approach == a.key() && s.app == b.key() && s.ok())
        };
        let reload = find(Approach::Reload);
        for a in [
            Approach::BlueGreen,
            Approach::Balanced,
            Approach::NftBlueGreen,
            Approach::NftBalanced,
        ] {
            let Some(ns) = find(a) else {
                continue;
            };
            let raw = match reload {
                Some(r) => format!(
                    "raw failures {} vs {} for the bare reload: {}",
                    ns.failed_raw,
                    r.failed_raw,
                    mark(ns.failed_raw <= r.failed_raw)
                ),
                None => "raw failures: no reload result to compare".into(),
            };
            let wmb = ns.wall_minus_boot_s.unwrap_or(f64::NAN);
            let _ = writeln!(
                m,
                "- {}, {}: failures after retry {}: {}; {raw}; wall − {}boot {wmb:.2} s: {}",
                b.label(),
                ns.label,
                ns.failed_after_retry,
                mark(ns.failed_after_retry == 0),
                if ns.boots > 1 {
                    format!("{} × ", ns.boots)
                } else {
                    String::new()
                },
                mark(wmb < 0.5)
            );
        }
    }
    let _ = writeln!(
        m,
        "\nWhere nonstop's wall − boot goes (seconds; JVM n = the new JVM's process start, ready n = its first answer with v2; a drain waits for the requests in flight on the slot leaving rotation):\n"
    );
    for s in all
        .iter()
        .filter(|s| s.ok() && Approach::from_key(&s.approach).is_some_and(Approach::is_nonstop))
    {
        if let Some(l) = where_time_goes(s) {
            let _ = writeln!(m, "- {}, {}: {l}", s.app_label, s.label);
        }
    }
    let _ = writeln!(
        m,
        "\nTargets of nftables steering in this run (the never-retry client loses > 0 requests to the bare reload and 0 in nftables mode; the balanced roll loses 0 of its 5 s requests, with one in flight on a slot at each take-out; wall − measured JVM start → ready under 0.2 s for blue/green, and for the balanced roll wall − its 3 measured JVM start → ready − the drains' wait for the 5 s requests under 3 × 0.2 s; measured = process start to first answer with v2, probed every 10 ms):\n"
    );
    for &b in boots {
        let find = |a: Approach| {
            all.iter()
                .find(|s| s.approach == a.key() && s.app == b.key() && s.ok())
        };
        let mut lines = vec![];
        if let Some(r) = find(Approach::Reload) {
            lines.push(format!(
                "bare nginx -s reload: never-retry client lost {} of {}: {}",
                r.never_retry_failed,
                r.never_retry_requests,
                mark(r.never_retry_failed > 0)
            ));
        }
        if let Some(s) = find(Approach::NftBlueGreen) {
            let w = s.wall_minus_measured_boots_s;
            lines.push(format!(
                "{}: never-retry client lost {} of {}: {}; wall − measured boot {}: {}",
                s.label,
                s.never_retry_failed,
                s.never_retry_requests,
                mark(s.never_retry_failed == 0 && s.never_retry_requests > 0),
                w.map_or("not measured".into(), |w| format!("{w:.3} s")),
                mark(w.is_some_and(|w| w < 0.2))
            ));
        }
        if let Some(s) = find(Approach::NftBalanced) {
            let w = s.wall_minus_measured_boots_s.map(|w| w - s.drain_s);
            lines.push(format!(
                "{}: never-retry client lost {} of {}: {}; 5 s requests lost {} of {}, in flight on the slot at {} of {} take-outs: {}; wall − 3 measured boots − {:.2} s of drains {}: {}",
                s.label,
                s.never_retry_failed,
                s.never_retry_requests,
                mark(s.never_retry_failed == 0 && s.never_retry_requests > 0),
                s.slow_failed,
                s.slow_requests,
                s.take_outs_with_slow,
                s.take_outs,
                mark(
                    s.slow_failed == 0
                        && s.drain_cut == 0
                        && s.take_outs > 0
                        && s.take_outs_with_slow == s.take_outs
                ),
                s.drain_s,
                w.map_or("not measured".into(), |w| format!("{w:.3} s")),
                mark(w.is_some_and(|w| w < 0.6))
            ));
        }
        for l in lines {
            let _ = writeln!(m, "- {}, {l}", b.label());
        }
    }
    let _ = writeln!(m);
    for &b in boots {
        let _ = writeln!(
            m,
            "![timeline, {}]({img}timeline-{}.svg)\n",
            b.label(),
            b.key()
        );
    }
    m
}

/// The deploy cut at each new JVM's start and first answer: the stretches where the deploy did
/// not wait for a JVM to boot, with the hooks and drains inside them.
fn where_time_goes(s: &Summary) -> Option<String> {
    let wall = s.deploy_wall_s?;
    let w = &s.boot_windows;
    if w.is_empty() || w.len() != s.boots_measured_s.len() {
        return None;
    }
    let stage = |n: &str| s.stages.iter().find(|st| st.name == n);
    let dur = |n: &str| stage(n).map_or(0.0, |st| st.end_s - st.start_s);
    let mut parts = vec![];
    // Before the first JVM: the stop hook (its drain, in balanced mode) and start up to the JVM.
    let stop_end = stage("stop").map_or(0.0, |st| st.end_s);
    let drain = |k: usize| s.drain_waits_s.get(k).copied().flatten();
    parts.push(format!(
        "deploy start → JVM 1 {:.2} (stop {:.2}{}, start until the JVM {:.2})",
        w[0][0],
        dur("stop"),
        if s.boots > 1 {
            drain(0).map_or(String::new(), |d| format!(" with a drain of {d:.2}"))
        } else {
            String::new()
        },
        w[0][0] - stop_end
    ));
    // Balanced: ready n → JVM n+1 holds health's tail, switch (after the first), the next
    // take-out, its drain and the stop.
    for k in 1..w.len() {
        parts.push(format!(
            "ready {k} → JVM {} {:.2}{}",
            k + 1,
            w[k][0] - w[k - 1][1],
            drain(k).map_or(String::new(), |d| format!(" (drain {d:.2})"))
        ));
    }
    let last = w[w.len() - 1][1];
    let health_end = stage("health").map_or(0.0, |st| st.end_s);
    parts.push(if s.boots > 1 {
        format!("ready {} → end {:.2}", w.len(), wall - last)
    } else {
        format!(
            "ready → end {:.2} (health after ready {:.2}, switch {:.2})",
            wall - last,
            health_end - last,
            dur("switch")
        )
    });
    Some(parts.join("; "))
}

// ---------- SVG ----------

const W: f64 = 980.0;
const LEFT: f64 = 60.0;
const RIGHT: f64 = 20.0;
const PANEL_H: f64 = 180.0;
const PLOT_H: f64 = 100.0;
const C_OLD: &str = "#9aa5b1";
const C_NEW: &str = "#2f9e5b";
const C_RETRIED: &str = "#f28e1c";
const C_FAILED: &str = "#d62728";
const C_RELOAD: &str = "#7b3fa0";
const C_NFT: &str = "#0b7285";

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One SVG for one app and boot: a panel per approach.
pub fn svg(runs: &[&Summary], boot: Boot) -> String {
    let h = 64.0 + PANEL_H * runs.len() as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="Helvetica, Arial, sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="20" font-size="14" font-weight="bold">Requests through nginx per 100 ms during a deploy, {} (time from deploy start)</text>"#,
        match boot {
            Boot::Spring => "the Spring Boot app".to_string(),
            Boot::Delay(b) => format!("the stand-in, app boot {b} s"),
        }
    );
    let legend = [
        (C_OLD, "ok, old version"),
        (C_NEW, "ok, new version"),
        (C_RETRIED, "failed raw, ok after 1 retry"),
        (C_FAILED, "failed (after retry; never-retry: at once)"),
        ("#dbe8fb", "deploy window"),
        (C_RELOAD, "reload confirmed (nonstop's log)"),
        (C_NFT, "nft table changed (nonstop's log)"),
    ];
    let mut x = LEFT;
    for (c, t) in legend {
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="32" width="12" height="12" fill="{c}"/><text x="{}" y="42">{t}</text>"#,
            x + 16.0
        );
        x += 26.0 + t.len() as f64 * 6.2;
    }
    for (i, r) in runs.iter().enumerate() {
        panel(&mut s, r, 64.0 + PANEL_H * i as f64);
    }
    s.push_str("</svg>\n");
    s
}

fn panel(s: &mut String, r: &Summary, y0: f64) {
    let title = if r.ok() {
        format!(
            "{} — deploy {:.2} s, {} requests, {} failed raw, {} after retry; never-retry client {} of {} failed{}",
            r.label,
            r.deploy_wall_s.unwrap_or(0.0),
            r.requests,
            r.failed_raw,
            r.failed_after_retry,
            r.never_retry_failed,
            r.never_retry_requests,
            match r.slow_ms {
                Some(ms) => format!(
                    "; {} of {} {:.0} s requests failed",
                    r.slow_failed,
                    r.slow_requests,
                    ms as f64 / 1000.0
                ),
                None => String::new(),
            }
        )
    } else {
        format!("{} — {}", r.label, r.status)
    };
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="{}" font-size="12" font-weight="bold">{}</text>"#,
        y0 + 14.0,
        esc(&title)
    );
    let top = y0 + 50.0;
    let bottom = top + PLOT_H;
    let pw = W - LEFT - RIGHT;
    if !r.ok() {
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{top}" width="{pw}" height="{PLOT_H}" fill="#f6f6f6" stroke="#ccc"/><text x="{}" y="{}" text-anchor="middle" fill="#666" font-size="13">{}</text>"##,
            LEFT + pw / 2.0,
            top + PLOT_H / 2.0,
            esc(&r.status)
        );
        return;
    }
    let tl = &r.timeline;
    let n = tl.ok_old.len();
    let bucket = BUCKET.as_secs_f64();
    // x in seconds relative to the deploy start.
    let (x_min, x_max) = (-r.deploy_start_s, r.run_s - r.deploy_start_s);
    let xs = |t: f64| LEFT + (t - x_min) / (x_max - x_min) * pw;
    let totals: Vec<u32> = (0..n)
        .map(|i| tl.ok_old[i] + tl.ok_new[i] + tl.retried_ok[i] + tl.failed[i])
        .collect();
    let ymax = totals.iter().copied().max().unwrap_or(1).max(1) as f64;
    let ys = |v: f64| v / ymax * PLOT_H;
    // deploy window
    let (wx0, wx1) = (xs(0.0), xs(r.deploy_wall_s.unwrap_or(0.0)));
    let _ = writeln!(
        s,
        r##"<rect x="{wx0:.1}" y="{top}" width="{:.1}" height="{PLOT_H}" fill="#dbe8fb"/>"##,
        (wx1 - wx0).max(1.0)
    );
    // bars: stacked old, new, retried, failed
    let bw = (pw * bucket / (x_max - x_min)).max(0.5);
    for i in 0..n {
        let x = xs(i as f64 * bucket - r.deploy_start_s);
        let mut y = bottom;
        for (v, c) in [
            (tl.ok_old[i], C_OLD),
            (tl.ok_new[i], C_NEW),
            (tl.retried_ok[i], C_RETRIED),
            (tl.failed[i], C_FAILED),
        ] {
            if v == 0 {
                continue;
            }
            let hgt = ys(v as f64);
            y -= hgt;
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{y:.2}" width="{:.2}" height="{hgt:.2}" fill="{c}"/>"#,
                bw * 0.9
            );
        }
    }
    // failure lane: every bucket with a failure gets a visible tick, whatever the y scale
    let lane = bottom + 4.0;
    for i in 0..n {
        let (c, v) = if tl.failed[i] > 0 {
            (C_FAILED, tl.failed[i])
        } else if tl.retried_ok[i] > 0 {
            (C_RETRIED, tl.retried_ok[i])
        } else {
            continue;
        };
        let x = xs(i as f64 * bucket - r.deploy_start_s);
        let _ = writeln!(
            s,
            r#"<rect x="{x:.1}" y="{lane}" width="{:.1}" height="6" fill="{c}"><title>{v}</title></rect>"#,
            bw.max(2.0)
        );
    }
    // axes
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{bottom}" x2="{}" y2="{bottom}" stroke="#333"/><line x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{bottom}" stroke="#333"/>"##,
        W - RIGHT
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="end">{ymax:.0}</text><text x="{}" y="{bottom}" text-anchor="end">0</text>"#,
        LEFT - 4.0,
        top + 9.0,
        LEFT - 4.0
    );
    let span = x_max - x_min;
    let step = if span <= 12.0 {
        1.0
    } else if span <= 30.0 {
        2.0
    } else {
        5.0
    };
    let mut t = (x_min / step).ceil() * step;
    while t <= x_max {
        let x = xs(t);
        let t_label = t.round() + 0.0; // no "-0 s"
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{bottom}" x2="{x:.1}" y2="{}" stroke="#333"/><text x="{x:.1}" y="{}" text-anchor="middle">{t_label} s</text>"##,
            bottom + 3.0,
            bottom + 22.0
        );
        t += step;
    }
    // reloads nonstop confirmed (from its log): a triangle on the plot's top edge
    // and nft table changes: the same in another colour
    for st in r
        .stages
        .iter()
        .filter(|st| st.name == "reload" || st.name == "nft")
    {
        let x = xs(st.start_s);
        let (c, t) = if st.name == "nft" {
            (C_NFT, "nft table changed")
        } else {
            (C_RELOAD, "reload confirmed")
        };
        let _ = writeln!(
            s,
            r##"<path d="M{:.1},{} l8,0 l-4,7 z" fill="{c}"><title>{t}</title></path>"##,
            x - 4.0,
            top - 7.0
        );
    }
    // stage markers; each label goes on the first of three rows where it does not overlap
    // (none fits: the line alone)
    let mut row_end = [f64::MIN; 3];
    let mut marks: Vec<&StageOut> = r
        .stages
        .iter()
        .filter(|st| st.name != "reload" && st.name != "nft")
        .collect();
    // stages get their labels first, point markers (log lines) where room is left
    marks.sort_by(|a, b| {
        (a.end_s == a.start_s)
            .cmp(&(b.end_s == b.start_s))
            .then(a.start_s.total_cmp(&b.start_s))
    });
    for st in marks {
        let x = xs(st.start_s);
        let width = st.name.chars().count() as f64 * 6.0 + 6.0;
        // a label near the right edge ends at its marker instead of starting there
        let lx = if x + width > W {
            x - width + 4.0
        } else {
            x + 2.0
        };
        let row = (0..3).find(|&k| row_end[k] < lx);
        let ly = y0 + 25.0 + row.unwrap_or(0) as f64 * 11.0;
        let label = match row {
            Some(k) => {
                row_end[k] = lx + width;
                format!(
                    r##"<text x="{lx:.1}" y="{ly}" fill="#1f4e9c">{}</text>"##,
                    esc(&st.name)
                )
            }
            None => String::new(),
        };
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{}" x2="{x:.1}" y2="{bottom}" stroke="#1f4e9c" stroke-dasharray="3,2"><title>{}</title></line>{label}"##,
            if row.is_some() { ly + 2.0 } else { top },
            esc(&st.name)
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{wx1:.1}" y1="{top}" x2="{wx1:.1}" y2="{bottom}" stroke="#1f4e9c"/>"##
    );
}

//! The real thing: a Maven-built Spring Boot 3 jar (examples/spring-boot-app, `make
//! spring-app`) deployed with real nginx, every binary run the way the CodeDeploy agent runs a
//! hook. Health gates on Actuator's readiness group (`/actuator/health/readiness`), and the app
//! runs with `server.shutdown=graceful`: what nonstop's users deploy. Each test asserts what a
//! user would check: requests through nginx, the app's own answers, exit statuses, the logs.
//!
//! The JVMs run with `common::SPRING_JAVA_OPTS` (128 MB heap, C1 only, serial GC) so three of
//! them fit two cores; see the README's Spring Boot section.

mod common;
use common::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn body_of(env: &Env) -> String {
    let (status, body) = env.get("/");
    assert_eq!(status, 200, "GET / through nginx: {body}");
    body.trim().to_string()
}

/// One request's outcome (status and body, or the error) and how long it took.
type Finished = (Result<(u16, String), String>, Duration);

/// `n` requests of `path` straight to `port`, each on its own connection, sent at once; each
/// thread returns the status and body (or the error) and how long it took.
fn in_flight(port: u16, path: &'static str, n: usize) -> Vec<std::thread::JoinHandle<Finished>> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    (0..n)
        .map(|_| {
            std::thread::spawn(move || {
                let t0 = Instant::now();
                let r = Client::new(addr)
                    .request("GET", path, b"")
                    .map_err(|f| f.err);
                (r, t0.elapsed())
            })
        })
        .collect()
}

#[test]
fn bluegreen_v1_to_v2_under_keepalive_load_fails_nothing_and_readiness_was_up_before_the_switch() {
    let env = Env::spring(2);
    let (blue, green) = (env.port_of("blue"), env.port_of("green"));
    let t0 = Instant::now();
    let first = env.deploy("v1"); // green
    eprintln!(
        "first deploy (one Spring Boot boot) in {:?}: {first:?}",
        t0.elapsed()
    );
    assert_eq!(body_of(&env), format!("v1 real2 {green}"));
    let v1 = env.pid_of("green").unwrap();

    let traffic = Traffic::start(env.nginx_addr(), 4, Duration::from_millis(2));
    traffic.wait_requests(100);

    env.stage_jar("v2");
    for b in ["stop", "start"] {
        let r = env.hook(b, &[]);
        assert_eq!(r.code, 0, "{b}: {}", r.stderr);
    }
    let h = env.hook("health", &[]);
    assert_eq!(h.code, 0, "{}", h.stderr);
    eprintln!("v2 (Spring Boot) passed health {:?} after start", h.took);
    assert!(
        h.stderr.contains(&format!(
            "http://127.0.0.1:{blue}/actuator/health/readiness"
        )),
        "health gates on the readiness group: {}",
        h.stderr
    );
    // Before the switch: blue's readiness is UP (asked straight from the app), and nginx still
    // serves v1 from green.
    let (st, ready) = env.get_slot("blue", "/actuator/health/readiness");
    assert_eq!((st, ready.as_str()), (200, r#"{"status":"UP"}"#));
    let (st, all) = env.get_slot("blue", "/actuator/health");
    assert_eq!(st, 200, "{all}");
    assert!(
        all.contains(r#""groups":["liveness","readiness"]"#),
        "{all}"
    );
    assert_eq!(body_of(&env), format!("v1 real2 {green}"));

    let s = env.hook("switch", &[]);
    assert_eq!(s.code, 0, "{}", s.stderr);
    traffic.wait_requests(100);
    let t = traffic.finish();
    eprintln!("traffic during the v1 -> v2 deploy: {}", t.summary());

    assert_eq!(body_of(&env), format!("v2 real1 {blue}"));
    t.assert_reload_bound(
        "traffic during the v1 -> v2 deploy",
        200,
        &["v1", "v2"],
        4,
        1,
    );
    // v1 keeps running on green as the rollback target; the two releases are different jars.
    assert!(nonstop::process::same_process(v1.pid, v1.start_time));
    let v2 = env.pid_of("blue").unwrap();
    assert_ne!(
        std::fs::read(&v1.jar).unwrap(),
        std::fs::read(&v2.jar).unwrap(),
        "v1 and v2 are different builds"
    );
}

#[test]
fn stopping_a_slot_with_slow_requests_in_flight_completes_them_and_the_jvm_exits_143() {
    let env = Env::spring(2);
    env.deploy("v1"); // green live
    env.stage_jar("v2");
    for b in ["stop", "start", "health"] {
        let r = env.hook(b, &[]);
        assert_eq!(r.code, 0, "{b}: {}", r.stderr);
    }
    let blue = env.port_of("blue");
    let pf = env.pid_of("blue").unwrap();

    // Four 3-second requests in flight on blue's app when the next deploy's stop hook stops it.
    // A second for all four to be accepted by Tomcat even on a busy machine: a connection
    // still in the kernel's queue when the listener closes would be refused, not drained.
    let slow = in_flight(blue, "/slow?ms=3000", 4);
    std::thread::sleep(Duration::from_millis(1000));
    let r = env.hook("stop", &[]);
    eprintln!("stop with 4 requests of 3 s in flight took {:?}", r.took);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for (i, h) in slow.into_iter().enumerate() {
        let (res, took) = h.join().unwrap();
        eprintln!("slow request {i}: {res:?} in {took:?}");
        assert_eq!(
            res,
            Ok((200, format!("v2 real1 {blue}\n"))),
            "request {i} completed"
        );
    }
    // The stop waited for them (Spring's graceful shutdown), well within stop.grace (35 s).
    assert!(r.took >= Duration::from_millis(1000), "{:?}", r.took);
    assert!(r.took < Duration::from_secs(35), "{:?}", r.took);
    assert!(
        r.stderr.contains("stopped slot blue gracefully in")
            && r.stderr
                .contains("the app ended with exit status 143 (SIGTERM)"),
        "{}",
        r.stderr
    );
    assert!(
        !r.stderr.contains("SIGKILL") && !r.stderr.contains("was killed"),
        "{}",
        r.stderr
    );
    assert!(!nonstop::process::alive(pf.pid));
    assert!(!nonstop::process::port_in_use(blue));
    // The supervisor's exit record: the JVM's own status 143, not a signal death.
    let rec = nonstop::process::read_exit_record(&env.path("work/run/blue.exit")).unwrap();
    assert_eq!(
        (rec.pid, rec.code, rec.signal),
        (pf.pid, Some(143), None),
        "{rec:?}"
    );
    assert!(rec.graceful());
    let log = std::fs::read_to_string(env.path("work/logs/blue.log")).unwrap();
    assert!(log.contains("Commencing graceful shutdown"), "{log}");
    assert!(log.contains("Graceful shutdown complete"), "{log}");

    // `nonstop status` shows the stop as a stop, not as a failure.
    let st = env.nonstop(&["status"]);
    assert_eq!(st.code, 0, "{}", st.stderr);
    let row = st
        .stdout
        .lines()
        .find(|l| l.starts_with("blue "))
        .unwrap()
        .to_string();
    assert!(
        row.contains("stopped: exit status 143 (SIGTERM) at 20"),
        "{row}"
    );
    let js = env.nonstop(&["status", "--json"]);
    let js: serde_json::Value = serde_json::from_str(&js.stdout).unwrap();
    let b = js["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "blue")
        .unwrap();
    assert_eq!(b["state"], "stopped");
    assert_eq!(b["exit"]["code"], 143);
    assert_eq!(b["exit"]["signal"], serde_json::Value::Null);
    // nginx served v1 from green throughout.
    assert_eq!(body_of(&env), format!("v1 real2 {}", env.port_of("green")));
}

#[test]
fn balanced_roll_of_three_spring_slots_cuts_no_slow_request() {
    let env = Env::spring_balanced(3);
    let t0 = Instant::now();
    env.deploy_all("v1");
    eprintln!(
        "v1 on three slots (three boots in turn) in {:?}",
        t0.elapsed()
    );
    for p in &env.ports {
        assert_eq!(env.member(*p), "", "every slot in rotation");
    }

    let traffic = Traffic::start_on(env.nginx_addr(), "/api/", 4, Duration::from_millis(2));
    let slow = SlowRequests::start(env.nginx_addr(), "/api/slow?ms=3000", 6);
    let pinned = SlowRequests::per_slot_in_rotation(&env, 3000);
    std::thread::sleep(Duration::from_secs(2));
    traffic.wait_requests(100);
    let t1 = Instant::now();
    let runs = env.deploy_all("v2");
    eprintln!("rolled three Spring Boot slots to v2 in {:?}", t1.elapsed());
    std::thread::sleep(Duration::from_millis(500));
    traffic.wait_requests(100);
    let t = traffic.finish();
    let s = slow.finish();
    let p = pinned.finish();
    eprintln!("fast traffic: {}", t.summary());
    eprintln!("3-second requests through nginx: {}", s.summary());
    eprintln!(
        "3-second requests kept on each slot in rotation: {}",
        p.summary()
    );

    let reloads = runs
        .iter()
        .map(|r| r.stderr.matches("nginx reloaded").count())
        .sum();
    t.assert_reload_bound("fast traffic", 200, &["v1", "v2"], 4, reloads);
    // No slow request was cut.
    s.assert_clean_among("3-second requests through nginx", 6, &["v1", "v2"], &[]);
    // No request in flight on a slot leaving rotation was cut.
    p.assert_clean_among("3-second requests on each slot", 3, &["v1", "v2"], &["v1"]);
    let logs: String = runs.iter().map(|r| r.stderr.as_str()).collect();
    for name in ["blue", "green", "red"] {
        assert!(
            logs.contains(&format!("slot {name} drained in")),
            "slot {name} drained before its stop"
        );
        assert!(
            logs.contains(&format!("stopped slot {name} gracefully in")),
            "slot {name} stopped gracefully"
        );
    }
    assert!(!logs.contains("was killed"), "{logs}");
    for p in &env.ports {
        assert_eq!(env.member(*p), "");
    }
    let mut c = Client::new(env.nginx_addr());
    for _ in 0..12 {
        let (st, body) = c.request("GET", "/api/", b"").unwrap();
        assert_eq!(st, 200);
        assert!(body.starts_with("v2 "), "{body}");
    }
}

/// Spring Boot 3 with its probes turned off (`-Dmanagement.endpoint.health.probes.enabled=false`,
/// Spring Boot 3's default outside Kubernetes): the readiness path answers a steady 404 from the
/// app itself. `health` says what is likely wrong (the property, the path) and fails well before
/// `health.deadline` (120 s here) instead of polling it out; nginx still serves v1 from green.
#[test]
fn a_readiness_path_that_answers_404_fails_early_and_names_the_probes_property() {
    let mut env = Env::spring(2);
    env.deploy("v1");
    env.java_opts
        .push("-Dmanagement.endpoint.health.probes.enabled=false".into());
    env.write_config();
    env.stage_jar("v2");
    for b in ["stop", "start"] {
        let r = env.hook(b, &[]);
        assert_eq!(r.code, 0, "{b}: {}", r.stderr);
    }
    let h = env.hook("health", &[]);
    assert_eq!(h.code, 1, "{}", h.stderr);
    assert!(
        h.stderr.contains("WARN  health")
            && h.stderr
                .contains("has answered HTTP 404 at /actuator/health/readiness for"),
        "{}",
        h.stderr
    );
    let last = h.last_line();
    assert!(
        last.contains("answers HTTP 404 at /actuator/health/readiness from its own app for")
            && last.contains("app.java_opts -Dmanagement.endpoint.health.probes.enabled=false sets management.endpoint.health.probes.enabled=false (Spring Boot 3.5.7)")
            && last.contains("or use health.path: /actuator/health; not waiting out health.deadline 120.00 s"),
        "{last}"
    );
    assert!(
        h.took < Duration::from_secs(120),
        "health polled out its deadline: {:?}",
        h.took
    );
    // The app itself says the same: the path does not exist there.
    assert_eq!(env.get_slot("blue", "/actuator/health/readiness").0, 404);
    let s = env.hook("switch", &[]);
    assert_eq!(s.code, 1, "{}", s.stderr);
    assert!(body_of(&env).starts_with("v1 "), "nginx serves v1");
}

#[test]
fn rollback_goes_back_to_the_still_running_previous_spring_slot() {
    let env = Env::spring(2);
    env.deploy("v1"); // green
    env.deploy("v2"); // blue live, green v1 standby
    let (b, g) = (env.pid_of("blue").unwrap(), env.pid_of("green").unwrap());
    let traffic = Traffic::start(env.nginx_addr(), 4, Duration::from_millis(2));
    traffic.wait_requests(100);

    let r = env.nonstop(&["rollback"]);
    eprintln!("rollback to the running v1 slot: wall time {:?}", r.took);
    assert_eq!(r.code, 0, "{}", r.stderr);
    traffic.wait_requests(100);
    let t = traffic.finish();
    eprintln!("traffic during the rollback: {}", t.summary());

    assert!(
        r.stdout.contains("switch only, no process started")
            && r.stdout.contains("blue keeps running"),
        "{}",
        r.stdout
    );
    // Same JVMs: the previous Spring Boot app took the traffic back without a boot.
    assert!(nonstop::process::same_process(g.pid, g.start_time));
    assert!(nonstop::process::same_process(b.pid, b.start_time));
    // Only the switch ran: no stop, start or health stage (its time is printed above; a bound
    // on it would measure the machine's load, not the rollback).
    let stages: Vec<&str> = r
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| ["stop", "start", "health", "switch"].contains(w))
        .collect();
    assert_eq!(stages, ["switch"], "{}", r.stdout);
    assert_eq!(body_of(&env), format!("v1 real2 {}", env.port_of("green")));
    t.assert_reload_bound("traffic during the rollback", 200, &["v1", "v2"], 4, 1);
    assert_eq!(env.state()["live"], "green");
}

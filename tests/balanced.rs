//! Balanced mode with real nginx and real java demo apps: an upstream of N slots, rolling
//! deploys with draining (deploy-second), failure and recovery, drain timeout, the last healthy
//! slot, and canary weights.

mod common;
use common::*;
use std::time::Duration;

/// What `/api/` answers, `n` times, by version.
fn api_versions(env: &Env, n: usize) -> std::collections::BTreeMap<String, usize> {
    let mut c = Client::new(env.nginx_addr());
    let mut out = std::collections::BTreeMap::new();
    for _ in 0..n {
        let (s, body) = c.request("GET", "/api/", b"").expect("request");
        assert_eq!(s, 200, "{body}");
        *out.entry(body.split_whitespace().next().unwrap().to_string())
            .or_insert(0) += 1;
    }
    out
}

#[test]
fn rolling_deploy_of_three_slots_loses_nothing_and_lets_slow_requests_finish() {
    let env = Env::balanced(3);
    env.deploy_all("v1");
    for p in &env.ports {
        assert_eq!(
            env.member(*p),
            "",
            "every slot in rotation after the first deploy"
        );
    }
    assert_eq!(api_versions(&env, 30).keys().collect::<Vec<_>>(), ["v1"]);

    let traffic = Traffic::start_on(env.nginx_addr(), "/api/", 4, Duration::from_millis(2));
    let slow = SlowRequests::start(env.nginx_addr(), "/api/slow?ms=5000", 18);
    let pinned = SlowRequests::per_slot_in_rotation(&env, 5000);
    std::thread::sleep(Duration::from_secs(3));
    traffic.wait_requests(150);
    let runs = env.deploy_all("v2");
    std::thread::sleep(Duration::from_millis(500));
    traffic.wait_requests(150);
    let t = traffic.finish();
    let s = slow.finish();
    let p = pinned.finish();
    eprintln!(
        "5-second requests kept on each slot in rotation: {}",
        p.summary()
    );
    eprintln!("fast traffic: {}", t.summary());
    eprintln!("5-second requests: {}", s.summary());

    let reloads = runs
        .iter()
        .map(|r| r.stderr.matches("nginx reloaded").count())
        .sum();
    t.assert_reload_bound("fast traffic", 300, &["v1", "v2"], 4, reloads);
    // No slow request failed or was cut; they completed on the old version too.
    s.assert_clean_among("5-second requests", 18, &["v1", "v2"], &["v1"]);
    // No request in flight on a slot leaving rotation was cut.
    p.assert_clean_among("5-second requests on each slot", 3, &["v1", "v2"], &["v1"]);
    // Every slot left rotation with requests in flight and was drained before its stop.
    let logs: String = runs.iter().map(|r| r.stderr.as_str()).collect();
    // deploy-second rolled the two other slots with three reloads, not four: the first slot
    // went back in with the second one's take-out.
    let second = &runs[4].stderr;
    assert_eq!(second.matches("nginx reloaded").count(), 3, "{second}");
    assert!(second.contains("in one reload"), "{second}");
    for name in ["blue", "green", "red"] {
        assert!(
            logs.contains(&format!("draining slot {name}: ")),
            "slot {name} drained with requests in flight"
        );
        assert!(
            logs.contains(&format!("slot {name} drained in")),
            "slot {name} fully drained"
        );
    }
    for p in &env.ports {
        assert_eq!(env.member(*p), "");
    }
    assert_eq!(api_versions(&env, 30).keys().collect::<Vec<_>>(), ["v2"]);
    // The include names the slot `switch` made live; `/` follows it.
    let live = env.state()["live"].as_str().unwrap().to_string();
    assert_eq!(
        env.include(),
        format!(
            "set $service_url http://127.0.0.1:{};\n",
            env.port_of(&live)
        )
        .into_bytes()
    );
}

#[test]
fn failing_slot_in_deploy_second_stays_out_and_next_deploy_recovers_it() {
    let mut env = Env::balanced(3);
    env.deploy_all("v1"); // green live; blue and red rolled in
    assert_eq!(env.state()["live"], "green");

    // v2: red (next after green) deploys fine, then blue crashes at boot during deploy-second.
    env.java_opts.push("-Ddemo.crash-profiles=real1".into());
    env.write_config();
    env.stage_jar("v2");
    let traffic = Traffic::start_on(env.nginx_addr(), "/api/", 2, Duration::from_millis(2));
    traffic.wait_requests(100);
    let mut reloads = 0;
    for b in BINARIES {
        let r = env.hook(b, &[]);
        assert_eq!(r.code, 0, "{b}");
        reloads += r.stderr.matches("nginx reloaded").count();
    }
    let r = env.hook("deploy-second", &[]);
    reloads += r.stderr.matches("nginx reloaded").count();
    assert_eq!(r.code, 1);
    assert!(
        r.last_line().contains("deploy-second stopped at slot blue")
            && r.last_line()
                .contains("out of rotation: blue while the others serve"),
        "{}",
        r.last_line()
    );
    assert_eq!(env.member(env.port_of("blue")), " down");
    assert_eq!(env.member(env.port_of("red")), "");
    assert_eq!(
        env.member(env.port_of("green")),
        "",
        "not reached: still serving v1"
    );
    traffic.wait_requests(100);
    let t = traffic.finish();
    eprintln!("traffic during the failing deploy: {}", t.summary());
    // The others kept serving.
    t.assert_reload_bound(
        "traffic during the failing deploy",
        200,
        &["v1", "v2"],
        2,
        reloads,
    );
    let seen = api_versions(&env, 40);
    assert!(
        seen.contains_key("v1") && seen.contains_key("v2"),
        "{seen:?}"
    );

    // The fix ships as v3: the next deploy goes to blue (after red) and rolls the rest.
    env.java_opts.retain(|o| !o.contains("crash-profiles"));
    env.write_config();
    env.deploy_all("v3");
    assert_eq!(env.state()["live"], "blue");
    for p in &env.ports {
        assert_eq!(env.member(*p), "");
    }
    assert_eq!(api_versions(&env, 30).keys().collect::<Vec<_>>(), ["v3"]);
}

#[test]
fn drain_past_the_limit_proceeds_and_says_how_many_were_cut() {
    let env = Env::balanced(2);
    env.deploy_all("v1"); // green live, blue in rotation
    env.edit_config("drain: 15s", "drain: 1s");
    // Two 6-second requests straight to blue's app are in flight when it leaves rotation.
    let blue = env.port_of("blue");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], blue));
    let slow: Vec<_> = (0..2)
        .map(|_| {
            std::thread::spawn(move || {
                Client::new(addr)
                    .request("GET", "/slow?ms=6000", b"")
                    .map(|r| r.0)
                    .ok()
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let r = env.hook("stop", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("drain of slot blue gave up after 1s with 2 connection(s) still open"),
        "{}",
        r.stderr
    );
    assert_eq!(env.member(blue), " down");
    assert!(!nonstop::process::port_in_use(blue));
    // The demo app shuts down gracefully, so the cut-off requests still got their answers.
    for h in slow {
        assert_eq!(h.join().unwrap(), Some(200));
    }
}

#[test]
fn refuses_to_take_the_last_healthy_slot_out() {
    let env = Env::balanced(2);
    env.deploy_all("v1"); // green live, blue in rotation
    let green = env.pid_of("green").unwrap();
    let blue = env.pid_of("blue").unwrap();
    // green's app dies; blue is now the only healthy slot in rotation.
    signal(green.pid, rustix::process::Signal::KILL);
    std::thread::sleep(Duration::from_millis(300));
    let before = env.upstream();
    let r = env.hook("stop", &[]); // idle = blue
    assert_eq!(r.code, 1);
    assert!(
        r.last_line()
            .contains("refusing to take slot blue out of rotation: it is the last healthy slot"),
        "{}",
        r.last_line()
    );
    assert_eq!(env.upstream(), before, "upstream untouched");
    assert!(
        nonstop::process::same_process(blue.pid, blue.start_time),
        "blue keeps running"
    );
    assert_eq!(
        api_versions(&env, 10).get("v1"),
        Some(&10),
        "nginx still serves through blue"
    );
}

#[test]
fn canary_weights_promote_and_abort() {
    let env = Env::balanced(2);
    env.deploy_all("v1"); // green live, blue in rotation, both v1
    let (blue, green) = (env.port_of("blue"), env.port_of("green"));
    env.stage_jar("v2");
    for b in ["stop", "start", "health"] {
        assert_eq!(env.hook(b, &[]).code, 0, "{b}");
    }
    assert_eq!(env.member(blue), " down");

    let r = env.hook("switch", &["--canary", "10"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(env.member(blue), " weight=10");
    assert_eq!(env.member(green), " weight=90");
    // nginx's weighted round robin is deterministic: one worker, one client in sequence,
    // weights 10:90 send exactly 10 of every 100 requests to the canary.
    let seen = api_versions(&env, 2000);
    eprintln!("canary 10%: {seen:?}");
    assert_eq!(
        seen,
        [("v1".to_string(), 1800), ("v2".to_string(), 200)].into(),
        "exactly 10% of 2000 requests reach the canary"
    );
    assert_eq!(
        env.include(),
        format!("set $service_url http://127.0.0.1:{green};\n").into_bytes(),
        "include unchanged by a canary"
    );

    let r = env.hook("switch", &["--abort"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(env.member(blue), " down");
    assert_eq!(env.member(green), "");
    assert_eq!(api_versions(&env, 200).keys().collect::<Vec<_>>(), ["v1"]);

    assert_eq!(env.hook("switch", &["--canary", "10"]).code, 0);
    let r = env.hook("switch", &["--promote"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(env.member(blue), "");
    assert_eq!(env.member(green), "");
    assert_eq!(
        env.include(),
        format!("set $service_url http://127.0.0.1:{blue};\n").into_bytes()
    );
    let seen = api_versions(&env, 200);
    assert_eq!(
        seen.get("v2"),
        Some(&100),
        "equal weights after promote: {seen:?}"
    );
    assert_eq!(env.state()["live"], "blue");
    assert_eq!(env.state()["previous"], "green");
    // Without balanced mode the canary flags are a usage error.
    let r = env.hook("switch", &["--promote", "--abort"]);
    assert_eq!(r.code, 2);
}

#[test]
fn an_upstream_file_listing_a_slot_twice_is_read_as_nginx_balances() {
    let env = Env::balanced(2);
    env.deploy_all("v1");
    let (blue, green) = (env.port_of("blue"), env.port_of("green"));
    // By hand: blue once `down`, once up. nginx takes every line as a server of its own.
    std::fs::write(
        env.upstream_path(),
        format!(
            "upstream demo {{\n    server 127.0.0.1:{blue} down;\n    server 127.0.0.1:{blue};\n    server 127.0.0.1:{green};\n}}\n"
        ),
    )
    .unwrap();
    env.run_nginx(&["-s", "reload"]);
    assert!(
        wait_until(Duration::from_secs(10), || {
            let r = env.nonstop(&["status", "--json"]);
            let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
            v["include"]["doubt"].is_null()
        }),
        "nginx loaded the file"
    );
    // nginx sends blue part of /api/ ...
    let mut to_blue = 0;
    for _ in 0..40 {
        let (s, body) = env.get("/api/");
        assert_eq!(s, 200, "{body}");
        if body.trim_end().ends_with(&format!(" {blue}")) {
            to_blue += 1;
        }
    }
    assert!(to_blue > 0, "nginx balances /api/ to blue too");
    // ... and status says blue is in rotation.
    let r = env.nonstop(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let b = v["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "blue")
        .unwrap();
    assert_eq!(b["rotation"], "in", "{b}");
}

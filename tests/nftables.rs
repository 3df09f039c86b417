//! nftables steering (`traffic.via: nftables`) with real nginx, real java and real nft, each
//! test in a network namespace of its own (the machine's rules are never touched): nginx
//! proxies to one front port and is never reloaded; nonstop's table DNATs new connections.

mod common;
use common::*;
use std::time::Duration;

/// The pids of the nginx master's workers (unchanged = nginx was not reloaded).
fn workers(env: &Env) -> Vec<i32> {
    let master: i32 = std::fs::read_to_string(env.path("nginx/nginx.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let mut w = nonstop::process::children(master);
    w.sort();
    w
}

fn table(env: &Env) -> String {
    let _ = env;
    let out = std::process::Command::new("nft")
        .args(["list", "table", "ip", "nonstop_demo"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn serves(env: &Env, version: &str) {
    for _ in 0..5 {
        let (status, body) = env.get("/");
        assert_eq!(status, 200, "{body}");
        assert!(
            body.starts_with(&format!("{version} ")),
            "want {version}, got {body:?}"
        );
    }
}

#[test]
fn blue_green_switches_lose_nothing_even_for_a_client_that_never_retries() {
    let env = Env::nftables(2);
    env.deploy("v1");
    serves(&env, "v1");
    let t = table(&env);
    assert!(
        t.contains(&format!(
            "tcp dport {} dnat to 127.0.0.1:{}",
            env.front.unwrap(),
            env.port_of("blue")
        )),
        "{t}"
    );
    let before = workers(&env);
    let load = Traffic::start(env.nginx_addr(), 6, Duration::from_millis(2));
    load.wait_requests(150);
    for v in ["v2", "v3", "v4"] {
        env.deploy(v);
        load.wait_requests(150);
    }
    let tally = load.finish();
    // No request failed, not even once before a retry.
    tally.assert_clean("three switches", 500, &["v1", "v2", "v3", "v4"]);
    assert_eq!(workers(&env), before, "nginx was never reloaded");
    serves(&env, "v4");
    assert_eq!(env.state()["live"], "green");
    let st = env.nonstop(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    assert_eq!(v["live"], "green", "{}", st.stdout);
    assert!(v["include"]["doubt"].is_null(), "{}", st.stdout);
    assert_eq!(v["traffic"]["via"], "nftables", "{}", st.stdout);
    // validate: nginx proxies to the front port, no upstream keepalive, the table matches.
    let val = env.nonstop(&["validate"]);
    for name in ["nginx front port", "nginx keepalive", "nftables"] {
        let line = val
            .stdout
            .lines()
            .find(|l| l.get(6..).is_some_and(|r| r.starts_with(name)))
            .unwrap_or_else(|| panic!("no {name} check in\n{}", val.stdout));
        assert!(line.starts_with("ok "), "{line}");
    }
}

#[test]
fn a_missing_or_changed_table_is_refused_and_switch_repairs_it() {
    let env = Env::nftables(2);
    env.deploy("v1");
    env.deploy("v2");
    serves(&env, "v2");
    let green = env.pid_of("green").unwrap();
    // As after a reboot before the boot unit ran: the table is gone, nothing is served.
    let st = std::process::Command::new("nft")
        .args(["delete", "table", "ip", "nonstop_demo"])
        .status()
        .unwrap();
    assert!(st.success());
    env.stage_jar("v3");
    let r = env.hook("stop", &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.last_line()
            .contains("table ip nonstop_demo is not loaded")
            && r.last_line().contains("switch --slot"),
        "{}",
        r.last_line()
    );
    assert!(
        green.running() && env.pid_of("blue").unwrap().running(),
        "nothing stopped"
    );
    let r = env.hook("switch", &["--slot", "green"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serves(&env, "v2");
    // Someone points the rule elsewhere by hand: the table's rule is not its recorded state.
    let t = table(&env).replace(
        &format!("127.0.0.1:{}", env.port_of("green")),
        &format!("127.0.0.1:{}", env.port_of("blue")),
    );
    std::fs::write(
        env.path("hand.nft"),
        format!("flush table ip nonstop_demo\n{t}"),
    )
    .unwrap();
    let st = std::process::Command::new("nft")
        .arg("-f")
        .arg(env.path("hand.nft"))
        .status()
        .unwrap();
    assert!(st.success());
    let r = env.hook("stop", &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.last_line().contains("was changed by someone else"),
        "{}",
        r.last_line()
    );
    serves(&env, "v1"); // what the hand-made rule does
    let r = env.hook("switch", &["--slot", "green"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serves(&env, "v2");
    env.deploy("v3");
    serves(&env, "v3");
    // The ruleset kept for the boot unit is the one loaded.
    let kept = std::fs::read_to_string(env.path("state/traffic.nft")).unwrap();
    assert!(
        kept.contains(&format!("dnat to 127.0.0.1:{}", env.port_of("blue"))),
        "{kept}"
    );
}

/// What `/` answers on fresh connections, `n` times, by version (each new connection is
/// steered by the table).
fn versions(env: &Env, n: usize) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for _ in 0..n {
        let (s, body) = env.get("/");
        assert_eq!(s, 200, "{body}");
        *out.entry(body.split_whitespace().next().unwrap().to_string())
            .or_insert(0) += 1;
    }
    out
}

#[test]
fn balanced_roll_of_three_slots_cuts_no_request_and_never_reloads_nginx() {
    let env = Env::nftables(3);
    env.edit_config("  via: nftables\n", "  via: nftables\n  balanced: true\n");
    env.deploy_all("v1");
    assert_eq!(versions(&env, 30).keys().collect::<Vec<_>>(), ["v1"]);
    let t = table(&env);
    assert!(
        t.contains("numgen random mod 3 map"),
        "all three in rotation: {t}"
    );
    let before = workers(&env);
    let load = Traffic::start(env.nginx_addr(), 4, Duration::from_millis(2));
    let slow = SlowRequests::start(env.nginx_addr(), "/slow?ms=3000", 6);
    let pinned = SlowRequests::per_slot_in_rotation(&env, 3000);
    std::thread::sleep(Duration::from_millis(500));
    load.wait_requests(100);
    let runs = env.deploy_all("v2");
    load.wait_requests(100);
    let tally = load.finish();
    let slow = slow.finish();
    let pinned = pinned.finish();
    tally.assert_clean("load", 200, &["v1", "v2"]);
    // No slow request cut.
    slow.assert_clean_among("slow", 6, &["v1", "v2"], &["v1"]);
    // Each slot left the map with a 3 s request in flight on it, and the drain waited for it.
    pinned.assert_clean_among("3-second requests on each slot", 3, &["v1", "v2"], &["v1"]);
    let logs: String = runs.iter().map(|r| r.stderr.as_str()).collect();
    for name in ["blue", "green", "red"] {
        assert!(
            logs.contains(&format!("draining slot {name}: ")),
            "slot {name} left rotation with a request in flight: {logs}"
        );
    }
    assert_eq!(workers(&env), before, "nginx was never reloaded");
    assert_eq!(versions(&env, 30).keys().collect::<Vec<_>>(), ["v2"]);
    // A canary in nftables mode: weights in the map, then promote.
    env.stage_jar("v3");
    for b in ["stop", "start", "health"] {
        let r = env.hook(b, &[]);
        assert_eq!(r.code, 0, "{b}: {}", r.stderr);
    }
    let r = env.hook("switch", &["--canary", "10"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = table(&env);
    assert!(t.contains("numgen random mod"), "{t}");
    let seen = versions(&env, 200);
    let v3 = seen.get("v3").copied().unwrap_or(0);
    assert!((5..=45).contains(&v3), "about 10% to the canary: {seen:?}");
    let r = env.hook("switch", &["--promote"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Promoted: the canary's slot is live, every slot in the map with one weight, and what
    // answers is v3 (the canary) and v2 (the two others), nothing else.
    let live = env.state()["live"].as_str().unwrap().to_string();
    let (st, body) = env.get_slot(&live, "/");
    assert_eq!(
        (st, body.split_whitespace().next()),
        (200, Some("v3")),
        "{body}"
    );
    let t = table(&env);
    let comment = t
        .lines()
        .find_map(|l| l.trim().strip_prefix("comment \"nonstop "))
        .unwrap_or_else(|| panic!("{t}"));
    assert!(
        comment.contains(&format!("live={} ", env.port_of(&live))),
        "{t}"
    );
    let rotation = comment
        .split_whitespace()
        .find_map(|p| p.strip_prefix("rotation="))
        .unwrap()
        .trim_end_matches('"');
    let weights: Vec<&str> = rotation
        .split(',')
        .map(|e| e.split_once(':').unwrap().1)
        .collect();
    assert_eq!(weights.len(), 3, "{t}");
    assert!(
        weights.iter().all(|w| *w == weights[0] && *w != "down"),
        "equal weights after promote: {t}"
    );
    assert_eq!(versions(&env, 60).keys().collect::<Vec<_>>(), ["v2", "v3"]);
}

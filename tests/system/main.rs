//! System tests on EC2-like hosts (`make system-test`, README "On an EC2 host"): each test
//! boots its own Debian 12 systemd-nspawn host with `tests/system/ec2host.sh` (systemd PID 1,
//! nginx.service, ec2-user with NOPASSWD sudo, a real reboot), installs the nginx site and a
//! CodeDeploy agent stand-in under the agent's real unit file, deploys bundles built by
//! `make system-test` through that agent, and checks what a user checks: HTTP answers counted
//! from this machine over the host bridge, hook exit codes, pids, `nonstop status --json`.
//!
//! Every test is `#[ignore]`d (they need root and the ec2host packages): `make test` builds them
//! and runs none; `make system-test` runs them one at a time (`--test-threads=1`), so the
//! timings asserted (a JVM back within its boot + 1 s) do not depend on another test's JVMs.

#[path = "../common/mod.rs"]
mod common;
mod host;
mod load;

use host::{Bundle, Hooks, Host};
use load::{get, Load};
use std::time::Duration;

/// v1 then v2 through the agent, v2 under load from outside: every hook exits 0, no request
/// fails (after one retry of a request that failed on a reused keep-alive connection).
fn v1_to_v2_under_load(name: &str, hooks: Hooks) {
    let host = Host::ec2(name, hooks);
    let d1 = host.deploy(&Bundle::of("v1").hooks(hooks));
    d1.assert_ok();
    if hooks == Hooks::Ec2User {
        assert!(
            d1.hooks
                .iter()
                .all(|h| h.runas.as_deref() == Some("ec2-user")),
            "every hook runs as ec2-user: {}",
            d1.summary()
        );
    }
    // As soon as the agent reports success, v1 should answer. Counted, not asserted: as a
    // non-root hook user nonstop cannot read nginx's sockets in /proc, so its reload
    // confirmation cannot see an old worker still accepting (it then serves the old
    // include: here 502 from the empty blue slot) — reported to the lead.
    let (stale, first) = answers_until_200(&host, Duration::from_secs(3));
    assert_eq!(first.trim(), "v1 real2 8082", "v1 serves on green");
    eprintln!(
        "[system] FIGURE {name}: after the v1 deployment succeeded, {stale} answer(s) other than 200 before v1 served"
    );

    let load = Load::start(host.addr(), 4, Duration::from_millis(5));
    std::thread::sleep(Duration::from_millis(1000));
    let d2 = host.deploy(&Bundle::of("v2").hooks(hooks));
    std::thread::sleep(Duration::from_millis(1000));
    let t = load.finish();
    d2.assert_ok();
    eprintln!(
        "[system] FIGURE {name}: v2 deployment {:.2?} ({}); load: {}",
        d2.took,
        d2.summary(),
        t.summary()
    );
    assert_eq!(
        t.failed,
        0,
        "requests failed during v1 -> v2: {}; {:?}",
        t.summary(),
        t.errors
    );
    assert!(
        t.versions.get("v1").copied().unwrap_or(0) > 0
            && t.versions.get("v2").copied().unwrap_or(0) > 0,
        "the load saw v1 then v2: {}",
        t.summary()
    );
    let (status, body) = get(host.addr(), Duration::from_secs(2));
    assert_eq!(
        (status, body.trim()),
        (200, "v2 real1 8081"),
        "v2 serves on blue"
    );

    let st = host.status();
    assert_eq!(st["live"], "blue", "{st:#}");
    assert_eq!(st["previous"], "green", "{st:#}");
    assert!(st["include"]["doubt"].is_null(), "{st:#}");
    for slot in st["slots"].as_array().unwrap() {
        assert!(
            slot["pid"].is_u64() && slot["health"]["ok"] == true,
            "both slots run healthy (live v2, v1 as the rollback target): {slot:#}"
        );
    }
}

/// GETs on fresh connections every 20 ms until one answers 200 (bounded by `limit`): how
/// many answered otherwise first, and the 200's body.
fn answers_until_200(host: &Host, limit: Duration) -> (usize, String) {
    let t0 = std::time::Instant::now();
    let mut other = 0;
    loop {
        let (status, body) = get(host.addr(), Duration::from_secs(1));
        if status == 200 {
            return (other, body);
        }
        other += 1;
        assert!(
            t0.elapsed() < limit,
            "no 200 from {} within {limit:?} ({other} answers: last {status})",
            host.name
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "needs EC2-like hosts: make system-test"]
fn a_v1_to_v2_through_the_agent_as_root() {
    v1_to_v2_under_load("nsys-a-root", Hooks::Root);
}

#[test]
#[ignore = "needs EC2-like hosts: make system-test"]
fn a_v1_to_v2_through_the_agent_runas_ec2_user() {
    v1_to_v2_under_load("nsys-a-runas", Hooks::Ec2User);
}

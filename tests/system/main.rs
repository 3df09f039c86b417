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
        // README: the apps run as the user the hooks run as.
        let user = host.sh_ok(&format!("ps -o user= -p {}", slot["pid"]));
        assert_eq!(user.trim(), hooks.user(), "the JVM's user: {slot:#}");
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

/// The slot NAME of a `status --json` document.
fn slot<'a>(st: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    st["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no slot {name} in {st:#}"))
}

/// A host where v1 (green) and then v2 (blue, live) were deployed through the agent as root.
fn two_deploys(name: &str) -> (Host, host::Deployment) {
    let host = Host::ec2(name, Hooks::Root);
    host.deploy(&Bundle::of("v1")).assert_ok();
    let d2 = host.deploy(&Bundle::of("v2"));
    d2.assert_ok();
    let (status, body) = get(host.addr(), Duration::from_secs(2));
    assert_eq!((status, body.trim()), (200, "v2 real1 8081"));
    (host, d2)
}

/// How long the app took from launch to healthy in a deployment: its start and health hooks.
fn boot_time(d: &host::Deployment) -> Duration {
    let ms = |loc: &str| d.hook(loc).map_or(0, |h| h.ms);
    Duration::from_millis(ms("bin/start") + ms("bin/health"))
}

/// The pid of SLOT's app per `status --json`.
fn pid(st: &serde_json::Value, name: &str) -> u64 {
    slot(st, name)["pid"]
        .as_u64()
        .unwrap_or_else(|| panic!("slot {name} has no pid: {st:#}"))
}

/// A slot that runs under systemd in its own unit, per status and per its /proc cgroup.
fn assert_in_own_unit(host: &Host, st: &serde_json::Value, name: &str) {
    let s = slot(st, name);
    let unit = format!("nonstop-myapp-{name}.service");
    assert_eq!(s["supervisor"], "systemd", "{s:#}");
    assert_eq!(s["unit"], unit.as_str(), "{s:#}");
    assert_eq!(s["active"], "active", "{s:#}");
    let cgroup = host.sh_ok(&format!("cat /proc/{}/cgroup", pid(st, name)));
    assert!(
        cgroup.contains(&format!("/system.slice/{unit}")),
        "slot {name}'s JVM is in its unit's cgroup, not the agent's: {cgroup}"
    );
}

#[test]
#[ignore = "needs EC2-like hosts: make system-test"]
fn b_agent_restart_leaves_the_jvms_running() {
    let (host, _) = two_deploys("nsys-b-agent");
    let st0 = host.status();
    let (live0, standby0) = (pid(&st0, "blue"), pid(&st0, "green"));
    assert_in_own_unit(&host, &st0, "blue");
    assert_in_own_unit(&host, &st0, "green");
    let agent0 = host.sh_ok("systemctl show -p MainPID --value codedeploy-agent");

    let probes = load::Probes::start(
        host.addr(),
        Duration::from_millis(100),
        Duration::from_secs(10),
    );
    std::thread::sleep(Duration::from_secs(1));
    let t0 = std::time::Instant::now();
    host.sh_ok("systemctl restart codedeploy-agent");
    let restart = t0.elapsed();
    let hits = probes.join();

    let agent1 = host.sh_ok("systemctl show -p MainPID --value codedeploy-agent");
    let st1 = host.status();
    eprintln!(
        "[system] FIGURE nsys-b-agent: systemctl restart codedeploy-agent took {restart:.2?} (agent pid {} -> {}); {}; live pid {live0} -> {}, standby pid {standby0} -> {}",
        agent0.trim(),
        agent1.trim(),
        load::describe(&hits),
        pid(&st1, "blue"),
        pid(&st1, "green"),
    );
    assert_ne!(agent0.trim(), agent1.trim(), "the agent was restarted");
    assert!(hits.len() >= 90, "{}", load::describe(&hits));
    assert!(
        hits.iter().all(|h| h.status == 200 && h.version == "v2"),
        "every probe got v2's 200: {}",
        load::describe(&hits)
    );
    assert_eq!(pid(&st1, "blue"), live0, "the live JVM's pid is unchanged");
    assert_eq!(
        pid(&st1, "green"),
        standby0,
        "the standby JVM's pid is unchanged"
    );
    assert_eq!(st1["live"], "blue");
}

#[test]
#[ignore = "needs EC2-like hosts: make system-test"]
fn c_reboot_brings_the_live_slot_back_with_no_deploy() {
    let (host, d2) = two_deploys("nsys-c-reboot");
    let boot = boot_time(&d2);
    let rebooted = host.reboot();
    // From here: the live slot's unit starts at boot; its JVM needs `boot` to answer.
    let t0 = std::time::Instant::now();
    let (other, body) = answers_until_200(&host, boot + Duration::from_secs(60));
    let back = rebooted + t0.elapsed();
    eprintln!(
        "[system] FIGURE nsys-c-reboot: ec2host.sh reboot {rebooted:.2?} (until nginx answered); site 200 again {back:.2?} after the reboot began ({other} other answers first; the app's own launch-to-healthy at deploy: {boot:.2?})"
    );
    assert_eq!(
        body.trim(),
        "v2 real1 8081",
        "the live slot serves v2 again"
    );
    assert!(
        t0.elapsed() <= boot + Duration::from_secs(60),
        "back within boot + health.deadline"
    );

    let st = host.status();
    assert_eq!(st["live"], "blue", "{st:#}");
    assert_eq!(st["include"]["port"], 8081, "{st:#}");
    assert!(
        st["include"]["doubt"].is_null(),
        "include, nginx and state agree: {st:#}"
    );
    let blue = slot(&st, "blue");
    assert_eq!(blue["state"], "live", "{blue:#}");
    assert_eq!(
        blue["enabled"], true,
        "the live slot starts at boot: {blue:#}"
    );
    assert_eq!(blue["health"]["ok"], true, "{blue:#}");
    assert_in_own_unit(&host, &st, "blue");
    let green = slot(&st, "green");
    assert_eq!(
        green["enabled"], false,
        "standby_at_boot is false: {green:#}"
    );
    assert_eq!(green["state"], "stopped", "{green:#}");
    assert_eq!(
        st["deployments"].as_array().map(Vec::len),
        Some(2),
        "no deployment ran after the reboot: {st:#}"
    );
}

#[test]
#[ignore = "needs EC2-like hosts: make system-test"]
fn d_kill_9_is_restarted_and_a_crashing_standby_is_not_forever() {
    let (host, d2) = two_deploys("nsys-d-crash");
    let boot = boot_time(&d2);
    let st0 = host.status();
    let pid0 = pid(&st0, "blue");
    let restarts0 = slot(&st0, "blue")["restarts"].as_u64().unwrap_or(0);

    let probes = load::Probes::start(
        host.addr(),
        Duration::from_millis(100),
        boot + Duration::from_secs(6),
    );
    std::thread::sleep(Duration::from_secs(1));
    host.sh_ok(&format!("kill -9 {pid0}"));
    let hits = probes.join();
    let outage = load::longest_outage(&hits);
    let st1 = host.status();
    let blue = slot(&st1, "blue");
    eprintln!(
        "[system] FIGURE nsys-d-crash: kill -9 of the live JVM: {}; bound boot {boot:.2?} + 1 s; restarts {restarts0} -> {}, pid {pid0} -> {}",
        load::describe(&hits),
        blue["restarts"],
        blue["pid"]
    );
    assert!(
        outage <= boot + Duration::from_secs(1),
        "site back within the JVM's boot ({boot:?}) + 1 s: {}",
        load::describe(&hits)
    );
    assert!(
        hits.last()
            .is_some_and(|h| h.status == 200 && h.version == "v2"),
        "{}",
        load::describe(&hits)
    );
    assert_ne!(blue["pid"].as_u64(), Some(pid0), "a new JVM: {blue:#}");
    assert_eq!(
        blue["restarts"].as_u64(),
        Some(restarts0 + 1),
        "status counts the restart: {blue:#}"
    );
    assert_eq!(blue["active"], "active", "{blue:#}");
    assert_eq!(st1["live"], "blue");

    // A standby that crashes at every boot (only green's profile, real2, crashes).
    let load = Load::start(host.addr(), 2, Duration::from_millis(10));
    let crashing = Bundle::of("v2").edit(
        "nonstop.yml",
        "\"-Ddemo.boot-ms=1000\"]",
        "\"-Ddemo.boot-ms=1000\", \"-Ddemo.crash-profiles=real2\"]",
    );
    let d3 = host.deploy(&crashing);
    assert_eq!(d3.status, "Failed", "{}", d3.summary());
    let health = d3.hook("bin/health").expect("health ran");
    assert_eq!(health.exit_code, Some(1), "health fails: {}", health.output);
    assert!(
        d3.hook("bin/switch").is_none(),
        "switch never ran: {}",
        d3.summary()
    );
    // The unit gives up (start limit) and stays down.
    let t0 = std::time::Instant::now();
    let given_up = loop {
        let s = host.status();
        let g = slot(&s, "green").clone();
        if g["active"] == "failed" || g["active"] == "inactive" {
            break g;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(90),
            "green keeps restarting: {g:#}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    std::thread::sleep(Duration::from_secs(5));
    let st3 = host.status();
    let green = slot(&st3, "green");
    let t = load.finish();
    eprintln!(
        "[system] FIGURE nsys-d-crash: crashing standby: {}; unit {} with {} restarts, still {} with {} restarts 5 s later; load meanwhile: {}",
        d3.summary(),
        given_up["active"],
        given_up["restarts"],
        green["active"],
        green["restarts"],
        t.summary()
    );
    assert_eq!(
        green["restarts"], given_up["restarts"],
        "no more restarts: {green:#}"
    );
    assert!(
        green["restarts"].as_u64().is_some_and(|n| n <= 3),
        "a start limit stops it: {green:#}"
    );
    assert_ne!(green["state"], "live");
    assert_eq!(st3["live"], "blue", "{st3:#}");
    assert_eq!(st3["include"]["port"], 8081, "{st3:#}");
    assert_eq!(t.failed, 0, "{}: {:?}", t.summary(), t.errors);
    assert_eq!(
        t.versions.keys().collect::<Vec<_>>(),
        ["v2"],
        "{}",
        t.summary()
    );
}

#[test]
#[ignore = "needs EC2-like hosts: make system-test"]
fn e_logs_show_the_apps_output_from_the_journal() {
    let host = Host::ec2("nsys-e-logs", Hooks::Root);
    host.deploy(&Bundle::of("v1")).assert_ok();
    let o = host.nonstop(&["logs", "green", "-n", "20"]);
    assert_eq!(o.code, 0, "nonstop logs green: {}", o.stderr);
    eprintln!(
        "[system] FIGURE nsys-e-logs: nonstop logs green -n 20:\n{}",
        o.stdout.trim_end()
    );
    assert!(
        o.stdout
            .contains("DemoApp version=v1 profile=real2 port=8082")
            && o.stdout.contains("Started DemoApp on port 8082"),
        "the app's own lines: {}",
        o.stdout
    );
    let live = host.nonstop(&["logs"]);
    assert_eq!(live.code, 0, "nonstop logs: {}", live.stderr);
    assert!(
        live.stdout.contains("Started DemoApp on port 8082"),
        "the live slot's: {}",
        live.stdout
    );
    // They come from the journal, where systemd put the unit's output; no log file is written.
    let journal = host.sh_ok("journalctl -u nonstop-myapp-green.service -o cat --no-pager");
    assert!(
        journal.contains("Started DemoApp on port 8082"),
        "{journal}"
    );
    assert!(
        host.read("/opt/nonstop/myapp/logs/green.log").is_none(),
        "under systemd the output goes to the journal only"
    );
}

//! nftables steering (`traffic.via: nftables`) with real nginx, real java and real nft, each
//! test in a network namespace of its own (the machine's rules are never touched): nginx
//! proxies to one front port and is never reloaded; nonstop's table DNATs new connections.

mod common;
use common::*;
use std::time::Duration;

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
    let before = env.nginx_workers();
    let load = Traffic::start(env.nginx_addr(), 6, Duration::from_millis(2));
    load.wait_requests(150);
    for v in ["v2", "v3", "v4"] {
        env.deploy(v);
        load.wait_requests(150);
    }
    let tally = load.finish();
    // No request failed, not even once before a retry.
    tally.assert_clean("three switches", 500, &["v1", "v2", "v3", "v4"]);
    assert_eq!(env.nginx_workers(), before, "nginx was never reloaded");
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
    let before = env.nginx_workers();
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
    assert_eq!(env.nginx_workers(), before, "nginx was never reloaded");
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

// ---------- the nft command, nft missing, the drain, and what the messages name ----------

/// Spawn `bundle/bin/BIN ARGS` as the agent runs a hook (cwd /, stdin closed, a process group
/// of its own so the test can SIGTERM the group as the agent does), with `path_first` first on
/// PATH when given.
fn spawn_hook(
    env: &Env,
    bin: &str,
    args: &[&str],
    path_first: Option<&std::path::Path>,
) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    let mut c = std::process::Command::new(env.path("bundle/bin").join(bin));
    c.args(args)
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .env_remove("NONSTOP_CONFIG")
        .env("DEPLOYMENT_ID", "d-TEST")
        .env("LIFECYCLE_EVENT", "ValidateService")
        .process_group(0);
    if let Some(dir) = path_first {
        c.env(
            "PATH",
            format!("{}:{}", dir.display(), std::env::var("PATH").unwrap()),
        );
    }
    c.spawn().unwrap()
}

/// Wait for a spawned hook: its exit code and stderr (echoed).
fn finish(child: std::process::Child, what: &str) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("--- {what} exit {:?}\n{stderr}", out.status.code());
    (out.status.code().unwrap_or(-1), stderr)
}

fn last_line(stderr: &str) -> &str {
    stderr.lines().last().unwrap_or("")
}

#[test]
fn nft_killed_or_failing_after_its_commit_is_read_back_from_the_kernel() {
    let env = Env::nftables(2);
    env.deploy("v1"); // blue
                      // A real nft, run through a script first on PATH whose behaviour for `nft -f` (not
                      // `nft -c -f`) the file `mode` picks: the commit, then a hang before its answer (as nft
                      // taking its time when the agent's timeout SIGTERMs the hook's group); the commit, then
                      // a failure with no answer; a failure before any commit; the commit and its answer,
                      // then a slow exit (closing its netlink socket waits for the kernel's reclaim).
    let dir = env.path("nft-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let real = which::which("nft").unwrap();
    let d = dir.display();
    let script = format!(
        "#!/bin/bash\n\
         if [ \"$1\" = -f ]; then\n\
         case \"$(cat {d}/mode)\" in\n\
         commit-then-hang) out=$({r} \"$@\") || exit; touch {d}/committed; sleep 5; printf '%s\\n' \"$out\"; exit 0;;\n\
         commit-then-fail) {r} \"$@\" >/dev/null; echo 'Error: interrupted after its commit' >&2; exit 1;;\n\
         answer-then-linger) {r} \"$@\" || exit; sleep 5; touch {d}/ended; exit 0;;\n\
         fail-before) echo 'Error: Could not process rule: Device or resource busy' >&2; exit 1;;\n\
         esac\n\
         fi\n\
         exec {r} \"$@\"\n",
        r = real.display()
    );
    std::fs::write(dir.join("mode"), "commit-then-hang").unwrap();
    std::fs::write(dir.join("nft"), script).unwrap();
    std::fs::set_permissions(
        dir.join("nft"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let ready = |v: &str| {
        env.stage_jar(v);
        for b in ["stop", "start", "health"] {
            let r = env.hook(b, &[]);
            assert_eq!(r.code, 0, "{b}: {}", r.stderr);
        }
    };

    // The agent's SIGTERM to the hook's group lands while nft runs, after its commit.
    ready("v2");
    let child = spawn_hook(&env, "switch", &[], Some(&dir));
    let pgid = child.id() as i32;
    assert!(
        wait_until(Duration::from_secs(60), || dir.join("committed").exists()),
        "nft -f ran"
    );
    signal_group(pgid, rustix::process::Signal::TERM);
    let (code, stderr) = finish(child, "switch (SIGTERM while nft runs)");
    assert_eq!(code, 0, "traffic moved, so the switch succeeded: {stderr}");
    assert!(
        stderr.contains("a termination signal arrived during the nft transaction"),
        "{stderr}"
    );
    serves(&env, "v2");
    assert_eq!(env.state()["live"], "green");

    // nft fails after its commit: the kernel's table is read back, the switch stands.
    std::fs::write(dir.join("mode"), "commit-then-fail").unwrap();
    ready("v3");
    let (code, stderr) = finish(
        spawn_hook(&env, "switch", &[], Some(&dir)),
        "switch (nft fails after its commit)",
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("but the kernel holds the table meant"),
        "{stderr}"
    );
    serves(&env, "v3");
    assert_eq!(env.state()["live"], "blue");

    // nft fails before committing anything: exit 1, and the read-back says nothing changed.
    std::fs::write(dir.join("mode"), "fail-before").unwrap();
    ready("v4");
    let (code, stderr) = finish(
        spawn_hook(&env, "switch", &[], Some(&dir)),
        "switch (nft fails before its commit)",
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        last_line(&stderr)
            .contains("read back from the kernel: the table is as before: nothing changed"),
        "{}",
        last_line(&stderr)
    );
    serves(&env, "v3");
    assert_eq!(env.state()["live"], "blue");
    let r = env.hook("switch", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serves(&env, "v4");

    // The kernel's answer (the echo up to its new generation) ends the transaction: the switch
    // does not wait for nft's exit.
    std::fs::write(dir.join("mode"), "answer-then-linger").unwrap();
    ready("v5");
    let (code, stderr) = finish(
        spawn_hook(&env, "switch", &[], Some(&dir)),
        "switch (nft answers, then takes its time to exit)",
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !dir.join("ended").exists(),
        "the switch waited for nft's exit after the kernel's answer: {stderr}"
    );
    serves(&env, "v5");
    assert_eq!(env.state()["live"], "blue");
}

/// Run `bundle/bin/BIN ARGS` (or `nonstop ARGS`) in a mount namespace of its own where
/// /usr/sbin holds everything but `nft` (nft is not installed there, nginx and the rest are).
fn without_nft(env: &Env, bin: &str, args: &[&str]) -> (i32, String, String) {
    let t = env.path("no-nft");
    let bin_path = env.path("bundle/bin").join(bin);
    if bin == "nonstop" && !bin_path.is_file() {
        std::fs::copy(bin_dir().join("nonstop"), &bin_path).unwrap();
    }
    let script = format!(
        "set -e\nmkdir -p {t}/orig {t}/sbin\nmount --bind /usr/sbin {t}/orig\n\
         for f in {t}/orig/*; do n=$(basename \"$f\"); [ \"$n\" = nft ] || ln -sfn \"$f\" {t}/sbin/$n; done\n\
         mount --bind {t}/sbin /usr/sbin\n! command -v nft >/dev/null\nexec \"$@\"\n",
        t = t.display()
    );
    let out = std::process::Command::new("unshare")
        .args([
            "-m",
            "--propagation",
            "private",
            "bash",
            "-c",
            &script,
            "bash",
        ])
        .arg(&bin_path)
        .args(args)
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .env_remove("NONSTOP_CONFIG")
        .env("DEPLOYMENT_ID", "d-TEST")
        .env("LIFECYCLE_EVENT", "AfterInstall")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&t);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "--- {bin} {args:?} without nft: exit {:?}\n{stdout}{stderr}",
        out.status.code()
    );
    (out.status.code().unwrap_or(-1), stdout, stderr)
}

#[test]
fn nft_missing_is_said_first_by_validate_stop_switch_and_status() {
    let env = Env::nftables(2);
    env.stage_jar("v1");
    let missing = "nft is not installed";
    // validate names it in its nftables check.
    let (_, out, _) = without_nft(&env, "nonstop", &["validate"]);
    let line = out
        .lines()
        .find(|l| l.get(6..).is_some_and(|r| r.starts_with("nftables")))
        .unwrap_or_else(|| panic!("no nftables check in\n{out}"));
    assert!(line.starts_with("FAIL") && line.contains(missing), "{line}");
    // A first deploy stops at its first hook, saying why, before anything is launched.
    let (code, _, err) = without_nft(&env, "stop", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(last_line(&err).contains(missing), "{}", last_line(&err));
    let (code, _, err) = without_nft(&env, "switch", &["--slot", "blue"]);
    assert_eq!(code, 1, "{err}");
    assert!(last_line(&err).contains(missing), "{}", last_line(&err));
    // With the site served, status says nft is missing, not that the table is not loaded.
    env.deploy("v1");
    serves(&env, "v1");
    let (code, out, err) = without_nft(&env, "nonstop", &["status"]);
    assert_eq!(code, 0, "{err}");
    let doubt = out
        .lines()
        .find(|l| l.starts_with("DOUBT"))
        .unwrap_or_else(|| panic!("no DOUBT line in\n{out}"));
    assert!(
        doubt.contains(missing) && !doubt.contains("not loaded"),
        "{doubt}"
    );
    let (code, _, err) = without_nft(&env, "stop", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(last_line(&err).contains(missing), "{}", last_line(&err));
    serves(&env, "v1");
    assert!(env.pid_of("blue").unwrap().running(), "nothing stopped");
}

#[test]
fn a_drain_waits_for_a_connection_the_slot_has_not_accepted_yet() {
    let env = Env::nftables_with(2, App::StandIn, true);
    env.deploy_all("v1"); // blue live, both slots in rotation
    let green = env.pid_of("green").unwrap();
    // green's JVM stops accepting: the kernel still completes handshakes into its listen
    // queue, where a connection has no inode until the app accepts it.
    signal(green.pid, rustix::process::Signal::STOP);
    let addr = env.nginx_addr();
    let mut pending = None;
    for _ in 0..60 {
        let (tx, rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            let r = Client::new(addr).request("GET", "/", b"");
            let _ = tx.send(());
            r
        });
        if rx.recv_timeout(Duration::from_millis(500)).is_err() {
            pending = Some(h); // steered to green, waiting in its queue
            break;
        }
        let (s, body) = h.join().unwrap().unwrap();
        assert_eq!(s, 200, "{body}");
    }
    let pending = pending.expect("one request was steered to green");
    let (code, stderr) = std::thread::scope(|s| {
        let stop = s.spawn(|| finish(spawn_hook(&env, "stop", &["--slot", "green"], None), "stop"));
        std::thread::sleep(Duration::from_millis(1500));
        signal(green.pid, rustix::process::Signal::CONT);
        stop.join().unwrap()
    });
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("draining slot green: 1 connection(s) in flight"),
        "the drain saw the queued connection: {stderr}"
    );
    let (s, body) = pending
        .join()
        .unwrap()
        .expect("the queued request was served");
    assert_eq!(s, 200, "{body}");
    assert!(body.starts_with("v1 "), "{body}");
}

#[test]
fn nftables_messages_name_the_table_the_recorded_slot_and_a_command_that_works() {
    let env = Env::nftables(2);
    env.deploy("v1"); // blue
    env.stage_jar("v2");
    for b in ["stop", "start", "health"] {
        assert_eq!(env.hook(b, &[]).code, 0);
    }
    let r = env.hook("switch", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("steered new connections from slot blue")
            && !r.stderr.contains("switched nginx"),
        "nginx is never touched in nftables mode: {}",
        r.stderr
    );
    serves(&env, "v2");
    let val = env.nonstop(&["validate"]);
    assert!(
        val.stdout.contains("passed: 1 file loaded"),
        "{}",
        val.stdout
    );
    // The table is gone, both slots run: the hint names the recorded live slot.
    let st = std::process::Command::new("nft")
        .args(["delete", "table", "ip", "nonstop_demo"])
        .status()
        .unwrap();
    assert!(st.success());
    let r = env.hook("stop", &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.last_line().contains("run `nonstop switch --slot green`")
            && !r.last_line().contains("NAME"),
        "{}",
        r.last_line()
    );
    // The command works as printed.
    let s = env.nonstop(&["switch", "--slot", "green"]);
    assert_eq!(s.code, 0, "{}", s.stderr);
    serves(&env, "v2");
    // The state file disagrees with the table: the doubt names the table, not the include
    // nginx never reads in this mode.
    let mut state = env.state();
    state["live"] = "blue".into();
    std::fs::write(env.path("state/state.json"), state.to_string()).unwrap();
    let r = env.hook("stop", &[]);
    assert_eq!(r.code, 1);
    let last = r.last_line();
    assert!(
        last.contains("but nftables table ip nonstop_demo names slot green")
            && !last.contains("service-url.inc")
            && last.contains("`nonstop switch --slot green`"),
        "{last}"
    );
    let st = env.nonstop(&["status"]);
    let doubt = st
        .stdout
        .lines()
        .find(|l| l.starts_with("DOUBT"))
        .unwrap_or_else(|| panic!("no DOUBT line in\n{}", st.stdout));
    assert!(
        !doubt.contains("service-url.inc") && doubt.contains("`nonstop switch --slot green`"),
        "{doubt}"
    );
    let s = env.nonstop(&["switch", "--slot", "green"]);
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert_eq!(env.state()["live"], "green");
    serves(&env, "v2");
}

/// A directory holding an `nft` first on PATH that appends each invocation's arguments to
/// `calls` in it and runs the real nft.
fn counting_nft(env: &Env) -> std::path::PathBuf {
    let dir = env.path("nft-count");
    std::fs::create_dir_all(&dir).unwrap();
    let real = which::which("nft").unwrap();
    std::fs::write(
        dir.join("nft"),
        format!(
            "#!/bin/bash\necho \"$*\" >> {}/calls\nexec {} \"$@\"\n",
            dir.display(),
            real.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(
        dir.join("nft"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    dir
}

/// The nft invocations the counting wrapper saw since the last call, a path shown by its file
/// name.
fn nft_calls(dir: &std::path::Path) -> Vec<String> {
    let calls = std::fs::read_to_string(dir.join("calls")).unwrap_or_default();
    let _ = std::fs::remove_file(dir.join("calls"));
    calls
        .lines()
        .map(|l| {
            l.split(' ')
                .map(|a| a.rsplit('/').next().unwrap_or(a))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

#[test]
fn a_switch_and_a_rollback_run_nft_twice_one_listing_and_one_transaction() {
    let env = Env::nftables(2);
    env.deploy("v1");
    env.deploy("v2"); // green live, blue runs v1
    let dir = counting_nft(&env);
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap());
    let once = vec![
        "list table ip nonstop_demo".to_string(),
        "-f traffic.nft.next -e".to_string(),
    ];
    // The switch hook to the idle slot, as the agent runs it.
    env.stage_jar("v3");
    for b in ["stop", "start", "health"] {
        let r = env.hook(b, &[]);
        assert_eq!(r.code, 0, "{b}: {}", r.stderr);
    }
    let _ = nft_calls(&dir);
    let r = env.hook_env("switch", &[], &[("PATH", &path)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(nft_calls(&dir), once, "{}", r.stderr);
    serves(&env, "v3");
    // A rollback to the slot that still runs its release: the same two.
    let bin = env.path("bundle/bin/nonstop");
    std::fs::copy(bin_dir().join("nonstop"), &bin).unwrap();
    let out = std::process::Command::new(&bin)
        .arg("rollback")
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .env_remove("NONSTOP_CONFIG")
        .env("PATH", &path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(nft_calls(&dir), once, "{stderr}");
    serves(&env, "v2");
    assert_eq!(env.state()["live"], "green");
    // A switch to the slot already live changes nothing: the listing alone.
    let r = env.hook_env("switch", &["--slot", "green"], &[("PATH", &path)]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(nft_calls(&dir), once[..1], "{}", r.stderr);
}

fn nft(args: &[&str]) {
    let st = std::process::Command::new("nft")
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "nft {args:?}");
}

/// The table is compared whole: a rule nonstop did not write, inserted by hand before its own
/// (which the own rule's check alone did not see), is a doubt: `status` shows it, a plain
/// `stop` refuses to stop the idle slot the hand-made rule now serves from, and `switch`
/// repairs it. So is a chain or a set of someone else's in nonstop's table.
#[test]
fn a_rule_nonstop_did_not_write_is_a_doubt_and_a_plain_stop_refuses() {
    let env = Env::nftables(2);
    env.deploy("v1");
    env.deploy("v2");
    serves(&env, "v2");
    let (front, blue) = (env.front.unwrap(), env.port_of("blue"));
    let redirect = format!("tcp dport {front} redirect to :{blue}");
    nft(&["insert", "rule", "ip", "nonstop_demo", "out", &redirect]);
    serves(&env, "v1"); // what the hand-made rule does: blue, the idle slot, serves
    let st = env.nonstop(&["status", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    let doubt = v["include"]["doubt"].as_str().unwrap_or_default();
    assert!(
        doubt.contains("was changed by someone else") && doubt.contains(&redirect),
        "{}",
        st.stdout
    );
    let text = env.nonstop(&["status"]).stdout;
    assert!(text.contains("DOUBT"), "{text}");
    let blue_pid = env.pid_of("blue").unwrap();
    let r = env.hook("stop", &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.last_line().contains(&redirect) && r.last_line().contains("switch --slot"),
        "{}",
        r.last_line()
    );
    assert!(blue_pid.running(), "the slot that serves was not stopped");
    serves(&env, "v1");
    let r = env.hook("switch", &["--slot", "green"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serves(&env, "v2");
    assert!(!table(&env).contains("redirect"), "{}", table(&env));
    // A chain of someone else's in nonstop's table.
    nft(&["add", "chain", "ip", "nonstop_demo", "mine"]);
    let r = env.hook("stop", &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.last_line().contains("chain mine"), "{}", r.last_line());
    let r = env.hook("switch", &["--slot", "green"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = env.hook("stop", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// The steering unit's watch (`nonstop steer --watch`, here its loop in this test's network
/// namespace): after `nft flush ruleset`, and after the table alone is deleted, the table is
/// loaded again by itself from the recorded steering, the site answers from the live slot,
/// and `status` says what happened. A table changed by hand is left for the operator.
#[test]
fn a_flushed_ruleset_is_followed_by_the_table_loaded_again_by_itself() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let env = Env::nftables(2);
    env.deploy("v1");
    env.deploy("v2");
    serves(&env, "v2");
    let cfg = nonstop::config::load(Some(&env.config_path())).unwrap();
    let entry =
        nonstop::registry::Entry::of(&cfg, "root", std::path::Path::new("/usr/bin/nonstop"));
    let front = env.front.unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let watcher = {
        let (entry, stop) = (entry.clone(), stop.clone());
        std::thread::spawn(move || nonstop::traffic::watcher::watch_entry(&entry, front, &stop))
    };
    let steers = format!(
        "tcp dport {front} dnat to 127.0.0.1:{}",
        env.port_of("green")
    );
    std::thread::sleep(Duration::from_millis(300));
    let load = Traffic::start(env.nginx_addr(), 4, Duration::from_millis(2));
    load.wait_requests(100);
    for (what, args) in [
        ("nft flush ruleset", &["flush", "ruleset"][..]),
        (
            "nft delete table ip nonstop_demo",
            &["delete", "table", "ip", "nonstop_demo"],
        ),
    ] {
        let t0 = std::time::Instant::now();
        nft(args);
        let back = wait_until(Duration::from_secs(10), || table(&env).contains(&steers));
        eprintln!(
            "FIGURE: table back {:.0?} after `{what}` returned",
            t0.elapsed()
        );
        assert!(back, "the table is back after `{what}`: {}", table(&env));
        serves(&env, "v2");
        load.wait_requests(100);
    }
    let t = load.finish();
    eprintln!("FIGURE: load across two flushes: {}", t.summary());
    // The table was gone for a moment: a new connection then reached no slot (nginx 502);
    // nothing answered but v2.
    t.assert_versions_among("load across two flushes", &["v2"], &["v2"]);
    // The history says it (the event is written by a thread of the watch, under the lock).
    let restored = || {
        env.state()["history"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "restore")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(
        wait_until(Duration::from_secs(5), || restored().len() == 2),
        "{:#}",
        env.state()
    );
    for e in restored() {
        assert_eq!(e["outcome"], "ok", "{e}");
        assert_eq!(e["slot"], "green", "{e}");
        let note = e["note"].as_str().unwrap();
        assert!(
            note.contains("table ip nonstop_demo was deleted at") && note.contains("(nft)"),
            "{note}"
        );
    }
    let st = env.nonstop(&["status"]).stdout;
    assert!(
        st.contains("restored") && st.contains("table ip nonstop_demo was deleted at"),
        "{st}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&env.nonstop(&["status", "--json"]).stdout).unwrap();
    assert_eq!(json["traffic"]["restored"]["slot"], "green", "{json:#}");
    assert!(json["include"]["doubt"].is_null(), "{json:#}");
    // A rule inserted by hand is not undone: it is the operator's doubt to settle.
    let redirect = format!("tcp dport {front} redirect to :{}", env.port_of("blue"));
    nft(&["insert", "rule", "ip", "nonstop_demo", "out", &redirect]);
    std::thread::sleep(Duration::from_millis(500));
    assert!(table(&env).contains(&redirect), "{}", table(&env));
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap().unwrap();
    assert_eq!(restored().len(), 2);
    let r = env.hook("switch", &["--slot", "green"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

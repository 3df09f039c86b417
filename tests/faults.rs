//! Fault injection with real nginx and real java: v1 is live, one fault is injected into the
//! deploy of v2 (or into the host), and each case asserts what a user would check: nginx still
//! serves the old version (or the state the fault allows), the exit code and the last log
//! line say what happened, and nothing on disk is half-written. RELIABILITY.md lists the cases.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// v1 live on green (the include pointed at blue with nothing there, so green was idle).
fn with_v1_live(mut env: Env) -> Env {
    env.deploy("v1");
    assert_serves(&env, "v1");
    env.java_opts.retain(|o| !o.starts_with("-Ddemo.boot-ms"));
    env.java_opts.push("-Ddemo.boot-ms=300".into());
    env
}

/// nginx answers `/` with `version` every time.
fn assert_serves(env: &Env, version: &str) {
    for _ in 0..5 {
        let (status, body) = env.get("/");
        assert_eq!(status, 200, "nginx serves: {body}");
        assert!(
            body.starts_with(&format!("{version} ")),
            "nginx serves {version}, got {body:?}"
        );
    }
}

/// The include names a slot, no temp file is left anywhere, and the state file parses.
fn assert_nothing_half_written(env: &Env) {
    let text = String::from_utf8(env.include()).unwrap();
    let port = nonstop::nginx::parse_include(&text, "service_url")
        .unwrap()
        .expect("include names a port");
    assert!(env.ports.contains(&port), "include names a slot: {text}");
    for dir in ["nginx", "state", "work/run", "work/releases"] {
        for e in walk(&env.path(dir)) {
            let name = e.file_name().unwrap().to_string_lossy().to_string();
            assert!(
                !name.ends_with(".tmp") && name != ".copying",
                "left behind: {}",
                e.display()
            );
        }
    }
    if let Ok(bytes) = std::fs::read(env.path("state/state.json")) {
        serde_json::from_slice::<serde_json::Value>(&bytes).expect("state.json parses");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Run a hook binary in its own process group (as the CodeDeploy agent does) and send the
/// group SIGTERM after `after`, as the agent does at a hook's timeout.
fn hook_terminated(
    env: &Env,
    bin: &str,
    args: &[&str],
    after: Duration,
) -> (i32, String, Duration) {
    use std::os::unix::process::CommandExt;
    let t0 = Instant::now();
    let child = Command::new(env.path("bundle/bin").join(bin))
        .args(args)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    let pgid = child.id();
    std::thread::sleep(after);
    signal_group(pgid as i32, rustix::process::Signal::TERM);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "--- {bin} (SIGTERM after {after:?}) exit {:?}\n{stderr}",
        out.status.code()
    );
    (out.status.code().unwrap_or(-1), stderr, t0.elapsed())
}

fn last(stderr: &str) -> &str {
    stderr.lines().last().unwrap_or("")
}

#[test]
fn health_never_passes() {
    let mut env = with_v1_live(Env::new(2));
    env.java_opts.push("-Ddemo.unhealthy=true".into());
    env.write_config();
    env.edit_config("deadline: 30s", "deadline: 2s");
    env.stage_jar("v2");
    assert_eq!(env.hook("stop", &[]).code, 0);
    assert_eq!(env.hook("start", &[]).code, 0);
    let h = env.hook("health", &[]);
    assert_eq!(h.code, 1);
    assert!(
        h.last_line().contains("slot blue not healthy") && h.last_line().contains("HTTP 503"),
        "{}",
        h.last_line()
    );
    let s = env.hook("switch", &[]);
    assert_eq!(s.code, 1);
    assert!(
        s.last_line().contains("refusing to switch to slot blue"),
        "{}",
        s.last_line()
    );
    assert_serves(&env, "v1");
    assert_nothing_half_written(&env);
}

#[test]
fn app_crashes_at_boot() {
    let mut env = with_v1_live(Env::new(2));
    env.java_opts.push("-Ddemo.crash-at-boot=true".into());
    env.write_config();
    env.stage_jar("v2");
    assert_eq!(env.hook("start", &[]).code, 0);
    let h = env.hook("health", &[]);
    assert_eq!(h.code, 1);
    assert!(h.stderr.contains("APPLICATION FAILED TO START"));
    assert!(
        h.last_line().contains("exited with exit status 3"),
        "{}",
        h.last_line()
    );
    assert_eq!(env.hook("switch", &[]).code, 1);
    assert_serves(&env, "v1");
    assert_nothing_half_written(&env);
}

#[test]
fn app_exits_after_health_before_switch() {
    let mut env = with_v1_live(Env::new(2));
    env.java_opts.push("-Ddemo.exit-after-ms=1500".into());
    env.write_config();
    env.stage_jar("v2");
    assert_eq!(env.hook("start", &[]).code, 0);
    assert_eq!(env.hook("health", &[]).code, 0, "healthy for a moment");
    let pf = env.pid_of("blue").unwrap();
    wait_until(Duration::from_secs(20), || !nonstop::process::alive(pf.pid));
    let s = env.hook("switch", &[]);
    assert_eq!(s.code, 1);
    assert!(
        s.last_line().contains("refusing to switch to slot blue")
            && s.last_line().contains("runs no app")
            && s.last_line().contains("that process is gone"),
        "{}",
        s.last_line()
    );
    assert_serves(&env, "v1");
    assert_nothing_half_written(&env);
}

#[test]
fn app_ignores_sigterm() {
    let mut env = with_v1_live(Env::new(2));
    env.java_opts.push("-Ddemo.ignore-sigterm=true".into());
    env.write_config();
    env.edit_config("grace: 10s", "grace: 1s");
    env.stage_jar("v2");
    assert_eq!(env.hook("start", &[]).code, 0);
    assert_eq!(env.hook("health", &[]).code, 0);
    let pf = env.pid_of("blue").unwrap();
    let r = env.hook("stop", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("sending SIGKILL") && r.last_line().contains("stop done"),
        "{}",
        r.stderr
    );
    assert!(!nonstop::process::alive(pf.pid));
    assert_serves(&env, "v1");
    assert_nothing_half_written(&env);
}

#[test]
fn port_taken_by_a_foreign_process() {
    let env = with_v1_live(Env::new(2));
    let port = env.port_of("blue");
    let mut foreign = foreign_listener(port);
    env.stage_jar("v2");
    let r = env.hook("stop", &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.last_line().contains("refusing to stop pid"),
        "{}",
        r.last_line()
    );
    let r = env.hook("start", &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.last_line()
            .contains(&format!("port {port} of slot blue is in use by pid")),
        "{}",
        r.last_line()
    );
    assert!(
        foreign.try_wait().unwrap().is_none(),
        "the foreign process was not touched"
    );
    assert_serves(&env, "v1");
    assert_nothing_half_written(&env);
    foreign.kill().unwrap();
    foreign.wait().unwrap();
}

#[test]
fn nginx_test_fails_on_a_bad_config() {
    let env = with_v1_live(Env::new(2));
    env.stage_jar("v2");
    for b in ["stop", "start", "health"] {
        assert_eq!(env.hook(b, &[]).code, 0);
    }
    let before = env.include();
    let conf = env.path("nginx/nginx.conf");
    let good = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        good.replace(
            "proxy_pass $service_url;",
            "proxy_pass $service_url;\n      proxy_bogus on;",
        ),
    )
    .unwrap();
    let s = env.hook("switch", &[]);
    assert_eq!(s.code, 1);
    assert!(
        s.last_line().contains("rejected the new config") && s.last_line().contains("proxy_bogus"),
        "{}",
        s.last_line()
    );
    assert_eq!(env.include(), before, "include byte-for-byte as it was");
    assert_serves(&env, "v1");
    assert_nothing_half_written(&env);
}

#[test]
fn nginx_master_not_running_at_reload() {
    let env = with_v1_live(Env::new(2));
    env.stage_jar("v2");
    for b in ["stop", "start", "health"] {
        assert_eq!(env.hook(b, &[]).code, 0);
    }
    let before = env.include();
    let master = std::fs::read_to_string(env.path("nginx/nginx.pid"))
        .unwrap()
        .trim()
        .to_string();
    signal(master.parse().unwrap(), rustix::process::Signal::QUIT);
    wait_until(Duration::from_secs(10), || {
        !env.path("nginx/nginx.pid").exists()
    });
    let s = env.hook("switch", &[]);
    assert_eq!(s.code, 1);
    assert!(
        s.last_line().contains("nginx master is not running"),
        "{}",
        s.last_line()
    );
    assert_eq!(
        env.include(),
        before,
        "nothing written without a master to reload"
    );
    assert_nothing_half_written(&env);
    // nginx started again serves the old version: the include was never changed.
    env.start_nginx();
    assert_serves(&env, "v1");
}

/// The slot nginx serves (green, v1) keeps running and nginx serves v1.
fn assert_green_serves_v1(env: &Env, green: &nonstop::process::PidFile) {
    assert!(green.running(), "green (the serving slot) untouched");
    assert_serves(env, "v1");
}

#[test]
fn include_deleted() {
    let env = with_v1_live(Env::new(2));
    let green = env.pid_of("green").unwrap();
    std::fs::remove_file(env.include_path()).unwrap();
    assert_serves(&env, "v1"); // nginx keeps the config it loaded
    env.stage_jar("v2");
    // Not knowing what nginx serves, nothing is stopped or started.
    for b in ["stop", "start"] {
        let r = env.hook(b, &[]);
        assert_eq!(r.code, 1, "{b}");
        assert!(
            r.last_line()
                .contains("cannot tell which slot nginx serves")
                && r.last_line().contains("is missing")
                && r.last_line().contains("switch --slot"),
            "{}",
            r.last_line()
        );
    }
    assert!(env.pid_of("blue").is_none(), "nothing launched");
    assert_green_serves_v1(&env, &green);
    // The repair named: switch to the slot that should be live, then deploy as usual.
    let r = env.hook("switch", &["--slot", "green"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        env.include(),
        format!(
            "set $service_url http://127.0.0.1:{};\n",
            env.port_of("green")
        )
        .into_bytes()
    );
    env.deploy("v2");
    assert_serves(&env, "v2");
    assert!(green.running(), "green kept as the rollback target");
    assert_nothing_half_written(&env);
}

#[test]
fn include_hand_edited_to_an_unknown_port() {
    let env = with_v1_live(Env::new(2));
    let green = env.pid_of("green").unwrap();
    // Edited and reloaded by hand: nginx serves port 1 (nothing), the state says green.
    std::fs::write(env.include_path(), "set $service_url http://127.0.0.1:1;\n").unwrap();
    env.reload_nginx();
    env.stage_jar("v2");
    let r = env.hook("stop", &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("points at port 1, which is no slot")
            && r.last_line().contains("records slot green as live")
            && r.last_line().contains("switch --slot green"),
        "{}",
        r.stderr
    );
    assert!(green.running());
    let r = env.hook("switch", &["--slot", "green"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_green_serves_v1(&env, &green);
    env.deploy("v2");
    assert_serves(&env, "v2");
    assert_nothing_half_written(&env);
}

#[test]
fn include_edited_without_a_reload_is_not_trusted() {
    let env = with_v1_live(Env::new(2));
    let green = env.pid_of("green").unwrap();
    let blue_port = env.port_of("blue");
    // Someone points the include at blue (nothing runs there) and does not reload: nginx
    // still serves green, so green must not be stopped as "idle".
    std::fs::write(
        env.include_path(),
        format!("set $service_url http://127.0.0.1:{blue_port};\n"),
    )
    .unwrap();
    let r = env.hook("stop", &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.last_line()
            .contains("changed after nginx last loaded its configuration")
            && r.last_line().contains("switch --slot"),
        "{}",
        r.last_line()
    );
    let r = env.hook("stop", &["--slot", "green"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_green_serves_v1(&env, &green);
    // Garbage in the include (not reloaded) is refused the same way, never read as "no slot".
    std::fs::write(env.include_path(), "garbage\n").unwrap();
    let r = env.hook("stop", &["--slot", "green"]);
    assert_eq!(r.code, 1);
    assert!(
        r.last_line()
            .contains("cannot tell which slot nginx serves"),
        "{}",
        r.last_line()
    );
    assert_green_serves_v1(&env, &green);
    let r = env.hook("switch", &["--slot", "green"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    env.deploy("v2");
    assert_serves(&env, "v2");
    assert_nothing_half_written(&env);
}

#[test]
fn include_read_as_nginx_reads_it() {
    let env = with_v1_live(Env::new(2));
    let green = env.pid_of("green").unwrap();
    let (blue_port, green_port) = (env.port_of("blue"), env.port_of("green"));
    // Two `set`s (nginx applies the last: green) and an upper-case variable name, reloaded.
    std::fs::write(
        env.include_path(),
        format!(
            "# by hand\nset $service_url http://127.0.0.1:{blue_port};\nset $SERVICE_URL \"http://127.0.0.1:{green_port}\";\n"
        ),
    )
    .unwrap();
    env.reload_nginx();
    assert_serves(&env, "v1");
    let r = env.hook("stop", &["--slot", "green"]);
    assert_eq!(r.code, 1);
    assert!(
        r.last_line().contains("refusing to stop slot green")
            && r.last_line().contains("it is live"),
        "{}",
        r.last_line()
    );
    // The idle slot is blue: the deploy goes there and leaves green running.
    env.deploy("v2");
    assert_serves(&env, "v2");
    assert!(green.running());
    assert_nothing_half_written(&env);
}

#[test]
fn state_file_corrupted_or_missing() {
    let env = with_v1_live(Env::new(2));
    std::fs::write(env.path("state/state.json"), b"{\"live\": \"gre").unwrap();
    env.stage_jar("v2");
    let r = env.hook("stop", &[]);
    assert_eq!(r.code, 0);
    assert!(
        r.stderr.contains("is unreadable") && r.stderr.contains("trusting the nginx include"),
        "{}",
        r.stderr
    );
    for b in ["start", "health", "switch"] {
        assert_eq!(env.hook(b, &[]).code, 0, "{b}");
    }
    assert_serves(&env, "v2");
    assert_eq!(env.state()["live"], "blue");
    std::fs::remove_file(env.path("state/state.json")).unwrap();
    env.deploy("v3");
    assert_serves(&env, "v3");
    assert_eq!(env.state()["live"], "green");
    assert_nothing_half_written(&env);
}

#[test]
fn jar_missing_or_unreadable() {
    let env = with_v1_live(Env::new(2));
    for e in std::fs::read_dir(env.path("bundle/app")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let r = env.hook("start", &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.last_line().contains("no jar matches") && r.last_line().contains("app/*.jar"),
        "{}",
        r.last_line()
    );
    std::os::unix::fs::symlink("/nonexistent/app.jar", env.path("bundle/app/demo-v2.jar")).unwrap();
    let r = env.hook("start", &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.last_line().contains("demo-v2.jar is unreadable"),
        "{}",
        r.last_line()
    );
    assert!(env.pid_of("blue").is_none(), "nothing launched");
    assert_serves(&env, "v1");
    assert_nothing_half_written(&env);
}

/// Unmounts on drop, even when the test fails.
struct ReadOnly(std::path::PathBuf);
impl Drop for ReadOnly {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn include_folder_not_writable() {
    let env = with_v1_live(Env::new(2));
    env.stage_jar("v2");
    for b in ["stop", "start", "health"] {
        assert_eq!(env.hook(b, &[]).code, 0);
    }
    let before = env.include();
    // A read-only bind mount over nginx's folder: writes fail even for root (EROFS).
    let dir = env.path("nginx");
    assert!(Command::new("mount")
        .arg("--bind")
        .arg(&dir)
        .arg(&dir)
        .status()
        .unwrap()
        .success());
    let guard = ReadOnly(dir.clone());
    assert!(
        Command::new("mount")
            .args(["-o", "remount,ro,bind"])
            .arg(&dir)
            .status()
            .unwrap()
            .success(),
        "read-only remount"
    );
    let s = env.hook("switch", &[]);
    assert_eq!(s.code, 1);
    assert!(
        s.last_line().contains("cannot write") && s.last_line().contains("Read-only file system"),
        "{}",
        s.last_line()
    );
    drop(guard);
    assert_eq!(env.include(), before);
    assert_serves(&env, "v1");
    assert_nothing_half_written(&env);
}

#[test]
fn sigterm_during_health_leaves_the_new_app_running_and_nginx_untouched() {
    let mut env = with_v1_live(Env::new(2));
    env.java_opts.push("-Ddemo.unhealthy=true".into());
    env.write_config();
    env.stage_jar("v2");
    assert_eq!(env.hook("start", &[]).code, 0);
    let pf = env.pid_of("blue").unwrap();
    let before = env.include();
    let (code, stderr, took) = hook_terminated(&env, "health", &[], Duration::from_millis(1500));
    assert_eq!(code, 1);
    assert!(
        last(&stderr).contains("interrupted by SIGTERM during health check"),
        "{}",
        last(&stderr)
    );
    // The signal ended it, not the 30 s deadline (an unhealthy app never passes); how soon
    // after the signal is measured by `make bench` (sigterm_to_exit), not asserted here.
    eprintln!(
        "health exited {:?} after SIGTERM",
        took - Duration::from_millis(1500)
    );
    assert!(!stderr.contains("not healthy after"), "{stderr}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert!(
        nonstop::process::same_process(pf.pid, pf.start_time),
        "the app is in its own session: the group's SIGTERM did not reach it"
    );
    assert_eq!(env.include(), before);
    assert_serves(&env, "v1");
    assert_nothing_half_written(&env);
}

#[test]
fn sigterm_during_switch_completes_the_transaction() {
    let env = with_v1_live(Env::new(2));
    env.stage_jar("v2");
    for b in ["stop", "start", "health"] {
        assert_eq!(env.hook(b, &[]).code, 0);
    }
    // A real `nginx -t` that takes 1.5 s, so the SIGTERM lands in the middle of the transaction.
    let n = env.path("nginx");
    let test = format!(
        "[bash, -c, \"sleep 1.5 && exec {} -t -q -p {} -c {}/nginx.conf\"]",
        nginx_bin().display(),
        n.display(),
        n.display()
    );
    let text = std::fs::read_to_string(env.config_path()).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("test:"))
        .unwrap()
        .to_string();
    env.edit_config(&line, &format!("  test: {test}"));
    let (code, stderr, _) = hook_terminated(&env, "switch", &[], Duration::from_millis(500));
    assert_eq!(
        code, 0,
        "the transaction is not interruptible: it completes"
    );
    assert!(
        stderr.contains("termination signal arrived during the nginx transaction"),
        "{stderr}"
    );
    assert_eq!(
        env.include(),
        format!(
            "set $service_url http://127.0.0.1:{};\n",
            env.port_of("blue")
        )
        .into_bytes()
    );
    assert_serves(&env, "v2");
    assert_eq!(env.state()["live"], "blue");
    assert_nothing_half_written(&env);
}

#[test]
fn sigterm_during_drain_leaves_the_slot_out_of_rotation_and_running() {
    let env = Env::balanced(2);
    env.stage_jar("v1");
    for b in ALL_BINARIES {
        assert_eq!(env.hook(b, &[]).code, 0, "{b}");
    }
    let blue = env.port_of("blue");
    let pf = env.pid_of("blue").unwrap();
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], blue));
    let slow = std::thread::spawn(move || {
        Client::new(addr)
            .request("GET", "/slow?ms=4000", b"")
            .map(|r| r.0)
            .ok()
    });
    std::thread::sleep(Duration::from_millis(300));
    let (code, stderr, _) = hook_terminated(&env, "stop", &[], Duration::from_millis(1500));
    assert_eq!(code, 1);
    assert!(
        last(&stderr).contains("interrupted by SIGTERM during drain"),
        "{}",
        last(&stderr)
    );
    assert!(
        env.upstream().contains(&format!(":{blue} down;")),
        "blue stays out of rotation"
    );
    assert!(
        nonstop::process::same_process(pf.pid, pf.start_time),
        "blue was not stopped"
    );
    assert_eq!(
        slow.join().unwrap(),
        Some(200),
        "its in-flight request finished"
    );
    let mut c = Client::new(env.nginx_addr());
    for _ in 0..10 {
        let (s, body) = c.request("GET", "/api/", b"").unwrap();
        assert_eq!(s, 200, "{body}");
    }
    assert_nothing_half_written(&env);
    // The next run picks up where it stopped.
    assert_eq!(env.hook("stop", &[]).code, 0);
}

#[test]
fn two_deploys_at_once() {
    let mut env = with_v1_live(Env::new(2));
    // Deploy A's stop waits out the grace of an app that ignores SIGTERM, holding the lock.
    env.java_opts.push("-Ddemo.ignore-sigterm=true".into());
    env.write_config();
    env.edit_config("grace: 10s", "grace: 3s");
    env.stage_jar("v2");
    assert_eq!(env.hook("start", &[]).code, 0);
    assert_eq!(env.hook("health", &[]).code, 0);
    let a = Command::new(env.path("bundle/bin/stop"))
        .current_dir("/")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let before = env.include();
    for b in ["stop", "start", "switch"] {
        let r = env.hook(b, &[]);
        assert_eq!(
            r.code, 3,
            "deploy B's {b} must not run while A holds the lock"
        );
        assert!(
            r.last_line().contains("another nonstop run holds")
                && r.last_line().contains("stop pid"),
            "{}",
            r.last_line()
        );
    }
    assert_eq!(env.include(), before);
    let out = a.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "deploy A's stop finishes");
    assert_serves(&env, "v1");
    assert_nothing_half_written(&env);
}

#[test]
fn config_with_an_injection_attempt() {
    let env = with_v1_live(Env::new(2));
    let before = env.include();
    let good = std::fs::read_to_string(env.config_path()).unwrap();
    for (from, to, what) in [
        (
            "variable: service_url",
            "variable: \"x; return 200\"",
            "invalid nginx variable name",
        ),
        (
            "  variable: service_url",
            "  variable: service_url\n  host: \"x; return 200\"",
            "invalid host",
        ),
    ] {
        std::fs::write(env.config_path(), good.replace(from, to)).unwrap();
        for b in ["stop", "start", "switch"] {
            let r = env.hook(b, &[]);
            assert_eq!(r.code, 2, "{b}");
            assert!(
                r.last_line().contains("nonstop.yml:") && r.last_line().contains(what),
                "{}",
                r.last_line()
            );
        }
    }
    assert_eq!(env.include(), before);
    assert_serves(&env, "v1");
    assert_nothing_half_written(&env);
}

// ---- reconcile, restore, prove ----

/// v2 started and healthy on blue, v1 live on green: ready for `switch`.
fn v2_ready_on_blue(env: &Env) {
    env.stage_jar("v2");
    for b in ["stop", "start", "health"] {
        let r = env.hook(b, &[]);
        assert_eq!(r.code, 0, "{b}: {}", r.stderr);
    }
}

/// A shell script at `name` in the test's folder.
fn script(env: &Env, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = env.path(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.to_string_lossy().into_owned()
}

/// The nginx test command of this world as YAML list items.
fn nginx_test_argv(env: &Env) -> String {
    let n = env.path("nginx");
    let n = n.display();
    format!("{} -t -q -p {n} -c {n}/nginx.conf", nginx_bin().display())
}

fn include_mtime(env: &Env) -> std::time::SystemTime {
    std::fs::metadata(env.include_path())
        .unwrap()
        .modified()
        .unwrap()
}

#[test]
fn nginx_test_command_that_cannot_run_restores_and_the_next_stop_spares_the_live_slot() {
    let env = with_v1_live(Env::new(2));
    let green = env.pid_of("green").unwrap();
    v2_ready_on_blue(&env);
    let (before, mtime) = (env.include(), include_mtime(&env));
    let n = env.path("nginx");
    let n = n.display();
    env.edit_config(
        &format!("test: [{}", nginx_bin().display()),
        "test: [/nonexistent/nginx",
    );
    let s = env.hook("switch", &[]);
    assert_eq!(s.code, 1);
    assert!(
        s.last_line().contains("cannot run `/nonexistent/nginx")
            && s.last_line()
                .contains("previous files restored, nginx not reloaded"),
        "{}",
        s.last_line()
    );
    assert!(!s.stderr.contains("could not restore"), "{}", s.stderr);
    assert_eq!(env.include(), before, "include byte for byte");
    assert_eq!(include_mtime(&env), mtime, "and its time: nginx loaded it");
    assert_green_serves_v1(&env, &green);
    // The next ordinary deploy's stop goes to blue, not to the slot nginx serves.
    env.edit_config(
        "test: [/nonexistent/nginx",
        &format!("test: [{}", nginx_bin().display()),
    );
    let _ = n;
    let r = env.hook("stop", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("stopping slot blue"), "{}", r.stderr);
    assert_green_serves_v1(&env, &green);
    assert_nothing_half_written(&env);
}

#[test]
fn nginx_test_command_that_hangs_is_killed_and_restores() {
    let env = with_v1_live(Env::new(2));
    let green = env.pid_of("green").unwrap();
    v2_ready_on_blue(&env);
    let before = env.include();
    let slow = script(&env, "hang.sh", "sleep 60");
    env.edit_config(
        &format!("test: [{}", nginx_bin().display()),
        &format!("test: [{slow}"),
    );
    let s = env.hook("switch", &[]);
    assert_eq!(s.code, 1);
    assert!(
        s.last_line().contains("did not finish within 30s")
            && s.last_line()
                .contains("previous files restored, nginx not reloaded"),
        "{}",
        s.last_line()
    );
    assert_eq!(env.include(), before);
    assert!(
        s.took < Duration::from_secs(40),
        "bounded by the command timeout"
    );
    assert_green_serves_v1(&env, &green);
    let r = env.hook("stop", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_green_serves_v1(&env, &green);
    assert_nothing_half_written(&env);
}

#[test]
fn switch_killed_during_nginx_test_is_detected_and_repaired() {
    let env = with_v1_live(Env::new(2));
    let green = env.pid_of("green").unwrap();
    v2_ready_on_blue(&env);
    let slow = script(
        &env,
        "slow-test.sh",
        &format!("sleep 3\nexec {}", nginx_test_argv(&env)),
    );
    env.edit_config(
        &format!("test: [{}", nginx_bin().display()),
        &format!("test: [{slow}"),
    );
    let child = Command::new(env.path("bundle/bin/switch"))
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    let blue_port = env.port_of("blue");
    assert!(wait_until(Duration::from_secs(10), || String::from_utf8(
        env.include()
    )
    .unwrap()
    .contains(&blue_port.to_string())));
    signal(pid, rustix::process::Signal::KILL);
    let _ = child.wait_with_output();
    // The include names blue, nginx still serves green: the next run must not trust it.
    assert_green_serves_v1(&env, &green);
    for b in ["stop", "start", "switch"] {
        let r = env.hook(b, &[]);
        assert_eq!(r.code, 1, "{b}: {}", r.stderr);
        assert!(
            r.last_line()
                .contains("cannot tell which slot nginx serves")
                && r.last_line().contains("switch --slot"),
            "{b}: {}",
            r.last_line()
        );
    }
    let r = env.hook("stop", &["--slot", "green"]);
    assert_eq!(r.code, 1);
    assert_green_serves_v1(&env, &green);
    // `nonstop status` shows the doubt instead of calling blue live without one.
    let st = env.nonstop(&["status", "--json"]);
    assert_eq!(st.code, 0);
    let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
    assert!(
        v["include"]["doubt"]
            .as_str()
            .is_some_and(|d| d.contains("changed after nginx last loaded")),
        "{}",
        st.stdout
    );
    let text = env.nonstop(&["status"]);
    assert!(
        text.stdout
            .contains("DOUBT    cannot tell which slot nginx serves"),
        "{}",
        text.stdout
    );
    // `switch --slot blue` finishes what was interrupted (after proving blue), with a reload.
    env.edit_config(
        &format!("test: [{slow}"),
        &format!("test: [{}", nginx_bin().display()),
    );
    let r = env.hook("switch", &["--slot", "blue"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("nginx reloaded"), "{}", r.stderr);
    assert_serves(&env, "v2");
    assert_eq!(env.state()["live"], "blue");
    assert_eq!(env.state()["previous"], "green");
    assert_nothing_half_written(&env);
}

#[test]
fn reload_that_reloads_then_hangs_counts_as_switched() {
    let env = with_v1_live(Env::new(2));
    v2_ready_on_blue(&env);
    let n = env.path("nginx");
    let n = n.display();
    let reload = script(
        &env,
        "reload-then-hang.sh",
        &format!(
            "{} -s reload -p {n} -c {n}/nginx.conf\nsleep 60",
            nginx_bin().display()
        ),
    );
    env.edit_config(
        &format!("reload: [{}, -s, reload", nginx_bin().display()),
        &format!("reload: [{reload}, -s, reload"),
    );
    let s = env.hook("switch", &[]);
    assert_eq!(s.code, 0, "{}", s.stderr);
    assert!(
        s.stderr
            .contains("did not finish within 30s, but nginx did reload"),
        "{}",
        s.stderr
    );
    assert_serves(&env, "v2");
    assert_eq!(env.state()["live"], "blue");
    assert_nothing_half_written(&env);
}

#[test]
fn state_write_failing_after_the_reload_is_a_warning() {
    let env = with_v1_live(Env::new(2));
    v2_ready_on_blue(&env);
    // state.json a folder: it cannot be read (an empty record) nor replaced.
    std::fs::remove_file(env.path("state/state.json")).unwrap();
    std::fs::create_dir(env.path("state/state.json")).unwrap();
    let s = env.hook("switch", &[]);
    assert_eq!(
        s.code, 0,
        "traffic moved: the switch succeeded\n{}",
        s.stderr
    );
    assert!(
        s.stderr
            .contains("nginx serves slot blue now, but the state file could not record it"),
        "{}",
        s.stderr
    );
    assert!(s.last_line().contains("switch done"), "{}", s.last_line());
    assert_serves(&env, "v2");
}

#[test]
fn a_stranger_on_the_slot_port_gets_no_traffic() {
    let mut env = with_v1_live(Env::new(2));
    let green = env.pid_of("green").unwrap();
    let port = env.port_of("blue");
    // A slow-booting v2 on blue, and a stranger that takes the port first and answers UP.
    env.java_opts.retain(|o| !o.starts_with("-Ddemo.boot-ms"));
    env.java_opts.push("-Ddemo.boot-ms=4000".into());
    env.write_config();
    env.stage_jar("v2");
    assert_eq!(env.hook("stop", &[]).code, 0);
    assert_eq!(env.hook("start", &[]).code, 0);
    let docroot = env.path("stranger");
    std::fs::create_dir_all(docroot.join("actuator")).unwrap();
    std::fs::write(docroot.join("actuator/health"), "{\"status\":\"UP\"}").unwrap();
    let mut stranger = foreign_listener_serving(port, &docroot);
    let h = env.hook("health", &[]);
    assert_eq!(h.code, 1, "{}", h.stderr);
    assert!(
        h.last_line()
            .contains("answers health, but not from its app")
            && h.last_line()
                .contains(&format!("is held by pid {}", stranger.id()))
            && h.last_line().contains("http.server"),
        "{}",
        h.last_line()
    );
    for args in [&[][..], &["--slot", "blue"][..]] {
        let s = env.hook("switch", args);
        assert_eq!(s.code, 1);
        assert!(
            s.last_line().contains("refusing to switch to slot blue")
                && s.last_line().contains("not the slot's app")
                && s.last_line().contains("nginx untouched"),
            "{}",
            s.last_line()
        );
    }
    assert!(stranger.try_wait().unwrap().is_none(), "stranger untouched");
    assert_green_serves_v1(&env, &green);
    stranger.kill().unwrap();
    stranger.wait().unwrap();
    assert_nothing_half_written(&env);
}

#[test]
fn switch_to_a_slot_with_nothing_started_is_refused() {
    let env = with_v1_live(Env::new(2));
    let green = env.pid_of("green").unwrap();
    let s = env.hook("switch", &["--slot", "blue"]);
    assert_eq!(s.code, 1);
    assert!(
        s.last_line()
            .contains("slot blue runs no app started by nonstop"),
        "{}",
        s.last_line()
    );
    let h = env.hook("health", &["--slot", "blue"]);
    assert_eq!(h.code, 1);
    assert!(
        h.took < Duration::from_secs(5),
        "fails at once, no deadline wait"
    );
    assert!(h.last_line().contains("no pid file"), "{}", h.last_line());
    assert_green_serves_v1(&env, &green);
}

#[test]
fn nginx_pid_file_naming_another_process_is_not_signalled() {
    let env = with_v1_live(Env::new(2));
    v2_ready_on_blue(&env);
    let pid_file = env.path("nginx/nginx.pid");
    let master = std::fs::read_to_string(&pid_file).unwrap();
    let mut stranger = Command::new("sleep").arg("60").spawn().unwrap();
    std::fs::write(&pid_file, format!("{}\n", stranger.id())).unwrap();
    let before = env.include();
    let s = env.hook("switch", &[]);
    std::fs::write(&pid_file, &master).unwrap();
    assert_eq!(s.code, 1);
    assert!(
        s.last_line().contains(&format!(
            "names pid {}, which is not an nginx master",
            stranger.id()
        )) && s.last_line().contains("refusing to signal it"),
        "{}",
        s.last_line()
    );
    assert!(
        stranger.try_wait().unwrap().is_none(),
        "sleep was not signalled"
    );
    assert_eq!(env.include(), before);
    assert_serves(&env, "v1");
    stranger.kill().unwrap();
    stranger.wait().unwrap();
}

#[test]
fn stale_pid_files_after_a_reboot_or_a_crash_are_named() {
    let env = with_v1_live(Env::new(2));
    env.stage_jar("v2");
    for b in ["stop", "start"] {
        assert_eq!(env.hook(b, &[]).code, 0);
    }
    // A crash: kill -9 of the app; its supervisor records how it ended.
    let pf = env.pid_of("blue").unwrap();
    signal(pf.pid, rustix::process::Signal::KILL);
    assert!(wait_until(Duration::from_secs(10), || env
        .path("work/run/blue.exit")
        .exists()));
    let h = env.hook("health", &[]);
    assert_eq!(h.code, 1);
    assert!(
        h.last_line().contains("killed by signal 9")
            && h.last_line().contains("before the health check began"),
        "{}",
        h.last_line()
    );
    // A pid file from before a reboot: another boot id, no exit record.
    let path = env.path("work/run/blue.pid");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    v["boot_id"] = "00000000-0000-0000-0000-000000000000".into();
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    std::fs::remove_file(env.path("work/run/blue.exit")).unwrap();
    let h = env.hook("health", &[]);
    assert_eq!(h.code, 1);
    assert!(
        h.last_line()
            .contains("is stale: it is from before the host last booted"),
        "{}",
        h.last_line()
    );
    assert_serves(&env, "v1");
}

#[test]
fn forged_pid_file_with_the_right_start_time_is_not_signalled() {
    let env = with_v1_live(Env::new(2));
    let mut victim = Command::new("sleep").arg("60").spawn().unwrap();
    let pid = victim.id() as i32;
    let forged = nonstop::process::PidFile {
        pid,
        start_time: nonstop::process::stat(pid).unwrap().start_time,
        supervisor: 1,
        slot: "blue".into(),
        port: env.port_of("blue"),
        jar: env.path("work/releases/x/demo-v1.jar"),
        release: "x".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        boot_id: nonstop::process::boot_id(),
    };
    std::fs::create_dir_all(env.path("work/run")).unwrap();
    std::fs::write(
        env.path("work/run/blue.pid"),
        serde_json::to_vec(&forged).unwrap(),
    )
    .unwrap();
    let r = env.hook("stop", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("nothing running on slot blue"),
        "{}",
        r.stderr
    );
    assert!(
        victim.try_wait().unwrap().is_none(),
        "sleep was not signalled"
    );
    victim.kill().unwrap();
    victim.wait().unwrap();
    assert_serves(&env, "v1");
}

#[test]
fn java_wrapper_that_does_not_exec_is_still_the_app() {
    let env = with_v1_live(Env::new(2));
    let java = which::which("java").unwrap();
    let wrapper = script(&env, "java-wrapper", &format!("{} \"$@\"", java.display()));
    env.edit_config("app:\n", &format!("app:\n  java: {wrapper}\n"));
    env.deploy("v2");
    assert_serves(&env, "v2");
    let blue = env.pid_of("blue").unwrap();
    // blue is live; green (v1, plain java) is idle. Deploy v3 to green, then stop blue.
    env.deploy("v3");
    assert_serves(&env, "v3");
    let r = env.hook("stop", &["--slot", "blue"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("holds the port and is signalled first")
            && r.stderr.contains("stopped slot blue gracefully"),
        "{}",
        r.stderr
    );
    assert!(!blue.running());
    assert!(!nonstop::process::port_in_use(env.port_of("blue")));
    assert_serves(&env, "v3");
}

#[test]
fn include_that_is_a_symlink_is_not_written_through() {
    let env = with_v1_live(Env::new(2));
    v2_ready_on_blue(&env);
    let real = env.path("nginx/real.inc");
    std::fs::rename(env.include_path(), &real).unwrap();
    std::os::unix::fs::symlink(&real, env.include_path()).unwrap();
    let before = std::fs::read(&real).unwrap();
    let s = env.hook("switch", &[]);
    assert_eq!(s.code, 1);
    assert!(
        s.last_line().contains("is a symlink, not a regular file"),
        "{}",
        s.last_line()
    );
    assert_eq!(std::fs::read(&real).unwrap(), before);
    assert!(std::fs::symlink_metadata(env.include_path())
        .unwrap()
        .file_type()
        .is_symlink());
    assert_serves(&env, "v1");
}

/// A symlink planted at `workdir/logs/<slot>.log` (the builtin supervisor runs as root here):
/// `start` refuses it and launches nothing, and the file it names keeps its bytes.
#[test]
fn a_symlink_planted_at_the_slot_log_is_not_appended_through() {
    let env = Env::new(2);
    env.stage_jar("v1");
    let victim = env.path("victim.conf");
    std::fs::write(&victim, "keep me\n").unwrap();
    std::fs::create_dir_all(env.path("work/logs")).unwrap();
    for slot in ["blue", "green"] {
        std::os::unix::fs::symlink(&victim, env.path(&format!("work/logs/{slot}.log"))).unwrap();
    }
    let r = env.hook("start", &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.last_line()
            .contains("refusing to write the app's output to")
            && r.last_line()
                .contains(&format!("is a symlink to {}", victim.display())),
        "{}",
        r.last_line()
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me\n");
    assert!(env.pid_of("blue").is_none() && env.pid_of("green").is_none());
}

/// Run a hook binary as `uid` (the appspec's `runas`), the way [`Env::hook`] runs it.
fn hook_as(env: &Env, uid: u32, bin: &str, args: &[&str]) -> (i32, String) {
    use std::os::unix::process::CommandExt;
    let out = Command::new(env.path("bundle/bin").join(bin))
        .args(args)
        .current_dir("/")
        .stdin(Stdio::null())
        .env_remove("NONSTOP_CONFIG")
        .env("DEPLOYMENT_ID", "d-RUNAS")
        .uid(uid)
        .gid(uid)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "--- {bin} as uid {uid} exit {:?}\n{stderr}",
        out.status.code()
    );
    (out.status.code().unwrap_or(-1), stderr)
}

/// Stops the nginx master named by `pid_file` on drop (this test moves nginx's pid file).
struct NginxAt(std::path::PathBuf);
impl Drop for NginxAt {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|p| p.trim().parse().ok())
        {
            signal(pid, rustix::process::Signal::TERM);
        }
    }
}

#[test]
fn runas_with_the_include_writable_in_a_folder_it_cannot_write() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65534;
    let env = Env::new(2);
    // nginx, the apps and every hook run as an unprivileged user; nginx's folder (with the
    // include in it) stays root's, as /etc/nginx/conf.d is, the include itself is the user's.
    let master: i32 = std::fs::read_to_string(env.path("nginx/nginx.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    signal(master, rustix::process::Signal::QUIT);
    assert!(wait_until(Duration::from_secs(10), || !env
        .path("nginx/nginx.pid")
        .exists()));
    let conf = std::fs::read_to_string(env.path("nginx/nginx.conf")).unwrap();
    let n = env.path("nginx");
    let n = n.display();
    std::fs::write(
        env.path("nginx/nginx.conf"),
        conf.replace(
            &format!("pid {n}/nginx.pid;"),
            &format!("pid {n}/logs/nginx.pid;"),
        ),
    )
    .unwrap();
    env.edit_config(
        &format!("pid_file: {n}/nginx.pid"),
        &format!("pid_file: {n}/logs/nginx.pid"),
    );
    assert!(Command::new("chown")
        .args(["-R", &format!("{NOBODY}:{NOBODY}")])
        .arg(env.dir.path())
        .status()
        .unwrap()
        .success());
    std::os::unix::fs::chown(env.path("nginx"), Some(0), Some(0)).unwrap();
    let _nginx = NginxAt(env.path("nginx/logs/nginx.pid"));
    let st = Command::new(nginx_bin())
        .args([
            "-p",
            env.path_str("nginx"),
            "-c",
            env.path_str("nginx/nginx.conf"),
        ])
        .uid(NOBODY)
        .gid(NOBODY)
        .status()
        .unwrap();
    assert!(st.success(), "nginx as nobody");
    for (version, slot) in [("v1", "green"), ("v2", "blue")] {
        env.stage_jar(version);
        for b in BINARIES {
            let (code, stderr) = hook_as(&env, NOBODY, b, &[]);
            assert_eq!(code, 0, "{b} as nobody: {stderr}");
            assert!(!stderr.contains("could not restore"), "{stderr}");
            if b == "switch" {
                assert!(
                    stderr.contains("in place (its folder is not writable for this user)"),
                    "{stderr}"
                );
            }
        }
        assert_serves(&env, version);
        assert_eq!(env.state()["live"], slot);
    }
    let meta = std::fs::symlink_metadata(env.include_path()).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.uid(), NOBODY, "the include keeps its owner");
    assert_eq!(std::fs::metadata(env.path("nginx")).unwrap().uid(), 0);
    assert_nothing_half_written(&env);
}

// ---- releases ----

/// The release folders under work/releases, sorted.
fn release_dirs(env: &Env) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(env.path("work/releases"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn pruning_keeps_the_releases_state_names_and_rollback_works_after_failed_deploys() {
    let mut env = with_v1_live(Env::new(2)); // v1 on green
    let v1 = env.pid_of("green").unwrap();
    env.deploy("v2"); // blue live, green keeps v1 as the rollback target
    let v2 = env.pid_of("blue").unwrap();
    assert_serves(&env, "v2");
    // Four deploys that fail health (keep_releases is 3): each goes to green, the idle slot,
    // and so stops v1 there. Six releases are made in all.
    env.java_opts.push("-Ddemo.unhealthy=true".into());
    env.write_config();
    env.edit_config("deadline: 30s", "deadline: 2s");
    env.stage_jar("v3");
    for i in 0..4 {
        assert_eq!(env.hook("stop", &[]).code, 0, "failed deploy {i}");
        assert_eq!(env.hook("start", &[]).code, 0, "failed deploy {i}");
        let h = env.hook("health", &[]);
        assert_eq!(h.code, 1, "failed deploy {i}");
        assert!(
            h.last_line().contains("slot green not healthy"),
            "{}",
            h.last_line()
        );
    }
    assert_serves(&env, "v2");
    let failed = env.pid_of("green").unwrap();
    let rels = release_dirs(&env);
    for (what, r) in [
        (
            "v1, green's last served release (the rollback target)",
            &v1.release,
        ),
        ("v2, the live release", &v2.release),
        ("the release green's pid file names", &failed.release),
    ] {
        assert!(rels.contains(r), "{what} {r} was pruned: {rels:?}");
    }
    assert_eq!(
        std::fs::read(&v1.jar).ok(),
        Some(std::fs::read(demo_jar("v1")).unwrap()),
        "v1's jar {} is still on disk, byte for byte",
        v1.jar.display()
    );
    assert_eq!(
        rels.len(),
        5,
        "pruning still prunes: 3 newest + v1 + v2: {rels:?}"
    );

    // The rollback target is intact: `nonstop rollback` starts v1 again on green.
    env.java_opts.retain(|o| o != "-Ddemo.unhealthy=true");
    env.write_config();
    let r = env.nonstop(&["rollback"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "rolled back to slot green (port {}, release {}) in ",
            env.port_of("green"),
            v1.release
        )) && r
            .stdout
            .contains(": back to version demo-v1; release started again"),
        "{}",
        r.stdout
    );
    assert_serves(&env, "v1");
    let now = env.pid_of("green").unwrap();
    assert_eq!((&now.release, &now.jar), (&v1.release, &v1.jar));
    let st = env.state();
    assert_eq!(st["live"], "green");
    assert_eq!(st["release"], v1.release.as_str());
    assert_eq!(st["previous"], "blue");
    let rels = release_dirs(&env);
    for r in [&v1.release, &v2.release] {
        assert!(rels.contains(r), "{r} is named by the state: {rels:?}");
    }

    // The next release never takes a pruned release's recorded name (it would hold another jar).
    let recorded: Vec<String> = env.state()["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["release"].as_str().map(String::from))
        .collect();
    assert!(
        recorded.iter().any(|r| !rels.contains(r)),
        "some recorded release was pruned: {recorded:?} on disk {rels:?}"
    );
    assert_eq!(env.hook("stop", &[]).code, 0);
    assert_eq!(env.hook("start", &[]).code, 0);
    let next = env.pid_of("blue").unwrap().release;
    assert!(
        !recorded.contains(&next),
        "new release {next} reuses a recorded name: {recorded:?}"
    );
    assert_nothing_half_written(&env);
}

#[test]
fn a_300_character_deployment_id_gets_a_bounded_release_name() {
    let env = with_v1_live(Env::new(2));
    env.stage_jar("v2");
    let id = format!("d-{}", "x".repeat(298));
    for b in BINARIES {
        let out = Command::new(env.path("bundle/bin").join(b))
            .current_dir("/")
            .stdin(Stdio::null())
            .env_remove("NONSTOP_CONFIG")
            .env("DEPLOYMENT_ID", &id)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("--- {b} exit {:?}\n{stderr}", out.status.code());
        assert_eq!(out.status.code(), Some(0), "{b}: {}", last(&stderr));
    }
    assert_serves(&env, "v2");
    // The id's first 64 characters, `-`, 12 hex digits of `printf %s ID | sha256sum`.
    let sha = Command::new("sh")
        .args(["-c", "printf %s \"$1\" | sha256sum", "sh", &id])
        .output()
        .unwrap();
    let sha = String::from_utf8_lossy(&sha.stdout)[..12].to_string();
    let want = format!("{}-{sha}", &id[..64]);
    let pf = env.pid_of("blue").unwrap();
    assert_eq!(pf.release, want);
    assert_eq!(
        std::fs::read(env.path("work/releases").join(&want).join("demo-v2.jar")).unwrap(),
        std::fs::read(demo_jar("v2")).unwrap()
    );
    let st = env.state();
    assert_eq!(st["release"], want.as_str());
    let last_event = st["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last_event["deployment_id"],
        id.as_str(),
        "the full id is recorded"
    );
    assert_nothing_half_written(&env);
}

#[test]
fn rollback_from_a_dead_slot_does_not_say_it_keeps_running() {
    let env = with_v1_live(Env::new(2)); // v1 on green
    env.deploy("v2"); // blue live
    let blue = env.pid_of("blue").unwrap();
    signal(blue.pid, rustix::process::Signal::KILL);
    assert!(wait_until(Duration::from_secs(10), || {
        !nonstop::process::alive(blue.pid)
    }));
    let r = env.nonstop(&["rollback"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let last_out = r.stdout.lines().last().unwrap_or("");
    assert!(
        last_out.contains("switch only, no process started")
            && last_out.ends_with(&format!(
                "; blue is not running (nothing listens on port {})",
                env.port_of("blue")
            )),
        "{last_out}"
    );
    assert!(
        r.stdout.contains(&format!(
            "from slot blue (port {}, release {}, not running)",
            env.port_of("blue"),
            blue.release
        )),
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("blue keeps running"), "{}", r.stdout);
    assert_serves(&env, "v1");
    assert_nothing_half_written(&env);
}

// ---- supervision (builtin): modes under a hardened umask, logs, log rotation ----

#[test]
fn a_hardened_umask_does_not_lock_the_operator_out() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let env = Env::new(2);
    env.stage_jar("v1");
    for b in BINARIES {
        let mut cmd = Command::new(env.path("bundle/bin").join(b));
        cmd.current_dir("/")
            .stdin(Stdio::null())
            .env("DEPLOYMENT_ID", "d-UMASK");
        // As /etc/profile's `umask 027` does to every hook under the agent's unit.
        unsafe {
            cmd.pre_exec(|| {
                rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o027));
                Ok(())
            });
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{b}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_serves(&env, "v1");
    let mode = |rel: &str| {
        std::fs::metadata(env.path(rel))
            .unwrap_or_else(|e| panic!("{rel}: {e}"))
            .permissions()
            .mode()
            & 0o777
    };
    for d in [
        "work",
        "work/releases",
        "work/releases/d-UMASK",
        "work/logs",
        "work/run",
        "state",
    ] {
        assert_eq!(mode(d), 0o755, "{d}");
    }
    for f in [
        "work/logs/green.log",
        "work/run/green.pid",
        "state/state.json",
        "state/lock",
    ] {
        assert_eq!(mode(f), 0o644, "{f}");
    }
}

#[test]
fn nonstop_logs_shows_the_live_slots_output_and_logs_rotate_at_start() {
    let env = with_v1_live(Env::new(2));
    let r = env.nonstop(&["logs", "-n", "5"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains(&format!("Started DemoApp on port {}", env.port_of("green"))),
        "{}",
        r.stdout
    );
    assert!(r.stdout.lines().count() <= 5, "{}", r.stdout);
    // Follow: what the app writes next shows up (bounded: the process is killed after).
    let f = Command::new(env.path("bundle/bin/nonstop"))
        .args(["logs", "green", "-n", "0", "-f"])
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(env.path("work/logs/green.log"))
        .unwrap()
        .write_all(b"a line written after -f started\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    signal(f.id() as i32, rustix::process::Signal::TERM);
    let out = f.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("a line written after -f started"), "{text}");
    // A log over logs.max_size is rotated when the slot's next app starts.
    env.edit_config(
        "keep_releases: 3\n",
        "keep_releases: 3\nlogs:\n  max_size: 100\n  keep: 2\n",
    );
    let before = std::fs::read(env.path("work/logs/blue.log")).unwrap_or_default();
    std::fs::write(
        env.path("work/logs/blue.log"),
        [before, vec![b'x'; 200]].concat(),
    )
    .unwrap();
    env.deploy("v2");
    assert_serves(&env, "v2");
    let rotated = std::fs::read(env.path("work/logs/blue.log.1")).unwrap();
    assert!(
        rotated.ends_with(&[b'x'; 200]),
        "the old log moved to blue.log.1"
    );
    let fresh = std::fs::read_to_string(env.path("work/logs/blue.log")).unwrap();
    assert!(fresh.contains("Started DemoApp"), "{fresh}");
    assert!(!fresh.contains("xxxx"));
}

// ---- the restore paths of a reload and of an nft transaction ----

/// The reload command in this world's config replaced by `argv0` (the rest of its argv kept).
fn reload_via(env: &Env, argv0: &str) {
    env.edit_config(
        &format!("reload: [{}, -s, reload", nginx_bin().display()),
        &format!("reload: [{argv0}, -s, reload"),
    );
}

#[test]
fn reload_command_that_cannot_start_restores_the_include_exactly() {
    let env = with_v1_live(Env::new(2));
    let green = env.pid_of("green").unwrap();
    v2_ready_on_blue(&env);
    let (before, mtime, workers) = (env.include(), include_mtime(&env), env.nginx_workers());
    reload_via(&env, "/nonexistent/nginx");
    let s = env.hook("switch", &[]);
    assert_eq!(s.code, 1, "{}", s.stderr);
    assert!(
        s.last_line().contains("/nonexistent/nginx")
            && s.last_line()
                .contains("previous files restored, nginx not reloaded"),
        "{}",
        s.last_line()
    );
    assert_eq!(env.include(), before, "include byte for byte");
    assert_eq!(include_mtime(&env), mtime, "and its time: nginx loaded it");
    assert_eq!(env.nginx_workers(), workers, "nginx was not reloaded");
    assert_green_serves_v1(&env, &green);
    assert_eq!(env.state()["live"], "green");
    assert_nothing_half_written(&env);
}

/// A reload command that runs and reloads nothing (`exit_code` 1: it fails; 0: it says it
/// did): the old bytes go back, nginx keeps serving v1 with the workers it had, and the switch
/// fails naming why; `switch --slot green` then repairs the doubt the restore leaves.
fn reload_that_reloads_nothing(exit_code: i32, why: &str) {
    let env = with_v1_live(Env::new(2));
    let green = env.pid_of("green").unwrap();
    v2_ready_on_blue(&env);
    let (before, workers) = (env.include(), env.nginx_workers());
    let fake = script(
        &env,
        "reload-nothing.sh",
        &format!("echo 'nginx: [error] injected' >&2\nexit {exit_code}"),
    );
    reload_via(&env, &fake);
    let s = env.hook("switch", &[]);
    assert_eq!(s.code, 1, "{}", s.stderr);
    assert!(
        s.last_line().contains("reload not applied")
            && s.last_line().contains(why)
            && s.last_line().contains("previous files restored"),
        "{}",
        s.last_line()
    );
    assert_eq!(env.include(), before, "include byte for byte");
    assert_eq!(env.nginx_workers(), workers, "nginx was not reloaded");
    assert_green_serves_v1(&env, &green);
    assert_eq!(env.state()["live"], "green");
    assert_nothing_half_written(&env);
    // With the real reload back, the repair the message names makes green certain again.
    env.edit_config(
        &format!("reload: [{fake}, -s, reload"),
        &format!("reload: [{}, -s, reload", nginx_bin().display()),
    );
    let r = env.hook("switch", &["--slot", "green"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(env.include(), before);
    assert_green_serves_v1(&env, &green);
}

#[test]
fn reload_command_that_fails_restores_the_include() {
    reload_that_reloads_nothing(1, "failed (nginx: [error] injected)");
}

#[test]
fn reload_command_that_starts_no_new_workers_restores_the_include() {
    reload_that_reloads_nothing(0, "no new nginx workers under master pid");
}

#[test]
fn nginx_master_exiting_during_the_reload_restores_the_include() {
    let env = with_v1_live(Env::new(2));
    v2_ready_on_blue(&env);
    let before = env.include();
    let n = env.path("nginx");
    let n = n.display();
    // nginx's own `-s quit`: the master exits (gracefully) instead of reloading.
    let quit = script(
        &env,
        "reload-quits.sh",
        &format!("{} -s quit -p {n} -c {n}/nginx.conf", nginx_bin().display()),
    );
    reload_via(&env, &quit);
    let s = env.hook("switch", &[]);
    assert_eq!(s.code, 1, "{}", s.stderr);
    assert!(
        s.last_line().contains("exited during")
            && s.last_line()
                .contains("previous files restored but not reloaded"),
        "{}",
        s.last_line()
    );
    assert_eq!(env.include(), before, "include byte for byte");
    assert!(
        wait_until(Duration::from_secs(10), || !env
            .path("nginx/nginx.pid")
            .exists()),
        "the master exited"
    );
    assert_nothing_half_written(&env);
    // nginx started again reads the restored include: v1, from green.
    env.start_nginx();
    assert_serves(&env, "v1");
}

/// A directory holding an `nft` that runs the real one unless `inject` (a shell condition on
/// "$*" and the marker file `$0.done`) holds, for the hooks' PATH.
fn nft_wrapper(env: &Env, inject: &str) -> String {
    let real = which::which("nft")
        .or_else(|_| which::which("/usr/sbin/nft"))
        .expect("nft is installed");
    let dir = env.path("fakebin");
    std::fs::create_dir_all(&dir).unwrap();
    script(
        env,
        "fakebin/nft",
        &format!("{inject}\nexec {} \"$@\"", real.display()),
    );
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// nftables mode with v1 live on blue and v2 healthy on green; returns the table's listing
/// and the bytes of `traffic.nft` (what the boot unit loads) at that point.
fn nft_v2_ready(env: &Env) -> (String, Vec<u8>) {
    env.deploy("v1");
    assert_serves(env, "v1");
    env.stage_jar("v2");
    for b in ["stop", "start", "health"] {
        let r = env.hook(b, &[]);
        assert_eq!(r.code, 0, "{b}: {}", r.stderr);
    }
    (
        nft_table(),
        std::fs::read(env.path("state/traffic.nft")).expect("traffic.nft kept"),
    )
}

fn nft_table() -> String {
    let out = Command::new("nft")
        .args(["list", "table", "ip", "nonstop_demo"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// After a failed nft switch: the same table, the same file for boot, no `.next` left, v1
/// served, the state still naming blue.
fn assert_nft_unchanged(env: &Env, table: &str, file: &[u8]) {
    assert_eq!(nft_table(), table, "the kernel's table as it was");
    assert_eq!(
        std::fs::read(env.path("state/traffic.nft")).unwrap(),
        file,
        "traffic.nft byte for byte"
    );
    assert!(!env.path("state/traffic.nft.next").exists());
    assert_serves(env, "v1");
    assert_eq!(env.state()["live"], "blue");
}

#[test]
fn nft_batch_the_kernel_refuses_changes_nothing() {
    let env = Env::nftables(2);
    let (table, file) = nft_v2_ready(&env);
    // The real nft sends the transaction with one more command at its end, which the kernel
    // refuses (no rule has that handle) after taking the new table: it commits none of it.
    let path = nft_wrapper(
        &env,
        "if [ \"$1\" = -f ]; then\n  \
         { cat \"$2\"; echo 'delete rule ip nonstop_demo out handle 999999'; } > \"$2.refused\" && set -- -f \"$2.refused\"\nfi",
    );
    let s = env.hook_env("switch", &[], &[("PATH", &path)]);
    assert_eq!(s.code, 1, "{}", s.stderr);
    assert!(
        s.last_line().contains("Could not process rule")
            && s.last_line().contains("nothing changed"),
        "{}",
        s.last_line()
    );
    assert!(
        env.path("state/traffic.nft.next.refused").exists(),
        "the fault was injected"
    );
    assert_nft_unchanged(&env, &table, &file);
}

#[test]
fn nft_apply_failing_changes_nothing() {
    let env = Env::nftables(2);
    let (table, file) = nft_v2_ready(&env);
    let path = nft_wrapper(
        &env,
        "case \"$1\" in -f) echo 'Error: injected apply failure' >&2; exit 1;; esac",
    );
    let s = env.hook_env("switch", &[], &[("PATH", &path)]);
    assert_eq!(s.code, 1, "{}", s.stderr);
    assert!(
        s.last_line().contains("injected apply failure")
            && s.last_line().contains("nothing changed"),
        "{}",
        s.last_line()
    );
    assert_nft_unchanged(&env, &table, &file);
}

#[test]
fn nft_table_not_matching_after_the_apply_is_put_back() {
    let env = Env::nftables(2);
    let (table, file) = nft_v2_ready(&env);
    let (blue, green) = (env.port_of("blue"), env.port_of("green"));
    // The first real apply loads a table whose rule still sends to blue while its comment
    // names green: the listing after it is not the table meant. Later applies are untouched.
    let path = nft_wrapper(
        &env,
        &format!(
            "if [ \"$1\" = -f ] && [ ! -e \"$0.done\" ]; then\n  touch \"$0.done\"\n  \
             sed 's/127.0.0.1:{green}/127.0.0.1:{blue}/' \"$2\" > \"$2.bad\" && set -- -f \"$2.bad\"\nfi"
        ),
    );
    let s = env.hook_env("switch", &[], &[("PATH", &path)]);
    assert_eq!(s.code, 1, "{}", s.stderr);
    assert!(
        s.last_line().contains("is not what was applied")
            && s.last_line().contains("the previous table is back"),
        "{}",
        s.last_line()
    );
    assert!(
        env.path("fakebin/nft.done").exists(),
        "the fault was injected"
    );
    assert_nft_unchanged(&env, &table, &file);
}

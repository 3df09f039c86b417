//! Blue/green end to end with real nginx and real `java -jar` demo apps, every binary run the
//! way the CodeDeploy agent runs a hook (bundle/bin/NAME, cwd /, stdin closed, no arguments).

mod common;
use common::*;
use std::time::Duration;

fn body_of(env: &Env) -> String {
    let (status, body) = env.get("/");
    assert_eq!(status, 200, "GET / through nginx: {body}");
    body.trim().to_string()
}

#[test]
fn three_deploys_alternate_slots_and_lose_no_request() {
    let env = Env::new(2);
    let (blue, green) = (env.port_of("blue"), env.port_of("green"));

    // First deploy: the include points at blue (nothing there yet), so green is idle.
    env.deploy("v1");
    assert_eq!(
        env.include(),
        format!("set $service_url http://127.0.0.1:{green};\n").into_bytes()
    );
    assert_eq!(body_of(&env), format!("v1 real2 {green}"));
    let v1 = env.pid_of("green").expect("green pid file");

    // The started app holds none of the hook's pipes: stdin is /dev/null, stdout/stderr the log.
    let fd = |n: u8| std::fs::read_link(format!("/proc/{}/fd/{n}", v1.pid)).unwrap();
    assert_eq!(fd(0), std::path::PathBuf::from("/dev/null"));
    assert_eq!(fd(1), env.path("work/logs/green.log"));
    assert_eq!(fd(2), env.path("work/logs/green.log"));

    let traffic = Traffic::start(env.nginx_addr(), 4, Duration::from_millis(2));
    traffic.wait_requests(100);

    // Second deploy moves to blue while green keeps running.
    env.deploy("v2");
    assert_eq!(
        env.include(),
        format!("set $service_url http://127.0.0.1:{blue};\n").into_bytes()
    );
    assert_eq!(body_of(&env), format!("v2 real1 {blue}"));
    assert!(
        nonstop::process::same_process(v1.pid, v1.start_time),
        "old slot must keep running"
    );
    let st = env.state();
    assert_eq!(st["live"], "blue");
    assert_eq!(st["previous"], "green");
    let v2 = env.pid_of("blue").unwrap();
    assert_eq!(st["release"], v2.release.as_str());

    // Third deploy reuses green: its v1 app is stopped, v3 started there; blue keeps running.
    env.deploy("v3");
    assert_eq!(
        env.include(),
        format!("set $service_url http://127.0.0.1:{green};\n").into_bytes()
    );
    assert_eq!(body_of(&env), format!("v3 real2 {green}"));
    assert!(
        !nonstop::process::same_process(v1.pid, v1.start_time),
        "v1 was stopped"
    );
    assert!(
        nonstop::process::same_process(v2.pid, v2.start_time),
        "v2 keeps running"
    );
    traffic.wait_requests(100);

    let t = traffic.finish();
    eprintln!("traffic during deploys 2 and 3: {}", t.summary());
    t.assert_reload_bound(
        "traffic during deploys 2 and 3",
        200,
        &["v1", "v2", "v3"],
        4,
        2,
    );
    // Releases: one per deploy, each a new folder.
    let releases = std::fs::read_dir(env.path("work/releases"))
        .unwrap()
        .count();
    assert_eq!(releases, 3);
}

#[test]
fn failing_health_leaves_nginx_untouched_and_exits_1() {
    let mut env = Env::new(2);
    env.java_opts.push("-Ddemo.unhealthy=true".into());
    env.extra = String::new();
    env.write_config();
    std::fs::write(
        env.config_path(),
        std::fs::read_to_string(env.config_path())
            .unwrap()
            .replace("deadline: 30s", "deadline: 2s"),
    )
    .unwrap();
    env.stage_jar("v1");
    let before = env.include();
    assert_eq!(env.hook("stop", &[]).code, 0);
    assert_eq!(env.hook("start", &[]).code, 0);
    let h = env.hook("health", &[]);
    assert_eq!(h.code, 1);
    assert!(
        h.last_line().contains("not healthy") && h.last_line().contains("HTTP 503"),
        "{}",
        h.last_line()
    );
    // switch refuses on its own probe too, without touching nginx.
    let s = env.hook("switch", &[]);
    assert_eq!(s.code, 1);
    assert!(
        s.last_line().contains("refusing to switch"),
        "{}",
        s.last_line()
    );
    assert_eq!(env.include(), before, "include byte-for-byte unchanged");
}

#[test]
fn app_crashing_at_boot_fails_health_fast_with_its_log_tail() {
    let mut env = Env::new(2);
    env.java_opts.retain(|o| !o.starts_with("-Ddemo.boot-ms"));
    env.java_opts.push("-Ddemo.boot-ms=0".into());
    env.java_opts.push("-Ddemo.crash-at-boot=true".into());
    env.write_config();
    env.stage_jar("v1");
    assert_eq!(env.hook("start", &[]).code, 0);
    let h = env.hook("health", &[]);
    eprintln!("health failed after {:?}", h.took);
    assert_eq!(h.code, 1);
    assert!(
        h.took < Duration::from_secs(2),
        "health must notice the crash, not wait for the 30 s deadline: {:?}",
        h.took
    );
    assert!(
        h.stderr.contains("APPLICATION FAILED TO START"),
        "log tail shown"
    );
    assert!(
        h.last_line().contains("exited with exit status 3"),
        "{}",
        h.last_line()
    );
    let before = env.include();
    assert_eq!(env.hook("switch", &[]).code, 1);
    assert_eq!(env.include(), before);
}

#[test]
fn failing_nginx_test_restores_the_include_byte_for_byte() {
    let env = Env::new(2);
    env.stage_jar("v1");
    for b in ["start", "health"] {
        assert_eq!(env.hook(b, &[]).code, 0);
    }
    // Someone broke nginx.conf by hand after nginx started: `nginx -t` now fails.
    let before = env.include();
    let conf = env.path("nginx/nginx.conf");
    let good = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(
        &conf,
        good.replace(
            "access_log off;",
            "access_log off;\n  no_such_directive on;",
        ),
    )
    .unwrap();
    let s = env.hook("switch", &[]);
    assert_eq!(s.code, 1);
    assert!(
        s.last_line().contains("rejected the new config")
            && s.last_line().contains("no_such_directive"),
        "{}",
        s.last_line()
    );
    assert_eq!(env.include(), before, "include restored byte-for-byte");
    let leftovers: Vec<_> = std::fs::read_dir(env.path("nginx"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temp files left: {leftovers:?}");
    // nginx still serves (the old target has nothing running: a 502 from nginx, not a refusal).
    assert_eq!(env.get("/").0, 502);
    std::fs::write(&conf, good).unwrap();
    assert_eq!(env.hook("switch", &[]).code, 0);
    assert_eq!(env.get("/").0, 200);
}

#[test]
fn stop_refuses_the_live_slot_and_foreign_processes() {
    let env = Env::new(2);
    env.deploy("v1"); // green live
    let live = env.pid_of("green").unwrap();
    let r = env.hook("stop", &["--slot", "green"]);
    assert_eq!(r.code, 1);
    assert!(
        r.last_line().contains("refusing to stop slot green") && r.last_line().contains("live"),
        "{}",
        r.last_line()
    );
    let r = env.hook("stop", &["--slot", "green", "--force"]);
    assert_eq!(r.code, 1, "--force never stops the live slot");
    assert!(nonstop::process::same_process(live.pid, live.start_time));
    assert_eq!(env.get("/").0, 200);

    // A process nonstop did not start, not java, listening on the idle slot's port.
    let port = env.port_of("blue");
    let mut foreign = foreign_listener(port);
    let r = env.hook("stop", &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.last_line().contains("refusing to stop pid") && r.last_line().contains("http.server"),
        "{}",
        r.last_line()
    );
    assert!(
        foreign.try_wait().unwrap().is_none(),
        "foreign process untouched"
    );
    let r = env.hook("start", &[]);
    assert_eq!(r.code, 1);
    assert!(r.last_line().contains("in use by pid"), "{}", r.last_line());
    let r = env.hook("stop", &["--force"]);
    assert_eq!(r.code, 0, "--force stops it");
    assert!(foreign.wait().is_ok());
}

#[test]
fn sigterm_ignoring_app_is_killed_after_grace_and_concurrent_runs_exit_3() {
    let mut env = Env::new(2);
    env.java_opts.push("-Ddemo.ignore-sigterm=true".into());
    env.write_config();
    std::fs::write(
        env.config_path(),
        std::fs::read_to_string(env.config_path())
            .unwrap()
            .replace("grace: 10s", "grace: 2s"),
    )
    .unwrap();
    env.stage_jar("v1");
    assert_eq!(env.hook("start", &[]).code, 0);
    assert_eq!(env.hook("health", &[]).code, 0);
    let pf = env.pid_of("green").unwrap();

    // While stop waits out the grace (holding the lock), a second run must exit 3 at once.
    let bundle = env.path("bundle/bin/stop");
    let stopper = std::process::Command::new(bundle)
        .current_dir("/")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let second = env.hook("start", &[]);
    assert_eq!(second.code, 3, "{}", second.stderr);
    assert!(
        second.last_line().contains("another nonstop run holds"),
        "{}",
        second.last_line()
    );

    let out = stopper.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stderr.contains("sending SIGKILL") && stderr.contains("was killed"),
        "{stderr}"
    );
    assert!(!nonstop::process::alive(pf.pid));
    assert!(!nonstop::process::port_in_use(env.port_of("green")));
}

#[test]
fn bad_config_exits_2_naming_the_line() {
    let env = Env::new(2);
    let good = std::fs::read_to_string(env.config_path()).unwrap();
    let cases = [
        (
            good.replace("  name: demo\n", "  name: demo\n  colour: blue\n"),
            "nonstop.yml:3:",
            "unknown field `colour`",
        ),
        (
            good.replace("variable: service_url", "variable: \"x; return 200\""),
            "nonstop.yml:",
            "invalid nginx variable",
        ),
        (
            good.replace("keep_releases: 3", "keep_releases: many"),
            "nonstop.yml:",
            "keep_releases",
        ),
    ];
    for (yaml, place, what) in cases {
        std::fs::write(env.config_path(), yaml).unwrap();
        for b in BINARIES {
            let r = env.hook(b, &[]);
            assert_eq!(r.code, 2, "{b}: {}", r.stderr);
            assert!(
                r.last_line().contains(place) && r.last_line().contains(what),
                "{b}: {}",
                r.last_line()
            );
        }
    }
    let r = env.hook("stop", &["--no-such-flag"]);
    assert_eq!(r.code, 2);
    assert_eq!(
        env.include(),
        format!(
            "set $service_url http://127.0.0.1:{};\n",
            env.port_of("blue")
        )
        .into_bytes()
    );
}

#[test]
fn health_probes_as_soon_as_the_port_opens_not_at_the_next_interval() {
    let mut env = Env::new(2);
    env.java_opts.retain(|o| !o.starts_with("-Ddemo.boot-ms"));
    env.java_opts.push("-Ddemo.boot-ms=1000".into());
    env.write_config();
    env.edit_config("interval: 100ms", "interval: 20s");
    env.edit_config("deadline: 30s", "deadline: 60s");
    env.stage_jar("v1");
    assert_eq!(env.hook("start", &[]).code, 0);
    let h = env.hook("health", &[]);
    assert_eq!(h.code, 0, "{}", h.stderr);
    eprintln!("healthy after {:?} with a 20 s interval", h.took);
    // The first probe is refused (the app boots for 1 s); the second goes out when the port
    // opens. Waiting out the interval would take 20 s.
    assert!(h.took < Duration::from_secs(10), "{:?}", h.took);
    assert!(h.stderr.contains("(2 probes"), "{}", h.stderr);
}

/// Reload mode's floor with every body read to its end: nginx reloaded 20 times (the include
/// unchanged) while 8 keep-alive clients fetch a 64 KiB page the app streams 1 KiB at a time
/// (and POST). No body is cut, no 502, no old worker exits with a connection open; the only
/// failures are requests sent on a keep-alive connection an old worker closed at that moment
/// (at most one per connection per reload; a GET is retried, a POST is lost).
#[test]
fn reloads_under_load_cut_no_body() {
    let env = Env::new(2);
    env.deploy("v1");
    let load = Traffic::start_on(
        env.nginx_addr(),
        "/big?kb=64&ms=1",
        8,
        Duration::from_millis(1),
    );
    load.wait_requests(20);
    for _ in 0..20 {
        env.run_nginx(&["-s", "reload"]);
        std::thread::sleep(Duration::from_millis(250));
        load.wait_requests(20);
    }
    let t = load.finish();
    let log = std::fs::read_to_string(env.path("nginx/logs/error.log")).unwrap_or_default();
    t.assert_reload_bound("20 reloads, 64 KiB streamed pages", 400, &["v1"], 8, 20);
    assert!(!log.contains("open socket"), "{log}");
}

//! The operator's command `nonstop` end to end, with a real nginx per test and real `java -jar`
//! demo apps: status (text and JSON, field by field), rollback (switch only, or the release
//! started again), deploy (the hooks' stages in one run, under one lock), validate (the checks a
//! CodeDeploy host needs), init (its output passes validate), completions and man pages, and
//! the progress line on a terminal.

mod common;
use common::*;
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

fn body_of(env: &Env) -> String {
    let (status, body) = env.get("/");
    assert_eq!(status, 200, "GET / through nginx: {body}");
    body.trim().to_string()
}

fn status_json(env: &Env) -> Value {
    let r = env.nonstop(&["status", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("status --json: {e}\n{}", r.stdout))
}

fn slot<'a>(st: &'a Value, name: &str) -> &'a Value {
    st["slots"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no slot {name} in {st}"))
}

/// `sha256sum FILE`, the way a person would check a jar.
fn sha256sum(p: &Path) -> String {
    let out = Command::new("sha256sum").arg(p).output().unwrap();
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

fn releases(env: &Env) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(env.path("work/releases"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A running slot as status reports it, checked against its pid file and the jar it runs.
fn assert_running(st: &Value, env: &Env, name: &str, state: &str, version: &str) {
    let s = slot(st, name);
    let pf = env.pid_of(name).expect("pid file");
    assert_eq!(s["port"], env.port_of(name));
    assert_eq!(s["state"], state, "{s}");
    assert_eq!(s["owner"], "nonstop");
    assert_eq!(s["pid"], pf.pid);
    assert_eq!(s["started_at"], pf.started_at.as_str());
    assert!(s["uptime_s"].as_u64().unwrap() < 600, "{s}");
    assert_eq!(s["release"], pf.release.as_str());
    assert_eq!(s["jar"], pf.jar.to_str().unwrap());
    assert_eq!(s["sha256"], sha256sum(&pf.jar).as_str());
    assert_eq!(
        s["sha256"],
        sha256sum(&demo_jar(version)).as_str(),
        "{name} runs {version}"
    );
    assert_eq!(s["health"]["ok"], true, "{s}");
    assert_eq!(s["health"]["status"], 200);
    assert!(s["health"]["latency_ms"].is_u64());
    assert_eq!(s["rotation"], Value::Null, "no upstream file: no rotation");
}

#[test]
fn status_on_a_fresh_host_then_after_one_and_two_deploys() {
    let env = Env::new(2);
    let (blue, green) = (env.port_of("blue"), env.port_of("green"));

    // Fresh host: the include points at blue, nothing runs, nothing recorded.
    let st = status_json(&env);
    assert_eq!(st["app"], "demo");
    assert_eq!(st["config"], env.config_path().to_str().unwrap());
    assert_eq!(st["include"]["path"], env.include_path().to_str().unwrap());
    assert_eq!(st["include"]["port"], blue);
    assert_eq!(st["live"], "blue");
    assert_eq!(st["previous"], Value::Null);
    assert_eq!(st["balanced"], false);
    assert_eq!(st["deployments"], serde_json::json!([]));
    for (name, state) in [("blue", "live"), ("green", "stopped")] {
        let s = slot(&st, name);
        assert_eq!(s["state"], state);
        assert_eq!(s["profile"], if name == "blue" { "real1" } else { "real2" });
        for field in [
            "pid", "owner", "uptime_s", "release", "jar", "sha256", "health",
        ] {
            assert_eq!(s[field], Value::Null, "{name}.{field}");
        }
        assert_eq!(s["previous"], false);
    }
    let text = env.nonstop(&["status"]);
    assert_eq!(text.code, 0);
    assert!(text.stdout.contains("none recorded"), "{}", text.stdout);
    assert!(
        text.stderr.is_empty(),
        "status logs nothing: {}",
        text.stderr
    );

    // It works while another run holds the lock, and changes nothing.
    let held = nonstop::lock::acquire(&env.path("state"), "a test").unwrap();
    let before = env.include();
    let r = env.nonstop(&["status"]);
    assert_eq!(r.code, 0, "status needs no lock: {}", r.stderr);
    assert_eq!(env.include(), before);
    assert!(
        !env.path("state/state.json").exists(),
        "status wrote no state"
    );
    drop(held);

    // One deploy: green runs v1 and is live.
    env.deploy("v1");
    let st = status_json(&env);
    assert_eq!(st["live"], "green");
    assert_eq!(st["include"]["port"], green);
    assert_eq!(st["previous"], "blue");
    assert_running(&st, &env, "green", "live", "v1");
    assert_eq!(slot(&st, "blue")["state"], "stopped");
    assert_eq!(slot(&st, "blue")["previous"], true);
    let d = st["deployments"].as_array().unwrap();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["id"], "d-TEST");
    assert_eq!(d[0]["slot"], "green");
    assert_eq!(d[0]["outcome"], "ok");
    assert_eq!(
        d[0]["release"],
        env.pid_of("green").unwrap().release.as_str()
    );
    assert_eq!(
        d[0]["steps"],
        serde_json::json!(["stop", "start", "switch"])
    );
    assert!(d[0]["duration_ms"].as_u64().unwrap() > 0);
    // The app's version (the stand-in jar's file name: it has no Implementation-Version) and
    // who ran it (the agent sets DEPLOYMENT_GROUP_NAME for its hooks).
    assert_eq!(d[0]["version"], "demo-v1");
    assert_eq!(d[0]["by"], "codedeploy (group test-group)");
    assert_eq!(slot(&st, "green")["version"], "demo-v1");

    // Two deploys: blue runs v2 live, green keeps v1 running as the rollback target.
    env.deploy("v2");
    let st = status_json(&env);
    assert_eq!(st["live"], "blue");
    assert_eq!(st["include"]["port"], blue);
    assert_eq!(st["previous"], "green");
    assert_running(&st, &env, "blue", "live", "v2");
    assert_running(&st, &env, "green", "standby", "v1");
    assert_eq!(slot(&st, "green")["previous"], true);
    assert_eq!(slot(&st, "blue")["previous"], false);
    let d = st["deployments"].as_array().unwrap();
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!(d[0]["slot"], "blue", "newest first");
    assert_eq!(
        d[0]["release"],
        env.pid_of("blue").unwrap().release.as_str()
    );
    assert_eq!(d[1]["slot"], "green");
    assert!(d[0]["time"].as_str().unwrap() > d[1]["time"].as_str().unwrap());
    for x in d {
        assert_eq!(x["outcome"], "ok");
    }

    // The text form says the same.
    let r = env.nonstop(&["status"]);
    assert_eq!(r.code, 0);
    let line = |name: &str| {
        r.stdout
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} row:\n{}", r.stdout))
            .to_string()
    };
    let b = line("blue");
    assert!(b.contains(" live ") && b.contains("up: HTTP 200"), "{b}");
    let g = line("green");
    assert!(g.contains(" standby ") && g.contains(&env.pid_of("green").unwrap().pid.to_string()));
    assert!(r.stdout.contains(&sha256sum(&demo_jar("v1"))));
    assert!(r.stdout.contains("rollback green"), "{}", r.stdout);
    let only = env.nonstop(&["status", "--slot", "green", "--json"]);
    let only: Value = serde_json::from_str(&only.stdout).unwrap();
    assert_eq!(only["slots"].as_array().unwrap().len(), 1);
    assert!(
        b.contains(" demo-v2 ") && g.contains(" demo-v1 "),
        "{b}\n{g}"
    );

    // `nonstop history`: every deployment, newest first, with its version and who ran it.
    let h = env.nonstop(&["history"]);
    assert_eq!(h.code, 0, "{}", h.stderr);
    let rows: Vec<&str> = h.stdout.lines().collect();
    assert_eq!(rows.len(), 3, "a header and two deployments:\n{}", h.stdout);
    for (want, row) in [
        ("VERSION", rows[0]),
        ("demo-v2", rows[1]),
        ("demo-v1", rows[2]),
    ] {
        assert!(row.contains(want), "{want} in {row:?}");
    }
    assert!(
        rows[1].ends_with("codedeploy (group test-group)"),
        "{}",
        rows[1]
    );
    let h: Value =
        serde_json::from_str(&env.nonstop(&["history", "-n", "1", "--json"]).stdout).unwrap();
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(
        (&h[0]["version"], &h[0]["release"], &h[0]["outcome"]),
        (
            &Value::from("demo-v2"),
            &Value::from(env.pid_of("blue").unwrap().release.as_str()),
            &Value::from("ok")
        )
    );
}

#[test]
fn rollback_to_a_running_previous_slot_only_switches() {
    let env = Env::new(2);
    let green = env.port_of("green");
    env.deploy("v1"); // green
    env.deploy("v2"); // blue live, green v1 standby
    let (b, g) = (env.pid_of("blue").unwrap(), env.pid_of("green").unwrap());
    let rel_before = releases(&env);
    let traffic = Traffic::start(env.nginx_addr(), 4, Duration::from_millis(2));
    traffic.wait_requests(100);

    let r = env.nonstop(&["rollback"]);
    eprintln!("rollback to a running slot: wall time {:?}", r.took);
    assert_eq!(r.code, 0, "{}", r.stderr);
    traffic.wait_requests(100);
    let t = traffic.finish();
    eprintln!("traffic during the rollback: {}", t.summary());

    // Only a switch: both apps are the same processes, no release was made, nothing started.
    assert!(
        r.stdout.contains("switch only, no process started"),
        "{}",
        r.stdout
    );
    let stages: Vec<&str> = r
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| ["stop", "start", "health", "switch"].contains(w))
        .collect();
    assert_eq!(stages, ["switch"], "{}", r.stdout);
    assert_eq!(env.pid_of("blue").unwrap(), b);
    assert_eq!(env.pid_of("green").unwrap(), g);
    assert!(nonstop::process::same_process(b.pid, b.start_time));
    assert!(nonstop::process::same_process(g.pid, g.start_time));
    assert_eq!(releases(&env), rel_before, "no new release");
    assert!(!r.stderr.contains("started slot"), "{}", r.stderr);

    // nginx sends traffic to the previous version again.
    assert_eq!(
        env.include(),
        format!("set $service_url http://127.0.0.1:{green};\n").into_bytes()
    );
    assert_eq!(body_of(&env), format!("v1 real2 {green}"));
    t.assert_reload_bound("traffic during the rollback", 200, &["v1", "v2"], 4, 1);
    let st = status_json(&env);
    assert_eq!(st["live"], "green");
    assert_eq!(st["previous"], "blue");
    let d = &st["deployments"][0];
    assert!(d["id"].as_str().unwrap().starts_with("rollback-"), "{d}");
    assert_eq!(d["steps"], serde_json::json!(["switch", "rollback"]));
    assert_eq!(d["outcome"], "ok");
    assert_eq!(d["release"], g.release.as_str());

    // Rolling back again goes forward to v2 the same way.
    let r = env.nonstop(&["rollback"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(body_of(&env), format!("v2 real1 {}", env.port_of("blue")));
}

#[test]
fn rollback_when_the_previous_slot_is_stopped_starts_its_release_again() {
    let env = Env::new(2);
    let green = env.port_of("green");
    env.deploy("v1"); // green
    let v1 = env.pid_of("green").unwrap();
    env.deploy("v2"); // blue
    let v2 = env.pid_of("blue").unwrap();
    assert_eq!(env.hook("stop", &["--slot", "green"]).code, 0);
    assert!(env.pid_of("green").is_none());
    let rel_before = releases(&env);

    let r = env.nonstop(&["rollback"]);
    eprintln!("rollback to a stopped slot: wall time {:?}", r.took);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!(
            "slot green is stopped: starting release {} on it again",
            v1.release
        )),
        "{}",
        r.stdout
    );
    let stages: Vec<&str> = r
        .stdout
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() >= 2 && w[1] == "ok").then_some(w[0])
        })
        .collect();
    assert_eq!(
        stages,
        ["stop", "start", "health", "switch"],
        "{}",
        r.stdout
    );

    // The previous release itself runs again on green: same release folder, same jar.
    let now = env.pid_of("green").expect("green started");
    assert_ne!(now.pid, v1.pid);
    assert_eq!(now.release, v1.release);
    assert_eq!(now.jar, v1.jar);
    assert_eq!(releases(&env), rel_before, "no copy made");
    assert_eq!(body_of(&env), format!("v1 real2 {green}"));
    assert!(
        nonstop::process::same_process(v2.pid, v2.start_time),
        "v2 keeps running"
    );
    let st = status_json(&env);
    assert_running(&st, &env, "green", "live", "v1");
    assert_eq!(st["deployments"][0]["outcome"], "ok");
    assert_eq!(
        st["deployments"][0]["steps"],
        serde_json::json!(["stop", "switch", "rollback"])
    );
}

#[test]
fn rollback_refuses_when_there_is_nothing_to_go_back_to() {
    let env = Env::new(2);
    env.deploy("v1"); // green; blue never served
    let before = env.include();
    let r = env.nonstop(&["rollback"]);
    assert_eq!(r.code, 1);
    assert!(
        r.last_line()
            .contains("no release of slot blue was ever switched live"),
        "{}",
        r.last_line()
    );
    assert_eq!(env.include(), before);
    // And it waits for no one: a held lock is exit 3.
    let _held = nonstop::lock::acquire(&env.path("state"), "a test").unwrap();
    let r = env.nonstop(&["rollback"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
}

#[test]
fn deploy_runs_every_stage_under_one_lock_and_logs_progress() {
    let mut env = Env::new(2);
    let (blue, green) = (env.port_of("blue"), env.port_of("green"));
    // A boot longer than the plain progress interval, so the log shows the wait is alive.
    env.java_opts.retain(|o| !o.starts_with("-Ddemo.boot-ms"));
    env.java_opts.push("-Ddemo.boot-ms=5600".into());
    env.write_config();
    env.stage_jar("v1");

    // While deploy waits for health, a hook run is refused with exit 3: one lock for the run.
    let r = std::thread::scope(|s| {
        let d = s.spawn(|| env.nonstop(&["deploy"]));
        std::thread::sleep(Duration::from_millis(2500));
        let hook = env.hook("switch", &[]);
        assert_eq!(hook.code, 3, "{}", hook.stderr);
        assert!(
            hook.last_line().contains("nonstop deploy pid"),
            "{}",
            hook.last_line()
        );
        d.join().unwrap()
    });
    assert_eq!(r.code, 0, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert!(lines[0].starts_with("deploy deploy-"), "{}", r.stdout);
    assert!(lines[0].contains("to slot green"), "{}", lines[0]);
    // The jar's version (the stand-in has no Implementation-Version: its file name).
    // Its file name, not its path (the log has the path).
    assert!(
        lines[0].contains(": demo-v1 (demo-v1.jar) to slot"),
        "{}",
        lines[0]
    );
    for (i, stage) in ["stop", "start", "health", "switch"].iter().enumerate() {
        let w: Vec<&str> = lines[i + 1].split_whitespace().collect();
        assert_eq!((w[0], w[1]), (*stage, "ok"), "{}", r.stdout);
        assert!(w[3] == "ms" || w[3] == "s", "{}", lines[i + 1]);
    }
    assert!(
        lines[5].starts_with("deployed release deploy-")
            && lines[5].contains(" (version demo-v1) to slot green"),
        "{}",
        r.stdout
    );
    assert!(lines[5].contains("to slot green"), "{}", lines[5]);
    assert_eq!(body_of(&env), format!("v1 real2 {green}"));
    // Not a terminal: plain progress lines, no carriage returns.
    // One plain line at the first probe past 5 s (5.0 s or a probe interval later).
    assert!(
        r.stderr.lines().any(|l| {
            l.contains("nonstop: slot green health: 5.")
                && l.contains(" s of 30 s deadline; probe ")
        }),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains('\r'));

    // The second deploy takes a jar from elsewhere, under traffic; green keeps running.
    let v1 = env.pid_of("green").unwrap();
    let traffic = Traffic::start(env.nginx_addr(), 4, Duration::from_millis(2));
    traffic.wait_requests(100);
    let r = env.nonstop(&["deploy", "--jar", demo_jar("v2").to_str().unwrap()]);
    traffic.wait_requests(100);
    let t = traffic.finish();
    eprintln!("traffic during nonstop deploy: {}", t.summary());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("green keeps running as the rollback target"),
        "{}",
        r.stdout
    );
    assert_eq!(body_of(&env), format!("v2 real1 {blue}"));
    assert!(nonstop::process::same_process(v1.pid, v1.start_time));
    t.assert_reload_bound("traffic during nonstop deploy", 200, &["v1", "v2"], 4, 1);
    let b = env.pid_of("blue").unwrap();
    assert_eq!(
        b.jar.file_name().unwrap(),
        demo_jar("v2").file_name().unwrap()
    );

    // The history shows two deployments, each with its stages and the run's summary.
    let st = status_json(&env);
    let d = st["deployments"].as_array().unwrap();
    assert_eq!(d.len(), 2);
    for x in d {
        assert!(x["id"].as_str().unwrap().starts_with("deploy-"), "{x}");
        assert_eq!(x["outcome"], "ok");
        assert_eq!(
            x["steps"],
            serde_json::json!(["stop", "start", "switch", "deploy"])
        );
    }
    assert_eq!(d[0]["release"], b.release.as_str());
}

#[test]
fn deploy_stops_at_a_failing_stage_and_says_which() {
    let mut env = Env::new(2);
    env.java_opts.push("-Ddemo.unhealthy=true".into());
    env.write_config();
    env.edit_config("deadline: 30s", "deadline: 2s");
    env.stage_jar("v1");
    let before = env.include();
    let r = env.nonstop(&["deploy"]);
    assert_eq!(r.code, 1);
    let failed: Vec<Vec<&str>> = r
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|w| w.len() == 4 && ["ok", "FAILED"].contains(&w[1]))
        .collect();
    let stages: Vec<(&str, &str)> = failed.iter().map(|w| (w[0], w[1])).collect();
    assert_eq!(
        stages,
        [("stop", "ok"), ("start", "ok"), ("health", "FAILED")],
        "{}",
        r.stdout
    );
    assert!(!r.stdout.contains("switch"), "{}", r.stdout);
    assert!(r.last_line().contains("not healthy"), "{}", r.last_line());
    assert_eq!(env.include(), before, "nginx untouched");
    let st = status_json(&env);
    let out = st["deployments"][0]["outcome"].as_str().unwrap();
    assert!(out.starts_with("failed at health: "), "{out}");
}

/// The check lines of a validate run: name -> (verdict, line).
fn checks(r: &OpRun) -> Vec<(String, String, String)> {
    r.stdout
        .lines()
        .filter(|l| {
            l.len() > 28
                && ["ok ", "FAIL", "warn", "skip"]
                    .iter()
                    .any(|v| l.starts_with(v))
        })
        .map(|l| {
            let verdict = l[..5].trim().to_string();
            let name = l[6..27].trim().to_string();
            (verdict, name, l.to_string())
        })
        .collect()
}

fn verdict_of(r: &OpRun, name: &str) -> (String, String) {
    checks(r)
        .into_iter()
        .find(|(_, n, _)| n == name)
        .map(|(v, _, l)| (v, l))
        .unwrap_or_else(|| panic!("no check {name}:\n{}", r.stdout))
}

#[test]
fn validate_catches_short_timeouts_a_missing_include_and_a_string_version() {
    let env = Env::new(2);
    env.stage_jar("v1");
    let appspec = env.path("bundle/appspec.yml");
    let good =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("appspec/appspec.yml"))
            .unwrap();
    std::fs::write(&appspec, &good).unwrap();

    // All good: every check passes, one line each.
    let r = env.nonstop(&["validate"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let all = checks(&r);
    for name in [
        "config",
        "nginx running",
        "nginx -T",
        "nginx includes",
        "nginx uses var",
        "include",
        "appspec",
        "hooks",
        "timeout stop",
        "timeout start",
        "timeout health",
        "timeout switch",
        "java",
        "jar",
    ] {
        let (v, line) = verdict_of(&r, name);
        assert_eq!(v, "ok", "{line}");
    }
    // ...except the health path: this config keeps the default /actuator/health (the stand-in
    // has no readiness group), which validate warns about.
    assert!(
        all.iter()
            .all(|(v, n, _)| v == "ok" || (v == "warn" && n == "health path")),
        "{}",
        r.stdout
    );
    assert_eq!(verdict_of(&r, "health path").0, "warn");

    // A health hook timeout shorter than health.deadline (30 s in this config).
    std::fs::write(&appspec, good.replace("timeout: 180", "timeout: 25")).unwrap();
    let r = env.nonstop(&["validate"]);
    assert_eq!(r.code, 1);
    let (v, line) = verdict_of(&r, "timeout health");
    assert_eq!(v, "FAIL");
    assert!(
        line.contains("timeout 25 s is shorter than health.deadline 30 s"),
        "{line}"
    );
    assert!(
        r.last_line().contains("timeout health"),
        "{}",
        r.last_line()
    );
    assert_eq!(verdict_of(&r, "timeout stop").0, "ok");

    // A string version.
    std::fs::write(&appspec, good.replace("version: 0.0", "version: \"0.0\"")).unwrap();
    let r = env.nonstop(&["validate"]);
    assert_eq!(r.code, 1);
    let (v, line) = verdict_of(&r, "appspec");
    assert_eq!(v, "FAIL");
    assert!(line.contains("version is the string \"0.0\""), "{line}");
    std::fs::write(&appspec, &good).unwrap();

    // An nginx config that sets the variable itself and never includes the include file.
    let site = |with_include: bool| {
        format!(
            "  server {{\n    listen 127.0.0.1:{};\n    location / {{\n      {}\n      proxy_pass $service_url;\n    }}\n  }}",
            env.nginx_port,
            if with_include {
                format!("include {};", env.include_path().display())
            } else {
                format!("set $service_url http://127.0.0.1:{};", env.port_of("blue"))
            }
        )
    };
    env.nginx_http(&site(false));
    let r = env.nonstop(&["validate"]);
    assert_eq!(r.code, 1);
    let (v, line) = verdict_of(&r, "nginx includes");
    assert_eq!(v, "FAIL");
    assert!(
        line.contains(&format!(
            "no file nginx loads includes {}",
            env.include_path().display()
        )),
        "{line}"
    );
    assert_eq!(verdict_of(&r, "nginx -T").0, "ok");
    assert_eq!(verdict_of(&r, "nginx uses var").0, "ok");
    env.nginx_http(&site(true));
    assert_eq!(env.nonstop(&["validate"]).code, 0);

    // No jar, and no java where app.java says.
    std::fs::remove_dir_all(env.path("bundle/app")).unwrap();
    std::fs::create_dir_all(env.path("bundle/app")).unwrap();
    std::fs::write(
        env.config_path(),
        std::fs::read_to_string(env.config_path())
            .unwrap()
            .replace("  name: demo\n", "  name: demo\n  java: /nowhere/java\n"),
    )
    .unwrap();
    let r = env.nonstop(&["validate"]);
    assert_eq!(r.code, 1);
    assert_eq!(verdict_of(&r, "jar").0, "FAIL");
    assert_eq!(verdict_of(&r, "java").0, "FAIL");
    assert!(r.last_line().contains("java, jar"), "{}", r.last_line());

    // A config that does not load is a failed check too, not a crash.
    std::fs::write(env.config_path(), "app: {}\n").unwrap();
    let r = env.nonstop(&["validate"]);
    assert_eq!(r.code, 1);
    assert_eq!(verdict_of(&r, "config").0, "FAIL");
}

#[test]
fn init_output_passes_validate() {
    // A network namespace of this test's own: nothing of this machine's listens on 8081 there.
    enter_netns();
    let env = Env::new(2);
    let project = env.path("project");
    let site_port = free_port();
    let listen = format!("127.0.0.1:{site_port}");
    let include = env.include_path();
    let args = [
        "init",
        project.to_str().unwrap(),
        "--name",
        "demo",
        "--include",
        include.to_str().unwrap(),
        "--listen",
        &listen,
        "--traffic",
        "nginx-reload",
    ];
    let r = env.nonstop(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for f in [
        "deploy/nonstop.yml",
        "deploy/appspec.yml",
        "deploy/nginx/service-url.inc",
        "deploy/nginx/site.conf",
        "deploy/nginx/upstream.conf",
        "Jenkinsfile",
        ".github/workflows/nonstop-deploy.yml",
    ] {
        assert!(project.join(f).is_file(), "{f}");
        assert!(r
            .stdout
            .contains(&format!("wrote {}", project.join(f).display())));
    }
    // The sudo rules are setup's (root's, on the host), not a file in the project.
    assert!(!project.join("deploy/sudoers").exists());
    assert!(
        r.stdout.contains("sudo nonstop setup --user ec2-user"),
        "{}",
        r.stdout
    );
    // A second init refuses and changes nothing; --force rewrites.
    std::fs::write(project.join("Jenkinsfile"), "// mine\n").unwrap();
    let again = env.nonstop(&args);
    assert_eq!(again.code, 1);
    assert!(
        again.last_line().contains("refusing to overwrite"),
        "{}",
        again.last_line()
    );
    assert_eq!(
        std::fs::read_to_string(project.join("Jenkinsfile")).unwrap(),
        "// mine\n"
    );
    let mut forced = args.to_vec();
    forced.push("--force");
    assert_eq!(env.nonstop(&forced).code, 0);
    assert_ne!(
        std::fs::read_to_string(project.join("Jenkinsfile")).unwrap(),
        "// mine\n"
    );

    // What `make bundle` adds: the binaries and the jar next to appspec.yml.
    let bundle = project.join("deploy");
    std::fs::create_dir_all(bundle.join("bin")).unwrap();
    std::fs::create_dir_all(bundle.join("app")).unwrap();
    for b in BINARIES {
        std::fs::copy(bin_dir().join(b), bundle.join("bin").join(b)).unwrap();
    }
    std::fs::copy(spring_jar("v1"), bundle.join("app/spring-app-v1.jar")).unwrap();
    // The host's nginx loads the generated site and upstream (this test's private nginx
    // stands in for the distribution's, so its commands take -p and -c).
    let conf = bundle.join("nginx");
    env.nginx_http(&format!(
        "  include {}/upstream.conf;\n  include {}/site.conf;",
        conf.display(),
        conf.display()
    ));
    let n = env.path("nginx");
    let n = n.display();
    let nginx = nginx_bin();
    let nginx = nginx.display();
    let yml = bundle.join("nonstop.yml");
    let text = std::fs::read_to_string(&yml).unwrap();
    let mut text = text;
    for (from, to) in [
        (
            "  test: [\"nginx\", \"-t\"]".to_string(),
            format!("  test: [{nginx}, -t, -q, -p, {n}, -c, {n}/nginx.conf]"),
        ),
        (
            "  reload: [\"nginx\", \"-s\", \"reload\"]".to_string(),
            format!("  reload: [{nginx}, -s, reload, -p, {n}, -c, {n}/nginx.conf]"),
        ),
        (
            "  pid_file: /run/nginx.pid".to_string(),
            format!("  pid_file: {n}/nginx.pid"),
        ),
    ] {
        assert!(text.contains(&from), "template lacks {from:?}");
        text = text.replace(&from, &to);
    }
    std::fs::write(&yml, text).unwrap();

    // ...and the include is installed from the generated one, as its comment says.
    std::fs::copy(conf.join("service-url.inc"), &include).unwrap();

    let r = env.nonstop(&["validate", "--config", yml.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(checks(&r).iter().all(|(v, _, _)| v == "ok"), "{}", r.stdout);
    assert!(verdict_of(&r, "nginx uses var").1.contains("site.conf"));
    assert!(
        verdict_of(&r, "jar").1.contains("Spring Boot 3.5.7 jar"),
        "{}",
        r.stdout
    );
    assert!(verdict_of(&r, "health path")
        .1
        .contains("/actuator/health/readiness is a readiness path"));
    // And nginx serves the generated site through the include: to port 8081, where nothing
    // listens in this test's network namespace, so nginx answers 502.
    let (status, _) = Client::new(std::net::SocketAddr::from(([127, 0, 0, 1], site_port)))
        .request("GET", "/", b"")
        .unwrap();
    assert_eq!(status, 502, "GET / on the generated site");
}

#[test]
fn completions_and_man_pages_come_from_the_clap_definitions() {
    let env = Env::new(2);
    for shell in ["bash", "zsh", "fish"] {
        let r = env.nonstop(&["completions", shell]);
        assert_eq!(r.code, 0);
        for sub in ["status", "rollback", "deploy", "validate", "init"] {
            assert!(r.stdout.contains(sub), "{shell} completion lacks {sub}");
        }
        assert!(r.stdout.contains("json"), "{shell}: the --json flag");
    }
    let r = env.nonstop(&["man"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains(".TH nonstop 1"), "{}", r.stdout);
    let dir = env.path("man");
    let r = env.nonstop(&["man", dir.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for page in [
        "nonstop",
        "nonstop-status",
        "nonstop-rollback",
        "nonstop-deploy",
        "nonstop-validate",
        "nonstop-init",
    ] {
        let text = std::fs::read_to_string(dir.join(format!("{page}.1"))).unwrap();
        assert!(text.contains(&format!(".TH {page} 1")), "{page}");
    }
    assert!(
        !dir.join("nonstop-completions.1").exists(),
        "hidden subcommands get no page"
    );
}

/// Run `bundle/bin/nonstop ARGS` with stdout and stderr on a pseudo-terminal; returns the exit
/// code and everything the terminal received.
fn on_a_terminal(env: &Env, args: &[&str]) -> (i32, String) {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).unwrap();
    grantpt(&master).unwrap();
    unlockpt(&master).unwrap();
    let name = ptsname(&master, Vec::new()).unwrap();
    let pts = PathBuf::from(name.to_str().unwrap());
    let slave = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&pts)
        .unwrap();
    let mut master = std::fs::File::from(master);
    let reader = std::thread::spawn(move || {
        let mut all = vec![];
        let mut buf = [0u8; 4096];
        // Ends with EIO once every holder of the terminal's other side closed it.
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&all).into_owned()
    });
    let bin = env.path("bundle/bin/nonstop");
    if !bin.is_file() {
        std::fs::copy(bin_dir().join("nonstop"), &bin).unwrap();
    }
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(slave.try_clone().unwrap())
        .stderr(slave)
        .env("TERM", "xterm")
        .env_remove("NONSTOP_CONFIG")
        .env_remove("DEPLOYMENT_ID");
    let status = cmd.status().unwrap();
    drop(cmd);
    let out = reader.join().unwrap();
    eprintln!("--- on a terminal: nonstop {}\n{out}", args.join(" "));
    (status.code().unwrap_or(-1), out)
}

#[test]
fn on_a_terminal_the_health_wait_is_one_updating_line() {
    let mut env = Env::new(2);
    env.java_opts.retain(|o| !o.starts_with("-Ddemo.boot-ms"));
    env.java_opts.push("-Ddemo.boot-ms=1500".into());
    env.write_config();
    env.stage_jar("v1");
    let (code, out) = on_a_terminal(&env, &["deploy"]);
    assert_eq!(code, 0);
    let redraws = out.matches("\r\x1b[2Kslot green health: ").count();
    assert!(
        redraws >= 3,
        "the line is redrawn in place ({redraws} times):\n{out}"
    );
    assert!(out.contains("of 30 s deadline"), "{out}");
    // The line is cleared before the next log line, and no plain progress line is logged.
    assert!(out.contains("\r\x1b[2K") && out.contains("healthy after"));
    let cleared_then_logged = out
        .split("\r\x1b[2K")
        .last()
        .unwrap()
        .contains("healthy after");
    assert!(cleared_then_logged, "{out}");
    assert!(
        !out.contains("nonstop: slot green health: "),
        "no plain progress line on a terminal: {out}"
    );
    assert!(out.contains("deployed release"), "{out}");
}

#[test]
fn in_balanced_mode_deploy_rolls_every_slot_and_status_shows_the_rotation() {
    let env = Env::balanced(2);
    env.stage_jar("v1");
    let st = status_json(&env);
    assert_eq!(st["balanced"], true);
    for name in ["blue", "green"] {
        assert_eq!(
            slot(&st, name)["rotation"],
            "out",
            "fresh upstream: all down"
        );
    }

    let r = env.nonstop(&["deploy"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let stages: Vec<&str> = r
        .stdout
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 4 && w[1] == "ok").then_some(w[0])
        })
        .collect();
    assert_eq!(
        stages,
        ["stop", "start", "health", "switch", "deploy-second"],
        "{}",
        r.stdout
    );
    // Both slots run the new release and are in rotation; /api/ reaches both.
    let st = status_json(&env);
    assert_eq!(st["live"], "green");
    let release = env.pid_of("green").unwrap().release;
    for name in ["blue", "green"] {
        let s = slot(&st, name);
        assert_eq!(s["rotation"], "in", "{s}");
        assert_eq!(s["weight"], 1);
        assert_eq!(s["release"], release.as_str());
        assert_eq!(s["health"]["ok"], true);
        assert_eq!(
            s["sha256"],
            sha256sum(&demo_jar("v1")).as_str(),
            "{name} runs v1"
        );
    }
    assert_eq!(slot(&st, "blue")["state"], "standby");
    let text = env.nonstop(&["status"]).stdout;
    let row = text.lines().find(|l| l.starts_with("blue ")).unwrap();
    assert!(row.contains(" in "), "{row}");
    let d = &st["deployments"][0];
    assert_eq!(d["outcome"], "ok");
    assert_eq!(
        d["steps"],
        serde_json::json!(["stop", "start", "switch", "deploy-second", "deploy"])
    );
}

/// Run `bundle/bin/nonstop ARGS` like [`Env::nonstop`] but with `stdout` as given; stderr is
/// collected by a thread. Returns the child (to read its stdout) and the stderr collector.
fn nonstop_with_stdout(
    env: &Env,
    args: &[&str],
    stdout: Stdio,
) -> (std::process::Child, std::thread::JoinHandle<String>) {
    let bin = env.path("bundle/bin/nonstop");
    if !bin.is_file() {
        std::fs::copy(bin_dir().join("nonstop"), &bin).unwrap();
    }
    let mut child = Command::new(bin)
        .args(args)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .env_remove("NONSTOP_CONFIG")
        .env_remove("DEPLOYMENT_ID")
        .env_remove("LIFECYCLE_EVENT")
        .spawn()
        .unwrap();
    let mut err = child.stderr.take().unwrap();
    let collect = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    (child, collect)
}

#[test]
fn a_closed_stdout_is_a_normal_end() {
    let env = Env::new(2);
    let green = env.port_of("green");
    env.stage_jar("v1");

    // `nonstop status --json | true`: the reader is gone before the first byte. A socket whose
    // other end is closed gives EPIPE on the first write, with no race against the reader.
    let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
    drop(ours);
    let (mut child, err) = nonstop_with_stdout(
        &env,
        &["status", "--json"],
        Stdio::from(std::os::fd::OwnedFd::from(theirs)),
    );
    let code = child.wait().unwrap().code();
    let stderr = err.join().unwrap();
    eprintln!("--- status --json into a closed stdout: exit {code:?}\n{stderr}");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.is_empty(), "status logs nothing: {stderr}");

    // `nonstop deploy | head -1`: a pipe whose reader takes the first line and leaves.
    let (mut child, err) = nonstop_with_stdout(&env, &["deploy"], Stdio::piped());
    let mut first = String::new();
    {
        use std::io::BufRead;
        let mut r = std::io::BufReader::new(child.stdout.take().unwrap());
        r.read_line(&mut first).unwrap();
    } // the reader closes here, long before the health stage ends
    let code = child.wait().unwrap().code();
    let stderr = err.join().unwrap();
    eprintln!("--- deploy | head -1: exit {code:?}\n{first}{stderr}");
    assert!(first.starts_with("deploy deploy-"), "{first}");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let last = stderr.lines().last().unwrap_or("");
    assert!(last.contains("nonstop done in"), "{last}");
    // The deploy went all the way: nginx serves the new version and the history says ok.
    assert_eq!(body_of(&env), format!("v1 real2 {green}"));
    let st = status_json(&env);
    assert_eq!(st["live"], "green");
    assert_eq!(st["deployments"][0]["outcome"], "ok");
}

/// `nonstop logs -f` (builtin) across logrotate's copytruncate, where the app writes past the
/// old size before the next look: the lines written after the truncate are all printed, the
/// first one included. Then its reader leaves (`| head -1`) while the app writes nothing: it
/// ends, exit 0.
#[test]
fn logs_follow_survives_a_copytruncate_and_ends_when_its_reader_leaves() {
    use std::io::{BufRead, Write};
    let env = Env::new(2);
    let log = env.path("work/logs/blue.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let before: String = (0..50).map(|i| format!("before truncate {i}\n")).collect();
    std::fs::write(&log, &before).unwrap();
    let (mut child, err) =
        nonstop_with_stdout(&env, &["logs", "blue", "-f", "-n", "1"], Stdio::piped());
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let out = child.stdout.take().unwrap();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut r = std::io::BufReader::new(out);
        loop {
            let mut line = String::new();
            if r.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let _ = tx.send(line);
            if stop_rx.try_recv().is_ok() {
                return; // drops the pipe's read end: the reader left
            }
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(30))
            .expect("a line from logs -f")
    };
    assert_eq!(next(), "before truncate 49\n");
    // Let logs -f take its position at the end of the file.
    std::thread::sleep(Duration::from_millis(600));
    // copytruncate: copy, truncate to 0, and the app appends more than the old size at once.
    std::fs::copy(&log, env.path("work/logs/blue.log.1")).unwrap();
    let after: String = (0..100).map(|i| format!("after truncate {i}\n")).collect();
    assert!(after.len() > before.len());
    {
        let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
        f.set_len(0).unwrap();
    }
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(after.as_bytes()).unwrap();
    drop(f);
    let first = next();
    assert_eq!(
        first, "after truncate 0\n",
        "the lines right after the truncate are lost"
    );
    for i in 1..100 {
        assert_eq!(next(), format!("after truncate {i}\n"));
    }
    // The reader leaves after one more line; nothing more is written to the log.
    stop_tx.send(()).unwrap();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"one more\n")
        .unwrap();
    reader.join().unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || child
            .try_wait()
            .unwrap()
            .is_some()),
        "logs -f still runs after its reader left"
    );
    let code = child.wait().unwrap().code();
    let stderr = err.join().unwrap();
    eprintln!("--- logs -f: exit {code:?}\n{stderr}");
    assert_eq!(code, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn usage_errors_end_on_their_reason() {
    let env = Env::new(2);
    // A hook binary.
    let r = env.hook("stop", &["--bogus"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("Usage: stop"),
        "clap's message stays: {}",
        r.stderr
    );
    assert!(
        r.last_line()
            .ends_with("stop failed: unexpected argument '--bogus' found"),
        "{}",
        r.last_line()
    );
    // A bad value keeps clap's reason too.
    let r = env.hook("switch", &["--canary", "200"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.last_line()
            .contains("switch failed: invalid value '200' for '--canary <PERCENT>'"),
        "{}",
        r.last_line()
    );
    // The operator's command.
    let r = env.nonstop(&["bogus"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.last_line()
            .ends_with("nonstop failed: unrecognized subcommand 'bogus'"),
        "{}",
        r.last_line()
    );
    let r = env.nonstop(&[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("Usage: nonstop"), "{}", r.stderr);
    assert!(
        r.last_line()
            .ends_with("nonstop failed: a subcommand is required (see the list above)"),
        "{}",
        r.last_line()
    );
    // --help and --version are no errors: stdout, exit 0, nothing on stderr.
    for args in [&["--help"][..], &["status", "--help"], &["--version"]] {
        let r = env.nonstop(args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(r.stderr.is_empty(), "{args:?}: {}", r.stderr);
        assert!(!r.stdout.is_empty(), "{args:?}");
    }
    let r = env.hook("health", &["--version"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn status_shows_how_a_slots_app_ended() {
    let mut env = Env::new(2);
    env.deploy("v1"); // green live
    let st = status_json(&env);
    assert_eq!(slot(&st, "green")["exit"], Value::Null, "it runs");
    assert_eq!(slot(&st, "blue")["exit"], Value::Null, "nothing ever ran");

    // The live slot's JVM is killed: status says so, with the supervisor's record.
    let pf = env.pid_of("green").unwrap();
    signal(pf.pid, rustix::process::Signal::KILL);
    let exit_file = env.path("work/run/green.exit");
    assert!(
        wait_until(Duration::from_secs(10), || {
            nonstop::process::read_exit_record(&exit_file).is_some_and(|r| r.pid == pf.pid)
        }),
        "the supervisor records the exit"
    );
    let st = status_json(&env);
    let g = slot(&st, "green");
    assert_eq!(g["state"], "live", "{g}");
    assert_eq!(g["health"], Value::Null);
    assert_eq!(g["exit"]["pid"], pf.pid);
    assert_eq!(g["exit"]["signal"], 9);
    assert_eq!(g["exit"]["code"], Value::Null);
    assert!(g["exit"]["at"].as_str().unwrap().starts_with("20"), "{g}");
    let r = env.nonstop(&["status"]);
    let row = r.stdout.lines().find(|l| l.starts_with("green ")).unwrap();
    assert!(
        row.contains(&format!(
            "down: nothing listens; killed by signal 9 at {}",
            g["exit"]["at"].as_str().unwrap()
        )),
        "{row}"
    );

    // An app that fails at boot on the idle slot: its exit status is shown.
    env.java_opts.push("-Ddemo.crash-at-boot=true".into());
    env.write_config();
    env.stage_jar("v2");
    env.hook("start", &[]);
    let exit_file = env.path("work/run/blue.exit");
    assert!(
        wait_until(Duration::from_secs(10), || {
            nonstop::process::read_exit_record(&exit_file).is_some_and(|r| r.code == Some(3))
        }),
        "the app exits with status 3"
    );
    assert!(wait_until(Duration::from_secs(5), || {
        !nonstop::process::port_in_use(env.port_of("blue"))
    }));
    let st = status_json(&env);
    let b = slot(&st, "blue");
    assert_eq!(b["state"], "stopped", "{b}");
    assert_eq!(b["exit"]["code"], 3, "{b}");
    assert_eq!(b["exit"]["signal"], Value::Null);
    let r = env.nonstop(&["status"]);
    let row = r.stdout.lines().find(|l| l.starts_with("blue ")).unwrap();
    assert!(row.contains(" stopped "), "{row}");
    assert!(row.contains("exited: exit status 3 at 20"), "{row}");
}

/// `chown -R uid:gid path` (tests run as root).
fn chown_r(p: &Path, id: u32) {
    std::os::unix::fs::chown(p, Some(id), Some(id)).unwrap();
    if p.is_dir() && !p.is_symlink() {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            chown_r(&e.path(), id);
        }
    }
}

#[test]
fn validate_catches_another_default_server_and_what_nginx_really_serves() {
    let env = Env::new(2);
    std::fs::write(
        env.path("bundle/appspec.yml"),
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("appspec/appspec.yml"))
            .unwrap(),
    )
    .unwrap();
    env.deploy("v1"); // green live
    let green = env.port_of("green");

    // The harness's nginx: one server, proxying to the live slot.
    let r = env.nonstop(&["validate"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let (v, line) = verdict_of(&r, "nginx default server");
    assert_eq!(v, "ok", "{line}");
    let (v, line) = verdict_of(&r, "nginx serves live");
    assert_eq!(v, "ok", "{line}");
    assert!(
        line.contains(&format!(
            "on slot green (port {green}) answer the same: HTTP 200"
        )),
        "{line}"
    );

    // Debian's layout: sites-enabled/default is the default_server on the app's port.
    let sites = env.path("nginx/sites-enabled");
    std::fs::create_dir_all(&sites).unwrap();
    let default_site = |flag: &str| {
        format!(
            "server {{\n  listen 127.0.0.1:{}{flag};\n  server_name _;\n  location / {{ return 200 \"Welcome to nginx!\\n\"; }}\n}}\n",
            env.nginx_port
        )
    };
    let app_site = |flag: &str| {
        format!(
            "server {{\n  listen 127.0.0.1:{}{flag};\n  location / {{\n    include {};\n    proxy_pass $service_url;\n    proxy_http_version 1.1;\n    proxy_set_header Connection \"\";\n  }}\n}}\n",
            env.nginx_port,
            env.include_path().display()
        )
    };
    std::fs::write(sites.join("default"), default_site(" default_server")).unwrap();
    std::fs::write(sites.join("myapp"), app_site("")).unwrap();
    let old = env.nginx_workers();
    env.nginx_http(&format!("  include {}/*;", sites.display()));
    settled(&env, &old);
    // What a user sees (once the reload took effect): the welcome page, not the app.
    assert!(
        wait_until(Duration::from_secs(5), || env.get("/")
            == (200, "Welcome to nginx!\n".to_string())),
        "{:?}",
        env.get("/")
    );
    let r = env.nonstop(&["validate"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let (v, line) = verdict_of(&r, "nginx default server");
    assert_eq!(v, "FAIL", "{line}");
    assert!(
        line.contains(&format!(
            "the server at {}:1 (no server_name) is the default_server there",
            sites.join("default").display()
        )),
        "{line}"
    );
    assert!(
        line.contains(&format!(
            "not to the app's server at {}:1",
            sites.join("myapp").display()
        )),
        "{line}"
    );
    let (v, line) = verdict_of(&r, "nginx serves live");
    assert_eq!(v, "FAIL", "{line}");
    assert!(line.contains("HTTP 200 \"Welcome to nginx!\""), "{line}");
    assert!(
        line.contains(&format!("HTTP 200 \"v1 real2 {green}\"")),
        "{line}"
    );
    assert!(
        r.last_line()
            .ends_with("2 of 19 checks failed: nginx default server, nginx serves live"),
        "{}",
        r.last_line()
    );

    // Without default_server, the earlier server block is the default all the same.
    std::fs::write(sites.join("default"), default_site("")).unwrap();
    env.reload_nginx();
    assert!(wait_until(Duration::from_secs(5), || env
        .get("/")
        .1
        .starts_with("Welcome")));
    let r = env.nonstop(&["validate"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let (v, line) = verdict_of(&r, "nginx default server");
    assert_eq!(v, "FAIL", "{line}");
    assert!(
        line.contains("comes first there, so it is the default"),
        "{line}"
    );

    // The app's server marked default_server: nginx serves the app, validate passes.
    std::fs::write(sites.join("myapp"), app_site(" default_server")).unwrap();
    env.reload_nginx();
    assert!(wait_until(Duration::from_secs(5), || env
        .get("/")
        .1
        .starts_with("v1 ")));
    let r = env.nonstop(&["validate"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let (v, line) = verdict_of(&r, "nginx default server");
    assert_eq!(v, "ok", "{line}");
    assert_eq!(verdict_of(&r, "nginx serves live").0, "ok");

    // Nothing else on the port: the check passes too.
    std::fs::remove_file(sites.join("default")).unwrap();
    std::fs::write(sites.join("myapp"), app_site("")).unwrap();
    env.reload_nginx();
    let r = env.nonstop(&["validate"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert_eq!(verdict_of(&r, "nginx default server").0, "ok");
    assert_eq!(verdict_of(&r, "nginx serves live").0, "ok");
}

#[test]
fn validate_checks_what_the_runas_user_may_write() {
    let env = Env::new(2);
    let spec: String =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("appspec/appspec.yml"))
            .unwrap()
            .lines()
            .map(|l| {
                if l.trim_start().starts_with("- location: bin/") {
                    format!("{l}\n      runas: nobody\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
    std::fs::write(env.path("bundle/appspec.yml"), spec).unwrap();
    env.deploy("v1"); // as root: state/ and work/ exist, owned by root
    let nobody = 65534;
    let mode = |m: u32| std::os::unix::fs::PermissionsExt::from_mode(m);
    std::fs::set_permissions(env.dir.path(), mode(0o700)).unwrap();

    // The test's folder is root's, mode 0700: nobody cannot even reach the include.
    let r = env.nonstop(&["validate"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let (v, line) = verdict_of(&r, "write access");
    assert_eq!(v, "FAIL", "{line}");
    let top = env.dir.path().display().to_string();
    assert!(
        line.contains(&format!(
            "nobody cannot write the include {} (cannot enter {top} (owner root, mode 0700))",
            env.include_path().display()
        )),
        "{line}"
    );
    assert!(
        r.last_line().ends_with("checks failed: write access"),
        "{}",
        r.last_line()
    );

    // Reachable, but the include, state_dir and workdir are root's.
    std::fs::set_permissions(env.dir.path(), mode(0o755)).unwrap();
    let r = env.nonstop(&["validate"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    let (_, line) = verdict_of(&r, "write access");
    for want in [
        format!(
            "nobody cannot write the include {} (owner root, mode 0644)",
            env.include_path().display()
        ),
        format!(
            "nobody cannot create files in state_dir {} (owner root, mode 0755)",
            env.path("bundle/../state").display()
        ),
        format!(
            "nobody cannot create files in workdir/releases {}",
            env.path("bundle/../work/releases").display()
        ),
        format!(
            "nobody cannot write {}",
            env.path("bundle/../work/logs/green.log").display()
        ),
    ] {
        assert!(line.contains(&want), "{want}\n{line}");
    }

    // The same, seen by nobody itself (validate run as nobody: access(2) decides).
    let as_nobody = as_user(&env, nobody, &["validate"]);
    let (v, line) = verdict_of(&as_nobody, "write access");
    assert_eq!(v, "FAIL", "{line}");
    assert!(
        line.contains(&format!(
            "nobody cannot write the include {} (owner root, mode 0644)",
            env.include_path().display()
        )),
        "{line}"
    );

    // The set-up runas needs: nobody owns the include (its folder stays root's: the include is
    // rewritten in place), state_dir and workdir.
    std::os::unix::fs::chown(env.include_path(), Some(nobody), Some(nobody)).unwrap();
    chown_r(&env.path("state"), nobody);
    chown_r(&env.path("work"), nobody);
    let r = env.nonstop(&["validate"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let (v, line) = verdict_of(&r, "write access");
    assert_eq!(v, "ok", "{line}");
    assert!(
        line.starts_with(&format!(
            "{:<5} {:<21} nobody (runas in appspec.yml) can write the include",
            "ok", "write access"
        )),
        "{line}"
    );
    assert!(
        line.contains(&format!(
            "note: the include is rewritten in place: nobody cannot create files in {} (owner root, mode 0755)",
            env.path("nginx").display()
        )),
        "{line}"
    );
    let as_nobody = as_user(&env, nobody, &["validate"]);
    let (v, line) = verdict_of(&as_nobody, "write access");
    assert_eq!(v, "ok", "{line}");
    assert!(
        line.contains("note: the include is rewritten in place"),
        "{line}"
    );
}

/// Run `bundle/bin/nonstop ARGS` as user `uid` (setpriv, groups cleared), as [`Env::nonstop`].
fn as_user(env: &Env, uid: u32, args: &[&str]) -> OpRun {
    let bin = env.path("bundle/bin/nonstop");
    if !bin.is_file() {
        std::fs::copy(bin_dir().join("nonstop"), &bin).unwrap();
    }
    let id = uid.to_string();
    let out = Command::new("setpriv")
        .args([
            format!("--reuid={id}"),
            format!("--regid={id}"),
            "--clear-groups".into(),
        ])
        .arg(&bin)
        .args(args)
        .current_dir("/")
        .stdin(Stdio::null())
        .env_remove("NONSTOP_CONFIG")
        .env_remove("DEPLOYMENT_ID")
        .env_remove("LIFECYCLE_EVENT")
        .output()
        .unwrap();
    let r = OpRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: Duration::ZERO,
    };
    eprintln!(
        "--- as uid {uid}: nonstop {} exit {}\n{}{}",
        args.join(" "),
        r.code,
        r.stdout,
        r.stderr
    );
    r
}

/// Wait until the workers `old` have exited: a reload is done only then (until they exit they
/// may still accept a connection with the old configuration).
fn settled(env: &Env, old: &[i32]) {
    assert!(
        wait_until(Duration::from_secs(10), || {
            let now = env.nginx_workers();
            !now.is_empty() && old.iter().all(|p| !now.contains(p))
        }),
        "nginx's old workers {old:?} did not exit"
    );
}

/// A zip written by python3's zipfile: `entries` of (name, content), deflated.
fn write_zip(path: &Path, entries: &[(&str, &str)]) {
    let mut args = vec![
        "-c".to_string(),
        "import sys, zipfile\nz = zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED)\nfor i in range(2, len(sys.argv), 2):\n    z.writestr(sys.argv[i], sys.argv[i + 1])\nz.close()".to_string(),
        path.display().to_string(),
    ];
    for (n, c) in entries {
        args.push(n.to_string());
        args.push(c.to_string());
    }
    let st = Command::new("python3").args(&args).status().unwrap();
    assert!(st.success());
}

#[test]
fn validate_checks_the_spring_boot_jar_and_warns_off_a_health_path_without_readiness() {
    let env = Env::spring(2);
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("appspec/appspec.yml"),
        env.path("bundle/appspec.yml"),
    )
    .unwrap();
    // The Maven-built boot jar: a Spring Boot jar, its Start-Class inside; readiness path.
    env.stage_jar("v1");
    let r = env.nonstop(&["validate"]);
    let (v, line) = verdict_of(&r, "jar");
    assert_eq!(v, "ok", "{line}");
    assert!(
        line.contains("spring-app-v1.jar (23.")
            && line.contains(": Spring Boot 3.5.7 jar, Start-Class dev.nonstop.demo.SpringApp"),
        "{line}"
    );
    let (v, line) = verdict_of(&r, "health path");
    assert_eq!(v, "ok", "{line}");
    assert!(
        line.contains("/actuator/health/readiness is a readiness path"),
        "{line}"
    );
    // Spring Boot 3 serves it only with the property, which the jar's application.properties
    // sets: the line says where it was found.
    assert!(
        line.ends_with("; the jar's application.properties sets management.endpoint.health.probes.enabled=true (Spring Boot 3.5.7)"),
        "{line}"
    );
    // Turned off for the JVM (what outside Kubernetes is Spring Boot 3's default): a warning
    // that says every probe would answer 404, and why.
    env.edit_config(
        "java_opts: [",
        "java_opts: [\"-Dmanagement.endpoint.health.probes.enabled=false\", ",
    );
    let r = env.nonstop(&["validate"]);
    let (v, line) = verdict_of(&r, "health path");
    assert_eq!(v, "warn", "{line}");
    assert!(
        line.contains("/actuator/health/readiness is a readiness path, but the app will not serve it: app.java_opts -Dmanagement.endpoint.health.probes.enabled=false sets management.endpoint.health.probes.enabled=false (Spring Boot 3.5.7); every probe would answer 404"),
        "{line}"
    );
    env.edit_config(
        "\"-Dmanagement.endpoint.health.probes.enabled=false\", ",
        "",
    );

    // The same jar with /actuator/health: a warning that names the readiness path and the
    // property it needs, not a failure.
    env.edit_config(
        "  path: /actuator/health/readiness\n",
        "  path: /actuator/health\n",
    );
    let r = env.nonstop(&["validate"]);
    let (v, line) = verdict_of(&r, "health path");
    assert_eq!(v, "warn", "{line}");
    assert!(
        line.contains("/actuator/health is not a readiness path and the jar is a Spring Boot jar")
            && line.contains("use /actuator/health/readiness")
            && line.contains("management.endpoint.health.probes.enabled=true"),
        "{line}"
    );
    assert!(
        !r.last_line().contains("health path"),
        "a warning fails nothing: {}",
        r.last_line()
    );

    // The plain jar Maven keeps beside the boot jar (here under Gradle's name for it): no
    // Main-Class, so `java -jar` cannot run it; the check says which jar to deploy instead.
    let app = env.path("bundle/app");
    std::fs::remove_file(app.join("spring-app-v1.jar")).unwrap();
    let plain = spring_jar("v1")
        .parent()
        .unwrap()
        .join("maven-v1/spring-app-v1.jar.original");
    std::fs::copy(&plain, app.join("spring-app-v1-plain.jar")).unwrap();
    let r = env.nonstop(&["validate"]);
    assert_eq!(r.code, 1);
    let (v, line) = verdict_of(&r, "jar");
    assert_eq!(v, "FAIL", "{line}");
    assert!(
        line.contains("its manifest has no Main-Class, so `java -jar` cannot run it")
            && line.contains("this is the plain jar of a Spring Boot build"),
        "{line}"
    );
    assert!(r.last_line().contains("jar"), "{}", r.last_line());

    // A jar that claims to be Spring Boot (its launcher) but lacks Start-Class and the class.
    std::fs::remove_file(app.join("spring-app-v1-plain.jar")).unwrap();
    write_zip(
        &app.join("half.jar"),
        &[(
            "META-INF/MANIFEST.MF",
            "Manifest-Version: 1.0\r\nMain-Class: org.springframework.boot.loader.launch.JarLauncher\r\nSpring-Boot-Version: 3.5.7\r\n\r\n",
        ),
        ("BOOT-INF/lib/spring-core-6.2.12.jar", "")],
    );
    let r = env.nonstop(&["validate"]);
    let (v, line) = verdict_of(&r, "jar");
    assert_eq!(v, "FAIL", "{line}");
    assert!(
        line.contains("it claims to be a Spring Boot jar (Main-Class org.springframework.boot.loader.launch.JarLauncher) but lacks Start-Class"),
        "{line}"
    );
    // A Start-Class that is not in BOOT-INF/classes/.
    write_zip(
        &app.join("half.jar"),
        &[(
            "META-INF/MANIFEST.MF",
            "Main-Class: org.springframework.boot.loader.launch.JarLauncher\nStart-Class: com.example.Shop\nSpring-Boot-Version: 3.5.7\n",
        )],
    );
    let (v, line) = verdict_of(&env.nonstop(&["validate"]), "jar");
    assert_eq!(v, "FAIL", "{line}");
    assert!(
        line.contains("lacks BOOT-INF/classes/com/example/Shop.class (the Start-Class)"),
        "{line}"
    );
    // Not a zip at all.
    std::fs::write(app.join("half.jar"), "<html>404</html>").unwrap();
    let (v, line) = verdict_of(&env.nonstop(&["validate"]), "jar");
    assert_eq!(v, "FAIL", "{line}");
    assert!(
        line.contains("is not a jar: no zip end of central directory record"),
        "{line}"
    );
    // The stand-in: runnable, not Spring Boot, and with /actuator/health a plain warning.
    std::fs::copy(demo_jar("v1"), app.join("half.jar")).unwrap();
    let r = env.nonstop(&["validate"]);
    let (v, line) = verdict_of(&r, "jar");
    assert_eq!(v, "ok", "{line}");
    assert!(
        line.contains(": Main-Class DemoApp (not a Spring Boot jar)"),
        "{line}"
    );
    let (v, line) = verdict_of(&r, "health path");
    assert_eq!(v, "warn", "{line}");
    assert!(!line.contains("the jar is a Spring Boot jar"), "{line}");
}

// ---------- nonstop bundle ----------

/// A folder like an unpacked release tarball: `bin/nonstop` (the real one, copied) and, beside
/// it, small stand-ins for the hook binaries (`nonstop bundle` packs whatever sits beside the
/// running nonstop; the stand-ins keep a debug build's deflating short). Returns bin/nonstop.
fn tool(root: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = root.join("tool/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(bin_dir().join("nonstop"), bin.join("nonstop")).unwrap();
    for b in ALL_BINARIES {
        let p = bin.join(b);
        std::fs::write(&p, format!("#!/bin/sh\necho {b}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    bin.join("nonstop")
}

/// Run `nonstop ARGS` in `cwd` with stdin closed, as a CI step would.
fn nonstop_in(bin: &Path, cwd: &Path, args: &[&str]) -> OpRun {
    let t0 = std::time::Instant::now();
    let out = Command::new(bin)
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .env_remove("NONSTOP_CONFIG")
        .run_output();
    OpRun::new(args, out, t0.elapsed())
}

/// A project as `nonstop init` leaves it: deploy/nonstop.yml and deploy/appspec.yml (the
/// templates), and a built jar in target/.
fn bundle_project(root: &Path) -> PathBuf {
    let p = root.join("project");
    std::fs::create_dir_all(p.join("deploy")).unwrap();
    std::fs::create_dir_all(p.join("target")).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        repo.join("templates/nonstop.yml"),
        p.join("deploy/nonstop.yml"),
    )
    .unwrap();
    std::fs::copy(
        repo.join("appspec/appspec.yml"),
        p.join("deploy/appspec.yml"),
    )
    .unwrap();
    std::fs::copy(demo_jar("v1"), p.join("target/myapp-1.0.jar")).unwrap();
    p
}

/// The zip's entries: (name, unix mode, bytes), in the archive's order.
fn unzip(path: &Path) -> Vec<(String, u32, Vec<u8>)> {
    let mut z = zip::ZipArchive::new(std::fs::File::open(path).unwrap()).unwrap();
    (0..z.len())
        .map(|i| {
            let mut f = z.by_index(i).unwrap();
            let t = f.last_modified().unwrap();
            assert_eq!(
                (t.year(), t.month(), t.day(), t.hour(), t.minute()),
                (1980, 1, 1, 0, 0),
                "{}: fixed timestamp",
                f.name()
            );
            let mut bytes = vec![];
            f.read_to_end(&mut bytes).unwrap();
            (f.name().to_string(), f.unix_mode().unwrap() & 0o7777, bytes)
        })
        .collect()
}

/// In a project without a config, `nonstop bundle` names every place it looked at, the
/// project's two first, and exits 2.
#[test]
fn bundle_without_a_config_names_the_places_it_looked_at() {
    if Path::new("/etc/nonstop/nonstop.yml").exists() {
        eprintln!("skipped: this host has /etc/nonstop/nonstop.yml");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let bin = tool(d.path());
    let project = d.path().join("empty");
    std::fs::create_dir_all(&project).unwrap();
    let r = nonstop_in(&bin, &project, &["bundle", "--jar", "app.jar"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let want = format!(
        "nonstop failed: no config file: give --config PATH or set NONSTOP_CONFIG (also looked at deploy/nonstop.yml, nonstop.yml, {}, /etc/nonstop/nonstop.yml)",
        d.path().join("tool/nonstop.yml").display()
    );
    assert!(r.last_line().ends_with(&want), "{}", r.last_line());
}

#[test]
fn bundle_is_checked_laid_out_and_byte_identical() {
    let d = tempfile::tempdir().unwrap();
    let bin = tool(d.path());
    let project = bundle_project(d.path());
    // Defaults: deploy/nonstop.yml, appspec.yml next to it.
    let r = nonstop_in(
        &bin,
        &project,
        &[
            "bundle",
            "--jar",
            "target/myapp-1.0.jar",
            "-o",
            "dist/a.zip",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    for (verdict, name) in [
        ("ok", "config"),
        ("ok", "appspec"),
        ("ok", "hooks"),
        ("ok", "timeout stop"),
        ("ok", "timeout start"),
        ("ok", "timeout health"),
        ("ok", "timeout switch"),
        ("ok", "jar"),
        ("skip", "host checks"),
    ] {
        assert!(
            r.stdout
                .lines()
                .any(|l| l.starts_with(&format!("{verdict:<5} {name:<21} "))),
            "no `{verdict} {name}` line:\n{}",
            r.stdout
        );
    }
    assert!(r
        .stdout
        .contains("ok    jar                   app/myapp-1.0.jar"));
    assert!(r
        .stdout
        .contains("nginx, write access, supervisor, java need the target host"));
    let last = r.stdout.lines().last().unwrap();
    assert!(
        last.starts_with("wrote dist/a.zip: 11 entries, ") && last.contains("sha256 "),
        "{last}"
    );

    let a = project.join("dist/a.zip");
    let entries = unzip(&a);
    let names: Vec<(&str, u32)> = entries.iter().map(|(n, m, _)| (n.as_str(), *m)).collect();
    assert_eq!(
        names,
        [
            ("app/", 0o755),
            ("app/myapp-1.0.jar", 0o644),
            ("appspec.yml", 0o644),
            ("bin/", 0o755),
            ("bin/deploy-second", 0o755),
            ("bin/health", 0o755),
            ("bin/nonstop", 0o755),
            ("bin/start", 0o755),
            ("bin/stop", 0o755),
            ("bin/switch", 0o755),
            ("nonstop.yml", 0o644),
        ]
    );
    let bytes_of = |n: &str| &entries.iter().find(|(e, _, _)| e == n).unwrap().2;
    let tool_bin = bin.parent().unwrap();
    for (entry, source) in [
        ("app/myapp-1.0.jar", project.join("target/myapp-1.0.jar")),
        ("appspec.yml", project.join("deploy/appspec.yml")),
        ("nonstop.yml", project.join("deploy/nonstop.yml")),
        ("bin/nonstop", bin.clone()),
        ("bin/stop", tool_bin.join("stop")),
        ("bin/deploy-second", tool_bin.join("deploy-second")),
    ] {
        assert!(
            *bytes_of(entry) == std::fs::read(&source).unwrap(),
            "{entry} is not {}",
            source.display()
        );
    }

    // Same inputs, same bytes: even with new mtimes and explicit flags.
    let later = std::time::SystemTime::now() + Duration::from_secs(3600);
    for f in [
        "target/myapp-1.0.jar",
        "deploy/nonstop.yml",
        "deploy/appspec.yml",
    ] {
        std::fs::File::options()
            .append(true)
            .open(project.join(f))
            .unwrap()
            .set_modified(later)
            .unwrap();
    }
    let out_b = d.path().join("b.zip");
    let r = nonstop_in(
        &bin,
        &project,
        &[
            "bundle",
            "--jar",
            project.join("target/myapp-1.0.jar").to_str().unwrap(),
            "--config",
            "deploy/nonstop.yml",
            "--appspec",
            "deploy/appspec.yml",
            "-o",
            out_b.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        std::fs::read(&a).unwrap() == std::fs::read(&out_b).unwrap(),
        "a second bundle of the same inputs differs"
    );
    // Written atomically: no temp file is left beside the zip, nor a staging folder.
    let left: Vec<_> = std::fs::read_dir(project.join("dist"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["a.zip"], "{left:?}");
}

#[test]
fn bundle_refuses_what_would_fail_and_writes_nothing() {
    let d = tempfile::tempdir().unwrap();
    let bin = tool(d.path());
    let project = bundle_project(d.path());
    let spec = project.join("deploy/appspec.yml");
    let good_spec = std::fs::read_to_string(&spec).unwrap();
    let cfg = project.join("deploy/nonstop.yml");
    let good_cfg = std::fs::read_to_string(&cfg).unwrap();
    let bundle = |jar: &str| {
        let r = nonstop_in(&bin, &project, &["bundle", "--jar", jar, "-o", "out.zip"]);
        assert!(
            !project.join("out.zip").exists(),
            "a refused bundle was written"
        );
        r
    };
    let jar = "target/myapp-1.0.jar";

    // The string version the agent rejects.
    std::fs::write(&spec, good_spec.replace("version: 0.0", "version: \"0.0\"")).unwrap();
    let r = bundle(jar);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("FAIL  appspec"), "{}", r.stdout);
    assert!(
        r.last_line()
            .contains("refusing to write out.zip: 1 of 9 checks failed: appspec")
            && r.last_line().contains("version is the string \"0.0\""),
        "{}",
        r.last_line()
    );

    // A health timeout shorter than health.deadline + a probe + the margin.
    std::fs::write(&spec, good_spec.replace("timeout: 180", "timeout: 30")).unwrap();
    let r = bundle(jar);
    assert_eq!(r.code, 1);
    assert!(
        r.last_line().contains("timeout health: ValidateService bin/health: timeout 30 s is shorter than health.deadline 120 s"),
        "{}",
        r.last_line()
    );

    // A hook whose binary is not in the bundle.
    std::fs::write(&spec, good_spec.replace("bin/switch", "bin/swtich")).unwrap();
    let r = bundle(jar);
    assert_eq!(r.code, 1);
    assert!(
        r.last_line().contains("bin/swtich is not in the bundle"),
        "{}",
        r.last_line()
    );
    std::fs::write(&spec, &good_spec).unwrap();

    // No jar there; a jar app.jar does not match; app.jar outside the bundle.
    let r = bundle("target/nope.jar");
    assert_eq!(r.code, 1);
    assert!(
        r.last_line().contains("no jar at target/nope.jar"),
        "{}",
        r.last_line()
    );
    std::fs::copy(project.join(jar), project.join("target/myapp-1.0.war")).unwrap();
    let r = bundle("target/myapp-1.0.war");
    assert_eq!(r.code, 1);
    assert!(
        r.last_line().contains("jar: no jar matches app/*.jar"),
        "{}",
        r.last_line()
    );
    std::fs::write(
        &cfg,
        good_cfg.replace("jar: \"app/*.jar\"", "jar: /opt/myapp/*.jar"),
    )
    .unwrap();
    let r = bundle(jar);
    assert_eq!(r.code, 1);
    assert!(
        r.last_line()
            .contains("app.jar /opt/myapp/*.jar is outside the bundle"),
        "{}",
        r.last_line()
    );

    // A config error is exit 2, named with the file and line.
    std::fs::write(&cfg, good_cfg.replace("port: 8082", "port: 99999")).unwrap();
    let r = bundle(jar);
    assert_eq!(r.code, 2);
    assert!(
        r.last_line().contains("deploy/nonstop.yml:19:")
            && r.last_line().contains("invalid port 99999"),
        "{}",
        r.last_line()
    );
    std::fs::write(&cfg, &good_cfg).unwrap();

    // A hook binary missing beside nonstop.
    std::fs::remove_file(bin.parent().unwrap().join("health")).unwrap();
    let r = bundle(jar);
    assert_eq!(r.code, 1);
    assert!(
        r.last_line().contains(
            "health: nonstop bundle takes the hook binaries from the folder of the running nonstop"
        ),
        "{}",
        r.last_line()
    );
}

/// `app.jar: app/../../elsewhere/*.jar` climbs out of the bundle: refused as an absolute path
/// is, even when a jar waits there (a TMPDIR of the test's own puts one where the checks'
/// symlinked layout would find it), and no zip is written.
#[test]
fn bundle_refuses_an_app_jar_that_climbs_out_with_dot_dot() {
    let d = tempfile::tempdir().unwrap();
    let bin = tool(d.path());
    let project = bundle_project(d.path());
    let cfg = project.join("deploy/nonstop.yml");
    let good_cfg = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        good_cfg.replace("jar: \"app/*.jar\"", "jar: \"app/../../elsewhere/*.jar\""),
    )
    .unwrap();
    let tmp = d.path().join("tmp");
    std::fs::create_dir_all(tmp.join("elsewhere")).unwrap();
    std::fs::copy(demo_jar("v2"), tmp.join("elsewhere/other-2.0.jar")).unwrap();
    let t0 = std::time::Instant::now();
    let out = Command::new(&bin)
        .args(["bundle", "--jar", "target/myapp-1.0.jar", "-o", "out.zip"])
        .current_dir(&project)
        .stdin(Stdio::null())
        .env_remove("NONSTOP_CONFIG")
        .env("TMPDIR", &tmp)
        .run_output();
    let r = OpRun::new(&["bundle"], out, t0.elapsed());
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.last_line().contains("app.jar ")
            && r.last_line()
                .contains("is outside the bundle (it climbs out with ..)"),
        "{}",
        r.last_line()
    );
    assert!(
        !project.join("out.zip").exists(),
        "a refused bundle was written"
    );
}

/// A full disk under `nonstop bundle -o` (a 16 KB tmpfs in a mount namespace of its own): exit
/// 1 and the last line is nonstop's own ERROR line, with nothing of the zip library's glued in
/// front of it.
#[test]
fn bundle_on_a_full_disk_ends_on_its_own_error_line() {
    let d = tempfile::tempdir().unwrap();
    let bin = tool(d.path());
    let project = bundle_project(d.path());
    let small = d.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let t0 = std::time::Instant::now();
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o size=16k tmpfs "$1" && cd "$2" && exec "$3" bundle --jar target/myapp-1.0.jar -o "$1/out.zip""#)
        .arg("sh")
        .args([&small, &project, &bin])
        .stdin(Stdio::null())
        .env_remove("NONSTOP_CONFIG")
        .run_output();
    let r = OpRun::new(&["bundle", "(full disk)"], out, t0.elapsed());
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(!r.stderr.contains("ZipWriter"), "{}", r.stderr);
    let last = r.last_line();
    assert!(
        last.starts_with("20") && last.contains(" ERROR nonstop: nonstop failed: cannot write "),
        "{last}"
    );
    assert!(last.contains("out.zip: No space left on device"), "{last}");
}

/// `nonstop validate` where `nonstop init`'s hint runs it, in the project on the build machine:
/// it finds deploy/nonstop.yml as `nonstop bundle` does, checks what it can (config, appspec,
/// hooks, timeouts, the health path) and skips the host's checks with the reason, exit 0; with
/// a jar where app.jar looks, the jar is checked too.
#[test]
fn validate_on_the_build_machine_finds_deploy_config_and_skips_the_host_checks() {
    let d = tempfile::tempdir().unwrap();
    let bin = tool(d.path());
    let project = bundle_project(d.path());
    let r = nonstop_in(&bin, &project, &["validate"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let (v, line) = verdict_of(&r, "config");
    assert_eq!(v, "ok", "{line}");
    assert!(line.contains("deploy/nonstop.yml: app myapp"), "{line}");
    let (v, line) = verdict_of(&r, "host checks");
    assert_eq!(v, "skip", "{line}");
    assert!(
        line.contains("nginx, write access, supervisor, java need the target host, and this is not it: no nginx master at /run/nginx.pid, no /etc/nginx/conf.d/service-url.inc, no /var/lib/nonstop/myapp; run nonstop validate there"),
        "{line}"
    );
    for (v, name, detail) in checks(&r) {
        assert_ne!(v, "FAIL", "{name}: {detail}");
        assert!(
            !name.starts_with("nginx") && name != "write access" && name != "java",
            "{name} ran: {detail}"
        );
    }
    let (v, line) = verdict_of(&r, "jar");
    assert_eq!(v, "skip", "{line}");
    assert!(
        line.contains("`nonstop bundle --jar PATH` checks the jar it packs"),
        "{line}"
    );
    assert_eq!(verdict_of(&r, "appspec").0, "ok");
    assert_eq!(verdict_of(&r, "health path").0, "ok");

    // A jar where app.jar looks (deploy/app/): checked.
    std::fs::create_dir(project.join("deploy/app")).unwrap();
    std::fs::copy(
        project.join("target/myapp-1.0.jar"),
        project.join("deploy/app/myapp-1.0.jar"),
    )
    .unwrap();
    let r = nonstop_in(&bin, &project, &["validate"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let (v, line) = verdict_of(&r, "jar");
    assert!(v == "ok" && line.contains("Main-Class DemoApp"), "{line}");
}

/// `nonstop init` has no use for the global --config and --slot: its help does not list them,
/// and giving one is a usage error (exit 2) that says so.
#[test]
fn init_help_lists_only_what_init_uses() {
    let d = tempfile::tempdir().unwrap();
    let bin = tool(d.path());
    let r = nonstop_in(&bin, d.path(), &["init", "--help"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("--force") && r.stdout.contains("--traffic"),
        "{}",
        r.stdout
    );
    for flag in ["--config", "--slot"] {
        assert!(
            !r.stdout.contains(flag),
            "init --help lists {flag}:\n{}",
            r.stdout
        );
        let r = nonstop_in(&bin, d.path(), &["init", "proj", flag, "x"]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(
            r.last_line().ends_with(&format!("nonstop failed: init takes no {flag}: it writes the starting files under DIR (see `nonstop init --help`)")),
            "{}",
            r.last_line()
        );
        assert!(!d.path().join("proj").exists(), "init wrote files");
    }
    // Where they mean something, they are still listed.
    let r = nonstop_in(&bin, d.path(), &["status", "--help"]);
    assert!(
        r.stdout.contains("--config") && r.stdout.contains("--slot"),
        "{}",
        r.stdout
    );
}

/// What `make demo` (and every test) prints per hook run: a plain exit code and a rounded time,
/// not `exit Some(0) in 26.048207ms`.
#[test]
fn a_run_is_reported_with_a_plain_exit_code_and_a_rounded_time() {
    use std::os::unix::process::ExitStatusExt;
    let st = std::process::ExitStatus::from_raw;
    assert_eq!(
        ended(st(0), Duration::from_nanos(26_048_207)),
        "exit 0 in 26 ms"
    );
    assert_eq!(
        ended(st(3 << 8), Duration::from_millis(2_314)),
        "exit 3 in 2.31 s"
    );
    assert_eq!(
        ended(st(9), Duration::from_millis(1_200)),
        "killed by signal 9 in 1.20 s"
    );
}

#[test]
fn version_names_the_commit() {
    let out = Command::new(bin_dir().join("nonstop"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let want = match std::env::var("NONSTOP_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
    {
        Some(c) => c,
        None => commit.unwrap_or_else(|| "unknown".into()),
    };
    assert_eq!(
        line,
        format!("nonstop {} (commit {want})", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn init_writes_both_flows_and_its_files_bundle() {
    let d = tempfile::tempdir().unwrap();
    let bin = tool(d.path());
    let project = d.path().join("project");
    let r = nonstop_in(
        &bin,
        d.path(),
        &["init", project.to_str().unwrap(), "--name", "shop"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    for f in [
        "Jenkinsfile",
        ".github/workflows/nonstop-deploy.yml",
        "Jenkinsfile.ssh",
        ".github/workflows/nonstop-deploy-ssh.yml",
    ] {
        assert!(
            r.stdout
                .contains(&format!("wrote {}", project.join(f).display())),
            "{f}"
        );
    }
    let ssh = std::fs::read_to_string(project.join("Jenkinsfile.ssh")).unwrap();
    assert!(
        ssh.contains("deploy --jar") && ssh.contains("scp "),
        "{ssh}"
    );
    // What the CodeDeploy Jenkinsfile runs, from the project root: the generated config and
    // appspec bundle as they are (no Rust toolchain: the tool folder's nonstop).
    let jenkins = std::fs::read_to_string(project.join("Jenkinsfile")).unwrap();
    assert!(
        jenkins.contains("bundle --jar \"$jar\" --config deploy/nonstop.yml")
            && jenkins.contains("--appspec deploy/appspec.yml -o nonstop-bundle.zip"),
        "{jenkins}"
    );
    std::fs::create_dir_all(project.join("target")).unwrap();
    std::fs::copy(demo_jar("v1"), project.join("target/shop-1.0.jar")).unwrap();
    let r = nonstop_in(
        &bin,
        &project,
        &[
            "bundle",
            "--jar",
            "target/shop-1.0.jar",
            "--config",
            "deploy/nonstop.yml",
            "--appspec",
            "deploy/appspec.yml",
            "-o",
            "nonstop-bundle.zip",
        ],
    );
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("app shop, 2 slots"), "{}", r.stdout);
    let entries = unzip(&project.join("nonstop-bundle.zip"));
    let spec = &entries
        .iter()
        .find(|(n, _, _)| n == "appspec.yml")
        .unwrap()
        .2;
    assert!(*spec == std::fs::read(project.join("deploy/appspec.yml")).unwrap());
    assert!(entries.iter().any(|(n, _, _)| n == "app/shop-1.0.jar"));
}

#[test]
fn status_and_rollback_agree_on_what_rollback_does_from_the_first_deploy_on() {
    let mut env = Env::new(2);
    // The first deploy: the include names blue, where nothing runs.
    env.stage_jar("v1");
    let r = env.nonstop(&["deploy"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let first = r.stdout.lines().next().unwrap();
    assert!(
        first.contains("live now: none") && !first.contains("live now: blue (port"),
        "{first}"
    );
    let last = r.stdout.lines().last().unwrap();
    assert!(
        last.contains("blue runs no app, so there is no instant rollback target")
            && !last.contains("keeps running"),
        "{last}"
    );
    // status promises no rollback that rollback refuses.
    let why = "no release of slot blue was ever switched live";
    let st = status_json(&env);
    assert_eq!(st["rollback"]["action"], "none", "{}", st["rollback"]);
    assert!(
        st["rollback"]["why"].as_str().unwrap().contains(why),
        "{}",
        st["rollback"]
    );
    let text = env.nonstop(&["status"]).stdout;
    let line = text.lines().find(|l| l.starts_with("rollback")).unwrap();
    assert!(
        line.starts_with("rollback none") && line.contains(why),
        "{line}"
    );
    let r = env.nonstop(&["rollback"]);
    assert_eq!(r.code, 1);
    assert!(r.last_line().contains(why), "{}", r.last_line());

    // After v2 on blue, green runs v1 healthy: a switch.
    env.deploy("v2");
    let v1 = env.pid_of("green").unwrap().release;
    let st = status_json(&env);
    assert_eq!(st["rollback"]["action"], "switch", "{}", st["rollback"]);
    assert_eq!(st["rollback"]["slot"], "green");
    assert_eq!(st["rollback"]["release"], v1.as_str());

    // A failed deploy leaves v3 unhealthy on green: not a standby, and rollback restarts v1.
    env.java_opts.push("-Ddemo.unhealthy=true".into());
    env.write_config();
    env.edit_config("deadline: 30s", "deadline: 2s");
    env.stage_jar("v3");
    assert_eq!(env.hook("stop", &[]).code, 0);
    assert_eq!(env.hook("start", &[]).code, 0);
    assert_eq!(env.hook("health", &[]).code, 1);
    let st = status_json(&env);
    assert_eq!(slot(&st, "green")["state"], "unhealthy", "{st}");
    assert_eq!(st["rollback"]["action"], "restart", "{}", st["rollback"]);
    assert_eq!(st["rollback"]["release"], v1.as_str());
    assert!(
        st["rollback"]["why"]
            .as_str()
            .unwrap()
            .contains(&format!("not {v1}")),
        "{}",
        st["rollback"]
    );
    let text = env.nonstop(&["status"]).stdout;
    let row = text.lines().find(|l| l.starts_with("green ")).unwrap();
    assert!(
        row.contains(" unhealthy ") && !row.contains("standby"),
        "{row}"
    );
    let line = text.lines().find(|l| l.starts_with("rollback")).unwrap();
    assert!(
        line.contains(&format!("starts its release {v1} on it again")),
        "{line}"
    );
    env.java_opts.retain(|o| o != "-Ddemo.unhealthy=true");
    env.write_config();
    let r = env.nonstop(&["rollback"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains(&format!("starting release {v1} on it again"))
            && r.stdout
                .lines()
                .last()
                .unwrap()
                .contains("release started again"),
        "{}",
        r.stdout
    );
    assert!(body_of(&env).starts_with("v1 "), "nginx serves v1");
    // A slot whose app stops answering (hung, or crash-looping under systemd) is not a standby
    // either.
    let blue = env.pid_of("blue").unwrap();
    signal(blue.pid, rustix::process::Signal::STOP);
    let st = status_json(&env);
    signal(blue.pid, rustix::process::Signal::CONT);
    let b = slot(&st, "blue");
    assert_eq!(b["state"], "unhealthy", "{b}");
    assert_eq!(b["health"]["ok"], false, "{b}");
}

/// The one JSON object `deploy --json` / `rollback --json` print on stdout.
fn report(r: &OpRun) -> Value {
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one JSON line on stdout: {}", r.stdout);
    serde_json::from_str(lines[0]).unwrap_or_else(|e| panic!("--json: {e}\n{}", r.stdout))
}

fn stage_names(rep: &Value) -> Vec<String> {
    rep["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn deploy_and_rollback_json_and_the_live_jar_again_changes_nothing() {
    let env = Env::new(2);
    let (blue, green) = (env.port_of("blue"), env.port_of("green"));
    let (v1, v2) = (demo_jar("v1"), demo_jar("v2"));
    let r = env.nonstop(&["deploy", "--json", "--jar", v1.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rep = report(&r);
    let g = env.pid_of("green").unwrap();
    assert_eq!(rep["command"], "deploy");
    assert_eq!(rep["outcome"], "deployed");
    assert_eq!(rep["changed"], true);
    assert_eq!(rep["exit_code"], 0);
    assert_eq!(rep["slot"], "green");
    assert_eq!(rep["release"], g.release.as_str());
    assert_eq!(rep["version"], "demo-app-v1");
    assert_eq!(rep["sha256"], sha256sum(&v1).as_str());
    assert_eq!(rep["error"], Value::Null);
    assert!(rep["id"].as_str().unwrap().starts_with("deploy-"), "{rep}");
    assert_eq!(stage_names(&rep), ["stop", "start", "health", "switch"]);
    let stages = rep["stages"].as_array().unwrap();
    assert!(stages.iter().all(|s| s["ok"] == true && s["ms"].is_u64()));
    let at = |v: &Value| nonstop::operator::parse_utc(v.as_str().unwrap()).unwrap();
    assert!(at(&rep["started_at"]) <= at(&stages[0]["started_at"]));
    assert!(at(&stages[3]["started_at"]) <= at(&rep["ended_at"]));
    assert!(
        rep["took_ms"].as_u64().unwrap()
            >= stages
                .iter()
                .map(|s| s["ms"].as_u64().unwrap())
                .sum::<u64>()
    );
    // The stage lines and the summary went to stderr with the log.
    assert!(r.stderr.contains("health         ok"), "{}", r.stderr);
    assert!(r.stderr.contains("deployed release "), "{}", r.stderr);
    assert_eq!(body_of(&env), format!("v1 real2 {green}"));

    // The same jar again (a copy elsewhere, the same bytes): nothing runs, nothing recorded.
    let before = (releases(&env), status_json(&env)["deployments"].clone());
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("myapp-1.0.jar");
    std::fs::copy(&v1, &copy).unwrap();
    let traffic = Traffic::start(env.nginx_addr(), 2, Duration::from_millis(2));
    traffic.wait_requests(50);
    let r = env.nonstop(&["deploy", "--json", "--jar", copy.to_str().unwrap()]);
    let plain = env.nonstop(&["deploy", "--jar", v1.to_str().unwrap()]);
    traffic.wait_requests(50);
    let t = traffic.finish();
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rep = report(&r);
    assert_eq!(rep["outcome"], "unchanged");
    assert_eq!(rep["changed"], false);
    assert_eq!(rep["slot"], "green");
    assert_eq!(rep["release"], g.release.as_str());
    assert_eq!(rep["version"], "demo-app-v1");
    assert_eq!(stage_names(&rep), Vec::<String>::new());
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    assert!(
        plain.stdout.contains("is live already on slot green")
            && plain.stdout.trim_end().ends_with("nothing to do"),
        "{}",
        plain.stdout
    );
    assert_eq!(env.pid_of("green").unwrap(), g, "the same process");
    assert!(nonstop::process::same_process(g.pid, g.start_time));
    assert_eq!(
        (releases(&env), status_json(&env)["deployments"].clone()),
        before,
        "no release made, nothing recorded"
    );
    t.assert_clean("traffic over the unchanged deploys", 100, &["v1"]);

    // v2, then a broken v3: failed before the switch, v2 still serves.
    let r = env.nonstop(&["deploy", "--json", "--jar", v2.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rep = report(&r);
    assert_eq!(
        (&rep["outcome"], &rep["slot"]),
        (&"deployed".into(), &"blue".into())
    );
    assert_eq!(rep["previous"], "green");
    let broken = broken_jar(dir.path());
    let r = env.nonstop(&["deploy", "--json", "--jar", broken.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let rep = report(&r);
    assert_eq!(rep["outcome"], "failed_before_switch");
    assert_eq!(
        rep["changed"], true,
        "the idle slot was stopped and started"
    );
    assert_eq!(rep["exit_code"], 1);
    assert_eq!(rep["slot"], "green");
    let why = rep["error"].as_str().unwrap();
    assert!(r.last_line().contains(why), "{why} | {}", r.last_line());
    assert!(!stage_names(&rep).contains(&"switch".to_string()), "{rep}");
    assert_eq!(
        rep["stages"].as_array().unwrap().last().unwrap()["ok"],
        false
    );
    assert_eq!(body_of(&env), format!("v2 real1 {blue}"));

    // The rollback goes back to v1's release (started again: green ran the broken jar).
    let r = env.nonstop(&["rollback", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rep = report(&r);
    assert_eq!(rep["command"], "rollback");
    assert_eq!(rep["outcome"], "rolled_back");
    assert_eq!(rep["changed"], true);
    assert_eq!(rep["slot"], "green");
    assert_eq!(rep["previous"], "blue");
    assert_eq!(rep["release"], g.release.as_str());
    assert_eq!(rep["version"], "demo-app-v1");
    assert_eq!(stage_names(&rep), ["stop", "start", "health", "switch"]);
    assert!(
        r.stderr.contains("rolled back to slot green"),
        "{}",
        r.stderr
    );
    assert_eq!(body_of(&env), format!("v1 real2 {green}"));

    // A refused rollback is one object too (exit 1), nothing changed.
    let r = env.nonstop(&["rollback", "--json", "--slot", "green"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let rep = report(&r);
    assert_eq!(
        (&rep["outcome"], &rep["changed"]),
        (&"failed_before_switch".into(), &false.into())
    );
    assert!(
        rep["error"].as_str().unwrap().contains("live already"),
        "{rep}"
    );
}

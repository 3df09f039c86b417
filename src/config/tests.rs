//! The config's parse and checks, against YAML as an operator writes it.

use super::*;
use crate::error::Error;
use crate::error::Result;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn p(text: &str) -> Result<Config> {
    parse(text, Path::new("/srv/app/nonstop.yml"))
}

#[test]
fn defaults_fill_in() {
    let c = p("app:\n  name: myapp\n").unwrap();
    assert_eq!(c.slots.len(), 2);
    assert_eq!(c.slots[1].port, 8082);
    assert_eq!(c.slots[0].profile, "real1");
    assert_eq!(c.app.jar, PathBuf::from("/srv/app/*.jar"));
    assert_eq!(c.app.workdir, PathBuf::from("/opt/nonstop/myapp"));
    assert_eq!(c.state_dir, PathBuf::from("/var/lib/nonstop/myapp"));
    assert_eq!(c.health.deadline, Duration::from_secs(120));
    assert_eq!(c.nginx.variable, "service_url");
    assert_eq!(c.nginx.test, vec!["nginx", "-t"]);
    assert!(!c.balanced());
    assert_eq!(c.stop.drain, Duration::from_secs(30));
    assert_eq!(c.nginx.upstream_name, "myapp");
    let c = p("app:\n  name: a\nnginx:\n  upstream_file: up.conf\n").unwrap();
    assert_eq!(
        c.nginx.upstream_file,
        Some(PathBuf::from("/srv/app/up.conf"))
    );
    assert!(p("app:\n  name: a\nnginx:\n  upstream_name: 'a; b'\n").is_err());
}

#[test]
fn durations() {
    assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
    assert_eq!(parse_duration("3m").unwrap(), Duration::from_secs(180));
    assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
    assert!(parse_duration("5").is_err());
    assert!(parse_duration("5 parsecs").is_err());
}

#[test]
fn errors_name_line_and_column() {
    let e = p("app:\n  name: myapp\nslots:\n  - {name: blue, port: 8081, profile: a}\n  - {name: green, port: 99999, profile: b}\n")
        .unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert_eq!(e.kind(), crate::error::Kind::Config);
    let m = e.to_string();
    assert!(m.starts_with("/srv/app/nonstop.yml:5:"), "{m}");
    assert!(m.contains("invalid port 99999"), "{m}");

    let m = p("app:\n  name: myapp\n  colour: blue\n")
        .unwrap_err()
        .to_string();
    assert!(
        m.contains(":3:") && m.contains("unknown field `colour`"),
        "{m}"
    );
}

#[test]
fn rejects_nginx_injection() {
    for bad in [
        "nginx:\n  variable: 'x; return 200'\n",
        "nginx:\n  host: 'x; return 200'\n",
        "nginx:\n  host: '127.0.0.1:1/ a'\n",
        "nginx:\n  host: 999.999.999.999\n",
        "nginx:\n  host: 1.2.3\n",
        "nginx:\n  host: '10'\n",
    ] {
        let m = p(&format!("app:\n  name: a\n{bad}"))
            .unwrap_err()
            .to_string();
        assert!(m.contains(":4:") && m.contains("invalid"), "{m}");
        assert!(!m.contains('\n'), "one line: {m}");
        assert_eq!(
            p(&format!("app:\n  name: a\n{bad}"))
                .unwrap_err()
                .exit_code(),
            2
        );
    }
    assert!(p("app:\n  name: a\nnginx:\n  host: 10.0.0.7\n").is_ok());
    assert!(p("app:\n  name: a\nnginx:\n  host: app1.internal\n").is_ok());
    assert!(p("app:\n  name: a\nnginx:\n  host: '[::1]'\n").is_ok());
    assert!(p("app:\n  name: a\nnginx:\n  host: app-1.internal\n").is_ok());
}

#[test]
fn duplicate_slots_are_located() {
    let m = p("app:\n  name: a\nslots:\n  - {name: blue, port: 8081, profile: a}\n  - {name: blue, port: 8082, profile: b}\n")
        .unwrap_err()
        .to_string();
    assert!(
        m.starts_with("/srv/app/nonstop.yml:5: duplicate slot name"),
        "{m}"
    );
    let m = p("app:\n  name: a\nslots:\n  - {name: blue, port: 8081, profile: a}\n  - {name: green, port: 8081, profile: b}\n")
        .unwrap_err()
        .to_string();
    assert!(m.contains(":5: duplicate slot port 8081"), "{m}");
}

/// The `LINE:COL` a config error carries; its text starts with `FILE:LINE:COL: `.
fn where_(text: &str) -> String {
    let e = p(text).unwrap_err();
    let m = e.to_string();
    let Error::Config {
        file,
        line: Some(line),
        col: Some(col),
        ..
    } = e
    else {
        panic!("not a config error with line and column: {m}");
    };
    assert_eq!(file, Path::new("/srv/app/nonstop.yml"), "{m}");
    assert!(
        m.starts_with(&format!("/srv/app/nonstop.yml:{line}:{col}: ")),
        "{m}"
    );
    format!("{line}:{col}")
}

#[test]
fn errors_point_at_the_bad_value_not_its_block() {
    // A bad port in a block-style slot: line 6, column 11 is `99999`, not the slot's `- `.
    let t = "app:\n  name: a\nslots:\n  - name: blue\n    profile: a\n    port: 99999\n  - {name: g, port: 2, profile: b}\n";
    assert_eq!(where_(t), "6:11");
    assert!(p(t).unwrap_err().to_string().contains("invalid port 99999"));
    // In a flow mapping: the value's column on its line.
    let t = "app:\n  name: a\nslots:\n  - {name: blue, port: 8081, profile: a}\n  - {name: green, port: 0, profile: b}\n";
    assert_eq!(where_(t), "5:25");
    // A bad duration, a zero interval, a number for a duration.
    let t = "app:\n  name: a\nhealth:\n  path: /up\n  deadline: 5 parsecs\n";
    assert_eq!(where_(t), "5:13");
    let t = "app:\n  name: a\nhealth:\n  path: /up\n  interval: 0s\n";
    assert_eq!(where_(t), "5:13");
    assert!(p(t).unwrap_err().to_string().contains("above zero"));
    let t = "app:\n  name: a\nstop:\n  grace: 5\n";
    assert_eq!(where_(t), "4:10");
    // A bad nginx variable, a bad status, keep_releases, an empty argv, a jar pattern.
    let t = "app:\n  name: a\nnginx:\n  include: /x.inc\n  variable: 'x; return 200'\n";
    assert_eq!(where_(t), "5:13");
    let t = "app:\n  name: a\nhealth:\n  path: /up\n  status: 700\n";
    assert_eq!(where_(t), "5:11");
    let t = "app:\n  name: a\nkeep_releases: 1\n";
    assert_eq!(where_(t), "3:16");
    let t = "app:\n  name: a\nnginx:\n  include: /x.inc\n  test: []\n";
    assert_eq!(where_(t), "5:9");
    let t = "app:\n  name: a\n  jar: 'build/*/app.jar'\n";
    assert_eq!(where_(t), "3:8");
    for t in [
        "app:\n  name: a\nhealth:\n  path: /up\n  deadline: 50ms\n",
        "app:\n  name: a\nhealth:\n  deadline: 50ms\n",
    ] {
        let m = p(t).unwrap_err().to_string();
        assert!(m.contains("shorter than one health.interval"), "{m}");
        assert!(
            m.starts_with(&format!("/srv/app/nonstop.yml:{}:", t.lines().count())),
            "{m}"
        );
    }
}

#[test]
fn health_path_must_be_a_request_target() {
    for good in [
        "/actuator/health",
        "/",
        "/health?full=1&x=a%20b",
        "/api/v1/health;jsessionid=1",
        "/~user/a-b_c.d/@me:1/*,+!$()=",
    ] {
        let c = p(&format!("app:\n  name: a\nhealth:\n  path: \"{good}\"\n"));
        assert_eq!(c.unwrap().health.path, good);
    }
    for bad in [
        "actuator/health",
        "/a b",
        "/a#frag",
        "/a\\\\b",
        "/a\\\"b",
        "/a'b",
        "/a\\tb",
        "/a%2",
        "/a%zz",
        "/a<b>",
        "/caf\u{e9}",
        "",
    ] {
        let t = format!("app:\n  name: a\nhealth:\n  path: \"{bad}\"\n");
        let e = p(&t).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{bad:?}");
        assert_eq!(e.kind(), crate::error::Kind::Config, "{bad:?}");
        let m = e.to_string();
        assert!(m.starts_with("/srv/app/nonstop.yml:4:9: "), "{bad:?}: {m}");
        assert!(m.contains("invalid health path"), "{bad:?}: {m}");
    }
}

#[test]
fn bad_names_rejected() {
    assert!(p("app:\n  name: My App\n").is_err());
    assert!(p("app:\n  name: a\nslots:\n  - {name: blue, port: 0, profile: a}\n  - {name: g, port: 2, profile: b}\n").is_err());
    assert!(p("app:\n  name: a\nhealth:\n  interval: 5\n").is_err());
    assert!(p("app:\n  name: a\nnginx:\n  test: []\n").is_err());
}

#[test]
fn watch_values_are_checked() {
    let c = p("app:\n  name: shop\n").unwrap();
    assert!(!c.watch.enabled);
    assert_eq!(c.watch.duration, Duration::from_secs(60));
    assert_eq!(c.watch.log, PathBuf::from("/var/log/nginx/shop.access.log"));
    assert!((c.watch.errors - 0.01).abs() < 1e-9);
    let c = p("app:\n  name: a\nwatch:\n  enabled: true\n  duration: 30s\n  interval: 2s\n  errors: 0.5%\n  errors_factor: 3\n  p99_factor: 1.5\n  p99_margin: 50ms\n  min_requests: 20\n  log: logs/a.log\n").unwrap();
    assert!(c.watch.enabled);
    assert_eq!(c.watch.interval, Duration::from_secs(2));
    assert!((c.watch.errors - 0.005).abs() < 1e-9);
    assert_eq!(c.watch.min_requests, 20);
    assert_eq!(c.watch.log, PathBuf::from("/srv/app/logs/a.log"));
    assert!(c.watch.probes.is_empty());
    let c =
        p("app:\n  name: a\nwatch:\n  probes: [/orders/smoke, \"/api/ping?deep=1\"]\n").unwrap();
    assert_eq!(c.watch.probes, ["/orders/smoke", "/api/ping?deep=1"]);
    let e = p("app:\n  name: a\nwatch:\n  probes: [\"orders\"]\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid watch.probes path"), "{e}");
    for (bad, want) in [
        ("duration: 0s", "above zero"),
        ("interval: soon", "invalid duration"),
        ("errors: 0%", "invalid percentage"),
        ("errors: 101", "invalid percentage"),
        ("errors_factor: 0.5", "invalid factor"),
        ("min_requests: 0", "at least 1"),
        ("interval: 2m", "longer than watch.duration"),
        ("colour: red", "unknown field"),
    ] {
        let e = p(&format!("app:\n  name: a\nwatch:\n  {bad}\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{bad}: {e}");
        assert!(!e.contains('\n'), "{bad}: one line: {e}");
        // A value's own line; the cross-field check names the block.
        let line = if want.starts_with("longer") {
            ":3"
        } else {
            ":4"
        };
        assert!(e.contains(line), "{bad}: the line: {e}");
    }
}

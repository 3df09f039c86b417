//! The units, the launch check, the exit record and the env file, without systemd.

use super::ctl::exit_record;
use super::units::quote;
use super::*;
use crate::error::Refusal;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

#[test]
fn unit_quotes_every_argument() {
    assert_eq!(quote("-Dx=a b").unwrap(), "\"-Dx=a b\"");
    assert_eq!(quote("50%$HOME\"\\").unwrap(), "\"50%%$$HOME\\\"\\\\\"");
    assert!(quote("a\nExecStartPre=/bin/evil").is_err());
}

#[test]
fn renders_a_template_with_the_settings_that_matter() {
    let cfg = crate::config::parse(
        "app:\n  name: shop\n  user: app\n  env: {A: \"1 2\"}\nstop:\n  grace: 35s\n",
        Path::new("/x/n.yml"),
    )
    .unwrap();
    let e = crate::registry::Entry::of(
        &cfg,
        "ec2-user",
        Path::new("/usr/local/libexec/nonstop/shop/nonstop"),
    );
    let u = render_template(&cfg, &e).unwrap();
    assert!(u.starts_with(MARKER), "{u}");
    for want in [
        "ExecStart=\"/usr/local/libexec/nonstop/shop/nonstop\" run-slot --app shop --slot %i\n",
        "User=app\n",
        "TimeoutStopSec=35\n",
        "SuccessExitStatus=143\n",
        "Restart=on-failure\n",
        "StartLimitBurst=3\n",
        "KillSignal=SIGTERM\n",
        "Type=exec\n",
        "WantedBy=multi-user.target\n",
    ] {
        assert!(u.contains(want), "{want:?} missing in:\n{u}");
    }
    // Nothing the deploy user writes reaches the unit; app.env's values are in setup's
    // root-only file, which the unit names.
    assert!(!u.contains("Environment="), "{u}");
    assert!(
        u.contains("EnvironmentFile=/etc/nonstop/apps/shop.env\n"),
        "{u}"
    );
    assert!(!u.contains("1 2"), "no value in the unit:\n{u}");
    assert_eq!(unit_name(&cfg, &cfg.slots[1]), "nonstop-shop@green.service");
}

#[test]
fn a_launch_must_stay_in_the_apps_releases_and_port() {
    let d = tempfile::tempdir().unwrap();
    let work = d.path().join("work");
    let rel = work.join("releases/r1");
    std::fs::create_dir_all(&rel).unwrap();
    std::fs::write(rel.join("app.jar"), b"jar").unwrap();
    std::fs::create_dir_all(d.path().join("elsewhere")).unwrap();
    std::fs::write(d.path().join("elsewhere/evil.jar"), b"x").unwrap();
    let cfg = crate::config::parse(
        &format!("app:\n  name: shop\n  workdir: {}\n", work.display()),
        Path::new("/x/n.yml"),
    )
    .unwrap();
    let e = crate::registry::Entry::of(&cfg, "ec2-user", Path::new("/n"));
    let jar = rel.join("app.jar").to_string_lossy().into_owned();
    let good = Launch {
        release: "r1".into(),
        argv: vec![
            "/usr/bin/java".into(),
            "-Dserver.port=8081".into(),
            "-jar".into(),
            jar.clone(),
        ],
        env: vec![],
        cwd: rel.clone(),
    };
    check_launch(&e, "blue", &good).unwrap();
    let bad = |f: &dyn Fn(&mut Launch), why: &str| {
        let mut l = good.clone();
        f(&mut l);
        let err = check_launch(&e, "blue", &l).unwrap_err();
        assert!(
            matches!(&err, Error::Refused { refusal: Refusal::Launch { slot }, .. } if slot == "blue"),
            "{err:?}"
        );
        let m = err.to_string();
        assert!(m.contains(why), "{why}: {m}");
    };
    bad(&|l| l.argv[1] = "-Dserver.port=22".into(), "has port 8081");
    bad(&|l| l.argv.push("--server.port=22".into()), "has port 8081");
    bad(
        &|l| l.argv[3] = d.path().join("elsewhere/evil.jar").to_string_lossy().into(),
        "is not in release folder",
    );
    bad(&|l| l.release = "..".into(), "is not a folder of");
    bad(
        &|l| l.cwd = d.path().join("elsewhere"),
        "is not a folder of",
    );
    bad(&|l| l.argv[0] = "java".into(), "not an absolute path");
    // A release folder that is a symlink out of the releases folder.
    std::os::unix::fs::symlink(d.path().join("elsewhere"), work.join("releases/r2")).unwrap();
    bad(
        &|l| {
            l.release = "r2".into();
            l.cwd = work.join("releases/r2");
            l.argv[3] = work.join("releases/r2/evil.jar").to_string_lossy().into();
        },
        "outside",
    );
    let m = check_launch(&e, "red", &good).unwrap_err().to_string();
    assert!(m.contains("not one of app shop's slots"), "{m}");
}
#[test]
fn the_exit_time_is_rfc3339_utc_whatever_the_hosts_time_zone() {
    let props: HashMap<String, String> = [
        ("ExecMainPID", "4242"),
        ("ExecMainCode", "1"),
        ("ExecMainStatus", "143"),
        // What the text form would say on a host in Berlin.
        ("ExecMainExitTimestamp", "Sun 2026-12-06 21:07:25 CET"),
        ("ExecMainExitTimestampMonotonic", "90000000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    // 100 s after boot on the monotonic clock is 2026-12-06T20:07:35.250Z on the wall.
    let wall = std::time::UNIX_EPOCH + Duration::from_millis(1_796_587_655_250);
    let r = exit_record(&props, (wall, Duration::from_secs(100))).unwrap();
    assert_eq!(r.at, "2026-12-06T20:07:25.250Z");
    assert_eq!((r.pid, r.code, r.signal), (4242, Some(143), None));
    assert!(crate::operator::parse_utc(&r.at).is_some());
    // A unit whose process never exited has a zero timestamp: no record.
    let mut never = props.clone();
    never.insert("ExecMainExitTimestampMonotonic".into(), "0".into());
    assert!(exit_record(&never, (wall, Duration::from_secs(100))).is_none());
}

/// systemd's reading of a double-quoted `KEY="…"` line of an `EnvironmentFile=`
/// (systemd.exec(5)): a backslash before `"`, `\`, `` ` `` or `$` keeps that character, any
/// other backslash is kept with what follows; nothing is expanded.
fn systemd_reads(line: &str) -> (String, String) {
    let (k, v) = line.split_once('=').unwrap();
    let v = v.strip_prefix('"').unwrap().strip_suffix('"').unwrap();
    let mut out = String::new();
    let mut it = v.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => match it.next().unwrap() {
                n @ ('"' | '\\' | '`' | '$') => out.push(n),
                n => {
                    out.push('\\');
                    out.push(n)
                }
            },
            '"' => panic!("an unescaped quote ends the value early: {line}"),
            c => out.push(c),
        }
    }
    (k.to_string(), out)
}

#[test]
fn app_env_reaches_the_jvm_unchanged_from_a_root_only_file() {
    let values = [
        ("DB_PASSWORD", "pa$$w0rd$1"),
        ("HOME_REF", "${HOME}/x $HOME"),
        ("PERCENT", "50% %n %%"),
        ("QUOTES", "it's \"quoted\" `cmd` \\n back\\slash"),
        ("SPACES", "  lead and trail  "),
        ("EMPTY", ""),
    ];
    let env: Vec<(String, String)> = values
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let text = render_env_file("shop", &env).unwrap();
    assert!(text.starts_with(MARKER), "{text}");
    let read: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(systemd_reads)
        .collect();
    assert_eq!(read, env, "{text}");
    assert!(
        text.contains("DB_PASSWORD=\"pa\\$\\$w0rd\\$1\"\n"),
        "{text}"
    );
    let bad = vec![("A".to_string(), "x\nB=evil".to_string())];
    assert!(render_env_file("shop", &bad).is_err());

    // Written 0600, owned by root (systemd reads it before it drops to User=),
    // atomically: no temp file left; a planted symlink is refused, never written through.
    let d = tempfile::tempdir().unwrap();
    let victim = d.path().join("victim");
    std::fs::write(&victim, "keep\n").unwrap();
    let p = env_file(d.path(), "shop");
    assert_eq!(p, d.path().join("shop.env"));
    std::os::unix::fs::symlink(&victim, &p).unwrap();
    if root() {
        use std::os::unix::fs::MetadataExt;
        let err = write_env_file(&p, Some(&text)).unwrap_err();
        assert!(
            matches!(&err, Error::Refused { refusal: Refusal::NotOurs { path }, .. } if *path == p),
            "{err:?}"
        );
        let e = err.to_string();
        assert!(e.contains("is a symlink"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
        std::fs::remove_file(&p).unwrap();
        assert!(write_env_file(&p, Some(&text)).unwrap());
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert!(m.file_type().is_file());
        assert_eq!(m.mode() & 0o7777, 0o600);
        assert_eq!(m.uid(), 0);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), text);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep\n");
        assert_eq!(
            std::fs::read_dir(d.path()).unwrap().count(),
            2,
            "no temp file"
        );
        assert!(!write_env_file(&p, Some(&text)).unwrap(), "unchanged");
        assert!(
            write_env_file(&p, None).unwrap(),
            "an emptied app.env removes it"
        );
        assert!(!p.exists());
    }
}

#[test]
fn root_sets_a_slot_at_boot_with_the_link_systemctl_enable_makes() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    std::fs::write(dir.join("nonstop-shop@.service"), "# Managed by nonstop\n").unwrap();
    std::fs::write(
        dir.join("nonstop-shop-blue.service"),
        "# Managed by nonstop\n",
    )
    .unwrap();
    let wants = dir.join("multi-user.target.wants");
    // A template instance links to its template; an older per-slot unit to its own file.
    units::set_at_boot(dir, "nonstop-shop@green.service", true).unwrap();
    units::set_at_boot(dir, "nonstop-shop-blue.service", true).unwrap();
    assert_eq!(
        std::fs::read_link(wants.join("nonstop-shop@green.service")).unwrap(),
        dir.join("nonstop-shop@.service")
    );
    assert_eq!(
        std::fs::read_link(wants.join("nonstop-shop-blue.service")).unwrap(),
        dir.join("nonstop-shop-blue.service")
    );
    // Again: the same link, no temporary left behind.
    units::set_at_boot(dir, "nonstop-shop@green.service", true).unwrap();
    let names: Vec<_> = std::fs::read_dir(&wants)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    // Disabled: the link goes, the unit's file stays; disabling again changes nothing.
    units::set_at_boot(dir, "nonstop-shop@green.service", false).unwrap();
    units::set_at_boot(dir, "nonstop-shop@green.service", false).unwrap();
    assert!(wants
        .join("nonstop-shop@green.service")
        .symlink_metadata()
        .is_err());
    assert!(dir.join("nonstop-shop@.service").is_file());
    // Something not a link at the link's path is left alone.
    std::fs::write(wants.join("nonstop-shop@blue.service"), "x").unwrap();
    let e = units::set_at_boot(dir, "nonstop-shop@blue.service", false).unwrap_err();
    assert!(e.to_string().contains("not a link"), "{e}");
    assert_eq!(
        std::fs::read(wants.join("nonstop-shop@blue.service")).unwrap(),
        b"x"
    );
}

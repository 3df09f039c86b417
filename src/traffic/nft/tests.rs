//! The transaction, the echo that confirms it, balanced weights and the helper's check,
//! without nft.

use super::rules::*;
use super::run::errno_in;
use super::*;
use crate::nginx::Member;

fn cfg(extra: &str) -> Config {
    crate::config::parse(
        &format!("app:\n  name: my-app\ntraffic:\n  via: nftables\n  port: 18090\n{extra}"),
        std::path::Path::new("/x/n.yml"),
    )
    .unwrap()
}

#[test]
fn a_missing_table_is_told_by_its_errno_not_by_a_message() {
    use std::io::ErrorKind::NotFound;
    // nft 1.0 and 0.9 say the kernel's ENOENT so.
    for line in [
        "Error: No such file or directory; did you mean table ‘nonstop_a’ in family ip?",
        "Error: Could not process rule: No such file or directory",
    ] {
        assert_eq!(errno_in(line), Some(NotFound), "{line}");
    }
    assert_eq!(errno_in("Error: syntax error, unexpected string"), None);
}

#[test]
fn renders_one_atomic_transaction() {
    let c = cfg("");
    let s = Steering {
        live: Some(8082),
        rotation: vec![(8081, Member::Down), (8082, Member::Up(1))],
    };
    let t = render(&c, &s);
    assert!(t.contains("add table ip nonstop_my_app\ndelete table ip nonstop_my_app\ntable ip nonstop_my_app {"), "{t}");
    assert!(
        t.contains("\t\tip daddr 127.0.0.1 tcp dport 18090 dnat to 127.0.0.1:8082\n"),
        "{t}"
    );
    assert!(
        t.contains("comment \"nonstop live=8082 rotation=8081:down,8082:1\""),
        "{t}"
    );
    assert_eq!(parse_comment(&comment(&s)), Some(s.clone()));
    let none = Steering {
        live: None,
        rotation: vec![(8081, Member::Down), (8082, Member::Down)],
    };
    assert_eq!(rule(&c, &none), None);
}

#[test]
fn only_the_kernels_echo_of_the_table_meant_confirms_a_change() {
    let c = cfg("");
    let s = Steering {
        live: Some(8082),
        rotation: vec![(8081, Member::Down), (8082, Member::Up(1))],
    };
    // What nft 1.0.6 prints for the transaction (the table existed before).
    let echo = "add table ip nonstop_my_app\n\
         add chain ip nonstop_my_app out { type nat hook output priority -100; policy accept; }\n\
         add rule ip nonstop_my_app out ip daddr 127.0.0.1 tcp dport 18090 dnat to 127.0.0.1:8082\n\
         # new generation 27 by process 24452 (nft)\n";
    assert!(echoed(&c, &s, echo));
    // A first table: nft echoes its `add table` twice.
    assert!(echoed(
        &c,
        &s,
        &format!("add table ip nonstop_my_app\n{echo}")
    ));
    // Another rule, a second rule, no commit, another table, a line not understood, nothing.
    assert!(!echoed(&c, &s, &echo.replace(":8082", ":8081")));
    let twice = echo.replace(
        "# new",
        "add rule ip nonstop_my_app out tcp dport 22 accept\n# new",
    );
    assert!(!echoed(&c, &s, &twice));
    assert!(!echoed(&c, &s, &echo.replace("# new generation", "# old")));
    assert!(!echoed(
        &c,
        &s,
        &echo.replace("nonstop_my_app", "nonstop_other")
    ));
    assert!(!echoed(
        &c,
        &s,
        &format!("{echo}delete table ip nonstop_my_app\n")
    ));
    assert!(!echoed(&c, &s, ""));
    // No slot live: the table and its chain, no rule.
    let none = Steering {
        live: None,
        rotation: vec![(8081, Member::Down), (8082, Member::Down)],
    };
    let bare: String = echo
        .lines()
        .filter(|l| !l.contains("dnat"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(echoed(&c, &none, &bare));
    assert!(!echoed(&c, &s, &bare));
}

#[test]
fn balanced_spreads_by_weight() {
    let c = cfg("  balanced: true\nslots:\n  - {name: a, port: 8081, profile: p1}\n  - {name: b, port: 8082, profile: p2}\n  - {name: c, port: 8083, profile: p3}\n");
    let s = Steering {
        live: Some(8081),
        rotation: vec![
            (8081, Member::Up(90)),
            (8082, Member::Up(10)),
            (8083, Member::Down),
        ],
    };
    assert_eq!(
        rule(&c, &s).unwrap(),
        "ip daddr 127.0.0.1 tcp dport 18090 dnat ip to numgen random mod 100 map { 0-89 : 127.0.0.1 . 8081, 90-99 : 127.0.0.1 . 8082 }"
    );
    let even = Steering {
        live: Some(8081),
        rotation: vec![
            (8081, Member::Up(1)),
            (8082, Member::Up(1)),
            (8083, Member::Up(1)),
        ],
    };
    assert!(rule(&c, &even).unwrap().ends_with(
        "mod 3 map { 0 : 127.0.0.1 . 8081, 1 : 127.0.0.1 . 8082, 2 : 127.0.0.1 . 8083 }"
    ));
}

#[test]
fn the_helper_takes_only_the_slot_ports_setup_fixed() {
    let c = cfg("  balanced: true\n");
    let e = crate::registry::Entry::of(&c, "ec2-user", std::path::Path::new("/n"));
    let ok = Steering {
        live: Some(8082),
        rotation: vec![(8081, Member::Up(90)), (8082, Member::Up(10))],
    };
    check_steering(&e, &ok).unwrap();
    // The table the helper builds from the registry is the one the config would.
    assert_eq!(
        render_for(&e.app, &e.table, e.front_port.unwrap(), e.balanced, &ok),
        render(&c, &ok)
    );
    for (bad, why) in [
        (
            Steering {
                live: Some(22),
                rotation: vec![],
            },
            "live port 22 is not a slot port of app my-app",
        ),
        (
            Steering {
                live: Some(8081),
                rotation: vec![(8081, Member::Up(1)), (22, Member::Up(1))],
            },
            "rotation names port 22",
        ),
        (
            Steering {
                live: Some(8081),
                rotation: vec![(8081, Member::Up(1)), (8081, Member::Up(1))],
            },
            "rotation names port 8081",
        ),
    ] {
        let m = check_steering(&e, &bad).unwrap_err().to_string();
        assert!(m.contains(why), "{m}");
    }
    // What the hook user writes is the table's comment format, read back the same.
    assert_eq!(parse_comment(comment(&ok).trim()), Some(ok));
}

#[test]
fn setup_seeds_the_steering_from_what_an_older_root_nonstop_kept_for_boot() {
    use std::os::unix::fs::MetadataExt;
    let c = cfg("");
    let d = tempfile::tempdir().unwrap();
    let mut e = crate::registry::Entry::of(&c, "ec2-user", std::path::Path::new("/n"));
    e.state_dir = d.path().to_path_buf();
    let (uid, gid) = (65534, 65534);
    // Nothing kept: nothing to seed.
    assert_eq!(steer::seed_want(&e, uid, gid).unwrap(), None);
    let old = Steering {
        live: Some(8081),
        rotation: vec![(8081, Member::Up(1)), (8082, Member::Down)],
    };
    let kept = d.path().join("traffic.nft");
    std::fs::write(&kept, render(&c, &old)).unwrap();
    let want = want_path(d.path());
    let root = rustix::process::geteuid().is_root();
    let line = steer::seed_want(&e, uid, gid).unwrap();
    if !root {
        // Not root's file: not an older root nonstop's record.
        assert_eq!(line, None);
        return;
    }
    let line = line.expect("seeded");
    assert!(
        line.contains("nonstop live=8081 rotation=8081:1,8082:down"),
        "{line}"
    );
    assert_eq!(
        std::fs::read_to_string(&want).unwrap(),
        "nonstop live=8081 rotation=8081:1,8082:down\n"
    );
    let m = std::fs::metadata(&want).unwrap();
    assert_eq!(
        (m.uid(), m.gid()),
        (uid, gid),
        "the hook user's, as its runs write it"
    );
    // What the hook user asked for since wins: never overwritten.
    std::fs::write(&want, "nonstop live=8082 rotation=8081:down,8082:1\n").unwrap();
    assert_eq!(steer::seed_want(&e, uid, gid).unwrap(), None);
    std::fs::remove_file(&want).unwrap();
    // Root hooks read the kept ruleset themselves; a port setup did not fix is not seeded.
    e.hook_user = "root".into();
    assert_eq!(steer::seed_want(&e, uid, gid).unwrap(), None);
    e.hook_user = "ec2-user".into();
    let bad = Steering {
        live: Some(22),
        rotation: vec![(22, Member::Up(1))],
    };
    std::fs::write(&kept, render(&c, &bad)).unwrap();
    assert_eq!(steer::seed_want(&e, uid, gid).unwrap(), None);
    // A symlink at the kept ruleset's path is not followed.
    std::fs::remove_file(&kept).unwrap();
    let elsewhere = d.path().join("elsewhere.nft");
    std::fs::write(&elsewhere, render(&c, &old)).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &kept).unwrap();
    assert_eq!(steer::seed_want(&e, uid, gid).unwrap(), None);
    assert!(!want.exists());
}

#[test]
fn root_hooks_boot_from_their_kept_ruleset_only_when_the_registry_allows_its_ports() {
    let c = cfg("");
    let d = tempfile::tempdir().unwrap();
    let mut e = crate::registry::Entry::of(&c, "root", std::path::Path::new("/n"));
    e.state_dir = d.path().to_path_buf();
    // Nothing asked, nothing kept: nothing to load.
    assert_eq!(steer::recorded(&e).unwrap(), None);
    let kept = d.path().join("traffic.nft");
    let ok = Steering {
        live: Some(8082),
        rotation: vec![(8081, Member::Down), (8082, Member::Up(1))],
    };
    std::fs::write(&kept, render(&c, &ok)).unwrap();
    let root = rustix::process::geteuid().is_root();
    // Root's own record (a file another user wrote is not root's record).
    assert_eq!(steer::recorded(&e).unwrap(), root.then(|| ok.clone()));
    // A kept ruleset naming a port setup did not fix is not loaded.
    let bad = Steering {
        live: Some(22),
        rotation: vec![(22, Member::Up(1))],
    };
    std::fs::write(&kept, render(&c, &bad)).unwrap();
    assert_eq!(steer::recorded(&e).unwrap(), None);
}

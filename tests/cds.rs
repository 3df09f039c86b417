//! `app.cds` with the real Spring Boot jar and a real JVM: the release is extracted once, its
//! class-data archive is dumped from the new JVM once healthy, before the switch, a later start of the same
//! release maps it (the kernel's /proc/PID/maps is the proof that the JVM used it, not only
//! that nonstop passed it), a truncated archive is refused before the JVM sees it (a truncated
//! archive crashes JDK 17) and the app still starts, and pruning removes an archive with its
//! release. JVM starts are the cost on two cores: one test, four boots.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn maps(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default()
}

fn cmdline(pid: i32) -> Vec<String> {
    nonstop::process::cmdline(pid)
}

#[test]
fn a_release_started_again_boots_from_its_archive_a_bad_one_is_refused_and_pruning_removes_it() {
    let env = Env::spring(2);
    env.deploy("v1"); // green, extracted, recording
    let green = env.pid_of("green").unwrap();
    let release = green.release.clone();
    // As the pid file names it (the config's workdir, `bundle/../work`, unresolved).
    let rel = green.jar.parent().unwrap().to_path_buf();
    let twin = rel.join("cds/app/spring-app-v1.jar");
    assert!(twin.is_file(), "the release is extracted beside its jar");
    let cmd = cmdline(green.pid);
    assert!(cmd.contains(&twin.display().to_string()), "{cmd:?}");
    assert!(
        cmd.contains(&"-XX:+RecordDynamicDumpInfo".to_string()),
        "{cmd:?}"
    );
    // `health` waits for the dump before the switch (up to its budget; a slower one goes on
    // in the background): wait for it.
    let archive = rel.join("cds/app.jsa");
    assert!(
        wait_until(Duration::from_secs(120), || archive.is_file()),
        "no archive; dump.log: {}",
        std::fs::read_to_string(rel.join("cds/dump.log")).unwrap_or_default()
    );
    assert!(
        wait_until(Duration::from_secs(10), || !rel
            .join("cds/dumping.json")
            .exists()),
        "the dumper ends"
    );

    // The same release again, on blue: it maps the archive.
    let r = env.hook("deploy-second", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("starts from its class-data archive"),
        "{}",
        r.stderr
    );
    let blue = env.pid_of("blue").unwrap();
    assert_eq!(blue.release, release);
    let arg = format!("-XX:SharedArchiveFile={}", archive.display());
    assert!(cmdline(blue.pid).contains(&arg), "{:?}", cmdline(blue.pid));
    assert!(
        maps(blue.pid).contains(&archive.canonicalize().unwrap().display().to_string()),
        "the JVM mapped the archive"
    );
    let (st, body) = env.get_slot("blue", "/");
    assert_eq!(st, 200, "{body}");

    // status: the release with its archive, its disk use and both boots.
    let s = env.nonstop(&["status", "--json"]);
    assert_eq!(s.code, 0, "{}", s.stderr);
    let v: serde_json::Value = serde_json::from_str(&s.stdout).unwrap();
    let row = v["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["release"] == release.as_str())
        .unwrap()
        .clone();
    let size = std::fs::metadata(&archive).unwrap().len();
    assert_eq!(row["archive_bytes"], size);
    assert!(row["disk_bytes"].as_u64().unwrap() > size);
    assert_eq!(
        row["boots"]["extracted"].as_array().unwrap().len(),
        1,
        "{row}"
    );
    assert_eq!(
        row["boots"]["archive"].as_array().unwrap().len(),
        1,
        "{row}"
    );
    let text = env.nonstop(&["status"]).stdout;
    assert!(text.contains("RELEASES ("), "{text}");
    assert!(text.contains("from the archive"), "{text}");

    // A truncated archive: refused and removed before the JVM sees it; the app starts anyway.
    let r = env.hook("stop", &["--slot", "blue"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&archive)
        .unwrap();
    f.set_len(size / 2).unwrap();
    drop(f);
    let r = env.hook("deploy-second", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("not using the class-data archive") && r.stderr.contains(" were written"),
        "{}",
        r.stderr
    );
    let blue = env.pid_of("blue").unwrap();
    assert!(!maps(blue.pid).contains("app.jsa"));
    assert!(cmdline(blue.pid).contains(&"-XX:+RecordDynamicDumpInfo".to_string()));
    assert!(!archive.exists(), "the bad archive was removed");
    let (st, body) = env.get_slot("blue", "/");
    assert_eq!(st, 200, "{body}");

    // Pruning: an old release with its extracted tree and archive goes as a whole.
    let old = env.path("work/releases/00000000T000000Z");
    plant_release(&old);
    env.edit_config("keep_releases: 3", "keep_releases: 2");
    let r = env.hook("stop", &["--slot", "blue"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    env.stage_jar("v2");
    let r = env.hook("start", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!old.exists(), "pruned with its archive: {}", r.stderr);
    assert!(rel.is_dir(), "the live release stays");
}

/// A release folder as `start` leaves it, with an archive, older than every other.
fn plant_release(dir: &Path) {
    let app: PathBuf = dir.join("cds/app/lib");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(dir.join("old.jar"), b"jar").unwrap();
    std::fs::write(dir.join("cds/app.jsa"), vec![0u8; 4096]).unwrap();
    let t = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(86_400);
    std::fs::File::open(dir).unwrap().set_modified(t).unwrap();
}

//! `app.cds`'s unit tests: the archive checks, extraction, the JDK, run-slot's checks.

use super::*;

#[test]
fn the_twin_of_a_release_jar_is_inside_its_folder() {
    let j = Path::new("/w/releases/r1/shop-1.jar");
    assert_eq!(
        twin(j).unwrap(),
        Path::new("/w/releases/r1/cds/app/shop-1.jar")
    );
    assert!(runs_twin("/w/releases/r1/cds/app/shop-1.jar", j));
    assert!(!runs_twin("/w/releases/r2/cds/app/shop-1.jar", j));
    assert!(in_release(
        Path::new("/w/releases/r1/cds/app/shop-1.jar"),
        Path::new("/w/releases/r1")
    ));
    assert!(!in_release(
        Path::new("/w/releases/r1/cds/shop-1.jar"),
        Path::new("/w/releases/r1")
    ));
}

#[test]
fn an_archive_is_used_only_as_recorded() {
    let d = tempfile::tempdir().unwrap();
    let jdk = Jdk {
        home: "/j".into(),
        version: "17.0.15".into(),
        major: 17,
        build: "/j 17.0.15 (libjvm 1 bytes, mtime 2)".into(),
    };
    assert_eq!(usable(d.path(), &jdk), Ok(None));
    fs::write(d.path().join(ARCHIVE), b"archive bytes").unwrap();
    assert!(usable(d.path(), &jdk).unwrap_err().contains("archive.json"));
    let meta = ArchiveMeta {
        jdk: jdk.build.clone(),
        size: 13,
        sha256: sha256_of(&d.path().join(ARCHIVE)).unwrap(),
        dumped_at: "t".into(),
        dump_ms: 1,
    };
    write_json(&d.path().join(ARCHIVE_META), &meta).unwrap();
    assert!(usable(d.path(), &jdk).unwrap().is_some());
    let other = Jdk {
        build: "/k 25".into(),
        ..jdk.clone()
    };
    assert!(usable(d.path(), &other)
        .unwrap_err()
        .contains("another JDK build"));
    fs::write(d.path().join(ARCHIVE), b"archive bytez").unwrap();
    assert!(usable(d.path(), &jdk).unwrap_err().contains("sha256"));
    fs::write(d.path().join(ARCHIVE), b"archive").unwrap();
    assert!(usable(d.path(), &jdk).unwrap_err().contains("7 bytes"));
}

#[test]
fn run_slot_takes_only_the_release_folders_own_archive() {
    let d = tempfile::tempdir().unwrap();
    let rel = d.path().join("r1");
    fs::create_dir_all(rel.join(DIR)).unwrap();
    fs::write(rel.join("cds/app.jsa"), b"a").unwrap();
    fs::write(d.path().join("evil.jsa"), b"e").unwrap();
    std::os::unix::fs::symlink(d.path().join("evil.jsa"), rel.join("cds/link.jsa")).unwrap();
    let argv = |a: &Path| vec!["/j/bin/java".to_string(), format!("{USE}{}", a.display())];
    check_launch(&argv(&rel.join("cds/app.jsa")), &rel).unwrap();
    // Gone (vet leaves it out): still the release's own path.
    fs::remove_file(rel.join("cds/app.jsa")).unwrap();
    check_launch(&argv(&rel.join("cds/app.jsa")), &rel).unwrap();
    for bad in [d.path().join("evil.jsa"), rel.join("cds/link.jsa")] {
        let m = check_launch(&argv(&bad), &rel).unwrap_err().to_string();
        assert!(m.contains("is not"), "{m}");
    }
    std::os::unix::fs::symlink(d.path().join("evil.jsa"), rel.join("cds/app.jsa")).unwrap();
    assert!(check_launch(&argv(&rel.join("cds/app.jsa")), &rel).is_err());
    // vet: an archive without its record is left out, the rest of the argv kept.
    let jsa = d.path().join("r2/cds/app.jsa");
    fs::create_dir_all(jsa.parent().unwrap()).unwrap();
    fs::write(&jsa, b"a").unwrap();
    let v = vet(&argv(&jsa), &d.path().join("r2"));
    assert_eq!(v, vec!["/j/bin/java".to_string()]);
}

#[test]
fn the_dump_makes_the_units_next_start_use_the_archive() {
    let d = tempfile::tempdir().unwrap();
    let launch = d.path().join("blue.launch.json");
    let spec = |release: &str| Dump {
        pid: 1,
        start_time: 1,
        dir: d.path().join("r1/cds"),
        jdk: "j".into(),
        release: release.into(),
        launch_file: launch.clone(),
        dumper: None,
    };
    let argv =
        |v: &[&str]| serde_json::json!({"release": "r1", "argv": v, "env": [], "cwd": "/w/r1"});
    let recording = [
        "/j/bin/java",
        "-Xmx1g",
        RECORD,
        LISTEN,
        "-Dserver.port=8081",
        "-jar",
        "x.jar",
    ];
    write_json(&launch, &argv(&recording)).unwrap();
    // Another release's launch file is left alone.
    refresh_launch_file(&spec("r2"));
    assert_eq!(
        read_json::<serde_json::Value>(&launch).unwrap(),
        argv(&recording)
    );
    refresh_launch_file(&spec("r1"));
    let jsa = format!("{USE}{}", d.path().join("r1/cds/app.jsa").display());
    assert_eq!(
        read_json::<serde_json::Value>(&launch).unwrap(),
        argv(&[
            "/j/bin/java",
            "-Xmx1g",
            &jsa,
            "-Xshare:auto",
            "-Dserver.port=8081",
            "-jar",
            "x.jar"
        ])
    );
}

#[test]
fn a_spring_boot_jar_without_jarmode_tools_cannot_be_extracted() {
    let mut j = crate::jar::tests::boot_jar("3.2.5", &[]);
    let why = extractable(&j).unwrap_err();
    assert!(
        why.contains("Spring Boot 3.2.5") && why.contains("jarmode-tools"),
        "{why}"
    );
    j.names
        .push("BOOT-INF/lib/spring-boot-jarmode-layertools-3.2.5.jar".into());
    assert!(extractable(&j)
        .unwrap_err()
        .contains("`jarmode=layertools` only"));
    j.names
        .push("BOOT-INF/lib/spring-boot-jarmode-tools-3.3.0.jar".into());
    assert_eq!(extractable(&j), Ok(()));
}

#[test]
fn the_jdk_is_read_from_its_release_file() {
    let d = tempfile::tempdir().unwrap();
    fs::create_dir_all(d.path().join("bin")).unwrap();
    fs::write(d.path().join("bin/java"), b"").unwrap();
    fs::write(d.path().join("release"), "JAVA_VERSION=\"17.0.15\"\n").unwrap();
    let j = Jdk::of(&d.path().join("bin/java")).unwrap();
    assert_eq!((j.major, j.version.as_str()), (17, "17.0.15"));
    fs::write(d.path().join("release"), "JAVA_VERSION=\"1.8.0_412\"\n").unwrap();
    assert_eq!(Jdk::of(&d.path().join("bin/java")).unwrap().major, 8);
}

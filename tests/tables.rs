//! The stage table (`src/stage_table.rs`) against the lists outside Rust that restate it: the
//! Makefile's `BINS`, the binaries `scripts/dist-check.sh` requires in a release tarball, the
//! binaries in `src/bin/`, and the hooks of the shipped appspecs (each stage in its row's
//! lifecycle event, in the table's order; blue/green without the balanced-only stages).

use nonstop::operator::validate::appspec_format;
use nonstop::stage_table::{Stage, BINARIES, BLUE_GREEN, NAMES};
use std::path::Path;

fn read(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[test]
fn the_makefile_builds_the_tables_binaries() {
    let text = read("Makefile");
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("BINS := "))
        .expect("the Makefile sets BINS");
    let bins: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        bins, BINARIES,
        "Makefile's BINS against stage_table::BINARIES"
    );
}

#[test]
fn dist_check_requires_the_tables_binaries() {
    let text = read("scripts/dist-check.sh");
    // The files it requires: `for f in bin/stop … \` … `; do`.
    let list = text
        .split_once("for f in ")
        .and_then(|(_, rest)| rest.split_once("; do"))
        .expect("dist-check.sh's `for f in …; do` list")
        .0;
    let listed: Vec<&str> = list
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("bin/"))
        .filter(|b| !b.is_empty() && !b.contains(['$', '/', '"']))
        .collect();
    assert_eq!(
        listed, BINARIES,
        "the bin/ files scripts/dist-check.sh requires against stage_table::BINARIES"
    );
}

#[test]
fn src_bin_holds_the_tables_binaries() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/bin");
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|f| f.strip_suffix(".rs").map(String::from))
        .collect();
    found.sort();
    let mut want: Vec<&str> = BINARIES.to_vec();
    want.sort();
    assert_eq!(found, want);
}

#[test]
fn the_shipped_appspecs_run_the_stages_in_their_events_and_order() {
    for (file, stages) in [
        ("appspec/appspec.yml", &BLUE_GREEN[..]),
        ("appspec/appspec-balanced.yml", &NAMES[..]),
    ] {
        let (format, hooks) = appspec_format(&read(file));
        assert!(format.is_ok(), "{file}: {format:?}");
        let hooks: Vec<(String, String)> = hooks
            .unwrap()
            .into_iter()
            .map(|h| (h.event, h.location))
            .collect();
        let want: Vec<(String, String)> = stages
            .iter()
            .map(|b| {
                let row = Stage::of_name(b).unwrap().row();
                (row.hook.to_string(), format!("bin/{b}"))
            })
            .collect();
        assert_eq!(hooks, want, "{file}");
    }
}

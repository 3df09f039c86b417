//! `app.cds` rows, for the Spring Boot example and a PetClinic-sized Spring app
//! (examples/spring-large-app: web, JPA, Thymeleaf): each app's first boot and later boots of
//! the same release, with `app.cds: off` (the fat jar as shipped) and `auto` (extracted, then
//! from the class-data archive `health` dumped from the new JVM before the switch), JVM
//! defaults with `-Xmx384m` as in production. A boot is the `start` hook (launch; with `auto` the first one
//! extracts) plus the `health` hook (until readiness is UP; less the dump it then waited for,
//! given apart), or a `deploy-second` onto the stopped standby slot (the same release launched
//! again, then health). Also the archive's dump time and the disk each release takes.

use crate::common::{App, Env};
use std::path::PathBuf;
use std::time::Duration;

const LATER: usize = 3;

/// The apps the rows measure, as their labels name them (the small example's labels are the
/// ones BENCHMARKS.md's earlier facts use).
const APPS: [(App, &str); 2] = [
    (App::Spring, "Spring Boot example"),
    (
        App::SpringLarge,
        "PetClinic-sized Spring app (web, JPA, Thymeleaf)",
    ),
];

struct Run {
    first: f64,
    later: Vec<f64>,
    dump_ms: Option<u64>,
    disk: u64,
    archive: Option<u64>,
}

fn du(p: &std::path::Path) -> u64 {
    let Ok(m) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if !m.is_dir() {
        return m.len();
    }
    std::fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| du(&e.path()))
        .sum()
}

/// `n` slots of `app` (balanced or not) with `-Xmx384m` and `app.cds: cds`, v1 staged.
fn world(app: App, n: usize, balanced: bool, cds: &str) -> Env {
    let mut env = Env::with_app(n, app, balanced);
    env.java_opts = vec!["-Xmx384m".into()];
    env.write_config();
    env.edit_config(
        "  workdir: ../work\n",
        &format!("  workdir: ../work\n  cds: {cds}\n"),
    );
    env.stage_jar("v1");
    env
}

/// The first deploy's hooks, `stop` to `switch`: the first boot (`start` + `health`).
fn first_deploy(env: &Env) -> Result<f64, String> {
    let mut first = 0.0;
    for b in ["stop", "start", "health", "switch"] {
        let r = env.hook(b, &[]);
        if r.code != 0 {
            return Err(format!("{b}: {}", r.last_line()));
        }
        if b == "start" || b == "health" {
            first += r.took.as_secs_f64();
        }
    }
    Ok(first)
}

fn one(app: App, cds: &str) -> Result<Run, String> {
    let env = world(app, 2, false, cds);
    let first = first_deploy(&env)?;
    let pf = env.pid_of("green").ok_or("no pid file")?;
    let rel: PathBuf = pf.jar.parent().ok_or("no release")?.to_path_buf();
    let archive = rel.join("cds/app.jsa");
    if cds == "auto"
        && !crate::common::wait_until(Duration::from_secs(120), || {
            archive.is_file() && !rel.join("cds/dumping.json").exists()
        })
    {
        return Err("no archive after 120 s".into());
    }
    let mut later = vec![];
    for _ in 0..LATER {
        let r = env.hook("deploy-second", &[]);
        if r.code != 0 {
            return Err(format!("deploy-second: {}", r.last_line()));
        }
        later.push(r.took.as_secs_f64());
        let r = env.hook("stop", &["--slot", "blue"]);
        if r.code != 0 {
            return Err(format!("stop: {}", r.last_line()));
        }
    }
    let dump_ms = dump_ms(&rel);
    Ok(Run {
        first: first - dump_ms.unwrap_or(0) as f64 / 1000.0,
        later,
        dump_ms,
        disk: du(&rel),
        archive: std::fs::metadata(&archive).ok().map(|m| m.len()),
    })
}

/// The time the dumper took for the archive of release folder `rel`, as it recorded.
fn dump_ms(rel: &std::path::Path) -> Option<u64> {
    std::fs::read(rel.join("cds/archive.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["dump_ms"].as_u64())
}

/// A 3-slot balanced roll of one release: the first slot's boot (`start` + `health`, less
/// the dump `health` waited for with `auto`), then `deploy-second` rolling the other two;
/// and the dump's time.
fn roll(app: App, cds: &str) -> Result<(f64, f64, f64), String> {
    let env = world(app, 3, true, cds);
    let first = first_deploy(&env)?;
    let r = env.hook("deploy-second", &[]);
    if r.code != 0 {
        return Err(format!("deploy-second: {}", r.last_line()));
    }
    let rel = env
        .pid_of("blue")
        .and_then(|pf| pf.jar.parent().map(PathBuf::from))
        .ok_or("no release")?;
    let dump = dump_ms(&rel).unwrap_or(0) as f64 / 1000.0;
    Ok((first - dump, r.took.as_secs_f64(), dump))
}

/// The rows (label, value) for BENCHMARKS.md's facts: every app's in turn.
pub fn rows() -> Vec<(String, String)> {
    APPS.iter()
        .flat_map(|&(app, name)| app_rows(app, name))
        .collect()
}

/// One app's rows, `name` in their labels.
fn app_rows(app: App, name: &str) -> Vec<(String, String)> {
    let mb = |n: u64| format!("{:.1} MB", n as f64 / 1e6);
    let s = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = vec![];
    let mut off_first = None;
    for cds in ["off", "auto"] {
        let label = format!(
            "app.cds: {cds}, {name}, -Xmx384m: first boot; {LATER} later boots of the same release"
        );
        match one(app, cds) {
            Ok(r) => {
                let mean = r.later.iter().sum::<f64>() / r.later.len().max(1) as f64;
                let base: f64 = *off_first.get_or_insert(r.first);
                out.push((
                    label,
                    format!(
                        "first {:.2} s; later {} s (mean {mean:.2} s, {:.0} % of the fat jar's first boot){}; release folder {}{}",
                        r.first,
                        s(&r.later),
                        100.0 * mean / base,
                        r.dump_ms
                            .map_or(String::new(), |d| format!("; dump {:.2} s in health, before the switch (not in the first boot)", d as f64 / 1000.0)),
                        mb(r.disk),
                        r.archive
                            .map_or(String::new(), |a| format!(" (archive {})", mb(a))),
                    ),
                ))
            }
            Err(e) => out.push((label, format!("FAILED: {e}"))),
        }
    }
    // In fat-jar first boots: the first slot's boot in the `off` roll.
    let mut jar_first = None;
    for cds in ["off", "auto"] {
        let label = format!("app.cds: {cds}, 3-slot balanced roll of the {name}: the first slot's boot; deploy-second of the other two");
        out.push((
            label,
            match roll(app, cds) {
                Ok((first, rest, dump)) => {
                    let base: f64 = *jar_first.get_or_insert(first);
                    format!(
                    "first {first:.2} s; the other two {rest:.2} s ({:.2} fat-jar first boots each); the roll's boots {:.2} fat-jar first boots (target 1 + 2 × 0.55 = 2.10){}",
                    rest / 2.0 / base,
                    (first + rest) / base,
                    if dump > 0.0 {
                        format!("; the dump in the first slot's health, before the switch: {dump:.2} s more")
                    } else {
                        String::new()
                    }
                )
                }
                Err(e) => format!("FAILED: {e}"),
            },
        ));
    }
    out
}

//! Names the commit in `--version` (`nonstop 0.1.0 (commit 1a2b3c4)`): `$NONSTOP_COMMIT` when
//! set, else `git rev-parse --short HEAD` when git and the repository are there, else
//! `unknown` (a source tarball, a machine without git). Never fails the build.
use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!s.is_empty()).then_some(s)
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=NONSTOP_COMMIT");
    let commit = std::env::var("NONSTOP_COMMIT")
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| git(&["rev-parse", "--short", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // Run again when HEAD moves: HEAD itself, the branch it names, packed refs. Only files that
    // exist: a missing one would make cargo run this (and rebuild the crate) every time.
    let branch = git(&["rev-parse", "--symbolic-full-name", "HEAD"]);
    let mut watch = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(b) = branch.filter(|b| b.starts_with("refs/")) {
        watch.push(git(&["rev-parse", "--git-path", &b]));
    }
    watch.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for p in watch.into_iter().flatten() {
        if Path::new(&p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    println!("cargo:rustc-env=NONSTOP_COMMIT={commit}");
}

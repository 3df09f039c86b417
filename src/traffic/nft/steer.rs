//! `nonstop steer`, the root helper a hook user reaches through one exact sudo line: what it
//! may be asked for (only the slots' ports setup fixed), and applying it from the registry's
//! values; and the hook user's side, asking it and confirming the table says it.

use super::rules::{comment, front, parse_comment, parse_listing, render_for, targets, Steering};
use super::run::{list_table, nft, root, sudo_steer, unlisted, want_path};
use crate::config::Config;
use crate::error::{failed, Context, Result};
use crate::fsx;
use crate::nginx::Member;
use crate::traffic::Via;
use std::time::{Duration, Instant};

/// Ask the root helper for `want` and confirm the table says it.
pub(super) fn apply_through_helper(
    read: impl Fn(&Config) -> std::result::Result<Steering, crate::traffic::Doubt>,
    cfg: &Config,
    e: &crate::registry::Entry,
    want: &Steering,
    t0: Instant,
) -> Result<Duration> {
    fsx::create_dirs(&cfg.state_dir)
        .context(format!("cannot create {}", cfg.state_dir.display()))?;
    fsx::write_atomic(
        &want_path(&cfg.state_dir),
        format!("{}\n", comment(want)).as_bytes(),
        0o644,
    )?;
    if root() {
        steer(&e.app, false)?;
    } else {
        sudo_steer(e, &[])?;
    }
    match read(cfg) {
        Ok(now) if now == *want => {}
        other => {
            return Err(failed(format!(
                "table ip {} is not what was asked for ({})",
                e.table,
                match other {
                    Ok(now) => comment(&now),
                    Err(d) => format!("{d:?}"),
                }
            )))
        }
    }
    log::info!(
        "table ip {}: new connections to 127.0.0.1:{} now go to {} ({} through nonstop steer; nginx not reloaded)",
        e.table,
        front(cfg),
        targets(cfg, want)
            .iter()
            .map(|(p, w)| format!("{p} (weight {w})"))
            .collect::<Vec<_>>()
            .join(", "),
        crate::log::human(t0.elapsed())
    );
    Ok(t0.elapsed())
}

/// Check what the hook user asked for against the registry: only the slots' ports setup
/// fixed, each once, weights at most 1000.
pub fn check_steering(e: &crate::registry::Entry, s: &Steering) -> Result<()> {
    let ok = |p: &u16| e.slots.iter().any(|x| x.port == *p);
    if let Some(p) = s.live.filter(|p| !ok(p)) {
        return Err(failed(format!(
            "live port {p} is not a slot port of app {} (setup fixed {:?})",
            e.app,
            e.slots.iter().map(|x| x.port).collect::<Vec<_>>()
        )));
    }
    for (i, (p, m)) in s.rotation.iter().enumerate() {
        if !ok(p) || s.rotation[..i].iter().any(|(q, _)| q == p) {
            return Err(failed(format!(
                "rotation names port {p}: not a slot port of app {}, or twice",
                e.app
            )));
        }
        if matches!(m, Member::Up(w) if *w > 1000) {
            return Err(failed(format!("weight of port {p} above 1000")));
        }
    }
    Ok(())
}

/// `nonstop steer --app APP [--show | --boot]` (root; the hook user reaches it through one exact
/// sudo line each): read `state_dir/steer.want`, check it against the registry
/// ([`check_steering`]), and apply the app's table in one checked and confirmed transaction
/// built from the registry's table name and front port. `--show` prints the table (nothing when
/// it is not loaded); `--boot` (the boot unit) does nothing when nothing was ever asked.
pub fn steer(app: &str, show: bool) -> Result<()> {
    if !root() {
        return Err(failed(
            "nonstop steer changes nftables rules: it runs as root (sudo -n)",
        ));
    }
    let e = crate::registry::read(std::path::Path::new(crate::registry::DIR), app)?
        .ok_or_else(|| failed(format!("app {app} is not set up on this host")))?;
    let front = match (e.traffic, e.front_port) {
        (Via::Nftables, Some(p)) => p,
        _ => {
            return Err(failed(format!(
                "app {app} is not set up for nftables steering"
            )))
        }
    };
    if show {
        if let Some(t) = list_table(&e.table).map_err(unlisted)? {
            crate::out::out_raw(t.as_bytes());
        }
        return Ok(());
    }
    let path = want_path(&e.state_dir);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            log::info!("{} does not exist: nothing to steer yet", path.display());
            return Ok(());
        }
        Err(err) => return Err(failed(format!("cannot read {}: {err}", path.display()))),
    };
    if !meta.is_file() || meta.len() > 4096 {
        return Err(failed(format!(
            "{} is not a small regular file",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(&path).context(format!("cannot read {}", path.display()))?;
    let want = parse_comment(text.trim())
        .ok_or_else(|| failed(format!("{} does not say a steering", path.display())))?;
    check_steering(&e, &want)?;
    let ruleset = render_for(&e.app, &e.table, front, e.balanced, &want);
    let dir = std::path::Path::new("/run/nonstop");
    fsx::create_dirs(dir).context("cannot create /run/nonstop")?;
    let file = dir.join(format!("{app}.nft"));
    fsx::write_atomic(&file, ruleset.as_bytes(), 0o600)?;
    let f = file.to_string_lossy().into_owned();
    nft(&["-c", "-f", &f]).map_err(|err| {
        failed(format!(
            "the kernel would not take the new table: {err}; nothing changed"
        ))
    })?;
    nft(&["-f", &f])?;
    let now = list_table(&e.table).map_err(unlisted)?.ok_or_else(|| {
        failed(format!(
            "table ip {} missing right after it was applied",
            e.table
        ))
    })?;
    match parse_listing(&now, front, e.balanced) {
        Ok(s) if s == want => Ok(()),
        other => Err(failed(format!(
            "table ip {} is not what was applied: {other:?}",
            e.table
        ))),
    }
}

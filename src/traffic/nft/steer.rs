//! `nonstop steer`, the root helper a hook user reaches through one exact sudo line: what it
//! may be asked for (only the slots' ports setup fixed), and applying it from the registry's
//! values, confirmed by the kernel; the hook user's side, asking it; and what the steering
//! unit loads (the recorded steering).

use super::rules::{
    comment, echoed_for, front, parse_comment, parse_listing, render_for, rule_for, steering_in,
    targets, Steering,
};
use super::run::{list_table, nft_commit, root, sudo_steer, unlisted, want_path};
use crate::config::Config;
use crate::error::{failed, Context, Result};
use crate::fsx;
use crate::nginx::Member;
use crate::traffic::Via;
use std::time::{Duration, Instant};

/// Ask the root helper for `want`; it exits 0 only once the kernel confirmed the table.
pub(super) fn apply_through_helper(
    cfg: &Config,
    e: &crate::registry::Entry,
    want: &Steering,
    t0: Instant,
) -> Result<Duration> {
    fsx::create_dirs(&cfg.state_dir)
        .context(format!("cannot create {}", cfg.state_dir.display()))?;
    fsx::write_atomic_record(
        &want_path(&cfg.state_dir),
        format!("{}\n", comment(want)).as_bytes(),
        0o644,
    )?;
    // `steer` exits 0 only when the kernel confirmed the table asked for (its echo of the
    // committed batch, or a listing compared whole): no second listing through sudo.
    if root() {
        steer(&e.app, false)?;
    } else {
        sudo_steer(e, &[])?;
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
/// it is not loaded); `--boot` (the steering unit) does nothing when nothing was ever asked.
pub fn steer(app: &str, show: bool) -> Result<()> {
    let (e, front) = steered_entry(app)?;
    if show {
        if let Some(t) = list_table(&e.table).map_err(unlisted)? {
            crate::out::out_raw(t.as_bytes());
        }
        return Ok(());
    }
    match recorded(&e)? {
        None => {
            log::info!(
                "{} does not exist: nothing to steer yet",
                want_path(&e.state_dir).display()
            );
            Ok(())
        }
        Some(want) => apply_entry(&e, front, &want),
    }
}

/// The registry entry of `app` set up for nftables steering, with its front port (root only).
pub(crate) fn steered_entry(app: &str) -> Result<(crate::registry::Entry, u16)> {
    if !root() {
        return Err(failed(
            "nonstop steer changes nftables rules: it runs as root (sudo -n)",
        ));
    }
    let e = crate::registry::read(std::path::Path::new(crate::registry::DIR), app)?
        .ok_or_else(|| failed(format!("app {app} is not set up on this host")))?;
    match (e.traffic, e.front_port) {
        (Via::Nftables, Some(p)) => Ok((e, p)),
        _ => Err(failed(format!(
            "app {app} is not set up for nftables steering"
        ))),
    }
}

/// The steering last asked for (`state_dir/steer.want`), checked against the registry; for an
/// app whose hooks run as root and that an older nonstop switched, the comment of the ruleset
/// it kept for boot (`state_dir/traffic.nft`, root's own, checked the same way: see
/// [`kept_by_root`]). `None`: nothing was ever asked.
pub(crate) fn recorded(e: &crate::registry::Entry) -> Result<Option<Steering>> {
    let path = want_path(&e.state_dir);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            if e.hook_user != "root" {
                return Ok(None);
            }
            // Root's own record, checked against the registry as a request would be.
            return Ok(kept_by_root(e));
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
    check_steering(e, &want)?;
    Ok(Some(want))
}

/// The steering in an older nonstop's kept ruleset (`state_dir/traffic.nft`): the comment of
/// its table, from a regular file root wrote (its hooks ran as root), checked against `e`.
fn kept_by_root(e: &crate::registry::Entry) -> Option<Steering> {
    use std::os::unix::fs::MetadataExt;
    let kept = e.state_dir.join("traffic.nft");
    let m = std::fs::symlink_metadata(&kept).ok()?;
    if !m.is_file() || m.uid() != 0 || m.len() > 65536 {
        return None;
    }
    let text = std::fs::read_to_string(&kept).ok()?;
    let want = steering_in(&text)?;
    check_steering(e, &want).ok()?;
    Some(want)
}

/// Setup's part (as root) on a host an older nonstop switched as root, now set up for another
/// hook user: that user's runs ask through `steer.want`, which does not exist yet, so the
/// steering unit would load nothing at boot or after a ruleset flush until their first switch.
/// Writes `steer.want` (owned by `uid`:`gid`) from the ruleset the older nonstop kept for boot.
/// Returns what it did, or `None` when there was nothing to do.
pub fn seed_want(e: &crate::registry::Entry, uid: u32, gid: u32) -> Result<Option<String>> {
    let path = want_path(&e.state_dir);
    if e.traffic != Via::Nftables || e.hook_user == "root" || path.symlink_metadata().is_ok() {
        return Ok(None);
    }
    let Some(want) = kept_by_root(e) else {
        return Ok(None);
    };
    fsx::write_atomic_owned(
        &path,
        format!("{}\n", comment(&want)).as_bytes(),
        0o644,
        Some((uid, gid)),
    )?;
    Ok(Some(format!(
        "wrote {} ({}, from {}, which an older nonstop kept for boot)",
        path.display(),
        comment(&want),
        e.state_dir.join("traffic.nft").display()
    )))
}

/// Apply `want` as `e`'s table (root): checked by the kernel, applied in one transaction,
/// listed back and compared whole.
pub(crate) fn apply_entry(e: &crate::registry::Entry, front: u16, want: &Steering) -> Result<()> {
    check_steering(e, want)?;
    let ruleset = render_for(&e.app, &e.table, front, e.balanced, want);
    let dir = std::path::Path::new("/run/nonstop");
    fsx::create_dirs(dir).context("cannot create /run/nonstop")?;
    let file = dir.join(format!("{}.nft", e.app));
    fsx::write_atomic_record(&file, ruleset.as_bytes(), 0o600)?;
    let f = file.to_string_lossy().into_owned();
    // One transaction, all of it or none (as `Nft::apply`); the kernel's echo confirms it,
    // else (no echo that matches, or a failure) the table is listed.
    let ran = nft_commit(&f);
    if let Ok(echo) = &ran {
        if echoed_for(&e.table, rule_for(front, e.balanced, want), echo) {
            return Ok(());
        }
    }
    let listed = list_table(&e.table).map_err(unlisted)?;
    let now = match (ran, listed) {
        (Err(err), None) => {
            return Err(failed(format!(
                "{err}; read back from the kernel: there is no table"
            )))
        }
        (Err(err), Some(t)) if parse_listing(&t, front, e.balanced).ok().as_ref() != Some(want) => {
            return Err(failed(format!(
                "{err}; read back from the kernel: the table is not the one asked for"
            )))
        }
        (_, listed) => listed,
    };
    let now = now.ok_or_else(|| {
        failed(format!(
            "table ip {} missing right after it was applied",
            e.table
        ))
    })?;
    match parse_listing(&now, front, e.balanced) {
        Ok(s) if s == *want => Ok(()),
        other => Err(failed(format!(
            "table ip {} is not what was applied: {other:?}",
            e.table
        ))),
    }
}

//! The units nonstop writes (`# Managed by nonstop` on their first line): the app's template
//! unit `nonstop-<app>@.service` and the steering unit, rendered and installed by setup (as
//! root); the names of a slot's unit, an older nonstop's per-slot unit included.

use super::ctl::{root, show, systemctl};
use super::env::{env_file, MARKER};
use crate::config::{Config, Slot};
use crate::error::{failed, Context, Result};
use crate::error::{Error, Refusal};
use crate::fsx;
use std::path::{Path, PathBuf};

/// Where generated units go.
pub const UNIT_DIR: &str = "/etc/systemd/system";

/// `nonstop-<app>@<slot>.service`: `@` cannot occur in an app name, so two apps never share
/// a unit (see [`crate::registry`]).
pub fn unit_name(cfg: &Config, slot: &Slot) -> String {
    crate::registry::unit(&cfg.app.name, &slot.name)
}

/// The unit an older nonstop wrote for the slot, `nonstop-<app>-<slot>.service`, when it is
/// there and its marker line names this app and slot (another app's unit may have that name:
/// app `shop` slot `api-blue` and app `shop-api` slot `blue`).
pub fn legacy_unit(cfg: &Config, slot: &Slot) -> Option<String> {
    let name = format!("nonstop-{}-{}.service", cfg.app.name, slot.name);
    let text = std::fs::read_to_string(PathBuf::from(UNIT_DIR).join(&name)).ok()?;
    let first = text.lines().next()?;
    let ours = first.starts_with(&format!("{MARKER}: slot {} (port ", slot.name))
        && first.contains(&format!(") of {}, release ", cfg.app.name));
    ours.then_some(name)
}

/// The unit that runs the slot now: an older nonstop's unit while it is still active (it is
/// stopped by its own name, and the slot's next start uses the new one), else
/// [`unit_name`].
pub(super) fn unit_of(cfg: &Config, slot: &Slot) -> String {
    if let Some(old) = legacy_unit(cfg, slot) {
        let state = show(&old).get("ActiveState").cloned().unwrap_or_default();
        if matches!(
            state.as_str(),
            "active" | "activating" | "reloading" | "deactivating"
        ) {
            return old;
        }
    }
    unit_name(cfg, slot)
}

/// True if unit `name` (or, for an instance `a@b.service`, its template `a@.service`) exists
/// and carries nonstop's marker.
pub(super) fn ours(name: &str) -> bool {
    std::fs::read(PathBuf::from(UNIT_DIR).join(unit_file(Path::new(UNIT_DIR), name)))
        .is_ok_and(|b| b.starts_with(MARKER.as_bytes()))
}

/// The file in `dir` that defines unit `name`: its own, or for an instance `a@b.service` without
/// one, its template `a@.service`.
fn unit_file(dir: &Path, name: &str) -> String {
    match name.split_once('@') {
        Some((head, _)) if !dir.join(name).exists() => format!("{head}@.service"),
        _ => name.to_string(),
    }
}

/// One argument of `ExecStart=` (or value of `Environment=`), quoted for systemd: `"…"` with
/// `\` and `"` escaped, `%` doubled (specifiers) and `$` doubled (variable expansion).
pub(super) fn quote(arg: &str) -> Result<String> {
    if arg.chars().any(|c| c.is_control()) {
        return Err(failed(format!(
            "{arg:?} holds a control character: it cannot go into a systemd unit"
        )));
    }
    let mut q = String::from("\"");
    for c in arg.chars() {
        match c {
            '\\' => q.push_str("\\\\"),
            '"' => q.push_str("\\\""),
            '%' => q.push_str("%%"),
            '$' => q.push_str("$$"),
            c => q.push(c),
        }
    }
    q.push('"');
    Ok(q)
}

/// The template unit of `e`'s slots, `nonstop-<app>@.service`, written by setup: the JVM runs
/// as the user setup fixed, started by the root-owned nonstop in its `run-slot` mode (which
/// checks the slot's launch file against the registry and execs java, so the unit's main
/// process is the JVM). A deploy never writes a unit: it writes the launch file, then starts
/// `nonstop-<app>@<slot>.service`.
pub fn render_template(cfg: &Config, e: &crate::registry::Entry) -> Result<String> {
    let mut user = format!("User={}\n", e.app_user);
    if let Some(g) = &e.app_group {
        user += &format!("Group={g}\n");
    }
    // app.env (secrets, often) is never in the unit, which every user may read, nor in the
    // launch file the deploy user writes: setup keeps it root-only and systemd reads it.
    if e.env_sha256.is_some() {
        user += &format!(
            "EnvironmentFile={}\n",
            env_file(Path::new(crate::registry::DIR), &e.app).display()
        );
    }
    Ok(format!(
        "{MARKER}: the slots of app {app} (instance = slot), written by `sudo nonstop setup`.\n\
         # A slot runs the release its last `start` chose (checked by `nonstop run-slot`).\n\
         [Unit]\n\
         Description=nonstop {app} slot %i\n\
         After=network.target\n\
         StartLimitIntervalSec=60\n\
         StartLimitBurst=3\n\n\
         [Service]\n\
         Type=exec\n\
         {user}ExecStart={bin} run-slot --app {app} --slot %i\n\
         KillSignal=SIGTERM\n\
         TimeoutStopSec={grace}\n\
         SuccessExitStatus=143\n\
         Restart=on-failure\n\
         RestartSec=500ms\n\
         SyslogIdentifier=nonstop-{app}@%i\n\n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        app = e.app,
        bin = quote(&e.nonstop.to_string_lossy())?,
        grace = cfg.stop.grace.as_millis().div_ceil(1000).max(1),
    ))
}

/// Write `text` as unit `name` (as root), unless it already holds it; refuses a unit nonstop
/// did not write. Returns whether the file changed.
pub(super) fn write_unit(name: &str, text: &str) -> Result<bool> {
    let path = PathBuf::from(UNIT_DIR).join(name);
    match fsx::read_original(&path)? {
        Some(o) if o.bytes == text.as_bytes() => return Ok(false),
        Some(o) if !o.bytes.starts_with(MARKER.as_bytes()) => {
            return Err(Error::refused(
                Refusal::NotOurs { path: path.clone() },
                format!(
            "{} exists and was not written by nonstop (no `{MARKER}` line): refusing to replace it",
            path.display()
        ),
            ))
        }
        _ => {}
    }
    if !root() {
        return Err(failed(format!(
            "{} needs root: run `sudo nonstop setup --user USER` once",
            path.display()
        )));
    }
    fsx::write_atomic(&path, text.as_bytes(), 0o644)?;
    Ok(true)
}

/// What makes a steering unit follow the firewall's own unit: Debian's `nftables.service` runs
/// `nft -f /etc/nftables.conf`, which begins with `flush ruleset`, on start, restart and reload,
/// removing nonstop's table with every other. `PartOf=` restarts this unit with it (after it:
/// `After=`), `ReloadPropagatedFrom=` reloads it with it; either loads the table again.
pub(super) const FOLLOW_NFTABLES: &str =
    "PartOf=nftables.service\nReloadPropagatedFrom=nftables.service\n";

/// Setup's part (as root): the template unit for `e`, and an older nonstop's per-slot units
/// that no longer run retired (disabled, removed). Returns what changed, one line each.
pub fn install_units(cfg: &Config, e: &crate::registry::Entry) -> Result<Vec<String>> {
    let mut changed = vec![];
    let text = render_template(cfg, e)?;
    if write_unit(&e.template_unit, &text)? {
        changed.push(format!("installed {UNIT_DIR}/{}", e.template_unit));
    }
    if e.traffic == crate::traffic::Via::Nftables {
        changed.extend(install_steering_unit(e)?);
    }
    for s in &cfg.slots {
        let Some(old) = legacy_unit(cfg, s) else {
            continue;
        };
        if unit_of(cfg, s) == old {
            changed.push(format!(
                "kept {old} (an older nonstop's unit) while it runs slot {}: the slot's next start uses {}; run setup again after that to remove it",
                s.name,
                unit_name(cfg, s)
            ));
            continue;
        }
        let _ = systemctl(&["disable", "--quiet", &old]);
        let path = PathBuf::from(UNIT_DIR).join(&old);
        std::fs::remove_file(&path).context(format!("cannot remove {}", path.display()))?;
        changed.push(format!(
            "removed {} (an older nonstop's unit for slot {}, not running)",
            path.display(),
            s.name
        ));
    }
    if !changed.is_empty() {
        systemctl(&["daemon-reload"])?;
    }
    Ok(changed)
}

/// `nonstop-<app>-traffic.service`: the app's steering. Before nginx at boot it loads the
/// table (`steer --boot`, from the recorded steering); then it stays, watching the ruleset
/// (`steer --watch`, see [`crate::traffic::watcher`]), and loads the table again whenever it
/// disappears, whatever flushed it (nftables.service, firewalld, ufw, `nft flush ruleset`).
/// Not `PartOf=nftables.service`: stopping the firewall must not stop the steering (its stop
/// flushes the ruleset too). A unit that changed, or does not run, is (re)started.
pub fn install_steering_unit(e: &crate::registry::Entry) -> Result<Vec<String>> {
    let mut changed = vec![];
    let unit = steering_unit(&e.app);
    let text = format!(
        "{MARKER}: steering of app {app}, written by `sudo nonstop setup`.\n\
         # Loads the table before nginx at boot, then loads it again whenever it disappears.\n\
         [Unit]\n\
         Description=nonstop {app}: steering (at boot, and again after a ruleset flush)\n\
         DefaultDependencies=no\n\
         After=local-fs.target nftables.service\n\
         Before=nginx.service network-pre.target shutdown.target\n\
         Wants=network-pre.target\n\
         Conflicts=shutdown.target\n\
         StartLimitIntervalSec=0\n\n\
         [Service]\n\
         Type=exec\n\
         ExecStartPre=-{bin} steer --app {app} --boot\n\
         ExecStart={bin} steer --app {app} --watch\n\
         ExecReload={bin} steer --app {app} --boot\n\
         Restart=always\n\
         RestartSec=1s\n\n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        app = e.app,
        bin = quote(&e.nonstop.to_string_lossy())?,
    );
    let written = write_unit(&unit, &text)?;
    if written {
        changed.push(format!("installed {UNIT_DIR}/{unit}"));
        systemctl(&["daemon-reload"])?;
    }
    if show(&unit)
        .get("UnitFileState")
        .is_none_or(|v| v != "enabled")
    {
        systemctl(&["enable", "--quiet", &unit])?;
        changed.push(format!(
            "enabled {unit} (the table at boot, before nginx, and again after a ruleset flush)"
        ));
    }
    let active = show(&unit)
        .get("ActiveState")
        .is_some_and(|v| v == "active");
    if written || !active {
        // The watch starts with the table loaded from the record: no gap in the steering.
        systemctl(&["restart", &unit])?;
        changed.push(format!("started {unit} (watching the ruleset)"));
    }
    Ok(changed)
}

/// `nonstop-<app>-traffic.service`
pub fn steering_unit(app: &str) -> String {
    format!("nonstop-{app}-traffic.service")
}

/// As root, what `systemctl enable|disable --quiet --no-reload UNIT` does for nonstop's units
/// (`WantedBy=multi-user.target`), without spawning systemctl (25–100 ms each on a small
/// host, on every switch): the link `multi-user.target.wants/UNIT` in `dir` to the unit's file
/// (a template instance's: its template's), made under a temporary name and renamed into
/// place, or removed. A non-link at that path is left alone and refused.
pub(super) fn set_at_boot(dir: &Path, unit: &str, want: bool) -> Result<()> {
    let wants = dir.join("multi-user.target.wants");
    let link = wants.join(unit);
    let is_link = std::fs::symlink_metadata(&link).map(|m| m.file_type().is_symlink());
    match (want, is_link) {
        (_, Ok(false)) => Err(failed(format!(
            "{} is not a link: left alone",
            link.display()
        ))),
        (false, Ok(true)) => {
            std::fs::remove_file(&link).context(format!("cannot remove {}", link.display()))
        }
        (false, Err(_)) => Ok(()),
        (true, _) => {
            let file = unit_file(dir, unit);
            std::fs::create_dir_all(&wants)
                .context(format!("cannot create {}", wants.display()))?;
            let tmp = wants.join(format!(".{unit}.nonstop-{}", std::process::id()));
            let _ = std::fs::remove_file(&tmp);
            std::os::unix::fs::symlink(dir.join(file), &tmp)
                .context(format!("cannot create {}", tmp.display()))?;
            std::fs::rename(&tmp, &link).context(format!("cannot create {}", link.display()))
        }
    }
}

/// True when `unit` starts at boot: the link `enable` makes for `WantedBy=multi-user.target`,
/// read from the disk (the manager's `UnitFileState` is cached until its next reload, which
/// `enable --no-reload` does not make).
pub(super) fn enabled_at_boot(unit: &str) -> bool {
    Path::new(UNIT_DIR)
        .join("multi-user.target.wants")
        .join(unit)
        .symlink_metadata()
        .is_ok()
}

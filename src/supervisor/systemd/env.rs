//! The app's `app.env`, kept out of the unit and the launch file: setup writes it root-only as
//! the units' `EnvironmentFile=`, and the registry keeps its digest. Also the marker line every
//! file nonstop writes for systemd begins with.

use crate::error::{failed, Context, Result};
use crate::fsx;
use std::path::{Path, PathBuf};

/// The first line of every unit nonstop writes: the proof that it may rewrite or remove it.
pub const MARKER: &str = "# Managed by nonstop";

/// The `EnvironmentFile=` of an app's slot units: `app.env` as `KEY="VALUE"` lines. The values are
/// often secrets, so they are not in the unit (mode 0644, readable by every user) but in this
/// file, mode 0600 and owned by root, which systemd reads as root before it drops to `User=`.
/// Inside double quotes systemd's parser (systemd.exec(5), `EnvironmentFile=`) turns `\"`,
/// `\\`, `` \` `` and `\$` into the character itself and expands no variables and no `%`
/// specifiers: every value reaches the JVM byte for byte (`pa$$w0rd$1` stays that). A control
/// character is refused, as in the unit.
pub fn render_env_file(app: &str, env: &[(String, String)]) -> Result<String> {
    let mut text = format!(
        "{MARKER}: app.env of app {app}, read by systemd as root when a slot's unit starts.\n\
         # Written by `sudo nonstop setup` (mode 0600, owner root); edit nonstop.yml and run it again.\n"
    );
    for (k, v) in env {
        if v.chars().any(|c| c.is_control()) {
            return Err(failed(format!(
                "app.env {k} holds a control character: it cannot go into a systemd environment file"
            )));
        }
        let mut q = String::new();
        for c in v.chars() {
            if matches!(c, '"' | '\\' | '`' | '$') {
                q.push('\\');
            }
            q.push(c);
        }
        text += &format!("{k}=\"{q}\"\n");
    }
    Ok(text)
}

/// Where setup keeps an app's `app.env`: `/etc/nonstop/apps/<app>.env`, mode 0600, owner root
/// (beside the registry entry; the hook user cannot read it, systemd reads it as root).
pub fn env_file(dir: &Path, app: &str) -> PathBuf {
    dir.join(format!("{app}.env"))
}

/// The digest of what the env file holds, kept in the registry entry (which the hook user can
/// read) so that a deploy can tell whether its config's `app.env` is what setup installed.
pub fn env_digest(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Setup's part (as root): write `text` as the app's env file, atomically (a planted symlink is
/// replaced, never written through), mode 0600; or remove it when `app.env` is empty. Returns
/// whether it changed.
pub fn write_env_file(path: &Path, text: Option<&str>) -> Result<bool> {
    let now = fsx::read_original(path)?;
    match text {
        None if now.is_none() => Ok(false),
        None => {
            std::fs::remove_file(path).context(format!("cannot remove {}", path.display()))?;
            Ok(true)
        }
        Some(t) if now.as_ref().is_some_and(|o| o.bytes == t.as_bytes()) => Ok(false),
        Some(t) => {
            fsx::write_atomic(path, t.as_bytes(), 0o600)?;
            Ok(true)
        }
    }
}

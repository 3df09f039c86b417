//! `traffic.via: nginx-reload`: the include and (balanced) the upstream file are the truth; a
//! change rewrites them in one [`nginx::apply`] transaction (write, test, reload, confirm,
//! restore on failure). nginx must have loaded them: a file newer than nginx's newest worker is
//! a [`Doubt::NotLoaded`].

use super::{Doubt, Traffic, Via};
use crate::config::Config;
use crate::error::{failed, Result};
use crate::nginx::{self, Change, Rotation};
use std::path::Path;
use std::time::Duration;

/// See the module doc.
pub struct Reload;

/// The include's port, or the doubt that keeps nonstop from knowing it.
fn read_include(path: &Path, variable: &str) -> std::result::Result<Option<u16>, Doubt> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Doubt::IncludeMissing),
        Err(e) => return Err(Doubt::IncludeUnreadable(e.to_string())),
    };
    match nginx::parse_include(&text, variable) {
        Ok(Some(p)) => Ok(Some(p)),
        Ok(None) => Err(Doubt::NoSet),
        Err(e) => Err(Doubt::IncludeUnreadable(e)),
    }
}

/// The nginx changes for `rot`, and for the include when `include_port` is given.
pub fn changes(cfg: &Config, rot: &Rotation, include_port: Option<u16>) -> Vec<Change> {
    let mut out = vec![];
    if let Some(up) = &cfg.nginx.upstream_file {
        out.push(Change {
            path: up.clone(),
            bytes: nginx::render_upstream(cfg, rot).into_bytes(),
        });
    }
    if let Some(port) = include_port {
        out.push(Change {
            path: cfg.nginx.include.clone(),
            bytes: nginx::render_include(cfg, port).into_bytes(),
        });
    }
    out
}

impl Traffic for Reload {
    fn via(&self) -> Via {
        Via::NginxReload
    }

    fn live(&self, cfg: &Config) -> std::result::Result<Option<u16>, Doubt> {
        let port = read_include(&cfg.nginx.include, &cfg.nginx.variable)?;
        let mut files: Vec<&Path> = vec![&cfg.nginx.include];
        if let Some(up) = &cfg.nginx.upstream_file {
            files.push(up);
        }
        match nginx::not_loaded(cfg, &files).into_iter().next() {
            Some((p, _)) => Err(Doubt::NotLoaded(p)),
            None => Ok(port),
        }
    }

    fn rotation(&self, cfg: &Config) -> Result<Rotation> {
        // Only a blue/green rotation (no upstream file) comes from the include; an include
        // that cannot be read is the caller's doubt (slots::roles), not a reason to fail here.
        let include_port = nginx::read_include_port(cfg).ok().flatten();
        let from_file = match &cfg.nginx.upstream_file {
            Some(path) => match std::fs::read_to_string(path) {
                Ok(text) => Some(
                    nginx::parse_upstream(&text)
                        .map_err(|e| failed(format!("{}: {e}", path.display())))?,
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => return Err(failed(format!("cannot read {}: {e}", path.display()))),
            },
            None => None,
        };
        if let (Some(entries), Some(path)) = (&from_file, &cfg.nginx.upstream_file) {
            if let Some((port, _)) = entries
                .iter()
                .find(|(p, _)| !cfg.slots.iter().any(|s| s.port == *p))
            {
                return Err(failed(format!(
                    "{} has `server …:{port}`, which is no slot: nonstop owns this file and would drop it; remove that line or add the slot to nonstop.yml",
                    path.display()
                )));
            }
        }
        Ok(super::by_slot(cfg, from_file.as_deref(), include_port))
    }

    fn apply(
        &self,
        cfg: &Config,
        rot: &Rotation,
        live: Option<u16>,
        always: bool,
    ) -> Result<Duration> {
        let changes = changes(cfg, rot, live);
        if always {
            nginx::apply_and_reload(cfg, &changes)
        } else {
            nginx::apply(cfg, &changes)
        }
    }

    fn truth(&self, cfg: &Config) -> String {
        cfg.nginx.include.display().to_string()
    }

    fn change(&self) -> &'static str {
        "reload"
    }
}

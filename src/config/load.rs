//! Finding the config file (`--config`, `$NONSTOP_CONFIG`, beside the binary, /etc) and
//! loading it as this host's registry allows.

use super::parse::parse;
use super::types::Config;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Environment variable naming the config file (second in the search order).
pub const CONFIG_ENV: &str = "NONSTOP_CONFIG";

/// Last place searched.
pub const SYSTEM_CONFIG: &str = "/etc/nonstop/nonstop.yml";

/// Where the config comes from, in the documented order: `--config`, `$NONSTOP_CONFIG`,
/// `nonstop.yml` in the folder above the running binary (the bundle root for `bin/stop`),
/// `/etc/nonstop/nonstop.yml`.
pub fn locate(flag: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(CONFIG_ENV).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let mut tried = vec![];
    if let Some(bundle) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent()?.parent().map(|d| d.join("nonstop.yml")))
    {
        if bundle.is_file() {
            return Ok(bundle);
        }
        tried.push(bundle.display().to_string());
    }
    let system = PathBuf::from(SYSTEM_CONFIG);
    if system.is_file() {
        return Ok(system);
    }
    tried.push(SYSTEM_CONFIG.into());
    Err(Error::NoConfig {
        env: CONFIG_ENV,
        tried,
    })
}

/// Where the config comes from for the commands run in a project as well as on the host
/// (`nonstop validate`, `nonstop bundle`): `--config`, `$NONSTOP_CONFIG`, then, in the current
/// folder, `deploy/nonstop.yml` (what `nonstop init` writes) and `nonstop.yml`, then the hooks'
/// places ([`locate`]: the bundle root above the binary, `/etc/nonstop/nonstop.yml`).
pub fn locate_in_project(flag: Option<&Path>) -> Result<PathBuf> {
    if flag.is_some() || std::env::var_os(CONFIG_ENV).is_some_and(|v| !v.is_empty()) {
        return locate(flag);
    }
    for p in [PROJECT_CONFIG, "nonstop.yml"] {
        if Path::new(p).is_file() {
            return Ok(PathBuf::from(p));
        }
    }
    locate(None).map_err(|e| match e {
        Error::NoConfig { env, tried } => Error::NoConfig {
            env,
            tried: [PROJECT_CONFIG, "nonstop.yml"]
                .map(String::from)
                .into_iter()
                .chain(tried)
                .collect(),
        },
        e => e,
    })
}

/// What `nonstop init` writes, relative to the project's root.
pub const PROJECT_CONFIG: &str = "deploy/nonstop.yml";

/// Find and load the config, and refuse it when it asks for what `sudo nonstop setup` did
/// not fix on this host (see [`crate::registry::check_config`]; a root-only app's entry, set
/// up by a root deploy, follows its config instead).
pub fn load(flag: Option<&Path>) -> Result<Config> {
    let path = locate(flag)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::config(&path, None, None, format!("cannot read: {e}")))?;
    let cfg = parse(&text, &path)?;
    let dir = Path::new(crate::registry::DIR);
    if let Some(e) = crate::registry::read(dir, &cfg.app.name)? {
        if !(e.hook_user == "root" && rustix::process::geteuid().is_root()) {
            crate::registry::check_config(&cfg, &e, &crate::registry::path(dir, &e.app))?;
        }
    }
    Ok(cfg)
}

//! The host's registry of set-up apps: one root-owned file per app,
//! `/etc/nonstop/apps/<app>.json`, written (atomically) only by `sudo nonstop setup` (or by a
//! root deploy that sets itself up). It holds what root fixed for the app: the hook user, the
//! app user, the slots and their ports, the front port, the unit and table names, the work and
//! state folders, the root-owned nonstop the units and sudo lines run.
//!
//! What needs root is decided from these files, never from a bundle's `nonstop.yml`: a config
//! naming another port, slot, user or folder than its app's entry is refused ([`check_config`]),
//! and a new entry that would share a name, a slot port or a front port with another app's
//! is refused naming that app ([`clashes`]).
//!
//! Every name derived from an app name is injective: app names are `[a-z0-9-]` (no `.`, `_`
//! or `@`; see `config::AppName`), so units `nonstop-<app>@<slot>.service` (`@` cannot occur
//! in an app name), table `nonstop_<app with - as _>` and sudoers file `nonstop-<app>` (sudo
//! skips names with a `.`) never name two apps.

use crate::config::Config;
use crate::error::{failed, Context, Error, Refusal, Result};
use crate::traffic::Via;
use serde::{Deserialize, Serialize};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where the entries live.
pub const DIR: &str = "/etc/nonstop/apps";

/// One slot as setup fixed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotEntry {
    pub name: String,
    pub port: u16,
}

/// What setup fixed for one app (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub app: String,
    /// The config setup read.
    pub config: PathBuf,
    /// Who runs the hooks (`root` when nobody else needs sudo).
    pub hook_user: String,
    /// Who the JVM runs as.
    pub app_user: String,
    pub app_group: Option<String>,
    pub slots: Vec<SlotEntry>,
    pub traffic: Via,
    /// nftables mode: the port nginx proxies to.
    pub front_port: Option<u16>,
    /// nftables mode: spread over every slot in rotation.
    #[serde(default)]
    pub balanced: bool,
    /// `nonstop-<app>@.service`
    pub template_unit: String,
    /// `nonstop-<app>@<slot>.service`, one per slot.
    pub units: Vec<String>,
    /// `nonstop_<app>`
    pub table: String,
    pub workdir: PathBuf,
    pub state_dir: PathBuf,
    /// The root-owned nonstop the units and the sudo lines run.
    pub nonstop: PathBuf,
    /// sha256 of the root-only env file setup wrote from `app.env` (`None`: no `app.env`), so
    /// that a deploy can tell its config's `app.env` from what its JVM would get.
    #[serde(default)]
    pub env_sha256: Option<String>,
}

/// `app.env` as the env file's text (`None` when empty); an unwritable value is an error.
pub fn env_text(cfg: &Config) -> Result<Option<String>> {
    if cfg.app.env.is_empty() {
        return Ok(None);
    }
    let pairs: Vec<(String, String)> = cfg
        .app
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    crate::supervisor::systemd::render_env_file(&cfg.app.name, &pairs).map(Some)
}

/// `nonstop-<app>@.service`: the template of the app's slot units.
pub fn template_unit(app: &str) -> String {
    format!("nonstop-{app}@.service")
}

/// `nonstop-<app>@<slot>.service`
pub fn unit(app: &str, slot: &str) -> String {
    format!("nonstop-{app}@{slot}.service")
}

/// `nonstop_<app>` with `-` as `_` (nft identifiers); injective as app names have no `_`.
pub fn table(app: &str) -> String {
    format!("nonstop_{}", app.replace('-', "_"))
}

/// `/etc/sudoers.d/nonstop-<app>` (no `.`: sudo would skip it).
pub fn sudoers_file(app: &str) -> PathBuf {
    PathBuf::from("/etc/sudoers.d").join(format!("nonstop-{app}"))
}

/// The entry file of `app` under `dir`.
pub fn path(dir: &Path, app: &str) -> PathBuf {
    dir.join(format!("{app}.json"))
}

impl Entry {
    /// The entry for `cfg` set up for `hook_user`, the JVM as `app.user` (else the hook user).
    pub fn of(cfg: &Config, hook_user: &str, nonstop: &Path) -> Entry {
        let app = &cfg.app.name;
        Entry {
            app: app.clone(),
            config: cfg.path.clone(),
            hook_user: hook_user.to_string(),
            app_user: cfg
                .app
                .user
                .clone()
                .unwrap_or_else(|| hook_user.to_string()),
            app_group: cfg.app.group.clone(),
            slots: cfg
                .slots
                .iter()
                .map(|s| SlotEntry {
                    name: s.name.clone(),
                    port: s.port,
                })
                .collect(),
            traffic: cfg.traffic.via,
            front_port: cfg.traffic.port,
            balanced: cfg.balanced(),
            template_unit: template_unit(app),
            units: cfg.slots.iter().map(|s| unit(app, &s.name)).collect(),
            table: table(app),
            workdir: cfg.app.workdir.clone(),
            state_dir: cfg.state_dir.clone(),
            nonstop: nonstop.to_path_buf(),
            env_sha256: env_text(cfg)
                .ok()
                .flatten()
                .map(|t| crate::supervisor::systemd::env_digest(&t)),
        }
    }

    /// Every port the entry takes: slot ports and the front port.
    pub fn ports(&self) -> Vec<u16> {
        self.slots
            .iter()
            .map(|s| s.port)
            .chain(self.front_port)
            .collect()
    }

    /// The slot called `name`.
    pub fn slot(&self, name: &str) -> Option<&SlotEntry> {
        self.slots.iter().find(|s| s.name == name)
    }
}

/// A file root wrote and only root can change: owned by uid 0, not writable by group or others.
fn root_owned(p: &Path) -> Result<()> {
    let m = std::fs::symlink_metadata(p).context(format!("cannot read {}", p.display()))?;
    if !m.file_type().is_file() || m.uid() != 0 || m.mode() & 0o022 != 0 {
        return Err(Error::refused(Refusal::NotOurs { path: p.to_path_buf() }, format!(
            "{} is not a regular file only root can write (owner uid {}, mode {:o}): refusing to trust it",
            p.display(),
            m.uid(),
            m.mode() & 0o7777
        )));
    }
    Ok(())
}

/// The entry of `app` under `dir`, `None` when the app is not set up there.
pub fn read(dir: &Path, app: &str) -> Result<Option<Entry>> {
    let p = path(dir, app);
    if std::fs::symlink_metadata(&p).is_err() {
        return Ok(None);
    }
    root_owned(&p)?;
    let text = std::fs::read_to_string(&p).context(format!("cannot read {}", p.display()))?;
    let e: Entry = serde_json::from_str(&text)
        .map_err(|e| failed(format!("{} is not a registry entry: {e}", p.display())))?;
    if e.app != app {
        return Err(failed(format!(
            "{} is for app {:?}, not {app:?}",
            p.display(),
            e.app
        )));
    }
    Ok(Some(e))
}

/// Every entry under `dir` (none if it does not exist), sorted by app.
pub fn all(dir: &Path) -> Result<Vec<Entry>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(failed(format!("cannot read {}: {e}", dir.display()))),
    };
    let mut out = vec![];
    for f in rd.flatten() {
        let name = f.file_name().to_string_lossy().into_owned();
        if let Some(app) = name.strip_suffix(".json").filter(|a| !a.starts_with('.')) {
            if let Some(e) = read(dir, app)? {
                out.push(e);
            }
        }
    }
    out.sort_by(|a, b| a.app.cmp(&b.app));
    Ok(out)
}

/// Refuse `new` if it shares anything with another app's entry, naming that app; the same app
/// name from another config (other work or state folders) is refused too.
pub fn clashes(new: &Entry, others: &[Entry]) -> Result<()> {
    for o in others {
        let theirs = format!(
            "app {} (set up from {}, {})",
            o.app,
            o.config.display(),
            path(Path::new(DIR), &o.app).display()
        );
        if o.app == new.app {
            // The same app set up again (a CodeDeploy bundle's config moves with every
            // deployment); another config with this app name has other folders.
            if o.workdir != new.workdir || o.state_dir != new.state_dir {
                return Err(failed(format!(
                    "app name {} is already set up from another config, {} (app.workdir {}, state_dir {}): two configs with one app name would share units and a table; rename app.name in {}, or remove {} if that app is gone",
                    new.app,
                    o.config.display(),
                    o.workdir.display(),
                    o.state_dir.display(),
                    new.config.display(),
                    path(Path::new(DIR), &o.app).display()
                )));
            }
            continue;
        }
        for p in new.ports() {
            if o.ports().contains(&p) {
                let what = |e: &Entry| {
                    if e.front_port == Some(p) {
                        "front port".to_string()
                    } else {
                        e.slots
                            .iter()
                            .find(|s| s.port == p)
                            .map_or("port".into(), |s| format!("port of slot {}", s.name))
                    }
                };
                return Err(failed(format!(
                    "port {p} ({} of {}) is already the {} of {theirs}: choose another port",
                    what(new),
                    new.app,
                    what(o)
                )));
            }
        }
        let shared = [
            (new.table == o.table, "nftables table", &new.table),
            (
                new.template_unit == o.template_unit,
                "unit",
                &new.template_unit,
            ),
        ];
        if let Some((_, what, name)) = shared.iter().find(|(same, ..)| *same) {
            return Err(failed(format!(
                "{what} {name} is already {theirs}'s: rename app.name"
            )));
        }
        if let Some(u) = new.units.iter().find(|u| o.units.contains(u)) {
            return Err(failed(format!(
                "unit {u} is already {theirs}'s: rename app.name"
            )));
        }
        for (mine, what) in [(&new.workdir, "app.workdir"), (&new.state_dir, "state_dir")] {
            if mine == &o.workdir || mine == &o.state_dir {
                return Err(failed(format!(
                    "{what} {} is already a folder of {theirs}: give each app its own",
                    mine.display()
                )));
            }
        }
    }
    Ok(())
}

/// Refuse a config that asks for something `sudo nonstop setup` did not fix: other slots or
/// ports, another front port or steering, another app user, other folders. The reason names
/// the value, the entry, and how to change it.
pub fn check_config(cfg: &Config, e: &Entry, entry_path: &Path) -> Result<()> {
    let fix = format!(
        "ports, slots, users and folders are fixed by `sudo nonstop setup` ({}); to change them, run `sudo nonstop setup --user {} --config {}` again",
        entry_path.display(),
        e.hook_user,
        cfg.path.display()
    );
    let refuse = |what: String| {
        Err(Error::config(
            &cfg.path,
            None,
            None,
            format!("{what}; {fix}"),
        ))
    };
    for s in &cfg.slots {
        match e.slot(&s.name) {
            None => {
                return refuse(format!(
                    "slot {} is not one of app {}'s slots ({})",
                    s.name,
                    e.app,
                    e.slots
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            }
            Some(r) if r.port != s.port => {
                return refuse(format!(
                    "slot {} has port {}, but setup fixed port {} for it",
                    s.name, s.port, r.port
                ))
            }
            _ => {}
        }
    }
    if let Some(r) = e.slots.iter().find(|r| cfg.slot(&r.name).is_err()) {
        return refuse(format!("slot {} that setup fixed is missing", r.name));
    }
    if cfg.traffic.via != e.traffic
        || cfg.traffic.port != e.front_port
        || (e.traffic == Via::Nftables && cfg.balanced() != e.balanced)
    {
        return refuse(format!(
            "traffic is {} (front port {}), but setup fixed {} (front port {})",
            cfg.traffic.via,
            cfg.traffic.port.map_or("none".into(), |p| p.to_string()),
            e.traffic,
            e.front_port.map_or("none".into(), |p| p.to_string())
        ));
    }
    if let Some(u) = cfg.app.user.as_ref().filter(|u| **u != e.app_user) {
        return refuse(format!(
            "app.user is {u}, but setup fixed {} as the app's user",
            e.app_user
        ));
    }
    if cfg.app.group.is_some() && cfg.app.group != e.app_group {
        return refuse(format!(
            "app.group is {}, but setup fixed {}",
            cfg.app.group.as_deref().unwrap_or(""),
            e.app_group.as_deref().unwrap_or("the app user's group")
        ));
    }
    for (mine, fixed, what) in [
        (&cfg.app.workdir, &e.workdir, "app.workdir"),
        (&cfg.state_dir, &e.state_dir, "state_dir"),
    ] {
        if mine != fixed {
            return refuse(format!(
                "{what} is {}, but setup fixed {}",
                mine.display(),
                fixed.display()
            ));
        }
    }
    Ok(())
}

/// The host's entry for `cfg`'s app checked against `cfg` (see [`check_config`]): `None`
/// when the app was never set up on this host.
pub fn for_config(cfg: &Config) -> Result<Option<Entry>> {
    let dir = Path::new(DIR);
    match read(dir, &cfg.app.name)? {
        Some(e) => {
            check_config(cfg, &e, &path(dir, &cfg.app.name))?;
            Ok(Some(e))
        }
        None => Ok(None),
    }
}

/// Write `e` under `dir` (root-owned, 0644, atomically). Returns whether it changed.
pub fn write(dir: &Path, e: &Entry) -> Result<bool> {
    crate::fsx::create_dirs(dir).context(format!("cannot create {}", dir.display()))?;
    let p = path(dir, &e.app);
    let mut json = serde_json::to_string_pretty(e).context("cannot encode the entry")?;
    json.push('\n');
    if std::fs::read(&p).is_ok_and(|b| b == json.as_bytes()) && root_owned(&p).is_ok() {
        return Ok(false);
    }
    crate::fsx::write_atomic(&p, json.as_bytes(), 0o644)?;
    Ok(true)
}

/// A front port for a new app: derived from its name (18100–18899), then the next one no
/// entry under `dir` takes.
pub fn front_port_for(app: &str, dir: &Path) -> u16 {
    let taken: Vec<u16> = all(dir)
        .unwrap_or_default()
        .iter()
        .flat_map(Entry::ports)
        .collect();
    // FNV-1a: stable across builds and platforms.
    let h = app.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    });
    let base = 18100 + (h % 800) as u16;
    (0..800)
        .map(|i| 18100 + (base - 18100 + i) % 800)
        .find(|p| !taken.contains(p))
        .unwrap_or(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(name: &str, slots: &[(&str, u16)], front: Option<u16>) -> Config {
        let mut t = format!("app:\n  name: {name}\nslots:\n");
        for (s, p) in slots {
            t += &format!("  - {{name: {s}, port: {p}, profile: x}}\n");
        }
        if let Some(f) = front {
            t += &format!("traffic:\n  via: nftables\n  port: {f}\n");
        }
        crate::config::parse(&t, &PathBuf::from(format!("/srv/{name}/nonstop.yml"))).unwrap()
    }

    #[test]
    fn names_that_used_to_collide_do_not() {
        let shop = cfg("shop", &[("api-blue", 8081), ("green", 8082)], None);
        let shop_api = cfg("shop-api", &[("blue", 9081), ("green", 9082)], None);
        let a = Entry::of(&shop, "ec2-user", Path::new("/n"));
        let b = Entry::of(&shop_api, "ec2-user", Path::new("/n"));
        assert_eq!(a.units[0], "nonstop-shop@api-blue.service");
        assert_eq!(b.units[0], "nonstop-shop-api@blue.service");
        assert!(a.units.iter().all(|u| !b.units.contains(u)));
        clashes(&b, &[a]).unwrap();
        assert_eq!(table("shop-a"), "nonstop_shop_a");
        // `shop.a` (and `shop_a`) are no longer app names: nothing else maps to nonstop_shop_a.
        for bad in ["shop.a", "shop_a", "shop@a", "-shop", "Shop"] {
            let t = format!("app:\n  name: {bad:?}\n");
            assert!(
                crate::config::parse(&t, Path::new("/x/n.yml")).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_clash_is_refused_naming_the_other_app() {
        let a = Entry::of(
            &cfg("alpha", &[("blue", 8081), ("green", 8082)], Some(18090)),
            "ec2-user",
            Path::new("/n"),
        );
        for (b, want) in [
            (
                cfg("beta", &[("blue", 9081), ("green", 9082)], Some(18090)),
                "port 18090 (front port of beta) is already the front port of app alpha",
            ),
            (
                cfg("beta", &[("blue", 9081), ("green", 8082)], Some(18091)),
                "port 8082 (port of slot green of beta) is already the port of slot green of app alpha",
            ),
            (
                cfg("beta", &[("blue", 18090), ("green", 9082)], None),
                "is already the front port of app alpha",
            ),
        ] {
            let e = Entry::of(&b, "ec2-user", Path::new("/n"));
            let m = clashes(&e, std::slice::from_ref(&a)).unwrap_err().to_string();
            assert!(m.contains(want), "{m}");
        }
        // The same app name from another config (other folders).
        let mut other = a.clone();
        other.config = "/srv/other/nonstop.yml".into();
        other.state_dir = "/srv/other/state".into();
        let m = clashes(&other, std::slice::from_ref(&a))
            .unwrap_err()
            .to_string();
        assert!(
            m.contains(
                "app name alpha is already set up from another config, /srv/alpha/nonstop.yml"
            ),
            "{m}"
        );
        // Setting the same app up again is no clash, from wherever its config now is.
        clashes(&a, std::slice::from_ref(&a)).unwrap();
        let mut moved = a.clone();
        moved.config =
            "/opt/codedeploy-agent/deployment-root/g/d-2/deployment-archive/nonstop.yml".into();
        clashes(&moved, std::slice::from_ref(&a)).unwrap();
    }

    #[test]
    fn a_config_cannot_widen_what_setup_fixed() {
        let c = cfg("shop", &[("blue", 8081), ("green", 8082)], None);
        let e = Entry::of(&c, "ec2-user", Path::new("/n"));
        let p = Path::new("/etc/nonstop/apps/shop.json");
        check_config(&c, &e, p).unwrap();
        let ssh = cfg("shop", &[("blue", 22), ("green", 8082)], None);
        let err = check_config(&ssh, &e, p).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert_eq!(err.kind(), crate::error::Kind::Config);
        let m = err.to_string();
        assert!(
            m.contains("slot blue has port 22, but setup fixed port 8081 for it")
                && m.contains("sudo nonstop setup --user ec2-user --config /srv/shop/nonstop.yml"),
            "{m}"
        );
        let more = cfg(
            "shop",
            &[("blue", 8081), ("green", 8082), ("red", 8083)],
            None,
        );
        let m = check_config(&more, &e, p).unwrap_err().to_string();
        assert!(m.contains("slot red is not one of app shop's slots"), "{m}");
        let front = cfg("shop", &[("blue", 8081), ("green", 8082)], Some(18100));
        let m = check_config(&front, &e, p).unwrap_err().to_string();
        assert!(
            m.contains("traffic is nftables (front port 18100), but setup fixed nginx-reload"),
            "{m}"
        );
        let mut root = c.clone();
        root.app.user = Some("root".into());
        let m = check_config(&root, &e, p).unwrap_err().to_string();
        assert!(
            m.contains("app.user is root, but setup fixed ec2-user"),
            "{m}"
        );
    }

    #[test]
    fn entries_round_trip_and_only_root_owned_ones_are_read() {
        let d = tempfile::tempdir().unwrap();
        let derived = front_port_for("beta", d.path());
        assert!((18100..18900).contains(&derived), "{derived}");
        assert_eq!(front_port_for("beta", d.path()), derived, "stable");
        let c = cfg("shop", &[("blue", 8081), ("green", 8082)], Some(derived));
        let e = Entry::of(
            &c,
            "ec2-user",
            Path::new("/usr/local/libexec/nonstop/shop/nonstop"),
        );
        assert!(write(d.path(), &e).unwrap());
        assert!(!write(d.path(), &e).unwrap(), "unchanged the second time");
        assert_eq!(read(d.path(), "shop").unwrap(), Some(e.clone()));
        assert_eq!(all(d.path()).unwrap(), vec![e.clone()]);
        assert_eq!(read(d.path(), "other").unwrap(), None);
        // A front port for another app skips one an entry takes.
        let p = front_port_for("beta", d.path());
        assert!((18100..18900).contains(&p) && p != derived, "{p}");
        use std::os::unix::fs::PermissionsExt;
        let f = path(d.path(), "shop");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
        let err = read(d.path(), "shop").unwrap_err();
        assert!(
            matches!(&err, Error::Refused { refusal: Refusal::NotOurs { path }, .. } if *path == f),
            "{err:?}"
        );
        let m = err.to_string();
        assert!(m.contains("not a regular file only root can write"), "{m}");
    }
}

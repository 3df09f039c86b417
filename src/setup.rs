//! `sudo nonstop setup --user USER [--config PATH]`: the one step that needs root, once per app
//! per host (and again to change it). Idempotent: it prints what it changed, or that nothing
//! did. It installs what root must own, decided from the config setup reads and from the
//! host's registry, never from a later bundle:
//!
//! - a root-owned copy of this nonstop, `/usr/local/libexec/nonstop/<app>/nonstop` (what the units
//!   and the sudo lines run: a binary in a bundle or in the hook user's home could be replaced
//!   by the hook user);
//! - the app's registry entry (`/etc/nonstop/apps/<app>.json`, see [`crate::registry`]),
//!   refused when it clashes with another app's;
//! - the template unit `nonstop-<app>@.service` (see [`crate::supervisor::systemd`]); an older
//!   nonstop's per-slot units are retired when they no longer run;
//! - the work and state folders, owned by the hook user (and the lock, when runs as another
//!   user left it: an older nonstop's root hooks);
//! - for a hook user other than root, `/etc/sudoers.d/nonstop-<app>`: one exact command per
//!   line (no wildcard, so no argument can be added), checked with `visudo -cf` before it is
//!   installed (atomically, 0440): start, stop, enable, disable and reset-failed of the app's
//!   own slot units, in reload mode the nginx test, dump and reload the config runs through
//!   `sudo -n`, in nftables mode `nonstop steer --app APP` (and `--show`), the root half of
//!   steering, which takes only the slot ports the registry names;
//! - in nftables mode, `nonstop-<app>-traffic.service`, which runs `nonstop steer --app APP
//!   --boot` before nginx at boot, then `nonstop steer --app APP --watch` (the table loaded
//!   again whenever a ruleset flush removes it). Nothing in it writes a unit or runs a file the hook user can write.

use crate::config::Config;
use crate::error::{failed, Context, Error, Result, Tool};
use crate::registry::{self, Entry};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Where setup keeps the root-owned nonstop of each app.
pub const LIB_DIR: &str = "/usr/local/libexec/nonstop";

/// What `setup` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// The user the hooks run as (`ec2-user`, `ubuntu`, or `root`).
    pub user: String,
    pub config: Option<PathBuf>,
    /// Records the steering an older nonstop kept for boot as the hook user's request, before
    /// the steering unit starts (`traffic::nft::seed_want`: the traffic layer sits above this
    /// one, so `nonstop setup` passes it in).
    pub seed: Option<Seed>,
}

/// See [`Options::seed`]: the line it changed, if any.
pub type Seed = fn(&registry::Entry, u32, u32) -> Result<Option<String>>;

fn root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The name of the user this process runs as, from the user database.
pub fn user_name() -> Option<String> {
    crate::userdb::current_name()
}

/// uid and gid of `user`, or why it cannot be the hook user.
fn user_ids(user: &str) -> Result<(u32, u32)> {
    let name_ok = !user.is_empty()
        && user.len() <= 32
        && user
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c))
        && !user.starts_with(|c: char| c.is_ascii_digit() || c == '-');
    if !name_ok {
        return Err(Error::Usage(format!(
            "--user {user:?}: want a user name ([a-z_][a-z0-9_-]*)"
        )));
    }
    crate::userdb::user(user)
        .map(|a| (a.uid, a.gid))
        .ok_or_else(|| Error::Usage(format!("--user {user}: no such user on this host")))
}

/// `nonstop setup`: see the module doc.
pub fn run(o: &Options) -> Result<()> {
    if !root() {
        return Err(failed(format!(
            "setup installs units and sudo rules, which needs root: run `sudo nonstop setup --user {}{}`",
            o.user,
            o.config
                .as_ref()
                .map_or(String::new(), |c| format!(" --config {}", c.display()))
        )));
    }
    let path = crate::config::locate(o.config.as_deref())?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::config(&path, None, None, format!("cannot read: {e}")))?;
    let cfg = crate::config::parse(&text, &path)?;
    let changed = install(&cfg, &o.user, Path::new(registry::DIR), o.seed)?;
    if cfg.traffic.via == crate::traffic::Via::NginxReload {
        log::warn!(
            "app {} switches by reloading nginx: a reload under load can cut responses in flight, and it closes the idle keep-alive connections of every site on this nginx; `traffic.via: nftables` (what `nonstop init` writes) switches without a reload",
            cfg.app.name
        );
    }
    if changed.is_empty() {
        crate::outln!(
            "nothing changed: app {} is set up for hook user {} ({})",
            cfg.app.name,
            o.user,
            registry::path(Path::new(registry::DIR), &cfg.app.name).display()
        );
    }
    for line in &changed {
        crate::outln!("{line}");
    }
    Ok(())
}

/// Install everything for `cfg` with hooks run as `hook_user` (registry under `dir`); returns
/// what changed, one line each (empty: nothing).
pub fn install(
    cfg: &Config,
    hook_user: &str,
    dir: &Path,
    seed: Option<Seed>,
) -> Result<Vec<String>> {
    let (uid, gid) = user_ids(hook_user)?;
    if let Some(u) = &cfg.app.user {
        user_ids(u).map_err(|_| failed(format!("app.user {u} is not a user of this host")))?;
    }
    let mut changed = vec![];
    let bin = install_binary(&cfg.app.name, &mut changed)?;
    let entry = Entry::of(cfg, hook_user, &bin);
    registry::clashes(&entry, &registry::all(dir)?)?;
    for d in [
        cfg.app.workdir.clone(),
        cfg.run_dir(),
        cfg.releases_dir(),
        cfg.state_dir.clone(),
    ] {
        own_folder(&d, uid, gid, &mut changed)?;
    }
    // The lock is rewritten in place by every run: one an older nonstop's hooks left as
    // another user (root: the only user its nftables steering allowed) would refuse the
    // hook user's first deploy ("cannot open …/lock: Permission denied").
    own_file(&cfg.state_dir.join("lock"), uid, gid, &mut changed)?;
    // app.env (secrets, often): root-only, read by systemd as root for the slots' units.
    let env = registry::env_text(cfg)?;
    let env_path = crate::supervisor::systemd::env_file(dir, &entry.app);
    if crate::supervisor::systemd::write_env_file(&env_path, env.as_deref())? {
        changed.push(match env {
            Some(_) => format!(
                "wrote {} (app.env: mode 0600, root only)",
                env_path.display()
            ),
            None => format!("removed {} (app.env is empty)", env_path.display()),
        });
    }
    if registry::write(dir, &entry)? {
        changed.push(format!(
            "wrote {} (slots {}; front port {})",
            registry::path(dir, &entry.app).display(),
            entry
                .slots
                .iter()
                .map(|s| format!("{} {}", s.name, s.port))
                .collect::<Vec<_>>()
                .join(", "),
            entry.front_port.map_or("none".into(), |p| p.to_string())
        ));
    }
    // Before the steering unit (re)starts: what it loads at boot and after a ruleset flush.
    if let Some(line) = seed.map(|f| f(&entry, uid, gid)).transpose()?.flatten() {
        changed.push(line);
    }
    changed.extend(crate::supervisor::systemd::install_units(cfg, &entry)?);
    if hook_user != "root" {
        let text = render_sudoers(cfg, &entry, &Tools::find()?)?;
        if install_sudoers(&registry::sudoers_file(&entry.app), &text)? {
            changed.push(format!(
                "installed {} ({} commands for {hook_user}, checked with visudo)",
                registry::sudoers_file(&entry.app).display(),
                text.lines().filter(|l| !l.starts_with('#')).count()
            ));
        }
    }
    Ok(changed)
}

/// True when only root can change `p` and every folder above it.
fn root_safe(p: &Path) -> bool {
    p.ancestors()
        .all(|a| std::fs::symlink_metadata(a).is_ok_and(|m| m.uid() == 0 && m.mode() & 0o022 == 0))
}

/// A root-owned copy of the running nonstop for `app`, replaced when it differs.
fn install_binary(app: &str, changed: &mut Vec<String>) -> Result<PathBuf> {
    // A hook binary (bin/start of a bundle) installs the `nonstop` beside it.
    let exe = std::env::current_exe().context("cannot find the running nonstop")?;
    let me = match exe.file_name().and_then(|n| n.to_str()) {
        Some("nonstop") => exe.clone(),
        _ => exe.with_file_name("nonstop"),
    };
    if !me.is_file() {
        return Err(failed(format!(
            "no nonstop beside {}: the units run it (keep bin/ together)",
            exe.display()
        )));
    }
    let dir = Path::new(LIB_DIR).join(app);
    let dst = dir.join("nonstop");
    let bytes = std::fs::read(&me).context(format!("cannot read {}", me.display()))?;
    if std::fs::read(&dst).is_ok_and(|b| b == bytes) && root_safe(&dst) {
        return Ok(dst);
    }
    crate::fsx::create_dirs(&dir).context(format!("cannot create {}", dir.display()))?;
    if !root_safe(&dir) {
        return Err(failed(format!(
            "{} can be written by someone other than root: refusing to install nonstop there",
            dir.display()
        )));
    }
    crate::fsx::write_atomic(&dst, &bytes, 0o755)?;
    changed.push(format!(
        "installed {} (from {})",
        dst.display(),
        me.display()
    ));
    Ok(dst)
}

/// Create `d` if needed and give it to the hook user (the folder itself, not its contents).
fn own_folder(d: &Path, uid: u32, gid: u32, changed: &mut Vec<String>) -> Result<()> {
    let created = !d.exists();
    crate::fsx::create_dirs(d).context(format!("cannot create {}", d.display()))?;
    let m = std::fs::symlink_metadata(d).context(format!("cannot read {}", d.display()))?;
    if !m.is_dir() {
        return Err(failed(format!("{} is not a folder", d.display())));
    }
    if m.uid() != uid || m.gid() != gid {
        std::os::unix::fs::lchown(d, Some(uid), Some(gid))
            .context(format!("cannot chown {}", d.display()))?;
        changed.push(format!(
            "{} {} for uid {uid}",
            if created { "created" } else { "gave" },
            d.display()
        ));
    } else if created {
        changed.push(format!("created {}", d.display()));
    }
    Ok(())
}

/// Give the existing regular file `f` to the hook user, unless it is theirs already. Not a
/// symlink, nor a file with other hard links: only that file, in a folder the hook user owns,
/// changes owner.
fn own_file(f: &Path, uid: u32, gid: u32, changed: &mut Vec<String>) -> Result<()> {
    let Ok(m) = std::fs::symlink_metadata(f) else {
        return Ok(());
    };
    if !m.is_file() || m.nlink() != 1 || (m.uid() == uid && m.gid() == gid) {
        return Ok(());
    }
    std::os::unix::fs::lchown(f, Some(uid), Some(gid))
        .context(format!("cannot chown {}", f.display()))?;
    changed.push(format!(
        "gave {} for uid {uid} (left by runs as uid {})",
        f.display(),
        m.uid()
    ));
    Ok(())
}

/// The absolute paths the sudo lines name (resolved in root's PATH).
#[derive(Debug, Clone)]
pub struct Tools {
    pub systemctl: PathBuf,
}

impl Tools {
    fn find() -> Result<Tools> {
        let systemctl = which::which("systemctl")
            .map_err(|_| failed("systemctl not found: setup is for systemd hosts"))?;
        Ok(Tools { systemctl })
    }
}

/// A value that goes into a sudoers command line as it is: no whitespace, no character sudoers
/// treats specially (`\`, `,`, `:`, `=`, `#`, `*`, `?`, `[`, `!`, quotes, `%`).
fn sudo_word(w: &str) -> Result<&str> {
    let ok = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-@+".contains(c));
    if ok {
        Ok(w)
    } else {
        Err(failed(format!(
            "{w:?} cannot go into a sudoers line as an exact argument"
        )))
    }
}

/// The nginx commands the config runs through `sudo -n`, resolved to absolute paths: `nginx -t
/// …` (and the same with `-T`, for `nonstop validate`), and in reload mode `systemctl reload
/// nginx` or `nginx -s reload`. Anything else is refused: it would run as root.
fn nginx_lines(cfg: &Config, tools: &Tools) -> Result<Vec<Vec<String>>> {
    let mut out = vec![];
    // nftables mode never reloads nginx: only the read-only test and dump (`validate`).
    let reload = cfg.traffic.via == crate::traffic::Via::NginxReload;
    let cmds = [
        ("nginx.test", &cfg.nginx.test),
        ("nginx.reload", &cfg.nginx.reload),
    ];
    for (what, argv) in cmds
        .into_iter()
        .filter(|(w, _)| reload || *w == "nginx.test")
    {
        if argv.first().map(String::as_str) != Some("sudo") {
            continue;
        }
        let rest: Vec<&str> = argv[1..]
            .iter()
            .map(String::as_str)
            .filter(|a| *a != "-n")
            .collect();
        let Some((prog, args)) = rest.split_first() else {
            continue;
        };
        let base = Path::new(prog).file_name().map(|b| b.to_string_lossy());
        let allowed = matches!(
            (base.as_deref(), args),
            (Some("nginx"), ["-t"] | ["-t", "-q"] | ["-s", "reload"])
                | (Some("systemctl"), ["reload", "nginx" | "nginx.service"])
        );
        if !allowed {
            return Err(failed(format!(
                "{what} runs `sudo -n {}`: setup allows only `nginx -t [-q]`, `nginx -s reload` and `systemctl reload nginx` through sudo",
                rest.join(" ")
            )));
        }
        let abs = if base.as_deref() == Some("systemctl") {
            tools.systemctl.clone()
        } else {
            which::which(prog).map_err(|_| failed(format!("{what}: {prog} not found")))?
        };
        if !root_safe(&abs) {
            return Err(failed(format!(
                "{what}: {} can be written by someone other than root",
                abs.display()
            )));
        }
        let mut line = vec![abs.to_string_lossy().into_owned()];
        line.extend(args.iter().map(|a| a.to_string()));
        if what == "nginx.test" {
            let mut dump = line.clone();
            dump[1] = "-T".into();
            out.push(line);
            out.push(dump);
        } else {
            out.push(line);
        }
    }
    Ok(out)
}

/// The sudoers file for `e`: one exact command per line for the hook user (see the module doc).
pub fn render_sudoers(cfg: &Config, e: &Entry, tools: &Tools) -> Result<String> {
    let user = sudo_word(&e.hook_user)?;
    let ctl = tools.systemctl.to_string_lossy().into_owned();
    let mut cmds: Vec<Vec<String>> = vec![];
    let mut units: Vec<String> = e.units.clone();
    // An older nonstop's unit still there: the hook user may stop and disable it.
    let legacy: Vec<String> = cfg
        .slots
        .iter()
        .filter_map(|s| crate::supervisor::systemd::legacy_unit(cfg, s))
        .collect();
    for u in &units {
        for verb in [
            &["start"][..],
            &["stop", "--no-block"],
            &["reset-failed"],
            &["enable", "--quiet", "--no-reload"],
            &["disable", "--quiet", "--no-reload"],
        ] {
            let mut c = vec![ctl.clone(), "--no-ask-password".into()];
            c.extend(verb.iter().map(|v| v.to_string()));
            c.push(u.clone());
            cmds.push(c);
        }
    }
    for u in &legacy {
        for verb in [
            &["stop", "--no-block"][..],
            &["disable", "--quiet", "--no-reload"],
        ] {
            let mut c = vec![ctl.clone(), "--no-ask-password".into()];
            c.extend(verb.iter().map(|v| v.to_string()));
            c.push(u.clone());
            cmds.push(c);
        }
    }
    units.extend(legacy);
    cmds.extend(nginx_lines(cfg, tools)?);
    if cfg.traffic.via == crate::traffic::Via::Nftables {
        // Steering: the root-owned helper, no free argument (it reads state_dir/steer.want
        // and takes only the slot ports the registry names).
        let bin = e.nonstop.to_string_lossy().into_owned();
        for extra in [&[][..], &["--show"]] {
            let mut c = vec![bin.clone(), "steer".into(), "--app".into(), e.app.clone()];
            c.extend(extra.iter().map(|a| a.to_string()));
            cmds.push(c);
        }
    }
    let mut text = format!(
        "# Managed by nonstop: what {user} may run as root for app {app}, written by `sudo nonstop setup`.\n\
         # One exact command per line (no wildcard: no argument can be added); nothing here writes a\n\
         # unit or runs a file {user} can write. Change it with `sudo nonstop setup --user {user} --config {config}`.\n",
        app = e.app,
        config = e.config.display(),
    );
    for c in &cmds {
        let words: Vec<&str> = c.iter().map(|w| sudo_word(w)).collect::<Result<_>>()?;
        text += &format!("{user} ALL=(root) NOPASSWD: {}\n", words.join(" "));
    }
    Ok(text)
}

/// `visudo -cqf FILE`: `Err` with visudo's reason when sudo would not take it.
pub fn visudo_check(file: &Path) -> Result<()> {
    let out = Command::new("visudo")
        .args(["-c", "-q", "-f"])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::spawn("visudo", e))?;
    if out.status.success() {
        return Ok(());
    }
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    Err(Error::Command {
        tool: Tool::Visudo,
        argv: ["visudo", "-c", "-q", "-f", &file.to_string_lossy()]
            .map(String::from)
            .to_vec(),
        status: out.status,
        reason: text
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("no reason given")
            .trim()
            .to_string(),
        io: None,
    })
}

/// Install `text` at `path` (0440, root) after `visudo -c` passed on it, atomically; returns
/// whether it changed.
fn install_sudoers(path: &Path, text: &str) -> Result<bool> {
    if std::fs::read(path).is_ok_and(|b| b == text.as_bytes()) && root_safe(path) {
        return Ok(false);
    }
    let dir = path.parent().unwrap_or(Path::new("/etc/sudoers.d"));
    let tmp = dir.join(format!(".nonstop-setup-{}", std::process::id()));
    crate::fsx::write_atomic(&tmp, text.as_bytes(), 0o440)?;
    let checked = visudo_check(&tmp);
    if let Err(e) = checked {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path).context(format!("cannot install {}", path.display()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        crate::config::parse(
            &format!("app:\n  name: shop-api\nslots:\n  - {{name: blue, port: 9081, profile: a}}\n  - {{name: green, port: 9082, profile: b}}\n{extra}"),
            Path::new("/srv/shop-api/nonstop.yml"),
        )
        .unwrap()
    }

    fn tools() -> Tools {
        Tools {
            systemctl: "/usr/bin/systemctl".into(),
        }
    }

    #[test]
    fn sudoers_are_exact_lines_that_visudo_accepts() {
        let c = cfg("nginx:\n  test: [sudo, -n, nginx, -t, -q]\n  reload: [sudo, -n, systemctl, reload, nginx]\n");
        let e = Entry::of(
            &c,
            "ec2-user",
            Path::new("/usr/local/libexec/nonstop/shop-api/nonstop"),
        );
        let t = render_sudoers(&c, &e, &tools()).unwrap();
        let rules: Vec<&str> = t.lines().filter(|l| !l.starts_with('#')).collect();
        assert!(rules.contains(&"ec2-user ALL=(root) NOPASSWD: /usr/bin/systemctl --no-ask-password start nonstop-shop-api@blue.service"), "{t}");
        assert!(rules.contains(&"ec2-user ALL=(root) NOPASSWD: /usr/bin/systemctl --no-ask-password stop --no-block nonstop-shop-api@green.service"), "{t}");
        assert!(rules.iter().any(|l| l.ends_with("nginx -t -q")), "{t}");
        assert!(rules.iter().any(|l| l.ends_with("nginx -T -q")), "{t}");
        assert!(
            rules
                .iter()
                .any(|l| l.ends_with("/usr/bin/systemctl reload nginx")),
            "{t}"
        );
        // 5 verbs x 2 slots + test, dump, reload; no wildcard, no alias, no unit writing.
        assert_eq!(rules.len(), 13, "{t}");
        for bad in [
            "*",
            "Cmnd_Alias",
            "install",
            "daemon-reload",
            "journalctl",
            "ALL,",
        ] {
            assert!(!t.contains(bad), "{bad} in:\n{t}");
        }
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("nonstop-shop-api");
        std::fs::write(&f, &t).unwrap();
        visudo_check(&f).unwrap();
        // What visudo would refuse is reported with its reason.
        std::fs::write(
            &f,
            "ec2-user ALL=(root) NOPASSWD: /usr/bin/systemctl start, \n",
        )
        .unwrap();
        let err = visudo_check(&f).unwrap_err();
        assert!(
            matches!(&err, Error::Command { tool: Tool::Visudo, status, .. } if !status.success()),
            "{err:?}"
        );
        let m = err.to_string();
        assert!(m.contains("visudo rejects"), "{m}");
    }

    #[test]
    fn the_lock_left_by_another_user_is_given_to_the_hook_user_and_nothing_else() {
        let d = tempfile::tempdir().unwrap();
        let m = std::fs::symlink_metadata(d.path()).unwrap();
        let (me, my_gid) = (m.uid(), m.gid());
        let lock = d.path().join("lock");
        let mut changed = vec![];
        // No lock yet (a new host): nothing to do, nothing created.
        own_file(&lock, me, my_gid, &mut changed).unwrap();
        assert!(!lock.exists() && changed.is_empty());
        // Already the hook user's: unchanged.
        std::fs::write(&lock, "switch pid 1").unwrap();
        own_file(&lock, me, my_gid, &mut changed).unwrap();
        assert!(changed.is_empty(), "{changed:?}");
        // A symlink or a file with another hard link is left alone.
        let other = d.path().join("other");
        std::fs::write(&other, "x").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&other, &link).unwrap();
        let hard = d.path().join("hard");
        std::fs::hard_link(&other, &hard).unwrap();
        for f in [&link, &hard] {
            own_file(f, me + 1, my_gid, &mut changed).unwrap();
        }
        assert!(changed.is_empty(), "{changed:?}");
        // Another user's lock (as root: an older nonstop's root hooks) goes to the hook user.
        if root() {
            own_file(&lock, 65534, 65534, &mut changed).unwrap();
            let m = std::fs::symlink_metadata(&lock).unwrap();
            assert_eq!((m.uid(), m.gid()), (65534, 65534));
            assert_eq!(changed.len(), 1, "{changed:?}");
            assert!(
                changed[0].contains("for uid 65534 (left by runs as uid 0)"),
                "{changed:?}"
            );
            assert_eq!(std::fs::symlink_metadata(&other).unwrap().uid(), me);
        }
    }

    #[test]
    fn nftables_mode_allows_only_the_nginx_test_and_dump_and_never_a_reload() {
        let c = cfg("traffic:\n  via: nftables\n  port: 18200\nnginx:\n  test: [sudo, -n, nginx, -t, -q]\n  reload: [sudo, -n, systemctl, reload, nginx]\n");
        let e = Entry::of(&c, "ubuntu", Path::new("/n"));
        let t = render_sudoers(&c, &e, &tools()).unwrap();
        let nginx: Vec<&str> = t
            .lines()
            .filter(|l| !l.starts_with('#') && l.contains("nginx"))
            .collect();
        assert_eq!(nginx.len(), 2, "{t}");
        assert!(nginx[0].ends_with("nginx -t -q"), "{t}");
        assert!(nginx[1].ends_with("nginx -T -q"), "{t}");
        // Nothing reloads: the only "reload" is systemctl's `--no-reload` flag.
        assert!(!t.replace("--no-reload", "").contains("reload"), "{t}");
    }

    #[test]
    fn nftables_mode_has_no_nginx_lines_and_bad_nginx_commands_are_refused() {
        let c = cfg("traffic:\n  via: nftables\n  port: 18200\n");
        let e = Entry::of(&c, "ubuntu", Path::new("/n"));
        let t = render_sudoers(&c, &e, &tools()).unwrap();
        assert!(!t.contains("nginx"), "{t}");
        let rules: Vec<&str> = t.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(rules.len(), 12, "{t}");
        assert!(
            rules.contains(&"ubuntu ALL=(root) NOPASSWD: /n steer --app shop-api"),
            "{t}"
        );
        assert!(
            rules.contains(&"ubuntu ALL=(root) NOPASSWD: /n steer --app shop-api --show"),
            "{t}"
        );
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("nonstop-shop-api");
        std::fs::write(&f, &t).unwrap();
        visudo_check(&f).unwrap();
        for bad in [
            "nginx:\n  test: [sudo, -n, /bin/sh, -c, 'nginx -t']\n",
            "nginx:\n  reload: [sudo, -n, systemctl, restart, ssh]\n",
            "nginx:\n  test: [sudo, -n, nginx, -t, -c, /home/ec2-user/evil.conf]\n",
        ] {
            let c = cfg(bad);
            let e = Entry::of(&c, "ec2-user", Path::new("/n"));
            let m = render_sudoers(&c, &e, &tools()).unwrap_err().to_string();
            assert!(m.contains("setup allows only"), "{bad}: {m}");
        }
        assert!(sudo_word("a,b").is_err() && sudo_word("a b").is_err() && sudo_word("x*").is_err());
    }
}

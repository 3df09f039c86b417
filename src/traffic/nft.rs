//! `traffic.via: nftables`: nginx proxies every request to one front port on 127.0.0.1
//! (`traffic.port`, where nothing listens) and is never reloaded by a deploy; nonstop owns one
//! table, `ip nonstop_<app>`, whose nat output chain DNATs each new connection to that port:
//! to the live slot (blue/green), or spread over the slots in rotation with their weights
//! (balanced, canary: `numgen random mod TOTAL map { … }`). Connections already established
//! keep their slot (conntrack), so in-flight requests finish where they started, and no idle
//! keep-alive connection of nginx's is closed.
//!
//! Every change is one `nft -f` transaction (`add table`, `delete table`, the new table: atomic,
//! no moment without a rule), checked by the kernel as a whole (it commits all of it or none),
//! and confirmed after: the objects the kernel echoes for the committed batch (`nft -e`, printed
//! from the kernel's own notifications) must be the table, chain and rule meant; when nft echoes
//! nothing or something else, the table is listed and its rule must be the rule meant. nonstop
//! never touches another table and never flushes the ruleset. A run lists the table once (its
//! reconcile) and, while it holds its lock, reuses that listing until it changes the table: a
//! switch runs `nft` twice, one listing and one transaction. The table's comment records the state (`live=…`, the rotation),
//! so the table is the truth, as the include is in reload mode; a table that is missing (after
//! a reboot, before the boot unit ran) or whose rule is not the one its comment describes is a
//! [`Doubt`], and `switch --slot NAME` repairs it. The last ruleset applied is kept in
//! `state_dir/traffic.nft` and loaded at boot, before nginx, by a unit the supervisor installs.
//!
//! **This is the only module that runs `nft`** (argv lists; every value in a rule is a port or
//! 127.0.0.1, and the table name is checked).

use super::{Traffic, Via};
use crate::config::Config;
use crate::error::{failed, Context, Result};
use crate::fsx;
use crate::nginx::{Member, Rotation};
use crate::slots::Doubt;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// See the module doc.
pub struct Nft;

/// `nonstop_<app>` with `-` as `_` (nft identifiers; one table per app, see [`crate::registry`]).
pub fn table_name(cfg: &Config) -> String {
    crate::registry::table(&cfg.app.name)
}

/// `state_dir/traffic.nft`: the ruleset last applied, for the boot unit.
pub fn ruleset_path(cfg: &Config) -> std::path::PathBuf {
    cfg.state_dir.join("traffic.nft")
}

/// What the table says: the live port and the rotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Steering {
    pub live: Option<u16>,
    pub rotation: Rotation,
}

fn front(cfg: &Config) -> u16 {
    cfg.traffic.port.unwrap_or(0)
}

/// Where new connections go: (port, weight) of every slot that gets traffic.
fn targets(cfg: &Config, s: &Steering) -> Vec<(u16, u32)> {
    targets_for(cfg.balanced(), s)
}

fn targets_for(balanced: bool, s: &Steering) -> Vec<(u16, u32)> {
    if balanced {
        s.rotation
            .iter()
            .filter_map(|(p, m)| match m {
                Member::Up(w) if *w > 0 => Some((*p, *w)),
                _ => None,
            })
            .collect()
    } else {
        s.live.map(|p| vec![(p, 1)]).unwrap_or_default()
    }
}

/// The rule line (as `nft list` prints it) for `s`, or `None` when no slot gets traffic.
pub fn rule(cfg: &Config, s: &Steering) -> Option<String> {
    rule_for(front(cfg), cfg.balanced(), s)
}

/// [`rule`] from the values alone (the root helper has the registry's, not a config).
fn rule_for(front: u16, balanced: bool, s: &Steering) -> Option<String> {
    let t = targets_for(balanced, s);
    let head = format!("ip daddr 127.0.0.1 tcp dport {front} ");
    match t.as_slice() {
        [] => None,
        [(p, _)] => Some(format!("{head}dnat to 127.0.0.1:{p}")),
        many => {
            let total: u32 = many.iter().map(|(_, w)| w).sum();
            let mut at = 0;
            let entries: Vec<String> = many
                .iter()
                .map(|(p, w)| {
                    let key = if *w == 1 {
                        at.to_string()
                    } else {
                        format!("{at}-{}", at + w - 1)
                    };
                    at += w;
                    format!("{key} : 127.0.0.1 . {p}")
                })
                .collect();
            Some(format!(
                "{head}dnat ip to numgen random mod {total} map {{ {} }}",
                entries.join(", ")
            ))
        }
    }
}

/// The table's comment for `s`: `nonstop live=8081 rotation=8081:1,8082:down`.
fn comment(s: &Steering) -> String {
    let rot: Vec<String> = s
        .rotation
        .iter()
        .map(|(p, m)| match m {
            Member::Up(w) => format!("{p}:{w}"),
            Member::Down => format!("{p}:down"),
        })
        .collect();
    format!(
        "nonstop live={} rotation={}",
        s.live.map_or("none".into(), |p| p.to_string()),
        rot.join(",")
    )
}

fn parse_comment(text: &str) -> Option<Steering> {
    let rest = text.trim().strip_prefix("nonstop ")?;
    let mut live = None;
    let mut rotation = vec![];
    for part in rest.split_whitespace() {
        match part.split_once('=')? {
            ("live", "none") => {}
            ("live", p) => live = Some(p.parse().ok()?),
            ("rotation", r) => {
                for e in r.split(',').filter(|e| !e.is_empty()) {
                    let (p, m) = e.split_once(':')?;
                    let m = match m {
                        "down" => Member::Down,
                        w => Member::Up(w.parse().ok()?),
                    };
                    rotation.push((p.parse().ok()?, m));
                }
            }
            _ => return None,
        }
    }
    Some(Steering { live, rotation })
}

/// The whole transaction for `s`: the table replaced atomically.
pub fn render(cfg: &Config, s: &Steering) -> String {
    render_for(
        &cfg.app.name,
        &table_name(cfg),
        front(cfg),
        cfg.balanced(),
        s,
    )
}

/// [`render`] from the values alone.
fn render_for(app: &str, t: &str, front: u16, balanced: bool, s: &Steering) -> String {
    let rule = rule_for(front, balanced, s).map_or(String::new(), |r| format!("\t\t{r}\n"));
    format!(
        "# Managed by nonstop for {app}: steers new connections to 127.0.0.1:{front}. `nonstop status` shows it.\n\
         add table ip {t}\n\
         delete table ip {t}\n\
         table ip {t} {{\n\
         \tcomment \"{comment}\"\n\
         \tchain out {{\n\
         \t\ttype nat hook output priority -100; policy accept;\n\
         {rule}\
         \t}}\n\
         }}\n",
        comment = comment(s),
    )
}

/// What every nft-mode refusal says when no `nft` can be found.
pub const NFT_MISSING: &str = "nft is not installed (not on PATH, not /usr/sbin/nft or /sbin/nft): install the nftables package (`apt-get install nftables` or `dnf install nftables`), or set traffic.via: nginx-reload";

/// The `nft` program: on PATH, else where distributions put it (a hook's PATH may lack sbin).
pub fn nft_bin() -> std::result::Result<String, Missing> {
    which::which("nft")
        .or_else(|_| which::which("/usr/sbin/nft"))
        .or_else(|_| which::which("/sbin/nft"))
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|_| Missing)
}

/// No `nft` program on this host ([`NFT_MISSING`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missing;

/// True when `nft` can be found.
pub fn installed() -> bool {
    nft_bin().is_ok()
}

/// Run nft with `args`; `Err` is nft's first error line. nft runs in a process group of its
/// own, as the nginx commands do: the CodeDeploy agent's SIGTERM to the hook's group at a
/// timeout must not kill it halfway through a transaction.
fn nft(args: &[&str]) -> Result<String> {
    use std::os::unix::process::CommandExt;
    let bin = nft_bin().map_err(|_| failed(NFT_MISSING))?;
    let out = Command::new(&bin)
        .args(args)
        .stdin(Stdio::null())
        .process_group(0)
        .output()
        .context(format!("cannot run `{bin} {}`", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(failed(format!(
            "`nft {}` failed ({}): {}",
            args.join(" "),
            out.status,
            err.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output")
                .trim()
        )))
    }
}

/// The table as this run listed it: `(run, table, listing)`, kept only while the run holds its
/// lock ([`crate::lock::held`]), and forgotten before any change.
static SNAPSHOT: Mutex<Option<(u64, String, Option<String>)>> = Mutex::new(None);

/// Forget the run's listing: the next [`listing`] asks the kernel.
fn forget() {
    *SNAPSHOT.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// The table as loaded now: `Ok(None)` when it does not exist. A run that holds its lock lists
/// the table once: no one else changes it meanwhile but by hand, and every change of nonstop's
/// own ([`Nft::apply`]) forgets the listing first. A run without the lock (`status`,
/// `validate`) always asks the kernel.
fn listing(cfg: &Config) -> std::result::Result<Option<String>, Doubt> {
    match helper(cfg) {
        Some(e) if !root() => {
            let out =
                sudo_steer(&e, &["--show"]).map_err(|e| Doubt::TableUnreadable(e.to_string()))?;
            return Ok(Some(out).filter(|o| !o.trim().is_empty()));
        }
        _ => {}
    }
    if !installed() {
        return Err(Doubt::NftMissing);
    }
    let table = table_name(cfg);
    let run = crate::lock::held(&cfg.state_dir);
    if let (Some(run), Some((r, t, text))) = (
        run,
        SNAPSHOT.lock().unwrap_or_else(|e| e.into_inner()).as_ref(),
    ) {
        if *r == run && *t == table {
            return Ok(text.clone());
        }
    }
    let text = list_table(&table)?;
    *SNAPSHOT.lock().unwrap_or_else(|e| e.into_inner()) = run.map(|r| (r, table, text.clone()));
    Ok(text)
}

/// A table [`list_table`] could not read, as an error (the root-owned `steer` has no config
/// to describe a [`Doubt`] with).
fn unlisted(d: Doubt) -> crate::error::Error {
    match d {
        Doubt::TableUnreadable(why) => failed(format!("cannot list the table: {why}")),
        Doubt::NftMissing => failed(NFT_MISSING),
        other => failed(format!("cannot list the table: {other:?}")),
    }
}

fn list_table(table: &str) -> std::result::Result<Option<String>, Doubt> {
    match nft(&["list", "table", "ip", table]) {
        Ok(text) => Ok(Some(text)),
        // nft's own answer for a table that does not exist.
        Err(e) if e.to_string().contains("No such file or directory") => Ok(None),
        Err(e) => Err(Doubt::TableUnreadable(e.to_string())),
    }
}

/// True when `echo` (what `nft -f FILE -e` printed: the kernel's own notification of each object
/// the committed batch created, and the new generation) is the table `want` means: the table,
/// its chain, and exactly `want`'s rule. Anything else, or nothing, is not a confirmation (an
/// nft without `--echo`, or one printing another format): the caller lists the table.
fn echoed(cfg: &Config, want: &Steering, echo: &str) -> bool {
    echoed_for(&table_name(cfg), rule(cfg, want), echo)
}

/// [`echoed`] from the values alone: table `t` with exactly `want_rule`.
fn echoed_for(t: &str, want_rule: Option<String>, echo: &str) -> bool {
    let chain =
        format!("add chain ip {t} out {{ type nat hook output priority -100; policy accept; }}");
    let rule_head = format!("add rule ip {t} out ");
    let (mut table_seen, mut chain_seen, mut committed) = (false, false, false);
    let mut rules = vec![];
    for l in echo.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if l == format!("add table ip {t}") {
            table_seen = true;
        } else if l == chain {
            chain_seen = true;
        } else if let Some(r) = l.strip_prefix(&rule_head) {
            rules.push(r.to_string());
        } else if l.starts_with("# new generation ") {
            committed = true;
        } else {
            return false;
        }
    }
    table_seen && chain_seen && committed && rules == want_rule.into_iter().collect::<Vec<_>>()
}

/// The rule lines of a listing, read whole: the rules of chain `out` after its `type … hook
/// output …` line, or `Err` naming the first thing in the table nonstop never writes (another
/// chain, a set, a second hook line, a line outside the chain). `nft list table` prints one
/// object or rule per line, each block closed by a `}` of its own.
fn rule_lines(listing: &str) -> std::result::Result<Vec<String>, String> {
    let mut rules = vec![];
    // 0: before the table, 1: in the table, 2: in chain `out`, 3: after the table.
    let (mut depth, mut hook) = (0, false);
    for l in listing.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let foreign = |l: &str| Err(format!("it holds `{l}`, which nonstop did not write"));
        match depth {
            0 if l.starts_with("table ip ") && l.ends_with('{') => depth = 1,
            1 if l.starts_with("comment \"") => {}
            1 if l == "chain out {" && !hook => depth = 2,
            1 if l == "}" => depth = 3,
            2 if l.starts_with("type nat hook output ") && !hook => hook = true,
            2 if l == "}" => depth = 1,
            2 if hook => rules.push(l.to_string()),
            _ => return foreign(l),
        }
    }
    if depth != 3 || !hook {
        return Err("its chain `out` with the output hook is missing or not closed".into());
    }
    Ok(rules)
}

/// Read the table: what its comment says, checked against its rule.
pub fn read(cfg: &Config) -> std::result::Result<Steering, Doubt> {
    let text = listing(cfg)?.ok_or(Doubt::TableMissing)?;
    parse_listing(&text, front(cfg), cfg.balanced())
}

/// What a listing says, checked: its comment's state must mean its rule.
fn parse_listing(text: &str, front: u16, balanced: bool) -> std::result::Result<Steering, Doubt> {
    let st = text
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("comment \"")
                .and_then(|c| c.strip_suffix('"'))
        })
        .and_then(parse_comment)
        .ok_or_else(|| Doubt::TableUnreadable("its comment does not say nonstop's state".into()))?;
    let want: Vec<String> = rule_for(front, balanced, &st).into_iter().collect();
    let have = rule_lines(text).map_err(Doubt::TableDiffers)?;
    if have != want {
        return Err(Doubt::TableDiffers(format!(
            "its rule is {:?}, but its state ({}) means {:?}",
            have.join("; "),
            comment(&st),
            want.join("; ")
        )));
    }
    Ok(st)
}

fn root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The app's registry entry when `sudo nonstop setup` set it up for a hook user in nftables
/// mode: the table is then changed only by the root-owned `nonstop steer` (through its one
/// sudo line, or in this process as root), from the registry's front port and slot ports.
fn helper(cfg: &Config) -> Option<crate::registry::Entry> {
    crate::registry::read(std::path::Path::new(crate::registry::DIR), &cfg.app.name)
        .ok()
        .flatten()
        .filter(|e| e.hook_user != "root" && e.traffic == Via::Nftables)
}

/// The app's registry entry when it is set up on this host for nftables steering, whoever
/// runs its hooks.
fn steered(cfg: &Config) -> Option<crate::registry::Entry> {
    crate::registry::read(std::path::Path::new(crate::registry::DIR), &cfg.app.name)
        .ok()
        .flatten()
        .filter(|e| e.traffic == Via::Nftables && e.state_dir == cfg.state_dir)
}

/// `state_dir/steer.want`: the steering the hook user asks the helper for (the table's comment
/// format: `nonstop live=8082 rotation=8081:down,8082:1`).
pub fn want_path(state_dir: &std::path::Path) -> std::path::PathBuf {
    state_dir.join("steer.want")
}

/// `sudo -n NONSTOP steer --app APP ARGS`: its stdout, or its last stderr line as the error.
fn sudo_steer(e: &crate::registry::Entry, args: &[&str]) -> Result<String> {
    let out = Command::new("sudo")
        .arg("-n")
        .arg(&e.nonstop)
        .args(["steer", "--app", &e.app])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("cannot run sudo")?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    Err(failed(format!(
        "`sudo -n {} steer --app {}{}` failed: {}",
        e.nonstop.display(),
        e.app,
        args.iter().map(|a| format!(" {a}")).collect::<String>(),
        err.lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("no output (is it in the sudo rules `sudo nonstop setup` writes?)")
            .trim()
    )))
}

/// Ask the root helper for `want` and confirm the table says it.
fn apply_through_helper(
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
            crate::cli::out_raw(t.as_bytes());
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
pub(super) fn steered_entry(app: &str) -> Result<(crate::registry::Entry, u16)> {
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
/// it kept for boot (`state_dir/traffic.nft`, root's own). `None`: nothing was ever asked.
pub(super) fn recorded(e: &crate::registry::Entry) -> Result<Option<Steering>> {
    let path = want_path(&e.state_dir);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(m) => m,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let kept = e.state_dir.join("traffic.nft");
            if e.hook_user != "root" {
                return Ok(None);
            }
            return Ok(std::fs::read_to_string(&kept).ok().and_then(|t| {
                t.lines().find_map(|l| {
                    l.trim()
                        .strip_prefix("comment \"")
                        .and_then(|c| c.strip_suffix('"'))
                        .and_then(parse_comment)
                })
            }));
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

/// Apply `want` as `e`'s table (root): checked by the kernel, applied in one transaction,
/// listed back and compared whole.
pub(super) fn apply_entry(e: &crate::registry::Entry, front: u16, want: &Steering) -> Result<()> {
    check_steering(e, want)?;
    let ruleset = render_for(&e.app, &e.table, front, e.balanced, want);
    let dir = std::path::Path::new("/run/nonstop");
    fsx::create_dirs(dir).context("cannot create /run/nonstop")?;
    let file = dir.join(format!("{}.nft", e.app));
    fsx::write_atomic_record(&file, ruleset.as_bytes(), 0o600)?;
    let f = file.to_string_lossy().into_owned();
    // One transaction, all of it or none (as `Nft::apply`); the kernel's echo confirms it,
    // else (no echo that matches, or a failure) the table is listed.
    let ran = nft(&["-f", &f, "-e"]);
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

/// Whether `table` is loaded now (root): `Err` when nft cannot say.
pub(super) fn table_loaded(table: &str) -> Result<bool> {
    list_table(table).map(|t| t.is_some()).map_err(unlisted)
}

/// The `nft` program for the watcher's `nft monitor`.
pub(super) fn nft_program() -> Result<String> {
    nft_bin().map_err(|_| failed(NFT_MISSING))
}

impl Traffic for Nft {
    fn via(&self) -> Via {
        Via::Nftables
    }

    fn live(&self, cfg: &Config) -> std::result::Result<Option<u16>, Doubt> {
        read(cfg).map(|s| s.live)
    }

    fn rotation(&self, cfg: &Config) -> Result<Rotation> {
        let recorded = read(cfg).ok();
        let live = recorded.as_ref().and_then(|s| s.live);
        let entries = recorded
            .as_ref()
            .filter(|_| cfg.balanced())
            .map(|r| r.rotation.as_slice());
        Ok(super::by_slot(cfg, entries, live))
    }

    fn apply(
        &self,
        cfg: &Config,
        rot: &Rotation,
        live: Option<u16>,
        always: bool,
    ) -> Result<Duration> {
        let t0 = Instant::now();
        nft_bin().map_err(|_| failed(NFT_MISSING))?;
        let before = read(cfg).ok();
        // `live: None` keeps the table's live slot; blue/green's rotation is that slot alone.
        let live = live.or(before.as_ref().and_then(|b| b.live));
        let want = Steering {
            live,
            rotation: if cfg.balanced() {
                rot.clone()
            } else {
                super::by_slot(cfg, None, live)
            },
        };
        if !always && before.as_ref() == Some(&want) {
            log::info!(
                "table ip {} already steers as wanted; nothing to change",
                table_name(cfg)
            );
            return Ok(t0.elapsed());
        }
        if let Some(e) = helper(cfg) {
            return apply_through_helper(cfg, &e, &want, t0);
        }
        let text = render(cfg, &want);
        fsx::create_dirs(&cfg.state_dir)
            .context(format!("cannot create {}", cfg.state_dir.display()))?;
        let next = cfg.state_dir.join("traffic.nft.next");
        // Read by nft at once, then kept for boot: a record, not waited on the disk for.
        fsx::write_atomic_record(&next, text.as_bytes(), 0o644)?;
        let next_s = next.to_string_lossy().into_owned();
        // No separate `nft -c`: the kernel checks the batch and commits all of it or none, and
        // a check is a kernel transaction of its own (as long as the change itself).
        // Whatever the command said, the kernel's table is the truth: nft killed or failing
        // after its commit has still moved traffic, and one failing before has changed nothing.
        // Its echo confirms what the kernel committed; without one that matches, and after any
        // failure, the table is listed from the kernel.
        forget();
        let ran = nft(&["-f", &next_s, "-e"]);
        let now = match &ran {
            Ok(echo) if echoed(cfg, &want, echo) => Ok(want.clone()),
            _ => read(cfg),
        };
        match (&ran, &now) {
            (Ok(_), Ok(n)) if *n == want => {}
            (Err(e), Ok(n)) if *n == want => log::warn!(
                "{e}, but the kernel holds the table meant: table ip {} is applied",
                table_name(cfg)
            ),
            (Err(e), _) => {
                let _ = std::fs::remove_file(&next);
                let what = match &now {
                    Ok(n) if Some(n) == before.as_ref() => {
                        "the table is as before: nothing changed".to_string()
                    }
                    Err(Doubt::TableMissing) if before.is_none() => {
                        "there is still no table: nothing changed".to_string()
                    }
                    Ok(n) => format!("the table now says {}", comment(n)),
                    Err(d) => d.describe(cfg),
                };
                return Err(failed(format!("{e}; read back from the kernel: {what}")));
            }
            (Ok(_), other) => {
                let why = match other {
                    Ok(now) => format!("it says {}", comment(now)),
                    Err(d) => format!("{d:?}"),
                };
                // Put the previous table back (itself one transaction), if there was one.
                forget();
                let back = before
                    .as_ref()
                    .map(|b| {
                        let _ = fsx::write_atomic(&next, render(cfg, b).as_bytes(), 0o644);
                        nft(&["-f", &next_s]).is_ok()
                    })
                    .unwrap_or(false);
                let _ = std::fs::remove_file(&next);
                return Err(failed(format!(
                    "table ip {} is not what was applied ({why}){}",
                    table_name(cfg),
                    if back {
                        "; the previous table is back"
                    } else {
                        ""
                    }
                )));
            }
        }
        // Kept for the boot unit; the kernel table is the truth, so a failure is a warning.
        if let Err(e) = std::fs::rename(&next, ruleset_path(cfg)) {
            log::warn!(
                "could not keep {} for boot: {e}",
                ruleset_path(cfg).display()
            );
        }
        if let Some(e) = steered(cfg) {
            // Set up on this host (a root deploy sets itself up): setup's steering unit loads
            // the table at boot and again after a ruleset flush, from steer.want.
            if let Err(err) = fsx::write_atomic_record(
                &want_path(&e.state_dir),
                format!("{}\n", comment(&want)).as_bytes(),
                0o644,
            ) {
                log::warn!(
                    "the table will not come back by itself after a flush or a reboot: {err}"
                );
            }
            return Ok(done(cfg, &want, t0));
        }
        let boot = [
            // Traffic has moved: nothing here fails the change.
            nft_bin().unwrap_or_else(|_| "/usr/sbin/nft".into()),
            "-f".to_string(),
            ruleset_path(cfg).to_string_lossy().into_owned(),
        ];
        match crate::supervisor::of(cfg).boot_command(cfg, "traffic", &boot, "nginx.service") {
            Ok(true) => {}
            Ok(false) => log::debug!(
                "no supervisor to load {} at boot: after a reboot, `nonstop switch --slot NAME` loads the table",
                ruleset_path(cfg).display()
            ),
            Err(e) => log::warn!("the table will not come back at boot by itself: {e}"),
        }
        Ok(done(cfg, &want, t0))
    }

    fn truth(&self, cfg: &Config) -> String {
        format!("nftables table ip {}", table_name(cfg))
    }

    fn change(&self) -> &'static str {
        "nft transaction"
    }
}

/// Log a change done and say how long it took.
fn done(cfg: &Config, want: &Steering, t0: Instant) -> Duration {
    log::info!(
            "table ip {}: new connections to 127.0.0.1:{} now go to {} ({} in one nft transaction; nginx not reloaded)",
            table_name(cfg),
            front(cfg),
            match targets(cfg, want).as_slice() {
                [] => "nothing".to_string(),
                t => t
                    .iter()
                    .map(|(p, w)| if t.len() > 1 { format!("{p} (weight {w})") } else { p.to_string() })
                    .collect::<Vec<_>>()
                    .join(", "),
            },
            crate::log::human(t0.elapsed())
        );
    t0.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        crate::config::parse(
            &format!("app:\n  name: my-app\ntraffic:\n  via: nftables\n  port: 18090\n{extra}"),
            std::path::Path::new("/x/n.yml"),
        )
        .unwrap()
    }

    #[test]
    fn renders_one_atomic_transaction() {
        let c = cfg("");
        let s = Steering {
            live: Some(8082),
            rotation: vec![(8081, Member::Down), (8082, Member::Up(1))],
        };
        let t = render(&c, &s);
        assert!(t.contains("add table ip nonstop_my_app\ndelete table ip nonstop_my_app\ntable ip nonstop_my_app {"), "{t}");
        assert!(
            t.contains("\t\tip daddr 127.0.0.1 tcp dport 18090 dnat to 127.0.0.1:8082\n"),
            "{t}"
        );
        assert!(
            t.contains("comment \"nonstop live=8082 rotation=8081:down,8082:1\""),
            "{t}"
        );
        assert_eq!(parse_comment(&comment(&s)), Some(s.clone()));
        let none = Steering {
            live: None,
            rotation: vec![(8081, Member::Down), (8082, Member::Down)],
        };
        assert_eq!(rule(&c, &none), None);
    }

    #[test]
    fn only_the_kernels_echo_of_the_table_meant_confirms_a_change() {
        let c = cfg("");
        let s = Steering {
            live: Some(8082),
            rotation: vec![(8081, Member::Down), (8082, Member::Up(1))],
        };
        // What nft 1.0.6 prints for the transaction (the table existed before).
        let echo = "add table ip nonstop_my_app\n\
             add chain ip nonstop_my_app out { type nat hook output priority -100; policy accept; }\n\
             add rule ip nonstop_my_app out ip daddr 127.0.0.1 tcp dport 18090 dnat to 127.0.0.1:8082\n\
             # new generation 27 by process 24452 (nft)\n";
        assert!(echoed(&c, &s, echo));
        // A first table: nft echoes its `add table` twice.
        assert!(echoed(
            &c,
            &s,
            &format!("add table ip nonstop_my_app\n{echo}")
        ));
        // Another rule, a second rule, no commit, another table, a line not understood, nothing.
        assert!(!echoed(&c, &s, &echo.replace(":8082", ":8081")));
        let twice = echo.replace(
            "# new",
            "add rule ip nonstop_my_app out tcp dport 22 accept\n# new",
        );
        assert!(!echoed(&c, &s, &twice));
        assert!(!echoed(&c, &s, &echo.replace("# new generation", "# old")));
        assert!(!echoed(
            &c,
            &s,
            &echo.replace("nonstop_my_app", "nonstop_other")
        ));
        assert!(!echoed(
            &c,
            &s,
            &format!("{echo}delete table ip nonstop_my_app\n")
        ));
        assert!(!echoed(&c, &s, ""));
        // No slot live: the table and its chain, no rule.
        let none = Steering {
            live: None,
            rotation: vec![(8081, Member::Down), (8082, Member::Down)],
        };
        let bare: String = echo
            .lines()
            .filter(|l| !l.contains("dnat"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(echoed(&c, &none, &bare));
        assert!(!echoed(&c, &s, &bare));
    }

    #[test]
    fn balanced_spreads_by_weight() {
        let c = cfg("  balanced: true\nslots:\n  - {name: a, port: 8081, profile: p1}\n  - {name: b, port: 8082, profile: p2}\n  - {name: c, port: 8083, profile: p3}\n");
        let s = Steering {
            live: Some(8081),
            rotation: vec![
                (8081, Member::Up(90)),
                (8082, Member::Up(10)),
                (8083, Member::Down),
            ],
        };
        assert_eq!(
            rule(&c, &s).unwrap(),
            "ip daddr 127.0.0.1 tcp dport 18090 dnat ip to numgen random mod 100 map { 0-89 : 127.0.0.1 . 8081, 90-99 : 127.0.0.1 . 8082 }"
        );
        let even = Steering {
            live: Some(8081),
            rotation: vec![
                (8081, Member::Up(1)),
                (8082, Member::Up(1)),
                (8083, Member::Up(1)),
            ],
        };
        assert!(rule(&c, &even).unwrap().ends_with(
            "mod 3 map { 0 : 127.0.0.1 . 8081, 1 : 127.0.0.1 . 8082, 2 : 127.0.0.1 . 8083 }"
        ));
    }

    #[test]
    fn the_helper_takes_only_the_slot_ports_setup_fixed() {
        let c = cfg("  balanced: true\n");
        let e = crate::registry::Entry::of(&c, "ec2-user", std::path::Path::new("/n"));
        let ok = Steering {
            live: Some(8082),
            rotation: vec![(8081, Member::Up(90)), (8082, Member::Up(10))],
        };
        check_steering(&e, &ok).unwrap();
        // The table the helper builds from the registry is the one the config would.
        assert_eq!(
            render_for(&e.app, &e.table, e.front_port.unwrap(), e.balanced, &ok),
            render(&c, &ok)
        );
        for (bad, why) in [
            (
                Steering {
                    live: Some(22),
                    rotation: vec![],
                },
                "live port 22 is not a slot port of app my-app",
            ),
            (
                Steering {
                    live: Some(8081),
                    rotation: vec![(8081, Member::Up(1)), (22, Member::Up(1))],
                },
                "rotation names port 22",
            ),
            (
                Steering {
                    live: Some(8081),
                    rotation: vec![(8081, Member::Up(1)), (8081, Member::Up(1))],
                },
                "rotation names port 8081",
            ),
        ] {
            let m = check_steering(&e, &bad).unwrap_err().to_string();
            assert!(m.contains(why), "{m}");
        }
        // What the hook user writes is the table's comment format, read back the same.
        assert_eq!(parse_comment(comment(&ok).trim()), Some(ok));
    }
}

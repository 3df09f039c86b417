//! nginx: reading and rendering the include file, and the one transaction that changes nginx
//! configuration. **This is the only module that writes nginx files.**
//!
//! The transaction ([`apply`]): confirm the master is running, write each file atomically, run
//! the test command, restore the previous bytes if it fails (nginx never loads the bad file),
//! reload, and confirm the reload took effect: new worker processes appear under the master
//! named by `nginx.pid_file`. If they do not within [`CONFIRM`], restore, reload again, fail.

use crate::config::Config;
use crate::error::{failed, Context, Error, Refusal, Result};
use crate::fsx::{self, Original};
use crate::process;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// How long a reload has to show new workers.
pub const CONFIRM: Duration = Duration::from_secs(10);
/// How long the test and reload commands may run.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The include's content for `port`: `set $service_url http://127.0.0.1:8082;`
pub fn render_include(cfg: &Config, port: u16) -> String {
    format!(
        "set ${} http://{}:{};\n",
        cfg.nginx.variable, cfg.nginx.host, port
    )
}

/// The port named by `set $VAR VALUE;` in `text`, read as nginx reads it: the last such
/// statement wins (nginx runs every `set` in order), variable names are case-insensitive,
/// quotes and comments are nginx's. VALUE may be a URL (`http://127.0.0.1:8081`, with or
/// without a path) or a bare port (`8081`, as one of the legacy blogs writes it).
/// `Ok(None)`: no such statement. A `set` inside a block, or a value built from variables,
/// is an error: which slot it names depends on the request.
pub fn parse_include(text: &str, variable: &str) -> std::result::Result<Option<u16>, String> {
    let want = format!("${}", variable.to_ascii_lowercase());
    let mut found = None;
    let mut depth = 0usize;
    for words in crate::nginx_tokens::statements(text)? {
        match words[0].as_str() {
            "{" => depth += 1,
            "}" => depth = depth.saturating_sub(1),
            "set" if words.get(1).is_some_and(|w| w.to_ascii_lowercase() == want) => {
                if depth > 0 {
                    return Err(format!(
                        "`set {want}` inside a block: which slot it names depends on the request"
                    ));
                }
                let value = match &words[2..] {
                    [v] => v.as_str(),
                    [] => return Err(format!("`set {want}` has no value")),
                    _ => return Err(format!("`set {want}` has more than one value")),
                };
                if value.contains('$') {
                    return Err(format!(
                        "`set {want} {value}` uses a variable: which slot it names depends on the request"
                    ));
                }
                found = Some(
                    port_of_value(value)
                        .ok_or_else(|| format!("cannot read a port from `set {want} {value}`"))?,
                );
            }
            _ => {}
        }
    }
    Ok(found)
}

/// The port in `http://host:PORT[/path]`, `host:PORT` or `PORT`.
fn port_of_value(value: &str) -> Option<u16> {
    let hostport = value
        .split_once("://")
        .map_or(value, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or("");
    let port = hostport.rsplit_once(':').map_or(hostport, |(_, p)| p);
    port.parse::<u16>().ok().filter(|p| *p != 0)
}

/// The port the include points at now; `None` if there is no include file.
pub fn read_include_port(cfg: &Config) -> Result<Option<u16>> {
    let path = &cfg.nginx.include;
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(failed(format!("cannot read {}: {e}", path.display()))),
    };
    parse_include(&text, &cfg.nginx.variable).map_err(|e| {
        failed(format!(
            "{}: {e}; expected `set ${} http://HOST:PORT;`",
            path.display(),
            cfg.nginx.variable
        ))
    })
}

/// A slot's place in the upstream: in rotation with a weight, or marked `down`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    Up(u32),
    Down,
}

/// Rotation by slot port, in slot order.
pub type Rotation = Vec<(u16, Member)>;

/// The upstream file for `rotation`: one `server` line per slot, `down` when out.
pub fn render_upstream(cfg: &Config, rotation: &Rotation) -> String {
    let mut out = format!(
        "# Managed by nonstop for {}: one server per slot; `down` = out of rotation. Do not edit.\nupstream {} {{\n",
        cfg.app.name, cfg.nginx.upstream_name
    );
    for (port, m) in rotation {
        let name = cfg
            .slots
            .iter()
            .find(|s| s.port == *port)
            .map_or("?", |s| s.name.as_str());
        let params = match m {
            Member::Up(1) => String::new(),
            Member::Up(w) => format!(" weight={w}"),
            Member::Down => " down".into(),
        };
        out += &format!("    server {}:{port}{params};  # {name}\n", cfg.nginx.host);
    }
    out += "}\n";
    out
}

/// The rotation written in an upstream file: port -> member, for every `server` line.
pub fn parse_upstream(text: &str) -> std::result::Result<Vec<(u16, Member)>, String> {
    let mut out = vec![];
    for words in crate::nginx_tokens::words(text) {
        if words[0] != "server" {
            continue;
        }
        let addr = words.get(1).ok_or("`server` without an address")?;
        let port: u16 = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("cannot read a port from `server {addr}`"))?;
        let mut m = Member::Up(1);
        for w in &words[2..] {
            if w == "down" {
                m = Member::Down;
            } else if let Some(v) = w.strip_prefix("weight=") {
                let v: u32 = v.parse().map_err(|_| format!("bad weight in `{w}`"))?;
                if m != Member::Down {
                    m = Member::Up(v);
                }
            }
        }
        out.push((port, m));
    }
    Ok(out)
}

/// One file of a transaction: where, and the new bytes.
#[derive(Debug, Clone)]
pub struct Change {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// The nginx master's pid from `nginx.pid_file`, if that process is running and is an nginx
/// master (its /proc command line is nginx's `nginx: master process …` title): a pid file
/// naming any other process is refused, so nonstop never signals a stranger.
pub fn master_pid(cfg: &Config) -> Result<i32> {
    let pf = &cfg.nginx.pid_file;
    let text = std::fs::read_to_string(pf).map_err(|e| {
        failed(format!(
            "nginx master is not running: cannot read pid file {} ({e})",
            pf.display()
        ))
    })?;
    let pid: i32 = text
        .trim()
        .parse()
        .map_err(|_| failed(format!("nginx pid file {} holds no pid", pf.display())))?;
    if !process::alive(pid) {
        return Err(failed(format!(
            "nginx master is not running: pid {pid} from {} is gone",
            pf.display()
        )));
    }
    let cmd = process::cmdline(pid).join(" ");
    if !cmd.starts_with("nginx: master process") {
        return Err(Error::refused(Refusal::NotNginxMaster { pid }, format!(
            "nginx pid file {} names pid {pid}, which is not an nginx master ({}); refusing to signal it",
            pf.display(),
            if cmd.is_empty() { "command line unknown".into() } else { cmd }
        )));
    }
    Ok(pid)
}

/// When the running nginx last loaded its configuration: the start of its newest worker (a
/// reload or a restart starts new workers after reading every file). `None` when no master
/// runs or it has no workers to tell by.
pub fn loaded_at(cfg: &Config) -> Option<SystemTime> {
    let master = master_pid(cfg).ok()?;
    process::children(master)
        .into_iter()
        .filter_map(process::started_at)
        .max()
}

/// Files nginx has not loaded: each of `paths` changed after [`loaded_at`] (by more than
/// [`CLOCK_SLACK`]), with its modification time. Empty when nginx is not running.
pub fn not_loaded(cfg: &Config, paths: &[&Path]) -> Vec<(PathBuf, SystemTime)> {
    let Some(loaded) = loaded_at(cfg) else {
        return vec![];
    };
    paths
        .iter()
        .filter_map(|p| {
            let m = std::fs::metadata(p).ok()?.modified().ok()?;
            (m > loaded + CLOCK_SLACK).then(|| (p.to_path_buf(), m))
        })
        .collect()
}

/// How much later than the newest worker's start a file may look and still count as loaded:
/// /proc start times have 10 ms ticks and are turned into wall time through /proc/uptime.
pub const CLOCK_SLACK: Duration = Duration::from_millis(100);

/// Apply `changes` as one transaction (see the module doc). Returns how long it took; a
/// transaction whose files already hold the new bytes does nothing.
pub fn apply(cfg: &Config, changes: &[Change]) -> Result<Duration> {
    transact(cfg, changes, false)
}

/// [`apply`], reloading nginx even when the files already hold the new bytes: the repair for
/// files nginx has not loaded (an interrupted switch, a hand edit without a reload).
pub fn apply_and_reload(cfg: &Config, changes: &[Change]) -> Result<Duration> {
    transact(cfg, changes, true)
}

/// The files of one transaction as they were before it, and how many have been replaced.
struct Undo<'a> {
    changes: &'a [Change],
    originals: Vec<Option<Original>>,
    written: usize,
}

impl Undo<'_> {
    /// Put back every file written so far. `exact`: also their modification times, which
    /// says "nginx has loaded this" again; only right when nginx never loaded the new bytes.
    fn restore(&self, exact: bool) {
        for (c, orig) in self.changes.iter().zip(&self.originals).take(self.written) {
            let r = match orig {
                Some(o) => fsx::replace(&c.path, &o.bytes, Some(o)).and_then(|_| {
                    if exact {
                        fsx::set_mtime(&c.path, o.mtime)
                    } else {
                        Ok(())
                    }
                }),
                None => std::fs::remove_file(&c.path)
                    .or_else(|e| {
                        if e.kind() == std::io::ErrorKind::NotFound {
                            Ok(())
                        } else {
                            Err(e)
                        }
                    })
                    .context(format!("cannot remove {}", c.path.display())),
            };
            match r {
                Ok(()) => log::warn!("restored {}", c.path.display()),
                Err(e) => log::error!("could not restore {}: {e}", c.path.display()),
            }
        }
    }
}

/// How a reload ended, as nginx's process table shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reload {
    /// New workers run under the master and no old one still accepts.
    Applied,
    /// The master exited while we waited.
    MasterGone,
    /// No new workers within [`CONFIRM`].
    NoNewWorkers,
}

fn transact(cfg: &Config, changes: &[Change], always_reload: bool) -> Result<Duration> {
    let t0 = Instant::now();
    let master = master_pid(cfg)?;
    let originals = changes
        .iter()
        .map(|c| fsx::read_original(&c.path))
        .collect::<Result<Vec<_>>>()?;
    let unchanged = changes
        .iter()
        .zip(&originals)
        .all(|(c, o)| o.as_ref().is_some_and(|o| o.bytes == c.bytes));
    if unchanged && !always_reload {
        log::info!("nginx files already hold the wanted content; no reload needed");
        return Ok(t0.elapsed());
    }
    let mut undo = Undo {
        changes,
        originals,
        written: 0,
    };
    for (c, orig) in changes.iter().zip(&undo.originals) {
        match fsx::replace(&c.path, &c.bytes, orig.as_ref()) {
            Ok(in_place) => {
                undo.written += 1;
                log::info!(
                    "wrote {}{}",
                    c.path.display(),
                    if in_place {
                        " in place (its folder is not writable for this user)"
                    } else {
                        ""
                    }
                );
            }
            Err(e) => {
                undo.restore(true);
                return Err(e);
            }
        }
    }
    let test = cfg.nginx.test.join(" ");
    match run_cmd(&cfg.nginx.test) {
        Ok((true, _)) => log::debug!("`{test}` passed"),
        Ok((false, out)) => {
            undo.restore(true);
            return Err(Error::NginxRejected {
                argv: cfg.nginx.test.clone(),
                reason: telling_line(&out),
            });
        }
        Err(e) => {
            undo.restore(true);
            return Err(Error::NginxNotRun { why: e.to_string() });
        }
    }
    let reload = cfg.nginx.reload.join(" ");
    let before: HashSet<i32> = process::children(master).into_iter().collect();
    let ran = run_cmd(&cfg.nginx.reload);
    if let Err(e @ RunError::Spawn(_)) = &ran {
        undo.restore(true);
        return Err(Error::NginxNotRun { why: e.to_string() });
    }
    // Whatever the command said, nginx's process table is the truth: a reload command that
    // reloads and then fails or hangs has still moved traffic.
    match wait_new_workers(master, &before) {
        Reload::Applied => {
            match &ran {
                Ok((true, _)) => {}
                Ok((false, out)) => log::warn!(
                    "`{reload}` failed ({}), but nginx did reload: new workers under master pid {master}",
                    telling_line(out)
                ),
                Err(e) => log::warn!(
                    "{e}, but nginx did reload: new workers under master pid {master}"
                ),
            }
            log::info!(
                "nginx reloaded: new workers under master pid {master}, old ones no longer accept ({} after writing)",
                crate::log::human(t0.elapsed())
            );
            Ok(t0.elapsed())
        }
        outcome => {
            let why = match (&ran, outcome) {
                (_, Reload::MasterGone) => {
                    format!("nginx master pid {master} exited during `{reload}`")
                }
                (Ok((false, out)), _) => format!("`{reload}` failed ({})", telling_line(out)),
                (Err(e), _) => e.to_string(),
                _ => format!(
                    "no new nginx workers under master pid {master} within {:?} of `{reload}`",
                    CONFIRM
                ),
            };
            // nginx may or may not have read the new files: put the old ones back and reload
            // again, so what it serves is the old config either way.
            undo.restore(false);
            let again = outcome != Reload::MasterGone && {
                let before: HashSet<i32> = process::children(master).into_iter().collect();
                matches!(run_cmd(&cfg.nginx.reload), Ok((true, _)))
                    && wait_new_workers(master, &before) == Reload::Applied
            };
            Err(Error::NginxNotApplied {
                why,
                reloaded: again,
            })
        }
    }
}

/// Wait up to [`CONFIRM`] for the reload to take effect: a child of `master` that was not
/// there before, and no old worker still holding the master's listening sockets (an old
/// worker that still listens could accept a connection and serve it with the old config).
fn wait_new_workers(master: i32, before: &HashSet<i32>) -> Reload {
    let t0 = Instant::now();
    let listeners = process::listening_sockets_of(master);
    while t0.elapsed() < CONFIRM {
        if !process::alive(master) {
            return Reload::MasterGone;
        }
        let fresh = process::children(master)
            .iter()
            .any(|p| !before.contains(p));
        // Without access to the workers' descriptors (nonstop not root, nginx's workers
        // another user's), an old worker still accepts until its title says it is shutting
        // down, which any user can read.
        let old_listening = before.iter().any(|&old| {
            process::alive(old)
                && if listeners.is_empty() {
                    let title = process::cmdline(old).join(" ");
                    title.contains("worker process") && !title.contains("shutting down")
                } else {
                    process::holds_socket(old, &listeners)
                }
        });
        if fresh && !old_listening {
            return Reload::Applied;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Reload::NoNewWorkers
}

/// Why an external command gave no answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RunError {
    /// It could not be started (no such program, not executable): it did nothing.
    #[error("{0}")]
    Spawn(String),
    /// It ran past [`COMMAND_TIMEOUT`] and was killed with its process group.
    #[error("{0}")]
    Timeout(String),
}

/// Run an argv list (never a shell string) with a timeout; returns success and the
/// combined output.
pub fn run(argv: &[String]) -> Result<(bool, String)> {
    run_cmd(argv).map_err(|e| failed(e.to_string()))
}

fn run_cmd(argv: &[String]) -> std::result::Result<(bool, String), RunError> {
    let shown = argv.join(" ");
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| RunError::Spawn("empty command".into()))?;
    let handle = duct::cmd(prog, args)
        // Own process group: the CodeDeploy agent's SIGTERM to the hook's group at a timeout
        // must not kill `nginx -t` or the reload halfway through a transaction.
        .before_spawn(|c| {
            std::os::unix::process::CommandExt::process_group(c, 0);
            Ok(())
        })
        .stdin_null()
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .start()
        .map_err(|e| RunError::Spawn(format!("cannot run `{shown}`: {e}")))?;
    let t0 = Instant::now();
    loop {
        match handle.try_wait() {
            Ok(Some(out)) => {
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                log::debug!("`{shown}` -> {}: {}", out.status, text.trim());
                return Ok((out.status.success(), text));
            }
            Ok(None) => {}
            Err(e) => return Err(RunError::Spawn(format!("`{shown}`: {e}"))),
        }
        if t0.elapsed() > COMMAND_TIMEOUT {
            // The command leads its own group: end it and whatever it started.
            for pid in handle.pids() {
                if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                    let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
                }
            }
            let _ = handle.kill();
            return Err(RunError::Timeout(format!(
                "`{shown}` did not finish within {COMMAND_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The most telling line of a command's output: nginx's most severe error line (`[emerg]`
/// before `[alert]`: nginx -t run by a non-root user first alerts that it cannot open the
/// error log), else the first non-empty line (`systemctl` says why first, then a hint).
pub fn telling_line(out: &str) -> String {
    ["[emerg]", "[alert]", "[crit]", "[error]"]
        .iter()
        .find_map(|lv| out.lines().find(|l| l.contains(lv)))
        .or_else(|| out.lines().find(|l| !l.trim().is_empty()))
        .unwrap_or("no output")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_in_use() {
        let v = "service_url";
        assert_eq!(
            parse_include("set $service_url http://127.0.0.1:8081;\n", v),
            Ok(Some(8081))
        );
        assert_eq!(
            parse_include("# c\nset  $service_url  \"http://localhost:8082/\" ;", v),
            Ok(Some(8082))
        );
        assert_eq!(
            parse_include("set $service_port 8081;", "service_port"),
            Ok(Some(8081))
        );
        assert_eq!(parse_include("set $other http://x:1;", v), Ok(None));
        assert_eq!(parse_include("", v), Ok(None));
        assert!(parse_include("set $service_url http://127.0.0.1:abc;", v).is_err());
    }

    #[test]
    fn reads_the_include_as_nginx_does() {
        let v = "service_url";
        // nginx runs every `set`: the last one wins.
        assert_eq!(
            parse_include(
                "set $service_url http://127.0.0.1:8081;\nset $service_url http://127.0.0.1:8082;\n",
                v
            ),
            Ok(Some(8082))
        );
        // Variable names are case-insensitive in nginx.
        assert_eq!(
            parse_include("set $SERVICE_URL http://127.0.0.1:8082;", v),
            Ok(Some(8082))
        );
        // Quotes, a `#` inside a quoted value, comments after code, several per line.
        assert_eq!(
            parse_include(
                "set $x 1; set $service_url 'http://127.0.0.1:8081/#a'; # set $service_url 9;",
                v
            ),
            Ok(Some(8081))
        );
        // What nginx would not accept, or what depends on the request, is an error, not "none".
        assert!(parse_include("set $service_url http://127.0.0.1:8081", v).is_err());
        assert!(parse_include("garbage;\nset $service_url \"http://x:1;", v).is_err());
        assert!(parse_include("if ($arg_b) { set $service_url http://h:8082; }", v).is_err());
        assert!(parse_include("set $service_url http://$host:8082;", v).is_err());
        assert!(parse_include("set $service_url;", v).is_err());
        assert!(parse_include("set $service_url http://127.0.0.1;", v).is_err());
        assert_eq!(parse_include("garbage;", v), Ok(None));
    }

    #[test]
    fn upstream_round_trips() {
        let cfg = crate::config::parse(
            "app:\n  name: shop\nnginx:\n  upstream_file: up.conf\n",
            std::path::Path::new("/x/n.yml"),
        )
        .unwrap();
        let rot = vec![(8081, Member::Up(1)), (8082, Member::Down)];
        let text = render_upstream(&cfg, &rot);
        assert!(text.contains("upstream shop {"), "{text}");
        assert!(text.contains("server 127.0.0.1:8081;  # blue"), "{text}");
        assert!(
            text.contains("server 127.0.0.1:8082 down;  # green"),
            "{text}"
        );
        assert_eq!(parse_upstream(&text).unwrap(), rot);
        let w = vec![(8081, Member::Up(90)), (8082, Member::Up(10))];
        assert_eq!(parse_upstream(&render_upstream(&cfg, &w)).unwrap(), w);
        assert!(parse_upstream("upstream x { server 127.0.0.1:x; }").is_err());
    }

    #[test]
    fn picks_the_telling_line() {
        let out = "nginx: [emerg] unknown directive \"x\" in /p/a.inc:1\nnginx: configuration file /p/n.conf test failed\n";
        assert!(telling_line(out).contains("unknown directive"));
        let non_root = "nginx: [alert] could not open error log file: open() \"/var/log/nginx/error.log\" failed (13: Permission denied)\nnginx: [emerg] unknown directive \"x\" in /p/a.inc:1\n";
        assert!(telling_line(non_root).contains("unknown directive"));
        let systemctl = "Failed to reload nginx.service: Access denied\nSee system logs and 'systemctl status nginx.service' for details.\n";
        assert_eq!(
            telling_line(systemctl),
            "Failed to reload nginx.service: Access denied"
        );
        assert_eq!(telling_line("\na\nb\n\n"), "a");
        assert_eq!(telling_line(""), "no output");
    }
}

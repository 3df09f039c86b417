//! nginx: reading and rendering the include file, and the one transaction that changes nginx
//! configuration. **This is the only module that writes nginx files.**
//!
//! The transaction ([`apply`]): confirm the master is running, write each file atomically, run
//! the test command, restore the previous bytes if it fails (nginx never loads the bad file),
//! reload, and confirm the reload took effect: new worker processes appear under the master
//! named by `nginx.pid_file`. If they do not within [`CONFIRM`], restore, reload again, fail.

use crate::config::Config;
use crate::error::{failed, Context, Result};
use crate::fsx::write_atomic;
use crate::process;
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

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

/// The port named by `set $VAR VALUE;` in `text` (comments ignored). VALUE may be a URL
/// (`http://127.0.0.1:8081`, with or without a path) or a bare port (`8081`, as one of the
/// legacy blogs writes it). `Ok(None)`: no such statement.
pub fn parse_include(text: &str, variable: &str) -> std::result::Result<Option<u16>, String> {
    let code: String = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let want = format!("${variable}");
    for stmt in code.split(';') {
        let words: Vec<&str> = stmt.split_whitespace().collect();
        if words.len() < 2 || words[0] != "set" || words[1] != want {
            continue;
        }
        let value = words
            .get(2)
            .ok_or_else(|| format!("`set {want}` has no value"))?
            .trim_matches(|c| c == '"' || c == '\'');
        let hostport = value
            .split_once("://")
            .map_or(value, |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or("");
        let port = hostport.rsplit(':').next().unwrap_or(hostport);
        return port
            .parse::<u16>()
            .map(Some)
            .map_err(|_| format!("cannot read a port from `set {want} {value}`"));
    }
    Ok(None)
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
    let code: String = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = vec![];
    for stmt in code.split([';', '{', '}']) {
        let words: Vec<&str> = stmt.split_whitespace().collect();
        if words.first() != Some(&"server") {
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
            if *w == "down" {
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

/// The nginx master's pid from `nginx.pid_file`, if that process is running.
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
    Ok(pid)
}

/// Apply `changes` as one transaction (see the module doc). Returns how long it took; a
/// transaction whose files already hold the new bytes does nothing.
pub fn apply(cfg: &Config, changes: &[Change]) -> Result<Duration> {
    let t0 = Instant::now();
    let master = master_pid(cfg)?;
    let previous: Vec<Option<Vec<u8>>> = changes
        .iter()
        .map(|c| std::fs::read(&c.path).ok())
        .collect();
    if changes
        .iter()
        .zip(&previous)
        .all(|(c, p)| p.as_deref() == Some(&c.bytes[..]))
    {
        log::info!("nginx files already hold the wanted content; no reload needed");
        return Ok(t0.elapsed());
    }
    let restore = || {
        for (c, p) in changes.iter().zip(&previous) {
            let r = match p {
                Some(b) => write_atomic(&c.path, b, 0o644),
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
    };
    for c in changes {
        if let Err(e) = write_atomic(&c.path, &c.bytes, 0o644) {
            restore();
            return Err(e);
        }
        log::info!("wrote {}", c.path.display());
    }
    let (ok, out) = run(&cfg.nginx.test)?;
    if !ok {
        restore();
        return Err(failed(format!(
            "`{}` rejected the new config ({}); previous files restored, nginx not reloaded",
            cfg.nginx.test.join(" "),
            last_line(&out)
        )));
    }
    log::debug!("`{}` passed", cfg.nginx.test.join(" "));
    let before: HashSet<i32> = process::children(master).into_iter().collect();
    let (ok, out) = run(&cfg.nginx.reload)?;
    let confirmed = ok && wait_new_workers(master, &before);
    if !confirmed {
        restore();
        let why = if ok {
            format!(
                "no new nginx workers under master pid {master} within {:?} of `{}`",
                CONFIRM,
                cfg.nginx.reload.join(" ")
            )
        } else {
            format!(
                "`{}` failed ({})",
                cfg.nginx.reload.join(" "),
                last_line(&out)
            )
        };
        let again = run(&cfg.nginx.reload).map(|r| r.0).unwrap_or(false);
        return Err(failed(format!(
            "reload not applied: {why}; previous files restored{}",
            if again {
                " and reloaded"
            } else {
                " (the second reload failed too)"
            }
        )));
    }
    log::info!(
        "nginx reloaded: new workers under master pid {master}, old ones no longer accept ({} after writing)",
        crate::log::human(t0.elapsed())
    );
    Ok(t0.elapsed())
}

/// Wait up to [`CONFIRM`] for the reload to take effect: a child of `master` that was not
/// there before, and no old worker still holding the master's listening sockets (an old
/// worker that still listens could accept a connection and serve it with the old config).
fn wait_new_workers(master: i32, before: &HashSet<i32>) -> bool {
    let t0 = Instant::now();
    let listeners = process::listening_sockets_of(master);
    while t0.elapsed() < CONFIRM {
        if !process::alive(master) {
            return false;
        }
        let fresh = process::children(master)
            .iter()
            .any(|p| !before.contains(p));
        let old_listening = before
            .iter()
            .any(|&old| process::alive(old) && process::holds_socket(old, &listeners));
        if fresh && !old_listening {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Run an argv list (never a shell string) with a timeout; returns success and the
/// combined output.
pub fn run(argv: &[String]) -> Result<(bool, String)> {
    let (prog, args) = argv.split_first().ok_or_else(|| failed("empty command"))?;
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
        .context(format!("cannot run `{}`", argv.join(" ")))?;
    let t0 = Instant::now();
    loop {
        if let Some(out) = handle.try_wait().context(format!("`{}`", argv.join(" ")))? {
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            log::debug!("`{}` -> {}: {}", argv.join(" "), out.status, text.trim());
            return Ok((out.status.success(), text));
        }
        if t0.elapsed() > COMMAND_TIMEOUT {
            let _ = handle.kill();
            return Err(failed(format!(
                "`{}` did not finish within {:?}",
                argv.join(" "),
                COMMAND_TIMEOUT
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The most telling line of a command's output: nginx's first error line, else the last line.
fn last_line(out: &str) -> String {
    let levels = ["[emerg]", "[alert]", "[crit]", "[error]"];
    out.lines()
        .find(|l| levels.iter().any(|lv| l.contains(lv)))
        .or_else(|| out.lines().rev().find(|l| !l.trim().is_empty()))
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
        assert!(last_line(out).contains("unknown directive"));
        assert_eq!(last_line("a\nb\n\n"), "b");
        assert_eq!(last_line(""), "no output");
    }
}

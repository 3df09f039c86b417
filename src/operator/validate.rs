//! `nonstop validate`: check a host and a bundle before deploying, one line per check, exit 1
//! if any check fails.
//!
//! Checks: the config loads; the nginx master runs; `nginx -T` (the test command with `-t`
//! replaced by `-T`) passes, lists the include file among the files nginx really loads, and a
//! `proxy_pass` uses the variable (and, in balanced mode, the upstream file and its name); the
//! server that includes the include is the one nginx picks for its listen address (no other
//! `default_server`, no earlier server there: Debian's `sites-enabled/default`); the include
//! names a slot; a request through nginx's listen port gets what the live slot answers;
//! `appspec.yml` (next to the config, i.e. in the bundle, or `--appspec`) is one the CodeDeploy
//! agent accepts (the rules in shared/reference/codedeploy-hooks.md); its hooks run the stages
//! in a working order; each hook's timeout covers what its binary may wait (stop.drain,
//! stop.grace, health.deadline, ...) plus a margin; the user the hooks run as (`runas`, else
//! this one) can write the nginx files nonstop owns and create files in state_dir and workdir;
//! java and the jar are found. The config is found as `nonstop bundle` finds it
//! ([`config::locate_in_project`]); on a machine that is evidently not the host (the build
//! machine) the host's checks are skipped with the reason.

use super::nginx_conf::{self, Listen, Server};
use crate::config::{self, Config, Slot};
use crate::error::{failed, Result};
use crate::{jar, nginx, stages};
use serde_yaml::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The lifecycle events that may run scripts, in the order the agent runs them.
pub const EVENTS: [&str; 9] = [
    "BeforeBlockTraffic",
    "AfterBlockTraffic",
    "ApplicationStop",
    "BeforeInstall",
    "AfterInstall",
    "ApplicationStart",
    "ValidateService",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
];
/// Events whose scripts come from the last successful revision, not the one being deployed.
const PREVIOUS_REVISION: [&str; 3] = ["BeforeBlockTraffic", "AfterBlockTraffic", "ApplicationStop"];
/// The agent's default and largest hook timeout, in seconds.
pub const MAX_TIMEOUT: u64 = 3600;
/// The stage binaries, in the order a deployment must run them.
const ORDER: [&str; 5] = ["stop", "start", "health", "switch", "deploy-second"];

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    /// Worth knowing, not a failure.
    Warn,
    Fail,
    /// Not checked (what it needs is missing or failed).
    Skip,
}

/// One check's line.
#[derive(Debug, Clone)]
pub struct Check {
    pub verdict: Verdict,
    pub name: String,
    pub detail: String,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v = match self.verdict {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
            Verdict::Skip => "skip",
        };
        write!(f, "{v:<5} {:<21} {}", self.name, self.detail)
    }
}

fn check(verdict: Verdict, name: &str, detail: impl Into<String>) -> Check {
    Check {
        verdict,
        name: name.into(),
        detail: detail.into(),
    }
}

/// Run every check, printing each line as it is known; fail (exit 1) if any failed.
pub fn run(config_flag: Option<&Path>, appspec: Option<&Path>) -> Result<()> {
    let mut all = vec![];
    let mut emit = |c: Check| {
        crate::cli::out(&c);
        all.push(c);
    };
    match config::locate_in_project(config_flag).and_then(|p| config::load(Some(&p))) {
        Err(e) => {
            emit(check(Verdict::Fail, "config", e.to_string()));
            for name in [
                "nginx",
                "appspec",
                "write access",
                "supervisor",
                "java",
                "jar",
                "health path",
            ] {
                emit(check(Verdict::Skip, name, "needs a config that loads"));
            }
        }
        Ok(cfg) => {
            emit(check(Verdict::Ok, "config", describe(&cfg)));
            let elsewhere = not_the_host(&cfg);
            match &elsewhere {
                None => {
                    for c in nginx_checks(&cfg) {
                        emit(c);
                    }
                }
                Some(why) => emit(check(
                    Verdict::Skip,
                    "host checks",
                    format!(
                        "{} need the target host, and this is not it: {why}; run nonstop validate there",
                        HOST_CHECKS.join(", ")
                    ),
                )),
            }
            let beside = cfg
                .path
                .parent()
                .unwrap_or(Path::new("/"))
                .join("appspec.yml");
            let (checks, hooks) = match appspec {
                Some(spec) => appspec_checks(&cfg, spec, elsewhere.is_some()),
                // A host deployed over ssh has its config in /etc/nonstop and no appspec.yml
                // at all: nothing for the agent to run, so nothing to check.
                None if !beside.exists() => (
                    vec![
                        check(
                            Verdict::Skip,
                            "appspec",
                            format!(
                                "no {} beside the config: not a CodeDeploy bundle (a deploy over ssh runs `nonstop deploy`); give --appspec PATH to check one",
                                beside.display()
                            ),
                        ),
                        check(Verdict::Skip, "hooks", "needs appspec.yml"),
                    ],
                    None,
                ),
                None => appspec_checks(&cfg, &beside, elsewhere.is_some()),
            };
            for c in checks {
                emit(c);
            }
            if elsewhere.is_none() {
                emit(write_check(&cfg, hooks.as_deref()));
                emit(supervisor_check(&cfg));
                emit(java_check(&cfg));
            }
            let (jar, read) = match crate::releases::resolve_jar(&cfg) {
                // In a project, app.jar names the jar's place in the bundle, not target/.
                Err(e) if elsewhere.is_some() => (
                    check(
                        Verdict::Skip,
                        "jar",
                        format!("{e}: app.jar is looked up in the bundle on the host; `nonstop bundle --jar PATH` checks the jar it packs"),
                    ),
                    None,
                ),
                _ => jar_check(&cfg),
            };
            emit(jar);
            emit(health_path_check(&cfg, read.as_ref()));
            if let Some(c) = cds_check(&cfg, read.as_ref()) {
                emit(c);
            }
        }
    }
    let failed_names: Vec<&str> = all
        .iter()
        .filter(|c| c.verdict == Verdict::Fail)
        .map(|c| c.name.as_str())
        .collect();
    let ok = all.iter().filter(|c| c.verdict == Verdict::Ok).count();
    crate::outln!(
        "{} checks: {ok} ok, {} failed, {} warnings, {} skipped",
        all.len(),
        failed_names.len(),
        all.iter().filter(|c| c.verdict == Verdict::Warn).count(),
        all.iter().filter(|c| c.verdict == Verdict::Skip).count()
    );
    if failed_names.is_empty() {
        Ok(())
    } else {
        Err(failed(format!(
            "{} of {} checks failed: {}",
            failed_names.len(),
            all.len(),
            failed_names.join(", ")
        )))
    }
}

/// Why this machine is evidently not the host `cfg` deploys to (the build machine where
/// `nonstop init` and `nonstop bundle` run), or `None`: nothing of the host is here, neither a
/// running nginx master at `nginx.pid_file`, nor the include file (nginx-reload mode), nor
/// `state_dir`. A host whose nginx is down still has its include and is checked (and fails).
fn not_the_host(cfg: &Config) -> Option<String> {
    if nginx::master_pid(cfg).is_ok() {
        return None;
    }
    let mut absent = vec![format!(
        "no nginx master at {}",
        cfg.nginx.pid_file.display()
    )];
    let mut paths = vec![&cfg.state_dir];
    if cfg.traffic.via == crate::traffic::Via::NginxReload {
        paths.insert(0, &cfg.nginx.include);
    }
    for p in paths {
        if std::fs::symlink_metadata(p).is_ok() {
            return None;
        }
        absent.push(format!("no {}", p.display()));
    }
    Some(absent.join(", "))
}

fn describe(cfg: &Config) -> String {
    let slots: Vec<String> = cfg
        .slots
        .iter()
        .map(|s| format!("{} {}", s.name, s.port))
        .collect();
    format!(
        "{}: app {}, {} slots ({}){}",
        cfg.path.display(),
        cfg.app.name,
        cfg.slots.len(),
        slots.join(", "),
        if cfg.balanced() { ", balanced" } else { "" }
    )
}

// ---------- nginx ----------

/// The test command with `-t` turned into `-T` (test and dump the whole configuration).
pub fn dump_command(cfg: &Config) -> Option<Vec<String>> {
    let mut argv = cfg.nginx.test.clone();
    let i = argv.iter().position(|a| a == "-t")?;
    argv[i] = "-T".into();
    Some(argv)
}

/// The files of an `nginx -T` dump: (path, text) in the order nginx read them.
pub fn parse_dump(out: &str) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = vec![];
    for line in out.lines() {
        if let Some(p) = line
            .strip_prefix("# configuration file ")
            .and_then(|r| r.strip_suffix(':'))
        {
            files.push((p.to_string(), String::new()));
        } else if let Some((_, text)) = files.last_mut() {
            text.push_str(line);
            text.push('\n');
        }
    }
    files
}

/// The statements of an nginx file (comments dropped), split at `;`, `{` and `}`.
fn statements(text: &str) -> Vec<Vec<String>> {
    let code: String = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    code.split([';', '{', '}'])
        .map(|s| s.split_whitespace().map(String::from).collect::<Vec<_>>())
        .filter(|w| !w.is_empty())
        .collect()
}

use nginx_conf::same_file;

/// True if `arg` uses `$var` (and not a longer name that starts with it).
fn uses_var(arg: &str, var: &str) -> bool {
    let want = format!("${var}");
    let braced = format!("${{{var}}}");
    arg.contains(&braced)
        || arg.match_indices(&want).any(|(i, _)| {
            !arg[i + want.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        })
}

fn nginx_checks(cfg: &Config) -> Vec<Check> {
    let mut out = vec![];
    out.push(match nginx::master_pid(cfg) {
        Ok(pid) => check(
            Verdict::Ok,
            "nginx running",
            format!("master pid {pid} ({})", cfg.nginx.pid_file.display()),
        ),
        Err(e) => check(Verdict::Fail, "nginx running", e.to_string()),
    });
    let names = [
        "nginx includes",
        "nginx uses var",
        "nginx default server",
        "nginx serves live",
    ];
    let Some(argv) = dump_command(cfg) else {
        out.push(check(
            Verdict::Fail,
            "nginx -T",
            format!(
                "cannot derive a dump command from nginx.test {:?}: it has no -t to turn into -T",
                cfg.nginx.test
            ),
        ));
        out.extend(names.map(|n| check(Verdict::Skip, n, "needs `nginx -T`")));
        return out;
    };
    let shown = argv.join(" ");
    let dump = match nginx::run(&argv) {
        Ok((true, text)) => text,
        Ok((false, text)) => {
            let why = text
                .lines()
                .find(|l| l.contains("[emerg]") || l.contains("failed"))
                .unwrap_or("no output")
                .trim()
                .to_string();
            out.push(check(
                Verdict::Fail,
                "nginx -T",
                format!("`{shown}` failed: {why}"),
            ));
            out.extend(names.map(|n| check(Verdict::Skip, n, "needs `nginx -T`")));
            return out;
        }
        Err(e) => {
            out.push(check(Verdict::Fail, "nginx -T", e.to_string()));
            out.extend(names.map(|n| check(Verdict::Skip, n, "needs `nginx -T`")));
            return out;
        }
    };
    let files = parse_dump(&dump);
    out.push(check(
        Verdict::Ok,
        "nginx -T",
        format!(
            "`{shown}` passed: {} file{} loaded",
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        ),
    ));
    if cfg.traffic.via == crate::traffic::Via::Nftables {
        out.extend(nftables_checks(cfg, &files));
        return out;
    }
    let include = &cfg.nginx.include;
    out.push(if files.iter().any(|(p, _)| same_file(p, include)) {
        check(
            Verdict::Ok,
            "nginx includes",
            format!("{} is loaded by nginx", include.display()),
        )
    } else {
        check(
            Verdict::Fail,
            "nginx includes",
            format!(
                "no file nginx loads includes {}: add `include {};` inside the location that proxies (nginx -T lists {} files, not that one)",
                include.display(),
                include.display(),
                files.len()
            ),
        )
    });
    let var = &cfg.nginx.variable;
    let users: Vec<&str> = files
        .iter()
        .filter(|(p, _)| !same_file(p, include))
        .filter(|(_, text)| {
            statements(text)
                .iter()
                .any(|w| w[0] == "proxy_pass" && w.get(1).is_some_and(|a| uses_var(a, var)))
        })
        .map(|(p, _)| p.as_str())
        .collect();
    out.push(if users.is_empty() {
        check(
            Verdict::Fail,
            "nginx uses var",
            format!("no `proxy_pass ${var};` in any file nginx loads: the include would set ${var} and nothing would use it"),
        )
    } else {
        check(
            Verdict::Ok,
            "nginx uses var",
            format!("proxy_pass ${var} in {}", users.join(", ")),
        )
    });
    if let Some(up) = &cfg.nginx.upstream_file {
        let name = &cfg.nginx.upstream_name;
        let loaded = files.iter().any(|(p, _)| same_file(p, up));
        let used = files.iter().any(|(_, text)| {
            statements(text).iter().any(|w| {
                w[0] == "proxy_pass"
                    && w.get(1).is_some_and(|a| {
                        let rest = a.split_once("://").map_or(a.as_str(), |(_, r)| r);
                        rest.split(['/', '$']).next() == Some(name.as_str())
                    })
            })
        });
        out.push(match (loaded, used) {
            (true, true) => check(
                Verdict::Ok,
                "nginx upstream",
                format!("{} is loaded and `proxy_pass http://{name}` uses it", up.display()),
            ),
            (false, _) => check(
                Verdict::Fail,
                "nginx upstream",
                format!("no file nginx loads includes {} (include it at the http level)", up.display()),
            ),
            (true, false) => check(
                Verdict::Fail,
                "nginx upstream",
                format!("no `proxy_pass http://{name}` in any file nginx loads: balanced mode would balance nothing"),
            ),
        });
    }
    let servers = nginx_conf::servers(&nginx_conf::load(&files), include);
    out.push(default_server_check(&servers));
    let live = nginx::read_include_port(cfg)
        .ok()
        .flatten()
        .and_then(|p| cfg.slots.iter().find(|s| s.port == p));
    out.push(match nginx::read_include_port(cfg) {
        Ok(None) => check(
            Verdict::Ok,
            "include",
            format!(
                "{} is not written yet: the first deploy goes to slot {}",
                include.display(),
                cfg.slots[0].name
            ),
        ),
        Ok(Some(p)) => match cfg.slots.iter().find(|s| s.port == p) {
            Some(s) => check(
                Verdict::Ok,
                "include",
                format!("{} points at port {p} (slot {})", include.display(), s.name),
            ),
            None => check(
                Verdict::Warn,
                "include",
                format!(
                    "{} points at port {p}, which is no slot: the first deploy takes over from it",
                    include.display()
                ),
            ),
        },
        Err(e) => check(Verdict::Fail, "include", e.to_string()),
    });
    out.push(serves_live_check(cfg, &servers, live));
    out
}

/// The catch-all names that do not make a server the one requests are meant for.
/// nftables mode: nginx proxies to the front port with no upstream keepalive, nft is there,
/// the kernel accepts nonstop's table, and the table loaded matches the state.
fn nftables_checks(cfg: &Config, files: &[(String, String)]) -> Vec<Check> {
    use crate::traffic::nft;
    let front = cfg.traffic.port.unwrap_or(0);
    let target = format!("127.0.0.1:{front}");
    let users: Vec<&str> = files
        .iter()
        .filter(|(_, text)| {
            statements(text).iter().any(|w| {
                w[0] == "proxy_pass"
                    && w.get(1).is_some_and(|a| {
                        let rest = a.split_once("://").map_or(a.as_str(), |(_, r)| r);
                        rest.split('/').next() == Some(target.as_str())
                    })
            })
        })
        .map(|(p, _)| p.as_str())
        .collect();
    let keepalive: Vec<&str> = files
        .iter()
        .filter(|(_, text)| statements(text).iter().any(|w| w[0] == "keepalive"))
        .map(|(p, _)| p.as_str())
        .collect();
    let mut out = vec![if users.is_empty() {
        check(
            Verdict::Fail,
            "nginx front port",
            format!("no `proxy_pass http://{target};` in any file nginx loads: nftables steers connections to that port only"),
        )
    } else {
        check(
            Verdict::Ok,
            "nginx front port",
            format!("proxy_pass http://{target} in {}", users.join(", ")),
        )
    }];
    out.push(if keepalive.is_empty() {
        check(Verdict::Ok, "nginx keepalive", "no upstream keepalive: every new upstream connection is steered")
    } else {
        check(
            Verdict::Fail,
            "nginx keepalive",
            format!("`keepalive` in {}: a kept upstream connection stays on the slot it was opened to, whatever the table says", keepalive.join(", ")),
        )
    });
    let state = crate::state::load(&cfg.state_dir);
    let roles = crate::slots::roles(cfg, &state);
    out.push(match roles {
        Ok(r) => match &r.doubt {
            None => check(
                Verdict::Ok,
                "nftables",
                format!(
                    "table ip {} steers 127.0.0.1:{front} to {}",
                    nft::table_name(cfg),
                    r.live.map_or("no slot yet".into(), |l| format!(
                        "slot {} (port {})",
                        l.name, l.port
                    ))
                ),
            ),
            Some(d) => check(Verdict::Fail, "nftables", d.describe(cfg)),
        },
        Err(e) => check(Verdict::Fail, "nftables", e.to_string()),
    });
    out
}

fn names_of(s: &Server) -> String {
    match s.real_names().as_slice() {
        [] => "no server_name".into(),
        n => format!("server_name {}", n.join(" ")),
    }
}

/// For each listen address of the server(s) that include the include: is that server the one
/// nginx picks for a request whose Host matches no server_name? Another `default_server` there,
/// or an earlier server block on the same address:port, takes those requests (Debian's
/// `sites-enabled/default`: the deploy "works" and users see "Welcome to nginx!"). A server
/// listening on a specific address takes the requests to that address from a wildcard listen.
fn default_server_check(servers: &[Server]) -> Check {
    const NAME: &str = "nginx default server";
    let apps: Vec<&Server> = servers.iter().filter(|s| s.includes.is_some()).collect();
    if apps.is_empty() {
        return check(
            Verdict::Skip,
            NAME,
            "no `server` block of `http` includes the include (see nginx includes)",
        );
    }
    let mut problems = vec![];
    let mut fine = vec![];
    for app in &apps {
        for l in &app.listens {
            let mut taken = vec![];
            match nginx_conf::default_for(servers, l) {
                Some(d) if d.at != app.at => {
                    let marked = d
                        .listens
                        .iter()
                        .any(|x| x.addr == l.addr && x.port == l.port && x.default);
                    let why = if marked {
                        "is the default_server there"
                    } else {
                        "comes first there, so it is the default"
                    };
                    taken.push(format!(
                        "the server at {} ({}) {why}: requests to {l} whose Host matches no server_name go to it, not to the app's server at {}",
                        d.at,
                        names_of(d),
                        app.at
                    ));
                }
                _ => {}
            }
            if l.addr == "*" {
                // A specific IPv4 address on the same port takes the requests sent to it.
                let specific = servers.iter().filter(|o| o.at != app.at).find_map(|o| {
                    o.listens
                        .iter()
                        .find(|x| {
                            x.port == l.port
                                && x.addr != "*"
                                && !x.addr.starts_with('[')
                                && !app
                                    .listens
                                    .iter()
                                    .any(|a| a.addr == x.addr && a.port == x.port)
                        })
                        .map(|x| (o, x))
                });
                if let Some((o, x)) = specific {
                    taken.push(format!(
                        "the server at {} listens on {x}: requests to that address go to it, not to the app's server at {} (listen {l})",
                        o.at, app.at
                    ));
                }
            }
            if taken.is_empty() {
                fine.push(format!("{} is the default for {l}", app.at));
            } else {
                problems.extend(taken);
            }
        }
    }
    if problems.is_empty() {
        return check(Verdict::Ok, NAME, fine.join("; "));
    }
    let named = apps.iter().all(|a| !a.real_names().is_empty());
    if named {
        // The app's server is picked by its names; only other names (and bare IPs) miss it.
        check(
            Verdict::Warn,
            NAME,
            format!(
                "{}; requests for {} still reach the app",
                problems.join("; "),
                apps.iter()
                    .map(|a| names_of(a))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    } else {
        check(
            Verdict::Fail,
            NAME,
            format!(
                "{} (add `default_server` to the app's listen, or remove the other server)",
                problems.join("; ")
            ),
        )
    }
}

/// One HTTP/1.0 answer, as the check shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut b: String = self
            .body
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(60)
            .collect();
        if self.body.chars().count() > 60 {
            b.push('…');
        }
        write!(f, "HTTP {} {b:?}", self.status)
    }
}

/// GET `path` from `addr` with `Host: host`: one HTTP/1.0 request (no keep-alive, no chunks),
/// 2 s for the connect and 2 s for the whole answer, at most 64 KiB of body.
pub fn get(
    addr: std::net::SocketAddr,
    host: &str,
    path: &str,
) -> std::result::Result<Answer, String> {
    use std::io::{Read, Write};
    use std::time::Instant;
    let limit = Duration::from_secs(2);
    let mut s = std::net::TcpStream::connect_timeout(&addr, limit).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    s.set_write_timeout(Some(limit))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: nonstop-validate\r\nAccept: */*\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut buf = vec![];
    let mut chunk = [0u8; 8192];
    loop {
        let left = limit.saturating_sub(t0.elapsed());
        if left.is_zero() {
            return Err("no complete answer within 2 s".into());
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                if buf.len() > 64 * 1024 {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.to_string()),
        }
    }
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| {
            format!(
                "not an HTTP answer: {:?}",
                head.chars().take(40).collect::<String>()
            )
        })?;
    Ok(Answer {
        status,
        body: body.to_string(),
    })
}

/// True for the pages nginx makes itself (its welcome page, its error pages).
fn nginx_page(body: &str) -> bool {
    body.contains("Welcome to nginx") || body.contains("<center>nginx")
}

/// Where a loopback client reaches `l`, or `None` when it listens on another address or TLS.
fn loopback(l: &Listen) -> Option<std::net::SocketAddr> {
    if l.tls {
        return None;
    }
    let ip: std::net::IpAddr = match l.addr.as_str() {
        "*" | "127.0.0.1" => std::net::Ipv4Addr::LOCALHOST.into(),
        "[::]" | "[::1]" => std::net::Ipv6Addr::LOCALHOST.into(),
        _ => return None,
    };
    Some((ip, l.port).into())
}

/// GET the include's location through nginx's listen port (loopback only) and straight from
/// the live slot; they must agree. Nothing live: skip. The slot not answering: nginx must
/// answer as a proxy with nothing behind it (502/504), not with a page of its own.
fn serves_live_check(cfg: &Config, servers: &[Server], live: Option<&Slot>) -> Check {
    const NAME: &str = "nginx serves live";
    let Some(slot) = live else {
        return check(
            Verdict::Skip,
            NAME,
            "no slot is live yet: nothing to compare",
        );
    };
    let Some(app) = servers.iter().find(|s| s.includes.is_some()) else {
        return check(Verdict::Skip, NAME, "no server block includes the include");
    };
    let mut ls: Vec<&Listen> = app.listens.iter().collect();
    ls.sort_by_key(|l| l.addr.starts_with('['));
    let Some((l, addr)) = ls.iter().find_map(|l| loopback(l).map(|a| (*l, a))) else {
        return check(
            Verdict::Skip,
            NAME,
            format!(
                "the app's server at {} listens on {} only: no plain HTTP on loopback to probe",
                app.at,
                app.listens
                    .iter()
                    .map(|l| l.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    };
    let path = app.includes.clone().unwrap_or_else(|| "/".into());
    let host = app
        .real_names()
        .first()
        .map(|n| n.to_string())
        .unwrap_or_else(|| addr.to_string());
    let via = match get(addr, &host, &path) {
        Ok(a) => a,
        Err(e) => {
            return check(
                Verdict::Fail,
                NAME,
                format!(
                    "GET {path} on {addr} (listen {l} of {}): no answer: {e}",
                    app.at
                ),
            )
        }
    };
    // The slot as nginx reaches it: nginx.host (what the include names) and its port.
    let h = cfg.nginx.host.trim_start_matches('[').trim_end_matches(']');
    let slot_addr = std::net::ToSocketAddrs::to_socket_addrs(&(h, slot.port))
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| (std::net::Ipv4Addr::LOCALHOST, slot.port).into());
    let direct = get(
        slot_addr,
        &format!("{}:{}", cfg.nginx.host, slot.port),
        &path,
    );
    let shown = format!("GET {path} through nginx ({addr}, Host {host})");
    match direct {
        Err(e) if matches!(via.status, 502 | 504) => check(
            Verdict::Ok,
            NAME,
            format!(
                "{shown}: {} while slot {} (port {}) does not answer ({e}): nginx proxies to it",
                via, slot.name, slot.port
            ),
        ),
        Err(e) => check(
            Verdict::Warn,
            NAME,
            format!(
                "{shown}: {via}, but slot {} (port {}) does not answer ({e}): that answer comes from elsewhere (an error_page, or another server); probe again once the slot runs",
                slot.name, slot.port
            ),
        ),
        Ok(d) if d == via => check(
            Verdict::Ok,
            NAME,
            format!(
                "{shown} and on slot {} (port {}) answer the same: HTTP {}, {} bytes",
                slot.name,
                slot.port,
                d.status,
                d.body.len()
            ),
        ),
        Ok(d) if d.status == via.status && !nginx_page(&via.body) => check(
            Verdict::Warn,
            NAME,
            format!(
                "{shown}: {via}; slot {} (port {}): {d}: same status, other body (fine if the page changes per request)",
                slot.name, slot.port
            ),
        ),
        Ok(d) => check(
            Verdict::Fail,
            NAME,
            format!(
                "{shown}: {via}; slot {} (port {}) itself: {d}: nginx does not serve the live slot",
                slot.name, slot.port
            ),
        ),
    }
}

// ---------- appspec.yml ----------

/// What a hook binary may wait at most, as (duration, explanation), or `None` for a script
/// nonstop does not know. These are the bounds the binaries enforce themselves; the margin
/// covers the work around them (process start, nginx commands, copying the jar).
pub fn max_wait(cfg: &Config, binary: &str) -> Option<(Duration, String)> {
    let port_free = Duration::from_secs(5);
    let pid_file = Duration::from_secs(10);
    let confirm = nginx::CONFIRM;
    let probe = cfg.health.timeout;
    // Balanced mode: a slot leaves rotation (one reload) and drains before it is stopped.
    let (out, out_s) = if cfg.balanced() {
        (
            cfg.stop.drain + confirm,
            format!(
                "stop.drain {} + {} reload confirmation + ",
                secs(cfg.stop.drain),
                secs(confirm)
            ),
        )
    } else {
        (Duration::ZERO, String::new())
    };
    Some(match binary {
        "stop" => (
            out + cfg.stop.grace + port_free,
            format!(
                "{out_s}stop.grace {} + {} for the port to be free",
                secs(cfg.stop.grace),
                secs(port_free)
            ),
        ),
        "start" => (
            pid_file,
            format!("{} for the app's pid file", secs(pid_file)),
        ),
        "health" => (
            cfg.health.deadline + probe,
            format!(
                "health.deadline {} + one probe (health.timeout {})",
                secs(cfg.health.deadline),
                secs(probe)
            ),
        ),
        "switch" => (
            probe + confirm,
            format!(
                "one probe (health.timeout {}) + {} reload confirmation",
                secs(probe),
                secs(confirm)
            ),
        ),
        "deploy-second" => {
            let n = cfg.slots.len().saturating_sub(1) as u32;
            let one =
                out + cfg.stop.grace + port_free + pid_file + cfg.health.deadline + probe + confirm;
            (
                one * n,
                format!(
                    "{n} other slot(s) x ({out_s}stop.grace {} + {} + health.deadline {} + health.timeout {} + {} back into rotation)",
                    secs(cfg.stop.grace),
                    secs(port_free + pid_file),
                    secs(cfg.health.deadline),
                    secs(probe),
                    secs(confirm)
                ),
            )
        }
        _ => return None,
    })
}

/// The margin a timeout must leave above the wait: 10 %, at least 10 s.
pub fn margin(wait: Duration) -> Duration {
    (wait / 10).max(Duration::from_secs(10))
}

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{s:.1} s")
    }
}

/// One hook entry as written.
#[derive(Debug, Clone)]
pub struct Hook {
    pub event: String,
    pub location: String,
    pub timeout: Option<u64>,
    /// `runas: USER`: the agent runs the hook as that user.
    pub runas: Option<String>,
}

/// `project`: the appspec is a project's (validate off the host), beside which `nonstop
/// bundle` will put the binaries in bin/: their absence there is not a problem yet.
fn appspec_checks(cfg: &Config, path: &Path, project: bool) -> (Vec<Check>, Option<Vec<Hook>>) {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return (
                vec![
                    check(
                        Verdict::Fail,
                        "appspec",
                        format!("cannot read {}: {e} (give --appspec PATH)", path.display()),
                    ),
                    check(Verdict::Skip, "hooks", "needs appspec.yml"),
                ],
                None,
            )
        }
    };
    let (format, hooks) = appspec_format(&text);
    let mut out = vec![match &format {
        Ok(summary) => check(
            Verdict::Ok,
            "appspec",
            format!("{}: {summary}", path.display()),
        ),
        Err(problems) => check(
            Verdict::Fail,
            "appspec",
            format!("{}: {}", path.display(), problems.join("; ")),
        ),
    }];
    let Some(hooks) = hooks else {
        out.push(check(
            Verdict::Skip,
            "hooks",
            "appspec.yml has no readable hooks",
        ));
        return (out, None);
    };
    let bundle = path.parent().unwrap_or(Path::new("/"));
    out.extend(hook_checks(cfg, bundle, &hooks, project));
    (out, Some(hooks))
}

/// The agent's rules on the document itself: `Ok(summary)` or the problems found; also the
/// hooks when their structure is readable.
pub fn appspec_format(text: &str) -> (std::result::Result<String, Vec<String>>, Option<Vec<Hook>>) {
    let doc: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => return (Err(vec![format!("not YAML: {e}")]), None),
    };
    let Some(map) = doc.as_mapping() else {
        return (Err(vec!["the document is not a mapping".into()]), None);
    };
    let mut problems = vec![];
    match map.get("version") {
        Some(Value::Number(n)) if n.as_f64() == Some(0.0) => {}
        Some(Value::String(s)) => problems.push(format!(
            "version is the string {s:?}: the agent wants the number (write `version: 0.0` without quotes)"
        )),
        Some(other) => problems.push(format!("version is {}, not 0.0", yaml_short(other))),
        None => problems.push("no `version: 0.0`".into()),
    }
    match map.get("os") {
        Some(Value::String(s)) if s == "linux" => {}
        Some(other) => problems.push(format!(
            "os is {}: the agent wants `os: linux` (lower case)",
            yaml_short(other)
        )),
        None => problems.push("no `os: linux`".into()),
    }
    if let Some(files) = map.get("files") {
        match files.as_sequence() {
            None if !files.is_null() => problems.push("files is not a list".into()),
            None => {}
            Some(items) => {
                for (i, f) in items.iter().enumerate() {
                    let has = |k: &str| f.get(k).is_some_and(|v| v.is_string());
                    if !has("source") || !has("destination") {
                        problems.push(format!("files[{i}] needs source and destination"));
                    }
                }
            }
        }
    }
    if let Some(b) = map.get("file_exists_behavior") {
        if !matches!(b.as_str(), Some("DISALLOW" | "OVERWRITE" | "RETAIN")) {
            problems.push(format!(
                "file_exists_behavior is {}: want DISALLOW, OVERWRITE or RETAIN",
                yaml_short(b)
            ));
        }
    }
    let mut hooks = vec![];
    let mut readable = true;
    match map.get("hooks") {
        None => problems.push("no hooks".into()),
        Some(h) => match h.as_mapping() {
            None => {
                problems.push("hooks is not a mapping of event names".into());
                readable = false;
            }
            Some(events) => {
                for (k, v) in events {
                    let ev = k.as_str().unwrap_or("?").to_string();
                    if !EVENTS.contains(&ev.as_str()) {
                        problems.push(format!(
                            "unknown lifecycle event {ev:?} (the agent rejects it; events: {})",
                            EVENTS.join(", ")
                        ));
                    }
                    let Some(list) = v.as_sequence() else {
                        problems.push(format!("{ev}: must be a list of `- location: ...` entries (a mapping crashes the agent)"));
                        readable = false;
                        continue;
                    };
                    for (i, item) in list.iter().enumerate() {
                        let Some(location) = item.get("location").and_then(Value::as_str) else {
                            problems.push(format!("{ev}[{i}]: no location"));
                            continue;
                        };
                        let timeout = match item.get("timeout") {
                            None => None,
                            Some(Value::Number(n)) => match n.as_u64() {
                                Some(0) => {
                                    problems.push(format!(
                                        "{ev} {location}: timeout 0 is rejected by the agent"
                                    ));
                                    None
                                }
                                Some(t) if t > MAX_TIMEOUT => {
                                    problems.push(format!("{ev} {location}: timeout {t} is above the agent's maximum of {MAX_TIMEOUT}"));
                                    None
                                }
                                Some(t) => Some(t),
                                None => {
                                    problems.push(format!("{ev} {location}: timeout must be a whole number of seconds"));
                                    None
                                }
                            },
                            Some(other) => {
                                problems.push(format!(
                                    "{ev} {location}: timeout is {}, not a number of seconds",
                                    yaml_short(other)
                                ));
                                None
                            }
                        };
                        if item.get("sudo").and_then(Value::as_bool) == Some(true) {
                            problems.push(format!("{ev} {location}: `sudo: true` drops DEPLOYMENT_ID and the other CodeDeploy variables; use runas or run as root"));
                        }
                        hooks.push(Hook {
                            event: ev.clone(),
                            location: location.to_string(),
                            timeout,
                            runas: item
                                .get("runas")
                                .and_then(Value::as_str)
                                .map(str::to_string),
                        });
                    }
                }
            }
        },
    }
    let summary = format!(
        "version 0.0, os linux, {} hooks in {} events",
        hooks.len(),
        hooks
            .iter()
            .map(|h| h.event.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );
    (
        if problems.is_empty() {
            Ok(summary)
        } else {
            Err(problems)
        },
        readable.then_some(hooks),
    )
}

fn yaml_short(v: &Value) -> String {
    serde_yaml::to_string(v)
        .unwrap_or_default()
        .trim()
        .chars()
        .take(40)
        .collect()
}

/// The binary a hook runs: the file name of its location.
fn binary_of(h: &Hook) -> String {
    Path::new(&h.location)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn hook_checks(cfg: &Config, bundle: &Path, hooks: &[Hook], project: bool) -> Vec<Check> {
    let mut out = vec![];
    // Order and presence.
    let mut problems = vec![];
    let position = |b: &str| {
        hooks
            .iter()
            .enumerate()
            .find(|(_, h)| binary_of(h) == b)
            .map(|(i, h)| {
                (
                    EVENTS
                        .iter()
                        .position(|e| *e == h.event)
                        .unwrap_or(usize::MAX),
                    i,
                )
            })
    };
    let mut last: Option<(&str, (usize, usize))> = None;
    for b in ORDER {
        let p = position(b);
        match p {
            None if b == "deploy-second" => {
                if cfg.balanced() {
                    problems.push("balanced mode but no hook runs bin/deploy-second: the other slots keep the old release".to_string());
                }
                continue;
            }
            None => {
                problems.push(format!("no hook runs bin/{b}"));
                continue;
            }
            Some(p) => {
                if let Some((prev, lp)) = last {
                    if p < lp {
                        problems.push(format!("bin/{b} runs before bin/{prev}"));
                    }
                }
                last = Some((b, p));
            }
        }
    }
    for h in hooks {
        if PREVIOUS_REVISION.contains(&h.event.as_str()) && ORDER.contains(&binary_of(h).as_str()) {
            problems.push(format!(
                "{} runs in {}, which runs the previous revision's scripts (and nothing on a first deployment): use AfterInstall",
                h.location, h.event
            ));
        }
        let file = bundle.join(h.location.trim_start_matches('/'));
        let bundled = project
            && h.location
                .trim_start_matches('/')
                .strip_prefix("bin/")
                .is_some_and(|b| super::bundle::BINARIES.contains(&b));
        if !file.is_file() && !bundled {
            problems.push(format!(
                "{} is not in the bundle ({})",
                h.location,
                file.display()
            ));
        }
    }
    let order: Vec<String> = hooks
        .iter()
        .map(|h| format!("{} {}", h.event, h.location))
        .collect();
    out.push(if problems.is_empty() {
        check(Verdict::Ok, "hooks", order.join(", "))
    } else {
        check(Verdict::Fail, "hooks", problems.join("; "))
    });
    // Timeouts.
    for h in hooks {
        let b = binary_of(h);
        let name = format!("timeout {b}");
        let Some((wait, why)) = max_wait(cfg, &b) else {
            out.push(check(
                Verdict::Skip,
                &name,
                format!(
                    "{} {}: not a nonstop binary; its wait is unknown",
                    h.event, h.location
                ),
            ));
            continue;
        };
        let m = margin(wait);
        let need = wait + m;
        let have = h.timeout.unwrap_or(MAX_TIMEOUT);
        let have_s = match h.timeout {
            Some(t) => format!("{t} s"),
            None => format!("{MAX_TIMEOUT} s (the default)"),
        };
        let mut line = String::new();
        let _ = write!(line, "{} {}: timeout {have_s}", h.event, h.location);
        if Duration::from_secs(have) >= need {
            out.push(check(
                Verdict::Ok,
                &name,
                format!(
                    "{line} covers {why} = {} + margin {} = {}",
                    secs(wait),
                    secs(m),
                    secs(need)
                ),
            ));
        } else {
            out.push(check(
                Verdict::Fail,
                &name,
                format!(
                    "{line} is shorter than {why} = {} + margin {} = {}: the agent would SIGTERM it and fail the deployment first",
                    secs(wait),
                    secs(m),
                    secs(need)
                ),
            ));
        }
    }
    out
}

// ---------- a bundle before it is written (`nonstop bundle`) ----------

/// The checks of [`run`] that need only a bundle's own files, for `nonstop bundle` (the same
/// functions, not copies): the config loaded from `<root>/nonstop.yml` (relative paths resolve
/// against the bundle root, as on the host), `appspec` (`<root>/appspec.yml`: the agent's
/// rules, the hooks' order and locations in the bundle, each hook's timeout against what its
/// binary may wait) and the jar `app.jar` finds in the bundle.
pub fn bundle_checks(cfg: &Config, appspec: &Path) -> Vec<Check> {
    let mut out = vec![check(Verdict::Ok, "config", describe(cfg))];
    out.extend(appspec_checks(cfg, appspec, false).0);
    let (jar, read) = jar_check(cfg);
    out.push(jar);
    out.push(health_path_check(cfg, read.as_ref()));
    out.extend(cds_check(cfg, read.as_ref()));
    out
}

/// The checks of [`run`] that [`bundle_checks`] leaves out: they need the target host.
pub const HOST_CHECKS: [&str; 4] = ["nginx", "write access", "supervisor", "java"];

// ---------- write access (runas) ----------

/// A user the hooks run as, for the write checks.
#[derive(Debug, Clone)]
pub struct Who {
    pub name: String,
    pub uid: u32,
    /// Primary and supplementary groups.
    pub groups: Vec<u32>,
    /// This process's own user: access(2) answers for it (ACLs, read-only mounts included);
    /// for another user the mode bits are read.
    pub current: bool,
}

/// `/etc/passwd` and `/etc/group` as (name, id, rest) rows.
fn db(path: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split(':').map(String::from).collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect()
}

fn name_of_uid(uid: u32) -> String {
    db("/etc/passwd")
        .into_iter()
        .find(|f| f[2] == uid.to_string())
        .map_or_else(|| format!("uid {uid}"), |f| f[0].clone())
}

/// The user called `name` (or with that number) from /etc/passwd and /etc/group.
pub fn lookup_user(name: &str) -> Option<Who> {
    let pw = db("/etc/passwd")
        .into_iter()
        .find(|f| f[0] == name || f[2] == name)?;
    let uid: u32 = pw[2].parse().ok()?;
    let gid: u32 = pw[3].parse().ok()?;
    let mut groups = vec![gid];
    for g in db("/etc/group") {
        if g[3].split(',').any(|m| m == pw[0]) {
            if let Ok(id) = g[2].parse() {
                groups.push(id);
            }
        }
    }
    Some(Who {
        name: pw[0].clone(),
        uid,
        groups,
        current: uid == rustix::process::geteuid().as_raw(),
    })
}

/// Whether the mode bits let `who` do `want` (bits of rwx: 4, 2, 1) on a file owned by
/// `uid:gid` with permission bits `mode`. Root may do anything.
pub fn mode_allows(who: &Who, uid: u32, gid: u32, mode: u32, want: u32) -> bool {
    if who.uid == 0 {
        return true;
    }
    let bits = if who.uid == uid {
        mode >> 6
    } else if who.groups.contains(&gid) {
        mode >> 3
    } else {
        mode
    } & 7;
    bits & want == want
}

/// `owner root, mode 0755`
fn owner_mode(p: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(p) {
        Ok(m) => format!(
            "owner {}, mode {:04o}",
            name_of_uid(m.uid()),
            m.mode() & 0o7777
        ),
        Err(e) => e.to_string(),
    }
}

/// Why `who` cannot do `want` (4 read, 2 write, 1 search/exec) on the existing `p`, or `None`.
pub fn denied(who: &Who, p: &Path, want: u32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let allowed = |p: &Path, want: u32| -> bool {
        if who.current {
            let mut a = rustix::fs::Access::empty();
            if want & 4 != 0 {
                a |= rustix::fs::Access::READ_OK;
            }
            if want & 2 != 0 {
                a |= rustix::fs::Access::WRITE_OK;
            }
            if want & 1 != 0 {
                a |= rustix::fs::Access::EXEC_OK;
            }
            rustix::fs::access(p, a).is_ok()
        } else {
            std::fs::metadata(p).is_ok_and(|m| mode_allows(who, m.uid(), m.gid(), m.mode(), want))
        }
    };
    let mut ancestors: Vec<&Path> = p.ancestors().skip(1).collect();
    ancestors.reverse();
    for a in ancestors {
        if !allowed(a, 1) {
            return Some(format!("cannot enter {} ({})", a.display(), owner_mode(a)));
        }
    }
    if allowed(p, want) {
        None
    } else {
        Some(owner_mode(p))
    }
}

/// The nearest folder of `p` (itself included) that exists.
fn nearest_existing(p: &Path) -> &Path {
    p.ancestors().find(|a| a.exists()).unwrap_or(Path::new("/"))
}

/// What `who` lacks to run nonstop's writes: (problems, notes). A file nonstop replaces must be
/// writable (or creatable); a writable file in a folder `who` cannot create files in is written
/// in place (a note); state_dir and workdir/{releases,logs,run} must take new files (or be
/// creatable), and the lock and log files there, when they exist, must be writable.
pub fn write_problems(cfg: &Config, who: &Who) -> (Vec<String>, Vec<String>) {
    let mut problems = vec![];
    let mut notes = vec![];
    let u = &who.name;
    let mut files: Vec<(&str, &Path)> = vec![("the include", cfg.nginx.include.as_path())];
    if let Some(up) = &cfg.nginx.upstream_file {
        files.push(("the upstream file", up.as_path()));
    }
    for (what, f) in files {
        let dir = f.parent().unwrap_or(Path::new("/"));
        if f.exists() {
            if let Some(why) = denied(who, f, 2) {
                problems.push(format!("{u} cannot write {what} {} ({why})", f.display()));
            } else if let Some(why) = denied(who, dir, 3) {
                notes.push(format!(
                    "{what} is rewritten in place: {u} cannot create files in {} ({why})",
                    dir.display()
                ));
            }
        } else {
            let at = nearest_existing(dir);
            if let Some(why) = denied(who, at, 3) {
                problems.push(format!(
                    "{u} cannot create {what} {} (in {}: {why})",
                    f.display(),
                    at.display()
                ));
            }
        }
    }
    let w = &cfg.app.workdir;
    let dirs = [
        ("state_dir", cfg.state_dir.clone()),
        ("workdir/releases", w.join("releases")),
        ("workdir/logs", w.join("logs")),
        ("workdir/run", w.join("run")),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (what, d) in &dirs {
        let at = nearest_existing(d);
        if !seen.insert(at.to_path_buf()) {
            continue;
        }
        if let Some(why) = denied(who, at, 3) {
            problems.push(if at == d.as_path() {
                format!("{u} cannot create files in {what} {} ({why})", d.display())
            } else {
                format!(
                    "{u} cannot create {what} {} (in {}: {why})",
                    d.display(),
                    at.display()
                )
            });
        }
    }
    let mut existing = vec![cfg.state_dir.join("lock")];
    if let Ok(rd) = std::fs::read_dir(w.join("logs")) {
        existing.extend(
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log")),
        );
    }
    for f in existing.iter().filter(|f| f.is_file()) {
        if let Some(why) = denied(who, f, 2) {
            problems.push(format!("{u} cannot write {} ({why})", f.display()));
        }
    }
    (problems, notes)
}

/// The hooks' `runas` users (else this process's user) can do nonstop's writes.
fn write_check(cfg: &Config, hooks: Option<&[Hook]>) -> Check {
    const NAME: &str = "write access";
    let runas: std::collections::BTreeSet<&str> = hooks
        .unwrap_or_default()
        .iter()
        .filter(|h| ORDER.contains(&binary_of(h).as_str()) || binary_of(h) == "nonstop")
        .filter_map(|h| h.runas.as_deref())
        .collect();
    let mut users = vec![];
    let mut unknown = vec![];
    if runas.is_empty() {
        let uid = rustix::process::geteuid().as_raw();
        let mut who = lookup_user(&uid.to_string()).unwrap_or(Who {
            name: format!("uid {uid}"),
            uid,
            groups: vec![rustix::process::getegid().as_raw()],
            current: true,
        });
        who.current = true;
        users.push((who, "this user: no runas in appspec.yml"));
    } else {
        for name in &runas {
            match lookup_user(name) {
                Some(w) => users.push((w, "runas in appspec.yml")),
                None => unknown.push(*name),
            }
        }
    }
    let mut problems = vec![];
    let mut notes = vec![];
    let mut who_ok = vec![];
    for (who, why) in &users {
        let (p, n) = write_problems(cfg, who);
        if p.is_empty() {
            who_ok.push(format!("{} ({why})", who.name));
        }
        problems.extend(p);
        notes.extend(n);
    }
    let what = if cfg.balanced() {
        "the include and the upstream file"
    } else {
        "the include"
    };
    if !problems.is_empty() {
        return check(Verdict::Fail, NAME, problems.join("; "));
    }
    if !unknown.is_empty() {
        return check(
            Verdict::Warn,
            NAME,
            format!(
                "runas {} is no user on this host: cannot check what it may write{}",
                unknown.join(", "),
                if who_ok.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} can write {what}, state_dir and workdir",
                        who_ok.join(", ")
                    )
                }
            ),
        );
    }
    let mut line = format!(
        "{} can write {what} and create files in state_dir and workdir",
        who_ok.join(", ")
    );
    for n in notes {
        line += &format!("; note: {n}");
    }
    check(Verdict::Ok, NAME, line)
}

// ---------- java and the jar ----------

/// Which supervisor runs the apps, and whether the apps outlive what runs the hooks: with
/// builtin on a systemd host, every app a hook starts lives in the hook's cgroup, and the
/// CodeDeploy agent's unit (no `KillMode`, so `control-group`) kills them all when it stops
/// or restarts.
fn supervisor_check(cfg: &Config) -> Check {
    use crate::supervisor::{self, Choice, Kind};
    let kind = supervisor::choose(cfg);
    let systemd_host = std::path::Path::new("/run/systemd/system").is_dir();
    match kind {
        Kind::Systemd => check(
            Verdict::Ok,
            "supervisor",
            format!(
                "systemd ({}): units {}, the live one started at boot{}",
                if cfg.app.supervisor == Choice::Auto {
                    "auto"
                } else {
                    "app.supervisor"
                },
                cfg.slots
                    .iter()
                    .map(|s| supervisor::systemd::unit_name(cfg, s))
                    .collect::<Vec<_>>()
                    .join(", "),
                cfg.app
                    .user
                    .as_ref()
                    .map_or(String::new(), |u| format!(", JVMs as {u}"))
            ),
        ),
        Kind::Builtin if systemd_host => {
            let agent = std::fs::read_to_string("/etc/systemd/system/codedeploy-agent.service")
                .or_else(|_| {
                    std::fs::read_to_string("/lib/systemd/system/codedeploy-agent.service")
                })
                .or_else(|_| {
                    std::fs::read_to_string("/usr/lib/systemd/system/codedeploy-agent.service")
                });
            let kills = agent.as_ref().is_ok_and(|u| {
                !u.lines()
                    .any(|l| l.trim().replace(' ', "") == "KillMode=process")
            });
            check(
                Verdict::Warn,
                "supervisor",
                format!(
                    "builtin on a host whose PID 1 is systemd{}: apps run in the cgroup of whatever runs the hooks{}; run `sudo nonstop setup --user USER` once (or deploy as root)",
                    if cfg.app.supervisor == Choice::Auto {
                        " (auto found no way to manage units: not root, and the app is not set up with `sudo nonstop setup --user USER`)"
                    } else {
                        ""
                    },
                    if kills {
                        ", and codedeploy-agent.service has no KillMode=process: its next restart kills every app it started"
                    } else {
                        ""
                    }
                ),
            )
        }
        Kind::Builtin => check(
            Verdict::Ok,
            "supervisor",
            "builtin (PID 1 is not systemd): nothing restarts a crashed app or starts one at boot",
        ),
    }
}

fn java_check(cfg: &Config) -> Check {
    let java = match stages::java_path(cfg) {
        Ok(j) => j,
        Err(e) => return check(Verdict::Fail, "java", e.to_string()),
    };
    let argv = vec![java.to_string_lossy().into_owned(), "-version".into()];
    match nginx::run(&argv) {
        Ok((true, out)) => check(
            Verdict::Ok,
            "java",
            format!(
                "{} ({})",
                java.display(),
                out.lines().next().unwrap_or("").trim()
            ),
        ),
        Ok((false, out)) => check(
            Verdict::Fail,
            "java",
            format!(
                "`{} -version` failed: {}",
                java.display(),
                out.lines().last().unwrap_or("no output").trim()
            ),
        ),
        Err(e) => check(Verdict::Fail, "java", e.to_string()),
    }
}

/// The jar `start` would launch: a zip whose manifest lets `java -jar` run it, and a complete
/// Spring Boot jar when it claims to be one (its launcher, `Spring-Boot-*` attributes or
/// `BOOT-INF/`): `Start-Class` and `Spring-Boot-Version` in the manifest, the Start-Class in
/// `BOOT-INF/classes/`. Also returns the jar as read, for the health path check.
fn jar_check(cfg: &Config) -> (Check, Option<jar::Jar>) {
    const NAME: &str = "jar";
    let jar_path: PathBuf = match crate::releases::resolve_jar(cfg) {
        Ok(j) => j,
        Err(e) => return (check(Verdict::Fail, NAME, e.to_string()), None),
    };
    let size = std::fs::metadata(&jar_path).map(|m| m.len()).unwrap_or(0);
    let what = format!("{} ({})", jar_path.display(), crate::log::human_bytes(size));
    let jar = match jar::read(&jar_path) {
        Ok(j) => j,
        Err(why) => {
            return (
                check(Verdict::Fail, NAME, format!("{what} is not a jar: {why}")),
                None,
            )
        }
    };
    let kind = jar.kind();
    let plain_hint = {
        let file = jar_path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if file.ends_with("-plain.jar") || file.ends_with(".original") {
            " (this is the plain jar of a Spring Boot build: deploy the boot jar beside it, and make app.jar match only that)"
        } else {
            ""
        }
    };
    let c = match &kind {
        jar::Kind::SpringBoot {
            version,
            start_class,
        } => check(
            Verdict::Ok,
            NAME,
            format!("{what}: Spring Boot {version} jar, Start-Class {start_class}"),
        ),
        jar::Kind::Plain { main_class } => check(
            Verdict::Ok,
            NAME,
            format!("{what}: Main-Class {main_class} (not a Spring Boot jar)"),
        ),
        jar::Kind::BrokenSpringBoot(why) => check(
            Verdict::Fail,
            NAME,
            format!("{what}: {why}: `java -jar` would not start the app; build it with spring-boot-maven-plugin's repackage (or Gradle's bootJar){plain_hint}"),
        ),
        jar::Kind::NotRunnable(why) => check(
            Verdict::Fail,
            NAME,
            format!("{what}: {why}, so `java -jar` cannot run it{plain_hint}"),
        ),
    };
    (c, Some(jar))
}

/// `app.cds: auto` with a Spring Boot jar that cannot be extracted: it runs as shipped (a
/// warning; a plain jar has nothing to extract and nothing to say).
fn cds_check(cfg: &Config, jar: Option<&jar::Jar>) -> Option<Check> {
    let jar = jar.filter(|j| matches!(j.kind(), jar::Kind::SpringBoot { .. }))?;
    let why = crate::cds::extractable(jar).err()?;
    (cfg.app.cds == crate::cds::Mode::Auto).then(|| {
        check(
            Verdict::Warn,
            "app.cds",
            format!("the jar cannot be extracted for a class-data archive: {why}; it starts as shipped (`app.cds: off` says so)"),
        )
    })
}

/// Whether `path` (without its query) ends in a readiness segment: `/actuator/health/readiness`,
/// `/readyz`, `/health/ready`.
pub fn is_readiness_path(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or("");
    let last = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    last.contains("readiness") || last.starts_with("ready")
}

/// `health.path` should gate on readiness: Spring Boot's readiness group goes OUT_OF_SERVICE
/// (503) the moment a graceful shutdown starts, where `/actuator/health` stays UP. A warning,
/// not a failure: an app without probes has only `/actuator/health`. For a Spring Boot jar the
/// line says what is true for its version ([`jar::probes`]): Spring Boot 4 serves the readiness
/// group by default, 2.3–3.x only with `management.endpoint.health.probes.enabled=true` (or on
/// Kubernetes), and a readiness path the app does not serve is a warning (every probe would
/// answer 404).
fn health_path_check(cfg: &Config, jar: Option<&jar::Jar>) -> Check {
    const NAME: &str = "health path";
    let path = cfg.health.path.as_str();
    let profiles: Vec<&str> = cfg.slots.iter().map(|s| s.profile.as_str()).collect();
    let probes = jar.and_then(|j| {
        jar::probes(
            j,
            &cfg.app.java_opts,
            &cfg.app.args,
            &cfg.app.env,
            &profiles,
        )
    });
    if is_readiness_path(path) {
        return match &probes {
            Some(p) if !p.served() && path.starts_with("/actuator/health/") => check(
                Verdict::Warn,
                NAME,
                format!(
                    "{path} is a readiness path, but the app will not serve it: {}; every probe would answer 404 (set {}=true, or use /actuator/health)",
                    p.why(),
                    jar::PROBES
                ),
            ),
            _ => check(
                Verdict::Ok,
                NAME,
                format!(
                    "{path} is a readiness path: traffic waits until the app is ready to take it{}",
                    probes.as_ref().map_or(String::new(), |p| format!("; {}", p.why()))
                ),
            ),
        };
    }
    let how = match &probes {
        Some(p) if p.served() => format!(" ({})", p.why()),
        _ => format!(
            " (with {}=true; Spring Boot 2.3–3.x turns it on by itself only on Kubernetes, Spring Boot 4 by default)",
            jar::PROBES
        ),
    };
    check(
        Verdict::Warn,
        NAME,
        format!(
            "{path} is not a readiness path{}: use /actuator/health/readiness{how}, which answers 503 once the app is not ready for traffic, e.g. when a graceful shutdown starts; keep /actuator/health only for an app that cannot enable probes (Spring Boot before 2.3)",
            if probes.is_some() { " and the jar is a Spring Boot jar" } else { "" }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_agents_rules() {
        let good = include_str!("../../appspec/appspec.yml");
        let (r, hooks) = appspec_format(good);
        assert!(r.is_ok(), "{r:?}");
        let hooks = hooks.unwrap();
        assert_eq!(hooks[0].event, "AfterInstall");
        assert_eq!(hooks[0].location, "bin/stop");
        let bad = good.replace("version: 0.0", "version: \"0.0\"");
        let (r, _) = appspec_format(&bad);
        assert!(r.unwrap_err()[0].contains("the string \"0.0\""));
        let bad = good.replace("os: linux", "os: Linux");
        assert!(appspec_format(&bad).0.is_err());
        let bad = good.replace("timeout: 180", "timeout: 0");
        assert!(appspec_format(&bad).0.unwrap_err()[0].contains("timeout 0"));
        let bad = good.replace("AfterInstall:", "AfterInstal:");
        assert!(appspec_format(&bad).0.unwrap_err()[0].contains("unknown lifecycle event"));
        let bad = "version: 0.0\nos: linux\nhooks:\n  AfterInstall:\n    location: bin/stop\n";
        let (r, hooks) = appspec_format(bad);
        assert!(r.unwrap_err()[0].contains("must be a list"));
        assert!(hooks.is_none());
    }

    #[test]
    fn finds_files_and_variable_uses_in_a_dump() {
        let dump = "# configuration file /etc/nginx/nginx.conf:\nhttp { include /etc/nginx/sites/*.conf; }\n\n# configuration file /etc/nginx/sites/a.conf:\nserver { location / { include /x/service-url.inc; proxy_pass $service_url; } }\n\n# configuration file /x/service-url.inc:\nset $service_url http://127.0.0.1:8081;\n";
        let files = parse_dump(dump);
        assert_eq!(files.len(), 3);
        assert_eq!(files[2].0, "/x/service-url.inc");
        assert!(statements(&files[1].1)
            .iter()
            .any(|w| w[0] == "proxy_pass" && uses_var(&w[1], "service_url")));
        assert!(uses_var("$service_url/api", "service_url"));
        assert!(uses_var("http://${service_url}", "service_url"));
        assert!(!uses_var("$service_url2", "service_url"));
    }

    #[test]
    fn mode_bits_decide_for_another_user() {
        let who = Who {
            name: "ec2-user".into(),
            uid: 1000,
            groups: vec![1000, 4],
            current: false,
        };
        // A root-owned folder, 0755: ec2-user may enter it, not create files in it.
        assert!(mode_allows(&who, 0, 0, 0o755, 1));
        assert!(!mode_allows(&who, 0, 0, 0o755, 3));
        // Its own file, 0644: writable. A group-writable file of group 4: writable.
        assert!(mode_allows(&who, 1000, 1000, 0o644, 2));
        assert!(mode_allows(&who, 0, 4, 0o664, 2));
        assert!(!mode_allows(&who, 0, 5, 0o664, 2));
        // The owner's bits count for the owner, even when "other" could.
        assert!(!mode_allows(&who, 1000, 0, 0o077, 2));
        let root = Who {
            uid: 0,
            ..who.clone()
        };
        assert!(mode_allows(&root, 5, 5, 0o000, 3));
        // A read-only folder by its bits: nobody gets no write; as seen through denied().
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o555),
        )
        .unwrap();
        let nobody = Who {
            name: "nobody".into(),
            uid: 65534,
            groups: vec![65534],
            current: false,
        };
        let why = denied(&nobody, dir.path(), 3).expect("no write for nobody");
        assert!(
            why.contains("mode 0555") || why.contains("cannot enter"),
            "{why}"
        );
    }

    #[test]
    fn a_default_server_elsewhere_fails_unless_the_app_is_named() {
        let dump = |app_names: &str, flag: &str| {
            vec![
                ("/n/nginx.conf".to_string(), "http {\n include /n/sites/*;\n}\n".to_string()),
                (
                    "/n/sites/a-default".to_string(),
                    format!("server {{\n listen 80{flag};\n server_name _;\n}}\n"),
                ),
                (
                    "/n/sites/b-app".to_string(),
                    format!("server {{\n listen 80;\n{app_names} location / {{ include /n/x.inc; }}\n}}\n"),
                ),
                ("/n/x.inc".to_string(), "set $service_url http://127.0.0.1:8081;\n".to_string()),
            ]
        };
        let run = |d: Vec<(String, String)>| {
            let tree = nginx_conf::load(&d);
            default_server_check(&nginx_conf::servers(&tree, Path::new("/n/x.inc")))
        };
        let c = run(dump("", " default_server"));
        assert_eq!(c.verdict, Verdict::Fail, "{c}");
        assert!(
            c.detail
                .contains("/n/sites/a-default:1 (no server_name) is the default_server"),
            "{c}"
        );
        let c = run(dump("", ""));
        assert_eq!(c.verdict, Verdict::Fail, "{c}");
        assert!(c.detail.contains("comes first there"), "{c}");
        let c = run(dump(" server_name app.example.com;\n", " default_server"));
        assert_eq!(c.verdict, Verdict::Warn, "{c}");
        assert!(
            c.detail
                .contains("requests for server_name app.example.com still reach the app"),
            "{c}"
        );
        // Alone on its port, or on another port: fine.
        let mut d = dump("", " default_server");
        d[1].1 = "server {\n listen 81 default_server;\n}\n".into();
        assert_eq!(run(d).verdict, Verdict::Ok);
        // A specific address on the same port takes what is sent to it.
        let mut d = dump("", "");
        d[1].1 = "server {\n listen 127.0.0.1:80;\n}\n".into();
        let c = run(d);
        assert_eq!(c.verdict, Verdict::Fail, "{c}");
        assert!(c.detail.contains("listens on 127.0.0.1:80"), "{c}");
    }

    #[test]
    fn the_health_path_line_says_what_is_true_for_the_spring_boot_version() {
        let cfg = |path: &str| {
            config::parse(
                &format!("app:\n  name: a\nhealth:\n  path: {path}\n"),
                Path::new("/x/n.yml"),
            )
            .unwrap()
        };
        let four = jar::tests::boot_jar("4.0.3", &[]);
        let three = jar::tests::boot_jar("3.5.7", &[]);
        let ready = cfg("/actuator/health/readiness");
        let c = health_path_check(&ready, Some(&four));
        assert_eq!(c.verdict, Verdict::Ok, "{c}");
        assert!(
            c.detail.ends_with(
                "; Spring Boot 4.0.3 turns management.endpoint.health.probes.enabled on by default"
            ),
            "{c}"
        );
        let c = health_path_check(&ready, Some(&three));
        assert_eq!(c.verdict, Verdict::Warn, "{c}");
        assert!(c.detail.contains("but the app will not serve it: Spring Boot 3.5.7 turns management.endpoint.health.probes.enabled on by itself only on Kubernetes (the default from Spring Boot 4)"), "{c}");
        let plain = cfg("/actuator/health");
        let c = health_path_check(&plain, Some(&four));
        assert_eq!(c.verdict, Verdict::Warn, "{c}");
        assert!(c.detail.contains("use /actuator/health/readiness (Spring Boot 4.0.3 turns management.endpoint.health.probes.enabled on by default)"), "{c}");
        assert!(!c.detail.contains("only on Kubernetes"), "{c}");
        let c = health_path_check(&plain, Some(&three));
        assert!(c.detail.contains("use /actuator/health/readiness (with management.endpoint.health.probes.enabled=true; Spring Boot 2.3–3.x turns it on by itself only on Kubernetes, Spring Boot 4 by default)"), "{c}");
    }

    #[test]
    fn the_margin_is_a_tenth_and_at_least_ten_seconds() {
        assert_eq!(margin(Duration::from_secs(20)), Duration::from_secs(10));
        assert_eq!(margin(Duration::from_secs(150)), Duration::from_secs(15));
    }
}

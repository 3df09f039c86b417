//! `nonstop validate`: check a host and a bundle before deploying, one line per check, exit 1
//! if any check fails.
//!
//! Checks: the config loads; the nginx master runs; `nginx -T` (the test command with `-t`
//! replaced by `-T`) passes, lists the include file among the files nginx really loads, and a
//! `proxy_pass` uses the variable (and, in balanced mode, the upstream file and its name); the
//! include names a slot; `appspec.yml` (next to the config, i.e. in the bundle, or `--appspec`)
//! is one the CodeDeploy agent accepts (the rules in shared/reference/codedeploy-hooks.md);
//! its hooks run the stages in a working order; each hook's timeout covers what its binary may
//! wait (stop.drain, stop.grace, health.deadline, ...) plus a margin; java and the jar are found.

use crate::config::{self, Config};
use crate::error::{failed, Result};
use crate::{nginx, stages};
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
    match config::load(config_flag) {
        Err(e) => {
            emit(check(Verdict::Fail, "config", e.to_string()));
            for name in ["nginx", "appspec", "java", "jar"] {
                emit(check(Verdict::Skip, name, "needs a config that loads"));
            }
        }
        Ok(cfg) => {
            emit(check(Verdict::Ok, "config", describe(&cfg)));
            for c in nginx_checks(&cfg) {
                emit(c);
            }
            let spec = appspec.map(Path::to_path_buf).unwrap_or_else(|| {
                cfg.path
                    .parent()
                    .unwrap_or(Path::new("/"))
                    .join("appspec.yml")
            });
            for c in appspec_checks(&cfg, &spec) {
                emit(c);
            }
            emit(java_check(&cfg));
            emit(jar_check(&cfg));
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

fn same_file(a: &str, b: &Path) -> bool {
    Path::new(a) == b
        || matches!((std::fs::canonicalize(a), std::fs::canonicalize(b)), (Ok(x), Ok(y)) if x == y)
}

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
    let names = ["nginx includes", "nginx uses var"];
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
        format!("`{shown}` passed: {} files loaded", files.len()),
    ));
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
    out
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
}

fn appspec_checks(cfg: &Config, path: &Path) -> Vec<Check> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return vec![
                check(
                    Verdict::Fail,
                    "appspec",
                    format!("cannot read {}: {e} (give --appspec PATH)", path.display()),
                ),
                check(Verdict::Skip, "hooks", "needs appspec.yml"),
            ]
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
        return out;
    };
    let bundle = path.parent().unwrap_or(Path::new("/"));
    out.extend(hook_checks(cfg, bundle, &hooks));
    out
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

fn hook_checks(cfg: &Config, bundle: &Path, hooks: &[Hook]) -> Vec<Check> {
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
        if !file.is_file() {
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

// ---------- java and the jar ----------

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

fn jar_check(cfg: &Config) -> Check {
    let jar: PathBuf = match stages::resolve_jar(cfg) {
        Ok(j) => j,
        Err(e) => return check(Verdict::Fail, "jar", e.to_string()),
    };
    let mut magic = [0u8; 4];
    let read = std::fs::File::open(&jar).and_then(|mut f| {
        use std::io::Read;
        f.read_exact(&mut magic)
    });
    let size = std::fs::metadata(&jar).map(|m| m.len()).unwrap_or(0);
    match read {
        Ok(()) if &magic == b"PK\x03\x04" => check(
            Verdict::Ok,
            "jar",
            format!("{} ({})", jar.display(), bytes(size)),
        ),
        Ok(()) => check(
            Verdict::Fail,
            "jar",
            format!("{} is not a jar (no zip header)", jar.display()),
        ),
        Err(e) => check(
            Verdict::Fail,
            "jar",
            format!("cannot read {}: {e}", jar.display()),
        ),
    }
}

/// `812 KB`, `48.3 MB`
fn bytes(n: u64) -> String {
    if n < 1_000_000 {
        format!("{} KB", n.div_ceil(1000))
    } else {
        format!("{:.1} MB", n as f64 / 1e6)
    }
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
    fn the_margin_is_a_tenth_and_at_least_ten_seconds() {
        assert_eq!(margin(Duration::from_secs(20)), Duration::from_secs(10));
        assert_eq!(margin(Duration::from_secs(150)), Duration::from_secs(15));
    }
}

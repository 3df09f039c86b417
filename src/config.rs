//! `nonstop.yml`: finding it, parsing it, and validating every value before anything uses it.
//!
//! Values that end up in an nginx file (variable name, host, ports) are checked by their types'
//! `Deserialize` impls, so the YAML parser reports the file, line and column of a bad value.
//! Cross-field problems (duplicate slots) are located by searching the source text.

use crate::error::{Error, Result};
use serde::{de, Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Environment variable naming the config file (second in the search order).
pub const CONFIG_ENV: &str = "NONSTOP_CONFIG";
/// Last place searched.
pub const SYSTEM_CONFIG: &str = "/etc/nonstop/nonstop.yml";

/// A fully validated configuration with every path made absolute.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this came from.
    pub path: PathBuf,
    pub app: App,
    pub slots: Vec<Slot>,
    pub health: Health,
    pub stop: Stop,
    pub nginx: Nginx,
    pub state_dir: PathBuf,
    pub keep_releases: usize,
}

#[derive(Debug, Clone)]
pub struct App {
    pub name: String,
    /// Absolute glob; only the file-name part may hold `*` and `?`.
    pub jar: PathBuf,
    pub java: Option<String>,
    pub java_opts: Vec<String>,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub workdir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    pub name: String,
    pub port: u16,
    pub profile: String,
}

#[derive(Debug, Clone)]
pub struct Health {
    pub path: String,
    /// Exact status wanted; `None` means any 2xx.
    pub status: Option<u16>,
    pub body: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub deadline: Duration,
}

#[derive(Debug, Clone)]
pub struct Stop {
    pub grace: Duration,
    /// Longest wait for a slot's in-flight requests after it leaves rotation.
    pub drain: Duration,
}

#[derive(Debug, Clone)]
pub struct Nginx {
    pub include: PathBuf,
    pub variable: String,
    /// Host written into the include (`http://HOST:PORT`); the apps listen on it.
    pub host: String,
    pub test: Vec<String>,
    pub reload: Vec<String>,
    pub pid_file: PathBuf,
    /// Balanced mode: the upstream file nonstop owns (one `server` line per slot).
    pub upstream_file: Option<PathBuf>,
    /// `upstream NAME { ... }`
    pub upstream_name: String,
}

// ---------- raw, as written in YAML ----------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    app: RawApp,
    #[serde(default = "default_slots")]
    slots: Vec<RawSlot>,
    #[serde(default)]
    health: RawHealth,
    #[serde(default)]
    stop: RawStop,
    #[serde(default)]
    nginx: RawNginx,
    state_dir: Option<PathBuf>,
    #[serde(default = "default_keep")]
    keep_releases: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: AppName,
    #[serde(default = "default_jar")]
    jar: String,
    java: Option<String>,
    #[serde(default)]
    java_opts: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<EnvName, String>,
    workdir: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlot {
    name: SlotName,
    port: Port,
    profile: Profile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawHealth {
    path: HttpPath,
    status: Option<u16>,
    body: Option<String>,
    interval: Dur,
    timeout: Dur,
    deadline: Dur,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawStop {
    grace: Dur,
    drain: Dur,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawNginx {
    include: PathBuf,
    variable: NginxVar,
    host: Host,
    test: Argv,
    reload: Argv,
    pid_file: PathBuf,
    upstream_file: Option<PathBuf>,
    upstream_name: Option<UpstreamName>,
}

fn default_slots() -> Vec<RawSlot> {
    [("blue", 8081, "real1"), ("green", 8082, "real2")]
        .into_iter()
        .map(|(n, p, pr)| RawSlot {
            name: SlotName(n.into()),
            port: Port(p),
            profile: Profile(pr.into()),
        })
        .collect()
}
fn default_keep() -> usize {
    5
}
fn default_jar() -> String {
    "*.jar".into()
}

impl Default for RawHealth {
    fn default() -> Self {
        RawHealth {
            path: HttpPath("/actuator/health".into()),
            status: None,
            body: None,
            interval: Dur(Duration::from_millis(500)),
            timeout: Dur(Duration::from_secs(2)),
            deadline: Dur(Duration::from_secs(120)),
        }
    }
}
impl Default for RawStop {
    fn default() -> Self {
        RawStop {
            grace: Dur(Duration::from_secs(35)),
            drain: Dur(Duration::from_secs(30)),
        }
    }
}
impl Default for RawNginx {
    fn default() -> Self {
        RawNginx {
            include: "/etc/nginx/conf.d/service-url.inc".into(),
            variable: NginxVar("service_url".into()),
            host: Host("127.0.0.1".into()),
            test: Argv(vec!["nginx".into(), "-t".into()]),
            reload: Argv(vec!["nginx".into(), "-s".into(), "reload".into()]),
            pid_file: "/run/nginx.pid".into(),
            upstream_file: None,
            upstream_name: None,
        }
    }
}

// ---------- validated scalar types ----------

/// Defines a newtype over String whose Deserialize impl rejects values `check` refuses.
macro_rules! checked_string {
    ($name:ident, $what:literal, $check:expr) => {
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
        struct $name(String);
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                let check: fn(&str) -> bool = $check;
                if check(&s) {
                    Ok($name(s))
                } else {
                    Err(de::Error::custom(format!(
                        concat!("invalid ", $what, " {:?}"),
                        s
                    )))
                }
            }
        }
    };
}

fn charset(s: &str, max: usize, ok: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.len() <= max && s.chars().all(ok)
}

checked_string!(AppName, "app name (want [a-z0-9._-]+)", |s| charset(
    s,
    64,
    |c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)
) && !s
    .starts_with('.'));
checked_string!(SlotName, "slot name (want [a-z0-9_-]+)", |s| charset(
    s,
    32,
    |c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-".contains(c)
));
checked_string!(Profile, "profile (want [A-Za-z0-9._,-]+)", |s| charset(
    s,
    64,
    |c| c.is_ascii_alphanumeric() || "._,-".contains(c)
));
checked_string!(EnvName, "environment variable name", |s| charset(
    s,
    128,
    |c| c.is_ascii_alphanumeric() || c == '_'
) && !s
    .starts_with(|c: char| c.is_ascii_digit()));
checked_string!(
    NginxVar,
    "nginx variable name (want [A-Za-z_][A-Za-z0-9_]*, without $)",
    |s| charset(s, 64, |c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with(|c: char| c.is_ascii_digit())
);
checked_string!(UpstreamName, "upstream name (want [A-Za-z0-9_.-]+)", |s| {
    charset(s, 64, |c| c.is_ascii_alphanumeric() || "_.-".contains(c))
});
checked_string!(
    Host,
    "host (want an IPv4 address, a [bracketed] IPv6 address or a host name)",
    valid_host
);
checked_string!(
    HttpPath,
    "health path (want /path with no spaces or control characters)",
    |s| s.starts_with('/') && charset(s, 512, |c| c.is_ascii_graphic())
);

/// A host that is safe to write between `http://` and `:PORT;` in an nginx file.
fn valid_host(s: &str) -> bool {
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    if s.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    charset(s, 253, |c| {
        c.is_ascii_alphanumeric() || c == '.' || c == '-'
    }) && s
        .split('.')
        .all(|l| !l.is_empty() && !l.starts_with('-') && !l.ends_with('-'))
}

#[derive(Debug, Clone, Copy)]
struct Port(u16);
impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        if (1..=65535).contains(&n) {
            Ok(Port(n as u16))
        } else {
            Err(de::Error::custom(format!(
                "invalid port {n} (want 1 to 65535)"
            )))
        }
    }
}

#[derive(Debug, Clone)]
struct Argv(Vec<String>);
impl<'de> Deserialize<'de> for Argv {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        if v.is_empty() || v[0].trim().is_empty() {
            return Err(de::Error::custom(
                "a command must be a non-empty argv list such as [\"nginx\", \"-t\"]",
            ));
        }
        Ok(Argv(v))
    }
}

#[derive(Debug, Clone, Copy)]
struct Dur(Duration);
impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(s) => s,
            other => {
                return Err(de::Error::custom(format!(
                    "invalid duration {other:?} (want a string such as 500ms, 2s or 3m)"
                )))
            }
        };
        parse_duration(&s).map(Dur).map_err(de::Error::custom)
    }
}

/// Parse `500ms`, `2s`, `1.5s`, `3m`, `1h`.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("invalid duration {s:?} (want a number and a unit: 500ms, 2s, 3m, 1h)");
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(bad)?;
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| bad())?;
    let secs = match unit.trim() {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if !(0.0..=86_400.0).contains(&secs) {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(secs))
}

// ---------- finding and loading ----------

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
    Err(Error::Config(format!(
        "no config file: give --config PATH or set {CONFIG_ENV} (also looked at {})",
        tried.join(", ")
    )))
}

/// Find and load the config.
pub fn load(flag: Option<&Path>) -> Result<Config> {
    let path = locate(flag)?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::Config(format!("{}: cannot read: {e}", path.display())))?;
    parse(&text, &path)
}

/// Parse and validate `text`, which was read from `path` (relative paths resolve against
/// the file's folder).
pub fn parse(text: &str, path: &Path) -> Result<Config> {
    let shown = path.display();
    let raw: RawConfig = serde_yaml::from_str(text).map_err(|e| {
        let msg = e.to_string();
        match e.location() {
            Some(l) => {
                let suffix = format!(" at line {} column {}", l.line(), l.column());
                let msg = msg.replace(&suffix, "");
                Error::Config(format!("{shown}:{}:{}: {msg}", l.line(), l.column()))
            }
            None => Error::Config(format!("{shown}: {msg}")),
        }
    })?;
    let at = |needle: &str, nth: usize| match line_of(text, needle, nth) {
        Some(n) => format!("{shown}:{n}"),
        None => shown.to_string(),
    };
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = abs.parent().unwrap_or(Path::new("/")).to_path_buf();
    let resolve = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            dir.join(p)
        }
    };

    if raw.slots.len() < 2 || raw.slots.len() > 16 {
        return Err(Error::Config(format!(
            "{}: slots: want 2 to 16 slots, found {}",
            at("slots:", 0),
            raw.slots.len()
        )));
    }
    for (i, s) in raw.slots.iter().enumerate() {
        for t in &raw.slots[..i] {
            if t.name == s.name {
                return Err(Error::Config(format!(
                    "{}: duplicate slot name {:?}",
                    at(&s.name.0, 1),
                    s.name.0
                )));
            }
            if t.port.0 == s.port.0 {
                return Err(Error::Config(format!(
                    "{}: duplicate slot port {}",
                    at(&s.port.0.to_string(), 1),
                    s.port.0
                )));
            }
        }
    }
    if raw.keep_releases < 2 {
        return Err(Error::Config(format!(
            "{}: keep_releases must be at least 2 (the live and the previous release)",
            at("keep_releases", 0)
        )));
    }
    let h = raw.health;
    if let Some(s) = h.status {
        if !(100..=599).contains(&s) {
            return Err(Error::Config(format!(
                "{}: health.status {s} is not an HTTP status",
                at("status:", 0)
            )));
        }
    }
    if h.interval.0.is_zero() || h.timeout.0.is_zero() || h.deadline.0 < h.interval.0 {
        return Err(Error::Config(format!(
            "{}: health: interval and timeout must be above zero and deadline at least one interval",
            at("health:", 0)
        )));
    }
    let name = raw.app.name.0;
    let jar_pattern = PathBuf::from(&raw.app.jar);
    if raw.app.jar.is_empty()
        || jar_pattern
            .parent()
            .is_some_and(|p| p.to_string_lossy().contains(['*', '?']))
    {
        return Err(Error::Config(format!(
            "{}: app.jar: wildcards are allowed only in the file name, not in folders",
            at("jar:", 0)
        )));
    }
    Ok(Config {
        path: abs.clone(),
        app: App {
            jar: resolve(&jar_pattern),
            java: raw.app.java.filter(|j| !j.is_empty()),
            java_opts: raw.app.java_opts,
            args: raw.app.args,
            env: raw.app.env.into_iter().map(|(k, v)| (k.0, v)).collect(),
            workdir: resolve(
                &raw.app
                    .workdir
                    .unwrap_or_else(|| PathBuf::from("/opt/nonstop").join(&name)),
            ),
            name: name.clone(),
        },
        slots: raw
            .slots
            .into_iter()
            .map(|s| Slot {
                name: s.name.0,
                port: s.port.0,
                profile: s.profile.0,
            })
            .collect(),
        health: Health {
            path: h.path.0,
            status: h.status,
            body: h.body.filter(|b| !b.is_empty()),
            interval: h.interval.0,
            timeout: h.timeout.0,
            deadline: h.deadline.0,
        },
        stop: Stop {
            grace: raw.stop.grace.0,
            drain: raw.stop.drain.0,
        },
        nginx: Nginx {
            include: resolve(&raw.nginx.include),
            variable: raw.nginx.variable.0,
            host: raw.nginx.host.0,
            test: raw.nginx.test.0,
            reload: raw.nginx.reload.0,
            pid_file: resolve(&raw.nginx.pid_file),
            upstream_file: raw.nginx.upstream_file.as_deref().map(resolve),
            upstream_name: raw
                .nginx
                .upstream_name
                .map_or_else(|| name.clone(), |n| n.0),
        },
        state_dir: resolve(
            &raw.state_dir
                .unwrap_or_else(|| PathBuf::from("/var/lib/nonstop").join(&name)),
        ),
        keep_releases: raw.keep_releases,
    })
}

/// 1-based line of the `nth` (0-based) line containing `needle`.
fn line_of(text: &str, needle: &str, nth: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .nth(nth)
        .map(|(i, _)| i + 1)
}

impl Config {
    /// The slot called `name`, or a usage error listing the known ones.
    pub fn slot(&self, name: &str) -> Result<&Slot> {
        self.slots.iter().find(|s| s.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.slots.iter().map(|s| s.name.as_str()).collect();
            Error::Usage(format!(
                "unknown slot {name:?} (slots: {})",
                known.join(", ")
            ))
        })
    }
    /// `workdir/releases`
    pub fn releases_dir(&self) -> PathBuf {
        self.app.workdir.join("releases")
    }
    /// `workdir/logs/<slot>.log`
    pub fn log_file(&self, slot: &Slot) -> PathBuf {
        self.app
            .workdir
            .join("logs")
            .join(format!("{}.log", slot.name))
    }
    /// True when an upstream file balances requests over the slots.
    pub fn balanced(&self) -> bool {
        self.nginx.upstream_file.is_some()
    }
    /// `workdir/run`
    pub fn run_dir(&self) -> PathBuf {
        self.app.workdir.join("run")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Config> {
        parse(text, Path::new("/srv/app/nonstop.yml"))
    }

    #[test]
    fn defaults_fill_in() {
        let c = p("app:\n  name: myapp\n").unwrap();
        assert_eq!(c.slots.len(), 2);
        assert_eq!(c.slots[1].port, 8082);
        assert_eq!(c.slots[0].profile, "real1");
        assert_eq!(c.app.jar, PathBuf::from("/srv/app/*.jar"));
        assert_eq!(c.app.workdir, PathBuf::from("/opt/nonstop/myapp"));
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/nonstop/myapp"));
        assert_eq!(c.health.deadline, Duration::from_secs(120));
        assert_eq!(c.nginx.variable, "service_url");
        assert_eq!(c.nginx.test, vec!["nginx", "-t"]);
        assert!(!c.balanced());
        assert_eq!(c.stop.drain, Duration::from_secs(30));
        assert_eq!(c.nginx.upstream_name, "myapp");
        let c = p("app:\n  name: a\nnginx:\n  upstream_file: up.conf\n").unwrap();
        assert_eq!(
            c.nginx.upstream_file,
            Some(PathBuf::from("/srv/app/up.conf"))
        );
        assert!(p("app:\n  name: a\nnginx:\n  upstream_name: 'a; b'\n").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("3m").unwrap(), Duration::from_secs(180));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = p("app:\n  name: myapp\nslots:\n  - {name: blue, port: 8081, profile: a}\n  - {name: green, port: 99999, profile: b}\n")
            .unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let m = e.to_string();
        assert!(m.starts_with("/srv/app/nonstop.yml:5:"), "{m}");
        assert!(m.contains("invalid port 99999"), "{m}");

        let m = p("app:\n  name: myapp\n  colour: blue\n")
            .unwrap_err()
            .to_string();
        assert!(
            m.contains(":3:") && m.contains("unknown field `colour`"),
            "{m}"
        );
    }

    #[test]
    fn rejects_nginx_injection() {
        for bad in [
            "nginx:\n  variable: 'x; return 200'\n",
            "nginx:\n  host: 'x; return 200'\n",
            "nginx:\n  host: '127.0.0.1:1/ a'\n",
        ] {
            let m = p(&format!("app:\n  name: a\n{bad}"))
                .unwrap_err()
                .to_string();
            assert!(m.contains(":4:") && m.contains("invalid"), "{m}");
        }
        assert!(p("app:\n  name: a\nnginx:\n  host: '[::1]'\n").is_ok());
        assert!(p("app:\n  name: a\nnginx:\n  host: app-1.internal\n").is_ok());
    }

    #[test]
    fn duplicate_slots_are_located() {
        let m = p("app:\n  name: a\nslots:\n  - {name: blue, port: 8081, profile: a}\n  - {name: blue, port: 8082, profile: b}\n")
            .unwrap_err()
            .to_string();
        assert!(
            m.starts_with("/srv/app/nonstop.yml:5: duplicate slot name"),
            "{m}"
        );
        let m = p("app:\n  name: a\nslots:\n  - {name: blue, port: 8081, profile: a}\n  - {name: green, port: 8081, profile: b}\n")
            .unwrap_err()
            .to_string();
        assert!(m.contains(":5: duplicate slot port 8081"), "{m}");
    }

    #[test]
    fn bad_names_rejected() {
        assert!(p("app:\n  name: My App\n").is_err());
        assert!(p("app:\n  name: a\nslots:\n  - {name: blue, port: 0, profile: a}\n  - {name: g, port: 2, profile: b}\n").is_err());
        assert!(p("app:\n  name: a\nhealth:\n  interval: 5\n").is_err());
        assert!(p("app:\n  name: a\nnginx:\n  test: []\n").is_err());
    }
}

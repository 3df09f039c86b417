//! `nonstop.yml`: finding it, parsing it, and validating every value before anything uses it.
//!
//! Values that end up in an nginx file (variable name, host, ports), or that would fail every
//! run (durations, the health path, a status, keep_releases, the jar pattern), are checked by
//! their types' `Deserialize` impls. Each check runs inside the YAML parser's visit of that very
//! value, so the error carries the value's own line and column (a check made after the value
//! was read would be reported at the enclosing block). Cross-field problems (duplicate slots,
//! a deadline shorter than the interval) are located by searching the source text.

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
    pub traffic: TrafficCfg,
    pub logs: Logs,
    pub state_dir: PathBuf,
    pub keep_releases: usize,
    pub watch: Watch,
}

/// `watch:`: judging the new release from nginx's access log after a switch
/// ([`crate::watch`]).
#[derive(Debug, Clone)]
pub struct Watch {
    /// `deploy` and `switch` watch without `--watch`.
    pub enabled: bool,
    /// How long to watch after the switch.
    pub duration: Duration,
    /// How often to judge.
    pub interval: Duration,
    /// How far back the old release's figures reach (read just before the switch).
    pub baseline: Duration,
    /// Below this many requests the new release is not judged (inconclusive, kept).
    pub min_requests: u64,
    /// The 5xx share that is always tolerated (a fraction: 0.01 is 1 %).
    pub errors: f64,
    /// A 5xx share above this many times the baseline's (and above `errors`) is a breach.
    pub errors_factor: f64,
    /// A p99 above `p99_factor` × the baseline's p99 + `p99_margin` is a breach.
    pub p99_factor: f64,
    pub p99_margin: Duration,
    /// nginx's access log in the `nonstop_<app>` format ([`crate::watch::sample::FORMAT`]).
    pub log: PathBuf,
}

/// How traffic reaches the live slot(s).
#[derive(Debug, Clone)]
pub struct TrafficCfg {
    /// `nginx-reload`: nonstop rewrites nginx files and reloads nginx; `nftables`: nginx
    /// proxies to `port` and an nftables DNAT rule steers new connections to the slots.
    pub via: crate::traffic::Via,
    /// nftables mode: the front port nginx proxies to (nothing listens there).
    pub port: Option<u16>,
    /// nftables mode: spread new connections over every slot in rotation (balanced mode,
    /// as `nginx.upstream_file` is in reload mode).
    pub balanced: bool,
}

/// The builtin supervisor's log files (`workdir/logs/<slot>.log`); systemd uses journald.
#[derive(Debug, Clone)]
pub struct Logs {
    /// A slot's log over this many bytes is rotated when the slot's next app starts.
    pub max_size: u64,
    /// Rotated files kept (`<slot>.log.1` … `.N`).
    pub keep: usize,
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
    /// Who keeps the app running: `auto` (systemd when PID 1 is systemd and nonstop may
    /// manage units), `systemd` or `builtin`.
    pub supervisor: crate::supervisor::Choice,
    /// The user the JVM runs as; `None`: the user nonstop runs as.
    pub user: Option<String>,
    /// Its group; `None`: the user's primary group.
    pub group: Option<String>,
    /// systemd: the standby slots start at boot too (default: only the live one).
    pub standby_at_boot: bool,
    /// A class-data archive per release (`auto`) or the jar as shipped (`off`).
    pub cds: crate::cds::Mode,
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
    #[serde(default)]
    logs: RawLogs,
    #[serde(default)]
    traffic: RawTraffic,
    state_dir: Option<PathBuf>,
    #[serde(default = "default_keep")]
    keep_releases: Keep,
    #[serde(default)]
    watch: RawWatch,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawWatch {
    enabled: bool,
    duration: Positive,
    interval: Positive,
    baseline: Positive,
    min_requests: MinRequests,
    errors: Percent,
    errors_factor: Factor,
    p99_factor: Factor,
    p99_margin: Dur,
    log: Option<PathBuf>,
}

impl Default for RawWatch {
    fn default() -> Self {
        RawWatch {
            enabled: false,
            duration: Positive(Duration::from_secs(60)),
            interval: Positive(Duration::from_secs(5)),
            baseline: Positive(Duration::from_secs(60)),
            min_requests: MinRequests(50),
            errors: Percent(0.01),
            errors_factor: Factor(2.0),
            p99_factor: Factor(2.0),
            p99_margin: Dur(Duration::from_millis(100)),
            log: None,
        }
    }
}

/// `watch.min_requests`: at least 1.
#[derive(Debug, Clone, Copy)]
struct MinRequests(u64);
impl<'de> Deserialize<'de> for MinRequests {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_i64(CheckedInt {
            what: "a number of requests, at least 1",
            check: |n| match u64::try_from(n) {
                Ok(k) if k >= 1 => Ok(MinRequests(k)),
                _ => Err(format!("watch.min_requests {n}: want at least 1 request")),
            },
        })
    }
}

/// A share written as `1%`, `0.5 %` or a bare number of percent; above 0, at most 100.
#[derive(Debug, Clone, Copy)]
struct Percent(f64);
impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Percent;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a percentage such as 1% or 0.5%")
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> std::result::Result<Percent, E> {
                if n.is_finite() && n > 0.0 && n <= 100.0 {
                    Ok(Percent(n / 100.0))
                } else {
                    Err(E::custom(format!(
                        "invalid percentage {n} (want above 0 and at most 100, e.g. 1%)"
                    )))
                }
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> std::result::Result<Percent, E> {
                self.visit_f64(n as f64)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> std::result::Result<Percent, E> {
                self.visit_f64(n as f64)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Percent, E> {
                match s.trim().trim_end_matches('%').trim().parse::<f64>() {
                    Ok(n) => self.visit_f64(n),
                    Err(_) => Err(E::custom(format!(
                        "invalid percentage {s:?} (want a number with %, e.g. 1%)"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A multiplier: at least 1, at most 1000.
#[derive(Debug, Clone, Copy)]
struct Factor(f64);
impl<'de> Deserialize<'de> for Factor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Factor;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a factor such as 2 or 1.5")
            }
            fn visit_f64<E: de::Error>(self, n: f64) -> std::result::Result<Factor, E> {
                if n.is_finite() && (1.0..=1000.0).contains(&n) {
                    Ok(Factor(n))
                } else {
                    Err(E::custom(format!(
                        "invalid factor {n} (want 1 to 1000, e.g. 2)"
                    )))
                }
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> std::result::Result<Factor, E> {
                self.visit_f64(n as f64)
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> std::result::Result<Factor, E> {
                self.visit_f64(n as f64)
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: AppName,
    #[serde(default = "default_jar")]
    jar: JarGlob,
    java: Option<String>,
    #[serde(default)]
    java_opts: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<EnvName, String>,
    workdir: Option<PathBuf>,
    #[serde(default)]
    supervisor: crate::supervisor::Choice,
    user: Option<UserName>,
    group: Option<UserName>,
    #[serde(default)]
    standby_at_boot: bool,
    #[serde(default)]
    cds: crate::cds::Mode,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawTraffic {
    via: crate::traffic::Via,
    port: Option<Port>,
    balanced: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawLogs {
    max_size: Size,
    keep: usize,
}

impl Default for RawLogs {
    fn default() -> Self {
        RawLogs {
            max_size: Size(100 << 20),
            keep: 5,
        }
    }
}

/// A byte count: a number, or a string with a K, M or G suffix (powers of 1024).
#[derive(Debug, Clone, Copy)]
struct Size(u64);
impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                write!(f, "a size in bytes (e.g. 104857600 or \"100M\")")
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> std::result::Result<Size, E> {
                Ok(Size(n))
            }
            fn visit_i64<E: de::Error>(self, n: i64) -> std::result::Result<Size, E> {
                u64::try_from(n)
                    .map(Size)
                    .map_err(|_| E::custom(format!("invalid size {n}: want 0 or more bytes")))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Size, E> {
                let t = s.trim();
                let (num, mult) = match t.chars().last() {
                    Some('K' | 'k') => (&t[..t.len() - 1], 1u64 << 10),
                    Some('M' | 'm') => (&t[..t.len() - 1], 1 << 20),
                    Some('G' | 'g') => (&t[..t.len() - 1], 1 << 30),
                    _ => (t, 1),
                };
                num.trim()
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| n.checked_mul(mult))
                    .map(Size)
                    .ok_or_else(|| {
                        E::custom(format!(
                            "invalid size {s:?} (want bytes, or a number with K, M or G)"
                        ))
                    })
            }
        }
        d.deserialize_any(V)
    }
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
    status: Option<HttpStatus>,
    body: Option<String>,
    interval: Positive,
    timeout: Positive,
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
fn default_keep() -> Keep {
    Keep(5)
}
fn default_jar() -> JarGlob {
    JarGlob("*.jar".into())
}

impl Default for RawHealth {
    fn default() -> Self {
        RawHealth {
            path: HttpPath("/actuator/health".into()),
            status: None,
            body: None,
            interval: Positive(Duration::from_millis(500)),
            timeout: Positive(Duration::from_secs(2)),
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

/// A string checked while the parser visits it (so an error points at the value itself).
struct CheckedStr<T> {
    what: &'static str,
    check: fn(&str) -> bool,
    make: fn(String) -> T,
}

impl<T> de::Visitor<'_> for CheckedStr<T> {
    type Value = T;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "a string ({})", self.what)
    }
    fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<T, E> {
        if (self.check)(s) {
            Ok((self.make)(s.to_string()))
        } else {
            Err(E::custom(match self.what.split_once(" (") {
                Some((name, want)) => format!("invalid {name} {s:?} ({want}"),
                None => format!("invalid {} {s:?}", self.what),
            }))
        }
    }
}

/// Defines a newtype over String whose Deserialize impl rejects values `check` refuses.
macro_rules! checked_string {
    ($name:ident, $what:literal, $check:expr) => {
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
        struct $name(String);
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                d.deserialize_str(CheckedStr {
                    what: $what,
                    check: $check,
                    make: $name,
                })
            }
        }
    };
}

fn charset(s: &str, max: usize, ok: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.len() <= max && s.chars().all(ok)
}

// `-` only as a separator: the names derived from it (units `nonstop-<app>@<slot>.service`,
// table `nonstop_<app>` with `-` as `_`, sudoers file `nonstop-<app>`) stay one per app, and
// sudo reads the file (it skips names with a `.`).
checked_string!(
    AppName,
    "app name (want [a-z0-9-]+ starting with a letter or digit; no `.` or `_`: it names units, an nftables table and a sudoers file)",
    valid_app_name
);

/// `[a-z0-9-]{1,48}`, not starting with `-` (see `AppName`).
pub fn valid_app_name(s: &str) -> bool {
    charset(s, 48, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
    }) && !s.starts_with('-')
}
checked_string!(
    UserName,
    "user or group name (want [a-z_][a-z0-9_-]*)",
    |s| charset(s, 32, |c| c.is_ascii_lowercase()
        || c.is_ascii_digit()
        || "_-".contains(c))
        && !s.starts_with(|c: char| c.is_ascii_digit() || c == '-')
);
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
    "health path (want /path[?query] of URI characters: letters, digits, -._~!$&()*+,;=:@/?% and %XX; no spaces, quotes, #, \\)",
    valid_http_path
);
checked_string!(
    JarGlob,
    "app.jar (want a path whose file name may hold * and ?, not its folders)",
    |s| !s.is_empty()
        && !Path::new(s)
            .parent()
            .is_some_and(|p| p.to_string_lossy().contains(['*', '?']))
);

/// A request target a probe can send as is: `/`, then only RFC 3986 path and query
/// characters (unreserved, sub-delims but `'`, `:@/?`, and `%` with two hex digits).
fn valid_http_path(s: &str) -> bool {
    let b = s.as_bytes();
    if !s.starts_with('/') || s.len() > 512 {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            if !(i + 2 < b.len() && b[i + 1].is_ascii_hexdigit() && b[i + 2].is_ascii_hexdigit()) {
                return false;
            }
            i += 3;
            continue;
        }
        let ok = c.is_ascii_alphanumeric() || b"-._~!$&()*+,;=:@/?".contains(&c);
        if !ok {
            return false;
        }
        i += 1;
    }
    true
}

/// A host that is safe to write between `http://` and `:PORT;` in an nginx file, and that
/// names something: an IPv4 address, a bracketed IPv6 address, or a host name whose last label
/// is not all digits (`999.999.999.999` and `1.2.3` are neither an address nor a name).
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
        && !s
            .rsplit('.')
            .next()
            .is_some_and(|l| l.chars().all(|c| c.is_ascii_digit()))
}

/// A whole number checked while the parser visits it: `Ok(n)` or the complaint.
struct CheckedInt<T> {
    what: &'static str,
    check: fn(i128) -> std::result::Result<T, String>,
}

impl<T> de::Visitor<'_> for CheckedInt<T> {
    type Value = T;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "a whole number ({})", self.what)
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> std::result::Result<T, E> {
        (self.check)(n.into()).map_err(E::custom)
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> std::result::Result<T, E> {
        (self.check)(n.into()).map_err(E::custom)
    }
}

#[derive(Debug, Clone, Copy)]
struct Port(u16);
impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_i64(CheckedInt {
            what: "a port, 1 to 65535",
            check: |n| match u16::try_from(n) {
                Ok(p) if p > 0 => Ok(Port(p)),
                _ => Err(format!("invalid port {n} (want 1 to 65535)")),
            },
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct HttpStatus(u16);
impl<'de> Deserialize<'de> for HttpStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_i64(CheckedInt {
            what: "an HTTP status, 100 to 599",
            check: |n| match u16::try_from(n) {
                Ok(s) if (100..=599).contains(&s) => Ok(HttpStatus(s)),
                _ => Err(format!(
                    "health.status {n} is not an HTTP status (want 100 to 599)"
                )),
            },
        })
    }
}

#[derive(Debug, Clone, Copy)]
struct Keep(usize);
impl<'de> Deserialize<'de> for Keep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_i64(CheckedInt {
            what: "a number of releases, at least 2",
            check: |n| match usize::try_from(n) {
                Ok(k) if k >= 2 => Ok(Keep(k)),
                _ => Err(format!(
                    "keep_releases {n}: want at least 2 (the live and the previous release)"
                )),
            },
        })
    }
}

#[derive(Debug, Clone)]
struct Argv(Vec<String>);
impl<'de> Deserialize<'de> for Argv {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Argv;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an argv list such as [\"nginx\", \"-t\"]")
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Argv, A::Error> {
                let mut v: Vec<String> = vec![];
                while let Some(a) = seq.next_element()? {
                    v.push(a);
                }
                if v.is_empty() || v[0].trim().is_empty() {
                    return Err(de::Error::custom(
                        "a command must be a non-empty argv list such as [\"nginx\", \"-t\"]",
                    ));
                }
                Ok(Argv(v))
            }
        }
        d.deserialize_seq(V)
    }
}

/// A duration checked while the parser visits it; `nonzero` refuses `0s`.
struct DurVisitor {
    nonzero: bool,
}

impl de::Visitor<'_> for DurVisitor {
    type Value = Duration;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a duration such as 500ms, 2s or 3m")
    }
    fn visit_str<E: de::Error>(self, s: &str) -> std::result::Result<Duration, E> {
        let d = parse_duration(s).map_err(E::custom)?;
        if self.nonzero && d.is_zero() {
            return Err(E::custom(format!(
                "invalid duration {s:?}: must be above zero"
            )));
        }
        Ok(d)
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> std::result::Result<Duration, E> {
        Err(E::custom(format!(
            "invalid duration {n} (want a number and a unit: 500ms, 2s, 3m, 1h)"
        )))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> std::result::Result<Duration, E> {
        self.visit_i64(n.min(i64::MAX as u64) as i64)
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> std::result::Result<Duration, E> {
        Err(E::custom(format!(
            "invalid duration {n} (want a number and a unit: 500ms, 2s, 3m, 1h)"
        )))
    }
}

#[derive(Debug, Clone, Copy)]
struct Dur(Duration);
impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(DurVisitor { nonzero: false }).map(Dur)
    }
}

/// A duration above zero (health.interval, health.timeout).
#[derive(Debug, Clone, Copy)]
struct Positive(Duration);
impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(DurVisitor { nonzero: true })
            .map(Positive)
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
        Error::Config(m) => Error::Config(m.replacen(
            "(also looked at ",
            &format!("(also looked at {PROJECT_CONFIG}, nonstop.yml, "),
            1,
        )),
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
        .map_err(|e| Error::Config(format!("{}: cannot read: {e}", path.display())))?;
    let cfg = parse(&text, &path)?;
    let dir = Path::new(crate::registry::DIR);
    if let Some(e) = crate::registry::read(dir, &cfg.app.name)? {
        if !(e.hook_user == "root" && rustix::process::geteuid().is_root()) {
            crate::registry::check_config(&cfg, &e, &crate::registry::path(dir, &e.app))?;
        }
    }
    Ok(cfg)
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
    let h = raw.health;
    if h.deadline.0 < h.interval.0 {
        return Err(Error::Config(format!(
            "{}: health.deadline {} is shorter than one health.interval {}",
            match line_of(text, "deadline:", 0) {
                Some(_) => at("deadline:", 0),
                None => at("health:", 0),
            },
            crate::log::human(h.deadline.0),
            crate::log::human(h.interval.0)
        )));
    }
    let front = raw.traffic.port.map(|p| p.0);
    match (raw.traffic.via, front) {
        (crate::traffic::Via::Nftables, None) => {
            return Err(Error::Config(format!(
                "{}: traffic.via nftables needs traffic.port: the front port nginx proxies to",
                at("traffic:", 0)
            )))
        }
        (_, Some(p)) if raw.slots.iter().any(|s| s.port.0 == p) => {
            return Err(Error::Config(format!(
                "{}: traffic.port {p} is a slot's port: the front port must be one nothing listens on",
                at("traffic:", 0)
            )))
        }
        (crate::traffic::Via::NginxReload, _) if raw.traffic.balanced => {
            return Err(Error::Config(format!(
                "{}: traffic.balanced is for nftables mode; in nginx-reload mode balanced means nginx.upstream_file",
                at("balanced:", 0)
            )))
        }
        _ => {}
    }
    let w = raw.watch;
    if w.interval.0 > w.duration.0 {
        return Err(Error::Config(format!(
            "{}: watch.interval {} is longer than watch.duration {}",
            at("watch:", 0),
            crate::log::human(w.interval.0),
            crate::log::human(w.duration.0)
        )));
    }
    let name = raw.app.name.0;
    let jar_pattern = PathBuf::from(&raw.app.jar.0);
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
            supervisor: raw.app.supervisor,
            user: raw.app.user.map(|u| u.0),
            group: raw.app.group.map(|g| g.0),
            standby_at_boot: raw.app.standby_at_boot,
            cds: raw.app.cds,
        },
        traffic: TrafficCfg {
            via: raw.traffic.via,
            port: front,
            balanced: raw.traffic.balanced,
        },
        logs: Logs {
            max_size: raw.logs.max_size.0,
            keep: raw.logs.keep,
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
            status: h.status.map(|s| s.0),
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
        keep_releases: raw.keep_releases.0,
        watch: Watch {
            enabled: w.enabled,
            duration: w.duration.0,
            interval: w.interval.0,
            baseline: w.baseline.0,
            min_requests: w.min_requests.0,
            errors: w.errors.0,
            errors_factor: w.errors_factor.0,
            p99_factor: w.p99_factor.0,
            p99_margin: w.p99_margin.0,
            log: resolve(
                &w.log
                    .unwrap_or_else(|| PathBuf::from(format!("/var/log/nginx/{name}.access.log"))),
            ),
        },
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
    /// `workdir/run/<slot>.pid`: the slot's app as nonstop recorded it at its start.
    pub fn pid_file(&self, slot: &Slot) -> PathBuf {
        self.run_dir().join(format!("{}.pid", slot.name))
    }
    /// `workdir/run/<slot>.exit`: how the builtin supervisor's app ended.
    pub fn exit_file(&self, slot: &Slot) -> PathBuf {
        self.run_dir().join(format!("{}.exit", slot.name))
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
        self.nginx.upstream_file.is_some() || self.traffic.balanced
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
            "nginx:\n  host: 999.999.999.999\n",
            "nginx:\n  host: 1.2.3\n",
            "nginx:\n  host: '10'\n",
        ] {
            let m = p(&format!("app:\n  name: a\n{bad}"))
                .unwrap_err()
                .to_string();
            assert!(m.contains(":4:") && m.contains("invalid"), "{m}");
            assert!(!m.contains('\n'), "one line: {m}");
            assert_eq!(
                p(&format!("app:\n  name: a\n{bad}"))
                    .unwrap_err()
                    .exit_code(),
                2
            );
        }
        assert!(p("app:\n  name: a\nnginx:\n  host: 10.0.0.7\n").is_ok());
        assert!(p("app:\n  name: a\nnginx:\n  host: app1.internal\n").is_ok());
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

    /// The `FILE:LINE:COL` an error starts with.
    fn where_(text: &str) -> String {
        let m = p(text).unwrap_err().to_string();
        let rest = m
            .strip_prefix("/srv/app/nonstop.yml:")
            .unwrap_or_else(|| panic!("{m}"));
        let mut it = rest.splitn(3, ':');
        format!("{}:{}", it.next().unwrap(), it.next().unwrap())
    }

    #[test]
    fn errors_point_at_the_bad_value_not_its_block() {
        // A bad port in a block-style slot: line 6, column 11 is `99999`, not the slot's `- `.
        let t = "app:\n  name: a\nslots:\n  - name: blue\n    profile: a\n    port: 99999\n  - {name: g, port: 2, profile: b}\n";
        assert_eq!(where_(t), "6:11");
        assert!(p(t).unwrap_err().to_string().contains("invalid port 99999"));
        // In a flow mapping: the value's column on its line.
        let t = "app:\n  name: a\nslots:\n  - {name: blue, port: 8081, profile: a}\n  - {name: green, port: 0, profile: b}\n";
        assert_eq!(where_(t), "5:25");
        // A bad duration, a zero interval, a number for a duration.
        let t = "app:\n  name: a\nhealth:\n  path: /up\n  deadline: 5 parsecs\n";
        assert_eq!(where_(t), "5:13");
        let t = "app:\n  name: a\nhealth:\n  path: /up\n  interval: 0s\n";
        assert_eq!(where_(t), "5:13");
        assert!(p(t).unwrap_err().to_string().contains("above zero"));
        let t = "app:\n  name: a\nstop:\n  grace: 5\n";
        assert_eq!(where_(t), "4:10");
        // A bad nginx variable, a bad status, keep_releases, an empty argv, a jar pattern.
        let t = "app:\n  name: a\nnginx:\n  include: /x.inc\n  variable: 'x; return 200'\n";
        assert_eq!(where_(t), "5:13");
        let t = "app:\n  name: a\nhealth:\n  path: /up\n  status: 700\n";
        assert_eq!(where_(t), "5:11");
        let t = "app:\n  name: a\nkeep_releases: 1\n";
        assert_eq!(where_(t), "3:16");
        let t = "app:\n  name: a\nnginx:\n  include: /x.inc\n  test: []\n";
        assert_eq!(where_(t), "5:9");
        let t = "app:\n  name: a\n  jar: 'build/*/app.jar'\n";
        assert_eq!(where_(t), "3:8");
        for t in [
            "app:\n  name: a\nhealth:\n  path: /up\n  deadline: 50ms\n",
            "app:\n  name: a\nhealth:\n  deadline: 50ms\n",
        ] {
            let m = p(t).unwrap_err().to_string();
            assert!(m.contains("shorter than one health.interval"), "{m}");
            assert!(
                m.starts_with(&format!("/srv/app/nonstop.yml:{}:", t.lines().count())),
                "{m}"
            );
        }
    }

    #[test]
    fn health_path_must_be_a_request_target() {
        for good in [
            "/actuator/health",
            "/",
            "/health?full=1&x=a%20b",
            "/api/v1/health;jsessionid=1",
            "/~user/a-b_c.d/@me:1/*,+!$()=",
        ] {
            let c = p(&format!("app:\n  name: a\nhealth:\n  path: \"{good}\"\n"));
            assert_eq!(c.unwrap().health.path, good);
        }
        for bad in [
            "actuator/health",
            "/a b",
            "/a#frag",
            "/a\\\\b",
            "/a\\\"b",
            "/a'b",
            "/a\\tb",
            "/a%2",
            "/a%zz",
            "/a<b>",
            "/caf\u{e9}",
            "",
        ] {
            let t = format!("app:\n  name: a\nhealth:\n  path: \"{bad}\"\n");
            let e = p(&t).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
            let m = e.to_string();
            assert!(m.starts_with("/srv/app/nonstop.yml:4:9: "), "{bad:?}: {m}");
            assert!(m.contains("invalid health path"), "{bad:?}: {m}");
        }
    }

    #[test]
    fn bad_names_rejected() {
        assert!(p("app:\n  name: My App\n").is_err());
        assert!(p("app:\n  name: a\nslots:\n  - {name: blue, port: 0, profile: a}\n  - {name: g, port: 2, profile: b}\n").is_err());
        assert!(p("app:\n  name: a\nhealth:\n  interval: 5\n").is_err());
        assert!(p("app:\n  name: a\nnginx:\n  test: []\n").is_err());
    }

    #[test]
    fn watch_values_are_checked() {
        let c = p("app:\n  name: shop\n").unwrap();
        assert!(!c.watch.enabled);
        assert_eq!(c.watch.duration, Duration::from_secs(60));
        assert_eq!(c.watch.log, PathBuf::from("/var/log/nginx/shop.access.log"));
        assert!((c.watch.errors - 0.01).abs() < 1e-9);
        let c = p("app:\n  name: a\nwatch:\n  enabled: true\n  duration: 30s\n  interval: 2s\n  errors: 0.5%\n  errors_factor: 3\n  p99_factor: 1.5\n  p99_margin: 50ms\n  min_requests: 20\n  log: logs/a.log\n").unwrap();
        assert!(c.watch.enabled);
        assert_eq!(c.watch.interval, Duration::from_secs(2));
        assert!((c.watch.errors - 0.005).abs() < 1e-9);
        assert_eq!(c.watch.min_requests, 20);
        assert_eq!(c.watch.log, PathBuf::from("/srv/app/logs/a.log"));
        for (bad, want) in [
            ("duration: 0s", "above zero"),
            ("interval: soon", "invalid duration"),
            ("errors: 0%", "invalid percentage"),
            ("errors: 101", "invalid percentage"),
            ("errors_factor: 0.5", "invalid factor"),
            ("min_requests: 0", "at least 1"),
            ("interval: 2m", "longer than watch.duration"),
            ("colour: red", "unknown field"),
        ] {
            let e = p(&format!("app:\n  name: a\nwatch:\n  {bad}\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{bad}: {e}");
            assert!(!e.contains('\n'), "{bad}: one line: {e}");
            // A value's own line; the cross-field check names the block.
            let line = if want.starts_with("longer") {
                ":3"
            } else {
                ":4"
            };
            assert!(e.contains(line), "{bad}: the line: {e}");
        }
    }
}

//! The validated scalar types: each checks its value inside the YAML parser's visit of that
//! very value, so an error carries the value's own line and column.

use serde::{de, Deserialize, Deserializer};
use std::path::Path;
use std::time::Duration;

/// `watch.min_requests`: at least 1.
#[derive(Debug, Clone, Copy)]
pub(super) struct MinRequests(pub(super) u64);
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
pub(super) struct Percent(pub(super) f64);
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
pub(super) struct Factor(pub(super) f64);
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

/// A byte count: a number, or a string with a K, M or G suffix (powers of 1024).
#[derive(Debug, Clone, Copy)]
pub(super) struct Size(pub(super) u64);
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
        pub(super) struct $name(pub(super) String);
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
    ProbePath,
    "watch.probes path (want /path[?query] of URI characters: letters, digits, -._~!$&()*+,;=:@/?% and %XX; no spaces, quotes, #, \\)",
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
pub(super) struct Port(pub(super) u16);
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
pub(super) struct HttpStatus(pub(super) u16);
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
pub(super) struct Keep(pub(super) usize);
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
pub(super) struct Argv(pub(super) Vec<String>);
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
pub(super) struct Dur(pub(super) Duration);
impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(DurVisitor { nonzero: false }).map(Dur)
    }
}

/// A duration above zero (health.interval, health.timeout).
#[derive(Debug, Clone, Copy)]
pub(super) struct Positive(pub(super) Duration);
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

//! The validated configuration: what the rest of nonstop reads, every value checked and every
//! path absolute; the seams' choices (`app.supervisor`, `traffic.via`) included.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Paths GET on the new slot every `interval`; one that fails is a breach.
    pub probes: Vec<String>,
}

/// How traffic reaches the live slot(s).
#[derive(Debug, Clone)]
pub struct TrafficCfg {
    /// `nginx-reload`: nonstop rewrites nginx files and reloads nginx; `nftables`: nginx
    /// proxies to `port` and an nftables DNAT rule steers new connections to the slots.
    pub via: Via,
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
    pub supervisor: Choice,
    /// The user the JVM runs as; `None`: the user nonstop runs as.
    pub user: Option<String>,
    /// Its group; `None`: the user's primary group.
    pub group: Option<String>,
    /// systemd: the standby slots start at boot too (default: only the live one).
    pub standby_at_boot: bool,
    /// A class-data archive per release (`auto`) or the jar as shipped (`off`).
    pub cds: CdsMode,
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

/// `app.supervisor` as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Choice {
    #[default]
    Auto,
    Systemd,
    Builtin,
}

/// `traffic.via`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// Rewrite nginx files and reload nginx.
    #[default]
    NginxReload,
    /// Steer new connections with an nftables DNAT rule; nginx is never reloaded.
    Nftables,
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Via::NginxReload => "nginx-reload",
            Via::Nftables => "nftables",
        })
    }
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

/// `app.cds` as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CdsMode {
    /// An archive per release where the JDK can make one from a running app (17+).
    #[default]
    Auto,
    /// The jar runs as shipped.
    Off,
}

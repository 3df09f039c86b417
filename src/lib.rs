//! nonstop: zero-downtime blue/green deploys of JVM apps behind nginx.
//!
//! The binaries in `src/bin/` replace the legacy CodeDeploy shell scripts one-for-one and only
//! parse flags; all logic lives here, one module per concern. See ARCHITECTURE.md for the
//! codemap and the invariants (which module may signal processes, which may write nginx files).

pub mod cds;
pub mod cli;
pub mod config;
pub mod error;
pub mod fsx;
pub mod health;
pub mod interrupt;
pub mod jar;
pub mod lock;
pub mod log;
pub mod nginx;
pub mod nginx_tokens;
pub mod operator;
pub mod out;
pub mod process;
pub mod progress;
pub mod registry;
pub mod releases;
pub mod rotation;
pub mod run;
pub mod setup;
pub mod slots;
pub mod stage_table;
pub mod stages;
pub mod state;
pub mod supervisor;
pub mod traffic;
pub mod userdb;
pub mod watch;

pub use error::{Error, Result};

/// What `--version` prints after the binary's name: `0.1.0 (commit 1a2b3c4)`, the version from
/// Cargo.toml and the commit build.rs found (`unknown` without git).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("NONSTOP_COMMIT"),
    ")"
);

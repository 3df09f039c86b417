//! What every binary shares: the common flags, config loading, logging and signal set-up, the
//! supervisor re-entry, and turning a [`crate::Error`] into a last log line and an exit code.

use crate::config::{self, Config};
use crate::error::Result;
use crate::{interrupt, process};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

/// Flags every binary takes.
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Config file [default: $NONSTOP_CONFIG, else nonstop.yml in the folder above this
    /// binary, else /etc/nonstop/nonstop.yml]
    #[arg(long, short = 'c', value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,
    /// Act on this slot instead of the one nonstop picks (for running stages by hand)
    #[arg(long, value_name = "NAME", global = true)]
    pub slot: Option<String>,
    /// More detail: -v debug, -vv trace
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
}

/// A binary's parsed flags, which include [`Common`].
pub trait Flags: Parser {
    fn common(&self) -> &Common;
    /// True when the output is on stdout (a report, a file): the closing "done in" line is
    /// then logged at debug level only.
    fn quiet(&self) -> bool {
        false
    }
}

/// Implement [`Flags`] for a binary's clap struct whose `common` field holds [`Common`].
#[macro_export]
macro_rules! flags {
    ($t:ty) => {
        impl $crate::cli::Flags for $t {
            fn common(&self) -> &$crate::cli::Common {
                &self.common
            }
        }
    };
}

/// Run a binary: supervisor re-entry, flags (usage errors exit 2), logging, signals, config,
/// then `body`. On failure the last stderr line is the error on one line.
pub fn main<F: Flags>(
    binary: &'static str,
    body: impl FnOnce(&F, &Config) -> Result<()>,
) -> ExitCode {
    run(binary, |flags: &F| {
        let cfg = config::load(flags.common().config.as_deref())?;
        log::debug!("config {}", cfg.path.display());
        body(flags, &cfg)
    })
}

/// [`main`] without loading the config, for commands that work without one or report a bad
/// one themselves (`nonstop init`, `nonstop validate`).
pub fn run<F: Flags>(binary: &'static str, body: impl FnOnce(&F) -> Result<()>) -> ExitCode {
    if let Some(spec) = std::env::var_os(process::SUPERVISE_ENV) {
        return process::supervise(spec);
    }
    let flags = F::parse();
    crate::log::init(binary, flags.common().verbose);
    interrupt::install();
    let t0 = Instant::now();
    match body(&flags) {
        Ok(()) => {
            let done = format!("{binary} done in {}", crate::log::human(t0.elapsed()));
            if flags.quiet() {
                log::debug!("{done}");
            } else {
                log::info!("{done}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let one_line = e.to_string().replace(['\n', '\r'], " ");
            log::error!("{binary} failed: {one_line}");
            ExitCode::from(e.exit_code())
        }
    }
}

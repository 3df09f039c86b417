//! What every binary shares: the common flags, config loading, logging and signal set-up, the
//! supervisor re-entry, turning a [`crate::Error`] (or a usage error) into a last log line and
//! an exit code; it re-exports [`out`], the one way a report reaches stdout (`crate::out`).

use crate::error::Result;
use crate::interrupt;
pub use crate::out::{lines_on_stderr, out, out_document, out_raw, stdout_closed, stdout_gone};
use crate::run::Run;
use crate::supervisor::builtin;
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

/// Run a binary: supervisor re-entry, flags (usage errors exit 2), logging, signals, config
/// and the [`Run`] made of it, then `body`. On failure the last stderr line is the error on one
/// line.
pub fn main<F: Flags>(binary: &'static str, body: impl FnOnce(&F, &Run) -> Result<()>) -> ExitCode {
    run(binary, |flags: &F| {
        let run = Run::load(flags.common().config.as_deref())?;
        log::debug!("config {}", run.cfg.path.display());
        body(flags, &run)
    })
}

/// [`main`] without loading the config, for commands that work without one or report a bad
/// one themselves (`nonstop init`, `nonstop validate`).
pub fn run<F: Flags>(binary: &'static str, body: impl FnOnce(&F) -> Result<()>) -> ExitCode {
    if let Some(spec) = std::env::var_os(builtin::SUPERVISE_ENV) {
        return builtin::supervise(spec);
    }
    if let Some(spec) = std::env::var_os(crate::cds::DUMP_ENV) {
        return crate::cds::dump_main(spec);
    }
    let flags = match F::try_parse() {
        Ok(f) => f,
        Err(e) => return usage_error(binary, &e),
    };
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

/// `--help` and `--version` print as clap prints them and exit 0. A real usage error prints
/// clap's message (with its usage and tip) and then, as the last stderr line like any other
/// failure, `BINARY failed: REASON` (clap's first line, e.g. `unexpected argument '--bogus'
/// found`); exit 2.
fn usage_error(binary: &'static str, e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let _ = e.print();
    crate::log::init(binary, 0);
    log::error!("{binary} failed: {}", usage_reason(e));
    ExitCode::from(crate::error::Kind::Usage.exit_code())
}

/// The reason of a clap error on one line: its first line without the `error: ` prefix.
pub fn usage_reason(e: &clap::Error) -> String {
    use clap::error::ErrorKind;
    if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
        return "a subcommand is required (see the list above)".into();
    }
    let text = e.render().to_string();
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("bad usage");
    first.strip_prefix("error: ").unwrap_or(first).to_string()
}

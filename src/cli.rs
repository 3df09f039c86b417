//! What every binary shares: the common flags, config loading, logging and signal set-up, the
//! supervisor re-entry, turning a [`crate::Error`] (or a usage error) into a last log line and
//! an exit code, and [`out`], the one way a report reaches stdout.

use crate::config::{self, Config};
use crate::error::Result;
use crate::{interrupt, process};
use clap::Parser;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Set once stdout cannot take more output (its reader went away): every later [`out`] is
/// dropped.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
/// Set by [`lines_on_stderr`]: the report lines go to stderr, stdout holds one document.
static LINES_ON_STDERR: AtomicBool = AtomicBool::new(false);

/// From here on [`out`] and [`out_raw`] write to stderr: stdout is kept for the one document
/// [`out_document`] prints (`nonstop deploy --json`).
pub fn lines_on_stderr() {
    LINES_ON_STDERR.store(true, Ordering::Relaxed);
}

/// `text` and a newline on stdout, also after [`lines_on_stderr`].
pub fn out_document(text: &str) {
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut o = std::io::stdout().lock();
    settle(
        o.write_all(format!("{text}\n").as_bytes())
            .and_then(|()| o.flush()),
    );
}

/// Print `line` and a newline on stdout (flushed at once, so a report shows as it is made).
///
/// A closed stdout (`nonstop status | head -1`, a pager quit early: `BrokenPipe`) is a normal
/// end of the reader's interest, not a failure of the command: this and every later line are
/// dropped silently and the command goes on (a deploy is never aborted halfway because its
/// reader left) and exits with its real code. Any other write error is logged once as a
/// warning and later output is dropped the same way.
pub fn out(line: impl std::fmt::Display) {
    write_out(format_args!("{line}\n"));
}

/// Like [`out`] for text that carries its own line ends (a rendered table, a man page).
pub fn out_raw(bytes: &[u8]) {
    if LINES_ON_STDERR.load(Ordering::Relaxed) {
        let _ = std::io::stderr().write_all(bytes);
        return;
    }
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut o = std::io::stdout().lock();
    settle(o.write_all(bytes).and_then(|()| o.flush()));
}

/// `println!` through [`out`]: `nonstop::outln!("wrote {}", p.display())`.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::out(format_args!($($arg)*))
    };
}

/// True once stdout was found closed (or failing) and output is being dropped.
pub fn stdout_gone() -> bool {
    STDOUT_GONE.load(Ordering::Relaxed)
}

/// [`stdout_gone`], also asking the kernel: true when stdout is a pipe whose reader has
/// closed it (`nonstop logs -f | head -1` after head's line), even before a write fails.
pub fn stdout_closed() -> bool {
    if stdout_gone() {
        return true;
    }
    let out = std::io::stdout();
    let mut fds = [rustix::event::PollFd::new(
        &out,
        rustix::event::PollFlags::empty(),
    )];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let closed = rustix::event::poll(&mut fds, Some(&zero)).is_ok_and(|n| n > 0)
        && fds[0]
            .revents()
            .intersects(rustix::event::PollFlags::ERR | rustix::event::PollFlags::HUP);
    if closed {
        STDOUT_GONE.store(true, Ordering::Relaxed);
    }
    closed
}

fn write_out(args: std::fmt::Arguments<'_>) {
    if LINES_ON_STDERR.load(Ordering::Relaxed) {
        let _ = std::io::stderr().write_fmt(args);
        return;
    }
    if STDOUT_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut o = std::io::stdout().lock();
    settle(o.write_fmt(args).and_then(|()| o.flush()));
}

fn settle(r: std::io::Result<()>) {
    let Err(e) = r else { return };
    if !STDOUT_GONE.swap(true, Ordering::Relaxed) && e.kind() != std::io::ErrorKind::BrokenPipe {
        log::warn!("cannot write to stdout ({e}); the rest of the report is dropped");
    }
}

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
    ExitCode::from(2)
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

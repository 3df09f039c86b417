//! The one way a report reaches stdout: [`out`] (a line), [`out_raw`] (text with its own line
//! ends) and `outln!`, and what a closed stdout means ([`stdout_gone`], [`stdout_closed`]).
//! On the ground floor so any module may report; `cli` re-exports it.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout cannot take more output (its reader went away): every later [`out`] is
/// dropped. Process-wide on purpose, like [`crate::interrupt`]'s flag: stdout is the process's
/// one descriptor 1, so a reader gone is gone for every run in the process.
static STDOUT_GONE: AtomicBool = AtomicBool::new(false);
/// Set by [`lines_on_stderr`]: the report lines go to stderr, stdout holds one document.
/// Process-wide for the same reason.
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
        $crate::out::out(format_args!($($arg)*))
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

//! Progress of a long wait (health polling, draining): on a terminal, one line on stderr that
//! is redrawn in place with the elapsed time and the deadline; otherwise (CodeDeploy's
//! scripts.log, CI logs, a pipe) a plain log line every [`PLAIN_EVERY`], so the log shows the
//! wait is alive without a line per probe.
//!
//! The terminal line is cleared when the wait ends (or the [`Progress`] is dropped), so the
//! log line that reports the outcome starts on a clean line.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// How often a plain (not terminal) progress line is logged.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// How often the terminal line is redrawn at most.
const REDRAW_EVERY: Duration = Duration::from_millis(100);
/// The terminal line is cut to this many characters, so it never wraps on a narrow terminal
/// (a wrapped line cannot be redrawn in place).
const WIDTH: usize = 78;

/// Where progress goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One line on stderr, redrawn in place.
    Terminal,
    /// A log line every [`PLAIN_EVERY`].
    Plain,
}

impl Mode {
    /// Terminal when stderr is a terminal, `TERM` is not `dumb` and debug logging is off
    /// (debug lines between redraws would land on the progress line).
    pub fn detect() -> Mode {
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        if std::io::stderr().is_terminal() && !dumb && !log::log_enabled!(log::Level::Debug) {
            Mode::Terminal
        } else {
            Mode::Plain
        }
    }
}

/// One long wait in progress.
#[derive(Debug)]
pub struct Progress {
    what: String,
    deadline: Duration,
    mode: Mode,
    t0: Instant,
    last_draw: Option<Instant>,
    next_plain: Duration,
    drawn: bool,
    /// A window that runs its full length (a watch), not a deadline: the line says the time left.
    window: bool,
}

impl Progress {
    /// Start showing a wait for `what` (e.g. "slot green health") that gives up at `deadline`.
    pub fn new(what: impl Into<String>, deadline: Duration) -> Progress {
        Progress::with_mode(what, deadline, Mode::detect())
    }

    /// Like [`Progress::new`] with an explicit mode.
    pub fn with_mode(what: impl Into<String>, deadline: Duration, mode: Mode) -> Progress {
        Progress {
            what: what.into(),
            deadline,
            mode,
            t0: Instant::now(),
            last_draw: None,
            next_plain: PLAIN_EVERY,
            drawn: false,
            window: false,
        }
    }

    /// A window watched to its end (`watch slot blue: 12 s of 60 s, 48 s left; …`).
    pub fn window(what: impl Into<String>, length: Duration) -> Progress {
        let mut p = Progress::new(what, length);
        p.window = true;
        p
    }

    fn text(&self, elapsed: Duration, detail: &str) -> String {
        if self.window {
            window_line(&self.what, elapsed, self.deadline, detail)
        } else {
            line(&self.what, elapsed, self.deadline, detail)
        }
    }

    /// Report the wait's current state (`detail`: what the last attempt saw). Cheap to call on
    /// every poll: it only draws or logs when it is time to.
    pub fn update(&mut self, detail: &str) {
        let elapsed = self.t0.elapsed();
        match self.mode {
            Mode::Terminal => {
                if self.last_draw.is_some_and(|t| t.elapsed() < REDRAW_EVERY) {
                    return;
                }
                self.last_draw = Some(Instant::now());
                let text = fit(self.text(elapsed, detail), WIDTH);
                let mut err = std::io::stderr().lock();
                let _ = write!(err, "\r\x1b[2K{text}");
                let _ = err.flush();
                self.drawn = true;
            }
            Mode::Plain => {
                if elapsed >= self.next_plain {
                    while self.next_plain <= elapsed {
                        self.next_plain += PLAIN_EVERY;
                    }
                    log::info!("{}", self.text(elapsed, detail));
                }
            }
        }
    }

    /// End the wait: clear the terminal line. Called by `drop` too.
    pub fn finish(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.drawn = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// `slot green health: 3.2 s of 30 s deadline; probe 7: no response (connection refused)`
pub fn line(what: &str, elapsed: Duration, deadline: Duration, detail: &str) -> String {
    let mut s = format!(
        "{what}: {} of {} deadline",
        human_short(elapsed),
        human_short(deadline)
    );
    if !detail.is_empty() {
        s += "; ";
        s += &detail.replace(['\n', '\r'], " ");
    }
    s
}

/// `watch slot blue: 12 s of 60 s, 48 s left; 5xx 0.0 % over 1,204 requests, p50 3 ms, p99 12 ms`
pub fn window_line(what: &str, elapsed: Duration, length: Duration, detail: &str) -> String {
    let elapsed = elapsed.min(length);
    let mut s = format!(
        "{what}: {} of {}, {} left",
        human_short(elapsed),
        human_short(length),
        human_short(length - elapsed)
    );
    if !detail.is_empty() {
        s += "; ";
        s += &detail.replace(['\n', '\r'], " ");
    }
    s
}

/// `s` cut to `width` characters (with an ellipsis when cut).
fn fit(s: String, width: usize) -> String {
    if s.chars().count() > width {
        s.chars().take(width - 1).collect::<String>() + "…"
    } else {
        s
    }
}

/// `3.2 s`, `45 s`, `2 m 05 s`: steady width while it counts.
fn human_short(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 120.0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} m {:02} s", d.as_secs() / 60, d.as_secs() % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_elapsed_and_deadline_and_never_wraps() {
        let l = line(
            "slot green health",
            Duration::from_millis(3200),
            Duration::from_secs(30),
            "probe 7: no response",
        );
        assert_eq!(
            l,
            "slot green health: 3.2 s of 30 s deadline; probe 7: no response"
        );
        let long = line(
            "slot green health",
            Duration::from_secs(125),
            Duration::from_secs(180),
            &"x".repeat(200),
        );
        assert!(long.starts_with("slot green health: 2 m 05 s of 3 m 00 s deadline; xxx"));
        assert_eq!(fit(long, WIDTH).chars().count(), WIDTH);
        assert_eq!(fit("short".into(), WIDTH), "short");
    }

    #[test]
    fn a_window_line_says_the_time_left() {
        assert_eq!(
            window_line(
                "watch slot blue",
                Duration::from_secs(12),
                Duration::from_secs(60),
                "5xx 0.0 % over 1,204 requests, p50 3 ms, p99 12 ms"
            ),
            "watch slot blue: 12 s of 60 s, 48 s left; 5xx 0.0 % over 1,204 requests, p50 3 ms, p99 12 ms"
        );
        let p = Progress::window("x", Duration::from_secs(5));
        assert!(p
            .text(Duration::from_secs(9), "")
            .ends_with("5.0 s of 5.0 s, 0.0 s left"));
    }

    #[test]
    fn plain_mode_logs_only_every_few_seconds() {
        let mut p = Progress::with_mode("x", Duration::from_secs(30), Mode::Plain);
        p.update("a");
        assert_eq!(
            p.next_plain, PLAIN_EVERY,
            "nothing logged in the first seconds"
        );
        p.t0 = p.t0.checked_sub(Duration::from_secs(11)).unwrap();
        p.update("b");
        assert_eq!(
            p.next_plain,
            PLAIN_EVERY * 3,
            "one line, then the next at 15 s"
        );
        assert!(!p.drawn, "plain mode never draws");
    }
}

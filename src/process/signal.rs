//! Stopping a process: SIGTERM, a bounded wait, SIGKILL, each signal sent only to the process
//! with the recorded start time (a reused pid is not signalled).

use super::procfs::same_process;
use crate::error::{failed, Context, Result};
use crate::interrupt;
use std::time::{Duration, Instant};

/// SIGTERM `pid`, wait up to `grace` for it to exit (a zombie counts), then SIGKILL and wait
/// again. `start_time` guards against pid reuse. Returns how long the shutdown took and
/// whether SIGKILL was needed.
pub fn terminate(pid: i32, start_time: u64, grace: Duration) -> Result<(Duration, bool)> {
    use rustix::process::{kill_process, Pid, Signal};
    let target = Pid::from_raw(pid).ok_or_else(|| failed(format!("invalid pid {pid}")))?;
    let gone = || !same_process(pid, start_time);
    let t0 = Instant::now();
    if gone() {
        return Ok((Duration::ZERO, false));
    }
    kill_process(target, Signal::TERM).context(format!("cannot send SIGTERM to pid {pid}"))?;
    log::info!(
        "sent SIGTERM to pid {pid}; waiting up to {:?} for it to exit",
        grace
    );
    while t0.elapsed() < grace {
        if gone() {
            return Ok((t0.elapsed(), false));
        }
        interrupt::sleep(Duration::from_millis(20), "waiting for the app to exit")?;
    }
    if gone() {
        return Ok((t0.elapsed(), false));
    }
    log::warn!(
        "pid {pid} still running {:?} after SIGTERM; sending SIGKILL",
        grace
    );
    kill_process(target, Signal::KILL).context(format!("cannot send SIGKILL to pid {pid}"))?;
    let t1 = Instant::now();
    while t1.elapsed() < Duration::from_secs(10) {
        if gone() {
            return Ok((t0.elapsed(), true));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(failed(format!("pid {pid} survived SIGKILL for 10 s")))
}

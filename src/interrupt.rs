//! SIGTERM/SIGINT/SIGHUP handling: signals set a flag that long waits check.
//!
//! The CodeDeploy agent sends SIGTERM to a hook's whole process group at its timeout. nonstop
//! never dies in the middle of an nginx transaction: the transaction is short and bounded, and
//! only the waits around it (health polling, waiting for a process to exit) are interruptible.
//!
//! The flag is process-wide on purpose, and the one thing of a run kept outside its
//! [`crate::run::Run`]: a signal is delivered to the process, not to one run in it.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();
static LAST: AtomicI32 = AtomicI32::new(0);

/// Install the handlers once; later calls are no-ops.
pub fn install() {
    FLAG.get_or_init(|| {
        let flag = Arc::new(AtomicBool::new(false));
        for sig in [
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGHUP,
        ] {
            let f = Arc::clone(&flag);
            // Safety: the action only stores into atomics, which is async-signal-safe.
            let _ = unsafe {
                signal_hook::low_level::register(sig, move || {
                    LAST.store(sig, Ordering::SeqCst);
                    f.store(true, Ordering::SeqCst);
                })
            };
        }
        flag
    });
}

/// True once a termination signal arrived.
pub fn requested() -> bool {
    FLAG.get().is_some_and(|f| f.load(Ordering::SeqCst))
}

/// Fail with a clear message if a termination signal arrived; `during` names the wait.
pub fn check(during: &str) -> Result<()> {
    if requested() {
        let name = match LAST.load(Ordering::SeqCst) {
            signal_hook::consts::SIGINT => "SIGINT",
            signal_hook::consts::SIGHUP => "SIGHUP",
            _ => "SIGTERM",
        };
        return Err(Error::Interrupted {
            signal: name,
            during: during.into(),
        });
    }
    Ok(())
}

/// Sleep for `d`, waking early (with an error) if a termination signal arrives.
pub fn sleep(d: Duration, during: &str) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        check(during)?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}

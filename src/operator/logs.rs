//! `nonstop logs [SLOT] [-n N] [-f]`: a slot's app output from its supervisor (journald for
//! systemd, the slot's log file for builtin). Reads only and takes no lock.

use crate::error::Result;
use crate::run::Run;
use crate::state;

/// Print the last `lines` of `slot`'s app (default: the live slot, else the first) and, with
/// `follow`, what it writes next.
pub fn run(run: &Run, slot: Option<&str>, lines: usize, follow: bool) -> Result<()> {
    let cfg = &run.cfg;
    let target = match slot {
        Some(name) => cfg.slot(name)?,
        None => {
            let roles = run.roles(&state::load(&cfg.state_dir))?;
            roles.live.unwrap_or(&cfg.slots[0])
        }
    };
    let sup = run.sup;
    log::debug!("slot {}: {}", target.name, sup.log_hint(cfg, target));
    sup.logs(cfg, target, lines, follow)
}

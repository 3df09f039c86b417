//! `switch`: point nginx at the idle slot (replaces switch.sh; ValidateService). With
//! `watch.enabled` (blue/green) it then watches the new release for `watch.duration` and
//! switches back on a breach, failing the hook.
use clap::Parser;
use nonstop::cli::Common;
use nonstop::stages::SwitchMode;

#[derive(Parser)]
#[command(
    name = "switch",
    version = nonstop::VERSION,
    about = "Point nginx at the idle slot: probe, atomic write, nginx -t, reload, confirm; restore on failure",
    after_help = "Examples:\n  bin/switch                                # as a CodeDeploy hook\n  switch --config /opt/myapp/nonstop.yml --slot blue   # switch back by hand\n  switch --canary 10      # balanced mode: about 10% of requests to the new slot\n  switch --promote        # then all of it\n  switch --abort          # or take the canary back out\n\nExit codes: 0 switched (or already live), 1 failed (nginx unchanged), 2 usage/config, 3 lock held"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    /// Switch without the health probe
    #[arg(long)]
    force: bool,
    /// Balanced mode: keep the old slots in rotation, send about PERCENT of requests to the new one
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u8).range(1..=99), conflicts_with_all = ["promote", "abort"])]
    canary: Option<u8>,
    /// Complete a canary: equal weights, the include points at the canary slot
    #[arg(long, conflicts_with = "abort")]
    promote: bool,
    /// Undo a canary: the canary slot leaves rotation
    #[arg(long)]
    abort: bool,
}

nonstop::flags!(Cli);

fn main() -> std::process::ExitCode {
    nonstop::cli::main("switch", |c: &Cli, run| {
        let mode = match (c.canary, c.promote, c.abort) {
            (Some(p), _, _) => SwitchMode::Canary(p),
            (_, true, _) => SwitchMode::Promote,
            (_, _, true) => SwitchMode::Abort,
            _ => SwitchMode::Full,
        };
        if mode == SwitchMode::Full {
            if let Some(d) = nonstop::watch::duration(&run.cfg, None)? {
                return nonstop::watch::switch(run, c.common.slot.as_deref(), c.force, d);
            }
        }
        nonstop::stages::switch(run, c.common.slot.as_deref().into(), c.force, mode)
    })
}

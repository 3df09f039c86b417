//! `health`: wait until the idle slot is healthy (replaces health.sh; ValidateService).
use clap::Parser;
use nonstop::cli::Common;

#[derive(Parser)]
#[command(
    name = "health",
    version = nonstop::VERSION,
    about = "Poll the idle slot's health URL until healthy, its app dies, or health.deadline",
    after_help = "Examples:\n  bin/health                                # as a CodeDeploy hook\n  health --config /opt/myapp/nonstop.yml --slot green -v\n\nExit codes: 0 healthy, 1 unhealthy or app exited, 2 usage/config"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    /// Poll the port without proving that the slot's own app answers (an app nonstop did not start)
    #[arg(long)]
    force: bool,
}

nonstop::flags!(Cli);

fn main() -> std::process::ExitCode {
    nonstop::cli::main("health", |c: &Cli, run| {
        nonstop::stages::health_forced(run, c.common.slot.as_deref().into(), c.force)
    })
}

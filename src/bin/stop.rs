//! `stop`: stop the app on the idle slot (replaces stop.sh; CodeDeploy AfterInstall).
use clap::Parser;
use nonstop::cli::Common;

#[derive(Parser)]
#[command(
    name = "stop",
    version = nonstop::VERSION,
    about = "Stop the app on the idle slot: SIGTERM, wait stop.grace, SIGKILL; never the live slot",
    after_help = "Examples:\n  bin/stop                                  # as a CodeDeploy hook: config next to bin/\n  stop --config /opt/myapp/nonstop.yml --slot green\n\nExit codes: 0 done (or nothing running), 1 failed or refused, 2 usage/config, 3 lock held"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    /// Stop the port's process even if nonstop cannot prove it is the app
    #[arg(long)]
    force: bool,
}

nonstop::flags!(Cli);

fn main() -> std::process::ExitCode {
    nonstop::cli::main("stop", |c: &Cli, run| {
        nonstop::stages::stop(run, c.common.slot.as_deref().into(), c.force)
    })
}

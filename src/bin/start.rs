//! `start`: launch the newest jar on the idle slot (replaces start.sh; ApplicationStart).
use clap::Parser;
use nonstop::cli::Common;

#[derive(Parser)]
#[command(
    name = "start",
    version = nonstop::VERSION,
    about = "Copy the newest jar to a new release and launch it on the idle slot, detached",
    after_help = "Examples:\n  bin/start                                 # as a CodeDeploy hook\n  start --config /opt/myapp/nonstop.yml --slot green\n\nExit codes: 0 launched, 1 failed (port taken, no jar, no java), 2 usage/config, 3 lock held"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
}

nonstop::flags!(Cli);

fn main() -> std::process::ExitCode {
    nonstop::cli::main("start", |c: &Cli, run| {
        nonstop::stages::start(run, c.common.slot.as_deref().into())
    })
}

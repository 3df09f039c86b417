//! `deploy-second`: roll the other slots to the new release (replaces deploySecondApp.sh;
//! ValidateService, after switch).
use clap::Parser;
use nonstop::cli::Common;

#[derive(Parser)]
#[command(
    name = "deploy-second",
    version = nonstop::VERSION,
    about = "After switch, roll every other slot to the live slot's release, one at a time: out of rotation, drain, stop, start, health, back in",
    after_help = "Examples:\n  bin/deploy-second                         # as a CodeDeploy hook after bin/switch\n  deploy-second --config /opt/myapp/nonstop.yml --slot red   # roll one slot\n\nExit codes: 0 all rolled, 1 stopped at a failing slot (it stays out of rotation), 2 usage/config, 3 lock held"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
}

nonstop::flags!(Cli);

fn main() -> std::process::ExitCode {
    nonstop::cli::main("deploy-second", |c: &Cli, run| {
        nonstop::stages::deploy_second(run, c.common.slot.as_deref())
    })
}

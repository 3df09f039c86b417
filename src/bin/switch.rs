//! `switch`: point nginx at the idle slot (replaces switch.sh; ValidateService).
use clap::Parser;
use nonstop::cli::{Common, Flags};

#[derive(Parser)]
#[command(
    name = "switch",
    version,
    about = "Point nginx at the idle slot: probe, atomic write, nginx -t, reload, confirm; restore on failure",
    after_help = "Examples:\n  bin/switch                                # as a CodeDeploy hook\n  switch --config /opt/myapp/nonstop.yml --slot blue   # switch back by hand\n\nExit codes: 0 switched (or already live), 1 failed (nginx unchanged), 2 usage/config, 3 lock held"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    /// Switch without the health probe
    #[arg(long)]
    force: bool,
}

impl Flags for Cli {
    fn common(&self) -> &Common {
        &self.common
    }
}

fn main() -> std::process::ExitCode {
    nonstop::cli::main("switch", |c: &Cli, cfg| {
        nonstop::stages::switch(cfg, c.common.slot.as_deref(), c.force)
    })
}

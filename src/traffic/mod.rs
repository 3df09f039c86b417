//! How requests reach the live slot(s): the seam between the stages and the two ways of
//! steering traffic, chosen once per run from `traffic.via`.
//!
//! - [`reload`] (`nginx-reload`, the default): the include (`set $service_url …;`) and, in
//!   balanced mode, the upstream file name the slots; a change rewrites them and reloads nginx
//!   ([`crate::nginx::apply`]). The files are the truth.
//! - [`nft`] (`nftables`): nginx proxies to one front port (`traffic.port`) and never reloads;
//!   an nftables table of nonstop's own (`nonstop_<app>`) DNATs each new connection to the live
//!   slot, or spreads them over the slots in rotation. A change is one atomic `nft -f`
//!   transaction, checked by the kernel and confirmed after. The table is the truth.
//!
//! The stages call only [`Traffic`] ([`seam`]: the trait, the rotation by slot, [`Doubt`]):
//! `switch`, `deploy-second`, canary and drain never touch nginx files or nft themselves.
//! Here: the choice, and a doubt in words (it names the chosen seam's truth). [`watcher`]:
//! the steering unit's watch, which loads the table again after a ruleset flush.

pub mod nft;
pub mod reload;
pub mod seam;
pub mod watcher;

use crate::config::Config;
pub use crate::config::Via;
pub use seam::{by_slot, Doubt, Traffic};

/// The traffic seam for `cfg`, for a reader that holds no lock (`status`, `validate`, a
/// message): it keeps nothing between calls.
pub fn of(cfg: &Config) -> Box<dyn Traffic> {
    seam(cfg, None)
}

/// The traffic seam a run uses (see [`crate::run::Run`]); `sup`: the run's supervisor (nftables
/// asks it to load the table at boot), else the one `app.supervisor` chooses.
pub fn seam(
    cfg: &Config,
    sup: Option<&'static dyn crate::supervisor::Supervisor>,
) -> Box<dyn Traffic> {
    match cfg.traffic.via {
        Via::NginxReload => Box::new(reload::Reload),
        Via::Nftables => Box::new(nft::Nft::new(sup)),
    }
}

impl Doubt {
    /// The doubt as words, for "cannot tell which slot nginx serves: …".
    pub fn describe(&self, cfg: &Config) -> String {
        let inc = cfg.nginx.include.display();
        match self {
            Doubt::IncludeMissing => format!(
                "{inc} is missing (nginx keeps serving what it loaded before)"
            ),
            Doubt::IncludeUnreadable(why) => format!("{inc} cannot be read: {why}"),
            Doubt::NoSet => format!(
                "{inc} has no `set ${} …;` statement",
                cfg.nginx.variable
            ),
            Doubt::NotLoaded(p) => format!(
                "{} changed after nginx last loaded its configuration (a switch interrupted before its reload, or an edit without one), so nginx may still serve the slot before it",
                p.display()
            ),
            Doubt::NftMissing => nft::NFT_MISSING.to_string(),
            Doubt::TableMissing => format!(
                "nftables table ip {} is not loaded (a reboot before its boot unit ran, or someone deleted it): new connections reach no slot",
                nft::table_name(cfg)
            ),
            Doubt::TableUnreadable(why) => format!(
                "nftables table ip {} cannot be read: {why}",
                nft::table_name(cfg)
            ),
            Doubt::TableDiffers(why) => format!(
                "nftables table ip {} was changed by someone else: {why}",
                nft::table_name(cfg)
            ),
            Doubt::StateDisagrees { recorded, include } => format!(
                "the state file records slot {recorded} as live but {} names {} (a switch interrupted before it was recorded, or a change by hand)",
                of(cfg).truth(cfg),
                include.as_deref().map_or("no slot".to_string(), |s| format!("slot {s}"))
            ),
        }
    }
}

//! `nonstop.yml`: finding it, parsing it, and validating every value before anything uses it.
//!
//! Values that end up in an nginx file (variable name, host, ports), or that would fail every
//! run (durations, the health path, a status, keep_releases, the jar pattern), are checked by
//! their types' `Deserialize` impls. Each check runs inside the YAML parser's visit of that very
//! value, so the error carries the value's own line and column (a check made after the value
//! was read would be reported at the enclosing block). Cross-field problems (duplicate slots,
//! a deadline shorter than the interval) are located by searching the source text.
//!
//! One file per concern: [`types`] (the validated configuration), [`values`] (the checked
//! scalar types), [`parse`](mod@parse) (the YAML sections with their defaults, and the checks across
//! them), [`load`](mod@load) (finding the file and loading it as this host's registry allows).

pub mod load;
pub mod parse;
pub mod types;
pub mod values;

pub use load::{load, locate, locate_in_project, CONFIG_ENV, PROJECT_CONFIG, SYSTEM_CONFIG};
pub use parse::parse;
pub use types::{
    App, CdsMode, Choice, Config, Health, Logs, Nginx, Slot, Stop, TrafficCfg, Via, Watch,
};
pub use values::{parse_duration, valid_app_name};

#[cfg(test)]
mod tests;

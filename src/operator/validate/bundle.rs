//! The checks `nonstop bundle` runs on a bundle before it writes it: those of `validate` that
//! need only the bundle's own files.

use super::app::{cds_check, health_path_check, jar_check};
use super::check::describe;
use super::check::{check, Check, CheckId, Verdict};
use super::hooks::appspec_checks;
use crate::config::Config;
use std::path::Path;

/// The checks of [`run`](super::run) that need only a bundle's own files, for `nonstop bundle` (the same
/// functions, not copies): the config loaded from `<root>/nonstop.yml` (relative paths resolve
/// against the bundle root, as on the host), `appspec` (`<root>/appspec.yml`: the agent's
/// rules, the hooks' order and locations in the bundle, each hook's timeout against what its
/// binary may wait) and the jar `app.jar` finds in the bundle.
pub fn bundle_checks(cfg: &Config, appspec: &Path) -> Vec<Check> {
    let mut out = vec![check(Verdict::Ok, CheckId::Config, describe(cfg))];
    out.extend(appspec_checks(cfg, appspec, false).0);
    let (jar, read) = jar_check(cfg);
    out.push(jar);
    out.push(health_path_check(cfg, read.as_ref()));
    out.extend(cds_check(cfg, read.as_ref()));
    out
}

/// The checks of [`run`](super::run) that [`bundle_checks`] leaves out: they need the target host.
pub const HOST_CHECKS: [CheckId; 4] = [
    CheckId::Nginx,
    CheckId::WriteAccess,
    CheckId::Supervisor,
    CheckId::Java,
];

/// [`HOST_CHECKS`] by name: `nginx, write access, supervisor, java`.
pub fn host_checks() -> String {
    HOST_CHECKS.map(|c| c.name()).join(", ")
}

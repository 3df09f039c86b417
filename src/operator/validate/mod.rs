//! `nonstop validate`: check a host and a bundle before deploying, one line per check, exit 1
//! if any check fails.
//!
//! Checks: the config loads; the nginx master runs; `nginx -T` (the test command with `-t`
//! replaced by `-T`) passes, lists the include file among the files nginx really loads, and a
//! `proxy_pass` uses the variable (and, in balanced mode, the upstream file and its name); the
//! server that includes the include is the one nginx picks for its listen address (no other
//! `default_server`, no earlier server there: Debian's `sites-enabled/default`); the include
//! names a slot; a request through nginx's listen port gets what the live slot answers;
//! `appspec.yml` (next to the config, i.e. in the bundle, or `--appspec`) is one the CodeDeploy
//! agent accepts (the rules in shared/reference/codedeploy-hooks.md); its hooks run the stages
//! in a working order; each hook's timeout covers what its binary may wait (stop.drain,
//! stop.grace, health.deadline, ...) plus a margin; the user the hooks run as (`runas`, else
//! this one) can write the nginx files nonstop owns and create files in state_dir and workdir;
//! java and the jar are found. The config is found as `nonstop bundle` finds it
//! ([`config::locate_in_project`]); on a machine that is evidently not the host (the build
//! machine) the host's checks are skipped with the reason.

mod app;
mod appspec;
mod bundle;
mod check;
mod hooks;
mod nftables;
mod nginx;
mod serving;
mod users;

pub use app::is_readiness_path;
pub use appspec::{appspec_format, Hook, EVENTS, MAX_TIMEOUT};
pub use bundle::{bundle_checks, host_checks, HOST_CHECKS};
pub use check::{Check, CheckId, Verdict};
pub use hooks::{margin, max_wait};
pub use nginx::{dump_command, parse_dump};
pub use serving::{get, Answer};
pub use users::{denied, lookup_user, mode_allows, write_problems, Who};

use crate::config::{self, Config};
use crate::error::Result;
use app::{cds_check, health_path_check, jar_check, java_check, supervisor_check};
use check::{check, describe};
use hooks::appspec_checks;
use nginx::nginx_checks;
use std::path::Path;
use users::write_check;

/// Run every check, printing each line as it is known; fail (exit 1) if any failed.
pub fn run(config_flag: Option<&Path>, appspec: Option<&Path>) -> Result<()> {
    let mut all = vec![];
    let mut emit = |c: Check| {
        crate::cli::out(&c);
        all.push(c);
    };
    match config::locate_in_project(config_flag).and_then(|p| config::load(Some(&p))) {
        Err(e) => {
            emit(check(Verdict::Fail, CheckId::Config, e.to_string()));
            for name in [
                CheckId::Nginx,
                CheckId::Appspec,
                CheckId::WriteAccess,
                CheckId::Supervisor,
                CheckId::Java,
                CheckId::Jar,
                CheckId::HealthPath,
            ] {
                emit(check(Verdict::Skip, name, "needs a config that loads"));
            }
        }
        Ok(cfg) => {
            emit(check(Verdict::Ok, CheckId::Config, describe(&cfg)));
            let elsewhere = not_the_host(&cfg);
            match &elsewhere {
                None => {
                    for c in nginx_checks(&cfg) {
                        emit(c);
                    }
                }
                Some(why) => emit(check(
                    Verdict::Skip,
                    CheckId::HostChecks,
                    format!(
                        "{} need the target host, and this is not it: {why}; run nonstop validate there",
                        host_checks()
                    ),
                )),
            }
            let beside = cfg
                .path
                .parent()
                .unwrap_or(Path::new("/"))
                .join("appspec.yml");
            let (checks, hooks) = match appspec {
                Some(spec) => appspec_checks(&cfg, spec, elsewhere.is_some()),
                // A host deployed over ssh has its config in /etc/nonstop and no appspec.yml
                // at all: nothing for the agent to run, so nothing to check.
                None if !beside.exists() => (
                    vec![
                        check(
                            Verdict::Skip,
                            CheckId::Appspec,
                            format!(
                                "no {} beside the config: not a CodeDeploy bundle (a deploy over ssh runs `nonstop deploy`); give --appspec PATH to check one",
                                beside.display()
                            ),
                        ),
                        check(Verdict::Skip, CheckId::Hooks, "needs appspec.yml"),
                    ],
                    None,
                ),
                None => appspec_checks(&cfg, &beside, elsewhere.is_some()),
            };
            for c in checks {
                emit(c);
            }
            if elsewhere.is_none() {
                emit(write_check(&cfg, hooks.as_deref()));
                emit(supervisor_check(&cfg));
                emit(java_check(&cfg));
            }
            let (jar, read) = match crate::releases::resolve_jar(&cfg) {
                // In a project, app.jar names the jar's place in the bundle, not target/.
                Err(e) if elsewhere.is_some() => (
                    check(
                        Verdict::Skip,
                        CheckId::Jar,
                        format!("{e}: app.jar is looked up in the bundle on the host; `nonstop bundle --jar PATH` checks the jar it packs"),
                    ),
                    None,
                ),
                _ => jar_check(&cfg),
            };
            emit(jar);
            emit(health_path_check(&cfg, read.as_ref()));
            if let Some(c) = cds_check(&cfg, read.as_ref()) {
                emit(c);
            }
        }
    }
    check::report(&all)
}

/// Why this machine is evidently not the host `cfg` deploys to (the build machine where
/// `nonstop init` and `nonstop bundle` run), or `None`: nothing of the host is here, neither a
/// running nginx master at `nginx.pid_file`, nor the include file (nginx-reload mode), nor
/// `state_dir`. A host whose nginx is down still has its include and is checked (and fails).
fn not_the_host(cfg: &Config) -> Option<String> {
    if crate::nginx::master_pid(cfg).is_ok() {
        return None;
    }
    let mut absent = vec![format!(
        "no nginx master at {}",
        cfg.nginx.pid_file.display()
    )];
    let mut paths = vec![&cfg.state_dir];
    if cfg.traffic.via == crate::traffic::Via::NginxReload {
        paths.insert(0, &cfg.nginx.include);
    }
    for p in paths {
        if std::fs::symlink_metadata(p).is_ok() {
            return None;
        }
        absent.push(format!("no {}", p.display()));
    }
    Some(absent.join(", "))
}

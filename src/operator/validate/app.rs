//! The app's side of a host and a bundle: the supervisor that runs the apps, java, the jar
//! `start` would launch, and whether `health.path` gates on readiness.

use super::check::{check, Check, CheckId, Verdict};
use crate::config::Config;
use crate::{jar, nginx, stages};
use std::path::PathBuf;

/// Which supervisor runs the apps, and whether the apps outlive what runs the hooks: with
/// builtin on a systemd host, every app a hook starts lives in the hook's cgroup, and the
/// CodeDeploy agent's unit (no `KillMode`, so `control-group`) kills them all when it stops
/// or restarts.
pub(super) fn supervisor_check(cfg: &Config) -> Check {
    use crate::supervisor::{self, Choice, Kind};
    let kind = supervisor::choose(cfg);
    let systemd_host = std::path::Path::new("/run/systemd/system").is_dir();
    match kind {
        Kind::Systemd => check(
            Verdict::Ok,
            CheckId::Supervisor,
            format!(
                "systemd ({}): units {}, the live one started at boot{}",
                if cfg.app.supervisor == Choice::Auto {
                    "auto"
                } else {
                    "app.supervisor"
                },
                cfg.slots
                    .iter()
                    .map(|s| supervisor::systemd::unit_name(cfg, s))
                    .collect::<Vec<_>>()
                    .join(", "),
                cfg.app
                    .user
                    .as_ref()
                    .map_or(String::new(), |u| format!(", JVMs as {u}"))
            ),
        ),
        Kind::Builtin if systemd_host => {
            let agent = std::fs::read_to_string("/etc/systemd/system/codedeploy-agent.service")
                .or_else(|_| {
                    std::fs::read_to_string("/lib/systemd/system/codedeploy-agent.service")
                })
                .or_else(|_| {
                    std::fs::read_to_string("/usr/lib/systemd/system/codedeploy-agent.service")
                });
            let kills = agent.as_ref().is_ok_and(|u| {
                !u.lines()
                    .any(|l| l.trim().replace(' ', "") == "KillMode=process")
            });
            check(
                Verdict::Warn,
                CheckId::Supervisor,
                format!(
                    "builtin on a host whose PID 1 is systemd{}: apps run in the cgroup of whatever runs the hooks{}; run `sudo nonstop setup --user USER` once (or deploy as root)",
                    if cfg.app.supervisor == Choice::Auto {
                        " (auto found no way to manage units: not root, and the app is not set up with `sudo nonstop setup --user USER`)"
                    } else {
                        ""
                    },
                    if kills {
                        ", and codedeploy-agent.service has no KillMode=process: its next restart kills every app it started"
                    } else {
                        ""
                    }
                ),
            )
        }
        Kind::Builtin => check(
            Verdict::Ok,
            CheckId::Supervisor,
            "builtin (PID 1 is not systemd): nothing restarts a crashed app or starts one at boot",
        ),
    }
}

pub(super) fn java_check(cfg: &Config) -> Check {
    let java = match stages::java_path(cfg) {
        Ok(j) => j,
        Err(e) => return check(Verdict::Fail, CheckId::Java, e.to_string()),
    };
    let argv = vec![java.to_string_lossy().into_owned(), "-version".into()];
    match nginx::run(&argv) {
        Ok((true, out)) => check(
            Verdict::Ok,
            CheckId::Java,
            format!(
                "{} ({})",
                java.display(),
                out.lines().next().unwrap_or("").trim()
            ),
        ),
        Ok((false, out)) => check(
            Verdict::Fail,
            CheckId::Java,
            format!(
                "`{} -version` failed: {}",
                java.display(),
                out.lines().last().unwrap_or("no output").trim()
            ),
        ),
        Err(e) => check(Verdict::Fail, CheckId::Java, e.to_string()),
    }
}

/// The jar `start` would launch: a zip whose manifest lets `java -jar` run it, and a complete
/// Spring Boot jar when it claims to be one (its launcher, `Spring-Boot-*` attributes or
/// `BOOT-INF/`): `Start-Class` and `Spring-Boot-Version` in the manifest, the Start-Class in
/// `BOOT-INF/classes/`. Also returns the jar as read, for the health path check.
pub(super) fn jar_check(cfg: &Config) -> (Check, Option<jar::Jar>) {
    const NAME: CheckId = CheckId::Jar;
    let jar_path: PathBuf = match crate::releases::resolve_jar(cfg) {
        Ok(j) => j,
        Err(e) => return (check(Verdict::Fail, NAME, e.to_string()), None),
    };
    let size = std::fs::metadata(&jar_path).map(|m| m.len()).unwrap_or(0);
    let what = format!("{} ({})", jar_path.display(), crate::log::human_bytes(size));
    let jar = match jar::read(&jar_path) {
        Ok(j) => j,
        Err(why) => {
            return (
                check(Verdict::Fail, NAME, format!("{what} is not a jar: {why}")),
                None,
            )
        }
    };
    let kind = jar.kind();
    let plain_hint = {
        let file = jar_path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if file.ends_with("-plain.jar") || file.ends_with(".original") {
            " (this is the plain jar of a Spring Boot build: deploy the boot jar beside it, and make app.jar match only that)"
        } else {
            ""
        }
    };
    let c = match &kind {
        jar::Kind::SpringBoot {
            version,
            start_class,
        } => check(
            Verdict::Ok,
            NAME,
            format!("{what}: Spring Boot {version} jar, Start-Class {start_class}"),
        ),
        jar::Kind::Plain { main_class } => check(
            Verdict::Ok,
            NAME,
            format!("{what}: Main-Class {main_class} (not a Spring Boot jar)"),
        ),
        jar::Kind::BrokenSpringBoot(why) => check(
            Verdict::Fail,
            NAME,
            format!("{what}: {why}: `java -jar` would not start the app; build it with spring-boot-maven-plugin's repackage (or Gradle's bootJar){plain_hint}"),
        ),
        jar::Kind::NotRunnable(why) => check(
            Verdict::Fail,
            NAME,
            format!("{what}: {why}, so `java -jar` cannot run it{plain_hint}"),
        ),
    };
    (c, Some(jar))
}

/// `app.cds: auto` with a Spring Boot jar that cannot be extracted: it runs as shipped (a
/// warning; a plain jar has nothing to extract and nothing to say).
pub(super) fn cds_check(cfg: &Config, jar: Option<&jar::Jar>) -> Option<Check> {
    let jar = jar.filter(|j| matches!(j.kind(), jar::Kind::SpringBoot { .. }))?;
    let why = crate::cds::extractable(jar).err()?;
    (cfg.app.cds == crate::cds::Mode::Auto).then(|| {
        check(
            Verdict::Warn,
            CheckId::Cds,
            format!("the jar cannot be extracted for a class-data archive: {why}; it starts as shipped (`app.cds: off` says so)"),
        )
    })
}

/// Whether `path` (without its query) ends in a readiness segment: `/actuator/health/readiness`,
/// `/readyz`, `/health/ready`.
pub fn is_readiness_path(path: &str) -> bool {
    let path = path.split('?').next().unwrap_or("");
    let last = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    last.contains("readiness") || last.starts_with("ready")
}

/// `health.path` should gate on readiness: Spring Boot's readiness group goes OUT_OF_SERVICE
/// (503) the moment a graceful shutdown starts, where `/actuator/health` stays UP. A warning,
/// not a failure: an app without probes has only `/actuator/health`. For a Spring Boot jar the
/// line says what is true for its version ([`jar::probes`]): Spring Boot 4 serves the readiness
/// group by default, 2.3–3.x only with `management.endpoint.health.probes.enabled=true` (or on
/// Kubernetes), and a readiness path the app does not serve is a warning (every probe would
/// answer 404).
pub(super) fn health_path_check(cfg: &Config, jar: Option<&jar::Jar>) -> Check {
    const NAME: CheckId = CheckId::HealthPath;
    let path = cfg.health.path.as_str();
    let profiles: Vec<&str> = cfg.slots.iter().map(|s| s.profile.as_str()).collect();
    let probes = jar.and_then(|j| {
        jar::probes(
            j,
            &cfg.app.java_opts,
            &cfg.app.args,
            &cfg.app.env,
            &profiles,
        )
    });
    if is_readiness_path(path) {
        return match &probes {
            Some(p) if !p.served() && path.starts_with("/actuator/health/") => check(
                Verdict::Warn,
                NAME,
                format!(
                    "{path} is a readiness path, but the app will not serve it: {}; every probe would answer 404 (set {}=true, or use /actuator/health)",
                    p.why(),
                    jar::PROBES
                ),
            ),
            _ => check(
                Verdict::Ok,
                NAME,
                format!(
                    "{path} is a readiness path: traffic waits until the app is ready to take it{}",
                    probes.as_ref().map_or(String::new(), |p| format!("; {}", p.why()))
                ),
            ),
        };
    }
    let how = match &probes {
        Some(p) if p.served() => format!(" ({})", p.why()),
        _ => format!(
            " (with {}=true; Spring Boot 2.3–3.x turns it on by itself only on Kubernetes, Spring Boot 4 by default)",
            jar::PROBES
        ),
    };
    check(
        Verdict::Warn,
        NAME,
        format!(
            "{path} is not a readiness path{}: use /actuator/health/readiness{how}, which answers 503 once the app is not ready for traffic, e.g. when a graceful shutdown starts; keep /actuator/health only for an app that cannot enable probes (Spring Boot before 2.3)",
            if probes.is_some() { " and the jar is a Spring Boot jar" } else { "" }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use std::path::Path;

    #[test]
    fn the_health_path_line_says_what_is_true_for_the_spring_boot_version() {
        let cfg = |path: &str| {
            config::parse(
                &format!("app:\n  name: a\nhealth:\n  path: {path}\n"),
                Path::new("/x/n.yml"),
            )
            .unwrap()
        };
        let four = jar::tests::boot_jar("4.0.3", &[]);
        let three = jar::tests::boot_jar("3.5.7", &[]);
        let ready = cfg("/actuator/health/readiness");
        let c = health_path_check(&ready, Some(&four));
        assert_eq!(c.verdict, Verdict::Ok, "{c}");
        assert!(
            c.detail.ends_with(
                "; Spring Boot 4.0.3 turns management.endpoint.health.probes.enabled on by default"
            ),
            "{c}"
        );
        let c = health_path_check(&ready, Some(&three));
        assert_eq!(c.verdict, Verdict::Warn, "{c}");
        assert!(c.detail.contains("but the app will not serve it: Spring Boot 3.5.7 turns management.endpoint.health.probes.enabled on by itself only on Kubernetes (the default from Spring Boot 4)"), "{c}");
        let plain = cfg("/actuator/health");
        let c = health_path_check(&plain, Some(&four));
        assert_eq!(c.verdict, Verdict::Warn, "{c}");
        assert!(c.detail.contains("use /actuator/health/readiness (Spring Boot 4.0.3 turns management.endpoint.health.probes.enabled on by default)"), "{c}");
        assert!(!c.detail.contains("only on Kubernetes"), "{c}");
        let c = health_path_check(&plain, Some(&three));
        assert!(c.detail.contains("use /actuator/health/readiness (with management.endpoint.health.probes.enabled=true; Spring Boot 2.3–3.x turns it on by itself only on Kubernetes, Spring Boot 4 by default)"), "{c}");
    }
}

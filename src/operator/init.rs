//! `nonstop init [DIR]`: start a project's deployment files from the templates in
//! `templates/` and `appspec/` (built into the binary):
//!
//! - `deploy/nonstop.yml`, `deploy/appspec.yml`: the bundle's config and CodeDeploy hooks;
//! - `deploy/nginx/{service-url.inc,site.conf,upstream.conf}`: the include nonstop owns, a
//!   site that uses it, and the balanced-mode upstream;
//! - `Jenkinsfile` and `.github/workflows/nonstop-deploy.yml`: the release tarball's `nonstop`,
//!   the Maven build, `nonstop bundle`, upload to S3, `aws deploy create-deployment`, wait;
//! - `Jenkinsfile.ssh` and `.github/workflows/nonstop-deploy-ssh.yml`: without CodeDeploy, the
//!   Maven build, `scp` of the jar, `ssh HOST nonstop deploy --jar …` (its exit code fails the
//!   build, its lines show in the build's log);
//! - `ansible/{setup,deploy,rollback,status}.yml`, `ansible/inventory.ini` and
//!   `Jenkinsfile.ansible`: several hosts rolled one at a time by Ansible, each running
//!   `nonstop deploy --json` (its `changed` and exit code are the task's).
//!
//! `--name`, `--include` and `--listen` replace the templates' `myapp`, include path and
//! `listen 80`; the site and config steer with nftables (nginx never reloaded) unless `--traffic nginx-reload`.
//! Existing files are never overwritten without `--force`: without it, nothing is written if
//! any of them exists.

use crate::error::{failed, Error, Refusal, Result};
use crate::fsx::write_atomic;
use std::path::{Path, PathBuf};

/// Every file `init` writes: (path under DIR, template).
pub const FILES: [(&str, &str); 15] = [
    (
        "deploy/nonstop.yml",
        include_str!("../../templates/nonstop.yml"),
    ),
    (
        "deploy/appspec.yml",
        include_str!("../../appspec/appspec.yml"),
    ),
    (
        "deploy/nginx/service-url.inc",
        include_str!("../../templates/nginx/service-url.inc"),
    ),
    (
        "deploy/nginx/site.conf",
        include_str!("../../templates/nginx/site.conf"),
    ),
    (
        "deploy/nginx/upstream.conf",
        include_str!("../../templates/nginx/upstream.conf"),
    ),
    ("Jenkinsfile", include_str!("../../templates/Jenkinsfile")),
    (
        ".github/workflows/nonstop-deploy.yml",
        include_str!("../../templates/github-workflow.yml"),
    ),
    (
        "Jenkinsfile.ssh",
        include_str!("../../templates/Jenkinsfile.ssh"),
    ),
    (
        ".github/workflows/nonstop-deploy-ssh.yml",
        include_str!("../../templates/github-workflow-ssh.yml"),
    ),
    (
        "Jenkinsfile.ansible",
        include_str!("../../templates/Jenkinsfile.ansible"),
    ),
    (
        "ansible/setup.yml",
        include_str!("../../templates/ansible/setup.yml"),
    ),
    (
        "ansible/deploy.yml",
        include_str!("../../templates/ansible/deploy.yml"),
    ),
    (
        "ansible/rollback.yml",
        include_str!("../../templates/ansible/rollback.yml"),
    ),
    (
        "ansible/status.yml",
        include_str!("../../templates/ansible/status.yml"),
    ),
    (
        "ansible/inventory.ini",
        include_str!("../../templates/ansible/inventory.ini"),
    ),
];

/// The templates' placeholders (real values, so each template is usable as it is).
const NAME: &str = "myapp";
const INCLUDE: &str = "/etc/nginx/conf.d/service-url.inc";
const LISTEN: &str = "listen 80;";

/// What `init` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    pub force: bool,
    /// `app.name`, the upstream's name, the CodeDeploy application (replaces `myapp`).
    pub name: String,
    /// The include file nonstop owns.
    pub include: PathBuf,
    /// nginx `listen` of the site: `80`, `127.0.0.1:8080`, `[::]:80`.
    pub listen: String,
    /// `nginx-reload` (the include) or `nftables` (the site proxies to a front port).
    pub traffic: crate::traffic::Via,
}

/// nftables mode's front port in what `init` writes (`traffic.port`) for app `name`: derived
/// from the name, and not one an app set up on this machine takes (`sudo nonstop setup`
/// refuses a clash on the host in any case).
pub fn front_port(name: &str) -> u16 {
    crate::registry::front_port_for(name, Path::new(crate::registry::DIR))
}

/// Write the files (see the module doc) and print what was written.
pub fn run(o: &Options) -> Result<()> {
    let files = render(o)?;
    let existing: Vec<String> = files
        .iter()
        .map(|(p, _)| o.dir.join(p))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() && !o.force {
        return Err(Error::refused(
            Refusal::Overwrite {
                paths: existing.clone(),
            },
            format!(
                "refusing to overwrite {} (give --force to replace them); nothing written",
                existing.join(", ")
            ),
        ));
    }
    for (rel, text) in &files {
        let p = o.dir.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| failed(format!("cannot create {}: {e}", parent.display())))?;
        }
        write_atomic(&p, text.as_bytes(), 0o644)?;
        crate::outln!("wrote {}", p.display());
    }
    let d = o.dir.display();
    // nftables steering (the default) proxies to the front port: no include to install.
    let site = if o.traffic == crate::traffic::Via::Nftables {
        "site.conf"
    } else {
        "site.conf and service-url.inc"
    };
    crate::outln!(
        "next: edit {d}/deploy/nonstop.yml (slots, health, java_opts) and the names in the Jenkinsfile / workflow;\n      \
         install {d}/deploy/nginx/{site} on the host (see their comments);\n      \
         on the host, once per app (units, sudo rules; --user is who runs the hooks):\n      \
         sudo nonstop setup --user ec2-user --config {d}/deploy/nonstop.yml\n      \
         then, in a bundle or on the host: nonstop validate --config {d}/deploy/nonstop.yml"
    );
    Ok(())
}

/// nftables mode: the site proxies to the front port (no include, no slot port in any nginx
/// file) and nonstop.yml says so; other files as they are.
fn for_traffic(rel: &str, text: String, via: crate::traffic::Via, front: u16) -> String {
    if via != crate::traffic::Via::Nftables {
        return text;
    }
    match rel {
        "deploy/nginx/site.conf" => {
            let mut out = String::new();
            for line in text.lines() {
                let t = line.trim_start();
                if t.starts_with("include ") && t.contains("set $service_url") {
                    continue;
                }
                if t.starts_with("proxy_pass $service_url;") {
                    let indent = &line[..line.len() - t.len()];
                    out += &format!(
                        "{indent}proxy_pass http://127.0.0.1:{front};   # nonstop's nftables table steers this port to the live slot\n"
                    );
                    continue;
                }
                out += line;
                out.push('\n');
            }
            out
        }
        "deploy/nonstop.yml" => text.replacen(
            "\nstate_dir:",
            &format!(
                "\ntraffic:\n  via: nftables               # steer new connections with nonstop's nftables table\n  port: {front}                 # the front port the nginx site proxies to\n  # balanced: true            # spread over every slot in rotation\nstate_dir:"
            ),
            1,
        ),
        _ => text,
    }
}

/// The files with the options filled in.
pub fn render(o: &Options) -> Result<Vec<(&'static str, String)>> {
    let name_ok = crate::config::valid_app_name(&o.name);
    if !name_ok {
        return Err(Error::Usage(format!(
            "--name {:?}: want [a-z0-9-]+ starting with a letter or digit (it becomes app.name, the nginx upstream name, and the names of units, a table and a sudoers file)",
            o.name
        )));
    }
    let include = o.include.to_string_lossy();
    let include_ok = o.include.is_absolute()
        && include
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
    if !include_ok {
        return Err(Error::Usage(format!(
            "--include {include:?}: want an absolute path of [A-Za-z0-9/._-] (it is written into nginx files)"
        )));
    }
    let listen_ok = !o.listen.is_empty()
        && o.listen
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".:[]".contains(c));
    if !listen_ok {
        return Err(Error::Usage(format!(
            "--listen {:?}: want a port or address:port such as 80 or 127.0.0.1:8080",
            o.listen
        )));
    }
    let front = front_port(&o.name);
    Ok(FILES
        .iter()
        .map(|(rel, t)| {
            let text = t
                .replace(NAME, &o.name)
                .replace(INCLUDE, &include)
                .replace(LISTEN, &format!("listen {};", o.listen));
            (*rel, for_traffic(rel, text, o.traffic, front))
        })
        .collect())
}

/// The paths `init` would write under `dir`.
pub fn paths(dir: &Path) -> Vec<PathBuf> {
    FILES.iter().map(|(p, _)| dir.join(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(dir: &Path) -> Options {
        Options {
            dir: dir.to_path_buf(),
            force: false,
            name: "shop".into(),
            include: "/srv/nginx/shop-url.inc".into(),
            listen: "127.0.0.1:8080".into(),
            traffic: crate::traffic::Via::NginxReload,
        }
    }

    #[test]
    fn nftables_mode_writes_a_site_for_the_front_port() {
        let d = tempfile::tempdir().unwrap();
        let o = Options {
            traffic: crate::traffic::Via::Nftables,
            ..opts(d.path())
        };
        let files = render(&o).unwrap();
        let get = |n: &str| &files.iter().find(|(r, _)| *r == n).unwrap().1;
        let site = get("deploy/nginx/site.conf");
        assert!(
            site.contains(&format!(
                "proxy_pass http://127.0.0.1:{};",
                front_port("shop")
            )),
            "{site}"
        );
        assert!(!site.contains("include /srv/nginx/shop-url.inc"), "{site}");
        assert!(!site.contains("proxy_pass $service_url"), "{site}");
        let cfg = crate::config::parse(
            get("deploy/nonstop.yml"),
            &d.path().join("deploy/nonstop.yml"),
        )
        .unwrap();
        assert_eq!(cfg.traffic.via, crate::traffic::Via::Nftables);
        assert_eq!(cfg.traffic.port, Some(front_port("shop")));
        // Another app gets another front port.
        assert_ne!(front_port("shop"), front_port("shop-api"));
    }

    #[test]
    fn the_site_logs_what_the_watch_reads() {
        let d = tempfile::tempdir().unwrap();
        let files = render(&opts(d.path())).unwrap();
        let get = |n: &str| &files.iter().find(|(r, _)| *r == n).unwrap().1;
        let site = get("deploy/nginx/site.conf");
        let cfg = crate::config::parse(
            get("deploy/nonstop.yml"),
            &d.path().join("deploy/nonstop.yml"),
        )
        .unwrap();
        let name = &cfg.app.name;
        assert!(
            site.contains(&format!(
                "log_format nonstop_{name} '{}';",
                crate::watch::sample::FORMAT
            )),
            "{site}"
        );
        assert!(
            site.contains(&format!(
                "access_log {} nonstop_{name};",
                cfg.watch.log.display()
            )),
            "{site}"
        );
        // The starting files watch every deploy, and the switch hook's timeout covers it.
        assert!(cfg.watch.enabled);
        let (wait, why) = crate::operator::validate::max_wait(&cfg, "switch").unwrap();
        assert!(why.contains(" + watch.duration 60"), "{why}");
        let (_, hooks) = crate::operator::validate::appspec_format(get("deploy/appspec.yml"));
        let switch = hooks
            .unwrap()
            .into_iter()
            .find(|h| h.location == "bin/switch")
            .unwrap();
        assert!(
            std::time::Duration::from_secs(switch.timeout.unwrap())
                >= wait + crate::operator::validate::margin(wait),
            "{wait:?}"
        );
    }

    #[test]
    fn fills_in_the_names_and_keeps_every_file_parseable() {
        let d = tempfile::tempdir().unwrap();
        let files = render(&opts(d.path())).unwrap();
        for (rel, text) in &files {
            assert!(!text.contains(NAME), "{rel} still says {NAME}");
            assert!(!text.contains(INCLUDE), "{rel} still names {INCLUDE}");
            if rel.ends_with(".yml") {
                serde_yaml::from_str::<serde_yaml::Value>(text)
                    .unwrap_or_else(|e| panic!("{rel}: {e}"));
            }
        }
        let get = |n: &str| &files.iter().find(|(r, _)| *r == n).unwrap().1;
        let cfg = crate::config::parse(
            get("deploy/nonstop.yml"),
            &d.path().join("deploy/nonstop.yml"),
        )
        .unwrap();
        assert_eq!(cfg.app.name, "shop");
        assert_eq!(cfg.health.path, "/actuator/health/readiness");
        assert!(cfg.stop.grace > std::time::Duration::from_secs(30));
        assert_eq!(cfg.nginx.include, PathBuf::from("/srv/nginx/shop-url.inc"));
        let (spec, _) = crate::operator::validate::appspec_format(get("deploy/appspec.yml"));
        assert!(spec.is_ok(), "{spec:?}");
        assert!(get("deploy/nginx/site.conf").contains("listen 127.0.0.1:8080;"));
        assert!(get("deploy/nginx/site.conf").contains("include /srv/nginx/shop-url.inc;"));
        assert!(get("deploy/nginx/upstream.conf").contains("upstream shop {"));
        for ci in ["Jenkinsfile", ".github/workflows/nonstop-deploy.yml"] {
            let t = get(ci);
            for step in [
                "mvn -B clean package",
                "Start-Class",
                "*-plain.jar",
                "bundle",
                "aws s3 cp",
                "aws deploy create-deployment",
                "deploy/appspec.yml",
            ] {
                assert!(t.contains(step), "{ci} lacks {step}");
            }
        }
    }

    #[test]
    fn the_ssh_flow_builds_copies_and_deploys_over_ssh() {
        let d = tempfile::tempdir().unwrap();
        let files = render(&opts(d.path())).unwrap();
        let get = |n: &str| &files.iter().find(|(r, _)| *r == n).unwrap().1;
        for ci in [
            "Jenkinsfile.ssh",
            ".github/workflows/nonstop-deploy-ssh.yml",
        ] {
            let t = get(ci);
            for step in [
                "mvn -B clean package",
                "Start-Class",
                "*-plain.jar",
                "scp ",
                "deploy --jar",
                "BatchMode",
            ] {
                assert!(t.contains(step), "{ci} lacks {step}");
            }
            // No terminal: plain progress lines, and the exit code comes back through ssh.
            assert!(!t.contains("ssh -t"), "{ci} asks for a tty");
            assert!(!t.contains("aws deploy"), "{ci} uses CodeDeploy");
        }
        // The CodeDeploy files bundle with the tarball's nonstop, not a Rust toolchain.
        for ci in ["Jenkinsfile", ".github/workflows/nonstop-deploy.yml"] {
            let t = get(ci);
            assert!(t.contains("bundle --jar"), "{ci}");
            assert!(
                t.contains("-x86_64-linux.tar.gz") || t.contains("NONSTOP_URL"),
                "{ci}"
            );
            assert!(
                !t.contains("make -C"),
                "{ci} still needs a nonstop checkout"
            );
        }
        // One push is not deployed twice: the ssh workflow runs by hand until made the one.
        assert!(!get(".github/workflows/nonstop-deploy-ssh.yml").contains("push:\n"));
    }

    #[test]
    fn the_ansible_flow_rolls_one_host_at_a_time_and_stops_at_the_first_failure() {
        let d = tempfile::tempdir().unwrap();
        let files = render(&opts(d.path())).unwrap();
        let get = |n: &str| &files.iter().find(|(r, _)| *r == n).unwrap().1;
        for book in ["setup", "deploy", "rollback", "status"] {
            let t = get(&format!("ansible/{book}.yml"));
            let plays: Vec<serde_yaml::Value> = serde_yaml::from_str(t).unwrap();
            assert_eq!(plays.len(), 1, "{book}");
            let play = &plays[0];
            assert_eq!(play["hosts"].as_str(), Some("nonstop"), "{book}");
            // Only ansible.builtin: nothing to fetch from Galaxy (the ALB tasks are comments).
            for list in ["tasks", "handlers"] {
                for task in play[list].as_sequence().into_iter().flatten() {
                    let keys: Vec<&str> = task
                        .as_mapping()
                        .unwrap()
                        .keys()
                        .filter_map(|k| k.as_str())
                        .collect();
                    let modules: Vec<&&str> = keys.iter().filter(|k| k.contains('.')).collect();
                    assert_eq!(modules.len(), 1, "{book}: {keys:?}");
                    assert!(
                        modules[0].starts_with("ansible.builtin."),
                        "{book}: {keys:?}"
                    );
                }
            }
        }
        for book in ["deploy", "rollback"] {
            let t = get(&format!("ansible/{book}.yml"));
            let plays: Vec<serde_yaml::Value> = serde_yaml::from_str(t).unwrap();
            let play = &plays[0];
            assert_eq!(
                play["serial"].as_str(),
                Some("{{ nonstop_serial | default(1) }}")
            );
            assert_eq!(play["any_errors_fatal"].as_bool(), Some(true));
            assert_eq!(play["max_fail_percentage"].as_u64(), Some(0));
            assert!(t.contains(&format!("{book}, --json")), "{book}");
            assert!(t.contains("failed_when: nonstop_run.rc != 0"), "{book}");
            assert!(t.contains(").changed"), "{book}");
        }
        let deploy = get("ansible/deploy.yml");
        assert!(deploy.contains("# pre_tasks:") && deploy.contains("community.aws.elb_target"));
        assert!(get("ansible/setup.yml").contains("/etc/nginx/conf.d/shop.conf"));
        assert!(get("ansible/inventory.ini").contains("[nonstop]"));
        let j = get("Jenkinsfile.ansible");
        assert!(j.contains("mvn -B clean package") && j.contains("ansible/deploy.yml"));
        assert!(j.contains("-e nonstop_jar="), "{j}");
    }

    #[test]
    fn refuses_to_overwrite_without_force() {
        let d = tempfile::tempdir().unwrap();
        let mut o = opts(d.path());
        run(&o).unwrap();
        std::fs::write(d.path().join("Jenkinsfile"), "mine").unwrap();
        let e = run(&o).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(
            matches!(&e, Error::Refused { refusal: Refusal::Overwrite { paths }, .. }
                if paths.iter().any(|p| p.ends_with("/Jenkinsfile"))),
            "{e:?}"
        );
        assert!(e.to_string().contains("Jenkinsfile"), "{e}");
        assert_eq!(
            std::fs::read_to_string(d.path().join("Jenkinsfile")).unwrap(),
            "mine"
        );
        o.force = true;
        run(&o).unwrap();
        assert_ne!(
            std::fs::read_to_string(d.path().join("Jenkinsfile")).unwrap(),
            "mine"
        );
        assert!(paths(d.path()).iter().all(|p| p.is_file()));
    }

    #[test]
    fn rejects_values_that_would_break_nginx_files() {
        let d = tempfile::tempdir().unwrap();
        let mut o = opts(d.path());
        o.include = "/x/a b;.inc".into();
        assert_eq!(render(&o).unwrap_err().kind(), crate::error::Kind::Usage);
        assert_eq!(render(&o).unwrap_err().exit_code(), 2);
        let mut o = opts(d.path());
        o.name = "My App".into();
        assert_eq!(render(&o).unwrap_err().kind(), crate::error::Kind::Usage);
        assert_eq!(render(&o).unwrap_err().exit_code(), 2);
    }
}

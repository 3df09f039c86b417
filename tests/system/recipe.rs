//! The README's ssh recipe, run as written: its "Install" block and the three steps of "Recipe:
//! Jenkins over ssh, as ec2-user" are read from README.md when the test runs, so a README that
//! drifts from what works fails here. Each command runs where the README says (the host as
//! ec2-user, or this machine standing in for Jenkins), word for word, except for the few
//! substitutions below, each made because the test machine is not the user's:
//!
//! - `sudo dnf install …` (Amazon Linux): the host is Debian, so the README's own Ubuntu/Debian
//!   note applies instead: the packages it names must be installed (the image has them; the
//!   hosts have no network for apt) and `sites-enabled/default` is removed.
//! - `mvn -B clean package`: the Spring Boot example's jar, built by `make spring-app`, is put
//!   where Maven would (`target/myapp-1.0.jar`).
//! - `HOST` is the host's address, and `ssh`/`scp` get the test's own key and known_hosts
//!   (the key is in ec2-user's `authorized_keys`, as step 3 says).
//! - The second build is build 43 instead of 42 (Jenkins' build number in the file name).
//!
//! Stricter than the README: after step 2, cloud-init's `NOPASSWD: ALL` for ec2-user is removed,
//! so the deploys prove that the sudo rules `nonstop setup` wrote are all they need.

use crate::host::{self, Hooks, Host, Out};
use crate::load::{self, get};
use crate::ssh::Ssh;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The text of README section `## heading` (up to the next `## `).
fn section<'a>(readme: &'a str, heading: &str) -> &'a str {
    let start = readme
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("README.md has no section {heading:?}"));
    let rest = &readme[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 4);
    &rest[..end]
}

/// The fenced code blocks of `text`, in order: (language, lines).
fn blocks(text: &str) -> Vec<(String, Vec<String>)> {
    let mut out = vec![];
    let mut cur: Option<(String, Vec<String>)> = None;
    for line in text.lines() {
        match (&mut cur, line.strip_prefix("```")) {
            (None, Some(lang)) => cur = Some((lang.trim().to_string(), vec![])),
            (Some(_), Some(_)) => out.push(cur.take().unwrap()),
            (Some((_, lines)), None) => lines.push(line.to_string()),
            (None, None) => {}
        }
    }
    out
}

/// A command line without its trailing `# comment`.
fn command(line: &str) -> String {
    match line.find(" #") {
        Some(i) => line[..i].trim().to_string(),
        None => line.trim().to_string(),
    }
}

/// The `sh` blocks and the one `yaml` block of the ssh recipe, checked to have the shape the
/// test knows how to run (so a rewritten recipe fails with a clear message, not oddly).
struct Recipe {
    install: Vec<String>,
    init: Vec<String>,
    /// (section, key, `key: value`) of the yaml step 1 shows.
    yaml: Vec<(String, String, String)>,
    host_once: Vec<String>,
    jenkins: Vec<String>,
}

fn recipe() -> Recipe {
    let readme = std::fs::read_to_string(host::project().join("README.md")).unwrap();
    let install = blocks(section(&readme, "Install"));
    assert_eq!(install.len(), 1, "README Install: one sh block");
    // The numbered steps: the section up to its first paragraph that is not a step (e.g. the
    // watched deploys shown after it).
    let recipe = section(&readme, "Recipe: Jenkins over ssh, as ec2-user");
    let steps = recipe
        .match_indices("\n**")
        .find(|(i, _)| !recipe[i + 3..].starts_with(|c: char| c.is_ascii_digit()))
        .map_or(recipe, |(i, _)| &recipe[..i]);
    let ssh = blocks(steps);
    let langs: Vec<&str> = ssh.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        langs,
        ["sh", "yaml", "sh", "sh"],
        "README's ssh recipe: step 1 (sh, yaml), step 2 (sh), step 3 (sh)"
    );
    let lines = |i: usize| -> Vec<String> {
        ssh[i]
            .1
            .iter()
            .map(|l| command(l))
            .filter(|l| !l.is_empty())
            .collect()
    };
    // The yaml the README shows: `section:` lines, then `  key: value` lines.
    let mut yaml = vec![];
    let mut section = String::new();
    for raw in &ssh[1].1 {
        let line = command(raw);
        if let Some(s) = line.strip_suffix(':').filter(|_| !raw.starts_with(' ')) {
            section = s.to_string();
        } else if let Some((k, _)) = line.trim().split_once(':') {
            assert!(!section.is_empty(), "a key outside a section: {line}");
            yaml.push((section.clone(), k.to_string(), line.trim().to_string()));
        }
    }
    assert!(
        yaml.iter().any(|(s, k, _)| s == "app" && k == "jar"),
        "the recipe's yaml sets app.jar: {yaml:?}"
    );
    Recipe {
        install: install[0].1.iter().map(|l| command(l)).collect(),
        init: lines(0),
        yaml,
        host_once: lines(2),
        jenkins: lines(3),
    }
}

/// `text` (the nonstop.yml `init` wrote) with each `key:` line of `edits` replaced within its
/// section, as a user edits the file by hand; a key `init` did not write is a failure.
fn edit_yaml(text: &str, edits: &[(String, String, String)]) -> String {
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    for (section, key, new) in edits {
        let start = lines
            .iter()
            .position(|l| l.starts_with(&format!("{section}:")))
            .unwrap_or_else(|| panic!("init's nonstop.yml has no section {section}:\n{text}"));
        let at = lines[start + 1..]
            .iter()
            .take_while(|l| l.is_empty() || l.starts_with(' ') || l.starts_with('#'))
            .position(|l| l.trim_start().starts_with(&format!("{key}:")))
            .unwrap_or_else(|| panic!("init's nonstop.yml has no {section}.{key}:\n{text}"));
        lines[start + 1 + at] = format!("  {new}");
    }
    lines.join("\n") + "\n"
}

/// Run `script` on the host as ec2-user in `dir` (bash -e, each line echoed); panics unless it
/// exits 0.
fn as_ec2_user(host: &Host, dir: &str, what: &str, lines: &[String]) -> Out {
    let script = format!("set -ex\ncd {dir}\n{}\n", lines.join("\n"));
    let o = host.exec("ec2-user", &["bash", "-c", &script]);
    assert_eq!(
        o.code, 0,
        "README {what}, as ec2-user on the host:\n{script}\n{}{}",
        o.stdout, o.stderr
    );
    o
}

/// Step 3's lines on this machine in `dir` (Jenkins' workspace): `mvn` replaced by `jar` put
/// where Maven puts it; `ssh`/`scp` with the test's key; `HOST` the host. Returns each ssh
/// command's output with the line it ran.
fn jenkins(ssh: &Ssh, host: &Host, dir: &Path, lines: &[String], jar: &Path, build: &str) {
    let mut maven = false;
    for line in lines {
        let line = line.replace("-42.jar", &format!("-{build}.jar"));
        let words: Vec<String> = line
            .split_whitespace()
            .map(|w| w.replace("HOST", &host.ip.to_string()))
            .collect();
        match words[0].as_str() {
            "mvn" => {
                assert_eq!(words[1..], ["-B", "clean", "package"], "{line}");
                maven = true;
            }
            "scp" => {
                assert!(maven, "the recipe builds before it copies: {lines:?}");
                // What `mvn package` left in target/: the jar the scp line names.
                let src = dir.join(&words[1]);
                std::fs::create_dir_all(src.parent().unwrap()).unwrap();
                std::fs::copy(jar, &src).unwrap();
                let o = Command::new("scp")
                    .args(ssh.opts())
                    .arg("-q")
                    .args(&words[1..])
                    .current_dir(dir)
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                assert!(
                    o.status.success(),
                    "{line}: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            "ssh" => {
                let t0 = Instant::now();
                let o = Out::of(
                    Command::new("ssh")
                        .args(ssh.opts())
                        .args(&words[1..])
                        .current_dir(dir)
                        .stdin(Stdio::null())
                        .output()
                        .unwrap(),
                );
                eprintln!(
                    "[system] FIGURE recipe: `{line}`: exit {} in {:.2?}\n{}{}",
                    o.code,
                    t0.elapsed(),
                    o.stdout,
                    o.stderr
                );
                assert_eq!(
                    o.code, 0,
                    "README step 3, `{line}`:\n{}{}",
                    o.stdout, o.stderr
                );
            }
            other => panic!("README step 3 runs {other:?}, which this test does not know: {line}"),
        }
    }
}

/// From the release tarball to a first green deploy and a second one under load, exactly as
/// the README's Install section and ssh recipe say (see the module's list of substitutions).
#[test]
#[ignore = "needs EC2-like hosts: make system-test"]
fn j_readme_ssh_recipe_as_written() {
    let r = recipe();
    let mut host = Host::boot("nsys-j-recipe", Hooks::Ec2User);
    let t0 = Instant::now();

    // Install: the tarball and its .sha256 in ec2-user's home (downloaded there), the block run
    // as ec2-user (cloud-init's sudo).
    let tarball = host::tarball();
    let file = tarball.file_name().unwrap().to_str().unwrap().to_string();
    let named = r.install.iter().any(|l| l.contains(&file));
    assert!(
        named,
        "README Install names the tarball this checkout builds ({file}): {:?}",
        r.install
    );
    let sha = tarball.with_file_name(format!("{file}.sha256"));
    for f in [tarball.as_path(), sha.as_path()] {
        host.cp_owned(f, "/home/ec2-user/", Some("ec2-user"));
    }
    as_ec2_user(&host, "~", "Install", &r.install);
    host.use_installed_nonstop();

    // Step 1, in a project folder on the host (a machine with nonstop installed), then the
    // yaml the README shows: app.jar from ~/incoming.
    host.exec("ec2-user", &["mkdir", "-p", "/home/ec2-user/project"]);
    as_ec2_user(&host, "~/project", "step 1", &r.init);
    let yml = "/home/ec2-user/project/deploy/nonstop.yml";
    let text = host.read(yml).expect("step 1 wrote deploy/nonstop.yml");
    let edited = edit_yaml(&text, &r.yaml);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("nonstop.yml");
    std::fs::write(&local, edited).unwrap();
    host.cp_owned(&local, yml, Some("ec2-user"));

    // Step 2, in the copied deploy/ folder.
    let (packages, rest) = r.host_once.split_first().unwrap();
    assert!(
        packages.starts_with("sudo dnf install -y nginx nftables"),
        "step 2 starts with the packages: {packages}"
    );
    host.sh_ok(
        "dpkg-query -W nginx nftables openjdk-17-jre-headless >/dev/null\n\
         rm -f /etc/nginx/sites-enabled/default",
    );
    as_ec2_user(&host, "~/project/deploy", "step 2", rest);
    // Stricter than the README: from now on ec2-user has only the rules setup wrote.
    host.sh_ok(
        "set -e\n\
         rm /etc/sudoers.d/90-cloud-init-users\n\
         ! sudo -n -u ec2-user sudo -n true 2>/dev/null",
    );
    let set_up = t0.elapsed();

    // Step 3 from this machine (Jenkins), build 42 = v1: the first deploy.
    let ssh = Ssh::key_only(&host, "ec2-user");
    let ws = dir.path().join("workspace");
    std::fs::create_dir_all(&ws).unwrap();
    let v1 = crate::common::spring_jar("v1");
    jenkins(&ssh, &host, &ws, &r.jenkins, &v1, "42");
    let (status, body) = get(host.addr(), Duration::from_secs(2));
    assert_eq!(status, 200, "v1 serves after the first deploy: {body}");
    assert!(body.starts_with("v1 "), "v1 serves: {body}");

    // Build 43 = v2, under body-reading keep-alive load (GET + POST, never retried).
    let v2 = crate::common::spring_jar("v2");
    let load = load::keep_alive(host.addr(), 4, Duration::from_millis(5));
    load.wait_requests(200);
    jenkins(&ssh, &host, &ws, &r.jenkins, &v2, "43");
    load.wait_requests(200);
    let t = load.finish();
    eprintln!(
        "[system] FIGURE nsys-j-recipe: install + init + setup {set_up:.1?}; load over v2: {}",
        t.summary()
    );
    // init's default steering is nftables: not one request lost of any kind.
    t.assert_clean("the README recipe's second deploy", 400, &["v1", "v2"]);
    let (status, body) = get(host.addr(), Duration::from_secs(2));
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("v2 "), "v2 serves: {body}");
    let st = host.status();
    assert!(st["include"]["doubt"].is_null(), "{st:#}");
    assert_eq!(
        st["deployments"].as_array().map(Vec::len),
        Some(2),
        "two deploys recorded: {st:#}"
    );
}

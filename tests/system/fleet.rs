//! More than one host: three EC2-like hosts rolled by the Ansible playbooks `nonstop init`
//! writes (`templates/ansible/`), with ansible-core from PyPI (`make system-test` installs it in
//! a venv; `NONSTOP_ANSIBLE_PLAYBOOK`), over key-only ssh as ec2-user. A front nginx on this
//! machine (a private one on loopback, an upstream of the three hosts' sites, no retry to
//! another host) stands in for the ALB, and keep-alive GET + POST load goes through it during
//! every roll: nothing may fail, even before a retry.
//!
//! The three hosts are booted once, in parallel, and prepared by `setup.yml` (a second run
//! changes nothing); then v1, v1 → v2 under load (one host after another: their deploy windows
//! in each host's history do not overlap), a broken v3 (the play stops at the first host, which
//! still serves v2; the others are not touched), v2 again (`changed=0` everywhere), and
//! `rollback.yml` back to v1 one host at a time.

use crate::common::{Load, Tally};
use crate::host::{self, Bundle, Hooks, Host};
use crate::load::{get, keep_alive};
use crate::ssh::Ssh;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// A private nginx on loopback whose one upstream is the hosts' port 80: the ALB's part.
struct Front {
    dir: tempfile::TempDir,
    addr: SocketAddr,
}

impl Front {
    fn start(hosts: &[Host]) -> Front {
        let dir = tempfile::Builder::new()
            .prefix("nonstop-system-front-")
            .tempdir()
            .unwrap();
        let p = dir.path();
        for d in ["logs", "tmp"] {
            std::fs::create_dir_all(p.join(d)).unwrap();
        }
        let port = crate::common::free_port();
        let servers: String = hosts
            .iter()
            .map(|h| format!("    server {}:80 max_fails=0;\n", h.ip))
            .collect();
        let pd = p.display();
        // As an ALB: round robin, keep-alive to the targets, no retry on another target.
        let conf = format!(
            "worker_processes 1;\npid {pd}/nginx.pid;\nerror_log {pd}/logs/error.log warn;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {pd}/tmp/body;\n  proxy_temp_path {pd}/tmp/proxy;\n  \
             fastcgi_temp_path {pd}/tmp/fastcgi;\n  uwsgi_temp_path {pd}/tmp/uwsgi;\n  scgi_temp_path {pd}/tmp/scgi;\n  \
             upstream fleet {{\n{servers}    keepalive 16;\n    keepalive_timeout 30s;\n  }}\n  \
             server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://fleet;\n      \
             proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      proxy_next_upstream off;\n      \
             proxy_buffering off;\n      proxy_read_timeout 30s;\n    }}\n  }}\n}}\n"
        );
        std::fs::write(p.join("nginx.conf"), conf).unwrap();
        let out = Command::new(crate::common::nginx_bin())
            .args(["-p", p.to_str().unwrap(), "-c"])
            .arg(p.join("nginx.conf"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "front nginx: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Front {
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.path().join("nginx.pid")) {
            if let Ok(pid) = pid.trim().parse() {
                crate::common::signal(pid, rustix::process::Signal::TERM);
            }
        }
    }
}

/// One host's line of PLAY RECAP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Recap {
    ok: u32,
    changed: u32,
    failed: u32,
    unreachable: u32,
}

/// One `ansible-playbook` run.
struct Play {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
    recap: BTreeMap<String, Recap>,
}

impl Play {
    fn recap(&self, host: &str) -> Recap {
        *self
            .recap
            .get(host)
            .unwrap_or_else(|| panic!("{host} is not in PLAY RECAP:\n{}", self.stdout))
    }

    fn assert_ok(&self, what: &str) {
        assert_eq!(
            self.code, 0,
            "{what}: ansible-playbook exit {}\n{}{}",
            self.code, self.stdout, self.stderr
        );
        for (h, r) in &self.recap {
            assert_eq!(
                (r.failed, r.unreachable),
                (0, 0),
                "{what}: {h}: {r:?}\n{}",
                self.stdout
            );
        }
    }
}

fn parse_recap(stdout: &str) -> BTreeMap<String, Recap> {
    let mut out = BTreeMap::new();
    let Some((_, tail)) = stdout.split_once("PLAY RECAP") else {
        return out;
    };
    for line in tail.lines() {
        let Some((host, counts)) = line.split_once(" : ") else {
            continue;
        };
        let mut r = Recap::default();
        for kv in counts.split_whitespace() {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let v: u32 = v.parse().unwrap_or(0);
            match k {
                "ok" => r.ok = v,
                "changed" => r.changed = v,
                "failed" => r.failed = v,
                "unreachable" => r.unreachable = v,
                _ => {}
            }
        }
        out.insert(host.trim().to_string(), r);
    }
    out
}

/// The project `nonstop init` wrote, its inventory pointing at the hosts, and where Ansible
/// keeps its own files for this test.
struct Ansible {
    project: tempfile::TempDir,
    home: tempfile::TempDir,
    playbook: PathBuf,
}

impl Ansible {
    fn run(&self, book: &str, vars: &[(&str, &Path)]) -> Play {
        let p = self.project.path();
        let mut cmd = Command::new("timeout");
        cmd.arg("600")
            .arg(&self.playbook)
            .args(["-i", "ansible/inventory.ini"])
            .arg(format!("ansible/{book}"));
        for (k, v) in vars {
            cmd.arg("-e").arg(format!("{k}={}", v.display()));
        }
        let home = self.home.path();
        let t0 = Instant::now();
        let o = cmd
            .current_dir(p)
            .env("ANSIBLE_HOME", home)
            .env("ANSIBLE_LOCAL_TEMP", home.join("tmp"))
            .env("ANSIBLE_SSH_CONTROL_PATH_DIR", home.join("cp"))
            .env("ANSIBLE_NOCOLOR", "1")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
            .env("ANSIBLE_PIPELINING", "1")
            .env("ANSIBLE_CONFIG", home.join("none.cfg"))
            .env("PYTHONWARNINGS", "ignore")
            .stdin(Stdio::null())
            .output()
            .expect("ansible-playbook runs");
        let took = t0.elapsed();
        let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
        let play = Play {
            code: o.status.code().unwrap_or(-1),
            recap: parse_recap(&stdout),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            stdout,
            took,
        };
        eprintln!(
            "[system] ansible-playbook {book}: exit {} in {took:.2?}; recap {:?}",
            play.code, play.recap
        );
        play
    }
}

fn ansible_playbook() -> PathBuf {
    let p = std::env::var_os("NONSTOP_ANSIBLE_PLAYBOOK")
        .map(PathBuf::from)
        .unwrap_or_else(|| host::project().join("target/ansible/bin/ansible-playbook"));
    assert!(
        p.is_file(),
        "no ansible-playbook at {p:?}: run the system tests with `make system-test` (it installs ansible-core)"
    );
    p
}

/// One recorded deployment of a host (its `nonstop history --json`): id, start, end.
#[derive(Debug, Clone)]
struct Window {
    host: String,
    id: String,
    start: SystemTime,
    end: SystemTime,
    outcome: String,
}

fn history(h: &Host) -> Vec<serde_json::Value> {
    let o = h.nonstop(&["history", "--json"]);
    assert_eq!(o.code, 0, "{}: history: {}", h.name, o.stderr);
    serde_json::from_str::<Vec<serde_json::Value>>(&o.stdout).unwrap()
}

/// The deployments `h` recorded beyond the first `before` of its history.
fn new_windows(h: &Host, before: usize) -> Vec<Window> {
    let all = history(h);
    let n = all.len().saturating_sub(before);
    all[..n]
        .iter()
        .map(|d| {
            let start = nonstop::operator::parse_utc(d["time"].as_str().unwrap()).unwrap();
            Window {
                host: h.name.clone(),
                id: d["id"].as_str().unwrap_or("").into(),
                start,
                end: start + Duration::from_millis(d["duration_ms"].as_u64().unwrap()),
                outcome: d["outcome"].as_str().unwrap_or("").into(),
            }
        })
        .collect()
}

/// One window per host, in the hosts' order, each ending before the next starts.
fn assert_one_after_another(what: &str, hosts: &[Host], windows: &[Vec<Window>]) {
    let mut flat = vec![];
    for (h, w) in hosts.iter().zip(windows) {
        assert_eq!(w.len(), 1, "{what}: one deployment on {}: {w:?}", h.name);
        flat.push(w[0].clone());
    }
    let t0 = flat[0].start;
    let line: Vec<String> = flat
        .iter()
        .map(|w| {
            format!(
                "{} {} +{:.2}..+{:.2} s ({})",
                w.host,
                w.id,
                w.start.duration_since(t0).unwrap_or_default().as_secs_f64(),
                w.end.duration_since(t0).unwrap_or_default().as_secs_f64(),
                w.outcome
            )
        })
        .collect();
    eprintln!("[system] FIGURE fleet: {what} windows: {}", line.join("; "));
    for pair in flat.windows(2) {
        assert!(
            pair[0].end <= pair[1].start,
            "{what}: {} still deploying when {} began: {line:?}",
            pair[0].host,
            pair[1].host
        );
    }
}

/// The version a host's site answers now (`v2` of `v2 real1 8081`).
fn serves(h: &Host) -> String {
    let (status, body) = get(h.addr(), Duration::from_secs(2));
    assert_eq!(status, 200, "{}: {body}", h.name);
    body.split_whitespace().next().unwrap_or("").to_string()
}

fn load_through(front: &Front) -> Load {
    let load = keep_alive(front.addr, 4, Duration::from_millis(5));
    load.wait_requests(200);
    load
}

fn finish(load: Load) -> Tally {
    load.wait_requests(200);
    load.finish()
}

#[test]
#[ignore = "needs EC2-like hosts: make system-test"]
fn fleet_of_three_rolled_by_ansible_one_host_at_a_time() {
    let t_all = Instant::now();
    let playbook = ansible_playbook();
    // Three hosts at once; each with key-only ssh for ec2-user (cloud-init's sudo kept: the
    // setup playbook becomes root through it, as on an EC2 host).
    let booted: Vec<(Host, Ssh)> = std::thread::scope(|s| {
        let hs: Vec<_> = (1..=3)
            .map(|i| {
                s.spawn(move || {
                    let h = Host::boot(&format!("nsys-fleet-{i}"), Hooks::Ec2User);
                    let ssh = Ssh::key_only(&h, "ec2-user");
                    (h, ssh)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let (mut hosts, sshs): (Vec<Host>, Vec<Ssh>) = booted.into_iter().unzip();
    let boot_took = t_all.elapsed();

    // The project: `nonstop init` (nftables steering), the system tests' config.
    let project = tempfile::Builder::new()
        .prefix("nonstop-system-fleet-")
        .tempdir()
        .unwrap();
    let p = project.path();
    let bundle = Bundle::of("v1");
    let o = Command::new(bundle.rev().join("bin/nonstop"))
        .args(["init", p.to_str().unwrap(), "--name", "myapp"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The playbooks run as init wrote them: templates/ansible/ (the release tarball's copy).
    for f in ["setup.yml", "deploy.yml", "rollback.yml", "status.yml"] {
        assert_eq!(
            std::fs::read_to_string(p.join("ansible").join(f)).unwrap(),
            std::fs::read_to_string(host::project().join("templates/ansible").join(f)).unwrap(),
            "init wrote ansible/{f} as templates/ansible/{f} (rebuild: make system-test)"
        );
    }
    let yml = std::fs::read_to_string(host::project().join("tests/system/nonstop.yml")).unwrap();
    let front_port = nonstop::operator::init::front_port("myapp");
    let yml = yml
        .replace(
            "jar: \"app/*.jar\"",
            "jar: \"/home/ec2-user/incoming/*.jar\"",
        )
        .replace(
            "\nstate_dir:",
            &format!("\ntraffic: {{via: nftables, port: {front_port}}}\nstate_dir:"),
        );
    std::fs::write(p.join("deploy/nonstop.yml"), yml).unwrap();
    let mut inv = String::from("[nonstop]\n");
    for (h, ssh) in hosts.iter().zip(&sshs) {
        let (key, known) = ssh.key_and_known_hosts();
        inv += &format!(
            "{} ansible_host={} ansible_ssh_private_key_file={} ansible_ssh_common_args='-F /dev/null -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile={}'\n",
            h.name,
            h.ip,
            key.display(),
            known.display()
        );
    }
    inv += "\n[nonstop:vars]\nansible_user=ec2-user\nansible_python_interpreter=/usr/bin/python3\n";
    std::fs::write(p.join("ansible/inventory.ini"), inv).unwrap();
    let home = tempfile::Builder::new()
        .prefix("nonstop-system-ansible-")
        .tempdir()
        .unwrap();
    std::fs::write(home.path().join("none.cfg"), "").unwrap();
    let ansible = Ansible {
        project,
        home,
        playbook,
    };
    let config = ansible.project.path().join("deploy/nonstop.yml");

    // setup.yml prepares the fresh hosts; run again, it changes nothing.
    let tarball = host::tarball();
    let setup_vars: [(&str, &Path); 2] =
        [("nonstop_tarball", &tarball), ("nonstop_config", &config)];
    let setup = ansible.run("setup.yml", &setup_vars);
    setup.assert_ok("setup.yml");
    for h in &hosts {
        assert!(setup.recap(&h.name).changed > 0, "{}", setup.stdout);
    }
    let again = ansible.run("setup.yml", &setup_vars);
    again.assert_ok("setup.yml again");
    for h in &hosts {
        assert_eq!(
            again.recap(&h.name).changed,
            0,
            "setup.yml a second time changes nothing on {}:\n{}",
            h.name,
            again.stdout
        );
    }
    for h in &mut hosts {
        h.use_installed_nonstop();
        let (status, _) = get(h.addr(), Duration::from_secs(2));
        assert_eq!(status, 502, "{}: the site is installed, no app yet", h.name);
    }

    let jar = |v: &str| host::demo_jar(v);
    let deploy = |j: &Path| ansible.run("deploy.yml", &[("nonstop_jar", j)]);

    // v1: the first deploy on every host.
    let d1 = deploy(&jar("v1"));
    d1.assert_ok("deploy.yml v1");
    for h in &hosts {
        assert_eq!(d1.recap(&h.name).changed, 1, "{}", d1.stdout);
        assert_eq!(serves(h), "v1");
    }
    let front = Front::start(&hosts);

    // v1 -> v2 under load through the front: one host after another, nothing lost.
    let before: Vec<usize> = hosts.iter().map(|h| history(h).len()).collect();
    let load = load_through(&front);
    let d2 = deploy(&jar("v2"));
    let t2 = finish(load);
    d2.assert_ok("deploy.yml v2");
    let w2: Vec<Vec<Window>> = hosts
        .iter()
        .zip(&before)
        .map(|(h, n)| new_windows(h, *n))
        .collect();
    eprintln!(
        "[system] FIGURE fleet: v1 -> v2 roll {:.2?}; load through the front: {}",
        d2.took,
        t2.summary()
    );
    assert_one_after_another("v1 -> v2", &hosts, &w2);
    t2.assert_clean("v1 -> v2 through the front", 400, &["v1", "v2"]);
    for h in &hosts {
        assert_eq!(d2.recap(&h.name).changed, 1, "{}", d2.stdout);
        assert_eq!(serves(h), "v2", "{} serves v2", h.name);
    }

    // A broken v3: the play fails on the first host and stops; nothing lost, v2 everywhere.
    let dir = tempfile::tempdir().unwrap();
    let broken = crate::common::broken_jar(dir.path());
    let before: Vec<usize> = hosts.iter().map(|h| history(h).len()).collect();
    let apps = |h: &Host| -> Vec<(String, String)> {
        h.status()["slots"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["name"].to_string(), s["pid"].to_string()))
            .collect()
    };
    let pids: Vec<_> = hosts.iter().map(apps).collect();
    let load = load_through(&front);
    let d3 = deploy(&broken);
    let t3 = finish(load);
    eprintln!(
        "[system] FIGURE fleet: broken v3: exit {} in {:.2?}; load through the front: {}",
        d3.code,
        d3.took,
        t3.summary()
    );
    assert_ne!(d3.code, 0, "the play fails:\n{}", d3.stdout);
    let first = &hosts[0].name;
    assert_eq!(d3.recap(first).failed, 1, "{}", d3.stdout);
    assert!(
        d3.stdout.contains("failed_before_switch"),
        "the report's outcome shows: {}",
        d3.stdout
    );
    let w3 = new_windows(&hosts[0], before[0]);
    assert!(
        w3.len() == 1 && w3[0].outcome.starts_with("failed at "),
        "{w3:?}"
    );
    assert_eq!(serves(&hosts[0]), "v2", "the failed host still serves v2");
    for (i, h) in hosts.iter().enumerate().skip(1) {
        assert_eq!(
            d3.recap.get(&h.name).map_or(0, |r| r.changed + r.failed),
            0,
            "{} never touched: {}",
            h.name,
            d3.stdout
        );
        assert_eq!(history(h).len(), before[i], "{}: nothing recorded", h.name);
        assert_eq!(apps(h), pids[i], "{}: the same apps", h.name);
        assert_eq!(serves(h), "v2");
    }
    t3.assert_clean("broken v3 through the front", 400, &["v2"]);

    // v2 again: changed=0 on every host, nothing recorded, nothing lost.
    let before: Vec<usize> = hosts.iter().map(|h| history(h).len()).collect();
    let load = load_through(&front);
    let d4 = deploy(&jar("v2"));
    let t4 = finish(load);
    d4.assert_ok("deploy.yml v2 again");
    eprintln!(
        "[system] FIGURE fleet: v2 again {:.2?}; load: {}",
        d4.took,
        t4.summary()
    );
    for (i, h) in hosts.iter().enumerate() {
        assert_eq!(
            d4.recap(&h.name).changed,
            0,
            "the live jar again: {}",
            d4.stdout
        );
        assert_eq!(history(h).len(), before[i], "{}: nothing recorded", h.name);
    }
    assert!(d4.stdout.contains("unchanged"), "{}", d4.stdout);
    t4.assert_clean("v2 again through the front", 400, &["v2"]);

    // rollback.yml: every host back on v1, one at a time, nothing lost.
    let load = load_through(&front);
    let rb = ansible.run("rollback.yml", &[]);
    let t5 = finish(load);
    rb.assert_ok("rollback.yml");
    let w5: Vec<Vec<Window>> = hosts
        .iter()
        .zip(&before)
        .map(|(h, n)| new_windows(h, *n))
        .collect();
    eprintln!(
        "[system] FIGURE fleet: rollback roll {:.2?}; load through the front: {}",
        rb.took,
        t5.summary()
    );
    assert_one_after_another("rollback", &hosts, &w5);
    t5.assert_clean("rollback through the front", 400, &["v1", "v2"]);
    for h in &hosts {
        assert_eq!(rb.recap(&h.name).changed, 1, "{}", rb.stdout);
        assert_eq!(serves(h), "v1", "{} back on v1", h.name);
    }

    // status.yml: one line per host.
    let st = ansible.run("status.yml", &[]);
    st.assert_ok("status.yml");
    for h in &hosts {
        let want = format!("{}: live ", h.name);
        let line = st
            .stdout
            .lines()
            .find(|l| l.contains(&want))
            .unwrap_or_else(|| panic!("no line for {}:\n{}", h.name, st.stdout));
        assert!(
            line.contains("version demo-app-v1") && line.contains("healthy"),
            "{line}"
        );
        assert!(!line.contains("NOT healthy"), "{line}");
    }
    eprintln!(
        "[system] FIGURE fleet: 3 hosts up in {boot_took:.2?}; setup.yml {:.2?}, again {:.2?}; deploy v1 {:.2?}; whole test {:.2?}",
        setup.took,
        again.took,
        d1.took,
        t_all.elapsed()
    );
    drop(front);
}

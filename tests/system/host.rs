//! One EC2-like host for a system test: a Debian 12 systemd-nspawn container booted by
//! `tests/system/ec2host.sh` (systemd PID 1, nginx.service, ec2-user with NOPASSWD sudo, an
//! address on the 10.77.0.0/24 bridge), provisioned as a user provisions an EC2 host for
//! nonstop: the nginx site from `templates/nginx/site.conf` with the include nonstop owns,
//! Debian's default site disabled, and a CodeDeploy agent (the stand-in in `agent/`, run by
//! the real agent's unit file). Deployments are revision folders handed to that agent; the
//! host is powered off and deleted when the [`Host`] is dropped, also when a test panics.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The project folder (this file's crate root).
pub fn project() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn ec2host() -> PathBuf {
    project().join("tests/system/ec2host.sh")
}

/// The bridge's /24 (`EC2HOST_NET`, as ec2host.sh reads it): the only addresses load goes to.
fn bridge_net() -> String {
    std::env::var("EC2HOST_NET").unwrap_or_else(|_| "10.77.0".into())
}

/// What a command run inside the host printed, and how it ended.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn of(o: std::process::Output) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Who runs the hooks: root (no `runas`) or `runas: ec2-user` set up as the README says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hooks {
    Root,
    Ec2User,
}

impl Hooks {
    pub fn user(self) -> &'static str {
        match self {
            Hooks::Root => "root",
            Hooks::Ec2User => "ec2-user",
        }
    }
}

/// FILE of what `nonstop init --name myapp ARGS` writes (the bundle's own binary), copied to
/// a temporary file of this machine.
fn init_file(args: &[&str], file: &str) -> PathBuf {
    let bundle = Bundle::of("v1");
    let dir = bundle.dir.path().join("init");
    let out = Command::new(bundle.rev().join("bin/nonstop"))
        .args(["init", dir.to_str().unwrap(), "--name", "myapp"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nonstop init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    static N: AtomicU32 = AtomicU32::new(0);
    let keep = std::env::temp_dir().join(format!(
        "nonstop-system-init-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::copy(dir.join(file), &keep).unwrap();
    keep
}

/// The nginx site a host gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site {
    /// `templates/nginx/site.conf`: `proxy_pass $service_url` from the include nonstop owns
    /// (traffic.via: nginx-reload).
    Include,
    /// What `nonstop init --traffic nftables` writes: `proxy_pass` to the front port that
    /// nonstop's nftables table steers (traffic.via: nftables).
    Nftables,
}

/// How a host is set up: its site, and whether deployments come through the CodeDeploy agent
/// stand-in (`Host::deploy`) or over ssh (no agent).
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    pub site: Site,
    pub agent: bool,
}

/// Where `nonstop` is on the host: in the bundle the appspec installs, or from the release
/// tarball as INSTALL says.
pub const BUNDLE_NONSTOP: &str = "/opt/nonstop/myapp/bundle/bin/nonstop";
pub const INSTALLED_NONSTOP: &str = "/usr/local/bin/nonstop";

/// A booted host; dropping it runs `ec2host.sh down NAME`.
pub struct Host {
    pub name: String,
    pub ip: Ipv4Addr,
    /// This machine's path of the host's `/` (its overlay mount): results are read there.
    root: PathBuf,
    pub hooks: Hooks,
    /// The `nonstop` that [`Host::nonstop`] runs.
    bin: &'static str,
}

fn run_ec2host(args: &[&str]) -> Out {
    let out = Command::new("bash")
        .arg(ec2host())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("bash runs ec2host.sh");
    Out::of(out)
}

impl Host {
    /// Boot NAME from a clean copy of the image and provision it for nonstop: the nginx site,
    /// the include naming blue (8081), the agent; for [`Hooks::Ec2User`] the include, state and
    /// work folders owned by ec2-user.
    pub fn ec2(name: &str, hooks: Hooks) -> Host {
        Host::with(
            name,
            hooks,
            Setup {
                site: Site::Include,
                agent: true,
            },
        )
    }

    /// [`Host::ec2`] with another setup.
    pub fn with(name: &str, hooks: Hooks, setup: Setup) -> Host {
        let host = Host::boot(name, hooks);
        host.provision(setup);
        host
    }

    /// Boot NAME from a clean copy of the image, nothing provisioned.
    pub fn boot(name: &str, hooks: Hooks) -> Host {
        assert!(
            rustix::process::geteuid().is_root(),
            "the system tests boot systemd-nspawn hosts and need root: run `make system-test` as root"
        );
        // NONSTOP_SYSTEM_HOST_PREFIX replaces `nsys-` (runs that must not share host names).
        let name = &match std::env::var("NONSTOP_SYSTEM_HOST_PREFIX") {
            Ok(p) if !p.is_empty() => name.replacen("nsys-", &p, 1),
            _ => name.to_string(),
        };
        // A host left over from a killed run of this test.
        let _ = run_ec2host(&["down", name]);
        let t0 = Instant::now();
        let up = run_ec2host(&["up", name]);
        assert_eq!(up.code, 0, "ec2host.sh up {name} failed:\n{}", up.stderr);
        let ip: Ipv4Addr = up
            .stdout
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("ec2host.sh up printed {:?}", up.stdout));
        assert!(
            ip.to_string().starts_with(&format!("{}.", bridge_net())),
            "{ip} is not on the ec2host bridge"
        );
        let root = run_ec2host(&["root", name]);
        assert_eq!(root.code, 0, "{}", root.stderr);
        let host = Host {
            name: name.into(),
            ip,
            root: PathBuf::from(root.stdout.trim()),
            hooks,
            bin: BUNDLE_NONSTOP,
        };
        eprintln!("[system] {name}: up at {ip} in {:.1?}", t0.elapsed());
        host
    }

    /// The nginx site (Debian's default site disabled), for [`Site::Include`] the include
    /// naming blue (8081); for [`Hooks::Ec2User`] the include, state and work folders owned by
    /// ec2-user and the sudo rules of `nonstop init` instead of cloud-init's; the agent.
    pub fn provision(&self, setup: Setup) {
        let p = project();
        // The site (and include) `nonstop init` writes, installed the Debian way.
        let site = match setup.site {
            Site::Include => p.join("templates/nginx/site.conf"),
            Site::Nftables => init_file(&["--traffic", "nftables"], "deploy/nginx/site.conf"),
        };
        self.cp(&site, "/etc/nginx/sites-available/myapp");
        if setup.site == Site::Nftables {
            let _ = std::fs::remove_file(&site);
        }
        let include = match setup.site {
            Site::Include => {
                "printf 'set $service_url http://127.0.0.1:8081;\\n' > /etc/nginx/conf.d/service-url.inc\n"
            }
            Site::Nftables => "",
        };
        let owner = match self.hooks {
            Hooks::Root => String::new(),
            Hooks::Ec2User => {
                // `sudo nonstop setup --user ec2-user` (the bundle's nonstop and config) replaces
                // cloud-init's NOPASSWD: ALL, so the test proves its rules are all the hooks need.
                let b = Bundle::of("v1").hooks(Hooks::Ec2User);
                self.cp(&b.rev(), "/root/nonstop-setup");
                format!(
                    "{}/root/nonstop-setup/bin/nonstop setup --user ec2-user --config /root/nonstop-setup/nonstop.yml\n\
                     rm -rf /root/nonstop-setup\n\
                     visudo -cqf /etc/sudoers.d/nonstop-myapp\n\
                     rm /etc/sudoers.d/90-cloud-init-users\n\
                     ! sudo -n -u ec2-user sudo -n true 2>/dev/null\n",
                    match setup.site {
                        Site::Include => "chown ec2-user /etc/nginx/conf.d/service-url.inc\n",
                        Site::Nftables => "",
                    }
                )
            }
        };
        self.sh_ok(&format!(
            "set -e\n\
             {include}\
             {owner}\
             ln -sf /etc/nginx/sites-available/myapp /etc/nginx/sites-enabled/myapp\n\
             rm -f /etc/nginx/sites-enabled/default\n\
             nginx -t -q\n\
             systemctl reload nginx\n"
        ));
        if setup.agent {
            self.cp(
                &p.join("tests/system/agent/codedeploy-agent"),
                "/opt/codedeploy-agent/bin/codedeploy-agent",
            );
            self.cp(
                &p.join("tests/system/agent/codedeploy-agent.service"),
                "/etc/systemd/system/codedeploy-agent.service",
            );
            self.sh_ok(
                "set -e\n\
                 chmod 0755 /opt/codedeploy-agent/bin/codedeploy-agent\n\
                 mkdir -p -m 0755 /opt/codedeploy-agent/deployment-root/spool\n\
                 systemctl daemon-reload\n\
                 systemctl enable --now codedeploy-agent.service 2>&1\n\
                 systemctl is-active codedeploy-agent.service\n",
            );
        }
        // Nothing is live yet: nginx answers 502 (nothing on 8081, or on the front port),
        // once the reload's new workers took over from the default site's.
        let t0 = Instant::now();
        loop {
            let (status, body) = crate::load::get(self.addr(), Duration::from_secs(2));
            if status == 502 {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "a fresh site should answer 502 (no app yet), not {status}: {body}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// From here on [`Host::nonstop`] runs the `nonstop` INSTALL puts on PATH.
    pub fn use_installed_nonstop(&mut self) {
        self.bin = INSTALLED_NONSTOP;
    }

    /// http://IP:80 on the bridge: where load and probes go.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, 80))
    }

    /// Run `argv` inside as `user` (ec2host.sh exec: a transient unit of the host's systemd,
    /// cwd /, clean environment).
    pub fn exec(&self, user: &str, argv: &[&str]) -> Out {
        let mut args = vec!["exec", &self.name, "-u", user, "--"];
        args.extend_from_slice(argv);
        run_ec2host(&args)
    }

    /// `bash -c SCRIPT` inside as root.
    pub fn sh(&self, script: &str) -> Out {
        self.exec("root", &["bash", "-c", script])
    }

    /// `bash -c SCRIPT` inside as root; panics unless it exits 0; returns its stdout.
    pub fn sh_ok(&self, script: &str) -> String {
        let o = self.sh(script);
        assert_eq!(
            o.code, 0,
            "on {}: {script}\nexit {}\n{}{}",
            self.name, o.code, o.stdout, o.stderr
        );
        o.stdout
    }

    /// Copy a file or folder of this machine to DST inside (ec2host.sh cp semantics).
    pub fn cp(&self, src: &Path, dst: &str) {
        self.cp_owned(src, dst, None)
    }

    /// [`Host::cp`], owned by `owner` inside when given.
    pub fn cp_owned(&self, src: &Path, dst: &str, owner: Option<&str>) {
        let mut args = vec!["cp", &self.name, src.to_str().unwrap(), dst];
        if let Some(o) = owner {
            args.extend(["--chown", o]);
        }
        let o = run_ec2host(&args);
        assert_eq!(o.code, 0, "ec2host.sh cp {src:?} {dst}: {}", o.stderr);
    }

    /// A file inside the host, read through its root on this machine (not for /run or /tmp).
    pub fn read(&self, path: &str) -> Option<String> {
        std::fs::read_to_string(self.root.join(path.trim_start_matches('/'))).ok()
    }

    /// `ec2host.sh reboot`: a real reboot of the host's systemd; returns when systemd, nginx
    /// and http://IP/ answer again, with how long that took.
    pub fn reboot(&self) -> Duration {
        let t0 = Instant::now();
        let o = run_ec2host(&["reboot", &self.name]);
        assert_eq!(o.code, 0, "ec2host.sh reboot {}: {}", self.name, o.stderr);
        t0.elapsed()
    }

    /// `bin/nonstop ARGS` of the installed bundle (the appspec copies it to
    /// /opt/nonstop/myapp/bundle), or the installed tarball's, as the user the hooks run as.
    pub fn nonstop(&self, args: &[&str]) -> Out {
        let mut argv = vec![self.bin];
        argv.extend_from_slice(args);
        self.exec(self.hooks.user(), &argv)
    }

    /// `nonstop status --json`, parsed; panics unless it exits 0.
    pub fn status(&self) -> serde_json::Value {
        let o = self.nonstop(&["status", "--json"]);
        assert_eq!(o.code, 0, "nonstop status --json: {}", o.stderr);
        serde_json::from_str(&o.stdout)
            .unwrap_or_else(|e| panic!("status --json is no JSON ({e}): {}", o.stdout))
    }

    /// Hand `bundle` to the agent as a new deployment and wait for its outcome (bounded by
    /// the appspec's hook timeouts).
    pub fn deploy(&self, bundle: &Bundle) -> Deployment {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        // CodeDeploy's ids look like d-ABCDEFGH1 (9 characters after d-).
        let id = format!(
            "d-{:05X}{:04}",
            nanos & 0xF_FFFF,
            N.fetch_add(1, Ordering::SeqCst)
        );
        let group = "dg-nonstop-system";
        let archive =
            format!("/opt/codedeploy-agent/deployment-root/{group}/{id}/deployment-archive");
        self.cp(&bundle.rev(), &archive);
        let req = bundle.dir.path().join(format!("{id}.json"));
        std::fs::write(
            &req,
            serde_json::json!({
                "deployment_id": id,
                "application_name": "myapp",
                "deployment_group_name": "system-test",
                "deployment_group_id": group,
            })
            .to_string(),
        )
        .unwrap();
        let t0 = Instant::now();
        self.cp(&req, "/opt/codedeploy-agent/deployment-root/spool/");
        let result = format!("/opt/codedeploy-agent/deployment-root/results/{id}.json");
        let text = loop {
            if let Some(t) = self.read(&result) {
                break t;
            }
            // stop 60 + start 60 + health 180 + switch 120 (appspec/appspec.yml)
            assert!(
                t0.elapsed() < Duration::from_secs(460),
                "deployment {id}: no result from the agent after {:?}",
                t0.elapsed()
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let hooks = v["hooks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| HookRun {
                event: h["event"].as_str().unwrap_or("").into(),
                location: h["location"].as_str().unwrap_or("").into(),
                runas: h["runas"].as_str().map(String::from),
                exit_code: h["exit_code"].as_i64().map(|c| c as i32),
                timed_out: h["timed_out"].as_bool().unwrap_or(false),
                ms: h["ms"].as_u64().unwrap_or(0),
                output: h["output"].as_str().unwrap_or("").into(),
            })
            .collect();
        let d = Deployment {
            id,
            status: v["status"].as_str().unwrap_or("").into(),
            error: v["error"].as_str().map(String::from),
            hooks,
            took: t0.elapsed(),
        };
        eprintln!("[system] {}: {}", self.name, d.summary());
        d
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if std::env::var_os("NONSTOP_SYSTEM_KEEP").is_some() {
            eprintln!(
                "[system] {}: kept up (NONSTOP_SYSTEM_KEEP): tests/system/ec2host.sh down {}",
                self.name, self.name
            );
            return;
        }
        let t0 = Instant::now();
        let o = run_ec2host(&["down", &self.name]);
        if o.code != 0 {
            eprintln!(
                "[system] ec2host.sh down {} failed: {}",
                self.name, o.stderr
            );
        } else {
            eprintln!("[system] {}: down in {:.1?}", self.name, t0.elapsed());
        }
    }
}

/// One hook as the agent ran it.
#[derive(Debug, Clone)]
pub struct HookRun {
    pub event: String,
    pub location: String,
    pub runas: Option<String>,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub ms: u64,
    pub output: String,
}

/// A deployment's outcome, from the agent's result file.
#[derive(Debug)]
pub struct Deployment {
    pub id: String,
    /// `Succeeded` or `Failed`.
    pub status: String,
    pub error: Option<String>,
    pub hooks: Vec<HookRun>,
    /// From handing it to the agent to its result file.
    pub took: Duration,
}

impl Deployment {
    pub fn summary(&self) -> String {
        let hooks: Vec<String> = self
            .hooks
            .iter()
            .map(|h| {
                format!(
                    "{} {}{} exit {} {} ms",
                    h.event,
                    h.location,
                    h.runas
                        .as_deref()
                        .map(|u| format!(" (runas {u})"))
                        .unwrap_or_default(),
                    h.exit_code.map_or("-".into(), |c| c.to_string()),
                    h.ms
                )
            })
            .collect();
        format!(
            "deployment {} {} in {:.1?}: {}",
            self.id,
            self.status,
            self.took,
            hooks.join(", ")
        )
    }

    /// Every hook of the appspec ran and exited 0.
    pub fn assert_ok(&self) {
        let locations: Vec<&str> = self.hooks.iter().map(|h| h.location.as_str()).collect();
        let all_ok = self.hooks.iter().all(|h| h.exit_code == Some(0));
        assert!(
            self.status == "Succeeded"
                && all_ok
                && locations == ["bin/stop", "bin/start", "bin/health", "bin/switch"],
            "deployment {} {}: {:?}\n{}",
            self.id,
            self.status,
            self.error,
            self.output()
        );
    }

    /// The hook that ran LOCATION, if it ran.
    pub fn hook(&self, location: &str) -> Option<&HookRun> {
        self.hooks.iter().find(|h| h.location == location)
    }

    /// Every hook's output, for a failure message.
    pub fn output(&self) -> String {
        self.hooks
            .iter()
            .map(|h| {
                format!(
                    "--- {} {} exit {:?}{}\n{}",
                    h.event,
                    h.location,
                    h.exit_code,
                    if h.timed_out { " (timed out)" } else { "" },
                    h.output
                )
            })
            .collect()
    }
}

/// A revision folder on this machine: a copy of the bundle `make system-test` built for a
/// demo-app version (bin/, nonstop.yml, appspec.yml, app/demo-app-VERSION.jar), editable.
pub struct Bundle {
    dir: tempfile::TempDir,
}

impl Bundle {
    /// The bundle of `version` (v1, v2) from `$NONSTOP_SYSTEM_DIR/VERSION/bundle`.
    pub fn of(version: &str) -> Bundle {
        let base = std::env::var_os("NONSTOP_SYSTEM_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| project().join("target/system"));
        let src = base.join(version).join("bundle");
        assert!(
            src.join("bin/stop").is_file(),
            "no bundle at {src:?}: run the system tests with `make system-test`"
        );
        let dir = tempfile::Builder::new()
            .prefix("nonstop-system-")
            .tempdir()
            .unwrap();
        let st = Command::new("cp")
            .arg("-a")
            .arg(&src)
            .arg(dir.path().join("rev"))
            .status()
            .unwrap();
        assert!(st.success());
        // The agent runs `runas` hooks as another user: the revision must be readable.
        let st = Command::new("chmod")
            .args(["-R", "a+rX"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success());
        Bundle { dir }
    }

    /// The bundle's folder (appspec.yml, nonstop.yml, bin/, app/).
    pub fn rev(&self) -> PathBuf {
        self.dir.path().join("rev")
    }

    /// Replace `from` with `to` in the bundle's FILE (nonstop.yml, appspec.yml).
    pub fn edit(self, file: &str, from: &str, to: &str) -> Bundle {
        let p = self.rev().join(file);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(&p, text.replace(from, to)).unwrap();
        self
    }

    /// For [`Hooks::Ec2User`]: `runas: ec2-user` on every hook, and nginx's test and reload
    /// through `sudo -n` (README, "Running the hooks as another user").
    pub fn hooks(self, hooks: Hooks) -> Bundle {
        if hooks == Hooks::Root {
            return self;
        }
        let p = self.rev().join("appspec.yml");
        let text = std::fs::read_to_string(&p).unwrap();
        let mut out = String::new();
        for line in text.lines() {
            out += line;
            out += "\n";
            if let Some(indent) = line.find("- location:") {
                out += &format!("{}  runas: ec2-user\n", " ".repeat(indent));
            }
        }
        assert_eq!(out.matches("runas: ec2-user").count(), 4, "{out}");
        std::fs::write(&p, out).unwrap();
        let p = self.rev().join("nonstop.yml");
        let text = std::fs::read_to_string(&p).unwrap();
        std::fs::write(&p, sudo_nginx(&text)).unwrap();
        self
    }
}

/// A nonstop.yml whose nginx test and reload go through `sudo -n` with absolute paths, as the
/// sudo rules of `nonstop init` allow them (README, "Running the hooks as another user").
pub fn sudo_nginx(yml: &str) -> String {
    let mut out = yml.to_string();
    for (from, to) in [
        (
            "test: [nginx, -t, -q]",
            "test: [sudo, -n, /usr/sbin/nginx, -t, -q]",
        ),
        (
            "reload: [systemctl, reload, nginx]",
            "reload: [sudo, -n, /usr/bin/systemctl, reload, nginx]",
        ),
    ] {
        assert!(out.contains(from), "nonstop.yml has no {from:?}");
        out = out.replace(from, to);
    }
    out
}

/// The release tarball `make dist` built (`$NONSTOP_SYSTEM_TARBALL`, set by `make system-test`).
pub fn tarball() -> PathBuf {
    let t = std::env::var_os("NONSTOP_SYSTEM_TARBALL")
        .map(PathBuf::from)
        .expect("NONSTOP_SYSTEM_TARBALL: run the system tests with `make system-test`");
    assert!(t.is_file(), "no release tarball at {t:?}: run `make dist`");
    t
}

/// The commands of INSTALL's `n`th block (0: "Check and unpack", 1: the optional man pages
/// and completions): its `n`th paragraph of indented lines, as a user copies them into a shell.
pub fn install_commands(install: &str, n: usize) -> Vec<String> {
    install
        .split("\n\n")
        .map(|para| para.lines().collect::<Vec<_>>())
        .filter(|lines| !lines.is_empty() && lines.iter().all(|l| l.starts_with("  ")))
        .nth(n)
        .map(|lines| lines.iter().map(|l| l.trim().to_string()).collect())
        .unwrap_or_default()
}

impl Host {
    /// Install the release `tarball` as its INSTALL says: the tarball and its .sha256 copied
    /// to ec2-user's home, then INSTALL's "Check and unpack" lines run there as ec2-user (with
    /// cloud-init's sudo, before [`Host::provision`] replaces it). Returns what they printed.
    pub fn install_release(&mut self, tarball: &Path) -> String {
        let file = tarball.file_name().unwrap().to_str().unwrap();
        let name = file.strip_suffix(".tar.gz").expect("a .tar.gz");
        let out = Command::new("tar")
            .arg("-xzOf")
            .arg(tarball)
            .arg(format!("{name}/INSTALL"))
            .output()
            .unwrap();
        assert!(out.status.success(), "the tarball has {name}/INSTALL");
        let install = String::from_utf8(out.stdout).unwrap();
        let commands = install_commands(&install, 0);
        let optional = install_commands(&install, 1);
        assert!(
            optional.iter().any(|c| c.contains("/man/")),
            "INSTALL's second block installs the man pages: {optional:?}"
        );
        assert!(
            commands.iter().any(|c| c.starts_with("sudo tar "))
                && commands.last().is_some_and(|c| c == "nonstop --version"),
            "INSTALL's first block unpacks and checks the version: {commands:?}"
        );
        let sha = tarball.with_file_name(format!("{file}.sha256"));
        for f in [tarball, sha.as_path()] {
            self.cp_owned(f, "/home/ec2-user/", Some("ec2-user"));
        }
        // Every line, the optional ones too, as written: they must work on a minimal host
        // (no /usr/local/share/man/man1, no /etc/bash_completion.d).
        let script = format!(
            "set -ex\ncd ~\n{}\n{}\ntest -s /usr/local/share/man/man1/nonstop.1\n",
            commands.join("\n"),
            optional.join("\n")
        );
        let o = self.exec("ec2-user", &["bash", "-c", &script]);
        assert_eq!(o.code, 0, "INSTALL as ec2-user:\n{}{}", o.stdout, o.stderr);
        self.use_installed_nonstop();
        o.stdout
    }
}

/// The demo jar of VERSION as `make demo-app` built it (what a Jenkins build produces).
pub fn demo_jar(version: &str) -> PathBuf {
    let jar = project().join(format!("target/demo-app/demo-app-{version}.jar"));
    assert!(jar.is_file(), "no {jar:?}: run `make demo-app`");
    jar
}

//! Test harness shared by the integration tests, `make demo` and `make bench`: a private nginx
//! per test on a loopback port (own prefix, nothing system-wide touched), the apps' jars (the
//! stand-in built with javac, the Spring Boot app with Maven), a
//! CodeDeploy-like bundle (binaries in bundle/bin, nonstop.yml beside them) run the way the
//! agent runs hooks (cwd /, stdin closed, no arguments), and a keep-alive HTTP client that counts
//! failures raw and after one retry on a reused connection.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const BINARIES: [&str; 4] = ["stop", "start", "health", "switch"];
/// Every binary copied into the test bundle.
pub const ALL_BINARIES: [&str; 5] = ["stop", "start", "health", "switch", "deploy-second"];

/// Where the nonstop binaries are: next to the test binary's cargo output.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("NONSTOP_BIN_DIR") {
        return PathBuf::from(d);
    }
    match option_env!("CARGO_BIN_EXE_stop") {
        Some(p) => Path::new(p).parent().unwrap().to_path_buf(),
        None => {
            // examples: target/<profile>/examples/demo -> target/<profile>
            let exe = std::env::current_exe().unwrap();
            exe.parent().unwrap().parent().unwrap().to_path_buf()
        }
    }
}

/// Build (once, atomically) and return examples/demo-app's jar for `version`.
pub fn demo_jar(version: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("target/demo-app");
    let jar = out.join(format!("demo-app-{version}.jar"));
    let src = root.join("examples/demo-app/src/DemoApp.java");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&jar) <= modified(&src) {
        std::fs::create_dir_all(&out).unwrap();
        let st = Command::new("bash")
            .arg(root.join("examples/demo-app/build.sh"))
            .arg(&out)
            .arg(version)
            .status()
            .expect("bash runs");
        assert!(st.success(), "building the demo app failed");
    }
    jar
}

/// `Command::output` that retries a spawn failing with ETXTBSY: a binary this test process
/// just copied can still be open for writing in a child another test thread forked at that
/// moment (until that child's exec closes it), and exec refuses a file open for writing.
pub trait RunOutput {
    fn run_output(&mut self) -> Output;
}

impl RunOutput for Command {
    fn run_output(&mut self) -> Output {
        for _ in 0..50 {
            match self.output() {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                r => return r.unwrap(),
            }
        }
        self.output().unwrap()
    }
}

/// Build (once, atomically, under build.sh's lock) and return examples/spring-boot-app's boot jar
/// for `version`: `target/spring-app/spring-app-VERSION.jar`, as `make spring-app` builds it
/// (it is rebuilt when the pom, build.sh or a source is newer than the jar).
pub fn spring_jar(version: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let app = root.join("examples/spring-boot-app");
    let out = root.join("target/spring-app");
    let jar = out.join(format!("spring-app-{version}.jar"));
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    fn newest(p: &Path) -> Option<std::time::SystemTime> {
        let m = std::fs::metadata(p).ok()?;
        if !m.is_dir() {
            return m.modified().ok();
        }
        std::fs::read_dir(p)
            .ok()?
            .flatten()
            .filter_map(|e| newest(&e.path()))
            .max()
    }
    let sources = [app.join("pom.xml"), app.join("build.sh"), app.join("src")]
        .iter()
        .filter_map(|p| newest(p))
        .max();
    // A static lock: the tests of one binary run in parallel threads.
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _g = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    if modified(&jar) <= sources {
        let st = Command::new("bash")
            .arg(app.join("build.sh"))
            .arg(&out)
            .arg(version)
            .status()
            .expect("bash runs");
        assert!(
            st.success(),
            "building the Spring Boot app failed (needs mvn: `make spring-app`)"
        );
    }
    jar
}

/// Which app a test world deploys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum App {
    /// examples/demo-app: boots in `-Ddemo.boot-ms`, can be told to fail (the fault matrix).
    StandIn,
    /// examples/spring-boot-app: a real Spring Boot 3 jar built by Maven.
    Spring,
}

/// JVM flags for the Spring Boot app in tests, the demo and the bench: three Spring JVMs (a
/// 3-slot balanced roll) must fit a 2-core machine. A 128 MB heap is plenty for this app
/// (resident ~150 MB instead of ~225 MB with the defaults); C1 only (`TieredStopAtLevel=1`)
/// and the serial collector spend far less CPU at boot than C2 and G1's threads, which
/// roughly halves the boot on 2 busy cores; `-Xshare:auto` maps the JDK's class-data archive.
/// Production keeps its own `java_opts`.
pub const SPRING_JAVA_OPTS: [&str; 5] = [
    "-Xmx128m",
    "-Xss512k",
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
    "-Xshare:auto",
];

/// The readiness group: what a load balancer gates on, and nonstop's default `health.path`.
pub const SPRING_HEALTH_PATH: &str = "/actuator/health/readiness";

/// Send `sig` to one process. Tests never shell out to kill(1): procps parses
/// `kill -TERM -PGID` as kill(-1, SIGTERM), which signals every process on the machine.
pub fn signal(pid: i32, sig: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// Send `sig` to a process group (as the CodeDeploy agent does at a hook timeout).
pub fn signal_group(pgid: i32, sig: rustix::process::Signal) {
    let p = rustix::process::Pid::from_raw(pgid).expect("a real process group");
    rustix::process::kill_process_group(p, sig).expect("signal the group");
}

/// Poll `cond` every 20 ms until it holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while !cond() {
        if t0.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

/// A process nonstop did not start and that is not java (python's http.server) listening
/// on `port`; returns once it listens.
pub fn foreign_listener(port: u16) -> std::process::Child {
    foreign_listener_serving(port, Path::new("."))
}

/// [`foreign_listener`] serving the files under `docroot` (e.g. an `actuator/health` that
/// says `UP`, to impersonate the app).
pub fn foreign_listener_serving(port: u16, docroot: &Path) -> std::process::Child {
    let child = Command::new("python3")
        .args([
            "-m",
            "http.server",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(docroot)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || nonstop::process::port_in_use(
            port
        )),
        "http.server did not listen on {port}"
    );
    child
}

/// A free loopback port, never handed out twice in this process, from 20000-31999: below
/// the kernel's ephemeral range, so no client connection's source port can take it between
/// now and the moment an app binds it (binding port 0 and releasing it could hand the same
/// port to two parallel tests). The start is spread by pid for concurrent test processes.
pub fn free_port() -> u16 {
    use std::sync::atomic::AtomicU32;
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(997) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() && !nonstop::process::port_in_use(port) {
            return port;
        }
    }
    panic!("no free loopback port in {LOW}-{}", LOW + SPAN - 1);
}

pub fn nginx_bin() -> PathBuf {
    which::which("nginx")
        .or_else(|_| which::which("/usr/sbin/nginx"))
        .expect("nginx is not installed: run `apt-get install nginx-light` (or `make deps`)")
}

/// One test's world: a folder with nginx's prefix, the bundle, the app's workdir and state.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub nginx_port: u16,
    pub ports: Vec<u16>,
    pub names: Vec<String>,
    /// Extra YAML appended to the generated nonstop.yml.
    pub extra: String,
    pub java_opts: Vec<String>,
    /// Balanced mode: nginx balances `/api/` over an upstream of every slot (a common
    /// layout); `/` still goes to the include's single target. In nftables mode: the table
    /// spreads `/` over the slots in rotation (`traffic.balanced`), no upstream file.
    pub balanced: bool,
    /// The app `stage_jar` puts in the bundle (and the config's health path and timings).
    pub app: App,
    /// nftables mode: the front port nginx proxies to (`traffic.port`); the world then lives
    /// in a network namespace of its own (see [`Env::nftables`]).
    pub front: Option<u16>,
}

/// Move the calling thread (and every process and thread it starts from now on) into a new
/// network namespace with loopback up: nft rules changed there never touch the machine's own.
pub fn enter_netns() {
    // Safety: CLONE_NEWNET only gives this thread a network namespace of its own; it unshares
    // no file table or memory another thread relies on.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
        .expect("unshare(CLONE_NEWNET)");
    let st = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("ip runs");
    assert!(st.success(), "ip link set lo up");
}

impl Env {
    /// A world with `n` slots, nginx running and the include pointing at the first slot.
    pub fn new(n: usize) -> Env {
        Env::build(n, false, App::StandIn, false)
    }

    /// nftables mode (`traffic.via: nftables`) in a network namespace of this test's thread:
    /// nginx proxies `/` to the front port and nonstop's table steers it.
    pub fn nftables(n: usize) -> Env {
        enter_netns();
        Env::build(n, false, App::StandIn, true)
    }

    /// nftables mode for `app`, balanced (`traffic.balanced: true`: the table spreads new
    /// connections over the slots in rotation) or blue/green, in a network namespace of this
    /// thread's own, as [`Env::nftables`].
    pub fn nftables_with(n: usize, app: App, balanced: bool) -> Env {
        enter_netns();
        Env::build(n, balanced, app, true)
    }

    /// A balanced world: upstream file with every slot `down`, include at the first slot.
    pub fn balanced(n: usize) -> Env {
        Env::build(n, true, App::StandIn, false)
    }

    /// A world that deploys the Spring Boot app (health on its readiness group).
    pub fn spring(n: usize) -> Env {
        Env::build(n, false, App::Spring, false)
    }

    /// A balanced world that deploys the Spring Boot app.
    pub fn spring_balanced(n: usize) -> Env {
        Env::build(n, true, App::Spring, false)
    }

    fn build(n: usize, balanced: bool, app: App, nft: bool) -> Env {
        let dir = tempfile::Builder::new()
            .prefix("nonstop-test-")
            .tempdir()
            .unwrap();
        let names: Vec<String> = ["blue", "green", "red", "yellow", "cyan", "magenta"]
            .iter()
            .take(n)
            .map(|s| s.to_string())
            .collect();
        let env = Env {
            nginx_port: free_port(),
            ports: (0..n).map(|_| free_port()).collect(),
            names,
            dir,
            extra: String::new(),
            java_opts: match app {
                App::StandIn => vec![
                    "-Xmx48m".into(),
                    "-Xss512k".into(),
                    "-XX:TieredStopAtLevel=1".into(),
                    "-XX:+UseSerialGC".into(),
                    "-Xshare:auto".into(),
                    "-Ddemo.boot-ms=300".into(),
                ],
                App::Spring => SPRING_JAVA_OPTS.iter().map(|o| o.to_string()).collect(),
            },
            balanced,
            front: nft.then(free_port),
            app,
        };
        for d in ["nginx/logs", "nginx/tmp", "bundle/bin", "bundle/app"] {
            std::fs::create_dir_all(env.path(d)).unwrap();
        }
        std::fs::write(
            env.include_path(),
            format!("set $service_url http://127.0.0.1:{};\n", env.ports[0]),
        )
        .unwrap();
        if balanced && !nft {
            let mut up = String::from("upstream demo {\n");
            for p in &env.ports {
                up += &format!("    server 127.0.0.1:{p} down;\n");
            }
            std::fs::write(env.upstream_path(), up + "}\n").unwrap();
        }
        std::fs::write(env.path("nginx/nginx.conf"), env.nginx_conf()).unwrap();
        for b in ALL_BINARIES {
            std::fs::copy(bin_dir().join(b), env.path("bundle/bin").join(b)).unwrap();
        }
        env.start_nginx();
        env.write_config();
        env
    }

    /// Start this world's nginx (daemonized; its master writes nginx/nginx.pid).
    pub fn start_nginx(&self) {
        self.run_nginx(&[]);
    }

    /// Run this world's nginx binary with its prefix and config plus `extra` (e.g. `-s reload`);
    /// panics with nginx's stderr if it fails.
    pub fn run_nginx(&self, extra: &[&str]) {
        let out = Command::new(nginx_bin())
            .args(extra)
            .args([
                "-p",
                self.path_str("nginx"),
                "-c",
                self.path_str("nginx/nginx.conf"),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "nginx {extra:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    pub fn path_str(&self, rel: &str) -> &'static str {
        Box::leak(
            self.path(rel)
                .to_string_lossy()
                .into_owned()
                .into_boxed_str(),
        )
    }
    pub fn include_path(&self) -> PathBuf {
        self.path("nginx/service-url.inc")
    }
    pub fn upstream_path(&self) -> PathBuf {
        self.path("nginx/upstream.conf")
    }
    pub fn upstream(&self) -> String {
        std::fs::read_to_string(self.upstream_path()).unwrap()
    }
    pub fn include(&self) -> Vec<u8> {
        std::fs::read(self.include_path()).unwrap()
    }
    pub fn config_path(&self) -> PathBuf {
        self.path("bundle/nonstop.yml")
    }
    pub fn port_of(&self, slot: &str) -> u16 {
        self.ports[self.names.iter().position(|n| n == slot).unwrap()]
    }

    fn nginx_conf(&self) -> String {
        let p = self.dir.path().join("nginx");
        let p = p.display();
        if let Some(front) = self.front {
            // nftables mode: one fixed target, no slot port in any nginx file, no keepalive.
            return format!(
                "worker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log warn;\n\
                 events {{ worker_connections 512; }}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n  \
                 fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n  scgi_temp_path {p}/tmp/scgi;\n  \
                 server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      \
                 proxy_pass http://127.0.0.1:{front};\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      \
                 proxy_read_timeout 30s;\n    }}\n  }}\n}}\n",
                port = self.nginx_port,
            );
        }
        format!(
            "worker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log warn;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n  access_log off;\n{upstream}  client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n  \
             fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n  scgi_temp_path {p}/tmp/scgi;\n  \
             server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      include {p}/service-url.inc;\n      \
             proxy_pass $service_url;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      \
             proxy_read_timeout 30s;\n    }}\n{api}  }}\n}}\n",
            port = self.nginx_port,
            upstream = if self.balanced { format!("  include {p}/upstream.conf;\n") } else { String::new() },
            api = if self.balanced {
                "    location /api/ {\n      proxy_pass http://demo/;\n      proxy_http_version 1.1;\n      \
                 proxy_set_header Connection \"\";\n      proxy_read_timeout 30s;\n    }\n"
            } else {
                ""
            },
        )
    }

    /// The nonstop.yml this world uses (also rewritten after `extra`/`java_opts` change).
    pub fn write_config(&self) {
        let n = self.path("nginx");
        let n = n.display();
        let bin = nginx_bin();
        let bin = bin.display();
        let mut slots = String::new();
        for (i, (name, port)) in self.names.iter().zip(&self.ports).enumerate() {
            slots += &format!(
                "  - {{name: {name}, port: {port}, profile: real{}}}\n",
                i + 1
            );
        }
        let opts: Vec<String> = self.java_opts.iter().map(|o| format!("{o:?}")).collect();
        let upstream = if self.balanced && self.front.is_none() {
            format!("  upstream_file: {n}/upstream.conf\n  upstream_name: demo\n")
        } else {
            String::new()
        };
        // The Spring Boot app: its readiness group, a deadline for three JVMs booting on two
        // busy cores, and the default stop.grace (above Spring's 30 s shutdown phase).
        let (health_path, deadline, grace) = match self.app {
            App::StandIn => (String::new(), "30s", "10s"),
            App::Spring => (format!("  path: {SPRING_HEALTH_PATH}\n"), "120s", "35s"),
        };
        let yaml = format!(
            "app:\n  name: demo\n  jar: \"app/*.jar\"\n  java_opts: [{}]\n  workdir: ../work\n\
             slots:\n{slots}\
             health:\n{health_path}  interval: 100ms\n  timeout: 1s\n  deadline: {deadline}\n\
             stop:\n  grace: {grace}\n  drain: 15s\n\
             nginx:\n  include: {n}/service-url.inc\n  variable: service_url\n  \
             test: [{bin}, -t, -q, -p, {n}, -c, {n}/nginx.conf]\n  \
             reload: [{bin}, -s, reload, -p, {n}, -c, {n}/nginx.conf]\n  pid_file: {n}/nginx.pid\n{upstream}\
             {traffic}state_dir: ../state\nkeep_releases: 3\n{}",
            opts.join(", "),
            self.extra,
            traffic = self.front.map_or(String::new(), |p| format!(
                "traffic:\n  via: nftables\n  port: {p}\n{}",
                if self.balanced { "  balanced: true\n" } else { "" }
            )),
        );
        std::fs::write(self.config_path(), yaml).unwrap();
    }

    /// Replace `from` with `to` in the written nonstop.yml (for one-off settings).
    pub fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(self.config_path()).unwrap();
        assert!(text.contains(from), "config has no {from:?}");
        std::fs::write(self.config_path(), text.replace(from, to)).unwrap();
    }

    /// Put `version`'s jar of this world's app in the bundle as the only (newest) jar.
    pub fn stage_jar(&self, version: &str) {
        for e in std::fs::read_dir(self.path("bundle/app")).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
        let (jar, name) = match self.app {
            App::StandIn => (demo_jar(version), format!("demo-{version}.jar")),
            App::Spring => (spring_jar(version), format!("spring-app-{version}.jar")),
        };
        std::fs::copy(jar, self.path(&format!("bundle/app/{name}"))).unwrap();
    }

    /// GET `path` straight from `slot`'s app (not through nginx), on a fresh connection.
    pub fn get_slot(&self, slot: &str, path: &str) -> (u16, String) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port_of(slot)));
        Client::new(addr)
            .request("GET", path, b"")
            .unwrap_or((0, String::new()))
    }

    /// Run a binary the way the CodeDeploy agent runs a hook: bundle/bin/NAME, cwd /, stdin
    /// closed, agent variables set, plus `args` (empty for a real hook).
    pub fn hook(&self, bin: &str, args: &[&str]) -> Run {
        let t0 = Instant::now();
        let out = Command::new(self.path("bundle/bin").join(bin))
            .args(args)
            .current_dir("/")
            .stdin(Stdio::null())
            .env_remove("NONSTOP_CONFIG")
            .env("DEPLOYMENT_ID", "d-TEST")
            .env("DEPLOYMENT_GROUP_NAME", "test-group")
            .env("LIFECYCLE_EVENT", lifecycle(bin))
            .run_output();
        Run::new(bin, out, t0.elapsed())
    }

    /// stop, start, health, switch with `version`'s jar; panics with the failing stage's log.
    pub fn deploy(&self, version: &str) -> Vec<(String, Duration)> {
        self.stage_jar(version);
        let mut times = vec![];
        for b in BINARIES {
            let r = self.hook(b, &[]);
            assert_eq!(r.code, 0, "{b} failed:\n{}", r.stderr);
            times.push((b.to_string(), r.took));
        }
        times
    }

    /// stop, start, health, switch, deploy-second as hooks with `version`'s jar; panics with
    /// the failing stage's log.
    pub fn deploy_all(&self, version: &str) -> Vec<Run> {
        self.stage_jar(version);
        ALL_BINARIES
            .iter()
            .map(|b| {
                let r = self.hook(b, &[]);
                assert_eq!(r.code, 0, "{b} failed:\n{}", r.stderr);
                r
            })
            .collect()
    }

    /// GET through nginx on a fresh connection.
    pub fn get(&self, path: &str) -> (u16, String) {
        let mut c = Client::new(self.nginx_addr());
        c.request("GET", path, b"").unwrap_or((0, String::new()))
    }

    pub fn nginx_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.nginx_port))
    }

    /// The pid file of a slot, parsed.
    pub fn pid_of(&self, slot: &str) -> Option<nonstop::process::PidFile> {
        nonstop::process::read_pid_file(&self.path(&format!("work/run/{slot}.pid")))
    }

    pub fn state(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.path("state/state.json")).unwrap()).unwrap()
    }
}

fn lifecycle(bin: &str) -> &'static str {
    match bin {
        "stop" => "AfterInstall",
        "start" => "ApplicationStart",
        _ => "ValidateService",
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        // Kill the apps this test started (proved by their pid files), with their children
        // (a `java` wrapper that does not exec leaves the JVM as its child), then nginx.
        if let Ok(rd) = std::fs::read_dir(self.path("work/run")) {
            for e in rd.flatten() {
                if let Some(pf) = nonstop::process::read_pid_file(&e.path()) {
                    if nonstop::process::same_process(pf.pid, pf.start_time) {
                        for pid in nonstop::process::tree(pf.pid) {
                            signal(pid, rustix::process::Signal::KILL);
                        }
                    }
                }
            }
        }
        // Signal the master by its pid file: `nginx -s stop` would need a config that parses.
        if let Ok(pid) = std::fs::read_to_string(self.path("nginx/nginx.pid")) {
            if let Ok(pid) = pid.trim().parse() {
                signal(pid, rustix::process::Signal::TERM);
            }
        }
    }
}

/// How a run ended, as a person reads it: `exit 0 in 26 ms`, `killed by signal 9 in 1.20 s`.
pub fn ended(status: std::process::ExitStatus, took: Duration) -> String {
    use std::os::unix::process::ExitStatusExt;
    let how = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "ended".into(),
    };
    format!("{how} in {}", nonstop::log::human(took))
}

/// The outcome of one binary run.
pub struct Run {
    pub code: i32,
    pub stderr: String,
    pub took: Duration,
}

impl Run {
    fn new(bin: &str, out: Output, took: Duration) -> Run {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        eprintln!("--- {bin} {}\n{stderr}", ended(out.status, took));
        Run {
            code: out.status.code().unwrap_or(-1),
            stderr,
            took,
        }
    }
    pub fn last_line(&self) -> &str {
        self.stderr.lines().last().unwrap_or("")
    }
}

// ---------- a keep-alive HTTP/1.1 client that knows when a retry is legitimate ----------

pub struct Client {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
    /// Responses read on the current connection.
    served: usize,
}

#[derive(Debug)]
pub struct Fail {
    /// The connection had served a response before (a retry is what browsers do).
    pub reused: bool,
    pub err: String,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            conn: None,
            served: 0,
        }
    }

    /// Drop the kept connection if the server has closed it while it was idle (EOF, or an error,
    /// waiting to be read): what Go's net/http does in its read loop, which takes a connection
    /// the server closed out of the pool before a request could be sent on it. Returns whether
    /// it dropped one.
    pub fn drop_if_server_closed(&mut self) -> bool {
        let Some(conn) = self.conn.as_ref() else {
            return false;
        };
        if !conn.buffer().is_empty() {
            return false;
        }
        let s = conn.get_ref();
        let mut b = [0u8; 1];
        let closed = s.set_nonblocking(true).is_ok()
            && match s.peek(&mut b) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
            };
        let _ = s.set_nonblocking(false);
        if closed {
            self.conn = None;
        }
        closed
    }

    /// One request; `Err` carries whether it failed on a reused keep-alive connection.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(u16, String), Fail> {
        if self.conn.is_none() {
            let s =
                TcpStream::connect_timeout(&self.addr, Duration::from_secs(2)).map_err(|e| {
                    Fail {
                        reused: false,
                        err: format!("connect: {e}"),
                    }
                })?;
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s.set_nodelay(true).unwrap();
            self.conn = Some(BufReader::new(s));
            self.served = 0;
        }
        let reused = self.served > 0;
        let r = self.exchange(method, path, body);
        match r {
            Ok((status, text, close)) => {
                self.served += 1;
                if close {
                    self.conn = None;
                }
                Ok((status, text))
            }
            Err(e) => {
                self.conn = None;
                Err(Fail {
                    reused,
                    err: e.to_string(),
                })
            }
        }
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> std::io::Result<(u16, String, bool)> {
        let conn = self.conn.as_mut().unwrap();
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let s = conn.get_mut();
        s.write_all(head.as_bytes())?;
        s.write_all(body)?;
        let mut line = String::new();
        if conn.read_line(&mut line)? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed before a response",
            ));
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut len = 0usize;
        let mut close = false;
        let mut chunked = false;
        loop {
            line.clear();
            conn.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let lower = l.to_ascii_lowercase();
            if let Some(v) = lower.strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
            if lower.starts_with("connection:") && lower.contains("close") {
                close = true;
            }
            if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
                chunked = true;
            }
        }
        if !chunked {
            let mut buf = vec![0; len];
            conn.read_exact(&mut buf)?;
            return Ok((status, String::from_utf8_lossy(&buf).into_owned(), close));
        }
        // Chunked (Spring Boot's Actuator answers so): size lines, chunks, a 0 chunk, trailers.
        let mut buf = vec![];
        loop {
            line.clear();
            conn.read_line(&mut line)?;
            let size = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                loop {
                    line.clear();
                    if conn.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            let at = buf.len();
            buf.resize(at + size, 0);
            conn.read_exact(&mut buf[at..])?;
            line.clear();
            conn.read_line(&mut line)?;
        }
        Ok((status, String::from_utf8_lossy(&buf).into_owned(), close))
    }
}

/// What continuous traffic saw.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub requests: usize,
    pub ok: usize,
    /// Failures as a client without retry would see them.
    pub raw_failed: usize,
    /// Failures left after one retry of a request that failed on a reused connection.
    pub failed: usize,
    /// Response bodies' first word (the app version) -> count.
    pub versions: BTreeMap<String, usize>,
    pub errors: Vec<String>,
    /// From the load's start to [`Load::finish`].
    pub took: Duration,
}

impl Tally {
    fn merge(&mut self, o: Tally) {
        self.requests += o.requests;
        self.ok += o.ok;
        self.raw_failed += o.raw_failed;
        self.failed += o.failed;
        for (k, v) in o.versions {
            *self.versions.entry(k).or_default() += v;
        }
        self.errors.extend(o.errors.into_iter().take(5));
    }
    pub fn summary(&self) -> String {
        format!(
            "{} requests in {:.1?}, {} failed ({} raw failures before one retry on a reused keep-alive connection); versions {:?}",
            self.requests, self.took, self.failed, self.raw_failed, self.versions
        )
    }
}

impl Tally {
    /// Count one request's final outcome: a 200 by the version it names, anything else as a
    /// failure (and as a raw failure too unless its first try was already counted as one).
    fn settle(&mut self, r: Result<(u16, String), Fail>, raw_counted: bool) {
        match r {
            Ok((200, text)) => {
                self.ok += 1;
                let v = text.split_whitespace().next().unwrap_or("").to_string();
                *self.versions.entry(v).or_default() += 1;
            }
            Ok((s, text)) => {
                if !raw_counted {
                    self.raw_failed += 1;
                }
                self.failed += 1;
                self.errors.push(format!("HTTP {s}: {}", text.trim()));
            }
            Err(f) => {
                if !raw_counted {
                    self.raw_failed += 1;
                }
                self.failed += 1;
                self.errors.push(f.err);
            }
        }
    }
}

/// Client threads that run until [`Load::finish`] stops them and sums what they saw.
pub struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<Tally>>,
    t0: Instant,
}

impl Load {
    /// `n` threads, each running `body(thread index, stop flag)`.
    fn spawn<F>(n: usize, body: F) -> Load
    where
        F: Fn(usize, &AtomicBool) -> Tally + Send + Sync + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let body = Arc::new(body);
        let threads = (0..n)
            .map(|i| {
                let (stop, body) = (stop.clone(), body.clone());
                std::thread::spawn(move || body(i, &stop))
            })
            .collect();
        Load {
            stop,
            threads,
            t0: Instant::now(),
        }
    }

    /// Stop starting requests, wait for those in flight, and sum the tallies.
    pub fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Tally::default();
        for t in self.threads {
            all.merge(t.join().unwrap());
        }
        all.took = self.t0.elapsed();
        all
    }
}

/// Continuous GETs and POSTs through nginx on keep-alive connections until stopped (bounded
/// to 10 minutes and 1,000,000 requests per connection unless [`Traffic::start_within`] says
/// otherwise); a request that fails on a reused
/// connection is retried once, as browsers do.
pub struct Traffic;

impl Traffic {
    pub fn start(addr: SocketAddr, conns: usize, pause: Duration) -> Load {
        Traffic::start_on(addr, "/", conns, pause)
    }

    /// Like [`Traffic::start`], to `path` (e.g. `/api/` for the balanced upstream).
    pub fn start_on(addr: SocketAddr, path: &'static str, conns: usize, pause: Duration) -> Load {
        Traffic::start_within(
            addr,
            path,
            conns,
            pause,
            Duration::from_secs(600),
            1_000_000,
        )
    }

    /// Like [`Traffic::start_on`], each connection stopping by itself after `max_time` or
    /// `max_requests`.
    pub fn start_within(
        addr: SocketAddr,
        path: &'static str,
        conns: usize,
        pause: Duration,
        max_time: Duration,
        max_requests: usize,
    ) -> Load {
        Load::spawn(conns, move |i, stop| {
            let mut c = Client::new(addr);
            let mut t = Tally::default();
            let t0 = Instant::now();
            let mut n = 0usize;
            while !stop.load(Ordering::Relaxed) && t0.elapsed() < max_time && n < max_requests {
                n += 1;
                let (method, body): (&str, &[u8]) = if (n + i) % 4 == 0 {
                    ("POST", b"order=42&qty=1")
                } else {
                    ("GET", b"")
                };
                t.requests += 1;
                let mut r = c.request(method, path, body);
                let raw_counted = r.is_err();
                if let Err(f) = &r {
                    t.raw_failed += 1;
                    if f.reused {
                        r = c.request(method, path, body);
                    }
                }
                t.settle(r, raw_counted);
                std::thread::sleep(pause);
            }
            t
        })
    }
}

/// Slow requests (`/slow?ms=...`) through nginx, each on a fresh connection, kept in flight by
/// `n` threads until stopped: used to prove a slot leaving rotation lets them finish.
pub struct SlowRequests;

impl SlowRequests {
    pub fn start(addr: SocketAddr, path: &'static str, n: usize) -> Load {
        Load::spawn(n, move |i, stop| {
            let mut t = Tally::default();
            // Stagger the starts so requests leave and arrive all the time.
            std::thread::sleep(Duration::from_millis(150 * i as u64));
            let t0 = Instant::now();
            while !stop.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(300) {
                t.requests += 1;
                t.settle(Client::new(addr).request("GET", path, b""), false);
            }
            t
        })
    }
}

impl SlowRequests {
    /// One sender per slot that keeps a `/slow?ms=MS` request in flight straight to the slot's
    /// app whenever the upstream file has the slot in rotation: every slot that leaves rotation
    /// then has a request in flight (nginx's round robin alone leaves that to chance).
    pub fn per_slot_in_rotation(env: &Env, ms: u64) -> Load {
        let ports = env.ports.clone();
        let upstream = env.upstream_path();
        let path: &'static str = Box::leak(format!("/slow?ms={ms}").into_boxed_str());
        Load::spawn(ports.len(), move |i, stop| {
            let port = ports[i];
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut t = Tally::default();
            let t0 = Instant::now();
            while !stop.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(300) {
                let up = std::fs::read_to_string(&upstream)
                    .ok()
                    .and_then(|text| nonstop::nginx::parse_upstream(&text).ok())
                    .is_some_and(|rot| {
                        rot.iter()
                            .any(|(p, m)| *p == port && *m != nonstop::nginx::Member::Down)
                    });
                if up {
                    t.requests += 1;
                    t.settle(Client::new(addr).request("GET", path, b""), false);
                } else {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            t
        })
    }
}

// ---------- the operator's command, `nonstop` (tests/operator.rs) ----------

/// The outcome of one `nonstop` run: like [`Run`], with its stdout (the report it prints).
pub struct OpRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub took: Duration,
}

impl OpRun {
    /// The outcome of `nonstop ARGS`, echoed to the test's stderr.
    pub fn new(args: &[&str], out: Output, took: Duration) -> OpRun {
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        eprintln!(
            "--- nonstop {} exit {:?} in {took:?}\n{stdout}{stderr}",
            args.join(" "),
            out.status.code()
        );
        OpRun {
            code: out.status.code().unwrap_or(-1),
            stdout,
            stderr,
            took,
        }
    }

    pub fn last_line(&self) -> &str {
        self.stderr.lines().last().unwrap_or("")
    }
}

impl Env {
    /// Run `bundle/bin/nonstop ARGS` as a person on the host would: cwd /, stdin closed, no
    /// CodeDeploy variables. The config is found next to bin/, as for the hooks.
    pub fn nonstop(&self, args: &[&str]) -> OpRun {
        let bin = self.path("bundle/bin/nonstop");
        if !bin.is_file() {
            std::fs::copy(bin_dir().join("nonstop"), &bin).unwrap();
        }
        let t0 = Instant::now();
        let out = Command::new(&bin)
            .args(args)
            .current_dir("/")
            .stdin(Stdio::null())
            .env_remove("NONSTOP_CONFIG")
            .env_remove("DEPLOYMENT_ID")
            .env_remove("LIFECYCLE_EVENT")
            .run_output();
        OpRun::new(args, out, t0.elapsed())
    }

    /// Replace the private nginx's `http { ... }` body with `body` (temp paths kept) and reload.
    pub fn nginx_http(&self, body: &str) {
        let p = self.dir.path().join("nginx");
        let p = p.display();
        let conf = format!(
            "worker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log warn;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n  \
             fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n  scgi_temp_path {p}/tmp/scgi;\n\
             {body}\n}}\n"
        );
        std::fs::write(self.path("nginx/nginx.conf"), conf).unwrap();
        self.run_nginx(&["-s", "reload"]);
    }
}

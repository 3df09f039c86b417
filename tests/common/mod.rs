//! Test harness shared by the integration tests, `make demo` and `make bench`: a private nginx
//! per test on a loopback port (own prefix, nothing system-wide touched), the apps' jars (the
//! stand-in built with javac, the Spring Boot app with Maven), a
//! CodeDeploy-like bundle (binaries in bundle/bin, nonstop.yml beside them) run the way the
//! agent runs hooks (cwd /, stdin closed, no arguments), and continuous load through the one
//! strict client ([`http`]) that counts every request by how it ended, raw and after the retry
//! a browser would make.
#![allow(dead_code)]

pub mod http;
#[allow(unused_imports)]
pub use http::{Client, Fail, Kind, Outcome};

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const BINARIES: [&str; 4] = nonstop::stage_table::BLUE_GREEN;
/// Every binary copied into the test bundle.
pub const ALL_BINARIES: [&str; 5] = nonstop::stage_table::NAMES;

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

/// A jar that cannot start: its manifest names a main class it does not hold (a broken
/// release, `demo-app-v3.jar` in `dir`).
pub fn broken_jar(dir: &Path) -> PathBuf {
    let classes = dir.join("classes");
    std::fs::create_dir_all(&classes).unwrap();
    std::fs::write(classes.join("README.txt"), "no classes here\n").unwrap();
    let jar = dir.join("demo-app-v3.jar");
    let st = std::process::Command::new("jar")
        .args(["--create", "--main-class", "DemoApp", "--file"])
        .arg(&jar)
        .arg("-C")
        .arg(&classes)
        .arg(".")
        .status()
        .expect("the JDK's jar runs");
    assert!(st.success(), "jar --create");
    jar
}

/// Build (once, atomically, under build.sh's lock) and return examples/spring-boot-app's boot jar
/// for `version`: `target/spring-app/spring-app-VERSION.jar`, as `make spring-app` builds it
/// (it is rebuilt when the pom, build.sh or a source is newer than the jar).
pub fn spring_jar(version: &str) -> PathBuf {
    maven_jar("spring-boot-app", "spring-app", version)
}

/// examples/spring-large-app's boot jar for `version` (PetClinic's size: web, JPA, Thymeleaf),
/// `target/spring-large-app/spring-large-app-VERSION.jar`, as `make spring-large-app` builds it;
/// built as [`spring_jar`]. Only the bench deploys it.
pub fn spring_large_jar(version: &str) -> PathBuf {
    maven_jar("spring-large-app", "spring-large-app", version)
}

/// examples/EXAMPLE's jar `target/NAME/NAME-VERSION.jar`, built by its build.sh when missing
/// or older than the pom, build.sh or a source.
fn maven_jar(example: &str, name: &str, version: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let app = root.join("examples").join(example);
    let out = root.join("target").join(name);
    let jar = out.join(format!("{name}-{version}.jar"));
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
            "building examples/{example} failed (needs mvn: `make {name}`)"
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
    /// examples/spring-large-app: a PetClinic-sized Spring Boot 3 jar (web, JPA, Thymeleaf),
    /// deployed as `Spring` is (same flags, health path and timings); the bench's only.
    SpringLarge,
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

/// The log format nonstop's site defines (what `--watch` reads), at the http level of a
/// test's nginx; each server writes `NGINX_PREFIX/logs/access.log` in it.
const LOG_FORMAT: &str = "  log_format nonstop_demo 'FORMAT';\n";

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

    /// A world that deploys `app`, balanced or blue/green (as [`Env::spring`] and
    /// [`Env::spring_balanced`] for `App::Spring`).
    pub fn with_app(n: usize, app: App, balanced: bool) -> Env {
        Env::build(n, balanced, app, false)
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
                App::Spring | App::SpringLarge => {
                    SPRING_JAVA_OPTS.iter().map(|o| o.to_string()).collect()
                }
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
    /// The upstream file's line of `port`: its parameters (`""`, `" down"`, `" weight=9"`).
    pub fn member(&self, port: u16) -> String {
        let up = self.upstream();
        let line = up
            .lines()
            .find(|l| l.contains(&format!(":{port}")))
            .unwrap_or_else(|| panic!("no server line for {port} in\n{up}"));
        let after = line.split(&format!(":{port}")).nth(1).unwrap();
        after.split(';').next().unwrap().to_string()
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
                 http {{\n  access_log off;\n{log}  client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n  \
                 fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n  scgi_temp_path {p}/tmp/scgi;\n  \
                 server {{\n    listen 127.0.0.1:{port};\n    access_log {p}/logs/access.log nonstop_demo;\n    location / {{\n      \
                 proxy_pass http://127.0.0.1:{front};\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      \
                 proxy_buffering off;\n      proxy_read_timeout 30s;\n    }}\n  }}\n}}\n",
                port = self.nginx_port,
                log = LOG_FORMAT.replace("FORMAT", nonstop::watch::sample::FORMAT),
            );
        }
        format!(
            "worker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/logs/error.log warn;\n\
             events {{ worker_connections 512; }}\n\
             http {{\n  access_log off;\n{log}{upstream}  client_body_temp_path {p}/tmp/body;\n  proxy_temp_path {p}/tmp/proxy;\n  \
             fastcgi_temp_path {p}/tmp/fastcgi;\n  uwsgi_temp_path {p}/tmp/uwsgi;\n  scgi_temp_path {p}/tmp/scgi;\n  \
             server {{\n    listen 127.0.0.1:{port};\n    access_log {p}/logs/access.log nonstop_demo;\n    location / {{\n      include {p}/service-url.inc;\n      \
             proxy_pass $service_url;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n      \
             proxy_buffering off;\n      proxy_read_timeout 30s;\n    }}\n{api}  }}\n}}\n",
            port = self.nginx_port,
            log = LOG_FORMAT.replace("FORMAT", nonstop::watch::sample::FORMAT),
            upstream = if self.balanced { format!("  include {p}/upstream.conf;\n") } else { String::new() },
            api = if self.balanced {
                "    location /api/ {\n      proxy_pass http://demo/;\n      proxy_http_version 1.1;\n      \
                 proxy_set_header Connection \"\";\n      proxy_buffering off;\n      proxy_read_timeout 30s;\n    }\n"
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
            App::Spring | App::SpringLarge => {
                (format!("  path: {SPRING_HEALTH_PATH}\n"), "120s", "35s")
            }
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
            App::SpringLarge => (
                spring_large_jar(version),
                format!("spring-large-app-{version}.jar"),
            ),
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
        self.hook_env(bin, args, &[])
    }

    /// [`Env::hook`] with `vars` set in its environment (e.g. a `PATH` with a wrapper first).
    pub fn hook_env(&self, bin: &str, args: &[&str], vars: &[(&str, &str)]) -> Run {
        let t0 = Instant::now();
        let out = Command::new(self.path("bundle/bin").join(bin))
            .args(args)
            .envs(vars.iter().copied())
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

    /// The pids of this world's nginx workers, sorted (unchanged across a step: nginx was not
    /// reloaded).
    pub fn nginx_workers(&self) -> Vec<i32> {
        let master: i32 = std::fs::read_to_string(self.path("nginx/nginx.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut w = nonstop::process::children(master);
        w.sort();
        w
    }

    /// `nginx -s reload` as an operator runs it, then wait until it took effect: the command
    /// only signals the master, which starts new workers and lets the old ones go.
    pub fn reload_nginx(&self) {
        let old = self.nginx_workers();
        self.run_nginx(&["-s", "reload"]);
        assert!(
            wait_until(Duration::from_secs(10), || {
                let now = self.nginx_workers();
                !now.is_empty() && old.iter().all(|p| !now.contains(p))
            }),
            "nginx's old workers {old:?} did not exit"
        );
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

// ---------- continuous load through the one client (http.rs) ----------

/// What continuous traffic saw, each request counted by how it ended ([`Kind`]).
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub requests: usize,
    pub posts: usize,
    /// Requests whose final answer was a whole 2xx/3xx response.
    pub ok: usize,
    /// Each request's first attempt by kind: what a client that never retries sees.
    pub raw: BTreeMap<Kind, usize>,
    /// Each request's final outcome by kind, after the one retry a browser or Go would make.
    pub last: BTreeMap<Kind, usize>,
    /// Requests sent again (a GET that failed on a reused connection before any byte).
    pub retried: usize,
    /// Requests whose first attempt went out on a kept connection the server closed before a
    /// byte of the answer ([`Outcome::unanswered_on_reused`]), and those of them that were
    /// POSTs (never sent again, so lost).
    pub unanswered_on_reused: usize,
    pub unanswered_posts: usize,
    /// Kept connections the server had closed while idle, replaced before a request was sent.
    pub server_closed_idle: usize,
    /// 2xx bodies' first word (the app version) -> count.
    pub versions: BTreeMap<String, usize>,
    /// The first failures, each as `METHOD kind: detail`.
    pub errors: Vec<String>,
    /// From the load's start to [`Load::finish`].
    pub took: Duration,
}

impl Tally {
    /// Count one request.
    pub fn record(&mut self, method: &str, o: &Outcome) {
        self.requests += 1;
        if method == "POST" {
            self.posts += 1;
        }
        *self.raw.entry(o.raw_kind()).or_default() += 1;
        *self.last.entry(o.kind).or_default() += 1;
        self.retried += o.retried.is_some() as usize;
        if o.unanswered_on_reused() {
            self.unanswered_on_reused += 1;
            self.unanswered_posts += (method == "POST") as usize;
        }
        self.server_closed_idle += o.after_server_close as usize;
        if let Some(f) = &o.retried {
            if self.errors.len() < 20 {
                self.errors
                    .push(format!("{method} {} (retried): {}", f.kind, f.err));
            }
        }
        if o.kind == Kind::Ok {
            self.ok += 1;
            if (200..300).contains(&o.status) {
                let v = o.body.split_whitespace().next().unwrap_or("").to_string();
                *self.versions.entry(v).or_default() += 1;
            }
        } else if self.errors.len() < 20 {
            let why = o
                .error
                .clone()
                .unwrap_or_else(|| format!("HTTP {}: {}", o.status, o.body.trim()));
            self.errors.push(format!("{method} {}: {why}", o.kind));
        }
    }

    /// First attempts that failed, of every kind.
    pub fn raw_failed(&self) -> usize {
        self.requests - self.raw.get(&Kind::Ok).copied().unwrap_or(0)
    }

    /// Requests that failed after the retry.
    pub fn failed(&self) -> usize {
        self.requests - self.ok
    }

    /// First attempts that ended as `kind`.
    pub fn raw_of(&self, kind: Kind) -> usize {
        self.raw.get(&kind).copied().unwrap_or(0)
    }

    /// The failures by kind, e.g. `{reset: 2, body cut: 1}` (`{}` when none).
    pub fn kinds(m: &BTreeMap<Kind, usize>) -> String {
        let parts: Vec<String> = m
            .iter()
            .filter(|(k, n)| **k != Kind::Ok && **n > 0)
            .map(|(k, n)| format!("{k}: {n}"))
            .collect();
        format!("{{{}}}", parts.join(", "))
    }

    pub fn summary(&self) -> String {
        format!(
            "{} requests ({} POSTs) in {:.1?}: raw failures {} {}, after retries {} {} ({} retried; {} sent on a kept connection the server closed before answering, {} of them POSTs; {} idle connections closed by the server, replaced before use); versions {:?}; first errors {:?}",
            self.requests,
            self.posts,
            self.took,
            self.raw_failed(),
            Tally::kinds(&self.raw),
            self.failed(),
            Tally::kinds(&self.last),
            self.retried,
            self.unanswered_on_reused,
            self.unanswered_posts,
            self.server_closed_idle,
            self.versions,
            self.errors.iter().take(5).collect::<Vec<_>>(),
        )
    }

    /// At least `min` requests, no failure of any kind even before a retry, and 2xx answers
    /// from exactly `versions`, each at least once.
    #[track_caller]
    pub fn assert_clean(&self, what: &str, min: usize, versions: &[&str]) {
        self.assert_clean_among(what, min, versions, versions);
    }

    /// [`Tally::assert_clean`] where each of `required` answered and nothing outside `allowed`.
    #[track_caller]
    pub fn assert_clean_among(&self, what: &str, min: usize, allowed: &[&str], required: &[&str]) {
        eprintln!("{what}: {}", self.summary());
        assert!(
            self.requests >= min,
            "{what}: at least {min} requests: {}",
            self.summary()
        );
        assert_eq!(self.raw_failed(), 0, "{what}: {}", self.summary());
        self.assert_versions_among(what, allowed, required);
    }

    /// Reload mode: at least `min` requests and 2xx answers from exactly `versions`; every raw
    /// failure is a request sent on a kept connection that a reload's old worker closed before
    /// answering a byte (nginx closes its idle keep-alive connections when it reloads; one
    /// arriving at that moment is reset), so at most one per connection per reload
    /// (`conns` × `reloads`); each such GET succeeded on its retry, each such POST is lost (no
    /// client resends a POST). No other kind: no cut body, no 502, no timeout.
    #[track_caller]
    pub fn assert_reload_bound(
        &self,
        what: &str,
        min: usize,
        versions: &[&str],
        conns: usize,
        reloads: usize,
    ) {
        eprintln!(
            "{what} ({reloads} reloads, {conns} connections): {}",
            self.summary()
        );
        assert!(
            self.requests >= min,
            "{what}: at least {min} requests: {}",
            self.summary()
        );
        assert_eq!(
            self.raw_failed(),
            self.unanswered_on_reused,
            "{what}: a raw failure other than a kept connection closed before answering: {}",
            self.summary()
        );
        assert!(
            self.unanswered_on_reused <= conns * reloads,
            "{what}: at most one per connection per reload: {}",
            self.summary()
        );
        assert_eq!(
            self.failed(),
            self.unanswered_posts,
            "{what}: only those POSTs lost, every such GET retried: {}",
            self.summary()
        );
        self.assert_versions_among(what, versions, versions);
    }

    /// 2xx answers came from `allowed` only, and from each of `required`.
    #[track_caller]
    pub fn assert_versions_among(&self, what: &str, allowed: &[&str], required: &[&str]) {
        for v in self.versions.keys() {
            assert!(
                allowed.contains(&v.as_str()),
                "{what}: {v:?} answered, want only {allowed:?}: {}",
                self.summary()
            );
        }
        for v in required {
            assert!(
                self.versions.contains_key(*v),
                "{what}: {v} never answered: {}",
                self.summary()
            );
        }
    }

    fn merge(&mut self, o: Tally) {
        self.requests += o.requests;
        self.posts += o.posts;
        self.ok += o.ok;
        for (k, v) in o.raw {
            *self.raw.entry(k).or_default() += v;
        }
        for (k, v) in o.last {
            *self.last.entry(k).or_default() += v;
        }
        self.retried += o.retried;
        self.unanswered_on_reused += o.unanswered_on_reused;
        self.unanswered_posts += o.unanswered_posts;
        self.server_closed_idle += o.server_closed_idle;
        for (k, v) in o.versions {
            *self.versions.entry(k).or_default() += v;
        }
        self.errors.extend(o.errors.into_iter().take(5));
    }
}

/// What a load's threads share: the stop flag and the count of requests ended so far.
#[derive(Default)]
pub struct Shared {
    stop: AtomicBool,
    done: std::sync::atomic::AtomicUsize,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
    /// Count one request into `t` and into the shared count.
    fn record(&self, t: &mut Tally, method: &str, o: &Outcome) {
        t.record(method, o);
        self.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// Client threads that run until [`Load::finish`] stops them and sums what they saw.
pub struct Load {
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<Tally>>,
    t0: Instant,
}

impl Load {
    /// `n` threads, each running `body(thread index, shared state)`.
    fn spawn<F>(n: usize, body: F) -> Load
    where
        F: Fn(usize, &Shared) -> Tally + Send + Sync + 'static,
    {
        let shared = Arc::new(Shared::default());
        let body = Arc::new(body);
        let threads = (0..n)
            .map(|i| {
                let (shared, body) = (shared.clone(), body.clone());
                std::thread::spawn(move || body(i, &shared))
            })
            .collect();
        Load {
            shared,
            threads,
            t0: Instant::now(),
        }
    }

    /// Wait until `n` more requests have ended (whatever their outcome) than when called:
    /// a load window holds at least that many requests however slow the machine is. Panics
    /// after 120 s.
    #[track_caller]
    pub fn wait_requests(&self, n: usize) {
        let from = self.shared.done.load(Ordering::Relaxed);
        let ok = wait_until(Duration::from_secs(120), || {
            self.shared.done.load(Ordering::Relaxed) >= from + n
        });
        assert!(
            ok,
            "{} requests in 120 s, want {n}",
            self.shared.done.load(Ordering::Relaxed) - from
        );
    }

    /// Stop starting requests, wait for those in flight, and sum the tallies.
    pub fn finish(self) -> Tally {
        self.shared.stop.store(true, Ordering::Relaxed);
        let mut all = Tally::default();
        for t in self.threads {
            all.merge(t.join().unwrap());
        }
        all.took = self.t0.elapsed();
        all
    }
}

/// Continuous GETs and POSTs (every fourth) through nginx on keep-alive connections with
/// [`Client::send`] until stopped (bounded to 10 minutes and 1,000,000 requests per
/// connection unless [`Traffic::start_within`] says otherwise).
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
            while !stop.stopped() && t0.elapsed() < max_time && n < max_requests {
                n += 1;
                let (method, body): (&str, &[u8]) = if (n + i) % 4 == 0 {
                    ("POST", b"order=42&qty=1")
                } else {
                    ("GET", b"")
                };
                stop.record(&mut t, method, &c.send(method, path, body));
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
            while !stop.stopped() && t0.elapsed() < Duration::from_secs(300) {
                stop.record(&mut t, "GET", &Client::new(addr).send("GET", path, b""));
            }
            t
        })
    }
}

impl SlowRequests {
    /// One sender per slot that keeps a `/slow?ms=MS` request in flight straight to the slot's
    /// app whenever the slot is in rotation (reload mode: the upstream file; nftables mode: the
    /// rotation in the comment of `state_dir/traffic.nft`, the table last applied): every slot
    /// that leaves rotation then has a request in flight (a balancer alone leaves that to chance).
    pub fn per_slot_in_rotation(env: &Env, ms: u64) -> Load {
        let ports = env.ports.clone();
        let nft = env.front.is_some();
        let upstream = if nft {
            env.path("state/traffic.nft")
        } else {
            env.upstream_path()
        };
        let path: &'static str = Box::leak(format!("/slow?ms={ms}").into_boxed_str());
        Load::spawn(ports.len(), move |i, stop| {
            let port = ports[i];
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let mut t = Tally::default();
            let t0 = Instant::now();
            while !stop.stopped() && t0.elapsed() < Duration::from_secs(300) {
                let text = std::fs::read_to_string(&upstream).unwrap_or_default();
                let up = if nft {
                    // `comment "nonstop live=8081 rotation=8081:1,8082:down"`
                    text.split_whitespace()
                        .find_map(|w| w.strip_prefix("rotation="))
                        .is_some_and(|r| {
                            r.trim_end_matches('"').split(',').any(|e| {
                                e.split_once(':')
                                    .is_some_and(|(p, w)| p == port.to_string() && w != "down")
                            })
                        })
                } else {
                    nonstop::nginx::parse_upstream(&text).is_ok_and(|rot| {
                        rot.iter()
                            .any(|(p, m)| *p == port && *m != nonstop::nginx::Member::Down)
                    })
                };
                if up {
                    stop.record(&mut t, "GET", &Client::new(addr).send("GET", path, b""));
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

//! k: `app.cds` under systemd on an EC2-like host, with the Spring Boot example: v1 then v2
//! through the agent; once `nonstop status` shows v2's class-data archive (dumped from the live
//! JVM after the switch), a kill -9 of the live JVM and a reboot of the host each bring the
//! live slot back from the archive (its command line names it, the kernel's /proc/PID/maps
//! shows it mapped), answering 200. Then the same two with the archive moved away: run-slot
//! says in the journal that it starts without it, and the slot answers 200 again. Last, v2
//! deployed again with `app.cds: off` (the jar as shipped), killed and rebooted the same way.
//! The times (kill -9 → 200, reboot → 200: from the archive, extracted without it, the jar as
//! shipped) are printed for BENCHMARKS.md, never asserted: the machine is shared.

use crate::common::{spring_jar, Client, SPRING_HEALTH_PATH, SPRING_JAVA_OPTS};
use crate::host::{Bundle, Hooks, Host};
use crate::{answers_until_200, boot_time, pid, slot};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WORKDIR: &str = "/opt/nonstop/myapp";

/// The system tests' bundle of VERSION with the Spring Boot example's jar instead of the demo
/// app's, its JVM flags, its readiness group as `health.path`, and `app.cds: auto`.
fn spring_bundle(version: &str) -> Bundle {
    let b = Bundle::of(version);
    let app = b.rev().join("app");
    for e in std::fs::read_dir(&app).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let jar = app.join(format!("spring-app-{version}.jar"));
    std::fs::copy(spring_jar(version), &jar).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&jar, std::fs::Permissions::from_mode(0o644)).unwrap();
    let opts: Vec<String> = SPRING_JAVA_OPTS
        .iter()
        .map(|o| format!("\"{o}\""))
        .collect();
    b.edit(
        "nonstop.yml",
        "java_opts: [\"-Xmx64m\", \"-Xss512k\", \"-XX:TieredStopAtLevel=1\", \"-XX:+UseSerialGC\", \"-Ddemo.boot-ms=1000\"]",
        &format!("java_opts: [{}]\n  cds: auto", opts.join(", ")),
    )
    .edit(
        "nonstop.yml",
        "path: /actuator/health\n",
        &format!("path: {SPRING_HEALTH_PATH}\n"),
    )
    // A Spring boot on two cores shared with other builds: well inside the hook's 180 s.
    .edit("nonstop.yml", "deadline: 60s", "deadline: 150s")
}

/// The live JVM's command line, its archive mapped or not, after the slot answered again.
struct Jvm {
    pid: u64,
    cmdline: String,
    mapped: bool,
    /// When it was launched, in seconds since the kernel booted (the host shares this
    /// machine's kernel, so this machine's /proc/uptime is the same clock).
    launched: f64,
    /// Its CPU time (user + system) when read, just after the slot answered 200: what a boot
    /// costs, which the machine's load changes far less than the wall time.
    cpu: f64,
}

/// Seconds since the kernel booted (this machine's clock, and the host's).
fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap()
}

fn jvm(host: &Host, name: &str) -> Jvm {
    let st = host.status();
    let pid = pid(&st, name);
    let cmdline = host.sh_ok(&format!("tr '\\0' ' ' < /proc/{pid}/cmdline"));
    let mapped = host
        .sh_ok(&format!("grep -c '/cds/app.jsa' /proc/{pid}/maps || true"))
        .trim()
        != "0";
    // Field 22 of /proc/PID/stat (after the parenthesized name): start time in clock ticks.
    let stat = host.sh_ok(&format!("cat /proc/{pid}/stat"));
    let field = |n: usize| -> f64 {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(n - 3))
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no field {n} in {stat}"))
    };
    let hz: f64 = host.sh_ok("getconf CLK_TCK").trim().parse().unwrap();
    Jvm {
        pid,
        cmdline,
        mapped,
        launched: field(22) / hz,
        cpu: (field(14) + field(15)) / hz,
    }
}

/// The live slot and what it answers.
struct Live {
    name: &'static str,
    other: &'static str,
    body: &'static str,
}

const BLUE: Live = Live {
    name: "blue",
    other: "green",
    body: "v2 real1 8081",
};
const GREEN: Live = Live {
    name: "green",
    other: "blue",
    body: "v2 real2 8082",
};

/// kill -9 of the live JVM: systemd restarts the unit; the time until nginx answers 200
/// again, as "T (JVM launch → 200 L, CPU C)", and the new JVM.
fn kill_9(host: &Host, live: &Live, limit: Duration) -> (String, Jvm) {
    let st = host.status();
    let pid0 = pid(&st, live.name);
    let restarts0 = slot(&st, live.name)["restarts"].as_u64().unwrap_or(0);
    host.sh_ok(&format!("kill -9 {pid0}"));
    let t0 = Instant::now();
    let (other, body) = answers_until_200(host, limit);
    let (back, ok_at) = (t0.elapsed(), uptime());
    assert_eq!(body.trim(), live.body, "the live slot serves v2 again");
    assert!(
        other > 0,
        "the kill was seen from outside ({other} non-200 first)"
    );
    let st = host.status();
    let s = slot(&st, live.name);
    assert_eq!(
        s["restarts"].as_u64(),
        Some(restarts0 + 1),
        "systemd restarted it once: {s:#}"
    );
    let j = jvm(host, live.name);
    assert_ne!(j.pid, pid0, "a new JVM");
    let back = format!(
        "{back:.2?} (JVM launch -> 200 {:.2} s, CPU {:.2} s)",
        ok_at - j.launched,
        j.cpu
    );
    (back, j)
}

/// A reboot of the host: the time until nginx answers 200 again (the reboot included), as
/// "T (reboot R; JVM launch → 200 L, CPU C)", and the live slot's JVM.
fn reboot(host: &Host, live: &Live, limit: Duration) -> (String, Jvm) {
    let rebooted = host.reboot();
    let t0 = Instant::now();
    let (_, body) = answers_until_200(host, limit);
    let (slot_back, ok_at) = (t0.elapsed(), uptime());
    assert_eq!(body.trim(), live.body, "the live slot serves v2 again");
    let st = host.status();
    assert_eq!(st["live"], live.name, "{st:#}");
    assert_eq!(
        slot(&st, live.other)["state"],
        "stopped",
        "only the live slot starts at boot: {st:#}"
    );
    let j = jvm(host, live.name);
    let back = format!(
        "{:.2?} (ec2host.sh reboot {rebooted:.2?}; JVM launch -> 200 {:.2} s, CPU {:.2} s)",
        rebooted + slot_back,
        ok_at - j.launched,
        j.cpu
    );
    (back, j)
}

/// One GET through nginx while the archive is dumped: when it was sent, its status (0: no
/// whole response), its body and how long it took.
struct Probe {
    at: Duration,
    status: u16,
    body: String,
    took: Duration,
}

/// GETs on fresh connections every 50 ms, each allowed 60 s (nginx's proxy_read_timeout),
/// until `stop` is set.
fn probes(
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<Probe>> {
    std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut out = vec![];
        while !stop.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(300) {
            let at = t0.elapsed();
            let (status, body) = Client::with_timeout(addr, Duration::from_secs(60))
                .request("GET", "/", b"")
                .unwrap_or((0, String::new()));
            out.push(Probe {
                at,
                status,
                body,
                took: t0.elapsed() - at,
            });
            std::thread::sleep(Duration::from_millis(50));
        }
        out
    })
}

#[test]
#[ignore = "needs EC2-like hosts: make system-test"]
fn k_class_data_archive_survives_kill_9_and_reboot() {
    let host = Host::ec2("nsys-k-cds", Hooks::Root);
    let d1 = host.deploy(&spring_bundle("v1"));
    d1.assert_ok();
    // From before v2's switch until its archive is dumped, a GET every 50 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let during = probes(host.addr(), stop.clone());
    let d2 = host.deploy(&spring_bundle("v2"));
    d2.assert_ok();
    let st = host.status();
    let release = slot(&st, "blue")["release"]
        .as_str()
        .expect("the live slot's release")
        .to_string();
    let cds = format!("{WORKDIR}/releases/{release}/cds");
    let first = jvm(&host, "blue");
    assert!(
        first.cmdline.contains("-XX:+RecordDynamicDumpInfo")
            && first
                .cmdline
                .contains(&format!("{cds}/app/spring-app-v2.jar")),
        "v2's first boot runs extracted and records: {}",
        first.cmdline
    );

    // The dump after the switch, waited for as a user would: `nonstop status` shows it.
    let t0 = Instant::now();
    let row = loop {
        let st = host.status();
        let row = st["releases"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["release"] == release.as_str()))
            .cloned()
            .unwrap_or_else(|| panic!("no release {release} in {st:#}"));
        if row["archive_bytes"].is_u64() {
            break row;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(180),
            "no archive for {release} after {:?}: {row:#}\ndump.log: {}",
            t0.elapsed(),
            host.read(&format!("{cds}/dump.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    let shown = t0.elapsed();
    stop.store(true, Ordering::SeqCst);
    let during = during.join().unwrap();
    // Each dump (v1's in the first deploy, v2's in this one) pauses its JVM, and runs in
    // `health`, before any traffic goes there: the slowest answer of each version.
    let slowest = |v: &str| {
        during
            .iter()
            .filter(|p| p.body.starts_with(v))
            .max_by_key(|p| p.took)
            .map_or("none".to_string(), |p| {
                format!("{:.2?} (sent {:.1?} in)", p.took, p.at)
            })
    };
    eprintln!(
        "[system] FIGURE nsys-k-cds: {} GETs from before v2's deployment until its archive was shown ({:.1?}): {} x 200; slowest from v1 {}, from v2 {}",
        during.len(),
        during.last().map(|p| p.at + p.took).unwrap_or_default(),
        during.iter().filter(|p| p.status == 200).count(),
        slowest("v1 "),
        slowest("v2 "),
    );
    // The switch and the dump lose no request.
    assert!(
        during.iter().all(|p| p.status == 200),
        "every GET answered 200: {:?}",
        during
            .iter()
            .filter(|p| p.status != 200)
            .map(|p| (p.at, p.status, p.took))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        during.last().map(|p| p.body.trim()),
        Some("v2 real1 8081"),
        "v2 serves on blue"
    );
    // The dumper rewrites the unit's launch file right after the archive is in place.
    let launch = format!("{WORKDIR}/run/blue.launch.json");
    let t1 = Instant::now();
    while !host
        .read(&launch)
        .unwrap_or_default()
        .contains(&format!("-XX:SharedArchiveFile={cds}/app.jsa"))
    {
        assert!(
            t1.elapsed() < Duration::from_secs(10),
            "{launch} does not name the archive: {}",
            host.read(&launch).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let archive_bytes = row["archive_bytes"].as_u64().unwrap();
    let folder = host.sh_ok(&format!("du -sb {WORKDIR}/releases/{release}"));
    let text = host.nonstop(&["status"]).stdout;
    let meta = host
        .read(&format!("{cds}/archive.json"))
        .unwrap_or_default();
    eprintln!(
        "[system] FIGURE nsys-k-cds: status showed the archive {shown:.1?} after the v2 deployment ended; {meta}\n{text}"
    );
    let limit = Duration::from_secs(180);

    // With the archive: kill -9, then a reboot.
    let (kill_with, j) = kill_9(&host, &BLUE, limit);
    let arg = format!("-XX:SharedArchiveFile={cds}/app.jsa");
    assert!(
        j.cmdline.contains(&arg) && j.mapped,
        "after kill -9 the JVM boots from the archive (mapped: {}): {}",
        j.mapped,
        j.cmdline
    );
    let (reboot_with, j) = reboot(&host, &BLUE, limit);
    assert!(
        j.cmdline.contains(&arg) && j.mapped,
        "after the reboot the JVM boots from the archive (mapped: {}): {}",
        j.mapped,
        j.cmdline
    );

    // Without it (moved away, as if it had never been dumped): run-slot says so and starts
    // the extracted release without it.
    host.sh_ok(&format!("mv {cds}/app.jsa {WORKDIR}/app.jsa.aside"));
    let (kill_without, j) = kill_9(&host, &BLUE, limit);
    assert!(
        !j.cmdline.contains("SharedArchiveFile") && !j.mapped,
        "no archive: {}",
        j.cmdline
    );
    let journal = host.sh_ok(
        "journalctl -u nonstop-myapp@blue.service -o cat --no-pager | grep -c 'starting without the class-data archive' || true",
    );
    assert!(
        journal.trim().parse::<u32>().unwrap_or(0) >= 1,
        "run-slot says it starts without the archive: {journal}"
    );
    let (reboot_without, j) = reboot(&host, &BLUE, limit);
    assert!(
        !j.cmdline.contains("SharedArchiveFile") && !j.mapped,
        "no archive: {}",
        j.cmdline
    );

    // `app.cds: off`, the jar as shipped: v2 again as a new release, live on green.
    let d3 = host.deploy(&spring_bundle("v2").edit("nonstop.yml", "cds: auto", "cds: off"));
    d3.assert_ok();
    let j = jvm(&host, "green");
    assert!(
        j.cmdline.contains("/spring-app-v2.jar")
            && !j.cmdline.contains("/cds/")
            && !j.cmdline.contains("RecordDynamicDumpInfo")
            && !j.mapped,
        "app.cds: off runs the jar as shipped: {}",
        j.cmdline
    );
    let (kill_off, _) = kill_9(&host, &GREEN, limit);
    let (reboot_off, j) = reboot(&host, &GREEN, limit);
    assert!(!j.cmdline.contains("/cds/"), "{}", j.cmdline);
    eprintln!(
        "[system] FIGURE nsys-k-cds: deploy boots (start + health hooks): v1 {:.2?} (extracted, recording; extraction included), v2 {:.2?} (the same), v2 with app.cds: off {:.2?}; \
         kill -9 -> 200: {kill_with} from the archive, {kill_without} extracted without it, {kill_off} app.cds: off; \
         reboot -> 200: {reboot_with} from the archive, {reboot_without} extracted without it, {reboot_off} app.cds: off; \
         archive {archive_bytes} bytes; release folder {} bytes with it",
        boot_time(&d1),
        boot_time(&d2),
        boot_time(&d3),
        folder.split_whitespace().next().unwrap_or("?"),
    );
}

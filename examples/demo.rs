//! `make demo`: the whole job on one machine with nothing set up. Starts a private nginx on a
//! loopback port (own prefix; no system config touched), deploys v1 and then v2 of the Spring
//! Boot app (examples/spring-boot-app, built by `make spring-app`) with the real nonstop
//! binaries run as CodeDeploy hooks while requests flow through nginx, and prints each stage's
//! time, the JVMs' boot and memory, and the request count. `DEMO_APP=stand-in` deploys the
//! dependency-free stand-in (examples/demo-app, a 2 s simulated boot) instead.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use std::time::Duration;

/// A process's resident memory (VmRSS) in MB.
fn rss_mb(pid: i32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let stand_in = match std::env::var("DEMO_APP").as_deref() {
        Ok("stand-in") => true,
        Ok("spring") | Ok("") | Err(_) => false,
        Ok(other) => {
            eprintln!("demo: DEMO_APP={other:?}: want spring (the default) or stand-in");
            std::process::exit(2)
        }
    };
    let env = if stand_in {
        let mut env = Env::new(2);
        // Boot like a small Spring app: 2 s before the port opens.
        env.java_opts.retain(|o| !o.starts_with("-Ddemo.boot-ms"));
        env.java_opts.push("-Ddemo.boot-ms=2000".into());
        env.write_config();
        env
    } else {
        Env::spring(2)
    };
    let app = if stand_in {
        "the stand-in (examples/demo-app, 2 s simulated boot)".to_string()
    } else {
        format!(
            "Spring Boot 3 (target/spring-app/spring-app-v1.jar, v2.jar; health {SPRING_HEALTH_PATH}; java_opts {})",
            SPRING_JAVA_OPTS.join(" ")
        )
    };
    println!(
        "demo: private nginx on http://127.0.0.1:{} (prefix {}), slots blue:{} green:{}",
        env.nginx_port,
        env.path("nginx").display(),
        env.ports[0],
        env.ports[1]
    );
    println!("demo: app {app}");
    println!("demo: config {}", env.config_path().display());

    println!("\n== deploy v1 (first deploy: nothing serves yet) ==");
    let v1 = env.deploy("v1");
    println!("demo: nginx now answers: {}", env.get("/").1.trim());

    println!("\n== deploy v2 while 8 keep-alive clients send GETs and POSTs through nginx ==");
    let traffic = Traffic::start(env.nginx_addr(), 8, Duration::from_millis(1));
    std::thread::sleep(Duration::from_secs(1));
    let t0 = std::time::Instant::now();
    let v2 = env.deploy("v2");
    let wall = t0.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let tally = traffic.finish();
    println!("demo: nginx now answers: {}", env.get("/").1.trim());
    let rss: Vec<String> = ["green", "blue"]
        .iter()
        .filter_map(|s| {
            let pf = env.pid_of(s)?;
            Some(format!("{s} {:.0} MB", rss_mb(pf.pid)?))
        })
        .collect();

    println!("\n== summary ==");
    println!("{:<8} {:>10} {:>10}", "stage", "v1", "v2");
    for ((stage, a), (_, b)) in v1.iter().zip(&v2) {
        println!(
            "{stage:<8} {:>9.2}s {:>9.2}s",
            a.as_secs_f64(),
            b.as_secs_f64()
        );
    }
    if stand_in {
        println!(
            "v2 deploy wall time {:.2} s (app boot 2 s)",
            wall.as_secs_f64()
        );
    } else {
        println!(
            "v2 deploy wall time {:.2} s (Spring Boot boot under load: `health` waited {:.2} s for readiness UP)",
            wall.as_secs_f64(),
            v2[2].1.as_secs_f64()
        );
    }
    println!("JVM resident memory: {}", rss.join(", "));
    println!(
        "{} requests ({} POSTs), every body read to its end; versions served {:?}",
        tally.requests, tally.posts, tally.versions
    );
    println!(
        "failed before any retry: {} {}; retried (a GET that failed on a reused keep-alive connection before any byte of its answer, as browsers and Go retry): {}; failed after that: {} {}",
        tally.raw_failed(),
        Tally::kinds(&tally.raw),
        tally.retried,
        tally.failed(),
        Tally::kinds(&tally.last)
    );
    println!(
        "idle keep-alive connections nginx closed, replaced before use (not failures): {}",
        tally.server_closed_idle
    );
    for e in tally.errors.iter().take(5) {
        println!("  {e}");
    }
    if tally.failed() > 0 {
        eprintln!("demo: FAILED requests: {:?}", tally.errors);
        std::process::exit(1);
    }
}

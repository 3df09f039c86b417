//! `make demo`: the whole job on one machine with nothing set up. Starts a private nginx on a
//! loopback port (own prefix; no system config touched), deploys v1 and then v2 of the demo app
//! with the real nonstop binaries run as CodeDeploy hooks while requests flow through nginx,
//! and prints each stage's time and the request count.

#[path = "../tests/common/mod.rs"]
mod common;

use common::*;
use std::time::Duration;

fn main() {
    let mut env = Env::new(2);
    // Boot like a small Spring app: 2 s before the port opens.
    env.java_opts.retain(|o| !o.starts_with("-Ddemo.boot-ms"));
    env.java_opts.push("-Ddemo.boot-ms=2000".into());
    env.write_config();
    println!(
        "demo: private nginx on http://127.0.0.1:{} (prefix {}), slots blue:{} green:{}",
        env.nginx_port,
        env.path("nginx").display(),
        env.ports[0],
        env.ports[1]
    );
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

    println!("\n== summary ==");
    println!("{:<8} {:>10} {:>10}", "stage", "v1", "v2");
    for ((stage, a), (_, b)) in v1.iter().zip(&v2) {
        println!(
            "{stage:<8} {:>9.2}s {:>9.2}s",
            a.as_secs_f64(),
            b.as_secs_f64()
        );
    }
    println!(
        "v2 deploy wall time {:.2} s (app boot 2 s)",
        wall.as_secs_f64()
    );
    println!(
        "{} requests, {} failed ({} raw failures, each retried once on a fresh connection after nginx closed an idle keep-alive connection); versions served {:?}",
        tally.requests, tally.failed, tally.raw_failed, tally.versions
    );
    if tally.failed > 0 {
        eprintln!("demo: FAILED requests: {:?}", tally.errors);
        std::process::exit(1);
    }
}

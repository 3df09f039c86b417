//! Two runs in one process: `nonstop deploy` called as a library function three times, on two
//! apps (two configs, two state folders, two nginx), as a long-lived caller would. Each run
//! must use its own deployment id (release folder, history, the app's `DEPLOYMENT_ID`), its own
//! lock and its own state: nothing of a run may stay behind in the process.
//!
//! Its own `main` (no libtest harness): the builtin supervisor re-executes the running binary,
//! which is this test, so it must answer as `nonstop` does before anything else.

mod common;

use common::Env;
use nonstop::run::Run;
use std::process::ExitCode;

fn main() -> ExitCode {
    if let Some(spec) = std::env::var_os(nonstop::supervisor::builtin::SUPERVISE_ENV) {
        return nonstop::supervisor::builtin::supervise(spec);
    }
    const NAME: &str = "two_apps_deployed_in_one_process_each_with_its_own_id_lock_and_state";
    // libtest's flags as far as they matter here: `--list`, `--ignored` (this test is not),
    // and name filters.
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        println!("{NAME}: test");
        return ExitCode::SUCCESS;
    }
    // Positional arguments, past the values of the flags that take one.
    let mut filters: Vec<&String> = vec![];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if [
            "--test-threads",
            "--skip",
            "--format",
            "--color",
            "--logfile",
            "-Z",
        ]
        .contains(&a.as_str())
        {
            it.next();
        } else if !a.starts_with('-') {
            filters.push(a);
        }
    }
    if args.iter().any(|a| a == "--ignored")
        || (!filters.is_empty() && !filters.iter().any(|f| NAME.contains(f.as_str())))
    {
        println!("test result: ok. 0 passed; 0 failed; 1 filtered out");
        return ExitCode::SUCCESS;
    }
    // What the runs read at their start: a `DEPLOYMENT_ID` of the caller's would name them all.
    // (Still single-threaded here.)
    std::env::remove_var("DEPLOYMENT_ID");
    two_apps_deployed_in_one_process_each_with_its_own_id_lock_and_state();
    println!("test {NAME} ... ok");
    println!("test result: ok. 1 passed; 0 failed");
    ExitCode::SUCCESS
}

/// The deployment ids in `env`'s history, in order, one per event.
fn ids(env: &Env) -> Vec<String> {
    env.state()["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["deployment_id"].as_str().unwrap_or("none").to_string())
        .collect()
}

/// `DEPLOYMENT_ID` in the environment of `slot`'s running app.
fn app_deployment_id(env: &Env, slot: &str) -> Option<String> {
    let pf = env.pid_of(slot).expect("a pid file");
    let environ = std::fs::read(format!("/proc/{}/environ", pf.pid)).unwrap();
    environ
        .split(|b| *b == 0)
        .filter_map(|kv| std::str::from_utf8(kv).ok())
        .find_map(|kv| kv.strip_prefix("DEPLOYMENT_ID=").map(str::to_string))
}

fn deploy(run: &Run) {
    let mut rep = nonstop::operator::report::Report::new("deploy");
    let mut decided = nonstop::operator::report::Decided::default();
    nonstop::operator::deploy::run(run, None, None, None, &mut rep, &mut decided)
        .expect("the deploy succeeds");
}

fn two_apps_deployed_in_one_process_each_with_its_own_id_lock_and_state() {
    let a = Env::new(2);
    let b = Env::new(2);
    a.stage_jar("v1");
    b.stage_jar("v1");

    let a1 = Run::load(Some(&a.config_path())).unwrap();
    deploy(&a1);
    let b1 = Run::load(Some(&b.config_path())).unwrap();
    deploy(&b1);
    a.stage_jar("v2");
    let a2 = Run::load(Some(&a.config_path())).unwrap();
    deploy(&a2);

    let (id_a1, id_b1, id_a2) = (
        a1.id().unwrap().to_string(),
        b1.id().unwrap().to_string(),
        a2.id().unwrap().to_string(),
    );
    for id in [&id_a1, &id_b1, &id_a2] {
        assert!(id.starts_with("deploy-"), "{id}");
    }
    assert_ne!(id_a1, id_b1, "the second run made an id of its own");
    assert_ne!(
        id_a1, id_a2,
        "a later run on the same app made an id of its own"
    );
    assert_ne!(id_b1, id_a2);

    // Each app's history holds only its own runs' events, each under its run's id.
    let hist_a = ids(&a);
    let hist_b = ids(&b);
    assert!(!hist_b.is_empty());
    assert!(hist_b.iter().all(|i| *i == id_b1), "{hist_b:?}");
    let first_a2 = hist_a
        .iter()
        .position(|i| *i == id_a2)
        .expect("a2 recorded");
    assert!(first_a2 > 0, "{hist_a:?}");
    assert!(hist_a[..first_a2].iter().all(|i| *i == id_a1), "{hist_a:?}");
    assert!(hist_a[first_a2..].iter().all(|i| *i == id_a2), "{hist_a:?}");

    // Releases are named after each run's own id, in each app's own folder.
    let releases = |env: &Env| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(env.path("work/releases"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let mut want_a = vec![id_a1.clone(), id_a2.clone()];
    want_a.sort();
    assert_eq!(releases(&a), want_a);
    assert_eq!(releases(&b), vec![id_b1.clone()]);

    // Each app was started with its own run's id in its environment.
    let live = |env: &Env| env.state()["live"].as_str().unwrap().to_string();
    assert_eq!(live(&a), "blue", "v1 went to green, v2 to blue");
    assert_eq!(app_deployment_id(&a, "green"), Some(id_a1.clone()));
    assert_eq!(app_deployment_id(&a, "blue"), Some(id_a2.clone()));
    assert_eq!(app_deployment_id(&b, &live(&b)), Some(id_b1.clone()));
    let (_, body) = a.get_slot("blue", "/");
    assert!(body.contains("v2"), "{body}");

    // Each run released its lock at its end, and a lock is its own state folder's: one run
    // holding its lock keeps out another run of the same app (in this process too) and no one
    // else.
    for r in [&a1, &b1, &a2] {
        assert!(!r.holds_lock());
    }
    let held = a2.lock("a test").unwrap();
    let again = Run::load(Some(&a.config_path())).unwrap();
    let mut rep = nonstop::operator::report::Report::new("deploy");
    let mut decided = nonstop::operator::report::Decided::default();
    let e = nonstop::operator::deploy::run(&again, None, None, None, &mut rep, &mut decided)
        .unwrap_err();
    assert_eq!(e.exit_code(), 3, "{e}");
    assert!(e.to_string().contains("a test pid"), "{e}");
    let other = b1.lock("another test").expect("another app's lock is free");
    drop(other);
    drop(held);
    assert!(!a2.holds_lock());
    assert!(
        std::fs::read_to_string(b.path("state/lock"))
            .unwrap()
            .contains("another test pid"),
        "b's lock file names b's last holder"
    );
}

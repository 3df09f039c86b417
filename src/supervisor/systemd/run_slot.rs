//! `run-slot`, the template unit's `ExecStart=` (as the app user): the launch file a deploy
//! writes for a slot (`workdir/run/<slot>.launch.json`), checked against the registry before
//! java is exec'd in the release folder, so the unit's main process is the JVM.

use crate::error::Refusal;
use crate::error::{failed, Context, Error, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// What a slot's next start runs, written by `start` (the deploy user) beside the pid files
/// and read by `nonstop run-slot` in the unit (as the app user), which checks it against the
/// registry before it execs.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Launch {
    pub release: String,
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
}

/// `workdir/run/<slot>.launch.json`
pub fn launch_path(workdir: &Path, slot: &str) -> PathBuf {
    workdir.join("run").join(format!("{slot}.launch.json"))
}

/// Check `l` for slot `slot` of entry `e`: the slot is one setup fixed, the release folder is
/// under the app's releases folder (symlinks resolved), the jar is in it, and the one
/// `-Dserver.port` is the slot's port. Returns the argv to exec.
pub fn check_launch(e: &crate::registry::Entry, slot: &str, l: &Launch) -> Result<()> {
    let refuse = |msg: String| {
        Error::refused(
            Refusal::Launch {
                slot: slot.to_string(),
            },
            msg,
        )
    };
    let s = e.slot(slot).ok_or_else(|| {
        refuse(format!(
            "slot {slot:?} is not one of app {}'s slots in the registry",
            e.app
        ))
    })?;
    let rel_ok = !l.release.is_empty()
        && l.release != "."
        && l.release != ".."
        && l.release
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    let releases = e.workdir.join("releases");
    if !rel_ok || l.cwd != releases.join(&l.release) {
        return Err(refuse(format!(
            "release {:?} in {:?} is not a folder of {}",
            l.release,
            l.cwd,
            releases.display()
        )));
    }
    let canon = |p: &Path| {
        std::fs::canonicalize(p)
            .map_err(|err| failed(format!("cannot resolve {}: {err}", p.display())))
    };
    let (releases_c, cwd_c) = (canon(&releases)?, canon(&l.cwd)?);
    if cwd_c.parent() != Some(releases_c.as_path()) {
        return Err(refuse(format!(
            "{} resolves to {}, outside {}",
            l.cwd.display(),
            cwd_c.display(),
            releases_c.display()
        )));
    }
    let jar = l
        .argv
        .iter()
        .position(|a| a == "-jar")
        .and_then(|i| l.argv.get(i + 1))
        .ok_or_else(|| refuse("the launch has no `-jar JAR`".into()))?;
    let jar_c = canon(Path::new(jar))?;
    if jar_c.parent() != Some(cwd_c.as_path()) && !crate::cds::archive::in_release(&jar_c, &cwd_c) {
        return Err(refuse(format!(
            "jar {jar} is not in release folder {}",
            l.cwd.display()
        )));
    }
    let ports: Vec<&String> = l
        .argv
        .iter()
        .filter(|a| a.starts_with("-Dserver.port=") || a.starts_with("--server.port="))
        .collect();
    let want = format!("-Dserver.port={}", s.port);
    if ports.len() != 1 || *ports[0] != want {
        return Err(refuse(format!(
            "the launch sets the port with {ports:?}; slot {slot} of {} has port {} (fixed by setup)",
            e.app, s.port
        )));
    }
    if !l.argv.first().is_some_and(|j| Path::new(j).is_absolute()) {
        return Err(refuse("the launch's java is not an absolute path".into()));
    }
    crate::cds::archive::check_launch(&l.argv, &cwd_c)
}

/// `nonstop run-slot --app APP --slot SLOT`, the template unit's `ExecStart=` (as the app
/// user): read the registry (root-owned) and the slot's launch file, check it
/// ([`check_launch`]), and exec java in the release folder. Returns only on failure.
pub fn run_slot(app: &str, slot: &str) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let e = crate::registry::read(Path::new(crate::registry::DIR), app)?
        .ok_or_else(|| failed(format!("app {app} is not set up on this host")))?;
    let p = launch_path(&e.workdir, slot);
    let text = std::fs::read_to_string(&p).context(format!("cannot read {}", p.display()))?;
    let l: Launch = serde_json::from_str(&text)
        .map_err(|err| failed(format!("{} is not a launch file: {err}", p.display())))?;
    check_launch(&e, slot, &l)?;
    let argv = crate::cds::archive::vet(&l.argv, &l.cwd);
    let err = Command::new(&argv[0])
        .args(&argv[1..])
        .envs(l.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&l.cwd)
        .exec();
    Err(Error::spawn(l.argv[0].clone(), err))
}

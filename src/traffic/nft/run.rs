//! Running `nft` (in a process group of its own) and listing the table, once per locked run,
//! directly or, for a hook user set up by `sudo nonstop setup`, through the root helper's one
//! sudo line.

use crate::config::Config;
use crate::error::{failed, Error, Result, Tool};
use crate::traffic::{Doubt, Via};
use std::process::{Command, Stdio};

/// What every nft-mode refusal says when no `nft` can be found.
pub const NFT_MISSING: &str = "nft is not installed (not on PATH, not /usr/sbin/nft or /sbin/nft): install the nftables package (`apt-get install nftables` or `dnf install nftables`), or set traffic.via: nginx-reload";

/// The `nft` program: on PATH, else where distributions put it (a hook's PATH may lack sbin).
pub fn nft_bin() -> std::result::Result<String, Missing> {
    which::which("nft")
        .or_else(|_| which::which("/usr/sbin/nft"))
        .or_else(|_| which::which("/sbin/nft"))
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|_| Missing)
}

/// No `nft` program on this host ([`NFT_MISSING`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missing;

/// True when `nft` can be found.
pub fn installed() -> bool {
    nft_bin().is_ok()
}

/// Run nft with `args`; `Err` is nft's first error line. nft runs in a process group of its
/// own, as the nginx commands do: the CodeDeploy agent's SIGTERM to the hook's group at a
/// timeout must not kill it halfway through a transaction.
pub(super) fn nft(args: &[&str]) -> Result<String> {
    let bin = nft_bin().map_err(|_| missing())?;
    let out = command(&bin, args)
        .output()
        .map_err(|e| Error::spawn(format!("`{bin} {}`", args.join(" ")), e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(refused(
            args,
            out.status,
            &String::from_utf8_lossy(&out.stderr),
        ))
    }
}

/// Run the transaction `nft -f FILE -e` and return its echo once the kernel's
/// `# new generation N by process P (nft)` line, the last of a committed batch's echo, has
/// arrived: the batch is committed and visible then. nft exits 5–20 ms later, because closing
/// its netlink socket waits for the kernel to free what the batch replaced (an RCU grace
/// period); a thread reaps it meanwhile, and nobody waits for that reclaim. Without a
/// generation line nft's exit status and error decide, as in [`nft`].
pub(super) fn nft_commit(file: &str) -> Result<String> {
    use std::io::{BufRead, Read};
    let args = ["-f", file, "-e"];
    let bin = nft_bin().map_err(|_| missing())?;
    let spawn_err = |e| Error::spawn(format!("`{bin} {}`", args.join(" ")), e);
    let mut child = command(&bin, &args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_err)?;
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(failed("nft's output pipes are missing"));
    };
    // Read beside stdout, so that an error longer than a pipe's buffer cannot stall nft.
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut lines = std::io::BufReader::new(stdout);
    let mut echo = String::new();
    loop {
        let mut line = String::new();
        match lines.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                echo.push_str(&line);
                if line.starts_with("# new generation ") {
                    std::thread::spawn(move || {
                        let _ = child.wait();
                        drop(lines);
                    });
                    return Ok(echo);
                }
            }
        }
    }
    let status = child.wait().map_err(spawn_err)?;
    let err = errors.join().unwrap_or_default();
    if status.success() {
        Ok(echo)
    } else {
        Err(refused(&args, status, &err))
    }
}

/// `nft ARGS` with stdin closed, in a process group of its own.
fn command(bin: &str, args: &[&str]) -> Command {
    use std::os::unix::process::CommandExt;
    let mut c = Command::new(bin);
    c.args(args).stdin(Stdio::null()).process_group(0);
    c
}

/// nft's failure: its first error line, with the errno it names.
fn refused(args: &[&str], status: std::process::ExitStatus, stderr: &str) -> Error {
    let reason = stderr
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .trim();
    Error::Command {
        tool: Tool::Nft,
        argv: std::iter::once("nft")
            .chain(args.iter().copied())
            .map(String::from)
            .collect(),
        status,
        reason: reason.to_string(),
        io: errno_in(reason),
    }
}

/// [`NFT_MISSING`] as an error.
pub(super) fn missing() -> Error {
    Error::NotInstalled {
        program: "nft".into(),
        msg: NFT_MISSING.into(),
    }
}

/// The errno nft's error line names, as an [`std::io::ErrorKind`]: nft reports the kernel's
/// errno as the C library's text for it (`Error: Could not process rule: No such file or
/// directory`), the text [`std::io::Error`] shows before ` (os error N)`.
pub(super) fn errno_in(line: &str) -> Option<std::io::ErrorKind> {
    use rustix::io::Errno;
    [Errno::NOENT, Errno::EXIST, Errno::PERM, Errno::BUSY]
        .into_iter()
        .find_map(|errno| {
            let e = std::io::Error::from_raw_os_error(errno.raw_os_error());
            let shown = e.to_string();
            let text = shown.split(" (os error ").next()?;
            (!text.is_empty() && line.contains(text)).then(|| e.kind())
        })
}

/// A table [`list_table`] could not read, as an error (the root-owned `steer` has no config
/// to describe a [`Doubt`] with).
pub(super) fn unlisted(d: Doubt) -> crate::error::Error {
    match d {
        Doubt::TableUnreadable(why) => failed(format!("cannot list the table: {why}")),
        Doubt::NftMissing => missing(),
        other => failed(format!("cannot list the table: {other:?}")),
    }
}

pub(super) fn list_table(table: &str) -> std::result::Result<Option<String>, Doubt> {
    match nft(&["list", "table", "ip", table]) {
        Ok(text) => Ok(Some(text)),
        // nft's own answer for a table that does not exist: ENOENT.
        Err(Error::Command {
            io: Some(std::io::ErrorKind::NotFound),
            ..
        }) => Ok(None),
        Err(e) => Err(Doubt::TableUnreadable(e.to_string())),
    }
}

pub(super) fn root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The app's registry entry when `sudo nonstop setup` set it up for a hook user in nftables
/// mode: the table is then changed only by the root-owned `nonstop steer` (through its one
/// sudo line, or in this process as root), from the registry's front port and slot ports.
pub(super) fn helper(cfg: &Config) -> Option<crate::registry::Entry> {
    crate::registry::read(std::path::Path::new(crate::registry::DIR), &cfg.app.name)
        .ok()
        .flatten()
        .filter(|e| e.hook_user != "root" && e.traffic == Via::Nftables)
}

/// The app's registry entry when it is set up on this host for nftables steering, whoever
/// runs its hooks.
pub(super) fn steered(cfg: &Config) -> Option<crate::registry::Entry> {
    crate::registry::read(std::path::Path::new(crate::registry::DIR), &cfg.app.name)
        .ok()
        .flatten()
        .filter(|e| e.traffic == Via::Nftables && e.state_dir == cfg.state_dir)
}

/// `state_dir/steer.want`: the steering the hook user asks the helper for (the table's comment
/// format: `nonstop live=8082 rotation=8081:down,8082:1`).
pub fn want_path(state_dir: &std::path::Path) -> std::path::PathBuf {
    state_dir.join("steer.want")
}

/// `sudo -n NONSTOP steer --app APP ARGS`: its stdout, or its last stderr line as the error.
pub(super) fn sudo_steer(e: &crate::registry::Entry, args: &[&str]) -> Result<String> {
    let out = Command::new("sudo")
        .arg("-n")
        .arg(&e.nonstop)
        .args(["steer", "--app", &e.app])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::spawn("sudo", e))?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let head = [
        "sudo",
        "-n",
        &e.nonstop.to_string_lossy(),
        "steer",
        "--app",
        &e.app,
    ];
    Err(Error::Command {
        tool: Tool::SudoSteer,
        argv: head.iter().chain(args).map(|a| a.to_string()).collect(),
        status: out.status,
        reason: err
            .lines()
            .rfind(|l| !l.trim().is_empty())
            .unwrap_or("no output (is it in the sudo rules `sudo nonstop setup` writes?)")
            .trim()
            .to_string(),
        io: None,
    })
}

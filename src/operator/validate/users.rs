//! Write access: what the users the hooks run as (`runas`, else this one) may write: the
//! nginx files nonstop owns, state_dir and workdir (the users and their groups from
//! [`crate::userdb`]).

use super::appspec::Hook;
use super::check::{check, Check, CheckId, Verdict};
use super::hooks::binary_of;
use crate::config::Config;
use crate::stage_table::Stage;
use std::path::Path;

/// A user the hooks run as, for the write checks.
#[derive(Debug, Clone)]
pub struct Who {
    pub name: String,
    pub uid: u32,
    /// Primary and supplementary groups.
    pub groups: Vec<u32>,
    /// This process's own user: access(2) answers for it (ACLs, read-only mounts included);
    /// for another user the mode bits are read.
    pub current: bool,
}

fn name_of_uid(uid: u32) -> String {
    crate::userdb::user_by_uid(uid).map_or_else(|| format!("uid {uid}"), |a| a.name)
}

/// The user called `name` (or with that number), from the user database.
pub fn lookup_user(name: &str) -> Option<Who> {
    let account = crate::userdb::user(name)
        .or_else(|| name.parse().ok().and_then(crate::userdb::user_by_uid))?;
    Some(Who {
        groups: crate::userdb::groups(&account),
        current: account.uid == rustix::process::geteuid().as_raw(),
        name: account.name,
        uid: account.uid,
    })
}

/// Whether the mode bits let `who` do `want` (bits of rwx: 4, 2, 1) on a file owned by
/// `uid:gid` with permission bits `mode`. Root may do anything.
pub fn mode_allows(who: &Who, uid: u32, gid: u32, mode: u32, want: u32) -> bool {
    if who.uid == 0 {
        return true;
    }
    let bits = if who.uid == uid {
        mode >> 6
    } else if who.groups.contains(&gid) {
        mode >> 3
    } else {
        mode
    } & 7;
    bits & want == want
}

/// `owner root, mode 0755`
fn owner_mode(p: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(p) {
        Ok(m) => format!(
            "owner {}, mode {:04o}",
            name_of_uid(m.uid()),
            m.mode() & 0o7777
        ),
        Err(e) => e.to_string(),
    }
}

/// Why `who` cannot do `want` (4 read, 2 write, 1 search/exec) on the existing `p`, or `None`.
pub fn denied(who: &Who, p: &Path, want: u32) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let allowed = |p: &Path, want: u32| -> bool {
        if who.current {
            let mut a = rustix::fs::Access::empty();
            if want & 4 != 0 {
                a |= rustix::fs::Access::READ_OK;
            }
            if want & 2 != 0 {
                a |= rustix::fs::Access::WRITE_OK;
            }
            if want & 1 != 0 {
                a |= rustix::fs::Access::EXEC_OK;
            }
            rustix::fs::access(p, a).is_ok()
        } else {
            std::fs::metadata(p).is_ok_and(|m| mode_allows(who, m.uid(), m.gid(), m.mode(), want))
        }
    };
    let mut ancestors: Vec<&Path> = p.ancestors().skip(1).collect();
    ancestors.reverse();
    for a in ancestors {
        if !allowed(a, 1) {
            return Some(format!("cannot enter {} ({})", a.display(), owner_mode(a)));
        }
    }
    if allowed(p, want) {
        None
    } else {
        Some(owner_mode(p))
    }
}

/// The nearest folder of `p` (itself included) that exists.
fn nearest_existing(p: &Path) -> &Path {
    p.ancestors().find(|a| a.exists()).unwrap_or(Path::new("/"))
}

/// What `who` lacks to run nonstop's writes: (problems, notes). A file nonstop replaces must be
/// writable (or creatable); a writable file in a folder `who` cannot create files in is written
/// in place (a note); state_dir and workdir/{releases,logs,run} must take new files (or be
/// creatable), and the lock and log files there, when they exist, must be writable.
pub fn write_problems(cfg: &Config, who: &Who) -> (Vec<String>, Vec<String>) {
    let mut problems = vec![];
    let mut notes = vec![];
    let u = &who.name;
    // nftables mode never writes nginx's files: the table steers the front port.
    let mut files: Vec<(&str, &Path)> = vec![];
    if cfg.traffic.via == crate::traffic::Via::NginxReload {
        files.push(("the include", cfg.nginx.include.as_path()));
        if let Some(up) = &cfg.nginx.upstream_file {
            files.push(("the upstream file", up.as_path()));
        }
    }
    for (what, f) in files {
        let dir = f.parent().unwrap_or(Path::new("/"));
        if f.exists() {
            if let Some(why) = denied(who, f, 2) {
                problems.push(format!("{u} cannot write {what} {} ({why})", f.display()));
            } else if let Some(why) = denied(who, dir, 3) {
                notes.push(format!(
                    "{what} is rewritten in place: {u} cannot create files in {} ({why})",
                    dir.display()
                ));
            }
        } else {
            let at = nearest_existing(dir);
            if let Some(why) = denied(who, at, 3) {
                problems.push(format!(
                    "{u} cannot create {what} {} (in {}: {why})",
                    f.display(),
                    at.display()
                ));
            }
        }
    }
    let w = &cfg.app.workdir;
    let dirs = [
        ("state_dir", cfg.state_dir.clone()),
        ("workdir/releases", w.join("releases")),
        ("workdir/logs", w.join("logs")),
        ("workdir/run", w.join("run")),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (what, d) in &dirs {
        let at = nearest_existing(d);
        if !seen.insert(at.to_path_buf()) {
            continue;
        }
        if let Some(why) = denied(who, at, 3) {
            problems.push(if at == d.as_path() {
                format!("{u} cannot create files in {what} {} ({why})", d.display())
            } else {
                format!(
                    "{u} cannot create {what} {} (in {}: {why})",
                    d.display(),
                    at.display()
                )
            });
        }
    }
    let mut existing = vec![cfg.state_dir.join("lock")];
    if let Ok(rd) = std::fs::read_dir(w.join("logs")) {
        existing.extend(
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log")),
        );
    }
    for f in existing.iter().filter(|f| f.is_file()) {
        if let Some(why) = denied(who, f, 2) {
            problems.push(format!("{u} cannot write {} ({why})", f.display()));
        }
    }
    (problems, notes)
}

/// The hooks' `runas` users (else this process's user) can do nonstop's writes.
pub(super) fn write_check(cfg: &Config, hooks: Option<&[Hook]>) -> Check {
    const NAME: CheckId = CheckId::WriteAccess;
    let runas: std::collections::BTreeSet<&str> = hooks
        .unwrap_or_default()
        .iter()
        .filter(|h| Stage::of_name(&binary_of(h)).is_some() || binary_of(h) == "nonstop")
        .filter_map(|h| h.runas.as_deref())
        .collect();
    let mut users = vec![];
    let mut unknown = vec![];
    if runas.is_empty() {
        let uid = rustix::process::geteuid().as_raw();
        let mut who = lookup_user(&uid.to_string()).unwrap_or(Who {
            name: format!("uid {uid}"),
            uid,
            groups: vec![rustix::process::getegid().as_raw()],
            current: true,
        });
        who.current = true;
        users.push((who, "this user: no runas in appspec.yml"));
    } else {
        for name in &runas {
            match lookup_user(name) {
                Some(w) => users.push((w, "runas in appspec.yml")),
                None => unknown.push(*name),
            }
        }
    }
    let mut problems = vec![];
    let mut notes = vec![];
    let mut who_ok = vec![];
    for (who, why) in &users {
        let (p, n) = write_problems(cfg, who);
        if p.is_empty() {
            who_ok.push(format!("{} ({why})", who.name));
        }
        problems.extend(p);
        notes.extend(n);
    }
    let what = if cfg.traffic.via == crate::traffic::Via::Nftables {
        "what it must (nftables mode: no nginx file)"
    } else if cfg.balanced() {
        "the include and the upstream file"
    } else {
        "the include"
    };
    if !problems.is_empty() {
        return check(Verdict::Fail, NAME, problems.join("; "));
    }
    if !unknown.is_empty() {
        return check(
            Verdict::Warn,
            NAME,
            format!(
                "runas {} is no user on this host: cannot check what it may write{}",
                unknown.join(", "),
                if who_ok.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; {} can write {what}, state_dir and workdir",
                        who_ok.join(", ")
                    )
                }
            ),
        );
    }
    let mut line = format!(
        "{} can write {what} and create files in state_dir and workdir",
        who_ok.join(", ")
    );
    for n in notes {
        line += &format!("; note: {n}");
    }
    check(Verdict::Ok, NAME, line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_bits_decide_for_another_user() {
        let who = Who {
            name: "ec2-user".into(),
            uid: 1000,
            groups: vec![1000, 4],
            current: false,
        };
        // A root-owned folder, 0755: ec2-user may enter it, not create files in it.
        assert!(mode_allows(&who, 0, 0, 0o755, 1));
        assert!(!mode_allows(&who, 0, 0, 0o755, 3));
        // Its own file, 0644: writable. A group-writable file of group 4: writable.
        assert!(mode_allows(&who, 1000, 1000, 0o644, 2));
        assert!(mode_allows(&who, 0, 4, 0o664, 2));
        assert!(!mode_allows(&who, 0, 5, 0o664, 2));
        // The owner's bits count for the owner, even when "other" could.
        assert!(!mode_allows(&who, 1000, 0, 0o077, 2));
        let root = Who {
            uid: 0,
            ..who.clone()
        };
        assert!(mode_allows(&root, 5, 5, 0o000, 3));
        // A read-only folder by its bits: nobody gets no write; as seen through denied().
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o555),
        )
        .unwrap();
        let nobody = Who {
            name: "nobody".into(),
            uid: 65534,
            groups: vec![65534],
            current: false,
        };
        let why = denied(&nobody, dir.path(), 3).expect("no write for nobody");
        assert!(
            why.contains("mode 0555") || why.contains("cannot enter"),
            "{why}"
        );
    }
}

//! The host's users and groups, read through the platform's user database (NSS:
//! `getpwnam_r`, `getpwuid_r`, `getgrnam_r`, `getgrouplist`, by way of the `nix` crate), so a
//! user from LDAP or SSSD counts as one from /etc/passwd does. The one reader of the crate:
//! `setup`'s hook user, the supervisor's `app.user`/`app.group`, `validate`'s `runas` users.
//! A failed lookup counts as no such user or group.

use nix::unistd::{Gid, Group, Uid, User};

/// A user's name and ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    /// The primary group.
    pub gid: u32,
}

impl From<User> for Account {
    fn from(u: User) -> Self {
        Account {
            name: u.name,
            uid: u.uid.as_raw(),
            gid: u.gid.as_raw(),
        }
    }
}

/// The user called `name`.
pub fn user(name: &str) -> Option<Account> {
    if name.is_empty() || name.contains('\0') {
        return None;
    }
    User::from_name(name).ok().flatten().map(Account::from)
}

/// The user whose uid is `uid`.
pub fn user_by_uid(uid: u32) -> Option<Account> {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(Account::from)
}

/// The id of the group called `name`.
pub fn group_id(name: &str) -> Option<u32> {
    if name.is_empty() || name.contains('\0') {
        return None;
    }
    Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

/// `who`'s groups: the primary one first, then the groups that list it as a member.
pub fn groups(who: &Account) -> Vec<u32> {
    let mut out = vec![who.gid];
    if let Ok(name) = std::ffi::CString::new(who.name.as_str()) {
        if let Ok(all) = nix::unistd::getgrouplist(&name, Gid::from_raw(who.gid)) {
            for g in all.into_iter().map(Gid::as_raw) {
                if !out.contains(&g) {
                    out.push(g);
                }
            }
        }
    }
    out
}

/// The name of the user this process runs as (its effective uid).
pub fn current_name() -> Option<String> {
    user_by_uid(rustix::process::geteuid().as_raw()).map(|a| a.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_root_and_nobody_and_knows_no_stranger() {
        let root = user("root").expect("root is a user");
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(user_by_uid(0).map(|a| a.name).as_deref(), Some("root"));
        assert_eq!(groups(&root)[0], 0);
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(user("no-such-user-of-nonstop"), None);
        assert_eq!(group_id("no-such-group-of-nonstop"), None);
        assert_eq!(user(""), None);
        assert_eq!(user("a\0b"), None);
        // This process's own user is in the database (as the hooks' user must be).
        let me = rustix::process::geteuid().as_raw();
        assert_eq!(user_by_uid(me).map(|a| a.uid), Some(me));
        assert!(current_name().is_some());
    }
}

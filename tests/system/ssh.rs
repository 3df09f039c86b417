//! The ssh side of the ssh deploy flow, as a Jenkins agent runs it: a key pair made for one test,
//! its public half in ec2-user's `~/.ssh/authorized_keys` on the host with sshd set to key-only
//! login, and `ssh` / `scp` from this machine with `BatchMode=yes` (no password prompt, no TTY)
//! and a known_hosts of the test's own (`StrictHostKeyChecking=accept-new`, as
//! `templates/Jenkinsfile.ssh` has it). Nothing here reads this machine's ~/.ssh.

use crate::host::{Host, Out};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Logging in as `user` on a host with the test's key.
pub struct Ssh {
    dir: tempfile::TempDir,
    target: String,
}

impl Ssh {
    /// Make a key, authorize it for `user` on `host`, switch sshd to key-only login, and prove
    /// both: the key logs in, a password login is not even offered.
    pub fn key_only(host: &Host, user: &str) -> Ssh {
        let dir = tempfile::Builder::new()
            .prefix("nonstop-system-ssh-")
            .tempdir()
            .unwrap();
        let key = dir.path().join("id_ed25519");
        let st = Command::new("ssh-keygen")
            .args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "nonstop-system-test",
                "-f",
            ])
            .arg(&key)
            .status()
            .expect("ssh-keygen (openssh-client) runs");
        assert!(st.success(), "ssh-keygen");
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let home = host.sh_ok(&format!("getent passwd {user} | cut -d: -f6"));
        let home = home.trim();
        // As an EC2 AMI ships sshd: public keys only (cloud-init's ssh_pwauth: false).
        host.sh_ok(&format!(
            "set -e\n\
             install -d -m 0700 -o {user} -g {user} {home}/.ssh\n\
             printf '%s\\n' '{key}' > {home}/.ssh/authorized_keys\n\
             chown {user}:{user} {home}/.ssh/authorized_keys\n\
             chmod 0600 {home}/.ssh/authorized_keys\n\
             printf 'PasswordAuthentication no\\nKbdInteractiveAuthentication no\\nPermitRootLogin no\\n' \
               > /etc/ssh/sshd_config.d/10-key-only.conf\n\
             sshd -t\n\
             systemctl restart ssh\n\
             sshd -T | grep -qx 'passwordauthentication no'\n",
            key = public.trim()
        ));
        let ssh = Ssh {
            dir,
            target: format!("{user}@{}", host.ip),
        };
        let who = ssh.run("id -un");
        assert_eq!(
            (who.code, who.stdout.trim()),
            (0, user),
            "key login as {user}: {}",
            who.stderr
        );
        // Without the key: sshd offers nothing but publickey.
        let o = Command::new("ssh")
            .args(ssh.opts())
            .args(["-o", "PubkeyAuthentication=no"])
            .args([
                "-o",
                "PreferredAuthentications=password,keyboard-interactive",
            ])
            .arg(&ssh.target)
            .arg("true")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains("Permission denied (publickey)"),
            "no password login: {err}"
        );
        ssh
    }

    /// What every ssh and scp here is given: no config file of this machine, the test's key
    /// and known_hosts, no prompt, bounded connect.
    pub fn opts(&self) -> Vec<String> {
        let d = self.dir.path();
        vec![
            "-F".into(),
            "/dev/null".into(),
            "-i".into(),
            d.join("id_ed25519").to_string_lossy().into_owned(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "StrictHostKeyChecking=accept-new".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", d.join("known_hosts").display()),
            "-o".into(),
            "ConnectTimeout=10".into(),
            "-o".into(),
            "LogLevel=ERROR".into(),
        ]
    }

    /// The private key and the known_hosts file [`Ssh::run`] uses (for Ansible's inventory).
    pub fn key_and_known_hosts(&self) -> (std::path::PathBuf, std::path::PathBuf) {
        let d = self.dir.path();
        (d.join("id_ed25519"), d.join("known_hosts"))
    }

    /// `ssh USER@HOST COMMAND` (no -t: no terminal on either side); stdin closed.
    pub fn run(&self, command: &str) -> Out {
        let o = Command::new("ssh")
            .args(self.opts())
            .arg(&self.target)
            .arg(command)
            .stdin(Stdio::null())
            .output()
            .expect("ssh (openssh-client) runs");
        Out::of(o)
    }

    /// `ssh` as [`Ssh::run`], and how long it took from this machine's side.
    pub fn timed(&self, command: &str) -> (Out, Duration) {
        let t0 = Instant::now();
        let o = self.run(command);
        (o, t0.elapsed())
    }

    /// `scp LOCAL USER@HOST:REMOTE`; panics unless it exits 0.
    pub fn scp(&self, local: &Path, remote: &str) {
        let o = Command::new("scp")
            .args(self.opts())
            .arg("-q")
            .arg(local)
            .arg(format!("{}:{remote}", self.target))
            .stdin(Stdio::null())
            .output()
            .expect("scp runs");
        assert!(
            o.status.success(),
            "scp {local:?} {remote}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

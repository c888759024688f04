//! A real OpenSSH server on loopback, owned by the test: host and client keys made with
//! ssh-keygen in a temp dir, the host key pinned in a known_hosts file, killed by PID on drop.
//! (scripts/test installs openssh-server when /usr/sbin/sshd is missing.)

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::provider::free_port;

pub(crate) struct Sshd {
    child: Child,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) port: u16,
}

fn keygen(path: &std::path::Path) {
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen (apt-get install openssh-client)");
    assert!(st.success());
}

impl Sshd {
    pub(crate) fn start() -> Self {
        assert!(
            std::path::Path::new("/usr/sbin/sshd").exists(),
            "/usr/sbin/sshd is missing: run ./scripts/test (it installs openssh-server) or `apt-get install openssh-server`"
        );
        std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd (sshd needs it)");
        let dir = tempfile::Builder::new()
            .prefix("k8soidc-sshd-")
            .tempdir()
            .unwrap();
        let d = dir.path().to_path_buf();
        keygen(&d.join("host"));
        keygen(&d.join("client"));
        std::fs::copy(d.join("client.pub"), d.join("authorized_keys")).unwrap();
        // A port found free can be taken by another process before sshd binds it; then sshd
        // exits ("Address already in use") and we try another. Up is when our sshd logged that
        // it listens (a connect alone could reach someone else's listener).
        for _attempt in 0..5 {
            let port = free_port();
            let child = Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f", "/dev/null", "-p", &port.to_string(), "-h"])
                .arg(d.join("host"))
                .args(["-o", "ListenAddress=127.0.0.1", "-o"])
                .arg(format!(
                    "AuthorizedKeysFile={}",
                    d.join("authorized_keys").display()
                ))
                .args([
                    "-o",
                    "StrictModes=no",
                    "-o",
                    "PidFile=none",
                    "-o",
                    "PasswordAuthentication=no",
                    "-o",
                    "KbdInteractiveAuthentication=no",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
                .spawn()
                .expect("start sshd");
            let host_pub = std::fs::read_to_string(d.join("host.pub")).unwrap();
            std::fs::write(
                d.join("known_hosts"),
                format!("[127.0.0.1]:{port} {host_pub}"),
            )
            .unwrap();
            std::fs::write(d.join("empty_known_hosts"), "").unwrap();
            let listening = format!("Server listening on 127.0.0.1 port {port}.");
            let mut child = child;
            // Bounded: sshd reads its keys and binds in well under a second, even when busy.
            let deadline = Instant::now() + Duration::from_secs(30);
            let failed = loop {
                let log = std::fs::read_to_string(d.join("sshd.log")).unwrap_or_default();
                if log.contains(&listening) {
                    return Sshd { child, dir, port };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    if log.contains("Address already in use") {
                        break None;
                    }
                    break Some(format!("sshd exited: {log}"));
                }
                if Instant::now() > deadline {
                    break Some(format!("sshd did not listen within 30s: {log}"));
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let _ = child.kill();
            let _ = child.wait();
            if let Some(why) = failed {
                panic!("{why}");
            }
            // The port was taken meanwhile: try another.
        }
        panic!("sshd: five free ports were taken before sshd could bind them");
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `--ssh root@127.0.0.1:PORT --ssh-config FILE` for k8soidc: a generated ssh_config with
    /// the client key and `known_hosts` (a file in [`Sshd::file`]) as the only known hosts.
    pub(crate) fn args(&self, known_hosts: &str) -> Vec<String> {
        let config = self.file(&format!("ssh_config-{known_hosts}"));
        std::fs::write(
            &config,
            format!(
                "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n  BatchMode yes\n",
                self.file("client").display(),
                self.file(known_hosts).display()
            ),
        )
        .unwrap();
        vec![
            "--ssh".into(),
            format!("root@127.0.0.1:{}", self.port),
            "--ssh-config".into(),
            config.display().to_string(),
        ]
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

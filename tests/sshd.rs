//! A real OpenSSH server on loopback, owned by the test: host and client keys made with
//! ssh-keygen in a temp dir, the host key pinned in a known_hosts file, killed by PID on drop.
//! (scripts/test installs openssh-server when /usr/sbin/sshd is missing.)

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
        let d = dir.path();
        keygen(&d.join("host"));
        keygen(&d.join("client"));
        std::fs::copy(d.join("client.pub"), d.join("authorized_keys")).unwrap();
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
        let mut s = Sshd { child, dir, port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = s.child.kill();
        panic!(
            "sshd did not listen within 5s: {}",
            std::fs::read_to_string(s.dir.path().join("sshd.log")).unwrap_or_default()
        );
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `--ssh … --ssh-identity … --ssh-option …` for k8soidc, pinned to `known_hosts`.
    pub(crate) fn args(&self, known_hosts: &str) -> Vec<String> {
        vec![
            "--ssh".into(),
            format!("root@127.0.0.1:{}", self.port),
            "--ssh-identity".into(),
            self.file("client").display().to_string(),
            "--ssh-option".into(),
            format!("UserKnownHostsFile={}", self.file(known_hosts).display()),
            "--ssh-option".into(),
            "GlobalKnownHostsFile=/dev/null".into(),
            "--ssh-option".into(),
            "IdentitiesOnly=yes".into(),
        ]
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

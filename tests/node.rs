//! Test nodes: a real sshd on 127.A.B.N in private mount and PID namespaces with a fake
//! kubelet and kube-apiserver (`scripts/test-node`, `tests/fakes/node/`). Each test picks its
//! own N; A.B is this test process's own address block (see `block`), so test runs that share
//! the machine (other checkouts, CI jobs) never listen on each other's addresses. Everything
//! dies with the `Node` (SIGKILL of the namespace's parent, which takes the namespace's PID 1
//! and so every process in it), or with the test process if that dies first (`setpriv
//! --pdeathsig KILL`). The host's own /etc/kubernetes and friends are never touched:
//! every node directory is a private tmpfs.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::test::{fixture, Test};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

fn must(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A kubeadm manifest from the fixtures, with its address changed to the node's.
pub(crate) fn kubeadm_manifest(addr: &str) -> String {
    fixture("apiserver-manifests/034-austintalbot-v1.32.2-cks.yaml").replace("192.168.97.4", addr)
}

/// The test nodes' address block, `127.0.0.N` (node N is 2..=254), claimed for the life of
/// the process by listening on 127.0.0.1:20000 (the kernel releases it however the process
/// ends). Test nodes share the host's network namespace, so two test runs on one machine would
/// take over each other's nodes (an sshd fails to bind, the test talks to the other run's node,
/// "REMOTE HOST IDENTIFICATION HAS CHANGED"); the claim makes a second run fail at once with a
/// clear message instead. Several tests seed files that name their node's 127.0.0.N address.
fn block() -> (u8, u8) {
    static BLOCK: std::sync::OnceLock<std::net::TcpListener> = std::sync::OnceLock::new();
    BLOCK.get_or_init(|| {
        std::net::TcpListener::bind(("127.0.0.1", 20000)).unwrap_or_else(|e| {
            panic!("the test node addresses 127.0.0.N are in use ({e}): another k8soidc test run is going on on this machine; run one at a time")
        })
    });
    (0, 0)
}

/// The address of node N in this process's block.
fn node_addr(n: u8) -> String {
    let (a, b) = block();
    format!("127.{a}.{b}.{n}")
}

/// The automatic node numbers: 2..=169 (170–219 are reserved for explicit `Node::on(n)`
/// numbers of other test files, 220–254 for engineers' and machines' own use), without
/// [`UNREACHABLE`].
const AUTO: std::ops::RangeInclusive<u8> = 2..=169;

/// Numbers tests use as addresses without a `Node` (151: nothing listens, a `cannot connect`
/// case; 140: `patch --local` in a private namespace): never given out.
const UNREACHABLE: [u8; 2] = [140, 151];

/// The next automatic number: a process-wide counter over [`AUTO`] that skips
/// [`UNREACHABLE`] and wraps around (nodes run one test at a time and stop when dropped, so a
/// number reused after a wrap is free again).
fn next_number() -> u8 {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let free: Vec<u8> = AUTO.filter(|n| !UNREACHABLE.contains(n)).collect();
    free[NEXT.fetch_add(1, Ordering::Relaxed) % free.len()]
}

pub(crate) struct NodeBuilder {
    shared: bool,
    turn: Option<std::sync::MutexGuard<'static, ()>>,
    n: u8,
    files: Vec<(String, String, u32)>,
    env: Vec<(String, String)>,
}

/// Nodes run one test at a time, to keep the load of two Python fakes per node off the other
/// test thread. (It was added for API servers "refusing connections for 20 s while running";
/// that was the health check finding its own `sh` process, fixed in src/exec/scripts.rs, and
/// other test runs on the machine using the same addresses, fixed by `block`.)
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub(crate) struct Node {
    _turn: Option<std::sync::MutexGuard<'static, ()>>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) addr: String,
    pub(crate) port: u16,
    child: Child,
}

impl NodeBuilder {
    /// Seeds a file on the node (absolute path under one of the node's private dirs).
    pub(crate) fn file(mut self, path: &str, content: &str, mode: u32) -> Self {
        self.files.push((path.into(), content.into(), mode));
        self
    }

    /// The address the node will listen on (`127.0.0.N`), for files seeded before `start`.
    pub(crate) fn addr(&self) -> String {
        node_addr(self.n)
    }

    /// A kubeadm control plane (manifest mode 0600 as kubeadm writes it).
    pub(crate) fn kubeadm(self) -> Self {
        let m = kubeadm_manifest(&node_addr(self.n));
        self.file("/etc/kubernetes/manifests/kube-apiserver.yaml", &m, 0o600)
    }

    pub(crate) fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Shares the turn of a node started earlier in the same test (several-host tests).
    pub(crate) fn with_others(mut self) -> Self {
        self.shared = true;
        self
    }

    pub(crate) fn start(mut self) -> Node {
        if !self.shared {
            self.turn = Some(ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner()));
        }
        assert!(
            (2..=254).contains(&self.n),
            "node numbers are 2..=254 (127.0.0.1 is the machine's own address)"
        );
        let addr = node_addr(self.n);
        let port = 20000 + u16::from(self.n);
        let dir = tempfile::Builder::new()
            .prefix("k8n")
            .tempdir_in("/tmp")
            .expect("node dir");
        let d = dir.path();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
        for (key, file) in [("hostkey", "hostkey"), ("client", "client")] {
            let _ = key;
            must(
                Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", "k8soidc-test", "-f"])
                    .arg(d.join(file)),
            );
        }
        std::fs::copy(d.join("client.pub"), d.join("authorized_keys")).unwrap();
        std::fs::set_permissions(
            d.join("authorized_keys"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        must(
            Command::new("openssl")
                .args([
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=kube-apiserver",
                ])
                .arg("-keyout")
                .arg(d.join("tls.key"))
                .arg("-out")
                .arg(d.join("tls.crt"))
                .arg("-addext")
                .arg(format!("subjectAltName=IP:{addr}"))
                .stderr(Stdio::null()),
        );
        let hostkey = std::fs::read_to_string(d.join("hostkey.pub")).unwrap();
        std::fs::write(d.join("known_hosts"), format!("[{addr}]:{port} {hostkey}")).unwrap();
        std::fs::write(
            d.join("ssh_config"),
            format!(
                "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  BatchMode yes\n  LogLevel ERROR\n",
                d.join("client").display(),
                d.join("known_hosts").display()
            ),
        )
        .unwrap();
        for (path, content, mode) in &self.files {
            let p = d.join("seed").join(path.trim_start_matches('/'));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, content).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(*mode)).unwrap();
        }
        // `setpriv --pdeathsig KILL` (util-linux): if this test process dies without dropping
        // the Node (an abort, SIGKILL), the node gets SIGKILL too, and with it its namespace;
        // nothing is left running. Nodes are made and dropped on their test's own thread.
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "KILL"])
            .arg(root().join("scripts/test-node"))
            .arg(d)
            .arg(&addr)
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                std::fs::File::create(d.join("node.log")).unwrap(),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(d.join("node.err")).unwrap(),
            ));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .expect("setpriv scripts/test-node (needs root, util-linux, sshd)");
        let seeded_apiserver = self
            .files
            .iter()
            .any(|(p, _, _)| p.ends_with("kube-apiserver.yaml"));
        let mut node = Node {
            _turn: self.turn.take(),
            dir,
            addr,
            port,
            child,
        };
        node.wait_port(port, "sshd");
        if seeded_apiserver {
            node.wait_port(6443, "the fake kube-apiserver");
        }
        node
    }
}

impl Node {
    /// A node on 127.A.B.N (N unique per test, A.B this process's block), sshd on port 20000+N.
    /// A node with the next free number of the automatic range ([`AUTO`]): tests need not
    /// pick numbers. The number is taken when this is called, so `addr()` can be seeded into
    /// files before `start`.
    pub(crate) fn next() -> NodeBuilder {
        Node::on(next_number())
    }

    /// A node with an explicit number (ranges 170–219 are reserved for tests that name their
    /// numbers; prefer [`Node::next`]).
    pub(crate) fn on(n: u8) -> NodeBuilder {
        NodeBuilder {
            shared: false,
            turn: None,
            n,
            files: vec![],
            env: vec![],
        }
    }

    /// Waits until the node's own sshd logged that it listens (a connect alone could reach
    /// another process's listener) and, for `port` 6443, until the API server accepts; fails
    /// at once when the node exited. Bounded: 30 s, as two Python interpreters (kubelet, then
    /// API server) start one after the other on a busy two-core machine.
    fn wait_port(&mut self, port: u16, what: &str) {
        let sa: SocketAddr = format!("{}:{port}", self.addr).parse().unwrap();
        let listening = format!("Server listening on {} port {port}.", self.addr);
        let limit = Duration::from_secs(30);
        let deadline = Instant::now() + limit;
        let mut why = String::from("timed out");
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                why = format!("the node exited ({st})");
                break;
            }
            let up = if port == self.port {
                std::fs::read_to_string(self.dir.path().join("node.err"))
                    .unwrap_or_default()
                    .contains(&listening)
            } else {
                TcpStream::connect_timeout(&sa, Duration::from_millis(200)).is_ok()
            };
            if up {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{what} on {sa} did not come up within {limit:?} ({why}); node log:\n{}\n{}",
            std::fs::read_to_string(self.dir.path().join("node.err")).unwrap_or_default(),
            std::fs::read_to_string(self.dir.path().join("kubelet.log")).unwrap_or_default()
        );
    }

    pub(crate) fn target(&self) -> String {
        format!("root@{}:{}", self.addr, self.port)
    }

    pub(crate) fn ssh_config(&self) -> String {
        self.dir.path().join("ssh_config").display().to_string()
    }

    /// `k8soidc patch --ssh root@node --ssh-config …` as a Test.
    pub(crate) fn k8soidc(&self, subcommand: &str) -> Test {
        Test::new().args([
            subcommand,
            "--ssh",
            &self.target(),
            "--ssh-config",
            &self.ssh_config(),
        ])
    }

    /// The same as another user of the node.
    pub(crate) fn k8soidc_as(&self, user: &str, subcommand: &str) -> Test {
        let target = format!("{user}@{}:{}", self.addr, self.port);
        Test::new().args([
            subcommand,
            "--ssh",
            &target,
            "--ssh-config",
            &self.ssh_config(),
        ])
    }

    /// Runs a shell command on the node as root (system ssh, strict host key); its stdout.
    pub(crate) fn sh(&self, script: &str) -> String {
        // Bounded like every wait in the tests: a node that stops answering fails the test.
        let out = Command::new("timeout")
            .args([
                "60",
                "ssh",
                "-F",
                &self.ssh_config(),
                "-p",
                &self.port.to_string(),
            ])
            .arg(format!("root@{}", self.addr))
            .arg(script)
            .stdin(Stdio::null())
            .output()
            .expect("ssh");
        assert!(
            out.status.success(),
            "ssh {script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A file's content on the node (None: absent).
    pub(crate) fn read(&self, path: &str) -> Option<String> {
        let out = self.sh(&format!(
            "if [ -f {path} ]; then echo present; cat {path}; else echo absent; fi"
        ));
        out.strip_prefix("present\n").map(str::to_string)
    }

    /// Path, mode and checksum of every file k8soidc could touch: the before/after fingerprint
    /// (k8soidc's own empty lock file aside).
    pub(crate) fn fingerprint(&self) -> String {
        self.sh("cd / && find etc/kubernetes var/lib/k8soidc var/snap/microk8s etc/rancher etc/k0s -type f ! -path var/lib/k8soidc/lock -printf '%p %m ' -exec sha256sum {} \\; 2>/dev/null | sort")
    }

    pub(crate) fn set_never_ready(&self, needle: &str) {
        std::fs::write(self.dir.path().join("never-ready"), needle).unwrap();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.dir.path().join("kubelet.log")).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(12).collect();
            eprintln!("--- fake kubelet on {} (last lines) ---", self.addr);
            for l in tail.iter().rev() {
                eprintln!("{}", l.chars().take(300).collect::<String>());
            }
            if let Ok(ps) = std::process::Command::new("timeout").args(["30", "ssh", "-F", &self.ssh_config(), "-p", &self.port.to_string()]).arg(format!("root@{}", self.addr)).arg(format!("ps -eo pid,stat,etime,args | cut -c1-150; tail -n5 /var/log/pods/*/*/*.log; ss -ltnp | grep 6443; curl -sSk --max-time 5 https://{}:6443/readyz", self.addr)).output() {
                eprintln!("{}", String::from_utf8_lossy(&ps.stdout));
            }
        }
        if std::thread::panicking() {
            let trace =
                std::fs::read_to_string(self.dir.path().join("trace.log")).unwrap_or_default();
            let tail: Vec<&str> = trace.lines().rev().take(80).collect();
            eprintln!("--- trace on {} ---", self.addr);
            for l in tail.iter().rev() {
                eprintln!("{}", l.chars().take(300).collect::<String>());
            }
            if let Ok(o) = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "ss -tanp | grep -F '{a}:'; ps -eo pid,ppid,stat,etime,args | grep -F '{a}' | cut -c1-200",
                    a = self.addr
                ))
                .output()
            {
                eprintln!("--- host view ---\n{}", String::from_utf8_lossy(&o.stdout));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Issue 11: automatic numbers stay in their range, skip the numbers tests use without a node,
/// and run through the whole range before one comes again.
#[test]
fn automatic_node_numbers_avoid_reserved_ranges() {
    let free = AUTO.filter(|n| !UNREACHABLE.contains(n)).count();
    let taken: Vec<u8> = (0..free).map(|_| next_number()).collect();
    assert!(taken
        .iter()
        .all(|n| AUTO.contains(n) && !UNREACHABLE.contains(n) && !(170..=254).contains(n)));
    let mut distinct = taken.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), free, "{taken:?}");
}

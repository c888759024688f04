//! The `Test` builder: a temp dir as HOME and working directory, fake programs on PATH that
//! log their argv, and assertions on exit status, stdout, stderr and files.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Directory with the fake programs (bash scripts), see each file's header for its rules.
pub(crate) fn fakes_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fakes")
}

/// The article's settings with `oidc:` prefixes, as most tests use them.
pub(crate) const SETTINGS: [&str; 12] = [
    "--issuer-url",
    "https://idp.example.com",
    "--client-id",
    "kubernetes",
    "--username-claim",
    "email",
    "--username-prefix",
    "oidc:",
    "--groups-claim",
    "groups",
    "--groups-prefix",
    "oidc:",
];

/// The repository's real-file fixtures, `tests/data/fixtures` (each file's origin is in its
/// SOURCES): tests, demos and scripts need nothing outside the repository.
pub(crate) fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fixtures")
}

/// A fixture file's content (`rel` below [`fixtures`]); panics naming the path when missing.
pub(crate) fn fixture(rel: &str) -> String {
    let p = fixtures().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub(crate) struct Test {
    pub(crate) dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<String>,
    limit: std::time::Duration,
}

pub(crate) struct Output {
    pub(crate) status: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) root: PathBuf,
}

impl Test {
    pub(crate) fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("k8soidc-test-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir_all(dir.path().join("bin")).expect("bin dir");
        Test {
            dir,
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            limit: RUN_LIMIT,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    pub(crate) fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    #[allow(dead_code)] // for commands that read a token or YAML from stdin
    pub(crate) fn stdin(mut self, text: &str) -> Self {
        self.stdin = Some(text.to_string());
        self
    }

    /// Kills the run (and fails the test) after `limit` instead of [`RUN_LIMIT`]: for inputs
    /// that once made k8soidc read or parse without end.
    pub(crate) fn time_limit(mut self, limit: std::time::Duration) -> Self {
        self.limit = limit;
        self
    }

    pub(crate) fn write(self, rel: &str, content: &str) -> Self {
        let p = self.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
        self
    }

    /// Installs `tests/fakes/<name>` as `<name>` on PATH.
    pub(crate) fn fake(self, name: &str) -> Self {
        let dest = self.path().join("bin").join(name);
        std::fs::copy(fakes_dir().join(name), &dest).unwrap_or_else(|e| panic!("fake {name}: {e}"));
        let lib = self.path().join("bin/fakelib.py");
        if !lib.exists() {
            std::fs::copy(fakes_dir().join("fakelib.py"), lib).expect("fakelib.py");
        }
        self
    }

    /// Installs `tests/fakes/<file>` as `<name>` on PATH (e.g. `kubectl-capi` as `kubectl`).
    pub(crate) fn fake_as(self, file: &str, name: &str) -> Self {
        let t = self.fake(file);
        std::fs::rename(
            t.path().join("bin").join(file),
            t.path().join("bin").join(name),
        )
        .unwrap_or_else(|e| panic!("fake {file} as {name}: {e}"));
        t
    }

    /// Starts k8soidc in its own process group (as a shell starts a job: a terminal's Ctrl-C
    /// is [`Running::signal_group`]) and returns at once.
    pub(crate) fn spawn(self) -> Running {
        use std::os::unix::process::CommandExt;
        let mut cmd = self.command();
        cmd.process_group(0);
        let child = cmd.spawn().expect("spawn k8soidc");
        Running {
            test: Some(self),
            child: Some(child),
        }
    }

    pub(crate) fn run(self) -> Output {
        let mut child = self.command().spawn().expect("spawn k8soidc");
        if let Some(text) = &self.stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        self.finish(child)
    }

    fn finish(self, child: std::process::Child) -> Output {
        let root = self.path().to_path_buf();
        let out = wait_bounded(child, &self.args, self.limit);
        // Keep the dir alive until the output is checked.
        let _keep = self.dir.keep();
        Output {
            status: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            root,
        }
    }

    fn command(&self) -> Command {
        let root = self.path().to_path_buf();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_k8soidc"));
        cmd.args(&self.args)
            .current_dir(&root)
            .env_clear()
            .env(
                "PATH",
                format!("{}:/usr/bin:/bin", root.join("bin").display()),
            )
            .env("HOME", &root)
            .env("XDG_DATA_HOME", root.join("data"))
            .env("FAKE_LOG", root.join("fake.log"))
            .env("FAKE_STATE", root.join("fake-state"))
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }
}

/// A k8soidc started by [`Test::spawn`]: signal it, then wait for its [`Output`] (bounded as
/// [`Test::run`] is).
pub(crate) struct Running {
    test: Option<Test>,
    child: Option<std::process::Child>,
}

impl Drop for Running {
    /// A test that failed before [`Running::wait`] leaves nothing running: SIGKILL by PID.
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Running {
    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, std::process::Child::id)
    }

    /// `kill -s SIG PID`: the process alone (as `kill`, systemd or a CI runner send it).
    pub(crate) fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args(["-s", sig, &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(ok.success(), "kill -s {sig} {}", self.pid());
    }

    /// `kill -s SIG -PID`: the whole process group, as a terminal sends Ctrl-C (SIGINT) to its
    /// foreground job: k8soidc and every `ssh` it started.
    pub(crate) fn signal_group(&self, sig: &str) {
        let ok = Command::new("kill")
            .args(["-s", sig, "--", &format!("-{}", self.pid())])
            .status()
            .expect("kill");
        assert!(ok.success(), "kill -s {sig} -{}", self.pid());
    }

    pub(crate) fn wait(mut self) -> Output {
        let (Some(test), Some(child)) = (self.test.take(), self.child.take()) else {
            unreachable!("waited once")
        };
        test.finish(child)
    }
}

/// How long one k8soidc run may take. The longest runs are SSH patches that wait for an API
/// server (up to their `--timeout`, 20 s in the tests), roll back and wait again; five
/// minutes is far beyond that even on a busy machine, and a hang fails instead of blocking
/// the suite forever.
const RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(300);

/// `wait_with_output` with a bound: reads stdout and stderr on threads, kills the process (by
/// PID) when it outlives `limit`.
fn wait_bounded(
    mut child: std::process::Child,
    args: &[String],
    limit: std::time::Duration,
) -> std::process::Output {
    use std::io::Read;
    fn drain(r: Option<impl Read + Send + 'static>) -> std::sync::mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = std::sync::mpsc::channel();
        if let Some(mut r) = r {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                let _ = tx.send(buf);
            });
        } else {
            let _ = tx.send(Vec::new());
        }
        rx
    }
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        match child.try_wait().expect("wait k8soidc") {
            Some(st) => break st,
            None if std::time::Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("k8soidc {args:?} still running after {limit:?}: killed");
            }
            None => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    };
    // The process has exited; its pipes close unless a program it started still holds them,
    // which would be a bug worth failing on rather than waiting for.
    let take = |rx: std::sync::mpsc::Receiver<Vec<u8>>, what: &str| {
        rx.recv_timeout(std::time::Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("k8soidc {args:?} exited but its {what} stayed open: a program it started still holds it"))
    };
    std::process::Output {
        status,
        stdout: take(stdout, "stdout"),
        stderr: take(stderr, "stderr"),
    }
}

impl Output {
    #[track_caller]
    pub(crate) fn success(self) -> Self {
        assert_eq!(
            self.status, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub(crate) fn status(self, code: i32) -> Self {
        assert_eq!(
            self.status, code,
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Every invocation of a fake program: its name then its argv.
    pub(crate) fn calls(&self) -> Vec<Vec<String>> {
        match std::fs::read_to_string(self.root.join("fake.log")) {
            Err(_) => vec![],
            Ok(text) => text
                .split('\u{1e}')
                .filter(|c| !c.is_empty())
                .map(|c| {
                    c.strip_suffix('\u{1f}')
                        .unwrap_or(c)
                        .split('\u{1f}')
                        .map(str::to_string)
                        .collect()
                })
                .collect(),
        }
    }

    pub(crate) fn file(&self, rel: &str) -> String {
        std::fs::read_to_string(self.root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

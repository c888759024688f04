//! One SSH connection per host through the system `ssh` (openssh crate: the master is an
//! `ssh -M` process; channels are opened on its control socket by this binary with the
//! default `native-mux` feature, by an `ssh -S` process each without it), so `~/.ssh/config`,
//! the agent and ProxyJump work as in a terminal. Host keys are checked strictly unless the
//! user opted in to accepting a new one. Remote commands are argv: every
//! word goes through the crate's `arg()` (shell-escaped for the remote login shell), scripts
//! are `sh -c SCRIPT k8soidc ARG...`, file contents go on stdin. Non-root users get `sudo -n`,
//! checked once right after connecting.
//!
//! The connection's master (`ssh -M`, started by the crate, in its own session) lives as long
//! as this run needs it and ends shortly after, however the run ends (issue 13, point 5): it is
//! started with `ControlPersist=10s` (it exits 10 s after its last client leaves) and this run
//! keeps one multiplexing client connected for the whole connection: a socket of this process
//! connected to the master's control socket (no process, no session on the node). When k8soidc
//! ends, even by SIGKILL, the kernel closes that socket, and 10 s after the node's last command
//! the master ends. The
//! crate's control directories (`.ssh-connection*`) are made in a directory of this user's
//! own, `$TMPDIR/k8soidc-UID`, where the ones a killed run left (no live master) are removed
//! by the next run.

use std::path::PathBuf;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openssh::{ControlPersist, KnownHosts, Session, SessionBuilder, Stdio};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use backends::node::NodeStep;

use crate::cli::SshArgs;
use crate::error::{Error, LostState};

/// `[USER@]HOST[:PORT]` as given to `--ssh` (IPv6 in brackets: `[::1]:22`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostSpec {
    pub(crate) user: Option<String>,
    pub(crate) host: String,
    pub(crate) port: Option<u16>,
    /// As typed, for messages.
    pub(crate) label: String,
}

impl HostSpec {
    pub(crate) fn parse(text: &str) -> Result<Self, Error> {
        let bad = |why: &str| {
            Error::Input(format!(
                "invalid --ssh `{}`: {why}; use [USER@]HOST[:PORT], e.g. `--ssh admin@cp1.example.com:2222`",
                backends::escape(text)
            ))
        };
        let (user, rest) = match text.rsplit_once('@') {
            Some((u, r)) => (Some(u.to_string()), r),
            None => (None, text),
        };
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, tail) = r.split_once(']').ok_or_else(|| bad("unclosed `[`"))?;
            let port = match tail.strip_prefix(':') {
                Some(p) => Some(p),
                None if tail.is_empty() => None,
                None => return Err(bad("unexpected text after `]`")),
            };
            (h.to_string(), port)
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p > 0)
                    .ok_or_else(|| bad("the port is not a number from 1 to 65535"))
            })
            .transpose()?;
        let ok_word = |w: &str| {
            !w.is_empty()
                && !w.starts_with('-')
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._:%".contains(c))
        };
        if !ok_word(&host) {
            return Err(bad(
                "the host is empty or has characters a host name cannot have",
            ));
        }
        if let Some(u) = &user {
            if !ok_word(u) || u.contains(':') {
                return Err(bad(
                    "the user name is empty or has characters a user name cannot have",
                ));
            }
        }
        Ok(HostSpec {
            user,
            host,
            port,
            label: text.to_string(),
        })
    }
}

/// How to connect.
#[derive(Debug, Clone, Default)]
pub(crate) struct SshOptions {
    pub(crate) accept_new_host_key: bool,
    pub(crate) config: Option<PathBuf>,
}

/// What a remote script printed.
pub(crate) struct Output {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// A connected host: over SSH, or this machine itself (`patch --local`), where the same
/// scripts run as `sh -c SCRIPT k8soidc ARG...` without SSH.
pub(crate) struct Remote {
    /// None: this machine.
    session: Option<Arc<Session>>,
    pub(crate) spec: HostSpec,
    sudo: bool,
    lock: Option<(LockChild, tokio::task::JoinHandle<()>)>,
    /// The multiplexing client kept for the life of the connection: what keeps the master
    /// (`ControlPersist=10s`) up between steps, and lets it end soon after this process does.
    keep: Option<std::os::unix::net::UnixStream>,
    /// `--ssh-config`, for the `k8soidc rollback` command messages name.
    ssh_config: Option<PathBuf>,
    /// Remote command executions so far (every script, the lock channel), health polls aside.
    trips: AtomicU32,
    /// Health polls run on the node so far (each wait step reports its count).
    polls: AtomicU32,
}

/// What [`Remote::begin`] found: the `K8SOIDC-FILE` records and the `K8SOIDC-NOTE` lines.
pub(crate) struct Begun {
    pub(crate) records: String,
    /// `(KEY, first error line)` of read commands that failed.
    pub(crate) notes: Vec<(String, String)>,
}

/// A started remote command with its pipes.
struct Channel {
    child: LockChild,
    stdout: Box<dyn tokio::io::AsyncRead + Unpin + Send>,
    stdin: Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
    stderr: Box<dyn tokio::io::AsyncRead + Unpin + Send>,
}

/// What a Begin step's channel printed before `K8SOIDC-READ-END` (or its end, or 120 s).
#[derive(Default)]
struct BeginReply {
    /// The read records, line by line.
    records: String,
    /// `K8SOIDC-NOTE KEY VALUE` lines.
    notes: Vec<(String, String)>,
    /// `K8SOIDC-PRIV`'s word: `root`, `sudo` or `nosudo`.
    privileged: Option<String>,
    /// `K8SOIDC-LOCKED` came.
    locked: bool,
    /// `K8SOIDC-READ-END` came.
    done: bool,
}

/// Reads a Begin step's reply from `reader`, for at most 120 s.
async fn read_begin(reader: &mut (impl tokio::io::AsyncBufRead + Unpin)) -> BeginReply {
    let mut r = BeginReply::default();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let mut line = String::new();
        let read = tokio::time::timeout_at(deadline, reader.read_line(&mut line)).await;
        match read {
            Ok(Ok(n)) if n > 0 => {}
            _ => break,
        }
        let l = line.trim_end_matches('\n');
        if let Some(p) = l.strip_prefix("K8SOIDC-PRIV ") {
            r.privileged = Some(p.trim().to_string());
        } else if l == "K8SOIDC-LOCKED" {
            r.locked = true;
        } else if l == "K8SOIDC-READ-END" {
            r.done = true;
            break;
        } else if let Some(n) = l.strip_prefix("K8SOIDC-NOTE ") {
            let (k, v) = n.split_once(' ').unwrap_or((n, ""));
            r.notes.push((k.to_string(), v.to_string()));
        } else {
            r.records.push_str(l);
            r.records.push('\n');
        }
    }
    r
}

/// The process holding the node lock.
enum LockChild {
    Ssh(openssh::Child<Arc<Session>>),
    Local(tokio::process::Child),
}

impl LockChild {
    /// Waits for it to end; its exit code.
    async fn wait(self) -> Option<i32> {
        match self {
            LockChild::Ssh(c) => c.wait().await.ok().and_then(|s| s.code()),
            LockChild::Local(mut c) => c.wait().await.ok().and_then(|s| s.code()),
        }
    }
}

fn connect_error(spec: &HostSpec, e: &openssh::Error) -> Error {
    let mut detail = format!("{e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        detail.push_str(&format!(": {s}"));
        src = s.source();
    }
    let host = &spec.label;
    let host = host.clone();
    let detail = detail.trim().replace('\n', " ");
    if detail.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        return Error::HostKeyChanged { host, detail };
    }
    if detail.contains("host key is known") || detail.contains("Host key verification failed") {
        return Error::HostKeyUnknown { host, detail };
    }
    Error::ConnectFailed { host, detail }
}

impl Remote {
    /// Connects without running anything; [`Remote::begin`] then checks privileges in the same
    /// round trip as the lock and the reads.
    pub(crate) async fn connect_only(spec: &HostSpec, opts: &SshOptions) -> Result<Remote, Error> {
        let mut b = SessionBuilder::default();
        b.known_hosts_check(if opts.accept_new_host_key {
            KnownHosts::Add
        } else {
            KnownHosts::Strict
        })
        .control_directory(control_directory())
        .control_persist(ControlPersist::IdleFor(MASTER_IDLE))
        .connect_timeout(Duration::from_secs(15))
        .server_alive_interval(Duration::from_secs(10));
        if let Some(u) = &spec.user {
            b.user(u.clone());
        }
        if let Some(p) = spec.port {
            b.port(p);
        }
        if let Some(c) = &opts.config {
            b.config_file(c);
        }
        #[cfg(not(feature = "native-mux"))]
        let session = b.connect(&spec.host).await;
        #[cfg(feature = "native-mux")]
        let session = b.connect_mux(&spec.host).await;
        let session = Arc::new(session.map_err(|e| connect_error(spec, &e))?);
        let keep = hold(&session).map_err(|e| Error::ConnectFailed {
            host: spec.label.clone(),
            detail: format!(
                "could not connect to the SSH master's control socket {}: {e}",
                session.control_socket().display()
            ),
        })?;
        Ok(Remote {
            session: Some(session),
            spec: spec.clone(),
            sudo: false,
            lock: None,
            keep: Some(keep),
            ssh_config: opts.config.clone(),
            trips: AtomicU32::new(0),
            polls: AtomicU32::new(0),
        })
    }

    /// This machine, privileges not checked yet (checked by [`Remote::begin`]).
    pub(crate) fn local_only() -> Remote {
        Remote {
            session: None,
            spec: HostSpec {
                user: None,
                host: "localhost".into(),
                port: None,
                label: "localhost".into(),
            },
            sudo: false,
            lock: None,
            keep: None,
            ssh_config: None,
            trips: AtomicU32::new(0),
            polls: AtomicU32::new(0),
        }
    }

    /// The exact command that restores backup `id` on this host later.
    pub(crate) fn rollback_command(&self, id: &str) -> String {
        let mut argv = self.command_for("rollback");
        argv.push("--to".into());
        argv.push(id.to_string());
        backends::shell::join(&argv)
    }

    /// The exact command that lists this host's backups.
    pub(crate) fn backups_command(&self) -> String {
        backends::shell::join(self.command_for("backups"))
    }

    /// `k8soidc SUBCOMMAND` with the options that reach this host.
    fn command_for(&self, subcommand: &str) -> Vec<String> {
        let mut argv = vec!["k8soidc".to_string(), subcommand.into()];
        match &self.session {
            None => argv.push("--local".into()),
            Some(_) => {
                argv.push("--ssh".into());
                argv.push(self.spec.label.clone());
                if let Some(c) = &self.ssh_config {
                    argv.push("--ssh-config".into());
                    argv.push(c.display().to_string());
                }
            }
        }
        argv
    }

    /// Remote command executions so far (each script and the lock channel), health polls aside.
    pub(crate) fn round_trips(&self) -> u32 {
        self.trips.load(Ordering::Relaxed)
    }

    /// Health checks run so far.
    pub(crate) fn health_polls(&self) -> u32 {
        self.polls.load(Ordering::Relaxed)
    }

    fn no_sudo(&self) -> Error {
        let user = self
            .spec
            .user
            .clone()
            .unwrap_or_else(|| "the login user".into());
        Error::NoSudo {
            host: self.spec.label.clone(),
            user,
        }
    }

    /// Starts `sh -c SCRIPT k8soidc ARG...` (through `sudo -n` with `sudo`) with every stream
    /// piped.
    async fn channel(&self, script: &str, args: &[String], sudo: bool) -> Result<Channel, Error> {
        self.trips.fetch_add(1, Ordering::Relaxed);
        match &self.session {
            Some(session) => {
                let mut cmd = if sudo {
                    let mut c = Session::to_command(session.clone(), "sudo");
                    c.arg("-n").arg("sh");
                    c
                } else {
                    Session::to_command(session.clone(), "sh")
                };
                cmd.arg("-c").arg(script);
                if !args.is_empty() {
                    cmd.arg("k8soidc");
                    for a in args {
                        cmd.arg(a);
                    }
                }
                cmd.stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
                let mut child = cmd.spawn().await.map_err(|e| self.lost(&e))?;
                let (Some(stdout), Some(stdin), Some(stderr)) = (
                    child.stdout().take(),
                    child.stdin().take(),
                    child.stderr().take(),
                ) else {
                    return Err(Error::Other("ssh gave no pipes".into()));
                };
                Ok(Channel {
                    child: LockChild::Ssh(child),
                    stdout: Box::new(stdout),
                    stdin: Box::new(stdin),
                    stderr: Box::new(stderr),
                })
            }
            None => {
                let mut cmd = Self::local_command(script, args, sudo);
                cmd.stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped());
                let mut child = cmd.spawn().map_err(|e| Error::CommandStart {
                    command: "sh".into(),
                    detail: e.to_string(),
                })?;
                let (Some(stdout), Some(stdin), Some(stderr)) =
                    (child.stdout.take(), child.stdin.take(), child.stderr.take())
                else {
                    return Err(Error::Other("`sh` gave no pipes".into()));
                };
                Ok(Channel {
                    child: LockChild::Local(child),
                    stdout: Box::new(stdout),
                    stdin: Box::new(stdin),
                    stderr: Box::new(stderr),
                })
            }
        }
    }

    /// Runs a [`backends::node::NodeStep::Begin`] on one channel, as the login user:
    /// privileges (root or `sudo -n`), then with `lock` the node lock, then every read. With
    /// `lock` the channel stays open and holds the lock (a `.` heartbeat every 5 s) until
    /// [`Remote::close`].
    pub(crate) async fn begin(&mut self, step: &NodeStep, lock: bool) -> Result<Begun, Error> {
        let script = self.checked_script(step)?;
        let ch = self.channel(&script, &[], false).await?;
        let Channel {
            child,
            stdout,
            stdin,
            mut stderr,
        } = ch;
        let errors = tokio::spawn(async move {
            let mut s = String::new();
            let _ = tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut s).await;
            s
        });
        let mut reader = BufReader::new(stdout);
        let reply = read_begin(&mut reader).await;
        match reply.privileged.as_deref() {
            Some("root") => {}
            Some("sudo") => self.sudo = true,
            Some(_) => {
                drop(stdin);
                let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
                return Err(self.no_sudo());
            }
            None => {}
        }
        if !reply.done || (lock && !reply.locked) {
            drop(stdin);
            return Err(self
                .begin_failed(child, errors, reply.privileged.is_none())
                .await);
        }
        if lock {
            self.lock = Some((child, heartbeat(stdin)));
        } else {
            drop(stdin);
            let _ = tokio::time::timeout(Duration::from_secs(10), child.wait()).await;
        }
        Ok(Begun {
            records: reply.records,
            notes: reply.notes,
        })
    }

    /// Why a Begin channel (`child`, its stdin closed; `errors`, its stderr) stopped before
    /// its reads were done (or the lock taken): the lost connection (only while no privilege
    /// line came, `unprivileged`), the lock held, no `flock`, no lock, or the failed read.
    async fn begin_failed(
        &self,
        child: LockChild,
        errors: tokio::task::JoinHandle<String>,
        unprivileged: bool,
    ) -> Error {
        let state_dir = backends::node::STATE_DIR;
        let label = self.spec.label.clone();
        let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .ok()
            .flatten();
        let stderr = tokio::time::timeout(Duration::from_secs(2), errors)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        let gone = match &self.session {
            Some(s) => status == Some(255) || s.check().await.is_err(),
            None => false,
        };
        match status {
            _ if gone && unprivileged => Error::ConnectionLost {
                host: label,
                cause: None,
                state: LostState::NothingChanged,
            },
            Some(75) => Error::LockHeld {
                host: label,
                lock: format!("{state_dir}/lock"),
            },
            Some(127) => Error::Other(format!(
                "`flock` is missing on `{label}`: refused, nothing changed; install util-linux on the node"
            )),
            Some(70) => Error::Other(format!(
                "cannot take the lock {state_dir}/lock on `{label}` (exit 70): refused, nothing changed"
            )),
            code => Error::CommandFailed {
                command: "read the node's files".into(),
                host: Some(label),
                status: match code {
                    Some(c) => format!("exit status {c}"),
                    None => "no answer".into(),
                },
                stderr,
            },
        }
    }

    async fn raw_sh(
        &self,
        script: &str,
        args: &[String],
        stdin: Option<&[u8]>,
        sudo: bool,
    ) -> Result<Output, Error> {
        let Some(session) = &self.session else {
            return self.local_sh(script, args, stdin, sudo).await;
        };
        let mut cmd = if sudo {
            let mut c = Session::to_command(session.clone(), "sudo");
            c.arg("-n").arg("sh");
            c
        } else {
            Session::to_command(session.clone(), "sh")
        };
        cmd.arg("-c").arg(script);
        if !args.is_empty() {
            cmd.arg("k8soidc");
            for a in args {
                cmd.arg(a);
            }
        }
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().await.map_err(|e| self.lost(&e))?;
        if let Some(bytes) = stdin {
            if let Some(mut w) = child.stdin().take() {
                w.write_all(bytes)
                    .await
                    .map_err(|e| Error::ConnectionLost {
                        host: self.spec.label.clone(),
                        cause: Some(e.to_string()),
                        state: LostState::OldOrNew,
                    })?;
                w.shutdown().await.ok();
            }
        }
        let out = child.wait_with_output().await.map_err(|e| self.lost(&e))?;
        Ok(Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// `[sudo -n] sh -c SCRIPT k8soidc ARG...` on this machine (argv, no shell in between).
    fn local_command(script: &str, args: &[String], sudo: bool) -> tokio::process::Command {
        let mut cmd = if sudo {
            let mut c = tokio::process::Command::new("sudo");
            c.arg("-n").arg("sh");
            c
        } else {
            tokio::process::Command::new("sh")
        };
        cmd.arg("-c").arg(script);
        if !args.is_empty() {
            cmd.arg("k8soidc").args(args);
        }
        cmd.kill_on_drop(true);
        cmd
    }

    async fn local_sh(
        &self,
        script: &str,
        args: &[String],
        stdin: Option<&[u8]>,
        sudo: bool,
    ) -> Result<Output, Error> {
        let failed = |e: std::io::Error| Error::CommandStart {
            command: "sh".into(),
            detail: e.to_string(),
        };
        let mut cmd = Self::local_command(script, args, sudo);
        cmd.stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().map_err(failed)?;
        if let Some(bytes) = stdin {
            if let Some(mut w) = child.stdin.take() {
                w.write_all(bytes).await.map_err(failed)?;
                w.shutdown().await.ok();
            }
        }
        let out = child.wait_with_output().await.map_err(failed)?;
        Ok(Output {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    fn lost(&self, e: &openssh::Error) -> Error {
        Error::ConnectionLost {
            host: self.spec.label.clone(),
            cause: Some(e.to_string()),
            state: LostState::OldOrNewWithBackups,
        }
    }

    /// Runs a script (through sudo when needed); returns its output whatever its status.
    /// Counted as a round trip.
    pub(crate) async fn sh(
        &self,
        script: &str,
        args: &[String],
        stdin: Option<&[u8]>,
    ) -> Result<Output, Error> {
        self.trips.fetch_add(1, Ordering::Relaxed);
        self.run(script, args, stdin).await
    }

    /// [`Remote::sh`] without counting it.
    async fn run(
        &self,
        script: &str,
        args: &[String],
        stdin: Option<&[u8]>,
    ) -> Result<Output, Error> {
        let out = self.raw_sh(script, args, stdin, self.sudo).await?;
        let lost = match &self.session {
            Some(session) => out.code == Some(255) && session.check().await.is_err(),
            None => false,
        };
        if lost {
            return Err(Error::ConnectionLost {
                host: self.spec.label.clone(),
                cause: None,
                state: LostState::OldOrNew,
            });
        }
        Ok(out)
    }

    /// Runs one node step: its exact script (`sh -c SCRIPT`, through `sudo -n` when the login
    /// is not root); its output whatever its status.
    /// A health wait is reported as the polls it ran on the node, not as a round trip.
    pub(crate) async fn step(&self, step: &NodeStep) -> Result<Output, Error> {
        let script = self.checked_script(step)?;
        if matches!(step, NodeStep::AwaitHealthy(_) | NodeStep::AwaitReload(_)) {
            self.run(&script, &[], None).await
        } else {
            self.sh(&script, &[], None).await
        }
    }

    /// Health polls run on the node so far (reported by the wait steps).
    pub(crate) fn add_polls(&self, n: u32) {
        self.polls.fetch_add(n, Ordering::Relaxed);
    }

    /// Whether steps run through `sudo -n` (known after [`Remote::begin`] or `connect`).
    pub(crate) fn sudo(&self) -> bool {
        self.sudo
    }

    /// The step's script, refused when it is longer than one argument may be: Linux takes at
    /// most 128 KiB in one argv string (MAX_ARG_STRLEN), and the script travels as one.
    fn checked_script(&self, step: &NodeStep) -> Result<String, Error> {
        let script = step.script();
        if script.len() > MAX_SCRIPT {
            return Err(Error::Input(format!(
                "a step for `{}` is {} bytes long, more than the {MAX_SCRIPT} bytes one command may carry (Linux: 128 KiB per argument); the values or files are too large: shorten them",
                self.spec.label,
                script.len()
            )));
        }
        Ok(script)
    }

    /// True when this run took the node lock and its channel has ended (the heartbeat could
    /// not be written: the holder on the node or the connection is gone).
    pub(crate) fn lock_lost(&self) -> bool {
        matches!(&self.lock, Some((_, beat)) if beat.is_finished())
    }

    /// True when the SSH connection itself is gone (its master no longer answers).
    pub(crate) async fn connection_gone(&self) -> bool {
        match &self.session {
            Some(s) => s.check().await.is_err(),
            None => false,
        }
    }

    /// Releases the lock (if held) and closes the connection.
    pub(crate) async fn close(mut self) {
        if let Some((child, beat)) = self.lock.take() {
            beat.abort();
            let _ = beat.await;
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
        }
        // The master's last client leaves.
        drop(self.keep.take());
        if let Some(Ok(session)) = self.session.map(Arc::try_unwrap) {
            let _ = session.close().await;
        }
    }

    /// Drops the SSH connection the hard way (`ssh -O exit` on the control socket), as a
    /// network failure would, when the test seam asks for it after `stage`
    /// ([`crate::testing::TestSeam::disconnect_after`]; never in normal use).
    pub(crate) fn maybe_disconnect(&self, stage: &str) {
        let Some(session) = &self.session else { return };
        let hit = crate::testing::TestSeam::get().disconnect_after(stage, &self.spec.label);
        if hit {
            let _ = std::process::Command::new("ssh")
                .arg("-S")
                .arg(session.control_socket())
                .args(["-O", "exit", "k8soidc-test"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// How long a connection's master outlives its last channel (`ControlPersist`).
const MASTER_IDLE: std::num::NonZeroUsize = match std::num::NonZeroUsize::new(10) {
    Some(n) => n,
    None => unreachable!(),
};

/// Holds the connection for this run without a session on the node or a process: a
/// multiplexing client connection to the master's control socket, which says hello (OpenSSH
/// PROTOCOL.mux: `MUX_MSG_HELLO`, protocol version 4) and then sends nothing. The master counts
/// a connected multiplexing client as open (OpenSSH `channels.c` `channel_still_open`:
/// `SSH_CHANNEL_MUX_CLIENT`), so `ControlPersist` does not end it while this socket is open;
/// the kernel closes the socket when this process ends, however it ends. Replaces an
/// `ssh -O proxy` process per host (issue 16: one process and its memory less per host).
fn hold(session: &Session) -> std::io::Result<std::os::unix::net::UnixStream> {
    use std::io::Write;
    let mut stream = std::os::unix::net::UnixStream::connect(session.control_socket())?;
    // length 8, MUX_MSG_HELLO (1), version 4; no extensions.
    let hello: [u8; 12] = [0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 4];
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(&hello)?;
    Ok(stream)
}

/// Where the connections' control directories go: `$TMPDIR/k8soidc-UID` (mode 0700, this
/// user's, not a link), with what killed runs left there removed; `$TMPDIR` itself when that
/// directory cannot be had safely. Worked out (and swept) once per run, however many hosts
/// it connects to.
fn control_directory() -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(own_control_directory).clone()
}

fn own_control_directory() -> PathBuf {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let tmp = std::env::temp_dir();
    // This process's (effective) user owns its /proc entry.
    let Ok(uid) = std::fs::metadata("/proc/self").map(|m| m.uid()) else {
        return tmp;
    };
    let dir = tmp.join(format!("k8soidc-{uid}"));
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
    match std::fs::symlink_metadata(&dir) {
        Ok(m) if m.is_dir() && m.uid() == uid && m.permissions().mode() & 0o077 == 0 => {
            sweep(&dir);
            dir
        }
        _ => tmp,
    }
}

/// Removes the `.ssh-connection*` directories of runs that ended without closing their
/// connection: no master socket any more (the master ended, `ControlPersist`), and older than
/// a minute (a run just starting has no socket yet either: the master makes it after login).
fn sweep(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let minute_ago = std::time::SystemTime::now() - Duration::from_secs(60);
    for e in entries.flatten().take(10_000) {
        let path = e.path();
        let ours = e
            .file_name()
            .to_string_lossy()
            .starts_with(".ssh-connection");
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t < minute_ago);
        let master = std::fs::symlink_metadata(path.join("master")).is_ok();
        if ours && old && !master && e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// The longest script sent as one argument (Linux MAX_ARG_STRLEN is 128 KiB, and the remote
/// login shell gets the quoted script inside one `-c` word too).
const MAX_SCRIPT: usize = 100 * 1024;

/// Keeps a held lock alive: a `.` on the lock channel every 5 s (the Begin script releases the
/// lock when none arrives for 30 s or the channel closes).
fn heartbeat(
    mut stdin: Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if stdin.write_all(b".").await.is_err() || stdin.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    })
}

/// Reads `K8SOIDC-FILE` records (see `backends::node::script`).
pub(crate) fn parse_files(text: &str) -> Result<backends::patch::NodeFiles, Error> {
    use base64::Engine;
    let mut files = backends::patch::NodeFiles::new();
    let mut lines = text.lines();
    while let Some(head) = lines.next() {
        let Some(rest) = head.strip_prefix("K8SOIDC-FILE ") else {
            continue;
        };
        let body = lines.next().unwrap_or("");
        let (state, path) = rest
            .split_once(' ')
            .ok_or_else(|| Error::Other(format!("unexpected reply from the node: {head}")))?;
        let content = if state == "present" {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(body.trim())
                .map_err(|e| Error::Other(format!("unexpected reply for {path}: {e}")))?;
            Some(String::from_utf8(bytes).map_err(|_| {
                Error::Other(format!("`{path}` is not UTF-8 text; refusing to patch it"))
            })?)
        } else {
            None
        };
        files.insert(path.to_string(), content);
    }
    Ok(files)
}

/// The hosts of `--ssh` (at least one) and the SSH options shared by every command that
/// reaches hosts.
pub(crate) fn hosts(ssh: &SshArgs) -> Result<(Vec<HostSpec>, SshOptions), Error> {
    if ssh.hosts.is_empty() {
        return Err(Error::Input(
            "missing --ssh: say which node to act on, e.g. `--ssh root@cp1.example.com`".into(),
        ));
    }
    let specs = ssh
        .hosts
        .iter()
        .map(|h| HostSpec::parse(h))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = SshOptions {
        accept_new_host_key: ssh.accept_new_host_key,
        config: ssh.ssh_config.as_ref().map(Into::into),
    };
    Ok((specs, opts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_specs() {
        let h = HostSpec::parse("admin@cp1.example.com:2222").unwrap();
        assert_eq!(
            (h.user.as_deref(), h.host.as_str(), h.port),
            (Some("admin"), "cp1.example.com", Some(2222))
        );
        let h = HostSpec::parse("[::1]:22").unwrap();
        assert_eq!((h.host.as_str(), h.port), ("::1", Some(22)));
        let h = HostSpec::parse("cp1").unwrap();
        assert_eq!((h.user, h.port), (None, None));
        for bad in [
            "",
            "-oProxyCommand=x",
            "a b",
            "h:0",
            "h:99999",
            "u@",
            "$(x)@h",
        ] {
            assert!(HostSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_records() {
        let f = parse_files("K8SOIDC-FILE present /a\naGk=\nK8SOIDC-FILE absent /b\n\n").unwrap();
        assert_eq!(f["/a"].as_deref(), Some("hi"));
        assert_eq!(f["/b"], None);
    }
}

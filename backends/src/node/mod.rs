//! Steps on a control-plane node, as plain data. Each [`NodeStep`] is one round trip: the
//! executor sends [`NodeStep::script`] as `sh -c SCRIPT` (through `sudo -n` when the login is
//! not root) and reads its output; `--dry-run` prints the same step, as commands a person would
//! run, and with `-v` the exact script text, byte for byte what is sent. Nothing else runs on a
//! node: there is no script of the executor's own.
//!
//! The scripts themselves are in [`script`]; what each distribution's node looks like (what to
//! read, how to patch, restart and probe it) is in its own module, behind [`NodeBackend`].

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::{Command, Distribution, PlanError};

pub(crate) mod script;

/// Where k8soidc keeps its lock and backups on a node (never inside a watched directory).
pub const STATE_DIR: &str = "/var/lib/k8soidc";

/// Files read from a node: absolute path (or a read command's key) → content (None: absent).
pub type NodeFiles = BTreeMap<String, Option<String>>;

/// In a [`NodeStep::Restore`] planned before the backup exists: stands for the id the
/// [`NodeStep::Commit`] of the same plan prints (`K8SOIDC-BACKUP <id>`). The executor puts the
/// real id in its place ([`NodeStep::with_backup`]); it is the one run-time value of a plan.
pub const BACKUP_PLACEHOLDER: &str = "<backup-id>";

/// A command whose standard output the first round trip reads as if it were a file, under
/// `key` (e.g. the kubeadm-config ConfigMap); with `if_file`, only when that file exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadCommand {
    /// The [`NodeFiles`] key of its output.
    pub key: String,
    /// Run only when this file exists.
    pub if_file: Option<String>,
    /// The command.
    pub command: Command,
}

/// One file a [`NodeStep::Commit`] writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileChange {
    /// Absolute path on the node.
    pub path: String,
    /// What was read (None: the file is new).
    pub before: Option<String>,
    /// The new content.
    pub after: String,
    /// Mode of a new file (an existing one keeps its owner and mode).
    pub mode: u32,
    /// Why, shown in the dry run.
    pub why: String,
}

/// One file of a backup, as a [`NodeStep::Restore`] puts it back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreFile {
    /// Absolute path on the node.
    pub path: String,
    /// Its content now, as far as known (None: absent or unknown).
    pub now: Option<String>,
    /// What the backup holds (None: the file did not exist, so it is removed).
    pub then: Option<String>,
}

/// A command run after the files are in place, with the reason shown in the dry run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restart {
    /// The command.
    pub command: Command,
    /// Why.
    pub why: String,
}

/// How the executor decides that the API server runs the wanted configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// The readiness URL (`/readyz`) the node itself uses.
    pub readyz: String,
    /// The liveness URL (`/livez`), tried when `/readyz` is not served (older versions).
    pub livez: String,
    /// When the API server's flags are on its command line (static pods): the program name
    /// to look for in `/proc/*/cmdline`. None when it runs inside another process (kubelite, k3s).
    pub process: Option<String>,
    /// The `--oidc-*` / `--authentication-config` flags of a healthy process after the change.
    pub flags_after: Vec<String>,
    /// The same before the change (what a rollback must bring back).
    pub flags_before: Vec<String>,
    /// The systemd unit whose state counts (k3s, RKE2).
    pub unit: Option<String>,
    /// An authenticated readiness check run on the node when `/readyz` refuses anonymous
    /// requests (401/403): the distribution's own kubectl with its admin kubeconfig. k3s and
    /// RKE2 start the API server with `--anonymous-auth=false` (k3s-io/k3s
    /// pkg/daemons/control/server.go, `argsMap["anonymous-auth"] = "false"`; RKE2 runs that
    /// code), so an anonymous probe of a healthy server answers 401 there.
    pub admin_probe: Option<Command>,
    /// Give up after this many seconds.
    pub timeout_secs: u64,
    /// Where the address is only known on the node (a file an installer writes): on each
    /// poll, `readyz`/`livez` take the host and port from this file's `--bind-address`
    /// (when specific), else `--advertise-address`, and `--secure-port`.
    pub endpoint_file: Option<String>,
    /// Read back in the same round trip once healthy: (path, SHA-256 in hex of what was
    /// written); each file must still be what this run wrote.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub read_back: Vec<(String, String)>,
}

impl Health {
    /// The probe of an API server at `endpoint`, with no process, unit or admin check.
    pub fn at(endpoint: &crate::manifest::ApiEndpoint, timeout_secs: u64) -> Health {
        Health {
            readyz: endpoint.url("/readyz"),
            livez: endpoint.url("/livez"),
            process: None,
            flags_after: vec![],
            flags_before: vec![],
            unit: None,
            admin_probe: None,
            timeout_secs,
            endpoint_file: None,
            read_back: vec![],
        }
    }

    /// The same check, for the configuration before the change (after a restore), with
    /// nothing to read back.
    pub fn before(&self) -> Health {
        Health {
            flags_after: self.flags_before.clone(),
            read_back: vec![],
            ..self.clone()
        }
    }

    /// The anonymous probe command each poll runs (shown in the dry run).
    pub fn probe_command(&self) -> Command {
        Command::new(
            "curl",
            [
                "-sSk",
                "-o",
                "/dev/null",
                "-w",
                "\\n%{http_code}",
                "--max-time",
                "5",
                self.readyz.as_str(),
            ],
        )
    }
}

/// How the executor proves that a running API server took a new AuthenticationConfiguration
/// without a restart. kube-apiserver watches the file and reloads it; a file it rejects is
/// ignored, the old configuration stays and the server stays healthy, so health says nothing.
/// What it reports instead (kubernetes/kubernetes `pkg/kubeapiserver/options/authentication.go`,
/// the `filesystem.WatchUntil` callback, and k8s.io/apiserver
/// `pkg/server/options/authenticationconfig/metrics/metrics.go`):
/// - every reload records `apiserver_authentication_config_controller_automatic_reload_last_timestamp_seconds`
///   with `status="success"` or `status="failure"` (a file that does not decode or validate is
///   a failure, and logged as "failed to load authentication config" / "failed to validate
///   authentication config");
/// - from 1.34, `apiserver_authentication_config_controller_last_config_info{hash="sha256:HEX"}`
///   names the configuration in use, HEX being the SHA-256 of the file's bytes exactly as read
///   (`getHash`: `fmt.Sprintf("sha256:%x", sha256.Sum256([]byte(data)))`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reload {
    /// The file on the node.
    pub path: String,
    /// `sha256:HEX` of the new content.
    pub hash: String,
    /// 1.34 and later: wait for `last_config_info` with [`Reload::hash`]; before: for a
    /// success timestamp not older than the file's modification time, and no failure after it.
    pub info_metric: bool,
    /// Prints the API server's `/metrics` (run on the node).
    pub metrics: Command,
    /// The systemd unit whose journal has the API server's log (None: the static pod's log).
    pub unit: Option<String>,
    /// Give up after this many seconds.
    pub timeout_secs: u64,
    /// Read back in the same round trip once reloaded, as [`Health::read_back`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub read_back: Vec<(String, String)>,
}

/// One thing done on a node, in one round trip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "step")]
pub enum NodeStep {
    /// Privileges (root, or passwordless `sudo -n`), the node lock (held until the run ends,
    /// with `lock`) and every read: files and read commands. Runs before planning, as the
    /// login user (it is what finds out whether sudo is needed).
    Begin {
        /// Take the lock (not in a dry run).
        lock: bool,
        /// Files to read.
        paths: Vec<String>,
        /// Commands whose output is read like a file.
        commands: Vec<ReadCommand>,
    },
    /// Checks every file still is what was read, backs them up, stages the new contents
    /// outside watched directories, renames them into place, then runs the restarts.
    Commit {
        /// The files.
        files: Vec<FileChange>,
        /// Commands run once the files are in place.
        restart: Vec<Restart>,
    },
    /// One loop on the node until the API server is healthy with the expected flags.
    AwaitHealthy(Health),
    /// One loop on the node until the running API server reports that it reloaded the new
    /// AuthenticationConfiguration (or that it rejected it).
    AwaitReload(Reload),
    /// Runs `read`; when its output is still `before`, feeds `payload` to `write`.
    CompareAndSwap {
        /// What the object is, for messages.
        what: String,
        /// Prints the object's current text.
        read: Command,
        /// The text read when planning.
        before: String,
        /// The new text (for the diff).
        after: String,
        /// What `write` gets on standard input.
        payload: String,
        /// Applies the payload.
        write: Command,
    },
    /// The API server's last log lines (diagnostics before a restore).
    Logs {
        /// The systemd unit (None: the static pod's container log).
        unit: Option<String>,
    },
    /// Puts a backup back (checksums first), then runs the restarts.
    Restore {
        /// The backup id, or [`BACKUP_PLACEHOLDER`] for the backup made by this plan.
        backup: String,
        /// The files the backup holds, in its order (shown in the dry run).
        files: Vec<RestoreFile>,
        /// Show each file's diff from now to what is restored (`rollback --dry-run`).
        diff: bool,
        /// Compare and swap: restore only when every file is still its `now` (what the run
        /// that made the backup wrote), so a run never restores over someone else's change.
        only_if_unchanged: bool,
        /// Commands that make the API server read the restored files.
        restart: Vec<Restart>,
    },
    /// Lists the node's backups.
    ListBackups,
    /// A command of its own (an installer, `kubeadm init`).
    Run {
        /// The command.
        command: Command,
    },
    /// A script of its own, with its arguments (MicroK8s' args file after its install,
    /// where the content is only known on the node).
    Script {
        /// What it does, in one line.
        name: String,
        /// What it does, as the commands a person would run (the dry run without -v).
        summary: Vec<String>,
        /// Its arguments.
        args: Vec<String>,
        /// Its body.
        body: String,
    },
}

/// SHA-256 of a text, in hex (as `sha256sum` prints it).
pub fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

impl NodeStep {
    /// The exact script the executor sends for this step (`sh -c SCRIPT`).
    pub fn script(&self) -> String {
        match self {
            NodeStep::Begin {
                lock,
                paths,
                commands,
            } => {
                let mut args = vec![
                    STATE_DIR.to_string(),
                    if *lock { "lock" } else { "nolock" }.to_string(),
                    paths.len().to_string(),
                ];
                args.extend(paths.iter().cloned());
                for c in commands {
                    args.push(c.key.clone());
                    args.push(c.if_file.clone().unwrap_or_else(|| "-".into()));
                    args.push((c.command.args.len() + 1).to_string());
                    args.push(c.command.program.clone());
                    args.extend(c.command.args.iter().cloned());
                }
                script::begin(&args)
            }
            NodeStep::Commit { files, restart } => {
                let mut args = vec![STATE_DIR.to_string(), files.len().to_string()];
                for f in files {
                    args.push(f.path.clone());
                    args.push(
                        f.before
                            .as_deref()
                            .map(sha256_hex)
                            .unwrap_or_else(|| "absent".into()),
                    );
                    args.push(format!("{:o}", f.mode));
                }
                let commands: Vec<Command> = restart.iter().map(|r| r.command.clone()).collect();
                script::push_commands(&mut args, &commands);
                let data: Vec<String> = files.iter().map(|f| b64(&f.after)).collect();
                script::commit(&args, &data)
            }
            NodeStep::AwaitHealthy(h) => {
                let mut args = vec![
                    h.timeout_secs.to_string(),
                    h.endpoint_file.clone().unwrap_or_default(),
                    h.process.clone().unwrap_or_default(),
                    h.readyz.clone(),
                    h.livez.clone(),
                    h.unit.clone().unwrap_or_default(),
                ];
                match &h.admin_probe {
                    Some(c) => {
                        args.push((c.args.len() + 1).to_string());
                        args.push(c.program.clone());
                        args.extend(c.args.iter().cloned());
                    }
                    None => args.push("0".into()),
                }
                args.push(h.read_back.len().to_string());
                args.extend(h.read_back.iter().map(|(p, _)| p.clone()));
                args.extend(h.flags_after.iter().cloned());
                script::await_healthy(&args)
            }
            NodeStep::AwaitReload(r) => {
                let mut args = vec![
                    r.timeout_secs.to_string(),
                    r.path.clone(),
                    r.hash.clone(),
                    if r.info_metric { "info" } else { "timestamp" }.to_string(),
                    r.unit.clone().unwrap_or_else(|| "-".into()),
                ];
                script::push_commands(&mut args, std::slice::from_ref(&r.metrics));
                args.extend(r.read_back.iter().map(|(p, _)| p.clone()));
                script::await_reload(&args)
            }
            NodeStep::CompareAndSwap {
                read,
                before,
                payload,
                write,
                ..
            } => {
                let mut args = vec![sha256_hex(before), (read.args.len() + 1).to_string()];
                args.push(read.program.clone());
                args.extend(read.args.iter().cloned());
                args.push(write.program.clone());
                args.extend(write.args.iter().cloned());
                script::compare_and_swap(&args, &[b64(payload)])
            }
            NodeStep::Logs { unit } => script::logs(unit.as_deref()),
            NodeStep::Restore {
                backup,
                restart,
                files,
                only_if_unchanged,
                ..
            } => {
                let mut args = vec![STATE_DIR.to_string(), backup.clone()];
                if *only_if_unchanged {
                    args.push(files.len().to_string());
                    for f in files {
                        args.push(f.path.clone());
                        args.push(
                            f.now
                                .as_deref()
                                .map(sha256_hex)
                                .unwrap_or_else(|| "absent".into()),
                        );
                    }
                } else {
                    args.push("0".into());
                }
                let commands: Vec<Command> = restart.iter().map(|r| r.command.clone()).collect();
                script::push_commands(&mut args, &commands);
                script::restore(&args)
            }
            NodeStep::ListBackups => script::list(STATE_DIR),
            NodeStep::Run { command } => script::run(command),
            NodeStep::Script {
                name, args, body, ..
            } => script::custom(name, args, body),
        }
    }

    /// The same step with the backup id known (a [`NodeStep::Restore`] of
    /// [`BACKUP_PLACEHOLDER`]); other steps unchanged.
    pub fn with_backup(&self, id: &str) -> NodeStep {
        match self {
            NodeStep::Restore {
                backup,
                files,
                diff,
                only_if_unchanged,
                restart,
            } if backup == BACKUP_PLACEHOLDER => NodeStep::Restore {
                backup: id.to_string(),
                files: files.clone(),
                diff: *diff,
                only_if_unchanged: *only_if_unchanged,
                restart: restart.clone(),
            },
            other => other.clone(),
        }
    }

    /// The commands a person would run for this step, one `+ ` line each, and what it checks
    /// (`# ` lines): the dry run without -v.
    fn summary(&self, f: &mut fmt::Formatter<'_>, at: &str, sudo: &str) -> fmt::Result {
        match self {
            NodeStep::Begin {
                lock,
                paths,
                commands,
            } => {
                if *lock {
                    writeln!(f, "+ {at}{sudo}flock -n {STATE_DIR}/lock   # held until the run ends")?;
                }
                for p in paths {
                    writeln!(f, "+ {at}{sudo}cat {}", crate::shell::quote(p))?;
                }
                for c in commands {
                    writeln!(f, "+ {at}{sudo}{}", c.command)?;
                }
                Ok(())
            }
            NodeStep::Commit { files, restart } => {
                writeln!(
                    f,
                    "#   in one step: check each file is still as read, back it up to {STATE_DIR}/backups/<UTC time>/, write the new one to a temporary file outside the watched directory, fsync, rename into place keeping owner and mode{}",
                    if restart.is_empty() { "" } else { ", then restart" }
                )?;
                for c in files {
                    writeln!(f, "# {}", c.why)?;
                    write_file(f, at, c)?;
                }
                for r in restart {
                    writeln!(f, "# {}", r.why)?;
                    writeln!(f, "+ {at}{sudo}{}", r.command)?;
                }
                Ok(())
            }
            NodeStep::AwaitHealthy(h) => {
                writeln!(
                    f,
                    "#   one loop on the node: polls every 0.1 s at first, backing off to every 0.5 s after 1.5 s, up to {}s; healthy = two passing polls in a row (the second 0.1 s after the first) on the same process",
                    h.timeout_secs
                )?;
                if let Some(unit) = &h.unit {
                    writeln!(f, "+ {at}{sudo}systemctl is-active --quiet {unit}")?;
                }
                if let Some(file) = &h.endpoint_file {
                    writeln!(f, "#   address and port from {file} (--bind-address, --advertise-address, --secure-port) on each poll")?;
                }
                if let Some(p) = &h.process {
                    writeln!(
                        f,
                        "#   each poll: a `{p}` process whose --oidc-*/--authentication-config flags are exactly [{}]",
                        h.flags_after.join(" ")
                    )?;
                }
                writeln!(
                    f,
                    "+ {at}{sudo}{}   # 2xx/3xx; {} when /readyz is 404",
                    h.probe_command(),
                    h.livez
                )?;
                if let Some(a) = &h.admin_probe {
                    writeln!(f, "+ {at}{sudo}{a}   # when the anonymous probe gets 401/403")?;
                }
                write_read_back(f, at, sudo, "healthy", &h.read_back)
            }
            NodeStep::AwaitReload(r) => {
                writeln!(
                    f,
                    "#   one loop on the node: every 0.5 s, up to {}s, read the API server's metrics",
                    r.timeout_secs
                )?;
                writeln!(f, "+ {at}{sudo}{}", r.metrics)?;
                if r.info_metric {
                    writeln!(
                        f,
                        "#   reloaded = apiserver_authentication_config_controller_last_config_info{{hash=\"{}\"}} (the SHA-256 of the bytes written to {})",
                        r.hash, r.path
                    )?;
                } else {
                    writeln!(
                        f,
                        "#   reloaded = apiserver_authentication_config_controller_automatic_reload_last_timestamp_seconds{{status=\"success\"}} not older than {} (its modification time) and no newer failure",
                        r.path
                    )?;
                }
                writeln!(
                    f,
                    "#   rejected = a status=\"failure\" reload not older than the write; then the API server's log line is quoted and the backup restored"
                )?;
                write_read_back(f, at, sudo, "reloaded", &r.read_back)
            }
            NodeStep::CompareAndSwap {
                read,
                before,
                after,
                payload,
                write,
                what,
            } => {
                writeln!(f, "+ {at}{sudo}{read}")?;
                for line in crate::plan::unified_diff(what, before, after).lines() {
                    writeln!(f, "    | {line}")?;
                }
                writeln!(
                    f,
                    "#   only if it still reads as above (else nothing is written):"
                )?;
                writeln!(f, "+ {at}{sudo}{write} <<'K8SOIDC_EOF'")?;
                writeln!(f, "{}", payload.trim_end_matches('\n'))?;
                writeln!(f, "K8SOIDC_EOF")
            }
            NodeStep::Logs { unit } => match unit {
                Some(u) => writeln!(f, "+ {at}{sudo}journalctl -u {u} -n 20 --no-pager"),
                None => writeln!(
                    f,
                    "+ {at}{sudo}crictl logs --tail 20 \"$(crictl ps -a --name kube-apiserver -q | head -n1)\""
                ),
            },
            NodeStep::Restore {
                backup,
                files,
                diff,
                only_if_unchanged,
                restart,
            } => {
                writeln!(
                    f,
                    "#   checks {STATE_DIR}/backups/{backup}/SHA256SUMS first{}; each file through a temporary file and a rename, with its recorded owner and mode",
                    if *only_if_unchanged {
                        ", and restores only if every file is still what this run wrote (else it changes nothing)"
                    } else {
                        ""
                    }
                )?;
                for (k, c) in files.iter().enumerate() {
                    match &c.then {
                        Some(_) => writeln!(
                            f,
                            "+ {at}{sudo}cp {STATE_DIR}/backups/{}/{} {}",
                            crate::shell::quote(backup),
                            k + 1,
                            crate::shell::quote(&c.path)
                        )?,
                        None => writeln!(f, "+ {at}{sudo}rm -f {}", crate::shell::quote(&c.path))?,
                    }
                    if *diff {
                        let now = c.now.as_deref().unwrap_or("");
                        let then = c.then.as_deref().unwrap_or("");
                        if now == then {
                            writeln!(f, "#   {} is already as in the backup", c.path)?;
                        } else {
                            write!(f, "{}", crate::plan::unified_diff(&c.path, now, then))?;
                        }
                    }
                }
                for r in restart {
                    writeln!(f, "+ {at}{sudo}{}", r.command)?;
                }
                Ok(())
            }
            NodeStep::ListBackups => writeln!(f, "+ {at}{sudo}ls -1r {STATE_DIR}/backups"),
            NodeStep::Run { command } => writeln!(f, "+ {at}{sudo}{command}"),
            NodeStep::Script { summary, .. } => {
                for l in summary {
                    writeln!(f, "+ {at}{sudo}{l}")?;
                }
                Ok(())
            }
        }
    }

    /// Writes the step: the summary, and with `verbose` the exact script sent.
    pub(crate) fn fmt_step(
        &self,
        f: &mut fmt::Formatter<'_>,
        at: &str,
        sudo: bool,
        verbose: bool,
    ) -> fmt::Result {
        let s = if sudo { "sudo -n " } else { "" };
        self.summary(f, at, s)?;
        if verbose {
            writeln!(
                f,
                "#   the exact script sent for this step (-v):\n+ {at}{s}sh -c \"$(cat <<'{END}'",
            )?;
            write!(f, "{}", self.script())?;
            writeln!(f, "{END}\n)\"")?;
        }
        Ok(())
    }
}

/// A step shown on its own (`# why`, its commands, with `verbose` its exact script), e.g. the
/// reads that come before a plan.
pub fn show_step(host: &str, why: &str, step: &NodeStep, sudo: bool, verbose: bool) -> String {
    struct Shown<'a>(&'a str, &'a str, &'a NodeStep, bool, bool);
    impl fmt::Display for Shown<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            writeln!(f, "# {}", self.1)?;
            self.2
                .fmt_step(f, &format!("[{}] ", self.0), self.3, self.4)
        }
    }
    Shown(host, why, step, sudo, verbose).to_string()
}

/// With -v: the first round trip a real run sends (with the lock), shown before the plan it
/// reads for, as its own step.
pub fn read_preface(host: &str, read: &NodeStep) -> String {
    format!(
        "{}\n",
        show_step(
            host,
            "privileges, lock and reads, as the login user (done before planning; a real run holds the lock until it ends)",
            read,
            false,
            true
        )
    )
}

/// The end marker of a script shown with -v.
pub const END: &str = "K8SOIDC_SCRIPT";

/// Extracts the scripts a verbose display shows, in order (tests and tools compare them with
/// what was sent).
pub fn shown_scripts(display: &str) -> Vec<String> {
    let start = format!("sh -c \"$(cat <<'{END}'\n");
    let stop = format!("{END}\n)\"");
    let mut out = Vec::new();
    let mut rest = display;
    while let Some(i) = rest.find(&start) {
        let body = &rest[i + start.len()..];
        let Some(j) = body.find(&stop) else { break };
        out.push(body[..j].to_string());
        rest = &body[j + stop.len()..];
    }
    out
}

/// The read-back of an await step: once `when`, in the same round trip, the checksums.
fn write_read_back(
    f: &mut fmt::Formatter<'_>,
    at: &str,
    sudo: &str,
    when: &str,
    files: &[(String, String)],
) -> fmt::Result {
    if files.is_empty() {
        return Ok(());
    }
    let paths: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    writeln!(
        f,
        "#   once {when}, in the same round trip, read back what was written:"
    )?;
    writeln!(f, "+ {at}{sudo}sha256sum {}", crate::shell::join(&paths))?;
    for (p, sum) in files {
        writeln!(f, "#   must be {sum}  {p}")?;
    }
    Ok(())
}

fn write_file(f: &mut fmt::Formatter<'_>, at: &str, c: &FileChange) -> fmt::Result {
    match &c.before {
        None => {
            writeln!(f, "+ {at}write {} (mode {:04o}, new file):", c.path, c.mode)?;
            for line in c.after.lines() {
                writeln!(f, "    {line}")?;
            }
            Ok(())
        }
        Some(before) => {
            writeln!(f, "+ {at}write {} (owner and mode kept):", c.path)?;
            write!(
                f,
                "{}",
                crate::plan::unified_diff(&c.path, before, &c.after)
            )
        }
    }
}

/// Everything about one host: the plan to show and run, and what to do when it fails.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPlan {
    /// The host as given to `--ssh`.
    pub host: String,
    /// The distribution found (or given).
    pub distribution: Distribution,
    /// Through `sudo -n` (the login is not root).
    pub sudo: bool,
    /// The steps: Commit, AwaitHealthy (or AwaitReload) with the read-back of what was written,
    /// then CompareAndSwap steps run once healthy.
    /// Empty steps: already configured.
    pub plan: crate::Plan,
    /// When the API server is not healthy in time: Logs, Restore of this plan's backup,
    /// AwaitHealthy with the previous flags.
    pub on_failure: Vec<NodeStep>,
    /// The health check.
    pub health: Health,
    /// What makes the API server read restored files after a rollback (the restart steps
    /// without one-way ones such as `microk8s enable rbac`); empty for static pods.
    pub restart_after_restore: Vec<Command>,
}

impl HostPlan {
    /// True when nothing needs to change.
    pub fn is_noop(&self) -> bool {
        self.plan.steps.is_empty()
    }

    /// The dry run: the plan, then what happens when it fails; with `verbose` every script.
    pub fn display(&self, verbose: bool) -> HostPlanDisplay<'_> {
        HostPlanDisplay { hp: self, verbose }
    }
}

/// [`HostPlan::display`].
pub struct HostPlanDisplay<'a> {
    hp: &'a HostPlan,
    verbose: bool,
}

impl fmt::Display for HostPlanDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hp = self.hp;
        let at = format!("[{}] ", hp.host);
        write!(f, "{}", hp.plan.display(self.verbose))?;
        if !hp.plan.steps.is_empty() && !hp.on_failure.is_empty() {
            writeln!(f)?;
            writeln!(
                f,
                "# if the API server is not healthy in time: show its last log lines, restore the backup (its id is printed by the first step), restart, and wait for the previous configuration"
            )?;
            for s in &hp.on_failure {
                s.fmt_step(f, &at, hp.sudo, self.verbose)?;
            }
        }
        Ok(())
    }
}

/// What `k8soidc rollback` does once a backup is back in place: the restarts that make the
/// API server read the restored files, and the health check of the configuration they hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restored {
    /// The distribution found in the restored files.
    pub distribution: Distribution,
    /// Commands to run on the node, in order (none for a kubeadm static pod: the kubelet
    /// restarts it when its manifest changes).
    pub restart: Vec<Command>,
    /// The health check.
    pub health: Health,
}

/// What a node runs, for a conversion between flags and the file ([`crate::migrate`]).
#[derive(Debug, Clone)]
pub enum Running {
    /// It already runs the wanted mode (the reason, for the plan's title).
    Already(String),
    /// The settings it runs, in the wanted mode, with notes for the dry run.
    Settings(Box<crate::OidcSettings>, Vec<String>),
}

/// A node's distribution as k8soidc patches it: what to read, how to tell it is there, how to
/// patch, restart and probe it. One implementation per distribution, in that distribution's
/// module; [`node_backends`] registers them.
pub trait NodeBackend: Sync {
    /// The distribution.
    fn distribution(&self) -> Distribution;
    /// The main file k8soidc patches.
    fn target_file(&self) -> &'static str;
    /// Directories that may hold the CA / AuthenticationConfiguration on the node.
    fn node_dirs(&self) -> Vec<String>;
    /// Every file to read: the target, drop-ins and the node files k8soidc may write.
    fn probe_paths(&self) -> Vec<String> {
        let mut v = vec![self.target_file().to_string()];
        for dir in self.node_dirs() {
            v.push(format!("{dir}/{}", crate::apiserver::CA_FILE));
            v.push(format!("{dir}/{}", crate::apiserver::AUTH_CONFIG_FILE));
        }
        v
    }
    /// Commands whose output the first round trip reads as well.
    fn read_commands(&self) -> Vec<ReadCommand> {
        vec![]
    }
    /// True when the files read show this distribution's control plane.
    fn detect(&self, files: &NodeFiles) -> bool {
        matches!(files.get(self.target_file()), Some(Some(_)))
    }
    /// The distribution-specific part of a patch (see [`crate::patch::Patched`]).
    fn patch(
        &self,
        req: &crate::patch::PatchRequest<'_>,
        files: &NodeFiles,
    ) -> Result<crate::patch::Patched, PlanError>;
    /// The OIDC settings the node runs, for `patch --auth-mode config|flags` without settings.
    fn running_settings(
        &self,
        req: &crate::patch::PatchRequest<'_>,
        files: &NodeFiles,
        convert: crate::migrate::Convert,
    ) -> Result<Running, PlanError> {
        let _ = (req, files, convert);
        Err(PlanError::Unsupported {
            distribution: self.distribution(),
            message: "converting the running settings between --oidc-* flags and the AuthenticationConfiguration is not supported for this distribution; give the OIDC settings explicitly".into(),
        })
    }
    /// Prints the API server's `/metrics` on the node (for [`NodeStep::AwaitReload`]); None
    /// when the distribution has no such command here (a file-only change then waits for
    /// health only).
    fn metrics_command(&self) -> Option<Command> {
        None
    }
    /// The restarts and health check once a backup is back in place.
    fn after_restore(&self, files: &NodeFiles, timeout_secs: u64) -> Result<Restored, PlanError>;
    /// The plan of `create --ssh` on a fresh host (`files`: what the first round trip read).
    fn create(
        &self,
        host: &str,
        s: &crate::OidcSettings,
        installer: &str,
        files: &NodeFiles,
    ) -> Result<crate::Plan, PlanError> {
        let _ = (host, s, installer, files);
        Err(PlanError::Unsupported {
            distribution: self.distribution(),
            message: format!(
                "`create --ssh` supports {}; see `k8soidc create --help`",
                create_supported()
            ),
        })
    }
    /// True when [`NodeBackend::create`] is implemented.
    fn can_create(&self) -> bool {
        false
    }
}

/// Every node backend: one registration line per distribution.
pub fn node_backends() -> [&'static dyn NodeBackend; 5] {
    [
        &crate::kubeadm::node::KUBEADM,
        &crate::microk8s::node::MICROK8S,
        &crate::k3s::node::K3S,
        &crate::k3s::node::RKE2,
        &crate::k0s::node::K0S,
    ]
}

/// The node backend of `d`, or a refusal naming the ones there are.
pub fn node_backend(d: Distribution) -> Result<&'static dyn NodeBackend, PlanError> {
    node_backends()
        .into_iter()
        .find(|b| b.distribution() == d)
        .ok_or_else(|| PlanError::Unsupported {
            distribution: d,
            message: format!(
                "`patch --ssh` supports {} nodes; use `render` or `create` for this distribution",
                patch_supported()
            ),
        })
}

/// "kubeadm, microk8s, k3s and rke2".
pub fn patch_supported() -> String {
    and_list(
        node_backends()
            .iter()
            .map(|b| b.distribution().name())
            .collect(),
    )
}

/// The distributions `create --ssh` takes.
pub fn create_supported() -> String {
    and_list(
        node_backends()
            .iter()
            .filter(|b| b.can_create())
            .map(|b| b.distribution().name())
            .collect(),
    )
}

fn and_list(v: Vec<&str>) -> String {
    match v.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        Some((last, _)) => last.to_string(),
        None => String::new(),
    }
}

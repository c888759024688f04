//! The binary's errors. Each knows its exit status (README "Exit codes"): 0 done, 1 a failure
//! while running (a command failed, a host refused: lock held, host key, no sudo), 2 bad input
//! (nothing was run), 3 the connection to a host was lost mid-run (run again to converge),
//! 130 / 143 `patch` stopped by SIGINT / SIGTERM (what each host was left with is said).

use std::fmt;

use backends::PlanError;

#[derive(Debug)]
pub(crate) enum Error {
    /// Bad input found before anything ran.
    Input(String),
    /// A setting or plan refused by the pure layer.
    Plan(PlanError),
    /// A program the plan needs is not installed.
    MissingProgram { program: String, hint: String },
    /// A command exited unsuccessfully.
    CommandFailed {
        command: String,
        host: Option<String>,
        status: String,
        stderr: String,
    },
    /// Another k8soidc run holds the host's lock: nothing changed.
    LockHeld { host: String, lock: String },
    /// The host's key is not in known_hosts: refused before running anything.
    HostKeyUnknown { host: String, detail: String },
    /// The host's key is not the one known_hosts has: refused before running anything.
    HostKeyChanged { host: String, detail: String },
    /// The host cannot be reached (or refuses the login).
    ConnectFailed { host: String, detail: String },
    /// `sudo -n` needs a password (or is missing) for a login that is not root.
    NoSudo { host: String, user: String },
    /// The SSH connection dropped during the run.
    ConnectionLost {
        host: String,
        /// What the SSH client said, if anything.
        cause: Option<String>,
        /// How far the run had got.
        state: LostState,
    },
    /// A program could not be started (here, or `sh` for a `--local` node step).
    CommandStart { command: String, detail: String },
    /// A file could not be read or written.
    Io {
        path: String,
        source: std::io::Error,
    },
    /// SIGINT or SIGTERM during a transaction; the message says what the host was left with.
    Interrupted { signal: i32, message: String },
    /// Anything else at run time, with its context.
    Other(String),
}

/// What a lost connection left behind on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LostState {
    /// Lost before the lock was held: nothing was changed.
    NothingChanged,
    /// Lost while files may be changing: each is old or new (written by rename).
    OldOrNew,
    /// As `OldOrNew`, and backups may have been taken (`k8soidc backups` lists them).
    OldOrNewWithBackups,
}

impl Error {
    /// The exit status (README "Exit codes").
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Error::Input(_) | Error::Plan(_) => 2,
            Error::ConnectionLost { .. } => 3,
            // As a shell reports a process ended by the signal: 130 (SIGINT), 143 (SIGTERM).
            Error::Interrupted { signal, .. } => u8::try_from(128 + signal).unwrap_or(1),
            Error::LockHeld { .. }
            | Error::HostKeyUnknown { .. }
            | Error::HostKeyChanged { .. }
            | Error::ConnectFailed { .. }
            | Error::NoSudo { .. }
            | Error::MissingProgram { .. }
            | Error::CommandFailed { .. }
            | Error::CommandStart { .. }
            | Error::Io { .. }
            | Error::Other(_) => 1,
        }
    }

    pub(crate) fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    pub(crate) fn io(path: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<PlanError> for Error {
    fn from(e: PlanError) -> Self {
        Error::Plan(e)
    }
}

/// The last lines of a command's stderr, framed so they read as quoted output.
pub(crate) fn framed(stderr: &str) -> String {
    let lines: Vec<&str> = stderr.trim_end().lines().collect();
    let tail = &lines[lines.len().saturating_sub(20)..];
    tail.iter().map(|l| format!("\n  | {l}")).collect()
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Input(m) | Error::Other(m) | Error::Interrupted { message: m, .. } => {
                f.write_str(m)
            }
            Error::Plan(e) => write!(f, "{e}"),
            Error::MissingProgram { program, hint } => {
                write!(f, "`{program}` is not installed or not on PATH; {hint}")
            }
            Error::CommandFailed {
                command,
                host,
                status,
                stderr,
            } => {
                let at = host
                    .as_ref()
                    .map(|h| format!(" on {h}"))
                    .unwrap_or_default();
                write!(f, "`{command}`{at} failed ({status})")?;
                if !stderr.trim().is_empty() {
                    write!(f, ":{}", framed(stderr))?;
                }
                Ok(())
            }
            Error::Io { path, source } => write!(f, "`{path}`: {source}"),
            Error::CommandStart { command, detail } => {
                write!(f, "cannot start `{command}`: {detail}")
            }
            Error::LockHeld { host, lock } => write!(
                f,
                "another k8soidc run holds the lock on `{host}` ({lock}): refused, nothing changed; wait for it to finish and run again"
            ),
            Error::HostKeyUnknown { host, detail } => write!(
                f,
                "host key of `{host}` is unknown (not in known_hosts): refused before running anything ({detail}); check its fingerprint, then pass --accept-new-host-key to record it, or add it to known_hosts yourself"
            ),
            Error::HostKeyChanged { host, detail } => write!(
                f,
                "host key of `{host}` is not the one known: refused before running anything ({detail}); check the key, then fix known_hosts (`ssh-keygen -R HOST`)"
            ),
            Error::ConnectFailed { host, detail } => write!(
                f,
                "cannot connect to `{host}`: {detail}; check that `ssh {host}` works from this machine"
            ),
            Error::NoSudo { host, user } => write!(
                f,
                "`sudo -n` on `{host}` needs a password for {user} (or sudo is missing): refused before any change; allow passwordless sudo for {user} (NOPASSWD in /etc/sudoers.d) or connect as root"
            ),
            Error::ConnectionLost { host, cause, state } => {
                write!(f, "lost the connection to `{host}`")?;
                if let Some(cause) = cause {
                    write!(f, " ({cause})")?;
                }
                match state {
                    LostState::NothingChanged => write!(f, "; nothing was changed; run again"),
                    LostState::OldOrNew => write!(
                        f,
                        "; nothing is half-written: each file is old or new; run again to converge"
                    ),
                    LostState::OldOrNewWithBackups => write!(
                        f,
                        "; nothing is half-written: each file is old or new; run again to converge, or `k8soidc backups --ssh {host}` to see backups"
                    ),
                }
            }
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The README "Exit codes" table, one row per class.
    #[test]
    fn each_class_has_its_documented_exit_code() {
        let host = || "root@cp1".to_string();
        let cases = [
            (Error::Input("x".into()), 2),
            (
                Error::ConnectionLost {
                    host: host(),
                    cause: None,
                    state: LostState::OldOrNew,
                },
                3,
            ),
            (
                Error::LockHeld {
                    host: host(),
                    lock: "/var/lib/k8soidc/lock".into(),
                },
                1,
            ),
            (
                Error::HostKeyUnknown {
                    host: host(),
                    detail: "d".into(),
                },
                1,
            ),
            (
                Error::HostKeyChanged {
                    host: host(),
                    detail: "d".into(),
                },
                1,
            ),
            (
                Error::NoSudo {
                    host: host(),
                    user: "op".into(),
                },
                1,
            ),
            (
                Error::CommandFailed {
                    command: "c".into(),
                    host: Some(host()),
                    status: "exit status 1".into(),
                    stderr: String::new(),
                },
                1,
            ),
            (
                Error::CommandStart {
                    command: "c".into(),
                    detail: "d".into(),
                },
                1,
            ),
            (
                Error::Interrupted {
                    signal: 2,
                    message: "m".into(),
                },
                130,
            ),
            (
                Error::Interrupted {
                    signal: 15,
                    message: "m".into(),
                },
                143,
            ),
        ];
        for (e, code) in cases {
            assert_eq!(e.exit_code(), code, "{e}");
        }
        let lost = Error::ConnectionLost {
            host: host(),
            cause: Some("broken pipe".into()),
            state: LostState::OldOrNewWithBackups,
        };
        assert_eq!(
            lost.to_string(),
            "lost the connection to `root@cp1` (broken pipe); nothing is half-written: each file is old or new; run again to converge, or `k8soidc backups --ssh root@cp1` to see backups"
        );
    }
}

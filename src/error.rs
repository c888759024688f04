//! The binary's errors. Each knows its exit status: 2 for bad input (nothing was run),
//! 1 for a failure while running.

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
    /// A file could not be read or written.
    Io {
        path: String,
        source: std::io::Error,
    },
    /// Anything else at run time, with its context.
    Other(String),
}

impl Error {
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Error::Input(_) | Error::Plan(_) => 2,
            _ => 1,
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
            Error::Input(m) | Error::Other(m) => f.write_str(m),
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
        }
    }
}

impl std::error::Error for Error {}

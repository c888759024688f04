//! How runs over hosts report: each host's [`Outcome`], its messages ([`Say`]: `[HOST] …`
//! lines on stderr, whole, above progress bars) and plans on stdout ([`out`]). Shared by
//! `patch`, `rollback`, `create --ssh` and `--inventory` runs.

use std::fmt::Write as _;
use std::io::Write;

use crate::error::Error;

/// How one host ended.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Planned,
    Unchanged,
    Patched { backup: String },
    RolledBack { backup: String },
    Failed,
    Skipped,
}

impl Outcome {
    /// How the outcome is reported, the same for one host, an inventory (table, JSON and
    /// YAML) and `patch --kops/--juju/--k3d`.
    pub(crate) fn word(&self) -> &'static str {
        match self {
            Outcome::Planned => "dry run",
            Outcome::Unchanged => "unchanged",
            Outcome::Patched { .. } => "patched",
            Outcome::RolledBack { .. } => "rolled back",
            Outcome::Failed => "failed",
            Outcome::Skipped => "not started",
        }
    }
}

/// Writes to stdout (plans, reports).
pub(crate) fn out(text: &str) -> Result<(), Error> {
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| Error::io("stdout", e))
}

/// Where one host's messages go: `[PREFIX] message` lines on stderr, written whole (one
/// host's lines never interleave with another's) and above the progress bars when drawn.
#[derive(Clone)]
pub(crate) struct Say {
    prefix: String,
    bars: Option<indicatif::MultiProgress>,
    /// Inventory runs: plans are prefixed too (several hosts print at once).
    grouped: bool,
}

impl Say {
    /// Messages of a single-host run: `[HOST] message`, plans as they are.
    pub(crate) fn host(label: &str) -> Say {
        Say {
            prefix: label.to_string(),
            bars: None,
            grouped: false,
        }
    }

    /// Messages of a host in an inventory run: `[CLUSTER/HOST] ...`, plans included.
    pub(crate) fn grouped(prefix: String, bars: Option<indicatif::MultiProgress>) -> Say {
        Say {
            prefix,
            bars,
            grouped: true,
        }
    }

    pub(crate) fn line(&self, msg: &str) {
        self.emit(&format!("[{}] {msg}\n", self.prefix));
    }

    /// A plan or other block of lines.
    pub(crate) fn block(&self, text: &str) {
        if !self.grouped {
            self.emit(text);
            return;
        }
        let mut t = String::new();
        for l in text.lines() {
            let _ = writeln!(t, "[{}] {l}", self.prefix);
        }
        self.emit(&t);
    }

    fn emit(&self, text: &str) {
        match &self.bars {
            Some(m) => m.suspend(|| eprint!("{text}")),
            None => eprint!("{text}"),
        }
    }
}

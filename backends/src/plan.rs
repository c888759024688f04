//! A [`Plan`] is plain data: the steps k8soidc would take, in order. Its `Display` is the
//! dry run (copy-pasteable `+ command` lines and unified diffs), so a dry run cannot drift
//! from what is executed: the executor walks the very same steps.

use std::fmt;

use serde::Serialize;

use crate::shell;

/// Where a step happens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type", content = "host")]
pub enum Target {
    /// The machine k8soidc runs on.
    Local,
    /// A host reached over SSH (`[user@]host[:port]`).
    Host(String),
}

/// A program and its arguments (argv, never a shell string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Command {
    /// The program, looked up on PATH.
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
}

impl Command {
    /// Builds a command from a program and arguments.
    pub fn new<S: Into<String>>(
        program: impl Into<String>,
        args: impl IntoIterator<Item = S>,
    ) -> Self {
        Command {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
        }
    }

    /// The shell-quoted command line.
    pub fn to_shell(&self) -> String {
        shell::join(std::iter::once(&self.program).chain(&self.args))
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_shell())
    }
}

/// A pure edit applied by the executor to the output of a read command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "edit")]
pub enum Edit {
    /// Merge OIDC fields into a kops Cluster spec (YAML).
    KopsCluster {
        /// The fields to set under `spec`, as YAML, shown in the dry run.
        summary: Vec<String>,
        /// The settings, serialised, so the edit is self-contained.
        #[serde(skip)]
        settings: Box<crate::OidcSettings>,
    },
    /// Merge `key=value` pairs into a space-separated charm option (`api-extra-args`).
    ExtraArgs {
        /// Pairs to set (replacing the same keys).
        set: Vec<(String, String)>,
        /// Keys to remove (e.g. `oidc-*` when switching to structured config).
        remove_prefixes: Vec<String>,
    },
}

impl Edit {
    /// Applies the edit to what the read command printed.
    pub fn apply(&self, current: &str) -> Result<String, crate::PlanError> {
        match self {
            Edit::KopsCluster { settings, .. } => {
                crate::kops::merge_cluster_spec(current, settings)
            }
            Edit::ExtraArgs {
                set,
                remove_prefixes,
            } => crate::charmed::merge_extra_args(current, set, remove_prefixes),
        }
    }

    fn describe(&self) -> Vec<String> {
        match self {
            Edit::KopsCluster { summary, .. } => summary.clone(),
            Edit::ExtraArgs {
                set,
                remove_prefixes,
            } => {
                let mut lines: Vec<String> = remove_prefixes
                    .iter()
                    .map(|p| format!("remove {p}*"))
                    .collect();
                lines.extend(set.iter().map(|(k, v)| format!("set {k}={v}")));
                lines
            }
        }
    }
}

/// Where the edited text goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "type")]
pub enum WriteBack {
    /// Fed to this command's standard input.
    Stdin {
        /// The command.
        command: Command,
    },
    /// Appended as a last argument `PREFIX<text>`.
    Arg {
        /// The command.
        command: Command,
        /// Text before the edited value in the last argument.
        prefix: String,
    },
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Step {
    /// Run a program.
    Run {
        /// Where.
        on: Target,
        /// What.
        command: Command,
        /// Run it through `sudo -n` (remote non-root users).
        sudo: bool,
        /// Text fed to standard input (file contents travel this way, never in argv).
        stdin: Option<String>,
        /// Why, shown in the dry run.
        why: String,
    },
    /// Create or replace a file; `before` is what was read (None: the file is new).
    WriteFile {
        /// Where.
        on: Target,
        /// Absolute path.
        path: String,
        /// Content read before the change.
        before: Option<String>,
        /// New content.
        after: String,
        /// Unix mode.
        mode: u32,
        /// Why, shown in the dry run.
        why: String,
    },
    /// Read, edit purely, write back (e.g. `kops get` → merge → `kops replace -f -`).
    Transform {
        /// Where.
        on: Target,
        /// The command whose standard output is the current text.
        read: Command,
        /// The pure edit.
        edit: Edit,
        /// Where the result goes.
        write: WriteBack,
        /// Why, shown in the dry run.
        why: String,
    },
    /// One round trip on a node ([`crate::node::NodeStep`]): what is shown is what is sent.
    Node {
        /// The host.
        on: Target,
        /// Through `sudo -n` (the login is not root).
        sudo: bool,
        /// Why, shown in the dry run.
        why: String,
        /// The step.
        step: crate::node::NodeStep,
    },
}

impl Step {
    /// The reason given for the step.
    pub fn why(&self) -> &str {
        match self {
            Step::Run { why, .. }
            | Step::WriteFile { why, .. }
            | Step::Transform { why, .. }
            | Step::Node { why, .. } => why,
        }
    }

    /// Where the step happens.
    pub fn target(&self) -> &Target {
        match self {
            Step::Run { on, .. }
            | Step::WriteFile { on, .. }
            | Step::Transform { on, .. }
            | Step::Node { on, .. } => on,
        }
    }

    /// A local `Run` step without stdin.
    pub fn run(command: Command, why: impl Into<String>) -> Self {
        Step::Run {
            on: Target::Local,
            command,
            sudo: false,
            stdin: None,
            why: why.into(),
        }
    }
}

/// An ordered list of steps plus what the user should know about them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Plan {
    /// One line saying what the plan does.
    pub title: String,
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// Remarks printed before the steps (warnings, what the API server will see).
    pub notes: Vec<String>,
}

fn prefix_for(on: &Target) -> String {
    match on {
        Target::Local => String::new(),
        Target::Host(h) => format!("[{h}] "),
    }
}

/// A unified diff of two texts with `path` in the headers (empty when they are equal).
pub fn unified_diff(path: &str, before: &str, after: &str) -> String {
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a{path}"), &format!("b{path}"))
        .to_string()
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.fmt_verbose(f, false)
    }
}

impl Step {
    fn fmt_verbose(&self, f: &mut fmt::Formatter<'_>, verbose: bool) -> fmt::Result {
        writeln!(f, "# {}", self.why())?;
        let at = prefix_for(self.target());
        match self {
            Step::Node { sudo, step, .. } => step.fmt_step(f, &at, *sudo, verbose),
            Step::Run {
                command,
                sudo,
                stdin,
                ..
            } => {
                let sudo = if *sudo { "sudo -n " } else { "" };
                match stdin {
                    None => writeln!(f, "+ {at}{sudo}{command}"),
                    Some(text) => {
                        writeln!(f, "+ {at}{sudo}{command} <<'K8SOIDC_EOF'")?;
                        write!(f, "{text}")?;
                        if !text.ends_with('\n') {
                            writeln!(f)?;
                        }
                        writeln!(f, "K8SOIDC_EOF")
                    }
                }
            }
            Step::WriteFile {
                path,
                before,
                after,
                mode,
                ..
            } => match before {
                None => {
                    writeln!(f, "+ {at}write {path} (mode {mode:04o}, new file):")?;
                    for line in after.lines() {
                        writeln!(f, "    {line}")?;
                    }
                    Ok(())
                }
                Some(before) => {
                    writeln!(f, "+ {at}write {path} (mode {mode:04o}):")?;
                    write!(f, "{}", unified_diff(path, before, after))
                }
            },
            Step::Transform {
                read, edit, write, ..
            } => {
                writeln!(f, "+ {at}{read}")?;
                for line in edit.describe() {
                    writeln!(f, "    | {line}")?;
                }
                match write {
                    WriteBack::Stdin { command } => {
                        writeln!(f, "+ {at}{command}   # edited text on stdin")
                    }
                    WriteBack::Arg { command, prefix } => writeln!(
                        f,
                        "+ {at}{command} {}",
                        shell::quote(&format!("{prefix}<merged value>"))
                    ),
                }
            }
        }
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.display(false).fmt(f)
    }
}

impl Plan {
    /// The dry run; with `verbose`, node steps also show the exact script sent.
    pub fn display(&self, verbose: bool) -> PlanDisplay<'_> {
        PlanDisplay {
            plan: self,
            verbose,
        }
    }
}

/// [`Plan::display`].
pub struct PlanDisplay<'a> {
    plan: &'a Plan,
    verbose: bool,
}

impl fmt::Display for PlanDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "# {}", self.plan.title)?;
        for note in &self.plan.notes {
            writeln!(f, "# note: {note}")?;
        }
        for step in &self.plan.steps {
            writeln!(f)?;
            step.fmt_verbose(f, self.verbose)?;
        }
        Ok(())
    }
}

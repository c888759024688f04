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

/// The program name of a step where k8soidc runs itself; it is displayed so, and the local
/// executor runs the very executable that is running (`std::env::current_exe`).
pub const K8SOIDC: &str = "k8soidc";

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

/// Shown with secret arguments masked ([`redact_args`]); [`Command::to_shell`] is the exact line.
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let args = redact_args(&self.args);
        f.write_str(&shell::join(std::iter::once(&self.program).chain(&args)))
    }
}

/// Shown instead of a `*-data` field's value, as `kubectl config view` shows it.
pub(crate) const DATA_OMITTED: &str = "DATA+OMITTED";
/// Shown instead of a token, password or client secret, as `kubectl config view` shows a token.
pub(crate) const REDACTED: &str = "REDACTED";

/// kubeconfig fields holding base64 data (`kubectl config view` omits all three; the key is
/// the secret one, the others are only long).
const DATA_KEYS: [&str; 3] = [
    "client-key-data",
    "client-certificate-data",
    "certificate-authority-data",
];

/// A name (YAML key, or flag without its dashes) that holds a credential: `token`,
/// `id-token`, `refresh-token`, `password`, `client-secret`, `clientSecret`, `secret`, ...
fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["token", "password", "secret"]
        .iter()
        .any(|w| n.ends_with(w))
}

/// A command-line flag that takes a credential (`--oidc-client-secret`, `--token`, `--password`).
fn is_secret_flag(word: &str) -> bool {
    word.starts_with('-') && is_secret_name(word.trim_start_matches('-'))
}

/// Masks the value of every `-flag=VALUE` inside `text` whose flag takes a credential
/// (also when nested: `--exec-arg=--oidc-client-secret=VALUE`). The value ends at white space,
/// a quote, `,`, `]` or `}`.
fn redact_flag_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(eq) = rest.find('=') {
        let (head, tail) = rest.split_at(eq);
        let start = head
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .map_or(0, |i| i + 1);
        out.push_str(head);
        out.push('=');
        let tail = &tail[1..];
        if is_secret_flag(&head[start..]) {
            let end = tail
                .find(|c: char| c.is_whitespace() || "'\",]}".contains(c))
                .unwrap_or(tail.len());
            if end > 0 {
                out.push_str(REDACTED);
            }
            rest = &tail[end..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// Arguments as displayed: a credential after `--flag=` or after a bare secret flag is
/// replaced by `REDACTED` (a `--exec-arg=` prefix is kept).
pub(crate) fn redact_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut next_is_secret = false;
    for a in args {
        let (prefix, word) = match a.strip_prefix("--exec-arg=") {
            Some(w) => ("--exec-arg=", w),
            None => ("", a.as_str()),
        };
        if next_is_secret {
            out.push(format!("{prefix}{REDACTED}"));
            next_is_secret = false;
            continue;
        }
        next_is_secret = is_secret_flag(word) && !word.contains('=');
        out.push(redact_flag_values(a));
    }
    out
}

/// Text (YAML, args files, scripts) as displayed: the values of kubeconfig `*-data` fields
/// become `DATA+OMITTED`; those of keys naming a credential (`token:`, `password:`,
/// `client-secret:`, ...) and of secret flags (`--oidc-client-secret=…`, or the list item
/// after a bare `- --oidc-client-secret`) become `REDACTED`; a block scalar under such a key
/// is left out. Applied to every file and stdin a plan displays, so no command can show a
/// credential it read; what is written is the real content.
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut skip_deeper_than: Option<usize> = None;
    let mut next_item_is_secret = false;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let indent = body.len() - body.trim_start().len();
        if let Some(level) = skip_deeper_than {
            if body.trim().is_empty() || indent > level {
                continue;
            }
            skip_deeper_than = None;
        }
        let mut rest = &body[indent..];
        let mut lead = indent;
        let mut item = false;
        while let Some(r) = rest.strip_prefix("- ") {
            lead += 2 + (r.len() - r.trim_start().len());
            rest = r.trim_start();
            item = true;
        }
        let unquote = |v: &str| v.trim().trim_matches(['"', '\'']).to_string();
        if item && next_item_is_secret {
            next_item_is_secret = false;
            out.push_str(&body[..lead]);
            out.push_str(REDACTED);
            out.push_str(ending);
            continue;
        }
        next_item_is_secret = false;
        let key_value = rest
            .find(':')
            .filter(|&i| rest[i + 1..].is_empty() || rest[i + 1..].starts_with(' '))
            .map(|i| (unquote(&rest[..i]), rest[i + 1..].trim()));
        if let Some((key, value)) = key_value {
            let data = DATA_KEYS.contains(&key.as_str());
            if (data || is_secret_name(&key)) && !value.is_empty() && !value.starts_with('#') {
                let mask = if data { DATA_OMITTED } else { REDACTED };
                out.push_str(&body[..lead]);
                out.push_str(&rest[..rest.find(':').unwrap_or(0) + 1]);
                out.push(' ');
                out.push_str(mask);
                out.push_str(ending);
                if value.starts_with('|') || value.starts_with('>') {
                    skip_deeper_than = Some(indent);
                }
                continue;
            }
        }
        if item {
            let v = unquote(rest);
            next_item_is_secret = is_secret_flag(&v) && !v.contains('=');
        }
        out.push_str(&redact_flag_values(body));
        out.push_str(ending);
    }
    out
}

/// What a [`Step::Await`] waits for: a pure reading of the polled command's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "until")]
pub enum Until {
    /// Every control-plane machine of the KubeadmControlPlane `name` is rolled out
    /// ([`crate::capi::rollout`] of `kubectl get kubeadmcontrolplane NAME -o json`).
    CapiRollout {
        /// The KubeadmControlPlane.
        name: String,
    },
    /// `aws eks describe-identity-provider-config` shows the config `name` as `ACTIVE`.
    EksActive {
        /// The identity provider config.
        name: String,
    },
    /// `aws eks list-identity-provider-configs` no longer lists the config `name`.
    EksGone {
        /// The identity provider config.
        name: String,
    },
    /// A `kubectl get … --ignore-not-found` prints something: the object `name` exists (e.g.
    /// the ClientConfig Identity Service for GKE creates when it is turned on).
    Exists {
        /// The object, as the dry run names it.
        name: String,
    },
}

/// One poll's reading of a [`Step::Await`] command's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The condition holds; what was seen.
    Done(String),
    /// Not yet; what was seen (shown as progress).
    Pending(String),
}

impl Until {
    /// Reads one poll's output; an error when it can never become true (e.g. `DELETING`).
    pub fn check(&self, output: &str) -> Result<Progress, crate::PlanError> {
        match self {
            Until::CapiRollout { name } => {
                let r = crate::capi::rollout(output)?;
                Ok(if r.done {
                    Progress::Done(format!(
                        "KubeadmControlPlane `{name}` rolled out: {}",
                        r.summary
                    ))
                } else {
                    Progress::Pending(format!("KubeadmControlPlane `{name}`: {}", r.summary))
                })
            }
            Until::EksActive { name } => crate::eks::active_progress(output, name),
            Until::EksGone { name } => crate::eks::gone_progress(output, name),
            Until::Exists { name } => Ok(if output.trim().is_empty() {
                Progress::Pending(format!("{name}: not there yet"))
            } else {
                Progress::Done(format!("{name} exists"))
            }),
        }
    }

    /// The condition, as the dry run shows it.
    pub fn describe(&self) -> String {
        match self {
            Until::CapiRollout { .. } => "until every control-plane machine is rolled out".into(),
            Until::EksActive { name } => format!("until `{name}` is ACTIVE"),
            Until::EksGone { name } => format!("until `{name}` is no longer listed"),
            Until::Exists { name } => format!("until {name} exists"),
        }
    }

    /// What the user should know when the wait gives up, given the last output read.
    pub fn on_timeout(&self, read: &Command, last_output: &str) -> String {
        match self {
            Until::CapiRollout { name } => {
                let conditions: String = crate::capi::rollout(last_output)
                    .map(|r| r.conditions.iter().map(|c| format!("\n  | {c}")).collect())
                    .unwrap_or_default();
                format!(
                    "the patch is applied and the controller keeps going; watch it with `kubectl get kubeadmcontrolplane {name} -w`; conditions:{}",
                    if conditions.is_empty() { " none reported".to_string() } else { conditions }
                )
            }
            Until::EksActive { .. } | Until::EksGone { .. } | Until::Exists { .. } => {
                format!("the change was made and the provider keeps going; watch it with `{read}`")
            }
        }
    }
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
    /// Runs a read-only command every `interval_secs` until its output says done ([`Until`]),
    /// or gives up after `timeout_secs` (at most [`poll_count`] polls; e.g. a Cluster API rollout,
    /// an EKS identity provider association).
    Await {
        /// Where.
        on: Target,
        /// The command polled (read-only).
        read: Command,
        /// What its output must say.
        until: Until,
        /// Seconds between polls.
        interval_secs: u64,
        /// Seconds before giving up.
        timeout_secs: u64,
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
            | Step::Await { why, .. }
            | Step::Node { why, .. } => why,
        }
    }

    /// Where the step happens.
    pub fn target(&self) -> &Target {
        match self {
            Step::Run { on, .. }
            | Step::WriteFile { on, .. }
            | Step::Await { on, .. }
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

/// How many polls a [`Step::Await`] makes at most: one at the start, then one per interval.
pub fn poll_count(interval_secs: u64, timeout_secs: u64) -> u64 {
    timeout_secs / interval_secs.max(1) + 1
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

/// A unified diff of two texts with `a/PATH` and `b/PATH` headers (empty when they are equal);
/// a last line without a newline is marked as `diff` marks it.
pub fn unified_diff(path: &str, before: &str, after: &str) -> String {
    let sep = if path.starts_with('/') { "" } else { "/" };
    let mut diff = similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a{sep}{path}"), &format!("b{sep}{path}"))
        .to_string();
    if !diff.is_empty() && !diff.ends_with('\n') {
        diff.push_str("\n\\ No newline at end of file\n");
    }
    diff
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
                        write!(f, "{}", redact(text))?;
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
                    for line in redact(after).lines() {
                        writeln!(f, "    {line}")?;
                    }
                    Ok(())
                }
                Some(before) => {
                    writeln!(f, "+ {at}write {path} (mode {mode:04o}):")?;
                    let diff = unified_diff(path, &redact(before), &redact(after));
                    if diff.is_empty() && before != after {
                        writeln!(
                            f,
                            "    (only values shown as {REDACTED} or {DATA_OMITTED} change)"
                        )
                    } else {
                        write!(f, "{diff}")
                    }
                }
            },
            Step::Await {
                read,
                until,
                interval_secs,
                timeout_secs,
                ..
            } => {
                writeln!(f, "+ {at}{read}")?;
                writeln!(
                    f,
                    "#   again every {interval_secs}s {}, up to {} ({} polls at most)",
                    until.describe(),
                    crate::shell::duration(*timeout_secs),
                    poll_count(*interval_secs, *timeout_secs)
                )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_diffs_are_redacted_like_kubectl_config_view() {
        let text = "\
users:
- name: admin
  user:
    client-certificate-data: Q0VSVA==
    client-key-data: S0VZU0VDUkVU
    token: tok-SECRET-1
- name: basic
  user:
    username: me
    password: \"pw-SECRET-2\"
- name: oidc
  user:
    exec:
      args:
      - oidc-login
      - --oidc-client-secret=cs-SECRET-3
      - --oidc-client-secret
      - cs-SECRET-4
      - --oidc-issuer-url=https://idp.example.com
    auth-provider:
      config:
        id-token: idt-SECRET-5
        refresh-token: rt-SECRET-6
        client-secret: cs-SECRET-7
clusters:
- cluster:
    certificate-authority-data: Q0E=
    server: https://127.0.0.1:6443
  name: kind
token: |
  block-SECRET-8
empty-token:
flags: [\"--token=t-SECRET-9\", \"--v=2\"]
";
        let want = "\
users:
- name: admin
  user:
    client-certificate-data: DATA+OMITTED
    client-key-data: DATA+OMITTED
    token: REDACTED
- name: basic
  user:
    username: me
    password: REDACTED
- name: oidc
  user:
    exec:
      args:
      - oidc-login
      - --oidc-client-secret=REDACTED
      - --oidc-client-secret
      - REDACTED
      - --oidc-issuer-url=https://idp.example.com
    auth-provider:
      config:
        id-token: REDACTED
        refresh-token: REDACTED
        client-secret: REDACTED
clusters:
- cluster:
    certificate-authority-data: DATA+OMITTED
    server: https://127.0.0.1:6443
  name: kind
token: REDACTED
empty-token:
flags: [\"--token=REDACTED\", \"--v=2\"]
";
        assert_eq!(redact(text), want);
        let step = Step::WriteFile {
            on: Target::Local,
            path: "/kc".into(),
            before: Some(text.into()),
            after: format!("{text}- name: new\n"),
            mode: 0o600,
            why: "w".into(),
        };
        let shown = step.to_string();
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(shown.contains("\n token: REDACTED\n"), "{shown}");
        let only_secret = Step::WriteFile {
            on: Target::Local,
            path: "/kc".into(),
            before: Some("token: a\n".into()),
            after: "token: b\n".into(),
            mode: 0o600,
            why: "w".into(),
        };
        assert_eq!(
            only_secret.to_string(),
            "# w\n+ write /kc (mode 0600):\n    (only values shown as REDACTED or DATA+OMITTED change)\n"
        );
    }

    #[test]
    fn secret_arguments_are_redacted_in_commands_and_stdin() {
        let step = Step::Run {
            on: Target::Local,
            command: Command::new(
                "kubectl",
                [
                    "config",
                    "set-credentials",
                    "u",
                    "--exec-arg=--oidc-client-secret=cs-SECRET",
                    "--token",
                    "tok-SECRET",
                    "--exec-arg=--client-secret",
                    "--exec-arg=x-SECRET",
                    "--server=https://a",
                ],
            ),
            sudo: false,
            stdin: Some("password: pw-SECRET\nother: 1\n".into()),
            why: "w".into(),
        };
        assert_eq!(
            step.to_string(),
            "# w\n+ kubectl config set-credentials u --exec-arg=--oidc-client-secret=REDACTED --token REDACTED --exec-arg=--client-secret --exec-arg=REDACTED --server=https://a <<'K8SOIDC_EOF'\npassword: REDACTED\nother: 1\nK8SOIDC_EOF\n"
        );
    }

    #[test]
    fn a_missing_last_newline_is_marked() {
        assert_eq!(
            unified_diff("/f", "a\n", "b"),
            "--- a/f\n+++ b/f\n@@ -1 +1 @@\n-a\n+b\n\\ No newline at end of file\n"
        );
    }
}

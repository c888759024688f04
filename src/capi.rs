//! Cluster API on a management cluster: read the KubeadmControlPlane with kubectl, compute the
//! merge patch from the object itself (so `files`, `extraVolumes` and v1beta2 `extraArgs` keep
//! their other entries; `backends::capi::live_patch`), show it (dry run: the plan's
//! `kubectl patch --type merge` step and the diff, then its wait step), and run that plan: the
//! patch, then the wait (`Step::Await`) until the controller has rolled out every
//! control-plane machine, or the timeout with the object's conditions.

use std::io::Write;
use std::process::ExitCode;

use backends::capi;
use backends::{Command, Plan, Step, Target, Until};

use crate::cli::{OidcArgs, PatchArgs};
use crate::error::Error;
use crate::exec::capture;
use crate::ui::Env;

const KUBECTL_HINT: &str = "install kubectl: https://kubernetes.io/docs/tasks/tools/";

/// `patch --capi NAME`: OIDC on a Cluster API KubeadmControlPlane (from [`PatchArgs`]).
#[derive(Debug)]
pub(crate) struct CapiArgs {
    /// Name of the KubeadmControlPlane on the management cluster.
    pub(crate) name: String,
    /// Its namespace [default: the kubeconfig context's].
    pub(crate) namespace: Option<String>,
    /// Kubeconfig of the management cluster.
    pub(crate) kubeconfig: Option<String>,
    /// Context in that kubeconfig.
    pub(crate) context: Option<String>,
    /// Take the OIDC settings out instead of setting them.
    pub(crate) remove: bool,
    /// Print the command and the diff, change nothing; `server`: also have the API server
    /// check the patch (`kubectl patch --dry-run=server`: admission and validation run,
    /// nothing is stored).
    pub(crate) dry_run: crate::cli::DryRun,
    /// Do not ask for confirmation.
    pub(crate) yes: bool,
    /// Give up waiting for the rollout after this many seconds.
    pub(crate) timeout: u64,
    /// Seconds between status checks.
    pub(crate) poll_interval: u64,
    pub(crate) oidc: OidcArgs,
}

/// Default rollout timeout: every control-plane machine is replaced, one at a time.
const DEFAULT_TIMEOUT: &str = "30m";

impl CapiArgs {
    /// The `patch --capi NAME` flags; `--timeout` is a duration (`30m`, `1h`).
    pub(crate) fn from_patch(args: PatchArgs) -> Result<Self, Error> {
        if args.in_place || args.file_kind.is_some() {
            return Err(Error::Input(
                "--in-place and --file-kind go with --file, not --capi; drop them".into(),
            ));
        }
        let timeout = crate::config::parse_duration(
            "--timeout",
            args.timeout.as_deref().unwrap_or(DEFAULT_TIMEOUT),
        )?;
        Ok(CapiArgs {
            name: args.capi.unwrap_or_default(),
            namespace: args.namespace,
            kubeconfig: args.kubeconfig,
            context: args.context,
            remove: args.remove,
            dry_run: args.dry_run,
            yes: args.yes,
            timeout,
            poll_interval: args.poll_interval.unwrap_or(10),
            oidc: args.oidc,
        })
    }

    fn kubectl(&self, args: &[&str]) -> Command {
        let mut argv: Vec<String> = Vec::new();
        if let Some(k) = &self.kubeconfig {
            argv.extend(["--kubeconfig".to_string(), k.clone()]);
        }
        if let Some(c) = &self.context {
            argv.extend(["--context".to_string(), c.clone()]);
        }
        if let Some(n) = &self.namespace {
            argv.extend(["--namespace".to_string(), n.clone()]);
        }
        argv.extend(args.iter().map(|a| a.to_string()));
        Command::new("kubectl", argv)
    }

    fn get(&self) -> Command {
        self.kubectl(&["get", "kubeadmcontrolplane", &self.name, "-o", "json"])
    }
}

fn out(text: &str) -> Result<(), Error> {
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| Error::io("stdout", e))
}

/// `patch --capi NAME`: read the KubeadmControlPlane, then show the plan (dry run, with the
/// API server's own check under `--dry-run=server`) or ask and run it.
pub(crate) fn run_capi(args: CapiArgs, env: &Env) -> Result<ExitCode, Error> {
    let settings = if args.remove {
        None
    } else {
        Some(crate::config::settings(&args.oidc, env)?)
    };
    crate::exec::check_programs(&[("kubectl", KUBECTL_HINT)])?;
    let name = &args.name;
    let current = capture(&args.get())?;
    let Some(p) = capi::live_patch(&current, settings.as_ref())? else {
        out(&format!(
            "KubeadmControlPlane `{name}` already has {}; nothing to do\n",
            if args.remove {
                "no OIDC settings"
            } else {
                "these OIDC settings"
            }
        ))?;
        return Ok(ExitCode::SUCCESS);
    };
    let patch_args = [
        "patch",
        "kubeadmcontrolplane",
        name,
        "--type",
        "merge",
        "-p",
        &p.patch,
    ];
    let plan = rollout_plan(&args, &p, args.kubectl(&patch_args));
    let shown = shown(&plan, name, &p);
    if args.dry_run.on {
        out(&shown)?;
        if args.dry_run.server {
            let check = args.kubectl(&[&patch_args[..], &["--dry-run=server"]].concat());
            let answer = capture(&check)?;
            out(&format!(
                "# the API server accepts it (admission and validation ran, nothing was stored):\n+ {check}\n{answer}"
            ))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    eprint!("{shown}");
    if !env.confirm(
        &format!("Patch KubeadmControlPlane `{name}` and roll out its machines?"),
        args.yes,
    )? {
        eprintln!("not confirmed: nothing done");
        return Ok(ExitCode::SUCCESS);
    }
    crate::exec::run_plan(&plan, env, false)?;
    Ok(ExitCode::SUCCESS)
}

/// The plan: the merge patch `patch` (computed as `p`), then the wait until the controller has
/// replaced every control-plane machine.
fn rollout_plan(args: &CapiArgs, p: &capi::LivePatch, patch: Command) -> Plan {
    let name = &args.name;
    Plan {
        title: format!(
            "{} OIDC on KubeadmControlPlane `{name}` ({}); the controller then replaces each control-plane machine",
            if args.remove { "remove" } else { "set" },
            p.version.api_version(),
        ),
        steps: vec![
            Step::run(
                patch,
                "merge-patch the KubeadmControlPlane (the diff below is the change to its spec.kubeadmConfigSpec)",
            ),
            Step::Await {
                on: Target::Local,
                read: args.get(),
                until: Until::CapiRollout { name: name.clone() },
                interval_secs: args.poll_interval,
                timeout_secs: args.timeout,
                why: "wait until the controller has replaced every control-plane machine".into(),
            },
        ],
        notes: vec![],
    }
}

/// How `plan` is shown: the patch step, its diff, then the wait: the steps of `plan`, in
/// order.
fn shown(plan: &Plan, name: &str, p: &capi::LivePatch) -> String {
    format!(
        "{}{}\n{}",
        Plan {
            steps: plan.steps[..1].to_vec(),
            ..plan.clone()
        },
        backends::unified_diff(
            &format!("/kubeadmcontrolplane/{name}/spec/kubeadmConfigSpec"),
            &p.before,
            &p.after
        ),
        plan.steps[1],
    )
}

//! `patch --kops CLUSTER`, `patch --juju`, `patch --k3d CLUSTER`: a running cluster changed
//! with its own tool on this machine. This module reads the state (`kops get cluster`, `juju
//! config`, `docker ps/inspect/exec cat`), lets the backend build the [`LivePatch`], shows it
//! (`--dry-run` stops there), asks, runs its plan, and on a failure runs the restore steps the
//! backend chose for the failing step. It ends with the same summary table as `patch --ssh`.

use std::process::ExitCode;

use backends::live::LivePatch;
use backends::{charmed, k3d, kops, Command, Distribution};

use crate::cli::PatchArgs;
use crate::error::Error;
use crate::exec::capture;
use crate::patch::{summary, Row};
use crate::report::{out, Outcome};
use crate::ui::Env;

const KOPS_HINT: &str = "install kops: see https://kops.sigs.k8s.io/getting_started/install/";
const JUJU_HINT: &str = "install the Juju 3 client: `sudo snap install juju --classic`";
const DOCKER_HINT: &str = "install Docker (k3d runs its nodes as Docker containers): https://docs.docker.com/engine/install/";

pub(crate) fn run(args: &PatchArgs, env: &Env) -> Result<ExitCode, Error> {
    if args.in_place || args.file_kind.is_some() {
        return Err(Error::Input(
            "invalid `--in-place`/`--file-kind`: they go with --file; drop them".into(),
        ));
    }
    if args.distro != "auto" {
        return Err(Error::Input(format!(
            "invalid --distro `{}`: --kops, --juju and --k3d name the distribution already; drop --distro",
            backends::escape(&args.distro)
        )));
    }
    let timeout = crate::config::parse_duration(
        "--timeout",
        args.timeout
            .as_deref()
            .unwrap_or(if args.juju { "30m" } else { "5m" }),
    )?;
    let settings = crate::patch::settings_unless_removing(args, env)?;
    crate::patch::preflight(settings.as_ref(), args)?;
    if let Some(name) = &args.kops {
        crate::exec::check_programs(&[("kops", KOPS_HINT)])?;
        let cluster = kops::LiveCluster {
            name: name.clone(),
            state: args.state.clone(),
            staging_dir: crate::render::staging_dir(Distribution::Kops, name)?,
        };
        let current = capture(&cluster.get())?;
        let live = kops::live_patch(&cluster, &current, settings.as_ref())?;
        let backup = format!("{}/cluster-before.yaml", cluster.staging_dir);
        return finish(live, &format!("kops/{name}"), "kops", &backup, args, env);
    }
    if args.juju {
        crate::exec::check_programs(&[("juju", JUJU_HINT)])?;
        let app = charmed::LiveApp {
            model: args.model.clone(),
            application: args
                .application
                .clone()
                .unwrap_or_else(|| charmed::APP.to_string()),
            timeout,
        };
        let current = capture(&app.get())?;
        let live = charmed::live_patch(&app, &current, settings.as_ref())?;
        let label = match &app.model {
            Some(m) => format!("juju/{m}/{}", app.application),
            None => format!("juju/{}", app.application),
        };
        return finish(live, &label, "charmed", "", args, env);
    }
    let name = args.k3d.clone().unwrap_or_default();
    crate::exec::check_programs(&[("docker", DOCKER_HINT)])?;
    let cluster = k3d::live::LiveCluster {
        name: name.clone(),
        timeout,
        staging_dir: crate::render::staging_dir(Distribution::K3d, &name)?,
    };
    let servers = read_k3d(&name)?;
    let live = k3d::live::live_patch(&cluster, &servers, settings.as_ref())?;
    finish(live, &format!("k3d/{name}"), "k3d", "", args, env)
}

/// Each server container of k3d cluster `name`: its k3s arguments and k8soidc's files.
fn read_k3d(name: &str) -> Result<Vec<k3d::live::LiveServer>, Error> {
    let list = capture(&k3d::live::list_servers(name))?;
    let mut names: Vec<&str> = list
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    names.sort_unstable();
    let mut servers = Vec::new();
    for container in names {
        let cmd = k3d::live::inspect_args(container);
        let json = capture(&cmd)?;
        let args: Vec<String> = serde_json::from_str(json.trim()).map_err(|e| {
            Error::Other(format!(
                "`{cmd}` printed `{}`, not a JSON list of strings ({e})",
                backends::escape(json.trim())
            ))
        })?;
        let mut files = Vec::new();
        for path in k3d::live::live_paths() {
            files.push((
                path.clone(),
                read_maybe(&k3d::live::read_file(container, &path))?,
            ));
        }
        servers.push(k3d::live::LiveServer {
            container: container.to_string(),
            args,
            files,
        });
    }
    Ok(servers)
}

/// Standard output of `cmd`, or `None` when it failed because the file does not exist.
fn read_maybe(cmd: &Command) -> Result<Option<String>, Error> {
    match capture(cmd) {
        Ok(text) => Ok(Some(text)),
        Err(Error::CommandFailed { stderr, .. })
            if stderr.contains("No such file or directory") =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn row(label: &str, distro: &str, outcome: Outcome) -> Row {
    Row {
        host: label.to_string(),
        distro: distro.to_string(),
        outcome,
    }
}

/// Shows the plan, asks, runs it; restores on failure. `backup` names where the previous
/// state is kept, when there is such a file.
fn finish(
    live: Option<LivePatch>,
    label: &str,
    distro: &str,
    backup: &str,
    args: &PatchArgs,
    env: &Env,
) -> Result<ExitCode, Error> {
    let Some(live) = live else {
        eprintln!(
            "[{label}] already {}; nothing to do",
            if args.remove {
                "without OIDC settings from k8soidc"
            } else {
                "has these OIDC settings"
            }
        );
        eprint!("{}", summary(&[row(label, distro, Outcome::Unchanged)]));
        return Ok(ExitCode::SUCCESS);
    };
    if args.dry_run.on {
        out(&live.to_string())?;
        eprint!("{}", summary(&[row(label, distro, Outcome::Planned)]));
        return Ok(ExitCode::SUCCESS);
    }
    eprint!("{live}");
    if !env.confirm(&format!("{}?", live.plan.title), args.yes)? {
        eprintln!("not confirmed: nothing done");
        return Ok(ExitCode::SUCCESS);
    }
    let failure = match crate::exec::run_plan_at(&live.plan, env, args.verbose) {
        Ok(()) => {
            eprint!(
                "{}",
                summary(&[row(
                    label,
                    distro,
                    Outcome::Patched {
                        backup: backup.to_string()
                    }
                )])
            );
            return Ok(ExitCode::SUCCESS);
        }
        Err(f) => f,
    };
    let (outcome, e) = restore(&live, failure, label, backup, args.verbose, env);
    eprint!("{}", summary(&[row(label, distro, outcome)]));
    Err(e)
}

/// After step `step` (from 0) of `live`'s plan failed with `error`: its restore steps, if
/// anything in the cluster changed. Returns what the host came to (failed, or rolled back
/// to `backup`) and the error that ends the run.
fn restore(
    live: &LivePatch,
    (step, error): (usize, Error),
    label: &str,
    backup: &str,
    verbose: bool,
    env: &Env,
) -> (Outcome, Error) {
    let restore = live.restore_after(step);
    if restore.steps.is_empty() {
        return (
            Outcome::Failed,
            Error::Other(format!(
                "step {} failed before anything in the cluster changed; nothing to restore: {error}",
                step + 1
            )),
        );
    }
    eprintln!(
        "[{label}] step {} failed: {error}\n[{label}] restoring what was read before the change",
        step + 1
    );
    match crate::exec::run_plan(&restore, env, verbose) {
        Ok(()) => (
            Outcome::RolledBack {
                backup: backup.to_string(),
            },
            Error::Other(format!(
                "step {} failed and the previous state was restored: {error}",
                step + 1
            )),
        ),
        Err(again) => (
            Outcome::Failed,
            Error::Other(format!(
                "step {} failed ({error}), and restoring failed too: {again}; run the restore steps shown above by hand",
                step + 1
            )),
        ),
    }
}

//! `k8soidc kubeconfig`: add or update a user and context that log in through kubelogin.
//! The merge is pure (`backends::kubeconfig`); here: which file, the plan (backup, atomic write
//! 0600) that the dry run prints and the executor runs, and a warning when the kubelogin
//! plugin is not installed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use backends::kubeconfig::{commands_text, equivalent_commands, merge, Request};
use backends::{Command, Plan, Step, Target};

use crate::cli::KubeconfigArgs;
use crate::error::Error;
use crate::ui::Env;

/// `--kubeconfig`, else the first path of `$KUBECONFIG`, else `~/.kube/config`.
fn target(flag: Option<&str>) -> Result<PathBuf, Error> {
    if let Some(f) = flag {
        return Ok(PathBuf::from(f));
    }
    if let Some(list) = std::env::var_os("KUBECONFIG") {
        if let Some(first) = std::env::split_paths(&list).find(|p| !p.as_os_str().is_empty()) {
            return Ok(first);
        }
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".kube/config")),
        None => Err(Error::Input(
            "cannot find the kubeconfig: neither --kubeconfig, KUBECONFIG nor HOME is set; pass --kubeconfig FILE".into(),
        )),
    }
}

fn absolute(p: &Path) -> Result<PathBuf, Error> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir()
            .map_err(|e| Error::io(".", e))?
            .join(p))
    }
}

/// `YYYYMMDDTHHMMSSZ` in UTC.
pub(crate) fn utc_stamp(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d, hh, mm, ss) =
        backends::identity::civil_utc(i64::try_from(secs).unwrap_or(i64::MAX));
    format!("{y:04}{m:02}{d:02}T{hh:02}{mm:02}{ss:02}Z")
}

fn warn_plugin() {
    if which::which("kubectl-oidc_login").is_err() {
        eprintln!("warning: `kubectl-oidc_login` is not on PATH, so kubectl cannot log in with this user; install kubelogin: `kubectl krew install oidc-login` (https://github.com/int128/kubelogin)");
    }
}

/// `k8soidc kubeconfig`: merge the user and context into the file, then print the plan and
/// the kubectl commands (dry run) or run the plan.
pub(crate) fn run(args: KubeconfigArgs, env: &Env) -> Result<ExitCode, Error> {
    managed_distro(&args)?;
    let s = crate::config::settings(&args.oidc, env)?;
    let path = absolute(&target(args.kubeconfig.as_deref())?)?;
    let shown = path.display().to_string();
    let req = Request {
        cluster: args.cluster.clone(),
        server: args.server.clone(),
        cluster_ca: cluster_ca(&args)?,
    };
    let (before, existed) = read_kubeconfig(&path, &shown)?;
    let merged = merge(&before, &s, &req)?;
    for n in &merged.notes {
        eprintln!("note: {n}");
    }
    warn_plugin();
    let kc_flag = args.kubeconfig.as_ref().map(|_| shown.as_str());
    let backup = format!("{shown}.k8soidc-backup-{}", utc_stamp(SystemTime::now()));
    let plan = plan(
        &shown,
        &before,
        existed,
        &merged.text,
        &merged.name,
        &backup,
    );
    if args.dry_run.on {
        let mut text = plan.to_string();
        if plan.steps.is_empty() {
            text.push_str(&format!("# {shown} is already up to date\n"));
        }
        let cmds = equivalent_commands(&s, &req, kc_flag, merged.cluster_added);
        text.push_str(&format!(
            "# the same change with kubectl (k8soidc writes the YAML itself):\n{}",
            commands_text(&cmds)
        ));
        std::io::stdout()
            .write_all(text.as_bytes())
            .map_err(|e| Error::io("stdout", e))?;
        return Ok(ExitCode::SUCCESS);
    }
    if plan.steps.is_empty() {
        eprintln!(
            "{shown} already has user and context `{}`; nothing changed",
            merged.name
        );
        return Ok(ExitCode::SUCCESS);
    }
    crate::exec::run_plan(&plan, env, false)?;
    if existed {
        eprintln!("backup: {backup}");
    }
    // kubectl reads the default file by itself; any other needs `--kubeconfig`.
    let default = target(None).and_then(|d| absolute(&d)).ok();
    let kc = if default.as_ref() == Some(&path) {
        String::new()
    } else {
        format!(" --kubeconfig {}", backends::shell::quote(&shown))
    };
    eprintln!(
        "wrote user and context `{}` to {shown}; use it with: kubectl{kc} config use-context {}",
        merged.name,
        backends::shell::quote(&merged.name)
    );
    Ok(ExitCode::SUCCESS)
}

/// `--distro` of a managed service: GKE is refused (kubectl logs in through gcloud there:
/// the commands to run instead); EKS gets a note on where the cluster entry comes from.
fn managed_distro(args: &KubeconfigArgs) -> Result<(), Error> {
    let distro = args
        .distro
        .as_deref()
        .map(backends::Distribution::parse)
        .transpose()?;
    if distro == Some(backends::Distribution::Gke) {
        let pool = args
            .workforce_pool
            .as_deref()
            .unwrap_or(backends::gke::DEFAULT_POOL);
        backends::gke::check_pool(pool)?;
        return Err(Error::Plan(backends::PlanError::Unsupported {
            distribution: backends::Distribution::Gke,
            message: format!(
                "with Workforce Identity Federation kubectl logs in through gcloud (gke-gcloud-auth-plugin), not kubelogin, so k8soidc writes no kubeconfig user; run `gcloud iam workforce-pools create-login-config locations/global/workforcePools/{pool}/providers/{} --output-file=login.json`, `gcloud auth login --login-config=login.json`, then `gcloud container clusters get-credentials {}` ({})",
                backends::gke::PROVIDER_ID,
                args.cluster,
                backends::gke::DOCS
            ),
        }));
    }
    if distro == Some(backends::Distribution::Eks) {
        eprintln!(
            "note: eks: the user below logs in with kubelogin and EKS validates its ID token; the cluster entry (server and CA) comes from `aws eks update-kubeconfig --name {}`",
            args.cluster
        );
    }
    Ok(())
}

/// `--certificate-authority`, as an absolute path to a file that exists.
fn cluster_ca(args: &KubeconfigArgs) -> Result<Option<String>, Error> {
    match &args.certificate_authority {
        None => Ok(None),
        Some(f) => Ok(Some(
            std::fs::canonicalize(f)
                .map_err(|e| {
                    Error::Input(format!(
                        "invalid --certificate-authority `{f}`: cannot read it ({e}); give the cluster's CA file"
                    ))
                })?
                .display()
                .to_string(),
        )),
    }
}

/// The kubeconfig's text (`shown` names it in errors) and whether the file exists; a
/// missing file is empty.
fn read_kubeconfig(path: &Path, shown: &str) -> Result<(String, bool), Error> {
    match std::fs::read(path) {
        Ok(b) => Ok((
            String::from_utf8(b).map_err(|_| {
                Error::Input(format!(
                    "invalid kubeconfig `{shown}`: it is not UTF-8 text; give a kubeconfig file"
                ))
            })?,
            true,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((String::new(), false)),
        Err(e) => Err(Error::io(shown, e)),
    }
}

/// The steps: a 0600 copy of the old file (when there is one), then the merged file, written
/// atomically with mode 0600. No steps when the file already has the user and context.
fn plan(shown: &str, before: &str, existed: bool, after: &str, name: &str, backup: &str) -> Plan {
    let mut steps = Vec::new();
    if after != before {
        if existed {
            steps.push(Step::run(
                Command::new("install", ["-m", "0600", shown, backup]),
                "back up the kubeconfig (mode 0600: it may hold credentials)",
            ));
        }
        steps.push(Step::WriteFile {
            on: Target::Local,
            path: shown.to_string(),
            before: existed.then(|| before.to_string()),
            after: after.to_string(),
            mode: 0o600,
            why: format!("add user and context `{name}` (kubelogin), keeping everything else"),
        });
    }
    Plan {
        title: format!("kubeconfig {shown}: user and context `{name}`"),
        steps,
        notes: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamps() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101T000000Z");
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(1_709_210_096)),
            "20240229T123456Z"
        );
    }
}

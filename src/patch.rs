//! `k8soidc patch`: the entry point. `--ssh HOST...` (or `--local`) runs each host's
//! transaction (`host`) one at a time, the first failure stops the run, and a summary table
//! ends it; `--inventory` runs many clusters (`fleet`), `--file` a local file (`patch_file`),
//! `--capi` a Cluster API object (`capi`), `--vcluster` a running vCluster (`vcluster`).
//! `rollback` and `backups` are in `backups`, `create --ssh` in `create_ssh`.

use std::fmt::Write as _;
use std::process::ExitCode;

use backends::Distribution;

use crate::cli::{Output, PatchArgs};
use crate::config::parse_duration;
use crate::error::Error;
use crate::exec::runtime;
use crate::exec::ssh::{hosts, HostSpec, SshOptions};
use crate::fleet::HostRow;
use crate::host::{HostJob, HostReport};
use crate::report::{out, Outcome, Say};
use crate::ui::Env;

pub(crate) struct Row {
    pub(crate) host: String,
    pub(crate) distro: String,
    pub(crate) outcome: Outcome,
}

pub(crate) fn summary(rows: &[Row]) -> String {
    let mut out = String::from("\nSUMMARY\n");
    let w = rows.iter().map(|r| r.host.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(
        out,
        "{:<w$}  {:<8}  {:<12}  BACKUP",
        "HOST", "DISTRO", "RESULT"
    );
    for r in rows {
        let result = r.outcome.word();
        let backup = match &r.outcome {
            Outcome::Patched { backup } | Outcome::RolledBack { backup } => backup.clone(),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<w$}  {:<8}  {:<12}  {backup}",
            r.host, r.distro, result
        );
    }
    out
}

/// Options that belong to one way of running `patch` given without it. clap's `requires`
/// does not catch these here: it drops a requirement whose target conflicts with an option
/// that is present (`--in-place --local`: `--file` conflicts with `--local`).
fn refuse_orphans(args: &PatchArgs) -> Result<(), Error> {
    let gke_identity_service = args.distro == "gke" && args.platform.identity_service;
    let mode = [
        (
            args.inventory.is_some(),
            "--inventory FILE",
            vec![("--parallel", args.parallel.is_some())],
        ),
        (
            args.file.is_some(),
            "--file PATH",
            vec![
                ("--in-place", args.in_place),
                ("--file-kind", args.file_kind.is_some()),
            ],
        ),
        (
            args.kops.is_some(),
            "--kops CLUSTER",
            vec![("--state", args.state.is_some())],
        ),
        (
            args.juju,
            "--juju",
            vec![
                ("--model", args.model.is_some()),
                ("--application", args.application.is_some()),
            ],
        ),
        (
            matches!(args.distro.as_str(), "eks" | "aks") || gke_identity_service,
            "--distro eks or aks (or gke with --identity-service)",
            vec![
                ("--name", args.name.is_some()),
                ("--region", args.platform.region.is_some()),
            ],
        ),
        (
            args.capi.is_some() || args.shoot.is_some() || args.vcluster.is_some(),
            "--capi NAME, --shoot NAME or --vcluster NAME",
            vec![("--namespace", args.namespace.is_some())],
        ),
        (
            args.capi.is_some()
                || args.shoot.is_some()
                || args.vcluster.is_some()
                || gke_identity_service,
            "--capi, --shoot, --vcluster or --distro gke --identity-service",
            vec![
                ("--kubeconfig", args.kubeconfig.is_some()),
                ("--context", args.context.is_some()),
            ],
        ),
        (
            gke_identity_service,
            "--distro gke --identity-service",
            vec![("--location", args.platform.location.is_some())],
        ),
    ];
    for (on, needs, flags) in mode {
        if let Some((flag, _)) = flags.into_iter().find(|(_, given)| *given && !on) {
            return Err(Error::Input(format!(
                "invalid `{flag}`: it only applies with {needs}; remove it or give {needs}"
            )));
        }
    }
    Ok(())
}

/// `k8soidc patch`: the other ways of running it (`--inventory`, `--file`, a live cluster,
/// `--talos`, `--shoot`, `--capi`, a managed service), else `--ssh HOST...` or `--local`.
/// The settings a patch puts in (from flags, environment and file); None with `--remove`.
pub(crate) fn settings_unless_removing(
    args: &PatchArgs,
    env: &Env,
) -> Result<Option<backends::OidcSettings>, Error> {
    if args.remove {
        return Ok(None);
    }
    Ok(Some(crate::config::settings(&args.oidc, env)?))
}

/// The preflight against the issuer (`k8soidc check`) before a patch that puts settings in,
/// unless `--skip-check`.
pub(crate) fn preflight(
    settings: Option<&backends::OidcSettings>,
    args: &PatchArgs,
) -> Result<(), Error> {
    match settings {
        Some(s) if !args.skip_check => crate::check::gate(s, args.dry_run.on),
        _ => Ok(()),
    }
}

pub(crate) fn run(args: PatchArgs, env: &Env) -> Result<ExitCode, Error> {
    refuse_orphans(&args)?;
    // A signal during a host's transaction is the transaction's to handle (crate::interrupt);
    // elsewhere it ends the process as it always did.
    if !args.dry_run.on {
        crate::interrupt::listen();
    }
    if args.inventory.is_some() {
        return crate::fleet::run(args, env);
    }
    if args.file.is_some() {
        return crate::patch_file::run(&args, env);
    }
    if args.kops.is_some() || args.juju || args.k3d.is_some() {
        return crate::live::run(&args, env);
    }
    if !args.talos.is_empty() {
        return crate::talos::run(&args, env);
    }
    if args.shoot.is_some() {
        return crate::gardener::run(&args, env);
    }
    if args.vcluster.is_some() {
        return crate::vcluster::run(&args, env);
    }
    if args.capi.is_some() {
        return crate::capi::run_capi(crate::capi::CapiArgs::from_patch(args)?, env);
    }
    if args.distro == "eks" {
        return crate::managed::run_eks(args, env);
    }
    if args.distro == "gke" {
        return crate::managed::run_gke(args, env);
    }
    if args.distro == "aks" {
        return crate::managed::run_aks(args, env);
    }
    run_hosts(&args, env)
}

/// `patch --ssh HOST...` (or `--local`): each host's transaction one at a time; the first
/// failure (or roll back) skips the hosts after it; a summary (or the `-o` report) ends it.
fn run_hosts(args: &PatchArgs, env: &Env) -> Result<ExitCode, Error> {
    let (specs, opts) = if args.local {
        let me = HostSpec {
            user: None,
            host: "localhost".into(),
            port: None,
            label: "localhost".into(),
        };
        (vec![me], SshOptions::default())
    } else {
        hosts(&args.ssh)?
    };
    let distro = parse_distro(&args.distro)?;
    let timeout = parse_duration("--timeout", args.timeout.as_deref().unwrap_or("5m"))?;
    let convert = conversion(args)?;
    let settings = if args.remove || convert.is_some() {
        None
    } else {
        Some(crate::config::settings(&args.oidc, env)?)
    };
    preflight(settings.as_ref(), args)?;
    let rt = runtime()?;
    // `-o json|yaml`: stdout is the report alone (one object per host); plans go to stderr.
    let data = args.output.filter(|o| *o != Output::Text);
    let mut ran = HostRuns {
        json: data.is_some(),
        rows: Vec::new(),
        json_rows: Vec::new(),
        failure: None,
    };
    for spec in &specs {
        if ran.failure.is_some() {
            ran.skip(&spec.label);
            continue;
        }
        let job = HostJob {
            local: args.local,
            spec: spec.clone(),
            opts: opts.clone(),
            settings: settings.clone(),
            remove: args.remove,
            convert,
            distro,
            timeout,
            dry_run: args.dry_run.on,
            verbose: args.verbose,
            confirm: Some((env.clone(), args.yes)),
            say: Say::host(&spec.label),
        };
        let report = rt.block_on(job.run(None));
        ran.record(&spec.label, report, args.verbose)?;
    }
    ran.finish(data)
}

/// What the hosts of [`run_hosts`] came to so far.
struct HostRuns {
    /// `-o json|yaml`: plans go to stderr and a row per host to the report.
    json: bool,
    rows: Vec<Row>,
    json_rows: Vec<HostRow>,
    /// The error that stops the run.
    failure: Option<Error>,
}

impl HostRuns {
    /// Host `label` not run: an earlier host failed.
    fn skip(&mut self, label: &str) {
        self.rows.push(Row {
            host: label.to_string(),
            distro: String::new(),
            outcome: Outcome::Skipped,
        });
        self.json_rows.push(HostRow::skipped(label));
    }

    /// Host `label`'s report: its plan printed, its row kept, its failure (or roll back)
    /// the run's.
    fn record(&mut self, label: &str, report: HostReport, verbose: bool) -> Result<(), Error> {
        if verbose {
            eprintln!("{}", report.debug_line(label));
        }
        if let Some(plan) = &report.plan {
            // With `-o json` stdout is the report alone; the plan goes to stderr.
            if self.json {
                eprint!("{plan}");
            } else {
                out(plan)?;
            }
        }
        let distro = report.distro.map(|d| d.to_string()).unwrap_or_default();
        let outcome = match &report.result {
            Ok(o) => o.clone(),
            Err(_) => Outcome::Failed,
        };
        if self.json {
            self.json_rows.push(HostRow::of(label, &report));
        }
        if let Err(e) = report.result {
            self.failure = Some(e);
        }
        if let Outcome::RolledBack { .. } = outcome {
            self.failure = Some(Error::Other(format!(
                "`{label}` did not take the new settings (not healthy, or the API server rejected its new AuthenticationConfiguration: see above); it was rolled back and the run stopped"
            )));
        }
        self.rows.push(Row {
            host: label.to_string(),
            distro,
            outcome,
        });
        Ok(())
    }

    /// The `-o` report (format `data`) on stdout, else the summary on stderr; then the
    /// run's failure, if any.
    fn finish(self, data: Option<Output>) -> Result<ExitCode, Error> {
        if let Some(format) = data {
            let failed = self
                .json_rows
                .iter()
                .filter(|r| matches!(r.result, "failed" | "rolled back"))
                .count();
            let report = serde_json::json!({
                "hosts": self.json_rows,
                "failedHosts": failed,
            });
            let text = match format {
                Output::Yaml => serde_yaml_ng::to_string(&report)
                    .map_err(|e| Error::Other(format!("cannot write the report: {e}")))?,
                _ => serde_json::to_string_pretty(&report)
                    .map(|t| t + "\n")
                    .map_err(|e| Error::Other(format!("cannot write the report: {e}")))?,
            };
            out(&text)?;
        } else {
            eprint!("{}", summary(&self.rows));
        }
        match self.failure {
            Some(e) => Err(e),
            None => Ok(ExitCode::SUCCESS),
        }
    }
}

/// `patch --auth-mode config|flags` with no issuer and no client id (from any source): convert
/// the settings the node runs ([`backends::migrate`]). Other OIDC settings beside it are
/// refused: the node's own are used, so they would be ignored.
fn conversion(args: &PatchArgs) -> Result<Option<backends::migrate::Convert>, Error> {
    if args.remove {
        return Ok(None);
    }
    let input = crate::config::merged_input(&args.oidc)?;
    let mode = match input.auth_mode.as_deref() {
        Some(m) if input.issuer_url.is_none() && input.client_id.is_none() => {
            backends::AuthMode::parse(m).map_err(|e| e.with_source(&input.sources))?
        }
        _ => return Ok(None),
    };
    if mode == backends::AuthMode::Auto {
        return Ok(None);
    }
    if let Some(other) = input
        .given()
        .into_iter()
        .find(|f| *f != "--auth-mode" && *f != "--kubernetes-version")
    {
        let from = input
            .sources
            .get(other)
            .map(|s| format!(" (from {})", s.name(other)))
            .unwrap_or_default();
        return Err(Error::Input(format!(
            "invalid {other}{from}: without --issuer-url and --client-id, `patch --auth-mode {}` converts the settings the node runs and takes no other OIDC setting; give every setting (--issuer-url, --client-id, ...) to set new ones, or drop {other}",
            input.auth_mode.as_deref().unwrap_or_default()
        )));
    }
    let kubernetes_version = match input.kubernetes_version.as_deref() {
        Some(v) => Some(
            backends::KubeVersion::parse(v)
                .map_err(|e| Error::Plan(e.with_source(&input.sources)))?,
        ),
        None => None,
    };
    Ok(Some(backends::migrate::Convert {
        auth_mode: mode,
        kubernetes_version,
    }))
}

/// `--distro`: `auto` (None) or a distribution `patch` supports.
pub(crate) fn parse_distro(text: &str) -> Result<Option<Distribution>, Error> {
    match text {
        "auto" => Ok(None),
        d => {
            let d = Distribution::parse(d)?;
            backends::patch::target_file(d)?;
            Ok(Some(d))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("--timeout", "5m").unwrap(), 300);
        assert_eq!(parse_duration("--timeout", "90s").unwrap(), 90);
        assert_eq!(parse_duration("--timeout", "45").unwrap(), 45);
        assert_eq!(parse_duration("--timeout", "1h").unwrap(), 3600);
        for bad in ["", "0", "5x", "-1m", "m", "100h"] {
            assert!(parse_duration("--timeout", bad).is_err(), "{bad}");
        }
    }
}

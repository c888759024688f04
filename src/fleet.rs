//! `k8soidc patch --inventory FILE [--parallel N]`: many clusters, N at a time.
//!
//! Before any host is touched: the inventory is checked (`inventory`), the preflight runs once
//! per distinct settings, the run is confirmed once, and every host is connected to (at most
//! [`CONNECT_AT_ONCE`] at a time); one unreachable host stops everything there. The
//! connections of the first N clusters (the ones that start at once) are kept; the others are
//! closed again and reopened when their cluster's turn comes, so the `ssh` masters alive at
//! once (about 1.5 MB each) follow N, not the inventory's size. Then clusters
//! run in parallel (a semaphore of N permits, on the one-thread runtime: the work is waiting
//! on SSH); the hosts of a cluster one at a time (the cluster keeps its API available), each
//! through the same `HostJob` transaction as `--ssh`; a failed (also: no longer reachable)
//! or rolled-back host stops its cluster (the rest are `skipped`), never the others. A table
//! (stderr) or a JSON report (stdout) ends the run; exit 1 when any cluster failed.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use backends::OidcSettings;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::cli::{Output, PatchArgs};
use crate::error::Error;
use crate::exec::ssh::{HostSpec, Remote, SshOptions};
use crate::host::HostJob;
use crate::inventory::{self, Cluster, Inventory};
use crate::report::{Outcome, Say};
use crate::ui::Env;

/// How many SSH connections are opened at once before the run.
const CONNECT_AT_ONCE: usize = 16;

/// The JSON report (`-o json`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    clusters: Vec<ClusterReport>,
    failed_clusters: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterReport {
    name: String,
    /// As in the inventory: `auto` or the distribution.
    distro: String,
    /// `ok` or `failed`.
    status: &'static str,
    hosts: Vec<HostRow>,
    /// Dry run: the plans, grouped per cluster.
    #[serde(skip)]
    plans: String,
}

/// One host's line of a JSON report (`--inventory`, and `--ssh`/`--local` with `-o json`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HostRow {
    host: String,
    /// The distribution found on the host (None: not known, e.g. never reached).
    distro: Option<String>,
    /// The words of `patch --ssh`'s summary ([`Outcome::word`]): dry run, unchanged,
    /// patched, rolled back, failed, not started.
    pub(crate) result: &'static str,
    round_trips: u32,
    health_polls: u32,
    pub(crate) error: Option<String>,
    /// The backup id on the host (`k8soidc rollback --to ID`), when one was taken.
    #[serde(skip_serializing_if = "String::is_empty")]
    backup: String,
}

impl HostRow {
    /// A host that was not started because an earlier one failed.
    pub(crate) fn skipped(host: &str) -> HostRow {
        HostRow {
            host: host.to_string(),
            distro: None,
            result: Outcome::Skipped.word(),
            round_trips: 0,
            health_polls: 0,
            error: None,
            backup: String::new(),
        }
    }

    /// The row of a finished host job, in the words of `patch --ssh`'s summary.
    pub(crate) fn of(host: &str, report: &crate::host::HostReport) -> HostRow {
        let (result, error, backup) = match &report.result {
            Ok(o @ Outcome::Patched { backup }) => (o.word(), None, backup.clone()),
            Ok(o @ Outcome::RolledBack { backup }) => (
                o.word(),
                Some("not healthy with the new settings: rolled back".to_string()),
                backup.clone(),
            ),
            Ok(Outcome::Failed) | Ok(Outcome::Skipped) => {
                (Outcome::Failed.word(), None, String::new())
            }
            Ok(o) => (o.word(), None, String::new()),
            Err(e) => (Outcome::Failed.word(), Some(e.to_string()), String::new()),
        };
        HostRow {
            host: host.to_string(),
            distro: report.distro.map(|d| d.to_string()),
            result,
            round_trips: report.round_trips,
            health_polls: report.health_polls,
            error,
            backup,
        }
    }
}

/// `k8soidc patch --inventory FILE`.
pub(crate) fn run(args: PatchArgs, env: &Env) -> Result<ExitCode, Error> {
    let timeout =
        crate::config::parse_duration("--timeout", args.timeout.as_deref().unwrap_or("5m"))?;
    let inv = inventory::load(&args)?;
    if !args.skip_check {
        check_each(&inv, args.dry_run.on)?;
    }
    let hosts: usize = inv.clusters.iter().map(|c| c.hosts.len()).sum();
    if !args.dry_run.on
        && !env.confirm(
            &format!(
                "Patch {hosts} hosts in {} clusters (`--dry-run` shows the plans)?",
                inv.clusters.len()
            ),
            args.yes,
        )?
    {
        eprintln!("not confirmed: nothing done");
        return Ok(ExitCode::SUCCESS);
    }
    let opts = SshOptions {
        accept_new_host_key: args.ssh.accept_new_host_key,
        config: args.ssh.ssh_config.as_ref().map(Into::into),
    };
    let rt = crate::exec::runtime()?;
    let parallel = args.parallel.unwrap_or(4);
    let remotes = rt.block_on(connect_all(&inv, &opts, usize::from(parallel)))?;
    let bars = env
        .stderr_tty
        .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
    let shared = Arc::new(Shared {
        opts,
        remove: args.remove,
        timeout,
        dry_run: args.dry_run.on,
        verbose: args.verbose,
        bars,
    });
    let reports = rt.block_on(run_clusters(inv.clusters, remotes, shared, parallel));
    report(&args, reports)
}

/// The settings of the inventory's clusters through `check`'s gate, each distinct settings
/// once, in inventory order.
fn check_each(inv: &Inventory, dry_run: bool) -> Result<(), Error> {
    let mut seen: Vec<&OidcSettings> = Vec::new();
    for s in inv.clusters.iter().filter_map(|c| c.settings.as_ref()) {
        if !seen.contains(&s) {
            seen.push(s);
            crate::check::gate(s, dry_run)?;
        }
    }
    Ok(())
}

/// The end of an inventory run: the plans of a dry run, the report (a table on stderr, or
/// `-o json|yaml` on stdout), and an error naming the failed clusters.
fn report(args: &PatchArgs, reports: Vec<ClusterReport>) -> Result<ExitCode, Error> {
    if args.dry_run.on {
        let mut plans = String::new();
        for c in &reports {
            let _ = write!(plans, "# cluster {}\n\n{}", c.name, c.plans);
        }
        match args.output.unwrap_or_default() {
            Output::Text => crate::report::out(&plans)?,
            Output::Yaml | Output::Json => eprint!("{plans}"),
        }
    }
    let failed: Vec<&str> = reports
        .iter()
        .filter(|c| c.status == "failed")
        .map(|c| c.name.as_str())
        .collect();
    let failed_names = failed.join(", ");
    let n_failed = failed.len();
    let total = reports.len();
    let report = Report {
        clusters: reports,
        failed_clusters: n_failed,
    };
    match args.output.unwrap_or_default() {
        Output::Text => eprint!("{}", table(&report)),
        Output::Json => {
            let text = serde_json::to_string_pretty(&report)
                .map_err(|e| Error::Other(format!("cannot write the report: {e}")))?;
            crate::report::out(&format!("{text}\n"))?;
        }
        Output::Yaml => {
            let text = serde_yaml_ng::to_string(&report)
                .map_err(|e| Error::Other(format!("cannot write the report: {e}")))?;
            crate::report::out(&text)?;
        }
    }
    if n_failed > 0 {
        let message = format!(
            "{n_failed} of {total} clusters failed ({failed_names}); each failed cluster stopped at its failed host, which was rolled back or left as it was (see above); the other clusters went on"
        );
        // Interrupted: exit 128 + the signal, as a single-host patch does.
        return Err(match crate::interrupt::seen(1) {
            Some(signal) => Error::Interrupted {
                signal,
                message: format!(
                    "interrupted ({}): {message}",
                    crate::interrupt::name(signal)
                ),
            },
            None => Error::Other(message),
        });
    }
    Ok(ExitCode::SUCCESS)
}

/// Connects to every host (at most [`CONNECT_AT_ONCE`] at a time), in inventory order, and
/// keeps the connections of the first `keep` clusters (those that start at once); the others'
/// are closed right after (`None`: connect again at the cluster's turn). One failure: closes
/// the others and names the host's line; nothing ran anywhere.
async fn connect_all(
    inv: &Inventory,
    opts: &SshOptions,
    keep: usize,
) -> Result<Vec<Vec<Option<Remote>>>, Error> {
    let gate = Arc::new(tokio::sync::Semaphore::new(CONNECT_AT_ONCE));
    let mut tasks = Vec::new();
    for (ci, c) in inv.clusters.iter().enumerate() {
        for (hi, spec) in c.hosts.iter().enumerate() {
            let (gate, spec, opts) = (gate.clone(), spec.clone(), opts.clone());
            tasks.push((
                ci,
                hi,
                tokio::spawn(async move {
                    let _permit = gate.acquire_owned().await;
                    let r = Remote::connect_only(&spec, &opts).await?;
                    if ci < keep {
                        Ok::<_, Error>(Some(r))
                    } else {
                        r.close().await;
                        Ok(None)
                    }
                }),
            ));
        }
    }
    let mut remotes: Vec<Vec<Option<Remote>>> = inv.clusters.iter().map(|_| Vec::new()).collect();
    let mut first_error = None;
    for (ci, hi, task) in tasks {
        match task.await {
            Ok(Ok(r)) => remotes[ci].push(r),
            Ok(Err(e)) => {
                if first_error.is_none() {
                    first_error = Some(inv.host_error(
                        ci,
                        hi,
                        &format!("{e}; nothing was changed on any host"),
                    ));
                }
            }
            Err(e) => {
                if first_error.is_none() {
                    first_error = Some(Error::Other(format!("connecting failed: {e}")));
                }
            }
        }
    }
    if let Some(e) = first_error {
        for r in remotes.into_iter().flatten().flatten() {
            r.close().await;
        }
        return Err(e);
    }
    Ok(remotes)
}

/// What every cluster's run shares.
struct Shared {
    opts: SshOptions,
    remove: bool,
    timeout: u64,
    dry_run: bool,
    verbose: bool,
    bars: Option<MultiProgress>,
}

async fn run_clusters(
    clusters: Vec<Cluster>,
    remotes: Vec<Vec<Option<Remote>>>,
    shared: Arc<Shared>,
    parallel: u8,
) -> Vec<ClusterReport> {
    let permits = Arc::new(tokio::sync::Semaphore::new(usize::from(parallel)));
    let mut tasks = Vec::new();
    for (c, r) in clusters.into_iter().zip(remotes) {
        let (permits, shared) = (permits.clone(), shared.clone());
        let name = c.name.clone();
        let distro = c
            .distro
            .map(|d| d.to_string())
            .unwrap_or_else(|| "auto".into());
        let labels: Vec<String> = c.hosts.iter().map(|h| h.label.clone()).collect();
        tasks.push((
            name,
            distro,
            labels,
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                run_cluster(c, r, &shared).await
            }),
        ));
    }
    let mut reports = Vec::new();
    for (name, distro, labels, task) in tasks {
        reports.push(match task.await {
            Ok(r) => r,
            // A panic in a task is a bug; report the cluster as failed rather than lose it.
            Err(e) => ClusterReport {
                name,
                distro,
                status: "failed",
                hosts: labels
                    .into_iter()
                    .map(|host| HostRow {
                        host,
                        distro: None,
                        result: "failed",
                        round_trips: 0,
                        health_polls: 0,
                        error: Some(format!("internal error: {e}")),
                        backup: String::new(),
                    })
                    .collect(),
                plans: String::new(),
            },
        });
    }
    if let Some(b) = &shared.bars {
        let _ = b.clear();
    }
    reports
}

fn bar(shared: &Shared, name: &str) -> ProgressBar {
    let Some(m) = &shared.bars else {
        return ProgressBar::hidden();
    };
    let b = m.add(ProgressBar::new_spinner());
    b.set_style(
        ProgressStyle::with_template("{spinner} {prefix}: {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    b.set_prefix(name.to_string());
    b.enable_steady_tick(Duration::from_millis(120));
    b
}

/// One cluster: its hosts in order; the first failure (after its rollback) skips the rest.
async fn run_cluster(c: Cluster, remotes: Vec<Option<Remote>>, shared: &Shared) -> ClusterReport {
    let progress = bar(shared, &c.name);
    let n = c.hosts.len();
    let mut rows = Vec::new();
    let mut plans = String::new();
    let mut stopped = false;
    for (i, (spec, remote)) in c.hosts.iter().zip(remotes).enumerate() {
        if stopped {
            if let Some(remote) = remote {
                remote.close().await;
            }
            rows.push(HostRow::skipped(&spec.label));
            continue;
        }
        progress.set_message(format!("host {}/{n} {}", i + 1, spec.label));
        let say = Say::grouped(format!("{}/{}", c.name, spec.label), shared.bars.clone());
        let job = HostJob {
            local: false,
            spec: HostSpec::clone(spec),
            opts: shared.opts.clone(),
            settings: c.settings.clone(),
            remove: shared.remove,
            convert: None,
            distro: c.distro,
            timeout: shared.timeout,
            dry_run: shared.dry_run,
            verbose: shared.verbose,
            confirm: None,
            say: say.clone(),
        };
        // Not kept from the up-front check: connects now.
        let report = job.run(remote).await;
        if shared.verbose {
            let line = report.debug_line(&spec.label);
            match &shared.bars {
                Some(m) => m.suspend(|| eprintln!("{line}")),
                None => eprintln!("{line}"),
            }
        }
        if let Some(p) = &report.plan {
            plans.push_str(p);
        }
        let row = HostRow::of(&spec.label, &report);
        if let Some(msg) = row.error.as_deref().filter(|_| report.result.is_err()) {
            say.line(&format!("failed: {}", msg.replace('\n', "\n  ")));
        }
        if matches!(row.result, "failed" | "rolled back") {
            stopped = true;
        }
        rows.push(row);
    }
    progress.finish_and_clear();
    ClusterReport {
        name: c.name,
        distro: c
            .distro
            .map(|d| d.to_string())
            .unwrap_or_else(|| "auto".into()),
        status: if stopped { "failed" } else { "ok" },
        hosts: rows,
        plans,
    }
}

/// The summary table (stderr), one line per host.
fn table(r: &Report) -> String {
    let rows: Vec<(&str, &HostRow)> = r
        .clusters
        .iter()
        .flat_map(|c| c.hosts.iter().map(move |h| (c.name.as_str(), h)))
        .collect();
    let wc = rows.iter().map(|(c, _)| c.len()).max().unwrap_or(0).max(7);
    let wh = rows
        .iter()
        .map(|(_, h)| h.host.len())
        .max()
        .unwrap_or(0)
        .max(4);
    let mut out = String::from("\nSUMMARY\n");
    let _ = writeln!(
        out,
        "{:<wc$}  {:<wh$}  {:<8}  {:<11}  BACKUP",
        "CLUSTER", "HOST", "DISTRO", "RESULT"
    );
    for (c, h) in rows {
        let _ = writeln!(
            out,
            "{c:<wc$}  {:<wh$}  {:<8}  {:<11}  {}",
            h.host,
            h.distro.as_deref().unwrap_or("-"),
            h.result,
            h.backup
        );
    }
    let _ = writeln!(
        out,
        "{} clusters, {} failed",
        r.clusters.len(),
        r.failed_clusters
    );
    out
}

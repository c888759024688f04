//! `k8soidc patch`: the entry point. `--ssh HOST...` (or `--local`) runs each host's
//! transaction (`host`) one at a time, the first failure stops the run, and a summary table
//! ends it; `--inventory` runs many clusters (`fleet`), `--file` a local file (`patch_file`),
//! `--capi` a Cluster API object (`capi`). `rollback` and `backups` are in `backups`,
//! `create --ssh` in `create_ssh`.

use std::fmt::Write as _;
use std::io::Write;
use std::process::ExitCode;

use backends::Distribution;

use crate::cli::{PatchArgs, ReportFormat, SshArgs};
use crate::error::Error;
use crate::exec::ssh::{HostSpec, SshOptions};
use crate::fleet::HostRow;
use crate::host::HostJob;
use crate::ui::Env;

/// Parses `90`, `90s`, `5m`, `1h`.
pub(crate) fn parse_duration(flag: &str, text: &str) -> Result<u64, Error> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 's')) => (&t[..i], 1),
        Some((i, 'm')) => (&t[..i], 60),
        Some((i, 'h')) => (&t[..i], 3600),
        _ => (t, 1),
    };
    match num.parse::<u64>() {
        Ok(n) if n > 0 && n <= 24 * 3600 / mult => Ok(n * mult),
        _ => Err(Error::Input(format!(
            "invalid {flag} `{}`: not a duration; use e.g. `90s`, `5m` or `1h`",
            backends::escape(text)
        ))),
    }
}

pub(crate) fn hosts(ssh: &SshArgs) -> Result<(Vec<HostSpec>, SshOptions), Error> {
    if ssh.hosts.is_empty() {
        return Err(Error::Input(
            "missing --ssh: say which node to act on, e.g. `--ssh root@cp1.example.com`".into(),
        ));
    }
    let specs = ssh
        .hosts
        .iter()
        .map(|h| HostSpec::parse(h))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = SshOptions {
        accept_new_host_key: ssh.accept_new_host_key,
        config: ssh.ssh_config.as_ref().map(Into::into),
    };
    Ok((specs, opts))
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))
}

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

struct Row {
    host: String,
    distro: String,
    outcome: Outcome,
}

fn summary(rows: &[Row]) -> String {
    let mut out = String::from("\nSUMMARY\n");
    let w = rows.iter().map(|r| r.host.len()).max().unwrap_or(4).max(4);
    let _ = writeln!(
        out,
        "{:<w$}  {:<8}  {:<12}  BACKUP",
        "HOST", "DISTRO", "RESULT"
    );
    for r in rows {
        let (result, backup) = match &r.outcome {
            Outcome::Planned => ("dry run", String::new()),
            Outcome::Unchanged => ("unchanged", String::new()),
            Outcome::Patched { backup } => ("patched", backup.clone()),
            Outcome::RolledBack { backup } => ("rolled back", backup.clone()),
            Outcome::Failed => ("failed", String::new()),
            Outcome::Skipped => ("not started", String::new()),
        };
        let _ = writeln!(
            out,
            "{:<w$}  {:<8}  {:<12}  {backup}",
            r.host, r.distro, result
        );
    }
    out
}

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

/// `k8soidc patch`.
/// Options that belong to one way of running `patch` given without it. clap's `requires`
/// does not catch these here: it drops a requirement whose target conflicts with an option
/// that is present (`--in-place --local`: `--file` conflicts with `--local`).
fn refuse_orphans(args: &PatchArgs) -> Result<(), Error> {
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
            args.capi.is_some(),
            "--capi NAME",
            vec![
                ("--namespace", args.namespace.is_some()),
                ("--kubeconfig", args.kubeconfig.is_some()),
                ("--context", args.context.is_some()),
            ],
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

pub(crate) fn run(args: PatchArgs, env: &Env) -> Result<ExitCode, Error> {
    refuse_orphans(&args)?;
    if args.inventory.is_some() {
        return crate::fleet::run(args, env);
    }
    if args.file.is_some() {
        return crate::patch_file::run(&args, env);
    }
    if args.capi.is_some() {
        return crate::capi::run_capi(crate::capi::CapiArgs::from_patch(args)?, env);
    }
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
    let settings = if args.remove {
        None
    } else {
        Some(crate::config::settings(&args.oidc, env)?)
    };
    if let (Some(s), false) = (&settings, args.skip_check) {
        crate::check::gate(s, args.dry_run)?;
    }
    let rt = runtime()?;
    let json = args.output == Some(ReportFormat::Json);
    let mut rows: Vec<Row> = Vec::new();
    let mut json_rows: Vec<HostRow> = Vec::new();
    let mut failure = None;
    for spec in &specs {
        if failure.is_some() {
            rows.push(Row {
                host: spec.label.clone(),
                distro: String::new(),
                outcome: Outcome::Skipped,
            });
            json_rows.push(HostRow::skipped(&spec.label));
            continue;
        }
        let job = HostJob {
            local: args.local,
            spec: spec.clone(),
            opts: opts.clone(),
            settings: settings.clone(),
            remove: args.remove,
            distro,
            timeout,
            dry_run: args.dry_run,
            verbose: args.verbose,
            confirm: Some((env.clone(), args.yes)),
            say: Say::host(&spec.label),
        };
        let report = rt.block_on(job.run(None));
        if args.verbose {
            eprintln!("{}", report.debug_line(&spec.label));
        }
        if let Some(plan) = &report.plan {
            // With `-o json` stdout is the report alone; the plan goes to stderr.
            if json {
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
        if json {
            json_rows.push(HostRow::of(&spec.label, &report));
        }
        if let Err(e) = report.result {
            failure = Some(e);
        }
        if let Outcome::RolledBack { .. } = outcome {
            failure = Some(Error::Other(format!(
                "`{}` did not become healthy with the new settings; it was rolled back and the run stopped",
                spec.label
            )));
        }
        rows.push(Row {
            host: spec.label.clone(),
            distro,
            outcome,
        });
    }
    if json {
        let failed = json_rows
            .iter()
            .filter(|r| matches!(r.result, "failed" | "rolled-back"))
            .count();
        let text = serde_json::to_string_pretty(&serde_json::json!({
            "hosts": json_rows,
            "failed_hosts": failed,
        }))
        .map_err(|e| Error::Other(format!("cannot write the report: {e}")))?;
        out(&format!("{text}\n"))?;
    } else {
        eprint!("{}", summary(&rows));
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(ExitCode::SUCCESS),
    }
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

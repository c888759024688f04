//! `k8soidc backups` and `k8soidc rollback` on a node (`--ssh HOST` or `--local`).
//!
//! `rollback` plans first, like every command: under the node's lock it reads the backup
//! list, the chosen backup's index and copies and the current files, then the pure planner
//! (`backends::patch::plan_rollback`) makes the plan: restore (checksums first), restart what
//! needs it, wait until the API server is healthy with the restored configuration. `--dry-run`
//! prints it, with the diff from each current file to what the backup holds, and changes
//! nothing; otherwise the executor runs the same steps.

use std::fmt::Write as _;
use std::process::ExitCode;

use backends::node::{NodeStep, ReadCommand, STATE_DIR};
use backends::{Command, Step};

use crate::cli::{BackupsArgs, Output, RollbackArgs, SshArgs};
use crate::config::parse_duration;
use crate::error::Error;
use crate::exec::runtime;
use crate::exec::ssh::{parse_files, HostSpec, Remote, SshOptions};
use crate::report::{out, Say};
use crate::ui::Env;

/// The hosts of `backups` / `rollback`: `--ssh` hosts, or this machine with `--local`.
fn targets(ssh: &SshArgs, local: bool) -> Result<(Vec<HostSpec>, SshOptions), Error> {
    if local {
        return Ok((
            vec![HostSpec {
                user: None,
                host: "localhost".into(),
                port: None,
                label: "localhost".into(),
            }],
            SshOptions::default(),
        ));
    }
    crate::exec::ssh::hosts(ssh)
}

async fn open(spec: &HostSpec, opts: &SshOptions, local: bool) -> Result<Remote, Error> {
    if local {
        Ok(Remote::local_only())
    } else {
        Remote::connect_only(spec, opts).await
    }
}

/// The key under which the first round trip reads the backup list.
const LIST_KEY: &str = "k8soidc:backups";

/// Reads the backup list as a command of the first round trip.
fn list_command() -> ReadCommand {
    ReadCommand {
        key: LIST_KEY.into(),
        if_file: None,
        command: Command::new("sh", ["-c", &NodeStep::ListBackups.script()]),
    }
}

/// The first round trip of `backups` / `rollback`: privileges, the lock (with `lock`), the
/// backup list.
fn list_step(lock: bool) -> NodeStep {
    NodeStep::Begin {
        lock,
        paths: vec![],
        commands: vec![list_command()],
    }
}

/// `k8soidc backups --ssh HOST` / `--local`.
pub(crate) fn backups(args: BackupsArgs) -> Result<ExitCode, Error> {
    let (specs, opts) = targets(&args.ssh, args.local)?;
    let rt = runtime()?;
    let mut data = Vec::new();
    for spec in &specs {
        let text = rt.block_on(async {
            let mut remote = open(spec, &opts, args.local).await?;
            let r = list(&mut remote, false).await;
            remote.close().await;
            r
        })?;
        if args.output != Output::Text {
            data.push(HostBackups {
                host: spec.label.clone(),
                directory: format!("{STATE_DIR}/backups"),
                backups: parse_list(&text)
                    .into_iter()
                    .map(|b| Backup {
                        id: b.id.to_string(),
                        complete: b.complete,
                        files: b.paths.iter().map(|p| p.to_string()).collect(),
                    })
                    .collect(),
            });
            continue;
        }
        let mut s = format!(
            "# {}: backups in {STATE_DIR}/backups (newest first)\n",
            spec.label
        );
        if text.trim().is_empty() {
            s.push_str("(none)\n");
        }
        for b in parse_list(&text) {
            let _ = write!(s, "{}  {}", b.id, b.paths.join(" "));
            if !b.complete {
                s.push_str(
                    "  (incomplete: it fails its checksums; a run stopped while writing it)",
                );
            }
            s.push('\n');
        }
        out(&s)?;
    }
    match args.output {
        Output::Text => {}
        Output::Json => out(&format!(
            "{}\n",
            serde_json::to_string_pretty(&data).expect("plain data")
        ))?,
        Output::Yaml => out(&serde_yaml_ng::to_string(&data).expect("plain data"))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// `backups -o yaml|json`: one entry per host.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct HostBackups {
    host: String,
    directory: String,
    /// Newest first.
    backups: Vec<Backup>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Backup {
    /// The UTC time it was taken, as `rollback --to` takes it.
    id: String,
    /// Its SHA256SUMS exists and verifies (false: a run stopped while writing it; plain
    /// `rollback` passes it over).
    complete: bool,
    /// The files it holds, as they were on the node.
    files: Vec<String>,
}

/// One line of the backup list.
struct Listed<'a> {
    id: &'a str,
    /// SHA256SUMS exists and verifies.
    complete: bool,
    paths: Vec<&'a str>,
}

/// The list script's `ID TAB complete|incomplete TAB path...` lines, newest first.
fn parse_list(text: &str) -> Vec<Listed<'_>> {
    text.lines()
        .filter_map(|l| {
            let (id, rest) = l.split_once('\t')?;
            let (state, paths) = rest.split_once('\t').unwrap_or((rest, ""));
            Some(Listed {
                id,
                complete: state == "complete",
                paths: paths.split_whitespace().collect(),
            })
        })
        .collect()
}

/// Runs [`list_step`]; the backup list (`ID TAB STATE TAB path...` lines, newest first).
async fn list(remote: &mut Remote, lock: bool) -> Result<String, Error> {
    let begun = remote.begin(&list_step(lock), lock).await?;
    let files = parse_files(&begun.records)?;
    Ok(files.get(LIST_KEY).cloned().flatten().unwrap_or_default())
}

/// `k8soidc rollback --ssh HOST [--to ID] [--dry-run]` / `--local`.
pub(crate) fn rollback(args: RollbackArgs, env: &Env) -> Result<ExitCode, Error> {
    let (specs, opts) = targets(&args.ssh, args.local)?;
    let timeout = parse_duration("--timeout", &args.timeout)?;
    let rt = runtime()?;
    for spec in &specs {
        rt.block_on(async {
            let mut remote = open(spec, &opts, args.local).await?;
            let r = restore_backup(&mut remote, spec, &args, timeout, env).await;
            remote.close().await;
            r
        })?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn restore_backup(
    remote: &mut Remote,
    spec: &HostSpec,
    args: &RollbackArgs,
    timeout: u64,
    env: &Env,
) -> Result<(), Error> {
    let hint = if args.local {
        "k8soidc backups --local".to_string()
    } else {
        format!("k8soidc backups --ssh {}", spec.label)
    };
    let listed = list(remote, !args.dry_run.on).await?;
    let (id, n) = choose_backup(&listed, args.to.as_deref(), &spec.label, &hint)?;
    // Round trip 2: the backup's index and copies, the current files, the units.
    let dir = format!("{STATE_DIR}/backups/{id}");
    let read = read_backup(&dir, n);
    let begun = remote.begin(&read, false).await?;
    let files = parse_files(&begun.records)?;
    let index = files
        .get(&format!("{dir}/FILES"))
        .cloned()
        .flatten()
        .ok_or_else(|| Error::Other(format!("backup {id} on `{}` has no index", spec.label)))?;
    let (plan, distribution) =
        backends::patch::plan_rollback(&spec.label, &id, &index, &files, remote.sudo(), timeout)?;
    let mut shown = String::new();
    if args.verbose {
        // The two reads the plan is made of, as a real run sends them.
        let first = list_step(true);
        for (why, step) in [
            (
                "privileges, lock and the backup list (a real run holds the lock until it ends)",
                &first,
            ),
            (
                "the backup's index and copies, and the current files",
                &read,
            ),
        ] {
            shown.push_str(&backends::node::show_step(
                &spec.label,
                why,
                step,
                false,
                true,
            ));
            shown.push('\n');
        }
    }
    shown.push_str(&plan.display(args.verbose).to_string());
    if args.dry_run.on {
        out(&format!("{shown}\n"))?;
        eprintln!("dry run: nothing was changed on `{}`", spec.label);
        return Ok(());
    }
    eprint!("{shown}");
    if !env
        .confirm_async(
            &format!("Restore backup {id} on `{}`?", spec.label),
            args.yes,
        )
        .await?
    {
        eprintln!("[{}] not confirmed: nothing done", spec.label);
        return Ok(());
    }
    execute_rollback(remote, &plan, &spec.label, &id, distribution, timeout).await
}

/// The backup to restore (`--to`, else the newest) from the list the node sent, and how many
/// The backup to restore: `--to ID`, else the newest complete one (newer incomplete ones, left
/// by a run stopped while writing them, are named and passed over). Returns its id and how
/// many files it holds.
fn choose_backup(
    listed: &str,
    to: Option<&str>,
    label: &str,
    hint: &str,
) -> Result<(String, usize), Error> {
    let entries = parse_list(listed);
    let id = match to {
        Some(id) if entries.iter().any(|b| b.id == id) => id.to_string(),
        Some(id) => {
            return Err(Error::Input(format!(
                "invalid --to `{}`: no such backup on `{label}`; see `{hint}`",
                backends::escape(id),
            )))
        }
        None => {
            let skipped: Vec<&str> = entries
                .iter()
                .take_while(|b| !b.complete)
                .map(|b| b.id)
                .collect();
            let Some(newest) = entries.iter().find(|b| b.complete) else {
                return Err(Error::Other(match entries.first() {
                    None => format!("no backups on `{label}`"),
                    Some(_) => format!(
                        "no complete backup on `{label}`: every one fails its checksums ({}); see `{hint}`",
                        skipped.join(", ")
                    ),
                }));
            };
            if !skipped.is_empty() {
                eprintln!(
                    "[{label}] backup {} {} incomplete (it fails its checksums); restoring {}, the newest complete backup",
                    skipped.join(", "),
                    if skipped.len() == 1 { "is" } else { "are" },
                    newest.id
                );
            }
            newest.id.to_string()
        }
    };
    let n = entries
        .iter()
        .find(|b| b.id == id)
        .map_or(0, |b| b.paths.len());
    Ok((id, n))
}

/// The read of a backup: its index and `n` copies in `dir`, the current files, the units.
fn read_backup(dir: &str, n: usize) -> NodeStep {
    let mut paths = vec![format!("{dir}/FILES")];
    paths.extend((1..=n).map(|k| format!("{dir}/{k}")));
    paths.extend(backends::patch::probe_paths(None));
    NodeStep::Begin {
        lock: false,
        paths,
        commands: backends::patch::read_commands(None)
            .into_iter()
            .filter(|c| c.key.starts_with("systemd:"))
            .collect(),
    }
}

/// Runs a confirmed rollback plan; when the API server is not healthy after it, shows its
/// last log lines.
async fn execute_rollback(
    remote: &Remote,
    plan: &backends::Plan,
    label: &str,
    id: &str,
    distribution: backends::Distribution,
    timeout: u64,
) -> Result<(), Error> {
    let say = Say::host(label);
    let unit = plan.steps.iter().find_map(|s| match s {
        Step::Node {
            step: NodeStep::AwaitHealthy(h),
            ..
        } => Some(h.unit.clone()),
        _ => None,
    });
    match crate::host::run_steps(remote, plan, &[], &say, "with the restored configuration").await {
        Ok(_) => {
            eprintln!(
                "[{}] the {distribution} API server is healthy with backup {id}",
                label
            );
            Ok(())
        }
        Err(e) => {
            let logs = remote
                .step(&NodeStep::Logs {
                    unit: unit.flatten(),
                })
                .await
                .map(|o| o.stdout)
                .unwrap_or_default();
            if !logs.trim().is_empty() {
                eprintln!(
                    "[{}] last API server log lines:{}",
                    label,
                    crate::error::framed(&logs)
                );
            }
            Err(Error::Other(format!(
                "`{}`: backup {id} is restored but the API server is not healthy within {timeout}s ({e}); check the node",
                label
            )))
        }
    }
}

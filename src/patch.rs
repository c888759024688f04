//! `k8soidc patch --ssh`, `rollback` and `backups`: the transaction on each host.
//! `patch --local` runs the same transaction on this machine: the same scripts through
//! `sh -c` (with `sudo -n` when not root) instead of over SSH.
//!
//! Per host, in order, one SSH connection (strict host key) and at most four round trips
//! besides health polling (`scripts` module docs): (1) check root or `sudo -n`, take the node
//! lock and read every file and object in one channel; plan purely (`backends::patch`);
//! nothing to do → say so and stop; (2) back up, stage, rename into place, run the restart
//! steps; wait until a kube-apiserver with the new flags answers /readyz; on timeout restore
//! the backup, wait for health again, show the API server's last log lines, fail; (3) read back
//! the checksums of what was written; (4) kubeadm only: update the kubeadm-config ConfigMap
//! (compare and swap against what (1) read). Hosts are done one at a time; the first failure
//! stops the run; a summary table ends it. `--inventory` runs many clusters (`fleet`).

use std::fmt::Write as _;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use backends::patch::{self, Health, HostPlan, PatchRequest, STATE_DIR};
use backends::{Distribution, OidcSettings, Step};
use sha2::{Digest, Sha256};

use crate::cli::{BackupsArgs, PatchArgs, RollbackArgs, SshArgs};
use crate::error::Error;
use crate::exec::scripts;
use crate::exec::ssh::{parse_files, HostSpec, ReadCommand, Remote, SshOptions};
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

fn hosts(ssh: &SshArgs) -> Result<(Vec<HostSpec>, SshOptions), Error> {
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
    fn block(&self, text: &str) {
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
            vec![
                ("--parallel", args.parallel.is_some()),
                ("--output", args.output.is_some()),
            ],
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
    let mut rows: Vec<Row> = Vec::new();
    let mut failure = None;
    for spec in &specs {
        if failure.is_some() {
            rows.push(Row {
                host: spec.label.clone(),
                distro: String::new(),
                outcome: Outcome::Skipped,
            });
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
            confirm: Some((env.clone(), args.yes)),
            say: Say::host(&spec.label),
        };
        let report = rt.block_on(job.run(None));
        if args.verbose {
            eprintln!("{}", report.debug_line(&spec.label));
        }
        if let Some(plan) = &report.plan {
            out(plan)?;
        }
        let outcome = match report.result {
            Ok(o) => o,
            Err(e) => {
                failure = Some(e);
                Outcome::Failed
            }
        };
        if let Outcome::RolledBack { .. } = outcome {
            failure = Some(Error::Other(format!(
                "`{}` did not become healthy with the new settings; it was rolled back and the run stopped",
                spec.label
            )));
        }
        rows.push(Row {
            host: spec.label.clone(),
            distro: report.distro.map(|d| d.to_string()).unwrap_or_default(),
            outcome,
        });
    }
    eprint!("{}", summary(&rows));
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
            patch::target_file(d)?;
            Ok(Some(d))
        }
    }
}

/// One host's transaction, with everything it needs owned (inventory runs move it into a task).
pub(crate) struct HostJob {
    /// `--local`: this machine, the same scripts through `sh -c` instead of SSH.
    pub(crate) local: bool,
    pub(crate) spec: HostSpec,
    pub(crate) opts: SshOptions,
    pub(crate) settings: Option<OidcSettings>,
    pub(crate) remove: bool,
    pub(crate) distro: Option<Distribution>,
    pub(crate) timeout: u64,
    pub(crate) dry_run: bool,
    /// Ask before changing the host (`--yes` given?); None: the run was confirmed already.
    pub(crate) confirm: Option<(Env, bool)>,
    pub(crate) say: Say,
}

/// How a host's job went.
pub(crate) struct HostReport {
    pub(crate) distro: Option<Distribution>,
    pub(crate) result: Result<Outcome, Error>,
    /// The plan (dry run): printed by the caller, grouped as it likes.
    pub(crate) plan: Option<String>,
    pub(crate) round_trips: u32,
    pub(crate) health_polls: u32,
}

impl HostReport {
    /// The `-v` line.
    pub(crate) fn debug_line(&self, host: &str) -> String {
        format!(
            "debug: {host}: {} SSH round trips (+{} health polls)",
            self.round_trips, self.health_polls
        )
    }
}

fn sha256(text: &str) -> String {
    let d = Sha256::digest(text.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl HostJob {
    /// Runs the job on `remote` (already connected, privileges not checked) or connects first.
    pub(crate) async fn run(self, remote: Option<Remote>) -> HostReport {
        let connected = match remote {
            Some(r) => Ok(r),
            None if self.local => Ok(Remote::local_only()),
            None => Remote::connect_only(&self.spec, &self.opts).await,
        };
        let mut remote = match connected {
            Ok(r) => r,
            Err(e) => {
                return HostReport {
                    distro: self.distro,
                    result: Err(e),
                    plan: None,
                    round_trips: 0,
                    health_polls: 0,
                }
            }
        };
        let mut distro = self.distro;
        let mut plan = None;
        let result = self.transaction(&mut remote, &mut distro, &mut plan).await;
        let (round_trips, health_polls) = (remote.round_trips(), remote.health_polls());
        remote.close().await;
        HostReport {
            distro,
            result,
            plan,
            round_trips,
            health_polls,
        }
    }

    /// What the first round trip reads besides files: the kubeadm-config ConfigMap (when the
    /// manifest exists) and whether a k3s / RKE2 unit is active (they may run without config).
    fn read_commands(&self) -> Vec<ReadCommand> {
        let mut v = Vec::new();
        if matches!(self.distro, None | Some(Distribution::Kubeadm)) {
            let read = patch::kubeadm_configmap_read();
            let mut argv = vec![read.program.clone()];
            argv.extend(read.args.iter().cloned());
            v.push(ReadCommand {
                key: patch::KUBEADM_CONFIGMAP.to_string(),
                if_file: Some(patch::KUBEADM_MANIFEST.to_string()),
                argv,
            });
        }
        for d in [Distribution::K3s, Distribution::Rke2] {
            if !matches!(
                self.distro,
                None | Some(Distribution::K3s) | Some(Distribution::Rke2)
            ) {
                break;
            }
            let (Some(key), Ok(restart)) = (patch::unit_key(d), backends::k3s::restart_command(d))
            else {
                continue;
            };
            let unit = restart.args.last().cloned().unwrap_or_default();
            v.push(ReadCommand {
                key,
                if_file: None,
                argv: vec!["systemctl".into(), "is-active".into(), unit],
            });
        }
        v
    }

    async fn transaction(
        &self,
        remote: &mut Remote,
        distro: &mut Option<Distribution>,
        plan: &mut Option<String>,
    ) -> Result<Outcome, Error> {
        // Round trip 1: privileges, lock (not in a dry run), detection, every read.
        let paths = patch::probe_paths(self.distro);
        let begun = remote
            .begin(STATE_DIR, !self.dry_run, &paths, &self.read_commands())
            .await?;
        remote.maybe_disconnect("lock");
        remote.maybe_disconnect("read");
        let files = parse_files(&begun.records)?;
        for (key, why) in &begun.notes {
            if key == patch::KUBEADM_CONFIGMAP && !why.trim().is_empty() {
                self.say.line(&format!(
                    "kubeadm-config ConfigMap not read: {}",
                    why.trim()
                ));
            }
        }
        let req = PatchRequest {
            host: &self.spec.label,
            settings: self.settings.as_ref(),
            remove: self.remove,
            distribution: self.distro,
            timeout_secs: self.timeout,
        };
        let hp = patch::plan_host(&req, &files)?;
        *distro = Some(hp.distribution);
        if self.dry_run {
            *plan = Some(format!("{}\n", hp.plan));
            return Ok(if hp.is_noop() {
                Outcome::Unchanged
            } else {
                Outcome::Planned
            });
        }
        if hp.is_noop() {
            self.say
                .line(&format!("{}: nothing to change", hp.plan.title));
            return Ok(Outcome::Unchanged);
        }
        self.say.block(&hp.plan.to_string());
        if let Some((env, yes)) = &self.confirm {
            if !env.confirm(&format!("Patch `{}`?", self.spec.label), *yes)? {
                self.say.line("not confirmed: nothing done");
                return Ok(Outcome::Skipped);
            }
        }
        apply(remote, &hp, &self.say, &files).await
    }
}

/// The file transaction (when files change), then, once healthy, the API updates.
async fn apply(
    remote: &Remote,
    hp: &HostPlan,
    say: &Say,
    files: &patch::NodeFiles,
) -> Result<Outcome, Error> {
    let writes = hp
        .plan
        .steps
        .iter()
        .any(|s| matches!(s, Step::WriteFile { .. }));
    let outcome = if writes {
        apply_files(remote, hp, say).await?
    } else {
        Outcome::Patched {
            backup: String::new(),
        }
    };
    if let Outcome::Patched { .. } = outcome {
        run_transforms(remote, hp, say, files).await.map_err(|e| {
            Error::Other(format!(
                "`{}`: the API server is patched and healthy, but a cluster object was not updated: {e}; run again to retry",
                remote.spec.label
            ))
        })?;
    }
    Ok(outcome)
}

/// Read → pure edit → write back, on the node (e.g. the kubeadm-config ConfigMap through
/// `kubectl --kubeconfig /etc/kubernetes/admin.conf`); the edited text goes on stdin. When the
/// first round trip read the object (`files`), one round trip: the edit is made from that copy
/// and written only if the object is still the same (`scripts::transform`, compare and swap).
async fn run_transforms(
    remote: &Remote,
    hp: &HostPlan,
    say: &Say,
    files: &patch::NodeFiles,
) -> Result<(), Error> {
    for step in &hp.plan.steps {
        let Step::Transform {
            read, edit, write, ..
        } = step
        else {
            continue;
        };
        let backends::WriteBack::Stdin { command } = write else {
            return Err(Error::Other(format!("unexpected write-back for `{read}`")));
        };
        let mut read_argv = vec![read.program.clone()];
        read_argv.extend(read.args.iter().cloned());
        let mut write_argv = vec![command.program.clone()];
        write_argv.extend(command.args.iter().cloned());
        let known = (*read == patch::kubeadm_configmap_read())
            .then(|| files.get(patch::KUBEADM_CONFIGMAP).cloned().flatten())
            .flatten();
        match known {
            Some(current) => {
                let text = edit.apply(&current)?;
                let mut args = vec![sha256(&current), read_argv.len().to_string()];
                args.extend(read_argv);
                args.extend(write_argv);
                remote
                    .sh_ok(
                        &command.to_shell(),
                        &scripts::transform(),
                        &args,
                        Some(text.as_bytes()),
                    )
                    .await?;
            }
            None => {
                let current = remote
                    .sh_ok(&read.to_shell(), "exec \"$@\"", &read_argv, None)
                    .await?;
                let text = edit.apply(&current)?;
                remote
                    .sh_ok(
                        &command.to_shell(),
                        "exec \"$@\"",
                        &write_argv,
                        Some(text.as_bytes()),
                    )
                    .await?;
            }
        }
        say.line(&format!("updated: {}", command.to_shell()));
    }
    Ok(())
}

/// Back up, stage, commit and restart (one round trip), wait, verify; roll back when not
/// healthy.
async fn apply_files(remote: &Remote, hp: &HostPlan, say: &Say) -> Result<Outcome, Error> {
    use base64::Engine;
    let label = &remote.spec.label;
    let mut args = vec![STATE_DIR.to_string(), String::new()];
    let mut stdin = String::new();
    let mut targets = Vec::new();
    for step in &hp.plan.steps {
        if let Step::WriteFile {
            path,
            before,
            after,
            mode,
            ..
        } = step
        {
            args.push(path.clone());
            args.push(
                before
                    .as_deref()
                    .map(sha256)
                    .unwrap_or_else(|| "absent".into()),
            );
            args.push(format!("{mode:o}"));
            stdin.push_str(&base64::engine::general_purpose::STANDARD.encode(after));
            stdin.push('\n');
            targets.push((path.clone(), sha256(after)));
        }
    }
    args[1] = targets.len().to_string();
    for step in &hp.plan.steps {
        if let Step::Run { command, .. } = step {
            args.push((command.args.len() + 1).to_string());
            args.push(command.program.clone());
            args.extend(command.args.iter().cloned());
        }
    }
    // Round trip 2: back up + stage, rename, restart.
    let o = remote
        .sh(&scripts::apply(), &args, Some(stdin.as_bytes()))
        .await?;
    let backup = o
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("K8SOIDC-BACKUP "))
        .map(str::to_string);
    let committed = o.stdout.lines().any(|l| l == "K8SOIDC-COMMITTED");
    let restart_failed = o
        .stdout
        .lines()
        .any(|l| l.starts_with("K8SOIDC-RESTART-FAILED"));
    let staged = o
        .stdout
        .lines()
        .filter(|l| l.starts_with("K8SOIDC-STAGED "))
        .count();
    if !committed || (o.code != Some(0) && !restart_failed) {
        return Err(Error::CommandFailed {
            command: "back up, stage and rename the new files".into(),
            host: Some(label.clone()),
            status: match o.code {
                Some(c) => format!("exit status {c}"),
                None => "killed by a signal".into(),
            },
            stderr: o.stderr,
        });
    }
    let backup = match (backup, staged == targets.len()) {
        (Some(b), true) => b,
        _ => {
            return Err(Error::Other(format!(
                "unexpected reply from `{label}` while staging: {}",
                o.stdout
            )))
        }
    };
    say.line(&format!("backed up to {STATE_DIR}/backups/{backup}"));
    remote.maybe_disconnect("stage");
    let paths: Vec<String> = targets.iter().map(|(p, _)| p.clone()).collect();
    say.line(&format!("wrote {}", paths.join(", ")));
    remote.maybe_disconnect("commit");
    let h = &hp.health;
    let healthy = if restart_failed {
        Err(format!(
            "the restart failed: {}",
            o.stderr.trim().replace('\n', " ")
        ))
    } else {
        wait_healthy(remote, h, &h.flags_after).await
    };
    match healthy {
        Ok(()) => {
            say.line("API server healthy with the new settings");
            // Round trip 3: what is on disk is what was written. A one-way step of the
            // distribution's own tool (`microk8s enable rbac`: a Run step that a restore does not
            // repeat) rewrites the main file itself, so that file is not ours alone to check.
            let one_way = hp.plan.steps.iter().any(|s| {
                matches!(s, Step::Run { command, .. } if !hp.restart_after_restore.contains(command))
            });
            let main = patch::target_file(hp.distribution).unwrap_or_default();
            let checked: Vec<&(String, String)> = targets
                .iter()
                .filter(|(p, _)| !(one_way && p == main))
                .collect();
            let check_paths: Vec<String> = checked.iter().map(|(p, _)| p.clone()).collect();
            let sums = if check_paths.is_empty() {
                String::new()
            } else {
                remote
                    .sh_ok(
                        "verify the written files",
                        scripts::VERIFY,
                        &check_paths,
                        None,
                    )
                    .await?
            };
            for (path, want) in checked {
                let have = sums
                    .lines()
                    .find_map(|l| l.strip_suffix(path.as_str()))
                    .map(str::trim);
                if have != Some(want.as_str()) {
                    return Err(Error::Other(format!(
                        "`{label}`: {path} is not what was written (changed since by something else?); the API server is healthy; check the file, backup {backup} has the previous one"
                    )));
                }
            }
            Ok(Outcome::Patched { backup })
        }
        Err(why) => {
            say.line(&format!(
                "not healthy within {}s ({why}); restoring backup {backup}",
                h.timeout_secs
            ));
            let logs = remote
                .sh(
                    scripts::LOGS,
                    &[h.unit.clone().unwrap_or_else(|| "-".into())],
                    None,
                )
                .await
                .map(|o| o.stdout)
                .unwrap_or_default();
            remote
                .sh_ok(
                    "restore the backup",
                    &scripts::restore(),
                    &[STATE_DIR.to_string(), backup.clone()],
                    None,
                )
                .await?;
            let back = match run_commands(remote, &hp.restart_after_restore).await {
                Ok(()) => wait_healthy(remote, h, &h.flags_before).await,
                Err(e) => Err(format!("the restart failed: {e}")),
            };
            say.line(&format!(
                "last API server log lines:{}",
                crate::error::framed(&logs)
            ));
            match back {
                Ok(()) => {
                    say.line("restored; API server healthy with the previous settings");
                    Ok(Outcome::RolledBack { backup })
                }
                Err(why) => Err(Error::Other(format!(
                    "`{label}` restored from backup {backup} but the API server is still not healthy ({why}); check the node"
                ))),
            }
        }
    }
}

async fn run_commands(remote: &Remote, commands: &[backends::Command]) -> Result<(), Error> {
    for command in commands {
        let mut argv = vec![command.program.clone()];
        argv.extend(command.args.iter().cloned());
        remote
            .sh_ok(&command.to_shell(), "exec \"$@\"", &argv, None)
            .await?;
    }
    Ok(())
}

async fn wait_healthy(remote: &Remote, h: &Health, flags: &[String]) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(h.timeout_secs);
    let mut args = vec![
        h.process.clone().unwrap_or_default(),
        h.readyz.clone(),
        h.livez.clone(),
        h.unit.clone().unwrap_or_default(),
    ];
    match &h.admin_probe {
        Some(c) => {
            args.push((c.args.len() + 1).to_string());
            args.push(c.program.clone());
            args.extend(c.args.iter().cloned());
        }
        None => args.push("0".into()),
    }
    args.extend(flags.iter().cloned());
    let mut last = String::from("no answer yet");
    // Healthy = two passing checks in a row on the same process, like a probe's success
    // threshold, so a process in the middle of being replaced is not taken for the new one.
    let mut previous: Option<String> = None;
    // Every 250 ms for the first 5 s (a restart is usually seen within them), then every
    // 500 ms; bounded by the deadline and by count.
    let max_tries = h.timeout_secs * 2 + 24;
    for i in 0..max_tries {
        match remote.sh(scripts::HEALTH, &args, None).await {
            Ok(o) if o.code == Some(0) => {
                let who = o.stdout.trim().to_string();
                if previous.as_deref() == Some(who.as_str()) {
                    return Ok(());
                }
                previous = Some(who);
            }
            Ok(o) => {
                previous = None;
                last = o.stdout.trim().to_string();
            }
            Err(e) => return Err(e.to_string()),
        }
        if Instant::now() >= deadline {
            break;
        }
        let pause = if i < 20 { 250 } else { 500 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    Err(last)
}

/// `k8soidc create --distro kubeadm|microk8s|k3s --ssh HOST`: per host, refuse when a control
/// plane is already there, write the files (through the same backup/stage/rename scripts),
/// run the installer, wait for health; MicroK8s then goes through the `patch` transaction.
/// `K8SOIDC_K3S_INSTALLER` replaces the k3s installer command (air-gapped installs; tests).
pub(crate) fn create_over_ssh(
    d: Distribution,
    args: crate::cli::CreateArgs,
    env: &Env,
) -> Result<ExitCode, Error> {
    if !matches!(
        d,
        Distribution::Kubeadm | Distribution::Microk8s | Distribution::K3s
    ) {
        return Err(Error::Input(format!(
            "invalid --distro `{d}` for create --ssh: use kubeadm, microk8s or k3s (or create {d} without --ssh)"
        )));
    }
    let (specs, opts) = hosts(&args.ssh)?;
    let s = crate::config::settings(&args.oidc, env)?;
    if !args.skip_check {
        crate::check::gate(&s, args.dry_run)?;
    }
    let installer = std::env::var("K8SOIDC_K3S_INSTALLER")
        .unwrap_or_else(|_| backends::create_node::K3S_INSTALL.to_string());
    let rt = runtime()?;
    for spec in &specs {
        let plan = backends::create_node::create_host(d, &spec.label, &s, &installer)?;
        rt.block_on(async {
            let mut remote = Remote::connect(spec, &opts).await?;
            let r = async {
                if !args.dry_run {
                    remote.lock(STATE_DIR).await?;
                }
                let paths = patch::probe_paths(None);
                let text = remote
                    .sh_ok("read the node's files", &scripts::read(), &paths, None)
                    .await?;
                let files = parse_files(&text)?;
                // A k3s config.yaml alone is the usual pre-install configuration, not a cluster.
                if let Ok(found) = patch::detect(&spec.label, &files)
                    .map_err(|_| ())
                    .and_then(|f| if f == Distribution::K3s { Err(()) } else { Ok(f) })
                {
                    return Err(Error::Other(format!(
                        "`{}` already runs a {found} control plane: refused, nothing changed; use `k8soidc patch --ssh {}`",
                        spec.label, spec.label
                    )));
                }
                if args.dry_run {
                    out(&format!("{plan}\n"))?;
                    return Ok(());
                }
                eprint!("{plan}");
                if !env.confirm(&format!("Create {d} on `{}`?", spec.label), args.yes)? {
                    eprintln!("[{}] not confirmed: nothing done", spec.label);
                    return Ok(());
                }
                let mut stage_args = vec![STATE_DIR.to_string(), String::new()];
                let mut stdin = String::new();
                let mut targets = Vec::new();
                use base64::Engine;
                for step in &plan.steps {
                    if let Step::WriteFile { path, after, mode, .. } = step {
                        stage_args.extend([path.clone(), "absent".into(), format!("{mode:o}")]);
                        stdin.push_str(&base64::engine::general_purpose::STANDARD.encode(after));
                        stdin.push('\n');
                        targets.push(path.clone());
                    }
                }
                stage_args[1] = targets.len().to_string();
                if !targets.is_empty() {
                    // The same back up + stage + rename as `patch` (no restart commands).
                    remote
                        .sh_ok("back up, stage and rename the new files", &scripts::apply(), &stage_args, Some(stdin.as_bytes()))
                        .await?;
                    eprintln!("[{}] wrote {}", spec.label, targets.join(", "));
                }
                for step in &plan.steps {
                    if let Step::Run { command, .. } = step {
                        let mut argv = vec![command.program.clone()];
                        argv.extend(command.args.iter().cloned());
                        remote
                            .sh_ok(&command.to_shell(), "exec \"$@\"", &argv, None)
                            .await?;
                        eprintln!("[{}] ran {}", spec.label, command.to_shell());
                    }
                }
                // Now the control plane exists: plan it as `patch` does (MicroK8s gets its
                // OIDC flags here; kubeadm and k3s must already be configured).
                let text = remote
                    .sh_ok("read the node's files", &scripts::read(), &patch::probe_paths(Some(d)), None)
                    .await?;
                let files = parse_files(&text)?;
                let req = PatchRequest {
                    host: &spec.label,
                    settings: Some(&s),
                    remove: false,
                    distribution: Some(d),
                    timeout_secs: 120,
                };
                let hp = patch::plan_host(&req, &files)?;
                if hp.is_noop() {
                    let h = &hp.health;
                    wait_healthy(&remote, h, &h.flags_after)
                        .await
                        .map_err(|why| Error::Other(format!("`{}`: the new {d} API server is not healthy ({why}); check the node", spec.label)))?;
                } else {
                    eprint!("{}", hp.plan);
                    match apply(&remote, &hp, &Say::host(&spec.label), &files).await? {
                        Outcome::Patched { .. } => {}
                        _ => {
                            return Err(Error::Other(format!(
                                "`{}`: {d} was installed but did not become healthy with OIDC; it was rolled back to its defaults",
                                spec.label
                            )))
                        }
                    }
                }
                eprintln!("[{}] created {d} with OIDC issuer {}", spec.label, s.issuer_url);
                Ok(())
            }
            .await;
            remote.close().await;
            r
        })?;
    }
    Ok(ExitCode::SUCCESS)
}

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
    hosts(ssh)
}

async fn open(spec: &HostSpec, opts: &SshOptions, local: bool) -> Result<Remote, Error> {
    if local {
        Remote::local().await
    } else {
        Remote::connect(spec, opts).await
    }
}

/// `k8soidc backups --ssh HOST` / `--local`.
pub(crate) fn backups(args: BackupsArgs) -> Result<ExitCode, Error> {
    let (specs, opts) = targets(&args.ssh, args.local)?;
    let rt = runtime()?;
    for spec in &specs {
        let text = rt.block_on(async {
            let remote = open(spec, &opts, args.local).await?;
            let r = remote
                .sh_ok(
                    "list backups",
                    scripts::LIST,
                    &[STATE_DIR.to_string()],
                    None,
                )
                .await;
            remote.close().await;
            r
        })?;
        let mut s = format!(
            "# {}: backups in {STATE_DIR}/backups (newest first)\n",
            spec.label
        );
        if text.trim().is_empty() {
            s.push_str("(none)\n");
        }
        for line in text.lines() {
            let (id, files) = line.split_once('\t').unwrap_or((line, ""));
            let _ = writeln!(s, "{id}  {}", files.trim());
        }
        out(&s)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `k8soidc rollback --ssh HOST [--to ID]` / `--local`: under the node's lock, restore the
/// backup (checksums first), restart what needs it, and wait until the API server is healthy
/// with the restored configuration.
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
    remote.lock(STATE_DIR).await?;
    let list = remote
        .sh_ok(
            "list backups",
            scripts::LIST,
            &[STATE_DIR.to_string()],
            None,
        )
        .await?;
    let ids: Vec<&str> = list.lines().filter_map(|l| l.split('\t').next()).collect();
    let id = match &args.to {
        Some(id) if ids.contains(&id.as_str()) => id.clone(),
        Some(id) => {
            return Err(Error::Input(format!(
                "invalid --to `{}`: no such backup on `{}`; see `{hint}`",
                backends::escape(id),
                spec.label,
            )))
        }
        None => ids
            .first()
            .map(|s| s.to_string())
            .ok_or_else(|| Error::Other(format!("no backups on `{}`", spec.label)))?,
    };
    if !env.confirm(
        &format!("Restore backup {id} on `{}`?", spec.label),
        args.yes,
    )? {
        eprintln!("[{}] not confirmed: nothing done", spec.label);
        return Ok(());
    }
    let restored = remote
        .sh_ok(
            "restore the backup",
            &scripts::restore(),
            &[STATE_DIR.to_string(), id.clone()],
            None,
        )
        .await?;
    for l in restored
        .lines()
        .filter_map(|l| l.strip_prefix("K8SOIDC-RESTORED "))
    {
        eprintln!("[{}] restored {l}", spec.label);
    }
    eprintln!("[{}] restored backup {id}", spec.label);
    // Make the API server read what was restored, and see it healthy.
    let paths = patch::probe_paths(None);
    let text = remote
        .sh_ok("read the node's files", &scripts::read(), &paths, None)
        .await?;
    let mut files = parse_files(&text)?;
    for d in [Distribution::K3s, Distribution::Rke2] {
        if let (Some(key), Ok(restart)) = (patch::unit_key(d), backends::k3s::restart_command(d)) {
            let unit = restart.args.last().cloned().unwrap_or_default();
            let argv = vec![key, "systemctl".into(), "is-active".into(), unit];
            let o = remote.sh(scripts::READ_COMMAND, &argv, None).await?;
            files.extend(parse_files(&o.stdout)?);
        }
    }
    let after = patch::after_restore(&spec.label, &files, timeout)?;
    for c in &after.restart {
        eprintln!("[{}] {}", spec.label, c.to_shell());
    }
    let healthy = match run_commands(remote, &after.restart).await {
        Ok(()) => wait_healthy(remote, &after.health, &after.health.flags_after).await,
        Err(e) => Err(format!("the restart failed: {e}")),
    };
    match healthy {
        Ok(()) => {
            eprintln!(
                "[{}] the {} API server is healthy with backup {id}",
                spec.label, after.distribution
            );
            Ok(())
        }
        Err(why) => {
            let unit = after.health.unit.clone().unwrap_or_else(|| "-".into());
            let logs = remote
                .sh(scripts::LOGS, &[unit], None)
                .await
                .map(|o| o.stdout)
                .unwrap_or_default();
            eprintln!(
                "[{}] last API server log lines:{}",
                spec.label,
                crate::error::framed(&logs)
            );
            Err(Error::Other(format!(
                "`{}`: backup {id} is restored but the API server is not healthy within {timeout}s ({why}); check the node",
                spec.label
            )))
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

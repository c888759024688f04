//! `k8soidc patch --ssh`, `rollback` and `backups`: the transaction on each host.
//! `patch --local` runs the same transaction on this machine: the same scripts through
//! `sh -c` (with `sudo -n` when not root) instead of over SSH.
//!
//! Per host, in order, one SSH connection: connect (strict host key) and check root or
//! `sudo -n`; take the node lock; read the files; plan purely (`backends::patch`); nothing to
//! do → say so and stop; back up + stage (one round trip); rename into place (one); run the
//! restart steps; wait until a kube-apiserver with the new flags answers /readyz; on timeout
//! restore the backup, wait for health again, show the API server's last log lines, fail.
//! Hosts are done one at a time; the first failure stops the run; a summary table ends it.

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
use crate::exec::ssh::{parse_files, HostSpec, Remote, SshOptions};
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

fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))
}

/// How one host ended.
#[derive(Debug, Clone)]
enum Outcome {
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

fn out(text: &str) -> Result<(), Error> {
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| Error::io("stdout", e))
}

/// `k8soidc patch`.
pub(crate) fn run(args: PatchArgs, env: &Env) -> Result<ExitCode, Error> {
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
    let distro = match args.distro.as_str() {
        "auto" => None,
        d => {
            let d = Distribution::parse(d)?;
            patch::target_file(d)?;
            Some(d)
        }
    };
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
            spec,
            opts: &opts,
            settings: settings.as_ref(),
            remove: args.remove,
            distro,
            timeout,
            dry_run: args.dry_run,
            yes: args.yes,
            env,
        };
        let (d, res) = rt.block_on(job.run());
        let outcome = match res {
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
            distro: d.map(|d| d.to_string()).unwrap_or_default(),
            outcome,
        });
    }
    eprint!("{}", summary(&rows));
    match failure {
        Some(e) => Err(e),
        None => Ok(ExitCode::SUCCESS),
    }
}

struct HostJob<'a> {
    /// `--local`: this machine, the same scripts through `sh -c` instead of SSH.
    local: bool,
    spec: &'a HostSpec,
    opts: &'a SshOptions,
    settings: Option<&'a OidcSettings>,
    remove: bool,
    distro: Option<Distribution>,
    timeout: u64,
    dry_run: bool,
    yes: bool,
    env: &'a Env,
}

fn sha256(text: &str) -> String {
    let d = Sha256::digest(text.as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

impl HostJob<'_> {
    async fn run(&self) -> (Option<Distribution>, Result<Outcome, Error>) {
        let connected = if self.local {
            Remote::local().await
        } else {
            Remote::connect(self.spec, self.opts).await
        };
        let mut remote = match connected {
            Ok(r) => r,
            Err(e) => return (self.distro, Err(e)),
        };
        let mut distro = self.distro;
        let res = self.transaction(&mut remote, &mut distro).await;
        remote.close().await;
        (distro, res)
    }

    fn say(&self, msg: &str) {
        eprintln!("[{}] {msg}", self.spec.label);
    }

    async fn transaction(
        &self,
        remote: &mut Remote,
        distro: &mut Option<Distribution>,
    ) -> Result<Outcome, Error> {
        if !self.dry_run {
            remote.lock(STATE_DIR).await?;
            remote.maybe_disconnect("lock");
        }
        let paths = patch::probe_paths(self.distro);
        let text = remote
            .sh_ok("read the node's files", scripts::READ, &paths, None)
            .await?;
        remote.maybe_disconnect("read");
        let mut files = parse_files(&text)?;
        if matches!(files.get(patch::KUBEADM_MANIFEST), Some(Some(_)))
            && matches!(self.distro, None | Some(Distribution::Kubeadm))
        {
            let read = patch::kubeadm_configmap_read();
            let mut argv = vec![patch::KUBEADM_CONFIGMAP.to_string(), read.program.clone()];
            argv.extend(read.args.iter().cloned());
            let o = remote.sh(scripts::READ_COMMAND, &argv, None).await?;
            files.extend(parse_files(&o.stdout)?);
            if let Some(why) = o.stderr.lines().next().filter(|l| !l.trim().is_empty()) {
                self.say(&format!(
                    "kubeadm-config ConfigMap not read: {}",
                    why.trim()
                ));
            }
        }
        // k3s / RKE2 may run without a config file: an active unit counts too.
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
            let argv = vec![key, "systemctl".into(), "is-active".into(), unit];
            let o = remote.sh(scripts::READ_COMMAND, &argv, None).await?;
            files.extend(parse_files(&o.stdout)?);
        }
        let req = PatchRequest {
            host: &self.spec.label,
            settings: self.settings,
            remove: self.remove,
            distribution: self.distro,
            timeout_secs: self.timeout,
        };
        let hp = patch::plan_host(&req, &files)?;
        *distro = Some(hp.distribution);
        if self.dry_run {
            out(&format!("{}\n", hp.plan))?;
            return Ok(if hp.is_noop() {
                Outcome::Unchanged
            } else {
                Outcome::Planned
            });
        }
        if hp.is_noop() {
            self.say(&format!("{}: nothing to change", hp.plan.title));
            return Ok(Outcome::Unchanged);
        }
        eprint!("{}", hp.plan);
        if !self
            .env
            .confirm(&format!("Patch `{}`?", self.spec.label), self.yes)?
        {
            return Err(Error::Other(format!(
                "not confirmed: `{}` unchanged",
                self.spec.label
            )));
        }
        apply(remote, &hp, self.spec).await
    }
}

/// The file transaction (when files change), then, once healthy, the API updates.
async fn apply(remote: &Remote, hp: &HostPlan, spec: &HostSpec) -> Result<Outcome, Error> {
    let files = hp
        .plan
        .steps
        .iter()
        .any(|s| matches!(s, Step::WriteFile { .. }));
    let outcome = if files {
        apply_files(remote, hp, spec).await?
    } else {
        Outcome::Patched {
            backup: String::new(),
        }
    };
    if let Outcome::Patched { .. } = outcome {
        run_transforms(remote, hp, spec).await.map_err(|e| {
            Error::Other(format!(
                "`{}`: the API server is patched and healthy, but a cluster object was not updated: {e}; run again to retry",
                spec.label
            ))
        })?;
    }
    Ok(outcome)
}

/// Read → pure edit → write back, on the node (e.g. the kubeadm-config ConfigMap through
/// `kubectl --kubeconfig /etc/kubernetes/admin.conf`); the edited text goes on stdin.
async fn run_transforms(remote: &Remote, hp: &HostPlan, spec: &HostSpec) -> Result<(), Error> {
    for step in &hp.plan.steps {
        let Step::Transform {
            read, edit, write, ..
        } = step
        else {
            continue;
        };
        let mut argv = vec![read.program.clone()];
        argv.extend(read.args.iter().cloned());
        let current = remote
            .sh_ok(&read.to_shell(), "exec \"$@\"", &argv, None)
            .await?;
        let text = edit.apply(&current)?;
        let backends::WriteBack::Stdin { command } = write else {
            return Err(Error::Other(format!("unexpected write-back for `{read}`")));
        };
        let mut argv = vec![command.program.clone()];
        argv.extend(command.args.iter().cloned());
        remote
            .sh_ok(
                &command.to_shell(),
                "exec \"$@\"",
                &argv,
                Some(text.as_bytes()),
            )
            .await?;
        eprintln!("[{}] updated: {}", spec.label, command.to_shell());
    }
    Ok(())
}

/// Back up, stage, commit, restart, wait; roll back when not healthy.
async fn apply_files(remote: &Remote, hp: &HostPlan, spec: &HostSpec) -> Result<Outcome, Error> {
    use base64::Engine;
    let say = |m: &str| eprintln!("[{}] {m}", spec.label);
    let mut args = vec![STATE_DIR.to_string()];
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
            targets.push(path.clone());
        }
    }
    let staged = remote
        .sh_ok(
            "back up and stage the new files",
            &scripts::stage(),
            &args,
            Some(stdin.as_bytes()),
        )
        .await?;
    let backup = staged
        .lines()
        .find_map(|l| l.strip_prefix("K8SOIDC-BACKUP "))
        .ok_or_else(|| Error::Other(format!("unexpected reply from `{}`: {staged}", spec.label)))?
        .to_string();
    let staged_paths: Vec<&str> = staged
        .lines()
        .filter_map(|l| l.strip_prefix("K8SOIDC-STAGED "))
        .collect();
    if staged_paths.len() != targets.len() {
        return Err(Error::Other(format!(
            "unexpected reply from `{}` while staging: {staged}",
            spec.label
        )));
    }
    say(&format!("backed up to {STATE_DIR}/backups/{backup}"));
    remote.maybe_disconnect("stage");
    let mut pairs = Vec::new();
    for (s, t) in staged_paths.iter().zip(&targets) {
        pairs.push(s.to_string());
        pairs.push(t.clone());
    }
    remote
        .sh_ok(
            "rename the new files into place",
            scripts::COMMIT,
            &pairs,
            None,
        )
        .await?;
    say(&format!("wrote {}", targets.join(", ")));
    remote.maybe_disconnect("commit");
    let h = &hp.health;
    let healthy = match run_restarts(remote, hp).await {
        Ok(()) => wait_healthy(remote, h, &h.flags_after).await,
        Err(e) => Err(format!(
            "the restart failed: {}",
            e.to_string().replace('\n', " ")
        )),
    };
    match healthy {
        Ok(()) => {
            say("API server healthy with the new settings");
            Ok(Outcome::Patched { backup })
        }
        Err(why) => {
            say(&format!(
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
            eprintln!(
                "[{}] last API server log lines:{}",
                spec.label,
                crate::error::framed(&logs)
            );
            match back {
                Ok(()) => {
                    say("restored; API server healthy with the previous settings");
                    Ok(Outcome::RolledBack { backup })
                }
                Err(why) => Err(Error::Other(format!(
                    "`{}` restored from backup {backup} but the API server is still not healthy ({why}); check the node",
                    spec.label
                ))),
            }
        }
    }
}

async fn run_restarts(remote: &Remote, hp: &HostPlan) -> Result<(), Error> {
    let commands: Vec<backends::Command> = hp
        .plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Run { command, .. } => Some(command.clone()),
            _ => None,
        })
        .collect();
    run_commands(remote, &commands).await
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
    let max_tries = h.timeout_secs * 2 + 4;
    for _ in 0..max_tries {
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
        tokio::time::sleep(Duration::from_millis(500)).await;
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
                    .sh_ok("read the node's files", scripts::READ, &paths, None)
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
                    return Err(Error::Other("not confirmed: nothing changed".into()));
                }
                let mut stage_args = vec![STATE_DIR.to_string()];
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
                if !targets.is_empty() {
                    let staged = remote
                        .sh_ok("stage the new files", &scripts::stage(), &stage_args, Some(stdin.as_bytes()))
                        .await?;
                    let mut pairs = Vec::new();
                    for (st, t) in staged
                        .lines()
                        .filter_map(|l| l.strip_prefix("K8SOIDC-STAGED "))
                        .zip(&targets)
                    {
                        pairs.extend([st.to_string(), t.clone()]);
                    }
                    remote
                        .sh_ok("rename the new files into place", scripts::COMMIT, &pairs, None)
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
                    .sh_ok("read the node's files", scripts::READ, &patch::probe_paths(Some(d)), None)
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
                    match apply(&remote, &hp, spec).await? {
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
        return Err(Error::Other("not confirmed: nothing changed".into()));
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
        .sh_ok("read the node's files", scripts::READ, &paths, None)
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

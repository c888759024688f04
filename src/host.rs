//! One host's `patch` transaction, and the executor of node plans.
//!
//! Per host, one SSH connection (strict host key): (1) the plan's first round trip,
//! [`NodeStep::Begin`]: privileges, the node lock, every read; then the pure planner
//! (`backends::patch::plan_host`) makes the [`HostPlan`]; a dry run prints it and stops;
//! otherwise [`execute`] runs its steps, one round trip each, a plain `match` over them: commit
//! (back up, stage, rename, restart), the health wait (one loop on the node), the checksum
//! read-back, then cluster objects (kubeadm's ConfigMap, compare and swap). When the API
//! server does not come back, the plan's `on_failure` steps run: its log lines, the restore of
//! this run's backup, restart, wait. Nothing runs on a node that is not a step of the plan.

use std::ops::ControlFlow;

use backends::node::{HostPlan, NodeStep};
use backends::patch::{self, PatchRequest};
use backends::{Distribution, OidcSettings, Plan, Step};

use crate::error::Error;
use crate::exec::ssh::{parse_files, HostSpec, Output, Remote, SshOptions};
use crate::report::{Outcome, Say};
use crate::ui::Env;

/// One host's transaction, with everything it needs owned (inventory runs move it into a task).
pub(crate) struct HostJob {
    /// `--local`: this machine, the same scripts through `sh -c` instead of SSH.
    pub(crate) local: bool,
    pub(crate) spec: HostSpec,
    pub(crate) opts: SshOptions,
    pub(crate) settings: Option<OidcSettings>,
    pub(crate) remove: bool,
    /// `--auth-mode config|flags` without settings: convert what the node runs.
    pub(crate) convert: Option<backends::migrate::Convert>,
    pub(crate) distro: Option<Distribution>,
    pub(crate) timeout: u64,
    pub(crate) dry_run: bool,
    /// `-v`: plans show the exact scripts.
    pub(crate) verbose: bool,
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

    async fn transaction(
        &self,
        remote: &mut Remote,
        distro: &mut Option<Distribution>,
        plan: &mut Option<String>,
    ) -> Result<Outcome, Error> {
        // Round trip 1: privileges, lock (not in a dry run), every read.
        let begin = patch::begin(self.distro, !self.dry_run);
        let begun = remote.begin(&begin, !self.dry_run).await?;
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
            sudo: remote.sudo(),
            convert: self.convert,
        };
        let hp = patch::plan_host(&req, &files)?;
        *distro = Some(hp.distribution);
        // With -v, what a real run sends first (with the lock), then the plan.
        let shown = match self.verbose {
            true => {
                backends::node::read_preface(&self.spec.label, &patch::begin(self.distro, true))
            }
            false => String::new(),
        } + &hp.display(self.verbose).to_string();
        if self.dry_run {
            *plan = Some(format!("{shown}\n"));
            return Ok(if hp.is_noop() {
                Outcome::Unchanged
            } else {
                Outcome::Planned
            });
        }
        if hp.is_noop() {
            for w in hp.plan.notes.iter().filter(|n| n.starts_with("warning: ")) {
                self.say.line(w);
            }
            self.say
                .line(&format!("{}: nothing to change", hp.plan.title));
            return Ok(Outcome::Unchanged);
        }
        self.say.block(&shown);
        if let Some((env, yes)) = &self.confirm {
            if !env
                .confirm_async(&format!("Patch `{}`?", self.spec.label), *yes)
                .await?
            {
                self.say.line("not confirmed: nothing done");
                return Ok(Outcome::Skipped);
            }
        }
        execute(remote, &hp, &self.say).await
    }
}

/// What a commit (or a create script) printed.
struct Committed {
    backup: Option<String>,
    committed: bool,
    restart_failed: bool,
    staged: usize,
}

fn committed(o: &Output) -> Committed {
    let lines = || o.stdout.lines();
    Committed {
        backup: lines()
            .find_map(|l| l.strip_prefix("K8SOIDC-BACKUP "))
            .map(str::to_string),
        committed: lines().any(|l| l == "K8SOIDC-COMMITTED"),
        restart_failed: lines().any(|l| l.starts_with("K8SOIDC-RESTART-FAILED")),
        staged: lines().filter(|l| l.starts_with("K8SOIDC-STAGED ")).count(),
    }
}

fn failed(what: &str, label: &str, o: Output) -> Error {
    Error::CommandFailed {
        command: what.into(),
        host: Some(label.to_string()),
        status: match o.code {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".into(),
        },
        stderr: o.stderr,
    }
}

/// Runs a host plan: its steps in order, and its `on_failure` steps when the API server does
/// not come back.
pub(crate) async fn execute(remote: &Remote, hp: &HostPlan, say: &Say) -> Result<Outcome, Error> {
    run_steps(
        remote,
        &hp.plan,
        &hp.on_failure,
        say,
        "with the new settings",
    )
    .await
}

/// The executor: a plain `match` over the node steps of `plan`; a failed wait (or restart)
/// after a commit runs `on_failure` with this run's backup.
pub(crate) async fn run_steps(
    remote: &Remote,
    plan: &Plan,
    on_failure: &[NodeStep],
    say: &Say,
    healthy: &str,
) -> Result<Outcome, Error> {
    let mut x = Executor {
        remote,
        on_failure,
        say,
        healthy,
        label: remote.spec.label.clone(),
        backup: None,
    };
    // From here a SIGINT/SIGTERM is this run's to handle (crate::interrupt): stop before a
    // change, restore during a wait.
    let _guard = crate::interrupt::Guard::new();
    for s in &plan.steps {
        x.before_step().await?;
        let Step::Node { step, .. } = s else {
            return Err(Error::Other(format!(
                "internal: a step for `{}` is not a node step: {s}",
                x.label
            )));
        };
        if let ControlFlow::Break(outcome) = x.step(s, step).await? {
            return Ok(outcome);
        }
    }
    x.finish()
}

/// One run of [`run_steps`]: what it was given, and the backup its commit (or script) made.
struct Executor<'a> {
    remote: &'a Remote,
    on_failure: &'a [NodeStep],
    say: &'a Say,
    /// How the health line ends ("with the new settings", ...).
    healthy: &'a str,
    label: String,
    backup: Option<String>,
}

impl Executor<'_> {
    /// Before each step, while nothing has changed yet (no backup): a signal seen, or the
    /// node lock lost, stops the run.
    async fn before_step(&self) -> Result<(), Error> {
        let label = &self.label;
        if let (None, Some(sig)) = (&self.backup, crate::interrupt::seen(1)) {
            return Err(Error::Interrupted {
                signal: sig,
                message: format!(
                    "`{label}`: interrupted ({}) before any change: nothing changed",
                    crate::interrupt::name(sig)
                ),
            });
        }
        if self.backup.is_none() && self.remote.lock_lost() {
            // The lock's channel ends with the connection too: then say that (exit 3).
            if self.remote.connection_gone().await {
                return Err(Error::ConnectionLost {
                    host: label.clone(),
                    cause: None,
                    state: crate::error::LostState::NothingChanged,
                });
            }
            return Err(Error::Other(format!(
                "lost the lock on `{label}` ({}/lock): its holder on the node ended, so another run may be changing the node; stopped before any change; run again",
                backends::node::STATE_DIR
            )));
        }
        Ok(())
    }

    /// Runs node step `step` (of plan step `s`): go on, or end the run with an outcome.
    async fn step(&mut self, s: &Step, step: &NodeStep) -> Result<ControlFlow<Outcome>, Error> {
        match step {
            NodeStep::Commit { files, .. } => return self.commit(step, files).await,
            NodeStep::AwaitHealthy(h) => return self.await_healthy(step, h).await,
            NodeStep::AwaitReload(r) => return self.await_reload(step, r).await,
            NodeStep::CompareAndSwap { write, .. } => self.compare_and_swap(step, write).await?,
            NodeStep::Script { name, .. } => self.script(step, name).await?,
            NodeStep::Run { command } => {
                let o = self.remote.step(step).await?;
                if o.code != Some(0) {
                    return Err(failed(&command.to_shell(), &self.label, o));
                }
                self.say.line(&format!("ran {command}"));
            }
            NodeStep::Restore { .. }
            | NodeStep::Logs { .. }
            | NodeStep::ListBackups
            | NodeStep::Begin { .. } => {
                let o = self.remote.step(step).await?;
                if o.code != Some(0) {
                    return Err(failed(s.why(), &self.label, o));
                }
                for l in o
                    .stdout
                    .lines()
                    .filter_map(|l| l.strip_prefix("K8SOIDC-RESTORED "))
                {
                    self.say.line(&format!("restored {l}"));
                }
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// A Commit step ([`commit`]); a failed restart restores the backup it made.
    async fn commit(
        &mut self,
        step: &NodeStep,
        files: &[backends::node::FileChange],
    ) -> Result<ControlFlow<Outcome>, Error> {
        let (b, restart_failed) = match commit(self.remote, step, files, self.say).await {
            Ok(done) => done,
            // A terminal's Ctrl-C ends the commit's own channel too: its reply is lost.
            Err(e) => match crate::interrupt::seen(1) {
                Some(sig) => return Err(Error::Interrupted {
                    signal: sig,
                    message: format!(
                        "`{}`: interrupted ({}) during the commit, whose reply was lost ({e}): each file is old or new; if a backup was made, `{}` lists it and `{}` restores it",
                        self.label,
                        crate::interrupt::name(sig),
                        self.remote.backups_command(),
                        self.remote.rollback_command("ID")
                    ),
                }),
                None => return Err(e),
            },
        };
        self.backup = Some(b.clone());
        if let Some(why) = restart_failed {
            return self.recover(&b, &why).await;
        }
        Ok(ControlFlow::Continue(()))
    }

    /// An AwaitHealthy step; on a timeout after a commit, the backup is restored.
    async fn await_healthy(
        &self,
        step: &NodeStep,
        h: &backends::node::Health,
    ) -> Result<ControlFlow<Outcome>, Error> {
        let t = h.timeout_secs;
        self.after_wait(
            interruptible(await_healthy(self.remote, step)).await,
            &h.read_back,
            format!("API server healthy {}", self.healthy),
            |why, b| format!("not healthy within {t}s ({why}); restoring backup {b}"),
            |why| format!("the API server is not healthy within {t}s ({why}); check the node"),
        )
        .await
    }

    /// An AwaitReload step; on a failure after a commit, the backup is restored.
    async fn await_reload(
        &self,
        step: &NodeStep,
        r: &backends::node::Reload,
    ) -> Result<ControlFlow<Outcome>, Error> {
        self.after_wait(
            interruptible(await_reload(self.remote, step)).await,
            &r.read_back,
            format!("API server reloaded {} {}", r.path, self.healthy),
            |why, b| format!("{why}; restoring backup {b}"),
            |why| format!("{why}; check the node"),
        )
        .await
    }

    /// What follows a wait: the `done` line; on a signal, [`interrupted`]; on a failure after
    /// a commit, the `restoring` line and the restore; else the `gave_up` error.
    async fn after_wait(
        &self,
        waited: Waited<Result<String, String>>,
        read_back: &[(String, String)],
        done: String,
        restoring: impl Fn(&str, &str) -> String,
        gave_up: impl Fn(&str) -> String,
    ) -> Result<ControlFlow<Outcome>, Error> {
        match waited {
            Waited::Done(Ok(stdout)) => {
                self.say.line(&done);
                read_back_matches(&self.label, &stdout, read_back, self.backup.as_deref())?;
                Ok(ControlFlow::Continue(()))
            }
            Waited::Interrupted(sig) => self.interrupted(sig).await,
            Waited::Done(Err(why)) => match &self.backup {
                Some(b) if !self.on_failure.is_empty() => {
                    self.say.line(&restoring(&why, b));
                    self.recover(b, &why).await
                }
                _ => Err(Error::Other(format!("`{}`: {}", self.label, gave_up(&why)))),
            },
        }
    }

    /// A CompareAndSwap step: a cluster object updated after the API server is healthy.
    async fn compare_and_swap(
        &self,
        step: &NodeStep,
        write: &backends::Command,
    ) -> Result<(), Error> {
        let label = &self.label;
        let o = self.remote.step(step).await?;
        if o.code != Some(0) {
            let e = failed(&write.to_shell(), label, o);
            return Err(Error::Other(format!(
                "`{label}`: the API server is patched and healthy, but a cluster object was not updated: {e}; run again to retry"
            )));
        }
        self.say.line(&format!("updated: {write}"));
        Ok(())
    }

    /// A Script step (`name`); a backup it reports becomes this run's.
    async fn script(&mut self, step: &NodeStep, name: &str) -> Result<(), Error> {
        let o = self.remote.step(step).await?;
        let c = committed(&o);
        if let Some(b) = &c.backup {
            self.say.line(&format!(
                "backed up to {}/backups/{b}",
                backends::node::STATE_DIR
            ));
            self.backup = Some(b.clone());
        }
        if o.code != Some(0) {
            return Err(failed(name, &self.label, o));
        }
        self.say.line(&format!("ran: {name}"));
        Ok(())
    }

    /// Restores backup `b` with the `on_failure` steps ([`recover`]), which ends the run.
    async fn recover(&self, b: &str, why: &str) -> Result<ControlFlow<Outcome>, Error> {
        recover(self.remote, self.on_failure, b, why, self.say)
            .await
            .map(ControlFlow::Break)
    }

    /// A signal `sig` during a wait ([`interrupted`]), which ends the run.
    async fn interrupted(&self, sig: i32) -> Result<ControlFlow<Outcome>, Error> {
        interrupted(
            self.remote,
            self.on_failure,
            self.backup.as_deref(),
            sig,
            self.say,
        )
        .await
        .map(ControlFlow::Break)
    }

    /// After the last step: patched with this run's backup, unless a signal came after the
    /// wait (the change is then kept, and the way to undo it named).
    fn finish(self) -> Result<Outcome, Error> {
        let label = &self.label;
        if let Some(sig) = crate::interrupt::seen(1) {
            // Signalled after the wait: the change is complete and healthy; say how to undo it.
            let b = self.backup.unwrap_or_default();
            return Err(Error::Interrupted {
                signal: sig,
                message: format!(
                    "`{label}`: interrupted ({}) after the API server came back healthy with the new settings, so the change is complete and kept; backup {b} holds the files from before it: `{}`",
                    crate::interrupt::name(sig),
                    self.remote.rollback_command(&b)
                ),
            });
        }
        Ok(Outcome::Patched {
            backup: self.backup.unwrap_or_default(),
        })
    }
}

/// How a wait ended: by itself, or by a signal.
enum Waited<T> {
    Done(T),
    Interrupted(i32),
}

/// Runs a wait step unless (or until) a signal comes. A terminal's Ctrl-C also ends the
/// wait's own `ssh` channel, which can make the wait fail a moment before the signal is seen
/// here: a failed wait looks again after a short pause.
async fn interruptible<T, E>(
    wait: impl std::future::Future<Output = Result<T, E>>,
) -> Waited<Result<T, E>> {
    if let Some(sig) = crate::interrupt::seen(1) {
        return Waited::Interrupted(sig);
    }
    let done = tokio::select! {
        biased;
        sig = crate::interrupt::wait(1) => return Waited::Interrupted(sig),
        done = wait => done,
    };
    if done.is_err() {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        if let Some(sig) = crate::interrupt::seen(1) {
            return Waited::Interrupted(sig);
        }
    }
    Waited::Done(done)
}

/// A signal during a wait: restore this run's backup as on a timeout (the `on_failure`
/// steps), unless a second signal stops that; always name the backup and the exact
/// `k8soidc rollback` command.
async fn interrupted(
    remote: &Remote,
    on_failure: &[NodeStep],
    backup: Option<&str>,
    sig: i32,
    say: &Say,
) -> Result<Outcome, Error> {
    let label = &remote.spec.label;
    let name = crate::interrupt::name(sig);
    let Some(b) = backup.filter(|_| !on_failure.is_empty()) else {
        let undo = match backup {
            Some(b) => format!(
                "; backup {b} holds the files from before this run: `{}`",
                remote.rollback_command(b)
            ),
            None => String::new(),
        };
        return Err(Error::Interrupted {
            signal: sig,
            message: format!(
                "`{label}`: interrupted ({name}) while waiting for the API server; not restored (this command has no automatic restore), the node keeps what was written{undo}"
            ),
        });
    };
    let rollback = remote.rollback_command(b);
    say.line(&format!(
        "interrupted ({name}) during the wait: restoring backup {b} (by hand: `{rollback}`)"
    ));
    let why = format!("interrupted by {name}");
    let restored = tokio::select! {
        biased;
        again = crate::interrupt::wait(2) => {
            return Err(Error::Interrupted {
                signal: again,
                message: format!(
                    "`{label}`: interrupted again ({}) while restoring backup {b}: stopped where it was, so the node has either the new settings or the previous ones (each file is old or new); to restore: `{rollback}`",
                    crate::interrupt::name(again)
                ),
            });
        }
        r = recover(remote, on_failure, b, &why, say) => r,
    };
    match restored {
        Ok(_) => Err(Error::Interrupted {
            signal: sig,
            message: format!(
                "`{label}`: interrupted ({name}) during the wait: restored backup {b}, the API server is healthy with the previous settings; the backup stays on the node: `{rollback}`"
            ),
        }),
        Err(e) => Err(Error::Interrupted {
            signal: sig,
            message: format!(
                "`{label}`: interrupted ({name}) during the wait, and the restore did not finish: {e}; backup {b}: `{rollback}`"
            ),
        }),
    }
}

/// Runs a Commit step: back up, stage, rename and restart. Returns the backup id and, when
/// the restart failed, why (the caller then restores).
async fn commit(
    remote: &Remote,
    step: &NodeStep,
    files: &[backends::node::FileChange],
    say: &Say,
) -> Result<(String, Option<String>), Error> {
    let label = &remote.spec.label;
    let o = remote.step(step).await?;
    let c = committed(&o);
    if o.code == Some(74) && !c.committed {
        return Err(rename_failed(remote, c.backup.as_deref(), o));
    }
    if !c.committed || (o.code != Some(0) && !c.restart_failed) {
        return Err(failed("back up, stage and rename the new files", label, o));
    }
    let (Some(b), true) = (c.backup, c.staged == files.len()) else {
        return Err(Error::Other(format!(
            "unexpected reply from `{label}` while staging: {}",
            o.stdout
        )));
    };
    say.line(&format!(
        "backed up to {}/backups/{b}",
        backends::node::STATE_DIR
    ));
    remote.maybe_disconnect("stage");
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    say.line(&format!("wrote {}", paths.join(", ")));
    remote.maybe_disconnect("commit");
    let restart_failed = c
        .restart_failed
        .then(|| format!("the restart failed: {}", o.stderr.trim().replace('\n', " ")));
    Ok((b, restart_failed))
}

/// The read-back a wait ended with (`K8SOIDC-SUM SHA256 PATH` lines): each written file must
/// still have the checksum written.
fn read_back_matches(
    label: &str,
    stdout: &str,
    files: &[(String, String)],
    backup: Option<&str>,
) -> Result<(), Error> {
    for (path, want) in files {
        let have = stdout.lines().find_map(|l| {
            let (sum, p) = l.strip_prefix("K8SOIDC-SUM ")?.split_once(' ')?;
            (p == path).then_some(sum)
        });
        if have != Some(want.as_str()) {
            return Err(Error::Other(format!(
                "`{label}`: {path} is not what was written (changed since by something else?); the API server is healthy; check the file, backup {} has the previous one",
                backup.unwrap_or("-")
            )));
        }
    }
    Ok(())
}

/// A commit whose rename into place failed part way (exit 74): the script put back the files
/// it had already renamed (`K8SOIDC-UNDONE`) or could not (`K8SOIDC-NOT-UNDONE`); the message
/// says which, and how to restore by hand when needed.
fn rename_failed(remote: &Remote, backup: Option<&str>, o: Output) -> Error {
    let label = &remote.spec.label;
    let list = |prefix: &str| -> Vec<String> {
        o.stdout
            .lines()
            .filter_map(|l| l.strip_prefix(prefix))
            .map(str::to_string)
            .collect()
    };
    let (undone, not_undone) = (list("K8SOIDC-UNDONE "), list("K8SOIDC-NOT-UNDONE "));
    let why = o.stderr.trim().replace('\n', " ");
    let id = backup.unwrap_or("-");
    let what = if not_undone.is_empty() && undone.is_empty() {
        "no file was changed".to_string()
    } else if not_undone.is_empty() {
        format!(
            "the files this run had already changed ({}) were restored from backup {id}, so every file is as before",
            undone.join(", ")
        )
    } else {
        format!(
            "{} changed and could not be restored{}; restore them with `{}`",
            not_undone.join(", "),
            if undone.is_empty() {
                String::new()
            } else {
                format!(" ({} restored)", undone.join(", "))
            },
            remote.rollback_command(id)
        )
    };
    Error::Other(format!(
        "`{label}`: cannot rename the new files into place ({why}); {what}"
    ))
}

/// The `on_failure` steps with this run's backup: the log lines, the restore, the wait for the
/// previous configuration.
async fn recover(
    remote: &Remote,
    on_failure: &[NodeStep],
    backup: &str,
    why: &str,
    say: &Say,
) -> Result<Outcome, Error> {
    let label = &remote.spec.label;
    let mut logs = String::new();
    let mut back: Result<(), String> = Ok(());
    for step in on_failure {
        let step = step.with_backup(backup);
        match &step {
            NodeStep::Logs { .. } => {
                logs = remote
                    .step(&step)
                    .await
                    .map(|o| o.stdout)
                    .unwrap_or_default();
            }
            NodeStep::AwaitHealthy(_) => {
                if back.is_ok() {
                    back = await_healthy(remote, &step).await.map(drop);
                }
            }
            _ => {
                let o = remote.step(&step).await?;
                if o.code == Some(73) && matches!(step, NodeStep::Restore { .. }) {
                    let changed: Vec<&str> = o
                        .stdout
                        .lines()
                        .filter_map(|l| l.strip_prefix("K8SOIDC-CHANGED "))
                        .collect();
                    return Err(Error::Other(format!(
                        "`{label}`: not restored: {} changed since this run wrote it (another run or a person changed it), so it is left as it is; backup {backup} holds the files from before this run: `{}` (first: {why})",
                        changed.join(", "),
                        remote.rollback_command(backup)
                    )));
                }
                if o.code != Some(0) {
                    let what = if matches!(step, NodeStep::Restore { .. }) {
                        "restore the backup"
                    } else {
                        "recover"
                    };
                    if o.stdout.contains("K8SOIDC-RESTART-FAILED") {
                        back = Err(format!("the restart failed: {}", o.stderr.trim()));
                        continue;
                    }
                    return Err(failed(what, label, o));
                }
            }
        }
    }
    if !logs.trim().is_empty() {
        say.line(&format!(
            "last API server log lines:{}",
            crate::error::framed(&logs)
        ));
    }
    match back {
        Ok(()) => {
            say.line("restored; API server healthy with the previous settings");
            Ok(Outcome::RolledBack {
                backup: backup.to_string(),
            })
        }
        Err(again) => Err(Error::Other(format!(
            "`{label}` restored from backup {backup} but the API server is still not healthy ({again}; first: {why}); check the node"
        ))),
    }
}

/// Runs an [`NodeStep::AwaitReload`] (one round trip: the loop runs on the node) and reads its
/// verdict; the error quotes the API server's log line when the node found one.
pub(crate) async fn await_reload(remote: &Remote, step: &NodeStep) -> Result<String, String> {
    let o = remote.step(step).await.map_err(|e| e.to_string())?;
    let log = o
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("K8SOIDC-LOG "))
        .map(|l| format!("; its log: {}", l.trim()))
        .unwrap_or_default();
    let verdict = o.stdout.lines().rev().find_map(|l| {
        if let Some(rest) = l.strip_prefix("K8SOIDC-RELOADED ") {
            return Some((true, rest.trim(), ""));
        }
        let rest = l.strip_prefix("K8SOIDC-NOT-RELOADED ")?;
        let (polls, why) = rest.split_once(' ').unwrap_or((rest, ""));
        Some((false, polls, why.trim()))
    });
    match verdict {
        Some((ok, polls, why)) => {
            remote.add_polls(polls.parse::<u32>().unwrap_or(0));
            if ok {
                Ok(o.stdout)
            } else {
                Err(format!("not reloaded: {why}{log}"))
            }
        }
        None => Err(format!(
            "the reload wait ended without a verdict (exit {:?}): {}",
            o.code,
            o.stderr.trim().replace('\n', " ")
        )),
    }
}

/// Runs an [`NodeStep::AwaitHealthy`] (one round trip: the loop runs on the node) and reads
/// its verdict; on success, its output (with the read-back lines).
pub(crate) async fn await_healthy(remote: &Remote, step: &NodeStep) -> Result<String, String> {
    let o = remote.step(step).await.map_err(|e| e.to_string())?;
    // The verdict is the last line: `K8SOIDC-HEALTHY POLLS PID` or `K8SOIDC-UNHEALTHY POLLS WHY`.
    let verdict = o.stdout.lines().rev().find_map(|l| {
        let (healthy, rest) = match l.strip_prefix("K8SOIDC-HEALTHY ") {
            Some(rest) => (true, rest),
            None => (false, l.strip_prefix("K8SOIDC-UNHEALTHY ")?),
        };
        let (polls, detail) = rest.split_once(' ').unwrap_or((rest, ""));
        Some((healthy, polls.parse::<u32>().unwrap_or(0), detail.trim()))
    });
    match verdict {
        Some((healthy, polls, why)) => {
            remote.add_polls(polls);
            if healthy {
                Ok(o.stdout)
            } else {
                Err(why.to_string())
            }
        }
        None => Err(format!(
            "the wait ended without a verdict (exit {:?}): {}",
            o.code,
            o.stderr.trim().replace('\n', " ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::read_back_matches;

    const SUM: &str = "0123abcd";

    #[test]
    fn the_read_back_must_name_every_file_with_its_sum() {
        let files = vec![("/etc/a b".to_string(), SUM.to_string())];
        let ok = format!("K8SOIDC-SUM {SUM} /etc/a b\nK8SOIDC-HEALTHY 4 77\n");
        assert!(read_back_matches("h", &ok, &files, Some("B")).is_ok());
        assert!(read_back_matches("h", "K8SOIDC-HEALTHY 4 77\n", &[], None).is_ok());
        for bad in [
            "K8SOIDC-SUM ffff /etc/a b\n",
            "K8SOIDC-SUM absent /etc/a b\n",
            "K8SOIDC-HEALTHY 4 77\n",
            "K8SOIDC-SUM 0123abcd /etc/a\n",
        ] {
            let e = read_back_matches("h", bad, &files, Some("B"))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("`h`: /etc/a b is not what was written") && e.contains("backup B"),
                "{bad}: {e}"
            );
        }
    }
}

//! Local execution with duct: argv only (never a shell), stdin for file contents, output
//! captured (shown framed on failure, or live with `--verbose`), a spinner for any step that
//! takes over a second, every wait bounded in time and count.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use backends::{Command, Plan, Step, Target, Until};

use crate::error::Error;
use crate::ui::Env;

/// Fails with an install hint when a required program is missing.
pub(crate) fn check_programs(programs: &[(&str, &str)]) -> Result<(), Error> {
    for (program, hint) in programs {
        if which::which(program).is_err() {
            return Err(Error::MissingProgram {
                program: (*program).to_string(),
                hint: (*hint).to_string(),
            });
        }
    }
    Ok(())
}

fn run_command(
    cmd: &Command,
    stdin: Option<&[u8]>,
    env: &Env,
    verbose: bool,
    label: &str,
) -> Result<Vec<u8>, Error> {
    // A step where k8soidc runs itself shows `k8soidc`; it runs this very executable.
    // (An OsString: duct looks a string program up on PATH; current_exe is absolute.)
    let program: std::ffi::OsString = if cmd.program == backends::K8SOIDC {
        std::env::current_exe()
            .map_err(|e| Error::Other(format!("cannot find the running k8soidc for `{cmd}`: {e}")))?
            .into_os_string()
    } else {
        cmd.program.clone().into()
    };
    let mut expr = duct::cmd(program, &cmd.args).unchecked();
    expr = match stdin {
        Some(bytes) => expr.stdin_bytes(bytes.to_vec()),
        None => expr.stdin_null(),
    };
    if !verbose {
        expr = expr.stderr_capture();
    }
    expr = expr.stdout_capture();
    let handle = expr.start().map_err(|e| Error::CommandStart {
        command: cmd.to_string(),
        detail: e.to_string(),
    })?;
    let started = Instant::now();
    let mut spinner = None;
    let output = loop {
        match handle.try_wait() {
            Ok(Some(out)) => break out.clone(),
            Ok(None) => {}
            Err(e) => return Err(Error::Other(format!("`{cmd}` failed to run: {e}"))),
        }
        if spinner.is_none() && started.elapsed() > Duration::from_secs(1) {
            spinner = Some(env.spinner(label.to_string()));
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    if verbose {
        let _ = std::io::stdout().write_all(&output.stdout);
    }
    if !output.status.success() {
        let status = match output.status.code() {
            Some(c) => format!("exit status {c}"),
            None => "killed by a signal".to_string(),
        };
        return Err(Error::CommandFailed {
            command: cmd.to_shell(),
            host: None,
            status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(output.stdout)
}

/// Writes a file atomically: a temporary file in the same directory, fsync, rename. A file
/// that exists keeps its owner and group: the temporary file gets them before its mode (as
/// `chown` clears set-id bits) and before the rename, so no moment shows the new content with
/// another owner; when they cannot be kept (not root, someone else's file), nothing is
/// replaced.
pub(crate) fn write_atomic(path: &Path, content: &[u8], mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display().to_string(), e))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".k8soidc-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir.display().to_string(), e))?;
    let p = path.display().to_string();
    tmp.write_all(content).map_err(|e| Error::io(&p, e))?;
    if let Ok(old) = std::fs::metadata(path) {
        let file = tmp.as_file();
        let made = file.metadata().map_err(|e| Error::io(&p, e))?;
        if (made.uid(), made.gid()) != (old.uid(), old.gid()) {
            std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid())).map_err(|e| {
                Error::Other(format!(
                    "cannot keep the owner {}:{} of `{p}` ({e}); nothing was changed: run as that user or as root",
                    old.uid(),
                    old.gid()
                ))
            })?;
        }
    }
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(&p, e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(&p, e))?;
    tmp.persist(path).map_err(|e| Error::io(&p, e.error))?;
    Ok(())
}

fn require_local(step: &Step) -> Result<(), Error> {
    match step.target() {
        Target::Local => Ok(()),
        Target::Host(h) => Err(Error::Other(format!(
            "step for host `{h}` reached the local executor: {}",
            step.why()
        ))),
    }
}

/// Runs every step in order; stops at the first failure.
pub(crate) fn run_plan(plan: &Plan, env: &Env, verbose: bool) -> Result<(), Error> {
    run_plan_at(plan, env, verbose).map_err(|(_, e)| e)
}

/// [`run_plan`], telling which step (0-based) failed.
pub(crate) fn run_plan_at(plan: &Plan, env: &Env, verbose: bool) -> Result<(), (usize, Error)> {
    for (i, step) in plan.steps.iter().enumerate() {
        run_step(plan, i, step, env, verbose).map_err(|e| (i, e))?;
    }
    Ok(())
}

fn run_step(plan: &Plan, i: usize, step: &Step, env: &Env, verbose: bool) -> Result<(), Error> {
    let total = plan.steps.len();
    {
        require_local(step)?;
        let label = format!("[{}/{total}] {}", i + 1, step.why());
        eprintln!("{label}");
        match step {
            Step::Run {
                command,
                sudo,
                stdin,
                ..
            } => {
                if *sudo {
                    return Err(Error::Other(format!("local step asks for sudo: {command}")));
                }
                run_command(
                    command,
                    stdin.as_deref().map(str::as_bytes),
                    env,
                    verbose,
                    &label,
                )?;
            }
            Step::WriteFile {
                path, after, mode, ..
            } => write_atomic(Path::new(path), after.as_bytes(), *mode)?,
            Step::Await {
                read,
                until,
                interval_secs,
                timeout_secs,
                ..
            } => await_until(read, until, *interval_secs, *timeout_secs, env, &label)?,
            Step::Node { .. } => {
                return Err(Error::Other(format!(
                    "internal: a node step reached the local executor: {}",
                    step.why()
                )))
            }
        }
    }
    Ok(())
}

/// [`Step::Await`]: polls `read` every `interval` seconds until `until` says done, printing a
/// progress line whenever it changes (a spinner on a terminal); gives up after `timeout`
/// seconds with what was last seen.
fn await_until(
    read: &Command,
    until: &Until,
    interval: u64,
    timeout: u64,
    env: &Env,
    label: &str,
) -> Result<(), Error> {
    let subject = until.subject();
    let started = Instant::now();
    let every = Duration::from_secs(interval);
    let spinner = env.spinner(format!("waiting for {subject}"));
    let mut last = String::new();
    loop {
        let out = run_command(read, None, env, false, label)?;
        let out = String::from_utf8(out)
            .map_err(|_| Error::Other(format!("`{read}` printed text that is not UTF-8")))?;
        let status = until.check(&out)?;
        if status.done {
            spinner.finish_and_clear();
            eprintln!(
                "{subject} rolled out: {} after {}s",
                status.summary,
                started.elapsed().as_secs()
            );
            return Ok(());
        }
        let line = format!("waiting for {subject}: {}", status.summary);
        if line != last {
            if env.stderr_tty {
                spinner.set_message(line.clone());
            } else {
                eprintln!("{line} ({}s)", started.elapsed().as_secs());
            }
            last = line;
        }
        if started.elapsed() + every > Duration::from_secs(timeout) {
            spinner.finish_and_clear();
            let conditions: String = status
                .conditions
                .iter()
                .map(|c| format!("\n  | {c}"))
                .collect();
            return Err(Error::Other(format!(
                "gave up after {timeout}s waiting for {subject} to roll out ({}); {}; conditions:{}",
                status.summary,
                until.on_timeout(),
                if conditions.is_empty() {
                    " none reported".to_string()
                } else {
                    conditions
                }
            )));
        }
        std::thread::sleep(every);
    }
}

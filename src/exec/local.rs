//! Local execution with duct, the one place programs on this machine are run: a plan's local
//! steps ([`run_plan`]), the reads done before planning ([`capture`]: `kubectl get`, `kops get`,
//! `juju config`, `docker inspect`, the cloud CLIs' lists) and the preflight's bounded runs
//! ([`run_bounded`]). argv only (never a shell), stdin for file contents, output captured
//! (shown framed on failure, or live with `--verbose`), a spinner for any step that takes over
//! a second, every wait bounded in time and count. (Node steps, over SSH or `--local`, run in
//! `exec::ssh`.)

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use backends::{Command, Plan, Progress, Step, Target, Until};

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

/// [`Step::Await`]: runs the read-only command `read` until its output says `until` holds: at
/// most [`backends::poll_count`] polls, `interval` apart, within `timeout` seconds. Progress goes
/// to the spinner on a terminal, else a line whenever what is seen changes (and every 5
/// minutes); giving up says what was last seen and what the user can do.
fn await_until(
    read: &Command,
    until: &Until,
    interval: u64,
    timeout: u64,
    env: &Env,
    label: &str,
) -> Result<(), Error> {
    let started = Instant::now();
    let spinner = env.spinner(label.to_string());
    let mut last = String::new();
    let mut last_output = String::new();
    let mut last_line = Instant::now();
    for n in 1..=backends::poll_count(interval, timeout) {
        let out = run_command(read, None, env, false, label)?;
        let text = String::from_utf8(out)
            .map_err(|_| Error::Other(format!("`{read}` printed text that is not UTF-8")))?;
        let elapsed = backends::shell::duration(started.elapsed().as_secs());
        match until.check(&text) {
            Ok(Progress::Done(seen)) => {
                spinner.finish_and_clear();
                eprintln!("{seen} (after {elapsed}, poll {n})");
                return Ok(());
            }
            Ok(Progress::Pending(seen)) => {
                if env.stderr_tty {
                    spinner.set_message(format!("{label}: {seen} ({elapsed})"));
                } else if seen != last || last_line.elapsed() >= Duration::from_secs(300) {
                    eprintln!("{seen} ({elapsed})");
                    last_line = Instant::now();
                }
                last = seen;
            }
            Err(e) => {
                spinner.finish_and_clear();
                return Err(e.into());
            }
        }
        last_output = text;
        if started.elapsed() + Duration::from_secs(interval) > Duration::from_secs(timeout) {
            break;
        }
        std::thread::sleep(Duration::from_secs(interval));
    }
    spinner.finish_and_clear();
    // The step's reason without its `[i/n] ` progress prefix.
    let what = label.split_once("] ").map_or(label, |(_, why)| why);
    Err(Error::Other(format!(
        "gave up after {}: {what} (last seen: {last}); {}",
        backends::shell::duration(timeout),
        until.on_timeout(read, &last_output),
    )))
}

/// Runs a command and returns its standard output; a failure carries the framed stderr.
pub(crate) fn capture(cmd: &Command) -> Result<String, Error> {
    let out = duct::cmd(&cmd.program, &cmd.args)
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(|e| Error::CommandStart {
            command: cmd.to_string(),
            detail: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(Error::CommandFailed {
            command: cmd.to_shell(),
            host: None,
            status: match out.status.code() {
                Some(c) => format!("exit status {c}"),
                None => "killed by a signal".into(),
            },
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    String::from_utf8(out.stdout)
        .map_err(|_| Error::Other(format!("`{cmd}` printed text that is not UTF-8")))
}

/// What a bounded run returned.
pub(crate) struct Ran {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs a program (argv) with optional stdin, killing it after `limit`.
pub(crate) fn run_bounded(
    program: &str,
    args: &[String],
    stdin: Option<&[u8]>,
    limit: Duration,
) -> Result<Ran, Error> {
    let mut expr = duct::cmd(program, args)
        .unchecked()
        .stdout_capture()
        .stderr_capture();
    expr = match stdin {
        Some(b) => expr.stdin_bytes(b.to_vec()),
        None => expr.stdin_null(),
    };
    let handle = expr.start().map_err(|e| Error::CommandStart {
        command: program.to_string(),
        detail: e.to_string(),
    })?;
    let deadline = Instant::now() + limit;
    loop {
        match handle.try_wait() {
            Ok(Some(out)) => {
                return Ok(Ran {
                    code: out.status.code(),
                    stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                    stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                })
            }
            Ok(None) => {}
            Err(e) => return Err(Error::Other(format!("`{program}` failed to run: {e}"))),
        }
        if Instant::now() > deadline {
            let _ = handle.kill();
            return Err(Error::Other(format!(
                "`{program}` did not finish within {}s",
                limit.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

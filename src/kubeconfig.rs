//! `k8soidc kubeconfig`: add or update a user and context that log in through kubelogin.
//! The merge is pure (`backends::kubeconfig`); here: which file, backup, atomic write (0600),
//! the dry-run diff, and a warning when the kubelogin plugin is not installed.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use backends::kubeconfig::{commands_text, equivalent_commands, merge, Request};

use crate::cli::KubeconfigArgs;
use crate::error::Error;
use crate::exec::write_atomic;
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

pub(crate) fn run(args: KubeconfigArgs, env: &Env) -> Result<ExitCode, Error> {
    let s = crate::config::settings(&args.oidc, env)?;
    let path = absolute(&target(args.kubeconfig.as_deref())?)?;
    let shown = path.display().to_string();
    let cluster_ca = match &args.certificate_authority {
        None => None,
        Some(f) => Some(
            std::fs::canonicalize(f)
                .map_err(|e| {
                    Error::Input(format!(
                        "invalid --certificate-authority `{f}`: cannot read it ({e}); give the cluster's CA file"
                    ))
                })?
                .display()
                .to_string(),
        ),
    };
    let req = Request {
        cluster: args.cluster.clone(),
        server: args.server.clone(),
        cluster_ca,
    };
    let (before, existed) = match std::fs::read(&path) {
        Ok(b) => (
            String::from_utf8(b).map_err(|_| {
                Error::Input(format!(
                    "invalid kubeconfig `{shown}`: it is not UTF-8 text; give a kubeconfig file"
                ))
            })?,
            true,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), false),
        Err(e) => return Err(Error::io(&shown, e)),
    };
    let merged = merge(&before, &s, &req)?;
    for n in &merged.notes {
        eprintln!("note: {n}");
    }
    warn_plugin();
    let kc_flag = args.kubeconfig.as_ref().map(|_| shown.as_str());
    if args.dry_run {
        let mut out = std::io::stdout();
        let diff = backends::unified_diff(&shown, &before, &merged.text);
        let text = if diff.is_empty() {
            format!("# {shown} is already up to date\n")
        } else {
            diff
        };
        out.write_all(text.as_bytes())
            .map_err(|e| Error::io("stdout", e))?;
        let cmds = equivalent_commands(&s, &req, kc_flag, merged.cluster_added);
        write!(
            out,
            "# the same change with kubectl (k8soidc writes the YAML itself):\n{}",
            commands_text(&cmds)
        )
        .map_err(|e| Error::io("stdout", e))?;
        return Ok(ExitCode::SUCCESS);
    }
    if merged.text == before {
        eprintln!(
            "{shown} already has user and context `{}`; nothing changed",
            merged.name
        );
        return Ok(ExitCode::SUCCESS);
    }
    if existed {
        let backup = PathBuf::from(format!(
            "{shown}.k8soidc-backup-{}",
            utc_stamp(SystemTime::now())
        ));
        write_atomic(&backup, before.as_bytes(), 0o600)?;
        eprintln!("backup: {}", backup.display());
    }
    write_atomic(&path, merged.text.as_bytes(), 0o600)?;
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

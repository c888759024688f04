//! `k8soidc idp okta|keycloak|dex`: the identity provider's side from the same settings.
//! Rendering is pure (`backends::idp`); this file reads the settings, then prints the files or
//! writes them into `--out` atomically, refusing to overwrite a file that differs unless `--force`.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use backends::idp::{self, IdpRendering, IdpRequest, IdpSettings, Provider};

use crate::cli::IdpArgs;
use crate::error::Error;

/// What writing one file would do.
#[derive(Debug, PartialEq, Eq)]
enum Action {
    Create,
    Unchanged,
    Overwrite,
}

fn plan(dir: &Path, r: &IdpRendering, force: bool) -> Result<Vec<(PathBuf, Action)>, Error> {
    let mut out = Vec::new();
    let mut conflicts = Vec::new();
    for f in &r.files {
        let path = dir.join(&f.path);
        let action = match std::fs::read(&path) {
            Ok(bytes) if bytes == f.content.as_bytes() => Action::Unchanged,
            Ok(_) => {
                if !force {
                    conflicts.push(path.display().to_string());
                }
                Action::Overwrite
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Action::Create,
            Err(e) => return Err(Error::io(path.display().to_string(), e)),
        };
        out.push((path, action));
    }
    if !conflicts.is_empty() {
        return Err(Error::Input(format!(
            "refusing to overwrite `{}`: it differs from what k8soidc renders; compare it with `--dry-run` without `--out`, then pass --force or choose another --out",
            conflicts.join("`, `")
        )));
    }
    Ok(out)
}

fn notes(r: &IdpRendering) -> String {
    let mut out = String::new();
    for n in &r.notes {
        let _ = writeln!(out, "# {n}");
    }
    out
}

fn files(r: &IdpRendering, dir: Option<&Path>) -> String {
    let mut out = String::new();
    for f in &r.files {
        let path = dir.map_or_else(|| f.path.clone(), |d| d.join(&f.path).display().to_string());
        let _ = writeln!(out, "\n==> {path} <==");
        out.push_str(&f.content);
        if !f.content.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

pub(crate) fn run(args: IdpArgs) -> Result<ExitCode, Error> {
    let p = Provider::parse(&args.provider)?;
    let input = crate::config::merged_input(&args.oidc)?;
    crate::config::read_ca(&input)?;
    let st = IdpSettings::validate(p, &input)?;
    let req = IdpRequest::validate(&args.group, &args.user)?;
    let r = idp::render(p, &st, &req)?;
    let mut text = notes(&r);
    match &args.out {
        None => text.push_str(&files(&r, None)),
        Some(dir) => {
            let dir = Path::new(dir);
            let actions = plan(dir, &r, args.force)?;
            if args.dry_run {
                text.push_str("# dry run: nothing written\n");
                for (path, action) in &actions {
                    let verb = match action {
                        Action::Create => "would create",
                        Action::Unchanged => "unchanged",
                        Action::Overwrite => "would overwrite (--force)",
                    };
                    let _ = writeln!(text, "# {verb}: {}", path.display());
                }
                text.push_str(&files(&r, Some(dir)));
            } else {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::io(dir.display().to_string(), e))?;
                for ((path, action), f) in actions.iter().zip(&r.files) {
                    if *action != Action::Unchanged {
                        crate::exec::write_atomic(path, f.content.as_bytes(), 0o644)?;
                    }
                    let verb = match action {
                        Action::Create => "wrote",
                        Action::Unchanged => "unchanged",
                        Action::Overwrite => "overwrote",
                    };
                    let _ = writeln!(text, "{verb} {}", path.display());
                }
                if let Some(readme) = r.files.iter().find(|f| f.path == "README.md") {
                    let _ = writeln!(text, "next: read {}", dir.join(&readme.path).display());
                }
            }
        }
    }
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| Error::io("stdout", e))?;
    Ok(ExitCode::SUCCESS)
}

//! `k8soidc idp okta|keycloak|dex`: the identity provider's side from the same settings.
//! Rendering is pure (`backends::idp`); this file reads the settings, then prints the files or
//! writes them into `--out` atomically through a plan (a diff in the dry run for a file it
//! would overwrite), refusing to overwrite a file that differs unless `--force`.

use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use backends::idp::{self, IdpRendering, IdpRequest, IdpSettings, Provider};
use backends::{Plan, Step, Target};

use crate::cli::IdpArgs;
use crate::error::Error;
use crate::ui::Env;

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

/// The plan for `--out`: one atomic write (mode 0644) per file that is new or differs, with
/// what is there now as `before`, so the dry run shows a diff for a file it would overwrite.
fn write_steps(actions: &[(PathBuf, Action)], r: &IdpRendering) -> Result<Plan, Error> {
    let mut steps = Vec::new();
    for ((path, action), f) in actions.iter().zip(&r.files) {
        let shown = path.display().to_string();
        let before = match action {
            Action::Unchanged => continue,
            Action::Create => None,
            Action::Overwrite => Some(
                String::from_utf8(std::fs::read(path).map_err(|e| Error::io(&shown, e))?)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            ),
        };
        steps.push(Step::WriteFile {
            on: Target::Local,
            path: shown,
            before,
            after: f.content.clone(),
            mode: 0o644,
            why: format!("write {}", f.path),
        });
    }
    Ok(Plan {
        title: "identity provider files".into(),
        steps,
        notes: vec![],
    })
}

fn notes(r: &IdpRendering) -> String {
    let mut out = String::new();
    for n in &r.notes {
        let _ = writeln!(out, "# {n}");
    }
    out
}

fn files(r: &IdpRendering) -> String {
    let mut out = String::new();
    for f in &r.files {
        let _ = writeln!(out, "\n==> {} <==", f.path);
        out.push_str(&f.content);
        if !f.content.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

pub(crate) fn run(args: IdpArgs, env: &Env) -> Result<ExitCode, Error> {
    let p = Provider::parse(&args.provider)?;
    let input = crate::config::merged_input(&args.oidc)?;
    crate::config::read_ca(&input)?;
    let st = IdpSettings::validate(p, &input)?;
    let req = IdpRequest::validate(&args.group, &args.user)?;
    let r = idp::render(p, &st, &req)?;
    let mut text = notes(&r);
    match &args.out {
        None => text.push_str(&files(&r)),
        Some(dir) => {
            let dir = Path::new(dir);
            let actions = plan(dir, &r, args.force)?;
            let steps = write_steps(&actions, &r)?;
            if args.dry_run.on {
                text.push_str("# dry run: nothing written\n");
                for (path, action) in &actions {
                    let verb = match action {
                        Action::Create => "would create",
                        Action::Unchanged => "unchanged",
                        Action::Overwrite => "would overwrite (--force)",
                    };
                    let _ = writeln!(text, "# {verb}: {}", path.display());
                }
                for step in &steps.steps {
                    let _ = write!(text, "\n{step}");
                }
            } else {
                crate::exec::run_plan(&steps, env, false)?;
                for (path, action) in &actions {
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

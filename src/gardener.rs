//! `k8soidc patch --shoot NAME -n garden-PROJECT`: a Gardener Shoot through kubectl (the plan
//! from `backends::gardener::live_plan`, run by the local executor). `--dry-run` prints it;
//! `--dry-run=server` runs it with kubectl's `--dry-run=server`, so Gardener checks it and
//! nothing is stored.

use std::process::ExitCode;

use backends::gardener::ShootRef;
use backends::{OidcSettings, SettingsInput};

use crate::cli::PatchArgs;
use crate::error::Error;
use crate::ui::Env;

fn removal_settings() -> OidcSettings {
    let input = SettingsInput {
        issuer_url: Some("https://removed.invalid".into()),
        client_id: Some("removed".into()),
        ..SettingsInput::default()
    };
    OidcSettings::validate(&input, None).expect("fixed settings are valid")
}

pub(crate) fn run(args: &PatchArgs, env: &Env) -> Result<ExitCode, Error> {
    let name = args.shoot.clone().unwrap_or_default();
    let Some(namespace) = args.namespace.clone() else {
        return Err(Error::Input(format!(
            "missing --namespace: say which project namespace holds Shoot `{}`, e.g. `--namespace garden-myproject`",
            backends::escape(&name)
        )));
    };
    if !matches!(args.distro.as_str(), "auto" | "gardener") {
        return Err(Error::Input(format!(
            "invalid --distro `{}` with --shoot: --shoot patches a Gardener Shoot; drop --distro or give `--distro gardener`",
            backends::escape(&args.distro)
        )));
    }
    let settings = if args.remove {
        removal_settings()
    } else {
        crate::config::settings(&args.oidc, env)?
    };
    if !args.remove && !args.skip_check {
        crate::check::gate(&settings, args.dry_run.on)?;
    }
    let mut kubectl_args = Vec::new();
    if let Some(k) = &args.kubeconfig {
        kubectl_args.extend(["--kubeconfig".to_string(), k.clone()]);
    }
    if let Some(c) = &args.context {
        kubectl_args.extend(["--context".to_string(), c.clone()]);
    }
    let shoot = ShootRef {
        name,
        namespace,
        kubectl_args,
    };
    let server = args.dry_run.server;
    let plan = backends::gardener::live_plan(&settings, args.remove, &shoot, server)?;
    if args.dry_run.on && !server {
        crate::report::out(&plan.to_string())?;
        return Ok(ExitCode::SUCCESS);
    }
    crate::exec::check_programs(&[(
        "kubectl",
        "install kubectl: https://kubernetes.io/docs/tasks/tools/",
    )])?;
    eprint!("{plan}");
    if !server
        && !env.confirm(
            &format!("Patch Shoot `{}` in `{}`?", shoot.name, shoot.namespace),
            args.yes,
        )?
    {
        eprintln!("not confirmed: nothing done");
        return Ok(ExitCode::SUCCESS);
    }
    crate::exec::run_plan(&plan, env, args.verbose)?;
    eprintln!(
        "{}: Shoot `{}` in `{}`; Gardener reconciles it and rolls the API server (`kubectl get shoot {} -n {} -w` shows progress)",
        if server {
            "accepted by the garden cluster (--dry-run=server, nothing stored)"
        } else if args.remove {
            "removed OIDC"
        } else {
            "set OIDC"
        },
        shoot.name,
        shoot.namespace,
        shoot.name,
        shoot.namespace
    );
    Ok(ExitCode::SUCCESS)
}

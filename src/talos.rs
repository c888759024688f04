//! `k8soidc patch --talos NODE...`: a Talos control plane through `talosctl` (the plan from
//! `backends::talos::live_plan`, run by the local executor). `--dry-run` prints the plan.

use std::process::ExitCode;

use backends::{Distribution, OidcSettings, SettingsInput};

use crate::cli::PatchArgs;
use crate::error::Error;
use crate::ui::Env;

/// `--remove` takes no settings; the planner only needs valid ones to call.
fn removal_settings() -> OidcSettings {
    let input = SettingsInput {
        issuer_url: Some("https://removed.invalid".into()),
        client_id: Some("removed".into()),
        ..SettingsInput::default()
    };
    OidcSettings::validate(&input, None).expect("fixed settings are valid")
}

pub(crate) fn run(args: &PatchArgs, env: &Env) -> Result<ExitCode, Error> {
    if !matches!(args.distro.as_str(), "auto" | "talos") {
        return Err(Error::Input(format!(
            "invalid --distro `{}` with --talos: --talos patches Talos nodes; drop --distro or give `--distro talos`",
            backends::escape(&args.distro)
        )));
    }
    let timeout =
        crate::config::parse_duration("--timeout", args.timeout.as_deref().unwrap_or("5m"))?;
    let settings = if args.remove {
        removal_settings()
    } else {
        crate::config::settings(&args.oidc, env)?
    };
    if !args.remove && !args.skip_check {
        crate::check::gate(&settings, args.dry_run.on)?;
    }
    let staging = crate::render::staging_dir(Distribution::Talos, "patch")?;
    let plan = backends::talos::live_plan(&settings, args.remove, &args.talos, &staging, timeout)?;
    if args.dry_run.on {
        crate::report::out(&plan.to_string())?;
        return Ok(ExitCode::SUCCESS);
    }
    crate::exec::check_programs(&[(
        "talosctl",
        "install talosctl: https://docs.siderolabs.com/talos/latest/getting-started/talosctl",
    )])?;
    eprint!("{plan}");
    if !env.confirm(
        &format!("Patch Talos node(s) {}?", args.talos.join(", ")),
        args.yes,
    )? {
        eprintln!("not confirmed: nothing done");
        return Ok(ExitCode::SUCCESS);
    }
    crate::exec::run_plan(&plan, env, args.verbose)?;
    eprintln!(
        "{} OIDC on Talos node(s) {}; each was healthy before the next",
        if args.remove { "removed" } else { "set" },
        args.talos.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

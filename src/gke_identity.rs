//! `k8soidc patch --distro gke --identity-service --name CLUSTER --location LOC`: a GKE cluster
//! still on Identity Service for GKE (deprecated). The ClientConfig `default` in `kube-public`
//! is read with kubectl (`crate::exec::capture`), and `backends::gke::identity_service_plan`
//! plans the change: turn Identity Service on when the ClientConfig is absent, else the
//! ClientConfig patched by the `patch --file` patcher, replaced with kubectl. The deprecation
//! warning goes to stderr in every mode.

use std::process::ExitCode;

use backends::gke::{self, IdentityServiceRef};
use backends::Distribution;

use crate::cli::PatchArgs;
use crate::error::Error;
use crate::managed::{show_ask_run, GCLOUD_HINT};
use crate::ui::Env;

const KUBECTL_HINT: &str = "install kubectl: https://kubernetes.io/docs/tasks/tools/";

/// Lowercase letters, digits and `-`, starting with a letter, not ending with `-`, at most
/// `max` (GKE cluster names: 40, "Cluster names must start with a lowercase letter followed
/// by up to 39 lowercase letters, numbers, or hyphens", GKE API `Cluster.name`; locations such
/// as `us-central1` or `us-central1-a`).
fn gke_name(value: &str, max: usize) -> bool {
    value.len() <= max
        && value.starts_with(|c: char| c.is_ascii_lowercase())
        && !value.ends_with('-')
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// `--name` and `--location`, checked.
fn target(args: &PatchArgs) -> Result<IdentityServiceRef, Error> {
    if !args.ssh.hosts.is_empty() || args.local {
        return Err(Error::Input("invalid --ssh/--local with --distro gke: Google runs the control plane; drop --ssh/--local".into()));
    }
    let Some(cluster) = args.name.clone() else {
        return Err(Error::Input("missing --name: say which GKE cluster to patch, e.g. `--distro gke --identity-service --name dev --location us-central1`".into()));
    };
    if !gke_name(&cluster, 40) {
        return Err(Error::Input(format!(
            "invalid --name `{}`: GKE cluster names are lowercase letters, digits and `-`, start with a letter, at most 40; `gcloud container clusters list` shows them",
            backends::escape(&cluster)
        )));
    }
    let Some(location) = args.platform.location.clone() else {
        return Err(Error::Input(format!(
            "missing --location: give the zone or region of GKE cluster `{cluster}`, e.g. `--location us-central1` (`gcloud container clusters list` shows it)"
        )));
    };
    if !gke_name(&location, 63) {
        return Err(Error::Input(format!(
            "invalid --location `{}`: not a Google Cloud zone or region; use e.g. `us-central1` or `us-central1-a`",
            backends::escape(&location)
        )));
    }
    Ok(IdentityServiceRef {
        cluster,
        location,
        kubectl_args: crate::gardener::kubectl_args(
            args.kubeconfig.as_ref(),
            args.context.as_ref(),
        ),
    })
}

/// `k8soidc patch --distro gke --identity-service`.
pub(crate) fn run(args: PatchArgs, env: &Env) -> Result<ExitCode, Error> {
    let r = target(&args)?;
    eprintln!("warning: {}", gke::deprecation_warning());
    let settings = crate::patch::settings_unless_removing(&args, env)?;
    let staging = crate::render::staging_dir(Distribution::Gke, &r.cluster)?;
    // Refusable settings are refused before anything runs.
    gke::identity_service_plan(settings.as_ref(), &r, None, &staging)?;
    crate::patch::preflight(settings.as_ref(), &args)?;
    crate::exec::check_programs(&[("kubectl", KUBECTL_HINT), ("gcloud", GCLOUD_HINT)])?;
    let read = crate::exec::capture(&r.get_client_config())?;
    let current = (!read.trim().is_empty()).then_some(read.as_str());
    let Some(plan) = gke::identity_service_plan(settings.as_ref(), &r, current, &staging)? else {
        crate::report::out(&format!(
            "GKE cluster `{}` {}; nothing to do\n",
            r.cluster,
            match (args.remove, current.is_some()) {
                (true, false) => "has no Identity Service ClientConfig",
                (true, true) => "has no `oidc` method in its ClientConfig",
                _ => "already has these settings in its ClientConfig",
            }
        ))?;
        return Ok(ExitCode::SUCCESS);
    };
    let verb = if args.remove { "Remove" } else { "Set" };
    show_ask_run(
        &plan,
        &args,
        env,
        &format!(
            "{verb} OIDC on GKE cluster `{}` through Identity Service?",
            r.cluster
        ),
        &format!(
            "GKE cluster `{}`: the `oidc` method of ClientConfig `default` {}",
            r.cluster,
            if args.remove { "removed" } else { "set" }
        ),
    )
}

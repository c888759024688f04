//! `k8soidc patch --vcluster NAME [--namespace NS]`: a running vCluster. Its values are read
//! with `helm get values` and the ConfigMap with kubectl (`crate::exec::capture`), patched
//! and planned by `backends::vcluster::live`, shown (the values as a diff) and run by the local
//! executor: the ConfigMap with `kubectl apply`, the whole values with `vcluster create NAME
//! --upgrade -f`.

use std::process::ExitCode;

use backends::vcluster::live::{self, LiveState, VclusterRef};
use backends::Distribution;

use crate::cli::PatchArgs;
use crate::error::Error;
use crate::ui::Env;

const HELM_HINT: &str = "install Helm (the vCluster CLI deploys vClusters with it): https://helm.sh/docs/intro/install/";
const VCLUSTER_HINT: &str =
    "install the vCluster CLI: https://www.vcluster.com/docs/vcluster/#deploy-vcluster";
const KUBECTL_HINT: &str = "install kubectl: https://kubernetes.io/docs/tasks/tools/";

/// A DNS-1123 label of at most `max` characters (Kubernetes namespaces: 63; Helm release
/// names, which vCluster names are: 53, Helm `pkg/chartutil` `ValidateReleaseName`).
fn dns_label(value: &str, max: usize) -> bool {
    !value.is_empty()
        && value.len() <= max
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-')
}

/// `--vcluster` and `--namespace`, checked.
fn target(args: &PatchArgs) -> Result<VclusterRef, Error> {
    let name = args.vcluster.clone().unwrap_or_default();
    if !dns_label(&name, 53) {
        return Err(Error::Input(format!(
            "invalid --vcluster `{}`: a vCluster name is a Helm release name: lowercase letters, digits and `-`, starting and ending with a letter or digit, at most 53; `vcluster list` shows the names",
            backends::escape(&name)
        )));
    }
    let namespace = args
        .namespace
        .clone()
        .unwrap_or_else(|| backends::vcluster::default_namespace(&name));
    if !dns_label(&namespace, 63) {
        return Err(Error::Input(format!(
            "invalid --namespace `{}`: a namespace is lowercase letters, digits and `-`, starting and ending with a letter or digit, at most 63; give the vCluster's host namespace (default `vcluster-{name}`)",
            backends::escape(&namespace)
        )));
    }
    if !matches!(args.distro.as_str(), "auto" | "vcluster") {
        return Err(Error::Input(format!(
            "invalid --distro `{}` with --vcluster: --vcluster patches a vCluster; drop --distro",
            backends::escape(&args.distro)
        )));
    }
    Ok(VclusterRef {
        name,
        namespace,
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
    })
}

/// `helm get values`, with Helm's "release: not found" said as one line.
fn read_values(v: &VclusterRef) -> Result<String, Error> {
    match crate::exec::capture(&v.get_values()) {
        Ok(out) => Ok(live::parse_values(&out)?),
        Err(Error::CommandFailed { stderr, .. }) if stderr.contains("release: not found") => {
            Err(Error::Other(format!(
                "no vCluster `{}` in host namespace `{}` (`helm get values` says: release: not found); check the name and --namespace (`vcluster list` shows both)",
                v.name, v.namespace
            )))
        }
        Err(e) => Err(e),
    }
}

/// `k8soidc patch --vcluster NAME`.
pub(crate) fn run(args: &PatchArgs, env: &Env) -> Result<ExitCode, Error> {
    let v = target(args)?;
    let settings = crate::patch::settings_unless_removing(args, env)?;
    crate::patch::preflight(settings.as_ref(), args)?;
    crate::exec::check_programs(&[("helm", HELM_HINT), ("kubectl", KUBECTL_HINT)])?;
    let current = LiveState {
        values: read_values(&v)?,
        configmap: live::parse_configmap(&crate::exec::capture(&v.get_configmap())?)?,
    };
    let staging = crate::render::staging_dir(Distribution::Vcluster, &v.name)?;
    let Some(plan) = live::live_plan(settings.as_ref(), &v, &current, &staging)? else {
        crate::report::out(&format!(
            "vCluster `{}` in `{}` {}; nothing to do\n",
            v.name,
            v.namespace,
            if args.remove {
                "has no OIDC settings"
            } else {
                "already runs with these OIDC settings"
            }
        ))?;
        return Ok(ExitCode::SUCCESS);
    };
    if !args.dry_run.on {
        crate::exec::check_programs(&[("vcluster", VCLUSTER_HINT)])?;
    }
    let verb = if args.remove { "Remove" } else { "Set" };
    crate::managed::show_ask_run(
        &plan,
        args,
        env,
        &format!("{verb} OIDC on vCluster `{}` in `{}`?", v.name, v.namespace),
        &format!(
            "vCluster `{}` in `{}`: OIDC {}; its control plane restarts with the new values (`vcluster list` shows its status)",
            v.name,
            v.namespace,
            if args.remove { "removed" } else { "set" }
        ),
    )
}

//! `k8soidc create`: a new cluster with OIDC configured, through the distribution's own tool.

use std::io::Write;
use std::process::ExitCode;

use backends::{backend, ClusterRequest, Distribution};

use crate::cli::CreateArgs;
use crate::error::Error;
use crate::render::{check_name, staging_dir};
use crate::ui::Env;

const LOCAL_CREATE: [Distribution; 8] = [
    Distribution::K3d,
    Distribution::Kind,
    Distribution::Kops,
    Distribution::Charmed,
    Distribution::Eks,
    Distribution::K0s,
    Distribution::Talos,
    Distribution::Vcluster,
];

pub(crate) fn run(args: CreateArgs, env: &Env) -> Result<ExitCode, Error> {
    let d = Distribution::parse(&args.distro)?;
    if d == Distribution::Gardener {
        return crate::gardener::create(args, env);
    }
    for (given, flag) in [
        (args.shoot_file.is_some(), "--shoot-file"),
        (args.namespace.is_some(), "--namespace"),
        (args.kubeconfig.is_some(), "--kubeconfig"),
        (args.context.is_some(), "--context"),
    ] {
        if given {
            return Err(Error::Input(format!(
                "invalid `{flag}` with --distro {d}: it only applies with --distro gardener; remove it"
            )));
        }
    }
    if !args.ssh.hosts.is_empty() {
        return crate::create_ssh::run(d, args, env);
    }
    let managed = match d {
        Distribution::Gke => Some("Workforce Identity Federation needs nothing at cluster creation: create the cluster with `gcloud container clusters create`, then set up the pool with `k8soidc patch --distro gke --organization ORG`"),
        Distribution::Aks => Some("create the cluster with `az aks create` (Kubernetes 1.30 or later), then `k8soidc patch --distro aks --aks-preview --name NAME --resource-group RG`"),
        _ => None,
    };
    if let Some(how) = managed {
        return Err(Error::Plan(backends::PlanError::Unsupported {
            distribution: d,
            message: format!("k8soidc does not create {d} clusters; {how}"),
        }));
    }
    if !LOCAL_CREATE.contains(&d) {
        let over_ssh = backends::node::node_backend(d).is_ok_and(|b| b.can_create());
        let fix = match over_ssh {
            true => format!("for {d}, add `--ssh HOST`"),
            false => format!("for {d}, `k8soidc render --distro {d}` shows the settings"),
        };
        return Err(Error::Input(format!(
            "invalid --distro `{d}` for create without --ssh: without --ssh k8soidc creates k3d, kind, kops, charmed, eks, k0s (k0sctl), talos (talosctl gen config) and vcluster clusters and gardener Shoots (--shoot-file), with --ssh HOST {} control planes; {fix}",
            backends::node::create_supported()
        )));
    }
    check_name(d, &args.name)?;
    let s = crate::config::settings(&args.oidc, env)?;
    let req = ClusterRequest {
        name: args.name.clone(),
        staging_dir: staging_dir(d, &args.name)?,
        extra_args: args.extra.clone(),
        platform: crate::managed::platform(&args.platform, None)?,
    };
    let b = backend(d);
    let plan = b.create_plan(&s, &req)?;
    if !args.skip_check {
        crate::check::gate(&s, args.dry_run.on)?;
    }
    if args.dry_run.on {
        std::io::stdout()
            .write_all(plan.to_string().as_bytes())
            .map_err(|e| Error::io("stdout", e))?;
        return Ok(ExitCode::SUCCESS);
    }
    crate::exec::check_programs(b.required_programs())?;
    eprint!("{plan}");
    if !env.confirm(&format!("Create {d} cluster `{}`?", args.name), args.yes)? {
        eprintln!("not confirmed: nothing done");
        return Ok(ExitCode::SUCCESS);
    }
    crate::exec::run_plan(&plan, env, args.verbose)?;
    eprintln!(
        "created {d} cluster `{}` with OIDC issuer {}",
        args.name, s.issuer_url
    );
    Ok(ExitCode::SUCCESS)
}

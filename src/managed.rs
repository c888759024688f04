//! Managed services: the provider runs the API server and its API takes the settings.
//! `patch --distro eks --name CLUSTER` reads the cluster's identity provider configs with the
//! AWS CLI, asks `backends::eks::patch_plan` what to do, shows that plan (the dry run) and runs
//! it: associate (or disassociate), then poll until EKS reports it ACTIVE (or gone).

use std::process::ExitCode;

use backends::{eks, ClusterRequest, Platform};

use crate::cli::{PatchArgs, PlatformArgs};
use crate::error::Error;
use crate::ui::Env;

const AWS_HINT: &str =
    "install the AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html";

/// `--region` and `--idp-config-name`, checked. A region is `xx-name-N` ("us-east-1",
/// "eu-west-1", "us-gov-west-1"); the config name goes into the AWS CLI's shorthand
/// `type=oidc,name=NAME`, where `,` and `=` would split it.
pub(crate) fn platform(args: &PlatformArgs, poll_interval: Option<u64>) -> Result<Platform, Error> {
    if let Some(r) = &args.region {
        let parts: Vec<&str> = r.split('-').collect();
        let ok = parts.len() >= 3
            && parts[..parts.len() - 1]
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
            && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
            && !parts[parts.len() - 1].is_empty();
        if !ok {
            return Err(Error::Input(format!(
                "invalid --region `{}`: not an AWS region; use e.g. `eu-west-1` (`aws ec2 describe-regions` lists them)",
                backends::escape(r)
            )));
        }
    }
    if let Some(n) = &args.idp_config_name {
        let ok = !n.is_empty()
            && n.len() <= 100
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !ok {
            return Err(Error::Input(format!(
                "invalid --idp-config-name `{}`: use letters, digits, `-`, `_` and `.` (at most 100), e.g. `k8soidc`",
                backends::escape(n)
            )));
        }
    }
    if let Some(pool) = &args.workforce_pool {
        backends::gke::check_pool(pool)?;
    }
    if let Some(org) = &args.organization {
        if org.is_empty() || !org.chars().all(|c| c.is_ascii_digit()) {
            return Err(Error::Input(format!(
                "invalid --organization `{}`: a Google Cloud organization id is a number; `gcloud organizations list` shows it",
                backends::escape(org)
            )));
        }
    }
    Ok(Platform {
        region: args.region.clone(),
        idp_config_name: args.idp_config_name.clone(),
        poll_interval,
        workforce_pool: args.workforce_pool.clone(),
        organization: args.organization.clone(),
        identity_service: args.identity_service,
        resource_group: args.resource_group.clone(),
        aks_preview: args.aks_preview,
    })
}

/// EKS cluster names: "The name can contain only alphanumeric characters (case-sensitive),
/// hyphens, and underscores. It must start with an alphanumeric character and can't be longer
/// than 100 characters" (EKS API Reference, CreateCluster `name`).
pub(crate) fn check_eks_name(name: &str) -> Result<(), Error> {
    let ok = name.len() <= 100
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::Input(format!(
            "invalid --name `{}`: EKS cluster names are letters, digits, `-` and `_`, start with a letter or digit, at most 100; e.g. `--name dev`",
            backends::escape(name)
        )))
    }
}

/// `k8soidc patch --distro eks --name CLUSTER`.
pub(crate) fn run_eks(args: PatchArgs, env: &Env) -> Result<ExitCode, Error> {
    if !args.ssh.hosts.is_empty() || args.local {
        return Err(Error::Input(
            "invalid --ssh/--local with --distro eks: AWS runs the control plane; k8soidc changes it through the EKS API; drop --ssh/--local".into(),
        ));
    }
    let Some(name) = args.name.clone() else {
        return Err(Error::Input(
            "missing --name: say which EKS cluster to patch, e.g. `--distro eks --name dev`".into(),
        ));
    };
    check_eks_name(&name)?;
    let default_timeout = backends::shell::duration(eks::DEFAULT_TIMEOUT);
    let timeout = crate::config::parse_duration(
        "--timeout",
        args.timeout.as_deref().unwrap_or(&default_timeout),
    )?;
    let req = ClusterRequest {
        name: name.clone(),
        platform: platform(&args.platform, args.poll_interval)?,
        ..ClusterRequest::default()
    };
    let settings = if args.remove {
        None
    } else {
        let s = crate::config::settings(&args.oidc, env)?;
        eks::check(&s)?;
        Some(s)
    };
    crate::patch::preflight(settings.as_ref(), &args)?;
    crate::exec::check_programs(&[("aws", AWS_HINT)])?;
    let names = eks::parse_list(&crate::exec::capture(&eks::list(&req))?)?;
    let mut current = Vec::new();
    for n in &names {
        current.push(eks::parse_describe(&crate::exec::capture(
            &eks::describe(&req, n),
        )?)?);
    }
    let Some(plan) = eks::patch_plan(settings.as_ref(), &req, &current, timeout)? else {
        crate::report::out(&format!(
            "EKS cluster `{name}` already has {}; nothing to do\n",
            if args.remove {
                format!("no identity provider config `{}`", eks::config_name(&req))
            } else {
                format!(
                    "identity provider config `{}` ACTIVE with these settings",
                    eks::config_name(&req)
                )
            }
        ))?;
        return Ok(ExitCode::SUCCESS);
    };
    show_ask_run(
        &plan,
        &args,
        env,
        &format!(
            "{} OIDC on EKS cluster `{name}` (this takes tens of minutes)?",
            if args.remove { "Remove" } else { "Set" }
        ),
        &format!(
            "EKS cluster `{name}`: {}",
            if args.remove {
                "OIDC identity provider config removed"
            } else {
                "OIDC identity provider config ACTIVE"
            }
        ),
    )
}

pub(crate) const GCLOUD_HINT: &str =
    "install the Google Cloud CLI: https://cloud.google.com/sdk/docs/install";

/// `k8soidc patch --distro gke --organization ORG [--workforce-pool POOL]`: the workforce
/// pool and its OIDC provider, created or updated with gcloud (organization-wide: no cluster
/// is touched).
pub(crate) fn run_gke(args: PatchArgs, env: &Env) -> Result<ExitCode, Error> {
    if args.platform.identity_service {
        return crate::gke_identity::run(args, env);
    }
    if !args.ssh.hosts.is_empty() || args.local || args.name.is_some() {
        return Err(Error::Input(
            "invalid --ssh/--local/--name with --distro gke: Workforce Identity Federation is set up for the organization, not on a cluster; drop them (or give --identity-service for a cluster still on Identity Service for GKE)".into(),
        ));
    }
    let p = platform(&args.platform, None)?;
    let Some(org) = p.organization.clone() else {
        return Err(Error::Input(
            "missing --organization: the workforce pool belongs to a Google Cloud organization; give its id (`gcloud organizations list`)".into(),
        ));
    };
    let pool = p
        .workforce_pool
        .clone()
        .unwrap_or_else(|| backends::gke::DEFAULT_POOL.to_string());
    let settings = if args.remove {
        None
    } else {
        let s = crate::config::settings_on(&args.oidc, env, Some(backends::Distribution::Gke))?;
        backends::gke::workforce_commands(&s, &pool, &org)?;
        Some(s)
    };
    if let (Some(s), false) = (&settings, args.skip_check) {
        crate::check::gate(s, args.dry_run.on)?;
    }
    crate::exec::check_programs(&[("gcloud", GCLOUD_HINT)])?;
    let pool_exists = backends::gke::parse_pools(
        &crate::exec::capture(&backends::gke::list_pools(&org))?,
        &pool,
    )?;
    let current = if pool_exists {
        backends::gke::parse_providers(&crate::exec::capture(&backends::gke::list_providers(
            &pool,
        ))?)?
    } else {
        None
    };
    let Some(plan) = backends::gke::patch_plan(
        settings.as_ref(),
        &pool,
        &org,
        pool_exists,
        current.as_ref(),
    )?
    else {
        crate::report::out(&format!(
            "workforce pool `{pool}` {}; nothing to do\n",
            if args.remove {
                format!("has no provider `{}`", backends::gke::PROVIDER_ID)
            } else {
                format!(
                    "already has provider `{}` with these settings",
                    backends::gke::PROVIDER_ID
                )
            }
        ))?;
        return Ok(ExitCode::SUCCESS);
    };
    show_ask_run(
        &plan,
        &args,
        env,
        &format!("Change workforce pool `{pool}` of organization {org}?"),
        &format!(
            "workforce pool `{pool}`: provider `{}` {}",
            backends::gke::PROVIDER_ID,
            if args.remove { "deleted" } else { "set" }
        ),
    )
}

const AZ_HINT: &str = "install the Azure CLI (https://learn.microsoft.com/cli/azure/install-azure-cli), then `az extension add --name aks-preview`";

/// `k8soidc patch --distro aks --aks-preview --name CLUSTER --resource-group RG`: the JWT
/// authenticator, added, updated or (`--remove`) deleted with `az aks jwtauthenticator`.
pub(crate) fn run_aks(args: PatchArgs, env: &Env) -> Result<ExitCode, Error> {
    if !args.ssh.hosts.is_empty() || args.local {
        return Err(Error::Input(
            "invalid --ssh/--local with --distro aks: Azure runs the control plane; k8soidc changes it through the AKS API; drop --ssh/--local".into(),
        ));
    }
    let Some(name) = args.name.clone() else {
        return Err(Error::Input(
            "missing --name: say which AKS cluster to patch, e.g. `--distro aks --name dev`".into(),
        ));
    };
    let req = ClusterRequest {
        staging_dir: crate::render::staging_dir(backends::Distribution::Aks, &name)?,
        name,
        platform: platform(&args.platform, None)?,
        ..ClusterRequest::default()
    };
    let settings = crate::patch::settings_unless_removing(&args, env)?;
    // Everything refusable is refused before any program runs: plan against "none yet".
    backends::aks::patch_plan(settings.as_ref(), &req, None)?;
    let list = backends::aks::list(&req)?;
    crate::patch::preflight(settings.as_ref(), &args)?;
    crate::exec::check_programs(&[("az", AZ_HINT)])?;
    let current = backends::aks::parse_list(&crate::exec::capture(&list)?)?;
    let Some(plan) = backends::aks::patch_plan(settings.as_ref(), &req, current.as_ref())? else {
        crate::report::out(&format!(
            "AKS cluster `{}` {}; nothing to do\n",
            req.name,
            if args.remove {
                format!(
                    "has no JWT authenticator `{}`",
                    backends::aks::AUTHENTICATOR
                )
            } else {
                format!(
                    "already has JWT authenticator `{}` with these settings",
                    backends::aks::AUTHENTICATOR
                )
            }
        ))?;
        return Ok(ExitCode::SUCCESS);
    };
    show_ask_run(
        &plan,
        &args,
        env,
        &format!(
            "Change the JWT authenticator of AKS cluster `{}`?",
            req.name
        ),
        &format!(
            "AKS cluster `{}`: JWT authenticator `{}` {}",
            req.name,
            backends::aks::AUTHENTICATOR,
            if args.remove { "deleted" } else { "set" }
        ),
    )
}

/// The end of every managed-service patch: the dry run prints the plan; a real run shows it,
/// asks (`--yes` answers), runs it with the local executor and says what was done.
pub(crate) fn show_ask_run(
    plan: &backends::Plan,
    args: &PatchArgs,
    env: &Env,
    question: &str,
    done: &str,
) -> Result<ExitCode, Error> {
    if args.dry_run.on {
        crate::report::out(&plan.to_string())?;
        return Ok(ExitCode::SUCCESS);
    }
    eprint!("{plan}");
    if !env.confirm(question, args.yes)? {
        eprintln!("not confirmed: nothing done");
        return Ok(ExitCode::SUCCESS);
    }
    crate::exec::run_plan(plan, env, args.verbose)?;
    eprintln!("{done}");
    Ok(ExitCode::SUCCESS)
}

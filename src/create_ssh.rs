//! `k8soidc create --distro kubeadm|microk8s|k3s|rke2 --ssh HOST`: per host, the first round trip
//! reads the node (and takes its lock); a host that already runs a control plane is refused;
//! then the pure planner (`backends::create_node`) makes the plan — files written through the
//! same back-up/stage/rename step as `patch`, then the installer, then (MicroK8s) the script
//! that patches the args file the snap wrote, then the health wait — which the dry run prints
//! and the executor runs. The k3s and RKE2 installer commands come through the test seam
//! ([`crate::testing`], `K8SOIDC_K3S_INSTALLER`, `K8SOIDC_RKE2_INSTALLER`: the tests;
//! air-gapped installs).

use std::process::ExitCode;

use backends::{Distribution, Step};

use crate::error::Error;
use crate::exec::runtime;
use crate::exec::ssh::hosts;
use crate::exec::ssh::{parse_files, Remote};
use crate::report::{out, Say};
use crate::ui::Env;

/// `k8soidc create --ssh`.
pub(crate) fn run(
    d: Distribution,
    args: crate::cli::CreateArgs,
    env: &Env,
) -> Result<ExitCode, Error> {
    let (specs, opts) = hosts(&args.ssh)?;
    let s = crate::config::settings(&args.oidc, env)?;
    // Refused before anything runs when the distribution has no create over SSH.
    let installer = crate::testing::TestSeam::get().installer(d).to_string();
    backends::create_node::create_host(d, "-", &s, &installer, &Default::default())?;
    if !args.skip_check {
        crate::check::gate(&s, args.dry_run.on)?;
    }
    let rt = runtime()?;
    for spec in &specs {
        rt.block_on(async {
            let mut remote = Remote::connect_only(spec, &opts).await?;
            let r = async {
                let begin = backends::patch::begin(None, !args.dry_run.on);
                let begun = remote.begin(&begin, !args.dry_run.on).await?;
                let files = parse_files(&begun.records)?;
                // A k3s or RKE2 config.yaml alone is the usual pre-install configuration, not
                // a cluster; a running k3s or rke2-server unit is one.
                let running = |unit: &str| {
                    matches!(files.get(&backends::k3s::node::unit_key(unit)), Some(Some(_)))
                };
                match backends::patch::detect(&spec.label, &files) {
                    Ok(Distribution::K3s) if !running("k3s") => {}
                    Ok(Distribution::Rke2) if !running("rke2-server") => {}
                    Ok(found) => {
                        return Err(Error::Other(format!(
                            "`{}` already runs a {found} control plane: refused, nothing changed; use `k8soidc patch --ssh {}`",
                            spec.label, spec.label
                        )))
                    }
                    Err(_) => {}
                }
                let mut plan = backends::create_node::create_host(d, &spec.label, &s, &installer, &files)?;
                for step in &mut plan.steps {
                    if let Step::Node { sudo, .. } = step {
                        *sudo = remote.sudo();
                    }
                }
                let mut shown = String::new();
                if args.verbose {
                    shown = backends::node::read_preface(&spec.label, &backends::patch::begin(None, true));
                }
                shown.push_str(&plan.display(args.verbose).to_string());
                if args.dry_run.on {
                    out(&format!("{shown}\n"))?;
                    return Ok(());
                }
                eprint!("{shown}");
                if !env.confirm(&format!("Create {d} on `{}`?", spec.label), args.yes)? {
                    eprintln!("[{}] not confirmed: nothing done", spec.label);
                    return Ok(());
                }
                let say = Say::host(&spec.label);
                crate::host::run_steps(&remote, &plan, &[], &say, "with OIDC").await.map_err(|e| {
                    Error::Other(format!(
                        "`{}`: creating {d} failed: {e}; the files written are backed up (`k8soidc backups --ssh {}`)",
                        spec.label, spec.label
                    ))
                })?;
                eprintln!("[{}] created {d} with OIDC issuer {}", spec.label, s.issuer_url);
                Ok(())
            }
            .await;
            remote.close().await;
            r
        })?;
    }
    Ok(ExitCode::SUCCESS)
}

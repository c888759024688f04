//! `k8soidc rbac`: a ClusterRoleBinding or RoleBinding whose subjects carry the prefixes
//! kube-apiserver applies, printed or applied with `kubectl apply -f -`.

use std::io::Write;
use std::process::ExitCode;

use backends::rbac::{binding, BindingRequest};
use backends::{Command, OidcSettings, Plan, PlanError, Step, Target};

use crate::cli::{Output, RbacArgs};
use crate::error::Error;
use crate::ui::Env;

/// `kubectl [--kubeconfig F] [--context C] <args…>`.
pub(crate) fn kubectl(kubeconfig: Option<&str>, context: Option<&str>, args: &[&str]) -> Command {
    let mut argv: Vec<String> = Vec::new();
    if let Some(k) = kubeconfig {
        argv.push(format!("--kubeconfig={k}"));
    }
    if let Some(c) = context {
        argv.push(format!("--context={c}"));
    }
    argv.extend(args.iter().map(|a| a.to_string()));
    Command::new("kubectl", argv)
}

/// Stand-ins for the settings a binding does not use: the client id never appears in it, the
/// issuer only in kube-apiserver's implicit username prefix `<issuer>#`.
const UNUSED_CLIENT_ID: &str = "k8soidc-rbac-unused";
const UNUSED_ISSUER: &str = "https://k8soidc-rbac-unused.invalid";

/// The settings, requiring `--issuer-url` only when a `--user` subject gets the implicit
/// `<issuer>#` prefix and `--client-id` never.
fn settings(args: &RbacArgs) -> Result<OidcSettings, Error> {
    let mut input = crate::config::merged_input(&args.oidc)?;
    // GKE's subjects are principal:// identifiers: no IdP name becomes a `system:` one.
    input.reserved_names_policy_off = args.workforce_pool.is_some();
    if input.jwt.is_some() || input.anonymous.is_some() {
        let ca = crate::config::read_ca(&input)?;
        return crate::config::validate(&mut input, ca);
    }
    input
        .client_id
        .get_or_insert_with(|| UNUSED_CLIENT_ID.into());
    let implicit_prefix = args.workforce_pool.is_none()
        && !args.user.is_empty()
        && input.username_prefix.is_none()
        && input.username_claim.as_deref().unwrap_or("sub") != "email";
    if input.issuer_url.is_none() {
        if implicit_prefix {
            return Err(Error::Plan(PlanError::MissingSetting {
                field: "--issuer-url",
                fix: "--user subjects get kube-apiserver's implicit username prefix `<issuer>#` (no --username-prefix and the claim is not `email`); give the issuer, or `--username-prefix` (`-` for none)".into(),
            }));
        }
        input.issuer_url = Some(UNUSED_ISSUER.into());
    }
    let ca = crate::config::read_ca(&input)?;
    Ok(OidcSettings::validate(&input, ca)?)
}

pub(crate) fn run(args: RbacArgs, env: &Env) -> Result<ExitCode, Error> {
    let s = settings(&args)?;
    let req = BindingRequest {
        name: args.name.clone(),
        groups: args.group.clone(),
        users: args.user.clone(),
        cluster_role: args.clusterrole.clone(),
        role: args.role.clone(),
        namespace: args.namespace.clone(),
        workforce_pool: args.workforce_pool.clone(),
    };
    let generated = binding(&s, &req)?;
    let text = match args.output {
        // The object's text form is its YAML, as `kubectl create --dry-run=client -o yaml`.
        Output::Text | Output::Yaml => generated.to_yaml(),
        Output::Json => {
            for n in &generated.notes {
                eprintln!("note: {n}");
            }
            serde_json::to_string_pretty(&generated.binding).expect("plain struct serialises")
                + "\n"
        }
    };
    let mut stdout = std::io::stdout();
    if !args.apply {
        // As `kubectl create … --dry-run=client -o yaml`: the object, nothing run.
        stdout
            .write_all(text.as_bytes())
            .map_err(|e| Error::io("stdout", e))?;
        return Ok(ExitCode::SUCCESS);
    }
    let command = kubectl(
        args.kubeconfig.as_deref(),
        args.context.as_deref(),
        &["apply", "-f", "-"],
    );
    let plan = Plan {
        title: format!("apply {}", generated.binding.id()),
        steps: vec![Step::Run {
            on: Target::Local,
            command,
            sudo: false,
            stdin: Some(text.clone()),
            why: format!("apply {} with kubectl", generated.binding.id()),
        }],
        notes: vec![],
    };
    if args.dry_run.on {
        stdout
            .write_all(text.as_bytes())
            .map_err(|e| Error::io("stdout", e))?;
        let Step::Run { command, .. } = &plan.steps[0] else {
            unreachable!("built above")
        };
        writeln!(
            stdout,
            "# would run (the YAML above on stdin):\n# + {command}"
        )
        .map_err(|e| Error::io("stdout", e))?;
        return Ok(ExitCode::SUCCESS);
    }
    crate::exec::check_programs(&[(
        "kubectl",
        "install it: https://kubernetes.io/docs/tasks/tools/",
    )])?;
    if !matches!(args.output, Output::Json) {
        for n in &generated.notes {
            eprintln!("note: {n}");
        }
    }
    crate::exec::run_plan(&plan, env, true)?;
    eprintln!("applied {}", generated.binding.id());
    Ok(ExitCode::SUCCESS)
}

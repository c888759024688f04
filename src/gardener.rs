//! `k8soidc patch --shoot NAME -n garden-PROJECT`: a Gardener Shoot through kubectl (the plan
//! from `backends::gardener::live_plan`, run by the local executor). `--dry-run` prints it;
//! `--dry-run=server` runs it with kubectl's `--dry-run=server`, so Gardener checks it and
//! nothing is stored.
//!
//! `k8soidc create --distro gardener --shoot-file shoot.yaml`: the user's Shoot manifest
//! (checked here, with the file's line numbers in refusals) with the OIDC settings added by
//! `backends::gardener::shoot_with_oidc`, created after its ConfigMap by the plan of
//! `backends::gardener::create_plan`.

use std::process::ExitCode;

use backends::gardener::ShootRef;
use backends::{OidcSettings, SettingsInput};

use crate::cli::{CreateArgs, PatchArgs};
use crate::error::Error;
use crate::ui::Env;
use crate::yamlpos::{line_of, Seg};

const KUBECTL_HINT: &str = "install kubectl: https://kubernetes.io/docs/tasks/tools/";

/// `--kubeconfig` and `--context` for kubectl.
pub(crate) fn kubectl_args(kubeconfig: Option<&String>, context: Option<&String>) -> Vec<String> {
    let mut v = Vec::new();
    if let Some(k) = kubeconfig {
        v.extend(["--kubeconfig".to_string(), k.clone()]);
    }
    if let Some(c) = context {
        v.extend(["--context".to_string(), c.clone()]);
    }
    v
}

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
    let shoot = ShootRef {
        name,
        namespace,
        kubectl_args: kubectl_args(args.kubeconfig.as_ref(), args.context.as_ref()),
    };
    let server = args.dry_run.server;
    let plan = backends::gardener::live_plan(&settings, args.remove, &shoot, server)?;
    if args.dry_run.on && !server {
        crate::report::out(&plan.to_string())?;
        return Ok(ExitCode::SUCCESS);
    }
    crate::exec::check_programs(&[("kubectl", KUBECTL_HINT)])?;
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

/// A Shoot manifest read from `--shoot-file`, checked.
struct ShootFile {
    doc: serde_yaml_ng::Value,
    name: String,
    namespace: String,
    version: String,
}

/// `invalid --shoot-file `F` line N: ...` (the line of the node at `path` when it is there).
fn refuse_at(file: &str, text: &str, path: &[Seg<'_>], problem: &str) -> Error {
    let at = line_of(text, path)
        .map(|l| format!(" line {l}"))
        .unwrap_or_default();
    Error::Input(format!(
        "invalid --shoot-file `{}`{at}: {problem}",
        backends::escape(file)
    ))
}

/// The Shoot's namespace: `metadata.namespace` or `--namespace`, the same when both are given.
fn namespace_of(
    file: &str,
    text: &str,
    name: &str,
    in_file: Option<String>,
    given: Option<&str>,
) -> Result<String, Error> {
    Ok(match (in_file, given) {
        (Some(f), Some(n)) if f != n => {
            return Err(refuse_at(file, text, &[Seg::Key("metadata"), Seg::Key("namespace")], &format!(
                "`metadata.namespace` is `{}` but --namespace is `{}`; give one of them, or the same in both",
                backends::escape(&f),
                backends::escape(n)
            )))
        }
        (Some(f), _) => f,
        (None, Some(n)) => n.to_string(),
        (None, None) => return Err(Error::Input(format!(
            "missing --namespace: Shoot `{}` in `{}` has no metadata.namespace; give its project namespace, e.g. `--namespace garden-myproject`",
            backends::escape(name),
            backends::escape(file)
        ))),
    })
}

/// Reads `--shoot-file`: one core.gardener.cloud/v1beta1 Shoot with a name, a namespace (from
/// the file or `-n`, the same when both), a Kubernetes version, and no OIDC setting yet.
fn read_shoot(file: &str, namespace: Option<&str>) -> Result<ShootFile, Error> {
    const WANT: &str = "give the Shoot manifest (apiVersion core.gardener.cloud/v1beta1, kind Shoot) you would `kubectl create -f`";
    let text = crate::input::read_user_yaml(file, "--shoot-file", "a Shoot manifest")?;
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).map_err(|e| {
        let line = e
            .location()
            .map(|l| format!(" line {}", l.line()))
            .unwrap_or_default();
        Error::Input(format!(
            "invalid --shoot-file `{}`{line}: not one YAML document ({}); {WANT}",
            backends::escape(file),
            e.to_string().lines().next().unwrap_or_default()
        ))
    })?;
    let text_of = |v: &serde_yaml_ng::Value| v.as_str().map(str::to_string);
    let kind = text_of(&doc["kind"]).unwrap_or_default();
    let api = text_of(&doc["apiVersion"]).unwrap_or_default();
    if kind != "Shoot" || api != "core.gardener.cloud/v1beta1" {
        let key = if kind != "Shoot" {
            "kind"
        } else {
            "apiVersion"
        };
        return Err(refuse_at(
            file,
            &text,
            &[Seg::Key(key)],
            &format!(
                "`{}` `{}` is not a core.gardener.cloud/v1beta1 Shoot; {WANT}",
                key,
                backends::escape(if key == "kind" { &kind } else { &api })
            ),
        ));
    }
    let Some(name) = text_of(&doc["metadata"]["name"]).filter(|n| !n.is_empty()) else {
        return Err(refuse_at(
            file,
            &text,
            &[Seg::Key("metadata")],
            "the Shoot has no `metadata.name`; add the Shoot's name",
        ));
    };
    let namespace = namespace_of(
        file,
        &text,
        &name,
        text_of(&doc["metadata"]["namespace"]),
        namespace,
    )?;
    let api_server = &doc["spec"]["kubernetes"]["kubeAPIServer"];
    for key in ["structuredAuthentication", "oidcConfig"] {
        if !api_server[key].is_null() {
            let path = [
                Seg::Key("spec"),
                Seg::Key("kubernetes"),
                Seg::Key("kubeAPIServer"),
                Seg::Key(key),
            ];
            return Err(refuse_at(file, &text, &path, &format!(
                "the Shoot already has `spec.kubernetes.kubeAPIServer.{key}`; take it out to let k8soidc set OIDC, or create the Shoot as it is and use `k8soidc patch --shoot`"
            )));
        }
    }
    let Some(version) = text_of(&doc["spec"]["kubernetes"]["version"]) else {
        return Err(refuse_at(file, &text, &[Seg::Key("spec"), Seg::Key("kubernetes")], "the Shoot has no `spec.kubernetes.version`, which decides how OIDC is set (structuredAuthentication from 1.30); add the version the Shoot should run"));
    };
    Ok(ShootFile {
        doc,
        name,
        namespace,
        version,
    })
}

/// The OIDC settings for a Shoot of Kubernetes `version`: `--kubernetes-version`, when given
/// (flag, variable or settings file), must name the same minor version.
fn settings_for(
    args: &CreateArgs,
    env: &Env,
    file: &str,
    version: &str,
) -> Result<OidcSettings, Error> {
    let shoot = backends::KubeVersion::parse(version).map_err(|_| {
        Error::Input(format!(
            "invalid --shoot-file `{}`: `spec.kubernetes.version` `{}` is not a Kubernetes version; give MAJOR.MINOR.PATCH, e.g. `1.33.2`",
            backends::escape(file),
            backends::escape(version)
        ))
    })?;
    let mut oidc = args.oidc.clone();
    match crate::config::merged_input(&oidc)?.kubernetes_version {
        None => oidc.kubernetes_version = Some(version.to_string()),
        Some(given) => {
            if backends::KubeVersion::parse(&given).ok() != Some(shoot) {
                return Err(Error::Input(format!(
                    "invalid --kubernetes-version `{}`: Shoot `{}` runs Kubernetes {version} (spec.kubernetes.version); leave --kubernetes-version out",
                    backends::escape(&given),
                    backends::escape(file)
                )));
            }
        }
    }
    crate::config::settings(&oidc, env)
}

/// `k8soidc create --distro gardener --shoot-file FILE`: the ConfigMap (config mode), then the
/// Shoot with the OIDC settings added, with kubectl against the garden cluster.
pub(crate) fn create(args: CreateArgs, env: &Env) -> Result<ExitCode, Error> {
    if !args.ssh.hosts.is_empty() {
        return Err(Error::Input("invalid --ssh with --distro gardener: Gardener creates the Shoot's machines; drop --ssh".into()));
    }
    let Some(file) = args.shoot_file.clone() else {
        return Err(Error::Input("missing --shoot-file: give the Shoot manifest to create (Gardener's dashboard shows it as YAML), e.g. `--shoot-file shoot.yaml`".into()));
    };
    let shoot_file = read_shoot(&file, args.namespace.as_deref())?;
    // `--name` defaults to `oidc`; another value must be the Shoot's own name.
    if args.name != "oidc" && args.name != shoot_file.name {
        return Err(Error::Input(format!(
            "invalid --name `{}`: the Shoot in `{}` is named `{}` (metadata.name), which Gardener uses; drop --name",
            backends::escape(&args.name),
            backends::escape(&file),
            backends::escape(&shoot_file.name)
        )));
    }
    let settings = settings_for(&args, env, &file, &shoot_file.version)?;
    let shoot = ShootRef {
        name: shoot_file.name.clone(),
        namespace: shoot_file.namespace.clone(),
        kubectl_args: kubectl_args(args.kubeconfig.as_ref(), args.context.as_ref()),
    };
    let manifest = backends::gardener::shoot_with_oidc(
        &shoot_file.doc,
        &settings,
        &shoot.name,
        &shoot.namespace,
    )?;
    let staged = format!(
        "{}/shoot.yaml",
        crate::render::staging_dir(backends::Distribution::Gardener, &shoot.name)?
    );
    let server = args.dry_run.server;
    let plan = backends::gardener::create_plan(&settings, &shoot, &manifest, &staged, server)?;
    if !args.skip_check {
        crate::check::gate(&settings, args.dry_run.on)?;
    }
    if args.dry_run.on && !server {
        crate::report::out(&plan.to_string())?;
        return Ok(ExitCode::SUCCESS);
    }
    crate::exec::check_programs(&[("kubectl", KUBECTL_HINT)])?;
    eprint!("{plan}");
    let question = format!("Create Shoot `{}` in `{}`?", shoot.name, shoot.namespace);
    if !server && !env.confirm(&question, args.yes)? {
        eprintln!("not confirmed: nothing done");
        return Ok(ExitCode::SUCCESS);
    }
    crate::exec::run_plan(&plan, env, args.verbose)?;
    eprintln!(
        "{}: Shoot `{}` in `{}`; Gardener creates the cluster (`kubectl get shoot {} -n {} -w` shows progress)",
        if server { "accepted by the garden cluster (--dry-run=server, nothing stored)" } else { "created with OIDC" },
        shoot.name,
        shoot.namespace,
        shoot.name,
        shoot.namespace
    );
    Ok(ExitCode::SUCCESS)
}

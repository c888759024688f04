//! Settings from three sources, highest first: flags, `K8SOIDC_*` environment variables (both
//! through clap), and the YAML config file (`--config`, or `./k8soidc.yaml` when present).
//! The merged input is validated by `backends::OidcSettings::validate`; the only I/O here is
//! reading the config file and the CA file.

use std::path::{Path, PathBuf};

use backends::{CaBundle, OidcSettings, PlanError, SettingsInput};

use crate::cli::OidcArgs;
use crate::error::Error;
use crate::ui::Env;

const DEFAULT_FILE: &str = "k8soidc.yaml";

/// Reads the config file, if any: the given path must exist; the default one may be absent.
pub(crate) fn load_file(args: &OidcArgs) -> Result<(SettingsInput, Option<PathBuf>), Error> {
    let (path, explicit) = match &args.config {
        Some(p) => (PathBuf::from(p), true),
        None => (PathBuf::from(DEFAULT_FILE), false),
    };
    if !explicit && !path.exists() {
        return Ok((SettingsInput::default(), None));
    }
    let text = crate::input::read_user_yaml(
        &path.display().to_string(),
        "--config",
        "an existing YAML file or leave the flag out",
    )?;
    if text.trim().is_empty() {
        return Ok((SettingsInput::default(), Some(path)));
    }
    let input: SettingsInput = serde_yaml_ng::from_str(&text).map_err(|e| {
        Error::Input(format!(
            "invalid config file `{}`: {}; keys are the flag names without dashes, e.g. `issuer-url: https://idp.example.com`",
            path.display(),
            e.to_string().replace('\n', " ")
        ))
    })?;
    Ok((input, Some(path)))
}

fn pick<T: Clone>(flag: &Option<T>, file: &Option<T>) -> Option<T> {
    flag.clone().or_else(|| file.clone())
}

/// Merges flags/env over the file.
pub(crate) fn merged_input(args: &OidcArgs) -> Result<(SettingsInput, Option<PathBuf>), Error> {
    let (file, path) = load_file(args)?;
    let mut ca_file = args.ca_file.clone();
    if ca_file.is_none() {
        // A relative CA path in the config file is relative to the file.
        ca_file = file
            .ca_file
            .as_ref()
            .map(|p| match (&path, Path::new(p).is_relative()) {
                (Some(cfg), true) => cfg
                    .parent()
                    .unwrap_or(Path::new("."))
                    .join(p)
                    .display()
                    .to_string(),
                _ => p.clone(),
            });
    }
    let input = SettingsInput {
        issuer_url: pick(&args.issuer_url, &file.issuer_url),
        client_id: pick(&args.client_id, &file.client_id),
        username_claim: pick(&args.username_claim, &file.username_claim),
        username_prefix: pick(&args.username_prefix, &file.username_prefix),
        groups_claim: pick(&args.groups_claim, &file.groups_claim),
        groups_prefix: pick(&args.groups_prefix, &file.groups_prefix),
        ca_file,
        signing_algs: pick(&args.signing_algs, &file.signing_algs),
        required_claim: if args.required_claim.is_empty() {
            file.required_claim
        } else {
            args.required_claim.clone()
        },
        auth_mode: pick(&args.auth_mode, &file.auth_mode),
        kubernetes_version: pick(&args.kubernetes_version, &file.kubernetes_version),
    };
    Ok((input, path))
}

/// Reads and checks `--ca-file`.
pub(crate) fn read_ca(path: &str) -> Result<CaBundle, Error> {
    let bad = |why: String| {
        Error::Input(format!("invalid --ca-file `{path}`: {why}; give the path of the provider's CA certificate in PEM form"))
    };
    let pem = crate::input::read_user_file(
        path,
        "--ca-file",
        "the path of the provider's CA certificate in PEM form",
    )?;
    let abs = std::fs::canonicalize(path).map_err(|e| bad(format!("cannot read it ({e})")))?;
    let ca = CaBundle {
        local_path: abs.display().to_string(),
        pem,
    };
    backends::settings::check_ca(&ca)?;
    Ok(ca)
}

/// The validated settings, prompting for a missing issuer or client id only on a terminal.
pub(crate) fn settings(args: &OidcArgs, env: &Env) -> Result<OidcSettings, Error> {
    let (mut input, _) = merged_input(args)?;
    if input.issuer_url.is_none() {
        input.issuer_url = env.prompt("Issuer URL (https://…)")?;
    }
    if input.client_id.is_none() {
        input.client_id = env.prompt("Client id")?;
    }
    let ca = input.ca_file.as_deref().map(read_ca).transpose()?;
    OidcSettings::validate(&input, ca).map_err(|e| match e {
        PlanError::MissingSetting { .. } => Error::Plan(e),
        other => Error::Plan(other),
    })
}

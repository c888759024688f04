//! The one settings merge. Sources, highest first: flags, `K8SOIDC_*` environment variables
//! (both through clap, told apart by clap's `ValueSource`), and the YAML settings file
//! (`--config`, or `./k8soidc.yaml` when present); `patch --inventory` puts the cluster's
//! `settings` and the inventory's `defaults` between the flags and the environment. Every
//! value keeps its [`Source`], so a bad one is reported as `from --issuer-url`,
//! `from K8SOIDC_ISSUER_URL` or `from k8soidc.yaml:3`. The merged input is validated by
//! `backends::OidcSettings::validate`; the only I/O here is reading the settings file and the
//! CA file.

use std::path::Path;

use backends::{CaBundle, OidcSettings, PlanError, SettingsInput, Source};

use crate::cli::OidcArgs;
use crate::error::Error;
use crate::ui::Env;
use crate::yamlpos::{line_of, Seg};

const DEFAULT_FILE: &str = "k8soidc.yaml";

/// The settings given on the command line and those clap took from `K8SOIDC_*`, each marked
/// with its source: `(flags, environment)`.
pub(crate) fn command_line(a: &OidcArgs) -> (SettingsInput, SettingsInput) {
    let mut flags = SettingsInput::default();
    let mut env = SettingsInput::default();
    macro_rules! split {
        ($($f:ident),*) => {$(
            if a.is_from_env(stringify!($f)) { env.$f = a.$f.clone() } else { flags.$f = a.$f.clone() }
        )*};
    }
    split!(
        issuer_url,
        client_id,
        username_claim,
        username_prefix,
        groups_claim,
        groups_prefix,
        ca_file,
        signing_algs,
        auth_mode,
        kubernetes_version,
        required_claim
    );
    flags.mark(|_| Source::Flag);
    env.mark(|_| Source::Env);
    (flags, env)
}

/// The settings file's settings, each marked with its file and line; empty when the default
/// file is absent (a given `--config` must exist). A relative `ca-file` in it is relative to
/// the file.
pub(crate) fn load_file(args: &OidcArgs) -> Result<SettingsInput, Error> {
    let (path, explicit) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (DEFAULT_FILE.to_string(), false),
    };
    if !explicit && !std::path::Path::new(&path).exists() {
        return Ok(SettingsInput::default());
    }
    let text = crate::input::read_yaml(&path).map_err(|problem| {
        let from = if args.is_from_env("config") {
            " (from K8SOIDC_CONFIG)"
        } else {
            ""
        };
        Error::Input(format!(
            "invalid --config `{}`{from}: {problem}; give an existing YAML file or leave the flag out",
            backends::escape(&path)
        ))
    })?;
    if text.trim().is_empty() {
        return Ok(SettingsInput::default());
    }
    let mut input: SettingsInput = serde_yaml_ng::from_str(&text).map_err(|e| {
        Error::Input(format!(
            "invalid config file `{path}`: {}; keys are the flag names without dashes, e.g. `issuer-url: https://idp.example.com`",
            e.to_string().replace('\n', " ")
        ))
    })?;
    let dir = Path::new(&path).parent().unwrap_or(Path::new("."));
    mark_file(&mut input, &path, &text, dir, &[]);
    Ok(input)
}

/// Marks every setting of `input` as coming from the YAML file `path` (content `text`), at
/// the line of its key below `at`; makes a relative `ca-file` relative to `dir`.
pub(crate) fn mark_file(
    input: &mut SettingsInput,
    path: &str,
    text: &str,
    dir: &Path,
    at: &[Seg<'_>],
) {
    input.mark(|flag| {
        let key = flag.trim_start_matches('-');
        let mut p = at.to_vec();
        p.push(Seg::Key(key));
        Source::File {
            path: path.to_string(),
            line: line_of(text, &p).unwrap_or(1),
            key: crate::yamlpos::field_name(&p),
        }
    });
    if let Some(ca) = &mut input.ca_file {
        if Path::new(ca.as_str()).is_relative() {
            *ca = dir.join(&*ca).display().to_string();
        }
    }
}

/// Settings file, then environment, then flags.
pub(crate) fn merged_input(args: &OidcArgs) -> Result<SettingsInput, Error> {
    let (flags, env) = command_line(args);
    let mut input = load_file(args)?;
    input.overlay(&env);
    input.overlay(&flags);
    Ok(input)
}

/// Reads and checks the merged `--ca-file`, if any; errors name where the path came from.
pub(crate) fn read_ca(input: &SettingsInput) -> Result<Option<CaBundle>, Error> {
    let Some(path) = input.ca_file.as_deref() else {
        return Ok(None);
    };
    let bad = |why: String| {
        Error::Plan(
            PlanError::invalid(
                "--ca-file",
                path,
                why,
                "give the path of the provider's CA certificate in PEM form",
            )
            .with_source(&input.sources),
        )
    };
    let pem = crate::input::read_file(path).map_err(bad)?;
    let abs = std::fs::canonicalize(path).map_err(|e| bad(format!("cannot read it ({e})")))?;
    let ca = CaBundle {
        local_path: abs.display().to_string(),
        pem,
    };
    backends::settings::check_ca(&ca).map_err(|e| e.with_source(&input.sources))?;
    Ok(Some(ca))
}

/// The validated settings, prompting for a missing issuer or client id only on a terminal.
pub(crate) fn settings(args: &OidcArgs, env: &Env) -> Result<OidcSettings, Error> {
    let mut input = merged_input(args)?;
    if input.issuer_url.is_none() {
        input.issuer_url = env.prompt("Issuer URL (https://…)")?;
    }
    if input.client_id.is_none() {
        input.client_id = env.prompt("Client id")?;
    }
    let ca = read_ca(&input)?;
    Ok(OidcSettings::validate(&input, ca)?)
}

/// Parses `90`, `90s`, `5m`, `1h`.
pub(crate) fn parse_duration(flag: &str, text: &str) -> Result<u64, Error> {
    let t = text.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 's')) => (&t[..i], 1),
        Some((i, 'm')) => (&t[..i], 60),
        Some((i, 'h')) => (&t[..i], 3600),
        _ => (t, 1),
    };
    match num.parse::<u64>() {
        Ok(n) if n > 0 && n <= 24 * 3600 / mult => Ok(n * mult),
        _ => Err(Error::Input(format!(
            "invalid {flag} `{}`: not a duration; use e.g. `90s`, `5m` or `1h`",
            backends::escape(text)
        ))),
    }
}

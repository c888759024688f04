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
        allow_system_names,
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
    for a in input.jwt.iter_mut().flatten() {
        if let Some(ca) = &mut a.issuer.ca_file {
            if Path::new(ca.as_str()).is_relative() {
                *ca = dir.join(&*ca).display().to_string();
            }
        }
    }
    mark_structured(input, path, text, at);
}

/// Records the line of every field under `jwt` and `anonymous`, keyed by its upstream field
/// path (`jwt[1].claimMappings.username.prefix`), so a structured error names `file:line`.
fn mark_structured(input: &mut SettingsInput, path: &str, text: &str, at: &[Seg<'_>]) {
    if input.jwt.is_none() && input.anonymous.is_none() {
        return;
    }
    let Ok(doc) = serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text) else {
        return;
    };
    let mut node = &doc;
    for seg in at {
        node = match seg {
            Seg::Key(k) => &node[*k],
            Seg::Index(i) => &node[*i],
        };
    }
    let mut found: Vec<(String, Vec<Seg<'_>>)> = Vec::new();
    for key in ["jwt", "anonymous"] {
        let mut segs = at.to_vec();
        segs.push(Seg::Key(key));
        walk(&node[key], key.to_string(), &mut segs, &mut found);
    }
    for (field, segs) in found {
        let line = line_of(text, &segs).unwrap_or(1);
        input.sources.insert(
            field,
            Source::File {
                path: path.to_string(),
                line,
                key: crate::yamlpos::field_name(&segs),
            },
        );
    }
}

/// Every node below `v` (bounded by the input limits of the settings file).
fn walk<'a>(
    v: &'a serde_yaml_ng::Value,
    field: String,
    segs: &mut Vec<Seg<'a>>,
    out: &mut Vec<(String, Vec<Seg<'a>>)>,
) {
    use serde_yaml_ng::Value;
    if v.is_null() {
        return;
    }
    out.push((field.clone(), segs.clone()));
    match v {
        Value::Sequence(items) => {
            for (i, item) in items.iter().enumerate() {
                segs.push(Seg::Index(i));
                walk(item, format!("{field}[{i}]"), segs, out);
                segs.pop();
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m {
                if let Some(k) = k.as_str() {
                    segs.push(Seg::Key(k));
                    walk(item, format!("{field}.{k}"), segs, out);
                    segs.pop();
                }
            }
        }
        _ => {}
    }
}

/// Reads each `jwt[i].issuer.caFile` and inlines it as `certificateAuthority` (the API server
/// takes the CA inline only); errors name the field and its `file:line`.
pub(crate) fn read_jwt_cas(input: &mut SettingsInput) -> Result<(), Error> {
    let sources = input.sources.clone();
    for (i, a) in input.jwt.iter_mut().flatten().enumerate() {
        let Some(path) = a.issuer.ca_file.clone() else {
            continue;
        };
        if a.issuer
            .certificate_authority
            .as_deref()
            .is_some_and(|c| !c.is_empty())
        {
            continue; // validation names the conflict
        }
        let field = format!("jwt[{i}].issuer.caFile");
        let bad = |why: String| {
            Error::Plan(
                PlanError::field(
                    field.clone(),
                    Some(&path),
                    &format!("Invalid value: {why}"),
                    "give the path of the provider's CA certificate in PEM form",
                )
                .with_source(&sources),
            )
        };
        let pem = crate::input::read_file(&path).map_err(bad)?;
        let ca = CaBundle {
            local_path: path.clone(),
            pem,
        };
        backends::settings::check_ca(&ca).map_err(|e| {
            bad(e
                .to_string()
                .split_once(": ")
                .map(|(_, w)| w.to_string())
                .unwrap_or_default())
        })?;
        a.issuer.certificate_authority = Some(ca.pem);
        a.issuer.ca_file = None;
    }
    Ok(())
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
    settings_on(args, env, None)
}

/// [`settings`] for a known distribution: on GKE (Workforce Identity Federation) every user and
/// group is a `principal://` identifier, so the reserved-names policy (backends/src/reserved.rs)
/// has nothing to guard.
pub(crate) fn settings_on(
    args: &OidcArgs,
    env: &Env,
    distro: Option<backends::Distribution>,
) -> Result<OidcSettings, Error> {
    let mut input = merged_input(args)?;
    input.reserved_names_policy_off = distro == Some(backends::Distribution::Gke);
    let structured = input.jwt.is_some() || input.anonymous.is_some();
    if input.issuer_url.is_none() && !structured {
        input.issuer_url = env.prompt("Issuer URL (https://…)")?;
    }
    if input.client_id.is_none() && !structured {
        input.client_id = env.prompt("Client id")?;
    }
    let ca = read_ca(&input)?;
    validate(&mut input, ca)
}

/// The one validation of merged settings: `jwt` CA files inlined, kube-apiserver's rules, then
/// every CEL expression compiled.
pub(crate) fn validate(
    input: &mut SettingsInput,
    ca: Option<CaBundle>,
) -> Result<OidcSettings, Error> {
    read_jwt_cas(input)?;
    let s = OidcSettings::validate(input, ca)?;
    crate::cel::check_settings(&s).map_err(|e| e.with_source(&input.sources))?;
    Ok(s)
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

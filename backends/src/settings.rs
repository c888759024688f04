//! The one set of OIDC settings, validated by kube-apiserver's rules before anything runs.
//!
//! [`SettingsInput`] is what the user typed (merged from flags, env and file by the binary);
//! [`OidcSettings::validate`] turns it into settings every backend can trust. The prefix rules
//! follow `ToAuthenticationConfig` in kube-apiserver's `pkg/kubeapiserver/options/authentication.go`:
//! an unset username prefix with a claim other than `email` means `<issuer>#`, and `-` means none.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{KubeVersion, PlanError, Source};

/// Signing algorithms kube-apiserver accepts for `--oidc-signing-algs` (RFC 7518 asymmetric).
pub const SIGNING_ALGS: [&str; 9] = [
    "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512",
];

/// How the API server is told about the issuer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Classic `--oidc-*` flags.
    Flags,
    /// A structured `AuthenticationConfiguration` file and `--authentication-config` (1.30+).
    Config,
    /// Config when the Kubernetes version is known and at least 1.30, else flags.
    #[default]
    Auto,
}

impl AuthMode {
    /// Parses `flags`, `config` or `auto`.
    pub fn parse(text: &str) -> Result<Self, PlanError> {
        match text {
            "flags" => Ok(AuthMode::Flags),
            "config" => Ok(AuthMode::Config),
            "auto" => Ok(AuthMode::Auto),
            _ => Err(PlanError::invalid(
                "--auth-mode",
                text,
                "unknown mode",
                "use `flags`, `config` or `auto`",
            )),
        }
    }
}

/// The mode actually rendered, after `auto` is resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `--oidc-*` flags.
    Flags,
    /// `--authentication-config` with a file of this apiVersion.
    Config(ConfigApiVersion),
}

/// The `apiserver.config.k8s.io` version of a rendered `AuthenticationConfiguration`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ConfigApiVersion {
    /// Kubernetes 1.30 to 1.33 (beta, on by default).
    V1beta1,
    /// Kubernetes 1.34 and later (GA).
    V1,
}

impl ConfigApiVersion {
    /// The full `apiVersion` string.
    pub fn api_version(self) -> &'static str {
        match self {
            ConfigApiVersion::V1beta1 => "apiserver.config.k8s.io/v1beta1",
            ConfigApiVersion::V1 => "apiserver.config.k8s.io/v1",
        }
    }
}

/// The raw settings as typed; every field optional. Also the schema of `k8soidc.yaml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct SettingsInput {
    /// `--issuer-url`.
    pub issuer_url: Option<String>,
    /// `--client-id`.
    pub client_id: Option<String>,
    /// `--username-claim`.
    pub username_claim: Option<String>,
    /// `--username-prefix`.
    pub username_prefix: Option<String>,
    /// `--groups-claim`.
    pub groups_claim: Option<String>,
    /// `--groups-prefix`.
    pub groups_prefix: Option<String>,
    /// `--ca-file` (a path on this machine).
    pub ca_file: Option<String>,
    /// `--signing-algs`, comma-separated.
    pub signing_algs: Option<String>,
    /// `--required-claim KEY=VALUE`, repeatable.
    #[serde(default)]
    pub required_claim: Vec<String>,
    /// `--auth-mode`.
    pub auth_mode: Option<String>,
    /// `--kubernetes-version`.
    pub kubernetes_version: Option<String>,
    /// `--allow-system-names`: accept prefixes that let a token claim a `system:` name.
    pub allow_system_names: Option<bool>,
    /// The reserved-names policy (backends/src/reserved.rs) does not apply: set by the caller,
    /// never read from flags, environment or file, where k8soidc adds no exposure: on GKE
    /// (Workforce Identity Federation) every user and group is a `principal://…` identifier, so
    /// no IdP value can become a `system:` name; a flags<->file conversion (migrate.rs) keeps
    /// what the node already runs and says so in a warning instead.
    #[serde(skip)]
    pub reserved_names_policy_off: bool,
    /// Settings file only: several JWT authenticators (`AuthenticationConfiguration.jwt`).
    pub jwt: Option<Vec<crate::authn::JwtAuthenticator>>,
    /// Settings file only: the `anonymous` section (1.34+).
    pub anonymous: Option<crate::authn::Anonymous>,
    /// Where each given value came from, by flag (`--issuer-url`); errors name it.
    #[serde(skip)]
    pub sources: BTreeMap<String, Source>,
}

/// Calls `$m!(field, "--flag")` for every optional single-valued field of [`SettingsInput`].
macro_rules! single_valued {
    ($m:ident) => {
        $m!(issuer_url, "--issuer-url");
        $m!(client_id, "--client-id");
        $m!(username_claim, "--username-claim");
        $m!(username_prefix, "--username-prefix");
        $m!(groups_claim, "--groups-claim");
        $m!(groups_prefix, "--groups-prefix");
        $m!(ca_file, "--ca-file");
        $m!(signing_algs, "--signing-algs");
        $m!(auth_mode, "--auth-mode");
        $m!(kubernetes_version, "--kubernetes-version");
        $m!(allow_system_names, "--allow-system-names");
        $m!(jwt, "jwt");
        $m!(anonymous, "anonymous");
    };
}

impl SettingsInput {
    /// The flags of the settings given here, e.g. `["--issuer-url", "--required-claim"]`.
    pub fn given(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        macro_rules! given {
            ($f:ident, $flag:literal) => {
                if self.$f.is_some() {
                    v.push($flag);
                }
            };
        }
        single_valued!(given);
        if !self.required_claim.is_empty() {
            v.push("--required-claim");
        }
        v
    }

    /// The value given for a single-valued `flag` (or the `--required-claim` list), as text.
    pub fn value_of(&self, flag: &str) -> String {
        macro_rules! value {
            ($f:ident, $flag:literal) => {
                if flag == $flag {
                    return self
                        .$f
                        .as_ref()
                        .map(|v| format!("{v:?}"))
                        .unwrap_or_default()
                        .trim_matches('"')
                        .to_string();
                }
            };
        }
        single_valued!(value);
        self.required_claim.join(" ")
    }

    /// Records `source(flag)` as the source of every setting given here.
    pub fn mark(&mut self, source: impl Fn(&'static str) -> Source) {
        for flag in self.given() {
            self.sources.insert(flag.to_string(), source(flag));
        }
    }

    /// The one merge rule: every setting `top` gives replaces this one's, with its source
    /// (`--required-claim` as a whole list).
    pub fn overlay(&mut self, top: &SettingsInput) {
        macro_rules! over {
            ($f:ident, $flag:literal) => {
                if top.$f.is_some() {
                    self.$f = top.$f.clone();
                    self.take_source($flag, top);
                }
            };
        }
        single_valued!(over);
        if !top.required_claim.is_empty() {
            self.required_claim = top.required_claim.clone();
            self.take_source("--required-claim", top);
        }
    }

    fn take_source(&mut self, flag: &str, top: &SettingsInput) {
        match top.sources.get(flag) {
            Some(s) => self.sources.insert(flag.to_string(), s.clone()),
            None => self.sources.remove(flag),
        };
    }
}

/// The identity provider's CA, read by the binary (this crate does no I/O).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaBundle {
    /// Absolute path on the machine k8soidc runs on.
    pub local_path: String,
    /// The PEM text, as read.
    pub pem: String,
}

/// Validated settings. Construct with [`OidcSettings::validate`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OidcSettings {
    /// Byte-exact issuer URL; the token's `iss` must equal it.
    pub issuer_url: String,
    /// The audience the ID token must carry.
    pub client_id: String,
    /// The claim the username comes from (`sub` when not given, as kube-apiserver defaults).
    pub username_claim: String,
    /// The prefix exactly as given (`None` when not given).
    pub username_prefix: Option<String>,
    /// The groups claim, if any.
    pub groups_claim: Option<String>,
    /// The groups prefix exactly as given.
    pub groups_prefix: Option<String>,
    /// The IdP's CA, when it has a private one.
    pub ca: Option<CaBundle>,
    /// Allowed algorithms when given (kube-apiserver defaults to RS256).
    pub signing_algs: Option<Vec<String>>,
    /// Required claims, in order, split at the first `=`.
    pub required_claims: Vec<(String, String)>,
    /// The requested mode.
    pub auth_mode: AuthMode,
    /// The cluster's Kubernetes version, when known.
    pub kubernetes_version: Option<KubeVersion>,
    /// Non-fatal remarks found while validating (e.g. a trailing `/` on the issuer).
    pub warnings: Vec<String>,
    /// The settings file's `jwt`/`anonymous`, when given (validated; the single-issuer fields
    /// above then describe `jwt[0]`, for the commands that use one issuer).
    pub structured: Option<crate::authn::Structured>,
    /// `--allow-system-names` was given: prefixes that let a token claim a `system:` name are
    /// accepted (see [`crate::reserved`]).
    pub allow_system_names: bool,
}

fn check_text(field: &'static str, value: &str) -> Result<(), PlanError> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        let what = match c {
            '\n' | '\r' => "a newline",
            '\0' => "a NUL byte",
            _ => "a control character",
        };
        return Err(PlanError::invalid(
            field,
            value,
            format!("contains {what}"),
            "remove it",
        ));
    }
    Ok(())
}

/// The longest issuer URL k8soidc takes: 2 KiB, as URLs go (browsers, proxies and the
/// providers' own redirect handling stop around 2,000 bytes; the issuer is in every token).
pub const MAX_ISSUER_URL: usize = 2048;
/// The longest other value (client id, claim, prefix, required claim, algorithms): 1 KiB.
/// Every value lands on kube-apiserver's command line, in node scripts sent as one argument
/// (Linux: 128 KiB per argument, MAX_ARG_STRLEN) and in the health check's argv, so a value of
/// 100 KB cannot be carried; no real claim name or prefix comes near 1 KiB.
pub const MAX_VALUE: usize = 1024;
/// At most this many `--required-claim`s (each one is a flag or a list entry).
pub const MAX_REQUIRED_CLAIMS: usize = 64;

/// Refuses values too long to carry, before anything else looks at them (exit 2): the error
/// shows the value's start and its length, never the whole value.
fn check_lengths(input: &SettingsInput) -> Result<(), PlanError> {
    let too_long = |field: &'static str, value: &str, max: usize| {
        if value.len() <= max {
            return Ok(());
        }
        let head: String = value.chars().take(40).collect();
        Err(PlanError::invalid(
            field,
            format!("{head}…"),
            format!(
                "is {} bytes long, more than the {max} bytes k8soidc accepts (every value goes on kube-apiserver's command line and into node commands, which Linux limits to 128 KiB per argument)",
                value.len()
            ),
            "give the value exactly as the provider issues it",
        ))
    };
    if let Some(v) = &input.issuer_url {
        too_long("--issuer-url", v, MAX_ISSUER_URL)?;
    }
    for (field, value) in [
        ("--client-id", &input.client_id),
        ("--username-claim", &input.username_claim),
        ("--username-prefix", &input.username_prefix),
        ("--groups-claim", &input.groups_claim),
        ("--groups-prefix", &input.groups_prefix),
        ("--signing-algs", &input.signing_algs),
        ("--ca-file", &input.ca_file),
        ("--kubernetes-version", &input.kubernetes_version),
        ("--auth-mode", &input.auth_mode),
    ] {
        if let Some(v) = value {
            too_long(field, v, MAX_VALUE)?;
        }
    }
    for pair in &input.required_claim {
        too_long("--required-claim", pair, MAX_VALUE)?;
    }
    if input.required_claim.len() > MAX_REQUIRED_CLAIMS {
        return Err(PlanError::invalid(
            "--required-claim",
            format!("{} values", input.required_claim.len()),
            format!("is given more than {MAX_REQUIRED_CLAIMS} times"),
            "require only the claims that decide who may log in",
        ));
    }
    Ok(())
}

fn non_empty(
    field: &'static str,
    value: Option<&String>,
    example: &str,
) -> Result<Option<String>, PlanError> {
    match value {
        None => Ok(None),
        Some(v) => {
            check_text(field, v)?;
            if v.trim().is_empty() {
                return Err(PlanError::invalid(
                    field,
                    v,
                    "must not be empty",
                    format!("give a claim name such as `{example}`, or leave the flag out"),
                ));
            }
            if v.trim() != v {
                return Err(PlanError::invalid(
                    field,
                    v,
                    "has leading or trailing white space",
                    "remove it",
                ));
            }
            Ok(Some(v.clone()))
        }
    }
}

fn check_prefix(field: &'static str, value: Option<&String>) -> Result<Option<String>, PlanError> {
    let Some(v) = value else { return Ok(None) };
    check_text(field, v)?;
    if v.chars()
        .any(|c| c == '"' || c == '\'' || c.is_whitespace())
    {
        // kubernetes/kubernetes#97741: quotes written into a manifest end up in every username.
        return Err(PlanError::invalid(
            field,
            v,
            "contains a quote or white space, which would become part of every name",
            "give the bare prefix, e.g. `oidc:`",
        ));
    }
    Ok(Some(v.clone()))
}

/// Checks the issuer URL by the rules kube-apiserver and Pinniped apply; returns warnings.
pub fn check_issuer(url: &str) -> Result<Vec<String>, PlanError> {
    const F: &str = "--issuer-url";
    check_text(F, url)?;
    let Some(rest) = url.strip_prefix("https://") else {
        let fix = match url.split_once("://") {
            Some((_, rest)) => format!("kube-apiserver accepts only https; use `https://{rest}`"),
            None => "give the full URL, e.g. `https://idp.example.com`".to_string(),
        };
        return Err(PlanError::invalid(
            F,
            url,
            "the issuer must be an https URL",
            fix,
        ));
    };
    if url.chars().any(char::is_whitespace) {
        return Err(PlanError::invalid(
            F,
            url,
            "contains white space",
            "give the exact issuer from the provider's discovery document",
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(PlanError::invalid(
            F,
            url,
            "has no host",
            "give the full URL, e.g. `https://idp.example.com`",
        ));
    }
    if authority.contains('@') {
        return Err(PlanError::invalid(
            F,
            url,
            "contains user info (`user@`)",
            "remove the credentials from the URL",
        ));
    }
    if url.contains('?') {
        return Err(PlanError::invalid(
            F,
            url,
            "has a query string",
            "remove everything from `?` on",
        ));
    }
    if url.contains('#') {
        return Err(PlanError::invalid(
            F,
            url,
            "has a fragment",
            "remove everything from `#` on",
        ));
    }
    if let Some(at) = url.find("/.well-known") {
        return Err(PlanError::invalid(
            F,
            url,
            "is a discovery URL, not the issuer",
            format!("use `{}`", &url[..at]),
        ));
    }
    let mut warnings = Vec::new();
    if url.ends_with('/') {
        warnings.push(format!(
            "issuer `{url}` ends with `/`: it is kept exactly, so tokens must carry `iss` with the slash too (Azure AD and Authentik do; most others do not)"
        ));
    }
    Ok(warnings)
}

impl OidcSettings {
    /// Validates raw input. `ca` is the content of `--ca-file`, read by the caller. An invalid
    /// value's error names its source from [`SettingsInput::sources`].
    pub fn validate(input: &SettingsInput, ca: Option<CaBundle>) -> Result<Self, PlanError> {
        Self::validate_values(input, ca).map_err(|e| e.with_source(&input.sources))
    }

    fn validate_values(input: &SettingsInput, ca: Option<CaBundle>) -> Result<Self, PlanError> {
        check_lengths(input)?;
        if input.jwt.is_some() || input.anonymous.is_some() {
            return Self::validate_structured(input);
        }
        let issuer_url = input.issuer_url.clone().ok_or_else(|| PlanError::MissingSetting {
            field: "--issuer-url",
            fix: "give the provider's issuer, e.g. `--issuer-url https://idp.example.com` (or K8SOIDC_ISSUER_URL, or `issuer-url:` in k8soidc.yaml)".into(),
        })?;
        let mut warnings = check_issuer(&issuer_url)?;
        let client_id = input.client_id.clone().ok_or_else(|| PlanError::MissingSetting {
            field: "--client-id",
            fix: "give the OIDC client's id, e.g. `--client-id kubernetes` (or K8SOIDC_CLIENT_ID, or `client-id:` in k8soidc.yaml)".into(),
        })?;
        check_text("--client-id", &client_id)?;
        if client_id.trim().is_empty() {
            return Err(PlanError::invalid(
                "--client-id",
                &client_id,
                "must not be empty",
                "give the OIDC client's id, e.g. `kubernetes`",
            ));
        }
        if client_id.chars().any(char::is_whitespace) {
            return Err(PlanError::invalid(
                "--client-id",
                &client_id,
                "contains white space",
                "give the client id exactly as the provider shows it",
            ));
        }
        let username_claim = non_empty("--username-claim", input.username_claim.as_ref(), "email")?
            .unwrap_or_else(|| "sub".to_string());
        let groups_claim = non_empty("--groups-claim", input.groups_claim.as_ref(), "groups")?;
        let username_prefix = check_prefix("--username-prefix", input.username_prefix.as_ref())?;
        let groups_prefix = check_prefix("--groups-prefix", input.groups_prefix.as_ref())?;
        if groups_prefix.is_some() && groups_claim.is_none() {
            return Err(PlanError::invalid(
                "--groups-prefix",
                groups_prefix.as_deref().unwrap_or_default(),
                "is set but there is no groups claim, so no group would get it",
                "add `--groups-claim groups` (or the claim your provider uses)",
            ));
        }
        if let Some(ca) = &ca {
            check_ca(ca)?;
        }
        let signing_algs = match &input.signing_algs {
            None => None,
            Some(text) => {
                check_text("--signing-algs", text)?;
                let algs: Vec<String> = text.split(',').map(|a| a.trim().to_string()).collect();
                for alg in &algs {
                    if !SIGNING_ALGS.contains(&alg.as_str()) {
                        return Err(PlanError::invalid(
                            "--signing-algs",
                            text,
                            format!("`{alg}` is not an algorithm kube-apiserver accepts"),
                            format!("use a comma-separated list of {}", SIGNING_ALGS.join(", ")),
                        ));
                    }
                }
                Some(algs)
            }
        };
        let mut required_claims: Vec<(String, String)> = Vec::new();
        for pair in &input.required_claim {
            check_text("--required-claim", pair)?;
            let Some((key, value)) = pair.split_once('=') else {
                return Err(PlanError::invalid(
                    "--required-claim",
                    pair,
                    "has no `=`",
                    "write it as KEY=VALUE, e.g. `hd=example.com`",
                ));
            };
            // kube-apiserver trims both sides (cliflag.MapStringStringNoSplit).
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() {
                return Err(PlanError::invalid(
                    "--required-claim",
                    pair,
                    "has an empty claim name",
                    "write it as KEY=VALUE, e.g. `hd=example.com`",
                ));
            }
            if required_claims.iter().any(|(k, _)| k == key) {
                return Err(PlanError::invalid(
                    "--required-claim",
                    pair,
                    format!("names claim `{key}` twice; kube-apiserver keeps only the last"),
                    "give each claim once",
                ));
            }
            required_claims.push((key.to_string(), value.to_string()));
        }
        let auth_mode = input
            .auth_mode
            .as_deref()
            .map(AuthMode::parse)
            .transpose()?
            .unwrap_or_default();
        let kubernetes_version = input
            .kubernetes_version
            .as_deref()
            .map(KubeVersion::parse)
            .transpose()?;
        if username_prefix.is_none() && username_claim != "email" {
            warnings.push(format!(
                "no --username-prefix with claim `{username_claim}`: kube-apiserver names users `{issuer_url}#<{username_claim}>`; this is rendered explicitly. Set --username-prefix (e.g. `oidc:`) or `-` for none"
            ));
        }
        let settings = OidcSettings {
            issuer_url,
            client_id,
            username_claim,
            username_prefix,
            groups_claim,
            groups_prefix,
            ca,
            signing_algs,
            required_claims,
            auth_mode,
            kubernetes_version,
            warnings,
            structured: None,
            allow_system_names: input.allow_system_names.unwrap_or(false),
        };
        if let (Mode::Config(_), Some(algs)) = (settings.mode()?, &settings.signing_algs) {
            return Err(PlanError::invalid(
                "--signing-algs",
                algs.join(","),
                "only --oidc-* flags can carry it: an AuthenticationConfiguration has no algorithm list (kube-apiserver accepts every algorithm it supports)",
                "use `--auth-mode flags`, or leave --signing-algs out",
            ));
        }
        if !input.reserved_names_policy_off {
            crate::reserved::check(&settings)?;
        }
        Ok(settings)
    }

    /// The settings file gave `jwt` (several authenticators) and/or `anonymous`: only an
    /// AuthenticationConfiguration carries them, so the single-issuer flags are refused beside
    /// `jwt` and the mode must be `config`.
    fn validate_structured(input: &SettingsInput) -> Result<Self, PlanError> {
        let file_only = if input.jwt.is_some() {
            "jwt"
        } else {
            "anonymous"
        };
        let jwt = input.jwt.clone().unwrap_or_default();
        let single: Vec<&str> = input
            .given()
            .into_iter()
            .filter(|f| {
                !matches!(
                    *f,
                    "--auth-mode"
                        | "--kubernetes-version"
                        | "--allow-system-names"
                        | "jwt"
                        | "anonymous"
                )
            })
            .collect();
        if let Some(flag) = single.first() {
            let fix = if jwt.is_empty() {
                "`anonymous` goes with a `jwt` list in the settings file: write the issuer there as `jwt[0]`".to_string()
            } else {
                format!("with `jwt` in the settings file every authenticator is described there; move {flag} into jwt[i] (e.g. `issuer.url`, `issuer.audiences`, `claimMappings`), or drop `jwt` for the single-issuer flags")
            };
            return Err(PlanError::invalid(
                flag,
                input.value_of(flag),
                format!("cannot be combined with `{file_only}` from the settings file"),
                fix,
            ));
        }
        if jwt.is_empty() {
            return Err(PlanError::field(
                "jwt".into(),
                None,
                "Required value: k8soidc needs at least one authenticator",
                "add one under `jwt:` (issuer.url, issuer.audiences, claimMappings.username)",
            ));
        }
        let auth_mode = input
            .auth_mode
            .as_deref()
            .map(AuthMode::parse)
            .transpose()?
            .unwrap_or_default();
        let kubernetes_version = input
            .kubernetes_version
            .as_deref()
            .map(KubeVersion::parse)
            .transpose()?;
        let structured = crate::authn::Structured {
            jwt,
            anonymous: input.anonymous.clone(),
        };
        let first = &structured.jwt[0];
        let m = &first.claim_mappings;
        let claim = |c: &Option<String>| c.clone().filter(|c| !c.is_empty());
        let username_claim = claim(&m.username.claim).unwrap_or_else(|| {
            let e = m.username.expression.as_deref().unwrap_or_default();
            if crate::authn::uses_claim(e, "email") {
                "email"
            } else {
                "sub"
            }
            .to_string()
        });
        let username_prefix = match (&m.username.claim, &m.username.prefix) {
            (Some(_), Some(p)) if p.is_empty() => Some("-".to_string()),
            (Some(_), Some(p)) => Some(p.clone()),
            _ => Some("-".to_string()),
        };
        let groups_claim = m.groups.as_ref().and_then(|g| claim(&g.claim));
        let groups_prefix = m
            .groups
            .as_ref()
            .and_then(|g| g.prefix.clone())
            .filter(|_| groups_claim.is_some());
        let settings = OidcSettings {
            issuer_url: first.issuer.url.clone(),
            client_id: first.issuer.audiences.first().cloned().unwrap_or_default(),
            username_claim,
            username_prefix,
            groups_claim,
            groups_prefix,
            ca: None,
            signing_algs: None,
            required_claims: Vec::new(),
            auth_mode,
            kubernetes_version,
            warnings: Vec::new(),
            structured: Some(structured),
            allow_system_names: input.allow_system_names.unwrap_or(false),
        };
        if settings.mode()? == Mode::Flags {
            let fix = match (auth_mode, kubernetes_version) {
                (AuthMode::Flags, _) => "use `--auth-mode config` (with `--kubernetes-version 1.30` or later)",
                _ => "give `--kubernetes-version 1.30` or later (and `--auth-mode config`) so it is written as an AuthenticationConfiguration",
            };
            return Err(PlanError::field(
                file_only.into(),
                None,
                "only an AuthenticationConfiguration file (`--auth-mode config`) can carry it; --oidc-* flags hold one issuer without CEL or anonymous rules",
                fix,
            ));
        }
        crate::authn::validate(
            settings.structured.as_ref().expect("set above"),
            kubernetes_version,
        )?;
        if !input.reserved_names_policy_off {
            crate::reserved::check(&settings)?;
        }
        Ok(settings)
    }

    /// The username prefix kube-apiserver will actually apply ("" for none).
    pub fn effective_username_prefix(&self) -> String {
        match self.username_prefix.as_deref() {
            Some("-") => String::new(),
            Some(p) if !p.is_empty() => p.to_string(),
            _ if self.username_claim == "email" => String::new(),
            _ => format!("{}#", self.issuer_url),
        }
    }

    /// Why [`effective_username_prefix`](Self::effective_username_prefix) is what it is.
    pub fn username_prefix_reason(&self) -> String {
        match self.username_prefix.as_deref() {
            Some("-") => "`--username-prefix -` turns prefixing off".to_string(),
            Some(p) if !p.is_empty() => format!("`--username-prefix {p}` was given"),
            _ if self.username_claim == "email" => "no --username-prefix and the claim is `email`, so kube-apiserver adds none".to_string(),
            _ => format!("no --username-prefix and the claim is `{}`, not `email`, so kube-apiserver prefixes the issuer URL and `#`", self.username_claim),
        }
    }

    /// The username prefix as a `--oidc-username-prefix` value, always explicit (`-` for none).
    pub fn username_prefix_flag(&self) -> String {
        let p = self.effective_username_prefix();
        if p.is_empty() {
            "-".to_string()
        } else {
            p
        }
    }

    /// The groups prefix kube-apiserver will apply ("" for none).
    pub fn effective_groups_prefix(&self) -> String {
        self.groups_prefix.clone().unwrap_or_default()
    }

    /// The mode to render, `auto` resolved against the Kubernetes version.
    pub fn mode(&self) -> Result<Mode, PlanError> {
        let v130 = KubeVersion::new(1, 30);
        let config_version = |v: KubeVersion| {
            if v >= KubeVersion::new(1, 34) {
                ConfigApiVersion::V1
            } else {
                ConfigApiVersion::V1beta1
            }
        };
        match (self.auth_mode, self.kubernetes_version) {
            (AuthMode::Flags, _) => Ok(Mode::Flags),
            (AuthMode::Auto, Some(v)) if v >= v130 => Ok(Mode::Config(config_version(v))),
            (AuthMode::Auto, _) => Ok(Mode::Flags),
            (AuthMode::Config, None) => Err(PlanError::invalid("--auth-mode", "config", "needs the cluster's Kubernetes version to choose the AuthenticationConfiguration apiVersion", "add `--kubernetes-version 1.30` or newer (v1beta1 for 1.30-1.33, v1 from 1.34)")),
            (AuthMode::Config, Some(v)) if v < v130 => Err(PlanError::invalid("--auth-mode", "config", format!("Kubernetes {v} has no beta AuthenticationConfiguration (it is beta from 1.30)"), "use `--auth-mode flags` for this cluster")),
            (AuthMode::Config, Some(v)) => Ok(Mode::Config(config_version(v))),
        }
    }

    /// The scopes a client must request so the token carries the claims these settings use.
    pub fn scopes(&self) -> Vec<&'static str> {
        let mut scopes = vec!["openid"];
        if self.username_claim == "email" {
            scopes.push("email");
        }
        if self.groups_claim.is_some() {
            scopes.push("groups");
        }
        scopes.push("offline_access");
        scopes
    }

    /// For settings with `jwt`/`anonymous` (which no flag carries): the settings file that
    /// gives exactly these settings, for a step where k8soidc runs itself with `--config`.
    /// `caFile`s are already inlined as `certificateAuthority`.
    pub fn structured_settings_file(&self) -> Option<String> {
        #[derive(Serialize)]
        #[serde(rename_all = "kebab-case")]
        struct File<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            kubernetes_version: Option<String>,
            auth_mode: AuthMode,
            #[serde(skip_serializing_if = "std::ops::Not::not")]
            allow_system_names: bool,
            jwt: &'a [crate::authn::JwtAuthenticator],
            #[serde(skip_serializing_if = "Option::is_none")]
            anonymous: Option<&'a crate::authn::Anonymous>,
        }
        let st = self.structured.as_ref()?;
        Some(crate::yamlout::to_yaml(&File {
            kubernetes_version: self.kubernetes_version.map(|v| v.to_string()),
            auth_mode: self.auth_mode,
            allow_system_names: self.allow_system_names,
            jwt: &st.jwt,
            anonymous: st.anonymous.as_ref(),
        }))
    }

    /// The k8soidc flags that give exactly these settings, for a step where k8soidc runs
    /// itself (single-issuer settings; see [`Self::structured_settings_file`] for `jwt`). `--config /dev/null` keeps a `k8soidc.yaml` in the working directory from
    /// adding a setting these leave unset; the environment is the caller's, as for the parent.
    pub fn to_flags(&self) -> Vec<String> {
        let mut flags: Vec<String> = vec!["--config".into(), "/dev/null".into()];
        let mut push = |flag: &str, value: &str| {
            flags.push(flag.to_string());
            flags.push(value.to_string());
        };
        push("--issuer-url", &self.issuer_url);
        push("--client-id", &self.client_id);
        push("--username-claim", &self.username_claim);
        if let Some(p) = &self.username_prefix {
            push("--username-prefix", p);
        }
        if let Some(c) = &self.groups_claim {
            push("--groups-claim", c);
        }
        if let Some(p) = &self.groups_prefix {
            push("--groups-prefix", p);
        }
        if let Some(ca) = &self.ca {
            push("--ca-file", &ca.local_path);
        }
        if let Some(algs) = &self.signing_algs {
            push("--signing-algs", &algs.join(","));
        }
        for (k, v) in &self.required_claims {
            push("--required-claim", &format!("{k}={v}"));
        }
        match self.auth_mode {
            AuthMode::Auto => {}
            AuthMode::Flags => push("--auth-mode", "flags"),
            AuthMode::Config => push("--auth-mode", "config"),
        }
        if let Some(v) = self.kubernetes_version {
            push("--kubernetes-version", &v.to_string());
        }
        if self.allow_system_names {
            push("--allow-system-names", "true");
        }
        flags
    }
}

/// Whether `text` holds a private key in any armour: PEM (`-----BEGIN … PRIVATE KEY-----`:
/// PKCS#8, encrypted PKCS#8, RSA, EC, DSA, OpenSSH), OpenPGP (`-----BEGIN PGP PRIVATE KEY
/// BLOCK-----`, RFC 4880 §6.2), SSH2 (`---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----`) and PuTTY
/// (`PuTTY-User-Key-File-N:`). Case and surrounding white space do not matter.
fn holds_private_key(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim().to_ascii_uppercase();
        (l.contains("BEGIN") && l.contains("PRIVATE KEY")) || l.starts_with("PUTTY-USER-KEY-FILE-")
    })
}

/// A CA file must hold at least one certificate and no private key (of any kind, see
/// [`holds_private_key`]); the refusal names the file, never its content.
pub fn check_ca(ca: &CaBundle) -> Result<(), PlanError> {
    const F: &str = "--ca-file";
    if holds_private_key(&ca.pem) {
        return Err(PlanError::invalid(
            F,
            &ca.local_path,
            "holds a private key",
            "give a file with only the CA certificate(s); never ship a key to the API server",
        ));
    }
    let begins = ca.pem.matches("-----BEGIN CERTIFICATE-----").count();
    let ends = ca.pem.matches("-----END CERTIFICATE-----").count();
    if begins == 0 || begins != ends {
        return Err(PlanError::invalid(
            F,
            &ca.local_path,
            "holds no complete PEM certificate",
            "give the IdP's CA certificate in PEM form (`-----BEGIN CERTIFICATE-----`)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(issuer: &str) -> SettingsInput {
        SettingsInput {
            issuer_url: Some(issuer.into()),
            client_id: Some("kubernetes".into()),
            ..Default::default()
        }
    }

    /// A later layer wins field by field and brings its source along; an error names it.
    #[test]
    fn overlay_keeps_the_source_of_each_value_and_errors_name_it() {
        let mut file = input("http://from-file");
        file.mark(|flag| Source::File {
            path: "k8soidc.yaml".into(),
            line: if flag == "--issuer-url" { 3 } else { 4 },
            key: flag.trim_start_matches('-').into(),
        });
        let mut env = SettingsInput {
            client_id: Some("bad id".into()),
            ..Default::default()
        };
        env.mark(|_| Source::Env);
        let mut merged = SettingsInput::default();
        merged.overlay(&file);
        merged.overlay(&env);
        assert_eq!(merged.client_id.as_deref(), Some("bad id"));
        assert_eq!(
            OidcSettings::validate(&merged, None).unwrap_err().to_string(),
            "invalid --issuer-url `http://from-file` (from k8soidc.yaml:3): the issuer must be an https URL; kube-apiserver accepts only https; use `https://from-file`"
        );
        merged.issuer_url = Some("https://idp.example.com".into());
        assert_eq!(
            OidcSettings::validate(&merged, None).unwrap_err().to_string(),
            "invalid --client-id `bad id` (from K8SOIDC_CLIENT_ID): contains white space; give the client id exactly as the provider shows it"
        );
        let mut flags = SettingsInput {
            client_id: Some("".into()),
            ..Default::default()
        };
        flags.mark(|_| Source::Flag);
        merged.overlay(&flags);
        assert_eq!(
            OidcSettings::validate(&merged, None).unwrap_err().to_string(),
            "invalid --client-id `` (from --client-id): must not be empty; give the OIDC client's id, e.g. `kubernetes`"
        );
    }

    /// Without recorded sources (the library's own callers) the message is unchanged.
    #[test]
    fn no_source_no_note() {
        assert_eq!(
            OidcSettings::validate(&input("http://x"), None)
                .unwrap_err()
                .to_string(),
            "invalid --issuer-url `http://x`: the issuer must be an https URL; kube-apiserver accepts only https; use `https://x`"
        );
    }
}

#[cfg(test)]
mod to_flags_tests {
    use super::*;
    use crate::testutil::*;

    /// What k8soidc's flag parsing makes of `to_flags` (every flag takes one value).
    fn parse(flags: &[String]) -> SettingsInput {
        let mut i = SettingsInput::default();
        for pair in flags.chunks(2) {
            let v = Some(pair[1].clone());
            match pair[0].as_str() {
                "--config" => assert_eq!(pair[1], "/dev/null"),
                "--issuer-url" => i.issuer_url = v,
                "--client-id" => i.client_id = v,
                "--username-claim" => i.username_claim = v,
                "--username-prefix" => i.username_prefix = v,
                "--groups-claim" => i.groups_claim = v,
                "--groups-prefix" => i.groups_prefix = v,
                "--ca-file" => i.ca_file = v,
                "--signing-algs" => i.signing_algs = v,
                "--required-claim" => i.required_claim.push(pair[1].clone()),
                "--auth-mode" => i.auth_mode = v,
                "--kubernetes-version" => i.kubernetes_version = v,
                "--allow-system-names" => {
                    assert_eq!(pair[1], "true");
                    i.allow_system_names = Some(true);
                }
                other => panic!("unknown flag {other}"),
            }
        }
        i
    }

    #[test]
    fn to_flags_gives_back_the_same_settings() {
        let cases = [
            settings(),
            with(|i| {
                i.username_prefix = None;
                i.groups_claim = None;
                i.groups_prefix = None;
                i.username_claim = None;
            }),
            with(|i| {
                i.username_prefix = Some(String::new());
                i.required_claim = vec!["hd=example.com".into(), "a=b=c".into()];
                i.auth_mode = Some("config".into());
                i.kubernetes_version = Some("1.34".into());
            }),
            with(|i| {
                i.auth_mode = Some("flags".into());
                i.signing_algs = Some("RS256,ES256".into());
                i.groups_prefix = None;
                i.allow_system_names = Some(true);
            }),
        ];
        for s in cases {
            let flags = s.to_flags();
            let again = OidcSettings::validate(&parse(&flags), None).unwrap();
            assert_eq!(again, s, "{flags:?}");
        }
        let mut s = settings();
        s.ca = Some(ca());
        let flags = s.to_flags();
        assert_eq!(
            parse(&flags).ca_file.as_deref(),
            Some("/home/me/idp-ca.pem")
        );
    }
}

#[cfg(test)]
mod structured_file_tests {
    use super::*;

    /// The settings file written for a k8soidc step reads back as the same settings.
    #[test]
    fn structured_settings_file_gives_back_the_same_settings() {
        let yaml = "kubernetes-version: '1.34'\nauth-mode: config\nallow-system-names: true\njwt:\n- issuer: {url: 'https://a.example.com', audiences: [k, l], audienceMatchPolicy: MatchAny, certificateAuthority: \"-----BEGIN CERTIFICATE-----\\nMIIB\\n-----END CERTIFICATE-----\\n\"}\n  claimMappings: {username: {expression: \"'a:' + claims.sub\"}, extra: [{key: example.com/x, valueExpression: claims.x}]}\nanonymous: {enabled: true, conditions: [{path: /livez}]}\n";
        let input: SettingsInput = serde_yaml_ng::from_str(yaml).unwrap();
        let s = OidcSettings::validate(&input, None).unwrap();
        let file = s.structured_settings_file().unwrap();
        let again: SettingsInput = serde_yaml_ng::from_str(&file).unwrap();
        assert_eq!(OidcSettings::validate(&again, None).unwrap(), s, "{file}");
        assert_eq!(crate::testutil::settings().structured_settings_file(), None);
    }
}

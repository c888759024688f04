//! Structured authentication: several JWT authenticators and the `anonymous` section, as the
//! settings file gives them (`jwt:` and `anonymous:`, the field names of
//! `apiserver.config.k8s.io` `AuthenticationConfiguration`) and as the API server reads them.
//!
//! [`validate`] mirrors kube-apiserver's own validation (k8s.io/apiserver
//! `pkg/apis/apiserver/validation/validation.go`, `ValidateAuthenticationConfiguration`) with
//! the same field paths (`jwt[1].claimMappings.username.prefix`), so an error here is the one
//! the API server would give, found before anything runs. CEL expressions are compiled by the
//! binary (this crate has no CEL); the rest of the rules are here. Version gates: the file
//! exists from 1.30 (`v1beta1`), `anonymous` and `egressSelectorType` are written only for
//! 1.34 and later (`v1`), where they are on by default.

use serde::{Deserialize, Serialize};

use crate::{KubeVersion, OidcSettings, PlanError};

/// One `jwt` authenticator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JwtAuthenticator {
    /// Who issues the tokens and for whom.
    pub issuer: Issuer,
    /// Rules on the token's claims.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub claim_validation_rules: Vec<ClaimValidationRule>,
    /// How claims become the user.
    #[serde(default)]
    pub claim_mappings: ClaimMappings,
    /// Rules on the resulting user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_validation_rules: Vec<UserValidationRule>,
}

/// `issuer`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Issuer {
    /// Must equal the token's `iss`, byte for byte.
    #[serde(default)]
    pub url: String,
    /// Where to fetch the discovery document instead of `{url}/.well-known/openid-configuration`.
    #[serde(
        rename = "discoveryURL",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub discovery_url: Option<String>,
    /// PEM of the CA that signs the provider's serving certificate (inline, as the API server
    /// requires; kubernetes#130969).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_authority: Option<String>,
    /// k8soidc's own: a PEM file on this machine, inlined as `certificateAuthority`.
    #[serde(default, skip_serializing)]
    pub ca_file: Option<String>,
    /// Accepted `aud` values.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// `MatchAny` (required for several audiences).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audience_match_policy: Option<String>,
    /// `controlplane` or `cluster` (1.34+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_selector_type: Option<String>,
}

/// `claimValidationRules[i]`: a claim and its required value, or a CEL expression.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimValidationRule {
    /// A string claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    /// Its required value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_value: Option<String>,
    /// A CEL expression over `claims` that must be true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// The message when the expression is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `claimMappings`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimMappings {
    /// Required: the username.
    #[serde(default)]
    pub username: PrefixedClaimOrExpression,
    /// The groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<PrefixedClaimOrExpression>,
    /// The uid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<ClaimOrExpression>,
    /// Extra attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<ExtraMapping>,
}

/// A claim with a prefix, or a CEL expression.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrefixedClaimOrExpression {
    /// The claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    /// Required with `claim` (`""` for none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// A CEL expression over `claims`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

/// A claim or a CEL expression.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimOrExpression {
    /// The claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    /// A CEL expression over `claims`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
}

/// `claimMappings.extra[i]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtraMapping {
    /// A domain-prefixed, lowercase key (`example.com/tenant`).
    #[serde(default)]
    pub key: String,
    /// A CEL expression giving a string or a list of strings.
    #[serde(default)]
    pub value_expression: String,
}

/// `userValidationRules[i]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UserValidationRule {
    /// A CEL expression over `user` that must be true.
    #[serde(default)]
    pub expression: String,
    /// The message when it is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `anonymous` (1.34+ here).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Anonymous {
    /// Whether anonymous requests are authenticated as `system:anonymous`.
    #[serde(default)]
    pub enabled: bool,
    /// The only paths where they are (none: everywhere).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<AnonymousCondition>,
}

/// `anonymous.conditions[i]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnonymousCondition {
    /// A request path, e.g. `/livez`.
    #[serde(default)]
    pub path: String,
}

/// What only the settings file can say: the authenticators and the anonymous section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Structured {
    /// The authenticators, in order (the API server tries them in this order).
    pub jwt: Vec<JwtAuthenticator>,
    /// The anonymous section.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anonymous: Option<Anonymous>,
}

fn set(v: &Option<String>) -> bool {
    v.as_deref().is_some_and(|s| !s.is_empty())
}

/// An error at `path` (an upstream field path), in kube-apiserver's words.
fn bad(path: String, value: Option<&str>, problem: &str, fix: &str) -> PlanError {
    PlanError::field(path, value, problem, fix)
}

/// The upstream `validateURL` rules (https, no user info, query or fragment).
fn check_url(path: &str, url: &str) -> Result<(), PlanError> {
    let fix = "give the exact https URL from the provider's discovery document";
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad(
            path.into(),
            Some(url),
            "Invalid value: contains white space or a control character",
            fix,
        ));
    }
    let Some(rest) = url.strip_prefix("https://") else {
        return Err(bad(
            path.into(),
            Some(url),
            "Invalid value: URL scheme must be https",
            fix,
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(bad(
            path.into(),
            Some(url),
            "Invalid value: URL has no host",
            fix,
        ));
    }
    if authority.contains('@') {
        return Err(bad(
            path.into(),
            Some(url),
            "Invalid value: URL must not contain a username or password",
            fix,
        ));
    }
    if url
        .split_once('?')
        .is_some_and(|(_, q)| !q.split('#').next().unwrap_or_default().is_empty())
    {
        return Err(bad(
            path.into(),
            Some(url),
            "Invalid value: URL must not contain a query",
            fix,
        ));
    }
    if url.split_once('#').is_some_and(|(_, f)| !f.is_empty()) {
        return Err(bad(
            path.into(),
            Some(url),
            "Invalid value: URL must not contain a fragment",
            fix,
        ));
    }
    Ok(())
}

/// Whether a key's domain (the part before `/`) is Kubernetes' own.
fn kubernetes_domain(key: &str) -> bool {
    let Some((domain, _)) = key.split_once('/') else {
        return false;
    };
    ["kubernetes.io", "k8s.io"]
        .iter()
        .any(|d| domain == *d || domain.ends_with(&format!(".{d}")))
}

/// `IsDomainPrefixedPath`: `example.com/path`, a DNS subdomain before the first `/`.
fn domain_prefixed(key: &str) -> bool {
    let Some((domain, rest)) = key.split_once('/') else {
        return false;
    };
    !rest.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && rest.chars().all(|c| c.is_ascii_graphic())
}

/// Whether an expression reads `claims.<name>` (the upstream check walks the CEL AST; a
/// reference as text is the same for every expression k8soidc accepts: `claims.name`,
/// `claims.?name`, `claims['name']` or `claims[?'name']`).
pub fn uses_claim(expression: &str, name: &str) -> bool {
    let found_dotted = [format!("claims.{name}"), format!("claims.?{name}")]
        .iter()
        .any(|dotted| {
            expression.match_indices(dotted.as_str()).any(|(at, _)| {
                let after = expression[at + dotted.len()..].chars().next();
                !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        });
    found_dotted
        || [format!("'{name}'"), format!("\"{name}\"")]
            .iter()
            .any(|q| {
                expression.contains(&format!("claims[{q}]"))
                    || expression.contains(&format!("claims[?{q}]"))
            })
}

/// Validates the structured settings by kube-apiserver's rules for `version` (None: unknown,
/// only the version-free rules). Returns the first error, at its upstream field path.
pub fn validate(s: &Structured, version: Option<KubeVersion>) -> Result<(), PlanError> {
    const MAX: usize = 64;
    let v134 = version.is_some_and(|v| v >= KubeVersion::new(1, 34));
    if s.jwt.len() > MAX {
        return Err(bad(
            "jwt".into(),
            Some(&s.jwt.len().to_string()),
            &format!("Too many: must have at most {MAX} items"),
            "split the authenticators across clusters or drop some",
        ));
    }
    let mut issuers: Vec<&str> = Vec::new();
    let mut discovery: Vec<&str> = Vec::new();
    for (i, a) in s.jwt.iter().enumerate() {
        let p = format!("jwt[{i}]");
        validate_jwt(a, &p, v134, version)?;
        let url = a.issuer.url.as_str();
        if issuers.contains(&url) {
            return Err(bad(format!("{p}.issuer.url"), Some(url), "Duplicate value", "each authenticator needs its own issuer URL; merge their audiences or mappings into one"));
        }
        issuers.push(url);
        if let Some(d) = a.issuer.discovery_url.as_deref().filter(|d| !d.is_empty()) {
            if discovery.contains(&d) {
                return Err(bad(
                    format!("{p}.issuer.discoveryURL"),
                    Some(d),
                    "Duplicate value",
                    "give each authenticator its own discoveryURL",
                ));
            }
            discovery.push(d);
        }
    }
    if let Some(an) = &s.anonymous {
        if !v134 {
            let why = match version {
                Some(v) => format!("Forbidden: k8soidc writes `anonymous` only for Kubernetes 1.34 and later (GA in apiserver.config.k8s.io/v1); this cluster is {v}"),
                None => "Forbidden: `anonymous` needs the Kubernetes version (1.34 or later)".to_string(),
            };
            return Err(bad("anonymous".into(), None, &why, "remove `anonymous` (and use --anonymous-auth on the API server), or give `--kubernetes-version 1.34` or later"));
        }
        if !an.enabled && !an.conditions.is_empty() {
            return Err(bad(
                "anonymous.conditions".into(),
                None,
                "Invalid value: enabled should be set to true when conditions are defined",
                "set `enabled: true` or remove `conditions`",
            ));
        }
    }
    Ok(())
}

fn validate_jwt(
    a: &JwtAuthenticator,
    p: &str,
    v134: bool,
    version: Option<KubeVersion>,
) -> Result<(), PlanError> {
    let is = &a.issuer;
    let ip = format!("{p}.issuer");
    if is.url.is_empty() {
        return Err(bad(
            format!("{ip}.url"),
            None,
            "Required value: URL is required",
            "give the issuer, e.g. `url: https://idp.example.com`",
        ));
    }
    check_url(&format!("{ip}.url"), &is.url)?;
    if let Some(d) = is.discovery_url.as_deref().filter(|d| !d.is_empty()) {
        if is.url.trim_end_matches('/') == d.trim_end_matches('/') {
            return Err(bad(format!("{ip}.discoveryURL"), Some(d), "Invalid value: discoveryURL must be different from URL", "leave discoveryURL out when the discovery document is at `{url}/.well-known/openid-configuration`"));
        }
        check_url(&format!("{ip}.discoveryURL"), d)?;
    }
    if is.audiences.is_empty() {
        return Err(bad(
            format!("{ip}.audiences"),
            None,
            &format!("Required value: at least one {ip}.audiences is required"),
            "give the client id(s) tokens carry in `aud`",
        ));
    }
    for (i, aud) in is.audiences.iter().enumerate() {
        if aud.is_empty() {
            return Err(bad(
                format!("{ip}.audiences[{i}]"),
                None,
                "Required value: audience can't be empty",
                "give the client id",
            ));
        }
        if is.audiences[..i].contains(aud) {
            return Err(bad(
                format!("{ip}.audiences[{i}]"),
                Some(aud),
                "Duplicate value",
                "give each audience once",
            ));
        }
    }
    let policy = is.audience_match_policy.as_deref().unwrap_or_default();
    if is.audiences.len() > 1 && policy != "MatchAny" {
        return Err(bad(
            format!("{ip}.audienceMatchPolicy"),
            Some(policy),
            "Invalid value: audienceMatchPolicy must be MatchAny for multiple audiences",
            "add `audienceMatchPolicy: MatchAny`",
        ));
    }
    if is.audiences.len() == 1 && !policy.is_empty() && policy != "MatchAny" {
        return Err(bad(
            format!("{ip}.audienceMatchPolicy"),
            Some(policy),
            "Invalid value: audienceMatchPolicy must be empty or MatchAny for single audience",
            "remove it or set `MatchAny`",
        ));
    }
    if set(&is.certificate_authority) && set(&is.ca_file) {
        return Err(bad(format!("{ip}.caFile"), is.ca_file.as_deref(), "Invalid value: certificateAuthority and caFile can't both be set", "give the CA once: inline PEM as certificateAuthority, or a file on this machine as caFile"));
    }
    if let Some(ca) = is
        .certificate_authority
        .as_deref()
        .filter(|c| !c.is_empty())
    {
        let begins = ca.matches("-----BEGIN CERTIFICATE-----").count();
        if begins == 0
            || begins != ca.matches("-----END CERTIFICATE-----").count()
            || ca.contains("PRIVATE KEY")
        {
            return Err(bad(
                format!("{ip}.certificateAuthority"),
                Some("<omitted>"),
                "Invalid value: not a PEM certificate bundle (or it holds a private key)",
                "give only the CA certificate(s) in PEM form",
            ));
        }
    }
    if let Some(e) = is.egress_selector_type.as_deref() {
        if !v134 {
            return Err(bad(
                format!("{ip}.egressSelectorType"),
                Some(e),
                &format!(
                    "Forbidden: egressSelectorType exists from Kubernetes 1.34{}",
                    version
                        .map(|v| format!("; this cluster is {v}"))
                        .unwrap_or_else(|| " (give --kubernetes-version)".into())
                ),
                "remove it, or give `--kubernetes-version 1.34` or later",
            ));
        }
        if e != "controlplane" && e != "cluster" {
            return Err(bad(
                format!("{ip}.egressSelectorType"),
                Some(e),
                "Invalid value: egress selector must be either controlplane or cluster",
                "use `controlplane` or `cluster`",
            ));
        }
    }
    let cp = format!("{p}.claimValidationRules");
    let mut claims: Vec<&str> = Vec::new();
    let mut exprs: Vec<&str> = Vec::new();
    for (i, r) in a.claim_validation_rules.iter().enumerate() {
        let rp = format!("{cp}[{i}]");
        match (set(&r.claim), set(&r.expression)) {
            (true, true) => {
                return Err(bad(
                    rp,
                    r.claim.as_deref(),
                    "Invalid value: claim and expression can't both be set",
                    "keep one",
                ))
            }
            (false, false) => {
                return Err(bad(
                    rp,
                    None,
                    "Required value: claim or expression is required",
                    "give `claim` with `requiredValue`, or `expression` with `message`",
                ))
            }
            (true, false) => {
                let c = r.claim.as_deref().unwrap_or_default();
                if set(&r.message) {
                    return Err(bad(
                        format!("{rp}.message"),
                        r.message.as_deref(),
                        "Invalid value: message can't be set when claim is set",
                        "remove `message`, or write the rule as an `expression`",
                    ));
                }
                if claims.contains(&c) {
                    return Err(bad(
                        format!("{rp}.claim"),
                        Some(c),
                        "Duplicate value",
                        "give each claim once",
                    ));
                }
                claims.push(c);
            }
            (false, true) => {
                let e = r.expression.as_deref().unwrap_or_default();
                if set(&r.required_value) {
                    return Err(bad(
                        format!("{rp}.requiredValue"),
                        r.required_value.as_deref(),
                        "Invalid value: requiredValue can't be set when expression is set",
                        "remove `requiredValue`",
                    ));
                }
                if exprs.contains(&e) {
                    return Err(bad(
                        format!("{rp}.expression"),
                        Some(e),
                        "Duplicate value",
                        "give each expression once",
                    ));
                }
                exprs.push(e);
            }
        }
    }
    let mp = format!("{p}.claimMappings");
    let m = &a.claim_mappings;
    prefixed(&m.username, &format!("{mp}.username"), true)?;
    if let Some(g) = &m.groups {
        prefixed(g, &format!("{mp}.groups"), false)?;
    }
    if let Some(u) = &m.uid {
        if set(&u.claim) && set(&u.expression) {
            return Err(bad(
                format!("{mp}.uid"),
                Some(""),
                "Invalid value: claim and expression can't both be set",
                "keep one",
            ));
        }
    }
    let mut keys: Vec<&str> = Vec::new();
    for (i, x) in m.extra.iter().enumerate() {
        let xp = format!("{mp}.extra[{i}]");
        if x.key.is_empty() {
            return Err(bad(
                format!("{xp}.key"),
                None,
                "Required value",
                "give a domain-prefixed key, e.g. `example.com/tenant`",
            ));
        }
        if !domain_prefixed(&x.key.to_ascii_lowercase()) {
            return Err(bad(
                format!("{xp}.key"),
                Some(&x.key),
                "Invalid value: must be a domain-prefixed path (such as \"acme.io/foo\")",
                "prefix the key with a domain you own, e.g. `example.com/tenant`",
            ));
        }
        if x.key != x.key.to_lowercase() {
            return Err(bad(
                format!("{xp}.key"),
                Some(&x.key),
                "Invalid value: key must be lowercase",
                "write the key in lowercase",
            ));
        }
        if kubernetes_domain(&x.key) {
            return Err(bad(format!("{xp}.key"), Some(&x.key), "Invalid value: k8s.io, kubernetes.io and their subdomains are reserved for Kubernetes use", "use a domain you own"));
        }
        if keys.contains(&x.key.as_str()) {
            return Err(bad(
                format!("{xp}.key"),
                Some(&x.key),
                "Duplicate value",
                "give each key once",
            ));
        }
        keys.push(&x.key);
        if x.value_expression.is_empty() {
            return Err(bad(
                format!("{xp}.valueExpression"),
                None,
                "Required value: valueExpression is required",
                "give a CEL expression, e.g. `claims.tenant`",
            ));
        }
    }
    // Upstream: an expression reading claims.email must be paired with claims.email_verified
    // somewhere in the username expression, an extra value or a claim validation rule.
    if let Some(e) = m.username.expression.as_deref().filter(|e| !e.is_empty()) {
        let verified = uses_claim(e, "email_verified")
            || m.extra
                .iter()
                .any(|x| uses_claim(&x.value_expression, "email_verified"))
            || a.claim_validation_rules.iter().any(|r| {
                r.expression
                    .as_deref()
                    .is_some_and(|x| uses_claim(x, "email_verified"))
            });
        if uses_claim(e, "email") && !verified {
            return Err(bad(format!("{mp}.username.expression"), Some(e), "Invalid value: claims.email_verified must be used in claimMappings.username.expression or claimMappings.extra[*].valueExpression or claimValidationRules[*].expression when claims.email is used in claimMappings.username.expression", "add a rule such as `expression: 'claims.?email_verified.orValue(true) == true'`"));
        }
    }
    let up = format!("{p}.userValidationRules");
    let mut seen: Vec<&str> = Vec::new();
    for (i, r) in a.user_validation_rules.iter().enumerate() {
        let rp = format!("{up}[{i}].expression");
        if r.expression.is_empty() {
            return Err(bad(
                rp,
                None,
                "Required value: expression is required",
                "give a CEL expression over `user`",
            ));
        }
        if seen.contains(&r.expression.as_str()) {
            return Err(bad(
                rp,
                Some(&r.expression),
                "Duplicate value",
                "give each expression once",
            ));
        }
        seen.push(&r.expression);
    }
    Ok(())
}

fn prefixed(m: &PrefixedClaimOrExpression, p: &str, required: bool) -> Result<(), PlanError> {
    match (set(&m.claim), set(&m.expression)) {
        (true, true) => Err(bad(p.into(), Some(""), "Invalid value: claim and expression can't both be set", "keep one")),
        (false, false) if required => Err(bad(p.into(), None, "Required value: claim or expression is required", "give `claim` (with `prefix`) or `expression`")),
        (false, true) if m.prefix.is_some() => Err(bad(format!("{p}.prefix"), m.prefix.as_deref(), "Invalid value: prefix can't be set when expression is set", "remove `prefix` and build the prefix into the expression, e.g. `'oidc:' + claims.sub`")),
        (true, false) if m.prefix.is_none() => Err(bad(format!("{p}.prefix"), None, "Required value: prefix is required when claim is set. It can be set to an empty string to disable prefixing", "add `prefix: \"oidc:\"` (or `prefix: \"\"` for none)")),
        _ => Ok(()),
    }
}

/// The one authenticator the single-issuer settings (`--issuer-url`, ...) amount to, prefixes
/// explicit as the config API requires, the CA inline (`ToAuthenticationConfig` in
/// kube-apiserver's `pkg/kubeapiserver/options/authentication.go`).
pub fn from_flags(s: &OidcSettings) -> JwtAuthenticator {
    JwtAuthenticator {
        issuer: Issuer {
            url: s.issuer_url.clone(),
            certificate_authority: s.ca.as_ref().map(|ca| ca.pem.clone()),
            audiences: vec![s.client_id.clone()],
            ..Default::default()
        },
        claim_validation_rules: s
            .required_claims
            .iter()
            .map(|(k, v)| ClaimValidationRule {
                claim: Some(k.clone()),
                required_value: Some(v.clone()),
                ..Default::default()
            })
            .collect(),
        claim_mappings: ClaimMappings {
            username: PrefixedClaimOrExpression {
                claim: Some(s.username_claim.clone()),
                prefix: Some(s.effective_username_prefix()),
                expression: None,
            },
            groups: s.groups_claim.as_ref().map(|c| PrefixedClaimOrExpression {
                claim: Some(c.clone()),
                prefix: Some(s.effective_groups_prefix()),
                expression: None,
            }),
            ..Default::default()
        },
        user_validation_rules: Vec::new(),
    }
}

/// Every CEL expression of the settings with its field path, for the binary to compile:
/// `(path, expression, over)` where `over` is `claims` or `user`.
pub fn expressions(s: &Structured) -> Vec<(String, &str, &'static str)> {
    let mut out = Vec::new();
    for (i, a) in s.jwt.iter().enumerate() {
        let p = format!("jwt[{i}]");
        for (j, r) in a.claim_validation_rules.iter().enumerate() {
            if let Some(e) = r.expression.as_deref().filter(|e| !e.is_empty()) {
                out.push((
                    format!("{p}.claimValidationRules[{j}].expression"),
                    e,
                    "claims",
                ));
            }
        }
        let m = &a.claim_mappings;
        if let Some(e) = m.username.expression.as_deref().filter(|e| !e.is_empty()) {
            out.push((
                format!("{p}.claimMappings.username.expression"),
                e,
                "claims",
            ));
        }
        if let Some(e) = m
            .groups
            .as_ref()
            .and_then(|g| g.expression.as_deref())
            .filter(|e| !e.is_empty())
        {
            out.push((format!("{p}.claimMappings.groups.expression"), e, "claims"));
        }
        if let Some(e) = m
            .uid
            .as_ref()
            .and_then(|g| g.expression.as_deref())
            .filter(|e| !e.is_empty())
        {
            out.push((format!("{p}.claimMappings.uid.expression"), e, "claims"));
        }
        for (j, x) in m.extra.iter().enumerate() {
            if !x.value_expression.is_empty() {
                out.push((
                    format!("{p}.claimMappings.extra[{j}].valueExpression"),
                    x.value_expression.as_str(),
                    "claims",
                ));
            }
        }
        for (j, r) in a.user_validation_rules.iter().enumerate() {
            out.push((
                format!("{p}.userValidationRules[{j}].expression"),
                r.expression.as_str(),
                "user",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::{OidcSettings, SettingsInput};

    const OK: &str = "jwt:\n- issuer: {url: 'https://a.example.com', audiences: [k]}\n  claimMappings: {username: {claim: sub, prefix: 'a:'}}\n";

    fn check(version: &str, yaml: &str) -> Result<OidcSettings, String> {
        let mut i: SettingsInput = serde_yaml_ng::from_str(yaml).expect(yaml);
        i.kubernetes_version = Some(version.into());
        OidcSettings::validate(&i, None).map_err(|e| e.to_string())
    }

    /// Each rule of k8s.io/apiserver `pkg/apis/apiserver/validation/validation.go` (function
    /// named), with its field path.
    #[test]
    fn upstream_rules_with_their_field_paths() {
        let one = |issuer: &str, rest: &str| format!("jwt:\n- issuer: {issuer}\n{rest}");
        let m = "  claimMappings: {username: {claim: sub, prefix: 'a:'}}\n";
        let rows: Vec<(&str, String, &str)> = vec![
            ("validateIssuerURL: Required", one("{audiences: [k]}", m), "invalid jwt[0].issuer.url: Required value: URL is required;"),
            ("validateURL: https", one("{url: 'http://a', audiences: [k]}", m), "invalid jwt[0].issuer.url `http://a`: Invalid value: URL scheme must be https;"),
            ("validateURL: user", one("{url: 'https://u:p@a', audiences: [k]}", m), "invalid jwt[0].issuer.url `https://u:p@a`: Invalid value: URL must not contain a username or password;"),
            ("validateURL: query", one("{url: 'https://a?x=1', audiences: [k]}", m), "invalid jwt[0].issuer.url `https://a?x=1`: Invalid value: URL must not contain a query;"),
            ("validateURL: fragment", one("{url: 'https://a#f', audiences: [k]}", m), "invalid jwt[0].issuer.url `https://a#f`: Invalid value: URL must not contain a fragment;"),
            ("validateIssuerDiscoveryURL: differs", one("{url: 'https://a/', discoveryURL: 'https://a', audiences: [k]}", m), "invalid jwt[0].issuer.discoveryURL `https://a`: Invalid value: discoveryURL must be different from URL;"),
            ("validateAudiences: Required", one("{url: 'https://a'}", m), "invalid jwt[0].issuer.audiences: Required value: at least one jwt[0].issuer.audiences is required;"),
            ("validateAudiences: empty", one("{url: 'https://a', audiences: ['']}", m), "invalid jwt[0].issuer.audiences[0]: Required value: audience can't be empty;"),
            ("validateAudiences: Duplicate", one("{url: 'https://a', audiences: [k, k], audienceMatchPolicy: MatchAny}", m), "invalid jwt[0].issuer.audiences[1] `k`: Duplicate value;"),
            ("validateAudiences: MatchAny for several", one("{url: 'https://a', audiences: [k, l]}", m), "invalid jwt[0].issuer.audienceMatchPolicy ``: Invalid value: audienceMatchPolicy must be MatchAny for multiple audiences;"),
            ("validateAudiences: single", one("{url: 'https://a', audiences: [k], audienceMatchPolicy: MatchAll}", m), "invalid jwt[0].issuer.audienceMatchPolicy `MatchAll`: Invalid value: audienceMatchPolicy must be empty or MatchAny for single audience;"),
            ("validateEgressSelector", one("{url: 'https://a', audiences: [k], egressSelectorType: etcd}", m), "invalid jwt[0].issuer.egressSelectorType `etcd`: Invalid value: egress selector must be either controlplane or cluster;"),
            ("validateClaimValidationRules: both", one("{url: 'https://a', audiences: [k]}", &format!("  claimValidationRules: [{{claim: hd, expression: 'true'}}]\n{m}")), "invalid jwt[0].claimValidationRules[0] `hd`: Invalid value: claim and expression can't both be set;"),
            ("validateClaimValidationRules: none", one("{url: 'https://a', audiences: [k]}", &format!("  claimValidationRules: [{{message: x}}]\n{m}")), "invalid jwt[0].claimValidationRules[0]: Required value: claim or expression is required;"),
            ("validateClaimValidationRules: message with claim", one("{url: 'https://a', audiences: [k]}", &format!("  claimValidationRules: [{{claim: hd, requiredValue: x, message: m}}]\n{m}")), "invalid jwt[0].claimValidationRules[0].message `m`: Invalid value: message can't be set when claim is set;"),
            ("validateClaimValidationRules: duplicate claim", one("{url: 'https://a', audiences: [k]}", &format!("  claimValidationRules: [{{claim: hd, requiredValue: x}}, {{claim: hd, requiredValue: y}}]\n{m}")), "invalid jwt[0].claimValidationRules[1].claim `hd`: Duplicate value;"),
            ("validateClaimValidationRules: requiredValue with expression", one("{url: 'https://a', audiences: [k]}", &format!("  claimValidationRules: [{{expression: 'true', requiredValue: x}}]\n{m}")), "invalid jwt[0].claimValidationRules[0].requiredValue `x`: Invalid value: requiredValue can't be set when expression is set;"),
            ("validatePrefixClaimOrExpression: prefix required", one("{url: 'https://a', audiences: [k]}", "  claimMappings: {username: {claim: sub}}\n"), "invalid jwt[0].claimMappings.username.prefix: Required value: prefix is required when claim is set. It can be set to an empty string to disable prefixing;"),
            ("validatePrefixClaimOrExpression: both", one("{url: 'https://a', audiences: [k]}", "  claimMappings: {username: {claim: sub, expression: claims.sub}}\n"), "invalid jwt[0].claimMappings.username ``: Invalid value: claim and expression can't both be set;"),
            ("validatePrefixClaimOrExpression: username required", one("{url: 'https://a', audiences: [k]}", "  claimMappings: {groups: {claim: g, prefix: 'a:'}}\n"), "invalid jwt[0].claimMappings.username: Required value: claim or expression is required;"),
            ("validatePrefixClaimOrExpression: prefix with expression", one("{url: 'https://a', audiences: [k]}", "  claimMappings: {username: {expression: claims.sub, prefix: 'a:'}}\n"), "invalid jwt[0].claimMappings.username.prefix `a:`: Invalid value: prefix can't be set when expression is set;"),
            ("validateClaimMappings: uid both", one("{url: 'https://a', audiences: [k]}", "  claimMappings: {username: {claim: sub, prefix: 'a:'}, uid: {claim: sub, expression: claims.sub}}\n"), "invalid jwt[0].claimMappings.uid ``: Invalid value: claim and expression can't both be set;"),
            ("validateClaimMappings: extra key domain", one("{url: 'https://a', audiences: [k]}", "  claimMappings: {username: {claim: sub, prefix: 'a:'}, extra: [{key: foo, valueExpression: claims.sub}]}\n"), "invalid jwt[0].claimMappings.extra[0].key `foo`: Invalid value: must be a domain-prefixed path"),
            ("validateClaimMappings: extra key lowercase", one("{url: 'https://a', audiences: [k]}", "  claimMappings: {username: {claim: sub, prefix: 'a:'}, extra: [{key: example.com/Foo, valueExpression: claims.sub}]}\n"), "invalid jwt[0].claimMappings.extra[0].key `example.com/Foo`: Invalid value: key must be lowercase;"),
            ("validateClaimMappings: extra key k8s.io", one("{url: 'https://a', audiences: [k]}", "  claimMappings: {username: {claim: sub, prefix: 'a:'}, extra: [{key: x.k8s.io/foo, valueExpression: claims.sub}]}\n"), "invalid jwt[0].claimMappings.extra[0].key `x.k8s.io/foo`: Invalid value: k8s.io, kubernetes.io and their subdomains are reserved for Kubernetes use;"),
            ("validateClaimMappings: extra valueExpression", one("{url: 'https://a', audiences: [k]}", "  claimMappings: {username: {claim: sub, prefix: 'a:'}, extra: [{key: example.com/foo}]}\n"), "invalid jwt[0].claimMappings.extra[0].valueExpression: Required value: valueExpression is required;"),
            ("validateClaimMappings: email needs email_verified", one("{url: 'https://a', audiences: [k]}", "  claimMappings: {username: {expression: claims.email}}\n  userValidationRules: [{expression: \"!user.username.startsWith('system:')\"}]\n"), "invalid jwt[0].claimMappings.username.expression `claims.email`: Invalid value: claims.email_verified must be used"),
            ("validateUserValidationRules: expression", one("{url: 'https://a', audiences: [k]}", &format!("{m}  userValidationRules: [{{message: x}}]\n")), "invalid jwt[0].userValidationRules[0].expression: Required value: expression is required;"),
            ("ValidateAuthenticationConfiguration: duplicate issuer", format!("{OK}- issuer: {{url: 'https://a.example.com', audiences: [l]}}\n{m}"), "invalid jwt[1].issuer.url `https://a.example.com`: Duplicate value;"),
            ("ValidateAuthenticationConfiguration: anonymous conditions", format!("{OK}anonymous: {{enabled: false, conditions: [{{path: /livez}}]}}\n"), "invalid anonymous.conditions: Invalid value: enabled should be set to true when conditions are defined;"),
        ];
        for (name, yaml, want) in rows {
            let got = check("1.34", &format!("auth-mode: config\n{yaml}")).expect_err(name);
            assert!(got.starts_with(want), "{name}:\n got {got}\nwant {want}");
        }
        assert!(check("1.34", OK).is_ok());
        // CEL that loses the `'` of an email check is caught by the binary's compiler, not here.
    }

    #[test]
    fn version_gates_and_modes() {
        let anon = format!("{OK}anonymous: {{enabled: true, conditions: [{{path: /livez}}]}}\n");
        assert!(check("1.33", &anon).unwrap_err().starts_with("invalid anonymous: Forbidden: k8soidc writes `anonymous` only for Kubernetes 1.34 and later"));
        assert!(check("1.34", &anon).is_ok());
        let egress = OK.replace(
            "audiences: [k]}",
            "audiences: [k], egressSelectorType: cluster}",
        );
        assert!(check("1.33", &egress).unwrap_err().starts_with("invalid jwt[0].issuer.egressSelectorType `cluster`: Forbidden: egressSelectorType exists from Kubernetes 1.34"));
        assert!(check("1.34", &egress).is_ok());
        assert_eq!(check("1.29", OK).unwrap_err(), "invalid jwt: only an AuthenticationConfiguration file (`--auth-mode config`) can carry it; --oidc-* flags hold one issuer without CEL or anonymous rules; give `--kubernetes-version 1.30` or later (and `--auth-mode config`) so it is written as an AuthenticationConfiguration");
        let s = check("1.31", OK).unwrap();
        assert_eq!(
            s.mode().unwrap(),
            crate::Mode::Config(crate::ConfigApiVersion::V1beta1)
        );
        let mut i: SettingsInput = serde_yaml_ng::from_str(OK).unwrap();
        i.kubernetes_version = Some("1.34".into());
        i.auth_mode = Some("flags".into());
        assert!(OidcSettings::validate(&i, None)
            .unwrap_err()
            .to_string()
            .ends_with("use `--auth-mode config` (with `--kubernetes-version 1.30` or later)"));
        i.auth_mode = None;
        i.issuer_url = Some("https://b.example.com".into());
        assert_eq!(OidcSettings::validate(&i, None).unwrap_err().to_string(), "invalid --issuer-url `https://b.example.com`: cannot be combined with `jwt` from the settings file; with `jwt` in the settings file every authenticator is described there; move --issuer-url into jwt[i] (e.g. `issuer.url`, `issuer.audiences`, `claimMappings`), or drop `jwt` for the single-issuer flags");
    }
}

//! How kube-apiserver turns a verified token's claims into a user with a structured
//! `jwt` authenticator, in its order (k8s.io/apiserver
//! `plugin/pkg/authenticator/token/oidc/oidc.go`, `AuthenticateToken`): username (claim with
//! prefix and the `email_verified` rule, or CEL), groups (claim as string or list, else CEL),
//! uid, extra (with the `jti` credential id), claim/requiredValue rules, CEL claim validation
//! rules, user validation rules; `system:authenticated` is added after (the union's group
//! adder). Error texts are the API server's. Also: diagnoses of common claim shapes with the
//! CEL that fixes each.

use std::collections::BTreeMap;

use backends::authn::{uses_claim, ClaimMappings, JwtAuthenticator};
use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::cel::{eval, Outcome};

/// The user an authenticator makes of the claims.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct UserInfo {
    pub(crate) username: String,
    pub(crate) uid: String,
    pub(crate) groups: Vec<String>,
    pub(crate) extra: BTreeMap<String, Vec<String>>,
}

/// The outcome for one authenticator after the token verified.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    User(UserInfo),
    /// The API server's error text.
    Rejected(String),
    /// An expression k8soidc cannot evaluate offline: `(field, why)`.
    Unknown(String, String),
}

fn go_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Evaluates CEL expression `expr` with `v` bound to `var`. An evaluation error is rejected
/// with `wrap` before it (`"{wrap}: {err}"`) or as it is (no `wrap`); an expression k8soidc
/// cannot evaluate offline is unknown, naming `field`.
fn cel(
    expr: &str,
    var: &str,
    v: &Value,
    field: String,
    wrap: Option<&str>,
) -> Result<Value, Verdict> {
    match eval(expr, &[(var, v)]) {
        Outcome::Value(v) => Ok(v),
        Outcome::Error(e) => Err(Verdict::Rejected(match wrap {
            Some(w) => format!("{w}: {e}"),
            None => e,
        })),
        Outcome::Unsupported(why) => Err(Verdict::Unknown(field, why)),
    }
}

/// `convertCELValueToStringList`: a string, a list of strings or null; empty strings dropped.
fn string_list(v: &Value) -> Result<Vec<String>, String> {
    let bad = || "expression must return a string or a list of strings".to_string();
    match v {
        Value::Null => Ok(vec![]),
        Value::String(s) if s.is_empty() => Ok(vec![]),
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) => items
            .iter()
            .filter(|i| i.as_str() != Some(""))
            .map(|i| i.as_str().map(String::from).ok_or_else(bad))
            .collect(),
        _ => Err(bad()),
    }
}

/// Applies authenticator `a` (number `i`) to verified `claims`.
pub(crate) fn evaluate(i: usize, a: &JwtAuthenticator, claims: &Map<String, Value>) -> Verdict {
    match user_info(i, a, claims) {
        Ok(user) => Verdict::User(user),
        Err(verdict) => verdict,
    }
}

/// The phases of [`evaluate`] in the API server's order; the first one that rejects the
/// token (or cannot be evaluated offline) is the verdict.
fn user_info(
    i: usize,
    a: &JwtAuthenticator,
    claims: &Map<String, Value>,
) -> Result<UserInfo, Verdict> {
    let cv = Value::Object(claims.clone());
    let m = &a.claim_mappings;
    let p = format!("jwt[{i}].claimMappings");
    let username = username(m, claims, &cv, &p)?;
    let mut groups = groups(m, claims, &cv, &p)?;
    let uid = uid(m, claims, &cv, &p)?;
    let extra = extra(m, claims, &cv, &p)?;
    required_claims(a, claims)?;
    claim_validation_rules(i, a, &cv)?;
    // user validation rules see the groups without system:authenticated yet
    let user = json!({"username": username, "uid": uid, "groups": groups, "extra": extra});
    user_validation_rules(i, a, &user)?;
    groups.push("system:authenticated".into());
    Ok(UserInfo {
        username,
        uid,
        groups,
        extra,
    })
}

/// The username: the CEL expression, else the claim (with the `email_verified` rule for
/// `email`) behind its prefix. `cv` is `claims` as a value, `p` the mappings' field path.
fn username(
    m: &ClaimMappings,
    claims: &Map<String, Value>,
    cv: &Value,
    p: &str,
) -> Result<String, Verdict> {
    if let Some(e) = m.username.expression.as_deref().filter(|e| !e.is_empty()) {
        let v = cel(
            e,
            "claims",
            cv,
            format!("{p}.username.expression"),
            Some("oidc: error evaluating username claim expression"),
        )?;
        return match v {
            Value::String(s) if s.is_empty() => Err(Verdict::Rejected("oidc: empty username via CEL expression is not allowed".into())),
            Value::String(s) => Ok(s),
            _ => Err(Verdict::Rejected("oidc: error evaluating username claim expression: username claim expression must return a string".into())),
        };
    }
    let claim = m.username.claim.clone().unwrap_or_default();
    let value = match claims.get(&claim) {
        None => return Err(Verdict::Rejected(format!("oidc: parse username claims {claim:?}: claim not present"))),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(Verdict::Rejected(format!("oidc: parse username claims {claim:?}: json: cannot unmarshal {} into Go value of type string", go_kind(other)))),
    };
    if claim == "email" {
        match claims.get("email_verified") {
            None | Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => return Err(Verdict::Rejected("oidc: email not verified".into())),
            Some(other) => return Err(Verdict::Rejected(format!("oidc: parse 'email_verified' claim: json: cannot unmarshal {} into Go value of type bool", go_kind(other)))),
        }
    }
    Ok(format!(
        "{}{value}",
        m.username.prefix.clone().unwrap_or_default()
    ))
}

/// The groups: the claim (a string or a list of strings, each behind the prefix) when the
/// token has it, else the CEL expression, else none. A distributed groups claim is unknown.
fn groups(
    m: &ClaimMappings,
    claims: &Map<String, Value>,
    cv: &Value,
    p: &str,
) -> Result<Vec<String>, Verdict> {
    let gclaim = m
        .groups
        .as_ref()
        .and_then(|g| g.claim.clone())
        .filter(|c| !c.is_empty());
    let gexpr = m
        .groups
        .as_ref()
        .and_then(|g| g.expression.clone())
        .filter(|c| !c.is_empty());
    if let Some(c) = &gclaim {
        let distributed = claims.get("_claim_names").and_then(|n| n.get(c)).is_some();
        if distributed && !claims.contains_key(c) {
            return Err(Verdict::Unknown(
                format!("{p}.groups.claim"),
                format!("`{c}` is a distributed claim (`_claim_names`): kube-apiserver fetches it from the `_claim_sources` endpoint, which k8soidc does not call offline (for Entra ID, Microsoft Graph refuses the call without an access token and the API server logs `oidc: could not expand distributed claims`)"),
            ));
        }
    }
    match (
        gclaim.as_ref().and_then(|c| claims.get(c).map(|v| (c, v))),
        &gexpr,
    ) {
        (Some((c, v)), _) => {
            let prefix = m
                .groups
                .as_ref()
                .and_then(|g| g.prefix.clone())
                .unwrap_or_default();
            let list = match v {
                Value::String(s) => vec![s.clone()],
                Value::Array(items) => {
                    let mut out = Vec::new();
                    for it in items {
                        match it {
                            Value::String(s) => out.push(s.clone()),
                            other => return Err(Verdict::Rejected(format!("oidc: parse groups claim {c:?}: json: cannot unmarshal {} into Go value of type string", go_kind(other)))),
                        }
                    }
                    out
                }
                other => return Err(Verdict::Rejected(format!("oidc: parse groups claim {c:?}: json: cannot unmarshal {} into Go value of type string", go_kind(other)))),
            };
            Ok(list.into_iter().map(|g| format!("{prefix}{g}")).collect())
        }
        (None, Some(e)) => {
            let v = cel(
                e,
                "claims",
                cv,
                format!("{p}.groups.expression"),
                Some("oidc: error evaluating group claim expression"),
            )?;
            string_list(&v).map_err(|err| {
                Verdict::Rejected(format!(
                    "oidc: error evaluating group claim expression: {err}"
                ))
            })
        }
        (None, None) => Ok(Vec::new()),
    }
}

/// The uid: the claim, else the CEL expression, else empty.
fn uid(
    m: &ClaimMappings,
    claims: &Map<String, Value>,
    cv: &Value,
    p: &str,
) -> Result<String, Verdict> {
    let Some(u) = &m.uid else {
        return Ok(String::new());
    };
    if let Some(c) = u.claim.as_deref().filter(|c| !c.is_empty()) {
        return match claims.get(c) {
            None => Err(Verdict::Rejected(format!("oidc: parse uid claim {c:?}: claim not present"))),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(Verdict::Rejected(format!("oidc: parse uid claim {c:?}: json: cannot unmarshal {} into Go value of type string", go_kind(other)))),
        };
    }
    let Some(e) = u.expression.as_deref().filter(|e| !e.is_empty()) else {
        return Ok(String::new());
    };
    let v = cel(
        e,
        "claims",
        cv,
        format!("{p}.uid.expression"),
        Some("oidc: error evaluating uid claim expression"),
    )?;
    match v {
        Value::String(s) => Ok(s),
        _ => Err(Verdict::Rejected("oidc: error evaluating uid claim expression: uid claim expression must return a string".into())),
    }
}

/// The extra attributes: the credential id of a string `jti` (getCredentialID), then each
/// mapping's value expression (an empty list adds nothing).
fn extra(
    m: &ClaimMappings,
    claims: &Map<String, Value>,
    cv: &Value,
    p: &str,
) -> Result<BTreeMap<String, Vec<String>>, Verdict> {
    let mut extra = BTreeMap::new();
    if let Some(Value::String(jti)) = claims.get("jti") {
        extra.insert(
            "authentication.kubernetes.io/credential-id".to_string(),
            vec![format!("JTI={jti}")],
        );
    }
    for (j, x) in m.extra.iter().enumerate() {
        let v = cel(
            &x.value_expression,
            "claims",
            cv,
            format!("{p}.extra[{j}].valueExpression"),
            None,
        )?;
        match string_list(&v) {
            Ok(list) if list.is_empty() => {}
            Ok(list) => {
                extra.insert(x.key.clone(), list);
            }
            Err(err) => {
                return Err(Verdict::Rejected(format!(
                    "oidc: error evaluating extra claim expression: {}: {err}",
                    x.value_expression
                )))
            }
        }
    }
    Ok(extra)
}

/// The claim/requiredValue validation rules (requiredClaims): each claim present, a string,
/// equal to its required value.
fn required_claims(a: &JwtAuthenticator, claims: &Map<String, Value>) -> Result<(), Verdict> {
    for r in &a.claim_validation_rules {
        let Some(c) = r.claim.as_deref().filter(|c| !c.is_empty()) else {
            continue;
        };
        let want = r.required_value.clone().unwrap_or_default();
        match claims.get(c) {
            None => {
                return Err(Verdict::Rejected(format!(
                    "oidc: required claim {c} not present in ID token"
                )))
            }
            Some(Value::String(got)) if *got == want => {}
            Some(Value::String(got)) => {
                return Err(Verdict::Rejected(format!(
                    "oidc: required claim {c} value does not match. Got = {got}, want = {want}"
                )))
            }
            Some(other) => {
                return Err(Verdict::Rejected(format!(
                    "oidc: parse claim {c}: json: cannot unmarshal {} into Go value of type string",
                    go_kind(other)
                )))
            }
        }
    }
    Ok(())
}

/// The CEL claim validation rules of authenticator `a` (number `i`): each must be true.
fn claim_validation_rules(i: usize, a: &JwtAuthenticator, cv: &Value) -> Result<(), Verdict> {
    for (j, r) in a.claim_validation_rules.iter().enumerate() {
        let Some(e) = r.expression.as_deref().filter(|e| !e.is_empty()) else {
            continue;
        };
        let v = cel(
            e,
            "claims",
            cv,
            format!("jwt[{i}].claimValidationRules[{j}].expression"),
            Some("oidc: error evaluating claim validation expression"),
        )?;
        match v {
            Value::Bool(true) => {}
            Value::Bool(false) => return Err(Verdict::Rejected(format!("oidc: error evaluating claim validation expression: validation expression '{e}' failed: {}", r.message.clone().unwrap_or_default()))),
            _ => return Err(Verdict::Rejected("oidc: error evaluating claim validation expression: validation expression must return a boolean".into())),
        }
    }
    Ok(())
}

/// The user validation rules of authenticator `a` (number `i`) over `user`: each must be
/// true.
fn user_validation_rules(i: usize, a: &JwtAuthenticator, user: &Value) -> Result<(), Verdict> {
    for (j, r) in a.user_validation_rules.iter().enumerate() {
        let v = cel(
            &r.expression,
            "user",
            user,
            format!("jwt[{i}].userValidationRules[{j}].expression"),
            Some("oidc: error evaluating user info validation rule"),
        )?;
        match v {
            Value::Bool(true) => {}
            Value::Bool(false) => return Err(Verdict::Rejected(format!("oidc: error evaluating user info validation rule: validation expression '{}' failed: {}", r.expression, r.message.clone().unwrap_or_default()))),
            _ => return Err(Verdict::Rejected("oidc: error evaluating user info validation rule: validation expression must return a boolean".into())),
        }
    }
    Ok(())
}

/// A claim shape that explains a surprise, and the change that fixes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Diagnosis {
    pub(crate) finding: String,
    pub(crate) fix: String,
}

/// Diagnoses the claims against authenticator `a` (or the issuer it expects).
pub(crate) fn diagnose(a: &JwtAuthenticator, claims: &Map<String, Value>) -> Vec<Diagnosis> {
    let mut out = Vec::new();
    let mut add = |finding: String, fix: String| out.push(Diagnosis { finding, fix });
    let m = &a.claim_mappings;
    let gclaim = m
        .groups
        .as_ref()
        .and_then(|g| g.claim.clone())
        .filter(|c| !c.is_empty());
    let overage = claims
        .get("_claim_names")
        .and_then(|n| n.get("groups"))
        .is_some();
    if overage && !claims.contains_key("groups") {
        add(
            "Entra ID group overage: the token carries `_claim_names.groups`/`_claim_sources` instead of `groups` (more than 200 groups); kube-apiserver tries to fetch them as distributed claims, which Microsoft Graph refuses without an access token".into(),
            "emit only the groups assigned to the application (manifest `groupMembershipClaims: \"ApplicationGroup\"`), or map app roles: `claimMappings.groups.expression: \"claims.?roles.orValue([])\"`".into(),
        );
    } else if let Some(c) = &gclaim {
        match claims.get(c) {
            None => add(
                format!("the token has no `{c}` claim, so the user gets no groups"),
                format!("make the provider send it (the `groups` scope, a groups mapper or claim), or tolerate its absence explicitly: `claimMappings.groups.expression: \"claims.?{c}.orValue([])\"`"),
            ),
            Some(Value::String(s)) if s.contains(',') => add(
                format!("`{c}` is one string ({s:?}); kube-apiserver takes it as a single group"),
                format!("split it: `claimMappings.groups.expression: \"claims.{c}.split(',')\"`"),
            ),
            Some(Value::String(_)) => add(
                format!("`{c}` is a string, not a list: kube-apiserver takes it as one group"),
                "nothing to change if one group is meant; otherwise make the provider send a list".into(),
            ),
            Some(Value::Array(items)) if items.iter().any(|g| g.as_str().is_some_and(|g| g.starts_with('/'))) => add(
                format!("`{c}` holds Keycloak group paths (`/team`); RBAC subjects must then name `/team`"),
                format!("strip the leading `/`: `claimMappings.groups.expression: \"claims.{c}.map(g, g.startsWith('/') ? g.substring(1) : g)\"` (or turn off \"Full group path\" in Keycloak's group mapper)"),
            ),
            _ => {}
        }
    }
    if let Some(Value::String(iss)) = claims.get("iss") {
        let url = &a.issuer.url;
        let v1 = |u: &str| u.starts_with("https://sts.windows.net/");
        let v2 = |u: &str| u.starts_with("https://login.microsoftonline.com/");
        if (v1(iss) && v2(url)) || (v2(iss) && v1(url)) {
            add(
                format!("Entra ID issuer mismatch: the token's `iss` is {iss:?} ({}) but the authenticator expects {url:?} ({})", if v1(iss) { "v1 token" } else { "v2 token" }, if v1(url) { "v1" } else { "v2" }),
                "set `accessTokenAcceptedVersion: 2` in the app registration's manifest for v2 tokens (`https://login.microsoftonline.com/<tenant>/v2.0`), or set the authenticator's `issuer.url` to the token's `iss`".into(),
            );
        }
    }
    let uses_email = m.username.claim.as_deref() == Some("email")
        || m.username
            .expression
            .as_deref()
            .is_some_and(|e| uses_claim(e, "email"));
    if uses_email {
        match claims.get("email_verified") {
            None => add(
                "`email_verified` is absent: kube-apiserver accepts the email unchecked with `claim: email`".into(),
                "if the provider does not verify addresses, require it: `claimValidationRules: [{expression: \"claims.?email_verified.orValue(false) == true\", message: \"email not verified\"}]`, or use `sub`".into(),
            ),
            Some(Value::Bool(false)) => add(
                "`email_verified` is false: kube-apiserver refuses the token (\"oidc: email not verified\")".into(),
                "verify the address at the provider, or map another claim (`--username-claim sub`, or `claimMappings.username.claim: sub` with a prefix)".into(),
            ),
            Some(Value::String(s)) => add(
                format!("`email_verified` is the string {s:?}, not a boolean: with `claim: email` kube-apiserver refuses the token (cannot unmarshal string into bool)"),
                "map the username by expression and check the string: `claimMappings.username.expression: \"claims.email\"` with `claimValidationRules: [{expression: \"string(claims.email_verified) == 'true'\", message: \"email not verified\"}]`".into(),
            ),
            _ => {}
        }
    }
    out
}

//! How kube-apiserver turns an ID token's claims into a user: the username (claim, prefix,
//! `email_verified`), the groups (string or array, prefix) and `system:authenticated`.
//! Follows `staging/src/k8s.io/apiserver/plugin/pkg/authenticator/token/oidc/oidc.go`.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::OidcSettings;

/// The user a token becomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// Username, prefix included.
    pub username: String,
    /// Groups, prefixes included, then `system:authenticated`.
    pub groups: Vec<String>,
}

/// Maps claims to the user, or returns the error text kube-apiserver would log.
pub fn from_claims(s: &OidcSettings, claims: &Map<String, Value>) -> Result<Identity, String> {
    let claim = &s.username_claim;
    let value = match claims.get(claim) {
        None => return Err(format!("oidc: parse username claims {claim:?}: claim not present")),
        Some(Value::String(v)) => v.clone(),
        Some(other) => return Err(format!("oidc: parse username claims {claim:?}: json: cannot unmarshal {} into Go value of type string", json_kind(other))),
    };
    if claim == "email" {
        match claims.get("email_verified") {
            None => {}
            Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => return Err("oidc: email not verified".to_string()),
            Some(other) => return Err(format!("oidc: parse 'email_verified' claim: json: cannot unmarshal {} into Go value of type bool", json_kind(other))),
        }
    }
    let username = format!("{}{}", s.effective_username_prefix(), value);
    let mut groups = Vec::new();
    if let Some(gclaim) = &s.groups_claim {
        let prefix = s.effective_groups_prefix();
        match claims.get(gclaim) {
            None | Some(Value::Null) => {}
            Some(Value::String(g)) => groups.push(format!("{prefix}{g}")),
            Some(Value::Array(items)) => {
                for item in items {
                    match item {
                        Value::String(g) => groups.push(format!("{prefix}{g}")),
                        other => return Err(format!("oidc: parse groups claim {gclaim:?}: json: cannot unmarshal {} into Go value of type string", json_kind(other))),
                    }
                }
            }
            Some(other) => return Err(format!("oidc: parse groups claim {gclaim:?}: json: cannot unmarshal {} into Go value of type []string", json_kind(other))),
        }
    }
    for (k, want) in &s.required_claims {
        match claims.get(k) {
            None => return Err(format!("oidc: required claim {k} not present in ID token")),
            Some(Value::String(got)) if got == want => {}
            Some(Value::String(got)) => {
                return Err(format!(
                    "oidc: required claim {k} value does not match. Got = {got}, want = {want}"
                ))
            }
            Some(other) => {
                return Err(format!(
                    "oidc: parse claim {k}: json: cannot unmarshal {} into Go value of type string",
                    json_kind(other)
                ))
            }
        }
    }
    groups.push("system:authenticated".to_string());
    Ok(Identity { username, groups })
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// A plausible token for these settings, for `render` to show what it becomes.
pub fn sample_claims(s: &OidcSettings) -> Map<String, Value> {
    let mut c = Map::new();
    c.insert("iss".into(), Value::String(s.issuer_url.clone()));
    c.insert("aud".into(), Value::String(s.client_id.clone()));
    c.insert("sub".into(), Value::String("00u1a2b3c4".into()));
    c.insert("email".into(), Value::String("jane@example.com".into()));
    c.insert("email_verified".into(), Value::Bool(true));
    if !c.contains_key(&s.username_claim) {
        c.insert(s.username_claim.clone(), Value::String("jane".into()));
    }
    if let Some(g) = &s.groups_claim {
        c.insert(
            g.clone(),
            Value::Array(vec![Value::String("k8s-admins".into())]),
        );
    }
    for (k, v) in &s.required_claims {
        c.insert(k.clone(), Value::String(v.clone()));
    }
    c
}

/// One line: "a token with … becomes user … in groups …".
pub fn describe_sample(s: &OidcSettings) -> String {
    let claims = sample_claims(s);
    let shown: Vec<String> = std::iter::once(&s.username_claim)
        .chain(s.groups_claim.iter())
        .filter_map(|k| claims.get(k).map(|v| format!("{k}={v}")))
        .collect();
    match from_claims(s, &claims) {
        Ok(id) => format!(
            "a token with {} becomes user {:?} in groups {}",
            shown.join(", "),
            id.username,
            id.groups
                .iter()
                .map(|g| format!("{g:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(e) => format!("a token with {} is rejected: {e}", shown.join(", ")),
    }
}

//! How kube-apiserver turns an ID token's claims into a user: the username (claim, prefix,
//! `email_verified`), the groups (string or array, prefix) and `system:authenticated`.
//! Follows `staging/src/k8s.io/apiserver/plugin/pkg/authenticator/token/oidc/oidc.go`
//! (`AuthenticateToken`: `hasCorrectIssuer`, then `verifier.Verify` wrapped as
//! "oidc: verify token: %v", then the claims) and coreos/go-oidc `verify.go` (`Verify`: issuer,
//! audience "oidc: expected audience %q got %q", expiry "oidc: token is expired (Token Expiry: %v)"
//! without leeway, nbf with a 1-minute leeway (go-oidc v2, which kube-apiserver vendors as
//! `github.com/coreos/go-oidc v2.x+incompatible`; v3 would allow 5 minutes), algorithm "oidc: id token signed with unsupported
//! algorithm, expected %q got %q", then the signature "failed to verify signature: %v" with
//! `jwks.go`'s "failed to verify id token signature").

use serde::Serialize;
use serde_json::{Map, Value};

use crate::OidcSettings;

/// The user a token becomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
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

/// A JWT split into its parts. The signature stays here only to be verified, never shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The JOSE header.
    pub header: Map<String, Value>,
    /// The payload claims.
    pub claims: Map<String, Value>,
    /// `base64url(header).base64url(payload)`, the signed bytes.
    pub signing_input: String,
    /// The third part, base64url (to verify only; never print it).
    pub signature: String,
}

/// Splits and decodes a compact JWT, with go-oidc's error texts (`verify.go` `parseJWT`).
pub fn parse_token(raw: &str) -> Result<Token, String> {
    use base64::Engine;
    let raw = raw.trim();
    let raw = raw.strip_prefix("Bearer ").unwrap_or(raw);
    let parts: Vec<&str> = raw.split('.').collect();
    if parts.len() != 3 {
        return Err(format!(
            "oidc: malformed jwt, expected 3 parts got {}",
            parts.len()
        ));
    }
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let decode = |what: &str, part: &str| -> Result<Map<String, Value>, String> {
        let bytes = b64
            .decode(part)
            .map_err(|e| format!("oidc: malformed jwt {what}: {e}"))?;
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            Ok(_) => Err(format!(
                "oidc: failed to unmarshal {what}: not a JSON object"
            )),
            Err(e) => Err(format!("oidc: failed to unmarshal {what}: {e}")),
        }
    };
    Ok(Token {
        header: decode("header", parts[0])?,
        claims: decode("payload", parts[1])?,
        signing_input: format!("{}.{}", parts[0], parts[1]),
        signature: parts[2].to_string(),
    })
}

/// The UTC civil date and time of a Unix time: (year, month, day, hour, minute, second),
/// by Howard Hinnant's civil-from-days algorithm (no calendar crate needed).
pub fn civil_utc(secs: i64) -> (i64, i64, i64, i64, i64, i64) {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Go's `time.Time` `%v` for a UTC instant: `2006-01-02 15:04:05 +0000 UTC`.
pub fn go_time_utc(secs: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil_utc(secs);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02} +0000 UTC")
}

/// One step of the verification, as kube-apiserver runs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verified {
    /// Step name (`issuer`, `audience`, `expiry`, `not-before`, `algorithm`).
    pub name: &'static str,
    /// What was checked and found.
    pub detail: String,
}

/// Why kube-apiserver does not authenticate the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejection {
    /// The failing step.
    pub step: &'static str,
    /// The text kube-apiserver logs (empty when the OIDC authenticator silently skips the token).
    pub apiserver_error: String,
    /// Plain explanation and fix.
    pub explanation: String,
}

fn num(claims: &Map<String, Value>, k: &str) -> Option<i64> {
    claims.get(k).and_then(|v| v.as_f64()).map(|f| f as i64)
}

/// The checks before the signature, in go-oidc's order (`verify.go` `IDTokenVerifier.Verify`),
/// preceded by kube-apiserver's `hasCorrectIssuer` (`oidc.go`). `now` is Unix seconds.
pub fn verify_claims(s: &OidcSettings, t: &Token, now: i64) -> Result<Vec<Verified>, Rejection> {
    let mut ok = Vec::new();
    let wrap = |step, text: String, explanation: String| Rejection {
        step,
        apiserver_error: format!("oidc: verify token: {text}"),
        explanation,
    };
    // oidc.go AuthenticateToken: `if !hasCorrectIssuer(a.issuerURL, token) { return nil, false, nil }`
    let iss = t
        .claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if iss != s.issuer_url {
        return Err(Rejection {
            step: "issuer",
            apiserver_error: String::new(),
            explanation: format!("`iss` is {iss:?}, not {:?}: kube-apiserver's OIDC authenticator skips the token without logging an error (hasCorrectIssuer) and the request gets 401 Unauthorized; the issuer must match byte for byte", s.issuer_url),
        });
    }
    ok.push(Verified {
        name: "issuer",
        detail: format!("iss {iss:?} equals --issuer-url"),
    });
    // go-oidc verify.go: `oidc: expected audience %q got %q` (Go %q of []string).
    let aud: Vec<String> = match t.claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    };
    if !aud.contains(&s.client_id) {
        let got = format!(
            "[{}]",
            aud.iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        return Err(wrap(
            "audience",
            format!("oidc: expected audience {:?} got {got}", s.client_id),
            format!("the token is for {got}, not --client-id {:?}: request it for that client, or fix --client-id", s.client_id),
        ));
    }
    ok.push(Verified {
        name: "audience",
        detail: format!("aud contains {:?}", s.client_id),
    });
    // go-oidc verify.go: `if t.Expiry.Before(nowTime)` -> TokenExpiredError, no leeway.
    let exp = num(&t.claims, "exp");
    match exp {
        Some(e) if e >= now => ok.push(Verified {
            name: "expiry",
            detail: format!("exp {} ({}s from now)", go_time_utc(e), e - now),
        }),
        _ => {
            let shown = exp
                .map(go_time_utc)
                .unwrap_or_else(|| "0001-01-01 00:00:00 +0000 UTC".into());
            return Err(wrap(
                "expiry",
                format!("oidc: token is expired (Token Expiry: {shown})"),
                "get a fresh token (kubelogin refreshes it; check the clocks if it is new)".into(),
            ));
        }
    }
    // go-oidc v2 verify.go: `leeway := 1 * time.Minute; if nowTime.Add(leeway).Before(nbfTime)`.
    if let Some(nbf) = num(&t.claims, "nbf") {
        if now + 60 < nbf {
            return Err(wrap(
                "not-before",
                format!(
                    "oidc: current time {} before the nbf (not before) time: {}",
                    go_time_utc(now),
                    go_time_utc(nbf)
                ),
                "the token is not valid yet: check the clocks of the provider and the API server"
                    .into(),
            ));
        }
        ok.push(Verified {
            name: "not-before",
            detail: format!("nbf {} has passed", go_time_utc(nbf)),
        });
    }
    // go-oidc verify.go: `oidc: id token signed with unsupported algorithm, expected %q got %q`.
    let allowed = s
        .signing_algs
        .clone()
        .unwrap_or_else(|| vec!["RS256".to_string()]);
    let alg = t
        .header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !allowed.iter().any(|a| a == alg) {
        return Err(wrap(
            "algorithm",
            format!(
                "oidc: id token signed with unsupported algorithm, expected [{}] got {alg:?}",
                allowed
                    .iter()
                    .map(|a| format!("{a:?}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            format!(
                "add `{alg}` to --signing-algs, or make the provider sign with {}",
                allowed.join(", ")
            ),
        ));
    }
    ok.push(Verified {
        name: "algorithm",
        detail: format!("{alg} is allowed"),
    });
    Ok(ok)
}

/// The rejection for a bad signature (go-oidc `verify.go` + `jwks.go`).
pub fn signature_rejection(detail: &str) -> Rejection {
    Rejection {
        step: "signature",
        apiserver_error: "oidc: verify token: failed to verify signature: failed to verify id token signature".into(),
        explanation: format!("{detail}: the token was not signed by a key in the provider's JWKS (another provider or realm, or rotated keys)"),
    }
}

/// The rejection for a claim-mapping error from [`from_claims`].
pub fn claims_rejection(text: String) -> Rejection {
    let explanation = if text.contains("email not verified") {
        "the claim is `email` and `email_verified` is false: verify the address at the provider, or use another --username-claim".to_string()
    } else if text.contains("required claim") {
        "a --required-claim does not hold in this token".to_string()
    } else {
        "the token lacks a claim the settings read, or has the wrong type".to_string()
    };
    Rejection {
        step: "claims",
        apiserver_error: text,
        explanation,
    }
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(go_time_utc(0), "1970-01-01 00:00:00 +0000 UTC");
        assert_eq!(go_time_utc(951_782_400), "2000-02-29 00:00:00 +0000 UTC");
        assert_eq!(go_time_utc(1_795_882_345), "2026-11-28 16:12:25 +0000 UTC");
        assert_eq!(go_time_utc(-1), "1969-12-31 23:59:59 +0000 UTC");
    }
}

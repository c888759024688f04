//! Preflight verdicts on what the provider publishes: the discovery document and the JWKS.
//! The binary fetches them; this module judges them (pure, so every rule is unit-tested).
//!
//! Facts:
//! - kube-apiserver (through coreos/go-oidc `oidc.go` `NewProvider`) fetches
//!   `strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"` and refuses a document
//!   whose `issuer` differs from the configured one: "oidc: issuer did not match the issuer
//!   returned by provider, expected %q got %q".
//! - It verifies ID tokens with the keys at `jwks_uri` (go-oidc `jwks.go`), only with the
//!   algorithms of `--oidc-signing-algs` (default RS256; kube-apiserver `options/authentication.go`).
//! - The claims the settings read must be in the token, so the client must ask for the scopes
//!   that carry them (`email`, `groups`, `offline_access` for refresh tokens).

use serde::Serialize;
use serde_json::Value;

use crate::OidcSettings;

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    /// Fine.
    Pass,
    /// Works, but worth a look.
    Warn,
    /// Will not work.
    Fail,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        })
    }
}

/// One line of the preflight table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Short name, e.g. `issuer-match`.
    pub name: String,
    /// Verdict.
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// What to do (always given for FAIL).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    /// A PASS.
    pub fn pass(name: &str, detail: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            status: Status::Pass,
            detail: detail.into(),
            fix: None,
        }
    }
    /// A WARN with advice.
    pub fn warn(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    /// A FAIL with its fix.
    pub fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            name: name.into(),
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The table as text: `STATUS  NAME  DETAIL`, then `fix:` lines under WARN and FAIL.
pub fn table(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in checks {
        out.push_str(&format!("{}  {:width$}  {}\n", c.status, c.name, c.detail));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("      {:width$}  fix: {fix}\n", ""));
        }
    }
    out
}

/// Where kube-apiserver (go-oidc) looks for the discovery document.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// The algorithms the API server will accept.
pub fn allowed_algs(s: &OidcSettings) -> Vec<String> {
    s.signing_algs
        .clone()
        .unwrap_or_else(|| vec!["RS256".to_string()])
}

fn algs_flag_fix(offered: &[String]) -> String {
    match offered.first() {
        Some(_) => format!(
            "set `--signing-algs {}` (what the provider signs with)",
            offered.join(",")
        ),
        None => "set --signing-algs to the provider's algorithm".to_string(),
    }
}

/// Judges the discovery document: issuer match, signing algorithms, scopes, https `jwks_uri`.
pub fn check_discovery(s: &OidcSettings, doc: &Value) -> Vec<Check> {
    let mut out = Vec::new();
    match doc.get("issuer").and_then(Value::as_str) {
        None => out.push(Check::fail(
            "issuer-match",
            "the discovery document has no `issuer`",
            "check that the URL is the provider's issuer",
        )),
        Some(theirs) if theirs == s.issuer_url => out.push(Check::pass(
            "issuer-match",
            format!("discovery `issuer` is {theirs:?}, byte for byte"),
        )),
        Some(theirs) => {
            let fix = if theirs.trim_end_matches('/') == s.issuer_url.trim_end_matches('/') {
                if theirs.ends_with('/') {
                    format!("the provider's issuer ends with `/` and yours does not: use `--issuer-url {theirs}` (tokens carry it with the slash)")
                } else {
                    format!("yours ends with `/` and the provider's does not: use `--issuer-url {theirs}`")
                }
            } else {
                format!("use `--issuer-url {theirs}` exactly, or fix the provider's configured issuer/hostname")
            };
            out.push(Check::fail(
                "issuer-match",
                format!("discovery `issuer` is {theirs:?}, ours is {:?}; kube-apiserver refuses: oidc: issuer did not match the issuer returned by provider, expected {:?} got {theirs:?}", s.issuer_url, s.issuer_url),
                fix,
            ));
        }
    }
    let allowed = allowed_algs(s);
    match doc
        .get("id_token_signing_alg_values_supported")
        .and_then(Value::as_array)
    {
        None => out.push(Check::warn(
            "signing-algs",
            "the discovery document lists no id_token_signing_alg_values_supported",
            format!(
                "make sure the provider signs ID tokens with one of {}",
                allowed.join(", ")
            ),
        )),
        Some(list) => {
            let offered: Vec<String> = list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            let common: Vec<&String> = offered.iter().filter(|a| allowed.contains(a)).collect();
            if common.is_empty() {
                out.push(Check::fail(
                    "signing-algs",
                    format!(
                        "the provider signs with {}; the API server accepts only {}",
                        offered.join(", "),
                        allowed.join(", ")
                    ),
                    algs_flag_fix(&offered),
                ));
            } else {
                out.push(Check::pass(
                    "signing-algs",
                    format!(
                        "{} offered by the provider and accepted",
                        common
                            .iter()
                            .map(|a| a.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
    }
    let needed: Vec<&str> = s.scopes().into_iter().filter(|x| *x != "openid").collect();
    match doc.get("scopes_supported").and_then(Value::as_array) {
        None => out.push(Check::warn(
            "scopes",
            "the discovery document lists no scopes_supported",
            format!("make sure the client may request {}", needed.join(", ")),
        )),
        Some(list) => {
            let missing: Vec<&str> = needed
                .iter()
                .copied()
                .filter(|n| !list.iter().any(|v| v.as_str() == Some(n)))
                .collect();
            if missing.is_empty() {
                out.push(Check::pass(
                    "scopes",
                    format!("supports {}", needed.join(", ")),
                ));
            } else {
                out.push(Check::warn(
                    "scopes",
                    format!("scopes_supported lacks {}", missing.join(", ")),
                    "the claims may still come through other scopes (e.g. a mapper on `profile`); check a real token with `k8soidc explain`",
                ));
            }
        }
    }
    match doc.get("jwks_uri").and_then(Value::as_str) {
        Some(u) if u.starts_with("https://") => out.push(Check::pass(
            "https",
            "issuer and jwks_uri are https".to_string(),
        )),
        Some(u) => out.push(Check::fail(
            "https",
            format!("jwks_uri {u:?} is not https"),
            "configure the provider to publish https URLs (behind a proxy: set its external URL / X-Forwarded-Proto)",
        )),
        None => out.push(Check::fail(
            "https",
            "the discovery document has no jwks_uri",
            "the provider must publish its keys; check its OIDC configuration",
        )),
    }
    out
}

fn kty_for(alg: &str) -> (&'static str, Option<&'static str>) {
    match alg {
        "ES256" => ("EC", Some("P-256")),
        "ES384" => ("EC", Some("P-384")),
        "ES512" => ("EC", Some("P-521")),
        _ => ("RSA", None),
    }
}

/// Judges the key set: RSA/EC signing keys with a `kid`, at least one usable with an allowed alg.
pub fn check_jwks(s: &OidcSettings, jwks: &Value) -> Check {
    let allowed = allowed_algs(s);
    let Some(keys) = jwks.get("keys").and_then(Value::as_array) else {
        return Check::fail(
            "jwks",
            "the JWKS has no `keys` array",
            "point jwks_uri at the provider's key set",
        );
    };
    let mut usable = Vec::new();
    let mut skipped = Vec::new();
    for k in keys {
        let kid = k.get("kid").and_then(Value::as_str);
        let kty = k.get("kty").and_then(Value::as_str).unwrap_or("?");
        let alg = k.get("alg").and_then(Value::as_str);
        let crv = k.get("crv").and_then(Value::as_str);
        if k.get("use").and_then(Value::as_str) == Some("enc") {
            skipped.push(format!("{} (use enc)", kid.unwrap_or("?")));
            continue;
        }
        let complete = match kty {
            "RSA" => k.get("n").is_some() && k.get("e").is_some(),
            "EC" => k.get("x").is_some() && k.get("y").is_some() && crv.is_some(),
            _ => false,
        };
        let Some(kid) = kid else {
            skipped.push(format!("a {kty} key without kid"));
            continue;
        };
        if !complete {
            skipped.push(format!("{kid} ({kty}, not a usable RSA/EC public key)"));
            continue;
        }
        let fits = allowed.iter().any(|a| match alg {
            Some(ka) => ka == a,
            None => {
                let (t, c) = kty_for(a);
                t == kty && (c.is_none() || c == crv)
            }
        });
        if fits {
            usable.push(format!(
                "{kid} ({kty}{})",
                alg.map(|a| format!(" {a}")).unwrap_or_default()
            ));
        } else {
            skipped.push(format!(
                "{kid} ({kty}{}, not for {})",
                alg.map(|a| format!(" {a}")).unwrap_or_default(),
                allowed.join(",")
            ));
        }
    }
    if usable.is_empty() {
        Check::fail(
            "jwks",
            format!(
                "no key usable with {}{}",
                allowed.join(", "),
                if skipped.is_empty() {
                    String::new()
                } else {
                    format!(": {}", skipped.join(", "))
                }
            ),
            "set --signing-algs to the algorithm of the provider's keys, or add a signing key for it",
        )
    } else {
        Check::pass(
            "jwks",
            format!("{} usable key(s): {}", usable.len(), usable.join(", ")),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{settings, with};
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "issuer": "https://idp.example.com",
            "jwks_uri": "https://idp.example.com/jwks",
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "scopes_supported": ["openid", "email", "groups", "offline_access"]
        })
    }

    fn status(cs: &[Check], name: &str) -> Status {
        cs.iter().find(|c| c.name == name).unwrap().status
    }

    #[test]
    fn all_good() {
        let cs = check_discovery(&settings(), &doc());
        assert!(cs.iter().all(|c| c.status == Status::Pass), "{cs:?}");
    }

    #[test]
    fn trailing_slash_gets_precise_hint() {
        let mut d = doc();
        d["issuer"] = json!("https://idp.example.com/");
        let cs = check_discovery(&settings(), &d);
        let c = cs.iter().find(|c| c.name == "issuer-match").unwrap();
        assert_eq!(c.status, Status::Fail);
        assert!(
            c.fix
                .as_ref()
                .unwrap()
                .contains("ends with `/` and yours does not"),
            "{c:?}"
        );
    }

    #[test]
    fn algs_and_scopes() {
        let s = with(|i| i.signing_algs = Some("PS256".into()));
        let cs = check_discovery(&s, &doc());
        assert_eq!(status(&cs, "signing-algs"), Status::Fail);
        let mut d = doc();
        d["scopes_supported"] = json!(["openid", "email"]);
        let cs = check_discovery(&settings(), &d);
        assert_eq!(status(&cs, "scopes"), Status::Warn);
        d["jwks_uri"] = json!("http://idp/jwks");
        assert_eq!(
            status(&check_discovery(&settings(), &d), "https"),
            Status::Fail
        );
        assert_eq!(
            discovery_url("https://a/b/"),
            "https://a/b/.well-known/openid-configuration"
        );
    }

    #[test]
    fn jwks_rules() {
        let rsa = json!({"kty": "RSA", "kid": "k1", "n": "AQAB", "e": "AQAB"});
        assert_eq!(
            check_jwks(&settings(), &json!({"keys": [rsa]})).status,
            Status::Pass
        );
        let nokid = json!({"kty": "RSA", "n": "AQAB", "e": "AQAB"});
        assert_eq!(
            check_jwks(&settings(), &json!({"keys": [nokid]})).status,
            Status::Fail
        );
        let ec = json!({"kty": "EC", "kid": "e1", "crv": "P-256", "x": "a", "y": "b"});
        assert_eq!(
            check_jwks(&settings(), &json!({"keys": [ec.clone()]})).status,
            Status::Fail
        );
        let s = with(|i| i.signing_algs = Some("ES256".into()));
        assert_eq!(check_jwks(&s, &json!({"keys": [ec]})).status, Status::Pass);
        let t = table(&[Check::fail("x", "bad", "do y")]);
        assert_eq!(t, "FAIL  x  bad\n         fix: do y\n");
    }
}

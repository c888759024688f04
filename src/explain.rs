//! `k8soidc explain`: verifies an ID token as kube-apiserver does (issuer, audience, expiry,
//! not-before, algorithm, signature against the JWKS, then the claims), prints the user and
//! groups it becomes, or the exact error the API server would log; optionally which RBAC
//! bindings match and which nearly do. The raw token and its signature are never printed.

use std::io::Write;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use backends::authn::JwtAuthenticator;
use backends::identity::{
    claims_rejection, from_claims, parse_token, signature_rejection, verify_claims, Identity,
    Rejection, Token, Verified,
};
use backends::rbac::{matches, parse_bindings, Matches};
use backends::OidcSettings;
use serde::Serialize;
use serde_json::Value;

use crate::cli::{ExplainArgs, Output};
use crate::error::Error;
use crate::ui::Env;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    accepted: bool,
    passed: Vec<Verified>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rejection: Option<Rejection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    identity: Option<Identity>,
    username_prefix: String,
    username_prefix_reason: String,
    groups_prefix: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    rbac: Option<Matches>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    diagnoses: Vec<crate::authn_eval::Diagnosis>,
}

fn read_token(path: &str) -> Result<String, Error> {
    if path != "-" && !std::path::Path::new(path).exists() && looks_like_a_token(path) {
        return Err(Error::Input(format!(
            "invalid --token: the value (sha256 {}…, {} characters) is not a file but looks like the token itself; a token is never taken on the command line (it would show in the process list and shell history): put it in a file, or pipe it to `--token -`",
            fingerprint(path),
            path.chars().count()
        )));
    }
    let text = crate::input::read_user_file_or_stdin(
        path,
        "--token",
        "a file with the ID token, or `-` for stdin",
    )?;
    let text = text.trim();
    if text.starts_with('{') {
        return exec_credential_token(text).ok_or_else(|| {
            Error::Input(format!(
                "invalid --token `{path}`: it is JSON but not an ExecCredential with `status.token`; give the ID token itself, or what `kubectl oidc-login get-token` prints"
            ))
        });
    }
    Ok(text.to_string())
}

/// The token in a `client.authentication.k8s.io` ExecCredential, as kubelogin's `get-token`
/// prints it (`{"kind":"ExecCredential", ..., "status":{"token":"..."}}`; kubelogin hands the
/// ID token to kubectl there).
fn exec_credential_token(text: &str) -> Option<String> {
    let doc: Value = serde_json::from_str(text).ok()?;
    if doc.get("kind").and_then(Value::as_str) != Some("ExecCredential") {
        return None;
    }
    let token = doc.pointer("/status/token")?.as_str()?.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// Whether a `--token` value that is not a readable file is a credential rather than a
/// mistyped path: a JWT (`eyJ` is `{"` in base64url, two dots; maybe after `Bearer `), or
/// anything too long for a file name. Such a value is only ever shown as its [`fingerprint`].
fn looks_like_a_token(value: &str) -> bool {
    let value = value.trim();
    let value = value
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("bearer "))
        .map_or(value, |_| value[7..].trim_start());
    value.starts_with("eyJ")
        || value.contains(".eyJ")
        || value.len() > 255
        || (value.split('.').count() == 3
            && !value.contains('/')
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '=')))
}

/// The first 8 hex digits of a secret's SHA-256: enough to tell two apart, nothing to reuse.
fn fingerprint(secret: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(secret.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The key set: `--jwks FILE`, or the provider's (discovery, then jwks_uri).
fn key_set(args: &ExplainArgs, s: &OidcSettings) -> Result<Value, Error> {
    if let Some(f) = &args.jwks {
        let text = crate::input::read_user_yaml(f, "--jwks", "the provider's JWKS JSON file")?;
        return serde_json::from_str(&text).map_err(|e| {
            Error::Input(format!(
                "invalid --jwks `{f}`: not JSON ({e}); give the provider's JWKS JSON file"
            ))
        });
    }
    let client = crate::check::http_client(s)?;
    let failed = |c: backends::preflight::Check| {
        Error::Other(format!(
            "cannot get the provider's keys: {}; {}",
            c.detail,
            c.fix.unwrap_or_default()
        ))
    };
    let doc = crate::check::fetch_discovery(&client, s).map_err(failed)?;
    crate::check::fetch_jwks(&client, s, &doc).map_err(failed)
}

/// Verifies the signature with the keys whose `kid` matches (all keys when the token has none),
/// as go-oidc `jwks.go` does.
fn verify_signature(t: &Token, jwks: &Value) -> Result<String, Rejection> {
    let alg = t
        .header
        .get("alg")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let algorithm = jsonwebtoken::Algorithm::from_str(alg)
        .map_err(|_| signature_rejection(&format!("unknown algorithm {alg:?}")))?;
    let kid = t.header.get("kid").and_then(Value::as_str);
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut tried = 0;
    for k in &keys {
        let key_kid = k.get("kid").and_then(Value::as_str);
        if kid.is_some() && key_kid != kid {
            continue;
        }
        let Ok(jwk) = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(k.clone()) else {
            continue;
        };
        let Ok(key) = jsonwebtoken::DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        tried += 1;
        if let Ok(true) =
            jsonwebtoken::crypto::verify(&t.signature, t.signing_input.as_bytes(), &key, algorithm)
        {
            return Ok(format!(
                "verified with key {}",
                key_kid.unwrap_or("(no kid)")
            ));
        }
    }
    Err(signature_rejection(&match (kid, tried) {
        (Some(k), 0) => format!("no key with kid {k:?} in the JWKS"),
        (_, 0) => "no usable key in the JWKS".to_string(),
        (_, n) => format!("{n} key(s) tried, none verifies the signature"),
    }))
}

fn load_bindings(args: &ExplainArgs) -> Result<Option<Vec<backends::rbac::Binding>>, Error> {
    let text = if let Some(f) = &args.rbac {
        crate::input::read_user_yaml(f, "--rbac", "a YAML or JSON file of bindings")?
    } else if args.kubeconfig.is_some() || args.context.is_some() {
        let cmd = crate::rbac::kubectl(
            args.kubeconfig.as_deref(),
            args.context.as_deref(),
            &[
                "get",
                "clusterrolebindings,rolebindings",
                "-A",
                "-o",
                "json",
            ],
        );
        let ran = crate::exec::run_bounded(&cmd.program, &cmd.args, None, Duration::from_secs(60))?;
        if ran.code != Some(0) {
            return Err(Error::CommandFailed {
                command: cmd.to_shell(),
                host: None,
                status: format!("exit status {}", ran.code.unwrap_or(-1)),
                stderr: ran.stderr,
            });
        }
        ran.stdout
    } else {
        return Ok(None);
    };
    Ok(Some(parse_bindings(&text)?))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(crate) fn run(args: ExplainArgs, env: &Env) -> Result<ExitCode, Error> {
    let s = crate::config::settings(&args.oidc, env)?;
    let raw = read_token(&args.token)?;
    if s.structured.is_some() {
        return run_structured(&args, &s, &raw);
    }
    let bindings_list = load_bindings(&args)?;
    let mut report = Report {
        accepted: false,
        passed: vec![],
        rejection: None,
        identity: None,
        username_prefix: s.effective_username_prefix(),
        username_prefix_reason: s.username_prefix_reason(),
        groups_prefix: s.effective_groups_prefix(),
        rbac: None,
        diagnoses: Vec::new(),
    };
    match parse_token(&raw) {
        Err(text) => {
            // oidc.go hasCorrectIssuer cannot read `iss` either: the token is skipped silently.
            report.rejection = Some(Rejection {
                step: "parse",
                apiserver_error: String::new(),
                explanation: format!("{text}: not a JWT; kube-apiserver's OIDC authenticator skips it (no error logged) and the request gets 401"),
            });
        }
        Ok(t) => {
            report.diagnoses =
                crate::authn_eval::diagnose(&backends::authn::from_flags(&s), &t.claims);
            match verify_claims(&s, &t, now()) {
                Err(r) => report.rejection = Some(r),
                Ok(passed) => {
                    report.passed = passed;
                    let jwks = key_set(&args, &s)?;
                    match verify_signature(&t, &jwks) {
                        Err(r) => report.rejection = Some(r),
                        Ok(detail) => {
                            report.passed.push(Verified {
                                name: "signature",
                                detail,
                            });
                            match from_claims(&s, &t.claims) {
                                Err(text) => report.rejection = Some(claims_rejection(text)),
                                Ok(id) => {
                                    report.accepted = true;
                                    if let Some(list) = &bindings_list {
                                        report.rbac = Some(matches(&s, &id, list));
                                    }
                                    report.identity = Some(id);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    let text = match args.output {
        Output::Json => serde_json::to_string_pretty(&report).expect("plain data") + "\n",
        Output::Yaml => serde_yaml_ng::to_string(&report).expect("plain data"),
        Output::Text => text_report(&report),
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| Error::io("stdout", e))?;
    Ok(if report.accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn text_report(r: &Report) -> String {
    let mut out = String::new();
    for v in &r.passed {
        out.push_str(&format!("PASS  {:10}  {}\n", v.name, v.detail));
    }
    if let Some(rej) = &r.rejection {
        out.push_str(&format!("FAIL  {:10}  {}\n", rej.step, rej.explanation));
        if rej.apiserver_error.is_empty() {
            out.push_str("rejected: kube-apiserver logs no OIDC error for this token (it is not for this issuer)\n");
        } else {
            out.push_str(&format!(
                "rejected: kube-apiserver logs: {}\n",
                rej.apiserver_error
            ));
        }
    }
    if let Some(id) = &r.identity {
        out.push_str(&format!(
            "username: {}\n  prefix {:?}: {}\n",
            id.username, r.username_prefix, r.username_prefix_reason
        ));
        out.push_str(&format!("groups: {}\n", id.groups.join(", ")));
        if !r.groups_prefix.is_empty() {
            out.push_str(&format!(
                "  prefix {:?} (--groups-prefix)\n",
                r.groups_prefix
            ));
        }
    }
    if let Some(m) = &r.rbac {
        rbac_text(&mut out, m);
    }
    for d in &r.diagnoses {
        out.push_str(&format!("diagnosis: {}\n  fix: {}\n", d.finding, d.fix));
    }
    out
}

fn rbac_text(out: &mut String, m: &Matches) {
    if m.matches.is_empty() {
        out.push_str("rbac: no binding matches this user\n");
    }
    for x in &m.matches {
        out.push_str(&format!(
            "rbac: {} grants {} to {}\n",
            x.binding, x.role, x.subject
        ));
    }
    for x in &m.near_misses {
        out.push_str(&format!(
            "rbac: near miss {} subject {}: {}\n",
            x.binding, x.subject, x.reason
        ));
    }
}

/// What one structured authenticator made of the token.
#[derive(Serialize)]
struct AuthenticatorReport {
    authenticator: String,
    issuer: String,
    /// `skipped`, `rejected`, `accepted` or `not evaluable offline`.
    outcome: &'static str,
    passed: Vec<Verified>,
    #[serde(skip_serializing_if = "Option::is_none")]
    apiserver_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    explanation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<crate::authn_eval::UserInfo>,
    diagnoses: Vec<crate::authn_eval::Diagnosis>,
}

#[derive(Serialize)]
struct StructuredReport {
    accepted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    accepted_by: Option<String>,
    authenticators: Vec<AuthenticatorReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rbac: Option<Matches>,
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_list(items: &[String]) -> String {
    let q: Vec<String> = items.iter().map(|i| format!("{i:?}")).collect();
    format!("[{}]", q.join(" "))
}

/// `explain` with the settings file's `jwt` list: each authenticator in order, as the API
/// server's union authenticator tries them; only the one whose issuer equals `iss` answers.
fn run_structured(args: &ExplainArgs, s: &OidcSettings, raw: &str) -> Result<ExitCode, Error> {
    let st = s.structured.as_ref().expect("checked by the caller");
    let mut report = StructuredReport {
        accepted: false,
        accepted_by: None,
        authenticators: Vec::new(),
        rbac: None,
    };
    let bindings_list = load_bindings(args)?;
    let token = parse_token(raw);
    for i in 0..st.jwt.len() {
        let r = judge(args, s, &st.jwt, i, &token)?;
        if let Some(u) = &r.user {
            if let Some(list) = &bindings_list {
                let id = backends::identity::Identity {
                    username: u.username.clone(),
                    groups: u.groups.clone(),
                };
                report.rbac = Some(matches(s, &id, list));
            }
            report.accepted = true;
            report.accepted_by = Some(format!("jwt[{i}]"));
        }
        report.authenticators.push(r);
    }
    let text = match args.output {
        Output::Json => serde_json::to_string_pretty(&report).expect("plain data") + "\n",
        Output::Yaml => serde_yaml_ng::to_string(&report).expect("plain data"),
        Output::Text => structured_text(&report),
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| Error::io("stdout", e))?;
    Ok(if report.accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

impl AuthenticatorReport {
    /// Marks the token rejected with the API server's error `e` and the explanation `why`.
    fn reject(&mut self, e: String, why: String) {
        self.outcome = "rejected";
        self.apiserver_error = Some(e);
        self.explanation = Some(why);
    }
}

/// The values of the token's `aud` claim: a string or a list (non-strings left out).
fn token_audiences(t: &Token) -> Vec<String> {
    match t.claims.get("aud") {
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(v)) => v
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => vec![],
    }
}

/// What authenticator number `i` of `all` makes of `token`: skipped when it is not a JWT or
/// its issuer is another's, rejected when no audience matches, else verified and evaluated
/// ([`verify_and_evaluate`]).
fn judge(
    args: &ExplainArgs,
    s: &OidcSettings,
    all: &[JwtAuthenticator],
    i: usize,
    token: &Result<Token, String>,
) -> Result<AuthenticatorReport, Error> {
    let a = &all[i];
    let mut r = AuthenticatorReport {
        authenticator: format!("jwt[{i}]"),
        issuer: a.issuer.url.clone(),
        outcome: "skipped",
        passed: vec![],
        apiserver_error: None,
        explanation: None,
        user: None,
        diagnoses: vec![],
    };
    let t = match token {
        Err(text) => {
            r.explanation = Some(format!(
                "{text}: not a JWT; no authenticator reads it and the request gets 401"
            ));
            return Ok(r);
        }
        Ok(t) => t,
    };
    let iss = t
        .claims
        .get("iss")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // Diagnose for the authenticator of the token's issuer, or for every one when none is
    // (an Entra v1/v2 issuer mismatch shows there).
    if iss == a.issuer.url || !all.iter().any(|x| x.issuer.url == iss) {
        r.diagnoses = crate::authn_eval::diagnose(a, &t.claims);
    }
    if iss != a.issuer.url {
        r.explanation = Some(format!(
            "`iss` is {iss:?}, not {:?}: this authenticator skips the token without an error",
            a.issuer.url
        ));
        return Ok(r);
    }
    let aud = token_audiences(t);
    let Some(matched) = a.issuer.audiences.iter().find(|x| aud.contains(x)) else {
        let mut wanted = a.issuer.audiences.clone();
        wanted.sort();
        r.reject(
            format!(
                "oidc: verify token: oidc: expected audience in {} got {}",
                go_list(&wanted),
                go_list(&aud)
            ),
            format!(
                "the token's `aud` {} holds none of `issuer.audiences`",
                go_list(&aud)
            ),
        );
        return Ok(r);
    };
    verify_and_evaluate(args, s, i, a, t, matched, r)
}

/// For the authenticator `a` (number `i`) of the token's issuer, whose audience `matched`:
/// the claims verified as the single-issuer flags would be, the signature against its key
/// set, then the claim mappings and rules ([`crate::authn_eval::evaluate`]), into `r`.
fn verify_and_evaluate(
    args: &ExplainArgs,
    s: &OidcSettings,
    i: usize,
    a: &JwtAuthenticator,
    t: &Token,
    matched: &str,
    mut r: AuthenticatorReport,
) -> Result<AuthenticatorReport, Error> {
    use crate::authn_eval::{evaluate, Verdict};
    let mut one = s.clone();
    one.issuer_url = a.issuer.url.clone();
    one.client_id = matched.to_string();
    // An AuthenticationConfiguration accepts every algorithm kube-apiserver supports.
    one.signing_algs = Some(
        backends::settings::SIGNING_ALGS
            .iter()
            .map(|a| a.to_string())
            .collect(),
    );
    match verify_claims(&one, t, now()) {
        Err(rej) => {
            let why = rej
                .explanation
                .replace("--issuer-url", &format!("jwt[{i}].issuer.url"))
                .replace("--client-id", &format!("jwt[{i}].issuer.audiences"));
            r.reject(rej.apiserver_error, why);
            return Ok(r);
        }
        Ok(passed) => {
            // verify_claims names the single-issuer flags; here the fields are the file's.
            r.passed = passed
                .into_iter()
                .map(|mut v| {
                    v.detail = v
                        .detail
                        .replace("--issuer-url", &format!("jwt[{i}].issuer.url"));
                    v
                })
                .collect();
        }
    }
    let jwks = key_set(args, &one)?;
    match verify_signature(t, &jwks) {
        Err(rej) => {
            r.reject(rej.apiserver_error, rej.explanation);
            return Ok(r);
        }
        Ok(detail) => r.passed.push(Verified {
            name: "signature",
            detail,
        }),
    }
    match evaluate(i, a, &t.claims) {
        Verdict::User(u) => {
            r.outcome = "accepted";
            r.user = Some(u);
        }
        Verdict::Rejected(e) => r.reject(
            e,
            "the claims do not pass this authenticator's mappings and rules".into(),
        ),
        Verdict::Unknown(field, why) => {
            r.outcome = "not evaluable offline";
            r.explanation = Some(format!("{field}: {why}"));
        }
    }
    Ok(r)
}

fn structured_text(r: &StructuredReport) -> String {
    let mut out = String::new();
    for a in &r.authenticators {
        out.push_str(&format!(
            "{} {}: {}\n",
            a.authenticator, a.issuer, a.outcome
        ));
        for v in &a.passed {
            out.push_str(&format!("  PASS  {:10}  {}\n", v.name, v.detail));
        }
        if let Some(e) = &a.apiserver_error {
            out.push_str(&format!("  rejected: kube-apiserver logs: {e}\n"));
        }
        if let Some(x) = &a.explanation {
            out.push_str(&format!("  {x}\n"));
        }
        if let Some(u) = &a.user {
            out.push_str(&format!("  username: {}\n", u.username));
            if !u.uid.is_empty() {
                out.push_str(&format!("  uid: {}\n", u.uid));
            }
            out.push_str(&format!("  groups: {}\n", u.groups.join(", ")));
            for (k, v) in &u.extra {
                out.push_str(&format!("  extra {k}: {}\n", v.join(", ")));
            }
        }
        for d in &a.diagnoses {
            out.push_str(&format!("  diagnosis: {}\n    fix: {}\n", d.finding, d.fix));
        }
    }
    if let Some(m) = &r.rbac {
        rbac_text(&mut out, m);
    }
    match &r.accepted_by {
        Some(a) => out.push_str(&format!("accepted by {a}\n")),
        None if r.authenticators.iter().any(|a| a.outcome == "not evaluable offline") => out.push_str("undetermined: an expression could not be evaluated offline (see above); nothing is guessed\n"),
        None => out.push_str("not accepted by any authenticator: the request gets 401 Unauthorized\n"),
    }
    out
}

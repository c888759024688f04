//! `k8soidc explain`: a table of edge-case tokens signed with test keys (made by `openssl` here),
//! each with the result kube-apiserver gives and the source line it follows; real tokens from
//! the real provider; RBAC matches; the raw token and signature never appear in the output.

use std::path::Path;
use std::process::Command;

use base64::Engine;
use serde_json::{json, Value};

use crate::provider::Provider;
use crate::test::Test;

pub(crate) const ISSUER: &str = "https://idp.test.invalid";

pub(crate) struct Keys {
    dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("timeout")
        .arg("30")
        .arg("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

impl Keys {
    /// RSA keys `rsa` (in the JWKS) and `other` (not in it), an EC P-256 key `ec` (in the JWKS).
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(
            d,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "rsa.pem",
            ],
        );
        openssl(
            d,
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "other.pem",
            ],
        );
        openssl(
            d,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                "ec.pem",
            ],
        );
        let modulus =
            String::from_utf8(openssl(d, &["rsa", "-in", "rsa.pem", "-noout", "-modulus"]))
                .unwrap();
        let n = hex(modulus.trim().trim_start_matches("Modulus="));
        // EC public point: the last 65 bytes of the DER SubjectPublicKeyInfo are 04 || X || Y.
        let der = openssl(d, &["pkey", "-in", "ec.pem", "-pubout", "-outform", "DER"]);
        let point = &der[der.len() - 65..];
        let jwks = json!({"keys": [
            {"kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256", "n": b64(&n), "e": "AQAB"},
            {"kty": "EC", "kid": "ec-1", "use": "sig", "alg": "ES256", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])}
        ]});
        std::fs::write(d.join("jwks.json"), jwks.to_string()).unwrap();
        Keys { dir }
    }

    pub(crate) fn sign(&self, key: &str, claims: &Value) -> String {
        let pem = std::fs::read(self.dir.path().join(format!("{key}.pem"))).unwrap();
        let (alg, enc, kid) = match key {
            "ec" => (
                jsonwebtoken::Algorithm::ES256,
                jsonwebtoken::EncodingKey::from_ec_pem(&pem).unwrap(),
                "ec-1",
            ),
            _ => (
                jsonwebtoken::Algorithm::RS256,
                jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap(),
                "rsa-1",
            ),
        };
        let mut h = jsonwebtoken::Header::new(alg);
        h.kid = Some(kid.to_string());
        jsonwebtoken::encode(&h, claims, &enc).unwrap()
    }

    pub(crate) fn jwks(&self) -> String {
        self.dir.path().join("jwks.json").display().to_string()
    }
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

pub(crate) fn claims(extra: Value) -> Value {
    let mut c = json!({
        "iss": ISSUER, "aud": "kubernetes", "sub": "jane-0001", "email": "jane@example.com",
        "email_verified": true, "groups": ["k8s-admins", "devs"], "exp": now() + 3600, "iat": now()
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// Settings: claim email, prefixes `oidc:`, unless overridden by `flags`.
fn run(keys: &Keys, token: &str, flags: &[&str]) -> crate::test::Output {
    let mut args = vec!["explain", "--token", "-", "--jwks"];
    let jwks = keys.jwks();
    args.push(&jwks);
    args.extend([
        "--issuer-url",
        ISSUER,
        "--client-id",
        "kubernetes",
        "--groups-claim",
        "groups",
        "--groups-prefix",
        "oidc:",
    ]);
    if !flags.contains(&"--username-claim") {
        args.extend(["--username-claim", "email", "--username-prefix", "oidc:"]);
    }
    args.extend(flags);
    let out = Test::new().stdin(token).args(&args).run();
    // Never the raw token, never the signature.
    let sig = token.rsplit('.').next().unwrap();
    assert!(
        !out.stdout.contains(sig) && !out.stderr.contains(sig),
        "signature printed"
    );
    assert!(
        !out.stdout.contains(token) && !out.stderr.contains(token),
        "token printed"
    );
    out
}

enum Want {
    /// Accepted with this username and these groups.
    User(&'static str, &'static [&'static str]),
    /// Rejected; kube-apiserver logs text starting with this (empty: skipped without a log).
    Error(&'static str),
}

#[test]
fn edge_case_tokens() {
    let k = Keys::new();
    let exp_past = now() - 60;
    // Go prints time.Time as `2006-01-02 15:04:05 +0000 UTC`; `date` gives the same independently.
    let date = Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{exp_past}"),
            "+%Y-%m-%d %H:%M:%S +0000 UTC",
        ])
        .output()
        .unwrap();
    let expired_text: &'static str = Box::leak(
        format!(
            "oidc: verify token: oidc: token is expired (Token Expiry: {})",
            String::from_utf8(date.stdout).unwrap().trim()
        )
        .into_boxed_str(),
    );
    let table: Vec<(&str, &str, Value, Vec<&str>, Want)> = vec![
        // oidc.go AuthenticateToken: username = prefix + claim; groups prefixed; system:authenticated added by the group adder.
        ("valid", "rsa", json!({}), vec![], Want::User("oidc:jane@example.com", &["oidc:k8s-admins", "oidc:devs", "system:authenticated"])),
        // go-oidc verify.go: `if t.Expiry.Before(nowTime) { return nil, &TokenExpiredError{...} }` (no leeway).
        ("expired", "rsa", json!({"exp": exp_past}), vec![], Want::Error(expired_text)),
        // go-oidc verify.go: `oidc: expected audience %q got %q`.
        ("wrong aud", "rsa", json!({"aud": ["other"]}), vec![], Want::Error("oidc: verify token: oidc: expected audience \"kubernetes\" got [\"other\"]")),
        // oidc.go: `if a.usernameClaim == "email"` ... `if !emailVerified { return nil, false, fmt.Errorf("oidc: email not verified") }`.
        ("email_verified false", "rsa", json!({"email_verified": false}), vec![], Want::Error("oidc: email not verified")),
        // oidc.go `stringOrArray` UnmarshalJSON: a single string becomes one group.
        ("groups as string", "rsa", json!({"groups": "devs"}), vec![], Want::User("oidc:jane@example.com", &["oidc:devs", "system:authenticated"])),
        // oidc.go: `if a.groupsClaim != "" { if _, ok := c[a.groupsClaim]; ok { ... } }`: absent claim, no groups.
        ("missing groups", "rsa", json!({"groups": null}), vec![], Want::User("oidc:jane@example.com", &["system:authenticated"])),
        // oidc.go: `oidc: required claim %s value does not match. Got = %s, want = %s`.
        ("required claim mismatch", "rsa", json!({"hd": "other.com"}), vec!["--required-claim", "hd=example.com"], Want::Error("oidc: required claim hd value does not match. Got = other.com, want = example.com")),
        // authentication.go: `--oidc-username-prefix=-` turns prefixing off.
        ("dash prefix", "rsa", json!({}), vec!["--username-claim", "sub", "--username-prefix", "-"], Want::User("jane-0001", &["oidc:k8s-admins", "oidc:devs", "system:authenticated"])),
        // authentication.go ToAuthenticationConfig: no prefix and claim != email -> `issuerURL + "#"`.
        ("no prefix, claim sub", "rsa", json!({}), vec!["--username-claim", "sub"], Want::User("https://idp.test.invalid#jane-0001", &["oidc:k8s-admins", "oidc:devs", "system:authenticated"])),
        // go-oidc verify.go: `oidc: id token signed with unsupported algorithm, expected %q got %q`.
        ("ES256 not allowed", "ec", json!({}), vec![], Want::Error("oidc: verify token: oidc: id token signed with unsupported algorithm, expected [\"RS256\"] got \"ES256\"")),
        ("ES256 allowed", "ec", json!({}), vec!["--signing-algs", "ES256"], Want::User("oidc:jane@example.com", &["oidc:k8s-admins", "oidc:devs", "system:authenticated"])),
        // go-oidc verify.go `failed to verify signature: %v` with jwks.go `failed to verify id token signature`.
        ("unknown signer", "other", json!({}), vec![], Want::Error("oidc: verify token: failed to verify signature: failed to verify id token signature")),
        // oidc.go: `if !hasCorrectIssuer(a.issuerURL, token) { return nil, false, nil }`: skipped, nothing logged.
        ("other issuer", "rsa", json!({"iss": "https://idp.test.invalid/"}), vec![], Want::Error("")),
        // go-oidc v2 verify.go: nbf in the future beyond the 1-minute leeway.
        ("not yet valid", "rsa", json!({"nbf": now() + 3600}), vec![], Want::Error("oidc: verify token: oidc: current time ")),
        ("nbf two minutes ahead", "rsa", json!({"nbf": now() + 120}), vec![], Want::Error("oidc: verify token: oidc: current time ")),
        ("nbf within the leeway", "rsa", json!({"nbf": now() + 30}), vec![], Want::User("oidc:jane@example.com", &["oidc:k8s-admins", "oidc:devs", "system:authenticated"])),
        // oidc.go: `oidc: parse username claims %q: claim not present`.
        ("no username claim", "rsa", json!({"email": null}), vec![], Want::Error("oidc: parse username claims \"email\": claim not present")),
    ];
    for (name, key, extra, flags, want) in table {
        let token = k.sign(key, &claims(extra));
        let out = run(&k, &token, &flags);
        match want {
            Want::User(user, groups) => {
                assert_eq!(out.status, 0, "{name}: {}{}", out.stdout, out.stderr);
                assert!(
                    out.stdout.contains(&format!("username: {user}\n")),
                    "{name}: {}",
                    out.stdout
                );
                assert!(
                    out.stdout
                        .contains(&format!("groups: {}\n", groups.join(", "))),
                    "{name}: {}",
                    out.stdout
                );
            }
            Want::Error(text) => {
                assert_eq!(out.status, 1, "{name}: {}{}", out.stdout, out.stderr);
                if text.is_empty() {
                    assert!(
                        out.stdout.contains("kube-apiserver logs no OIDC error"),
                        "{name}: {}",
                        out.stdout
                    );
                } else {
                    assert!(
                        out.stdout
                            .contains(&format!("rejected: kube-apiserver logs: {text}")),
                        "{name}: {}",
                        out.stdout
                    );
                }
                assert!(!out.stdout.contains("username:"), "{name}: {}", out.stdout);
            }
        }
    }
}

#[test]
fn json_output_and_rbac_from_file_and_from_kubectl() {
    let k = Keys::new();
    let token = k.sign("rsa", &claims(json!({})));
    let rbac = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: admins}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: "oidc:k8s-admins"}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: devs, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: devs}
"#;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rbac.yaml");
    std::fs::write(&file, rbac).unwrap();
    let out = run(&k, &token, &["--rbac", file.to_str().unwrap()]);
    assert_eq!(out.status, 0, "{}", out.stderr);
    assert!(out.stdout.contains("rbac: ClusterRoleBinding/admins grants ClusterRole/cluster-admin to Group oidc:k8s-admins"), "{}", out.stdout);
    assert!(out.stdout.contains("rbac: near miss RoleBinding/team-a/devs subject Group devs: missing the prefix \"oidc:\""), "{}", out.stdout);

    // The same bindings from the cluster: `kubectl get … -o json` through the fake kubectl.
    let list = json!({"apiVersion": "v1", "kind": "List", "items": backends_list(rbac)});
    let out = Test::new()
        .fake("kubectl")
        .write("fake-state/bindings.json", &list.to_string())
        .write("kc", "apiVersion: v1\nkind: Config\n")
        .stdin(&token)
        .args([
            "explain",
            "--token",
            "-",
            "--jwks",
            &k.jwks(),
            "--kubeconfig",
            "kc",
            "--context",
            "prod",
            "-o",
            "json",
            "--issuer-url",
            ISSUER,
            "--client-id",
            "kubernetes",
            "--username-claim",
            "email",
            "--groups-claim",
            "groups",
            "--groups-prefix",
            "oidc:",
        ])
        .run()
        .success();
    assert_eq!(
        out.calls(),
        vec![[
            "kubectl",
            "--kubeconfig=kc",
            "--context=prod",
            "get",
            "clusterrolebindings,rolebindings",
            "-A",
            "-o",
            "json"
        ]
        .map(String::from)
        .to_vec()]
    );
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["accepted"], true);
    assert_eq!(v["identity"]["username"], "jane@example.com");
    assert_eq!(
        v["rbac"]["matches"][0]["binding"],
        "ClusterRoleBinding/admins"
    );
    assert!(!out.stdout.contains(token.rsplit('.').next().unwrap()));
}

fn backends_list(yaml: &str) -> Vec<Value> {
    yaml.split("\n---\n")
        .map(|d| serde_yaml_ng::from_str::<Value>(d).unwrap())
        .collect()
}

#[test]
fn real_provider_tokens() {
    let p = Provider::start();
    let ca = p.pki.ca().display().to_string();
    let base = |t: Test| {
        t.args([
            "explain",
            "--token",
            "token",
            "--ca-file",
            &ca,
            "--issuer-url",
            &p.issuer,
            "--client-id",
            "kubernetes",
            "--groups-claim",
            "groups",
            "--groups-prefix",
            "oidc:",
        ])
    };
    let jane = p.login("jane", "openid email groups");
    let out = base(Test::new().write("token", &jane))
        .args(["--username-claim", "email"])
        .run()
        .success();
    assert!(
        out.stdout.contains("username: jane@example.com\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("groups: oidc:k8s-admins, oidc:devs, system:authenticated\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("PASS  signature   verified with key test-rs256"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains(jane.rsplit('.').next().unwrap()));

    // bob's email is not verified and his groups claim is a string.
    let bob = p.login("bob", "openid email groups");
    let out = base(Test::new().write("token", &bob))
        .args(["--username-claim", "email"])
        .run()
        .status(1);
    assert!(
        out.stdout
            .contains("rejected: kube-apiserver logs: oidc: email not verified"),
        "{}",
        out.stdout
    );
    let out = base(Test::new().write("token", &bob))
        .args(["--username-claim", "sub"])
        .run()
        .success();
    assert!(
        out.stdout
            .contains(&format!("username: {}#bob\n", p.issuer)),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("groups: oidc:devs, system:authenticated\n"),
        "{}",
        out.stdout
    );

    // Another client id: the audience does not match.
    let out = Test::new()
        .write("token", &jane)
        .args([
            "explain",
            "--token",
            "token",
            "--ca-file",
            &ca,
            "--issuer-url",
            &p.issuer,
        ])
        .args(["--client-id", "other", "--username-claim", "email"])
        .run()
        .status(1);
    assert!(
        out.stdout
            .contains("oidc: verify token: oidc: expected audience \"other\" got [\"kubernetes\"]"),
        "{}",
        out.stdout
    );
}

/// Issue 14 point 10: what `kubectl oidc-login get-token` prints (an ExecCredential whose
/// `status.token` is the ID token) is accepted as well as the bare token, with the same result.
#[test]
fn exec_credential_json_is_accepted_like_the_bare_token() {
    let k = Keys::new();
    let token = k.sign("rsa", &claims(json!({})));
    let bare = run(&k, &token, &[]).success();
    let credential = json!({
        "kind": "ExecCredential",
        "apiVersion": "client.authentication.k8s.io/v1",
        "spec": {"interactive": false},
        "status": {"expirationTimestamp": "2030-01-01T00:00:00Z", "token": token},
    })
    .to_string();
    let out = Test::new()
        .stdin(&credential)
        .args(["explain", "--token", "-", "--jwks", &k.jwks()])
        .args([
            "--issuer-url",
            ISSUER,
            "--client-id",
            "kubernetes",
            "--groups-claim",
            "groups",
            "--groups-prefix",
            "oidc:",
            "--username-claim",
            "email",
            "--username-prefix",
            "oidc:",
        ])
        .run()
        .success();
    assert_eq!(out.stdout, bare.stdout);
    assert!(!out.stdout.contains(&token) && !out.stderr.contains(&token));
    // JSON that is not an ExecCredential is refused without printing it.
    let out = Test::new()
        .stdin(r#"{"kind":"Other","status":{"token":"secret-value"}}"#)
        .args(["explain", "--token", "-", "--jwks", &k.jwks()])
        .args(["--issuer-url", ISSUER, "--client-id", "kubernetes"])
        .run()
        .status(2);
    assert_eq!(
        out.stderr,
        "error: invalid --token `-`: it is JSON but not an ExecCredential with `status.token`; give the ID token itself, or what `kubectl oidc-login get-token` prints\n"
    );
}

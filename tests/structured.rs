//! Structured authentication (issue 12): `explain` against a settings file's `jwt` list, row
//! by row from kube-apiserver's own authenticator tests (k8s.io/apiserver
//! `plugin/pkg/authenticator/token/oidc/oidc_test.go`, `TestToken`, case names quoted) and the
//! Kubernetes documentation (kubernetes.io/docs/reference/access-authn-authz/authentication/,
//! "Using Authentication Configuration"); settings errors with upstream field paths and
//! `file:line`; multi-issuer renders validated against the schema in tests/data.

use serde_json::{json, Value};

use crate::explain::{claims, now, Keys, ISSUER};
use crate::test::Test;

enum Want {
    /// username, groups (then `system:authenticated`), extra lines that must appear.
    User(
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
    ),
    /// The text after `rejected: kube-apiserver logs: ` (a prefix of it).
    Error(&'static str),
    /// The exit status and texts that must appear.
    Says(i32, &'static [&'static str]),
}

/// A settings file with one authenticator for ISSUER; `rest` is the YAML after `issuer`. The
/// rows mirror the API server, which accepts `system:`-reachable mappings, so k8soidc's
/// reserved-name policy is explicitly overridden here (it has its own tests).
fn one(audiences: &str, rest: &str) -> String {
    format!("kubernetes-version: \"1.34\"\nauth-mode: config\nallow-system-names: true\njwt:\n- issuer:\n    url: {ISSUER}\n    audiences: {audiences}\n{rest}")
}

const BASE: &str = "  claimMappings:\n    username: {claim: email, prefix: \"\"}\n    groups: {claim: groups, prefix: \"oidc:\"}\n";
const G: &[&str] = &["oidc:k8s-admins", "oidc:devs"];

fn explain(k: &Keys, config: &str, token: &str) -> crate::test::Output {
    let jwks = k.jwks();
    Test::new()
        .write("k8soidc.yaml", config)
        .stdin(token)
        .args([
            "explain",
            "--config",
            "k8soidc.yaml",
            "--token",
            "-",
            "--jwks",
            &jwks,
        ])
        .run()
}

#[test]
fn explain_table_from_the_upstream_authenticator_tests_and_docs() {
    let k = Keys::new();
    let aud1 = "[kubernetes]";
    let cvr = |rule: &str| format!("  claimValidationRules:\n  - {rule}\n{BASE}");
    let maps = |m: &str| format!("  claimMappings:\n{m}");
    let user_rule = "  userValidationRules:\n  - {expression: \"!user.username.startsWith('system:')\", message: \"username cannot used reserved system: prefix\"}\n  - {expression: \"user.groups.all(group, !group.startsWith('system:'))\", message: \"groups cannot used reserved system: prefix\"}\n";
    let rows: Vec<(&str, String, &str, Value, Want)> = vec![
        ("oidc_test.go \"token\"", one(aud1, BASE), "rsa", json!({}), Want::User("jane@example.com", G, &[])),
        ("oidc_test.go \"email\"", one(aud1, BASE), "rsa", json!({"email": "j@example.org"}), Want::User("j@example.org", G, &[])),
        ("oidc_test.go \"no-username\"", one(aud1, &maps("    username: {claim: username, prefix: \"\"}\n")), "rsa", json!({}), Want::Error("oidc: parse username claims \"username\": claim not present")),
        ("oidc_test.go \"email-not-verified\"", one(aud1, BASE), "rsa", json!({"email_verified": false}), Want::Error("oidc: email not verified")),
        ("oidc_test.go \"no-email-verified-claim\"", one(aud1, BASE), "rsa", json!({"email_verified": null}), Want::User("jane@example.com", G, &[])),
        ("oidc_test.go \"invalid-email-verified-claim\"", one(aud1, BASE), "rsa", json!({"email_verified": "false"}), Want::Error("oidc: parse 'email_verified' claim: json: cannot unmarshal string into Go value of type bool")),
        ("oidc_test.go \"groups\"", one(aud1, BASE), "rsa", json!({"groups": ["team1", "team2"]}), Want::User("jane@example.com", &["oidc:team1", "oidc:team2"], &[])),
        ("oidc_test.go \"group-string-claim\"", one(aud1, BASE), "rsa", json!({"groups": "team1"}), Want::User("jane@example.com", &["oidc:team1"], &[])),
        ("oidc_test.go \"no-groups-claim\"", one(aud1, BASE), "rsa", json!({"groups": null}), Want::User("jane@example.com", &[], &[])),
        ("oidc_test.go \"invalid-groups-claim\"", one(aud1, BASE), "rsa", json!({"groups": 42}), Want::Error("oidc: parse groups claim \"groups\": json: cannot unmarshal number into Go value of type string")),
        ("oidc_test.go \"required-claim\"", one(aud1, &cvr("{claim: hd, requiredValue: example.com}")), "rsa", json!({"hd": "example.com"}), Want::User("jane@example.com", G, &[])),
        ("oidc_test.go \"no-required-claim\"", one(aud1, &cvr("{claim: hd, requiredValue: example.com}")), "rsa", json!({}), Want::Error("oidc: required claim hd not present in ID token")),
        ("oidc_test.go \"invalid-required-claim\"", one(aud1, &cvr("{claim: hd, requiredValue: example.com}")), "rsa", json!({"hd": "other.com"}), Want::Error("oidc: required claim hd value does not match. Got = other.com, want = example.com")),
        ("oidc_test.go \"invalid-signature\"", one(aud1, BASE), "other", json!({}), Want::Error("oidc: verify token: failed to verify signature: failed to verify id token signature")),
        ("oidc_test.go \"expired\"", one(aud1, BASE), "rsa", json!({"exp": now() - 3600}), Want::Error("oidc: verify token: oidc: token is expired (Token Expiry: ")),
        ("oidc_test.go \"invalid-aud\"", one(aud1, BASE), "rsa", json!({"aud": "not-kubernetes"}), Want::Error("oidc: verify token: oidc: expected audience in [\"kubernetes\"] got [\"not-kubernetes\"]")),
        ("oidc_test.go \"multiple-audiences in authentication config\"", one("[random-client, kubernetes]\n    audienceMatchPolicy: MatchAny", BASE), "rsa", json!({"aud": ["not-kubernetes", "kubernetes"]}), Want::User("jane@example.com", G, &[])),
        ("oidc_test.go \"multiple-audiences in authentication config, multiple matches\"", one("[random-client, kubernetes, other-client]\n    audienceMatchPolicy: MatchAny", BASE), "rsa", json!({"aud": ["other-client", "kubernetes", "random-client"]}), Want::User("jane@example.com", G, &[])),
        ("oidc_test.go \"multiple-audiences in authentication config, no match\"", one("[random-client, kubernetes]\n    audienceMatchPolicy: MatchAny", BASE), "rsa", json!({"aud": ["not-kubernetes"]}), Want::Error("oidc: verify token: oidc: expected audience in [\"kubernetes\" \"random-client\"] got [\"not-kubernetes\"]")),
        ("oidc_test.go \"invalid-issuer\"", one(aud1, BASE), "rsa", json!({"iss": "https://bad-issuer.example.com"}), Want::Says(1, &["jwt[0] https://idp.test.invalid: skipped", "not accepted by any authenticator"])),
        ("oidc_test.go \"username-prefix\"", one(aud1, &maps("    username: {claim: email, prefix: \"oidc:\"}\n    groups: {claim: groups, prefix: \"oidc:\"}\n")), "rsa", json!({}), Want::User("oidc:jane@example.com", G, &[])),
        ("oidc_test.go \"groups-prefix\"", one(aud1, &maps("    username: {claim: email, prefix: \"\"}\n    groups: {claim: groups, prefix: \"groups:\"}\n")), "rsa", json!({"groups": ["team1", "team2"]}), Want::User("jane@example.com", &["groups:team1", "groups:team2"], &[])),
        ("oidc_test.go \"es512\" (any supported algorithm in config mode)", one(aud1, BASE), "ec", json!({}), Want::User("jane@example.com", G, &[])),
        ("oidc_test.go \"user validation rule fails for user.username\"", one(aud1, &format!("{}{user_rule}", maps("    username: {expression: \"'system:' + claims.sub\"}\n"))), "rsa", json!({}), Want::Error("oidc: error evaluating user info validation rule: validation expression '!user.username.startsWith('system:')' failed: username cannot used reserved system: prefix")),
        ("oidc_test.go \"user validation rule fails for user.groups\"", one(aud1, &format!("{}{user_rule}", maps("    username: {claim: sub, prefix: \"\"}\n    groups: {expression: \"claims.groups.map(g, 'system:' + g)\"}\n"))), "rsa", json!({}), Want::Error("oidc: error evaluating user info validation rule: validation expression 'user.groups.all(group, !group.startsWith('system:'))' failed: groups cannot used reserved system: prefix")),
        ("oidc_test.go \"claim validation rule with expression fails\"", one(aud1, &cvr("{expression: 'claims.hd == \"example.com\"', message: \"hd claim must be example.com\"}")), "rsa", json!({"hd": "other.com"}), Want::Error("oidc: error evaluating claim validation expression: validation expression 'claims.hd == \"example.com\"' failed: hd claim must be example.com")),
        ("oidc_test.go \"claim validation rule with expression\"", one(aud1, &cvr("{expression: 'claims.hd == \"example.com\"', message: \"hd claim must be example.com\"}")), "rsa", json!({"hd": "example.com"}), Want::User("jane@example.com", G, &[])),
        ("oidc_test.go \"claim validation rule with expression and nested claims\"", one(aud1, &cvr("{expression: 'claims.foo.bar == \"baz\"', message: \"foo.bar claim must be baz\"}")), "rsa", json!({"foo": {"bar": "baz"}}), Want::User("jane@example.com", G, &[])),
        ("oidc_test.go \"claim validation rule with mix of expression and claim\"", one(aud1, &format!("  claimValidationRules:\n  - {{expression: 'claims.foo.bar == \"baz\"', message: m}}\n  - {{claim: hd, requiredValue: example.com}}\n{BASE}")), "rsa", json!({"foo": {"bar": "baz"}, "hd": "example.com"}), Want::User("jane@example.com", G, &[])),
        ("oidc_test.go \"username claim mapping with expression\"", one(aud1, &maps("    username: {expression: claims.sub}\n")), "rsa", json!({}), Want::User("jane-0001", &[], &[])),
        ("oidc_test.go \"username claim mapping with expression and nested claim\"", one(aud1, &maps("    username: {expression: claims.foo.username}\n")), "rsa", json!({"foo": {"username": "jane"}}), Want::User("jane", &[], &[])),
        ("oidc_test.go \"groups claim mapping with expression\"", one(aud1, &maps("    username: {claim: sub, prefix: \"\"}\n    groups: {expression: claims.groups}\n")), "rsa", json!({}), Want::User("jane-0001", &["k8s-admins", "devs"], &[])),
        ("oidc_test.go \"groups claim with expression\"", one(aud1, &maps("    username: {claim: sub, prefix: \"\"}\n    groups: {expression: \"claims.roles.split(',').map(r, 'oidc:' + r)\"}\n")), "rsa", json!({"roles": "foo,bar"}), Want::User("jane-0001", &["oidc:foo", "oidc:bar"], &[])),
        ("oidc_test.go \"uid claim mapping with expression\"", one(aud1, &maps("    username: {claim: sub, prefix: \"\"}\n    uid: {expression: claims.uid}\n")), "rsa", json!({"uid": "1234"}), Want::User("jane-0001", &[], &["  uid: 1234"])),
        ("oidc_test.go \"uid claim mapping with claim\"", one(aud1, &maps("    username: {claim: sub, prefix: \"\"}\n    uid: {claim: uid}\n")), "rsa", json!({"uid": "1234"}), Want::User("jane-0001", &[], &["  uid: 1234"])),
        ("oidc_test.go \"extra claim mapping with expression\"", one(aud1, &maps("    username: {claim: sub, prefix: \"\"}\n    extra:\n    - {key: example.org/foo, valueExpression: claims.foo}\n    - {key: example.org/bar, valueExpression: claims.bar}\n")), "rsa", json!({"foo": "bar", "bar": ["baz", "qux"]}), Want::User("jane-0001", &[], &["  extra example.org/bar: baz, qux", "  extra example.org/foo: bar"])),
        ("oidc_test.go \"hardcoded extra claim mapping\"", one(aud1, &maps("    username: {claim: sub, prefix: \"\"}\n    extra:\n    - {key: example.org/admin, valueExpression: \"'true'\"}\n")), "rsa", json!({}), Want::User("jane-0001", &[], &["  extra example.org/admin: true"])),
        ("oidc_test.go \"extra claim mapping, empty string value for key\"", one(aud1, &maps("    username: {claim: sub, prefix: \"\"}\n    extra:\n    - {key: example.org/foo, valueExpression: \"''\"}\n")), "rsa", json!({}), Want::User("jane-0001", &[], &[])),
        ("oidc_test.go \"groups expression returns null\"", one(aud1, &maps("    username: {claim: sub, prefix: \"\"}\n    groups: {expression: \"null\"}\n")), "rsa", json!({}), Want::User("jane-0001", &[], &[])),
        ("oidc_test.go \"empty username is allowed via claim\"", one(aud1, &maps("    username: {claim: username, prefix: \"\"}\n")), "rsa", json!({"username": ""}), Want::User("", &[], &[])),
        ("oidc.go getUsername \"empty username via CEL expression is not allowed\"", one(aud1, &maps("    username: {expression: claims.username}\n")), "rsa", json!({"username": ""}), Want::Error("oidc: empty username via CEL expression is not allowed")),
        ("oidc_test.go \"credential id set in extra even when no extra claim mappings are defined\"", one(aud1, BASE), "rsa", json!({"jti": "1234"}), Want::User("jane@example.com", G, &["  extra authentication.kubernetes.io/credential-id: JTI=1234"])),
        ("oidc_test.go \"non-string jti claim does not set credential id in extra or error\"", one(aud1, BASE), "rsa", json!({"jti": 1234}), Want::User("jane@example.com", G, &[])),
        ("docs: username from email with email_verified by expression", one(aud1, "  claimValidationRules:\n  - {expression: \"claims.?email_verified.orValue(true) == true\", message: \"email is not verified\"}\n  claimMappings:\n    username: {expression: claims.email}\n"), "rsa", json!({"email_verified": false}), Want::Error("oidc: error evaluating claim validation expression: validation expression 'claims.?email_verified.orValue(true) == true' failed: email is not verified")),
        ("docs: username from email, email_verified absent", one(aud1, "  claimValidationRules:\n  - {expression: \"claims.?email_verified.orValue(true) == true\", message: \"email is not verified\"}\n  claimMappings:\n    username: {expression: claims.email}\n"), "rsa", json!({"email_verified": null}), Want::User("jane@example.com", &[], &[])),
        ("docs: CEL environment has the Kubernetes url library; k8soidc does not (reported, never guessed)", one(aud1, &maps("    username: {expression: \"url(claims.iss).getHost()\"}\n")), "rsa", json!({}), Want::Says(1, &["jwt[0] https://idp.test.invalid: not evaluable offline", "`getHost` is not in k8soidc's offline CEL environment", "undetermined: "])),
        ("Azure/kubelogin#144 (Entra overage, distributed claims)", one(aud1, BASE), "rsa", json!({"groups": null, "_claim_names": {"groups": "src1"}, "_claim_sources": {"src1": {"endpoint": "https://graph.windows.net/t/users/u/getMemberObjects"}}}), Want::Says(1, &["not evaluable offline", "diagnosis: Entra ID group overage"])),
        ("int128/kubelogin#114 (Keycloak full group paths)", one(aud1, BASE), "rsa", json!({"groups": ["/team"]}), Want::Says(0, &["  groups: oidc:/team, system:authenticated", "diagnosis: `groups` holds Keycloak group paths", "claims.groups.map(g, g.startsWith('/') ? g.substring(1) : g)"])),
    ];
    assert!(rows.len() >= 40, "{} rows", rows.len());
    for (name, config, key, extra, want) in rows {
        let token = k.sign(key, &claims(extra));
        let out = explain(&k, &config, &token);
        let sig = token.rsplit('.').next().unwrap();
        assert!(!out.stdout.contains(sig), "{name}: signature printed");
        match want {
            Want::User(user, groups, lines) => {
                assert_eq!(out.status, 0, "{name}: {}{}", out.stdout, out.stderr);
                assert!(
                    out.stdout.contains(&format!("  username: {user}\n")),
                    "{name}: {}",
                    out.stdout
                );
                let mut all: Vec<&str> = groups.to_vec();
                all.push("system:authenticated");
                assert!(
                    out.stdout
                        .contains(&format!("  groups: {}\n", all.join(", "))),
                    "{name}: {}",
                    out.stdout
                );
                for l in lines {
                    assert!(
                        out.stdout.contains(&format!("{l}\n")),
                        "{name}: {l:?} in {}",
                        out.stdout
                    );
                }
                assert!(
                    out.stdout.ends_with("accepted by jwt[0]\n"),
                    "{name}: {}",
                    out.stdout
                );
            }
            Want::Error(text) => {
                assert_eq!(out.status, 1, "{name}: {}{}", out.stdout, out.stderr);
                assert!(
                    out.stdout
                        .contains(&format!("  rejected: kube-apiserver logs: {text}")),
                    "{name}: {}",
                    out.stdout
                );
                assert!(
                    !out.stdout.contains("\n  username: "),
                    "{name}: {}",
                    out.stdout
                );
            }
            Want::Says(status, lines) => {
                assert_eq!(out.status, status, "{name}: {}{}", out.stdout, out.stderr);
                for l in lines {
                    assert!(out.stdout.contains(l), "{name}: {l:?} in {}", out.stdout);
                }
            }
        }
    }
}

const MULTI: &str = r#"kubernetes-version: "VERSION"
auth-mode: config
jwt:
  - issuer:
      url: https://login.example.com/oauth2/default
      audiences: [kubernetes]
    claimValidationRules:
      - {claim: hd, requiredValue: example.com}
    claimMappings:
      username: {claim: email, prefix: ""}
      groups: {claim: groups, prefix: "okta:"}
  - issuer:
      url: https://token.actions.githubusercontent.com
      discoveryURL: https://token.actions.githubusercontent.com/.well-known/openid-configuration
      audiences: [kubernetes, sts.amazonaws.com]
      audienceMatchPolicy: MatchAny
    claimValidationRules:
      - {expression: "claims.repository_owner == 'example'", message: only repositories of example}
    claimMappings:
      username: {expression: "'github:' + claims.repository"}
      groups: {expression: "['ci:' + claims.repository_owner]"}
      uid: {claim: sub}
      extra:
        - {key: example.com/ref, valueExpression: claims.ref}
    userValidationRules:
      - {expression: "!user.username.startsWith('system:')", message: no system names}
      - {expression: "user.groups.all(g, !g.startsWith('system:'))", message: no system groups}
  - issuer:
      url: https://sso.example.com/realms/k8s
      audiences: [kubernetes]
    claimMappings:
      username: {claim: sub, prefix: "keycloak:"}
      groups: {expression: "claims.groups.map(g, g.startsWith('/') ? g.substring(1) : g)"}
    userValidationRules:
      - {expression: "user.groups.all(g, !g.startsWith('system:'))", message: no system groups}
"#;

const ANONYMOUS: &str = "anonymous:\n  enabled: true\n  conditions: [{path: /livez}, {path: /readyz}, {path: /healthz}]\n";

/// The AuthenticationConfiguration `render -o json` gives for `distro` with `settings`.
fn rendered(distro: &str, settings: &str) -> Value {
    let out = Test::new()
        .write("k8soidc.yaml", settings)
        .args(["render", "--distro", distro, "-o", "json"])
        .run()
        .success();
    let r: Value = serde_json::from_str(&out.stdout).unwrap();
    let file = r["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| {
            a["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/authentication-config.yaml"))
        })
        .unwrap_or_else(|| panic!("{distro}: no AuthenticationConfiguration in {}", out.stdout));
    serde_yaml_ng::from_str(file["content"].as_str().unwrap()).unwrap()
}

/// Multi-issuer files render for kubeadm, k3s and kind, validate against the schema derived
/// from the upstream types (tests/data/fixtures/schemas, see SOURCES) and carry exactly the
/// settings file's authenticators, at the apiVersion of the Kubernetes version; k3s refuses
/// the `anonymous` section (its own `--anonymous-auth=false` cannot go beside it).
#[test]
fn multi_issuer_files_render_and_validate_for_kubeadm_k3s_and_kind() {
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            crate::test::fixtures().join("schemas/authentication-configuration.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let input: Value = serde_yaml_ng::from_str(&MULTI.replace("VERSION", "1.34")).unwrap();
    for (version, api, anonymous) in [("1.31", "v1beta1", ""), ("1.34", "v1", ANONYMOUS)] {
        let settings = format!("{}{anonymous}", MULTI.replace("VERSION", version));
        for distro in ["kubeadm", "k3s", "kind"] {
            if distro == "k3s" && !anonymous.is_empty() {
                // k3s always passes --anonymous-auth=false, which kube-apiserver refuses beside
                // an `anonymous` section: refused (exit 2), naming why and the fix.
                let out = Test::new()
                    .write("k8soidc.yaml", &settings)
                    .args(["render", "--distro", "k3s"])
                    .run()
                    .status(2);
                assert_eq!(
                    out.stderr,
                    "error: k3s: the settings file's `anonymous` section cannot go to k3s: k3s always starts the API server with `--anonymous-auth=false`, and kube-apiserver refuses to start with that flag beside an `anonymous` section; remove `anonymous` from the settings file (anonymous requests then stay refused, as k3s has them by default)\n"
                );
                continue;
            }
            let doc = rendered(distro, &settings);
            let errors: Vec<String> = validator
                .iter_errors(&doc)
                .map(|e| format!("{} at {}", e, e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{distro} {version}: {errors:?}\n{doc:#}");
            assert_eq!(
                doc["apiVersion"],
                json!(format!("apiserver.config.k8s.io/{api}")),
                "{distro}"
            );
            assert_eq!(doc["jwt"], input["jwt"], "{distro} {version}");
            assert_eq!(
                doc.get("anonymous").is_some(),
                !anonymous.is_empty(),
                "{distro} {version}"
            );
        }
    }
    // The schema has teeth: what the API server refuses, it refuses too.
    let good = rendered(
        "kubeadm",
        &format!("{}{ANONYMOUS}", MULTI.replace("VERSION", "1.34")),
    );
    let mut no_prefix = good.clone();
    no_prefix["jwt"][0]["claimMappings"]["username"]
        .as_object_mut()
        .unwrap()
        .remove("prefix");
    let mut anonymous_beta = good.clone();
    anonymous_beta["apiVersion"] = json!("apiserver.config.k8s.io/v1beta1");
    let mut two_audiences = good.clone();
    two_audiences["jwt"][1]["issuer"]
        .as_object_mut()
        .unwrap()
        .remove("audienceMatchPolicy");
    for (name, bad) in [
        ("no prefix", no_prefix),
        ("anonymous in v1beta1", anonymous_beta),
        ("two audiences without MatchAny", two_audiences),
    ] {
        assert!(!validator.is_valid(&bad), "{name}");
    }
}

/// Settings errors carry the upstream field path and the line of the settings file; exit 2.
#[test]
fn settings_file_errors_name_the_field_path_and_line() {
    let base = MULTI.replace("VERSION", "1.34");
    for (from, to, want) in [
        ("username: {claim: email, prefix: \"\"}", "username: {claim: email}", "error: invalid jwt[0].claimMappings.username.prefix (from k8soidc.yaml:10): Required value: prefix is required when claim is set. It can be set to an empty string to disable prefixing;"),
        ("url: https://sso.example.com/realms/k8s", "url: https://login.example.com/oauth2/default", "error: invalid jwt[2].issuer.url `https://login.example.com/oauth2/default` (from k8soidc.yaml:29): Duplicate value;"),
        ("audienceMatchPolicy: MatchAny", "audienceMatchPolicy: MatchAll", "error: invalid jwt[1].issuer.audienceMatchPolicy `MatchAll` (from k8soidc.yaml:16): Invalid value: audienceMatchPolicy must be MatchAny for multiple audiences;"),
        ("valueExpression: claims.ref", "valueExpression: \"claims.ref +\"", "error: invalid jwt[1].claimMappings.extra[0].valueExpression `claims.ref +` (from k8soidc.yaml:24): Invalid value: compilation failed:"),
        ("prefix: \"okta:\"", "prefix: \"system:\"", "error: invalid jwt[0].claimMappings.groups.prefix `system:` (from k8soidc.yaml:11): an IdP group `masters` would become `system:masters` (cluster-admin); k8soidc's policy, not a kube-apiserver rule"),
    ] {
        assert!(base.contains(from), "{from}");
        let out = Test::new()
            .write("k8soidc.yaml", &base.replace(from, to))
            .args(["render", "--distro", "kubeadm"])
            .run()
            .status(2);
        assert!(out.stderr.starts_with(want), "want {want}\n got {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
        assert!(out.stdout.is_empty());
    }
    // What only the file can say is refused in flags mode, naming the mode that carries it.
    let out = Test::new()
        .write("k8soidc.yaml", &base)
        .args(["render", "--distro", "kubeadm", "--auth-mode", "flags"])
        .run()
        .status(2);
    assert_eq!(out.stderr, "error: invalid jwt (from k8soidc.yaml:3): only an AuthenticationConfiguration file (`--auth-mode config`) can carry it; --oidc-* flags hold one issuer without CEL or anonymous rules; use `--auth-mode config` (with `--kubernetes-version 1.30` or later)\n");
    // ... and what only the flags can say is refused in config mode.
    let out = Test::new()
        .args([
            "render",
            "--distro",
            "kubeadm",
            "--issuer-url",
            "https://idp.example.com",
            "--client-id",
            "k",
        ])
        .args([
            "--auth-mode",
            "config",
            "--kubernetes-version",
            "1.34",
            "--signing-algs",
            "ES256",
        ])
        .run()
        .status(2);
    assert_eq!(out.stderr, "error: invalid --signing-algs `ES256` (from --signing-algs): only --oidc-* flags can carry it: an AuthenticationConfiguration has no algorithm list (kube-apiserver accepts every algorithm it supports); use `--auth-mode flags`, or leave --signing-algs out\n");
}

/// Diagnoses come with the single-issuer flags too, and `--rbac` works with `jwt` settings.
#[test]
fn diagnoses_with_flags_and_rbac_with_jwt() {
    let k = Keys::new();
    let jwks = k.jwks();
    // Entra v1 token for a v2 issuer: skipped by the only authenticator, diagnosed there.
    let token = k.sign(
        "rsa",
        &claims(json!({"iss": "https://sts.windows.net/tenant/", "groups": "a,b"})),
    );
    let v2 = "kubernetes-version: \"1.34\"\njwt:\n- issuer: {url: 'https://login.microsoftonline.com/tenant/v2.0', audiences: [kubernetes]}\n  claimMappings: {username: {claim: email, prefix: ''}, groups: {claim: groups, prefix: 'oidc:'}}\n";
    let out = Test::new()
        .write("k8soidc.yaml", v2)
        .stdin(&token)
        .args(["explain", "--token", "-", "--jwks", &jwks])
        .run()
        .status(1);
    for want in [
        "jwt[0] https://login.microsoftonline.com/tenant/v2.0: skipped\n",
        "  diagnosis: Entra ID issuer mismatch: the token's `iss` is \"https://sts.windows.net/tenant/\" (v1 token) but the authenticator expects \"https://login.microsoftonline.com/tenant/v2.0\" (v2)\n",
        "  diagnosis: `groups` is one string (\"a,b\"); kube-apiserver takes it as a single group\n    fix: split it: `claimMappings.groups.expression: \"claims.groups.split(',')\"`\n",
        "not accepted by any authenticator: the request gets 401 Unauthorized\n",
    ] {
        assert!(out.stdout.contains(want), "{want}\n{}", out.stdout);
    }
    // Flags: the same diagnoses (Keycloak paths here), after the user.
    let token = k.sign("rsa", &claims(json!({"iss": ISSUER, "groups": ["/team"]})));
    let out = Test::new()
        .stdin(&token)
        .args([
            "explain",
            "--token",
            "-",
            "--jwks",
            &jwks,
            "--issuer-url",
            ISSUER,
            "--client-id",
            "kubernetes",
        ])
        .args([
            "--username-claim",
            "email",
            "--groups-claim",
            "groups",
            "--groups-prefix",
            "oidc:",
        ])
        .run()
        .success();
    assert!(out.stdout.ends_with("groups: oidc:/team, system:authenticated\n  prefix \"oidc:\" (--groups-prefix)\ndiagnosis: `groups` holds Keycloak group paths (`/team`); RBAC subjects must then name `/team`\n  fix: strip the leading `/`: `claimMappings.groups.expression: \"claims.groups.map(g, g.startsWith('/') ? g.substring(1) : g)\"` (or turn off \"Full group path\" in Keycloak's group mapper)\n"), "{}", out.stdout);
    // RBAC with jwt settings: the CEL-mapped user's group binds.
    let rbac = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: ci}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: edit}\nsubjects:\n- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: \"ci:example\"}\n";
    let config = format!("kubernetes-version: \"1.34\"\njwt:\n- issuer: {{url: '{ISSUER}', audiences: [kubernetes]}}\n  claimMappings:\n    username: {{expression: \"'ci:' + claims.sub\"}}\n    groups: {{expression: \"['ci:' + claims.owner]\"}}\n  userValidationRules:\n  - {{expression: \"!user.username.startsWith('system:')\"}}\n  - {{expression: \"user.groups.all(g, !g.startsWith('system:'))\"}}\n");
    let token = k.sign("rsa", &claims(json!({"owner": "example"})));
    let out = Test::new()
        .write("k8soidc.yaml", &config)
        .write("rbac.yaml", rbac)
        .stdin(&token)
        .args([
            "explain",
            "--token",
            "-",
            "--jwks",
            &jwks,
            "--rbac",
            "rbac.yaml",
        ])
        .run()
        .success();
    assert!(out.stdout.ends_with("  username: ci:jane-0001\n  groups: ci:example, system:authenticated\nrbac: ClusterRoleBinding/ci grants ClusterRole/edit to Group ci:example\naccepted by jwt[0]\n"), "{}", out.stdout);
}

/// Reserved names (our policy): refused by default in every mode with the reason; the explicit
/// override shows in the render, the create plan and the patch dry run.
#[test]
fn reserved_names_are_refused_and_the_override_is_shown() {
    let flags = [
        "--issuer-url",
        "https://idp.example.com",
        "--client-id",
        "k",
        "--username-claim",
        "email",
        "--groups-claim",
        "groups",
    ];
    for mode in [
        &["--auth-mode", "flags"][..],
        &["--auth-mode", "config", "--kubernetes-version", "1.34"][..],
    ] {
        let out = Test::new()
            .args(["render", "--distro", "kubeadm"])
            .args(flags)
            .args(["--groups-prefix", "system:"])
            .args(mode)
            .run()
            .status(2);
        assert_eq!(out.stderr, "error: invalid --groups-prefix `system:` (from --groups-prefix): an IdP group `masters` would become `system:masters` (cluster-admin); k8soidc's policy, not a kube-apiserver rule: names starting with `system:` are the cluster's own (group `system:masters` is cluster-admin); add `--groups-prefix oidc:` (or another prefix), or pass `--allow-system-names` to accept it\n");
    }
    let warning = "--allow-system-names: prefixes that let a token claim a `system:` name are accepted (k8soidc refuses them by default; group `system:masters` is cluster-admin)";
    let out = Test::new()
        .args(["render", "--distro", "kubeadm", "--allow-system-names"])
        .args(flags)
        .run()
        .success();
    assert!(
        out.stdout.contains(&format!("# warning: {warning}\n")),
        "{}",
        out.stdout
    );
    let out = Test::new()
        .fake("k3d")
        .args([
            "create",
            "--distro",
            "k3d",
            "--dry-run",
            "--skip-check",
            "--allow-system-names",
        ])
        .args(flags)
        .run()
        .success();
    assert!(
        out.stdout
            .contains(&format!("# note: warning: {warning}\n")),
        "{}",
        out.stdout
    );
    let manifest =
        crate::test::fixtures().join("apiserver-manifests/012-erkules-v1.15.3-plain.yaml");
    let out = Test::new()
        .write(
            "kube-apiserver.yaml",
            &std::fs::read_to_string(manifest).unwrap(),
        )
        .args([
            "patch",
            "--file",
            "kube-apiserver.yaml",
            "--dry-run",
            "--allow-system-names",
        ])
        .args(flags)
        .run()
        .success();
    assert!(
        out.stderr
            .contains(&format!("kube-apiserver.yaml: note: warning: {warning}\n")),
        "{}",
        out.stderr
    );
}

/// `issuer.caFile` (a file here, relative to the settings file) is inlined as
/// `certificateAuthority`; a bad one is refused at its field and line.
#[test]
fn ca_file_is_inlined_and_checked() {
    let pem = "-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n";
    let settings = "kubernetes-version: \"1.34\"\njwt:\n- issuer:\n    url: https://idp.example.com\n    audiences: [kubernetes]\n    caFile: ca.pem\n  claimMappings: {username: {claim: email, prefix: ''}}\n";
    let out = Test::new()
        .write("conf/k8soidc.yaml", settings)
        .write("conf/ca.pem", pem)
        .args([
            "render",
            "--distro",
            "kubeadm",
            "--config",
            "conf/k8soidc.yaml",
            "-o",
            "json",
        ])
        .run()
        .success();
    let r: Value = serde_json::from_str(&out.stdout).unwrap();
    let file = r["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| {
            a["path"]
                .as_str()
                .is_some_and(|p| p.ends_with("/authentication-config.yaml"))
        })
        .unwrap();
    let doc: Value = serde_yaml_ng::from_str(file["content"].as_str().unwrap()).unwrap();
    assert_eq!(
        doc["jwt"][0]["issuer"],
        json!({"url": "https://idp.example.com", "audiences": ["kubernetes"], "certificateAuthority": pem})
    );
    let out = Test::new()
        .write("conf/k8soidc.yaml", settings)
        .write(
            "conf/ca.pem",
            "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n",
        )
        .args([
            "render",
            "--distro",
            "kubeadm",
            "--config",
            "conf/k8soidc.yaml",
        ])
        .run()
        .status(2);
    assert!(out.stderr.starts_with("error: invalid jwt[0].issuer.caFile `conf/ca.pem` (from conf/k8soidc.yaml:6): Invalid value: holds a private key"), "{}", out.stderr);
    assert!(!out.stderr.contains("MIIE"));
}

/// `rbac` takes jwt settings (the groups prefix of jwt[0]).
#[test]
fn rbac_with_jwt_settings() {
    let out = Test::new()
        .write("k8soidc.yaml", &MULTI.replace("VERSION", "1.34"))
        .args(["rbac", "--group", "k8s-admins", "--clusterrole", "view"])
        .run()
        .success();
    assert!(
        out.stdout.contains(
            "- apiGroup: rbac.authorization.k8s.io\n  kind: Group\n  name: okta:k8s-admins\n"
        ),
        "{}",
        out.stdout
    );
}

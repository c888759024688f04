//! Conformance: every backend, same rules. For each distribution and each mode: the rendering
//! is not empty, it is deterministic, it never carries a secret, it never mixes `--oidc-*`
//! flags with `--authentication-config`; every create plan has steps, each with a reason.

use crate::testutil::*;
use crate::{backend, Distribution, Mode, OidcSettings, Step};

fn variants() -> Vec<(String, OidcSettings)> {
    let mut out = vec![("flags".to_string(), settings())];
    let mut with_ca = settings();
    with_ca.ca = Some(ca());
    out.push(("flags+ca".into(), with_ca));
    out.push((
        "claim-sub-no-prefix".into(),
        with(|i| {
            i.username_claim = None;
            i.username_prefix = None;
        }),
    ));
    let mut config = with(|i| {
        i.auth_mode = Some("config".into());
        i.kubernetes_version = Some("1.34".into());
    });
    config.ca = Some(ca());
    out.push(("config".into(), config));
    out.push((
        "config-v1beta1".into(),
        with(|i| {
            i.auth_mode = Some("config".into());
            i.kubernetes_version = Some("1.31".into());
        }),
    ));
    out.push(("structured".into(), structured(true)));
    out.push(("structured-jwt".into(), structured(false)));
    out
}

/// Several authenticators with CEL (the settings file's `jwt`), with or without the
/// anonymous section.
fn structured(anonymous: bool) -> OidcSettings {
    let yaml = "kubernetes-version: '1.34'\njwt:\n- issuer: {url: 'https://idp.example.com', audiences: [kubernetes]}\n  claimMappings: {username: {claim: email, prefix: ''}, groups: {claim: groups, prefix: 'oidc:'}}\n- issuer: {url: 'https://ci.example.com', audiences: [kubernetes, other], audienceMatchPolicy: MatchAny}\n  claimValidationRules: [{expression: \"claims.owner == 'example'\", message: owner}]\n  claimMappings: {username: {expression: \"'ci:' + claims.sub\"}}\n  userValidationRules: [{expression: \"!user.username.startsWith('system:')\"}]\nanonymous: {enabled: true, conditions: [{path: /livez}]}\n";
    let yaml = match anonymous {
        true => yaml.to_string(),
        false => yaml.replace(
            "anonymous: {enabled: true, conditions: [{path: /livez}]}\n",
            "",
        ),
    };
    let input: crate::SettingsInput = serde_yaml_ng::from_str(&yaml).unwrap();
    OidcSettings::validate(&input, None).unwrap()
}

const MANAGED: [&str; 10] = [
    "oidc-issuer-url",
    "oidc-client-id",
    "oidc-username-claim",
    "oidc-username-prefix",
    "oidc-groups-claim",
    "oidc-groups-prefix",
    "oidc-ca-file",
    "oidc-signing-algs",
    "oidc-required-claim",
    "authentication-config",
];

const SECRETS: [&str; 4] = ["PRIVATE KEY", "client-secret", "client_secret", "password"];

#[test]
fn every_backend_renders_deterministically_without_secrets() {
    for d in Distribution::ALL {
        let b = backend(d);
        assert_eq!(b.distribution(), d);
        for (name, s) in variants() {
            let r = match b.render(&s, &request()) {
                Ok(r) => r,
                // A managed service refuses what its API cannot take (a CA, config mode):
                // one line naming it, never a panic.
                Err(e) if d.is_managed() => {
                    let m = e.to_string();
                    assert!(!m.contains('\n') && m.contains(d.name()), "{d} {name}: {m}");
                    continue;
                }
                // k3s, RKE2 and k3d always pass --anonymous-auth=false, which kube-apiserver
                // refuses beside an `anonymous` section (crate::k3s::refuse_anonymous).
                Err(e)
                    if name == "structured"
                        && matches!(
                            d,
                            Distribution::K3s | Distribution::Rke2 | Distribution::K3d
                        ) =>
                {
                    assert!(
                        e.to_string().contains("`anonymous` section cannot go to"),
                        "{d}: {e}"
                    );
                    continue;
                }
                Err(e) => panic!("{d} {name}: {e}"),
            };
            assert!(!r.artifacts.is_empty(), "{d} {name}: empty rendering");
            assert_eq!(
                r,
                b.render(&s, &request()).unwrap(),
                "{d} {name}: not deterministic"
            );
            let text = r.to_string();
            for secret in SECRETS {
                assert!(!text.contains(secret), "{d} {name}: `{secret}` in output");
            }
            // What is rendered (not the titles, which may say what gets replaced).
            // A merge patch's `null` removes a key (capi v1beta1): that is not setting it.
            let mut body: String = r.artifacts.iter().map(|a| a.content.as_str()).collect();
            for flag in MANAGED {
                body = body
                    .replace(&format!("{flag}: null"), "")
                    .replace(&format!("\"{flag}\":null"), "");
            }
            let has_flags = [
                "oidc-issuer-url",
                "oidcIssuerURL",
                "kube_oidc_url",
                "oidcConfig:\n",
            ]
            .iter()
            .any(|k| body.contains(k));
            let has_config = [
                "authentication-config",
                "authenticationConfigFile",
                "AuthenticationConfiguration",
                "kube_apiserver_use_authentication_config_file: true",
            ]
            .iter()
            .any(|k| body.contains(k));
            match s.mode().unwrap() {
                // The provider's API takes the settings: neither flags nor a file of ours.
                _ if d.is_managed() => assert!(
                    body.contains(&s.issuer_url) && body.contains(&s.client_id),
                    "{d} {name}: {body}"
                ),
                Mode::Flags => assert!(
                    has_flags && !has_config,
                    "{d} {name}: flags mode output:\n{body}"
                ),
                Mode::Config(v) => {
                    assert!(
                        has_config && !has_flags,
                        "{d} {name}: config mode output:\n{body}"
                    );
                    // kops and kubespray pick the apiVersion themselves from the cluster's version.
                    let picks_own = matches!(d, Distribution::Kops | Distribution::Kubespray);
                    assert!(
                        text.contains(v.api_version()) || picks_own,
                        "{d} {name}: {}\n{text}",
                        v.api_version()
                    );
                }
            }
            assert!(
                text.contains("username prefix:") && text.contains("groups prefix:"),
                "{d} {name}: prefixes not stated"
            );
            if s.structured.is_some() {
                // Every authenticator, rule and the anonymous section reach the output.
                for want in [
                    "https://idp.example.com",
                    "https://ci.example.com",
                    "MatchAny",
                    "claimValidationRules",
                    "userValidationRules",
                    "startsWith",
                ] {
                    assert!(body.contains(want), "{d} {name}: no `{want}` in\n{body}");
                }
                // The settings' anonymous section reaches the output (without one, a
                // distribution may add its own for its health probes: Talos).
                if s.structured.as_ref().is_some_and(|x| x.anonymous.is_some()) {
                    assert!(
                        body.contains("anonymous:") && body.contains("/livez"),
                        "{d} {name}: no anonymous section\n{body}"
                    );
                }
            }
        }
    }
}

#[test]
fn every_create_plan_has_reasoned_steps() {
    for d in [
        Distribution::K3d,
        Distribution::Kind,
        Distribution::Kops,
        Distribution::Charmed,
    ] {
        let b = backend(d);
        for (name, s) in variants() {
            let mut req = request();
            if d == Distribution::Kops {
                req.name = "oidc.k8s.local".into();
            }
            let plan = match b.create_plan(&s, &req) {
                Ok(p) => p,
                // A refusal must be a clear, one-line reason, never a panic.
                Err(e) => {
                    let m = e.to_string();
                    assert!(!m.contains('\n') && m.contains(d.name()), "{d} {name}: {m}");
                    continue;
                }
            };
            assert!(!plan.steps.is_empty(), "{d} {name}: empty plan");
            for step in &plan.steps {
                assert!(
                    !step.why().trim().is_empty(),
                    "{d} {name}: step without a reason: {step:?}"
                );
                if let Step::Run { command, .. } = step {
                    assert!(
                        !command.program.contains(' '),
                        "{d} {name}: program is a shell string: {command}"
                    );
                }
            }
            assert_eq!(
                plan,
                b.create_plan(&s, &req).unwrap(),
                "{d} {name}: not deterministic"
            );
            let text = plan.to_string();
            for secret in SECRETS {
                assert!(!text.contains(secret), "{d} {name}: `{secret}` in dry run");
            }
        }
    }
}

use super::*;
use crate::testutil::*;
use crate::yamltext::fixture;

const SAMPLE: &str = "kubespray/inventory-sample-group_vars-k8s_cluster-k8s-cluster.yml";
const ROLE_DEFAULTS: &str = "kubespray/roles-kubernetes-control-plane-defaults-main-main.yml";
const GLOBAL_DEFAULTS: &str = "kubespray/roles-kubespray_defaults-defaults-main-main.yml";

fn with_ca() -> OidcSettings {
    let mut s = with(|i| {
        i.signing_algs = Some("RS256,ES256".into());
        i.required_claim = vec!["hd=example.com".into()];
    });
    s.ca = Some(ca());
    s
}

fn config_mode() -> OidcSettings {
    let mut s = with(|i| {
        i.auth_mode = Some("config".into());
        i.kubernetes_version = Some("1.33".into());
        i.required_claim = vec!["hd=example.com".into(), "tier=prod".into()];
    });
    s.ca = Some(ca());
    s
}

fn vars(text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap()
}

/// Every original line without "oidc" is still there, in order (an empty
/// `kube_kubeadm_apiserver_extra_args: {}` may become a block; our variables are replaced).
fn assert_minimal(before: &str, after: &str) {
    let mut rest = after.split_inclusive('\n');
    for line in before.split_inclusive('\n').filter(|l| {
        !l.contains("oidc")
            && !l.starts_with("kube_kubeadm_apiserver_extra_args: {}")
            && !yamltext::key_of(l.trim_end())
                .map(|(k, _)| is_managed_var(&k) && !l.starts_with(' '))
                .unwrap_or(false)
    }) {
        assert!(
            rest.any(|l| l == line),
            "line {line:?} was changed or moved\n{after}"
        );
    }
}

/// What kubespray's template (l.181-206 and l.257-260) would give kube-apiserver.
fn template_flags(v: &Value) -> Vec<(String, String)> {
    let s = |k: &str| {
        v.get(k)
            .map(|x| x.as_str().expect("string variable").to_string())
    };
    let mut out = Vec::new();
    let structured = v
        .get("kube_apiserver_use_authentication_config_file")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let auth = v
        .get("kube_oidc_auth")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if auth && s("kube_oidc_url").is_some() && s("kube_oidc_client_id").is_some() && !structured {
        for (var, flag) in [
            ("kube_oidc_url", "oidc-issuer-url"),
            ("kube_oidc_client_id", "oidc-client-id"),
            ("kube_oidc_ca_file", "oidc-ca-file"),
            ("kube_oidc_username_claim", "oidc-username-claim"),
            ("kube_oidc_groups_claim", "oidc-groups-claim"),
            ("kube_oidc_username_prefix", "oidc-username-prefix"),
            ("kube_oidc_groups_prefix", "oidc-groups-prefix"),
        ] {
            if let Some(val) = s(var) {
                out.push((
                    flag.to_string(),
                    val.replace("{{ kube_cert_dir }}", "/etc/kubernetes/ssl"),
                ));
            }
        }
    }
    if let Some(Value::Mapping(m)) = v.get("kube_kubeadm_apiserver_extra_args") {
        for (k, val) in m {
            out.push((
                k.as_str().unwrap().to_string(),
                val.as_str().expect("string value").to_string(),
            ));
        }
    }
    out.sort();
    out
}

fn expected_flags(s: &OidcSettings) -> Vec<(String, String)> {
    // kube_cert_dir is /etc/kubernetes/ssl by default.
    let mut f: Vec<(String, String)> = apiserver::args(s, s.mode().unwrap(), "/etc/kubernetes/ssl")
        .into_iter()
        .map(|a| (a.name, a.value))
        .collect();
    f.sort();
    f
}

/// The variables apart from ours (an emptied extra-args dict equals an absent one).
fn others(text: &str) -> Value {
    let mut v = vars(text);
    let m = v.as_mapping_mut().unwrap();
    m.retain(|k, val| {
        let k = k.as_str().unwrap();
        !(is_managed_var(k) || (k == EXTRA_ARGS && val.as_mapping().is_some_and(Mapping::is_empty)))
    });
    v
}

#[test]
fn flags_render_like_kubespray_would_pass_them() {
    for s in [settings(), with_ca()] {
        let text = group_vars(&s).unwrap();
        assert_eq!(template_flags(&vars(&text)), expected_flags(&s), "{text}");
    }
    let text = group_vars(&with_ca()).unwrap();
    assert!(text.starts_with("kube_oidc_auth: true\nkube_oidc_url: https://idp.example.com\nkube_oidc_client_id: kubernetes\n"), "{text}");
    assert!(
        text.contains("kube_oidc_username_prefix: \"oidc:\"\n"),
        "{text}"
    );
    assert!(
        text.contains("kube_oidc_ca_file: \"{{ kube_cert_dir }}/oidc-ca.pem\"\n"),
        "{text}"
    );
    let b64 = vars(&text)["kube_oidc_ca_cert"]
        .as_str()
        .unwrap()
        .to_string();
    let pem = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    assert_eq!(String::from_utf8(pem).unwrap(), ca().pem);
    assert!(text.ends_with("kube_kubeadm_apiserver_extra_args:\n  oidc-signing-algs: RS256,ES256\n  oidc-required-claim: hd=example.com\n"), "{text}");
}

#[test]
fn config_mode_jwt_holds_the_pem_not_a_path() {
    let text = group_vars(&config_mode()).unwrap();
    let v = vars(&text);
    assert_eq!(
        v["kube_apiserver_use_authentication_config_file"],
        Value::Bool(true)
    );
    let jwt = &v["kube_apiserver_authentication_config_jwt"][0];
    assert_eq!(
        jwt["issuer"]["url"].as_str(),
        Some("https://idp.example.com")
    );
    assert_eq!(
        jwt["issuer"]["certificateAuthority"].as_str(),
        Some(ca().pem.as_str())
    );
    assert_eq!(jwt["issuer"]["audiences"][0].as_str(), Some("kubernetes"));
    assert_eq!(
        jwt["claimValidationRules"][1]["claim"].as_str(),
        Some("tier")
    );
    assert_eq!(
        jwt["claimMappings"]["username"]["prefix"].as_str(),
        Some("oidc:")
    );
    assert!(v.get("kube_oidc_auth").is_none(), "{text}");
    assert!(
        text.contains("kube_apiserver_authentication_config_jwt:\n  - issuer:\n"),
        "{text}"
    );
}

#[test]
fn fixtures_patch_minimally_and_idempotently() {
    for name in [SAMPLE, ROLE_DEFAULTS, GLOBAL_DEFAULTS] {
        for s in [settings(), with_ca(), config_mode()] {
            let text = fixture(name);
            let out = patch_group_vars(&text, &s, false)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .unwrap_or_else(|| panic!("{name}: no change"));
            assert_minimal(&text, &out);
            assert_eq!(patch_group_vars(&out, &s, false).unwrap(), None, "{name}");
            let v = vars(&out);
            if s.mode().unwrap() == Mode::Flags {
                let mut got = template_flags(&v);
                got.retain(|(k, _)| k.starts_with("oidc-"));
                assert_eq!(got, expected_flags(&s), "{name}");
            } else {
                assert!(template_flags(&v)
                    .iter()
                    .all(|(k, _)| !k.starts_with("oidc-")));
            }
            // Everything else parses to the same values.
            let (Value::Mapping(before), Value::Mapping(after)) = (vars(&text), v) else {
                panic!("{name}: not a mapping")
            };
            for (k, val) in &before {
                let key = k.as_str().unwrap();
                if !is_managed_var(key) && key != EXTRA_ARGS {
                    assert_eq!(after.get(k), Some(val), "{name}: {key}");
                }
            }
            let back = patch_group_vars(&out, &s, true).unwrap().unwrap();
            assert_eq!(others(&back), others(&text), "{name}: remove");
            assert_minimal(&back, &text);
            if name == SAMPLE {
                assert_eq!(back, text, "remove restores the sample byte for byte");
            }
        }
    }
}

#[test]
fn sample_gets_vars_appended_after_its_last_line() {
    let text = fixture(SAMPLE);
    let out = patch_group_vars(&text, &settings(), false)
        .unwrap()
        .unwrap();
    assert!(
        out.starts_with(&text),
        "the sample only has comments for OIDC"
    );
    assert_eq!(
        &out[text.len()..],
        "kube_oidc_auth: true\nkube_oidc_url: https://idp.example.com\nkube_oidc_client_id: kubernetes\nkube_oidc_username_claim: email\nkube_oidc_username_prefix: \"oidc:\"\nkube_oidc_groups_claim: groups\nkube_oidc_groups_prefix: \"oidc:\"\n"
    );
}

#[test]
fn switching_modes_replaces_in_place_and_edits_extra_args() {
    let text = "---\n# cluster\nkube_version: 1.33.0\nkube_oidc_auth: true\nkube_oidc_url: https://old.example.com # old IdP\nkube_oidc_client_id: old\n\n# extra\nkube_kubeadm_apiserver_extra_args:\n  oidc-required-claim: x=y\n  profiling: \"false\"\nkube_log_level: 2\n";
    let out = patch_group_vars(text, &config_mode(), false)
        .unwrap()
        .unwrap();
    assert!(out.starts_with("---\n# cluster\nkube_version: 1.33.0\nkube_apiserver_use_authentication_config_file: true\nkube_apiserver_authentication_config_jwt:\n"), "{out}");
    assert!(out.ends_with("\n\n# extra\nkube_kubeadm_apiserver_extra_args:\n  profiling: \"false\"\nkube_log_level: 2\n"), "{out}");
    assert!(!out.contains("old"), "{out}");
    let flags = patch_group_vars(&out, &with_ca(), false).unwrap().unwrap();
    assert!(flags.contains("kube_kubeadm_apiserver_extra_args:\n  profiling: \"false\"\n  oidc-signing-algs: RS256,ES256\n  oidc-required-claim: hd=example.com\n"), "{flags}");
    assert!(
        !flags.contains("kube_apiserver_authentication_config_jwt"),
        "{flags}"
    );
    // CRLF stays CRLF.
    let crlf = patch_group_vars(&text.replace('\n', "\r\n"), &config_mode(), false)
        .unwrap()
        .unwrap();
    assert_eq!(crlf, out.replace('\n', "\r\n"));
}

#[test]
fn empty_extra_args_dict_and_empty_file() {
    let out = patch_group_vars("kube_kubeadm_apiserver_extra_args: {}\n", &with_ca(), false)
        .unwrap()
        .unwrap();
    assert!(
        out.starts_with("kube_kubeadm_apiserver_extra_args:\n  oidc-signing-algs: RS256,ES256\n"),
        "{out}"
    );
    let out = patch_group_vars("", &settings(), false).unwrap().unwrap();
    assert!(out.starts_with("kube_oidc_auth: true\n"), "{out}");
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    for (text, want) in [
        ("a: [unclosed\n", "is not valid YAML"),
        ("- a\n- b\n", "not one YAML mapping of variables"),
        ("a: 1\n---\nb: 2\n", "not one YAML mapping of variables"),
        (
            "? kube_oidc_url\n: x\n",
            "could not be matched line by line",
        ),
        (
            "kube_kubeadm_apiserver_extra_args: {profiling: \"false\"}\n",
            "flow style",
        ),
    ] {
        let e = patch_group_vars(text, &with_ca(), false)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot patch "), "{e}");
        assert!(e.contains(want), "{text} => {e}");
    }
    let s = with(|i| i.groups_claim = Some("{{claim}}".into()));
    let e = group_vars(&s).unwrap_err().to_string();
    assert!(e.contains("Ansible would evaluate"), "{e}");
    let s = with(|i| i.client_id = Some(r"a\b".into()));
    let e = group_vars(&s).unwrap_err().to_string();
    assert!(
        e.starts_with(r"kubespray cannot carry --client-id `a\\b`"),
        "{e}"
    );
    // In config mode the value travels through to_nice_yaml, which escapes it.
    let mut s = config_mode();
    s.client_id = r"a\b".into();
    assert!(group_vars(&s).is_ok());
    let s = with(|i| i.required_claim = vec!["a=1".into(), "b=2".into()]);
    let e = group_vars(&s).unwrap_err().to_string();
    assert!(e.contains("use `--auth-mode config`"), "{e}");
}

#[test]
fn render_and_detection() {
    let r = Kubespray.render(&with_ca(), &request()).unwrap();
    assert_eq!(
        r.artifacts[0].path.as_deref(),
        Some("inventory/oidc/group_vars/k8s_cluster/k8s-cluster.yml")
    );
    assert!(r
        .to_string()
        .contains("ansible-playbook -i inventory/oidc/hosts.yaml"));
    for name in [SAMPLE, ROLE_DEFAULTS, GLOBAL_DEFAULTS] {
        assert!(looks_like_group_vars(&fixture(name)), "{name}");
    }
    assert!(!looks_like_group_vars(&fixture(
        "capi-kcp/capi__docker-simple-cluster.v1beta2.yaml"
    )));
}

/// `kube_apiserver_authentication_config_anonymous` is replaced only when the settings give
/// `anonymous`; otherwise the file's own value (kubespray's default here) stays.
#[test]
fn anonymous_variable_is_replaced_only_when_given() {
    let text = "kube_version: v1.34.1\nkube_apiserver_authentication_config_anonymous:\n  enabled: false\n";
    let yaml = "kubernetes-version: '1.34'\njwt:\n- issuer: {url: 'https://idp.example.com', audiences: [k]}\n  claimMappings: {username: {claim: email, prefix: ''}}\n";
    let plain: crate::SettingsInput = serde_yaml_ng::from_str(yaml).unwrap();
    let s = OidcSettings::validate(&plain, None).unwrap();
    let after = patch_group_vars(text, &s, false).unwrap().unwrap();
    assert_eq!(
        vars(&after)["kube_apiserver_authentication_config_anonymous"],
        vars("enabled: false"),
        "{after}"
    );
    let with_anonymous: crate::SettingsInput = serde_yaml_ng::from_str(&format!(
        "{yaml}anonymous: {{enabled: true, conditions: [{{path: /livez}}]}}\n"
    ))
    .unwrap();
    let s = OidcSettings::validate(&with_anonymous, None).unwrap();
    let after = patch_group_vars(text, &s, false).unwrap().unwrap();
    assert_eq!(
        vars(&after)["kube_apiserver_authentication_config_anonymous"],
        vars("enabled: true\nconditions: [{path: /livez}]"),
        "{after}"
    );
    assert_eq!(
        after
            .matches("kube_apiserver_authentication_config_anonymous")
            .count(),
        1,
        "{after}"
    );
}

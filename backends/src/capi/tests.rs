use super::*;
use crate::testutil::*;
use crate::yamltext::fixture;
use crate::CaBundle;

const FIXTURES: [&str; 5] = [
    "capi-kcp/capi__docker-simple-cluster.v1beta1.yaml",
    "capi-kcp/capi__docker-simple-cluster.v1beta2.yaml",
    "capi-kcp/capz__cluster-template-aad.v1beta1.yaml",
    "capi-kcp/eksa__capd-full-oidc-cp.v1beta1.yaml",
    "capi-kcp/eksa__nutanix-oidc.v1beta1.yaml",
];

fn with_ca() -> OidcSettings {
    let mut s = settings();
    s.ca = Some(ca());
    s
}

fn config_mode() -> OidcSettings {
    let mut s = with(|i| {
        i.auth_mode = Some("config".into());
        i.kubernetes_version = Some("1.34".into());
        i.required_claim = vec!["hd=example.com".into(), "tier=prod".into()];
    });
    s.ca = Some(ca());
    s
}

/// clusterctl's variable substitution, enough to validate templates: `${X:=d}`/`${X:-d}` give
/// the default, `${X}` gives `x1`.
fn envsubst(text: &str) -> String {
    let mut t = text.to_string();
    while let Some(i) = t.rfind("${") {
        let j = i + t[i..].find('}').expect("closed placeholder");
        let inner = &t[i + 2..j];
        let rep = inner
            .find([':', '=', '-'])
            .map(|k| inner[k..].trim_start_matches([':', '=', '-']).to_string())
            .unwrap_or_else(|| "x1".into());
        t = format!("{}{rep}{}", &t[..i], &t[j + 1..]);
    }
    t
}

fn kcps(text: &str) -> Vec<serde_json::Value> {
    let lines = yamltext::split(&envsubst(text));
    yamltext::documents(&lines)
        .into_iter()
        .filter_map(|r| {
            let v: serde_json::Value = serde_yaml_ng::from_str(&yamltext::join(&lines[r])).unwrap();
            (v.get("kind").and_then(|k| k.as_str()) == Some("KubeadmControlPlane")).then_some(v)
        })
        .collect()
}

fn schema_errors(obj: &serde_json::Value) -> Vec<String> {
    let version = obj["apiVersion"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    let schema: serde_json::Value =
        serde_json::from_str(&fixture(&format!("schemas/kcp-{version}.schema.json"))).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(obj)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    errors
}

fn api_server(obj: &serde_json::Value) -> &serde_json::Value {
    &obj["spec"]["kubeadmConfigSpec"]["clusterConfiguration"]["apiServer"]
}

/// The flags as the API server gets them, whatever the version.
fn flags(obj: &serde_json::Value) -> Vec<(String, String)> {
    match &api_server(obj)["extraArgs"] {
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("string value").to_string()))
            .collect(),
        serde_json::Value::Array(a) => a
            .iter()
            .map(|i| {
                (
                    i["name"].as_str().unwrap().to_string(),
                    i["value"].as_str().expect("string value").to_string(),
                )
            })
            .collect(),
        _ => vec![],
    }
}

fn managed_flags(obj: &serde_json::Value) -> Vec<(String, String)> {
    let mut f: Vec<_> = flags(obj)
        .into_iter()
        .filter(|(k, _)| is_managed_flag(k))
        .collect();
    f.sort();
    f
}

/// Every original line without "oidc" is still there, in order (a minimal edit).
fn assert_minimal(before: &str, after: &str) {
    let mut rest = after.split_inclusive('\n');
    for line in before.split_inclusive('\n').filter(|l| !l.contains("oidc")) {
        assert!(
            rest.any(|l| l == line),
            "line {line:?} was changed or moved\n{after}"
        );
    }
}

fn expected_flags(s: &OidcSettings) -> Vec<(String, String)> {
    let mut f: Vec<_> = apiserver::args(s, s.mode().unwrap(), NODE_DIR)
        .into_iter()
        .map(|a| (a.name, a.value))
        .collect();
    f.sort();
    f
}

#[test]
fn mapping_equality_ignores_order() {
    let a: Value = serde_yaml_ng::from_str("a: 1\nb: 2\n").unwrap();
    let b: Value = serde_yaml_ng::from_str("b: 2\na: 1\n").unwrap();
    assert_eq!(a, b);
}

#[test]
fn every_fixture_patches_minimally_idempotently_and_validly() {
    for settings in [settings(), with_ca(), config_mode()] {
        for name in FIXTURES {
            let text = fixture(name);
            let out = patch_kcp(&text, &settings, false)
                .unwrap_or_else(|e| panic!("{name}: {e}"))
                .unwrap_or_else(|| panic!("{name}: no change"));
            assert_minimal(&text, &out);
            assert_eq!(
                patch_kcp(&out, &settings, false).unwrap(),
                None,
                "{name}: second run changed it"
            );
            // Other documents keep their bytes: same count of separators.
            assert_eq!(text.matches("\n---").count(), out.matches("\n---").count());
            for kcp in kcps(&out) {
                let errors = schema_errors(&kcp);
                assert!(errors.is_empty(), "{name}: {errors:#?}");
                assert_eq!(managed_flags(&kcp), expected_flags(&settings), "{name}");
                let names: Vec<String> = flags(&kcp).into_iter().map(|(k, _)| k).collect();
                let mut unique = names.clone();
                unique.sort();
                unique.dedup();
                assert_eq!(unique.len(), names.len(), "{name}: duplicate flags");
                let files = kcp["spec"]["kubeadmConfigSpec"]["files"].as_array();
                let ours: Vec<&serde_json::Value> = files
                    .into_iter()
                    .flatten()
                    .filter(|f| f["path"].as_str().unwrap_or("").starts_with(NODE_DIR))
                    .collect();
                let want = apiserver::node_files(&settings, settings.mode().unwrap(), NODE_DIR);
                assert_eq!(ours.len(), want.len(), "{name}");
                for (f, w) in ours.iter().zip(&want) {
                    assert_eq!(f["content"].as_str(), Some(w.content.as_str()), "{name}");
                }
            }
        }
    }
}

#[test]
fn remove_takes_out_only_oidc() {
    for name in FIXTURES {
        let text = fixture(name);
        let patched = patch_kcp(&text, &config_mode(), false).unwrap().unwrap();
        let removed = patch_kcp(&patched, &config_mode(), true).unwrap().unwrap();
        assert_eq!(
            patch_kcp(&removed, &settings(), true).unwrap(),
            None,
            "{name}"
        );
        for kcp in kcps(&removed) {
            assert!(managed_flags(&kcp).is_empty(), "{name}");
            assert!(schema_errors(&kcp).is_empty(), "{name}");
        }
        // Without prior OIDC the round trip gives the original bytes back.
        if !text.contains("oidc-") {
            assert_eq!(removed, text, "{name}");
        }
        assert_minimal(&removed, &text);
    }
}

#[test]
fn existing_oidc_is_replaced_not_duplicated() {
    let text = fixture("capi-kcp/eksa__capd-full-oidc-cp.v1beta1.yaml");
    let out = patch_kcp(&text, &settings(), false).unwrap().unwrap();
    assert_eq!(out.matches("oidc-issuer-url:").count(), 1);
    assert!(
        !out.contains("oidc-required-claim"),
        "stale flag left behind"
    );
    assert!(out.contains("          oidc-issuer-url: https://idp.example.com\n"));
    assert!(out.contains("          profiling: \"false\"\n"));
    let kcp = &kcps(&out)[0];
    assert_eq!(
        api_server(kcp)["extraArgs"]["tls-cipher-suites"],
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
    );
}

#[test]
fn v1beta2_gets_a_list_and_new_keys_in_place() {
    let text = fixture("capi-kcp/capi__docker-simple-cluster.v1beta2.yaml");
    let out = patch_kcp(&text, &with_ca(), false).unwrap().unwrap();
    let expected = "      apiServer:
        certSANs:
        - localhost
        - 127.0.0.1
        - 0.0.0.0
        extraArgs:
        - name: oidc-issuer-url
          value: https://idp.example.com
        - name: oidc-client-id
          value: kubernetes
        - name: oidc-username-claim
          value: email
        - name: oidc-username-prefix
          value: \"oidc:\"
        - name: oidc-groups-claim
          value: groups
        - name: oidc-groups-prefix
          value: \"oidc:\"
        - name: oidc-ca-file
          value: /etc/kubernetes/oidc/oidc-ca.pem
        extraVolumes:
        - name: oidc
          hostPath: /etc/kubernetes/oidc
          mountPath: /etc/kubernetes/oidc
          readOnly: true
          pathType: DirectoryOrCreate
    initConfiguration:
";
    assert!(out.contains(expected), "{out}");
    assert!(
        out.contains(
            "          value: \"nodefs.available<0%,nodefs.inodesFree<0%,imagefs.available<0%\"
    files:
    - path: /etc/kubernetes/oidc/oidc-ca.pem
      owner: root:root
      permissions: \"0644\"
      content: |
        -----BEGIN CERTIFICATE-----
        MIIBdummy
        -----END CERTIFICATE-----
---
"
        ),
        "{out}"
    );
}

#[test]
fn templates_keep_placeholders_and_refuse_dollar_values() {
    let text = fixture("capi-kcp/capz__cluster-template-aad.v1beta1.yaml");
    let out = patch_kcp(&text, &settings(), false).unwrap().unwrap();
    assert!(out.contains(
        "          service-account-issuer: ${SERVICE_ACCOUNT_ISSUER:-https://kubernetes.default.svc.cluster.local}\n"
    ));
    assert!(out.contains("  replicas: ${CONTROL_PLANE_MACHINE_COUNT:=1}\n"));
    assert_eq!(out.matches("oidc-client-id").count(), 1);
    let s = with(|i| i.client_id = Some("a$b".into()));
    let e = patch_kcp(&text, &s, false).unwrap_err().to_string();
    assert!(e.starts_with("capi cannot carry --client-id `a$b`"), "{e}");
    // Outside templates a `$` is just a character.
    let plain = fixture("capi-kcp/capi__docker-simple-cluster.v1beta2.yaml");
    assert!(patch_kcp(&plain, &s, false).unwrap().is_some());
}

#[test]
fn crlf_and_missing_final_newline_are_kept() {
    let text = fixture("capi-kcp/capi__docker-simple-cluster.v1beta1.yaml");
    let lf = patch_kcp(&text, &with_ca(), false).unwrap().unwrap();
    let crlf_in = text.replace('\n', "\r\n");
    let crlf = patch_kcp(&crlf_in, &with_ca(), false).unwrap().unwrap();
    assert_eq!(crlf, lf.replace('\n', "\r\n"));
    // A lone KCP whose apiServer block ends the file, without a final newline.
    let lone = "apiVersion: controlplane.cluster.x-k8s.io/v1beta1\nkind: KubeadmControlPlane\nmetadata:\n  name: cp\nspec:\n  kubeadmConfigSpec:\n    clusterConfiguration:\n      apiServer:\n        extraArgs:\n          cloud-provider: external";
    let out = patch_kcp(lone, &settings(), false).unwrap().unwrap();
    assert!(!out.ends_with('\n'), "{out:?}");
    assert!(
        out.starts_with(&format!(
            "{lone}\n          oidc-issuer-url: https://idp.example.com\n"
        )),
        "{out}"
    );
    assert_eq!(patch_kcp(&out, &settings(), true).unwrap().unwrap(), lone);
}

#[test]
fn empty_flow_collections_become_blocks() {
    let text = "apiVersion: controlplane.cluster.x-k8s.io/v1beta2\nkind: KubeadmControlPlane\nmetadata:\n  name: cp\nspec:\n  kubeadmConfigSpec:\n    clusterConfiguration:\n      apiServer: {} # set later\n    files: []\n";
    let out = patch_kcp(text, &with_ca(), false).unwrap().unwrap();
    assert!(
        out.contains(
            "      apiServer: # set later\n        extraArgs:\n        - name: oidc-issuer-url\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("    files:\n    - path: /etc/kubernetes/oidc/oidc-ca.pem\n"),
        "{out}"
    );
}

#[test]
fn bad_input_is_refused_with_a_reason() {
    let kcp = |api: &str, body: &str| {
        format!(
            "apiVersion: {api}\nkind: KubeadmControlPlane\nmetadata:\n  name: cp\nspec:\n{body}"
        )
    };
    let v1 = "controlplane.cluster.x-k8s.io/v1beta1";
    let cases = [
        ("key: [unclosed\n".to_string(), "is not valid YAML"),
        ("apiVersion: v1\nkind: ConfigMap\n".into(), "holds no KubeadmControlPlane"),
        (
            kcp("controlplane.cluster.x-k8s.io/v1alpha4", "  replicas: 1\n"),
            "apiVersion `controlplane.cluster.x-k8s.io/v1alpha4` is not one k8soidc knows",
        ),
        (
            kcp(v1, "  kubeadmConfigSpec:\n    clusterConfiguration:\n      apiServer:\n        extraArgs: {cloud-provider: external}\n"),
            "is written on one line (flow style)",
        ),
        (
            kcp(v1, "  kubeadmConfigSpec:\n    clusterConfiguration:\n      apiServer:\n        extraArgs: &args\n          a: b\n"),
            "is written on one line (flow style)",
        ),
        (
            kcp(v1, "  kubeadmConfigSpec: [1]\n"),
            "is not a mapping",
        ),
    ];
    for (text, want) in cases {
        let e = patch_kcp(&text, &settings(), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains(want), "{text}\n=> {e}");
        assert!(e.starts_with("cannot patch "), "{e}");
    }
    // Two required claims cannot be two flags.
    let s = with(|i| i.required_claim = vec!["a=1".into(), "b=2".into()]);
    let e = patch_kcp(&kcp(v1, "  replicas: 1\n"), &s, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("use `--auth-mode config`"), "{e}");
    // An oversized AuthenticationConfiguration.
    let mut big = config_mode();
    let body = "MIIB".repeat(3000);
    big.ca = Some(CaBundle {
        local_path: "/ca.pem".into(),
        pem: format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n"),
    });
    let e = patch_kcp(&kcp(v1, "  replicas: 1\n"), &big, false)
        .unwrap_err()
        .to_string();
    assert!(e.contains("holds at most 10240"), "{e}");
}

/// RFC 7386.
fn merge_apply(target: &mut serde_json::Value, patch: &serde_json::Value) {
    match patch {
        serde_json::Value::Object(p) => {
            if !target.is_object() {
                *target = serde_json::json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge_apply(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn skeleton(v: KcpVersion) -> serde_json::Value {
    let machine = match v {
        KcpVersion::V1beta1 => {
            serde_json::json!({"infrastructureRef": {"apiVersion": "infrastructure.cluster.x-k8s.io/v1beta1", "kind": "DockerMachineTemplate", "name": "cp"}})
        }
        KcpVersion::V1beta2 => {
            serde_json::json!({"spec": {"infrastructureRef": {"apiGroup": "infrastructure.cluster.x-k8s.io", "kind": "DockerMachineTemplate", "name": "cp"}}})
        }
    };
    serde_json::json!({
        "apiVersion": v.api_version(),
        "kind": "KubeadmControlPlane",
        "metadata": {"name": "cp"},
        "spec": {"version": "v1.34.0", "machineTemplate": machine, "kubeadmConfigSpec": {}},
    })
}

#[test]
fn rendered_patches_give_schema_valid_objects() {
    for s in [settings(), with_ca(), config_mode()] {
        for v in [KcpVersion::V1beta1, KcpVersion::V1beta2] {
            let yaml: serde_json::Value =
                serde_yaml_ng::from_str(&merge_patch(&s, v).unwrap()).unwrap();
            let cmd = patch_command("cp", &s, v).unwrap();
            assert_eq!(
                cmd.args[..6],
                [
                    "patch",
                    "kubeadmcontrolplane",
                    "cp",
                    "--type",
                    "merge",
                    "-p"
                ]
            );
            let json: serde_json::Value = serde_json::from_str(&cmd.args[6]).unwrap();
            assert_eq!(yaml, json, "YAML and JSON patches agree");
            let mut obj = skeleton(v);
            merge_apply(&mut obj, &json);
            let errors = schema_errors(&obj);
            assert!(errors.is_empty(), "{v:?}: {errors:#?}\n{obj:#}");
            assert_eq!(managed_flags(&obj), expected_flags(&s));
        }
    }
}

#[test]
fn v1beta1_patch_nulls_the_other_managed_flags() {
    let p = merge_patch(&settings(), KcpVersion::V1beta1).unwrap();
    assert!(p.contains("          authentication-config: null\n"), "{p}");
    assert!(
        p.contains("          oidc-issuer-url: https://idp.example.com\n"),
        "{p}"
    );
    let p = merge_patch(&settings(), KcpVersion::V1beta2).unwrap();
    assert!(!p.contains("null"), "{p}");
}

#[test]
fn render_shows_both_versions() {
    let r = Capi.render(&with_ca(), &request()).unwrap();
    let text = r.to_string();
    assert_eq!(r.artifacts.len(), 4);
    assert!(text.contains("# merge patch for controlplane.cluster.x-k8s.io/v1beta2 (storage version; extraArgs is a list)"), "{text}");
    assert!(
        text.contains("kubectl patch kubeadmcontrolplane oidc --type merge -p '{\"spec\":"),
        "{text}"
    );
    assert!(
        text.contains("warning: a merge patch replaces lists whole"),
        "{text}"
    );
}

fn live(obj: &serde_json::Value) -> String {
    serde_json::to_string(obj).unwrap()
}

#[test]
fn live_patch_keeps_other_list_entries() {
    let kcp = &kcps(&fixture("capi-kcp/eksa__capd-full-oidc-cp.v1beta1.yaml"))[0];
    let p = live_patch(&live(kcp), Some(&with_ca())).unwrap().unwrap();
    assert_eq!(p.version, KcpVersion::V1beta1);
    let patch: serde_json::Value = serde_json::from_str(&p.patch).unwrap();
    let args =
        &patch["spec"]["kubeadmConfigSpec"]["clusterConfiguration"]["apiServer"]["extraArgs"];
    assert_eq!(args["oidc-required-claim"], serde_json::Value::Null);
    assert_eq!(args["oidc-issuer-url"], "https://idp.example.com");
    assert!(
        args.get("profiling").is_none(),
        "unchanged keys stay out of the patch"
    );
    let vols = patch["spec"]["kubeadmConfigSpec"]["clusterConfiguration"]["apiServer"]
        ["extraVolumes"]
        .as_array()
        .unwrap();
    assert_eq!(vols.len(), 3, "audit volumes kept: {vols:?}");
    let files = patch["spec"]["kubeadmConfigSpec"]["files"]
        .as_array()
        .unwrap();
    assert_eq!(files.len(), 2);
    let mut after = kcp.clone();
    merge_apply(&mut after, &patch);
    assert!(schema_errors(&after).is_empty());
    assert_eq!(managed_flags(&after), expected_flags(&with_ca()));
    assert_eq!(live_patch(&live(&after), Some(&with_ca())).unwrap(), None);
    assert!(p.after.contains("oidc-ca.pem") && !p.before.contains("oidc-ca.pem"));
    // Removing empties what only we added: the key goes (null), never `[]`.
    let v2 = &kcps(&fixture(
        "capi-kcp/capi__docker-simple-cluster.v1beta2.yaml",
    ))[0];
    let p = live_patch(&live(v2), Some(&with_ca())).unwrap().unwrap();
    let mut after = v2.clone();
    merge_apply(&mut after, &serde_json::from_str(&p.patch).unwrap());
    let back = live_patch(&live(&after), None).unwrap().unwrap();
    let patch: serde_json::Value = serde_json::from_str(&back.patch).unwrap();
    assert_eq!(
        patch["spec"]["kubeadmConfigSpec"]["files"],
        serde_json::Value::Null
    );
    merge_apply(&mut after, &patch);
    assert_eq!(&after, v2);
}

#[test]
fn rollout_reads_both_status_shapes() {
    let v2 = serde_json::json!({
        "apiVersion": KcpVersion::V1beta2.api_version(),
        "metadata": {"generation": 3},
        "spec": {"replicas": 3},
        "status": {"observedGeneration": 3, "replicas": 4, "upToDateReplicas": 1, "readyReplicas": 3, "availableReplicas": 3,
                   "conditions": [{"type": "RollingOut", "status": "True", "reason": "RollingOut", "message": "Rolling out 2 not up-to-date replicas"}]},
    });
    let r = rollout(&live(&v2)).unwrap();
    assert!(!r.done);
    assert_eq!(r.summary, "1/3 up to date, 3/3 ready, 4 machines");
    assert_eq!(
        r.conditions,
        ["RollingOut=True RollingOut: Rolling out 2 not up-to-date replicas"]
    );
    let v1 = serde_json::json!({
        "apiVersion": KcpVersion::V1beta1.api_version(),
        "metadata": {"generation": 2},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1, "unavailableReplicas": 0},
    });
    assert!(rollout(&live(&v1)).unwrap().done);
    let stale = serde_json::json!({
        "apiVersion": KcpVersion::V1beta1.api_version(),
        "metadata": {"generation": 3},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1},
    });
    let r = rollout(&live(&stale)).unwrap();
    assert!(
        !r.done
            && r.summary
                .ends_with("controller has not seen the change yet")
    );
}

#[test]
fn looks_like() {
    for name in FIXTURES {
        assert!(looks_like_kcp(&fixture(name)), "{name}");
    }
    assert!(!looks_like_kcp(&fixture(
        "kubespray/inventory-sample-group_vars-k8s_cluster-k8s-cluster.yml"
    )));
}

#[test]
fn the_schemas_do_bite() {
    let mut obj = skeleton(KcpVersion::V1beta2);
    obj["spec"]["kubeadmConfigSpec"]["clusterConfiguration"] =
        serde_json::json!({"apiServer": {"extraArgs": []}});
    assert!(
        !schema_errors(&obj).is_empty(),
        "empty v1beta2 list accepted"
    );
    let mut obj = skeleton(KcpVersion::V1beta1);
    obj["spec"]["kubeadmConfigSpec"]["clusterConfiguration"] =
        serde_json::json!({"apiServer": {"extraArgs": {"profiling": false}}});
    assert!(
        !schema_errors(&obj).is_empty(),
        "boolean flag value accepted"
    );
    let mut obj = skeleton(KcpVersion::V1beta1);
    obj["spec"]["kubeadmConfigSpec"]["files"] =
        serde_json::json!([{"path": "/x", "content": "a".repeat(MAX_CONTENT + 1)}]);
    assert!(
        !schema_errors(&obj).is_empty(),
        "oversized content accepted"
    );
}

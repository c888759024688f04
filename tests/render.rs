//! `render` for every distribution, and the k3d config file against k3d's own schema.

use crate::test::{fixtures, Test};

fn oidc() -> Vec<&'static str> {
    vec![
        "--issuer-url",
        "https://idp.example.com",
        "--client-id",
        "kubernetes",
        "--groups-claim",
        "groups",
        "--groups-prefix",
        "oidc:",
    ]
}

#[test]
fn render_states_prefixes_and_sample() {
    let out = Test::new()
        .args(["render", "--distro", "k3d"])
        .args(oidc())
        .run()
        .success();
    assert!(out.stdout.contains("# username prefix: `https://idp.example.com#` (no --username-prefix and the claim is `sub`"), "{}", out.stdout);
    assert!(
        out.stdout.contains("# groups prefix: `oidc:`"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(r#"becomes user "https://idp.example.com#00u1a2b3c4" in groups "oidc:k8s-admins", "system:authenticated""#), "{}", out.stdout);
    assert!(
        out.stdout.contains(
            "--kube-apiserver-arg=oidc-username-prefix=https://idp.example.com#@server:*"
        ),
        "{}",
        out.stdout
    );
}

#[test]
fn k3d_config_file_validates_against_k3d_schema() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("schemas/k3d-v1alpha5.schema.json")).unwrap(),
    )
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for extra in [
        vec![],
        vec![
            "--auth-mode",
            "config",
            "--kubernetes-version",
            "1.31",
            "--required-claim",
            "hd=example.com",
        ],
    ] {
        let out = Test::new()
            .args(["render", "--distro", "k3d", "-o", "json"])
            .args(oidc())
            .args(&extra)
            .run()
            .success();
        let r: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        let file = r["artifacts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["path"].as_str().is_some_and(|p| p.ends_with(".k3d.yaml")))
            .unwrap();
        let yaml: serde_json::Value =
            serde_yaml_ng::from_str(file["content"].as_str().unwrap()).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&yaml)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{errors:?}\n{yaml:#}");
    }
}

#[test]
fn render_json_and_yaml_parse() {
    let json = Test::new()
        .args(["render", "--distro", "k3d", "-o", "json"])
        .args(oidc())
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["distribution"], "k3d");
    assert_eq!(v["groups_prefix"], "oidc:");
    let yaml = Test::new()
        .args(["render", "--distro", "k3d", "-o", "yaml"])
        .args(oidc())
        .run()
        .success();
    let y: serde_json::Value = serde_yaml_ng::from_str(&yaml.stdout).unwrap();
    assert_eq!(y, v);
}

#[test]
fn completions() {
    let out = Test::new().args(["completions", "bash"]).run().success();
    assert!(out.stdout.contains("k8soidc"), "{}", out.stdout);
}

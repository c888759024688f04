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
    assert_eq!(v["groupsPrefix"], "oidc:");
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

#[test]
fn trailing_slash_is_kept_exactly_and_warned_about() {
    let out = Test::new()
        .args([
            "render",
            "--distro",
            "k3d",
            "--issuer-url",
            "https://login.example.com/tenant/v2.0/",
            "--client-id",
            "k",
            "--username-prefix",
            "-",
        ])
        .run()
        .success();
    assert!(out.stdout.contains("# warning: issuer `https://login.example.com/tenant/v2.0/` ends with `/`: it is kept exactly"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("oidc-issuer-url=https://login.example.com/tenant/v2.0/@server:*"),
        "{}",
        out.stdout
    );
}

/// The pure crate's contract, enforced: none of the I/O crates may become its dependency.
#[test]
fn backends_crate_has_no_io_dependencies() {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/backends/Cargo.toml"))
            .unwrap();
    let doc: toml_like::Doc = toml_like::parse(&manifest);
    for forbidden in [
        "tokio",
        "openssh",
        "duct",
        "which",
        "dialoguer",
        "indicatif",
        "reqwest",
    ] {
        assert!(
            !doc.dependencies.iter().any(|d| d == forbidden),
            "backends depends on {forbidden}"
        );
    }
}

/// Just enough TOML reading for the test above: dependency names of `[dependencies]`.
mod toml_like {
    pub(crate) struct Doc {
        pub(crate) dependencies: Vec<String>,
    }

    pub(crate) fn parse(text: &str) -> Doc {
        let mut section = "";
        let mut dependencies = Vec::new();
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line;
            } else if section == "[dependencies]" {
                if let Some((name, _)) = line.split_once('=') {
                    dependencies.push(
                        name.trim()
                            .split('.')
                            .next()
                            .unwrap_or_default()
                            .to_string(),
                    );
                }
            }
        }
        assert!(!dependencies.is_empty(), "no [dependencies] read");
        Doc { dependencies }
    }
}

//! Issue 15, Gardener: `patch --shoot NAME -n garden-PROJECT` (ConfigMap + Shoot merge patch
//! with kubectl), `--dry-run`, `--dry-run=server`, `--remove`, the deprecated `oidcConfig`
//! with its warning and Gardener's refusal from Kubernetes 1.32, against the fake kubectl.

use crate::test::{Output, Test, SETTINGS};

fn shoot(version: &str) -> String {
    format!("apiVersion: core.gardener.cloud/v1beta1\nkind: Shoot\nmetadata:\n  name: prod\n  namespace: garden-core\nspec:\n  kubernetes:\n    version: {version}\n    kubeAPIServer:\n      enableAnonymousAuthentication: false\n")
}

fn patch(version: &str, extra: &[&str]) -> Test {
    Test::new()
        .fake("kubectl")
        .write("fake-state/kubectl/Shoot-garden-core-prod", &shoot(version))
        .args([
            "patch",
            "--shoot",
            "prod",
            "-n",
            "garden-core",
            "--yes",
            "--skip-check",
        ])
        .args(SETTINGS)
        .args(extra)
}

fn stored(out: &Output) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(&out.file("fake-state/kubectl/Shoot-garden-core-prod")).unwrap()
}

const CONFIG: [&str; 4] = ["--auth-mode", "config", "--kubernetes-version", "1.33"];

/// Structured authentication: the ConfigMap first, then the Shoot names it; other Shoot fields
/// kept; `--dry-run=server` runs both with kubectl's server dry run and stores nothing; a plain
/// `--dry-run` calls nothing; `--remove` takes the reference out.
#[test]
fn structured_authentication() {
    let dry = patch("1.33.2", &CONFIG).args(["--dry-run"]).run().success();
    assert!(dry.calls().is_empty(), "{:?}", dry.calls());
    assert!(
        dry.stdout
            .contains("+ kubectl patch shoot prod -n garden-core --type merge -p "),
        "{}",
        dry.stdout
    );
    let server = patch("1.33.2", &CONFIG)
        .args(["--dry-run=server"])
        .run()
        .success();
    // Only the ConfigMap is checked: Gardener refuses a Shoot naming a ConfigMap that does not
    // exist yet, and a server dry run stores nothing (the plan says so).
    let calls = server.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0][1..], ["apply", "-f", "-", "--dry-run=server"]);
    assert!(
        server
            .stderr
            .contains("--dry-run=server checks the ConfigMap only"),
        "{}",
        server.stderr
    );
    assert!(!server
        .root
        .join("fake-state/kubectl/ConfigMap-garden-core-prod-oidc-authentication")
        .exists());
    // Flags mode has no ConfigMap: the Shoot patch itself is checked server-side.
    let flags = patch("1.31.4", &["--dry-run=server"]).run().success();
    assert_eq!(flags.calls().len(), 1);
    assert_eq!(flags.calls()[0][1..3], ["patch", "shoot"]);
    assert!(
        flags.stderr.contains("accepted by the garden cluster"),
        "{}",
        flags.stderr
    );
    assert_eq!(
        server.file("fake-state/kubectl/Shoot-garden-core-prod"),
        shoot("1.33.2")
    );
    let out = patch("1.33.2", &CONFIG).run().success();
    let verbs: Vec<String> = out.calls().iter().map(|c| c[1..3].join(" ")).collect();
    assert_eq!(verbs, ["apply -f", "patch shoot"]);
    let s = stored(&out);
    let api = &s["spec"]["kubernetes"]["kubeAPIServer"];
    assert_eq!(
        api["structuredAuthentication"]["configMapName"],
        "prod-oidc-authentication"
    );
    assert_eq!(api["enableAnonymousAuthentication"], false);
    let cm: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &out.file("fake-state/kubectl/ConfigMap-garden-core-prod-oidc-authentication"),
    )
    .unwrap();
    let config = cm["data"]["config.yaml"].as_str().unwrap();
    assert!(
        config.starts_with(
            "apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthenticationConfiguration\n"
        ),
        "{config}"
    );
    let removed = Test::new()
        .fake("kubectl")
        .write(
            "fake-state/kubectl/Shoot-garden-core-prod",
            &out.file("fake-state/kubectl/Shoot-garden-core-prod"),
        )
        .args([
            "patch",
            "--shoot",
            "prod",
            "-n",
            "garden-core",
            "--yes",
            "--remove",
        ])
        .run()
        .success();
    assert_eq!(
        stored(&removed)["spec"]["kubernetes"]["kubeAPIServer"],
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>("enableAnonymousAuthentication: false")
            .unwrap()
    );
}

/// Flags mode renders the deprecated oidcConfig with a warning; Gardener takes it before 1.32
/// and refuses it from 1.32 on (the run fails with Gardener's message, nothing stored).
#[test]
fn deprecated_oidc_config() {
    let out = patch("1.31.4", &[]).run().success();
    assert!(
        out.stderr.contains(
            "oidcConfig is deprecated and Gardener forbids it for Kubernetes 1.32 and later"
        ),
        "{}",
        out.stderr
    );
    let s = stored(&out);
    let oidc = &s["spec"]["kubernetes"]["kubeAPIServer"]["oidcConfig"];
    assert_eq!(oidc["issuerURL"], "https://idp.example.com");
    assert_eq!(oidc["usernamePrefix"], "oidc:");
    let refused = patch("1.32.1", &[]).run().status(1);
    assert!(
        refused
            .stderr
            .contains("oidcConfig field is no longer supported"),
        "{}",
        refused.stderr
    );
    assert_eq!(
        refused.file("fake-state/kubectl/Shoot-garden-core-prod"),
        shoot("1.32.1")
    );
}

/// `--shoot` without its namespace is bad input (exit 2, nothing run).
#[test]
fn shoot_needs_a_namespace() {
    let out = Test::new()
        .fake("kubectl")
        .args(["patch", "--shoot", "prod", "--yes", "--skip-check"])
        .args(SETTINGS)
        .run()
        .status(2);
    assert_eq!(
        out.stderr,
        "error: missing --namespace: say which project namespace holds Shoot `prod`, e.g. `--namespace garden-myproject`\n"
    );
    assert!(out.calls().is_empty());
}

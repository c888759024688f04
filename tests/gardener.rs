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

/// A Shoot as Gardener's dashboard writes it (provider, region, networking are the user's).
const NEW_SHOOT: &str = "apiVersion: core.gardener.cloud/v1beta1
kind: Shoot
metadata:
  name: dev
  namespace: garden-core
spec:
  cloudProfileName: aws
  region: eu-west-1
  provider:
    type: aws
  networking:
    type: calico
  kubernetes:
    version: 1.33.2
";

fn create(shoot: &str, extra: &[&str]) -> Test {
    Test::new()
        .fake("kubectl")
        .write("shoot.yaml", shoot)
        .args([
            "create",
            "--distro",
            "gardener",
            "--shoot-file",
            "shoot.yaml",
            "--yes",
            "--skip-check",
        ])
        .args(SETTINGS)
        .args(extra)
}

/// `create --distro gardener`: the dry run prints the ConfigMap and the Shoot with
/// structuredAuthentication (the version from the Shoot: 1.33 is config mode) and calls
/// nothing; the run applies the ConfigMap, then creates the Shoot (the fake's admission refuses
/// a Shoot naming a missing ConfigMap), the user's fields kept; a second create is refused by
/// the garden cluster (AlreadyExists); `--dry-run=server` checks the ConfigMap only.
#[test]
fn create_shoot_with_structured_authentication() {
    let dry = create(NEW_SHOOT, &["--dry-run"]).run().success();
    assert!(dry.calls().is_empty(), "{:?}", dry.calls());
    assert!(
        dry.stdout.starts_with("# create Shoot `dev` in `garden-core` with OIDC\n# note: gardener: AuthenticationConfiguration apiserver.config.k8s.io/v1beta1"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout
            .contains("        kubeAPIServer:\n          structuredAuthentication:\n            configMapName: dev-oidc-authentication\n"),
        "{}",
        dry.stdout
    );
    let staged = dry.root.join("data/k8soidc/gardener-dev/shoot.yaml");
    assert!(
        dry.stdout
            .contains(&format!("+ kubectl create -f {}\n", staged.display())),
        "{}",
        dry.stdout
    );
    assert!(!staged.exists());

    let out = create(NEW_SHOOT, &[]).run().success();
    let verbs: Vec<String> = out.calls().iter().map(|c| c[1..3].join(" ")).collect();
    assert_eq!(verbs, ["apply -f", "create -f"]);
    let s: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&out.file("fake-state/kubectl/Shoot-garden-core-dev")).unwrap();
    assert_eq!(
        s["spec"]["kubernetes"]["kubeAPIServer"]["structuredAuthentication"]["configMapName"],
        "dev-oidc-authentication"
    );
    assert_eq!(s["spec"]["provider"]["type"], "aws");
    assert_eq!(s["spec"]["region"], "eu-west-1");
    assert!(out
        .root
        .join("fake-state/kubectl/ConfigMap-garden-core-dev-oidc-authentication")
        .exists());

    let again = create(NEW_SHOOT, &[])
        .write(
            "fake-state/kubectl/Shoot-garden-core-dev",
            &out.file("fake-state/kubectl/Shoot-garden-core-dev"),
        )
        .run()
        .status(1);
    assert!(
        again
            .stderr
            .contains("shoots.core.gardener.cloud \"dev\" already exists"),
        "{}",
        again.stderr
    );

    let server = create(NEW_SHOOT, &["--dry-run=server"]).run().success();
    let calls = server.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0][1..], ["apply", "-f", "-", "--dry-run=server"]);
    assert!(!server
        .root
        .join("fake-state/kubectl/Shoot-garden-core-dev")
        .exists());
}

/// Before 1.30 the deprecated oidcConfig, with the warning; the namespace from -n; a flags-mode
/// Shoot is checked server-side with `create --dry-run=server`; flags mode from 1.32 is refused
/// before anything runs, as Gardener refuses it.
#[test]
fn create_shoot_with_oidc_config() {
    let old = NEW_SHOOT
        .replace("1.33.2", "1.29.9")
        .replace("  namespace: garden-core\n", "");
    let out = create(&old, &["-n", "garden-core"]).run().success();
    assert!(
        out.stderr.contains("oidcConfig is deprecated"),
        "{}",
        out.stderr
    );
    let s: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&out.file("fake-state/kubectl/Shoot-garden-core-dev")).unwrap();
    assert_eq!(
        s["spec"]["kubernetes"]["kubeAPIServer"]["oidcConfig"]["issuerURL"],
        "https://idp.example.com"
    );
    assert_eq!(out.calls().len(), 1);
    let server = create(&old, &["-n", "garden-core", "--dry-run=server"])
        .run()
        .success();
    assert_eq!(
        server.calls()[0][1..],
        [
            "create".to_string(),
            "-f".into(),
            server
                .root
                .join("data/k8soidc/gardener-dev/shoot.yaml")
                .display()
                .to_string(),
            "--dry-run=server".into()
        ]
    );
    let refused = create(
        &NEW_SHOOT.replace("1.33.2", "1.32.1"),
        &["--auth-mode", "flags"],
    )
    .run()
    .status(2);
    assert!(
        refused
            .stderr
            .starts_with("error: gardener cannot carry --auth-mode `flags`"),
        "{}",
        refused.stderr
    );
    assert!(refused.calls().is_empty());
}

/// Refusals name the file and the line, exit 2, nothing run.
#[test]
fn create_shoot_refusals() {
    let with_oidc = format!("{NEW_SHOOT}    kubeAPIServer:\n      oidcConfig:\n        issuerURL: https://other.example.com\n");
    let cases: Vec<(String, &[&str], &str)> = vec![
        (
            NEW_SHOOT.replace("kind: Shoot", "kind: Seed"),
            &[],
            "error: invalid --shoot-file `shoot.yaml` line 2: `kind` `Seed` is not a core.gardener.cloud/v1beta1 Shoot; give the Shoot manifest (apiVersion core.gardener.cloud/v1beta1, kind Shoot) you would `kubectl create -f`\n",
        ),
        (
            with_oidc,
            &[],
            "error: invalid --shoot-file `shoot.yaml` line 16: the Shoot already has `spec.kubernetes.kubeAPIServer.oidcConfig`; take it out to let k8soidc set OIDC, or create the Shoot as it is and use `k8soidc patch --shoot`\n",
        ),
        (
            NEW_SHOOT.to_string(),
            &["-n", "garden-other"],
            "error: invalid --shoot-file `shoot.yaml` line 5: `metadata.namespace` is `garden-core` but --namespace is `garden-other`; give one of them, or the same in both\n",
        ),
        (
            NEW_SHOOT.to_string(),
            &["--kubernetes-version", "1.31"],
            "error: invalid --kubernetes-version `1.31`: Shoot `shoot.yaml` runs Kubernetes 1.33.2 (spec.kubernetes.version); leave --kubernetes-version out\n",
        ),
        (
            NEW_SHOOT.to_string(),
            &["--name", "prod"],
            "error: invalid --name `prod`: the Shoot in `shoot.yaml` is named `dev` (metadata.name), which Gardener uses; drop --name\n",
        ),
    ];
    for (shoot, extra, want) in cases {
        let out = create(&shoot, extra).run().status(2);
        assert_eq!(out.stderr, want);
        assert!(out.calls().is_empty());
    }
    let missing = Test::new()
        .args(["create", "--distro", "gardener", "--skip-check"])
        .args(SETTINGS)
        .run()
        .status(2);
    assert!(
        missing.stderr.starts_with("error: missing --shoot-file"),
        "{}",
        missing.stderr
    );
}

/// `patch --file` on a Shoot manifest kept in git: the kind is detected, structuredAuthentication
/// is set for a 1.33 Shoot (a note names the ConfigMap to apply with it), every other line is
/// kept, a rerun changes nothing, and `--remove` gives back the file as it was; an older Shoot
/// gets the deprecated `oidcConfig` with Gardener's warning; flags for a 1.32+ Shoot are refused.
#[test]
fn patch_file_on_a_shoot_manifest() {
    let in_git = format!("# dev cluster (team core)\n{NEW_SHOOT}");
    let patch = |content: &str, extra: &[&str]| {
        Test::new()
            .write("shoot.yaml", content)
            .args(["patch", "--file", "shoot.yaml"])
            .args(extra)
            .run()
    };
    let out = patch(&in_git, &SETTINGS).success();
    assert_eq!(
        out.stdout,
        format!("{in_git}    kubeAPIServer:\n      structuredAuthentication:\n        configMapName: dev-oidc-authentication\n")
    );
    assert!(
        out.stderr
            .contains("shoot.yaml: detected --file-kind gardener-shoot\n")
            && out
                .stderr
                .contains("ConfigMap `dev-oidc-authentication` (key config.yaml)"),
        "{}",
        out.stderr
    );
    assert!(out.calls().is_empty(), "no program runs: {:?}", out.calls());
    let again = patch(&out.stdout, &SETTINGS).success();
    assert!(
        again
            .stderr
            .contains("already configured with these OIDC settings"),
        "{}",
        again.stderr
    );
    let removed = patch(&out.stdout, &["--remove"]).success();
    assert_eq!(removed.stdout, in_git);

    let old = patch(&in_git.replace("1.33.2", "1.29.4"), &SETTINGS).success();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&old.stdout).unwrap();
    assert_eq!(
        doc["spec"]["kubernetes"]["kubeAPIServer"]["oidcConfig"]["clientID"],
        "kubernetes"
    );
    assert!(old.stderr.contains("PR #10666"), "{}", old.stderr);

    let flags = patch(
        &in_git,
        &[&SETTINGS[..], &["--auth-mode", "flags"]].concat(),
    )
    .status(2);
    assert!(
        flags.stderr.contains("Gardener forbids `spec.kubernetes.kubeAPIServer.oidcConfig` for Kubernetes 1.32 and later"),
        "{}",
        flags.stderr
    );
}

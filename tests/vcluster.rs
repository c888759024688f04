//! Issue 15, vCluster: render, `create` (the ConfigMap with kubectl, then `vcluster create -f`),
//! dry run, and `patch --file` on a vcluster.yaml (k8s and k3s distros, --remove), against the
//! fake vcluster and kubectl.

use crate::test::{Test, SETTINGS};

fn oidc() -> Vec<&'static str> {
    [&["--skip-check"][..], &SETTINGS].concat()
}

fn create(extra: &[&str]) -> Test {
    Test::new()
        .fake("vcluster")
        .fake("kubectl")
        .args(["create", "--distro", "vcluster", "--name", "dev", "--yes"])
        .args(oidc())
        .args(["--auth-mode", "config", "--kubernetes-version", "1.34"])
        .args(extra)
}

/// Config mode: the AuthenticationConfiguration travels in a ConfigMap applied before the
/// vCluster (the fake vcluster refuses a ConfigMap volume whose ConfigMap does not exist), the
/// flag and the mount in vcluster.yaml; a dry run runs nothing.
#[test]
fn create_with_structured_config() {
    let dry = create(&["--dry-run"]).run().success();
    assert!(dry.calls().is_empty(), "{:?}", dry.calls());
    assert!(
        dry.stdout
            .contains("+ vcluster create dev --namespace vcluster-dev -f "),
        "{}",
        dry.stdout
    );
    let out = create(&[]).run().success();
    let calls: Vec<String> = out.calls().iter().map(|c| c[..3].join(" ")).collect();
    assert_eq!(calls, ["kubectl apply -f", "vcluster create dev"]);
    let values: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&out.file("fake-state/vcluster/vcluster-dev-dev.yaml")).unwrap();
    assert_eq!(
        values["controlPlane"]["distro"]["k8s"]["apiServer"]["extraArgs"][0],
        "--authentication-config=/etc/kubernetes/oidc/authentication-config.yaml"
    );
    let cm: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &out.file("fake-state/kubectl/ConfigMap-vcluster-dev-k8soidc-oidc"),
    )
    .unwrap();
    let auth = cm["data"]["authentication-config.yaml"].as_str().unwrap();
    assert!(auth.contains("url: https://idp.example.com"), "{auth}");
}

/// Flags mode without files: only `vcluster create`, the flags as written in vcluster.yaml.
#[test]
fn create_with_flags() {
    let out = Test::new()
        .fake("vcluster")
        .args(["create", "--distro", "vcluster", "--name", "dev", "--yes"])
        .args(oidc())
        .args(["--", "--namespace", "team-a"])
        .run()
        .success();
    assert_eq!(out.calls().len(), 1, "{:?}", out.calls());
    let values: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&out.file("fake-state/vcluster/team-a-dev.yaml")).unwrap();
    assert_eq!(
        values["controlPlane"]["distro"]["k8s"]["apiServer"]["extraArgs"][3],
        "--oidc-username-prefix=oidc:"
    );
}

fn patch_file(content: &str, extra: &[&str]) -> crate::test::Output {
    Test::new()
        .write("vcluster.yaml", content)
        .args(["patch", "--file", "vcluster.yaml"])
        .args(extra)
        .run()
}

/// `patch --file` on a vcluster.yaml: k8s distro (list of `--flag=value`), k3s distro
/// (`--kube-apiserver-arg=`), rerun unchanged, --remove back to the original.
#[test]
fn patch_file_values() {
    let k8s = "controlPlane:\n  distro:\n    k8s:\n      enabled: true\n      apiServer:\n        extraArgs:\n          - --audit-log-maxage=30\n  statefulSet:\n    resources:\n      limits:\n        memory: 2Gi\n";
    let out = patch_file(k8s, &oidc()).success();
    assert!(
        out.stderr.contains("detected --file-kind vcluster-values"),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stdout,
        k8s.replace(
            "          - --audit-log-maxage=30\n",
            "          - --audit-log-maxage=30\n          - --oidc-issuer-url=https://idp.example.com\n          - --oidc-client-id=kubernetes\n          - --oidc-username-claim=email\n          - \"--oidc-username-prefix=oidc:\"\n          - --oidc-groups-claim=groups\n          - \"--oidc-groups-prefix=oidc:\"\n"
        )
    );
    let again = patch_file(&out.stdout, &oidc()).success();
    assert!(
        again.stderr.contains("already configured"),
        "{}",
        again.stderr
    );
    let removed = patch_file(&out.stdout, &["--remove"]).success();
    assert_eq!(removed.stdout, k8s);
    let k3s = "controlPlane:\n  distro:\n    k3s:\n      enabled: true\n";
    let out = patch_file(k3s, &oidc()).success();
    assert!(
        out.stdout
            .contains("      - --kube-apiserver-arg=oidc-issuer-url=https://idp.example.com\n"),
        "{}",
        out.stdout
    );
    let k0s = "controlPlane:\n  distro:\n    k0s:\n      enabled: true\n";
    let refused = patch_file(k0s, &oidc()).status(2);
    assert!(refused.stderr.contains("k0s distro"), "{}", refused.stderr);
    assert_eq!(refused.file("vcluster.yaml"), k0s);
}

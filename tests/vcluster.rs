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

/// What a running vCluster's release holds before k8soidc: settings of the user's own that an
/// upgrade must keep.
const RUNNING: &str = "controlPlane:\n  statefulSet:\n    resources:\n      limits:\n        memory: 2Gi\nsync:\n  toHost:\n    ingresses:\n      enabled: true\n";

fn live(values: &str, extra: &[&str]) -> Test {
    Test::new()
        .fake("vcluster")
        .fake("helm")
        .fake("kubectl")
        .write("fake-state/vcluster/vcluster-dev-dev.yaml", values)
        .args(["patch", "--vcluster", "dev", "--yes"])
        .args(extra)
}

fn stored(out: &crate::test::Output) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(&out.file("fake-state/vcluster/vcluster-dev-dev.yaml")).unwrap()
}

fn verbs(out: &crate::test::Output) -> Vec<String> {
    out.calls().iter().map(|c| c[..3].join(" ")).collect()
}

/// `patch --vcluster`: the dry run reads (helm, kubectl) and prints the values diff and the
/// upgrade, changing nothing; the run upgrades with all the values (the user's own kept, as
/// `vcluster create --upgrade` resets what it is not given); a rerun has nothing to do;
/// `--remove` takes OIDC out and leaves no emptied key behind.
#[test]
fn patch_running_vcluster() {
    let dry = live(RUNNING, &oidc()).args(["--dry-run"]).run().success();
    assert_eq!(verbs(&dry), ["helm get values", "kubectl get configmap"]);
    let staged = dry
        .root
        .join("data/k8soidc/vcluster-dev/vcluster-values.yaml");
    assert!(
        dry.stdout.contains(&format!(
            "+ write {} (mode 0600):\n--- a{}\n+++ b{}\n",
            staged.display(),
            staged.display(),
            staged.display()
        )),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("+  distro:\n+    k8s:\n+      apiServer:\n+        extraArgs:\n+        - --oidc-issuer-url=https://idp.example.com\n"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains(&format!(
            "+ vcluster create dev --namespace vcluster-dev --upgrade -f {}\n",
            staged.display()
        )),
        "{}",
        dry.stdout
    );
    assert_eq!(
        dry.file("fake-state/vcluster/vcluster-dev-dev.yaml"),
        RUNNING
    );
    assert!(!staged.exists());

    let out = live(RUNNING, &oidc()).run().success();
    assert_eq!(
        verbs(&out),
        [
            "helm get values",
            "kubectl get configmap",
            "vcluster create dev"
        ]
    );
    let v = stored(&out);
    assert_eq!(
        v["controlPlane"]["distro"]["k8s"]["apiServer"]["extraArgs"][0],
        "--oidc-issuer-url=https://idp.example.com"
    );
    assert_eq!(v["sync"]["toHost"]["ingresses"]["enabled"], true);
    assert_eq!(
        v["controlPlane"]["statefulSet"]["resources"]["limits"]["memory"],
        "2Gi"
    );
    assert!(
        out.stderr
            .ends_with("vCluster `dev` in `vcluster-dev`: OIDC set; its control plane restarts with the new values (`vcluster list` shows its status)\n"),
        "{}",
        out.stderr
    );

    let now = out.file("fake-state/vcluster/vcluster-dev-dev.yaml");
    let again = live(&now, &oidc()).run().success();
    assert_eq!(
        again.stdout,
        "vCluster `dev` in `vcluster-dev` already runs with these OIDC settings; nothing to do\n"
    );
    assert_eq!(verbs(&again), ["helm get values", "kubectl get configmap"]);

    let removed = live(&now, &["--remove"]).run().success();
    assert_eq!(
        stored(&removed),
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>(RUNNING).unwrap()
    );
    let gone = removed.file("fake-state/vcluster/vcluster-dev-dev.yaml");
    assert!(!gone.contains("distro"), "{gone}");
}

/// Config mode with a kubeconfig: the ConfigMap applied with kubectl first (the fake vcluster
/// refuses a ConfigMap volume without its ConfigMap), the upgrade through `env KUBECONFIG=`
/// (the vCluster CLI has no --kubeconfig flag).
#[test]
fn patch_running_vcluster_config_mode_with_kubeconfig() {
    let out = live(RUNNING, &oidc())
        .write("host.yaml", "apiVersion: v1\nkind: Config\n")
        .args(["--auth-mode", "config", "--kubernetes-version", "1.34"])
        .args(["--kubeconfig", "host.yaml"])
        .run()
        .success();
    let calls = out.calls();
    assert_eq!(
        calls[0][..],
        [
            "helm",
            "get",
            "values",
            "dev",
            "--namespace",
            "vcluster-dev",
            "-o",
            "yaml",
            "--kubeconfig",
            "host.yaml"
        ]
    );
    assert_eq!(calls[2][1..5], ["--kubeconfig", "host.yaml", "apply", "-f"]);
    assert_eq!(calls[3][..3], ["vcluster", "create", "dev"]);
    assert!(
        out.stderr.contains(
            "+ env KUBECONFIG=host.yaml vcluster create dev --namespace vcluster-dev --upgrade -f "
        ),
        "{}",
        out.stderr
    );
    let v = stored(&out);
    assert_eq!(
        v["controlPlane"]["distro"]["k8s"]["apiServer"]["extraArgs"][0],
        "--authentication-config=/etc/kubernetes/oidc/authentication-config.yaml"
    );
    assert_eq!(v["sync"]["toHost"]["ingresses"]["enabled"], true);
    let cm: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &out.file("fake-state/kubectl/ConfigMap-vcluster-dev-k8soidc-oidc"),
    )
    .unwrap();
    assert!(cm["data"]["authentication-config.yaml"]
        .as_str()
        .unwrap()
        .contains("url: https://idp.example.com"));
}

/// A vCluster that is not there (Helm: release: not found) is one line and exit 1, nothing
/// run after the read; a bad --namespace is bad input, nothing run.
#[test]
fn patch_running_vcluster_refusals() {
    let missing = Test::new()
        .fake("vcluster")
        .fake("helm")
        .fake("kubectl")
        .args(["patch", "--vcluster", "dev", "-n", "team-a", "--yes"])
        .args(oidc())
        .run()
        .status(1);
    assert_eq!(
        missing.stderr,
        "error: no vCluster `dev` in host namespace `team-a` (`helm get values` says: release: not found); check the name and --namespace (`vcluster list` shows both)\n"
    );
    assert_eq!(missing.calls().len(), 1);
    let bad = live(RUNNING, &oidc())
        .args(["--namespace", "Team_A"])
        .run()
        .status(2);
    assert_eq!(
        bad.stderr,
        "error: invalid --namespace `Team_A`: a namespace is lowercase letters, digits and `-`, starting and ending with a letter or digit, at most 63; give the vCluster's host namespace (default `vcluster-dev`)\n"
    );
    assert!(bad.calls().is_empty());
}

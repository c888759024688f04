//! Issue 15, Talos: render, `create` (talosctl gen config), `patch --talos NODE` (talosctl
//! patch machineconfig --mode=no-reboot, health after each node), `--remove`, dry runs, and
//! `patch --file` on machine configs and patch files, against the fake talosctl.

use crate::test::{Output, Test, SETTINGS};

const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAK\n-----END CERTIFICATE-----\n";

fn oidc() -> Vec<&'static str> {
    [&["--skip-check"][..], &SETTINGS].concat()
}

fn config_mode() -> Vec<&'static str> {
    let mut v = oidc();
    v.extend(["--auth-mode", "config", "--kubernetes-version", "1.34"]);
    v
}

/// A Talos 1.14 control-plane config whose API server is a KubeAPIServerConfig document.
const DOCS_CONFIG: &str = "version: v1alpha1\nmachine:\n  type: controlplane\n  token: fake-token\ncluster:\n  clusterName: demo\n  controlPlane:\n    endpoint: https://10.0.0.10:6443\n---\napiVersion: v1alpha1\nkind: KubeAPIServerConfig\nimage: registry.k8s.io/kube-apiserver:v1.34.1\nextraArgs:\n  audit-log-maxage: \"30\"\n";

/// The same before 1.14: `.cluster.apiServer`.
const LEGACY_CONFIG: &str = "version: v1alpha1\nmachine:\n  type: controlplane\n  token: fake-token\ncluster:\n  clusterName: demo\n  controlPlane:\n    endpoint: https://10.0.0.10:6443\n  apiServer:\n    image: registry.k8s.io/kube-apiserver:v1.33.1\n    certSANs:\n      - 10.0.0.10\n";

fn node_state(out: &Output, node: &str) -> Vec<serde_yaml_ng::Value> {
    use serde::Deserialize;
    let text = out.file(&format!("fake-state/talos/{node}.yaml"));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde_yaml_ng::Value::deserialize(d).unwrap())
        .collect()
}

fn auth_doc(docs: &[serde_yaml_ng::Value]) -> &serde_yaml_ng::Value {
    docs.iter()
        .find(|d| d["kind"] == "KubeAuthenticationConfig")
        .expect("a KubeAuthenticationConfig document")
}

fn live(extra: &[&str]) -> Test {
    Test::new()
        .fake("talosctl")
        .write("fake-state/talos/10.0.0.2.yaml", DOCS_CONFIG)
        .write("fake-state/talos/10.0.0.3.yaml", DOCS_CONFIG)
        .args([
            "patch", "--talos", "10.0.0.2", "--talos", "10.0.0.3", "--yes",
        ])
        .args(extra)
}

/// `patch --talos` in config mode: one node after the other, each patched without a reboot
/// and checked healthy before the next; the document lands in each node's config with Talos'
/// default anonymous health paths; a dry run calls nothing.
#[test]
fn patch_talos_nodes_one_at_a_time() {
    let dry = live(&["--dry-run"]).args(config_mode()).run().success();
    assert!(dry.calls().is_empty(), "{:?}", dry.calls());
    assert!(
        dry.stdout
            .contains("+ talosctl --nodes 10.0.0.3 patch machineconfig --mode=no-reboot --patch @"),
        "{}",
        dry.stdout
    );
    let out = live(&[]).args(config_mode()).run().success();
    let verbs: Vec<String> = out
        .calls()
        .iter()
        .map(|c| format!("{} {}", c[2], c[3]))
        .collect();
    assert_eq!(
        verbs,
        [
            "10.0.0.2 patch",
            "10.0.0.2 health",
            "10.0.0.3 patch",
            "10.0.0.3 health"
        ]
    );
    assert!(out.calls()[0].contains(&"--mode=no-reboot".to_string()));
    for node in ["10.0.0.2", "10.0.0.3"] {
        let docs = node_state(&out, node);
        let c = &auth_doc(&docs)["configuration"];
        assert_eq!(c["apiVersion"], "apiserver.config.k8s.io/v1");
        assert_eq!(c["jwt"][0]["issuer"]["url"], "https://idp.example.com");
        assert_eq!(c["jwt"][0]["claimMappings"]["username"]["prefix"], "oidc:");
        assert_eq!(c["anonymous"]["conditions"][1]["path"], "/readyz");
        let api = docs
            .iter()
            .find(|d| d["kind"] == "KubeAPIServerConfig")
            .unwrap();
        assert_eq!(api["extraArgs"]["audit-log-maxage"], "30", "the rest kept");
    }
    // --remove puts Talos' default document back.
    let t = Test::new()
        .fake("talosctl")
        .write(
            "fake-state/talos/10.0.0.2.yaml",
            &out.file("fake-state/talos/10.0.0.2.yaml"),
        )
        .args(["patch", "--talos", "10.0.0.2", "--remove", "--yes"]);
    let removed = t.run().success();
    let docs = node_state(&removed, "10.0.0.2");
    assert_eq!(
        auth_doc(&docs)["configuration"]["jwt"],
        serde_yaml_ng::Value::Sequence(vec![])
    );
}

/// Talos 1.14 refuses `oidc-*` flags next to a KubeAPIServerConfig document: the run stops at
/// the first node with talosctl's message, and no node changed.
#[test]
fn talos_refusal_of_flags_stops_the_run() {
    let out = live(&[]).args(oidc()).run().status(1);
    assert!(
        out.stderr.contains(
            "kube-apiserver config is already set in v1alpha1 config (.cluster.apiServer)"
        ) || out
            .stderr
            .contains("is not allowed: use KubeAuthenticationConfig"),
        "{}",
        out.stderr
    );
    assert_eq!(out.calls().len(), 1, "{:?}", out.calls());
    assert_eq!(out.file("fake-state/talos/10.0.0.2.yaml"), DOCS_CONFIG);
    assert_eq!(out.file("fake-state/talos/10.0.0.3.yaml"), DOCS_CONFIG);
}

/// `create --distro talos`: the patch staged, then `talosctl gen config` with it for the
/// control plane; the generated controlplane.yaml carries the flags.
#[test]
fn create_generates_patched_configs() {
    let out = Test::new()
        .fake("talosctl")
        .args(["create", "--distro", "talos", "--name", "lab", "--yes"])
        .args(oidc())
        .args(["--", "https://10.0.0.10:6443"])
        .run()
        .success();
    let calls = out.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        calls[0][..6],
        [
            "talosctl",
            "gen",
            "config",
            "lab",
            "https://10.0.0.10:6443",
            "--config-patch-control-plane"
        ]
    );
    let dir = out.root.join("data/k8soidc/talos-lab");
    let cp: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(dir.join("controlplane.yaml")).unwrap())
            .unwrap();
    let args = &cp["cluster"]["apiServer"]["extraArgs"];
    assert_eq!(args["oidc-issuer-url"], "https://idp.example.com");
    assert_eq!(args["oidc-username-prefix"], "oidc:");
    let worker = std::fs::read_to_string(dir.join("worker.yaml")).unwrap();
    assert!(!worker.contains("oidc"), "{worker}");
    // Without the endpoint: bad input, nothing run.
    let bad = Test::new()
        .fake("talosctl")
        .args(["create", "--distro", "talos", "--yes"])
        .args(oidc())
        .run()
        .status(2);
    assert_eq!(
        bad.stderr,
        "error: invalid -- `(nothing)`: talosctl gen config needs the cluster endpoint first; give it after `--`, e.g. `-- https://10.0.0.10:6443` (then any talosctl gen config flags)\n"
    );
    assert!(bad.calls().is_empty());
}

fn patch_file(content: &str, extra: &[&str]) -> Output {
    Test::new()
        .write("talos/controlplane.yaml", content)
        .write("ca.pem", PEM)
        .args(["patch", "--file", "talos/controlplane.yaml"])
        .args(extra)
        .run()
}

/// `patch --file` on a machine config before 1.14: `.cluster.apiServer.extraArgs`, the CA as
/// `machine.files` under /var mounted with `extraVolumes`; a rerun changes nothing; `--remove`
/// gives the original back byte for byte; the result passes the fake's (Talos') validation.
#[test]
fn patch_file_legacy_machine_config() {
    let mut args = oidc();
    args.extend(["--ca-file", "ca.pem"]);
    let out = patch_file(LEGACY_CONFIG, &args).success();
    assert!(
        out.stderr.contains("detected --file-kind talos-config"),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stdout,
        format!("{LEGACY_CONFIG}    extraArgs:\n      oidc-issuer-url: https://idp.example.com\n      oidc-client-id: kubernetes\n      oidc-username-claim: email\n      oidc-username-prefix: \"oidc:\"\n      oidc-groups-claim: groups\n      oidc-groups-prefix: \"oidc:\"\n      oidc-ca-file: /etc/kubernetes/oidc/oidc-ca.pem\n    extraVolumes:\n      - hostPath: /var/etc/k8soidc\n        mountPath: /etc/kubernetes/oidc\n        readonly: true\n")
            .replace("machine:\n  type: controlplane\n  token: fake-token\n", "machine:\n  type: controlplane\n  token: fake-token\n  files:\n    - content: |\n        -----BEGIN CERTIFICATE-----\n        MIIBkTCB+wIJAK\n        -----END CERTIFICATE-----\n      permissions: 420\n      path: /var/etc/k8soidc/oidc-ca.pem\n      op: create\n")
    );
    let again = patch_file(&out.stdout, &args).success();
    assert!(
        again.stderr.contains("already configured"),
        "{}",
        again.stderr
    );
    let removed = patch_file(&out.stdout, &["--remove"]).success();
    assert_eq!(removed.stdout, LEGACY_CONFIG);
    // The fake's Talos validation accepts the result (files under /var, string extraArgs): as
    // a node's config, a live flags patch on top of it goes through.
    let live = Test::new()
        .fake("talosctl")
        .write("fake-state/talos/10.0.0.2.yaml", &out.stdout)
        .args(["patch", "--talos", "10.0.0.2", "--yes"])
        .args(oidc())
        .run()
        .success();
    let docs = node_state(&live, "10.0.0.2");
    assert_eq!(
        docs[0]["machine"]["files"][0]["path"],
        "/var/etc/k8soidc/oidc-ca.pem"
    );
    assert_eq!(docs[0]["machine"]["files"][0]["permissions"], 0o644);
}

/// `patch --file` on a 1.14 config: config mode appends the KubeAuthenticationConfig document;
/// flags mode is refused (exit 2, file untouched) because Talos refuses them there.
#[test]
fn patch_file_documents_config() {
    let out = patch_file(DOCS_CONFIG, &config_mode()).success();
    assert!(out.stdout.starts_with(DOCS_CONFIG), "{}", out.stdout);
    assert!(
        out.stdout[DOCS_CONFIG.len()..].starts_with("---\napiVersion: v1alpha1\nkind: KubeAuthenticationConfig\nconfiguration:\n  apiVersion: apiserver.config.k8s.io/v1\n"),
        "{}",
        out.stdout
    );
    let again = patch_file(&out.stdout, &config_mode()).success();
    assert!(
        again.stderr.contains("already configured"),
        "{}",
        again.stderr
    );
    let refused = patch_file(DOCS_CONFIG, &oidc()).status(2);
    assert_eq!(
        refused.stderr,
        "talos/controlplane.yaml: detected --file-kind talos-config\nerror: talos cannot carry --auth-mode `flags`: the machine config has a KubeAPIServerConfig document, whose extraArgs Talos refuses for `oidc-*` (\"use KubeAuthenticationConfig\"); use `--auth-mode config` (with --kubernetes-version 1.30 or later): k8soidc writes the KubeAuthenticationConfig document\n"
    );
    assert_eq!(refused.file("talos/controlplane.yaml"), DOCS_CONFIG);
}

/// A talhelper/Omni-style patch file (only the part it changes) is detected and extended.
#[test]
fn patch_file_talhelper_patch() {
    let patch = "cluster:\n  apiServer:\n    certSANs:\n      - k8s.example.com\n";
    let out = patch_file(patch, &oidc()).success();
    assert!(
        out.stderr.contains("detected --file-kind talos-config"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.starts_with(patch));
    assert!(
        out.stdout
            .contains("    extraArgs:\n      oidc-issuer-url: https://idp.example.com\n"),
        "{}",
        out.stdout
    );
}

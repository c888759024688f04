//! `patch --file`: every kind on a real fixture (print, already configured, --in-place,
//! --dry-run, --remove, detection), and the refusals (file untouched, exit 2).

use std::os::unix::fs::PermissionsExt;

use crate::test::{fixture, Output, Test, SETTINGS};

const ISSUER: &str = "https://idp.example.com";
const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAK\n-----END CERTIFICATE-----\n";

/// The article's settings (the harness's own set).
fn oidc() -> Vec<&'static str> {
    SETTINGS.to_vec()
}

/// A test dir holding `conf/FILE` with `content` and mode 0640, and `ca.pem`.
fn with_file(content: &str) -> Test {
    let t = Test::new().write("conf/FILE", content).write("ca.pem", PEM);
    std::fs::set_permissions(
        t.path().join("conf/FILE"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    t
}

fn patch(content: &str, extra: &[&str]) -> Output {
    with_file(content)
        .args(["patch", "--file", "conf/FILE"])
        .args(extra)
        .run()
}

/// Every string of every YAML document.
fn strings(text: &str) -> Vec<String> {
    use serde::Deserialize;
    fn walk(v: &serde_yaml_ng::Value, out: &mut Vec<String>) {
        match v {
            serde_yaml_ng::Value::String(s) => out.push(s.clone()),
            serde_yaml_ng::Value::Sequence(s) => s.iter().for_each(|x| walk(x, out)),
            serde_yaml_ng::Value::Mapping(m) => m.values().for_each(|x| walk(x, out)),
            serde_yaml_ng::Value::Tagged(t) => walk(&t.value, out),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let v = serde_yaml_ng::Value::deserialize(doc)
            .unwrap_or_else(|e| panic!("result does not parse: {e}\n{text}"));
        walk(&v, &mut out);
    }
    out
}

fn leftovers(out: &Output) -> Vec<String> {
    std::fs::read_dir(out.root.join("conf"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "FILE")
        .collect()
}

/// The whole cycle on one fixture; returns the patched text.
fn cycle(rel: &str, kind: &str, args: &[&str], yaml: bool, removable: bool) -> String {
    let original = fixture(rel);
    let mut with_oidc = oidc();
    with_oidc.extend(args);

    // Print: stdout is the patched file, the file is untouched, the kind is detected.
    let out = patch(&original, &with_oidc).success();
    let patched = out.stdout.clone();
    assert_ne!(patched, original, "{rel}: nothing changed");
    assert!(
        out.stderr
            .contains(&format!("conf/FILE: detected --file-kind {kind}")),
        "{rel}: {}",
        out.stderr
    );
    assert_eq!(out.file("conf/FILE"), original, "{rel}: file touched");
    if yaml {
        assert!(
            strings(&patched).iter().any(|s| s.contains(ISSUER)),
            "{rel}: issuer not read back as a string\n{patched}"
        );
    } else {
        assert!(patched
            .lines()
            .any(|l| l == "--oidc-issuer-url=https://idp.example.com"));
    }
    for line in original.lines() {
        assert!(
            patched.lines().any(|l| l == line) || kind == "kops-cluster",
            "{rel}: lost line `{line}`"
        );
    }
    drop(out);

    // Explicit --file-kind gives the same bytes.
    let mut explicit = vec!["--file-kind", kind];
    explicit.extend(&with_oidc);
    let out = patch(&original, &explicit).success();
    assert_eq!(out.stdout, patched, "{rel}: --file-kind");
    drop(out);

    // Second run: already configured, the same bytes on stdout, nothing else there.
    let out = patch(&patched, &with_oidc).success();
    assert!(
        out.stderr.contains("already configured"),
        "{rel}: {}",
        out.stderr
    );
    assert_eq!(out.stdout, patched, "{rel}: second run");
    drop(out);

    // --dry-run: a unified diff, the file byte-identical.
    let mut dry = vec!["--dry-run"];
    dry.extend(&with_oidc);
    let out = patch(&original, &dry).success();
    assert!(
        out.stdout
            .starts_with("--- a/conf/FILE\n+++ b/conf/FILE\n@@ "),
        "{rel}: {}",
        out.stdout
    );
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with('+') && l.contains("oidc")),
        "{rel}: {}",
        out.stdout
    );
    assert_eq!(out.file("conf/FILE"), original, "{rel}: dry run wrote");
    drop(out);

    // --in-place: rewritten atomically, mode kept, no temporary file left, stdout empty.
    let mut inplace = vec!["--in-place"];
    inplace.extend(&with_oidc);
    let out = patch(&original, &inplace).success();
    assert_eq!(out.stdout, "", "{rel}");
    assert_eq!(out.file("conf/FILE"), patched, "{rel}: in place");
    let mode = std::fs::metadata(out.root.join("conf/FILE"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o640, "{rel}: mode");
    assert!(leftovers(&out).is_empty(), "{rel}: {:?}", leftovers(&out));
    drop(out);

    // --remove takes our settings out again (no settings needed).
    let out = patch(&patched, &["--remove"]);
    if removable {
        let out = out.success();
        assert!(!out.stdout.contains(ISSUER), "{rel}: {}", out.stdout);
        let again = patch(&out.stdout, &["--remove"]).success();
        assert!(again.stderr.contains("already without OIDC settings"));
    } else {
        let out = out.status(2);
        assert_eq!(out.stdout, "");
        assert_eq!(out.file("conf/FILE"), patched);
    }
    patched
}

#[test]
fn manifest() {
    let patched = cycle(
        "apiserver-manifests/030-hiulnarapyvovar-v1.29.2-minimal.yaml",
        "manifest",
        &[],
        true,
        true,
    );
    assert!(patched.contains("    - --oidc-issuer-url=https://idp.example.com\n"));
}

#[test]
fn manifest_with_ca_mounts_the_directory_and_names_the_node_file() {
    // No final newline in this fixture: kept, and the diff still ends with one.
    let original = fixture("apiserver-manifests/034-austintalbot-v1.32.2-cks.yaml");
    let mut args = oidc();
    args.extend(["--ca-file", "ca.pem"]);
    let out = patch(&original, &args).success();
    assert!(out
        .stdout
        .contains("--oidc-ca-file=/etc/kubernetes/oidc/oidc-ca.pem"));
    assert!(
        out.stdout.contains("path: /etc/kubernetes/oidc"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("the API server also needs /etc/kubernetes/oidc/oidc-ca.pem (the IdP CA certificate) on every control-plane node; --file does not write them"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("note: mounted `/etc/kubernetes/oidc` read-only"),
        "{}",
        out.stderr
    );
    assert_eq!(out.stdout.ends_with('\n'), original.ends_with('\n'));
    drop(out);
    let mut dry = vec!["--dry-run"];
    dry.extend(&args);
    let out = patch(&original, &dry).success();
    assert!(out.stdout.ends_with("\n"), "{}", out.stdout);
    drop(out);
    let out = patch(&original, &args).success();
    let back = patch(&out.stdout, &["--remove"]).success();
    assert_eq!(back.stdout, original);
}

#[test]
fn manifest_crlf_is_kept() {
    let rel = "apiserver-manifests/027-iyerabhi07-v1.27.4-minikube-crlf.yaml";
    let original = fixture(rel);
    assert!(original.contains("\r\n"));
    let out = patch(&original, &oidc()).success();
    assert!(
        out.stdout.contains("--oidc-client-id=kubernetes\r\n"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.replace("\r\n", "").contains('\n'));
}

#[test]
fn in_place_through_a_symlink_keeps_the_link() {
    let original = fixture("k3s-config/003-sylchamber-control-plane.yaml");
    let t = with_file(&original);
    std::os::unix::fs::symlink("FILE", t.path().join("conf/link")).unwrap();
    let mut args = vec!["patch", "--file", "conf/link", "--in-place"];
    args.extend(oidc());
    let out = t.args(args).run().success();
    let link = out.root.join("conf/link");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(out
        .file("conf/FILE")
        .contains("oidc-issuer-url=https://idp.example.com"));
}

/// Issue 13, point 8: `--in-place` as root used to leave the file owned by root.
#[test]
fn p8_in_place_keeps_owner_group_and_mode() {
    use std::os::unix::fs::MetadataExt;
    let original = fixture("k3s-config/003-sylchamber-control-plane.yaml");
    let t = with_file(&original);
    let file = t.path().join("conf/FILE");
    std::os::unix::fs::chown(&file, Some(4242), Some(4343))
        .expect("chown to another uid/gid (the tests run as root)");
    // chown clears set-id bits: set the mode after it, as the user would have.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o2640)).unwrap();
    let mut args = vec!["patch", "--file", "conf/FILE", "--in-place"];
    args.extend(oidc());
    let out = t.args(args).run().success();
    let meta = std::fs::metadata(out.root.join("conf/FILE")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (4242, 4343, 0o2640)
    );
    assert!(out
        .file("conf/FILE")
        .contains("oidc-issuer-url=https://idp.example.com"));
    assert!(leftovers(&out).is_empty());
}

#[test]
fn k3s_config() {
    cycle(
        "k3s-config/003-sylchamber-control-plane.yaml",
        "k3s-config",
        &[],
        true,
        true,
    );
}

#[test]
fn rke2_config_mounts_its_own_directory() {
    // No RKE2 fixture: the k3s syntax is the same; RKE2 is chosen by --file-kind.
    let original = fixture("k3s-config/001-franco-ruggeri-hardening.yaml");
    let mut args = vec!["--file-kind", "rke2-config", "--ca-file", "ca.pem"];
    args.extend(oidc());
    let out = patch(&original, &args).success();
    assert!(
        out.stdout
            .contains("oidc-ca-file=/etc/rancher/rke2/oidc/oidc-ca.pem"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("kube-apiserver-extra-mount"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("/etc/rancher/rke2/oidc/oidc-ca.pem"),
        "{}",
        out.stderr
    );
    strings(&out.stdout);
}

#[test]
fn microk8s_args() {
    cycle(
        "microk8s-args/001-microk8s-2025-03f0791.args",
        "microk8s-args",
        &[],
        false,
        true,
    );
}

#[test]
fn kubeadm_config() {
    cycle(
        "kubeadm-config/001-sbordeyne-v1beta3-comment.yaml",
        "kubeadm-config",
        &[],
        true,
        true,
    );
}

#[test]
fn kops_cluster() {
    // merge_cluster_spec re-serialises the Cluster document; --remove takes the fields and
    // k8soidc's fileAssets out again (what `patch --kops --remove` runs).
    cycle(
        "kops-cluster/004-kops-complex-v1alpha2.yaml",
        "kops-cluster",
        &[],
        true,
        true,
    );
}

#[test]
fn k3d_config() {
    let patched = cycle(
        "k3d-config/007-stefanbs-k3d-lab.yaml",
        "k3d-config",
        &[],
        true,
        true,
    );
    assert!(patched.contains(
        "      - arg: --kube-apiserver-arg=oidc-issuer-url=https://idp.example.com\n        nodeFilters:\n          - server:*\n"
    ));
}

#[test]
fn capi_kcp() {
    cycle(
        "capi-kcp/capi__docker-simple-cluster.v1beta2.yaml",
        "capi-kcp",
        &[],
        true,
        true,
    );
}

#[test]
fn kubespray_group_vars() {
    cycle(
        "kubespray/inventory-sample-group_vars-k8s_cluster-k8s-cluster.yml",
        "kubespray-group-vars",
        &[],
        true,
        true,
    );
}

/// A refused file: exit 2, one line on stderr, nothing on stdout, the file untouched.
#[track_caller]
fn refused(content: &str, extra: &[&str], needle: &str) {
    for mode in [&[][..], &["--in-place"][..], &["--dry-run"][..]] {
        let mut args = extra.to_vec();
        args.extend(mode);
        args.extend(oidc());
        let out = patch(content, &args).status(2);
        assert_eq!(out.stdout, "", "{mode:?}");
        assert_eq!(out.file("conf/FILE"), content, "{mode:?}");
        let errors: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{}", out.stderr);
        assert!(errors[0].contains(needle), "{}", out.stderr);
        assert!(leftovers(&out).is_empty());
    }
}

#[test]
fn sh_c_manifest_is_refused() {
    refused(
        &fixture("apiserver-manifests/024-waxes27-v1.24.0-sh-c-block.yaml"),
        &[],
        "error: cannot patch the kube-apiserver manifest: its flags are inside a shell command string",
    );
}

#[test]
fn k3d_v1alpha4_is_refused() {
    refused(
        &fixture("k3d-config/004-i3oc9i-v1alpha4.yaml"),
        &[],
        "apiVersion `k3d.io/v1alpha4` is not k3d.io/v1alpha5, the only one k8soidc edits; convert it with `k3d config migrate",
    );
}

#[test]
fn unknown_and_ambiguous_kinds_are_refused() {
    let kubeconfig = fixture("kubeconfig/001-mishra-praveen-sample-kubeconfig.yaml");
    refused(
        &kubeconfig,
        &[],
        "error: cannot tell what kind of file `conf/FILE` is; pass --file-kind (manifest, k3s-config,",
    );
    refused(
        "kind: Pod\nkube-apiserver-arg:\n- kube-apiserver\n",
        &[],
        "`conf/FILE` looks like several kinds of file (manifest, k3s-config); pass --file-kind",
    );
    // Told the wrong kind: the patcher refuses.
    refused(
        &kubeconfig,
        &["--file-kind", "kubeadm-config"],
        "cannot patch",
    );
}

#[test]
fn flags_that_do_not_go_together() {
    for args in [
        vec!["patch", "--file", "conf/FILE", "--ssh", "root@h"],
        vec!["patch", "--file", "conf/FILE", "--capi", "cp"],
        vec!["patch", "--file", "conf/FILE", "--local"],
        vec!["patch", "--in-place", "--ssh", "root@h"],
        vec!["patch", "--file-kind", "manifest", "--ssh", "root@h"],
        vec!["patch", "--file", "conf/FILE", "--file-kind", "nope"],
    ] {
        let out = with_file("a: 1\n").args(&args).run().status(2);
        assert!(out.stderr.contains("error:"), "{args:?}: {}", out.stderr);
        assert_eq!(out.file("conf/FILE"), "a: 1\n");
    }
}

/// Issue 11 point 3: `--in-place` is a plan (one atomic write); `--in-place --dry-run` prints
/// it (the whole output is compared) and changes nothing; the real run writes what it showed.
#[test]
fn in_place_dry_run_prints_the_plan_that_runs() {
    let original = "--secure-port=16443\n--authorization-mode=RBAC,Node\n";
    let mut args = vec!["--in-place", "--dry-run", "--file-kind", "microk8s-args"];
    args.extend(SETTINGS);
    let out = patch(original, &args).success();
    assert_eq!(out.file("conf/FILE"), original, "dry run wrote");
    let file = out.root.join("conf/FILE").canonicalize().unwrap();
    assert_eq!(
        out.stdout.replace(&file.display().to_string(), "FILE"),
        "# set OIDC in conf/FILE (microk8s-args)

# set the OIDC settings in place (atomic rename, owner, group and mode kept)
+ write FILE (mode 0640):
--- aFILE
+++ bFILE
@@ -1,2 +1,8 @@
 --secure-port=16443
 --authorization-mode=RBAC,Node
+--oidc-issuer-url=https://idp.example.com
+--oidc-client-id=kubernetes
+--oidc-username-claim=email
+--oidc-username-prefix=oidc:
+--oidc-groups-claim=groups
+--oidc-groups-prefix=oidc:
"
    );
    let mut args = vec!["--in-place", "--file-kind", "microk8s-args"];
    args.extend(SETTINGS);
    let real = patch(original, &args).success();
    let shown: String = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix('+').filter(|l| !l.starts_with("++")))
        .filter(|l| !l.starts_with(" write"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(real.file("conf/FILE"), format!("{original}{shown}"));
}

/// k0s' own config as `k0s config create` writes its `spec.api` (k0s docs/configuration.md).
const K0S_YAML: &str = "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nmetadata:\n  name: k0s\nspec:\n  api:\n    address: 192.168.68.104\n    k0sApiPort: 9443\n    port: 6443\n    sans:\n    - 192.168.68.104\n  network:\n    provider: kuberouter\n";

/// Issue 15 (k0s): `patch --file` on /etc/k0s/k0s.yaml: detected, printed, a second run
/// changes nothing, `--in-place` writes it, `--remove` gives the original back, and a second
/// `--required-claim` (extraArgs is a map) is refused with the file untouched.
#[test]
fn k0s_config() {
    let out = patch(K0S_YAML, &oidc()).success();
    assert!(
        out.stderr
            .contains("conf/FILE: detected --file-kind k0s-config"),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stdout,
        K0S_YAML.replace(
            "    - 192.168.68.104\n",
            "    - 192.168.68.104\n    extraArgs:\n      oidc-issuer-url: https://idp.example.com\n      oidc-client-id: kubernetes\n      oidc-username-claim: email\n      oidc-username-prefix: \"oidc:\"\n      oidc-groups-claim: groups\n      oidc-groups-prefix: \"oidc:\"\n"
        )
    );
    let patched = out.stdout.clone();
    let again = patch(&patched, &oidc()).success();
    assert!(
        again.stderr.contains("already configured"),
        "{}",
        again.stderr
    );
    assert_eq!(again.stdout, patched);
    let mut in_place = vec!["--in-place"];
    in_place.extend(oidc());
    let out = patch(K0S_YAML, &in_place).success();
    assert_eq!(out.file("conf/FILE"), patched);
    let removed = patch(&patched, &["--remove"]).success();
    assert_eq!(removed.stdout, K0S_YAML);
    let mut two = oidc();
    two.extend(["--required-claim", "a=b", "--required-claim", "c=d"]);
    let out = patch(K0S_YAML, &two).status(2);
    assert_eq!(out.stderr.lines().count(), 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("spec.api.extraArgs is a map, so it holds a flag once"),
        "{}",
        out.stderr
    );
    assert_eq!(out.file("conf/FILE"), K0S_YAML);
}

/// Issue 15 (k0s): a k0sctl cluster file (as `k0sctl init --k0s` writes it, inner `kind:
/// Cluster`): the flags go to spec.k0s.config.spec.api.extraArgs, the CA is named as a file
/// to place on every controller.
#[test]
fn k0sctl_cluster_file() {
    let text = "apiVersion: k0sctl.k0sproject.io/v1beta1\nkind: Cluster\nmetadata:\n  name: k0s-cluster\n  user: admin\nspec:\n  hosts:\n  - ssh:\n      address: 10.0.0.1\n      user: root\n      port: 22\n      keyPath: null\n    role: controller\n  k0s:\n    config:\n      apiVersion: k0s.k0sproject.io/v1beta1\n      kind: Cluster\n      metadata:\n        name: k0s\n      spec:\n        api:\n          k0sApiPort: 9443\n          port: 6443\n        network:\n          provider: kuberouter\n";
    let mut args = oidc();
    args.extend(["--ca-file", "ca.pem"]);
    let out = patch(text, &args).success();
    assert!(
        out.stderr.contains("detected --file-kind k0sctl"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("the API server also needs /etc/k0s/oidc/oidc-ca.pem (the IdP CA certificate) on every control-plane node"),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.stdout,
        text.replace(
            "          port: 6443\n",
            "          port: 6443\n          extraArgs:\n            oidc-issuer-url: https://idp.example.com\n            oidc-client-id: kubernetes\n            oidc-username-claim: email\n            oidc-username-prefix: \"oidc:\"\n            oidc-groups-claim: groups\n            oidc-groups-prefix: \"oidc:\"\n            oidc-ca-file: /etc/k0s/oidc/oidc-ca.pem\n"
        )
    );
    let removed = patch(&out.stdout, &["--remove"]).success();
    assert_eq!(removed.stdout, text);
}

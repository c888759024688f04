//! Issue 13 ("Hardening"), the points about a node's transaction, each against a real-sshd
//! test node (tests/node.rs). Node numbers 170..=179 belong to this file.

use crate::node::Node;

const MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";

/// The OIDC flags; `--skip-check` because idp.example.com must never be contacted.
fn oidc() -> Vec<&'static str> {
    vec![
        "--skip-check",
        "--issuer-url",
        "https://idp.example.com",
        "--client-id",
        "kubernetes",
        "--username-claim",
        "email",
        "--username-prefix",
        "oidc:",
    ]
}

/// Patches `node` and returns the id of the backup it made.
fn patched(node: &Node) -> String {
    node.k8soidc("patch")
        .args(oidc())
        .args(["--yes", "--timeout", "20s"])
        .run()
        .success();
    node.sh("ls /var/lib/k8soidc/backups").trim().to_string()
}

/// Point 2: `rollback` must not follow a planted staging path. A symlink to the manifests
/// directory at the path a restore stages through once made the restore write `manifests/1`
/// (a pod the kubelet runs) and chown/chmod the directory.
#[test]
fn p2_rollback_never_follows_a_planted_staging_path() {
    let node = Node::on(170).kubeadm().start();
    let before = node.read(MANIFEST).unwrap();
    let id = patched(&node);
    node.sh("ln -s /etc/kubernetes/manifests /etc/kubernetes/.k8soidc-kube-apiserver.yaml.new; ln -s /etc/kubernetes/manifests /etc/kubernetes/manifests/.k8soidc-kube-apiserver.yaml.new");
    let dir_before = node.sh("stat -c '%a %u:%g' /etc/kubernetes/manifests");
    node.k8soidc("rollback")
        .args(["--to", &id, "--yes", "--timeout", "30s"])
        .run()
        .success();
    assert_eq!(node.read(MANIFEST).unwrap(), before);
    assert_eq!(
        node.sh("ls -A /etc/kubernetes/manifests; stat -c '%F %a' /etc/kubernetes/manifests/kube-apiserver.yaml"),
        ".k8soidc-kube-apiserver.yaml.new\nkube-apiserver.yaml\nregular file 600\n",
        "nothing was written through the planted links"
    );
    assert_eq!(
        node.sh("stat -c '%a %u:%g' /etc/kubernetes/manifests"),
        dir_before
    );
}

/// Point 7: a newest backup left incomplete by a crash (no SHA256SUMS, or files that fail
/// them) is listed as incomplete, and a plain `rollback` restores the newest complete one,
/// saying so, instead of refusing until `--to` is given.
#[test]
fn p7_incomplete_newest_backup_is_listed_and_skipped() {
    let node = Node::on(171).kubeadm().start();
    let before = node.read(MANIFEST).unwrap();
    let id = patched(&node);
    // A later run that crashed while backing up: index and copy, no SHA256SUMS.
    let b = "/var/lib/k8soidc/backups";
    node.sh(&format!(
        "cp -a {b}/{id} {b}/29991231T000000Z && rm {b}/29991231T000000Z/SHA256SUMS"
    ));
    let list = node.k8soidc("backups").run().success();
    assert!(
        list.stdout.ends_with(&format!(
            "29991231T000000Z  {MANIFEST}  (incomplete: it fails its checksums; a run stopped while writing it)\n{id}  {MANIFEST}\n"
        )),
        "{}",
        list.stdout
    );
    let back = node
        .k8soidc("rollback")
        .args(["--yes", "--timeout", "30s"])
        .run()
        .success();
    assert!(
        back.stderr.contains(&format!(
            "backup 29991231T000000Z is incomplete (it fails its checksums); restoring {id}, the newest complete backup"
        )),
        "{}",
        back.stderr
    );
    assert_eq!(node.read(MANIFEST).unwrap(), before);
    // `--to` the incomplete one is still refused by its checksums, and changes nothing.
    let fp = node.fingerprint();
    let out = node
        .k8soidc("rollback")
        .args(["--to", "29991231T000000Z", "--yes", "--timeout", "30s"])
        .run()
        .status(1);
    assert!(out.stderr.contains("fails its checksums"), "{}", out.stderr);
    assert_eq!(node.fingerprint(), fp);
}

//! "A plan is what runs" (issue 11): for each distribution, the scripts k8soidc sends to a node
//! — recorded on the node by sshd's ForceCommand (`scripts/test-node`, NODE_RECORD=1;
//! `tests/fakes/node/k8soidc-record`) — are, byte for byte, the scripts `--dry-run -v` printed
//! for the same steps, in the same order. The one run-time value is the backup id, which the
//! dry run shows as `<backup-id>`. Node numbers 160..=179 belong to this file, and 195..=196
//! (issue 12: the flags -> file migration and the reload wait).

use backends::node::{shown_scripts, BACKUP_PLACEHOLDER};

use crate::node::Node;
use crate::test::{fixture, SETTINGS};

/// The harness's settings; `--skip-check` because idp.example.com must never be contacted.
fn oidc() -> Vec<&'static str> {
    std::iter::once("--skip-check").chain(SETTINGS).collect()
}

/// The scripts the node received since the last call (and forgets them).
fn recorded(node: &Node) -> Vec<String> {
    use base64::Engine;
    let path = node.dir.path().join("recorded");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, "").unwrap();
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(l)
                .expect("a base64 line");
            String::from_utf8(bytes).expect("UTF-8 script")
        })
        .collect()
}

/// Replaces the real backup id in `scripts` by the placeholder the dry run shows.
fn with_placeholder(scripts: Vec<String>, id: &str) -> Vec<String> {
    scripts
        .into_iter()
        .map(|s| s.replace(id, &backends::shell::quote(BACKUP_PLACEHOLDER)))
        .collect()
}

fn backup_id(stderr: &str) -> String {
    stderr
        .lines()
        .find_map(|l| l.split("backed up to /var/lib/k8soidc/backups/").nth(1))
        .expect("a backup line")
        .trim()
        .to_string()
}

/// The name of a script (its first line).
fn names(scripts: &[String]) -> Vec<&str> {
    scripts
        .iter()
        .map(|s| s.lines().next().unwrap_or(""))
        .collect()
}

/// Dry run with -v, then the same patch for real: what was sent is what was shown (the
/// on-failure steps aside, which a healthy run does not reach); then a rollback the same way.
fn patch_then_rollback(node: &Node, extra: &[&str]) {
    let dry = node
        .k8soidc("patch")
        .args(oidc())
        .args(extra)
        .args(["--dry-run", "-v", "--timeout", "30s"])
        .run()
        .success();
    let shown = shown_scripts(&dry.stdout);
    recorded(node); // the dry run's own reads
    let run = node
        .k8soidc("patch")
        .args(oidc())
        .args(extra)
        .args(["--yes", "--timeout", "30s"])
        .run()
        .success();
    let sent = recorded(node);
    // Begin, Commit, AwaitHealthy and its read-back (+ kubeadm's compare and swap); then the
    // on-failure branch that was not needed: Logs, Restore, AwaitHealthy.
    assert_eq!(names(&sent), names(&shown[..sent.len()]), "{}", dry.stdout);
    assert_eq!(sent, shown[..sent.len()].to_vec(), "sent != shown");
    let rest = names(&shown[sent.len()..]);
    assert_eq!(
        rest,
        [
            "# k8soidc: the API server's last log lines",
            "# k8soidc: restore a backup",
            "# k8soidc: wait until the API server is healthy",
        ],
        "only the on-failure branch is left"
    );
    assert!(
        run.stderr
            .contains("API server healthy with the new settings"),
        "{}",
        run.stderr
    );

    // rollback --dry-run -v, then the rollback: the same scripts.
    let dry = node
        .k8soidc("rollback")
        .args(["--dry-run", "-v", "--timeout", "30s"])
        .run()
        .success();
    let shown = shown_scripts(&dry.stdout);
    assert!(
        dry.stdout
            .lines()
            .any(|l| l.starts_with('-') && l.contains("oidc-issuer-url=https://idp.example.com")),
        "the rollback dry run shows the diff: {}",
        dry.stdout
    );
    recorded(node);
    node.k8soidc("rollback")
        .args(["--yes", "--timeout", "30s"])
        .run()
        .success();
    let sent = recorded(node);
    assert_eq!(names(&sent), names(&shown));
    assert_eq!(sent, shown, "rollback: sent != shown");
}

#[test]
fn kubeadm_patch_and_rollback_send_what_the_dry_run_shows() {
    let node = Node::next().kubeadm().env("NODE_RECORD", "1").start();
    patch_then_rollback(&node, &[]);
}

#[test]
fn kubeadm_with_configmap_sends_the_compare_and_swap_it_shows() {
    let b = Node::next();
    let addr = b.addr();
    let admin = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://{addr}:6443\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: kubernetes-admin\n  name: kubernetes-admin@kubernetes\ncurrent-context: kubernetes-admin@kubernetes\nusers:\n- name: kubernetes-admin\n  user: {{}}\n"
    );
    let cc = "apiServer: {}\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.32.2\n";
    let cm = serde_json::json!({"data": {"ClusterConfiguration": cc}}).to_string();
    let node = b
        .kubeadm()
        .file("/etc/kubernetes/admin.conf", &admin, 0o600)
        .file(crate::ssh::CONFIGMAP, &cm, 0o600)
        .env("NODE_RECORD", "1")
        .start();
    patch_then_rollback(&node, &[]);
}

#[test]
fn kubeadm_rollback_after_a_failed_wait_sends_what_the_dry_run_shows() {
    let node = Node::next().kubeadm().env("NODE_RECORD", "1").start();
    node.set_never_ready("--oidc-issuer-url");
    let dry = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--dry-run", "-v", "--timeout", "3s"])
        .run()
        .success();
    let shown = shown_scripts(&dry.stdout);
    recorded(&node);
    let run = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--yes", "--timeout", "3s"])
        .run()
        .status(1);
    let id = backup_id(&run.stderr);
    let sent = with_placeholder(recorded(&node), &id);
    // Begin, Commit, AwaitHealthy (fails), then Logs, Restore, AwaitHealthy: every step shown.
    assert_eq!(names(&sent), names(&shown));
    assert_eq!(sent, shown, "sent != shown");
}

#[test]
fn microk8s_patch_and_rollback_send_what_the_dry_run_shows() {
    let b = Node::next();
    let addr = b.addr();
    const ARGS: &str = "/var/snap/microk8s/current/args/kube-apiserver";
    let args = format!(
        "{}--bind-address={addr}\n",
        fixture("microk8s-args/001-microk8s-2025-03f0791.args")
    );
    let node = b.file(ARGS, &args, 0o660).env("NODE_RECORD", "1").start();
    node.sh("microk8s start");
    patch_then_rollback(&node, &[]);
}

#[test]
fn k3s_patch_and_rollback_send_what_the_dry_run_shows() {
    let b = Node::next();
    let addr = b.addr();
    const CONFIG: &str = "/etc/rancher/k3s/config.yaml";
    let config = format!(
        "bind-address: {addr}\n{}",
        fixture("k3s-config/003-sylchamber-control-plane.yaml")
    );
    let node = b
        .file(CONFIG, &config, 0o600)
        .env("NODE_RECORD", "1")
        .start();
    node.sh("systemctl start k3s");
    patch_then_rollback(&node, &[]);
}

#[test]
fn rke2_patch_and_rollback_send_what_the_dry_run_shows() {
    let b = Node::next();
    let addr = b.addr();
    const CONFIG: &str = "/etc/rancher/rke2/config.yaml";
    let node = b
        .file(CONFIG, &format!("bind-address: {addr}\n"), 0o600)
        .env("NODE_RECORD", "1")
        .start();
    node.sh("systemctl start rke2-server");
    let ca = node.dir.path().join("tls.crt");
    patch_then_rollback(&node, &["--ca-file", ca.to_str().unwrap()]);
}

/// `create --ssh`: the dry run (with -v) shows every script a real create sends, in order,
/// MicroK8s' args-file script after the snap install included.
fn create_sends_what_it_shows(node: &Node, distro: &str, env: &[(&str, &str)]) {
    let mut dry = node.k8soidc("create");
    dry = dry
        .args(["--distro", distro])
        .args(oidc())
        .args(["--dry-run", "-v"]);
    for (k, v) in env {
        dry = dry.env(k, v);
    }
    let dry = dry.run().success();
    let shown = shown_scripts(&dry.stdout);
    recorded(node);
    let mut run = node.k8soidc("create");
    run = run.args(["--distro", distro]).args(oidc()).args(["--yes"]);
    for (k, v) in env {
        run = run.env(k, v);
    }
    run.run().success();
    let sent = recorded(node);
    assert_eq!(names(&sent), names(&shown), "{}", dry.stdout);
    assert_eq!(sent, shown, "create {distro}: sent != shown");
}

#[test]
fn create_kubeadm_sends_what_the_dry_run_shows() {
    let node = Node::next().env("NODE_RECORD", "1").start();
    create_sends_what_it_shows(&node, "kubeadm", &[]);
}

#[test]
fn create_k3s_sends_what_the_dry_run_shows() {
    let b = Node::next();
    let addr = b.addr();
    let node = b
        .file(
            "/etc/rancher/k3s/config.yaml",
            &format!("bind-address: {addr}\n"),
            0o600,
        )
        .env("NODE_RECORD", "1")
        .start();
    create_sends_what_it_shows(&node, "k3s", &[("K8SOIDC_K3S_INSTALLER", "k3s-install")]);
}

#[test]
fn create_microk8s_sends_what_the_dry_run_shows() {
    let node = Node::next().env("NODE_RECORD", "1").start();
    create_sends_what_it_shows(&node, "microk8s", &[]);
    let args = node
        .read("/var/snap/microk8s/current/args/kube-apiserver")
        .unwrap();
    assert!(
        args.contains("--oidc-issuer-url=https://idp.example.com\n"),
        "{args}"
    );
    assert!(args.contains("--authorization-mode=RBAC,Node\n"), "{args}");
}

/// The dry run (with -v) of `patch ARGS`, then the real run (exit `status`): the scripts the
/// dry run showed, those the node received (the backup id as the placeholder), and the dry run.
fn shown_and_sent(node: &Node, args: &[&str], status: i32) -> (Vec<String>, Vec<String>, String) {
    let dry = node
        .k8soidc("patch")
        .args(args)
        .args(["--dry-run", "-v", "--timeout", "20s"])
        .run()
        .success();
    let shown = shown_scripts(&dry.stdout);
    recorded(node);
    let run = node
        .k8soidc("patch")
        .args(args)
        .args(["--yes", "--timeout", "20s"])
        .run()
        .status(status);
    let sent = recorded(node);
    let sent = match run
        .stderr
        .contains("backed up to /var/lib/k8soidc/backups/")
    {
        true => with_placeholder(sent, &backup_id(&run.stderr)),
        false => sent,
    };
    (shown, sent, dry.stdout.clone())
}

/// A successful run sent the shown scripts up to the on-failure branch, which is all that is
/// left.
fn sent_all_but_the_on_failure_branch(shown: &[String], sent: &[String], dry: &str) {
    assert!(sent.len() <= shown.len(), "{dry}");
    assert_eq!(names(sent), names(&shown[..sent.len()]), "{dry}");
    assert_eq!(sent, &shown[..sent.len()], "sent != shown");
    assert_eq!(
        names(&shown[sent.len()..]),
        [
            "# k8soidc: the API server's last log lines",
            "# k8soidc: restore a backup",
            "# k8soidc: wait until the API server is healthy",
        ],
        "only the on-failure branch is left"
    );
}

/// Issue 12: the flags -> file migration (settings read from the node) sends what it shows.
#[test]
fn kubeadm_migration_to_the_file_sends_what_the_dry_run_shows() {
    let m = crate::node::kubeadm_manifest("127.0.0.195").replace(
        "    - --profiling=false\n",
        "    - --profiling=false\n    - --oidc-issuer-url=https://idp.example.com\n    - --oidc-client-id=kubernetes\n    - --oidc-required-claim=hd=example.com\n",
    );
    let node = Node::on(195)
        .file("/etc/kubernetes/manifests/kube-apiserver.yaml", &m, 0o600)
        .env("NODE_RECORD", "1")
        .start();
    let (shown, sent, dry) = shown_and_sent(&node, &["--auth-mode", "config"], 0);
    sent_all_but_the_on_failure_branch(&shown, &sent, &dry);
    assert!(
        dry.contains(
            "+    - --authentication-config=/etc/kubernetes/oidc/authentication-config.yaml\n"
        ),
        "{dry}"
    );
    assert!(
        dry.contains("-    - --oidc-issuer-url=https://idp.example.com\n"),
        "{dry}"
    );
}

/// Issue 12: a file-only change waits for the reload on the node (metrics), and a rejected
/// one restores the backup: both send what the dry run shows.
#[test]
fn kubeadm_reload_wait_and_its_restore_send_what_the_dry_run_shows() {
    let n = 196;
    let admin = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://127.0.0.{n}:6443\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: kubernetes-admin\n  name: kubernetes-admin@kubernetes\ncurrent-context: kubernetes-admin@kubernetes\nusers:\n- name: kubernetes-admin\n  user: {{}}\n"
    );
    let node = Node::on(n)
        .kubeadm()
        .file("/etc/kubernetes/admin.conf", &admin, 0o600)
        .env("NODE_RECORD", "1")
        .start();
    let config = |issuer: &'static str| {
        vec![
            "--skip-check",
            "--issuer-url",
            issuer,
            "--client-id",
            "kubernetes",
            "--auth-mode",
            "config",
            "--kubernetes-version",
            "1.33",
        ]
    };
    node.k8soidc("patch")
        .args(config("https://idp.example.com"))
        .args(["--yes", "--timeout", "20s"])
        .run()
        .success();
    // Accepted: Begin, Commit, AwaitReload (with its read-back).
    let (shown, sent, dry) = shown_and_sent(&node, &config("https://idp2.example.com"), 0);
    sent_all_but_the_on_failure_branch(&shown, &sent, &dry);
    assert!(
        names(&sent).contains(
            &"# k8soidc: wait until the API server reloads the AuthenticationConfiguration"
        ),
        "{dry}"
    );
    // Rejected (the service account issuer): Begin, Commit, AwaitReload, then Logs, Restore,
    // AwaitHealthy: every step shown.
    let (shown, sent, _) = shown_and_sent(
        &node,
        &config("https://kubernetes.default.svc.cluster.local"),
        1,
    );
    assert_eq!(names(&sent), names(&shown));
    assert_eq!(sent, shown, "sent != shown");
}

/// RKE2: the installer starts nothing (docs.rke2.io quickstart), so the plan enables and
/// starts rke2-server after it; what is sent is what the dry run showed, and the API server
/// then runs with the OIDC flags from the drop-in.
#[test]
fn create_rke2_sends_what_the_dry_run_shows() {
    let b = Node::next();
    let addr = b.addr();
    let node = b
        .file(
            "/etc/rancher/rke2/config.yaml",
            &format!("bind-address: {addr}\n"),
            0o600,
        )
        .env("NODE_RECORD", "1")
        .start();
    create_sends_what_it_shows(&node, "rke2", &[("K8SOIDC_RKE2_INSTALLER", "rke2-install")]);
    assert_eq!(
        node.sh("cat /var/log/pods/fake-rke2-install.log; grep rke2-server /var/log/pods/fake-systemctl.log | grep -v is-active"),
        "[]\n[\"enable\", \"rke2-server.service\"]\n[\"start\", \"rke2-server.service\"]\n",
        "installed once, then enabled and started"
    );
    let args =
        node.sh("cat /proc/$(pgrep -f kube-apiserver.py | head -1)/cmdline | tr '\\0' '\\n'");
    assert!(
        args.contains("--oidc-issuer-url=https://idp.example.com"),
        "{args}"
    );
}

//! `patch --ssh`, `backups`, `rollback` against real sshd test nodes (tests/node.rs).
//! Node numbers (N of 127.A.B.N, tests/node.rs) are unique per test: 101..=149 belong to this file.

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

#[test]
fn kubeadm_patch_backup_health_then_noop() {
    let node = Node::on(101).kubeadm().start();
    let before = node.read(MANIFEST).unwrap();
    let out = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--groups-claim", "groups", "--yes", "--timeout", "20s"])
        .run()
        .success();
    assert!(
        out.stderr
            .contains("API server healthy with the new settings"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("SUMMARY"), "{}", out.stderr);
    let after = node.read(MANIFEST).unwrap();
    for flag in [
        // Quoted only where YAML needs it (backends::manifest writes like its neighbours).
        "- --oidc-issuer-url=https://idp.example.com\n",
        "- --oidc-client-id=kubernetes\n",
        "- \"--oidc-username-prefix=oidc:\"\n",
        "- --oidc-groups-claim=groups\n",
    ] {
        assert!(after.contains(flag), "{flag} missing:\n{after}");
    }
    // Only the manifest in the watched dir; mode kept (0600); no temp files left anywhere.
    assert_eq!(
        node.sh("ls -A /etc/kubernetes/manifests"),
        "kube-apiserver.yaml\n"
    );
    assert_eq!(
        node.sh("stat -c %a /etc/kubernetes/manifests/kube-apiserver.yaml"),
        "600\n"
    );
    assert_eq!(node.sh("find / -xdev -name '.k8soidc-*' 2>/dev/null | wc -l; find /etc/kubernetes -name '.k8soidc-*' | wc -l"), "0\n0\n");
    // The backup: outside the manifests dir, 0700/0600, checksums that verify, old bytes.
    let id = node.sh("ls /var/lib/k8soidc/backups").trim().to_string();
    let b = format!("/var/lib/k8soidc/backups/{id}");
    assert_eq!(
        node.sh(&format!("stat -c %a {b}; stat -c %a {b}/1")),
        "700\n600\n"
    );
    node.sh(&format!("cd {b} && sha256sum -c --quiet SHA256SUMS"));
    assert_eq!(node.read(&format!("{b}/1")).unwrap(), before);
    assert!(
        out.stderr.contains(&id),
        "summary names the backup: {}",
        out.stderr
    );
    // The running API server carries the flags.
    let cmdline = node.sh(
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline; echo; done | grep kube-apiserver.py",
    );
    assert!(cmdline.contains("--oidc-groups-claim=groups"), "{cmdline}");

    // Second run: already configured, nothing touched (no new backup).
    let fp = node.fingerprint();
    let again = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--groups-claim", "groups", "--yes"])
        .run()
        .success();
    assert!(
        again.stderr.contains("nothing to change"),
        "{}",
        again.stderr
    );
    assert!(again.stderr.contains("unchanged"), "{}", again.stderr);
    assert_eq!(node.fingerprint(), fp);
}

#[test]
fn dry_run_shows_real_diff_and_changes_nothing() {
    let node = Node::on(102).kubeadm().start();
    let fp = node.fingerprint();
    let out = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--dry-run"])
        .run()
        .success();
    assert_eq!(node.fingerprint(), fp, "dry run changed the node");
    assert!(
        out.stdout
            .contains("--- a/etc/kubernetes/manifests/kube-apiserver.yaml"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("+    - --oidc-issuer-url=https://idp.example.com\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("     - --tls-private-key-file=/etc/kubernetes/pki/apiserver.key"),
        "context lines come from the node: {}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!(
            "curl -fsSk --max-time 5 https://{}:6443/readyz",
            node.addr
        )),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("dry run"), "{}", out.stderr);
}

#[test]
fn values_arrive_as_text_never_run_by_a_shell() {
    let node = Node::on(103).kubeadm().start();
    let marker = "/tmp/k8soidc-pwned-103";
    let _ = std::fs::remove_file(marker);
    let client = format!("x$(touch${{IFS}}{marker})`touch${{IFS}}{marker}`");
    node.k8soidc("patch")
        .args([
            "--skip-check",
            "--issuer-url",
            "https://idp.example.com/'\";$(touch${IFS}/tmp/k8soidc-pwned-103)",
        ])
        .args([
            "--client-id",
            &client,
            "--username-claim",
            "email",
            "--yes",
            "--timeout",
            "20s",
        ])
        .run()
        .success();
    assert!(
        !std::path::Path::new(marker).exists(),
        "a value was run by a shell"
    );
    let after = node.read(MANIFEST).unwrap();
    assert!(
        after.contains(&format!("--oidc-client-id={client}")),
        "{after}"
    );
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&after).unwrap();
    let cmd = &doc["spec"]["containers"][0]["command"];
    let flags: Vec<&str> = cmd
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        flags.contains(&format!("--oidc-client-id={client}").as_str()),
        "{flags:?}"
    );
}

#[test]
fn never_ready_rolls_back_byte_identical() {
    let node = Node::on(104).kubeadm().start();
    node.set_never_ready("--oidc-issuer-url");
    let before = node.read(MANIFEST).unwrap();
    let out = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--yes", "--timeout", "3s"])
        .run()
        .status(1);
    assert_eq!(
        node.read(MANIFEST).unwrap(),
        before,
        "not byte-identical after rollback"
    );
    assert_eq!(
        node.sh("stat -c %a /etc/kubernetes/manifests/kube-apiserver.yaml"),
        "600\n"
    );
    assert!(out.stderr.contains("restoring backup"), "{}", out.stderr);
    assert!(
        out.stderr.contains("readyz check failed"),
        "last log lines shown: {}",
        out.stderr
    );
    assert!(out.stderr.contains("rolled back"), "{}", out.stderr);
    assert!(
        out.stderr.contains("healthy with the previous settings"),
        "{}",
        out.stderr
    );
}

#[test]
fn host_key_mismatch_refused_before_any_command() {
    let node = Node::on(105).kubeadm().start();
    let other = node.dir.path().join("other");
    std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&other)
        .status()
        .unwrap();
    let good = std::fs::read_to_string(node.dir.path().join("known_hosts")).unwrap();
    let wrong = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    std::fs::write(
        node.dir.path().join("known_hosts"),
        format!("[{}]:{} {wrong}", node.addr, node.port),
    )
    .unwrap();
    let out = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--yes"])
        .run()
        .status(1);
    assert!(out.stderr.contains("host key"), "{}", out.stderr);
    std::fs::write(node.dir.path().join("known_hosts"), good).unwrap();
    assert_eq!(
        node.sh("ls -A /var/lib/k8soidc"),
        "backups\n",
        "a command ran: the lock file exists"
    );
}

#[test]
fn unknown_host_refused_unless_accept_new() {
    let node = Node::on(106).kubeadm().start();
    std::fs::write(node.dir.path().join("known_hosts"), "").unwrap();
    let out = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--dry-run"])
        .run()
        .status(1);
    assert!(out.stderr.contains("host key"), "{}", out.stderr);
    node.k8soidc("patch")
        .args(oidc())
        .args(["--accept-new-host-key"])
        .args(["--dry-run"])
        .run()
        .success();
    let kh = std::fs::read_to_string(node.dir.path().join("known_hosts")).unwrap();
    assert!(kh.contains("ssh-ed25519"), "key remembered: {kh}");
}

#[test]
fn lock_held_refused_and_unchanged() {
    let node = Node::on(107).kubeadm().start();
    node.sh("flock /var/lib/k8soidc/lock sleep 60 </dev/null >/dev/null 2>&1 & sleep 0.2");
    let fp = node.fingerprint();
    let out = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--yes"])
        .run()
        .status(1);
    assert!(
        out.stderr.contains("another k8soidc run holds the lock"),
        "{}",
        out.stderr
    );
    assert_eq!(node.fingerprint(), fp);
}

fn refused_without_change(n: u8, fault: &str, expect: &str) {
    let node = Node::on(n).kubeadm().env("NODE_FAULT", fault).start();
    let fp = node.fingerprint();
    let out = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--yes"])
        .run()
        .status(1);
    assert!(out.stderr.contains(expect), "{}", out.stderr);
    assert_eq!(node.fingerprint(), fp, "{fault}: the node changed");
    assert_eq!(node.sh("find /etc -name '.k8soidc-*' | wc -l"), "0\n");
}

#[test]
fn backup_dir_read_only_no_change() {
    refused_without_change(108, "backups-ro", "cannot create backup directory");
}

#[test]
fn backup_disk_full_no_change() {
    refused_without_change(109, "backups-full", "cannot back up");
}

#[test]
fn sudo_without_password_works_with_password_refused() {
    let node = Node::on(110)
        .kubeadm()
        .env("NODE_USER", "k8soidc-op")
        .env("NODE_SUDO", "nopasswd")
        .start();
    node.k8soidc_as("k8soidc-op", "patch")
        .args(oidc())
        .args(["--yes", "--timeout", "20s"])
        .run()
        .success();
    assert!(node.read(MANIFEST).unwrap().contains("--oidc-issuer-url"));
    assert_eq!(
        node.sh("stat -c %U /etc/kubernetes/manifests/kube-apiserver.yaml"),
        "root\n"
    );

    drop(node);
    let node = Node::on(111)
        .kubeadm()
        .env("NODE_USER", "k8soidc-op")
        .env("NODE_SUDO", "password")
        .start();
    let fp = node.fingerprint();
    let out = node
        .k8soidc_as("k8soidc-op", "patch")
        .args(oidc())
        .args(["--yes"])
        .run()
        .status(1);
    assert!(out.stderr.contains("needs a password"), "{}", out.stderr);
    assert_eq!(node.fingerprint(), fp);
}

#[test]
fn connection_killed_at_each_step_boundary_then_rerun_converges() {
    let node = Node::on(112).kubeadm().start();
    let before = node.read(MANIFEST).unwrap();
    let mut after = None;
    for stage in ["lock", "read", "stage", "commit"] {
        let out = node
            .k8soidc("patch")
            .args(oidc())
            .args(["--yes", "--timeout", "20s"])
            .env("K8SOIDC_TEST_DISCONNECT_AFTER", stage)
            .run();
        let now = node.read(MANIFEST).unwrap();
        if out.status == 0 {
            // Already converged by an earlier stage: nothing to do.
            assert!(
                out.stderr.contains("nothing to change"),
                "{stage}: {}",
                out.stderr
            );
        } else {
            assert!(
                out.stderr.contains("connection") || out.stderr.contains("lost"),
                "{stage}: {}",
                out.stderr
            );
        }
        assert!(
            now == before || now.contains("--oidc-issuer-url"),
            "{stage}: partial file"
        );
        serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&now).expect("manifest parses");
        assert_eq!(
            node.sh("ls -A /etc/kubernetes/manifests"),
            "kube-apiserver.yaml\n",
            "{stage}"
        );
        // A re-run converges (and the lock was released by the dead connection).
        node.k8soidc("patch")
            .args(oidc())
            .args(["--yes", "--timeout", "20s"])
            .run()
            .success();
        let converged = node.read(MANIFEST).unwrap();
        assert!(converged.contains("--oidc-issuer-url"), "{stage}");
        if let Some(a) = &after {
            assert_eq!(&converged, a, "{stage}: converged to something else");
        }
        after = Some(converged);
        // Back to the start for the next stage.
        node.k8soidc("patch")
            .args(["--remove", "--yes", "--timeout", "20s"])
            .run()
            .success();
        assert_eq!(
            node.read(MANIFEST).unwrap(),
            before,
            "{stage}: remove restores the original"
        );
    }
}

#[test]
fn backups_list_and_rollback_restore_exact_bytes() {
    let node = Node::on(113).kubeadm().start();
    let before = node.read(MANIFEST).unwrap();
    node.k8soidc("patch")
        .args(oidc())
        .args(["--yes", "--timeout", "20s"])
        .run()
        .success();
    let list = node.k8soidc("backups").run().success();
    let id = node.sh("ls /var/lib/k8soidc/backups").trim().to_string();
    assert!(
        list.stdout.contains(&format!("{id}  {MANIFEST}")),
        "{}",
        list.stdout
    );
    let bad = node
        .k8soidc("rollback")
        .args(["--to", "nope", "--yes"])
        .run()
        .status(2);
    assert!(bad.stderr.contains("no such backup"), "{}", bad.stderr);
    node.k8soidc("rollback")
        .args(["--to", &id, "--yes"])
        .run()
        .success();
    assert_eq!(node.read(MANIFEST).unwrap(), before);
    assert_eq!(
        node.sh("stat -c %a /etc/kubernetes/manifests/kube-apiserver.yaml"),
        "600\n"
    );
}

#[test]
fn several_hosts_in_order_first_failure_stops() {
    let a = Node::on(114).kubeadm().start();
    let b = Node::on(115).kubeadm().with_others().start();
    let c = Node::on(116).kubeadm().with_others().start();
    b.set_never_ready("--oidc-issuer-url");
    let c_before = c.read(MANIFEST).unwrap();
    // One ssh config for all three: b's and c's keys are added to a's known_hosts.
    let kh = a.dir.path().join("known_hosts");
    let mut all = std::fs::read_to_string(&kh).unwrap();
    for n in [&b, &c] {
        all.push_str(&std::fs::read_to_string(n.dir.path().join("known_hosts")).unwrap());
        let keys = n.dir.path().join("authorized_keys");
        let mut k = std::fs::read_to_string(&keys).unwrap();
        k.push_str(&std::fs::read_to_string(a.dir.path().join("client.pub")).unwrap());
        std::fs::write(&keys, k).unwrap();
    }
    std::fs::write(&kh, all).unwrap();
    let out = a
        .k8soidc("patch")
        .args(["--ssh", &b.target(), "--ssh", &c.target()])
        .args(oidc())
        .args(["--yes", "--timeout", "10s"])
        .run()
        .status(1);
    assert!(
        a.read(MANIFEST).unwrap().contains("--oidc-issuer-url"),
        "{}",
        out.stderr
    );
    assert_eq!(
        c.read(MANIFEST).unwrap(),
        c_before,
        "the run went on after a failure"
    );
    let table = out
        .stderr
        .split("SUMMARY")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let lines: Vec<&str> = table.lines().filter(|l| l.starts_with("root@")).collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(
        lines[0].contains("patched")
            && lines[1].contains("rolled back")
            && lines[2].contains("not started"),
        "{table}"
    );
}

/// `patch` runs the preflight first (issue 4): an unreachable issuer stops it before any
/// change on the node; a dry run reports it and still shows the real diff.
#[test]
fn preflight_failure_stops_patch_before_any_change() {
    let node = Node::on(117).kubeadm().start();
    let before = node.read(MANIFEST).unwrap();
    // A closed loopback port: the discovery fetch fails at once, nothing leaves the machine.
    let settings = [
        "--issuer-url",
        "https://127.0.0.1:9/",
        "--client-id",
        "kubernetes",
        "--username-prefix",
        "-",
    ];
    let out = node
        .k8soidc("patch")
        .args(["--yes"])
        .args(settings)
        .run()
        .status(1);
    assert!(out.stderr.contains("FAIL  discovery"), "{}", out.stderr);
    assert!(
        out.stderr.contains("preflight check failed"),
        "{}",
        out.stderr
    );
    assert_eq!(node.read(MANIFEST).unwrap(), before);
    let dry = node
        .k8soidc("patch")
        .args(["--dry-run"])
        .args(settings)
        .run()
        .success();
    assert!(
        dry.stderr.contains("a real run would stop here"),
        "{}",
        dry.stderr
    );
    let shown = format!("{}{}", dry.stdout, dry.stderr);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("+    - ")
                && l.contains("--oidc-issuer-url=https://127.0.0.1:9/")),
        "{shown}"
    );
    assert_eq!(node.read(MANIFEST).unwrap(), before);
}

//! `patch --ssh`, `backups`, `rollback` against real sshd test nodes (tests/node.rs).
//! Node numbers (N of 127.A.B.N, tests/node.rs) are unique per test: 101..=149 belong to this file.

use crate::node::Node;
use crate::test::fixture;

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
    let node = Node::next().kubeadm().start();
    let before = node.read(MANIFEST).unwrap();
    let out = node
        .k8soidc("patch")
        .args(oidc())
        .args([
            "--groups-claim",
            "groups",
            "--groups-prefix",
            "oidc:",
            "--yes",
            "--timeout",
            "20s",
        ])
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
        .args([
            "--groups-claim",
            "groups",
            "--groups-prefix",
            "oidc:",
            "--yes",
        ])
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
    let node = Node::next().kubeadm().start();
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
    // The health wait shows the loop that runs on the node and the exact probe of each poll.
    assert!(
        out.stdout.contains(&format!(
            "curl -sSk -o /dev/null -w '\\n%{{http_code}}' --max-time 5 https://{}:6443/readyz",
            node.addr
        )),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "one loop on the node: polls every 0.1 s at first, backing off to every 0.5 s after 1.5 s, up to 300s; healthy = two passing polls in a row (the second 0.1 s after the first)"
        ),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("dry run"), "{}", out.stderr);
}

#[test]
fn values_arrive_as_text_never_run_by_a_shell() {
    let node = Node::next().kubeadm().start();
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
    let node = Node::next().kubeadm().start();
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
    let node = Node::next().kubeadm().start();
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
    assert!(
        out.stderr.contains(&format!(
            "\nerror: host key of `{}` is not the one known: refused before running anything (",
            node.target()
        )) && out
            .stderr
            .ends_with("); check the key, then fix known_hosts (`ssh-keygen -R HOST`)\n"),
        "{}",
        out.stderr
    );
    std::fs::write(node.dir.path().join("known_hosts"), good).unwrap();
    assert_eq!(
        node.sh("ls -A /var/lib/k8soidc"),
        "backups\n",
        "a command ran: the lock file exists"
    );
}

#[test]
fn unknown_host_refused_unless_accept_new() {
    let node = Node::next().kubeadm().start();
    std::fs::write(node.dir.path().join("known_hosts"), "").unwrap();
    let out = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--dry-run"])
        .run()
        .status(1);
    assert!(
        out.stderr.contains(&format!(
            "\nerror: host key of `{}` is unknown (not in known_hosts): refused before running anything (",
            node.target()
        )) && out.stderr.ends_with("); check its fingerprint, then pass --accept-new-host-key to record it, or add it to known_hosts yourself\n"),
        "{}",
        out.stderr
    );
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
    let node = Node::next().kubeadm().start();
    node.sh("flock /var/lib/k8soidc/lock sleep 60 </dev/null >/dev/null 2>&1 & sleep 0.2");
    let fp = node.fingerprint();
    let out = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--yes"])
        .run()
        .status(1);
    assert!(
        out.stderr.ends_with(&format!("error: another k8soidc run holds the lock on `{}` (/var/lib/k8soidc/lock): refused, nothing changed; wait for it to finish and run again\n", node.target())),
        "{}",
        out.stderr
    );
    assert_eq!(node.fingerprint(), fp);
}

fn refused_without_change(fault: &str, expect: &str) {
    let node = Node::next().kubeadm().env("NODE_FAULT", fault).start();
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
    refused_without_change("backups-ro", "cannot create backup directory");
}

#[test]
fn backup_disk_full_no_change() {
    refused_without_change("backups-full", "cannot back up");
}

#[test]
fn sudo_without_password_works_with_password_refused() {
    let node = Node::next()
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
    let node = Node::next()
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
    assert!(
        out.stderr.ends_with(&format!("error: `sudo -n` on `k8soidc-op@{}:{}` needs a password for k8soidc-op (or sudo is missing): refused before any change; allow passwordless sudo for k8soidc-op (NOPASSWD in /etc/sudoers.d) or connect as root\n", node.addr, node.port)),
        "{}",
        out.stderr
    );
    assert_eq!(node.fingerprint(), fp);
}

#[test]
fn connection_killed_at_each_step_boundary_then_rerun_converges() {
    let node = Node::next().kubeadm().start();
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
            // Issue 11: a lost connection is its own class, exit 3 (README "Exit codes").
            assert_eq!(out.status, 3, "{stage}: {}", out.stderr);
            assert!(
                out.stderr.contains(&format!(
                    "error: lost the connection to `{}`",
                    node.target()
                )),
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
    let node = Node::next().kubeadm().start();
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
    let back = node
        .k8soidc("rollback")
        .args(["--to", &id, "--yes", "--timeout", "30s"])
        .run()
        .success();
    assert!(
        back.stderr.contains(&format!(
            "the kubeadm API server is healthy with backup {id}"
        )),
        "{}",
        back.stderr
    );
    assert_eq!(
        node.sh("ps -eo args | grep -c '[k]ube-apiserver.py.*--oidc-issuer-url' || true"),
        "0\n",
        "the API server runs the restored manifest"
    );
    assert_eq!(node.read(MANIFEST).unwrap(), before);
    assert_eq!(
        node.sh("stat -c %a /etc/kubernetes/manifests/kube-apiserver.yaml"),
        "600\n"
    );
}

#[test]
fn several_hosts_in_order_first_failure_stops() {
    let a = Node::next().kubeadm().start();
    let b = Node::next().kubeadm().with_others().start();
    let c = Node::next().kubeadm().with_others().start();
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
    let node = Node::next().kubeadm().start();
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

/// The `--oidc-*` / `--authentication-config` words of the running fake API server.
fn running_flags(node: &Node) -> Vec<String> {
    let cmd = node.sh(
        "for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/cmdline 2>/dev/null | grep -qx '.*/kube-apiserver[.]py' && tr '\\0' '\\n' < $p/cmdline; done; true",
    );
    let mut v: Vec<String> = cmd
        .lines()
        .filter(|l| l.starts_with("--oidc-") || l.starts_with("--authentication-config"))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn fake_apiserver_enforces_the_upstream_start_up_rules() {
    // tests/fakes/node/kube-apiserver.py rules 4 and 5 (kubernetes/kubernetes
    // pkg/kubeapiserver/options/authentication.go): both modes at once, or a CA the container
    // cannot see, end the process before it serves anything.
    let fake = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fakes/node/kube-apiserver.py"
    );
    let run = |args: &[&str], mounts: &str| {
        std::process::Command::new("python3")
            .arg(fake)
            .arg("kube-apiserver")
            .args(args)
            .env("FAKE_MOUNTS", mounts)
            .output()
            .unwrap()
    };
    let both = run(
        &[
            "--oidc-issuer-url=https://idp.example.com",
            "--oidc-client-id=k",
            "--authentication-config=/etc/kubernetes/oidc/authentication-config.yaml",
        ],
        "[]",
    );
    assert_eq!(both.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&both.stdout)
        .contains("authentication-config file and oidc-* flags are mutually exclusive"));
    let hidden = run(
        &[
            "--oidc-issuer-url=https://idp.example.com",
            "--oidc-client-id=k",
            "--oidc-ca-file=/etc/kubernetes/oidc/oidc-ca.pem",
        ],
        r#"[["/etc/kubernetes/pki", "/etc/kubernetes/pki"]]"#,
    );
    assert_eq!(hidden.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&hidden.stdout).contains("no such file or directory"));
}

#[test]
fn config_mode_mounts_dir_sets_authentication_config_and_drops_oidc_flags() {
    let node = Node::next().kubeadm().start();
    // First flags mode with a CA: the CA lands in the already-mounted /etc/kubernetes/pki and
    // the fake API server (which opens --oidc-ca-file through the pod's mounts) is healthy.
    let ca = node.dir.path().join("tls.crt");
    node.k8soidc("patch")
        .args(oidc())
        .args([
            "--ca-file",
            ca.to_str().unwrap(),
            "--yes",
            "--timeout",
            "20s",
        ])
        .run()
        .success();
    assert_eq!(
        node.read("/etc/kubernetes/pki/oidc-ca.pem").unwrap(),
        std::fs::read_to_string(&ca).unwrap()
    );
    let m = node.read(MANIFEST).unwrap();
    assert!(
        m.contains("- --oidc-ca-file=/etc/kubernetes/pki/oidc-ca.pem\n"),
        "{m}"
    );
    assert!(!m.contains("name: oidc\n"), "no volume needed for pki: {m}");
    assert!(running_flags(&node)
        .contains(&"--oidc-ca-file=/etc/kubernetes/pki/oidc-ca.pem".to_string()));

    // Then config mode: file in a mounted directory, one flag, no --oidc-* left.
    let out = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--auth-mode", "config", "--kubernetes-version", "1.32"])
        .args(["--yes", "--timeout", "20s"])
        .run()
        .success();
    assert!(
        out.stderr
            .contains("API server healthy with the new settings"),
        "{}",
        out.stderr
    );
    let auth = node
        .read("/etc/kubernetes/oidc/authentication-config.yaml")
        .unwrap();
    assert!(auth.contains("kind: AuthenticationConfiguration"), "{auth}");
    let m = node.read(MANIFEST).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&m).unwrap();
    let vol = doc["spec"]["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|v| v["name"].as_str() == Some("oidc"))
        .unwrap_or_else(|| panic!("oidc volume: {m}"));
    assert_eq!(
        vol["hostPath"]["path"].as_str(),
        Some("/etc/kubernetes/oidc")
    );
    assert!(!m.contains("--oidc-"), "{m}");
    assert_eq!(
        running_flags(&node),
        vec!["--authentication-config=/etc/kubernetes/oidc/authentication-config.yaml"]
    );
    // Rerun: nothing to change.
    let fp = node.fingerprint();
    let again = node
        .k8soidc("patch")
        .args(oidc())
        .args([
            "--auth-mode",
            "config",
            "--kubernetes-version",
            "1.32",
            "--yes",
        ])
        .run()
        .success();
    assert!(
        again.stderr.contains("nothing to change"),
        "{}",
        again.stderr
    );
    assert_eq!(node.fingerprint(), fp);
}

#[test]
fn ca_goes_to_an_added_oidc_volume_when_pki_is_not_mounted() {
    let b = Node::next();
    let addr = b.addr();
    let m = crate::node::kubeadm_manifest(&addr).replace(
        "    - mountPath: /etc/kubernetes/pki\n      name: k8s-certs\n      readOnly: true\n",
        "",
    );
    let node = b.file(MANIFEST, &m, 0o600).start();
    let ca = node.dir.path().join("tls.crt");
    node.k8soidc("patch")
        .args(oidc())
        .args([
            "--ca-file",
            ca.to_str().unwrap(),
            "--yes",
            "--timeout",
            "20s",
        ])
        .run()
        .success();
    assert!(node.read("/etc/kubernetes/oidc/oidc-ca.pem").is_some());
    assert!(node.read("/etc/kubernetes/pki/oidc-ca.pem").is_none());
    let after = node.read(MANIFEST).unwrap();
    assert!(
        after.contains("--oidc-ca-file=/etc/kubernetes/oidc/oidc-ca.pem"),
        "{after}"
    );
    assert!(after.contains("mountPath: /etc/kubernetes/oidc"), "{after}");
    assert!(running_flags(&node)
        .contains(&"--oidc-ca-file=/etc/kubernetes/oidc/oidc-ca.pem".to_string()));
}

#[test]
fn flags_mode_refused_over_a_foreign_authentication_config() {
    let b = Node::next();
    let addr = b.addr();
    let auth = "apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthenticationConfiguration\njwt:\n- issuer:\n    url: https://other.example.com\n    audiences: [x]\n  claimMappings:\n    username:\n      claim: sub\n      prefix: ''\n";
    let m = crate::node::kubeadm_manifest(&addr).replace(
        "    - --profiling=false\n",
        "    - --profiling=false\n    - --authentication-config=/etc/kubernetes/pki/mine.yaml\n",
    );
    let node = b
        .file(MANIFEST, &m, 0o600)
        .file("/etc/kubernetes/pki/mine.yaml", auth, 0o600)
        .start();
    let fp = node.fingerprint();
    let out = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--yes", "--timeout", "20s"])
        .run();
    assert_ne!(out.status, 0);
    assert!(
        out.stderr.contains(
            "`--authentication-config=/etc/kubernetes/pki/mine.yaml`, which k8soidc did not write"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(node.fingerprint(), fp, "the node changed");
}

pub(crate) const CONFIGMAP: &str =
    "/etc/kubernetes/fake-apiserver/configmaps/kube-system/kubeadm-config.json";

/// A kubeadm node with /etc/kubernetes/admin.conf and the kubeadm-config ConfigMap (as
/// `kubeadm init` 1.32 stores it: v1beta4, `apiServer: {}`) in the fake kubectl's store.
fn kubeadm_with_configmap() -> Node {
    let b = Node::next();
    let addr = b.addr();
    let admin = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://{addr}:6443\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: kubernetes-admin\n  name: kubernetes-admin@kubernetes\ncurrent-context: kubernetes-admin@kubernetes\nusers:\n- name: kubernetes-admin\n  user: {{}}\n"
    );
    let cc = "apiServer: {}\napiVersion: kubeadm.k8s.io/v1beta4\ncaCertificateValidityPeriod: 87600h0m0s\ncertificateValidityPeriod: 8760h0m0s\ncertificatesDir: /etc/kubernetes/pki\nclusterName: kubernetes\ncontrollerManager: {}\ndns: {}\nencryptionAlgorithm: RSA-2048\netcd:\n  local:\n    dataDir: /var/lib/etcd\nimageRepository: registry.k8s.io\nkind: ClusterConfiguration\nkubernetesVersion: v1.32.2\nnetworking:\n  dnsDomain: cluster.local\n  serviceSubnet: 10.96.0.0/12\nproxy: {}\nscheduler: {}\n";
    let cm = serde_json::json!({"data": {"ClusterConfiguration": cc, "other": "kept"}}).to_string();
    b.kubeadm()
        .file("/etc/kubernetes/admin.conf", &admin, 0o600)
        .file(CONFIGMAP, &cm, 0o600)
        .start()
}

fn cluster_configuration(node: &Node) -> String {
    let cm: serde_json::Value = serde_json::from_str(&node.read(CONFIGMAP).unwrap()).unwrap();
    assert_eq!(cm["data"]["other"], "kept", "other keys stay");
    cm["data"]["ClusterConfiguration"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn kubeadm_config_configmap_updated_after_health_shown_in_dry_run() {
    let node = kubeadm_with_configmap();
    let before = cluster_configuration(&node);
    let fp = node.fingerprint();
    let dry = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--dry-run"])
        .run()
        .success();
    assert_eq!(node.fingerprint(), fp, "dry run changed the node");
    let read = format!("+ [{}] kubectl --kubeconfig /etc/kubernetes/admin.conf get configmap kubeadm-config -n kube-system -o 'jsonpath={{.data.ClusterConfiguration}}'", node.target());
    for want in [
        read.as_str(),
        "    | +++ b/kube-system/configmaps/kubeadm-config/ClusterConfiguration",
        "    | -apiServer: {}",
        "    | +  - name: oidc-issuer-url",
        "kubectl --kubeconfig /etc/kubernetes/admin.conf patch configmap kubeadm-config -n kube-system --type merge --patch-file /dev/stdin <<'K8SOIDC_EOF'\n{\"data\":{\"ClusterConfiguration\":",
        "#   only if it still reads as above (else nothing is written):",
    ] {
        assert!(dry.stdout.contains(want), "{want} missing:\n{}", dry.stdout);
    }
    let out = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--yes", "--timeout", "20s"])
        .run()
        .success();
    let healthy = out.stderr.find("API server healthy with the new settings");
    let updated = out.stderr.find("updated: kubectl");
    assert!(
        healthy.is_some() && updated.is_some() && healthy < updated,
        "ConfigMap only after health: {}",
        out.stderr
    );
    let after = cluster_configuration(&node);
    assert_ne!(after, before);
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&after).unwrap();
    let args = doc["apiServer"]["extraArgs"].as_sequence().unwrap();
    assert!(
        args.iter()
            .any(|a| a["name"] == "oidc-issuer-url" && a["value"] == "https://idp.example.com"),
        "{after}"
    );
    // The content went on stdin: no kubectl call carried it in argv.
    let calls = node.sh("cat /var/log/pods/fake-kubectl.log");
    assert!(calls.contains("\"patch\""), "{calls}");
    assert!(!calls.contains("idp.example.com"), "{calls}");
    // Rerun: nothing to change anywhere.
    let fp = node.fingerprint();
    let again = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--yes"])
        .run()
        .success();
    assert!(
        again.stderr.contains("nothing to change"),
        "{}",
        again.stderr
    );
    assert_eq!(node.fingerprint(), fp);
    // A change that never becomes healthy is rolled back and leaves the ConfigMap alone.
    node.set_never_ready("--oidc-groups-claim=groups");
    node.k8soidc("patch")
        .args(oidc())
        .args([
            "--groups-claim",
            "groups",
            "--groups-prefix",
            "oidc:",
            "--yes",
            "--timeout",
            "3s",
        ])
        .run()
        .status(1);
    assert_eq!(cluster_configuration(&node), after);
}

/// patch → healthy with the flags → rerun changes nothing → a change that never becomes ready
/// is rolled back byte for byte and the API server runs the previous flags again. For the
/// distributions whose API server is restarted by a command (fake `microk8s`, `systemctl`).
fn patch_noop_rollback(node: &Node, file: &str, extra: &[&str], expect_in_file: &str) {
    let out = node
        .k8soidc("patch")
        .args(oidc())
        .args(extra)
        .args(["--yes", "--timeout", "20s"])
        .run()
        .success();
    assert!(
        out.stderr
            .contains("API server healthy with the new settings"),
        "{}",
        out.stderr
    );
    let after = node.read(file).unwrap();
    assert!(after.contains(expect_in_file), "{after}");
    let flags = running_flags_any(node);
    assert!(
        flags.contains(&"--oidc-issuer-url=https://idp.example.com".to_string()),
        "{flags:?}"
    );
    let fp = node.fingerprint();
    let again = node
        .k8soidc("patch")
        .args(oidc())
        .args(extra)
        .args(["--yes"])
        .run()
        .success();
    assert!(
        again.stderr.contains("nothing to change"),
        "{}",
        again.stderr
    );
    assert_eq!(node.fingerprint(), fp);

    node.set_never_ready("--oidc-groups-claim=groups");
    let out = node
        .k8soidc("patch")
        .args(oidc())
        .args(extra)
        .args([
            "--groups-claim",
            "groups",
            "--groups-prefix",
            "oidc:",
            "--yes",
            "--timeout",
            "3s",
        ])
        .run()
        .status(1);
    assert!(out.stderr.contains("rolled back"), "{}", out.stderr);
    assert!(
        out.stderr.contains("healthy with the previous settings"),
        "{}",
        out.stderr
    );
    assert_eq!(node.read(file).unwrap(), after, "not byte-identical");
    let flags = running_flags_any(node);
    assert!(
        !flags.iter().any(|f| f.contains("groups-claim")) && !flags.is_empty(),
        "{flags:?}"
    );
}

/// The managed flags of the running fake API server, whoever started it.
fn running_flags_any(node: &Node) -> Vec<String> {
    let cmd = node.sh(
        "for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/cmdline 2>/dev/null | grep -qx '.*/kube-apiserver[.]py' && tr '\\0' '\\n' < $p/cmdline; done; true",
    );
    let mut v: Vec<String> = cmd
        .lines()
        .filter(|l| l.starts_with("--oidc-") || l.starts_with("--authentication-config"))
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

#[test]
fn microk8s_patch_enables_rbac_noop_rerun_and_rollback() {
    let b = Node::next();
    let addr = b.addr();
    const ARGS: &str = "/var/snap/microk8s/current/args/kube-apiserver";
    let args = format!(
        "{}--bind-address={addr}\n",
        fixture("microk8s-args/001-microk8s-2025-03f0791.args")
    );
    let node = b.file(ARGS, &args, 0o660).start();
    node.sh("microk8s start");
    let dry = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--dry-run"])
        .run()
        .success();
    assert!(dry.stdout.contains("patch microk8s"), "{}", dry.stdout);
    assert!(
        dry.stdout.contains(
            "--authorization-mode=AlwaysAllow: every user the IdP signs in would be all-powerful"
        ),
        "{}",
        dry.stdout
    );
    assert!(dry
        .stdout
        .contains(&format!("+ [{}] microk8s enable rbac", node.target())));
    assert!(dry.stdout.contains(&format!(
        "curl -sSk -o /dev/null -w '\\n%{{http_code}}' --max-time 5 https://{addr}:16443/readyz"
    )));
    patch_noop_rollback(
        &node,
        ARGS,
        &[],
        "--oidc-issuer-url=https://idp.example.com\n",
    );
    let after = node.read(ARGS).unwrap();
    assert!(
        after.contains("--authorization-mode=RBAC,Node\n"),
        "{after}"
    );
    let calls = node.sh("cat /var/log/pods/fake-microk8s.log");
    assert!(
        calls.contains("[\"enable\", \"rbac\"]\n[\"stop\"]\n[\"start\"]"),
        "rbac first, then the documented restart: {calls}"
    );
}

#[test]
fn k3s_patch_noop_rerun_and_rollback() {
    let b = Node::next();
    let addr = b.addr();
    const CONFIG: &str = "/etc/rancher/k3s/config.yaml";
    let config = format!(
        "bind-address: {addr}\n{}",
        fixture("k3s-config/003-sylchamber-control-plane.yaml")
    );
    let node = b.file(CONFIG, &config, 0o600).start();
    node.sh("systemctl start k3s");
    patch_noop_rollback(
        &node,
        CONFIG,
        &[],
        "  - oidc-issuer-url=https://idp.example.com\n",
    );
    let calls = node.sh("cat /var/log/pods/fake-systemctl.log");
    assert!(calls.contains("[\"restart\", \"k3s\"]"), "{calls}");
    assert!(
        calls.contains("[\"is-active\", \"--quiet\", \"k3s\"]"),
        "{calls}"
    );
    // k3s refuses anonymous requests, so the health check is k3s's own kubectl with its admin
    // kubeconfig (an anonymous /readyz would answer 401 and roll back a healthy server).
    assert_eq!(
        node.sh(&format!(
            "curl -sk -o /dev/null -w '%{{http_code}}' https://{addr}:6443/readyz"
        )),
        "401"
    );
    let k3s = node.sh("cat /var/log/pods/fake-k3s.log");
    assert!(
        k3s.contains(
            r#"["kubectl", "--kubeconfig", "/etc/rancher/k3s/k3s.yaml", "get", "--raw", "/readyz"]"#
        ),
        "{k3s}"
    );
}

/// k0s (issue 15): `spec.api.extraArgs` in /etc/k0s/k0s.yaml, `systemctl restart
/// k0scontroller`, health on `spec.api.address`; a rerun changes nothing; an API server that
/// never becomes ready is rolled back byte for byte; `--remove` gives back the original file.
#[test]
fn k0s_patch_noop_rollback_and_remove() {
    const CONFIG: &str = "/etc/k0s/k0s.yaml";
    let config = "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nmetadata:\n  name: k0s\nspec:\n  api:\n    address: 127.0.0.200\n    port: 6443\n    extraArgs:\n      audit-log-maxage: \"30\"\n  network:\n    provider: kuberouter\n";
    let node = Node::on(200).file(CONFIG, config, 0o600).start();
    node.sh("systemctl start k0scontroller");
    let dry = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--dry-run"])
        .run()
        .success();
    assert!(
        dry.stdout.contains("patch k0s (set OIDC)")
            && dry
                .stdout
                .contains("+      oidc-username-prefix: \"oidc:\"\n")
            && dry.stdout.contains("systemctl restart k0scontroller")
            && dry.stdout.contains("https://127.0.0.200:6443/readyz"),
        "{}",
        dry.stdout
    );
    assert_eq!(
        node.read(CONFIG).unwrap(),
        config,
        "a dry run changes nothing"
    );
    patch_noop_rollback(
        &node,
        CONFIG,
        &[],
        "      oidc-issuer-url: https://idp.example.com\n",
    );
    let calls = node.sh("cat /var/log/pods/fake-systemctl.log");
    assert!(
        calls.contains("[\"restart\", \"k0scontroller\"]"),
        "{calls}"
    );
    node.k8soidc("patch")
        .args(["--remove", "--yes", "--timeout", "20s"])
        .run()
        .success();
    assert_eq!(node.read(CONFIG).unwrap(), config);
    assert!(running_flags_any(&node).is_empty());
}

/// `rollback` on k3s restarts the unit so the restored config is what runs, and waits for it.
#[test]
fn k3s_rollback_restarts_the_unit_and_waits_for_health() {
    let b = Node::next();
    let addr = b.addr();
    const CONFIG: &str = "/etc/rancher/k3s/config.yaml";
    let config = &format!("bind-address: {addr}\n");
    let node = b.file(CONFIG, config, 0o600).start();
    node.sh("systemctl start k3s");
    node.k8soidc("patch")
        .args(oidc())
        .args(["--yes", "--timeout", "60s"])
        .run()
        .success();
    let running = "ps -eo args | grep -c '[k]ube-apiserver.py.*--oidc-issuer-url' || true";
    assert_eq!(node.sh(running), "1\n");
    let back = node
        .k8soidc("rollback")
        .args(["--yes", "--timeout", "60s"])
        .run()
        .success();
    assert_eq!(&node.read(CONFIG).unwrap(), config);
    assert!(
        back.stderr.contains("systemctl restart k3s")
            && back
                .stderr
                .contains("the k3s API server is healthy with backup"),
        "{}",
        back.stderr
    );
    assert_eq!(node.sh(running), "0\n", "k3s runs the restored config");
}

/// A k3s whose API server allows anonymous requests again (`anonymous-auth=true`) is found
/// healthy by the anonymous probe alone, without its kubectl.
#[test]
fn k3s_with_anonymous_auth_is_probed_anonymously() {
    let b = Node::next();
    let addr = b.addr();
    const CONFIG: &str = "/etc/rancher/k3s/config.yaml";
    let node = b
        .file(
            CONFIG,
            &format!("bind-address: {addr}\nkube-apiserver-arg:\n  - anonymous-auth=true\n"),
            0o600,
        )
        .start();
    node.sh("systemctl start k3s");
    node.k8soidc("patch")
        .args(oidc())
        .args(["--yes", "--timeout", "60s"])
        .run()
        .success();
    assert!(node
        .read(CONFIG)
        .unwrap()
        .contains("oidc-issuer-url=https://idp.example.com"));
    assert_eq!(
        node.sh("cat /var/log/pods/fake-k3s.log 2>/dev/null || true"),
        ""
    );
}

#[test]
fn rke2_patch_with_ca_in_an_extra_mount_noop_rerun_and_rollback() {
    let b = Node::next();
    let addr = b.addr();
    const CONFIG: &str = "/etc/rancher/rke2/config.yaml";
    let config = &format!("bind-address: {addr}\nkube-apiserver-arg:\n  - profiling=false\n");
    let node = b.file(CONFIG, config, 0o600).start();
    node.sh("systemctl start rke2-server");
    let ca = node.dir.path().join("tls.crt");
    patch_noop_rollback(
        &node,
        CONFIG,
        &["--ca-file", ca.to_str().unwrap()],
        "  - oidc-ca-file=/etc/rancher/rke2/oidc/oidc-ca.pem\n",
    );
    let after = node.read(CONFIG).unwrap();
    assert!(
        after.contains("/etc/rancher/rke2/oidc:/etc/rancher/rke2/oidc:ro"),
        "the API server pod must see the CA: {after}"
    );
    assert!(node.read("/etc/rancher/rke2/oidc/oidc-ca.pem").is_some());
    let kubectl = node.sh("cat /var/log/pods/fake-kubectl.log");
    assert!(
        kubectl.contains(
            r#"["--kubeconfig", "/etc/rancher/rke2/rke2.yaml", "get", "--raw", "/readyz"]"#
        ),
        "RKE2's own kubectl with its admin kubeconfig checks health: {kubectl}"
    );
}

/// What the host itself has in the directories a patch touches (to prove `--local` tests
/// never change them).
fn host_state() -> String {
    let out = std::process::Command::new("sh")
        .args(["-c", "for d in /etc/kubernetes /var/lib/k8soidc /etc/rancher /var/lib/rancher /var/snap/microk8s; do [ -e $d ] && find $d -xdev -printf '%p %s %T@\\n' 2>/dev/null; done | sort | sha256sum"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn local_patch_runs_the_same_transaction_in_a_private_namespace() {
    let addr = "127.0.0.140";
    let host_before = host_state();
    let dir = tempfile::Builder::new()
        .prefix("k8l")
        .tempdir_in("/tmp")
        .unwrap();
    let d = dir.path();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let ok = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=kube-apiserver",
            "-keyout",
        ])
        .arg(d.join("tls.key"))
        .arg("-out")
        .arg(d.join("tls.crt"))
        .arg("-addext")
        .arg(format!("subjectAltName=IP:{addr}"))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    let seed = d.join("seed/etc/kubernetes/manifests");
    std::fs::create_dir_all(&seed).unwrap();
    let manifest = crate::node::kubeadm_manifest(addr);
    std::fs::write(seed.join("kube-apiserver.yaml"), &manifest).unwrap();
    std::fs::set_permissions(
        seed.join("kube-apiserver.yaml"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_k8soidc");
    let flags = "--skip-check --issuer-url https://idp.example.com --client-id kubernetes --username-claim email --username-prefix oidc:";
    let script = format!(
        r#"{bin} patch --local {flags} --yes --timeout 20s; echo "K8SOIDC-RC1=$?"
cat {MANIFEST}; echo K8SOIDC-END
ps -eo args | grep -c '[k]ube-apiserver.py.*--oidc-issuer-url=https://idp.example.com'
{bin} patch --local {flags} --yes; echo "K8SOIDC-RC2=$?"
echo --oidc-groups-claim=groups > "$NODE_DIR/never-ready"
{bin} patch --local {flags} --groups-claim groups --groups-prefix oidc: --yes --timeout 3s; echo "K8SOIDC-RC3=$?"
grep -c groups-claim {MANIFEST}; ls /var/lib/k8soidc/backups | wc -l
{bin} backups --local; echo "K8SOIDC-RC4=$?"
{bin} rollback --local --to "$(ls /var/lib/k8soidc/backups | head -n1)" --yes --timeout 20s; echo "K8SOIDC-RC5=$?"
grep -c oidc-issuer-url {MANIFEST}; ps -eo args | grep -c '[k]ube-apiserver.py.*--oidc-issuer-url'"#
    );
    let out = std::process::Command::new("timeout")
        .arg("120")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/test-local"))
        .arg(d)
        .arg(addr)
        .args(["sh", "-c", &script])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", d)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let all = format!("{stdout}\n--- stderr ---\n{stderr}");
    assert!(stdout.contains("K8SOIDC-RC1=0"), "{all}");
    let patched = stdout
        .split("K8SOIDC-RC1=0\n")
        .nth(1)
        .and_then(|t| t.split("K8SOIDC-END").next())
        .unwrap_or_default();
    assert!(
        patched.contains("- --oidc-issuer-url=https://idp.example.com\n"),
        "{all}"
    );
    assert!(
        stdout.contains("K8SOIDC-END\n1\n"),
        "the API server runs the flags: {all}"
    );
    assert!(
        stderr.contains("[localhost] API server healthy with the new settings"),
        "{all}"
    );
    assert!(stdout.contains("K8SOIDC-RC2=0"), "{all}");
    assert!(stderr.contains("nothing to change"), "{all}");
    assert!(
        stdout.contains("K8SOIDC-RC3=1\n0\n2\n"),
        "rolled back, two backups: {all}"
    );
    assert!(
        stderr.contains("restored; API server healthy with the previous settings"),
        "{all}"
    );
    // backups and rollback work --local too: the oldest backup is the manifest before any
    // OIDC, and the API server runs it again afterwards.
    assert!(
        stdout.contains("# localhost: backups in /var/lib/k8soidc/backups"),
        "{all}"
    );
    assert!(stdout.contains("K8SOIDC-RC4=0"), "{all}");
    assert!(stdout.contains("K8SOIDC-RC5=0\n0\n0\n"), "{all}");
    assert!(
        stderr.contains("the kubeadm API server is healthy with backup"),
        "{all}"
    );
    assert_eq!(
        host_state(),
        host_before,
        "the host's own directories changed"
    );
}

#[test]
fn create_kubeadm_over_ssh_writes_config_then_runs_kubeadm_init() {
    let node = Node::next().start();
    let dry = node
        .k8soidc("create")
        .args(["--distro", "kubeadm"])
        .args(oidc())
        .args(["--dry-run"])
        .run()
        .success();
    assert!(
        dry.stdout.contains("kind: ClusterConfiguration"),
        "{}",
        dry.stdout
    );
    assert!(dry
        .stdout
        .contains("kubeadm init --config /var/lib/k8soidc/kubeadm-config.yaml"));
    node.k8soidc("create")
        .args(["--distro", "kubeadm"])
        .args(oidc())
        .args(["--yes"])
        .run()
        .success();
    let calls = node.sh("cat /var/log/pods/fake-kubeadm.log");
    assert_eq!(
        calls,
        "[\"init\", \"--config\", \"/var/lib/k8soidc/kubeadm-config.yaml\"]\n"
    );
    let flags = running_flags_any(&node);
    assert!(
        flags.contains(&"--oidc-issuer-url=https://idp.example.com".to_string()),
        "{flags:?}"
    );
    // A second create is refused: the control plane exists.
    let again = node
        .k8soidc("create")
        .args(["--distro", "kubeadm"])
        .args(oidc())
        .args(["--yes"])
        .run();
    assert_ne!(again.status, 0);
    assert!(
        again
            .stderr
            .contains("already runs a kubeadm control plane"),
        "{}",
        again.stderr
    );
}

#[test]
fn create_k3s_over_ssh_writes_the_dropin_before_the_installer() {
    let b = Node::next();
    let addr = b.addr();
    let node = b
        .file(
            "/etc/rancher/k3s/config.yaml",
            &format!("bind-address: {addr}\n"),
            0o600,
        )
        .start();
    node.k8soidc("create")
        .args(["--distro", "k3s"])
        .args(oidc())
        .args(["--yes"])
        .env("K8SOIDC_K3S_INSTALLER", "k3s-install")
        .run()
        .success();
    assert_eq!(node.sh("cat /var/log/pods/fake-k3s-install.log"), "[]\n");
    let dropin = node
        .read("/etc/rancher/k3s/config.yaml.d/50-oidc.yaml")
        .unwrap();
    assert!(
        dropin.contains("oidc-issuer-url=https://idp.example.com"),
        "{dropin}"
    );
    assert_eq!(
        node.read("/etc/rancher/k3s/config.yaml").unwrap(),
        format!("bind-address: {addr}\n"),
        "config.yaml stays the user's"
    );
    let flags = running_flags_any(&node);
    assert!(
        flags.contains(&"--oidc-issuer-url=https://idp.example.com".to_string()),
        "{flags:?}"
    );
}

#[test]
fn create_microk8s_over_ssh_installs_the_snap_then_patches() {
    let node = Node::next().start();
    node.k8soidc("create")
        .args(["--distro", "microk8s"])
        .args(oidc())
        .args(["--yes"])
        .run()
        .success();
    assert_eq!(
        node.sh("cat /var/log/pods/fake-snap.log"),
        "[\"install\", \"microk8s\", \"--classic\"]\n"
    );
    let args = node
        .read("/var/snap/microk8s/current/args/kube-apiserver")
        .unwrap();
    assert!(
        args.contains("--oidc-issuer-url=https://idp.example.com\n"),
        "{args}"
    );
    assert!(args.contains("--authorization-mode=RBAC,Node\n"), "{args}");
    let flags = running_flags_any(&node);
    assert!(
        flags.contains(&"--oidc-issuer-url=https://idp.example.com".to_string()),
        "{flags:?}"
    );
}

/// `create --ssh` runs the preflight first too (issue 4): an unreachable issuer stops it
/// before anything is written on the host.
#[test]
fn preflight_failure_stops_create_over_ssh() {
    let node = Node::next().start();
    let out = node
        .k8soidc("create")
        .args([
            "--distro",
            "kubeadm",
            "--yes",
            "--issuer-url",
            "https://127.0.0.1:9/",
            "--client-id",
            "kubernetes",
            "--username-prefix",
            "-",
        ])
        .run()
        .status(1);
    assert!(out.stderr.contains("FAIL  discovery"), "{}", out.stderr);
    assert!(
        out.stderr.contains("preflight check failed"),
        "{}",
        out.stderr
    );
    assert_eq!(
        node.read("/etc/kubernetes/manifests/kube-apiserver.yaml"),
        None
    );
    assert_eq!(
        node.sh("ls -A /etc/kubernetes | wc -l").trim(),
        "0",
        "nothing written on the host"
    );
}

#[test]
fn k3s_without_config_file_is_found_by_its_running_unit() {
    let b = Node::next();
    let addr = b.addr();
    let node = b
        .file(
            "/etc/rancher/k3s/config.yaml.d/10-node.yaml",
            &format!("bind-address: {addr}\n"),
            0o600,
        )
        .start();
    node.sh("systemctl start k3s");
    let fp = node.fingerprint();
    let dry = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--dry-run"])
        .run()
        .success();
    assert_eq!(node.fingerprint(), fp);
    assert!(dry.stdout.contains("patch k3s"), "{}", dry.stdout);
    assert!(
        dry.stdout
            .contains("write /etc/rancher/k3s/config.yaml (mode 0600, new file):"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("systemctl restart k3s"),
        "{}",
        dry.stdout
    );
}

fn accepted(node: &Node) -> usize {
    std::fs::read_to_string(node.dir.path().join("node.err"))
        .unwrap_or_default()
        .matches("Accepted publickey for root")
        .count()
}

/// The issue's SSH promises, as a terminal user has them: `~/.ssh/config` (no `--ssh-config`),
/// keys from ssh-agent only (no IdentityFile anywhere), a control plane reached through a
/// ProxyJump host, strict host keys from `~/.ssh/known_hosts` — and one SSH connection per
/// host for the whole transaction (counted in each sshd's own log). The home directory is a
/// temporary one bound over /root in a private mount namespace (ssh takes `~` from the
/// password database, not $HOME), so the machine's own /root/.ssh is never read or written.
#[test]
fn ssh_config_agent_and_proxyjump_work_over_one_connection_per_host() {
    let jump = Node::next().start();
    let cp = Node::next().kubeadm().with_others().start();
    let home = tempfile::Builder::new()
        .prefix("k8h")
        .tempdir_in("/tmp")
        .unwrap();
    let ssh = home.path().join(".ssh");
    std::fs::create_dir(&ssh).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o700)).unwrap();
    let kh = |n: &Node| std::fs::read_to_string(n.dir.path().join("known_hosts")).unwrap();
    std::fs::write(
        ssh.join("known_hosts"),
        format!("{}\n{}\n", kh(&jump).trim(), kh(&cp).trim()),
    )
    .unwrap();
    std::fs::write(
        ssh.join("config"),
        format!(
            "Host cp1\n  HostName {}\n  Port {}\n  User root\n  ProxyJump jump\nHost jump\n  HostName {}\n  Port {}\n  User root\nHost *\n  BatchMode yes\n  LogLevel ERROR\n",
            cp.addr, cp.port, jump.addr, jump.port
        ),
    )
    .unwrap();
    let sock = home.path().join("agent.sock");
    let mut agent = std::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sock.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for n in [&jump, &cp] {
        let ok = std::process::Command::new("ssh-add")
            .arg("-q")
            .arg(n.dir.path().join("client"))
            .env("SSH_AUTH_SOCK", &sock)
            .status()
            .unwrap();
        assert!(ok.success(), "ssh-add");
    }
    let (jump_before, cp_before) = (accepted(&jump), accepted(&cp));
    let out = std::process::Command::new("timeout")
        .args([
            "120",
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
        ])
        .arg(r#"mount --bind "$0" /root && exec "$@""#)
        .arg(home.path())
        .arg(env!("CARGO_BIN_EXE_k8soidc"))
        .args(["patch", "--ssh", "cp1"])
        .args(oidc())
        .args(["--yes", "--timeout", "30s"])
        .env("SSH_AUTH_SOCK", &sock)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let _ = agent.kill();
    let _ = agent.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Counted before the test's own ssh (`cp.read`) adds one.
    let (jump_conns, cp_conns) = (accepted(&jump) - jump_before, accepted(&cp) - cp_before);
    assert!(
        cp.read(MANIFEST)
            .unwrap()
            .contains("- --oidc-issuer-url=https://idp.example.com\n"),
        "{stderr}"
    );
    assert_eq!(
        cp_conns, 1,
        "one SSH connection to the control plane for the whole transaction: {stderr}"
    );
    assert_eq!(jump_conns, 1, "one connection through the jump host");
}

//! Issue 16, point 6: `patch --local` as the unit of work under Ansible. The example playbook
//! (`examples/ansible/k8soidc-patch.yml`) runs with ansible-core (a venv under cargo's target
//! directory, installed when missing, the one `scripts/bench-patch` uses) against three test
//! nodes: it copies the binary, runs `k8soidc patch --local -o json` one node at a time
//! (`serial: 1`), registers the JSON and fails on it. The third node's new API server never
//! becomes ready: k8soidc rolls it back, the playbook fails that host and stops.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::node::{kubeadm_manifest, Node};

const MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";
const ISSUER_FLAG: &str = "--oidc-issuer-url=https://idp.example.com";

/// Cargo's target directory (the binary is `TARGET/debug/k8soidc`).
fn target_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_k8soidc"));
    bin.parent()
        .and_then(Path::parent)
        .expect("the binary is in TARGET/PROFILE/")
        .to_path_buf()
}

/// `ansible-playbook` from the venv, installing ansible-core when it is missing (needs PyPI
/// once; a failed install names the step to run by hand).
fn ansible_playbook() -> PathBuf {
    let venv = target_dir().join("bench-tools/ansible");
    let playbook = venv.join("bin/ansible-playbook");
    if playbook.exists() {
        return playbook;
    }
    // A venv's scripts name its directory, so it is made in place (a half-made one from an
    // interrupted install is removed first).
    let step = format!(
        "python3 -m venv {v} && {v}/bin/pip install ansible-core",
        v = venv.display()
    );
    let _ = std::fs::remove_dir_all(&venv);
    let ok = Command::new("timeout")
        .args(["600", "sh", "-c", &step])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok && playbook.exists(),
        "installing ansible-core failed; run `{step}`"
    );
    playbook
}

fn count(node: &Node, pattern: &str) -> String {
    node.sh(&format!("ps -eo args | grep -c -- '{pattern}' || true"))
        .trim()
        .to_string()
}

#[test]
fn ansible_example_patches_every_node_and_a_failing_node_is_rolled_back() {
    let playbook = ansible_playbook();
    let nodes = [
        Node::on(210).kubeadm().start(),
        Node::on(211).kubeadm().with_others().start(),
        Node::on(212).kubeadm().with_others().start(),
    ];
    // The third node's API server never becomes ready with the issuer flag.
    nodes[2].set_never_ready(ISSUER_FLAG);
    let dir = tempfile::Builder::new()
        .prefix("k8a")
        .tempdir_in("/tmp")
        .unwrap();
    let d = dir.path();
    let mut inventory = String::from("[control_plane]\n");
    for n in &nodes {
        inventory.push_str(&format!(
            "n{} ansible_host={} ansible_port={} ansible_user=root ansible_ssh_common_args='-F {}'\n",
            n.port - 20000,
            n.addr,
            n.port,
            n.ssh_config()
        ));
    }
    inventory.push_str("\n[control_plane:vars]\nansible_python_interpreter=/usr/bin/python3\n");
    std::fs::write(d.join("inventory.ini"), inventory).unwrap();
    // The node's private directories (scripts/test-node), so nothing lands on the host.
    let vars = serde_json::json!({
        "k8soidc_binary": d.join("k8soidc"),
        "k8soidc_path": "/usr/local/sbin/k8soidc",
        "k8soidc_config_path": "/usr/local/sbin/k8soidc.d/k8soidc.yaml",
        "k8soidc_timeout": "5s",
        "k8soidc_become": false,
        "k8soidc_extra_args": ["--skip-check"],
        "k8soidc_settings": {
            "issuer-url": "https://idp.example.com",
            "client-id": "kubernetes",
            "username-claim": "email",
            "username-prefix": "oidc:",
        },
    });
    std::fs::write(d.join("vars.json"), vars.to_string()).unwrap();
    // The debug binary without its debug info (a fifth of the size) is what the nodes get.
    let bin = d.join("k8soidc");
    let stripped = Command::new("strip")
        .arg("-o")
        .arg(&bin)
        .arg(env!("CARGO_BIN_EXE_k8soidc"))
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(env!("CARGO_BIN_EXE_k8soidc"), &bin).unwrap();
    }
    std::fs::write(d.join("ansible.cfg"), "").unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/ansible/k8soidc-patch.yml");
    let out = Command::new("timeout")
        .arg("300")
        .arg(&playbook)
        .arg("-i")
        .arg(d.join("inventory.ini"))
        .arg("-e")
        .arg(format!("@{}", d.join("vars.json").display()))
        .arg(&example)
        .current_dir(d)
        .env("HOME", d)
        .env("LC_ALL", "C.UTF-8")
        .env("ANSIBLE_CONFIG", d.join("ansible.cfg"))
        .env("ANSIBLE_HOME", d.join("ansible"))
        .env("ANSIBLE_LOCAL_TEMP", d.join("ansible/tmp"))
        .env("ANSIBLE_REMOTE_TMP", "/usr/local/sbin/.ansible-tmp")
        // A connection per task, no ControlPersist master left behind.
        .env("ANSIBLE_SSH_ARGS", "")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_RETRY_FILES_ENABLED", "False")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let all = format!(
        "{stdout}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Ansible exits 2 when a host failed.
    assert_eq!(out.status.code(), Some(2), "{all}");
    for n in &nodes[..2] {
        let m = n.read(MANIFEST).expect("manifest");
        assert_eq!(
            m.matches(&format!("- {ISSUER_FLAG}\n")).count(),
            1,
            "{}: {m}\n{all}",
            n.addr
        );
        assert_eq!(
            count(n, &format!("[k]ube-apiserver.py.*{ISSUER_FLAG}")),
            "1",
            "{}: the API server runs the new flags\n{all}",
            n.addr
        );
        assert!(
            stdout.contains(&format!("k8soidc patched on n{}; backup 2", n.port - 20000)),
            "{all}"
        );
    }
    let failing = &nodes[2];
    assert_eq!(
        failing.read(MANIFEST).as_deref(),
        Some(kubeadm_manifest(&failing.addr).as_str()),
        "the failing node has its manifest back, byte for byte\n{all}"
    );
    assert_eq!(count(failing, "[k]ube-apiserver.py.*--oidc-"), "0", "{all}");
    assert_eq!(count(failing, "[k]ube-apiserver.py"), "1", "{all}");
    assert_eq!(
        failing.sh("ls /var/lib/k8soidc/backups | wc -l").trim(),
        "1",
        "{all}"
    );
    assert!(
        stdout.contains(
            "k8soidc rolled back on n212 (exit 1): not healthy with the new settings: rolled back; backup 2"
        ),
        "{all}"
    );
    for (host, failed) in [("n210", 0), ("n211", 0), ("n212", 1)] {
        let recap = stdout
            .lines()
            .find(|l| l.starts_with(host) && l.contains("failed="))
            .unwrap_or_else(|| panic!("no recap line for {host}\n{all}"));
        assert!(
            recap.contains(&format!("failed={failed} ")),
            "{recap}\n{all}"
        );
    }
}

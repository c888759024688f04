//! Issue 16, point 3: k8soidc never overrides the algorithms of the user's ssh configuration.
//! The node's sshd logs what each connection negotiated (LogLevel DEBUG1: `kex: algorithm:`,
//! `kex: client->server cipher:`); with an ssh_config that names a key exchange and a cipher,
//! every connection k8soidc makes uses them, and without one, ssh's own default (the first of
//! `ssh -G`'s lists the server also offers), not something k8soidc chose.

use std::process::Command;

use crate::node::Node;
use crate::test::SETTINGS;

/// (key exchange, cipher) of each connection the node's sshd logged so far.
fn negotiated(node: &Node) -> Vec<(String, String)> {
    let log = std::fs::read_to_string(node.dir.path().join("node.err")).unwrap_or_default();
    let pick = |prefix: &str| -> Vec<String> {
        log.lines()
            .filter_map(|l| l.split_once(prefix))
            .map(|(_, rest)| rest.split_whitespace().next().unwrap_or("").to_string())
            .collect()
    };
    pick("kex: algorithm: ")
        .into_iter()
        .zip(pick("kex: client->server cipher: "))
        .collect()
}

/// The first entry of `ssh -G`'s value for `key` (what ssh proposes first).
fn ssh_first(node: &Node, key: &str) -> String {
    let out = Command::new("ssh")
        .args(["-G", "-F", &node.ssh_config(), "-p", &node.port.to_string()])
        .arg(format!("root@{}", node.addr))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .and_then(|v| v.split(',').next())
        .unwrap_or_else(|| panic!("`ssh -G` has no {key}: {text}"))
        .to_string()
}

fn dry_run(node: &Node) {
    let before = negotiated(node).len();
    node.k8soidc("patch")
        .args(SETTINGS)
        .args(["--skip-check", "--dry-run"])
        .run()
        .success();
    assert_eq!(
        negotiated(node).len(),
        before + 1,
        "one connection per host: {:?}",
        negotiated(node)
    );
}

#[test]
fn the_users_key_exchange_and_cipher_are_what_ssh_negotiates() {
    let node = Node::on(213)
        .kubeadm()
        .env("NODE_SSHD_LOGLEVEL", "DEBUG1")
        .start();
    // No algorithm in the config: ssh's defaults, as `ssh -G` lists them.
    let (kex, cipher) = (
        ssh_first(&node, "kexalgorithms"),
        ssh_first(&node, "ciphers"),
    );
    dry_run(&node);
    let last = negotiated(&node).pop().unwrap();
    assert_eq!(last, (kex.clone(), cipher.clone()), "ssh's defaults");
    // The user names others: k8soidc's connection uses them.
    let cfg = node.ssh_config();
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str("  KexAlgorithms ecdh-sha2-nistp256\n  Ciphers aes128-ctr\n");
    std::fs::write(&cfg, text).unwrap();
    assert_ne!(
        kex, "ecdh-sha2-nistp256",
        "the test needs a non-default choice"
    );
    dry_run(&node);
    let last = negotiated(&node).pop().unwrap();
    assert_eq!(
        last,
        ("ecdh-sha2-nistp256".to_string(), "aes128-ctr".to_string()),
        "the user's algorithms"
    );
}

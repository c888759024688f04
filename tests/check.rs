//! `k8soidc check` against a real provider on loopback, and the preflight before `create`.

use crate::provider::{free_port, Provider};
use crate::test::Test;

fn base(issuer: &str) -> Vec<String> {
    [
        "check",
        "--issuer-url",
        issuer,
        "--client-id",
        "kubernetes",
        "--username-claim",
        "email",
        "--groups-claim",
        "groups",
        "--groups-prefix",
        "oidc:",
    ]
    .map(String::from)
    .to_vec()
}

fn row<'a>(stdout: &'a str, status: &str, name: &str) -> &'a str {
    stdout
        .lines()
        .find(|l| l.starts_with(&format!("{status}  {name} ")))
        .unwrap_or_else(|| panic!("no {status} {name} row in:\n{stdout}"))
}

#[test]
fn passes_against_real_provider_and_fails_precisely() {
    let p = Provider::start();
    let ca = p.pki.ca().display().to_string();

    let ok = Test::new()
        .args(base(&p.issuer))
        .args(["--ca-file", &ca])
        .run()
        .success();
    for name in [
        "issuer-url",
        "discovery",
        "issuer-match",
        "signing-algs",
        "scopes",
        "https",
        "jwks",
    ] {
        row(&ok.stdout, "PASS", name);
    }
    assert!(
        !ok.stdout.contains("FAIL") && !ok.stdout.contains("WARN"),
        "{}",
        ok.stdout
    );

    // Trailing slash: the issuer differs by one byte.
    let slash = Test::new()
        .args(base(&format!("{}/", p.issuer)))
        .args(["--ca-file", &ca])
        .run()
        .status(1);
    assert!(
        row(&slash.stdout, "FAIL", "issuer-match")
            .contains("oidc: issuer did not match the issuer returned by provider"),
        "{}",
        slash.stdout
    );
    assert!(
        slash.stdout.contains(&format!(
            "fix: yours ends with `/` and the provider's does not: use `--issuer-url {}`",
            p.issuer
        )),
        "{}",
        slash.stdout
    );

    // Another path: no discovery document there.
    let path = Test::new()
        .args(base(&format!("{}/realms/x", p.issuer)))
        .args(["--ca-file", &ca])
        .run()
        .status(1);
    assert!(
        row(&path.stdout, "FAIL", "discovery").contains("HTTP 404"),
        "{}",
        path.stdout
    );

    // No CA: the certificate is not trusted.
    let noca = Test::new().args(base(&p.issuer)).run().status(1);
    row(&noca.stdout, "FAIL", "discovery");
    assert!(
        noca.stdout.contains("pass `--ca-file` with its CA"),
        "{}",
        noca.stdout
    );

    // An algorithm the provider does not sign with.
    let alg = Test::new()
        .args(base(&p.issuer))
        .args(["--ca-file", &ca, "--signing-algs", "ES256"])
        .run()
        .status(1);
    assert!(
        row(&alg.stdout, "FAIL", "signing-algs").contains("the provider signs with RS256"),
        "{}",
        alg.stdout
    );
    row(&alg.stdout, "FAIL", "jwks");
    assert!(
        alg.stdout.contains("fix: set `--signing-algs RS256"),
        "{}",
        alg.stdout
    );

    // JSON output.
    let json = Test::new()
        .args(base(&p.issuer))
        .args(["--ca-file", &ca, "-o", "json"])
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(
        v.as_array().unwrap().iter().all(|c| c["status"] == "PASS"),
        "{}",
        json.stdout
    );

    // The provider issues real ID tokens (used by the explain tests).
    assert_eq!(p.login("jane", "openid email groups").split('.').count(), 3);

    // create runs the same preflight and goes ahead when it passes.
    let created = Test::new()
        .fake("k3d")
        .args([
            "create",
            "--distro",
            "k3d",
            "--yes",
            "--issuer-url",
            &p.issuer,
            "--client-id",
            "kubernetes",
            "--ca-file",
            &ca,
        ])
        .run()
        .success();
    assert_eq!(created.calls().len(), 1);
}

#[test]
fn create_runs_nothing_when_preflight_fails() {
    let dead = format!("https://127.0.0.1:{}", free_port());
    let out = Test::new()
        .fake("k3d")
        .args([
            "create",
            "--distro",
            "k3d",
            "--yes",
            "--issuer-url",
            &dead,
            "--client-id",
            "kubernetes",
        ])
        .run()
        .status(1);
    assert!(out.stderr.contains("FAIL  discovery"), "{}", out.stderr);
    assert!(out.stderr.contains("pass --skip-check"), "{}", out.stderr);
    assert!(out.calls().is_empty(), "{:?}", out.calls());
    assert!(!out.root.join("data").exists());
}

#[test]
fn bad_issuer_is_bad_input() {
    let out = Test::new().args(base("http://127.0.0.1:1")).run().status(2);
    assert!(
        out.stderr.contains("the issuer must be an https URL"),
        "{}",
        out.stderr
    );
}

/// Issue 14 point 6: `check --ssh` reaches the node like `patch --ssh` does (`--ssh-config`,
/// strict host keys through the same SSH client).
#[test]
fn from_the_node_over_ssh_with_and_without_the_ca() {
    let p = Provider::start();
    let node = crate::sshd::Sshd::start();
    let ca = p.pki.ca().display().to_string();

    // The node's system CAs do not know the test CA; with the CA (sent over stdin) it works.
    let out = Test::new()
        .args(base(&p.issuer))
        .args(["--ca-file", &ca])
        .args(node.args("known_hosts"))
        .run()
        .success();
    assert!(
        row(&out.stdout, "WARN", "node-no-ca").contains("exit 60"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("the API server needs --oidc-ca-file"),
        "{}",
        out.stdout
    );
    assert!(
        row(&out.stdout, "PASS", "node-with-ca").contains("the API server needs --oidc-ca-file"),
        "{}",
        out.stdout
    );

    // Without --ca-file the node cannot verify the provider: FAIL with the fix.
    let out = Test::new()
        .args(base(&p.issuer))
        .args(node.args("known_hosts"))
        .run()
        .status(1);
    row(&out.stdout, "FAIL", "node-no-ca");
    assert!(
        out.stdout
            .contains("the node does not trust the provider's certificate: pass `--ca-file`"),
        "{}",
        out.stdout
    );

    // An unknown host key is refused (StrictHostKeyChecking=yes) ...
    let out = Test::new()
        .args(base(&p.issuer))
        .args(["--ca-file", &ca])
        .args(node.args("empty_known_hosts"))
        .run()
        .status(1);
    let port = node.port;
    let at = out.stdout.find("FAIL  ssh ").expect("an ssh FAIL row");
    assert_eq!(
        &out.stdout[at..],
        format!("FAIL  ssh           host key of `root@127.0.0.1:{port}` is unknown (not in known_hosts): refused before running anything (failed to connect to the remote host: No ED25519 host key is known for [127.0.0.1]:{port} and you have requested strict checking. Host key verification failed.); check its fingerprint, then pass --accept-new-host-key to record it, or add it to known_hosts yourself\n                    fix: the host key, user and key come from ssh's config (`--ssh-config`, else ~/.ssh/config), as for `patch --ssh`\n"),
    );
    // ... unless --accept-new-host-key, which records it.
    Test::new()
        .args(base(&p.issuer))
        .args(["--ca-file", &ca, "--accept-new-host-key"])
        .args(node.args("empty_known_hosts"))
        .run()
        .success();
    // (Debian's ssh_config hashes host names, so look for the key itself.)
    let key = std::fs::read_to_string(node.file("host.pub")).unwrap();
    let key_b64 = key.split_whitespace().nth(1).unwrap();
    assert!(std::fs::read_to_string(node.file("empty_known_hosts"))
        .unwrap()
        .contains(key_b64));
}

/// Issue 11 point 5 / issue 14 point 6: every command that reaches hosts takes the same SSH
/// flags, described the same way.
#[test]
fn every_command_that_reaches_hosts_lists_the_same_ssh_flags() {
    // The help's columns depend on each command's longest flag: compare the words.
    const SSH_FLAGS: &str = "--ssh <[USER@]HOST[:PORT]> A control-plane node, `[USER@]HOST[:PORT]` (repeatable; done one at a time, in order) --accept-new-host-key Accept and remember the host key of a host never seen before (default: strict checking) --ssh-config <FILE> ssh client config file to use instead of ~/.ssh/config (passed as `ssh -F`)";
    for command in ["check", "patch", "rollback", "backups", "create"] {
        let out = Test::new().args([command, "--help"]).run().success();
        let words: Vec<&str> = out.stdout.split_whitespace().collect();
        let start = words
            .iter()
            .position(|w| *w == "--ssh")
            .unwrap_or_else(|| panic!("{command}: no --ssh in:\n{}", out.stdout));
        let n = SSH_FLAGS.split_whitespace().count();
        assert_eq!(
            words[start..(start + n).min(words.len())].join(" "),
            SSH_FLAGS,
            "{command} --help:\n{}",
            out.stdout
        );
        for gone in ["--ssh-identity", "--ssh-option"] {
            assert!(!out.stdout.contains(gone), "{command}: {gone}");
        }
    }
}

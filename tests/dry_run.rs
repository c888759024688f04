//! Issue 14 point 9, kubectl habits: `--dry-run=client` is `--dry-run`; `--dry-run=server`
//! only where a server-side check exists (`patch --capi`, see tests/capi.rs), refused elsewhere
//! with exit 2; `rbac` needs neither `--client-id` nor (for groups) `--issuer-url`, and its
//! `--dry-run` works without `--apply`.

use crate::test::{Test, SETTINGS};

fn create() -> Vec<&'static str> {
    let mut v = vec!["create", "--distro", "k3d", "--skip-check"];
    v.extend(SETTINGS);
    v
}

#[test]
fn dry_run_client_is_dry_run() {
    let plain = Test::new()
        .fake("k3d")
        .args(create())
        .args(["--dry-run"])
        .run()
        .success();
    let client = Test::new()
        .fake("k3d")
        .args(create())
        .args(["--dry-run=client"])
        .run()
        .success();
    assert_eq!(client.stdout, plain.stdout);
    assert!(
        client.stdout.contains("+ k3d cluster create oidc "),
        "{}",
        client.stdout
    );
    assert!(client.calls().is_empty(), "{:?}", client.calls());
}

#[test]
fn dry_run_server_without_a_server_side_check_is_refused() {
    let want = "error: --dry-run=server needs a server-side check; only `patch --capi`, `patch --shoot` and `create --distro gardener` have one; use --dry-run\n";
    let kubeconfig = ["kubeconfig", "--cluster", "c", "--kubeconfig", "kc.yaml"];
    let rbac = ["rbac", "--group", "devs"];
    let patch = ["patch", "--local", "--skip-check"];
    let idp = ["idp", "dex", "--out", "out"];
    let rollback = ["rollback", "--local"];
    for (cmd, settings) in [
        (&rollback[..], &[][..]),
        (&create()[..], &[][..]),
        (&kubeconfig[..], &SETTINGS[..]),
        (&rbac[..], &[][..]),
        (&patch[..], &SETTINGS[..]),
        (&idp[..], &SETTINGS[..]),
    ] {
        let out = Test::new()
            .fake("k3d")
            .args(cmd)
            .args(settings)
            .args(["--dry-run=server"])
            .run()
            .status(2);
        assert_eq!(out.stderr, want, "{cmd:?}");
        assert!(out.calls().is_empty(), "{cmd:?}: {:?}", out.calls());
        assert!(!out.root.join("kc.yaml").exists() && !out.root.join("out").exists());
    }
    let out = Test::new()
        .args(create())
        .args(["--dry-run=maybe"])
        .run()
        .status(2);
    assert!(
        out.stderr.starts_with("error: invalid value 'maybe' for '--dry-run[=<MODE>]': use `--dry-run` (the same as `--dry-run=client`), or `--dry-run=server` with `patch --capi`, `patch --shoot` or `create --distro gardener`\n"),
        "{}",
        out.stderr
    );
}

const DEVS: &str = "apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: oidc-devs-view
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: view
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: oidc:devs
";

/// A group binding uses the groups prefix only: no client id, no issuer needed; `--dry-run`
/// without `--apply` prints it (as `kubectl create … --dry-run=client -o yaml`).
#[test]
fn rbac_needs_only_the_settings_the_binding_uses() {
    let group = [
        "rbac",
        "--group",
        "devs",
        "--clusterrole",
        "view",
        "--groups-claim",
        "groups",
        "--groups-prefix",
        "oidc:",
    ];
    let out = Test::new().args(group).run().success();
    assert!(out.stdout.ends_with(DEVS), "{}", out.stdout);
    let dry = Test::new().args(group).args(["--dry-run"]).run().success();
    assert_eq!(dry.stdout, out.stdout);
    assert_eq!(dry.stderr, out.stderr);
    // A user with the implicit `<issuer>#` prefix needs the issuer, and says why.
    let out = Test::new().args(["rbac", "--user", "jane"]).run().status(2);
    assert_eq!(
        out.stderr,
        "error: missing --issuer-url: --user subjects get kube-apiserver's implicit username prefix `<issuer>#` (no --username-prefix and the claim is not `email`); give the issuer, or `--username-prefix` (`-` for none)\n"
    );
    // With an explicit prefix it does not.
    let out = Test::new()
        .args(["rbac", "--user", "jane", "--username-prefix", "oidc:"])
        .run()
        .success();
    assert!(
        out.stdout.contains("  kind: User\n  name: oidc:jane\n"),
        "{}",
        out.stdout
    );
}

/// Issue 11 point 6: one `--dry-run` for every command that changes something (one flattened
/// definition), with one help text; `rollback` takes kubectl's spelling too.
#[test]
fn every_command_has_the_same_dry_run_flag() {
    // The help is wrapped per command: compare with white space collapsed.
    let want = "--dry-run[=<MODE>] Print the plan (every command, file diff and node step; with -v the exact scripts), change nothing. `--dry-run=client` is the same (kubectl's spelling); `--dry-run=server` only with `patch --capi`";
    for cmd in ["create", "patch", "rollback", "rbac", "kubeconfig", "idp"] {
        let out = Test::new().args([cmd, "--help"]).run().success();
        let help = out.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(help.contains(want), "{cmd}:\n{}", out.stdout);
    }
    let out = Test::new()
        .args(["rollback", "--local", "--dry-run=maybe"])
        .run()
        .status(2);
    assert!(
        out.stderr
            .starts_with("error: invalid value 'maybe' for '--dry-run[=<MODE>]'"),
        "{}",
        out.stderr
    );
}

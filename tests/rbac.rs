//! `k8soidc rbac`: the object equals what real `kubectl create … --dry-run=client -o yaml`
//! builds, subjects carry the prefixes, `--apply` pipes it to `kubectl apply -f -`.

use crate::test::Test;
use crate::tools::run_kubectl;

fn oidc(claim: &str, uprefix: Option<&str>) -> Vec<String> {
    let mut v: Vec<String> = [
        "--issuer-url",
        "https://idp.example.com",
        "--client-id",
        "kubernetes",
        "--username-claim",
        claim,
        "--groups-claim",
        "groups",
        "--groups-prefix",
        "oidc:",
    ]
    .map(String::from)
    .to_vec();
    if let Some(p) = uprefix {
        v.extend(["--username-prefix".to_string(), p.to_string()]);
    }
    v
}

fn yaml(text: &str) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Compares our output with real kubectl's for the same binding.
#[track_caller]
fn same_as_kubectl(ours: &[&str], oidc_args: Vec<String>, theirs: &[&str]) -> String {
    let out = Test::new()
        .args(["rbac"])
        .args(ours)
        .args(oidc_args)
        .run()
        .success();
    let real = run_kubectl(theirs, None, None);
    assert_eq!(real.status, 0, "real kubectl: {}", real.stderr);
    assert_eq!(
        yaml(&out.stdout),
        yaml(&real.stdout),
        "ours:\n{}\nkubectl:\n{}",
        out.stdout,
        real.stdout
    );
    out.stdout.clone()
}

#[test]
fn clusterrolebinding_equals_kubectl_and_says_why_the_prefix() {
    let ours = same_as_kubectl(
        &["--group", "k8s-admins", "--name", "admins"],
        oidc("email", None),
        &[
            "create",
            "clusterrolebinding",
            "admins",
            "--clusterrole",
            "cluster-admin",
            "--group",
            "oidc:k8s-admins",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
    );
    assert!(
        ours.contains(
            "# group subjects carry the groups prefix \"oidc:\": `--groups-prefix oidc:` was given"
        ),
        "{ours}"
    );
}

#[test]
fn user_subject_gets_implicit_issuer_hash_prefix() {
    let ours = same_as_kubectl(
        &[
            "--group",
            "k8s-admins",
            "--user",
            "00u1a2b3",
            "--clusterrole",
            "view",
            "--name",
            "b",
        ],
        oidc("sub", None),
        &[
            "create",
            "clusterrolebinding",
            "b",
            "--clusterrole",
            "view",
            "--user",
            "https://idp.example.com#00u1a2b3",
            "--group",
            "oidc:k8s-admins",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
    );
    assert!(ours.contains("username prefix \"https://idp.example.com#\": no --username-prefix and the claim is `sub`, not `email`"), "{ours}");
}

#[test]
fn user_subject_with_dash_prefix_has_none() {
    same_as_kubectl(
        &["--user", "jane", "--name", "b"],
        // `sub`: the reserved-name policy refuses no prefix on claims users can choose
        oidc("sub", Some("-")),
        &[
            "create",
            "clusterrolebinding",
            "b",
            "--clusterrole",
            "cluster-admin",
            "--user",
            "jane",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
    );
}

#[test]
fn rolebinding_equals_kubectl() {
    same_as_kubectl(
        &[
            "--group",
            "devs",
            "--role",
            "deployer",
            "--namespace",
            "team-a",
            "--name",
            "devs",
        ],
        oidc("email", Some("oidc:")),
        &[
            "create",
            "rolebinding",
            "devs",
            "--role",
            "deployer",
            "--group",
            "oidc:devs",
            "-n",
            "team-a",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
    );
    same_as_kubectl(
        &[
            "--group",
            "devs",
            "--clusterrole",
            "edit",
            "--namespace",
            "team-a",
            "--name",
            "devs",
        ],
        oidc("email", Some("oidc:")),
        &[
            "create",
            "rolebinding",
            "devs",
            "--clusterrole",
            "edit",
            "--group",
            "oidc:devs",
            "-n",
            "team-a",
            "--dry-run=client",
            "-o",
            "yaml",
        ],
    );
}

#[test]
fn json_output_is_the_same_object_and_notes_go_to_stderr() {
    let out = Test::new()
        .args([
            "rbac",
            "--group",
            "k8s-admins",
            "--name",
            "admins",
            "-o",
            "json",
        ])
        .args(oidc("email", None))
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["subjects"][0]["name"], "oidc:k8s-admins");
    assert!(
        out.stderr.contains("groups prefix \"oidc:\""),
        "{}",
        out.stderr
    );
}

#[test]
fn apply_pipes_yaml_to_kubectl_with_kubeconfig_and_context() {
    let out = Test::new()
        .fake("kubectl")
        .write("kc.yaml", "apiVersion: v1\nkind: Config\n")
        .args([
            "rbac",
            "--group",
            "k8s-admins",
            "--apply",
            "--kubeconfig",
            "kc.yaml",
            "--context",
            "prod",
        ])
        .args(oidc("email", None))
        .run()
        .success();
    assert_eq!(
        out.calls(),
        vec![[
            "kubectl",
            "--kubeconfig=kc.yaml",
            "--context=prod",
            "apply",
            "-f",
            "-"
        ]
        .map(String::from)
        .to_vec()]
    );
    let stdin = out.file("fake.log.stdin");
    let sent = yaml(stdin.trim_end_matches('\u{1e}'));
    assert_eq!(sent["subjects"][0]["name"], "oidc:k8s-admins");
    assert!(
        out.stdout.contains(
            "clusterrolebinding.rbac.authorization.k8s.io/oidc-k8s-admins-cluster-admin created"
        ),
        "{}",
        out.stdout
    );
}

#[test]
fn apply_dry_run_prints_yaml_and_command_runs_nothing() {
    let out = Test::new()
        .fake("kubectl")
        .args([
            "rbac",
            "--group",
            "k8s-admins",
            "--apply",
            "--dry-run",
            "--context",
            "prod",
        ])
        .args(oidc("email", None))
        .run()
        .success();
    assert!(out.calls().is_empty(), "{:?}", out.calls());
    assert!(
        out.stdout.contains("# + kubectl --context=prod apply -f -"),
        "{}",
        out.stdout
    );
    assert_eq!(yaml(&out.stdout)["roleRef"]["name"], "cluster-admin");
}

#[test]
fn bad_input_exits_2() {
    let out = Test::new()
        .fake("kubectl")
        .args(["rbac", "--role", "view", "--group", "g", "--apply"])
        .args(oidc("email", None))
        .run()
        .status(2);
    assert!(out.stderr.contains("--namespace"), "{}", out.stderr);
    assert!(out.calls().is_empty());
}

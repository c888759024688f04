//! Cluster API: `render --distro capi`, and the live flow (`patch --capi NAME`) against a fake
//! kubectl that applies merge patches, validates the result against the CRD schema and
//! simulates the rollout.

use crate::test::{fixtures, Test};

const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAK\n-----END CERTIFICATE-----\n";

fn oidc() -> Vec<&'static str> {
    crate::test::SETTINGS.to_vec()
}

/// The KubeadmControlPlane of a fixture, as the API server would print it (JSON, with status).
fn kcp_json(fixture: &str, namespace: &str) -> String {
    let text = std::fs::read_to_string(fixtures().join(fixture)).unwrap();
    let mut obj: serde_json::Value = text
        .split("\n---\n")
        .map(|d| serde_yaml_ng::from_str::<serde_json::Value>(d).unwrap())
        .find(|d| d["kind"] == "KubeadmControlPlane")
        .unwrap();
    obj["metadata"]["name"] = "cp".into();
    obj["metadata"]["namespace"] = namespace.into();
    obj["metadata"]["generation"] = 1.into();
    let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
    obj["spec"]["replicas"] = replicas.into();
    let v2 = obj["apiVersion"].as_str().unwrap().ends_with("v1beta2");
    obj["status"] = if v2 {
        serde_json::json!({"observedGeneration": 1, "replicas": replicas, "upToDateReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas})
    } else {
        serde_json::json!({"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas, "readyReplicas": replicas, "unavailableReplicas": 0})
    };
    serde_json::to_string_pretty(&obj).unwrap()
}

fn cluster(fixture: &str) -> Test {
    Test::new()
        .fake_as("kubectl-capi", "kubectl")
        .write("fake-state/capi/kcp.json", &kcp_json(fixture, "clusters"))
        .write("mgmt.kubeconfig", "apiVersion: v1\nkind: Config\n")
        .write("ca.pem", PEM)
}

fn target() -> Vec<&'static str> {
    vec![
        "patch",
        "--capi",
        "cp",
        "--namespace",
        "clusters",
        "--kubeconfig",
        "mgmt.kubeconfig",
        "--context",
        "mgmt",
    ]
}

/// The object on the fake cluster, checked against the CRD schema of its version (as the API
/// server does on every write).
fn state(out: &crate::test::Output) -> serde_json::Value {
    let mut obj: serde_json::Value =
        serde_json::from_str(&out.file("fake-state/capi/kcp.json")).unwrap();
    let version = obj["apiVersion"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join(format!("schemas/kcp-{version}.schema.json")))
            .unwrap(),
    )
    .unwrap();
    let status = obj.as_object_mut().unwrap().remove("status");
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator.iter_errors(&obj).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    if let Some(st) = status {
        obj["status"] = st;
    }
    obj
}

#[test]
fn render_prints_both_versions_and_commands() {
    let out = Test::new()
        .args(["render", "--distro", "capi", "--name", "cp"])
        .args(oidc())
        .run()
        .success();
    assert!(out.stdout.contains("# merge patch for controlplane.cluster.x-k8s.io/v1beta2 (storage version; extraArgs is a list)\nspec:\n  kubeadmConfigSpec:\n    clusterConfiguration:\n      apiServer:\n        extraArgs:\n        - name: oidc-issuer-url\n          value: https://idp.example.com\n"), "{}", out.stdout);
    assert!(out.stdout.contains("kubectl patch kubeadmcontrolplane cp --type merge -p '{\"spec\":{\"kubeadmConfigSpec\":{\"clusterConfiguration\":{\"apiServer\":{\"extraArgs\":[{\"name\":\"oidc-issuer-url\""), "{}", out.stdout);
}

#[test]
fn dry_run_prints_the_command_and_the_diff_and_changes_nothing() {
    let t = cluster("capi-kcp/capi__docker-simple-cluster.v1beta2.yaml");
    let before = std::fs::read_to_string(t.path().join("fake-state/capi/kcp.json")).unwrap();
    let out = t
        .args(target())
        .args(["--dry-run", "--ca-file", "ca.pem"])
        .args(oidc())
        .run()
        .success();
    assert!(
        out.stdout.contains("+ kubectl --kubeconfig mgmt.kubeconfig --context mgmt --namespace clusters patch kubeadmcontrolplane cp --type merge -p '{\"spec\":{\"kubeadmConfigSpec\":"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("+++ b/kubeadmcontrolplane/cp/spec/kubeadmConfigSpec\n"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(
            "+    - name: oidc-ca-file\n+      value: /etc/kubernetes/oidc/oidc-ca.pem\n"
        ),
        "{}",
        out.stdout
    );
    // The plan's patch step (its diff), then its wait step.
    assert!(
        out.stdout.starts_with("# set OIDC on KubeadmControlPlane `cp` (controlplane.cluster.x-k8s.io/v1beta2); the controller then replaces each control-plane machine\n\n# merge-patch the KubeadmControlPlane (the diff below is the change to its spec.kubeadmConfigSpec)\n+ kubectl "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.ends_with("\n\n# wait until the controller has replaced every control-plane machine\n+ kubectl --kubeconfig mgmt.kubeconfig --context mgmt --namespace clusters get kubeadmcontrolplane cp -o json\n#   again every 10s until every control-plane machine is rolled out, up to 30m (181 polls at most)\n"),
        "{}",
        out.stdout
    );
    assert_eq!(out.calls().len(), 1, "only the read: {:?}", out.calls());
    assert_eq!(
        out.calls()[0][7..],
        ["get", "kubeadmcontrolplane", "cp", "-o", "json"]
    );
    let before: serde_json::Value = serde_json::from_str(&before).unwrap();
    assert_eq!(state(&out)["spec"], before["spec"], "spec untouched");
}

#[test]
fn patch_waits_for_the_rollout_and_is_idempotent() {
    let out = cluster("capi-kcp/eksa__capd-full-oidc-cp.v1beta1.yaml")
        .args(target())
        .args(["--yes", "--poll-interval", "0", "--ca-file", "ca.pem"])
        .args(oidc())
        .run()
        .success();
    let calls = out.calls();
    let patch = &calls[1];
    assert_eq!(
        patch[..13],
        [
            "kubectl",
            "--kubeconfig",
            "mgmt.kubeconfig",
            "--context",
            "mgmt",
            "--namespace",
            "clusters",
            "patch",
            "kubeadmcontrolplane",
            "cp",
            "--type",
            "merge",
            "-p"
        ]
    );
    assert_eq!(patch.len(), 14);
    let json: serde_json::Value = serde_json::from_str(&patch[13]).unwrap();
    let args = &json["spec"]["kubeadmConfigSpec"]["clusterConfiguration"]["apiServer"]["extraArgs"];
    assert_eq!(
        args["oidc-required-claim"],
        serde_json::Value::Null,
        "stale flag removed"
    );
    assert!(calls[2..].iter().all(|c| c[7] == "get"), "{calls:?}");
    // Issue 11: the wait is the plan's second step, run by the executor.
    assert!(
        out.stderr.contains("[1/2] merge-patch the KubeadmControlPlane (the diff below is the change to its spec.kubeadmConfigSpec)\n")
            && out.stderr.contains("[2/2] wait until the controller has replaced every control-plane machine\n"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("KubeadmControlPlane `cp`: 0/3 up to date, 3/3 ready, controller has not seen the change yet"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("KubeadmControlPlane `cp` rolled out: 3/3 up to date, 3/3 ready"),
        "{}",
        out.stderr
    );
    let s = state(&out);
    let api = &s["spec"]["kubeadmConfigSpec"]["clusterConfiguration"]["apiServer"];
    assert_eq!(api["extraArgs"]["oidc-username-prefix"], "oidc:");
    assert_eq!(api["extraArgs"]["audit-log-maxage"], "30");
    assert_eq!(api["extraVolumes"].as_array().unwrap().len(), 3);
    let files = s["spec"]["kubeadmConfigSpec"]["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    assert_eq!(files[1]["content"], PEM);

    // The same again: nothing to do, no patch.
    let again = Test::new()
        .fake_as("kubectl-capi", "kubectl")
        .write(
            "fake-state/capi/kcp.json",
            &serde_json::to_string(&s).unwrap(),
        )
        .write("mgmt.kubeconfig", "")
        .write("ca.pem", PEM)
        .args(target())
        .args(["--yes", "--ca-file", "ca.pem"])
        .args(oidc())
        .run()
        .success();
    assert!(
        again
            .stdout
            .contains("already has these OIDC settings; nothing to do"),
        "{}",
        again.stdout
    );
    assert_eq!(again.calls().len(), 1);
}

#[test]
fn remove_restores_the_spec() {
    let fixture = "capi-kcp/capi__docker-simple-cluster.v1beta2.yaml";
    let original: serde_json::Value = serde_json::from_str(&kcp_json(fixture, "clusters")).unwrap();
    let set = cluster(fixture)
        .args(target())
        .args(["--yes", "--poll-interval", "0", "--ca-file", "ca.pem"])
        .args(oidc())
        .run()
        .success();
    let patched = state(&set);
    assert_eq!(
        patched["spec"]["kubeadmConfigSpec"]["clusterConfiguration"]["apiServer"]["extraArgs"][0]
            ["name"],
        "oidc-issuer-url"
    );
    let removed = Test::new()
        .fake_as("kubectl-capi", "kubectl")
        .write(
            "fake-state/capi/kcp.json",
            &serde_json::to_string(&patched).unwrap(),
        )
        .write("mgmt.kubeconfig", "")
        .args(target())
        .args(["--yes", "--poll-interval", "0", "--remove"])
        .run()
        .success();
    assert_eq!(state(&removed)["spec"], original["spec"]);
}

#[test]
fn timeout_prints_the_conditions() {
    let out = cluster("capi-kcp/capi__docker-simple-cluster.v1beta2.yaml")
        .env("FAKE_CAPI_STUCK", "1")
        .args(target())
        .args(["--yes", "--poll-interval", "1", "--timeout", "1s"])
        .args(oidc())
        .run()
        .status(1);
    assert!(
        out.stderr.contains("error: gave up after 1s: wait until the controller has replaced every control-plane machine (last seen: KubeadmControlPlane `cp`: 0/1 up to date, 1/1 ready, controller has not seen the change yet); the patch is applied"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("\n  | RollingOut=True RollingOut: Rolling out not up-to-date replicas"),
        "{}",
        out.stderr
    );
}

#[test]
fn errors_from_kubectl_are_framed_and_input_is_checked_first() {
    let out = cluster("capi-kcp/capi__docker-simple-cluster.v1beta2.yaml")
        .args([
            "patch",
            "--capi",
            "other",
            "--namespace",
            "clusters",
            "--yes",
        ])
        .args(oidc())
        .run()
        .status(1);
    assert!(out.stderr.contains("error: `kubectl --namespace clusters get kubeadmcontrolplane other -o json` failed (exit status 1):\n  | Error from server (NotFound): kubeadmcontrolplanes.controlplane.cluster.x-k8s.io \"other\" not found"), "{}", out.stderr);
    let out = cluster("capi-kcp/capi__docker-simple-cluster.v1beta2.yaml")
        .args(target())
        .args([
            "--yes",
            "--issuer-url",
            "http://idp.example.com",
            "--client-id",
            "k",
        ])
        .run()
        .status(2);
    assert!(out.calls().is_empty(), "nothing ran: {:?}", out.calls());
    let out = cluster("capi-kcp/capi__docker-simple-cluster.v1beta2.yaml")
        .args(target())
        .args(oidc())
        .run()
        .status(2);
    assert!(
        out.stderr.contains("pass --yes to go ahead"),
        "{}",
        out.stderr
    );
    assert_eq!(out.calls().len(), 1, "read only");
}

#[test]
fn capi_goes_under_patch_only() {
    let out = Test::new()
        .args(["capi-patch", "--capi", "cp"])
        .run()
        .status(2);
    assert!(
        out.stderr.contains("unrecognized subcommand 'capi-patch'"),
        "{}",
        out.stderr
    );
    for extra in [
        ["--ssh", "root@h"],
        ["--file", "x.yaml"],
        ["--timeout", "soon"],
    ] {
        let out = cluster("capi-kcp/capi__docker-simple-cluster.v1beta2.yaml")
            .args(target())
            .args(extra)
            .args(oidc())
            .run()
            .status(2);
        assert!(
            out.calls().is_empty(),
            "{extra:?}: nothing ran: {:?}",
            out.calls()
        );
    }
}

/// Issue 14 point 9: `--dry-run=server` also has the API server check the patch (kubectl patch
/// --dry-run=server: admission and validation run, nothing is stored); `--dry-run=client` is
/// `--dry-run`.
#[test]
fn dry_run_server_has_the_api_server_check_the_patch() {
    let t = cluster("capi-kcp/capi__docker-simple-cluster.v1beta2.yaml");
    let before = std::fs::read_to_string(t.path().join("fake-state/capi/kcp.json")).unwrap();
    let client = cluster("capi-kcp/capi__docker-simple-cluster.v1beta2.yaml")
        .args(target())
        .args(["--dry-run=client"])
        .args(oidc())
        .run()
        .success();
    let out = t
        .args(target())
        .args(["--dry-run=server"])
        .args(oidc())
        .run()
        .success();
    let global = "--kubeconfig mgmt.kubeconfig --context mgmt --namespace clusters";
    let patch_line = client
        .stdout
        .lines()
        .find(|l| l.starts_with("+ kubectl "))
        .expect("the patch command");
    assert_eq!(
        out.stdout,
        format!(
            "{}# the API server accepts it (admission and validation ran, nothing was stored):\n{patch_line} --dry-run=server\nkubeadmcontrolplane.controlplane.cluster.x-k8s.io/cp patched (server dry run)\n",
            client.stdout
        )
    );
    let calls = out.calls();
    assert_eq!(calls.len(), 2, "the read and the server check: {calls:?}");
    assert_eq!(
        calls[1].last().map(String::as_str),
        Some("--dry-run=server")
    );
    assert_eq!(calls[1][1..7].join(" "), global);
    let before: serde_json::Value = serde_json::from_str(&before).unwrap();
    assert_eq!(state(&out)["spec"], before["spec"], "spec untouched");
}

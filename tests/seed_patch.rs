//! Issue 14: a running cluster of each seed distribution given OIDC (and having it taken out)
//! with its own tool: `patch --kops` (kops), `patch --juju` (juju), `patch --k3d` (docker), each
//! against the fakes in tests/fakes, which keep the cluster's state: dry run, run, a failure and
//! its restore, `--remove`. Also: declining the prompt of `patch --inventory` exits 0.

use std::process::{Command, Stdio};

use crate::test::{Output, Test, SETTINGS};

const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAK\n-----END CERTIFICATE-----\n";

/// The output with the test's temporary directory written as `ROOT`.
fn rooted(out: &Output, text: &str) -> String {
    text.replace(&out.root.display().to_string(), "ROOT")
}

/// Every fake call as one shell-like line.
fn calls(out: &Output) -> Vec<String> {
    out.calls().iter().map(|c| c.join(" ")).collect()
}

fn state(out: &Output, rel: &str) -> String {
    out.file(&format!("fake-state/{rel}"))
}

// ---------------------------------------------------------------- kops

const KOPS_SPEC: &str = "apiVersion: kops.k8s.io/v1alpha2
kind: Cluster
metadata:
  name: dev.k8s.local
spec:
  api:
    loadBalancer:
      type: Public
  kubeAPIServer:
    anonymousAuth: false
  kubernetesVersion: 1.31.4
";

fn kops(extra: &[&str]) -> Test {
    Test::new()
        .fake("kops")
        .write("fake-state/kops/dev.k8s.local.yaml", KOPS_SPEC)
        .args([
            "patch",
            "--kops",
            "dev.k8s.local",
            "--state",
            "s3://bucket",
            "--skip-check",
        ])
        .args(extra)
}

#[test]
fn kops_dry_run_shows_the_commands_the_diff_and_the_restore() {
    let out = kops(&["--dry-run"]).args(SETTINGS).run().success();
    assert_eq!(
        rooted(&out, &out.stdout),
        "# set OIDC on kops cluster `dev.k8s.local`
# note: kops: --oidc-* flags
# note: username prefix: `oidc:` (`--username-prefix oidc:` was given)
# note: groups prefix: `oidc:`
# note: a token with email=\"jane@example.com\", groups=[\"k8s-admins\"] becomes user \"oidc:jane@example.com\" in groups \"oidc:k8s-admins\", \"system:authenticated\"

# save the cluster spec as kops stores it now (a restore puts this file back)
+ sh -c 'mkdir -p ROOT/data/k8soidc/kops-dev.k8s.local && kops get cluster --name dev.k8s.local --state s3://bucket -o yaml > ROOT/data/k8soidc/kops-dev.k8s.local/cluster-before.yaml'

# copy it for the OIDC change
+ cp ROOT/data/k8soidc/kops-dev.k8s.local/cluster-before.yaml ROOT/data/k8soidc/kops-dev.k8s.local/cluster-oidc.yaml

# set the API server's OIDC settings (and the files it reads) in the copy, with k8soidc's kops patcher
+ k8soidc patch --file ROOT/data/k8soidc/kops-dev.k8s.local/cluster-oidc.yaml --file-kind kops-cluster --in-place --config /dev/null --issuer-url https://idp.example.com --client-id kubernetes --username-claim email --username-prefix oidc: --groups-claim groups --groups-prefix oidc:

# store the changed spec (if this fails, nothing was changed)
+ kops replace -f ROOT/data/k8soidc/kops-dev.k8s.local/cluster-oidc.yaml --state s3://bucket

# apply the spec to the cloud resources (launch templates with the new nodeup configuration)
+ kops update cluster --name dev.k8s.local --state s3://bucket --yes

# replace the control-plane instances one at a time, so each boots with the new API-server manifest (kops drains and validates the cluster between them)
+ kops rolling-update cluster --name dev.k8s.local --state s3://bucket --instance-group-roles control-plane --yes

# the change:
--- a/kops/dev.k8s.local/cluster.yaml
+++ b/kops/dev.k8s.local/cluster.yaml
@@ -8,4 +8,10 @@
       type: Public
   kubeAPIServer:
     anonymousAuth: false
-  kubernetesVersion: 1.31.4
+    oidcClientID: kubernetes
+    oidcGroupsClaim: groups
+    oidcGroupsPrefix: 'oidc:'
+    oidcIssuerURL: https://idp.example.com
+    oidcUsernameClaim: email
+    oidcUsernamePrefix: 'oidc:'
+  kubernetesVersion: '1.31.4'

# if step 5 or a later one fails, k8soidc then runs:

# put back the spec as it was
+ kops replace -f ROOT/data/k8soidc/kops-dev.k8s.local/cluster-before.yaml --state s3://bucket

# apply it to the cloud resources
+ kops update cluster --name dev.k8s.local --state s3://bucket --yes

# replace the control-plane instances that booted with the new spec
+ kops rolling-update cluster --name dev.k8s.local --state s3://bucket --instance-group-roles control-plane --yes
"
    );
    assert!(
        out.stderr.contains("kops/dev.k8s.local  kops      dry run"),
        "{}",
        out.stderr
    );
    // Only the read ran; the stored spec is as it was.
    assert_eq!(
        calls(&out),
        ["kops get cluster --name dev.k8s.local --state s3://bucket -o yaml"]
    );
    assert_eq!(state(&out, "kops/dev.k8s.local.yaml"), KOPS_SPEC);
}

#[test]
fn kops_run_sets_the_fields_and_the_ca_then_rolls_the_control_plane() {
    let t = kops(&["--yes"])
        .args(SETTINGS)
        .args(["--ca-file", "ca.pem"]);
    let t = t.write("ca.pem", PEM);
    let out = t.run().success();
    let spec = state(&out, "kops/dev.k8s.local.yaml");
    for want in [
        "    oidcIssuerURL: https://idp.example.com\n",
        "    oidcCAFile: /srv/kubernetes/kube-apiserver/oidc-ca.pem\n",
        "    name: oidc-ca\n",
        "    path: /srv/kubernetes/kube-apiserver/oidc-ca.pem\n",
    ] {
        assert!(spec.contains(want), "{want:?} missing:\n{spec}");
    }
    let kops_calls: Vec<String> = calls(&out)
        .into_iter()
        .filter(|c| c.starts_with("kops ") && !c.starts_with("kops get"))
        .map(|c| rooted(&out, &c))
        .collect();
    assert_eq!(
        kops_calls,
        [
            "kops replace -f ROOT/data/k8soidc/kops-dev.k8s.local/cluster-oidc.yaml --state s3://bucket",
            "kops update cluster --name dev.k8s.local --state s3://bucket --yes",
            "kops rolling-update cluster --name dev.k8s.local --state s3://bucket --instance-group-roles control-plane --yes",
        ]
    );
    assert!(
        out.stderr.contains(
            "kops/dev.k8s.local  kops      patched       ROOT"
                .replace("ROOT", &out.root.display().to_string())
                .as_str()
        ),
        "{}",
        out.stderr
    );
    // The spec as it was is kept for the restore.
    assert_eq!(
        out.file("data/k8soidc/kops-dev.k8s.local/cluster-before.yaml"),
        KOPS_SPEC
    );
}

#[test]
fn kops_second_run_changes_nothing_and_remove_takes_the_fields_out() {
    let patched = state_after_patch();
    let again = Test::new()
        .fake("kops")
        .write("fake-state/kops/dev.k8s.local.yaml", &patched)
        .args([
            "patch",
            "--kops",
            "dev.k8s.local",
            "--state",
            "s3://bucket",
            "--skip-check",
            "--yes",
        ])
        .args(SETTINGS)
        .run()
        .success();
    assert!(
        again
            .stderr
            .contains("[kops/dev.k8s.local] already has these OIDC settings; nothing to do"),
        "{}",
        again.stderr
    );
    assert!(
        again
            .stderr
            .contains("kops/dev.k8s.local  kops      unchanged"),
        "{}",
        again.stderr
    );
    assert_eq!(calls(&again).len(), 1, "only the read: {:?}", calls(&again));
    let removed = Test::new()
        .fake("kops")
        .write("fake-state/kops/dev.k8s.local.yaml", &patched)
        .args([
            "patch",
            "--kops",
            "dev.k8s.local",
            "--state",
            "s3://bucket",
            "--skip-check",
            "--yes",
            "--remove",
        ])
        .run()
        .success();
    let spec = state(&removed, "kops/dev.k8s.local.yaml");
    assert!(!spec.contains("oidc"), "{spec}");
    assert!(spec.contains("anonymousAuth: false"), "{spec}");
}

/// The spec after one successful `patch --kops` with [`SETTINGS`].
fn state_after_patch() -> String {
    let out = kops(&["--yes"]).args(SETTINGS).run().success();
    state(&out, "kops/dev.k8s.local.yaml")
}

#[test]
fn kops_failure_at_update_restores_the_previous_spec() {
    let out = kops(&["--yes"])
        .args(SETTINGS)
        .write(
            "fake-state/kops/fail-update",
            "error building tasks: fake failure",
        )
        .run()
        .status(1);
    assert_eq!(state(&out, "kops/dev.k8s.local.yaml"), KOPS_SPEC);
    let tail: Vec<String> = calls(&out)
        .into_iter()
        .filter(|c| c.starts_with("kops ") && !c.starts_with("kops get"))
        .map(|c| rooted(&out, &c))
        .collect();
    assert_eq!(
        tail,
        [
            "kops replace -f ROOT/data/k8soidc/kops-dev.k8s.local/cluster-oidc.yaml --state s3://bucket",
            "kops update cluster --name dev.k8s.local --state s3://bucket --yes",
            "kops replace -f ROOT/data/k8soidc/kops-dev.k8s.local/cluster-before.yaml --state s3://bucket",
            "kops update cluster --name dev.k8s.local --state s3://bucket --yes",
            "kops rolling-update cluster --name dev.k8s.local --state s3://bucket --instance-group-roles control-plane --yes",
        ]
    );
    assert!(
        out.stderr
            .contains("kops/dev.k8s.local  kops      rolled back"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("error: step 5 failed and the previous state was restored"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("error building tasks: fake failure"),
        "{}",
        out.stderr
    );
}

#[test]
fn kops_failure_at_replace_changes_nothing() {
    let out = kops(&["--yes"])
        .args(SETTINGS)
        .write(
            "fake-state/kops/fail-replace",
            "Error: fake replace failure",
        )
        .run()
        .status(1);
    assert_eq!(state(&out, "kops/dev.k8s.local.yaml"), KOPS_SPEC);
    assert!(
        !calls(&out).iter().any(|c| c.starts_with("kops update")),
        "{:?}",
        calls(&out)
    );
    assert!(
        out.stderr.contains(
            "error: step 4 failed before anything in the cluster changed; nothing to restore"
        ),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------- juju

const OVERLAY: &str = "applications:\n  kubernetes-control-plane:\n    options:\n      api-extra-args: \"profiling=false audit-log-maxage=30\"\n";

/// A deployed charmed-kubernetes (two control-plane units) whose `api-extra-args` holds two
/// flags of the user's.
fn juju(extra: &[&str]) -> Test {
    let t = Test::new().fake("juju").write("overlay.yaml", OVERLAY);
    let root = t.path().to_path_buf();
    let status = Command::new(root.join("bin/juju"))
        .args(["deploy", "charmed-kubernetes", "--overlay"])
        .arg(root.join("overlay.yaml"))
        .env("FAKE_LOG", root.join("deploy.log"))
        .env("FAKE_STATE", root.join("fake-state"))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    t.args(["patch", "--juju", "--model", "k8s", "--skip-check"])
        .args(extra)
}

fn juju_option(out: &Output) -> String {
    let v: serde_json::Value = serde_json::from_str(&state(out, "juju/config.json")).unwrap();
    v["kubernetes-control-plane"]["api-extra-args"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn juju_dry_run_shows_the_merged_value_and_the_restore() {
    let out = juju(&["--dry-run"]).args(SETTINGS).run().success();
    assert_eq!(
        out.stdout,
        r#"# set OIDC on Charmed Kubernetes (`kubernetes-control-plane`, model `k8s`)
# note: charmed: --oidc-* flags
# note: username prefix: `oidc:` (`--username-prefix oidc:` was given)
# note: groups prefix: `oidc:`
# note: a token with email="jane@example.com", groups=["k8s-admins"] becomes user "oidc:jane@example.com" in groups "oidc:k8s-admins", "system:authenticated"

# set `kubernetes-control-plane`'s `api-extra-args`: the value read, with k8soidc's flags merged in; the charm restarts kube-apiserver on every unit
+ juju config -m k8s kubernetes-control-plane 'api-extra-args=profiling=false audit-log-maxage=30 oidc-issuer-url=https://idp.example.com oidc-client-id=kubernetes oidc-username-claim=email oidc-username-prefix=oidc: oidc-groups-claim=groups oidc-groups-prefix=oidc:'

# wait until every `kubernetes-control-plane` unit is active/idle again (up to 1800s)
+ juju wait-for application -m k8s kubernetes-control-plane --query 'forEach(units, unit => unit.workload-status == "active" && unit.agent-status == "idle")' --timeout 1800s

# the change:
--- a/juju/kubernetes-control-plane/api-extra-args
+++ b/juju/kubernetes-control-plane/api-extra-args
@@ -1,2 +1,8 @@
 profiling=false
 audit-log-maxage=30
+oidc-issuer-url=https://idp.example.com
+oidc-client-id=kubernetes
+oidc-username-claim=email
+oidc-username-prefix=oidc:
+oidc-groups-claim=groups
+oidc-groups-prefix=oidc:

# if step 1 or a later one fails, k8soidc then runs:

# put back `kubernetes-control-plane`'s `api-extra-args` as it was read
+ juju config -m k8s kubernetes-control-plane 'api-extra-args=profiling=false audit-log-maxage=30'

# wait until every `kubernetes-control-plane` unit is active/idle again
+ juju wait-for application -m k8s kubernetes-control-plane --query 'forEach(units, unit => unit.workload-status == "active" && unit.agent-status == "idle")' --timeout 1800s
"#
    );
    assert_eq!(
        calls(&out),
        ["juju config -m k8s kubernetes-control-plane api-extra-args"]
    );
    assert_eq!(juju_option(&out), "profiling=false audit-log-maxage=30");
}

#[test]
fn juju_run_places_the_ca_on_every_unit_and_keeps_the_users_flags() {
    let out = juju(&["--yes"])
        .args(SETTINGS)
        .args(["--ca-file", "ca.pem"])
        .write("ca.pem", PEM)
        .run()
        .success();
    assert_eq!(
        juju_option(&out),
        "profiling=false audit-log-maxage=30 oidc-issuer-url=https://idp.example.com oidc-client-id=kubernetes oidc-username-claim=email oidc-username-prefix=oidc: oidc-groups-claim=groups oidc-groups-prefix=oidc: oidc-ca-file=/root/cdk/oidc/oidc-ca.pem"
    );
    for unit in ["kubernetes-control-plane-0", "kubernetes-control-plane-1"] {
        assert_eq!(
            state(
                &out,
                &format!("juju/units/{unit}/root/cdk/oidc/oidc-ca.pem")
            ),
            PEM,
            "{unit}"
        );
    }
    let order: Vec<String> = calls(&out)
        .iter()
        .map(|c| c.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        order,
        ["juju config", "juju exec", "juju config", "juju wait-for"],
        "read, files, option, wait"
    );
    assert!(
        out.stderr
            .contains("juju/k8s/kubernetes-control-plane  charmed   patched"),
        "{}",
        out.stderr
    );
}

#[test]
fn juju_remove_takes_out_only_what_was_added() {
    let t = juju(&["--yes"])
        .args(SETTINGS)
        .args(["--ca-file", "ca.pem"])
        .write("ca.pem", PEM);
    let root = t.path().to_path_buf();
    let out = t.run().success();
    // Patch again in the same state directory, now removing.
    let removed = Command::new(env!("CARGO_BIN_EXE_k8soidc"))
        .args(["patch", "--juju", "--model", "k8s", "--yes", "--remove"])
        .current_dir(&root)
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", root.join("bin").display()),
        )
        .env("HOME", &root)
        .env("FAKE_LOG", root.join("fake.log"))
        .env("FAKE_STATE", root.join("fake-state"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    assert_eq!(juju_option(&out), "profiling=false audit-log-maxage=30");
    for unit in ["kubernetes-control-plane-0", "kubernetes-control-plane-1"] {
        assert!(
            !root
                .join(format!(
                    "fake-state/juju/units/{unit}/root/cdk/oidc/oidc-ca.pem"
                ))
                .exists(),
            "{unit}"
        );
    }
}

#[test]
fn juju_failure_while_waiting_puts_the_previous_value_back() {
    let out = juju(&["--yes"])
        .args(SETTINGS)
        .write(
            "fake-state/juju/fail-wait-for",
            "ERROR timed out waiting for \"kubernetes-control-plane\"",
        )
        .run()
        .status(1);
    assert_eq!(juju_option(&out), "profiling=false audit-log-maxage=30");
    assert!(
        out.stderr
            .contains("juju/k8s/kubernetes-control-plane  charmed   rolled back"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("ERROR timed out waiting for"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------- k3d

/// Two server containers and an agent of k3d cluster `dev` (and a server of another cluster).
fn containers(server_args: &str) -> String {
    format!(
        r#"{{"k3d-dev-server-0": {{"labels": {{"k3d.cluster": "dev", "k3d.role": "server"}}, "args": [{server_args}]}},
 "k3d-dev-server-1": {{"labels": {{"k3d.cluster": "dev", "k3d.role": "server"}}, "args": [{server_args}]}},
 "k3d-dev-agent-0": {{"labels": {{"k3d.cluster": "dev", "k3d.role": "agent"}}, "args": ["agent"]}},
 "k3d-other-server-0": {{"labels": {{"k3d.cluster": "other", "k3d.role": "server"}}, "args": ["server"]}}}}"#
    )
}

fn k3d(extra: &[&str]) -> Test {
    Test::new()
        .fake("docker")
        .write(
            "fake-state/docker/containers.json",
            &containers(r#""server", "--tls-san", "0.0.0.0""#),
        )
        .args(["patch", "--k3d", "dev", "--skip-check", "--timeout", "4s"])
        .args(extra)
}

const DROPIN: &str = "# k8soidc: API-server OIDC. `kube-apiserver-arg+` appends to the list of /etc/rancher/k3s/config.yaml and earlier drop-ins.
kube-apiserver-arg+:
  - oidc-issuer-url=https://idp.example.com
  - oidc-client-id=kubernetes
  - oidc-username-claim=email
  - \"oidc-username-prefix=oidc:\"
  - oidc-groups-claim=groups
  - \"oidc-groups-prefix=oidc:\"
";

fn container_file(out: &Output, c: &str, path: &str) -> Option<String> {
    std::fs::read_to_string(out.root.join(format!("fake-state/docker/fs/{c}{path}"))).ok()
}

fn last_apiserver_line(out: &Output, c: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(&state(out, "docker/containers.json")).unwrap();
    v[c]["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.as_str())
        .rfind(|l| l.contains("Running kube-apiserver"))
        .unwrap()
        .to_string()
}

#[test]
fn k3d_dry_run_shows_each_server_in_turn_and_the_restore() {
    let out = k3d(&["--dry-run"]).args(SETTINGS).run().success();
    let first = out
        .stdout
        .split("\n# k3d-dev-server-1: make the drop-in")
        .next()
        .unwrap();
    assert_eq!(
        first,
        format!(
            "# set OIDC on k3d cluster `dev` (2 servers, one at a time)
# note: k3d: --oidc-* flags
# note: username prefix: `oidc:` (`--username-prefix oidc:` was given)
# note: groups prefix: `oidc:`
# note: a token with email=\"jane@example.com\", groups=[\"k8s-admins\"] becomes user \"oidc:jane@example.com\" in groups \"oidc:k8s-admins\", \"system:authenticated\"
# note: the files live in each server container's own filesystem: they survive `docker restart` and `k3d cluster stop/start`, not a re-created node (`k3d node delete/create`, a new k3s image); run this again then

# k3d-dev-server-0: make the drop-in and file directories
+ docker exec k3d-dev-server-0 mkdir -p /etc/rancher/k3s/config.yaml.d /etc/rancher/k3s/oidc

# k3d-dev-server-0: write /etc/rancher/k3s/config.yaml.d/50-oidc.yaml (k3s reads it when it starts)
+ docker exec -i k3d-dev-server-0 tee /etc/rancher/k3s/config.yaml.d/50-oidc.yaml <<'K8SOIDC_EOF'
{DROPIN}K8SOIDC_EOF

# k3d-dev-server-0: restart, so k3s reads its config files again (the container keeps its files)
+ docker restart k3d-dev-server-0

# wait until the API server in k3d-dev-server-0 answers /readyz (a poll every 2s, up to 4s)
+ sh -c 'n=0; until docker exec k3d-dev-server-0 k3s kubectl get --raw /readyz >/dev/null 2>&1; do n=$((n+1)); if [ \"$n\" -ge 2 ]; then echo '\\''the API server in k3d-dev-server-0 did not answer /readyz within 4s'\\'' >&2; exit 1; fi; sleep 2; done'

# check that k3s started the API server in k3d-dev-server-0 with these flags (its `Running kube-apiserver` log line)
+ sh -c 'line=$(docker logs k3d-dev-server-0 2>&1 | grep '\\''Running kube-apiserver'\\'' | tail -n 1); for f in --oidc-issuer-url=https://idp.example.com --oidc-client-id=kubernetes --oidc-username-claim=email --oidc-username-prefix=oidc: --oidc-groups-claim=groups --oidc-groups-prefix=oidc:; do case \"$line \" in *\" $f \"*|*\" $f\\\"\"*) ;; *) echo \"k3d-dev-server-0: kube-apiserver runs without $f: k3s did not apply the drop-in (a k3s without config.yaml.d support, or kube-apiserver args on its command line); recreate the cluster with k8soidc create --distro k3d\" >&2; exit 1;; esac; done'
"
        )
    );
    assert!(out.stdout.contains("\n# if step 2 or a later one fails, k8soidc then runs:\n\n# k3d-dev-server-0: delete the files that were not there\n+ docker exec k3d-dev-server-0 rm -f /etc/rancher/k3s/config.yaml.d/50-oidc.yaml /etc/rancher/k3s/oidc/oidc-ca.pem /etc/rancher/k3s/oidc/authentication-config.yaml\n"), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("\n# if step 7 or a later one fails, k8soidc then runs:\n"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("agent-0") && !out.stdout.contains("other"),
        "{}",
        out.stdout
    );
    assert!(
        calls(&out).iter().all(|c| !c.starts_with("docker restart")),
        "{:?}",
        calls(&out)
    );
}

#[test]
fn k3d_run_writes_the_drop_in_and_ca_in_each_server_and_restarts_them_in_turn() {
    let out = k3d(&["--yes"])
        .args(SETTINGS)
        .args(["--ca-file", "ca.pem"])
        .write("ca.pem", PEM)
        .run()
        .success();
    for c in ["k3d-dev-server-0", "k3d-dev-server-1"] {
        let dropin =
            container_file(&out, c, "/etc/rancher/k3s/config.yaml.d/50-oidc.yaml").unwrap();
        assert_eq!(
            dropin,
            format!("{DROPIN}  - oidc-ca-file=/etc/rancher/k3s/oidc/oidc-ca.pem\n")
        );
        assert_eq!(
            container_file(&out, c, "/etc/rancher/k3s/oidc/oidc-ca.pem").unwrap(),
            PEM
        );
        assert!(
            last_apiserver_line(&out, c).contains(" --oidc-issuer-url=https://idp.example.com "),
            "{c}"
        );
    }
    let restarts: Vec<String> = calls(&out)
        .into_iter()
        .filter(|c| c.starts_with("docker restart"))
        .collect();
    assert_eq!(
        restarts,
        [
            "docker restart k3d-dev-server-0",
            "docker restart k3d-dev-server-1"
        ]
    );
    assert!(container_file(
        &out,
        "k3d-dev-agent-0",
        "/etc/rancher/k3s/config.yaml.d/50-oidc.yaml"
    )
    .is_none());
    assert!(
        out.stderr.contains("k3d/dev  k3d       patched"),
        "{}",
        out.stderr
    );
}

#[test]
fn k3d_unhealthy_server_is_restored_and_the_next_one_untouched() {
    let out = k3d(&["--yes"])
        .args(SETTINGS)
        .write("fake-state/docker/fail-start", "")
        .run()
        .status(1);
    for c in ["k3d-dev-server-0", "k3d-dev-server-1"] {
        assert!(
            container_file(&out, c, "/etc/rancher/k3s/config.yaml.d/50-oidc.yaml").is_none(),
            "{c}"
        );
    }
    assert!(!last_apiserver_line(&out, "k3d-dev-server-0").contains("--oidc-"));
    let restarts: Vec<String> = calls(&out)
        .into_iter()
        .filter(|c| c.starts_with("docker restart"))
        .collect();
    assert_eq!(
        restarts,
        [
            "docker restart k3d-dev-server-0",
            "docker restart k3d-dev-server-0"
        ]
    );
    assert!(
        out.stderr.contains("did not answer /readyz within 4s"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("k3d/dev  k3d       rolled back"),
        "{}",
        out.stderr
    );
}

#[test]
fn k3d_remove_deletes_the_drop_in_and_the_files() {
    let t = k3d(&["--yes"])
        .args(SETTINGS)
        .args(["--ca-file", "ca.pem"])
        .write("ca.pem", PEM);
    let root = t.path().to_path_buf();
    let out = t.run().success();
    let removed = Command::new(env!("CARGO_BIN_EXE_k8soidc"))
        .args([
            "patch",
            "--k3d",
            "dev",
            "--yes",
            "--remove",
            "--timeout",
            "4s",
        ])
        .current_dir(&root)
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", root.join("bin").display()),
        )
        .env("HOME", &root)
        .env("FAKE_LOG", root.join("fake.log"))
        .env("FAKE_STATE", root.join("fake-state"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    for c in ["k3d-dev-server-0", "k3d-dev-server-1"] {
        assert!(
            container_file(&out, c, "/etc/rancher/k3s/config.yaml.d/50-oidc.yaml").is_none(),
            "{c}"
        );
        assert!(
            container_file(&out, c, "/etc/rancher/k3s/oidc/oidc-ca.pem").is_none(),
            "{c}"
        );
        assert!(!last_apiserver_line(&out, c).contains("--oidc-"), "{c}");
    }
}

#[test]
fn k3d_cluster_with_apiserver_args_on_the_command_line_is_refused_with_the_recreate_command() {
    let out = Test::new()
        .fake("docker")
        .write(
            "fake-state/docker/containers.json",
            &containers(
                r#""server", "--kube-apiserver-arg=oidc-issuer-url=https://old.example.com""#,
            ),
        )
        .args(["patch", "--k3d", "dev", "--skip-check", "--yes"])
        .args(SETTINGS)
        .run()
        .status(2);
    assert_eq!(
        out.stderr,
        "error: cannot patch k3d cluster `dev`: its server `k3d-dev-server-0` runs k3s with `--kube-apiserver-arg=oidc-issuer-url=https://old.example.com` on the command line (a `--k3s-arg` at creation); k3s lets command-line list values replace those of its config files, so a drop-in cannot change the API server's flags; recreate it with OIDC: `k3d cluster delete dev`, then `k8soidc create --distro k3d --name dev` with these settings, which stages the files and runs `k3d cluster create dev --k3s-arg '--kube-apiserver-arg=oidc-issuer-url=https://idp.example.com@server:*' --k3s-arg '--kube-apiserver-arg=oidc-client-id=kubernetes@server:*' --k3s-arg '--kube-apiserver-arg=oidc-username-claim=email@server:*' --k3s-arg '--kube-apiserver-arg=oidc-username-prefix=oidc:@server:*' --k3s-arg '--kube-apiserver-arg=oidc-groups-claim=groups@server:*' --k3s-arg '--kube-apiserver-arg=oidc-groups-prefix=oidc:@server:*'` (add your other `k3d cluster create` flags after `--`)\n"
    );
    assert!(calls(&out)
        .iter()
        .all(|c| !c.contains("restart") && !c.contains("tee")));
}

// ---------------------------------------------------------------- inventory prompt

/// Issue 14 point E: answering "no" to `patch --inventory` exits 0 with "nothing done" (it
/// exited 1 with "not confirmed: nothing changed"), and no host is contacted. `script`
/// (util-linux) gives the run a terminal; the hosts are loopback addresses nothing listens on.
#[test]
fn declining_the_inventory_prompt_exits_0_with_nothing_done() {
    let t = Test::new().write(
        "inventory.yaml",
        "defaults:\n  issuer-url: https://idp.example.com\n  client-id: kubernetes\n  username-claim: email\n  username-prefix: \"oidc:\"\nclusters:\n  - name: a\n    distro: kubeadm\n    hosts:\n      - root@127.0.0.180:1\n",
    );
    let root = t.path().to_path_buf();
    let command = format!(
        "{} patch --inventory inventory.yaml --skip-check",
        env!("CARGO_BIN_EXE_k8soidc")
    );
    let mut child = Command::new("timeout")
        .args(["60", "script", "-qec", &command, "/dev/null"])
        .current_dir(&root)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", &root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Patch 1 hosts in 1 clusters"), "{text}");
    assert!(
        text.trim_end().ends_with("not confirmed: nothing done"),
        "{text}"
    );
    drop(t);
}

// ---------------------------------------------------------------- output formats

/// Every key of a JSON value, recursively.
fn keys(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                out.push(k.clone());
                keys(v, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

/// Issue 14 point 7: `-o` takes text, yaml and json on every command that prints data (rbac
/// took only yaml|json, `patch --inventory` table|json), `--help` says so, and JSON/YAML field
/// names are camelCase (render printed `username_prefix`).
#[test]
fn output_formats_are_the_same_everywhere_and_camel_case() {
    for command in ["render", "rbac", "check", "explain", "patch"] {
        let help = Test::new().args([command, "--help"]).run().success();
        let flat = help.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(flat.contains("-o, --output <FORMAT>"), "{command}: {flat}");
        assert!(
            flat.contains("[possible values: text, yaml, json]"),
            "{command}: {flat}"
        );
        assert!(
            flat.contains("text") && flat.contains("yaml or json"),
            "{command}: {flat}"
        );
    }
    let json = Test::new()
        .args(["render", "--distro", "k3s", "-o", "json"])
        .args(SETTINGS)
        .run()
        .success();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let mut all = Vec::new();
    keys(&v, &mut all);
    assert!(all.contains(&"usernamePrefixReason".to_string()), "{all:?}");
    assert!(all.iter().all(|k| !k.contains('_')), "{all:?}");
    let yaml = Test::new()
        .args(["render", "--distro", "k3s", "-o", "yaml"])
        .args(SETTINGS)
        .run()
        .success();
    let y: serde_json::Value = serde_yaml_ng::from_str(&yaml.stdout).unwrap();
    assert_eq!(y, v, "yaml and json carry the same data");
    let rbac = |format: &str| {
        Test::new()
            .args(["rbac", "--group", "k8s-admins", "-o", format])
            .args(SETTINGS)
            .run()
            .success()
            .stdout
            .clone()
    };
    assert_eq!(
        rbac("text"),
        rbac("yaml"),
        "rbac's text form is the object's YAML"
    );
    let j: serde_json::Value = serde_json::from_str(&rbac("json")).unwrap();
    assert_eq!(j["roleRef"]["kind"], "ClusterRole", "{j}");
}

/// The options of `--kops` and `--juju` are refused without them (exit 2, nothing run), and
/// the three ways do not mix with `--ssh`.
#[test]
fn kops_and_juju_options_need_their_mode() {
    for (args, want) in [
        (
            vec!["patch", "--ssh", "cp1", "--state", "s3://b"],
            "error: invalid `--state`: it only applies with --kops CLUSTER; remove it or give --kops CLUSTER\n",
        ),
        (
            vec!["patch", "--ssh", "cp1", "--model", "k8s"],
            "error: invalid `--model`: it only applies with --juju; remove it or give --juju\n",
        ),
    ] {
        let out = Test::new().fake("kops").fake("juju").args(&args).args(SETTINGS).run().status(2);
        assert_eq!(out.stderr, want, "{args:?}");
        assert!(out.calls().is_empty(), "{args:?}");
    }
    let out = Test::new()
        .args(["patch", "--kops", "a.k8s.local", "--ssh", "cp1"])
        .args(SETTINGS)
        .run()
        .status(2);
    assert!(out.stderr.contains("cannot be used with"), "{}", out.stderr);
}

/// Issue 14 point 7: `backups` prints data too, so it takes `-o text|yaml|json` like the
/// other commands (it had no `-o`); the YAML/JSON list is camelCase, one entry per host.
/// Node 184.
#[test]
fn backups_take_the_same_output_formats() {
    let node = crate::node::Node::on(184).kubeadm().start();
    node.k8soidc("patch")
        .args(SETTINGS)
        .args(["--skip-check", "--yes", "--timeout", "20s"])
        .run()
        .success();
    let id = node.sh("ls /var/lib/k8soidc/backups").trim().to_string();
    let json = node.k8soidc("backups").args(["-o", "json"]).run().success();
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{
            "host": format!("root@{}:{}", node.addr, node.port),
            "directory": "/var/lib/k8soidc/backups",
            "backups": [{"id": id, "complete": true, "files": ["/etc/kubernetes/manifests/kube-apiserver.yaml"]}],
        }])
    );
    let yaml = node.k8soidc("backups").args(["-o", "yaml"]).run().success();
    let y: serde_json::Value = serde_yaml_ng::from_str(&yaml.stdout).unwrap();
    assert_eq!(y, v);
    let text = node.k8soidc("backups").run().success();
    assert!(
        text.stdout.contains(&format!(
            "{id}  /etc/kubernetes/manifests/kube-apiserver.yaml\n"
        )),
        "{}",
        text.stdout
    );
}

//! `create` through each distribution's tool, against fakes that check argv like the real tool.

use crate::test::Test;

const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAK\n-----END CERTIFICATE-----\n";

/// The OIDC flags; `--skip-check` because idp.example.com must never be contacted.
fn oidc() -> Vec<&'static str> {
    [&["--skip-check"][..], &crate::test::SETTINGS].concat()
}

#[test]
fn k3d_create_exact_argv() {
    let out = Test::new()
        .fake("k3d")
        .args(["create", "--distro", "k3d", "--name", "oidc-test", "--yes"])
        .args(oidc())
        .args(["--", "--servers", "3"])
        .run()
        .success();
    let calls = out.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let expected: Vec<String> = [
        "k3d",
        "cluster",
        "create",
        "oidc-test",
        "--k3s-arg",
        "--kube-apiserver-arg=oidc-issuer-url=https://idp.example.com@server:*",
        "--k3s-arg",
        "--kube-apiserver-arg=oidc-client-id=kubernetes@server:*",
        "--k3s-arg",
        "--kube-apiserver-arg=oidc-username-claim=email@server:*",
        "--k3s-arg",
        "--kube-apiserver-arg=oidc-username-prefix=oidc:@server:*",
        "--k3s-arg",
        "--kube-apiserver-arg=oidc-groups-claim=groups@server:*",
        "--k3s-arg",
        "--kube-apiserver-arg=oidc-groups-prefix=oidc:@server:*",
        "--servers",
        "3",
    ]
    .map(String::from)
    .to_vec();
    assert_eq!(calls[0], expected);
    assert!(
        out.stderr.contains("created k3d cluster `oidc-test`"),
        "{}",
        out.stderr
    );
}

#[test]
fn k3d_create_with_ca_stages_and_mounts_it() {
    let out = Test::new()
        .fake("k3d")
        .write("idp-ca.pem", PEM)
        .args([
            "create",
            "--distro",
            "k3d",
            "--name",
            "c1",
            "--yes",
            "--ca-file",
            "idp-ca.pem",
        ])
        .args(oidc())
        .run()
        .success();
    assert_eq!(out.file("data/k8soidc/k3d-c1/oidc-ca.pem"), PEM);
    let call = &out.calls()[0];
    let staged = out.root.join("data/k8soidc/k3d-c1").canonicalize().unwrap();
    assert!(
        call.contains(&format!(
            "{}:/etc/rancher/k3s/oidc@server:*",
            staged.display()
        )),
        "{call:?}"
    );
    assert!(
        call.contains(
            &"--kube-apiserver-arg=oidc-ca-file=/etc/rancher/k3s/oidc/oidc-ca.pem@server:*"
                .to_string()
        ),
        "{call:?}"
    );
}

#[test]
fn k3d_escapes_at_in_required_claim() {
    let out = Test::new()
        .fake("k3d")
        .args([
            "create",
            "--distro",
            "k3d",
            "--yes",
            "--required-claim",
            "email=ops@example.com",
        ])
        .args(oidc())
        .run()
        .success();
    assert!(out.calls()[0].contains(
        &r"--kube-apiserver-arg=oidc-required-claim=email=ops\@example.com@server:*".to_string()
    ));
}

#[test]
fn k3d_config_mode_mounts_the_directory() {
    let out = Test::new()
        .fake("k3d")
        .args([
            "create",
            "--distro",
            "k3d",
            "--yes",
            "--auth-mode",
            "config",
            "--kubernetes-version",
            "1.34",
        ])
        .args(oidc())
        .run()
        .success();
    let cfg = out.file("data/k8soidc/k3d-oidc/authentication-config.yaml");
    assert!(
        cfg.starts_with(
            "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\n"
        ),
        "{cfg}"
    );
    let call = out.calls()[0].join(" ");
    assert!(call.contains("--kube-apiserver-arg=authentication-config=/etc/rancher/k3s/oidc/authentication-config.yaml@server:*"), "{call}");
    assert!(!call.contains("oidc-issuer-url"), "never both: {call}");
}

#[test]
fn dry_run_runs_nothing_and_prints_pasteable_commands() {
    let out = Test::new()
        .fake("k3d")
        .write("idp-ca.pem", PEM)
        .args([
            "create",
            "--distro",
            "k3d",
            "--dry-run",
            "--ca-file",
            "idp-ca.pem",
        ])
        .args(oidc())
        .run()
        .success();
    assert!(out.calls().is_empty(), "dry run called {:?}", out.calls());
    assert!(!out.root.join("data").exists(), "dry run wrote files");
    assert!(
        out.stdout.contains("+ k3d cluster create oidc --volume "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("-----BEGIN CERTIFICATE-----"),
        "file content shown: {}",
        out.stdout
    );
    // The printed command, run by a shell, gives the fake exactly the argv a real run gives.
    let line = out
        .stdout
        .lines()
        .find(|l| l.starts_with("+ k3d "))
        .unwrap()
        .trim_start_matches("+ ")
        .to_string();
    let real = Test::new()
        .fake("k3d")
        .write("idp-ca.pem", PEM)
        .args([
            "create",
            "--distro",
            "k3d",
            "--yes",
            "--ca-file",
            "idp-ca.pem",
        ])
        .args(oidc())
        .run()
        .success();
    let real_call = real.calls()[0].clone();
    let staged = real
        .root
        .join("data/k8soidc/k3d-oidc")
        .canonicalize()
        .unwrap()
        .display()
        .to_string();
    let dry_staged = out.root.join("data/k8soidc/k3d-oidc").display().to_string();
    let line = line.replace(&dry_staged, &staged);
    let log = out.root.join("shell.log");
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(&line)
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", out.root.join("bin").display()),
        )
        .env("FAKE_LOG", &log)
        .status()
        .unwrap();
    assert!(status.success());
    let logged = std::fs::read_to_string(&log).unwrap();
    let pasted: Vec<String> = logged
        .trim_end_matches('\u{1e}')
        .trim_end_matches('\u{1f}')
        .split('\u{1f}')
        .map(String::from)
        .collect();
    assert_eq!(pasted, real_call);
}

#[test]
fn missing_tool_says_how_to_install() {
    let out = Test::new()
        .args(["create", "--distro", "k3d", "--yes"])
        .args(oidc())
        .run()
        .status(1);
    assert!(
        out.stderr
            .contains("`k3d` is not installed or not on PATH; install k3d v5"),
        "{}",
        out.stderr
    );
}

#[test]
fn settings_from_env_and_file_with_flags_winning() {
    let out = Test::new()
        .fake("k3d")
        .write("k8soidc.yaml", "issuer-url: https://file.example.com\nclient-id: from-file\ngroups-claim: groups\nrequired-claim:\n  - hd=example.com\n")
        .env("K8SOIDC_CLIENT_ID", "from-env")
        .args([
            "create",
            "--distro",
            "k3d",
            "--dry-run",
            "--skip-check",
            "--groups-claim",
            "roles",
            "--groups-prefix",
            "oidc:",
        ])
        .run()
        .success();
    assert!(
        out.stdout
            .contains("oidc-issuer-url=https://file.example.com@"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("oidc-client-id=from-env@"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("oidc-groups-claim=roles@"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("oidc-required-claim=hd=example.com@"),
        "{}",
        out.stdout
    );
}

#[test]
fn kind_create_exact_argv_and_config() {
    let out = Test::new()
        .fake("kind")
        .write("idp-ca.pem", PEM)
        .args([
            "create",
            "--distro",
            "kind",
            "--name",
            "dev",
            "--yes",
            "--ca-file",
            "idp-ca.pem",
        ])
        .args(oidc())
        .args(["--", "--image", "kindest/node:v1.31.4"])
        .run()
        .success();
    let staged = out
        .root
        .join("data/k8soidc/kind-dev")
        .canonicalize()
        .unwrap()
        .display()
        .to_string();
    let calls = out.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    let config_path = format!("{staged}/kind-config.yaml");
    assert_eq!(
        calls[0],
        [
            "kind",
            "create",
            "cluster",
            "--name",
            "dev",
            "--config",
            config_path.as_str(),
            "--image",
            "kindest/node:v1.31.4"
        ]
        .map(String::from)
        .to_vec()
    );
    assert_eq!(out.file("data/k8soidc/kind-dev/oidc-ca.pem"), PEM);
    let config: serde_json::Value =
        serde_yaml_ng::from_str(&out.file("data/k8soidc/kind-dev/kind-config.yaml")).unwrap();
    let node = &config["nodes"][0];
    assert_eq!(
        node["extraMounts"][0]["containerPath"],
        "/etc/kubernetes/oidc"
    );
    let patch: serde_json::Value =
        serde_yaml_ng::from_str(node["kubeadmConfigPatches"][0].as_str().unwrap()).unwrap();
    let args = &patch["apiServer"]["extraArgs"];
    assert_eq!(args["oidc-issuer-url"], "https://idp.example.com");
    assert_eq!(args["oidc-username-prefix"], "oidc:");
    assert_eq!(args["oidc-groups-prefix"], "oidc:");
    assert_eq!(args["oidc-ca-file"], "/etc/kubernetes/oidc/oidc-ca.pem");
}

#[test]
fn kind_refuses_two_required_claims_before_running() {
    let out = Test::new()
        .fake("kind")
        .args([
            "create",
            "--distro",
            "kind",
            "--yes",
            "--required-claim",
            "a=1",
            "--required-claim",
            "b=2",
        ])
        .args(oidc())
        .run()
        .status(2);
    assert!(
        out.stderr
            .starts_with("error: kind cannot carry --required-claim"),
        "{}",
        out.stderr
    );
    assert!(out.calls().is_empty());
}

#[test]
fn dry_run_reports_a_failed_preflight_but_still_prints_the_plan() {
    // A closed loopback port: the preflight fails fast and nothing leaves the machine.
    let out = Test::new()
        .fake("k3d")
        .args([
            "create",
            "--distro",
            "k3d",
            "--dry-run",
            "--issuer-url",
            "https://127.0.0.1:9/",
            "--client-id",
            "k",
            "--username-prefix",
            "-",
        ])
        .run()
        .success();
    assert!(
        out.stdout.contains("+ k3d cluster create oidc "),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("FAIL  discovery"), "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "warning: the preflight check failed (see above): a real run would stop here"
        ),
        "{}",
        out.stderr
    );
    let real = Test::new()
        .fake("k3d")
        .args([
            "create",
            "--distro",
            "k3d",
            "--yes",
            "--issuer-url",
            "https://127.0.0.1:9/",
            "--client-id",
            "k",
            "--username-prefix",
            "-",
        ])
        .run()
        .status(1);
    assert!(real.calls().is_empty(), "{:?}", real.calls());
}

fn read_state(out: &crate::test::Output, rel: &str) -> serde_json::Value {
    serde_yaml_ng::from_str(&out.file(&format!("fake-state/{rel}"))).unwrap()
}

#[test]
fn kops_create_merges_oidc_into_the_spec() {
    let out = Test::new()
        .fake("kops")
        .write("idp-ca.pem", PEM)
        .args([
            "create",
            "--distro",
            "kops",
            "--name",
            "oidc.k8s.local",
            "--yes",
            "--ca-file",
            "idp-ca.pem",
            "--required-claim",
            "hd=example.com",
        ])
        .args(oidc())
        .args(["--", "--zones", "eu-west-1a", "--state", "s3://bucket"])
        .run()
        .success();
    let calls = out.calls();
    let verbs: Vec<String> = calls.iter().map(|c| c[1..3].join(" ")).collect();
    assert_eq!(
        verbs,
        [
            "create cluster",
            "get cluster",
            "replace -f",
            "update cluster",
            "rolling-update cluster"
        ],
        "{calls:?}"
    );
    assert_eq!(
        calls[0],
        [
            "kops",
            "create",
            "cluster",
            "--name",
            "oidc.k8s.local",
            "--zones",
            "eu-west-1a",
            "--state",
            "s3://bucket"
        ]
        .map(String::from)
        .to_vec()
    );
    let spec = read_state(&out, "kops/oidc.k8s.local.yaml");
    let api = &spec["spec"]["kubeAPIServer"];
    assert_eq!(api["oidcIssuerURL"], "https://idp.example.com");
    assert_eq!(api["oidcClientID"], "kubernetes");
    assert_eq!(api["oidcUsernamePrefix"], "oidc:");
    assert_eq!(api["oidcGroupsPrefix"], "oidc:");
    assert_eq!(
        api["oidcRequiredClaim"],
        serde_json::json!(["hd=example.com"])
    );
    assert_eq!(api["anonymousAuth"], false, "other fields kept");
    let ca_path = api["oidcCAFile"].as_str().unwrap();
    assert!(
        ca_path.starts_with("/srv/kubernetes/kube-apiserver/"),
        "{ca_path}"
    );
    let asset = spec["spec"]["fileAssets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["path"] == ca_path)
        .expect("CA shipped as a fileAsset");
    assert_eq!(asset["content"], PEM);
}

/// The kops steps of `create --distro kops` (issue 11 point 3).
fn kops_create(extra: &str) -> Test {
    Test::new()
        .fake("kops")
        .write("idp-ca.pem", PEM)
        .args([
            "create",
            "--distro",
            "kops",
            "--name",
            "oidc.k8s.local",
            extra,
            "--ca-file",
            "idp-ca.pem",
        ])
        .args(oidc())
        .args(["--", "--zones", "eu-west-1a", "--state", "s3://bucket"])
}

/// Issue 11 point 3: the kops dry run is commands a person can paste (no pseudo-code), and
/// pasted into a shell with `k8soidc` on PATH they make the same calls and leave the same spec
/// in the state store as a real run.
#[test]
fn kops_dry_run_is_the_commands_that_run() {
    let dry = kops_create("--dry-run").run().success();
    assert!(dry.calls().is_empty(), "dry run called {:?}", dry.calls());
    assert!(!dry.root.join("data").exists(), "dry run wrote files");
    let root = dry.root.display().to_string();
    assert_eq!(
        dry.stdout.replace(&root, "ROOT"),
        "# create kops cluster `oidc.k8s.local` with OIDC
# note: kops: --oidc-* flags
# note: username prefix: `oidc:` (`--username-prefix oidc:` was given)
# note: groups prefix: `oidc:`
# note: a token with email=\"jane@example.com\", groups=[\"k8s-admins\"] becomes user \"oidc:jane@example.com\" in groups \"oidc:k8s-admins\", \"system:authenticated\"
# note: warning: `spec.fileAssets` role `ControlPlane` needs kops 1.26 or later (older kops calls it `Master`)

# write the spec of kops cluster `oidc.k8s.local` to the state store (kops creates no cloud resources without `--yes`)
+ kops create cluster --name oidc.k8s.local --zones eu-west-1a --state s3://bucket

# save the cluster spec as kops stores it (a file, not a pipe: POSIX sh has no pipefail, and the file is kept for inspection)
+ sh -c 'mkdir -p ROOT/data/k8soidc/kops-oidc.k8s.local && kops get cluster --name oidc.k8s.local --state s3://bucket -o yaml > ROOT/data/k8soidc/kops-oidc.k8s.local/cluster.yaml'

# copy it for the OIDC change
+ cp ROOT/data/k8soidc/kops-oidc.k8s.local/cluster.yaml ROOT/data/k8soidc/kops-oidc.k8s.local/cluster-oidc.yaml

# add the API server's OIDC settings (and the files it reads) to the copy, with k8soidc's kops patcher
+ k8soidc patch --file ROOT/data/k8soidc/kops-oidc.k8s.local/cluster-oidc.yaml --file-kind kops-cluster --in-place --config /dev/null --issuer-url https://idp.example.com --client-id kubernetes --username-claim email --username-prefix oidc: --groups-claim groups --groups-prefix oidc: --ca-file ROOT/idp-ca.pem

# store the changed spec
+ kops replace -f ROOT/data/k8soidc/kops-oidc.k8s.local/cluster-oidc.yaml --state s3://bucket

# create or update the cloud resources from the spec
+ kops update cluster --name oidc.k8s.local --state s3://bucket --yes

# replace control-plane instances that booted before the OIDC settings (nodeup writes the API-server manifest at boot; nothing to do for instances the update just created)
+ kops rolling-update cluster --name oidc.k8s.local --state s3://bucket --yes
"
    );
    // Paste every displayed command into bash, as a person would.
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_k8soidc"), dry.root.join("bin/k8soidc"))
        .unwrap();
    for line in dry.stdout.lines().filter_map(|l| l.strip_prefix("+ ")) {
        let status = std::process::Command::new("bash")
            .arg("-c")
            .arg(line)
            .current_dir(&dry.root)
            .env_clear()
            .env("PATH", format!("{root}/bin:/usr/bin:/bin"))
            .env("HOME", &root)
            .env("FAKE_LOG", dry.root.join("fake.log"))
            .env("FAKE_STATE", dry.root.join("fake-state"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "{line}");
    }
    let real = kops_create("--yes").run().success();
    let real_root = real.root.display().to_string();
    let calls = |out: &crate::test::Output, root: &str| -> Vec<String> {
        out.calls()
            .iter()
            .map(|c| c.join(" ").replace(root, "ROOT"))
            .collect()
    };
    assert_eq!(calls(&dry, &root), calls(&real, &real_root));
    assert_eq!(
        dry.file("fake-state/kops/oidc.k8s.local.yaml"),
        real.file("fake-state/kops/oidc.k8s.local.yaml")
    );
}

#[test]
fn kops_without_state_fails_like_kops() {
    let out = Test::new()
        .fake("kops")
        .args([
            "create",
            "--distro",
            "kops",
            "--name",
            "oidc.k8s.local",
            "--yes",
        ])
        .args(oidc())
        .args(["--", "--zones", "eu-west-1a"])
        .run()
        .status(1);
    assert!(
        out.stderr
            .contains("Please set the --state flag or export KOPS_STATE_STORE"),
        "{}",
        out.stderr
    );
    assert_eq!(
        out.calls().len(),
        1,
        "stopped at the first failure: {:?}",
        out.calls()
    );
}

#[test]
fn charmed_create_deploys_with_overlay_then_merges_args() {
    let out = Test::new()
        .fake("juju")
        .write("idp-ca.pem", PEM)
        .args([
            "create",
            "--distro",
            "charmed",
            "--name",
            "ck8s",
            "--yes",
            "--ca-file",
            "idp-ca.pem",
        ])
        .args(oidc())
        .run()
        .success();
    let calls = out.calls();
    assert_eq!(
        calls[0][..3],
        ["juju", "deploy", "charmed-kubernetes"].map(String::from)
    );
    assert!(
        calls.iter().any(|c| c[1] == "exec"),
        "CA placed on every unit: {calls:?}"
    );
    let state: serde_json::Value =
        serde_json::from_str(&out.file("fake-state/juju/config.json")).unwrap();
    let args = state["kubernetes-control-plane"]["api-extra-args"]
        .as_str()
        .unwrap();
    for pair in [
        "oidc-issuer-url=https://idp.example.com",
        "oidc-client-id=kubernetes",
        "oidc-username-prefix=oidc:",
        "oidc-groups-prefix=oidc:",
        "oidc-ca-file=/root/cdk/oidc/oidc-ca.pem",
    ] {
        assert_eq!(
            args.split(' ').filter(|p| *p == pair).count(),
            1,
            "{pair} once in {args}"
        );
    }
}

#[test]
fn charmed_refuses_spaces_before_running() {
    let out = Test::new()
        .fake("juju")
        .args([
            "create",
            "--distro",
            "charmed",
            "--yes",
            "--skip-check",
            "--issuer-url",
            "https://idp.example.com",
            "--client-id",
            "k",
        ])
        .args(["--groups-claim", "my groups", "--groups-prefix", "oidc:"])
        .run()
        .status(2);
    assert!(
        out.stderr
            .contains("charmed cannot carry --groups-claim `my groups`"),
        "{}",
        out.stderr
    );
    assert!(out.calls().is_empty());
}

/// The fake k3d refuses what k3d v5 refuses, so the exact-argv tests above mean something.
#[test]
fn fake_k3d_rejects_what_k3d_v5_rejects() {
    let t = Test::new().fake("k3d");
    let bin = t.path().join("bin/k3d");
    let run = |args: &[&str]| {
        std::process::Command::new(&bin)
            .args(args)
            .env("FAKE_LOG", t.path().join("self.log"))
            .output()
            .unwrap()
    };
    for (args, message) in [
        (
            vec![
                "cluster",
                "create",
                "x",
                "--k3s-server-arg",
                "--kube-apiserver-arg=oidc-client-id=k",
            ],
            "unknown flag: --k3s-server-arg",
        ),
        (
            vec![
                "cluster",
                "create",
                "x",
                "--k3s-arg",
                "--kube-apiserver-arg=oidc-client-id=k",
            ],
            "lacks a node filter",
        ),
        (
            vec![
                "cluster",
                "create",
                "x",
                "--k3s-arg",
                "--kube-apiserver-arg=oidc-required-claim=e=a@b@server:*",
            ],
            "only one unescaped '@'",
        ),
        (
            vec![
                "cluster",
                "create",
                "x",
                "--volume",
                "rel/dir:/etc/x@server:*",
            ],
            "source must be an absolute path",
        ),
    ] {
        let out = run(&args);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(message),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(run(&[
        "cluster",
        "create",
        "x",
        "--k3s-arg",
        r"--kube-apiserver-arg=oidc-required-claim=e=a\@b@server:*"
    ])
    .status
    .success());
}

fn k0s_create(extra: &str) -> Test {
    Test::new()
        .fake("k0sctl")
        .args(["create", "--distro", "k0s", "--name", "lab", extra])
        .args(oidc())
        .args(["--", "root@10.0.0.1", "root@10.0.0.2"])
}

/// Issue 15 (k0s): `create --distro k0s` is `k0sctl init`, k8soidc's own k0sctl patcher, then
/// `k0sctl apply`; the dry run shows exactly those commands, and the applied k0sctl file carries
/// the flags in spec.k0s.config.spec.api.extraArgs.
#[test]
fn k0s_create_through_k0sctl() {
    let dry = k0s_create("--dry-run").run().success();
    assert!(dry.calls().is_empty(), "dry run called {:?}", dry.calls());
    let root = dry.root.display().to_string();
    assert_eq!(
        dry.stdout.replace(&root, "ROOT"),
        "# create k0s cluster `lab` with OIDC (k0sctl)
# note: k0s: --oidc-* flags
# note: username prefix: `oidc:` (`--username-prefix oidc:` was given)
# note: groups prefix: `oidc:`
# note: a token with email=\"jane@example.com\", groups=[\"k8s-admins\"] becomes user \"oidc:jane@example.com\" in groups \"oidc:k8s-admins\", \"system:authenticated\"
# note: warning: do this on every controller, one at a time (`k8soidc patch --ssh` does)

# write a k0sctl cluster file for the hosts, with k0s' default config (a file, kept for later `k0sctl apply` runs)
+ sh -c 'mkdir -p ROOT/data/k8soidc/k0s-lab && k0sctl init --k0s root@10.0.0.1 root@10.0.0.2 > ROOT/data/k8soidc/k0s-lab/k0sctl.yaml'

# add the API server's OIDC flags to spec.k0s.config.spec.api.extraArgs, with k8soidc's k0sctl patcher
+ k8soidc patch --file ROOT/data/k8soidc/k0s-lab/k0sctl.yaml --file-kind k0sctl --in-place --config /dev/null --issuer-url https://idp.example.com --client-id kubernetes --username-claim email --username-prefix oidc: --groups-claim groups --groups-prefix oidc:

# install k0s on the hosts and start the cluster
+ k0sctl apply --config ROOT/data/k8soidc/k0s-lab/k0sctl.yaml
"
    );
    let real = k0s_create("--yes").run().success();
    let calls = real.calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0][..4], ["k0sctl", "init", "--k0s", "root@10.0.0.1"]);
    assert_eq!(calls[1][..3], ["k0sctl", "apply", "--config"]);
    let applied = read_state(&real, "k0sctl/applied.yaml");
    let api = &applied["spec"]["k0s"]["config"]["spec"]["api"];
    assert_eq!(
        api["extraArgs"]["oidc-issuer-url"],
        "https://idp.example.com"
    );
    assert_eq!(api["extraArgs"]["oidc-username-prefix"], "oidc:");
    assert_eq!(api["extraArgs"]["oidc-groups-prefix"], "oidc:");
    assert_eq!(api["port"], 6443, "k0sctl's defaults kept");
    assert_eq!(applied["spec"]["hosts"][1]["role"], "worker");
}

/// Issue 15 (k0s): `create` without hosts after `--` is bad input (exit 2, nothing run).
#[test]
fn k0s_create_needs_hosts() {
    let out = Test::new()
        .fake("k0sctl")
        .args(["create", "--distro", "k0s", "--yes"])
        .args(oidc())
        .run()
        .status(2);
    assert_eq!(
        out.stderr,
        "error: invalid -- `(nothing)`: k0sctl init needs the hosts of the new cluster; give them after `--`, e.g. `-- --controller-count 1 root@10.0.0.1 root@10.0.0.2` (k0sctl init's own arguments)\n"
    );
    assert!(out.calls().is_empty());
}

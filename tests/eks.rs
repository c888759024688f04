//! Amazon EKS: render, create through eksctl, patch through the AWS CLI (associate, wait until
//! ACTIVE, replace, --remove, the wait's bound), `patch --file` on an eksctl ClusterConfig,
//! and EKS' own rules refused before any program runs. `tests/fakes/aws` keeps the cluster's
//! identity provider configs in `fake-state/aws/CLUSTER.json` and moves CREATING -> ACTIVE.

use crate::test::{Test, SETTINGS};

const NO_CONFIG: &str = r#"{"region": "eu-west-1", "configs": {}}"#;

fn state(issuer: &str, status: &str) -> String {
    format!(
        r#"{{"region": "eu-west-1", "configs": {{"k8soidc": {{"identityProviderConfigName": "k8soidc", "issuerUrl": "{issuer}", "clientId": "kubernetes", "usernameClaim": "email", "usernamePrefix": "oidc:", "groupsClaim": "groups", "groupsPrefix": "oidc:", "status": "{status}"}}}}}}"#
    )
}

fn patch() -> Vec<&'static str> {
    [
        &[
            "patch",
            "--distro",
            "eks",
            "--name",
            "dev",
            "--region",
            "eu-west-1",
            "--skip-check",
            "--poll-interval",
            "1",
        ][..],
        &SETTINGS,
    ]
    .concat()
}

fn ops(calls: &[Vec<String>]) -> Vec<String> {
    calls.iter().map(|c| format!("{} {}", c[0], c[2])).collect()
}

const ASSOCIATE_JSON: &str = r#"{"identityProviderConfigName":"k8soidc","issuerUrl":"https://idp.example.com","clientId":"kubernetes","usernameClaim":"email","usernamePrefix":"oidc:","groupsClaim":"groups","groupsPrefix":"oidc:"}"#;

#[test]
fn render_shows_the_aws_command_and_the_eksctl_block() {
    let out = Test::new()
        .args([
            "render",
            "--distro",
            "eks",
            "--name",
            "dev",
            "--region",
            "eu-west-1",
        ])
        .args(SETTINGS)
        .args(["--required-claim", "hd=example.com"])
        .run()
        .success();
    assert_eq!(
        out.stdout,
        r#"# eks: OIDC identity provider config (EKS API)
# username prefix: `oidc:` (`--username-prefix oidc:` was given)
# groups prefix: `oidc:`
# a token with email="jane@example.com", groups=["k8s-admins"] becomes user "oidc:jane@example.com" in groups "oidc:k8s-admins", "system:authenticated"
# warning: EKS fetches the issuer's discovery document itself: it must be reachable from the internet with a publicly trusted certificate (https://docs.aws.amazon.com/eks/latest/userguide/authenticate-oidc-identity-provider.html)

# an existing cluster, with the AWS CLI (what `k8soidc patch --distro eks` runs)
aws eks associate-identity-provider-config --oidc '{"identityProviderConfigName":"k8soidc","issuerUrl":"https://idp.example.com","clientId":"kubernetes","usernameClaim":"email","usernamePrefix":"oidc:","groupsClaim":"groups","groupsPrefix":"oidc:","requiredClaims":{"hd":"example.com"}}' --cluster-name dev --region eu-west-1 --output json
# then wait (tens of minutes) until `status` is ACTIVE:
aws eks describe-identity-provider-config --identity-provider-config type=oidc,name=k8soidc --cluster-name dev --region eu-west-1 --output json

# eksctl ClusterConfig: `identityProviders` (new cluster: `eksctl create cluster -f`; existing: `eksctl associate identityprovider -f`)
identityProviders:
- name: k8soidc
  type: oidc
  issuerURL: https://idp.example.com
  clientID: kubernetes
  usernameClaim: email
  usernamePrefix: 'oidc:'
  groupsClaim: groups
  groupsPrefix: 'oidc:'
  requiredClaims:
    hd: example.com
"#
    );
}

/// SETTINGS with `flag` set to `value` (replaced when SETTINGS has it, else added).
fn settings_with(flag: &'static str, value: &'static str) -> Vec<&'static str> {
    let mut s = SETTINGS.to_vec();
    match s.iter().position(|a| *a == flag) {
        Some(i) => s[i + 1] = value,
        None => s.extend([flag, value]),
    }
    s
}

#[test]
fn eks_rules_are_refused_before_any_program_runs() {
    let cases: [(&str, &str, &str); 6] = [
        (
            "--groups-prefix",
            "system:oidc:",
            "error: eks cannot carry --groups-prefix `system:oidc:`: EKS refuses a prefix containing `system:`",
        ),
        (
            "--issuer-url",
            "https://127.0.0.1:8443",
            "error: eks cannot carry --issuer-url `https://127.0.0.1:8443`: `127.0.0.1` is a loopback, private or link-local address; EKS fetches the discovery document and keys itself, so the issuer \"must be publicly accessible over the internet\"",
        ),
        (
            "--issuer-url",
            "https://dex.dex.svc.cluster.local",
            "error: eks cannot carry --issuer-url `https://dex.dex.svc.cluster.local`: `dex.dex.svc.cluster.local` is in `.local`, a name for local networks",
        ),
        (
            "--signing-algs",
            "ES256",
            "error: eks cannot carry --signing-algs `ES256`: the EKS association has no signing-algorithms field",
        ),
        (
            "--auth-mode",
            "config",
            "error: eks cannot carry --auth-mode `config`",
        ),
        ("--ca-file", "ca.pem", "error: eks cannot carry --ca-file"),
    ];
    let verbs: [&[&str]; 3] = [
        &["render", "--distro", "eks"],
        &["patch", "--distro", "eks", "--name", "dev", "--skip-check"],
        &[
            "create",
            "--distro",
            "eks",
            "--region",
            "eu-west-1",
            "--skip-check",
            "--yes",
        ],
    ];
    for (flag, value, want) in cases {
        for verb in verbs {
            let out = Test::new()
                .fake("aws")
                .fake("eksctl")
                .write(
                    "ca.pem",
                    "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAK\n-----END CERTIFICATE-----\n",
                )
                .write("fake-state/aws/dev.json", NO_CONFIG)
                .args(verb)
                .args(settings_with(flag, value))
                // k8soidc's own reserved-names policy would refuse `system:` first.
                .args(
                    value
                        .starts_with("system:")
                        .then_some("--allow-system-names"),
                )
                // With 1.33, `auto` means config mode, where no settings carry signing algorithms.
                .args((flag == "--signing-algs").then_some("--auth-mode=flags"))
                .args(["--kubernetes-version", "1.33"])
                .run()
                .status(2);
            assert!(
                out.stderr.starts_with(want),
                "{verb:?} {flag}: {}",
                out.stderr
            );
            assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
            assert!(out.calls().is_empty(), "{:?}", out.calls());
        }
    }
}

#[test]
fn patch_associates_and_waits_until_active() {
    let out = Test::new()
        .fake("aws")
        .write("fake-state/aws/dev.json", NO_CONFIG)
        .env("FAKE_EKS_ACTIVE_AFTER", "3")
        .args(patch())
        .args(["--yes"])
        .run()
        .success();
    let calls = out.calls();
    assert_eq!(
        ops(&calls),
        [
            "aws list-identity-provider-configs",
            "aws associate-identity-provider-config",
            "aws describe-identity-provider-config",
            "aws describe-identity-provider-config",
            "aws describe-identity-provider-config",
        ]
    );
    assert_eq!(
        calls[1],
        [
            "aws",
            "eks",
            "associate-identity-provider-config",
            "--oidc",
            ASSOCIATE_JSON,
            "--cluster-name",
            "dev",
            "--region",
            "eu-west-1",
            "--output",
            "json"
        ]
    );
    assert!(
        out.stderr.contains("`k8soidc` is CREATING (0s)\n"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("`k8soidc` is ACTIVE (after "),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(", poll 3)\n"), "{}", out.stderr);
    assert!(
        out.stderr
            .ends_with("EKS cluster `dev`: OIDC identity provider config ACTIVE\n"),
        "{}",
        out.stderr
    );
    let saved = out.file("fake-state/aws/dev.json");
    assert!(saved.contains("\"status\": \"ACTIVE\""), "{saved}");
}

#[test]
fn an_active_association_with_the_same_settings_is_left_alone() {
    let out = Test::new()
        .fake("aws")
        .write(
            "fake-state/aws/dev.json",
            &state("https://idp.example.com", "ACTIVE"),
        )
        .args(patch())
        .args(["--yes"])
        .run()
        .success();
    assert_eq!(
        out.stdout,
        "EKS cluster `dev` already has identity provider config `k8soidc` ACTIVE with these settings; nothing to do\n"
    );
    assert_eq!(
        ops(&out.calls()),
        [
            "aws list-identity-provider-configs",
            "aws describe-identity-provider-config"
        ]
    );
}

#[test]
fn changed_settings_replace_the_association_and_the_dry_run_shows_exactly_that() {
    let dry = Test::new()
        .fake("aws")
        .write(
            "fake-state/aws/dev.json",
            &state("https://old.example.com", "ACTIVE"),
        )
        .args(patch())
        .args(["--dry-run", "--timeout", "20m"])
        .run()
        .success();
    assert_eq!(
        dry.stdout,
        format!(
            "# set OIDC on EKS cluster `dev` (identity provider config `k8soidc`)
# note: EKS cannot change an association in place (every property \"Update requires: Replacement\", CloudFormation AWS::EKS::IdentityProviderConfig): `k8soidc` is disassociated first, so OIDC logins fail until the new one is ACTIVE

# disassociate the current `k8soidc` (issuer https://old.example.com)
+ aws eks disassociate-identity-provider-config --identity-provider-config type=oidc,name=k8soidc --cluster-name dev --region eu-west-1 --output json

# wait until EKS has removed the old `k8soidc`
+ aws eks list-identity-provider-configs --cluster-name dev --region eu-west-1 --output json
#   again every 1s until `k8soidc` is no longer listed, up to 20m (1201 polls at most)

# associate OIDC identity provider config `k8soidc` with EKS cluster `dev`
+ aws eks associate-identity-provider-config --oidc '{ASSOCIATE_JSON}' --cluster-name dev --region eu-west-1 --output json

# wait until `k8soidc` is ACTIVE (EKS takes tens of minutes)
+ aws eks describe-identity-provider-config --identity-provider-config type=oidc,name=k8soidc --cluster-name dev --region eu-west-1 --output json
#   again every 1s until `k8soidc` is ACTIVE, up to 20m (1201 polls at most)
"
        )
    );
    // The dry run only read.
    assert_eq!(
        ops(&dry.calls()),
        [
            "aws list-identity-provider-configs",
            "aws describe-identity-provider-config"
        ]
    );
    let out = Test::new()
        .fake("aws")
        .write(
            "fake-state/aws/dev.json",
            &state("https://old.example.com", "ACTIVE"),
        )
        .args(patch())
        .args(["--yes"])
        .run()
        .success();
    assert_eq!(
        ops(&out.calls()),
        [
            "aws list-identity-provider-configs",
            "aws describe-identity-provider-config",
            "aws disassociate-identity-provider-config",
            "aws list-identity-provider-configs",
            "aws list-identity-provider-configs",
            "aws associate-identity-provider-config",
            "aws describe-identity-provider-config",
            "aws describe-identity-provider-config",
        ]
    );
    assert!(
        out.stderr
            .contains("`k8soidc` is still associated (DELETING) (0s)\n"),
        "{}",
        out.stderr
    );
    assert!(out
        .file("fake-state/aws/dev.json")
        .contains("https://idp.example.com"));
}

#[test]
fn remove_disassociates_and_waits_until_gone() {
    let out = Test::new()
        .fake("aws")
        .write(
            "fake-state/aws/dev.json",
            &state("https://idp.example.com", "ACTIVE"),
        )
        .args([
            "patch",
            "--distro",
            "eks",
            "--name",
            "dev",
            "--remove",
            "--yes",
            "--poll-interval",
            "1",
        ])
        .run()
        .success();
    assert_eq!(
        ops(&out.calls()),
        [
            "aws list-identity-provider-configs",
            "aws describe-identity-provider-config",
            "aws disassociate-identity-provider-config",
            "aws list-identity-provider-configs",
            "aws list-identity-provider-configs",
        ]
    );
    assert!(
        out.stderr.contains("`k8soidc` is disassociated (after "),
        "{}",
        out.stderr
    );
    assert!(out
        .file("fake-state/aws/dev.json")
        .contains("\"configs\": {}"));
    let again = Test::new()
        .fake("aws")
        .write("fake-state/aws/dev.json", NO_CONFIG)
        .args([
            "patch", "--distro", "eks", "--name", "dev", "--remove", "--yes",
        ])
        .run()
        .success();
    assert_eq!(
        again.stdout,
        "EKS cluster `dev` already has no identity provider config `k8soidc`; nothing to do\n"
    );
}

#[test]
fn the_wait_is_bounded_and_says_what_it_last_saw() {
    let out = Test::new()
        .fake("aws")
        .write("fake-state/aws/dev.json", NO_CONFIG)
        .env("FAKE_EKS_ACTIVE_AFTER", "1000")
        .args(patch())
        .args(["--yes", "--timeout", "2s"])
        .run()
        .status(1);
    let describes = ops(&out.calls())
        .iter()
        .filter(|o| o.ends_with("describe-identity-provider-config"))
        .count();
    assert_eq!(describes, 2, "{:?}", out.calls());
    assert!(
        out.stderr.contains("error: gave up after 2s: wait until `k8soidc` is ACTIVE (EKS takes tens of minutes) (last seen: `k8soidc` is CREATING); the change was made and the provider keeps going; watch it with `aws eks describe-identity-provider-config --identity-provider-config type=oidc,name=k8soidc --cluster-name dev --region eu-west-1 --output json`"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_second_provider_and_api_failures_stop_the_run() {
    let mut other = state("https://corp.example.com", "ACTIVE");
    other = other.replace("\"k8soidc\"", "\"corp\"");
    let out = Test::new()
        .fake("aws")
        .write("fake-state/aws/dev.json", &other)
        .args(patch())
        .args(["--yes"])
        .run()
        .status(2);
    assert!(out.stderr.starts_with("error: eks: cluster `dev` already has OIDC identity provider config `corp` (issuer https://corp.example.com) and EKS allows one per cluster"), "{}", out.stderr);
    assert_eq!(
        ops(&out.calls()),
        [
            "aws list-identity-provider-configs",
            "aws describe-identity-provider-config"
        ]
    );
    // No such cluster: the AWS error is shown, nothing else runs.
    let out = Test::new()
        .fake("aws")
        .args(patch())
        .args(["--yes"])
        .run()
        .status(1);
    assert!(
        out.stderr.contains("ResourceNotFoundException"),
        "{}",
        out.stderr
    );
    assert_eq!(ops(&out.calls()), ["aws list-identity-provider-configs"]);
    // The AWS CLI missing: named with how to install it.
    let out = Test::new().args(patch()).args(["--yes"]).run().status(1);
    assert!(
        out.stderr.contains("`aws`") && out.stderr.contains("install the AWS CLI v2"),
        "{}",
        out.stderr
    );
    // --name is required, and an EKS name is checked.
    let out = Test::new()
        .args(["patch", "--distro", "eks", "--skip-check"])
        .args(SETTINGS)
        .run()
        .status(2);
    assert_eq!(
        out.stderr,
        "error: missing --name: say which EKS cluster to patch, e.g. `--distro eks --name dev`\n"
    );
    let out = Test::new()
        .args([
            "patch",
            "--distro",
            "eks",
            "--name",
            "dev.x",
            "--skip-check",
        ])
        .args(SETTINGS)
        .run()
        .status(2);
    assert!(
        out.stderr
            .starts_with("error: invalid --name `dev.x`: EKS cluster names"),
        "{}",
        out.stderr
    );
}

#[test]
fn create_writes_the_eksctl_config_and_runs_eksctl_then_patch_has_nothing_to_do() {
    let out = Test::new()
        .fake("eksctl")
        .fake("aws")
        .args([
            "create",
            "--distro",
            "eks",
            "--name",
            "dev",
            "--region",
            "eu-west-1",
            "--yes",
            "--skip-check",
        ])
        .args(SETTINGS)
        .args(["--", "--version", "1.33"])
        .run()
        .success();
    let file = out.root.join("data/k8soidc/eks-dev/eksctl-config.yaml");
    let calls = out.calls();
    assert_eq!(
        calls,
        [[
            "eksctl".to_string(),
            "create".into(),
            "cluster".into(),
            "-f".into(),
            file.display().to_string(),
            "--version".into(),
            "1.33".into()
        ]]
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "apiVersion: eksctl.io/v1alpha5
kind: ClusterConfig
metadata:
  name: dev
  region: eu-west-1
identityProviders:
- name: k8soidc
  type: oidc
  issuerURL: https://idp.example.com
  clientID: kubernetes
  usernameClaim: email
  usernamePrefix: 'oidc:'
  groupsClaim: groups
  groupsPrefix: 'oidc:'
"
    );
    // What eksctl associated is what `patch` would: nothing to do.
    let state = out.file("fake-state/aws/dev.json");
    let again = Test::new()
        .fake("aws")
        .write("fake-state/aws/dev.json", &state)
        .args(patch())
        .args(["--yes"])
        .run()
        .success();
    assert!(
        again
            .stdout
            .ends_with("ACTIVE with these settings; nothing to do\n"),
        "{}",
        again.stdout
    );
    // Without --region eksctl's ClusterConfig cannot be written.
    let out = Test::new()
        .fake("eksctl")
        .args([
            "create",
            "--distro",
            "eks",
            "--name",
            "dev",
            "--yes",
            "--skip-check",
        ])
        .args(SETTINGS)
        .run()
        .status(2);
    assert!(
        out.stderr.starts_with("error: missing --region"),
        "{}",
        out.stderr
    );
    assert!(out.calls().is_empty());
}

const EKSCTL_FILE: &str = "# dev cluster
apiVersion: eksctl.io/v1alpha5
kind: ClusterConfig

metadata:
  name: dev   # keep me
  region: eu-west-1

nodeGroups:
  - name: ng-1
    instanceType: m5.large
";

#[test]
fn patch_file_on_an_eksctl_cluster_config() {
    let out = Test::new()
        .write("cluster.yaml", EKSCTL_FILE)
        .args(["patch", "--file", "cluster.yaml", "--dry-run"])
        .args(SETTINGS)
        .run()
        .success();
    assert_eq!(
        out.stderr,
        "cluster.yaml: detected --file-kind eksctl-config\n"
    );
    assert_eq!(
        out.stdout,
        "--- a/cluster.yaml
+++ b/cluster.yaml
@@ -9,3 +9,12 @@
 nodeGroups:
   - name: ng-1
     instanceType: m5.large
+identityProviders:
+- name: k8soidc
+  type: oidc
+  issuerURL: https://idp.example.com
+  clientID: kubernetes
+  usernameClaim: email
+  usernamePrefix: 'oidc:'
+  groupsClaim: groups
+  groupsPrefix: 'oidc:'
"
    );
    let t = Test::new().write("cluster.yaml", EKSCTL_FILE);
    let out = t
        .args(["patch", "--file", "cluster.yaml", "--in-place"])
        .args(SETTINGS)
        .run()
        .success();
    let patched = out.file("cluster.yaml");
    assert!(patched.starts_with(EKSCTL_FILE) && patched.ends_with("  groupsPrefix: 'oidc:'\n"));
    let removed = Test::new()
        .write("cluster.yaml", &patched)
        .args(["patch", "--file", "cluster.yaml", "--remove"])
        .run()
        .success();
    assert_eq!(removed.stdout, EKSCTL_FILE);
    let refused = Test::new()
        .write("cluster.yaml", EKSCTL_FILE)
        .args(["patch", "--file", "cluster.yaml"])
        .args(settings_with("--groups-prefix", "system:x"))
        .args(["--allow-system-names"])
        .run()
        .status(2);
    assert!(
        refused
            .stderr
            .contains("eks cannot carry --groups-prefix `system:x`"),
        "{}",
        refused.stderr
    );
}

#[test]
fn check_says_eks_needs_a_public_issuer_and_certificate() {
    let p = crate::provider::Provider::start();
    let ca = p.pki.ca().display().to_string();
    let out = Test::new()
        .args([
            "check",
            "--distro",
            "eks",
            "--issuer-url",
            &p.issuer,
            "--client-id",
            "kubernetes",
        ])
        .args(["--username-claim", "email", "--ca-file", &ca])
        .run()
        .status(1);
    let eks_rows: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("  eks-"))
        .collect();
    assert_eq!(
        eks_rows,
        [
            "FAIL  eks-public-issuer  `127.0.0.1` is a loopback, private or link-local address: EKS fetches the discovery document and keys from AWS' network, so the issuer must be publicly reachable over https (https://docs.aws.amazon.com/eks/latest/APIReference/API_OidcIdentityProviderConfigRequest.html)".to_string(),
            format!("FAIL  eks-certificate    --ca-file {ca} given: EKS has no CA option and does not accept self-signed or private-CA certificates (https://docs.aws.amazon.com/eks/latest/userguide/authenticate-oidc-identity-provider.html)"),
        ],
        "{}",
        out.stdout
    );
    // Without --distro eks the same provider passes: the rows are EKS'.
    let plain = Test::new()
        .args([
            "check",
            "--issuer-url",
            &p.issuer,
            "--client-id",
            "kubernetes",
        ])
        .args(["--username-claim", "email", "--ca-file", &ca])
        .run()
        .success();
    assert!(!plain.stdout.contains("eks-"), "{}", plain.stdout);
}

#[test]
fn kubeconfig_for_eks_writes_the_kubelogin_user_and_names_the_cluster_entry() {
    let out = Test::new()
        .args([
            "kubeconfig",
            "--distro",
            "eks",
            "--cluster",
            "dev",
            "--server",
            "https://ABC.gr7.eu-west-1.eks.amazonaws.com",
        ])
        .args(["--kubeconfig", "kc"])
        .args(SETTINGS)
        .run()
        .success();
    assert!(
        out.stderr.contains("note: eks: the user below logs in with kubelogin and EKS validates its ID token; the cluster entry (server and CA) comes from `aws eks update-kubeconfig --name dev`\n"),
        "{}",
        out.stderr
    );
    let kc = out.file("kc");
    assert!(
        kc.contains("- --oidc-issuer-url=https://idp.example.com\n"),
        "{kc}"
    );
}

#[test]
fn eksctl_configs_validate_against_eksctls_schema() {
    let schema: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            crate::test::fixtures().join("schemas/eksctl-v1alpha5.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    // eksctl's generated `$ref`s name Go packages (`#/definitions/github.com|aws|…`); `|` is
    // not allowed in a URI reference, so it is percent-encoded (a JSON-pointer fragment is
    // percent-decoded before it is resolved, RFC 6901 section 6): the same references.
    fn encode_refs(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    match x {
                        serde_json::Value::String(s) if k == "$ref" => *s = s.replace('|', "%7C"),
                        _ => encode_refs(x),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(encode_refs),
            _ => {}
        }
    }
    let mut schema = schema;
    encode_refs(&mut schema);
    let whole = jsonschema::validator_for(&schema).unwrap();
    // eksctl's generated schema cannot accept any identity provider: `IdentityProvider`
    // requires `type` and is `oneOf` `OIDCIdentityProvider`, which has no `type` and
    // `additionalProperties: false` (eksctl marshals `type` next to the fields by hand,
    // identity_provider.go). So each entry is checked for `type: oidc`, then without it
    // against `OIDCIdentityProvider`, and the rest of the document against the whole schema.
    let entry = jsonschema::validator_for(&serde_json::json!({
        "$ref": "#/definitions/OIDCIdentityProvider",
        "definitions": schema["definitions"],
    }))
    .unwrap();
    let as_json = |yaml: &str| -> serde_json::Value { serde_yaml_ng::from_str(yaml).unwrap() };
    let problems = |yaml: &str| -> Vec<String> {
        let mut doc = as_json(yaml);
        let entries = doc
            .as_object_mut()
            .unwrap()
            .remove("identityProviders")
            .expect("identityProviders");
        let mut out: Vec<String> = whole.iter_errors(&doc).map(|e| e.to_string()).collect();
        for mut e in entries.as_array().unwrap().clone() {
            let t = e.as_object_mut().unwrap().remove("type");
            if t != Some(serde_json::json!("oidc")) {
                out.push(format!("type {t:?}"));
            }
            out.extend(entry.iter_errors(&e).map(|e| e.to_string()));
        }
        out
    };
    let created = Test::new()
        .fake("eksctl")
        .args([
            "create",
            "--distro",
            "eks",
            "--name",
            "dev",
            "--region",
            "eu-west-1",
            "--yes",
            "--skip-check",
        ])
        .args(SETTINGS)
        .args([
            "--required-claim",
            "hd=example.com",
            "--required-claim",
            "env=prod",
        ])
        .run()
        .success();
    let file = created.file("data/k8soidc/eks-dev/eksctl-config.yaml");
    assert_eq!(problems(&file), Vec::<String>::new(), "{file}");
    let patched = Test::new()
        .write("cluster.yaml", EKSCTL_FILE)
        .args(["patch", "--file", "cluster.yaml"])
        .args(SETTINGS)
        .run()
        .success();
    assert_eq!(
        problems(&patched.stdout),
        Vec::<String>::new(),
        "{}",
        patched.stdout
    );
    // The checks do catch broken entries and documents.
    let saml = patched.stdout.replace("type: oidc", "type: saml");
    assert_eq!(problems(&saml), ["type Some(String(\"saml\"))"]);
    let typo = patched.stdout.replace("clientID:", "clientId:");
    assert!(!problems(&typo).is_empty());
    let no_meta = patched.stdout.replace("metadata:", "metadatum:");
    assert!(!problems(&no_meta).is_empty());
}

#[test]
fn create_dry_run_prints_the_file_and_the_command_and_runs_nothing() {
    let out = Test::new()
        .fake("eksctl")
        .args([
            "create",
            "--distro",
            "eks",
            "--name",
            "dev",
            "--region",
            "eu-west-1",
            "--dry-run",
            "--skip-check",
        ])
        .args(SETTINGS)
        .run()
        .success();
    let dir = out.root.join("data/k8soidc/eks-dev");
    let dir = dir.display();
    assert_eq!(
        out.stdout,
        format!(
            "# create EKS cluster `dev` with OIDC (eksctl)
# note: eks: OIDC identity provider config (EKS API)
# note: username prefix: `oidc:` (`--username-prefix oidc:` was given)
# note: groups prefix: `oidc:`
# note: a token with email=\"jane@example.com\", groups=[\"k8s-admins\"] becomes user \"oidc:jane@example.com\" in groups \"oidc:k8s-admins\", \"system:authenticated\"
# note: warning: EKS fetches the issuer's discovery document itself: it must be reachable from the internet with a publicly trusted certificate (https://docs.aws.amazon.com/eks/latest/userguide/authenticate-oidc-identity-provider.html)

# write the eksctl ClusterConfig with the OIDC identity provider
+ write {dir}/eksctl-config.yaml (mode 0644, new file):
    apiVersion: eksctl.io/v1alpha5
    kind: ClusterConfig
    metadata:
      name: dev
      region: eu-west-1
    identityProviders:
    - name: k8soidc
      type: oidc
      issuerURL: https://idp.example.com
      clientID: kubernetes
      usernameClaim: email
      usernamePrefix: 'oidc:'
      groupsClaim: groups
      groupsPrefix: 'oidc:'

# create EKS cluster `dev`; eksctl associates the identity provider once the cluster is up
+ eksctl create cluster -f {dir}/eksctl-config.yaml
"
        )
    );
    assert!(out.calls().is_empty());
    assert!(!out
        .root
        .join("data/k8soidc/eks-dev/eksctl-config.yaml")
        .exists());
}

//! Google GKE: Workforce Identity Federation (the replacement Google documents) rendered with
//! gcloud, RBAC subjects in the principal:// / principalSet:// form, the kubeconfig user that
//! GKE needs (gcloud's, not kubelogin's), and Identity Service for GKE (deprecated) behind
//! `--identity-service` with its deprecation date.

use crate::test::Test;

const WIF: [&str; 8] = [
    "--issuer-url",
    "https://idp.example.com",
    "--client-id",
    "kubernetes",
    "--username-claim",
    "email",
    "--groups-claim",
    "groups",
];

#[test]
fn render_workforce_identity_federation() {
    let out = Test::new()
        .args(["render", "--distro", "gke", "--name", "dev"])
        .args([
            "--workforce-pool",
            "corp-pool",
            "--organization",
            "123456789",
        ])
        .args(WIF)
        .args(["--required-claim", "hd=example.com"])
        .run()
        .success();
    assert_eq!(
        out.stdout,
        r#"# gke: Workforce Identity Federation (Google IAM; GKE's API server is Google's)
# username prefix: `principal://iam.googleapis.com/locations/global/workforcePools/corp-pool/subject/` (GKE names Workforce Identity Federation users by IAM principal identifier)
# groups prefix: `principalSet://iam.googleapis.com/locations/global/workforcePools/corp-pool/group/`
# a token with email="jane@example.com", groups=["k8s-admins"] becomes user "principal://iam.googleapis.com/locations/global/workforcePools/corp-pool/subject/jane@example.com" in groups "principalSet://iam.googleapis.com/locations/global/workforcePools/corp-pool/group/k8s-admins", "system:authenticated"
# warning: users log in with `gcloud auth login --login-config=FILE` and `gcloud container clusters get-credentials dev`, not kubelogin; Identity Service for GKE is deprecated since July 1, 2026 (https://cloud.google.com/kubernetes-engine/docs/how-to/oidc)

# Workforce Identity Federation: the pool and its OIDC provider (organization-wide; no cluster change)
gcloud iam workforce-pools create corp-pool --organization=123456789 --location=global --display-name=k8soidc
gcloud iam workforce-pools providers create-oidc k8soidc --workforce-pool=corp-pool --location=global --issuer-uri=https://idp.example.com --client-id=kubernetes --attribute-mapping=google.subject=assertion.email,google.groups=assertion.groups --web-sso-response-type=id-token --web-sso-assertion-claims-behavior=only-id-token-claims '--attribute-condition=assertion.hd == '\''example.com'\'''

# RBAC subjects (`k8soidc rbac --workforce-pool POOL` writes the bindings)
user:  principal://iam.googleapis.com/locations/global/workforcePools/corp-pool/subject/USER (the `email` claim)
group: principalSet://iam.googleapis.com/locations/global/workforcePools/corp-pool/group/GROUP
"#
    );
}

#[test]
fn what_workforce_identity_federation_cannot_take_is_refused() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["--groups-prefix", "oidc:"],
            "error: gke cannot carry --groups-prefix `oidc:`: with Workforce Identity Federation GKE names users and groups by IAM principal identifiers",
        ),
        (
            &["--workforce-pool", "Corp"],
            "error: invalid --workforce-pool `Corp`: is not a workforce pool id",
        ),
        (
            &["--organization", "acme"],
            "error: invalid --organization `acme`: a Google Cloud organization id is a number",
        ),
        (
            &["--auth-mode", "config", "--kubernetes-version", "1.33"],
            "error: gke cannot carry --auth-mode `config`",
        ),
    ];
    for (extra, want) in cases {
        let out = Test::new()
            .args(["render", "--distro", "gke"])
            .args(WIF)
            .args(extra)
            .run()
            .status(2);
        assert!(out.stderr.starts_with(want), "{extra:?}: {}", out.stderr);
        assert_eq!(out.stderr.lines().count(), 1);
    }
}

#[test]
fn identity_service_clientconfig_carries_the_deprecation_date() {
    let out = Test::new()
        .args([
            "render",
            "--distro",
            "gke",
            "--name",
            "dev",
            "--identity-service",
        ])
        .args(WIF)
        .args(["--username-prefix", "oidc:", "--groups-prefix", "oidc:"])
        .run()
        .success();
    assert_eq!(
        out.stdout,
        r#"# gke: Identity Service for GKE ClientConfig (deprecated)
# username prefix: `oidc:` (`--username-prefix oidc:` was given)
# groups prefix: `oidc:`
# a token with email="jane@example.com", groups=["k8s-admins"] becomes user "oidc:jane@example.com" in groups "oidc:k8s-admins", "system:authenticated"
# warning: Identity Service for GKE is deprecated: Google: "Starting on July 1, 2026, Identity Service for GKE is deprecated" and unsupported in newer GKE versions; move to Workforce Identity Federation (render without --identity-service) (https://cloud.google.com/kubernetes-engine/docs/how-to/oidc)

# Identity Service for GKE: turn it on, then merge this into ClientConfig `default` (namespace kube-public); it replaces `spec.authentication`
gcloud container clusters update dev --enable-identity-service
kubectl patch clientconfig default --namespace kube-public --type merge --patch-file clientconfig-patch.yaml

# ClientConfig patch (clientconfig-patch.yaml)
spec:
  authentication:
  - name: oidc
    oidc:
      clientID: kubernetes
      issuerURI: https://idp.example.com
      kubectlRedirectURI: http://localhost:8000/callback
      scopes: openid,email,groups,offline_access
      userClaim: email
      userPrefix: 'oidc:'
      groupsClaim: groups
      groupPrefix: 'oidc:'
"#
    );
}

#[test]
fn rbac_writes_gke_principal_subjects() {
    let out = Test::new()
        .args([
            "rbac",
            "--workforce-pool",
            "corp-pool",
            "--group",
            "k8s-admins",
        ])
        .args([
            "--user",
            "jane@example.com",
            "--username-claim",
            "email",
            "--groups-claim",
            "groups",
        ])
        .run()
        .success();
    assert_eq!(
        out.stdout,
        "# user subjects are IAM principal identifiers of workforce pool `corp-pool`, as GKE with Workforce Identity Federation names users (its `google.subject`, the `email` claim); --username-prefix does not apply
# group subjects are IAM principal-set identifiers of workforce pool `corp-pool`, as GKE with Workforce Identity Federation names groups (its `google.groups`); --groups-prefix does not apply
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: oidc-k8s-admins-cluster-admin
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: cluster-admin
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: principal://iam.googleapis.com/locations/global/workforcePools/corp-pool/subject/jane@example.com
- apiGroup: rbac.authorization.k8s.io
  kind: Group
  name: principalSet://iam.googleapis.com/locations/global/workforcePools/corp-pool/group/k8s-admins
"
    );
}

#[test]
fn kubeconfig_for_gke_names_the_gcloud_login_and_writes_nothing() {
    let out = Test::new()
        .args([
            "kubeconfig",
            "--cluster",
            "dev",
            "--distro",
            "gke",
            "--workforce-pool",
            "corp-pool",
        ])
        .args(["--kubeconfig", "kc"])
        .args(WIF)
        .run()
        .status(2);
    assert_eq!(
        out.stderr,
        "error: gke: with Workforce Identity Federation kubectl logs in through gcloud (gke-gcloud-auth-plugin), not kubelogin, so k8soidc writes no kubeconfig user; run `gcloud iam workforce-pools create-login-config locations/global/workforcePools/corp-pool/providers/k8soidc --output-file=login.json`, `gcloud auth login --login-config=login.json`, then `gcloud container clusters get-credentials dev` (https://cloud.google.com/kubernetes-engine/docs/how-to/oidc)\n"
    );
    assert!(!out.root.join("kc").exists());
}

fn patch() -> Vec<&'static str> {
    [
        &[
            "patch",
            "--distro",
            "gke",
            "--organization",
            "123456789",
            "--workforce-pool",
            "corp-pool",
            "--skip-check",
        ][..],
        &WIF,
    ]
    .concat()
}

fn ops(calls: &[Vec<String>]) -> Vec<String> {
    calls
        .iter()
        .map(|c| {
            c.iter()
                .skip(2)
                .take_while(|a| !a.starts_with("--"))
                .cloned()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

const STATE: &str = r#"{"pools": {"corp-pool": {"org": "123456789", "providers": {"k8soidc": {"name": "locations/global/workforcePools/corp-pool/providers/k8soidc", "state": "ACTIVE", "oidc": {"issuerUri": "https://idp.example.com", "clientId": "kubernetes"}, "attributeMapping": {"google.subject": "assertion.email", "google.groups": "assertion.groups"}}}}}}"#;

#[test]
fn patch_creates_the_pool_and_provider_with_gcloud() {
    let dry = Test::new()
        .fake("gcloud")
        .args(patch())
        .args(["--dry-run"])
        .run()
        .success();
    assert_eq!(
        dry.stdout,
        "# set OIDC for GKE through Workforce Identity Federation (pool `corp-pool`)
# note: bind RBAC to principalSet://iam.googleapis.com/locations/global/workforcePools/corp-pool/group/GROUP subjects (`k8soidc rbac --workforce-pool corp-pool`)

# create workforce pool `corp-pool` in organization 123456789
+ gcloud iam workforce-pools create corp-pool --organization=123456789 --location=global --display-name=k8soidc

# create OIDC provider `k8soidc` in workforce pool `corp-pool`
+ gcloud iam workforce-pools providers create-oidc k8soidc --workforce-pool=corp-pool --location=global --issuer-uri=https://idp.example.com --client-id=kubernetes --attribute-mapping=google.subject=assertion.email,google.groups=assertion.groups --web-sso-response-type=id-token --web-sso-assertion-claims-behavior=only-id-token-claims
"
    );
    assert_eq!(ops(&dry.calls()), ["workforce-pools list"]);
    let out = Test::new()
        .fake("gcloud")
        .args(patch())
        .args(["--yes"])
        .run()
        .success();
    assert_eq!(
        ops(&out.calls()),
        [
            "workforce-pools list",
            "workforce-pools create corp-pool",
            "workforce-pools providers create-oidc k8soidc"
        ]
    );
    assert!(
        out.stderr
            .ends_with("workforce pool `corp-pool`: provider `k8soidc` set\n"),
        "{}",
        out.stderr
    );
    // What it made is what it wants: a second run has nothing to do.
    let state = out.file("fake-state/gcloud/state.json");
    let again = Test::new()
        .fake("gcloud")
        .write("fake-state/gcloud/state.json", &state)
        .args(patch())
        .args(["--yes"])
        .run()
        .success();
    assert_eq!(
        again.stdout,
        "workforce pool `corp-pool` already has provider `k8soidc` with these settings; nothing to do\n"
    );
    assert_eq!(
        ops(&again.calls()),
        ["workforce-pools list", "workforce-pools providers list"]
    );
}

#[test]
fn changed_settings_update_the_provider_and_remove_deletes_it() {
    let mut settings = patch();
    let i = settings.iter().position(|a| *a == "kubernetes").unwrap();
    settings[i] = "other-client";
    let out = Test::new()
        .fake("gcloud")
        .write("fake-state/gcloud/state.json", STATE)
        .args(settings)
        .args(["--yes"])
        .run()
        .success();
    assert_eq!(
        ops(&out.calls()),
        [
            "workforce-pools list",
            "workforce-pools providers list",
            "workforce-pools providers update-oidc k8soidc"
        ]
    );
    assert!(out
        .file("fake-state/gcloud/state.json")
        .contains("\"clientId\": \"other-client\""));
    let removed = Test::new()
        .fake("gcloud")
        .write("fake-state/gcloud/state.json", STATE)
        .args([
            "patch",
            "--distro",
            "gke",
            "--organization",
            "123456789",
            "--workforce-pool",
            "corp-pool",
            "--remove",
            "--yes",
        ])
        .run()
        .success();
    let calls = removed.calls();
    assert_eq!(
        calls[2],
        [
            "gcloud",
            "iam",
            "workforce-pools",
            "providers",
            "delete",
            "k8soidc",
            "--workforce-pool=corp-pool",
            "--location=global",
            "--quiet"
        ]
    );
    assert!(removed
        .file("fake-state/gcloud/state.json")
        .contains("\"providers\": {}"));
    // Without --organization nothing runs.
    let out = Test::new()
        .fake("gcloud")
        .args(["patch", "--distro", "gke", "--skip-check"])
        .args(WIF)
        .run()
        .status(2);
    assert!(
        out.stderr.starts_with("error: missing --organization"),
        "{}",
        out.stderr
    );
    assert!(out.calls().is_empty());
}

#[test]
fn create_says_how_gke_clusters_are_made() {
    let out = Test::new()
        .args(["create", "--distro", "gke", "--skip-check"])
        .args(WIF)
        .run()
        .status(2);
    assert_eq!(
        out.stderr,
        "error: gke: k8soidc does not create gke clusters; Workforce Identity Federation needs nothing at cluster creation: create the cluster with `gcloud container clusters create`, then set up the pool with `k8soidc patch --distro gke --organization ORG`\n"
    );
}

const CLIENT_CONFIG: &str = "apiVersion: authentication.gke.io/v2alpha1
kind: ClientConfig
metadata:
  name: default
  namespace: kube-public
spec:
  authentication:
  - name: ldap
    ldap:
      host: ldap.example.com
  name: dev
  server: https://10.0.0.2:443
";

#[test]
fn patch_file_sets_and_removes_the_oidc_method_of_a_clientconfig() {
    let out = Test::new()
        .write("clientconfig.yaml", CLIENT_CONFIG)
        .args(["patch", "--file", "clientconfig.yaml"])
        .args(WIF)
        .args(["--username-prefix", "oidc:", "--groups-prefix", "oidc:"])
        .run()
        .success();
    assert_eq!(
        out.stderr,
        "clientconfig.yaml: detected --file-kind gke-clientconfig\n"
    );
    assert_eq!(
        out.stdout,
        "apiVersion: authentication.gke.io/v2alpha1
kind: ClientConfig
metadata:
  name: default
  namespace: kube-public
spec:
  authentication:
  - name: ldap
    ldap:
      host: ldap.example.com
  - name: oidc
    oidc:
      clientID: kubernetes
      issuerURI: https://idp.example.com
      kubectlRedirectURI: http://localhost:8000/callback
      scopes: openid,email,groups,offline_access
      userClaim: email
      userPrefix: 'oidc:'
      groupsClaim: groups
      groupPrefix: 'oidc:'
  name: dev
  server: https://10.0.0.2:443
"
    );
    let removed = Test::new()
        .write("clientconfig.yaml", &out.stdout)
        .args(["patch", "--file", "clientconfig.yaml", "--remove"])
        .run()
        .success();
    assert_eq!(removed.stdout, CLIENT_CONFIG);
}

#[test]
fn check_warns_that_google_must_reach_the_issuer() {
    let p = crate::provider::Provider::start();
    let ca = p.pki.ca().display().to_string();
    let out = Test::new()
        .args([
            "check",
            "--distro",
            "gke",
            "--issuer-url",
            &p.issuer,
            "--client-id",
            "kubernetes",
        ])
        .args(["--username-claim", "email", "--ca-file", &ca])
        .run()
        .success();
    let row: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.contains("gke-public-issuer"))
        .collect();
    assert_eq!(
        row,
        ["WARN  gke-public-issuer  `127.0.0.1` is a loopback, private or link-local address: Google fetches the issuer's discovery document and keys from its network"],
        "{}",
        out.stdout
    );
}

const WARNING: &str = "warning: Identity Service for GKE is deprecated: Google: \"Starting on July 1, 2026, Identity Service for GKE is deprecated\" and unsupported in newer GKE versions; move to Workforce Identity Federation (render without --identity-service) (https://cloud.google.com/kubernetes-engine/docs/how-to/oidc)\n";

fn identity(extra: &[&str]) -> Test {
    Test::new()
        .fake("gcloud")
        .fake("kubectl")
        .write(
            "fake-state/gcloud/state.json",
            r#"{"pools": {}, "clusters": {"us-central1/dev": {}}}"#,
        )
        .args([
            "patch",
            "--distro",
            "gke",
            "--identity-service",
            "--name",
            "dev",
            "--location",
            "us-central1",
            "--yes",
            "--skip-check",
        ])
        .args(extra)
}

fn prefixed() -> Vec<&'static str> {
    [
        &WIF[..],
        &["--username-prefix", "oidc:", "--groups-prefix", "oidc:"],
    ]
    .concat()
}

fn client_config(out: &crate::test::Output) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(&out.file("fake-state/kubectl/ClientConfig-kube-public-default"))
        .unwrap()
}

fn verbs(out: &crate::test::Output) -> Vec<String> {
    out.calls().iter().map(|c| c[..3].join(" ")).collect()
}

/// Identity Service off: the dry run reads the ClientConfig (absent) and shows turning it on,
/// the wait for the ClientConfig and the merge patch; the run does them and the ClientConfig
/// holds the `oidc` method; a rerun has nothing to do; the warning is on stderr every time.
#[test]
fn identity_service_turned_on_and_patched() {
    let dry = identity(&prefixed()).args(["--dry-run"]).run().success();
    assert!(dry.stderr.starts_with(WARNING), "{}", dry.stderr);
    assert_eq!(verbs(&dry), ["kubectl get clientconfig"]);
    assert!(
        dry.stdout.contains("+ gcloud container clusters update dev --enable-identity-service --location=us-central1\n"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("+ kubectl get clientconfig default -n kube-public -o name --ignore-not-found\n#   again every 10s until ClientConfig `default` in kube-public exists"),
        "{}",
        dry.stdout
    );
    assert!(!dry
        .root
        .join("fake-state/kubectl/ClientConfig-kube-public-default")
        .exists());

    let out = identity(&prefixed()).run().success();
    assert!(out.stderr.starts_with(WARNING), "{}", out.stderr);
    assert_eq!(
        verbs(&out),
        [
            "kubectl get clientconfig",
            "gcloud container clusters",
            "kubectl get clientconfig",
            "kubectl patch clientconfig"
        ]
    );
    let cc = client_config(&out);
    let oidc = &cc["spec"]["authentication"][0];
    assert_eq!(oidc["name"], "oidc");
    assert_eq!(oidc["oidc"]["issuerURI"], "https://idp.example.com");
    assert_eq!(oidc["oidc"]["userPrefix"], "oidc:");
    assert_eq!(cc["spec"]["name"], "dev");

    let again = identity(&prefixed())
        .write(
            "fake-state/kubectl/ClientConfig-kube-public-default",
            &out.file("fake-state/kubectl/ClientConfig-kube-public-default"),
        )
        .run()
        .success();
    assert!(again.stderr.starts_with(WARNING));
    assert_eq!(
        again.stdout,
        "GKE cluster `dev` already has these settings in its ClientConfig; nothing to do\n"
    );
    assert_eq!(verbs(&again), ["kubectl get clientconfig"]);
}

/// A ClientConfig with another method: the `oidc` method added beside it (the dry run shows
/// the diff, the run replaces the ClientConfig), then `--remove` takes it out and keeps the
/// other; the API server's optimistic concurrency is kept (resourceVersion as read).
#[test]
fn identity_service_clientconfig_patched_and_removed() {
    let existing = CLIENT_CONFIG.replace(
        "  namespace: kube-public\n",
        "  namespace: kube-public\n  resourceVersion: '7'\n",
    );
    let dry = identity(&prefixed())
        .write(
            "fake-state/kubectl/ClientConfig-kube-public-default",
            &existing,
        )
        .args(["--dry-run"])
        .run()
        .success();
    assert!(
        dry.stdout
            .contains("+  - name: oidc\n+    oidc:\n+      clientID: kubernetes\n"),
        "{}",
        dry.stdout
    );
    let out = identity(&prefixed())
        .write(
            "fake-state/kubectl/ClientConfig-kube-public-default",
            &existing,
        )
        .run()
        .success();
    assert_eq!(
        verbs(&out),
        ["kubectl get clientconfig", "kubectl replace -f"]
    );
    let cc = client_config(&out);
    assert_eq!(cc["spec"]["authentication"][0]["name"], "ldap");
    assert_eq!(cc["spec"]["authentication"][1]["name"], "oidc");
    assert!(out
        .stderr
        .ends_with("GKE cluster `dev`: the `oidc` method of ClientConfig `default` set\n"));

    let removed = identity(&["--remove"])
        .write(
            "fake-state/kubectl/ClientConfig-kube-public-default",
            &out.file("fake-state/kubectl/ClientConfig-kube-public-default"),
        )
        .run()
        .success();
    assert!(removed.stderr.starts_with(WARNING));
    let cc = client_config(&removed);
    let methods = cc["spec"]["authentication"].as_sequence().unwrap();
    assert_eq!(methods.len(), 1);
    assert_eq!(methods[0]["name"], "ldap");
    let none = identity(&["--remove"]).run().success();
    assert_eq!(
        none.stdout,
        "GKE cluster `dev` has no Identity Service ClientConfig; nothing to do\n"
    );
}

/// `--name` and `--location` are required (exit 2, nothing run).
#[test]
fn identity_service_needs_name_and_location() {
    let cases: [(&[&str], &str); 2] = [
        (
            &["--location", "us-central1"],
            "error: missing --name: say which GKE cluster to patch, e.g. `--distro gke --identity-service --name dev --location us-central1`\n",
        ),
        (
            &["--name", "dev"],
            "error: missing --location: give the zone or region of GKE cluster `dev`, e.g. `--location us-central1` (`gcloud container clusters list` shows it)\n",
        ),
    ];
    for (extra, want) in cases {
        let out = Test::new()
            .fake("gcloud")
            .fake("kubectl")
            .args([
                "patch",
                "--distro",
                "gke",
                "--identity-service",
                "--skip-check",
            ])
            .args(extra)
            .args(prefixed())
            .run()
            .status(2);
        assert_eq!(out.stderr, want);
        assert!(out.calls().is_empty());
    }
}

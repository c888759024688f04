use super::*;
use crate::testutil::*;
use crate::Platform;

fn req() -> ClusterRequest {
    ClusterRequest {
        name: "dev".into(),
        staging_dir: "/home/me/.local/share/k8soidc/eks-dev".into(),
        extra_args: vec![],
        platform: Platform {
            region: Some("eu-west-1".into()),
            ..Platform::default()
        },
    }
}

fn described(status: &str, issuer: &str) -> Association {
    let mut a = Association::wanted(&with(|i| i.issuer_url = Some(issuer.into())), "k8soidc");
    a.status = status.into();
    a
}

#[test]
fn every_setting_is_mapped_into_the_request() {
    let s = with(|i| i.required_claim = vec!["hd=example.com".into(), "env=prod".into()]);
    assert_eq!(
        Association::wanted(&s, "k8soidc").request_json(),
        r#"{"identityProviderConfigName":"k8soidc","issuerUrl":"https://idp.example.com","clientId":"kubernetes","usernameClaim":"email","usernamePrefix":"oidc:","groupsClaim":"groups","groupsPrefix":"oidc:","requiredClaims":{"env":"prod","hd":"example.com"}}"#
    );
    let none = with(|i| {
        i.username_claim = None;
        i.username_prefix = Some("-".into());
        i.groups_claim = None;
        i.groups_prefix = None;
    });
    assert_eq!(
        Association::wanted(&none, "x").request_json(),
        r#"{"identityProviderConfigName":"x","issuerUrl":"https://idp.example.com","clientId":"kubernetes","usernameClaim":"sub","usernamePrefix":"-"}"#
    );
}

#[test]
fn eks_rules_are_refused_up_front() {
    let cases: Vec<(OidcSettings, &str)> = vec![
        (
            with(|i| {
                i.groups_prefix = Some("system:oidc:".into());
                i.allow_system_names = Some(true);
            }),
            "eks cannot carry --groups-prefix `system:oidc:`: EKS refuses a prefix containing `system:`",
        ),
        (
            with(|i| {
                i.username_prefix = Some("system:".into());
                i.allow_system_names = Some(true);
            }),
            "eks cannot carry --username-prefix `system:`",
        ),
        (
            with(|i| i.issuer_url = Some("https://127.0.0.1:8443".into())),
            "eks cannot carry --issuer-url `https://127.0.0.1:8443`: `127.0.0.1` is a loopback, private or link-local address; EKS fetches",
        ),
        (
            with(|i| i.issuer_url = Some("https://dex.auth.svc.cluster.local/dex".into())),
            "is in `.local`, a name for local networks",
        ),
        (
            with(|i| i.issuer_url = Some("https://10.0.0.7/realms/k8s".into())),
            "`10.0.0.7` is a loopback, private or link-local address",
        ),
        (
            with(|i| i.issuer_url = Some("https://keycloak:8443/realms/k8s".into())),
            "`keycloak` is not a public DNS name",
        ),
        (
            with(|i| i.signing_algs = Some("ES256".into())),
            "eks cannot carry --signing-algs `ES256`: the EKS association has no signing-algorithms field",
        ),
        (
            with(|i| {
                i.auth_mode = Some("config".into());
                i.kubernetes_version = Some("1.34".into());
            }),
            "eks cannot carry --auth-mode `config`",
        ),
        (
            with(|i| i.required_claim = vec![format!("{}=x", "k".repeat(64))]),
            "EKS takes required-claim keys of 1 to 63 characters",
        ),
    ];
    for (s, want) in cases {
        let err = check(&s).unwrap_err().to_string();
        assert!(err.contains(want), "{err}\nwanted: {want}");
        assert!(!err.contains('\n'));
        assert!(Eks.render(&s, &req()).is_err());
    }
    let mut with_ca = settings();
    with_ca.ca = Some(ca());
    let err = check(&with_ca).unwrap_err().to_string();
    assert!(
        err.starts_with("eks cannot carry --ca-file `/home/me/idp-ca.pem`: EKS has no CA option"),
        "{err}"
    );
    check(&with(|i| i.signing_algs = Some("RS256".into()))).unwrap();
    check(&with(|i| i.issuer_url = Some("https://8.8.8.8/x".into()))).unwrap();
}

#[test]
fn a_new_association_is_associated_then_awaited() {
    let plan = patch_plan(Some(&settings()), &req(), &[], 600)
        .unwrap()
        .unwrap();
    assert_eq!(
        plan.to_string(),
        r#"# set OIDC on EKS cluster `dev` (identity provider config `k8soidc`)

# associate OIDC identity provider config `k8soidc` with EKS cluster `dev`
+ aws eks associate-identity-provider-config --oidc '{"identityProviderConfigName":"k8soidc","issuerUrl":"https://idp.example.com","clientId":"kubernetes","usernameClaim":"email","usernamePrefix":"oidc:","groupsClaim":"groups","groupsPrefix":"oidc:"}' --cluster-name dev --region eu-west-1 --output json

# wait until `k8soidc` is ACTIVE (EKS takes tens of minutes)
+ aws eks describe-identity-provider-config --identity-provider-config type=oidc,name=k8soidc --cluster-name dev --region eu-west-1 --output json
#   again every 30s until `k8soidc` is ACTIVE, up to 10m (21 polls at most)
"#
    );
}

#[test]
fn the_same_active_association_is_left_alone_and_a_changed_one_replaced() {
    let same = described("ACTIVE", "https://idp.example.com");
    assert_eq!(
        patch_plan(Some(&settings()), &req(), &[same], 600).unwrap(),
        None
    );
    let creating = described("CREATING", "https://idp.example.com");
    let plan = patch_plan(Some(&settings()), &req(), &[creating], 600)
        .unwrap()
        .unwrap();
    assert_eq!(plan.steps.len(), 1, "{plan}");
    assert!(matches!(plan.steps[0], Step::Await { .. }));
    let old = described("ACTIVE", "https://old.example.com");
    let plan = patch_plan(Some(&settings()), &req(), &[old], 600)
        .unwrap()
        .unwrap();
    let whys: Vec<&str> = plan.steps.iter().map(Step::why).collect();
    assert_eq!(
        whys,
        [
            "disassociate the current `k8soidc` (issuer https://old.example.com)",
            "wait until EKS has removed the old `k8soidc`",
            "associate OIDC identity provider config `k8soidc` with EKS cluster `dev`",
            "wait until `k8soidc` is ACTIVE (EKS takes tens of minutes)",
        ]
    );
    assert!(plan.notes[0].contains("Update requires: Replacement"));
}

#[test]
fn a_second_provider_is_refused_and_remove_takes_only_ours() {
    let mut other = described("ACTIVE", "https://other.example.com");
    other.identity_provider_config_name = "corp".into();
    let err = patch_plan(Some(&settings()), &req(), std::slice::from_ref(&other), 600)
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("eks: cluster `dev` already has OIDC identity provider config `corp` (issuer https://other.example.com) and EKS allows one per cluster"), "{err}");
    let err = patch_plan(None, &req(), std::slice::from_ref(&other), 600)
        .unwrap_err()
        .to_string();
    assert!(err.contains("add `--idp-config-name corp`"), "{err}");
    assert_eq!(patch_plan(None, &req(), &[], 600).unwrap(), None);
    let ours = described("ACTIVE", "https://idp.example.com");
    let plan = patch_plan(None, &req(), &[ours], 600).unwrap().unwrap();
    assert_eq!(
        plan.to_string(),
        "# remove OIDC identity provider config `k8soidc` from EKS cluster `dev`

# disassociate identity provider config `k8soidc` from EKS cluster `dev`
+ aws eks disassociate-identity-provider-config --identity-provider-config type=oidc,name=k8soidc --cluster-name dev --region eu-west-1 --output json

# wait until EKS has removed `k8soidc` (OIDC logins stop working then)
+ aws eks list-identity-provider-configs --cluster-name dev --region eu-west-1 --output json
#   again every 30s until `k8soidc` is no longer listed, up to 10m (21 polls at most)
"
    );
}

#[test]
fn describe_and_list_outputs_are_read_and_bad_ones_refused() {
    let out = r#"{"identityProviderConfig":{"oidc":{"identityProviderConfigName":"k8soidc","issuerUrl":"https://idp.example.com","clientId":"kubernetes","usernameClaim":"email","usernamePrefix":"oidc:","groupsClaim":"groups","groupsPrefix":"oidc:","requiredClaims":{},"tags":{},"status":"CREATING"}}}"#;
    let a = parse_describe(out).unwrap();
    assert_eq!(a.status, "CREATING");
    assert!(a.same_settings(&Association::wanted(&settings(), "k8soidc")));
    assert_eq!(
        active_progress(out, "k8soidc").unwrap(),
        Progress::Pending("`k8soidc` is CREATING".into())
    );
    let deleting = out.replace("CREATING", "DELETING");
    assert!(active_progress(&deleting, "k8soidc")
        .unwrap_err()
        .to_string()
        .contains("its status is `DELETING` while k8soidc waits for ACTIVE"));
    assert_eq!(
        parse_list(r#"{"identityProviderConfigs":[{"type":"oidc","name":"a"}]}"#).unwrap(),
        ["a"]
    );
    assert_eq!(
        gone_progress(r#"{"identityProviderConfigs":[]}"#, "a").unwrap(),
        Progress::Done("`a` is disassociated".into())
    );
    for bad in ["", "null", "{\"x\":1}", "<html>"] {
        let e = parse_list(bad).unwrap_err().to_string();
        assert!(
            e.starts_with("cannot patch the output of `aws eks list-identity-provider-configs`"),
            "{e}"
        );
        assert!(parse_describe(bad).is_err());
    }
}

#[test]
fn eksctl_cluster_config_is_created_and_merged_keeping_other_lines() {
    let s = with(|i| i.required_claim = vec!["hd=example.com".into()]);
    assert_eq!(
        cluster_config(&s, &req()).unwrap(),
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
  requiredClaims:
    hd: example.com
"
    );
    let file = "# the dev cluster
apiVersion: eksctl.io/v1alpha5
kind: ClusterConfig

metadata:
  name: dev   # keep
  region: eu-west-1

nodeGroups:
  - name: ng-1
    instanceType: m5.large
";
    let merged = merge_cluster_config(file, Some(&settings()), "k8soidc").unwrap();
    assert_eq!(
        merged,
        format!("{file}identityProviders:\n- name: k8soidc\n  type: oidc\n  issuerURL: https://idp.example.com\n  clientID: kubernetes\n  usernameClaim: email\n  usernamePrefix: 'oidc:'\n  groupsClaim: groups\n  groupsPrefix: 'oidc:'\n")
    );
    assert_eq!(
        merge_cluster_config(&merged, Some(&settings()), "k8soidc").unwrap(),
        merged
    );
    let changed = merge_cluster_config(
        &merged,
        Some(&with(|i| i.client_id = Some("other".into()))),
        "k8soidc",
    )
    .unwrap();
    assert!(changed.contains("  clientID: other\n") && changed.starts_with(file));
    assert_eq!(
        merge_cluster_config(&merged, None, "k8soidc").unwrap(),
        file
    );
    assert_eq!(merge_cluster_config(file, None, "k8soidc").unwrap(), file);
    // A block in the middle keeps what follows.
    let middle = "apiVersion: eksctl.io/v1alpha5\nkind: ClusterConfig\nmetadata:\n  name: dev\nidentityProviders:\n  - name: k8soidc\n    type: oidc\n    issuerURL: https://old.example.com\n    clientID: k\n\n# nodes\nnodeGroups:\n- name: ng\n";
    let out = merge_cluster_config(middle, Some(&settings()), "k8soidc").unwrap();
    assert!(
        out.ends_with("  groupsPrefix: 'oidc:'\n\n# nodes\nnodeGroups:\n- name: ng\n"),
        "{out}"
    );
    let two = merged.replace("- name: k8soidc", "- name: corp");
    let e = merge_cluster_config(&two, Some(&settings()), "k8soidc")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("already has OIDC identity provider `corp` and EKS allows one per cluster"),
        "{e}"
    );
    let e = merge_cluster_config("kind: Cluster\n", Some(&settings()), "k8soidc")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("it is not an eksctl.io/v1alpha5 ClusterConfig"),
        "{e}"
    );
}

#[test]
fn create_needs_a_region_and_writes_the_config_before_eksctl_runs() {
    let mut r = req();
    r.platform.region = None;
    assert_eq!(
        Eks.create_plan(&settings(), &r).unwrap_err().to_string(),
        "missing --region: eksctl's ClusterConfig needs `metadata.region`; give the AWS region, e.g. `--region eu-west-1`"
    );
    let plan = Eks.create_plan(&settings(), &req()).unwrap();
    let text = plan.to_string();
    assert!(text.contains("+ write /home/me/.local/share/k8soidc/eks-dev/eksctl-config.yaml (mode 0644, new file):"), "{text}");
    assert!(
        text.ends_with(
            "+ eksctl create cluster -f /home/me/.local/share/k8soidc/eks-dev/eksctl-config.yaml\n"
        ),
        "{text}"
    );
}

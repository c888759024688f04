//! Azure AKS: structured authentication (JWT authenticators) is a preview, rendered only with
//! `--aks-preview`; without it, and for Entra ID issuers, a refusal naming the supported way.

use crate::test::{Test, SETTINGS};

#[test]
fn without_the_preview_flag_aks_is_refused_with_the_supported_way() {
    let out = Test::new()
        .args(["render", "--distro", "aks"])
        .args(SETTINGS)
        .run()
        .status(2);
    assert_eq!(
        out.stderr,
        "error: aks: AKS takes an external OIDC issuer only through structured authentication (JWT authenticators, `az aks jwtauthenticator`), which is a preview (opt-in, no SLA, the aks-preview CLI extension, Kubernetes 1.30+; https://learn.microsoft.com/azure/aks/external-identity-provider-authentication-configure); pass --aks-preview to render it anyway, or use the supported way: AKS-managed Microsoft Entra ID integration (`az aks update --resource-group RG --name CLUSTER --enable-aad`)\n"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn with_the_preview_flag_the_jwt_authenticator_is_rendered() {
    let out = Test::new()
        .args([
            "render",
            "--distro",
            "aks",
            "--aks-preview",
            "--name",
            "dev",
            "--resource-group",
            "rg1",
        ])
        .args(SETTINGS)
        .args(["--required-claim", "hd=example.com"])
        .run()
        .success();
    assert_eq!(
        out.stdout,
        r#"# aks: JWT authenticator (AKS structured authentication, PREVIEW)
# username prefix: `oidc:` (`--username-prefix oidc:` was given)
# groups prefix: `oidc:`
# a token with email="jane@example.com", groups=["k8s-admins"] becomes user "oidc:jane@example.com" in groups "oidc:k8s-admins", "system:authenticated"
# warning: PREVIEW: AKS structured authentication is an opt-in preview, not meant for production use (https://learn.microsoft.com/azure/aks/external-identity-provider-authentication-configure)
# warning: the groups mapping expects the groups claim to be a list (`.map`)

# with the aks-preview extension (`az extension add --name aks-preview`)
az aks jwtauthenticator add --resource-group rg1 --cluster-name dev --name k8soidc --config-file jwt-authenticator.json

# JWT authenticator (jwt-authenticator.json)
{
  "claimMappings": {
    "groups": {
      "expression": "claims.groups.map(g, 'oidc:' + g)"
    },
    "username": {
      "expression": "'oidc:' + claims.email"
    }
  },
  "claimValidationRules": [
    {
      "expression": "claims.hd == 'example.com'",
      "message": "the token's `hd` claim must be `example.com`"
    },
    {
      "expression": "claims.?email_verified.orValue(true) == true",
      "message": "the token's email is not verified"
    }
  ],
  "issuer": {
    "audiences": [
      "kubernetes"
    ],
    "url": "https://idp.example.com"
  }
}
"#
    );
}

#[test]
fn entra_id_as_the_issuer_is_refused() {
    let mut settings = SETTINGS.to_vec();
    settings[1] = "https://login.microsoftonline.com/0000-tenant/v2.0";
    let out = Test::new()
        .args(["render", "--distro", "aks", "--aks-preview"])
        .args(settings)
        .run()
        .status(2);
    assert!(
        out.stderr.starts_with("error: aks: Microsoft Entra ID (`https://login.microsoftonline.com/0000-tenant/v2.0`) is not supported as an external issuer of AKS structured authentication"),
        "{}",
        out.stderr
    );
}

fn patch() -> Vec<&'static str> {
    [
        &[
            "patch",
            "--distro",
            "aks",
            "--aks-preview",
            "--name",
            "dev",
            "--resource-group",
            "rg1",
            "--skip-check",
        ][..],
        &SETTINGS,
    ]
    .concat()
}

const CLUSTER: &str = r#"{"resourceGroup": "rg1", "authenticators": {}}"#;

fn verbs(calls: &[Vec<String>]) -> Vec<String> {
    calls.iter().map(|c| c[3].clone()).collect()
}

#[test]
fn patch_adds_the_authenticator_then_has_nothing_to_do() {
    let dry = Test::new()
        .fake("az")
        .write("fake-state/az/dev.json", CLUSTER)
        .args(patch())
        .args(["--dry-run"])
        .run()
        .success();
    let file = dry.root.join("data/k8soidc/aks-dev/jwt-authenticator.json");
    assert!(
        dry.stdout.starts_with("# set OIDC on AKS cluster `dev` (JWT authenticator `k8soidc`, PREVIEW)\n# note: PREVIEW: AKS structured authentication is an opt-in preview"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.ends_with(&format!(
            "+ az aks jwtauthenticator add --resource-group rg1 --cluster-name dev --name k8soidc --config-file {}\n",
            file.display()
        )),
        "{}",
        dry.stdout
    );
    assert_eq!(verbs(&dry.calls()), ["list"]);
    assert!(!file.exists());
    let out = Test::new()
        .fake("az")
        .write("fake-state/az/dev.json", CLUSTER)
        .args(patch())
        .args(["--yes"])
        .run()
        .success();
    assert_eq!(verbs(&out.calls()), ["list", "add"]);
    assert!(
        out.stderr
            .ends_with("AKS cluster `dev`: JWT authenticator `k8soidc` set\n"),
        "{}",
        out.stderr
    );
    let state = out.file("fake-state/az/dev.json");
    assert!(state.contains("'oidc:' + claims.email"), "{state}");
    let again = Test::new()
        .fake("az")
        .write("fake-state/az/dev.json", &state)
        .args(patch())
        .args(["--yes"])
        .run()
        .success();
    assert_eq!(
        again.stdout,
        "AKS cluster `dev` already has JWT authenticator `k8soidc` with these settings; nothing to do\n"
    );
    assert_eq!(verbs(&again.calls()), ["list"]);
    // Changed settings: update; --remove: delete.
    let mut changed = patch();
    let i = changed.iter().position(|a| *a == "kubernetes").unwrap();
    changed[i] = "other";
    let updated = Test::new()
        .fake("az")
        .write("fake-state/az/dev.json", &state)
        .args(changed)
        .args(["--yes"])
        .run()
        .success();
    assert_eq!(verbs(&updated.calls()), ["list", "update"]);
    let removed = Test::new()
        .fake("az")
        .write("fake-state/az/dev.json", &state)
        .args([
            "patch",
            "--distro",
            "aks",
            "--aks-preview",
            "--name",
            "dev",
            "--resource-group",
            "rg1",
            "--remove",
            "--yes",
        ])
        .run()
        .success();
    assert_eq!(verbs(&removed.calls()), ["list", "delete"]);
    assert!(removed
        .file("fake-state/az/dev.json")
        .contains("\"authenticators\": {}"));
}

#[test]
fn patch_is_refused_before_az_runs_without_the_preview_flag_or_resource_group() {
    let mut no_flag = patch();
    no_flag.retain(|a| *a != "--aks-preview");
    let out = Test::new().fake("az").args(no_flag).run().status(2);
    assert!(
        out.stderr.starts_with(
            "error: aks: AKS takes an external OIDC issuer only through structured authentication"
        ),
        "{}",
        out.stderr
    );
    assert!(out.calls().is_empty());
    let out = Test::new()
        .fake("az")
        .args([
            "patch",
            "--distro",
            "aks",
            "--aks-preview",
            "--name",
            "dev",
            "--skip-check",
        ])
        .args(SETTINGS)
        .run()
        .status(2);
    assert!(
        out.stderr.starts_with("error: missing --resource-group"),
        "{}",
        out.stderr
    );
    assert!(out.calls().is_empty());
    // Without the aks-preview extension, az's own error is shown.
    let out = Test::new()
        .fake("az")
        .write("fake-state/az/dev.json", CLUSTER)
        .env("FAKE_AZ_NO_PREVIEW", "1")
        .args(patch())
        .args(["--yes"])
        .run()
        .status(1);
    assert!(
        out.stderr
            .contains("'jwtauthenticator' is misspelled or not recognized"),
        "{}",
        out.stderr
    );
}

#[test]
fn create_says_how_aks_clusters_are_made() {
    let out = Test::new()
        .args(["create", "--distro", "aks", "--skip-check"])
        .args(SETTINGS)
        .run()
        .status(2);
    assert_eq!(
        out.stderr,
        "error: aks: k8soidc does not create aks clusters; create the cluster with `az aks create` (Kubernetes 1.30 or later), then `k8soidc patch --distro aks --aks-preview --name NAME --resource-group RG`\n"
    );
}

#[test]
fn patch_file_on_a_jwt_authenticator_keeps_what_k8soidc_does_not_write() {
    let file = r#"{
  "issuer": { "url": "https://old.example.com", "audiences": ["old"] },
  "claimMappings": {
    "username": { "expression": "claims.sub" },
    "extra": [ { "key": "example.com/team", "valueExpression": "claims.team" } ]
  },
  "userValidationRules": [ { "expression": "!user.username.startsWith('system:')", "message": "no system users" } ]
}
"#;
    let out = Test::new()
        .write("jwt.json", file)
        .args(["patch", "--file", "jwt.json"])
        .args(SETTINGS)
        .run()
        .success();
    assert_eq!(
        out.stderr,
        "jwt.json: detected --file-kind aks-jwt-authenticator\n"
    );
    assert_eq!(
        out.stdout,
        r#"{
  "claimMappings": {
    "extra": [
      {
        "key": "example.com/team",
        "valueExpression": "claims.team"
      }
    ],
    "groups": {
      "expression": "claims.groups.map(g, 'oidc:' + g)"
    },
    "username": {
      "expression": "'oidc:' + claims.email"
    }
  },
  "claimValidationRules": [
    {
      "expression": "claims.?email_verified.orValue(true) == true",
      "message": "the token's email is not verified"
    }
  ],
  "issuer": {
    "audiences": [
      "kubernetes"
    ],
    "url": "https://idp.example.com"
  },
  "userValidationRules": [
    {
      "expression": "!user.username.startsWith('system:')",
      "message": "no system users"
    }
  ]
}
"#
    );
    let again = Test::new()
        .write("jwt.json", &out.stdout)
        .args(["patch", "--file", "jwt.json", "--dry-run"])
        .args(SETTINGS)
        .run()
        .success();
    assert_eq!(again.stdout, "", "already configured: no diff");
    let removed = Test::new()
        .write("jwt.json", file)
        .args(["patch", "--file", "jwt.json", "--remove"])
        .run()
        .status(2);
    assert!(
        removed.stderr.contains("delete the authenticator instead"),
        "{}",
        removed.stderr
    );
}

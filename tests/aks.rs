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

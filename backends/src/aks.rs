//! Azure AKS: the provider runs the API server. AKS takes external OIDC providers only through
//! *structured authentication*, JWT authenticators managed with `az aks jwtauthenticator add
//! --resource-group RG --cluster-name C --name N --config-file FILE`, which is a **preview**:
//! "AKS preview features are available on a self-service, opt-in basis … aren't meant for
//! production use"; it needs the `aks-preview` Azure CLI extension 18.0.0b41 or later and
//! Kubernetes 1.30 or later (https://learn.microsoft.com/azure/aks/external-identity-provider-authentication-configure,
//! https://learn.microsoft.com/cli/azure/aks/jwtauthenticator). So k8soidc renders it only
//! behind `--aks-preview`, a flag that says so; without it, a refusal names the supported way,
//! AKS-managed Microsoft Entra ID integration.
//!
//! Facts this module relies on:
//! - The config file holds the properties of a JWT authenticator: `issuer` (`url`,
//!   `audiences`), `claimValidationRules` (`expression`, `message`), `claimMappings`
//!   (`username`, `groups`, `uid` as `{expression}`, `extra`), `userValidationRules`
//!   (Microsoft.ContainerService managedClusters/jwtAuthenticators, API 2025-07-02-preview and
//!   later). There is no CA field (so `--ca-file` is refused) and mappings are CEL expressions
//!   only, so the prefixes are written into the expressions.
//! - "Microsoft Entra ID isn't supported as an external identity provider through structured
//!   authentication" (AKS overview page): an Entra issuer is refused with the supported way.
//! - Authenticator names: `^[a-z][a-z0-9]{0,23}$` (same API).
//! - kube-apiserver requires `claims.email_verified` to be checked when a mapping uses
//!   `claims.email` (AuthenticationConfiguration validation); the rule k8soidc adds accepts a
//!   missing `email_verified` as the `--oidc-*` flags do.

use serde_json::{json, Value};

use crate::{
    AuthMode, Backend, ClusterRequest, Command, Distribution, KubeVersion, OidcSettings, PlanError,
    Rendering,
};

/// Microsoft's page for AKS structured authentication (preview).
pub const DOCS: &str =
    "https://learn.microsoft.com/azure/aks/external-identity-provider-authentication-configure";
/// The JWT authenticator's name.
pub const AUTHENTICATOR: &str = "k8soidc";

/// The AKS backend.
#[derive(Debug, Clone, Copy)]
pub struct Aks;

fn unsupported(message: String) -> PlanError {
    PlanError::Unsupported {
        distribution: Distribution::Aks,
        message,
    }
}

/// The refusal without `--aks-preview`.
pub fn preview_refusal() -> PlanError {
    unsupported(format!(
        "AKS takes an external OIDC issuer only through structured authentication (JWT authenticators, `az aks jwtauthenticator`), which is a preview (opt-in, no SLA, the aks-preview CLI extension, Kubernetes 1.30+; {DOCS}); pass --aks-preview to render it anyway, or use the supported way: AKS-managed Microsoft Entra ID integration (`az aks update --resource-group RG --name CLUSTER --enable-aad`)"
    ))
}

fn check(s: &OidcSettings) -> Result<(), PlanError> {
    if s.structured.is_some() {
        return Err(PlanError::unrepresentable(
            Distribution::Aks,
            "jwt",
            "(settings file)",
            "k8soidc writes one AKS JWT authenticator from the single-issuer settings; the settings file's `jwt`/`anonymous` sections are not mapped to AKS yet",
            "give one issuer with the single-issuer settings (--issuer-url, --client-id, ...)",
        ));
    }
    if s.auth_mode == AuthMode::Flags {
        return Err(PlanError::unrepresentable(
            Distribution::Aks,
            "--auth-mode",
            "flags",
            "AKS takes no --oidc-* flags; its JWT authenticators are structured authentication",
            "leave --auth-mode out (or use `config`)",
        ));
    }
    if let Some(v) = s
        .kubernetes_version
        .filter(|v| *v < KubeVersion::new(1, 30))
    {
        return Err(PlanError::unrepresentable(
            Distribution::Aks,
            "--kubernetes-version",
            v.to_string(),
            "AKS JWT authenticators need Kubernetes 1.30 or later",
            "upgrade the cluster first (`az aks upgrade`)",
        ));
    }
    if let Some(ca) = &s.ca {
        return Err(PlanError::unrepresentable(
            Distribution::Aks,
            "--ca-file",
            &ca.local_path,
            "an AKS JWT authenticator's issuer has a URL and audiences, no CA",
            "give the provider a publicly trusted certificate and leave --ca-file out",
        ));
    }
    let host = crate::eks::issuer_host(&s.issuer_url).to_ascii_lowercase();
    if host == "login.microsoftonline.com" || host == "sts.windows.net" {
        return Err(unsupported(format!(
            "Microsoft Entra ID (`{}`) is not supported as an external issuer of AKS structured authentication ({DOCS}); use AKS-managed Entra ID integration (`az aks update --enable-aad`) for Entra users",
            s.issuer_url
        )));
    }
    Ok(())
}

/// A CEL string literal.
fn cel(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `claims.NAME`, or `claims['NAME']` when NAME is not a CEL identifier.
fn claim(name: &str) -> String {
    let ident = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ident {
        format!("claims.{name}")
    } else {
        format!("claims[{}]", cel(name))
    }
}

/// The JWT authenticator's properties (the `--config-file` JSON).
pub fn authenticator_config(s: &OidcSettings) -> Result<String, PlanError> {
    check(s)?;
    let uprefix = s.effective_username_prefix();
    let username = if uprefix.is_empty() {
        claim(&s.username_claim)
    } else {
        format!("{} + {}", cel(&uprefix), claim(&s.username_claim))
    };
    let mut rules: Vec<Value> = s
        .required_claims
        .iter()
        .map(|(k, v)| {
            json!({
                "expression": format!("{} == {}", claim(k), cel(v)),
                "message": format!("the token's `{k}` claim must be `{v}`"),
            })
        })
        .collect();
    if s.username_claim == "email" {
        rules.push(json!({
            "expression": "claims.?email_verified.orValue(true) == true",
            "message": "the token's email is not verified",
        }));
    }
    let mut mappings = json!({ "username": { "expression": username } });
    if let Some(g) = &s.groups_claim {
        let gprefix = s.effective_groups_prefix();
        let expr = if gprefix.is_empty() {
            claim(g)
        } else {
            format!("{}.map(g, {} + g)", claim(g), cel(&gprefix))
        };
        mappings["groups"] = json!({ "expression": expr });
    }
    let mut config = json!({
        "issuer": { "url": s.issuer_url, "audiences": [s.client_id] },
        "claimMappings": mappings,
    });
    if !rules.is_empty() {
        config["claimValidationRules"] = Value::Array(rules);
    }
    Ok(serde_json::to_string_pretty(&config).expect("plain JSON") + "\n")
}

impl Backend for Aks {
    fn distribution(&self) -> Distribution {
        Distribution::Aks
    }

    fn render(&self, s: &OidcSettings, req: &ClusterRequest) -> Result<Rendering, PlanError> {
        if !req.platform.aks_preview {
            return Err(preview_refusal());
        }
        let config = authenticator_config(s)?;
        let mut r = Rendering::new(Distribution::Aks, s)?;
        r.via = Some("JWT authenticator (AKS structured authentication, PREVIEW)".into());
        r.warnings = s.warnings.clone();
        r.warnings.push(format!(
            "PREVIEW: AKS structured authentication is an opt-in preview, not meant for production use ({DOCS})"
        ));
        if s.groups_claim.is_some() && !s.effective_groups_prefix().is_empty() {
            r.warnings
                .push("the groups mapping expects the groups claim to be a list (`.map`)".into());
        }
        let rg = req
            .platform
            .resource_group
            .as_deref()
            .unwrap_or("RESOURCE_GROUP");
        let add = Command::new(
            "az",
            [
                "aks",
                "jwtauthenticator",
                "add",
                "--resource-group",
                rg,
                "--cluster-name",
                &req.name,
                "--name",
                AUTHENTICATOR,
                "--config-file",
                "jwt-authenticator.json",
            ],
        );
        r.push(
            "with the aks-preview extension (`az extension add --name aks-preview`)",
            None,
            "shell",
            format!("{}\n", add.to_shell()),
        );
        r.push(
            "JWT authenticator",
            Some("jwt-authenticator.json".into()),
            "json",
            config,
        );
        Ok(r)
    }
}

fn az(req: &ClusterRequest, verb: &str, rg: &str, extra: &[&str]) -> Command {
    let mut args = vec![
        "aks".to_string(),
        "jwtauthenticator".into(),
        verb.into(),
        "--resource-group".into(),
        rg.to_string(),
        "--cluster-name".into(),
        req.name.clone(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    Command::new("az", args)
}

fn resource_group(req: &ClusterRequest) -> Result<&str, PlanError> {
    req.platform
        .resource_group
        .as_deref()
        .ok_or_else(|| PlanError::MissingSetting {
            field: "--resource-group",
            fix: "give the AKS cluster's resource group, e.g. `--resource-group rg1`".into(),
        })
}

/// `az aks jwtauthenticator list` of the cluster.
pub fn list(req: &ClusterRequest) -> Result<Command, PlanError> {
    Ok(az(req, "list", resource_group(req)?, &["--output", "json"]))
}

/// The properties of authenticator [`AUTHENTICATOR`] in `az aks jwtauthenticator list`'s
/// output (its `provisioningState` left out), or None.
pub fn parse_list(output: &str) -> Result<Option<Value>, PlanError> {
    let bad = |why: String| {
        PlanError::patch(
            "the output of `az aks jwtauthenticator list`",
            format!("it is not what the AKS API returns ({why})"),
            "check the aks-preview extension (`az extension show --name aks-preview`) and run the command by hand",
        )
    };
    let v: Value = serde_json::from_str(output).map_err(|e| bad(format!("not JSON: {e}")))?;
    let items = v.as_array().ok_or_else(|| bad("not a list".into()))?;
    Ok(items
        .iter()
        .find(|i| i.get("name").and_then(Value::as_str) == Some(AUTHENTICATOR))
        .map(|i| {
            let mut p = i.get("properties").cloned().unwrap_or(Value::Null);
            if let Some(o) = p.as_object_mut() {
                o.remove("provisioningState");
            }
            p
        }))
}

/// The plan that brings the cluster's authenticator to the settings (`None`: delete it), from
/// what `list` showed. The config file goes to the staging directory first. `Ok(None)`:
/// nothing to do.
pub fn patch_plan(
    s: Option<&OidcSettings>,
    req: &ClusterRequest,
    current: Option<&Value>,
) -> Result<Option<crate::Plan>, PlanError> {
    use crate::{Step, Target};
    if !req.platform.aks_preview {
        return Err(preview_refusal());
    }
    let rg = resource_group(req)?;
    let cluster = &req.name;
    let Some(s) = s else {
        return Ok(current.map(|_| crate::Plan {
            title: format!(
                "remove JWT authenticator `{AUTHENTICATOR}` from AKS cluster `{cluster}`"
            ),
            notes: vec![],
            steps: vec![Step::run(
                az(req, "delete", rg, &["--name", AUTHENTICATOR, "--yes"]),
                format!(
                    "delete JWT authenticator `{AUTHENTICATOR}` (its users can no longer log in)"
                ),
            )],
        }));
    };
    let config = authenticator_config(s)?;
    let wanted: Value = serde_json::from_str(&config).expect("rendered JSON parses");
    if current == Some(&wanted) {
        return Ok(None);
    }
    let file = format!("{}/jwt-authenticator.json", req.staging_dir);
    let verb = if current.is_some() { "update" } else { "add" };
    Ok(Some(crate::Plan {
        title: format!("set OIDC on AKS cluster `{cluster}` (JWT authenticator `{AUTHENTICATOR}`, PREVIEW)"),
        notes: vec![format!(
            "PREVIEW: AKS structured authentication is an opt-in preview, not meant for production use ({DOCS})"
        )],
        steps: vec![
            Step::WriteFile {
                on: Target::Local,
                path: file.clone(),
                before: None,
                after: config,
                mode: 0o644,
                why: "write the JWT authenticator's configuration".into(),
            },
            Step::run(
                az(req, verb, rg, &["--name", AUTHENTICATOR, "--config-file", &file]),
                format!("{verb} JWT authenticator `{AUTHENTICATOR}` on AKS cluster `{cluster}` (the Azure CLI waits until it is applied)"),
            ),
        ],
    }))
}

/// `patch --file` on a JWT authenticator configuration (the `--config-file` JSON): sets the
/// issuer, the username and groups mappings and the validation rules from the settings, and
/// keeps what k8soidc does not write (`claimMappings.uid`/`extra`, `userValidationRules`).
/// Removing OIDC from such a file would leave nothing: refused, naming the command that
/// deletes the authenticator.
pub fn merge_authenticator_file(text: &str, s: Option<&OidcSettings>) -> Result<String, PlanError> {
    let Some(s) = s else {
        return Err(PlanError::patch(
            "the JWT authenticator file",
            "it holds nothing but the OIDC settings, so --remove would leave an empty authenticator",
            format!("delete the authenticator instead: `az aks jwtauthenticator delete --name {AUTHENTICATOR} ...` or `k8soidc patch --distro aks --remove`"),
        ));
    };
    let mut current: Value = serde_json::from_str(text).map_err(|e| {
        PlanError::patch(
            "the JWT authenticator file",
            format!("it is not JSON ({e})"),
            "give the file `az aks jwtauthenticator add --config-file` takes",
        )
    })?;
    let Some(obj) = current.as_object_mut() else {
        return Err(PlanError::patch(
            "the JWT authenticator file",
            "it is not a JSON object",
            "give the file `az aks jwtauthenticator add --config-file` takes",
        ));
    };
    let wanted: Value =
        serde_json::from_str(&authenticator_config(s)?).expect("rendered JSON parses");
    obj.insert("issuer".into(), wanted["issuer"].clone());
    match wanted.get("claimValidationRules") {
        Some(r) => obj.insert("claimValidationRules".into(), r.clone()),
        None => obj.remove("claimValidationRules"),
    };
    let mappings = obj.entry("claimMappings").or_insert_with(|| json!({}));
    let Some(m) = mappings.as_object_mut() else {
        return Err(PlanError::patch(
            "the JWT authenticator file",
            "`claimMappings` is not an object",
            "fix the file by hand",
        ));
    };
    m.insert(
        "username".into(),
        wanted["claimMappings"]["username"].clone(),
    );
    match wanted["claimMappings"].get("groups") {
        Some(g) => m.insert("groups".into(), g.clone()),
        None => m.remove("groups"),
    };
    let out = serde_json::to_string_pretty(&current).expect("plain JSON") + "\n";
    let unchanged = serde_json::from_str::<Value>(text).ok() == serde_json::from_str(&out).ok();
    Ok(if unchanged { text.to_string() } else { out })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn prefixes_and_required_claims_become_cel() {
        let s = with(|i| i.required_claim = vec!["hd=example.com".into()]);
        assert_eq!(
            authenticator_config(&s).unwrap(),
            r#"{
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
    fn entra_flags_mode_old_clusters_and_a_ca_are_refused() {
        let entra =
            with(|i| i.issuer_url = Some("https://login.microsoftonline.com/tid/v2.0".into()));
        assert!(authenticator_config(&entra)
            .unwrap_err()
            .to_string()
            .contains(
            "Microsoft Entra ID (`https://login.microsoftonline.com/tid/v2.0`) is not supported"
        ));
        let old = with(|i| i.kubernetes_version = Some("1.29".into()));
        assert!(authenticator_config(&old)
            .unwrap_err()
            .to_string()
            .contains("need Kubernetes 1.30 or later"));
        let mut with_ca = settings();
        with_ca.ca = Some(ca());
        assert!(authenticator_config(&with_ca).is_err());
    }
}

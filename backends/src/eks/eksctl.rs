//! eksctl's `ClusterConfig` (`eksctl.io/v1alpha5`): the `identityProviders` entry k8soidc
//! writes for `create` and merges for `patch --file`. Fields and order from eksctl
//! `pkg/apis/eksctl.io/v1alpha5/identity_provider.go` (`OIDCIdentityProvider`, `type: oidc`
//! next to them); `metadata.name` and `metadata.region` from `types.go` (`ClusterMeta`).

use serde_yaml_ng::{Mapping, Value};

use super::{check, config_name, Association, GUIDE};
use crate::yamlout as yaml;
use crate::yamltext;
use crate::{ClusterRequest, Distribution, OidcSettings, PlanError};

/// eksctl's `identityProviders` entry for the settings, keys in eksctl's field order.
fn eksctl_entry(s: &OidcSettings, name: &str) -> Value {
    let a = Association::wanted(s, name);
    let mut m = Mapping::new();
    m.insert("name".into(), name.into());
    m.insert("type".into(), "oidc".into());
    m.insert("issuerURL".into(), a.issuer_url.into());
    m.insert("clientID".into(), a.client_id.into());
    m.insert("usernameClaim".into(), a.username_claim.into());
    m.insert("usernamePrefix".into(), a.username_prefix.into());
    if let Some(c) = a.groups_claim {
        m.insert("groupsClaim".into(), c.into());
    }
    if let Some(p) = a.groups_prefix {
        m.insert("groupsPrefix".into(), p.into());
    }
    if !a.required_claims.is_empty() {
        let claims: Mapping = a
            .required_claims
            .into_iter()
            .map(|(k, v)| (Value::from(k), Value::from(v)))
            .collect();
        m.insert("requiredClaims".into(), Value::Mapping(claims));
    }
    Value::Mapping(m)
}

fn to_yaml(v: &Value) -> String {
    yaml::to_string(v).expect("untagged values always serialise")
}

/// The `identityProviders:` block of an eksctl ClusterConfig.
pub fn eksctl_snippet(s: &OidcSettings, name: &str) -> String {
    let mut root = Mapping::new();
    root.insert(
        "identityProviders".into(),
        Value::Sequence(vec![eksctl_entry(s, name)]),
    );
    to_yaml(&Value::Mapping(root))
}

/// A whole eksctl ClusterConfig for `eksctl create cluster -f`.
pub fn cluster_config(s: &OidcSettings, req: &ClusterRequest) -> Result<String, PlanError> {
    let Some(region) = &req.platform.region else {
        return Err(PlanError::MissingSetting {
            field: "--region",
            fix: "eksctl's ClusterConfig needs `metadata.region`; give the AWS region, e.g. `--region eu-west-1`".into(),
        });
    };
    let mut meta = Mapping::new();
    meta.insert("name".into(), req.name.clone().into());
    meta.insert("region".into(), region.clone().into());
    let mut root = Mapping::new();
    root.insert("apiVersion".into(), "eksctl.io/v1alpha5".into());
    root.insert("kind".into(), "ClusterConfig".into());
    root.insert("metadata".into(), Value::Mapping(meta));
    root.insert(
        "identityProviders".into(),
        Value::Sequence(vec![eksctl_entry(s, config_name(req))]),
    );
    Ok(to_yaml(&Value::Mapping(root)))
}

fn refuse_file(reason: impl Into<String>) -> PlanError {
    PlanError::patch(
        "the eksctl ClusterConfig",
        reason,
        "give an `apiVersion: eksctl.io/v1alpha5`, `kind: ClusterConfig` file (one document)",
    )
}

/// Sets (or, with `s` = `None`, removes) k8soidc's entry `name` in the `identityProviders` of
/// an eksctl ClusterConfig. Only the `identityProviders` block is rewritten; every other line
/// (comments included) is kept byte for byte, and the result is parsed back to check that
/// nothing else changed. Refuses a second OIDC entry under another name (one per cluster).
pub fn merge_cluster_config(
    text: &str,
    s: Option<&OidcSettings>,
    name: &str,
) -> Result<String, PlanError> {
    if let Some(s) = s {
        check(s)?;
    }
    let doc: Value = serde_yaml_ng::from_str(text)
        .map_err(|e| refuse_file(format!("it is not one valid YAML document ({e})")))?;
    let Value::Mapping(root) = &doc else {
        return Err(refuse_file("it is not a mapping"));
    };
    if root.get("apiVersion").and_then(Value::as_str) != Some("eksctl.io/v1alpha5")
        || root.get("kind").and_then(Value::as_str) != Some("ClusterConfig")
    {
        return Err(refuse_file("it is not an eksctl.io/v1alpha5 ClusterConfig"));
    }
    let mut items = match root.get("identityProviders") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(items)) => items.clone(),
        Some(_) => return Err(refuse_file("`identityProviders` is not a list")),
    };
    let entry_name = |v: &Value| v.get("name").and_then(Value::as_str).map(str::to_string);
    if s.is_some() {
        if let Some(other) = items
            .iter()
            .filter(|i| i.get("type").and_then(Value::as_str) == Some("oidc"))
            .filter_map(entry_name)
            .find(|n| n != name)
        {
            return Err(PlanError::Unsupported {
                distribution: Distribution::Eks,
                message: format!("the ClusterConfig already has OIDC identity provider `{other}` and EKS allows one per cluster ({GUIDE}); remove that entry, or pass `--idp-config-name {other}` to replace it"),
            });
        }
    }
    let position = items
        .iter()
        .position(|i| entry_name(i).as_deref() == Some(name));
    match (s, position) {
        (Some(s), Some(i)) => items[i] = eksctl_entry(s, name),
        (Some(s), None) => items.push(eksctl_entry(s, name)),
        (None, Some(i)) => {
            items.remove(i);
        }
        (None, None) => return Ok(text.to_string()),
    }
    let block = if items.is_empty() {
        String::new()
    } else {
        let mut m = Mapping::new();
        m.insert("identityProviders".into(), Value::Sequence(items));
        to_yaml(&Value::Mapping(m))
    };
    let out = replace_top_level_block(text, "identityProviders", &block);
    // Nothing but identityProviders may differ.
    let after = yamltext::parse_one(&out)
        .map_err(|e| refuse_file(format!("the edit would not parse back ({e})")))?;
    if !after.is_mapping() {
        return Err(refuse_file("the edit would not parse back as a mapping"));
    }
    if !yamltext::same_except(&doc, &after, &[&["identityProviders"]]) {
        return Err(refuse_file(
            "its `identityProviders` block could not be replaced without touching other keys (an unusual layout)",
        ));
    }
    Ok(out)
}

/// Replaces the top-level `key:` block (the key's line and every following indented, list or
/// blank line, trailing blank lines excluded) with `block`, or appends `block` when absent.
fn replace_top_level_block(text: &str, key: &str, block: &str) -> String {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let is_key = |l: &str| {
        l.strip_prefix(key)
            .is_some_and(|r| r.trim_start().starts_with(':'))
    };
    let Some(start) = lines.iter().position(|l| is_key(l)) else {
        let mut out = text.to_string();
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(block);
        return out;
    };
    let mut end = start + 1;
    while end < lines.len() {
        let l = lines[end];
        if l.trim().is_empty() || l.starts_with([' ', '\t', '-']) {
            end += 1;
        } else {
            break;
        }
    }
    while end > start + 1 && lines[end - 1].trim().is_empty() {
        end -= 1;
    }
    let mut out: String = lines[..start].concat();
    out.push_str(block);
    out.push_str(&lines[end..].concat());
    out
}

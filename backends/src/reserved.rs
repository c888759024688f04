//! Reserved names: k8soidc's policy (not kube-apiserver's: the API server accepts all of
//! these) is to refuse, unless `--allow-system-names` is given, any username or groups
//! mapping that lets a token claim a name starting with `system:`. Those names are the
//! cluster's own: the group `system:masters` is cluster-admin and bypasses RBAC, users such
//! as `system:kube-controller-manager` hold powerful bindings. An IdP group `masters` under
//! `--groups-prefix system:` becomes `system:masters`; with no groups prefix, a group anyone
//! can create in the IdP named `system:masters` does the same.
//!
//! A mapping is safe when its prefix cannot start a `system:` name (a non-empty prefix that
//! is neither `system:…` nor a beginning of `system:`, e.g. `oidc:`), when the username is
//! the `email` claim (kube-apiserver requires `email_verified`, and an address is not a
//! `system:` name) or `sub` (an identifier the IdP assigns, not one users choose), or, for a
//! CEL mapping, when a `userValidationRules` expression refuses
//! `system:` names (as the Kubernetes documentation's own example does).

use crate::authn::{JwtAuthenticator, PrefixedClaimOrExpression};
use crate::{OidcSettings, PlanError};

const SYSTEM: &str = "system:";

/// The policy statement every refusal carries.
const POLICY: &str = "k8soidc's policy, not a kube-apiserver rule: names starting with `system:` are the cluster's own (group `system:masters` is cluster-admin)";

/// Whether names built as `prefix + value` can start with `system:` for some value.
pub fn prefix_reaches_system(prefix: &str) -> bool {
    prefix.starts_with(SYSTEM) || SYSTEM.starts_with(prefix)
}

/// Whether one of `a`'s user validation rules refuses `system:` names for `what`
/// (`username` or `groups`): it reads `user.<what>`, names `system:` and negates.
fn has_system_rule(a: &JwtAuthenticator, what: &str) -> bool {
    let field = format!("user.{what}");
    a.user_validation_rules.iter().any(|r| {
        r.expression.contains(SYSTEM) && r.expression.contains('!') && r.expression.contains(&field)
    })
}

/// The rule the Kubernetes documentation proposes, for a fix.
pub const SAFE_RULE: &str = "userValidationRules: [{expression: \"!user.username.startsWith('system:')\", message: \"username cannot use reserved system: prefix\"}, {expression: \"user.groups.all(group, !group.startsWith('system:'))\", message: \"groups cannot use reserved system: prefix\"}]";

/// Why a mapping of `what` (`username`/`groups`) is unsafe, or None.
fn unsafe_mapping(
    m: &PrefixedClaimOrExpression,
    what: &str,
    a: &JwtAuthenticator,
) -> Option<String> {
    if has_system_rule(a, what) {
        return None;
    }
    if let Some(e) = m.expression.as_deref().filter(|e| !e.is_empty()) {
        return Some(format!(
            "the {what} expression `{}` can yield a `system:` name and no userValidationRules expression refuses one",
            crate::escape(e)
        ));
    }
    let claim = m.claim.as_deref().filter(|c| !c.is_empty())?;
    let prefix = m.prefix.as_deref().unwrap_or_default();
    if what == "username" && prefix.is_empty() && (claim == "email" || claim == "sub") {
        return None;
    }
    if !prefix_reaches_system(prefix) {
        return None;
    }
    Some(if prefix.is_empty() {
        match what {
            "groups" => format!("with no groups prefix, an IdP group named `system:masters` in claim `{claim}` makes its members cluster-admin"),
            _ => format!("with no username prefix, a token whose `{claim}` is `system:kube-controller-manager` acts as the controller manager"),
        }
    } else {
        match what {
            "groups" => format!(
                "an IdP group `masters` would become `{prefix}masters`{}",
                if format!("{prefix}masters") == "system:masters" {
                    " (cluster-admin)"
                } else {
                    ""
                }
            ),
            _ => format!(
                "a token's `{claim}` is prefixed with `{prefix}`, so it can name a `system:` user"
            ),
        }
    })
}

/// The line every render and plan shows when `--allow-system-names` was given.
pub fn override_note(s: &OidcSettings) -> Option<String> {
    s.allow_system_names.then(|| "--allow-system-names: prefixes that let a token claim a `system:` name are accepted (k8soidc refuses them by default; group `system:masters` is cluster-admin)".to_string())
}

/// Refuses settings that let a token claim a `system:` name, unless allowed.
pub fn check(s: &OidcSettings) -> Result<(), PlanError> {
    if s.allow_system_names {
        return Ok(());
    }
    let fix_flags = "set a prefix such as `oidc:`, or pass `--allow-system-names` to accept it";
    match &s.structured {
        None => {
            let a = crate::authn::from_flags(s);
            let m = &a.claim_mappings;
            if let Some(why) = unsafe_mapping(&m.username, "username", &a) {
                return Err(PlanError::invalid(
                    "--username-prefix",
                    s.username_prefix_flag(),
                    format!("{why}; {POLICY}"),
                    fix_flags,
                ));
            }
            if let Some(why) = m
                .groups
                .as_ref()
                .and_then(|g| unsafe_mapping(g, "groups", &a))
            {
                let field = if s.groups_prefix.is_some() {
                    "--groups-prefix"
                } else {
                    "--groups-claim"
                };
                let value = if s.groups_prefix.is_some() {
                    s.effective_groups_prefix()
                } else {
                    s.groups_claim.clone().unwrap_or_default()
                };
                return Err(PlanError::invalid(field, value, format!("{why}; {POLICY}"), "add `--groups-prefix oidc:` (or another prefix), or pass `--allow-system-names` to accept it"));
            }
        }
        Some(st) => {
            for (i, a) in st.jwt.iter().enumerate() {
                let m = &a.claim_mappings;
                let checks = [
                    (Some(&m.username), "username"),
                    (m.groups.as_ref(), "groups"),
                ];
                for (mapping, what) in checks {
                    let Some(mapping) = mapping else { continue };
                    if let Some(why) = unsafe_mapping(mapping, what, a) {
                        let (path, value) =
                            if mapping.expression.as_deref().is_some_and(|e| !e.is_empty()) {
                                (format!("jwt[{i}].claimMappings.{what}.expression"), None)
                            } else {
                                (
                                    format!("jwt[{i}].claimMappings.{what}.prefix"),
                                    mapping.prefix.clone(),
                                )
                            };
                        return Err(PlanError::field(
                            path,
                            value.as_deref(),
                            &format!("{why}; {POLICY}"),
                            &format!("set a prefix such as `oidc:`, or add {SAFE_RULE}, or pass `--allow-system-names` to accept it"),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn prefixes_that_reach_system() {
        for p in ["", "s", "system", "system:", "system:oidc:"] {
            assert!(prefix_reaches_system(p), "{p}");
        }
        for p in ["oidc:", "sys-", "-", "System:"] {
            assert!(!prefix_reaches_system(p), "{p}");
        }
    }

    #[test]
    fn groups_prefix_system_is_refused_with_the_reason_and_allowed_on_request() {
        let mut i = input();
        i.groups_prefix = Some("system:".into());
        let e = OidcSettings::validate(&i, None).unwrap_err().to_string();
        assert_eq!(e, "invalid --groups-prefix `system:`: an IdP group `masters` would become `system:masters` (cluster-admin); k8soidc's policy, not a kube-apiserver rule: names starting with `system:` are the cluster's own (group `system:masters` is cluster-admin); add `--groups-prefix oidc:` (or another prefix), or pass `--allow-system-names` to accept it");
        i.groups_prefix = None;
        let e = OidcSettings::validate(&i, None).unwrap_err().to_string();
        assert!(e.starts_with("invalid --groups-claim `groups`: with no groups prefix, an IdP group named `system:masters` in claim `groups` makes its members cluster-admin;"), "{e}");
        i.allow_system_names = Some(true);
        assert!(OidcSettings::validate(&i, None).unwrap().allow_system_names);
    }

    #[test]
    fn username_without_prefix_is_refused_except_for_email_and_sub() {
        let mut i = input();
        i.username_prefix = Some("-".into());
        OidcSettings::validate(&i, None).unwrap();
        i.username_claim = Some("sub".into());
        OidcSettings::validate(&i, None).unwrap();
        i.username_claim = Some("preferred_username".into());
        let e = OidcSettings::validate(&i, None).unwrap_err().to_string();
        assert!(e.starts_with("invalid --username-prefix `-`: with no username prefix, a token whose `preferred_username` is `system:kube-controller-manager`"), "{e}");
        i.username_prefix = None; // `issuer#`: safe
        OidcSettings::validate(&i, None).unwrap();
    }
}

#[cfg(test)]
mod structured_tests {
    use crate::{OidcSettings, SettingsInput};

    fn check(yaml: &str) -> Result<(), String> {
        let i: SettingsInput = serde_yaml_ng::from_str(&format!("kubernetes-version: '1.34'\njwt:\n- issuer: {{url: 'https://a.example.com', audiences: [k]}}\n{yaml}")).unwrap();
        OidcSettings::validate(&i, None)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// A CEL mapping is accepted only with a user validation rule refusing `system:` names
    /// for the same field (the documentation's rules).
    #[test]
    fn cel_mappings_need_the_matching_user_validation_rule() {
        let user =
            "  userValidationRules: [{expression: \"!user.username.startsWith('system:')\"}]\n";
        let groups = "  userValidationRules: [{expression: \"user.groups.all(g, !g.startsWith('system:'))\"}]\n";
        let m = "  claimMappings: {username: {expression: claims.sub}, groups: {expression: claims.groups}}\n";
        let e = check(m).unwrap_err();
        assert!(e.starts_with("invalid jwt[0].claimMappings.username.expression: the username expression `claims.sub` can yield a `system:` name and no userValidationRules expression refuses one;"), "{e}");
        let e = check(&format!("{m}{user}")).unwrap_err();
        assert!(e.starts_with("invalid jwt[0].claimMappings.groups.expression: the groups expression `claims.groups` can yield"), "{e}");
        let both = format!("{m}  userValidationRules:\n  - {{expression: \"!user.username.startsWith('system:')\"}}\n  - {{expression: \"user.groups.all(g, !g.startsWith('system:'))\"}}\n");
        check(&both).unwrap();
        // Claim mappings: a safe prefix needs no rule; an empty groups prefix does.
        check("  claimMappings: {username: {claim: sub, prefix: ''}, groups: {claim: groups, prefix: 'oidc:'}}\n").unwrap();
        let e = check("  claimMappings: {username: {claim: sub, prefix: ''}, groups: {claim: groups, prefix: ''}}\n").unwrap_err();
        assert!(e.starts_with("invalid jwt[0].claimMappings.groups.prefix ``: with no groups prefix, an IdP group named `system:masters`"), "{e}");
        check(&format!("  claimMappings: {{username: {{claim: sub, prefix: ''}}, groups: {{claim: groups, prefix: ''}}}}\n{groups}")).unwrap();
    }
}

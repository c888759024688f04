//! Moving a running API server between `--oidc-*` flags and the structured
//! `AuthenticationConfiguration` file (`patch --auth-mode config|flags` without OIDC settings:
//! the settings are the ones the node runs).
//!
//! - Flags → file ([`settings_from_flags`]): every `--oidc-*` flag becomes the same setting,
//!   and the file is rendered by [`crate::apiserver::authentication_config`], which states the
//!   implicit prefixes explicitly: kube-apiserver prefixes usernames with `<issuer>#` when
//!   `--oidc-username-prefix` is unset and the claim is not `email`, and `-` means none
//!   (kubernetes/kubernetes `pkg/kubeapiserver/options/authentication.go`, `ToAuthenticationConfig`:
//!   the same rule written into the `jwt[0].claimMappings.username.prefix` it builds from the
//!   flags); `--oidc-required-claim KEY=VALUE` becomes a `claimValidationRules` entry
//!   `{claim: KEY, requiredValue: VALUE}` (same function).
//! - From 1.34 the file's `anonymous` section replaces `--anonymous-auth`, and the two cannot
//!   be set together: kube-apiserver refuses to start with "--anonymous-auth flag cannot be set
//!   when anonymous field is configured in authentication configuration file" (same file,
//!   `ToAuthenticationConfig`). A node that runs `--anonymous-auth=false` gets
//!   [`ANONYMOUS_HEALTH`] (anonymous requests only to `/livez`, `/readyz`, `/healthz`, what the
//!   kubelet's probes and k8soidc's health wait need) and the flag is removed; anonymous
//!   requests elsewhere stay refused. A node that allows anonymous requests keeps its flag and
//!   the file gets no `anonymous` section (nothing changes for anonymous requests).
//! - File → flags ([`settings_from_file`]): only a file that says no more than the flags can
//!   is converted; every field the flags cannot carry is named, with its path as the API
//!   server's validation names it (`jwt[0].claimMappings.username.expression`).
//!
//! Nothing here does I/O: the caller hands over the flags and file texts read from the node.

use serde_yaml_ng::Value;

use crate::settings::{AuthMode, CaBundle, SettingsInput};
use crate::{KubeVersion, OidcSettings, PlanError};

/// What `patch --auth-mode config|flags` without OIDC settings asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Convert {
    /// `config` or `flags`.
    pub auth_mode: AuthMode,
    /// `--kubernetes-version`, when given (else the node's, from its image tag).
    pub kubernetes_version: Option<KubeVersion>,
}

/// The `anonymous` section k8soidc writes from 1.34 on a node that refused anonymous
/// requests: only the health endpoints answer them (apiserver.config.k8s.io/v1
/// `AnonymousAuthConfig`, `conditions[].path`).
pub const ANONYMOUS_HEALTH: &str =
    "anonymous:\n  enabled: true\n  conditions:\n  - path: /livez\n  - path: /readyz\n  - path: /healthz\n";

/// The rendered file `text` with [`ANONYMOUS_HEALTH`] appended (a top-level key).
pub fn with_anonymous_health(text: &str) -> String {
    let mut out = text.to_string();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(ANONYMOUS_HEALTH);
    out
}

/// Why a conversion is refused.
fn refused(host: &str, reason: String, fix: &str) -> PlanError {
    PlanError::Patch {
        what: format!("the API server's OIDC settings on `{host}`"),
        reason,
        fix: fix.into(),
    }
}

/// The settings a node's `--oidc-*` flags give (`flags`: the API server's flags in order,
/// names without `--`), for a file of the `convert` mode. `ca_pem`: the content of the file
/// `--oidc-ca-file` names (None when it has none; the caller refuses a CA it could not read).
pub fn settings_from_flags(
    host: &str,
    flags: &[(String, Option<String>)],
    ca_pem: Option<String>,
    convert: Convert,
    version: Option<KubeVersion>,
) -> Result<(OidcSettings, Vec<String>), PlanError> {
    let mut input = SettingsInput::default();
    let mut notes = Vec::new();
    let mut ca_path = None;
    for (name, value) in flags {
        if !name.starts_with("oidc-") {
            continue;
        }
        let v = value.clone().unwrap_or_default();
        match name.as_str() {
            "oidc-issuer-url" => input.issuer_url = Some(v),
            "oidc-client-id" => input.client_id = Some(v),
            "oidc-username-claim" => input.username_claim = Some(v),
            "oidc-username-prefix" => input.username_prefix = Some(v),
            "oidc-groups-claim" => input.groups_claim = Some(v),
            "oidc-groups-prefix" => input.groups_prefix = Some(v),
            "oidc-ca-file" => ca_path = Some(v),
            "oidc-signing-algs" => input.signing_algs = Some(v),
            "oidc-required-claim" => input.required_claim.push(v),
            other => {
                return Err(refused(
                    host,
                    format!("the API server runs `--{other}`, which k8soidc does not know how to convert"),
                    "convert it by hand (`k8soidc render --auth-mode config` shows the file for the settings k8soidc knows)",
                ))
            }
        }
    }
    if input.issuer_url.is_none() && input.client_id.is_none() {
        return Err(refused(
            host,
            "the API server runs no `--oidc-*` flags, so there is nothing to convert".into(),
            "give the OIDC settings (`--issuer-url`, `--client-id`, ...) to set them",
        ));
    }
    // The flags' own defaults, stated: kube-apiserver's --oidc-username-claim defaults to `sub`.
    if input.username_claim.is_none() {
        input.username_claim = Some("sub".into());
    }
    if let Some(algs) = &input.signing_algs {
        if convert.auth_mode == AuthMode::Config {
            notes.push(format!("`--oidc-signing-algs={algs}` has no field in AuthenticationConfiguration: the file accepts every algorithm kube-apiserver supports"));
        }
    }
    input.auth_mode = Some(
        match convert.auth_mode {
            AuthMode::Config => "config",
            AuthMode::Flags => "flags",
            AuthMode::Auto => "auto",
        }
        .into(),
    );
    input.kubernetes_version = version.map(|v| v.to_string());
    // The conversion keeps what the node runs: the reserved-names policy warns here instead.
    input.reserved_names_policy_off = true;
    let ca = match (ca_path, ca_pem) {
        (Some(path), Some(pem)) => Some(CaBundle {
            local_path: path,
            pem,
        }),
        (Some(path), None) => {
            return Err(refused(
                host,
                format!("`--oidc-ca-file={path}` could not be read on the node"),
                "put the CA in /etc/kubernetes/pki/oidc-ca.pem (and the flag to match), or give the settings with --ca-file",
            ))
        }
        _ => None,
    };
    let s = OidcSettings::validate(&input, ca).map_err(|e| {
        refused(
            host,
            format!("its `--oidc-*` flags do not convert: {e}"),
            "fix the flag on the node, or give the settings explicitly",
        )
    })?;
    if let Err(e) = crate::reserved::check(&s) {
        notes.push(format!(
            "warning: the node's flags already allow this, and the file keeps it: {e}"
        ));
    }
    if s.username_prefix.is_none() {
        notes.push(format!(
            "`--oidc-username-prefix` is not set: the file states kube-apiserver's implicit prefix `{}` ({})",
            s.effective_username_prefix(),
            s.username_prefix_reason()
        ));
    }
    Ok((s, notes))
}

/// One field the flags cannot carry, by its path in the file.
fn path_of(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The settings a node's AuthenticationConfiguration (`text`) gives, for `--oidc-*` flags; or
/// a refusal naming every field flags cannot express.
pub fn settings_from_file(
    host: &str,
    path: &str,
    text: &str,
    version: Option<KubeVersion>,
) -> Result<OidcSettings, PlanError> {
    let doc: Value = serde_yaml_ng::from_str(text).map_err(|e| {
        refused(
            host,
            format!("{path} is not YAML ({e})"),
            "fix the file by hand first",
        )
    })?;
    let mut cannot: Vec<String> = Vec::new();
    let mut input = SettingsInput::default();
    let mut ca = None;
    let Some(top) = doc.as_mapping() else {
        return Err(refused(
            host,
            format!("{path} is not an AuthenticationConfiguration"),
            "fix the file by hand first",
        ));
    };
    let s = |v: &Value| v.as_str().map(str::to_string);
    for (k, v) in top {
        let key = k.as_str().unwrap_or("?");
        match key {
            "apiVersion" | "kind" => {}
            "jwt" => {
                let list = v.as_sequence().cloned().unwrap_or_default();
                if list.len() != 1 {
                    cannot.push(format!(
                        "jwt ({} authenticators; the flags carry exactly one)",
                        list.len()
                    ));
                }
                let Some(j) = list.first().and_then(Value::as_mapping) else {
                    continue;
                };
                for (k, v) in j {
                    let key = k.as_str().unwrap_or("?");
                    let at = format!("jwt[0].{key}");
                    match key {
                        "issuer" => {
                            for (k, v) in v.as_mapping().into_iter().flatten() {
                                let key = k.as_str().unwrap_or("?");
                                match key {
                                    "url" => input.issuer_url = s(v),
                                    "audiences" => {
                                        let a = v.as_sequence().cloned().unwrap_or_default();
                                        match a.as_slice() {
                                            [one] => input.client_id = s(one),
                                            _ => cannot.push(format!(
                                                "{} ({} audiences; --oidc-client-id is one)",
                                                path_of(&at, key),
                                                a.len()
                                            )),
                                        }
                                    }
                                    "audienceMatchPolicy" => {}
                                    "certificateAuthority" => {
                                        ca = s(v).map(|pem| CaBundle {
                                            local_path: format!("{path}: {}", path_of(&at, key)),
                                            pem,
                                        })
                                    }
                                    _ => cannot.push(path_of(&at, key)),
                                }
                            }
                        }
                        "claimValidationRules" => {
                            for (i, r) in v.as_sequence().into_iter().flatten().enumerate() {
                                let at = format!("{at}[{i}]");
                                let m = r.as_mapping();
                                let claim = r.get("claim").and_then(s);
                                let value = r.get("requiredValue").and_then(s);
                                for (k, _) in m.into_iter().flatten() {
                                    let key = k.as_str().unwrap_or("?");
                                    if key != "claim" && key != "requiredValue" {
                                        cannot.push(path_of(&at, key));
                                    }
                                }
                                // An absent requiredValue is "" (the claim must be present
                                // and empty), as `--oidc-required-claim=KEY=` says it.
                                if let Some(c) = claim {
                                    let val = value.unwrap_or_default();
                                    input.required_claim.push(format!("{c}={val}"));
                                }
                            }
                        }
                        "claimMappings" => {
                            for (k, v) in v.as_mapping().into_iter().flatten() {
                                let key = k.as_str().unwrap_or("?");
                                let at = path_of(&at, key);
                                if key != "username" && key != "groups" {
                                    cannot.push(at);
                                    continue;
                                }
                                let mut claim = None;
                                let mut prefix = None;
                                for (k, v) in v.as_mapping().into_iter().flatten() {
                                    match k.as_str().unwrap_or("?") {
                                        "claim" => claim = s(v),
                                        "prefix" => prefix = s(v),
                                        other => cannot.push(path_of(&at, other)),
                                    }
                                }
                                if key == "username" {
                                    input.username_claim = claim;
                                    input.username_prefix =
                                        prefix.map(|p| if p.is_empty() { "-".into() } else { p });
                                } else {
                                    input.groups_claim = claim;
                                    input.groups_prefix = prefix.filter(|p| !p.is_empty());
                                }
                            }
                        }
                        _ => cannot.push(at),
                    }
                }
            }
            "anonymous" => {
                // `enabled: true` without conditions is what no section means; anything else
                // is a choice per path (or off) that --anonymous-auth cannot express as the
                // file does, and changing anonymous access is not this conversion's business.
                let enabled = v.get("enabled").and_then(Value::as_bool) == Some(true);
                let conditions = v
                    .get("conditions")
                    .and_then(Value::as_sequence)
                    .is_some_and(|c| !c.is_empty());
                if !enabled {
                    cannot.push(
                        "anonymous.enabled (false; give --anonymous-auth=false by hand)".into(),
                    );
                } else if conditions {
                    cannot.push(
                        "anonymous.conditions (--anonymous-auth allows every path or none)".into(),
                    );
                }
            }
            other => cannot.push(other.to_string()),
        }
    }
    if !cannot.is_empty() {
        return Err(refused(
            host,
            format!(
                "{path} cannot be expressed as `--oidc-*` flags: {}",
                cannot.join(", ")
            ),
            "keep `--auth-mode config` for this node, or take those fields out of the file first",
        ));
    }
    input.auth_mode = Some("flags".into());
    input.kubernetes_version = version.map(|v| v.to_string());
    // The conversion keeps what the node runs (see above).
    input.reserved_names_policy_off = true;
    OidcSettings::validate(&input, ca).map_err(|e| {
        refused(
            host,
            format!("{path} does not convert to `--oidc-*` flags: {e}"),
            "fix the file by hand first",
        )
    })
}

/// The Kubernetes version of a static pod manifest's kube-apiserver image tag
/// (`registry.k8s.io/kube-apiserver:v1.32.2` → 1.32), if it has one.
pub fn image_version(manifest: &str) -> Option<KubeVersion> {
    manifest.lines().find_map(|l| {
        let rest = l
            .trim()
            .strip_prefix("image:")?
            .trim()
            .trim_matches(['"', '\'']);
        let (name, tag) = rest.rsplit_once(':')?;
        if !name.ends_with("kube-apiserver") {
            return None;
        }
        let tag = tag.strip_prefix('v')?;
        let mut parts = tag.split(['.', '-', '+']);
        let major: u32 = parts.next()?.parse().ok()?;
        let minor: u32 = parts.next()?.parse().ok()?;
        KubeVersion::parse(&format!("{major}.{minor}")).ok()
    })
}

/// The manifest `text` without its `--anonymous-auth` item (one line `- --anonymous-auth=...`,
/// quoted or not); None when it has none or several.
pub fn remove_anonymous_auth(text: &str) -> Option<String> {
    let is_it = |l: &str| {
        let t = l.trim().trim_end_matches('\r');
        let Some(item) = t.strip_prefix("- ") else {
            return false;
        };
        let item = item.trim().trim_matches(['"', '\'']);
        item == "--anonymous-auth" || item.starts_with("--anonymous-auth=")
    };
    let hits = text.split_inclusive('\n').filter(|l| is_it(l)).count();
    if hits != 1 {
        return None;
    }
    Some(
        text.split_inclusive('\n')
            .filter(|l| !is_it(l))
            .collect::<String>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::authentication_config;
    use crate::ConfigApiVersion;

    fn flags(v: &[&str]) -> Vec<(String, Option<String>)> {
        v.iter()
            .map(|f| {
                let (n, v) = f.trim_start_matches("--").split_once('=').unwrap();
                (n.to_string(), Some(v.to_string()))
            })
            .collect()
    }

    fn to_config(v: &[&str]) -> String {
        let version = KubeVersion::parse("1.32").unwrap();
        let (s, _) = settings_from_flags(
            "h",
            &flags(v),
            None,
            Convert {
                auth_mode: AuthMode::Config,
                kubernetes_version: None,
            },
            Some(version),
        )
        .unwrap();
        authentication_config(&s, ConfigApiVersion::V1beta1)
    }

    #[test]
    fn implicit_issuer_prefix_is_made_explicit() {
        let f = to_config(&[
            "--oidc-issuer-url=https://idp.example.com",
            "--oidc-client-id=k",
        ]);
        assert_eq!(
            f,
            "apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthenticationConfiguration\njwt:\n- issuer:\n    url: https://idp.example.com\n    audiences:\n    - k\n  claimMappings:\n    username:\n      claim: sub\n      prefix: https://idp.example.com#\n"
        );
    }

    #[test]
    fn email_has_no_prefix_dash_means_none_and_required_claims_become_rules() {
        let f = to_config(&[
            "--oidc-issuer-url=https://idp.example.com",
            "--oidc-client-id=k",
            "--oidc-username-claim=email",
            "--oidc-groups-claim=groups",
            "--oidc-groups-prefix=oidc:",
            "--oidc-required-claim=hd=example.com",
            "--oidc-required-claim=tier=a=b",
        ]);
        assert!(f.contains("      claim: email\n      prefix: ''\n"), "{f}");
        assert!(
            f.contains("  claimValidationRules:\n  - claim: hd\n    requiredValue: example.com\n  - claim: tier\n    requiredValue: a=b\n"),
            "{f}"
        );
        assert!(
            f.contains("    groups:\n      claim: groups\n      prefix: 'oidc:'\n"),
            "{f}"
        );
        let g = to_config(&[
            "--oidc-issuer-url=https://idp.example.com",
            "--oidc-client-id=k",
            "--oidc-username-prefix=-",
        ]);
        assert!(g.contains("      claim: sub\n      prefix: ''\n"), "{g}");
    }

    #[test]
    fn round_trip_file_to_flags() {
        let f = to_config(&[
            "--oidc-issuer-url=https://idp.example.com",
            "--oidc-client-id=k",
            "--oidc-username-claim=email",
            "--oidc-username-prefix=oidc:",
            "--oidc-groups-claim=groups",
            "--oidc-groups-prefix=oidc:",
            "--oidc-required-claim=hd=example.com",
        ]);
        let s = settings_from_file("h", "/f", &f, None).unwrap();
        let flags = crate::apiserver::args(&s, crate::Mode::Flags, "/d");
        let words: Vec<String> = flags.iter().map(|a| a.flag()).collect();
        assert_eq!(
            words,
            [
                "--oidc-issuer-url=https://idp.example.com",
                "--oidc-client-id=k",
                "--oidc-username-claim=email",
                "--oidc-username-prefix=oidc:",
                "--oidc-groups-claim=groups",
                "--oidc-groups-prefix=oidc:",
                "--oidc-required-claim=hd=example.com",
            ]
        );
    }

    #[test]
    fn file_with_cel_is_refused_naming_every_field() {
        let f = "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt:\n- issuer:\n    url: https://idp.example.com\n    audiences: [a]\n    discoveryURL: https://d.example.com/.well-known/openid-configuration\n  claimValidationRules:\n  - expression: claims.email_verified == true\n    message: verified\n  claimMappings:\n    username:\n      expression: '\"oidc:\" + claims.email'\n    uid:\n      claim: sub\n";
        let e = settings_from_file("h", "/etc/f.yaml", f, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot be expressed as `--oidc-*` flags: jwt[0].issuer.discoveryURL, jwt[0].claimValidationRules[0].expression, jwt[0].claimValidationRules[0].message, jwt[0].claimMappings.username.expression, jwt[0].claimMappings.uid"),
            "{e}"
        );
        let two = "kind: AuthenticationConfiguration\njwt:\n- issuer: {url: 'https://a.example.com', audiences: [a]}\n  claimMappings: {username: {claim: sub, prefix: ''}}\n- issuer: {url: 'https://b.example.com', audiences: [a, b]}\n  claimMappings: {username: {claim: sub, prefix: ''}}\nanonymous:\n  enabled: true\n  conditions:\n  - path: /livez\n";
        let e = settings_from_file("h", "/f", two, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("jwt (2 authenticators; the flags carry exactly one)"),
            "{e}"
        );
        assert!(e.contains("anonymous.conditions"), "{e}");
    }

    #[test]
    fn unknown_oidc_flag_and_no_flags_are_refused() {
        let c = Convert {
            auth_mode: AuthMode::Config,
            kubernetes_version: None,
        };
        let v = KubeVersion::parse("1.32").ok();
        let e = settings_from_flags("h", &flags(&["--oidc-foo=1"]), None, c, v).unwrap_err();
        assert!(e.to_string().contains("`--oidc-foo`"), "{e}");
        let e = settings_from_flags("h", &flags(&["--profiling=false"]), None, c, v).unwrap_err();
        assert!(e.to_string().contains("no `--oidc-*` flags"), "{e}");
        let e = settings_from_flags(
            "h",
            &flags(&[
                "--oidc-issuer-url=https://i.example.com",
                "--oidc-client-id=k",
                "--oidc-ca-file=/x/ca.pem",
            ]),
            None,
            c,
            v,
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("`--oidc-ca-file=/x/ca.pem` could not be read"),
            "{e}"
        );
    }

    #[test]
    fn anonymous_section_and_flag_removal() {
        let f = with_anonymous_health("kind: AuthenticationConfiguration\njwt: []\n");
        let doc: Value = serde_yaml_ng::from_str(&f).unwrap();
        assert_eq!(
            doc["anonymous"]["conditions"][1]["path"].as_str(),
            Some("/readyz")
        );
        let m = "spec:\n  containers:\n  - command:\n    - kube-apiserver\n    - --anonymous-auth=false\n    - --profiling=false\n";
        assert_eq!(
            remove_anonymous_auth(m).unwrap(),
            "spec:\n  containers:\n  - command:\n    - kube-apiserver\n    - --profiling=false\n"
        );
        assert_eq!(remove_anonymous_auth("- --profiling=false\n"), None);
        assert_eq!(
            image_version("    image: registry.k8s.io/kube-apiserver:v1.34.1\n"),
            KubeVersion::parse("1.34").ok()
        );
        assert_eq!(image_version("    image: busybox:1.36\n"), None);
    }
}

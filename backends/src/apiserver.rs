//! What every distribution ultimately hands to kube-apiserver: `--oidc-*` flags, or one
//! `--authentication-config` flag plus the structured file. Never both (the API server exits).

use serde::Serialize;

use crate::authn::JwtAuthenticator;
use crate::{ConfigApiVersion, Mode, OidcSettings};

/// File name of the IdP CA on the node (flags mode).
pub const CA_FILE: &str = "oidc-ca.pem";
/// File name of the AuthenticationConfiguration on the node (config mode).
pub const AUTH_CONFIG_FILE: &str = "authentication-config.yaml";

/// One kube-apiserver flag, without the leading `--`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Arg {
    /// Flag name, e.g. `oidc-issuer-url`.
    pub name: String,
    /// Its value.
    pub value: String,
}

impl Arg {
    fn new(name: &str, value: impl Into<String>) -> Self {
        Arg {
            name: name.to_string(),
            value: value.into(),
        }
    }

    /// `--name=value`.
    pub fn flag(&self) -> String {
        format!("--{}={}", self.name, self.value)
    }

    /// `name=value`.
    pub fn pair(&self) -> String {
        format!("{}={}", self.name, self.value)
    }
}

/// Whether a flag name is one this tool owns (and so may replace or remove).
pub fn is_managed_flag(name: &str) -> bool {
    let name = name.trim_start_matches('-');
    name.starts_with("oidc-") || name == "authentication-config"
}

/// A file the API server must be able to read, placed under the distribution's node directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeFile {
    /// Absolute path as the API server sees it.
    pub path: String,
    /// Content.
    pub content: String,
}

/// The flags, in a stable order. `dir` is the directory (as the API server sees it) holding
/// the files from [`node_files`].
pub fn args(s: &OidcSettings, mode: Mode, dir: &str) -> Vec<Arg> {
    if let Mode::Config(_) = mode {
        return vec![Arg::new(
            "authentication-config",
            format!("{dir}/{AUTH_CONFIG_FILE}"),
        )];
    }
    let mut args = vec![
        Arg::new("oidc-issuer-url", &s.issuer_url),
        Arg::new("oidc-client-id", &s.client_id),
        Arg::new("oidc-username-claim", &s.username_claim),
        Arg::new("oidc-username-prefix", s.username_prefix_flag()),
    ];
    if let Some(claim) = &s.groups_claim {
        args.push(Arg::new("oidc-groups-claim", claim));
        args.push(Arg::new("oidc-groups-prefix", s.effective_groups_prefix()));
    }
    if s.ca.is_some() {
        args.push(Arg::new("oidc-ca-file", format!("{dir}/{CA_FILE}")));
    }
    if let Some(algs) = &s.signing_algs {
        args.push(Arg::new("oidc-signing-algs", algs.join(",")));
    }
    for (k, v) in &s.required_claims {
        args.push(Arg::new("oidc-required-claim", format!("{k}={v}")));
    }
    args
}

/// Files to place in `dir` on every control-plane node.
pub fn node_files(s: &OidcSettings, mode: Mode, dir: &str) -> Vec<NodeFile> {
    match mode {
        Mode::Config(v) => vec![NodeFile {
            path: format!("{dir}/{AUTH_CONFIG_FILE}"),
            content: authentication_config(s, v),
        }],
        Mode::Flags => {
            s.ca.iter()
                .map(|ca| NodeFile {
                    path: format!("{dir}/{CA_FILE}"),
                    content: ca.pem.clone(),
                })
                .collect()
        }
    }
}

/// Warnings about settings the chosen mode cannot express (none: validation refuses them).
pub fn mode_warnings(s: &OidcSettings, mode: Mode) -> Vec<String> {
    let _ = (s, mode);
    Vec::new()
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuthenticationConfiguration<'a> {
    api_version: &'static str,
    kind: &'static str,
    jwt: Vec<JwtAuthenticator>,
    #[serde(skip_serializing_if = "Option::is_none")]
    anonymous: Option<&'a crate::authn::Anonymous>,
}

/// The structured `AuthenticationConfiguration` for `version`: the settings file's `jwt` and
/// `anonymous` when given, else the one authenticator the flags amount to (prefixes explicit,
/// as the config API requires; CA inline as `certificateAuthority`). Validation has already
/// refused what `version` cannot carry.
pub fn authentication_config(s: &OidcSettings, version: ConfigApiVersion) -> String {
    let (jwt, anonymous) = match &s.structured {
        Some(st) => (st.jwt.clone(), st.anonymous.as_ref()),
        None => (vec![crate::authn::from_flags(s)], None),
    };
    let doc = AuthenticationConfiguration {
        api_version: version.api_version(),
        kind: "AuthenticationConfiguration",
        jwt,
        anonymous,
    };
    crate::yamlout::to_yaml(&doc)
}

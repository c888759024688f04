//! The identity provider's side, rendered from the same settings as the cluster's, so the
//! client id, redirect URIs, claim names and scopes cannot drift (peers.md P9, P11).
//!
//! - [`okta`]: the anchor article's Terraform (oktadev/okta-blog
//!   `_source/_posts/2021-10-27-k8s-api-server-oidc.md`): group, memberships, native app with
//!   PKCE, authorization server, groups claim, policy and rule.
//! - [`keycloak`]: a realm import JSON and the same objects in Terraform (keycloak provider).
//! - [`dex`]: the `staticClients` entry of dex's `config.yaml`.
//!
//! The redirect URIs are kubelogin's: it listens on `localhost:8000`, then `localhost:18000`
//! when 8000 is taken (int128/kubelogin `docs/usage.md`, `--listen-address` defaults). Scopes
//! come from [`OidcSettings::scopes`]. No secret is ever rendered: clients are public (PKCE),
//! and provider credentials are Terraform variables or environment variables without values.

pub mod dex;
pub(crate) mod hcl;
pub mod keycloak;
pub mod okta;

use std::fmt::Write;

use serde::Serialize;

use crate::{shell, OidcSettings, PlanError, SettingsInput};

/// kubelogin's default redirect URIs, in the order it tries them.
pub const REDIRECT_URIS: [&str; 2] = ["http://localhost:8000", "http://localhost:18000"];

/// The group bound to cluster-admin when `--group` is not given (the article's group).
pub const DEFAULT_GROUP: &str = "k8s-admins";

/// The identity providers k8soidc renders for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Okta (Terraform, okta/okta provider).
    Okta,
    /// Keycloak (realm import JSON and Terraform, keycloak/keycloak provider).
    Keycloak,
    /// Dex (`staticClients` in config.yaml).
    Dex,
}

impl Provider {
    /// Every provider.
    pub const ALL: [Provider; 3] = [Provider::Okta, Provider::Keycloak, Provider::Dex];

    /// The lowercase name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Okta => "okta",
            Provider::Keycloak => "keycloak",
            Provider::Dex => "dex",
        }
    }

    /// Parses a name as given to `k8soidc idp`.
    pub fn parse(text: &str) -> Result<Self, PlanError> {
        Provider::ALL
            .into_iter()
            .find(|p| p.name() == text)
            .ok_or_else(|| {
                PlanError::invalid(
                    "provider",
                    text,
                    "unknown identity provider",
                    "use `okta`, `keycloak` or `dex`",
                )
            })
    }
}

/// What to create besides the client: the group to bind and its members.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IdpRequest {
    /// The group RBAC binds (`--group`).
    pub group: String,
    /// Users (email addresses / logins) to put in the group (`--user`, repeatable).
    pub users: Vec<String>,
}

impl IdpRequest {
    /// Checks the group name and the users.
    pub fn validate(group: &str, users: &[String]) -> Result<Self, PlanError> {
        if group.trim().is_empty() || group.trim() != group || group.chars().any(char::is_control) {
            return Err(PlanError::invalid(
                "--group",
                group,
                "must be a non-empty name without leading/trailing white space or control characters",
                format!("give the group name, e.g. `{DEFAULT_GROUP}`"),
            ));
        }
        for u in users {
            let ok = !u
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\')
                && u.split_once('@')
                    .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty());
            if !ok {
                return Err(PlanError::invalid(
                    "--user",
                    u,
                    "is not an email address / login",
                    "give the user's login, e.g. `--user alice@example.com`",
                ));
            }
        }
        let mut seen = Vec::new();
        for u in users {
            if seen.contains(&u) {
                return Err(PlanError::invalid(
                    "--user",
                    u,
                    "is given twice",
                    "give each user once",
                ));
            }
            seen.push(u);
        }
        Ok(IdpRequest {
            group: group.to_string(),
            users: users.to_vec(),
        })
    }
}

/// The settings the IdP side needs. Issuer and client id are optional only for Okta, which
/// generates both (see [`okta`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpSettings {
    /// The issuer, when known.
    pub issuer_url: Option<String>,
    /// The client id, when known.
    pub client_id: Option<String>,
    /// The claim the username comes from.
    pub username_claim: String,
    /// The claim groups come from.
    pub groups_claim: String,
    /// The groups prefix the API server adds ("" = none).
    pub groups_prefix: String,
    /// Scopes kubelogin must request ([`OidcSettings::scopes`]).
    pub scopes: Vec<&'static str>,
    /// The identity-related flags to repeat on `k8soidc create/patch` (issuer and client id excluded).
    pub flags: Vec<(String, String)>,
    /// Remarks from validation.
    pub warnings: Vec<String>,
}

const PLACEHOLDER_ISSUER: &str = "https://issuer.invalid";
const PLACEHOLDER_CLIENT: &str = "client-id-from-okta";

impl IdpSettings {
    /// Validates the raw settings by the same rules as every other command.
    pub fn validate(p: Provider, input: &SettingsInput) -> Result<Self, PlanError> {
        let mut probe = input.clone();
        let optional = p == Provider::Okta;
        if optional {
            probe
                .issuer_url
                .get_or_insert_with(|| PLACEHOLDER_ISSUER.into());
            probe
                .client_id
                .get_or_insert_with(|| PLACEHOLDER_CLIENT.into());
        }
        // The IdP side configures no API server: the reserved-name policy (crate::reserved)
        // is applied where the API server is configured (render, create, patch, ...).
        probe.allow_system_names = Some(true);
        let s = OidcSettings::validate(&probe, None)?;
        let Some(groups_claim) = s.groups_claim.clone() else {
            return Err(PlanError::MissingSetting {
                field: "--groups-claim",
                fix: "the IdP side creates a group, which reaches the API server only through a groups claim; add `--groups-claim groups` (the same value the cluster gets)".into(),
            });
        };
        let mut flags = vec![("--username-claim".to_string(), s.username_claim.clone())];
        if let Some(p) = &s.username_prefix {
            flags.push(("--username-prefix".into(), p.clone()));
        }
        flags.push(("--groups-claim".into(), groups_claim.clone()));
        if let Some(p) = &s.groups_prefix {
            flags.push(("--groups-prefix".into(), p.clone()));
        }
        for (k, v) in &s.required_claims {
            flags.push(("--required-claim".into(), format!("{k}={v}")));
        }
        Ok(IdpSettings {
            issuer_url: input.issuer_url.as_ref().map(|_| s.issuer_url.clone()),
            client_id: input.client_id.as_ref().map(|_| s.client_id.clone()),
            username_claim: s.username_claim.clone(),
            groups_claim,
            groups_prefix: s.effective_groups_prefix(),
            scopes: s.scopes(),
            flags,
            warnings: s.warnings.clone(),
        })
    }

    /// How the groups prefix changes the group name, for comments.
    pub(crate) fn prefix_note(&self) -> String {
        if self.groups_prefix.is_empty() {
            "no --groups-prefix, so the name is used as is; k8soidc refuses that for the cluster unless --allow-system-names is given (reserved names): use --groups-prefix, e.g. `oidc:`, here and there".into()
        } else {
            format!(
                "the API server adds --groups-prefix `{}`",
                self.groups_prefix
            )
        }
    }

    /// The issuer; only Okta may leave it out.
    pub(crate) fn issuer(&self, p: Provider) -> Result<&str, PlanError> {
        self.issuer_url.as_deref().ok_or_else(|| PlanError::MissingSetting {
            field: "--issuer-url",
            fix: format!("`idp {}` needs the issuer the cluster will trust, e.g. `--issuer-url https://idp.example.com{}`", p.name(), if p == Provider::Keycloak { "/realms/k8s" } else { "" }),
        })
    }

    /// The client id; only Okta may leave it out.
    pub(crate) fn client(&self, p: Provider) -> Result<&str, PlanError> {
        self.client_id.as_deref().ok_or_else(|| PlanError::MissingSetting {
            field: "--client-id",
            fix: format!("`idp {}` creates the client with the id the cluster will expect, e.g. `--client-id kubernetes`", p.name()),
        })
    }
}

/// One file of the rendering, relative to `--out`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdpFile {
    /// Path relative to the output directory.
    pub path: String,
    /// `hcl`, `json`, `yaml` or `markdown`.
    pub language: &'static str,
    /// The content.
    pub content: String,
}

/// What [`render`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdpRendering {
    /// The provider.
    pub provider: Provider,
    /// The files, README last.
    pub files: Vec<IdpFile>,
    /// Lines to print: which cluster setting each value must match, caveats, next steps.
    pub notes: Vec<String>,
}

/// Renders the IdP side for `p`.
pub fn render(p: Provider, s: &IdpSettings, req: &IdpRequest) -> Result<IdpRendering, PlanError> {
    match p {
        Provider::Okta => okta::render(s, req),
        Provider::Keycloak => keycloak::render(s, req),
        Provider::Dex => dex::render(s, req),
    }
}

/// `value` (from the IdP) must equal `setting` (on the cluster / in kubelogin).
pub(crate) struct Match {
    pub(crate) what: String,
    pub(crate) value: String,
    pub(crate) setting: String,
}

/// The rows every provider shares: redirect URIs, scopes, claims, group.
pub(crate) fn common_matches(s: &IdpSettings, req: &IdpRequest) -> Vec<Match> {
    vec![
        Match {
            what: "redirect URIs".into(),
            value: REDIRECT_URIS.join(", "),
            setting: "kubelogin's listen addresses (its defaults; do not pass --listen-address)"
                .into(),
        },
        Match {
            what: "scopes kubelogin requests".into(),
            value: s.scopes.join(" "),
            setting: "the kubeconfig k8soidc writes (`--oidc-extra-scope` for each but `openid`)"
                .into(),
        },
        Match {
            what: "username claim".into(),
            value: s.username_claim.clone(),
            setting: format!("--username-claim {}", s.username_claim),
        },
        Match {
            what: "groups claim".into(),
            value: s.groups_claim.clone(),
            setting: format!("--groups-claim {}", s.groups_claim),
        },
        Match {
            what: "group".into(),
            value: req.group.clone(),
            setting: format!(
                "the RBAC subject `{}{}` ({})",
                s.groups_prefix,
                req.group,
                s.prefix_note()
            ),
        },
    ]
}

/// The notes as printed lines.
pub(crate) fn match_lines(rows: &[Match]) -> Vec<String> {
    rows.iter()
        .map(|m| format!("{}: `{}` must match {}", m.what, m.value, m.setting))
        .collect()
}

/// A markdown table of the matches.
pub(crate) fn match_table(rows: &[Match]) -> String {
    let mut out =
        String::from("| IdP value | Value | Must match on the cluster side |\n|---|---|---|\n");
    for m in rows {
        let _ = writeln!(
            out,
            "| {} | `{}` | {} |",
            m.what,
            m.value.replace('|', "\\|"),
            m.setting.replace('|', "\\|")
        );
    }
    out
}

/// The `k8soidc create` command with the same settings; `issuer` / `client` are shell words.
pub(crate) fn create_command(s: &IdpSettings, issuer: &str, client: &str) -> String {
    let mut words = vec![
        "k8soidc".to_string(),
        "create".into(),
        "--distro".into(),
        "k3d".into(),
        "--issuer-url".into(),
    ];
    let mut out = shell::join(&words);
    out.push(' ');
    out.push_str(issuer);
    out.push_str(" --client-id ");
    out.push_str(client);
    words.clear();
    for (k, v) in &s.flags {
        words.push(k.clone());
        words.push(v.clone());
    }
    if !words.is_empty() {
        out.push(' ');
        out.push_str(&shell::join(&words));
    }
    out
}

/// The closing lines every README and output share.
pub(crate) fn next_steps() -> Vec<String> {
    vec![
        "`k8soidc create` makes a new cluster; `k8soidc patch` changes an existing one (same flags, `--distro` as needed).".into(),
        "Then run `k8soidc check` with the same settings: it compares the provider's discovery document, scopes and a test token with the cluster's settings.".into(),
    ]
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use crate::testutil::input;

    pub(crate) fn settings(p: Provider) -> IdpSettings {
        let mut i = input();
        if p == Provider::Keycloak {
            i.issuer_url = Some("https://sso.example.com/realms/k8s".into());
        }
        IdpSettings::validate(p, &i).unwrap()
    }

    pub(crate) fn request() -> IdpRequest {
        IdpRequest::validate(
            DEFAULT_GROUP,
            &["alice@example.com".into(), "bob@example.com".into()],
        )
        .unwrap()
    }

    /// A parsed top-level block: type, labels, attribute names, nested block names.
    pub(crate) type Parsed = (String, Vec<String>, Vec<String>, Vec<String>);

    /// Every top-level block of an HCL file, parsed with hcl-rs.
    pub(crate) fn hcl_blocks(text: &str) -> Vec<Parsed> {
        let body: ::hcl::Body = ::hcl::from_str(text).unwrap_or_else(|e| panic!("{text}\n{e}"));
        body.blocks()
            .map(|b| {
                (
                    b.identifier().to_string(),
                    b.labels().iter().map(|l| l.as_str().to_string()).collect(),
                    b.body().attributes().map(|a| a.key().to_string()).collect(),
                    b.body()
                        .blocks()
                        .map(|n| n.identifier().to_string())
                        .collect(),
                )
            })
            .collect()
    }

    /// Asserts each block of type `kind` and label `rtype` uses only `allowed` attributes and
    /// has every `required` one.
    #[track_caller]
    pub(crate) fn assert_schema(
        text: &str,
        kind: &str,
        rtype: &str,
        required: &[&str],
        optional: &[&str],
    ) -> usize {
        let mut n = 0;
        for (k, labels, attrs, blocks) in hcl_blocks(text) {
            if k != kind || labels.first().map(String::as_str) != Some(rtype) {
                continue;
            }
            n += 1;
            for a in attrs.iter().chain(&blocks) {
                assert!(
                    required.contains(&a.as_str()) || optional.contains(&a.as_str()),
                    "{kind} {rtype}: `{a}` is not in the provider's documented schema"
                );
            }
            for r in required {
                assert!(
                    attrs.iter().any(|a| a == r),
                    "{kind} {rtype}: required `{r}` missing"
                );
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::input;

    #[test]
    fn provider_names() {
        for p in Provider::ALL {
            assert_eq!(Provider::parse(p.name()).unwrap(), p);
        }
        let e = Provider::parse("auth0").unwrap_err().to_string();
        assert!(e.contains("`auth0`") && e.contains("okta"), "{e}");
    }

    #[test]
    fn okta_may_leave_issuer_and_client_out() {
        let mut i = input();
        i.issuer_url = None;
        i.client_id = None;
        let s = IdpSettings::validate(Provider::Okta, &i).unwrap();
        assert_eq!((s.issuer_url, s.client_id), (None, None));
        for p in [Provider::Keycloak, Provider::Dex] {
            assert!(IdpSettings::validate(p, &i).is_err());
        }
    }

    #[test]
    fn bad_client_id_and_missing_groups_claim_refused() {
        let mut i = input();
        i.client_id = Some("my client".into());
        for p in Provider::ALL {
            let e = IdpSettings::validate(p, &i).unwrap_err().to_string();
            assert!(e.contains("--client-id `my client`"), "{e}");
        }
        let mut i = input();
        i.groups_claim = None;
        i.groups_prefix = None;
        let e = IdpSettings::validate(Provider::Dex, &i)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--groups-claim"), "{e}");
    }

    #[test]
    fn request_validation() {
        assert!(IdpRequest::validate("", &[]).is_err());
        assert!(IdpRequest::validate(" k8s", &[]).is_err());
        assert!(IdpRequest::validate("k8s", &["not an email".into()]).is_err());
        assert!(IdpRequest::validate("k8s", &["a@b".into(), "a@b".into()]).is_err());
        assert_eq!(
            IdpRequest::validate("k8s", &["a@b".into()]).unwrap().users,
            ["a@b"]
        );
    }

    #[test]
    fn create_command_repeats_the_settings() {
        let s = testutil::settings(Provider::Dex);
        let c = create_command(&s, "\"$ISSUER\"", "kubernetes");
        assert_eq!(c, "k8soidc create --distro k3d --issuer-url \"$ISSUER\" --client-id kubernetes --username-claim email --username-prefix oidc: --groups-claim groups --groups-prefix oidc:");
    }
}

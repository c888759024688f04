//! Amazon EKS: the provider runs the API server, so OIDC is an *identity provider config*
//! associated with the cluster through the EKS API: `aws eks associate-identity-provider-config`
//! (an existing cluster) or the `identityProviders` list of an eksctl `ClusterConfig` (a new
//! one, and `patch --file`). The association takes tens of minutes; it is `CREATING`, then
//! `ACTIVE` (`describe-identity-provider-config`); `disassociate-identity-provider-config`
//! takes it out again.
//!
//! EKS' own rules, refused before anything runs (each with its source):
//! - One OIDC identity provider per cluster: "You can associate one OIDC identity provider to
//!   your cluster" (EKS User Guide, authenticate-oidc-identity-provider.html, Considerations).
//! - The issuer must begin with `https://`, have no query, and "must be publicly accessible
//!   over the internet" (EKS API Reference, `OidcIdentityProviderConfigRequest.issuerUrl`);
//!   "Amazon EKS doesn't support OIDC identity providers with self-signed certificates"
//!   (User Guide), so there is no CA option: `--ca-file` is refused.
//! - `groupsPrefix`: "The prefix can't contain `system:`" (API Reference,
//!   `OidcIdentityProviderConfig.groupsPrefix`). The API states it for groups; k8soidc refuses
//!   it for the username prefix too, because `system:` names are the cluster's own.
//! - `requiredClaims`: keys 1 to 63 characters, values 1 to 253 (API Reference,
//!   `OidcIdentityProviderConfig.requiredClaims` length constraints).
//! - The request has issuer, client id, username claim and prefix, groups claim and prefix and
//!   required claims, nothing else (API Reference, `OidcIdentityProviderConfigRequest`): no
//!   signing algorithms (so `--signing-algs` other than RS256 is refused) and no
//!   AuthenticationConfiguration (`--auth-mode config` is refused).
//! - Every property is "Update requires: Replacement" (CloudFormation
//!   `AWS::EKS::IdentityProviderConfig`): changed settings mean disassociate, wait until it is
//!   gone, associate again.
//! - eksctl's `identityProviders` entries: `name`, `type: oidc`, `issuerURL`, `clientID`,
//!   `usernameClaim`, `usernamePrefix`, `groupsClaim`, `groupsPrefix`, `requiredClaims`
//!   (eksctl `pkg/apis/eksctl.io/v1alpha5/identity_provider.go`, `examples/27-oidc-provider.yaml`).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::{
    AuthMode, Backend, ClusterRequest, Command, Distribution, OidcSettings, Plan, PlanError,
    Progress, Rendering, Step, Target, Until,
};

/// The identity provider config's name when `--idp-config-name` is not given.
pub const DEFAULT_CONFIG_NAME: &str = "k8soidc";
/// Seconds between two `describe-identity-provider-config` polls.
pub const POLL_INTERVAL: u64 = 30;
/// How long an association may take before k8soidc gives up waiting ("tens of minutes").
pub const DEFAULT_TIMEOUT: u64 = 45 * 60;

const API_REF: &str =
    "https://docs.aws.amazon.com/eks/latest/APIReference/API_OidcIdentityProviderConfigRequest.html";
const GUIDE: &str =
    "https://docs.aws.amazon.com/eks/latest/userguide/authenticate-oidc-identity-provider.html";

/// The EKS backend.
#[derive(Debug, Clone, Copy)]
pub struct Eks;

/// The identity provider config's name for this request.
pub fn config_name(req: &ClusterRequest) -> &str {
    req.platform
        .idp_config_name
        .as_deref()
        .unwrap_or(DEFAULT_CONFIG_NAME)
}

fn refuse(field: &'static str, value: impl AsRef<str>, reason: String, fix: &str) -> PlanError {
    PlanError::unrepresentable(Distribution::Eks, field, value, reason, fix)
}

/// Whether `host` can be reached from AWS' network: not loopback, private, link-local, a
/// single label, or a name reserved for local networks.
pub fn public_host(host: &str) -> Result<(), String> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = h.parse::<IpAddr>() {
        let private = match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                v4.is_loopback()
                    || v4.is_private()
                    || v4.is_link_local()
                    || v4.is_unspecified()
                    || (o[0] == 100 && (64..128).contains(&o[1]))
            }
            IpAddr::V6(v6) => {
                let first = v6.segments()[0];
                v6.is_loopback()
                    || v6.is_unspecified()
                    || (first & 0xfe00) == 0xfc00
                    || (first & 0xffc0) == 0xfe80
            }
        };
        return if private {
            Err(format!(
                "`{h}` is a loopback, private or link-local address"
            ))
        } else {
            Ok(())
        };
    }
    let lower = h.to_ascii_lowercase();
    let local_suffix = [
        ".local",
        ".localhost",
        ".internal",
        ".lan",
        ".home.arpa",
        ".localdomain",
    ]
    .iter()
    .find(|s| lower.ends_with(*s));
    if lower == "localhost" || !lower.contains('.') {
        Err(format!("`{h}` is not a public DNS name"))
    } else if let Some(s) = local_suffix {
        Err(format!("`{h}` is in `{s}`, a name for local networks"))
    } else {
        Ok(())
    }
}

/// The host of an `https://` issuer URL (without port).
pub fn issuer_host(url: &str) -> &str {
    let rest = url.strip_prefix("https://").unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    if let Some(inner) = authority.strip_prefix('[') {
        return inner.split(']').next().unwrap_or(inner);
    }
    authority.split(':').next().unwrap_or(authority)
}

/// Refuses what EKS does not take (module docs list each rule and its source).
pub fn check(s: &OidcSettings) -> Result<(), PlanError> {
    if s.structured.is_some() {
        return Err(refuse(
            "jwt",
            "(settings file)",
            "EKS takes one OIDC identity provider config through its API; the settings file's `jwt`/`anonymous` sections need an AuthenticationConfiguration, which EKS does not take".into(),
            "give one issuer with the single-issuer settings (--issuer-url, --client-id, ...)",
        ));
    }
    if s.auth_mode == AuthMode::Config {
        return Err(refuse(
            "--auth-mode",
            "config",
            "EKS takes OIDC as an identity provider config through its API, never an AuthenticationConfiguration file".into(),
            "leave --auth-mode out (or `auto`); the same settings become the association's fields",
        ));
    }
    if let Some(ca) = &s.ca {
        return Err(refuse(
            "--ca-file",
            &ca.local_path,
            format!("EKS has no CA option and \"doesn't support OIDC identity providers with self-signed certificates\" ({GUIDE})"),
            "give the issuer a certificate from a public CA and leave --ca-file out",
        ));
    }
    if let Some(algs) = s
        .signing_algs
        .as_ref()
        .filter(|a| a.as_slice() != ["RS256"])
    {
        return Err(refuse(
            "--signing-algs",
            algs.join(","),
            format!("the EKS association has no signing-algorithms field ({API_REF})"),
            "leave --signing-algs out; sign the ID tokens with RS256",
        ));
    }
    if let Err(why) = public_host(issuer_host(&s.issuer_url)) {
        return Err(refuse(
            "--issuer-url",
            &s.issuer_url,
            format!("{why}; EKS fetches the discovery document and keys itself, so the issuer \"must be publicly accessible over the internet\" ({API_REF})"),
            "use the provider's public https URL (`k8soidc check --distro eks` checks it)",
        ));
    }
    for (field, prefix) in [
        ("--username-prefix", s.effective_username_prefix()),
        ("--groups-prefix", s.effective_groups_prefix()),
    ] {
        if prefix.contains("system:") {
            return Err(refuse(
                field,
                &prefix,
                "EKS refuses a prefix containing `system:` (\"The prefix can't contain system:\", EKS API Reference, OidcIdentityProviderConfig)".into(),
                "use a prefix such as `oidc:`",
            ));
        }
    }
    for (k, v) in &s.required_claims {
        if k.chars().count() > 63 || v.is_empty() || v.chars().count() > 253 {
            return Err(refuse(
                "--required-claim",
                format!("{k}={v}"),
                format!("EKS takes required-claim keys of 1 to 63 characters and values of 1 to 253 ({API_REF})"),
                "shorten the claim name or value",
            ));
        }
    }
    Ok(())
}

/// What an association holds (as `describe-identity-provider-config` shows it), or should.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Association {
    /// `identityProviderConfigName`.
    pub identity_provider_config_name: String,
    /// `issuerUrl`.
    pub issuer_url: String,
    /// `clientId`.
    pub client_id: String,
    /// `usernameClaim`.
    pub username_claim: String,
    /// `usernamePrefix` (always explicit: `-` for none).
    pub username_prefix: String,
    /// `groupsClaim`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<String>,
    /// `groupsPrefix` (absent when empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub groups_prefix: Option<String>,
    /// `requiredClaims`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub required_claims: BTreeMap<String, String>,
    /// `status` (`CREATING`, `ACTIVE`, `DELETING`); not part of a request.
    #[serde(skip)]
    pub status: String,
}

impl Association {
    /// The association the settings ask for.
    pub fn wanted(s: &OidcSettings, name: &str) -> Self {
        Association {
            identity_provider_config_name: name.to_string(),
            issuer_url: s.issuer_url.clone(),
            client_id: s.client_id.clone(),
            username_claim: s.username_claim.clone(),
            username_prefix: s.username_prefix_flag(),
            groups_claim: s.groups_claim.clone(),
            groups_prefix: s
                .groups_claim
                .as_ref()
                .map(|_| s.effective_groups_prefix())
                .filter(|p| !p.is_empty()),
            required_claims: s.required_claims.iter().cloned().collect(),
            status: String::new(),
        }
    }

    /// The `--oidc` argument of `associate-identity-provider-config`, as JSON (which the AWS
    /// CLI takes for any structure, with no shorthand escaping of `,` or `=`).
    pub fn request_json(&self) -> String {
        serde_json::to_string(self).expect("strings always serialise")
    }

    /// Same settings (status aside).
    fn same_settings(&self, other: &Association) -> bool {
        Association {
            status: String::new(),
            ..self.clone()
        } == Association {
            status: String::new(),
            ..other.clone()
        }
    }
}

fn aws(req: &ClusterRequest, args: &[&str]) -> Command {
    let mut argv: Vec<String> = vec!["eks".into()];
    argv.extend(args.iter().map(|a| a.to_string()));
    argv.extend(["--cluster-name".to_string(), req.name.clone()]);
    if let Some(r) = &req.platform.region {
        argv.extend(["--region".to_string(), r.clone()]);
    }
    argv.extend(["--output".to_string(), "json".to_string()]);
    Command::new("aws", argv)
}

fn config_ref(name: &str) -> String {
    format!("type=oidc,name={name}")
}

/// `aws eks list-identity-provider-configs`.
pub fn list(req: &ClusterRequest) -> Command {
    aws(req, &["list-identity-provider-configs"])
}

/// `aws eks describe-identity-provider-config` of config `name`.
pub fn describe(req: &ClusterRequest, name: &str) -> Command {
    aws(
        req,
        &[
            "describe-identity-provider-config",
            "--identity-provider-config",
            &config_ref(name),
        ],
    )
}

/// `aws eks associate-identity-provider-config` with the settings.
pub fn associate(req: &ClusterRequest, wanted: &Association) -> Command {
    aws(
        req,
        &[
            "associate-identity-provider-config",
            "--oidc",
            &wanted.request_json(),
        ],
    )
}

/// `aws eks disassociate-identity-provider-config` of config `name`.
pub fn disassociate(req: &ClusterRequest, name: &str) -> Command {
    aws(
        req,
        &[
            "disassociate-identity-provider-config",
            "--identity-provider-config",
            &config_ref(name),
        ],
    )
}

fn bad_output(command: &str, why: impl std::fmt::Display) -> PlanError {
    PlanError::patch(
        format!("the output of `aws eks {command}`"),
        format!("it is not what the EKS API returns ({why})"),
        "check the AWS CLI (`aws --version`, v2) and run the command by hand",
    )
}

/// The OIDC config names `list-identity-provider-configs` printed.
pub fn parse_list(output: &str) -> Result<Vec<String>, PlanError> {
    let cmd = "list-identity-provider-configs";
    let v: serde_json::Value =
        serde_json::from_str(output).map_err(|e| bad_output(cmd, format!("not JSON: {e}")))?;
    let items = v
        .get("identityProviderConfigs")
        .and_then(serde_json::Value::as_array)
        .ok_or_else(|| bad_output(cmd, "no `identityProviderConfigs` list"))?;
    Ok(items
        .iter()
        .filter(|i| i.get("type").and_then(serde_json::Value::as_str) == Some("oidc"))
        .filter_map(|i| i.get("name").and_then(serde_json::Value::as_str))
        .map(str::to_string)
        .collect())
}

/// The association `describe-identity-provider-config` printed.
pub fn parse_describe(output: &str) -> Result<Association, PlanError> {
    let cmd = "describe-identity-provider-config";
    let v: serde_json::Value =
        serde_json::from_str(output).map_err(|e| bad_output(cmd, format!("not JSON: {e}")))?;
    let o = v
        .pointer("/identityProviderConfig/oidc")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| bad_output(cmd, "no `identityProviderConfig.oidc` object"))?;
    let text = |k: &str| {
        o.get(k)
            .and_then(serde_json::Value::as_str)
            .map(str::to_string)
    };
    let need = |k: &str| text(k).ok_or_else(|| bad_output(cmd, format!("no `{k}`")));
    let required_claims = o
        .get("requiredClaims")
        .and_then(serde_json::Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default();
    Ok(Association {
        identity_provider_config_name: need("identityProviderConfigName")?,
        issuer_url: need("issuerUrl")?,
        client_id: need("clientId")?,
        username_claim: text("usernameClaim").unwrap_or_else(|| "sub".into()),
        username_prefix: text("usernamePrefix").unwrap_or_default(),
        groups_claim: text("groupsClaim").filter(|c| !c.is_empty()),
        groups_prefix: text("groupsPrefix").filter(|p| !p.is_empty()),
        required_claims,
        status: need("status")?,
    })
}

/// [`Until::EksActive`]: one `describe-identity-provider-config` output.
pub(crate) fn active_progress(output: &str, name: &str) -> Result<Progress, PlanError> {
    let a = parse_describe(output)?;
    match a.status.as_str() {
        "ACTIVE" => Ok(Progress::Done(format!("`{name}` is ACTIVE"))),
        "CREATING" => Ok(Progress::Pending(format!("`{name}` is CREATING"))),
        other => Err(PlanError::patch(
            format!("identity provider config `{name}`"),
            format!("its status is `{}` while k8soidc waits for ACTIVE", crate::escape(other)),
            "see `aws eks describe-identity-provider-config` and the cluster's update history (`aws eks list-updates`)",
        )),
    }
}

/// [`Until::EksGone`]: one `list-identity-provider-configs` output.
pub(crate) fn gone_progress(output: &str, name: &str) -> Result<Progress, PlanError> {
    if parse_list(output)?.iter().any(|n| n == name) {
        Ok(Progress::Pending(format!(
            "`{name}` is still associated (DELETING)"
        )))
    } else {
        Ok(Progress::Done(format!("`{name}` is disassociated")))
    }
}

fn poll(req: &ClusterRequest, until: Until, timeout: u64, why: String) -> Step {
    // Only the two EKS conditions are built here (`await_active`, `await_gone`).
    let command = match &until {
        Until::EksActive { name } => describe(req, name),
        _ => list(req),
    };
    Step::Await {
        on: Target::Local,
        read: command,
        until,
        interval_secs: req.platform.poll_interval.unwrap_or(POLL_INTERVAL),
        timeout_secs: timeout,
        why,
    }
}

/// The plan that brings a running cluster to the settings (`None`: remove them), given the
/// OIDC configs it has (`current`: each described). `Ok(None)`: nothing to do.
pub fn patch_plan(
    s: Option<&OidcSettings>,
    req: &ClusterRequest,
    current: &[Association],
    timeout: u64,
) -> Result<Option<Plan>, PlanError> {
    let name = config_name(req).to_string();
    let cluster = &req.name;
    let ours = current
        .iter()
        .find(|a| a.identity_provider_config_name == name);
    let other = current
        .iter()
        .find(|a| a.identity_provider_config_name != name);
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    let Some(s) = s else {
        let Some(a) = ours else {
            if let Some(o) = other {
                return Err(PlanError::Unsupported {
                    distribution: Distribution::Eks,
                    message: format!(
                        "cluster `{cluster}` has no identity provider config `{name}`, but has `{}` (issuer {}), which k8soidc did not name; to remove that one, add `--idp-config-name {}`",
                        o.identity_provider_config_name, o.issuer_url, o.identity_provider_config_name
                    ),
                });
            }
            return Ok(None);
        };
        if a.status != "DELETING" {
            steps.push(Step::run(
                disassociate(req, &name),
                format!(
                    "disassociate identity provider config `{name}` from EKS cluster `{cluster}`"
                ),
            ));
        }
        steps.push(poll(
            req,
            Until::EksGone { name: name.clone() },
            timeout,
            format!("wait until EKS has removed `{name}` (OIDC logins stop working then)"),
        ));
        return Ok(Some(Plan {
            title: format!(
                "remove OIDC identity provider config `{name}` from EKS cluster `{cluster}`"
            ),
            steps,
            notes,
        }));
    };
    check(s)?;
    if let Some(o) = other {
        return Err(PlanError::Unsupported {
            distribution: Distribution::Eks,
            message: format!(
                "cluster `{cluster}` already has OIDC identity provider config `{}` (issuer {}) and EKS allows one per cluster ({GUIDE}); remove it first (`k8soidc patch --distro eks --name {cluster} --remove --idp-config-name {}`) or replace it with `--idp-config-name {}`",
                o.identity_provider_config_name, o.issuer_url, o.identity_provider_config_name, o.identity_provider_config_name
            ),
        });
    }
    let wanted = Association::wanted(s, &name);
    match ours {
        Some(a) if a.same_settings(&wanted) && a.status == "ACTIVE" => return Ok(None),
        Some(a) if a.same_settings(&wanted) && a.status == "CREATING" => {
            notes.push(format!(
                "`{name}` already has these settings and is CREATING"
            ));
        }
        Some(a) => {
            notes.push(format!(
                "EKS cannot change an association in place (every property \"Update requires: Replacement\", CloudFormation AWS::EKS::IdentityProviderConfig): `{name}` is disassociated first, so OIDC logins fail until the new one is ACTIVE"
            ));
            if a.status != "DELETING" {
                steps.push(Step::run(
                    disassociate(req, &name),
                    format!(
                        "disassociate the current `{name}` (issuer {})",
                        a.issuer_url
                    ),
                ));
            }
            steps.push(poll(
                req,
                Until::EksGone { name: name.clone() },
                timeout,
                format!("wait until EKS has removed the old `{name}`"),
            ));
        }
        None => {}
    }
    if !ours.is_some_and(|a| a.same_settings(&wanted) && a.status == "CREATING") {
        steps.push(Step::run(
            associate(req, &wanted),
            format!(
                "associate OIDC identity provider config `{name}` with EKS cluster `{cluster}`"
            ),
        ));
    }
    steps.push(poll(
        req,
        Until::EksActive { name: name.clone() },
        timeout,
        format!("wait until `{name}` is ACTIVE (EKS takes tens of minutes)"),
    ));
    Ok(Some(Plan {
        title: format!("set OIDC on EKS cluster `{cluster}` (identity provider config `{name}`)"),
        steps,
        notes,
    }))
}

impl Backend for Eks {
    fn distribution(&self) -> Distribution {
        Distribution::Eks
    }

    fn required_programs(&self) -> &'static [(&'static str, &'static str)] {
        &[("eksctl", "install eksctl: https://eksctl.io/installation/")]
    }

    fn render(&self, s: &OidcSettings, req: &ClusterRequest) -> Result<Rendering, PlanError> {
        check(s)?;
        let mut r = Rendering::new(Distribution::Eks, s)?;
        r.via = Some("OIDC identity provider config (EKS API)".into());
        r.warnings = s.warnings.clone();
        r.warnings.push(format!(
            "EKS fetches the issuer's discovery document itself: it must be reachable from the internet with a publicly trusted certificate ({GUIDE})"
        ));
        let name = config_name(req);
        let wanted = Association::wanted(s, name);
        let mut shell = format!("{}\n", associate(req, &wanted).to_shell());
        shell.push_str(&format!(
            "# then wait (tens of minutes) until `status` is ACTIVE:\n{}\n",
            describe(req, name).to_shell()
        ));
        r.push(
            "an existing cluster, with the AWS CLI (what `k8soidc patch --distro eks` runs)",
            None,
            "shell",
            shell,
        );
        r.push(
            "eksctl ClusterConfig: `identityProviders` (new cluster: `eksctl create cluster -f`; existing: `eksctl associate identityprovider -f`)",
            None,
            "yaml",
            eksctl_snippet(s, name),
        );
        Ok(r)
    }

    fn create_plan(&self, s: &OidcSettings, req: &ClusterRequest) -> Result<Plan, PlanError> {
        check(s)?;
        let r = self.render(s, req)?;
        let file = format!("{}/eksctl-config.yaml", req.staging_dir);
        let mut args = vec![
            "create".to_string(),
            "cluster".into(),
            "-f".into(),
            file.clone(),
        ];
        args.extend(req.extra_args.iter().cloned());
        Ok(Plan {
            title: format!("create EKS cluster `{}` with OIDC (eksctl)", req.name),
            notes: r.summary(),
            steps: vec![
                Step::WriteFile {
                    on: Target::Local,
                    path: file,
                    before: None,
                    after: cluster_config(s, req)?,
                    mode: 0o644,
                    why: "write the eksctl ClusterConfig with the OIDC identity provider".into(),
                },
                Step::run(
                    Command::new("eksctl", args),
                    format!("create EKS cluster `{}`; eksctl associates the identity provider once the cluster is up", req.name),
                ),
            ],
        })
    }
}

mod eksctl;

pub use eksctl::{cluster_config, eksctl_snippet, merge_cluster_config};

#[cfg(test)]
mod tests;

/// What `k8soidc check --distro eks` adds: EKS fetches the issuer from AWS' network, so the
/// host must be public and the certificate publicly trusted (no `--ca-file`). `fetched`: this
/// machine fetched the discovery document with the system roots only.
pub fn preflight(s: &OidcSettings, fetched: bool) -> Vec<crate::preflight::Check> {
    use crate::preflight::Check;
    let host = issuer_host(&s.issuer_url);
    let mut out = vec![match public_host(host) {
        Err(why) => Check::fail(
            "eks-public-issuer",
            format!("{why}: EKS fetches the discovery document and keys from AWS' network, so the issuer must be publicly reachable over https ({API_REF})"),
            "serve the provider at a public https URL and use it as --issuer-url",
        ),
        Ok(()) => Check::pass(
            "eks-public-issuer",
            format!("`{host}` is a public name; EKS must reach it from the internet (checked from here only)"),
        ),
    }];
    out.push(match (&s.ca, fetched) {
        (Some(ca), _) => Check::fail(
            "eks-certificate",
            format!("--ca-file {} given: EKS has no CA option and does not accept self-signed or private-CA certificates ({GUIDE})", ca.local_path),
            "give the provider a certificate from a public CA and leave --ca-file out",
        ),
        (None, true) => Check::pass(
            "eks-certificate",
            "the issuer's certificate is trusted by the system roots, without --ca-file",
        ),
        (None, false) => Check::warn(
            "eks-certificate",
            "the discovery document could not be fetched (see above), so the certificate is unchecked",
            "EKS needs a publicly trusted certificate",
        ),
    });
    out
}

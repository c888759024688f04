//! # k8soidc-backends: pure planning for API-server OIDC
//!
//! The contract of this crate: **no I/O, deterministic**. Nothing here reads a file, runs a
//! program, looks at the clock or the environment. Settings (and facts the binary observed)
//! go in; [`Rendering`]s, [`Plan`]s and patched text come out. The binary owns every side
//! effect, so a dry run is just `Display` of the same plan the executor runs, and every
//! backend is testable by value. `Cargo.toml` enforces it: no tokio, ssh, process or
//! terminal crates.

#![warn(missing_docs)]

pub mod aks;
pub mod apiserver;
pub mod authn;
pub mod capi;
pub mod charmed;
pub mod create_node;
pub mod eks;
mod error;
pub mod gardener;
pub mod gke;
pub mod identity;
pub mod idp;
pub mod k0s;
pub mod k3d;
pub mod k3s;
pub mod kind;
pub mod kops;
pub mod kubeadm;
pub mod kubeconfig;
pub mod kubespray;
pub mod live;
pub mod manifest;
pub mod microk8s;
pub mod migrate;
pub mod node;
pub mod patch;
mod plan;
pub mod preflight;
pub mod rbac;
pub mod reserved;
pub mod settings;
pub mod shell;
pub mod source;
pub mod talos;
pub mod vcluster;
mod version;
mod yamlout;
mod yamltext;

use std::fmt;

use serde::Serialize;

pub use error::{escape, PlanError};
pub use plan::{
    poll_count, redact, unified_diff, Command, Plan, PlanDisplay, Progress, Step, Target, Until,
    K8SOIDC,
};
pub use settings::{AuthMode, CaBundle, ConfigApiVersion, Mode, OidcSettings, SettingsInput};
pub use source::Source;
pub use version::KubeVersion;

/// The distributions k8soidc knows. A closed set: one module each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Distribution {
    /// k3d v5 (k3s in Docker).
    K3d,
    /// kind (kubeadm in Docker).
    Kind,
    /// kubeadm.
    Kubeadm,
    /// kOps.
    Kops,
    /// Canonical MicroK8s.
    Microk8s,
    /// Charmed Kubernetes (Juju).
    Charmed,
    /// k3s.
    K3s,
    /// RKE2.
    Rke2,
    /// Cluster API (`KubeadmControlPlane` on a management cluster).
    Capi,
    /// kubespray (Ansible group_vars).
    Kubespray,
    /// Amazon EKS (an OIDC identity provider config associated through the AWS API).
    Eks,
    /// Google GKE (Workforce Identity Federation; Identity Service for GKE, deprecated).
    Gke,
    /// Azure AKS (JWT authenticators, a preview: only with `--aks-preview`).
    Aks,
    /// k0s (`spec.api.extraArgs` in k0s.yaml or a k0sctl cluster file).
    K0s,
    /// Talos Linux (machine configuration patches).
    Talos,
    /// vCluster (vcluster.yaml, `vcluster create`).
    Vcluster,
    /// Gardener (a Shoot in the garden cluster).
    Gardener,
}

impl Distribution {
    /// Every distribution, for conformance tests and help text.
    pub const ALL: [Distribution; 17] = [
        Distribution::K3d,
        Distribution::Kind,
        Distribution::Kubeadm,
        Distribution::Kops,
        Distribution::Microk8s,
        Distribution::Charmed,
        Distribution::K3s,
        Distribution::Rke2,
        Distribution::Capi,
        Distribution::Kubespray,
        Distribution::Eks,
        Distribution::Gke,
        Distribution::Aks,
        Distribution::K0s,
        Distribution::Talos,
        Distribution::Vcluster,
        Distribution::Gardener,
    ];

    /// The lowercase name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Distribution::K3d => "k3d",
            Distribution::Kind => "kind",
            Distribution::Kubeadm => "kubeadm",
            Distribution::Kops => "kops",
            Distribution::Microk8s => "microk8s",
            Distribution::Charmed => "charmed",
            Distribution::K3s => "k3s",
            Distribution::Rke2 => "rke2",
            Distribution::Capi => "capi",
            Distribution::Kubespray => "kubespray",
            Distribution::Eks => "eks",
            Distribution::Gke => "gke",
            Distribution::Aks => "aks",
            Distribution::K0s => "k0s",
            Distribution::Talos => "talos",
            Distribution::Vcluster => "vcluster",
            Distribution::Gardener => "gardener",
        }
    }

    /// A managed service: the provider runs the API server, its API takes the settings.
    pub fn is_managed(self) -> bool {
        matches!(
            self,
            Distribution::Eks | Distribution::Gke | Distribution::Aks
        )
    }

    /// Parses a name as given to `--distro`.
    pub fn parse(text: &str) -> Result<Self, PlanError> {
        Distribution::ALL
            .into_iter()
            .find(|d| d.name() == text)
            .ok_or_else(|| {
                PlanError::invalid(
                    "--distro",
                    text,
                    "unknown distribution",
                    format!(
                        "use one of {}",
                        Distribution::ALL.map(Distribution::name).join(", ")
                    ),
                )
            })
    }
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a managed cluster lives and what its provider's API needs besides the OIDC settings
/// (`--region`, `--idp-config-name`, ...); empty for the other distributions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    /// EKS: the AWS region (`aws --region`, eksctl `metadata.region`); none: the AWS CLI's own.
    pub region: Option<String>,
    /// EKS: the identity provider config's name [default: `k8soidc`].
    pub idp_config_name: Option<String>,
    /// Seconds between polls of the provider's API while waiting [default: the platform's].
    pub poll_interval: Option<u64>,
    /// GKE: the Workforce Identity Federation pool id [default: `k8soidc-pool`].
    pub workforce_pool: Option<String>,
    /// GKE: the Google Cloud organization id that owns the workforce pool.
    pub organization: Option<String>,
    /// GKE: render for Identity Service for GKE (deprecated) instead.
    pub identity_service: bool,
    /// AKS: the resource group of the cluster.
    pub resource_group: Option<String>,
    /// AKS: the user accepts AKS' structured authentication although it is a preview.
    pub aks_preview: bool,
}

/// What a cluster is called and where local files for it are staged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRequest {
    /// Cluster name (`--name`).
    pub name: String,
    /// Absolute local directory for files the cluster must mount (CA, auth config).
    pub staging_dir: String,
    /// Extra arguments passed through to the distribution's own tool (after `--`).
    pub extra_args: Vec<String>,
    /// Managed services: where the cluster lives.
    pub platform: Platform,
}

/// One piece of rendered output: a file, a snippet or a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// What it is and where it goes.
    pub title: String,
    /// Path it belongs at, when it is a file.
    pub path: Option<String>,
    /// `yaml`, `shell` or `text`.
    pub language: &'static str,
    /// The content.
    pub content: String,
}

/// What [`Backend::render`] returns: the settings in one distribution's own syntax.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rendering {
    /// The distribution.
    pub distribution: Distribution,
    /// The mode rendered (`auto` resolved).
    pub mode: Mode,
    /// Username prefix the API server will apply ("" = none), and why.
    pub username_prefix: String,
    /// Why the username prefix is what it is.
    pub username_prefix_reason: String,
    /// Groups prefix ("" = none).
    pub groups_prefix: String,
    /// What a sample token becomes.
    pub sample: String,
    /// The rendered pieces.
    pub artifacts: Vec<Artifact>,
    /// Things the user should know.
    pub warnings: Vec<String>,
    /// How the settings reach the API server when it is not a flag or file k8soidc writes
    /// (managed services: the provider's API); shown instead of the mode.
    pub via: Option<String>,
}

impl Rendering {
    /// The common header; backends add artifacts.
    pub fn new(distribution: Distribution, s: &OidcSettings) -> Result<Self, PlanError> {
        let mode = s.mode()?;
        let mut warnings = s.warnings.clone();
        warnings.extend(apiserver::mode_warnings(s, mode));
        warnings.extend(reserved::override_note(s));
        if let Some(st) = &s.structured {
            let list: Vec<String> = st
                .jwt
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    format!(
                        "jwt[{i}] {} (audiences {})",
                        a.issuer.url,
                        a.issuer.audiences.join(", ")
                    )
                })
                .collect();
            return Ok(Rendering {
                distribution,
                mode,
                username_prefix: s.effective_username_prefix(),
                username_prefix_reason: "of jwt[0]; each authenticator has its own claimMappings"
                    .to_string(),
                groups_prefix: s.effective_groups_prefix(),
                sample: format!(
                    "{} JWT authenticator(s) from the settings file: {}{}",
                    st.jwt.len(),
                    list.join("; "),
                    if st.anonymous.is_some() {
                        "; anonymous section included"
                    } else {
                        ""
                    }
                ),
                artifacts: Vec::new(),
                warnings,
                via: None,
            });
        }
        Ok(Rendering {
            distribution,
            mode,
            username_prefix: s.effective_username_prefix(),
            username_prefix_reason: s.username_prefix_reason(),
            groups_prefix: s.effective_groups_prefix(),
            sample: identity::describe_sample(s),
            artifacts: Vec::new(),
            warnings,
            via: None,
        })
    }

    /// Adds an artifact.
    pub fn push(
        &mut self,
        title: impl Into<String>,
        path: Option<String>,
        language: &'static str,
        content: impl Into<String>,
    ) {
        self.artifacts.push(Artifact {
            title: title.into(),
            path,
            language,
            content: content.into(),
        });
    }

    /// The explanation lines shared by the text output and every plan.
    pub fn summary(&self) -> Vec<String> {
        let mode = match self.mode {
            _ if self.via.is_some() => self.via.clone().unwrap_or_default(),
            Mode::Flags => "--oidc-* flags".to_string(),
            Mode::Config(v) => format!(
                "AuthenticationConfiguration {} via --authentication-config",
                v.api_version()
            ),
        };
        let show = |p: &str| {
            if p.is_empty() {
                "none".to_string()
            } else {
                format!("`{p}`")
            }
        };
        let mut lines = vec![
            format!("{}: {mode}", self.distribution),
            format!(
                "username prefix: {} ({})",
                show(&self.username_prefix),
                self.username_prefix_reason
            ),
            format!("groups prefix: {}", show(&self.groups_prefix)),
            self.sample.clone(),
        ];
        lines.extend(self.warnings.iter().map(|w| format!("warning: {w}")));
        lines
    }
}

impl fmt::Display for Rendering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in self.summary() {
            writeln!(f, "# {line}")?;
        }
        for a in &self.artifacts {
            writeln!(f)?;
            match &a.path {
                Some(p) => writeln!(f, "# {} ({p})", a.title)?,
                None => writeln!(f, "# {}", a.title)?,
            }
            write!(f, "{}", a.content)?;
            if !a.content.ends_with('\n') {
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

/// A distribution-specific planner. Implementations are pure: same inputs, same output.
pub trait Backend {
    /// Which distribution this is.
    fn distribution(&self) -> Distribution;

    /// Programs `create` needs on this machine, with how to install each.
    fn required_programs(&self) -> &'static [(&'static str, &'static str)] {
        &[]
    }

    /// The settings in this distribution's own syntax.
    fn render(&self, s: &OidcSettings, req: &ClusterRequest) -> Result<Rendering, PlanError>;

    /// The steps that create a new cluster with OIDC configured.
    fn create_plan(&self, s: &OidcSettings, req: &ClusterRequest) -> Result<Plan, PlanError> {
        let _ = (s, req);
        Err(PlanError::Unsupported {
            distribution: self.distribution(),
            message: "`create` runs on hosts for this distribution (comes with `--ssh`); use `render` to see the configuration".into(),
        })
    }
}

/// The one place a distribution is turned into its backend.
pub fn backend(d: Distribution) -> Box<dyn Backend> {
    match d {
        Distribution::K3d => Box::new(k3d::K3d),
        Distribution::Kind => Box::new(kind::Kind),
        Distribution::Kubeadm => Box::new(kubeadm::Kubeadm),
        Distribution::Kops => Box::new(kops::Kops),
        Distribution::Microk8s => Box::new(microk8s::Microk8s),
        Distribution::Charmed => Box::new(charmed::Charmed),
        Distribution::K3s => Box::new(k3s::K3s {
            distribution: Distribution::K3s,
        }),
        Distribution::Rke2 => Box::new(k3s::K3s {
            distribution: Distribution::Rke2,
        }),
        Distribution::Capi => Box::new(capi::Capi),
        Distribution::Kubespray => Box::new(kubespray::Kubespray),
        Distribution::Eks => Box::new(eks::Eks),
        Distribution::Gke => Box::new(gke::Gke),
        Distribution::Aks => Box::new(aks::Aks),
        Distribution::K0s => Box::new(k0s::K0s),
        Distribution::Talos => Box::new(talos::Talos),
        Distribution::Vcluster => Box::new(vcluster::Vcluster),
        Distribution::Gardener => Box::new(gardener::Gardener),
    }
}

/// Every value that ends up in a distribution's syntax, with the flag it came from.
pub fn rendered_values(s: &OidcSettings) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("--issuer-url", s.issuer_url.clone()),
        ("--client-id", s.client_id.clone()),
        ("--username-claim", s.username_claim.clone()),
        ("--username-prefix", s.username_prefix_flag()),
    ];
    if let Some(c) = &s.groups_claim {
        v.push(("--groups-claim", c.clone()));
        v.push(("--groups-prefix", s.effective_groups_prefix()));
    }
    for (k, val) in &s.required_claims {
        v.push(("--required-claim", format!("{k}={val}")));
    }
    v
}

/// Refuses the first rendered value containing a character the distribution cannot carry.
/// `rules` pairs a character with the reason it cannot be carried.
pub fn refuse_chars(
    d: Distribution,
    s: &OidcSettings,
    rules: &[(char, &str)],
) -> Result<(), PlanError> {
    for (field, value) in rendered_values(s) {
        for (c, reason) in rules {
            if value.contains(*c) {
                return Err(PlanError::unrepresentable(
                    d,
                    field,
                    &value,
                    *reason,
                    "choose a value without it, or use a distribution that can carry it",
                ));
            }
        }
    }
    Ok(())
}

/// Refuses a second `--required-claim` where `d` holds the flag only once (a map or a dict).
/// Only flags mode is checked: in config mode required claims are `claimValidationRules`,
/// any number of them. `reason` says why `d` cannot repeat it; `fix` what to do instead.
pub fn refuse_repeated_claims(
    d: Distribution,
    s: &OidcSettings,
    reason: &str,
    fix: &str,
) -> Result<(), PlanError> {
    if s.mode()? != Mode::Flags || s.required_claims.len() < 2 {
        return Ok(());
    }
    let all: Vec<String> = s
        .required_claims
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    Err(PlanError::unrepresentable(
        d,
        "--required-claim",
        all.join(" "),
        reason,
        fix,
    ))
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    pub(crate) fn input() -> SettingsInput {
        SettingsInput {
            issuer_url: Some("https://idp.example.com".into()),
            client_id: Some("kubernetes".into()),
            username_claim: Some("email".into()),
            username_prefix: Some("oidc:".into()),
            groups_claim: Some("groups".into()),
            groups_prefix: Some("oidc:".into()),
            ..Default::default()
        }
    }

    pub(crate) fn settings() -> OidcSettings {
        OidcSettings::validate(&input(), None).unwrap()
    }

    pub(crate) fn with(f: impl FnOnce(&mut SettingsInput)) -> OidcSettings {
        let mut i = input();
        f(&mut i);
        OidcSettings::validate(&i, None).unwrap()
    }

    pub(crate) fn ca() -> CaBundle {
        CaBundle {
            local_path: "/home/me/idp-ca.pem".into(),
            pem: "-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n".into(),
        }
    }

    pub(crate) fn request() -> ClusterRequest {
        ClusterRequest {
            name: "oidc".into(),
            staging_dir: "/home/me/.local/share/k8soidc/oidc".into(),
            extra_args: vec![],
            // AKS renders only with its preview accepted; the others ignore it.
            platform: Platform {
                aks_preview: true,
                ..Platform::default()
            },
        }
    }
}
#[cfg(test)]
mod conformance;

//! Patching a running control plane: the pure half. The binary reads files from a node (over
//! SSH or locally) and hands them here as [`NodeFiles`]; this module detects the distribution,
//! computes the new contents with the distribution's patcher, and returns a [`HostPlan`]: the
//! [`Plan`] shown by `--dry-run` (real `before` contents, so the diff is real) plus what the
//! executor needs to run it as a transaction (the health check and the flags a healthy API
//! server must carry before and after).
//!
//! Facts (sources in ../shared/reference/distros.md):
//! - kubeadm: the API server is the static pod `/etc/kubernetes/manifests/kube-apiserver.yaml`
//!   (mode 0600); the kubelet runs every non-dot file of that directory, so nothing else may be
//!   written there (kubernetes/kubernetes#55596). `/etc/kubernetes/pki` is mounted into the pod
//!   as a directory (kubeadm `cmd/kubeadm/app/phases/controlplane/volumes.go`), so files placed
//!   there are visible without a new volume. Health: the manifest's own readinessProbe
//!   (`/readyz` at its host, port and scheme; `cmd/kubeadm/app/phases/controlplane/manifests.go`).
//! - MicroK8s: flags in `/var/snap/microk8s/current/args/kube-apiserver`, applied by
//!   `microk8s stop` + `microk8s start`; API on port 16443 (canonical.com/microk8s/docs/configuring-services).
//! - k3s / RKE2: `kube-apiserver-arg` list in `/etc/rancher/{k3s,rke2}/config.yaml`, applied by
//!   `systemctl restart k3s` / `rke2-server` (k3s-io/docs `docs/upgrades/manual.md`); API on 6443.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::apiserver::{self, Arg};
use crate::kubeadm;
use crate::manifest;
use crate::{Command, Distribution, Mode, OidcSettings, Plan, PlanError, Step, Target};

/// The kubeadm static pod manifest of the API server.
pub const KUBEADM_MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";
/// The directory the kubelet watches on kubeadm nodes.
pub const KUBEADM_MANIFESTS_DIR: &str = "/etc/kubernetes/manifests";
/// kubeadm's certificate directory, mounted into the API server pod.
pub const KUBEADM_PKI: &str = "/etc/kubernetes/pki";
/// MicroK8s' kube-apiserver arguments file.
pub const MICROK8S_ARGS: &str = "/var/snap/microk8s/current/args/kube-apiserver";
/// k3s' config file.
pub const K3S_CONFIG: &str = "/etc/rancher/k3s/config.yaml";
/// RKE2's config file.
pub const RKE2_CONFIG: &str = "/etc/rancher/rke2/config.yaml";

/// Where k8soidc keeps its lock and backups on a node (never inside a watched directory).
pub const STATE_DIR: &str = "/var/lib/k8soidc";

/// Files read from a node: absolute path → content (None: the file does not exist).
pub type NodeFiles = BTreeMap<String, Option<String>>;

/// Directory holding the CA / AuthenticationConfiguration on a node of `d`.
pub fn node_dir(d: Distribution) -> &'static str {
    match d {
        Distribution::Microk8s => "/var/snap/microk8s/current/certs",
        Distribution::K3s => "/etc/rancher/k3s",
        Distribution::Rke2 => "/etc/rancher/rke2",
        _ => KUBEADM_PKI,
    }
}

/// The main file k8soidc patches on a node of `d`.
pub fn target_file(d: Distribution) -> Result<&'static str, PlanError> {
    match d {
        Distribution::Kubeadm => Ok(KUBEADM_MANIFEST),
        Distribution::Microk8s => Ok(MICROK8S_ARGS),
        Distribution::K3s => Ok(K3S_CONFIG),
        Distribution::Rke2 => Ok(RKE2_CONFIG),
        other => Err(PlanError::Unsupported {
            distribution: other,
            message: "`patch --ssh` supports kubeadm, microk8s, k3s and rke2 nodes; use `render` or `create` for this distribution".into(),
        }),
    }
}

/// Every file to read from a node: the candidates for detection (or the target of `d`) and
/// the node files k8soidc may write.
pub fn probe_paths(d: Option<Distribution>) -> Vec<String> {
    let ds = match d {
        Some(d) => vec![d],
        None => vec![
            Distribution::Kubeadm,
            Distribution::Microk8s,
            Distribution::K3s,
            Distribution::Rke2,
        ],
    };
    let mut paths = Vec::new();
    for d in ds {
        if let Ok(t) = target_file(d) {
            paths.push(t.to_string());
            let dir = node_dir(d);
            paths.push(format!("{dir}/{}", apiserver::CA_FILE));
            paths.push(format!("{dir}/{}", apiserver::AUTH_CONFIG_FILE));
        }
    }
    paths
}

/// Which distribution a node runs, from the files found on it.
pub fn detect(host: &str, files: &NodeFiles) -> Result<Distribution, PlanError> {
    let has = |p: &str| matches!(files.get(p), Some(Some(_)));
    let found: Vec<Distribution> = [
        Distribution::Kubeadm,
        Distribution::Microk8s,
        Distribution::K3s,
        Distribution::Rke2,
    ]
    .into_iter()
    .filter(|d| target_file(*d).map(has).unwrap_or(false))
    .collect();
    match found.as_slice() {
        [d] => Ok(*d),
        [] => Err(PlanError::Patch {
            what: format!("host `{host}`"),
            reason: format!(
                "no control plane found (none of {KUBEADM_MANIFEST}, {MICROK8S_ARGS}, {K3S_CONFIG}, {RKE2_CONFIG} exists)"
            ),
            fix: "run it against a control-plane node, or say which with --distro".into(),
        }),
        many => Err(PlanError::Patch {
            what: format!("host `{host}`"),
            reason: format!(
                "it looks like several distributions ({})",
                many.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ")
            ),
            fix: "say which with --distro".into(),
        }),
    }
}

/// How the executor decides that the API server runs the wanted configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Health {
    /// The readiness URL (`/readyz`) the node itself uses.
    pub readyz: String,
    /// The liveness URL (`/livez`), tried when `/readyz` is not served (older versions).
    pub livez: String,
    /// When the API server's flags are on its command line (static pods): the program name
    /// to look for in `/proc/*/cmdline`. None when it runs inside another process (kubelite, k3s).
    pub process: Option<String>,
    /// The `--oidc-*` / `--authentication-config` flags of a healthy process after the change.
    pub flags_after: Vec<String>,
    /// The same before the change (what a rollback must bring back).
    pub flags_before: Vec<String>,
    /// The systemd unit whose state counts (k3s, RKE2).
    pub unit: Option<String>,
    /// Give up after this many seconds.
    pub timeout_secs: u64,
}

/// Everything about one host: the plan to show and run, and how to check it worked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPlan {
    /// The host as given to `--ssh`.
    pub host: String,
    /// The distribution found (or given).
    pub distribution: Distribution,
    /// WriteFile steps (only files that change), then Run steps (restarts), then one WaitFor.
    /// Empty steps: already configured.
    pub plan: Plan,
    /// The health check.
    pub health: Health,
}

impl HostPlan {
    /// True when nothing needs to change.
    pub fn is_noop(&self) -> bool {
        self.plan.steps.is_empty()
    }
}

/// What to do on one host.
#[derive(Debug, Clone)]
pub struct PatchRequest<'a> {
    /// The host as given to `--ssh` (used in step targets and messages).
    pub host: &'a str,
    /// The settings (None only with `remove`).
    pub settings: Option<&'a OidcSettings>,
    /// Take OIDC out instead of putting it in.
    pub remove: bool,
    /// `--distro`, or None to detect.
    pub distribution: Option<Distribution>,
    /// Health-wait timeout.
    pub timeout_secs: u64,
}

/// The managed flags (`--oidc-*`, `--authentication-config`) of a manifest as `--name=value`
/// words, sorted: what `/proc/PID/cmdline` of its API server must show.
fn manifest_flags(text: &str) -> Result<Vec<String>, PlanError> {
    let mut v: Vec<String> = manifest::current_flags(text)?
        .into_iter()
        .filter(|(n, _)| apiserver::is_managed_flag(n))
        .map(|(n, value)| match value {
            Some(value) => format!("--{n}={value}"),
            None => format!("--{n}"),
        })
        .collect();
    v.sort();
    Ok(v)
}

/// The plan for one host, from the files read on it.
pub fn plan_host(req: &PatchRequest<'_>, files: &NodeFiles) -> Result<HostPlan, PlanError> {
    let d = match req.distribution {
        Some(d) => d,
        None => detect(req.host, files)?,
    };
    let target = target_file(d)?;
    let current = files
        .get(target)
        .cloned()
        .flatten()
        .ok_or_else(|| PlanError::Patch {
            what: format!("`{target}` on `{}`", req.host),
            reason: "the file does not exist".into(),
            fix: format!("check that `{}` is a {d} control-plane node", req.host),
        })?;
    let wanted = match (req.remove, req.settings) {
        (true, _) => None,
        (false, Some(s)) => Some((s, s.mode()?)),
        (false, None) => {
            return Err(PlanError::MissingSetting {
                field: "--issuer-url",
                fix: "give the OIDC settings, or pass --remove to take OIDC out".into(),
            })
        }
    };
    let on = Target::Host(req.host.to_string());
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    let (after, health) = match d {
        Distribution::Kubeadm => {
            let dir = KUBEADM_PKI;
            let flags_before = manifest_flags(&current)?;
            let args = match wanted {
                None => vec![],
                Some((s, mode)) => apiserver::args(s, mode, dir),
            };
            if let Some((s, mode)) = wanted {
                for f in apiserver::node_files(s, mode, dir) {
                    let before = files.get(&f.path).cloned().flatten();
                    if before.as_deref() != Some(f.content.as_str()) {
                        steps.push(Step::WriteFile {
                            on: on.clone(),
                            path: f.path.clone(),
                            before,
                            after: f.content.clone(),
                            mode: 0o600,
                            why: format!("place {} where the API server pod can read it ({dir} is mounted)", file_label(&f.path)),
                        });
                    }
                }
            }
            let patched = if req.remove {
                manifest::remove_oidc(&current, kubeadm::VOLUME_NAME)?
            } else {
                manifest::patch_manifest(&current, &args, None)?
            };
            notes.extend(patched.notes.iter().cloned());
            let endpoint = manifest::api_endpoint(&current);
            let health = Health {
                readyz: endpoint.url("/readyz"),
                livez: endpoint.url("/livez"),
                process: Some("kube-apiserver".into()),
                flags_after: manifest_flags(&patched.text)?,
                flags_before,
                unit: None,
                timeout_secs: req.timeout_secs,
            };
            (patched.text, health)
        }
        other => {
            return Err(PlanError::Unsupported {
                distribution: other,
                message: "patching over SSH is not implemented for this distribution yet; use `k8soidc render` and edit the node by hand".into(),
            })
        }
    };
    let changed = after != current;
    if changed {
        steps.push(Step::WriteFile {
            on: on.clone(),
            path: target.to_string(),
            before: Some(current.clone()),
            after,
            mode: 0o600,
            why: format!(
                "{} the API server's OIDC flags (written outside {KUBEADM_MANIFESTS_DIR}, then renamed into place)",
                if req.remove { "remove" } else { "set" }
            ),
        });
    }
    if !steps.is_empty() {
        steps.push(Step::WaitFor {
            on,
            command: Command::new(
                "curl",
                ["-fsSk", "--max-time", "5", health.readyz.as_str()],
            ),
            timeout_secs: req.timeout_secs,
            interval_secs: 1,
            why: format!(
                "wait until a new kube-apiserver process carrying exactly [{}] answers /readyz; otherwise restore the backup",
                health.flags_after.join(" ")
            ),
        });
        notes.push(format!(
            "transaction on {}: lock {STATE_DIR}/lock, back up every file below to {STATE_DIR}/backups/<UTC time>/ (mode 0600, SHA256SUMS), write each file to a temporary file outside the watched directory, fsync, rename into place keeping owner and mode",
            req.host
        ));
        if let Some((_, Mode::Config(_))) = wanted {
            notes.push("config mode: every --oidc-* flag is removed".into());
        }
    }
    let title = if steps.is_empty() {
        format!(
            "{}: {d} already {}",
            req.host,
            if req.remove {
                "has no OIDC flags"
            } else {
                "configured"
            }
        )
    } else {
        format!(
            "{}: patch {d} ({})",
            req.host,
            if req.remove {
                "remove OIDC"
            } else {
                "set OIDC"
            }
        )
    };
    Ok(HostPlan {
        host: req.host.to_string(),
        distribution: d,
        plan: Plan {
            title,
            steps,
            notes,
        },
        health,
    })
}

fn file_label(path: &str) -> &'static str {
    if path.ends_with(apiserver::AUTH_CONFIG_FILE) {
        "the AuthenticationConfiguration"
    } else {
        "the IdP CA certificate"
    }
}

/// The `--name=value` words of args.
pub fn flag_words(args: &[Arg]) -> Vec<String> {
    args.iter().map(Arg::flag).collect()
}

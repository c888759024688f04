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
//!   written there (kubernetes/kubernetes#55596). The manifest is edited by [`crate::manifest`].
//!   `/etc/kubernetes/pki` is mounted into the pod as a directory (kubeadm
//!   `cmd/kubeadm/app/phases/controlplane/volumes.go`), so the CA goes there when it is; else,
//!   and always for the AuthenticationConfiguration, into [`crate::kubeadm::NODE_DIR`] through
//!   a hostPath volume of the directory (a single-file mount would keep showing the old inode
//!   after a rename). kube-apiserver exits when `--authentication-config` and `--oidc-*` flags
//!   meet (`pkg/kubeapiserver/options/authentication.go`), so an `--authentication-config`
//!   k8soidc did not write is refused. Health: the manifest's own probe address
//!   ([`crate::manifest::api_endpoint`]). After health, the `kube-system/kubeadm-config`
//!   ConfigMap's ClusterConfiguration gets the same change, so `kubeadm upgrade` keeps it.
//! - MicroK8s: flags in `/var/snap/microk8s/current/args/kube-apiserver`, applied by
//!   `microk8s stop` + `microk8s start`; API on port 16443 (canonical.com/microk8s/docs/configuring-services);
//!   `--authorization-mode=AlwaysAllow` until `microk8s enable rbac` (run first, said in a note).
//! - k3s / RKE2: `kube-apiserver-arg` list in `/etc/rancher/{k3s,rke2}/config.yaml`, applied by
//!   `systemctl restart k3s` / `rke2-server` (k3s-io/docs `docs/upgrades/manual.md`); API on
//!   6443 (`https-listen-port`). RKE2 needs `kube-apiserver-extra-mount` for the files.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::apiserver::{self, Arg};
use crate::kubeadm;
use crate::manifest::{self, ApiEndpoint, NodeMount};
use crate::{Command, Distribution, Mode, OidcSettings, Plan, PlanError, Step, Target};

/// Where the API server of a MicroK8s args file answers: `--bind-address` when specific, else
/// `--advertise-address`, else 127.0.0.1; `--secure-port`, else `default_port`.
fn args_file_endpoint(text: &str, default_port: u16) -> ApiEndpoint {
    let mut flags: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        for word in line.split_whitespace() {
            if let Some((k, v)) = word.trim_start_matches('-').split_once('=') {
                flags.insert(k.to_string(), v.replace(['"', '\''], ""));
            }
        }
    }
    endpoint_of(
        flags.get("bind-address").map(String::as_str),
        flags.get("advertise-address").map(String::as_str),
        flags.get("secure-port").and_then(|p| p.parse().ok()),
        default_port,
    )
}

/// Where the API server of a k3s / RKE2 config answers: `bind-address` when specific, else
/// `advertise-address`, else 127.0.0.1; `https-listen-port`, else 6443 (k3s server flags).
fn k3s_endpoint(text: &str) -> ApiEndpoint {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).unwrap_or_default();
    let get = |k: &str| {
        doc.get(k).and_then(|v| match v {
            serde_yaml_ng::Value::String(s) => Some(s.clone()),
            serde_yaml_ng::Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
    };
    endpoint_of(
        get("bind-address").as_deref(),
        get("advertise-address").as_deref(),
        get("https-listen-port").and_then(|p| p.parse().ok()),
        6443,
    )
}

fn endpoint_of(
    bind: Option<&str>,
    advertise: Option<&str>,
    port: Option<u16>,
    default_port: u16,
) -> ApiEndpoint {
    let host = bind
        .filter(|b| !b.is_empty() && *b != "0.0.0.0" && *b != "::")
        .or(advertise.filter(|a| !a.is_empty()))
        .unwrap_or("127.0.0.1");
    ApiEndpoint {
        scheme: "https".into(),
        host: host.to_string(),
        port: port.filter(|p| *p != 0).unwrap_or(default_port),
    }
}

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

/// The key under which the executor hands over `data.ClusterConfiguration` of the
/// `kube-system/kubeadm-config` ConfigMap in [`NodeFiles`] (None: it could not be read).
pub const KUBEADM_CONFIGMAP: &str = "configmap:kube-system/kubeadm-config#ClusterConfiguration";
/// The cluster-admin kubeconfig kubeadm writes on every control-plane node.
pub const KUBEADM_ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";

/// `kubectl --kubeconfig /etc/kubernetes/admin.conf ARGS...` (run on the node).
fn node_kubectl<const N: usize>(args: [&str; N]) -> Command {
    let mut all = vec!["--kubeconfig", KUBEADM_ADMIN_CONF];
    all.extend(args);
    Command::new("kubectl", all)
}

/// Prints `data.ClusterConfiguration` of the `kubeadm-config` ConfigMap (on the node).
pub fn kubeadm_configmap_read() -> Command {
    node_kubectl([
        "get",
        "configmap",
        "kubeadm-config",
        "-n",
        "kube-system",
        "-o",
        "jsonpath={.data.ClusterConfiguration}",
    ])
}

/// Applies the JSON merge patch on stdin to the `kubeadm-config` ConfigMap (content never in argv).
pub fn kubeadm_configmap_write() -> Command {
    node_kubectl([
        "patch",
        "configmap",
        "kubeadm-config",
        "-n",
        "kube-system",
        "--type",
        "merge",
        "--patch-file",
        "/dev/stdin",
    ])
}

/// Valid settings for `--remove`, where the patchers need settings but use none of them.
fn placeholder_settings() -> Result<OidcSettings, PlanError> {
    let input = crate::settings::SettingsInput {
        issuer_url: Some("https://k8soidc.invalid".into()),
        client_id: Some("k8soidc".into()),
        username_claim: Some("sub".into()),
        username_prefix: Some("-".into()),
        ..Default::default()
    };
    OidcSettings::validate(&input, None)
}

/// Where k8soidc keeps its lock and backups on a node (never inside a watched directory).
pub const STATE_DIR: &str = "/var/lib/k8soidc";

/// Files read from a node: absolute path → content (None: the file does not exist).
pub type NodeFiles = BTreeMap<String, Option<String>>;

/// Directories that may hold the CA / AuthenticationConfiguration on a node of `d` (kubeadm:
/// the mounted pki directory, or k8soidc's own; the others: the distribution's node dir).
pub fn node_dirs(d: Distribution) -> Vec<String> {
    match d {
        Distribution::Microk8s => vec![crate::microk8s::NODE_DIR.into()],
        Distribution::K3s | Distribution::Rke2 => crate::k3s::node_dir(d).into_iter().collect(),
        _ => vec![KUBEADM_PKI.into(), kubeadm::NODE_DIR.into()],
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
            if let Ok(p) = crate::k3s::dropin_path(d) {
                paths.push(p);
            }
            for dir in node_dirs(d) {
                paths.push(format!("{dir}/{}", apiserver::CA_FILE));
                paths.push(format!("{dir}/{}", apiserver::AUTH_CONFIG_FILE));
            }
        }
    }
    paths
}

/// The [`NodeFiles`] key under which the executor reports an active systemd unit of `d`
/// (k3s: `k3s`, RKE2: `rke2-server`), so a k3s installed without a config file is found too.
pub fn unit_key(d: Distribution) -> Option<String> {
    match d {
        Distribution::K3s => Some("systemd:k3s".into()),
        Distribution::Rke2 => Some("systemd:rke2-server".into()),
        _ => None,
    }
}

/// Which distribution a node runs, from the files found on it (and active units).
pub fn detect(host: &str, files: &NodeFiles) -> Result<Distribution, PlanError> {
    let has = |p: &str| matches!(files.get(p), Some(Some(_)));
    let found: Vec<Distribution> = [
        Distribution::Kubeadm,
        Distribution::Microk8s,
        Distribution::K3s,
        Distribution::Rke2,
    ]
    .into_iter()
    .filter(|d| target_file(*d).map(has).unwrap_or(false) || unit_key(*d).is_some_and(|k| has(&k)))
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
    /// An authenticated readiness check run on the node when `/readyz` refuses anonymous
    /// requests (401/403): the distribution's own kubectl with its admin kubeconfig. k3s and
    /// RKE2 start the API server with `--anonymous-auth=false` (k3s-io/k3s
    /// pkg/daemons/control/server.go, `argsMap["anonymous-auth"] = "false"`; RKE2 runs that
    /// code), so an anonymous probe of a healthy server answers 401 there.
    pub admin_probe: Option<Command>,
    /// Give up after this many seconds.
    pub timeout_secs: u64,
}

impl Health {
    /// The probe of an API server at `endpoint`, with no process, unit or admin check.
    fn at(endpoint: &ApiEndpoint, timeout_secs: u64) -> Health {
        Health {
            readyz: endpoint.url("/readyz"),
            livez: endpoint.url("/livez"),
            process: None,
            flags_after: vec![],
            flags_before: vec![],
            unit: None,
            admin_probe: None,
            timeout_secs,
        }
    }
}

/// Everything about one host: the plan to show and run, and how to check it worked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPlan {
    /// The host as given to `--ssh`.
    pub host: String,
    /// The distribution found (or given).
    pub distribution: Distribution,
    /// WriteFile steps (only files that change), then Run steps (restarts), then one WaitFor,
    /// then Transform steps run once healthy (the kubeadm-config ConfigMap). Empty steps:
    /// already configured.
    pub plan: Plan,
    /// The health check.
    pub health: Health,
    /// What makes the API server read restored files after a rollback (the restart steps
    /// without one-way ones such as `microk8s enable rbac`); empty for static pods.
    pub restart_after_restore: Vec<Command>,
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

/// The `--authentication-config` path k8soidc writes on kubeadm nodes.
pub fn kubeadm_auth_config_path() -> String {
    format!("{}/{}", kubeadm::NODE_DIR, apiserver::AUTH_CONFIG_FILE)
}

/// The hostPath volume k8soidc adds for [`kubeadm::NODE_DIR`] (same name as `create`'s
/// `extraVolumes` entry, so the manifest and the ClusterConfiguration agree).
pub fn kubeadm_mount() -> NodeMount {
    NodeMount {
        name: kubeadm::VOLUME_NAME.into(),
        host_path: kubeadm::NODE_DIR.into(),
        mount_path: kubeadm::NODE_DIR.into(),
    }
}

/// Where the files go on a kubeadm node, and the volume to add for them (if any):
/// config mode: [`kubeadm::NODE_DIR`] through its own volume (a directory, never the single
/// file: a file mount keeps the old inode when the file is replaced by a rename);
/// flags mode: `/etc/kubernetes/pki` when the pod already sees it at that path (kubeadm's
/// `k8s-certs` volume), else [`kubeadm::NODE_DIR`] through the added volume.
fn kubeadm_dir(
    current: &str,
    wanted: Option<(&OidcSettings, Mode)>,
) -> Result<(&'static str, Option<NodeMount>), PlanError> {
    match wanted {
        None => Ok((kubeadm::NODE_DIR, None)),
        Some((_, Mode::Config(_))) => Ok((kubeadm::NODE_DIR, Some(kubeadm_mount()))),
        Some((s, Mode::Flags)) if s.ca.is_none() => Ok((KUBEADM_PKI, None)),
        Some((_, Mode::Flags)) => {
            // Already visible (a kubeadm created with the `oidc` extraVolume): keep using it.
            let own = manifest::patch_manifest(current, &[], Some(&kubeadm_mount()))?;
            if !own.changed {
                return Ok((kubeadm::NODE_DIR, None));
            }
            let pki = NodeMount {
                name: "k8soidc-pki".into(),
                host_path: KUBEADM_PKI.into(),
                mount_path: KUBEADM_PKI.into(),
            };
            // patch_manifest adds no volume when an existing one already shows the directory.
            let with = manifest::patch_manifest(current, &[], Some(&pki))?;
            let without = manifest::patch_manifest(current, &[], None)?;
            if with.text == without.text {
                Ok((KUBEADM_PKI, None))
            } else {
                Ok((kubeadm::NODE_DIR, Some(kubeadm_mount())))
            }
        }
    }
}

/// Refuses to replace or remove an `--authentication-config` k8soidc did not write: in flags
/// mode kube-apiserver would exit ("authentication-config file and oidc-* flags are mutually
/// exclusive", kubernetes/kubernetes `pkg/kubeapiserver/options/authentication.go`), and
/// replacing or removing it would drop the authenticators it configures.
fn refuse_foreign_config(req: &PatchRequest<'_>, current: &str) -> Result<(), PlanError> {
    let ours = kubeadm_auth_config_path();
    let theirs = manifest::current_flags(current)?
        .into_iter()
        .filter(|(n, _)| n == "authentication-config")
        .map(|(_, v)| v.unwrap_or_default())
        .find(|v| *v != ours);
    let Some(path) = theirs else { return Ok(()) };
    let why = match (req.remove, req.settings.map(OidcSettings::mode)) {
        (false, Some(Ok(Mode::Flags))) => {
            "kube-apiserver exits when it is combined with `--oidc-*` flags"
        }
        (true, _) => "removing it would drop the authenticators it configures",
        _ => "replacing it would drop the authenticators it configures",
    };
    Err(PlanError::Patch {
        what: format!("`{KUBEADM_MANIFEST}` on `{}`", req.host),
        reason: format!(
            "it already has `--authentication-config={}`, which k8soidc did not write, and {why}; nothing was changed",
            crate::escape(&path)
        ),
        fix: "add the JWT authenticator to that file by hand (`k8soidc render --distro kubeadm --auth-mode config` shows it), or take the flag out first".into(),
    })
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

/// A WriteFile step (mode 0600) for each of `wanted` whose content the node does not have
/// yet; `why` gets the file's label (the CA, the AuthenticationConfiguration).
fn node_file_steps(
    wanted: Vec<apiserver::NodeFile>,
    files: &NodeFiles,
    on: &Target,
    why: impl Fn(&str) -> String,
) -> Vec<Step> {
    wanted
        .into_iter()
        .filter_map(|f| {
            let before = files.get(&f.path).cloned().flatten();
            (before.as_deref() != Some(f.content.as_str())).then(|| Step::WriteFile {
                on: on.clone(),
                why: why(file_label(&f.path)),
                path: f.path,
                before,
                after: f.content,
                mode: 0o600,
            })
        })
        .collect()
}

/// The plan for one host, from the files read on it.
pub fn plan_host(req: &PatchRequest<'_>, files: &NodeFiles) -> Result<HostPlan, PlanError> {
    let d = match req.distribution {
        Some(d) => d,
        None => detect(req.host, files)?,
    };
    // k3s / RKE2 created by k8soidc keep OIDC in their drop-in: patch that one when present.
    let dropin = match d {
        Distribution::K3s | Distribution::Rke2 => crate::k3s::dropin_path(d)
            .ok()
            .filter(|p| matches!(files.get(p), Some(Some(_)))),
        _ => None,
    };
    let target = dropin.as_deref().unwrap_or(target_file(d)?);
    let found = files.get(target).cloned().flatten();
    // k3s and RKE2 run without a config file: it is then created.
    let existed = found.is_some();
    let current = found
        .or_else(|| matches!(d, Distribution::K3s | Distribution::Rke2).then(String::new))
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
    let mut restarts: Vec<(Command, String)> = Vec::new();
    let mut restart_after_restore: Vec<Command> = Vec::new();
    let (after, health) = match d {
        Distribution::Kubeadm => {
            let flags_before = manifest_flags(&current)?;
            refuse_foreign_config(req, &current)?;
            let (dir, mount) = kubeadm_dir(&current, wanted)?;
            let args = match wanted {
                None => vec![],
                Some((s, mode)) => apiserver::args(s, mode, dir),
            };
            if let Some((s, mode)) = wanted {
                let how = match &mount {
                    Some(m) => format!("{dir} is mounted into the pod as volume `{}`", m.name),
                    None => format!("{dir} is already mounted into the pod"),
                };
                steps.extend(node_file_steps(
                    apiserver::node_files(s, mode, dir),
                    files,
                    &on,
                    |label| format!("place {label} where the API server pod can read it ({how})"),
                ));
            }
            let patched = if req.remove {
                manifest::remove_oidc(&current, kubeadm::VOLUME_NAME)?
            } else {
                manifest::patch_manifest(&current, &args, mount.as_ref())?
            };
            notes.extend(patched.notes.iter().cloned());
            let endpoint = manifest::api_endpoint(&current);
            let health = Health {
                process: Some("kube-apiserver".into()),
                flags_after: manifest_flags(&patched.text)?,
                flags_before,
                ..Health::at(&endpoint, req.timeout_secs)
            };
            (patched.text, health)
        }
        Distribution::Microk8s | Distribution::K3s | Distribution::Rke2 => {
            let placeholder;
            let s = match (req.remove, req.settings) {
                (false, Some(s)) => s,
                _ => {
                    placeholder = placeholder_settings()?;
                    &placeholder
                }
            };
            let dir = node_dirs(d).remove(0);
            if !req.remove {
                steps.extend(node_file_steps(
                    apiserver::node_files(s, s.mode()?, &dir),
                    files,
                    &on,
                    |label| format!("place {label} in {dir}, where the API server reads it"),
                ));
            }
            let (after, endpoint, unit, admin_probe) = if d == Distribution::Microk8s {
                let after = crate::microk8s::patch_args(&current, s, req.remove)?;
                if !req.remove && !crate::microk8s::rbac_enabled(after.as_deref().unwrap_or(&current)) {
                    notes.push(format!(
                        "MicroK8s runs with --authorization-mode={}: every user the IdP signs in would be all-powerful, so RBAC is enabled first (`microk8s enable rbac`)",
                        crate::microk8s::authorization_mode(&current).unwrap_or_else(|| "AlwaysAllow".into())
                    ));
                    restarts.push((
                        crate::microk8s::rbac_command(),
                        "switch authorization from AlwaysAllow to RBAC,Node before any OIDC user can sign in".into(),
                    ));
                }
                for c in crate::microk8s::restart_commands() {
                    restart_after_restore.push(c.clone());
                    restarts.push((c, "the API server (kubelite) reads its args file only at start".into()));
                }
                (after, args_file_endpoint(&current, 16443), None, None)
            } else {
                let after = crate::k3s::patch_config(&current, s, d, req.remove)?;
                let c = crate::k3s::restart_command(d)?;
                let unit = c.args.last().cloned();
                restart_after_restore.push(c.clone());
                restarts.push((c, format!("{d} reads {target} only at start")));
                // The address keys live in config.yaml even when OIDC is in the drop-in.
                let main = target_file(d)
                    .ok()
                    .and_then(|p| files.get(p).cloned().flatten())
                    .unwrap_or_else(|| current.clone());
                (
                    after,
                    k3s_endpoint(&main),
                    unit,
                    Some(crate::k3s::readyz_command(d)?),
                )
            };
            let health = Health {
                unit,
                admin_probe,
                ..Health::at(&endpoint, req.timeout_secs)
            };
            (after.unwrap_or_else(|| current.clone()), health)
        }
        other => {
            return Err(PlanError::Unsupported {
                distribution: other,
                message: "`patch` supports kubeadm, microk8s, k3s and rke2 nodes; use `k8soidc render` and edit the node by hand".into(),
            })
        }
    };
    let changed = after != current;
    if changed {
        steps.push(Step::WriteFile {
            on: on.clone(),
            path: target.to_string(),
            before: existed.then(|| current.clone()),
            after,
            mode: 0o600,
            why: format!(
                "{} the API server's OIDC flags ({})",
                if req.remove { "remove" } else { "set" },
                if d == Distribution::Kubeadm {
                    format!("written outside {KUBEADM_MANIFESTS_DIR}, then renamed into place")
                } else {
                    "written to a temporary file beside it, then renamed into place".into()
                }
            ),
        });
    }
    if !steps.is_empty() {
        for (command, why) in restarts {
            steps.push(Step::Run {
                on: on.clone(),
                command,
                sudo: false,
                stdin: None,
                why,
            });
        }
        steps.push(Step::WaitFor {
            on: on.clone(),
            command: health.admin_probe.clone().unwrap_or_else(|| {
                Command::new(
                    "curl",
                    ["-fsSk", "--max-time", "5", health.readyz.as_str()],
                )
            }),
            timeout_secs: req.timeout_secs,
            interval_secs: 1,
            why: match (&health.process, &health.unit) {
                (Some(_), _) => format!(
                    "wait until a new kube-apiserver process carrying exactly [{}] answers /readyz; otherwise restore the backup",
                    health.flags_after.join(" ")
                ),
                (None, Some(unit)) => format!("wait until unit {unit} is active and the API server answers {} (anonymously, else with {d}'s admin kubeconfig, as {d} refuses anonymous requests); otherwise restore the backup and restart again", health.readyz),
                (None, None) => "wait until the restarted API server answers /readyz; otherwise restore the backup and restart again".into(),
            },
        });
        notes.push(format!(
            "transaction on {}: lock {STATE_DIR}/lock, back up every file below to {STATE_DIR}/backups/<UTC time>/ (mode 0600, SHA256SUMS), write each file to a temporary file outside the watched directory, fsync, rename into place keeping owner and mode",
            req.host
        ));
        if let Some((_, Mode::Config(_))) = wanted {
            notes.push("config mode: every --oidc-* flag is removed".into());
        }
    }
    if d == Distribution::Kubeadm {
        configmap_step(req, files, &on, &mut steps, &mut notes)?;
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
        restart_after_restore,
    })
}

/// What `k8soidc rollback` does once a backup is back in place: the restarts that make the
/// API server read the restored files, and the health check of the configuration they hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Restored {
    /// The distribution found in the restored files.
    pub distribution: Distribution,
    /// Commands to run on the node, in order (none for a kubeadm static pod: the kubelet
    /// restarts it when its manifest changes).
    pub restart: Vec<Command>,
    /// The health check (kubeadm: a kube-apiserver process carrying exactly the restored
    /// manifest's OIDC flags).
    pub health: Health,
}

/// The restarts and health check for the files read after a restore (see [`Restored`]).
pub fn after_restore(
    host: &str,
    files: &NodeFiles,
    timeout_secs: u64,
) -> Result<Restored, PlanError> {
    let d = detect(host, files)?;
    let file = |p: &str| files.get(p).cloned().flatten().unwrap_or_default();
    let (restart, health) = match d {
        Distribution::Kubeadm => {
            let current = file(KUBEADM_MANIFEST);
            let endpoint = manifest::api_endpoint(&current);
            let flags = manifest_flags(&current)?;
            (
                vec![],
                Health {
                    process: Some("kube-apiserver".into()),
                    flags_after: flags.clone(),
                    flags_before: flags,
                    ..Health::at(&endpoint, timeout_secs)
                },
            )
        }
        Distribution::Microk8s => {
            let endpoint = args_file_endpoint(&file(MICROK8S_ARGS), 16443);
            (
                crate::microk8s::restart_commands().to_vec(),
                Health::at(&endpoint, timeout_secs),
            )
        }
        _ => {
            let restart = crate::k3s::restart_command(d)?;
            let endpoint = k3s_endpoint(&file(target_file(d)?));
            (
                vec![restart.clone()],
                Health {
                    unit: restart.args.last().cloned(),
                    admin_probe: Some(crate::k3s::readyz_command(d)?),
                    ..Health::at(&endpoint, timeout_secs)
                },
            )
        }
    };
    Ok(Restored {
        distribution: d,
        restart,
        health,
    })
}

/// kubeadm keeps the cluster's configuration in the `kube-system/kubeadm-config` ConfigMap;
/// `kubeadm upgrade` and `kubeadm join --control-plane` regenerate the API server manifest from
/// it (kubernetes/website `content/en/docs/tasks/administer-cluster/kubeadm/kubeadm-reconfigure.md`),
/// so it gets the same change, after the API server is healthy (it is read through that API
/// server). A ConfigMap that cannot be read or patched safely is a note, not a failure: the
/// running API server is what matters now.
fn configmap_step(
    req: &PatchRequest<'_>,
    files: &NodeFiles,
    on: &Target,
    steps: &mut Vec<Step>,
    notes: &mut Vec<String>,
) -> Result<(), PlanError> {
    let Some(found) = files.get(KUBEADM_CONFIGMAP) else {
        return Ok(());
    };
    let Some(current) = found else {
        notes.push("the kubeadm-config ConfigMap could not be read: `kubeadm upgrade` would regenerate the manifest without these flags; update its ClusterConfiguration by hand (`k8soidc render --distro kubeadm`)".into());
        return Ok(());
    };
    let settings = match req.settings {
        Some(s) if !req.remove => s.clone(),
        _ => placeholder_settings()?,
    };
    match kubeadm::patch_cluster_configuration(current, &settings, req.remove) {
        Ok(None) => {}
        Ok(Some(after)) => {
            // The ClusterConfiguration names k8soidc's own directory (kubeadm::NODE_DIR); when
            // the manifest uses /etc/kubernetes/pki, the CA goes there too, for `kubeadm upgrade`.
            if let (false, Some(ca), Ok(Mode::Flags)) = (req.remove, &settings.ca, settings.mode()) {
                let path = format!("{}/{}", kubeadm::NODE_DIR, apiserver::CA_FILE);
                let before = files.get(&path).cloned().flatten();
                let planned = steps
                    .iter()
                    .any(|s| matches!(s, Step::WriteFile { path: p, .. } if *p == path));
                if !planned && before.as_deref() != Some(ca.pem.as_str()) {
                    steps.insert(
                        0,
                        Step::WriteFile {
                            on: on.clone(),
                            path,
                            before,
                            after: ca.pem.clone(),
                            mode: 0o600,
                            why: format!("the kubeadm-config ClusterConfiguration names {}/{} (volume `{}`), which `kubeadm upgrade` mounts", kubeadm::NODE_DIR, apiserver::CA_FILE, kubeadm::VOLUME_NAME),
                        },
                    );
                }
            }
            let path = "/kube-system/configmaps/kubeadm-config/ClusterConfiguration";
            let diff = crate::plan::unified_diff(path, current, &after);
            steps.push(Step::Transform {
                on: on.clone(),
                read: kubeadm_configmap_read(),
                edit: crate::Edit::KubeadmConfigMap {
                    diff: diff.lines().map(str::to_string).collect(),
                    settings: Box::new(settings),
                    remove: req.remove,
                },
                write: crate::WriteBack::Stdin {
                    command: kubeadm_configmap_write(),
                },
                why: "once the API server is healthy: the same change in the kubeadm-config ConfigMap, so `kubeadm upgrade` keeps it".into(),
            });
        }
        Err(e) => notes.push(format!(
            "the kubeadm-config ConfigMap is left as it is ({e}); `kubeadm upgrade` would regenerate the manifest without these flags"
        )),
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{ca, with};

    fn manifest() -> String {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|a| {
                a.join("shared/fixtures/apiserver-manifests/034-austintalbot-v1.32.2-cks.yaml")
            })
            .find(|p| p.is_file())
            .expect("shared/fixtures next to the workspace");
        std::fs::read_to_string(p).unwrap()
    }

    fn files(manifest: &str) -> NodeFiles {
        let mut f = NodeFiles::new();
        f.insert(KUBEADM_MANIFEST.into(), Some(manifest.into()));
        f
    }

    fn plan(s: Option<&OidcSettings>, remove: bool, f: &NodeFiles) -> Result<HostPlan, PlanError> {
        let req = PatchRequest {
            host: "cp1",
            settings: s,
            remove,
            distribution: None,
            timeout_secs: 30,
        };
        plan_host(&req, f)
    }

    fn writes(hp: &HostPlan) -> BTreeMap<String, String> {
        hp.plan
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::WriteFile { path, after, .. } => Some((path.clone(), after.clone())),
                _ => None,
            })
            .collect()
    }

    /// Applies the plan's writes to the files, as the executor does.
    fn apply(f: &NodeFiles, hp: &HostPlan) -> NodeFiles {
        let mut f = f.clone();
        for (p, c) in writes(hp) {
            f.insert(p, Some(c));
        }
        f
    }

    fn with_ca() -> OidcSettings {
        let mut s = with(|_| {});
        s.ca = Some(ca());
        s
    }

    fn config_mode() -> OidcSettings {
        with(|i| {
            i.auth_mode = Some("config".into());
            i.kubernetes_version = Some("1.32".into());
        })
    }

    fn container(text: &str) -> serde_yaml_ng::Value {
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).unwrap();
        doc["spec"]["containers"][0].clone()
    }

    #[test]
    fn config_mode_mounts_the_directory_and_drops_every_oidc_flag() {
        // Start from a manifest that already has OIDC flags (set by a flags-mode run).
        let flags = with_ca();
        let f0 = files(&manifest());
        let f1 = apply(&f0, &plan(Some(&flags), false, &f0).unwrap());
        assert!(f1[KUBEADM_MANIFEST]
            .as_ref()
            .unwrap()
            .contains("--oidc-issuer-url"));
        let s = config_mode();
        let hp = plan(Some(&s), false, &f1).unwrap();
        let w = writes(&hp);
        let auth = &w["/etc/kubernetes/oidc/authentication-config.yaml"];
        assert!(auth.contains("kind: AuthenticationConfiguration"), "{auth}");
        let m = &w[KUBEADM_MANIFEST];
        let c = container(m);
        let cmd: Vec<&str> = c["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            cmd.contains(
                &"--authentication-config=/etc/kubernetes/oidc/authentication-config.yaml"
            ),
            "{cmd:?}"
        );
        assert!(!cmd.iter().any(|a| a.starts_with("--oidc-")), "{cmd:?}");
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(m).unwrap();
        let vol = doc["spec"]["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"].as_str() == Some("oidc"))
            .expect("oidc volume");
        assert_eq!(
            vol["hostPath"]["path"].as_str(),
            Some("/etc/kubernetes/oidc"),
            "the directory, not the file"
        );
        let vm = c["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"].as_str() == Some("oidc"))
            .expect("oidc mount");
        assert_eq!(vm["mountPath"].as_str(), Some("/etc/kubernetes/oidc"));
        assert_eq!(
            hp.health.flags_after,
            vec![
                "--authentication-config=/etc/kubernetes/oidc/authentication-config.yaml"
                    .to_string()
            ]
        );
        assert!(hp
            .health
            .flags_before
            .iter()
            .any(|f| f.starts_with("--oidc-ca-file=")));
        // Second run: nothing to do (the executor reads every file the plan may write).
        let f2 = apply(&f1, &hp);
        let probed = probe_paths(Some(Distribution::Kubeadm));
        assert!(f2.keys().all(|p| probed.contains(p)), "{probed:?}");
        assert!(plan(Some(&s), false, &f2).unwrap().is_noop());
        // Remove takes the flag and the volume out again.
        let r = plan(None, true, &f2).unwrap();
        let back = &writes(&r)[KUBEADM_MANIFEST];
        assert!(
            !back.contains("authentication-config") && !back.contains("name: oidc"),
            "{back}"
        );
    }

    #[test]
    fn flags_mode_refuses_an_authentication_config_it_did_not_write() {
        let m = manifest().replace(
            "    - --profiling=false\n",
            "    - --profiling=false\n    - --authentication-config=/etc/kubernetes/pki/mine.yaml\n",
        );
        let f = files(&m);
        let s = with(|_| {});
        let e = plan(Some(&s), false, &f).unwrap_err().to_string();
        assert!(
            e.contains("--authentication-config=/etc/kubernetes/pki/mine.yaml")
                && e.contains("which k8soidc did not write")
                && e.contains("exits"),
            "{e}"
        );
        assert!(plan(None, true, &f)
            .unwrap_err()
            .to_string()
            .contains("drop the authenticators"));
        assert!(plan(Some(&config_mode()), false, &f).is_err());
        // Its own file is replaced freely (flags mode after config mode).
        let ours = manifest().replace(
            "    - --profiling=false\n",
            "    - --profiling=false\n    - --authentication-config=/etc/kubernetes/oidc/authentication-config.yaml\n",
        );
        let hp = plan(Some(&s), false, &files(&ours)).unwrap();
        assert!(!writes(&hp)[KUBEADM_MANIFEST].contains("--authentication-config"));
    }

    #[test]
    fn flags_mode_ca_goes_to_the_mounted_pki_dir_else_to_an_added_volume() {
        let s = with_ca();
        let hp = plan(Some(&s), false, &files(&manifest())).unwrap();
        let w = writes(&hp);
        assert!(
            w.contains_key("/etc/kubernetes/pki/oidc-ca.pem"),
            "{:?}",
            w.keys()
        );
        assert!(w[KUBEADM_MANIFEST].contains("--oidc-ca-file=/etc/kubernetes/pki/oidc-ca.pem"));
        assert_eq!(
            w[KUBEADM_MANIFEST].matches("hostPath:").count(),
            manifest().matches("hostPath:").count(),
            "no volume added"
        );
        // Without kubeadm's k8s-certs mount: /etc/kubernetes/oidc through the oidc volume.
        let bare = manifest().replace(
            "    - mountPath: /etc/kubernetes/pki\n      name: k8s-certs\n      readOnly: true\n",
            "",
        );
        let hp = plan(Some(&s), false, &files(&bare)).unwrap();
        let w = writes(&hp);
        assert!(
            w.contains_key("/etc/kubernetes/oidc/oidc-ca.pem"),
            "{:?}",
            w.keys()
        );
        let c = container(&w[KUBEADM_MANIFEST]);
        assert!(c["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|v| v["mountPath"].as_str() == Some("/etc/kubernetes/oidc")));
        assert!(w[KUBEADM_MANIFEST].contains("--oidc-ca-file=/etc/kubernetes/oidc/oidc-ca.pem"));
    }

    #[test]
    fn health_uses_the_manifest_endpoint() {
        let m = manifest()
            .replace("192.168.97.4", "10.1.2.3")
            .replace("--secure-port=6443", "--secure-port=7443");
        let hp = plan(Some(&with(|_| {})), false, &files(&m)).unwrap();
        assert_eq!(hp.health.readyz, "https://10.1.2.3:7443/readyz");
        assert_eq!(hp.health.livez, "https://10.1.2.3:7443/livez");
    }

    #[test]
    fn kubeadm_config_configmap_gets_the_same_change_after_the_wait() {
        let cc = "apiServer: {}\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.32.2\n";
        let mut f = files(&manifest());
        f.insert(KUBEADM_CONFIGMAP.into(), Some(cc.into()));
        let s = with_ca();
        let hp = plan(Some(&s), false, &f).unwrap();
        let kinds: Vec<&str> = hp
            .plan
            .steps
            .iter()
            .map(|s| match s {
                Step::WriteFile { .. } => "write",
                Step::WaitFor { .. } => "wait",
                Step::Transform { .. } => "configmap",
                Step::Run { .. } => "run",
            })
            .collect();
        assert_eq!(kinds, ["write", "write", "write", "wait", "configmap"]);
        // The CA also where the ClusterConfiguration says (for `kubeadm upgrade`).
        assert!(writes(&hp).contains_key("/etc/kubernetes/oidc/oidc-ca.pem"));
        let Step::Transform { edit, write, .. } = hp.plan.steps.last().unwrap() else {
            unreachable!()
        };
        let shown = hp.plan.to_string();
        assert!(shown.contains("    | -apiServer: {}"), "{shown}");
        let patch: serde_json::Value = serde_json::from_str(&edit.apply(cc).unwrap()).unwrap();
        let new = patch["data"]["ClusterConfiguration"].as_str().unwrap();
        assert!(
            new.contains("oidc-ca-file") && new.contains("/etc/kubernetes/oidc"),
            "{new}"
        );
        assert!(
            matches!(write, crate::WriteBack::Stdin { command } if command.args.contains(&"/dev/stdin".to_string()))
        );
        // Remove (no settings) takes it out again; unreadable ConfigMap: a note, no step.
        let mut f2 = f.clone();
        f2.insert(KUBEADM_CONFIGMAP.into(), Some(new.into()));
        let r = plan(None, true, &f2).unwrap();
        assert!(matches!(r.plan.steps.last(), Some(Step::Transform { .. })));
        f.insert(KUBEADM_CONFIGMAP.into(), None);
        let hp = plan(Some(&s), false, &f).unwrap();
        assert!(!hp
            .plan
            .steps
            .iter()
            .any(|s| matches!(s, Step::Transform { .. })));
        assert!(hp
            .plan
            .notes
            .iter()
            .any(|n| n.contains("kubeadm-config ConfigMap could not be read")));
    }

    #[test]
    fn microk8s_k3s_rke2_are_detected_patched_restarted_and_removed() {
        let cases = [
            (
                MICROK8S_ARGS,
                "--secure-port=16443\n--authorization-mode=AlwaysAllow\n",
                vec!["microk8s enable rbac", "microk8s stop", "microk8s start"],
                "https://127.0.0.1:16443/readyz",
            ),
            (
                K3S_CONFIG,
                "bind-address: 10.0.0.5\n",
                vec!["systemctl restart k3s"],
                "https://10.0.0.5:6443/readyz",
            ),
            (
                RKE2_CONFIG,
                "https-listen-port: 7443\n",
                vec!["systemctl restart rke2-server"],
                "https://127.0.0.1:7443/readyz",
            ),
        ];
        for (path, text, runs, readyz) in cases {
            let mut f = NodeFiles::new();
            f.insert(path.into(), Some(text.into()));
            let hp = plan(Some(&with_ca()), false, &f).unwrap();
            let got: Vec<String> = hp
                .plan
                .steps
                .iter()
                .filter_map(|s| match s {
                    Step::Run { command, .. } => Some(command.to_shell()),
                    _ => None,
                })
                .collect();
            assert_eq!(got, runs, "{path}");
            assert_eq!(hp.health.readyz, readyz);
            // k3s and RKE2 refuse anonymous requests: their own kubectl checks readiness.
            let admin = hp.health.admin_probe.as_ref().map(Command::to_shell);
            let want = match hp.distribution {
                Distribution::K3s => {
                    Some("k3s kubectl --kubeconfig /etc/rancher/k3s/k3s.yaml get --raw /readyz")
                }
                Distribution::Rke2 => Some("/var/lib/rancher/rke2/bin/kubectl --kubeconfig /etc/rancher/rke2/rke2.yaml get --raw /readyz"),
                _ => None,
            };
            assert_eq!(admin.as_deref(), want, "{path}");
            // Rollback restarts, but never re-runs `microk8s enable rbac`.
            assert!(hp
                .restart_after_restore
                .iter()
                .all(|c| c.args != ["enable", "rbac"]));
            let w = writes(&hp);
            let dir = &node_dirs(hp.distribution)[0];
            assert!(
                w.contains_key(&format!("{dir}/oidc-ca.pem")),
                "{path}: {:?}",
                w.keys()
            );
            assert!(w[path].contains("oidc-issuer-url"), "{}", w[path]);
            let f2 = apply(&f, &hp);
            assert!(
                plan(Some(&with_ca()), false, &f2).unwrap().is_noop(),
                "{path}"
            );
            let r = plan(None, true, &f2).unwrap();
            assert!(!writes(&r)[path].contains("oidc-"), "{path}");
        }
    }

    #[test]
    fn after_restore_restarts_what_needs_it_and_checks_the_restored_flags() {
        let mut f = files(&manifest());
        let r = after_restore("cp1", &f, 30).unwrap();
        assert_eq!(r.distribution, Distribution::Kubeadm);
        assert!(r.restart.is_empty(), "the kubelet restarts a static pod");
        assert_eq!(r.health.process.as_deref(), Some("kube-apiserver"));
        assert_eq!(r.health.flags_after, manifest_flags(&manifest()).unwrap());
        f.clear();
        f.insert(K3S_CONFIG.into(), Some("bind-address: 10.0.0.5\n".into()));
        let r = after_restore("cp1", &f, 30).unwrap();
        assert_eq!(
            r.restart.iter().map(Command::to_shell).collect::<Vec<_>>(),
            ["systemctl restart k3s"]
        );
        assert_eq!(r.health.unit.as_deref(), Some("k3s"));
        assert_eq!(r.health.readyz, "https://10.0.0.5:6443/readyz");
        assert!(r.health.admin_probe.is_some());
        f.clear();
        f.insert(MICROK8S_ARGS.into(), Some("--secure-port=16443\n".into()));
        let r = after_restore("cp1", &f, 30).unwrap();
        assert_eq!(
            r.restart.iter().map(Command::to_shell).collect::<Vec<_>>(),
            ["microk8s stop", "microk8s start"]
        );
        f.clear();
        assert!(after_restore("cp1", &f, 30).is_err());
    }

    #[test]
    fn k3s_found_by_its_running_unit_gets_a_new_config_file() {
        let mut f = NodeFiles::new();
        f.insert("systemd:k3s".into(), Some("active\n".into()));
        assert_eq!(detect("cp1", &f).unwrap(), Distribution::K3s);
        let hp = plan(Some(&with(|_| {})), false, &f).unwrap();
        let new = hp.plan.steps.iter().find_map(|s| match s {
            Step::WriteFile {
                path,
                before,
                after,
                ..
            } if path == K3S_CONFIG => Some((before.clone(), after.clone())),
            _ => None,
        });
        let (before, after) = new.expect("config.yaml written");
        assert_eq!(before, None);
        assert!(after.contains("kube-apiserver-arg"), "{after}");
    }
}

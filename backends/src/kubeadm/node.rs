//! A kubeadm control-plane node, as `patch --ssh` and `create --ssh` see it.
//!
//! Facts (sources in ../shared/reference/distros.md):
//! - The API server is the static pod `/etc/kubernetes/manifests/kube-apiserver.yaml` (mode
//!   0600); the kubelet runs every non-dot file of that directory, so nothing else may be
//!   written there (kubernetes/kubernetes#55596). The manifest is edited by
//!   [`crate::manifest`].
//! - `/etc/kubernetes/pki` is mounted into the pod as a directory (kubeadm
//!   `cmd/kubeadm/app/phases/controlplane/volumes.go`), so the CA goes there when it is; else,
//!   and always for the AuthenticationConfiguration, into [`super::NODE_DIR`] through a hostPath
//!   volume of the directory (a single-file mount would keep showing the old inode after a
//!   rename).
//! - kube-apiserver exits when `--authentication-config` and `--oidc-*` flags meet
//!   (`pkg/kubeapiserver/options/authentication.go`), so an `--authentication-config` k8soidc
//!   did not write is refused.
//! - Health: the manifest's own probe address ([`crate::manifest::api_endpoint`]); the kubelet
//!   restarts the pod when the manifest changes, so there is no restart command.
//! - After health, the `kube-system/kubeadm-config` ConfigMap's ClusterConfiguration gets the
//!   same change, so `kubeadm upgrade` keeps it (kubernetes/website
//!   `content/en/docs/tasks/administer-cluster/kubeadm/kubeadm-reconfigure.md`).
//! - `create --ssh`: the files and a `ClusterConfiguration`, then `kubeadm init --config FILE`
//!   (kubernetes/website `content/en/docs/reference/setup-tools/kubeadm/kubeadm-init.md`).

use crate::apiserver;
use crate::manifest::{self, NodeMount};
use crate::migrate::{self, Convert};
use crate::node::{
    FileChange, Health, NodeBackend, NodeFiles, NodeStep, ReadCommand, Restored, Running,
};
use crate::patch::{node_file_changes, PatchRequest, Patched};
use crate::settings::AuthMode;
use crate::ConfigApiVersion;
use crate::{Command, Distribution, Mode, OidcSettings, Plan, PlanError, Target};

/// The kubeadm static pod manifest of the API server.
pub const MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";
/// The directory the kubelet watches on kubeadm nodes.
pub const MANIFESTS_DIR: &str = "/etc/kubernetes/manifests";
/// kubeadm's certificate directory, mounted into the API server pod.
pub const PKI: &str = "/etc/kubernetes/pki";
/// The key under which the first round trip hands over `data.ClusterConfiguration` of the
/// `kube-system/kubeadm-config` ConfigMap in [`NodeFiles`] (None: it could not be read).
pub const KUBEADM_CONFIGMAP: &str = "configmap:kube-system/kubeadm-config#ClusterConfiguration";
/// The key under which the first round trip hands over the names in [`MANIFESTS_DIR`] that do
/// not start with a dot (`ls -1`), one a line.
pub const MANIFESTS_LIST: &str = "kubeadm:manifests-dir";
/// The cluster-admin kubeconfig kubeadm writes on every control-plane node.
pub const ADMIN_CONF: &str = "/etc/kubernetes/admin.conf";

/// The kubeadm node backend.
pub struct Kubeadm;
/// The registered instance.
pub static KUBEADM: Kubeadm = Kubeadm;

/// `kubectl --kubeconfig /etc/kubernetes/admin.conf ARGS...` (run on the node).
fn node_kubectl<const N: usize>(args: [&str; N]) -> Command {
    let mut all = vec!["--kubeconfig", ADMIN_CONF];
    all.extend(args);
    Command::new("kubectl", all)
}

/// Prints `data.ClusterConfiguration` of the `kubeadm-config` ConfigMap (on the node).
pub fn configmap_read() -> Command {
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

/// Applies the JSON merge patch on stdin to the `kubeadm-config` ConfigMap.
pub fn configmap_write() -> Command {
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

/// The `--authentication-config` path k8soidc writes on kubeadm nodes.
pub fn auth_config_path() -> String {
    format!("{}/{}", super::NODE_DIR, apiserver::AUTH_CONFIG_FILE)
}

/// The hostPath volume k8soidc adds for [`super::NODE_DIR`] (same name as `create`'s
/// `extraVolumes` entry, so the manifest and the ClusterConfiguration agree).
pub fn mount() -> NodeMount {
    NodeMount {
        name: super::VOLUME_NAME.into(),
        host_path: super::NODE_DIR.into(),
        mount_path: super::NODE_DIR.into(),
    }
}

/// Where the files go, and the volume to add for them (if any): config mode:
/// [`super::NODE_DIR`] through its own volume; flags mode: `/etc/kubernetes/pki` when the pod
/// already sees it at that path (kubeadm's `k8s-certs` volume), else [`super::NODE_DIR`]
/// through the added volume.
fn files_dir(
    current: &str,
    wanted: Option<(&OidcSettings, Mode)>,
) -> Result<(&'static str, Option<NodeMount>), PlanError> {
    match wanted {
        None => Ok((super::NODE_DIR, None)),
        Some((_, Mode::Config(_))) => Ok((super::NODE_DIR, Some(mount()))),
        Some((s, Mode::Flags)) if s.ca.is_none() => Ok((PKI, None)),
        Some((_, Mode::Flags)) => {
            // Already visible (a kubeadm created with the `oidc` extraVolume): keep using it.
            let own = manifest::patch_manifest(current, &[], Some(&mount()))?;
            if !own.changed {
                return Ok((super::NODE_DIR, None));
            }
            let pki = NodeMount {
                name: "k8soidc-pki".into(),
                host_path: PKI.into(),
                mount_path: PKI.into(),
            };
            // patch_manifest adds no volume when an existing one already shows the directory.
            let with = manifest::patch_manifest(current, &[], Some(&pki))?;
            let without = manifest::patch_manifest(current, &[], None)?;
            if with.text == without.text {
                Ok((PKI, None))
            } else {
                Ok((super::NODE_DIR, Some(mount())))
            }
        }
    }
}

/// Refuses to replace or remove an `--authentication-config` k8soidc did not write: in flags
/// mode kube-apiserver would exit, and replacing or removing it would drop the authenticators
/// it configures.
fn refuse_foreign_config(req: &PatchRequest<'_>, current: &str) -> Result<(), PlanError> {
    let ours = auth_config_path();
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
        what: format!("`{MANIFEST}` on `{}`", req.host),
        reason: format!(
            "it already has `--authentication-config={}`, which k8soidc did not write, and {why}; nothing was changed",
            crate::escape(&path)
        ),
        fix: "add the JWT authenticator to that file by hand (`k8soidc render --distro kubeadm --auth-mode config` shows it), or take the flag out first".into(),
    })
}

/// A warning for each copy of the API server's manifest in [`MANIFESTS_DIR`] (a non-dot file
/// other than [`MANIFEST`] whose name has `kube-apiserver` in it, such as
/// `kube-apiserver.yaml.bak`): the kubelet runs every file there whose name does not start with
/// a dot (kubernetes/kubernetes `pkg/kubelet/config/file.go`, `extractFromDir` skips only
/// names starting with `.`), so a copy runs as a second API server that the patch does not
/// change.
pub fn copies_warnings(files: &NodeFiles) -> Vec<String> {
    let listing = files
        .get(MANIFESTS_LIST)
        .cloned()
        .flatten()
        .unwrap_or_default();
    listing
        .lines()
        .map(str::trim)
        .filter(|n| !n.starts_with('.') && *n != "kube-apiserver.yaml" && n.contains("kube-apiserver"))
        .map(|n| {
            format!(
                "warning: `{MANIFESTS_DIR}/{}` is a copy of the API server's manifest in the directory the kubelet runs: it runs every file there whose name does not start with a dot, so this copy runs too, with its own settings, which this patch does not change; move it out of {MANIFESTS_DIR}",
                crate::escape(n)
            )
        })
        .collect()
}

/// The managed flags (`--oidc-*`, `--authentication-config`) of a manifest as `--name=value`
/// words, sorted: what `/proc/PID/cmdline` of its API server must show.
pub fn manifest_flags(text: &str) -> Result<Vec<String>, PlanError> {
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

impl NodeBackend for Kubeadm {
    fn distribution(&self) -> Distribution {
        Distribution::Kubeadm
    }

    fn target_file(&self) -> &'static str {
        MANIFEST
    }

    fn node_dirs(&self) -> Vec<String> {
        vec![PKI.into(), super::NODE_DIR.into()]
    }

    fn read_commands(&self) -> Vec<ReadCommand> {
        vec![
            ReadCommand {
                key: KUBEADM_CONFIGMAP.into(),
                if_file: Some(MANIFEST.into()),
                command: configmap_read(),
            },
            ReadCommand {
                key: MANIFESTS_LIST.into(),
                if_file: Some(MANIFEST.into()),
                command: Command::new("ls", ["-1", MANIFESTS_DIR]),
            },
        ]
    }

    fn patch(&self, req: &PatchRequest<'_>, files: &NodeFiles) -> Result<Patched, PlanError> {
        let current = files
            .get(MANIFEST)
            .cloned()
            .flatten()
            .ok_or_else(|| PlanError::Patch {
                what: format!("`{MANIFEST}` on `{}`", req.host),
                reason: "the file does not exist".into(),
                fix: format!("check that `{}` is a kubeadm control-plane node", req.host),
            })?;
        let wanted = req.wanted()?;
        let flags_before = manifest_flags(&current)?;
        refuse_foreign_config(req, &current)?;
        let (dir, mount) = files_dir(&current, wanted)?;
        let args = match wanted {
            None => vec![],
            Some((s, mode)) => apiserver::args(s, mode, dir),
        };
        let mut changes = Vec::new();
        if let Some((s, mode)) = wanted {
            let how = match &mount {
                Some(m) => format!("{dir} is mounted into the pod as volume `{}`", m.name),
                None => format!("{dir} is already mounted into the pod"),
            };
            changes = node_file_changes(apiserver::node_files(s, mode, dir), files, |label| {
                format!("place {label} where the API server pod can read it ({how})")
            });
        }
        let mut patched = if req.remove {
            manifest::remove_oidc(&current, super::VOLUME_NAME)?
        } else {
            manifest::patch_manifest(&current, &args, mount.as_ref())?
        };
        if let Some((s, Mode::Config(ConfigApiVersion::V1))) = wanted {
            anonymous_health(req, s, files, &current, &mut patched, &mut changes)?;
        }
        let endpoint = manifest::api_endpoint(&current);
        let health = Health {
            process: Some("kube-apiserver".into()),
            flags_after: manifest_flags(&patched.text)?,
            flags_before,
            ..Health::at(&endpoint, req.timeout_secs)
        };
        let mut notes = copies_warnings(files);
        notes.extend(patched.notes.iter().cloned());
        let mut after_healthy = Vec::new();
        configmap_step(req, files, &mut changes, &mut after_healthy, &mut notes)?;
        Ok(Patched {
            target: MANIFEST.into(),
            existed: true,
            before: current,
            after: patched.text,
            why: format!(
                "{} the API server's OIDC flags (written outside {MANIFESTS_DIR}, then renamed into place)",
                if req.remove { "remove" } else { "set" }
            ),
            files: changes,
            restart: vec![],
            restart_after_restore: vec![],
            health,
            notes,
            after_healthy,
            rewritten_by_restart: false,
        })
    }

    fn metrics_command(&self) -> Option<Command> {
        Some(node_kubectl(["get", "--raw", "/metrics"]))
    }

    fn running_settings(
        &self,
        req: &PatchRequest<'_>,
        files: &NodeFiles,
        convert: Convert,
    ) -> Result<Running, PlanError> {
        let current = files
            .get(MANIFEST)
            .cloned()
            .flatten()
            .ok_or_else(|| PlanError::Patch {
                what: format!("`{MANIFEST}` on `{}`", req.host),
                reason: "the file does not exist".into(),
                fix: format!("check that `{}` is a kubeadm control-plane node", req.host),
            })?;
        let flags = manifest::current_flags(&current)?;
        let version = convert
            .kubernetes_version
            .or_else(|| migrate::image_version(&current));
        let config = flags
            .iter()
            .find(|(n, _)| n == "authentication-config")
            .map(|(_, v)| v.clone().unwrap_or_default());
        let oidc = flags.iter().any(|(n, _)| n.starts_with("oidc-"));
        match convert.auth_mode {
            AuthMode::Flags => match (config, oidc) {
                (Some(path), _) => {
                    refuse_foreign_config(req, &current)?;
                    let text = host_path(&current, &path)
                        .and_then(|h| files.get(&h).cloned().flatten())
                        .ok_or_else(|| PlanError::Patch {
                            what: format!("`{path}` on `{}`", req.host),
                            reason: "the AuthenticationConfiguration could not be read".into(),
                            fix: "check the file, or give the OIDC settings explicitly".into(),
                        })?;
                    let s = migrate::settings_from_file(req.host, &path, &text, version)?;
                    Ok(Running::Settings(Box::new(s), vec![format!("converted from {path}; the file itself is left in place (unused)")]))
                }
                (None, true) => Ok(Running::Already("runs --oidc-* flags".into())),
                (None, false) => Err(PlanError::Patch {
                    what: format!("`{MANIFEST}` on `{}`", req.host),
                    reason: "the API server runs neither `--oidc-*` flags nor `--authentication-config`, so there is nothing to convert".into(),
                    fix: "give the OIDC settings (`--issuer-url`, `--client-id`, ...) to set them".into(),
                }),
            },
            _ => {
                if config.is_some() && !oidc {
                    return Ok(Running::Already("runs --authentication-config".into()));
                }
                let version = version.ok_or_else(|| {
                    PlanError::invalid(
                        "--auth-mode",
                        "config",
                        "the node's kube-apiserver image has no version tag to choose the AuthenticationConfiguration apiVersion from",
                        "add `--kubernetes-version 1.30` or newer",
                    )
                })?;
                let ca_path = flags
                    .iter()
                    .rev()
                    .find(|(n, _)| n == "oidc-ca-file")
                    .and_then(|(_, v)| v.clone());
                let ca = ca_path
                    .and_then(|p| host_path(&current, &p))
                    .and_then(|h| files.get(&h).cloned().flatten());
                let (s, notes) =
                    migrate::settings_from_flags(req.host, &flags, ca, convert, Some(version))?;
                Ok(Running::Settings(Box::new(s), notes))
            }
        }
    }

    fn after_restore(&self, files: &NodeFiles, timeout_secs: u64) -> Result<Restored, PlanError> {
        let current = files.get(MANIFEST).cloned().flatten().unwrap_or_default();
        let endpoint = manifest::api_endpoint(&current);
        let flags = manifest_flags(&current)?;
        Ok(Restored {
            distribution: Distribution::Kubeadm,
            restart: vec![],
            health: Health {
                process: Some("kube-apiserver".into()),
                flags_after: flags.clone(),
                flags_before: flags,
                ..Health::at(&endpoint, timeout_secs)
            },
        })
    }

    fn can_create(&self) -> bool {
        true
    }

    fn create(
        &self,
        host: &str,
        s: &OidcSettings,
        _installer: &str,
        _read: &NodeFiles,
    ) -> Result<Plan, PlanError> {
        let on = Target::Host(host.to_string());
        let mode = s.mode()?;
        let api = super::api_for(s.kubernetes_version);
        let mut files = node_file_changes(
            apiserver::node_files(s, mode, super::NODE_DIR),
            &NodeFiles::new(),
            |_| {
                format!(
                    "the file the API server reads, in {} (mounted by the `{}` extraVolume)",
                    super::NODE_DIR,
                    super::VOLUME_NAME
                )
            },
        );
        let mut flags = crate::patch::flag_words(&apiserver::args(s, mode, super::NODE_DIR));
        flags.sort();
        let mut health = Health {
            process: Some("kube-apiserver".into()),
            flags_after: flags,
            ..Health::at(
                &manifest::ApiEndpoint {
                    scheme: "https".into(),
                    host: "127.0.0.1".into(),
                    port: 6443,
                },
                120,
            )
        };
        health.endpoint_file = Some(MANIFEST.into());
        let file = crate::create_node::kubeadm_config_path();
        files.push(FileChange {
            path: file.clone(),
            before: None,
            after: super::cluster_configuration(s, api)?,
            mode: 0o600,
            why: "the ClusterConfiguration with the OIDC flags, for kubeadm init (kept in the kubeadm-config ConfigMap by kubeadm)".into(),
        });
        Ok(Plan {
            title: format!("{host}: create a kubeadm control plane with OIDC"),
            steps: crate::create_node::create_steps(
                &on,
                files,
                vec![(
                    Command::new("kubeadm", ["init", "--config", file.as_str()]),
                    "create the control plane; its API server starts with OIDC".into(),
                )],
                Some(health),
            ),
            notes: vec![],
        })
    }
}

/// From 1.34, on a node that runs `--anonymous-auth=false`: the file gets
/// [`migrate::ANONYMOUS_HEALTH`] and the flag goes (kube-apiserver refuses both; see
/// [`crate::migrate`]); a file that has the section already keeps it (kube-apiserver rejects a
/// reload that changes `anonymous`: "changed from initial configuration file",
/// pkg/kubeapiserver/options/authentication.go).
fn anonymous_health(
    req: &PatchRequest<'_>,
    s: &OidcSettings,
    files: &NodeFiles,
    current: &str,
    patched: &mut manifest::ManifestPatch,
    changes: &mut Vec<FileChange>,
) -> Result<(), PlanError> {
    let path = auth_config_path();
    let before = files.get(&path).cloned().flatten();
    let had = before
        .as_deref()
        .is_some_and(|t| t.contains(migrate::ANONYMOUS_HEALTH));
    let off = manifest::current_flags(current)?
        .iter()
        .any(|(n, v)| n == "anonymous-auth" && v.as_deref() == Some("false"));
    if !off && !had {
        return Ok(());
    }
    let want =
        migrate::with_anonymous_health(&apiserver::authentication_config(s, ConfigApiVersion::V1));
    let why = changes
        .iter()
        .find(|c| c.path == path)
        .map(|c| c.why.clone())
        .unwrap_or_else(|| {
            format!(
                "place the AuthenticationConfiguration where the API server pod can read it ({} is mounted into the pod)",
                super::NODE_DIR
            )
        });
    changes.retain(|c| c.path != path);
    if before.as_deref() != Some(want.as_str()) {
        changes.push(FileChange {
            path: path.clone(),
            before,
            after: want,
            mode: 0o600,
            why,
        });
    }
    if off {
        patched.text = migrate::remove_anonymous_auth(&patched.text).ok_or_else(|| PlanError::Patch {
            what: format!("`{MANIFEST}` on `{}`", req.host),
            reason: "its `--anonymous-auth` item could not be removed (written several times, or not as one `- --anonymous-auth=false` item)".into(),
            fix: "leave one `- --anonymous-auth=false` item, or remove it by hand".into(),
        })?;
        patched.changed = patched.text != current;
        patched.notes.push("`--anonymous-auth=false` is replaced by the file's `anonymous` section (only /livez, /readyz and /healthz answer anonymous requests, as the kubelet's probes need): kube-apiserver 1.34 refuses the flag beside the section".into());
        if files.get(KUBEADM_CONFIGMAP).is_some_and(Option::is_some) {
            patched.notes.push("the kubeadm-config ConfigMap may still set `anonymous-auth` in apiServer.extraArgs: take it out by hand, or `kubeadm upgrade` would write both and the API server would not start".into());
        }
    }
    Ok(())
}

/// The host path behind `path` inside the kube-apiserver container (through its hostPath
/// volumes), if a mount shows it.
fn host_path(manifest_text: &str, path: &str) -> Option<String> {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(manifest_text).ok()?;
    let spec = &doc["spec"];
    let c = spec["containers"]
        .as_sequence()?
        .iter()
        .find(|c| c["name"].as_str() == Some("kube-apiserver"))?;
    let mut best: Option<(String, String)> = None;
    for m in c["volumeMounts"].as_sequence()? {
        let (Some(mp), Some(name)) = (m["mountPath"].as_str(), m["name"].as_str()) else {
            continue;
        };
        let mp = mp.trim_end_matches('/');
        if !(path == mp || path.starts_with(&format!("{mp}/"))) {
            continue;
        }
        let Some(hp) = spec["volumes"].as_sequence()?.iter().find_map(|v| {
            (v["name"].as_str() == Some(name)).then(|| v["hostPath"]["path"].as_str())?
        }) else {
            continue;
        };
        if best.as_ref().is_none_or(|(b, _)| mp.len() > b.len()) {
            best = Some((mp.to_string(), hp.trim_end_matches('/').to_string()));
        }
    }
    best.map(|(mp, hp)| format!("{hp}{}", &path[mp.len()..]))
}

/// kubeadm keeps the cluster's configuration in the `kube-system/kubeadm-config` ConfigMap;
/// `kubeadm upgrade` and `kubeadm join --control-plane` regenerate the API server manifest
/// from it, so it gets the same change, after the API server is healthy (it is read through
/// that API server), as a compare and swap against what the first round trip read. A
/// ConfigMap that cannot be read or patched safely is a note, not a failure.
fn configmap_step(
    req: &PatchRequest<'_>,
    files: &NodeFiles,
    changes: &mut Vec<FileChange>,
    after_healthy: &mut Vec<(String, NodeStep)>,
    notes: &mut Vec<String>,
) -> Result<(), PlanError> {
    let Some(found) = files.get(KUBEADM_CONFIGMAP) else {
        return Ok(());
    };
    let Some(current) = found else {
        notes.push("the kubeadm-config ConfigMap could not be read: `kubeadm upgrade` would regenerate the manifest without these flags; update its ClusterConfiguration by hand (`k8soidc render --distro kubeadm`)".into());
        return Ok(());
    };
    let settings = req.settings_or_placeholder()?.into_owned();
    match super::patch_cluster_configuration(current, &settings, req.remove) {
        Ok(None) => {}
        Ok(Some(after)) => {
            // The ClusterConfiguration names k8soidc's own directory (NODE_DIR); when the
            // manifest uses /etc/kubernetes/pki, the CA goes there too, for `kubeadm upgrade`.
            if let (false, Some(ca), Ok(Mode::Flags)) = (req.remove, &settings.ca, settings.mode()) {
                let path = format!("{}/{}", super::NODE_DIR, apiserver::CA_FILE);
                let before = files.get(&path).cloned().flatten();
                let planned = changes.iter().any(|c| c.path == path);
                if !planned && before.as_deref() != Some(ca.pem.as_str()) {
                    changes.insert(
                        0,
                        FileChange {
                            path,
                            before,
                            after: ca.pem.clone(),
                            mode: 0o600,
                            why: format!("the kubeadm-config ClusterConfiguration names {}/{} (volume `{}`), which `kubeadm upgrade` mounts", super::NODE_DIR, apiserver::CA_FILE, super::VOLUME_NAME),
                        },
                    );
                }
            }
            let payload =
                serde_json::json!({ "data": { "ClusterConfiguration": after } }).to_string();
            after_healthy.push((
                "once the API server is healthy: the same change in the kubeadm-config ConfigMap, so `kubeadm upgrade` keeps it".into(),
                NodeStep::CompareAndSwap {
                    what: "/kube-system/configmaps/kubeadm-config/ClusterConfiguration".into(),
                    read: configmap_read(),
                    before: current.clone(),
                    after,
                    payload,
                    write: configmap_write(),
                },
            ));
        }
        Err(e) => notes.push(format!(
            "the kubeadm-config ConfigMap is left as it is ({e}); `kubeadm upgrade` would regenerate the manifest without these flags"
        )),
    }
    Ok(())
}

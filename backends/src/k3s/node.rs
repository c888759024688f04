//! k3s and RKE2 server nodes, as `patch --ssh` and `create --ssh` see them.
//!
//! Facts (sources in ../shared/reference/distros.md): the API server's flags are the
//! `kube-apiserver-arg` list of `/etc/rancher/{k3s,rke2}/config.yaml` and its
//! `config.yaml.d/*.yaml` drop-ins, read only at start, applied by `systemctl restart k3s` /
//! `rke2-server` (k3s-io/docs `docs/upgrades/manual.md`); both run without a config file, which
//! is then created; k8soidc's own drop-in ([`super::dropin_path`]) is patched when present. The
//! API answers on `https-listen-port` (6443) and refuses anonymous requests, so health also
//! asks the node's own kubectl ([`super::readyz_command`]). RKE2 mounts the file directory with
//! `kube-apiserver-extra-mount`. `create --ssh`: the drop-in and files are written BEFORE the
//! installer; k3s' starts k3s with the config it finds (k3s-io/docs
//! `docs/installation/configuration.md`, "Configuration File"); RKE2's starts nothing, so the
//! plan then enables and starts `rke2-server` (docs.rke2.io/install/quickstart).

use crate::apiserver;
use crate::manifest::ApiEndpoint;
use crate::migrate::{self, Convert};
use crate::node::{
    FileChange, Health, NodeBackend, NodeFiles, ReadCommand, Restart, Restored, Running,
};
use crate::patch::{endpoint_of, node_file_changes, PatchRequest, Patched};
use crate::settings::AuthMode;
use crate::{Command, Distribution, OidcSettings, Plan, PlanError, Target};

/// The k3s / RKE2 node backend.
pub struct K3sNode {
    distribution: Distribution,
    config: &'static str,
    unit: &'static str,
}

/// k3s.
pub static K3S: K3sNode = K3sNode {
    distribution: Distribution::K3s,
    config: "/etc/rancher/k3s/config.yaml",
    unit: "k3s",
};
/// RKE2.
pub static RKE2: K3sNode = K3sNode {
    distribution: Distribution::Rke2,
    config: "/etc/rancher/rke2/config.yaml",
    unit: "rke2-server",
};

/// The [`NodeFiles`] key under which the first round trip reports whether the unit is active
/// (`systemd:k3s`, `systemd:rke2-server`), so a server installed without a config file is
/// found too.
pub fn unit_key(unit: &str) -> String {
    format!("systemd:{unit}")
}

/// Where the API server of a k3s / RKE2 config answers: `bind-address` when specific, else
/// `advertise-address`, else 127.0.0.1; `https-listen-port`, else 6443 (k3s server flags).
pub fn endpoint(text: &str) -> ApiEndpoint {
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

impl K3sNode {
    fn health(&self, files: &NodeFiles, timeout_secs: u64) -> Result<Health, PlanError> {
        // The address keys live in config.yaml even when OIDC is in the drop-in.
        let main = files
            .get(self.config)
            .cloned()
            .flatten()
            .unwrap_or_default();
        Ok(Health {
            unit: Some(self.unit.into()),
            admin_probe: Some(super::readyz_command(self.distribution)?),
            ..Health::at(&endpoint(&main), timeout_secs)
        })
    }
}

impl NodeBackend for K3sNode {
    fn distribution(&self) -> Distribution {
        self.distribution
    }

    fn target_file(&self) -> &'static str {
        self.config
    }

    fn node_dirs(&self) -> Vec<String> {
        super::node_dir(self.distribution).into_iter().collect()
    }

    fn probe_paths(&self) -> Vec<String> {
        let mut v = vec![self.config.to_string()];
        v.extend(super::dropin_path(self.distribution));
        for dir in self.node_dirs() {
            v.push(format!("{dir}/{}", apiserver::CA_FILE));
            v.push(format!("{dir}/{}", apiserver::AUTH_CONFIG_FILE));
        }
        v
    }

    fn read_commands(&self) -> Vec<ReadCommand> {
        vec![ReadCommand {
            key: unit_key(self.unit),
            if_file: None,
            command: Command::new("systemctl", ["is-active", self.unit]),
        }]
    }

    fn detect(&self, files: &NodeFiles) -> bool {
        let has = |p: &str| matches!(files.get(p), Some(Some(_)));
        has(self.config) || has(&unit_key(self.unit))
    }

    fn patch(&self, req: &PatchRequest<'_>, files: &NodeFiles) -> Result<Patched, PlanError> {
        let d = self.distribution;
        // k3s / RKE2 created by k8soidc keep OIDC in their drop-in: patch that one when present.
        let target = super::dropin_path(d)
            .ok()
            .filter(|p| matches!(files.get(p), Some(Some(_))))
            .unwrap_or_else(|| self.config.to_string());
        let found = files.get(&target).cloned().flatten();
        let existed = found.is_some();
        let current = found.unwrap_or_default();
        let s = &*req.settings_or_placeholder()?;
        let dir = super::node_dir(d)?;
        let mut changes: Vec<FileChange> = Vec::new();
        if !req.remove {
            changes = node_file_changes(apiserver::node_files(s, s.mode()?, &dir), files, |l| {
                format!("place {l} in {dir}, where the API server reads it")
            });
        }
        let after = super::patch_config(&current, s, d, req.remove)?;
        let restart = super::restart_command(d)?;
        Ok(Patched {
            why: format!(
                "{} the API server's OIDC flags (written to a temporary file beside it, then renamed into place)",
                if req.remove { "remove" } else { "set" }
            ),
            target: target.clone(),
            existed,
            after: after.unwrap_or_else(|| current.clone()),
            before: current,
            files: changes,
            restart: vec![Restart {
                command: restart.clone(),
                why: format!("{d} reads {target} only at start"),
            }],
            restart_after_restore: vec![restart],
            health: self.health(files, req.timeout_secs)?,
            notes: vec![],
            after_healthy: vec![],
            rewritten_by_restart: false,
        })
    }

    /// The `kube-apiserver-arg` entries (`name=value`) of the file `patch` edits (k8soidc's
    /// drop-in when present, else config.yaml); the paths they name are read on the node as
    /// they are (k3s runs the API server in its own process; RKE2 mounts k8soidc's directory
    /// at the same path). The version is in no file read: config mode needs
    /// `--kubernetes-version`.
    fn running_settings(
        &self,
        req: &PatchRequest<'_>,
        files: &NodeFiles,
        convert: Convert,
    ) -> Result<Running, PlanError> {
        let d = self.distribution;
        let target = super::dropin_path(d)
            .ok()
            .filter(|p| matches!(files.get(p), Some(Some(_))))
            .unwrap_or_else(|| self.config.to_string());
        let text = files.get(&target).cloned().flatten().unwrap_or_default();
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&text).map_err(|e| PlanError::Patch {
                what: format!("`{target}` on `{}`", req.host),
                reason: format!("it is not YAML ({e})"),
                fix: "fix the file by hand first".into(),
            })?;
        let entries: Vec<String> = match &doc["kube-apiserver-arg"] {
            serde_yaml_ng::Value::Sequence(v) => v
                .iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect(),
            serde_yaml_ng::Value::String(one) => vec![one.clone()],
            _ => vec![],
        };
        let flags: Vec<(String, Option<String>)> = entries
            .iter()
            .map(|e| match e.trim_start_matches('-').split_once('=') {
                Some((k, v)) => (k.to_string(), Some(v.to_string())),
                None => (e.trim_start_matches('-').to_string(), None),
            })
            .collect();
        let value = |name: &str| {
            flags
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone().unwrap_or_default())
        };
        let read = |path: &str| files.get(path).cloned().flatten();
        let config = value("authentication-config");
        let oidc = flags.iter().any(|(n, _)| n.starts_with("oidc-"));
        match (convert.auth_mode, config, oidc) {
            (AuthMode::Flags, Some(path), _) => {
                let text = read(&path).ok_or_else(|| PlanError::Patch {
                    what: format!("`{path}` on `{}`", req.host),
                    reason: "the AuthenticationConfiguration could not be read (k8soidc reads it only where it writes it)".into(),
                    fix: "give the OIDC settings explicitly".into(),
                })?;
                let s = migrate::settings_from_file(req.host, &path, &text, convert.kubernetes_version)?;
                Ok(Running::Settings(Box::new(s), vec![format!("converted from {path}; the file itself is left in place (unused)")]))
            }
            (AuthMode::Flags, None, true) => Ok(Running::Already("runs --oidc-* flags".into())),
            (AuthMode::Flags, None, false) => Err(PlanError::Patch {
                what: format!("`{target}` on `{}`", req.host),
                reason: "its kube-apiserver-arg has neither `oidc-*` flags nor `authentication-config`, so there is nothing to convert".into(),
                fix: "give the OIDC settings (`--issuer-url`, `--client-id`, ...) to set them".into(),
            }),
            (_, Some(_), false) => Ok(Running::Already("runs --authentication-config".into())),
            _ => {
                if convert.kubernetes_version.is_none() {
                    return Err(PlanError::invalid(
                        "--auth-mode",
                        "config",
                        format!("{d}'s Kubernetes version is in none of the files k8soidc reads, and it chooses the AuthenticationConfiguration apiVersion"),
                        format!("add `--kubernetes-version` (`{d} --version` shows it)"),
                    ));
                }
                // No `anonymous` section, unlike kubeadm's conversion from 1.34
                // (`kubeadm::node::anonymous_health`): k3s and RKE2 always start the API server
                // with `--anonymous-auth=false` (k3s-io/k3s pkg/daemons/control/server.go,
                // `argsMap["anonymous-auth"] = "false"` before the user's kube-apiserver-arg,
                // which can change its value but not remove it), and kube-apiserver refuses to
                // start with the flag beside a file that has the section ("--anonymous-auth flag
                // cannot be set when anonymous field is configured in authentication
                // configuration file": kubernetes/kubernetes
                // pkg/kubeapiserver/options/authentication.go, ToAuthenticationConfig). Without
                // it the flag still refuses anonymous requests as before the conversion, and the
                // health wait asks the node's own kubectl with the admin kubeconfig
                // (`Health::admin_probe`), never an anonymous request. Pinned over test nodes by
                // tests/migrate.rs `k3s_flags_to_file_and_back_keeps_the_cluster_healthy` and
                // its RKE2 twin.
                let ca = value("oidc-ca-file").and_then(|p| read(&p));
                let (s, notes) = migrate::settings_from_flags(
                    req.host,
                    &flags,
                    ca,
                    convert,
                    convert.kubernetes_version,
                )?;
                Ok(Running::Settings(Box::new(s), notes))
            }
        }
    }

    fn after_restore(&self, files: &NodeFiles, timeout_secs: u64) -> Result<Restored, PlanError> {
        Ok(Restored {
            distribution: self.distribution,
            restart: vec![super::restart_command(self.distribution)?],
            health: self.health(files, timeout_secs)?,
        })
    }

    fn can_create(&self) -> bool {
        true
    }

    fn create(
        &self,
        host: &str,
        s: &OidcSettings,
        installer: &str,
        read: &NodeFiles,
    ) -> Result<Plan, PlanError> {
        let d = self.distribution;
        let on = Target::Host(host.to_string());
        let fresh = NodeFiles::new();
        let mut files = node_file_changes(
            apiserver::node_files(s, s.mode()?, &super::node_dir(d)?),
            &fresh,
            |_| {
                match d {
                Distribution::Rke2 => "the file the API server reads (RKE2 mounts its directory into the static pod: kube-apiserver-extra-mount)".into(),
                _ => "the file the API server reads (k3s runs it in its own process: host paths)".into(),
            }
            },
        );
        let (name, commands) = match d {
            // docs.rke2.io/install/quickstart: the installer starts nothing; enable, then start.
            Distribution::Rke2 => (
                "RKE2",
                vec![
                    (
                        Command::new("sh", ["-c", installer]),
                        "install RKE2 (the rke2-server unit and binary; it starts nothing)".into(),
                    ),
                    (
                        Command::new("systemctl", ["enable", "rke2-server.service"]),
                        "enable rke2-server".into(),
                    ),
                    (
                        Command::new("systemctl", ["start", "rke2-server.service"]),
                        "start rke2-server, which reads the drop-in".into(),
                    ),
                ],
            ),
            _ => (
                "k3s",
                vec![(
                    Command::new("sh", ["-c", installer]),
                    "install and start k3s".into(),
                )],
            ),
        };
        files.push(FileChange {
            path: super::dropin_path(d)?,
            before: None,
            after: super::dropin(s, d)?,
            mode: 0o600,
            why: format!("written before {name} starts, so it starts with OIDC (a drop-in: config.yaml stays yours)"),
        });
        Ok(Plan {
            title: format!("{host}: create a {name} control plane with OIDC"),
            steps: crate::create_node::create_steps(
                &on,
                files,
                commands,
                Some(self.health(read, 120)?),
            ),
            notes: vec![],
        })
    }
}

//! k0s controllers, as `patch --ssh` sees them (facts and sources in the parent module).
//! The target is `/etc/k0s/k0s.yaml` (created when the controller runs without one: k0s fills
//! in the defaults of every field it does not set); the restart is `systemctl restart
//! k0scontroller`; health is the API server at `spec.api.address` (else 127.0.0.1) and
//! `spec.api.port` (else 6443), with `k0s kubectl get --raw /readyz` when anonymous requests
//! are refused.

use crate::apiserver;
use crate::manifest::ApiEndpoint;
use crate::node::{FileChange, Health, NodeBackend, NodeFiles, ReadCommand, Restart, Restored};
use crate::patch::{endpoint_of, node_file_changes, PatchRequest, Patched};
use crate::{Command, Distribution, PlanError};

use super::{ADMIN_KUBECONFIG, CONFIG, NODE_DIR, UNIT};

/// The k0s controller node backend.
pub struct K0sNode;

/// k0s.
pub static K0S: K0sNode = K0sNode;

/// Where the API server of a k0s config answers: `spec.api.address`, else 127.0.0.1;
/// `spec.api.port`, else 6443.
pub fn endpoint(text: &str) -> ApiEndpoint {
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).unwrap_or_default();
    let api = &doc["spec"]["api"];
    let address = api["address"].as_str();
    let port = api["port"].as_u64().and_then(|p| u16::try_from(p).ok());
    endpoint_of(None, address, port, 6443)
}

fn readyz() -> Command {
    Command::new(
        "k0s",
        [
            "kubectl",
            "--kubeconfig",
            ADMIN_KUBECONFIG,
            "get",
            "--raw",
            "/readyz",
        ],
    )
}

fn health(files: &NodeFiles, timeout_secs: u64) -> Health {
    let text = files.get(CONFIG).cloned().flatten().unwrap_or_default();
    Health {
        unit: Some(UNIT.into()),
        admin_probe: Some(readyz()),
        ..Health::at(&endpoint(&text), timeout_secs)
    }
}

impl NodeBackend for K0sNode {
    fn distribution(&self) -> Distribution {
        Distribution::K0s
    }

    fn target_file(&self) -> &'static str {
        CONFIG
    }

    fn node_dirs(&self) -> Vec<String> {
        vec![NODE_DIR.to_string()]
    }

    fn read_commands(&self) -> Vec<ReadCommand> {
        vec![ReadCommand {
            key: crate::k3s::node::unit_key(UNIT),
            if_file: None,
            command: Command::new("systemctl", ["is-active", UNIT]),
        }]
    }

    fn detect(&self, files: &NodeFiles) -> bool {
        let has = |p: &str| matches!(files.get(p), Some(Some(_)));
        has(CONFIG) || has(&crate::k3s::node::unit_key(UNIT))
    }

    fn patch(&self, req: &PatchRequest<'_>, files: &NodeFiles) -> Result<Patched, PlanError> {
        let found = files.get(CONFIG).cloned().flatten();
        let existed = found.is_some();
        let current = found.unwrap_or_default();
        let s = &*req.settings_or_placeholder()?;
        let mut changes: Vec<FileChange> = Vec::new();
        if !req.remove {
            changes =
                node_file_changes(apiserver::node_files(s, s.mode()?, NODE_DIR), files, |l| {
                    format!("place {l} in {NODE_DIR}, where the API server reads it")
                });
        }
        let after = super::patch_config(&current, s, req.remove)?;
        let restart = super::restart_command();
        Ok(Patched {
            why: format!(
                "{} the API server's OIDC flags in spec.api.extraArgs (written to a temporary file beside it, then renamed into place)",
                if req.remove { "remove" } else { "set" }
            ),
            target: CONFIG.to_string(),
            existed,
            after: after.unwrap_or_else(|| current.clone()),
            before: current,
            files: changes,
            restart: vec![Restart {
                command: restart.clone(),
                why: format!("k0s reads {CONFIG} only at start"),
            }],
            restart_after_restore: vec![restart],
            health: health(files, req.timeout_secs),
            notes: vec![],
            after_healthy: vec![],
            rewritten_by_restart: false,
        })
    }

    fn after_restore(&self, files: &NodeFiles, timeout_secs: u64) -> Result<Restored, PlanError> {
        Ok(Restored {
            distribution: Distribution::K0s,
            restart: vec![super::restart_command()],
            health: health(files, timeout_secs),
        })
    }
}

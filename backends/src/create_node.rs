//! `k8soidc create --distro kubeadm|microk8s|k3s --ssh HOST`: the pure half. OIDC is in place
//! before the control plane first starts, so no API server ever runs without it:
//! - kubeadm: the files in [`crate::kubeadm::NODE_DIR`] and a `ClusterConfiguration`
//!   ([`crate::kubeadm::cluster_configuration`]) written to the node, then
//!   `kubeadm init --config FILE` (kubernetes/website
//!   `content/en/docs/reference/setup-tools/kubeadm/kubeadm-init.md`, "--config").
//! - k3s: the drop-in `/etc/rancher/k3s/config.yaml.d/50-oidc.yaml` ([`crate::k3s::dropin`])
//!   and the files, BEFORE the installer, which starts k3s with the config it finds
//!   (k3s-io/docs `docs/installation/configuration.md`, "Configuration File").
//! - MicroK8s: `snap install microk8s --classic`; the snap starts with its default args, so
//!   the executor then runs the same transaction as `patch` (args file, RBAC, restart).
//!
//! The executor refuses a host that already runs a control plane (use `patch` there).

use crate::apiserver;
use crate::kubeadm;
use crate::patch::STATE_DIR;
use crate::{Command, Distribution, OidcSettings, Plan, PlanError, Step, Target};

/// The installer k3s documents (k3s-io/docs `docs/quick-start.md`).
pub const K3S_INSTALL: &str = "curl -sfL https://get.k3s.io | sh -";
/// Where the kubeadm configuration is written on the node (k8soidc's state dir, root only).
pub fn kubeadm_config_path() -> String {
    format!("{STATE_DIR}/{}", kubeadm::CONFIG_FILE)
}

/// The plan for one host. `installer`: the shell command that installs k3s (default
/// [`K3S_INSTALL`]; the binary lets tests replace it).
pub fn create_host(
    d: Distribution,
    host: &str,
    s: &OidcSettings,
    installer: &str,
) -> Result<Plan, PlanError> {
    let on = Target::Host(host.to_string());
    let mode = s.mode()?;
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    let write = |path: String, after: String, why: String| Step::WriteFile {
        on: on.clone(),
        path,
        before: None,
        after,
        mode: 0o600,
        why,
    };
    match d {
        Distribution::Kubeadm => {
            let api = kubeadm::api_for(s.kubernetes_version);
            for f in apiserver::node_files(s, mode, kubeadm::NODE_DIR) {
                steps.push(write(
                    f.path,
                    f.content,
                    format!(
                        "the file the API server reads, in {} (mounted by the `{}` extraVolume)",
                        kubeadm::NODE_DIR,
                        kubeadm::VOLUME_NAME
                    ),
                ));
            }
            let file = kubeadm_config_path();
            steps.push(write(
                file.clone(),
                kubeadm::cluster_configuration(s, api)?,
                "the ClusterConfiguration with the OIDC flags, for kubeadm init (kept in the kubeadm-config ConfigMap by kubeadm)".into(),
            ));
            steps.push(Step::Run {
                on: on.clone(),
                command: Command::new("kubeadm", ["init", "--config", file.as_str()]),
                sudo: false,
                stdin: None,
                why: "create the control plane; its API server starts with OIDC".into(),
            });
        }
        Distribution::K3s => {
            for f in apiserver::node_files(s, mode, &crate::k3s::node_dir(d)?) {
                steps.push(write(
                    f.path,
                    f.content,
                    "the file the API server reads (k3s runs it in its own process: host paths)"
                        .into(),
                ));
            }
            steps.push(write(
                crate::k3s::dropin_path(d)?,
                crate::k3s::dropin(s, d)?,
                "written before the installer, so k3s starts with OIDC (a drop-in: config.yaml stays yours)".into(),
            ));
            steps.push(Step::Run {
                on: on.clone(),
                command: Command::new("sh", ["-c", installer]),
                sudo: false,
                stdin: None,
                why: "install and start k3s".into(),
            });
        }
        Distribution::Microk8s => {
            steps.push(Step::Run {
                on: on.clone(),
                command: Command::new("snap", ["install", "microk8s", "--classic"]),
                sudo: false,
                stdin: None,
                why: "install MicroK8s; then the args file is patched as by `k8soidc patch`".into(),
            });
            notes.push("after the install: the same transaction as `k8soidc patch --distro microk8s` (args file, RBAC, restart, health)".into());
        }
        other => {
            return Err(PlanError::Unsupported {
                distribution: other,
                message:
                    "`create --ssh` supports kubeadm, microk8s and k3s; see `k8soidc create --help`"
                        .into(),
            })
        }
    }
    Ok(Plan {
        title: format!("{host}: create a {d} control plane with OIDC"),
        steps,
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::settings;

    #[test]
    fn files_come_before_the_command_that_starts_the_api_server() {
        for (d, last) in [
            (
                Distribution::Kubeadm,
                "kubeadm init --config /var/lib/k8soidc/kubeadm-config.yaml",
            ),
            (
                Distribution::K3s,
                "sh -c 'curl -sfL https://get.k3s.io | sh -'",
            ),
            (Distribution::Microk8s, "snap install microk8s --classic"),
        ] {
            let p = create_host(d, "cp1", &settings(), K3S_INSTALL).unwrap();
            let Some(Step::Run { command, .. }) = p.steps.last() else {
                panic!("{d}: {p}")
            };
            assert_eq!(command.to_shell(), last);
            assert!(p.steps[..p.steps.len() - 1]
                .iter()
                .all(|s| matches!(s, Step::WriteFile { .. })));
        }
        let k = create_host(Distribution::K3s, "cp1", &settings(), K3S_INSTALL).unwrap();
        assert!(k
            .to_string()
            .contains("/etc/rancher/k3s/config.yaml.d/50-oidc.yaml"));
        let a = create_host(Distribution::Kubeadm, "cp1", &settings(), K3S_INSTALL).unwrap();
        assert!(a.to_string().contains("kind: ClusterConfiguration"));
        assert!(create_host(Distribution::Kind, "cp1", &settings(), K3S_INSTALL).is_err());
    }
}

//! `k8soidc create --ssh HOST`: the pure half. OIDC is in place before the control plane
//! first starts, so no API server ever runs without it. What each distribution does is its
//! [`crate::node::NodeBackend::create`] (kubeadm: files + `kubeadm init --config`; k3s: the
//! drop-in before the installer; MicroK8s: the snap, then its args file patched on the node).
//! The executor refuses a host that already runs a control plane (use `patch` there).

use crate::kubeadm;
use crate::node::{node_backend, FileChange, Health, NodeFiles, NodeStep, Restart, STATE_DIR};
use crate::{Command, Distribution, OidcSettings, Plan, PlanError, Step, Target};

/// The installer k3s documents (k3s-io/docs `docs/quick-start.md`); it also enables and
/// starts the `k3s` unit.
pub const K3S_INSTALL: &str = "curl -sfL https://get.k3s.io | sh -";

/// The installer RKE2 documents (docs.rke2.io/install/quickstart, "Server Node
/// Installation"): it installs the `rke2-server` unit and binary and starts nothing; the
/// quickstart then runs `systemctl enable rke2-server.service` and `systemctl start
/// rke2-server.service`.
pub const RKE2_INSTALL: &str = "curl -sfL https://get.rke2.io | sh -";

/// Where the kubeadm configuration is written on the node (k8soidc's state dir, root only).
pub fn kubeadm_config_path() -> String {
    format!("{STATE_DIR}/{}", kubeadm::CONFIG_FILE)
}

/// The steps of a create: one commit that writes `files` (backed up, staged, renamed like a
/// patch) and then runs `commands` (the installer), then the health wait.
pub fn create_steps(
    on: &Target,
    files: Vec<FileChange>,
    commands: Vec<(Command, String)>,
    health: Option<Health>,
) -> Vec<Step> {
    let mut steps = Vec::new();
    if files.is_empty() {
        // Nothing to write: the commands run as they are.
        for (command, why) in commands {
            steps.push(Step::Node {
                on: on.clone(),
                sudo: false,
                why,
                step: NodeStep::Run { command },
            });
        }
    } else {
        let why = match commands.first() {
            Some((_, why)) => format!("write the files, then {why}"),
            None => "write the files".into(),
        };
        steps.push(Step::Node {
            on: on.clone(),
            sudo: false,
            why,
            step: NodeStep::Commit {
                files,
                restart: commands
                    .into_iter()
                    .map(|(command, why)| Restart { command, why })
                    .collect(),
            },
        });
    }
    if let Some(h) = health {
        steps.push(Step::Node {
            on: on.clone(),
            sudo: false,
            why: "wait until the new API server is healthy with OIDC".into(),
            step: NodeStep::AwaitHealthy(h),
        });
    }
    steps
}

/// The plan for one host (`files`: what the first round trip read). `installer`: the shell
/// command that installs k3s or RKE2 (default [`K3S_INSTALL`], [`RKE2_INSTALL`]).
pub fn create_host(
    d: Distribution,
    host: &str,
    s: &OidcSettings,
    installer: &str,
    files: &NodeFiles,
) -> Result<Plan, PlanError> {
    let b = node_backend(d).map_err(|_| PlanError::Unsupported {
        distribution: d,
        message: format!(
            "`create --ssh` supports {}; see `k8soidc create --help`",
            crate::node::create_supported()
        ),
    })?;
    b.create(host, s, installer, files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::settings;

    fn commands(p: &Plan) -> Vec<String> {
        p.steps
            .iter()
            .flat_map(|s| match s {
                Step::Node {
                    step: NodeStep::Commit { restart, .. },
                    ..
                } => restart.iter().map(|r| r.command.to_shell()).collect(),
                Step::Node {
                    step: NodeStep::Run { command },
                    ..
                } => vec![command.to_shell()],
                _ => vec![],
            })
            .collect()
    }

    #[test]
    fn files_come_before_the_command_that_starts_the_api_server() {
        let none = NodeFiles::new();
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
            let p = create_host(d, "cp1", &settings(), K3S_INSTALL, &none).unwrap();
            assert_eq!(commands(&p), [last], "{d}");
        }
        let k = create_host(Distribution::K3s, "cp1", &settings(), K3S_INSTALL, &none).unwrap();
        assert!(k
            .to_string()
            .contains("/etc/rancher/k3s/config.yaml.d/50-oidc.yaml"));
        let a = create_host(
            Distribution::Kubeadm,
            "cp1",
            &settings(),
            K3S_INSTALL,
            &none,
        )
        .unwrap();
        assert!(a.to_string().contains("kind: ClusterConfiguration"));
        assert!(create_host(Distribution::Kind, "cp1", &settings(), K3S_INSTALL, &none).is_err());
        let e = create_host(Distribution::Kind, "cp1", &settings(), K3S_INSTALL, &none)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("supports kubeadm, microk8s, k3s and rke2"),
            "{e}"
        );
        // RKE2: the installer starts nothing; enable and start follow it, drop-in first.
        let r = create_host(Distribution::Rke2, "cp1", &settings(), RKE2_INSTALL, &none).unwrap();
        assert_eq!(
            commands(&r),
            [
                "sh -c 'curl -sfL https://get.rke2.io | sh -'",
                "systemctl enable rke2-server.service",
                "systemctl start rke2-server.service"
            ]
        );
        assert!(r
            .to_string()
            .contains("/etc/rancher/rke2/config.yaml.d/50-oidc.yaml"));
        // MicroK8s: what depends on the install is a script shown in the plan.
        let m = create_host(
            Distribution::Microk8s,
            "cp1",
            &settings(),
            K3S_INSTALL,
            &none,
        )
        .unwrap();
        let shown = m.to_string();
        assert!(shown.contains("microk8s enable rbac"), "{shown}");
        assert!(shown.contains("--oidc-issuer-url="), "{shown}");
    }
}

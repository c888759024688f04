//! kind: kubeadm in Docker. OIDC is set at creation with a `kind.x-k8s.io/v1alpha4` Cluster
//! config whose `kubeadmConfigPatches` carry a `ClusterConfiguration` patch; the staged
//! directory (CA, AuthenticationConfiguration) is bind-mounted into the control-plane node
//! with `extraMounts` and from there into the API server with kubeadm's `extraVolumes`.
//!
//! Facts (see `/work/shared/reference/distros.md` §3.7):
//! - A patch without `apiVersion` matches any kubeadm version ("if the patch does not specify
//!   APIVersion we ignore it", kubernetes-sigs/kind `pkg/internal/patch/resource.go`).
//! - kind generates kubeadm v1beta3 before Kubernetes 1.36 and v1beta4 from 1.36 (kind v0.32.0,
//!   `pkg/cluster/internal/kubeadm/config.go`); for a v1beta4 target a map-style `extraArgs` in
//!   a patch without `apiVersion` is converted to `{name, value}` and merged by name
//!   (`pkg/internal/patch/kubeadm_merge.go`). So the patch uses the map form, which holds a flag
//!   once: two required claims cannot be expressed (flags mode).
//! - Docker mounts are `--volume HOST:CONTAINER:ro` (`pkg/cluster/internal/providers/docker/
//!   provision.go` `generateMountBindings`), so the staged host path cannot contain `:`.

use serde::Serialize;

use crate::kubeadm::{self, ArgsForm, NODE_DIR};
use crate::{
    apiserver, Backend, ClusterRequest, Command, Distribution, OidcSettings, Plan, PlanError,
    Rendering, Step, Target,
};

/// File name of the kind config in the staging directory.
pub const CONFIG_FILE: &str = "kind-config.yaml";

/// The kind backend.
#[derive(Debug, Clone, Copy)]
pub struct Kind;

fn check(s: &OidcSettings, req: &ClusterRequest) -> Result<(), PlanError> {
    let mode = s.mode()?;
    crate::refuse_repeated_claims(Distribution::Kind, s, concat!("`apiServer.extraArgs` in ", "kind's kubeadmConfigPatches (kind converts it for kubeadm v1beta4)", " is a map, which holds `oidc-required-claim` only once"), "give one required claim, or use `--auth-mode config` (Kubernetes 1.30+, where required claims are validation rules)")?;
    if !apiserver::node_files(s, mode, NODE_DIR).is_empty() && req.staging_dir.contains(':') {
        return Err(PlanError::unrepresentable(
            Distribution::Kind,
            "--volume",
            &req.staging_dir,
            "kind mounts it with `docker run --volume HOST:CONTAINER`, which splits on `:`",
            "set XDG_DATA_HOME to a path without `:`",
        ));
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Cluster {
    kind: &'static str,
    api_version: &'static str,
    name: String,
    nodes: Vec<Node>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Node {
    role: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    extra_mounts: Vec<Mount>,
    kubeadm_config_patches: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Mount {
    host_path: String,
    container_path: &'static str,
    read_only: bool,
}

/// The `ClusterConfiguration` patch: no `apiVersion`, map-style `extraArgs`, `extraVolumes`.
pub fn kubeadm_patch(s: &OidcSettings, req: &ClusterRequest) -> Result<String, PlanError> {
    check(s, req)?;
    Ok(kubeadm::document(s, s.mode()?, None, ArgsForm::Map))
}

/// The `kind.x-k8s.io/v1alpha4` Cluster config for `kind create cluster --config FILE`.
pub fn config_file(s: &OidcSettings, req: &ClusterRequest) -> Result<String, PlanError> {
    let patch = kubeadm_patch(s, req)?;
    let extra_mounts = if apiserver::node_files(s, s.mode()?, NODE_DIR).is_empty() {
        vec![]
    } else {
        vec![Mount {
            host_path: req.staging_dir.clone(),
            container_path: NODE_DIR,
            read_only: true,
        }]
    };
    let cluster = Cluster {
        kind: "Cluster",
        api_version: "kind.x-k8s.io/v1alpha4",
        name: req.name.clone(),
        nodes: vec![Node {
            role: "control-plane",
            extra_mounts,
            kubeadm_config_patches: vec![patch],
        }],
    };
    Ok(crate::yamlout::to_yaml(&cluster))
}

fn config_path(req: &ClusterRequest) -> String {
    format!("{}/{CONFIG_FILE}", req.staging_dir)
}

fn create_command(req: &ClusterRequest) -> Command {
    let mut args = vec![
        "create".to_string(),
        "cluster".to_string(),
        "--name".to_string(),
        req.name.clone(),
        "--config".to_string(),
        config_path(req),
    ];
    args.extend(req.extra_args.iter().cloned());
    Command::new("kind", args)
}

fn staged_path(node_path: &str, req: &ClusterRequest) -> String {
    node_path.replacen(NODE_DIR, &req.staging_dir, 1)
}

impl Backend for Kind {
    fn distribution(&self) -> Distribution {
        Distribution::Kind
    }

    fn required_programs(&self) -> &'static [(&'static str, &'static str)] {
        &[("kind", "install kind: `go install sigs.k8s.io/kind@latest`, or a release binary as in https://kind.sigs.k8s.io/docs/user/quick-start/#installing-from-release-binaries (e.g. `curl -Lo ./kind https://kind.sigs.k8s.io/dl/v0.32.0/kind-linux-amd64 && chmod +x ./kind && sudo mv ./kind /usr/local/bin/kind`)")]
    }

    fn render(&self, s: &OidcSettings, req: &ClusterRequest) -> Result<Rendering, PlanError> {
        let config = config_file(s, req)?;
        let mut r = Rendering::new(Distribution::Kind, s)?;
        if let Some(v) = s.kubernetes_version {
            r.warnings.push(format!(
                "kind runs the Kubernetes version of its node image; to get {v}, add `--image kindest/node:v{v}.N` (a tag from kind's release notes) to kind's arguments"
            ));
        }
        for f in apiserver::node_files(s, s.mode()?, NODE_DIR) {
            r.push(
                format!("file mounted into the control-plane node at {}", f.path),
                Some(staged_path(&f.path, req)),
                if f.path.ends_with(".yaml") {
                    "yaml"
                } else {
                    "text"
                },
                f.content,
            );
        }
        r.push(
            "kind cluster config",
            Some(config_path(req)),
            "yaml",
            config,
        );
        r.push(
            "create command",
            None,
            "shell",
            format!("{}\n", create_command(req)),
        );
        Ok(r)
    }

    fn create_plan(&self, s: &OidcSettings, req: &ClusterRequest) -> Result<Plan, PlanError> {
        let rendering = self.render(s, req)?;
        let mut steps: Vec<Step> = apiserver::node_files(s, s.mode()?, NODE_DIR)
            .into_iter()
            .map(|f| Step::WriteFile {
                on: Target::Local,
                path: staged_path(&f.path, req),
                before: None,
                after: f.content,
                mode: 0o644,
                why: format!(
                    "stage the file the API server reads at {}; kind mounts {} into the control-plane node",
                    f.path, req.staging_dir
                ),
            })
            .collect();
        steps.push(Step::WriteFile {
            on: Target::Local,
            path: config_path(req),
            before: None,
            after: config_file(s, req)?,
            mode: 0o644,
            why: "write the kind cluster config with the API server's OIDC settings".into(),
        });
        steps.push(Step::run(
            create_command(req),
            format!("create kind cluster `{}`", req.name),
        ));
        Ok(Plan {
            title: format!("create kind cluster `{}` with OIDC", req.name),
            steps,
            notes: rendering.summary(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubeadm::tests::{fixture, read_back};
    use crate::testutil::*;
    use serde_yaml_ng::Value;

    fn with_ca() -> OidcSettings {
        let mut s = with(|i| i.required_claim = vec!["hd=example.com".into()]);
        s.ca = Some(ca());
        s
    }

    /// The first node's patches, each parsed.
    fn patches(config: &str) -> Vec<Value> {
        let doc: Value = serde_yaml_ng::from_str(config).unwrap();
        let found = if doc["nodes"][0]["kubeadmConfigPatches"].is_sequence() {
            &doc["nodes"][0]["kubeadmConfigPatches"]
        } else {
            &doc["kubeadmConfigPatches"]
        };
        found
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| serde_yaml_ng::from_str(p.as_str().unwrap()).unwrap())
            .collect()
    }

    #[test]
    fn flags_config_exact() {
        let got = config_file(&with_ca(), &request()).unwrap();
        assert_eq!(
            got,
            "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: oidc
nodes:
- role: control-plane
  extraMounts:
  - hostPath: /home/me/.local/share/k8soidc/oidc
    containerPath: /etc/kubernetes/oidc
    readOnly: true
  kubeadmConfigPatches:
  - |
    kind: ClusterConfiguration
    apiServer:
      extraArgs:
        oidc-issuer-url: https://idp.example.com
        oidc-client-id: kubernetes
        oidc-username-claim: email
        oidc-username-prefix: 'oidc:'
        oidc-groups-claim: groups
        oidc-groups-prefix: 'oidc:'
        oidc-ca-file: /etc/kubernetes/oidc/oidc-ca.pem
        oidc-required-claim: hd=example.com
      extraVolumes:
      - name: oidc
        hostPath: /etc/kubernetes/oidc
        mountPath: /etc/kubernetes/oidc
        readOnly: true
        pathType: DirectoryOrCreate
"
        );
    }

    #[test]
    fn config_mode_exact() {
        let s = with(|i| {
            i.auth_mode = Some("config".into());
            i.kubernetes_version = Some("1.34".into());
            i.required_claim = vec!["hd=example.com".into(), "org=acme".into()];
        });
        let got = config_file(&s, &request()).unwrap();
        assert_eq!(
            got,
            "kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: oidc
nodes:
- role: control-plane
  extraMounts:
  - hostPath: /home/me/.local/share/k8soidc/oidc
    containerPath: /etc/kubernetes/oidc
    readOnly: true
  kubeadmConfigPatches:
  - |
    kind: ClusterConfiguration
    apiServer:
      extraArgs:
        authentication-config: /etc/kubernetes/oidc/authentication-config.yaml
      extraVolumes:
      - name: oidc
        hostPath: /etc/kubernetes/oidc
        mountPath: /etc/kubernetes/oidc
        readOnly: true
        pathType: DirectoryOrCreate
"
        );
        let r = Kind.render(&s, &request()).unwrap();
        assert_eq!(
            r.artifacts[0].path.as_deref(),
            Some("/home/me/.local/share/k8soidc/oidc/authentication-config.yaml")
        );
        assert!(r.artifacts[0]
            .content
            .starts_with("apiVersion: apiserver.config.k8s.io/v1\n"));
        assert!(r
            .warnings
            .iter()
            .any(|w| w.contains("`--image kindest/node:v1.34.N`")));
    }

    #[test]
    fn no_files_no_mounts() {
        let got = config_file(&settings(), &request()).unwrap();
        assert!(!got.contains("extraMounts"), "{got}");
        assert!(!got.contains("extraVolumes"), "{got}");
    }

    #[test]
    fn patch_values_read_back_as_strings() {
        let mut s = with(|i| {
            i.client_id = Some("0x1F".into());
            i.username_claim = Some("yes".into());
            i.username_prefix = Some("-".into());
            // quoting, not the reserved-name policy, is under test here
            i.allow_system_names = Some(true);
            i.groups_claim = Some("groups".into());
            i.groups_prefix = Some("oidc:".into());
            i.required_claim = vec!["*a=&b #c".into()];
        });
        s.ca = Some(ca());
        let want: Vec<(String, String)> = apiserver::args(&s, crate::Mode::Flags, NODE_DIR)
            .into_iter()
            .map(|a| (a.name, a.value))
            .collect();
        let config = config_file(&s, &request()).unwrap();
        let patches = patches(&config);
        assert_eq!(patches.len(), 1);
        let patch = &patches[0];
        assert_eq!(patch["kind"].as_str(), Some("ClusterConfiguration"));
        assert!(patch.get("apiVersion").is_none(), "{config}");
        assert!(patch["apiServer"]["extraArgs"].is_mapping());
        assert_eq!(read_back(patch), want, "{config}");
    }

    #[test]
    fn same_shape_as_a_real_kind_config() {
        // int128/kubelogin acceptance_test/cluster.yaml: a kind Cluster whose patch sets
        // apiServer.extraArgs as a map of strings (it pins apiVersion v1beta2; we do not).
        let text = fixture("kubeadm-config/013-kubelogin-kind-v1beta2-oidc.yaml");
        let theirs = patches(&text);
        assert_eq!(theirs.len(), 1);
        assert_eq!(
            theirs[0]["apiVersion"].as_str(),
            Some("kubeadm.k8s.io/v1beta2")
        );
        let their_args = read_back(&theirs[0]);
        assert_eq!(
            their_args[..3],
            [
                (
                    "oidc-issuer-url".to_string(),
                    "https://kubelogin-acceptance-test-control-plane:30443/dex".to_string()
                ),
                ("oidc-client-id".to_string(), "YOUR_CLIENT_ID".to_string()),
                ("oidc-username-claim".to_string(), "email".to_string()),
            ]
        );
        let ours = patches(&config_file(&settings(), &request()).unwrap());
        assert_eq!(ours[0]["kind"], theirs[0]["kind"]);
        let doc: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(doc["apiVersion"].as_str(), Some("kind.x-k8s.io/v1alpha4"));
        assert_eq!(doc["nodes"][0]["role"].as_str(), Some("control-plane"));
    }

    #[test]
    fn refuses_two_required_claims_in_flags_mode() {
        let s = with(|i| i.required_claim = vec!["hd=example.com".into(), "org=acme".into()]);
        let e = Kind.render(&s, &request()).unwrap_err().to_string();
        assert_eq!(
            e,
            "kind cannot carry --required-claim `hd=example.com org=acme`: `apiServer.extraArgs` in kind's kubeadmConfigPatches \
             (kind converts it for kubeadm v1beta4) is a map, which holds `oidc-required-claim` only once; \
             give one required claim, or use `--auth-mode config` (Kubernetes 1.30+, where required claims are validation rules)"
        );
        assert!(Kind.create_plan(&s, &request()).is_err());
    }

    #[test]
    fn refuses_colon_in_staging_dir_only_when_mounting() {
        let mut req = request();
        req.staging_dir = "/home/me/a:b".into();
        let e = Kind.render(&with_ca(), &req).unwrap_err().to_string();
        assert!(
            e.starts_with("kind cannot carry --volume `/home/me/a:b`"),
            "{e}"
        );
        assert!(Kind.render(&settings(), &req).is_ok());
    }

    #[test]
    fn create_plan_stages_files_then_config_then_runs_kind() {
        let mut req = request();
        req.extra_args = vec!["--image".into(), "kindest/node:v1.31.2".into()];
        let plan = Kind.create_plan(&with_ca(), &req).unwrap();
        assert_eq!(plan.steps.len(), 3, "{plan}");
        let Step::WriteFile {
            path, after, mode, ..
        } = &plan.steps[0]
        else {
            panic!("{plan}")
        };
        assert_eq!(path, "/home/me/.local/share/k8soidc/oidc/oidc-ca.pem");
        assert_eq!(after, &ca().pem);
        assert_eq!(*mode, 0o644);
        let Step::WriteFile { path, after, .. } = &plan.steps[1] else {
            panic!("{plan}")
        };
        assert_eq!(path, "/home/me/.local/share/k8soidc/oidc/kind-config.yaml");
        assert_eq!(after, &config_file(&with_ca(), &req).unwrap());
        let Step::Run {
            command, on, sudo, ..
        } = &plan.steps[2]
        else {
            panic!("{plan}")
        };
        assert_eq!((on, sudo), (&Target::Local, &false));
        assert_eq!(
            command.to_shell(),
            "kind create cluster --name oidc --config /home/me/.local/share/k8soidc/oidc/kind-config.yaml --image kindest/node:v1.31.2"
        );
        assert_eq!(plan.title, "create kind cluster `oidc` with OIDC");
        assert_eq!(plan.notes[0], "kind: --oidc-* flags");
    }

    #[test]
    fn needs_kind() {
        let programs = Kind.required_programs();
        assert_eq!(programs.len(), 1);
        assert_eq!(programs[0].0, "kind");
        assert!(programs[0].1.contains("go install sigs.k8s.io/kind@latest"));
    }
}

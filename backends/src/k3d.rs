//! k3d v5: k3s in Docker. OIDC is set at creation with
//! `--k3s-arg "--kube-apiserver-arg=NAME=VALUE@server:*"` (the dashes belong to the k3s flag,
//! not to the API-server flag), or with an equivalent `k3d.io/v1alpha5` config file.
//! Files (CA, AuthenticationConfiguration) are staged in a local directory mounted into the
//! servers with `--volume DIR:/etc/rancher/k3s/oidc@server:*` (a directory, so the
//! API server's hot reload of the auth config sees replaced files).
//!
//! Syntax facts (k3d `cmd/util/filter.go`, `docs/usage/configfile.md`): only one unescaped
//! `@` is allowed in a flag value, literal ones are written `\@`; an argument without a
//! node filter is refused when the cluster has more than one node (it always has a server
//! and a load balancer); the config file expands `$VAR` unconditionally, with no escape.

pub mod live;
mod patch;

use serde::Serialize;

use crate::apiserver::{self, Arg};
use crate::{
    refuse_chars, Backend, ClusterRequest, Command, Distribution, OidcSettings, Plan, PlanError,
    Rendering, Step, Target,
};

pub use patch::patch_config;

/// Where the staged directory appears inside the k3s server containers.
pub const NODE_DIR: &str = "/etc/rancher/k3s/oidc";
const FILTER: &str = "server:*";

/// The k3d backend.
#[derive(Debug, Clone, Copy)]
pub struct K3d;

fn check(s: &OidcSettings, req: &ClusterRequest) -> Result<(), PlanError> {
    crate::k3s::refuse_anonymous(s, Distribution::K3d)?;
    refuse_chars(
        Distribution::K3d,
        s,
        &[(
            '$',
            "k3d expands `$VAR` in config files and has no escape for `$`",
        )],
    )?;
    if req.staging_dir.contains([':', '@', ',']) {
        return Err(PlanError::unrepresentable(
            Distribution::K3d,
            "--volume",
            &req.staging_dir,
            "k3d splits volume specs on `:` and `@`",
            "set XDG_DATA_HOME to a path without `:`, `@` or `,`",
        ));
    }
    Ok(())
}

/// The value of one `--k3s-arg`, `@` escaped and the node filter appended.
pub fn k3s_arg(arg: &Arg) -> String {
    format!(
        "--kube-apiserver-arg={}@{FILTER}",
        arg.pair().replace('@', r"\@")
    )
}

fn volume(req: &ClusterRequest) -> String {
    format!("{}:{NODE_DIR}@{FILTER}", req.staging_dir)
}

fn create_command(s: &OidcSettings, req: &ClusterRequest) -> Result<Command, PlanError> {
    let mode = s.mode()?;
    let mut args = vec![
        "cluster".to_string(),
        "create".to_string(),
        req.name.clone(),
    ];
    if !apiserver::node_files(s, mode, NODE_DIR).is_empty() {
        args.push("--volume".into());
        args.push(volume(req));
    }
    for arg in apiserver::args(s, mode, NODE_DIR) {
        args.push("--k3s-arg".into());
        args.push(k3s_arg(&arg));
    }
    args.extend(req.extra_args.iter().cloned());
    Ok(Command::new("k3d", args))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Config {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    servers: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volumes: Vec<Volume>,
    options: Options,
}

#[derive(Serialize)]
struct Metadata {
    name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Volume {
    volume: String,
    node_filters: Vec<&'static str>,
}

#[derive(Serialize)]
struct Options {
    k3s: K3sOptions,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct K3sOptions {
    extra_args: Vec<ExtraArg>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ExtraArg {
    arg: String,
    node_filters: Vec<&'static str>,
}

/// The `k3d.io/v1alpha5` config file for `k3d cluster create --config FILE`.
pub fn config_file(s: &OidcSettings, req: &ClusterRequest) -> Result<String, PlanError> {
    check(s, req)?;
    let mode = s.mode()?;
    let volumes = if apiserver::node_files(s, mode, NODE_DIR).is_empty() {
        vec![]
    } else {
        vec![Volume {
            volume: format!("{}:{NODE_DIR}", req.staging_dir),
            node_filters: vec![FILTER],
        }]
    };
    let config = Config {
        api_version: "k3d.io/v1alpha5",
        kind: "Simple",
        metadata: Metadata {
            name: req.name.clone(),
        },
        servers: 1,
        volumes,
        options: Options {
            k3s: K3sOptions {
                extra_args: apiserver::args(s, mode, NODE_DIR)
                    .iter()
                    .map(|a| ExtraArg {
                        arg: format!("--kube-apiserver-arg={}", a.pair()),
                        node_filters: vec![FILTER],
                    })
                    .collect(),
            },
        },
    };
    Ok(crate::yamlout::to_yaml(&config))
}

impl Backend for K3d {
    fn distribution(&self) -> Distribution {
        Distribution::K3d
    }

    fn required_programs(&self) -> &'static [(&'static str, &'static str)] {
        &[("k3d", "install k3d v5: see https://k3d.io/#installation (e.g. `curl -s https://raw.githubusercontent.com/k3d-io/k3d/main/install.sh | bash`)")]
    }

    fn render(&self, s: &OidcSettings, req: &ClusterRequest) -> Result<Rendering, PlanError> {
        check(s, req)?;
        let mode = s.mode()?;
        let mut r = Rendering::new(Distribution::K3d, s)?;
        for f in apiserver::node_files(s, mode, NODE_DIR) {
            let local = f.path.replacen(NODE_DIR, &req.staging_dir, 1);
            r.push(
                format!("file mounted into the servers at {}", f.path),
                Some(local),
                "text",
                f.content,
            );
        }
        r.push(
            "create command",
            None,
            "shell",
            format!("{}\n", create_command(s, req)?),
        );
        r.push(
            "or the same as a k3d config file, for `k3d cluster create --config FILE`",
            Some(format!("{}.k3d.yaml", req.name)),
            "yaml",
            config_file(s, req)?,
        );
        Ok(r)
    }

    fn create_plan(&self, s: &OidcSettings, req: &ClusterRequest) -> Result<Plan, PlanError> {
        let rendering = self.render(s, req)?;
        let mode = s.mode()?;
        let mut steps: Vec<Step> = apiserver::node_files(s, mode, NODE_DIR)
            .into_iter()
            .map(|f| Step::WriteFile {
                on: Target::Local,
                path: f.path.replacen(NODE_DIR, &req.staging_dir, 1),
                before: None,
                after: f.content,
                mode: 0o644,
                why: format!(
                    "stage the file the API server reads at {}; k3d mounts {} into every server",
                    f.path, req.staging_dir
                ),
            })
            .collect();
        steps.push(Step::run(
            create_command(s, req)?,
            format!(
                "create k3d cluster `{}` with the API server's OIDC settings",
                req.name
            ),
        ));
        Ok(Plan {
            title: format!("create k3d cluster `{}` with OIDC", req.name),
            steps,
            notes: rendering.summary(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn escapes_at_in_values() {
        let s = with(|i| i.required_claim = vec!["email=jane@example.com".into()]);
        let cmd = create_command(&s, &request()).unwrap();
        assert!(
            cmd.args.contains(
                &r"--kube-apiserver-arg=oidc-required-claim=email=jane\@example.com@server:*"
                    .to_string()
            ),
            "{cmd}"
        );
    }

    #[test]
    fn exact_command() {
        let cmd = create_command(&settings(), &request()).unwrap();
        assert_eq!(
            cmd.to_shell(),
            "k3d cluster create oidc --k3s-arg '--kube-apiserver-arg=oidc-issuer-url=https://idp.example.com@server:*' \
             --k3s-arg '--kube-apiserver-arg=oidc-client-id=kubernetes@server:*' --k3s-arg '--kube-apiserver-arg=oidc-username-claim=email@server:*' \
             --k3s-arg '--kube-apiserver-arg=oidc-username-prefix=oidc:@server:*' --k3s-arg '--kube-apiserver-arg=oidc-groups-claim=groups@server:*' \
             --k3s-arg '--kube-apiserver-arg=oidc-groups-prefix=oidc:@server:*'"
        );
    }

    #[test]
    fn ca_is_mounted_as_a_directory() {
        let mut s = settings();
        s.ca = Some(ca());
        let plan = K3d.create_plan(&s, &request()).unwrap();
        let Step::WriteFile { path, .. } = &plan.steps[0] else {
            panic!("{plan}")
        };
        assert_eq!(path, "/home/me/.local/share/k8soidc/oidc/oidc-ca.pem");
        let text = plan.to_string();
        assert!(
            text.contains(
                "--volume '/home/me/.local/share/k8soidc/oidc:/etc/rancher/k3s/oidc@server:*'"
            ),
            "{text}"
        );
        assert!(
            text.contains("oidc-ca-file=/etc/rancher/k3s/oidc/oidc-ca.pem@server:*"),
            "{text}"
        );
    }

    #[test]
    fn refuses_dollar() {
        let s = with(|i| i.client_id = Some("a$b".into()));
        let e = K3d.render(&s, &request()).unwrap_err().to_string();
        assert!(e.starts_with("k3d cannot carry --client-id `a$b`"), "{e}");
    }
}

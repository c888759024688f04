//! kubeadm: the API server's flags live in `ClusterConfiguration.apiServer.extraArgs`, files it
//! must read are mounted with `apiServer.extraVolumes`, and `kubeadm init --config FILE` reads both.
//!
//! Facts (see `/work/shared/reference/distros.md` §3.3):
//! - `kubeadm.k8s.io/v1beta3` (kubeadm 1.22 to 1.30) has `extraArgs` as a `map[string]string`,
//!   so a flag can appear once: two `--oidc-required-claim` cannot be written.
//!   `kubeadm.k8s.io/v1beta4` (kubeadm 1.31+, PR kubernetes/kubernetes#125029) has a list of
//!   `{name, value}` that allows duplicates (kubernetes/website
//!   `content/en/docs/reference/config-api/kubeadm-config.v1beta4.md`). v1beta1/v1beta2 use the map.
//! - kubeadm does not mount files named in `extraArgs` (kubernetes/kubeadm#640); `extraVolumes`
//!   entries have `name`, `hostPath`, `mountPath`, `readOnly`, `pathType`
//!   (kubernetes/kubernetes `cmd/kubeadm/app/apis/kubeadm/v1beta4/doc.go`). We mount the
//!   directory, not the files, so the API server's reload of the auth config sees replaced files.
//!
//! Everything is written with a YAML serializer, so values such as `oidc:` or `-` come out
//! quoted and read back as strings.

use serde::ser::{Serialize, SerializeMap, Serializer};

pub mod node;
mod patch;
pub use patch::patch_cluster_configuration;

use crate::apiserver::{self, Arg};
use crate::{
    shell, Backend, ClusterRequest, Distribution, KubeVersion, Mode, OidcSettings, PlanError,
    Rendering,
};

/// Directory on every control-plane node holding the CA / AuthenticationConfiguration.
pub const NODE_DIR: &str = "/etc/kubernetes/oidc";
/// File name of the rendered kubeadm configuration.
pub const CONFIG_FILE: &str = "kubeadm-config.yaml";
/// The `extraVolumes` entry name for [`NODE_DIR`].
pub const VOLUME_NAME: &str = "oidc";

/// The kubeadm configuration API a `ClusterConfiguration` is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeadmApi {
    /// `kubeadm.k8s.io/v1beta3`: kubeadm 1.22 to 1.30, `extraArgs` is a map.
    V1beta3,
    /// `kubeadm.k8s.io/v1beta4`: kubeadm 1.31 and later, `extraArgs` is a `{name, value}` list.
    V1beta4,
}

impl KubeadmApi {
    /// The full `apiVersion` string.
    pub fn api_version(self) -> &'static str {
        match self {
            KubeadmApi::V1beta3 => "kubeadm.k8s.io/v1beta3",
            KubeadmApi::V1beta4 => "kubeadm.k8s.io/v1beta4",
        }
    }
}

/// The API for a Kubernetes version: v1beta3 before 1.31, v1beta4 from 1.31 and when unknown.
pub fn api_for(v: Option<KubeVersion>) -> KubeadmApi {
    match v {
        Some(v) if v < KubeVersion::new(1, 31) => KubeadmApi::V1beta3,
        _ => KubeadmApi::V1beta4,
    }
}

/// How `extraArgs` is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ArgsForm {
    /// `name: value` (v1beta1 to v1beta3, and kind patches).
    Map,
    /// `- name: NAME` / `value: VALUE` (v1beta4).
    List,
}

struct ExtraArgs {
    form: ArgsForm,
    args: Vec<Arg>,
}

impl Serialize for ExtraArgs {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        match self.form {
            ArgsForm::List => ser.collect_seq(&self.args),
            ArgsForm::Map => {
                let mut map = ser.serialize_map(Some(self.args.len()))?;
                for a in &self.args {
                    map.serialize_entry(&a.name, &a.value)?;
                }
                map.end()
            }
        }
    }
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ClusterConfiguration {
    #[serde(skip_serializing_if = "Option::is_none")]
    api_version: Option<&'static str>,
    kind: &'static str,
    api_server: ApiServer,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ApiServer {
    extra_args: ExtraArgs,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    extra_volumes: Vec<HostPathMount>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct HostPathMount {
    name: &'static str,
    host_path: &'static str,
    mount_path: &'static str,
    read_only: bool,
    path_type: &'static str,
}

/// The `ClusterConfiguration` document; `api_version` None leaves the line out (kind patches).
/// Callers check [`crate::refuse_repeated_claims`] first when `form` is [`ArgsForm::Map`].
pub(crate) fn document(
    s: &OidcSettings,
    mode: Mode,
    api_version: Option<&'static str>,
    form: ArgsForm,
) -> String {
    let extra_volumes = if apiserver::node_files(s, mode, NODE_DIR).is_empty() {
        vec![]
    } else {
        vec![HostPathMount {
            name: VOLUME_NAME,
            host_path: NODE_DIR,
            mount_path: NODE_DIR,
            read_only: true,
            path_type: "DirectoryOrCreate",
        }]
    };
    let doc = ClusterConfiguration {
        api_version,
        kind: "ClusterConfiguration",
        api_server: ApiServer {
            extra_args: ExtraArgs {
                form,
                args: apiserver::args(s, mode, NODE_DIR),
            },
            extra_volumes,
        },
    };
    crate::yamlout::to_yaml(&doc)
}

/// The `ClusterConfiguration` YAML for `kubeadm init --config`, in the given API. Refuses two
/// or more `--required-claim` in flags mode for v1beta3, whose `extraArgs` map holds a flag once.
pub fn cluster_configuration(s: &OidcSettings, version: KubeadmApi) -> Result<String, PlanError> {
    let mode = s.mode()?;
    let form = match version {
        KubeadmApi::V1beta3 => {
            crate::refuse_repeated_claims(Distribution::Kubeadm, s, concat!("`apiServer.extraArgs` in ", "kubeadm.k8s.io/v1beta3", " is a map, which holds `oidc-required-claim` only once"), "use kubeadm.k8s.io/v1beta4 (Kubernetes 1.31 or newer, `--kubernetes-version 1.31`), or `--auth-mode config` (1.30), or give one required claim")?;
            ArgsForm::Map
        }
        KubeadmApi::V1beta4 => ArgsForm::List,
    };
    Ok(document(s, mode, Some(version.api_version()), form))
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The kubeadm backend.
#[derive(Debug, Clone, Copy)]
pub struct Kubeadm;

impl Backend for Kubeadm {
    fn distribution(&self) -> Distribution {
        Distribution::Kubeadm
    }

    fn render(&self, s: &OidcSettings, _req: &ClusterRequest) -> Result<Rendering, PlanError> {
        let mode = s.mode()?;
        let api = api_for(s.kubernetes_version);
        let config = cluster_configuration(s, api)?;
        let mut r = Rendering::new(Distribution::Kubeadm, s)?;
        match s.kubernetes_version {
            None => r.warnings.push(format!(
                "Kubernetes version unknown, so {} (kubeadm 1.31 and later) was assumed; for kubeadm 1.22 to 1.30 give `--kubernetes-version 1.30` (or the version you run) to get {}",
                KubeadmApi::V1beta4.api_version(),
                KubeadmApi::V1beta3.api_version()
            )),
            Some(v) if v < KubeVersion::new(1, 22) => r.warnings.push(format!(
                "kubeadm {v} predates {}: change the apiVersion line to `kubeadm.k8s.io/v1beta2` (its extraArgs map is the same)",
                KubeadmApi::V1beta3.api_version()
            )),
            Some(_) => {}
        }
        let files = apiserver::node_files(s, mode, NODE_DIR);
        let mut script =
            String::from("# as root on the first control-plane node, next to the files above\n");
        for f in &files {
            r.push(
                "file for every control-plane node",
                Some(f.path.clone()),
                if f.path.ends_with(".yaml") {
                    "yaml"
                } else {
                    "text"
                },
                f.content.clone(),
            );
            script.push_str(&shell::join([
                "install",
                "-D",
                "-m",
                "0644",
                file_name(&f.path),
                &f.path,
            ]));
            script.push('\n');
        }
        r.push(
            format!("kubeadm ClusterConfiguration ({})", api.api_version()),
            Some(CONFIG_FILE.to_string()),
            "yaml",
            config,
        );
        script.push_str(&shell::join(["kubeadm", "init", "--config", CONFIG_FILE]));
        script.push('\n');
        if !files.is_empty() {
            script.push_str(&format!(
                "# place the same files in {NODE_DIR} on every other control-plane node before `kubeadm join --control-plane`\n"
            ));
        }
        r.push(
            "how to place the files and create the cluster",
            None,
            "shell",
            script,
        );
        Ok(r)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::testutil::*;
    use serde_yaml_ng::Value;

    fn flags_settings() -> OidcSettings {
        let mut s = with(|i| i.required_claim = vec!["hd=example.com".into()]);
        s.ca = Some(ca());
        s
    }

    fn config_settings() -> OidcSettings {
        with(|i| {
            i.auth_mode = Some("config".into());
            i.kubernetes_version = Some("1.30".into());
            i.required_claim = vec!["hd=example.com".into(), "org=acme".into()];
        })
    }

    const VOLUMES: &str = "  extraVolumes:
  - name: oidc
    hostPath: /etc/kubernetes/oidc
    mountPath: /etc/kubernetes/oidc
    readOnly: true
    pathType: DirectoryOrCreate
";

    #[test]
    fn v1beta3_flags_exact() {
        let got = cluster_configuration(&flags_settings(), KubeadmApi::V1beta3).unwrap();
        let want = "apiVersion: kubeadm.k8s.io/v1beta3
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
"
        .to_string()
            + VOLUMES;
        assert_eq!(got, want);
    }

    #[test]
    fn v1beta4_flags_exact() {
        let got = cluster_configuration(&flags_settings(), KubeadmApi::V1beta4).unwrap();
        let want = "apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
apiServer:
  extraArgs:
  - name: oidc-issuer-url
    value: https://idp.example.com
  - name: oidc-client-id
    value: kubernetes
  - name: oidc-username-claim
    value: email
  - name: oidc-username-prefix
    value: 'oidc:'
  - name: oidc-groups-claim
    value: groups
  - name: oidc-groups-prefix
    value: 'oidc:'
  - name: oidc-ca-file
    value: /etc/kubernetes/oidc/oidc-ca.pem
  - name: oidc-required-claim
    value: hd=example.com
"
        .to_string()
            + VOLUMES;
        assert_eq!(got, want);
    }

    #[test]
    fn config_mode_exact_in_both_apis() {
        let s = config_settings();
        let v3 = cluster_configuration(&s, KubeadmApi::V1beta3).unwrap();
        let want3 = "apiVersion: kubeadm.k8s.io/v1beta3
kind: ClusterConfiguration
apiServer:
  extraArgs:
    authentication-config: /etc/kubernetes/oidc/authentication-config.yaml
"
        .to_string()
            + VOLUMES;
        assert_eq!(v3, want3);
        let v4 = cluster_configuration(&s, KubeadmApi::V1beta4).unwrap();
        let want4 = "apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
apiServer:
  extraArgs:
  - name: authentication-config
    value: /etc/kubernetes/oidc/authentication-config.yaml
"
        .to_string()
            + VOLUMES;
        assert_eq!(v4, want4);
    }

    #[test]
    fn flags_without_ca_have_no_volume() {
        let got = cluster_configuration(&settings(), KubeadmApi::V1beta4).unwrap();
        assert!(!got.contains("extraVolumes"), "{got}");
        assert!(!got.contains("oidc-ca-file"), "{got}");
    }

    /// Reads a file of the repository's `tests/data/fixtures`, exact bytes.
    pub(crate) fn fixture(rel: &str) -> String {
        crate::yamltext::fixture(rel)
    }

    /// Reads `apiServer.extraArgs` back as (name, value) pairs, failing on any non-string.
    pub(crate) fn read_back(doc: &Value) -> Vec<(String, String)> {
        let args = &doc["apiServer"]["extraArgs"];
        let text = |v: &Value| match v {
            Value::String(s) => s.clone(),
            other => panic!("not a string: {other:?}"),
        };
        match args {
            Value::Mapping(m) => m.iter().map(|(k, v)| (text(k), text(v))).collect(),
            Value::Sequence(items) => items
                .iter()
                .map(|i| (text(&i["name"]), text(&i["value"])))
                .collect(),
            other => panic!("extraArgs is {other:?}"),
        }
    }

    #[test]
    fn values_read_back_as_strings() {
        // Values a careless template would turn into numbers, booleans, null or YAML syntax.
        let mut s = with(|i| {
            i.client_id = Some("12345".into());
            i.username_claim = Some("true".into());
            i.username_prefix = Some("-".into());
            // quoting, not the reserved-name policy, is under test here
            i.allow_system_names = Some(true);
            i.groups_claim = Some("null".into());
            i.groups_prefix = Some("~".into());
            i.required_claim = vec!["*a=&b #c".into()];
            i.signing_algs = Some("RS256,ES256".into());
        });
        s.ca = Some(ca());
        let want: Vec<(String, String)> = apiserver::args(&s, Mode::Flags, NODE_DIR)
            .into_iter()
            .map(|a| (a.name, a.value))
            .collect();
        assert!(want.contains(&("oidc-username-prefix".into(), "-".into())));
        for api in [KubeadmApi::V1beta3, KubeadmApi::V1beta4] {
            let text = cluster_configuration(&s, api).unwrap();
            let doc: Value = serde_yaml_ng::from_str(&text).unwrap();
            assert_eq!(doc["apiVersion"].as_str(), Some(api.api_version()));
            assert_eq!(read_back(&doc), want, "{text}");
            let vol = &doc["apiServer"]["extraVolumes"][0];
            assert_eq!(vol["hostPath"].as_str(), Some(NODE_DIR));
            assert_eq!(vol["readOnly"].as_bool(), Some(true));
        }
    }

    #[test]
    fn v1beta3_refuses_two_required_claims() {
        let s = with(|i| i.required_claim = vec!["hd=example.com".into(), "org=acme".into()]);
        let e = cluster_configuration(&s, KubeadmApi::V1beta3)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "kubeadm cannot carry --required-claim `hd=example.com org=acme`: `apiServer.extraArgs` in kubeadm.k8s.io/v1beta3 is a map, \
             which holds `oidc-required-claim` only once; use kubeadm.k8s.io/v1beta4 (Kubernetes 1.31 or newer, \
             `--kubernetes-version 1.31`), or `--auth-mode config` (1.30), or give one required claim"
        );
        let s = with(|i| {
            i.required_claim = vec!["hd=example.com".into(), "org=acme".into()];
            i.kubernetes_version = Some("1.29".into());
        });
        assert!(Kubeadm.render(&s, &request()).is_err());
    }

    #[test]
    fn v1beta4_keeps_both_required_claims() {
        let s = with(|i| i.required_claim = vec!["hd=example.com".into(), "org=acme".into()]);
        let doc: Value =
            serde_yaml_ng::from_str(&cluster_configuration(&s, KubeadmApi::V1beta4).unwrap())
                .unwrap();
        let claims: Vec<String> = read_back(&doc)
            .into_iter()
            .filter(|(k, _)| k == "oidc-required-claim")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(claims, ["hd=example.com", "org=acme"]);
    }

    #[test]
    fn config_mode_allows_two_required_claims_in_v1beta3() {
        let s = config_settings();
        assert!(cluster_configuration(&s, KubeadmApi::V1beta3).is_ok());
        let r = Kubeadm.render(&s, &request()).unwrap();
        let auth = &r.artifacts[0];
        assert_eq!(
            auth.path.as_deref(),
            Some("/etc/kubernetes/oidc/authentication-config.yaml")
        );
        assert!(
            auth.content.contains("requiredValue: acme"),
            "{}",
            auth.content
        );
    }

    #[test]
    fn api_by_version() {
        let v = |t: &str| Some(KubeVersion::parse(t).unwrap());
        assert_eq!(api_for(None), KubeadmApi::V1beta4);
        assert_eq!(api_for(v("1.22")), KubeadmApi::V1beta3);
        assert_eq!(api_for(v("1.30.4")), KubeadmApi::V1beta3);
        assert_eq!(api_for(v("v1.31.0")), KubeadmApi::V1beta4);
        assert_eq!(api_for(v("1.34")), KubeadmApi::V1beta4);
    }

    #[test]
    fn unknown_version_warns_v1beta4_was_assumed() {
        let r = Kubeadm.render(&settings(), &request()).unwrap();
        assert!(r.warnings.iter().any(|w| w.contains(
            "Kubernetes version unknown, so kubeadm.k8s.io/v1beta4 (kubeadm 1.31 and later) was assumed; \
             for kubeadm 1.22 to 1.30 give `--kubernetes-version 1.30`"
        )), "{:?}", r.warnings);
        let s = with(|i| i.kubernetes_version = Some("1.30".into()));
        let r = Kubeadm.render(&s, &request()).unwrap();
        assert!(
            !r.warnings.iter().any(|w| w.contains("v1beta4")),
            "{:?}",
            r.warnings
        );
        assert!(r
            .to_string()
            .contains("apiVersion: kubeadm.k8s.io/v1beta3\n"));
        let s = with(|i| i.kubernetes_version = Some("1.21".into()));
        let r = Kubeadm.render(&s, &request()).unwrap();
        assert!(r
            .warnings
            .iter()
            .any(|w| w.contains("`kubeadm.k8s.io/v1beta2`")));
    }

    #[test]
    fn render_artifacts_exact() {
        let s = with(|i| i.kubernetes_version = Some("1.31".into()));
        let mut s = s;
        s.auth_mode = crate::AuthMode::Flags;
        s.ca = Some(ca());
        let r = Kubeadm.render(&s, &request()).unwrap();
        let shown: Vec<(&str, Option<&str>, &str)> = r
            .artifacts
            .iter()
            .map(|a| (a.title.as_str(), a.path.as_deref(), a.language))
            .collect();
        assert_eq!(
            shown,
            [
                (
                    "file for every control-plane node",
                    Some("/etc/kubernetes/oidc/oidc-ca.pem"),
                    "text"
                ),
                (
                    "kubeadm ClusterConfiguration (kubeadm.k8s.io/v1beta4)",
                    Some("kubeadm-config.yaml"),
                    "yaml"
                ),
                (
                    "how to place the files and create the cluster",
                    None,
                    "shell"
                ),
            ]
        );
        assert_eq!(r.artifacts[0].content, ca().pem);
        assert_eq!(
            r.artifacts[1].content,
            cluster_configuration(&s, KubeadmApi::V1beta4).unwrap()
        );
        assert_eq!(
            r.artifacts[2].content,
            "# as root on the first control-plane node, next to the files above
install -D -m 0644 oidc-ca.pem /etc/kubernetes/oidc/oidc-ca.pem
kubeadm init --config kubeadm-config.yaml
# place the same files in /etc/kubernetes/oidc on every other control-plane node before `kubeadm join --control-plane`
"
        );
    }

    #[test]
    fn no_files_means_no_install_lines() {
        let r = Kubeadm.render(&settings(), &request()).unwrap();
        assert_eq!(r.artifacts.len(), 2);
        assert_eq!(
            r.artifacts[1].content,
            "# as root on the first control-plane node, next to the files above\nkubeadm init --config kubeadm-config.yaml\n"
        );
    }

    #[test]
    fn create_is_not_offered_yet() {
        let e = Kubeadm
            .create_plan(&settings(), &request())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("kubeadm: `create` runs on hosts"), "{e}");
    }
}

//! vCluster (v0.20 and later, `vcluster.yaml`): the virtual cluster's API server runs in the
//! control-plane pod on the host cluster, configured by the `vcluster.yaml` values given to
//! `vcluster create NAME -f vcluster.yaml` (and `vcluster create NAME --upgrade -f` for a
//! running one).
//!
//! Facts (loft-sh/vcluster `chart/values.schema.json`, read at the release tags):
//! - k8s distro: `controlPlane.distro.k8s.apiServer.extraArgs`, a list of strings
//!   (`DistroContainerEnabled.extraArgs`), each a whole `--flag=value`. The only distro from
//!   v0.33 on.
//! - k3s distro (v0.20 to v0.32): `controlPlane.distro.k3s.extraArgs`, arguments of the k3s
//!   binary, so API-server flags are `--kube-apiserver-arg=flag=value`.
//! - k0s distro (v0.20 to v0.25, gone in v0.26): only a whole k0s config string
//!   (`controlPlane.distro.k0s.config`) replacing vCluster's own: refused.
//! - Files: `controlPlane.statefulSet.persistence.addVolumes` (Kubernetes volumes) and
//!   `addVolumeMounts`: the CA / AuthenticationConfiguration come from a ConfigMap in the
//!   vCluster's host namespace ([`VOLUME`]), mounted as a directory at [`NODE_DIR`] (so a changed
//!   AuthenticationConfiguration is seen: the kubelet updates ConfigMap volumes in place).

use serde_yaml_ng::{Mapping, Value};

pub mod live;

use crate::apiserver;
use crate::capi::{self, Entry, Field};
use crate::yamltext;
use crate::{
    Backend, ClusterRequest, Command, Distribution, OidcSettings, Plan, PlanError, Rendering, Step,
    Target,
};

/// The ConfigMap, volume and volume mount name k8soidc owns.
pub const VOLUME: &str = "k8soidc-oidc";
/// Where the API server reads the files.
pub const NODE_DIR: &str = "/etc/kubernetes/oidc";

const WHAT: &str = "the vcluster.yaml";
const K8S_ARGS: [&str; 5] = ["controlPlane", "distro", "k8s", "apiServer", "extraArgs"];
const K3S_ARGS: [&str; 4] = ["controlPlane", "distro", "k3s", "extraArgs"];
const VOLUMES: [&str; 4] = ["controlPlane", "statefulSet", "persistence", "addVolumes"];
const MOUNTS: [&str; 4] = [
    "controlPlane",
    "statefulSet",
    "persistence",
    "addVolumeMounts",
];

/// Which vCluster distro runs the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VDistro {
    /// `controlPlane.distro.k8s` (the default, the only one from v0.33).
    K8s,
    /// `controlPlane.distro.k3s` (v0.20 to v0.32).
    K3s,
}

impl VDistro {
    fn path(self) -> &'static [&'static str] {
        match self {
            VDistro::K8s => &K8S_ARGS,
            VDistro::K3s => &K3S_ARGS,
        }
    }
}

/// The vCluster backend.
#[derive(Debug, Clone, Copy)]
pub struct Vcluster;

fn args(s: &OidcSettings, d: VDistro) -> Result<Vec<Entry>, PlanError> {
    Ok(apiserver::args(s, s.mode()?, NODE_DIR)
        .into_iter()
        .map(|a| match d {
            VDistro::K8s => Entry::Scalar(a.flag()),
            VDistro::K3s => Entry::Scalar(format!("--kube-apiserver-arg={}", a.pair())),
        })
        .collect())
}

fn volume_entries(s: &OidcSettings) -> Result<(Vec<Entry>, Vec<Entry>), PlanError> {
    if apiserver::node_files(s, s.mode()?, NODE_DIR).is_empty() {
        return Ok((vec![], vec![]));
    }
    Ok((
        vec![Entry::Item(vec![
            ("name", Field::Str(VOLUME.into())),
            ("configMap", Field::Raw("{name: k8soidc-oidc}")),
        ])],
        vec![Entry::Item(vec![
            ("name", Field::Str(VOLUME.into())),
            ("mountPath", Field::Str(NODE_DIR.into())),
            ("readOnly", Field::Bool(true)),
        ])],
    ))
}

/// The ConfigMap holding the files the API server reads (none needed: None).
pub fn configmap(s: &OidcSettings, namespace: &str) -> Result<Option<String>, PlanError> {
    let files = apiserver::node_files(s, s.mode()?, NODE_DIR);
    if files.is_empty() {
        return Ok(None);
    }
    let mut data = Mapping::new();
    for f in files {
        let key = f.path.rsplit('/').next().unwrap_or_default().to_string();
        data.insert(key.into(), f.content.into());
    }
    let mut meta = Mapping::new();
    meta.insert("name".into(), VOLUME.into());
    meta.insert("namespace".into(), namespace.into());
    let mut cm = Mapping::new();
    cm.insert("apiVersion".into(), "v1".into());
    cm.insert("kind".into(), "ConfigMap".into());
    cm.insert("metadata".into(), Value::Mapping(meta));
    cm.insert("data".into(), Value::Mapping(data));
    Ok(Some(crate::yamlout::to_yaml(&Value::Mapping(cm))))
}

/// Which distro a vcluster.yaml enables (k8s unless `controlPlane.distro.k3s.enabled`); the
/// k0s distro is refused.
fn distro_of(doc: &Value) -> Result<VDistro, PlanError> {
    let d = &doc["controlPlane"]["distro"];
    if d["k0s"]["enabled"].as_bool() == Some(true) {
        return Err(PlanError::Unsupported {
            distribution: Distribution::Vcluster,
            message: "the k0s distro (vCluster v0.20 to v0.25) takes only a whole k0s config string that replaces vCluster's own; switch to the k8s distro (the only one from v0.33)".into(),
        });
    }
    Ok(if d["k3s"]["enabled"].as_bool() == Some(true) {
        VDistro::K3s
    } else {
        VDistro::K8s
    })
}

/// Sets (or takes out) OIDC in a vcluster.yaml; None when nothing changes. Every other line
/// keeps its bytes; an empty file gets the k8s distro's entries.
pub fn patch_values(
    text: &str,
    s: &OidcSettings,
    remove: bool,
) -> Result<Option<String>, PlanError> {
    let doc: Value = if text.trim().is_empty() {
        Value::Mapping(Mapping::new())
    } else {
        capi::parse_doc(text)?
    };
    let d = distro_of(&doc)?;
    let (a, (v, m)) = if remove {
        (vec![], (vec![], vec![]))
    } else {
        (args(s, d)?, volume_entries(s)?)
    };
    let mut expected = doc.clone();
    capi::edit_collection(&mut expected, d.path(), &a)?;
    capi::edit_collection(&mut expected, &VOLUMES, &v)?;
    capi::edit_collection(&mut expected, &MOUNTS, &m)?;
    if capi::empty_as_null(expected.clone()) == capi::empty_as_null(doc.clone()) {
        return Ok(None);
    }
    let mut lines = yamltext::split(text);
    let eol = yamltext::eol_of(&lines);
    let offset = yamltext::sequence_offset(&lines, 0..lines.len());
    let mut current = doc;
    for (path, new) in [(d.path(), &a), (&VOLUMES[..], &v), (&MOUNTS[..], &m)] {
        capi::edit_text_of(WHAT, &mut lines, &current, path, new, &eol, offset)?;
        let t = yamltext::join(&lines);
        current = if t.trim().is_empty() {
            Value::Mapping(Mapping::new())
        } else {
            capi::parse_doc(&t)?
        };
    }
    if capi::empty_as_null(current) != capi::empty_as_null(expected.clone()) {
        return Err(PlanError::patch(
            WHAT,
            "the text edit would not give the intended values (an unusual layout)",
            "rewrite `controlPlane` in plain block style and run again",
        ));
    }
    if remove {
        prune_empty(&mut lines);
        let pruned = yamltext::join(&lines);
        let doc = if pruned.trim().is_empty() {
            Value::Mapping(Mapping::new())
        } else {
            capi::parse_doc(&pruned)?
        };
        if drop_nulls(doc) != drop_nulls(expected) {
            return Err(PlanError::patch(
                WHAT,
                "taking out the emptied keys would change other values (an unusual layout)",
                "rewrite `controlPlane` in plain block style and run again",
            ));
        }
    }
    Ok(Some(yamltext::join(&lines)))
}

/// Removal leaves the keys above the OIDC lists (`controlPlane.distro.k8s.apiServer`, ...)
/// without a value, and Helm reads a null value as "delete this key from the chart's
/// defaults" (Helm docs, "Values Files": "If you need to delete a key from the default values,
/// you may override the value of the key to be null"): such keys on the paths k8soidc writes
/// are taken out, deepest first, until none is left.
fn prune_empty(lines: &mut Vec<yamltext::Line>) {
    let paths: [&[&str]; 2] = [&K8S_ARGS, &K3S_ARGS];
    let mut all: Vec<&[&str]> = Vec::new();
    for p in paths.into_iter().chain([&VOLUMES[..], &MOUNTS[..]]) {
        for n in (1..=p.len()).rev() {
            all.push(&p[..n]);
        }
    }
    all.sort_by_key(|p| std::cmp::Reverse(p.len()));
    loop {
        let Some(range) = all.iter().find_map(|p| empty_key(lines, p)) else {
            return;
        };
        lines.drain(range);
    }
}

/// `v` with every key whose value is null or an empty mapping left out (the check of
/// [`prune_empty`]: only such keys may go).
fn drop_nulls(v: Value) -> Value {
    match capi::empty_as_null(v) {
        Value::Mapping(m) => {
            let kept: Mapping = m
                .into_iter()
                .map(|(k, v)| (k, drop_nulls(v)))
                .filter(|(_, v)| !v.is_null())
                .collect();
            if kept.is_empty() {
                Value::Null
            } else {
                Value::Mapping(kept)
            }
        }
        v => v,
    }
}

/// The lines of the key at `path` when it has no value (nothing after the colon, no child).
fn empty_key(lines: &[yamltext::Line], path: &[&str]) -> Option<std::ops::Range<usize>> {
    let mut range = 0..lines.len();
    let mut line = None;
    for key in path {
        let at = yamltext::find_key(lines, range.clone(), key)?;
        range = yamltext::value_range(lines, at, range.end);
        line = Some(at);
    }
    let at = line?;
    let (_, rest) = yamltext::key_of(&lines[at].text)?;
    let rest = rest.trim();
    let empty = (rest.is_empty() || rest == "~" || rest == "null")
        && yamltext::first_content(lines, range.clone()).is_none();
    empty.then(|| at..range.end.max(at + 1))
}

/// Whether `text` looks like a vcluster.yaml (a top-level `controlPlane:` with `distro:` or
/// `statefulSet:` under it).
pub fn looks_like_values(text: &str) -> bool {
    text.lines().any(|l| l.trim_end() == "controlPlane:")
        && text
            .lines()
            .any(|l| l.trim_end() == "  distro:" || l.trim_end() == "  statefulSet:")
}

/// The host namespace `vcluster create NAME` uses when none is given.
pub fn default_namespace(name: &str) -> String {
    format!("vcluster-{name}")
}

fn namespace_of(req: &ClusterRequest) -> String {
    req.extra_args
        .windows(2)
        .find(|w| w[0] == "--namespace" || w[0] == "-n")
        .map(|w| w[1].clone())
        .or_else(|| {
            req.extra_args
                .iter()
                .find_map(|a| a.strip_prefix("--namespace=").map(str::to_string))
        })
        .unwrap_or_else(|| default_namespace(&req.name))
}

impl Backend for Vcluster {
    fn distribution(&self) -> Distribution {
        Distribution::Vcluster
    }

    fn required_programs(&self) -> &'static [(&'static str, &'static str)] {
        &[
            (
                "vcluster",
                "install the vCluster CLI: https://www.vcluster.com/docs/vcluster/#deploy-vcluster",
            ),
            (
                "kubectl",
                "install kubectl: https://kubernetes.io/docs/tasks/tools/",
            ),
        ]
    }

    fn render(&self, s: &OidcSettings, req: &ClusterRequest) -> Result<Rendering, PlanError> {
        let mut r = Rendering::new(Distribution::Vcluster, s)?;
        let ns = namespace_of(req);
        if let Some(cm) = configmap(s, &ns)? {
            r.push(
                "ConfigMap in the vCluster's host namespace with the files the API server reads (`kubectl apply -f` it first)",
                None,
                "yaml",
                cm,
            );
        }
        r.push(
            "vcluster.yaml (k8s distro; on the k3s distro of v0.20 to v0.32 the same flags go to controlPlane.distro.k3s.extraArgs as --kube-apiserver-arg=…)",
            Some("vcluster.yaml".into()),
            "yaml",
            patch_values("", s, false)?.unwrap_or_default(),
        );
        r.push(
            "then create it, or apply it to a running one",
            None,
            "shell",
            format!(
                "{}\n{}\n",
                Command::new(
                    "vcluster",
                    [
                        "create",
                        req.name.as_str(),
                        "--namespace",
                        ns.as_str(),
                        "-f",
                        "vcluster.yaml"
                    ]
                ),
                Command::new(
                    "vcluster",
                    [
                        "create",
                        req.name.as_str(),
                        "--namespace",
                        ns.as_str(),
                        "--upgrade",
                        "-f",
                        "vcluster.yaml"
                    ]
                ),
            ),
        );
        Ok(r)
    }

    /// The ConfigMap (when files are needed) with `kubectl apply`, then `vcluster create NAME
    /// --namespace NS -f vcluster.yaml` (more `vcluster create` flags after `--`).
    fn create_plan(&self, s: &OidcSettings, req: &ClusterRequest) -> Result<Plan, PlanError> {
        let rendering = self.render(s, req)?;
        let dir = &req.staging_dir;
        let ns = namespace_of(req);
        let values = format!("{dir}/vcluster.yaml");
        let mut steps = Vec::new();
        if let Some(cm) = configmap(s, &ns)? {
            let file = format!("{dir}/oidc-configmap.yaml");
            let namespace = format!(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {}\n---\n",
                yamltext::scalar(&ns)
            );
            steps.push(Step::WriteFile {
                on: Target::Local,
                path: file.clone(),
                before: None,
                after: format!("{namespace}{cm}"),
                mode: 0o600,
                why: "the host namespace and the ConfigMap with the files the API server reads"
                    .into(),
            });
            steps.push(Step::run(
                Command::new("kubectl", ["apply", "-f", file.as_str()]),
                "create them on the host cluster before the vCluster mounts the ConfigMap",
            ));
        }
        steps.push(Step::WriteFile {
            on: Target::Local,
            path: values.clone(),
            before: None,
            after: patch_values("", s, false)?.unwrap_or_default(),
            mode: 0o600,
            why: "the vcluster.yaml with the API server's OIDC flags".into(),
        });
        let mut create = vec!["create".to_string(), req.name.clone()];
        if !req
            .extra_args
            .iter()
            .any(|a| a == "--namespace" || a == "-n" || a.starts_with("--namespace="))
        {
            create.extend(["--namespace".to_string(), ns.clone()]);
        }
        create.extend(["-f".to_string(), values.clone()]);
        create.extend(req.extra_args.iter().cloned());
        steps.push(Step::run(
            Command::new("vcluster", create),
            format!("create vCluster `{}` in host namespace `{ns}`", req.name),
        ));
        Ok(Plan {
            title: format!("create vCluster `{}` with OIDC", req.name),
            steps,
            notes: rendering.summary(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{ca as ca_bundle, *};

    #[test]
    fn exact_values_and_round_trip() {
        let out = patch_values("", &settings(), false).unwrap().unwrap();
        assert_eq!(
            out,
            "controlPlane:\n  distro:\n    k8s:\n      apiServer:\n        extraArgs:\n        - --oidc-issuer-url=https://idp.example.com\n        - --oidc-client-id=kubernetes\n        - --oidc-username-claim=email\n        - \"--oidc-username-prefix=oidc:\"\n        - --oidc-groups-claim=groups\n        - \"--oidc-groups-prefix=oidc:\"\n"
        );
        assert_eq!(patch_values(&out, &settings(), false).unwrap(), None);
        let text = "controlPlane:\n  distro:\n    k8s:\n      enabled: true\n      apiServer:\n        extraArgs:\n          - --audit-log-maxage=30\n  statefulSet:\n    resources:\n      limits:\n        memory: 2Gi\n";
        let mut s = settings();
        s.ca = Some(ca_bundle());
        let out = patch_values(text, &s, false).unwrap().unwrap();
        assert!(out.contains("          - --audit-log-maxage=30\n          - --oidc-issuer-url=https://idp.example.com\n"), "{out}");
        assert!(
            out.contains("    persistence:\n      addVolumes:\n"),
            "{out}"
        );
        assert_eq!(patch_values(&out, &s, false).unwrap(), None);
        let removed = patch_values(&out, &s, true).unwrap().unwrap();
        assert!(
            !removed.contains("oidc") && !removed.contains("k8soidc"),
            "{removed}"
        );
        assert!(removed.starts_with(&text[..text.len() - 50]));
    }

    #[test]
    fn k3s_distro_and_k0s_refusal() {
        let text = "controlPlane:\n  distro:\n    k3s:\n      enabled: true\n";
        let out = patch_values(text, &settings(), false).unwrap().unwrap();
        assert!(out.contains("      extraArgs:\n      - --kube-apiserver-arg=oidc-issuer-url=https://idp.example.com\n"), "{out}");
        assert_eq!(patch_values(&out, &settings(), false).unwrap(), None);
        let k0s = "controlPlane:\n  distro:\n    k0s:\n      enabled: true\n";
        let e = patch_values(k0s, &settings(), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("k0s distro"), "{e}");
    }

    /// vcluster.yaml as k8soidc writes it follows vCluster's published values schema
    /// (additionalProperties false all the way down).
    #[test]
    fn values_follow_the_vcluster_schema() {
        let schema: serde_json::Value = serde_json::from_str(&crate::yamltext::fixture(
            "schemas/vcluster-values.schema.json",
        ))
        .unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let mut ca = settings();
        ca.ca = Some(ca_bundle());
        let config = with(|i| {
            i.auth_mode = Some("config".into());
            i.kubernetes_version = Some("1.34".into());
        });
        for s in [settings(), ca, config] {
            let text = patch_values("", &s, false).unwrap().unwrap();
            let v: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&v)
                .map(|e| format!("{}: {e}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{errors:?}\n{text}");
        }
        let bad: serde_json::Value = serde_yaml_ng::from_str(
            "controlPlane:\n  distro:\n    k8s:\n      apiServer:\n        extraArgs: {a: b}\n",
        )
        .unwrap();
        assert!(!validator.is_valid(&bad));
    }
}

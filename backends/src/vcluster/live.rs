//! `patch --vcluster NAME`: OIDC on a running vCluster. What this relies on, and where it is
//! written down:
//! - The values a vCluster runs with are its Helm release's user-supplied values: `vcluster
//!   create` installs the chart with Helm under the vCluster's name in its host namespace
//!   (loft-sh/vcluster `pkg/cli/create_helm.go`, `deployChart`: `helm upgrade NAME CHART
//!   --install --namespace NS --values …`), so `helm get values NAME --namespace NS -o yaml`
//!   prints them (Helm `cmd/helm/get_values.go`: the user-supplied values, `null` when there are
//!   none; a missing release is `Error: release: not found`).
//! - `vcluster create NAME --upgrade -f FILE` runs `helm upgrade` with vCluster's computed
//!   values and FILE and without `--reuse-values` (same file, `deployChart`; `pkg/helm/helm.go`
//!   `Upgrade`), and Helm copies the old release's values forward only when an upgrade is given
//!   none (Helm `pkg/action/upgrade.go`, `reuseValues`). So every value not in FILE would go
//!   back to the chart's default: FILE is the whole of the current values with OIDC patched in
//!   ([`super::patch_values`], the patcher `patch --file` uses), never OIDC alone.
//! - The vCluster CLI has no `--kubeconfig` flag (its global flags are `--context`,
//!   `--namespace`, …; `pkg/cli/flags/flags.go`) and reads `KUBECONFIG` as kubectl does
//!   (client-go loading rules): a kubeconfig is given to it as `env KUBECONFIG=FILE vcluster …`.
//!   Helm takes `--kubeconfig` and `--kube-context` (Helm global flags).
//! - The files the API server reads come from ConfigMap [`super::VOLUME`] in the host
//!   namespace, mounted as a directory (the kubelet updates such a mount in place, and the API
//!   server reloads a changed AuthenticationConfiguration by itself; a `--oidc-ca-file` is read
//!   when it starts). `kubectl get configmap … -o json --ignore-not-found` reads it (empty
//!   output: none).

use std::collections::BTreeMap;

use serde_yaml_ng::Value;

use crate::{apiserver, escape, Command, OidcSettings, Plan, PlanError, Step, Target};

use super::{configmap, patch_values, NODE_DIR, VOLUME};

/// A running vCluster and how its host cluster is reached.
#[derive(Debug, Clone, Default)]
pub struct VclusterRef {
    /// The vCluster's name (its Helm release).
    pub name: String,
    /// Its host namespace.
    pub namespace: String,
    /// `--kubeconfig` of the host cluster.
    pub kubeconfig: Option<String>,
    /// `--context` in that kubeconfig.
    pub context: Option<String>,
}

impl VclusterRef {
    /// `helm get values NAME --namespace NS -o yaml`: the values the vCluster runs with.
    pub fn get_values(&self) -> Command {
        let mut a: Vec<String> = ["get", "values", &self.name, "--namespace", &self.namespace]
            .map(String::from)
            .to_vec();
        a.extend(["-o".into(), "yaml".into()]);
        if let Some(k) = &self.kubeconfig {
            a.extend(["--kubeconfig".into(), k.clone()]);
        }
        if let Some(c) = &self.context {
            a.extend(["--kube-context".into(), c.clone()]);
        }
        Command::new("helm", a)
    }

    fn kubectl(&self, args: &[&str]) -> Command {
        let mut a = Vec::new();
        if let Some(k) = &self.kubeconfig {
            a.extend(["--kubeconfig".to_string(), k.clone()]);
        }
        if let Some(c) = &self.context {
            a.extend(["--context".to_string(), c.clone()]);
        }
        a.extend(args.iter().map(|s| s.to_string()));
        Command::new("kubectl", a)
    }

    /// `kubectl get configmap k8soidc-oidc -n NS -o json --ignore-not-found`.
    pub fn get_configmap(&self) -> Command {
        self.kubectl(&[
            "get",
            "configmap",
            VOLUME,
            "-n",
            &self.namespace,
            "-o",
            "json",
            "--ignore-not-found",
        ])
    }

    fn upgrade(&self, values: &str) -> Command {
        let mut a = Vec::new();
        if let Some(k) = &self.kubeconfig {
            a.push(format!("KUBECONFIG={k}"));
            a.push("vcluster".into());
        }
        a.extend(
            [
                "create",
                &self.name,
                "--namespace",
                &self.namespace,
                "--upgrade",
                "-f",
                values,
            ]
            .map(String::from),
        );
        if let Some(c) = &self.context {
            a.extend(["--context".into(), c.clone()]);
        }
        match self.kubeconfig {
            Some(_) => Command::new("env", a),
            None => Command::new("vcluster", a),
        }
    }
}

/// The values as `helm get values -o yaml` printed them: `null` (no user-supplied values) is
/// an empty file; anything but a mapping is refused.
pub fn parse_values(output: &str) -> Result<String, PlanError> {
    let bad = |why: String| {
        PlanError::patch(
            "the output of `helm get values`",
            why,
            "check helm (`helm version`) and run `helm get values NAME --namespace NS -o yaml` by hand",
        )
    };
    let v: Value =
        serde_yaml_ng::from_str(output).map_err(|e| bad(format!("it is not YAML ({e})")))?;
    match v {
        Value::Null => Ok(String::new()),
        Value::Mapping(_) => Ok(output.to_string()),
        _ => Err(bad("it is not a mapping of values".into())),
    }
}

/// The `data` of the ConfigMap as `kubectl get configmap -o json --ignore-not-found` printed
/// it (empty output: it does not exist).
pub fn parse_configmap(output: &str) -> Result<Option<BTreeMap<String, String>>, PlanError> {
    if output.trim().is_empty() {
        return Ok(None);
    }
    let bad = |why: &str| {
        PlanError::patch(
            "the output of `kubectl get configmap`",
            why.to_string(),
            "check kubectl and run the command by hand",
        )
    };
    let v: serde_json::Value = serde_json::from_str(output).map_err(|_| bad("it is not JSON"))?;
    if v.get("kind").and_then(serde_json::Value::as_str) != Some("ConfigMap") {
        return Err(bad("it is not a ConfigMap"));
    }
    let mut data = BTreeMap::new();
    if let Some(m) = v.get("data").and_then(serde_json::Value::as_object) {
        for (k, v) in m {
            data.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
        }
    }
    Ok(Some(data))
}

/// The ConfigMap's data the settings need (empty: no files).
fn wanted_data(s: &OidcSettings) -> Result<BTreeMap<String, String>, PlanError> {
    Ok(apiserver::node_files(s, s.mode()?, NODE_DIR)
        .into_iter()
        .map(|f| {
            let key = f.path.rsplit('/').next().unwrap_or_default().to_string();
            (key, f.content)
        })
        .collect())
}

/// What was read from the host cluster.
#[derive(Debug, Clone, Default)]
pub struct LiveState {
    /// The current values ([`parse_values`]).
    pub values: String,
    /// The ConfigMap's data ([`parse_configmap`]).
    pub configmap: Option<BTreeMap<String, String>>,
}

/// The plan that brings the running vCluster to the settings (`None`: take OIDC out), the
/// values file written in `staging_dir`. `Ok(None)`: nothing to do.
pub fn live_plan(
    s: Option<&OidcSettings>,
    v: &VclusterRef,
    current: &LiveState,
    staging_dir: &str,
) -> Result<Option<Plan>, PlanError> {
    let remove = s.is_none();
    let fallback;
    let settings = match s {
        Some(s) => s,
        None => {
            fallback = removal_settings();
            &fallback
        }
    };
    let new_values = patch_values(&current.values, settings, remove)?;
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    let ns = v.namespace.as_str();
    if let Some(s) = s {
        let wanted = wanted_data(s)?;
        let cm_changes = !wanted.is_empty() && current.configmap.as_ref() != Some(&wanted);
        if let (true, Some(cm)) = (cm_changes, configmap(s, ns)?) {
            steps.push(Step::Run {
                on: Target::Local,
                command: v.kubectl(&["apply", "-f", "-"]),
                sudo: false,
                stdin: Some(cm),
                why: format!(
                    "ConfigMap `{VOLUME}` in host namespace `{ns}` with the files the API server reads (mounted at {NODE_DIR})"
                ),
            });
            if new_values.is_none() {
                notes.push(format!(
                    "the values are unchanged: the kubelet updates the mounted ConfigMap within about a minute and the API server reloads a changed AuthenticationConfiguration by itself; a changed --oidc-ca-file is read when it restarts (`kubectl rollout restart statefulset {} -n {ns}`)",
                    v.name
                ));
            }
        }
        notes.extend(crate::Rendering::new(crate::Distribution::Vcluster, s)?.summary());
    }
    if let Some(after) = new_values {
        let file = format!("{staging_dir}/vcluster-values.yaml");
        steps.push(Step::WriteFile {
            on: Target::Local,
            path: file.clone(),
            before: Some(current.values.clone()),
            after,
            mode: 0o600,
            why: format!(
                "the values vCluster `{}` runs with (`helm get values`, shown as the diff) with OIDC {}: all of them, as `vcluster create --upgrade` resets every value its files do not give",
                v.name,
                if remove { "taken out" } else { "set" }
            ),
        });
        steps.push(Step::run(
            v.upgrade(&file),
            format!(
                "upgrade vCluster `{}` in `{ns}` with them (Helm rolls its control plane)",
                v.name
            ),
        ));
        notes.push("`vcluster create --upgrade` deploys the chart version of this vcluster CLI; use a CLI of the version the vCluster runs to keep it".into());
    }
    if remove && current.configmap.is_some() {
        notes.push(format!(
            "the ConfigMap `{VOLUME}` stays (delete it with `kubectl delete configmap {VOLUME} -n {ns}` once the vCluster no longer mounts it)"
        ));
    }
    if steps.is_empty() {
        return Ok(None);
    }
    Ok(Some(Plan {
        title: format!(
            "{} OIDC on vCluster `{}` in host namespace `{}`",
            if remove { "remove" } else { "set" },
            escape(&v.name),
            escape(ns)
        ),
        steps,
        notes,
    }))
}

/// The patcher ignores the settings when removing; these only satisfy its signature.
fn removal_settings() -> OidcSettings {
    let input = crate::SettingsInput {
        issuer_url: Some("https://removed.invalid".into()),
        client_id: Some("removed".into()),
        ..crate::SettingsInput::default()
    };
    OidcSettings::validate(&input, None).expect("fixed settings are valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{ca as ca_bundle, *};

    fn target() -> VclusterRef {
        VclusterRef {
            name: "dev".into(),
            namespace: "vcluster-dev".into(),
            kubeconfig: Some("host.yaml".into()),
            context: None,
        }
    }

    #[test]
    fn whole_values_are_kept_and_reruns_do_nothing() {
        let values = "controlPlane:\n  statefulSet:\n    resources:\n      limits:\n        memory: 2Gi\nsync:\n  toHost:\n    ingresses:\n      enabled: true\n";
        let current = LiveState {
            values: parse_values(values).unwrap(),
            configmap: None,
        };
        let plan = live_plan(Some(&settings()), &target(), &current, "/s")
            .unwrap()
            .unwrap();
        let Step::WriteFile { after, .. } = &plan.steps[0] else {
            panic!("{plan}")
        };
        assert!(
            after.starts_with(
                values.trim_end_matches("sync:\n  toHost:\n    ingresses:\n      enabled: true\n")
            ),
            "{after}"
        );
        assert!(
            after.contains("ingresses:\n      enabled: true\n"),
            "{after}"
        );
        let text = plan.to_string();
        assert!(
            text.contains("+ env KUBECONFIG=host.yaml vcluster create dev --namespace vcluster-dev --upgrade -f /s/vcluster-values.yaml\n"),
            "{text}"
        );
        assert!(
            text.contains("+        - --oidc-issuer-url=https://idp.example.com\n"),
            "{text}"
        );
        let done = LiveState {
            values: after.clone(),
            configmap: None,
        };
        assert!(live_plan(Some(&settings()), &target(), &done, "/s")
            .unwrap()
            .is_none());
        let removed = live_plan(None, &target(), &done, "/s").unwrap().unwrap();
        let Step::WriteFile { after, .. } = &removed.steps[0] else {
            panic!("{removed}")
        };
        assert_eq!(after, values);
        assert_eq!(parse_values("null\n").unwrap(), "");
        assert!(parse_values("- a\n").is_err());
    }

    #[test]
    fn configmap_is_applied_when_its_data_differs() {
        let mut s = settings();
        s.ca = Some(ca_bundle());
        let plan = live_plan(Some(&s), &target(), &LiveState::default(), "/s")
            .unwrap()
            .unwrap();
        assert_eq!(plan.steps.len(), 3, "{plan}");
        assert!(plan
            .to_string()
            .contains("+ kubectl --kubeconfig host.yaml apply -f - <<'K8SOIDC_EOF'\n"));
        let Step::WriteFile { after, .. } = &plan.steps[1] else {
            panic!("{plan}")
        };
        let cm = wanted_data(&s).unwrap();
        let done = LiveState {
            values: after.clone(),
            configmap: Some(cm.clone()),
        };
        assert!(live_plan(Some(&s), &target(), &done, "/s")
            .unwrap()
            .is_none());
        let stale = LiveState {
            values: after.clone(),
            configmap: Some(BTreeMap::new()),
        };
        let plan = live_plan(Some(&s), &target(), &stale, "/s")
            .unwrap()
            .unwrap();
        assert_eq!(plan.steps.len(), 1, "{plan}");
        let json = r#"{"apiVersion":"v1","kind":"ConfigMap","data":{"oidc-ca.pem":"x"}}"#;
        assert_eq!(parse_configmap(json).unwrap().unwrap()["oidc-ca.pem"], "x");
        assert_eq!(parse_configmap("").unwrap(), None);
        assert!(parse_configmap("{}").is_err());
    }
}

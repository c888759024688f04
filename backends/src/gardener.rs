//! Gardener: a Shoot's API server is configured by the Shoot resource in the garden cluster
//! (the project namespace, `garden-<project>`), changed with `kubectl`.
//!
//! Facts (gardener/gardener):
//! - `spec.kubernetes.kubeAPIServer.structuredAuthentication.configMapName` names a ConfigMap in
//!   the Shoot's namespace whose key `config.yaml` holds the AuthenticationConfiguration
//!   (`pkg/component/kubernetes/apiserver`, `DataKeyConfigMapAuthenticationConfig =
//!   "config.yaml"`; Kubernetes 1.30+).
//! - `spec.kubernetes.kubeAPIServer.oidcConfig` (`issuerURL`, `clientID`, `usernameClaim`,
//!   `usernamePrefix`, `groupsClaim`, `groupsPrefix`, `caBundle`, `requiredClaims` map,
//!   `signingAlgs`) is deprecated, and forbidden for Kubernetes 1.32 and later (gardener PR
//!   #10666, see ../shared/reference/distros.md §1.8): rendered for older landscapes, with a
//!   warning.
//! - A JSON merge patch (`kubectl patch --type merge`) sets a field, and `null` removes it; the
//!   apply step is `kubectl`, whose `--dry-run=server` runs Gardener's admission without storing.

use serde_json::{json, Map, Value};

use crate::{
    Backend, ClusterRequest, Command, Distribution, Mode, OidcSettings, Plan, PlanError, Rendering,
    Step, Target,
};

/// The ConfigMap k8soidc writes for a Shoot.
pub fn configmap_name(shoot: &str) -> String {
    format!("{shoot}-oidc-authentication")
}

/// The ConfigMap (config mode) holding the AuthenticationConfiguration under `config.yaml`.
pub fn configmap(
    s: &OidcSettings,
    shoot: &str,
    namespace: &str,
) -> Result<Option<String>, PlanError> {
    let Mode::Config(v) = s.mode()? else {
        return Ok(None);
    };
    let mut data = serde_yaml_ng::Mapping::new();
    data.insert(
        "config.yaml".into(),
        crate::apiserver::authentication_config(s, v).into(),
    );
    let mut meta = serde_yaml_ng::Mapping::new();
    meta.insert("name".into(), configmap_name(shoot).into());
    meta.insert("namespace".into(), namespace.into());
    let mut cm = serde_yaml_ng::Mapping::new();
    cm.insert("apiVersion".into(), "v1".into());
    cm.insert("kind".into(), "ConfigMap".into());
    cm.insert("metadata".into(), serde_yaml_ng::Value::Mapping(meta));
    cm.insert("data".into(), serde_yaml_ng::Value::Mapping(data));
    Ok(Some(crate::yamlout::to_yaml(
        &serde_yaml_ng::Value::Mapping(cm),
    )))
}

/// The deprecated `oidcConfig` for flags mode.
fn oidc_config(s: &OidcSettings) -> Value {
    let mut m = Map::new();
    m.insert("issuerURL".into(), json!(s.issuer_url));
    m.insert("clientID".into(), json!(s.client_id));
    m.insert("usernameClaim".into(), json!(s.username_claim));
    m.insert("usernamePrefix".into(), json!(s.username_prefix_flag()));
    if let Some(g) = &s.groups_claim {
        m.insert("groupsClaim".into(), json!(g));
        m.insert("groupsPrefix".into(), json!(s.effective_groups_prefix()));
    }
    if let Some(ca) = &s.ca {
        m.insert("caBundle".into(), json!(ca.pem));
    }
    if !s.required_claims.is_empty() {
        let claims: Map<String, Value> = s
            .required_claims
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        m.insert("requiredClaims".into(), Value::Object(claims));
    }
    if let Some(algs) = &s.signing_algs {
        m.insert("signingAlgs".into(), json!(algs));
    }
    Value::Object(m)
}

/// The JSON merge patch of the Shoot: config mode sets `structuredAuthentication` and removes
/// `oidcConfig`, flags mode the reverse; `remove` removes both.
pub fn shoot_patch(s: &OidcSettings, shoot: &str, remove: bool) -> Result<Value, PlanError> {
    let (structured, oidc) = if remove {
        (Value::Null, Value::Null)
    } else {
        match s.mode()? {
            Mode::Config(_) => (json!({"configMapName": configmap_name(shoot)}), Value::Null),
            Mode::Flags => (Value::Null, oidc_config(s)),
        }
    };
    Ok(json!({"spec": {"kubernetes": {"kubeAPIServer": {
        "structuredAuthentication": structured,
        "oidcConfig": oidc,
    }}}}))
}

/// Where the Shoot is and how kubectl reaches the garden cluster.
#[derive(Debug, Clone, Default)]
pub struct ShootRef {
    /// The Shoot's name.
    pub name: String,
    /// Its project namespace (`garden-<project>`).
    pub namespace: String,
    /// `--kubeconfig` and `--context` for kubectl.
    pub kubectl_args: Vec<String>,
}

impl ShootRef {
    fn kubectl(&self, args: &[&str], server_dry_run: bool) -> Command {
        let mut v: Vec<String> = self.kubectl_args.clone();
        v.extend(args.iter().map(|a| a.to_string()));
        if server_dry_run {
            v.push("--dry-run=server".into());
        }
        Command::new("kubectl", v)
    }
}

/// The plan of `patch --shoot NAME`: the ConfigMap (config mode) with `kubectl apply`, then a
/// merge patch of the Shoot; with `server_dry_run`, each command carries `--dry-run=server`
/// (Gardener's admission runs, nothing is stored).
pub fn live_plan(
    s: &OidcSettings,
    remove: bool,
    shoot: &ShootRef,
    server_dry_run: bool,
) -> Result<Plan, PlanError> {
    let mut steps = Vec::new();
    let mut notes = Vec::new();
    let ns = shoot.namespace.as_str();
    let mut new_configmap = false;
    if !remove {
        if let Some(cm) = configmap(s, &shoot.name, ns)? {
            new_configmap = true;
            steps.push(Step::Run {
                on: Target::Local,
                command: shoot.kubectl(&["apply", "-f", "-"], server_dry_run),
                sudo: false,
                stdin: Some(cm),
                why: format!(
                    "the ConfigMap `{}` in `{ns}` with the AuthenticationConfiguration (key config.yaml)",
                    configmap_name(&shoot.name)
                ),
            });
        }
    }
    let patch = serde_json::to_string(&shoot_patch(s, &shoot.name, remove)?)
        .expect("JSON values serialise");
    if server_dry_run && new_configmap {
        notes.push(format!(
            "--dry-run=server checks the ConfigMap only: Gardener refuses a Shoot naming a ConfigMap that does not exist, and a server dry run stores nothing; the Shoot patch that follows is `kubectl patch shoot {} -n {ns} --type merge -p '{patch}'`",
            shoot.name
        ));
    } else {
        steps.push(Step::run(
        shoot.kubectl(
            &["patch", "shoot", &shoot.name, "-n", ns, "--type", "merge", "-p", &patch],
            server_dry_run,
        ),
        if remove {
            "remove structuredAuthentication and oidcConfig from the Shoot (Gardener rolls the API server)".to_string()
        } else {
            "point the Shoot's API server at it (Gardener reconciles the Shoot and rolls the API server)".to_string()
        },
    ));
    }
    if !remove {
        let summary = Rendering::new(Distribution::Gardener, s)?.summary();
        notes.splice(0..0, summary);
        if s.mode()? == Mode::Flags {
            notes.push(deprecation().into());
        }
    } else {
        notes.push(format!(
            "the ConfigMap `{}` stays (delete it with `kubectl delete configmap {} -n {ns}` once the Shoot no longer names it)",
            configmap_name(&shoot.name),
            configmap_name(&shoot.name)
        ));
    }
    Ok(Plan {
        title: format!(
            "{} OIDC on Shoot `{}` in `{ns}`{}",
            if remove { "remove" } else { "set" },
            shoot.name,
            if server_dry_run {
                " (--dry-run=server: Gardener checks it, nothing is stored)"
            } else {
                ""
            }
        ),
        steps,
        notes,
    })
}

/// The Shoot of `create --distro gardener --shoot-file` with the OIDC settings added, as YAML:
/// `metadata.namespace` set to `namespace`, and under `spec.kubernetes.kubeAPIServer`
/// `structuredAuthentication.configMapName` (config mode) or the deprecated `oidcConfig` (flags
/// mode, refused from Kubernetes 1.32 on as Gardener refuses it). The binary has checked the
/// kind, the name and that no OIDC setting is there yet.
pub fn shoot_with_oidc(
    shoot: &serde_yaml_ng::Value,
    s: &OidcSettings,
    name: &str,
    namespace: &str,
) -> Result<String, PlanError> {
    use serde_yaml_ng::{Mapping, Value as Y};
    let mode = s.mode()?;
    if mode == Mode::Flags && s.kubernetes_version >= Some(crate::KubeVersion::new(1, 32)) {
        return Err(PlanError::unrepresentable(
            Distribution::Gardener,
            "--auth-mode",
            "flags",
            "Gardener forbids `spec.kubernetes.kubeAPIServer.oidcConfig` for Kubernetes 1.32 and later (gardener/gardener PR #10666)",
            "leave --auth-mode out (structuredAuthentication is used from 1.30)",
        ));
    }
    let patch = shoot_patch(s, name, false)?;
    let api_patch = &patch["spec"]["kubernetes"]["kubeAPIServer"];
    let (key, value) = match mode {
        Mode::Config(_) => (
            "structuredAuthentication",
            &api_patch["structuredAuthentication"],
        ),
        Mode::Flags => ("oidcConfig", &api_patch["oidcConfig"]),
    };
    let value: Y = serde_yaml_ng::to_value(value).expect("JSON values convert");
    let mut doc = shoot.clone();
    let not_mapping = |what: &str| {
        PlanError::patch(
            "the Shoot",
            format!("`{what}` is not a mapping"),
            "give the Shoot manifest as Gardener's dashboard or `kubectl get shoot -o yaml` writes it",
        )
    };
    let mut at = doc
        .as_mapping_mut()
        .ok_or_else(|| not_mapping("the document"))?;
    {
        let meta = at
            .entry("metadata".into())
            .or_insert_with(|| Y::Mapping(Mapping::new()))
            .as_mapping_mut()
            .ok_or_else(|| not_mapping("metadata"))?;
        meta.insert("namespace".into(), namespace.into());
    }
    for k in ["spec", "kubernetes", "kubeAPIServer"] {
        let entry = at
            .entry(k.into())
            .or_insert_with(|| Y::Mapping(Mapping::new()));
        if entry.is_null() {
            *entry = Y::Mapping(Mapping::new());
        }
        at = entry.as_mapping_mut().ok_or_else(|| not_mapping(k))?;
    }
    at.insert(key.into(), value);
    Ok(crate::yamlout::to_yaml(&doc))
}

/// The plan of `create --distro gardener --shoot-file`: the ConfigMap (config mode) with
/// `kubectl apply`, the Shoot (from [`shoot_with_oidc`]) written to `file` and created with
/// `kubectl create -f` (an existing Shoot is not replaced: kubectl says AlreadyExists); with
/// `server_dry_run`, each command carries `--dry-run=server`.
pub fn create_plan(
    s: &OidcSettings,
    shoot: &ShootRef,
    manifest: &str,
    file: &str,
    server_dry_run: bool,
) -> Result<Plan, PlanError> {
    let ns = shoot.namespace.as_str();
    let mut steps = Vec::new();
    let mut notes = Rendering::new(Distribution::Gardener, s)?.summary();
    let configmap = configmap(s, &shoot.name, ns)?;
    if let Some(cm) = &configmap {
        steps.push(Step::Run {
            on: Target::Local,
            command: shoot.kubectl(&["apply", "-f", "-"], server_dry_run),
            sudo: false,
            stdin: Some(cm.clone()),
            why: format!(
                "the ConfigMap `{}` in `{ns}` with the AuthenticationConfiguration (key config.yaml), before the Shoot that names it",
                configmap_name(&shoot.name)
            ),
        });
    }
    if server_dry_run && configmap.is_some() {
        notes.push(format!(
            "--dry-run=server checks the ConfigMap only: Gardener refuses a Shoot naming a ConfigMap that does not exist, and a server dry run stores nothing; the Shoot is then created with `kubectl create -f {file}`"
        ));
    } else {
        steps.push(Step::WriteFile {
            on: Target::Local,
            path: file.to_string(),
            before: None,
            after: manifest.to_string(),
            mode: 0o600,
            why: format!(
                "Shoot `{}` as given, with the API server's OIDC settings in spec.kubernetes.kubeAPIServer",
                shoot.name
            ),
        });
        steps.push(Step::run(
            shoot.kubectl(&["create", "-f", file], server_dry_run),
            format!(
                "create Shoot `{}` in `{ns}` (Gardener creates the cluster; an existing Shoot is not replaced)",
                shoot.name
            ),
        ));
    }
    if s.mode()? == Mode::Flags {
        notes.push(deprecation().into());
    }
    Ok(Plan {
        title: format!(
            "create Shoot `{}` in `{ns}` with OIDC{}",
            shoot.name,
            if server_dry_run {
                " (--dry-run=server: Gardener checks it, nothing is stored)"
            } else {
                ""
            }
        ),
        steps,
        notes,
    })
}

fn deprecation() -> &'static str {
    "spec.kubernetes.kubeAPIServer.oidcConfig is deprecated and Gardener forbids it for Kubernetes 1.32 and later (gardener/gardener PR #10666): use `--auth-mode config` (structuredAuthentication) where the landscape supports it"
}

/// The Gardener backend.
#[derive(Debug, Clone, Copy)]
pub struct Gardener;

impl Backend for Gardener {
    fn distribution(&self) -> Distribution {
        Distribution::Gardener
    }

    fn render(&self, s: &OidcSettings, req: &ClusterRequest) -> Result<Rendering, PlanError> {
        let mut r = Rendering::new(Distribution::Gardener, s)?;
        let ns = "garden-PROJECT";
        if s.mode()? == Mode::Flags {
            r.warnings.push(deprecation().into());
        }
        if let Some(cm) = configmap(s, &req.name, ns)? {
            r.push(
                "ConfigMap in the Shoot's project namespace",
                None,
                "yaml",
                cm,
            );
        }
        let patch = shoot_patch(s, &req.name, false)?;
        r.push(
            "Shoot merge patch",
            None,
            "yaml",
            crate::yamlout::to_yaml(&patch),
        );
        let shoot = ShootRef {
            name: req.name.clone(),
            namespace: ns.into(),
            kubectl_args: vec![],
        };
        let plan = live_plan(s, false, &shoot, false)?;
        let mut cmds = String::new();
        for step in &plan.steps {
            if let Step::Run { command, stdin, .. } = step {
                cmds.push_str(&command.to_string());
                if stdin.is_some() {
                    cmds.push_str(" < configmap.yaml");
                }
                cmds.push('\n');
            }
        }
        r.push(
            "apply with kubectl against the garden cluster (or `k8soidc patch --shoot NAME -n garden-PROJECT`; `--dry-run=server` first)",
            None,
            "shell",
            cmds,
        );
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    #[test]
    fn patches() {
        let s = with(|i| {
            i.auth_mode = Some("config".into());
            i.kubernetes_version = Some("1.33".into());
        });
        assert_eq!(
            shoot_patch(&s, "prod", false).unwrap(),
            json!({"spec": {"kubernetes": {"kubeAPIServer": {"structuredAuthentication": {"configMapName": "prod-oidc-authentication"}, "oidcConfig": null}}}})
        );
        let cm = configmap(&s, "prod", "garden-core").unwrap().unwrap();
        assert!(
            cm.contains("  name: prod-oidc-authentication\n  namespace: garden-core\n"),
            "{cm}"
        );
        assert!(
            cm.contains("  config.yaml: |\n    apiVersion: apiserver.config.k8s.io/v1beta1\n"),
            "{cm}"
        );
        let flags = shoot_patch(&settings(), "prod", false).unwrap();
        assert_eq!(
            flags["spec"]["kubernetes"]["kubeAPIServer"]["oidcConfig"]["usernamePrefix"],
            "oidc:"
        );
        assert_eq!(
            flags["spec"]["kubernetes"]["kubeAPIServer"]["structuredAuthentication"],
            Value::Null
        );
        let r = Gardener
            .render(&settings(), &request())
            .unwrap()
            .to_string();
        assert!(r.contains("PR #10666"), "{r}");
        let shoot = ShootRef {
            name: "prod".into(),
            namespace: "garden-core".into(),
            kubectl_args: vec!["--kubeconfig".into(), "garden.yaml".into()],
        };
        let plan = live_plan(&s, false, &shoot, true).unwrap().to_string();
        assert!(
            plan.contains(
                "+ kubectl --kubeconfig garden.yaml apply -f - --dry-run=server <<'K8SOIDC_EOF'\n"
            ),
            "{plan}"
        );
        assert!(
            plan.contains("# note: --dry-run=server checks the ConfigMap only"),
            "{plan}"
        );
        assert!(
            !plan.contains("+ kubectl --kubeconfig garden.yaml patch"),
            "{plan}"
        );
        let plan = live_plan(&s, false, &shoot, false).unwrap().to_string();
        assert!(
            plan.contains("+ kubectl --kubeconfig garden.yaml patch shoot prod -n garden-core --type merge -p "),
            "{plan}"
        );
    }
}

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

use crate::yamltext;

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
            server_suffix(server_dry_run)
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
            server_suffix(server_dry_run)
        ),
        steps,
        notes,
    })
}

/// What `patch --file` edits in a Shoot manifest: the two keys under
/// `spec.kubernetes.kubeAPIServer` that carry OIDC.
const SHOOT_KEYS: [&str; 2] = ["structuredAuthentication", "oidcConfig"];
const SHOOT_API: [&str; 3] = ["spec", "kubernetes", "kubeAPIServer"];
const SHOOT_WHAT: &str = "the Shoot manifest";

fn refuse_shoot(reason: impl Into<String>) -> PlanError {
    PlanError::patch(
        SHOOT_WHAT,
        reason,
        "give one core.gardener.cloud/v1beta1 Shoot (as in git, or `kubectl get shoot NAME -o yaml`) with metadata.name and spec.kubernetes.version",
    )
}

/// The settings for a Shoot of Kubernetes `version`: that version, unless the settings name
/// another one (refused).
fn settings_for_shoot(s: &OidcSettings, version: &str) -> Result<OidcSettings, PlanError> {
    let v = crate::KubeVersion::parse(version).map_err(|_| {
        refuse_shoot(format!(
            "`spec.kubernetes.version` `{}` is not a Kubernetes version",
            crate::escape(version)
        ))
    })?;
    match s.kubernetes_version {
        Some(given) if given != v => Err(PlanError::invalid(
            "--kubernetes-version",
            given.to_string(),
            format!("the Shoot runs Kubernetes {version} (spec.kubernetes.version)"),
            "leave --kubernetes-version out: the Shoot's version is used",
        )),
        _ => {
            let mut s = s.clone();
            s.kubernetes_version = Some(v);
            Ok(s)
        }
    }
}

/// Sets (or, with `remove`, takes out) OIDC in a Shoot manifest for `patch --file`:
/// `spec.kubernetes.kubeAPIServer.structuredAuthentication.configMapName` (Kubernetes 1.30 and
/// later, the Shoot's `spec.kubernetes.version`) or the deprecated `oidcConfig` (before 1.30,
/// or `--auth-mode flags` before 1.32), the other key removed. Only those two keys' lines
/// change (comments and layout elsewhere kept); the result is parsed back and must differ
/// from the file in those keys alone. Returns the new text (None: unchanged) and notes.
pub fn patch_shoot_file(
    text: &str,
    s: &OidcSettings,
    remove: bool,
) -> Result<(Option<String>, Vec<String>), PlanError> {
    use serde_yaml_ng::Value as Y;
    let doc = yamltext::parse_one(text)
        .map_err(|e| refuse_shoot(format!("it is not one YAML document ({e})")))?;
    if doc["apiVersion"].as_str() != Some("core.gardener.cloud/v1beta1")
        || doc["kind"].as_str() != Some("Shoot")
    {
        return Err(refuse_shoot(
            "it is not a core.gardener.cloud/v1beta1 Shoot",
        ));
    }
    let Some(name) = doc["metadata"]["name"].as_str().filter(|n| !n.is_empty()) else {
        return Err(refuse_shoot("it has no metadata.name"));
    };
    let mut notes = Vec::new();
    let want: Option<(&str, Y)> = if remove {
        None
    } else {
        let Some(version) = doc["spec"]["kubernetes"]["version"].as_str() else {
            return Err(refuse_shoot("it has no spec.kubernetes.version, which decides how OIDC is set (structuredAuthentication from 1.30)"));
        };
        let s = settings_for_shoot(s, version)?;
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
        let patch = shoot_patch(&s, name, false)?;
        let key = match mode {
            Mode::Config(_) => {
                notes.push(format!(
                    "the API server reads its AuthenticationConfiguration from ConfigMap `{}` (key config.yaml) in the Shoot's namespace: apply it before the Shoot (`k8soidc render --distro gardener --name {name}` prints it)",
                    configmap_name(name)
                ));
                "structuredAuthentication"
            }
            Mode::Flags => {
                notes.push(deprecation().into());
                "oidcConfig"
            }
        };
        let value = serde_yaml_ng::to_value(&patch["spec"]["kubernetes"]["kubeAPIServer"][key])
            .expect("JSON values convert");
        Some((key, value))
    };
    let mut lines = yamltext::split(text);
    let eol = yamltext::eol_of(&lines);
    // Walk spec -> kubernetes -> kubeAPIServer; remember the deepest block found.
    let mut range = 0..lines.len();
    let mut depth = 0;
    let mut parent_key_indent: Option<usize> = None;
    let mut key_line = 0;
    for seg in SHOOT_API {
        let Some(l) = yamltext::find_key(&lines, range.clone(), seg) else {
            break;
        };
        let (_, rest) = yamltext::key_of(&lines[l].text).unwrap_or_default();
        if !yamltext::value_is_block(&rest) && !yamltext::value_is_empty(&rest) {
            return Err(refuse_shoot(format!(
                "`{}` is written inline; write it in block style (one key a line)",
                SHOOT_API[..=depth].join(".")
            )));
        }
        parent_key_indent = Some(yamltext::indent(&lines[l].text));
        key_line = l;
        range = yamltext::value_range(&lines, l, range.end);
        depth += 1;
    }
    if depth < 2 {
        return Err(refuse_shoot("it has no spec.kubernetes block"));
    }
    // Take our keys out of kubeAPIServer (from the end, so ranges stay valid).
    let mut found: Vec<std::ops::Range<usize>> = Vec::new();
    if depth == 3 {
        for key in SHOOT_KEYS {
            if let Some(l) = yamltext::find_key(&lines, range.clone(), key) {
                let v = yamltext::value_range(&lines, l, range.end);
                found.push(l..v.end);
            }
        }
    }
    found.sort_by_key(|r| std::cmp::Reverse(r.start));
    let removed = found.iter().map(|r| r.len()).sum::<usize>();
    for r in &found {
        yamltext::splice(&mut lines, r.clone(), vec![], &eol);
    }
    let range = range.start..range.end - removed;
    if want.is_none()
        && depth == 3
        && removed > 0
        && yamltext::first_content(&lines, range.clone()).is_none()
    {
        // `kubeAPIServer:` is left with nothing under it: take the key out too.
        yamltext::splice(&mut lines, key_line..range.end, vec![], &eol);
    }
    if let Some((key, value)) = &want {
        let mut m = serde_yaml_ng::Mapping::new();
        m.insert((*key).into(), value.clone());
        let block = crate::yamlout::to_yaml(&Y::Mapping(m));
        let parent = parent_key_indent.unwrap_or(0);
        // At the end of kubeAPIServer; without one yet, a new kubeAPIServer key at the end of
        // spec.kubernetes.
        let child = yamltext::child_indent(&lines, range.clone()).unwrap_or(parent + 2);
        let at = yamltext::content_end(&lines, range.clone()).unwrap_or(range.start);
        let (ind, mut new) = if depth == 3 {
            (child, Vec::new())
        } else {
            (
                child + 2,
                vec![format!("{}kubeAPIServer:", " ".repeat(child))],
            )
        };
        new.extend(block.lines().map(|l| format!("{}{l}", " ".repeat(ind))));
        yamltext::splice(&mut lines, at..at, new, &eol);
    }
    let out = yamltext::join(&lines);
    if out == text {
        return Ok((None, notes));
    }
    let after = yamltext::parse_one(&out).map_err(|e| {
        refuse_shoot(format!(
            "the edit would not parse back ({e}); an unusual layout"
        ))
    })?;
    let paths: Vec<Vec<&str>> = SHOOT_KEYS
        .iter()
        .map(|k| SHOOT_API.iter().copied().chain([*k]).collect())
        .collect();
    let paths: Vec<&[&str]> = paths.iter().map(Vec::as_slice).collect();
    let api = &after["spec"]["kubernetes"]["kubeAPIServer"];
    let meant = SHOOT_KEYS.iter().all(|k| match &want {
        Some((key, value)) if key == k => &api[*k] == value,
        _ => api.get(*k).is_none(),
    });
    if !meant || !yamltext::same_except(&doc, &after, &paths) {
        return Err(refuse_shoot(
            "its kubeAPIServer block could not be edited without touching other keys (an unusual layout); write spec.kubernetes.kubeAPIServer in block style",
        ));
    }
    Ok((Some(out), notes))
}

/// What a plan's title says of `--dry-run=server`.
fn server_suffix(server_dry_run: bool) -> &'static str {
    if server_dry_run {
        " (--dry-run=server: Gardener checks it, nothing is stored)"
    } else {
        ""
    }
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

    /// A Shoot as kept in git: comments and other settings must survive the edit.
    const SHOOT_FILE: &str = "# prod cluster, owned by team core
apiVersion: core.gardener.cloud/v1beta1
kind: Shoot
metadata:
  name: prod
  namespace: garden-core
spec:
  cloudProfile:
    name: aws   # the landscape's profile
  kubernetes:
    version: 1.33.2
    kubeAPIServer:
      enableAnonymousAuthentication: false
    kubelet:
      failSwapOn: true
  region: eu-west-1
";

    fn shoot_file(version: &str) -> String {
        SHOOT_FILE.replace("1.33.2", version)
    }

    #[test]
    fn shoot_file_gets_structured_authentication_then_loses_it() {
        let (out, notes) = patch_shoot_file(SHOOT_FILE, &settings(), false).unwrap();
        let out = out.unwrap();
        assert!(
            out.contains("    kubeAPIServer:\n      enableAnonymousAuthentication: false\n      structuredAuthentication:\n        configMapName: prod-oidc-authentication\n    kubelet:\n"),
            "{out}"
        );
        assert!(
            out.starts_with("# prod cluster, owned by team core\n"),
            "{out}"
        );
        assert!(
            out.contains("    name: aws   # the landscape's profile\n"),
            "{out}"
        );
        assert!(
            notes[0].contains("ConfigMap `prod-oidc-authentication`"),
            "{notes:?}"
        );
        // Again: nothing changes.
        assert_eq!(patch_shoot_file(&out, &settings(), false).unwrap().0, None);
        // Removed: the file is as it was, but for the block it no longer needs.
        let (back, _) = patch_shoot_file(&out, &settings(), true).unwrap();
        assert_eq!(back.unwrap(), SHOOT_FILE);
    }

    #[test]
    fn older_shoot_gets_the_deprecated_oidc_config_and_switching_replaces_it() {
        let old = shoot_file("1.29.4");
        let (out, notes) = patch_shoot_file(&old, &settings(), false).unwrap();
        let out = out.unwrap();
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&out).unwrap();
        let api = &doc["spec"]["kubernetes"]["kubeAPIServer"];
        assert_eq!(api["oidcConfig"]["issuerURL"], "https://idp.example.com");
        assert_eq!(api["oidcConfig"]["usernamePrefix"], "oidc:");
        assert!(api.get("structuredAuthentication").is_none());
        assert!(notes[0].contains("PR #10666"), "{notes:?}");
        // The same file on 1.31 with the default mode: structuredAuthentication instead.
        let upgraded = out.replace("1.29.4", "1.31.0");
        let (now, _) = patch_shoot_file(&upgraded, &settings(), false).unwrap();
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&now.unwrap()).unwrap();
        let api = &doc["spec"]["kubernetes"]["kubeAPIServer"];
        assert!(api.get("oidcConfig").is_none());
        assert_eq!(
            api["structuredAuthentication"]["configMapName"],
            "prod-oidc-authentication"
        );
    }

    #[test]
    fn shoot_file_without_kube_apiserver_gets_one() {
        let bare = SHOOT_FILE.replace(
            "    kubeAPIServer:\n      enableAnonymousAuthentication: false\n",
            "",
        );
        let (out, _) = patch_shoot_file(&bare, &settings(), false).unwrap();
        assert!(
            out.unwrap().contains("    kubelet:\n      failSwapOn: true\n    kubeAPIServer:\n      structuredAuthentication:\n        configMapName: prod-oidc-authentication\n  region: eu-west-1\n"),
        );
        assert_eq!(patch_shoot_file(&bare, &settings(), true).unwrap().0, None);
        let (added, _) = patch_shoot_file(&bare, &settings(), false).unwrap();
        let (back, _) = patch_shoot_file(&added.unwrap(), &settings(), true).unwrap();
        assert_eq!(
            back.unwrap(),
            bare,
            "the emptied kubeAPIServer key goes too"
        );
    }

    #[test]
    fn shoot_file_refusals() {
        let err = |text: &str, s: &OidcSettings| {
            patch_shoot_file(text, s, false).unwrap_err().to_string()
        };
        let flags = with(|i| i.auth_mode = Some("flags".into()));
        assert!(err(SHOOT_FILE, &flags).contains("PR #10666"));
        let other = with(|i| i.kubernetes_version = Some("1.30".into()));
        assert!(
            err(SHOOT_FILE, &other).contains("the Shoot runs Kubernetes 1.33.2"),
            "{}",
            err(SHOOT_FILE, &other)
        );
        assert!(err(
            &SHOOT_FILE.replace("kind: Shoot", "kind: Seed"),
            &settings()
        )
        .contains("not a core.gardener.cloud/v1beta1 Shoot"));
        assert!(err(
            &SHOOT_FILE.replace("    version: 1.33.2\n", ""),
            &settings()
        )
        .contains("no spec.kubernetes.version"));
        let inline = SHOOT_FILE.replace(
            "    kubeAPIServer:\n      enableAnonymousAuthentication: false\n",
            "    kubeAPIServer: {enableAnonymousAuthentication: false}\n",
        );
        assert!(err(&inline, &settings()).contains("written inline"));
    }

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

//! kOps: OIDC lives in the Cluster spec, `kops.k8s.io/v1alpha2` `spec.kubeAPIServer`
//! (`oidcIssuerURL`, `oidcClientID`, `oidcUsernameClaim`, `oidcUsernamePrefix`,
//! `oidcGroupsClaim`, `oidcGroupsPrefix`, `oidcCAFile`, `oidcRequiredClaim` as a list of
//! `k=v`), or, from kops 1.30, `authenticationConfigFile` ("mutually exclusive with all OIDC
//! options"). Sources: kubernetes/kops `pkg/apis/kops/v1alpha2/componentconfig.go`,
//! `pkg/apis/kops/validation/validation.go`, `docs/cluster_spec.md` (HEAD 268927e).
//!
//! Facts this module relies on:
//! - v1alpha2 has no field for `--oidc-signing-algs` (componentconfig.go), so flags mode
//!   refuses `--signing-algs`.
//! - The v1alpha2 conversion splits `oidcGroupsClaim` on `,` into several claims and turns
//!   `oidcRequiredClaim` into a map, printed back sorted (`pkg/apis/kops/v1alpha2/conversion.go`);
//!   so a groups claim with `,` is refused and required claims are written sorted.
//! - A `*string` field holding `""` produces no flag (`pkg/flagbuilder/build_flags.go`), so the
//!   username prefix is always explicit (`-` for none) and an empty groups prefix is left out.
//! - The API-server pod mounts only a few host paths; `/srv/kubernetes/kube-apiserver` is one
//!   (`nodeup/pkg/model/kube_apiserver.go`). Files go there through `spec.fileAssets` with
//!   `roles: [ControlPlane]` (the role name since kops 1.26).
//! - Changing the spec: `kops get cluster -o yaml` (the stored spec, "kops get cluster
//!   -o yaml", kops docs `cli/kops_get_cluster.md`) → edit → `kops replace -f FILE` ("Replace a
//!   resource specification by filename", `cli/kops_replace.md`) → `kops update cluster --yes`
//!   → `kops rolling-update cluster --yes`, because nodeup writes the API-server manifest when
//!   an instance boots. `create` runs this as separate steps through files in the staging
//!   directory (the spec as read, and a copy that `k8soidc patch --file --file-kind
//!   kops-cluster --in-place` changes), so the dry run shows commands a person can paste and
//!   a failed read stops the run (a `|` pipeline in POSIX sh would hide it: no pipefail).
//! - `kops.k8s.io/v1alpha3` moves OIDC to `spec.authentication.oidc` and is still under
//!   development; `kops get` prints v1alpha2. A v1alpha3 document is refused, not translated.
//!
//! [`merge_cluster_spec`] re-serialises the Cluster document through `serde_yaml_ng::Value`
//! (kops re-serialises the spec itself when it stores it, so comments do not survive there
//! either), with an emitter that quotes YAML 1.1 look-alikes such as `on` or `yes`, because
//! kops reads YAML 1.1 (see `yamlout.rs`). Every other field keeps its value and position;
//! other documents (InstanceGroups) are kept byte for byte.

use crate::yamlout as yaml;
use crate::yamltext;

use serde_yaml_ng::{Mapping, Value};

use crate::apiserver::{self, AUTH_CONFIG_FILE, CA_FILE};
use crate::{
    shell, Backend, ClusterRequest, Command, Distribution, Mode, OidcSettings, Plan, PlanError,
    Rendering, Step, K8SOIDC,
};

/// The directory kops mounts into the API-server pod; files are shipped here.
pub const NODE_DIR: &str = "/srv/kubernetes/kube-apiserver";
/// `spec.fileAssets` name of the IdP CA (flags mode).
pub const CA_ASSET: &str = "oidc-ca";
/// `spec.fileAssets` name of the AuthenticationConfiguration (config mode).
pub const CONFIG_ASSET: &str = "oidc-authentication-config";
/// The instance-group role the files go to.
const ROLE: &str = "ControlPlane";

/// Every `spec.kubeAPIServer` field k8soidc owns (set, replaced or removed by a merge).
pub const MANAGED_FIELDS: [&str; 9] = [
    "oidcIssuerURL",
    "oidcClientID",
    "oidcUsernameClaim",
    "oidcUsernamePrefix",
    "oidcGroupsClaim",
    "oidcGroupsPrefix",
    "oidcCAFile",
    "oidcRequiredClaim",
    "authenticationConfigFile",
];

const SUPPORTED_API_VERSIONS: [&str; 2] = ["kops.k8s.io/v1alpha2", "kops/v1alpha2"];

/// The kops backend.
#[derive(Debug, Clone, Copy)]
pub struct Kops;

/// The value of one `spec.kubeAPIServer` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// A string field.
    Text(String),
    /// A list of strings (`oidcRequiredClaim`).
    List(Vec<String>),
}

impl FieldValue {
    fn to_value(&self) -> Value {
        match self {
            FieldValue::Text(t) => Value::String(t.clone()),
            FieldValue::List(l) => Value::Sequence(l.iter().cloned().map(Value::String).collect()),
        }
    }
}

/// A `spec.fileAssets` entry k8soidc owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAsset {
    /// `name` (the key the merge replaces by).
    pub name: &'static str,
    /// Absolute path on the control-plane nodes.
    pub path: String,
    /// The file content.
    pub content: String,
}

impl FileAsset {
    /// The entry as YAML; `kops_order` puts keys in the (sorted) order `kops get` prints.
    fn to_value(&self, kops_order: bool) -> Value {
        let mut m = Mapping::new();
        let roles = Value::Sequence(vec![Value::from(ROLE)]);
        if kops_order {
            m.insert("content".into(), self.content.clone().into());
            m.insert("name".into(), self.name.into());
            m.insert("path".into(), self.path.clone().into());
            m.insert("roles".into(), roles);
        } else {
            m.insert("name".into(), self.name.into());
            m.insert("path".into(), self.path.clone().into());
            m.insert("roles".into(), roles);
            m.insert("content".into(), self.content.clone().into());
        }
        Value::Mapping(m)
    }
}

/// Checks what kops cannot carry; returns the mode to render.
fn check(s: &OidcSettings) -> Result<Mode, PlanError> {
    let mode = s.mode()?;
    if mode != Mode::Flags {
        return Ok(mode);
    }
    if let Some(claim) = s.groups_claim.as_deref().filter(|c| c.contains(',')) {
        return Err(PlanError::unrepresentable(
            Distribution::Kops,
            "--groups-claim",
            claim,
            "kops' v1alpha2 conversion splits `oidcGroupsClaim` on `,` into several claims",
            "use a claim name without `,`, or `--auth-mode config` (Kubernetes 1.30+, kops 1.30+)",
        ));
    }
    if let Some(algs) = &s.signing_algs {
        return Err(PlanError::unrepresentable(
            Distribution::Kops,
            "--signing-algs",
            algs.join(","),
            "the kops v1alpha2 `kubeAPIServer` spec has no field for `--oidc-signing-algs`",
            "leave --signing-algs out (kube-apiserver then accepts RS256 only), or use `--auth-mode config`, which accepts every asymmetric algorithm",
        ));
    }
    Ok(mode)
}

/// The `spec.kubeAPIServer` fields to set, in the order the kops docs list them.
pub fn fields(s: &OidcSettings, mode: Mode) -> Vec<(&'static str, FieldValue)> {
    let text = |v: &str| FieldValue::Text(v.to_string());
    if let Mode::Config(_) = mode {
        return vec![(
            "authenticationConfigFile",
            text(&format!("{NODE_DIR}/{AUTH_CONFIG_FILE}")),
        )];
    }
    let mut f = vec![
        ("oidcIssuerURL", text(&s.issuer_url)),
        ("oidcClientID", text(&s.client_id)),
        ("oidcUsernameClaim", text(&s.username_claim)),
        ("oidcUsernamePrefix", text(&s.username_prefix_flag())),
    ];
    if let Some(claim) = &s.groups_claim {
        f.push(("oidcGroupsClaim", text(claim)));
        let prefix = s.effective_groups_prefix();
        if !prefix.is_empty() {
            f.push(("oidcGroupsPrefix", text(&prefix)));
        }
    }
    if s.ca.is_some() {
        f.push(("oidcCAFile", text(&format!("{NODE_DIR}/{CA_FILE}"))));
    }
    if !s.required_claims.is_empty() {
        // kops stores required claims as a map and prints them sorted.
        let mut claims: Vec<String> = s
            .required_claims
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        claims.sort();
        f.push(("oidcRequiredClaim", FieldValue::List(claims)));
    }
    f
}

/// The `spec.fileAssets` entries to ship (CA in flags mode, the config file in config mode).
pub fn file_assets(s: &OidcSettings, mode: Mode) -> Vec<FileAsset> {
    let name = match mode {
        Mode::Flags => CA_ASSET,
        Mode::Config(_) => CONFIG_ASSET,
    };
    apiserver::node_files(s, mode, NODE_DIR)
        .into_iter()
        .map(|f| FileAsset {
            name,
            path: f.path,
            content: f.content,
        })
        .collect()
}

/// The fields as a `spec:` YAML snippet, for `kops edit cluster`.
pub fn spec_snippet(s: &OidcSettings) -> Result<String, PlanError> {
    let mode = check(s)?;
    let mut api = Mapping::new();
    for (name, value) in fields(s, mode) {
        api.insert(name.into(), value.to_value());
    }
    let mut spec = Mapping::new();
    spec.insert("kubeAPIServer".into(), Value::Mapping(api));
    let assets = file_assets(s, mode);
    if !assets.is_empty() {
        spec.insert(
            "fileAssets".into(),
            Value::Sequence(assets.iter().map(|a| a.to_value(false)).collect()),
        );
    }
    let mut root = Mapping::new();
    root.insert("spec".into(), Value::Mapping(spec));
    Ok(yaml::to_string(&Value::Mapping(root)).expect("untagged values always serialise"))
}

fn refuse(reason: impl Into<String>) -> PlanError {
    PlanError::patch(
        "the kops cluster spec",
        reason,
        "give the output of `kops get cluster --name NAME -o yaml` (kops.k8s.io/v1alpha2)",
    )
}

/// Whether the keys are strings in ascending order (what `kops get` prints).
fn keys_sorted(m: &Mapping) -> bool {
    let keys: Option<Vec<&str>> = m.keys().map(Value::as_str).collect();
    keys.is_some_and(|k| k.windows(2).all(|w| w[0] <= w[1]))
}

/// Sets `key`, in place when present, else at its sorted position when the keys are sorted,
/// else at the end.
fn upsert(m: &mut Mapping, key: &str, value: Value) {
    if let Some(slot) = m.get_mut(key) {
        *slot = value;
        return;
    }
    let sorted = keys_sorted(m);
    m.insert(key.into(), value);
    if sorted {
        let mut entries: Vec<(Value, Value)> = std::mem::take(m).into_iter().collect();
        entries.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
        *m = entries.into_iter().collect();
    }
}

/// The mapping under `key`, created (empty) when absent or null.
fn child<'a>(m: &'a mut Mapping, key: &str, path: &str) -> Result<&'a mut Mapping, PlanError> {
    if m.get(key).is_none_or(Value::is_null) {
        upsert(m, key, Value::Mapping(Mapping::new()));
    }
    match m.get_mut(key) {
        Some(Value::Mapping(child)) => Ok(child),
        _ => Err(refuse(format!("`{path}` is not a mapping"))),
    }
}

fn asset_name(item: &Value) -> Option<&str> {
    item.get("name").and_then(Value::as_str)
}

fn merge_file_assets(spec: &mut Mapping, assets: &[FileAsset]) -> Result<(), PlanError> {
    let stale: Vec<&str> = [CA_ASSET, CONFIG_ASSET]
        .into_iter()
        .filter(|n| !assets.iter().any(|a| a.name == *n))
        .collect();
    if spec.get("fileAssets").is_none_or(Value::is_null) {
        if !assets.is_empty() {
            let items = assets.iter().map(|a| a.to_value(true)).collect();
            upsert(spec, "fileAssets", Value::Sequence(items));
        }
        return Ok(());
    }
    let Some(Value::Sequence(items)) = spec.get_mut("fileAssets") else {
        return Err(refuse("`spec.fileAssets` is not a list"));
    };
    items.retain(|item| asset_name(item).is_none_or(|n| !stale.contains(&n)));
    for asset in assets {
        let mut seen = false;
        let mut i = 0;
        while i < items.len() {
            if asset_name(&items[i]) == Some(asset.name) {
                if seen {
                    items.remove(i);
                    continue;
                }
                items[i] = asset.to_value(true);
                seen = true;
            }
            i += 1;
        }
        if !seen {
            items.push(asset.to_value(true));
        }
    }
    if items.is_empty() {
        spec.shift_remove("fileAssets");
    }
    Ok(())
}

fn merge_cluster(doc: &mut Mapping, s: Option<(&OidcSettings, Mode)>) -> Result<(), PlanError> {
    match doc.get("apiVersion").and_then(Value::as_str) {
        Some(v) if SUPPORTED_API_VERSIONS.contains(&v) => {}
        Some("kops.k8s.io/v1alpha3") => {
            return Err(PlanError::patch(
                "the kops cluster spec",
                "it is kops.k8s.io/v1alpha3, which moves OIDC to `spec.authentication.oidc` and is still under development; k8soidc writes the v1alpha2 `spec.kubeAPIServer` fields",
                "export the cluster with `kops get cluster --name NAME -o yaml`, which prints kops.k8s.io/v1alpha2",
            ));
        }
        other => {
            return Err(refuse(format!(
                "its apiVersion is `{}`, not kops.k8s.io/v1alpha2",
                crate::escape(other.unwrap_or("(none)"))
            )))
        }
    }
    let spec = child(doc, "spec", "spec")?;
    let api = child(spec, "kubeAPIServer", "spec.kubeAPIServer")?;
    let wanted = s.map(|(s, mode)| fields(s, mode)).unwrap_or_default();
    for name in MANAGED_FIELDS {
        if !wanted.iter().any(|(n, _)| *n == name) {
            api.shift_remove(name);
        }
    }
    for (name, value) in &wanted {
        upsert(api, name, value.to_value());
    }
    let assets = s.map(|(s, mode)| file_assets(s, mode)).unwrap_or_default();
    merge_file_assets(spec, &assets)
}

/// A document of a multi-document YAML stream, with the text around its content.
struct Piece {
    /// The separator line (`---`) before the document, if any.
    separator: String,
    /// The document text.
    text: String,
}

/// The documents of `text`, split on the one line model's document markers
/// ([`yamltext::documents_strict`]).
fn split_documents(text: &str) -> Result<Vec<Piece>, PlanError> {
    let lines = yamltext::split(text);
    let ranges = yamltext::documents_strict(&lines).map_err(refuse)?;
    Ok(ranges
        .into_iter()
        .map(|r| Piece {
            separator: match r.start {
                0 => String::new(),
                s => yamltext::join(&lines[s - 1..s]),
            },
            text: yamltext::join(&lines[r]),
        })
        .collect())
}

/// Replaces the content of `original` by `new`, keeping its leading blank lines and trailing
/// white space.
fn keep_surroundings(original: &str, new: &str) -> String {
    let body_start = original.len() - original.trim_start().len();
    let lead_end = original[..body_start].rfind('\n').map_or(0, |i| i + 1);
    let trailing = &original[original.trim_end().len()..];
    let trailing = trailing.strip_prefix('\n').unwrap_or(trailing);
    format!("{}{new}{trailing}", &original[..lead_end])
}

/// Merges the OIDC fields into a kops Cluster spec (YAML text from `kops get cluster -o yaml`).
///
/// Sets the fields of [`fields`] under `spec.kubeAPIServer`, removes the other
/// [`MANAGED_FIELDS`], and adds or replaces the [`file_assets`] by name (removing the one of
/// the other mode). Other documents in the stream are kept byte for byte. Refuses input
/// without exactly one `kind: Cluster` document and Clusters that are not v1alpha2.
pub fn merge_cluster_spec(current: &str, s: &OidcSettings) -> Result<String, PlanError> {
    let mode = check(s)?;
    edit_cluster_spec(current, Some((s, mode)))
}

/// Takes every [`MANAGED_FIELDS`] field and k8soidc's `fileAssets` entries out of a kops
/// Cluster spec (the inverse of [`merge_cluster_spec`]); everything else is kept as there.
pub fn remove_from_cluster_spec(current: &str) -> Result<String, PlanError> {
    edit_cluster_spec(current, None)
}

fn edit_cluster_spec(current: &str, s: Option<(&OidcSettings, Mode)>) -> Result<String, PlanError> {
    let pieces = split_documents(current)?;
    let mut cluster = None;
    for (i, piece) in pieces.iter().enumerate() {
        let value: Value = serde_yaml_ng::from_str(&piece.text)
            .map_err(|e| refuse(format!("it is not valid YAML ({e})")))?;
        if value.get("kind").and_then(Value::as_str) == Some("Cluster") {
            if cluster.is_some() {
                return Err(refuse("it holds more than one `kind: Cluster` document"));
            }
            let Value::Mapping(doc) = value else {
                unreachable!("only a mapping has a `kind`")
            };
            cluster = Some((i, doc));
        }
    }
    let Some((index, mut doc)) = cluster else {
        return Err(refuse("it holds no `kind: Cluster` document"));
    };
    merge_cluster(&mut doc, s)?;
    let want = Value::Mapping(doc);
    let text = yaml::to_string(&want).map_err(refuse)?;
    let mut out = String::with_capacity(current.len() + text.len());
    for (i, piece) in pieces.iter().enumerate() {
        out.push_str(&piece.separator);
        if i == index {
            out.push_str(&keep_surroundings(&piece.text, &text));
        } else {
            out.push_str(&piece.text);
        }
    }
    verify(current, &out, &want)?;
    Ok(out)
}

/// Reads the edited spec back ([`yamltext::verify_documents`]): every other document as it
/// was, the Cluster document exactly the one meant (the emitter's quoting included).
fn verify(current: &str, out: &str, want: &Value) -> Result<(), PlanError> {
    let bad = |why: String| {
        refuse(format!(
            "the edited spec did not read back as intended ({why}); nothing was changed"
        ))
    };
    let before = yamltext::reparse(current).map_err(|e| {
        bad(format!(
            "document {} does not parse: {}",
            e.document + 1,
            e.message
        ))
    })?;
    let is_cluster = |v: &Value| v.get("kind").and_then(Value::as_str) == Some("Cluster");
    let edited = before
        .iter()
        .position(is_cluster)
        .ok_or_else(|| bad("no `kind: Cluster` document".into()))?;
    let after = yamltext::verify_documents(&before, out, edited).map_err(|e| {
        bad(match e {
            yamltext::VerifyError::Unparsable(p) => {
                format!("document {} does not parse: {}", p.document + 1, p.message)
            }
            yamltext::VerifyError::DocumentCount { before, after } => {
                format!("{before} documents became {after}")
            }
            yamltext::VerifyError::OtherDocument(i) => format!("document {} changed", i + 1),
        })
    })?;
    match &after == want {
        true => Ok(()),
        false => Err(bad("the Cluster document is not the change meant".into())),
    }
}

/// `--state` from the arguments for `kops create cluster`, to pass to the later commands.
fn state_args(extra: &[String]) -> Result<Vec<String>, PlanError> {
    let mut state = Vec::new();
    let mut args = extra.iter();
    while let Some(a) = args.next() {
        if a == "--name" || a.starts_with("--name=") {
            return Err(PlanError::Unsupported {
                distribution: Distribution::Kops,
                message: format!(
                    "`{}` after `--` would rename the cluster behind k8soidc's back; give the name once with `--name`, before `--`",
                    crate::escape(a)
                ),
            });
        }
        if a == "--state" {
            let Some(v) = args.next() else {
                return Err(PlanError::Unsupported {
                    distribution: Distribution::Kops,
                    message: "`--state` after `--` has no value; give the state store, e.g. `--state s3://my-kops-state`".into(),
                });
            };
            state = vec!["--state".to_string(), v.clone()];
        } else if let Some(v) = a.strip_prefix("--state=") {
            state = vec!["--state".to_string(), v.to_string()];
        }
    }
    Ok(state)
}

fn kops(words: &[&str], name: &str, state: &[String]) -> Command {
    let mut args: Vec<String> = words.iter().map(|w| w.to_string()).collect();
    args.push("--name".into());
    args.push(name.to_string());
    args.extend(state.iter().cloned());
    Command::new("kops", args)
}

/// A running kops cluster: its name, its state store (`--state`; none: kops reads
/// KOPS_STATE_STORE) and the local directory where the spec files of a patch are kept.
#[derive(Debug, Clone)]
pub struct LiveCluster {
    /// The cluster name (a DNS name).
    pub name: String,
    /// `--state` for every kops command, when given.
    pub state: Option<String>,
    /// Where the spec as read and the changed copy are written (kept for inspection).
    pub staging_dir: String,
}

impl LiveCluster {
    fn state(&self) -> Vec<String> {
        self.state
            .iter()
            .flat_map(|s| ["--state".to_string(), s.clone()])
            .collect()
    }

    /// `kops get cluster --name NAME [--state S] -o yaml`: the stored spec.
    pub fn get(&self) -> Command {
        let mut c = kops(&["get", "cluster"], &self.name, &self.state());
        c.args.extend(["-o".to_string(), "yaml".into()]);
        c
    }

    fn replace(&self, file: &str) -> Command {
        let mut args = vec!["replace".to_string(), "-f".into(), file.to_string()];
        args.extend(self.state());
        Command::new("kops", args)
    }

    fn update(&self) -> Command {
        let mut c = kops(&["update", "cluster"], &self.name, &self.state());
        c.args.push("--yes".into());
        c
    }

    /// Only the control-plane instance groups: `--instance-group-roles control-plane` (kops
    /// docs `docs/cli/kops_rolling-update_cluster.md`: roles control-plane, apiserver, node,
    /// bastion; `master` before kops 1.26).
    fn rolling_update(&self) -> Command {
        let mut c = kops(&["rolling-update", "cluster"], &self.name, &self.state());
        c.args.extend([
            "--instance-group-roles".to_string(),
            "control-plane".into(),
            "--yes".into(),
        ]);
        c
    }
}

/// `patch --kops NAME`: the plan for a running cluster, from the spec `kops get cluster -o
/// yaml` printed (`current`). `None` when the spec already is as wanted. The steps save the
/// spec as kops stores it, change a copy with k8soidc's kops patcher (`k8soidc patch --file
/// ... --in-place`, the step `create --distro kops` runs too), `kops replace -f` the copy,
/// `kops update cluster --yes`, and roll the control-plane instance groups (nodeup writes the
/// API-server manifest when an instance boots). A failure at `kops replace` changes nothing;
/// from `kops update` on, the saved spec is put back with the same three commands.
pub fn live_patch(
    cluster: &LiveCluster,
    current: &str,
    s: Option<&OidcSettings>,
) -> Result<Option<crate::live::LivePatch>, PlanError> {
    use crate::live::{Guarded, LivePatch};
    let after = match s {
        Some(s) => merge_cluster_spec(current, s)?,
        None => remove_from_cluster_spec(current)?,
    };
    if after == current {
        return Ok(None);
    }
    let name = &cluster.name;
    let dir = &cluster.staging_dir;
    let before_file = format!("{dir}/cluster-before.yaml");
    let patched = format!("{dir}/cluster-oidc.yaml");
    let save = format!(
        "mkdir -p {} && {} > {}",
        shell::quote(dir),
        cluster.get().to_shell(),
        shell::quote(&before_file)
    );
    let mut filter = vec![
        "patch".to_string(),
        "--file".into(),
        patched.clone(),
        "--file-kind".into(),
        "kops-cluster".into(),
        "--in-place".into(),
    ];
    match s {
        Some(s) => filter.extend(s.to_flags()),
        None => filter.push("--remove".into()),
    }
    let steps = vec![
        Step::run(
            Command::new("sh", ["-c".to_string(), save]),
            "save the cluster spec as kops stores it now (a restore puts this file back)",
        ),
        Step::run(
            Command::new("cp", [before_file.clone(), patched.clone()]),
            "copy it for the OIDC change",
        ),
        Step::run(
            Command::new(K8SOIDC, filter),
            if s.is_some() {
                "set the API server's OIDC settings (and the files it reads) in the copy, with k8soidc's kops patcher"
            } else {
                "take the API server's OIDC settings (and k8soidc's fileAssets) out of the copy, with k8soidc's kops patcher"
            },
        ),
        Step::run(
            cluster.replace(&patched),
            "store the changed spec (if this fails, nothing was changed)",
        ),
        Step::run(
            cluster.update(),
            "apply the spec to the cloud resources (launch templates with the new nodeup configuration)",
        ),
        Step::run(
            cluster.rolling_update(),
            "replace the control-plane instances one at a time, so each boots with the new API-server manifest (kops drains and validates the cluster between them)",
        ),
    ];
    let restore = vec![
        Step::run(cluster.replace(&before_file), "put back the spec as it was"),
        Step::run(cluster.update(), "apply it to the cloud resources"),
        Step::run(
            cluster.rolling_update(),
            "replace the control-plane instances that booted with the new spec",
        ),
    ]
    .into_iter()
    .map(|step| Guarded { from: 4, step })
    .collect();
    let mut notes = match s {
        Some(s) => Kops
            .render(
                s,
                &ClusterRequest {
                    name: name.clone(),
                    staging_dir: dir.clone(),
                    extra_args: vec![],
                    ..Default::default()
                },
            )?
            .summary(),
        None => vec![],
    };
    if cluster.state.is_none() {
        notes.push(
            "no --state: every kops command reads the state store from KOPS_STATE_STORE".into(),
        );
    }
    Ok(Some(LivePatch {
        plan: Plan {
            title: format!(
                "{} OIDC on kops cluster `{name}`",
                if s.is_some() { "set" } else { "remove" }
            ),
            steps,
            notes,
        },
        change: crate::unified_diff(
            &format!("kops/{name}/cluster.yaml"),
            &crate::redact(current),
            &crate::redact(&after),
        ),
        restore,
    }))
}

impl Backend for Kops {
    fn distribution(&self) -> Distribution {
        Distribution::Kops
    }

    fn required_programs(&self) -> &'static [(&'static str, &'static str)] {
        &[("kops", "install kops: see https://kops.sigs.k8s.io/getting_started/install/ (e.g. `brew install kops`, or the release binary from https://github.com/kubernetes/kops/releases)")]
    }

    fn render(&self, s: &OidcSettings, req: &ClusterRequest) -> Result<Rendering, PlanError> {
        let mode = check(s)?;
        let mut r = Rendering::new(Distribution::Kops, s)?;
        if let Mode::Config(_) = mode {
            r.warnings
                .push("`authenticationConfigFile` needs kops 1.30 or later".to_string());
        }
        if !file_assets(s, mode).is_empty() {
            r.warnings.push(format!(
                "`spec.fileAssets` role `{ROLE}` needs kops 1.26 or later (older kops calls it `Master`)"
            ));
        }
        r.push(
            "cluster spec fields (merge into `kops edit cluster`)",
            None,
            "yaml",
            spec_snippet(s)?,
        );
        let name = &req.name;
        r.push(
            "then apply it (or let `k8soidc create` do it)",
            None,
            "shell",
            format!(
                "{} -o yaml > cluster.yaml   # merge the fields above into it\n{}\n{} --yes\n{} --yes\n",
                kops(&["get", "cluster"], name, &[]),
                Command::new("kops", ["replace", "-f", "cluster.yaml"]),
                kops(&["update", "cluster"], name, &[]),
                kops(&["rolling-update", "cluster"], name, &[]),
            ),
        );
        Ok(r)
    }

    fn create_plan(&self, s: &OidcSettings, req: &ClusterRequest) -> Result<Plan, PlanError> {
        let rendering = self.render(s, req)?;
        let state = state_args(&req.extra_args)?;
        let name = &req.name;
        let mut create = vec![
            "create".to_string(),
            "cluster".into(),
            "--name".into(),
            name.clone(),
        ];
        create.extend(req.extra_args.iter().cloned());
        let with = |mut c: Command, extra: &[&str]| {
            c.args.extend(extra.iter().map(|a| a.to_string()));
            c
        };
        let dir = &req.staging_dir;
        let read = format!("{dir}/cluster.yaml");
        let patched = format!("{dir}/cluster-oidc.yaml");
        let get = with(kops(&["get", "cluster"], name, &state), &["-o", "yaml"]);
        let save = format!(
            "mkdir -p {} && {} > {}",
            shell::quote(dir),
            get.to_shell(),
            shell::quote(&read)
        );
        let mut filter = vec![
            "patch".to_string(),
            "--file".into(),
            patched.clone(),
            "--file-kind".into(),
            "kops-cluster".into(),
            "--in-place".into(),
        ];
        // `jwt`/`anonymous` have no flags: the step reads them from a settings file written
        // first, in the staging directory.
        let settings_file = s
            .structured_settings_file()
            .map(|content| (format!("{dir}/k8soidc-settings.yaml"), content));
        match &settings_file {
            Some((path, _)) => filter.extend(["--config".to_string(), path.clone()]),
            None => filter.extend(s.to_flags()),
        }
        let mut replace = vec!["replace".to_string(), "-f".into(), patched.clone()];
        replace.extend(state.iter().cloned());
        let mut steps = Vec::new();
        steps.extend([
            Step::run(
                Command::new("kops", create),
                format!("write the spec of kops cluster `{name}` to the state store (kops creates no cloud resources without `--yes`)"),
            ),
            Step::run(
                Command::new("sh", ["-c".to_string(), save]),
                "save the cluster spec as kops stores it (a file, not a pipe: POSIX sh has no pipefail, and the file is kept for inspection)",
            ),
            Step::run(
                Command::new("cp", [read, patched.clone()]),
                "copy it for the OIDC change",
            ),
            Step::run(
                Command::new(K8SOIDC, filter),
                "add the API server's OIDC settings (and the files it reads) to the copy, with k8soidc's kops patcher",
            ),
            Step::run(
                Command::new("kops", replace),
                "store the changed spec",
            ),
            Step::run(
                with(kops(&["update", "cluster"], name, &state), &["--yes"]),
                "create or update the cloud resources from the spec",
            ),
            Step::run(
                with(kops(&["rolling-update", "cluster"], name, &state), &["--yes"]),
                "replace control-plane instances that booted before the OIDC settings (nodeup writes the API-server manifest at boot; nothing to do for instances the update just created)",
            ),
        ]);
        if let Some((path, content)) = settings_file {
            // Before the k8soidc step, after the step that creates the staging directory.
            let at = steps
                .iter()
                .position(
                    |st| matches!(st, Step::Run { command, .. } if command.program == K8SOIDC),
                )
                .unwrap_or(steps.len());
            steps.insert(
                at,
                Step::WriteFile {
                    on: crate::Target::Local,
                    path,
                    before: None,
                    after: content,
                    mode: 0o600,
                    why: "write the structured authentication settings (jwt) for the k8soidc step below, which has no flags for them".into(),
                },
            );
        }
        let mut notes = rendering.summary();
        if state.is_empty() {
            notes.push("no `--state` after `--`: every kops command reads the state store from KOPS_STATE_STORE".into());
        }
        Ok(Plan {
            title: format!("create kops cluster `{name}` with OIDC"),
            steps,
            notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    /// The repository's `tests/data/fixtures/kops-cluster`.
    fn fixture_dir() -> std::path::PathBuf {
        crate::yamltext::fixtures_dir().join("kops-cluster")
    }

    fn fixture(name: &str) -> String {
        let path = fixture_dir().join(name);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// The read-back refuses a result in which another document changed, the Cluster document
    /// is not the one meant, or the text no longer parses; it accepts the edit itself.
    #[test]
    fn verify_reads_the_result_back() {
        let current = "apiVersion: kops.k8s.io/v1alpha2\nkind: InstanceGroup\nspec: {role: Master}\n---\napiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nspec:\n  kubeAPIServer: {}\n";
        let out = merge_cluster_spec(current, &settings()).unwrap();
        let want = yamltext::reparse(&out).unwrap().swap_remove(1);
        assert!(verify(current, &out, &want).is_ok());
        let msg = |out: &str| verify(current, out, &want).unwrap_err().to_string();
        assert!(
            msg(&out.replace("role: Master", "role: Node")).contains("(document 1 changed)"),
            "{}",
            msg(&out.replace("role: Master", "role: Node"))
        );
        let other = out.replace("oidcClientID: kubernetes", "oidcClientID: other");
        assert_ne!(other, out);
        assert!(msg(&other).contains("(the Cluster document is not the change meant)"));
        assert!(msg(&format!("{out}---\nkind: Extra\n")).contains("(2 documents became 3)"));
        assert!(msg(&out.replace("kind: Cluster", "kind: [Cluster")).contains("does not parse"));
    }

    fn fixtures() -> Vec<(String, String)> {
        let mut names: Vec<String> = std::fs::read_dir(fixture_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert!(names.len() >= 7, "{names:?}");
        names
            .into_iter()
            .map(|n| {
                let text = fixture(&n);
                (n, text)
            })
            .collect()
    }

    fn config_settings() -> OidcSettings {
        with(|i| {
            i.auth_mode = Some("config".into());
            i.kubernetes_version = Some("1.31".into());
        })
    }

    fn cluster_doc(text: &str) -> Value {
        serde_yaml_ng::Deserializer::from_str(text)
            .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
            .find(|v| v.get("kind").and_then(Value::as_str) == Some("Cluster"))
            .expect("a Cluster document")
    }

    #[test]
    fn exact_snippet() {
        let s = with(|i| i.required_claim = vec!["hd=example.com".into(), "aud=x".into()]);
        assert_eq!(
            spec_snippet(&s).unwrap(),
            "spec:\n  kubeAPIServer:\n    oidcIssuerURL: https://idp.example.com\n    oidcClientID: kubernetes\n    oidcUsernameClaim: email\n    oidcUsernamePrefix: 'oidc:'\n    oidcGroupsClaim: groups\n    oidcGroupsPrefix: 'oidc:'\n    oidcRequiredClaim:\n    - aud=x\n    - hd=example.com\n"
        );
    }

    #[test]
    fn snippet_with_ca_ships_a_file_asset() {
        let mut s = settings();
        s.ca = Some(ca());
        let text = spec_snippet(&s).unwrap();
        let v: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(
            v["spec"]["kubeAPIServer"]["oidcCAFile"].as_str(),
            Some("/srv/kubernetes/kube-apiserver/oidc-ca.pem")
        );
        let asset = &v["spec"]["fileAssets"][0];
        assert_eq!(asset["name"].as_str(), Some("oidc-ca"));
        assert_eq!(
            asset["path"].as_str(),
            Some("/srv/kubernetes/kube-apiserver/oidc-ca.pem")
        );
        assert_eq!(asset["roles"][0].as_str(), Some("ControlPlane"));
        assert_eq!(asset["content"].as_str(), Some(ca().pem.as_str()));
    }

    #[test]
    fn config_mode_snippet_has_no_oidc_fields() {
        let text = spec_snippet(&config_settings()).unwrap();
        let v: Value = serde_yaml_ng::from_str(&text).unwrap();
        let api = v["spec"]["kubeAPIServer"].as_mapping().unwrap();
        assert_eq!(api.len(), 1, "{text}");
        assert_eq!(
            v["spec"]["kubeAPIServer"]["authenticationConfigFile"].as_str(),
            Some("/srv/kubernetes/kube-apiserver/authentication-config.yaml")
        );
        let asset = &v["spec"]["fileAssets"][0];
        assert_eq!(asset["name"].as_str(), Some("oidc-authentication-config"));
        assert!(asset["content"]
            .as_str()
            .unwrap()
            .contains("kind: AuthenticationConfiguration"));
    }

    #[test]
    fn no_prefix_is_explicit_and_empty_groups_prefix_is_left_out() {
        let s = with(|i| {
            i.username_claim = Some("sub".into());
            i.username_prefix = None;
            i.groups_prefix = None;
            // an empty groups prefix needs the explicit override (reserved names)
            i.allow_system_names = Some(true);
        });
        let f = fields(&s, Mode::Flags);
        assert!(f.contains(&(
            "oidcUsernamePrefix",
            FieldValue::Text("https://idp.example.com#".into())
        )));
        assert!(!f.iter().any(|(n, _)| *n == "oidcGroupsPrefix"));
        let s = with(|i| i.username_prefix = Some("-".into()));
        let v: Value = serde_yaml_ng::from_str(&spec_snippet(&s).unwrap()).unwrap();
        assert_eq!(
            v["spec"]["kubeAPIServer"]["oidcUsernamePrefix"].as_str(),
            Some("-")
        );
    }

    #[test]
    fn refuses_comma_in_groups_claim() {
        let s = with(|i| i.groups_claim = Some("a,b".into()));
        let e = Kops.render(&s, &request()).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "kops cannot carry --groups-claim `a,b`: kops' v1alpha2 conversion splits"
            ),
            "{e}"
        );
        let mut config = config_settings();
        config.groups_claim = Some("a,b".into());
        assert!(Kops.render(&config, &request()).is_ok());
    }

    #[test]
    fn refuses_signing_algs_in_flags_mode() {
        let s = with(|i| i.signing_algs = Some("ES256".into()));
        let e = merge_cluster_spec(&fixture("009-nilahomar-kops-1.31.5.yaml"), &s)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "kops cannot carry --signing-algs `ES256`: the kops v1alpha2 `kubeAPIServer` spec has no field for `--oidc-signing-algs`; leave --signing-algs out (kube-apiserver then accepts RS256 only), or use `--auth-mode config`, which accepts every asymmetric algorithm"
        );
    }

    #[test]
    fn every_fixture_merges_or_is_refused_and_merging_is_idempotent() {
        let mut ca_settings = settings();
        ca_settings.ca = Some(ca());
        let variants = [settings(), ca_settings, config_settings()];
        for (name, text) in fixtures() {
            for s in &variants {
                // 003 is v1alpha3; 005 lacks the `---` between the Cluster and the first
                // InstanceGroup, so its first document has every top-level key twice.
                let refusal = match name.as_str() {
                    "003-kops-conversion-azure-v1alpha3.yaml" => Some("it is kops.k8s.io/v1alpha3"),
                    "005-georgpet-kops-1.17.9.yaml" => {
                        Some("duplicate entry with key \"apiVersion\"")
                    }
                    _ => None,
                };
                let merged = match (merge_cluster_spec(&text, s), refusal) {
                    (Ok(m), None) => m,
                    (Err(e), Some(why)) => {
                        assert!(e.to_string().contains(why), "{name}: {e}");
                        continue;
                    }
                    (result, _) => panic!("{name}: {result:?}"),
                };
                assert_eq!(
                    merge_cluster_spec(&merged, s).unwrap(),
                    merged,
                    "{name} not idempotent"
                );
                let before = cluster_doc(&text);
                let after = cluster_doc(&merged);
                let api = &after["spec"]["kubeAPIServer"];
                for (field, value) in fields(s, s.mode().unwrap()) {
                    match value {
                        FieldValue::Text(t) => {
                            assert_eq!(api[field].as_str(), Some(t.as_str()), "{name} {field}")
                        }
                        FieldValue::List(l) => {
                            let got: Vec<&str> = api[field]
                                .as_sequence()
                                .unwrap()
                                .iter()
                                .map(|v| v.as_str().unwrap())
                                .collect();
                            assert_eq!(got, l, "{name} {field}");
                        }
                    }
                }
                // Nothing else changed: drop what we own and compare.
                let strip = |mut v: Value| {
                    let spec = v["spec"].as_mapping_mut().unwrap();
                    if let Some(Value::Mapping(api)) = spec.get_mut("kubeAPIServer") {
                        for f in MANAGED_FIELDS {
                            api.shift_remove(f);
                        }
                        if api.is_empty() {
                            spec.shift_remove("kubeAPIServer");
                        }
                    }
                    if let Some(Value::Sequence(a)) = spec.get_mut("fileAssets") {
                        a.retain(|i| !matches!(asset_name(i), Some(CA_ASSET | CONFIG_ASSET)));
                        if a.is_empty() {
                            spec.shift_remove("fileAssets");
                        }
                    }
                    v
                };
                assert_eq!(strip(before), strip(after), "{name}");
                // Other documents are kept byte for byte.
                let others = |t: &str| -> Vec<String> {
                    split_documents(t)
                        .unwrap()
                        .iter()
                        .filter(|p| !p.text.contains("kind: Cluster"))
                        .map(|p| format!("{}{}", p.separator, p.text))
                        .collect()
                };
                assert_eq!(others(&text), others(&merged), "{name}");
            }
        }
    }

    #[test]
    fn replaces_existing_oidc_fields_in_place() {
        let text = fixture("002-kops-conversion-azure-v1alpha2.yaml");
        let merged = merge_cluster_spec(&text, &settings()).unwrap();
        let api = &cluster_doc(&merged)["spec"]["kubeAPIServer"];
        assert!(
            api.get("oidcRequiredClaim").is_none(),
            "stale claims removed"
        );
        assert_eq!(api["oidcGroupsClaim"].as_str(), Some("groups"));
        // Sorted like `kops get` prints, so kops' own output merges without moving keys.
        let keys: Vec<&str> = api
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            [
                "oidcClientID",
                "oidcGroupsClaim",
                "oidcGroupsPrefix",
                "oidcIssuerURL",
                "oidcUsernameClaim",
                "oidcUsernamePrefix"
            ]
        );
        assert!(merged.contains("\n---\n\napiVersion: kops.k8s.io/v1alpha2\nkind: InstanceGroup\n"));
        assert!(merged.starts_with("apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\n"));
    }

    #[test]
    fn switching_modes_removes_the_other_modes_fields_and_asset() {
        let text = fixture("002-kops-conversion-azure-v1alpha2.yaml");
        let mut flags = settings();
        flags.ca = Some(ca());
        let with_ca = merge_cluster_spec(&text, &flags).unwrap();
        let config = merge_cluster_spec(&with_ca, &config_settings()).unwrap();
        let spec = &cluster_doc(&config)["spec"];
        let api = spec["kubeAPIServer"].as_mapping().unwrap();
        let owned: Vec<&str> = api
            .keys()
            .filter_map(Value::as_str)
            .filter(|k| MANAGED_FIELDS.contains(k))
            .collect();
        assert_eq!(owned, ["authenticationConfigFile"]);
        let assets = spec["fileAssets"].as_sequence().unwrap();
        assert_eq!(assets.len(), 1);
        assert_eq!(asset_name(&assets[0]), Some(CONFIG_ASSET));
        let back = merge_cluster_spec(&config, &settings()).unwrap();
        let spec = &cluster_doc(&back)["spec"];
        assert!(spec.get("fileAssets").is_none(), "{back}");
        assert!(spec["kubeAPIServer"]
            .get("authenticationConfigFile")
            .is_none());
    }

    #[test]
    fn keeps_foreign_file_assets() {
        let text = "apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nmetadata:\n  name: c\nspec:\n  fileAssets:\n  - name: audit\n    path: /etc/audit.yaml\n    content: x\n  - name: oidc-ca\n    path: /old\n    content: old\n  - name: oidc-ca\n    path: /dup\n    content: dup\n";
        let mut s = settings();
        s.ca = Some(ca());
        let merged = merge_cluster_spec(text, &s).unwrap();
        let assets = cluster_doc(&merged)["spec"]["fileAssets"].clone();
        let names: Vec<&str> = assets
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(asset_name)
            .collect();
        assert_eq!(names, ["audit", "oidc-ca"]);
        assert_eq!(
            assets[1]["path"].as_str(),
            Some("/srv/kubernetes/kube-apiserver/oidc-ca.pem")
        );
    }

    #[test]
    fn refusals() {
        let s = settings();
        let e = merge_cluster_spec(&fixture("003-kops-conversion-azure-v1alpha3.yaml"), &s)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot patch the kops cluster spec: it is kops.k8s.io/v1alpha3"),
            "{e}"
        );
        assert!(e.ends_with("which prints kops.k8s.io/v1alpha2"), "{e}");
        for (text, reason) in [
            ("", "it holds no `kind: Cluster` document"),
            ("apiVersion: v1\nkind: Pod\n", "it holds no `kind: Cluster` document"),
            ("kind: Cluster\napiVersion: kops.k8s.io/v1alpha2\n---\nkind: Cluster\napiVersion: kops.k8s.io/v1alpha2\n", "it holds more than one `kind: Cluster` document"),
            ("apiVersion: x/v1\nkind: Cluster\n", "its apiVersion is `x/v1`, not kops.k8s.io/v1alpha2"),
            ("apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nspec: [1]\n", "`spec` is not a mapping"),
            ("apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nspec:\n  kubeAPIServer: 3\n", "`spec.kubeAPIServer` is not a mapping"),
            ("apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nspec:\n  fileAssets: {}\n", "`spec.fileAssets` is not a list"),
        ] {
            let mut with_ca = s.clone();
            with_ca.ca = Some(ca());
            let e = merge_cluster_spec(text, &with_ca).unwrap_err().to_string();
            assert_eq!(
                e,
                format!("cannot patch the kops cluster spec: {reason}; give the output of `kops get cluster --name NAME -o yaml` (kops.k8s.io/v1alpha2)")
            );
        }
        let e = merge_cluster_spec("kind: Cluster\n  bad: [", &s)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot patch the kops cluster spec: it is not valid YAML ("),
            "{e}"
        );
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn minimal_cluster_gets_kube_api_server() {
        let text = "apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nmetadata:\n  name: c\nspec:\n  channel: stable\n  kubernetesVersion: 1.31.5\n";
        let merged = merge_cluster_spec(text, &settings()).unwrap();
        assert_eq!(
            merged,
            "apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nmetadata:\n  name: c\nspec:\n  channel: stable\n  kubeAPIServer:\n    oidcClientID: kubernetes\n    oidcGroupsClaim: groups\n    oidcGroupsPrefix: 'oidc:'\n    oidcIssuerURL: https://idp.example.com\n    oidcUsernameClaim: email\n    oidcUsernamePrefix: 'oidc:'\n  kubernetesVersion: '1.31.5'\n"
        );
    }

    #[test]
    fn values_round_trip_as_strings() {
        // Values a YAML 1.1 reader (kops uses Go yaml) could take for bools, numbers or null.
        for tricky in [
            "yes", "on", "y", "true", "null", "~", "0777", "1e3", "0x1F", "12:30", "-", "'",
            "\"q\"", "a: b", "#c",
        ] {
            let s = with(|i| {
                i.client_id = Some(format!("c{tricky}").replace(' ', "_"));
                i.username_claim = Some(tricky.to_string());
                i.groups_claim = Some(tricky.to_string());
            });
            let text = merge_cluster_spec(
                "apiVersion: kops.k8s.io/v1alpha2\nkind: Cluster\nspec: {}\n",
                &s,
            )
            .unwrap();
            let api = &cluster_doc(&text)["spec"]["kubeAPIServer"];
            assert_eq!(api["oidcUsernameClaim"].as_str(), Some(tricky), "{text}");
            assert_eq!(api["oidcGroupsClaim"].as_str(), Some(tricky), "{text}");
            if ["yes", "on", "y", "true", "null", "~", "0777", "1e3", "0x1F"].contains(&tricky) {
                assert!(
                    text.contains(&format!("oidcUsernameClaim: '{tricky}'"))
                        || text.contains(&format!("oidcUsernameClaim: \"{tricky}\"")),
                    "{tricky} must be quoted for YAML 1.1 readers:\n{text}"
                );
            }
        }
    }

    #[test]
    fn exact_create_plan() {
        let mut req = request();
        req.extra_args = vec![
            "--zones".into(),
            "eu-west-1a".into(),
            "--state=s3://kops-state".into(),
        ];
        let plan = Kops.create_plan(&settings(), &req).unwrap();
        assert!(plan.steps.iter().all(|s| !s.why().is_empty()));
        let text = plan.to_string();
        let steps = text.split_once("\n\n").unwrap().1;
        assert_eq!(
            steps,
            "# write the spec of kops cluster `oidc` to the state store (kops creates no cloud resources without `--yes`)\n\
             + kops create cluster --name oidc --zones eu-west-1a --state=s3://kops-state\n\
             \n\
             # save the cluster spec as kops stores it (a file, not a pipe: POSIX sh has no pipefail, and the file is kept for inspection)\n\
             + sh -c 'mkdir -p /home/me/.local/share/k8soidc/oidc && kops get cluster --name oidc --state s3://kops-state -o yaml > /home/me/.local/share/k8soidc/oidc/cluster.yaml'\n\
             \n\
             # copy it for the OIDC change\n\
             + cp /home/me/.local/share/k8soidc/oidc/cluster.yaml /home/me/.local/share/k8soidc/oidc/cluster-oidc.yaml\n\
             \n\
             # add the API server's OIDC settings (and the files it reads) to the copy, with k8soidc's kops patcher\n\
             + k8soidc patch --file /home/me/.local/share/k8soidc/oidc/cluster-oidc.yaml --file-kind kops-cluster --in-place --config /dev/null --issuer-url https://idp.example.com --client-id kubernetes --username-claim email --username-prefix oidc: --groups-claim groups --groups-prefix oidc:\n\
             \n\
             # store the changed spec\n\
             + kops replace -f /home/me/.local/share/k8soidc/oidc/cluster-oidc.yaml --state s3://kops-state\n\
             \n\
             # create or update the cloud resources from the spec\n\
             + kops update cluster --name oidc --state s3://kops-state --yes\n\
             \n\
             # replace control-plane instances that booted before the OIDC settings (nodeup writes the API-server manifest at boot; nothing to do for instances the update just created)\n\
             + kops rolling-update cluster --name oidc --state s3://kops-state --yes\n"
        );
        let Step::Run { command, .. } = &plan.steps[3] else {
            panic!("{plan}")
        };
        assert_eq!(command.program, crate::K8SOIDC);
    }

    #[test]
    fn create_refuses_a_second_name() {
        let mut req = request();
        req.extra_args = vec!["--name=other".into()];
        let e = Kops.create_plan(&settings(), &req).unwrap_err().to_string();
        assert!(e.starts_with("kops: `--name=other` after `--`"), "{e}");
        req.extra_args = vec!["--state".into()];
        assert!(Kops.create_plan(&settings(), &req).is_err());
    }

    #[test]
    fn create_without_state_says_where_it_comes_from() {
        let plan = Kops.create_plan(&settings(), &request()).unwrap();
        assert!(plan.to_string().contains(
            "# note: no `--state` after `--`: every kops command reads the state store from KOPS_STATE_STORE\n"
        ));
    }

    #[test]
    fn render_shows_snippet_and_commands() {
        let text = Kops
            .render(&config_settings(), &request())
            .unwrap()
            .to_string();
        assert!(text.contains("authenticationConfigFile: /srv/kubernetes/kube-apiserver/authentication-config.yaml"), "{text}");
        assert!(
            text.contains("# warning: `authenticationConfigFile` needs kops 1.30 or later"),
            "{text}"
        );
        assert!(
            text.contains("kops get cluster --name oidc -o yaml > cluster.yaml"),
            "{text}"
        );
        assert!(
            text.contains("kops rolling-update cluster --name oidc --yes"),
            "{text}"
        );
    }
}

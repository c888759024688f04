//! Cluster API: the control plane of a workload cluster is a `KubeadmControlPlane` (KCP) on the
//! management cluster. OIDC goes into `spec.kubeadmConfigSpec.clusterConfiguration.apiServer`:
//! `extraArgs` for the flags, `extraVolumes` to mount the directory holding the CA or the
//! AuthenticationConfiguration, and `spec.kubeadmConfigSpec.files` to write those files on every
//! control-plane machine. Changing `kubeadmConfigSpec` makes the KCP controller roll out new
//! machines, so the change reaches every API server by replacement, not by an edit in place.
//!
//! Facts (cluster-api `controlplane/kubeadm/config/crd/bases/
//! controlplane.cluster.x-k8s.io_kubeadmcontrolplanes.yaml`, extracted in
//! `tests/data/fixtures/schemas/kcp.README.md`; `api/bootstrap/kubeadm/v1beta2/conversion.go`):
//! - `controlplane.cluster.x-k8s.io/v1beta1` (served, deprecated): `extraArgs` is a map of
//!   strings, so a flag appears once.
//! - `controlplane.cluster.x-k8s.io/v1beta2` (served, the storage version): `extraArgs` is a list
//!   of `{name, value}`, 1 to 100 items, names unique (CEL rule), name ≤ 256 and value ≤ 1024
//!   characters; `extraVolumes` holds 1 to 100 items. An empty list is invalid, so an emptied
//!   list is removed, never written as `[]`.
//! - `files[]`: `path` required; inline `content` is 1 to 10,240 characters; `owner`,
//!   `permissions` strings. `extraVolumes[]`: `name`, `hostPath`, `mountPath` required,
//!   `readOnly`, `pathType`.
//! - kubeadm does not mount files named in `extraArgs` (kubernetes/kubeadm#640), hence the
//!   `oidc` volume for [`NODE_DIR`].
//! - A JSON merge patch (RFC 7386, `kubectl patch --type merge`, the only patch type a custom
//!   resource takes besides JSON patch) replaces lists whole.
//!
//! [`patch_kcp`] edits manifests as text (see `yamltext`), checks the result against the
//! structural edit, and leaves `${VAR}` placeholders of clusterctl templates alone.

use serde::Serialize;
use serde_yaml_ng::{Mapping, Value};

use crate::apiserver::{self, is_managed_flag, Arg, NodeFile};
use crate::yamltext::{self, Line};
use crate::{Backend, ClusterRequest, Command, Distribution, OidcSettings, PlanError, Rendering};

/// Directory on each control-plane machine holding the CA or the AuthenticationConfiguration.
pub const NODE_DIR: &str = "/etc/kubernetes/oidc";
/// Name of the `extraVolumes` entry that mounts [`NODE_DIR`] into the API server.
pub const VOLUME_NAME: &str = "oidc";
/// Longest inline `files[].content` the CRD accepts.
pub const MAX_CONTENT: usize = 10_240;
const GROUP: &str = "controlplane.cluster.x-k8s.io";
const WHAT: &str = "the KubeadmControlPlane";

/// Every flag name this tool owns in `extraArgs`: ones it does not set are removed.
pub const MANAGED_FLAGS: [&str; 10] = [
    "oidc-issuer-url",
    "oidc-client-id",
    "oidc-username-claim",
    "oidc-username-prefix",
    "oidc-groups-claim",
    "oidc-groups-prefix",
    "oidc-ca-file",
    "oidc-signing-algs",
    "oidc-required-claim",
    "authentication-config",
];

const ARGS: [&str; 5] = [
    "spec",
    "kubeadmConfigSpec",
    "clusterConfiguration",
    "apiServer",
    "extraArgs",
];
const VOLUMES: [&str; 5] = [
    "spec",
    "kubeadmConfigSpec",
    "clusterConfiguration",
    "apiServer",
    "extraVolumes",
];
const FILES: [&str; 3] = ["spec", "kubeadmConfigSpec", "files"];

/// The KubeadmControlPlane API version, which decides the shape of `extraArgs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KcpVersion {
    /// `extraArgs` is a map.
    V1beta1,
    /// `extraArgs` is a list of `{name, value}` (the storage version).
    V1beta2,
}

impl KcpVersion {
    /// The full `apiVersion`.
    pub fn api_version(self) -> &'static str {
        match self {
            KcpVersion::V1beta1 => "controlplane.cluster.x-k8s.io/v1beta1",
            KcpVersion::V1beta2 => "controlplane.cluster.x-k8s.io/v1beta2",
        }
    }

    fn parse(api_version: &str) -> Result<Self, PlanError> {
        match api_version.strip_prefix(GROUP).and_then(|v| v.strip_prefix('/')) {
            Some("v1beta1") => Ok(KcpVersion::V1beta1),
            Some("v1beta2") => Ok(KcpVersion::V1beta2),
            _ => Err(PlanError::patch(
                WHAT,
                format!("apiVersion `{}` is not one k8soidc knows", crate::escape(api_version)),
                "convert it to controlplane.cluster.x-k8s.io/v1beta2 (or v1beta1) first, e.g. with `clusterctl upgrade`",
            )),
        }
    }
}

/// The Cluster API backend.
#[derive(Debug, Clone, Copy)]
pub struct Capi;

/// One entry this tool puts into a collection.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    /// `key: value` in a map.
    Pair(String, String),
    /// A string item of a sequence (vCluster's `extraArgs: ["--flag=value"]`).
    Scalar(String),
    /// A mapping item of a sequence, fields in order.
    Item(Vec<(&'static str, Field)>),
}

#[derive(Debug, Clone)]
pub(crate) enum Field {
    Str(String),
    Bool(bool),
    Block(String),
    /// A YAML scalar written as is (e.g. Talos' `permissions: 0o644`).
    Raw(&'static str),
}

impl Entry {
    fn value(&self) -> Value {
        match self {
            Entry::Pair(_, v) | Entry::Scalar(v) => Value::String(v.clone()),
            Entry::Item(fields) => {
                let mut m = Mapping::new();
                for (k, f) in fields {
                    let v = match f {
                        Field::Str(s) | Field::Block(s) => Value::String(s.clone()),
                        Field::Bool(b) => Value::Bool(*b),
                        Field::Raw(r) => serde_yaml_ng::from_str(r).unwrap_or(Value::Null),
                    };
                    m.insert(Value::String((*k).to_string()), v);
                }
                Value::Mapping(m)
            }
        }
    }

    pub(crate) fn lines(&self, indent: usize) -> Vec<String> {
        let pad = " ".repeat(indent);
        match self {
            Entry::Pair(k, v) => vec![format!(
                "{pad}{}: {}",
                yamltext::scalar(k),
                yamltext::scalar(v)
            )],
            Entry::Scalar(v) => vec![format!("{pad}- {}", yamltext::scalar(v))],
            Entry::Item(fields) => {
                let mut out = Vec::new();
                for (n, (k, f)) in fields.iter().enumerate() {
                    let lead = if n == 0 {
                        format!("{pad}- ")
                    } else {
                        format!("{pad}  ")
                    };
                    match f {
                        Field::Str(s) => out.push(format!("{lead}{k}: {}", yamltext::scalar(s))),
                        Field::Bool(b) => out.push(format!("{lead}{k}: {b}")),
                        Field::Raw(r) => out.push(format!("{lead}{k}: {r}")),
                        Field::Block(s) => {
                            out.extend(yamltext::literal(&format!("{lead}{k}: "), s, indent + 4))
                        }
                    }
                }
                out
            }
        }
    }
}

/// What the control plane should carry (nothing, when removing).
#[derive(Debug, Clone, Default)]
struct Desired {
    args: Vec<Arg>,
    files: Vec<NodeFile>,
}

impl Desired {
    fn arg_entries(&self, v: KcpVersion) -> Vec<Entry> {
        self.args
            .iter()
            .map(|a| match v {
                KcpVersion::V1beta1 => Entry::Pair(a.name.clone(), a.value.clone()),
                KcpVersion::V1beta2 => Entry::Item(vec![
                    ("name", Field::Str(a.name.clone())),
                    ("value", Field::Str(a.value.clone())),
                ]),
            })
            .collect()
    }

    fn file_entries(&self) -> Vec<Entry> {
        self.files
            .iter()
            .map(|f| {
                Entry::Item(vec![
                    ("path", Field::Str(f.path.clone())),
                    ("owner", Field::Str("root:root".into())),
                    ("permissions", Field::Str("0644".into())),
                    ("content", Field::Block(f.content.clone())),
                ])
            })
            .collect()
    }

    fn volume_entries(&self) -> Vec<Entry> {
        if self.files.is_empty() {
            return vec![];
        }
        vec![Entry::Item(vec![
            ("name", Field::Str(VOLUME_NAME.into())),
            ("hostPath", Field::Str(NODE_DIR.into())),
            ("mountPath", Field::Str(NODE_DIR.into())),
            ("readOnly", Field::Bool(true)),
            ("pathType", Field::Str("DirectoryOrCreate".into())),
        ])]
    }
}

fn desired(s: &OidcSettings, remove: bool) -> Result<Desired, PlanError> {
    if remove {
        return Ok(Desired::default());
    }
    let mode = s.mode()?;
    let args = apiserver::args(s, mode, NODE_DIR);
    crate::refuse_repeated_claims(
        Distribution::Capi,
        s,
        "extraArgs holds a flag once (a map in v1beta1, unique names in v1beta2)",
        "give one --required-claim, or use `--auth-mode config` (claimValidationRules)",
    )?;
    for a in &args {
        if a.value.chars().count() > 1024 {
            let field = crate::rendered_values(s)
                .into_iter()
                .find(|(_, v)| a.value.ends_with(v.as_str()) && !v.is_empty())
                .map(|(f, _)| f)
                .unwrap_or("--issuer-url");
            return Err(PlanError::unrepresentable(
                Distribution::Capi,
                field,
                &a.value,
                format!(
                    "`{}` is longer than the 1024 characters extraArgs values may have",
                    a.name
                ),
                "shorten the value",
            ));
        }
    }
    let files = apiserver::node_files(s, mode, NODE_DIR);
    for f in &files {
        let n = f.content.chars().count();
        if n > MAX_CONTENT {
            return Err(PlanError::unrepresentable(
                Distribution::Capi,
                "--ca-file",
                &f.path,
                format!("the file is {n} characters; inline files[].content holds at most {MAX_CONTENT}"),
                "use a CA file with only the issuing CA, or deliver the file from a Secret with files[].contentFrom by hand",
            ));
        }
    }
    Ok(Desired { args, files })
}

/// In a clusterctl template (`template`), refuses values with `$`; elsewhere, values with `${`,
/// which would make the result look like a template, so a second run would refuse it.
fn refuse_dollar(s: &OidcSettings, d: &Desired, template: bool) -> Result<(), PlanError> {
    let mut values: Vec<(&'static str, String)> = crate::rendered_values(s);
    values.extend(d.files.iter().map(|f| ("--ca-file", f.content.clone())));
    let (needle, reason, fix) = if template {
        ("$", "the file is a clusterctl template (it has `${VAR}` placeholders) and clusterctl would expand `$` in this value", "choose a value without `$`, or patch the generated manifest instead of the template")
    } else {
        ("${", "`${` would make the manifest a clusterctl template, whose `${VAR}` placeholders clusterctl expands", "choose a value without `${`")
    };
    for (field, value) in values {
        if value.contains(needle) {
            return Err(PlanError::unrepresentable(
                Distribution::Capi,
                field,
                &value,
                reason,
                fix,
            ));
        }
    }
    Ok(())
}

// ---------- structural edit ----------

fn is_managed_item(path: &[&str], item: &Value) -> bool {
    let field = |k: &str| item.get(k).and_then(Value::as_str);
    match path.last().copied() {
        Some("extraArgs") => match item {
            // `--flag=value`, or k3s' `--kube-apiserver-arg=flag=value` (vCluster).
            Value::String(s) => {
                let s = s.strip_prefix("--kube-apiserver-arg=").unwrap_or(s);
                is_managed_flag(s.split('=').next().unwrap_or_default())
            }
            _ => field("name").map(is_managed_flag).unwrap_or(false),
        },
        Some("addVolumes" | "addVolumeMounts") => field("name") == Some(crate::vcluster::VOLUME),
        Some("extraVolumes") => {
            field("name") == Some(VOLUME_NAME)
                || field("mountPath").map(|p| p.trim_end_matches('/')) == Some(NODE_DIR)
        }
        Some("files") => field("path")
            .map(|p| {
                p.starts_with(&format!("{NODE_DIR}/"))
                    || p.starts_with(&format!("{}/", crate::talos::HOST_DIR))
            })
            .unwrap_or(false),
        _ => false,
    }
}

fn not_a_mapping(path: &[&str]) -> PlanError {
    PlanError::patch(
        WHAT,
        format!("`{}` is not a mapping", path.join(".")),
        "fix the manifest so it matches the KubeadmControlPlane schema",
    )
}

/// The value at `path`, None when absent or null.
fn get<'a>(root: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut v = root;
    for seg in path {
        v = v.get(*seg)?;
    }
    (!v.is_null()).then_some(v)
}

/// The mapping holding the last segment of `path`, created when `create`.
fn parent_mut<'a>(
    root: &'a mut Value,
    path: &[&str],
    create: bool,
) -> Result<Option<&'a mut Mapping>, PlanError> {
    let mut v = root;
    for (n, seg) in path[..path.len() - 1].iter().enumerate() {
        let Value::Mapping(m) = v else {
            return Err(not_a_mapping(&path[..n]));
        };
        let key = Value::String((*seg).to_string());
        if m.get(&key).map(Value::is_null).unwrap_or(true) {
            if !create {
                return Ok(None);
            }
            m.insert(key.clone(), Value::Mapping(Mapping::new()));
        }
        v = m.get_mut(&key).expect("just inserted");
    }
    match v {
        Value::Mapping(m) => Ok(Some(m)),
        _ => Err(not_a_mapping(&path[..path.len() - 1])),
    }
}

/// Replaces the managed entries of the collection at `path` by `new` (at the place of the
/// first managed one, else at the end); removes the collection when it ends up empty.
pub(crate) fn edit_collection(
    root: &mut Value,
    path: &[&str],
    new: &[Entry],
) -> Result<(), PlanError> {
    let last = Value::String(path[path.len() - 1].to_string());
    let Some(parent) = parent_mut(root, path, !new.is_empty())? else {
        return Ok(());
    };
    let current = parent.get(&last).cloned().unwrap_or(Value::Null);
    let wrong = || {
        PlanError::patch(
            WHAT,
            format!("`{}` has an unexpected type", path.join(".")),
            "fix the manifest so it matches the KubeadmControlPlane schema",
        )
    };
    let result = match (&current, new.first()) {
        (Value::Mapping(_) | Value::Null, Some(Entry::Pair(..))) | (Value::Mapping(_), None) => {
            let mut m = match current {
                Value::Mapping(m) => m,
                _ => Mapping::new(),
            };
            let before = m.len();
            m.retain(|k, _| !k.as_str().map(is_managed_flag).unwrap_or(false));
            if before == m.len() && new.is_empty() {
                return Ok(());
            }
            for e in new {
                if let Entry::Pair(k, _) = e {
                    m.insert(Value::String(k.clone()), e.value());
                }
            }
            Value::Mapping(m)
        }
        (Value::Sequence(_) | Value::Null, _) => {
            let mut items = match current {
                Value::Sequence(s) => s,
                _ => vec![],
            };
            let first = items.iter().position(|i| is_managed_item(path, i));
            if first.is_none() && new.is_empty() {
                return Ok(());
            }
            items.retain(|i| !is_managed_item(path, i));
            let at = first.unwrap_or(items.len());
            for (n, e) in new.iter().enumerate() {
                items.insert(at + n, e.value());
            }
            Value::Sequence(items)
        }
        _ => return Err(wrong()),
    };
    let empty = match &result {
        Value::Mapping(m) => m.is_empty(),
        Value::Sequence(s) => s.is_empty(),
        _ => false,
    };
    if empty {
        parent.remove(&last);
    } else {
        parent.insert(last, result);
    }
    Ok(())
}

fn edit_object(obj: &mut Value, v: KcpVersion, d: &Desired) -> Result<(), PlanError> {
    edit_collection(obj, &ARGS, &d.arg_entries(v))?;
    edit_collection(obj, &VOLUMES, &d.volume_entries())?;
    edit_collection(obj, &FILES, &d.file_entries())?;
    Ok(())
}

/// `v` with every empty mapping made null: taking the last entry out of a block leaves its key
/// with no value (null), where the structural edit leaves `{}`; the API decodes both alike.
pub(crate) fn empty_as_null(v: Value) -> Value {
    match v {
        Value::Mapping(m) if m.is_empty() => Value::Null,
        Value::Mapping(m) => {
            Value::Mapping(m.into_iter().map(|(k, v)| (k, empty_as_null(v))).collect())
        }
        Value::Sequence(s) => Value::Sequence(s.into_iter().map(empty_as_null).collect()),
        v => v,
    }
}

// ---------- text edit ----------

fn refuse_text(what: &str, path: &[&str], reason: &str) -> PlanError {
    PlanError::patch(
        what,
        format!("`{}` {reason}", path.join(".")),
        "rewrite that part in block style (one entry a line) and run again, or edit it by hand",
    )
}

fn key_line_without_value(text: &str, rest: &str) -> String {
    let t = text.trim_end();
    let head = t.strip_suffix(rest).unwrap_or(t).trim_end();
    let comment = rest
        .find(" #")
        .map(|i| format!(" {}", rest[i..].trim()))
        .unwrap_or_default();
    format!("{head}{comment}")
}

/// Text counterpart of [`edit_collection`] on one document's lines.
pub(crate) fn edit_text(
    lines: &mut Vec<Line>,
    doc: &Value,
    path: &[&str],
    new: &[Entry],
    eol: &str,
    seq_offset: usize,
) -> Result<(), PlanError> {
    edit_text_of(WHAT, lines, doc, path, new, eol, seq_offset)
}

/// [`edit_text`] for another kind of file; refusals name `what` (e.g. "the k0s config").
pub(crate) fn edit_text_of(
    what: &str,
    lines: &mut Vec<Line>,
    doc: &Value,
    path: &[&str],
    new: &[Entry],
    eol: &str,
    seq_offset: usize,
) -> Result<(), PlanError> {
    let is_map = matches!(new.first(), Some(Entry::Pair(..)))
        || matches!(get(doc, path), Some(Value::Mapping(_)));
    // Walk the path.
    let mut range = 0..lines.len();
    let mut key_line: Option<usize> = None;
    for (n, seg) in path.iter().enumerate() {
        let found = yamltext::find_key(lines, range.clone(), seg);
        let Some(l) = found else {
            if new.is_empty() {
                if get(doc, path).is_some() {
                    return Err(refuse_text(
                        what,
                        &path[..=n],
                        "could not be found in the text",
                    ));
                }
                return Ok(());
            }
            return create_path(
                lines,
                key_line,
                range,
                &path[n..],
                new,
                is_map,
                eol,
                seq_offset,
            );
        };
        let (_, rest) = yamltext::key_of(&lines[l].text).expect("find_key matched a key");
        if n + 1 < path.len() && !yamltext::value_is_block(&rest) {
            if yamltext::value_is_empty(&rest) && !new.is_empty() {
                let t = key_line_without_value(&lines[l].text, &rest);
                lines[l].text = t;
                return create_path(
                    lines,
                    Some(l),
                    l + 1..l + 1,
                    &path[n + 1..],
                    new,
                    is_map,
                    eol,
                    seq_offset,
                );
            }
            if yamltext::value_is_empty(&rest) {
                return Ok(());
            }
            return Err(refuse_text(
                what,
                &path[..=n],
                "is written on one line (flow style)",
            ));
        }
        key_line = Some(l);
        range = yamltext::value_range(lines, l, range.end);
    }
    let l = key_line.expect("path is not empty");
    let (_, rest) = yamltext::key_of(&lines[l].text).expect("a key");
    let flow_empty = !yamltext::value_is_block(&rest);
    if flow_empty && !yamltext::value_is_empty(&rest) {
        return Err(refuse_text(
            what,
            path,
            "is written on one line (flow style)",
        ));
    }
    let block = if flow_empty { l + 1..l + 1 } else { range };
    let entries = yamltext::entries(lines, block.clone());
    let current = get(doc, path);
    let managed: Vec<bool> = match current {
        None => vec![],
        Some(Value::Mapping(m)) => {
            let keys: Vec<Option<String>> = entries
                .iter()
                .map(|r| yamltext::key_of(&lines[r.start].text).map(|(k, _)| k))
                .collect();
            let want: Vec<Option<String>> =
                m.keys().map(|k| k.as_str().map(str::to_string)).collect();
            if keys != want {
                return Err(refuse_text(what, path, "has entries the text model cannot follow (anchors, merge keys or multi-line keys)"));
            }
            m.keys()
                .map(|k| k.as_str().map(is_managed_flag).unwrap_or(false))
                .collect()
        }
        Some(Value::Sequence(items)) => {
            if entries.len() != items.len()
                || entries
                    .iter()
                    .any(|r| !yamltext::is_item_line(&lines[r.start].text))
            {
                return Err(refuse_text(
                    what,
                    path,
                    "has items the text model cannot follow (flow style or anchors)",
                ));
            }
            items.iter().map(|i| is_managed_item(path, i)).collect()
        }
        Some(_) => return Err(refuse_text(what, path, "has an unexpected type")),
    };
    if entries.len() != managed.len() {
        return Err(refuse_text(
            what,
            path,
            "could not be matched with its parsed value",
        ));
    }
    let first = managed.iter().position(|m| *m);
    if first.is_none() && new.is_empty() {
        return Ok(());
    }
    let remaining = managed.iter().filter(|m| !**m).count();
    if remaining == 0 && new.is_empty() {
        let end = block.end.max(l + 1);
        yamltext::splice(lines, l..end, vec![], eol);
        return Ok(());
    }
    let indent = match yamltext::child_indent(lines, block.clone()) {
        Some(i) => i,
        None => yamltext::indent(&lines[l].text) + if is_map { 2 } else { seq_offset },
    };
    let at = match first {
        Some(f) => entries[f].start,
        None => {
            if entries.is_empty() {
                l + 1
            } else {
                block.end
            }
        }
    };
    for (r, m) in entries.iter().zip(&managed).rev() {
        if *m {
            yamltext::splice(lines, r.clone(), vec![], eol);
        }
    }
    let new_lines: Vec<String> = new.iter().flat_map(|e| e.lines(indent)).collect();
    yamltext::splice(lines, at..at, new_lines, eol);
    if flow_empty {
        lines[l].text = key_line_without_value(&lines[l].text, &rest);
    }
    Ok(())
}

/// Adds the missing `segments` (the last one holding `new`) at the end of the block `range`
/// whose key is at `parent`.
#[allow(clippy::too_many_arguments)]
fn create_path(
    lines: &mut Vec<Line>,
    parent: Option<usize>,
    range: std::ops::Range<usize>,
    segments: &[&str],
    new: &[Entry],
    is_map: bool,
    eol: &str,
    seq_offset: usize,
) -> Result<(), PlanError> {
    let mut indent = match yamltext::child_indent(lines, range.clone()) {
        Some(i) => i,
        None => parent
            .map(|p| yamltext::indent(&lines[p].text) + 2)
            .unwrap_or(0),
    };
    let mut out = Vec::new();
    for seg in segments {
        out.push(format!("{}{seg}:", " ".repeat(indent)));
        indent += 2;
    }
    let entry_indent = if is_map {
        indent
    } else {
        indent - 2 + seq_offset
    };
    out.extend(new.iter().flat_map(|e| e.lines(entry_indent)));
    let at = yamltext::content_end(lines, range.clone()).unwrap_or(range.start);
    yamltext::splice(lines, at..at, out, eol);
    Ok(())
}

/// One document parsed ([`yamltext::parse_one`]): the input of the Cluster API, k0s, Talos
/// and vcluster patchers, and their edited text read back.
pub(crate) fn parse_doc(text: &str) -> Result<Value, PlanError> {
    yamltext::parse_one(text).map_err(|e| {
        PlanError::patch(
            "the file",
            format!("it is not valid YAML ({})", e.replace('\n', " ")),
            "fix the YAML first (`kubectl apply --dry-run=client -f FILE` shows where)",
        )
    })
}

fn kcp_version(doc: &Value) -> Result<Option<KcpVersion>, PlanError> {
    if doc.get("kind").and_then(Value::as_str) != Some("KubeadmControlPlane") {
        return Ok(None);
    }
    let api = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    KcpVersion::parse(api).map(Some)
}

/// Whether `text` holds a KubeadmControlPlane (for `patch --file` kind detection).
pub fn looks_like_kcp(text: &str) -> bool {
    text.lines()
        .any(|l| l.trim_end() == "kind: KubeadmControlPlane")
        && text.contains("controlplane.cluster.x-k8s.io/")
}

/// Sets (or with `remove`, takes out) the OIDC configuration in every KubeadmControlPlane of
/// a manifest, multi-document cluster templates and clusterctl templates included. Returns
/// None when nothing needs to change. Other documents and lines keep their bytes; existing
/// `oidc-*`/`authentication-config` entries, the `oidc` volume and files under [`NODE_DIR`]
/// are replaced, never duplicated. The version of each document decides map or list.
pub fn patch_kcp(text: &str, s: &OidcSettings, remove: bool) -> Result<Option<String>, PlanError> {
    let d = desired(s, remove)?;
    if !remove {
        refuse_dollar(s, &d, text.contains("${"))?;
    }
    let mut lines = yamltext::split(text);
    let eol = yamltext::eol_of(&lines);
    let mut found = 0;
    for range in yamltext::documents(&lines).into_iter().rev() {
        let doc_text = yamltext::join(&lines[range.clone()]);
        let doc = parse_doc(&doc_text)?;
        let Some(v) = kcp_version(&doc)? else {
            continue;
        };
        found += 1;
        if doc.get("spec").map(Value::is_mapping) != Some(true) {
            return Err(PlanError::patch(
                WHAT,
                "the document has no `spec` mapping",
                "give a complete KubeadmControlPlane manifest",
            ));
        }
        let mut expected = doc.clone();
        edit_object(&mut expected, v, &d)?;
        if expected == doc {
            continue;
        }
        let mut doc_lines = lines[range.clone()].to_vec();
        let offset = yamltext::sequence_offset(&doc_lines, 0..doc_lines.len());
        edit_text(&mut doc_lines, &doc, &ARGS, &d.arg_entries(v), &eol, offset)?;
        edit_text(
            &mut doc_lines,
            &doc,
            &VOLUMES,
            &d.volume_entries(),
            &eol,
            offset,
        )?;
        edit_text(
            &mut doc_lines,
            &doc,
            &FILES,
            &d.file_entries(),
            &eol,
            offset,
        )?;
        let after: Value = parse_doc(&yamltext::join(&doc_lines))?;
        if empty_as_null(after) != empty_as_null(expected) {
            return Err(PlanError::patch(
                WHAT,
                "the text edit would not give the intended object (an unusual layout)",
                "edit the file by hand, or rewrite the apiServer section in plain block style",
            ));
        }
        lines.splice(range, doc_lines);
    }
    if found == 0 {
        return Err(PlanError::patch(
            "the file",
            "it holds no KubeadmControlPlane (controlplane.cluster.x-k8s.io)",
            "give the Cluster API manifest or cluster template with the KubeadmControlPlane",
        ));
    }
    let out = yamltext::join(&lines);
    Ok((out != text).then_some(out))
}

// ---------- merge patches ----------

/// The RFC 7386 merge patch turning `a` into `b` (None when equal).
fn merge_diff(a: &Value, b: &Value) -> Option<Value> {
    match (a, b) {
        (Value::Mapping(ma), Value::Mapping(mb)) => {
            let mut out = Mapping::new();
            for (k, vb) in mb {
                match ma.get(k) {
                    Some(va) => {
                        if let Some(d) = merge_diff(va, vb) {
                            out.insert(k.clone(), d);
                        }
                    }
                    None => {
                        out.insert(k.clone(), vb.clone());
                    }
                }
            }
            for k in ma.keys() {
                if !mb.contains_key(k) {
                    out.insert(k.clone(), Value::Null);
                }
            }
            (!out.is_empty()).then_some(Value::Mapping(out))
        }
        _ => (a != b).then(|| b.clone()),
    }
}

fn static_patch(s: &OidcSettings, v: KcpVersion) -> Result<Value, PlanError> {
    let d = desired(s, false)?;
    let mut obj = Value::Mapping(Mapping::new());
    edit_object(&mut obj, v, &d)?;
    if v == KcpVersion::V1beta1 {
        if let Some(Value::Mapping(m)) = obj
            .get_mut("spec")
            .and_then(|x| x.get_mut("kubeadmConfigSpec"))
            .and_then(|x| x.get_mut("clusterConfiguration"))
            .and_then(|x| x.get_mut("apiServer"))
            .and_then(|x| x.get_mut("extraArgs"))
        {
            for f in MANAGED_FLAGS {
                let k = Value::String(f.to_string());
                if !m.contains_key(&k) {
                    m.insert(k, Value::Null);
                }
            }
        }
    }
    Ok(obj)
}

/// The merge patch (YAML) that configures OIDC on a KubeadmControlPlane of version `v`, with
/// no knowledge of the object: for v1beta1 it also sets every other managed flag to null
/// (removing it); lists (`files`, `extraVolumes`, and v1beta2 `extraArgs`) are replaced whole.
pub fn merge_patch(s: &OidcSettings, v: KcpVersion) -> Result<String, PlanError> {
    Ok(crate::yamlout::to_yaml(&static_patch(s, v)?))
}

/// `kubectl patch kubeadmcontrolplane NAME --type merge -p '<json>'` for [`merge_patch`].
pub fn patch_command(name: &str, s: &OidcSettings, v: KcpVersion) -> Result<Command, PlanError> {
    let json = serde_json::to_string(&static_patch(s, v)?).expect("values always serialise");
    Ok(Command::new(
        "kubectl",
        [
            "patch",
            "kubeadmcontrolplane",
            name,
            "--type",
            "merge",
            "-p",
            json.as_str(),
        ],
    ))
}

/// The change to a live KubeadmControlPlane, computed from the object itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LivePatch {
    /// The object's version.
    pub version: KcpVersion,
    /// The JSON merge patch for `kubectl patch --type merge -p`.
    pub patch: String,
    /// `spec.kubeadmConfigSpec` before, as YAML (for the dry-run diff).
    pub before: String,
    /// `spec.kubeadmConfigSpec` after, as YAML.
    pub after: String,
}

/// The merge patch that configures OIDC with `s` (or, for None, takes it out) on the
/// KubeadmControlPlane printed by `kubectl get kubeadmcontrolplane NAME -o json`, keeping every
/// other list entry (a merge patch replaces lists whole, so they are sent complete). None when
/// nothing changes.
pub fn live_patch(
    current_json: &str,
    s: Option<&OidcSettings>,
) -> Result<Option<LivePatch>, PlanError> {
    let current: Value = serde_json::from_str(current_json).map_err(|e| {
        PlanError::patch(
            WHAT,
            format!("kubectl printed something that is not JSON ({e})"),
            "check that `kubectl get kubeadmcontrolplane NAME -o json` works",
        )
    })?;
    let Some(v) = kcp_version(&current)? else {
        return Err(PlanError::patch(
            WHAT,
            "the object is not a KubeadmControlPlane",
            "give the name of the KubeadmControlPlane (`kubectl get kubeadmcontrolplanes -A`)",
        ));
    };
    let d = match s {
        Some(s) => desired(s, false)?,
        None => Desired::default(),
    };
    let mut expected = current.clone();
    edit_object(&mut expected, v, &d)?;
    let Some(diff) = merge_diff(
        current.get("spec").unwrap_or(&Value::Null),
        expected.get("spec").unwrap_or(&Value::Null),
    ) else {
        return Ok(None);
    };
    let mut patch = Mapping::new();
    patch.insert(Value::String("spec".into()), diff);
    let show = |o: &Value| {
        let k = get(o, &["spec", "kubeadmConfigSpec"])
            .cloned()
            .unwrap_or(Value::Null);
        crate::yamlout::to_yaml(&k)
    };
    Ok(Some(LivePatch {
        version: v,
        patch: serde_json::to_string(&Value::Mapping(patch)).expect("values always serialise"),
        before: show(&current),
        after: show(&expected),
    }))
}

// ---------- rollout ----------

/// Where a KubeadmControlPlane's rollout stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rollout {
    /// Every replica is up to date and ready, and the controller saw the latest spec.
    pub done: bool,
    /// One line for a progress display.
    pub summary: String,
    /// `status.conditions`, one line each (`Type=Status Reason: message`).
    pub conditions: Vec<String>,
}

/// Reads `kubectl get kubeadmcontrolplane NAME -o json` (v1beta1 or v1beta2 status fields).
pub fn rollout(current_json: &str) -> Result<Rollout, PlanError> {
    let o: serde_json::Value = serde_json::from_str(current_json).map_err(|e| {
        PlanError::patch(
            WHAT,
            format!("kubectl printed something that is not JSON ({e})"),
            "check that `kubectl get kubeadmcontrolplane NAME -o json` works",
        )
    })?;
    let n = |p: &str| o.pointer(p).and_then(serde_json::Value::as_i64);
    let want = n("/spec/replicas").unwrap_or(1);
    let generation = n("/metadata/generation").unwrap_or(0);
    let observed = n("/status/observedGeneration").unwrap_or(0);
    let replicas = n("/status/replicas").unwrap_or(0);
    let ready = n("/status/readyReplicas").unwrap_or(0);
    let v2 =
        o.get("apiVersion").and_then(|a| a.as_str()) == Some(KcpVersion::V1beta2.api_version());
    let (updated, available_ok) = if v2 {
        (
            n("/status/upToDateReplicas").unwrap_or(0),
            n("/status/availableReplicas")
                .map(|a| a >= want)
                .unwrap_or(true),
        )
    } else {
        (
            n("/status/updatedReplicas").unwrap_or(0),
            n("/status/unavailableReplicas").unwrap_or(0) == 0,
        )
    };
    let done = observed >= generation
        && replicas == want
        && updated == want
        && ready == want
        && available_ok;
    let mut summary = format!("{updated}/{want} up to date, {ready}/{want} ready");
    if replicas != want {
        summary.push_str(&format!(", {replicas} machines"));
    }
    if observed < generation {
        summary.push_str(", controller has not seen the change yet");
    }
    let conditions = o
        .pointer("/status/conditions")
        .and_then(serde_json::Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| {
                    let f = |k: &str| c.get(k).and_then(|x| x.as_str()).unwrap_or_default();
                    let mut line = format!("{}={}", f("type"), f("status"));
                    if !f("reason").is_empty() {
                        line.push_str(&format!(" {}", f("reason")));
                    }
                    if !f("message").is_empty() {
                        line.push_str(&format!(": {}", f("message").replace('\n', " ")));
                    }
                    line
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(Rollout {
        done,
        summary,
        conditions,
    })
}

impl Backend for Capi {
    fn distribution(&self) -> Distribution {
        Distribution::Capi
    }

    fn render(&self, s: &OidcSettings, req: &ClusterRequest) -> Result<Rendering, PlanError> {
        let mut r = Rendering::new(Distribution::Capi, s)?;
        r.warnings.push(format!(
            "a merge patch replaces lists whole: `files` and `extraVolumes` (and v1beta2 `extraArgs`) lose entries it does not repeat; `k8soidc patch --capi {}` reads the object and keeps them",
            req.name
        ));
        r.warnings.push(
            "changing kubeadmConfigSpec rolls out new control-plane machines one by one".into(),
        );
        for v in [KcpVersion::V1beta2, KcpVersion::V1beta1] {
            let note = match v {
                KcpVersion::V1beta2 => "storage version; extraArgs is a list",
                KcpVersion::V1beta1 => "deprecated; extraArgs is a map",
            };
            r.push(
                format!("merge patch for {} ({note})", v.api_version()),
                None,
                "yaml",
                merge_patch(s, v)?,
            );
            r.push(
                format!("the same with kubectl ({})", v.api_version()),
                None,
                "shell",
                format!("{}\n", patch_command(&req.name, s, v)?),
            );
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests;

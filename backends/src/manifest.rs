//! The kube-apiserver static-pod manifest patcher (`/etc/kubernetes/manifests/kube-apiserver.yaml`
//! on kubeadm, kind, minikube and hand-built control planes). A wrong edit here takes the
//! node's API server down, so this module edits text, not a re-serialised object, and checks
//! its own work before returning it.
//!
//! Facts it relies on:
//! - kubelet runs every non-dot file in the static-pod directory and restarts the pod when a
//!   file changes; it decodes YAML 1.1 (`sigs.k8s.io/yaml`), so `- --oidc-groups-prefix=oidc:`
//!   unquoted is a *mapping*, not a string (kubernetes/kubernetes#97741; peers.md P12).
//! - kube-apiserver exits when `--authentication-config` is combined with any `--oidc-*` flag
//!   (kubernetes/website `content/en/docs/reference/access-authn-authz/authentication.md`;
//!   distros.md §4.6), so the result never holds both.
//! - Files named by flags must be inside a `hostPath` volume mounted into the container
//!   (kubernetes/kubeadm#640, distros.md §4.5); kubeadm already mounts `/etc/kubernetes/pki`
//!   as `k8s-certs` (`cmd/kubeadm/app/phases/controlplane/volumes.go`, distros.md §3.3).
//!
//! The edit is minimal: only managed flag items ([`apiserver::is_managed_flag`]) and the
//! volume/volumeMount entries named by the caller change; every other line keeps its bytes
//! (comments, order, quoting, indentation, CRLF endings, a missing final newline). Values are
//! read with `serde_yaml_ng`; a small line model ([`text`]) finds where they are, and is
//! trusted only when both views agree. After editing, the result is parsed again and compared
//! with the input with our entries removed: any difference is an error, never an output.
//!
//! Refused, with the file unchanged: YAML that does not parse; no Pod; no (or several)
//! `kube-apiserver` containers; a command that is not kube-apiserver (or hyperkube
//! `apiserver`); flags inside a shell string (`sh -c`); flow-style (`[...]`) or multi-line
//! command/args items; and `kubectl get pod -o yaml` dumps of the mirror pod. A dump is not
//! the file kubelet reads: written into the manifests directory it would be a second static
//! pod (name with a node suffix, stale `uid`/`ownerReferences`/mirror annotation) fighting the
//! real one for port 6443 (peers.md P7). [`current_flags`] and [`api_endpoint`] do read dumps.

mod edit;
mod scalar;
#[cfg(test)]
mod tests;

use serde::Serialize;
use serde_yaml_ng::Value;

use crate::apiserver::{is_managed_flag, Arg};
use crate::yamltext::{self as text, Block, Item, Key, Line};
use crate::PlanError;

/// The container this module patches.
pub const CONTAINER: &str = "kube-apiserver";
const WHAT: &str = "the kube-apiserver manifest";
const FIX_FILE: &str =
    "give the static pod file kubelet runs (usually /etc/kubernetes/manifests/kube-apiserver.yaml)";
const FIX_HAND: &str = "add the flags by hand, or rewrite the container's command as a block list (`- kube-apiserver`, `- --flag=value`, one a line)";

/// A patched manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestPatch {
    /// The whole new file.
    pub text: String,
    /// Whether `text` differs from the input.
    pub changed: bool,
    /// What was done, for the plan's output.
    pub notes: Vec<String>,
}

/// A host directory the API server must see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeMount {
    /// Volume name (a DNS-1123 label), used for both the volume and the mount.
    pub name: String,
    /// Directory on the node.
    pub host_path: String,
    /// Where the container sees it.
    pub mount_path: String,
}

/// Where the API server answers `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiEndpoint {
    /// `https` (or `http` when the probes say so).
    pub scheme: String,
    /// Host or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl ApiEndpoint {
    /// The URL of `path` (e.g. `/readyz`), with IPv6 hosts in brackets.
    pub fn url(&self, path: &str) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("{}://{host}:{}{path}", self.scheme, self.port)
    }
}

fn refuse(reason: impl Into<String>, fix: impl Into<String>) -> PlanError {
    PlanError::patch(WHAT, reason.into().replace(['\n', '\r'], " "), fix)
}

fn internal(reason: impl Into<String>) -> PlanError {
    refuse(
        format!("self-check failed: {}", reason.into()),
        "the file is left unchanged; please report this with the manifest",
    )
}

/// `--name=value` split into the name without dashes and the value.
fn split_flag(item: &str) -> Option<(&str, Option<&str>)> {
    let body = item.strip_prefix('-')?.trim_start_matches('-');
    Some(match body.split_once('=') {
        Some((name, value)) => (name, Some(value)),
        None => (body, None),
    })
}

fn managed(item: &str) -> bool {
    split_flag(item).is_some_and(|(name, _)| is_managed_flag(name))
}

/// A `command` or `args` list of the container.
struct FlagList {
    key: Key,
    items: Vec<Item>,
    values: Vec<String>,
    /// Items before the first flag (the program, or `/hyperkube apiserver`).
    skip: usize,
}

/// What [`analyze`] learns about a manifest.
struct Doc {
    lines: Vec<Line>,
    docs: Vec<Value>,
    pod: usize,
    container_index: usize,
    spec: Block,
    container: Block,
    lists: Vec<FlagList>,
    mirror: Option<String>,
}

impl Doc {
    fn pod(&self) -> &Value {
        &self.docs[self.pod]
    }

    fn container(&self) -> &Value {
        &self.pod()["spec"]["containers"][self.container_index]
    }

    /// Every item after the program, in order: (list, item).
    fn flag_items(&self) -> impl Iterator<Item = (usize, usize, &str)> + '_ {
        self.lists.iter().enumerate().flat_map(|(li, l)| {
            l.values
                .iter()
                .enumerate()
                .skip(l.skip)
                .map(move |(ii, v)| (li, ii, v.as_str()))
        })
    }

    fn managed_flags(&self) -> Vec<String> {
        self.flag_items()
            .filter(|(_, _, v)| managed(v))
            .map(|(_, _, v)| v.to_string())
            .collect()
    }

    fn refuse_mirror(&self) -> Result<(), PlanError> {
        match &self.mirror {
            Some(why) => Err(refuse(
                format!("it is a `kubectl get pod -o yaml` dump of the mirror pod ({why}), not the file kubelet runs"),
                "patch /etc/kubernetes/manifests/kube-apiserver.yaml on the control-plane node instead",
            )),
            None => Ok(()),
        }
    }
}

fn kind_of(v: &Value) -> &str {
    v.get("kind").and_then(Value::as_str).unwrap_or("none")
}

fn mirror_reason(pod: &Value) -> Option<String> {
    let meta = pod.get("metadata");
    let annotations = meta.and_then(|m| m.get("annotations"));
    if annotations
        .and_then(|a| a.get("kubernetes.io/config.mirror"))
        .is_some()
    {
        return Some("annotation `kubernetes.io/config.mirror`".into());
    }
    for key in ["ownerReferences", "uid", "resourceVersion"] {
        if meta.and_then(|m| m.get(key)).is_some() {
            return Some(format!("`metadata.{key}`"));
        }
    }
    match pod.get("status") {
        Some(Value::Mapping(m)) if !m.is_empty() => Some("a filled-in `status`".into()),
        _ => None,
    }
}

/// The strings of `command` or `args` (`None` when absent).
fn strings(v: Option<&Value>, name: &str) -> Result<Option<Vec<String>>, PlanError> {
    match v {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(Vec::new())),
        Some(Value::Sequence(seq)) => seq
            .iter()
            .enumerate()
            .map(|(i, item)| {
                item.as_str().map(str::to_string).ok_or_else(|| {
                    refuse(
                        format!("item {} of `{name}` is not a string", i + 1),
                        "quote it; kubelet rejects the pod as it is",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(refuse(format!("`{name}` is not a list"), FIX_HAND)),
    }
}

/// How many leading command items are the program, or why this is not kube-apiserver.
fn runner(command: Option<&[String]>) -> Result<usize, PlanError> {
    let Some(command) = command.filter(|c| !c.is_empty()) else {
        return Err(refuse(
            "the kube-apiserver container has no `command`, so the image's entrypoint decides what runs",
            "add `command:` with `- kube-apiserver` above the flags",
        ));
    };
    let base = |s: &str| s.rsplit('/').next().unwrap_or_default().to_string();
    match base(&command[0]).as_str() {
        "kube-apiserver" => Ok(1),
        "hyperkube"
            if matches!(
                command.get(1).map(String::as_str),
                Some("apiserver" | "kube-apiserver")
            ) =>
        {
            Ok(2)
        }
        "sh" | "bash" | "ash" | "dash" | "zsh" | "busybox" => Err(refuse(
            format!(
                "its flags are inside a shell command string (`{} -c`)",
                command[0]
            ),
            FIX_HAND,
        )),
        _ => Err(refuse(
            format!("its command `{}` does not run kube-apiserver", command[0]),
            FIX_FILE,
        )),
    }
}

fn parse_all(text: &str) -> Result<Vec<Value>, PlanError> {
    use serde::Deserialize;
    let mut docs = Vec::new();
    for de in serde_yaml_ng::Deserializer::from_str(text) {
        let v = Value::deserialize(de).map_err(|e| {
            refuse(
                format!("it is not valid YAML ({e})"),
                "fix the file first: kubelet cannot read it either",
            )
        })?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

fn need_key(lines: &[Line], b: &Block, key: &str) -> Result<Key, PlanError> {
    text::find_key_in(lines, b, key)
        .map_err(|e| refuse(e, FIX_HAND))?
        .ok_or_else(|| {
            refuse(
                format!("`{key}:` was not found where YAML puts it (unusual layout)"),
                FIX_HAND,
            )
        })
}

fn analyze(text: &str) -> Result<Doc, PlanError> {
    if text.starts_with('\u{feff}') {
        return Err(refuse(
            "it starts with a byte-order mark",
            "save the file as UTF-8 without a BOM",
        ));
    }
    if text.contains(['\u{85}', '\u{2028}', '\u{2029}']) || text.replace("\r\n", "").contains('\r')
    {
        return Err(refuse(
            "it has line breaks other than LF and CRLF",
            "convert the file to LF or CRLF line endings",
        ));
    }
    let docs = parse_all(text)?;
    let lines = text::split(text);
    let ranges = text::documents_strict(&lines).map_err(|e| refuse(e, FIX_HAND))?;
    let values = text::parse_documents(&lines, ranges.clone()).map_err(|e| {
        refuse(
            format!("a document does not parse on its own ({})", e.message),
            FIX_HAND,
        )
    })?;
    let seg_docs: Vec<_> = ranges
        .into_iter()
        .zip(values)
        .filter(|(_, v)| !v.is_null())
        .collect();
    if seg_docs.len() != docs.len() || seg_docs.iter().zip(&docs).any(|((_, a), b)| a != b) {
        return Err(refuse(
            "its documents could not be told apart line by line",
            FIX_HAND,
        ));
    }
    let mut found = Vec::new();
    for (d, doc) in docs.iter().enumerate().filter(|(_, v)| kind_of(v) == "Pod") {
        let Some(containers) = doc["spec"]["containers"].as_sequence() else {
            return Err(refuse("the Pod has no `spec.containers` list", FIX_FILE));
        };
        for (c, container) in containers.iter().enumerate() {
            if container.get("name").and_then(Value::as_str) == Some(CONTAINER) {
                found.push((d, c));
            }
        }
    }
    let (pod, container_index) = match found[..] {
        [one] => one,
        [] if !docs.iter().any(|v| kind_of(v) == "Pod") => {
            let kinds: Vec<&str> = docs.iter().map(kind_of).collect();
            if kinds.is_empty() {
                return Err(refuse("it is empty", FIX_FILE));
            }
            return Err(refuse(
                format!("it is not a Pod (kind: {})", kinds.join(", ")),
                FIX_FILE,
            ));
        }
        [] => {
            return Err(refuse(
                format!("no container is named `{CONTAINER}`"),
                FIX_FILE,
            ))
        }
        _ => {
            return Err(refuse(
                format!("several containers are named `{CONTAINER}`"),
                FIX_FILE,
            ))
        }
    };
    let seg = seg_docs[pod].0.clone();
    let container_v = &docs[pod]["spec"]["containers"][container_index];
    if container_v.get("<<").is_some() {
        return Err(refuse(
            "the container uses a YAML merge key (`<<`)",
            FIX_HAND,
        ));
    }
    let command = strings(container_v.get("command"), "command")?;
    let args = strings(container_v.get("args"), "args")?;
    let skip = runner(command.as_deref())?;

    let top = Block {
        start: seg.start,
        end: seg.end,
        col: 0,
        dash_first: false,
    };
    let spec_key = need_key(&lines, &top, "spec")?;
    let spec = text::child_block(&lines, &spec_key)
        .ok_or_else(|| refuse("`spec:` is not a block mapping", FIX_HAND))?;
    let containers_key = need_key(&lines, &spec, "containers")?;
    let citems = text::items(&lines, &containers_key).map_err(|e| refuse(e, FIX_HAND))?;
    let count = docs[pod]["spec"]["containers"]
        .as_sequence()
        .map_or(0, Vec::len);
    if !containers_key.inline.is_empty() || citems.len() != count {
        return Err(refuse("`containers` is not a plain block list", FIX_HAND));
    }
    let container = citems[container_index]
        .block()
        .ok_or_else(|| refuse("the container's first line holds no key", FIX_HAND))?;

    let mut lists = Vec::new();
    for (name, values, skip) in [("command", command, skip), ("args", args, 0)] {
        let Some(values) = values else { continue };
        let key = need_key(&lines, &container, name)?;
        if !key.inline.is_empty() {
            return Err(refuse(
                format!("`{name}` is written inline (`{}`)", key.inline),
                FIX_HAND,
            ));
        }
        let items = text::items(&lines, &key).map_err(|e| refuse(e, FIX_HAND))?;
        if items.len() != values.len() {
            return Err(refuse(
                format!("the items of `{name}` could not be matched to lines"),
                FIX_HAND,
            ));
        }
        if let Some(i) = items
            .iter()
            .position(|it| it.start != it.last || it.col.is_none())
        {
            return Err(refuse(
                format!("item {} of `{name}` spans several lines", i + 1),
                FIX_HAND,
            ));
        }
        lists.push(FlagList {
            key,
            items,
            values,
            skip,
        });
    }
    let doc = Doc {
        lines,
        mirror: mirror_reason(&docs[pod]),
        docs,
        pod,
        container_index,
        spec,
        container,
        lists,
    };
    for (_, _, v) in doc.flag_items() {
        let hidden = v.contains(" --oidc-") || v.contains(" --authentication-config");
        if hidden
            || (!v.starts_with('-')
                && (v.contains("--oidc-") || v.contains("--authentication-config")))
        {
            return Err(refuse(
                format!("item `{v}` holds several flags in one string"),
                FIX_HAND,
            ));
        }
    }
    Ok(doc)
}

/// The kube-apiserver container's flags, in order, names without the leading `--`. A value
/// given as the next item (`--flag`, `value`) is joined to its flag. Works on mirror-pod
/// dumps too (read only).
pub fn current_flags(text: &str) -> Result<Vec<(String, Option<String>)>, PlanError> {
    let doc = analyze(text)?;
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for (_, _, item) in doc.flag_items() {
        match split_flag(item) {
            Some((name, value)) => out.push((name.to_string(), value.map(str::to_string))),
            None => match out.last_mut() {
                Some((_, value @ None)) => *value = Some(item.to_string()),
                _ => out.push((item.to_string(), None)),
            },
        }
    }
    Ok(out)
}

/// Where `/readyz` is: host from `--advertise-address`, else the probes' host, else a
/// specific `--bind-address`, else 127.0.0.1; port from `--secure-port`, else the probes'
/// port, else 6443; scheme from the probes, else https. Never fails (defaults).
pub fn api_endpoint(text: &str) -> ApiEndpoint {
    let flags = current_flags(text).unwrap_or_default();
    let flag = |name: &str| {
        flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let probe = parse_all(text).ok().and_then(|docs| {
        docs.iter().filter(|d| kind_of(d) == "Pod").find_map(|pod| {
            let c = pod["spec"]["containers"]
                .as_sequence()?
                .iter()
                .find(|c| c.get("name").and_then(Value::as_str) == Some(CONTAINER))?;
            ["readinessProbe", "livenessProbe", "startupProbe"]
                .iter()
                .find_map(|p| c.get(p)?.get("httpGet").cloned())
        })
    });
    let probe_str = |k: &str| {
        probe
            .as_ref()
            .and_then(|p| p.get(k)?.as_str().map(str::to_string))
    };
    let host = flag("advertise-address")
        .or_else(|| probe_str("host"))
        .or_else(|| flag("bind-address").filter(|b| b != "0.0.0.0" && b != "::"))
        .unwrap_or_else(|| "127.0.0.1".into());
    let port = flag("secure-port")
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p != 0)
        .or_else(|| {
            probe
                .as_ref()
                .and_then(|p| p.get("port")?.as_u64()?.try_into().ok())
        })
        .filter(|p| *p != 0)
        .unwrap_or(6443);
    let scheme = probe_str("scheme")
        .map(|s| s.to_ascii_lowercase())
        .filter(|s| s == "http" || s == "https")
        .unwrap_or_else(|| "https".into());
    ApiEndpoint { scheme, host, port }
}

/// Makes the kube-apiserver container carry exactly `args` among the managed flags (replacing,
/// never duplicating, existing `--oidc-*`/`--authentication-config`) and, when `mount` is
/// given, a read-only `hostPath` mount of that directory (unless an existing mount already
/// shows it at the same path). See the module docs for what is refused.
pub fn patch_manifest(
    text: &str,
    args: &[Arg],
    mount: Option<&NodeMount>,
) -> Result<ManifestPatch, PlanError> {
    edit::check_request(args, mount)?;
    let doc = analyze(text)?;
    doc.refuse_mirror()?;
    let mut edits = text::Edits::default();
    let mut notes = edit::flags(&doc, args, &mut edits)?;
    if doc.lists.first().is_some_and(|l| l.skip == 2) {
        notes.push("this manifest runs kube-apiserver through hyperkube (Kubernetes 1.17 or older): check that this version knows every flag set".into());
    }
    let mut expect = edit::Expect::Nothing;
    if let Some(m) = mount {
        let (ours, note) = edit::mount(&doc, m, &mut edits)?;
        notes.extend(note);
        if ours {
            expect = edit::Expect::Mounted(m);
        }
    }
    let out = edits.apply(&doc.lines, text);
    let want: Vec<String> = args.iter().map(Arg::flag).collect();
    edit::verify(&doc, &out, &want, expect)?;
    Ok(ManifestPatch {
        changed: out != text,
        text: out,
        notes,
    })
}

/// Removes every managed flag and the volume and mount named `mount_name` (for `--remove`).
pub fn remove_oidc(text: &str, mount_name: &str) -> Result<ManifestPatch, PlanError> {
    let doc = analyze(text)?;
    doc.refuse_mirror()?;
    let mut edits = text::Edits::default();
    let mut notes = edit::flags(&doc, &[], &mut edits)?;
    notes.extend(edit::unmount(&doc, mount_name, &mut edits)?);
    let out = edits.apply(&doc.lines, text);
    edit::verify(&doc, &out, &[], edit::Expect::Unmounted(mount_name))?;
    Ok(ManifestPatch {
        changed: out != text,
        text: out,
        notes,
    })
}

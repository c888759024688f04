//! Property tests of every pure patcher, through the public API only (issue 5, "Reliability
//! under load and bad input"). Each patcher gets the same three properties:
//!
//! - `valid`: a real fixture from `tests/data/fixtures/<kind>/`, changed in ways that keep it valid
//!   (CRLF endings, comment lines, trailing comments, extra keys or flags, other values,
//!   indentation), and random settings that `OidcSettings::validate` accepts. The patch either
//!   succeeds or is refused; when the unchanged fixture patches and the change kept the
//!   document's meaning, it must succeed too. A success must parse, carry exactly our values,
//!   keep every line that is not ours (in order, byte for byte) and all non-OIDC content (the
//!   parsed documents with the OIDC-owned keys removed), and patching again changes nothing.
//!   Where the patcher can remove, removing gives back the input's non-OIDC content, none of
//!   ours, and removing again changes nothing.
//! - `garbage`: arbitrary text, arbitrary bytes (lossy UTF-8), truncated fixtures, fixtures with
//!   lines deleted or duplicated, fixtures with garbage spliced in: an error, or a valid patch
//!   as above. Never a panic.
//!
//! Cases per property: 64, 32 for the slow large-file patchers (capi, kubespray); `PROPTEST_CASES`
//! overrides (docs/reliability.md). About 16 s of CPU in debug for the whole file. Module-level
//! proptests (manifest, k3s, microk8s, kops YAML) test value quoting in depth; these test every
//! patcher the same way.

use std::path::PathBuf;
use std::sync::OnceLock;

use backends::apiserver::{self, is_managed_flag, Arg};
use backends::manifest::NodeMount;
use backends::{
    capi, k3s, kops, kubeadm, kubeconfig, kubespray, manifest, microk8s, CaBundle, Distribution,
    Mode, OidcSettings, PlanError, SettingsInput,
};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_yaml_ng::{Mapping, Value};

// ---------------------------------------------------------------- fixtures

/// The repository's `tests/data/fixtures` (origins in its SOURCES).
fn fixtures_root() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/fixtures"))
}

/// The fixtures of one folder, sorted by name, with extensions from `exts`.
fn fixtures(dir: &str, exts: &[&str]) -> Vec<(String, String)> {
    let path = fixtures_root().join(dir);
    let mut out: Vec<(String, String)> = std::fs::read_dir(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| exts.iter().any(|x| p.to_string_lossy().ends_with(x)))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap();
            (name, text)
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no fixtures in {}", path.display());
    out
}

// ---------------------------------------------------------------- settings

const PEM: &str =
    "-----BEGIN CERTIFICATE-----\nMIIBdummyPropertyTestCA\n-----END CERTIFICATE-----\n";

/// Text with the characters YAML, shells and args files care about, and some non-ASCII.
fn value_text(max: usize) -> BoxedStrategy<String> {
    prop_oneof![
        proptest::string::string_regex(&format!("[a-zA-Z0-9._-]{{1,{max}}}")).unwrap(),
        proptest::string::string_regex(&format!("[ -~]{{0,{max}}}")).unwrap(),
        proptest::string::string_regex(&format!(
            "[-:#@=!&*|>%{{}}\\[\\],$\\\\ a-z\u{e9}\u{4e2d}\u{1f600}]{{1,{max}}}"
        ))
        .unwrap(),
    ]
    .boxed()
}

/// Random settings that validate (the rejected ones are skipped).
fn settings() -> impl Strategy<Value = OidcSettings> {
    let issuer = (
        "[a-z]{1,8}(\\.[a-z]{2,5}){1,2}",
        proptest::option::of(1024u16..65535),
        "(/[a-zA-Z0-9._~:@!$&'()*+,;=-]{1,8}){0,2}/?",
    )
        .prop_map(|(host, port, path)| match port {
            Some(p) => format!("https://{host}:{p}{path}"),
            None => format!("https://{host}{path}"),
        });
    let prefix = proptest::option::of(prop_oneof![
        Just("-".to_string()),
        Just("oidc:".to_string()),
        Just(String::new()),
        "[!#-&(-~\u{e9}]{1,10}",
    ]);
    let claim = prop_oneof![
        Just("sub".to_string()),
        Just("email".to_string()),
        "[a-z_:#@=.,-]{1,12}"
    ];
    let required = proptest::collection::vec(("[a-z_]{1,6}", value_text(12)), 0..3);
    (
        (issuer, "[!-~]{1,16}", proptest::option::of(claim.clone())),
        (prefix.clone(), proptest::option::of(claim), prefix),
        (
            proptest::option::of(proptest::sample::select(vec![
                "RS256",
                "RS256,ES256",
                "PS512",
            ])),
            required,
            proptest::sample::select(vec![None, Some("flags"), Some("config"), Some("auto")]),
            proptest::sample::select(vec![None, Some("1.29"), Some("1.30"), Some("1.34")]),
            any::<bool>(),
        ),
    )
        .prop_filter_map(
            "settings that validate",
            |((issuer, client, uclaim), (uprefix, gclaim, gprefix), (algs, req, mode, ver, ca))| {
                let input = SettingsInput {
                    issuer_url: Some(issuer),
                    client_id: Some(client),
                    username_claim: uclaim,
                    username_prefix: uprefix,
                    groups_prefix: gprefix.filter(|_| gclaim.is_some()),
                    groups_claim: gclaim,
                    signing_algs: algs.map(str::to_string),
                    required_claim: req
                        .iter()
                        .enumerate()
                        .map(|(i, (k, v))| format!("c{i}{k}={v}"))
                        .collect(),
                    auth_mode: mode.map(str::to_string),
                    kubernetes_version: ver.map(str::to_string),
                    ..SettingsInput::default()
                };
                let ca = ca.then(|| CaBundle {
                    local_path: "/home/me/idp-ca.pem".into(),
                    pem: PEM.into(),
                });
                OidcSettings::validate(&input, ca).ok()
            },
        )
}

fn mode(s: &OidcSettings) -> Mode {
    s.mode().expect("validated settings have a mode")
}

// ---------------------------------------------------------------- YAML helpers

fn parse_all(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for d in serde_yaml_ng::Deserializer::from_str(text) {
        out.push(
            serde::Deserialize::deserialize(d).map_err(|e: serde_yaml_ng::Error| e.to_string())?,
        );
    }
    Ok(out)
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

/// The mapping at `path` (creating nothing).
fn at_mut<'a>(v: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    let mut cur = v;
    for k in path {
        cur = cur.as_mapping_mut()?.get_mut(*k)?;
    }
    Some(cur)
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut cur = v;
    for k in path {
        cur = cur.as_mapping()?.get(*k)?;
    }
    Some(cur)
}

/// Removes the sequence items of `v[path]` matching `drop`.
fn drop_items(v: &mut Value, path: &[&str], drop: impl Fn(&Value) -> bool) {
    if let Some(Value::Sequence(items)) = at_mut(v, path) {
        items.retain(|i| !drop(i));
    }
}

/// Removes `v[path]` and then each parent along `path` that is left empty (or null).
fn prune(v: &mut Value, path: &[&str]) {
    for n in (1..=path.len()).rev() {
        let (parent, key) = (&path[..n - 1], path[n - 1]);
        let Some(Value::Mapping(m)) = at_mut(v, parent) else {
            continue;
        };
        let empty = match m.get(key) {
            None => continue,
            Some(Value::Mapping(x)) => x.is_empty(),
            Some(Value::Sequence(x)) => x.is_empty(),
            Some(Value::Null) => true,
            _ => false,
        };
        if !empty {
            return;
        }
        m.remove(key);
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn managed_entry(entry: &str) -> bool {
    let e = entry.trim_start_matches('-');
    is_managed_flag(e.split_once('=').map_or(e, |(n, _)| n))
}

/// `extraArgs` as (name, value) pairs, from a map or a `{name, value}` list.
fn extra_args(v: Option<&Value>) -> Result<Vec<(String, String)>, String> {
    // A value left empty (`cloud-provider:`) is null in YAML; kubeadm (Go, map[string]string)
    // reads it as the empty string, and so does this check.
    let text = |v: &Value| match v {
        Value::Null => Ok(String::new()),
        _ => v
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("value {v:?} is not a string")),
    };
    match v {
        None | Some(Value::Null) => Ok(vec![]),
        Some(Value::Mapping(m)) => m.iter().map(|(k, v)| Ok((text(k)?, text(v)?))).collect(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|i| Ok((text(&i["name"])?, text(&i["value"])?)))
            .collect(),
        Some(other) => Err(format!("extraArgs is {other:?}")),
    }
}

/// Drops our entries from a map- or list-form `extraArgs` at `path`.
fn strip_extra_args(v: &mut Value, path: &[&str]) {
    match at_mut(v, path) {
        Some(Value::Mapping(m)) => m.retain(|k, _| !k.as_str().is_some_and(is_managed_flag)),
        Some(Value::Sequence(items)) => {
            items.retain(|i| !str_of(i, "name").is_some_and(is_managed_flag))
        }
        _ => {}
    }
    prune(v, path);
}

fn pairs(args: &[Arg]) -> Vec<(String, String)> {
    args.iter()
        .map(|a| (a.name.clone(), a.value.clone()))
        .collect()
}

fn ours_pairs(v: Vec<(String, String)>) -> Vec<(String, String)> {
    v.into_iter().filter(|(n, _)| is_managed_flag(n)).collect()
}

// ---------------------------------------------------------------- the patchers

type Patched = Result<Option<String>, PlanError>;

/// One pure patcher, seen uniformly.
trait Patcher {
    /// Fixture folder and file name endings.
    const DIR: &'static str;
    const EXTS: &'static [&'static str] = &[".yaml", ".yml"];
    /// Whether the file is YAML (else a MicroK8s args file).
    const YAML: bool = true;
    /// Whether every line that is not ours must survive byte for byte.
    const TEXT_MINIMAL: bool = true;

    /// Patches; `None` when nothing changes.
    fn patch(&self, text: &str, s: &OidcSettings) -> Patched;
    /// Removes; `None` when this patcher cannot remove.
    fn remove(&self, _text: &str) -> Option<Patched> {
        None
    }
    /// Takes the OIDC-owned content out of the parsed documents.
    fn strip(&self, docs: &mut [Value], text: &str);
    /// Checks the file carries exactly `s` (or, with `None`, nothing of ours).
    fn read_back(&self, out: &str, s: Option<&OidcSettings>) -> Result<(), String>;
    /// Whether this line may be ours (may be changed or dropped).
    fn ours(&self, line: &str) -> bool {
        // An empty flow collection (`apiServer: {}`) becomes a block when we add to it.
        let l = line.trim().to_ascii_lowercase();
        l.contains("oidc")
            || l.contains("authentication-config")
            || l.ends_with("{}")
            || l.ends_with("[]")
    }
}

// -- static-pod manifest

const MANIFEST_DIR: &str = "/etc/kubernetes/oidc";

struct ManifestP;

fn manifest_mount(s: &OidcSettings) -> Option<NodeMount> {
    (!apiserver::node_files(s, mode(s), MANIFEST_DIR).is_empty()).then(|| NodeMount {
        name: "oidc".into(),
        host_path: MANIFEST_DIR.into(),
        mount_path: MANIFEST_DIR.into(),
    })
}

fn apiserver_container(doc: &Value) -> Option<&Value> {
    doc["spec"]["containers"]
        .as_sequence()?
        .iter()
        .find(|c| str_of(c, "name") == Some(manifest::CONTAINER))
}

impl Patcher for ManifestP {
    const DIR: &'static str = "apiserver-manifests";

    fn patch(&self, text: &str, s: &OidcSettings) -> Patched {
        let args = apiserver::args(s, mode(s), MANIFEST_DIR);
        let p = manifest::patch_manifest(text, &args, manifest_mount(s).as_ref())?;
        Ok(p.changed.then_some(p.text))
    }
    fn remove(&self, text: &str) -> Option<Patched> {
        Some(manifest::remove_oidc(text, "oidc").map(|p| p.changed.then_some(p.text)))
    }
    fn strip(&self, docs: &mut [Value], _text: &str) {
        for doc in docs {
            drop_items(doc, &["spec", "volumes"], |v| {
                str_of(v, "name") == Some("oidc")
            });
            prune(doc, &["spec", "volumes"]);
            if let Some(Value::Sequence(cs)) = at_mut(doc, &["spec", "containers"]) {
                for c in cs {
                    if str_of(c, "name") != Some(manifest::CONTAINER) {
                        continue;
                    }
                    for key in ["command", "args"] {
                        drop_items(c, &[key], |i| i.as_str().is_some_and(managed_entry));
                    }
                    drop_items(c, &["volumeMounts"], |v| str_of(v, "name") == Some("oidc"));
                    prune(c, &["volumeMounts"]);
                }
            }
        }
    }
    fn read_back(&self, out: &str, s: Option<&OidcSettings>) -> Result<(), String> {
        // The patcher keeps an alphabetical flag list alphabetical: compare as multisets.
        let mut want: Vec<(String, Option<String>)> = s
            .map(|s| apiserver::args(s, mode(s), MANIFEST_DIR))
            .unwrap_or_default()
            .into_iter()
            .map(|a| (a.name, Some(a.value)))
            .collect();
        let mut got: Vec<(String, Option<String>)> = manifest::current_flags(out)
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|(n, _)| is_managed_flag(n))
            .collect();
        want.sort();
        got.sort();
        if got != want {
            return Err(format!("flags {got:?}, want {want:?}"));
        }
        let docs = parse_all(out)?;
        let pod = docs
            .iter()
            .find(|d| str_of(d, "kind") == Some("Pod"))
            .ok_or("no Pod")?;
        let c = apiserver_container(pod).ok_or("no kube-apiserver container")?;
        for key in ["command", "args"] {
            for item in c
                .get(key)
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
            {
                if !item.is_string() {
                    return Err(format!("{key} item {item:?} is not a string"));
                }
            }
        }
        if let Some(m) = s.and_then(manifest_mount) {
            let mounts = c.get("volumeMounts").and_then(Value::as_sequence);
            let shown = mounts.into_iter().flatten().any(|v| {
                str_of(v, "mountPath").is_some_and(|p| {
                    let p = p.trim_end_matches('/');
                    m.mount_path == p || m.mount_path.starts_with(&format!("{p}/"))
                })
            });
            if !shown {
                return Err(format!("{} is not mounted", m.mount_path));
            }
        }
        Ok(())
    }
    fn ours(&self, line: &str) -> bool {
        // Our volume entry is several lines, of which only some name `oidc`.
        let t = line.trim();
        t.contains("oidc")
            || t.contains("authentication-config")
            || ["hostPath:", "type: DirectoryOrCreate", "readOnly: true"]
                .iter()
                .any(|k| t.trim_start_matches("- ") == *k)
    }
}

// -- MicroK8s args file

struct Microk8sP;

impl Patcher for Microk8sP {
    const DIR: &'static str = "microk8s-args";
    const EXTS: &'static [&'static str] = &[".args"];
    const YAML: bool = false;

    fn patch(&self, text: &str, s: &OidcSettings) -> Patched {
        microk8s::patch_args(text, s, false)
    }
    fn remove(&self, text: &str) -> Option<Patched> {
        let s = fixed_settings();
        Some(microk8s::patch_args(text, &s, true))
    }
    fn strip(&self, _docs: &mut [Value], _text: &str) {}
    fn read_back(&self, out: &str, s: Option<&OidcSettings>) -> Result<(), String> {
        let want = match s {
            Some(s) => microk8s::flag_lines(s).map_err(|e| e.to_string())?,
            None => vec![],
        };
        // As MicroK8s reads it: trimmed lines, no comments, first word is the flag.
        let got: Vec<String> = out
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter(|l| managed_entry(l.split(' ').next().unwrap_or_default()))
            .map(str::to_string)
            .collect();
        if got != want {
            return Err(format!("lines {got:?}, want {want:?}"));
        }
        Ok(())
    }
    fn ours(&self, line: &str) -> bool {
        let t = line.trim();
        !t.starts_with('#') && managed_entry(t.split(' ').next().unwrap_or_default())
    }
}

// -- k3s / RKE2 config

struct K3sP(Distribution);

const K3S_ARG: &str = "kube-apiserver-arg";
const RKE2_MOUNT: &str = "kube-apiserver-extra-mount";

impl Patcher for K3sP {
    const DIR: &'static str = "k3s-config";

    fn patch(&self, text: &str, s: &OidcSettings) -> Patched {
        k3s::patch_config(text, s, self.0, false)
    }
    fn remove(&self, text: &str) -> Option<Patched> {
        Some(k3s::patch_config(text, &fixed_settings(), self.0, true))
    }
    fn strip(&self, docs: &mut [Value], _text: &str) {
        let mount = k3s::extra_mount(self.0).unwrap();
        for doc in docs {
            for key in [K3S_ARG, "kube-apiserver-arg+"] {
                drop_items(doc, &[key], |i| i.as_str().is_some_and(managed_entry));
                prune(doc, &[key]);
            }
            if let Some(m) = &mount {
                drop_items(doc, &[RKE2_MOUNT], |i| i.as_str() == Some(m.as_str()));
                prune(doc, &[RKE2_MOUNT]);
            }
        }
    }
    fn read_back(&self, out: &str, s: Option<&OidcSettings>) -> Result<(), String> {
        let want = match s {
            Some(s) => k3s::apiserver_entries(s, self.0).map_err(|e| e.to_string())?,
            None => vec![],
        };
        let doc = parse_all(out)?.pop().unwrap_or(Value::Null);
        let list = |key: &str| -> Result<Vec<String>, String> {
            doc.get(key)
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .map(|i| {
                    i.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("{key} item {i:?} is not a string"))
                })
                .collect()
        };
        let got: Vec<String> = list(K3S_ARG)?
            .into_iter()
            .chain(list("kube-apiserver-arg+")?)
            .filter(|e| managed_entry(e))
            .collect();
        if got != want {
            return Err(format!("{K3S_ARG} {got:?}, want {want:?}"));
        }
        if let (Some(s), Some(m)) = (s, k3s::extra_mount(self.0).unwrap()) {
            let needs =
                !apiserver::node_files(s, mode(s), &k3s::node_dir(self.0).unwrap()).is_empty();
            let has = list(RKE2_MOUNT)?.contains(&m);
            if needs != has {
                return Err(format!(
                    "{RKE2_MOUNT} holds {m}: {has}, files needed: {needs}"
                ));
            }
        }
        Ok(())
    }
}

// -- kubeadm config

struct KubeadmP;

fn is_cc(v: &Value) -> bool {
    str_of(v, "kind") == Some("ClusterConfiguration")
        && str_of(v, "apiVersion").is_some_and(|a| a.starts_with("kubeadm.k8s.io/"))
}

impl Patcher for KubeadmP {
    const DIR: &'static str = "kubeadm-config";

    fn patch(&self, text: &str, s: &OidcSettings) -> Patched {
        kubeadm::patch_cluster_configuration(text, s, false)
    }
    fn remove(&self, text: &str) -> Option<Patched> {
        Some(kubeadm::patch_cluster_configuration(
            text,
            &fixed_settings(),
            true,
        ))
    }
    fn strip(&self, docs: &mut [Value], _text: &str) {
        for doc in docs.iter_mut().filter(|d| is_cc(d)) {
            strip_extra_args(doc, &["apiServer", "extraArgs"]);
            drop_items(doc, &["apiServer", "extraVolumes"], |v| {
                str_of(v, "name") == Some(kubeadm::VOLUME_NAME)
            });
            prune(doc, &["apiServer", "extraVolumes"]);
        }
    }
    fn read_back(&self, out: &str, s: Option<&OidcSettings>) -> Result<(), String> {
        let docs = parse_all(out)?;
        let cc = docs
            .iter()
            .find(|d| is_cc(d))
            .ok_or("no ClusterConfiguration")?;
        let mut want = s
            .map(|s| pairs(&apiserver::args(s, mode(s), kubeadm::NODE_DIR)))
            .unwrap_or_default();
        let mut got = ours_pairs(extra_args(at(cc, &["apiServer", "extraArgs"]))?);
        want.sort();
        got.sort();
        if got != want {
            return Err(format!("extraArgs {got:?}, want {want:?}"));
        }
        let needs =
            s.is_some_and(|s| !apiserver::node_files(s, mode(s), kubeadm::NODE_DIR).is_empty());
        let has = at(cc, &["apiServer", "extraVolumes"])
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .any(|v| str_of(v, "name") == Some(kubeadm::VOLUME_NAME));
        if needs != has {
            return Err(format!("oidc volume: {has}, files needed: {needs}"));
        }
        Ok(())
    }
}

// -- kops Cluster spec (re-serialises the Cluster document: not text-minimal)

struct KopsP;

fn is_kops_cluster(v: &Value) -> bool {
    str_of(v, "kind") == Some("Cluster")
}

impl Patcher for KopsP {
    const DIR: &'static str = "kops-cluster";
    const TEXT_MINIMAL: bool = false;

    fn patch(&self, text: &str, s: &OidcSettings) -> Patched {
        let out = kops::merge_cluster_spec(text, s)?;
        Ok((out != text).then_some(out))
    }
    fn strip(&self, docs: &mut [Value], _text: &str) {
        for doc in docs.iter_mut().filter(|d| is_kops_cluster(d)) {
            if let Some(Value::Mapping(m)) = at_mut(doc, &["spec", "kubeAPIServer"]) {
                for f in kops::MANAGED_FIELDS {
                    m.remove(f);
                }
            }
            prune(doc, &["spec", "kubeAPIServer"]);
            drop_items(doc, &["spec", "fileAssets"], |a| {
                matches!(str_of(a, "name"), Some(kops::CA_ASSET | kops::CONFIG_ASSET))
            });
            prune(doc, &["spec", "fileAssets"]);
        }
    }
    fn read_back(&self, out: &str, s: Option<&OidcSettings>) -> Result<(), String> {
        let s = s.expect("kops has no remove");
        let docs = parse_all(out)?;
        let c = docs
            .iter()
            .find(|d| is_kops_cluster(d))
            .ok_or("no Cluster")?;
        let api = at(c, &["spec", "kubeAPIServer"]).ok_or("no spec.kubeAPIServer")?;
        let fields = kops::fields(s, mode(s));
        for name in kops::MANAGED_FIELDS {
            let got = api.get(name);
            let want = fields
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| match v {
                    kops::FieldValue::Text(t) => s_val(t),
                    kops::FieldValue::List(l) => {
                        Value::Sequence(l.iter().map(|x| s_val(x)).collect())
                    }
                });
            if got != want.as_ref() {
                return Err(format!("{name}: {got:?}, want {want:?}"));
            }
        }
        for asset in kops::file_assets(s, mode(s)) {
            let found = at(c, &["spec", "fileAssets"])
                .and_then(Value::as_sequence)
                .into_iter()
                .flatten()
                .any(|a| {
                    str_of(a, "name") == Some(asset.name)
                        && str_of(a, "path") == Some(asset.path.as_str())
                        && str_of(a, "content") == Some(asset.content.as_str())
                });
            if !found {
                return Err(format!("file asset {} missing", asset.name));
            }
        }
        Ok(())
    }
}

fn s_val(t: &str) -> Value {
    s(t)
}

// -- kubeconfig

struct KubeconfigP;

/// The request the property uses: the file's first cluster, else a new one.
fn kubeconfig_request(text: &str) -> kubeconfig::Request {
    let first = parse_all(text).ok().and_then(|d| {
        d.first()?["clusters"]
            .as_sequence()?
            .first()
            .and_then(|c| str_of(c, "name"))
            .filter(|n| !n.is_empty() && !n.chars().any(|c| c.is_whitespace() || c.is_control()))
            .map(str::to_string)
    });
    match first {
        Some(cluster) => kubeconfig::Request {
            cluster,
            server: None,
            cluster_ca: None,
        },
        None => kubeconfig::Request {
            cluster: "prop".into(),
            server: Some("https://127.0.0.1:6443".into()),
            cluster_ca: None,
        },
    }
}

impl Patcher for KubeconfigP {
    const DIR: &'static str = "kubeconfig";

    fn patch(&self, text: &str, s: &OidcSettings) -> Patched {
        let m = kubeconfig::merge(text, s, &kubeconfig_request(text))?;
        Ok((m.text != text).then_some(m.text))
    }
    fn strip(&self, docs: &mut [Value], text: &str) {
        let req = kubeconfig_request(text);
        let name = format!("oidc-{}", req.cluster);
        for doc in docs {
            // An empty file gets these two (the rest of the header is checked line by line).
            if let Value::Mapping(m) = doc {
                m.retain(|k, v| {
                    !matches!(
                        (k.as_str(), v.as_str()),
                        (Some("apiVersion"), Some("v1")) | (Some("kind"), Some("Config"))
                    )
                });
            }
            for key in ["users", "contexts"] {
                drop_items(doc, &[key], |e| str_of(e, "name") == Some(name.as_str()));
                prune(doc, &[key]);
            }
            drop_items(doc, &["clusters"], |e| str_of(e, "name") == Some("prop"));
            prune(doc, &["clusters"]);
        }
    }
    fn read_back(&self, out: &str, s: Option<&OidcSettings>) -> Result<(), String> {
        let s = s.expect("kubeconfig has no remove");
        let req = kubeconfig_request(out);
        let name = format!("oidc-{}", req.cluster);
        let doc = parse_all(out)?.pop().ok_or("empty")?;
        let entry = |key: &str| {
            doc[key]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter(|e| str_of(e, "name") == Some(name.as_str()))
                .collect::<Vec<_>>()
        };
        let users = entry("users");
        if users.len() != 1 || users[0].get("user") != Some(&kubeconfig::user_value(s)) {
            return Err(format!("users named {name}: {users:?}"));
        }
        let ctx = entry("contexts");
        if ctx.len() != 1
            || str_of(&ctx[0]["context"], "cluster") != Some(req.cluster.as_str())
            || str_of(&ctx[0]["context"], "user") != Some(name.as_str())
        {
            return Err(format!("contexts named {name}: {ctx:?}"));
        }
        Ok(())
    }
    fn ours(&self, line: &str) -> bool {
        // Our user entry (exec args, command, apiVersion) spans lines without `oidc`; a new
        // cluster entry too. Lines are kept or replaced per entry, so only compare the rest
        // structurally, and check lines outside `users`/`contexts`/`clusters` items.
        let t = line.trim_start();
        line.starts_with([' ', '-']) || t.starts_with('-') || t.contains("oidc")
    }
}

// -- Cluster API KubeadmControlPlane

struct CapiP;

const CAPI_CC: [&str; 3] = ["spec", "kubeadmConfigSpec", "clusterConfiguration"];

fn is_kcp(v: &Value) -> bool {
    str_of(v, "kind") == Some("KubeadmControlPlane")
}

impl Patcher for CapiP {
    const DIR: &'static str = "capi-kcp";

    fn patch(&self, text: &str, s: &OidcSettings) -> Patched {
        capi::patch_kcp(text, s, false)
    }
    fn remove(&self, text: &str) -> Option<Patched> {
        Some(capi::patch_kcp(text, &fixed_settings(), true))
    }
    fn strip(&self, docs: &mut [Value], _text: &str) {
        for doc in docs.iter_mut().filter(|d| is_kcp(d)) {
            let args = [&CAPI_CC[..], &["apiServer", "extraArgs"]].concat();
            strip_extra_args(doc, &args);
            let vols = [&CAPI_CC[..], &["apiServer", "extraVolumes"]].concat();
            drop_items(doc, &vols, |v| str_of(v, "name") == Some(capi::VOLUME_NAME));
            prune(doc, &vols);
            let files = ["spec", "kubeadmConfigSpec", "files"];
            drop_items(doc, &files, |f| {
                str_of(f, "path").is_some_and(|p| p.starts_with(&format!("{}/", capi::NODE_DIR)))
            });
            prune(doc, &files);
        }
    }
    fn read_back(&self, out: &str, s: Option<&OidcSettings>) -> Result<(), String> {
        let want = s
            .map(|s| pairs(&apiserver::args(s, mode(s), capi::NODE_DIR)))
            .unwrap_or_default();
        let want_files = s
            .map(|s| apiserver::node_files(s, mode(s), capi::NODE_DIR))
            .unwrap_or_default();
        let docs = parse_all(out)?;
        let kcps: Vec<&Value> = docs.iter().filter(|d| is_kcp(d)).collect();
        if kcps.is_empty() {
            return Err("no KubeadmControlPlane".into());
        }
        for kcp in kcps {
            let args = [&CAPI_CC[..], &["apiServer", "extraArgs"]].concat();
            let mut got = ours_pairs(extra_args(at(kcp, &args))?);
            let mut want = want.clone();
            // v1beta1 maps hold each flag once; order is free there.
            got.sort();
            want.sort();
            if got != want {
                return Err(format!("extraArgs {got:?}, want {want:?}"));
            }
            for f in &want_files {
                let found = at(kcp, &["spec", "kubeadmConfigSpec", "files"])
                    .and_then(Value::as_sequence)
                    .into_iter()
                    .flatten()
                    .any(|x| {
                        str_of(x, "path") == Some(f.path.as_str())
                            && str_of(x, "content") == Some(f.content.as_str())
                    });
                if !found {
                    return Err(format!("file {} missing", f.path));
                }
            }
        }
        Ok(())
    }
    fn ours(&self, line: &str) -> bool {
        let t = line.trim();
        // Besides our entries, an empty `extraArgs: {}` / `files: []` becomes a block.
        t.contains("oidc")
            || t.contains("authentication-config")
            || t.ends_with("{}")
            || t.ends_with("[]")
            || [
                "hostPath:",
                "readOnly: true",
                "pathType: DirectoryOrCreate",
                "permissions:",
                "owner:",
            ]
            .iter()
            .any(|k| t.trim_start_matches("- ").starts_with(k))
    }
}

// -- kubespray group_vars

struct KubesprayP;

const KS_EXTRA: &str = "kube_kubeadm_apiserver_extra_args";

impl Patcher for KubesprayP {
    const DIR: &'static str = "kubespray";
    const EXTS: &'static [&'static str] = &[".yml"];

    fn patch(&self, text: &str, s: &OidcSettings) -> Patched {
        kubespray::patch_group_vars(text, s, false)
    }
    fn remove(&self, text: &str) -> Option<Patched> {
        Some(kubespray::patch_group_vars(text, &fixed_settings(), true))
    }
    fn strip(&self, docs: &mut [Value], _text: &str) {
        for doc in docs {
            if let Value::Mapping(m) = doc {
                m.retain(|k, _| !k.as_str().is_some_and(kubespray::is_managed_var));
            }
            if let Some(Value::Mapping(m)) = at_mut(doc, &[KS_EXTRA]) {
                m.retain(|k, _| !k.as_str().is_some_and(is_managed_flag));
            }
            prune(doc, &[KS_EXTRA]);
        }
    }
    fn read_back(&self, out: &str, s: Option<&OidcSettings>) -> Result<(), String> {
        let want: Mapping = match s {
            Some(s) => {
                serde_yaml_ng::from_str(&kubespray::group_vars(s).map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?
            }
            None => Mapping::new(),
        };
        let doc = parse_all(out)?
            .into_iter()
            .find(|d| !d.is_null())
            .unwrap_or(Value::Mapping(Mapping::new()));
        let ours = |m: &Mapping| -> Vec<(Value, Value)> {
            let mut v: Vec<(Value, Value)> = m
                .iter()
                .filter(|(k, _)| k.as_str().is_some_and(kubespray::is_managed_var))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            v.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
            if let Some(Value::Mapping(extra)) = m.get(KS_EXTRA) {
                for (k, val) in extra {
                    if k.as_str().is_some_and(is_managed_flag) {
                        v.push((k.clone(), val.clone()));
                    }
                }
            }
            v
        };
        let got = ours(doc.as_mapping().ok_or("not a mapping")?);
        if got != ours(&want) {
            return Err(format!("variables {got:?}, want {:?}", ours(&want)));
        }
        Ok(())
    }
    fn ours(&self, line: &str) -> bool {
        let t = line.trim();
        // Our variables, the structured-authentication block under them, extra-args entries.
        t.contains("oidc")
            || line.starts_with([' ', '-'])
            || t.starts_with("kube_apiserver_")
            || t.ends_with("{}")
    }
}

/// Settings for `remove` (the patchers ignore them then, apart from validating the mode).
fn fixed_settings() -> OidcSettings {
    OidcSettings::validate(
        &SettingsInput {
            issuer_url: Some("https://idp.example.com".into()),
            client_id: Some("kubernetes".into()),
            username_claim: Some("email".into()),
            username_prefix: Some("oidc:".into()),
            groups_claim: Some("groups".into()),
            groups_prefix: Some("oidc:".into()),
            ..SettingsInput::default()
        },
        None,
    )
    .unwrap()
}

// ---------------------------------------------------------------- mutations

/// A change of a valid file that keeps it valid.
#[derive(Debug, Clone)]
enum Mutation {
    /// Every line ends in CRLF.
    Crlf,
    /// A full-line comment before a line, in that line's indentation.
    Comment(Index, String),
    /// A ` # comment` after a line.
    TrailingComment(Index, String),
    /// An extra `key: value` before a `key:` line, in its indentation (an extra flag line in
    /// an args file).
    ExtraKey(Index, String),
    /// Another plain value for a `key: value` line that is not ours.
    Value(Index, String),
    /// Every line indented by this many more spaces (an args file: one line).
    Indent(Index, usize),
    /// A blank line.
    Blank(Index),
}

impl Mutation {
    /// Whether the change keeps the document's meaning (apart from extra keys).
    fn neutral(&self) -> bool {
        !matches!(self, Mutation::Value(..) | Mutation::Indent(..))
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // No `$`: a `${` anywhere makes a Cluster API file a clusterctl template.
    let comment = "[ -#%-~]{0,20}";
    prop_oneof![
        Just(Mutation::Crlf),
        (any::<Index>(), comment).prop_map(|(i, c)| Mutation::Comment(i, c)),
        (any::<Index>(), comment).prop_map(|(i, c)| Mutation::TrailingComment(i, c)),
        (any::<Index>(), "[a-zA-Z0-9._/-]{1,16}").prop_map(|(i, v)| Mutation::ExtraKey(i, v)),
        (any::<Index>(), "[a-zA-Z][a-zA-Z0-9._/-]{0,15}").prop_map(|(i, v)| Mutation::Value(i, v)),
        (any::<Index>(), 1usize..5).prop_map(|(i, n)| Mutation::Indent(i, n)),
        any::<Index>().prop_map(Mutation::Blank),
    ]
}

fn key_line(line: &str) -> Option<(usize, &str, &str)> {
    let indent = line.len() - line.trim_start_matches(' ').len();
    let body = &line[indent..];
    let colon = body.find(':')?;
    let key = &body[..colon];
    if key.is_empty()
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return None;
    }
    let rest = &body[colon + 1..];
    (rest.is_empty() || rest.starts_with(' ')).then_some((indent, key, rest))
}

/// Applies `m`; `counter` makes extra keys unique.
fn mutate(text: &str, m: &Mutation, yaml: bool, counter: &mut usize) -> String {
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut lines: Vec<String> = text.split_inclusive('\n').map(str::to_string).collect();
    if lines.is_empty() {
        lines.push(String::new());
    }
    let body = |l: &str| l.trim_end_matches(['\n', '\r']).to_string();
    let end = |l: &str| l[body(l).len()..].to_string();
    match m {
        Mutation::Crlf => return text.replace("\r\n", "\n").replace('\n', "\r\n"),
        Mutation::Comment(i, c) => {
            let at = i.index(lines.len());
            let indent = " ".repeat(body(&lines[at]).len() - body(&lines[at]).trim_start().len());
            lines.insert(at, format!("{indent}# {c}{eol}"));
        }
        Mutation::TrailingComment(i, c) => {
            let at = i.index(lines.len());
            let b = body(&lines[at]);
            // Not after `key: {}`: the kubeadm patcher rewrites that line and so refuses it
            // when it carries a comment (rather than drop the comment).
            if yaml && !b.trim().is_empty() && !b.ends_with("{}") && !b.ends_with("[]") {
                lines[at] = format!("{b} # {c}{}", end(&lines[at]));
            }
        }
        Mutation::ExtraKey(i, v) => {
            *counter += 1;
            if !yaml {
                let at = i.index(lines.len() + 1);
                lines.insert(at, format!("--k8soidc-prop-{counter}={v}{eol}"));
            } else {
                let candidates: Vec<usize> = (0..lines.len())
                    .filter(|&n| key_line(&body(&lines[n])).is_some())
                    .collect();
                if let Some(&at) = candidates.get(i.index(candidates.len().max(1))) {
                    let indent = key_line(&body(&lines[at])).unwrap().0;
                    lines.insert(
                        at,
                        format!("{}k8soidc-prop-{counter}: {v}{eol}", " ".repeat(indent)),
                    );
                }
            }
        }
        Mutation::Value(i, v) => {
            if !yaml {
                let candidates: Vec<usize> = (0..lines.len())
                    .filter(|&n| {
                        let b = body(&lines[n]);
                        b.starts_with("--") && b.contains('=') && !managed_entry(&b)
                    })
                    .collect();
                if let Some(&at) = candidates.get(i.index(candidates.len().max(1))) {
                    let b = body(&lines[at]);
                    let name = b.split_once('=').unwrap().0;
                    lines[at] = format!("{name}={v}{}", end(&lines[at]));
                }
            } else {
                let candidates: Vec<usize> = (0..lines.len())
                    .filter(|&n| {
                        let b = body(&lines[n]);
                        key_line(&b).is_some_and(|(_, k, rest)| {
                            let r = rest.trim();
                            !r.is_empty()
                                && !["kind", "apiVersion", "name"].contains(&k)
                                && !b.contains("oidc")
                                && r.chars()
                                    .all(|c| c.is_ascii_alphanumeric() || "._/-".contains(c))
                        })
                    })
                    .collect();
                if let Some(&at) = candidates.get(i.index(candidates.len().max(1))) {
                    let b = body(&lines[at]);
                    let (indent, key, _) = key_line(&b).unwrap();
                    lines[at] = format!("{}{key}: {v}{}", " ".repeat(indent), end(&lines[at]));
                }
            }
        }
        Mutation::Indent(i, n) => {
            let pad = " ".repeat(*n);
            if yaml {
                return text
                    .split_inclusive('\n')
                    .map(|l| {
                        if l.starts_with("---") || l.trim().is_empty() {
                            l.to_string()
                        } else {
                            format!("{pad}{l}")
                        }
                    })
                    .collect();
            }
            let at = i.index(lines.len());
            lines[at] = format!("{pad}{}", lines[at]);
        }
        Mutation::Blank(i) => {
            let at = i.index(lines.len() + 1);
            lines.insert(at, eol.to_string());
        }
    }
    lines.concat()
}

/// Removes the keys the mutations added, at any depth.
fn without_extra_keys(v: &mut Value) {
    match v {
        Value::Mapping(m) => {
            m.retain(|k, _| !k.as_str().is_some_and(|k| k.starts_with("k8soidc-prop-")));
            m.values_mut().for_each(without_extra_keys);
        }
        Value::Sequence(items) => items.iter_mut().for_each(without_extra_keys),
        _ => {}
    }
}

/// Whether `mutated` means what `original` means (extra keys aside).
fn same_meaning(original: &str, mutated: &str, yaml: bool) -> bool {
    if !yaml {
        let words = |t: &str| -> Vec<String> {
            t.lines()
                .map(str::trim)
                .filter(|l| {
                    !l.is_empty() && !l.starts_with('#') && !l.starts_with("--k8soidc-prop-")
                })
                .map(str::to_string)
                .collect()
        };
        return words(original) == words(mutated);
    }
    match (parse_all(original), parse_all(mutated)) {
        (Ok(a), Ok(mut b)) => {
            b.iter_mut().for_each(without_extra_keys);
            a == b
        }
        _ => false,
    }
}

// ---------------------------------------------------------------- the properties

/// The lines of `before` that are not ours appear in `after`, in order, byte for byte (the
/// last one may have gained a line ending).
fn lines_kept<P: Patcher>(p: &P, before: &str, after: &str) -> Result<(), String> {
    if !P::TEXT_MINIMAL {
        return Ok(());
    }
    let after: Vec<&str> = after.split_inclusive('\n').collect();
    let mut at = 0;
    let before: Vec<&str> = before.split_inclusive('\n').collect();
    for (n, line) in before.iter().enumerate() {
        if p.ours(line) {
            continue;
        }
        let last = n + 1 == before.len() && !line.ends_with('\n');
        let matches = |a: &str| {
            if last {
                // Exactly the line, or the line plus one line ending (`\n` or `\r\n`): a last
                // line that is itself a lone `\r` gains `\n`, not a stripped `\r`.
                a == *line
                    || a.strip_suffix('\n') == Some(*line)
                    || a.strip_suffix("\r\n") == Some(*line)
            } else {
                a == *line
            }
        };
        match after[at..].iter().position(|a| matches(a)) {
            Some(k) => at += k + 1,
            None => return Err(format!("line {} {line:?} is gone or moved", n + 1)),
        }
    }
    Ok(())
}

/// The non-OIDC content of `text`, parsed.
fn rest<P: Patcher>(p: &P, text: &str) -> Result<Vec<Value>, String> {
    let mut docs = parse_all(text)?;
    p.strip(&mut docs, text);
    // A file left without content reads as no document, or as an empty mapping.
    docs.retain(|d| !d.is_null() && d.as_mapping().is_none_or(|m| !m.is_empty()));
    Ok(docs)
}

/// The input (short) or the change, for a failure message.
/// The documents that differ, for a failure message.
fn differing(a: &[Value], b: &[Value]) -> String {
    if a.len() != b.len() {
        return format!("{} documents != {}", a.len(), b.len());
    }
    a.iter()
        .zip(b)
        .filter(|(x, y)| x != y)
        .map(|(x, y)| format!("{x:?}\n!=\n{y:?}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn show(input: &str, out: &str) -> String {
    if input.len() < 2000 {
        format!("--- input {input:?}\n--- output {out:?}")
    } else {
        backends::unified_diff("/file", input, out)
    }
}

/// Everything a successful patch of `input` to `out` must satisfy.
fn check_patched<P: Patcher>(
    p: &P,
    input: &str,
    out: &str,
    s: &OidcSettings,
) -> Result<(), String> {
    p.read_back(out, Some(s))
        .map_err(|e| format!("read back: {e}"))?;
    lines_kept(p, input, out)?;
    if P::YAML {
        let (a, b) = (rest(p, input)?, rest(p, out)?);
        if a != b {
            return Err(format!("non-OIDC content changed:\n{}", differing(&a, &b)));
        }
    }
    match p.patch(out, s) {
        Ok(None) => {}
        Ok(Some(again)) => return Err(format!("second patch changed it again:\n{again}")),
        Err(e) => return Err(format!("second patch failed: {e}")),
    }
    if let Some(removed) = p.remove(out) {
        let removed = removed.map_err(|e| format!("remove failed: {e}"))?;
        let removed = removed.as_deref().unwrap_or(out);
        p.read_back(removed, None)
            .map_err(|e| format!("after remove: {e}"))?;
        if P::YAML {
            let (a, b) = (rest(p, input)?, rest(p, removed)?);
            if a != b {
                return Err(format!(
                    "remove changed other content:\n{}",
                    differing(&a, &b)
                ));
            }
        }
        if let Some(Ok(Some(again))) = p.remove(removed) {
            return Err(format!("second remove changed it again:\n{again}"));
        }
    }
    Ok(())
}

fn check_valid<P: Patcher>(
    p: &P,
    pick: Index,
    mutations: &[Mutation],
    s: &OidcSettings,
) -> Result<(), TestCaseError> {
    let all = fixtures(P::DIR, P::EXTS);
    let (name, base) = &all[pick.index(all.len())];
    let mut counter = 0;
    let mut text = base.clone();
    for m in mutations {
        text = mutate(&text, m, P::YAML, &mut counter);
    }
    // Refusing is fine unless the fixture patches and the change kept its meaning.
    let must = || {
        mutations.iter().all(Mutation::neutral)
            && same_meaning(base, &text, P::YAML)
            && p.patch(base, s).is_ok()
    };
    match p.patch(&text, s) {
        Ok(out) => {
            let out = out.unwrap_or_else(|| text.clone());
            check_patched(p, &text, &out, s).map_err(|e| {
                TestCaseError::fail(format!("{name} {mutations:?}: {e}\n{}", show(&text, &out)))
            })?;
        }
        Err(e) if must() => {
            return Err(TestCaseError::fail(format!(
                "{name} {mutations:?}: the fixture patches, this same-meaning change is refused: {e}\n{}",
                show(base, &text)
            )))
        }
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(!msg.contains('\n'), "multi-line error: {msg}");
        }
    }
    Ok(())
}

/// Bad input: arbitrary text and bytes, and broken fixtures.
#[derive(Debug, Clone)]
enum Garbage {
    Text(String),
    Bytes(Vec<u8>),
    Truncated(Index, Index),
    LinesEdited(Index, Vec<(Index, bool)>),
    Spliced(Index, Index, String),
}

fn garbage_input() -> impl Strategy<Value = Garbage> {
    prop_oneof![
        any::<String>().prop_map(Garbage::Text),
        "[-:#'\"{}\\[\\]|>&*! \n\ta-z0-9=]{0,200}".prop_map(Garbage::Text),
        proptest::collection::vec(any::<u8>(), 0..400).prop_map(Garbage::Bytes),
        (any::<Index>(), any::<Index>()).prop_map(|(f, c)| Garbage::Truncated(f, c)),
        (
            any::<Index>(),
            proptest::collection::vec((any::<Index>(), any::<bool>()), 1..6)
        )
            .prop_map(|(f, ops)| Garbage::LinesEdited(f, ops)),
        (
            any::<Index>(),
            any::<Index>(),
            "[-:#'\"{}\\[\\]|>&*! \n\ta-z=]{1,12}"
        )
            .prop_map(|(f, at, g)| Garbage::Spliced(f, at, g)),
    ]
}

fn garbage_text(g: &Garbage, all: &[(String, String)]) -> String {
    let pick = |i: &Index| &all[i.index(all.len())].1;
    let boundary = |t: &str, i: &Index| {
        let mut at = i.index(t.len() + 1);
        while !t.is_char_boundary(at) {
            at -= 1;
        }
        at
    };
    match g {
        Garbage::Text(t) => t.clone(),
        Garbage::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Garbage::Truncated(f, cut) => {
            let t = pick(f);
            t[..boundary(t, cut)].to_string()
        }
        Garbage::LinesEdited(f, ops) => {
            let mut lines: Vec<&str> = pick(f).split_inclusive('\n').collect();
            for (i, dup) in ops {
                if lines.is_empty() {
                    break;
                }
                let at = i.index(lines.len());
                if *dup {
                    lines.insert(at, lines[at]);
                } else {
                    lines.remove(at);
                }
            }
            lines.concat()
        }
        Garbage::Spliced(f, at, g) => {
            let t = pick(f);
            let at = boundary(t, at);
            format!("{}{g}{}", &t[..at], &t[at..])
        }
    }
}

fn check_garbage<P: Patcher>(p: &P, g: &Garbage, s: &OidcSettings) -> Result<(), TestCaseError> {
    let text = garbage_text(g, &fixtures(P::DIR, P::EXTS));
    match p.patch(&text, s) {
        Ok(out) => {
            let out = out.unwrap_or_else(|| text.clone());
            check_patched(p, &text, &out, s)
                .map_err(|e| TestCaseError::fail(format!("{e}\n{}", show(&text, &out))))?;
        }
        Err(e) => {
            let msg = e.to_string();
            prop_assert!(!msg.contains('\n'), "multi-line error: {msg}");
        }
    }
    // Removing from garbage: an error or a result without anything of ours.
    if let Some(Ok(Some(removed))) = p.remove(&text) {
        p.read_back(&removed, None)
            .map_err(|e| TestCaseError::fail(format!("after remove: {e}\n--- input {text:?}")))?;
    }
    Ok(())
}

/// `default` cases (64; 32 for the slow, large-file patchers) unless PROPTEST_CASES is set.
fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        max_global_rejects: 4096,
        ..ProptestConfig::default()
    }
}

macro_rules! patcher_properties {
    ($module:ident, $patcher:expr, $cases:expr) => {
        mod $module {
            use super::*;

            proptest! {
                #![proptest_config(config($cases))]

                #[test]
                fn valid(
                    pick in any::<Index>(),
                    mutations in proptest::collection::vec(mutation(), 0..4),
                    s in settings(),
                ) {
                    check_valid(&$patcher, pick, &mutations, &s)?;
                }

                #[test]
                fn garbage(g in garbage_input(), s in settings()) {
                    check_garbage(&$patcher, &g, &s)?;
                }
            }
        }
    };
}

patcher_properties!(manifest_patch, ManifestP, 64);
patcher_properties!(microk8s_args, Microk8sP, 64);
patcher_properties!(k3s_config, K3sP(Distribution::K3s), 64);
patcher_properties!(rke2_config, K3sP(Distribution::Rke2), 64);
patcher_properties!(kubeadm_config, KubeadmP, 64);
patcher_properties!(kops_spec, KopsP, 64);
patcher_properties!(kubeconfig_merge, KubeconfigP, 64);
patcher_properties!(capi_kcp, CapiP, 32);
patcher_properties!(kubespray_group_vars, KubesprayP, 32);

/// The fixtures the properties start from: each folder has some a patcher accepts unchanged,
/// so `valid` exercises success paths and not only refusals.
#[test]
fn every_patcher_accepts_some_fixture() {
    fn accepted<P: Patcher>(p: &P) -> usize {
        let s = fixed_settings();
        fixtures(P::DIR, P::EXTS)
            .iter()
            .filter(|(_, t)| p.patch(t, &s).is_ok())
            .count()
    }
    let counts = [
        ("manifest", accepted(&ManifestP)),
        ("microk8s", accepted(&Microk8sP)),
        ("k3s", accepted(&K3sP(Distribution::K3s))),
        ("rke2", accepted(&K3sP(Distribution::Rke2))),
        ("kubeadm", accepted(&KubeadmP)),
        ("kops", accepted(&KopsP)),
        ("kubeconfig", accepted(&KubeconfigP)),
        ("capi", accepted(&CapiP)),
        ("kubespray", accepted(&KubesprayP)),
    ];
    for (name, n) in counts {
        assert!(n > 0, "{name}: no fixture patches");
    }
}

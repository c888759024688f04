//! Issue 13, point 12: every YAML file k8soidc writes means the same to a YAML 1.1 reader
//! (kubeadm's and kops' Go `yaml.v2`, PyYAML, Ansible) as to a YAML 1.2 one (serde_yaml_ng).
//!
//! Settings are drawn from a generator biased to the plain scalars YAML 1.1 resolves to
//! something other than a string: booleans (`yes`, `on`, `y`, ... yaml.org/type/bool.html),
//! ints (`0x1f`, `0o17`, `1_000`, `12:30`, yaml.org/type/int.html), floats (`1e3`, `.inf`,
//! `.nan`, yaml.org/type/float.html), null (`~`, `null`, yaml.org/type/null.html), timestamps
//! (`2001-12-14`, yaml.org/type/timestamp.html), `=` (value) and `<<` (merge), and near misses.
//! Every YAML artifact of every renderer (`Backend::render` for each distribution) and the
//! output of every text patcher is read twice: by serde_yaml_ng, and by PyYAML's SafeLoader
//! with the `y|Y|n|N` booleans of bool.html added (PyYAML leaves them out, Go `yaml.v2` does
//! not). Wherever one reading has a string and the other has anything else, the file is wrong.
//! YAML held inside a string (kind's `kubeadmConfigPatches`, Cluster API `files[].content`) is
//! read the same way. A patcher's input file may carry such disagreements of its own; the
//! output may not add any.
//!
//! PyYAML runs once per test over all cases (`/usr/bin/python3 -c 'import yaml'`; Debian's
//! `python3-yaml`, which `scripts/test` installs).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use backends::apiserver;
use backends::manifest::NodeMount;
use backends::{
    backend, capi, k3d, k3s, kops, kubeadm, kubespray, ClusterRequest, Distribution, OidcSettings,
    PlanError, SettingsInput,
};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value as Json;
use serde_yaml_ng::Value;

/// Plain scalars that YAML 1.1 or 1.2 resolve to a non-string, from the yaml.org type pages.
const SPECIAL: &[&str] = &[
    "y",
    "Y",
    "n",
    "N",
    "yes",
    "Yes",
    "YES",
    "no",
    "No",
    "NO",
    "on",
    "On",
    "ON",
    "off",
    "Off",
    "OFF",
    "true",
    "True",
    "TRUE",
    "false",
    "False",
    "FALSE",
    "~",
    "null",
    "Null",
    "NULL",
    "=",
    "<<",
    "1_000",
    "0x1f",
    "0X1F",
    "0o17",
    "0b101",
    "017",
    "0777",
    "+1",
    "-1",
    "0",
    "1e3",
    "1E3",
    "1.5e+3",
    "-1e-3",
    ".5",
    "1.",
    ".inf",
    "-.Inf",
    "+.INF",
    ".nan",
    ".NaN",
    ".NAN",
    "12:30",
    "-12:30",
    "190:20:30.15",
    "2001-12-14",
    "2001-12-14t21:59:43.10-05:00",
    "2001-12-14 21:59:43.10 -5",
    "2002-12-14",
    "1.31.5",
    "1__0",
    "0x_1F",
    "+0b1_0",
    "0.",
];

/// A string likely to be misread: a special form, a near miss, or number-ish characters.
fn tricky() -> BoxedStrategy<String> {
    prop_oneof![
        6 => proptest::sample::select(SPECIAL).prop_map(str::to_string),
        2 => (proptest::sample::select(SPECIAL), "[a-z0-9:._-]{0,2}")
            .prop_map(|(w, s)| format!("{w}{s}")),
        2 => "[-+.0-9:_eExXoObBtTzZ]{1,8}",
        1 => "[!-~]{1,10}",
    ]
    .boxed()
}

/// Settings carrying tricky values wherever a value stands alone in some file: client id,
/// claims, prefixes, required-claim values; both auth modes.
fn settings() -> impl Strategy<Value = OidcSettings> {
    (
        tricky(),
        proptest::option::of(tricky()),
        proptest::option::of(tricky()),
        proptest::option::of(tricky()),
        proptest::option::of(tricky()),
        proptest::collection::vec(tricky(), 0..3),
        proptest::sample::select(vec![None, Some("flags"), Some("config")]),
        any::<bool>(),
    )
        .prop_filter_map(
            "settings that validate",
            |(client, uclaim, uprefix, gclaim, gprefix, req, mode, ca)| {
                let input = SettingsInput {
                    issuer_url: Some("https://idp.example.com".into()),
                    client_id: Some(client),
                    username_claim: uclaim,
                    username_prefix: uprefix,
                    groups_prefix: gprefix.filter(|_| gclaim.is_some()),
                    groups_claim: gclaim,
                    required_claim: req
                        .iter()
                        .enumerate()
                        .map(|(i, v)| format!("c{i}={v}"))
                        .collect(),
                    auth_mode: mode.map(str::to_string),
                    kubernetes_version: Some("1.31".into()),
                    ..SettingsInput::default()
                };
                let ca = ca.then(|| backends::CaBundle {
                    local_path: "/home/me/idp-ca.pem".into(),
                    pem: "-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n"
                        .into(),
                });
                OidcSettings::validate(&input, ca).ok()
            },
        )
}

/// `n` settings from a fixed-seed runner (deterministic; `PROPTEST_CASES` overrides `n`).
fn cases(n: u32) -> Vec<OidcSettings> {
    let n = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(n);
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let strategy = settings();
    (0..n)
        .map(|_| strategy.new_tree(&mut runner).expect("settings").current())
        .collect()
}

/// The values the settings put into files on their own (what a reader must give back).
fn values(s: &OidcSettings) -> Vec<String> {
    let mut v: Vec<String> = backends::rendered_values(s)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    v.extend(s.required_claims.iter().map(|(_, value)| value.clone()));
    v
}

// ---------------------------------------------------------------- the two readings

const PYTHON: &str = r#"
import json, re, sys, yaml
class L(yaml.SafeLoader):
    pass
# yaml.org/type/bool.html: y|Y|yes|Yes|YES|n|N|no|No|NO|true|...|on|...|off|...; PyYAML omits y/n.
L.add_implicit_resolver('tag:yaml.org,2002:bool', re.compile(r'^(?:y|Y|n|N)$'), list('yYnN'))
def boolean(loader, node):
    return loader.construct_scalar(node).lower() in ('y', 'yes', 'true', 'on')
L.add_constructor('tag:yaml.org,2002:bool', boolean)
def conv(x):
    if isinstance(x, str):
        return x
    if isinstance(x, dict):
        return {"map": [[conv(k), conv(v)] for k, v in x.items()]}
    if isinstance(x, list):
        return {"seq": [conv(i) for i in x]}
    return {"other": type(x).__name__ + " " + repr(x)}
out = []
for text in json.load(sys.stdin):
    try:
        out.append({"ok": [conv(d) for d in yaml.load_all(text, Loader=L)]})
    except Exception as e:
        out.append({"err": str(e).replace("\n", " ")})
json.dump(out, sys.stdout)
"#;

/// The YAML 1.1 readings of `texts`, in one PyYAML run.
fn yaml11(texts: &[String]) -> Vec<Json> {
    let python = PathBuf::from("/usr/bin/python3");
    let mut child = Command::new(&python)
        .args(["-c", PYTHON])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e}; install python3 and python3-yaml (apt-get install python3-yaml)",
                python.display()
            )
        });
    let input = serde_json::to_vec(texts).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("python3");
    writer.join().unwrap().expect("python3 stdin");
    assert!(
        out.status.success(),
        "PyYAML run failed (is python3-yaml installed? apt-get install python3-yaml): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Vec<Json> = serde_json::from_slice(&out.stdout).expect("PyYAML output");
    assert_eq!(v.len(), texts.len());
    v
}

fn docs12(text: &str) -> Result<Vec<Value>, String> {
    serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| {
            serde::Deserialize::deserialize(d).map_err(|e: serde_yaml_ng::Error| e.to_string())
        })
        .collect()
}

fn show12(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| format!("{v:?}"))
}

/// Where the readings disagree, as `1.2 reading ≠ 1.1 reading` (no paths: a patcher's input
/// and output are compared as multisets).
fn disagreements(v12: &Value, v11: &Json, out: &mut Vec<String>) {
    match (v12, v11) {
        (Value::String(a), Json::String(b)) if a == b => {}
        (Value::Mapping(m), Json::Object(o)) if o.contains_key("map") => {
            let pairs = o["map"].as_array().unwrap();
            if pairs.len() != m.len() {
                out.push(format!("{} ≠ {v11}", show12(v12)));
                return;
            }
            for ((k, v), pair) in m.iter().zip(pairs) {
                disagreements(k, &pair[0], out);
                disagreements(v, &pair[1], out);
            }
        }
        (Value::Sequence(s), Json::Object(o)) if o.contains_key("seq") => {
            let items = o["seq"].as_array().unwrap();
            if items.len() != s.len() {
                out.push(format!("{} ≠ {v11}", show12(v12)));
                return;
            }
            for (a, b) in s.iter().zip(items) {
                disagreements(a, b, out);
            }
        }
        (Value::Null | Value::Bool(_) | Value::Number(_), Json::Object(o))
            if o.contains_key("other") => {}
        (Value::Tagged(_), _) => {}
        _ => out.push(format!("{} ≠ {v11}", show12(v12))),
    }
}

/// YAML documents held in strings (multi-line strings that parse to a mapping with `kind`,
/// `apiVersion` or `apiServer`), recursively.
fn nested(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if s.contains('\n') => {
            if let Ok(docs) = docs12(s) {
                let yaml = docs.iter().any(|d| {
                    d.as_mapping().is_some_and(|m| {
                        ["kind", "apiVersion", "apiServer"]
                            .iter()
                            .any(|k| m.contains_key(*k))
                    })
                });
                if yaml {
                    out.push(s.clone());
                    for d in &docs {
                        nested(d, out);
                    }
                }
            }
        }
        Value::Mapping(m) => m.values().for_each(|x| nested(x, out)),
        Value::Sequence(s) => s.iter().for_each(|x| nested(x, out)),
        _ => {}
    }
}

/// One file written for one case.
struct Written {
    label: String,
    /// The patcher's input (its disagreements are allowed), if any.
    input: Option<String>,
    text: String,
    /// Values the settings put in it.
    values: Vec<String>,
}

/// Checks every file (and YAML nested in it) by both readings; returns how often a tricky
/// value was read back as a standalone string by both (so the test is not vacuous).
fn check_all(written: &[Written]) -> BTreeMap<String, usize> {
    // Every text to read, with the file it belongs to; inputs and outputs.
    let mut texts: Vec<String> = Vec::new();
    let mut owner: Vec<(usize, bool)> = Vec::new();
    for (i, w) in written.iter().enumerate() {
        for (is_input, text) in [(true, w.input.as_ref()), (false, Some(&w.text))] {
            let Some(text) = text else { continue };
            texts.push(text.clone());
            owner.push((i, is_input));
            let mut inner = Vec::new();
            for d in docs12(text).unwrap_or_default() {
                nested(&d, &mut inner);
            }
            for t in inner {
                texts.push(t);
                owner.push((i, is_input));
            }
        }
    }
    let readings11 = yaml11(&texts);
    let mut found: BTreeMap<String, usize> = BTreeMap::new();
    let mut per_file: Vec<[Vec<String>; 2]> = written.iter().map(|_| [vec![], vec![]]).collect();
    for ((text, r11), &(i, is_input)) in texts.iter().zip(&readings11).zip(&owner) {
        let bucket = &mut per_file[i][usize::from(!is_input)];
        let d12 = match docs12(text) {
            Ok(d) => d,
            Err(e) => {
                bucket.push(format!("YAML 1.2 cannot read it: {e}"));
                continue;
            }
        };
        let Some(d11) = r11.get("ok").and_then(Json::as_array) else {
            bucket.push(format!("YAML 1.1 cannot read it: {}", r11["err"]));
            continue;
        };
        if d11.len() != d12.len() {
            bucket.push(format!("{} documents ≠ {}", d12.len(), d11.len()));
            continue;
        }
        for (a, b) in d12.iter().zip(d11) {
            disagreements(a, b, bucket);
        }
        if !is_input {
            let w = &written[i];
            let n = count_strings(&d12, &w.values);
            *found.entry(w.label.clone()).or_default() += n;
        }
    }
    let mut failures = Vec::new();
    for (w, [input, output]) in written.iter().zip(per_file) {
        let mut allowed = input;
        let added: Vec<String> = output
            .into_iter()
            .filter(|d| match allowed.iter().position(|a| a == d) {
                Some(p) => {
                    allowed.swap_remove(p);
                    false
                }
                None => true,
            })
            .collect();
        if !added.is_empty() {
            failures.push(format!(
                "{} with values {:?}: the readings differ: {}\n{}",
                w.label,
                w.values,
                added.join("; "),
                w.text
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} files are read differently by YAML 1.1 and 1.2:\n\n{}",
        failures.len(),
        written.len(),
        failures.join("\n\n")
    );
    found
}

/// How many strings in `docs` are exactly one of the tricky `values`.
fn count_strings(docs: &[Value], values: &[String]) -> usize {
    fn walk(v: &Value, values: &[String], n: &mut usize) {
        match v {
            Value::String(s) if values.contains(s) && SPECIAL.iter().any(|w| s.starts_with(w)) => {
                *n += 1;
            }
            Value::Mapping(m) => m.iter().for_each(|(k, x)| {
                walk(k, values, n);
                walk(x, values, n);
            }),
            Value::Sequence(s) => s.iter().for_each(|x| walk(x, values, n)),
            _ => {}
        }
    }
    let mut n = 0;
    docs.iter().for_each(|d| walk(d, values, &mut n));
    n
}

// ---------------------------------------------------------------- the properties

#[test]
fn every_renderer_writes_yaml_1_1_and_1_2_read_alike() {
    let req = ClusterRequest {
        name: "demo".into(),
        staging_dir: "/home/me/.local/share/k8soidc/demo".into(),
        extra_args: vec![],
        platform: Default::default(),
    };
    let mut written = Vec::new();
    for s in cases(96) {
        for d in Distribution::ALL {
            let Ok(r) = backend(d).render(&s, &req) else {
                continue;
            };
            for a in r.artifacts.iter().filter(|a| a.language == "yaml") {
                written.push(Written {
                    label: format!("{d:?} render: {}", a.title),
                    input: None,
                    text: a.content.clone(),
                    values: values(&s),
                });
            }
        }
    }
    let found = check_all(&written);
    // The renderers that write a value as a YAML scalar of its own read some tricky value back
    // (k3s, RKE2, k3d, MicroK8s and Charmed write `--flag=value` strings only).
    for d in ["Kubeadm", "Kind", "Capi", "Kops", "Kubespray"] {
        let n: usize = found
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{d} ")))
            .map(|(_, n)| n)
            .sum();
        assert!(
            n > 0,
            "{d}: no tricky value was written as a scalar of its own: {found:?}"
        );
    }
}

fn fixture(rel: &str) -> String {
    let start = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let p = start
        .ancestors()
        .map(|a| a.join("shared/fixtures").join(rel))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("fixture {rel} not found above {}", start.display()));
    std::fs::read_to_string(p).unwrap()
}

type Patcher = fn(&str, &OidcSettings) -> Result<Option<String>, PlanError>;

fn manifest(text: &str, s: &OidcSettings) -> Result<Option<String>, PlanError> {
    const DIR: &str = "/etc/kubernetes/oidc";
    let mode = s.mode()?;
    let args = apiserver::args(s, mode, DIR);
    let mount = NodeMount {
        name: kubeadm::VOLUME_NAME.into(),
        host_path: DIR.into(),
        mount_path: DIR.into(),
    };
    let files = !apiserver::node_files(s, mode, DIR).is_empty();
    let p = backends::manifest::patch_manifest(text, &args, files.then_some(&mount))?;
    Ok(p.changed.then_some(p.text))
}

#[test]
fn every_patcher_writes_yaml_1_1_and_1_2_read_alike() {
    let patchers: [(&str, &str, Patcher); 8] = [
        (
            "manifest",
            "apiserver-manifests/030-hiulnarapyvovar-v1.29.2-minimal.yaml",
            manifest,
        ),
        (
            "k3s",
            "k3s-config/003-sylchamber-control-plane.yaml",
            |t, s| k3s::patch_config(t, s, Distribution::K3s, false),
        ),
        (
            "rke2",
            "k3s-config/001-franco-ruggeri-hardening.yaml",
            |t, s| k3s::patch_config(t, s, Distribution::Rke2, false),
        ),
        (
            "kubeadm",
            "kubeadm-config/001-sbordeyne-v1beta3-comment.yaml",
            |t, s| kubeadm::patch_cluster_configuration(t, s, false),
        ),
        (
            "kops",
            "kops-cluster/004-kops-complex-v1alpha2.yaml",
            |t, s| kops::merge_cluster_spec(t, s).map(Some),
        ),
        ("k3d", "k3d-config/007-stefanbs-k3d-lab.yaml", |t, s| {
            k3d::patch_config(t, s, false)
        }),
        (
            "capi",
            "capi-kcp/capi__docker-simple-cluster.v1beta2.yaml",
            |t, s| capi::patch_kcp(t, s, false),
        ),
        (
            "kubespray",
            "kubespray/inventory-sample-group_vars-k8s_cluster-k8s-cluster.yml",
            |t, s| kubespray::patch_group_vars(t, s, false),
        ),
    ];
    let mut written = Vec::new();
    let mut patched: BTreeMap<&str, usize> = BTreeMap::new();
    for s in cases(64) {
        for (name, rel, patch) in &patchers {
            let input = fixture(rel);
            if let Ok(Some(text)) = patch(&input, &s) {
                *patched.entry(name).or_default() += 1;
                written.push(Written {
                    label: format!("{name} patch"),
                    input: Some(input),
                    text,
                    values: values(&s),
                });
            }
        }
    }
    for (name, _, _) in &patchers {
        assert!(
            patched.get(name).copied().unwrap_or(0) > 0,
            "{name}: no case patched: {patched:?}"
        );
    }
    let found = check_all(&written);
    for name in ["kubeadm", "kops", "capi", "kubespray"] {
        assert!(
            found.get(&format!("{name} patch")).copied().unwrap_or(0) > 0,
            "{name}: no tricky value was written as a scalar of its own: {found:?}"
        );
    }
}

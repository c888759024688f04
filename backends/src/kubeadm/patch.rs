//! Minimal text edits of a kubeadm config file: set (or remove) the OIDC entries of
//! `apiServer.extraArgs` and the `oidc` entry of `apiServer.extraVolumes` in the one
//! `ClusterConfiguration` document, keeping every other line byte for byte (comments, order,
//! quoting, indentation, CRLF, a missing final newline).
//!
//! How: the text is split into lines and documents; each document is parsed with serde_yaml_ng
//! to learn what it is, and the lines of `apiServer`, `extraArgs` and `extraVolumes` are located
//! by indentation and cross-checked against the parsed values (same keys, same number of
//! entries). Entries this tool owns ([`is_managed_flag`](crate::apiserver::is_managed_flag)) are
//! deleted and the wanted ones written at the place of the first, so a second run finds them
//! equal and changes nothing. The result is parsed again ([`yt::verify_documents`]: every
//! other document unchanged) and compared with the intended change; anything this cannot do
//! safely (flow style, quoted keys, odd indentation, a kind Cluster) is refused with the file
//! untouched.
//!
//! Forms: `kubeadm.k8s.io/v1beta1` to `v1beta3` write `extraArgs` as a map, `v1beta4` as a
//! `{name, value}` list (kubernetes/website `content/en/docs/reference/config-api/kubeadm-config.v1beta4.md`).

use std::ops::Range;

use serde_yaml_ng::{Mapping, Value};

use super::{ArgsForm, HostPathMount, NODE_DIR, VOLUME_NAME};
use crate::apiserver::{self, is_managed_flag, Arg};
use crate::yamltext::{self as yt, Edits, Line};
use crate::{Distribution, OidcSettings, PlanError};

const WHAT: &str = "the kubeadm config";

fn refuse(reason: impl Into<String>, fix: impl Into<String>) -> PlanError {
    PlanError::patch(WHAT, reason, fix)
}

/// Line ranges of the documents and their parsed values.
fn documents(lines: &[Line]) -> Result<Vec<(Range<usize>, Value)>, PlanError> {
    let ranges = yt::documents(lines);
    let values = yt::parse_documents(lines, ranges.clone()).map_err(|e| {
        refuse(
            format!(
                "document {} does not parse as YAML ({})",
                e.document + 1,
                e.message
            ),
            "fix the YAML first",
        )
    })?;
    Ok(ranges.into_iter().zip(values).collect())
}

/// The entries of a block (map entries, or with `items` list items), refused unless plain.
fn entries(
    lines: &[Line],
    r: Range<usize>,
    what: &str,
    items: bool,
) -> Result<Vec<Range<usize>>, PlanError> {
    yt::strict_entries(lines, r, items).map_err(|line| {
        let shape = if items {
            "a list item"
        } else {
            "a plain `key: value` entry"
        };
        refuse(
            format!("line `{line}` of `{what}` is not {shape}"),
            "edit it by hand",
        )
    })
}

/// How a key was found in the text.
enum Found {
    Absent,
    /// `key: {}` or `key: []` (or `key:` with nothing under it).
    Empty(usize),
    /// `key:` with a block value; the key line and the value's lines.
    Block(usize, Range<usize>),
}

fn locate(
    lines: &[Line],
    within: Range<usize>,
    indent: usize,
    name: &str,
    parsed: Option<&Value>,
) -> Result<Found, PlanError> {
    let at = yt::find_plain_key(lines, within.clone(), indent, name);
    let Some(at) = at else {
        return match parsed {
            None => Ok(Found::Absent),
            Some(_) => Err(refuse(
                format!("`{name}` is written in a form k8soidc does not edit (e.g. a quoted key or odd indentation)"),
                format!("write `{name}:` as a plain block key, or edit it by hand"),
            )),
        };
    };
    let (_, rest) = lines[at].plain_key().expect("found as a key");
    match rest {
        "" => {
            let r = yt::value_range(lines, at, within.end);
            if yt::first_content(lines, r.clone()).is_none() {
                Ok(Found::Empty(at))
            } else {
                Ok(Found::Block(at, r))
            }
        }
        "{}" | "[]"
            if lines[at].text[lines[at].indent()..].trim_end() == format!("{name}: {rest}") =>
        {
            Ok(Found::Empty(at))
        }
        _ => Err(refuse(
            format!("`{name}` is written in flow style (`{rest}`)"),
            format!("write `{name}` as a block (one entry a line), or edit it by hand"),
        )),
    }
}

/// One entry of `extraArgs`: its name (None when not a string) and value.
type ArgEntry = (Option<String>, Value);

fn arg_entries(v: Option<&Value>) -> Vec<ArgEntry> {
    match v {
        Some(Value::Mapping(m)) => m
            .iter()
            .map(|(k, v)| (k.as_str().map(str::to_string), v.clone()))
            .collect(),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|i| {
                (
                    i.get("name").and_then(Value::as_str).map(str::to_string),
                    i.get("value").cloned().unwrap_or(Value::Null),
                )
            })
            .collect(),
        _ => vec![],
    }
}

fn managed(e: &ArgEntry) -> bool {
    e.0.as_deref().is_some_and(is_managed_flag)
}

fn is_ours(v: &Value) -> bool {
    v.get("name").and_then(Value::as_str) == Some(VOLUME_NAME)
}

fn our_volume() -> HostPathMount {
    HostPathMount {
        name: VOLUME_NAME,
        host_path: NODE_DIR,
        mount_path: NODE_DIR,
        read_only: true,
        path_type: "DirectoryOrCreate",
    }
}

fn yaml_lines<T: serde::Serialize + ?Sized>(value: &T, indent: usize) -> Vec<String> {
    let text = crate::yamlout::to_yaml(value);
    let pad = " ".repeat(indent);
    text.lines().map(|l| format!("{pad}{l}")).collect()
}

fn render_args(args: &[Arg], form: ArgsForm, indent: usize) -> Vec<String> {
    match form {
        ArgsForm::List => yaml_lines(args, indent),
        ArgsForm::Map => args
            .iter()
            .flat_map(|a| {
                let mut m = Mapping::new();
                m.insert(a.name.clone().into(), a.value.clone().into());
                yaml_lines(&m, indent)
            })
            .collect(),
    }
}

/// What the ClusterConfiguration must read back as after the change: entries not ours kept
/// in order, ours exactly as wanted (in order; where they sit among the others is free).
struct Intent {
    form: ArgsForm,
    kept_args: Vec<ArgEntry>,
    want_args: Vec<ArgEntry>,
    kept_volumes: Vec<Value>,
    want_volumes: Vec<Value>,
}

/// Sets (or with `remove`, removes) the OIDC flags and the `oidc` volume in the
/// `ClusterConfiguration` of a kubeadm config file, by minimal line edits.
/// Returns `None` when the file already says exactly that.
pub fn patch_cluster_configuration(
    text: &str,
    s: &OidcSettings,
    remove: bool,
) -> Result<Option<String>, PlanError> {
    let lines = yt::split(text);
    let docs = documents(&lines)?;
    let is_cc = |v: &Value| {
        v.get("kind").and_then(Value::as_str) == Some("ClusterConfiguration")
            && v.get("apiVersion")
                .and_then(Value::as_str)
                .is_some_and(|a| a.starts_with("kubeadm.k8s.io/"))
    };
    let ccs: Vec<usize> = (0..docs.len()).filter(|&i| is_cc(&docs[i].1)).collect();
    let index = match ccs[..] {
        [one] => one,
        [] if docs.iter().any(|(_, v)| {
            v.get("kind").and_then(Value::as_str) == Some("Cluster")
                && v.get("apiVersion")
                    .and_then(Value::as_str)
                    .is_some_and(|a| a.starts_with("kind.x-k8s.io/"))
        }) =>
        {
            return Err(refuse(
                "it is a kind Cluster config, whose ClusterConfiguration is a string in `kubeadmConfigPatches`",
                "kind takes OIDC when a cluster is created: use `k8soidc create --distro kind`, or edit the patch by hand",
            ))
        }
        [] => {
            return Err(refuse(
                "it holds no `kubeadm.k8s.io` ClusterConfiguration document",
                "give the file used with `kubeadm init --config`, or the `ClusterConfiguration` of the kube-system/kubeadm-config ConfigMap",
            ))
        }
        _ => {
            return Err(refuse(
                format!("it holds {} ClusterConfiguration documents", ccs.len()),
                "keep one ClusterConfiguration per file",
            ))
        }
    };
    let (doc_range, doc) = (&docs[index].0, &docs[index].1);
    let api = doc["apiVersion"].as_str().unwrap_or_default();
    let form = match api {
        "kubeadm.k8s.io/v1beta1" | "kubeadm.k8s.io/v1beta2" | "kubeadm.k8s.io/v1beta3" => {
            ArgsForm::Map
        }
        "kubeadm.k8s.io/v1beta4" => ArgsForm::List,
        other => {
            return Err(refuse(
                format!("apiVersion `{other}` is not one k8soidc knows (v1beta1 to v1beta4)"),
                "convert the file with `kubeadm config migrate`",
            ))
        }
    };
    let mode = s.mode()?;
    let (want_args, want_volume) = if remove {
        (vec![], false)
    } else {
        if form == ArgsForm::Map {
            crate::refuse_repeated_claims(Distribution::Kubeadm, s, &format!("`apiServer.extraArgs` in {api} is a map, which holds `oidc-required-claim` only once"), "convert the file to kubeadm.k8s.io/v1beta4 with `kubeadm config migrate` (kubeadm 1.31+), or use `--auth-mode config`, or give one required claim")?;
        }
        (
            apiserver::args(s, mode, NODE_DIR),
            !apiserver::node_files(s, mode, NODE_DIR).is_empty(),
        )
    };
    let want_entries: Vec<ArgEntry> = want_args
        .iter()
        .map(|a| (Some(a.name.clone()), Value::String(a.value.clone())))
        .collect();
    let want_volumes: Vec<Value> = if want_volume {
        vec![serde_yaml_ng::to_value(our_volume()).expect("plain structs always serialise")]
    } else {
        vec![]
    };

    let parsed_api = doc.get("apiServer").filter(|v| !v.is_null());
    if let Some(v) = parsed_api {
        if !v.is_mapping() {
            return Err(refuse("`apiServer` is not a mapping", "fix the file first"));
        }
    }
    let old_args = arg_entries(parsed_api.and_then(|a| a.get("extraArgs")));
    let old_volumes: Vec<Value> = match parsed_api.and_then(|a| a.get("extraVolumes")) {
        Some(Value::Sequence(v)) => v.clone(),
        None | Some(Value::Null) => vec![],
        Some(_) => {
            return Err(refuse(
                "`apiServer.extraVolumes` is not a list",
                "fix the file first",
            ))
        }
    };
    let (have_managed, kept_args): (Vec<ArgEntry>, Vec<ArgEntry>) =
        old_args.iter().cloned().partition(managed);
    let (have_ours, kept_volumes): (Vec<Value>, Vec<Value>) =
        old_volumes.iter().cloned().partition(is_ours);
    let args_ok = have_managed == want_entries;
    let volumes_ok = have_ours == want_volumes;
    let intent = Intent {
        form,
        kept_args,
        want_args: want_entries,
        kept_volumes,
        want_volumes: want_volumes.clone(),
    };
    if args_ok && volumes_ok {
        return Ok(None);
    }

    // Indentation habits of the file: the step of nested maps, and how far a list's `-`
    // sits in from its key (0 in kubeadm's own output, often 2 in hand-written files).
    let step = doc_range
        .clone()
        .find(|&i| lines[i].is_content() && lines[i].indent() > 0)
        .map_or(2, |i| lines[i].indent());
    let seq_offset = (1..lines.len())
        .find(|&i| {
            lines[i].is_item()
                && lines[i - 1]
                    .plain_key()
                    .is_some_and(|(_, rest)| rest.is_empty())
                && lines[i].indent() >= lines[i - 1].indent()
        })
        .map_or(0, |i| lines[i].indent() - lines[i - 1].indent());

    let mut edits = Edits::default();

    let api_found = locate(&lines, doc_range.clone(), 0, "apiServer", parsed_api)?;
    let (api_body, ci) = match &api_found {
        Found::Block(_, r) => {
            let ci =
                lines[yt::first_content(&lines, r.clone()).expect("block has content")].indent();
            (r.clone(), ci)
        }
        Found::Empty(at) => (at + 1..at + 1, step),
        Found::Absent => (doc_range.end..doc_range.end, step),
    };
    let new_key = |name: &str| format!("{}{name}:", " ".repeat(ci));
    let mut fresh: Vec<String> = Vec::new(); // children for an apiServer written anew

    // extraArgs
    if !args_ok {
        let found = match &api_found {
            Found::Block(..) => locate(
                &lines,
                api_body.clone(),
                ci,
                "extraArgs",
                parsed_api.and_then(|a| a.get("extraArgs")),
            )?,
            _ => Found::Absent,
        };
        let parsed = parsed_api.and_then(|a| a.get("extraArgs"));
        match (form, parsed) {
            (ArgsForm::Map, Some(Value::Sequence(_))) => {
                return Err(refuse(
                    format!("`apiServer.extraArgs` is a list, but {api} expects a map"),
                    "fix the apiVersion or the list",
                ))
            }
            (ArgsForm::List, Some(Value::Mapping(_))) => {
                return Err(refuse(
                    format!(
                        "`apiServer.extraArgs` is a map, but {api} expects a list of name/value"
                    ),
                    "convert it with `kubeadm config migrate`",
                ))
            }
            _ => {}
        }
        match found {
            Found::Block(key_line, r) => {
                let entries = match form {
                    ArgsForm::Map => entries(&lines, r.clone(), "apiServer.extraArgs", false)?,
                    ArgsForm::List => entries(&lines, r.clone(), "apiServer.extraArgs", true)?,
                };
                if entries.len() != old_args.len()
                    || (form == ArgsForm::Map
                        && entries.iter().zip(&old_args).any(|(e, (name, _))| {
                            lines[e.start].plain_key().map(|(k, _)| k) != name.as_deref()
                        }))
                {
                    return Err(refuse(
                        "the lines of `apiServer.extraArgs` do not match what they parse to",
                        "edit it by hand",
                    ));
                }
                let indent = entries
                    .first()
                    .map_or(ci + step, |e| lines[e.start].indent());
                let mut at = None;
                let mut kept = 0;
                for (e, entry) in entries.iter().zip(&old_args) {
                    if managed(entry) {
                        at.get_or_insert(e.start);
                        edits.delete(e.clone());
                    } else {
                        kept += 1;
                    }
                }
                if kept == 0 && want_args.is_empty() {
                    edits.delete(key_line..key_line + 1);
                } else {
                    let at = at.unwrap_or(r.end);
                    edits.insert(at, render_args(&want_args, form, indent));
                }
            }
            Found::Empty(key_line) => {
                if !want_args.is_empty() {
                    edits.delete(key_line..key_line + 1);
                    let mut block = vec![new_key("extraArgs")];
                    block.extend(render_args(
                        &want_args,
                        form,
                        child_indent(form, ci, step, seq_offset),
                    ));
                    edits.insert(key_line, block);
                }
            }
            Found::Absent => {
                if !want_args.is_empty() {
                    let mut block = vec![new_key("extraArgs")];
                    block.extend(render_args(
                        &want_args,
                        form,
                        child_indent(form, ci, step, seq_offset),
                    ));
                    match api_found {
                        Found::Block(..) => edits.insert(api_body.end, block),
                        _ => fresh.extend(block),
                    }
                }
            }
        }
    }

    // extraVolumes (a list in every version)
    if !volumes_ok {
        let parsed = parsed_api.and_then(|a| a.get("extraVolumes"));
        let found = match &api_found {
            Found::Block(..) => locate(&lines, api_body.clone(), ci, "extraVolumes", parsed)?,
            _ => Found::Absent,
        };
        let items_indent = ci + seq_offset;
        match found {
            Found::Block(key_line, r) => {
                let items = entries(&lines, r.clone(), "apiServer.extraVolumes", true)?;
                if items.len() != old_volumes.len() {
                    return Err(refuse(
                        "the lines of `apiServer.extraVolumes` do not match what they parse to",
                        "edit it by hand",
                    ));
                }
                let indent = items
                    .first()
                    .map_or(items_indent, |i| lines[i.start].indent());
                let mut at = None;
                for (item, v) in items.iter().zip(&old_volumes) {
                    if is_ours(v) {
                        at.get_or_insert(item.start);
                        edits.delete(item.clone());
                    }
                }
                if have_ours.len() == old_volumes.len() && want_volumes.is_empty() {
                    edits.delete(key_line..key_line + 1);
                } else if want_volume {
                    edits.insert(at.unwrap_or(r.end), yaml_lines(&[our_volume()], indent));
                }
            }
            Found::Empty(key_line) => {
                if want_volume {
                    edits.delete(key_line..key_line + 1);
                    let mut block = vec![new_key("extraVolumes")];
                    block.extend(yaml_lines(&[our_volume()], items_indent));
                    edits.insert(key_line, block);
                }
            }
            Found::Absent => {
                if want_volume {
                    let mut block = vec![new_key("extraVolumes")];
                    block.extend(yaml_lines(&[our_volume()], items_indent));
                    match api_found {
                        Found::Block(..) => edits.insert(api_body.end, block),
                        _ => fresh.extend(block),
                    }
                }
            }
        }
    }

    // apiServer itself: written anew, or emptied.
    match api_found {
        Found::Block(at, r) => {
            let left = r
                .clone()
                .any(|i| lines[i].is_content() && !edits.deletes(i))
                || r.clone().chain([r.end]).any(|i| edits.inserts_at(i));
            if !left {
                edits.delete(at..at + 1);
                edits.insert(at, vec!["apiServer: {}".to_string()]);
            }
        }
        Found::Empty(at) if !fresh.is_empty() => {
            edits.delete(at..at + 1);
            let mut block = vec!["apiServer:".to_string()];
            block.append(&mut fresh);
            edits.insert(at, block);
        }
        Found::Absent if !fresh.is_empty() => {
            let end = doc_range
                .clone()
                .rev()
                .find(|&i| lines[i].is_content())
                .map_or(doc_range.end, |i| i + 1);
            let mut block = vec!["apiServer:".to_string()];
            block.append(&mut fresh);
            edits.insert(end, block);
        }
        _ => {}
    }

    if edits.is_empty() {
        return Ok(None);
    }
    let out = edits.apply(&lines, text);
    if out == text {
        return Ok(None);
    }
    verify(&docs, index, &out, &intent)?;
    Ok(Some(out))
}

fn child_indent(form: ArgsForm, ci: usize, step: usize, seq_offset: usize) -> usize {
    match form {
        ArgsForm::Map => ci + step,
        ArgsForm::List => ci + seq_offset,
    }
}

/// What the edit may change: `apiServer.extraArgs` and `extraVolumes` (an `apiServer` left
/// empty, or null, counts as absent).
const EDITED: [&[&str]; 2] = [&["apiServer", "extraArgs"], &["apiServer", "extraVolumes"]];

/// Parses the result and checks it is exactly the intended change.
fn verify(
    old: &[(Range<usize>, Value)],
    index: usize,
    out: &str,
    intent: &Intent,
) -> Result<(), PlanError> {
    let bad = |what: &str| {
        refuse(
            format!("the edited file did not read back as intended ({what}); nothing was changed"),
            "edit it by hand and report this file",
        )
    };
    let before: Vec<Value> = old.iter().map(|(_, v)| v.clone()).collect();
    let doc = &yt::verify_documents(&before, out, index).map_err(|e| match e {
        yt::VerifyError::Unparsable(_) => bad("it no longer parses"),
        yt::VerifyError::DocumentCount { .. } => bad("the number of documents changed"),
        yt::VerifyError::OtherDocument(_) => bad("another document changed"),
    })?;
    if !yt::same_except(doc, &before[index], &EDITED) {
        return Err(bad("keys outside apiServer.extraArgs/extraVolumes changed"));
    }
    let api = doc.get("apiServer");
    let args = api.and_then(|a| a.get("extraArgs"));
    let form_ok = match (intent.form, args) {
        (_, None | Some(Value::Null)) => true,
        (ArgsForm::Map, Some(v)) => v.is_mapping(),
        (ArgsForm::List, Some(v)) => v.is_sequence(),
    };
    let (ours, kept): (Vec<ArgEntry>, Vec<ArgEntry>) =
        arg_entries(args).into_iter().partition(managed);
    if !form_ok || ours != intent.want_args || kept != intent.kept_args {
        return Err(bad("apiServer.extraArgs"));
    }
    let volumes = match api.and_then(|a| a.get("extraVolumes")) {
        Some(Value::Sequence(v)) => v.clone(),
        _ => vec![],
    };
    let (ours, kept): (Vec<Value>, Vec<Value>) = volumes.into_iter().partition(is_ours);
    if ours != intent.want_volumes || kept != intent.kept_volumes {
        return Err(bad("apiServer.extraVolumes"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubeadm::tests::{fixture, read_back};
    use crate::testutil::*;
    use crate::Mode;

    /// Every kubeadm-config fixture and whether it is patched (None) or refused (Some(why)).
    const FIXTURES: [(&str, Option<&str>); 11] = [
        ("001-sbordeyne-v1beta3-comment.yaml", None),
        ("002-alexmitev91-v1beta3-dump.yaml", None),
        ("003-calvarado2004-v1beta3-certsans.yaml", None),
        ("005-comame-v1beta4-empty-apiserver.yaml", None),
        ("006-martinheinz-v1beta3-featuregates.yaml", None),
        ("007-brownserve-v1beta2-inline-comments.yaml", None),
        ("008-atlennon-v1beta2-cloud-provider.yaml", None),
        ("009-dellius-v1beta2-multidoc-comments.yaml", None),
        ("011-ichuncun-v1beta1.yaml", None),
        ("012-bdagdeviren-v1beta2-external-etcd.yaml", None),
        (
            "013-kubelogin-kind-v1beta2-oidc.yaml",
            Some("cannot patch the kubeadm config: it is a kind Cluster config"),
        ),
    ];

    fn settings_sets() -> Vec<(&'static str, OidcSettings)> {
        let mut with_ca = with(|i| i.required_claim = vec!["hd=example.com".into()]);
        with_ca.ca = Some(ca());
        vec![
            ("flags", settings()),
            ("flags+ca", with_ca),
            (
                "config",
                with(|i| {
                    i.auth_mode = Some("config".into());
                    i.kubernetes_version = Some("1.31".into());
                    i.required_claim = vec!["hd=example.com".into(), "org=acme".into()];
                }),
            ),
        ]
    }

    fn cc(text: &str) -> Value {
        let docs = documents(&yt::split(text)).unwrap();
        docs.into_iter()
            .map(|(_, v)| v)
            .find(|v| v["kind"].as_str() == Some("ClusterConfiguration"))
            .unwrap()
    }

    fn wanted(s: &OidcSettings) -> Vec<(String, String)> {
        apiserver::args(s, s.mode().unwrap(), NODE_DIR)
            .into_iter()
            .map(|a| (a.name, a.value))
            .collect()
    }

    fn oidc_args(doc: &Value) -> Vec<(String, String)> {
        if doc["apiServer"]["extraArgs"].is_null() {
            return vec![];
        }
        read_back(doc)
            .into_iter()
            .filter(|(k, _)| is_managed_flag(k))
            .collect()
    }

    /// Lines of `before` missing from `after` (a line diff; a last line that only gained its
    /// line break, because lines were added after it, does not count).
    fn deleted_lines(before: &str, after: &str) -> Vec<String> {
        let diff = similar::TextDiff::from_lines(before, after);
        let changed = |tag| {
            diff.iter_all_changes()
                .filter(move |c| c.tag() == tag)
                .map(|c| c.value().to_string())
        };
        let inserted: Vec<String> = changed(similar::ChangeTag::Insert).collect();
        changed(similar::ChangeTag::Delete)
            .filter(|d| d.ends_with('\n') || !inserted.contains(&format!("{d}\n")))
            .map(|d| d.trim_end().to_string())
            .collect()
    }

    /// `verify`'s refusals, one per way a result can differ from the intended edit.
    #[test]
    fn verify_refuses_each_difference_with_its_message() {
        let text =
            "a: 1\n---\nkind: ClusterConfiguration\nnetworking: {}\napiServer:\n  extraArgs: {}\n";
        let old = documents(&yt::split(text)).unwrap();
        let intent = Intent {
            form: ArgsForm::Map,
            kept_args: vec![],
            want_args: vec![],
            kept_volumes: vec![],
            want_volumes: vec![],
        };
        let why = |out: &str| match verify(&old, 1, out, &intent) {
            Err(PlanError::Patch { reason, .. }) => reason,
            other => panic!("{out}: {other:?}"),
        };
        let msg = |what: &str| {
            format!("the edited file did not read back as intended ({what}); nothing was changed")
        };
        assert_eq!(
            why("a: 1\n---\nkind: ClusterConfiguration\nnetworking: [\n"),
            msg("it no longer parses")
        );
        assert_eq!(
            why("a: 1\nkind: ClusterConfiguration\n"),
            msg("the number of documents changed")
        );
        assert_eq!(
            why("a: 2\n---\nkind: ClusterConfiguration\nnetworking: {}\n"),
            msg("another document changed")
        );
        assert_eq!(
            why("a: 1\n---\nkind: ClusterConfiguration\n"),
            msg("keys outside apiServer.extraArgs/extraVolumes changed")
        );
        assert_eq!(
            why("a: 1\n---\nkind: ClusterConfiguration\nnetworking: {}\napiServer:\n  extraArgs: [x]\n"),
            msg("apiServer.extraArgs")
        );
        // An emptied apiServer (or none) is the edit itself, not another change.
        verify(
            &old,
            1,
            "a: 1\n---\nkind: ClusterConfiguration\nnetworking: {}\n",
            &intent,
        )
        .unwrap();
        verify(
            &old,
            1,
            "a: 1 # x\n---\nkind: ClusterConfiguration\nnetworking: {}\napiServer:\n",
            &intent,
        )
        .unwrap();
    }

    #[test]
    fn every_fixture_is_patched_or_refused_as_expected() {
        for (name, refusal) in FIXTURES {
            let text = fixture(&format!("kubeadm-config/{name}"));
            for (label, s) in settings_sets() {
                let got = patch_cluster_configuration(&text, &s, false);
                if let Some(why) = refusal {
                    let e = got.unwrap_err().to_string();
                    assert!(e.starts_with(why), "{name} {label}: {e}");
                    continue;
                }
                let out = got
                    .unwrap_or_else(|e| panic!("{name} {label}: {e}"))
                    .unwrap_or_else(|| panic!("{name} {label}: unchanged"));
                let doc = cc(&out);
                assert_eq!(oidc_args(&doc), wanted(&s), "{name} {label}:\n{out}");
                let volumes = doc["apiServer"]["extraVolumes"]
                    .as_sequence()
                    .cloned()
                    .unwrap_or_default();
                let ours = volumes.iter().filter(|v| is_ours(v)).count();
                let needs_volume =
                    !apiserver::node_files(&s, s.mode().unwrap(), NODE_DIR).is_empty();
                assert_eq!(ours, usize::from(needs_volume), "{name} {label}:\n{out}");
                // Only insertions (005's `apiServer: {}` is expanded).
                for line in deleted_lines(&text, &out) {
                    assert_eq!(line, "apiServer: {}", "{name} {label}: deleted `{line}`");
                }
                assert_eq!(text.ends_with('\n'), out.ends_with('\n'), "{name} {label}");
                // Idempotent.
                assert_eq!(
                    patch_cluster_configuration(&out, &s, false).unwrap(),
                    None,
                    "{name} {label}"
                );
                // Removal restores the file (012 had no apiServer: it keeps an empty one).
                let back = patch_cluster_configuration(&out, &s, true)
                    .unwrap()
                    .unwrap();
                if name.starts_with("012") {
                    assert_eq!(back, format!("{text}apiServer: {{}}\n"), "{name} {label}");
                } else {
                    assert_eq!(back, text, "{name} {label}");
                }
                assert_eq!(
                    patch_cluster_configuration(&text, &s, true).unwrap(),
                    None,
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn exact_edit_of_a_v1beta3_dump_with_a_comment() {
        let text = fixture("kubeadm-config/001-sbordeyne-v1beta3-comment.yaml");
        let mut s = settings();
        s.ca = Some(ca());
        let out = patch_cluster_configuration(&text, &s, false)
            .unwrap()
            .unwrap();
        let head = "apiServer:
  extraArgs:
    authorization-mode: Node,RBAC
    oidc-issuer-url: https://idp.example.com
    oidc-client-id: kubernetes
    oidc-username-claim: email
    oidc-username-prefix: 'oidc:'
    oidc-groups-claim: groups
    oidc-groups-prefix: 'oidc:'
    oidc-ca-file: /etc/kubernetes/oidc/oidc-ca.pem
    #    service-node-port-range: 0-32767
  timeoutForControlPlane: 4m0s
  certSANs:
  - \"slfhst.io\"
  extraVolumes:
  - name: oidc
    hostPath: /etc/kubernetes/oidc
    mountPath: /etc/kubernetes/oidc
    readOnly: true
    pathType: DirectoryOrCreate
apiVersion: kubeadm.k8s.io/v1beta3
";
        assert!(out.starts_with(head), "{out}");
        assert_eq!(
            &out[head.len()..],
            &text[text.find("certificatesDir").unwrap()..]
        );
    }

    #[test]
    fn exact_edit_of_v1beta4_empty_api_server() {
        let text = fixture("kubeadm-config/005-comame-v1beta4-empty-apiserver.yaml");
        let s = with(|i| i.required_claim = vec!["hd=example.com".into(), "org=acme".into()]);
        let out = patch_cluster_configuration(&text, &s, false)
            .unwrap()
            .unwrap();
        let want = text.replace(
            "apiServer: {}\n",
            "apiServer:
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
    - name: oidc-required-claim
      value: hd=example.com
    - name: oidc-required-claim
      value: org=acme
",
        );
        assert_eq!(out, want);
    }

    #[test]
    fn exact_edit_without_final_newline() {
        let text = fixture("kubeadm-config/007-brownserve-v1beta2-inline-comments.yaml");
        assert!(!text.ends_with('\n'));
        let s = with(|i| {
            i.groups_claim = None;
            i.groups_prefix = None;
        });
        let out = patch_cluster_configuration(&text, &s, false)
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            format!(
                "{text}\n    oidc-issuer-url: https://idp.example.com\n    oidc-client-id: kubernetes\n    oidc-username-claim: email\n    oidc-username-prefix: 'oidc:'"
            )
        );
    }

    #[test]
    fn new_api_server_follows_the_file_list_style() {
        let text = fixture("kubeadm-config/012-bdagdeviren-v1beta2-external-etcd.yaml");
        let mut s = with(|i| {
            i.groups_claim = None;
            i.groups_prefix = None;
        });
        s.ca = Some(ca());
        let out = patch_cluster_configuration(&text, &s, false)
            .unwrap()
            .unwrap();
        assert_eq!(
            &out[text.len()..],
            "apiServer:
  extraArgs:
    oidc-issuer-url: https://idp.example.com
    oidc-client-id: kubernetes
    oidc-username-claim: email
    oidc-username-prefix: 'oidc:'
    oidc-ca-file: /etc/kubernetes/oidc/oidc-ca.pem
  extraVolumes:
    - name: oidc
      hostPath: /etc/kubernetes/oidc
      mountPath: /etc/kubernetes/oidc
      readOnly: true
      pathType: DirectoryOrCreate
"
        );
    }

    #[test]
    fn keeps_crlf() {
        let text = fixture("kubeadm-config/009-dellius-v1beta2-multidoc-comments.yaml")
            .replace('\n', "\r\n");
        let mut s = settings();
        s.ca = Some(ca());
        let out = patch_cluster_configuration(&text, &s, false)
            .unwrap()
            .unwrap();
        assert_eq!(
            out.matches('\n').count(),
            out.matches("\r\n").count(),
            "{out:?}"
        );
        assert!(out.contains("  timeoutForControlPlane: 4m0s\r\n  extraArgs:\r\n    oidc-issuer-url: https://idp.example.com\r\n"));
        assert_eq!(oidc_args(&cc(&out)), wanted(&s));
        assert_eq!(patch_cluster_configuration(&out, &s, false).unwrap(), None);
        assert_eq!(
            patch_cluster_configuration(&out, &s, true)
                .unwrap()
                .unwrap(),
            text
        );
    }

    /// The ClusterConfiguration inside fixture 013's kind patch: v1beta2 with oidc flags already.
    fn configured_v1beta2() -> String {
        let kind: Value = serde_yaml_ng::from_str(&fixture(
            "kubeadm-config/013-kubelogin-kind-v1beta2-oidc.yaml",
        ))
        .unwrap();
        kind["kubeadmConfigPatches"][0]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn replaces_existing_oidc_entries_instead_of_duplicating() {
        let text = configured_v1beta2();
        let mut s = settings();
        s.ca = Some(ca());
        let out = patch_cluster_configuration(&text, &s, false)
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            "apiVersion: kubeadm.k8s.io/v1beta2
kind: ClusterConfiguration
metadata:
  name: config
apiServer:
  extraArgs:
    oidc-issuer-url: https://idp.example.com
    oidc-client-id: kubernetes
    oidc-username-claim: email
    oidc-username-prefix: 'oidc:'
    oidc-groups-claim: groups
    oidc-groups-prefix: 'oidc:'
    oidc-ca-file: /etc/kubernetes/oidc/oidc-ca.pem
  extraVolumes:
  - name: oidc
    hostPath: /etc/kubernetes/oidc
    mountPath: /etc/kubernetes/oidc
    readOnly: true
    pathType: DirectoryOrCreate
"
        );
        assert_eq!(patch_cluster_configuration(&out, &s, false).unwrap(), None);
        // Switching to config mode drops every --oidc-* flag.
        let c = with(|i| {
            i.auth_mode = Some("config".into());
            i.kubernetes_version = Some("1.30".into());
        });
        let switched = patch_cluster_configuration(&out, &c, false)
            .unwrap()
            .unwrap();
        assert_eq!(
            read_back(&cc(&switched)),
            [(
                "authentication-config".to_string(),
                "/etc/kubernetes/oidc/authentication-config.yaml".to_string()
            )]
        );
        assert_eq!(
            Mode::Config(crate::ConfigApiVersion::V1beta1),
            c.mode().unwrap()
        );
        // Removing everything leaves an empty apiServer.
        let removed = patch_cluster_configuration(&switched, &c, true)
            .unwrap()
            .unwrap();
        assert!(
            removed.ends_with("metadata:\n  name: config\napiServer: {}\n"),
            "{removed}"
        );
    }

    #[test]
    fn same_values_written_differently_count_as_configured() {
        let text = "apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer:\n  extraArgs:\n    oidc-issuer-url: \"https://idp.example.com\"\n    oidc-client-id: kubernetes\n    oidc-username-claim: email\n    oidc-username-prefix: \"oidc:\"  # quoted\n    oidc-groups-claim: groups\n    oidc-groups-prefix: \"oidc:\"\n";
        assert_eq!(
            patch_cluster_configuration(text, &settings(), false).unwrap(),
            None
        );
    }

    #[test]
    fn refusals() {
        let two = with(|i| i.required_claim = vec!["a=1".into(), "b=2".into()]);
        let v3 = fixture("kubeadm-config/002-alexmitev91-v1beta3-dump.yaml");
        let e = patch_cluster_configuration(&v3, &two, false)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("kubeadm cannot carry --required-claim `a=1 b=2`: `apiServer.extraArgs` in kubeadm.k8s.io/v1beta3 is a map"), "{e}");
        assert!(e.ends_with("`kubeadm config migrate` (kubeadm 1.31+), or use `--auth-mode config`, or give one required claim"), "{e}");
        let cases = [
            ("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer: {extraArgs: {a: b}}\n", "`apiServer` is written in flow style"),
            ("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer:\n  extraArgs: {a: b}\n", "`extraArgs` is written in flow style"),
            ("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\n\"apiServer\":\n  certSANs: [x]\n", "`apiServer` is written in a form"),
            ("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer:\n  extraArgs:\n  - name: a\n    value: b\n", "`apiServer.extraArgs` is a list, but kubeadm.k8s.io/v1beta3 expects a map"),
            ("apiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\napiServer:\n  extraArgs:\n    a: b\n", "`apiServer.extraArgs` is a map, but kubeadm.k8s.io/v1beta4"),
            ("apiVersion: kubeadm.k8s.io/v1beta5\nkind: ClusterConfiguration\n", "apiVersion `kubeadm.k8s.io/v1beta5`"),
            ("apiVersion: kubeadm.k8s.io/v1beta3\nkind: InitConfiguration\n", "it holds no `kubeadm.k8s.io` ClusterConfiguration"),
            ("kind: ClusterConfiguration\napiVersion: kubeadm.k8s.io/v1beta3\n---\nkind: ClusterConfiguration\napiVersion: kubeadm.k8s.io/v1beta3\n", "it holds 2 ClusterConfiguration"),
            ("apiVersion: kubeadm.k8s.io/v1beta3\nkind: ClusterConfiguration\napiServer: [\n", "document 1 does not parse"),
        ];
        for (text, why) in cases {
            let e = patch_cluster_configuration(text, &settings(), false)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with(&format!("cannot patch the kubeadm config: {why}")),
                "{text}\n{e}"
            );
        }
    }

    #[test]
    fn damaged_files_never_panic_and_stay_idempotent() {
        // Every fixture with one line dropped, or one line indented by a space: the patcher
        // either refuses or produces a result that a second run leaves alone.
        let mut s = settings();
        s.ca = Some(ca());
        let mut patched = 0;
        for (name, _) in FIXTURES {
            let text = fixture(&format!("kubeadm-config/{name}"));
            let lines: Vec<&str> = text.split_inclusive('\n').collect();
            for i in 0..lines.len() {
                let dropped: String = lines
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, l)| *l)
                    .collect();
                let shifted: String = lines
                    .iter()
                    .enumerate()
                    .map(|(j, l)| {
                        if j == i {
                            format!(" {l}")
                        } else {
                            l.to_string()
                        }
                    })
                    .collect();
                for variant in [dropped, shifted] {
                    if let Ok(Some(out)) = patch_cluster_configuration(&variant, &s, false) {
                        patched += 1;
                        assert_eq!(
                            patch_cluster_configuration(&out, &s, false).unwrap(),
                            None,
                            "{name} line {i}:\n{out}"
                        );
                    }
                }
            }
        }
        assert!(patched > 100, "{patched}");
    }
}

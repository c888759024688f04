//! `patch --file` for a k3d config file (`k3d.io/v1alpha5`, kind `Simple`): the OIDC flags as
//! `options.k3s.extraArgs` entries `--kube-apiserver-arg=NAME=VALUE` with `nodeFilters:
//! [server:*]`, edited as text (yamltext) so every other line keeps its bytes.
//!
//! Facts (k3d `pkg/config/v1alpha5/types.go`, `pkg/config/v1alpha5/schema.json`,
//! `docs/usage/configfile.md`): `extraArgs` is a list of `{arg, nodeFilters}`; the node
//! filter is separate, so no `@` escaping; the file expands `$VAR` with no escape; files for
//! the API server come through `volumes:` (`HOST_DIR:/etc/rancher/k3s/oidc`). Older
//! apiVersions are converted by `k3d config migrate` (k3d `cmd/config/configMigrate.go`).

use std::ops::Range;

use serde_yaml_ng::Value;

use super::{FILTER, NODE_DIR};
use crate::apiserver::{self, is_managed_flag};
use crate::yamltext::{self as yt, Line};
use crate::{refuse_chars, Distribution, OidcSettings, PlanError};

const WHAT: &str = "the k3d config file";
const API_VERSION: &str = "k3d.io/v1alpha5";
const PREFIX: &str = "--kube-apiserver-arg=";

fn refuse(reason: impl Into<String>, fix: impl Into<String>) -> PlanError {
    PlanError::patch(WHAT, reason.into().replace(['\n', '\r'], " "), fix)
}

/// One `extraArgs` entry, as it reads back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    arg: String,
    filters: Vec<String>,
}

/// Whether an `extraArgs` arg is a kube-apiserver flag k8soidc owns.
fn is_ours(arg: &str) -> bool {
    arg.strip_prefix(PREFIX)
        .map(|rest| is_managed_flag(rest.split('=').next().unwrap_or_default()))
        .unwrap_or(false)
}

fn entry_of(v: &Value) -> Result<Entry, PlanError> {
    let bad = || {
        refuse(
            "an `options.k3s.extraArgs` item is not `{arg: STRING, nodeFilters: [STRING]}`",
            "fix the item, then run again",
        )
    };
    let arg = v.get("arg").and_then(Value::as_str).ok_or_else(bad)?;
    let filters = match v.get("nodeFilters") {
        None | Some(Value::Null) => vec![],
        Some(Value::Sequence(s)) => s
            .iter()
            .map(|f| f.as_str().map(str::to_string).ok_or_else(bad))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad()),
    };
    Ok(Entry {
        arg: arg.to_string(),
        filters,
    })
}

/// The `options.k3s.extraArgs` entries of a parsed config.
fn extra_args(doc: &Value) -> Result<Vec<Entry>, PlanError> {
    match &doc["options"]["k3s"]["extraArgs"] {
        Value::Null => Ok(vec![]),
        Value::Sequence(items) => items.iter().map(entry_of).collect(),
        _ => Err(refuse(
            "`options.k3s.extraArgs` is not a list",
            "fix the file, then run again",
        )),
    }
}

/// The document with our entries taken out of `extraArgs` (an emptied list reads as absent),
/// for comparing everything else before and after.
fn without_ours(doc: &Value) -> Value {
    let mut d = doc.clone();
    if let Some(Value::Sequence(items)) = d
        .get_mut("options")
        .and_then(|o| o.get_mut("k3s"))
        .and_then(|k| k.get_mut("extraArgs"))
    {
        items.retain(|i| !i.get("arg").and_then(Value::as_str).is_some_and(is_ours));
    }
    d
}

fn normalise(v: &mut Value) {
    if let Value::Mapping(m) = v {
        for (_, child) in m.iter_mut() {
            normalise(child);
        }
        m.retain(|_, child| match child {
            Value::Null => false,
            Value::Sequence(s) => !s.is_empty(),
            Value::Mapping(m) => !m.is_empty(),
            _ => true,
        });
    }
}

fn parse(text: &str) -> Result<Value, PlanError> {
    yt::parse_one(text).map_err(|e| {
        refuse(
            format!("it is not valid YAML ({e})"),
            "fix the YAML first, then run again",
        )
    })
}

/// Whether the config mounts a host directory at [`NODE_DIR`] into the servers.
fn mounts_node_dir(doc: &Value) -> bool {
    doc["volumes"].as_sequence().is_some_and(|vols| {
        vols.iter().any(|v| {
            v["volume"].as_str().is_some_and(|s| {
                let s = s.strip_suffix(":ro").unwrap_or(s);
                s.ends_with(&format!(":{NODE_DIR}"))
            })
        })
    })
}

/// Sets (or with `remove`, takes out) the OIDC flags in a `k3d.io/v1alpha5` config file:
/// `options.k3s.extraArgs` entries `--kube-apiserver-arg=oidc-…` (and
/// `authentication-config`) for `server:*`, replaced, never duplicated, appended at the end of
/// the list (the keys are added when absent). Every other line keeps its bytes.
/// `Ok(None)`: the file already says exactly that.
///
/// Refused: no (or several) `k3d.io` documents, apiVersions other than v1alpha5 (convert with
/// `k3d config migrate`), values with `$` (k3d expands it), flow-style `extraArgs` that need
/// a change, and settings that need files in the servers (a CA, config mode) when no volume
/// mounts a host directory at `/etc/rancher/k3s/oidc`.
pub fn patch_config(
    text: &str,
    s: &OidcSettings,
    remove: bool,
) -> Result<Option<String>, PlanError> {
    let mut lines = yt::split(text);
    let eol = yt::eol_of(&lines);
    let ranges = yt::documents(&lines);
    let docs = yt::parse_documents(&lines, ranges.clone()).map_err(|e| {
        refuse(
            format!("it is not valid YAML ({})", e.message),
            "fix the YAML first, then run again",
        )
    })?;
    let mut found: Vec<(usize, Range<usize>, Value)> = ranges
        .into_iter()
        .zip(&docs)
        .enumerate()
        .filter(|(_, (_, doc))| {
            doc["apiVersion"]
                .as_str()
                .is_some_and(|a| a.starts_with("k3d.io/"))
        })
        .map(|(i, (r, doc))| (i, r, doc.clone()))
        .collect();
    let (index, range, doc) = match found.len() {
        1 => found.remove(0),
        0 => {
            return Err(refuse(
                "it holds no `k3d.io` config document",
                "give the file used with `k3d cluster create --config`",
            ))
        }
        n => {
            return Err(refuse(
                format!("it holds {n} `k3d.io` config documents"),
                "keep one k3d config per file",
            ))
        }
    };
    let api = doc["apiVersion"].as_str().unwrap_or_default();
    if api != API_VERSION {
        return Err(refuse(
            format!("apiVersion `{api}` is not {API_VERSION}, the only one k8soidc edits"),
            "convert it with `k3d config migrate FILE NEW_FILE` (k3d v5), then run again on the new file",
        ));
    }
    if doc["kind"].as_str() != Some("Simple") {
        return Err(refuse(
            format!(
                "kind `{}` is not `Simple`",
                crate::escape(doc["kind"].as_str().unwrap_or_default())
            ),
            "give a `kind: Simple` k3d config file",
        ));
    }
    let want: Vec<Entry> = if remove {
        vec![]
    } else {
        refuse_chars(
            Distribution::K3d,
            s,
            &[(
                '$',
                "k3d expands `$VAR` in config files and has no escape for `$`",
            )],
        )?;
        crate::k3s::refuse_anonymous(s, Distribution::K3d)?;
        let mode = s.mode()?;
        if !apiserver::node_files(s, mode, NODE_DIR).is_empty() && !mounts_node_dir(&doc) {
            return Err(refuse(
                format!("these settings need files in the servers (the IdP CA or the AuthenticationConfiguration) and no volume mounts a host directory at `{NODE_DIR}`"),
                format!("add `volumes: [{{volume: HOST_DIR:{NODE_DIR}, nodeFilters: [\"{FILTER}\"]}}]` and run again, or use `k8soidc create --distro k3d`"),
            ));
        }
        apiserver::args(s, mode, NODE_DIR)
            .iter()
            .map(|a| Entry {
                arg: format!("{PREFIX}{}", a.pair()),
                filters: vec![FILTER.to_string()],
            })
            .collect()
    };
    let current = extra_args(&doc)?;
    let ours: Vec<Entry> = current
        .iter()
        .filter(|e| is_ours(&e.arg))
        .cloned()
        .collect();
    if ours == want {
        return Ok(None);
    }
    edit(&mut lines, range, &want, &eol)?;
    let out = yt::join(&lines);
    verify(&docs, index, &out, &want)?;
    Ok(Some(out))
}

/// The lines of one new `extraArgs` item at `ind` (the dash's column).
fn item_lines(e: &Entry, ind: usize, seq_off: usize) -> Vec<String> {
    let pad = " ".repeat(ind);
    let mut v = vec![
        format!("{pad}- arg: {}", yt::scalar(&e.arg)),
        format!("{pad}  nodeFilters:"),
    ];
    for f in &e.filters {
        v.push(format!("{pad}  {}- {f}", " ".repeat(seq_off)));
    }
    v
}

/// A key's line and the range of its block value, refusing flow values we would have to edit.
fn block_key(
    lines: &mut [Line],
    within: Range<usize>,
    key: &str,
) -> Result<Option<(usize, Range<usize>)>, PlanError> {
    let Some(at) = yt::find_key(lines, within.clone(), key) else {
        return Ok(None);
    };
    let (_, rest) = yt::key_of(&lines[at].text).unwrap_or_default();
    if !yt::value_is_block(&rest) {
        if yt::value_is_empty(&rest) {
            // `key: []` / `key: {}`: becomes a block key.
            let ind = yt::indent(&lines[at].text);
            lines[at].text = format!("{}{key}:", " ".repeat(ind));
            return Ok(Some((at, at + 1..at + 1)));
        }
        return Err(refuse(
            format!("`{key}` is written in flow style (`{rest}`)"),
            "rewrite it as a block (one entry a line), then run again",
        ));
    }
    Ok(Some((at, yt::value_range(lines, at, within.end))))
}

fn edit(
    lines: &mut Vec<Line>,
    doc: Range<usize>,
    want: &[Entry],
    eol: &str,
) -> Result<(), PlanError> {
    let seq_off = yt::sequence_offset(lines, doc.clone());
    let step = 2;
    let top = yt::child_indent(lines, doc.clone()).unwrap_or(0);
    let Some((opt_at, opt)) = block_key(lines, doc.clone(), "options")? else {
        if want.is_empty() {
            return Ok(());
        }
        let mut new = vec![
            format!("{}options:", " ".repeat(top)),
            format!("{}k3s:", " ".repeat(top + step)),
            format!("{}extraArgs:", " ".repeat(top + 2 * step)),
        ];
        for e in want {
            new.extend(item_lines(e, top + 2 * step + seq_off, seq_off));
        }
        let end = yt::content_end(lines, doc.clone()).unwrap_or(doc.end);
        yt::splice(lines, end..end, new, eol);
        return Ok(());
    };
    let opt_ind = yt::indent(&lines[opt_at].text);
    let Some((k3s_at, k3s)) = block_key(lines, opt.clone(), "k3s")? else {
        if want.is_empty() {
            return Ok(());
        }
        let ind = yt::child_indent(lines, opt.clone()).unwrap_or(opt_ind + step);
        let mut new = vec![
            format!("{}k3s:", " ".repeat(ind)),
            format!("{}extraArgs:", " ".repeat(ind + step)),
        ];
        for e in want {
            new.extend(item_lines(e, ind + step + seq_off, seq_off));
        }
        yt::splice(lines, opt.end..opt.end, new, eol);
        return Ok(());
    };
    let k3s_ind = yt::indent(&lines[k3s_at].text);
    let Some((ea_at, ea)) = block_key(lines, k3s.clone(), "extraArgs")? else {
        if want.is_empty() {
            return Ok(());
        }
        let ind = yt::child_indent(lines, k3s.clone()).unwrap_or(k3s_ind + step);
        let mut new = vec![format!("{}extraArgs:", " ".repeat(ind))];
        for e in want {
            new.extend(item_lines(e, ind + seq_off, seq_off));
        }
        yt::splice(lines, k3s.end..k3s.end, new, eol);
        return Ok(());
    };
    let ea_ind = yt::indent(&lines[ea_at].text);
    let items = yt::entries(lines, ea.clone());
    let item_ind = yt::child_indent(lines, ea.clone()).unwrap_or(ea_ind + seq_off);
    // Which items are ours, from each item's own text (checked against the parse in verify).
    let mut ours = Vec::new();
    for r in &items {
        let v = parse(&yt::dedent(&yt::join(&lines[r.clone()]), item_ind))?;
        let e = v
            .as_sequence()
            .and_then(|s| s.first())
            .ok_or_else(|| {
                refuse(
                    "an `options.k3s.extraArgs` item could not be read on its own",
                    "write each item as a block (`- arg: …` then `nodeFilters:`), then run again",
                )
            })
            .and_then(entry_of)?;
        if is_ours(&e.arg) {
            ours.push(r.clone());
        }
    }
    let kept = items.len() - ours.len();
    let mut new = Vec::new();
    for e in want {
        new.extend(item_lines(e, item_ind, seq_off));
    }
    let end = items.last().map_or(ea.end, |r| r.end);
    yt::splice(lines, end..end, new, eol);
    for r in ours.into_iter().rev() {
        yt::splice(lines, r, vec![], eol);
    }
    if kept == 0 && want.is_empty() {
        let (_, rest) = yt::key_of(&lines[ea_at].text).unwrap_or_default();
        let comment = if rest.starts_with('#') {
            format!(" {rest}")
        } else {
            String::new()
        };
        lines[ea_at].text = format!("{}extraArgs: []{comment}", " ".repeat(ea_ind));
    }
    Ok(())
}

/// The result must read back as the input (documents `docs`, the config at `index`) with
/// exactly our entries changed.
fn verify(docs: &[Value], index: usize, out: &str, want: &[Entry]) -> Result<(), PlanError> {
    let internal = |why: &str| {
        refuse(
            format!("self-check failed: {why}"),
            "the file is left unchanged; please report this with the file",
        )
    };
    let doc = yt::verify_documents(docs, out, index).map_err(|e| match e {
        yt::VerifyError::Unparsable(_) => internal("the result does not parse"),
        yt::VerifyError::DocumentCount { .. } | yt::VerifyError::OtherDocument(_) => {
            internal("other settings would change")
        }
    })?;
    let before = &docs[index];
    let got: Vec<Entry> = extra_args(&doc)?
        .into_iter()
        .filter(|e| is_ours(&e.arg))
        .collect();
    if got != want {
        return Err(internal("the flags do not read back as written"));
    }
    let (mut a, mut b) = (without_ours(before), without_ours(&doc));
    normalise(&mut a);
    normalise(&mut b);
    if a != b {
        return Err(internal("other settings would change"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use crate::yamltext::fixture;

    /// The self-check reads the whole result back: every document but the config must stay
    /// as it was (the check once looked at the config document alone).
    #[test]
    fn verify_refuses_a_change_outside_the_config_document() {
        let text = "kind: Other\nx: 1\n---\napiVersion: k3d.io/v1alpha5\nkind: Simple\n";
        let docs = yt::reparse(text).unwrap();
        let why = |out: &str| match verify(&docs, 1, out, &[]) {
            Err(PlanError::Patch { reason, .. }) => reason,
            other => panic!("{out}: {other:?}"),
        };
        verify(&docs, 1, text, &[]).unwrap();
        let config = "apiVersion: k3d.io/v1alpha5\nkind: Simple\n";
        assert_eq!(
            why(&format!("kind: Other\nx: 2\n---\n{config}")),
            "self-check failed: other settings would change"
        );
        assert_eq!(
            why(&format!("kind: Other\nx: 1\n---\n{config}---\ny: 1\n")),
            "self-check failed: other settings would change"
        );
        assert_eq!(
            why(&format!("kind: Other\nx: [\n---\n{config}")),
            "self-check failed: the result does not parse"
        );
        assert_eq!(
            why(&format!("kind: Other\nx: 1\n---\n{config}servers: 2\n")),
            "self-check failed: other settings would change"
        );
    }

    const FIXTURES: [&str; 4] = [
        "k3d-config/002-thefutoneng-keycloak-option1.yaml",
        "k3d-config/005-holos-substrate.yaml",
        "k3d-config/006-tomasz-wostal-homelab.yaml",
        "k3d-config/007-stefanbs-k3d-lab.yaml",
    ];

    fn schema_errors(text: &str) -> Vec<String> {
        let lines = yt::split(text);
        let doc: serde_json::Value = yt::documents(&lines)
            .into_iter()
            .filter_map(|r| serde_yaml_ng::from_str(&yt::join(&lines[r])).ok())
            .find(|d: &serde_json::Value| d["apiVersion"].is_string())
            .expect("a k3d document");
        let schema: serde_json::Value =
            serde_json::from_str(&fixture("schemas/k3d-v1alpha5.schema.json")).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        errors
    }

    fn args_of(text: &str) -> Vec<Entry> {
        let lines = yt::split(text);
        let doc = yt::documents(&lines)
            .into_iter()
            .filter_map(|r| serde_yaml_ng::from_str::<Value>(&yt::join(&lines[r])).ok())
            .find(|d| d["apiVersion"].is_string())
            .unwrap();
        extra_args(&doc).unwrap()
    }

    #[test]
    fn fixtures_patch_validate_and_are_idempotent() {
        let s = settings();
        for f in FIXTURES {
            let text = fixture(f);
            assert!(schema_errors(&text).is_empty(), "{f}: fixture invalid");
            let out = patch_config(&text, &s, false).unwrap().expect(f);
            assert_eq!(schema_errors(&out), Vec::<String>::new(), "{f}\n{out}");
            let ours: Vec<Entry> = args_of(&out)
                .into_iter()
                .filter(|e| is_ours(&e.arg))
                .collect();
            assert_eq!(ours.len(), 6, "{f}\n{out}");
            assert!(ours
                .iter()
                .all(|e| e.filters == ["server:*"] && e.arg.starts_with(PREFIX)));
            assert!(
                ours.iter().any(
                    |e| e.arg == "--kube-apiserver-arg=oidc-issuer-url=https://idp.example.com"
                ),
                "{out}"
            );
            // Every line of the input is still there, in order.
            let mut it = out.lines();
            for l in text.lines() {
                assert!(it.any(|o| o == l), "{f}: lost line `{l}`\n{out}");
            }
            assert_eq!(patch_config(&out, &s, false).unwrap(), None, "{f}");
            // Remove restores the input byte for byte.
            let back = patch_config(&out, &s, true).unwrap().expect(f);
            assert_eq!(back, text, "{f}");
            assert_eq!(patch_config(&text, &s, true).unwrap(), None, "{f}");
        }
    }

    #[test]
    fn replaces_not_duplicates() {
        let s = settings();
        let text = fixture(FIXTURES[2]);
        let out = patch_config(&text, &s, false).unwrap().unwrap();
        let s2 = with(|i| i.client_id = Some("other".into()));
        let out2 = patch_config(&out, &s2, false).unwrap().unwrap();
        let ours: Vec<String> = args_of(&out2)
            .into_iter()
            .filter(|e| is_ours(&e.arg))
            .map(|e| e.arg)
            .collect();
        assert_eq!(ours.len(), 6, "{out2}");
        assert!(ours.contains(&"--kube-apiserver-arg=oidc-client-id=other".to_string()));
        assert!(!out2.contains("oidc-client-id=kubernetes"), "{out2}");
        assert!(out2.contains("\"--disable=servicelb\""));
    }

    #[test]
    fn adds_missing_keys() {
        let s = settings();
        let bare = "apiVersion: k3d.io/v1alpha5\nkind: Simple\nmetadata:\n  name: x\nservers: 1\n";
        let out = patch_config(bare, &s, false).unwrap().unwrap();
        assert!(out.starts_with(bare), "{out}");
        assert!(schema_errors(&out).is_empty(), "{out}");
        assert_eq!(args_of(&out).len(), 6);
        let with_options = "apiVersion: k3d.io/v1alpha5\nkind: Simple\noptions:\n  k3d:\n    wait: true\nservers: 1\n";
        let out = patch_config(with_options, &s, false).unwrap().unwrap();
        assert!(schema_errors(&out).is_empty(), "{out}");
        assert_eq!(args_of(&out).len(), 6, "{out}");
        assert!(out.ends_with("servers: 1\n"), "{out}");
        let crlf = bare.replace('\n', "\r\n");
        let out = patch_config(&crlf, &s, false).unwrap().unwrap();
        assert!(!out.replace("\r\n", "").contains('\n'), "{out:?}");
    }

    #[test]
    fn remove_of_the_only_entries_leaves_an_empty_list() {
        let s = settings();
        let text =
            "apiVersion: k3d.io/v1alpha5\nkind: Simple\noptions:\n  k3s:\n    extraArgs: []\n";
        let out = patch_config(text, &s, false).unwrap().unwrap();
        let back = patch_config(&out, &s, true).unwrap().unwrap();
        assert_eq!(back, text);
    }

    #[test]
    fn refusals() {
        let s = settings();
        let v4 = fixture("k3d-config/004-i3oc9i-v1alpha4.yaml");
        let e = patch_config(&v4, &s, false).unwrap_err().to_string();
        assert!(
            e.contains("apiVersion `k3d.io/v1alpha4`") && e.contains("k3d config migrate"),
            "{e}"
        );
        let e = patch_config("a: 1\n", &s, false).unwrap_err().to_string();
        assert!(e.contains("no `k3d.io` config document"), "{e}");
        let dollar = with(|i| i.client_id = Some("a$b".into()));
        let e = patch_config(&fixture(FIXTURES[0]), &dollar, false)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("k3d cannot carry --client-id `a$b`"), "{e}");
        let mut with_ca = settings();
        with_ca.ca = Some(ca());
        let e = patch_config(&fixture(FIXTURES[0]), &with_ca, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no volume mounts a host directory"), "{e}");
        let flow = "apiVersion: k3d.io/v1alpha5\nkind: Simple\noptions:\n  k3s:\n    extraArgs: [{arg: --x}]\n";
        let e = patch_config(flow, &s, false).unwrap_err().to_string();
        assert!(e.contains("flow style"), "{e}");
    }

    #[test]
    fn ca_with_a_mounted_directory() {
        let mut s = settings();
        s.ca = Some(ca());
        let text = "apiVersion: k3d.io/v1alpha5\nkind: Simple\nvolumes:\n  - volume: /srv/oidc:/etc/rancher/k3s/oidc\n    nodeFilters:\n      - server:*\n";
        let out = patch_config(text, &s, false).unwrap().unwrap();
        assert!(schema_errors(&out).is_empty(), "{out}");
        assert!(
            out.contains("oidc-ca-file=/etc/rancher/k3s/oidc/oidc-ca.pem"),
            "{out}"
        );
        assert!(out.contains("      - server:*\noptions:\n"), "{out}");
    }
}

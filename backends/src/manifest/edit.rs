//! The edits of a manifest (flags, volume and mount) as line replacements, and the check
//! that the result says exactly what was meant and nothing else changed.

use serde_yaml_ng::Value;

use super::scalar::{self, Quote};
use super::{analyze, internal, managed, refuse, split_flag, Doc, NodeMount, FIX_HAND};
use crate::apiserver::{is_managed_flag, Arg};
use crate::yamltext::{self as text, Block, Edits, Item};
use crate::{escape, PlanError};

const DIR_TYPE: &str = "DirectoryOrCreate";

/// Refuses requests that are not ours to make (caller errors).
pub(super) fn check_request(args: &[Arg], mount: Option<&NodeMount>) -> Result<(), PlanError> {
    for a in args {
        let odd = a.name.starts_with('-') || a.name.contains(['=', ' ', '\t', '\n']);
        if odd || !is_managed_flag(&a.name) {
            return Err(refuse(
                format!("`--{}` is not a flag k8soidc manages", escape(&a.name)),
                "pass only `--oidc-*` or `--authentication-config` flags",
            ));
        }
    }
    let config = args.iter().any(|a| a.name == "authentication-config");
    if config && args.iter().any(|a| a.name != "authentication-config") {
        return Err(refuse(
            "both `--authentication-config` and `--oidc-*` flags were asked for",
            "choose one mode: kube-apiserver exits when given both",
        ));
    }
    if let Some(m) = mount {
        let label = m.name.len() <= 63
            && m.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && m.name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && m.name.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !label {
            return Err(refuse(
                format!("volume name `{}` is not a DNS-1123 label", escape(&m.name)),
                "use lowercase letters, digits and `-`, e.g. `k8soidc`",
            ));
        }
        for p in [&m.host_path, &m.mount_path] {
            if !p.starts_with('/') || p.chars().any(char::is_control) {
                return Err(refuse(
                    format!("`{}` is not an absolute path", escape(p)),
                    "give an absolute directory such as /etc/kubernetes/oidc",
                ));
            }
        }
    }
    Ok(())
}

/// `value` as an item written like `like` (same indentation, dash spacing and quoting).
fn render_item(doc: &Doc, like: &Item, value: &str) -> Result<String, PlanError> {
    let text = doc.lines[like.start].text.as_str();
    let col = like.col.unwrap_or(text.len()).min(text.len());
    let s = scalar::render(value, Quote::of(&text[col..])).ok_or_else(|| {
        refuse(
            format!("`{}` cannot be written as a YAML string", escape(value)),
            "choose a value without control characters",
        )
    })?;
    Ok(format!("{}{s}", &text[..col]))
}

fn listing(names: &[String]) -> String {
    names.join(", ")
}

/// Replaces the managed flags with `want`: a flag already present keeps its place (and its
/// line, when the value is right), extra ones go, new ones go after the last kept one (or
/// where the first old one was, or after the last item).
pub(super) fn flags(doc: &Doc, want: &[Arg], edits: &mut Edits) -> Result<Vec<String>, PlanError> {
    struct Old<'v> {
        item: Item,
        name: &'v str,
        value: &'v str,
    }
    let mut old = Vec::new();
    for (li, ii, v) in doc.flag_items() {
        let Some((name, value)) = split_flag(v).filter(|(n, _)| is_managed_flag(n)) else {
            continue;
        };
        let Some(value) = value else {
            return Err(refuse(
                format!("`{v}` has its value in a separate item"),
                "write it as `--name=value` in one item",
            ));
        };
        let item = doc.lists[li].items[ii];
        let source = item.col.and_then(|c| doc.lines[item.start].text.get(c..));
        if source.is_some_and(|t| t.starts_with(['&', '*', '!'])) {
            return Err(refuse(
                format!("`{v}` carries a YAML anchor, alias or tag"),
                "write it as a plain item, then run again",
            ));
        }
        old.push(Old { item, name, value });
    }
    let mut used = vec![false; old.len()];
    let (mut kept, mut new) = (Vec::new(), Vec::new());
    for (w, a) in want.iter().enumerate() {
        match (0..old.len()).find(|&k| !used[k] && old[k].name == a.name) {
            Some(k) => {
                used[k] = true;
                kept.push((w, k));
            }
            None => new.push(w),
        }
    }
    let (mut updated, mut removed) = (Vec::new(), Vec::new());
    for &(w, k) in &kept {
        if old[k].value != want[w].value {
            let line = render_item(doc, &old[k].item, &want[w].flag())?;
            edits.replace(old[k].item.start, old[k].item.start + 1, vec![line]);
            updated.push(format!("`--{}`", want[w].name));
        }
    }
    for (o, _) in old.iter().zip(&used).filter(|(_, u)| !**u) {
        edits.replace(o.item.start, o.item.start + 1, Vec::new());
        removed.push(format!("`--{}={}`", o.name, escape(o.value)));
    }
    let added: Vec<String> = new
        .iter()
        .map(|&w| format!("`--{}`", want[w].name))
        .collect();
    if !new.is_empty() {
        let (at, like) = if let Some(k) = kept.iter().map(|&(_, k)| k).max() {
            (old[k].item.start + 1, old[k].item)
        } else if let Some(o) = old.first() {
            (o.item.start, o.item)
        } else {
            let list = doc.lists.iter().rev().find(|l| !l.items.is_empty());
            let like = *list
                .and_then(|l| l.items.last())
                .ok_or_else(|| refuse("the container has no command items", FIX_HAND))?;
            (like.last + 1, like)
        };
        let lines = new
            .iter()
            .map(|&w| render_item(doc, &like, &want[w].flag()))
            .collect::<Result<Vec<_>, _>>()?;
        edits.replace(at, at, lines);
    }
    let mut notes = Vec::new();
    let had_config = old.iter().any(|o| o.name == "authentication-config");
    let had_oidc = old.iter().any(|o| o.name != "authentication-config");
    let wants_config = want.iter().any(|a| a.name == "authentication-config");
    if had_config && !wants_config && !want.is_empty() {
        notes.push("switched from `--authentication-config` to `--oidc-*` flags: anything else the old configuration file set is no longer used".into());
    }
    if had_oidc && wants_config {
        notes.push("switched from `--oidc-*` flags to `--authentication-config` (kube-apiserver refuses both together)".into());
    }
    for (what, list) in [
        ("added", &added),
        ("updated", &updated),
        ("removed", &removed),
    ] {
        if !list.is_empty() {
            notes.push(format!("{what} {}", listing(list)));
        }
    }
    if notes.is_empty() {
        notes.push(if want.is_empty() {
            "no OIDC flags to remove".into()
        } else {
            "the OIDC flags are already as wanted".into()
        });
    }
    Ok(notes)
}

/// Layout of list entries: dash column, content column, key order and nested indentation.
#[derive(Debug, Clone, Copy)]
struct Style {
    dash: usize,
    col: usize,
    name_first: bool,
    nest: usize,
}

fn entry(st: &Style, keys: &[String]) -> Vec<String> {
    keys.iter()
        .enumerate()
        .map(|(i, kv)| match i {
            0 => format!(
                "{}-{}{kv}",
                " ".repeat(st.dash),
                " ".repeat(st.col - st.dash - 1)
            ),
            _ => format!("{}{kv}", " ".repeat(st.col)),
        })
        .collect()
}

fn style_of(doc: &Doc, item: &Item) -> Option<Style> {
    let col = item.col?;
    let nest = item
        .block()
        .and_then(|b| text::find_key_in(&doc.lines, &b, "hostPath").ok().flatten())
        .and_then(|k| text::child_block(&doc.lines, &k).map(|c| c.col - k.col))
        .unwrap_or(2);
    Some(Style {
        dash: item.dash,
        col,
        name_first: doc.lines[item.start].text[col..].starts_with("name:"),
        nest,
    })
}

/// For a list that does not exist yet: the container's own habits.
fn default_style(doc: &Doc, parent: &Block) -> Style {
    let offset = doc
        .lists
        .first()
        .and_then(|l| Some(l.items.first()?.dash.saturating_sub(l.key.col)))
        .unwrap_or(0);
    let dash = parent.col + offset;
    let first = doc.lines[doc.container.start].text.as_str();
    Style {
        dash,
        col: dash + 2,
        name_first: first
            .get(doc.container.col..)
            .is_some_and(|t| t.starts_with("name:")),
        nest: 2,
    }
}

fn seq(v: Option<&Value>) -> Vec<Value> {
    v.and_then(Value::as_sequence).cloned().unwrap_or_default()
}

fn name_of(v: &Value) -> Option<&str> {
    v.get("name").and_then(Value::as_str)
}

fn norm(p: &str) -> &str {
    match p.trim_end_matches('/') {
        "" => "/",
        t => t,
    }
}

fn mount_right(v: &Value, m: &NodeMount) -> bool {
    v.as_mapping().is_some_and(|map| map.len() == 3)
        && v["mountPath"].as_str() == Some(&m.mount_path)
        && v["readOnly"] == Value::Bool(true)
}

fn volume_right(v: &Value, m: &NodeMount) -> bool {
    v.as_mapping().is_some_and(|map| map.len() == 2)
        && v["hostPath"].as_mapping().is_some_and(|h| h.len() == 2)
        && v["hostPath"]["path"].as_str() == Some(&m.host_path)
        && v["hostPath"]["type"].as_str() == Some(DIR_TYPE)
}

/// The existing mount through which `m.host_path` already appears at `m.mount_path`.
fn covered(mounts: &[Value], vols: &[Value], m: &NodeMount) -> Option<(String, String)> {
    let (host, want) = (norm(&m.host_path), norm(&m.mount_path));
    mounts.iter().find_map(|vm| {
        if vm.get("subPath").is_some() || vm.get("subPathExpr").is_some() {
            return None;
        }
        let name = name_of(vm)?;
        let at = norm(vm.get("mountPath")?.as_str()?);
        let vol = vols.iter().find(|v| name_of(v) == Some(name))?;
        let kind = vol["hostPath"]["type"].as_str().unwrap_or("");
        if !matches!(kind, "" | "Directory" | "DirectoryOrCreate") {
            return None;
        }
        let hp = norm(vol["hostPath"]["path"].as_str()?);
        let rel = host.strip_prefix(if hp == "/" { "" } else { hp })?;
        if !(rel.is_empty() || rel.starts_with('/')) {
            return None;
        }
        let shown = if at == "/" {
            rel.to_string()
        } else {
            format!("{at}{rel}")
        };
        (norm(&shown) == want).then(|| (name.to_string(), hp.to_string()))
    })
}

/// Ensures the entry named `name` in list `key` of `parent` (`index`: its position and
/// whether it is already right). Returns whether anything changes.
#[allow(clippy::too_many_arguments)]
fn upsert(
    doc: &Doc,
    edits: &mut Edits,
    parent: &Block,
    key_name: &str,
    count: usize,
    index: Option<(usize, bool)>,
    render: &dyn Fn(&Style) -> Vec<String>,
) -> Result<bool, PlanError> {
    let default = default_style(doc, parent);
    let key = text::find_key_in(&doc.lines, parent, key_name).map_err(|e| refuse(e, FIX_HAND))?;
    let Some(key) = key else {
        let at = text::last_content(&doc.lines, parent.start, parent.end) + 1;
        let mut lines = vec![format!("{}{key_name}:", " ".repeat(parent.col))];
        lines.extend(render(&default));
        edits.replace(at, at, lines);
        return Ok(true);
    };
    let items = text::items(&doc.lines, &key).map_err(|e| refuse(e, FIX_HAND))?;
    if items.len() != count {
        return Err(refuse(
            format!("the entries of `{key_name}` could not be matched to lines"),
            FIX_HAND,
        ));
    }
    if !key.inline.is_empty() {
        if items.is_empty()
            && matches!(key.inline.as_str(), "[]" | "null" | "~")
            && key.line != parent.start
        {
            let mut lines = vec![format!("{}{key_name}:", " ".repeat(key.col))];
            lines.extend(render(&default));
            edits.replace(key.line, key.line + 1, lines);
            return Ok(true);
        }
        return Err(refuse(
            format!("`{key_name}` is written inline"),
            "write it as a block list, one `- ` entry a line",
        ));
    }
    // Look like the entry replaced, or like the one the new entry follows.
    let like = match index {
        Some((i, _)) => items.get(i),
        None => items.last(),
    };
    let style = like.and_then(|it| style_of(doc, it)).unwrap_or(default);
    match index {
        Some((_, true)) => Ok(false),
        Some((i, false)) => {
            edits.replace(items[i].start, items[i].last + 1, render(&style));
            Ok(true)
        }
        None => {
            let at = items.last().map_or(key.line + 1, |it| it.last + 1);
            edits.replace(at, at, render(&style));
            Ok(true)
        }
    }
}

/// Ensures the read-only hostPath mount. Returns whether our entries are (to be) present,
/// and a note.
pub(super) fn mount(
    doc: &Doc,
    m: &NodeMount,
    edits: &mut Edits,
) -> Result<(bool, Option<String>), PlanError> {
    let mounts = seq(doc.container().get("volumeMounts"));
    let vols = seq(doc.pod()["spec"].get("volumes"));
    let find = |list: &[Value]| list.iter().position(|v| name_of(v) == Some(&m.name));
    let (vm_i, vol_i) = (find(&mounts), find(&vols));
    if vm_i.is_none() && vol_i.is_none() {
        if let Some((name, hp)) = covered(&mounts, &vols, m) {
            return Ok((false, Some(format!(
                "`{}` is already visible at `{}` through volume `{name}` (hostPath `{hp}`); no volume added",
                m.host_path, m.mount_path
            ))));
        }
    }
    if let Some(other) = mounts.iter().find(|v| {
        name_of(v) != Some(&m.name)
            && v.get("mountPath").and_then(Value::as_str).map(norm) == Some(norm(&m.mount_path))
    }) {
        return Err(refuse(
            format!(
                "`{}` is already the mount point of volume `{}`",
                m.mount_path,
                name_of(other).unwrap_or("?")
            ),
            "choose another directory for the OIDC files",
        ));
    }
    let q = |v: &str| {
        scalar::render(v, Quote::Plain).ok_or_else(|| {
            refuse(
                format!("`{}` cannot be written as a YAML string", escape(v)),
                "choose another path",
            )
        })
    };
    let (name, host, at) = (q(&m.name)?, q(&m.host_path)?, q(&m.mount_path)?);
    let mount_lines = |st: &Style| {
        let (n, p) = (format!("name: {name}"), format!("mountPath: {at}"));
        let keys = if st.name_first { [n, p] } else { [p, n] };
        entry(
            st,
            &[keys[0].clone(), keys[1].clone(), "readOnly: true".into()],
        )
    };
    let volume_lines = |st: &Style| {
        let pad = " ".repeat(st.nest);
        let hp = [
            "hostPath:".to_string(),
            format!("{pad}path: {host}"),
            format!("{pad}type: {DIR_TYPE}"),
        ];
        let n = [format!("name: {name}")];
        // Nested lines carry their extra indentation (`pad`) on top of the content column.
        let keys = if st.name_first {
            [&n[..], &hp[..]].concat()
        } else {
            [&hp[..], &n[..]].concat()
        };
        entry(st, &keys)
    };
    let vm_changed = upsert(
        doc,
        edits,
        &doc.container,
        "volumeMounts",
        mounts.len(),
        vm_i.map(|i| (i, mount_right(&mounts[i], m))),
        &mount_lines,
    )?;
    let vol_changed = upsert(
        doc,
        edits,
        &doc.spec,
        "volumes",
        vols.len(),
        vol_i.map(|i| (i, volume_right(&vols[i], m))),
        &volume_lines,
    )?;
    let note = if vm_changed || vol_changed {
        format!(
            "mounted `{}` read-only at `{}` (volume `{}`)",
            m.host_path, m.mount_path, m.name
        )
    } else {
        format!(
            "volume `{}` already mounts `{}` at `{}`",
            m.name, m.host_path, m.mount_path
        )
    };
    Ok((true, Some(note)))
}

/// Removes our mount and volume (the volume stays when another container mounts it).
pub(super) fn unmount(doc: &Doc, name: &str, edits: &mut Edits) -> Result<Vec<String>, PlanError> {
    let spec = &doc.pod()["spec"];
    let in_use = ["containers", "initContainers"].iter().any(|k| {
        seq(spec.get(*k)).iter().enumerate().any(|(i, c)| {
            !(*k == "containers" && i == doc.container_index)
                && seq(c.get("volumeMounts"))
                    .iter()
                    .any(|vm| name_of(vm) == Some(name))
        })
    });
    let mut notes = Vec::new();
    let lists = [
        (
            doc.container,
            seq(doc.container().get("volumeMounts")),
            "volumeMounts",
        ),
        (doc.spec, seq(spec.get("volumes")), "volumes"),
    ];
    for (parent, values, key_name) in lists {
        let Some(i) = values.iter().position(|v| name_of(v) == Some(name)) else {
            continue;
        };
        if key_name == "volumes" && in_use {
            notes.push(format!("kept volume `{name}`: another container mounts it"));
            continue;
        }
        let key = text::find_key_in(&doc.lines, &parent, key_name)
            .map_err(|e| refuse(e, FIX_HAND))?
            .ok_or_else(|| refuse(format!("`{key_name}:` was not found"), FIX_HAND))?;
        let items = text::items(&doc.lines, &key).map_err(|e| refuse(e, FIX_HAND))?;
        if !key.inline.is_empty() || items.len() != values.len() {
            return Err(refuse(
                format!("`{key_name}` is not a plain block list"),
                FIX_HAND,
            ));
        }
        let whole = items.len() == 1 && !(parent.dash_first && key.line == parent.start);
        let start = if whole { key.line } else { items[i].start };
        edits.replace(start, items[i].last + 1, Vec::new());
        notes.push(format!("removed {key_name} entry `{name}`"));
    }
    Ok(notes)
}

/// Drops the entry named `name` from list `key` of `parent`, and the key when left empty.
fn drop_named(parent: &mut Value, key: &str, name: &str) {
    let Some(map) = parent.as_mapping_mut() else {
        return;
    };
    if let Some(Value::Sequence(list)) = map.get_mut(key) {
        list.retain(|v| name_of(v) != Some(name));
    }
    if map
        .get(key)
        .is_some_and(|v| v.is_null() || v.as_sequence().is_some_and(Vec::is_empty))
    {
        map.remove(key);
    }
}

/// The documents with the managed flags and the entries named `name` taken out.
fn strip(doc: &Doc, name: Option<&str>) -> Vec<Value> {
    let mut docs = doc.docs.clone();
    let spec = &mut docs[doc.pod]["spec"];
    if let Some(c) = spec
        .get_mut("containers")
        .and_then(|c| c.get_mut(doc.container_index))
    {
        for key in ["command", "args"] {
            if let Some(Value::Sequence(list)) = c.get_mut(key) {
                list.retain(|v| !v.as_str().is_some_and(managed));
            }
        }
        if let Some(n) = name {
            drop_named(c, "volumeMounts", n);
        }
    }
    if let Some(n) = name {
        drop_named(spec, "volumes", n);
    }
    docs
}

/// What the result must show besides the flags.
pub(super) enum Expect<'m> {
    /// No volume changes at all.
    Nothing,
    /// Our mount and volume, exactly once each and right.
    Mounted(&'m NodeMount),
    /// No mount named so in the container.
    Unmounted(&'m str),
}

/// Parses the result again and checks it: same documents once our flags and entries are
/// taken out of both, managed flags exactly `want`, never both modes, entries as expected.
pub(super) fn verify(
    before: &Doc,
    out: &str,
    want: &[String],
    expect: Expect<'_>,
) -> Result<(), PlanError> {
    let after = analyze(out).map_err(|e| {
        let why = match e {
            PlanError::Patch { reason, .. } => reason,
            other => other.to_string(),
        };
        internal(format!("the result does not read back ({why})"))
    })?;
    if (after.pod, after.container_index) != (before.pod, before.container_index) {
        return Err(internal("the container moved"));
    }
    let mut got = after.managed_flags();
    got.sort();
    let mut wanted = want.to_vec();
    wanted.sort();
    if got != wanted {
        return Err(internal(format!(
            "the OIDC flags read back as `{}`",
            escape(&got.join(" "))
        )));
    }
    let names: Vec<&str> = got
        .iter()
        .filter_map(|f| split_flag(f).map(|(n, _)| n))
        .collect();
    if names.contains(&"authentication-config") && names.len() > 1 {
        return Err(internal("both modes are present"));
    }
    let name = match expect {
        Expect::Nothing => None,
        Expect::Mounted(m) => Some(m.name.as_str()),
        Expect::Unmounted(n) => Some(n),
    };
    // As many documents, all but the Pod unchanged; the Pod, our entries taken out, unchanged.
    let others = crate::yamltext::same_documents_but(&before.docs, &after.docs, before.pod);
    if others.is_err() || strip(before, name) != strip(&after, name) {
        return Err(internal(
            "something other than the OIDC flags and volume changed",
        ));
    }
    let mounts = seq(after.container().get("volumeMounts"));
    let vols = seq(after.pod()["spec"].get("volumes"));
    let named = |list: &[Value], n: &str| {
        list.iter()
            .filter(|v| name_of(v) == Some(n))
            .cloned()
            .collect::<Vec<_>>()
    };
    match expect {
        Expect::Mounted(m) => {
            let (vm, vol) = (named(&mounts, &m.name), named(&vols, &m.name));
            if !(vm.len() == 1
                && mount_right(&vm[0], m)
                && vol.len() == 1
                && volume_right(&vol[0], m))
            {
                return Err(internal(format!(
                    "volume `{}` does not read back as intended",
                    m.name
                )));
            }
        }
        Expect::Unmounted(n) if !named(&mounts, n).is_empty() => {
            return Err(internal(format!("mount `{n}` is still there")));
        }
        _ => {}
    }
    Ok(())
}

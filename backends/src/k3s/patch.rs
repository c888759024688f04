//! The text patcher for an existing `config.yaml`: edits the `kube-apiserver-arg` (and, for
//! RKE2, `kube-apiserver-extra-mount`) block lists line by line, then parses the result to prove
//! it holds exactly the intended lists and nothing else changed.

use serde_yaml_ng::{Mapping, Value};

use super::{
    apiserver_entries, config_path, extra_mount, mount_entries, node_dir, scalar, Style, ARG_KEY,
    MOUNT_KEY,
};
use crate::apiserver::{is_managed_flag, AUTH_CONFIG_FILE};
use crate::{Distribution, OidcSettings, PlanError};

use crate::yamltext::{self as yt, Line};

/// The key of a top-level `key:` line and what follows the colon (trimmed, comment included):
/// [`yt::key_of`] of a line at column 0 whose key is not quoted.
fn top_level_key(line: &str) -> Option<(String, String)> {
    if line.starts_with([' ', '\t', '#', '-', '"', '\'']) {
        return None;
    }
    yt::key_of(line)
}

/// The indentation of the file's first block-list item (new lists copy it), else two spaces.
fn default_indent(lines: &[Line]) -> String {
    lines
        .iter()
        .map(|l| l.text.as_str())
        .find(|t| t.trim_start().starts_with("- "))
        .map_or("  ".to_string(), |t| " ".repeat(yt::indent(t)))
}

/// One list k8soidc edits: entries it owns are replaced by `wanted`.
struct ListEdit<'a> {
    key: &'a str,
    ours: &'a dyn Fn(&str) -> Result<bool, PlanError>,
    wanted: Vec<String>,
}

/// The patch context: the file, for messages, and the original parse.
struct Patch<'a> {
    what: &'a str,
    doc: &'a Mapping,
    lines: Vec<Line>,
    /// The ending new lines get.
    eol: String,
}

impl Patch<'_> {
    fn refuse(&self, reason: impl Into<String>) -> PlanError {
        PlanError::patch(
            self.what,
            reason,
            "rewrite that part as a block list (`key:` then one `- item` a line) or edit the file by hand, then run again",
        )
    }

    /// Applies one list edit to the lines; returns the key and the list it must now hold
    /// (an empty list means the key is gone).
    fn edit(&mut self, e: &ListEdit<'_>) -> Result<Option<(String, Vec<String>)>, PlanError> {
        let append_key = format!("{}+", e.key);
        let present: Vec<&str> = [e.key, append_key.as_str()]
            .into_iter()
            .filter(|k| self.doc.contains_key(*k))
            .collect();
        let (key, current) = match present.as_slice() {
            [] => (e.key.to_string(), Vec::new()),
            [k] => (k.to_string(), self.strings(k)?),
            _ => return Err(self.refuse(format!("both `{}` and `{append_key}` are set", e.key))),
        };
        let mut target = Vec::new();
        for item in &current {
            if !(e.ours)(item)? {
                target.push(item.clone());
            }
        }
        target.extend(e.wanted.iter().cloned());
        if target == current {
            return Ok(None);
        }
        if present.is_empty() {
            let indent = default_indent(&self.lines);
            let mut new = vec![format!("{key}:")];
            for item in &e.wanted {
                new.push(format!("{indent}- {}", scalar(item, Style::Plain)));
            }
            let end = self.lines.len();
            yt::splice(&mut self.lines, end..end, new, &self.eol);
            return Ok(Some((key, target)));
        }
        self.rewrite_list(&key, &current, e, target.is_empty())?;
        Ok(Some((key, target)))
    }

    /// The list under `key` as strings; anything else is refused.
    fn strings(&self, key: &str) -> Result<Vec<String>, PlanError> {
        match self.doc.get(key) {
            Some(Value::Null) | None => Ok(Vec::new()),
            Some(Value::Sequence(seq)) => seq
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.refuse(format!(
                        "`{key}` holds `{}`, which is not a string",
                        serde_yaml_ng::to_string(other)
                            .unwrap_or_default()
                            .trim_end()
                            .replace('\n', " ")
                    ))),
                })
                .collect(),
            Some(_) => Err(self.refuse(format!("`{key}` is not a list"))),
        }
    }

    fn rewrite_list(
        &mut self,
        key: &str,
        current: &[String],
        e: &ListEdit<'_>,
        drop_key: bool,
    ) -> Result<(), PlanError> {
        let found: Vec<usize> = (0..self.lines.len())
            .filter(|&i| top_level_key(&self.lines[i].text).is_some_and(|(k, _)| k == key))
            .collect();
        let [at] = found.as_slice() else {
            return Err(self.refuse(format!(
                "cannot find the `{key}:` line (found {})",
                found.len()
            )));
        };
        let at = *at;
        let rest = top_level_key(&self.lines[at].text)
            .map(|(_, r)| r)
            .unwrap_or_default();
        let rest = rest.as_str();
        if rest.starts_with('[') {
            return Err(self.refuse(format!("`{key}` is a flow list `{rest}`")));
        }
        if !(rest.is_empty() || rest.starts_with('#')) {
            return Err(self.refuse(format!("`{key}:` has `{rest}` on its line")));
        }
        // The list: item lines at one indentation, with comments and blank lines among them.
        let mut items: Vec<(usize, String, Style, String)> = Vec::new();
        let mut list_indent = None;
        let mut end = at + 1;
        for j in at + 1..self.lines.len() {
            let text = self.lines[j].text.as_str();
            let trimmed = text.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = yt::indent(text);
            let is_item = trimmed == "-" || trimmed.starts_with("- ");
            if !is_item {
                if indent == 0 && !text.starts_with('\t') {
                    break;
                }
                return Err(self.refuse(format!(
                    "line {} `{trimmed}` in `{key}` is not a one-line `- item`",
                    j + 1
                )));
            }
            if *list_indent.get_or_insert(indent) != indent {
                return Err(self.refuse(format!(
                    "line {} of `{key}` is indented differently from the items before it",
                    j + 1
                )));
            }
            let after_dash = &trimmed[1..];
            let item = after_dash.trim_start();
            let gap = after_dash[..after_dash.len() - item.len()].to_string();
            let value = match serde_yaml_ng::from_str::<Value>(item) {
                Ok(Value::String(v)) if !item.is_empty() => v,
                _ => {
                    return Err(self.refuse(format!(
                        "line {} `{trimmed}` of `{key}` is not a one-line string item",
                        j + 1
                    )))
                }
            };
            let style = match item.chars().next() {
                Some('"') => Style::Double,
                Some('\'') => Style::Single,
                _ => Style::Plain,
            };
            items.push((j, value, style, gap));
            end = j + 1;
        }
        let values: Vec<&String> = items.iter().map(|(_, v, _, _)| v).collect();
        if values.iter().copied().ne(current.iter()) {
            return Err(self.refuse(format!(
                "the items of `{key}` could not be read line by line"
            )));
        }
        let style = match items.first() {
            Some((_, _, first, _)) if items.iter().all(|(_, _, s, _)| s == first) => *first,
            _ => Style::Plain,
        };
        let indent = list_indent.map_or_else(|| default_indent(&self.lines), |i| " ".repeat(i));
        let gap = items
            .last()
            .map_or(" ".to_string(), |(_, _, _, g)| g.clone());
        let mut ours_at = Vec::new();
        for (j, value, _, _) in &items {
            if (e.ours)(value)? {
                ours_at.push(*j);
            }
        }
        let new_items: Vec<String> = e
            .wanted
            .iter()
            .map(|v| format!("{indent}-{gap}{}", scalar(v, style)))
            .collect();
        // Bottom up, so the indices above stay valid: the new items after the list, then
        // our old items, then (emptied list) the key.
        yt::splice(&mut self.lines, end..end, new_items, &self.eol);
        for &j in ours_at.iter().rev() {
            yt::splice(&mut self.lines, j..j + 1, vec![], &self.eol);
        }
        if drop_key {
            yt::splice(&mut self.lines, at..at + 1, vec![], &self.eol);
        }
        Ok(())
    }
}

/// Edits an existing `/etc/rancher/{k3s,rke2}/config.yaml` (or a drop-in) as text: removes
/// the `kube-apiserver-arg` entries k8soidc owns (`oidc-*`, and `authentication-config` at our
/// path, with or without a leading `--`), appends the wanted ones at the end of the list in
/// its own indentation and quoting (adding the key at the end of the file when absent) and,
/// for RKE2, the `kube-apiserver-extra-mount` of the OIDC directory when files are needed.
/// Comments and every other line stay byte for byte. `remove` takes our entries out.
/// `Ok(None)`: the file is already as wanted.
///
/// Refused: flow lists (`[a, b]`) that need a change, items spanning lines, non-string items,
/// both `key` and `key+`, and an `authentication-config` entry pointing elsewhere (it may
/// configure more than this issuer, and kube-apiserver refuses it with `--oidc-*` flags).
pub fn patch_config(
    text: &str,
    s: &OidcSettings,
    distribution: Distribution,
    remove: bool,
) -> Result<Option<String>, PlanError> {
    let what = config_path(distribution)?;
    let refuse = |reason: String| {
        PlanError::patch(
            &what,
            reason,
            "fix the file so it is a YAML mapping of k3s flags, then run again",
        )
    };
    let doc = match yt::parse_one(text) {
        Ok(Value::Mapping(m)) => m,
        Ok(Value::Null) => Mapping::new(),
        Ok(_) => return Err(refuse("it is not a YAML mapping".into())),
        Err(e) => return Err(refuse(format!("it is not valid YAML ({e})"))),
    };
    let (args, mounts) = if remove {
        (Vec::new(), Vec::new())
    } else {
        (
            apiserver_entries(s, distribution)?,
            mount_entries(s, distribution)?,
        )
    };
    let our_config = format!("{}/{AUTH_CONFIG_FILE}", node_dir(distribution)?);
    let arg_is_ours = |entry: &str| -> Result<bool, PlanError> {
        let entry = entry.trim_start_matches('-');
        let (name, value) = entry.split_once('=').unwrap_or((entry, ""));
        if !is_managed_flag(name) {
            return Ok(false);
        }
        if name == "authentication-config" && value != our_config {
            if remove {
                return Ok(false);
            }
            return Err(PlanError::patch(
                &what,
                format!("`{ARG_KEY}` sets authentication-config `{value}`, a file k8soidc did not write (it may configure other authenticators, and kube-apiserver refuses it together with --oidc-* flags)"),
                "add the issuer to that file yourself, or remove the entry, then run again",
            ));
        }
        Ok(true)
    };
    let our_mount = extra_mount(distribution)?;
    let mount_is_ours =
        |entry: &str| -> Result<bool, PlanError> { Ok(our_mount.as_deref() == Some(entry)) };
    let mut edits = vec![ListEdit {
        key: ARG_KEY,
        ours: &arg_is_ours,
        wanted: args,
    }];
    if distribution == Distribution::Rke2 {
        edits.push(ListEdit {
            key: MOUNT_KEY,
            ours: &mount_is_ours,
            wanted: mounts,
        });
    }
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut patch = Patch {
        what: &what,
        doc: &doc,
        lines: yt::split(text),
        eol: eol.to_string(),
    };
    let mut changed = Vec::new();
    for e in &edits {
        changed.extend(patch.edit(e)?);
    }
    if changed.is_empty() {
        return Ok(None);
    }
    let after = yt::join(&patch.lines);
    check_result(&after, &doc, &changed).map_err(|reason| {
        PlanError::patch(
            &what,
            format!("the edited text does not read back as intended ({reason})"),
            "edit the file by hand (see `k8soidc render`), then run again",
        )
    })?;
    Ok((after != text).then_some(after))
}

/// Parses the edited text: the changed keys hold exactly their new lists, all else is as before.
fn check_result(
    after: &str,
    before: &Mapping,
    changed: &[(String, Vec<String>)],
) -> Result<(), String> {
    let parsed = match yt::parse_one(after)? {
        Value::Mapping(m) => m,
        Value::Null => Mapping::new(),
        _ => return Err("not a mapping".into()),
    };
    let mut expected = before.clone();
    for (key, list) in changed {
        if list.is_empty() {
            expected.remove(key.as_str());
        } else {
            let seq = list.iter().cloned().map(Value::String).collect();
            expected.insert(Value::String(key.clone()), Value::Sequence(seq));
        }
    }
    // Key order may differ when a key was added; compare as sets of entries.
    if parsed.len() != expected.len() || expected.iter().any(|(k, v)| parsed.get(k) != Some(v)) {
        return Err("the parsed result differs from the intended one".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k3s::tests::{config_mode, ENTRIES};
    use crate::testutil::*;

    proptest::proptest! {
        #[test]
        fn patching_any_config_is_idempotent_and_reversible(
            parts in proptest::collection::vec(
                proptest::sample::select(vec![
                    "selinux: true\n",
                    "# comment\n",
                    "\n",
                    "tls-san:\n  - a.example.com\n",
                    "kube-apiserver-arg:\n  - \"audit-log-maxage=30\"\n  # inside\n  - --oidc-client-id=old\n",
                    "kube-apiserver-extra-mount:\n- /srv:/srv\n",
                ]),
                0..6,
            ),
            rke2 in proptest::bool::ANY,
            crlf in proptest::bool::ANY,
        ) {
            // Each key at most once, as YAML requires.
            let mut seen = Vec::new();
            let text: String = parts
                .into_iter()
                .filter(|p| {
                    if p.starts_with(['#', '\n']) {
                        return true;
                    }
                    let key = p.split(':').next().unwrap_or_default();
                    let new = !seen.contains(&key);
                    seen.push(key);
                    new
                })
                .collect::<String>()
                .replace('\n', if crlf { "\r\n" } else { "\n" });
            let d = if rke2 { Distribution::Rke2 } else { Distribution::K3s };
            let mut s = config_mode();
            s.ca = Some(ca());
            let after = patch_config(&text, &s, d, false).unwrap().unwrap_or(text.clone());
            proptest::prop_assert_eq!(patch_config(&after, &s, d, false).unwrap(), None);
            proptest::prop_assert_eq!(list(&after, ARG_KEY).last().cloned(), apiserver_entries(&s, d).unwrap().pop());
            let removed = patch_config(&after, &s, d, true).unwrap().unwrap_or(after.clone());
            proptest::prop_assert!(!removed.contains("oidc-") && !removed.contains("/oidc"), "{}", removed);
            proptest::prop_assert_eq!(patch_config(&removed, &s, d, true).unwrap(), None);
            proptest::prop_assert_eq!(removed.contains("\r\n"), crlf && !removed.is_empty() && removed.contains('\n'));
        }
    }

    #[test]
    fn patch_adds_the_key_at_the_end() {
        let before = "# k3s\nwrite-kubeconfig-mode: \"0644\"\ntls-san:\n    - a.example.com\n";
        let after = patch_config(before, &settings(), Distribution::K3s, false)
            .unwrap()
            .unwrap();
        assert_eq!(
            after,
            format!(
                "{before}kube-apiserver-arg:\n{}",
                ENTRIES.replace("  - ", "    - ")
            )
        );
        assert_eq!(
            patch_config(&after, &settings(), Distribution::K3s, false).unwrap(),
            None
        );
        assert_eq!(
            patch_config(&after, &settings(), Distribution::K3s, true)
                .unwrap()
                .as_deref(),
            Some(before)
        );
        // A key without items gets them right below it; a list at column 0 keeps column 0.
        let before = "kube-apiserver-arg: # none yet\nselinux: true\n";
        let after = patch_config(before, &settings(), Distribution::K3s, false)
            .unwrap()
            .unwrap();
        assert_eq!(
            after,
            format!("kube-apiserver-arg: # none yet\n{ENTRIES}selinux: true\n")
        );
        let before = "kube-apiserver-arg:\n- a=b\ntls-san:\n- x\n";
        let after = patch_config(before, &settings(), Distribution::K3s, true).unwrap();
        assert_eq!(after, None);
        let after = patch_config(before, &config_mode(), Distribution::K3s, false)
            .unwrap()
            .unwrap();
        assert_eq!(
            after,
            "kube-apiserver-arg:\n- a=b\n- authentication-config=/etc/rancher/k3s/oidc/authentication-config.yaml\ntls-san:\n- x\n"
        );
        // An empty file gets the key too.
        let after = patch_config("", &settings(), Distribution::K3s, false)
            .unwrap()
            .unwrap();
        assert_eq!(after, format!("kube-apiserver-arg:\n{ENTRIES}"));
    }

    #[test]
    fn patch_replaces_in_the_lists_own_style() {
        let before = "kube-apiserver-arg:\r\n- 'audit-log-maxage=30'\r\n- '--oidc-client-id=old' # old\r\n# end of list\r\nselinux: true";
        let after = patch_config(before, &config_mode(), Distribution::K3s, false)
            .unwrap()
            .unwrap();
        assert_eq!(
            after,
            "kube-apiserver-arg:\r\n- 'audit-log-maxage=30'\r\n- 'authentication-config=/etc/rancher/k3s/oidc/authentication-config.yaml'\r\n# end of list\r\nselinux: true"
        );
        assert_eq!(
            patch_config(&after, &config_mode(), Distribution::K3s, false).unwrap(),
            None
        );
        let flags = patch_config(&after, &settings(), Distribution::K3s, false)
            .unwrap()
            .unwrap();
        assert!(
            flags.contains("\r\n- 'oidc-username-prefix=oidc:'\r\n"),
            "{flags}"
        );
        assert!(!flags.contains("authentication-config"), "{flags}");
    }

    #[test]
    fn patch_rke2_adds_and_removes_the_mount() {
        let before = "token: x\nkube-apiserver-extra-mount:\n  - \"/srv/a:/srv/a\"\n";
        let after = patch_config(before, &config_mode(), Distribution::Rke2, false)
            .unwrap()
            .unwrap();
        assert_eq!(
            after,
            "token: x\nkube-apiserver-extra-mount:\n  - \"/srv/a:/srv/a\"\n  - \"/etc/rancher/rke2/oidc:/etc/rancher/rke2/oidc:ro\"\n\
             kube-apiserver-arg:\n  - authentication-config=/etc/rancher/rke2/oidc/authentication-config.yaml\n"
        );
        assert_eq!(
            patch_config(&after, &config_mode(), Distribution::Rke2, false).unwrap(),
            None
        );
        assert_eq!(
            patch_config(&after, &config_mode(), Distribution::Rke2, true)
                .unwrap()
                .as_deref(),
            Some(before)
        );
        // An existing flow list that already has the mount is left alone.
        let flow =
            "kube-apiserver-extra-mount: [\"/etc/rancher/rke2/oidc:/etc/rancher/rke2/oidc:ro\"]\n";
        let after = patch_config(flow, &config_mode(), Distribution::Rke2, false)
            .unwrap()
            .unwrap();
        assert!(after.starts_with(flow), "{after}");
    }

    #[test]
    fn patch_refuses_what_it_cannot_edit_safely() {
        let cases = [
            ("kube-apiserver-arg: [a=b]\n", "is a flow list `[a=b]`"),
            ("kube-apiserver-arg: a=b\n", "is not a list"),
            (
                "kube-apiserver-arg:\n  - a=b\n    c=d\n",
                "is not a one-line `- item`",
            ),
            ("kube-apiserver-arg:\n  - a: b\n", "which is not a string"),
            (
                "kube-apiserver-arg:\n  - a\nkube-apiserver-arg+:\n  - b\n",
                "both",
            ),
            ("- a\n", "not a YAML mapping"),
            ("a: [\n", "not valid YAML"),
            (
                "kube-apiserver-arg:\n  - authentication-config=/etc/x.yaml\n",
                "authentication-config `/etc/x.yaml`, a file k8soidc did not write",
            ),
        ];
        for (text, reason) in cases {
            let e = patch_config(text, &settings(), Distribution::K3s, false)
                .unwrap_err()
                .to_string();
            assert!(
                e.starts_with("cannot patch /etc/rancher/k3s/config.yaml: "),
                "{e}"
            );
            assert!(e.contains(reason), "{text:?}: {e}");
        }
        // Removing leaves a foreign authentication-config alone.
        let foreign = "kube-apiserver-arg:\n  - authentication-config=/etc/x.yaml\n";
        assert_eq!(
            patch_config(foreign, &settings(), Distribution::K3s, true).unwrap(),
            None
        );
    }

    /// The repository's `tests/data/fixtures/k3s-config`.
    fn fixture_dir() -> std::path::PathBuf {
        crate::yamltext::fixtures_dir().join("k3s-config")
    }

    fn list(text: &str, key: &str) -> Vec<String> {
        let v: Value = serde_yaml_ng::from_str(text).unwrap();
        v[key]
            .as_sequence()
            .unwrap_or_else(|| panic!("{key} in {text}"))
            .iter()
            .map(|e| {
                e.as_str()
                    .unwrap_or_else(|| panic!("{e:?} is not a string"))
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn every_fixture_patches_minimally_and_idempotently() {
        let mut files: Vec<_> = std::fs::read_dir(fixture_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(files.len() >= 4, "{files:?}");
        let mut s = settings();
        s.ca = Some(ca());
        s.required_claims = vec![("hd".into(), "example.com".into())];
        for d in [Distribution::K3s, Distribution::Rke2] {
            let wanted = apiserver_entries(&s, d).unwrap();
            for path in &files {
                let before = std::fs::read_to_string(path).unwrap();
                let after = patch_config(&before, &s, d, false).unwrap().unwrap();
                let others: Vec<String> = list(&before, ARG_KEY)
                    .into_iter()
                    .filter(|e| {
                        !is_managed_flag(e.trim_start_matches('-').split('=').next().unwrap())
                    })
                    .collect();
                assert_eq!(
                    list(&after, ARG_KEY),
                    [others, wanted.clone()].concat(),
                    "{path:?}"
                );
                if d == Distribution::Rke2 {
                    assert_eq!(
                        list(&after, MOUNT_KEY),
                        ["/etc/rancher/rke2/oidc:/etc/rancher/rke2/oidc:ro"]
                    );
                }
                // Every line that is not an OIDC item is still there, in order, byte for byte.
                let is_oidc = |l: &&str| l.contains("oidc-") && l.trim_start().starts_with("- ");
                let kept = |t: &str| -> Vec<String> {
                    t.lines()
                        .filter(|l| !is_oidc(l))
                        .map(str::to_string)
                        .collect()
                };
                let old = kept(&before);
                let new = kept(&after);
                let mut it = new.iter();
                for line in &old {
                    assert!(it.any(|n| n == line), "{path:?}: lost {line:?}\n{after}");
                }
                assert_eq!(
                    patch_config(&after, &s, d, false).unwrap(),
                    None,
                    "{path:?}"
                );
                let removed = patch_config(&after, &s, d, true).unwrap().unwrap();
                assert_eq!(
                    patch_config(&removed, &s, d, true).unwrap(),
                    None,
                    "{path:?}"
                );
                assert!(!removed.contains("oidc-"), "{path:?}: {removed}");
            }
        }
    }
}

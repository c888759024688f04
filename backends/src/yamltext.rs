//! The one line model of block-style YAML, for minimal text edits. Every text patcher uses it
//! (kubeadm config, kube-apiserver manifest, k3s/RKE2 config, MicroK8s args file, Cluster API,
//! kubespray, k3d, kops): it finds documents, keys, mapping entries and sequence items by
//! indentation, and never re-serialises a document: lines it does not touch keep their bytes
//! (comments, order, quoting, indentation, CRLF endings, a missing final newline).
//!
//! - lines: [`Line`], [`split`], [`join`], [`eol_of`], [`indent`], [`is_content`];
//! - documents: [`documents`] (lenient) and [`documents_strict`] (refuses directives and
//!   content after `---`);
//! - path lookup, by line ranges: [`find_key`], [`value_range`], [`entries`]; by blocks:
//!   [`Block`], [`find_key_in`], [`child_block`], [`items`];
//! - edits: [`splice`] (one at a time) and [`Edits`] (a batch against the original lines);
//! - verify: every caller parses its result again and refuses on any difference from the
//!   structural edit it meant to make, through one set of functions: [`parse_one`] (a text as
//!   one document, serde_yaml_ng), [`parse_documents`] and [`reparse`] (each document of
//!   [`documents`] parsed on its own, as the patchers split them), [`verify_documents`] (the
//!   same number of documents, every one but the edited one unchanged; gives the edited one
//!   for the caller's own comparison), [`same_documents_but`] (that check on documents
//!   already parsed) and [`same_except`] (two documents equal once given paths are taken
//!   out). The kubeadm config and k3d patchers check their whole result with
//!   [`verify_documents`]; the kube-apiserver manifest, analysed again, with
//!   [`same_documents_but`]; the one-document patchers (k3s/RKE2 config; the Cluster API,
//!   kubespray, k0s, Talos and vcluster document through `capi::parse_doc`) read back with
//!   [`parse_one`]; kubeadm and the eksctl ClusterConfig edit (`eks/eksctl.rs`, a block
//!   replaced without this line model) compare with [`same_except`]; kops, whose Cluster
//!   document is written by the emitter (the other documents kept as text), reads the result
//!   back with [`verify_documents`] and compares the Cluster document with the one meant.
//!
//! It is deliberately naive (no flow collections, anchors or multi-line plain scalars inside
//! the parts it edits): the re-parse is what makes an edit safe.

use std::ops::Range;

/// One line: its text without the line ending, and the ending (`\n`, `\r\n` or none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) text: String,
    pub(crate) eol: String,
}

impl Line {
    /// Number of leading spaces.
    pub(crate) fn indent(&self) -> usize {
        indent(&self.text)
    }

    /// Whether the line carries YAML content (not blank, not a comment).
    pub(crate) fn is_content(&self) -> bool {
        is_content(&self.text)
    }

    /// Whether the line starts a sequence item (`-` or `- …`).
    pub(crate) fn is_item(&self) -> bool {
        is_item(&self.text)
    }

    /// The line as a plain `key: value` entry: [`plain_key`].
    pub(crate) fn plain_key(&self) -> Option<(&str, &str)> {
        plain_key(&self.text)
    }
}

/// Splits text into lines, keeping each line's ending.
pub(crate) fn split(text: &str) -> Vec<Line> {
    text.split_inclusive('\n')
        .map(|l| {
            if let Some(t) = l.strip_suffix("\r\n") {
                Line {
                    text: t.to_string(),
                    eol: "\r\n".into(),
                }
            } else if let Some(t) = l.strip_suffix('\n') {
                Line {
                    text: t.to_string(),
                    eol: "\n".into(),
                }
            } else {
                Line {
                    text: l.to_string(),
                    eol: String::new(),
                }
            }
        })
        .collect()
}

/// Joins lines back into text.
pub(crate) fn join(lines: &[Line]) -> String {
    lines
        .iter()
        .map(|l| format!("{}{}", l.text, l.eol))
        .collect()
}

/// The line ending new lines get: the first one the file uses, else `\n`.
pub(crate) fn eol_of(lines: &[Line]) -> String {
    lines
        .iter()
        .map(|l| l.eol.as_str())
        .find(|e| !e.is_empty())
        .unwrap_or("\n")
        .to_string()
}

/// Number of leading spaces.
pub(crate) fn indent(text: &str) -> usize {
    text.len() - text.trim_start_matches(' ').len()
}

/// Whether a line carries YAML content (not blank, not a comment).
pub(crate) fn is_content(text: &str) -> bool {
    let t = text.trim();
    !t.is_empty() && !t.starts_with('#')
}

fn is_item(text: &str) -> bool {
    let t = text.trim_start_matches(' ');
    t == "-" || t.starts_with("- ")
}

/// Whether a line separates documents (`---`, optionally followed by a comment or content).
pub(crate) fn is_separator(text: &str) -> bool {
    text == "---" || text.starts_with("--- ") || text.starts_with("---\t")
}

/// The line ranges of the documents of a (multi-document) stream, separators excluded.
pub(crate) fn documents(lines: &[Line]) -> Vec<Range<usize>> {
    let mut docs = Vec::new();
    let mut start = 0;
    for (i, l) in lines.iter().enumerate() {
        if is_separator(&l.text) {
            docs.push(start..i);
            start = i + 1;
        }
    }
    docs.push(start..lines.len());
    docs
}

/// A `key: rest` line: the unquoted key and the text after the colon (trimmed, comment
/// included). None for items, comments and lines that are not a simple key.
pub(crate) fn key_of(text: &str) -> Option<(String, String)> {
    let t = text.trim_start_matches(' ');
    if !is_content(t) || is_item(t) {
        return None;
    }
    let (key, after) = if let Some(q @ ('"' | '\'')) = t.chars().next() {
        let close = t[1..].find(q)? + 1;
        let key = t[1..close].to_string();
        (key, t[close + 1..].strip_prefix(':')?)
    } else {
        let mut split = None;
        for (i, c) in t.char_indices() {
            if c == ':' {
                let next = t[i + 1..].chars().next();
                if next.is_none() || next == Some(' ') || next == Some('\t') {
                    split = Some(i);
                    break;
                }
            }
            if c == '#' && i > 0 && t[..i].ends_with(' ') {
                return None;
            }
        }
        let i = split?;
        (t[..i].trim_end().to_string(), &t[i + 1..])
    };
    if !after.is_empty() && !after.starts_with([' ', '\t']) {
        return None;
    }
    Some((key, after.trim().to_string()))
}

/// A `key: value` line whose key is written plain (a quoted key is not one: editors that need
/// the key exactly as written refuse it): the key as written and the value on the line (its
/// trailing ` # comment` removed, trimmed). None for items, comments and other lines.
pub(crate) fn plain_key(text: &str) -> Option<(&str, &str)> {
    if !is_content(text) || is_item(text) {
        return None;
    }
    let b = &text[indent(text)..];
    let at = b
        .find(": ")
        .or_else(|| b.ends_with(':').then(|| b.len() - 1))?;
    let rest = &b[at + 1..];
    let rest = match rest.find(" #") {
        Some(c) => &rest[..c],
        None => rest,
    };
    Some((&b[..at], rest.trim()))
}

/// The line of the plain key `name` ([`plain_key`]) at column `indent` within `range`.
pub(crate) fn find_plain_key(
    lines: &[Line],
    range: Range<usize>,
    indent: usize,
    name: &str,
) -> Option<usize> {
    range.into_iter().find(|&i| {
        lines[i].indent() == indent && lines[i].plain_key().is_some_and(|(k, _)| k == name)
    })
}

/// The entries of the block in `range`, strictly: with `items`, sequence items (`- ` lines at
/// the first content line's column), else plain `key: value` lines; each runs over the deeper
/// lines after it. `Err` gives the first line that is neither (trimmed).
pub(crate) fn strict_entries(
    lines: &[Line],
    range: Range<usize>,
    items: bool,
) -> Result<Vec<Range<usize>>, String> {
    let Some(first) = first_content(lines, range.clone()) else {
        return Ok(vec![]);
    };
    let ind = lines[first].indent();
    let mut out: Vec<Range<usize>> = Vec::new();
    for i in range {
        let l = &lines[i];
        if !l.is_content() {
            continue;
        }
        let starts = if items {
            l.is_item()
        } else {
            l.plain_key().is_some()
        };
        if l.indent() == ind && starts {
            out.push(i..i + 1);
        } else if l.indent() > ind && !out.is_empty() {
            out.last_mut().expect("checked").end = i + 1;
        } else {
            return Err(l.text.trim().to_string());
        }
    }
    Ok(out)
}

/// Whether the text after a key's colon leaves the value to the following lines.
pub(crate) fn value_is_block(rest: &str) -> bool {
    rest.is_empty() || rest.starts_with('#')
}

/// Whether the text after a key's colon is an empty flow collection or null.
pub(crate) fn value_is_empty(rest: &str) -> bool {
    let v = rest.split(" #").next().unwrap_or_default().trim();
    matches!(v, "{}" | "[]" | "~" | "null")
}

/// The line after the last content line in `range` (where a block's new children go), if
/// the range has content.
pub(crate) fn content_end(lines: &[Line], range: Range<usize>) -> Option<usize> {
    range
        .rev()
        .find(|&i| is_content(&lines[i].text))
        .map(|i| i + 1)
}

/// `text` with up to `n` leading spaces taken off each line (an entry read on its own).
pub(crate) fn dedent(text: &str, n: usize) -> String {
    text.split_inclusive('\n')
        .map(|l| &l[indent(l).min(n)..])
        .collect()
}

/// The first content line in `range`.
pub(crate) fn first_content(lines: &[Line], range: Range<usize>) -> Option<usize> {
    range.into_iter().find(|&i| is_content(&lines[i].text))
}

/// The line of `key` among the top entries of the mapping that fills `range`.
pub(crate) fn find_key(lines: &[Line], range: Range<usize>, key: &str) -> Option<usize> {
    let first = first_content(lines, range.clone())?;
    let ind = indent(&lines[first].text);
    range.into_iter().find(|&i| {
        let t = &lines[i].text;
        is_content(t) && indent(t) == ind && key_of(t).map(|(k, _)| k == key).unwrap_or(false)
    })
}

/// The lines holding the value of the key at `line` (exclusive end; trailing blank lines and
/// shallow comments excluded), within `limit`.
pub(crate) fn value_range(lines: &[Line], line: usize, limit: usize) -> Range<usize> {
    let kind = indent(&lines[line].text);
    let start = line + 1;
    let seq_flush = first_content(lines, start..limit)
        .map(|i| indent(&lines[i].text) == kind && is_item(&lines[i].text))
        .unwrap_or(false);
    let mut last = line;
    for (i, l) in lines.iter().enumerate().take(limit).skip(start) {
        if !is_content(&l.text) {
            continue;
        }
        let ind = indent(&l.text);
        if ind > kind || (seq_flush && ind == kind && is_item(&l.text)) {
            last = i;
        } else {
            break;
        }
    }
    start..last + 1
}

/// The indentation of the children of a block (first content line), if any.
pub(crate) fn child_indent(lines: &[Line], block: Range<usize>) -> Option<usize> {
    first_content(lines, block).map(|i| indent(&lines[i].text))
}

/// The line ranges of the entries (mapping keys or sequence items) at the block's child
/// indentation. Each range runs to the next entry; trailing blank lines and comments no deeper
/// than the entries are left out.
pub(crate) fn entries(lines: &[Line], block: Range<usize>) -> Vec<Range<usize>> {
    let Some(ind) = child_indent(lines, block.clone()) else {
        return vec![];
    };
    // A mapping's keys, or a sequence's items: not the flush items of a key's list value.
    let seq = first_content(lines, block.clone())
        .map(|i| is_item(&lines[i].text))
        .unwrap_or(false);
    let starts: Vec<usize> = block
        .clone()
        .filter(|&i| {
            let t = &lines[i].text;
            is_content(t) && indent(t) == ind && is_item(t) == seq
        })
        .collect();
    starts
        .iter()
        .enumerate()
        .map(|(n, &s)| {
            let next = starts.get(n + 1).copied().unwrap_or(block.end);
            let mut end = next;
            while end > s + 1 {
                let t = &lines[end - 1].text;
                if t.trim().is_empty() || (!is_content(t) && indent(t) <= ind) {
                    end -= 1;
                } else {
                    break;
                }
            }
            s..end
        })
        .collect()
}

/// Whether the entry lines start with a sequence dash.
pub(crate) fn is_item_line(text: &str) -> bool {
    is_item(text)
}

/// How deep sequences sit below their key in this text: 0 (`key:` / `- a`) or 2 (`key:` /
/// `  - a`), the first block sequence found deciding; 0 when there is none.
pub(crate) fn sequence_offset(lines: &[Line], range: Range<usize>) -> usize {
    for i in range.clone() {
        if key_of(&lines[i].text)
            .map(|(_, r)| value_is_block(&r))
            .unwrap_or(false)
        {
            if let Some(j) = first_content(lines, i + 1..range.end) {
                if is_item(&lines[j].text) {
                    let (a, b) = (indent(&lines[i].text), indent(&lines[j].text));
                    return b.saturating_sub(a).min(4);
                }
            }
        }
    }
    0
}

/// A YAML scalar that reads back as the string `s` under YAML 1.1 and 1.2 (kubectl,
/// sigs.k8s.io/yaml, PyYAML and serde_yaml_ng alike): plain when [`crate::yamlout::plain_safe`],
/// else double-quoted.
pub(crate) fn scalar(s: &str) -> String {
    crate::yamlout::scalar(s)
}

/// `key: |` plus the content as a literal block scalar indented to `indent`, chomping chosen
/// so the content reads back byte for byte.
pub(crate) fn literal(key_prefix: &str, content: &str, indent: usize) -> Vec<String> {
    let body = content.trim_end_matches('\n');
    let trailing = content.len() - body.len();
    let chomp = match trailing {
        0 => "-",
        1 => "",
        _ => "+",
    };
    let first_space = body.starts_with(' ') || body.starts_with('\n');
    // An explicit indentation indicator counts from the key's own column.
    let key_col = key_prefix.len() - key_prefix.trim_start_matches([' ', '-']).len();
    let indicator = if first_space {
        (indent - key_col).to_string()
    } else {
        String::new()
    };
    let pad = " ".repeat(indent);
    let mut out = vec![format!("{key_prefix}|{indicator}{chomp}")];
    for line in body.split('\n') {
        if line.is_empty() {
            out.push(String::new());
        } else {
            out.push(format!("{pad}{line}"));
        }
    }
    for _ in 1..trailing {
        out.push(String::new());
    }
    out
}

/// Replaces lines `range` with `new` (texts), giving new lines the ending `eol`; keeps the
/// missing final newline of a file when the edit touches its end.
pub(crate) fn splice(lines: &mut Vec<Line>, range: Range<usize>, new: Vec<String>, eol: &str) {
    let at_end = range.end == lines.len();
    let last_had_no_eol = lines.last().map(|l| l.eol.is_empty()).unwrap_or(false);
    if !new.is_empty() && range.start == lines.len() && range.start > 0 {
        // Appending after a last line without an ending: give it one.
        if let Some(l) = lines.last_mut() {
            if l.eol.is_empty() {
                l.eol = eol.to_string();
            }
        }
    }
    let mut new: Vec<Line> = new
        .into_iter()
        .map(|text| Line {
            text,
            eol: eol.to_string(),
        })
        .collect();
    if at_end && last_had_no_eol {
        if let Some(l) = new.last_mut() {
            l.eol = String::new();
        } else if range.start > 0 && !lines[range.start - 1].text.is_empty() {
            // The line before becomes the last: it loses its ending, unless it is blank
            // (a blank last line without an ending would vanish).
            lines[range.start - 1].eol = String::new();
        }
    }
    lines.splice(range, new);
}

/// A document separator (`---` or `...`), and whether something other than a comment follows
/// it.
fn marker(text: &str) -> Option<bool> {
    let rest = text
        .strip_prefix("---")
        .or_else(|| text.strip_prefix("..."))?;
    if rest.is_empty() {
        return Some(false);
    }
    if !rest.starts_with([' ', '\t']) {
        return None;
    }
    Some(is_content(rest))
}

/// The line ranges of the documents (separators excluded), for editors that refuse what they
/// cannot place exactly. `Err` names a line the model does not support (content after `---`,
/// or a `%` directive).
pub(crate) fn documents_strict(lines: &[Line]) -> Result<Vec<Range<usize>>, String> {
    let mut docs = Vec::new();
    let mut start = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.text.starts_with('%') {
            return Err(format!("line {} is a YAML directive", i + 1));
        }
        match marker(&line.text) {
            Some(true) => {
                return Err(format!(
                    "line {} has content after the document marker",
                    i + 1
                ))
            }
            Some(false) => {
                docs.push(start..i);
                start = i + 1;
            }
            None => {}
        }
    }
    docs.push(start..lines.len());
    Ok(docs)
}

/// A block mapping: lines `start..end`, keys at column `col`. When `dash_first`, the first
/// line is a sequence item line (`- key: value`) whose content starts at `col`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) col: usize,
    pub(crate) dash_first: bool,
}

/// A key found in a [`Block`]: its line, what follows the colon on that line (comments
/// removed, trimmed), and the lines of its block value `line + 1..end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    pub(crate) line: usize,
    pub(crate) col: usize,
    pub(crate) inline: String,
    pub(crate) end: usize,
}

/// A sequence item: its dash line, last line with content, the exclusive end (next item or
/// the end of the value, trailing comments included), the dash column and the content column
/// (`None` when nothing but a comment follows the dash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Item {
    pub(crate) start: usize,
    pub(crate) last: usize,
    pub(crate) end: usize,
    pub(crate) dash: usize,
    pub(crate) col: Option<usize>,
}

impl Item {
    /// The item's content as a mapping block.
    pub(crate) fn block(&self) -> Option<Block> {
        self.col.map(|col| Block {
            start: self.start,
            end: self.end,
            col,
            dash_first: true,
        })
    }
}

/// Whether `text` (already de-indented) starts a sequence item (`-`, `- x`, `-<TAB>x`).
fn is_dash(text: &str) -> bool {
    text == "-" || text.starts_with("- ") || text.starts_with("-\t")
}

/// Column and text of line `i` as seen from inside `b`.
fn view<'a>(lines: &'a [Line], b: &Block, i: usize) -> (usize, &'a str) {
    let text = lines[i].text.as_str();
    if b.dash_first && i == b.start {
        (b.col, text.get(b.col..).unwrap_or(""))
    } else {
        let n = indent(text);
        (n, &text[n..])
    }
}

/// Strips a trailing ` # comment` from what follows a key's colon (good enough for the
/// inline values looked at here: empty, `[]`, a flow list or an anchor).
fn strip_comment(rest: &str) -> &str {
    let rest = rest.trim();
    if rest.starts_with('#') {
        return "";
    }
    match rest.find(" #") {
        Some(at) if !rest.starts_with(['"', '\'']) => rest[..at].trim_end(),
        _ => rest,
    }
}

/// Finds the plain key `key:` among the keys of `b`. `Err` when the key appears more than once.
pub(crate) fn find_key_in(lines: &[Line], b: &Block, key: &str) -> Result<Option<Key>, String> {
    let mut found: Option<Key> = None;
    for i in b.start..b.end {
        if !(is_content(&lines[i].text) || (b.dash_first && i == b.start)) {
            continue;
        }
        let (col, text) = view(lines, b, i);
        if col != b.col {
            continue;
        }
        let Some(after) = text.strip_prefix(key).and_then(|t| t.strip_prefix(':')) else {
            continue;
        };
        if !(after.is_empty() || after.starts_with([' ', '\t'])) {
            continue;
        }
        if found.is_some() {
            return Err(format!("key `{key}` appears twice"));
        }
        let mut end = b.end;
        for j in i + 1..b.end {
            if !is_content(&lines[j].text) {
                continue;
            }
            let (c, t) = view(lines, b, j);
            if c < b.col || (c == b.col && !is_dash(t)) {
                end = j;
                break;
            }
        }
        found = Some(Key {
            line: i,
            col,
            inline: strip_comment(after).to_string(),
            end,
        });
    }
    Ok(found)
}

/// The nested mapping under `key` (its lines must be indented deeper than the key).
pub(crate) fn child_block(lines: &[Line], key: &Key) -> Option<Block> {
    let first = (key.line + 1..key.end).find(|&i| is_content(&lines[i].text))?;
    let col = indent(&lines[first].text);
    (col > key.col).then_some(Block {
        start: first,
        end: key.end,
        col,
        dash_first: false,
    })
}

/// The items of the block sequence that is `key`'s value. `Err` when the lines under the
/// key are not a plain block sequence.
pub(crate) fn items(lines: &[Line], key: &Key) -> Result<Vec<Item>, String> {
    let mut out: Vec<Item> = Vec::new();
    let mut dash = None;
    for (i, line) in lines.iter().enumerate().take(key.end).skip(key.line + 1) {
        let text = line.text.as_str();
        if !is_content(text) {
            continue;
        }
        let n = indent(text);
        let rest = &text[n..];
        let s = *dash.get_or_insert(n);
        if n < s || (n == s && !is_dash(rest)) {
            return Err(format!("line {} breaks the list", i + 1));
        }
        if n == s {
            let after = &rest[1..];
            let spaces = after.len() - after.trim_start_matches([' ', '\t']).len();
            let col = is_content(after).then_some(n + 1 + spaces);
            if let Some(prev) = out.last_mut() {
                prev.end = i;
            }
            out.push(Item {
                start: i,
                last: i,
                end: key.end,
                dash: n,
                col,
            });
        } else if let Some(prev) = out.last_mut() {
            prev.last = i;
        }
    }
    Ok(out)
}

/// The last line with content in `start..end` (or `start` when none).
pub(crate) fn last_content(lines: &[Line], start: usize, end: usize) -> usize {
    (start..end)
        .rev()
        .find(|&i| is_content(&lines[i].text))
        .unwrap_or(start)
}

/// Line replacements `(start, end, new lines)` against the original lines, applied at once
/// (for editors that plan every change on the original line numbers).
#[derive(Debug, Default)]
pub(crate) struct Edits(Vec<(usize, usize, Vec<String>)>);

impl Edits {
    /// Replaces lines `start..end` (an insertion when they are equal) with `new`.
    pub(crate) fn replace(&mut self, start: usize, end: usize, new: Vec<String>) {
        self.0.push((start, end, new));
    }

    /// Deletes lines `range`.
    pub(crate) fn delete(&mut self, range: Range<usize>) {
        self.replace(range.start, range.end, vec![]);
    }

    /// Inserts `new` before line `at`.
    pub(crate) fn insert(&mut self, at: usize, new: Vec<String>) {
        self.replace(at, at, new);
    }

    /// Whether line `i` is replaced or deleted.
    pub(crate) fn deletes(&self, i: usize) -> bool {
        self.0
            .iter()
            .any(|(start, end, _)| (*start..*end).contains(&i))
    }

    /// Whether something is inserted before line `i`.
    pub(crate) fn inserts_at(&self, i: usize) -> bool {
        self.0
            .iter()
            .any(|(start, end, _)| *start == i && *end == i)
    }

    /// Whether nothing was asked for.
    pub(crate) fn is_empty(&self) -> bool {
        self.0
            .iter()
            .all(|(start, end, new)| start == end && new.is_empty())
    }

    /// The new text. New lines take the file's line ending ([`eol_of`]); a missing final
    /// newline stays missing. Replacements at one place apply in the order they were made.
    pub(crate) fn apply(mut self, lines: &[Line], text: &str) -> String {
        self.0.sort_by_key(|(start, end, _)| (*start, *end));
        let eol = eol_of(lines);
        let mut out: Vec<(std::borrow::Cow<'_, str>, &str)> = Vec::new();
        let mut i = 0;
        for (start, end, new) in self.0 {
            while i < start {
                out.push((lines[i].text.as_str().into(), lines[i].eol.as_str()));
                i += 1;
            }
            out.extend(new.into_iter().map(|l| (l.into(), eol.as_str())));
            i = i.max(end);
        }
        out.extend(
            lines[i.min(lines.len())..]
                .iter()
                .map(|l| (l.text.as_str().into(), l.eol.as_str())),
        );
        let n = out.len();
        let mut s = String::with_capacity(text.len() + 512);
        for (k, (t, e)) in out.iter().enumerate() {
            s.push_str(t);
            s.push_str(match (k + 1 == n, e.is_empty()) {
                (true, _) if !text.ends_with('\n') => "",
                (_, true) => &eol,
                (_, false) => e,
            });
        }
        s
    }
}

/// A text parsed as one YAML document (serde_yaml_ng); `Err` is the parser's message.
pub(crate) fn parse_one(text: &str) -> Result<serde_yaml_ng::Value, String> {
    serde_yaml_ng::from_str(text).map_err(|e| e.to_string())
}

/// A document that does not parse: its index among the ranges given, and the parser's
/// message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    pub(crate) document: usize,
    pub(crate) message: String,
}

/// The documents at `ranges` of `lines`, each parsed on its own ([`parse_one`]); a document
/// without content reads as null. `Err` names the first that does not parse.
pub(crate) fn parse_documents(
    lines: &[Line],
    ranges: impl IntoIterator<Item = Range<usize>>,
) -> Result<Vec<serde_yaml_ng::Value>, ParseError> {
    ranges
        .into_iter()
        .enumerate()
        .map(|(document, r)| {
            parse_one(&join(&lines[r])).map_err(|message| ParseError { document, message })
        })
        .collect()
}

/// The documents of `text` as the patchers split them ([`documents`]), each parsed on its own.
pub(crate) fn reparse(text: &str) -> Result<Vec<serde_yaml_ng::Value>, ParseError> {
    let lines = split(text);
    parse_documents(&lines, documents(&lines))
}

/// Why an edited text is not the edit that was meant, as far as the documents tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VerifyError {
    /// A document of the result does not parse.
    Unparsable(ParseError),
    /// The result has another number of documents.
    DocumentCount { before: usize, after: usize },
    /// Document `.0`, not the edited one, reads differently.
    OtherDocument(usize),
}

/// Checks documents already parsed: as many as `before`, each but `edited` equal to its
/// counterpart.
pub(crate) fn same_documents_but(
    before: &[serde_yaml_ng::Value],
    after: &[serde_yaml_ng::Value],
    edited: usize,
) -> Result<(), VerifyError> {
    if before.len() != after.len() {
        return Err(VerifyError::DocumentCount {
            before: before.len(),
            after: after.len(),
        });
    }
    match (0..before.len()).find(|&i| i != edited && before[i] != after[i]) {
        Some(i) => Err(VerifyError::OtherDocument(i)),
        None => Ok(()),
    }
}

/// Parses the edited text `out` again ([`reparse`]) and checks it against the documents of
/// the original (`before`, parsed the same way): the same number of documents, every one but
/// `edited` unchanged. Gives the edited document, for the caller's own comparison with the
/// change it meant.
pub(crate) fn verify_documents(
    before: &[serde_yaml_ng::Value],
    out: &str,
    edited: usize,
) -> Result<serde_yaml_ng::Value, VerifyError> {
    let mut after = reparse(out).map_err(VerifyError::Unparsable)?;
    same_documents_but(before, &after, edited)?;
    Ok(after.swap_remove(edited))
}

/// Whether two documents are equal once every path of `paths` (mapping keys from the root) is
/// taken out of both; a mapping on the way to a path that is then empty, or null, counts as
/// absent (an edit that adds `a: {b: ..}` to a document without `a` changes nothing else).
/// A path through something other than a mapping takes nothing out.
pub(crate) fn same_except(
    before: &serde_yaml_ng::Value,
    after: &serde_yaml_ng::Value,
    paths: &[&[&str]],
) -> bool {
    without(before, paths) == without(after, paths)
}

fn without(doc: &serde_yaml_ng::Value, paths: &[&[&str]]) -> serde_yaml_ng::Value {
    use serde_yaml_ng::Value;
    /// Takes `path` out of `v`, then its parent when that is left empty or null.
    fn take(v: &mut Value, path: &[&str]) {
        let Some(m) = v.as_mapping_mut() else {
            return;
        };
        match path {
            [] => {}
            [last] => {
                m.shift_remove(*last);
            }
            [first, rest @ ..] => {
                if let Some(child) = m.get_mut(*first) {
                    take(child, rest);
                    if child.is_null() || child.as_mapping().is_some_and(|c| c.is_empty()) {
                        m.shift_remove(*first);
                    }
                }
            }
        }
    }
    let mut doc = doc.clone();
    for path in paths {
        take(&mut doc, path);
    }
    doc
}

/// The repository's real-file fixtures, `tests/data/fixtures` (origins in its SOURCES).
#[cfg(test)]
pub(crate) fn fixtures_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/fixtures")
}

/// A file under [`fixtures_dir`].
#[cfg(test)]
pub(crate) fn fixture(rel: &str) -> String {
    std::fs::read_to_string(fixtures_dir().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(key_of("  a: b"), Some(("a".into(), "b".into())));
        assert_eq!(key_of("a:"), Some(("a".into(), String::new())));
        assert_eq!(key_of("\"a b\": c"), Some(("a b".into(), "c".into())));
        assert_eq!(
            key_of("url: https://x"),
            Some(("url".into(), "https://x".into()))
        );
        assert_eq!(key_of("- a: b"), None);
        assert_eq!(key_of("# a: b"), None);
        assert_eq!(key_of("https://x"), None);
    }

    #[test]
    fn scalars_read_back_as_strings() {
        for s in [
            "oidc:",
            "-",
            "",
            "true",
            "yes",
            "30",
            "1.30",
            "a b",
            "it's",
            "#x",
            "a: b",
            "null",
            "~",
            "https://idp.example.com",
            "hd=example.com",
            "${X}",
            "on",
            "0644",
        ] {
            let q = scalar(s);
            let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&format!("k: {q}")).unwrap();
            assert_eq!(v["k"], serde_yaml_ng::Value::String(s.into()), "{s} -> {q}");
        }
        assert_eq!(scalar("https://idp.example.com"), "https://idp.example.com");
        assert_eq!(scalar("oidc:"), "\"oidc:\"");
        assert_eq!(scalar("yes"), "\"yes\"");
    }

    #[test]
    fn literal_blocks_read_back() {
        for content in ["a\nb\n", "a\nb", "a\n\nb\n\n", " lead\nx\n"] {
            let mut text = String::from("k:\n");
            for l in literal("  c: ", content, 4) {
                text.push_str(&l);
                text.push('\n');
            }
            let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
            assert_eq!(v["k"]["c"].as_str(), Some(content), "{text}");
        }
    }

    #[test]
    fn splice_keeps_missing_final_newline() {
        let mut lines = split("a: 1\nb: 2");
        splice(&mut lines, 2..2, vec!["c: 3".into()], "\n");
        assert_eq!(join(&lines), "a: 1\nb: 2\nc: 3");
        let mut lines = split("a: 1\r\nb: 2\r\n");
        splice(&mut lines, 1..2, vec![], "\r\n");
        assert_eq!(join(&lines), "a: 1\r\n");
        // Deleting a last line without an ending: the line before takes its place, and a
        // blank one keeps its ending (or it would vanish).
        let mut lines = split("a: 1\nb: 2");
        splice(&mut lines, 1..2, vec![], "\n");
        assert_eq!(join(&lines), "a: 1");
        let mut lines = split("a: 1\n\nb: 2");
        splice(&mut lines, 2..3, vec![], "\n");
        assert_eq!(join(&lines), "a: 1\n\n");
    }

    fn values(text: &str) -> Vec<serde_yaml_ng::Value> {
        reparse(text).unwrap()
    }

    #[test]
    fn reparse_splits_as_the_patchers_do() {
        let docs = values("# head\n---\na: 1\n--- # second\nb: [2]\n");
        assert_eq!(docs.len(), 3);
        assert!(docs[0].is_null());
        assert_eq!(docs[1]["a"].as_i64(), Some(1));
        assert_eq!(docs[2]["b"][0].as_i64(), Some(2));
        let e = reparse("a: 1\n---\nb: [2\n").unwrap_err();
        assert_eq!(e.document, 1);
        assert!(e.message.contains("line"), "{}", e.message);
        assert_eq!(parse_one("a: 1\n").unwrap()["a"].as_i64(), Some(1));
        assert!(parse_one("a: [\n").is_err());
    }

    #[test]
    fn verify_documents_gives_the_edited_document() {
        let before = values("a: 1\n---\nkind: X\nb: 2\n");
        let after =
            verify_documents(&before, "a: 1\r\n---\r\nkind: X\r\nb: 3 # new\r\n", 1).unwrap();
        assert_eq!(after["b"].as_i64(), Some(3));
        assert_eq!(after["kind"].as_str(), Some("X"));
        // The edited document may read the same (the caller decides whether it should).
        assert_eq!(
            verify_documents(&before, "a: 1\n---\nkind: X\nb: 2\n", 1).unwrap(),
            before[1]
        );
    }

    #[test]
    fn verify_documents_refuses_another_number_of_documents() {
        let before = values("a: 1\n---\nb: 2\n");
        assert_eq!(
            verify_documents(&before, "a: 1\nb: 2\n", 0),
            Err(VerifyError::DocumentCount {
                before: 2,
                after: 1
            })
        );
        assert_eq!(
            verify_documents(&before, "a: 1\n---\nb: 3\n---\nc: 4\n", 1),
            Err(VerifyError::DocumentCount {
                before: 2,
                after: 3
            })
        );
    }

    #[test]
    fn verify_documents_refuses_a_change_to_another_document() {
        let before = values("a: 1\n---\nb: 2\n---\nc: 3\n");
        assert_eq!(
            verify_documents(&before, "a: 1\n---\nb: 5\n---\nc: 4\n", 1),
            Err(VerifyError::OtherDocument(2))
        );
        assert_eq!(
            verify_documents(&before, "a: 0\n---\nb: 2\n---\nc: 3\n", 2),
            Err(VerifyError::OtherDocument(0))
        );
        // Comments and layout are not changes.
        assert!(verify_documents(&before, "a: 1 # one\n---\nb: 9\n---\nc:   3\n", 1).is_ok());
    }

    #[test]
    fn verify_documents_refuses_an_unparsable_result() {
        let before = values("a: 1\n---\nb: 2\n");
        assert_eq!(
            verify_documents(&before, "a: 1\n---\nb: [2\n", 1).map_err(|e| match e {
                VerifyError::Unparsable(p) => p.document,
                other => panic!("{other:?}"),
            }),
            Err(1)
        );
        assert!(matches!(
            verify_documents(&before, "a: 1\nb: c: d\n---\nb: 2\n", 1),
            Err(VerifyError::Unparsable(ParseError { document: 0, .. }))
        ));
    }

    #[test]
    fn same_except_takes_paths_and_emptied_parents_out() {
        let paths: &[&[&str]] = &[&["api", "args"], &["api", "vols"]];
        let v = |t: &str| parse_one(t).unwrap();
        // Only the paths differ.
        assert!(same_except(
            &v("kind: C\napi:\n  args: {a: 1}\n  port: 1\n"),
            &v("kind: C\napi:\n  port: 1\n  args: {a: 2}\n  vols: [x]\n"),
            paths
        ));
        // A parent added (or emptied) for the paths alone, or null, counts as absent.
        assert!(same_except(
            &v("kind: C\n"),
            &v("kind: C\napi:\n  args: {a: 1}\n"),
            paths
        ));
        assert!(same_except(
            &v("kind: C\napi:\n"),
            &v("kind: C\napi: {}\n"),
            paths
        ));
        // Anything else is a difference.
        assert!(!same_except(
            &v("kind: C\napi:\n  port: 1\n"),
            &v("kind: C\napi:\n  port: 2\n  args: {a: 1}\n"),
            paths
        ));
        assert!(!same_except(
            &v("kind: C\napi:\n  args: {a: 1}\n"),
            &v("kind: D\napi:\n  args: {a: 1}\n"),
            paths
        ));
        // A path through a scalar takes nothing out.
        assert!(!same_except(&v("api: 1\n"), &v("api: 2\n"), paths));
        assert!(same_except(
            &v("a: 1\nids: [x]\n"),
            &v("ids: [y]\na: 1\n"),
            &[&["ids"]]
        ));
    }

    #[test]
    fn value_ranges_and_entries() {
        let lines = split("a:\n  b: 1\n  # c\n  d:\n  - x\n  - y\n\ne: 2\n");
        let r = value_range(&lines, 0, lines.len());
        assert_eq!(r, 1..6);
        let es = entries(&lines, r);
        assert_eq!(es, vec![1..2, 3..6]);
        let d = value_range(&lines, 3, 6);
        assert_eq!(d, 4..6);
        assert_eq!(entries(&lines, d), vec![4..5, 5..6]);
    }
}

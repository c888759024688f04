//! A line model of block-style YAML: just enough structure (documents, mapping keys, sequence
//! items, each as a range of lines) to edit a manifest line by line. Values are never read
//! from here: they come from `serde_yaml_ng`, and the caller checks that both views agree
//! (same number of items) before it trusts a line range.

use std::ops::Range;

/// One line without its ending; `ending` is `"\r\n"`, `"\n"` or `""` (last line, no newline).
#[derive(Debug, Clone, Copy)]
pub(super) struct Line<'a> {
    pub(super) text: &'a str,
    pub(super) ending: &'a str,
}

/// Splits text into lines, keeping each line's own ending.
pub(super) fn split_lines(text: &str) -> Vec<Line<'_>> {
    text.split_inclusive('\n')
        .map(|piece| {
            if let Some(body) = piece.strip_suffix("\r\n") {
                Line {
                    text: body,
                    ending: "\r\n",
                }
            } else if let Some(body) = piece.strip_suffix('\n') {
                Line {
                    text: body,
                    ending: "\n",
                }
            } else {
                Line {
                    text: piece,
                    ending: "",
                }
            }
        })
        .collect()
}

/// Number of leading spaces.
pub(super) fn indent(text: &str) -> usize {
    text.len() - text.trim_start_matches(' ').len()
}

/// Blank or comment-only lines carry no structure.
pub(super) fn is_skip(text: &str) -> bool {
    let t = text.trim_start_matches([' ', '\t']);
    t.is_empty() || t.starts_with('#')
}

/// Whether `text` (already de-indented) starts a sequence item.
fn is_dash(text: &str) -> bool {
    text == "-" || text.starts_with("- ") || text.starts_with("-\t")
}

/// A document separator (`---` or `...`), and whether something other than a comment follows it.
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
    Some(!is_skip(rest))
}

/// The line ranges of the documents (separators excluded). `Err` names a line the model
/// does not support (content after `---`, or a `%` directive).
pub(super) fn documents(lines: &[Line<'_>]) -> Result<Vec<Range<usize>>, String> {
    let mut docs = Vec::new();
    let mut start = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.text.starts_with('%') {
            return Err(format!("line {} is a YAML directive", i + 1));
        }
        match marker(line.text) {
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
pub(super) struct Block {
    pub(super) start: usize,
    pub(super) end: usize,
    pub(super) col: usize,
    pub(super) dash_first: bool,
}

/// A key found in a [`Block`]: its line, what follows the colon on that line (comments
/// removed, trimmed), and the lines of its block value `line + 1..end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Key<'a> {
    pub(super) line: usize,
    pub(super) col: usize,
    pub(super) inline: &'a str,
    pub(super) end: usize,
}

/// A sequence item: its dash line, last line with content, the exclusive end (next item or
/// the end of the value, trailing comments included), the dash column and the content column
/// (`None` when nothing but a comment follows the dash).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Item {
    pub(super) start: usize,
    pub(super) last: usize,
    pub(super) end: usize,
    pub(super) dash: usize,
    pub(super) col: Option<usize>,
}

impl Item {
    /// The item's content as a mapping block.
    pub(super) fn block(&self) -> Option<Block> {
        self.col.map(|col| Block {
            start: self.start,
            end: self.end,
            col,
            dash_first: true,
        })
    }
}

/// Column and text of line `i` as seen from inside `b`.
fn view<'a>(lines: &[Line<'a>], b: &Block, i: usize) -> (usize, &'a str) {
    let text = lines[i].text;
    if b.dash_first && i == b.start {
        (b.col, text.get(b.col..).unwrap_or(""))
    } else {
        let n = indent(text);
        (n, &text[n..])
    }
}

/// Strips a trailing ` # comment` from what follows a key's colon (good enough for the
/// inline values this module cares about: empty, `[]`, a flow list or an anchor).
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

/// Finds `key:` among the keys of `b`. `Err` when the key appears more than once.
pub(super) fn find_key<'a>(
    lines: &[Line<'a>],
    b: &Block,
    key: &str,
) -> Result<Option<Key<'a>>, String> {
    let mut found: Option<Key<'a>> = None;
    for i in b.start..b.end {
        if is_skip(lines[i].text) && !(b.dash_first && i == b.start) {
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
            if is_skip(lines[j].text) {
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
            inline: strip_comment(after),
            end,
        });
    }
    Ok(found)
}

/// The nested mapping under `key` (its lines must be indented deeper than the key).
pub(super) fn child_block(lines: &[Line<'_>], key: &Key<'_>) -> Option<Block> {
    let first = (key.line + 1..key.end).find(|&i| !is_skip(lines[i].text))?;
    let col = indent(lines[first].text);
    (col > key.col).then_some(Block {
        start: first,
        end: key.end,
        col,
        dash_first: false,
    })
}

/// The items of the block sequence that is `key`'s value. `Err` when the lines under the
/// key are not a plain block sequence.
pub(super) fn items(lines: &[Line<'_>], key: &Key<'_>) -> Result<Vec<Item>, String> {
    let mut out: Vec<Item> = Vec::new();
    let mut dash = None;
    for (i, line) in lines.iter().enumerate().take(key.end).skip(key.line + 1) {
        let text = line.text;
        if is_skip(text) {
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
            let col = (!is_skip(after)).then_some(n + 1 + spaces);
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
pub(super) fn last_content(lines: &[Line<'_>], start: usize, end: usize) -> usize {
    (start..end)
        .rev()
        .find(|&i| !is_skip(lines[i].text))
        .unwrap_or(start)
}

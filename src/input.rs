//! Reading files the user names (settings file, `--file`, `--inventory`, `--ca-file`, explain's
//! token, JWKS and RBAC files): bounded before anything parses them.
//!
//! Only regular files are read (or stdin, where a flag takes `-`): a device such as
//! `/dev/zero`, a FIFO or a directory is refused by its type before it is opened, and the opened
//! file is checked again (a path swapped for a FIFO between the two checks can still block the
//! `open`, but nothing else is read from it). At most [`MAX_BYTES`] are read, and YAML or JSON
//! text may nest at most [`MAX_DEPTH`] levels: YAML parsers take quadratic time on deep nesting,
//! and no settings, manifest or inventory comes near either bound. Every refusal is bad input
//! (exit 2) naming the flag, the path and what was expected.

use std::io::Read;
use std::os::unix::fs::FileTypeExt;

use crate::error::Error;

/// The most bytes read from one input file (16 MiB).
pub(crate) const MAX_BYTES: u64 = 16 * 1024 * 1024;

/// The deepest nesting of collections accepted in YAML or JSON input.
pub(crate) const MAX_DEPTH: usize = 64;

fn refuse(what: &str, path: &str, problem: &str, expected: &str) -> Error {
    Error::Input(format!(
        "invalid {what} `{path}`: {problem}; give {expected}"
    ))
}

fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Reads the regular file `path` as UTF-8 text, at most [`MAX_BYTES`]. `what` names the flag
/// (`--file`), `expected` what the flag wants (`a YAML file listing the clusters`).
pub(crate) fn read_user_file(path: &str, what: &str, expected: &str) -> Result<String, Error> {
    read_file(path).map_err(|p| refuse(what, path, &p, expected))
}

/// [`read_user_file`], or stdin when `path` is `-`.
pub(crate) fn read_user_file_or_stdin(
    path: &str,
    what: &str,
    expected: &str,
) -> Result<String, Error> {
    if path == "-" {
        read_bounded(std::io::stdin().lock()).map_err(|p| refuse(what, "-", &p, expected))
    } else {
        read_user_file(path, what, expected)
    }
}

/// [`read_user_file`], then the nesting bound: for YAML and JSON input.
pub(crate) fn read_user_yaml(path: &str, what: &str, expected: &str) -> Result<String, Error> {
    read_yaml(path).map_err(|p| refuse(what, path, &p, expected))
}

/// What [`read_user_yaml`] reads, or what is wrong with the file (e.g. `no such file`), for a
/// caller that words the refusal itself (naming where the path came from).
pub(crate) fn read_yaml(path: &str) -> Result<String, String> {
    let text = read_file(path)?;
    match depth_over(&text, MAX_DEPTH) {
        None => Ok(text),
        Some(line) => Err(format!(
            "it nests deeper than {MAX_DEPTH} levels (line {line}), the most k8soidc reads"
        )),
    }
}

/// What [`read_user_file`] reads, or what is wrong with the file. `/dev/null`, the usual way to
/// say "no file" (`--config /dev/null`, as the kops plan's own k8soidc step passes), is empty;
/// every other device is refused by its type.
pub(crate) fn read_file(path: &str) -> Result<String, String> {
    if path == "/dev/null" {
        return Ok(String::new());
    }
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        _ => format!("cannot read it ({e})"),
    })?;
    let regular = |m: &std::fs::Metadata| -> Result<(), String> {
        if !m.file_type().is_file() {
            return Err(format!(
                "it is {}, not a regular file",
                kind_of(m.file_type())
            ));
        }
        if m.len() > MAX_BYTES {
            return Err(too_big());
        }
        Ok(())
    };
    regular(&meta)?;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read it ({e})"))?;
    regular(
        &file
            .metadata()
            .map_err(|e| format!("cannot read it ({e})"))?,
    )?;
    read_bounded(file)
}

fn too_big() -> String {
    format!(
        "it is larger than {} MiB, the most k8soidc reads from a file",
        MAX_BYTES / 1024 / 1024
    )
}

fn read_bounded(r: impl Read) -> Result<String, String> {
    let mut bytes = Vec::new();
    r.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it ({e})"))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_string())
}

/// The first line (1-based) where the nesting estimate passes `max`, if any.
///
/// The estimate counts, per line, the open block levels (distinct indentations above it, plus
/// `- ` and `? ` indicators and `key: ` pairs starting on the line) and the open flow brackets
/// (`[`, `{` outside quotes and comments). It may count a block scalar's indentation as nesting,
/// so it overestimates, never underestimates, what a parser would build.
fn depth_over(text: &str, max: usize) -> Option<usize> {
    let mut indents: Vec<usize> = Vec::new();
    let mut flow = 0usize;
    for (n, line) in text.lines().enumerate() {
        let body = line.trim_start_matches(' ');
        let content = body.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let mut block = 0;
        if flow == 0 {
            let col = line.len() - body.len();
            while indents.last().is_some_and(|&i| i > col) {
                indents.pop();
            }
            if indents.last() != Some(&col) {
                indents.push(col);
            }
            block = indents.len();
            // Compact nesting on one line: `- - - x`, `- a: - b`, `? - x`.
            let mut rest = content;
            loop {
                let r = rest.trim_start();
                if let Some(after) = r
                    .strip_prefix("- ")
                    .or_else(|| r.strip_prefix("? "))
                    .or_else(|| r.strip_prefix(": "))
                {
                    block += 1;
                    rest = after;
                } else if r == "-" || r == "?" {
                    block += 1;
                    break;
                } else {
                    break;
                }
            }
        }
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        let mut deepest = flow;
        for c in body.chars() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '#' if prev == ' ' || prev == '\t' => break,
                    '\'' | '"' if " \t[{,:".contains(prev) => quote = Some(c),
                    '[' | '{' => {
                        flow += 1;
                        deepest = deepest.max(flow);
                    }
                    ']' | '}' => flow = flow.saturating_sub(1),
                    _ => {}
                },
            }
            prev = c;
        }
        if block + deepest > max {
            return Some(n + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_null_is_empty_other_devices_are_refused() {
        assert_eq!(read_file("/dev/null"), Ok(String::new()));
        assert_eq!(
            read_file("/dev/zero"),
            Err("it is a character device, not a regular file".to_string())
        );
    }

    #[test]
    fn depth_counts_blocks_flows_and_compact_items() {
        // Root mapping, `b`'s mapping, the list, the inner mapping: 4 levels.
        assert_eq!(depth_over("a: 1\nb:\n  c: [1, {d: 2}]\n", 4), None);
        assert_eq!(depth_over("a: 1\nb:\n  c: [1, {d: [x]}]\n", 4), Some(3));
        assert_eq!(depth_over(&"[".repeat(65), 64), Some(1));
        assert_eq!(depth_over(&"- ".repeat(70), 64), Some(1));
        let deep: String = (0..70).map(|i| format!("{}k:\n", " ".repeat(i))).collect();
        assert_eq!(depth_over(&deep, 64), Some(65));
        // Brackets in quotes and comments do not count.
        assert_eq!(depth_over("a: '[[[[['\nb: \"{{{{\" # [[[[\n", 2), None);
    }

    #[test]
    fn real_fixtures_are_far_below_the_limit() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = [
            root.join("../shared/fixtures"),
            root.join("../../shared/fixtures"),
        ]
        .into_iter()
        .find(|p| p.is_dir())
        .expect("shared/fixtures beside the workspace");
        let mut stack = vec![dir];
        let mut seen = 0;
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(text) = std::fs::read_to_string(&p) {
                    seen += 1;
                    assert_eq!(depth_over(&text, 24), None, "{}", p.display());
                }
            }
        }
        assert!(seen > 50, "only {seen} fixtures");
    }
}

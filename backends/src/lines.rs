//! Lines with their own terminators, so the text patchers edit whole lines and keep CRLF and
//! a missing final newline exactly as the file had them.

/// A line's text and its terminator (`\n`, `\r\n`, or `""` for a last line without one).
pub(crate) type Line = (String, String);

/// Splits text into lines, keeping each terminator.
pub(crate) fn split(text: &str) -> Vec<Line> {
    text.split_inclusive('\n')
        .map(|l| {
            let (body, end) = match l.strip_suffix("\r\n") {
                Some(t) => (t, "\r\n"),
                None => match l.strip_suffix('\n') {
                    Some(t) => (t, "\n"),
                    None => (l, ""),
                },
            };
            (body.to_string(), end.to_string())
        })
        .collect()
}

/// Joins lines; every line but the last gets `eol` if it has no terminator, and the last
/// gets `last_end` (so a file without a final newline keeps lacking one).
pub(crate) fn join(lines: &[Line], eol: &str, last_end: &str) -> String {
    let mut out = String::new();
    for (i, (text, end)) in lines.iter().enumerate() {
        out.push_str(text);
        if i + 1 == lines.len() && !(text.is_empty() && last_end.is_empty()) {
            // A blank last line keeps its terminator, or it would vanish.
            out.push_str(last_end);
        } else if end.is_empty() {
            out.push_str(eol);
        } else {
            out.push_str(end);
        }
    }
    out
}

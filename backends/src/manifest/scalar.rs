//! Writing one string as a YAML scalar that reads back as exactly that string, both for
//! `serde_yaml_ng` (libyaml) and for kubelet's YAML 1.1 decoder (`sigs.k8s.io/yaml`, where
//! `on`, `yes` or `1:20` are not strings). Plain style is used only when a conservative rule
//! allows it and a parse of the candidate gives the string back; otherwise double quotes.

use serde_yaml_ng::Value;

/// How the neighbouring item is quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Quote {
    Plain,
    Single,
    Double,
}

impl Quote {
    /// The style of an existing scalar's source text.
    pub(super) fn of(source: &str) -> Quote {
        match source.chars().next() {
            Some('"') => Quote::Double,
            Some('\'') => Quote::Single,
            _ => Quote::Plain,
        }
    }
}

/// Characters that are not YAML-printable or that libyaml treats as line breaks.
fn needs_escape(c: char) -> bool {
    matches!(c, '\0'..='\x1f' | '\x7f'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}')
}

/// The crate's one decision on plain scalars (YAML 1.1 and 1.2 readers alike).
fn plain_ok(value: &str) -> bool {
    crate::yamlout::plain_safe(value)
}

/// `value` in double quotes, escaped.
pub(super) fn double_quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => {
                let n = u32::from(c);
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else {
                    out.push_str(&format!("\\u{n:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn single_quoted(value: &str) -> Option<String> {
    (!value.chars().any(needs_escape)).then(|| format!("'{}'", value.replace('\'', "''")))
}

/// Whether `source`, written as a sequence item, reads back as `value`.
fn reads_back(source: &str, value: &str) -> bool {
    match serde_yaml_ng::from_str::<Value>(&format!("- {source}\n")) {
        Ok(Value::Sequence(seq)) => seq.len() == 1 && seq[0].as_str() == Some(value),
        _ => false,
    }
}

/// The scalar source for `value`, in the neighbour's style when that is safe. `None` when no
/// style reads back exactly (not expected for any string).
pub(super) fn render(value: &str, hint: Quote) -> Option<String> {
    let preferred = match hint {
        Quote::Double => None,
        Quote::Single => single_quoted(value),
        Quote::Plain => plain_ok(value).then(|| value.to_string()),
    };
    preferred
        .into_iter()
        .chain(std::iter::once(double_quoted(value)))
        .find(|s| reads_back(s, value))
}

//! Writing YAML that every reader reads alike: YAML 1.1 ones (Go `yaml.v2` behind
//! sigs.k8s.io/yaml in kubeadm, kubectl and kops; PyYAML and so Ansible/kubespray) and YAML 1.2
//! ones (serde_yaml_ng). In YAML 1.1 a plain `yes`, `on`, `y`, `off`, `~`, `1_000`, `0x1f`,
//! `1e3`, `.inf`, `12:30` (base 60), `2001-12-14` (timestamp), `=` or `<<` is not a string
//! (yaml.org/type/bool.html, int.html, float.html, null.html, timestamp.html, value.html,
//! merge.html), while serde_yaml_ng quotes only the YAML 1.2 look-alikes.
//!
//! [`plain_safe`] is the one decision "may this string be written without quotes" for every
//! renderer and text patcher of the crate; [`double_quoted`] and [`single_quoted`] write the
//! others. [`to_yaml`] replaces `serde_yaml_ng::to_string` for files: a block-style emitter
//! whose plain scalars pass [`plain_safe`]; multi-line strings become literal blocks (`|`).
//! Layout follows `yaml.v2` and serde_yaml_ng: two-space indentation, sequences at their key's
//! indentation.

use serde::Serialize;
use serde_yaml_ng::{Mapping, Value};

/// Words YAML 1.1 (bool, null, value, merge) or YAML 1.2 (bool, null) read as something other
/// than a string.
const RESERVED: [&str; 28] = [
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
    "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL", "~", "=",
    "<<",
];

/// Characters YAML reads as line breaks, a byte-order mark, or refuses unescaped, besides the
/// C0/C1 control characters.
const SPECIAL: [char; 6] = [
    '\u{85}', '\u{2028}', '\u{2029}', '\u{feff}', '\u{fffe}', '\u{ffff}',
];

/// Whether `s` may be written as a plain (unquoted) scalar in block context and read back as
/// this same string by every YAML 1.1 and 1.2 reader. Conservative: printable ASCII only;
/// nothing that starts like a number, a timestamp or a YAML indicator (but `-` followed by a
/// non-space, as in `--flag=x`); none of the reserved words; no `: ` or ` #`, no leading or
/// trailing space or trailing `:`; and serde_yaml_ng must read it back.
pub(crate) fn plain_safe(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let unsigned = s.strip_prefix(['-', '+']).unwrap_or(s);
    // Ints (hex, octal, binary, `_`, base 60), floats, timestamps: digits and these only.
    let number_like = unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && s.chars()
            .all(|c| c.is_ascii_hexdigit() || "._:+-xXoOtTzZ ".contains(c));
    let special_float = matches!(unsigned.to_ascii_lowercase().as_str(), ".inf" | ".nan");
    s.chars().all(|c| c.is_ascii() && !c.is_ascii_control())
        && !RESERVED.contains(&s)
        && !number_like
        && !special_float
        && !"?:,[]{}#&*!|>'\"%@`".contains(first)
        // `-` starts a plain scalar only when a non-space follows (`--flag=x`, not `- x`).
        && s != "-"
        && !s.starts_with("- ")
        && first != ' '
        && !s.ends_with([' ', ':'])
        && !s.contains(": ")
        && !s.contains(" #")
        && matches!(
            serde_yaml_ng::from_str::<Value>(&format!("- {s}\n")),
            Ok(Value::Sequence(seq)) if seq.len() == 1 && seq[0].as_str() == Some(s)
        )
}

/// Whether `c` must be escaped (only double quotes can carry it).
pub(crate) fn needs_escape(c: char) -> bool {
    c.is_control() || SPECIAL.contains(&c)
}

/// `s` in double quotes, every character that needs it escaped (JSON escapes plus YAML's
/// `\N`, `\L`, `\P` and `\u` for the rest).
pub(crate) fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{85}' => out.push_str("\\N"),
            '\u{2028}' => out.push_str("\\L"),
            '\u{2029}' => out.push_str("\\P"),
            c if needs_escape(c) => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `s` in single quotes, or `None` when it holds a character only double quotes can carry.
pub(crate) fn single_quoted(s: &str) -> Option<String> {
    (!s.chars().any(needs_escape)).then(|| format!("'{}'", s.replace('\'', "''")))
}

/// A one-line scalar for `s`: plain when [`plain_safe`], else double-quoted.
pub(crate) fn scalar(s: &str) -> String {
    if plain_safe(s) {
        s.to_string()
    } else {
        double_quoted(s)
    }
}

/// A file's text for any serialisable value, every scalar read alike by YAML 1.1 and 1.2.
pub(crate) fn to_yaml<T: Serialize + ?Sized>(value: &T) -> String {
    let v = serde_yaml_ng::to_value(value).expect("plain values always serialise");
    to_string(&v).expect("untagged values always serialise")
}

/// Serialises a document; refuses tagged values (`!tag`).
pub(crate) fn to_string(value: &Value) -> Result<String, String> {
    let mut out = String::new();
    match value {
        Value::Mapping(m) if !m.is_empty() => mapping(&mut out, m, 0)?,
        Value::Sequence(s) if !s.is_empty() => sequence(&mut out, s, 0)?,
        other => {
            after_indicator(&mut out, other, 2)?;
            out.remove(0);
        }
    }
    Ok(out)
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

fn mapping(out: &mut String, m: &Mapping, indent: usize) -> Result<(), String> {
    for (k, v) in m {
        pad(out, indent);
        out.push_str(&value_scalar(k)?);
        out.push(':');
        match v {
            Value::Mapping(inner) if !inner.is_empty() => {
                out.push('\n');
                mapping(out, inner, indent + 2)?;
            }
            Value::Sequence(items) if !items.is_empty() => {
                out.push('\n');
                sequence(out, items, indent)?;
            }
            other => after_indicator(out, other, indent + 2)?,
        }
    }
    Ok(())
}

fn sequence(out: &mut String, items: &[Value], indent: usize) -> Result<(), String> {
    for item in items {
        pad(out, indent);
        out.push('-');
        let nested = match item {
            Value::Mapping(m) if !m.is_empty() => {
                let mut inner = String::new();
                mapping(&mut inner, m, indent + 2)?;
                Some(inner)
            }
            Value::Sequence(s) if !s.is_empty() => {
                let mut inner = String::new();
                sequence(&mut inner, s, indent + 2)?;
                Some(inner)
            }
            _ => None,
        };
        match nested {
            // The first line of the nested block goes on the dash's line.
            Some(inner) => {
                out.push(' ');
                out.push_str(&inner[indent + 2..]);
            }
            None => after_indicator(out, item, indent + 2)?,
        }
    }
    Ok(())
}

/// Writes a scalar, an empty collection or a literal block after `key:` or `-`.
fn after_indicator(out: &mut String, value: &Value, indent: usize) -> Result<(), String> {
    match value {
        Value::Mapping(_) => out.push_str(" {}\n"),
        Value::Sequence(_) => out.push_str(" []\n"),
        Value::String(s) if literal_ok(s) => {
            let body = s.trim_end_matches('\n');
            let newlines = s.len() - body.len();
            out.push_str(match newlines {
                0 => " |-\n",
                1 => " |\n",
                _ => " |+\n",
            });
            for line in body.split('\n') {
                if !line.is_empty() {
                    pad(out, indent);
                    out.push_str(line);
                }
                out.push('\n');
            }
            for _ in 1..newlines {
                out.push('\n');
            }
        }
        other => {
            out.push(' ');
            out.push_str(&value_scalar(other)?);
            out.push('\n');
        }
    }
    Ok(())
}

/// Whether a string can be written as a literal block and read back unchanged.
fn literal_ok(s: &str) -> bool {
    let body = s.trim_end_matches('\n');
    s.contains('\n')
        && !body.is_empty()
        && !body.starts_with([' ', '\n'])
        && !s.chars().any(|c| c != '\n' && needs_escape(c))
        && body.split('\n').all(|l| l.trim_end() == l)
}

/// One scalar (string, number, bool or null) on one line.
fn value_scalar(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(string(s)),
        Value::Null | Value::Bool(_) | Value::Number(_) => {
            let text = serde_yaml_ng::to_string(value).map_err(|e| e.to_string())?;
            Ok(text.trim_end().to_string())
        }
        Value::Tagged(t) => Err(format!("it holds a YAML tag `{}`", t.tag)),
        Value::Mapping(_) | Value::Sequence(_) => Err("it has a mapping or list as a key".into()),
    }
}

/// Plain when [`plain_safe`], else single-quoted (as serde_yaml_ng and `yaml.v2` print), else
/// double-quoted.
fn string(s: &str) -> String {
    if plain_safe(s) {
        s.to_string()
    } else {
        single_quoted(s).unwrap_or_else(|| double_quoted(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(v: &Value) {
        let text = to_string(v).unwrap();
        let back: Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(&back, v, "{text}");
    }

    #[test]
    fn quotes_yaml_1_1_look_alikes() {
        for s in [
            "yes",
            "On",
            "y",
            "N",
            "off",
            "~",
            "null",
            "",
            "0b101",
            "1:30",
            "0777",
            "1_000",
            "12e3",
            ".5",
            "-.inf",
            ".NaN",
            "+1",
            "0x1F",
            "190:20:30.15",
            "2016-12-10T22:42:27Z",
            "1.31.5",
            "-",
            "oidc:",
            "a: b",
            "a #b",
            "#x",
            "*ref",
            "&a",
            "!t",
            "%x",
            "@x",
            "`x",
            "|",
            ">",
            "'",
            "\"",
            "[a]",
            "{a}",
            " lead",
            "trail ",
            "=",
            "<<",
            "0o17",
            "2001-12-14",
            "12:30",
            ".nan",
            "- x",
            "\u{e9}t\u{e9}",
        ] {
            let text = string(s);
            assert!(text.starts_with('\''), "{s:?} -> {text}");
            round_trip(&Value::String(s.to_string()));
        }
        for s in [
            "oidc:x",
            "https://idp.example.com",
            "email",
            "a=b",
            "kubernetes",
            "x-y",
            "a'b",
            "200m",
            "800Mi",
            "10.0.0.0/16",
            ".config",
            "--oidc-client-id=yes",
            "-x",
        ] {
            assert_eq!(string(s), s);
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(string("a\tb"), r#""a\tb""#);
        assert_eq!(string("a\u{2028}b"), r#""a\Lb""#);
        for s in [
            "a\tb",
            "a\u{2028}b",
            "x\u{85}",
            "\u{feff}x",
            "a\r\nb\n",
            "  indented\nx\n",
        ] {
            round_trip(&Value::String(s.to_string()));
        }
    }

    #[test]
    fn literal_blocks_keep_their_newlines() {
        let v: Value = serde_yaml_ng::from_str(
            "a:\n  b: \"x\\ny\\n\"\n  c: \"x\\ny\"\n  d: \"x\\n\\n\"\nl:\n- \"p\\nq\\n\"\n- - 1\n  - 2\n- k: v\n  m: {}\n  n: []\n",
        )
        .unwrap();
        let text = to_string(&v).unwrap();
        assert_eq!(
            text,
            "a:\n  b: |\n    x\n    y\n  c: |-\n    x\n    y\n  d: |+\n    x\n\nl:\n- |\n  p\n  q\n- - 1\n  - 2\n- k: v\n  m: {}\n  'n': []\n"
        );
        round_trip(&v);
    }

    proptest! {
        #[test]
        fn any_string_round_trips(s in "\\PC*|[ -~\n\t]*", k in "[ -~]{0,8}") {
            let mut m = Mapping::new();
            m.insert(Value::String(k), Value::Sequence(vec![Value::String(s.clone())]));
            m.insert("x".into(), Value::String(s));
            round_trip(&Value::Mapping(m));
        }
    }
}

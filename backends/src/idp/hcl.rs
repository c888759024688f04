//! A small HCL writer for the Terraform files: blocks, attributes and comments, with every
//! string escaped for HCL's quoted templates (HCL native syntax spec, "Template Literals" and
//! "Template Interpolation"/"Template Directives": `\"`, `\\`, `\n`, `\r`, `\t`, `\uNNNN`, and
//! `$${` / `%%{` for a literal `${` / `%{`). References (`okta_group.k8s.id`) are separate,
//! checked values, so user input can never become an expression.
//!
//! Why not hcl-rs's builder: it would be this crate's first non-serde dependency tree (hcl-edit,
//! winnow, pratt, kstring) for ~150 lines we test directly; hcl-rs stays a dev-dependency that
//! parses every file we write back (see the tests here and in okta.rs / keycloak.rs).

use std::fmt::Write;

/// An attribute value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// A quoted string, escaped on output.
    Str(String),
    /// `true` / `false`.
    Bool(bool),
    /// A whole number.
    Num(i64),
    /// A traversal such as `okta_group.k8s.id` (identifier characters and dots only).
    Ref(String),
    /// A tuple.
    List(Vec<Value>),
    /// An object with identifier keys.
    Map(Vec<(String, Value)>),
}

/// A string value.
pub(crate) fn s(text: impl Into<String>) -> Value {
    Value::Str(text.into())
}

/// A reference value; panics on characters a traversal cannot hold (our own code builds these).
pub(crate) fn r(path: impl Into<String>) -> Value {
    let path = path.into();
    assert!(
        !path.is_empty()
            && path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'),
        "not a traversal: {path}"
    );
    Value::Ref(path)
}

/// A list of strings.
pub(crate) fn strs<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Value {
    Value::List(items.into_iter().map(|i| s(i.as_ref())).collect())
}

/// One line of a block body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// `name = value`.
    Attr(String, Value),
    /// A nested block.
    Block(Block),
    /// `# text` (one line).
    Comment(String),
    /// An empty line.
    Blank,
}

/// A block: `kind "label" "label" { ... }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block {
    kind: String,
    labels: Vec<String>,
    items: Vec<Item>,
}

impl Block {
    /// A block with labels.
    pub(crate) fn new<S: AsRef<str>>(kind: &str, labels: impl IntoIterator<Item = S>) -> Self {
        Block {
            kind: kind.to_string(),
            labels: labels.into_iter().map(|l| l.as_ref().to_string()).collect(),
            items: Vec::new(),
        }
    }

    /// Adds an attribute.
    pub(crate) fn attr(mut self, name: &str, value: Value) -> Self {
        self.items.push(Item::Attr(name.to_string(), value));
        self
    }

    /// Adds a nested block.
    pub(crate) fn block(mut self, b: Block) -> Self {
        self.items.push(Item::Block(b));
        self
    }

    /// Adds a comment line (newlines become separate comment lines).
    pub(crate) fn comment(mut self, text: &str) -> Self {
        for line in text.lines() {
            self.items.push(Item::Comment(line.to_string()));
        }
        self
    }

    /// Adds an empty line.
    pub(crate) fn blank(mut self) -> Self {
        self.items.push(Item::Blank);
        self
    }
}

/// Quotes `text` as an HCL string literal that evaluates to exactly `text`.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn label(text: &str) -> String {
    quote(text)
}

fn value(v: &Value, indent: usize) -> String {
    match v {
        Value::Str(t) => quote(t),
        Value::Bool(b) => b.to_string(),
        Value::Num(n) => n.to_string(),
        Value::Ref(p) => p.clone(),
        Value::List(items) => {
            let inline: Vec<String> = items.iter().map(|i| value(i, indent + 2)).collect();
            let flat = format!("[{}]", inline.join(", "));
            if items.len() <= 1 || (flat.len() <= 60 && !flat.contains('\n')) {
                return flat;
            }
            let pad = " ".repeat(indent + 2);
            let mut out = String::from("[\n");
            for i in inline {
                let _ = writeln!(out, "{pad}{i},");
            }
            out.push_str(&" ".repeat(indent));
            out.push(']');
            out
        }
        Value::Map(entries) => {
            let pad = " ".repeat(indent + 2);
            let width = entries.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            let mut out = String::from("{\n");
            for (k, val) in entries {
                let _ = writeln!(out, "{pad}{k:<width$} = {}", value(val, indent + 2));
            }
            out.push_str(&" ".repeat(indent));
            out.push('}');
            out
        }
    }
}

fn write_block(out: &mut String, b: &Block, indent: usize) {
    let pad = " ".repeat(indent);
    let _ = write!(out, "{pad}{}", b.kind);
    for l in &b.labels {
        let _ = write!(out, " {}", label(l));
    }
    out.push_str(" {\n");
    let inner = " ".repeat(indent + 2);
    let mut i = 0;
    while i < b.items.len() {
        match &b.items[i] {
            Item::Attr(..) => {
                // Align `=` over a run of attributes, as `terraform fmt` does.
                let run_end = b.items[i..]
                    .iter()
                    .position(|it| !matches!(it, Item::Attr(..)))
                    .map_or(b.items.len(), |p| i + p);
                let width = b.items[i..run_end]
                    .iter()
                    .map(|it| match it {
                        Item::Attr(k, _) => k.len(),
                        _ => 0,
                    })
                    .max()
                    .unwrap_or(0);
                for it in &b.items[i..run_end] {
                    if let Item::Attr(k, v) = it {
                        let _ = writeln!(out, "{inner}{k:<width$} = {}", value(v, indent + 2));
                    }
                }
                i = run_end;
                continue;
            }
            Item::Block(nested) => write_block(out, nested, indent + 2),
            Item::Comment(c) => {
                let _ = writeln!(out, "{inner}# {c}");
            }
            Item::Blank => out.push('\n'),
        }
        i += 1;
    }
    let _ = writeln!(out, "{pad}}}");
}

/// A whole file: a header comment, then top-level blocks separated by blank lines.
pub(crate) fn file(header: &[String], blocks: &[Block]) -> String {
    let mut out = String::new();
    for line in header {
        for l in line.lines() {
            let _ = writeln!(out, "# {l}");
        }
    }
    for b in blocks {
        if !out.is_empty() {
            out.push('\n');
        }
        write_block(&mut out, b, 0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Parses and evaluates `a = <quoted>` with hcl-rs and returns `a`.
    fn round_trip(text: &str) -> String {
        let src = format!("a = {}\n", quote(text));
        let v: hcl::Value = hcl::eval::from_str(&src, &hcl::eval::Context::new())
            .unwrap_or_else(|e| panic!("{src}: {e}"));
        match v {
            hcl::Value::Object(map) => map["a"].as_str().expect("string").to_string(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn escapes_quotes_backslashes_and_templates() {
        for t in [
            r#"say "hi""#,
            r"C:\path\",
            "${var.x}",
            "%{ if true }x%{ endif }",
            "$${already}",
            "$$",
            "100%",
            "$",
            "line\nbreak\ttab\r",
            "nul\u{0}bell\u{7}",
            "ünïcödé ✓",
        ] {
            assert_eq!(round_trip(t), t, "{}", quote(t));
        }
        assert_eq!(quote("${x}"), r#""$${x}""#);
        assert_eq!(quote("%{x}"), r#""%%{x}""#);
    }

    proptest! {
        #[test]
        fn any_string_round_trips(t in "\\PC*") {
            prop_assert_eq!(round_trip(&t), t);
        }

        #[test]
        fn template_heavy_strings_round_trip(t in "[$%{}\\\\\"a\n]{0,12}") {
            prop_assert_eq!(round_trip(&t), t);
        }
    }

    #[test]
    fn blocks_parse_back() {
        let b = Block::new("resource", ["okta_group", "k8s"])
            .comment("a comment")
            .attr("name", s("k8s-${admins}"))
            .attr(
                "users",
                Value::List(vec![r("data.okta_user.u1.id"), r("data.okta_user.u2.id")]),
            )
            .attr("on", Value::Bool(true))
            .attr("n", Value::Num(1))
            .blank()
            .block(Block::new::<&str>("search", []).attr("name", s("profile.login")));
        let text = file(&["header".into()], &[b]);
        let body: hcl::Body = hcl::from_str(&text).unwrap_or_else(|e| panic!("{text}\n{e}"));
        let block = body.blocks().next().unwrap();
        assert_eq!(block.identifier(), "resource");
        let names: Vec<&str> = block.body().attributes().map(|a| a.key()).collect();
        assert_eq!(names, ["name", "users", "on", "n"]);
        assert!(text.contains("name  = \"k8s-$${admins}\""), "{text}");
    }
}

//! The Kubernetes CEL environment of authentication expressions, evaluated offline with the
//! `cel` crate (cel-rust). kube-apiserver compiles `claimMappings`, `claimValidationRules` and
//! `extra` expressions over the variable `claims` and `userValidationRules` over `user`
//! (k8s.io/apiserver `pkg/authentication/cel/compile.go`), in its base environment
//! (`pkg/cel/environment/base.go`): the CEL standard library, optional types (`claims.?x`,
//! `orValue`), and the extension libraries; this module provides the string extension
//! functions of cel-go `ext.Strings` (`lowerAscii`, `upperAscii`, `replace`, `split`,
//! `substring`, `trim`, `join`, `indexOf`, `lastIndexOf`, `charAt`). Anything else (a function
//! this environment lacks, such as the Kubernetes `url`, `ip` or `quantity` libraries) is
//! reported as not evaluable offline, never guessed.

use std::collections::HashMap;
use std::sync::Arc;

use backends::{OidcSettings, PlanError};
use cel::extractors::This;
use cel::parser::{Expression, Parser};
use cel::{Context, ExecutionError, Value};
use serde_json::Value as Json;

/// The result of one expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// It evaluated to this value.
    Value(Json),
    /// It failed as the API server's evaluation fails (e.g. `no such key: groups`).
    Error(String),
    /// k8soidc cannot evaluate it offline (a function outside this environment).
    Unsupported(String),
}

/// Parses an expression as kube-apiserver's compiler does (optional syntax on).
pub(crate) fn compile(source: &str) -> Result<Expression, String> {
    let mut e = Parser::new()
        .enable_optional_syntax(true)
        .parse(source)
        .map_err(|e| e.to_string().replace('\n', " "))?;
    optional_select_as_index(&mut e);
    Ok(e)
}

/// cel-rust 0.12 fails `m.?f` when `m` has no key `f`, where cel-spec (and cel-go, so the API
/// server) gives `optional.none()`; `m[?'f']` has the spec's behaviour in cel-rust, and for a
/// map the two are the same, so every optional select is evaluated as an optional index.
fn optional_select_as_index(e: &mut Expression) {
    use cel::common::ast::{EntryExpr, Expr};
    match &mut e.expr {
        Expr::Call(c) => {
            if c.func_name == "_?._" {
                c.func_name = "_[?_]".to_string();
            }
            if let Some(t) = &mut c.target {
                optional_select_as_index(t);
            }
            c.args.iter_mut().for_each(optional_select_as_index);
        }
        Expr::Comprehension(c) => {
            for x in [
                &mut c.iter_range,
                &mut c.accu_init,
                &mut c.loop_cond,
                &mut c.loop_step,
                &mut c.result,
            ] {
                optional_select_as_index(x);
            }
        }
        Expr::Select(s) => optional_select_as_index(&mut s.operand),
        Expr::List(l) => l.elements.iter_mut().for_each(optional_select_as_index),
        Expr::Map(m) => m.entries.iter_mut().for_each(|x| match &mut x.expr {
            EntryExpr::MapEntry(me) => {
                optional_select_as_index(&mut me.key);
                optional_select_as_index(&mut me.value);
            }
            EntryExpr::StructField(f) => optional_select_as_index(&mut f.value),
        }),
        Expr::Struct(st) => st.entries.iter_mut().for_each(|x| match &mut x.expr {
            EntryExpr::MapEntry(me) => {
                optional_select_as_index(&mut me.key);
                optional_select_as_index(&mut me.value);
            }
            EntryExpr::StructField(f) => optional_select_as_index(&mut f.value),
        }),
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => {}
    }
}

/// Compiles every expression of the settings; an error names the field path like the API
/// server's validation (`Invalid value: compilation failed: ...`).
pub(crate) fn check_settings(s: &OidcSettings) -> Result<(), PlanError> {
    let Some(st) = &s.structured else {
        return Ok(());
    };
    for (path, expr, _) in backends::authn::expressions(st) {
        if let Err(e) = compile(expr) {
            return Err(PlanError::field(
                path,
                Some(expr),
                &format!("Invalid value: compilation failed: {e}"),
                "fix the CEL expression (https://kubernetes.io/docs/reference/access-authn-authz/authentication/#using-authentication-configuration)",
            ));
        }
    }
    Ok(())
}

/// A JSON value as CEL sees a claim (integers as `int`, other numbers as `double`).
pub(crate) fn to_cel(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or_default()),
        },
        Json::String(s) => Value::String(Arc::new(s.clone())),
        Json::Array(items) => Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Json::Object(m) => {
            let map: HashMap<String, Value> =
                m.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            Value::Map(map.into())
        }
    }
}

fn to_json(v: &Value) -> Option<Json> {
    Some(match v {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::UInt(u) => Json::from(*u),
        Value::Float(f) => Json::from(*f),
        Value::String(s) => Json::String(s.to_string()),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect::<Option<_>>()?),
        Value::Map(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m.map.iter() {
                let key = match k {
                    cel::objects::Key::String(s) => s.to_string(),
                    other => format!("{other:?}"),
                };
                out.insert(key, to_json(v)?);
            }
            Json::Object(out)
        }
        _ => return None,
    })
}

type R<T> = Result<T, ExecutionError>;

fn lower_ascii(This(s): This<Arc<String>>) -> String {
    s.to_ascii_lowercase()
}
fn upper_ascii(This(s): This<Arc<String>>) -> String {
    s.to_ascii_uppercase()
}
fn trim(This(s): This<Arc<String>>) -> String {
    s.trim().to_string()
}
fn replace(This(s): This<Arc<String>>, from: Arc<String>, to: Arc<String>) -> String {
    s.replace(from.as_str(), to.as_str())
}
fn split(This(s): This<Arc<String>>, sep: Arc<String>) -> R<Value> {
    let parts: Vec<Value> = if sep.is_empty() {
        s.chars().map(|c| Value::from(c.to_string())).collect()
    } else {
        s.split(sep.as_str()).map(Value::from).collect()
    };
    Ok(Value::List(Arc::new(parts)))
}
fn char_index(s: &str, byte: usize) -> i64 {
    s[..byte].chars().count() as i64
}
fn index_of(This(s): This<Arc<String>>, sub: Arc<String>) -> i64 {
    s.find(sub.as_str()).map_or(-1, |b| char_index(&s, b))
}
fn last_index_of(This(s): This<Arc<String>>, sub: Arc<String>) -> i64 {
    s.rfind(sub.as_str()).map_or(-1, |b| char_index(&s, b))
}
fn char_at(This(s): This<Arc<String>>, at: i64) -> R<Value> {
    let n = s.chars().count() as i64;
    if at < 0 || at > n {
        return Err(ExecutionError::function_error(
            "charAt",
            format!("index out of range: {at}"),
        ));
    }
    Ok(Value::from(
        s.chars()
            .nth(at as usize)
            .map(String::from)
            .unwrap_or_default(),
    ))
}
fn substring(This(s): This<Arc<String>>, args: cel::extractors::Arguments) -> R<Value> {
    let ints: Vec<i64> = args
        .0
        .iter()
        .map(|a| match a {
            Value::Int(i) => Ok(*i),
            _ => Err(ExecutionError::function_error(
                "substring",
                "arguments must be int",
            )),
        })
        .collect::<R<_>>()?;
    let chars: Vec<char> = s.chars().collect();
    let n = chars.len() as i64;
    let (start, end) = match ints.as_slice() {
        [a] => (*a, n),
        [a, b] => (*a, *b),
        _ => {
            return Err(ExecutionError::function_error(
                "substring",
                "takes one or two arguments",
            ))
        }
    };
    if start < 0 || end > n || start > end {
        return Err(ExecutionError::function_error(
            "substring",
            format!("index out of range: {start}, {end}"),
        ));
    }
    Ok(Value::from(
        chars[start as usize..end as usize]
            .iter()
            .collect::<String>(),
    ))
}
fn join(This(list): This<Arc<Vec<Value>>>, args: cel::extractors::Arguments) -> R<Value> {
    let sep = match args.0.first() {
        None => String::new(),
        Some(Value::String(s)) => s.to_string(),
        Some(_) => {
            return Err(ExecutionError::function_error(
                "join",
                "separator must be a string",
            ))
        }
    };
    let mut parts = Vec::new();
    for v in list.iter() {
        match v {
            Value::String(s) => parts.push(s.to_string()),
            _ => {
                return Err(ExecutionError::function_error(
                    "join",
                    "list must hold only strings",
                ))
            }
        }
    }
    Ok(Value::from(parts.join(&sep)))
}

/// The functions this environment has beyond cel-rust's standard ones.
const EXTENSIONS: [&str; 10] = [
    "lowerAscii",
    "upperAscii",
    "trim",
    "replace",
    "split",
    "indexOf",
    "lastIndexOf",
    "charAt",
    "substring",
    "join",
];

fn context() -> Context<'static> {
    let mut c = Context::default();
    c.add_function("lowerAscii", lower_ascii);
    c.add_function("upperAscii", upper_ascii);
    c.add_function("trim", trim);
    c.add_function("replace", replace);
    c.add_function("split", split);
    c.add_function("indexOf", index_of);
    c.add_function("lastIndexOf", last_index_of);
    c.add_function("charAt", char_at);
    c.add_function("substring", substring);
    c.add_function("join", join);
    c
}

/// Evaluates `source` with the given variables (`claims`, `user`).
pub(crate) fn eval(source: &str, vars: &[(&str, &Json)]) -> Outcome {
    let expr = match compile(source) {
        Ok(e) => e,
        Err(e) => return Outcome::Error(format!("compilation failed: {e}")),
    };
    let mut c = context();
    for (name, v) in vars {
        c.add_variable_from_value(*name, to_cel(v));
    }
    match Value::resolve(&expr, &c) {
        Ok(v) => match to_json(&v) {
            Some(j) => Outcome::Value(j),
            None => Outcome::Unsupported(format!("the result {v:?} has no JSON form")),
        },
        Err(ExecutionError::UndeclaredReference(name)) if !vars.iter().any(|(n, _)| **n == *name.as_str()) => {
            Outcome::Unsupported(format!(
                "`{name}` is not in k8soidc's offline CEL environment (it has the CEL standard library, optional types and {}); the API server may accept it, so this is not evaluated",
                EXTENSIONS.join(", ")
            ))
        }
        Err(e) => Outcome::Error(error_text(&e)),
    }
}

/// kube-apiserver's wording where it is known (cel-go: `no such key: x`).
fn error_text(e: &ExecutionError) -> String {
    match e {
        ExecutionError::NoSuchKey(k) => format!("no such key: {k}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(src: &str, claims: Json) -> Outcome {
        eval(src, &[("claims", &claims)])
    }

    #[test]
    fn kubernetes_string_extensions_and_optionals() {
        let c = json!({"sub": "Jane", "groups": ["/a", "/b"], "email": "j@x.io", "n": 3});
        for (src, want) in [
            ("claims.sub.lowerAscii()", json!("jane")),
            ("'oidc:' + claims.sub", json!("oidc:Jane")),
            ("claims.groups.map(g, g.substring(1))", json!(["a", "b"])),
            (
                "claims.groups.map(g, g.replace('/', ''))",
                json!(["a", "b"]),
            ),
            ("claims.email.split('@')[0]", json!("j")),
            ("claims.?missing.orValue('none')", json!("none")),
            ("has(claims.missing)", json!(false)),
            ("claims.groups.join(',')", json!("/a,/b")),
            ("claims.email.indexOf('@')", json!(1)),
            ("claims.n + 1", json!(4)),
        ] {
            assert_eq!(run(src, c.clone()), Outcome::Value(want), "{src}");
        }
        assert_eq!(
            run("claims.nope", c.clone()),
            Outcome::Error("no such key: nope".into())
        );
        assert!(matches!(
            run("url(claims.sub).getHost()", c),
            Outcome::Unsupported(_)
        ));
    }
}

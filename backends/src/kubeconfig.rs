//! A kubeconfig user that logs in through kubelogin, merged into existing kubeconfig text.
//!
//! Facts:
//! - kubelogin is a kubectl plugin (`kubectl oidc-login get-token --oidc-issuer-url=…
//!   --oidc-client-id=… --oidc-extra-scope=…`); it always requests `openid` itself and takes
//!   `--certificate-authority` for a private IdP CA (int128/kubelogin `docs/usage.md`,
//!   `pkg/cmd/get_token.go`).
//! - With `apiVersion: client.authentication.k8s.io/v1`, `interactiveMode` is required
//!   (kubernetes `staging/src/k8s.io/client-go/tools/clientcmd/api/v1/types.go`, `ExecConfig`;
//!   validation in `client-go/tools/clientcmd/validation.go`: "interactiveMode must be specified
//!   for … to use exec authentication plugin"). kubelogin opens a browser, never reads stdin, so
//!   `Never` is right.
//! - `kubectl config set-credentials --exec-command=/abs` rewrites paths relative to the file, so
//!   we write YAML ourselves and show the `kubectl config` commands only as the equivalent.
//!
//! The merge is a minimal text edit: only the items for our user, our context and (when new) the
//! cluster are inserted or replaced; comments, order, quoting, indentation and CRLF line endings
//! of everything else stay byte for byte. The result is then parsed and compared with a
//! structural merge of the same input; any difference refuses the edit.

use serde_yaml_ng::{Mapping, Value};

use crate::{shell, Command, OidcSettings, PlanError};

/// The exec plugin API version we write.
pub const EXEC_API_VERSION: &str = "client.authentication.k8s.io/v1";

/// What to add to the kubeconfig.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Name of the cluster entry the context points at (`--cluster`).
    pub cluster: String,
    /// API server URL, needed when the cluster entry is new (`--server`).
    pub server: Option<String>,
    /// Absolute path of the cluster's CA, for a new cluster entry (`--certificate-authority`).
    pub cluster_ca: Option<String>,
}

/// The merged text and what it did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The new kubeconfig text.
    pub text: String,
    /// The user and context name, `oidc-<cluster>`.
    pub name: String,
    /// The cluster entry was added.
    pub cluster_added: bool,
    /// Remarks for the user.
    pub notes: Vec<String>,
}

/// kubelogin's arguments after `kubectl`.
pub fn exec_args(s: &OidcSettings) -> Vec<String> {
    let mut args = vec![
        "oidc-login".to_string(),
        "get-token".to_string(),
        format!("--oidc-issuer-url={}", s.issuer_url),
        format!("--oidc-client-id={}", s.client_id),
    ];
    for scope in s.scopes().into_iter().filter(|sc| *sc != "openid") {
        args.push(format!("--oidc-extra-scope={scope}"));
    }
    if let Some(ca) = &s.ca {
        args.push(format!("--certificate-authority={}", ca.local_path));
    }
    args
}

fn map(pairs: Vec<(&str, Value)>) -> Value {
    let mut m = Mapping::new();
    for (k, v) in pairs {
        m.insert(Value::String(k.to_string()), v);
    }
    Value::Mapping(m)
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

/// The `user:` value of our entry.
pub fn user_value(st: &OidcSettings) -> Value {
    map(vec![(
        "exec",
        map(vec![
            ("apiVersion", s(EXEC_API_VERSION)),
            ("command", s("kubectl")),
            (
                "args",
                Value::Sequence(exec_args(st).iter().map(|a| s(a)).collect()),
            ),
            ("interactiveMode", s("Never")),
        ]),
    )])
}

/// The `kubectl config …` commands that make the same change (shown in the dry run).
pub fn equivalent_commands(
    st: &OidcSettings,
    req: &Request,
    kubeconfig: Option<&str>,
    cluster_added: bool,
) -> Vec<Command> {
    let name = format!("oidc-{}", req.cluster);
    let base = |sub: &str| {
        let mut v: Vec<String> = Vec::new();
        if let Some(k) = kubeconfig {
            v.push(format!("--kubeconfig={k}"));
        }
        v.push("config".into());
        v.push(sub.into());
        v
    };
    let mut out = Vec::new();
    if cluster_added {
        let mut a = base("set-cluster");
        a.push(req.cluster.clone());
        if let Some(srv) = &req.server {
            a.push(format!("--server={srv}"));
        }
        if let Some(ca) = &req.cluster_ca {
            a.push(format!("--certificate-authority={ca}"));
        }
        out.push(Command::new("kubectl", a));
    }
    let mut a = base("set-credentials");
    a.push(name.clone());
    a.push(format!("--exec-api-version={EXEC_API_VERSION}"));
    a.push("--exec-command=kubectl".into());
    for arg in exec_args(st) {
        a.push(format!("--exec-arg={arg}"));
    }
    a.push("--exec-interactive-mode=Never".into());
    out.push(Command::new("kubectl", a));
    let mut a = base("set-context");
    a.push(name.clone());
    a.push(format!("--cluster={}", req.cluster));
    a.push(format!("--user={name}"));
    out.push(Command::new("kubectl", a));
    out
}

fn refuse(reason: impl Into<String>) -> PlanError {
    PlanError::patch(
        "the kubeconfig",
        reason,
        "fix the file by hand (or move it aside) and run again; it is left unchanged",
    )
}

fn entry_name(v: &Value) -> Option<&str> {
    v.get("name").and_then(Value::as_str)
}

/// The structural merge: what the text edit must produce, semantically.
fn merge_value(
    doc: &mut Mapping,
    st: &OidcSettings,
    req: &Request,
) -> Result<(bool, Vec<String>), PlanError> {
    let name = format!("oidc-{}", req.cluster);
    let mut notes = Vec::new();
    for key in ["clusters", "contexts", "users"] {
        match doc.get(key) {
            None | Some(Value::Null) => {
                doc.insert(s(key), Value::Sequence(vec![]));
            }
            Some(Value::Sequence(items)) => {
                if let Some(bad) = items.iter().find(|i| entry_name(i).is_none()) {
                    return Err(refuse(format!(
                        "an entry of `{key}` has no `name`: {}",
                        serde_yaml_ng::to_string(bad)
                            .unwrap_or_default()
                            .replace('\n', " ")
                    )));
                }
            }
            Some(_) => return Err(refuse(format!("`{key}` is not a list"))),
        }
    }
    // clusters
    let clusters = doc
        .get_mut("clusters")
        .and_then(Value::as_sequence_mut)
        .expect("normalised");
    let cluster_added = match clusters
        .iter()
        .find(|c| entry_name(c) == Some(&req.cluster))
    {
        Some(existing) => {
            let server = existing
                .get("cluster")
                .and_then(|c| c.get("server"))
                .and_then(Value::as_str);
            if let (Some(want), Some(have)) = (&req.server, server) {
                if want != have {
                    notes.push(format!("cluster `{}` exists with server {have}; it is left as is (--server {want} is ignored)", req.cluster));
                }
            }
            false
        }
        None => {
            let Some(server) = &req.server else {
                return Err(PlanError::invalid(
                    "--cluster",
                    &req.cluster,
                    "there is no such cluster in the kubeconfig",
                    "add `--server https://HOST:6443` (and `--certificate-authority FILE`) to create it, or name an existing cluster",
                ));
            };
            let mut c = vec![("server", s(server))];
            if let Some(ca) = &req.cluster_ca {
                c.push(("certificate-authority", s(ca)));
            }
            clusters.push(map(vec![("name", s(&req.cluster)), ("cluster", map(c))]));
            true
        }
    };
    // contexts
    let contexts = doc
        .get_mut("contexts")
        .and_then(Value::as_sequence_mut)
        .expect("normalised");
    match contexts.iter_mut().find(|c| entry_name(c) == Some(&name)) {
        Some(existing) => {
            let Some(m) = existing.as_mapping_mut() else {
                unreachable!("has a name, so it is a mapping")
            };
            let ctx = m
                .entry(s("context"))
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            let Some(ctx) = ctx.as_mapping_mut() else {
                return Err(refuse(format!(
                    "context `{name}` has a `context` that is not a mapping"
                )));
            };
            ctx.insert(s("cluster"), s(&req.cluster));
            ctx.insert(s("user"), s(&name));
        }
        None => contexts.push(map(vec![
            ("name", s(&name)),
            (
                "context",
                map(vec![("cluster", s(&req.cluster)), ("user", s(&name))]),
            ),
        ])),
    }
    // users
    let users = doc
        .get_mut("users")
        .and_then(Value::as_sequence_mut)
        .expect("normalised");
    match users.iter_mut().find(|c| entry_name(c) == Some(&name)) {
        Some(existing) => {
            let Some(m) = existing.as_mapping_mut() else {
                unreachable!("has a name, so it is a mapping")
            };
            m.insert(s("user"), user_value(st));
        }
        None => users.push(map(vec![("name", s(&name)), ("user", user_value(st))])),
    }
    Ok((cluster_added, notes))
}

/// One top-level block sequence in the text, located by lines.
struct Section {
    /// Line index of `key:`.
    key_line: usize,
    /// The key line holds an explicit empty value (`[]`, `null`, `~`) to replace.
    inline_value: bool,
    /// Item indentation (spaces before `-`).
    indent: usize,
    /// Items: (first line, end line exclusive), trailing blank/comment lines excluded.
    items: Vec<(usize, usize)>,
    /// Where new items go (line index to insert before).
    insert_at: usize,
}

fn is_blank_or_comment(l: &str) -> bool {
    let t = l.trim_start();
    t.is_empty() || t.starts_with('#')
}

fn find_section(lines: &[String], key: &str) -> Result<Option<Section>, PlanError> {
    let prefix = format!("{key}:");
    let Some(key_line) = lines.iter().position(|l| {
        l.starts_with(&prefix)
            && (l.len() == prefix.len() || l[prefix.len()..].starts_with([' ', '\t']))
    }) else {
        return Ok(None);
    };
    let rest = lines[key_line][prefix.len()..].trim();
    let rest = match rest.find(" #") {
        _ if rest.starts_with('#') => "",
        Some(i) => rest[..i].trim(),
        None => rest,
    };
    let inline_empty = matches!(rest, "[]" | "null" | "~" | "");
    if !inline_empty {
        return Err(refuse(format!(
            "`{key}: {rest}` is written inline (flow style), which this tool does not edit"
        )));
    }
    // The block: following lines until one at column 0 that is neither blank, comment nor item.
    let mut end = key_line + 1;
    while end < lines.len() {
        let l = &lines[end];
        let col0 = !l.starts_with([' ', '\t']);
        if col0 && !is_blank_or_comment(l) && !l.starts_with('-') {
            break;
        }
        end += 1;
    }
    let mut indent = None;
    let mut items: Vec<(usize, usize)> = Vec::new();
    for (i, l) in lines.iter().enumerate().take(end).skip(key_line + 1) {
        if is_blank_or_comment(l) {
            continue;
        }
        let lead = l.len() - l.trim_start_matches(' ').len();
        let ind = *indent.get_or_insert(lead);
        if lead == ind {
            let t = &l[lead..];
            if !(t == "-" || t.starts_with("- ")) {
                return Err(refuse(format!(
                    "line {} under `{key}:` is not a list item",
                    i + 1
                )));
            }
            if let Some(last) = items.last_mut() {
                last.1 = i;
            }
            items.push((i, i + 1));
        } else if lead < ind {
            return Err(refuse(format!(
                "line {} under `{key}:` is indented less than the list items",
                i + 1
            )));
        }
    }
    if !rest.is_empty() && !items.is_empty() {
        return Err(refuse(format!("`{key}: {rest}` is followed by list items")));
    }
    if let Some(last) = items.last_mut() {
        last.1 = end;
    }
    // Trim trailing blank/comment lines from each item.
    for it in items.iter_mut() {
        while it.1 > it.0 + 1 && is_blank_or_comment(&lines[it.1 - 1]) {
            it.1 -= 1;
        }
    }
    let insert_at = items.last().map(|it| it.1).unwrap_or(key_line + 1);
    Ok(Some(Section {
        key_line,
        inline_value: !rest.is_empty(),
        indent: indent.unwrap_or(0),
        items,
        insert_at,
    }))
}

/// Renders one list item at `indent`.
fn render_item(v: &Value, indent: usize) -> Vec<String> {
    let text = serde_yaml_ng::to_string(v).expect("plain value serialises");
    let pad = " ".repeat(indent);
    text.lines()
        .enumerate()
        .map(|(i, l)| {
            if i == 0 {
                format!("{pad}- {l}")
            } else {
                format!("{pad}  {l}")
            }
        })
        .collect()
}

/// Adds or updates user and context `oidc-<cluster>` (and the cluster when new) in `current`.
pub fn merge(current: &str, st: &OidcSettings, req: &Request) -> Result<Merged, PlanError> {
    let name = format!("oidc-{}", req.cluster);
    if req.cluster.is_empty()
        || req
            .cluster
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(PlanError::invalid(
            "--cluster",
            &req.cluster,
            "must be a non-empty name without spaces",
            "give the cluster's name as in the kubeconfig, e.g. `kind-oidc`",
        ));
    }
    let crlf = current.contains("\r\n");
    let lf = current.replace("\r\n", "\n");
    let mut docs = Vec::new();
    for d in serde_yaml_ng::Deserializer::from_str(&lf) {
        let v: Value = serde::Deserialize::deserialize(d).map_err(|e| {
            refuse(format!(
                "it is not valid YAML ({})",
                e.to_string().replace('\n', " ")
            ))
        })?;
        docs.push(v);
    }
    if docs.len() > 1 {
        return Err(refuse("it holds several YAML documents"));
    }
    let mut text = lf.clone();
    let mut doc = match docs.pop() {
        None | Some(Value::Null) => {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str("apiVersion: v1\nkind: Config\n");
            let mut m = Mapping::new();
            m.insert(s("apiVersion"), s("v1"));
            m.insert(s("kind"), s("Config"));
            m
        }
        Some(Value::Mapping(m)) => m,
        Some(_) => return Err(refuse("its top level is not a mapping")),
    };
    let before = doc.clone();
    let (cluster_added, notes) = merge_value(&mut doc, st, req)?;

    // Text edit, section by section, from the end of the file backwards so line numbers hold.
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut sections = Vec::new();
    for key in ["clusters", "contexts", "users"] {
        let sec = find_section(&lines, key)?;
        if sec.is_none() && before.contains_key(key) {
            return Err(refuse(format!(
                "`{key}` is not written as a plain top-level key"
            )));
        }
        sections.push((key, sec));
    }
    let entry_for = |key: &str, wanted: &str| -> Option<Value> {
        doc.get(key).and_then(Value::as_sequence).and_then(|items| {
            items
                .iter()
                .find(|i| entry_name(i) == Some(wanted))
                .cloned()
        })
    };
    let mut edits: Vec<(usize, usize, Vec<String>)> = Vec::new(); // replace [a, b) with lines
    let mut appended: Vec<String> = Vec::new();
    for (key, sec) in &sections {
        let wanted = if *key == "clusters" {
            req.cluster.as_str()
        } else {
            name.as_str()
        };
        if *key == "clusters" && !cluster_added {
            continue;
        }
        let new = entry_for(key, wanted).expect("merge_value added it");
        let old_index = before
            .get(*key)
            .and_then(Value::as_sequence)
            .and_then(|items| items.iter().position(|i| entry_name(i) == Some(wanted)));
        match sec {
            None => {
                appended.push(format!("{key}:"));
                appended.extend(render_item(&new, 0));
            }
            Some(sec) => {
                if sec.inline_value {
                    let mut l = vec![format!("{key}:")];
                    l.extend(render_item(&new, sec.indent));
                    edits.push((sec.key_line, sec.key_line + 1, l));
                } else if let Some(i) = old_index {
                    let Some(&(a, b)) = sec.items.get(i) else {
                        return Err(refuse(format!(
                            "cannot find item {} of `{key}` in the text",
                            i + 1
                        )));
                    };
                    edits.push((a, b, render_item(&new, sec.indent)));
                } else {
                    edits.push((sec.insert_at, sec.insert_at, render_item(&new, sec.indent)));
                }
            }
        }
    }
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    for (a, b, l) in edits {
        lines.splice(a..b, l);
    }
    lines.extend(appended);
    let mut out = lines.join("\n");
    out.push('\n');

    // Check: the text edit must mean exactly the structural merge.
    let reparsed: Value = serde_yaml_ng::from_str(&out)
        .map_err(|e| refuse(format!("the edit would not parse ({e})")))?;
    if reparsed != Value::Mapping(doc) {
        return Err(refuse(
            "the minimal edit would not give the expected structure (unusual layout)",
        ));
    }
    if crlf {
        out = out.replace('\n', "\r\n");
    }
    Ok(Merged {
        text: out,
        name,
        cluster_added,
        notes,
    })
}

/// The equivalent commands, one per line, for the dry run.
pub fn commands_text(cmds: &[Command]) -> String {
    cmds.iter()
        .map(|c| {
            format!(
                "+ {}\n",
                shell::join(std::iter::once(&c.program).chain(&c.args))
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{ca, with};

    fn st() -> OidcSettings {
        with(|_| {})
    }

    fn req(server: Option<&str>) -> Request {
        Request {
            cluster: "kind-oidc".into(),
            server: server.map(str::to_string),
            cluster_ca: None,
        }
    }

    #[test]
    fn args_follow_settings() {
        let a = exec_args(&st());
        assert_eq!(
            a,
            [
                "oidc-login",
                "get-token",
                "--oidc-issuer-url=https://idp.example.com",
                "--oidc-client-id=kubernetes",
                "--oidc-extra-scope=email",
                "--oidc-extra-scope=groups",
                "--oidc-extra-scope=offline_access"
            ]
        );
        let mut s2 = with(|i| {
            i.username_claim = Some("sub".into());
            i.groups_claim = None;
            i.groups_prefix = None;
        });
        s2.ca = Some(ca());
        let a = exec_args(&s2);
        assert_eq!(
            a[4..],
            [
                "--oidc-extra-scope=offline_access",
                "--certificate-authority=/home/me/idp-ca.pem"
            ]
        );
    }

    #[test]
    fn empty_file_gets_everything_and_is_idempotent() {
        let m = merge("", &st(), &req(Some("https://127.0.0.1:6443"))).unwrap();
        assert!(m.cluster_added);
        assert!(
            m.text
                .starts_with("apiVersion: v1\nkind: Config\nclusters:\n- name: kind-oidc\n"),
            "{}",
            m.text
        );
        let again = merge(&m.text, &st(), &req(None)).unwrap();
        assert_eq!(again.text, m.text);
    }

    #[test]
    fn missing_cluster_without_server_is_refused() {
        let e = merge("", &st(), &req(None)).unwrap_err().to_string();
        assert!(e.contains("--server"), "{e}");
    }

    #[test]
    fn keeps_comments_crlf_and_indented_lists() {
        let text = "# top\r\napiVersion: v1\r\nclusters:\r\n  # c\r\n  - name: kind-oidc\r\n    cluster:\r\n      server: https://x:6443\r\nusers:\r\n  - name: other # keep\r\n    user: {token: abc}\r\n\r\n# tail\r\nkind: Config\r\n";
        let m = merge(text, &st(), &req(None)).unwrap();
        assert!(!m.cluster_added);
        assert!(
            m.text.contains(
                "  - name: other # keep\r\n    user: {token: abc}\r\n  - name: oidc-kind-oidc\r\n"
            ),
            "{}",
            m.text
        );
        assert!(
            m.text
                .starts_with("# top\r\napiVersion: v1\r\nclusters:\r\n  # c\r\n"),
            "{}",
            m.text
        );
        assert!(
            m.text.contains("\r\n# tail\r\nkind: Config\r\n"),
            "{}",
            m.text
        );
        assert!(m.text.ends_with("contexts:\r\n- name: oidc-kind-oidc\r\n  context:\r\n    cluster: kind-oidc\r\n    user: oidc-kind-oidc\r\n"), "{}", m.text);
        assert!(!m.text.replace("\r\n", "").contains('\n'));
    }

    #[test]
    fn updates_existing_entries_in_place_keeping_their_other_fields() {
        let text = "apiVersion: v1\nclusters:\n- name: kind-oidc\n  cluster: {server: https://x}\ncontexts:\n- name: oidc-kind-oidc\n  context:\n    cluster: old\n    user: old\n    namespace: team\nusers:\n- name: oidc-kind-oidc\n  user:\n    token: stale\n- name: z\n  user: {}\n";
        let m = merge(text, &st(), &req(None)).unwrap();
        let v: Value = serde_yaml_ng::from_str(&m.text).unwrap();
        assert_eq!(v["contexts"][0]["context"]["namespace"], s("team"));
        assert_eq!(v["contexts"][0]["context"]["cluster"], s("kind-oidc"));
        assert_eq!(v["users"][0]["user"]["exec"]["interactiveMode"], s("Never"));
        assert!(v["users"][0]["user"].get("token").is_none());
        assert_eq!(v["users"][1]["name"], s("z"));
        assert!(m.text.ends_with("- name: z\n  user: {}\n"), "{}", m.text);
    }

    #[test]
    fn unknown_fields_survive_byte_for_byte() {
        let text = "apiVersion: v1\nx-custom: {a: [1, 2]}\nclusters:\n- name: kind-oidc\n  extensions: [{name: e, extension: {k: v}}]\n  cluster: {server: 'https://x', x-new-field: 7}\nusers: []\npreferences: {colors: true}\n";
        let m = merge(text, &st(), &req(None)).unwrap();
        for line in text.lines().filter(|l| !l.starts_with("users:")) {
            assert!(m.text.contains(line), "lost {line:?}:\n{}", m.text);
        }
        let v: Value = serde_yaml_ng::from_str(&m.text).unwrap();
        assert_eq!(v["clusters"][0]["cluster"]["x-new-field"], Value::from(7));
    }

    #[test]
    fn refuses_flow_style_and_non_lists() {
        assert!(merge(
            "users: [{name: a, user: {}}]\n",
            &st(),
            &req(Some("https://x"))
        )
        .is_err());
        assert!(merge("users: 3\n", &st(), &req(Some("https://x"))).is_err());
        assert!(merge("a: 1\n---\nb: 2\n", &st(), &req(Some("https://x"))).is_err());
        assert!(merge("- 1\n", &st(), &req(Some("https://x"))).is_err());
    }

    #[test]
    fn empty_inline_lists_are_replaced() {
        let m = merge(
            "apiVersion: v1\nclusters: []\ncontexts: null\nusers: ~\nkind: Config\n",
            &st(),
            &req(Some("https://x")),
        )
        .unwrap();
        assert!(
            m.text.contains("clusters:\n- name: kind-oidc\n"),
            "{}",
            m.text
        );
        assert!(
            m.text
                .ends_with("    interactiveMode: Never\nkind: Config\n"),
            "{}",
            m.text
        );
    }
}

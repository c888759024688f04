//! RBAC bindings for OIDC users, and which bindings an identity matches.
//!
//! Facts:
//! - kube-apiserver prefixes every OIDC username and group before authorisation
//!   (`staging/src/k8s.io/apiserver/plugin/pkg/authenticator/token/oidc/oidc.go`, `AuthenticateToken`),
//!   so a binding subject must carry the prefix: `oidc:k8s-admins`, or `https://issuer#sub`
//!   when no username prefix is set and the claim is not `email`
//!   (`pkg/kubeapiserver/options/authentication.go`, `ToAuthenticationConfig`).
//! - The object shape is exactly what `kubectl create clusterrolebinding|rolebinding
//!   --dry-run=client -o yaml` prints (`staging/src/k8s.io/kubectl/pkg/cmd/create/create_clusterrolebinding.go`,
//!   `create_rolebinding.go`): users first, then groups, each with `apiGroup: rbac.authorization.k8s.io`.
//! - RBAC matches subjects by exact string: `User` kind against the username, `Group` kind against
//!   each group (`plugin/pkg/auth/authorizer/rbac/rbac.go`, `appliesToUser`).

use serde::{Deserialize, Serialize};

use crate::identity::Identity;
use crate::{OidcSettings, PlanError};

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// What the user asked `k8soidc rbac` for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BindingRequest {
    /// Binding name; derived from the role and the first subject when absent.
    pub name: Option<String>,
    /// Group names as the provider sends them (without prefix).
    pub groups: Vec<String>,
    /// User names as the provider sends them in the username claim (without prefix).
    pub users: Vec<String>,
    /// A ClusterRole to bind (`--clusterrole`).
    pub cluster_role: Option<String>,
    /// A namespaced Role to bind (`--role`, needs `namespace`).
    pub role: Option<String>,
    /// Namespace: makes it a RoleBinding.
    pub namespace: Option<String>,
    /// GKE with Workforce Identity Federation: subjects are this pool's IAM principal
    /// identifiers (`principal://…/subject/USER`, `principalSet://…/group/GROUP`), not prefixed
    /// names ([`crate::gke`]).
    pub workforce_pool: Option<String>,
}

/// `metadata` of a binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Object name.
    pub name: String,
    /// Namespace (RoleBinding only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `roleRef` of a binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleRef {
    /// Always `rbac.authorization.k8s.io`.
    #[serde(default)]
    pub api_group: String,
    /// `ClusterRole` or `Role`.
    pub kind: String,
    /// The role's name.
    pub name: String,
}

/// One subject of a binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    /// `rbac.authorization.k8s.io` for users and groups (absent for service accounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_group: Option<String>,
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: String,
    /// The name, prefix included.
    pub name: String,
    /// Namespace (service accounts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A ClusterRoleBinding or RoleBinding (the fields RBAC uses; others are ignored on read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    /// `rbac.authorization.k8s.io/v1`.
    #[serde(default)]
    pub api_version: String,
    /// `ClusterRoleBinding` or `RoleBinding`.
    pub kind: String,
    /// Name and namespace.
    pub metadata: Metadata,
    /// The role granted.
    pub role_ref: RoleRef,
    /// Who gets it.
    #[serde(default)]
    pub subjects: Vec<Subject>,
}

impl Binding {
    /// `ClusterRoleBinding/name` or `RoleBinding/ns/name`.
    pub fn id(&self) -> String {
        match &self.metadata.namespace {
            Some(ns) => format!("{}/{ns}/{}", self.kind, self.metadata.name),
            None => format!("{}/{}", self.kind, self.metadata.name),
        }
    }
}

/// A binding plus the lines that explain the subjects' prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The object.
    pub binding: Binding,
    /// Which prefix was applied to which subject, and why.
    pub notes: Vec<String>,
}

impl Generated {
    /// YAML with the notes as leading comments (`kubectl apply` ignores them).
    pub fn to_yaml(&self) -> String {
        let mut out: String = self.notes.iter().map(|n| format!("# {n}\n")).collect();
        out.push_str(&crate::yamlout::to_yaml(&self.binding));
        out
    }
}

/// An RBAC object name: a DNS-subdomain-like path segment. We are strict: lowercase letters,
/// digits, `-`, `.`, `:` (kubectl accepts more; these are safe everywhere).
fn check_object_name(field: &'static str, name: &str) -> Result<(), PlanError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-.:".contains(c))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(PlanError::invalid(
            field,
            name,
            "is not a valid object name",
            "use lowercase letters, digits, `-`, `.` and `:`, at most 253 characters",
        ))
    }
}

fn check_subject(field: &'static str, name: &str) -> Result<(), PlanError> {
    if name.is_empty() || name.chars().any(char::is_control) || name.trim() != name {
        return Err(PlanError::invalid(
            field,
            name,
            "must be a non-empty name without control characters or surrounding spaces",
            "give the name exactly as the provider sends it, e.g. `k8s-admins`",
        ));
    }
    Ok(())
}

/// Lowercase alphanumerics and `-` only, for derived names.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_string()
}

/// Builds the binding `kubectl create clusterrolebinding|rolebinding` would, with prefixed subjects.
pub fn binding(s: &OidcSettings, req: &BindingRequest) -> Result<Generated, PlanError> {
    if req.groups.is_empty() && req.users.is_empty() {
        return Err(PlanError::MissingSetting {
            field: "--group",
            fix: "give `--group NAME` (or `--user NAME`) as the provider sends it".into(),
        });
    }
    let (role_kind, role_name) = match (&req.role, &req.cluster_role) {
        (Some(_), Some(c)) => {
            return Err(PlanError::invalid(
                "--clusterrole",
                c,
                "is given together with --role",
                "give either `--clusterrole NAME` or `--role NAME --namespace NS`",
            ))
        }
        (Some(r), None) => {
            if req.namespace.is_none() {
                return Err(PlanError::invalid(
                    "--role",
                    r,
                    "a Role lives in a namespace but no --namespace was given",
                    "add `--namespace NS`, or use `--clusterrole` for a cluster-wide role",
                ));
            }
            ("Role", r.clone())
        }
        (None, Some(c)) => ("ClusterRole", c.clone()),
        (None, None) => ("ClusterRole", "cluster-admin".to_string()),
    };
    check_object_name(
        if role_kind == "Role" {
            "--role"
        } else {
            "--clusterrole"
        },
        &role_name,
    )?;
    if let Some(ns) = &req.namespace {
        let ok = !ns.is_empty()
            && ns.len() <= 63
            && ns
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !ns.starts_with('-')
            && !ns.ends_with('-');
        if !ok {
            return Err(PlanError::invalid(
                "--namespace",
                ns,
                "is not a valid namespace name",
                "use lowercase letters, digits and `-` (a DNS label)",
            ));
        }
    }
    if s.groups_claim.is_none() && !req.groups.is_empty() {
        return Err(PlanError::invalid(
            "--group",
            &req.groups[0],
            "no --groups-claim is configured, so tokens carry no groups to match",
            "add `--groups-claim groups` (the claim your provider uses), or bind `--user` instead",
        ));
    }
    if let Some(pool) = &req.workforce_pool {
        crate::gke::check_pool(pool)?;
    }
    let (uprefix, gprefix) = match &req.workforce_pool {
        Some(pool) => (
            crate::gke::user_prefix(pool),
            crate::gke::group_prefix(pool),
        ),
        None => (s.effective_username_prefix(), s.effective_groups_prefix()),
    };
    let mut notes = Vec::new();
    let mut subjects = Vec::new();
    for u in &req.users {
        check_subject("--user", u)?;
        subjects.push(Subject {
            api_group: Some(RBAC_GROUP.into()),
            kind: "User".into(),
            name: format!("{uprefix}{u}"),
            namespace: None,
        });
    }
    if let (Some(pool), false) = (&req.workforce_pool, req.users.is_empty()) {
        notes.push(format!(
            "user subjects are IAM principal identifiers of workforce pool `{pool}`, as GKE with Workforce Identity Federation names users (its `google.subject`, the `{}` claim); --username-prefix does not apply",
            s.username_claim
        ));
    } else if !req.users.is_empty() {
        notes.push(format!(
            "user subjects carry the username prefix {:?}: {}",
            uprefix,
            s.username_prefix_reason()
        ));
        if !uprefix.is_empty() && req.users.iter().any(|u| u.starts_with(&uprefix)) {
            notes.push(format!("warning: a --user already starts with {uprefix:?}; give the bare value of claim `{}`, the prefix is added", s.username_claim));
        }
    }
    for g in &req.groups {
        check_subject("--group", g)?;
        subjects.push(Subject {
            api_group: Some(RBAC_GROUP.into()),
            kind: "Group".into(),
            name: format!("{gprefix}{g}"),
            namespace: None,
        });
    }
    if let (Some(pool), false) = (&req.workforce_pool, req.groups.is_empty()) {
        notes.push(format!(
            "group subjects are IAM principal-set identifiers of workforce pool `{pool}`, as GKE with Workforce Identity Federation names groups (its `google.groups`); --groups-prefix does not apply"
        ));
    } else if !req.groups.is_empty() {
        notes.push(match &s.groups_prefix {
            Some(p) => format!("group subjects carry the groups prefix {p:?}: `--groups-prefix {p}` was given"),
            None => "group subjects carry no prefix: no --groups-prefix is set, so kube-apiserver uses the groups as sent".to_string(),
        });
        if !gprefix.is_empty() && req.groups.iter().any(|g| g.starts_with(&gprefix)) {
            notes.push(format!("warning: a --group already starts with {gprefix:?}; give the group as the provider sends it, the prefix is added"));
        }
    }
    let name = match &req.name {
        Some(n) => {
            check_object_name("--name", n)?;
            n.clone()
        }
        None => {
            let first = req.groups.first().or(req.users.first()).map(String::as_str);
            let n = format!(
                "oidc-{}-{}",
                slug(first.unwrap_or_default()),
                slug(&role_name)
            );
            let n = n.replace("--", "-");
            let mut n: String = n.chars().take(253).collect();
            while n.ends_with('-') {
                n.pop();
            }
            n
        }
    };
    let binding = Binding {
        api_version: format!("{RBAC_GROUP}/v1"),
        kind: if req.namespace.is_some() {
            "RoleBinding"
        } else {
            "ClusterRoleBinding"
        }
        .into(),
        metadata: Metadata {
            name,
            namespace: req.namespace.clone(),
        },
        role_ref: RoleRef {
            api_group: RBAC_GROUP.into(),
            kind: role_kind.into(),
            name: role_name,
        },
        subjects,
    };
    Ok(Generated { binding, notes })
}

/// Reads bindings from YAML or JSON: one object, a list of objects, a `kind: List` (as
/// `kubectl get -o json` prints), or several `---` documents. Other kinds are skipped.
pub fn parse_bindings(text: &str) -> Result<Vec<Binding>, PlanError> {
    let bad = |e: String| {
        PlanError::patch(
            "the RBAC bindings",
            e.replace('\n', " "),
            "give YAML or JSON with ClusterRoleBinding/RoleBinding objects, a list of them, or a `kind: List`",
        )
    };
    let mut out = Vec::new();
    let mut values = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let v = serde_yaml_ng::Value::deserialize(doc).map_err(|e| bad(e.to_string()))?;
        values.push(v);
    }
    fn walk(
        v: serde_yaml_ng::Value,
        out: &mut Vec<Binding>,
        bad: &dyn Fn(String) -> PlanError,
    ) -> Result<(), PlanError> {
        match v {
            serde_yaml_ng::Value::Null => Ok(()),
            serde_yaml_ng::Value::Sequence(items) => {
                for i in items {
                    walk(i, out, bad)?;
                }
                Ok(())
            }
            serde_yaml_ng::Value::Mapping(m) => {
                let kind = m.get("kind").and_then(|k| k.as_str()).unwrap_or_default();
                match kind {
                    "List" | "ClusterRoleBindingList" | "RoleBindingList" => {
                        let items = m.get("items").cloned().unwrap_or_default();
                        walk(items, out, bad)
                    }
                    "ClusterRoleBinding" | "RoleBinding" => {
                        let b: Binding =
                            serde_yaml_ng::from_value(serde_yaml_ng::Value::Mapping(m))
                                .map_err(|e| bad(e.to_string()))?;
                        out.push(b);
                        Ok(())
                    }
                    _ => Ok(()),
                }
            }
            other => Err(bad(format!("unexpected {other:?} at the top level"))),
        }
    }
    for v in values {
        walk(v, &mut out, &bad)?;
    }
    Ok(out)
}

/// A binding that applies to the identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Match {
    /// `ClusterRoleBinding/name` or `RoleBinding/ns/name`.
    pub binding: String,
    /// `ClusterRole/cluster-admin` etc.
    pub role: String,
    /// The subject that matched (`Group oidc:k8s-admins`).
    pub subject: String,
}

/// A subject that almost names the identity, and what differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NearMiss {
    /// The binding.
    pub binding: String,
    /// The subject as written (`Group k8s-admins`).
    pub subject: String,
    /// What the identity actually carries.
    pub actual: String,
    /// What is different and how to fix the subject.
    pub reason: String,
}

/// Which bindings match, and near misses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Matches {
    /// Bindings that apply.
    pub matches: Vec<Match>,
    /// Subjects that look meant for this identity but do not match.
    pub near_misses: Vec<NearMiss>,
}

/// Explains why `written` differs from `actual` (a name the identity carries), if it is close.
fn near(written: &str, actual: &str, prefix: &str) -> Option<String> {
    let bare = actual.strip_prefix(prefix).unwrap_or(actual);
    if written == actual {
        return None;
    }
    if !prefix.is_empty() && written == bare {
        return Some(format!("missing the prefix {prefix:?}; write {actual:?}"));
    }
    if let Some((p, rest)) = written.split_once(':') {
        if rest == bare || rest == actual {
            return Some(format!(
                "has prefix {:?} but the API server applies {prefix:?}; write {actual:?}",
                format!("{p}:")
            ));
        }
    }
    if written.ends_with(&format!("#{bare}")) {
        return Some(format!(
            "uses the `<issuer>#` form but the API server applies {prefix:?}; write {actual:?}"
        ));
    }
    if written.eq_ignore_ascii_case(actual) {
        return Some(format!(
            "differs in case; RBAC names are case-sensitive, write {actual:?}"
        ));
    }
    let wb = written.strip_prefix(prefix).unwrap_or(written);
    let last = |t: &str| t.rsplit('/').next().unwrap_or(t).to_string();
    if wb.trim_start_matches('/') == bare.trim_start_matches('/')
        || ((wb.contains('/') || bare.contains('/')) && last(wb) == last(bare))
    {
        return Some(format!(
            "differs by a Keycloak group path `/`; the token carries {bare:?}, write {actual:?}"
        ));
    }
    None
}

/// Matches an identity against bindings, as RBAC does, and lists near misses.
pub fn matches(s: &OidcSettings, id: &Identity, bindings: &[Binding]) -> Matches {
    let mut m = Matches::default();
    let uprefix = s.effective_username_prefix();
    let gprefix = s.effective_groups_prefix();
    for b in bindings {
        let role = format!("{}/{}", b.role_ref.kind, b.role_ref.name);
        for sub in &b.subjects {
            let shown = format!("{} {}", sub.kind, sub.name);
            let hit = match sub.kind.as_str() {
                "User" => sub.name == id.username,
                "Group" => id.groups.contains(&sub.name),
                _ => false,
            };
            if hit {
                m.matches.push(Match {
                    binding: b.id(),
                    role: role.clone(),
                    subject: shown,
                });
                continue;
            }
            let miss = |actual: &str, reason: String| NearMiss {
                binding: b.id(),
                subject: shown.clone(),
                actual: actual.to_string(),
                reason,
            };
            match sub.kind.as_str() {
                "User" => {
                    if id.groups.contains(&sub.name) {
                        m.near_misses.push(miss(
                            &sub.name,
                            "is a group of this identity but the subject kind is User; use `kind: Group`".into(),
                        ));
                    } else if let Some(r) = near(&sub.name, &id.username, &uprefix) {
                        m.near_misses.push(miss(&id.username, r));
                    }
                }
                "Group" => {
                    if sub.name == id.username {
                        m.near_misses.push(miss(
                            &sub.name,
                            "is this identity's username but the subject kind is Group; use `kind: User`".into(),
                        ));
                        continue;
                    }
                    for g in id.groups.iter().filter(|g| *g != "system:authenticated") {
                        if let Some(r) = near(&sub.name, g, &gprefix) {
                            m.near_misses.push(miss(g, r));
                            break;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{settings, with};

    fn req() -> BindingRequest {
        BindingRequest {
            groups: vec!["k8s-admins".into()],
            ..Default::default()
        }
    }

    #[test]
    fn group_gets_prefix_and_default_cluster_admin() {
        let g = binding(&settings(), &req()).unwrap();
        assert_eq!(g.binding.kind, "ClusterRoleBinding");
        assert_eq!(g.binding.metadata.name, "oidc-k8s-admins-cluster-admin");
        assert_eq!(g.binding.role_ref.name, "cluster-admin");
        assert_eq!(g.binding.subjects[0].name, "oidc:k8s-admins");
        assert!(g.notes[0].contains("\"oidc:\""), "{:?}", g.notes);
        let yaml = g.to_yaml();
        assert!(yaml.starts_with("# group subjects carry"), "{yaml}");
    }

    #[test]
    fn user_gets_issuer_hash_prefix_when_claim_is_sub() {
        let s = with(|i| {
            i.username_claim = Some("sub".into());
            i.username_prefix = None;
        });
        let mut r = req();
        r.users = vec!["1234".into()];
        let g = binding(&s, &r).unwrap();
        assert_eq!(g.binding.subjects[0].kind, "User");
        assert_eq!(g.binding.subjects[0].name, "https://idp.example.com#1234");
        assert!(g.notes[0].contains("not `email`"), "{:?}", g.notes);
    }

    #[test]
    fn role_needs_namespace_and_excludes_clusterrole() {
        let mut r = req();
        r.role = Some("view".into());
        assert!(binding(&settings(), &r)
            .unwrap_err()
            .to_string()
            .contains("--namespace"));
        r.namespace = Some("team-a".into());
        let g = binding(&settings(), &r).unwrap();
        assert_eq!(g.binding.kind, "RoleBinding");
        assert_eq!(g.binding.role_ref.kind, "Role");
        r.cluster_role = Some("edit".into());
        assert!(binding(&settings(), &r).is_err());
    }

    #[test]
    fn bad_names_refused() {
        let mut r = req();
        r.name = Some("Bad Name".into());
        assert!(binding(&settings(), &r).is_err());
        let mut r = req();
        r.groups = vec![" x".into()];
        assert!(binding(&settings(), &r).is_err());
        assert!(binding(&settings(), &BindingRequest::default()).is_err());
    }

    fn id(user: &str, groups: &[&str]) -> Identity {
        Identity {
            username: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    fn crb(name: &str, kind: &str, subject: &str) -> Binding {
        Binding {
            api_version: "rbac.authorization.k8s.io/v1".into(),
            kind: "ClusterRoleBinding".into(),
            metadata: Metadata {
                name: name.into(),
                namespace: None,
            },
            role_ref: RoleRef {
                api_group: RBAC_GROUP.into(),
                kind: "ClusterRole".into(),
                name: "view".into(),
            },
            subjects: vec![Subject {
                api_group: Some(RBAC_GROUP.into()),
                kind: kind.into(),
                name: subject.into(),
                namespace: None,
            }],
        }
    }

    #[test]
    fn matching_and_near_misses() {
        let s = settings();
        let who = id(
            "oidc:jane@example.com",
            &["oidc:k8s-admins", "oidc:/team/dev", "system:authenticated"],
        );
        let bs = vec![
            crb("hit", "Group", "oidc:k8s-admins"),
            crb("user-hit", "User", "oidc:jane@example.com"),
            crb("auth", "Group", "system:authenticated"),
            crb("noprefix", "Group", "k8s-admins"),
            crb("otherprefix", "Group", "keycloak:k8s-admins"),
            crb("case", "Group", "oidc:K8s-Admins"),
            crb("path", "Group", "oidc:dev"),
            crb("kind", "User", "oidc:k8s-admins"),
            crb("hash", "User", "https://idp.example.com#jane@example.com"),
            crb("unrelated", "Group", "ops"),
        ];
        let m = matches(&s, &who, &bs);
        let hits: Vec<&str> = m.matches.iter().map(|x| x.binding.as_str()).collect();
        assert_eq!(
            hits,
            [
                "ClusterRoleBinding/hit",
                "ClusterRoleBinding/user-hit",
                "ClusterRoleBinding/auth"
            ]
        );
        let reason = |n: &str| {
            m.near_misses
                .iter()
                .find(|x| x.binding == format!("ClusterRoleBinding/{n}"))
                .map(|x| x.reason.clone())
                .unwrap_or_else(|| panic!("no near miss {n}: {:?}", m.near_misses))
        };
        assert!(reason("noprefix").contains("missing the prefix"));
        assert!(reason("otherprefix").contains("has prefix \"keycloak:\""));
        assert!(reason("case").contains("case"));
        assert!(reason("path").contains("Keycloak"));
        assert!(reason("kind").contains("kind is User"));
        assert!(reason("hash").contains("<issuer>#"));
        assert!(!m
            .near_misses
            .iter()
            .any(|x| x.binding.ends_with("unrelated")));
    }

    #[test]
    fn parses_list_multidoc_and_sequence() {
        let one = serde_yaml_ng::to_string(&crb("a", "Group", "g")).unwrap();
        let multi =
            format!("{one}---\n{one}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: x}}\n");
        assert_eq!(parse_bindings(&multi).unwrap().len(), 2);
        let list = format!(
            "{{\"kind\":\"List\",\"items\":[{}]}}",
            serde_json::to_string(&crb("b", "User", "u")).unwrap()
        );
        assert_eq!(parse_bindings(&list).unwrap()[0].metadata.name, "b");
        let seq = format!("- {}", one.replace('\n', "\n  "));
        assert_eq!(parse_bindings(&seq).unwrap().len(), 1);
        assert!(parse_bindings("kind: ClusterRoleBinding\nmetadata: 3\n").is_err());
    }
}

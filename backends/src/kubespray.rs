//! kubespray: OIDC is a set of Ansible variables in the inventory's `group_vars/k8s_cluster`;
//! kubespray's kubeadm template turns them into `apiServer.extraArgs` when `cluster.yml` runs.
//!
//! Facts (kubernetes-sigs/kubespray at 46dbdd39, `shared/reference/kubespray-oidc-vars.md`):
//! - Flags: `kube_oidc_auth: true` plus `kube_oidc_url` and `kube_oidc_client_id` (both
//!   required, else nothing is rendered, silently), `kube_oidc_username_claim`,
//!   `kube_oidc_username_prefix`, `kube_oidc_groups_claim`, `kube_oidc_groups_prefix`,
//!   `kube_oidc_ca_file` (→ `--oidc-ca-file`) and `kube_oidc_ca_cert` (base64 of the PEM,
//!   written to `kube_oidc_ca_file` by `roles/kubernetes/control-plane/tasks/kubeadm-setup.yml`).
//!   Template `roles/kubernetes/control-plane/templates/kubeadm-config.v1beta4.yaml.j2`
//!   l.181-206 wraps every value in `"…"` unescaped, so `"` and `\` cannot be carried.
//! - No variable exists for `--oidc-required-claim` or `--oidc-signing-algs`; they go through
//!   the `kube_kubeadm_apiserver_extra_args` dict (template l.257-260), so one claim at most.
//! - The CA goes to `{{ kube_cert_dir }}/oidc-ca.pem`: `kube_cert_dir` is kubeadm's
//!   `certificatesDir`, which kubeadm mounts into the API server; no extra volume is needed.
//! - Structured authentication: `kube_apiserver_use_authentication_config_file: true` and
//!   `kube_apiserver_authentication_config_jwt` (the `jwt:` list, written as given with
//!   `to_nice_yaml`; `issuer.certificateAuthority` takes the PEM content, not a path, despite
//!   the commented example in `roles/kubespray_defaults/defaults/main/main.yml` l.548). With the
//!   switch on, every `--oidc-*` flag is dropped silently, so [`patch_group_vars`] removes the
//!   `kube_oidc_*` variables when it turns the switch on.
//! - Ansible templates every string: values with `{{`, `{%` or `{#` would be evaluated.

use std::ops::Range;

use base64::Engine as _;
use serde_yaml_ng::{Mapping, Value};

use crate::apiserver;
use crate::capi::{self, Entry};
use crate::yamltext;
use crate::{Backend, ClusterRequest, Distribution, Mode, OidcSettings, PlanError, Rendering};

/// The kubespray backend.
#[derive(Debug, Clone, Copy)]
pub struct Kubespray;

/// Where the CA lands on control-plane nodes (inside kubeadm's certificates directory).
pub const CA_FILE: &str = "{{ kube_cert_dir }}/oidc-ca.pem";
const EXTRA_ARGS: &str = "kube_kubeadm_apiserver_extra_args";
const WHAT: &str = "the group_vars file";

/// Whether a top-level variable is one this tool owns.
pub fn is_managed_var(name: &str) -> bool {
    name.starts_with("kube_oidc_")
        || name == "kube_apiserver_use_authentication_config_file"
        || name == "kube_apiserver_authentication_config_jwt"
}

/// Whether k8soidc replaces variable `name` for desired state `d`: its own variables, and
/// `kube_apiserver_authentication_config_anonymous` only when the settings give `anonymous`
/// (otherwise kubespray's default, or the user's, stays).
fn replaces(d: &Desired, name: &str) -> bool {
    is_managed_var(name) || d.vars.iter().any(|(n, _)| *n == name)
}

#[derive(Debug, Clone)]
enum Var {
    Bool(bool),
    Str(String),
    Yaml(Value),
}

#[derive(Debug, Clone, Default)]
struct Desired {
    vars: Vec<(&'static str, Var)>,
    extra_args: Vec<(String, String)>,
}

impl Desired {
    fn extra_entries(&self) -> Vec<Entry> {
        self.extra_args
            .iter()
            .map(|(k, v)| Entry::Pair(k.clone(), v.clone()))
            .collect()
    }

    fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, var) in &self.vars {
            match var {
                Var::Bool(b) => out.push(format!("{name}: {b}")),
                Var::Str(s) => out.push(format!("{name}: {}", yamltext::scalar(s))),
                Var::Yaml(v) => {
                    out.push(format!("{name}:"));
                    let text = crate::yamlout::to_yaml(v);
                    out.extend(text.lines().map(|l| {
                        if l.is_empty() {
                            String::new()
                        } else {
                            format!("  {l}")
                        }
                    }));
                }
            }
        }
        out
    }
}

fn check(s: &OidcSettings, mode: Mode) -> Result<(), PlanError> {
    for (field, value) in crate::rendered_values(s) {
        if ["{{", "{%", "{#"].iter().any(|t| value.contains(t)) {
            return Err(PlanError::unrepresentable(
                Distribution::Kubespray,
                field,
                &value,
                "Ansible would evaluate the `{{`/`{%`/`{#` in it as a Jinja template",
                "choose a value without them",
            ));
        }
    }
    if mode == Mode::Flags {
        crate::refuse_chars(
            Distribution::Kubespray,
            s,
            &[
                (
                    '"',
                    "kubespray's kubeadm template writes values inside \"…\" without escaping",
                ),
                (
                    '\\',
                    "kubespray's kubeadm template writes values inside \"…\" without escaping",
                ),
            ],
        )?;
        crate::refuse_repeated_claims(Distribution::Kubespray, s, "kubespray has no variable for it and kube_kubeadm_apiserver_extra_args is a dict, so it holds the flag once", "give one --required-claim, or use `--auth-mode config` (claimValidationRules)")?;
    }
    Ok(())
}

fn desired(s: &OidcSettings, remove: bool) -> Result<Desired, PlanError> {
    if remove {
        return Ok(Desired::default());
    }
    let mode = s.mode()?;
    check(s, mode)?;
    let mut d = Desired::default();
    match mode {
        Mode::Flags => {
            let str = |v: &str| Var::Str(v.to_string());
            d.vars.push(("kube_oidc_auth", Var::Bool(true)));
            d.vars.push(("kube_oidc_url", str(&s.issuer_url)));
            d.vars.push(("kube_oidc_client_id", str(&s.client_id)));
            d.vars
                .push(("kube_oidc_username_claim", str(&s.username_claim)));
            d.vars
                .push(("kube_oidc_username_prefix", str(&s.username_prefix_flag())));
            if let Some(c) = &s.groups_claim {
                d.vars.push(("kube_oidc_groups_claim", str(c)));
                d.vars
                    .push(("kube_oidc_groups_prefix", str(&s.effective_groups_prefix())));
            }
            if let Some(ca) = &s.ca {
                d.vars.push(("kube_oidc_ca_file", str(CA_FILE)));
                d.vars.push((
                    "kube_oidc_ca_cert",
                    Var::Str(base64::engine::general_purpose::STANDARD.encode(&ca.pem)),
                ));
            }
            if let Some(algs) = &s.signing_algs {
                d.extra_args
                    .push(("oidc-signing-algs".into(), algs.join(",")));
            }
            for (k, v) in &s.required_claims {
                d.extra_args
                    .push(("oidc-required-claim".into(), format!("{k}={v}")));
            }
        }
        Mode::Config(v) => {
            let config: Value = serde_yaml_ng::from_str(&apiserver::authentication_config(s, v))
                .expect("our own YAML parses");
            let jwt = config.get("jwt").cloned().unwrap_or(Value::Null);
            d.vars.push((
                "kube_apiserver_use_authentication_config_file",
                Var::Bool(true),
            ));
            d.vars
                .push(("kube_apiserver_authentication_config_jwt", Var::Yaml(jwt)));
            // kubespray writes `anonymous:` from this variable (its default follows
            // kube_api_anonymous_auth); set only when the settings give the section.
            if let Some(anonymous) = config.get("anonymous") {
                d.vars.push((
                    "kube_apiserver_authentication_config_anonymous",
                    Var::Yaml(anonymous.clone()),
                ));
            }
        }
    }
    Ok(d)
}

/// The group_vars lines for `k8s_cluster` (what `render` prints).
pub fn group_vars(s: &OidcSettings) -> Result<String, PlanError> {
    let d = desired(s, false)?;
    let mut lines = d.lines();
    if !d.extra_args.is_empty() {
        lines.push(format!("{EXTRA_ARGS}:"));
        lines.extend(d.extra_entries().iter().flat_map(|e| e.lines(2)));
    }
    Ok(lines.iter().map(|l| format!("{l}\n")).collect())
}

fn edit_value(doc: &mut Value, d: &Desired) -> Result<(), PlanError> {
    let Value::Mapping(m) = doc else {
        return Err(not_vars());
    };
    m.retain(|k, _| !k.as_str().is_some_and(|k| replaces(d, k)));
    for (name, var) in &d.vars {
        let v = match var {
            Var::Bool(b) => Value::Bool(*b),
            Var::Str(s) => Value::String(s.clone()),
            Var::Yaml(v) => v.clone(),
        };
        m.insert(Value::String((*name).to_string()), v);
    }
    capi::edit_collection(doc, &[EXTRA_ARGS], &d.extra_entries())
}

fn not_vars() -> PlanError {
    PlanError::patch(
        WHAT,
        "it is not one YAML mapping of variables",
        "give an inventory group_vars file, e.g. inventory/mycluster/group_vars/k8s_cluster/k8s-cluster.yml",
    )
}

/// Whether `text` looks like a kubespray group_vars file (for `patch --file` kind detection).
pub fn looks_like_group_vars(text: &str) -> bool {
    let is_k8s_object = text
        .lines()
        .any(|l| l.starts_with("apiVersion:") || l.starts_with("kind:"));
    !is_k8s_object
        && text.lines().any(|l| {
            let l = l.strip_prefix("# ").unwrap_or(l);
            l.starts_with("kube_") && l.contains(':')
        })
}

/// Sets (or with `remove`, takes out) the OIDC variables in a group_vars YAML file. Returns
/// None when nothing needs to change. Other variables and lines keep their bytes; existing
/// `kube_oidc_*` and structured-authentication variables are replaced, never duplicated, and
/// the `oidc-*` keys of `kube_kubeadm_apiserver_extra_args` are edited in place.
pub fn patch_group_vars(
    text: &str,
    s: &OidcSettings,
    remove: bool,
) -> Result<Option<String>, PlanError> {
    let d = desired(s, remove)?;
    let mut lines = yamltext::split(text);
    let eol = yamltext::eol_of(&lines);
    let ranges = yamltext::documents(&lines);
    let values = yamltext::parse_documents(&lines, ranges.clone()).map_err(|e| {
        PlanError::patch(
            WHAT,
            format!("it is not valid YAML ({})", e.message.replace('\n', " ")),
            "fix the YAML first (`ansible-inventory --list` shows where)",
        )
    })?;
    let mut docs: Vec<(Range<usize>, Value)> = ranges
        .into_iter()
        .zip(values)
        .filter(|(_, v)| !v.is_null())
        .collect();
    let (range, doc) = match docs.len() {
        0 => (0..lines.len(), Value::Mapping(Mapping::new())),
        1 => docs.remove(0),
        _ => return Err(not_vars()),
    };
    if !doc.is_mapping() {
        return Err(not_vars());
    }
    let mut expected = doc.clone();
    edit_value(&mut expected, &d)?;
    if expected == doc {
        return Ok(None);
    }
    let mut doc_lines = lines[range.clone()].to_vec();
    // Top-level variables.
    let entries = yamltext::entries(&doc_lines, 0..doc_lines.len());
    let keys: Vec<Option<String>> = entries
        .iter()
        .map(|r| yamltext::key_of(&doc_lines[r.start].text).map(|(k, _)| k))
        .collect();
    let want: Vec<Option<String>> = doc
        .as_mapping()
        .map(|m| m.keys().map(|k| k.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    if keys != want {
        return Err(PlanError::patch(
            WHAT,
            "its variables could not be matched line by line (anchors, merge keys or indented top-level keys)",
            "add the variables by hand (see `k8soidc render --distro kubespray`)",
        ));
    }
    let managed: Vec<bool> = keys
        .iter()
        .map(|k| k.as_deref().is_some_and(|k| replaces(&d, k)))
        .collect();
    let at = match managed.iter().position(|m| *m) {
        Some(f) => entries[f].start,
        None => (0..doc_lines.len())
            .rev()
            .find(|&i| yamltext::is_content(&doc_lines[i].text))
            .map(|i| i + 1)
            .unwrap_or(doc_lines.len()),
    };
    for (r, m) in entries.iter().zip(&managed).rev() {
        if *m {
            yamltext::splice(&mut doc_lines, r.clone(), vec![], &eol);
        }
    }
    yamltext::splice(&mut doc_lines, at..at, d.lines(), &eol);
    capi::edit_text(
        &mut doc_lines,
        &doc,
        &[EXTRA_ARGS],
        &d.extra_entries(),
        &eol,
        0,
    )?;
    let after: Value = yamltext::parse_one(&yamltext::join(&doc_lines)).map_err(|_| {
        PlanError::patch(
            WHAT,
            "the text edit would not give valid YAML (an unusual layout)",
            "add the variables by hand (see `k8soidc render --distro kubespray`)",
        )
    })?;
    // Removing every variable leaves no content, which reads as null.
    let after = match after {
        Value::Null => Value::Mapping(Mapping::new()),
        v => v,
    };
    if after != expected {
        return Err(PlanError::patch(
            WHAT,
            "the text edit would not give the intended variables (an unusual layout)",
            "add the variables by hand (see `k8soidc render --distro kubespray`)",
        ));
    }
    lines.splice(range, doc_lines);
    let out = yamltext::join(&lines);
    Ok((out != text).then_some(out))
}

impl Backend for Kubespray {
    fn distribution(&self) -> Distribution {
        Distribution::Kubespray
    }

    fn render(&self, s: &OidcSettings, req: &ClusterRequest) -> Result<Rendering, PlanError> {
        let mut r = Rendering::new(Distribution::Kubespray, s)?;
        if let Mode::Config(_) = s.mode()? {
            r.warnings.push("kube_apiserver_use_authentication_config_file drops every kube_oidc_* setting silently; remove them (`k8soidc patch --file` does)".into());
        }
        r.push(
            "group_vars for k8s_cluster",
            Some(format!(
                "inventory/{}/group_vars/k8s_cluster/k8s-cluster.yml",
                req.name
            )),
            "yaml",
            group_vars(s)?,
        );
        r.push(
            "then run the cluster playbook so kubeadm rewrites the API server manifest",
            None,
            "shell",
            format!(
                "ansible-playbook -i inventory/{}/hosts.yaml --become --become-user=root cluster.yml\n",
                req.name
            ),
        );
        Ok(r)
    }
}

#[cfg(test)]
mod tests;

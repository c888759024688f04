//! k0s: the API server's flags are the `spec.api.extraArgs` map of the k0s `ClusterConfig`
//! (`k0s.k0sproject.io/v1beta1`), read from `/etc/k0s/k0s.yaml` on each controller at start,
//! or given in a k0sctl `Cluster` file under `spec.k0s.config` (`k0sctl.k0sproject.io/v1beta1`),
//! which k0sctl writes to each controller's `/etc/k0s/k0s.yaml` on `k0sctl apply`.
//!
//! Facts (sources):
//! - `spec.api.extraArgs`: "Map of key-values (strings) for any extra arguments to pass down
//!   to Kubernetes api-server process" (k0sproject/k0s `docs/configuration.md`, `spec.api`;
//!   k0sproject/k0s#864). A map: a flag appears once, so in flags mode one `--required-claim`.
//! - `spec.api.address` (default: the controller's primary address) and `spec.api.port`
//!   (default 6443) are where the API server answers (k0s `docs/configuration.md`).
//! - `k0s controller` reads `--config`, default `/etc/k0s/k0s.yaml`
//!   (k0sproject/k0s `pkg/constant`, `K0sConfigPathDefault`); `k0s install controller` makes
//!   the systemd unit `k0scontroller` (k0s `docs/install.md`), restarted to read a changed file.
//! - k0s runs kube-apiserver as a plain child process of the controller on the host (no
//!   container), so files under `/etc/k0s/oidc/` are read as they are on the host.
//! - `k0s kubectl` uses the admin kubeconfig `/var/lib/k0s/pki/admin.conf` (k0s
//!   `docs/k0s-multi-node.md`, "k0s kubectl").
//! - k0sctl: `k0sctl init [[user@]address[:port] ...]` prints a `Cluster` with those hosts,
//!   with `--k0s` including the default k0s config; `k0sctl apply --config FILE` installs or
//!   reconfigures the cluster (k0sproject/k0sctl README, "Usage").
//!
//! [`patch_config`] and [`patch_k0sctl`] edit the map as text (the Cluster API patcher's line
//! model): only the `oidc-*`/`authentication-config` entries change, every other byte stays,
//! and the result is parsed and compared with the intended change.

use serde_yaml_ng::Value;

use crate::apiserver;
use crate::capi::{self, Entry};
use crate::yamltext;
use crate::{
    Backend, ClusterRequest, Command, Distribution, OidcSettings, Plan, PlanError, Rendering, Step,
    K8SOIDC,
};

pub mod node;

/// The k0s config file on a controller.
pub const CONFIG: &str = "/etc/k0s/k0s.yaml";
/// The directory for the CA and AuthenticationConfiguration on each controller.
pub const NODE_DIR: &str = "/etc/k0s/oidc";
/// The systemd unit `k0s install controller` creates.
pub const UNIT: &str = "k0scontroller";
/// Where `k0s kubectl` finds the admin kubeconfig.
pub const ADMIN_KUBECONFIG: &str = "/var/lib/k0s/pki/admin.conf";

const ARGS: [&str; 3] = ["spec", "api", "extraArgs"];
const K0SCTL_ARGS: [&str; 6] = ["spec", "k0s", "config", "spec", "api", "extraArgs"];

/// The k0s backend.
#[derive(Debug, Clone, Copy)]
pub struct K0s;

/// The refusals every k0s rendering shares (a map holds a flag once).
fn check(s: &OidcSettings) -> Result<(), PlanError> {
    crate::refuse_repeated_claims(
        Distribution::K0s,
        s,
        "spec.api.extraArgs is a map, so it holds a flag once",
        "give one --required-claim, or use `--auth-mode config` (claimValidationRules)",
    )
}

fn entries(s: &OidcSettings, remove: bool) -> Result<Vec<Entry>, PlanError> {
    if remove {
        return Ok(vec![]);
    }
    check(s)?;
    Ok(apiserver::args(s, s.mode()?, NODE_DIR)
        .into_iter()
        .map(|a| Entry::Pair(a.name, a.value))
        .collect())
}

/// `spec.api.extraArgs` with the OIDC entries, as a snippet of a k0s ClusterConfig.
pub fn snippet(s: &OidcSettings) -> Result<String, PlanError> {
    let mut out = String::from("spec:\n  api:\n    extraArgs:\n");
    for e in entries(s, false)? {
        for l in e.lines(6) {
            out.push_str(&l);
            out.push('\n');
        }
    }
    Ok(out)
}

/// A whole k0s config holding only the OIDC entries (k0s fills in the defaults of every
/// other field), for a controller that runs without a config file.
pub fn new_config(s: &OidcSettings) -> Result<String, PlanError> {
    Ok(format!(
        "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nmetadata:\n  name: k0s\n{}",
        snippet(s)?
    ))
}

/// Sets (or with `remove`, takes out) the OIDC entries of `spec.api.extraArgs` in a k0s
/// config; None when nothing changes. An empty file gets a whole config ([`new_config`]).
pub fn patch_config(
    text: &str,
    s: &OidcSettings,
    remove: bool,
) -> Result<Option<String>, PlanError> {
    if text.trim().is_empty() {
        return (!remove).then(|| new_config(s)).transpose();
    }
    patch_at(text, s, remove, &ARGS, "the k0s config", K0S_API)
}

/// The same in a k0sctl `Cluster` file (`spec.k0s.config.spec.api.extraArgs`).
pub fn patch_k0sctl(
    text: &str,
    s: &OidcSettings,
    remove: bool,
) -> Result<Option<String>, PlanError> {
    patch_at(
        text,
        s,
        remove,
        &K0SCTL_ARGS,
        "the k0sctl cluster file",
        K0SCTL_API,
    )
}

/// The API group of k0s' own config; its kind is `ClusterConfig`, or `Cluster` as k0sctl
/// (v0.25) still writes it under spec.k0s.config and k0s reads it.
const K0S_API: &str = "k0s.k0sproject.io/";
/// The API group of k0sctl's `Cluster`.
const K0SCTL_API: &str = "k0sctl.k0sproject.io/";

fn patch_at(
    text: &str,
    s: &OidcSettings,
    remove: bool,
    path: &[&str],
    what: &str,
    api: &str,
) -> Result<Option<String>, PlanError> {
    let new = entries(s, remove)?;
    let doc = capi::parse_doc(text)?;
    let api_ok = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .is_some_and(|v| v.starts_with(api));
    let kind = doc.get("kind").and_then(Value::as_str);
    let kind_ok = matches!(kind, Some("Cluster"))
        || (api == K0S_API && matches!(kind, Some("ClusterConfig")));
    if !api_ok || !kind_ok {
        return Err(PlanError::patch(
            what,
            format!("it is not a `{api}*` cluster document"),
            "give the file itself (one document), or pass the right --file-kind",
        ));
    }
    let mut expected = doc.clone();
    capi::edit_collection(&mut expected, path, &new)?;
    if capi::empty_as_null(expected.clone()) == capi::empty_as_null(doc.clone()) {
        return Ok(None);
    }
    let mut lines = yamltext::split(text);
    let eol = yamltext::eol_of(&lines);
    let offset = yamltext::sequence_offset(&lines, 0..lines.len());
    capi::edit_text_of(what, &mut lines, &doc, path, &new, &eol, offset)?;
    let out = yamltext::join(&lines);
    let after = capi::parse_doc(&out)?;
    if capi::empty_as_null(after) != capi::empty_as_null(expected) {
        return Err(PlanError::patch(
            what,
            "the text edit would not give the intended result (an unusual layout)",
            "rewrite `spec.api` in plain block style (one entry a line) and run again",
        ));
    }
    Ok(Some(out))
}

/// Whether `text` is a k0s config (for `patch --file` detection): a top-level
/// `apiVersion: k0s.k0sproject.io/…`.
pub fn looks_like_config(text: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with("apiVersion: k0s.k0sproject.io/"))
}

/// Whether `text` is a k0sctl Cluster file.
pub fn looks_like_k0sctl(text: &str) -> bool {
    text.lines()
        .any(|l| l.starts_with("apiVersion: k0sctl.k0sproject.io/"))
}

/// `systemctl restart k0scontroller`.
pub fn restart_command() -> Command {
    Command::new("systemctl", ["restart", UNIT])
}

impl Backend for K0s {
    fn distribution(&self) -> Distribution {
        Distribution::K0s
    }

    fn required_programs(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            "k0sctl",
            "install k0sctl: https://github.com/k0sproject/k0sctl#installation",
        )]
    }

    fn render(&self, s: &OidcSettings, _req: &ClusterRequest) -> Result<Rendering, PlanError> {
        let mut r = Rendering::new(Distribution::K0s, s)?;
        r.warnings
            .push("do this on every controller, one at a time (`k8soidc patch --ssh` does)".into());
        for f in apiserver::node_files(s, s.mode()?, NODE_DIR) {
            r.push(
                "file the API server reads (k0s runs it on the host: host paths)",
                Some(f.path),
                "text",
                f.content,
            );
        }
        r.push(
            "k0s config: merge `spec.api.extraArgs` into",
            Some(CONFIG.into()),
            "yaml",
            snippet(s)?,
        );
        r.push(
            "in a k0sctl cluster file the same goes under spec.k0s.config; then",
            None,
            "shell",
            format!(
                "{}   # on each controller, or: {}\n",
                restart_command(),
                Command::new("k0sctl", ["apply", "--config", "k0sctl.yaml"])
            ),
        );
        Ok(r)
    }

    /// `k0sctl init HOSTS > k0sctl.yaml`, the OIDC entries added by `k8soidc patch --file`,
    /// then `k0sctl apply`. The hosts come after `--` (k0sctl init's own arguments).
    fn create_plan(&self, s: &OidcSettings, req: &ClusterRequest) -> Result<Plan, PlanError> {
        let rendering = self.render(s, req)?;
        if req.extra_args.iter().all(|a| a.starts_with('-')) {
            return Err(PlanError::invalid(
                "--",
                if req.extra_args.is_empty() {
                    "(nothing)".to_string()
                } else {
                    req.extra_args.join(" ")
                },
                "k0sctl init needs the hosts of the new cluster",
                "give them after `--`, e.g. `-- --controller-count 1 root@10.0.0.1 root@10.0.0.2` (k0sctl init's own arguments)",
            ));
        }
        if !apiserver::node_files(s, s.mode()?, NODE_DIR).is_empty() {
            return Err(PlanError::Unsupported {
                distribution: Distribution::K0s,
                message: "`create` cannot place the CA or the AuthenticationConfiguration on the k0sctl hosts yet; create without --ca-file in flags mode, or create the cluster, then run `k8soidc patch --ssh HOST --distro k0s` on each controller".into(),
            });
        }
        let dir = &req.staging_dir;
        let file = format!("{dir}/k0sctl.yaml");
        let mut init = Command::new("k0sctl", ["init", "--k0s"]);
        init.args.extend(req.extra_args.iter().cloned());
        let save = format!(
            "mkdir -p {} && {} > {}",
            crate::shell::quote(dir),
            init.to_shell(),
            crate::shell::quote(&file)
        );
        let mut filter = vec![
            "patch".to_string(),
            "--file".into(),
            file.clone(),
            "--file-kind".into(),
            "k0sctl".into(),
            "--in-place".into(),
        ];
        filter.extend(s.to_flags());
        Ok(Plan {
            title: format!("create k0s cluster `{}` with OIDC (k0sctl)", req.name),
            steps: vec![
                Step::run(
                    Command::new("sh", ["-c".to_string(), save]),
                    "write a k0sctl cluster file for the hosts, with k0s' default config (a file, kept for later `k0sctl apply` runs)",
                ),
                Step::run(
                    Command::new(K8SOIDC, filter),
                    "add the API server's OIDC flags to spec.k0s.config.spec.api.extraArgs, with k8soidc's k0sctl patcher",
                ),
                Step::run(
                    Command::new("k0sctl", ["apply", "--config", file.as_str()]),
                    "install k0s on the hosts and start the cluster",
                ),
            ],
            notes: rendering.summary(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{ca as ca_bundle, *};

    const K0S_YAML: &str = "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nmetadata:\n  name: k0s\nspec:\n  api:\n    address: 192.168.68.104\n    port: 6443\n    # hardening\n    extraArgs:\n      audit-log-path: /var/log/audit.log\n  network:\n    provider: kuberouter\n";

    #[test]
    fn exact_edit_keeps_every_other_line() {
        let out = patch_config(K0S_YAML, &settings(), false).unwrap().unwrap();
        assert_eq!(
            out,
            "apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\nmetadata:\n  name: k0s\nspec:\n  api:\n    address: 192.168.68.104\n    port: 6443\n    # hardening\n    extraArgs:\n      audit-log-path: /var/log/audit.log\n      oidc-issuer-url: https://idp.example.com\n      oidc-client-id: kubernetes\n      oidc-username-claim: email\n      oidc-username-prefix: \"oidc:\"\n      oidc-groups-claim: groups\n      oidc-groups-prefix: \"oidc:\"\n  network:\n    provider: kuberouter\n"
        );
        assert_eq!(patch_config(&out, &settings(), false).unwrap(), None);
        assert_eq!(
            patch_config(&out, &settings(), true).unwrap().as_deref(),
            Some(K0S_YAML)
        );
    }

    #[test]
    fn config_mode_replaces_the_flags() {
        let flags = patch_config(K0S_YAML, &settings(), false).unwrap().unwrap();
        let s = with(|i| {
            i.auth_mode = Some("config".into());
            i.kubernetes_version = Some("1.34".into());
        });
        let out = patch_config(&flags, &s, false).unwrap().unwrap();
        assert!(
            out.contains("      authentication-config: /etc/k0s/oidc/authentication-config.yaml\n")
        );
        assert!(!out.contains("oidc-"), "{out}");
    }

    #[test]
    fn empty_file_gets_a_whole_config_and_refusals() {
        let out = patch_config("", &settings(), false).unwrap().unwrap();
        assert!(out.starts_with("apiVersion: k0s.k0sproject.io/v1beta1\nkind: ClusterConfig\n"));
        assert_eq!(patch_config(&out, &settings(), false).unwrap(), None);
        assert_eq!(patch_config("", &settings(), true).unwrap(), None);
        let two = with(|i| i.required_claim = vec!["a=b".into(), "c=d".into()]);
        let e = patch_config(K0S_YAML, &two, false).unwrap_err().to_string();
        assert!(e.contains("k0s") && e.contains("a map"), "{e}");
        let e = patch_config("kind: Pod\n", &settings(), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("k0s.k0sproject.io/"), "{e}");
        let old = K0S_YAML.replace("kind: ClusterConfig", "kind: Cluster");
        assert!(patch_config(&old, &settings(), false).unwrap().is_some());
    }

    #[test]
    fn k0sctl_file() {
        let text = "apiVersion: k0sctl.k0sproject.io/v1beta1\nkind: Cluster\nmetadata:\n  name: k0s-cluster\nspec:\n  hosts:\n  - ssh:\n      address: 10.0.0.1\n    role: controller\n  k0s:\n    version: v1.33.1+k0s.0\n";
        let out = patch_k0sctl(text, &settings(), false).unwrap().unwrap();
        let v: Value = serde_yaml_ng::from_str(&out).unwrap();
        assert_eq!(
            v["spec"]["k0s"]["config"]["spec"]["api"]["extraArgs"]["oidc-username-prefix"],
            Value::from("oidc:")
        );
        assert!(out.starts_with(&text[..text.len() - 1]), "{out}");
        let removed = patch_k0sctl(&out, &settings(), true).unwrap().unwrap();
        assert!(!removed.contains("oidc-"), "{removed}");
        assert!(removed.starts_with(&text[..text.len() - 1]), "{removed}");
    }

    /// Every `spec.api` k8soidc writes is valid against k0s' own CRD schema (APISpec:
    /// `extraArgs` is a map of strings), for each settings variant, with prefixes that YAML
    /// would otherwise read as other types.
    #[test]
    fn written_api_sections_follow_the_k0s_crd_schema() {
        let schema: serde_json::Value = serde_json::from_str(&crate::yamltext::fixture(
            "schemas/k0s-v1beta1-api.schema.json",
        ))
        .unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let mut ca = settings();
        ca.ca = Some(ca_bundle());
        let variants = [
            settings(),
            ca,
            with(|i| {
                i.username_prefix = Some("true".into());
                i.groups_prefix = Some("1.30".into());
                i.required_claim = vec!["hd=yes".into()];
            }),
            with(|i| {
                i.auth_mode = Some("config".into());
                i.kubernetes_version = Some("1.34".into());
            }),
        ];
        for s in variants {
            for text in [
                patch_config(K0S_YAML, &s, false).unwrap().unwrap(),
                new_config(&s).unwrap(),
            ] {
                let doc: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
                let errors: Vec<String> = validator
                    .iter_errors(&doc["spec"]["api"])
                    .map(|e| format!("{}: {e}", e.instance_path()))
                    .collect();
                assert!(errors.is_empty(), "{errors:?}\n{text}");
                assert!(doc["spec"]["api"]["extraArgs"]
                    .as_object()
                    .unwrap()
                    .values()
                    .all(serde_json::Value::is_string));
            }
        }
        // The schema does refuse what k0s refuses: a value that is not a string.
        let bad = serde_json::json!({"extraArgs": {"oidc-username-prefix": true}});
        assert!(!validator.is_valid(&bad));
    }
}

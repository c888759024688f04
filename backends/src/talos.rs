//! Talos Linux: the API server is configured through the machine configuration of each
//! control-plane node, changed with `talosctl patch machineconfig` (a strategic merge patch)
//! or generated with `talosctl gen config --config-patch-control-plane`.
//!
//! Two shapes, by release (sources below):
//! - **Talos 1.14 and later, `KubeAPIServerConfig` documents** (config mode): a
//!   `KubeAuthenticationConfig` document whose `configuration` is the literal
//!   `AuthenticationConfiguration`. With a `KubeAPIServerConfig` document Talos always passes
//!   `--authentication-config` (`UseAuthenticationConfig()` returns true) and refuses
//!   `anonymous-auth`, `oidc-*` and `authentication-config` in its `extraArgs` ("kube-apiserver
//!   extra argument %q is not allowed: use KubeAuthenticationConfig"): siderolabs/talos
//!   `pkg/machinery/config/types/k8s/apiserver.go` (`validateArgs`) and `authentication.go`;
//!   both documents are new in v1.14: in the tags of siderolabs/talos, `KubeAuthenticationConfig`
//!   and the `oidc-` refusal first appear in v1.14.0-alpha.2 and are absent from v1.13.9
//!   (also docs.siderolabs.com/talos/v1.14/reference/configuration/document-map). `configuration` is `merge:"replace"`, so a patch replaces it whole: the
//!   document k8soidc writes keeps Talos' default `anonymous` section (`/livez`, `/readyz`,
//!   `/healthz`: `DefaultAuthenticationConfig`), which health checks need, and `--remove` puts
//!   that default back. Without `KubeAPIServerConfig` (`.cluster.apiServer`) Talos does not use
//!   the document (`UseAuthenticationConfig()` is false for the v1alpha1 shim), so k8soidc
//!   refuses config mode on such a machine config.
//! - **`.cluster.apiServer` (Talos before 1.14, or a config not migrated)** (flags mode):
//!   `cluster.apiServer.extraArgs` (a map: one `--required-claim`), the CA written by
//!   `machine.files` under `/var` ([`HOST_DIR`]) and mounted into the API server with
//!   `cluster.apiServer.extraVolumes` (`hostPath`, `mountPath`, `readonly`) at [`NODE_DIR`]
//!   (siderolabs/talos v1alpha1 config reference, `APIServerConfig`, `MachineFile`).
//!
//! Strategic merge patches append to lists (docs.siderolabs.com/talos/v1.14/
//! configure-your-talos-cluster/system-configuration/patching), and JSON patches do not work
//! on multi-document configs: a live patch with files would append a second volume and file
//! on every run, so live patches of `.cluster.apiServer` take no files (the CA needs
//! `patch --file` on the machine config, or config mode where it is inline).

use serde_yaml_ng::{Mapping, Value};

use crate::apiserver;
use crate::capi::{self, Entry, Field};
use crate::yamltext::{self, Line};
use crate::{
    Backend, ClusterRequest, Command, Distribution, Mode, OidcSettings, Plan, PlanError, Rendering,
    Step, Target,
};

/// Where `machine.files` puts the CA / AuthenticationConfiguration on the node (Talos writes
/// files only under `/var`).
pub const HOST_DIR: &str = "/var/etc/k8soidc";
/// Where the API server sees [`HOST_DIR`] (an `extraVolumes` mount).
pub const NODE_DIR: &str = "/etc/kubernetes/oidc";
/// File name of the patch k8soidc stages.
pub const PATCH_FILE: &str = "talos-oidc-patch.yaml";

const WHAT: &str = "the Talos machine config";
const ARGS: [&str; 3] = ["cluster", "apiServer", "extraArgs"];
const VOLUMES: [&str; 3] = ["cluster", "apiServer", "extraVolumes"];
const FILES: [&str; 2] = ["machine", "files"];

/// The Talos backend.
#[derive(Debug, Clone, Copy)]
pub struct Talos;

/// Which part of the machine config carries OIDC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A `KubeAuthenticationConfig` document (Talos 1.14+, `KubeAPIServerConfig`).
    Documents,
    /// `.cluster.apiServer.extraArgs` (+ `extraVolumes`, `machine.files`).
    Legacy,
}

/// Config mode writes the document, flags mode `.cluster.apiServer`.
pub fn shape(s: &OidcSettings) -> Result<Shape, PlanError> {
    Ok(match s.mode()? {
        Mode::Config(_) => Shape::Documents,
        Mode::Flags => Shape::Legacy,
    })
}

fn anonymous_default() -> Value {
    let mut conditions = Vec::new();
    for p in ["/livez", "/readyz", "/healthz"] {
        let mut m = Mapping::new();
        m.insert("path".into(), p.into());
        conditions.push(Value::Mapping(m));
    }
    let mut anon = Mapping::new();
    anon.insert("enabled".into(), true.into());
    anon.insert("conditions".into(), Value::Sequence(conditions));
    Value::Mapping(anon)
}

/// The `KubeAuthenticationConfig` document: Talos' default `anonymous` section plus the JWT
/// authenticator (with `remove`: Talos' default, no authenticator).
pub fn auth_document(s: &OidcSettings, remove: bool) -> Result<String, PlanError> {
    let mut configuration = Mapping::new();
    if !remove {
        let Mode::Config(v) = s.mode()? else {
            return Err(PlanError::Unsupported {
                distribution: Distribution::Talos,
                message: "the KubeAuthenticationConfig document is config mode; use `--auth-mode config` (with --kubernetes-version 1.30 or later)".into(),
            });
        };
        let rendered: Value = serde_yaml_ng::from_str(&apiserver::authentication_config(s, v))
            .expect("the rendered AuthenticationConfiguration parses");
        configuration.insert("apiVersion".into(), rendered["apiVersion"].clone());
        configuration.insert("kind".into(), rendered["kind"].clone());
        configuration.insert("anonymous".into(), anonymous_default());
        configuration.insert("jwt".into(), rendered["jwt"].clone());
    } else {
        configuration.insert("anonymous".into(), anonymous_default());
        configuration.insert("jwt".into(), Value::Sequence(vec![]));
    }
    let mut doc = Mapping::new();
    doc.insert("apiVersion".into(), "v1alpha1".into());
    doc.insert("kind".into(), "KubeAuthenticationConfig".into());
    doc.insert("configuration".into(), Value::Mapping(configuration));
    Ok(crate::yamlout::to_yaml(&Value::Mapping(doc)))
}

struct Legacy {
    args: Vec<Entry>,
    volumes: Vec<Entry>,
    files: Vec<Entry>,
}

fn legacy(s: &OidcSettings, remove: bool) -> Result<Legacy, PlanError> {
    if remove {
        return Ok(Legacy {
            args: vec![],
            volumes: vec![],
            files: vec![],
        });
    }
    crate::refuse_repeated_claims(
        Distribution::Talos,
        s,
        "cluster.apiServer.extraArgs is a map, so it holds a flag once",
        "give one --required-claim, or use `--auth-mode config` (Talos 1.14+: claimValidationRules)",
    )?;
    let mode = s.mode()?;
    let args = apiserver::args(s, mode, NODE_DIR)
        .into_iter()
        .map(|a| Entry::Pair(a.name, a.value))
        .collect();
    let node_files = apiserver::node_files(s, mode, NODE_DIR);
    let files: Vec<Entry> = node_files
        .iter()
        .map(|f| {
            Entry::Item(vec![
                ("content", Field::Block(f.content.clone())),
                ("permissions", Field::Raw("420")), // 0o644, written in decimal: YAML 1.1 reads `0o644` as a string
                ("path", Field::Str(f.path.replacen(NODE_DIR, HOST_DIR, 1))),
                ("op", Field::Str("create".into())),
            ])
        })
        .collect();
    let volumes = if files.is_empty() {
        vec![]
    } else {
        vec![Entry::Item(vec![
            ("hostPath", Field::Str(HOST_DIR.into())),
            ("mountPath", Field::Str(NODE_DIR.into())),
            ("readonly", Field::Bool(true)),
        ])]
    };
    Ok(Legacy {
        args,
        volumes,
        files,
    })
}

fn edit_legacy(doc: &mut Value, l: &Legacy) -> Result<(), PlanError> {
    capi::edit_collection(doc, &ARGS, &l.args)?;
    capi::edit_collection(doc, &VOLUMES, &l.volumes)?;
    capi::edit_collection(doc, &FILES, &l.files)?;
    Ok(())
}

/// The strategic merge patch of `.cluster.apiServer` (flags mode).
pub fn legacy_patch(s: &OidcSettings) -> Result<String, PlanError> {
    let l = legacy(s, false)?;
    let mut doc = Value::Mapping(Mapping::new());
    edit_legacy(&mut doc, &l)?;
    // Written with the text model so scalars and blocks look as in `patch --file` results.
    let mut text_lines: Vec<Line> = Vec::new();
    let empty = Value::Mapping(Mapping::new());
    capi::edit_text_of(WHAT, &mut text_lines, &empty, &ARGS, &l.args, "\n", 0)?;
    let after_args = capi::parse_doc(&yamltext::join(&text_lines))?;
    capi::edit_text_of(
        WHAT,
        &mut text_lines,
        &after_args,
        &VOLUMES,
        &l.volumes,
        "\n",
        0,
    )?;
    let after_volumes = capi::parse_doc(&yamltext::join(&text_lines))?;
    capi::edit_text_of(
        WHAT,
        &mut text_lines,
        &after_volumes,
        &FILES,
        &l.files,
        "\n",
        0,
    )?;
    let out = yamltext::join(&text_lines);
    if capi::empty_as_null(capi::parse_doc(&out)?) != capi::empty_as_null(doc) {
        return Err(PlanError::patch(
            WHAT,
            "the rendered patch does not read back as intended",
            "report this as a bug",
        ));
    }
    Ok(out)
}

/// The patch `talosctl` applies: the document (config mode) or `.cluster.apiServer` (flags
/// mode); with `remove`, Talos' default authentication document.
pub fn patch_text(s: &OidcSettings, remove: bool) -> Result<String, PlanError> {
    if remove {
        return auth_document(s, true);
    }
    match shape(s)? {
        Shape::Documents => auth_document(s, false),
        Shape::Legacy => legacy_patch(s),
    }
}

/// One document of a multi-document file.
struct Doc {
    range: std::ops::Range<usize>,
    value: Value,
}

fn kind_of(v: &Value) -> Option<&str> {
    v.get("kind").and_then(Value::as_str)
}

/// Whether a document is the v1alpha1 config (or a patch of it): no `kind`, and `machine`
/// or `cluster` at the top.
fn is_v1alpha1(v: &Value) -> bool {
    kind_of(v).is_none() && (v.get("machine").is_some() || v.get("cluster").is_some())
}

/// Whether `text` is a Talos machine config or a patch of one (talhelper/Omni patch files).
pub fn looks_like_machine_config(text: &str) -> bool {
    let top = |k: &str| text.lines().any(|l| l.trim_end() == k);
    (text.lines().any(|l| l.trim_end() == "version: v1alpha1") && top("machine:"))
        || text
            .lines()
            .any(|l| l.trim_end() == "kind: KubeAuthenticationConfig")
        || (top("cluster:") && text.contains("\n  apiServer:") && !text.contains("apiVersion:"))
}

/// Sets (or takes out) OIDC in a Talos machine config or patch file; None when nothing
/// changes. Config mode replaces (or appends) the `KubeAuthenticationConfig` document and
/// refuses a full machine config whose API server is still `.cluster.apiServer`; flags mode
/// edits `.cluster.apiServer` and refuses a config with a `KubeAPIServerConfig` document,
/// whose `extraArgs` Talos checks. Every other line keeps its bytes.
pub fn patch_config(
    text: &str,
    s: &OidcSettings,
    remove: bool,
) -> Result<Option<String>, PlanError> {
    let mut lines = yamltext::split(text);
    let eol = yamltext::eol_of(&lines);
    let mut docs = Vec::new();
    for range in yamltext::documents(&lines) {
        let body = yamltext::join(&lines[range.clone()]);
        if !body.lines().any(yamltext::is_content) {
            continue;
        }
        docs.push(Doc {
            value: capi::parse_doc(&body)?,
            range,
        });
    }
    let has_apiserver_doc = docs
        .iter()
        .any(|d| kind_of(&d.value) == Some("KubeAPIServerConfig"));
    let auth = docs
        .iter()
        .position(|d| kind_of(&d.value) == Some("KubeAuthenticationConfig"));
    let v1 = docs.iter().position(|d| is_v1alpha1(&d.value));
    let full = v1.is_some_and(|i| docs[i].value.get("version").is_some());
    let legacy_apiserver = v1.is_some_and(|i| docs[i].value["cluster"].get("apiServer").is_some());
    let want_doc = !remove && shape(s)? == Shape::Documents;
    if want_doc && full && !has_apiserver_doc && legacy_apiserver {
        return Err(PlanError::patch(
            WHAT,
            "its API server is configured in `.cluster.apiServer` (Talos before 1.14, or not migrated to the KubeAPIServerConfig document), where Talos does not read a KubeAuthenticationConfig document",
            "use `--auth-mode flags` for this machine config, or migrate it to KubeAPIServerConfig first",
        ));
    }
    if !remove && !want_doc && has_apiserver_doc {
        return Err(PlanError::unrepresentable(
            Distribution::Talos,
            "--auth-mode",
            "flags",
            "the machine config has a KubeAPIServerConfig document, whose extraArgs Talos refuses for `oidc-*` (\"use KubeAuthenticationConfig\")",
            "use `--auth-mode config` (with --kubernetes-version 1.30 or later): k8soidc writes the KubeAuthenticationConfig document",
        ));
    }
    // Edits from the end, so earlier ranges stay valid.
    let mut edits: Vec<(std::ops::Range<usize>, Vec<Line>)> = Vec::new();
    // The document.
    let doc_text = if want_doc {
        Some(auth_document(s, false)?)
    } else if remove && auth.is_some() {
        Some(auth_document(s, true)?)
    } else {
        None
    };
    if let Some(new_doc) = doc_text {
        let new_value: Value = serde_yaml_ng::from_str(&new_doc).expect("rendered document parses");
        match auth {
            Some(i) if docs[i].value == new_value => {}
            Some(i) => edits.push((docs[i].range.clone(), to_lines(&new_doc, &eol))),
            None => {
                let mut add = Vec::new();
                if docs.is_empty() {
                    add.extend(to_lines(&new_doc, &eol));
                } else {
                    add.push(Line {
                        text: "---".into(),
                        eol: eol.clone(),
                    });
                    add.extend(to_lines(&new_doc, &eol));
                }
                let at = lines.len();
                edits.push((at..at, add));
            }
        }
    }
    // `.cluster.apiServer`: set in flags mode; our entries taken out otherwise.
    if let Some(i) = v1 {
        let l = legacy(s, remove || want_doc)?;
        let doc = &docs[i].value;
        let mut expected = doc.clone();
        edit_legacy(&mut expected, &l)?;
        if capi::empty_as_null(expected.clone()) != capi::empty_as_null(doc.clone()) {
            let mut doc_lines = lines[docs[i].range.clone()].to_vec();
            let offset = yamltext::sequence_offset(&doc_lines, 0..doc_lines.len());
            capi::edit_text_of(WHAT, &mut doc_lines, doc, &ARGS, &l.args, &eol, offset)?;
            let a = capi::parse_doc(&yamltext::join(&doc_lines))?;
            capi::edit_text_of(WHAT, &mut doc_lines, &a, &VOLUMES, &l.volumes, &eol, offset)?;
            let b = capi::parse_doc(&yamltext::join(&doc_lines))?;
            capi::edit_text_of(WHAT, &mut doc_lines, &b, &FILES, &l.files, &eol, offset)?;
            let after = capi::parse_doc(&yamltext::join(&doc_lines))?;
            if capi::empty_as_null(after) != capi::empty_as_null(expected) {
                return Err(PlanError::patch(
                    WHAT,
                    "the text edit would not give the intended config (an unusual layout)",
                    "rewrite `cluster.apiServer` and `machine.files` in plain block style and run again",
                ));
            }
            edits.push((docs[i].range.clone(), doc_lines));
        }
    } else if !remove && !want_doc {
        let patch = legacy_patch(s)?;
        let mut add = to_lines(&patch, &eol);
        if !docs.is_empty() {
            add.push(Line {
                text: "---".into(),
                eol: eol.clone(),
            });
        }
        edits.push((0..0, add));
    }
    edits.sort_by_key(|(r, _)| std::cmp::Reverse(r.start));
    for (range, new) in edits {
        if range.start == lines.len() {
            if let Some(last) = lines.last_mut() {
                if last.eol.is_empty() {
                    last.eol = eol.clone();
                }
            }
        }
        lines.splice(range, new);
    }
    let out = yamltext::join(&lines);
    Ok((out != text).then_some(out))
}

fn to_lines(text: &str, eol: &str) -> Vec<Line> {
    text.lines()
        .map(|l| Line {
            text: l.to_string(),
            eol: eol.to_string(),
        })
        .collect()
}

/// `talosctl --nodes N patch machineconfig --mode=no-reboot --patch @FILE`.
pub fn patch_command(node: &str, file: &str) -> Command {
    Command::new(
        "talosctl",
        [
            "--nodes".to_string(),
            node.to_string(),
            "patch".into(),
            "machineconfig".into(),
            "--mode=no-reboot".into(),
            "--patch".into(),
            format!("@{file}"),
        ],
    )
}

/// `talosctl --nodes N health --wait-timeout Ns`.
pub fn health_command(node: &str, timeout_secs: u64) -> Command {
    Command::new(
        "talosctl",
        [
            "--nodes".to_string(),
            node.to_string(),
            "health".into(),
            "--wait-timeout".into(),
            format!("{timeout_secs}s"),
        ],
    )
}

/// The plan of `patch --talos NODE...`: stage the patch, then on each node in turn
/// `talosctl patch machineconfig --mode=no-reboot` and `talosctl health`.
pub fn live_plan(
    s: &OidcSettings,
    remove: bool,
    nodes: &[String],
    staging_dir: &str,
    timeout_secs: u64,
) -> Result<Plan, PlanError> {
    if !remove
        && shape(s)? == Shape::Legacy
        && !apiserver::node_files(s, Mode::Flags, NODE_DIR).is_empty()
    {
        return Err(PlanError::unrepresentable(
            Distribution::Talos,
            "--ca-file",
            s.ca.as_ref().map(|c| c.local_path.as_str()).unwrap_or_default(),
            "a live patch of `.cluster.apiServer` appends to extraVolumes and machine.files on every run (strategic merge patches append to lists)",
            "use `--auth-mode config` (Talos 1.14+: the CA goes inline), or `k8soidc patch --file` on the machine config and `talosctl apply-config`",
        ));
    }
    let file = format!("{staging_dir}/{PATCH_FILE}");
    let text = patch_text(s, remove)?;
    let mut steps = vec![Step::WriteFile {
        on: Target::Local,
        path: file.clone(),
        before: None,
        after: text,
        mode: 0o600,
        why: if remove {
            "stage the patch: Talos' default KubeAuthenticationConfig (no JWT authenticator)".into()
        } else {
            "stage the machine-config patch".into()
        },
    }];
    for n in nodes {
        steps.push(Step::run(
            patch_command(n, &file),
            format!("{n}: apply it without a reboot (Talos restarts the API server static pod)"),
        ));
        steps.push(Step::run(
            health_command(n, timeout_secs),
            format!("{n}: wait until the cluster is healthy before the next node"),
        ));
    }
    let mut notes = Vec::new();
    if !remove {
        notes.extend(Rendering::new(Distribution::Talos, s)?.summary());
    }
    notes.push(match (remove, remove || shape(s)? == Shape::Documents) {
        (true, _) => "--remove writes Talos' default KubeAuthenticationConfig (Talos 1.14+ with KubeAPIServerConfig); for `.cluster.apiServer` configs use `k8soidc patch --file --remove` on the machine config".into(),
        (false, true) => "the KubeAuthenticationConfig document needs Talos 1.14+ and the API server in a KubeAPIServerConfig document; a config still using `.cluster.apiServer` ignores it: use `--auth-mode flags` there".into(),
        (false, false) => "`.cluster.apiServer.extraArgs`: Talos before 1.14, or configs not migrated; Talos refuses these flags in a KubeAPIServerConfig document (use `--auth-mode config` there)".into(),
    });
    Ok(Plan {
        title: format!(
            "{} OIDC on Talos control-plane nodes {}",
            if remove { "remove" } else { "set" },
            nodes.join(", ")
        ),
        steps,
        notes,
    })
}

impl Backend for Talos {
    fn distribution(&self) -> Distribution {
        Distribution::Talos
    }

    fn required_programs(&self) -> &'static [(&'static str, &'static str)] {
        &[(
            "talosctl",
            "install talosctl: https://docs.siderolabs.com/talos/latest/getting-started/talosctl",
        )]
    }

    fn render(&self, s: &OidcSettings, _req: &ClusterRequest) -> Result<Rendering, PlanError> {
        let mut r = Rendering::new(Distribution::Talos, s)?;
        let (title, note) = match shape(s)? {
            Shape::Documents => (
                "Talos 1.14+ machine-config patch (KubeAuthenticationConfig document)",
                "Talos reads the KubeAuthenticationConfig document when the API server is configured by a KubeAPIServerConfig document (Talos 1.14+); for `.cluster.apiServer` configs use `--auth-mode flags`",
            ),
            Shape::Legacy => (
                "Talos machine-config patch (.cluster.apiServer; Talos before 1.14 or not migrated)",
                "Talos 1.14+ refuses `oidc-*` in a KubeAPIServerConfig document's extraArgs: use `--auth-mode config` there",
            ),
        };
        r.warnings.push(note.into());
        r.push(
            title,
            Some(PATCH_FILE.into()),
            "yaml",
            patch_text(s, false)?,
        );
        r.push(
            "apply it to each control-plane node, one at a time (or `k8soidc patch --talos NODE`), or use it for a new cluster",
            None,
            "shell",
            format!(
                "{}\n{}\ntalosctl gen config CLUSTER https://ENDPOINT:6443 --config-patch-control-plane @{PATCH_FILE}\n",
                patch_command("NODE", PATCH_FILE),
                health_command("NODE", 300)
            ),
        );
        Ok(r)
    }

    /// `talosctl gen config NAME ENDPOINT --config-patch-control-plane @PATCH --output-dir DIR`;
    /// the endpoint (and any other `talosctl gen config` flags) come after `--`.
    fn create_plan(&self, s: &OidcSettings, req: &ClusterRequest) -> Result<Plan, PlanError> {
        let rendering = self.render(s, req)?;
        let Some(endpoint) = req.extra_args.first().filter(|a| !a.starts_with('-')) else {
            return Err(PlanError::invalid(
                "--",
                if req.extra_args.is_empty() {
                    "(nothing)".to_string()
                } else {
                    req.extra_args.join(" ")
                },
                "talosctl gen config needs the cluster endpoint first",
                "give it after `--`, e.g. `-- https://10.0.0.10:6443` (then any talosctl gen config flags)",
            ));
        };
        let dir = &req.staging_dir;
        let file = format!("{dir}/{PATCH_FILE}");
        let mut gen = vec![
            "gen".to_string(),
            "config".into(),
            req.name.clone(),
            endpoint.clone(),
            "--config-patch-control-plane".into(),
            format!("@{file}"),
            "--output-dir".into(),
            dir.clone(),
        ];
        gen.extend(req.extra_args.iter().skip(1).cloned());
        let mut notes = rendering.summary();
        notes.push(format!(
            "then boot the machines and apply the configs: `talosctl apply-config --insecure --nodes IP --file {dir}/controlplane.yaml` (worker.yaml for workers), and `talosctl bootstrap` on one control-plane node"
        ));
        Ok(Plan {
            title: format!(
                "generate Talos machine configs for cluster `{}` with OIDC",
                req.name
            ),
            steps: vec![
                Step::WriteFile {
                    on: Target::Local,
                    path: file.clone(),
                    before: None,
                    after: patch_text(s, false)?,
                    mode: 0o600,
                    why: "the control-plane patch with the API server's OIDC settings".into(),
                },
                Step::run(
                    Command::new("talosctl", gen),
                    "generate controlplane.yaml (patched), worker.yaml and talosconfig",
                ),
            ],
            notes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{ca as ca_bundle, *};

    fn config_mode() -> OidcSettings {
        with(|i| {
            i.auth_mode = Some("config".into());
            i.kubernetes_version = Some("1.34".into());
        })
    }

    const LEGACY: &str = "version: v1alpha1\nmachine:\n  type: controlplane\n  token: REDACTED\ncluster:\n  clusterName: demo\n  apiServer:\n    image: registry.k8s.io/kube-apiserver:v1.33.1\n    certSANs:\n      - 10.0.0.10\n";

    #[test]
    fn exact_document() {
        assert_eq!(
            auth_document(&config_mode(), false).unwrap(),
            "apiVersion: v1alpha1\nkind: KubeAuthenticationConfig\nconfiguration:\n  apiVersion: apiserver.config.k8s.io/v1\n  kind: AuthenticationConfiguration\n  anonymous:\n    enabled: true\n    conditions:\n    - path: /livez\n    - path: /readyz\n    - path: /healthz\n  jwt:\n  - issuer:\n      url: https://idp.example.com\n      audiences:\n      - kubernetes\n    claimMappings:\n      username:\n        claim: email\n        prefix: 'oidc:'\n      groups:\n        claim: groups\n        prefix: 'oidc:'\n"
        );
    }

    #[test]
    fn exact_legacy_patch_with_ca() {
        let mut s = settings();
        s.ca = Some(ca_bundle());
        assert_eq!(
            legacy_patch(&s).unwrap(),
            "cluster:\n  apiServer:\n    extraArgs:\n      oidc-issuer-url: https://idp.example.com\n      oidc-client-id: kubernetes\n      oidc-username-claim: email\n      oidc-username-prefix: \"oidc:\"\n      oidc-groups-claim: groups\n      oidc-groups-prefix: \"oidc:\"\n      oidc-ca-file: /etc/kubernetes/oidc/oidc-ca.pem\n    extraVolumes:\n    - hostPath: /var/etc/k8soidc\n      mountPath: /etc/kubernetes/oidc\n      readonly: true\nmachine:\n  files:\n  - content: |\n      -----BEGIN CERTIFICATE-----\n      MIIBdummy\n      -----END CERTIFICATE-----\n    permissions: 420\n    path: /var/etc/k8soidc/oidc-ca.pem\n    op: create\n"
        );
    }

    #[test]
    fn legacy_machine_config_round_trip() {
        let out = patch_config(LEGACY, &settings(), false).unwrap().unwrap();
        assert!(out.starts_with(&LEGACY[..LEGACY.len() - 1]), "{out}");
        assert!(out.contains("    extraArgs:\n      oidc-issuer-url: https://idp.example.com\n"));
        assert_eq!(patch_config(&out, &settings(), false).unwrap(), None);
        assert_eq!(
            patch_config(&out, &settings(), true).unwrap().as_deref(),
            Some(LEGACY)
        );
        // Config mode is refused here: Talos does not read the document with .cluster.apiServer.
        let e = patch_config(LEGACY, &config_mode(), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--auth-mode flags"), "{e}");
    }

    #[test]
    fn documents_config() {
        let text = format!("{LEGACY}---\napiVersion: v1alpha1\nkind: KubeAPIServerConfig\nimage: registry.k8s.io/kube-apiserver:v1.34.0\n")
            .replace("  apiServer:\n    image: registry.k8s.io/kube-apiserver:v1.33.1\n    certSANs:\n      - 10.0.0.10\n", "");
        let out = patch_config(&text, &config_mode(), false).unwrap().unwrap();
        assert!(out.starts_with(&text), "{out}");
        assert!(out.ends_with(&format!(
            "---\n{}",
            auth_document(&config_mode(), false).unwrap()
        )));
        assert_eq!(patch_config(&out, &config_mode(), false).unwrap(), None);
        let removed = patch_config(&out, &settings(), true).unwrap().unwrap();
        assert!(removed.ends_with("  jwt: []\n"), "{removed}");
        let e = patch_config(&text, &settings(), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("use KubeAuthenticationConfig"), "{e}");
    }

    #[test]
    fn patch_files_either_shape() {
        // A talhelper/Omni-style patch file with only the API server.
        let patch = "cluster:\n  apiServer:\n    certSANs:\n      - k8s.example.com\n";
        let out = patch_config(patch, &settings(), false).unwrap().unwrap();
        assert!(out.contains("    extraArgs:\n"), "{out}");
        let out = patch_config(patch, &config_mode(), false).unwrap().unwrap();
        assert!(
            out.contains("\n---\napiVersion: v1alpha1\nkind: KubeAuthenticationConfig\n"),
            "{out}"
        );
        assert!(looks_like_machine_config(patch));
        assert!(looks_like_machine_config(LEGACY));
        assert!(!looks_like_machine_config("apiVersion: v1\nkind: Pod\n"));
    }

    #[test]
    fn live_plan_steps() {
        let nodes = vec!["10.0.0.2".to_string(), "10.0.0.3".to_string()];
        let plan = live_plan(&config_mode(), false, &nodes, "/stage", 300).unwrap();
        let text = plan.to_string();
        assert!(text.contains("+ talosctl --nodes 10.0.0.2 patch machineconfig --mode=no-reboot --patch @/stage/talos-oidc-patch.yaml\n"), "{text}");
        assert!(
            text.contains("+ talosctl --nodes 10.0.0.3 health --wait-timeout 300s\n"),
            "{text}"
        );
        let mut ca = settings();
        ca.ca = Some(ca_bundle());
        assert!(live_plan(&ca, false, &nodes, "/stage", 300).is_err());
    }

    fn schema_errors(schema_file: &str, text: &str) -> Vec<String> {
        use serde::Deserialize;
        let schema: serde_json::Value =
            serde_json::from_str(&crate::yamltext::fixture(&format!("schemas/{schema_file}")))
                .unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let mut errors = Vec::new();
        for doc in serde_yaml_ng::Deserializer::from_str(text) {
            let v = serde_json::Value::deserialize(doc).unwrap();
            if v.is_null() {
                continue;
            }
            errors.extend(
                validator
                    .iter_errors(&v)
                    .map(|e| format!("{}: {e}", e.instance_path())),
            );
        }
        errors
    }

    /// What k8soidc writes follows Talos' published schema: `.cluster.apiServer` patches
    /// (flags mode, with the CA as machine.files and extraVolumes) the v1.13 one, the
    /// KubeAuthenticationConfig document (and the 1.14 config it is added to) the v1.14 one.
    #[test]
    fn written_configs_follow_talos_schemas() {
        let mut with_ca = settings();
        with_ca.ca = Some(ca_bundle());
        for s in [settings(), with_ca.clone()] {
            for text in [
                legacy_patch(&s).unwrap(),
                patch_config(LEGACY, &s, false).unwrap().unwrap(),
            ] {
                let errors = schema_errors("talos-v1.13-config.schema.json", &text);
                assert!(errors.is_empty(), "{errors:?}\n{text}");
            }
        }
        let mut config = config_mode();
        config.ca = Some(ca_bundle());
        for remove in [false, true] {
            let text = auth_document(&config, remove).unwrap();
            let errors = schema_errors("talos-v1.14-config.schema.json", &text);
            assert!(errors.is_empty(), "{errors:?}\n{text}");
        }
        // The schemas do tell: a file op outside the enum, or the legacy apiServer on 1.14.
        let bad = legacy_patch(&with_ca)
            .unwrap()
            .replace("op: create", "op: replace");
        assert!(!schema_errors("talos-v1.13-config.schema.json", &bad).is_empty());
        let legacy_on_114 = legacy_patch(&settings()).unwrap();
        assert!(!schema_errors("talos-v1.14-config.schema.json", &legacy_on_114).is_empty());
    }
}

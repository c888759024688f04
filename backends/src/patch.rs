//! Patching a running control plane: the pure half. The binary reads files from a node (over
//! SSH or locally, [`crate::node::NodeStep::Begin`]) and hands them here as [`NodeFiles`];
//! this module finds the distribution's [`NodeBackend`] (detected from the files, or given),
//! lets it compute the new contents, and assembles the [`HostPlan`]: the node steps the
//! executor runs and the dry run shows — commit (back up, stage, rename, restart), wait for
//! health on the node (and, in that round trip, read back checksums), then updates of cluster
//! objects — and what to do when the API server does not come back (show its log, restore,
//! restart, wait).
//!
//! What each distribution's node looks like lives in its own module: kubeadm
//! (`kubeadm::node`), MicroK8s (`microk8s::node`), k3s and RKE2 (`k3s::node`). Facts and
//! their sources are in those modules and in ../shared/reference/distros.md.

use crate::apiserver;
use crate::manifest::ApiEndpoint;
use crate::node::Reload;
pub use crate::node::{
    node_backend, node_backends, FileChange, Health, HostPlan, NodeBackend, NodeFiles, NodeStep,
    ReadCommand, Restart, RestoreFile, Restored, Running, BACKUP_PLACEHOLDER, STATE_DIR,
};
use crate::{
    Command, ConfigApiVersion, Distribution, Mode, OidcSettings, Plan, PlanError, Step, Target,
};

/// The kubeadm static pod manifest of the API server.
pub use crate::kubeadm::node::{KUBEADM_CONFIGMAP, MANIFEST as KUBEADM_MANIFEST};

/// Valid settings for `--remove`, where the patchers need settings but use none of them.
pub(crate) fn placeholder_settings() -> Result<OidcSettings, PlanError> {
    let input = crate::settings::SettingsInput {
        issuer_url: Some("https://k8soidc.invalid".into()),
        client_id: Some("k8soidc".into()),
        username_claim: Some("sub".into()),
        username_prefix: Some("k8soidc:".into()),
        ..Default::default()
    };
    OidcSettings::validate(&input, None)
}

/// The main file k8soidc patches on a node of `d`.
pub fn target_file(d: Distribution) -> Result<&'static str, PlanError> {
    Ok(node_backend(d)?.target_file())
}

/// Every file to read from a node: the candidates for detection (or the target of `d`) and
/// the node files k8soidc may write.
pub fn probe_paths(d: Option<Distribution>) -> Vec<String> {
    let mut paths = Vec::new();
    for b in node_backends() {
        if d.is_none() || d == Some(b.distribution()) {
            paths.extend(b.probe_paths());
        }
    }
    paths
}

/// The commands the first round trip runs besides reading files (the kubeadm-config
/// ConfigMap, whether a k3s / RKE2 unit is active).
pub fn read_commands(d: Option<Distribution>) -> Vec<ReadCommand> {
    let mut v = Vec::new();
    for b in node_backends() {
        if d.is_none() || d == Some(b.distribution()) {
            v.extend(b.read_commands());
        }
    }
    v
}

/// The first round trip: privileges, the lock (with `lock`), and every read for `d` (every
/// distribution when None).
pub fn begin(d: Option<Distribution>, lock: bool) -> NodeStep {
    NodeStep::Begin {
        lock,
        paths: probe_paths(d),
        commands: read_commands(d),
    }
}

/// Which distribution a node runs, from the files found on it (and active units).
pub fn detect(host: &str, files: &NodeFiles) -> Result<Distribution, PlanError> {
    let found: Vec<Distribution> = node_backends()
        .into_iter()
        .filter(|b| b.detect(files))
        .map(|b| b.distribution())
        .collect();
    match found.as_slice() {
        [d] => Ok(*d),
        [] => Err(PlanError::Patch {
            what: format!("host `{host}`"),
            reason: format!(
                "no control plane found (none of {} exists)",
                node_backends()
                    .iter()
                    .map(|b| b.target_file())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            fix: "run it against a control-plane node, or say which with --distro".into(),
        }),
        many => Err(PlanError::Patch {
            what: format!("host `{host}`"),
            reason: format!(
                "it looks like several distributions ({})",
                many.iter().map(|d| d.name()).collect::<Vec<_>>().join(", ")
            ),
            fix: "say which with --distro".into(),
        }),
    }
}

/// What to do on one host.
#[derive(Debug, Clone)]
pub struct PatchRequest<'a> {
    /// The host as given to `--ssh` (used in step targets and messages).
    pub host: &'a str,
    /// The settings (None only with `remove`).
    pub settings: Option<&'a OidcSettings>,
    /// Take OIDC out instead of putting it in.
    pub remove: bool,
    /// `--distro`, or None to detect.
    pub distribution: Option<Distribution>,
    /// Health-wait timeout.
    pub timeout_secs: u64,
    /// The login is not root: steps run through `sudo -n`.
    pub sudo: bool,
    /// `--auth-mode config|flags` without settings: convert what the node runs
    /// ([`crate::migrate`]).
    pub convert: Option<crate::migrate::Convert>,
}

impl PatchRequest<'_> {
    /// The settings to hand to a patcher: the wanted ones, or (with `remove`, where patchers
    /// need settings but use none of them) [`placeholder_settings`].
    pub fn settings_or_placeholder(&self) -> Result<std::borrow::Cow<'_, OidcSettings>, PlanError> {
        match (self.remove, self.settings) {
            (false, Some(s)) => Ok(std::borrow::Cow::Borrowed(s)),
            _ => Ok(std::borrow::Cow::Owned(placeholder_settings()?)),
        }
    }

    /// The settings and their mode (None with `remove`), or the missing-settings error.
    pub fn wanted(&self) -> Result<Option<(&OidcSettings, Mode)>, PlanError> {
        match (self.remove, self.settings) {
            (true, _) => Ok(None),
            (false, Some(s)) => Ok(Some((s, s.mode()?))),
            (false, None) => Err(PlanError::MissingSetting {
                field: "--issuer-url",
                fix: "give the OIDC settings, or pass --remove to take OIDC out".into(),
            }),
        }
    }
}

/// What a [`NodeBackend`] computes for a patch; [`plan_host`] makes the steps of it.
#[derive(Debug, Clone)]
pub struct Patched {
    /// The file patched (the main file or a drop-in).
    pub target: String,
    /// It exists on the node (else it is created).
    pub existed: bool,
    /// Its content now ("" when it does not exist).
    pub before: String,
    /// Its new content.
    pub after: String,
    /// Why it changes, for the dry run.
    pub why: String,
    /// Other files to write first (the CA, the AuthenticationConfiguration).
    pub files: Vec<FileChange>,
    /// Commands run once the files are in place.
    pub restart: Vec<Restart>,
    /// The restarts that make the API server read restored files.
    pub restart_after_restore: Vec<Command>,
    /// How health is checked.
    pub health: Health,
    /// Notes for the dry run.
    pub notes: Vec<String>,
    /// Node steps run once the API server is healthy (kubeadm's ConfigMap), with their why.
    pub after_healthy: Vec<(String, NodeStep)>,
    /// Written files the one-way restarts rewrite themselves (`microk8s enable rbac`), so their
    /// checksums are not read back.
    pub rewritten_by_restart: bool,
}

/// A [`FileChange`] (mode 0600) for each of `wanted` whose content the node does not have
/// yet; `why` gets the file's label (the CA, the AuthenticationConfiguration).
pub fn node_file_changes(
    wanted: Vec<apiserver::NodeFile>,
    files: &NodeFiles,
    why: impl Fn(&str) -> String,
) -> Vec<FileChange> {
    wanted
        .into_iter()
        .filter_map(|f| {
            let before = files.get(&f.path).cloned().flatten();
            (before.as_deref() != Some(f.content.as_str())).then(|| FileChange {
                why: why(file_label(&f.path)),
                path: f.path,
                before,
                after: f.content,
                mode: 0o600,
            })
        })
        .collect()
}

/// Where the API server answers: `bind` when specific, else `advertise`, else 127.0.0.1;
/// `port`, else `default_port`.
pub(crate) fn endpoint_of(
    bind: Option<&str>,
    advertise: Option<&str>,
    port: Option<u16>,
    default_port: u16,
) -> ApiEndpoint {
    let host = bind
        .filter(|b| !b.is_empty() && *b != "0.0.0.0" && *b != "::")
        .or(advertise.filter(|a| !a.is_empty()))
        .unwrap_or("127.0.0.1");
    ApiEndpoint {
        scheme: "https".into(),
        host: host.to_string(),
        port: port.filter(|p| *p != 0).unwrap_or(default_port),
    }
}

/// The plan for one host, from the files read on it.
pub fn plan_host(req: &PatchRequest<'_>, files: &NodeFiles) -> Result<HostPlan, PlanError> {
    let d = match req.distribution {
        Some(d) => d,
        None => detect(req.host, files)?,
    };
    let backend = node_backend(d)?;
    let converted;
    let with_settings;
    let mut conversion_notes = Vec::new();
    let req = match (req.convert, req.settings, req.remove) {
        (Some(c), None, false) => match backend.running_settings(req, files, c)? {
            Running::Already(why) => {
                let health = backend.after_restore(files, req.timeout_secs)?.health;
                return Ok(HostPlan {
                    host: req.host.to_string(),
                    distribution: d,
                    sudo: req.sudo,
                    plan: Plan {
                        title: format!("{}: {d} already {why}", req.host),
                        steps: vec![],
                        notes: vec![],
                    },
                    on_failure: vec![],
                    health,
                    restart_after_restore: vec![],
                });
            }
            Running::Settings(s, notes) => {
                converted = *s;
                conversion_notes = notes;
                with_settings = PatchRequest {
                    settings: Some(&converted),
                    ..req.clone()
                };
                &with_settings
            }
        },
        _ => req,
    };
    let mut p = backend.patch(req, files)?;
    p.notes.splice(0..0, conversion_notes);
    // kube-apiserver exits when both meet ("authentication-config file and oidc-* flags are
    // mutually exclusive", pkg/kubeapiserver/options/authentication.go): no plan writes both.
    let after = &p.health.flags_after;
    if after
        .iter()
        .any(|f| f.starts_with("--authentication-config"))
        && after.iter().any(|f| f.starts_with("--oidc-"))
    {
        return Err(PlanError::Patch {
            what: format!("the plan for `{}`", req.host),
            reason: format!(
                "it would leave the API server with both `--authentication-config` and `--oidc-*` flags ({}), which kube-apiserver refuses",
                after.join(" ")
            ),
            fix: "report this as a bug; nothing was changed".into(),
        });
    }
    let on = Target::Host(req.host.to_string());
    let node = |why: String, step: NodeStep| Step::Node {
        on: on.clone(),
        sudo: req.sudo,
        why,
        step,
    };
    let mut changes = std::mem::take(&mut p.files);
    if p.after != p.before || !p.existed && !p.after.is_empty() {
        changes.push(FileChange {
            path: p.target.clone(),
            before: p.existed.then(|| p.before.clone()),
            after: p.after.clone(),
            mode: 0o600,
            why: p.why.clone(),
        });
    }
    let mut steps = Vec::new();
    let mut notes = p.notes;
    if let Some((s, _)) = req.wanted()? {
        notes.extend(crate::reserved::override_note(s).map(|n| format!("warning: {n}")));
    }
    let mut on_failure = Vec::new();
    let h = &p.health;
    if !changes.is_empty() {
        let checked: Vec<(String, String)> = changes
            .iter()
            .filter(|c| !(p.rewritten_by_restart && c.path == p.target))
            .map(|c| (c.path.clone(), crate::node::sha256_hex(&c.after)))
            .collect();
        steps.push(node(
            format!(
                "{} the API server's OIDC settings on {}",
                if req.remove { "remove" } else { "set" },
                req.host
            ),
            NodeStep::Commit {
                files: changes.clone(),
                restart: p.restart.clone(),
            },
        ));
        // Only the AuthenticationConfiguration changes and nothing restarts: the running API
        // server reloads it by itself, and only its metrics tell whether it took it.
        let reload = match (req.wanted()?, backend.metrics_command()) {
            (Some((_, Mode::Config(v))), Some(metrics))
                if p.after == p.before && p.restart.is_empty() =>
            {
                changes
                    .iter()
                    .find(|c| {
                        c.path
                            .ends_with(&format!("/{}", apiserver::AUTH_CONFIG_FILE))
                    })
                    .map(|c| Reload {
                        path: c.path.clone(),
                        hash: format!("sha256:{}", crate::node::sha256_hex(&c.after)),
                        info_metric: v == ConfigApiVersion::V1,
                        metrics,
                        unit: h.unit.clone(),
                        timeout_secs: h.timeout_secs,
                        read_back: checked.clone(),
                    })
            }
            _ => None,
        };
        match reload {
            Some(r) => steps.push(node(
                format!(
                    "the API server is not restarted: wait until it reports that it reloaded {} ({}); if it rejects the file or does not report it in time, restore the backup",
                    r.path,
                    if r.info_metric {
                        "its last_config_info metric names the new file's hash"
                    } else {
                        "a successful reload after the write, and no failed one"
                    }
                ),
                NodeStep::AwaitReload(r),
            )),
            None => steps.push(node(
            match (&h.process, &h.unit) {
                (Some(_), _) => format!(
                    "wait until a new kube-apiserver process carrying exactly [{}] answers /readyz; otherwise restore the backup",
                    h.flags_after.join(" ")
                ),
                (None, Some(unit)) => format!("wait until unit {unit} is active and the API server answers {} (anonymously, else with {d}'s admin kubeconfig, as {d} refuses anonymous requests); otherwise restore the backup and restart again", h.readyz),
                (None, None) => "wait until the restarted API server answers /readyz; otherwise restore the backup and restart again".into(),
            },
            NodeStep::AwaitHealthy(Health {
                read_back: checked,
                ..h.clone()
            }),
        )),
        }
        on_failure = vec![
            NodeStep::Logs {
                unit: h.unit.clone(),
            },
            NodeStep::Restore {
                backup: BACKUP_PLACEHOLDER.into(),
                files: changes
                    .iter()
                    .map(|c| RestoreFile {
                        path: c.path.clone(),
                        now: Some(c.after.clone()),
                        then: c.before.clone(),
                    })
                    .collect(),
                diff: false,
                only_if_unchanged: true,
                restart: p
                    .restart_after_restore
                    .iter()
                    .map(|c| Restart {
                        command: c.clone(),
                        why: "make the API server read the restored files".into(),
                    })
                    .collect(),
            },
            NodeStep::AwaitHealthy(h.before()),
        ];
        notes.push(format!(
            "transaction on {}: lock {STATE_DIR}/lock, back up every file below to {STATE_DIR}/backups/<UTC time>/ (mode 0600, SHA256SUMS), write each file to a temporary file outside the watched directory, fsync, rename into place keeping owner and mode",
            req.host
        ));
        if let Some((_, Mode::Config(_))) = req.wanted()? {
            notes.push("config mode: every --oidc-* flag is removed".into());
        }
    }
    for (why, step) in p.after_healthy {
        steps.push(node(why, step));
    }
    let title = if steps.is_empty() {
        format!(
            "{}: {d} already {}",
            req.host,
            if req.remove {
                "has no OIDC flags"
            } else {
                "configured"
            }
        )
    } else {
        format!(
            "{}: patch {d} ({})",
            req.host,
            if req.remove {
                "remove OIDC"
            } else {
                "set OIDC"
            }
        )
    };
    Ok(HostPlan {
        host: req.host.to_string(),
        distribution: d,
        sudo: req.sudo,
        plan: Plan {
            title,
            steps,
            notes,
        },
        on_failure,
        health: p.health,
        restart_after_restore: p.restart_after_restore,
    })
}

/// The restarts and health check for the files read after a restore (see [`Restored`]).
pub fn after_restore(
    host: &str,
    files: &NodeFiles,
    timeout_secs: u64,
) -> Result<Restored, PlanError> {
    let d = detect(host, files)?;
    node_backend(d)?.after_restore(files, timeout_secs)
}

/// The node's settings for `rollback`: the backup to restore and, from the files it holds,
/// the restarts and the health check. `listed` is the backup's `FILES` index
/// (`K TAB state TAB mode TAB owner TAB path` lines) and `files` what was read: the current
/// files and the backup's copies (`STATE_DIR/backups/ID/K`).
pub fn plan_rollback(
    host: &str,
    id: &str,
    listed: &str,
    files: &NodeFiles,
    sudo: bool,
    timeout_secs: u64,
) -> Result<(Plan, Distribution), PlanError> {
    let mut restored = NodeFiles::new();
    let mut back = Vec::new();
    for line in listed.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        let [k, state, _mode, _owner, path] = cols.as_slice() else {
            continue;
        };
        let copy = format!("{STATE_DIR}/backups/{id}/{k}");
        let then = match *state {
            "present" => files.get(&copy).cloned().flatten(),
            _ => None,
        };
        restored.insert(path.to_string(), then.clone());
        back.push(RestoreFile {
            path: path.to_string(),
            now: files.get(*path).cloned().flatten(),
            then,
        });
    }
    // Keys that are not files (active units) come from what was read.
    for (k, v) in files {
        if !k.starts_with('/') {
            restored.insert(k.clone(), v.clone());
        }
    }
    let after = after_restore(host, &restored, timeout_secs)?;
    let on = Target::Host(host.to_string());
    let node = |why: String, step: NodeStep| Step::Node {
        on: on.clone(),
        sudo,
        why,
        step,
    };
    let paths: Vec<&str> = back.iter().map(|c| c.path.as_str()).collect();
    let steps = vec![
        node(
            format!(
                "restore backup {id} ({}), then restart what needs it",
                paths.join(", ")
            ),
            NodeStep::Restore {
                backup: id.to_string(),
                files: back,
                diff: true,
                only_if_unchanged: false,
                restart: after
                    .restart
                    .iter()
                    .map(|c| Restart {
                        command: c.clone(),
                        why: "make the API server read the restored files".into(),
                    })
                    .collect(),
            },
        ),
        node(
            format!(
                "wait until the {} API server is healthy with the restored configuration",
                after.distribution
            ),
            NodeStep::AwaitHealthy(after.health.clone()),
        ),
    ];
    Ok((
        Plan {
            title: format!("{host}: roll back {} to backup {id}", after.distribution),
            steps,
            notes: vec![],
        },
        after.distribution,
    ))
}

pub(crate) fn file_label(path: &str) -> &'static str {
    if path.ends_with(apiserver::AUTH_CONFIG_FILE) {
        "the AuthenticationConfiguration"
    } else {
        "the IdP CA certificate"
    }
}

/// The `--name=value` words of args.
pub fn flag_words(args: &[apiserver::Arg]) -> Vec<String> {
    args.iter().map(apiserver::Arg::flag).collect()
}
#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::kubeadm::node::manifest_flags;
    use crate::testutil::{ca, with};

    const MICROK8S_ARGS: &str = crate::microk8s::ARGS_FILE;
    const K3S_CONFIG: &str = "/etc/rancher/k3s/config.yaml";
    const RKE2_CONFIG: &str = "/etc/rancher/rke2/config.yaml";

    fn node_dirs(d: Distribution) -> Vec<String> {
        node_backend(d).unwrap().node_dirs()
    }

    /// The node steps of a plan.
    fn node_steps(hp: &HostPlan) -> Vec<&NodeStep> {
        hp.plan
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Node { step, .. } => Some(step),
                _ => None,
            })
            .collect()
    }

    /// The files the commit writes, with their `before`.
    fn changes(hp: &HostPlan) -> Vec<FileChange> {
        node_steps(hp)
            .into_iter()
            .flat_map(|s| match s {
                NodeStep::Commit { files, .. } => files.clone(),
                _ => vec![],
            })
            .collect()
    }

    fn runs(hp: &HostPlan) -> Vec<String> {
        node_steps(hp)
            .into_iter()
            .flat_map(|s| match s {
                NodeStep::Commit { restart, .. } => {
                    restart.iter().map(|r| r.command.to_shell()).collect()
                }
                _ => vec![],
            })
            .collect()
    }

    fn manifest() -> String {
        crate::yamltext::fixture("apiserver-manifests/034-austintalbot-v1.32.2-cks.yaml")
    }

    fn files(manifest: &str) -> NodeFiles {
        let mut f = NodeFiles::new();
        f.insert(KUBEADM_MANIFEST.into(), Some(manifest.into()));
        f
    }

    fn plan(s: Option<&OidcSettings>, remove: bool, f: &NodeFiles) -> Result<HostPlan, PlanError> {
        let req = PatchRequest {
            host: "cp1",
            settings: s,
            remove,
            distribution: None,
            timeout_secs: 30,
            sudo: false,
            convert: None,
        };
        plan_host(&req, f)
    }

    fn writes(hp: &HostPlan) -> BTreeMap<String, String> {
        changes(hp).into_iter().map(|c| (c.path, c.after)).collect()
    }

    /// The AuthenticationConfiguration among a plan's writes.
    fn auth_file(w: &BTreeMap<String, String>) -> String {
        w.iter()
            .find(|(p, _)| p.ends_with(apiserver::AUTH_CONFIG_FILE))
            .map(|(_, c)| c.clone())
            .expect("the file")
    }

    /// Applies the plan's writes to the files, as the executor does.
    fn apply(f: &NodeFiles, hp: &HostPlan) -> NodeFiles {
        let mut f = f.clone();
        for (p, c) in writes(hp) {
            f.insert(p, Some(c));
        }
        f
    }

    fn with_ca() -> OidcSettings {
        let mut s = with(|_| {});
        s.ca = Some(ca());
        s
    }

    fn config_mode() -> OidcSettings {
        with(|i| {
            i.auth_mode = Some("config".into());
            i.kubernetes_version = Some("1.32".into());
        })
    }

    fn container(text: &str) -> serde_yaml_ng::Value {
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).unwrap();
        doc["spec"]["containers"][0].clone()
    }

    #[test]
    fn config_mode_mounts_the_directory_and_drops_every_oidc_flag() {
        // Start from a manifest that already has OIDC flags (set by a flags-mode run).
        let flags = with_ca();
        let f0 = files(&manifest());
        let f1 = apply(&f0, &plan(Some(&flags), false, &f0).unwrap());
        assert!(f1[KUBEADM_MANIFEST]
            .as_ref()
            .unwrap()
            .contains("--oidc-issuer-url"));
        let s = config_mode();
        let hp = plan(Some(&s), false, &f1).unwrap();
        let w = writes(&hp);
        let auth = &w["/etc/kubernetes/oidc/authentication-config.yaml"];
        assert!(auth.contains("kind: AuthenticationConfiguration"), "{auth}");
        let m = &w[KUBEADM_MANIFEST];
        let c = container(m);
        let cmd: Vec<&str> = c["command"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert!(
            cmd.contains(
                &"--authentication-config=/etc/kubernetes/oidc/authentication-config.yaml"
            ),
            "{cmd:?}"
        );
        assert!(!cmd.iter().any(|a| a.starts_with("--oidc-")), "{cmd:?}");
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(m).unwrap();
        let vol = doc["spec"]["volumes"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"].as_str() == Some("oidc"))
            .expect("oidc volume");
        assert_eq!(
            vol["hostPath"]["path"].as_str(),
            Some("/etc/kubernetes/oidc"),
            "the directory, not the file"
        );
        let vm = c["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|v| v["name"].as_str() == Some("oidc"))
            .expect("oidc mount");
        assert_eq!(vm["mountPath"].as_str(), Some("/etc/kubernetes/oidc"));
        assert_eq!(
            hp.health.flags_after,
            vec![
                "--authentication-config=/etc/kubernetes/oidc/authentication-config.yaml"
                    .to_string()
            ]
        );
        assert!(hp
            .health
            .flags_before
            .iter()
            .any(|f| f.starts_with("--oidc-ca-file=")));
        // Second run: nothing to do (the executor reads every file the plan may write).
        let f2 = apply(&f1, &hp);
        let probed = probe_paths(Some(Distribution::Kubeadm));
        assert!(f2.keys().all(|p| probed.contains(p)), "{probed:?}");
        assert!(plan(Some(&s), false, &f2).unwrap().is_noop());
        // Remove takes the flag and the volume out again.
        let r = plan(None, true, &f2).unwrap();
        let back = &writes(&r)[KUBEADM_MANIFEST];
        assert!(
            !back.contains("authentication-config") && !back.contains("name: oidc"),
            "{back}"
        );
    }

    #[test]
    fn flags_mode_refuses_an_authentication_config_it_did_not_write() {
        let m = manifest().replace(
            "    - --profiling=false\n",
            "    - --profiling=false\n    - --authentication-config=/etc/kubernetes/pki/mine.yaml\n",
        );
        let f = files(&m);
        let s = with(|_| {});
        let e = plan(Some(&s), false, &f).unwrap_err().to_string();
        assert!(
            e.contains("--authentication-config=/etc/kubernetes/pki/mine.yaml")
                && e.contains("which k8soidc did not write")
                && e.contains("exits"),
            "{e}"
        );
        assert!(plan(None, true, &f)
            .unwrap_err()
            .to_string()
            .contains("drop the authenticators"));
        assert!(plan(Some(&config_mode()), false, &f).is_err());
        // Its own file is replaced freely (flags mode after config mode).
        let ours = manifest().replace(
            "    - --profiling=false\n",
            "    - --profiling=false\n    - --authentication-config=/etc/kubernetes/oidc/authentication-config.yaml\n",
        );
        let hp = plan(Some(&s), false, &files(&ours)).unwrap();
        assert!(!writes(&hp)[KUBEADM_MANIFEST].contains("--authentication-config"));
    }

    #[test]
    fn flags_mode_ca_goes_to_the_mounted_pki_dir_else_to_an_added_volume() {
        let s = with_ca();
        let hp = plan(Some(&s), false, &files(&manifest())).unwrap();
        let w = writes(&hp);
        assert!(
            w.contains_key("/etc/kubernetes/pki/oidc-ca.pem"),
            "{:?}",
            w.keys()
        );
        assert!(w[KUBEADM_MANIFEST].contains("--oidc-ca-file=/etc/kubernetes/pki/oidc-ca.pem"));
        assert_eq!(
            w[KUBEADM_MANIFEST].matches("hostPath:").count(),
            manifest().matches("hostPath:").count(),
            "no volume added"
        );
        // Without kubeadm's k8s-certs mount: /etc/kubernetes/oidc through the oidc volume.
        let bare = manifest().replace(
            "    - mountPath: /etc/kubernetes/pki\n      name: k8s-certs\n      readOnly: true\n",
            "",
        );
        let hp = plan(Some(&s), false, &files(&bare)).unwrap();
        let w = writes(&hp);
        assert!(
            w.contains_key("/etc/kubernetes/oidc/oidc-ca.pem"),
            "{:?}",
            w.keys()
        );
        let c = container(&w[KUBEADM_MANIFEST]);
        assert!(c["volumeMounts"]
            .as_sequence()
            .unwrap()
            .iter()
            .any(|v| v["mountPath"].as_str() == Some("/etc/kubernetes/oidc")));
        assert!(w[KUBEADM_MANIFEST].contains("--oidc-ca-file=/etc/kubernetes/oidc/oidc-ca.pem"));
    }

    #[test]
    fn health_uses_the_manifest_endpoint() {
        let m = manifest()
            .replace("192.168.97.4", "10.1.2.3")
            .replace("--secure-port=6443", "--secure-port=7443");
        let hp = plan(Some(&with(|_| {})), false, &files(&m)).unwrap();
        assert_eq!(hp.health.readyz, "https://10.1.2.3:7443/readyz");
        assert_eq!(hp.health.livez, "https://10.1.2.3:7443/livez");
    }

    #[test]
    fn kubeadm_config_configmap_gets_the_same_change_after_the_wait() {
        let cc = "apiServer: {}\napiVersion: kubeadm.k8s.io/v1beta4\nkind: ClusterConfiguration\nkubernetesVersion: v1.32.2\n";
        let mut f = files(&manifest());
        f.insert(KUBEADM_CONFIGMAP.into(), Some(cc.into()));
        let s = with_ca();
        let hp = plan(Some(&s), false, &f).unwrap();
        let kinds: Vec<&str> = node_steps(&hp)
            .into_iter()
            .map(|s| match s {
                NodeStep::Commit { .. } => "commit",
                NodeStep::AwaitHealthy(_) => "wait",
                NodeStep::CompareAndSwap { .. } => "configmap",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["commit", "wait", "configmap"]);
        assert_eq!(changes(&hp).len(), 3);
        // The CA also where the ClusterConfiguration says (for `kubeadm upgrade`).
        assert!(writes(&hp).contains_key("/etc/kubernetes/oidc/oidc-ca.pem"));
        let Some(NodeStep::CompareAndSwap {
            before,
            payload,
            write,
            ..
        }) = node_steps(&hp).last().copied()
        else {
            unreachable!()
        };
        assert_eq!(before, cc, "compared against what was read");
        let shown = hp.plan.to_string();
        assert!(shown.contains("    | -apiServer: {}"), "{shown}");
        let patch: serde_json::Value = serde_json::from_str(payload).unwrap();
        let new = patch["data"]["ClusterConfiguration"].as_str().unwrap();
        assert!(
            new.contains("oidc-ca-file") && new.contains("/etc/kubernetes/oidc"),
            "{new}"
        );
        assert!(write.args.contains(&"/dev/stdin".to_string()));
        // Remove (no settings) takes it out again; unreadable ConfigMap: a note, no step.
        let mut f2 = f.clone();
        f2.insert(KUBEADM_CONFIGMAP.into(), Some(new.into()));
        let r = plan(None, true, &f2).unwrap();
        assert!(matches!(
            node_steps(&r).last(),
            Some(NodeStep::CompareAndSwap { .. })
        ));
        f.insert(KUBEADM_CONFIGMAP.into(), None);
        let hp = plan(Some(&s), false, &f).unwrap();
        assert!(!node_steps(&hp)
            .iter()
            .any(|s| matches!(s, NodeStep::CompareAndSwap { .. })));
        assert!(hp
            .plan
            .notes
            .iter()
            .any(|n| n.contains("kubeadm-config ConfigMap could not be read")));
    }

    #[test]
    fn microk8s_k3s_rke2_are_detected_patched_restarted_and_removed() {
        let cases = [
            (
                MICROK8S_ARGS,
                "--secure-port=16443\n--authorization-mode=AlwaysAllow\n",
                vec!["microk8s enable rbac", "microk8s stop", "microk8s start"],
                "https://127.0.0.1:16443/readyz",
            ),
            (
                K3S_CONFIG,
                "bind-address: 10.0.0.5\n",
                vec!["systemctl restart k3s"],
                "https://10.0.0.5:6443/readyz",
            ),
            (
                RKE2_CONFIG,
                "https-listen-port: 7443\n",
                vec!["systemctl restart rke2-server"],
                "https://127.0.0.1:7443/readyz",
            ),
        ];
        for (path, text, runs_want, readyz) in cases {
            let mut f = NodeFiles::new();
            f.insert(path.into(), Some(text.into()));
            let hp = plan(Some(&with_ca()), false, &f).unwrap();
            assert_eq!(runs(&hp), runs_want, "{path}");
            assert_eq!(hp.health.readyz, readyz);
            // k3s and RKE2 refuse anonymous requests: their own kubectl checks readiness.
            let admin = hp.health.admin_probe.as_ref().map(Command::to_shell);
            let want = match hp.distribution {
                Distribution::K3s => {
                    Some("k3s kubectl --kubeconfig /etc/rancher/k3s/k3s.yaml get --raw /readyz")
                }
                Distribution::Rke2 => Some("/var/lib/rancher/rke2/bin/kubectl --kubeconfig /etc/rancher/rke2/rke2.yaml get --raw /readyz"),
                _ => None,
            };
            assert_eq!(admin.as_deref(), want, "{path}");
            // Rollback restarts, but never re-runs `microk8s enable rbac`.
            assert!(hp
                .restart_after_restore
                .iter()
                .all(|c| c.args != ["enable", "rbac"]));
            let w = writes(&hp);
            let dir = &node_dirs(hp.distribution)[0];
            assert!(
                w.contains_key(&format!("{dir}/oidc-ca.pem")),
                "{path}: {:?}",
                w.keys()
            );
            assert!(w[path].contains("oidc-issuer-url"), "{}", w[path]);
            let f2 = apply(&f, &hp);
            assert!(
                plan(Some(&with_ca()), false, &f2).unwrap().is_noop(),
                "{path}"
            );
            let r = plan(None, true, &f2).unwrap();
            assert!(!writes(&r)[path].contains("oidc-"), "{path}");
        }
    }

    #[test]
    fn after_restore_restarts_what_needs_it_and_checks_the_restored_flags() {
        let mut f = files(&manifest());
        let r = after_restore("cp1", &f, 30).unwrap();
        assert_eq!(r.distribution, Distribution::Kubeadm);
        assert!(r.restart.is_empty(), "the kubelet restarts a static pod");
        assert_eq!(r.health.process.as_deref(), Some("kube-apiserver"));
        assert_eq!(r.health.flags_after, manifest_flags(&manifest()).unwrap());
        f.clear();
        f.insert(K3S_CONFIG.into(), Some("bind-address: 10.0.0.5\n".into()));
        let r = after_restore("cp1", &f, 30).unwrap();
        assert_eq!(
            r.restart.iter().map(Command::to_shell).collect::<Vec<_>>(),
            ["systemctl restart k3s"]
        );
        assert_eq!(r.health.unit.as_deref(), Some("k3s"));
        assert_eq!(r.health.readyz, "https://10.0.0.5:6443/readyz");
        assert!(r.health.admin_probe.is_some());
        f.clear();
        f.insert(MICROK8S_ARGS.into(), Some("--secure-port=16443\n".into()));
        let r = after_restore("cp1", &f, 30).unwrap();
        assert_eq!(
            r.restart.iter().map(Command::to_shell).collect::<Vec<_>>(),
            ["microk8s stop", "microk8s start"]
        );
        f.clear();
        assert!(after_restore("cp1", &f, 30).is_err());
    }

    #[test]
    fn k3s_found_by_its_running_unit_gets_a_new_config_file() {
        let mut f = NodeFiles::new();
        f.insert("systemd:k3s".into(), Some("active\n".into()));
        assert_eq!(detect("cp1", &f).unwrap(), Distribution::K3s);
        let hp = plan(Some(&with(|_| {})), false, &f).unwrap();
        let new = changes(&hp)
            .into_iter()
            .find(|c| c.path == K3S_CONFIG)
            .map(|c| (c.before, c.after));
        let (before, after) = new.expect("config.yaml written");
        assert_eq!(before, None);
        assert!(after.contains("kube-apiserver-arg"), "{after}");
    }

    fn convert(mode: crate::AuthMode, files: &NodeFiles) -> Result<HostPlan, PlanError> {
        let req = PatchRequest {
            host: "cp1",
            settings: None,
            remove: false,
            distribution: None,
            timeout_secs: 30,
            sudo: false,
            convert: Some(crate::migrate::Convert {
                auth_mode: mode,
                kubernetes_version: None,
            }),
        };
        plan_host(&req, files)
    }

    #[test]
    fn migration_from_flags_leaves_only_the_file_flag_and_converts_back() {
        let m = manifest().replace(
            "    - --profiling=false\n",
            "    - --profiling=false\n    - --oidc-issuer-url=https://idp.example.com\n    - --oidc-client-id=kubernetes\n",
        );
        let f = files(&m);
        let hp = convert(crate::AuthMode::Config, &f).unwrap();
        assert_eq!(
            hp.health.flags_after,
            ["--authentication-config=/etc/kubernetes/oidc/authentication-config.yaml"]
        );
        let w = writes(&hp);
        let file = &w["/etc/kubernetes/oidc/authentication-config.yaml"];
        // v1.32.2 in the image tag: v1beta1; the implicit prefix stated.
        assert!(
            file.starts_with("apiVersion: apiserver.config.k8s.io/v1beta1\n"),
            "{file}"
        );
        assert!(
            file.contains("      prefix: https://idp.example.com#\n"),
            "{file}"
        );
        // Converted: a second conversion is a no-op, and back to flags gives the same flags
        // with the prefix explicit.
        let done = apply(&f, &hp);
        assert!(convert(crate::AuthMode::Config, &done).unwrap().is_noop());
        let back = convert(crate::AuthMode::Flags, &done).unwrap();
        assert_eq!(
            back.health.flags_after,
            [
                "--oidc-client-id=kubernetes",
                "--oidc-issuer-url=https://idp.example.com",
                "--oidc-username-claim=sub",
                "--oidc-username-prefix=https://idp.example.com#",
            ]
        );
        assert!(convert(crate::AuthMode::Flags, &f).unwrap().is_noop());
    }

    #[test]
    fn a_file_only_change_waits_for_the_reload_by_hash_from_134() {
        let v = |version: &str| {
            with(|i| {
                i.auth_mode = Some("config".into());
                i.kubernetes_version = Some(version.into());
            })
        };
        for (version, info) in [("1.33", false), ("1.34", true)] {
            let s = v(version);
            let f = files(&manifest());
            let first = plan(Some(&s), false, &f).unwrap();
            assert!(node_steps(&first)
                .iter()
                .any(|s| matches!(s, NodeStep::AwaitHealthy(_))));
            let now = apply(&f, &first);
            let mut other = s.clone();
            other.client_id = "other".into();
            let hp = plan(Some(&other), false, &now).unwrap();
            let w = writes(&hp);
            assert_eq!(w.len(), 1, "only the file changes: {w:?}");
            let (path, content) = w.iter().next().unwrap();
            let reload = node_steps(&hp)
                .into_iter()
                .find_map(|s| match s {
                    NodeStep::AwaitReload(r) => Some(r.clone()),
                    _ => None,
                })
                .expect("a reload wait");
            assert_eq!(&reload.path, path);
            assert_eq!(
                reload.hash,
                format!("sha256:{}", crate::node::sha256_hex(content))
            );
            assert_eq!(reload.info_metric, info, "{version}");
            assert!(!node_steps(&hp)
                .iter()
                .any(|s| matches!(s, NodeStep::AwaitHealthy(_))));
        }
    }

    #[test]
    fn microk8s_flags_convert_to_the_file_with_the_version_given() {
        let args = format!(
            "{}--oidc-issuer-url=https://idp.example.com\n--oidc-client-id=kubernetes\n--oidc-username-claim=email\n",
            crate::yamltext::fixture("microk8s-args/001-microk8s-2025-03f0791.args")
        );
        let mut f = NodeFiles::new();
        f.insert(crate::microk8s::ARGS_FILE.into(), Some(args));
        let e = convert(crate::AuthMode::Config, &f)
            .unwrap_err()
            .to_string();
        assert!(e.contains("add `--kubernetes-version`"), "{e}");
        let req = PatchRequest {
            host: "cp1",
            settings: None,
            remove: false,
            distribution: None,
            timeout_secs: 30,
            sudo: false,
            convert: Some(crate::migrate::Convert {
                auth_mode: crate::AuthMode::Config,
                kubernetes_version: crate::KubeVersion::parse("1.34").ok(),
            }),
        };
        let hp = plan_host(&req, &f).unwrap();
        let w = writes(&hp);
        let args = &w[crate::microk8s::ARGS_FILE];
        assert!(!args.contains("--oidc-"), "{args}");
        let path = format!(
            "{}/{}",
            crate::microk8s::NODE_DIR,
            apiserver::AUTH_CONFIG_FILE
        );
        assert!(
            args.contains(&format!("--authentication-config={path}\n")),
            "{args}"
        );
        let file = &w[&path];
        assert!(
            file.starts_with("apiVersion: apiserver.config.k8s.io/v1\n"),
            "{file}"
        );
        assert!(
            file.contains("      claim: email\n      prefix: ''\n"),
            "{file}"
        );
        // And back.
        let back = convert(crate::AuthMode::Flags, &apply(&f, &hp)).unwrap();
        let args = &writes(&back)[crate::microk8s::ARGS_FILE];
        assert!(args.contains("--oidc-username-prefix=-\n"), "{args}");
        assert!(!args.contains("--authentication-config"), "{args}");
    }

    #[test]
    fn k3s_flags_convert_to_the_file_and_back() {
        let mut f = NodeFiles::new();
        f.insert(
            "/etc/rancher/k3s/config.yaml".into(),
            Some("write-kubeconfig-mode: \"0644\"\nkube-apiserver-arg:\n- oidc-issuer-url=https://idp.example.com\n- oidc-client-id=kubernetes\n- oidc-groups-claim=groups\n".into()),
        );
        let req = |mode| PatchRequest {
            host: "cp1",
            settings: None,
            remove: false,
            distribution: Some(crate::Distribution::K3s),
            timeout_secs: 30,
            sudo: false,
            convert: Some(crate::migrate::Convert {
                auth_mode: mode,
                kubernetes_version: crate::KubeVersion::parse("1.33").ok(),
            }),
        };
        let hp = plan_host(&req(crate::AuthMode::Config), &f).unwrap();
        let w = writes(&hp);
        let config = &w["/etc/rancher/k3s/config.yaml"];
        assert!(!config.contains("oidc-"), "{config}");
        assert!(config.contains("authentication-config="), "{config}");
        let file = auth_file(&w);
        assert!(
            file.contains("      prefix: https://idp.example.com#\n"),
            "{file}"
        );
        let back = plan_host(&req(crate::AuthMode::Flags), &apply(&f, &hp)).unwrap();
        let config = &writes(&back)["/etc/rancher/k3s/config.yaml"];
        assert!(
            config.contains("- oidc-username-prefix=https://idp.example.com#\n"),
            "{config}"
        );
        assert!(!config.contains("authentication-config"), "{config}");
    }

    /// From 1.34, k3s / RKE2 / MicroK8s conversions write no `anonymous` section: kube-apiserver
    /// refuses one beside `--anonymous-auth`, which k3s and RKE2 always pass and an operator may
    /// have put in MicroK8s' args file; the flag stays (see `k3s::node`, `microk8s::node`).
    #[test]
    fn conversions_at_134_keep_anonymous_auth_and_write_no_anonymous_section() {
        let v134 = crate::KubeVersion::parse("1.34").ok();
        let cases = [
            (
                crate::Distribution::K3s,
                "/etc/rancher/k3s/config.yaml",
                "kube-apiserver-arg:\n- oidc-issuer-url=https://idp.example.com\n- oidc-client-id=kubernetes\n- anonymous-auth=false\n".to_string(),
                "- anonymous-auth=false\n",
            ),
            (
                crate::Distribution::Rke2,
                "/etc/rancher/rke2/config.yaml",
                "kube-apiserver-arg:\n- oidc-issuer-url=https://idp.example.com\n- oidc-client-id=kubernetes\n".to_string(),
                "",
            ),
            (
                crate::Distribution::Microk8s,
                crate::microk8s::ARGS_FILE,
                format!(
                    "{}--oidc-issuer-url=https://idp.example.com\n--oidc-client-id=kubernetes\n--anonymous-auth=false\n",
                    crate::yamltext::fixture("microk8s-args/001-microk8s-2025-03f0791.args")
                        .replace("=AlwaysAllow", "=RBAC,Node")
                ),
                "--anonymous-auth=false\n",
            ),
        ];
        for (d, path, text, kept) in cases {
            let mut f = NodeFiles::new();
            f.insert(path.into(), Some(text));
            let req = PatchRequest {
                host: "cp1",
                settings: None,
                remove: false,
                distribution: Some(d),
                timeout_secs: 30,
                sudo: false,
                convert: Some(crate::migrate::Convert {
                    auth_mode: crate::AuthMode::Config,
                    kubernetes_version: v134,
                }),
            };
            let w = writes(&plan_host(&req, &f).unwrap());
            let file = auth_file(&w);
            assert!(
                file.starts_with("apiVersion: apiserver.config.k8s.io/v1\n"),
                "{d}: {file}"
            );
            assert!(!file.contains("anonymous"), "{d}: {file}");
            let flags = &w[path];
            assert!(!flags.contains("oidc-"), "{d}: {flags}");
            assert!(flags.contains(kept), "{d}: {flags}");
        }
    }
}

//! `k8soidc patch --file PATH`: the same pure patchers as `patch --ssh`, on a local copy of a
//! config file (kept in git or config management). No SSH, no health wait.
//!
//! The kind of file is detected from its content unless `--file-kind` says it; exactly one kind
//! must match. The result goes to stdout byte for byte (the file unchanged when there is nothing
//! to do, so the command works in a pipeline), or replaces the file atomically with
//! `--in-place` (a plan of one write: temporary file in the same directory, fsync, rename;
//! owner, group and mode kept; `--in-place --dry-run` prints that plan), or is shown as a
//! unified diff with `--dry-run`. Refusals leave the file untouched (exit 2, one line).
//! Files the API server must read (the IdP CA, the AuthenticationConfiguration) are not written:
//! a note on stderr says which files to place where.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use backends::apiserver::{self, NodeFile};
use backends::manifest::NodeMount;
use backends::{
    capi, k0s, k3d, k3s, kops, kubeadm, kubespray, microk8s, talos, vcluster, Distribution,
    OidcSettings, Plan, PlanError, SettingsInput, Step, Target,
};

use crate::cli::PatchArgs;
use crate::error::Error;
use crate::ui::Env;

/// Where a patched kube-apiserver static Pod reads the OIDC files (mounted read-only).
const MANIFEST_NODE_DIR: &str = "/etc/kubernetes/oidc";

pub(crate) use crate::cli::FileKind;

impl FileKind {
    const ALL: [FileKind; 17] = [
        FileKind::Manifest,
        FileKind::K3sConfig,
        FileKind::Rke2Config,
        FileKind::Microk8sArgs,
        FileKind::KubeadmConfig,
        FileKind::KopsCluster,
        FileKind::K3dConfig,
        FileKind::CapiKcp,
        FileKind::KubesprayGroupVars,
        FileKind::EksctlConfig,
        FileKind::GkeClientConfig,
        FileKind::AksJwtAuthenticator,
        FileKind::K0sConfig,
        FileKind::K0sctl,
        FileKind::TalosConfig,
        FileKind::VclusterValues,
        FileKind::GardenerShoot,
    ];

    fn name(self) -> &'static str {
        match self {
            FileKind::Manifest => "manifest",
            FileKind::K3sConfig => "k3s-config",
            FileKind::Rke2Config => "rke2-config",
            FileKind::Microk8sArgs => "microk8s-args",
            FileKind::KubeadmConfig => "kubeadm-config",
            FileKind::KopsCluster => "kops-cluster",
            FileKind::K3dConfig => "k3d-config",
            FileKind::CapiKcp => "capi-kcp",
            FileKind::KubesprayGroupVars => "kubespray-group-vars",
            FileKind::EksctlConfig => "eksctl-config",
            FileKind::GkeClientConfig => "gke-clientconfig",
            FileKind::AksJwtAuthenticator => "aks-jwt-authenticator",
            FileKind::K0sConfig => "k0s-config",
            FileKind::K0sctl => "k0sctl",
            FileKind::TalosConfig => "talos-config",
            FileKind::VclusterValues => "vcluster-values",
            FileKind::GardenerShoot => "gardener-shoot",
        }
    }
}

fn has_line(text: &str, want: &str) -> bool {
    text.lines().any(|l| l.trim_end() == want)
}

/// Whether the path or the content says RKE2 rather than k3s (same syntax, other paths).
fn looks_like_rke2(path: &Path, text: &str) -> bool {
    path.components()
        .any(|c| c.as_os_str().to_string_lossy().contains("rke2"))
        || text
            .lines()
            .any(|l| l.starts_with("kube-apiserver-extra-mount") || l.contains("/rancher/rke2/"))
}

/// The kinds whose signature the content carries.
fn detect(path: &Path, text: &str) -> Vec<FileKind> {
    let mut kinds = Vec::new();
    if has_line(text, "kind: Pod") && text.contains("kube-apiserver") {
        kinds.push(FileKind::Manifest);
    }
    if text
        .lines()
        .any(|l| l.starts_with("kube-apiserver-arg:") || l.starts_with("kube-apiserver-arg+:"))
    {
        kinds.push(if looks_like_rke2(path, text) {
            FileKind::Rke2Config
        } else {
            FileKind::K3sConfig
        });
    }
    let mut content = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .peekable();
    if content.peek().is_some()
        && content.all(|l| {
            l.strip_prefix("--")
                .and_then(|r| r.chars().next())
                .is_some_and(|c| c.is_ascii_alphabetic())
        })
    {
        kinds.push(FileKind::Microk8sArgs);
    }
    if text
        .lines()
        .any(|l| l.trim() == "kind: ClusterConfiguration")
        && text.contains("kubeadm.k8s.io/")
    {
        kinds.push(FileKind::KubeadmConfig);
    }
    if has_line(text, "kind: Cluster") && text.contains("kops.k8s.io/") {
        kinds.push(FileKind::KopsCluster);
    }
    if text.lines().any(|l| l.starts_with("apiVersion: k3d.io/")) {
        kinds.push(FileKind::K3dConfig);
    }
    if capi::looks_like_kcp(text) {
        kinds.push(FileKind::CapiKcp);
    }
    if kubespray::looks_like_group_vars(text) {
        kinds.push(FileKind::KubesprayGroupVars);
    }
    if has_line(text, "kind: ClusterConfig") && text.contains("eksctl.io/") {
        kinds.push(FileKind::EksctlConfig);
    }
    if has_line(text, "kind: ClientConfig") && text.contains("authentication.gke.io/") {
        kinds.push(FileKind::GkeClientConfig);
    }
    if text.trim_start().starts_with('{')
        && text.contains("\"issuer\"")
        && text.contains("\"claimMappings\"")
    {
        kinds.push(FileKind::AksJwtAuthenticator);
    }
    if k0s::looks_like_config(text) {
        kinds.push(FileKind::K0sConfig);
    }
    if k0s::looks_like_k0sctl(text) {
        kinds.push(FileKind::K0sctl);
    }
    if talos::looks_like_machine_config(text) {
        kinds.push(FileKind::TalosConfig);
    }
    if vcluster::looks_like_values(text) {
        kinds.push(FileKind::VclusterValues);
    }
    if has_line(text, "kind: Shoot") && text.contains("core.gardener.cloud/") {
        kinds.push(FileKind::GardenerShoot);
    }
    kinds
}

fn kind_of(path: &Path, text: &str) -> Result<FileKind, Error> {
    let shown = path.display();
    let list = FileKind::ALL.map(|k| k.name()).join(", ");
    match detect(path, text)[..] {
        [one] => Ok(one),
        [] => Err(Error::Input(format!(
            "cannot tell what kind of file `{shown}` is; pass --file-kind ({list})"
        ))),
        ref many => Err(Error::Input(format!(
            "`{shown}` looks like several kinds of file ({}); pass --file-kind to say which",
            many.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// The patchers ignore the settings when removing; these only satisfy their signatures.
fn removal_settings() -> OidcSettings {
    let input = SettingsInput {
        issuer_url: Some("https://removed.invalid".into()),
        client_id: Some("removed".into()),
        ..SettingsInput::default()
    };
    OidcSettings::validate(&input, None).expect("fixed settings are valid")
}

/// What a patcher made of the file.
struct Patched {
    /// The new text, None when nothing changes.
    after: Option<String>,
    /// Notes of the patcher (stderr).
    notes: Vec<String>,
    /// Files the API server reads that `--file` does not write.
    node_files: Vec<NodeFile>,
}

fn node_files(s: &OidcSettings, remove: bool, dir: &str) -> Result<Vec<NodeFile>, PlanError> {
    if remove {
        return Ok(vec![]);
    }
    Ok(apiserver::node_files(s, s.mode()?, dir))
}

/// Patches `text`, a file of `kind`, with the settings `s` (or removes OIDC); `idp_config_name`
/// is eksctl's identity provider name.
fn patch(
    kind: FileKind,
    text: &str,
    s: &OidcSettings,
    remove: bool,
    idp_config_name: &str,
) -> Result<Patched, PlanError> {
    let simple = |after: Option<String>, files: Vec<NodeFile>| Patched {
        after,
        notes: vec![],
        node_files: files,
    };
    Ok(match kind {
        FileKind::Manifest => patch_manifest(text, s, remove)?,
        FileKind::K3sConfig | FileKind::Rke2Config => {
            let d = if kind == FileKind::K3sConfig {
                Distribution::K3s
            } else {
                Distribution::Rke2
            };
            let files = node_files(s, remove, &k3s::node_dir(d)?)?;
            simple(k3s::patch_config(text, s, d, remove)?, files)
        }
        FileKind::Microk8sArgs => simple(
            microk8s::patch_args(text, s, remove)?,
            node_files(s, remove, microk8s::NODE_DIR)?,
        ),
        FileKind::KubeadmConfig => simple(
            kubeadm::patch_cluster_configuration(text, s, remove)?,
            node_files(s, remove, kubeadm::NODE_DIR)?,
        ),
        FileKind::KopsCluster => {
            let after = if remove {
                kops::remove_from_cluster_spec(text)?
            } else {
                kops::merge_cluster_spec(text, s)?
            };
            simple((after != text).then_some(after), vec![])
        }
        FileKind::K3dConfig => simple(
            k3d::patch_config(text, s, remove)?,
            node_files(s, remove, k3d::NODE_DIR)?,
        ),
        FileKind::CapiKcp => simple(capi::patch_kcp(text, s, remove)?, vec![]),
        FileKind::KubesprayGroupVars => {
            simple(kubespray::patch_group_vars(text, s, remove)?, vec![])
        }
        FileKind::GkeClientConfig => {
            let after = backends::gke::merge_client_config(text, (!remove).then_some(s))?;
            simple((after != text).then_some(after), vec![])
        }
        FileKind::AksJwtAuthenticator => {
            let after = backends::aks::merge_authenticator_file(text, (!remove).then_some(s))?;
            simple((after != text).then_some(after), vec![])
        }
        FileKind::EksctlConfig => {
            let after =
                backends::eks::merge_cluster_config(text, (!remove).then_some(s), idp_config_name)?;
            simple((after != text).then_some(after), vec![])
        }
        FileKind::K0sConfig => simple(
            k0s::patch_config(text, s, remove)?,
            node_files(s, remove, k0s::NODE_DIR)?,
        ),
        FileKind::K0sctl => simple(
            k0s::patch_k0sctl(text, s, remove)?,
            node_files(s, remove, k0s::NODE_DIR)?,
        ),
        // The files the API server reads travel in the machine config itself.
        FileKind::TalosConfig => simple(talos::patch_config(text, s, remove)?, vec![]),
        FileKind::VclusterValues => patch_vcluster(text, s, remove)?,
        // The AuthenticationConfiguration travels in a ConfigMap (a note names it).
        FileKind::GardenerShoot => {
            let (after, notes) = backends::gardener::patch_shoot_file(text, s, remove)?;
            Patched {
                after,
                notes,
                node_files: vec![],
            }
        }
    })
}

/// A kube-apiserver static Pod manifest: the flags, and the read-only mount of
/// [`MANIFEST_NODE_DIR`] when the API server reads files from there.
fn patch_manifest(text: &str, s: &OidcSettings, remove: bool) -> Result<Patched, PlanError> {
    let files = node_files(s, remove, MANIFEST_NODE_DIR)?;
    let p = if remove {
        backends::manifest::remove_oidc(text, kubeadm::VOLUME_NAME)?
    } else {
        let args = apiserver::args(s, s.mode()?, MANIFEST_NODE_DIR);
        let mount = NodeMount {
            name: kubeadm::VOLUME_NAME.into(),
            host_path: MANIFEST_NODE_DIR.into(),
            mount_path: MANIFEST_NODE_DIR.into(),
        };
        let mount = (!files.is_empty()).then_some(&mount);
        backends::manifest::patch_manifest(text, &args, mount)?
    };
    Ok(Patched {
        after: p.changed.then_some(p.text),
        notes: p.notes,
        node_files: files,
    })
}

/// vCluster Helm values: the API server's files travel in a ConfigMap of the host namespace
/// (a note names it) rather than on a node.
fn patch_vcluster(text: &str, s: &OidcSettings, remove: bool) -> Result<Patched, PlanError> {
    Ok(Patched {
        after: vcluster::patch_values(text, s, remove)?,
        notes: if remove || vcluster::configmap(s, "NAMESPACE")?.is_none() {
            vec![]
        } else {
            vec![format!(
                "the API server reads its files from ConfigMap `{}` in the vCluster's host namespace (mounted at {}); `k8soidc render --distro vcluster` prints it",
                vcluster::VOLUME,
                vcluster::NODE_DIR
            )]
        },
        node_files: vec![],
    })
}

fn stdout(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("stdout", e))
}

fn file_label(path: &str) -> &'static str {
    if path.ends_with(apiserver::AUTH_CONFIG_FILE) {
        "the AuthenticationConfiguration"
    } else {
        "the IdP CA certificate"
    }
}

/// `--in-place`: one atomic write (temporary file in the same directory, fsync, rename) of the
/// file a symlink points to, not the link, with the mode it has now (the executor keeps its owner and group).
fn in_place_plan(
    path: &Path,
    given: &str,
    before: &str,
    after: &str,
    kind: FileKind,
    remove: bool,
) -> Result<Plan, Error> {
    use std::os::unix::fs::PermissionsExt;
    let target = std::fs::canonicalize(path).map_err(|e| Error::io(given, e))?;
    let mode = std::fs::metadata(&target)
        .map_err(|e| Error::io(given, e))?
        .permissions()
        .mode()
        & 0o7777;
    let what = if remove { "remove" } else { "set" };
    Ok(Plan {
        title: format!("{what} OIDC in {given} ({})", kind.name()),
        steps: vec![Step::WriteFile {
            on: Target::Local,
            path: target.display().to_string(),
            before: Some(before.to_string()),
            after: after.to_string(),
            mode,
            why: format!(
                "{what} the OIDC settings in place (atomic rename, owner, group and mode kept)"
            ),
        }],
        notes: vec![],
    })
}

/// The note on stderr naming the files the API server also reads, which `--file` does not
/// write (none: no note).
fn note_node_files(given: &str, files: &[NodeFile]) {
    if files.is_empty() {
        return;
    }
    let list: Vec<String> = files
        .iter()
        .map(|f| format!("{} ({})", f.path, file_label(&f.path)))
        .collect();
    eprintln!(
        "{given}: note: the API server also needs {} on every control-plane node; --file does not write them (`k8soidc render` prints their content)",
        list.join(" and ")
    );
}

/// `k8soidc patch --file PATH`.
pub(crate) fn run(args: &PatchArgs, env: &Env) -> Result<ExitCode, Error> {
    let given = args.file.as_deref().unwrap_or_default();
    let path = PathBuf::from(given);
    let text = crate::input::read_user_yaml(given, "--file", "a config file to patch")?;
    let kind = match args.file_kind {
        Some(k) => k,
        None => {
            let k = kind_of(&path, &text)?;
            eprintln!("{given}: detected --file-kind {}", k.name());
            k
        }
    };
    let settings = if args.remove {
        removal_settings()
    } else {
        crate::config::settings(&args.oidc, env)?
    };
    let platform = crate::managed::platform(&args.platform, None)?;
    let idp_name = platform
        .idp_config_name
        .as_deref()
        .unwrap_or(backends::eks::DEFAULT_CONFIG_NAME);
    let mut patched = patch(kind, &text, &settings, args.remove, idp_name)?;
    if !args.remove {
        patched
            .notes
            .extend(backends::reserved::override_note(&settings).map(|n| format!("warning: {n}")));
    }
    for n in &patched.notes {
        eprintln!("{given}: note: {n}");
    }
    let Some(after) = patched.after else {
        eprintln!(
            "{given}: already {}; nothing to change",
            if args.remove {
                "without OIDC settings"
            } else {
                "configured with these OIDC settings"
            }
        );
        if !args.dry_run.on && !args.in_place {
            stdout(&text)?;
        }
        return Ok(ExitCode::SUCCESS);
    };
    note_node_files(given, &patched.node_files);
    if args.in_place {
        let plan = in_place_plan(&path, given, &text, &after, kind, args.remove)?;
        if args.dry_run.on {
            return stdout(&plan.to_string()).map(|()| ExitCode::SUCCESS);
        }
        crate::exec::run_plan(&plan, env, false)?;
        eprintln!(
            "{given}: {} OIDC settings ({})",
            if args.remove { "removed" } else { "wrote" },
            kind.name()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if args.dry_run.on {
        let diff = backends::unified_diff(
            &format!("/{}", given.trim_start_matches('/')),
            &text,
            &after,
        );
        stdout(&diff)?;
        return Ok(ExitCode::SUCCESS);
    }
    stdout(&after)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn names_match_clap() {
        for k in FileKind::ALL {
            assert_eq!(k.to_possible_value().unwrap().get_name(), k.name(), "{k:?}");
        }
    }

    #[test]
    fn detection_is_exclusive() {
        let p = Path::new("x");
        assert_eq!(detect(p, "--a=1\n--b\n"), [FileKind::Microk8sArgs]);
        assert_eq!(detect(p, "---\n"), []);
        assert_eq!(
            detect(p, "kube-apiserver-arg:\n- a=b\n"),
            [FileKind::K3sConfig]
        );
        assert_eq!(
            detect(
                Path::new("/etc/rancher/rke2/config.yaml"),
                "kube-apiserver-arg:\n- a=b\n"
            ),
            [FileKind::Rke2Config]
        );
        assert_eq!(detect(p, "a: 1\n"), []);
    }
}

//! `patch --inventory FILE`: the file, and every check made on it before any host is touched.
//! Errors name the file, the line and the field (`inventory.yaml:14: clusters[2].settings.issuer-url: ...`).
//!
//! Settings per cluster, highest first: command-line flags, the cluster's `settings`, the
//! file's `defaults`, `K8SOIDC_*` variables, the `--config` file (flags win, like ansible's
//! `-e`), merged by `config.rs`'s one merge and validated as `--ssh` runs validate them.
//!
//! Lines: serde_yaml_ng reports where a typed parse failed; for the checks made afterwards
//! (duplicates, settings, unreachable hosts) `yamlpos::line_of` walks the document again to the
//! node at a path and fails there on purpose, which yields that node's position.

use std::collections::BTreeMap;
use std::path::Path;

use backends::{Distribution, OidcSettings, PlanError, SettingsInput, Source};
use serde::Deserialize;

use crate::cli::PatchArgs;
use crate::error::Error;
use crate::exec::ssh::HostSpec;
use crate::yamlpos::{field_name, line_of, Seg};

/// The file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInventory {
    #[serde(default)]
    defaults: Option<SettingsInput>,
    clusters: Vec<RawCluster>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    name: String,
    #[serde(default)]
    distro: Option<String>,
    hosts: Vec<String>,
    #[serde(default)]
    settings: Option<SettingsInput>,
}

/// A checked inventory.
pub(crate) struct Inventory {
    /// The path as given.
    pub(crate) file: String,
    text: String,
    pub(crate) clusters: Vec<Cluster>,
}

/// One cluster, checked.
pub(crate) struct Cluster {
    pub(crate) name: String,
    /// None: detect on each host (`auto`).
    pub(crate) distro: Option<Distribution>,
    pub(crate) hosts: Vec<HostSpec>,
    /// The merged, validated settings (None with `--remove`).
    pub(crate) settings: Option<OidcSettings>,
}

impl Inventory {
    /// `FILE:LINE: FIELD: message`, LINE being where `clusters[c].hosts[h]` is.
    pub(crate) fn host_error(&self, c: usize, h: usize, message: &str) -> Error {
        self.error(
            &[
                Seg::Key("clusters"),
                Seg::Index(c),
                Seg::Key("hosts"),
                Seg::Index(h),
            ],
            message,
        )
    }

    fn error(&self, path: &[Seg<'_>], message: &str) -> Error {
        located(&self.file, &self.text, path, message)
    }
}

fn located(file: &str, text: &str, path: &[Seg<'_>], message: &str) -> Error {
    // The nearest node that exists (a missing key is reported at its parent).
    let line = (0..=path.len())
        .rev()
        .find_map(|n| line_of(text, &path[..n]))
        .unwrap_or(1);
    Error::Input(format!("{file}:{line}: {}: {message}", field_name(path)))
}

/// Loads and checks the inventory named by `--inventory`: nothing here touches a host.
pub(crate) fn load(args: &PatchArgs) -> Result<Inventory, Error> {
    let file = args.inventory.clone().unwrap_or_default();
    let text = crate::input::read_user_yaml(
        &file,
        "--inventory",
        "the path of a YAML file listing the clusters",
    )?;
    let raw = parse(&file, &text)?;
    let base_dir = Path::new(&file)
        .parent()
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let inv_err = |path: &[Seg<'_>], message: &str| located(&file, &text, path, message);
    if raw.clusters.is_empty() {
        return Err(inv_err(
            &[Seg::Key("clusters")],
            "no clusters; list at least one (name, hosts)",
        ));
    }
    let (flags, env) = crate::config::command_line(&args.oidc);
    let config = crate::config::load_file(&args.oidc)?;
    let mut defaults = raw.defaults.clone().unwrap_or_default();
    crate::config::mark_file(
        &mut defaults,
        &file,
        &text,
        &base_dir,
        &[Seg::Key("defaults")],
    );
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen_hosts: BTreeMap<(String, u16), (usize, usize)> = BTreeMap::new();
    let mut clusters = Vec::new();
    for (ci, rc) in raw.clusters.iter().enumerate() {
        let (name, distro) = name_and_distro(rc, ci, &mut names, &inv_err)?;
        let hosts = cluster_hosts(rc, ci, &mut seen_hosts, &inv_err)?;
        let settings = if args.remove {
            None
        } else {
            let mut own = rc.settings.clone().unwrap_or_default();
            crate::config::mark_file(
                &mut own,
                &file,
                &text,
                &base_dir,
                &[Seg::Key("clusters"), Seg::Index(ci), Seg::Key("settings")],
            );
            Some(cluster_settings(
                &[&config, &env, &defaults, &own, &flags],
                &file,
                &text,
                ci,
            )?)
        };
        clusters.push(Cluster {
            name,
            distro,
            hosts,
            settings,
        });
    }
    Ok(Inventory {
        file,
        text,
        clusters,
    })
}

/// Parses the inventory, naming the file and line of a shape error.
fn parse(file: &str, text: &str) -> Result<RawInventory, Error> {
    serde_yaml_ng::from_str(text).map_err(|e| {
        let line = e.location().map(|l| l.line()).unwrap_or(1);
        let mut msg = e.to_string();
        if let Some(i) = msg.rfind(" at line ") {
            msg.truncate(i);
        }
        let msg = msg.replace('\n', " ");
        let msg = if msg.contains(": ") || msg.starts_with("clusters") {
            msg
        } else {
            format!("(document): {msg}")
        };
        Error::Input(format!(
            "{file}:{line}: {msg}; see `k8soidc patch --help` and the README for the format"
        ))
    })
}

/// Where a message about cluster `ci` points, and what it says.
type InvErr<'a> = dyn Fn(&[Seg<'_>], &str) -> Error + 'a;

/// Cluster `ci`'s name (unique, plain) and distribution (`None`: detected on each host).
fn name_and_distro(
    rc: &RawCluster,
    ci: usize,
    names: &mut BTreeMap<String, usize>,
    inv_err: &InvErr<'_>,
) -> Result<(String, Option<Distribution>), Error> {
    let at = |k: &'static str| [Seg::Key("clusters"), Seg::Index(ci), Seg::Key(k)];
    let name = rc.name.trim();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(inv_err(
            &at("name"),
            &format!(
                "invalid name `{}`: use letters, digits, `-`, `_` and `.`",
                backends::escape(&rc.name)
            ),
        ));
    }
    if let Some(first) = names.insert(name.to_string(), ci) {
        return Err(inv_err(
            &at("name"),
            &format!("duplicate cluster name `{name}` (also clusters[{first}]); give each cluster its own name"),
        ));
    }
    let distro = match rc.distro.as_deref() {
        None | Some("auto") => None,
        Some(d) => Some(
            Distribution::parse(d)
                .ok()
                .filter(|d| backends::patch::target_file(*d).is_ok())
                .ok_or_else(|| {
                    inv_err(
                        &at("distro"),
                        &format!(
                            "unknown distro `{}`: use auto, kubeadm, microk8s, k3s or rke2",
                            backends::escape(d)
                        ),
                    )
                })?,
        ),
    };
    Ok((name.to_string(), distro))
}

/// Cluster `ci`'s hosts, each listed once in the whole inventory.
fn cluster_hosts(
    rc: &RawCluster,
    ci: usize,
    seen_hosts: &mut BTreeMap<(String, u16), (usize, usize)>,
    inv_err: &InvErr<'_>,
) -> Result<Vec<HostSpec>, Error> {
    let at = |k: &'static str| [Seg::Key("clusters"), Seg::Index(ci), Seg::Key(k)];
    if rc.hosts.is_empty() {
        return Err(inv_err(
            &at("hosts"),
            "no hosts: list the cluster's control-plane nodes, e.g. `- admin@cp1.example.com`",
        ));
    }
    let mut hosts = Vec::new();
    for (hi, h) in rc.hosts.iter().enumerate() {
        let path = [
            Seg::Key("clusters"),
            Seg::Index(ci),
            Seg::Key("hosts"),
            Seg::Index(hi),
        ];
        let spec = HostSpec::parse(h).map_err(|e| {
            inv_err(
                &path,
                &e.to_string()
                    .replace("invalid --ssh", "invalid host")
                    .replace("e.g. `--ssh ", "e.g. `"),
            )
        })?;
        let key = (spec.host.to_ascii_lowercase(), spec.port.unwrap_or(22));
        if let Some((c0, h0)) = seen_hosts.insert(key.clone(), (ci, hi)) {
            return Err(inv_err(
                &path,
                &format!(
                    "duplicate host `{}:{}` (also clusters[{c0}].hosts[{h0}]); list each node once",
                    key.0, key.1
                ),
            ));
        }
        hosts.push(spec);
    }
    Ok(hosts)
}

/// The validated settings of cluster `ci`: the one merge of `config`, with the inventory's
/// `defaults` and the cluster's `settings` between the environment and the flags. A bad value
/// from the inventory is reported at its key (`inv.yaml:12: clusters[1].settings.issuer-url:
/// invalid …`); one from elsewhere at the cluster, naming its source (`from K8SOIDC_…`).
fn cluster_settings(
    layers: &[&SettingsInput],
    file: &str,
    text: &str,
    ci: usize,
) -> Result<OidcSettings, Error> {
    let mut input = SettingsInput::default();
    for l in layers {
        input.overlay(l);
    }
    let at_cluster =
        |message: &str| located(file, text, &[Seg::Key("clusters"), Seg::Index(ci)], message);
    let report_at_cluster = |e: PlanError| match e {
        PlanError::MissingSetting { field, .. } => {
            let k = field.trim_start_matches('-');
            at_cluster(&format!(
                "missing {k}: give it in the cluster's `settings`, in `defaults`, or with --{k}"
            ))
        }
        other => at_cluster(&other.to_string()),
    };
    let report = |e: PlanError| {
        // A value from this inventory: reported at its key, which is where it came from.
        if let PlanError::InvalidSetting {
            from: Some(source), ..
        } = &e
        {
            if let Source::File { path, line, key } = &**source {
                if path == file {
                    let at = format!("{file}:{line}: {key}");
                    return Error::Input(format!("{at}: {}", e.without_source()));
                }
            }
        }
        report_at_cluster(e)
    };
    let ca = crate::config::read_ca(&input).map_err(|e| match e {
        Error::Plan(p) => report(p),
        other => other,
    })?;
    crate::config::validate(&mut input, ca).map_err(|e| match e {
        Error::Plan(p) => report(p),
        other => other,
    })
}

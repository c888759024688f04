//! `patch --inventory FILE`: the file, and every check made on it before any host is touched.
//! Errors name the file, the line and the field (`inventory.yaml:14: clusters[2].settings.issuer-url: ...`).
//!
//! Settings per cluster, highest first: command-line flags, the cluster's `settings`, the
//! file's `defaults`, `K8SOIDC_*` variables, the `--config` file (flags win, like ansible's
//! `-e`). Each cluster's merged settings are validated as `--ssh` runs validate them.
//!
//! Lines: serde_yaml_ng reports where a typed parse failed; for the checks made afterwards
//! (duplicates, settings, unreachable hosts) [`line_of`] walks the document again to the
//! node at a path and fails there on purpose, which yields that node's position.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use backends::{Distribution, OidcSettings, PlanError, SettingsInput};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::cli::{OidcArgs, PatchArgs};
use crate::error::Error;
use crate::exec::ssh::HostSpec;

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

/// A step of a path into the document.
#[derive(Debug, Clone, Copy)]
enum Seg<'a> {
    Key(&'a str),
    Index(usize),
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

fn field_name(path: &[Seg<'_>]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) if s.is_empty() => s.push_str(k),
            Seg::Key(k) => {
                s.push('.');
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
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
pub(crate) fn load(
    args: &PatchArgs,
    from_command_line: &dyn Fn(&str) -> bool,
) -> Result<Inventory, Error> {
    let file = args.inventory.clone().unwrap_or_default();
    let text = crate::input::read_user_yaml(
        &file,
        "--inventory",
        "the path of a YAML file listing the clusters",
    )?;
    let raw: RawInventory = serde_yaml_ng::from_str(&text).map_err(|e| {
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
    })?;
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
    let (flags, env) = split_args(&args.oidc, from_command_line);
    let (config, config_path) = crate::config::load_file(&args.oidc)?;
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    let mut seen_hosts: BTreeMap<(String, u16), (usize, usize)> = BTreeMap::new();
    let mut clusters = Vec::new();
    for (ci, rc) in raw.clusters.iter().enumerate() {
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
        let settings = if args.remove {
            None
        } else {
            Some(cluster_settings(
                &Layers {
                    config: (&config, config_path.as_deref()),
                    env: &env,
                    defaults: raw.defaults.as_ref(),
                    cluster: rc.settings.as_ref(),
                    flags: &flags,
                    base_dir: &base_dir,
                },
                &|key, src, message| {
                    let path: Vec<Seg<'_>> = match (src, key) {
                        (Source::Cluster, Some(k)) => vec![
                            Seg::Key("clusters"),
                            Seg::Index(ci),
                            Seg::Key("settings"),
                            Seg::Key(k),
                        ],
                        (Source::Defaults, Some(k)) => vec![Seg::Key("defaults"), Seg::Key(k)],
                        _ => vec![Seg::Key("clusters"), Seg::Index(ci)],
                    };
                    inv_err(&path, message)
                },
            )?)
        };
        clusters.push(Cluster {
            name: name.to_string(),
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

/// Where a setting came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Config,
    Env,
    Defaults,
    Cluster,
    Flag,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::Config => "from the --config file",
            Source::Env => "from the environment",
            Source::Defaults => "from defaults",
            Source::Cluster => "from the cluster's settings",
            Source::Flag => "from the command line",
        })
    }
}

struct Layers<'a> {
    config: (&'a SettingsInput, Option<&'a Path>),
    env: &'a SettingsInput,
    defaults: Option<&'a SettingsInput>,
    cluster: Option<&'a SettingsInput>,
    flags: &'a SettingsInput,
    base_dir: &'a Path,
}

/// The settings the user typed on the command line and those clap took from `K8SOIDC_*`.
fn split_args(a: &OidcArgs, cli: &dyn Fn(&str) -> bool) -> (SettingsInput, SettingsInput) {
    let mut flags = SettingsInput::default();
    let mut env = SettingsInput::default();
    macro_rules! split {
        ($($f:ident),*) => {$(
            if cli(stringify!($f)) { flags.$f = a.$f.clone() } else { env.$f = a.$f.clone() }
        )*};
    }
    split!(
        issuer_url,
        client_id,
        username_claim,
        username_prefix,
        groups_claim,
        groups_prefix,
        ca_file,
        signing_algs,
        auth_mode,
        kubernetes_version
    );
    if cli("required_claim") {
        flags.required_claim = a.required_claim.clone();
    } else {
        env.required_claim = a.required_claim.clone();
    }
    (flags, env)
}

type Blame<'a> = dyn Fn(Option<&'static str>, Source, &str) -> Error + 'a;

fn cluster_settings(l: &Layers<'_>, blame: &Blame<'_>) -> Result<OidcSettings, Error> {
    let mut input = SettingsInput::default();
    let mut from: BTreeMap<&'static str, Source> = BTreeMap::new();
    let mut ca_dir: Option<std::path::PathBuf> = None;
    let mut layer = |top: &SettingsInput, src: Source, dir: Option<&Path>| {
        macro_rules! over {
            ($($f:ident => $k:literal),*) => {$(
                if top.$f.is_some() { input.$f = top.$f.clone(); from.insert($k, src); }
            )*};
        }
        over!(
            issuer_url => "issuer-url",
            client_id => "client-id",
            username_claim => "username-claim",
            username_prefix => "username-prefix",
            groups_claim => "groups-claim",
            groups_prefix => "groups-prefix",
            signing_algs => "signing-algs",
            auth_mode => "auth-mode",
            kubernetes_version => "kubernetes-version"
        );
        if top.ca_file.is_some() {
            input.ca_file = top.ca_file.clone();
            from.insert("ca-file", src);
            ca_dir = dir.map(Path::to_path_buf);
        }
        if !top.required_claim.is_empty() {
            input.required_claim = top.required_claim.clone();
            from.insert("required-claim", src);
        }
    };
    let config_dir = l.config.1.map(|p| p.parent().unwrap_or(Path::new(".")));
    layer(l.config.0, Source::Config, config_dir);
    layer(l.env, Source::Env, None);
    if let Some(d) = l.defaults {
        layer(d, Source::Defaults, Some(l.base_dir));
    }
    if let Some(c) = l.cluster {
        layer(c, Source::Cluster, Some(l.base_dir));
    }
    layer(l.flags, Source::Flag, None);
    let ca = match &input.ca_file {
        None => None,
        Some(p) => {
            let path = match ca_dir {
                Some(d) if Path::new(p).is_relative() => d.join(p).display().to_string(),
                _ => p.clone(),
            };
            let src = from.get("ca-file").copied().unwrap_or(Source::Flag);
            Some(
                crate::config::read_ca(&path)
                    .map_err(|e| blame(Some("ca-file"), src, &format!("{e} ({src})")))?,
            )
        }
    };
    OidcSettings::validate(&input, ca).map_err(|e| {
        let field = match &e {
            PlanError::InvalidSetting { field, .. }
            | PlanError::MissingSetting { field, .. }
            | PlanError::Unrepresentable { field, .. } => Some(field.trim_start_matches('-')),
            _ => None,
        };
        let key: Option<&'static str> = field.and_then(|f| from.get_key_value(f).map(|(k, _)| *k));
        match (&e, key.and_then(|k| from.get(k).copied())) {
            (PlanError::MissingSetting { field, .. }, _) => {
                let k = field.trim_start_matches('-');
                blame(
                    None,
                    Source::Flag,
                    &format!("missing {k}: give it in the cluster's `settings`, in `defaults`, or with --{k}"),
                )
            }
            (_, Some(src)) => blame(key, src, &format!("{e} ({src})")),
            (_, None) => blame(None, Source::Flag, &e.to_string()),
        }
    })
}

/// The line of the node at `path` (None: no such node).
fn line_of(text: &str, path: &[Seg<'_>]) -> Option<usize> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    match (Walk { path }).deserialize(de) {
        Ok(()) => None,
        Err(e) if e.to_string().contains(HERE) => e.location().map(|l| l.line()),
        Err(_) => None,
    }
}

const HERE: &str = "k8soidc-here";

/// Walks to `path` and fails at the node there (the deserializer then marks the error with
/// that node's position).
struct Walk<'p, 'a> {
    path: &'p [Seg<'a>],
}

impl<'de> DeserializeSeed<'de> for Walk<'_, '_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(HERE)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(HERE));
        };
        while let Some(k) = m.next_key::<serde_yaml_ng::Value>()? {
            match (first, k.as_str()) {
                (Seg::Key(want), Some(k)) if k == *want => {
                    return m.next_value_seed(Walk { path: rest });
                }
                _ => {
                    m.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.path.split_first() else {
            return Err(de::Error::custom(HERE));
        };
        let mut i = 0;
        loop {
            if matches!(first, Seg::Index(n) if *n == i) {
                return s.next_element_seed(Walk { path: rest }).map(|_| ());
            }
            if s.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.leaf()
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.leaf()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }
}

impl Walk<'_, '_> {
    fn leaf<E: de::Error>(&self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(E::custom(HERE))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "defaults:\n  issuer-url: https://idp.example.com\nclusters:\n  - name: a\n    hosts:\n      - h1\n      - h2\n  - name: b\n    hosts: [h3]\n    settings:\n      client-id: x\n";

    #[test]
    fn lines_of_nodes() {
        let at = |p: &[Seg<'_>]| line_of(DOC, p);
        assert_eq!(at(&[Seg::Key("defaults"), Seg::Key("issuer-url")]), Some(2));
        assert_eq!(at(&[Seg::Key("clusters"), Seg::Index(0)]), Some(4));
        let h = |c, i| {
            [
                Seg::Key("clusters"),
                Seg::Index(c),
                Seg::Key("hosts"),
                Seg::Index(i),
            ]
        };
        assert_eq!(at(&h(0, 1)), Some(7));
        assert_eq!(at(&h(1, 0)), Some(9));
        assert_eq!(
            at(&[
                Seg::Key("clusters"),
                Seg::Index(1),
                Seg::Key("settings"),
                Seg::Key("client-id")
            ]),
            Some(11)
        );
        assert_eq!(at(&h(1, 5)), None);
        assert_eq!(at(&[Seg::Key("nope")]), None);
    }
}

//! k3s and RKE2: both read `/etc/rancher/{k3s,rke2}/config.yaml` and then
//! `config.yaml.d/*.yaml` in alphabetical order, where each key is a server flag and
//! `kube-apiserver-arg` is a list of `name=value` entries (k3s adds the `--` and strips one the
//! user wrote). Both use the same parser: k3s-io/k3s `pkg/configfilearg/parser.go`, which RKE2
//! imports (rancher/rke2 `main.go`).
//!
//! **Drop-in: `kube-apiserver-arg+:`, not `kube-apiserver-arg:`.** In `readConfigFile`, a key
//! seen in a later file *replaces* the earlier value unless the key ends in `+`, in which case
//! the value is appended to the earlier list (`isAppend := strings.HasSuffix(k, "+")`; with no
//! earlier value it is simply set). k3s docs: "The last value for a given key will be used. A `+`
//! can be appended to the key to append the value to the existing string or slice"
//! (k3s-io/docs `docs/installation/configuration.md`); RKE2's docs: "Slices are replaced"
//! (rancher/rke2-docs `docs/install/configuration.md`). A plain key in `50-oidc.yaml` would
//! silently drop every `kube-apiserver-arg` of `config.yaml` (audit, admission, hardening
//! flags), so the drop-in appends. Still, a later drop-in with a plain key, or
//! `--kube-apiserver-arg` on the service's command line ("CLI arguments will overwrite all
//! values in the list"), replaces our entries: the rendering warns about it.
//!
//! The API server runs inside the k3s process, so files in `/etc/rancher/k3s/oidc/` are seen
//! as is. RKE2 runs it as a static pod: the directory must be mounted with
//! `kube-apiserver-extra-mount` (rancher/rke2-docs `docs/advanced.md`, rancher/rke2#930).
//! Restart: `systemctl restart k3s` (k3s-io/docs `docs/upgrades/manual.md`) or
//! `systemctl restart rke2-server` (rancher/rke2#5142).
//!
//! [`patch_config`] edits an existing `config.yaml` as text: only the list items it owns change,
//! every other byte stays. Entries are written so YAML reads them back as the exact string
//! (`- oidc-username-prefix=oidc:` would be a map: a `:` at the end of a plain scalar starts a
//! mapping value), and the edited text is parsed again before it is returned.

use crate::apiserver;
use crate::{Backend, ClusterRequest, Command, Distribution, OidcSettings, PlanError, Rendering};

pub mod node;
mod patch;

pub use patch::patch_config;

/// The k3s/RKE2 backend; both read `kube-apiserver-arg` lists from a config.yaml.
#[derive(Debug, Clone, Copy)]
pub struct K3s {
    /// `K3s` or `Rke2`.
    pub distribution: Distribution,
}

/// The list key for API-server flags.
pub const ARG_KEY: &str = "kube-apiserver-arg";
/// RKE2's list of host directories mounted into the API-server pod.
pub const MOUNT_KEY: &str = "kube-apiserver-extra-mount";
/// File name of the drop-in k8soidc renders.
pub const DROPIN_NAME: &str = "50-oidc.yaml";

/// `/etc/rancher/k3s` or `/etc/rancher/rke2`.
pub fn base_dir(d: Distribution) -> Result<&'static str, PlanError> {
    match d {
        Distribution::K3s => Ok("/etc/rancher/k3s"),
        Distribution::Rke2 => Ok("/etc/rancher/rke2"),
        _ => Err(PlanError::Unsupported {
            distribution: d,
            message: "the k3s backend serves only k3s and rke2".into(),
        }),
    }
}

/// The main config file, `/etc/rancher/{k3s,rke2}/config.yaml`.
pub fn config_path(d: Distribution) -> Result<String, PlanError> {
    Ok(format!("{}/config.yaml", base_dir(d)?))
}

/// The drop-in k8soidc renders, `/etc/rancher/{k3s,rke2}/config.yaml.d/50-oidc.yaml`.
pub fn dropin_path(d: Distribution) -> Result<String, PlanError> {
    Ok(format!("{}/config.yaml.d/{DROPIN_NAME}", base_dir(d)?))
}

/// Refuses the settings file's `anonymous` section for k3s, RKE2 and k3d (k3s in
/// containers): they always start the API server with `--anonymous-auth=false` (k3s-io/k3s
/// pkg/daemons/control/server.go, `argsMap["anonymous-auth"] = "false"`; an entry can change
/// its value but not remove it), and kube-apiserver refuses to start with that flag beside an
/// AuthenticationConfiguration that has the section ("--anonymous-auth flag cannot be set
/// when anonymous field is configured in authentication configuration file",
/// k8s.io/kubernetes pkg/kubeapiserver/options/authentication.go).
pub fn refuse_anonymous(s: &OidcSettings, d: Distribution) -> Result<(), PlanError> {
    match s.structured.as_ref().and_then(|x| x.anonymous.as_ref()) {
        Some(_) => Err(PlanError::Unsupported {
            distribution: d,
            message: format!(
                "the settings file's `anonymous` section cannot go to {d}: {d} always starts the API server with `--anonymous-auth=false`, and kube-apiserver refuses to start with that flag beside an `anonymous` section; remove `anonymous` from the settings file (anonymous requests then stay refused, as {d} has them by default)"
            ),
        }),
        None => Ok(()),
    }
}

/// The directory for the CA and AuthenticationConfiguration on each server node.
pub fn node_dir(d: Distribution) -> Result<String, PlanError> {
    Ok(format!("{}/oidc", base_dir(d)?))
}

/// RKE2's `kube-apiserver-extra-mount` entry for [`node_dir`] (read-only); `None` for k3s.
pub fn extra_mount(d: Distribution) -> Result<Option<String>, PlanError> {
    let dir = node_dir(d)?;
    Ok((d == Distribution::Rke2).then(|| format!("{dir}:{dir}:ro")))
}

/// `systemctl restart k3s` or `systemctl restart rke2-server`.
pub fn restart_command(d: Distribution) -> Result<Command, PlanError> {
    base_dir(d)?;
    let unit = if d == Distribution::Rke2 {
        "rke2-server"
    } else {
        "k3s"
    };
    Ok(Command::new("systemctl", ["restart", unit]))
}

/// The node's own authenticated readiness check: its kubectl with the admin kubeconfig the
/// server writes (k3s: `k3s kubectl`, kubeconfig /etc/rancher/k3s/k3s.yaml; RKE2:
/// /var/lib/rancher/rke2/bin/kubectl with /etc/rancher/rke2/rke2.yaml; docs.k3s.io
/// cluster-access, docs.rke2.io cluster_access). Both servers refuse anonymous requests.
pub fn readyz_command(d: Distribution) -> Result<Command, PlanError> {
    base_dir(d)?;
    Ok(if d == Distribution::Rke2 {
        Command::new(
            "/var/lib/rancher/rke2/bin/kubectl",
            [
                "--kubeconfig",
                "/etc/rancher/rke2/rke2.yaml",
                "get",
                "--raw",
                "/readyz",
            ],
        )
    } else {
        Command::new(
            "k3s",
            [
                "kubectl",
                "--kubeconfig",
                "/etc/rancher/k3s/k3s.yaml",
                "get",
                "--raw",
                "/readyz",
            ],
        )
    })
}

/// The `kube-apiserver-arg` entries, `name=value` each.
pub fn apiserver_entries(s: &OidcSettings, d: Distribution) -> Result<Vec<String>, PlanError> {
    refuse_anonymous(s, d)?;
    Ok(apiserver::args(s, s.mode()?, &node_dir(d)?)
        .iter()
        .map(apiserver::Arg::pair)
        .collect())
}

/// The mount entries the settings need (RKE2 with files only).
fn mount_entries(s: &OidcSettings, d: Distribution) -> Result<Vec<String>, PlanError> {
    let needs_files = !apiserver::node_files(s, s.mode()?, &node_dir(d)?).is_empty();
    Ok(extra_mount(d)?
        .filter(|_| needs_files)
        .into_iter()
        .collect())
}

/// How a list item is quoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    /// Bare, when YAML reads it back unchanged; else double-quoted.
    Plain,
    /// `"…"`.
    Double,
    /// `'…'`.
    Single,
}

/// Whether `value` reads back as exactly this string when written bare as a list item, for
/// k3s' go-yaml v2 (YAML 1.1) as for any YAML 1.2 reader: the crate's one decision.
fn plain_ok(value: &str) -> bool {
    crate::yamlout::plain_safe(value)
}

/// Whether `- {item}` parses as a one-element list holding `value`.
#[cfg(test)]
fn reads_back(item: &str, value: &str) -> bool {
    use serde_yaml_ng::Value;
    matches!(
        serde_yaml_ng::from_str::<Value>(&format!("- {item}\n")),
        Ok(Value::Sequence(seq)) if seq == [Value::String(value.to_string())]
    )
}

/// One list item's text in the given style (plain only where [`plain_ok`]).
fn scalar(value: &str, style: Style) -> String {
    use crate::yamlout::{double_quoted, single_quoted};
    match style {
        Style::Plain if plain_ok(value) => value.to_string(),
        Style::Single => single_quoted(value).unwrap_or_else(|| double_quoted(value)),
        _ => double_quoted(value),
    }
}

fn block_list(key: &str, items: &[String]) -> String {
    let mut out = format!("{key}:\n");
    for item in items {
        out.push_str(&format!("  - {}\n", scalar(item, Style::Plain)));
    }
    out
}

/// The drop-in file for `config.yaml.d/50-oidc.yaml` (appending keys, see the module docs).
pub fn dropin(s: &OidcSettings, d: Distribution) -> Result<String, PlanError> {
    let mut out = format!(
        "# k8soidc: API-server OIDC. `{ARG_KEY}+` appends to the list of {} and earlier drop-ins.\n",
        config_path(d)?
    );
    out.push_str(&block_list(
        &format!("{ARG_KEY}+"),
        &apiserver_entries(s, d)?,
    ));
    let mounts = mount_entries(s, d)?;
    if !mounts.is_empty() {
        out.push_str(&block_list(&format!("{MOUNT_KEY}+"), &mounts));
    }
    Ok(out)
}

impl Backend for K3s {
    fn distribution(&self) -> Distribution {
        self.distribution
    }

    fn render(&self, s: &OidcSettings, _req: &ClusterRequest) -> Result<Rendering, PlanError> {
        let d = self.distribution;
        let mode = s.mode()?;
        let mut r = Rendering::new(d, s)?;
        r.warnings.push(format!(
            "the drop-in appends with `{ARG_KEY}+`: remove any oidc-* or authentication-config entries from {} and other drop-ins first (`k8soidc patch` does); a later drop-in with a plain `{ARG_KEY}:` key, or `--kube-apiserver-arg` in the {d} service's command line (installer arguments), replaces the whole list, ours included",
            config_path(d)?
        ));
        r.warnings
            .push("do this on every server node, one at a time".to_string());
        for f in apiserver::node_files(s, mode, &node_dir(d)?) {
            let why = if d == Distribution::Rke2 {
                "file the API server reads (its directory is mounted into the API-server pod)"
            } else {
                "file the API server reads"
            };
            r.push(why, Some(f.path), "text", f.content);
        }
        r.push(
            format!("{d} config drop-in"),
            Some(dropin_path(d)?),
            "yaml",
            dropin(s, d)?,
        );
        r.push(
            format!("then restart {d}"),
            None,
            "shell",
            format!("{}\n", restart_command(d)?),
        );
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;
    use serde_yaml_ng::Value;

    fn k3s() -> K3s {
        K3s {
            distribution: Distribution::K3s,
        }
    }

    fn rke2() -> K3s {
        K3s {
            distribution: Distribution::Rke2,
        }
    }

    pub(super) const ENTRIES: &str = "  - oidc-issuer-url=https://idp.example.com\n  - oidc-client-id=kubernetes\n  \
        - oidc-username-claim=email\n  - \"oidc-username-prefix=oidc:\"\n  - oidc-groups-claim=groups\n  \
        - \"oidc-groups-prefix=oidc:\"\n";

    pub(super) fn config_mode() -> OidcSettings {
        with(|i| {
            i.auth_mode = Some("config".into());
            i.kubernetes_version = Some("1.34".into());
        })
    }

    #[test]
    fn yaml_scalars_read_back_as_strings() {
        assert!(!plain_ok("oidc-username-prefix=oidc:"));
        assert!(plain_ok("oidc-issuer-url=https://idp.example.com"));
        assert!(plain_ok("enable-admission-plugins=A,B"));
        for value in [
            "oidc-username-prefix=oidc:",
            "oidc-required-claim=hd=a: b",
            "oidc-required-claim=x=a #b",
            "oidc-required-claim=x=\"q\" 'r' \\ $HOME",
            "oidc-required-claim=x=ünïcode",
            "a=b\tc",
            "true",
            "123",
            "- a",
        ] {
            for style in [Style::Plain, Style::Double, Style::Single] {
                let text = scalar(value, style);
                assert!(reads_back(&text, value), "{style:?} {value:?} -> {text}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn any_value_reads_back(value in "[^\\p{Cc}]{1,40}") {
            for style in [Style::Plain, Style::Double, Style::Single] {
                let text = scalar(&value, style);
                proptest::prop_assert!(reads_back(&text, &value), "{:?} {:?} -> {}", style, value, text);
            }
        }
    }

    #[test]
    fn exact_dropin_k3s() {
        let text = dropin(&settings(), Distribution::K3s).unwrap();
        assert_eq!(
            text,
            format!("# k8soidc: API-server OIDC. `kube-apiserver-arg+` appends to the list of /etc/rancher/k3s/config.yaml and earlier drop-ins.\nkube-apiserver-arg+:\n{ENTRIES}")
        );
        let v: Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(
            v["kube-apiserver-arg+"][3],
            Value::from("oidc-username-prefix=oidc:")
        );
    }

    #[test]
    fn exact_dropin_rke2_mounts_the_directory() {
        let text = dropin(&config_mode(), Distribution::Rke2).unwrap();
        assert!(
            text.ends_with(
                "kube-apiserver-arg+:\n  - authentication-config=/etc/rancher/rke2/oidc/authentication-config.yaml\n\
                 kube-apiserver-extra-mount+:\n  - /etc/rancher/rke2/oidc:/etc/rancher/rke2/oidc:ro\n"
            ),
            "{text}"
        );
        // Flags without a CA need no file, so no mount.
        let text = dropin(&settings(), Distribution::Rke2).unwrap();
        assert!(!text.contains(MOUNT_KEY), "{text}");
    }

    #[test]
    fn render_k3s_and_rke2() {
        let mut s = settings();
        s.ca = Some(ca());
        let r = k3s().render(&s, &request()).unwrap();
        assert_eq!(
            r.artifacts[0].path.as_deref(),
            Some("/etc/rancher/k3s/oidc/oidc-ca.pem")
        );
        assert_eq!(
            r.artifacts[1].path.as_deref(),
            Some("/etc/rancher/k3s/config.yaml.d/50-oidc.yaml")
        );
        assert!(r.artifacts[1]
            .content
            .contains("  - oidc-ca-file=/etc/rancher/k3s/oidc/oidc-ca.pem\n"));
        assert_eq!(r.artifacts[2].content, "systemctl restart k3s\n");
        assert!(r
            .to_string()
            .contains("replaces the whole list, ours included"));
        let r = rke2().render(&s, &request()).unwrap();
        assert_eq!(r.artifacts[2].content, "systemctl restart rke2-server\n");
        assert!(r.artifacts[1]
            .content
            .contains("kube-apiserver-extra-mount+:"));
        let other = K3s {
            distribution: Distribution::Kind,
        };
        assert!(other.render(&s, &request()).is_err());
    }
}

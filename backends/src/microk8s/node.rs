//! A MicroK8s control-plane node, as `patch --ssh` and `create --ssh` see it.
//!
//! Facts (sources in ../shared/reference/distros.md): the API server's flags are lines of
//! [`super::ARGS_FILE`], read only at start, applied by `microk8s stop` + `microk8s start`; it
//! answers on port 16443 (canonical.com/microk8s/docs/configuring-services). MicroK8s starts
//! with `--authorization-mode=AlwaysAllow` until `microk8s enable rbac`, which is run first
//! (a one-way step: a rollback does not undo it). `snap install microk8s --classic` installs
//! it (snapcraft.io/docs/install-modes: a classic snap) and starts it with its default args.

use std::collections::BTreeMap;

use crate::apiserver;
use crate::manifest::ApiEndpoint;
use crate::migrate::{self, Convert};
use crate::node::{Health, NodeBackend, NodeFiles, NodeStep, Restart, Restored, Running};
use crate::patch::{endpoint_of, node_file_changes, PatchRequest, Patched};
use crate::settings::AuthMode;
use crate::{Command, Distribution, OidcSettings, Plan, PlanError, Step, Target};

/// The MicroK8s node backend.
pub struct Microk8sNode;
/// The registered instance.
pub static MICROK8S: Microk8sNode = Microk8sNode;

/// Where the API server of an args file answers: `--bind-address` when specific, else
/// `--advertise-address`, else 127.0.0.1; `--secure-port`, else 16443.
pub fn endpoint(text: &str) -> ApiEndpoint {
    let mut flags: BTreeMap<String, String> = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        for word in line.split_whitespace() {
            if let Some((k, v)) = word.trim_start_matches('-').split_once('=') {
                flags.insert(k.to_string(), v.replace(['"', '\''], ""));
            }
        }
    }
    endpoint_of(
        flags.get("bind-address").map(String::as_str),
        flags.get("advertise-address").map(String::as_str),
        flags.get("secure-port").and_then(|p| p.parse().ok()),
        16443,
    )
}

/// The flags of an args file, in order, names without `--` (MicroK8s' own parser drops
/// quotes), comments skipped.
fn args_flags(text: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('#') {
            continue;
        }
        for word in line.split_whitespace() {
            let word = word.trim_start_matches('-');
            match word.split_once('=') {
                Some((k, v)) => out.push((k.to_string(), Some(v.replace(['"', '\''], "")))),
                None => out.push((word.to_string(), None)),
            }
        }
    }
    out
}

fn restarts() -> Vec<Restart> {
    super::restart_commands()
        .into_iter()
        .map(|c| Restart {
            command: c,
            why: "the API server (kubelite) reads its args file only at start".into(),
        })
        .collect()
}

impl NodeBackend for Microk8sNode {
    fn distribution(&self) -> Distribution {
        Distribution::Microk8s
    }

    fn target_file(&self) -> &'static str {
        super::ARGS_FILE
    }

    fn node_dirs(&self) -> Vec<String> {
        vec![super::NODE_DIR.into()]
    }

    fn patch(&self, req: &PatchRequest<'_>, files: &NodeFiles) -> Result<Patched, PlanError> {
        let current = files
            .get(super::ARGS_FILE)
            .cloned()
            .flatten()
            .ok_or_else(|| PlanError::Patch {
                what: format!("`{}` on `{}`", super::ARGS_FILE, req.host),
                reason: "the file does not exist".into(),
                fix: format!("check that `{}` is a microk8s control-plane node", req.host),
            })?;
        let s = &*req.settings_or_placeholder()?;
        let dir = super::NODE_DIR;
        let mut files_out = Vec::new();
        if !req.remove {
            files_out = node_file_changes(apiserver::node_files(s, s.mode()?, dir), files, |l| {
                format!("place {l} in {dir}, where the API server reads it")
            });
        }
        let after = super::patch_args(&current, s, req.remove)?;
        let mut notes = Vec::new();
        let mut restart = Vec::new();
        let one_way = !req.remove && !super::rbac_enabled(after.as_deref().unwrap_or(&current));
        if one_way {
            notes.push(format!(
                "MicroK8s runs with --authorization-mode={}: every user the IdP signs in would be all-powerful, so RBAC is enabled first (`microk8s enable rbac`)",
                super::authorization_mode(&current).unwrap_or_else(|| "AlwaysAllow".into())
            ));
            restart.push(Restart {
                command: super::rbac_command(),
                why: "switch authorization from AlwaysAllow to RBAC,Node before any OIDC user can sign in".into(),
            });
        }
        restart.extend(restarts());
        Ok(Patched {
            target: super::ARGS_FILE.into(),
            existed: true,
            after: after.unwrap_or_else(|| current.clone()),
            why: format!(
                "{} the API server's OIDC flags (written to a temporary file beside it, then renamed into place)",
                if req.remove { "remove" } else { "set" }
            ),
            health: Health::at(&endpoint(&current), req.timeout_secs),
            before: current,
            files: files_out,
            restart,
            restart_after_restore: super::restart_commands().to_vec(),
            notes,
            after_healthy: vec![],
            rewritten_by_restart: one_way,
        })
    }

    /// MicroK8s' API server runs on the host (kubelite), so the paths its flags name are the
    /// node's own; its version is not in any file read, so config mode needs
    /// `--kubernetes-version`.
    fn running_settings(
        &self,
        req: &PatchRequest<'_>,
        files: &NodeFiles,
        convert: Convert,
    ) -> Result<Running, PlanError> {
        let current = files
            .get(super::ARGS_FILE)
            .cloned()
            .flatten()
            .ok_or_else(|| PlanError::Patch {
                what: format!("`{}` on `{}`", super::ARGS_FILE, req.host),
                reason: "the file does not exist".into(),
                fix: format!("check that `{}` is a microk8s control-plane node", req.host),
            })?;
        let flags = args_flags(&current);
        let value = |name: &str| {
            flags
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone().unwrap_or_default())
        };
        let config = value("authentication-config");
        let oidc = flags.iter().any(|(n, _)| n.starts_with("oidc-"));
        let read = |path: &str| files.get(path).cloned().flatten();
        match (convert.auth_mode, config, oidc) {
            (AuthMode::Flags, Some(path), _) => {
                let text = read(&path).ok_or_else(|| PlanError::Patch {
                    what: format!("`{path}` on `{}`", req.host),
                    reason: "the AuthenticationConfiguration could not be read (k8soidc reads it only where it writes it)".into(),
                    fix: "give the OIDC settings explicitly".into(),
                })?;
                let s = migrate::settings_from_file(req.host, &path, &text, convert.kubernetes_version)?;
                Ok(Running::Settings(Box::new(s), vec![format!("converted from {path}; the file itself is left in place (unused)")]))
            }
            (AuthMode::Flags, None, true) => Ok(Running::Already("runs --oidc-* flags".into())),
            (AuthMode::Flags, None, false) => Err(PlanError::Patch {
                what: format!("`{}` on `{}`", super::ARGS_FILE, req.host),
                reason: "the API server runs neither `--oidc-*` flags nor `--authentication-config`, so there is nothing to convert".into(),
                fix: "give the OIDC settings (`--issuer-url`, `--client-id`, ...) to set them".into(),
            }),
            (_, Some(_), false) => Ok(Running::Already("runs --authentication-config".into())),
            _ => {
                if convert.kubernetes_version.is_none() {
                    return Err(PlanError::invalid(
                        "--auth-mode",
                        "config",
                        "MicroK8s' Kubernetes version is in none of the files k8soidc reads, and it chooses the AuthenticationConfiguration apiVersion",
                        "add `--kubernetes-version` (`microk8s version` shows it)",
                    ));
                }
                // No `anonymous` section (kubeadm's conversion adds one from 1.34 to replace
                // `--anonymous-auth=false`, `kubeadm::node::anonymous_health`): MicroK8s' default
                // args file sets no `--anonymous-auth` (canonical/microk8s
                // microk8s-resources/default-args/kube-apiserver; tests/data/fixtures/
                // microk8s-args), so anonymous requests stay allowed as before, the health wait's
                // anonymous /readyz keeps answering, and no flag meets a section (kube-apiserver
                // refuses `--anonymous-auth` beside one: pkg/kubeapiserver/options/
                // authentication.go, ToAuthenticationConfig). A `--anonymous-auth` line the
                // operator added stays, legal without the section. Pinned over test nodes by
                // tests/migrate.rs `microk8s_flags_to_file_and_back_keeps_the_cluster_healthy`.
                let ca = value("oidc-ca-file").and_then(|p| read(&p));
                let (s, notes) = migrate::settings_from_flags(
                    req.host,
                    &flags,
                    ca,
                    convert,
                    convert.kubernetes_version,
                )?;
                Ok(Running::Settings(Box::new(s), notes))
            }
        }
    }

    fn after_restore(&self, files: &NodeFiles, timeout_secs: u64) -> Result<Restored, PlanError> {
        let text = files
            .get(super::ARGS_FILE)
            .cloned()
            .flatten()
            .unwrap_or_default();
        Ok(Restored {
            distribution: Distribution::Microk8s,
            restart: super::restart_commands().to_vec(),
            health: Health::at(&endpoint(&text), timeout_secs),
        })
    }

    fn can_create(&self) -> bool {
        true
    }

    /// `snap install microk8s --classic`, then, on the node, the args file the snap wrote is
    /// patched by a script (its content is only known there): backed up, every `--oidc-*` and
    /// `--authentication-config` line dropped, k8soidc's lines appended, renamed into place;
    /// `microk8s enable rbac` when it still allows everything; restart; health.
    fn create(
        &self,
        host: &str,
        s: &OidcSettings,
        _installer: &str,
        _read: &NodeFiles,
    ) -> Result<Plan, PlanError> {
        let on = Target::Host(host.to_string());
        let mode = s.mode()?;
        let lines = super::flag_lines(s)?;
        let files = node_file_changes(
            apiserver::node_files(s, mode, super::NODE_DIR),
            &NodeFiles::new(),
            |_| {
                format!(
                    "the file the API server reads, in {} (kept across snap refreshes)",
                    super::NODE_DIR
                )
            },
        );
        let mut steps = crate::create_node::create_steps(
            &on,
            files,
            vec![(
                Command::new("snap", ["install", "microk8s", "--classic"]),
                "install MicroK8s (it starts with its default args)".into(),
            )],
            None,
        );
        let mut args = vec![
            super::ARGS_FILE.to_string(),
            crate::node::STATE_DIR.to_string(),
            lines.len().to_string(),
        ];
        args.extend(lines.iter().cloned());
        let mut commands = vec![super::rbac_command()];
        commands.extend(super::restart_commands());
        crate::node::script::push_commands(&mut args, &commands);
        let mut summary = vec![format!(
            "cp {} {}/backups/<UTC time>/1",
            super::ARGS_FILE,
            crate::node::STATE_DIR
        )];
        summary.push(format!(
            "grep -v -E '^--(oidc-|authentication-config)' {f} > {f}.k8soidc-new  # then append:",
            f = super::ARGS_FILE
        ));
        summary.extend(lines.iter().map(|l| {
            format!(
                "  echo {} >> {}.k8soidc-new",
                crate::shell::quote(l),
                super::ARGS_FILE
            )
        }));
        summary.push(format!("mv {f}.k8soidc-new {f}", f = super::ARGS_FILE));
        summary.push(format!(
            "{}   # only when --authorization-mode has no RBAC",
            super::rbac_command()
        ));
        summary.extend(super::restart_commands().iter().map(|c| c.to_shell()));
        steps.push(Step::Node {
            on: on.clone(),
            sudo: false,
            why: "once installed: put the OIDC flags in the args file the snap wrote, turn on RBAC if it is off, restart".into(),
            step: NodeStep::Script {
                name: "patch the args file MicroK8s wrote, RBAC, restart".into(),
                summary,
                args,
                body: CREATE_BODY.into(),
            },
        });
        let mut health = Health::at(
            &ApiEndpoint {
                scheme: "https".into(),
                host: "127.0.0.1".into(),
                port: 16443,
            },
            120,
        );
        health.endpoint_file = Some(super::ARGS_FILE.into());
        steps.push(Step::Node {
            on,
            sudo: false,
            why: format!(
                "wait until MicroK8s' API server answers (its address read from {} on each poll)",
                super::ARGS_FILE
            ),
            step: NodeStep::AwaitHealthy(health),
        });
        Ok(Plan {
            title: format!("{host}: create a microk8s control plane with OIDC"),
            steps,
            notes: vec![],
        })
    }
}

/// `ARGS_FILE STATE_DIR N LINE*N (COUNT WORD...)...` where the commands are `microk8s enable
/// rbac`, then the restarts: backs the args file up (as the commit step does), drops its
/// `--oidc-*` / `--authentication-config` lines, appends LINE..., renames the result into
/// place keeping owner and mode; runs `microk8s enable rbac` only when `--authorization-mode`
/// has no RBAC; then the restarts.
const CREATE_BODY: &str = r#"f=$1 state=$2 n=$3; shift 3
[ -f "$f" ] || { echo "k8soidc: $f is missing after the install" >&2; exit 72; }
umask 077
id=$(date -u +%Y%m%dT%H%M%SZ); i=1
mkdir -p "$state/backups" || exit 72
while [ -e "$state/backups/$id" ]; do i=$((i+1)); id=$(date -u +%Y%m%dT%H%M%SZ)-$i; done
b=$state/backups/$id; mkdir "$b" || exit 72
cp "$f" "$b/1" && printf '1\tpresent\t%s\t%s\t%s\n' "$(stat -c %a "$f")" "$(stat -c %u:%g "$f")" "$f" > "$b/FILES" || exit 72
(cd "$b" && sha256sum FILES 1 > SHA256SUMS) || exit 72
echo "K8SOIDC-BACKUP $id"
t=$f.k8soidc-new
grep -v -E '^[[:space:]]*--(oidc-[a-z-]+|authentication-config)([= ]|$)' "$f" > "$t"
k=0
while [ $k -lt $n ]; do printf '%s\n' "$1" >> "$t"; shift; k=$((k + 1)); done
chown "$(stat -c %u:%g "$f")" "$t" && chmod "$(stat -c %a "$f")" "$t" && sync "$t" && mv -f "$t" "$f" || { rm -f "$t"; exit 74; }
echo K8SOIDC-COMMITTED
c=$1; shift
if ! grep -E '^[[:space:]]*--authorization-mode=' "$f" | tail -n1 | grep -q RBAC; then
  first "$c" "$@" </dev/null >&2 || { echo "K8SOIDC-RESTART-FAILED $?"; exit 79; }
fi
shift "$c""#;

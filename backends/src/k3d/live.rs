//! `patch --k3d NAME`: OIDC on a running k3d cluster, through docker, one server container at
//! a time. What this relies on, and where it is written down:
//! - k3s reads `/etc/rancher/k3s/config.yaml` and then the drop-ins
//!   `/etc/rancher/k3s/config.yaml.d/*.yaml` in alphabetical order when it starts; a key ending
//!   in `+` appends to the list built so far (k3s-io/docs `docs/installation/configuration.md`,
//!   "Configuration File", version gate v1.19.1+k3s1; parser k3s-io/k3s
//!   `pkg/configfilearg/parser.go`). The drop-in is the one `patch --ssh` writes on k3s hosts
//!   ([`crate::k3s::dropin`], `50-oidc.yaml`, `kube-apiserver-arg+`).
//! - "For repeatable arguments ..., the CLI arguments will overwrite all values in the list"
//!   (same page). k3d passes `--k3s-arg` values on the k3s command line of the container, so a
//!   cluster created with any `--kube-apiserver-arg` (k8soidc's own `create --distro k3d`
//!   included) ignores every drop-in `kube-apiserver-arg`: such a cluster is refused, with the
//!   `k3d cluster create` that recreates it. The command line is read with `docker inspect`
//!   (`.Args`: the arguments after the entrypoint).
//! - k3d v5 labels its node containers `k3d.cluster=NAME` and `k3d.role=server|agent|...`
//!   (k3d `pkg/types/types.go`, `LabelClusterName`, `LabelRole`); `docker ps --filter label=`
//!   finds the servers.
//! - A container keeps its filesystem (its writable layer) across `docker restart`; it is lost
//!   only when the container is removed (Docker docs, "Storage": "the data doesn't persist
//!   when that container no longer exists"). `/etc/rancher/k3s` is not a volume of the k3s
//!   image (its `VOLUME`s are `/var/lib/kubelet`, `/var/lib/rancher/k3s`, `/var/lib/cni`,
//!   `/var/log`), so the drop-in survives `docker restart` and `k3d cluster stop/start`, and
//!   is gone when k3d recreates a node (`k3d node delete/create`, a k3d upgrade of the image):
//!   the plan says so.
//! - Health: the server's own `k3s kubectl get --raw /readyz` (docs.k3s.io cluster-access),
//!   then the flags the API server was started with, from the log line k3s prints when it
//!   starts it (`Running kube-apiserver --flag=value ...`, k3s `pkg/daemons/control/server.go`).

use crate::apiserver;
use crate::k3s;
use crate::live::{Guarded, LivePatch};
use crate::{shell, Command, Distribution, OidcSettings, Plan, PlanError, Step};

use super::{create_command, K3d, NODE_DIR};
use crate::{Backend, ClusterRequest};

/// What was read from one server container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveServer {
    /// The container name (`k3d-NAME-server-0`).
    pub container: String,
    /// The k3s command line after the entrypoint (`docker inspect` `.Args`).
    pub args: Vec<String>,
    /// Each of [`live_paths`] with its content, `None` when absent.
    pub files: Vec<(String, Option<String>)>,
}

/// A running k3d cluster.
#[derive(Debug, Clone)]
pub struct LiveCluster {
    /// The k3d cluster name.
    pub name: String,
    /// Seconds each server may take to answer /readyz after its restart.
    pub timeout: u64,
    /// Where `k8soidc create --distro k3d` would stage files (for the recreate command).
    pub staging_dir: String,
}

/// `docker ps -a` for the server containers of cluster `name`, one name a line.
pub fn list_servers(name: &str) -> Command {
    Command::new(
        "docker",
        [
            "ps".to_string(),
            "-a".into(),
            "--filter".into(),
            format!("label=k3d.cluster={name}"),
            "--filter".into(),
            "label=k3d.role=server".into(),
            "--format".into(),
            "{{.Names}}".into(),
        ],
    )
}

/// `docker inspect` printing the container's arguments as a JSON list.
pub fn inspect_args(container: &str) -> Command {
    Command::new(
        "docker",
        ["inspect", "--format", "{{json .Args}}", container],
    )
}

/// `docker exec C cat PATH`: one file (fails with "No such file or directory" when absent).
pub fn read_file(container: &str, path: &str) -> Command {
    Command::new("docker", ["exec", container, "cat", path])
}

/// The files k8soidc writes in a server container: the drop-in, the CA, the
/// AuthenticationConfiguration.
pub fn live_paths() -> Vec<String> {
    vec![
        dropin_path(),
        format!("{NODE_DIR}/{}", apiserver::CA_FILE),
        format!("{NODE_DIR}/{}", apiserver::AUTH_CONFIG_FILE),
    ]
}

fn dropin_path() -> String {
    format!("/etc/rancher/k3s/config.yaml.d/{}", k3s::DROPIN_NAME)
}

fn docker<S: Into<String>>(args: impl IntoIterator<Item = S>) -> Command {
    Command::new("docker", args)
}

fn write(container: &str, path: &str, content: &str, why: String) -> Step {
    Step::Run {
        on: crate::Target::Local,
        command: docker(["exec", "-i", container, "tee", path]),
        sudo: false,
        stdin: Some(content.to_string()),
        why,
    }
}

fn remove(container: &str, paths: &[String], why: String) -> Step {
    let mut args = vec![
        "exec".to_string(),
        container.to_string(),
        "rm".into(),
        "-f".into(),
    ];
    args.extend(paths.iter().cloned());
    Step::run(docker(args), why)
}

/// The bounded wait for /readyz: a poll every 2 s, `timeout / 2` polls at most.
fn wait(container: &str, timeout: u64) -> Step {
    let polls = (timeout / 2).max(1);
    let script = format!(
        "n=0; until docker exec {c} k3s kubectl get --raw /readyz >/dev/null 2>&1; do n=$((n+1)); if [ \"$n\" -ge {polls} ]; then echo {msg} >&2; exit 1; fi; sleep 2; done",
        c = shell::quote(container),
        msg = shell::quote(&format!(
            "the API server in {container} did not answer /readyz within {timeout}s"
        )),
    );
    Step::run(
        Command::new("sh", ["-c".to_string(), script]),
        format!("wait until the API server in {container} answers /readyz (a poll every 2s, up to {timeout}s)"),
    )
}

/// Checks the flags k3s started kube-apiserver with (its last `Running kube-apiserver` log
/// line): each of `flags` present, or (for `--remove`) no OIDC flag left.
fn verify(container: &str, flags: &[String]) -> Step {
    let read = format!(
        "line=$(docker logs {} 2>&1 | grep 'Running kube-apiserver' | tail -n 1)",
        shell::quote(container)
    );
    let script = if flags.is_empty() {
        format!(
            "{read}; case \"$line \" in *' --oidc-'*|*' --authentication-config='*) echo {} >&2; exit 1;; esac",
            shell::quote(&format!("{container}: kube-apiserver still runs with OIDC flags"))
        )
    } else {
        let list: Vec<String> = flags.iter().map(|f| shell::quote(f)).collect();
        format!(
            "{read}; for f in {}; do case \"$line \" in *\" $f \"*|*\" $f\\\"\"*) ;; *) echo \"{container}: kube-apiserver runs without $f: k3s did not apply the drop-in (a k3s without config.yaml.d support, or kube-apiserver args on its command line); recreate the cluster with k8soidc create --distro k3d\" >&2; exit 1;; esac; done",
            list.join(" ")
        )
    };
    Step::run(
        Command::new("sh", ["-c".to_string(), script]),
        if flags.is_empty() {
            format!("check that k3s started the API server in {container} without OIDC flags (its `Running kube-apiserver` log line)")
        } else {
            format!("check that k3s started the API server in {container} with these flags (its `Running kube-apiserver` log line)")
        },
    )
}

/// The plan for a running k3d cluster from what was read of its servers; `None` when every
/// server already has the wanted files. Per server, one at a time: write the files and the
/// drop-in (`docker exec -i ... tee`), `docker restart`, wait for /readyz, check the flags. A
/// failure from a server's first write on puts back, on that server and those before it,
/// the files as read (or deletes them when they were absent), restarts and waits again.
pub fn live_patch(
    cluster: &LiveCluster,
    servers: &[LiveServer],
    s: Option<&OidcSettings>,
) -> Result<Option<LivePatch>, PlanError> {
    let name = &cluster.name;
    if servers.is_empty() {
        return Err(PlanError::patch(
            format!("k3d cluster `{name}`"),
            format!(
                "`docker ps -a` lists no container labelled k3d.cluster={name} and k3d.role=server"
            ),
            "check the name with `k3d cluster list`",
        ));
    }
    for server in servers {
        if let Some(arg) = server
            .args
            .iter()
            .find(|a| a.starts_with("--kube-apiserver-arg"))
        {
            let recreate = match s {
                Some(s) => {
                    let req = ClusterRequest {
                        name: name.clone(),
                        staging_dir: cluster.staging_dir.clone(),
                        extra_args: vec![],
                ..Default::default()
                    };
                    K3d.render(s, &req)?;
                    format!(
                        "recreate it with OIDC: `k3d cluster delete {name}`, then `k8soidc create --distro k3d --name {name}` with these settings, which stages the files and runs `{}` (add your other `k3d cluster create` flags after `--`)",
                        create_command(s, &req)?.to_shell()
                    )
                }
                None => format!("recreate it without these flags: `k3d cluster delete {name}`, then `k3d cluster create {name}` with your other flags"),
            };
            return Err(PlanError::patch(
                format!("k3d cluster `{name}`"),
                format!(
                    "its server `{}` runs k3s with `{}` on the command line (a `--k3s-arg` at creation); k3s lets command-line list values replace those of its config files, so a drop-in cannot change the API server's flags",
                    crate::escape(&server.container),
                    crate::escape(arg)
                ),
                recreate,
            ));
        }
    }
    type Wanted = Vec<(String, Option<String>)>;
    let (wanted, flags, notes): (Wanted, Vec<String>, Vec<String>) = match s {
        Some(s) => {
            let mode = s.mode()?;
            let req = ClusterRequest {
                name: name.clone(),
                staging_dir: cluster.staging_dir.clone(),
                extra_args: vec![],
                ..Default::default()
            };
            let notes = K3d.render(s, &req)?.summary();
            let files = apiserver::node_files(s, mode, NODE_DIR);
            let wanted = live_paths()
                .into_iter()
                .map(|p| {
                    let content = if p == dropin_path() {
                        Some(k3s::dropin(s, Distribution::K3s))
                    } else {
                        files
                            .iter()
                            .find(|f| f.path == p)
                            .map(|f| Ok(f.content.clone()))
                    };
                    content.transpose().map(|c| (p, c))
                })
                .collect::<Result<Vec<_>, PlanError>>()?;
            let flags = apiserver::args(s, mode, NODE_DIR)
                .iter()
                .map(apiserver::Arg::flag)
                .collect();
            (wanted, flags, notes)
        }
        None => (
            live_paths().into_iter().map(|p| (p, None)).collect(),
            vec![],
            vec![],
        ),
    };
    // Setting: a file the settings do not need (`None`) is left as it is.
    let setting = s.is_some();
    let is_wanted = |server: &LiveServer| {
        wanted.iter().all(|(p, want)| {
            let have = server
                .files
                .iter()
                .find(|(q, _)| q == p)
                .and_then(|(_, c)| c.as_ref());
            (setting && want.is_none()) || have == want.as_ref()
        })
    };
    if servers.iter().all(is_wanted) {
        return Ok(None);
    }
    let mut steps = Vec::new();
    let mut restore = Vec::new();
    let mut change = String::new();
    for server in servers {
        let c = &server.container;
        let before = |p: &str| {
            server
                .files
                .iter()
                .find(|(q, _)| q == p)
                .and_then(|(_, c)| c.clone())
        };
        for (p, want) in &wanted {
            if setting && want.is_none() {
                continue;
            }
            change.push_str(&crate::unified_diff(
                &format!("{c}{p}"),
                &before(p).unwrap_or_default(),
                want.as_deref().unwrap_or_default(),
            ));
        }
        if s.is_some() {
            steps.push(Step::run(
                docker([
                    "exec",
                    c,
                    "mkdir",
                    "-p",
                    "/etc/rancher/k3s/config.yaml.d",
                    NODE_DIR,
                ]),
                format!("{c}: make the drop-in and file directories"),
            ));
        }
        let from = steps.len();
        // Files first, the drop-in that names them last.
        let mut absent = Vec::new();
        for (p, want) in wanted.iter().rev() {
            match want {
                Some(content) => steps.push(write(
                    c,
                    p,
                    content,
                    format!("{c}: write {p} (k3s reads it when it starts)"),
                )),
                None if p == &dropin_path() => steps.push(remove(
                    c,
                    std::slice::from_ref(p),
                    format!("{c}: delete k8soidc's drop-in"),
                )),
                None => absent.push(p.clone()),
            }
        }
        steps.push(Step::run(
            docker(["restart", c.as_str()]),
            format!(
                "{c}: restart, so k3s reads its config files again (the container keeps its files)"
            ),
        ));
        steps.push(wait(c, cluster.timeout));
        steps.push(verify(c, &flags));
        if s.is_none() && !absent.is_empty() {
            steps.push(remove(
                c,
                &absent,
                format!("{c}: delete the files k8soidc placed (no flag names them any more)"),
            ));
        }
        let mut gone = Vec::new();
        for (p, _) in &wanted {
            match before(p) {
                Some(old) => restore.push(Guarded {
                    from,
                    step: write(c, p, &old, format!("{c}: put back {p} as it was")),
                }),
                None => gone.push(p.clone()),
            }
        }
        if !gone.is_empty() {
            restore.push(Guarded {
                from,
                step: remove(
                    c,
                    &gone,
                    format!("{c}: delete the files that were not there"),
                ),
            });
        }
        restore.push(Guarded {
            from,
            step: Step::run(
                docker(["restart", c.as_str()]),
                format!("{c}: restart with the previous files"),
            ),
        });
        restore.push(Guarded {
            from,
            step: wait(c, cluster.timeout),
        });
    }
    let mut notes = notes;
    notes.push("the files live in each server container's own filesystem: they survive `docker restart` and `k3d cluster stop/start`, not a re-created node (`k3d node delete/create`, a new k3s image); run this again then".into());
    Ok(Some(LivePatch {
        plan: Plan {
            title: format!(
                "{} OIDC on k3d cluster `{name}` ({} server{}, one at a time)",
                if s.is_some() { "set" } else { "remove" },
                servers.len(),
                if servers.len() == 1 { "" } else { "s" }
            ),
            steps,
            notes,
        },
        change,
        restore,
    }))
}

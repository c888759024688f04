//! Charmed Kubernetes (Juju): the `kubernetes-control-plane` charm passes its
//! `api-extra-args` option ("Space separated list of flags and key=value pairs", keys without
//! dashes) to kube-apiserver; there are no dedicated OIDC options
//! (charmed-kubernetes/charm-kubernetes-control-plane `charmcraft.yaml`). `juju config`
//! applies to every unit. The charm was called `kubernetes-master` before 1.24.
//!
//! How the charm reads the option (charmed-kubernetes/charm-lib-kubernetes-snaps
//! `charms/kubernetes_snaps.py`, `parse_extra_args`, `configure_kubernetes_service`):
//! - it splits on white space and partitions each word on the first `=` into a **dict**, so a
//!   value cannot hold white space and a repeated key keeps only its last value: one
//!   `oidc-required-claim` at most (flags mode refuses more; config mode puts them in a file);
//! - it writes each pair as `--key="value"` into `snap set kube-apiserver args=...`, so the
//!   snap's service script parses the values with a shell: `"`, `$`, `` ` `` and `\` are
//!   refused (inference from the added double quotes).
//!
//! Files (CA, AuthenticationConfiguration) go to [`NODE_DIR`] on every control-plane unit, next
//! to the charm's own certificates in `/root/cdk`. Juju has no command that copies a file to
//! every unit of an application (`juju scp` takes one unit), but `juju exec --application`
//! runs one shell command as root on every unit of the application, and a single argument is
//! passed to the unit's shell unchanged (juju `cmd/juju/action/exec.go`). So each file travels
//! base64-encoded inside that command (a CA and an AuthenticationConfiguration are public;
//! there is no secret in them), which bounds its size by the argument limit.
//!
//! The API server exits when `--oidc-ca-file` or `--authentication-config` names a missing
//! file, so a new deployment first gets only the flags that need no file (in the overlay),
//! then `juju wait-for` (Juju 3) the control plane, then the files, then the remaining flags.
//! Units added later need the files too: run `k8soidc patch` again after `juju add-unit`.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Serialize;

use crate::apiserver;
use crate::{
    rendered_values, Backend, ClusterRequest, Command, Distribution, Mode, OidcSettings, Plan,
    PlanError, Rendering, Step, Target, K8SOIDC,
};

/// Where the files go on each control-plane unit.
pub const NODE_DIR: &str = "/root/cdk/oidc";
/// The control-plane application of the `charmed-kubernetes` bundle.
pub const APP: &str = "kubernetes-control-plane";
/// The overlay bundle written to the staging directory by `create`.
pub const OVERLAY_FILE: &str = "oidc-overlay.yaml";
/// Key prefixes of `api-extra-args` that k8soidc owns (removed unless set again).
pub const MANAGED_PREFIXES: [&str; 2] = ["oidc-", "authentication-config"];
/// Longest `juju exec` command line we produce (Linux caps one argument at 128 KiB).
const MAX_SCRIPT: usize = 100_000;

/// The charmed backend.
#[derive(Debug, Clone, Copy)]
pub struct Charmed;

fn check(s: &OidcSettings) -> Result<Mode, PlanError> {
    let mode = s.mode()?;
    if mode != Mode::Flags {
        return Ok(mode);
    }
    let fix = "choose a value without it, or use `--auth-mode config` (Kubernetes 1.30+), which puts the settings in a file";
    for (field, value) in rendered_values(s) {
        if value.chars().any(char::is_whitespace) {
            return Err(PlanError::unrepresentable(
                Distribution::Charmed,
                field,
                &value,
                "the charm splits `api-extra-args` on white space",
                fix,
            ));
        }
        if let Some(c) = value.chars().find(|c| matches!(c, '"' | '$' | '`' | '\\')) {
            return Err(PlanError::unrepresentable(
                Distribution::Charmed,
                field,
                &value,
                format!("the charm hands each value to the kube-apiserver snap as `--key=\"value\"`, where a shell reads `{c}`"),
                fix,
            ));
        }
    }
    crate::refuse_repeated_claims(Distribution::Charmed, s, "the charm parses `api-extra-args` into a dict, so only the last `oidc-required-claim` would survive", "give one --required-claim, or use `--auth-mode config` (Kubernetes 1.30+), which carries any number")?;
    Ok(mode)
}

/// The `api-extra-args` pairs (`key`, `value`), keys without dashes, in a stable order.
pub fn pairs(s: &OidcSettings, mode: Mode) -> Vec<(String, String)> {
    apiserver::args(s, mode, NODE_DIR)
        .into_iter()
        .map(|a| (a.name, a.value))
        .collect()
}

/// The value of `api-extra-args` holding just the OIDC flags.
pub fn api_extra_args(s: &OidcSettings) -> Result<String, PlanError> {
    let mode = check(s)?;
    Ok(join(&pairs(s, mode)))
}

fn join(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Serialize)]
struct Overlay<'a> {
    applications: BTreeMap<&'static str, Application<'a>>,
}

#[derive(Serialize)]
struct Application<'a> {
    options: BTreeMap<&'static str, &'a str>,
}

/// An overlay bundle for `juju deploy charmed-kubernetes --overlay FILE` setting `api-extra-args`.
pub fn overlay(api_extra_args: &str) -> String {
    let overlay = Overlay {
        applications: BTreeMap::from([(
            APP,
            Application {
                options: BTreeMap::from([("api-extra-args", api_extra_args)]),
            },
        )]),
    };
    crate::yamlout::to_yaml(&overlay)
}

/// `-m MODEL` from the arguments for `juju deploy`, to pass to the later commands.
fn model_args(extra: &[String]) -> Vec<String> {
    let mut model = Vec::new();
    let mut args = extra.iter();
    while let Some(a) = args.next() {
        let value = match a.as_str() {
            "-m" | "--model" => args.next().cloned(),
            _ => a
                .strip_prefix("--model=")
                .or_else(|| a.strip_prefix("-m="))
                .map(String::from),
        };
        if let Some(v) = value {
            model = vec!["-m".to_string(), v];
        }
    }
    model
}

fn juju(words: &[&str], model: &[String], rest: &[&str]) -> Command {
    Command::new(
        "juju",
        words
            .iter()
            .map(|w| w.to_string())
            .chain(model.iter().cloned())
            .chain(rest.iter().map(|w| w.to_string())),
    )
}

/// The `juju exec` command that writes one file on every control-plane unit.
pub fn place_file_command(
    file: &apiserver::NodeFile,
    model: &[String],
) -> Result<Command, PlanError> {
    let encoded = base64::engine::general_purpose::STANDARD.encode(&file.content);
    let path = &file.path;
    let script = format!(
        "set -e; umask 022; mkdir -p {NODE_DIR}; echo {encoded} | base64 -d > {path}.k8soidc-new; mv -f {path}.k8soidc-new {path}"
    );
    if script.len() > MAX_SCRIPT {
        return Err(PlanError::unrepresentable(
            Distribution::Charmed,
            "--ca-file",
            format!("{} bytes", file.content.len()),
            "the file travels inside one `juju exec` argument, and Linux caps an argument at 128 KiB",
            "give only the identity provider's CA certificate, not a whole trust store",
        ));
    }
    Ok(juju(
        &["exec"],
        model,
        &["--application", APP, "--", &script],
    ))
}

fn unit_note(app: &str) -> String {
    format!(
        "the files are written on the `{app}` units that exist now; after `juju add-unit {app}` run this again, or the new unit's API server cannot start"
    )
}

/// A running Charmed Kubernetes: the model (`-m`; none: juju's current model), the
/// control-plane application and how long to wait for its units.
#[derive(Debug, Clone)]
pub struct LiveApp {
    /// `-m MODEL`, when given.
    pub model: Option<String>,
    /// The control-plane application, [`APP`] unless told otherwise (`kubernetes-master`
    /// before 1.24).
    pub application: String,
    /// Seconds `juju wait-for` may wait for the units to settle.
    pub timeout: u64,
}

impl LiveApp {
    fn model(&self) -> Vec<String> {
        self.model
            .iter()
            .flat_map(|m| ["-m".to_string(), m.clone()])
            .collect()
    }

    /// `juju config [-m M] APP api-extra-args`: the current value.
    pub fn get(&self) -> Command {
        juju(
            &["config"],
            &self.model(),
            &[&self.application, "api-extra-args"],
        )
    }

    /// Sets `api-extra-args` to `value` (`--reset`, the charm's default, when empty).
    fn set(&self, value: &str) -> Command {
        if value.is_empty() {
            juju(
                &["config"],
                &self.model(),
                &[&self.application, "--reset", "api-extra-args"],
            )
        } else {
            juju(
                &["config"],
                &self.model(),
                &[&self.application, &format!("api-extra-args={value}")],
            )
        }
    }

    /// Waits until every unit is `active/idle`. The application query DSL names a unit's
    /// statuses `workload-status` and `agent-status` (juju docs "juju wait-for unit": query
    /// `workload-status=="active"`; "juju wait-for application": `forEach(units, unit => ...)`);
    /// `--timeout` is a Go duration (default 10m0s).
    fn wait(&self) -> Command {
        juju(
            &["wait-for", "application"],
            &self.model(),
            &[
                &self.application,
                "--query",
                r#"forEach(units, unit => unit.workload-status == "active" && unit.agent-status == "idle")"#,
                "--timeout",
                &format!("{}s", self.timeout),
            ],
        )
    }
}

/// `patch --juju`: the plan for a running deployment, from what `juju config APP
/// api-extra-args` printed (`current`). `None` when the option already is as wanted. Setting:
/// the files go to every unit first (the API server exits when a named file is missing), then
/// the merged option (the user's other flags kept, k8soidc's `oidc-*`/`authentication-config`
/// replaced), then the wait until every unit is `active/idle`. Removing: the option without
/// k8soidc's keys, the wait, then the files. A failure from the `juju config` step on puts the
/// previous value back and waits again.
pub fn live_patch(
    app: &LiveApp,
    current: &str,
    s: Option<&OidcSettings>,
) -> Result<Option<crate::live::LivePatch>, PlanError> {
    use crate::live::{Guarded, LivePatch};
    let current = current.trim_end_matches(['\n', '\r']);
    let managed: Vec<String> = MANAGED_PREFIXES.iter().map(|p| p.to_string()).collect();
    let (set, files, notes) = match s {
        Some(s) => {
            let mode = check(s)?;
            let files = apiserver::node_files(s, mode, NODE_DIR);
            let mut notes = Charmed
                .render(
                    s,
                    &ClusterRequest {
                        name: app.application.clone(),
                        staging_dir: String::new(),
                        extra_args: vec![],
                        ..Default::default()
                    },
                )?
                .summary();
            if !files.is_empty() {
                notes.push(unit_note(&app.application));
            }
            (pairs(s, mode), files, notes)
        }
        None => (vec![], vec![], vec![]),
    };
    let merged = merge_extra_args(current, &set, &managed)?;
    if merged == current.split_whitespace().collect::<Vec<_>>().join(" ") {
        return Ok(None);
    }
    let model = app.model();
    let name = &app.application;
    let mut steps = Vec::new();
    for file in &files {
        let mut cmd = place_file_command(file, &model)?;
        if let Some(i) = cmd.args.iter().position(|a| a == APP) {
            cmd.args[i] = name.clone();
        }
        steps.push(Step::run(
            cmd,
            format!(
                "write {} on every `{name}` unit (as root) before the API server is told to read it",
                file.path
            ),
        ));
    }
    let set_at = steps.len();
    steps.push(Step::run(
        app.set(&merged),
        format!("set `{name}`'s `api-extra-args`: the value read, with k8soidc's flags {}; the charm restarts kube-apiserver on every unit", if s.is_some() { "merged in" } else { "taken out" }),
    ));
    steps.push(Step::run(
        app.wait(),
        format!(
            "wait until every `{name}` unit is active/idle again (up to {}s)",
            app.timeout
        ),
    ));
    if s.is_none() {
        let script = format!(
            "rm -f {NODE_DIR}/{} {NODE_DIR}/{}",
            apiserver::CA_FILE,
            apiserver::AUTH_CONFIG_FILE
        );
        steps.push(Step::run(
            juju(&["exec"], &model, &["--application", name, "--", &script]),
            format!("delete the files k8soidc placed on every `{name}` unit (no flag names them any more)"),
        ));
    }
    let restore = vec![
        Step::run(
            app.set(current),
            format!("put back `{name}`'s `api-extra-args` as it was read"),
        ),
        Step::run(
            app.wait(),
            format!("wait until every `{name}` unit is active/idle again"),
        ),
    ]
    .into_iter()
    .map(|step| Guarded { from: set_at, step })
    .collect();
    Ok(Some(LivePatch {
        plan: Plan {
            title: format!(
                "{} OIDC on Charmed Kubernetes (`{name}`{})",
                if s.is_some() { "set" } else { "remove" },
                app.model
                    .as_ref()
                    .map(|m| format!(", model `{m}`"))
                    .unwrap_or_default()
            ),
            steps,
            notes,
        },
        change: crate::unified_diff(
            &format!("juju/{name}/api-extra-args"),
            &crate::redact(&words_as_lines(current)),
            &crate::redact(&words_as_lines(&merged)),
        ),
        restore,
    }))
}

/// One flag a line, so the diff of the option shows which flags change.
fn words_as_lines(value: &str) -> String {
    value.split_whitespace().map(|w| format!("{w}\n")).collect()
}

impl Backend for Charmed {
    fn distribution(&self) -> Distribution {
        Distribution::Charmed
    }

    fn required_programs(&self) -> &'static [(&'static str, &'static str)] {
        &[("juju", "install the Juju 3 client: `sudo snap install juju --classic` (add `--channel 3/stable` where the default is Juju 4, which has no `juju wait-for`)")]
    }

    fn render(&self, s: &OidcSettings, req: &ClusterRequest) -> Result<Rendering, PlanError> {
        let mode = check(s)?;
        let mut r = Rendering::new(Distribution::Charmed, s)?;
        let files = apiserver::node_files(s, mode, NODE_DIR);
        let mut commands = String::new();
        for file in &files {
            r.push(
                format!("file for every `{APP}` unit"),
                Some(file.path.clone()),
                "text",
                file.content.clone(),
            );
            commands.push_str(&format!(
                "# write {} on every unit\n{}\n",
                file.path,
                place_file_command(file, &[])?
            ));
        }
        let value = join(&pairs(s, mode));
        commands.push_str(&format!(
            "# replaces the whole option: add any flags `juju config {APP} api-extra-args` shows today (`k8soidc patch --juju` merges them for you)\n{}\n",
            juju(&["config"], &[], &[APP, &format!("api-extra-args={value}")])
        ));
        r.push(
            "commands for an existing deployment",
            None,
            "shell",
            commands,
        );
        if files.is_empty() {
            r.push(
                "or, for a new deployment, an overlay for `juju deploy charmed-kubernetes --overlay FILE`",
                Some(format!("{}/{OVERLAY_FILE}", req.staging_dir)),
                "yaml",
                overlay(&value),
            );
        }
        Ok(r)
    }

    fn create_plan(&self, s: &OidcSettings, req: &ClusterRequest) -> Result<Plan, PlanError> {
        let mode = check(s)?;
        let model = model_args(&req.extra_args);
        let files = apiserver::node_files(s, mode, NODE_DIR);
        let mut notes = self.render(s, req)?.summary();
        // Flags that name a file wait until the file is on every unit.
        let early: Vec<(String, String)> = pairs(s, mode)
            .into_iter()
            .filter(|(_, v)| !v.starts_with(NODE_DIR))
            .collect();
        let mut steps = Vec::new();
        let mut deploy = vec!["deploy".to_string(), "charmed-kubernetes".into()];
        if !early.is_empty() {
            let path = format!("{}/{OVERLAY_FILE}", req.staging_dir);
            steps.push(Step::WriteFile {
                on: Target::Local,
                path: path.clone(),
                before: None,
                after: overlay(&join(&early)),
                mode: 0o644,
                why: if files.is_empty() {
                    format!("stage an overlay that sets `{APP}`'s `api-extra-args` to the OIDC flags")
                } else {
                    "stage an overlay with the OIDC flags that need no file (the API server exits if a named file is missing)".to_string()
                },
            });
            deploy.push("--overlay".into());
            deploy.push(path);
        }
        deploy.extend(req.extra_args.iter().cloned());
        steps.push(Step::run(
            Command::new("juju", deploy),
            format!("deploy the charmed-kubernetes bundle (`{}`)", req.name),
        ));
        if !files.is_empty() {
            steps.push(Step::run(
                juju(&["wait-for", "application"], &model, &[APP, "--timeout", "60m"]),
                format!("wait until every `{APP}` unit exists and is active, so the files reach all of them"),
            ));
            let mut patch = vec!["patch".to_string(), "--juju".into()];
            if let [_, m] = model.as_slice() {
                patch.extend(["--model".to_string(), m.clone()]);
            }
            patch.extend(["--skip-check".to_string(), "--yes".into()]);
            patch.extend(s.to_flags());
            steps.push(Step::run(
                Command::new(K8SOIDC, patch),
                format!("place the files on every `{APP}` unit, then merge the remaining OIDC flags into `api-extra-args` (keeping the others) and wait for the units, with `k8soidc patch --juju`"),
            ));
            notes.push(unit_note(APP));
        }
        Ok(Plan {
            title: format!("deploy Charmed Kubernetes `{}` with OIDC", req.name),
            steps,
            notes,
        })
    }
}

/// Merges `key=value` pairs into a space-separated `api-extra-args` value.
///
/// `current` is what `juju config kubernetes-control-plane api-extra-args` prints (may be
/// empty or end with a newline). Keys in `set` are replaced where they first appear (later
/// repeats are dropped) or appended in `set` order; other keys starting with one of
/// `remove_prefixes` are dropped; every other word is kept as is, in order. Words are joined
/// with one space, so the result is deterministic and a second merge changes nothing.
pub fn merge_extra_args(
    current: &str,
    set: &[(String, String)],
    remove_prefixes: &[String],
) -> Result<String, PlanError> {
    if let Some((k, v)) = set
        .iter()
        .find(|(k, v)| k.is_empty() || format!("{k}{v}").chars().any(char::is_whitespace))
    {
        return Err(PlanError::patch(
            "`api-extra-args`",
            format!(
                "`{}` cannot be one word",
                crate::escape(&format!("{k}={v}"))
            ),
            "remove the white space; the charm splits the option on it",
        ));
    }
    let key = |word: &str| word.split_once('=').map_or(word, |(k, _)| k).to_string();
    let mut done: Vec<&str> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    for word in current.split_whitespace() {
        let k = key(word);
        if let Some((sk, sv)) = set.iter().find(|(sk, _)| *sk == k) {
            if !done.contains(&sk.as_str()) {
                words.push(format!("{sk}={sv}"));
                done.push(sk);
            }
        } else if !remove_prefixes
            .iter()
            .any(|p| k.trim_start_matches('-').starts_with(p.as_str()))
        {
            words.push(word.to_string());
        }
    }
    for (k, v) in set {
        if !done.contains(&k.as_str()) {
            words.push(format!("{k}={v}"));
            done.push(k);
        }
    }
    Ok(words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn config_settings() -> OidcSettings {
        with(|i| {
            i.auth_mode = Some("config".into());
            i.kubernetes_version = Some("1.31".into());
            i.required_claim = vec!["hd=example.com".into(), "aud=x".into()];
        })
    }

    fn strings(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn managed() -> Vec<String> {
        MANAGED_PREFIXES.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn exact_api_extra_args() {
        assert_eq!(
            api_extra_args(&settings()).unwrap(),
            "oidc-issuer-url=https://idp.example.com oidc-client-id=kubernetes oidc-username-claim=email oidc-username-prefix=oidc: oidc-groups-claim=groups oidc-groups-prefix=oidc:"
        );
        let mut s = with(|i| i.required_claim = vec!["hd=example.com".into()]);
        s.ca = Some(ca());
        assert_eq!(
            api_extra_args(&s).unwrap(),
            "oidc-issuer-url=https://idp.example.com oidc-client-id=kubernetes oidc-username-claim=email oidc-username-prefix=oidc: oidc-groups-claim=groups oidc-groups-prefix=oidc: oidc-ca-file=/root/cdk/oidc/oidc-ca.pem oidc-required-claim=hd=example.com"
        );
        assert_eq!(
            api_extra_args(&config_settings()).unwrap(),
            "authentication-config=/root/cdk/oidc/authentication-config.yaml"
        );
    }

    #[test]
    fn render_shows_the_juju_config_command() {
        let text = Charmed.render(&settings(), &request()).unwrap().to_string();
        assert!(text.contains("\njuju config kubernetes-control-plane 'api-extra-args=oidc-issuer-url=https://idp.example.com oidc-client-id=kubernetes oidc-username-claim=email oidc-username-prefix=oidc: oidc-groups-claim=groups oidc-groups-prefix=oidc:'\n"), "{text}");
        assert!(
            text.contains("# or, for a new deployment, an overlay for `juju deploy charmed-kubernetes --overlay FILE` (/home/me/.local/share/k8soidc/oidc/oidc-overlay.yaml)\napplications:\n  kubernetes-control-plane:\n    options:\n"),
            "{text}"
        );
    }

    #[test]
    fn refuses_white_space_and_shell_characters() {
        let s = with(|i| i.required_claim = vec!["org=Acme Corp".into()]);
        let e = api_extra_args(&s).unwrap_err().to_string();
        assert_eq!(e, "charmed cannot carry --required-claim `org=Acme Corp`: the charm splits `api-extra-args` on white space; choose a value without it, or use `--auth-mode config` (Kubernetes 1.30+), which puts the settings in a file");
        let s = with(|i| i.groups_claim = Some("a$b".into()));
        let e = Charmed.render(&s, &request()).unwrap_err().to_string();
        assert!(e.starts_with("charmed cannot carry --groups-claim `a$b`: the charm hands each value to the kube-apiserver snap as `--key=\"value\"`, where a shell reads `$`"), "{e}");
        // In config mode the values live in the file, not in the option.
        let mut c = config_settings();
        c.groups_claim = Some("a b$".into());
        assert!(api_extra_args(&c).is_ok());
    }

    #[test]
    fn refuses_two_required_claims_in_flags_mode_only() {
        let s = with(|i| i.required_claim = vec!["hd=example.com".into(), "aud=x".into()]);
        let e = Charmed.create_plan(&s, &request()).unwrap_err().to_string();
        assert_eq!(e, "charmed cannot carry --required-claim `hd=example.com aud=x`: the charm parses `api-extra-args` into a dict, so only the last `oidc-required-claim` would survive; give one --required-claim, or use `--auth-mode config` (Kubernetes 1.30+), which carries any number");
        let plan = Charmed.create_plan(&config_settings(), &request()).unwrap();
        assert!(plan
            .to_string()
            .contains("+ k8soidc patch --juju --skip-check --yes"));
    }

    #[test]
    fn overlay_parses() {
        let text = overlay("oidc-issuer-url=https://idp.example.com oidc-username-prefix=oidc:");
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
        assert_eq!(
            v["applications"]["kubernetes-control-plane"]["options"]["api-extra-args"].as_str(),
            Some("oidc-issuer-url=https://idp.example.com oidc-username-prefix=oidc:")
        );
    }

    #[test]
    fn merge_replaces_removes_and_keeps_order() {
        let set = strings(&[("oidc-issuer-url", "https://new"), ("oidc-client-id", "k")]);
        for (current, expected) in [
            ("", "oidc-issuer-url=https://new oidc-client-id=k"),
            ("\n", "oidc-issuer-url=https://new oidc-client-id=k"),
            (
                "profiling=true oidc-client-id=old runtime-config=batch/v2alpha1=true\n",
                "profiling=true oidc-client-id=k runtime-config=batch/v2alpha1=true oidc-issuer-url=https://new",
            ),
            (
                "oidc-ca-file=/x  authentication-config=/y audit-log-maxage=30 oidc-required-claim=a=b v",
                "audit-log-maxage=30 v oidc-issuer-url=https://new oidc-client-id=k",
            ),
            (
                "oidc-client-id=a oidc-client-id=b x=1",
                "oidc-client-id=k x=1 oidc-issuer-url=https://new",
            ),
        ] {
            let merged = merge_extra_args(current, &set, &managed()).unwrap();
            assert_eq!(merged, expected, "{current:?}");
            assert_eq!(merge_extra_args(&merged, &set, &managed()).unwrap(), merged);
            assert_eq!(
                merge_extra_args(&format!("{merged}\n"), &set, &managed()).unwrap(),
                merged
            );
        }
        // Without prefixes to remove, foreign oidc keys stay.
        assert_eq!(
            merge_extra_args("oidc-ca-file=/x", &set, &[]).unwrap(),
            "oidc-ca-file=/x oidc-issuer-url=https://new oidc-client-id=k"
        );
    }

    #[test]
    fn merge_switches_modes() {
        let flags = pairs(&settings(), Mode::Flags);
        let config_mode = config_settings().mode().unwrap();
        let config = pairs(&config_settings(), config_mode);
        let start = "profiling=false";
        let a = merge_extra_args(start, &flags, &managed()).unwrap();
        let b = merge_extra_args(&a, &config, &managed()).unwrap();
        assert_eq!(
            b,
            "profiling=false authentication-config=/root/cdk/oidc/authentication-config.yaml"
        );
        let c = merge_extra_args(&b, &flags, &managed()).unwrap();
        assert_eq!(c, a);
    }

    #[test]
    fn merge_refuses_values_it_cannot_write() {
        let e = merge_extra_args("", &strings(&[("oidc-x", "a b")]), &[])
            .unwrap_err()
            .to_string();
        assert_eq!(e, "cannot patch `api-extra-args`: `oidc-x=a b` cannot be one word; remove the white space; the charm splits the option on it");
    }

    #[test]
    fn create_without_files_deploys_with_the_overlay() {
        let plan = Charmed.create_plan(&settings(), &request()).unwrap();
        assert!(plan.steps.iter().all(|s| !s.why().is_empty()));
        assert_eq!(plan.steps.len(), 2, "{plan}");
        let Step::WriteFile { path, after, .. } = &plan.steps[0] else {
            panic!("{plan}")
        };
        assert_eq!(path, "/home/me/.local/share/k8soidc/oidc/oidc-overlay.yaml");
        assert_eq!(after, &overlay(&api_extra_args(&settings()).unwrap()));
        let Step::Run { command, .. } = &plan.steps[1] else {
            panic!("{plan}")
        };
        assert_eq!(
            command.to_shell(),
            "juju deploy charmed-kubernetes --overlay /home/me/.local/share/k8soidc/oidc/oidc-overlay.yaml"
        );
    }

    #[test]
    fn create_with_a_ca_places_it_before_naming_it() {
        let mut s = settings();
        s.ca = Some(ca());
        let mut req = request();
        req.extra_args = vec!["--model=k8s".into(), "--trust".into()];
        let plan = Charmed.create_plan(&s, &req).unwrap();
        let text = plan.to_string();
        let steps = text.split_once("\n\n").unwrap().1;
        assert_eq!(
            steps,
            format!(
                "# stage an overlay with the OIDC flags that need no file (the API server exits if a named file is missing)\n\
                 + write /home/me/.local/share/k8soidc/oidc/oidc-overlay.yaml (mode 0644, new file):\n\
                 \x20   applications:\n\
                 \x20     kubernetes-control-plane:\n\
                 \x20       options:\n\
                 \x20         api-extra-args: 'oidc-issuer-url=https://idp.example.com oidc-client-id=kubernetes oidc-username-claim=email oidc-username-prefix=oidc: oidc-groups-claim=groups oidc-groups-prefix=oidc:'\n\
                 \n\
                 # deploy the charmed-kubernetes bundle (`oidc`)\n\
                 + juju deploy charmed-kubernetes --overlay /home/me/.local/share/k8soidc/oidc/oidc-overlay.yaml --model=k8s --trust\n\
                 \n\
                 # wait until every `kubernetes-control-plane` unit exists and is active, so the files reach all of them\n\
                 + juju wait-for application -m k8s kubernetes-control-plane --timeout 60m\n\
                 \n\
                 # place the files on every `kubernetes-control-plane` unit, then merge the remaining OIDC flags into `api-extra-args` (keeping the others) and wait for the units, with `k8soidc patch --juju`\n\
                 + k8soidc patch --juju --model k8s --skip-check --yes --config /dev/null --issuer-url https://idp.example.com --client-id kubernetes --username-claim email --username-prefix oidc: --groups-claim groups --groups-prefix oidc: --ca-file /home/me/idp-ca.pem\n"
            )
        );
        assert!(text.contains("after `juju add-unit kubernetes-control-plane` run this again"));
    }

    fn live_app() -> LiveApp {
        LiveApp {
            model: Some("k8s".into()),
            application: APP.into(),
            timeout: 600,
        }
    }

    #[test]
    fn live_patch_merges_into_what_was_read_and_restores_it() {
        let live = live_patch(
            &live_app(),
            "oidc-issuer-url=https://old profiling=true\n",
            Some(&config_settings()),
        )
        .unwrap()
        .unwrap();
        assert_eq!(live.plan.steps.len(), 3, "{}", live.plan);
        let Step::Run { command, .. } = &live.plan.steps[0] else {
            panic!("{}", live.plan)
        };
        // The file content round-trips through the base64 in the command.
        let script = command.args.last().unwrap();
        let encoded = script.split(' ').find(|w| w.len() > 40).unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .unwrap();
        let mode = config_settings().mode().unwrap();
        assert_eq!(
            String::from_utf8(decoded).unwrap(),
            apiserver::node_files(&config_settings(), mode, NODE_DIR)[0].content
        );
        let shell: Vec<String> = live.plan.steps[1..]
            .iter()
            .map(|s| match s {
                Step::Run { command, .. } => command.to_shell(),
                _ => panic!("{s}"),
            })
            .collect();
        assert_eq!(
            shell,
            [
                "juju config -m k8s kubernetes-control-plane 'api-extra-args=profiling=true authentication-config=/root/cdk/oidc/authentication-config.yaml'",
                r#"juju wait-for application -m k8s kubernetes-control-plane --query 'forEach(units, unit => unit.workload-status == "active" && unit.agent-status == "idle")' --timeout 600s"#,
            ]
        );
        assert!(live.restore_after(0).steps.is_empty());
        let restore = live.restore_after(1);
        let Step::Run { command, .. } = &restore.steps[0] else {
            panic!("{restore}")
        };
        assert_eq!(
            command.to_shell(),
            "juju config -m k8s kubernetes-control-plane 'api-extra-args=oidc-issuer-url=https://old profiling=true'"
        );
        // Already so: nothing to do. Removing takes out only k8soidc's keys.
        let merged =
            "profiling=true authentication-config=/root/cdk/oidc/authentication-config.yaml";
        assert!(live_patch(&live_app(), merged, Some(&config_settings()))
            .unwrap()
            .is_none());
        let removed = live_patch(&live_app(), merged, None).unwrap().unwrap();
        let Step::Run { command, .. } = &removed.plan.steps[0] else {
            panic!("{}", removed.plan)
        };
        assert_eq!(
            command.to_shell(),
            "juju config -m k8s kubernetes-control-plane api-extra-args=profiling=true"
        );
        let empty = live_patch(&live_app(), "oidc-client-id=x", None)
            .unwrap()
            .unwrap();
        let Step::Run { command, .. } = &empty.plan.steps[0] else {
            panic!("{}", empty.plan)
        };
        assert_eq!(
            command.to_shell(),
            "juju config -m k8s kubernetes-control-plane --reset api-extra-args"
        );
    }

    #[test]
    fn refuses_a_ca_too_large_for_one_argument() {
        let mut s = settings();
        let block = "-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n";
        s.ca = Some(crate::CaBundle {
            local_path: "/etc/ssl/certs/ca-certificates.crt".into(),
            pem: block.repeat(2000),
        });
        let e = live_patch(&live_app(), "", Some(&s))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("charmed cannot carry --ca-file `128000 bytes`: the file travels inside one `juju exec` argument"), "{e}");
    }
}

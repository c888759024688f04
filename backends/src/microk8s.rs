//! MicroK8s: the API server (inside `kubelite` since 1.21) reads its flags from the args file
//! `/var/snap/microk8s/current/args/kube-apiserver`, one flag a line; a change takes effect
//! after `microk8s stop` and `microk8s start` (canonical.com/microk8s/docs/configuring-services).
//! Files the flags point at (IdP CA, AuthenticationConfiguration) go in
//! `/var/snap/microk8s/common/oidc/`: `$SNAP_COMMON` survives snap refreshes, while `current`
//! is a per-revision copy, and MicroK8s is a classic snap, so the API server sees host paths.
//!
//! The args-file parser (`ReadArgsFromFile`, canonical/microk8s
//! `build-scripts/components/kubernetes/patches/*/0000-Kubelite-integration.patch`) trims each
//! line, skips empty lines and lines starting with `#`, deletes every `"` and `'`, splits on
//! spaces (each part its own argument) and applies `os.ExpandEnv` (`$VAR`, `${VAR}`). So a
//! value holding a quote, white space or `$` cannot be written there, and is refused.
//!
//! MicroK8s ships `--authorization-mode=AlwaysAllow` (`microk8s-resources/default-args/kube-apiserver`)
//! until the `rbac` addon is enabled: every user the IdP signs in would be all-powerful, so the
//! rendering enables RBAC first and says why.

pub mod node;

use crate::apiserver::{self, is_managed_flag, AUTH_CONFIG_FILE};
use crate::{
    rendered_values, Backend, ClusterRequest, Command, Distribution, Mode, OidcSettings, PlanError,
    Rendering,
};

/// The API server's args file.
pub const ARGS_FILE: &str = "/var/snap/microk8s/current/args/kube-apiserver";
/// Where the CA and AuthenticationConfiguration go on each control-plane node.
pub const NODE_DIR: &str = "/var/snap/microk8s/common/oidc";

/// The MicroK8s backend.
#[derive(Debug, Clone, Copy)]
pub struct Microk8s;

/// Refuses values the args-file parser would change (flags mode only: in config mode the
/// values live in the AuthenticationConfiguration file, and the args file gets one fixed path).
fn check(s: &OidcSettings) -> Result<(), PlanError> {
    if s.mode()? != Mode::Flags {
        return Ok(());
    }
    for (field, value) in rendered_values(s) {
        let reason = if value.contains(['"', '\'']) {
            "its args-file parser deletes every `\"` and `'`"
        } else if value.chars().any(char::is_whitespace) {
            "its args-file parser splits lines at spaces"
        } else if value.contains('$') {
            "its args-file parser expands `$VAR` and has no escape for `$`"
        } else {
            continue;
        };
        return Err(PlanError::unrepresentable(
            Distribution::Microk8s,
            field,
            &value,
            reason,
            "choose a value without it, or use `--auth-mode config` (the value then goes in the AuthenticationConfiguration file)",
        ));
    }
    Ok(())
}

/// The lines k8soidc puts in the args file, `--name=value` each.
pub fn flag_lines(s: &OidcSettings) -> Result<Vec<String>, PlanError> {
    check(s)?;
    Ok(apiserver::args(s, s.mode()?, NODE_DIR)
        .iter()
        .map(apiserver::Arg::flag)
        .collect())
}

/// `microk8s enable rbac`: switches `--authorization-mode` from `AlwaysAllow` to `RBAC,Node`.
pub fn rbac_command() -> Command {
    Command::new("microk8s", ["enable", "rbac"])
}

/// The documented restart: `microk8s stop`, then `microk8s start`.
pub fn restart_commands() -> [Command; 2] {
    [
        Command::new("microk8s", ["stop"]),
        Command::new("microk8s", ["start"]),
    ]
}

/// The arguments of one line as kubelite sees them (before `$` expansion); `None` for
/// comments and empty lines.
fn words(line: &str) -> Option<Vec<String>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    Some(
        line.replace(['"', '\''], "")
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

/// The value of the last `--authorization-mode` in an args file (the API server keeps the
/// last), e.g. `AlwaysAllow` or `RBAC,Node`; `None` when the flag is absent.
pub fn authorization_mode(text: &str) -> Option<String> {
    let mut mode = None;
    for w in text.lines().filter_map(words) {
        let mut it = w.iter();
        while let Some(word) = it.next() {
            let name = word.trim_start_matches('-');
            if !word.starts_with('-') {
                continue;
            }
            if let Some(value) = name.strip_prefix("authorization-mode=") {
                mode = Some(value.to_string());
            } else if name == "authorization-mode" {
                mode = it.next().cloned();
            }
        }
    }
    mode
}

/// Whether the args file has RBAC among its authorization modes.
pub fn rbac_enabled(text: &str) -> bool {
    authorization_mode(text).is_some_and(|m| m.split(',').any(|m| m == "RBAC"))
}

use crate::yamltext as yt;

/// What one line of the args file is to the patcher.
enum Kind {
    /// Not a flag k8soidc owns: kept byte for byte.
    Other,
    /// One flag k8soidc owns (`--oidc-*`, or `--authentication-config` at our path).
    Ours,
    /// `--authentication-config` pointing somewhere else, with its value.
    ForeignAuthConfig(String),
}

fn classify(number: usize, line: &str) -> Result<Kind, PlanError> {
    let Some(w) = words(line) else {
        return Ok(Kind::Other);
    };
    let managed = |word: &String| word.starts_with('-') && is_managed_flag(flag_name(word));
    if !w.iter().any(managed) {
        return Ok(Kind::Other);
    }
    let refuse = |reason: &str| {
        PlanError::patch(
            ARGS_FILE,
            format!("line {number} `{}` {reason}", line.trim()),
            "put each --oidc-* / --authentication-config flag on a line of its own as `--flag=value`, then run again",
        )
    };
    let (name, value) = match w.as_slice() {
        [flag] => match flag.split_once('=') {
            Some((n, v)) => (n.trim_start_matches('-'), v.to_string()),
            None => return Err(refuse("has the flag but no value")),
        },
        [flag, value] if !flag.contains('=') && !value.starts_with('-') => {
            (flag.trim_start_matches('-'), value.clone())
        }
        _ => return Err(refuse("mixes an OIDC flag with other arguments")),
    };
    if name == "authentication-config" && value != format!("{NODE_DIR}/{AUTH_CONFIG_FILE}") {
        return Ok(Kind::ForeignAuthConfig(value));
    }
    Ok(Kind::Ours)
}

fn flag_name(word: &str) -> &str {
    let name = word.trim_start_matches('-');
    name.split_once('=').map_or(name, |(n, _)| n)
}

/// Edits the args file: removes every `--oidc-*` line and k8soidc's `--authentication-config`
/// line (`--flag=value` or `--flag value`), then appends the wanted lines at the end (none when
/// `remove`). Every other byte stays as it was, CRLF endings and a missing final newline
/// included. `Ok(None)`: the file is already as wanted.
///
/// Refuses a line that mixes an OIDC flag with other arguments, and an `--authentication-config`
/// that points at a file k8soidc did not write (it may configure more than this issuer), so the
/// result never carries both `--oidc-*` flags and `--authentication-config`.
pub fn patch_args(text: &str, s: &OidcSettings, remove: bool) -> Result<Option<String>, PlanError> {
    let wanted = if remove { Vec::new() } else { flag_lines(s)? };
    let eol = if text.contains("\r\n") { "\r\n" } else { "\n" };
    let mut lines = yt::split(text);
    let mut ours = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        match classify(i + 1, &line.text)? {
            Kind::Other => {}
            Kind::Ours => ours.push(i),
            Kind::ForeignAuthConfig(_) if remove => {}
            Kind::ForeignAuthConfig(path) => {
                return Err(PlanError::patch(
                    ARGS_FILE,
                    format!("line {} sets --authentication-config `{path}`, a file k8soidc did not write (it may configure other authenticators, and kube-apiserver refuses it together with --oidc-* flags)", i + 1),
                    "add the issuer to that file yourself, or remove the line, then run again",
                ));
            }
        }
    }
    for &i in ours.iter().rev() {
        yt::splice(&mut lines, i..i + 1, vec![], eol);
    }
    let end = lines.len();
    yt::splice(&mut lines, end..end, wanted, eol);
    let after = yt::join(&lines);
    Ok((after != text).then_some(after))
}

impl Backend for Microk8s {
    fn distribution(&self) -> Distribution {
        Distribution::Microk8s
    }

    fn render(&self, s: &OidcSettings, _req: &ClusterRequest) -> Result<Rendering, PlanError> {
        let lines = flag_lines(s)?;
        let mode = s.mode()?;
        let mut r = Rendering::new(Distribution::Microk8s, s)?;
        r.warnings.push(format!(
            "microk8s ships `--authorization-mode=AlwaysAllow`: until RBAC is on, every user the IdP signs in can do anything. `{}` (first step below) switches to RBAC,Node; then bind roles to the OIDC users and groups",
            rbac_command()
        ));
        r.warnings.push(
            "do this on every control-plane node; the API server listens on port 16443".into(),
        );
        r.push(
            "first, turn on RBAC (it restarts the API server)",
            None,
            "shell",
            format!("{}\n", rbac_command()),
        );
        for f in apiserver::node_files(s, mode, NODE_DIR) {
            r.push(
                "file the API server reads (under $SNAP_COMMON, kept across snap refreshes)",
                Some(f.path),
                "text",
                f.content,
            );
        }
        r.push(
            "lines for the API server's args file (replacing any --oidc-* and --authentication-config lines)",
            Some(ARGS_FILE.to_string()),
            "text",
            lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
        );
        r.push(
            "then restart MicroK8s",
            None,
            "shell",
            restart_commands()
                .iter()
                .map(|c| format!("{c}\n"))
                .collect::<String>(),
        );
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    /// The repository's `tests/data/fixtures/microk8s-args`.
    fn fixture_dir() -> std::path::PathBuf {
        crate::yamltext::fixtures_dir().join("microk8s-args")
    }

    const FLAGS: &str = "--oidc-issuer-url=https://idp.example.com\n--oidc-client-id=kubernetes\n\
        --oidc-username-claim=email\n--oidc-username-prefix=oidc:\n--oidc-groups-claim=groups\n\
        --oidc-groups-prefix=oidc:\n";

    fn config_mode() -> OidcSettings {
        with(|i| {
            i.auth_mode = Some("config".into());
            i.kubernetes_version = Some("1.31".into());
        })
    }

    #[test]
    fn exact_flag_lines() {
        assert_eq!(flag_lines(&settings()).unwrap().join("\n") + "\n", FLAGS);
        let mut s = settings();
        s.ca = Some(ca());
        assert_eq!(
            flag_lines(&s).unwrap().last().unwrap(),
            "--oidc-ca-file=/var/snap/microk8s/common/oidc/oidc-ca.pem"
        );
        assert_eq!(
            flag_lines(&config_mode()).unwrap(),
            ["--authentication-config=/var/snap/microk8s/common/oidc/authentication-config.yaml"]
        );
    }

    #[test]
    fn render_enables_rbac_first_and_restarts() {
        let mut s = settings();
        s.ca = Some(ca());
        let r = Microk8s.render(&s, &request()).unwrap();
        let text = r.to_string();
        assert!(
            text.contains("warning: microk8s ships `--authorization-mode=AlwaysAllow`"),
            "{text}"
        );
        assert_eq!(r.artifacts[0].content, "microk8s enable rbac\n");
        assert_eq!(
            r.artifacts[1].path.as_deref(),
            Some("/var/snap/microk8s/common/oidc/oidc-ca.pem")
        );
        assert_eq!(r.artifacts[2].path.as_deref(), Some(ARGS_FILE));
        assert!(r.artifacts[2].content.starts_with(FLAGS), "{text}");
        assert_eq!(r.artifacts[3].content, "microk8s stop\nmicrok8s start\n");
    }

    #[test]
    fn render_config_mode_writes_the_auth_config() {
        let r = Microk8s.render(&config_mode(), &request()).unwrap();
        let file = &r.artifacts[1];
        assert_eq!(
            file.path.as_deref(),
            Some("/var/snap/microk8s/common/oidc/authentication-config.yaml")
        );
        assert!(file.content.contains("kind: AuthenticationConfiguration"));
        assert_eq!(
            r.artifacts[2].content,
            "--authentication-config=/var/snap/microk8s/common/oidc/authentication-config.yaml\n"
        );
    }

    #[test]
    fn refuses_what_the_parser_would_change() {
        let cases = [
            ("a\"b", "deletes every"),
            ("a'b", "deletes every"),
            ("a b", "splits lines at spaces"),
            ("a$b", "expands `$VAR`"),
        ];
        for (value, reason) in cases {
            let s = with(|i| i.required_claim = vec![format!("hd={value}")]);
            let e = Microk8s.render(&s, &request()).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!(
                    "microk8s cannot carry --required-claim `hd={value}`"
                )),
                "{e}"
            );
            assert!(e.contains(reason), "{e}");
            assert!(patch_args("", &s, false).is_err());
        }
        // In config mode the value is in the YAML file, not the args file.
        let s = with(|i| {
            i.required_claim = vec!["hd=a b$c".into()];
            i.auth_mode = Some("config".into());
            i.kubernetes_version = Some("1.32".into());
        });
        assert!(Microk8s.render(&s, &request()).is_ok());
    }

    #[test]
    fn patch_exact_output_and_replacement() {
        let before = "--secure-port=16443\n--oidc-issuer-url https://old.example.com\n\
            # --oidc-client-id=commented\n--oidc-client-id=\"old\"\n--profiling=false\n";
        let after = patch_args(before, &settings(), false).unwrap().unwrap();
        assert_eq!(
            after,
            format!(
                "--secure-port=16443\n# --oidc-client-id=commented\n--profiling=false\n{FLAGS}"
            )
        );
        assert_eq!(patch_args(&after, &settings(), false).unwrap(), None);
        let removed = patch_args(&after, &settings(), true).unwrap().unwrap();
        assert_eq!(
            removed,
            "--secure-port=16443\n# --oidc-client-id=commented\n--profiling=false\n"
        );
        assert_eq!(patch_args(&removed, &settings(), true).unwrap(), None);
    }

    #[test]
    fn patch_switches_modes_without_leaving_both() {
        let flags = patch_args("--secure-port=16443\n", &settings(), false)
            .unwrap()
            .unwrap();
        let config = patch_args(&flags, &config_mode(), false).unwrap().unwrap();
        assert_eq!(
            config,
            "--secure-port=16443\n--authentication-config=/var/snap/microk8s/common/oidc/authentication-config.yaml\n"
        );
        let back = patch_args(&config, &settings(), false).unwrap().unwrap();
        assert_eq!(back, flags);
    }

    #[test]
    fn patch_keeps_crlf_and_a_missing_final_newline() {
        let before = "--a=1\r\n--oidc-client-id=x\r\n--b=2";
        let after = patch_args(before, &settings(), false).unwrap().unwrap();
        assert_eq!(
            after,
            format!(
                "--a=1\r\n--b=2\r\n{}",
                FLAGS.trim_end().replace('\n', "\r\n")
            )
        );
        assert_eq!(patch_args(&after, &settings(), false).unwrap(), None);
        assert_eq!(
            patch_args(&after, &settings(), true).unwrap().unwrap(),
            "--a=1\r\n--b=2"
        );
    }

    #[test]
    fn patch_refuses_what_it_cannot_edit_safely() {
        let foreign = "--authentication-config=/etc/auth.yaml\n";
        let e = patch_args(foreign, &settings(), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot patch /var/snap/microk8s/current/args/kube-apiserver: line 1 sets --authentication-config `/etc/auth.yaml`"),
            "{e}"
        );
        assert!(patch_args(foreign, &config_mode(), false).is_err());
        // Removing leaves someone else's file alone.
        assert_eq!(patch_args(foreign, &settings(), true).unwrap(), None);
        for line in [
            "--profiling=false --oidc-client-id=x\n",
            "--oidc-client-id=x --profiling=false\n",
            "--oidc-client-id\n",
        ] {
            let e = patch_args(line, &settings(), false)
                .unwrap_err()
                .to_string();
            assert!(e.contains("line 1"), "{e}");
        }
    }

    #[test]
    fn reads_the_authorization_mode() {
        assert_eq!(authorization_mode("--secure-port=1\n"), None);
        let text = "--authorization-mode=AlwaysAllow\n#--authorization-mode=RBAC\n";
        assert_eq!(authorization_mode(text).as_deref(), Some("AlwaysAllow"));
        assert!(!rbac_enabled(text));
        let text = "--authorization-mode=AlwaysAllow\n--authorization-mode 'RBAC,Node'\n";
        assert_eq!(authorization_mode(text).as_deref(), Some("RBAC,Node"));
        assert!(rbac_enabled(text));
    }

    proptest::proptest! {
        #[test]
        fn patching_any_args_file_is_idempotent_and_reversible(
            lines in proptest::collection::vec(
                proptest::sample::select(vec![
                    "--secure-port=16443", "", "  ", "# comment", "#--oidc-client-id=c",
                    "--oidc-client-id=old", "--oidc-issuer-url 'https://x'", "--v=4",
                    "--etcd-servers=\"unix://${SNAP_DATA}/kine.sock\"",
                ]),
                0..8,
            ),
            crlf in proptest::bool::ANY,
            final_newline in proptest::bool::ANY,
        ) {
            let eol = if crlf { "\r\n" } else { "\n" };
            let mut text = lines.join(eol);
            if final_newline && !text.is_empty() {
                text.push_str(eol);
            }
            let s = settings();
            let after = patch_args(&text, &s, false).unwrap().unwrap_or(text.clone());
            proptest::prop_assert_eq!(patch_args(&after, &s, false).unwrap(), None);
            let removed = patch_args(&after, &s, true).unwrap().unwrap_or(after.clone());
            let without_ours: Vec<&str> = text
                .split_inclusive('\n')
                .map(|l| l.trim_end_matches(['\r', '\n']))
                .filter(|l| !l.starts_with("--oidc-"))
                .collect();
            let removed_lines: Vec<&str> = removed
                .split_inclusive('\n')
                .map(|l| l.trim_end_matches(['\r', '\n']))
                .collect();
            proptest::prop_assert_eq!(removed_lines, without_ours);
            proptest::prop_assert!(!removed.contains("\n--oidc-") && !removed.starts_with("--oidc-"));
        }
    }

    fn fixtures() -> Vec<(String, String)> {
        let mut files: Vec<_> = std::fs::read_dir(fixture_dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        assert!(files.len() >= 5, "{files:?}");
        files
            .into_iter()
            .map(|p| {
                (
                    p.display().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn every_fixture_patches_minimally_and_idempotently() {
        let mut s = settings();
        s.ca = Some(ca());
        s.required_claims = vec![("hd".into(), "example.com".into())];
        let wanted = flag_lines(&s).unwrap();
        for (path, before) in fixtures() {
            assert_eq!(
                authorization_mode(&before).as_deref(),
                Some("AlwaysAllow"),
                "{path}"
            );
            let after = patch_args(&before, &s, false).unwrap().unwrap();
            // Every original line is still there, in order, byte for byte.
            let old: Vec<&str> = before.split_inclusive('\n').collect();
            let new: Vec<&str> = after.split_inclusive('\n').collect();
            let (head, tail) = new.split_at(old.len());
            assert_eq!(head[..old.len() - 1], old[..old.len() - 1], "{path}");
            assert_eq!(
                head[old.len() - 1].trim_end_matches('\n'),
                old[old.len() - 1].trim_end_matches('\n'),
                "{path}"
            );
            // The flags once each, at the end; final newline as before.
            let tail: Vec<&str> = tail.iter().map(|l| l.trim_end_matches('\n')).collect();
            assert_eq!(tail, wanted, "{path}");
            for flag in &wanted {
                assert_eq!(after.matches(flag.as_str()).count(), 1, "{path}");
            }
            assert_eq!(after.ends_with('\n'), before.ends_with('\n'), "{path}");
            // The parser sees exactly our arguments.
            let args: Vec<String> = after.lines().filter_map(words).flatten().collect();
            for flag in &wanted {
                assert_eq!(args.iter().filter(|a| *a == flag).count(), 1, "{path}");
            }
            assert_eq!(patch_args(&after, &s, false).unwrap(), None, "{path}");
            assert_eq!(
                patch_args(&after, &s, true).unwrap().as_deref(),
                Some(before.as_str()),
                "{path}"
            );
        }
    }
}

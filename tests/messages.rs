//! Issue 14 point 10: messages a new user meets in the first hour.

use std::process::{Command, Stdio};

use crate::test::{Test, SETTINGS};

/// Issue 14 point 10: answering "no" at a prompt is not a failure: exit 0, "nothing done",
/// nothing run. A prompt needs a terminal: `script` (util-linux) gives the run a pseudo-terminal
/// and passes our `n` to it.
#[test]
fn declining_a_prompt_exits_0_with_nothing_done() {
    let t = Test::new().fake("k3d");
    let root = t.path().to_path_buf();
    let mut command = format!(
        "{} create --distro k3d --skip-check",
        env!("CARGO_BIN_EXE_k8soidc")
    );
    for a in SETTINGS {
        command.push(' ');
        command.push_str(a);
    }
    let mut child = Command::new("timeout")
        .args(["60", "script", "-qec", &command, "/dev/null"])
        .current_dir(&root)
        .env_clear()
        .env(
            "PATH",
            format!("{}:/usr/bin:/bin", root.join("bin").display()),
        )
        .env("HOME", &root)
        .env("FAKE_LOG", root.join("fake.log"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script (util-linux)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"n").unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("Create k3d cluster `oidc`? [y/N]"), "{text}");
    assert!(
        text.trim_end().ends_with("not confirmed: nothing done"),
        "{text}"
    );
    assert!(!root.join("fake.log").exists(), "k3d ran: {text}");
}

/// The headings of README.md, as `"Title"` (markdown `#` removed, words single-spaced).
fn readme_headings() -> Vec<String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let mut fenced = false;
    let mut v = Vec::new();
    for line in readme.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            v.push(line.trim_start_matches('#').trim().to_string());
        }
    }
    v
}

/// Issue 14 point 10: every `README "SECTION"` a `--help` names is a heading of README.md.
#[test]
fn help_names_readme_sections_that_exist() {
    let headings = readme_headings();
    let mut named = 0;
    for command in [
        "patch",
        "check",
        "create",
        "rollback",
        "backups",
        "kubeconfig",
        "rbac",
        "explain",
        "idp",
        "render",
    ] {
        let out = Test::new().args([command, "--help"]).run().success();
        let help = out.stdout.split_whitespace().collect::<Vec<_>>().join(" ");
        for (i, _) in help.match_indices("README \"") {
            let rest = &help[i + "README \"".len()..];
            let section = &rest[..rest.find('"').expect("closing quote")];
            assert!(
                headings.iter().any(|h| h == section),
                "`{command} --help` names README \"{section}\", which is no heading of README.md: {headings:?}"
            );
            named += 1;
        }
    }
    assert!(named >= 1, "patch --help names the inventory section");
}

//! The compare-and-swap step's script (the kubeadm-config ConfigMap update after health) on
//! the branches a test node does not reach: nothing on a node changes the ConfigMap between
//! the first round trip and the swap, and its read does not fail once it has worked. The
//! script is the exact one the executor sends (`NodeStep::script`), run with this machine's
//! `/bin/sh` (dash on Debian, as on the test nodes); its read and write commands are `sh -c`
//! lines over files in a temporary directory instead of `kubectl`.

use std::path::Path;
use std::process::{Command, Output};

use backends::node::NodeStep;

/// A CompareAndSwap step whose read prints `dir/object` (with `read_extra` run first) and
/// whose write copies its standard input to `dir/written`.
fn step(dir: &Path, before: &str, read_extra: &str) -> NodeStep {
    let object = dir.join("object");
    let written = dir.join("written");
    NodeStep::CompareAndSwap {
        what: "the test object".into(),
        read: backends::Command::new(
            "sh",
            [
                "-c".to_string(),
                format!("{read_extra}cat \"$1\""),
                "read".into(),
                object.display().to_string(),
            ],
        ),
        before: before.into(),
        after: "new\n".into(),
        payload: "{\"new\": true}\n".into(),
        write: backends::Command::new(
            "sh",
            [
                "-c".to_string(),
                "cat > \"$1\"".into(),
                "write".into(),
                written.display().to_string(),
            ],
        ),
    }
}

/// Runs the step's script with its temporary files (`mktemp`) in `dir`.
fn run(dir: &Path, step: &NodeStep) -> Output {
    Command::new("/bin/sh")
        .arg("-c")
        .arg(step.script())
        .env("TMPDIR", dir)
        .output()
        .expect("/bin/sh runs")
}

#[test]
fn compare_and_swap_writes_the_payload_when_the_object_still_reads_as_planned() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("object"), "old: 1\n").unwrap();
    let out = run(dir.path(), &step(dir.path(), "old: 1\n", ""));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("written")).unwrap(),
        "{\"new\": true}\n"
    );
}

/// Runs a swap that must write nothing and returns its exit status and standard error, after
/// checking that only `dir/object` is left: nothing written, no temporary file.
fn refused(dir: &Path, before: &str, read_extra: &str) -> (Option<i32>, String) {
    let out = run(dir, &step(dir, before, read_extra));
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["object"]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn compare_and_swap_writes_nothing_when_the_object_changed_since_it_was_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("object"), "old: 2\n").unwrap();
    assert_eq!(
        refused(dir.path(), "old: 1\n", ""),
        (
            Some(73),
            "k8soidc: it changed since it was read; run again\n".into()
        )
    );
}

#[test]
fn compare_and_swap_reports_the_first_line_of_a_failed_read_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("object"), "old: 1\n").unwrap();
    let failing = "echo 'error: You must be logged in to the server (Unauthorized)' >&2; echo 'second line' >&2; exit 1; ";
    assert_eq!(
        refused(dir.path(), "old: 1\n", failing),
        (
            Some(80),
            "error: You must be logged in to the server (Unauthorized)\n".into()
        )
    );
    // A read that fails without a word on stderr: nothing on stderr, still exit 80.
    assert_eq!(
        refused(dir.path(), "old: 1\n", "exit 3; "),
        (Some(80), String::new())
    );
}

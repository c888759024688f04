//! Files the user names are read only when they are regular files, at most 16 MiB, nesting at
//! most 64 levels (issue 13, points 14 and 15): anything else is bad input, exit 2, one line
//! naming the flag, the path and what was expected, before any parsing.
//!
//! Before these bounds, `--inventory /dev/zero` grew without end and a deeply nested 200 KB
//! YAML took quadratic time: every run here is bounded by [`LIMIT`], so a regression fails
//! instead of hanging the suite (no test asserts a duration).

use std::time::Duration;

use crate::test::{Output, Test, SETTINGS};

/// Far beyond what a refusal takes (milliseconds), far below what a regression would.
const LIMIT: Duration = Duration::from_secs(60);

fn patch_file(t: Test, path: &str) -> Output {
    t.time_limit(LIMIT)
        .args(["patch", "--file", path])
        .args(SETTINGS)
        .run()
}

fn inventory(t: Test, path: &str) -> Output {
    t.time_limit(LIMIT)
        .args(["patch", "--inventory", path, "--dry-run"])
        .run()
}

/// Exit 2, nothing on stdout, exactly `error: <message>` on stderr.
#[track_caller]
fn refused(out: Output, message: &str) {
    let out = out.status(2);
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, format!("error: {message}\n"));
}

const FILE: &str = "a config file to patch";
const INVENTORY: &str = "the path of a YAML file listing the clusters";

#[test]
fn p14_inventory_dev_zero_is_refused() {
    refused(
        inventory(Test::new(), "/dev/zero"),
        &format!("invalid --inventory `/dev/zero`: it is a character device, not a regular file; give {INVENTORY}"),
    );
}

#[test]
fn p14_file_dev_zero_and_fifo_are_refused() {
    refused(
        patch_file(Test::new(), "/dev/zero"),
        &format!(
            "invalid --file `/dev/zero`: it is a character device, not a regular file; give {FILE}"
        ),
    );
    // Opening a FIFO for reading blocks until a writer comes: it must not be opened at all.
    let t = Test::new();
    let fifo = t.path().join("pipe.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo (coreutils)");
    assert!(made.success());
    refused(
        patch_file(t, "pipe.yaml"),
        &format!("invalid --file `pipe.yaml`: it is a FIFO, not a regular file; give {FILE}"),
    );
}

/// 100 000 nested flow lists (200 KB), and 100 000 nested block lists on one line (200 KB).
fn deep_documents() -> [(&'static str, String); 2] {
    let n = 100_000;
    [
        ("flow", format!("{}{}\n", "[".repeat(n), "]".repeat(n))),
        ("block", format!("{}x\n", "- ".repeat(n))),
    ]
}

#[test]
fn p14_deeply_nested_file_is_refused_before_parsing() {
    for (shape, text) in deep_documents() {
        let out = patch_file(Test::new().write("deep.yaml", &text), "deep.yaml").status(2);
        assert_eq!(
            out.stderr,
            format!("error: invalid --file `deep.yaml`: it nests deeper than 64 levels (line 1), the most k8soidc reads; give {FILE}\n"),
            "{shape}"
        );
    }
}

#[test]
fn p14_deeply_nested_inventory_is_refused_before_parsing() {
    for (shape, text) in deep_documents() {
        let body =
            format!("clusters:\n- name: a\n  distro: k3s\n  hosts: [x]\n  extra:\n    {text}");
        let out = inventory(Test::new().write("inv.yaml", &body), "inv.yaml");
        let out = out.status(2);
        assert_eq!(
            out.stderr,
            format!("error: invalid --inventory `inv.yaml`: it nests deeper than 64 levels (line 6), the most k8soidc reads; give {INVENTORY}\n"),
            "{shape}"
        );
    }
}

#[test]
fn p14_file_over_16_mib_is_refused() {
    let line = "# padding padding padding padding padding padding padding padding\n";
    let big = line.repeat(17 * 1024 * 1024 / line.len() + 1);
    assert!(big.len() > 17 * 1024 * 1024);
    refused(
        patch_file(Test::new().write("big.yaml", &big), "big.yaml"),
        &format!("invalid --file `big.yaml`: it is larger than 16 MiB, the most k8soidc reads from a file; give {FILE}"),
    );
    refused(
        inventory(Test::new().write("big.yaml", &big), "big.yaml"),
        &format!("invalid --inventory `big.yaml`: it is larger than 16 MiB, the most k8soidc reads from a file; give {INVENTORY}"),
    );
}

/// Every other file read as user input goes through the same checks.
#[test]
fn p14_settings_ca_and_token_files_are_bounded() {
    let render = |t: Test, extra: &[&str]| {
        t.time_limit(LIMIT)
            .args(["render", "--distro", "k3s"])
            .args(SETTINGS)
            .args(extra)
            .run()
    };
    refused(
        render(Test::new(), &["--config", "/dev/zero"]),
        "invalid --config `/dev/zero`: it is a character device, not a regular file; give an existing YAML file or leave the flag out",
    );
    refused(
        render(Test::new(), &["--ca-file", "/dev/zero"]),
        "invalid --ca-file `/dev/zero` (from --ca-file): it is a character device, not a regular file; give the path of the provider's CA certificate in PEM form",
    );
    let deep = format!("issuer-url: {}{}\n", "[".repeat(70), "]".repeat(70));
    refused(
        render(Test::new().write("k8soidc.yaml", &deep), &[]),
        "invalid --config `k8soidc.yaml`: it nests deeper than 64 levels (line 1), the most k8soidc reads; give an existing YAML file or leave the flag out",
    );
    let out = Test::new()
        .time_limit(LIMIT)
        .args(["explain", "--token", "/dev/zero"])
        .args(SETTINGS)
        .run();
    refused(
        out,
        "invalid --token `/dev/zero`: it is a character device, not a regular file; give a file with the ID token, or `-` for stdin",
    );
}

#[test]
fn p15_file_missing_or_a_directory_is_bad_input() {
    refused(
        patch_file(Test::new(), "missing.yaml"),
        &format!("invalid --file `missing.yaml`: no such file; give {FILE}"),
    );
    let t = Test::new();
    std::fs::create_dir(t.path().join("conf")).unwrap();
    refused(
        patch_file(t, "conf"),
        &format!("invalid --file `conf`: it is a directory, not a regular file; give {FILE}"),
    );
}

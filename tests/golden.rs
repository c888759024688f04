//! Whole-output tests where the output is the product: `render` of every distribution and the
//! `create --dry-run` plans, compared byte for byte with `tests/data/golden/NAME.txt` (as just's
//! tests compare whole outputs). The test's temporary home reads as `$ROOT`. After an intended
//! change, regenerate with `K8SOIDC_BLESS=1 cargo test --test integration golden::` and review
//! the diff in git; a missing golden file fails (it is never created silently).

use crate::test::{Test, SETTINGS};

/// `(golden file name, arguments after the settings)`.
const CASES: &[(&str, &[&str])] = &[
    ("render-k3d", &["render", "--distro", "k3d"]),
    ("render-kind", &["render", "--distro", "kind"]),
    ("render-kubeadm", &["render", "--distro", "kubeadm"]),
    (
        "render-kubeadm-config-1.34",
        &[
            "render",
            "--distro",
            "kubeadm",
            "--auth-mode",
            "config",
            "--kubernetes-version",
            "1.34",
        ],
    ),
    ("render-kops", &["render", "--distro", "kops"]),
    ("render-microk8s", &["render", "--distro", "microk8s"]),
    ("render-charmed", &["render", "--distro", "charmed"]),
    ("render-k3s", &["render", "--distro", "k3s"]),
    ("render-rke2", &["render", "--distro", "rke2"]),
    ("render-capi", &["render", "--distro", "capi"]),
    ("render-kubespray", &["render", "--distro", "kubespray"]),
    ("render-eks", &["render", "--distro", "eks"]),
    (
        "render-aks",
        &["render", "--distro", "aks", "--aks-preview"],
    ),
    ("render-k0s", &["render", "--distro", "k0s"]),
    ("render-talos", &["render", "--distro", "talos"]),
    ("render-vcluster", &["render", "--distro", "vcluster"]),
    ("render-gardener", &["render", "--distro", "gardener"]),
    (
        "create-k3d",
        &[
            "create",
            "--distro",
            "k3d",
            "--name",
            "dev",
            "--dry-run",
            "--skip-check",
        ],
    ),
    (
        "create-kind",
        &[
            "create",
            "--distro",
            "kind",
            "--name",
            "dev",
            "--dry-run",
            "--skip-check",
        ],
    ),
    (
        "create-kops",
        &[
            "create",
            "--distro",
            "kops",
            "--name",
            "dev.k8s.local",
            "--dry-run",
            "--skip-check",
            "--",
            "--zones",
            "eu-west-1a",
            "--state",
            "s3://my-kops-state",
        ],
    ),
    (
        "create-charmed",
        &[
            "create",
            "--distro",
            "charmed",
            "--name",
            "dev",
            "--dry-run",
            "--skip-check",
            "--",
            "--model",
            "k8s",
        ],
    ),
    (
        "create-vcluster",
        &[
            "create",
            "--distro",
            "vcluster",
            "--name",
            "dev",
            "--dry-run",
            "--skip-check",
        ],
    ),
];

fn golden_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden")
}

#[test]
fn outputs_match_their_golden_files() {
    let bless = std::env::var_os("K8SOIDC_BLESS").is_some();
    let mut failed = Vec::new();
    for (name, args) in CASES {
        // The settings go before a `--` (what follows it is the distribution tool's).
        let split = args.iter().position(|a| *a == "--").unwrap_or(args.len());
        let out = Test::new()
            .args(&args[..split])
            .args(SETTINGS)
            .args(&args[split..])
            .run()
            .success();
        let text = out.stdout.replace(&out.root.display().to_string(), "$ROOT");
        let path = golden_dir().join(format!("{name}.txt"));
        if bless {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(want) if want == text => {}
            Ok(want) => failed.push(format!(
                "{name}: differs from {}:\n--- want\n{want}\n--- got\n{text}",
                path.display()
            )),
            Err(e) => failed.push(format!("{name}: {}: {e}", path.display())),
        }
    }
    assert!(
        failed.is_empty(),
        "{}\n(after an intended change: K8SOIDC_BLESS=1 cargo test --test integration golden::)",
        failed.join("\n")
    );
}

//! `k8soidc kubeconfig`: merges into real kubeconfigs (and empty/missing files) without touching
//! anything else; real kubectl reads the result; the dry run's kubectl commands do the same.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::test::{fakes_dir, fixtures, Test};
use crate::tools::run_kubectl;

fn oidc() -> Vec<&'static str> {
    vec![
        "--issuer-url",
        "https://idp.example.com/realms/k8s",
        "--client-id",
        "kubernetes",
        "--username-claim",
        "email",
        "--groups-claim",
        "groups",
        "--groups-prefix",
        "oidc:",
    ]
}

const ARGS: [&str; 7] = [
    "oidc-login",
    "get-token",
    "--oidc-issuer-url=https://idp.example.com/realms/k8s",
    "--oidc-client-id=kubernetes",
    "--oidc-extra-scope=email",
    "--oidc-extra-scope=groups",
    "--oidc-extra-scope=offline_access",
];

fn yaml(text: &str) -> serde_yaml_ng::Value {
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Every top-level field and every list entry of `before` is in `after`, unchanged, except
/// entries named in `ours`; `after` has no other new entries than `ours`.
#[track_caller]
fn only_ours_changed(before: &str, after: &str, ours: &[&str]) {
    let b = yaml(before);
    let a = yaml(after);
    let empty = serde_yaml_ng::Mapping::new();
    let bm = b.as_mapping().unwrap_or(&empty);
    let am = a.as_mapping().expect("result is a mapping");
    for (k, v) in bm {
        if ["clusters", "contexts", "users"].contains(&k.as_str().unwrap_or_default()) {
            continue;
        }
        assert_eq!(am.get(k), Some(v), "field {k:?} changed");
    }
    for key in ["clusters", "contexts", "users"] {
        let list = |m: &serde_yaml_ng::Mapping| -> Vec<serde_yaml_ng::Value> {
            m.get(key)
                .and_then(|v| v.as_sequence())
                .cloned()
                .unwrap_or_default()
        };
        let (bl, al) = (list(bm), list(am));
        let name = |v: &serde_yaml_ng::Value| v["name"].as_str().unwrap_or_default().to_string();
        for e in &bl {
            if ours.contains(&name(e).as_str()) {
                continue;
            }
            assert!(al.contains(e), "{key} entry {} changed or lost", name(e));
        }
        for e in &al {
            assert!(
                bl.contains(e) || ours.contains(&name(e).as_str()),
                "new {key} entry {}",
                name(e)
            );
        }
    }
}

/// Only insertions in the text (no line of the original changed).
#[track_caller]
fn only_inserted(before: &str, after: &str) {
    for op in similar::TextDiff::from_lines(before, after).ops() {
        assert!(
            matches!(op.tag(), similar::DiffTag::Equal | similar::DiffTag::Insert),
            "original lines changed: {op:?}\n{after}"
        );
    }
}

/// Real kubectl reads our user, context and cluster back.
#[track_caller]
fn kubectl_reads(file: &Path, name: &str, cluster: &str, server: &str) {
    let run = run_kubectl(
        &[
            "config",
            "view",
            "--minify",
            "--context",
            name,
            "-o",
            "json",
        ],
        Some(file),
        Some(&fakes_dir()),
    );
    assert_eq!(run.status, 0, "kubectl: {}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let exec = &v["users"][0]["user"]["exec"];
    assert_eq!(v["users"][0]["name"], name);
    assert_eq!(exec["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(exec["command"], "kubectl");
    assert_eq!(exec["interactiveMode"], "Never");
    assert_eq!(exec["args"], serde_json::json!(ARGS));
    assert_eq!(v["contexts"][0]["context"]["cluster"], cluster);
    assert_eq!(v["contexts"][0]["context"]["user"], name);
    assert_eq!(v["clusters"][0]["cluster"]["server"], server);
}

#[test]
fn merges_into_every_fixture_kubeconfig() {
    let dir = fixtures().join("kubeconfig");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    for f in files {
        let before = std::fs::read_to_string(&f).unwrap();
        let has_cluster = yaml(&before)["clusters"].as_sequence().is_some();
        let mut args = vec![
            "kubeconfig",
            "--cluster",
            "kubernetes",
            "--kubeconfig",
            "kc.yaml",
        ];
        if !has_cluster {
            args.extend(["--server", "https://127.0.0.1:6443"]);
        }
        let out = Test::new()
            .write("kc.yaml", &before)
            .args(&args)
            .args(oidc())
            .run()
            .success();
        let after = out.file("kc.yaml");
        only_ours_changed(
            &before,
            &after,
            &[
                "oidc-kubernetes",
                if has_cluster { "-" } else { "kubernetes" },
            ],
        );
        only_inserted(&before, &after);
        let mode = std::fs::metadata(out.root.join("kc.yaml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f:?}");
        let backups: Vec<_> = std::fs::read_dir(&out.root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("kc.yaml.k8soidc-backup-"))
            .collect();
        assert_eq!(backups.len(), 1, "{backups:?}");
        assert_eq!(
            out.file(&backups[0]),
            before,
            "backup holds the original bytes"
        );
        assert!(
            out.stderr
                .contains("warning: `kubectl-oidc_login` is not on PATH")
                && out.stderr.contains("kubectl krew install oidc-login"),
            "{}",
            out.stderr
        );
        let server = yaml(&after)["clusters"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "kubernetes")
            .map(|c| c["cluster"]["server"].as_str().unwrap().to_string())
            .unwrap();
        // Fixture 001 holds the placeholder `<Cluster-CA-Data>`, which kubectl rejects as base64:
        // give kubectl a copy with a valid value there (the merge itself ran on the exact bytes).
        let readable = out.root.join("kc-for-kubectl.yaml");
        std::fs::write(&readable, after.replace("<Cluster-CA-Data>", "Y2E=")).unwrap();
        kubectl_reads(&readable, "oidc-kubernetes", "kubernetes", &server);
        // Idempotent: a second run changes nothing and makes no backup.
        let again = Test::new()
            .write("kc.yaml", &after)
            .args(&args)
            .args(oidc())
            .run()
            .success();
        assert_eq!(again.file("kc.yaml"), after);
        assert!(again.stderr.contains("nothing changed"), "{}", again.stderr);
    }
}

#[test]
fn missing_file_under_home_is_created_0600_without_backup() {
    let out = Test::new()
        .fake("kubectl-oidc_login")
        .args([
            "kubeconfig",
            "--cluster",
            "c1",
            "--server",
            "https://127.0.0.1:6443",
        ])
        .args(oidc())
        .run()
        .success();
    let path = out.root.join(".kube/config");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(
        !out.stderr.contains("warning"),
        "plugin is installed: {}",
        out.stderr
    );
    assert_eq!(
        std::fs::read_dir(out.root.join(".kube")).unwrap().count(),
        1,
        "no backup"
    );
    kubectl_reads(&path, "oidc-c1", "c1", "https://127.0.0.1:6443");
}

#[test]
fn empty_file_from_kubeconfig_env_first_path() {
    let t = Test::new().write("a.yaml", "").write("b.yaml", "");
    let env = format!(
        "{}:{}",
        t.path().join("a.yaml").display(),
        t.path().join("b.yaml").display()
    );
    let out = t
        .env("KUBECONFIG", &env)
        .args([
            "kubeconfig",
            "--cluster",
            "c1",
            "--server",
            "https://127.0.0.1:6443",
        ])
        .args(oidc())
        .run()
        .success();
    assert_eq!(out.file("b.yaml"), "");
    kubectl_reads(
        &out.root.join("a.yaml"),
        "oidc-c1",
        "c1",
        "https://127.0.0.1:6443",
    );
}

#[test]
fn idp_ca_and_cluster_ca_are_absolute_paths() {
    let pem = "-----BEGIN CERTIFICATE-----\nMIIBdummy\n-----END CERTIFICATE-----\n";
    let out = Test::new()
        .write("certs/idp.pem", pem)
        .write("certs/cluster.pem", pem)
        .args([
            "kubeconfig",
            "--cluster",
            "c1",
            "--server",
            "https://127.0.0.1:6443",
            "--certificate-authority",
            "certs/cluster.pem",
            "--ca-file",
            "certs/idp.pem",
            "--kubeconfig",
            "kc",
        ])
        .args(oidc())
        .run()
        .success();
    let v = yaml(&out.file("kc"));
    let root = std::fs::canonicalize(&out.root).unwrap();
    assert_eq!(
        v["clusters"][0]["cluster"]["certificate-authority"]
            .as_str()
            .unwrap(),
        root.join("certs/cluster.pem").display().to_string()
    );
    let args = v["users"][0]["user"]["exec"]["args"].as_sequence().unwrap();
    assert_eq!(
        args.last().unwrap().as_str().unwrap(),
        format!(
            "--certificate-authority={}",
            root.join("certs/idp.pem").display()
        )
    );
}

#[test]
fn unknown_cluster_without_server_is_bad_input() {
    let before = std::fs::read_to_string(
        fixtures().join("kubeconfig/001-mishra-praveen-sample-kubeconfig.yaml"),
    )
    .unwrap();
    let out = Test::new()
        .write("kc.yaml", &before)
        .args(["kubeconfig", "--cluster", "nope", "--kubeconfig", "kc.yaml"])
        .args(oidc())
        .run()
        .status(2);
    assert!(out.stderr.contains("--server"), "{}", out.stderr);
    assert_eq!(out.file("kc.yaml"), before);
}

#[test]
fn dry_run_diff_and_kubectl_commands_give_the_same_config() {
    let original = std::fs::read_to_string(
        fixtures().join("kubeconfig/003-theiam79-kubelogin-authelia-pkce.yaml"),
    )
    .unwrap();
    let t = Test::new().write("kc.yaml", &original);
    let kc = t.path().join("kc.yaml");
    let out = t
        .env("KUBECONFIG", &kc.display().to_string())
        .args(["kubeconfig", "--cluster", "kubernetes", "--dry-run"])
        .args(oidc())
        .run()
        .success();
    assert_eq!(out.file("kc.yaml"), original, "dry run changed the file");
    assert!(
        out.stdout.contains(&format!("--- a{}", kc.display())),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("+  - name: oidc-kubernetes"),
        "{}",
        out.stdout
    );
    let cmds: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("+ kubectl "))
        .collect();
    assert_eq!(cmds.len(), 2, "{}", out.stdout);
    assert!(
        cmds[0].starts_with("config set-credentials oidc-kubernetes")
            && cmds[0].ends_with("--exec-interactive-mode=Never"),
        "{}",
        cmds[0]
    );

    // Apply the printed commands with real kubectl to a copy, apply k8soidc for real to another,
    // and compare what kubectl sees in both.
    let ours = Test::new()
        .write("kc.yaml", &original)
        .args([
            "kubeconfig",
            "--cluster",
            "kubernetes",
            "--kubeconfig",
            "kc.yaml",
        ])
        .args(oidc())
        .run()
        .success();
    let theirs = tempfile::tempdir().unwrap();
    let theirs_kc = theirs.path().join("kc.yaml");
    std::fs::write(&theirs_kc, &original).unwrap();
    for c in &cmds {
        let words = shell_words(c);
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let r = run_kubectl(&words, Some(&theirs_kc), Some(&fakes_dir()));
        assert_eq!(r.status, 0, "{c}: {}", r.stderr);
    }
    let view = |p: &Path| {
        let r = run_kubectl(
            &["config", "view", "-o", "json"],
            Some(p),
            Some(&fakes_dir()),
        );
        assert_eq!(r.status, 0, "{}", r.stderr);
        serde_json::from_str::<serde_json::Value>(&r.stdout).unwrap()
    };
    assert_eq!(view(&ours.root.join("kc.yaml")), view(&theirs_kc));
}

/// Splits a line quoted by `backends::shell::quote` (bare words and '…' with '\'' escapes).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    cur.push(q);
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// Issue 14 point 10: the last line is a kubectl command that works with the file written:
/// `--kubeconfig F` when F is not the file kubectl reads by default.
#[test]
fn final_message_is_a_kubectl_command_for_the_file_written() {
    let cluster = [
        "kubeconfig",
        "--cluster",
        "c1",
        "--server",
        "https://127.0.0.1:6443",
    ];
    let out = Test::new()
        .fake("kubectl-oidc_login")
        .args(cluster)
        .args(["--kubeconfig", "kc.yaml"])
        .args(oidc())
        .run()
        .success();
    let kc = out.root.join("kc.yaml").display().to_string();
    let last = out.stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!("wrote user and context `oidc-c1` to {kc}; use it with: kubectl --kubeconfig {kc} config use-context oidc-c1")
    );
    // The printed command works with real kubectl, whatever KUBECONFIG says.
    let printed: Vec<&str> = last
        .split("use it with: kubectl ")
        .nth(1)
        .unwrap()
        .split(' ')
        .collect();
    let run = run_kubectl(&printed, None, None);
    assert_eq!(run.status, 0, "{}", run.stderr);
    assert!(yaml(&out.file("kc.yaml"))["current-context"] == "oidc-c1");

    // The default file (here ~/.kube/config) needs no flag.
    let out = Test::new()
        .fake("kubectl-oidc_login")
        .args(cluster)
        .args(oidc())
        .run()
        .success();
    assert_eq!(
        out.stderr.lines().last().unwrap_or_default(),
        format!(
            "wrote user and context `oidc-c1` to {}; use it with: kubectl config use-context oidc-c1",
            out.root.join(".kube/config").display()
        )
    );
    let run = run_kubectl(
        &["config", "use-context", "oidc-c1"],
        Some(&out.root.join(".kube/config")),
        None,
    );
    assert_eq!(run.status, 0, "{}", run.stderr);
}

/// Issue 13 point 10: the dry run shows no credential of other users (diff context included),
/// only the markers `kubectl config view` uses; the whole output is compared.
#[test]
fn dry_run_redacts_other_users_secrets() {
    let before = "\
apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: Q0EtREFUQS1zZWNyZXQtMQ==
    server: https://127.0.0.1:6443
  name: kubernetes
contexts:
- context:
    cluster: kubernetes
    user: admin
  name: admin
current-context: admin
users:
- name: admin
  user:
    client-certificate-data: Q0VSVC1zZWNyZXQtMg==
    client-key-data: S0VZLXNlY3JldC0z
- name: robot
  user:
    token: tok-secret-4
- name: basic
  user:
    username: me
    password: pw-secret-5
- name: sso
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: kubectl
      args:
      - oidc-login
      - get-token
      - --oidc-client-secret=cs-secret-6
";
    let out = Test::new()
        .write("kc.yaml", before)
        .args([
            "kubeconfig",
            "--cluster",
            "kubernetes",
            "--kubeconfig",
            "kc.yaml",
            "--dry-run",
        ])
        .args(oidc())
        .run()
        .success();
    assert_eq!(out.file("kc.yaml"), before, "dry run changed the file");
    let all = format!("{}{}", out.stdout, out.stderr);
    for secret in [
        "Q0EtREFUQS1zZWNyZXQtMQ==",
        "Q0VSVC1zZWNyZXQtMg==",
        "S0VZLXNlY3JldC0z",
        "tok-secret-4",
        "pw-secret-5",
        "cs-secret-6",
        "secret-",
    ] {
        assert!(!all.contains(secret), "{secret} shown:\n{all}");
    }
    let kc = out.root.join("kc.yaml").display().to_string();
    let stdout = out.stdout.replace(&kc, "KC");
    let (head, tail) = stdout.split_once("KC.k8soidc-backup-").unwrap();
    let stamp = &tail[..16];
    assert!(
        stamp.len() == 16 && stamp.as_bytes()[8] == b'T' && stamp.ends_with('Z'),
        "{stamp}"
    );
    let stdout = format!("{head}KC.k8soidc-backup-STAMP{}", &tail[16..]);
    assert_eq!(
        stdout,
        "# kubeconfig KC: user and context `oidc-kubernetes`

# back up the kubeconfig (mode 0600: it may hold credentials)
+ install -m 0600 KC KC.k8soidc-backup-STAMP

# add user and context `oidc-kubernetes` (kubelogin), keeping everything else
+ write KC (mode 0600):
--- aKC
+++ bKC
@@ -10,6 +10,10 @@
     cluster: kubernetes
     user: admin
   name: admin
+- name: oidc-kubernetes
+  context:
+    cluster: kubernetes
+    user: oidc-kubernetes
 current-context: admin
 users:
 - name: admin
@@ -32,3 +36,17 @@
       - oidc-login
       - get-token
       - --oidc-client-secret=REDACTED
+- name: oidc-kubernetes
+  user:
+    exec:
+      apiVersion: client.authentication.k8s.io/v1
+      command: kubectl
+      args:
+      - oidc-login
+      - get-token
+      - --oidc-issuer-url=https://idp.example.com/realms/k8s
+      - --oidc-client-id=kubernetes
+      - --oidc-extra-scope=email
+      - --oidc-extra-scope=groups
+      - --oidc-extra-scope=offline_access
+      interactiveMode: Never
# the same change with kubectl (k8soidc writes the YAML itself):
+ kubectl --kubeconfig=KC config set-credentials oidc-kubernetes --exec-api-version=client.authentication.k8s.io/v1 --exec-command=kubectl --exec-arg=oidc-login --exec-arg=get-token --exec-arg=--oidc-issuer-url=https://idp.example.com/realms/k8s --exec-arg=--oidc-client-id=kubernetes --exec-arg=--oidc-extra-scope=email --exec-arg=--oidc-extra-scope=groups --exec-arg=--oidc-extra-scope=offline_access --exec-interactive-mode=Never
+ kubectl --kubeconfig=KC config set-context oidc-kubernetes --cluster=kubernetes --user=oidc-kubernetes
"
    );
}

use std::path::PathBuf;

use serde_yaml_ng::Value;
use similar::{capture_diff_slices, Algorithm, DiffTag};

use super::*;

mod props;
use crate::apiserver;
use crate::testutil::{settings, with};

const NODE_DIR: &str = "/etc/kubernetes/oidc";

/// `tests/data/fixtures/<dir>` of the repository.
fn fixtures(dir: &str) -> PathBuf {
    crate::yamltext::fixtures_dir().join(dir)
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(fixtures("apiserver-manifests").join(name)).unwrap()
}

fn flag_args() -> Vec<Arg> {
    let s = settings();
    apiserver::args(&s, s.mode().unwrap(), NODE_DIR)
}

fn config_args() -> Vec<Arg> {
    let s = with(|i| {
        i.auth_mode = Some("config".into());
        i.kubernetes_version = Some("1.31".into());
    });
    let args = apiserver::args(&s, s.mode().unwrap(), NODE_DIR);
    assert_eq!(args[0].name, "authentication-config");
    args
}

fn node_mount() -> NodeMount {
    NodeMount {
        name: "k8soidc".into(),
        host_path: NODE_DIR.into(),
        mount_path: NODE_DIR.into(),
    }
}

/// The kube-apiserver container of the one Pod in `text`, parsed independently.
fn container(text: &str) -> Value {
    use serde::Deserialize;
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("result parses"))
        .collect();
    let pod = docs
        .iter()
        .find(|d| d["kind"] == "Pod")
        .expect("a Pod")
        .clone();
    pod["spec"]["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "kube-apiserver")
        .expect("the container")
        .clone()
}

/// Every command/args item is a string; the managed flags are exactly `want`, each once.
fn assert_flags(text: &str, want: &[Arg]) {
    let c = container(text);
    let mut items = Vec::new();
    for key in ["command", "args"] {
        for v in c[key].as_sequence().into_iter().flatten() {
            items.push(
                v.as_str()
                    .unwrap_or_else(|| panic!("not a string: {v:?}"))
                    .to_string(),
            );
        }
    }
    for a in want {
        let n = items.iter().filter(|i| **i == a.flag()).count();
        assert_eq!(n, 1, "{} present {n} times in\n{text}", a.flag());
    }
    let managed: Vec<&String> = items
        .iter()
        .filter(|i| apiserver::is_managed_flag(i.split('=').next().unwrap()))
        .collect();
    assert_eq!(managed.len(), want.len(), "{managed:?}");
}

/// Only our lines changed: deleted lines are managed flags, inserted lines are managed flags
/// or our volume lines; line endings and the final newline are kept.
fn assert_minimal(before: &str, after: &str, mount: Option<&NodeMount>) {
    let old: Vec<&str> = before.split('\n').collect();
    let new: Vec<&str> = after.split('\n').collect();
    let crlf = before.contains("\r\n");
    let ours_flag = |l: &str| l.contains("--oidc-") || l.contains("--authentication-config");
    let ours_volume = |l: &str| {
        let t = l
            .trim_end_matches('\r')
            .trim_start()
            .trim_start_matches("- ")
            .trim_start();
        mount.is_some_and(|m| {
            [
                "volumeMounts:".to_string(),
                "volumes:".into(),
                "hostPath:".into(),
                "readOnly: true".into(),
                "type: DirectoryOrCreate".into(),
                format!("name: {}", m.name),
                format!("mountPath: {}", m.mount_path),
                format!("path: {}", m.host_path),
            ]
            .contains(&t.to_string())
        })
    };
    for op in capture_diff_slices(Algorithm::Myers, &old, &new) {
        let (tag, o, n) = op.as_tag_tuple();
        if tag == DiffTag::Equal {
            continue;
        }
        for l in &old[o] {
            assert!(
                ours_flag(l) || ours_volume(l),
                "deleted a line that is not ours: {l:?}"
            );
        }
        for l in &new[n] {
            assert!(
                ours_flag(l) || ours_volume(l),
                "inserted a line that is not ours: {l:?}"
            );
            if crlf {
                assert!(l.ends_with('\r'), "inserted line without CRLF: {l:?}");
            }
        }
    }
    assert_eq!(before.ends_with('\n'), after.ends_with('\n'));
}

fn check_patch(name: &str, before: &str, args: &[Arg], mount: Option<&NodeMount>) -> String {
    let p = patch_manifest(before, args, mount).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_flags(&p.text, args);
    assert_minimal(before, &p.text, mount);
    let again = patch_manifest(&p.text, args, mount).unwrap();
    assert!(
        !again.changed,
        "{name}: second run changed:\n{}",
        again.text
    );
    assert_eq!(again.text, p.text);
    p.text
}

#[derive(Debug)]
enum Expect {
    Patched,
    Refused(&'static str),
}

/// Every manifest fixture, and what must happen to it.
const TABLE: &[(&str, Expect)] = &[
    ("001-liuyt-v1.7.0.yaml", Expect::Patched),
    ("003-jinsenglin-v1.8.1-webhook-audit.yaml", Expect::Patched),
    ("004-roylez-v1.8.1-comment.yaml", Expect::Patched),
    ("005-youngliu-v1.9.3-ldap-webhook.yaml", Expect::Patched),
    ("007-daveje007-v1.10.8.yaml", Expect::Patched),
    ("008-nicolast-v1.11.7-dryrun.yaml", Expect::Patched),
    ("009-nadamdb-v1.13.4.yaml", Expect::Patched),
    ("010-pabloopez-v1.14.0-audit-dynamic.yaml", Expect::Patched),
    ("012-erkules-v1.15.3-plain.yaml", Expect::Patched),
    ("013-maxxmoney-v1.16.2-aliyun.yaml", Expect::Patched),
    ("014-jdcloud-v1.17.0-kms.yaml", Expect::Patched),
    ("015-danil-v1.18.2.yaml", Expect::Patched),
    ("016-brightzheng100-v1.19.1-kind-oidc.yaml", Expect::Patched),
    (
        "018-mrandhikpurwala-v1.21.4-commented-flags.yaml",
        Expect::Patched,
    ),
    (
        "019-bwer432-v1.21.1-kind-mirrorpod-dump.yaml",
        Expect::Refused("mirror pod"),
    ),
    ("020-stevegszabo-v1.22.3.yaml", Expect::Patched),
    ("021-fr-solution-v1.23.5-args.yaml", Expect::Patched),
    ("023-allen0115-v1.24.2-aliyun.yaml", Expect::Patched),
    (
        "024-waxes27-v1.24.0-sh-c-block.yaml",
        Expect::Refused("shell command string"),
    ),
    ("025-sallyom-v1.25.3-tracing.yaml", Expect::Patched),
    ("027-iyerabhi07-v1.27.4-minikube-crlf.yaml", Expect::Patched),
    (
        "028-ivanbeethoven-v1.28.2-auditwebhook.yaml",
        Expect::Patched,
    ),
    ("030-hiulnarapyvovar-v1.29.2-minimal.yaml", Expect::Patched),
    ("031-mikolajsemeniuk-v1.30.0-indented.yaml", Expect::Patched),
    ("034-austintalbot-v1.32.2-cks.yaml", Expect::Patched),
    ("036-k8sp-v1.2.3-hyperkube.yaml", Expect::Patched),
];

#[test]
fn every_manifest_fixture_is_patched_or_refused_as_listed() {
    let mut names: Vec<String> = std::fs::read_dir(fixtures("apiserver-manifests"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let listed: Vec<&str> = TABLE.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, listed, "the table must list every fixture");
    let m = node_mount();
    for (name, expect) in TABLE {
        let before = fixture(name);
        match expect {
            Expect::Refused(why) => {
                for args in [flag_args(), config_args()] {
                    let err = patch_manifest(&before, &args, Some(&m))
                        .unwrap_err()
                        .to_string();
                    assert!(err.contains(why), "{name}: {err}");
                    assert!(
                        err.starts_with("cannot patch the kube-apiserver manifest: "),
                        "{err}"
                    );
                    assert!(!err.contains('\n'), "{err}");
                }
                assert!(remove_oidc(&before, &m.name).is_err());
            }
            Expect::Patched => {
                let flags = check_patch(name, &before, &flag_args(), Some(&m));
                // Switching modes in either direction, and patching without a mount.
                let config = check_patch(name, &flags, &config_args(), Some(&m));
                check_patch(name, &config, &flag_args(), Some(&m));
                check_patch(name, &before, &config_args(), None);
                let removed = remove_oidc(&flags, &m.name).unwrap();
                assert_flags(&removed.text, &[]);
                assert_minimal(&removed.text, &flags, Some(&m));
                let had_oidc = current_flags(&before)
                    .unwrap()
                    .iter()
                    .any(|(n, _)| apiserver::is_managed_flag(n));
                if !had_oidc {
                    assert_eq!(
                        removed.text, before,
                        "{name}: patch then remove is not the original"
                    );
                }
                assert!(!remove_oidc(&removed.text, &m.name).unwrap().changed);
            }
        }
    }
}

#[test]
fn other_config_files_are_refused_as_not_a_pod() {
    for dir in [
        "k3s-config",
        "kubeadm-config",
        "k3d-config",
        "kops-cluster",
        "capi-kcp",
        "kubeconfig",
    ] {
        for entry in std::fs::read_dir(fixtures(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let err = patch_manifest(&text, &flag_args(), None)
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("not a Pod") || err.contains("not valid YAML"),
                "{path:?}: {err}"
            );
        }
    }
}

const MINIMAL: &str = "apiVersion: v1
kind: Pod
metadata:
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --secure-port=6443 # keep me
    - --oidc-client-id=old
    - --authorization-mode=Node,RBAC
    - --oidc-issuer-url=https://old.example.com
    image: registry.k8s.io/kube-apiserver:v1.30.0
    name: kube-apiserver
  hostNetwork: true
";

#[test]
fn quotes_values_yaml_would_misread() {
    let p = patch_manifest(MINIMAL, &flag_args(), None).unwrap();
    assert!(
        p.text.contains("\n    - \"--oidc-groups-prefix=oidc:\"\n"),
        "{}",
        p.text
    );
    assert!(p
        .text
        .contains("\n    - \"--oidc-username-prefix=oidc:\"\n"));
    assert!(p
        .text
        .contains("\n    - --oidc-issuer-url=https://idp.example.com\n"));
    assert_flags(&p.text, &flag_args());
}

#[test]
fn replaces_existing_flags_in_place_and_adds_the_rest_after_them() {
    let p = patch_manifest(MINIMAL, &flag_args(), None).unwrap();
    let lines: Vec<&str> = p.text.lines().collect();
    assert_eq!(lines[9], "    - --secure-port=6443 # keep me");
    assert_eq!(lines[10], "    - --oidc-client-id=kubernetes");
    assert_eq!(lines[11], "    - --authorization-mode=Node,RBAC");
    assert_eq!(lines[12], "    - --oidc-issuer-url=https://idp.example.com");
    assert_eq!(lines[13], "    - --oidc-username-claim=email");
    assert!(
        p.notes
            .iter()
            .any(|n| n.starts_with("updated ") && n.contains("`--oidc-client-id`")),
        "{:?}",
        p.notes
    );
    check_patch("minimal", MINIMAL, &flag_args(), None);
}

#[test]
fn new_flags_take_the_place_of_the_first_old_one_when_switching_modes() {
    let p = patch_manifest(MINIMAL, &config_args(), None).unwrap();
    let lines: Vec<&str> = p.text.lines().collect();
    assert_eq!(
        lines[10],
        "    - --authentication-config=/etc/kubernetes/oidc/authentication-config.yaml"
    );
    assert_eq!(lines[11], "    - --authorization-mode=Node,RBAC");
    assert!(!p.text.contains("--oidc-"));
    assert!(p
        .notes
        .iter()
        .any(|n| n.contains("switched from `--oidc-*`")));
    let back = patch_manifest(&p.text, &flag_args(), None).unwrap();
    assert!(!back.text.contains("--authentication-config"));
    assert!(back.notes.iter().any(|n| n.contains("no longer used")));
}

#[test]
fn duplicated_flags_end_up_once() {
    let text = MINIMAL.replace(
        "    - --authorization-mode=Node,RBAC\n",
        "    - --authorization-mode=Node,RBAC\n    -   --oidc-issuer-url=https://dup.example.com\n",
    );
    let p = check_patch("dup", &text, &flag_args(), None);
    assert!(!p.contains("dup.example.com"));
}

#[test]
fn refuses_to_write_both_modes() {
    let mut args = flag_args();
    args.extend(config_args());
    let err = patch_manifest(MINIMAL, &args, None).unwrap_err();
    assert!(err.to_string().contains("exits when given both"));
    let err = patch_manifest(
        MINIMAL,
        &[Arg {
            name: "anonymous-auth".into(),
            value: "true".into(),
        }],
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("not a flag k8soidc manages"));
}

#[test]
fn keeps_the_neighbours_quoting_and_dash_spacing() {
    let text = MINIMAL
        .replace(
            "    - --secure-port=6443 # keep me\n",
            "    -   '--secure-port=6443'\n",
        )
        .replace(
            "    - --authorization-mode=Node,RBAC\n",
            "    - \"--authorization-mode=Node,RBAC\"\n",
        )
        .replace("    - --oidc-client-id=old\n", "")
        .replace("    - --oidc-issuer-url=https://old.example.com\n", "");
    let p = check_patch("quoted", &text, &flag_args(), None);
    assert!(
        p.contains("\n    - \"--oidc-issuer-url=https://idp.example.com\"\n"),
        "{p}"
    );
    let text = text.replace("    - \"--authorization-mode=Node,RBAC\"\n", "");
    let p = check_patch("single", &text, &flag_args(), None);
    assert!(
        p.contains("\n    -   '--oidc-groups-prefix=oidc:'\n"),
        "{p}"
    );
}

#[test]
fn handles_args_lists_and_several_documents() {
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n  a: \"---\"\n---\n{}",
        fixture("021-fr-solution-v1.23.5-args.yaml").trim_start_matches("---\n")
    );
    let p = check_patch("multi", &text, &flag_args(), Some(&node_mount()));
    assert!(
        p.contains("      - --v=2\n      - --oidc-issuer-url=https://idp.example.com\n"),
        "{p}"
    );
    assert!(p.starts_with("apiVersion: v1\nkind: ConfigMap\n"));
}

#[test]
fn non_indented_and_indented_lists_get_entries_in_their_own_style() {
    let m = node_mount();
    let kubeadm = check_patch(
        "012",
        &fixture("012-erkules-v1.15.3-plain.yaml"),
        &flag_args(),
        Some(&m),
    );
    assert!(
        kubeadm.contains(
            "    - mountPath: /etc/kubernetes/oidc\n      name: k8soidc\n      readOnly: true\n"
        ),
        "{kubeadm}"
    );
    assert!(kubeadm.contains("  - hostPath:\n      path: /etc/kubernetes/oidc\n      type: DirectoryOrCreate\n    name: k8soidc\n"), "{kubeadm}");
    let indented = check_patch(
        "031",
        &fixture("031-mikolajsemeniuk-v1.30.0-indented.yaml"),
        &flag_args(),
        Some(&m),
    );
    assert!(
        indented.contains("        - \"--oidc-groups-prefix=oidc:\"\n"),
        "{indented}"
    );
    assert!(indented.contains("        - mountPath: /etc/kubernetes/oidc\n          name: k8soidc\n          readOnly: true\n"), "{indented}");
    assert!(indented.contains("    - name: k8soidc\n      hostPath:\n        path: /etc/kubernetes/oidc\n        type: DirectoryOrCreate\n"), "{indented}");
}

#[test]
fn crlf_and_missing_final_newline_are_kept() {
    let m = node_mount();
    let crlf = fixture("027-iyerabhi07-v1.27.4-minikube-crlf.yaml");
    let p = check_patch("027", &crlf, &flag_args(), Some(&m));
    assert_eq!(p.matches('\n').count(), p.matches("\r\n").count());
    assert!(p.contains("    name: k8soidc\r\nstatus: {}\r\n"), "{p}");
    let bare = fixture("028-ivanbeethoven-v1.28.2-auditwebhook.yaml");
    assert!(!bare.ends_with('\n'));
    let p = check_patch("028", &bare, &flag_args(), Some(&m));
    assert!(p.ends_with("status: {}"));
}

#[test]
fn adds_volume_lists_that_do_not_exist() {
    let p = check_patch("minimal", MINIMAL, &flag_args(), Some(&node_mount()));
    assert!(
        p.contains(
            "    name: kube-apiserver\n    volumeMounts:\n    - mountPath: /etc/kubernetes/oidc\n"
        ),
        "{p}"
    );
    assert!(p.ends_with("  hostNetwork: true\n  volumes:\n  - hostPath:\n      path: /etc/kubernetes/oidc\n      type: DirectoryOrCreate\n    name: k8soidc\n"), "{p}");
    assert_eq!(
        remove_oidc(&p, "k8soidc").unwrap().text,
        MINIMAL
            .replace("    - --oidc-client-id=old\n", "")
            .replace("    - --oidc-issuer-url=https://old.example.com\n", "")
    );
    let empty = MINIMAL.replace("  hostNetwork: true\n", "  volumes: []\n");
    let p = patch_manifest(&empty, &flag_args(), Some(&node_mount())).unwrap();
    assert!(p.text.contains("  volumes:\n  - hostPath:\n"), "{}", p.text);
    assert_flags(&p.text, &flag_args());
    assert!(
        !patch_manifest(&p.text, &flag_args(), Some(&node_mount()))
            .unwrap()
            .changed
    );
}

#[test]
fn a_directory_already_mounted_gets_no_new_volume() {
    let pki = NodeMount {
        name: "k8soidc".into(),
        host_path: "/etc/kubernetes/pki/oidc".into(),
        mount_path: "/etc/kubernetes/pki/oidc".into(),
    };
    let before = fixture("034-austintalbot-v1.32.2-cks.yaml");
    let p = patch_manifest(&before, &flag_args(), Some(&pki)).unwrap();
    assert!(!p.text.contains("k8soidc"));
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("through volume `k8s-certs`")),
        "{:?}",
        p.notes
    );
    // 030 mounts all of /etc/kubernetes.
    let p = patch_manifest(
        &fixture("030-hiulnarapyvovar-v1.29.2-minimal.yaml"),
        &flag_args(),
        Some(&node_mount()),
    )
    .unwrap();
    assert!(
        p.notes
            .iter()
            .any(|n| n.contains("through volume `config`")),
        "{:?}",
        p.notes
    );
    // Mounted elsewhere in the container: not covered, so a volume is added.
    let moved = NodeMount {
        mount_path: "/oidc".into(),
        ..pki
    };
    let p = check_patch("034", &before, &flag_args(), Some(&moved));
    assert!(p.contains("mountPath: /oidc"));
}

#[test]
fn an_existing_entry_with_our_name_is_made_right_not_duplicated() {
    let wrong = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: kube-apiserver\n    command:\n    - kube-apiserver\n    volumeMounts:\n    - name: k8soidc\n      mountPath: /etc/kubernetes/oidc\n    - name: certs\n      mountPath: /etc/ssl/certs\n  volumes:\n  - name: k8soidc\n    hostPath:\n      path: /old\n  - name: certs\n    hostPath:\n      path: /etc/ssl/certs\n";
    let p = patch_manifest(wrong, &flag_args(), Some(&node_mount())).unwrap();
    assert_eq!(p.text.matches("name: k8soidc").count(), 2, "{}", p.text);
    assert!(p.text.contains("    - name: k8soidc\n      mountPath: /etc/kubernetes/oidc\n      readOnly: true\n    - name: certs\n"), "{}", p.text);
    assert!(p.text.contains("  - name: k8soidc\n    hostPath:\n      path: /etc/kubernetes/oidc\n      type: DirectoryOrCreate\n  - name: certs\n"), "{}", p.text);
    assert!(
        !patch_manifest(&p.text, &flag_args(), Some(&node_mount()))
            .unwrap()
            .changed
    );
    let clash = wrong
        .replace(
            "/etc/ssl/certs\n  volumes",
            "/etc/kubernetes/oidc/\n  volumes",
        )
        .replace(
            "    - name: k8soidc\n      mountPath: /etc/kubernetes/oidc\n",
            "",
        );
    let err = patch_manifest(&clash, &flag_args(), Some(&node_mount())).unwrap_err();
    assert!(
        err.to_string()
            .contains("already the mount point of volume `certs`"),
        "{err}"
    );
}

fn refused(text: &str) -> String {
    let err = patch_manifest(text, &flag_args(), Some(&node_mount())).unwrap_err();
    let PlanError::Patch { .. } = &err else {
        panic!("{err:?}")
    };
    err.to_string()
}

#[test]
fn refuses_what_it_cannot_patch_safely() {
    let cases = [
        (
            MINIMAL.replace(
                "    - kube-apiserver\n",
                "    - /bin/sh\n    - -c\n    - kube-apiserver --secure-port=6443\n",
            ),
            "shell command string",
        ),
        (
            MINIMAL.replace("kind: Pod", "kind: ConfigMap"),
            "not a Pod (kind: ConfigMap)",
        ),
        (
            MINIMAL.replace(
                "name: kube-apiserver\n  hostNetwork",
                "name: apiserver\n  hostNetwork",
            ),
            "no container is named `kube-apiserver`",
        ),
        (
            MINIMAL.replace("    - kube-apiserver\n", "    - etcd\n"),
            "does not run kube-apiserver",
        ),
        (
            MINIMAL.replace("  - command:\n    - kube-apiserver\n", "  - args:\n"),
            "has no `command`",
        ),
        (
            MINIMAL.replace(
                "  - command:\n    - kube-apiserver\n",
                "  - command: [kube-apiserver]\n    args:\n",
            ),
            "written inline",
        ),
        (
            MINIMAL.replace("kind: Pod\n", "kind: Pod\n  bad: indent\n"),
            "not valid YAML",
        ),
        (
            MINIMAL.replace(
                "    - --oidc-client-id=old\n",
                "    - --oidc-client-id\n    - old\n",
            ),
            "value in a separate item",
        ),
        (
            MINIMAL.replace(
                "    - --secure-port=6443 # keep me\n",
                "    - --secure-port=6443\n      --oidc-x=1\n",
            ),
            "spans several lines",
        ),
        (
            MINIMAL.replace(
                "  namespace: kube-system\n",
                "  namespace: kube-system\n  uid: 1234\n",
            ),
            "mirror pod",
        ),
        (
            MINIMAL.replace("    - --secure-port=6443 # keep me\n", "    - 6443\n"),
            "is not a string",
        ),
        (
            MINIMAL.replace("kind: Pod\n", "kind: Pod\n\r"),
            "line breaks",
        ),
        (format!("{MINIMAL}---\n{MINIMAL}"), "several containers"),
        (format!("\u{feff}{MINIMAL}"), "byte-order mark"),
        (
            MINIMAL
                .replace(
                    "    - --oidc-client-id=old\n",
                    "    - &id --oidc-client-id=old\n",
                )
                .replace("  hostNetwork: true\n", "  hostname: *id\n"),
            "anchor, alias or tag",
        ),
        (
            MINIMAL.replace(
                "    - --secure-port=6443 # keep me\n",
                "    - >-\n      --secure-port=6443\n",
            ),
            "spans several lines",
        ),
        (
            "apiVersion: v1\nkind: Pod\nspec: {containers: [{name: kube-apiserver, command: [kube-apiserver]}]}\n".to_string(),
            "not a block mapping",
        ),
    ];
    for (text, why) in cases {
        let err = refused(&text);
        assert!(err.contains(why), "expected `{why}`, got: {err}");
        assert!(!err.contains('\n'));
    }
}

#[test]
fn reads_flags_and_endpoint() {
    let flags = current_flags(&fixture("016-brightzheng100-v1.19.1-kind-oidc.yaml")).unwrap();
    assert!(flags.contains(&("oidc-client-id".into(), Some("example-app".into()))));
    assert!(flags.contains(&("runtime-config".into(), Some(String::new()))));
    let dump = current_flags(&fixture("019-bwer432-v1.21.1-kind-mirrorpod-dump.yaml")).unwrap();
    assert_eq!(
        dump[0],
        ("advertise-address".into(), Some("172.18.0.2".into()))
    );
    let split = MINIMAL.replace(
        "    - --oidc-client-id=old\n",
        "    - --oidc-client-id\n    - old\n",
    );
    assert!(current_flags(&split)
        .unwrap()
        .contains(&("oidc-client-id".into(), Some("old".into()))));
    let hyper = current_flags(&fixture("036-k8sp-v1.2.3-hyperkube.yaml")).unwrap();
    assert_eq!(hyper[0].0, "bind-address");

    let e = api_endpoint(&fixture("027-iyerabhi07-v1.27.4-minikube-crlf.yaml"));
    assert_eq!(e.url("/readyz"), "https://192.168.49.2:8443/readyz");
    let e = api_endpoint(&fixture("021-fr-solution-v1.23.5-args.yaml"));
    assert_eq!(e.url("/readyz"), "https://127.0.0.1:6443/readyz");
    assert_eq!(
        api_endpoint(&fixture("036-k8sp-v1.2.3-hyperkube.yaml")).url(""),
        "https://172.17.8.101:443"
    );
    assert_eq!(
        api_endpoint(&fixture("024-waxes27-v1.24.0-sh-c-block.yaml")).url(""),
        "https://127.0.0.1:6443"
    );
    assert_eq!(
        api_endpoint("{{{ not yaml").url("/readyz"),
        "https://127.0.0.1:6443/readyz"
    );
    let v6 = MINIMAL.replace(
        "    - --secure-port=6443 # keep me\n",
        "    - --advertise-address=fd00::1\n",
    );
    assert_eq!(
        api_endpoint(&v6).url("/readyz"),
        "https://[fd00::1]:6443/readyz"
    );
}

#[test]
fn inserts_at_the_same_line_keep_flags_mounts_volumes_order() {
    let text = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: kube-apiserver\n    image: x\n    command:\n    - kube-apiserver\n    - --oidc-client-id=old";
    let p = check_patch("tail", text, &flag_args(), Some(&node_mount()));
    let want = "    - kube-apiserver\n    - --oidc-client-id=kubernetes\n    - --oidc-issuer-url=https://idp.example.com\n";
    assert!(p.contains(want), "{p}");
    assert!(p.ends_with("    - \"--oidc-groups-prefix=oidc:\"\n    volumeMounts:\n    - name: k8soidc\n      mountPath: /etc/kubernetes/oidc\n      readOnly: true\n  volumes:\n  - name: k8soidc\n    hostPath:\n      path: /etc/kubernetes/oidc\n      type: DirectoryOrCreate"), "{p}");
    let removed = remove_oidc(&p, "k8soidc").unwrap().text;
    assert_eq!(removed, "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: kube-apiserver\n    image: x\n    command:\n    - kube-apiserver");
    assert!(refused("").contains("it is empty"));
}

#[test]
fn flags_in_command_and_args_are_handled_together() {
    let text = MINIMAL
        .replace("    - --oidc-client-id=old\n", "")
        .replace("    - --oidc-issuer-url=https://old.example.com\n", "")
        .replace(
            "    - kube-apiserver\n",
            "    - kube-apiserver\n    - --oidc-issuer-url=https://old.example.com\n",
        )
        .replace(
            "    image:",
            "    args:\n    - --oidc-client-id=old\n    - --v=2\n    image:",
        );
    let p = check_patch("both lists", &text, &flag_args(), None);
    // Each kept flag stays in its list; new ones follow the last kept one.
    assert!(p.contains("    - kube-apiserver\n    - --oidc-issuer-url=https://idp.example.com\n    - --secure-port"), "{p}");
    assert!(
        p.contains(
            "    args:\n    - --oidc-client-id=kubernetes\n    - --oidc-username-claim=email\n"
        ),
        "{p}"
    );
    assert!(
        p.contains("    - \"--oidc-groups-prefix=oidc:\"\n    - --v=2\n"),
        "{p}"
    );
    let hyper = patch_manifest(
        &fixture("036-k8sp-v1.2.3-hyperkube.yaml"),
        &flag_args(),
        None,
    )
    .unwrap();
    assert!(hyper.notes.iter().any(|n| n.contains("hyperkube")));
}

#[test]
fn remove_drops_flags_and_our_entries_only() {
    let m = node_mount();
    let before = fixture("025-sallyom-v1.25.3-tracing.yaml");
    let patched = check_patch("025", &before, &flag_args(), Some(&m));
    let removed = remove_oidc(&patched, &m.name).unwrap();
    assert!(removed.changed);
    assert_eq!(removed.text, before);
    assert!(
        removed
            .notes
            .iter()
            .any(|n| n == "removed volumes entry `k8soidc`"),
        "{:?}",
        removed.notes
    );
    let untouched = remove_oidc(&before, &m.name).unwrap();
    assert!(!untouched.changed);
    assert_eq!(untouched.notes, ["no OIDC flags to remove"]);
}

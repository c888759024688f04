//! Issue 12, points 3 and 4: moving a running API server between `--oidc-*` flags and the
//! AuthenticationConfiguration file (`patch --auth-mode config|flags` without settings), and
//! proving that a file-only change was reloaded. kubeadm first, then k3s, RKE2 and MicroK8s
//! (their API server restarted by the fake `systemctl` / `microk8s`). Real sshd test nodes
//! (tests/node.rs) with the fake kubelet and API server (tests/fakes/node/). Node numbers
//! 190..=199 belong to this file; the k3s, RKE2 and MicroK8s tests take `Node::next()`.

use crate::node::Node;

const MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";
const AUTH: &str = "/etc/kubernetes/oidc/authentication-config.yaml";
const CA: &str = "/etc/kubernetes/pki/oidc-ca.pem";

/// A throw-away self-signed certificate (PEM), the IdP CA the node's flags name.
fn pem() -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=idp",
            "-days",
            "2",
            "-keyout",
            "/dev/null",
            "-out",
            "-",
        ])
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The kubeadm fixture manifest of node `n` running `flags` (after `--profiling=false`), with
/// image tag `version` (e.g. `v1.32.2`).
fn manifest(n: u8, version: &str, flags: &[&str]) -> String {
    // YAML: an item ending in `:` would be a mapping key, so it is quoted (as kubeadm does).
    let extra: String = flags
        .iter()
        .map(|f| match f.ends_with(':') {
            true => format!("    - \"{f}\"\n"),
            false => format!("    - {f}\n"),
        })
        .collect();
    crate::node::kubeadm_manifest(&format!("127.0.0.{n}"))
        .replace(
            "    - --profiling=false\n",
            &format!("    - --profiling=false\n{extra}"),
        )
        .replace(
            "kube-apiserver:v1.32.2",
            &format!("kube-apiserver:{version}"),
        )
}

/// Flags as an operator wrote them: no username prefix (kube-apiserver's implicit
/// `<issuer>#`, the claim being `sub`), a required claim, a CA in /etc/kubernetes/pki.
const FLAGS: [&str; 6] = [
    "--oidc-issuer-url=https://idp.example.com",
    "--oidc-client-id=kubernetes",
    "--oidc-groups-claim=groups",
    "--oidc-groups-prefix=oidc:",
    "--oidc-required-claim=hd=example.com",
    "--oidc-ca-file=/etc/kubernetes/pki/oidc-ca.pem",
];

/// The `--oidc-*` / `--authentication-config` / `--anonymous-auth` words of the running fake
/// API server, sorted.
fn running(node: &Node) -> Vec<String> {
    let cmd = node.sh(
        "for p in /proc/[0-9]*; do tr '\\0' '\\n' < $p/cmdline 2>/dev/null | grep -qx '.*/kube-apiserver[.]py' && tr '\\0' '\\n' < $p/cmdline; done; true",
    );
    let mut v: Vec<String> = cmd
        .lines()
        .filter(|l| {
            l.starts_with("--oidc-")
                || l.starts_with("--authentication-config")
                || l.starts_with("--anonymous-auth")
        })
        .map(str::to_string)
        .collect();
    v.sort();
    v
}

/// `patch --yes ARGS` on `node`: it must succeed and end healthy with the new settings.
fn converted(node: &Node, args: &[&str]) -> crate::test::Output {
    let out = node
        .k8soidc("patch")
        .args(args)
        .args(["--yes"])
        .run()
        .success();
    assert!(
        out.stderr
            .contains("API server healthy with the new settings"),
        "{}",
        out.stderr
    );
    out
}

/// `patch --yes ARGS` on a node never ready with the result: exit 1, restored, healthy again.
fn rolled_back(node: &Node, args: &[&str]) {
    let out = node
        .k8soidc("patch")
        .args(args)
        .args(["--yes"])
        .run()
        .status(1);
    assert!(out.stderr.contains("restoring backup"), "{}", out.stderr);
    assert!(
        out.stderr.contains("healthy with the previous settings"),
        "{}",
        out.stderr
    );
}

/// `patch --yes ARGS` again on a converted node: it says so and changes nothing.
fn already_converted(node: &Node, args: &[&str]) {
    let fp = node.fingerprint();
    let again = node
        .k8soidc("patch")
        .args(args)
        .args(["--yes"])
        .run()
        .success();
    assert!(
        again
            .stderr
            .contains("already runs --authentication-config"),
        "{}",
        again.stderr
    );
    assert_eq!(node.fingerprint(), fp);
}

fn with_ca(n: u8, version: &str, flags: &[&str], ca: &str) -> Node {
    Node::on(n)
        .file(MANIFEST, &manifest(n, version, flags), 0o600)
        .file(CA, ca, 0o600)
        .start()
}

/// The file the migration writes for [`FLAGS`] (v1beta1, Kubernetes 1.32).
fn expected_file(ca: &str) -> String {
    let ca_block: String = ca.lines().map(|l| format!("      {l}\n")).collect();
    format!(
        "apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthenticationConfiguration\njwt:\n- issuer:\n    url: https://idp.example.com\n    certificateAuthority: |\n{ca_block}    audiences:\n    - kubernetes\n  claimValidationRules:\n  - claim: hd\n    requiredValue: example.com\n  claimMappings:\n    username:\n      claim: sub\n      prefix: https://idp.example.com#\n    groups:\n      claim: groups\n      prefix: 'oidc:'\n"
    )
}

#[test]
fn flags_to_file_and_back_keeps_the_cluster_healthy() {
    let ca = pem();
    let node = with_ca(190, "v1.32.2", &FLAGS, &ca);
    let mut before_flags: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
    before_flags.sort();
    // Start-up of the seeded node (the kubelet starts the pod; bounded by the patch's own wait).
    let out = node
        .k8soidc("patch")
        .args(["--auth-mode", "config", "--yes", "--timeout", "30s"])
        .run()
        .success();
    assert!(
        out.stderr
            .contains("API server healthy with the new settings"),
        "{}",
        out.stderr
    );
    assert_eq!(node.read(AUTH).unwrap(), expected_file(&ca));
    let m = node.read(MANIFEST).unwrap();
    assert!(!m.contains("--oidc-"), "{m}");
    assert!(
        m.contains(
            "    - --authentication-config=/etc/kubernetes/oidc/authentication-config.yaml\n"
        ),
        "{m}"
    );
    assert!(m.contains("mountPath: /etc/kubernetes/oidc"), "{m}");
    assert_eq!(
        running(&node),
        ["--authentication-config=/etc/kubernetes/oidc/authentication-config.yaml"]
    );
    // Again: already converted, nothing changes.
    already_converted(&node, &["--auth-mode", "config"]);

    // And back: the file holds nothing the flags cannot say, so it converts; the implicit
    // prefix stays explicit.
    converted(&node, &["--auth-mode", "flags", "--timeout", "30s"]);
    let mut want: Vec<String> = [
        "--oidc-ca-file=/etc/kubernetes/pki/oidc-ca.pem",
        "--oidc-client-id=kubernetes",
        "--oidc-groups-claim=groups",
        "--oidc-groups-prefix=oidc:",
        "--oidc-issuer-url=https://idp.example.com",
        "--oidc-required-claim=hd=example.com",
        "--oidc-username-claim=sub",
        "--oidc-username-prefix=https://idp.example.com#",
    ]
    .map(String::from)
    .to_vec();
    want.sort();
    assert_eq!(running(&node), want);
    assert_eq!(node.read(CA).unwrap(), ca, "the CA is the same bytes");
    assert_ne!(running(&node), before_flags, "now with the prefix stated");
}

#[test]
fn failed_migration_rolls_back_every_file_byte_identically() {
    let ca = pem();
    let node = with_ca(191, "v1.32.2", &FLAGS, &ca);
    node.set_never_ready("--authentication-config");
    let m = node.read(MANIFEST).unwrap();
    rolled_back(&node, &["--auth-mode", "config", "--timeout", "4s"]);
    // Every file of the one transaction: the manifest as it was, the new file gone again, the
    // CA untouched.
    assert_eq!(
        node.read(MANIFEST).unwrap(),
        m,
        "manifest not byte-identical"
    );
    assert_eq!(node.read(AUTH), None, "the new file must be removed again");
    assert_eq!(node.read(CA).unwrap(), ca);
    let mut want: Vec<String> = FLAGS.iter().map(|f| f.to_string()).collect();
    want.sort();
    assert_eq!(running(&node), want);
}

/// The kubeadm `admin.conf` the node's kubectl reads the API server's metrics with.
fn admin_conf(n: u8) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://127.0.0.{n}:6443\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: kubernetes-admin\n  name: kubernetes-admin@kubernetes\ncurrent-context: kubernetes-admin@kubernetes\nusers:\n- name: kubernetes-admin\n  user: {{}}\n"
    )
}

fn settings(issuer: &str) -> Vec<String> {
    [
        "--skip-check",
        "--issuer-url",
        issuer,
        "--client-id",
        "kubernetes",
        "--username-claim",
        "email",
        "--auth-mode",
        "config",
    ]
    .map(String::from)
    .to_vec()
}

/// A node in config mode (1.32: the reload is proven by timestamps) whose file then changes
/// to one the API server rejects: the issuer equals its --service-account-issuer.
#[test]
fn rejected_reload_is_detected_and_restored_then_a_good_one_is_proven() {
    let node = Node::on(192)
        .kubeadm()
        .file("/etc/kubernetes/admin.conf", &admin_conf(192), 0o600)
        .start();
    node.k8soidc("patch")
        .args(settings("https://idp.example.com"))
        .args(["--kubernetes-version", "1.32", "--yes", "--timeout", "30s"])
        .run()
        .success();
    let good = node.read(AUTH).unwrap();
    let m = node.read(MANIFEST).unwrap();
    let out = node
        .k8soidc("patch")
        .args(settings("https://kubernetes.default.svc.cluster.local"))
        .args(["--kubernetes-version", "1.32", "--yes", "--timeout", "20s"])
        .run()
        .status(1);
    assert!(
        out.stderr
            .contains("not reloaded: the API server rejected the new file"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(
            r#"its log: E0000 00:00:00.000000       1 authentication.go:0] "failed to validate authentication config" err="jwt[0].issuer.url: Invalid value: \"https://kubernetes.default.svc.cluster.local\": URL must not overlap with disallowed issuers: [https://kubernetes.default.svc.cluster.local]"; restoring backup"#
        ),
        "the API server's log line is quoted: {}",
        out.stderr
    );
    assert!(out.stderr.contains("restoring backup"), "{}", out.stderr);
    assert_eq!(node.read(AUTH).unwrap(), good, "file not byte-identical");
    assert_eq!(node.read(MANIFEST).unwrap(), m);

    // A valid change is reloaded without a restart, and proven.
    let pid = node.sh("pgrep -f kube-apiserver.py | head -n1");
    let ok = node
        .k8soidc("patch")
        .args(settings("https://idp2.example.com"))
        .args(["--kubernetes-version", "1.32", "--yes", "--timeout", "20s"])
        .run()
        .success();
    assert!(
        ok.stderr
            .contains(&format!("API server reloaded {AUTH} with the new settings")),
        "{}",
        ok.stderr
    );
    assert!(node
        .read(AUTH)
        .unwrap()
        .contains("url: https://idp2.example.com\n"));
    assert_eq!(
        node.sh("pgrep -f kube-apiserver.py | head -n1"),
        pid,
        "no restart"
    );
}

/// 1.34: the migration replaces `--anonymous-auth=false` with the file's `anonymous` section
/// (the health probes keep working anonymously), and a later file change is proven by the
/// `last_config_info` hash.
#[test]
fn v134_migration_moves_anonymous_auth_into_the_file_and_reloads_by_hash() {
    let ca = pem();
    let mut flags = FLAGS.to_vec();
    flags.push("--anonymous-auth=false");
    flags.push("--token-auth-file=/etc/kubernetes/pki/tokens.csv");
    let node = Node::on(193)
        .file(MANIFEST, &manifest(193, "v1.34.1", &flags), 0o600)
        .file(CA, &ca, 0o600)
        .file(
            "/etc/kubernetes/pki/tokens.csv",
            "admintoken,admin,1,\"system:masters\"\n",
            0o600,
        )
        .file(
            "/etc/kubernetes/admin.conf",
            &admin_conf(193).replace("user: {}", "user:\n    token: admintoken"),
            0o600,
        )
        .start();
    let out = node
        .k8soidc("patch")
        .args(["--auth-mode", "config", "--yes", "--timeout", "30s"])
        .run()
        .success();
    assert!(
        out.stderr
            .contains("API server healthy with the new settings"),
        "{}",
        out.stderr
    );
    let file = node.read(AUTH).unwrap();
    assert!(
        file.starts_with("apiVersion: apiserver.config.k8s.io/v1\n"),
        "{file}"
    );
    assert!(
        file.ends_with("anonymous:\n  enabled: true\n  conditions:\n  - path: /livez\n  - path: /readyz\n  - path: /healthz\n"),
        "{file}"
    );
    let m = node.read(MANIFEST).unwrap();
    assert!(!m.contains("--anonymous-auth"), "{m}");
    assert!(running(&node)
        .iter()
        .all(|f| !f.starts_with("--anonymous-auth")));
    // Anonymous requests: health yes, the rest no.
    let code = |path: &str| {
        node.sh(&format!(
            "curl -sk -o /dev/null -w '%{{http_code}}' --max-time 5 https://127.0.0.193:6443{path}"
        ))
    };
    assert_eq!(code("/readyz"), "200");
    assert_eq!(code("/metrics"), "401");

    // A file-only change (new groups claim): reloaded, proven by the hash; the anonymous
    // section is kept (kube-apiserver rejects a reload that changes it).
    let pid = node.sh("pgrep -f kube-apiserver.py | head -n1");
    let dry = node
        .k8soidc("patch")
        .args(settings("https://idp.example.com"))
        .args(["--kubernetes-version", "1.34", "--dry-run"])
        .run()
        .success();
    assert!(
        dry.stdout.contains("#   reloaded = apiserver_authentication_config_controller_last_config_info{hash=\"sha256:"),
        "{}",
        dry.stdout
    );
    let ok = node
        .k8soidc("patch")
        .args(settings("https://idp.example.com"))
        .args(["--kubernetes-version", "1.34", "--yes", "--timeout", "20s"])
        .run()
        .success();
    assert!(
        ok.stderr
            .contains(&format!("API server reloaded {AUTH} with the new settings")),
        "{}",
        ok.stderr
    );
    let file = node.read(AUTH).unwrap();
    assert!(file.contains("      claim: email\n"), "{file}");
    assert!(file.contains("anonymous:\n  enabled: true\n"), "{file}");
    assert_eq!(
        node.sh("pgrep -f kube-apiserver.py | head -n1"),
        pid,
        "no restart"
    );
}

#[test]
fn file_with_a_cel_mapping_is_not_converted_to_flags() {
    let auth = "apiVersion: apiserver.config.k8s.io/v1beta1\nkind: AuthenticationConfiguration\njwt:\n- issuer:\n    url: https://idp.example.com\n    audiences: [kubernetes]\n  claimMappings:\n    username:\n      expression: '\"oidc:\" + claims.email'\n    groups:\n      claim: groups\n      prefix: ''\n";
    let m = manifest(
        194,
        "v1.32.2",
        &["--authentication-config=/etc/kubernetes/oidc/authentication-config.yaml"],
    )
    .replace(
        "  volumes:\n",
        "  volumes:\n  - hostPath:\n      path: /etc/kubernetes/oidc\n      type: DirectoryOrCreate\n    name: oidc\n",
    )
    .replace(
        "    volumeMounts:\n",
        "    volumeMounts:\n    - mountPath: /etc/kubernetes/oidc\n      name: oidc\n      readOnly: true\n",
    );
    let node = Node::on(194)
        .file(MANIFEST, &m, 0o600)
        .file(AUTH, auth, 0o600)
        .start();
    let fp = node.fingerprint();
    let out = node
        .k8soidc("patch")
        .args(["--auth-mode", "flags", "--yes", "--timeout", "20s"])
        .run()
        .status(2);
    assert_eq!(
        out.stderr.lines().find(|l| l.starts_with("error:")),
        Some("error: cannot patch the API server's OIDC settings on `root@127.0.0.194:20194`: /etc/kubernetes/oidc/authentication-config.yaml cannot be expressed as `--oidc-*` flags: jwt[0].claimMappings.username.expression; keep `--auth-mode config` for this node, or take those fields out of the file first"),
        "{}",
        out.stderr
    );
    assert_eq!(node.fingerprint(), fp, "nothing changed");
}

/// Converting takes the node's settings: another OIDC setting beside `--auth-mode` is refused
/// before anything connects, naming where it came from.
#[test]
fn conversion_refuses_other_settings_before_connecting() {
    let out = crate::test::Test::new()
        .args([
            "patch",
            "--ssh",
            "root@127.0.0.1:1",
            "--auth-mode",
            "config",
            "--yes",
        ])
        .env("K8SOIDC_USERNAME_CLAIM", "email")
        .run()
        .status(2);
    assert_eq!(
        out.stderr,
        "error: invalid --username-claim (from K8SOIDC_USERNAME_CLAIM): without --issuer-url and --client-id, `patch --auth-mode config` converts the settings the node runs and takes no other OIDC setting; give every setting (--issuer-url, --client-id, ...) to set new ones, or drop --username-claim\n"
    );
}

/// A distribution whose API server flags are lines of a file k8soidc edits over SSH and that a
/// command restarts: k3s and RKE2 (`kube-apiserver-arg` entries, fake `systemctl`), MicroK8s
/// (lines of its args file, fake `microk8s`).
struct Distro {
    /// The file holding the flags.
    file: &'static str,
    /// Where k8soidc keeps the CA and the AuthenticationConfiguration on the node.
    dir: &'static str,
    /// The command that starts the API server on the node.
    start: &'static str,
    /// The API server's port.
    port: u16,
    /// Whether the distribution starts its API server with `--anonymous-auth=false` (k3s and
    /// RKE2 do, before the user's entries: tests/fakes/node/systemctl rule 6).
    anonymous_off: bool,
}

const K3S: Distro = Distro {
    file: "/etc/rancher/k3s/config.yaml",
    dir: "/etc/rancher/k3s/oidc",
    start: "systemctl start k3s",
    port: 6443,
    anonymous_off: true,
};
const RKE2: Distro = Distro {
    file: "/etc/rancher/rke2/config.yaml",
    dir: "/etc/rancher/rke2/oidc",
    start: "systemctl start rke2-server",
    port: 6443,
    anonymous_off: true,
};
const MICROK8S: Distro = Distro {
    file: "/var/snap/microk8s/current/args/kube-apiserver",
    dir: "/var/snap/microk8s/common/oidc",
    start: "microk8s start",
    port: 16443,
    anonymous_off: false,
};

impl Distro {
    fn auth(&self) -> String {
        format!("{}/authentication-config.yaml", self.dir)
    }

    fn ca(&self) -> String {
        format!("{}/oidc-ca.pem", self.dir)
    }

    /// [`FLAGS`] with the CA where k8soidc reads it on this distribution, names without `--`.
    fn flags(&self) -> Vec<String> {
        let mut v: Vec<String> = FLAGS[..5]
            .iter()
            .map(|f| f.trim_start_matches("--").to_string())
            .collect();
        v.push(format!("oidc-ca-file={}", self.ca()));
        v
    }

    /// The flags file of a node at `addr` that runs `args` (names without `--`). MicroK8s: its
    /// 2025 default args file with RBAC already on (an operator running OIDC has turned it on).
    fn seed(&self, addr: &str, args: &[String]) -> String {
        if self.port == 16443 {
            let lines: String = args.iter().map(|a| format!("--{a}\n")).collect();
            return format!(
                "{}--bind-address={addr}\n{lines}",
                crate::test::fixture("microk8s-args/001-microk8s-2025-03f0791.args").replace(
                    "--authorization-mode=AlwaysAllow\n",
                    "--authorization-mode=RBAC,Node\n"
                )
            );
        }
        // Quoted: `oidc-groups-prefix=oidc:` would otherwise be a YAML mapping key.
        let items: String = args.iter().map(|a| format!("- \"{a}\"\n")).collect();
        let mount = match self.file.contains("rke2") {
            true => format!("kube-apiserver-extra-mount:\n- {d}:{d}:ro\n", d = self.dir),
            false => String::new(),
        };
        format!("bind-address: {addr}\n{mount}kube-apiserver-arg:\n{items}")
    }

    /// A started node running `args`, with `files` seeded (path, content).
    fn node(&self, args: &[String], files: &[(String, String)]) -> Node {
        let b = Node::next();
        let addr = b.addr();
        let mode = if self.port == 16443 { 0o660 } else { 0o600 };
        let mut b = b.file(self.file, &self.seed(&addr, args), mode);
        for (path, content) in files {
            b = b.file(path, content, 0o600);
        }
        let node = b.start();
        node.sh(self.start);
        node
    }

    /// What `running` shows besides the OIDC words: k3s' and RKE2's own `--anonymous-auth=false`.
    fn with_own(&self, words: &[String]) -> Vec<String> {
        let mut v = words.to_vec();
        if self.anonymous_off {
            v.push("--anonymous-auth=false".into());
        }
        v.sort();
        v
    }

    /// The HTTP status of an anonymous request to the node's API server.
    fn anonymous(&self, node: &Node, path: &str) -> String {
        node.sh(&format!(
            "curl -sk -o /dev/null -w '%{{http_code}}' --max-time 5 https://{}:{}{path}",
            node.addr, self.port
        ))
    }
}

/// The fingerprint without k8soidc's own backups (a failed run leaves its backup behind).
fn without_backups(fp: String) -> String {
    fp.lines()
        .filter(|l| !l.starts_with("var/lib/k8soidc/"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Dry run, then flags → file (1.34: `apiserver.config.k8s.io/v1`), a rerun that changes
/// nothing, and file → flags, on a node of `d` running [`FLAGS`]. From 1.34 kube-apiserver exits
/// when `--anonymous-auth` is given beside a file with an `anonymous` section (fake rule 11): the
/// file gets none, so k3s' and RKE2's own `--anonymous-auth=false` keeps refusing anonymous
/// requests (their health check is their kubectl with admin credentials) and MicroK8s, whose
/// args file does not set the flag, keeps answering them.
fn flags_to_file_and_back(d: &Distro) {
    let ca = pem();
    let node = d.node(&d.flags(), &[(d.ca(), ca.clone())]);
    let mut before: Vec<String> = d.flags().iter().map(|f| format!("--{f}")).collect();
    before = d.with_own(&before);
    assert_eq!(running(&node), before);
    let fp = node.fingerprint();
    let flags = node.read(d.file).unwrap();

    let dry = node
        .k8soidc("patch")
        .args(["--auth-mode", "config", "--kubernetes-version", "1.34"])
        .args(["--dry-run"])
        .run()
        .success();
    assert!(
        dry.stdout.contains("`--oidc-username-prefix` is not set: the file states kube-apiserver's implicit prefix `https://idp.example.com#`"),
        "{}",
        dry.stdout
    );
    let v1 = expected_file(&ca).replace(
        "apiserver.config.k8s.io/v1beta1",
        "apiserver.config.k8s.io/v1",
    );
    let shown: String = v1.lines().map(|l| format!("    {l}\n")).collect();
    assert!(
        dry.stdout.contains(&format!(
            "write {} (mode 0600, new file):\n{shown}",
            d.auth()
        )),
        "the file as it will be written: {}",
        dry.stdout
    );
    let diff = |sign: char, word: &str| {
        dry.stdout
            .lines()
            .any(|l| l.starts_with(sign) && !l.starts_with("+ [") && l.contains(word))
    };
    assert!(
        diff('-', "oidc-issuer-url=https://idp.example.com")
            && diff('-', "oidc-required-claim=hd=example.com")
            && diff('+', &format!("authentication-config={}", d.auth())),
        "{}",
        dry.stdout
    );
    assert_eq!(node.fingerprint(), fp, "a dry run changes nothing");

    converted(
        &node,
        &[
            "--auth-mode",
            "config",
            "--kubernetes-version",
            "1.34",
            "--timeout",
            "30s",
        ],
    );
    let file = node.read(&d.auth()).unwrap();
    assert_eq!(file, v1, "no `anonymous` section");
    assert_eq!(
        file,
        expected_file(&ca).replace(
            "apiserver.config.k8s.io/v1beta1",
            "apiserver.config.k8s.io/v1"
        ),
        "no `anonymous` section"
    );
    let after = node.read(d.file).unwrap();
    assert!(!after.contains("oidc-"), "{after}");
    assert!(
        after.contains(&format!("authentication-config={}", d.auth())),
        "{after}"
    );
    assert!(!after.contains("anonymous-auth"), "{after}");
    assert_eq!(
        running(&node),
        d.with_own(&[format!("--authentication-config={}", d.auth())])
    );
    assert_eq!(
        d.anonymous(&node, "/readyz"),
        if d.anonymous_off { "401" } else { "200" },
        "anonymous requests are answered as before the conversion"
    );

    // Again: already converted, nothing changes.
    already_converted(
        &node,
        &["--auth-mode", "config", "--kubernetes-version", "1.34"],
    );

    // And back: the implicit prefix and the username claim's default are now stated.
    converted(&node, &["--auth-mode", "flags", "--timeout", "30s"]);
    let mut want = before.clone();
    want.push("--oidc-username-claim=sub".into());
    want.push("--oidc-username-prefix=https://idp.example.com#".into());
    want.sort();
    assert_eq!(running(&node), want);
    assert_eq!(node.read(&d.ca()).unwrap(), ca, "the CA is the same bytes");
    assert_ne!(
        node.read(d.file).unwrap(),
        flags,
        "now with the prefix stated"
    );
}

#[test]
fn k3s_flags_to_file_and_back_keeps_the_cluster_healthy() {
    flags_to_file_and_back(&K3S);
}

#[test]
fn rke2_flags_to_file_and_back_keeps_the_cluster_healthy() {
    flags_to_file_and_back(&RKE2);
}

#[test]
fn microk8s_flags_to_file_and_back_keeps_the_cluster_healthy() {
    flags_to_file_and_back(&MICROK8S);
}

/// An API server that never becomes ready with `--authentication-config`: the flags file, the
/// new file and the CA are as they were, byte for byte, and the old flags run again.
fn failed_conversion_rolls_back(d: &Distro) {
    let ca = pem();
    let node = d.node(&d.flags(), &[(d.ca(), ca)]);
    node.set_never_ready("--authentication-config");
    let fp = without_backups(node.fingerprint());
    let before = running(&node);
    rolled_back(
        &node,
        &[
            "--auth-mode",
            "config",
            "--kubernetes-version",
            "1.34",
            "--timeout",
            "4s",
        ],
    );
    assert_eq!(
        node.read(&d.auth()),
        None,
        "the new file must be removed again"
    );
    assert_eq!(
        without_backups(node.fingerprint()),
        fp,
        "not byte-identical"
    );
    assert_eq!(running(&node), before);
}

#[test]
fn k3s_failed_conversion_rolls_back_byte_identically() {
    failed_conversion_rolls_back(&K3S);
}

#[test]
fn rke2_failed_conversion_rolls_back_byte_identically() {
    failed_conversion_rolls_back(&RKE2);
}

#[test]
fn microk8s_failed_conversion_rolls_back_byte_identically() {
    failed_conversion_rolls_back(&MICROK8S);
}

/// A node running a file that says more than flags can: `--auth-mode flags` refuses, naming
/// every such field, and changes nothing.
fn file_not_expressible_as_flags_is_refused(d: &Distro, file: &str, fields: &str) {
    let node = d.node(
        &[format!("authentication-config={}", d.auth())],
        &[(d.auth(), file.to_string())],
    );
    assert_eq!(
        running(&node),
        d.with_own(&[format!("--authentication-config={}", d.auth())])
    );
    let fp = node.fingerprint();
    let out = node
        .k8soidc("patch")
        .args(["--auth-mode", "flags", "--yes", "--timeout", "20s"])
        .run()
        .status(2);
    assert_eq!(
        out.stderr.lines().find(|l| l.starts_with("error:")),
        Some(format!("error: cannot patch the API server's OIDC settings on `{}`: {} cannot be expressed as `--oidc-*` flags: {fields}; keep `--auth-mode config` for this node, or take those fields out of the file first", node.target(), d.auth()).as_str()),
        "{}",
        out.stderr
    );
    assert_eq!(node.fingerprint(), fp, "nothing changed");
}

#[test]
fn k3s_file_with_two_issuers_is_not_converted_to_flags() {
    let file = "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt:\n- issuer:\n    url: https://idp.example.com\n    audiences: [kubernetes]\n  claimMappings:\n    username: {claim: sub, prefix: 'a:'}\n- issuer:\n    url: https://idp2.example.com\n    audiences: [kubernetes]\n  claimMappings:\n    username: {claim: sub, prefix: 'b:'}\n";
    file_not_expressible_as_flags_is_refused(
        &K3S,
        file,
        "jwt (2 authenticators; the flags carry exactly one)",
    );
}

#[test]
fn rke2_file_with_a_cel_mapping_is_not_converted_to_flags() {
    let file = "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt:\n- issuer:\n    url: https://idp.example.com\n    audiences: [kubernetes]\n  claimValidationRules:\n  - expression: claims.email_verified == true\n    message: verified\n  claimMappings:\n    username:\n      expression: '\"oidc:\" + claims.email'\n";
    file_not_expressible_as_flags_is_refused(
        &RKE2,
        file,
        "jwt[0].claimValidationRules[0].expression, jwt[0].claimValidationRules[0].message, jwt[0].claimMappings.username.expression",
    );
}

/// MicroK8s sets no `--anonymous-auth`, so its file may carry an `anonymous` section; one with
/// conditions per path is more than `--anonymous-auth` can say.
#[test]
fn microk8s_file_with_anonymous_conditions_is_not_converted_to_flags() {
    let file = "apiVersion: apiserver.config.k8s.io/v1\nkind: AuthenticationConfiguration\njwt:\n- issuer:\n    url: https://idp.example.com\n    audiences: [kubernetes]\n  claimMappings:\n    username: {claim: sub, prefix: 'oidc:'}\n    uid: {claim: sub}\nanonymous:\n  enabled: true\n  conditions:\n  - path: /readyz\n";
    file_not_expressible_as_flags_is_refused(
        &MICROK8S,
        file,
        "jwt[0].claimMappings.uid, anonymous.conditions (--anonymous-auth allows every path or none)",
    );
}

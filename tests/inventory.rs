//! `patch --inventory FILE`: bad inventories refused before any host is touched (file, line,
//! field), many clusters in parallel against real sshd test nodes (tests/node.rs), the report
//! (table and JSON), the round-trip budget, and faults that stop one cluster only.
//! Node numbers 150..=199 belong to this file.

use crate::node::Node;
use crate::test::{fixture, Test};

const MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";

/// `--skip-check`: idp.example.com must never be contacted.
const FLAGS: [&str; 3] = ["patch", "--skip-check", "--yes"];

const DEFAULTS: &str = "defaults:\n  issuer-url: https://idp.example.com\n  client-id: kubernetes\n  username-claim: email\n  username-prefix: \"oidc:\"\n";

/// An inventory: `(name, distro, hosts)` per cluster, after [`DEFAULTS`].
fn inventory(clusters: &[(&str, &str, Vec<String>)]) -> String {
    let mut s = format!("{DEFAULTS}clusters:\n");
    for (name, distro, hosts) in clusters {
        s.push_str(&format!(
            "  - name: {name}\n    distro: {distro}\n    hosts:\n"
        ));
        for h in hosts {
            s.push_str(&format!("      - {h}\n"));
        }
    }
    s
}

/// One ssh config for several nodes: the first node's client key is authorized on all, and
/// every host key is known.
struct Fleet {
    dir: tempfile::TempDir,
}

impl Fleet {
    fn new(nodes: &[&Node]) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let first = nodes[0].dir.path();
        let mut known = String::new();
        for n in nodes {
            known.push_str(&std::fs::read_to_string(n.dir.path().join("known_hosts")).unwrap());
            known.push('\n');
            let keys = n.dir.path().join("authorized_keys");
            let mut k = std::fs::read_to_string(&keys).unwrap();
            k.push_str(&std::fs::read_to_string(first.join("client.pub")).unwrap());
            std::fs::write(&keys, k).unwrap();
        }
        std::fs::write(dir.path().join("known_hosts"), known).unwrap();
        std::fs::write(
            dir.path().join("ssh_config"),
            format!(
                "Host *\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  BatchMode yes\n  LogLevel ERROR\n",
                first.join("client").display(),
                dir.path().join("known_hosts").display()
            ),
        )
        .unwrap();
        Fleet { dir }
    }

    /// `k8soidc patch --inventory inv.yaml --ssh-config ...` with the inventory written.
    fn patch(&self, inv: &str) -> Test {
        Test::new().write("inv.yaml", inv).args(FLAGS).args([
            "--inventory",
            "inv.yaml",
            "--ssh-config",
            self.dir.path().join("ssh_config").to_str().unwrap(),
        ])
    }
}

fn json(stdout: &str) -> serde_json::Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Host rows of a JSON report as `(cluster, host, distro, result)`.
fn results(report: &serde_json::Value) -> Vec<(String, String, String, String)> {
    let mut v = Vec::new();
    for c in report["clusters"].as_array().unwrap() {
        for h in c["hosts"].as_array().unwrap() {
            let s = |x: &serde_json::Value| x.as_str().unwrap_or("-").to_string();
            v.push((
                s(&c["name"]),
                s(&h["host"]),
                s(&h["distro"]),
                s(&h["result"]),
            ));
        }
    }
    v
}

#[test]
fn bad_inventory_refused_naming_file_line_and_field() {
    let ok = "clusters:\n  - name: a\n    hosts:\n      - root@127.0.0.199:20199\n";
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{DEFAULTS}clusters:\n  - name: a\n    distro: kind\n    hosts: [h1]\n"),
            "inv.yaml:8: clusters[0].distro: unknown distro `kind`: use auto, kubeadm, microk8s, k3s or rke2",
        ),
        (
            format!("{DEFAULTS}clusters:\n  - name: a\n    hosts: [h1, 'root@h2:22']\n  - name: b\n    hosts:\n      - admin@H1\n"),
            "inv.yaml:11: clusters[1].hosts[0]: duplicate host `h1:22` (also clusters[0].hosts[0])",
        ),
        (
            format!("{DEFAULTS}clusters:\n  - name: a\n    hosts: [h1]\n  - name: a\n    hosts: [h2]\n"),
            "inv.yaml:9: clusters[1].name: duplicate cluster name `a`",
        ),
        (
            format!("{DEFAULTS}clusters:\n  - name: a\n    hosts: [h1]\n    setings: {{}}\n"),
            "inv.yaml:9: clusters[0]: unknown field `setings`",
        ),
        (
            format!("{DEFAULTS}clusters:\n  - name: a\n    hosts: [h1]\n    settings:\n      isuer-url: x\n"),
            "inv.yaml:10: clusters[0].settings: unknown field `isuer-url`",
        ),
        (
            format!("{DEFAULTS}clusters:\n  - name: a\n"),
            "inv.yaml:7: clusters[0]: missing field `hosts`",
        ),
        (
            format!("{DEFAULTS}clusters:\n  - name: a\n    hosts: []\n"),
            "inv.yaml:8: clusters[0].hosts: no hosts",
        ),
        (
            format!("{DEFAULTS}clusters:\n  - name: a\n    hosts: [h1]\n  - name: b\n    hosts: [h2]\n    settings:\n      issuer-url: http://idp.example.com\n"),
            "inv.yaml:12: clusters[1].settings.issuer-url: invalid --issuer-url `http://idp.example.com`: the issuer must be an https URL",
        ),
        (
            "defaults:\n  issuer-url: http://idp.example.com\n  client-id: k\nclusters:\n  - name: a\n    hosts: [h1]\n".to_string(),
            "inv.yaml:2: defaults.issuer-url: invalid --issuer-url `http://idp.example.com`: the issuer must be an https URL",
        ),
        (
            ok.to_string(),
            "inv.yaml:2: clusters[0]: missing issuer-url: give it in the cluster's `settings`, in `defaults`, or with --issuer-url",
        ),
    ];
    for (yaml, want) in cases {
        let out = Test::new()
            .write("inv.yaml", &yaml)
            .args(FLAGS)
            .args(["--inventory", "inv.yaml"])
            .run()
            .status(2);
        assert!(
            out.stderr.contains(want),
            "expected {want:?} for\n{yaml}\ngot: {}",
            out.stderr
        );
        assert_eq!(
            out.stderr.trim_end().lines().count(),
            1,
            "one line: {}",
            out.stderr
        );
    }
    // A flag beats the inventory (ansible's -e): the cluster's bad issuer is overridden.
    let out = Test::new()
        .write("inv.yaml", "clusters:\n  - name: a\n    hosts: ['root@127.0.0.199:20199']\n    settings:\n      issuer-url: http://idp.example.com\n")
        .args(FLAGS)
        .args(["--inventory", "inv.yaml", "--issuer-url", "https://idp.example.com", "--client-id", "k", "--username-prefix", "-"])
        .args(["--ssh-config", "/dev/null"])
        .run()
        .status(2);
    assert!(
        out.stderr.contains(
            "inv.yaml:3: clusters[0].hosts[0]: cannot connect to `root@127.0.0.199:20199`"
        ),
        "settings passed, the connection is what fails: {}",
        out.stderr
    );
    // --inventory with --ssh is a usage error.
    Test::new()
        .args(FLAGS)
        .args(["--inventory", "inv.yaml", "--ssh", "h1"])
        .run()
        .status(2);
}

#[test]
fn unreachable_host_refused_before_any_host_is_touched() {
    let node = Node::next().kubeadm().start();
    let fleet = Fleet::new(&[&node]);
    let fp = node.fingerprint();
    let inv = inventory(&[
        ("live", "kubeadm", vec![node.target()]),
        ("gone", "auto", vec!["root@127.0.0.151:20151".into()]),
    ]);
    let out = fleet.patch(&inv).args(["--timeout", "20s"]).run().status(2);
    assert!(
        out.stderr.contains(
            "inv.yaml:14: clusters[1].hosts[0]: cannot connect to `root@127.0.0.151:20151`"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("nothing was changed on any host"),
        "{}",
        out.stderr
    );
    assert_eq!(node.fingerprint(), fp, "the live node changed");
    assert_eq!(
        node.sh("ls -A /var/lib/k8soidc"),
        "backups\n",
        "a command ran on the live node: the lock file exists"
    );
}

/// A kubeadm node with /etc/kubernetes/admin.conf and the kubeadm-config ConfigMap in the fake
/// kubectl's store (as tests/ssh.rs `kubeadm_with_configmap`), so all four round trips happen.
fn kubeadm_with_configmap(shared: bool) -> Node {
    let b = Node::next();
    let addr = b.addr();
    let admin = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: https://{addr}:6443\n  name: kubernetes\ncontexts:\n- context:\n    cluster: kubernetes\n    user: kubernetes-admin\n  name: kubernetes-admin@kubernetes\ncurrent-context: kubernetes-admin@kubernetes\nusers:\n- name: kubernetes-admin\n  user: {{}}\n"
    );
    let cc = "apiServer: {}\napiVersion: kubeadm.k8s.io/v1beta4\nclusterName: kubernetes\nkind: ClusterConfiguration\nkubernetesVersion: v1.32.2\n";
    let cm = serde_json::json!({"data": {"ClusterConfiguration": cc}}).to_string();
    let b = b
        .kubeadm()
        .file("/etc/kubernetes/admin.conf", &admin, 0o600)
        .file(
            "/etc/kubernetes/fake-apiserver/configmaps/kube-system/kubeadm-config.json",
            &cm,
            0o600,
        );
    if shared { b.with_others() } else { b }.start()
}

#[test]
fn three_clusters_mixed_distros_converge_in_parallel_then_unchanged() {
    const K3S: &str = "/etc/rancher/k3s/config.yaml";
    const MK: &str = "/var/snap/microk8s/current/args/kube-apiserver";
    let ka = kubeadm_with_configmap(false);
    let kb = Node::next().kubeadm().with_others().start();
    let b = Node::next();
    let addr = b.addr();
    let k3 = b
        .file(
            K3S,
            &format!(
                "bind-address: {addr}\n{}",
                fixture("k3s-config/003-sylchamber-control-plane.yaml")
            ),
            0o600,
        )
        .with_others()
        .start();
    k3.sh("systemctl start k3s");
    let nb = Node::next();
    let addr = nb.addr();
    let mk = nb
        .file(
            MK,
            &format!(
                "{}--bind-address={addr}\n",
                fixture("microk8s-args/001-microk8s-2025-03f0791.args")
            ),
            0o660,
        )
        .with_others()
        .start();
    mk.sh("microk8s start");
    let nodes = [&ka, &kb, &k3, &mk];
    let fleet = Fleet::new(&nodes);
    let inv = inventory(&[
        ("kc", "kubeadm", vec![ka.target(), kb.target()]),
        ("k3", "auto", vec![k3.target()]),
        ("mk", "microk8s", vec![mk.target()]),
    ]);
    let fps: Vec<String> = nodes.iter().map(|n| n.fingerprint()).collect();

    // Dry run: plans grouped per cluster on stdout, nothing changes.
    let dry = fleet
        .patch(&inv)
        .args(["--dry-run", "--parallel", "2"])
        .run()
        .success();
    let now: Vec<String> = nodes.iter().map(|n| n.fingerprint()).collect();
    assert_eq!(now, fps, "the dry run changed a node");
    let (kc, k3p, mkp) = (
        dry.stdout.find("# cluster kc\n").expect("kc plans"),
        dry.stdout.find("# cluster k3\n").expect("k3 plans"),
        dry.stdout.find("# cluster mk\n").expect("mk plans"),
    );
    assert!(kc < k3p && k3p < mkp, "in inventory order: {}", dry.stdout);
    let kc_plans = &dry.stdout[kc..k3p];
    for want in [
        format!("{}: patch kubeadm", ka.target()),
        format!("{}: patch kubeadm", kb.target()),
        "+    - --oidc-issuer-url=https://idp.example.com".to_string(),
    ] {
        assert!(kc_plans.contains(&want), "{want} missing: {kc_plans}");
    }
    assert!(dry.stdout[k3p..mkp].contains("patch k3s"), "{}", dry.stdout);
    assert!(
        dry.stdout[mkp..].contains("patch microk8s"),
        "{}",
        dry.stdout
    );
    assert!(dry.stderr.contains("dry run"), "{}", dry.stderr);

    // The real run, JSON report.
    let out = fleet
        .patch(&inv)
        .args(["--parallel", "2", "--timeout", "30s", "-o", "json", "-v"])
        .run();
    assert_eq!(out.status, 0, "{}\n{}", out.stdout, out.stderr);
    let report = json(&out.stdout);
    assert_eq!(report["failedClusters"], 0, "{report}");
    let (a, b, c, d) = (ka.target(), kb.target(), k3.target(), mk.target());
    let row = |cl: &str, h: &str, di: &str, r: &str| {
        (cl.to_string(), h.to_string(), di.to_string(), r.to_string())
    };
    assert_eq!(
        results(&report),
        vec![
            row("kc", &a, "kubeadm", "patched"),
            row("kc", &b, "kubeadm", "patched"),
            row("k3", &c, "k3s", "patched"),
            row("mk", &d, "microk8s", "patched"),
        ]
    );
    let clusters = report["clusters"].as_array().unwrap();
    assert_eq!(
        clusters
            .iter()
            .map(|c| (
                c["name"].as_str().unwrap(),
                c["distro"].as_str().unwrap(),
                c["status"].as_str().unwrap()
            ))
            .collect::<Vec<_>>(),
        vec![
            ("kc", "kubeadm", "ok"),
            ("k3", "auto", "ok"),
            ("mk", "microk8s", "ok")
        ]
    );
    // Round trips: at most 3 per host besides the health wait (which reads back the written
    // files in its own round trip); the debug line says the same.
    let mut measured = Vec::new();
    for c in clusters {
        for h in c["hosts"].as_array().unwrap() {
            let (host, trips, polls) = (
                h["host"].as_str().unwrap(),
                h["roundTrips"].as_u64().unwrap(),
                h["healthPolls"].as_u64().unwrap(),
            );
            measured.push(format!("{}={trips}+{polls}", h["distro"].as_str().unwrap()));
            assert!(trips <= 3, "{host}: {trips} round trips: {report}");
            assert!(
                polls >= 2,
                "{host}: healthy means two passing polls: {report}"
            );
            assert!(h["error"].is_null(), "{report}");
            assert!(
                out.stderr.contains(&format!(
                    "debug: {host}: {trips} SSH round trips (+{polls} health polls)"
                )),
                "{}",
                out.stderr
            );
        }
    }
    eprintln!("round trips (distro=trips+polls): {}", measured.join(" "));
    assert_eq!(
        clusters[0]["hosts"][0]["roundTrips"], 3,
        "kubeadm with the ConfigMap: (1) read (2) apply (3) ConfigMap, besides the wait: {report}"
    );
    // Each host's lines are prefixed with its cluster.
    assert!(
        out.stderr.contains(&format!(
            "[kc/{a}] API server healthy with the new settings"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("[kc/{a}] updated: kubectl")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("[mk/{d}] wrote {MK}")),
        "{}",
        out.stderr
    );
    // The files carry the flags.
    for n in [&ka, &kb] {
        assert!(n
            .read(MANIFEST)
            .unwrap()
            .contains("- --oidc-issuer-url=https://idp.example.com\n"));
    }
    assert!(k3
        .read(K3S)
        .unwrap()
        .contains("  - oidc-issuer-url=https://idp.example.com\n"));
    assert!(mk
        .read(MK)
        .unwrap()
        .contains("--oidc-issuer-url=https://idp.example.com\n"));
    let cm = ka
        .read("/etc/kubernetes/fake-apiserver/configmaps/kube-system/kubeadm-config.json")
        .unwrap();
    assert!(cm.contains("oidc-issuer-url"), "{cm}");

    // Second run: the table says unchanged everywhere; nothing is touched.
    let fps: Vec<String> = nodes.iter().map(|n| n.fingerprint()).collect();
    let again = fleet.patch(&inv).args(["--parallel", "2"]).run().success();
    let now: Vec<String> = nodes.iter().map(|n| n.fingerprint()).collect();
    assert_eq!(now, fps, "the second run changed a node");
    let table: Vec<Vec<&str>> = again
        .stderr
        .split("SUMMARY\n")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        table[0],
        ["CLUSTER", "HOST", "DISTRO", "RESULT", "BACKUP"],
        "{}",
        again.stderr
    );
    assert_eq!(
        table[1..5].to_vec(),
        vec![
            vec!["kc", a.as_str(), "kubeadm", "unchanged"],
            vec!["kc", b.as_str(), "kubeadm", "unchanged"],
            vec!["k3", c.as_str(), "k3s", "unchanged"],
            vec!["mk", d.as_str(), "microk8s", "unchanged"],
        ],
        "{}",
        again.stderr
    );
    assert_eq!(
        table[5],
        ["3", "clusters,", "0", "failed"],
        "{}",
        again.stderr
    );
}

/// Twenty single-host clusters, eight at a time: one API server never becomes ready with the
/// new flags (rolled back, byte for byte), one SSH connection drops after the first round trip
/// (untouched); the other eighteen converge, and the report says exactly that.
#[test]
fn twenty_nodes_one_never_ready_one_dropped_the_rest_converge() {
    let nodes: Vec<Node> = (0..20)
        .map(|i| {
            let b = Node::next().kubeadm();
            if i == 0 { b } else { b.with_others() }.start()
        })
        .collect();
    let refs: Vec<&Node> = nodes.iter().collect();
    let fleet = Fleet::new(&refs);
    let (never, dropped) = (5, 10); // the sixth and the eleventh node
    nodes[never].set_never_ready("--oidc-issuer-url");
    let before: Vec<String> = nodes.iter().map(|n| n.read(MANIFEST).unwrap()).collect();
    let fp_dropped = nodes[dropped].fingerprint();
    // Clusters c1..c20, whatever numbers the nodes got.
    let clusters: Vec<(String, &str, Vec<String>)> = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| (format!("c{}", i + 1), "auto", vec![node.target()]))
        .collect();
    let inv = inventory(
        &clusters
            .iter()
            .map(|(a, b, c)| (a.as_str(), *b, c.clone()))
            .collect::<Vec<_>>(),
    );
    let out = fleet
        .patch(&inv)
        .args(["--parallel", "8", "--timeout", "20s", "-o", "json"])
        .env(
            "K8SOIDC_TEST_DISCONNECT_AFTER",
            &format!("lock@{}", nodes[dropped].target()),
        )
        .run()
        .status(1);
    let report = json(&out.stdout);
    assert_eq!(report["failedClusters"], 2, "{report}\n{}", out.stderr);
    for (i, c) in report["clusters"].as_array().unwrap().iter().enumerate() {
        let h = &c["hosts"][0];
        let (status, result) = (c["status"].as_str().unwrap(), h["result"].as_str().unwrap());
        let m = nodes[i].read(MANIFEST).unwrap();
        match i {
            _ if i == never => {
                assert_eq!((status, result), ("failed", "rolled back"), "{c}");
                assert_eq!(m, before[i], "not byte-identical after the rollback");
            }
            _ if i == dropped => {
                assert_eq!((status, result), ("failed", "failed"), "{c}");
                assert!(
                    h["error"].as_str().unwrap().contains("lost the connection"),
                    "{c}"
                );
                assert_eq!(m, before[i], "the dropped node was touched");
                assert_eq!(
                    nodes[i].fingerprint(),
                    fp_dropped,
                    "the dropped node was touched"
                );
            }
            _ => {
                assert_eq!((status, result), ("ok", "patched"), "{c}\n{}", out.stderr);
                assert!(
                    m.contains("- --oidc-issuer-url=https://idp.example.com\n"),
                    "{m}"
                );
            }
        }
    }
    assert!(
        out.stderr.contains("2 of 20 clusters failed (c6, c11)"),
        "{}",
        out.stderr
    );
}

/// Issue 13 point 5's other side: masters end 10 s after their last client (ControlPersist=10s),
/// yet a host connected up front waits longer than that for its turn (here the first host's
/// API server takes 14 s to restart); the multiplexing client k8soidc keeps on each connection
/// holds its master, so the second host is still reachable when its turn comes.
#[test]
fn a_host_waiting_its_turn_longer_than_the_masters_idle_time_keeps_its_connection() {
    // Bench mode: the API server's start-up is a sleep of NODE_DIR/apiserver-delay seconds,
    // read at each start (0.5 s by default): quick to boot, then 14 s for the patched start.
    let slow = Node::next()
        .kubeadm()
        .env("FAKE_APISERVER_BENCH", "1")
        .start();
    std::fs::write(slow.dir.path().join("apiserver-delay"), "14").unwrap();
    let next = Node::next().kubeadm().with_others().start();
    let fleet = Fleet::new(&[&slow, &next]);
    let inv = inventory(&[("kc", "kubeadm", vec![slow.target(), next.target()])]);
    let out = fleet.patch(&inv).args(["--timeout", "60s"]).run().success();
    for n in [&slow, &next] {
        assert!(
            n.read("/etc/kubernetes/manifests/kube-apiserver.yaml")
                .unwrap()
                .contains("--oidc-issuer-url=https://idp.example.com"),
            "{}: {}",
            n.target(),
            out.stderr
        );
    }
}

/// Issue 16: every host is connected to before any change (the check above), but only the
/// first `--parallel` clusters keep their connections; the others are closed and opened again
/// at their cluster's turn, so the `ssh` masters alive at once follow `--parallel`, not the
/// inventory's size. A host that is no longer reachable at its turn fails its cluster,
/// untouched, and the others go on.
#[test]
fn later_clusters_connect_at_their_turn_and_an_unreachable_one_fails_alone() {
    // Bench mode: the first node's patched API server takes 4 s to start, time enough to look.
    let slow = Node::next()
        .kubeadm()
        .env("FAKE_APISERVER_BENCH", "1")
        .start();
    std::fs::write(slow.dir.path().join("apiserver-delay"), "4").unwrap();
    let gone = Node::next().kubeadm().with_others().start();
    let last = Node::next().kubeadm().with_others().start();
    let fleet = Fleet::new(&[&slow, &gone, &last]);
    let inv = inventory(&[
        ("c1", "kubeadm", vec![slow.target()]),
        ("c2", "kubeadm", vec![gone.target()]),
        ("c3", "kubeadm", vec![last.target()]),
    ]);
    let (fp_gone, gone_target) = (gone.fingerprint(), gone.target());
    let tmp = tempfile::tempdir().unwrap();
    let tmpdir = tmp.path().display().to_string();
    let run = fleet
        .patch(&inv)
        .args(["--parallel", "1", "--timeout", "60s", "-o", "json"])
        .env("TMPDIR", &tmpdir)
        .spawn();
    let masters = || {
        let out = std::process::Command::new("pgrep")
            .args(["-a", "-f", &format!("{tmpdir}/k8soidc-")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // c1 committed (so the up-front check of all three is over) and waits for its API server.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !slow
        .read(MANIFEST)
        .unwrap_or_default()
        .contains("--oidc-issuer-url")
    {
        assert!(std::time::Instant::now() < deadline, "c1 was never patched");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // One master now: c1's. c2's and c3's were closed after the check (bounded wait: a closed
    // master takes a moment to exit).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while masters().len() != 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "expected c1's master alone: {:?}",
            masters()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(gone.fingerprint(), fp_gone, "the check changed c2's node");
    drop(gone); // its sshd and everything on it stop: unreachable from now on
    let out = run.wait().status(1);
    let report = json(&out.stdout);
    let rows = results(&report);
    let row = |cl: &str, h: &str, r: &str| {
        (
            cl.to_string(),
            h.to_string(),
            "kubeadm".to_string(),
            r.to_string(),
        )
    };
    assert_eq!(rows[0], row("c1", &slow.target(), "patched"), "{report}");
    assert_eq!(
        (rows[1].0.as_str(), rows[1].1.as_str(), rows[1].3.as_str()),
        ("c2", gone_target.as_str(), "failed"),
        "{report}"
    );
    let err = report["clusters"][1]["hosts"][0]["error"]
        .as_str()
        .unwrap_or("");
    assert!(err.contains("cannot connect"), "{report}");
    assert_eq!(rows[2], row("c3", &last.target(), "patched"), "{report}");
    assert_eq!(report["failedClusters"], 1, "{report}");
    assert!(
        out.stderr.contains("1 of 3 clusters failed (c2)"),
        "{}",
        out.stderr
    );
}

/// An interrupted inventory run ends as an interrupted single-host patch does: the host in its
/// health wait is restored, and the exit status is 128 + the signal (SIGTERM: 143), not 1.
#[test]
fn sigterm_during_an_inventory_run_restores_and_exits_143() {
    let node = Node::next().kubeadm().start();
    node.set_never_ready("--oidc-issuer-url");
    let before = node.read(MANIFEST).unwrap();
    let fleet = Fleet::new(&[&node]);
    let run = fleet
        .patch(&inventory(&[("a", "kubeadm", vec![node.target()])]))
        .args(["--timeout", "120s"])
        .spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !node.read(MANIFEST).unwrap().contains("--oidc-issuer-url") {
        assert!(std::time::Instant::now() < deadline, "the run never wrote");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    run.signal("TERM");
    let out = run.wait().status(143);
    assert!(
        out.stderr
            .contains("error: interrupted (SIGTERM): 1 of 1 clusters failed (a);"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("restored; API server healthy with the previous settings"),
        "{}",
        out.stderr
    );
    assert_eq!(node.read(MANIFEST).unwrap(), before, "restored");
}

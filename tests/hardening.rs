//! Issue 13 ("Hardening"), the points about a node's transaction, each against a real-sshd
//! test node (tests/node.rs). Node numbers 170..=179 belong to this file.

use crate::node::Node;

const MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";

/// The OIDC flags; `--skip-check` because idp.example.com must never be contacted.
fn oidc() -> Vec<&'static str> {
    vec![
        "--skip-check",
        "--issuer-url",
        "https://idp.example.com",
        "--client-id",
        "kubernetes",
        "--username-claim",
        "email",
        "--username-prefix",
        "oidc:",
    ]
}

/// Patches `node` and returns the id of the backup it made.
fn patched(node: &Node) -> String {
    node.k8soidc("patch")
        .args(oidc())
        .args(["--yes", "--timeout", "20s"])
        .run()
        .success();
    node.sh("ls /var/lib/k8soidc/backups").trim().to_string()
}

/// Point 2: `rollback` must not follow a planted staging path. A symlink to the manifests
/// directory at the path a restore stages through once made the restore write `manifests/1`
/// (a pod the kubelet runs) and chown/chmod the directory.
#[test]
fn p2_rollback_never_follows_a_planted_staging_path() {
    let node = Node::on(170).kubeadm().start();
    let before = node.read(MANIFEST).unwrap();
    let id = patched(&node);
    node.sh("ln -s /etc/kubernetes/manifests /etc/kubernetes/.k8soidc-kube-apiserver.yaml.new; ln -s /etc/kubernetes/manifests /etc/kubernetes/manifests/.k8soidc-kube-apiserver.yaml.new");
    let dir_before = node.sh("stat -c '%a %u:%g' /etc/kubernetes/manifests");
    node.k8soidc("rollback")
        .args(["--to", &id, "--yes", "--timeout", "30s"])
        .run()
        .success();
    assert_eq!(node.read(MANIFEST).unwrap(), before);
    assert_eq!(
        node.sh("ls -A /etc/kubernetes/manifests; stat -c '%F %a' /etc/kubernetes/manifests/kube-apiserver.yaml"),
        ".k8soidc-kube-apiserver.yaml.new\nkube-apiserver.yaml\nregular file 600\n",
        "nothing was written through the planted links"
    );
    assert_eq!(
        node.sh("stat -c '%a %u:%g' /etc/kubernetes/manifests"),
        dir_before
    );
}

/// Point 7: a newest backup left incomplete by a crash (no SHA256SUMS, or files that fail
/// them) is listed as incomplete, and a plain `rollback` restores the newest complete one,
/// saying so, instead of refusing until `--to` is given.
#[test]
fn p7_incomplete_newest_backup_is_listed_and_skipped() {
    let node = Node::on(171).kubeadm().start();
    let before = node.read(MANIFEST).unwrap();
    let id = patched(&node);
    // A later run that crashed while backing up: index and copy, no SHA256SUMS.
    let b = "/var/lib/k8soidc/backups";
    node.sh(&format!(
        "cp -a {b}/{id} {b}/29991231T000000Z && rm {b}/29991231T000000Z/SHA256SUMS"
    ));
    let list = node.k8soidc("backups").run().success();
    assert!(
        list.stdout.ends_with(&format!(
            "29991231T000000Z  {MANIFEST}  (incomplete: it fails its checksums; a run stopped while writing it)\n{id}  {MANIFEST}\n"
        )),
        "{}",
        list.stdout
    );
    let back = node
        .k8soidc("rollback")
        .args(["--yes", "--timeout", "30s"])
        .run()
        .success();
    assert!(
        back.stderr.contains(&format!(
            "backup 29991231T000000Z is incomplete (it fails its checksums); restoring {id}, the newest complete backup"
        )),
        "{}",
        back.stderr
    );
    assert_eq!(node.read(MANIFEST).unwrap(), before);
    // `--to` the incomplete one is still refused by its checksums, and changes nothing.
    let fp = node.fingerprint();
    let out = node
        .k8soidc("rollback")
        .args(["--to", "29991231T000000Z", "--yes", "--timeout", "30s"])
        .run()
        .status(1);
    assert!(out.stderr.contains("fails its checksums"), "{}", out.stderr);
    assert_eq!(node.fingerprint(), fp);
}

/// Point 1: a manifest that is a symlink to a 0600 file. The patch once replaced the link by a
/// regular file of mode 0777 (the link's own mode) and the rollback restored that. Now the
/// write goes through the link (the link stays; mode and owner are the target's), and both the
/// automatic restore and `rollback` bring back exactly what was there.
#[test]
fn p1_symlinked_manifest_is_written_through_and_restored_exactly() {
    let node = Node::on(172).kubeadm().start();
    let before = node.read(MANIFEST).unwrap();
    node.sh("mkdir -p /etc/kubernetes/real && mv /etc/kubernetes/manifests/kube-apiserver.yaml /etc/kubernetes/real/ && chown 0:4 /etc/kubernetes/real/kube-apiserver.yaml && chmod 0600 /etc/kubernetes/real/kube-apiserver.yaml && ln -s ../real/kube-apiserver.yaml /etc/kubernetes/manifests/kube-apiserver.yaml");
    let state = "stat -c '%F %a %u:%g' /etc/kubernetes/manifests/kube-apiserver.yaml /etc/kubernetes/real/kube-apiserver.yaml; readlink /etc/kubernetes/manifests/kube-apiserver.yaml; ls -A /etc/kubernetes/manifests /etc/kubernetes/real";
    let expected = "symbolic link 777 0:0\nregular file 600 0:4\n../real/kube-apiserver.yaml\n/etc/kubernetes/manifests:\nkube-apiserver.yaml\n\n/etc/kubernetes/real:\nkube-apiserver.yaml\n";
    assert_eq!(node.sh(state), expected);
    let id = patched(&node);
    assert_eq!(
        node.sh(state),
        expected,
        "the link and the target's mode and owner are kept"
    );
    assert!(node.read(MANIFEST).unwrap().contains("--oidc-issuer-url"));
    assert_eq!(
        node.sh(&format!(
            "cut -f2,3,4,5 /var/lib/k8soidc/backups/{id}/FILES"
        )),
        format!("present\t600\t0:4\t{MANIFEST}\n"),
        "the backup records the target's mode and owner"
    );
    let patched_text = node.read(MANIFEST).unwrap();
    // The automatic restore after a failed health wait.
    node.set_never_ready("--oidc-groups-claim");
    node.k8soidc("patch")
        .args(oidc())
        .args(["--groups-claim", "groups", "--groups-prefix", "oidc:"])
        .args(["--yes", "--timeout", "3s"])
        .run()
        .status(1);
    assert_eq!(node.sh(state), expected);
    assert_eq!(node.read(MANIFEST).unwrap(), patched_text);
    // `rollback` to the first backup.
    node.k8soidc("rollback")
        .args(["--to", &id, "--yes", "--timeout", "30s"])
        .run()
        .success();
    assert_eq!(node.sh(state), expected);
    assert_eq!(node.read(MANIFEST).unwrap(), before);
}

/// Point 6: config mode writes the AuthenticationConfiguration, then renames the manifest into
/// place; when that rename fails, the file already placed is taken back out and the message
/// says which file changed and was restored.
#[test]
fn p6_failed_rename_restores_every_file_the_commit_changed() {
    let node = Node::on(173).kubeadm().start();
    let fp = node.fingerprint();
    // The manifests directory read-only: the manifest's rename fails, after the other file's.
    node.sh("mount --bind /etc/kubernetes/manifests /etc/kubernetes/manifests && mount -o remount,bind,ro /etc/kubernetes/manifests");
    let out = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--auth-mode", "config", "--kubernetes-version", "1.32"])
        .args(["--yes", "--timeout", "20s"])
        .run()
        .status(1);
    let err = out
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    let id = node.sh("ls /var/lib/k8soidc/backups").trim().to_string();
    assert!(
        err.starts_with(&format!("error: `{}`: cannot rename the new files into place (", node.target()))
            && err.contains("k8soidc: cannot rename /etc/kubernetes/.k8soidc-kube-apiserver.yaml.")
            && err.ends_with(&format!(" to {MANIFEST}); the files this run had already changed (/etc/kubernetes/oidc/authentication-config.yaml) were restored from backup {id}, so every file is as before")),
        "{}",
        out.stderr
    );
    assert_eq!(
        node.read("/etc/kubernetes/oidc/authentication-config.yaml"),
        None
    );
    // Every file as before; only the backup of this run was added.
    let now: Vec<String> = node
        .fingerprint()
        .lines()
        .filter(|l| !l.starts_with("var/lib/k8soidc/backups/"))
        .map(str::to_string)
        .collect();
    let was: Vec<String> = fp.lines().map(str::to_string).collect();
    assert_eq!(now, was);
    assert_eq!(
        node.sh("find /etc/kubernetes -name '.k8soidc-*' | wc -l"),
        "0\n",
        "no staging file left"
    );
}

/// Point 3 (restore is a compare and swap): while this run waits for health, another run (or
/// a person) changes the manifest; this run's restore must not write over that change.
#[test]
fn p3_restore_never_overwrites_another_runs_change() {
    let node = Node::on(174).kubeadm().start();
    node.set_never_ready("--oidc-issuer-url");
    let run = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--yes", "--timeout", "8s"]);
    let first = std::thread::spawn(move || run.run());
    // Wait (bounded) for this run's write, then change the file as a second run would.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !node.read(MANIFEST).unwrap().contains("--oidc-issuer-url") {
        assert!(
            std::time::Instant::now() < deadline,
            "the first run never wrote"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    node.sh(&format!("sed 's/--oidc-client-id=kubernetes/--oidc-client-id=second-run/' {MANIFEST} > /tmp/m && cat /tmp/m > {MANIFEST}"));
    let theirs = node.read(MANIFEST).unwrap();
    let out = first.join().unwrap().status(1);
    let id = node.sh("ls /var/lib/k8soidc/backups").trim().to_string();
    assert!(
        out.stderr.contains(&format!(
            "not restored: {MANIFEST} changed since this run wrote it (another run or a person changed it), so it is left as it is; backup {id} holds the files from before this run: `k8soidc rollback --ssh {} --ssh-config {} --to {id}`",
            node.target(),
            node.ssh_config()
        )),
        "{}",
        out.stderr
    );
    assert_eq!(
        node.read(MANIFEST).unwrap(),
        theirs,
        "the other change stays"
    );
}

/// Point 9: a non-dot copy of the manifest in the manifests directory (the kubelet runs it
/// too) is named in a warning before patching, in the dry run and in a real run, and again
/// when there is nothing to change.
#[test]
fn p9_copy_of_the_manifest_in_the_manifests_dir_is_warned_about() {
    let node = Node::on(175).kubeadm().start();
    node.sh(&format!("cp {MANIFEST} {MANIFEST}.bak; cp {MANIFEST} /etc/kubernetes/manifests/.kube-apiserver.yaml.orig"));
    let warning = "warning: `/etc/kubernetes/manifests/kube-apiserver.yaml.bak` is a copy of the API server's manifest in the directory the kubelet runs: it runs every file there whose name does not start with a dot, so this copy runs too, with its own settings, which this patch does not change; move it out of /etc/kubernetes/manifests";
    let dry = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--dry-run"])
        .run()
        .success();
    assert!(
        dry.stdout.contains(&format!("# note: {warning}\n")),
        "{}",
        dry.stdout
    );
    assert_eq!(
        dry.stdout.matches("warning: ").count(),
        1,
        "the dot file is not warned about: {}",
        dry.stdout
    );
    // A real run shows it before it changes anything (the fake kubelet, like a real one, runs
    // both pods, so this run does not become healthy and is rolled back; its status is not the
    // subject here).
    let run = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--yes", "--timeout", "3s"])
        .run();
    let shown_before = run.stderr.find(warning).expect("warned");
    let backed_up = run.stderr.find("] backed up to ").expect("backed up");
    assert!(
        shown_before < backed_up,
        "the warning comes before the change: {}",
        run.stderr
    );
    // Already configured: still warned about.
    node.sh(&format!("rm {MANIFEST}.bak"));
    patched(&node);
    node.sh(&format!("cp {MANIFEST} {MANIFEST}.bak"));
    let again = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--yes"])
        .run()
        .success();
    assert!(
        again.stderr.contains(&format!("] {warning}\n"))
            && again.stderr.contains("nothing to change"),
        "{}",
        again.stderr
    );
}

/// Point 3: the lock is kept while the confirmation prompt waits (it was lost after 30 s, when
/// the heartbeats stopped), and a run whose lock channel died stops before any change. The
/// prompt needs a terminal: the run goes through `script` (util-linux), which gives it a pty.
#[test]
fn p3_lock_held_while_the_prompt_waits_and_lost_lock_stops_the_run() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let node = Node::on(176).kubeadm().start();
    let fp = node.fingerprint();
    let home = tempfile::tempdir().unwrap();
    let mut argv = vec![
        env!("CARGO_BIN_EXE_k8soidc").to_string(),
        "patch".into(),
        "--ssh".into(),
        node.target(),
        "--ssh-config".into(),
        node.ssh_config(),
        "--timeout".into(),
        "20s".into(),
    ];
    argv.extend(oidc().iter().map(|s| s.to_string()));
    let line = argv
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', "'\\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("timeout")
        .args(["120", "script", "-qec", &line, "/dev/null"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home.path())
        .env("TERM", "dumb")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (util-linux)");
    // Longer than the 30 s after which an unattended lock is released.
    std::thread::sleep(std::time::Duration::from_secs(36));
    assert_eq!(
        node.sh("flock -n /var/lib/k8soidc/lock true && echo free || echo held"),
        "held\n",
        "the lock is still held while the prompt waits"
    );
    // The lock holder on the node dies (as when the lock is lost); the answer comes after.
    node.sh("for p in /proc/[0-9]*; do [ \"$(readlink $p/fd/9)\" = /var/lib/k8soidc/lock ] && kill ${p#/proc/}; done; true");
    std::thread::sleep(std::time::Duration::from_secs(7));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"y").unwrap();
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("lost the lock on `{}` (/var/lib/k8soidc/lock): its holder on the node ended, so another run may be changing the node; stopped before any change; run again", node.target())),
        "{text}"
    );
    assert_eq!(node.fingerprint(), fp, "nothing changed");
}

/// Starts `patch --yes --timeout TIMEOUT` (with `env`) on `node` and returns once it has written the
/// manifest (bounded): its transaction has begun, and (the node never ready) it is waiting.
fn patching(node: &Node, timeout: &str, env: &[(&str, &str)]) -> crate::test::Running {
    let mut t = node
        .k8soidc("patch")
        .args(oidc())
        .args(["--yes", "--timeout", timeout]);
    for (k, v) in env {
        t = t.env(k, v);
    }
    let run = t.spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !node.read(MANIFEST).unwrap().contains("--oidc-issuer-url") {
        assert!(std::time::Instant::now() < deadline, "the run never wrote");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    run
}

/// The node's one backup and the exact `k8soidc rollback` command for it.
fn backup_and_rollback(node: &Node) -> (String, String) {
    let id = node.sh("ls /var/lib/k8soidc/backups").trim().to_string();
    let rollback = format!(
        "k8soidc rollback --ssh {} --ssh-config {} --to {id}",
        node.target(),
        node.ssh_config()
    );
    (id, rollback)
}

/// Point 4: SIGTERM (sent to k8soidc alone, as `kill`, systemd or a CI runner do) during the
/// health wait restores the backup as a timeout would, names the backup and the exact
/// `k8soidc rollback` command, and exits 143. It used to end the process silently, leaving
/// the node patched.
#[test]
fn p4_sigterm_during_the_health_wait_restores_and_names_the_backup() {
    let node = Node::on(177).kubeadm().start();
    node.set_never_ready("--oidc-issuer-url");
    let before = node.read(MANIFEST).unwrap();
    let run = patching(&node, "120s", &[]);
    run.signal("TERM");
    let out = run.wait().status(143);
    let (id, rollback) = backup_and_rollback(&node);
    for said in [
        format!("interrupted (SIGTERM) during the wait: restoring backup {id} (by hand: `{rollback}`)"),
        format!("error: `{}`: interrupted (SIGTERM) during the wait: restored backup {id}, the API server is healthy with the previous settings; the backup stays on the node: `{rollback}`", node.target()),
    ] {
        assert!(out.stderr.contains(&said), "{said}\n---\n{}", out.stderr);
    }
    assert_eq!(node.read(MANIFEST).unwrap(), before, "restored");
}

/// Point 4, a terminal's Ctrl-C: SIGINT to the whole foreground process group, so the `ssh`
/// channels k8soidc started end too; the restore still runs (on new channels), exit 130.
#[test]
fn p4_ctrl_c_to_the_process_group_during_the_health_wait_restores() {
    // The restored API server takes 2 s to start: the second Ctrl-C below, sent once the
    // restored file is back, lands during the restore's wait.
    let node = Node::on(178)
        .kubeadm()
        .env("FAKE_APISERVER_STARTUP", "2")
        .start();
    node.set_never_ready("--oidc-issuer-url");
    let before = node.read(MANIFEST).unwrap();
    let run = patching(&node, "120s", &[]);
    run.signal_group("INT");
    let out = run.wait().status(130);
    let (id, _) = backup_and_rollback(&node);
    assert!(
        out.stderr.contains(&format!(
            "interrupted (SIGINT) during the wait: restored backup {id}, the API server is healthy with the previous settings"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(node.read(MANIFEST).unwrap(), before, "restored");

    // Twice: the restore stops where it is; the node has the old or the new file (never a
    // mix), and the command printed restores it.
    node.sh("rm -rf /var/lib/k8soidc/backups");
    let run = patching(&node, "120s", &[]);
    run.signal_group("INT");
    // Two signals sent back to back may reach k8soidc as one (a pending signal is not
    // queued twice), so the second waits until the restore is under way.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while node.read(MANIFEST).unwrap() != before {
        assert!(
            std::time::Instant::now() < deadline,
            "the restore never began"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    run.signal_group("INT");
    let out = run.wait().status(130);
    let (id, rollback) = backup_and_rollback(&node);
    assert!(
        out.stderr.contains(&format!("interrupted again (SIGINT) while restoring backup {id}: stopped where it was, so the node has either the new settings or the previous ones (each file is old or new); to restore: `{rollback}`")),
        "{}",
        out.stderr
    );
    let now = node.read(MANIFEST).unwrap();
    assert!(
        now == before || now.contains("--oidc-issuer-url=https://idp.example.com"),
        "old or new: {now}"
    );
    node.k8soidc("rollback")
        .args(["--to", &id, "--yes", "--timeout", "30s"])
        .run()
        .success();
    assert_eq!(
        node.read(MANIFEST).unwrap(),
        before,
        "the printed command restores"
    );
}

/// Point 5: a run killed with SIGKILL (no handler runs) leaves no SSH master behind: the
/// master ends shortly after (ControlPersist=10s once the multiplexing connection k8soidc kept
/// closes with the process), and the next run removes the control directory it left. It used to keep
/// running (`ControlPersist=yes`) with its `.ssh-connection*` directory, indefinitely.
#[test]
fn p5_sigkilled_run_leaves_no_ssh_master() {
    let node = Node::on(179).kubeadm().start();
    node.set_never_ready("--oidc-issuer-url");
    let tmp = tempfile::tempdir().unwrap();
    let tmpdir = tmp.path().display().to_string();
    let controls = tmp.path().join("k8soidc-0");
    let run = patching(&node, "8s", &[("TMPDIR", &tmpdir)]);
    run.signal("KILL");
    let _ = run.wait();
    // No process uses the run's control directories any more (bounded: the wait's own channel
    // ends with its 8 s loop, then the master after 10 s idle).
    let masters = || {
        let out = std::process::Command::new("pgrep")
            .args(["-f", &tmpdir])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert!(!masters().is_empty(), "the run had a master while it ran");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while !masters().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "an SSH master outlived the killed run: {}",
            masters()
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    // Its directory (no socket now) is removed by the next run once it is a minute old.
    let left: Vec<_> = std::fs::read_dir(&controls)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        !left[0].join("master").exists(),
        "the master removed its socket"
    );
    std::process::Command::new("touch")
        .args(["-d", "2 minutes ago"])
        .arg(&left[0])
        .status()
        .unwrap();
    node.k8soidc("patch")
        .args(oidc())
        .args(["--dry-run"])
        .env("TMPDIR", &tmpdir)
        .run()
        .success();
    let after: Vec<_> = std::fs::read_dir(&controls).unwrap().flatten().collect();
    assert!(
        after.is_empty(),
        "left behind: {:?}",
        after.iter().map(|e| e.path()).collect::<Vec<_>>()
    );
}

//! `k8soidc idp okta|keycloak|dex`: printing, `--out` (atomic, refuses to clobber), `--dry-run`,
//! bad input (exit 2, nothing written) and no secret in any output.

use std::path::Path;
use std::process::Command;

use crate::test::Test;

/// Runs k8soidc in `dir` several times (the `Test` builder owns one run per directory).
fn run_in(dir: &Path, args: &[String]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_k8soidc"))
        .args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir)
        .output()
        .expect("run k8soidc");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn claims() -> Vec<&'static str> {
    vec!["--username-claim", "email", "--groups-claim", "groups"]
}

#[test]
fn okta_prints_files_with_headers_and_what_must_match() {
    let out = Test::new()
        .args(["idp", "okta", "--user", "alice@example.com"])
        .args(claims())
        .env("TF_VAR_okta_api_token", "00secret-token")
        .env("OKTA_API_TOKEN", "00secret-token")
        .run()
        .success();
    assert!(out.stdout.contains("==> main.tf <=="), "{}", out.stdout);
    assert!(out.stdout.contains("==> README.md <=="), "{}", out.stdout);
    assert!(out
        .stdout
        .contains("resource \"okta_auth_server_claim\" \"groups\""));
    assert!(out.stdout.contains("Okta generates it"), "{}", out.stdout);
    assert!(out.stdout.contains("must match --groups-claim groups"));
    assert!(out.stdout.contains("k8soidc check"));
    assert!(!out.stdout.contains("00secret-token"));
    assert!(!out.stdout.contains("client_secret"));
    assert!(!out.root.join("main.tf").exists());
}

#[test]
fn okta_with_client_id_sets_it_on_the_app() {
    let out = Test::new()
        .args(["idp", "okta", "--client-id", "kubernetes"])
        .args(claims())
        .run()
        .success();
    assert!(
        out.stdout.contains("client_id = \"kubernetes\""),
        "{}",
        out.stdout
    );
}

#[test]
fn out_writes_then_refuses_to_clobber_then_force() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("okta");
    let run = |extra: &[&str], code: i32| {
        let mut a = vec!["idp", "okta", "--out", "okta"];
        a.extend(claims());
        a.extend_from_slice(extra);
        let a: Vec<String> = a.iter().map(|s| s.to_string()).collect();
        let (status, stdout, stderr) = run_in(tmp.path(), &a);
        assert_eq!(status, code, "{a:?}\nstdout:\n{stdout}\nstderr:\n{stderr}");
        (stdout, stderr)
    };
    let (stdout, _) = run(&[], 0);
    assert!(stdout.contains("wrote okta/main.tf"), "{stdout}");
    assert!(stdout.contains("next: read okta/README.md"), "{stdout}");
    let main = std::fs::read_to_string(dir.join("main.tf")).unwrap();
    assert!(main.contains("okta_app_oauth"));
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("terraform init && terraform apply"));

    // Same content again: nothing to do.
    let (stdout, _) = run(&[], 0);
    assert!(stdout.contains("unchanged okta/main.tf"), "{stdout}");

    // A local edit is never overwritten silently, and nothing else is written either.
    std::fs::write(dir.join("main.tf"), "# mine\n").unwrap();
    let (_, stderr) = run(&["--group", "platform"], 2);
    assert!(
        stderr.contains("refusing to overwrite `okta/main.tf`"),
        "{stderr}"
    );
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(dir.join("main.tf")).unwrap(),
        "# mine\n"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("README.md")).unwrap(),
        readme
    );

    // --dry-run shows what --force would do and writes nothing.
    let (stdout, _) = run(&["--force", "--dry-run"], 0);
    assert!(
        stdout.contains("would overwrite (--force): okta/main.tf"),
        "{stdout}"
    );
    assert!(stdout.contains("unchanged: okta/README.md"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(dir.join("main.tf")).unwrap(),
        "# mine\n"
    );

    let (stdout, _) = run(&["--force"], 0);
    assert!(stdout.contains("overwrote okta/main.tf"), "{stdout}");
    assert_eq!(std::fs::read_to_string(dir.join("main.tf")).unwrap(), main);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn dry_run_writes_nothing() {
    let out = Test::new()
        .args(["idp", "dex", "--out", "dex", "--dry-run"])
        .args([
            "--issuer-url",
            "https://dex.example.com",
            "--client-id",
            "kubernetes",
        ])
        .args(claims())
        .run()
        .success();
    assert!(
        out.stdout.contains("would create: dex/dex-config.yaml"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("\n# write dex-config.yaml\n+ write dex/dex-config.yaml (mode 0644, new file):\n    # Merge into dex's config.yaml (generated by `k8soidc idp dex`).\n"),
        "{}",
        out.stdout
    );
    assert!(!out.root.join("dex").exists());
}

/// Issue 14 point 10: `idp --out DIR --dry-run` on existing files shows what would change as a
/// diff (the whole output is compared); `--force` then writes exactly that.
#[test]
fn dry_run_on_existing_files_shows_the_diff() {
    let tmp = tempfile::tempdir().unwrap();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a = vec![
            "idp",
            "dex",
            "--out",
            "dex",
            "--issuer-url",
            "https://dex.example.com",
            "--client-id",
            "kubernetes",
        ];
        a.extend(claims());
        a.extend_from_slice(extra);
        a.iter().map(|s| s.to_string()).collect()
    };
    let (status, _, stderr) = run_in(tmp.path(), &args(&[]));
    assert_eq!(status, 0, "{stderr}");
    let path = tmp.path().join("dex/dex-config.yaml");
    let rendered = std::fs::read_to_string(&path).unwrap();
    let edited = rendered.replacen("kubernetes", "kubectl", 1);
    assert_ne!(edited, rendered);
    std::fs::write(&path, &edited).unwrap();
    let (status, stdout, stderr) = run_in(tmp.path(), &args(&["--force", "--dry-run"]));
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        edited,
        "dry run wrote"
    );
    assert_eq!(
        stdout,
        "# client id: `kubernetes` must match --client-id (the ID token's `aud`)
# issuer: `https://dex.example.com` must match --issuer-url, byte for byte (the ID token's `iss`)
# redirect URIs: `http://localhost:8000, http://localhost:18000` must match kubelogin's listen addresses (its defaults; do not pass --listen-address)
# scopes kubelogin requests: `openid email groups offline_access` must match the kubeconfig k8soidc writes (`--oidc-extra-scope` for each but `openid`)
# username claim: `email` must match --username-claim email
# groups claim: `groups` must match --groups-claim groups
# group: `k8s-admins` must match the RBAC subject `k8s-admins` (no --groups-prefix, so the name is used as is; k8soidc refuses that for the cluster unless --allow-system-names is given (reserved names): use --groups-prefix, e.g. `oidc:`, here and there)
# dex does not store groups: the connector supplies them, so `k8s-admins` must exist there (an LDAP group, a GitHub `org:team`, ...).
# with --username-claim email the connector must report verified emails (`email_verified: true`), or the API server refuses the token.
# `k8soidc create` makes a new cluster; `k8soidc patch` changes an existing one (same flags, `--distro` as needed).
# Then run `k8soidc check` with the same settings: it compares the provider's discovery document, scopes and a test token with the cluster's settings.
# dry run: nothing written
# would overwrite (--force): dex/dex-config.yaml
# unchanged: dex/README.md

# write dex-config.yaml
+ write dex/dex-config.yaml (mode 0644):
--- a/dex/dex-config.yaml
+++ b/dex/dex-config.yaml
@@ -4,7 +4,7 @@
 # Groups come from your connector (LDAP, GitHub teams, ...): put users in `k8s-admins` there.
 issuer: https://dex.example.com
 staticClients:
-- id: kubectl
+- id: kubernetes
   name: Kubernetes
   public: true
   redirectURIs:
"
    );
    let (status, _, stderr) = run_in(tmp.path(), &args(&["--force"]));
    assert_eq!(status, 0, "{stderr}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), rendered);
}

#[test]
fn keycloak_realm_json_and_terraform() {
    let out = Test::new()
        .args([
            "idp",
            "keycloak",
            "--out",
            "kc",
            "--user",
            "bob@example.com",
        ])
        .args([
            "--issuer-url",
            "https://sso.example.com/realms/k8s",
            "--client-id",
            "kubernetes",
        ])
        .args(claims())
        .run()
        .success();
    let realm: serde_json::Value = serde_json::from_str(&out.file("kc/realm-k8s.json")).unwrap();
    assert_eq!(realm["clients"][0]["clientId"], "kubernetes");
    assert_eq!(realm["users"][0]["emailVerified"], true);
    let tf = out.file("kc/main.tf");
    assert!(tf.contains("full_path           = false"), "{tf}");
    assert!(tf.contains("add_to_id_token     = true"), "{tf}");
    assert!(out.stdout.contains("invalid_scope"), "{}", out.stdout);
}

#[test]
fn dex_static_client_parses() {
    let out = Test::new()
        .args(["idp", "dex"])
        .args([
            "--issuer-url",
            "https://dex.example.com",
            "--client-id",
            "kubernetes",
        ])
        .args(claims())
        .run()
        .success();
    let yaml = out
        .stdout
        .split("==> dex-config.yaml <==\n")
        .nth(1)
        .unwrap()
        .split("\n==> ")
        .next()
        .unwrap();
    let v: serde_json::Value = serde_yaml_ng::from_str(yaml).unwrap();
    assert_eq!(v["issuer"], "https://dex.example.com");
    assert_eq!(v["staticClients"][0]["public"], true);
    assert_eq!(
        v["staticClients"][0]["redirectURIs"],
        serde_json::json!(["http://localhost:8000", "http://localhost:18000"])
    );
}

#[test]
fn settings_come_from_the_config_file_too() {
    let out = Test::new()
        .write(
            "k8soidc.yaml",
            "issuer-url: https://dex.example.com\nclient-id: from-file\ngroups-claim: groups\nusername-claim: email\n",
        )
        .args(["idp", "dex"])
        .run()
        .success();
    assert!(out.stdout.contains("id: from-file"), "{}", out.stdout);
}

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["idp", "auth0"], "unknown identity provider"),
        (
            vec![
                "idp",
                "keycloak",
                "--issuer-url",
                "https://sso.example.com/realms/k8s",
                "--client-id",
                "my client",
            ],
            "invalid --client-id `my client` (from --client-id): contains white space",
        ),
        (
            vec!["idp", "okta", "--client-id", "my client"],
            "invalid --client-id `my client` (from --client-id): contains white space",
        ),
        (
            vec![
                "idp",
                "keycloak",
                "--issuer-url",
                "https://sso.example.com",
                "--client-id",
                "k",
            ],
            "/realms/<realm>",
        ),
        (
            vec!["idp", "dex", "--client-id", "k"],
            "missing --issuer-url",
        ),
        (
            vec!["idp", "okta", "--user", "not-an-email"],
            "invalid --user",
        ),
        (vec!["idp", "okta", "--group", ""], "invalid --group"),
    ];
    for (args, message) in cases {
        let mut args = args;
        args.extend(["--out", "out"]);
        if !args.contains(&"--groups-claim") {
            args.extend(["--groups-claim", "groups"]);
        }
        let out = Test::new().args(&args).run().status(2);
        assert!(out.stderr.contains(message), "{args:?}: {}", out.stderr);
        assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
        assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
        assert!(!out.root.join("out").exists(), "{args:?} created files");
        assert!(out.stdout.is_empty(), "{}", out.stdout);
    }
    let out = Test::new()
        .args(["idp", "okta", "--out", "out"])
        .run()
        .status(2);
    assert!(out.stderr.contains("--groups-claim"), "{}", out.stderr);
}

//! Issue 14, "rough edges found by trying the tool as a new user would": one test (or a few)
//! per point, named `p<N>_...` after the point it pins.

use crate::test::Test;

const SETTINGS: [&str; 6] = [
    "--issuer-url",
    "https://idp.example.com",
    "--client-id",
    "kubernetes",
    "--username-claim",
    "email",
];

// Point 4: `render --distro kops` without `--name` rendered nothing but an error about a name
// the user never gave.
#[test]
fn p4_render_kops_without_name_uses_a_valid_placeholder_and_says_so() {
    let given = Test::new()
        .args(["render", "--distro", "kops", "--name", "oidc.k8s.local"])
        .args(SETTINGS)
        .run()
        .success();
    let default = Test::new()
        .args(["render", "--distro", "kops"])
        .args(SETTINGS)
        .run()
        .success();
    assert_eq!(
        default.stdout,
        format!(
            "# no --name given: `oidc.k8s.local` below is a placeholder (a kops gossip cluster name); give --name with your cluster's name\n{}",
            given.stdout
        )
    );
    assert_eq!(default.stderr, "");

    // JSON stays parseable: the note goes to stderr.
    let json = |extra: &[&str]| {
        Test::new()
            .args(["render", "--distro", "kops", "-o", "json"])
            .args(extra)
            .args(SETTINGS)
            .run()
            .success()
    };
    let (given, default) = (json(&["--name", "oidc.k8s.local"]), json(&[]));
    assert_eq!(default.stdout, given.stdout);
    assert_eq!(
        default.stderr,
        "# no --name given: `oidc.k8s.local` below is a placeholder (a kops gossip cluster name); give --name with your cluster's name\n"
    );

    // Other distributions keep their default `oidc`, without a note.
    let kind = Test::new()
        .args(["render", "--distro", "kind", "--name", "oidc"])
        .args(SETTINGS)
        .run()
        .success();
    let kind_default = Test::new()
        .args(["render", "--distro", "kind"])
        .args(SETTINGS)
        .run()
        .success();
    let paths = |o: &crate::test::Output| o.stdout.replace(&o.root.display().to_string(), "ROOT");
    assert_eq!(paths(&kind_default), paths(&kind));
}

#[test]
fn p4_render_kops_with_an_explicit_bad_name_is_still_refused() {
    let out = Test::new()
        .args(["render", "--distro", "kops", "--name", "oidc"])
        .args(SETTINGS)
        .run()
        .status(2);
    assert_eq!(out.stdout, "");
    assert_eq!(
        out.stderr,
        "error: invalid --name `oidc`: kops needs a fully qualified DNS name, e.g. `--name oidc.k8s.local`\n"
    );
}

// Point 8: completions offer the values of value enums; a man page is generated.
const DISTROS: &str = "k3d kind kubeadm kops microk8s charmed k3s rke2 capi kubespray eks gke aks k0s talos vcluster gardener";
const PATCH_DISTROS: &str = "auto kubeadm microk8s k3s rke2 k0s eks gke aks";
const FILE_KINDS: &str = "manifest k3s-config rke2-config microk8s-args kubeadm-config kops-cluster k3d-config capi-kcp kubespray-group-vars eksctl-config gke-clientconfig aks-jwt-authenticator k0s-config k0sctl talos-config vcluster-values gardener-shoot";

fn completions(shell: &str) -> String {
    Test::new()
        .args(["completions", shell])
        .run()
        .success()
        .stdout
        .clone()
}

#[track_caller]
fn has(script: &str, shell: &str, wanted: &[String]) {
    for w in wanted {
        assert!(
            script.contains(w.as_str()),
            "{shell}: no `{w}` in:\n{script}"
        );
    }
}

#[test]
fn p8_bash_completion_offers_enum_values() {
    let words = |v: &str| format!("COMPREPLY=($(compgen -W \"{v}\" -- \"${{cur}}\"))");
    let script = completions("bash");
    has(
        &script,
        "bash",
        &[
            words(DISTROS),
            words(PATCH_DISTROS),
            words("flags config auto"),
            words(FILE_KINDS),
            // One set of -o values everywhere (issue 14 point 7).
            words("text yaml json"),
            // idp's positional: offered with the subcommand's words.
            "--allow-system-names --help okta keycloak dex\"".into(),
        ],
    );
}

#[test]
fn p8_zsh_completion_offers_enum_values() {
    let script = completions("zsh");
    has(
        &script,
        "zsh",
        &[
            format!("'--distro=[Distribution]:DISTRO:({DISTROS})'"),
            format!(":DISTRO:({PATCH_DISTROS})'"),
            ":MODE:(flags config auto)'".into(),
            "--file-kind=".into(),
            "(manifest\\:\"kube-apiserver static Pod manifest\"".into(),
            ":FORMAT:(text yaml json)'".into(),
            "':provider -- Identity provider:(okta keycloak dex)'".into(),
        ],
    );
}

#[test]
fn p8_fish_completion_offers_enum_values() {
    let script = completions("fish");
    let list = |v: &str| {
        v.split(' ')
            .map(|w| format!("{w}\\t''"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    has(
        &script,
        "fish",
        &[
            format!(
                "complete -c k8soidc -n \"__fish_k8soidc_using_subcommand render\" -l distro -d 'Distribution' -r -f -a \"{}\"\n",
                list(DISTROS)
            ),
            format!(
                "-l distro -d 'Distribution; `auto` detects it on each host' -r -f -a \"{}\"\n",
                list(PATCH_DISTROS)
            ),
            format!("-l auth-mode -d '`flags` (--oidc-*), `config` (AuthenticationConfiguration, 1.30+), or `auto`' -r -f -a \"{}\"\n", list("flags config auto")),
            "-l file-kind -d 'With --file: what the file is [default: detected from its content]' -r -f -a \"manifest\\t'kube-apiserver static Pod manifest'\n".into(),
            format!("-s o -l output -d 'Output format: text, yaml or json' -r -f -a \"{}\"\n", list("text yaml json")),
            "complete -c k8soidc -n \"__fish_k8soidc_using_subcommand idp; and not __fish_seen_subcommand_from okta keycloak dex\" -f -a \"okta keycloak dex\"\n".into(),
        ],
    );
}

const COMMANDS: [&str; 12] = [
    "render",
    "create",
    "completions",
    "man",
    "rbac",
    "kubeconfig",
    "check",
    "explain",
    "idp",
    "patch",
    "rollback",
    "backups",
];

#[test]
fn p8_man_page_names_every_command() {
    let out = Test::new().args(["man"]).run().success();
    assert!(out.stdout.contains("\n.TH k8soidc 1 "), "{}", out.stdout);
    for c in COMMANDS {
        assert!(
            out.stdout.contains(&format!("\n.TP\nk8soidc\\-{c}(1)\n")),
            "no {c} in:\n{}",
            out.stdout
        );
    }
    assert_eq!(out.stderr, "");

    // `man DIR`: one page per command, for a man1 directory.
    let out = Test::new().args(["man", "share/man/man1"]).run().success();
    assert_eq!(out.stdout, "");
    assert_eq!(out.stderr, "wrote the man pages into share/man/man1\n");
    let main = out.file("share/man/man1/k8soidc.1");
    assert!(main.contains("\n.TH k8soidc 1 "), "{main}");
    for c in COMMANDS {
        let page = out.file(&format!("share/man/man1/k8soidc-{c}.1"));
        assert!(
            page.contains(&format!("\n.TH k8soidc-{c} 1 ")),
            "{c}: {page}"
        );
    }
    let patch = out.file("share/man/man1/k8soidc-patch.1");
    assert!(patch.contains("\\-\\-dry\\-run"), "{patch}");
}

// Point 5: a discovery document or JWKS sent without Content-Length over TLS, by a server that
// then closes without `close_notify`, is a whole body (Go's client takes it); a body shorter
// than its Content-Length is not.

/// A one-file HTTPS server for 127.0.0.1 (Python's `ssl`): serves the discovery document and
/// the JWKS, then drops the TCP connection without TLS `close_notify` (`detach` hands back the
/// descriptor without `unwrap`, which would send it). MODE `no-length`: no Content-Length,
/// `Connection: close`, the body ends with the connection. MODE `short`: a Content-Length 100
/// bytes larger than the body. At most 20 connections, 30 s each.
const TLS_SERVER: &str = r#"
import json, os, socket, ssl, sys
cert, key, mode = sys.argv[1:4]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(4)
port = srv.getsockname()[1]
issuer = "https://127.0.0.1:%d" % port
docs = {
    "/.well-known/openid-configuration": {
        "issuer": issuer,
        "jwks_uri": issuer + "/jwks",
        "authorization_endpoint": issuer + "/auth",
        "token_endpoint": issuer + "/token",
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "groups", "offline_access"],
        "claims_supported": ["sub", "iss", "aud", "email", "email_verified", "groups"],
    },
    "/jwks": {"keys": [{"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256", "n": "sXch" * 86, "e": "AQAB"}]},
}
print("ready %d" % port, flush=True)
srv.settimeout(30)
for _ in range(20):
    try:
        raw, _ = srv.accept()
    except socket.timeout:
        break
    raw.settimeout(30)
    try:
        conn = ctx.wrap_socket(raw, server_side=True)
        req = b""
        while b"\r\n\r\n" not in req:
            chunk = conn.recv(4096)
            if not chunk:
                break
            req += chunk
        path = req.split(b" ")[1].decode() if req.count(b" ") >= 2 else "/"
        body = json.dumps(docs.get(path, {})).encode()
        head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        if mode == "short":
            head += "Content-Length: %d\r\n" % (len(body) + 100)
        else:
            head += "Connection: close\r\n"
        conn.sendall(head.encode() + b"\r\n" + body)
        os.close(conn.detach())
    except (OSError, ssl.SSLError) as e:
        print("connection: %s" % e, file=sys.stderr, flush=True)
"#;

/// The server above, killed by PID on drop.
struct TlsServer {
    child: std::process::Child,
    issuer: String,
    pki: crate::provider::Pki,
}

impl TlsServer {
    fn start(mode: &str) -> Self {
        use std::io::BufRead;
        let pki = crate::provider::Pki::new();
        let d = pki.dir.path();
        let mut child = std::process::Command::new("timeout")
            .args(["120", "python3", "-c", TLS_SERVER])
            .arg(d.join("leaf.pem"))
            .arg(d.join("leaf.key"))
            .arg(mode)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("ready line");
        let port = line
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("TLS server did not start: {line:?}"))
            .trim()
            .to_string();
        TlsServer {
            child,
            issuer: format!("https://127.0.0.1:{port}"),
            pki,
        }
    }

    fn check(&self) -> crate::test::Output {
        Test::new()
            .args([
                "check",
                "--issuer-url",
                &self.issuer,
                "--client-id",
                "kubernetes",
            ])
            .args(["--username-claim", "email", "--groups-claim", "groups"])
            .args(["--groups-prefix", "oidc:"])
            .args(["--ca-file", &self.pki.ca().display().to_string()])
            .run()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn p5_body_without_content_length_ended_by_a_close_without_close_notify_is_accepted() {
    let server = TlsServer::start("no-length");
    let out = server.check().success();
    let issuer = &server.issuer;
    assert_eq!(
        out.stdout,
        format!(
            "PASS  issuer-url    {issuer} is an https URL without query or fragment
PASS  discovery     fetched {issuer}/.well-known/openid-configuration
PASS  issuer-match  discovery `issuer` is \"{issuer}\", byte for byte
PASS  signing-algs  RS256 offered by the provider and accepted
PASS  scopes        supports email, groups, offline_access
PASS  https         issuer and jwks_uri are https
PASS  jwks          1 usable key(s): k1 (RSA RS256)
"
        )
    );
    assert_eq!(out.stderr, "");
}

#[test]
fn p5_body_shorter_than_its_content_length_fails() {
    let server = TlsServer::start("short");
    let out = server.check().status(1);
    let issuer = &server.issuer;
    let url = format!("{issuer}/.well-known/openid-configuration");
    let length = out
        .stdout
        .split("the connection closed after ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("no byte count in:\n{}", out.stdout));
    assert_eq!(
        out.stdout,
        format!(
            "PASS  issuer-url  {issuer} is an https URL without query or fragment
FAIL  discovery   GET {url}: the connection closed after {length} of the {} bytes its Content-Length announced
                  fix: retry; check the provider
",
            length.parse::<usize>().unwrap() + 100
        )
    );
}

// Point 3: a token is a credential. `explain --token VALUE` printed the whole value when it was
// not a readable file; no command may print a token, in any message or output format.

/// A recognisable test token: a JWT's `eyJ` start, then a marker no output may contain.
const MARKER: &str = "TESTTOKEN";
const MARKED: &str =
    "eyJTESTTOKENk8soidcHeader.eyJTESTTOKENk8soidcPayload.TESTTOKENk8soidcSignature";

fn fingerprint(secret: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(secret.as_bytes())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Fails when any output stream carries the marker or a piece of `token`.
#[track_caller]
fn no_token(out: &crate::test::Output, token: &str, what: &str) {
    let mut pieces: Vec<&str> = token.split('.').filter(|p| p.len() >= 8).collect();
    pieces.push(MARKER);
    for (name, stream) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        for p in &pieces {
            assert!(
                !stream.contains(p),
                "{what}: {name} carries `{p}` of the token:\n{stream}"
            );
        }
    }
}

#[test]
fn p3_no_command_prints_a_token() {
    use crate::explain::{claims, now, Keys, ISSUER};
    use serde_json::json;
    let keys = Keys::new();
    let jwks = keys.jwks();
    let settings = [
        "--issuer-url",
        ISSUER,
        "--client-id",
        "kubernetes",
        "--username-claim",
        "email",
        "--groups-claim",
        "groups",
        "--groups-prefix",
        "oidc:",
    ];
    let signed = [
        ("valid", keys.sign("rsa", &claims(json!({})))),
        (
            "expired",
            keys.sign("rsa", &claims(json!({"exp": now() - 3600}))),
        ),
        (
            "other audience",
            keys.sign("rsa", &claims(json!({"aud": "other"}))),
        ),
        ("unknown key", keys.sign("other", &claims(json!({})))),
        (
            "unverified email",
            keys.sign("ec", &claims(json!({"email_verified": false}))),
        ),
    ];
    let long = format!("eyJ{MARKER}{}", "A".repeat(400));
    let mut tokens: Vec<(&str, String)> = vec![
        ("marked", MARKED.to_string()),
        (
            "two parts",
            "eyJTESTTOKENk8soidc.TESTTOKENk8soidcPayload".to_string(),
        ),
        ("long", long),
        ("bearer", format!("Bearer {MARKED}")),
    ];
    tokens.extend(signed.iter().map(|(n, t)| (*n, t.clone())));

    for (what, token) in &tokens {
        // The token as the value of --token: refused, shown only as a fingerprint.
        let out = Test::new()
            .args(["explain", "--token", token, "--jwks", &jwks])
            .args(settings)
            .run()
            .status(2);
        no_token(&out, token, &format!("{what} as a value"));
        if !token.starts_with("Bearer ") {
            assert_eq!(
                out.stderr,
                format!(
                    "error: invalid --token: the value (sha256 {}…, {} characters) is not a file but looks like the token itself; a token is never taken on the command line (it would show in the process list and shell history): put it in a file, or pipe it to `--token -`\n",
                    fingerprint(token),
                    token.chars().count()
                ),
                "{what}"
            );
        }
        // In a file and on stdin, in every output format, accepted or rejected.
        for output in ["text", "json", "yaml"] {
            let out = Test::new()
                .write("token", token)
                .args(["explain", "--token", "token", "--jwks", &jwks, "-o", output])
                .args(settings)
                .run();
            assert!(out.status == 0 || out.status == 1, "{what}: {}", out.stderr);
            no_token(&out, token, &format!("{what} in a file, -o {output}"));
            let out = Test::new()
                .stdin(token)
                .args(["explain", "--token", "-", "--jwks", &jwks, "-o", output])
                .args(settings)
                .run();
            no_token(&out, token, &format!("{what} on stdin, -o {output}"));
        }
        // Failures after the token is read: keys unreachable, a bad --rbac file, a bad JWKS.
        for extra in [
            vec!["--issuer-url", "https://127.0.0.1:1"],
            vec!["--jwks", &jwks, "--rbac", "missing.yaml"],
            vec!["--jwks", "token"],
        ] {
            let out = Test::new()
                .write("token", token)
                .args(["explain", "--token", "token"])
                .args(settings)
                .args(&extra)
                .run();
            assert_ne!(out.status, 0, "{what} {extra:?}");
            no_token(&out, token, &format!("{what} with {extra:?}"));
        }
    }
    // A mistyped file name is not a token: it is named as before.
    let typo = Test::new()
        .args(["explain", "--token", "tokn.txt", "--jwks", &jwks])
        .args(settings)
        .run()
        .status(2);
    assert_eq!(
        typo.stderr,
        "error: invalid --token `tokn.txt`: no such file; give a file with the ID token, or `-` for stdin\n"
    );
    let valid = &signed[0].1;
    let ok = Test::new()
        .stdin(valid)
        .args(["explain", "--token", "-", "--jwks", &jwks])
        .args(settings)
        .run()
        .success();
    assert!(
        ok.stdout.contains("username: jane@example.com\n"),
        "{}",
        ok.stdout
    );

    // check: the only secret it reads is an SSH key; a key or CA file full of token is not
    // echoed either.
    for extra in [
        vec!["--ca-file", "token"],
        vec!["--ssh", "root@127.0.0.1:1", "--ssh-identity", "token"],
    ] {
        let out = Test::new()
            .write("token", MARKED)
            .args(["check", "--client-id", "kubernetes"])
            .args(["--issuer-url", "https://127.0.0.1:1"])
            .args(&extra)
            .run();
        assert_ne!(out.status, 0, "check {extra:?}");
        no_token(&out, MARKED, &format!("check {extra:?}"));
    }
    // idp: the provider credentials come from the environment and are never rendered.
    for provider in ["okta", "keycloak", "dex"] {
        let out = Test::new()
            .env("KEYCLOAK_PASSWORD", MARKED)
            .env("KEYCLOAK_CLIENT_SECRET", MARKED)
            .env("TF_VAR_okta_api_token", MARKED)
            .env("OKTA_API_TOKEN", MARKED)
            .args([
                "idp",
                provider,
                "--issuer-url",
                "https://sso.example.com/realms/k8s",
            ])
            .args(["--client-id", "kubernetes", "--username-claim", "email"])
            .args(["--groups-claim", "groups", "--groups-prefix", "oidc:"])
            .run()
            .success();
        no_token(&out, MARKED, &format!("idp {provider}"));
    }
}

// Point 1: the demos read `../shared/fixtures` (outside the repository) and ran
// `target/release/k8soidc` (wrong under CARGO_TARGET_DIR). Everything now comes from the
// repository, and binaries from where cargo puts them.

fn repo() -> &'static std::path::Path {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn p1_demo_and_bench_scripts_find_everything_in_the_repository_and_through_cargo() {
    let target = tempfile::tempdir().unwrap();
    let t = target.path().display();
    let manifest = "tests/data/fixtures/apiserver-manifests/034-austintalbot-v1.32.2-cks.yaml";
    for (script, uses) in [
        ("demo-patch", vec![manifest, "scripts/test-node"]),
        (
            "demo-inventory",
            vec![
                manifest,
                "tests/data/fixtures/microk8s-args/001-microk8s-2025-03f0791.args",
                "scripts/test-node",
            ],
        ),
        (
            "demo-identity",
            vec![
                "tests/oidc-provider/server.mjs",
                "tests/oidc-provider/package-lock.json",
            ],
        ),
        ("bench-dry-run", Vec::<&str>::new()),
    ] {
        // From another directory, with the target directory moved.
        let out = std::process::Command::new("timeout")
            .args(["60", "bash"])
            .arg(repo().join("scripts").join(script))
            .arg("--check")
            .current_dir(target.path())
            .env("CARGO_TARGET_DIR", target.path())
            .output()
            .expect("bash");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{script} --check: {stderr}");
        let mut want = format!("{script}: binary {t}/release/k8soidc (cargo build --release)\n");
        for u in uses {
            want.push_str(&format!("{script}: uses {u}\n"));
        }
        assert_eq!(stdout, want, "{script} --check; stderr: {stderr}");
        assert_eq!(stderr, "", "{script} --check");
    }
}

#[test]
fn p1_no_script_reads_outside_the_repository_or_hard_codes_target() {
    let mut found = Vec::new();
    let mut scripts = 0;
    for entry in std::fs::read_dir(repo().join("scripts")).unwrap() {
        let path = entry.unwrap().path();
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        scripts += 1;
        for (n, line) in text.lines().enumerate() {
            // A path into cargo's target directory written out (`$repo/target/`, `"target/`,
            // `=target/`, `(target/`) instead of asked of cargo; the shared fixtures.
            let hard_target = ["/target/", "\"target/", "'target/", "=target/", "(target/"]
                .iter()
                .any(|p| line.contains(p));
            if hard_target || line.contains("../shared") || line.contains("shared/fixtures") {
                found.push(format!("{}:{}: {line}", path.display(), n + 1));
            }
        }
    }
    assert!(scripts >= 10, "only {scripts} scripts read");
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn p1_fixtures_are_in_the_repository_with_their_sources() {
    let root = repo().join("tests/data/fixtures");
    let sources = std::fs::read_to_string(root.join("SOURCES")).unwrap();
    let listed: std::collections::BTreeSet<&str> = sources
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .collect();
    let mut files = std::collections::BTreeSet::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        if dir.is_dir() {
            for f in std::fs::read_dir(&dir).unwrap() {
                let f = f.unwrap().path();
                files.insert(f.strip_prefix(&root).unwrap().display().to_string());
            }
        }
    }
    // The schemas' README.md files are themselves the source notes of the schemas derived
    // from upstream files (kcp, k0s, Talos, vCluster).
    files.retain(|f| !(f.starts_with("schemas/") && f.ends_with(".README.md")));
    let files: std::collections::BTreeSet<&str> = files.iter().map(String::as_str).collect();
    assert_eq!(files, listed);
    assert!(crate::test::fixtures().starts_with(repo()));
}

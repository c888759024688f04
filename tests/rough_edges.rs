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
const DISTROS: &str = "k3d kind kubeadm kops microk8s charmed k3s rke2 capi kubespray";
const PATCH_DISTROS: &str = "auto kubeadm microk8s k3s rke2";
const FILE_KINDS: &str = "manifest k3s-config rke2-config microk8s-args kubeadm-config kops-cluster k3d-config capi-kcp kubespray-group-vars";

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
            words("text yaml json"),
            words("yaml json"),
            words("table json"),
            // idp's positional: offered with the subcommand's words.
            "--kubernetes-version --help okta keycloak dex\"".into(),
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
            ":OUTPUT:(text yaml json)'".into(),
            ":FORMAT:(table json)'".into(),
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
            format!("-s o -l output -d 'Output format' -r -f -a \"{}\"\n", list("text yaml json")),
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

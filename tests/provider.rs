//! A real OpenID Connect provider for tests: panva/oidc-provider (tests/oidc-provider) on
//! 127.0.0.1 over HTTPS with a test CA made by the `openssl` CLI, on a free port; killed by PID
//! when the guard drops. Logins run the real authorization-code flow with curl and a cookie jar.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A test CA and a leaf for 127.0.0.1 (rustls refuses a CA used as the server certificate).
pub(crate) struct Pki {
    pub(crate) dir: tempfile::TempDir,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("timeout")
        .arg("30")
        .arg("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    pub(crate) fn new() -> Self {
        let dir = tempfile::tempdir().expect("pki dir");
        let d = dir.path();
        openssl(
            d,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=k8soidc test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "leaf.key",
                "-out",
                "leaf.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        std::fs::write(d.join("ext"), "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "leaf.pem",
                "-days",
                "2",
                "-extfile",
                "ext",
            ],
        );
        Pki { dir }
    }

    pub(crate) fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// The running provider; killed by PID on drop.
pub(crate) struct Provider {
    child: Child,
    pub(crate) issuer: String,
    pub(crate) pki: Pki,
}

const REDIRECT: &str = "http://127.0.0.1/callback";

impl Provider {
    pub(crate) fn start() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc-provider");
        assert!(
            root.join("node_modules/oidc-provider").is_dir(),
            "tests/oidc-provider/node_modules is missing: run ./scripts/test (it runs `npm ci` there) or `cd tests/oidc-provider && npm ci`"
        );
        let pki = Pki::new();
        // Port 0: the provider listens on a port the kernel picks and reports it in its ready
        // line. (A port found free here and passed on could be taken by anyone before the
        // provider binds it.)
        let mut child = Command::new("node")
            .arg("server.mjs")
            .current_dir(&root)
            .env("PORT", "0")
            .env("TLS_CERT", pki.dir.path().join("leaf.pem"))
            .env("TLS_KEY", pki.dir.path().join("leaf.key"))
            .env("REDIRECT_URI", REDIRECT)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(pki.dir.path().join("provider.log")).expect("log file"))
            .spawn()
            .expect("node (apt-get install nodejs)");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Send the first line, then keep draining so the provider never writes to a closed pipe.
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        // Bounded: node loads oidc-provider and makes an RSA key; ~2 s idle, far more when the
        // machine is busy compiling.
        let line = rx.recv_timeout(Duration::from_secs(60));
        let issuer = match &line {
            Ok(l) => l.strip_prefix("ready ").map(|i| i.trim().to_string()),
            Err(_) => None,
        };
        let Some(issuer) = issuer else {
            let _ = child.kill();
            let status = child.wait();
            panic!(
                "oidc-provider did not start within 60s (first stdout line {line:?}, {status:?}); its stderr:\n{}",
                std::fs::read_to_string(pki.dir.path().join("provider.log")).unwrap_or_default()
            )
        };
        Provider { child, issuer, pki }
    }

    /// Runs the authorization-code flow for `account` (its login_hint) and returns the ID token.
    pub(crate) fn login(&self, account: &str, scope: &str) -> String {
        let jar = self.pki.dir.path().join(format!("jar-{account}"));
        let ca = self.pki.ca();
        let curl = |args: &[&str]| -> String {
            let out = Command::new("curl")
                .args(["-sS", "--max-time", "10", "--cacert"])
                .arg(&ca)
                .arg("-b")
                .arg(&jar)
                .arg("-c")
                .arg(&jar)
                .args(args)
                .env_clear()
                .output()
                .expect("curl");
            assert!(
                out.status.success(),
                "curl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let mut url = format!(
            "{}/auth?client_id=kubernetes&response_type=code&scope={}&redirect_uri={}&login_hint={account}&state=s1&nonce=n1&prompt=consent",
            self.issuer,
            scope.replace(' ', "%20"),
            REDIRECT.replace(':', "%3A").replace('/', "%2F"),
        );
        let mut code = None;
        for _ in 0..10 {
            let next = curl(&["-o", "/dev/null", "-w", "%{redirect_url}", &url]);
            if let Some(q) = next.strip_prefix(&format!("{REDIRECT}?")) {
                code = q
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("code="))
                    .map(str::to_string);
                break;
            }
            assert!(
                next.starts_with(&self.issuer),
                "unexpected redirect {next:?}"
            );
            url = next;
        }
        let code = code.expect("authorization code within 10 redirects");
        let body = curl(&[
            "-u",
            "kubernetes:secret",
            "-d",
            "grant_type=authorization_code",
            "-d",
            &format!("code={code}"),
            "-d",
            &format!("redirect_uri={REDIRECT}"),
            &format!("{}/token", self.issuer),
        ]);
        let v: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        v["id_token"].as_str().expect("id_token").to_string()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

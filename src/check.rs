//! `k8soidc check`: the preflight. Fetches the provider's discovery document and key set the
//! way kube-apiserver will (with `--ca-file` as the only extra root), judges them with
//! `backends::preflight`, and with `--ssh` repeats the fetch from each control-plane node with
//! `curl`, with and without the CA, to tell whether the API server needs `--oidc-ca-file`. The
//! nodes are reached as `patch` reaches them: the same flags (`SshArgs`) and SSH client
//! (`exec::ssh::Remote`, strict host keys unless `--accept-new-host-key`).
//! Also run by `create` (unless `--skip-check`): nothing runs when a check fails.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use backends::preflight::{check_discovery, check_jwks, discovery_url, table, Check, Status};
use backends::OidcSettings;
use serde_json::Value;

use crate::cli::{CheckArgs, Output as Format};
use crate::error::Error;
use crate::exec::ssh::{HostSpec, Output, Remote, SshOptions};
use crate::ui::Env;

const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTPS client that trusts the system roots plus `--ca-file`, with timeouts.
pub(crate) fn http_client(s: &OidcSettings) -> Result<reqwest::blocking::Client, Error> {
    let mut b = reqwest::blocking::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::limited(5));
    if let Some(ca) = &s.ca {
        let certs = reqwest::Certificate::from_pem_bundle(ca.pem.as_bytes()).map_err(|e| {
            Error::Input(format!(
                "invalid --ca-file `{}`: {e}; give the provider's CA certificate in PEM form",
                ca.local_path
            ))
        })?;
        b = b.tls_certs_merge(certs);
    }
    b.build()
        .map_err(|e| Error::Other(format!("cannot set up HTTPS: {e}")))
}

/// Why a fetch failed, and the fix.
fn explain_fetch_error(e: &reqwest::Error, s: &OidcSettings) -> (String, String) {
    let mut chain = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(x) = src {
        chain.push_str(": ");
        chain.push_str(&x.to_string());
        src = x.source();
    }
    let lower = chain.to_lowercase();
    let fix = if lower.contains("certificate")
        || lower.contains("unknownissuer")
        || lower.contains("tls")
    {
        if s.ca.is_some() {
            "the certificate does not chain to --ca-file or does not name this host: give the CA that signed the provider's certificate".to_string()
        } else {
            "the provider's certificate is not trusted by the system roots: pass `--ca-file` with its CA (the API server then gets --oidc-ca-file too)".to_string()
        }
    } else if e.is_timeout() {
        "the provider did not answer in time: check the URL, firewalls and proxies".to_string()
    } else if e.is_connect() {
        "cannot connect: is the provider running and is the host/port in --issuer-url right?"
            .to_string()
    } else {
        "check the issuer URL".to_string()
    };
    (chain, fix)
}

/// The response body. A body without Content-Length and without chunked encoding ends where
/// the connection ends (RFC 9112 section 6.3, rule 8); a server that then closes its TLS
/// connection without `close_notify` makes rustls report an unexpected EOF, and reqwest "error
/// decoding response body", although every byte arrived. kube-apiserver's Go client takes such
/// a body (crypto/tls returns io.EOF at a record boundary), so this does too. A body cut
/// short of its Content-Length, or of its last chunk, still fails: hyper reports that itself.
fn read_body(mut resp: reqwest::blocking::Response) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let length = resp.content_length();
    let framed = resp.headers().contains_key(reqwest::header::CONTENT_LENGTH)
        || resp
            .headers()
            .contains_key(reqwest::header::TRANSFER_ENCODING);
    let mut body = Vec::new();
    match resp.read_to_end(&mut body) {
        Ok(_) => Ok(body),
        Err(e) if !framed && is_unclean_close(&e) => Ok(body),
        Err(e) => match length {
            Some(n) if is_unclean_close(&e) => Err(format!(
                "the connection closed after {} of the {n} bytes its Content-Length announced",
                body.len()
            )),
            _ => Err(error_chain(&e)),
        },
    }
}

/// Whether an error is, at its root, an EOF where TLS expected `close_notify`.
fn is_unclean_close(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(x) = cur {
        if let Some(io) = x.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::UnexpectedEof {
                return true;
            }
        }
        cur = x.source();
    }
    false
}

/// An error and its sources, `: `-separated.
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        let text = x.to_string();
        if !chain.ends_with(&text) {
            chain.push_str(": ");
            chain.push_str(&text);
        }
        src = x.source();
    }
    chain
}

/// GETs `url` and parses JSON, or returns the FAIL row.
fn get_json(
    client: &reqwest::blocking::Client,
    s: &OidcSettings,
    name: &str,
    url: &str,
) -> Result<Value, Check> {
    let resp = client.get(url).send().map_err(|e| {
        let (why, fix) = explain_fetch_error(&e, s);
        Check::fail(name, format!("GET {url}: {why}"), fix)
    })?;
    let status = resp.status();
    if !status.is_success() {
        return Err(Check::fail(
            name,
            format!("GET {url}: HTTP {status}"),
            "no document there: check the issuer path (Keycloak: /realms/NAME, Dex: the `issuer` of its config)",
        ));
    }
    let body = read_body(resp)
        .map_err(|e| Check::fail(name, format!("GET {url}: {e}"), "retry; check the provider"))?;
    serde_json::from_slice(&body).map_err(|e| {
        Check::fail(
            name,
            format!("GET {url}: not JSON ({e})"),
            "the URL does not serve an OpenID Connect document: check the issuer",
        )
    })
}

/// The discovery document, or the FAIL row.
pub(crate) fn fetch_discovery(
    client: &reqwest::blocking::Client,
    s: &OidcSettings,
) -> Result<Value, Check> {
    get_json(client, s, "discovery", &discovery_url(&s.issuer_url))
}

/// The JWKS named by the discovery document, or the FAIL row.
pub(crate) fn fetch_jwks(
    client: &reqwest::blocking::Client,
    s: &OidcSettings,
    doc: &Value,
) -> Result<Value, Check> {
    let Some(uri) = doc.get("jwks_uri").and_then(Value::as_str) else {
        return Err(Check::fail(
            "jwks",
            "the discovery document has no jwks_uri",
            "the provider must publish its keys",
        ));
    };
    get_json(client, s, "jwks", uri)
}

/// The local checks (no SSH).
pub(crate) fn local_checks(s: &OidcSettings) -> Result<Vec<Check>, Error> {
    let mut out = Vec::new();
    match backends::settings::check_issuer(&s.issuer_url) {
        Ok(warnings) if warnings.is_empty() => out.push(Check::pass(
            "issuer-url",
            format!("{} is an https URL without query or fragment", s.issuer_url),
        )),
        Ok(warnings) => out.push(Check::warn(
            "issuer-url",
            warnings.join("; "),
            "make sure tokens carry exactly this `iss`",
        )),
        Err(e) => {
            out.push(Check::fail("issuer-url", e.to_string(), "see the message"));
            return Ok(out);
        }
    }
    let client = http_client(s)?;
    let doc = match fetch_discovery(&client, s) {
        Ok(d) => d,
        Err(c) => {
            out.push(c);
            return Ok(out);
        }
    };
    out.push(Check::pass(
        "discovery",
        format!("fetched {}", discovery_url(&s.issuer_url)),
    ));
    out.extend(check_discovery(s, &doc));
    match fetch_jwks(&client, s, &doc) {
        Ok(jwks) => out.push(check_jwks(s, &jwks)),
        Err(c) => out.push(c),
    }
    Ok(out)
}

/// The preflight before a command that changes things: a failure stops a real run; a dry run
/// only reads, so it reports the failure as a warning and goes on to show its plan.
pub(crate) fn gate(s: &OidcSettings, dry_run: bool) -> Result<(), Error> {
    match require_preflight(s) {
        Ok(()) => Ok(()),
        Err(_) if dry_run => {
            eprintln!("warning: the preflight check failed (see above): a real run would stop here; fix it, or pass --skip-check");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Runs the preflight for `create`: prints the table and fails when any check fails.
pub(crate) fn require_preflight(s: &OidcSettings) -> Result<(), Error> {
    let checks = local_checks(s)?;
    if checks.iter().any(|c| c.status == Status::Fail) {
        eprint!("{}", table(&checks));
        return Err(Error::Other(
            "preflight check failed (see above), nothing was run; fix it, or pass --skip-check to go ahead anyway".into(),
        ));
    }
    Ok(())
}

/// The remote script that fetches `$1`.
const FETCH: &str = "curl -fsS --max-time 10 \"$1\"";

/// The remote script that fetches `$1` trusting the CA read from stdin: the certificate goes
/// to a `mktemp` file on the node, never into the command line.
const FETCH_WITH_CA: &str = "f=$(mktemp) || exit 1; cat > \"$f\"; curl -fsS --max-time 10 --cacert \"$f\" \"$1\"; rc=$?; rm -f \"$f\"; exit $rc";

/// A command's stderr on one line, for a table cell.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// How long the checks on one node may take: connecting (15 s at most) and two fetches
/// (10 s each at most), with room to spare.
const NODE_LIMIT: Duration = Duration::from_secs(60);

/// Fetches discovery on every `--ssh` node, without and with the CA, through the same SSH
/// client and flags as `patch --ssh`.
fn ssh_checks(args: &CheckArgs, s: &OidcSettings) -> Result<Vec<Check>, Error> {
    let specs = args
        .ssh
        .hosts
        .iter()
        .map(|h| HostSpec::parse(h))
        .collect::<Result<Vec<_>, _>>()?;
    let opts = SshOptions {
        accept_new_host_key: args.ssh.accept_new_host_key,
        config: args.ssh.ssh_config.as_ref().map(Into::into),
    };
    let rt = crate::exec::runtime()?;
    let mut out = Vec::new();
    for spec in &specs {
        let checks = rt.block_on(async {
            tokio::time::timeout(NODE_LIMIT, node_checks(spec, &opts, s)).await
        });
        out.extend(checks.unwrap_or_else(|_| {
            vec![Check::fail(
                "ssh",
                format!("{}: no answer within {}s", spec.label, NODE_LIMIT.as_secs()),
                "check that `ssh` reaches the node and that it can reach the provider",
            )]
        }));
    }
    Ok(out)
}

/// The checks on one node.
async fn node_checks(spec: &HostSpec, opts: &SshOptions, s: &OidcSettings) -> Vec<Check> {
    let dest = &spec.label;
    let remote = match Remote::connect_only(spec, opts).await {
        Ok(r) => r,
        Err(e) => {
            return vec![Check::fail(
                "ssh",
                one_line(&e.to_string()),
                "the host key, user and key come from ssh's config (`--ssh-config`, else ~/.ssh/config), as for `patch --ssh`",
            )]
        }
    };
    let url = discovery_url(&s.issuer_url);
    let mut out = Vec::new();
    let judge = |ran: Result<Output, Error>| -> Result<(), String> {
        let ran = ran.map_err(|e| e.to_string())?;
        if ran.code != Some(0) {
            return Err(format!(
                "exit {}: {}",
                ran.code.map(|c| c.to_string()).unwrap_or("signal".into()),
                one_line(&ran.stderr)
            ));
        }
        let doc: Value =
            serde_json::from_str(&ran.stdout).map_err(|e| format!("not JSON ({e})"))?;
        match doc.get("issuer").and_then(Value::as_str) {
            Some(i) if i == s.issuer_url => Ok(()),
            other => Err(format!("issuer there is {other:?}, not {:?}", s.issuer_url)),
        }
    };
    let no_ca = judge(remote.sh(FETCH, std::slice::from_ref(&url), None).await);
    match &no_ca {
        Ok(()) => out.push(Check::pass(
            "node-no-ca",
            format!(
                "{dest} fetches {url} with its system CAs: the API server needs no --oidc-ca-file"
            ),
        )),
        Err(why) if s.ca.is_some() => out.push(Check::warn(
            "node-no-ca",
            format!("{dest} cannot fetch {url} with its system CAs ({why})"),
            "the API server needs --oidc-ca-file (k8soidc sets it from --ca-file)",
        )),
        Err(why) => out.push(Check::fail(
            "node-no-ca",
            format!("{dest} cannot fetch {url} ({why})"),
            if why.contains("exit 60") {
                "the node does not trust the provider's certificate: pass `--ca-file` with its CA"
            } else {
                "make the provider reachable from the node (DNS, routes, firewall)"
            },
        )),
    }
    if let Some(ca) = &s.ca {
        // The CA travels on stdin into a temp file; the command line holds no certificate.
        let with = remote
            .sh(
                FETCH_WITH_CA,
                std::slice::from_ref(&url),
                Some(ca.pem.as_bytes()),
            )
            .await;
        match judge(with) {
            Ok(()) => out.push(Check::pass(
                "node-with-ca",
                format!(
                    "{dest} fetches {url} with --ca-file{}",
                    if no_ca.is_err() { ": the API server needs --oidc-ca-file" } else { "" }
                ),
            )),
            Err(why) => out.push(Check::fail(
                "node-with-ca",
                format!("{dest} cannot fetch {url} even with --ca-file ({why})"),
                "give the CA that signed the provider's certificate, and make the provider reachable from the node",
            )),
        }
    }
    remote.close().await;
    out
}

pub(crate) fn run(args: CheckArgs, env: &Env) -> Result<ExitCode, Error> {
    let distro = args
        .distro
        .as_deref()
        .map(backends::Distribution::parse)
        .transpose()?;
    let s = crate::config::settings_on(&args.oidc, env, distro)?;
    let mut checks = local_checks(&s)?;
    if distro == Some(backends::Distribution::Eks) {
        let fetched = s.ca.is_none()
            && checks
                .iter()
                .any(|c| c.name == "discovery" && c.status == Status::Pass);
        checks.extend(backends::eks::preflight(&s, fetched));
    }
    if distro == Some(backends::Distribution::Gke) {
        checks.push(backends::gke::preflight(&s));
    }
    if !args.ssh.hosts.is_empty() {
        checks.extend(ssh_checks(&args, &s)?);
    }
    let text = match args.output {
        Format::Json => serde_json::to_string_pretty(&checks).expect("plain data") + "\n",
        Format::Yaml => serde_yaml_ng::to_string(&checks).expect("plain data"),
        Format::Text => table(&checks),
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| Error::io("stdout", e))?;
    Ok(if checks.iter().any(|c| c.status == Status::Fail) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_travels_on_stdin_not_in_argv() {
        assert_eq!(
            FETCH_WITH_CA,
            "f=$(mktemp) || exit 1; cat > \"$f\"; curl -fsS --max-time 10 --cacert \"$f\" \"$1\"; rc=$?; rm -f \"$f\"; exit $rc"
        );
    }
}

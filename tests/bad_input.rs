//! Bad input: exit status 2, a one-line message naming the value and the fix, and nothing run
//! (the fake k3d on PATH is never called, no file is written).

use crate::test::Test;

fn base() -> Vec<&'static str> {
    vec![
        "create",
        "--skip-check",
        "--distro",
        "k3d",
        "--yes",
        "--issuer-url",
        "https://idp.example.com",
        "--client-id",
        "kubernetes",
    ]
}

/// Runs `base()` with `change` applied and asserts refusal with `message` in stderr.
#[track_caller]
fn refused(change: &[&str], drop: &[&str], files: &[(&str, &str)], message: &str) {
    let mut args: Vec<&str> = base();
    for flag in drop {
        let i = args.iter().position(|a| a == flag).expect("flag to drop");
        args.drain(i..i + 2);
    }
    // Later flags override earlier ones for single-valued options, so appending replaces.
    let mut merged: Vec<&str> = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = args[i];
        if a.starts_with("--")
            && change.contains(&a)
            && i + 1 < args.len()
            && !args[i + 1].starts_with("--")
        {
            i += 2;
            continue;
        }
        merged.push(a);
        i += 1;
    }
    merged.extend_from_slice(change);
    let mut t = Test::new().fake("k3d");
    for (name, content) in files {
        t = t.write(name, content);
    }
    let out = t.args(&merged).run().status(2);
    assert!(
        out.stderr.contains(message),
        "args {merged:?}\nexpected {message:?} in:\n{}",
        out.stderr
    );
    assert_eq!(
        out.stderr.trim_end().lines().count(),
        1,
        "one line: {}",
        out.stderr
    );
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    assert!(
        out.calls().is_empty(),
        "a fake tool was called: {:?}",
        out.calls()
    );
    assert!(!out.root.join("data").exists(), "files were written");
}

macro_rules! bad {
    ($($name:ident: [$($arg:expr),*] $(drop [$($d:expr),*])? $(files [$(($f:expr, $c:expr)),*])? => $msg:expr;)*) => {
        $(
            #[test]
            fn $name() {
                refused(&[$($arg),*], &[$($($d),*)?], &[$($(($f, $c)),*)?], $msg);
            }
        )*
    };
}

bad! {
    issuer_http: ["--issuer-url", "http://idp.example.com"] => "invalid --issuer-url `http://idp.example.com` (from --issuer-url): the issuer must be an https URL; kube-apiserver accepts only https; use `https://idp.example.com`";
    issuer_no_scheme: ["--issuer-url", "idp.example.com"] => "invalid --issuer-url `idp.example.com` (from --issuer-url): the issuer must be an https URL";
    issuer_query: ["--issuer-url", "https://idp.example.com/?x=1"] => "has a query string; remove everything from `?` on";
    issuer_fragment: ["--issuer-url", "https://idp.example.com/#frag"] => "has a fragment";
    issuer_userinfo: ["--issuer-url", "https://user:pw@idp.example.com"] => "contains user info";
    issuer_well_known: ["--issuer-url", "https://idp.example.com/.well-known/openid-configuration"] => "is a discovery URL, not the issuer; use `https://idp.example.com`";
    issuer_control_char: ["--issuer-url", "https://idp.example.com/\tx"] => "contains a control character";
    issuer_missing: [] drop ["--issuer-url"] => "missing --issuer-url: give the provider's issuer";
    client_id_missing: [] drop ["--client-id"] => "missing --client-id";
    client_id_empty: ["--client-id", ""] => "invalid --client-id `` (from --client-id): must not be empty";
    client_id_newline: ["--client-id", "kube\nrnetes"] => "invalid --client-id `kube\\nrnetes` (from --client-id): contains a newline; remove it";
    client_id_space: ["--client-id", "my client"] => "invalid --client-id `my client` (from --client-id): contains white space";
    username_claim_empty: ["--username-claim", ""] => "invalid --username-claim `` (from --username-claim): must not be empty";
    groups_prefix_without_claim: ["--groups-prefix", "oidc:"] => "invalid --groups-prefix `oidc:` (from --groups-prefix): is set but there is no groups claim";
    prefix_with_quotes: ["--username-prefix", "\"oidc:\""] => "invalid --username-prefix `\"oidc:\"` (from --username-prefix): contains a quote or white space";
    ca_missing: ["--ca-file", "nope.pem"] => "invalid --ca-file `nope.pem` (from --ca-file): no such file; give the path of the provider's CA certificate in PEM form";
    ca_not_pem: ["--ca-file", "ca.pem"] files [("ca.pem", "hello")] => "invalid --ca-file `";
    ca_private_key: ["--ca-file", "ca.pem"] files [("ca.pem", "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n")] => "holds a private key";
    required_claim_no_equals: ["--required-claim", "hd"] => "invalid --required-claim `hd` (from --required-claim): has no `=`; write it as KEY=VALUE";
    required_claim_empty_key: ["--required-claim", "=x"] => "invalid --required-claim `=x` (from --required-claim): has an empty claim name";
    required_claim_twice: ["--required-claim", "hd=a", "--required-claim", "hd=b"] => "names claim `hd` twice";
    signing_alg_hs256: ["--signing-algs", "RS256,HS256"] => "invalid --signing-algs `RS256,HS256` (from --signing-algs): `HS256` is not an algorithm kube-apiserver accepts";
    auth_mode_unknown: ["--auth-mode", "both"] => "invalid --auth-mode `both` (from --auth-mode): unknown mode; use `flags`, `config` or `auto`";
    auth_mode_config_no_version: ["--auth-mode", "config"] => "needs the cluster's Kubernetes version";
    auth_mode_config_old: ["--auth-mode", "config", "--kubernetes-version", "1.29"] => "Kubernetes 1.29 has no beta AuthenticationConfiguration";
    version_garbage: ["--kubernetes-version", "latest"] => "invalid --kubernetes-version `latest` (from --kubernetes-version): not a Kubernetes version";
    distro_unknown: ["--distro", "minishift"] => "invalid --distro `minishift`: unknown distribution; use one of k3d, kind";
    name_invalid: ["--name", "My_Cluster"] => "invalid --name `My_Cluster`";
    k3d_dollar: ["--client-id", "a$b"] => "k3d cannot carry --client-id `a$b`";
    config_missing: ["--config", "missing.yaml"] => "invalid --config `missing.yaml`: no such file; give an existing YAML file or leave the flag out";
    config_unknown_key: ["--config", "k.yaml"] files [("k.yaml", "issuer: https://x\n")] => "invalid config file `k.yaml`: unknown field `issuer`";
    create_kubeadm_locally: ["--distro", "kubeadm"] => "invalid --distro `kubeadm` for create without --ssh";
    create_rke2_locally: ["--distro", "rke2"] => "with --ssh HOST kubeadm, microk8s, k3s and rke2 control planes; for rke2, add `--ssh HOST`";
    create_capi_locally: ["--distro", "capi"] => "for capi, `k8soidc render --distro capi` shows the settings";
}

#[test]
fn no_tty_needs_yes() {
    let out = Test::new()
        .fake("k3d")
        .args([
            "create",
            "--skip-check",
            "--distro",
            "k3d",
            "--issuer-url",
            "https://idp.example.com",
            "--client-id",
            "k",
        ])
        .run()
        .status(2);
    assert!(
        out.stderr.contains("pass --yes to go ahead"),
        "{}",
        out.stderr
    );
    assert!(out.calls().is_empty());
}

/// Options of one way of running `patch` (`--inventory`, `--file`, `--capi`) given without it
/// are refused, even next to an option clap would let them through with (`--local`).
#[test]
fn patch_options_without_their_mode_are_refused() {
    for (extra, message) in [
        (
            vec!["--parallel", "3"],
            "invalid `--parallel`: it only applies with --inventory FILE",
        ),
        (
            vec!["--in-place"],
            "invalid `--in-place`: it only applies with --file PATH",
        ),
        (
            vec!["--context", "mgmt"],
            "invalid `--context`: it only applies with --capi, --shoot, --vcluster or --distro gke --identity-service",
        ),
    ] {
        let out = Test::new()
            .args(["patch", "--local", "--dry-run", "--skip-check"])
            .args([
                "--issuer-url",
                "https://idp.example.com",
                "--client-id",
                "k",
            ])
            .args(&extra)
            .run()
            .status(2);
        assert!(out.stderr.contains(message), "{extra:?}: {}", out.stderr);
        assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
    }
}

/// `-o json` reports hosts (`--inventory`, `--ssh`, `--local`); with `--file` there is none.
#[test]
fn patch_output_json_with_file_is_refused() {
    let out = Test::new()
        .args([
            "patch",
            "--file",
            "config.yaml",
            "-o",
            "json",
            "--skip-check",
        ])
        .args([
            "--issuer-url",
            "https://idp.example.com",
            "--client-id",
            "k",
        ])
        .run()
        .status(2);
    assert!(
        out.stderr.starts_with(
            "error: the argument '--file <PATH>' cannot be used with '--output <FORMAT>'"
        ),
        "{}",
        out.stderr
    );
    assert!(out.calls().is_empty());
}

/// Issue 13, point 11: a `--ca-file` holding a private key of any kind, even beside a valid
/// certificate, is refused by every command that reads settings: exit 2, one line naming the
/// file and the fix, nothing of the key printed, nothing run.
#[test]
fn p11_ca_file_with_any_private_key_is_refused() {
    const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBkTCB+wIJAK\n-----END CERTIFICATE-----\n";
    // The key bodies are markers: they must never appear in any output.
    let keys = [
        "-----BEGIN PRIVATE KEY-----\nKEYMATERIAL1\n-----END PRIVATE KEY-----\n",
        "-----BEGIN RSA PRIVATE KEY-----\nKEYMATERIAL2\n-----END RSA PRIVATE KEY-----\n",
        "-----BEGIN EC PRIVATE KEY-----\nKEYMATERIAL3\n-----END EC PRIVATE KEY-----\n",
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nKEYMATERIAL4\n-----END ENCRYPTED PRIVATE KEY-----\n",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nKEYMATERIAL5\n-----END OPENSSH PRIVATE KEY-----\n",
        "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nKEYMATERIAL6\n=ab12\n-----END PGP PRIVATE KEY BLOCK-----\n",
        "-----BEGIN DSA PRIVATE KEY-----\r\nKEYMATERIAL7\r\n-----END DSA PRIVATE KEY-----\r\n",
        "---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----\nKEYMATERIAL8\n---- END SSH2 ENCRYPTED PRIVATE KEY ----\n",
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nPrivate-Lines: 1\nKEYMATERIAL9\n",
    ];
    let commands: [&[&str]; 3] = [
        &["render", "--distro", "k3s"],
        &["create", "--distro", "k3d", "--skip-check", "--dry-run"],
        &[
            "patch",
            "--file",
            "manifest.yaml",
            "--file-kind",
            "manifest",
            "--dry-run",
        ],
    ];
    for key in keys {
        for (where_, pem) in [
            ("after", format!("{CERT}{key}")),
            ("before", format!("{key}{CERT}")),
        ] {
            for command in commands {
                let out = Test::new()
                    .fake("k3d")
                    .write("ca.pem", &pem)
                    .write(
                        "manifest.yaml",
                        &crate::test::fixture(
                            "apiserver-manifests/030-hiulnarapyvovar-v1.29.2-minimal.yaml",
                        ),
                    )
                    .args(command)
                    .args(crate::test::SETTINGS)
                    .args(["--ca-file", "ca.pem"])
                    .run()
                    .status(2);
                let path = out.root.canonicalize().unwrap().join("ca.pem");
                assert_eq!(
                    out.stderr,
                    format!(
                        "error: invalid --ca-file `{}` (from --ca-file): holds a private key; give a file with only the CA certificate(s); never ship a key to the API server\n",
                        path.display()
                    ),
                    "{command:?} with the key {where_} the certificate: {key}"
                );
                assert_eq!(out.stdout, "", "{command:?}");
                assert!(out.calls().is_empty(), "{command:?}: {:?}", out.calls());
            }
        }
    }
}

/// Issue 13 point 13: a 100 KB value was written, then the health command went over the
/// argument limit and the run rolled back; now every value's length is checked first (exit 2,
/// one line with the limit and the reason, the value shown by its start only).
#[test]
fn p13_very_long_values_are_refused_up_front() {
    let long = "a".repeat(100 * 1024);
    let issuer = format!("https://idp.example.com/{long}");
    let prefix = format!("{long}:");
    let claim = format!("hd={long}");
    for (flag, value, limit) in [
        ("--issuer-url", issuer.as_str(), "2048"),
        ("--client-id", long.as_str(), "1024"),
        ("--username-claim", long.as_str(), "1024"),
        ("--groups-claim", long.as_str(), "1024"),
        ("--username-prefix", prefix.as_str(), "1024"),
        ("--required-claim", claim.as_str(), "1024"),
    ] {
        let expect = format!(
            "invalid {flag} `{}…` (from {flag}): is {} bytes long, more than the {limit} bytes k8soidc accepts (every value goes on kube-apiserver's command line and into node commands, which Linux limits to 128 KiB per argument)",
            value.chars().take(40).collect::<String>(),
            value.len()
        );
        refused(&[flag, value], &[], &[], &expect);
    }
    // The same limit holds for a value from the environment, named as such.
    let out = Test::new()
        .args([
            "render",
            "--distro",
            "k3d",
            "--issuer-url",
            "https://idp.example.com",
        ])
        .env("K8SOIDC_CLIENT_ID", &long)
        .run()
        .status(2);
    assert!(
        out.stderr
            .contains("(from K8SOIDC_CLIENT_ID): is 102400 bytes long, more than the 1024 bytes"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.len() < 600,
        "the value is not echoed: {}",
        out.stderr.len()
    );
}

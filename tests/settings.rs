//! Issue 11 point 5 / issue 14 point 10: settings are merged once (flags > `K8SOIDC_*` >
//! settings file; for inventories flags > cluster settings > defaults > env > `--config`) and
//! a bad value names where it came from: the flag, the variable, or the file and line of its
//! key. Each case asserts the whole one-line error and exit status 2 (just's `test!` style).

use crate::test::Test;

/// `render` needs no tools and no network: the settings are all it looks at.
const RENDER: [&str; 4] = ["render", "--distro", "kubeadm", "--issuer-url"];

/// `--skip-check`: nothing is fetched; settings fail before any host is contacted.
const PATCH: [&str; 5] = ["patch", "--skip-check", "--yes", "--inventory", "inv.yaml"];

const HTTP: &str = "error: invalid --issuer-url `http://idp.example.com` (from {}): the issuer must be an https URL; kube-apiserver accepts only https; use `https://idp.example.com`\n";

struct Case<'a> {
    args: &'a [&'a str],
    env: &'a [(&'a str, &'a str)],
    files: &'a [(&'a str, &'a str)],
    stderr: String,
}

#[track_caller]
fn refused(c: Case<'_>) {
    let mut t = Test::new().args(c.args);
    for (k, v) in c.env {
        t = t.env(k, v);
    }
    for (name, content) in c.files {
        t = t.write(name, content);
    }
    let out = t.run().status(2);
    assert_eq!(out.stderr, c.stderr, "args {:?} env {:?}", c.args, c.env);
    assert_eq!(out.stdout, "");
}

macro_rules! test {
    ($($name:ident: args [$($a:expr),*] $(env [$(($k:expr, $v:expr)),*])? $(files [$(($f:expr, $c:expr)),*])? => $stderr:expr;)*) => {
        $(
            #[test]
            fn $name() {
                refused(Case {
                    args: &[$($a),*],
                    env: &[$($(($k, $v)),*)?],
                    files: &[$($(($f, $c)),*)?],
                    stderr: $stderr,
                });
            }
        )*
    };
}

fn http_from(source: &str) -> String {
    HTTP.replace("{}", source)
}

test! {
    issuer_from_flag:
        args [RENDER[0], RENDER[1], RENDER[2], RENDER[3], "http://idp.example.com", "--client-id", "k"]
        => http_from("--issuer-url");
    issuer_from_env:
        args ["render", "--distro", "kubeadm", "--client-id", "k"]
        env [("K8SOIDC_ISSUER_URL", "http://idp.example.com")]
        => http_from("K8SOIDC_ISSUER_URL");
    issuer_from_default_settings_file_names_its_line:
        args ["render", "--distro", "kubeadm"]
        files [("k8soidc.yaml", "# the cluster's OIDC\nclient-id: kubernetes\nissuer-url: http://idp.example.com\n")]
        => http_from("k8soidc.yaml:3");
    client_id_from_config_flag_file:
        args ["render", "--distro", "kubeadm", "--config", "cfg/oidc.yaml"]
        files [("cfg/oidc.yaml", "issuer-url: https://idp.example.com\nclient-id: my client\n")]
        => "error: invalid --client-id `my client` (from cfg/oidc.yaml:2): contains white space; give the client id exactly as the provider shows it\n".into();
    required_claim_list_names_the_key_line:
        args ["render", "--distro", "kubeadm", "--config", "k.yaml"]
        files [("k.yaml", "issuer-url: https://idp.example.com\nclient-id: k\nrequired-claim:\n  - hd\n")]
        => "error: invalid --required-claim `hd` (from k.yaml:3): has no `=`; write it as KEY=VALUE, e.g. `hd=example.com`\n".into();
    relative_ca_in_settings_file_is_relative_to_it:
        args ["render", "--distro", "kubeadm", "--config", "cfg/k.yaml"]
        files [("cfg/k.yaml", "issuer-url: https://idp.example.com\nclient-id: k\nca-file: ca.pem\n")]
        => "error: invalid --ca-file `cfg/ca.pem` (from cfg/k.yaml:3): no such file; give the path of the provider's CA certificate in PEM form\n".into();
    env_beats_settings_file:
        args ["render", "--distro", "kubeadm"]
        env [("K8SOIDC_AUTH_MODE", "both")]
        files [("k8soidc.yaml", "issuer-url: https://idp.example.com\nclient-id: k\nauth-mode: flags\n")]
        => "error: invalid --auth-mode `both` (from K8SOIDC_AUTH_MODE): unknown mode; use `flags`, `config` or `auto`\n".into();
    flag_beats_env:
        args ["render", "--distro", "kubeadm", "--client-id", "a b"]
        env [("K8SOIDC_ISSUER_URL", "https://idp.example.com"), ("K8SOIDC_CLIENT_ID", "kubernetes")]
        => "error: invalid --client-id `a b` (from --client-id): contains white space; give the client id exactly as the provider shows it\n".into();
    config_path_from_env:
        args ["render", "--distro", "kubeadm"]
        env [("K8SOIDC_CONFIG", "nope.yaml")]
        => "error: invalid --config `nope.yaml` (from K8SOIDC_CONFIG): no such file; give an existing YAML file or leave the flag out\n".into();
    inventory_cluster_settings_name_file_line_and_key:
        args [PATCH[0], PATCH[1], PATCH[2], PATCH[3], PATCH[4]]
        files [("inv.yaml", "defaults:\n  issuer-url: https://idp.example.com\nclusters:\n  - name: a\n    hosts: [h1]\n    settings:\n      client-id: my client\n")]
        => "error: inv.yaml:7: clusters[0].settings.client-id: invalid --client-id `my client`: contains white space; give the client id exactly as the provider shows it\n".into();
    inventory_defaults_name_file_line_and_key:
        args [PATCH[0], PATCH[1], PATCH[2], PATCH[3], PATCH[4]]
        files [("inv.yaml", "defaults:\n  client-id: k\n  issuer-url: http://idp.example.com\nclusters:\n  - name: a\n    hosts: [h1]\n")]
        => "error: inv.yaml:3: defaults.issuer-url: invalid --issuer-url `http://idp.example.com`: the issuer must be an https URL; kube-apiserver accepts only https; use `https://idp.example.com`\n".into();
    inventory_value_from_env_names_the_cluster_and_the_variable:
        args [PATCH[0], PATCH[1], PATCH[2], PATCH[3], PATCH[4]]
        env [("K8SOIDC_CLIENT_ID", "a b")]
        files [("inv.yaml", "defaults:\n  issuer-url: https://idp.example.com\nclusters:\n  - name: a\n    hosts: [h1]\n")]
        => "error: inv.yaml:4: clusters[0]: invalid --client-id `a b` (from K8SOIDC_CLIENT_ID): contains white space; give the client id exactly as the provider shows it\n".into();
    inventory_value_from_config_file_names_its_line:
        args [PATCH[0], PATCH[1], PATCH[2], PATCH[3], PATCH[4], "--config", "k.yaml"]
        files [("k.yaml", "client-id: k\nsigning-algs: HS256\n"), ("inv.yaml", "defaults:\n  issuer-url: https://idp.example.com\nclusters:\n  - name: a\n    hosts: [h1]\n")]
        => "error: inv.yaml:4: clusters[0]: invalid --signing-algs `HS256` (from k.yaml:2): `HS256` is not an algorithm kube-apiserver accepts; use a comma-separated list of RS256, RS384, RS512, ES256, ES384, ES512, PS256, PS384, PS512\n".into();
    inventory_cluster_beats_env:
        args [PATCH[0], PATCH[1], PATCH[2], PATCH[3], PATCH[4]]
        env [("K8SOIDC_GROUPS_PREFIX", "oidc:")]
        files [("inv.yaml", "defaults:\n  issuer-url: https://idp.example.com\n  client-id: k\nclusters:\n  - name: a\n    hosts: [h1]\n    settings:\n      groups-prefix: 'my prefix'\n")]
        => "error: inv.yaml:8: clusters[0].settings.groups-prefix: invalid --groups-prefix `my prefix`: contains a quote or white space, which would become part of every name; give the bare prefix, e.g. `oidc:`\n".into();
}

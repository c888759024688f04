//! Okta: a Terraform module (okta/okta provider) with the anchor article's six steps
//! (oktadev/okta-blog `_source/_posts/2021-10-27-k8s-api-server-oidc.md`, code in
//! oktadev/okta-k8s-oidc-terraform-example): group, memberships, native OIDC app with PKCE,
//! custom authorization server, groups claim, access policy and rule.
//!
//! Attribute names are the provider's documented schema (okta/terraform-provider-okta
//! `docs/resources/*.md`, `docs/data-sources/user.md`, `docs/index.md`; cited per resource in
//! the tests). Departures from the article, each for a reason:
//! - `grant_types` adds `refresh_token` and the rule allows the `offline_access` scope, or
//!   kubelogin must open a browser every hour (peers.md P10, "Okta needs the Refresh Token grant").
//! - a `groups` scope is created on the authorization server: kubelogin requests `groups`
//!   (`OidcSettings::scopes`), and a custom authorization server has no such scope by default
//!   (peers.md P9, AcademySoftwareFoundation/OpenCue#2476).
//! - the claim is an ID-token (`IDENTITY`) claim, the only token the API server reads (P9, P11).
//! - the client id: Okta generates it unless `client_id` is set at creation ("If set during
//!   creation, app is created with this id", `docs/resources/app_oauth.md`). With `--client-id`
//!   we set it; without, Terraform's `client_id` output is what the cluster must get.
//! - the issuer is always generated (`https://<org>.okta.com/oauth2/<server id>`, read-only
//!   `issuer` of `okta_auth_server`), so `--issuer-url` can only be compared after apply.

use super::hcl::{self, r, s, strs, Block, Value};
use super::{
    common_matches, create_command, match_lines, match_table, next_steps, IdpFile, IdpRendering,
    IdpRequest, IdpSettings, Match, Provider, REDIRECT_URIS,
};
use crate::PlanError;

/// The Okta group-filter value: the group name up to and including its first `-` (the article
/// filters `STARTS_WITH k8s-` for `k8s-admins`), or the whole name when it has no `-`.
pub fn group_filter(group: &str) -> String {
    match group.find('-') {
        Some(i) if i + 1 < group.len() => group[..=i].to_string(),
        _ => group.to_string(),
    }
}

fn blocks(st: &IdpSettings, req: &IdpRequest) -> Vec<Block> {
    let mut out = Vec::new();
    out.push(Block::new::<&str>("terraform", []).block(
        Block::new::<&str>("required_providers", []).attr(
            "okta",
            Value::Map(vec![
                ("source".into(), s("okta/okta")),
                ("version".into(), s(">= 4.0")),
            ]),
        ),
    ));
    out.push(
        Block::new("variable", ["okta_org_name"])
            .attr("type", r("string"))
            .attr("description", s("Your Okta org name, e.g. dev-123456 for dev-123456.okta.com (or set TF_VAR_okta_org_name)")),
    );
    out.push(
        Block::new("variable", ["okta_base_url"])
            .attr("type", r("string"))
            .attr("description", s("okta.com or oktapreview.com"))
            .attr("default", s("okta.com")),
    );
    out.push(
        Block::new("variable", ["okta_api_token"])
            .attr("type", r("string"))
            .attr(
                "description",
                s("An Okta API token; export TF_VAR_okta_api_token, never write it into a file"),
            )
            .attr("sensitive", Value::Bool(true)),
    );
    out.push(
        Block::new("provider", ["okta"])
            .attr("org_name", r("var.okta_org_name"))
            .attr("base_url", r("var.okta_base_url"))
            .attr("api_token", r("var.okta_api_token")),
    );
    out.push(
        Block::new("resource", ["okta_group", "k8s"])
            .comment("1. The group RBAC binds. The cluster sees it as")
            .comment(&format!(
                "   `{}{}` ({}).",
                st.groups_prefix,
                req.group,
                st.prefix_note()
            ))
            .attr("name", s(&req.group))
            .attr(
                "description",
                s("Kubernetes users (managed by k8soidc idp okta)"),
            ),
    );
    if !req.users.is_empty() {
        for (i, u) in req.users.iter().enumerate() {
            out.push(
                Block::new("data", ["okta_user".to_string(), format!("user_{}", i + 1)]).block(
                    Block::new::<&str>("search", [])
                        .attr("name", s("profile.login"))
                        .attr("value", s(u)),
                ),
            );
        }
        out.push(
            Block::new("resource", ["okta_group_memberships", "k8s"])
                .comment("2. Users in the group (okta_group_memberships takes user ids, looked up by login above).")
                .attr("group_id", r("okta_group.k8s.id"))
                .attr(
                    "users",
                    Value::List(
                        (1..=req.users.len())
                            .map(|i| r(format!("data.okta_user.user_{i}.id")))
                            .collect(),
                    ),
                ),
        );
    }
    let mut app = Block::new("resource", ["okta_app_oauth", "kubernetes"])
        .comment("3. The OIDC application: native, public client with PKCE (no secret).")
        .attr("label", s("Kubernetes"))
        .attr("type", s("native"))
        .attr("token_endpoint_auth_method", s("none"))
        .attr("pkce_required", Value::Bool(true))
        .attr("omit_secret", Value::Bool(true))
        .attr("grant_types", strs(["authorization_code", "refresh_token"]))
        .attr("response_types", strs(["code"]))
        .blank()
        .comment("kubelogin's listen addresses; must match the redirect URIs it uses.")
        .attr("redirect_uris", strs(REDIRECT_URIS));
    if let Some(c) = &st.client_id {
        app = app
            .comment("Must equal --client-id on the cluster (the token's `aud`).")
            .attr("client_id", s(c));
    }
    out.push(app);
    out.push(
        Block::new("resource", ["okta_app_group_assignment", "k8s"])
            .comment("Members of the group may sign in to the app.")
            .attr("app_id", r("okta_app_oauth.kubernetes.id"))
            .attr("group_id", r("okta_group.k8s.id")),
    );
    out.push(
        Block::new("resource", ["okta_auth_server", "k8s"])
            .comment(
                "4. A custom authorization server: its `issuer` is the cluster's --issuer-url.",
            )
            .attr("name", s("kubernetes"))
            .attr(
                "description",
                s("Issues ID tokens for the Kubernetes API server"),
            )
            .attr("audiences", strs(["api://kubernetes"])),
    );
    out.push(
        Block::new("resource", ["okta_auth_server_scope", "groups"])
            .comment(
                "kubelogin requests the `groups` scope; a custom authorization server has none.",
            )
            .attr("auth_server_id", r("okta_auth_server.k8s.id"))
            .attr("name", s("groups"))
            .attr("consent", s("IMPLICIT"))
            .attr("metadata_publish", s("ALL_CLIENTS")),
    );
    out.push(
        Block::new("resource", ["okta_auth_server_claim", "groups"])
            .comment("5. The groups claim, in the ID token (the only token the API server reads).")
            .comment(&format!(
                "Its name must equal --groups-claim `{}`.",
                st.groups_claim
            ))
            .attr("auth_server_id", r("okta_auth_server.k8s.id"))
            .attr("name", s(&st.groups_claim))
            .attr("claim_type", s("IDENTITY"))
            .attr("value_type", s("GROUPS"))
            .attr("group_filter_type", s("STARTS_WITH"))
            .attr("value", s(group_filter(&req.group)))
            .attr("always_include_in_token", Value::Bool(true)),
    );
    out.push(
        Block::new("resource", ["okta_auth_server_policy", "k8s"])
            .comment("6. Policy and rule: who may get tokens from this server, with which grants.")
            .attr("auth_server_id", r("okta_auth_server.k8s.id"))
            .attr("name", s("kubernetes"))
            .attr("description", s("kubelogin (authorization code + PKCE)"))
            .attr("priority", Value::Num(1))
            .attr(
                "client_whitelist",
                Value::List(vec![r("okta_app_oauth.kubernetes.client_id")]),
            ),
    );
    out.push(
        Block::new("resource", ["okta_auth_server_policy_rule", "k8s"])
            .attr("auth_server_id", r("okta_auth_server.k8s.id"))
            .attr("policy_id", r("okta_auth_server_policy.k8s.id"))
            .attr("name", s("AuthCode + PKCE"))
            .attr("priority", Value::Num(1))
            .attr("grant_type_whitelist", strs(["authorization_code"]))
            .attr("scope_whitelist", strs(st.scopes.iter().copied()))
            .attr("group_whitelist", Value::List(vec![r("okta_group.k8s.id")])),
    );
    out.push(
        Block::new("output", ["issuer_url"])
            .attr("description", s("Give it to k8soidc as --issuer-url"))
            .attr("value", r("okta_auth_server.k8s.issuer")),
    );
    out.push(
        Block::new("output", ["client_id"])
            .attr("description", s("Give it to k8soidc as --client-id"))
            .attr("value", r("okta_app_oauth.kubernetes.client_id")),
    );
    out
}

fn client_note(st: &IdpSettings) -> String {
    match &st.client_id {
        Some(c) => format!("client id: `{c}` is set on the app (`client_id` in okta_app_oauth: Okta creates the app with this id); it must match --client-id `{c}`. Okta refuses it if another app already uses it."),
        None => "client id: Okta generates it when the app is created, so k8soidc cannot impose one. After `terraform apply`, give `terraform output -raw client_id` to k8soidc as --client-id (or pass --client-id to `idp okta` to set it at creation).".into(),
    }
}

fn issuer_note(st: &IdpSettings) -> String {
    match &st.issuer_url {
        Some(i) => format!("issuer: Okta generates it (`https://<org>.okta.com/oauth2/<server id>`); after apply, `terraform output -raw issuer_url` must equal --issuer-url `{i}` byte for byte, or tokens are refused."),
        None => "issuer: Okta generates it (`https://<org>.okta.com/oauth2/<server id>`); after apply, give `terraform output -raw issuer_url` to k8soidc as --issuer-url.".into(),
    }
}

/// Renders `main.tf` and `README.md`.
pub fn render(st: &IdpSettings, req: &IdpRequest) -> Result<IdpRendering, PlanError> {
    let header = vec![
        "Okta side of Kubernetes OIDC, generated by `k8soidc idp okta`.".to_string(),
        "Every value below comes from the same settings as the cluster's; see README.md.".into(),
        "No secret is written here: the API token is a variable (TF_VAR_okta_api_token).".into(),
    ];
    let main = hcl::file(&header, &blocks(st, req));
    let mut rows = vec![
        Match {
            what: "client id".into(),
            value: st
                .client_id
                .clone()
                .unwrap_or_else(|| "terraform output client_id".into()),
            setting: "--client-id (the ID token's `aud`)".into(),
        },
        Match {
            what: "issuer".into(),
            value: "terraform output issuer_url".into(),
            setting: "--issuer-url, byte for byte (the ID token's `iss`)".into(),
        },
    ];
    rows.extend(common_matches(st, req));
    let mut notes = vec![client_note(st), issuer_note(st)];
    notes.extend(match_lines(&rows[2..]));
    if req.users.is_empty() {
        notes.push("no --user given: the group is created empty; add members in Okta or rerun with `--user EMAIL`.".into());
    }
    notes.extend(st.warnings.iter().map(|w| format!("warning: {w}")));
    notes.extend(next_steps());
    let client = match &st.client_id {
        Some(c) => crate::shell::quote(c),
        None => "\"$(terraform output -raw client_id)\"".into(),
    };
    let create = create_command(st, "\"$(terraform output -raw issuer_url)\"", &client);
    let readme = format!(
        "# Okta for Kubernetes OIDC\n\n\
Generated by `k8soidc idp okta` from the same settings as the cluster, so the client, claims,\n\
scopes and redirect URIs match what the API server and kubelogin are given.\n\n\
`main.tf` follows the six steps of Okta's guide: a group (`{group}`), its members, an OIDC\n\
application (native, PKCE, no secret), an authorization server, a `{claim}` claim in the ID\n\
token, and an access policy with a rule.\n\n\
## Apply\n\n\
```sh\n\
export TF_VAR_okta_org_name=dev-123456     # from https://dev-123456.okta.com\n\
export TF_VAR_okta_api_token=...           # Security > API > Tokens; never commit it\n\
terraform init && terraform apply\n\
```\n\n\
## Then configure the cluster with the outputs\n\n\
- {client_note}\n\
- {issuer_note}\n\n\
```sh\n\
{create}\n\
```\n\n\
{next}\n\n\
## What must match\n\n\
{table}",
        group = req.group,
        claim = st.groups_claim,
        client_note = client_note(st),
        issuer_note = issuer_note(st),
        next = next_steps().join("\n"),
        table = match_table(&rows),
    );
    Ok(IdpRendering {
        provider: Provider::Okta,
        files: vec![
            IdpFile {
                path: "main.tf".into(),
                language: "hcl",
                content: main,
            },
            IdpFile {
                path: "README.md".into(),
                language: "markdown",
                content: readme,
            },
        ],
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idp::testutil::{assert_schema, hcl_blocks, request, settings};
    use crate::idp::IdpSettings;
    use crate::testutil::input;

    fn main_tf(st: &IdpSettings, req: &IdpRequest) -> String {
        render(st, req).unwrap().files[0].content.clone()
    }

    #[test]
    fn group_filter_is_the_prefix() {
        assert_eq!(group_filter("k8s-admins"), "k8s-");
        assert_eq!(group_filter("admins"), "admins");
        assert_eq!(group_filter("admins-"), "admins-");
    }

    /// Every resource and attribute name against the okta provider's documented schema.
    #[test]
    fn attributes_are_in_the_provider_schema() {
        let mut no_client = input();
        no_client.client_id = None;
        no_client.issuer_url = None;
        let cases = [
            (settings(Provider::Okta), request()),
            (
                IdpSettings::validate(Provider::Okta, &no_client).unwrap(),
                IdpRequest::validate("platform", &[]).unwrap(),
            ),
        ];
        for (st, req) in &cases {
            let tf = main_tf(st, req);
            // https://registry.terraform.io/providers/okta/okta/latest/docs (provider arguments)
            assert_eq!(
                assert_schema(
                    &tf,
                    "provider",
                    "okta",
                    &[],
                    &["org_name", "base_url", "api_token"]
                ),
                1
            );
            // https://registry.terraform.io/providers/okta/okta/latest/docs/resources/group
            assert_eq!(
                assert_schema(&tf, "resource", "okta_group", &["name"], &["description"]),
                1
            );
            // https://registry.terraform.io/providers/okta/okta/latest/docs/data-sources/user
            assert_eq!(
                assert_schema(&tf, "data", "okta_user", &[], &["search"]),
                req.users.len()
            );
            // https://registry.terraform.io/providers/okta/okta/latest/docs/resources/group_memberships
            assert_eq!(
                assert_schema(
                    &tf,
                    "resource",
                    "okta_group_memberships",
                    &["group_id", "users"],
                    &[]
                ),
                usize::from(!req.users.is_empty())
            );
            // https://registry.terraform.io/providers/okta/okta/latest/docs/resources/app_oauth
            assert_eq!(
                assert_schema(
                    &tf,
                    "resource",
                    "okta_app_oauth",
                    &["label", "type"],
                    &[
                        "token_endpoint_auth_method",
                        "pkce_required",
                        "omit_secret",
                        "grant_types",
                        "response_types",
                        "redirect_uris",
                        "client_id"
                    ]
                ),
                1
            );
            // https://registry.terraform.io/providers/okta/okta/latest/docs/resources/app_group_assignment
            assert_eq!(
                assert_schema(
                    &tf,
                    "resource",
                    "okta_app_group_assignment",
                    &["app_id", "group_id"],
                    &[]
                ),
                1
            );
            // https://registry.terraform.io/providers/okta/okta/latest/docs/resources/auth_server
            assert_eq!(
                assert_schema(
                    &tf,
                    "resource",
                    "okta_auth_server",
                    &["audiences", "name"],
                    &["description"]
                ),
                1
            );
            // https://registry.terraform.io/providers/okta/okta/latest/docs/resources/auth_server_scope
            assert_eq!(
                assert_schema(
                    &tf,
                    "resource",
                    "okta_auth_server_scope",
                    &["auth_server_id", "name"],
                    &["consent", "metadata_publish"]
                ),
                1
            );
            // https://registry.terraform.io/providers/okta/okta/latest/docs/resources/auth_server_claim
            assert_eq!(
                assert_schema(
                    &tf,
                    "resource",
                    "okta_auth_server_claim",
                    &["auth_server_id", "claim_type", "name", "value"],
                    &["value_type", "group_filter_type", "always_include_in_token"]
                ),
                1
            );
            // https://registry.terraform.io/providers/okta/okta/latest/docs/resources/auth_server_policy
            assert_eq!(
                assert_schema(
                    &tf,
                    "resource",
                    "okta_auth_server_policy",
                    &[
                        "auth_server_id",
                        "client_whitelist",
                        "description",
                        "name",
                        "priority"
                    ],
                    &[]
                ),
                1
            );
            // https://registry.terraform.io/providers/okta/okta/latest/docs/resources/auth_server_policy_rule
            assert_eq!(
                assert_schema(
                    &tf,
                    "resource",
                    "okta_auth_server_policy_rule",
                    &[
                        "auth_server_id",
                        "grant_type_whitelist",
                        "name",
                        "policy_id",
                        "priority"
                    ],
                    &["scope_whitelist", "group_whitelist"]
                ),
                1
            );
            // Nothing else: every block is one of the above, a variable, an output or terraform.
            for (kind, labels, _, _) in hcl_blocks(&tf) {
                let known = [
                    "okta_group",
                    "okta_user",
                    "okta_group_memberships",
                    "okta_app_oauth",
                    "okta_app_group_assignment",
                    "okta_auth_server",
                    "okta_auth_server_scope",
                    "okta_auth_server_claim",
                    "okta_auth_server_policy",
                    "okta_auth_server_policy_rule",
                ];
                match kind.as_str() {
                    "resource" | "data" => {
                        assert!(known.contains(&labels[0].as_str()), "{labels:?}")
                    }
                    "terraform" | "variable" | "output" | "provider" => {}
                    other => panic!("unexpected block {other}"),
                }
            }
        }
    }

    #[test]
    fn values_come_from_the_settings() {
        let tf = main_tf(&settings(Provider::Okta), &request());
        let body: ::hcl::Body = ::hcl::from_str(&tf).unwrap();
        let find = |rtype: &str| {
            body.blocks()
                .find(|b| b.labels().first().map(|l| l.as_str()) == Some(rtype))
                .unwrap()
                .body()
                .clone()
        };
        let attr = |b: &::hcl::Body, k: &str| {
            b.attributes()
                .find(|a| a.key() == k)
                .unwrap()
                .expr()
                .to_string()
        };
        let app = find("okta_app_oauth");
        assert_eq!(attr(&app, "client_id"), "\"kubernetes\"");
        assert_eq!(attr(&app, "type"), "\"native\"");
        assert!(attr(&app, "redirect_uris").contains("http://localhost:18000"));
        assert!(attr(&app, "grant_types").contains("refresh_token"));
        let claim = find("okta_auth_server_claim");
        assert_eq!(attr(&claim, "name"), "\"groups\"");
        assert_eq!(attr(&claim, "claim_type"), "\"IDENTITY\"");
        assert_eq!(attr(&claim, "value"), "\"k8s-\"");
        let rule = find("okta_auth_server_policy_rule");
        assert!(attr(&rule, "scope_whitelist").contains("offline_access"));
        assert!(tf.contains("value = \"alice@example.com\""), "{tf}");
    }

    #[test]
    fn without_client_id_the_readme_explains_the_generated_one() {
        let mut i = input();
        i.client_id = None;
        let st = IdpSettings::validate(Provider::Okta, &i).unwrap();
        let r = render(&st, &request()).unwrap();
        assert!(!r.files[0].content.contains("client_id  "));
        let readme = &r.files[1].content;
        assert!(readme.contains("Okta generates it"), "{readme}");
        assert!(
            readme.contains("terraform init && terraform apply"),
            "{readme}"
        );
        assert!(
            readme.contains("--client-id \"$(terraform output -raw client_id)\""),
            "{readme}"
        );
        assert!(readme.contains("k8soidc check"), "{readme}");
    }

    #[test]
    fn hostile_group_names_stay_strings() {
        let req = IdpRequest::validate("k8s-${var.okta_api_token}\"x", &["a\"b@c".into()]);
        // The quote is refused for users, accepted (and escaped) for group names.
        assert!(req.is_err());
        let req = IdpRequest::validate("k8s-${var.okta_api_token}\"%{x}", &[]).unwrap();
        let tf = main_tf(&settings(Provider::Okta), &req);
        let v: ::hcl::Body = ::hcl::from_str(&tf).unwrap_or_else(|e| panic!("{tf}\n{e}"));
        assert!(
            tf.contains(r#"name        = "k8s-$${var.okta_api_token}\"%%{x}""#),
            "{tf}"
        );
        assert!(v.blocks().count() > 5);
    }

    #[test]
    fn no_secret_values() {
        let tf = main_tf(&settings(Provider::Okta), &request());
        assert!(!tf.contains("client_secret"));
        assert!(!tf.contains("client_basic_secret"));
        // The token is only ever a reference to the sensitive variable.
        assert!(tf.contains("api_token = var.okta_api_token"), "{tf}");
        let var = tf.split("variable \"okta_api_token\"").nth(1).unwrap();
        assert!(!var.split('}').next().unwrap().contains("default"));
    }
}

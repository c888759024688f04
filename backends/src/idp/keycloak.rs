//! Keycloak: a realm import JSON and the same objects as Terraform (keycloak/keycloak provider).
//!
//! Facts this follows (peers.md §2.8, P4, P9, P12):
//! - groups need a Group Membership mapper with "Add to ID token" on (int128/kubelogin#692), and
//!   "Full group path" off, or names arrive as `/k8s-admins` (projectcapsule/capsule#332);
//! - users created without a verified email get `email_verified: false`, which the API server
//!   refuses with `--username-claim email` (P4): users are created verified;
//! - Keycloak answers `invalid_scope` when a client requests a scope it does not have
//!   (akuity/kargo#2675, "Invalid scopes: openid profile email groups offline_access"), and
//!   kubelogin requests `groups`: the Terraform adds a `groups` client scope as an optional scope.
//!   The realm JSON cannot: `RealmManager.importRealm` creates Keycloak's built-in client scopes
//!   only `if (rep.getClientScopes() == null)` (keycloak/keycloak, services), so declaring one
//!   would drop `email`, `profile`, `offline_access`...; the README gives the manual step.
//! - the issuer of realm R is `<base>/realms/R` (`<base>/auth/realms/R` on the old WildFly
//!   distribution, the provider's `base_path = "/auth"`, keycloak provider `docs/index.md`).
//!
//! Terraform attribute names: keycloak/terraform-provider-keycloak `docs/resources/*.md`
//! (cited per resource in the tests).

use serde_json::{json, Value as Json};

use super::hcl::{self, r, s, strs, Block, Value};
use super::{
    common_matches, create_command, match_lines, match_table, next_steps, IdpFile, IdpRendering,
    IdpRequest, IdpSettings, Match, Provider, REDIRECT_URIS,
};
use crate::{shell, PlanError};

/// The Keycloak base URL, `base_path` and realm read from an issuer `<base>[/auth]/realms/<realm>`.
pub fn split_issuer(issuer: &str) -> Result<(String, &'static str, String), PlanError> {
    let bad = || {
        PlanError::invalid(
            "--issuer-url",
            issuer,
            "is not a Keycloak realm issuer",
            "Keycloak issuers end in `/realms/<realm>`, e.g. `https://sso.example.com/realms/k8s`",
        )
    };
    let (base, realm) = issuer.rsplit_once("/realms/").ok_or_else(bad)?;
    if realm.is_empty() || realm.contains('/') || base.len() <= "https://".len() {
        return Err(bad());
    }
    match base.strip_suffix("/auth") {
        Some(b) if b.len() > "https://".len() => Ok((b.to_string(), "/auth", realm.to_string())),
        _ => Ok((base.to_string(), "", realm.to_string())),
    }
}

/// The realm import JSON (`kc.sh import --file`, or the admin console's "Create realm").
pub fn realm_json(st: &IdpSettings, req: &IdpRequest, realm: &str, client: &str) -> Json {
    let users: Vec<Json> = req
        .users
        .iter()
        .map(|u| {
            json!({
                "username": u,
                "email": u,
                "emailVerified": true,
                "enabled": true,
                "groups": [format!("/{}", req.group)],
            })
        })
        .collect();
    json!({
        "realm": realm,
        "enabled": true,
        "groups": [{ "name": req.group }],
        "users": users,
        "clients": [{
            "clientId": client,
            "name": "Kubernetes",
            "enabled": true,
            "protocol": "openid-connect",
            "publicClient": true,
            "standardFlowEnabled": true,
            "implicitFlowEnabled": false,
            "directAccessGrantsEnabled": false,
            "redirectUris": REDIRECT_URIS,
            "attributes": { "pkce.code.challenge.method": "S256" },
            "protocolMappers": [{
                "name": "groups",
                "protocol": "openid-connect",
                "protocolMapper": "oidc-group-membership-mapper",
                "consentRequired": false,
                "config": {
                    "claim.name": st.groups_claim,
                    "full.path": "false",
                    "id.token.claim": "true",
                    "access.token.claim": "true",
                    "userinfo.token.claim": "true",
                }
            }],
        }],
    })
}

fn blocks(
    st: &IdpSettings,
    req: &IdpRequest,
    realm: &str,
    base: &str,
    base_path: &str,
    client: &str,
) -> Vec<Block> {
    let mut out = vec![
        Block::new::<&str>("terraform", []).block(
            Block::new::<&str>("required_providers", []).attr(
                "keycloak",
                Value::Map(vec![
                    ("source".into(), s("keycloak/keycloak")),
                    ("version".into(), s(">= 5.0")),
                ]),
            ),
        ),
        Block::new("variable", ["keycloak_url"])
            .attr("type", r("string"))
            .attr("description", s("Keycloak's base URL (before /realms)"))
            .attr("default", s(base)),
        Block::new("variable", ["keycloak_admin_client_id"])
            .attr("type", r("string"))
            .attr("description", s("admin-cli with KEYCLOAK_USER/KEYCLOAK_PASSWORD, or a service-account client with KEYCLOAK_CLIENT_SECRET (environment only)"))
            .attr("default", s("admin-cli")),
    ];
    let mut provider = Block::new("provider", ["keycloak"])
        .comment(
            "Credentials come from KEYCLOAK_USER / KEYCLOAK_PASSWORD or KEYCLOAK_CLIENT_SECRET.",
        )
        .attr("url", r("var.keycloak_url"))
        .attr("client_id", r("var.keycloak_admin_client_id"));
    if !base_path.is_empty() {
        provider = provider.attr("base_path", s(base_path));
    }
    out.push(provider);
    out.push(
        Block::new("resource", ["keycloak_realm", "k8s"])
            .comment("The realm in --issuer-url. If it exists: terraform import keycloak_realm.k8s <realm>")
            .attr("realm", s(realm))
            .attr("enabled", Value::Bool(true)),
    );
    out.push(
        Block::new("resource", ["keycloak_openid_client", "kubernetes"])
            .comment(
                "Public client with PKCE; client_id must equal --client-id (the token's `aud`).",
            )
            .attr("realm_id", r("keycloak_realm.k8s.id"))
            .attr("client_id", s(client))
            .attr("name", s("Kubernetes"))
            .attr("enabled", Value::Bool(true))
            .attr("access_type", s("PUBLIC"))
            .attr("standard_flow_enabled", Value::Bool(true))
            .attr("direct_access_grants_enabled", Value::Bool(false))
            .attr("pkce_code_challenge_method", s("S256"))
            .attr("valid_redirect_uris", strs(REDIRECT_URIS)),
    );
    out.push(
        Block::new("resource", ["keycloak_group", "k8s"])
            .comment(&format!(
                "The cluster sees it as `{}{}` ({}).",
                st.groups_prefix,
                req.group,
                st.prefix_note()
            ))
            .attr("realm_id", r("keycloak_realm.k8s.id"))
            .attr("name", s(&req.group)),
    );
    for (i, u) in req.users.iter().enumerate() {
        out.push(
            Block::new(
                "resource",
                ["keycloak_user".to_string(), format!("user_{}", i + 1)],
            )
            .comment("Created verified: --username-claim email refuses email_verified=false.")
            .attr("realm_id", r("keycloak_realm.k8s.id"))
            .attr("username", s(u))
            .attr("email", s(u))
            .attr("email_verified", Value::Bool(true))
            .attr("enabled", Value::Bool(true)),
        );
    }
    if !req.users.is_empty() {
        out.push(
            Block::new("resource", ["keycloak_group_memberships", "k8s"])
                .attr("realm_id", r("keycloak_realm.k8s.id"))
                .attr("group_id", r("keycloak_group.k8s.id"))
                .attr(
                    "members",
                    Value::List(
                        (1..=req.users.len())
                            .map(|i| r(format!("keycloak_user.user_{i}.username")))
                            .collect(),
                    ),
                ),
        );
    }
    out.push(
        Block::new(
            "resource",
            ["keycloak_openid_group_membership_protocol_mapper", "groups"],
        )
        .comment(&format!(
            "The `{}` claim in the ID token, names without the leading `/`.",
            st.groups_claim
        ))
        .attr("realm_id", r("keycloak_realm.k8s.id"))
        .attr("client_id", r("keycloak_openid_client.kubernetes.id"))
        .attr("name", s("groups"))
        .attr("claim_name", s(&st.groups_claim))
        .attr("full_path", Value::Bool(false))
        .attr("add_to_id_token", Value::Bool(true))
        .attr("add_to_access_token", Value::Bool(true))
        .attr("add_to_userinfo", Value::Bool(true)),
    );
    out.push(
        Block::new("resource", ["keycloak_openid_client_scope", "groups"])
            .comment(
                "kubelogin requests the `groups` scope; Keycloak refuses scopes a client lacks.",
            )
            .attr("realm_id", r("keycloak_realm.k8s.id"))
            .attr("name", s("groups"))
            .attr(
                "description",
                s("Requested by kubelogin; the groups claim comes from the client's mapper"),
            )
            .attr("include_in_token_scope", Value::Bool(true)),
    );
    out.push(
        Block::new(
            "resource",
            ["keycloak_openid_client_optional_scopes", "kubernetes"],
        )
        .comment("Authoritative list: Keycloak's defaults plus `groups`.")
        .attr("realm_id", r("keycloak_realm.k8s.id"))
        .attr("client_id", r("keycloak_openid_client.kubernetes.id"))
        .attr(
            "optional_scopes",
            Value::List(vec![
                s("address"),
                s("phone"),
                s("offline_access"),
                s("microprofile-jwt"),
                r("keycloak_openid_client_scope.groups.name"),
            ]),
        ),
    );
    out.push(
        Block::new("output", ["client_id"])
            .attr("description", s("--client-id for k8soidc"))
            .attr("value", r("keycloak_openid_client.kubernetes.client_id")),
    );
    out
}

/// Renders the realm JSON, `main.tf` and `README.md`.
pub fn render(st: &IdpSettings, req: &IdpRequest) -> Result<IdpRendering, PlanError> {
    let issuer = st.issuer(Provider::Keycloak)?;
    let client = st.client(Provider::Keycloak)?;
    let (base, base_path, realm) = split_issuer(issuer)?;
    if req.group.contains('/') {
        return Err(PlanError::invalid(
            "--group",
            &req.group,
            "contains `/`, which Keycloak reads as a group path",
            "give a top-level group name without `/`",
        ));
    }
    let json_name = format!(
        "realm-{}.json",
        realm.replace(
            |c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_',
            "_"
        )
    );
    let json = serde_json::to_string_pretty(&realm_json(st, req, &realm, client))
        .expect("JSON of plain values")
        + "\n";
    let header = vec![
        "Keycloak side of Kubernetes OIDC, generated by `k8soidc idp keycloak`.".to_string(),
        format!("Same objects as {json_name}, plus the `groups` client scope; see README.md."),
        "No secret is written here: credentials come from the environment.".into(),
    ];
    let main = hcl::file(&header, &blocks(st, req, &realm, &base, base_path, client));
    let mut rows = vec![
        Match {
            what: "client id".into(),
            value: client.into(),
            setting: "--client-id (the ID token's `aud`)".into(),
        },
        Match {
            what: "issuer (realm)".into(),
            value: issuer.into(),
            setting: "--issuer-url, byte for byte (`iss` is `<Keycloak URL>/realms/<realm>`; check the frontend URL / hostname setting)".into(),
        },
    ];
    rows.extend(common_matches(st, req));
    let mut notes = match_lines(&rows);
    if st.username_claim == "email" {
        notes.push("users are created with a verified email: with --username-claim email the API server refuses tokens with `email_verified: false` (\"oidc: email not verified\").".into());
    }
    notes.push(format!("the realm JSON cannot add the `groups` client scope without dropping Keycloak's built-in ones; after importing it, create client scope `groups` and add it to client `{client}` as Optional (Terraform does both), or Keycloak refuses kubelogin's request with `invalid_scope`."));
    notes.push("users get no password from k8soidc: set one in the admin console (Users > Credentials) or let them use \"Forgot password\".".into());
    notes.extend(st.warnings.iter().map(|w| format!("warning: {w}")));
    notes.extend(next_steps());
    let create = create_command(st, &shell::quote(issuer), &shell::quote(client));
    let readme = format!(
        "# Keycloak for Kubernetes OIDC\n\n\
Generated by `k8soidc idp keycloak` from the same settings as the cluster. Two ways to apply it:\n\n\
## A. Realm import\n\n\
```sh\n\
kc.sh import --file {json_name}     # or: admin console > Create realm > Resource file\n\
```\n\n\
Then, because an import that declares client scopes loses Keycloak's built-in ones:\n\
Client scopes > Create client scope `groups` (protocol OpenID Connect), then\n\
Clients > `{client}` > Client scopes > Add client scope > `groups` > Optional.\n\
Without it Keycloak answers kubelogin's `groups` scope with `invalid_scope`.\n\n\
## B. Terraform (does all of it)\n\n\
```sh\n\
export KEYCLOAK_USER=admin KEYCLOAK_PASSWORD=...   # or KEYCLOAK_CLIENT_SECRET for a service account\n\
terraform init && terraform apply\n\
```\n\n\
Users have no password yet: set one under Users > Credentials.\n\n\
## Then configure the cluster with the same settings\n\n\
```sh\n\
{create}\n\
```\n\n\
{next}\n\n\
## What must match\n\n\
{table}",
        next = next_steps().join("\n"),
        table = match_table(&rows),
    );
    Ok(IdpRendering {
        provider: Provider::Keycloak,
        files: vec![
            IdpFile {
                path: json_name,
                language: "json",
                content: json,
            },
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
    use crate::testutil::input;

    #[test]
    fn issuer_gives_base_and_realm() {
        assert_eq!(
            split_issuer("https://sso.example.com/realms/k8s").unwrap(),
            ("https://sso.example.com".into(), "", "k8s".into())
        );
        assert_eq!(
            split_issuer("https://sso.example.com/auth/realms/k8s").unwrap(),
            ("https://sso.example.com".into(), "/auth", "k8s".into())
        );
        for bad in [
            "https://sso.example.com",
            "https://sso.example.com/realms/",
            "https://sso.example.com/realms/a/b",
        ] {
            let e = split_issuer(bad).unwrap_err().to_string();
            assert!(e.contains("/realms/<realm>"), "{e}");
        }
        let mut i = input();
        i.issuer_url = Some("https://idp.example.com".into());
        let st = IdpSettings::validate(Provider::Keycloak, &i).unwrap();
        assert!(render(&st, &request()).is_err());
    }

    #[test]
    fn realm_json_parses_and_carries_the_settings() {
        let r = render(&settings(Provider::Keycloak), &request()).unwrap();
        assert_eq!(r.files[0].path, "realm-k8s.json");
        let v: Json = serde_json::from_str(&r.files[0].content).unwrap();
        assert_eq!(v["realm"], "k8s");
        let c = &v["clients"][0];
        assert_eq!(c["clientId"], "kubernetes");
        assert_eq!(c["publicClient"], true);
        assert_eq!(
            c["redirectUris"],
            json!(["http://localhost:8000", "http://localhost:18000"])
        );
        let m = &c["protocolMappers"][0];
        assert_eq!(m["protocolMapper"], "oidc-group-membership-mapper");
        assert_eq!(m["config"]["full.path"], "false");
        assert_eq!(m["config"]["id.token.claim"], "true");
        assert_eq!(m["config"]["claim.name"], "groups");
        assert_eq!(v["users"][0]["emailVerified"], true);
        assert_eq!(v["users"][1]["groups"], json!(["/k8s-admins"]));
        assert_eq!(v["groups"][0]["name"], "k8s-admins");
        // Declaring client scopes would drop Keycloak's built-in ones.
        assert!(v.get("clientScopes").is_none());
        assert!(
            !r.files[0].content.contains("secret") && !r.files[0].content.contains("credentials")
        );
    }

    /// Every resource and attribute name against the keycloak provider's documented schema.
    #[test]
    fn terraform_is_in_the_provider_schema() {
        let mut legacy = input();
        legacy.issuer_url = Some("https://sso.example.com/auth/realms/k8s".into());
        legacy.groups_claim = Some("roles".into());
        let cases = [
            (settings(Provider::Keycloak), request()),
            (
                IdpSettings::validate(Provider::Keycloak, &legacy).unwrap(),
                IdpRequest::validate("ops", &[]).unwrap(),
            ),
        ];
        for (st, req) in &cases {
            let tf = render(st, req).unwrap().files[1].content.clone();
            // https://registry.terraform.io/providers/keycloak/keycloak/latest/docs (provider arguments)
            assert_eq!(
                assert_schema(
                    &tf,
                    "provider",
                    "keycloak",
                    &["url", "client_id"],
                    &["base_path"]
                ),
                1
            );
            // https://registry.terraform.io/providers/keycloak/keycloak/latest/docs/resources/realm
            assert_eq!(
                assert_schema(&tf, "resource", "keycloak_realm", &["realm"], &["enabled"]),
                1
            );
            // https://registry.terraform.io/providers/keycloak/keycloak/latest/docs/resources/openid_client
            assert_eq!(
                assert_schema(
                    &tf,
                    "resource",
                    "keycloak_openid_client",
                    &["realm_id", "client_id", "access_type"],
                    &[
                        "name",
                        "enabled",
                        "standard_flow_enabled",
                        "direct_access_grants_enabled",
                        "pkce_code_challenge_method",
                        "valid_redirect_uris"
                    ]
                ),
                1
            );
            // https://registry.terraform.io/providers/keycloak/keycloak/latest/docs/resources/group
            assert_eq!(
                assert_schema(
                    &tf,
                    "resource",
                    "keycloak_group",
                    &["realm_id", "name"],
                    &[]
                ),
                1
            );
            // https://registry.terraform.io/providers/keycloak/keycloak/latest/docs/resources/user
            assert_eq!(
                assert_schema(
                    &tf,
                    "resource",
                    "keycloak_user",
                    &["realm_id", "username"],
                    &["email", "email_verified", "enabled"]
                ),
                req.users.len()
            );
            // https://registry.terraform.io/providers/keycloak/keycloak/latest/docs/resources/group_memberships
            assert_eq!(
                assert_schema(
                    &tf,
                    "resource",
                    "keycloak_group_memberships",
                    &["realm_id", "group_id", "members"],
                    &[]
                ),
                usize::from(!req.users.is_empty())
            );
            // https://registry.terraform.io/providers/keycloak/keycloak/latest/docs/resources/openid_group_membership_protocol_mapper
            assert_eq!(
                assert_schema(
                    &tf,
                    "resource",
                    "keycloak_openid_group_membership_protocol_mapper",
                    &["realm_id", "name", "claim_name"],
                    &[
                        "client_id",
                        "full_path",
                        "add_to_id_token",
                        "add_to_access_token",
                        "add_to_userinfo"
                    ]
                ),
                1
            );
            // https://registry.terraform.io/providers/keycloak/keycloak/latest/docs/resources/openid_client_scope
            assert_eq!(
                assert_schema(
                    &tf,
                    "resource",
                    "keycloak_openid_client_scope",
                    &["realm_id", "name"],
                    &["description", "include_in_token_scope"]
                ),
                1
            );
            // https://registry.terraform.io/providers/keycloak/keycloak/latest/docs/resources/openid_client_optional_scopes
            assert_eq!(
                assert_schema(
                    &tf,
                    "resource",
                    "keycloak_openid_client_optional_scopes",
                    &["realm_id", "client_id", "optional_scopes"],
                    &[]
                ),
                1
            );
            for (kind, _, _, _) in hcl_blocks(&tf) {
                assert!(
                    ["terraform", "variable", "provider", "resource", "output"]
                        .contains(&kind.as_str()),
                    "{kind}"
                );
            }
            assert_eq!(
                tf.contains("base_path = \"/auth\""),
                st.issuer_url.as_deref().unwrap().contains("/auth/")
            );
            assert!(
                tf.contains(&format!("claim_name          = \"{}\"", st.groups_claim)),
                "{tf}"
            );
            assert!(tf.contains("full_path           = false"), "{tf}");
        }
    }

    #[test]
    fn no_secret_values() {
        let r = render(&settings(Provider::Keycloak), &request()).unwrap();
        for f in &r.files[..2] {
            for line in f.content.lines() {
                let key = line
                    .trim_start()
                    .split([' ', '=', '"', ':'])
                    .find(|w| !w.is_empty());
                for word in ["client_secret", "password", "initial_password", "secret"] {
                    assert_ne!(key, Some(word), "{line} in {}", f.path);
                }
            }
            assert!(!f.content.contains("\"secret\""), "{}", f.path);
        }
    }

    #[test]
    fn group_with_slash_refused() {
        let req = IdpRequest::validate("a/b", &[]).unwrap();
        let e = render(&settings(Provider::Keycloak), &req)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--group `a/b`"), "{e}");
    }
}

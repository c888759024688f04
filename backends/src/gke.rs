//! Google GKE: the provider runs the API server and offers no API-server OIDC flags. Google
//! documents two ways to log in with an external OpenID Connect provider
//! (https://cloud.google.com/kubernetes-engine/docs/how-to/oidc):
//! - **Workforce Identity Federation** (recommended; what k8soidc renders by default): an IAM
//!   workforce pool with an OIDC provider, made with `gcloud iam workforce-pools create` and
//!   `gcloud iam workforce-pools providers create-oidc`. No in-cluster component; users log in
//!   with `gcloud` and `gcloud container clusters get-credentials`, and RBAC subjects are IAM
//!   principal identifiers: `principal://iam.googleapis.com/locations/global/workforcePools/
//!   POOL/subject/SUBJECT` for a user, `principalSet://…/workforcePools/POOL/group/GROUP` for a
//!   group (same page, "Configure user access to the cluster using RBAC"). So usernames and
//!   groups take no `--username-prefix`/`--groups-prefix`: they are refused.
//! - **Identity Service for GKE** (`--identity-service`): "Starting on July 1, 2026, Identity
//!   Service for GKE is deprecated" and unsupported in newer GKE versions (same page, caution
//!   box). For clusters still on it, the `ClientConfig` `default` in `kube-public` gets an
//!   `oidc` authentication method, with a deprecation warning naming that date.
//!
//! Mapping for the workforce provider: `google.subject` from the username claim,
//! `google.groups` from the groups claim (`--attribute-mapping`), required claims as a CEL
//! `--attribute-condition`; the ID token is used (`--web-sso-response-type=id-token`,
//! `--web-sso-assertion-claims-behavior=only-id-token-claims`), so no client secret exists.
//! Google fetches the issuer's keys itself: a private CA (`--ca-file`) cannot be given.

use serde_yaml_ng::{Mapping, Value};

use crate::yamlout as yaml;
use crate::{
    AuthMode, Backend, ClusterRequest, Command, Distribution, OidcSettings, PlanError, Rendering,
};

/// Google's documentation of both ways, and of the deprecation.
pub const DOCS: &str = "https://cloud.google.com/kubernetes-engine/docs/how-to/oidc";
/// The deprecation date Google gives for Identity Service for GKE.
pub const IDENTITY_SERVICE_DEPRECATED: &str = "July 1, 2026";
/// The workforce pool rendered when `--workforce-pool` is not given.
pub const DEFAULT_POOL: &str = "k8soidc-pool";
/// The workforce pool provider's id.
pub const PROVIDER_ID: &str = "k8soidc";

/// The GKE backend.
#[derive(Debug, Clone, Copy)]
pub struct Gke;

/// The IAM principal identifier prefix of a pool's users (`…/subject/`).
pub fn user_prefix(pool: &str) -> String {
    format!("principal://iam.googleapis.com/locations/global/workforcePools/{pool}/subject/")
}

/// The IAM principal-set identifier prefix of a pool's groups (`…/group/`).
pub fn group_prefix(pool: &str) -> String {
    format!("principalSet://iam.googleapis.com/locations/global/workforcePools/{pool}/group/")
}

/// Workforce pool ids: 6 to 63 lowercase letters, digits and `-`, starting with a letter, not
/// ending with `-` (gcloud iam workforce-pools create, `WORKFORCE_POOL`).
pub fn check_pool(pool: &str) -> Result<(), PlanError> {
    let ok = (6..=63).contains(&pool.len())
        && pool.starts_with(|c: char| c.is_ascii_lowercase())
        && !pool.ends_with('-')
        && pool
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(PlanError::invalid(
            "--workforce-pool",
            pool,
            "is not a workforce pool id",
            "use 6 to 63 lowercase letters, digits and `-`, starting with a letter, e.g. `k8soidc-pool`",
        ))
    }
}

fn refuse(field: &'static str, value: impl AsRef<str>, reason: &str, fix: &str) -> PlanError {
    PlanError::unrepresentable(Distribution::Gke, field, value, reason, fix)
}

/// A claim as a CEL expression on the token (`assertion.NAME`); names that are not CEL
/// identifiers are refused, since gcloud's `KEY=VALUE,…` lists cannot quote them safely.
fn assertion(field: &'static str, claim: &str) -> Result<String, PlanError> {
    let ident = claim.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && claim.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ident {
        Ok(format!("assertion.{claim}"))
    } else {
        Err(refuse(
            field,
            claim,
            "a Workforce Identity Federation attribute mapping names claims as CEL identifiers (`assertion.NAME`)",
            "use a claim name of letters, digits and `_`",
        ))
    }
}

/// A CEL string literal.
fn cel_string(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn check_wif(s: &OidcSettings) -> Result<(), PlanError> {
    if s.structured.is_some() {
        return Err(refuse(
            "jwt",
            "(settings file)",
            "GKE runs the API server; Workforce Identity Federation takes one OIDC provider in Google IAM, not the settings file's `jwt`/`anonymous` sections",
            "give one issuer with the single-issuer settings (--issuer-url, --client-id, ...)",
        ));
    }
    if s.auth_mode == AuthMode::Config {
        return Err(refuse(
            "--auth-mode",
            "config",
            "GKE runs the API server; Workforce Identity Federation is configured in Google IAM, not with an AuthenticationConfiguration",
            "leave --auth-mode out",
        ));
    }
    if let Some(ca) = &s.ca {
        return Err(refuse(
            "--ca-file",
            &ca.local_path,
            "Google fetches the issuer's discovery document and keys itself and takes no CA",
            "give the provider a publicly trusted certificate (or upload its keys with `--jwk-json-path`) and leave --ca-file out",
        ));
    }
    for (field, given) in [
        ("--username-prefix", s.username_prefix.as_deref()),
        ("--groups-prefix", s.groups_prefix.as_deref()),
    ] {
        if let Some(p) = given.filter(|p| !p.is_empty() && *p != "-") {
            return Err(refuse(
                field,
                p,
                "with Workforce Identity Federation GKE names users and groups by IAM principal identifiers (principal://…/subject/, principalSet://…/group/), which take no prefix",
                "leave --username-prefix and --groups-prefix out; `k8soidc rbac --workforce-pool POOL` writes the subjects",
            ));
        }
    }
    Ok(())
}

/// `gcloud iam workforce-pools create` and `providers create-oidc` for the settings.
pub fn workforce_commands(
    s: &OidcSettings,
    pool: &str,
    organization: &str,
) -> Result<Vec<Command>, PlanError> {
    check_wif(s)?;
    check_pool(pool)?;
    let mut mapping = format!(
        "google.subject={}",
        assertion("--username-claim", &s.username_claim)?
    );
    if let Some(g) = &s.groups_claim {
        mapping.push_str(&format!(
            ",google.groups={}",
            assertion("--groups-claim", g)?
        ));
    }
    let mut provider = vec![
        "iam".to_string(),
        "workforce-pools".into(),
        "providers".into(),
        "create-oidc".into(),
        PROVIDER_ID.into(),
        format!("--workforce-pool={pool}"),
        "--location=global".into(),
        format!("--issuer-uri={}", s.issuer_url),
        format!("--client-id={}", s.client_id),
        format!("--attribute-mapping={mapping}"),
        "--web-sso-response-type=id-token".into(),
        "--web-sso-assertion-claims-behavior=only-id-token-claims".into(),
    ];
    if !s.required_claims.is_empty() {
        let mut conds = Vec::new();
        for (k, v) in &s.required_claims {
            conds.push(format!(
                "{} == {}",
                assertion("--required-claim", k)?,
                cel_string(v)
            ));
        }
        provider.push(format!("--attribute-condition={}", conds.join(" && ")));
    }
    Ok(vec![
        Command::new(
            "gcloud",
            [
                "iam".to_string(),
                "workforce-pools".into(),
                "create".into(),
                pool.to_string(),
                format!("--organization={organization}"),
                "--location=global".into(),
                "--display-name=k8soidc".into(),
            ],
        ),
        Command::new("gcloud", provider),
    ])
}

/// The `ClientConfig` merge patch for Identity Service for GKE (deprecated).
pub fn client_config_patch(s: &OidcSettings) -> Result<String, PlanError> {
    if s.auth_mode == AuthMode::Config {
        return Err(refuse(
            "--auth-mode",
            "config",
            "Identity Service for GKE takes its settings in a ClientConfig, not an AuthenticationConfiguration",
            "leave --auth-mode out",
        ));
    }
    let mut oidc = Mapping::new();
    oidc.insert("clientID".into(), s.client_id.clone().into());
    oidc.insert("issuerURI".into(), s.issuer_url.clone().into());
    oidc.insert(
        "kubectlRedirectURI".into(),
        "http://localhost:8000/callback".into(),
    );
    oidc.insert("scopes".into(), s.scopes().join(",").into());
    oidc.insert("userClaim".into(), s.username_claim.clone().into());
    oidc.insert("userPrefix".into(), s.effective_username_prefix().into());
    if let Some(g) = &s.groups_claim {
        oidc.insert("groupsClaim".into(), g.clone().into());
        oidc.insert("groupPrefix".into(), s.effective_groups_prefix().into());
    }
    if let Some(ca) = &s.ca {
        use base64::Engine as _;
        oidc.insert(
            "certificateAuthorityData".into(),
            base64::engine::general_purpose::STANDARD
                .encode(ca.pem.as_bytes())
                .into(),
        );
    }
    if !s.required_claims.is_empty() {
        return Err(refuse(
            "--required-claim",
            s.required_claims
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            "Identity Service's ClientConfig has no required-claims field",
            "leave --required-claim out, or use Workforce Identity Federation (the default) with an attribute condition",
        ));
    }
    let mut method = Mapping::new();
    method.insert("name".into(), "oidc".into());
    method.insert("oidc".into(), Value::Mapping(oidc));
    let mut spec = Mapping::new();
    spec.insert(
        "authentication".into(),
        Value::Sequence(vec![Value::Mapping(method)]),
    );
    let mut root = Mapping::new();
    root.insert("spec".into(), Value::Mapping(spec));
    Ok(yaml::to_string(&Value::Mapping(root)).expect("untagged values always serialise"))
}

/// The warning every Identity Service rendering carries.
pub fn deprecation_warning() -> String {
    format!(
        "Identity Service for GKE is deprecated: Google: \"Starting on {IDENTITY_SERVICE_DEPRECATED}, Identity Service for GKE is deprecated\" and unsupported in newer GKE versions; move to Workforce Identity Federation (render without --identity-service) ({DOCS})"
    )
}

impl Backend for Gke {
    fn distribution(&self) -> Distribution {
        Distribution::Gke
    }

    fn render(&self, s: &OidcSettings, req: &ClusterRequest) -> Result<Rendering, PlanError> {
        let p = &req.platform;
        if p.identity_service {
            let patch = client_config_patch(s)?;
            let mut r = Rendering::new(Distribution::Gke, s)?;
            r.via = Some("Identity Service for GKE ClientConfig (deprecated)".into());
            r.warnings = s.warnings.clone();
            r.warnings.push(deprecation_warning());
            r.push(
                "Identity Service for GKE: turn it on, then merge this into ClientConfig `default` (namespace kube-public); it replaces `spec.authentication`",
                None,
                "shell",
                format!(
                    "{}\n{}\n",
                    Command::new(
                        "gcloud",
                        [
                            "container",
                            "clusters",
                            "update",
                            &req.name,
                            "--enable-identity-service"
                        ]
                    )
                    .to_shell(),
                    Command::new(
                        "kubectl",
                        [
                            "patch",
                            "clientconfig",
                            "default",
                            "--namespace",
                            "kube-public",
                            "--type",
                            "merge",
                            "--patch-file",
                            "clientconfig-patch.yaml",
                        ]
                    )
                    .to_shell()
                ),
            );
            r.push(
                "ClientConfig patch",
                Some("clientconfig-patch.yaml".into()),
                "yaml",
                patch,
            );
            return Ok(r);
        }
        let pool = p.workforce_pool.as_deref().unwrap_or(DEFAULT_POOL);
        let org = p.organization.as_deref().unwrap_or("ORGANIZATION_ID");
        let commands = workforce_commands(s, pool, org)?;
        let mut r = Rendering::new(Distribution::Gke, s)?;
        r.via =
            Some("Workforce Identity Federation (Google IAM; GKE's API server is Google's)".into());
        r.username_prefix = user_prefix(pool);
        r.username_prefix_reason =
            "GKE names Workforce Identity Federation users by IAM principal identifier".into();
        r.groups_prefix = group_prefix(pool);
        r.sample = format!(
            "a token with {}=\"jane@example.com\"{} becomes user \"{}jane@example.com\"{}",
            s.username_claim,
            if s.groups_claim.is_some() {
                ", groups=[\"k8s-admins\"]"
            } else {
                ""
            },
            user_prefix(pool),
            if s.groups_claim.is_some() {
                format!(
                    " in groups \"{}k8s-admins\", \"system:authenticated\"",
                    group_prefix(pool)
                )
            } else {
                String::new()
            }
        );
        r.warnings = s.warnings.clone();
        if p.organization.is_none() {
            r.warnings.push("no --organization given: `ORGANIZATION_ID` below is a placeholder for your Google Cloud organization id".into());
        }
        r.warnings.push(format!(
            "users log in with `gcloud auth login --login-config=FILE` and `gcloud container clusters get-credentials {}`, not kubelogin; Identity Service for GKE is deprecated since {IDENTITY_SERVICE_DEPRECATED} ({DOCS})",
            req.name
        ));
        let shell: String = commands.iter().map(|c| c.to_shell() + "\n").collect();
        r.push(
            "Workforce Identity Federation: the pool and its OIDC provider (organization-wide; no cluster change)",
            None,
            "shell",
            shell,
        );
        r.push(
            "RBAC subjects (`k8soidc rbac --workforce-pool POOL` writes the bindings)",
            None,
            "text",
            format!(
                "user:  {}USER (the `{}` claim)\ngroup: {}GROUP\n",
                user_prefix(pool),
                s.username_claim,
                group_prefix(pool)
            ),
        );
        Ok(r)
    }
}

/// The provider as `gcloud iam workforce-pools providers list --format=json` shows it: what
/// k8soidc compares with what it would create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderState {
    /// `oidc.issuerUri`.
    pub issuer_uri: String,
    /// `oidc.clientId`.
    pub client_id: String,
    /// `attributeMapping`, as `KEY=VALUE` joined by `,` in key order.
    pub attribute_mapping: String,
    /// `attributeCondition` ("" when none).
    pub attribute_condition: String,
}

fn bad_gcloud(what: &str, why: impl std::fmt::Display) -> PlanError {
    PlanError::patch(
        format!("the output of `gcloud iam {what}`"),
        format!("it is not what the IAM API returns ({why})"),
        "check gcloud (`gcloud version`) and run the command by hand",
    )
}

fn json_list(output: &str, what: &str) -> Result<Vec<serde_json::Value>, PlanError> {
    let v: serde_json::Value =
        serde_json::from_str(output).map_err(|e| bad_gcloud(what, format!("not JSON: {e}")))?;
    v.as_array()
        .cloned()
        .ok_or_else(|| bad_gcloud(what, "not a list"))
}

fn last_segment(v: &serde_json::Value) -> Option<&str> {
    v.get("name")
        .and_then(serde_json::Value::as_str)
        .and_then(|n| n.rsplit('/').next())
}

/// Whether `workforce-pools list` shows pool `pool` (deleted pools do not count).
pub fn parse_pools(output: &str, pool: &str) -> Result<bool, PlanError> {
    Ok(json_list(output, "workforce-pools list")?.iter().any(|p| {
        last_segment(p) == Some(pool)
            && p.get("state").and_then(serde_json::Value::as_str) != Some("DELETED")
    }))
}

/// Provider [`PROVIDER_ID`] as `workforce-pools providers list` shows it.
pub fn parse_providers(output: &str) -> Result<Option<ProviderState>, PlanError> {
    let what = "workforce-pools providers list";
    for p in json_list(output, what)? {
        if last_segment(&p) != Some(PROVIDER_ID)
            || p.get("state").and_then(serde_json::Value::as_str) == Some("DELETED")
        {
            continue;
        }
        let text = |ptr: &str| {
            p.pointer(ptr)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let mapping = p
            .get("attributeMapping")
            .and_then(serde_json::Value::as_object)
            .ok_or_else(|| bad_gcloud(what, "no `attributeMapping`"))?;
        let mut pairs: Vec<String> = mapping
            .iter()
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
            .collect();
        pairs.sort();
        return Ok(Some(ProviderState {
            issuer_uri: text("/oidc/issuerUri"),
            client_id: text("/oidc/clientId"),
            attribute_mapping: pairs.join(","),
            attribute_condition: text("/attributeCondition"),
        }));
    }
    Ok(None)
}

fn gcloud(args: Vec<String>) -> Command {
    Command::new("gcloud", args)
}

/// `gcloud iam workforce-pools list` of the organization.
pub fn list_pools(organization: &str) -> Command {
    gcloud(vec![
        "iam".into(),
        "workforce-pools".into(),
        "list".into(),
        format!("--organization={organization}"),
        "--location=global".into(),
        "--format=json".into(),
    ])
}

/// `gcloud iam workforce-pools providers list` of the pool.
pub fn list_providers(pool: &str) -> Command {
    gcloud(vec![
        "iam".into(),
        "workforce-pools".into(),
        "providers".into(),
        "list".into(),
        format!("--workforce-pool={pool}"),
        "--location=global".into(),
        "--format=json".into(),
    ])
}

/// The plan that brings the pool's provider to the settings (`None`: delete the provider),
/// from what the lists showed. `Ok(None)`: nothing to do.
pub fn patch_plan(
    s: Option<&OidcSettings>,
    pool: &str,
    organization: &str,
    pool_exists: bool,
    current: Option<&ProviderState>,
) -> Result<Option<crate::Plan>, PlanError> {
    use crate::Step;
    check_pool(pool)?;
    let Some(s) = s else {
        if current.is_none() {
            return Ok(None);
        }
        return Ok(Some(crate::Plan {
            title: format!("remove OIDC provider `{PROVIDER_ID}` from workforce pool `{pool}`"),
            notes: vec![format!("the workforce pool `{pool}` is kept (other providers may use it); `gcloud iam workforce-pools delete {pool} --location=global` deletes it")],
            steps: vec![Step::run(
                gcloud(vec![
                    "iam".into(),
                    "workforce-pools".into(),
                    "providers".into(),
                    "delete".into(),
                    PROVIDER_ID.into(),
                    format!("--workforce-pool={pool}"),
                    "--location=global".into(),
                    "--quiet".into(),
                ]),
                format!("delete OIDC provider `{PROVIDER_ID}` of workforce pool `{pool}` (its users can no longer log in)"),
            )],
        }));
    };
    let mut commands = workforce_commands(s, pool, organization)?;
    let create_provider = commands.pop().expect("two commands");
    let create_pool = commands.pop().expect("two commands");
    let wanted = wanted_state(&create_provider);
    let mut steps = Vec::new();
    if !pool_exists {
        steps.push(Step::run(
            create_pool,
            format!("create workforce pool `{pool}` in organization {organization}"),
        ));
    }
    match current {
        Some(c) if *c == wanted => {}
        Some(_) => {
            let mut update = create_provider;
            update.args[3] = "update-oidc".into();
            steps.push(Step::run(
                update,
                format!("update OIDC provider `{PROVIDER_ID}` of workforce pool `{pool}`"),
            ));
        }
        None => steps.push(Step::run(
            create_provider,
            format!("create OIDC provider `{PROVIDER_ID}` in workforce pool `{pool}`"),
        )),
    }
    if steps.is_empty() {
        return Ok(None);
    }
    Ok(Some(crate::Plan {
        title: format!("set OIDC for GKE through Workforce Identity Federation (pool `{pool}`)"),
        steps,
        notes: vec![format!(
            "bind RBAC to {}GROUP subjects (`k8soidc rbac --workforce-pool {pool}`)",
            group_prefix(pool)
        )],
    }))
}

/// What the provider looks like once `create-oidc` (as built) has run.
fn wanted_state(create: &Command) -> ProviderState {
    let flag = |name: &str| {
        create
            .args
            .iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")))
            .unwrap_or_default()
            .to_string()
    };
    let mut pairs: Vec<&str> = Vec::new();
    let mapping = flag("attribute-mapping");
    pairs.extend(mapping.split(','));
    pairs.sort();
    ProviderState {
        issuer_uri: flag("issuer-uri"),
        client_id: flag("client-id"),
        attribute_mapping: pairs.join(","),
        attribute_condition: flag("attribute-condition"),
    }
}

/// `patch --file` on an Identity Service for GKE `ClientConfig` (`kubectl get clientconfig
/// default -n kube-public -o yaml`): sets (or, with `s` = `None`, removes) the authentication
/// method named `oidc` in `spec.authentication`, keeping the others. The document is written
/// again through the YAML emitter (as `kubectl get` prints it, comments are not kept).
pub fn merge_client_config(text: &str, s: Option<&OidcSettings>) -> Result<String, PlanError> {
    let refuse = |reason: String| {
        PlanError::patch(
            "the ClientConfig",
            reason,
            "give `kubectl get clientconfig default -n kube-public -o yaml` (authentication.gke.io)",
        )
    };
    let mut doc: Value = serde_yaml_ng::from_str(text)
        .map_err(|e| refuse(format!("it is not one YAML document ({e})")))?;
    let api = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if doc.get("kind").and_then(Value::as_str) != Some("ClientConfig")
        || !api.starts_with("authentication.gke.io/")
    {
        return Err(refuse(
            "it is not an authentication.gke.io ClientConfig".into(),
        ));
    }
    let method = match s {
        Some(s) => {
            let patch: Value =
                serde_yaml_ng::from_str(&client_config_patch(s)?).expect("rendered YAML parses");
            Some(patch["spec"]["authentication"][0].clone())
        }
        None => None,
    };
    let Some(root) = doc.as_mapping_mut() else {
        return Err(refuse("it is not a mapping".into()));
    };
    if root.get("spec").is_none_or(Value::is_null) {
        root.insert("spec".into(), Value::Mapping(Mapping::new()));
    }
    let Some(spec) = root.get_mut("spec").and_then(Value::as_mapping_mut) else {
        return Err(refuse("`spec` is not a mapping".into()));
    };
    let mut list = match spec.get("authentication") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Sequence(l)) => l.clone(),
        Some(_) => return Err(refuse("`spec.authentication` is not a list".into())),
    };
    let pos = list
        .iter()
        .position(|m| m.get("name").and_then(Value::as_str) == Some("oidc"));
    match (method, pos) {
        (Some(m), Some(i)) => list[i] = m,
        (Some(m), None) => list.push(m),
        (None, Some(i)) => {
            list.remove(i);
        }
        (None, None) => return Ok(text.to_string()),
    }
    spec.insert("authentication".into(), Value::Sequence(list));
    let out = yaml::to_string(&doc).expect("untagged values always serialise");
    let same = serde_yaml_ng::from_str::<Value>(text).ok() == serde_yaml_ng::from_str(&out).ok();
    Ok(if same { text.to_string() } else { out })
}

/// A cluster on Identity Service for GKE, for `patch --distro gke --identity-service`: where
/// gcloud finds it, and how kubectl reaches it. Facts (Google's GKE page [`DOCS`], "Identity
/// Service for GKE"): `gcloud container clusters update CLUSTER --enable-identity-service`
/// turns it on (`--location` is the cluster's zone or region, gcloud container clusters
/// reference), and it then keeps its settings in the ClientConfig `default` of namespace
/// `kube-public` (`kubectl get clientconfig default -n kube-public -o yaml`), edited in place.
#[derive(Debug, Clone, Default)]
pub struct IdentityServiceRef {
    /// The cluster's name.
    pub cluster: String,
    /// Its zone or region.
    pub location: String,
    /// `--kubeconfig`/`--context` for kubectl.
    pub kubectl_args: Vec<String>,
}

impl IdentityServiceRef {
    fn kubectl(&self, args: &[&str]) -> Command {
        let mut a = self.kubectl_args.clone();
        a.extend(args.iter().map(|s| s.to_string()));
        Command::new("kubectl", a)
    }

    /// `kubectl get clientconfig default -n kube-public -o yaml --ignore-not-found` (empty
    /// output: Identity Service is off).
    pub fn get_client_config(&self) -> Command {
        self.kubectl(&[
            "get",
            "clientconfig",
            "default",
            "-n",
            "kube-public",
            "-o",
            "yaml",
            "--ignore-not-found",
        ])
    }
}

/// The plan that brings the cluster's ClientConfig to the settings (`None`: take the `oidc`
/// method out), from the ClientConfig read (`None`: absent, Identity Service off). When it is
/// off, the plan turns it on, waits for the ClientConfig and merge-patches the `oidc` method
/// in; else it writes the ClientConfig patched by [`merge_client_config`] (the `patch --file`
/// patcher; shown as a diff) to `staging_dir` and `kubectl replace`s it (refused by the API
/// server if the ClientConfig changed since it was read). `Ok(None)`: nothing to do.
pub fn identity_service_plan(
    s: Option<&OidcSettings>,
    r: &IdentityServiceRef,
    current: Option<&str>,
    staging_dir: &str,
) -> Result<Option<crate::Plan>, PlanError> {
    use crate::{Step, Target, Until};
    if let Some(s) = s {
        client_config_patch(s)?;
    }
    let mut steps = Vec::new();
    let file = format!("{staging_dir}/clientconfig.yaml");
    match (current, s) {
        (None, None) => return Ok(None),
        (None, Some(s)) => {
            steps.push(Step::run(
                Command::new(
                    "gcloud",
                    [
                        "container".to_string(),
                        "clusters".into(),
                        "update".into(),
                        r.cluster.clone(),
                        "--enable-identity-service".into(),
                        format!("--location={}", r.location),
                    ],
                ),
                format!("turn on Identity Service for GKE on cluster `{}` (deprecated; it creates ClientConfig `default` in kube-public)", r.cluster),
            ));
            let mut read = r.get_client_config();
            let n = read.args.len();
            read.args[n - 2] = "name".into();
            steps.push(Step::Await {
                on: Target::Local,
                read,
                until: Until::Exists {
                    name: "ClientConfig `default` in kube-public".into(),
                },
                interval_secs: 10,
                timeout_secs: 600,
                why: "wait for Identity Service to create its ClientConfig".into(),
            });
            steps.push(Step::WriteFile {
                on: Target::Local,
                path: file.clone(),
                before: None,
                after: client_config_patch(s)?,
                mode: 0o600,
                why: "the merge patch with the `oidc` authentication method".into(),
            });
            steps.push(Step::run(
                r.kubectl(&[
                    "patch",
                    "clientconfig",
                    "default",
                    "-n",
                    "kube-public",
                    "--type",
                    "merge",
                    "--patch-file",
                    &file,
                ]),
                "set the `oidc` authentication method of the new ClientConfig",
            ));
        }
        (Some(text), s) => {
            let after = merge_client_config(text, s)?;
            if after == text {
                return Ok(None);
            }
            steps.push(Step::WriteFile {
                on: Target::Local,
                path: file.clone(),
                before: Some(text.to_string()),
                after,
                mode: 0o600,
                why: format!(
                    "ClientConfig `default` (kube-public) as read, with the `oidc` authentication method {}; other methods kept",
                    if s.is_some() { "set" } else { "taken out" }
                ),
            });
            steps.push(Step::run(
                r.kubectl(&["replace", "-f", &file]),
                "replace it (the API server refuses it if the ClientConfig changed since it was read)",
            ));
        }
    }
    Ok(Some(crate::Plan {
        title: format!(
            "{} OIDC on GKE cluster `{}` ({}) through Identity Service for GKE (deprecated)",
            if s.is_some() { "set" } else { "remove" },
            r.cluster,
            r.location
        ),
        steps,
        notes: vec![deprecation_warning()],
    }))
}

/// What `k8soidc check --distro gke` adds: Google fetches the workforce provider's discovery
/// document and keys from its own network, so the issuer should be public (else upload the
/// keys to the provider with `--jwk-json-path`).
pub fn preflight(s: &OidcSettings) -> crate::preflight::Check {
    use crate::preflight::Check;
    let host = crate::eks::issuer_host(&s.issuer_url);
    match crate::eks::public_host(host) {
        Err(why) => Check::warn(
            "gke-public-issuer",
            format!("{why}: Google fetches the issuer's discovery document and keys from its network"),
            "serve the provider at a public https URL, or upload its keys with `gcloud iam workforce-pools providers create-oidc --jwk-json-path`",
        ),
        Ok(()) => Check::pass(
            "gke-public-issuer",
            format!("`{host}` is a public name; Google must reach it from the internet (checked from here only)"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::*;

    fn wif() -> OidcSettings {
        with(|i| {
            i.username_prefix = None;
            i.groups_prefix = None;
            i.reserved_names_policy_off = true;
        })
    }

    #[test]
    fn what_gcloud_lists_is_read_and_bad_output_refused() {
        let providers = r#"[{"name": "locations/global/workforcePools/p/providers/k8soidc", "state": "ACTIVE",
            "oidc": {"issuerUri": "https://idp.example.com", "clientId": "kubernetes"},
            "attributeMapping": {"google.subject": "assertion.email", "google.groups": "assertion.groups"}}]"#;
        let current = parse_providers(providers).unwrap().unwrap();
        assert_eq!(
            patch_plan(Some(&wif()), "corp-pool", "1", true, Some(&current)).unwrap(),
            None
        );
        let deleted = providers.replace("ACTIVE", "DELETED");
        assert_eq!(parse_providers(&deleted).unwrap(), None);
        assert!(parse_pools(
            r#"[{"name": "locations/global/workforcePools/corp-pool", "state": "ACTIVE"}]"#,
            "corp-pool"
        )
        .unwrap());
        for bad in ["", "{}", "<html>"] {
            let e = parse_providers(bad).unwrap_err().to_string();
            assert!(
                e.starts_with(
                    "cannot patch the output of `gcloud iam workforce-pools providers list`"
                ),
                "{e}"
            );
            assert!(parse_pools(bad, "p").is_err());
        }
        let other = with(|i| {
            i.username_prefix = None;
            i.groups_prefix = None;
            i.reserved_names_policy_off = true;
            i.required_claim = vec!["hd=example.com".into()];
        });
        let plan = patch_plan(Some(&other), "corp-pool", "1", true, Some(&current))
            .unwrap()
            .unwrap();
        assert_eq!(plan.steps.len(), 1);
        assert!(
            plan.to_string().contains("+ gcloud iam workforce-pools providers update-oidc k8soidc --workforce-pool=corp-pool"),
            "{plan}"
        );
    }

    #[test]
    fn claims_that_are_not_cel_identifiers_are_refused() {
        let s = with(|i| {
            i.username_prefix = None;
            i.groups_prefix = None;
            i.reserved_names_policy_off = true;
            i.groups_claim = Some("cognito:groups".into());
        });
        let e = workforce_commands(&s, "corp-pool", "1")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("gke cannot carry --groups-claim `cognito:groups`"),
            "{e}"
        );
        let quoted = with(|i| {
            i.username_prefix = None;
            i.groups_prefix = None;
            i.reserved_names_policy_off = true;
            i.required_claim = vec!["hd=it's".into()];
        });
        let cmds = workforce_commands(&quoted, "corp-pool", "1").unwrap();
        assert!(cmds[1]
            .args
            .contains(&"--attribute-condition=assertion.hd == 'it\\'s'".to_string()));
    }
}

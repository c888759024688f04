//! The command line as typed: raw values only. Nothing here reads a file or runs a program;
//! `config.rs` merges these with the environment and the config file and validates them.

use std::ffi::OsStr;

use clap::builder::{PossibleValue, StringValueParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Configure Kubernetes API-server OpenID Connect on any distribution, safely and reversibly.
#[derive(Debug, Parser)]
#[command(name = "k8soidc", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

// Parsed once at start and moved into its command: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print the OIDC settings in a distribution's own syntax (no cluster needed).
    Render(RenderArgs),
    /// Create a new cluster with OIDC configured.
    Create(CreateArgs),
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (troff), or write one page per command into DIR.
    Man {
        /// Directory for k8soidc.1 and k8soidc-COMMAND.1 (e.g. ~/.local/share/man/man1).
        #[arg(value_name = "DIR")]
        dir: Option<String>,
    },
    /// A ClusterRoleBinding or RoleBinding for OIDC groups/users, prefixes applied.
    Rbac(RbacArgs),
    /// Add or update a kubeconfig user and context that log in with kubelogin.
    Kubeconfig(KubeconfigArgs),
    /// Preflight: is the provider reachable and configured as the API server needs?
    Check(CheckArgs),
    /// Verify an ID token as kube-apiserver would and show the user, groups and RBAC matches.
    Explain(ExplainArgs),
    /// Render the identity provider's side (Okta/Keycloak Terraform, Keycloak realm, dex client).
    Idp(IdpArgs),
    /// Patch the API server of running control-plane nodes over SSH, transactionally; or a
    /// config file (`--file`); or a Cluster API KubeadmControlPlane (`--capi`).
    Patch(PatchArgs),
    /// Restore a backup taken by `patch` on a node.
    Rollback(RollbackArgs),
    /// List the backups `patch` took on a node.
    Backups(BackupsArgs),
}

/// The OIDC settings. Each flag can also come from `K8SOIDC_<NAME>` or the config file.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct OidcArgs {
    /// YAML file with the settings (keys as the flag names); default ./k8soidc.yaml when present.
    #[arg(long, env = "K8SOIDC_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<String>,
    /// The provider's issuer URL, exactly as in its tokens' `iss`.
    #[arg(long, env = "K8SOIDC_ISSUER_URL", value_name = "URL")]
    pub(crate) issuer_url: Option<String>,
    /// The OIDC client id (the tokens' audience).
    #[arg(long, env = "K8SOIDC_CLIENT_ID", value_name = "ID")]
    pub(crate) client_id: Option<String>,
    /// Claim used as the username [API server default: sub].
    #[arg(long, env = "K8SOIDC_USERNAME_CLAIM", value_name = "CLAIM")]
    pub(crate) username_claim: Option<String>,
    /// Prefix for usernames; `-` for none. Unset with a claim other than `email` means `<issuer>#`.
    #[arg(
        long,
        env = "K8SOIDC_USERNAME_PREFIX",
        value_name = "PREFIX",
        allow_hyphen_values = true
    )]
    pub(crate) username_prefix: Option<String>,
    /// Claim holding the user's groups (string or array).
    #[arg(long, env = "K8SOIDC_GROUPS_CLAIM", value_name = "CLAIM")]
    pub(crate) groups_claim: Option<String>,
    /// Prefix for group names, e.g. `oidc:`.
    #[arg(
        long,
        env = "K8SOIDC_GROUPS_PREFIX",
        value_name = "PREFIX",
        allow_hyphen_values = true
    )]
    pub(crate) groups_prefix: Option<String>,
    /// PEM file with the CA of the provider's HTTPS certificate (when it is private).
    #[arg(long, env = "K8SOIDC_CA_FILE", value_name = "FILE")]
    pub(crate) ca_file: Option<String>,
    /// Comma-separated allowed signing algorithms [API server default: RS256].
    #[arg(long, env = "K8SOIDC_SIGNING_ALGS", value_name = "ALGS")]
    pub(crate) signing_algs: Option<String>,
    /// A claim the token must carry, KEY=VALUE (repeatable; split at the first `=`).
    #[arg(long, env = "K8SOIDC_REQUIRED_CLAIM", value_name = "KEY=VALUE")]
    pub(crate) required_claim: Vec<String>,
    /// `flags` (--oidc-*), `config` (AuthenticationConfiguration, 1.30+), or `auto`.
    #[arg(long, env = "K8SOIDC_AUTH_MODE", value_name = "MODE", value_parser = Names(|| vec!["flags", "config", "auto"]))]
    pub(crate) auth_mode: Option<String>,
    /// The cluster's Kubernetes version, e.g. 1.31 (chooses config apiVersions).
    #[arg(long, env = "K8SOIDC_KUBERNETES_VERSION", value_name = "VERSION")]
    pub(crate) kubernetes_version: Option<String>,
    /// Accept a username or groups prefix that lets a token claim a `system:` name (refused by
    /// default: k8soidc's policy, as group `system:masters` is cluster-admin).
    #[arg(long, env = "K8SOIDC_ALLOW_SYSTEM_NAMES", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub(crate) allow_system_names: Option<bool>,
    /// The ids of the fields above that clap took from `K8SOIDC_*` rather than from a flag
    /// (filled in by `main` from clap's `ValueSource`).
    #[arg(skip)]
    pub(crate) env_ids: Vec<String>,
}

impl OidcArgs {
    /// Did the field with this id (e.g. `issuer_url`) come from its environment variable?
    pub(crate) fn is_from_env(&self, id: &str) -> bool {
        self.env_ids.iter().any(|i| i == id)
    }
}

impl Command {
    /// The OIDC settings of the subcommands that take them.
    pub(crate) fn oidc_mut(&mut self) -> Option<&mut OidcArgs> {
        match self {
            Command::Render(a) => Some(&mut a.oidc),
            Command::Create(a) => Some(&mut a.oidc),
            Command::Rbac(a) => Some(&mut a.oidc),
            Command::Kubeconfig(a) => Some(&mut a.oidc),
            Command::Check(a) => Some(&mut a.oidc),
            Command::Explain(a) => Some(&mut a.oidc),
            Command::Idp(a) => Some(&mut a.oidc),
            Command::Patch(a) => Some(&mut a.oidc),
            Command::Completions { .. }
            | Command::Man { .. }
            | Command::Rollback(_)
            | Command::Backups(_) => None,
        }
    }
}

/// `-o`/`--output` of every command that prints data: `text` (for humans: a table where the
/// data is a table, the YAML of an object for `rbac`), or `yaml`/`json` with camelCase field
/// names (a stable format, README "Output formats").
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub(crate) enum Output {
    #[default]
    #[value(alias = "table")]
    Text,
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct RenderArgs {
    /// Distribution.
    #[arg(long, value_name = "DISTRO", value_parser = Names(distributions))]
    pub(crate) distro: String,
    /// Cluster name used in rendered commands and files [default: oidc; a placeholder
    /// oidc.k8s.local for kops].
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// Output format: text, yaml or json.
    #[arg(short, long, value_enum, value_name = "FORMAT", default_value_t)]
    pub(crate) output: Output,
    #[command(flatten)]
    pub(crate) oidc: OidcArgs,
    #[command(flatten)]
    pub(crate) platform: PlatformArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// Distribution: k3d, kind, kops, charmed, eks, k0s (k0sctl), talos (talosctl gen config),
    /// vcluster or gardener (a Shoot from --shoot-file); with --ssh: kubeadm, microk8s, k3s or
    /// rke2.
    #[arg(long, value_name = "DISTRO", value_parser = Names(distributions))]
    pub(crate) distro: String,
    /// With --distro gardener: the Shoot manifest (core.gardener.cloud/v1beta1) to create, as
    /// you would `kubectl create -f` it; its name and provider settings are yours, k8soidc adds
    /// the OIDC settings.
    #[arg(long, value_name = "FILE")]
    pub(crate) shoot_file: Option<String>,
    /// With --distro gardener: the Shoot's project namespace (`garden-<project>`) when the
    /// manifest has no metadata.namespace.
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub(crate) namespace: Option<String>,
    /// With --distro gardener: kubeconfig of the garden cluster.
    #[arg(long, value_name = "FILE")]
    pub(crate) kubeconfig: Option<String>,
    /// With --distro gardener: context in that kubeconfig.
    #[arg(long, value_name = "CONTEXT")]
    pub(crate) context: Option<String>,
    /// Create the control plane on these hosts over SSH (kubeadm, microk8s, k3s, rke2).
    #[command(flatten)]
    pub(crate) ssh: SshArgs,
    /// Name of the new cluster.
    #[arg(long, default_value = "oidc")]
    pub(crate) name: String,
    #[command(flatten)]
    pub(crate) dry_run: DryRun,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
    /// Show the output of every command as it runs.
    #[arg(long, short)]
    pub(crate) verbose: bool,
    #[command(flatten)]
    pub(crate) oidc: OidcArgs,
    /// Do not run the preflight check (`k8soidc check`) first.
    #[arg(long)]
    pub(crate) skip_check: bool,
    #[command(flatten)]
    pub(crate) platform: PlatformArgs,
    /// Arguments passed through to the distribution's tool (after `--`).
    #[arg(last = true, value_name = "ARGS")]
    pub(crate) extra: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RbacArgs {
    /// Group as the provider sends it (the groups prefix is added); repeatable.
    #[arg(long, value_name = "NAME")]
    pub(crate) group: Vec<String>,
    /// User as the username claim carries it (the username prefix is added); repeatable.
    #[arg(long, value_name = "NAME")]
    pub(crate) user: Vec<String>,
    /// ClusterRole to bind [default: cluster-admin].
    #[arg(long, value_name = "ROLE")]
    pub(crate) clusterrole: Option<String>,
    /// Role to bind in --namespace (makes a RoleBinding).
    #[arg(long, value_name = "ROLE")]
    pub(crate) role: Option<String>,
    /// Namespace of a RoleBinding.
    #[arg(long, short = 'n', value_name = "NS")]
    pub(crate) namespace: Option<String>,
    /// Binding name [default: oidc-<subject>-<role>].
    #[arg(long, value_name = "BINDING")]
    pub(crate) name: Option<String>,
    /// GKE with Workforce Identity Federation: write subjects as this pool's IAM principal
    /// identifiers (principal://…, principalSet://…) instead of prefixed names.
    #[arg(long, value_name = "POOL")]
    pub(crate) workforce_pool: Option<String>,
    /// Apply it with `kubectl apply -f -`.
    #[arg(long)]
    pub(crate) apply: bool,
    /// kubeconfig for kubectl.
    #[arg(long, value_name = "FILE")]
    pub(crate) kubeconfig: Option<String>,
    /// kubeconfig context for kubectl.
    #[arg(long, value_name = "CONTEXT")]
    pub(crate) context: Option<String>,
    #[command(flatten)]
    pub(crate) dry_run: DryRun,
    /// Output format: text (the binding's YAML), yaml or json.
    #[arg(short, long, value_enum, value_name = "FORMAT", default_value_t)]
    pub(crate) output: Output,
    #[command(flatten)]
    pub(crate) oidc: OidcArgs,
}

#[derive(Debug, Args)]
pub(crate) struct KubeconfigArgs {
    /// Cluster entry the new context uses (created when --server is given and it is missing).
    #[arg(long, value_name = "NAME")]
    pub(crate) cluster: String,
    /// API server URL, for a new cluster entry.
    #[arg(long, value_name = "URL")]
    pub(crate) server: Option<String>,
    /// The cluster's CA file, for a new cluster entry (not the IdP CA: that is --ca-file).
    #[arg(long, value_name = "FILE")]
    pub(crate) certificate_authority: Option<String>,
    /// kubeconfig to edit [default: first path of $KUBECONFIG, else ~/.kube/config].
    #[arg(long, value_name = "FILE")]
    pub(crate) kubeconfig: Option<String>,
    /// The cluster's distribution, where its login differs (eks: note on the cluster entry;
    /// gke: Workforce Identity Federation logs in through gcloud, not kubelogin).
    #[arg(long, value_name = "DISTRO", value_parser = Names(distributions))]
    pub(crate) distro: Option<String>,
    /// With --distro gke: the Workforce Identity Federation pool (for the login commands).
    #[arg(long, value_name = "POOL")]
    pub(crate) workforce_pool: Option<String>,
    #[command(flatten)]
    pub(crate) dry_run: DryRun,
    #[command(flatten)]
    pub(crate) oidc: OidcArgs,
}

#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Also fetch discovery from these control-plane nodes over SSH, as `patch --ssh` reaches
    /// them.
    #[command(flatten)]
    pub(crate) ssh: SshArgs,
    /// Output format: text (a table), yaml or json.
    #[arg(short, long, value_enum, value_name = "FORMAT", default_value_t)]
    pub(crate) output: Output,
    /// Also check what this distribution needs of the issuer (eks: public URL and certificate;
    /// gke: a public URL).
    #[arg(long, value_name = "DISTRO", value_parser = Names(distributions))]
    pub(crate) distro: Option<String>,
    #[command(flatten)]
    pub(crate) oidc: OidcArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ExplainArgs {
    /// File holding the ID token (bare, or the ExecCredential JSON `kubectl oidc-login
    /// get-token` prints), or `-` for stdin. It is never printed.
    #[arg(long, value_name = "FILE")]
    pub(crate) token: String,
    /// Verify against this JWKS file instead of fetching the provider's (offline).
    #[arg(long, value_name = "FILE")]
    pub(crate) jwks: Option<String>,
    /// RBAC bindings (YAML/JSON: one, a list, a `kind: List`, or multi-document) to match.
    #[arg(long, value_name = "FILE")]
    pub(crate) rbac: Option<String>,
    /// Read the bindings from the cluster with kubectl, using this kubeconfig.
    #[arg(long, value_name = "FILE")]
    pub(crate) kubeconfig: Option<String>,
    /// kubeconfig context for kubectl (reads the bindings from the cluster).
    #[arg(long, value_name = "CONTEXT")]
    pub(crate) context: Option<String>,
    /// Output format: text, yaml or json.
    #[arg(short, long, value_enum, value_name = "FORMAT", default_value_t)]
    pub(crate) output: Output,
    #[command(flatten)]
    pub(crate) oidc: OidcArgs,
}

#[derive(Debug, Args)]
pub(crate) struct IdpArgs {
    /// Identity provider.
    #[arg(value_name = "PROVIDER", value_parser = Names(|| backends::idp::Provider::ALL.map(backends::idp::Provider::name).to_vec()))]
    pub(crate) provider: String,
    /// Write the files into DIR (created if needed) instead of printing them.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<String>,
    #[command(flatten)]
    pub(crate) dry_run: DryRun,
    /// Overwrite files in --out that differ from what is rendered.
    #[arg(long)]
    pub(crate) force: bool,
    /// The group RBAC binds (created at the IdP).
    #[arg(long, default_value = backends::idp::DEFAULT_GROUP, value_name = "NAME")]
    pub(crate) group: String,
    /// A user (login / email) to put in the group; repeatable. Okta and Keycloak only.
    #[arg(long, value_name = "EMAIL")]
    pub(crate) user: Vec<String>,
    #[command(flatten)]
    pub(crate) oidc: OidcArgs,
}

/// Where a managed cluster lives (EKS), for render, create and patch.
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct PlatformArgs {
    /// EKS: the AWS region (`aws --region`, eksctl `metadata.region`) [default: the AWS CLI's].
    #[arg(long, value_name = "REGION")]
    pub(crate) region: Option<String>,
    /// EKS: the name of the OIDC identity provider config [default: k8soidc].
    #[arg(long, value_name = "NAME")]
    pub(crate) idp_config_name: Option<String>,
    /// GKE: the Workforce Identity Federation pool id [default: k8soidc-pool].
    #[arg(long, value_name = "POOL")]
    pub(crate) workforce_pool: Option<String>,
    /// GKE: the Google Cloud organization id that owns the workforce pool.
    #[arg(long, value_name = "ID")]
    pub(crate) organization: Option<String>,
    /// GKE: for a cluster still on Identity Service for GKE (deprecated since July 1, 2026).
    #[arg(long)]
    pub(crate) identity_service: bool,
    /// GKE with --identity-service: the cluster's zone or region (`gcloud --location`).
    #[arg(long, value_name = "LOCATION")]
    pub(crate) location: Option<String>,
    /// AKS: the cluster's resource group.
    #[arg(long, value_name = "GROUP")]
    pub(crate) resource_group: Option<String>,
    /// AKS: use AKS structured authentication (JWT authenticators) although it is a PREVIEW
    /// feature (opt-in, not meant for production).
    #[arg(long)]
    pub(crate) aks_preview: bool,
}

/// How to reach hosts over SSH (shared by check, patch, rollback, backups and create --ssh).
#[derive(Debug, Args, Clone, Default)]
pub(crate) struct SshArgs {
    /// A control-plane node, `[USER@]HOST[:PORT]` (repeatable; done one at a time, in order).
    #[arg(long = "ssh", value_name = "[USER@]HOST[:PORT]")]
    pub(crate) hosts: Vec<String>,
    /// Accept and remember the host key of a host never seen before (default: strict checking).
    #[arg(long)]
    pub(crate) accept_new_host_key: bool,
    /// ssh client config file to use instead of ~/.ssh/config (passed as `ssh -F`).
    #[arg(long, value_name = "FILE")]
    pub(crate) ssh_config: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct PatchArgs {
    #[command(flatten)]
    pub(crate) ssh: SshArgs,
    /// Act on the machine k8soidc runs on (through the same transaction, without SSH).
    #[arg(long, conflicts_with = "hosts")]
    pub(crate) local: bool,
    /// Patch this config file instead of a node: prints the result (see --in-place).
    #[arg(long, value_name = "PATH", conflicts_with_all = ["hosts", "local", "capi"])]
    pub(crate) file: Option<String>,
    /// With --file: rewrite the file atomically (keeping its mode) instead of printing it.
    #[arg(long, requires = "file")]
    pub(crate) in_place: bool,
    /// With --file: what the file is [default: detected from its content].
    #[arg(long, value_enum, value_name = "KIND", requires = "file")]
    pub(crate) file_kind: Option<FileKind>,
    /// A Cluster API KubeadmControlPlane to patch on the management cluster (with kubectl).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["hosts", "local"])]
    pub(crate) capi: Option<String>,
    /// A Talos control-plane node to patch with `talosctl patch machineconfig --mode=no-reboot`
    /// (repeatable; one at a time, `talosctl health` after each; TALOSCONFIG as talosctl reads it).
    #[arg(long, value_name = "NODE", conflicts_with_all = ["hosts", "local", "file", "capi", "inventory"])]
    pub(crate) talos: Vec<String>,
    /// A Gardener Shoot to patch in the garden cluster (with kubectl; its project namespace
    /// with --namespace).
    #[arg(long, value_name = "NAME", conflicts_with_all = ["hosts", "local", "file", "capi", "inventory", "talos"])]
    pub(crate) shoot: Option<String>,
    /// A running vCluster to patch: its values (`helm get values`) patched and applied with
    /// `vcluster create NAME --upgrade -f`, the ConfigMap with its files with kubectl.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["hosts", "local", "file", "capi", "inventory", "talos", "shoot"])]
    pub(crate) vcluster: Option<String>,
    /// With --capi, --shoot or --vcluster: its namespace [--capi: default the kubeconfig
    /// context's; --shoot: required, `garden-<project>`; --vcluster: its host namespace,
    /// default `vcluster-NAME`].
    #[arg(long, short = 'n', value_name = "NAMESPACE")]
    pub(crate) namespace: Option<String>,
    /// With --capi, --shoot or --vcluster: kubeconfig of the management / garden / host cluster
    /// (with --distro gke --identity-service: of the GKE cluster).
    #[arg(long, value_name = "FILE")]
    pub(crate) kubeconfig: Option<String>,
    /// With --capi, --shoot or --vcluster: context in that kubeconfig.
    #[arg(long, value_name = "CONTEXT")]
    pub(crate) context: Option<String>,
    /// With --capi or --distro eks: seconds between status checks [default: 10; 30 for eks].
    #[arg(long, value_name = "SECONDS", hide = true)]
    pub(crate) poll_interval: Option<u64>,
    /// A running kOps cluster to patch with kops (get, replace, update, rolling-update of the
    /// control plane).
    #[arg(long, value_name = "CLUSTER", conflicts_with_all = ["hosts", "local", "file", "capi", "juju", "k3d"])]
    pub(crate) kops: Option<String>,
    /// With --kops: the state store (s3://..., gs://..., file://...) [default: $KOPS_STATE_STORE].
    #[arg(long, value_name = "URL")]
    pub(crate) state: Option<String>,
    /// A running Charmed Kubernetes to patch with juju (api-extra-args merged, files on every
    /// control-plane unit).
    #[arg(long, conflicts_with_all = ["hosts", "local", "file", "capi", "k3d"])]
    pub(crate) juju: bool,
    /// With --juju: the model [default: juju's current model].
    #[arg(long, short = 'm', value_name = "MODEL")]
    pub(crate) model: Option<String>,
    /// With --juju: the control-plane application [default: kubernetes-control-plane].
    #[arg(long, value_name = "APP")]
    pub(crate) application: Option<String>,
    /// A running k3d cluster to patch through docker (a k3s drop-in in each server container,
    /// restarted one at a time).
    #[arg(long, value_name = "CLUSTER", conflicts_with_all = ["hosts", "local", "file", "capi"])]
    pub(crate) k3d: Option<String>,
    /// Distribution; `auto` detects it on each host.
    ///
    /// `eks` and `aks` patch the managed cluster --name through the provider's API; `gke` sets
    /// up Workforce Identity Federation with gcloud (with --identity-service: the ClientConfig
    /// of cluster --name at --location, Identity Service for GKE).
    #[arg(long, value_name = "DISTRO", default_value = "auto", value_parser = Names(|| vec!["auto", "kubeadm", "microk8s", "k3s", "rke2", "k0s", "eks", "gke", "aks"]))]
    pub(crate) distro: String,
    /// With --distro eks or aks (or gke --identity-service): the cluster's name.
    #[arg(long, value_name = "CLUSTER", conflicts_with_all = ["hosts", "local", "capi", "file", "inventory"])]
    pub(crate) name: Option<String>,
    #[command(flatten)]
    pub(crate) platform: PlatformArgs,
    #[command(flatten)]
    pub(crate) dry_run: DryRun,
    /// How long to wait for the API server to become healthy before rolling back (e.g. 90s,
    /// 5m); with --capi, for the rollout; with --juju, for the units to settle; with --k3d, for
    /// each server [default: 5m; 30m with --capi and --juju].
    #[arg(long, value_name = "DURATION")]
    pub(crate) timeout: Option<String>,
    /// Do not run the preflight check (`k8soidc check`) against the issuer first.
    #[arg(long)]
    pub(crate) skip_check: bool,
    /// Take OIDC out instead of putting it in.
    #[arg(long)]
    pub(crate) remove: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
    /// YAML file listing clusters (name, distro, hosts, settings) to patch, N at a time; see
    /// README "Many clusters over SSH: `patch --inventory`".
    #[arg(long, value_name = "FILE", conflicts_with_all = ["hosts", "local", "file", "capi", "distro", "kops", "juju", "k3d"])]
    pub(crate) inventory: Option<String>,
    /// With --inventory: how many clusters at a time (1 to 64) [default: 4]; hosts of one
    /// cluster are always done one at a time.
    #[arg(long, value_name = "N", requires = "inventory", value_parser = clap::value_parser!(u8).range(1..=64))]
    pub(crate) parallel: Option<u8>,
    /// The report format (--inventory, --ssh, --local): text (a table on stderr), yaml or json
    /// (on stdout; one object per host: result, backup, error) [default: text].
    #[arg(short, long, value_enum, value_name = "FORMAT", conflicts_with_all = ["file", "capi"])]
    pub(crate) output: Option<Output>,
    /// Print debug lines (SSH round trips per host) on stderr.
    #[arg(long, short)]
    pub(crate) verbose: bool,
    #[command(flatten)]
    pub(crate) oidc: OidcArgs,
}

/// `--dry-run[=MODE]`, the one definition every command that changes something flattens in.
/// The flag only decides whether the command's plan is printed or executed.
#[derive(Debug, Args, Clone, Copy, Default)]
pub(crate) struct DryRun {
    /// Print the plan (every command, file diff and node step; with -v the exact scripts),
    /// change nothing. `--dry-run=client` is the same (kubectl's spelling); `--dry-run=server`
    /// only with `patch --capi`, `patch --shoot` and `create --distro gardener`.
    #[arg(
        id = "dry_run",
        long = "dry-run",
        value_name = "MODE",
        num_args = 0..=1,
        require_equals = true,
        default_value = "none",
        default_missing_value = "client",
        hide_default_value = true,
        hide_possible_values = true,
        action = clap::ArgAction::Set,
        value_parser = dry_run_mode
    )]
    pub(crate) on: bool,
    /// `--dry-run=server` was given (filled in by `main`; only `patch --capi` has a
    /// server-side check).
    #[arg(skip)]
    pub(crate) server: bool,
}

/// `--dry-run[=MODE]` as kubectl spells it: `client` (the bare flag) and `server` mean a dry
/// run (`main` tells them apart), `none` (the default) none.
fn dry_run_mode(text: &str) -> Result<bool, String> {
    match text {
        "client" | "server" => Ok(true),
        "none" => Ok(false),
        _ => Err("use `--dry-run` (the same as `--dry-run=client`), or `--dry-run=server` with `patch --capi`, `patch --shoot` or `create --distro gardener`".into()),
    }
}

#[derive(Debug, Args)]
pub(crate) struct RollbackArgs {
    #[command(flatten)]
    pub(crate) ssh: SshArgs,
    /// Act on the machine k8soidc runs on (without SSH).
    #[arg(long, conflicts_with = "hosts")]
    pub(crate) local: bool,
    /// The backup to restore (see `k8soidc backups`); default: the newest.
    #[arg(long, value_name = "BACKUP_ID")]
    pub(crate) to: Option<String>,
    /// How long to wait for the API server to become healthy after restoring.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub(crate) timeout: String,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub(crate) yes: bool,
    #[command(flatten)]
    pub(crate) dry_run: DryRun,
    /// Show the exact scripts sent to the node.
    #[arg(long, short = 'v')]
    pub(crate) verbose: bool,
}

#[derive(Debug, Args)]
pub(crate) struct BackupsArgs {
    #[command(flatten)]
    pub(crate) ssh: SshArgs,
    /// List the backups of the machine k8soidc runs on (without SSH).
    #[arg(long, conflicts_with = "hosts")]
    pub(crate) local: bool,
    /// Output format: text (a list per host), yaml or json.
    #[arg(short, long, value_enum, value_name = "FORMAT", default_value_t)]
    pub(crate) output: Output,
}

/// Every distribution name, as `--distro` takes it.
fn distributions() -> Vec<&'static str> {
    backends::Distribution::ALL
        .map(backends::Distribution::name)
        .to_vec()
}

/// A value whose names clap knows, so `--help` and shell completions offer them, but which is
/// kept as typed: it is checked later with the settings, whose one-line errors name the flag,
/// the bad value and the fix (clap's own "invalid value" error would not).
#[derive(Clone)]
pub(crate) struct Names(pub(crate) fn() -> Vec<&'static str>);

impl TypedValueParser for Names {
    type Value = String;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<String, clap::Error> {
        StringValueParser::new().parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new((self.0)().into_iter().map(PossibleValue::new)))
    }
}

/// The kinds of file `patch --file` edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FileKind {
    /// kube-apiserver static Pod manifest.
    #[value(name = "manifest")]
    Manifest,
    /// k3s config.yaml (or a config.yaml.d drop-in).
    #[value(name = "k3s-config")]
    K3sConfig,
    /// RKE2 config.yaml.
    #[value(name = "rke2-config")]
    Rke2Config,
    /// MicroK8s kube-apiserver args file.
    #[value(name = "microk8s-args")]
    Microk8sArgs,
    /// kubeadm ClusterConfiguration (`kubeadm init --config`).
    #[value(name = "kubeadm-config")]
    KubeadmConfig,
    /// kOps Cluster spec.
    #[value(name = "kops-cluster")]
    KopsCluster,
    /// k3d config file.
    #[value(name = "k3d-config")]
    K3dConfig,
    /// Cluster API KubeadmControlPlane manifest.
    #[value(name = "capi-kcp")]
    CapiKcp,
    /// kubespray inventory group_vars.
    #[value(name = "kubespray-group-vars")]
    KubesprayGroupVars,
    /// eksctl ClusterConfig (`identityProviders`).
    #[value(name = "eksctl-config")]
    EksctlConfig,
    /// Identity Service for GKE ClientConfig (deprecated).
    #[value(name = "gke-clientconfig")]
    GkeClientConfig,
    /// AKS JWT authenticator configuration (`az aks jwtauthenticator --config-file`).
    #[value(name = "aks-jwt-authenticator")]
    AksJwtAuthenticator,
    /// k0s ClusterConfig (`/etc/k0s/k0s.yaml`).
    #[value(name = "k0s-config")]
    K0sConfig,
    /// k0sctl Cluster file (`k0sctl.yaml`).
    #[value(name = "k0sctl")]
    K0sctl,
    /// Talos machine config, or a talhelper/Omni-style patch of one.
    #[value(name = "talos-config")]
    TalosConfig,
    /// vCluster values (`vcluster.yaml`).
    #[value(name = "vcluster-values")]
    VclusterValues,
    /// Gardener Shoot manifest (`spec.kubernetes.kubeAPIServer`).
    #[value(name = "gardener-shoot")]
    GardenerShoot,
}

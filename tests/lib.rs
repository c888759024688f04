//! Black-box tests of the `k8soidc` binary: one integration target (ripgrep/just style).
//! Each test runs the real binary in a temporary HOME with fake distribution tools on PATH.

mod aks;
mod ansible;
mod bad_input;
mod capi;
mod check;
mod create;
mod dry_run;
mod eks;
mod explain;
mod gardener;
mod gke;
mod hardening;
mod idp;
mod input;
mod inventory;
mod kex;
mod kubeconfig;
mod messages;
mod migrate;
mod node;
mod patch_file;
mod plan_is_what_runs;
mod provider;
mod rbac;
mod render;
mod rough_edges;
mod seed_patch;
mod settings;
mod ssh;
mod sshd;
mod structured;
mod talos;
mod test;
mod tools;
mod vcluster;

//! Black-box tests of the `k8soidc` binary: one integration target (ripgrep/just style).
//! Each test runs the real binary in a temporary HOME with fake distribution tools on PATH.

mod bad_input;
mod capi;
mod check;
mod create;
mod dry_run;
mod explain;
mod hardening;
mod idp;
mod input;
mod inventory;
mod kubeconfig;
mod messages;
mod node;
mod patch_file;
mod plan_is_what_runs;
mod provider;
mod rbac;
mod render;
mod rough_edges;
mod settings;
mod ssh;
mod sshd;
mod test;
mod tools;

//! Black-box tests of the `k8soidc` binary: one integration target (ripgrep/just style).
//! Each test runs the real binary in a temporary HOME with fake distribution tools on PATH.

mod bad_input;
mod create;
mod node;
mod render;
mod ssh;
mod test;

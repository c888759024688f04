//! The one test seam: the only place production code reads the test-only environment
//! variables, once, at start (`main` calls [`TestSeam::init`]). Nothing else in `src/` may
//! read a `K8SOIDC_TEST_*` variable or [`K3S_INSTALLER`]; the integration tests set them to
//! provoke failures and to keep installs off the network.
//!
//! The variables (all test-only; unset in normal use, where they change nothing):
//! - `K8SOIDC_TEST_DISCONNECT_AFTER=<stage>[@<host label>]`: after that stage of a host's
//!   transaction (`lock`, `read`, `stage`, `commit`), drop the SSH connection the hard way
//!   (`ssh -O exit` on the control socket), as a network failure would; `@LABEL` limits it to
//!   one host of an inventory run.
//! - `K8SOIDC_K3S_INSTALLER=<command>`: the command `create --distro k3s --ssh` pipes the k3s
//!   install script into, instead of `curl -sfL https://get.k3s.io | sh -` (the tests'
//!   `k3s-install` fake; also an air-gapped installer).
//! - `K8SOIDC_RKE2_INSTALLER=<command>`: the same for `create --distro rke2 --ssh`, instead of
//!   `curl -sfL https://get.rke2.io | sh -` (the tests' `rke2-install` fake).

use std::sync::OnceLock;

/// `K8SOIDC_TEST_DISCONNECT_AFTER`.
pub(crate) const DISCONNECT_AFTER: &str = "K8SOIDC_TEST_DISCONNECT_AFTER";
/// `K8SOIDC_K3S_INSTALLER`.
pub(crate) const K3S_INSTALLER: &str = "K8SOIDC_K3S_INSTALLER";
/// `K8SOIDC_RKE2_INSTALLER`.
pub(crate) const RKE2_INSTALLER: &str = "K8SOIDC_RKE2_INSTALLER";

/// The test-only settings, read from the environment once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct TestSeam {
    /// `(stage, Some(host label) | None)` from [`DISCONNECT_AFTER`].
    disconnect_after: Option<(String, Option<String>)>,
    /// [`K3S_INSTALLER`].
    k3s_installer: Option<String>,
    /// [`RKE2_INSTALLER`].
    rke2_installer: Option<String>,
}

static SEAM: OnceLock<TestSeam> = OnceLock::new();

impl TestSeam {
    /// Reads the variables; called once by `main` before anything runs.
    pub(crate) fn init() {
        let _ = SEAM.set(Self::from_env());
    }

    fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        TestSeam {
            disconnect_after: var(DISCONNECT_AFTER).map(|v| match v.split_once('@') {
                Some((stage, host)) => (stage.to_string(), Some(host.to_string())),
                None => (v, None),
            }),
            k3s_installer: var(K3S_INSTALLER),
            rke2_installer: var(RKE2_INSTALLER),
        }
    }

    /// The seam `main` read (empty when it did not run, as in unit tests).
    pub(crate) fn get() -> &'static TestSeam {
        SEAM.get_or_init(TestSeam::default)
    }

    /// Whether the test asked for the connection to `label` to drop after `stage`.
    pub(crate) fn disconnect_after(&self, stage: &str, label: &str) -> bool {
        match &self.disconnect_after {
            Some((s, Some(host))) => s == stage && host == label,
            Some((s, None)) => s == stage,
            None => false,
        }
    }

    /// The k3s installer command (default: the upstream one).
    pub(crate) fn k3s_installer(&self) -> &str {
        self.k3s_installer
            .as_deref()
            .unwrap_or(backends::create_node::K3S_INSTALL)
    }

    /// The installer command `create --ssh` runs for `d` (k3s or RKE2; default: upstream's).
    pub(crate) fn installer(&self, d: backends::Distribution) -> &str {
        match d {
            backends::Distribution::Rke2 => self
                .rke2_installer
                .as_deref()
                .unwrap_or(backends::create_node::RKE2_INSTALL),
            _ => self.k3s_installer(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disconnect_matches_stage_and_optional_host() {
        let seam = TestSeam {
            disconnect_after: Some(("commit".into(), Some("h1".into()))),
            k3s_installer: None,
            rke2_installer: None,
        };
        assert!(seam.disconnect_after("commit", "h1"));
        assert!(!seam.disconnect_after("commit", "h2"));
        assert!(!seam.disconnect_after("stage", "h1"));
        let every = TestSeam {
            disconnect_after: Some(("stage".into(), None)),
            k3s_installer: None,
            rke2_installer: None,
        };
        assert!(every.disconnect_after("stage", "any"));
        assert!(!TestSeam::default().disconnect_after("stage", "any"));
        assert_eq!(
            TestSeam::default().k3s_installer(),
            backends::create_node::K3S_INSTALL
        );
        assert_eq!(
            TestSeam::default().installer(backends::Distribution::Rke2),
            backends::create_node::RKE2_INSTALL
        );
    }
}

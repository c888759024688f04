//! Charmed Kubernetes backend (to be written).

use crate::{Backend, ClusterRequest, Distribution, OidcSettings, PlanError, Rendering};

/// The charmed backend.
#[derive(Debug, Clone, Copy)]
pub struct Charmed;

impl Backend for Charmed {
    fn distribution(&self) -> Distribution {
        Distribution::Charmed
    }

    fn render(&self, s: &OidcSettings, _req: &ClusterRequest) -> Result<Rendering, PlanError> {
        Rendering::new(self.distribution(), s)
    }
}

/// Merges `key=value` pairs into a space-separated `api-extra-args` value.
pub fn merge_extra_args(
    current: &str,
    set: &[(String, String)],
    remove_prefixes: &[String],
) -> Result<String, PlanError> {
    let _ = (set, remove_prefixes);
    Ok(current.to_string())
}

//! kOps backend (to be written).

use crate::{Backend, ClusterRequest, Distribution, OidcSettings, PlanError, Rendering};

/// The kops backend.
#[derive(Debug, Clone, Copy)]
pub struct Kops;

impl Backend for Kops {
    fn distribution(&self) -> Distribution {
        Distribution::Kops
    }

    fn render(&self, s: &OidcSettings, _req: &ClusterRequest) -> Result<Rendering, PlanError> {
        Rendering::new(self.distribution(), s)
    }
}

/// Merges the OIDC fields into a kops Cluster spec (YAML text from `kops get cluster -o yaml`).
pub fn merge_cluster_spec(current: &str, s: &OidcSettings) -> Result<String, PlanError> {
    let _ = s;
    Ok(current.to_string())
}

//! k3s and RKE2 backend (to be written).

use crate::{Backend, ClusterRequest, Distribution, OidcSettings, PlanError, Rendering};

/// The k3s/RKE2 backend; both read `kube-apiserver-arg` lists from a config.yaml.
#[derive(Debug, Clone, Copy)]
pub struct K3s {
    /// `K3s` or `Rke2`.
    pub distribution: Distribution,
}

impl Backend for K3s {
    fn distribution(&self) -> Distribution {
        self.distribution
    }

    fn render(&self, s: &OidcSettings, _req: &ClusterRequest) -> Result<Rendering, PlanError> {
        Rendering::new(self.distribution, s)
    }
}

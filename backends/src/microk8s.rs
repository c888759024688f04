//! MicroK8s backend (to be written).

use crate::{Backend, ClusterRequest, Distribution, OidcSettings, PlanError, Rendering};

/// The microk8s backend.
#[derive(Debug, Clone, Copy)]
pub struct Microk8s;

impl Backend for Microk8s {
    fn distribution(&self) -> Distribution {
        Distribution::Microk8s
    }

    fn render(&self, s: &OidcSettings, _req: &ClusterRequest) -> Result<Rendering, PlanError> {
        Rendering::new(self.distribution(), s)
    }
}

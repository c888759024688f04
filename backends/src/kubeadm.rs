//! kubeadm backend (to be written).

use crate::{Backend, ClusterRequest, Distribution, OidcSettings, PlanError, Rendering};

/// The kubeadm backend.
#[derive(Debug, Clone, Copy)]
pub struct Kubeadm;

impl Backend for Kubeadm {
    fn distribution(&self) -> Distribution {
        Distribution::Kubeadm
    }

    fn render(&self, s: &OidcSettings, _req: &ClusterRequest) -> Result<Rendering, PlanError> {
        Rendering::new(self.distribution(), s)
    }
}

//! kubespray backend (being written).

use crate::{Backend, ClusterRequest, Distribution, OidcSettings, PlanError, Rendering};

/// The kubespray backend.
#[derive(Debug, Clone, Copy)]
pub struct Kubespray;

impl Backend for Kubespray {
    fn distribution(&self) -> Distribution {
        Distribution::Kubespray
    }

    fn render(&self, s: &OidcSettings, _req: &ClusterRequest) -> Result<Rendering, PlanError> {
        Rendering::new(self.distribution(), s)
    }
}

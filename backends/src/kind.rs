//! kind backend (to be written).

use crate::{Backend, ClusterRequest, Distribution, OidcSettings, PlanError, Rendering};

/// The kind backend.
#[derive(Debug, Clone, Copy)]
pub struct Kind;

impl Backend for Kind {
    fn distribution(&self) -> Distribution {
        Distribution::Kind
    }

    fn render(&self, s: &OidcSettings, _req: &ClusterRequest) -> Result<Rendering, PlanError> {
        Rendering::new(self.distribution(), s)
    }
}

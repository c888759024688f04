//! Kubernetes versions as the user gives them (`1.30`, `v1.31.2`, `1.29.4+k3s1`).

use std::fmt;

use crate::PlanError;

/// A Kubernetes minor version; patch levels do not change what we render.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct KubeVersion {
    /// Always 1 today.
    pub major: u32,
    /// The minor version, e.g. 30.
    pub minor: u32,
}

impl KubeVersion {
    /// Builds a version.
    pub const fn new(major: u32, minor: u32) -> Self {
        KubeVersion { major, minor }
    }

    /// Parses `1.30`, `v1.30.2`, `1.30.2+k3s1`, `v1.31.0-rc.1`.
    pub fn parse(text: &str) -> Result<Self, PlanError> {
        let bad = || {
            PlanError::invalid(
                "--kubernetes-version",
                text,
                "not a Kubernetes version",
                "give it as MAJOR.MINOR[.PATCH], e.g. `1.31` or `v1.31.2`",
            )
        };
        let trimmed = text.trim();
        let core = trimmed.strip_prefix('v').unwrap_or(trimmed);
        let core = core.split(['+', '-']).next().unwrap_or_default();
        let mut parts = core.split('.');
        let major: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        let minor: u32 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
        if let Some(patch) = parts.next() {
            patch.parse::<u32>().map_err(|_| bad())?;
        }
        if parts.next().is_some() || major != 1 || minor > 99 {
            return Err(bad());
        }
        Ok(KubeVersion { major, minor })
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        for (text, minor) in [
            ("1.30", 30),
            ("v1.31.2", 31),
            ("1.29.4+k3s1", 29),
            ("v1.34.0-rc.1", 34),
        ] {
            assert_eq!(
                KubeVersion::parse(text).unwrap(),
                KubeVersion::new(1, minor),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_garbage() {
        for text in ["", "latest", "2.0", "1", "1.x", "1.30.1.2", "v1.30.a"] {
            assert!(KubeVersion::parse(text).is_err(), "{text}");
        }
    }
}

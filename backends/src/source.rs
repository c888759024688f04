//! Where a setting's value came from, so that an error about the value can say so
//! (`from --issuer-url`, `from K8SOIDC_ISSUER_URL`, `from k8soidc.yaml:3`). The binary merges
//! the sources and records one [`Source`] per given setting in
//! [`SettingsInput::sources`](crate::SettingsInput::sources); this crate only names them.

use std::fmt::Write as _;

/// The origin of one setting's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The setting's own command-line flag.
    Flag,
    /// The setting's `K8SOIDC_*` environment variable.
    Env,
    /// A key in a YAML file: the settings file (`--config`) or an inventory.
    File {
        /// The file's path, as given.
        path: String,
        /// The 1-based line of the key.
        line: usize,
        /// The key's path in the document, e.g. `issuer-url` or
        /// `clusters[1].settings.issuer-url`.
        key: String,
    },
}

impl Source {
    /// What an error names for the setting whose flag is `flag` (e.g. `--issuer-url`):
    /// the flag, its environment variable, or `FILE:LINE`.
    pub fn name(&self, flag: &str) -> String {
        match self {
            Source::Flag => flag.to_string(),
            Source::Env => env_var(flag),
            Source::File { path, line, .. } => format!("{path}:{line}"),
        }
    }
}

/// The environment variable of a flag: `--issuer-url` → `K8SOIDC_ISSUER_URL`.
pub fn env_var(flag: &str) -> String {
    let mut v = String::from("K8SOIDC_");
    for c in flag.trim_start_matches('-').chars() {
        let _ = write!(
            v,
            "{}",
            if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        );
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(Source::Flag.name("--issuer-url"), "--issuer-url");
        assert_eq!(Source::Env.name("--issuer-url"), "K8SOIDC_ISSUER_URL");
        let file = Source::File {
            path: "k8soidc.yaml".into(),
            line: 3,
            key: "issuer-url".into(),
        };
        assert_eq!(file.name("--issuer-url"), "k8soidc.yaml:3");
    }
}

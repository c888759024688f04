//! Errors of the pure layer. Every message is one line, lowercase, names the bad value
//! in backticks and ends with the fix.

use std::collections::BTreeMap;

use crate::{Distribution, Source};

/// Why a setting, a rendering or a patch was refused. Nothing has been run when one is returned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A setting breaks one of kube-apiserver's rules (or one of ours that protects them).
    #[error("invalid {field} `{value}`{}: {problem}; {fix}", from_note(field, from.as_deref()))]
    InvalidSetting {
        /// The flag that carries the value, e.g. `--issuer-url`.
        field: &'static str,
        /// The offending value, shown escaped.
        value: String,
        /// What is wrong with it.
        problem: String,
        /// What to do instead.
        fix: String,
        /// Where the value came from, when known (shown as `(from K8SOIDC_ISSUER_URL)`).
        from: Option<Box<Source>>,
    },
    /// A field of the structured settings (`jwt`, `anonymous`) breaks one of kube-apiserver's
    /// rules; `path` is the upstream field path (`jwt[1].claimMappings.username.prefix`).
    #[error("invalid {path}{}{}: {problem}; {fix}", value.as_deref().map(|v| format!(" `{v}`")).unwrap_or_default(), from_note(path, from.as_deref()))]
    InvalidField {
        /// The field path, as kube-apiserver names it.
        path: String,
        /// The offending value, shown escaped (None when absent).
        value: Option<String>,
        /// What is wrong, in kube-apiserver's words (`Required value: ...`).
        problem: String,
        /// What to do instead.
        fix: String,
        /// Where the value came from (`k8soidc.yaml:12`), when known.
        from: Option<Box<Source>>,
    },
    /// A required setting is absent.
    #[error("missing {field}: {fix}")]
    MissingSetting {
        /// The flag that is missing.
        field: &'static str,
        /// How to give it.
        fix: String,
    },
    /// A value that is valid for Kubernetes but cannot be written in this distribution's syntax.
    #[error("{distribution} cannot carry {field} `{value}`: {reason}; {fix}")]
    Unrepresentable {
        /// The distribution whose syntax is the obstacle.
        distribution: Distribution,
        /// The setting.
        field: &'static str,
        /// The value.
        value: String,
        /// Why it cannot be carried.
        reason: String,
        /// What to do instead.
        fix: String,
    },
    /// The request makes no sense for this distribution (e.g. `create` where it has no create).
    #[error("{distribution}: {message}")]
    Unsupported {
        /// The distribution.
        distribution: Distribution,
        /// What is not supported and what to do instead.
        message: String,
    },
    /// A file could not be patched safely; it is left unchanged.
    #[error("cannot patch {what}: {reason}; {fix}")]
    Patch {
        /// The file or object being patched.
        what: String,
        /// Why it was refused.
        reason: String,
        /// What to do instead.
        fix: String,
    },
}

impl PlanError {
    /// Shorthand for [`PlanError::InvalidSetting`].
    pub fn invalid(
        field: &'static str,
        value: impl AsRef<str>,
        problem: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        PlanError::InvalidSetting {
            field,
            value: escape(value.as_ref()),
            problem: problem.into(),
            fix: fix.into(),
            from: None,
        }
    }

    /// Shorthand for [`PlanError::InvalidField`].
    pub fn field(path: String, value: Option<&str>, problem: &str, fix: &str) -> Self {
        PlanError::InvalidField {
            path,
            value: value.map(escape),
            problem: problem.to_string(),
            fix: fix.to_string(),
            from: None,
        }
    }

    /// Names where an invalid setting's value came from, when `sources` knows it (for a
    /// field path, its own or its nearest recorded parent's).
    pub fn with_source(self, sources: &BTreeMap<String, Source>) -> Self {
        match self {
            PlanError::InvalidField {
                path,
                value,
                problem,
                fix,
                from: None,
            } => {
                let mut at = path.as_str();
                let from = loop {
                    if let Some(s) = sources.get(at) {
                        break Some(Box::new(s.clone()));
                    }
                    match at.rfind(['.', '[']) {
                        Some(i) => at = &at[..i],
                        None => break None,
                    }
                };
                PlanError::InvalidField {
                    path,
                    value,
                    problem,
                    fix,
                    from,
                }
            }
            PlanError::InvalidSetting {
                field,
                value,
                problem,
                fix,
                from: None,
            } => PlanError::InvalidSetting {
                field,
                value,
                problem,
                fix,
                from: sources.get(field).cloned().map(Box::new),
            },
            other => other,
        }
    }

    /// The same error without naming a source (for a caller that names it another way).
    pub fn without_source(self) -> Self {
        match self {
            PlanError::InvalidSetting {
                field,
                value,
                problem,
                fix,
                ..
            } => PlanError::InvalidSetting {
                field,
                value,
                problem,
                fix,
                from: None,
            },
            other => other,
        }
    }

    /// Shorthand for [`PlanError::Unrepresentable`].
    pub fn unrepresentable(
        distribution: Distribution,
        field: &'static str,
        value: impl AsRef<str>,
        reason: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        PlanError::Unrepresentable {
            distribution,
            field,
            value: escape(value.as_ref()),
            reason: reason.into(),
            fix: fix.into(),
        }
    }

    /// Shorthand for [`PlanError::Patch`].
    pub fn patch(
        what: impl Into<String>,
        reason: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        PlanError::Patch {
            what: what.into(),
            reason: reason.into(),
            fix: fix.into(),
        }
    }
}

/// ` (from SOURCE)` after an invalid value, or nothing when its source is not known.
fn from_note(field: &str, from: Option<&Source>) -> String {
    from.map(|s| format!(" (from {})", s.name(field)))
        .unwrap_or_default()
}

/// Shows control characters visibly so an error message stays on one line.
pub fn escape(value: &str) -> String {
    value
        .chars()
        .flat_map(char::escape_debug)
        .collect::<String>()
        .replace("\\\"", "\"")
        .replace("\\'", "'")
}

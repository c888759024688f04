//! A change to a running cluster made with the cluster's own tool on this machine (`kops`,
//! `juju`, `docker`): `patch --kops`, `patch --juju`, `patch --k3d`. Each distribution module
//! builds a [`LivePatch`] from what the binary read (the live spec, the current option, the
//! files in each server container): the [`Plan`] that runs, the change it makes (a diff), and
//! the steps that put back what was read when a step fails after the cluster was changed.
//! The dry run is its `Display`; the executor runs `plan` and, on a failure at step `i`,
//! [`LivePatch::restore_after`]`(i)`: nothing else.

use std::fmt;

use serde::Serialize;

use crate::{Plan, Step};

/// A restore step and the first step of the plan after whose failure it is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Guarded {
    /// Index (0-based) into [`LivePatch::plan`]: a failure at this step or a later one runs it.
    pub from: usize,
    /// The step.
    pub step: Step,
}

/// A plan for a running cluster and how to undo it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LivePatch {
    /// The steps, in order.
    pub plan: Plan,
    /// What changes, as a unified diff of the text that is replaced (shown in the dry run).
    pub change: String,
    /// What puts back the state that was read, in order; see [`Guarded::from`].
    pub restore: Vec<Guarded>,
}

impl LivePatch {
    /// The steps to run after step `failed` (0-based) of [`Self::plan`] failed; empty when the
    /// cluster was not changed yet.
    pub fn restore_after(&self, failed: usize) -> Plan {
        Plan {
            title: format!("restore what was read before step {}", failed + 1),
            steps: self
                .restore
                .iter()
                .filter(|g| g.from <= failed)
                .map(|g| g.step.clone())
                .collect(),
            notes: vec![],
        }
    }

    /// The dry run; with `verbose` nothing more is shown (these steps run no node scripts).
    pub fn display(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for LivePatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.plan)?;
        if !self.change.is_empty() {
            writeln!(f, "\n# the change:")?;
            write!(f, "{}", self.change)?;
        }
        let mut from = None;
        for g in &self.restore {
            if from != Some(g.from) {
                writeln!(
                    f,
                    "\n# if step {} or a later one fails, k8soidc then runs:",
                    g.from + 1,
                )?;
                from = Some(g.from);
            }
            writeln!(f)?;
            write!(f, "{}", g.step)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Command;

    #[test]
    fn restore_steps_are_chosen_by_the_failing_step() {
        let run = |w: &str| Step::run(Command::new("true", [w]), w);
        let live = LivePatch {
            plan: Plan {
                title: "t".into(),
                steps: vec![run("a"), run("b"), run("c")],
                notes: vec![],
            },
            change: String::new(),
            restore: vec![
                Guarded {
                    from: 1,
                    step: run("undo-b"),
                },
                Guarded {
                    from: 2,
                    step: run("undo-c"),
                },
            ],
        };
        assert!(live.restore_after(0).steps.is_empty());
        assert_eq!(live.restore_after(1).steps, vec![run("undo-b")]);
        assert_eq!(
            live.restore_after(2).steps,
            vec![run("undo-b"), run("undo-c")]
        );
        assert_eq!(
            live.to_string(),
            "# t\n\n# a\n+ true a\n\n# b\n+ true b\n\n# c\n+ true c\n\n# if step 2 or a later one fails, k8soidc then runs:\n\n# undo-b\n+ true undo-b\n\n# if step 3 or a later one fails, k8soidc then runs:\n\n# undo-c\n+ true undo-c\n"
        );
    }
}

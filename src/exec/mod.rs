//! Runs a [`Plan`] for real. The plan is the same data the dry run printed; this module is
//! the only place its effects happen. Remote targets are handled by the SSH executor.

mod local;
pub(crate) mod ssh;

pub(crate) use local::{check_programs, run_plan, run_plan_at};

//! Runs a [`Plan`] for real. The plan is the same data the dry run printed; this module is
//! the only place its effects happen. Remote targets are handled by the SSH executor.

mod local;
pub(crate) mod ssh;

pub(crate) use local::{capture, check_programs, run_bounded, run_plan, run_plan_at};

use crate::error::Error;

/// The single-threaded async runtime the SSH executor runs on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Other(format!("cannot start the async runtime: {e}")))
}

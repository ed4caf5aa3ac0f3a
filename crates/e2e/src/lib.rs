//! The end-to-end harness of `cargo xtask e2e` (issue 14): a workload run against one or more
//! backends through the real tape daemon on the simulated library, every mount decision compared
//! between the backends, and an [`E2eRecord`](tapesched_report::e2e::E2eRecord) of what each did.
//!
//! * [`workload`]: the workload file (seeded YAML, strict, errors naming the field and line);
//! * [`generate`]: the workload's timed events (requests of every flow, incidents);
//! * [`catalogue`]: the catalogue built from the library's mhVTL configuration and the workload;
//! * [`lockstep`]: the lockstep runner (one process, simulated time, every backend fed the same
//!   events, decisions compared in order, the first divergence stops the run);
//! * [`record`]: latency summaries and other pieces of the record.

#![warn(missing_docs)]

pub mod catalogue;
pub mod generate;
pub mod lockstep;
pub mod record;
pub mod workload;

pub use lockstep::{run, BackendSpec, Progress, RunOptions};
pub use workload::{Workload, WorkloadError};

/// Why a run could not be made (a divergence is not an error: it is in the record).
#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    /// The workload file is wrong.
    #[error(transparent)]
    WorkloadFile(#[from] WorkloadError),
    /// The workload does not fit the library (naming the field).
    #[error("workload: {0}")]
    Workload(String),
    /// The library's configuration is wrong or missing (naming the file and line).
    #[error("library configuration: {0}")]
    Config(String),
    /// A backend failed.
    #[error("backend {backend}: {error}")]
    Backend {
        /// The backend.
        backend: String,
        /// What failed.
        error: tapesched_scheduler::Error,
    },
}

//! Scheduling scenarios: the backend-neutral contract of tapesched
//! (`shared/compat/SCENARIOS.md`).
//!
//! A scenario file sets up a catalogue, plays a timeline of ops against the scheduler on a
//! virtual clock and states what must come out. This crate
//!
//! - reads files and validates them against the embedded schema before deserializing them
//!   ([`load`], [`validate`], [`model`]);
//! - builds a fresh catalogue and backend per run and plays the steps as the tape daemons would
//!   ([`catalogue`], [`backend`], [`runner`]);
//! - checks expectations ([`expect`]), records the trace ([`trace`]) and compares the traces of
//!   several backends ([`compare`]).
//!
//! Runner choices the contract leaves open:
//!
//! - a trace record's `ok` says whether the step passed (expectations held, no unexpected error);
//! - a step without `expect` whose op fails counts as failed in `N passed, M failed` (the
//!   contract: "a step without `expect.error` fails if the op errors");
//! - a disk system without `free_space_bytes` has 2^63-1 bytes free (unlimited in practice), without
//!   `target_free_space_bytes` no target, without `sleep_time` no sleep;
//! - a file of the catalogue without `disk_instance` belongs to the first disk instance (by name),
//!   without `disk_file_id` has its archive file id in decimal;
//! - a non-dry-run `next_mount` on a drive whose session holds no popped job replaces that
//!   session; on a drive whose session still holds popped jobs it fails with `invalid_argument`.

#![warn(missing_docs)]

pub mod backend;
pub mod catalogue;
pub mod compare;
pub mod error;
pub mod expect;
pub mod load;
pub mod model;
pub mod runner;
pub mod trace;
pub mod validate;

pub use backend::Backend;
pub use error::ScenarioError;
pub use load::{collect_files, load_catalogue, load_catalogue_file, load_scenario, CatalogueFile};
pub use model::Scenario;
pub use runner::{run_scenario, RunReport, Runner};
pub use trace::StepRecord;

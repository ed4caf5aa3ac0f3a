//! tapesched's canonical scheduling core.
//!
//! - [`types`]: domain values (tapes, pools, policies, requests, jobs);
//! - [`catalogue`]: the [`catalogue::Catalogue`] trait and the in-memory catalogue;
//! - [`db`]: the [`db::SchedulerDb`] trait every queue backend implements;
//! - [`decision`]: the mount decision, one pure function with its explanation;
//! - [`repack`]: repack requests, their subrequests' links, counters and the repack buffer;
//! - [`rules`]: batch, retry, report and best-VID rules backends apply;
//! - [`scheduler`]: the [`scheduler::Scheduler`], every workflow written once;
//! - [`bounds`]: the integer bounds every value is checked against, and totals that never wrap;
//! - [`clock`], [`error`], [`names`], [`resolve`]: injected time, errors, input checks, look-ups;
//! - [`failpoint`]: places where a process can be made to die on purpose, for kill tests.

#![warn(missing_docs)]

pub mod bounds;
pub mod catalogue;
pub mod clock;
pub mod db;
pub mod decision;
pub mod error;
pub mod failpoint;
pub mod names;
pub mod repack;
pub mod resolve;
pub mod rules;
pub mod scheduler;
pub mod state;
pub mod types;

pub use error::{Error, ErrorKind, Result};

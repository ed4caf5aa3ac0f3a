//! Moving scheduler state between backends (the migration bridge's tools, issue 12).
//!
//! Every backend describes its whole state as [`tapesched_scheduler::state::StateItem`]s, exports
//! them in one key order and imports them as if it had received them through its normal
//! operations ([`tapesched_scheduler::db::SchedulerDb::export_state`] and its siblings). On that:
//!
//! - [`copy::backfill`] copies a legacy backend into a target, resumable from a checkpoint, one
//!   backfill at a time;
//! - [`verify::verify`] compares two backends in full, re-checking every difference before
//!   reporting it, and [`verify::repair`] makes one side equal to the other for named items;
//! - [`record::Record`] keeps the migration's stage, its history, verify results and the
//!   backfill checkpoint in the target PostgreSQL database (`migrations/0009_migration.sql`), and
//!   [`stage`] holds the rules for changing stages (the gate of `live`: a clean verify and a
//!   window of the bridge's counters under the configured mismatch rate);
//! - [`record_log`]: the bridge's counters and divergences of every process in the same record
//!   (`migrations/0010_migration_log.sql`), written by [`LogFlusher`] (`flusher.rs`) about once a
//!   second, added up over processes and windows, listed and marked repaired;
//! - [`repair_log::repair_divergences`] repairs the items the stored divergences name.

#![warn(missing_docs)]

pub mod copy;
pub mod flusher;
pub mod record;
pub mod record_log;
pub mod repair_log;
pub mod stage;
pub mod stage_source;
pub mod verify;

pub use copy::{backfill, BackfillOptions, BackfillReport, Progress, IN_FLIGHT};
/// The bridge's log types the record stores and reads.
pub use tapesched_bridge::{
    Answer, Concern, Divergence, DivergenceLog, Histogram, LogDelta, OpCounts, PendingDivergence,
};

pub use flusher::{FlushStatus, LogFlusher, DEFAULT_FLUSH_INTERVAL};
pub use record::{Checkpoint, Record, VerifyRecord};
pub use record_log::{DivergenceQuery, FlushBatch, StoredDivergence};
pub use repair_log::{keys_of, repair_divergences, DivergenceRepairReport};
pub use stage::{GateConfig, LiveEvidence, Stage, StageChange};
pub use stage_source::{RecordStage, DEFAULT_READ_TIMEOUT, DEFAULT_REFRESH, DEFAULT_STALE_LIMIT};
pub use verify::{
    confirm, repair, scan, verify, DiffKind, Difference, RepairReport, Scan, VerifyOptions, VerifyReport,
};

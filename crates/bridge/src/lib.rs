//! The migration bridge: a [`SchedulerDb`](tapesched_scheduler::db::SchedulerDb) over a legacy
//! backend (the objectstore) and a target backend (PostgreSQL), for moving a running archive
//! from one to the other in stages with evidence at every step and a way back.
//!
//! - [`stage`]: the stages `off -> dual-write -> shadow -> live -> rampdown -> complete`, which
//!   side is authoritative in each, and the allowed changes (forward one at a time, back to any
//!   earlier stage until `complete`);
//! - [`divergence`]: what the two sides disagreed on, counters per operation kind, sampling and
//!   ignore rules; deltas of both for persistence ([`DivergenceLog::take_delta`]);
//! - [`histogram`]: mergeable log-scale latency histograms;
//! - [`BridgeDb`] (`db.rs`, `adapter.rs`, `mounts.rs`): every `SchedulerDb` method routed by the
//!   stage a [`StageSource`] gives;
//! - [`failpoint`]: `TAPESCHED_FAILPOINT=bridge.after_authority_write` kills the process between
//!   the two sides' writes of a mirrored write (tests of what a killed process leaves behind).
//!
//! Invariants: callers get the authoritative side's answer and only its errors (a failure or a
//! different answer of the other side is a divergence, never the caller's error); mirrored
//! writes run on both sides concurrently; a mount is recorded on the other side under the id the
//! authoritative side gave it, which moves that side's id allocator past it; "now" comes from
//! the caller, never from the wall clock (latencies are measured, never used to decide).

#![warn(missing_docs)]

mod adapter;
mod db;
pub mod divergence;
pub mod failpoint;
pub mod histogram;
mod mounts;
pub mod stage;

pub use db::{BridgeDb, FixedStage, ManualStage, StageSource};
pub use divergence::{
    Answer, Concern, Divergence, DivergenceLog, IgnoreRule, Latency, LogDelta, OpCounts, OpStats, PendingDivergence,
    Sampling,
};
pub use histogram::Histogram;
pub use mounts::{fence_rule, in_flight_rule, FENCE_MOUNT, FENCE_POP, HELD_BACK_POP, HELD_BACK_REPORTS};
pub use stage::{Side, Stage};

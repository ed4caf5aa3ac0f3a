//! The record of an end-to-end run (`cargo xtask e2e`): what each backend did over the run's
//! time, the decisions compared between backends and every divergence, as plain data. The e2e
//! harness fills it; this crate renders it (and it is written as `record.json` beside the
//! report, so that a report can be rendered again or two runs diffed).
//!
//! Times are simulated (or scaled) seconds since the Unix epoch unless a field says wall.

use serde::{Deserialize, Serialize};

/// One end-to-end run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct E2eRecord {
    /// The workload's name.
    pub workload: String,
    /// The workload file, as given.
    pub workload_file: String,
    /// The workload's seed.
    pub seed: u64,
    /// `lockstep` or `processes`.
    pub mode: String,
    /// The library: `sim` or `mhvtl`, and its configuration directory.
    pub library: String,
    /// Drives and tapes in the library.
    pub drives: u32,
    /// Tapes in the library's catalogue.
    pub tapes: u32,
    /// Simulated start, seconds.
    pub start_s: i64,
    /// Simulated end, seconds.
    pub end_s: i64,
    /// Context lines shown under the title (command line, machine, tolerances...).
    pub context: Vec<String>,
    /// One entry per backend, in the order given on the command line.
    pub backends: Vec<BackendRun>,
    /// The decisions compared between the backends (lockstep).
    pub decisions: DecisionTally,
    /// Every divergence found (lockstep stops at the first one).
    pub divergences: Vec<Divergence>,
    /// Outcome comparisons between backends with their tolerances (processes mode).
    pub tolerances: Vec<ToleranceCheck>,
}

impl E2eRecord {
    /// True when the run found no divergence, every tolerance held and every invariant of every
    /// backend held.
    pub fn passed(&self) -> bool {
        self.divergences.is_empty()
            && self.tolerances.iter().all(|t| t.ok)
            && self.backends.iter().all(|b| b.invariants.iter().all(|i| i.ok))
    }
}

/// What one backend did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BackendRun {
    /// The backend's name (`objectstore-redis`, `postgres`, `bridge:...`).
    pub backend: String,
    /// Wall time of the whole run on this backend, seconds.
    pub wall_s: f64,
    /// Where the wall time went, named parts in seconds (`queueing`, `next_mount`, `pop_jobs`,
    /// `reports`, `maintenance`, `library`...); they need not sum to `wall_s`.
    pub time_split: Vec<(String, f64)>,
    /// Requests by kind and outcome.
    pub totals: Totals,
    /// Samples over time, in increasing `t_s`.
    pub samples: Vec<Sample>,
    /// Queue latency (queued to reported done) of archive requests.
    pub archive_latency: LatencySummary,
    /// Queue latency (queued to reported done) of retrieve requests.
    pub retrieve_latency: LatencySummary,
    /// Invariants checked at the end of the run on this backend.
    pub invariants: Vec<InvariantCheck>,
}

/// Request counts of one backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    /// Archive requests queued.
    pub archives_queued: u64,
    /// Archive requests reported done.
    pub archived: u64,
    /// Retrieve requests queued.
    pub retrieves_queued: u64,
    /// Retrieve requests reported done.
    pub retrieved: u64,
    /// Jobs reported failed.
    pub failed: u64,
    /// Success reports received twice for the same request.
    pub duplicates: u64,
    /// Repack requests queued.
    pub repacks_queued: u64,
    /// Repack requests finished.
    pub repacks_done: u64,
    /// Mounts made.
    pub mounts: u64,
    /// Bytes moved by successful jobs.
    pub bytes: u64,
}

/// The state of one backend at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// When, seconds.
    pub t_s: i64,
    /// Archive jobs queued (not yet on a drive).
    pub queued_archive: u64,
    /// Retrieve jobs queued.
    pub queued_retrieve: u64,
    /// Drives with a tape mounted or being mounted/unloaded.
    pub drives_busy: u32,
    /// Drives Up or busy (not Down).
    pub drives_up: u32,
    /// Mounts started since the run began.
    pub mounts: u64,
    /// Requests reported done since the run began.
    pub done: u64,
}

/// A latency distribution in seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    /// Requests measured.
    pub count: u64,
    /// Median, seconds.
    pub p50_s: f64,
    /// 90th percentile, seconds.
    pub p90_s: f64,
    /// 99th percentile, seconds.
    pub p99_s: f64,
    /// Longest, seconds.
    pub max_s: f64,
    /// Histogram: `(upper bound in seconds, count)`, increasing bounds, empty buckets left out.
    pub histogram: Vec<(f64, u64)>,
}

/// An invariant checked on one backend.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvariantCheck {
    /// What must hold (`every request done exactly once`...).
    pub name: String,
    /// Whether it held.
    pub ok: bool,
    /// Numbers or the first offending item.
    pub detail: String,
}

/// Decisions compared between backends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionTally {
    /// Decisions compared (one per `next_mount` of a drive, all backends at once).
    pub compared: u64,
    /// Decisions equal on every backend (chosen mount and ordered candidates).
    pub matched: u64,
    /// Of the matched, those that chose a mount.
    pub mounts_chosen: u64,
}

/// A difference between backends.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Divergence {
    /// When, seconds.
    pub t_s: i64,
    /// The drive or request concerned.
    pub concerns: String,
    /// What differs, in words.
    pub what: String,
    /// Each backend's answer or explanation, preformatted, in [`E2eRecord::backends`] order.
    pub answers: Vec<String>,
}

/// An outcome compared between backends within a stated tolerance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToleranceCheck {
    /// The measure (`mounts per hour`, `files per mount`, `archive latency p99`...).
    pub measure: String,
    /// Its value per backend, in [`E2eRecord::backends`] order.
    pub values: Vec<f64>,
    /// The tolerance, in words (`within 10 %`).
    pub tolerance: String,
    /// Whether the values are within it.
    pub ok: bool,
}

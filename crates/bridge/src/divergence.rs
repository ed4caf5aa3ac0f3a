//! Divergences between the two sides of the bridge, and the counters a report is made of.
//!
//! A [`Divergence`] records one operation whose two answers differed (a value, or an error
//! kind: messages are each backend's own) or whose non-authoritative side failed: what the
//! operation concerned, both answers, the stage and the caller's "now" (never the wall clock).
//! The shared [`DivergenceLog`] keeps them with per-operation counters ([`OpStats`]): calls,
//! compared, matched, mismatched, ignored (by rule), errors and latencies per side.
//!
//! - **Sampling** ([`Sampling`]): reads and decisions cost a second call, so each operation kind
//!   compares every k-th call only (deterministic; default: every call). Mirrored writes are
//!   always compared: both sides do the write anyway.
//! - **Ignore rules** ([`IgnoreRule`]): named, documented differences. A divergence a rule
//!   matches is counted as ignored under the rule's name, kept apart, and never counted as a match
//!   nor as a mismatch.
//!
//! Latencies are measured with `std::time::Instant`; they are reported, never used to decide.
//!
//! **Persistence** ([`DivergenceLog::take_delta`]): besides its running totals, the log keeps
//! what changed since the last take ([`LogDelta`]: counters per operation kind as [`OpCounts`],
//! latencies as mergeable [`Histogram`]s, and every divergence recorded since, stamped with the
//! wall-clock second it was recorded). A flusher (`tapesched_migrate::LogFlusher`) writes each
//! delta to the migration record shared by every process. Divergences wait there up to
//! [`DivergenceLog::PENDING_KEPT`] (far beyond the in-memory [`DivergenceLog::KEPT`]); past it they
//! are only counted ([`OpCounts::dropped`]), so counts are never lost.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tapesched_scheduler::clock::Timestamp;
use tapesched_scheduler::types::{JobId, MountId, RequestId};
use tapesched_scheduler::{ErrorKind, Result};

pub use crate::histogram::Histogram;
use crate::stage::{Side, Stage};

/// What an operation concerned, to name it in a divergence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Concern {
    /// A request.
    Request(RequestId),
    /// One job of a request.
    Job(JobId),
    /// An archive file (cancellations name the file, not a request).
    ArchiveFile(u64),
    /// A queue: a tape pool or a VID.
    Queue(String),
    /// A mount.
    Mount(MountId),
    /// A drive.
    Drive(String),
    /// A logical library (a mount decision that chose nothing names only its library).
    Library(String),
    /// The repack of a VID.
    Repack(String),
}

fn request_name(r: &RequestId) -> String {
    match r {
        RequestId::Archive(id) => format!("archive {id}"),
        RequestId::Retrieve(id) => format!("retrieve {id}"),
        RequestId::RepackArchive(id) => format!("repack archive {id}"),
    }
}

impl fmt::Display for Concern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Concern::Request(r) => write!(f, "request {}", request_name(r)),
            Concern::Job(j) => write!(f, "job {} copy {}", request_name(&j.request), j.copy_nb),
            Concern::ArchiveFile(id) => write!(f, "archive file {id}"),
            Concern::Queue(q) => write!(f, "queue {q}"),
            Concern::Mount(m) => write!(f, "mount {m}"),
            Concern::Drive(d) => write!(f, "drive {d}"),
            Concern::Library(l) => write!(f, "library {l}"),
            Concern::Repack(v) => write!(f, "repack of {v}"),
        }
    }
}

/// One side's answer, rendered: a value (as JSON) or an error (compared by kind).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// A successful answer.
    Value(serde_json::Value),
    /// An error: its kind (what is compared) and its message (each backend's own).
    Error {
        /// The kind.
        kind: ErrorKind,
        /// The message.
        message: String,
    },
    /// The side was not asked (the comparison concerned the other side only).
    NotAsked,
}

impl Answer {
    /// The rendering of a result.
    pub fn of<T: Serialize>(result: &Result<T>) -> Answer {
        match result {
            Ok(v) => Answer::value(v),
            Err(e) => Answer::Error { kind: e.kind, message: e.message.clone() },
        }
    }

    /// The rendering of a value.
    pub fn value<T: Serialize + ?Sized>(v: &T) -> Answer {
        Answer::Value(serde_json::to_value(v).unwrap_or_else(|e| serde_json::Value::String(format!("<{e}>"))))
    }
}

impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Answer::Value(v) => {
                let text = v.to_string();
                if text.len() > 2000 {
                    let mut end = 2000;
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    write!(f, "{}... ({} more bytes)", &text[..end], text.len() - end)
                } else {
                    f.write_str(&text)
                }
            }
            Answer::Error { kind, message } => write!(f, "error {kind}: {message}"),
            Answer::NotAsked => f.write_str("(not asked)"),
        }
    }
}

/// One operation whose two sides disagreed, or whose non-authoritative side failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Divergence {
    /// Order of recording in its log (1, 2, ...).
    pub seq: u64,
    /// The operation kind: the `SchedulerDb` method (`queue_archive`, `next_mount`...).
    pub op: String,
    /// What it concerned.
    pub concerns: Vec<Concern>,
    /// The stage the operation ran in.
    pub stage: Stage,
    /// The legacy side's answer.
    pub legacy: Answer,
    /// The target side's answer.
    pub target: Answer,
    /// What differs, in words, when the answers alone do not say it (a job the other side could
    /// not give, a decision taken on different mount info).
    pub note: Option<String>,
    /// "Now" of the operation, from the caller's clock (the latest the bridge saw, for
    /// operations that take none).
    pub at: Timestamp,
    /// The ignore rule that matched it, if any.
    pub ignored_by: Option<String>,
}

impl Divergence {
    /// A divergence of `op` (seq, stage and rule are filled in by the bridge and the log).
    pub fn new(op: &str, concerns: Vec<Concern>, legacy: Answer, target: Answer, at: Timestamp) -> Divergence {
        Divergence {
            seq: 0,
            op: op.to_string(),
            concerns,
            stage: Stage::Off,
            legacy,
            target,
            note: None,
            at,
            ignored_by: None,
        }
    }

    /// The divergence with a note.
    pub fn noted(mut self, note: impl Into<String>) -> Divergence {
        self.note = Some(note.into());
        self
    }
}

impl fmt::Display for Divergence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let concerns = self.concerns.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ");
        write!(f, "divergence #{} in {} at {} ({}", self.seq, self.op, self.at, self.stage)?;
        if !concerns.is_empty() {
            write!(f, "; {concerns}")?;
        }
        f.write_str(")")?;
        if let Some(note) = &self.note {
            write!(f, ": {note}")?;
        }
        write!(f, "\n  legacy: {}\n  target: {}", self.legacy, self.target)?;
        if let Some(rule) = &self.ignored_by {
            write!(f, "\n  ignored by rule {rule}")?;
        }
        Ok(())
    }
}

/// A named, documented difference between the backends that is not a defect. Divergences it
/// matches are counted as ignored under its name, never as matches nor as mismatches.
#[derive(Clone)]
pub struct IgnoreRule {
    /// Short name, shown in counters and reports.
    pub name: String,
    /// Why the difference is expected.
    pub description: String,
    matches: Arc<dyn Fn(&Divergence) -> bool + Send + Sync>,
}

impl IgnoreRule {
    /// A rule matching the divergences for which `matches` is true.
    pub fn new(
        name: impl Into<String>,
        description: impl Into<String>,
        matches: impl Fn(&Divergence) -> bool + Send + Sync + 'static,
    ) -> IgnoreRule {
        IgnoreRule { name: name.into(), description: description.into(), matches: Arc::new(matches) }
    }

    /// True when the rule covers `d`.
    pub fn matches(&self, d: &Divergence) -> bool {
        (self.matches)(d)
    }
}

impl fmt::Debug for IgnoreRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IgnoreRule").field("name", &self.name).field("description", &self.description).finish()
    }
}

/// Which calls of each operation kind are compared: every k-th call of the kind (k = 1: every
/// call, the default; k = 0: none). Deterministic: the n-th call (1-based) is compared when
/// `n % k == 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sampling {
    /// k for kinds not listed in `per_op`.
    pub default_every: u64,
    /// k per operation kind (`next_mount`, `list_pending`...).
    pub per_op: BTreeMap<String, u64>,
}

impl Default for Sampling {
    fn default() -> Sampling {
        Sampling { default_every: 1, per_op: BTreeMap::new() }
    }
}

impl Sampling {
    /// The sampling with `op` compared every `every`-th call.
    pub fn with(mut self, op: &str, every: u64) -> Sampling {
        self.per_op.insert(op.to_string(), every);
        self
    }

    fn every(&self, op: &str) -> u64 {
        self.per_op.get(op).copied().unwrap_or(self.default_every)
    }
}

/// Latencies of one side of one operation kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latency {
    /// Calls measured.
    pub count: u64,
    /// Their total, microseconds.
    pub total_micros: u64,
    /// The longest, microseconds.
    pub max_micros: u64,
    /// The last [`Latency::KEPT`] samples, microseconds, oldest first (for distributions).
    pub samples: VecDeque<u64>,
    /// Every call in log-scale buckets (mergeable; percentiles over all calls).
    #[serde(default)]
    pub histogram: Histogram,
}

impl Latency {
    /// How many samples are kept per side and operation kind.
    pub const KEPT: usize = 4096;

    fn add(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.count += 1;
        self.total_micros = self.total_micros.saturating_add(us);
        self.max_micros = self.max_micros.max(us);
        if self.samples.len() == Self::KEPT {
            self.samples.pop_front();
        }
        self.samples.push_back(us);
        self.histogram.add(us);
    }
}

/// The counters of one operation kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpStats {
    /// Calls through the bridge in a stage that compares the operation (writes: every stage that
    /// mirrors them; reads and decisions: shadow and live), sampled or not.
    pub calls: u64,
    /// Comparisons made (= matched + mismatched + sum of ignored).
    pub compared: u64,
    /// Comparisons whose answers were equal.
    pub matched: u64,
    /// Comparisons that recorded a divergence.
    pub mismatched: u64,
    /// Divergences an ignore rule covered, per rule name.
    pub ignored: BTreeMap<String, u64>,
    /// Errors answered by the legacy side.
    pub legacy_errors: u64,
    /// Errors answered by the target side.
    pub target_errors: u64,
    /// Latencies of the legacy side.
    pub legacy_latency: Latency,
    /// Latencies of the target side.
    pub target_latency: Latency,
}

/// The counters of one operation kind in a mergeable form: what is persisted per flush window,
/// and what the record adds up over processes and windows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpCounts {
    /// Calls (see [`OpStats::calls`]).
    pub calls: u64,
    /// Comparisons made (= matched + mismatched + sum of ignored).
    pub compared: u64,
    /// Comparisons whose answers were equal.
    pub matched: u64,
    /// Comparisons that recorded a divergence no rule covered.
    pub mismatched: u64,
    /// Divergences an ignore rule covered, per rule name.
    pub ignored: BTreeMap<String, u64>,
    /// Errors answered by the legacy side.
    pub legacy_errors: u64,
    /// Errors answered by the target side.
    pub target_errors: u64,
    /// Latencies of the legacy side.
    pub legacy_latency: Histogram,
    /// Latencies of the target side.
    pub target_latency: Histogram,
    /// Divergences counted but not kept for persistence (past [`DivergenceLog::PENDING_KEPT`]).
    pub dropped: u64,
}

impl OpCounts {
    /// Adds `other` to these counters.
    pub fn merge(&mut self, other: &OpCounts) {
        self.calls += other.calls;
        self.compared += other.compared;
        self.matched += other.matched;
        self.mismatched += other.mismatched;
        for (rule, n) in &other.ignored {
            *self.ignored.entry(rule.clone()).or_default() += n;
        }
        self.legacy_errors += other.legacy_errors;
        self.target_errors += other.target_errors;
        self.legacy_latency.merge(&other.legacy_latency);
        self.target_latency.merge(&other.target_latency);
        self.dropped += other.dropped;
    }

    /// Divergences ignore rules covered, every rule together.
    pub fn ignored_total(&self) -> u64 {
        self.ignored.values().sum()
    }

    /// True when nothing was counted.
    pub fn is_empty(&self) -> bool {
        *self == OpCounts::default()
    }
}

/// A divergence waiting to be persisted, with the wall-clock second it was recorded at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingDivergence {
    /// Wall-clock epoch seconds of its recording (reports only; never a scheduling input).
    pub recorded_at: i64,
    /// The divergence (ignored ones too, with their rule).
    pub divergence: Divergence,
}

/// What a [`DivergenceLog`] counted and recorded since the previous take.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogDelta {
    /// Counters per operation kind (kinds with nothing counted are left out).
    pub stats: BTreeMap<String, OpCounts>,
    /// Divergences recorded since, in order.
    pub divergences: Vec<PendingDivergence>,
}

impl LogDelta {
    /// True when nothing was counted nor recorded.
    pub fn is_empty(&self) -> bool {
        self.stats.is_empty() && self.divergences.is_empty()
    }

    /// Adds a later delta to this one (its divergences after these, up to
    /// [`DivergenceLog::PENDING_KEPT`]; the rest counted as dropped).
    pub fn merge(&mut self, later: LogDelta) {
        for (op, c) in &later.stats {
            self.stats.entry(op.clone()).or_default().merge(c);
        }
        for d in later.divergences {
            if self.divergences.len() < DivergenceLog::PENDING_KEPT {
                self.divergences.push(d);
            } else {
                self.stats.entry(d.divergence.op.clone()).or_default().dropped += 1;
            }
        }
    }
}

fn wall_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[derive(Default)]
struct Inner {
    stats: BTreeMap<String, OpStats>,
    divergences: Vec<Divergence>,
    ignored: Vec<Divergence>,
    dropped: u64,
    seq: u64,
    /// What changed since the last [`DivergenceLog::take_delta`].
    delta: LogDelta,
}

/// The divergences and counters of a bridge, shared (`Arc`) between the bridge and whoever
/// reports on it (the scenario runner, later `tapesched migrate status` and the reports).
#[derive(Default)]
pub struct DivergenceLog {
    sampling: Sampling,
    rules: Vec<IgnoreRule>,
    inner: Mutex<Inner>,
}

impl fmt::Debug for DivergenceLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DivergenceLog").field("sampling", &self.sampling).field("rules", &self.rules).finish()
    }
}

impl DivergenceLog {
    /// How many divergences (and as many ignored ones) are kept; later ones are only counted.
    pub const KEPT: usize = 10_000;

    /// How many divergences wait for [`DivergenceLog::take_delta`] at most; later ones are only
    /// counted ([`OpCounts::dropped`]) until the next take.
    pub const PENDING_KEPT: usize = 200_000;

    /// A log comparing every call, without ignore rules.
    pub fn new() -> DivergenceLog {
        DivergenceLog::default()
    }

    /// A log with the given sampling and ignore rules.
    pub fn with(sampling: Sampling, rules: Vec<IgnoreRule>) -> DivergenceLog {
        DivergenceLog { sampling, rules, inner: Mutex::default() }
    }

    /// The ignore rules.
    pub fn rules(&self) -> &[IgnoreRule] {
        &self.rules
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves counters that are still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a call of `op` and says whether this call is compared (see [`Sampling`]).
    pub fn sample(&self, op: &str) -> bool {
        let mut inner = self.lock();
        inner.delta.stats.entry(op.to_string()).or_default().calls += 1;
        let stats = inner.stats.entry(op.to_string()).or_default();
        stats.calls += 1;
        match self.sampling.every(op) {
            0 => false,
            k => stats.calls.checked_rem(k) == Some(0),
        }
    }

    /// Counts a call of `op` that is always compared (a mirrored write).
    pub fn count_call(&self, op: &str) {
        let mut inner = self.lock();
        inner.stats.entry(op.to_string()).or_default().calls += 1;
        inner.delta.stats.entry(op.to_string()).or_default().calls += 1;
    }

    /// Records one side's answer to `op`: its latency and whether it failed.
    pub fn answered(&self, op: &str, side: Side, latency: Duration, failed: bool) {
        let mut inner = self.lock();
        let stats = inner.stats.entry(op.to_string()).or_default();
        let (errors, lat) = match side {
            Side::Legacy => (&mut stats.legacy_errors, &mut stats.legacy_latency),
            Side::Target => (&mut stats.target_errors, &mut stats.target_latency),
        };
        *errors += u64::from(failed);
        lat.add(latency);
        let delta = inner.delta.stats.entry(op.to_string()).or_default();
        let (errors, hist) = match side {
            Side::Legacy => (&mut delta.legacy_errors, &mut delta.legacy_latency),
            Side::Target => (&mut delta.target_errors, &mut delta.target_latency),
        };
        *errors += u64::from(failed);
        hist.add(u64::try_from(latency.as_micros()).unwrap_or(u64::MAX));
    }

    /// Counts a comparison of `op` whose answers were equal.
    pub fn matched(&self, op: &str) {
        let mut inner = self.lock();
        let stats = inner.stats.entry(op.to_string()).or_default();
        stats.compared += 1;
        stats.matched += 1;
        let delta = inner.delta.stats.entry(op.to_string()).or_default();
        delta.compared += 1;
        delta.matched += 1;
    }

    /// Counts a comparison that found `d`: ignored if a rule covers it, a mismatch otherwise.
    /// Returns the divergence as recorded (with its sequence number and rule).
    pub fn record(&self, mut d: Divergence) -> Divergence {
        d.ignored_by = self.rules.iter().find(|r| r.matches(&d)).map(|r| r.name.clone());
        let mut inner = self.lock();
        inner.seq += 1;
        d.seq = inner.seq;
        let stats = inner.stats.entry(d.op.clone()).or_default();
        stats.compared += 1;
        match &d.ignored_by {
            Some(rule) => *stats.ignored.entry(rule.clone()).or_default() += 1,
            None => stats.mismatched += 1,
        }
        let delta = inner.delta.stats.entry(d.op.clone()).or_default();
        delta.compared += 1;
        match &d.ignored_by {
            Some(rule) => *delta.ignored.entry(rule.clone()).or_default() += 1,
            None => delta.mismatched += 1,
        }
        if inner.delta.divergences.len() < Self::PENDING_KEPT {
            inner.delta.divergences.push(PendingDivergence { recorded_at: wall_secs(), divergence: d.clone() });
        } else {
            inner.delta.stats.entry(d.op.clone()).or_default().dropped += 1;
        }
        let kept = if d.ignored_by.is_some() { &mut inner.ignored } else { &mut inner.divergences };
        if kept.len() < Self::KEPT {
            kept.push(d.clone());
        } else {
            inner.dropped += 1;
        }
        d
    }

    /// What was counted and recorded since the previous take (or since the log was made), and
    /// starts a new delta. The running totals ([`DivergenceLog::stats`]) are not changed.
    pub fn take_delta(&self) -> LogDelta {
        std::mem::take(&mut self.lock().delta)
    }

    /// Gives back a delta that could not be persisted, ahead of what was counted since, so that
    /// the next take carries both (nothing is lost).
    pub fn restore_delta(&self, earlier: LogDelta) {
        let mut inner = self.lock();
        let later = std::mem::take(&mut inner.delta);
        let mut merged = earlier;
        merged.merge(later);
        inner.delta = merged;
    }

    /// The divergences recorded (not ignored), in order.
    pub fn divergences(&self) -> Vec<Divergence> {
        self.lock().divergences.clone()
    }

    /// The divergences an ignore rule covered, in order.
    pub fn ignored(&self) -> Vec<Divergence> {
        self.lock().ignored.clone()
    }

    /// Divergences (ignored or not) counted but not kept, past [`DivergenceLog::KEPT`].
    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    /// The counters, per operation kind.
    pub fn stats(&self) -> BTreeMap<String, OpStats> {
        self.lock().stats.clone()
    }

    /// Mismatches counted over every operation kind (kept or not).
    pub fn mismatches(&self) -> u64 {
        self.lock().stats.values().map(|s| s.mismatched).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn div(op: &str) -> Divergence {
        Divergence::new(
            op,
            vec![Concern::Mount(3), Concern::Request(RequestId::Archive(7))],
            Answer::value(&1u64),
            Answer::Error { kind: ErrorKind::Unavailable, message: "down".into() },
            42,
        )
    }

    #[test]
    fn sampling_takes_every_kth_call_per_kind() {
        let log = DivergenceLog::with(Sampling::default().with("mount_info", 3).with("repacks", 0), vec![]);
        let picked: Vec<bool> = (0..6).map(|_| log.sample("mount_info")).collect();
        assert_eq!(picked, vec![false, false, true, false, false, true]);
        assert!((0..4).all(|_| log.sample("list_pending")), "default: every call");
        assert!((0..4).all(|_| !log.sample("repacks")), "0: never");
        assert_eq!(log.stats()["mount_info"].calls, 6);
    }

    #[test]
    fn ignored_divergences_are_neither_matches_nor_mismatches() {
        let rule = IgnoreRule::new("mount-ids", "mount ids are each backend's", |d| d.op == "open_mount");
        let log = DivergenceLog::with(Sampling::default(), vec![rule]);
        log.matched("open_mount");
        let ignored = log.record(div("open_mount"));
        let kept = log.record(div("queue_archive"));
        assert_eq!(ignored.ignored_by.as_deref(), Some("mount-ids"));
        assert_eq!((ignored.seq, kept.seq), (1, 2));
        let stats = log.stats();
        let om = &stats["open_mount"];
        assert_eq!((om.compared, om.matched, om.mismatched), (2, 1, 0));
        assert_eq!(om.ignored.get("mount-ids"), Some(&1));
        assert_eq!(stats["queue_archive"].mismatched, 1);
        assert_eq!(log.divergences(), vec![kept]);
        assert_eq!(log.ignored().len(), 1);
        assert_eq!(log.mismatches(), 1);
    }

    #[test]
    fn answers_count_errors_and_latencies_per_side() {
        let log = DivergenceLog::new();
        log.answered("pop_jobs", Side::Legacy, Duration::from_micros(5), false);
        log.answered("pop_jobs", Side::Target, Duration::from_micros(9), true);
        log.answered("pop_jobs", Side::Target, Duration::from_micros(1), false);
        let s = &log.stats()["pop_jobs"];
        assert_eq!((s.legacy_errors, s.target_errors), (0, 1));
        assert_eq!(s.target_latency.count, 2);
        assert_eq!(s.target_latency.max_micros, 9);
        assert_eq!(s.target_latency.samples, VecDeque::from(vec![9, 1]));
    }

    #[test]
    fn deltas_carry_what_changed_since_the_last_take_and_nothing_twice() {
        let rule = IgnoreRule::new("doc", "documented", |d| d.op == "open_mount");
        let log = DivergenceLog::with(Sampling::default(), vec![rule]);
        log.count_call("queue_archive");
        log.answered("queue_archive", Side::Legacy, Duration::from_micros(100), false);
        log.answered("queue_archive", Side::Target, Duration::from_micros(300), true);
        log.record(div("queue_archive"));
        log.record(div("open_mount"));
        let first = log.take_delta();
        let qa = &first.stats["queue_archive"];
        assert_eq!((qa.calls, qa.compared, qa.mismatched, qa.target_errors), (1, 1, 1, 1));
        assert_eq!(qa.legacy_latency.count, 1);
        assert_eq!(first.stats["open_mount"].ignored.get("doc"), Some(&1));
        assert_eq!(first.divergences.len(), 2, "ignored ones too");
        assert_eq!(first.divergences[1].divergence.ignored_by.as_deref(), Some("doc"));
        assert!(first.divergences[0].recorded_at > 0);
        assert!(log.take_delta().is_empty(), "nothing since");
        log.matched("queue_archive");
        // A delta that could not be written comes back ahead of the new one.
        log.restore_delta(first.clone());
        let both = log.take_delta();
        assert_eq!(both.stats["queue_archive"].compared, 2);
        assert_eq!(both.stats["queue_archive"].matched, 1);
        assert_eq!(both.divergences, first.divergences);
        // The running totals are the sum of the deltas.
        assert_eq!(log.stats()["queue_archive"].compared, 2);
        assert_eq!(log.stats()["queue_archive"].target_latency.histogram.count, 1);
    }

    #[test]
    fn a_delta_keeps_divergences_past_the_in_memory_cap_and_counts_the_rest() {
        let log = DivergenceLog::new();
        for _ in 0..DivergenceLog::KEPT + 5 {
            log.record(div("queue_archive"));
        }
        assert_eq!(log.dropped(), 5, "past the in-memory cap");
        let delta = log.take_delta();
        assert_eq!(delta.divergences.len(), DivergenceLog::KEPT + 5, "all kept for persistence");
        let mut full = LogDelta {
            divergences: vec![delta.divergences[0].clone(); DivergenceLog::PENDING_KEPT],
            ..LogDelta::default()
        };
        full.merge(delta);
        assert_eq!(full.divergences.len(), DivergenceLog::PENDING_KEPT);
        assert_eq!(full.stats["queue_archive"].dropped, DivergenceLog::KEPT as u64 + 5);
        assert_eq!(full.stats["queue_archive"].mismatched, DivergenceLog::KEPT as u64 + 5);
    }

    #[test]
    fn a_divergence_prints_what_it_concerned_and_both_answers() {
        let mut d = div("queue_archive").noted("the target failed");
        d.seq = 4;
        d.stage = Stage::DualWrite;
        assert_eq!(
            d.to_string(),
            "divergence #4 in queue_archive at 42 (dual-write; mount 3, request archive 7): the target failed\n  legacy: 1\n  target: error unavailable: down"
        );
        assert_eq!(
            Concern::Job(JobId { request: RequestId::Retrieve(5), copy_nb: 2 }).to_string(),
            "job retrieve 5 copy 2"
        );
    }
}

//! A report of the migration bridge: from its live [`DivergenceLog`], or from stored counters
//! and divergences (the same types, deserialized).
//!
//! The two sides are `legacy (NAME)` and `target (NAME)`. Each operation kind's row takes the
//! log's counters as they are (ignored divergences stay apart from matches and mismatches);
//! latency distributions are computed from the kept samples ([`Latency::samples`], the last
//! [`Latency::KEPT`] calls), with the count and maximum of every call. The timeline places the
//! mismatches (not the ignored ones) at their `at`, the caller's clock. A `next_mount` answer
//! is shown as its chosen mount and mount info ([`mount_answer_text`]), followed by the
//! decision in `tapesched explain`'s form when [`BridgeReport::explain`] can compute it.

use std::collections::BTreeMap;

use serde_json::Value;
use tapesched_bridge::{Answer, Divergence, DivergenceLog, Latency, OpStats};
use tapesched_scheduler::db::MountInfo;
use tapesched_scheduler::decision::Decision;

use crate::explain::{decision_text, mount_answer_text, parse_mount_answer, pretty_json};
use crate::{LatencyDist, Mismatch, OpRow, Report, Timeline};

/// Computes the decision a side would have taken on its mount info, for the explanation of a
/// `next_mount` divergence (typically `decision::decide` with the catalogue snapshot, drive,
/// "now" and configuration of the decision); `None` when it cannot.
pub type ExplainFn<'a> = dyn Fn(&Divergence, &MountInfo) -> Option<Decision> + 'a;

/// What a bridge report is built with.
pub struct BridgeReport<'a> {
    /// The report's title.
    pub title: String,
    /// Context lines (stage, when, which deployment...).
    pub context: Vec<String>,
    /// The legacy backend's name (`objectstore-redis`).
    pub legacy: String,
    /// The target backend's name (`postgres`).
    pub target: String,
    /// The decision of each side for a `next_mount` divergence, when it can be computed.
    pub explain: Option<&'a ExplainFn<'a>>,
}

impl<'a> BridgeReport<'a> {
    /// A bridge report titled `title` comparing `legacy` with `target`, without context lines
    /// nor explanations.
    pub fn new(title: impl Into<String>, legacy: impl Into<String>, target: impl Into<String>) -> BridgeReport<'a> {
        BridgeReport {
            title: title.into(),
            context: vec![],
            legacy: legacy.into(),
            target: target.into(),
            explain: None,
        }
    }

    /// The report of a live log: its counters, divergences and ignored divergences (a line of
    /// context says how many divergences were counted but not kept).
    pub fn from_log(&self, log: &DivergenceLog) -> Report {
        let mut report = self.from_parts(&log.stats(), &log.divergences(), &log.ignored());
        let dropped = log.dropped();
        if dropped > 0 {
            report.context.push(format!(
                "{dropped} divergences were counted but not kept (the log keeps {} of each kind)",
                DivergenceLog::KEPT
            ));
        }
        report
    }

    /// The report of stored counters per operation kind, the divergences kept (mismatches)
    /// and the ignored divergences kept.
    pub fn from_parts(
        &self,
        stats: &BTreeMap<String, OpStats>,
        divergences: &[Divergence],
        ignored: &[Divergence],
    ) -> Report {
        let ops = stats
            .iter()
            .map(|(op, s)| OpRow {
                op: op.clone(),
                calls: s.calls,
                compared: s.compared,
                matched: s.matched,
                mismatched: s.mismatched,
                ignored: s.ignored.clone(),
                errors: vec![s.legacy_errors, s.target_errors],
                latency: vec![latency(&s.legacy_latency), latency(&s.target_latency)],
            })
            .collect();
        let timeline = Timeline::from_events(
            "s on the caller's clock",
            None,
            divergences.iter().map(|d| (d.at, d.op.clone())),
            Timeline::MAX_BUCKETS,
        );
        Report {
            title: self.title.clone(),
            context: self.context.clone(),
            sides: vec![format!("legacy ({})", self.legacy), format!("target ({})", self.target)],
            ops,
            timeline,
            mismatches: divergences.iter().map(|d| self.mismatch(d)).collect(),
            ignored: ignored.iter().map(|d| self.mismatch(d)).collect(),
        }
    }

    fn mismatch(&self, d: &Divergence) -> Mismatch {
        let concerns = d.concerns.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ");
        Mismatch {
            op: d.op.clone(),
            when: format!("#{} at {} (stage {})", d.seq, d.at, d.stage),
            concerns: if concerns.is_empty() { "-".into() } else { concerns },
            note: d.note.clone(),
            ignored_by: d.ignored_by.clone(),
            answers: vec![self.answer(d, &d.legacy, &d.target), self.answer(d, &d.target, &d.legacy)],
        }
    }

    fn answer(&self, d: &Divergence, answer: &Answer, other: &Answer) -> String {
        match answer {
            Answer::Value(v) if d.op == "next_mount" => {
                let other = match other {
                    Answer::Value(o) => Some(o),
                    _ => None,
                };
                let mut text = mount_answer_text(v, other);
                if let Some(decision) = self.decision(d, v) {
                    text.push_str("\nExplanation (as tapesched explain shows it):\n");
                    text.push_str(&decision_text(&decision));
                }
                text
            }
            Answer::Value(v) => pretty_json(v),
            Answer::Error { kind, message } => format!("error {kind}: {message}"),
            Answer::NotAsked => "(not asked)".to_string(),
        }
    }

    fn decision(&self, d: &Divergence, v: &Value) -> Option<Decision> {
        let explain = self.explain?;
        let (_, info) = parse_mount_answer(v)?;
        explain(d, &info?)
    }
}

/// The distribution of one side's latencies: percentiles and histogram over the kept samples,
/// count and maximum over every call.
pub fn latency(l: &Latency) -> LatencyDist {
    let samples: Vec<u64> = l.samples.iter().copied().collect();
    LatencyDist::from_kept_samples(l.count, l.max_micros, &samples)
}

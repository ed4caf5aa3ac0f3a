//! The measures of a finished processes-mode run (the end-to-end harness's second mode), which
//! the harness compares between backends within its tolerances: mounts per hour, files per
//! mount, queue latency percentiles (queued -> report delivered), and whether every request was
//! reported done exactly once.
//!
//! Inputs are what the processes leave behind, parsed here: the producer's [`Applied`] lines
//! (`tapesched produce`, one JSON object per line: when each request was queued), the report
//! lines the maintenance daemon appended to `file://` report targets ([`ReportLine`], the
//! `report_json` of [`crate::maintenance`]: request, outcome, delivery time), and the tape
//! daemon's mount and file counts (its summary's `total` line, [`parse_summary_total`]).
//! [`measure`] is pure.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tapesched_scheduler::clock::Timestamp;

use crate::replay::Applied;
use crate::session::DriveStats;

/// One line a `file://` report target received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportLine {
    /// `archive:ID`, `retrieve:ID` or `repack-archive:ID`.
    pub request: String,
    /// The archive file.
    pub archive_file_id: u64,
    /// `archive` or `retrieve`.
    pub kind: String,
    /// `success` or `failure`.
    pub outcome: String,
    /// When it was delivered, simulated seconds.
    pub time: Timestamp,
}

/// Parses JSON lines of type `T` (blank lines skipped); the error names `source` and the line.
pub fn parse_lines<T: for<'de> Deserialize<'de>>(text: &str, source: &str) -> Result<Vec<T>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("{source}:{}: {e}", i + 1)))
        .collect()
}

/// The counts of the `total` line of a tape daemon's summary ([`crate::daemon::Summary::render`]);
/// `None` when `text` has no such line or it does not read as one.
pub fn parse_summary_total(text: &str) -> Option<DriveStats> {
    let line = text.lines().find(|l| l.starts_with("total "))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let after = |key: &str| -> Option<u64> {
        let i = words.iter().position(|w| *w == key)?;
        words.get(i + 1)?.parse().ok()
    };
    let back = words.iter().position(|w| *w == "back")?;
    Some(DriveStats {
        mounts: after("mounts")?,
        archived: after("archived")?,
        retrieved: after("retrieved")?,
        failed: after("failed")?,
        bytes: after("bytes")?,
        handed_back: words.get(back + 1)?.parse().ok()?,
        tapes_full: after("full")?,
        drive_errors: after("errors")?,
    })
}

/// A latency distribution, simulated seconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Requests measured.
    pub count: u64,
    /// Median (nearest rank).
    pub p50_s: f64,
    /// 90th percentile (nearest rank).
    pub p90_s: f64,
    /// 99th percentile (nearest rank).
    pub p99_s: f64,
    /// Longest.
    pub max_s: f64,
    /// The values, sorted (for histograms; not serialized).
    #[serde(skip)]
    pub sorted: Vec<i64>,
}

impl Latency {
    /// The distribution of `values` (any order): percentiles by nearest rank, i.e. the smallest
    /// value with at least p % of the values at or below it; all zero when empty.
    pub fn of(mut values: Vec<i64>) -> Latency {
        if values.is_empty() {
            return Latency::default();
        }
        values.sort_unstable();
        let rank = |p: f64| {
            let i = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
            values[i] as f64
        };
        let (p50_s, p90_s, p99_s, max_s) = (rank(0.50), rank(0.90), rank(0.99), rank(1.0));
        Latency { count: values.len() as u64, p50_s, p90_s, p99_s, max_s, sorted: values }
    }
}

/// What one backend's processes-mode run achieved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    /// Requests the producer queued.
    pub queued: u64,
    /// Requests with a success report.
    pub succeeded: u64,
    /// Requests with a failure report (and none of success).
    pub failed: u64,
    /// Requests queued with no report at all (first few, sorted).
    pub missing: Vec<String>,
    /// How many requests were queued with no report.
    pub missing_count: u64,
    /// Requests reported more than once (first few, sorted), with their count of reports.
    pub duplicates: Vec<(String, u64)>,
    /// How many requests were reported more than once.
    pub duplicate_count: u64,
    /// Reports of requests the producer never queued.
    pub unknown_reports: u64,
    /// Mounts made by the tape daemons.
    pub mounts: u64,
    /// Files moved by the tape daemons (archived + retrieved).
    pub files: u64,
    /// The measured span, simulated seconds.
    pub span_s: i64,
    /// Mounts per simulated hour over the span.
    pub mounts_per_hour: f64,
    /// Files per mount (0 without mounts).
    pub files_per_mount: f64,
    /// Queued to first report delivered, archive requests.
    pub archive_latency: Latency,
    /// Queued to first report delivered, retrieve requests.
    pub retrieve_latency: Latency,
}

impl RunOutcome {
    /// Every queued request reported exactly once, and no report of an unknown request.
    pub fn exactly_once(&self) -> bool {
        self.missing_count == 0 && self.duplicate_count == 0 && self.unknown_reports == 0
    }
}

/// How many offenders [`RunOutcome`] lists by name.
const LISTED: usize = 10;

/// The measures of a run from the producers' lines `queued`, every report line `reports`, the
/// tape daemons' totals `drives` (summed over daemons), and the run's simulated span
/// `[start_s, end_s]` (mounts per hour divide by it; an empty span gives 0).
pub fn measure(
    queued: &[Applied],
    reports: &[ReportLine],
    drives: &DriveStats,
    start_s: Timestamp,
    end_s: Timestamp,
) -> RunOutcome {
    let mut when: BTreeMap<&str, Timestamp> = BTreeMap::new();
    for a in queued {
        for r in &a.requests {
            when.entry(r.as_str()).or_insert(a.time);
        }
    }
    // Per request: the reports in delivery order (the file order for equal times).
    let mut got: BTreeMap<&str, Vec<&ReportLine>> = BTreeMap::new();
    let mut unknown = 0;
    for r in reports {
        if when.contains_key(r.request.as_str()) {
            got.entry(r.request.as_str()).or_default().push(r);
        } else {
            unknown += 1;
        }
    }
    let mut out = RunOutcome { queued: when.len() as u64, unknown_reports: unknown, ..RunOutcome::default() };
    let (mut archive, mut retrieve) = (Vec::new(), Vec::new());
    for (request, queued_at) in &when {
        let Some(lines) = got.get(request) else {
            out.missing_count += 1;
            if out.missing.len() < LISTED {
                out.missing.push(request.to_string());
            }
            continue;
        };
        if lines.len() > 1 {
            out.duplicate_count += 1;
            if out.duplicates.len() < LISTED {
                out.duplicates.push((request.to_string(), lines.len() as u64));
            }
        }
        if lines.iter().any(|l| l.outcome == "success") {
            out.succeeded += 1;
        } else {
            out.failed += 1;
        }
        let first = lines.iter().map(|l| l.time).min().unwrap_or(*queued_at);
        let latency = first.saturating_sub(*queued_at);
        if request.starts_with("retrieve:") {
            retrieve.push(latency);
        } else {
            archive.push(latency);
        }
    }
    out.archive_latency = Latency::of(archive);
    out.retrieve_latency = Latency::of(retrieve);
    out.mounts = drives.mounts;
    out.files = drives.archived + drives.retrieved;
    out.span_s = end_s.saturating_sub(start_s).max(0);
    if out.span_s > 0 {
        out.mounts_per_hour = out.mounts as f64 * 3600.0 / out.span_s as f64;
    }
    if out.mounts > 0 {
        out.files_per_mount = out.files as f64 / out.mounts as f64;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(time: Timestamp, requests: &[&str]) -> Applied {
        Applied {
            time,
            at: time,
            op: "queue_archive".into(),
            requests: requests.iter().map(|s| s.to_string()).collect(),
            ..Applied::default()
        }
    }

    fn report(request: &str, outcome: &str, time: Timestamp) -> ReportLine {
        let kind = if request.starts_with("retrieve") { "retrieve" } else { "archive" };
        ReportLine { request: request.into(), archive_file_id: 1, kind: kind.into(), outcome: outcome.into(), time }
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(Latency::of(vec![]), Latency::default());
        let l = Latency::of((1..=100).rev().collect());
        assert_eq!((l.count, l.p50_s, l.p90_s, l.p99_s, l.max_s), (100, 50.0, 90.0, 99.0, 100.0));
        assert_eq!(l.sorted.len(), 100);
        let l = Latency::of(vec![7]);
        assert_eq!((l.p50_s, l.p99_s, l.max_s), (7.0, 7.0, 7.0));
        let l = Latency::of(vec![10, 1, 5]);
        assert_eq!((l.p50_s, l.p99_s), (5.0, 10.0));
    }

    #[test]
    fn measures_count_latencies_duplicates_and_missing() {
        let queued =
            vec![applied(100, &["archive:1", "archive:2", "archive:3"]), applied(200, &["retrieve:9", "archive:4"])];
        let reports = vec![
            report("archive:1", "success", 160),
            report("archive:2", "success", 400),
            report("archive:2", "success", 500),
            report("retrieve:9", "success", 260),
            report("archive:4", "failure", 230),
            report("archive:77", "success", 300),
        ];
        let drives = DriveStats { mounts: 4, archived: 3, retrieved: 1, ..DriveStats::default() };
        let o = measure(&queued, &reports, &drives, 0, 7200);
        assert_eq!((o.queued, o.succeeded, o.failed), (5, 3, 1));
        assert_eq!((o.missing_count, o.missing.clone()), (1, vec!["archive:3".to_string()]));
        assert_eq!((o.duplicate_count, o.duplicates.clone()), (1, vec![("archive:2".to_string(), 2)]));
        assert_eq!(o.unknown_reports, 1);
        assert!(!o.exactly_once());
        assert_eq!((o.mounts_per_hour, o.files_per_mount), (2.0, 1.0));
        // Archive latencies 60, 300 (first of the two reports), 30: p50 60, p99 300.
        assert_eq!((o.archive_latency.count, o.archive_latency.p50_s, o.archive_latency.p99_s), (3, 60.0, 300.0));
        assert_eq!((o.retrieve_latency.count, o.retrieve_latency.max_s), (1, 60.0));

        let clean = measure(&queued[..1], &reports[..2], &DriveStats::default(), 5, 5);
        assert_eq!((clean.missing_count, clean.mounts_per_hour, clean.files_per_mount), (1, 0.0, 0.0));
        let all = vec![
            report("archive:1", "success", 101),
            report("archive:2", "success", 102),
            report("archive:3", "success", 103),
        ];
        assert!(measure(&queued[..1], &all, &DriveStats::default(), 0, 1).exactly_once());
    }

    #[test]
    fn lines_and_summaries_parse_or_name_the_line() {
        let text = "{\"request\":\"archive:3\",\"archive_file_id\":3,\"kind\":\"archive\",\"outcome\":\"success\",\"time\":12}\n\n{\"request\":1}\n";
        let err = parse_lines::<ReportLine>(text, "r.jsonl").unwrap_err();
        assert!(err.starts_with("r.jsonl:3: "), "{err}");
        let ok: Vec<ReportLine> = parse_lines(text.lines().next().unwrap(), "r").unwrap();
        assert_eq!(
            ok,
            vec![report("archive:3", "success", 12)]
                .into_iter()
                .map(|mut r| {
                    r.archive_file_id = 3;
                    r
                })
                .collect::<Vec<_>>()
        );

        let summary = crate::daemon::Summary {
            drives: vec![crate::daemon::DriveSummary {
                name: "ULT11".into(),
                status: tapesched_scheduler::types::DriveStatus::Shutdown,
                down_reason: None,
                stats: DriveStats {
                    mounts: 3,
                    archived: 40,
                    retrieved: 2,
                    failed: 1,
                    bytes: 123,
                    handed_back: 5,
                    tapes_full: 1,
                    drive_errors: 0,
                },
            }],
        };
        let total = parse_summary_total(&summary.render()).expect("a total line");
        assert_eq!(total, summary.total());
        assert_eq!(parse_summary_total("ULT11 Up mounts 1"), None);
    }
}

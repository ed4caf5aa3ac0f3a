//! The record of an end-to-end run (`cargo xtask e2e`): what each backend did over the run's
//! time, the decisions compared between backends and every divergence, as plain data. The e2e
//! harness fills it; this crate renders it (and it is written as `record.json` beside the
//! report, so that a report can be rendered again or two runs diffed).
//!
//! Times are simulated (or scaled) seconds since the Unix epoch unless a field says wall.

use serde::{Deserialize, Serialize};

pub(crate) use crate::utc;

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
    /// True when at least one backend ran, the run found no divergence, every tolerance held and
    /// every invariant of every backend held.
    pub fn passed(&self) -> bool {
        !self.backends.is_empty()
            && self.divergences.is_empty()
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

mod charts;
mod html;
mod markdown;
#[cfg(test)]
mod tests;

pub use html::render_html;
pub use markdown::render_markdown;

/// Writes `report.md`, `report.html` and `record.json` (the record itself, to render again or
/// diff two runs) into `dir`, created if needed; returns the paths of the two reports.
pub fn write_report(
    dir: &std::path::Path,
    record: &E2eRecord,
) -> std::io::Result<(std::path::PathBuf, std::path::PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let md = dir.join("report.md");
    let html = dir.join("report.html");
    std::fs::write(&md, render_markdown(record))?;
    std::fs::write(&html, render_html(record))?;
    let json = serde_json::to_string_pretty(record)
        .map_err(|e| std::io::Error::other(format!("cannot write record.json in {}: {e}", dir.display())))?;
    std::fs::write(dir.join("record.json"), json + "\n")?;
    Ok((md, html))
}

/// The verdict a report shows at its top.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Every check held ([`E2eRecord::passed`]) on at least one backend.
    Pass,
    /// Something failed: one line per reason.
    Fail(Vec<String>),
    /// No backend ran: nothing to judge.
    NoData,
}

impl Verdict {
    /// The verdict of `r`, with the reasons of a failure (at most ten lines, then a count).
    pub(crate) fn of(r: &E2eRecord) -> Verdict {
        if r.backends.is_empty() {
            return Verdict::NoData;
        }
        if r.passed() {
            return Verdict::Pass;
        }
        let mut reasons = Vec::new();
        if !r.divergences.is_empty() {
            reasons.push(crate::svg::plural(r.divergences.len() as u64, "divergence") + " between the backends");
        }
        for t in r.tolerances.iter().filter(|t| !t.ok) {
            reasons.push(format!("tolerance failed: {} ({})", t.measure, t.tolerance));
        }
        for b in &r.backends {
            for i in b.invariants.iter().filter(|i| !i.ok) {
                reasons.push(format!("invariant failed on {}: {}", b.backend, i.name));
            }
        }
        const SHOWN: usize = 10;
        if reasons.len() > SHOWN {
            let more = reasons.len() - SHOWN;
            reasons.truncate(SHOWN);
            reasons.push(format!("and {more} more"));
        }
        Verdict::Fail(reasons)
    }

    /// `PASS`, `FAIL` or `NO DATA`.
    pub(crate) fn word(&self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail(_) => "FAIL",
            Verdict::NoData => "NO DATA",
        }
    }
}

/// A number for people: integers as such, otherwise at most two decimals (trailing zeros
/// dropped), very large or very small ones in scientific notation, NaN and infinities named.
pub(crate) fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    if v.abs() >= 1e15 || (v != 0.0 && v.abs() < 0.01) {
        return format!("{v:.2e}");
    }
    if v.fract() == 0.0 {
        return format!("{v:.0}");
    }
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Seconds for people: `850 µs`, `12.5 ms`, `3.40 s`, `12.5 min`, `3.20 h`, `2.10 d`.
pub(crate) fn fmt_secs(v: f64) -> String {
    use crate::three_digits as d;
    if !v.is_finite() {
        return format!("{v} s");
    }
    if v < 0.0 {
        return format!("-{}", fmt_secs(-v));
    }
    match v {
        0.0 => "0 s".to_string(),
        v if v < 1e-3 => format!("{} µs", d(v * 1e6)),
        v if v < 1.0 => format!("{} ms", d(v * 1e3)),
        v if v < 120.0 => format!("{} s", d(v)),
        v if v < 7200.0 => format!("{} min", d(v / 60.0)),
        v if v < 172_800.0 => format!("{} h", d(v / 3600.0)),
        v => format!("{} d", d(v / 86_400.0)),
    }
}

/// Bytes in decimal units: `950 B`, `1.50 kB`, `85.5 TB`.
pub(crate) fn fmt_bytes(v: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if v < 1000 {
        return format!("{v} B");
    }
    let mut x = v as f64 / 1000.0;
    let mut unit = 0;
    while x >= 1000.0 && unit < UNITS.len() - 1 {
        x /= 1000.0;
        unit += 1;
    }
    format!("{} {}", crate::three_digits(x), UNITS[unit])
}

/// A histogram bound for an axis: the largest unit in which it is at least 1 with at most one
/// decimal (`5 s`, `1.5 s`, `2 h`, `500 s`), otherwise [`fmt_secs`].
pub(crate) fn fmt_bound(v: f64) -> String {
    for (unit, name) in [(86_400.0, "d"), (3600.0, "h"), (60.0, "min"), (1.0, "s"), (1e-3, "ms"), (1e-6, "µs")] {
        let n = v / unit;
        if n >= 1.0 && (n * 10.0 - (n * 10.0).round()).abs() < 1e-6 {
            return format!("{} {name}", fmt_num((n * 10.0).round() / 10.0));
        }
    }
    fmt_secs(v)
}

/// Names in the order first seen, each once (the invariants or time-split parts of every
/// backend, as table rows).
pub(crate) fn first_seen<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for n in names {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// The time `b` spent in part `name` with its share of the wall time (`1.20 s (3.4 %)`), or
/// `None` when the backend has no such part.
pub(crate) fn part_time(b: &BackendRun, name: &str) -> Option<String> {
    let v: Vec<f64> = b.time_split.iter().filter(|p| p.0 == name).map(|p| p.1).collect();
    if v.is_empty() {
        return None;
    }
    let s: f64 = v.iter().sum();
    let share = if b.wall_s > 0.0 { format!(" ({:.1} %)", s * 100.0 / b.wall_s) } else { String::new() };
    Some(format!("{}{share}", fmt_secs(s)))
}

/// An instant as hours since the run's start: `+1.25 h`.
pub(crate) fn since_start(r: &E2eRecord, t: i64) -> String {
    let h = (t as f64 - r.start_s as f64) / 3600.0;
    format!("{}{} h", if h >= 0.0 { "+" } else { "" }, fmt_num(h))
}

/// The simulated span in words: `24 h, from 2026-12-04 00:00:00 UTC (1764806400 s)`.
pub(crate) fn span_words(r: &E2eRecord) -> String {
    let secs = r.end_s as f64 - r.start_s as f64;
    format!("{}, from {} ({} s) to {} ({} s)", fmt_secs(secs), utc(r.start_s), r.start_s, utc(r.end_s), r.end_s)
}

/// One count of a backend's totals.
pub(crate) type TotalOf = fn(&Totals) -> u64;

/// One latency summary of a backend (archive or retrieve).
pub(crate) type LatencyOf = fn(&BackendRun) -> &LatencySummary;

/// Totals rows: label and the value of one backend.
pub(crate) const TOTALS: [(&str, TotalOf); 10] = [
    ("archive requests queued", |t| t.archives_queued),
    ("archive requests done", |t| t.archived),
    ("retrieve requests queued", |t| t.retrieves_queued),
    ("retrieve requests done", |t| t.retrieved),
    ("jobs failed", |t| t.failed),
    ("duplicate success reports", |t| t.duplicates),
    ("repacks queued", |t| t.repacks_queued),
    ("repacks done", |t| t.repacks_done),
    ("mounts", |t| t.mounts),
    ("bytes moved", |t| t.bytes),
];

//! Comparison reports: two or more backends (or the two sides of the migration bridge) side by
//! side, written as `report.md` and a self-contained `report.html` (inline CSS and hand-written
//! SVG charts: no script, no network).
//!
//! The input is a plain [`Report`]: a title and context lines, the side names, one [`OpRow`] per
//! operation kind (calls, comparisons, matches, mismatches, ignored per rule, errors and a
//! [`LatencyDist`] per side), a [`Timeline`] of mismatches and every [`Mismatch`] with each
//! side's answer as preformatted text. Ignored divergences (a documented difference an ignore
//! rule covers) are neither matches nor mismatches and are shown apart everywhere.
//!
//! - [`write_report`] renders both files into a directory; [`render_markdown`] and
//!   [`render_html`] give the texts;
//! - [`bridge`] builds a report from the bridge's `DivergenceLog` (or its stored counters and
//!   divergences);
//! - [`explain`] renders a mount decision in `tapesched explain`'s form, and a `next_mount`
//!   answer of the bridge (chosen mount and mount info) as readable text;
//! - [`stats`] holds the percentile, histogram and timeline arithmetic;
//! - [`e2e`] is the record of an end-to-end run ([`e2e::E2eRecord`]) and its own report
//!   ([`e2e::write_report`]: verdict, backends side by side, series over simulated time).
//!
//! Every string of the input is escaped where it is written (HTML, SVG text, Markdown): names of
//! operations, tapes or sides are hostile input.

#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub mod bridge;
pub mod e2e;
pub mod explain;
mod html;
mod markdown;
pub mod stats;
mod svg;

pub use html::render_html;
pub use markdown::render_markdown;
pub use stats::{Bucket, LatencyDist, TimeBucket, Timeline};

/// A comparison of two or more sides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// The report's title.
    pub title: String,
    /// What was compared, when, in which stage...: one line each, shown under the title.
    pub context: Vec<String>,
    /// The sides' names, in the order of every per-side vector of the report
    /// (`legacy (objectstore-redis)`, `target (postgres)`, or backend names).
    pub sides: Vec<String>,
    /// One row per operation kind, in the order shown.
    pub ops: Vec<OpRow>,
    /// Mismatches (not ignored ones) over time, per operation.
    pub timeline: Timeline,
    /// Every mismatch kept, with each side's answer.
    pub mismatches: Vec<Mismatch>,
    /// Divergences an ignore rule covered, kept apart from the mismatches.
    pub ignored: Vec<Mismatch>,
}

/// The counters of one operation kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpRow {
    /// The operation kind (`next_mount`, `queue_archive`, a scenario step's op...).
    pub op: String,
    /// Calls made (compared or not).
    pub calls: u64,
    /// Comparisons made: `matched + mismatched + ` the ignored ones.
    pub compared: u64,
    /// Comparisons whose answers were the same on every side.
    pub matched: u64,
    /// Comparisons whose answers differed (not covered by an ignore rule).
    pub mismatched: u64,
    /// Differences an ignore rule covered, per rule name: neither matches nor mismatches.
    pub ignored: BTreeMap<String, u64>,
    /// Errors answered, per side (in [`Report::sides`] order).
    pub errors: Vec<u64>,
    /// Latencies, per side (in [`Report::sides`] order).
    pub latency: Vec<LatencyDist>,
}

impl OpRow {
    /// A row of `op` with every counter at zero and `sides` empty per-side entries.
    pub fn new(op: impl Into<String>, sides: usize) -> OpRow {
        OpRow {
            op: op.into(),
            errors: vec![0; sides],
            latency: vec![LatencyDist::default(); sides],
            ..OpRow::default()
        }
    }

    /// Differences ignored, all rules together.
    pub fn ignored_total(&self) -> u64 {
        self.ignored.values().sum()
    }

    /// `matched / compared`, or `None` when nothing was compared.
    pub fn match_rate(&self) -> Option<f64> {
        (self.compared > 0).then(|| self.matched as f64 / self.compared as f64)
    }
}

/// One difference between the sides, with each side's answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mismatch {
    /// The operation kind.
    pub op: String,
    /// When it happened, as shown (`step 12 of a.yaml, t = +30 s`, `#4 at 1764822000 s`...).
    pub when: String,
    /// What it concerned (requests, mounts, drives...), as shown.
    pub concerns: String,
    /// What differs, in words, when the answers alone do not say it.
    pub note: Option<String>,
    /// The ignore rule that covered it (for [`Report::ignored`]).
    pub ignored_by: Option<String>,
    /// Each side's answer or explanation, preformatted (in [`Report::sides`] order).
    pub answers: Vec<String>,
}

/// Writes `report.md` and `report.html` into `dir` (created if needed); returns their paths.
pub fn write_report(dir: &Path, report: &Report) -> std::io::Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(dir)?;
    let md = dir.join("report.md");
    let html = dir.join("report.html");
    std::fs::write(&md, render_markdown(report))?;
    std::fs::write(&html, render_html(report))?;
    Ok((md, html))
}

/// Seconds since the Unix epoch as a UTC date and time (`2026-12-04 17:25:00 UTC`).
pub fn utc(s: i64) -> String {
    let (days, secs) = (s.div_euclid(86_400), s.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days as i128 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i128::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC", secs / 3600, secs / 60 % 60, secs % 60)
}

/// A duration in microseconds, readable: `850 µs`, `1.25 ms`, `3.40 s`.
pub fn format_micros(us: u64) -> String {
    match us {
        0..=999 => format!("{us} µs"),
        1_000..=999_999 => format!("{} ms", three_digits(us as f64 / 1e3)),
        _ => format!("{} s", three_digits(us as f64 / 1e6)),
    }
}

/// A number with three significant digits (at most two decimals).
pub(crate) fn three_digits(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A share as a percentage with one decimal (`97.5 %`), `-` without a total.
pub fn format_rate(part: u64, total: u64) -> String {
    if total == 0 {
        "-".to_string()
    } else {
        format!("{:.1} %", part as f64 * 100.0 / total as f64)
    }
}

#[cfg(test)]
mod tests;

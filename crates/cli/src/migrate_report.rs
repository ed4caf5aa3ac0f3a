//! `tapesched migrate report --out DIR`: the migration's comparison report from the record
//! every process of the bridge flushes to (`migrations/0010_migration_log.sql`), written with
//! `tapesched-report`.
//!
//! `DIR/report.md` and `DIR/report.html` cover the whole migration: the counters of every
//! process per operation kind (latency distributions from the stored log-scale histograms, so
//! percentiles are within a bucket's width, at most 25 %), the divergences no rule ignores over
//! wall-clock time, and the latest stored divergences with both sides' answers (the ignored ones
//! apart). `DIR/window/` holds the same for the gate's window (the last `window` seconds).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use tapesched_migrate::{Divergence, DivergenceQuery, Histogram, OpCounts, Record, StoredDivergence};
use tapesched_report::bridge::BridgeReport;
use tapesched_report::{write_report, Bucket, LatencyDist, OpRow, Report, TimeBucket, Timeline};
use tapesched_scheduler::Error;

use crate::migrate::{open_target, TargetArgs};
use crate::table::utc;

/// Arguments of `migrate report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// The directory to write report.md, report.html and window/ into (created if needed).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// How many of the latest stored divergences to show with their answers.
    #[arg(long, default_value_t = 200, value_name = "N")]
    divergences: usize,
}

/// A side's latency distribution from a stored histogram, in the report's 1-2-5 buckets (each
/// log-scale bucket counted at its upper bound).
pub fn latency(h: &Histogram) -> LatencyDist {
    let bounds = LatencyDist::BOUNDS;
    let mut counts = vec![0u64; bounds.len() + 1];
    for (b, n) in &h.buckets {
        let high = Histogram::bounds(*b).1;
        counts[bounds.partition_point(|&x| x < high)] += n;
    }
    let buckets = counts
        .iter()
        .enumerate()
        .filter(|(_, &c)| c > 0)
        .map(|(i, &count)| Bucket {
            lower_micros: if i == 0 { 0 } else { bounds[i - 1] },
            upper_micros: bounds.get(i).copied().unwrap_or(u64::MAX),
            count,
        })
        .collect();
    LatencyDist {
        count: h.count,
        sampled: h.buckets.values().sum(),
        p50_micros: h.percentile(50.0).unwrap_or(0),
        p90_micros: h.percentile(90.0).unwrap_or(0),
        p99_micros: h.percentile(99.0).unwrap_or(0),
        max_micros: h.max_micros,
        buckets,
    }
}

fn row(op: &str, c: &OpCounts) -> OpRow {
    OpRow {
        op: op.to_string(),
        calls: c.calls,
        compared: c.compared,
        matched: c.matched,
        mismatched: c.mismatched,
        ignored: c.ignored.clone(),
        errors: vec![c.legacy_errors, c.target_errors],
        latency: vec![latency(&c.legacy_latency), latency(&c.target_latency)],
    }
}

/// The width (1, 2 or 5 times a power of ten seconds) that puts `lo..=hi` in at most
/// [`Timeline::MAX_BUCKETS`] slots.
fn slot_width(lo: i64, hi: i64) -> i64 {
    for power in 0..18u32 {
        for m in [1i64, 2, 5] {
            let w = m * 10i64.pow(power);
            if (hi - lo.div_euclid(w) * w) / w < Timeline::MAX_BUCKETS as i64 {
                return w;
            }
        }
    }
    i64::MAX / 4
}

/// Divergences no rule ignores over wall-clock time, from `since` on.
async fn timeline(record: &Record, since: Option<i64>) -> Result<Timeline, Error> {
    let Some((lo, hi)) = record.divergence_span().await? else {
        return Ok(Timeline { unit: "s (wall clock)".into(), ..Timeline::default() });
    };
    let lo = since.map_or(lo, |s| lo.max(s));
    if lo > hi {
        return Ok(Timeline { unit: "s (wall clock)".into(), ..Timeline::default() });
    }
    let width = slot_width(lo, hi);
    let first = lo.div_euclid(width) * width;
    let n = (hi - first) / width + 1;
    let mut buckets: Vec<TimeBucket> =
        (0..n).map(|i| TimeBucket { start: i * width, end: (i + 1) * width, per_op: BTreeMap::new() }).collect();
    for (slot, op, count) in record.divergence_timeline(width).await? {
        if slot < first {
            continue;
        }
        if let Some(b) = buckets.get_mut(((slot - first) / width) as usize) {
            *b.per_op.entry(op).or_default() += count;
        }
    }
    Ok(Timeline { unit: format!("s after {} (wall clock)", utc(first)), origin: first, buckets })
}

/// One report: `counters` per operation, the timeline, and the stored divergences given.
fn report(
    title: String,
    context: Vec<String>,
    counters: &BTreeMap<String, OpCounts>,
    timeline: Timeline,
    stored: &[StoredDivergence],
) -> Report {
    let (ignored, kept): (Vec<&StoredDivergence>, Vec<&StoredDivergence>) =
        stored.iter().partition(|s| s.divergence.ignored_by.is_some());
    let plain = |v: &[&StoredDivergence]| v.iter().map(|s| s.divergence.clone()).collect::<Vec<Divergence>>();
    let builder = BridgeReport::new(title, "objectstore", "postgres");
    let mut r = builder.from_parts(&BTreeMap::new(), &plain(&kept), &plain(&ignored));
    let when = |s: &StoredDivergence| {
        let repaired = match (s.repaired_at, &s.repair_note) {
            (Some(at), Some(note)) => format!("; repaired {}: {note}", utc(at)),
            (Some(at), None) => format!("; repaired {}", utc(at)),
            _ => "; not repaired".into(),
        };
        format!(
            "#{} {} by {} (its #{}, now = {}, stage {}{repaired})",
            s.id,
            utc(s.recorded_at),
            s.process,
            s.divergence.seq,
            s.divergence.at,
            s.divergence.stage
        )
    };
    for (m, s) in r.mismatches.iter_mut().zip(&kept) {
        m.when = when(s);
    }
    for (m, s) in r.ignored.iter_mut().zip(&ignored) {
        m.when = when(s);
    }
    r.context = context;
    r.ops = counters.iter().map(|(op, c)| row(op, c)).collect();
    r.timeline = timeline;
    r
}

/// Runs `migrate report`.
pub async fn run(a: ReportArgs) -> Result<u8, Error> {
    let db = open_target(&a.target, false).await?;
    let record = Record::of_postgres(&db);
    let stage = record.read_stage().await?;
    let gate = record.gate_config().await?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let since = now - gate.window_secs;
    let (unrepaired, all) = (record.count_divergences(true).await?, record.count_divergences(false).await?);
    let q = DivergenceQuery { limit: a.divergences, newest_first: true, ..DivergenceQuery::default() };
    let mut stored = record.divergences(&q).await?;
    stored.reverse();
    let verify = match record.last_verify().await? {
        None => "last verify: none".to_string(),
        Some(v) => format!("last verify: {}, {} items, {} difference(s)", utc(v.at), v.items, v.differences),
    };
    let context = |scope: String, shown: usize| {
        vec![
            format!("schema {}, stage {stage}, written {}", a.target.schema, utc(now)),
            scope,
            verify.clone(),
            format!("divergences no rule ignores: {all} stored, {unrepaired} not repaired; {shown} shown (the latest)"),
            "latencies from the stored log-scale histograms of every process (percentiles within 25 %)".into(),
        ]
    };
    let total = record.counters(None).await?;
    let whole = report(
        format!("Migration report: {}", a.target.schema),
        context("counters of every process over the whole migration".into(), stored.len()),
        &total,
        timeline(&record, None).await?,
        &stored,
    );
    let recent: Vec<StoredDivergence> = stored.iter().filter(|s| s.recorded_at >= since).cloned().collect();
    let window = report(
        format!("Migration report: {}, last {} s", a.target.schema, gate.window_secs),
        context(
            format!("counters of every process over the gate's window: since {} ({} s)", utc(since), gate.window_secs),
            recent.len(),
        ),
        &record.counters(Some(since)).await?,
        timeline(&record, Some(since)).await?,
        &recent,
    );
    let io = |e: std::io::Error| Error::invalid(format!("cannot write the report into {}: {e}", a.out.display()));
    let (md, html) = write_report(&a.out, &whole).map_err(io)?;
    let (wmd, whtml) = write_report(&a.out.join("window"), &window).map_err(io)?;
    for p in [md, html, wmd, whtml] {
        println!("wrote {}", p.display());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_histograms_become_the_reports_distributions() {
        let mut h = Histogram::default();
        for us in [3u64, 40, 40, 900, 1500, 70_000] {
            h.add(us);
        }
        let d = latency(&h);
        assert_eq!((d.count, d.sampled, d.max_micros), (6, 6, 70_000));
        assert_eq!(d.buckets.iter().map(|b| b.count).sum::<u64>(), 6);
        assert!(d.buckets.windows(2).all(|w| w[0].upper_micros <= w[1].lower_micros));
        assert!((40..=50).contains(&d.p50_micros), "{}", d.p50_micros);
        assert_eq!(d.p99_micros, 70_000);
        assert_eq!(slot_width(0, 39), 1);
        assert_eq!(slot_width(0, 40), 2);
        assert_eq!(slot_width(1000, 5000), 200);
    }
}

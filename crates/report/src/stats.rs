//! The arithmetic of a report: latency percentiles and histograms, and the mismatch timeline.
//!
//! Percentiles are nearest-rank over the samples given (the p99 of 200 samples is the
//! second-slowest). Histograms use fixed 1-2-5 bucket bounds in microseconds
//! ([`LatencyDist::BOUNDS`]), the same for every side, so two sides' histograms overlay.

use std::collections::BTreeMap;

/// One histogram bucket: the samples in `(lower_micros, upper_micros]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Exclusive lower bound, microseconds.
    pub lower_micros: u64,
    /// Inclusive upper bound, microseconds.
    pub upper_micros: u64,
    /// Samples in the bucket.
    pub count: u64,
}

/// The latency distribution of one side of one operation kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LatencyDist {
    /// Calls measured (may exceed `sampled` when only the last samples were kept).
    pub count: u64,
    /// Samples the percentiles and the histogram were computed from.
    pub sampled: u64,
    /// Median, microseconds.
    pub p50_micros: u64,
    /// 90th percentile, microseconds.
    pub p90_micros: u64,
    /// 99th percentile, microseconds.
    pub p99_micros: u64,
    /// The longest call measured, microseconds.
    pub max_micros: u64,
    /// The histogram of the samples, only non-empty buckets, in increasing order.
    pub buckets: Vec<Bucket>,
}

impl LatencyDist {
    /// Upper bounds of the histogram buckets, microseconds (1-2-5 steps from 1 µs to 100 s; a
    /// last bucket takes anything longer).
    pub const BOUNDS: [u64; 25] = [
        1,
        2,
        5,
        10,
        20,
        50,
        100,
        200,
        500,
        1_000,
        2_000,
        5_000,
        10_000,
        20_000,
        50_000,
        100_000,
        200_000,
        500_000,
        1_000_000,
        2_000_000,
        5_000_000,
        10_000_000,
        20_000_000,
        50_000_000,
        100_000_000,
    ];

    /// The distribution of `samples` (microseconds, any order): count, percentiles, maximum and
    /// histogram all from the samples.
    pub fn from_samples(samples: &[u64]) -> LatencyDist {
        let mut sorted = samples.to_vec();
        sorted.sort_unstable();
        let mut counts = vec![0u64; Self::BOUNDS.len() + 1];
        for &s in &sorted {
            counts[Self::BOUNDS.partition_point(|&b| b < s)] += 1;
        }
        let buckets = counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &count)| Bucket {
                lower_micros: if i == 0 { 0 } else { Self::BOUNDS[i - 1] },
                upper_micros: Self::BOUNDS.get(i).copied().unwrap_or(u64::MAX),
                count,
            })
            .collect();
        let n = sorted.len() as u64;
        LatencyDist {
            count: n,
            sampled: n,
            p50_micros: percentile(&sorted, 50.0),
            p90_micros: percentile(&sorted, 90.0),
            p99_micros: percentile(&sorted, 99.0),
            max_micros: sorted.last().copied().unwrap_or(0),
            buckets,
        }
    }

    /// The distribution of the kept `samples` of `count` calls whose longest took `max_micros`
    /// (percentiles and histogram over the samples; count and maximum over every call).
    pub fn from_kept_samples(count: u64, max_micros: u64, samples: &[u64]) -> LatencyDist {
        let mut d = LatencyDist::from_samples(samples);
        d.count = count.max(d.sampled);
        d.max_micros = d.max_micros.max(max_micros);
        d
    }
}

/// The nearest-rank percentile `p` (0 < p <= 100) of sorted samples; 0 without samples.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Mismatches counted in one time bucket `[start, end)`, per operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimeBucket {
    /// Start, inclusive, relative to [`Timeline::origin`].
    pub start: i64,
    /// End, exclusive, relative to [`Timeline::origin`].
    pub end: i64,
    /// Mismatches per operation kind.
    pub per_op: BTreeMap<String, u64>,
}

impl TimeBucket {
    /// Mismatches in the bucket, every operation together.
    pub fn total(&self) -> u64 {
        self.per_op.values().sum()
    }
}

/// Mismatches over time: consecutive buckets of equal width, per operation kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Timeline {
    /// The time unit and clock (`s of scenario time`, `s on the caller's clock`).
    pub unit: String,
    /// The time bucket starts are relative to (0 for scenario offsets).
    pub origin: i64,
    /// The buckets, from the first mismatch's to the last one's (empty: no mismatch).
    pub buckets: Vec<TimeBucket>,
}

impl Timeline {
    /// At most this many buckets by default.
    pub const MAX_BUCKETS: usize = 40;

    /// The timeline of `events` (time, operation), relative to `origin` (the earliest event
    /// when `None`; a given origin is also where the buckets start, unless an event is
    /// earlier), in at most `max_buckets` buckets whose width is 1, 2 or 5 times a power
    /// of ten.
    pub fn from_events(
        unit: impl Into<String>,
        origin: Option<i64>,
        events: impl IntoIterator<Item = (i64, String)>,
        max_buckets: usize,
    ) -> Timeline {
        let events: Vec<(i64, String)> = events.into_iter().collect();
        let given = origin.is_some();
        let origin = origin.or_else(|| events.iter().map(|e| e.0).min()).unwrap_or(0);
        let mut timeline = Timeline { unit: unit.into(), origin, buckets: vec![] };
        let (Some(lo), Some(hi)) =
            (events.iter().map(|e| e.0 - origin).min(), events.iter().map(|e| e.0 - origin).max())
        else {
            return timeline;
        };
        // A given origin is where the axis starts (a scenario's time 0).
        let lo = if given { lo.min(0) } else { lo };
        let max_buckets = max_buckets.max(1) as i64;
        let mut width = 1i64;
        'widths: for power in 0..18 {
            for m in [1, 2, 5] {
                width = m * 10i64.pow(power);
                if (hi - lo.div_euclid(width) * width) / width < max_buckets {
                    break 'widths;
                }
            }
        }
        let first = lo.div_euclid(width) * width;
        let n = (hi - first) / width + 1;
        timeline.buckets = (0..n)
            .map(|i| TimeBucket { start: first + i * width, end: first + (i + 1) * width, per_op: BTreeMap::new() })
            .collect();
        for (t, op) in events {
            let i = ((t - origin - first) / width) as usize;
            *timeline.buckets[i].per_op.entry(op).or_default() += 1;
        }
        timeline
    }

    /// The operation kinds that appear, sorted.
    pub fn ops(&self) -> Vec<String> {
        let mut ops: Vec<String> = self.buckets.iter().flat_map(|b| b.per_op.keys().cloned()).collect();
        ops.sort();
        ops.dedup();
        ops
    }

    /// Mismatches over the whole timeline.
    pub fn total(&self) -> u64 {
        self.buckets.iter().map(TimeBucket::total).sum()
    }
}

//! A mergeable latency histogram with log-scale buckets.
//!
//! Each power of two of microseconds is split into four linear buckets, so a bucket is at most
//! 25 % wide relative to its lower bound and the whole range of `u64` needs 252 buckets
//! (only the non-empty ones are stored). Histograms of different processes and flush windows add
//! up bucket by bucket ([`Histogram::merge`]), and percentiles are computed from the merged
//! buckets ([`Histogram::percentile`]): that is what lets `tapesched migrate status` show a p99
//! over every process of a migration from counters stored in the database.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Latencies in log-scale buckets, with their count, total and maximum (microseconds).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// Values added.
    pub count: u64,
    /// Their total, microseconds (saturating).
    pub total_micros: u64,
    /// The largest, microseconds.
    pub max_micros: u64,
    /// Non-empty buckets: bucket index ([`Histogram::bucket_of`]) -> values in it.
    pub buckets: BTreeMap<u16, u64>,
}

/// Linear sub-buckets per power of two.
const SUB: u32 = 4;

impl Histogram {
    /// The bucket of a value: 0..=3 for themselves, then four buckets per power of two.
    pub fn bucket_of(micros: u64) -> u16 {
        if micros < 4 {
            return micros as u16;
        }
        let e = 63 - micros.leading_zeros();
        // The two bits after the leading one.
        let sub = (micros >> (e - 2)) & 3;
        (SUB * (e - 1) + sub as u32) as u16
    }

    /// The smallest and largest value of a bucket.
    pub fn bounds(bucket: u16) -> (u64, u64) {
        if bucket < 4 {
            return (u64::from(bucket), u64::from(bucket));
        }
        let (e, sub) = (u32::from(bucket) / SUB + 1, u128::from(u32::from(bucket) % SUB));
        let low = (4 + sub) << (e - 2);
        let high = ((5 + sub) << (e - 2)) - 1;
        (low.min(u128::from(u64::MAX)) as u64, high.min(u128::from(u64::MAX)) as u64)
    }

    /// Adds one value.
    pub fn add(&mut self, micros: u64) {
        self.count += 1;
        self.total_micros = self.total_micros.saturating_add(micros);
        self.max_micros = self.max_micros.max(micros);
        *self.buckets.entry(Self::bucket_of(micros)).or_default() += 1;
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        self.count += other.count;
        self.total_micros = self.total_micros.saturating_add(other.total_micros);
        self.max_micros = self.max_micros.max(other.max_micros);
        for (b, n) in &other.buckets {
            *self.buckets.entry(*b).or_default() += n;
        }
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The mean, microseconds (None when empty).
    pub fn mean(&self) -> Option<u64> {
        (self.count > 0).then(|| self.total_micros / self.count)
    }

    /// The `p`-th percentile (`p` in 0..=100), microseconds: the upper bound of the bucket that
    /// holds the value of that rank (never above the maximum seen), so at most 25 % above the
    /// exact value. None when empty.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        let count: u64 = self.buckets.values().sum();
        if count == 0 {
            return None;
        }
        let rank = ((p.clamp(0.0, 100.0) / 100.0) * count as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(Self::bounds(*b).1.min(self.max_micros.max(Self::bounds(*b).0)));
            }
        }
        Some(self.max_micros)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_hold_their_values() {
        let mut expected_low = 0;
        for b in 0..=251u16 {
            let (low, high) = Histogram::bounds(b);
            assert_eq!(low, expected_low, "bucket {b}");
            assert!(high >= low);
            assert_eq!(Histogram::bucket_of(low), b);
            assert_eq!(Histogram::bucket_of(high), b);
            if high == u64::MAX {
                break;
            }
            expected_low = high + 1;
        }
        for v in [1u64, 2, 3, 5, 7, 100, 1000, 123_456, u64::MAX] {
            let (low, high) = Histogram::bounds(Histogram::bucket_of(v));
            assert!(low <= v && v <= high, "{v}");
            assert!(high - low <= low / 4 + 1, "{v}: at most 25 % wide");
        }
    }

    #[test]
    fn merged_histograms_give_the_percentiles_of_all_values() {
        let (mut a, mut b, mut all) = (Histogram::default(), Histogram::default(), Histogram::default());
        for v in 1..=1000u64 {
            if v % 3 == 0 { &mut a } else { &mut b }.add(v);
            all.add(v);
        }
        a.merge(&b);
        assert_eq!(a, all);
        let p50 = a.percentile(50.0).unwrap();
        let p99 = a.percentile(99.0).unwrap();
        assert!((500..=625).contains(&p50), "{p50}");
        assert!((990..=1000).contains(&p99), "{p99}: never above the maximum");
        assert_eq!(a.percentile(100.0), Some(1000));
        assert_eq!(a.mean(), Some(500));
        assert_eq!(Histogram::default().percentile(50.0), None);
        let json = serde_json::to_value(&a).unwrap();
        assert_eq!(serde_json::from_value::<Histogram>(json).unwrap(), a);
    }
}

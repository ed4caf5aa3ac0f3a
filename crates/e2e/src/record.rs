//! Pieces of the [`E2eRecord`](tapesched_report::e2e::E2eRecord): latency summaries from the
//! measured latencies, and what a [`Sample`] counts of queues and drives (lockstep and processes
//! mode alike).

use tapesched_report::e2e::{LatencySummary, Sample};
use tapesched_scheduler::db::MountInfo;
use tapesched_scheduler::types::{DriveStatus, MountType};

/// Adds the jobs queued in `info` (not yet on a drive) to `s`, archive or retrieve.
pub fn add_queued(s: &mut Sample, info: &MountInfo) {
    for pm in &info.potential_mounts {
        match pm.mount_type {
            MountType::Retrieve => s.queued_retrieve += pm.files_queued,
            _ => s.queued_archive += pm.files_queued,
        }
    }
}

/// Counts a drive in `s`: up unless Down or `stopped`; busy while a tape is being mounted, used
/// or unloaded.
pub fn add_drive(s: &mut Sample, status: DriveStatus, stopped: bool) {
    if status != DriveStatus::Down && !stopped {
        s.drives_up += 1;
    }
    if matches!(
        status,
        DriveStatus::Starting
            | DriveStatus::Mounting
            | DriveStatus::Transferring
            | DriveStatus::Unloading
            | DriveStatus::CleaningUp
    ) {
        s.drives_busy += 1;
    }
}

/// The summary of latencies in seconds: percentiles by rank, and a histogram of power-of-two
/// buckets (1 s, 2 s, 4 s, ...; the first holds everything up to 1 s), empty buckets left out.
pub fn latency_summary(values: &mut [f64]) -> LatencySummary {
    if values.is_empty() {
        return LatencySummary::default();
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let rank = |p: f64| values[((p * n as f64).ceil() as usize).clamp(1, n) - 1];
    let mut histogram: Vec<(f64, u64)> = Vec::new();
    for &v in values.iter() {
        let mut bound = 1.0;
        while bound < v {
            bound *= 2.0;
        }
        match histogram.last_mut() {
            Some((b, c)) if *b == bound => *c += 1,
            _ => histogram.push((bound, 1)),
        }
    }
    LatencySummary {
        count: n as u64,
        p50_s: rank(0.5),
        p90_s: rank(0.9),
        p99_s: rank(0.99),
        max_s: values[n - 1],
        histogram,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_buckets() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        v.reverse();
        let s = latency_summary(&mut v);
        assert_eq!((s.count, s.p50_s, s.p90_s, s.p99_s, s.max_s), (100, 50.0, 90.0, 99.0, 100.0));
        assert_eq!(s.histogram.first(), Some(&(1.0, 1)));
        assert_eq!(s.histogram.last(), Some(&(128.0, 36)));
        assert_eq!(s.histogram.iter().map(|b| b.1).sum::<u64>(), 100);
        assert_eq!(latency_summary(&mut []), LatencySummary::default());
    }
}

//! What both benchmarks share: rates, medians, percentiles, ratios, the process's memory.

use std::time::Duration;

use serde_json::{json, Value};

/// `n` per second over `d`, rounded.
pub fn rate(n: u64, d: Duration) -> f64 {
    (n as f64 / d.as_secs_f64()).round()
}

/// The median of the rounds' rates.
pub fn median(rates: &[f64]) -> f64 {
    let mut sorted = rates.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    sorted.get(sorted.len() / 2).copied().unwrap_or(0.0)
}

/// `a / b` to three decimals (0 when `b` is 0). For rates: the operation's rate over the
/// substrate's; for latencies pass (substrate time, operation time), which is the same thing.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        (a / b * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

/// Milliseconds, as samples are kept.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Latency samples in milliseconds.
#[derive(Debug, Default, Clone)]
pub struct Samples(Vec<f64>);

impl Samples {
    /// Adds one.
    pub fn push(&mut self, d: Duration) {
        self.0.push(ms(d));
    }
    /// The `p` quantile (nearest rank), to the microsecond; 0 without samples.
    pub fn pct(&self, p: f64) -> f64 {
        let mut sorted = self.0.clone();
        sorted.sort_by(f64::total_cmp);
        if sorted.is_empty() {
            return 0.0;
        }
        let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        (sorted[i] * 1000.0).round() / 1000.0
    }
    /// `{"p50": .., "p99": ..}`.
    pub fn json(&self) -> Value {
        json!({"p50": self.pct(0.5), "p99": self.pct(0.99)})
    }
    /// `{"p50": .., "max": ..}` (for a handful of samples).
    pub fn json_max(&self) -> Value {
        json!({"p50": self.pct(0.5), "max": self.pct(1.0)})
    }
}

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// Peak resident memory of this process, in MiB (`VmHWM`), since it started or since the last
/// [`reset_peak_rss`].
pub fn peak_rss_mib() -> Option<f64> {
    status_kib("VmHWM:").map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0)
}

/// Resident memory of this process now, in MiB (`VmRSS`).
pub fn rss_mib() -> Option<f64> {
    status_kib("VmRSS:").map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0)
}

/// Starts a new peak-RSS period (`VmHWM` restarts from the current RSS; Linux 4.0 and later),
/// after handing the heap's free memory back to the system (glibc keeps it otherwise, and
/// what an earlier part of the run freed would count in the new period). False where the kernel
/// does not allow it.
pub fn reset_peak_rss() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: malloc_trim only returns free heap pages to the system; it takes no pointer.
        unsafe {
            malloc_trim(0);
        }
    }
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Peak resident memory of the process: over the whole run (`before_reset`: the peak read just
/// before [`reset_peak_rss`], or `None` if there was no reset) and since the reset.
pub fn memory_json(before_reset: Option<f64>, reset: bool) -> Value {
    let now = peak_rss_mib();
    let whole = match (before_reset, now) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    json!({
        "peak_rss_mib_whole_run": whole,
        "peak_rss_mib_during_decisions": if reset { now } else { None },
        "rss_mib_at_end": rss_mib(),
        "note": "this benchmark process only (VmHWM of /proc/self/status); the server's memory is not counted",
    })
}

/// The machine's CPU time so far (busy, total), in clock ticks, from `/proc/stat`: what the
/// benchmark's process and the servers used together (all on this machine), and anything else.
pub fn cpu_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    Some((total - idle, total))
}

/// The share of the machine's CPU time that was busy between two [`cpu_ticks`] readings.
pub fn busy(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> Option<f64> {
    let ((b0, t0), (b1, t1)) = (before?, after?);
    (t1 > t0).then(|| ((b1 - b0) as f64 / (t1 - t0) as f64 * 100.0).round() / 100.0)
}

//! What both benchmarks share: rates, the number of rounds and their median.

use std::time::Duration;

/// Claim and requeue rounds over the same jobs (their medians are reported).
pub const ROUNDS: u64 = 3;

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

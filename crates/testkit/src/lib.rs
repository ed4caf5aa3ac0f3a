//! Test-only pieces shared by the tests and benchmarks.
//!
//! - the servers and the service finder of `tapesched-services`, re-exported (tests call
//!   `tapesched_testkit::postgres_url()`, `RedisServer::start`, `unique_name`, ...);
//! - [`SeededRng`], for tests (and the end-to-end workloads) that replay the same random choices;
//! - [`workload`]: the request and mount builders and the outage-riding producer;
//! - [`catalogue`]: a catalogue wrapper that runs a test's hook before each edit.

#![warn(missing_docs)]

pub use tapesched_services::*;

pub mod catalogue;
pub mod workload;

/// A seeded pseudo-random generator (splitmix64) for tests that must replay the same choices:
/// same seed, same sequence, on every machine.
#[derive(Debug, Clone)]
pub struct SeededRng(pub u64);

impl SeededRng {
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// The next value below `n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    /// Uniform in (0, 1].
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }
    /// A standard normal value (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

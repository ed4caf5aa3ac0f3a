//! [`SimClock`]: the virtual clock the simulated library runs on, in milliseconds.
//!
//! It implements the scheduler's [`Clock`] (whole seconds), so a daemon can hand the same clock to
//! the scheduler and to the library: every "now" of a simulated run then comes from one place.
//! The clock only moves forward, when the simulator finishes an operation (auto-advance) or when
//! a driver moves it ([`SimClock::advance_to_ms`], [`SimClock::advance_ms`]).

use std::sync::atomic::{AtomicI64, Ordering};
use tapesched_scheduler::clock::{Clock, Timestamp};

/// A virtual clock in milliseconds since the Unix epoch that only moves forward.
#[derive(Debug, Default)]
pub struct SimClock(AtomicI64);

impl SimClock {
    /// A clock standing at `t` seconds.
    pub fn new(t: Timestamp) -> Self {
        SimClock(AtomicI64::new(t.saturating_mul(1000)))
    }

    /// The time in milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }

    /// Moves the clock to `t_ms` if that is later than now; never moves it back.
    pub fn advance_to_ms(&self, t_ms: i64) {
        self.0.fetch_max(t_ms, Ordering::SeqCst);
    }

    /// Moves the clock forward by `d_ms` (negative values are ignored).
    pub fn advance_ms(&self, d_ms: i64) {
        self.0.fetch_add(d_ms.max(0), Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        self.now_ms().div_euclid(1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moves_forward_only_and_reads_in_seconds() {
        let c = SimClock::new(1_000);
        assert_eq!((c.now(), c.now_ms()), (1_000, 1_000_000));
        c.advance_ms(1_999);
        assert_eq!(c.now(), 1_001);
        c.advance_to_ms(5);
        assert_eq!(c.now_ms(), 1_001_999);
        c.advance_ms(-10);
        assert_eq!(c.now_ms(), 1_001_999);
    }
}

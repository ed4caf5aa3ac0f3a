//! Injected clocks: every "now" in tapesched comes from a [`Clock`].
//!
//! Scenario runs and tests use [`ManualClock`]; only a production process started from the command
//! line uses [`SystemClock`], the one place that reads the wall clock.

use std::sync::atomic::{AtomicI64, Ordering};

/// Seconds since the Unix epoch, the time unit of the whole scheduler.
pub type Timestamp = i64;

/// A source of "now".
pub trait Clock: Send + Sync {
    /// The current time in seconds since the Unix epoch.
    fn now(&self) -> Timestamp;
}

/// A clock that only moves when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock standing at `t`.
    pub fn new(t: Timestamp) -> Self {
        ManualClock(AtomicI64::new(t))
    }
    /// Moves the clock to `t`.
    pub fn set(&self, t: Timestamp) {
        self.0.store(t, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        self.0.load(Ordering::SeqCst)
    }
}

/// The wall clock, for production processes only.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as Timestamp)
            .unwrap_or(0)
    }
}

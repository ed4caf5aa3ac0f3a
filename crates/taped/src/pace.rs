//! Pacing on a scaled clock: the processes mode of the end-to-end harness runs the tape daemon,
//! the producers and the maintenance loops as separate processes on one
//! [`ScaledClock`] (simulated now = start + (wall now - origin) x factor). A [`Pacer`] is what
//! those drivers wait on: "now" in simulated milliseconds, and a wait until a simulated instant.
//! [`ScaledClock`] waits on the wall clock (a tokio sleep, cancellable by dropping the future);
//! tests use a pacer that jumps instead, so that nothing sleeps.

use async_trait::async_trait;
use tapesched_scheduler::clock::ScaledClock;

/// A simulated timeline that can be waited on.
#[async_trait]
pub trait Pacer: Send + Sync {
    /// The simulated now, milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;
    /// Returns once the simulated now has reached `t_ms` (at once if it has). Dropping the
    /// future cancels the wait.
    async fn wait_until_ms(&self, t_ms: i64);
}

#[async_trait]
impl Pacer for ScaledClock {
    fn now_ms(&self) -> i64 {
        ScaledClock::now_ms(self)
    }

    async fn wait_until_ms(&self, t_ms: i64) {
        while ScaledClock::now_ms(self) < t_ms {
            // At least 1 ms: the wall instant is rounded, so a zero wait could spin.
            let wait = self.wall_until(t_ms).max(std::time::Duration::from_millis(1));
            tokio::time::sleep(wait).await;
        }
    }
}

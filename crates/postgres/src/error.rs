//! Database failures mapped onto the scheduler's error kinds, and the bounded retry loop.
//!
//! - connection failures, pool time-outs, a server shutting down: `unavailable`;
//! - unique violations: `conflict`;
//! - serialization failures and deadlocks: retried (a few times, with a short back-off), then
//!   `conflict`;
//! - a lock wait beyond the configured `lock_timeout`: `unavailable`;
//! - text PostgreSQL cannot store (a NUL byte): `invalid_argument`.
//!
//! A failure before `COMMIT` leaves nothing behind (the server rolls the transaction back), so
//! connection failures there are retried too; a failure of `COMMIT` itself has an unknown outcome
//! and is never retried.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tapesched_scheduler::{Error, ErrorKind};

/// How an attempt failed.
#[derive(Debug)]
pub enum Fail {
    /// Nothing was applied and trying again may work; the error is returned if the attempts run out.
    Retry(Error),
    /// Final.
    Fatal(Error),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Fatal(e)
    }
}

impl From<sqlx::Error> for Fail {
    fn from(e: sqlx::Error) -> Self {
        classify(e)
    }
}

/// The SQLSTATE of a database error, if it is one.
pub fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.to_string()),
        _ => None,
    }
}

/// Maps a database error onto an error kind, saying whether the operation may be tried again.
pub fn classify(e: sqlx::Error) -> Fail {
    let message = e.to_string();
    match &e {
        sqlx::Error::Database(_) => {
            let code = sqlstate(&e).unwrap_or_default();
            match code.as_str() {
                "40001" | "40P01" => {
                    Fail::Retry(Error::conflict(format!("concurrent update, gave up retrying: {message}")))
                }
                "23505" => Fail::Fatal(Error::conflict(message)),
                "55P03" => Fail::Fatal(Error::unavailable(format!("lock wait timed out: {message}"))),
                "22021" | "22P05" => Fail::Fatal(Error::invalid(format!("text the database cannot store: {message}"))),
                "53300" | "57P01" | "57P02" | "57P03" => Fail::Retry(Error::unavailable(message)),
                c if c.starts_with("08") => Fail::Retry(Error::unavailable(message)),
                _ => Fail::Fatal(Error::internal(format!("database error: {message}"))),
            }
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => Fail::Retry(Error::unavailable(format!("database unavailable: {message}"))),
        _ => Fail::Fatal(Error::internal(format!("database error: {message}"))),
    }
}

/// Maps an error of `COMMIT`: only a serialization failure or deadlock (the transaction was
/// rolled back) may be retried; anything else leaves the outcome unknown.
pub fn commit_fail(e: sqlx::Error) -> Fail {
    match classify(e) {
        Fail::Retry(err) if err.kind == ErrorKind::Conflict => Fail::Retry(err),
        Fail::Retry(err) => Fail::Fatal(Error::unavailable(format!(
            "the connection failed while committing; the operation may or may not have been applied: {}",
            err.message
        ))),
        other => other,
    }
}

/// Maps a database error to a final error (no retry).
pub fn fatal(e: sqlx::Error) -> Error {
    match classify(e) {
        Fail::Retry(e) | Fail::Fatal(e) => e,
    }
}

/// Runs `attempt` until it succeeds, fails for good, or `max_attempts` attempts were made.
pub async fn retry<T, F, Fut>(max_attempts: u32, mut attempt: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Fail>>,
{
    let mut n = 0u32;
    loop {
        n += 1;
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(Fail::Fatal(e)) => return Err(e),
            Err(Fail::Retry(e)) => {
                if n >= max_attempts.max(1) {
                    return Err(e);
                }
                tracing::debug!(attempt = n, error = %e, "retrying a database operation");
                tokio::time::sleep(backoff(n, e.kind)).await;
            }
        }
    }
}

fn backoff(n: u32, kind: ErrorKind) -> Duration {
    let base = if kind == ErrorKind::Unavailable { 100_000u64 } else { 2_000u64 };
    Duration::from_micros(base.saturating_mul(1 << n.min(6)) + jitter_micros())
}

/// Up to 5 ms, different for each retry of each process: enough to break lock-step retries of
/// competing sessions, without reading the wall clock (every time a scenario sees is injected).
fn jitter_micros() -> u64 {
    static RETRIES: AtomicU64 = AtomicU64::new(0);
    let n = RETRIES.fetch_add(1, Ordering::Relaxed) ^ (u64::from(std::process::id()) << 32);
    // SplitMix64's finaliser: consecutive inputs give unrelated outputs.
    let mut z = n.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) % 5_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_attempts_and_jitter_spreads_retries() {
        let jitters: std::collections::BTreeSet<u64> = (0..100).map(|_| jitter_micros()).collect();
        assert!(jitters.iter().all(|j| *j < 5_000));
        assert!(jitters.len() > 90, "retries of one process spread out: {} distinct of 100", jitters.len());
        // Attempt n waits base * 2^n plus less than 5 ms, with the exponent capped at 6.
        let wait = |n, kind| backoff(n, kind).as_micros() as u64;
        assert!((200_000..205_000).contains(&wait(1, ErrorKind::Unavailable)));
        assert!((4_000..9_000).contains(&wait(1, ErrorKind::Conflict)));
        assert!((6_400_000..6_405_000).contains(&wait(9, ErrorKind::Unavailable)));
    }
}

//! Database failures mapped onto the scheduler's error kinds, and the bounded retry loop.
//!
//! - connection failures, pool time-outs, a server shutting down: `unavailable`;
//! - unique violations: `conflict`;
//! - serialization failures and deadlocks: retried (a few times, with a short back-off), then
//!   `conflict`;
//! - a lock wait beyond the configured `lock_timeout`: `unavailable`;
//! - text PostgreSQL cannot store (a NUL byte): `invalid_argument`;
//! - a refused login (unknown role, wrong password), a missing database or schema, a missing
//!   privilege: `invalid_argument` with the server's message (what the URL names is wrong);
//! - a server out of disk, memory or other resources: `unavailable`;
//! - anything else: `internal`, naming the SQLSTATE.
//!
//! The database error is kept as the answer's source.
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
/// The error becomes the answer's [source](std::error::Error::source); a server's error is
/// described by its own message (without the server's source line sqlx's text appends).
pub fn classify(e: sqlx::Error) -> Fail {
    let (retry, error) = describe(&e);
    let error = error.caused_by(e);
    if retry {
        Fail::Retry(error)
    } else {
        Fail::Fatal(error)
    }
}

/// Whether `e` may be retried, and the error it maps onto (without its source).
fn describe(e: &sqlx::Error) -> (bool, Error) {
    let sqlx::Error::Database(db) = e else {
        return match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Protocol(_) => (true, Error::unavailable(format!("database unavailable: {e}"))),
            _ => (false, Error::internal(format!("database error: {e}"))),
        };
    };
    let code = db.code().map(|c| c.to_string()).unwrap_or_default();
    let message = db.message();
    match server_error(&code) {
        Some((retry, kind, context)) => (retry, Error::new(kind, format!("{context}{message}"))),
        None => (false, Error::internal(format!("database error {code}: {message}"))),
    }
}

/// What a server's SQLSTATE means here: (retry?, kind, context put before the server's message);
/// `None`: a failure tapesched does not expect (`internal`).
fn server_error(code: &str) -> Option<(bool, ErrorKind, &'static str)> {
    use ErrorKind::*;
    Some(match code {
        "40001" | "40P01" => (true, Conflict, "concurrent update, gave up retrying: "),
        "23505" => (false, Conflict, ""),
        "55P03" => (false, Unavailable, "lock wait timed out: "),
        "22021" | "22P05" => (false, InvalidArgument, "text the database cannot store: "),
        // Too many connections, the server shutting down, crashing or starting up.
        "53300" | "57P01" | "57P02" | "57P03" => (true, Unavailable, ""),
        // Out of disk, memory or another resource: the server cannot work now.
        c if c.starts_with("53") => (false, Unavailable, "database server out of resources: "),
        c if c.starts_with("08") => (true, Unavailable, ""),
        // What the URL names is refused or missing: a role, its password, the database, a
        // schema, or the role lacks a privilege (e.g. to create the schema).
        "28000" | "28P01" => (false, InvalidArgument, "database login refused: "),
        "3D000" => (false, InvalidArgument, "database: "),
        "3F000" => (false, InvalidArgument, "database schema: "),
        "42501" => (false, InvalidArgument, "database privilege missing: "),
        _ => return None,
    })
}

/// Maps an error of `COMMIT`: only a serialization failure or deadlock (the transaction was
/// rolled back) may be retried; anything else leaves the outcome unknown.
pub fn commit_fail(e: sqlx::Error) -> Fail {
    match classify(e) {
        Fail::Retry(err) if err.kind == ErrorKind::Conflict => Fail::Retry(err),
        Fail::Retry(err) => {
            let message = format!(
                "the connection failed while committing; the operation may or may not have been applied: {}",
                err.message
            );
            Fail::Fatal(err.rephrased(ErrorKind::Unavailable, message))
        }
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
    fn server_errors_are_named_by_their_sqlstate() {
        let kind = |code| server_error(code).map(|(retry, kind, _)| (retry, kind));
        use ErrorKind::*;
        assert_eq!(kind("28000"), Some((false, InvalidArgument)), "role does not exist");
        assert_eq!(kind("28P01"), Some((false, InvalidArgument)), "password authentication failed");
        assert_eq!(kind("3D000"), Some((false, InvalidArgument)), "database does not exist");
        assert_eq!(kind("3F000"), Some((false, InvalidArgument)), "schema does not exist");
        assert_eq!(kind("42501"), Some((false, InvalidArgument)), "permission denied");
        assert_eq!(kind("53100"), Some((false, Unavailable)), "disk full");
        assert_eq!(kind("53300"), Some((true, Unavailable)), "too many connections");
        assert_eq!(kind("57P01"), Some((true, Unavailable)), "admin shutdown");
        assert_eq!(kind("08006"), Some((true, Unavailable)), "connection failure");
        assert_eq!(kind("40001"), Some((true, Conflict)), "serialization failure");
        assert_eq!(kind("23505"), Some((false, Conflict)), "unique violation");
        assert_eq!(kind("55P03"), Some((false, Unavailable)), "lock not available");
        assert_eq!(kind("22P05"), Some((false, InvalidArgument)), "untranslatable character");
        assert_eq!(kind("42P01"), None, "undefined table: internal");
        assert_eq!(kind(""), None);
    }

    #[test]
    fn other_failures_keep_their_cause() {
        use std::error::Error as _;
        let Fail::Retry(e) = classify(sqlx::Error::PoolTimedOut) else { panic!("a pool time-out is retried") };
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.source().is_some_and(|s| s.downcast_ref::<sqlx::Error>().is_some()), "{e:?}");
        let Fail::Fatal(e) = commit_fail(sqlx::Error::PoolTimedOut) else { panic!("a failed COMMIT is final") };
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.message.contains("may or may not have been applied"), "{e}");
        assert!(e.source().is_some(), "the cause survives the rewording");
    }

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

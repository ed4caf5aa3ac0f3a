//! The stage the bridge routes by, read from the migration record every process shares.
//!
//! [`RecordStage`] is the bridge's [`StageSource`] for processes of a real migration: it reads
//! the stage from the record in the target database (`tapesched migrate stage` writes it) and
//! keeps it for at most `refresh` (default 5 s), so every process follows a stage change within
//! that bound, and learns with it whether the backfill has completed (the target then holds
//! everything legacy does; a return to `off` clears that). The refresh is a process-local timer
//! (it decides when to read, never what a decision is); scenario runs use a fixed stage.
//!
//! **The record out of reach.** The record lives in the target database, which is the side a
//! migration must survive losing. A read that fails, or gets no answer within the read timeout
//! (default 1 s), does not fail the operation while the last stage read successfully is younger
//! than the stale limit (default 60 s): the process keeps routing by that stage, says so once
//! per failed read as a warning, and tries again one refresh later (callers are not held up by
//! every operation trying again). Past the stale limit an operation fails: authority is then
//! unknown. So a process follows a stage change within `refresh` while the record can be read,
//! and within the stale limit plus `refresh` otherwise (a change it cannot see is one the
//! bridge's fences were made for: mount ids and jobs are fenced whatever the delay). Processes
//! should read it over connections of their own (`Record::connect`), so that the stage read is
//! not queued behind the target's own operations when the target is slow.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tapesched_bridge::StageSource;
use tapesched_scheduler::{Error, Result};

use crate::record::Record;
use crate::stage::Stage;

/// How long a process keeps the stage it read, at most, by default.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(5);

/// How long after its last successful read a process keeps routing by the stage it knows while
/// the record cannot be read, by default.
pub const DEFAULT_STALE_LIMIT: Duration = Duration::from_secs(60);

/// How long one read of the record may take before it counts as failed, by default.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// One read of what the source keeps: the stage and whether the backfill has completed.
#[async_trait]
trait ReadStage: Send + Sync {
    async fn read(&self) -> Result<(Stage, bool)>;
}

#[async_trait]
impl ReadStage for Record {
    async fn read(&self) -> Result<(Stage, bool)> {
        let stage = self.read_stage().await?;
        Ok((stage, self.checkpoint().await?.done))
    }
}

/// What the source knows: the stage, when it was last read successfully, when a read was last
/// tried.
#[derive(Clone, Copy)]
struct Known {
    stage: Stage,
    read_at: Option<Instant>,
    tried_at: Option<Instant>,
}

/// A [`StageSource`] reading the shared migration record, cached for at most `refresh`, serving
/// the last stage read while the record cannot be read for at most the stale limit (see the
/// module documentation).
pub struct RecordStage {
    reader: Box<dyn ReadStage>,
    refresh: Duration,
    stale_limit: Duration,
    read_timeout: Duration,
    known: Mutex<Known>,
    backfilled: AtomicBool,
}

impl RecordStage {
    /// A source over `record`, read again once its last read is `refresh` old, with the default
    /// stale limit and read timeout.
    pub fn new(record: Record, refresh: Duration) -> RecordStage {
        RecordStage::over(Box::new(record), refresh)
    }

    fn over(reader: Box<dyn ReadStage>, refresh: Duration) -> RecordStage {
        RecordStage {
            reader,
            refresh,
            stale_limit: DEFAULT_STALE_LIMIT,
            read_timeout: DEFAULT_READ_TIMEOUT,
            known: Mutex::new(Known { stage: Stage::Off, read_at: None, tried_at: None }),
            backfilled: AtomicBool::new(false),
        }
    }

    /// The source with another stale limit (how long the last stage read is served while the
    /// record cannot be read) and read timeout.
    pub fn with_limits(mut self, stale_limit: Duration, read_timeout: Duration) -> RecordStage {
        self.stale_limit = stale_limit;
        self.read_timeout = read_timeout;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stage known, if it was read successfully less than the stale limit ago.
    fn servable(&self, known: &Known) -> Option<Stage> {
        known.read_at.filter(|t| t.elapsed() < self.stale_limit).map(|_| known.stage)
    }
}

#[async_trait]
impl StageSource for RecordStage {
    async fn stage(&self) -> Result<Stage> {
        {
            let known = *self.lock();
            let last_try = known.tried_at.or(known.read_at);
            if last_try.is_some_and(|t| t.elapsed() < self.refresh) {
                if let Some(stage) = self.servable(&known) {
                    return Ok(stage);
                }
            }
        }
        let limit = self.read_timeout;
        let read = tokio::time::timeout(limit, self.reader.read()).await.unwrap_or_else(|_| {
            Err(Error::unavailable(format!("the migration record gave no answer within {} ms", limit.as_millis())))
        });
        let mut known = self.lock();
        let now = Instant::now();
        known.tried_at = Some(now);
        match read {
            Ok((stage, done)) => {
                self.backfilled.store(done, Ordering::SeqCst);
                known.stage = stage;
                known.read_at = Some(now);
                Ok(stage)
            }
            Err(e) => match self.servable(&known) {
                Some(stage) => {
                    tracing::warn!(
                        error = %e,
                        %stage,
                        "the migration stage cannot be read: routing by the last stage read (at most {} s old)",
                        self.stale_limit.as_secs()
                    );
                    Ok(stage)
                }
                // Without a recent stage, authority is unknown: the operation fails.
                None => {
                    let message =
                        format!("the migration stage cannot be read and none was read recently: {}", e.message);
                    Err(Error::new(e.kind, message))
                }
            },
        }
    }

    fn last_known(&self) -> Stage {
        self.lock().stage
    }

    fn backfilled(&self) -> bool {
        self.backfilled.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU8;
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn follows_the_record_after_its_refresh() {
        let record = Record::memory();
        record.init("test").await.unwrap();
        let cached = RecordStage::new(record.clone(), Duration::from_secs(3600));
        let fresh = RecordStage::new(record.clone(), Duration::ZERO);
        assert_eq!(cached.stage().await.unwrap(), Stage::Off);
        record.set_stage(Stage::DualWrite, "test", "start mirroring", false).await.unwrap();
        // Within its refresh bound a process keeps what it read; past it, it reads again.
        assert_eq!(cached.stage().await.unwrap(), Stage::Off);
        assert_eq!(fresh.stage().await.unwrap(), Stage::DualWrite);
        assert_eq!(fresh.last_known(), Stage::DualWrite);
    }

    /// A record that answers (0), fails (1) or never answers (2), and counts its reads.
    #[derive(Clone, Default)]
    struct Flaky {
        mode: Arc<AtomicU8>,
        reads: Arc<AtomicU8>,
    }

    #[async_trait]
    impl ReadStage for Flaky {
        async fn read(&self) -> Result<(Stage, bool)> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            match self.mode.load(Ordering::SeqCst) {
                0 => Ok((Stage::Shadow, true)),
                1 => Err(Error::unavailable("connection refused")),
                _ => std::future::pending().await,
            }
        }
    }

    #[tokio::test]
    async fn the_last_stage_is_served_while_the_record_cannot_be_read_up_to_the_stale_limit() {
        let flaky = Flaky::default();
        let never = |f: &Flaky| RecordStage::over(Box::new(f.clone()), Duration::ZERO);
        let source = never(&flaky).with_limits(Duration::from_secs(3600), Duration::from_millis(20));
        let unread = never(&flaky);
        flaky.mode.store(1, Ordering::SeqCst);
        // Never read: authority is unknown, the operation fails.
        assert!(unread.stage().await.is_err());

        flaky.mode.store(0, Ordering::SeqCst);
        assert_eq!(source.stage().await.unwrap(), Stage::Shadow);
        assert!(source.backfilled());
        for mode in [1, 2] {
            // Fails, or hangs past the read timeout: the last stage read is served.
            flaky.mode.store(mode, Ordering::SeqCst);
            assert_eq!(source.stage().await.unwrap(), Stage::Shadow, "mode {mode}");
            assert!(source.backfilled());
        }

        // Past the stale limit, it fails.
        let strict = never(&flaky).with_limits(Duration::ZERO, Duration::from_millis(20));
        flaky.mode.store(0, Ordering::SeqCst);
        assert_eq!(strict.stage().await.unwrap(), Stage::Shadow);
        flaky.mode.store(1, Ordering::SeqCst);
        let e = strict.stage().await.expect_err("stale");
        assert!(e.to_string().contains("none was read recently"), "{e}");
    }

    #[tokio::test]
    async fn a_failed_read_is_tried_again_one_refresh_later_not_by_every_operation() {
        let flaky = Flaky::default();
        let source = RecordStage::over(Box::new(flaky.clone()), Duration::from_secs(3600));
        assert_eq!(source.stage().await.unwrap(), Stage::Shadow);
        flaky.mode.store(1, Ordering::SeqCst);
        for _ in 0..5 {
            assert_eq!(source.stage().await.unwrap(), Stage::Shadow);
        }
        assert_eq!(flaky.reads.load(Ordering::SeqCst), 1, "within the refresh nothing is read again");
        // A due refresh that fails: one read, then the last stage until the next refresh.
        source.lock().tried_at = None;
        source.lock().read_at = Some(Instant::now() - Duration::from_secs(7200));
        let source = source.with_limits(Duration::from_secs(10_000), DEFAULT_READ_TIMEOUT);
        for _ in 0..5 {
            assert_eq!(source.stage().await.unwrap(), Stage::Shadow);
        }
        assert_eq!(flaky.reads.load(Ordering::SeqCst), 2, "one failed read, then served until the next refresh");
    }
}

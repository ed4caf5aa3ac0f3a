//! The stage the bridge routes by, read from the migration record every process shares.
//!
//! [`RecordStage`] is the bridge's [`StageSource`] for processes of a real migration: it reads
//! the stage from the record in the target database (`tapesched migrate stage` writes it) and
//! keeps it for at most `refresh` (default 5 s), so every process follows a stage change within
//! that bound, and learns with it whether the backfill has completed (the target then holds
//! everything legacy does; a return to `off` clears that). The refresh is a process-local timer (it decides when to read, never what a
//! decision is); scenario runs use a fixed stage.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tapesched_bridge::StageSource;
use tapesched_scheduler::Result;

use crate::record::Record;
use crate::stage::Stage;

/// How long a process keeps the stage it read, at most, by default.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(5);

/// A [`StageSource`] reading the shared migration record, cached for at most `refresh`.
pub struct RecordStage {
    record: Record,
    refresh: Duration,
    cached: Mutex<(Stage, Option<Instant>)>,
    backfilled: std::sync::atomic::AtomicBool,
}

impl RecordStage {
    /// A source over `record`, read again once its last read is `refresh` old.
    pub fn new(record: Record, refresh: Duration) -> RecordStage {
        RecordStage { record, refresh, cached: Mutex::new((Stage::Off, None)), backfilled: Default::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Stage, Option<Instant>)> {
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl StageSource for RecordStage {
    async fn stage(&self) -> Result<Stage> {
        {
            let (stage, read_at) = *self.lock();
            if read_at.is_some_and(|t| t.elapsed() < self.refresh) {
                return Ok(stage);
            }
        }
        // A failed read fails the operation: without the stage, authority is unknown.
        let stage = self.record.read_stage().await?;
        let done = self.record.checkpoint().await?.done;
        self.backfilled.store(done, std::sync::atomic::Ordering::SeqCst);
        *self.lock() = (stage, Some(Instant::now()));
        Ok(stage)
    }

    fn last_known(&self) -> Stage {
        self.lock().0
    }

    fn backfilled(&self) -> bool {
        self.backfilled.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
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
}

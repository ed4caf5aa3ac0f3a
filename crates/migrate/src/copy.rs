//! Backfill: copies every item of the legacy backend into the target in key order, a page at a
//! time, saving a checkpoint (the last key copied) after each page, so that a backfill stopped
//! anywhere resumes after its checkpoint and copies nothing twice (an item copied again would be
//! the same and left alone: imports are idempotent). The next page is read from the legacy side
//! while the current one is written to the target.

use std::time::{Duration, Instant};

use tapesched_scheduler::clock::Timestamp;
use tapesched_scheduler::db::SchedulerDb;
use tapesched_scheduler::state::StateItem;
use tapesched_scheduler::Result;

use crate::record::{Checkpoint, Record};

/// How a backfill runs.
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// Items per page.
    pub page: usize,
    /// Stop (as if interrupted) once at least this many items were copied by this run.
    pub stop_after: Option<u64>,
    /// Start from the beginning even if a checkpoint says where the last run stopped.
    pub restart: bool,
}

impl Default for BackfillOptions {
    fn default() -> Self {
        BackfillOptions { page: 5000, stop_after: None, restart: false }
    }
}

/// Where a backfill is, for progress displays.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// Items copied, this run and earlier ones.
    pub items: u64,
    /// Jobs copied, this run and earlier ones.
    pub jobs: u64,
    /// Items copied by this run.
    pub items_this_run: u64,
    /// Items the legacy side held when the run started (if it could tell).
    pub total: Option<u64>,
    /// Time this run has taken.
    pub elapsed: Duration,
    /// Items per second this run, measured.
    pub items_per_sec: f64,
    /// Jobs per second this run, measured.
    pub jobs_per_sec: f64,
    /// Time left at the measured rate (once something was measured and the total is known).
    pub eta: Option<Duration>,
}

/// How a backfill ended.
#[derive(Debug, Clone, PartialEq)]
pub struct BackfillReport {
    /// The last progress.
    pub progress: Progress,
    /// The backfill reached the end (false: stopped by `stop_after`).
    pub complete: bool,
    /// The checkpoint it resumed from (`None`: it started from the beginning).
    pub resumed_from: Option<Checkpoint>,
}

/// Copies legacy into target (see the module documentation). Refuses with `conflict` when
/// another backfill holds `record`'s lock. `progress` is called after every page.
pub async fn backfill(
    legacy: &dyn SchedulerDb,
    target: &dyn SchedulerDb,
    record: &Record,
    options: &BackfillOptions,
    now: Timestamp,
    progress: &mut (dyn FnMut(&Progress) + Send),
) -> Result<BackfillReport> {
    let _lock = record.lock_backfill().await?;
    let mut cp = if options.restart { Checkpoint::default() } else { record.checkpoint().await? };
    let resumed_from = (cp.last_key.is_some()).then(|| cp.clone());
    if cp.done {
        // A finished backfill run again copies what changed since (imports skip what is equal).
        cp = Checkpoint::default();
    }
    let total = legacy.state_len().await?;
    let start = Instant::now();
    let (items0, jobs0) = (cp.items, cp.jobs);
    let page = options.page.max(1);
    let mut next = legacy.export_state(cp.last_key.as_ref(), page).await?;
    let report = |cp: &Checkpoint| {
        let elapsed = start.elapsed();
        let secs = elapsed.as_secs_f64().max(1e-9);
        let run_items = cp.items - items0;
        let items_per_sec = run_items as f64 / secs;
        let eta = match total {
            Some(t) if run_items > 0 => {
                let left = t.saturating_sub(cp.items) as f64;
                Some(Duration::from_secs_f64(left / items_per_sec))
            }
            _ => None,
        };
        Progress {
            items: cp.items,
            jobs: cp.jobs,
            items_this_run: run_items,
            total,
            elapsed,
            items_per_sec,
            jobs_per_sec: (cp.jobs - jobs0) as f64 / secs,
            eta,
        }
    };
    loop {
        if next.is_empty() {
            cp.done = true;
            record.save_checkpoint(&cp).await?;
            let p = report(&cp);
            progress(&p);
            return Ok(BackfillReport { progress: p, complete: true, resumed_from });
        }
        let items: Vec<StateItem> = std::mem::take(&mut next);
        let last = items.last().map(StateItem::key);
        let (n, jobs) = (items.len() as u64, items.iter().map(StateItem::jobs).sum::<u64>());
        let stop = options.stop_after.is_some_and(|s| cp.items - items0 + n >= s);
        // Read the next page while this one is written.
        let (written, read) = if stop {
            (target.import_state(items, now).await, Ok(vec![]))
        } else {
            tokio::join!(target.import_state(items, now), legacy.export_state(last.as_ref(), page))
        };
        written?;
        next = read?;
        cp.last_key = last;
        cp.items += n;
        cp.jobs += jobs;
        record.save_checkpoint(&cp).await?;
        let p = report(&cp);
        progress(&p);
        if stop {
            return Ok(BackfillReport { progress: p, complete: false, resumed_from });
        }
    }
}

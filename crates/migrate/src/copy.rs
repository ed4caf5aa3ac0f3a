//! Backfill: copies every item of the legacy backend into the target in key order, a page at a
//! time, saving a checkpoint (the last key copied) after each page, so that a backfill stopped
//! anywhere resumes after its checkpoint and copies nothing twice (an item copied again would be
//! the same and left alone: imports are idempotent). Pages are read from the legacy side while
//! earlier ones are written to the target, up to [`IN_FLIGHT`] imports at once (each its own
//! transaction); the checkpoint only moves past a page once it and every page before it are
//! written, so a backfill stopped anywhere resumes after the last page of that unbroken prefix
//! (saved beside the copy: a crash may lose its last moves, and those pages are copied again,
//! to the same result).
//! A page holding mounts or repack requests, which later pages' items refer to (a job held by a
//! mount, a repack's subrequests), is written alone, after every earlier page and before any
//! later one.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures::stream::{FuturesOrdered, StreamExt};
use tapesched_scheduler::clock::Timestamp;
use tapesched_scheduler::db::SchedulerDb;
use tapesched_scheduler::state::{StateItem, StateKey};
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
    let next = legacy.export_state(cp.last_key.as_ref(), page).await?;
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
    // Imports in flight, oldest first: each answers with its page's last key, items and jobs,
    // and whether it was a barrier page (mounts or repack requests: written alone).
    let mut imports: FuturesOrdered<Pending<'_, Written>> = FuturesOrdered::new();
    let mut ready = Some(next);
    let mut reading: Option<Pending<'_, Result<Vec<StateItem>>>> = None;
    // The checkpoint is saved beside the pipeline, not in its way: one save at a time, of the
    // latest position; `dirty` once the position moved past what the save in progress writes.
    let mut saving: Option<Pending<'_, Result<()>>> = None;
    let mut dirty = false;
    let (mut pushed, mut stopping, mut exhausted, mut barrier) = (0u64, false, false, false);
    loop {
        if saving.is_none() && dirty {
            let at = cp.clone();
            saving = Some(Box::pin(async move { record.save_checkpoint(&at).await }));
            dirty = false;
        }
        if let Some(items) = ready.take() {
            let is_barrier = items.iter().any(|i| matches!(i.key(), StateKey::Mount(_) | StateKey::Repack(_)));
            if items.is_empty() {
                exhausted = true;
            } else if imports.len() < IN_FLIGHT && !barrier && (!is_barrier || imports.is_empty()) {
                let last = items.last().map(StateItem::key);
                let (n, jobs) = (items.len() as u64, items.iter().map(StateItem::jobs).sum::<u64>());
                pushed += n;
                stopping = options.stop_after.is_some_and(|s| pushed >= s);
                if !stopping {
                    let after = last.clone();
                    reading = Some(Box::pin(async move { legacy.export_state(after.as_ref(), page).await }));
                }
                barrier = is_barrier;
                imports.push_back(Box::pin(async move {
                    (target.import_state(items, now).await, last, n, jobs, is_barrier)
                }));
            } else {
                ready = Some(items);
            }
        }
        if imports.is_empty() && (exhausted || stopping) {
            if let Some(save) = saving.take() {
                save.await?;
            }
            cp.done = exhausted;
            record.save_checkpoint(&cp).await?;
            let p = report(&cp);
            progress(&p);
            return Ok(BackfillReport { progress: p, complete: exhausted, resumed_from });
        }
        tokio::select! {
            Some((written, last, n, jobs, was_barrier)) = imports.next(), if !imports.is_empty() => {
                written?;
                barrier &= !was_barrier;
                cp.last_key = last;
                cp.items += n;
                cp.jobs += jobs;
                dirty = true;
                progress(&report(&cp));
            }
            saved = async { saving.as_mut().expect("a save in progress").await }, if saving.is_some() => {
                saving = None;
                saved?;
            }
            read = async { reading.as_mut().expect("a read in progress").await },
                if reading.is_some() && ready.is_none() => {
                reading = None;
                ready = Some(read?);
            }
        }
    }
}

/// Imports of pages the target may write at once.
pub const IN_FLIGHT: usize = 6;

/// A page's import: its outcome, the page's last key, items and jobs, and whether it was a
/// barrier page.
type Written = (Result<()>, Option<StateKey>, u64, u64, bool);

/// A boxed future of the backfill's pipeline.
type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

//! [`LogFlusher`]: writes a bridge's divergence log into the migration record, shared by every
//! process, about once a second.
//!
//! A tokio task takes the log's delta ([`DivergenceLog::take_delta`]) every `interval` and writes
//! it into the record in one transaction ([`Record::write_log`]). Invariants:
//!
//! - **Counts are never lost.** A delta whose write failed stays with the flusher and is written
//!   at the next try, ahead of what was counted since (what was counted meanwhile is merged into
//!   one batch behind it); on [`LogFlusher::shutdown`] a delta that still cannot be written goes
//!   back into the log ([`DivergenceLog::restore_delta`]), so the process keeps it.
//! - **Nothing is counted twice.** Each batch has a name (the flusher's instance and a number)
//!   written in the same transaction; a retry of a batch whose commit outcome was unknown and
//!   that did land writes nothing.
//! - **Callers are never failed by it.** The bridge only counts in memory; the flusher runs
//!   beside it, and its errors are logged (and answered to [`LogFlusher::flush`]), never passed
//!   to the bridge's callers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tapesched_bridge::DivergenceLog;
use tapesched_scheduler::{Error, Result};
use tokio::sync::{mpsc, oneshot, watch};

use crate::record::{now_secs, Record};
use crate::record_log::FlushBatch;

/// How often a flusher writes, by default.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// What a flusher did so far (see [`LogFlusher::status`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlushStatus {
    /// Flushes that wrote everything that was waiting (including empty ones).
    pub flushes: u64,
    /// Writes that failed (their deltas waited for the next try).
    pub failures: u64,
    /// The last failure's message, cleared by the next successful flush.
    pub last_error: Option<String>,
    /// Batches waiting to be written.
    pub waiting: usize,
}

enum Command {
    Flush(oneshot::Sender<Result<()>>),
    Shutdown(oneshot::Sender<Result<()>>),
}

/// Writes a [`DivergenceLog`]'s deltas into a [`Record`] (see the module documentation).
pub struct LogFlusher {
    commands: mpsc::UnboundedSender<Command>,
    status: watch::Receiver<FlushStatus>,
    task: Option<tokio::task::JoinHandle<()>>,
}

struct Worker {
    record: Record,
    log: Arc<DivergenceLog>,
    process: String,
    instance: String,
    next_batch: u64,
    last_end: i64,
    /// Batches not written yet, oldest first, each with whether a write was tried.
    waiting: VecDeque<(FlushBatch, bool)>,
    status: watch::Sender<FlushStatus>,
}

impl Worker {
    /// Takes the log's delta and writes everything waiting, oldest first.
    async fn flush(&mut self) -> Result<()> {
        let now = now_secs();
        let delta = self.log.take_delta();
        if !delta.is_empty() {
            match self.waiting.back_mut() {
                // A batch never tried cannot have landed: what came since joins it.
                Some((b, false)) => {
                    b.delta.merge(delta);
                    b.window_end = b.window_end.max(now);
                }
                _ => {
                    let batch = FlushBatch {
                        process: self.process.clone(),
                        instance: self.instance.clone(),
                        batch: self.next_batch,
                        window_start: self.last_end.min(now),
                        window_end: now,
                        delta,
                    };
                    self.next_batch += 1;
                    self.waiting.push_back((batch, false));
                }
            }
        }
        self.last_end = now;
        while let Some((batch, tried)) = self.waiting.front_mut() {
            *tried = true;
            match self.record.write_log(batch).await {
                Ok(_) => {
                    self.waiting.pop_front();
                }
                Err(e) => {
                    tracing::warn!(error = %e, process = %self.process, "migration log flush failed; kept for the next try");
                    let waiting = self.waiting.len();
                    self.status.send_modify(|s| {
                        s.failures += 1;
                        s.last_error = Some(e.to_string());
                        s.waiting = waiting;
                    });
                    return Err(e);
                }
            }
        }
        self.status.send_modify(|s| {
            s.flushes += 1;
            s.last_error = None;
            s.waiting = 0;
        });
        Ok(())
    }

    /// Gives whatever could not be written back to the log.
    fn give_back(&mut self) {
        let mut all = tapesched_bridge::LogDelta::default();
        for (b, _) in self.waiting.drain(..) {
            all.merge(b.delta);
        }
        if !all.is_empty() {
            self.log.restore_delta(all);
        }
    }

    async fn run(mut self, interval: Duration, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    let _ = self.flush().await;
                }
                command = commands.recv() => match command {
                    Some(Command::Flush(reply)) => {
                        let _ = reply.send(self.flush().await);
                    }
                    Some(Command::Shutdown(reply)) => {
                        let r = self.flush().await;
                        if r.is_err() {
                            self.give_back();
                        }
                        let _ = reply.send(r);
                        return;
                    }
                    None => {
                        if self.flush().await.is_err() {
                            self.give_back();
                        }
                        return;
                    }
                },
            }
        }
    }
}

impl LogFlusher {
    /// Starts flushing `log` into `record` every `interval` (a tokio task of the current
    /// runtime). `process` names the process in the record (make it unique: host and pid).
    pub fn spawn(record: Record, log: Arc<DivergenceLog>, process: String, interval: Duration) -> LogFlusher {
        let started = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let instance = format!("{process}/{}/{started}", std::process::id());
        let (status_tx, status) = watch::channel(FlushStatus::default());
        let (commands, rx) = mpsc::unbounded_channel();
        let worker = Worker {
            record,
            log,
            process,
            instance,
            next_batch: 1,
            last_end: now_secs(),
            waiting: VecDeque::new(),
            status: status_tx,
        };
        let task = tokio::spawn(worker.run(interval, rx));
        LogFlusher { commands, status, task: Some(task) }
    }

    /// Flushes now: everything counted so far, and whatever earlier failures left waiting. An
    /// error leaves it waiting for the next try.
    pub fn flush(&self) -> impl std::future::Future<Output = Result<()>> + Send + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = self.commands.send(Command::Flush(reply));
        async move {
            sent.map_err(|_| Error::internal("the migration log flusher has stopped"))?;
            answer.await.map_err(|_| Error::internal("the migration log flusher has stopped"))?
        }
    }

    /// A last flush, then the task ends. What could not be written goes back into the log.
    /// (Dropping the flusher does the same without waiting.)
    pub async fn shutdown(mut self) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        let sent = self.commands.send(Command::Shutdown(reply));
        let result = match sent {
            Ok(()) => answer.await.unwrap_or_else(|_| Err(Error::internal("the migration log flusher has stopped"))),
            Err(_) => Err(Error::internal("the migration log flusher has stopped")),
        };
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        result
    }

    /// What the flusher did so far.
    pub fn status(&self) -> FlushStatus {
        self.status.borrow().clone()
    }

    /// A receiver of the flusher's status, to wait for a flush (`wait_for`) without sleeping.
    pub fn watch(&self) -> watch::Receiver<FlushStatus> {
        self.status.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapesched_bridge::{Answer, Concern, Divergence, IgnoreRule, Sampling, Side};
    use tapesched_scheduler::types::RequestId;

    fn div(op: &str, id: u64) -> Divergence {
        Divergence::new(op, vec![Concern::Request(RequestId::Archive(id))], Answer::value(&1), Answer::NotAsked, 7)
    }

    #[tokio::test]
    async fn flushes_add_up_over_processes_and_periodic_flushes_happen() {
        let record = Record::memory();
        record.init("t").await.unwrap();
        let rule = IgnoreRule::new("doc", "documented", |d| d.op == "open_mount");
        let (a, b) = (Arc::new(DivergenceLog::with(Sampling::default(), vec![rule])), Arc::new(DivergenceLog::new()));
        let fa = LogFlusher::spawn(record.clone(), a.clone(), "a".into(), Duration::from_secs(3600));
        let fb = LogFlusher::spawn(record.clone(), b.clone(), "b".into(), Duration::from_millis(20));
        for log in [&a, &b] {
            log.count_call("queue_archive");
            log.matched("queue_archive");
            log.answered("queue_archive", Side::Target, Duration::from_micros(50), false);
        }
        a.record(div("queue_archive", 1));
        a.record(div("open_mount", 2));
        fa.flush().await.unwrap();
        // b flushes by itself: wait for its status to say so, no sleep.
        let mut watch = fb.watch();
        watch.wait_for(|s| s.flushes >= 2).await.unwrap();
        fb.flush().await.unwrap();
        let total = record.counters(None).await.unwrap();
        let qa = &total["queue_archive"];
        assert_eq!((qa.calls, qa.compared, qa.matched, qa.mismatched), (2, 3, 2, 1));
        assert_eq!(qa.target_latency.count, 2);
        assert_eq!(total["open_mount"].ignored.get("doc"), Some(&1));
        assert_eq!(record.count_divergences(true).await.unwrap(), 1, "ignored ones are not to repair");
        let stored = record.divergences(&crate::DivergenceQuery::default()).await.unwrap();
        assert_eq!(stored.len(), 2);
        assert_eq!(stored[0].process, "a");
        assert_eq!(stored[0].divergence.concerns, vec![Concern::Request(RequestId::Archive(1))]);
        // Nothing twice: flushing again adds nothing.
        fa.flush().await.unwrap();
        assert_eq!(record.counters(None).await.unwrap(), total);
        assert_eq!(record.mark_repaired(&[stored[0].id], Some("fixed")).await.unwrap(), 1);
        assert_eq!(record.count_divergences(true).await.unwrap(), 0);
        fa.shutdown().await.unwrap();
        fb.shutdown().await.unwrap();
    }
}

//! [`BridgeDb`]: the handle, where the stage comes from, and the two ways an operation goes
//! through the bridge.
//!
//! - A **write** in a stage that mirrors writes runs on both sides at once (`tokio::join!`, so
//!   latencies do not add); the caller gets the authoritative side's answer, and any difference
//!   (value, or error kind) or failure of the other side is recorded as a divergence. It never
//!   fails the caller.
//! - A **read** comes from the authoritative side; in shadow and live it is also asked of the
//!   other side, concurrently, on the calls [`crate::Sampling`] picks, and compared.
//!
//! In `off` only legacy is used; in `complete` only the target. The `SchedulerDb` methods
//! themselves are in `adapter.rs`; mount decisions and pops, which need more than a second call,
//! in `mounts.rs`.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Serialize;
use tapesched_scheduler::clock::Timestamp;
use tapesched_scheduler::db::SchedulerDb;
use tapesched_scheduler::{Error, ErrorKind, Result};

use crate::divergence::{Answer, Concern, Divergence, DivergenceLog};
use crate::stage::{Side, Stage};

/// Where the bridge learns the stage. Each operation asks once and runs wholly in that stage.
#[async_trait]
pub trait StageSource: Send + Sync {
    /// The stage of an operation starting now (a database-backed source reads or refreshes it
    /// here). An error fails the operation: without a stage, authority is unknown.
    async fn stage(&self) -> Result<Stage>;

    /// The stage last known, without I/O (for names and logs).
    fn last_known(&self) -> Stage;

    /// Whether the target holds everything legacy held before dual-write (the backfill has
    /// completed since writes were last mirrored), as of the last [`StageSource::stage`]. Until
    /// then a job or report the target lacks may predate its copy, and legacy's answer stands
    /// alone. Sources whose two sides start empty (scenario runs, tests) answer true.
    fn backfilled(&self) -> bool {
        true
    }
}

/// A stage that never changes: scenario runs and tests of one stage.
#[derive(Debug, Clone, Copy)]
pub struct FixedStage(pub Stage);

#[async_trait]
impl StageSource for FixedStage {
    async fn stage(&self) -> Result<Stage> {
        Ok(self.0)
    }
    fn last_known(&self) -> Stage {
        self.0
    }
}

/// A stage changed in process by [`ManualStage::set`], which enforces
/// [`Stage::check_transition`]: tests that walk a migration through its stages.
#[derive(Debug)]
pub struct ManualStage(RwLock<Stage>);

impl ManualStage {
    /// Starts at `stage`.
    pub fn new(stage: Stage) -> ManualStage {
        ManualStage(RwLock::new(stage))
    }

    /// Moves to `to` if [`Stage::check_transition`] allows it (`state_transition_refused`
    /// otherwise, unchanged).
    pub fn set(&self, to: Stage) -> Result<()> {
        let mut stage = self.0.write().unwrap_or_else(|p| p.into_inner());
        Stage::check_transition(*stage, to)?;
        *stage = to;
        Ok(())
    }
}

#[async_trait]
impl StageSource for ManualStage {
    async fn stage(&self) -> Result<Stage> {
        Ok(self.last_known())
    }
    fn last_known(&self) -> Stage {
        *self.0.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// A `SchedulerDb` over a legacy and a target backend, routed by the stage (see the crate
/// documentation).
pub struct BridgeDb {
    pub(crate) legacy: Arc<dyn SchedulerDb>,
    pub(crate) target: Arc<dyn SchedulerDb>,
    stage: Arc<dyn StageSource>,
    pub(crate) log: Arc<DivergenceLog>,
    /// The latest "now" a caller gave: the time of divergences of operations that take none.
    last_now: AtomicI64,
    /// How long the non-authoritative side may take before its answer counts as `unavailable`.
    other_timeout: Option<Duration>,
}

impl fmt::Debug for BridgeDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// How one operation is routed: its stage, the authoritative side, and the other side when the
/// stage uses both.
pub(crate) struct Route<'a> {
    pub stage: Stage,
    pub authority: Side,
    pub auth: &'a dyn SchedulerDb,
    pub other: Option<&'a dyn SchedulerDb>,
    pub now: Timestamp,
    /// Both sides are expected to hold all the work: the other side is legacy (it was
    /// authoritative until now), or the backfill has completed. Work one side lacks is then
    /// only handed out when both have it (see `mounts.rs`, `reports_due`).
    pub both_complete: bool,
}

/// The first pauses (milliseconds) before the re-reads of a compared read whose two answers
/// differed; after them, pauses of [`RECHECK_LATER_MS`] until the other side's timeout is
/// reached (see [`BridgeDb::recheck_pauses`]).
pub(crate) const RECHECK_MS: [u64; 4] = [10, 50, 200, 500];
/// The pause between later re-reads.
pub(crate) const RECHECK_LATER_MS: u64 = 1000;
/// How long re-reads go on without a timeout on the other side (scenario runs, tests).
pub(crate) const RECHECK_UNBOUNDED_MS: u64 = 260;

/// The pauses before each re-read of a compared read whose answers differed: [`RECHECK_MS`],
/// then [`RECHECK_LATER_MS`], cut so that they add up to the other side's `timeout` (without
/// one, [`RECHECK_UNBOUNDED_MS`]). A mirrored write of another process in flight at the first
/// read has landed on both sides by then, or its writer waited out the same timeout and recorded
/// a divergence of its own: a difference that outlasts them is no write in flight. Paid by the
/// caller on the mismatch path only.
pub(crate) fn recheck_pauses(timeout: Option<Duration>) -> Vec<Duration> {
    let total = timeout.map_or(RECHECK_UNBOUNDED_MS, |t| t.as_millis().max(1) as u64);
    let mut pauses = Vec::new();
    let mut sum = 0;
    for pause in RECHECK_MS.into_iter().chain(std::iter::repeat(RECHECK_LATER_MS)) {
        if sum >= total {
            break;
        }
        let pause = pause.min(total - sum);
        sum += pause;
        pauses.push(Duration::from_millis(pause));
    }
    pauses
}

/// `f`'s output and how long it took.
pub(crate) async fn timed<F: Future>(f: F) -> (F::Output, Duration) {
    let start = Instant::now();
    let out = f.await;
    (out, start.elapsed())
}

/// Two answers are the same when both are equal values or both errors of the same kind.
pub(crate) fn same<T: PartialEq>(a: &Result<T>, b: &Result<T>) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => a.kind == b.kind,
        _ => false,
    }
}

impl BridgeDb {
    /// A bridge over `legacy` and `target`, in the stages `stage` gives, recording into `log`.
    pub fn new(
        legacy: Arc<dyn SchedulerDb>,
        target: Arc<dyn SchedulerDb>,
        stage: Arc<dyn StageSource>,
        log: Arc<DivergenceLog>,
    ) -> BridgeDb {
        BridgeDb { legacy, target, stage, log, last_now: AtomicI64::new(0), other_timeout: None }
    }

    /// The bridge with a bound on the non-authoritative side: an answer later than `timeout` is
    /// taken as `unavailable` (a divergence; what that side did is unknown, to be verified and
    /// repaired), so a slow or hung side delays callers by at most `timeout`. None (the default)
    /// waits for it: scenario runs and tests stay deterministic. The bound is measured on the
    /// tokio clock; it never changes what the authoritative side decides.
    pub fn with_other_timeout(mut self, timeout: Option<Duration>) -> BridgeDb {
        self.other_timeout = timeout;
        self
    }

    /// The pauses before each re-read of a compared read whose answers differed
    /// ([`recheck_pauses`] of this bridge's timeout).
    pub(crate) fn recheck_pauses(&self) -> Vec<Duration> {
        recheck_pauses(self.other_timeout)
    }

    /// `f`, the non-authoritative side's call, bounded by the timeout if one is set.
    pub(crate) async fn bounded<T>(&self, f: impl Future<Output = Result<T>>) -> Result<T> {
        match self.other_timeout {
            None => f.await,
            Some(limit) => tokio::time::timeout(limit, f).await.unwrap_or_else(|_| {
                Err(Error::unavailable(format!("no answer within {} ms: outcome unknown", limit.as_millis())))
            }),
        }
    }

    /// A bridge in one fixed stage with a fresh log comparing every call.
    pub fn fixed(legacy: Arc<dyn SchedulerDb>, target: Arc<dyn SchedulerDb>, stage: Stage) -> BridgeDb {
        BridgeDb::new(legacy, target, Arc::new(FixedStage(stage)), Arc::new(DivergenceLog::new()))
    }

    /// The divergence log (shared: readers may keep it after the bridge is gone).
    pub fn log(&self) -> &Arc<DivergenceLog> {
        &self.log
    }

    /// The legacy backend.
    pub fn legacy(&self) -> &Arc<dyn SchedulerDb> {
        &self.legacy
    }

    /// The target backend.
    pub fn target(&self) -> &Arc<dyn SchedulerDb> {
        &self.target
    }

    /// `bridge(LEGACY->TARGET, STAGE)` with the stage last known.
    pub fn describe(&self) -> String {
        format!("bridge({}->{}, {})", self.legacy.name(), self.target.name(), self.stage.last_known())
    }

    fn side(&self, side: Side) -> &dyn SchedulerDb {
        match side {
            Side::Legacy => &*self.legacy,
            Side::Target => &*self.target,
        }
    }

    /// The route of an operation starting now; `now` is the caller's (None: the latest seen).
    pub(crate) async fn route(&self, now: Option<Timestamp>) -> Result<Route<'_>> {
        let stage = self.stage.stage().await?;
        let now = match now {
            Some(t) => {
                self.last_now.store(t, Ordering::Relaxed);
                t
            }
            None => self.last_now.load(Ordering::Relaxed),
        };
        let authority = stage.authority();
        let other = stage.mirrors_writes().then(|| self.side(authority.other()));
        let both_complete = authority == Side::Target || self.stage.backfilled();
        Ok(Route { stage, authority, auth: self.side(authority), other, now, both_complete })
    }

    /// A batch's answers from the non-authoritative side, bounded like [`BridgeDb::bounded`]:
    /// past the timeout, `n` answers `unavailable`.
    pub(crate) async fn bounded_batch(&self, f: impl Future<Output = Vec<Result<()>>>, n: usize) -> Vec<Result<()>> {
        match self.bounded(async { Ok(f.await) }).await {
            Ok(answers) => answers,
            Err(e) => vec![Err(e); n],
        }
    }

    /// Records a divergence of `op`: `auth` and `other` are the two sides' answers.
    pub(crate) fn diverge(
        &self,
        route: &Route<'_>,
        op: &str,
        concerns: Vec<Concern>,
        auth: Answer,
        other: Answer,
        note: Option<String>,
    ) {
        let (legacy, target) = match route.authority {
            Side::Legacy => (auth, other),
            Side::Target => (other, auth),
        };
        let mut d = Divergence::new(op, concerns, legacy, target, route.now);
        d.stage = route.stage;
        d.note = note;
        let d = self.log.record(d);
        if d.ignored_by.is_none() {
            tracing::warn!(divergence = %d, "the two sides of the migration bridge diverged");
        }
    }

    /// Runs `auth` and `other` concurrently, compares their answers (value, or error kind) and
    /// returns the authoritative one; a difference is recorded, never returned.
    pub(crate) async fn mirror<T, A, O>(
        &self,
        route: &Route<'_>,
        op: &str,
        concerns: impl FnOnce() -> Vec<Concern>,
        auth: A,
        other: O,
    ) -> Result<T>
    where
        T: PartialEq + Serialize,
        A: Future<Output = Result<T>>,
        O: Future<Output = Result<T>>,
    {
        let ((a, la), (o, lo)) = tokio::join!(timed(auth), timed(self.bounded(other)));
        self.log.answered(op, route.authority, la, a.is_err());
        self.log.answered(op, route.authority.other(), lo, o.is_err());
        if same(&a, &o) {
            self.log.matched(op);
        } else {
            let note = match (&a, &o) {
                (Ok(_), Err(_)) => Some(format!("the {} side failed", route.authority.other())),
                _ => None,
            };
            self.diverge(route, op, concerns(), Answer::of(&a), Answer::of(&o), note);
        }
        a
    }

    /// Runs the two sides' reads concurrently and answers the authoritative one and whether the
    /// difference, if any, is left to the caller's re-reads. Agreement is counted as a match. A
    /// non-authoritative side that cannot be reached (or did not answer within the timeout) is
    /// recorded at once: reading it again would only make the caller wait once more.
    pub(crate) async fn read_both<T, A, O>(
        &self,
        route: &Route<'_>,
        op: &str,
        concerns: impl FnOnce() -> Vec<Concern>,
        auth: A,
        other: O,
    ) -> (Result<T>, bool)
    where
        T: PartialEq + Serialize,
        A: Future<Output = Result<T>>,
        O: Future<Output = Result<T>>,
    {
        let ((a, la), (o, lo)) = tokio::join!(timed(auth), timed(self.bounded(other)));
        self.log.answered(op, route.authority, la, a.is_err());
        self.log.answered(op, route.authority.other(), lo, o.is_err());
        if same(&a, &o) {
            self.log.matched(op);
            return (a, false);
        }
        if matches!(&o, Err(e) if e.kind == ErrorKind::Unavailable) {
            let note = Some(format!("the {} side failed", route.authority.other()));
            self.diverge(route, op, concerns(), Answer::of(&a), Answer::of(&o), note);
            return (a, false);
        }
        (a, true)
    }
}

/// A write: the authoritative side alone in off and complete, both sides otherwise
/// ([`BridgeDb::mirror`]). `$db` is bound to each side in turn in `$call`. With the failpoint
/// `bridge.after_authority_write` armed, the process dies between the two sides' writes.
macro_rules! write_op {
    ($self:ident, $op:literal, $now:expr, $concerns:expr, |$db:ident| $call:expr) => {{
        let route = $self.route($now).await?;
        match route.other {
            None => {
                let $db = route.auth;
                $call.await
            }
            Some(other) => {
                $self.log.count_call($op);
                let auth = {
                    let $db = route.auth;
                    $call
                };
                let other = {
                    let $db = other;
                    $call
                };
                if $crate::failpoint::armed($crate::failpoint::AFTER_AUTHORITY_WRITE) {
                    let _ = auth.await;
                    $crate::failpoint::fire($crate::failpoint::AFTER_AUTHORITY_WRITE);
                }
                $self.mirror(&route, $op, || $concerns, auth, other).await
            }
        }
    }};
}

/// A read: the authoritative side; in shadow and live, on sampled calls, both sides compared.
/// Answers that differ are read again from both sides, after the pauses of
/// [`BridgeDb::recheck_pauses`], before a divergence is recorded: other processes' mirrored writes land on the two sides at
/// slightly different moments, and a read between the two is no defect. Only a difference that
/// lasts through every re-read is recorded (with the last answers); the caller gets the first
/// authoritative answer.
macro_rules! read_op {
    ($self:ident, $op:literal, $now:expr, $concerns:expr, |$db:ident| $call:expr) => {{
        let route = $self.route($now).await?;
        match route.other {
            Some(other) if route.stage.compares_reads() && $self.log.sample($op) => {
                let auth = {
                    let $db = route.auth;
                    $call
                };
                let other_answer = {
                    let $db = other;
                    $call
                };
                let (first, recheck) = $self.read_both(&route, $op, || $concerns, auth, other_answer).await;
                if recheck {
                    let pauses = $self.recheck_pauses();
                    for (i, pause) in pauses.iter().enumerate() {
                        tokio::time::sleep(*pause).await;
                        let auth = {
                            let $db = route.auth;
                            $call
                        };
                        let other_answer = {
                            let $db = other;
                            $call
                        };
                        if i + 1 < pauses.len() {
                            let (a, o) = tokio::join!(auth, $self.bounded(other_answer));
                            if $crate::db::same(&a, &o) {
                                $self.log.matched($op);
                                break;
                            }
                        } else {
                            let _ = $self.mirror(&route, $op, || $concerns, auth, other_answer).await;
                        }
                    }
                }
                first
            }
            _ => {
                let $db = route.auth;
                $call.await
            }
        }
    }};
}

pub(crate) use {read_op, write_op};

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(pauses: Vec<Duration>) -> Vec<u128> {
        pauses.into_iter().map(|p| p.as_millis()).collect()
    }

    #[test]
    fn re_reads_last_as_long_as_the_other_side_may_take() {
        assert_eq!(ms(recheck_pauses(None)), [10, 50, 200]);
        assert_eq!(ms(recheck_pauses(Some(Duration::from_millis(2000)))), [10, 50, 200, 500, 1000, 240]);
        assert_eq!(ms(recheck_pauses(Some(Duration::from_millis(30)))), [10, 20]);
        assert_eq!(ms(recheck_pauses(Some(Duration::ZERO))), [1]);
    }
}

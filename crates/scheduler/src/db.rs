//! The `SchedulerDb` trait: the storage interface every queue backend implements.
//!
//! A backend stores requests, queues and mounts; it holds no scheduling policy. Where a state
//! change needs a rule (how many retries, which VID a retrieve goes back to), the backend calls the
//! pure functions of [`crate::rules`] or the [`RetrieveRouter`] the scheduler hands it, inside its
//! own atomic section (lock, transaction). Every operation takes "now" from the caller.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::Result;
use crate::repack::{RepackReport, RepackReportBatch, RepackRequest, RepackUpdate};
use crate::state::{StateItem, StateKey};
use crate::types::*;

/// A retrieve queue put to sleep because its destination disk system was full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSleep {
    /// The disk system that was full.
    pub disk_system: String,
    /// The queue sleeps while `now < until`.
    pub until: Timestamp,
}

/// One potential mount: a non-empty archive queue (pool + mount type) or retrieve queue (VID).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PotentialMount {
    /// ArchiveForUser, ArchiveForRepack or Retrieve.
    pub mount_type: MountType,
    /// The pool, for archive queues.
    pub tape_pool: Option<String>,
    /// The VID, for retrieve queues.
    pub vid: Option<String>,
    /// Jobs queued (not popped).
    pub files_queued: u64,
    /// Bytes queued.
    pub bytes_queued: u64,
    /// Earliest creation time of a queued job.
    pub oldest_job_start: Timestamp,
    /// Latest creation time of a queued job.
    pub youngest_job_start: Timestamp,
    /// Highest priority recorded on the queued jobs.
    pub priority: u64,
    /// Lowest minimum request age recorded on the queued jobs.
    pub min_request_age: u64,
    /// Number of queued jobs per mount-policy name.
    pub policy_counts: PolicyCounts,
    /// Sleep marker of a retrieve queue (the decision compares it with now).
    pub sleep: Option<QueueSleep>,
}

/// What a backend knows for a mount decision: one potential mount per queue, sorted by
/// (mount type, tape pool, vid) so two backends' answers compare field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountInfo {
    /// Potential mounts, one per non-empty transfer queue. Shared (`Arc`) so that a backend
    /// keeping them between decisions hands them out without copying thousands of them.
    pub potential_mounts: Vec<Arc<PotentialMount>>,
}

impl MountInfo {
    /// Sorts the potential mounts into the canonical order.
    pub fn sort(&mut self) {
        self.potential_mounts
            .sort_by(|a, b| (a.mount_type, &a.tape_pool, &a.vid).cmp(&(b.mount_type, &b.tape_pool, &b.vid)));
    }
}

/// The mount the decision chose, as a backend records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountSpec {
    /// Mount type.
    pub mount_type: MountType,
    /// The tape to mount.
    pub vid: String,
    /// Its pool (for archives, the queue served).
    pub tape_pool: String,
    /// The VO the mount is charged to.
    pub vo: String,
    /// The drive.
    pub drive: String,
    /// The drive's logical library.
    pub logical_library: String,
}

/// Queue totals of one retrieve VID, for choosing where a retrieve goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueStats {
    /// The VID.
    pub vid: String,
    /// Jobs queued.
    pub files_queued: u64,
    /// Bytes queued.
    pub bytes_queued: u64,
    /// Highest priority recorded on the queued jobs (0 when empty).
    pub priority: u64,
}

/// A job handed to a mount, with its whole request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MountJob {
    /// One copy of an archive request.
    Archive {
        /// The request.
        request: ArchiveRequest,
        /// The copy to write.
        copy_nb: u32,
    },
    /// A retrieve request (read from its active VID).
    Retrieve {
        /// The request.
        request: RetrieveRequest,
    },
}

impl MountJob {
    /// The job's identity.
    pub fn id(&self) -> JobId {
        match self {
            MountJob::Archive { request, copy_nb } => JobId { request: request.id(), copy_nb: *copy_nb },
            MountJob::Retrieve { request } => JobId {
                request: RequestId::Retrieve(request.request_id),
                copy_nb: request.active_copy().map(|c| c.copy_nb).unwrap_or(0),
            },
        }
    }
    /// The archive file the job moves.
    pub fn archive_file_id(&self) -> u64 {
        match self {
            MountJob::Archive { request, .. } => request.archive_file_id,
            MountJob::Retrieve { request } => request.archive_file_id,
        }
    }
    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            MountJob::Archive { request, .. } => request.size,
            MountJob::Retrieve { request } => request.size,
        }
    }
}

/// A successful transfer: the job, and for archives the tape copy written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferSuccess {
    /// The job.
    pub job: JobId,
    /// The copy written (archives only).
    pub tape_file: Option<TapeFile>,
}

/// Which reports a reporting pass takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReportFilter {
    /// Archive reports only.
    Archive,
    /// Retrieve reports only.
    Retrieve,
    /// Both.
    All,
}

/// Success or failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The transfer succeeded.
    Success,
    /// The transfer failed for good.
    Failure,
}

/// Archive or retrieve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Archive.
    Archive,
    /// Retrieve.
    Retrieve,
}

/// A report due to the disk side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportJob {
    /// The request.
    pub request: RequestId,
    /// Its archive file.
    pub archive_file_id: u64,
    /// Success or failure report.
    pub outcome: Outcome,
    /// Where the report goes (may be empty for failures without an error URL).
    pub url: Option<String>,
}

impl ReportJob {
    /// Archive or retrieve.
    pub fn kind(&self) -> JobKind {
        Self::order_of(self.archive_file_id, self.request).1
    }
    /// The canonical order of reports: archive file id, kind, request.
    pub fn order_key(&self) -> (u64, JobKind, RequestId) {
        Self::order_of(self.archive_file_id, self.request)
    }
    /// [`ReportJob::order_key`] of the report of `request` on `archive_file_id`, for a backend
    /// that sorts before it builds the reports (the Postgres backend orders in SQL; a property
    /// test, `tests/postgres_rules.rs`, checks its order equals this one).
    pub fn order_of(archive_file_id: u64, request: RequestId) -> (u64, JobKind, RequestId) {
        let kind = match request {
            RequestId::Archive(_) | RequestId::RepackArchive(_) => JobKind::Archive,
            RequestId::Retrieve(_) => JobKind::Retrieve,
        };
        (archive_file_id, kind, request)
    }
}

/// A queued job as listings show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingJob {
    /// The job.
    pub job: JobId,
    /// Its archive file.
    pub archive_file_id: u64,
    /// The pool (archive) or VID (retrieve) whose queue holds it.
    pub queue: String,
    /// Size in bytes.
    pub size: u64,
}

/// What a retrieve-queue cleanup did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainReport {
    /// Requests moved to another copy's queue.
    pub requeued: u64,
    /// Requests failed (no other copy available).
    pub failed: u64,
}

/// Chooses the VID a retrieve request goes to when a backend requeues it (after a failure, at
/// the end of a mount, by garbage collection, by queue cleanup). Built by the scheduler from the
/// catalogue; backends call it without knowing the policy.
pub trait RetrieveRouter: Send + Sync {
    /// The VIDs the request may go to (before looking at queue statistics).
    fn candidates(&self, request: &RetrieveRequest) -> Vec<String>;
    /// The chosen VID given the statistics of the candidates; `None` fails the request.
    fn choose(&self, request: &RetrieveRequest, stats: &[QueueStats]) -> Option<String>;
}

/// A router that keeps every retrieve on the tape it was queued for: for processes that only
/// hand jobs back (drive sessions, collectors in tests) and leave the choice of tape to the
/// scheduler.
#[derive(Debug, Clone, Copy, Default)]
pub struct StayRouter;

impl RetrieveRouter for StayRouter {
    fn candidates(&self, request: &RetrieveRequest) -> Vec<String> {
        vec![request.active_vid.clone()]
    }
    fn choose(&self, request: &RetrieveRequest, _stats: &[QueueStats]) -> Option<String> {
        Some(request.active_vid.clone())
    }
}

/// The decision callback a backend runs while it holds its scheduling lock.
pub type DecideFn<'a> = dyn Fn(&MountInfo) -> Option<MountSpec> + Send + Sync + 'a;

/// The storage interface of the scheduler's queues.
///
/// Identities (archive file ids, request ids, copy numbers) come from the caller, never from the
/// backend; mount ids are the backend's. Implementations must give identical results for the same
/// sequence of calls: `crates/scenario` and the conformance tests check it.
#[async_trait]
pub trait SchedulerDb: Send + Sync {
    /// A short name for logs and traces (`objectstore-memory`, `postgres`...).
    fn name(&self) -> String;

    /// Checks that the backend answers.
    async fn ping(&self) -> Result<()>;

    // --- queueing -------------------------------------------------------------------------

    /// Stores an archive request and queues each job in its pool's queue, all or nothing.
    /// A request with the same archive file id already stored is a `conflict`.
    async fn queue_archive(&self, request: ArchiveRequest, now: Timestamp) -> Result<()>;

    /// Queues several archive requests, each all or nothing, and answers for each in order.
    /// Backends override it to share round trips and locks between the requests.
    async fn queue_archives(&self, requests: Vec<ArchiveRequest>, now: Timestamp) -> Vec<Result<()>> {
        let mut out = Vec::with_capacity(requests.len());
        for r in requests {
            out.push(self.queue_archive(r, now).await);
        }
        out
    }

    /// Stores a retrieve request and queues it in the queue of `request.active_vid`.
    async fn queue_retrieve(&self, request: RetrieveRequest, now: Timestamp) -> Result<()>;

    /// Queues several retrieve requests, each as [`SchedulerDb::queue_retrieve`] would one after
    /// the other (a request id repeated in the batch is a `conflict` after its first), and
    /// answers for each in order. Backends override it to share round trips and locks.
    async fn queue_retrieves(&self, requests: Vec<RetrieveRequest>, now: Timestamp) -> Vec<Result<()>> {
        let mut out = Vec::with_capacity(requests.len());
        for r in requests {
            out.push(self.queue_retrieve(r, now).await);
        }
        out
    }

    /// Totals of the retrieve queues of `vids` (a missing queue gives zeros), in the same order.
    async fn retrieve_queue_stats(&self, vids: &[String]) -> Result<Vec<QueueStats>>;

    /// Deletes the archive request wherever it is. Unknown id: `not_found`.
    async fn cancel_archive(&self, archive_file_id: u64, now: Timestamp) -> Result<()>;

    /// Deletes the retrieve requests of the file (only those for `dst_url` if given) that are still
    /// to transfer; returns how many. None: `not_found`.
    async fn cancel_retrieve(&self, archive_file_id: u64, dst_url: Option<&str>, now: Timestamp) -> Result<u64>;

    // --- mount decisions --------------------------------------------------------------------

    /// Potential mounts, read without the scheduling lock (dry runs, listings).
    async fn mount_info(&self, now: Timestamp) -> Result<MountInfo>;

    /// Takes the scheduling lock for `logical_library` (the objectstore's is global), reads the
    /// mount info, runs `decide` on it and, if it chose a mount, records the mount; returns the
    /// new mount's id and spec.
    async fn next_mount(
        &self,
        logical_library: &str,
        now: Timestamp,
        decide: &DecideFn<'_>,
    ) -> Result<Option<(MountId, MountSpec)>>;

    /// Records a mount decided elsewhere under a given id (the bridge mirrors mounts with it).
    async fn open_mount(&self, mount: MountId, spec: &MountSpec, now: Timestamp) -> Result<()>;

    // --- mounts -----------------------------------------------------------------------------

    /// Takes the next jobs of the mount's queue in queue order (see [`crate::rules::batch_len`])
    /// and gives them to the mount. Jobs the mount already failed up to the per-mount limit are
    /// not handed out again.
    async fn pop_jobs(&self, mount: MountId, max_files: u64, max_bytes: u64, now: Timestamp) -> Result<Vec<MountJob>>;

    /// Gives the named jobs to the mount (wherever they are queued); unknown or already taken jobs
    /// are left out of the answer.
    async fn claim_jobs(&self, mount: MountId, jobs: &[JobId], now: Timestamp) -> Result<Vec<MountJob>>;

    /// Records successful transfers of jobs held by the mount.
    async fn transfers_succeeded(&self, mount: MountId, jobs: &[TransferSuccess], now: Timestamp) -> Result<()>;

    /// Records failed transfers of jobs held by the mount, applying the retry rules.
    async fn transfers_failed(
        &self,
        mount: MountId,
        jobs: &[JobId],
        reason: &str,
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<()>;

    /// Puts jobs held by the mount back in their queues untouched (no retry counted); returns
    /// how many.
    async fn requeue_jobs(
        &self,
        mount: MountId,
        jobs: &[JobId],
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<u64>;

    /// Ends the mount cleanly: every job it still holds goes back to a queue; returns how many.
    async fn end_mount(&self, mount: MountId, now: Timestamp, router: &dyn RetrieveRouter) -> Result<u64>;

    /// The process running the mount died without cleaning up: its jobs stay owned by it until
    /// [`SchedulerDb::garbage_collect`]. (A real crash needs no call; this marks the owner dead
    /// at once for scenarios and tests.)
    async fn abandon_mount(&self, mount: MountId, now: Timestamp) -> Result<()>;

    /// Says that this process (and, with `mount`, that drive session) is alive at `now`. Long-
    /// running processes call it periodically; the collector treats owners whose heartbeat is
    /// older than the backend's timeout as dead.
    async fn heartbeat(&self, mount: Option<MountId>, now: Timestamp) -> Result<()> {
        let _ = (mount, now);
        Ok(())
    }

    /// Says that this process and each of `mounts` (the drive sessions it runs) are alive at
    /// `now`: what [`SchedulerDb::heartbeat`] says for the process and for each mount, in one call
    /// where the backend can (a tape server beats all its mounts at once). A mount that does not
    /// exist or has ended is an error naming it (not-found), as for `heartbeat`; the others are
    /// beaten all the same.
    async fn heartbeat_mounts(&self, mounts: &[MountId], now: Timestamp) -> Result<()> {
        self.heartbeat(None, now).await?;
        let mut first_error = None;
        for m in mounts {
            if let Err(e) = self.heartbeat(Some(*m), now).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Requeues everything owned by dead owners; returns how many jobs.
    async fn garbage_collect(&self, now: Timestamp, router: &dyn RetrieveRouter) -> Result<u64>;

    /// Puts a retrieve queue to sleep.
    async fn sleep_retrieve_queue(&self, vid: &str, sleep: QueueSleep, now: Timestamp) -> Result<()>;

    // --- reports ----------------------------------------------------------------------------

    /// Up to `max` due reports in canonical order ([`ReportJob::order_key`]).
    async fn reports_due(&self, filter: ReportFilter, max: u64, now: Timestamp) -> Result<Vec<ReportJob>>;

    /// Records delivered reports: successes are deleted, failures move to the failed list.
    async fn reports_delivered(&self, reports: &[RequestId], now: Timestamp) -> Result<()>;

    /// Records failed report deliveries (a report retry each; at the limit the request moves to
    /// the failed list).
    async fn reports_failed(&self, reports: &[RequestId], reason: &str, now: Timestamp) -> Result<()>;

    // --- tape-state cleanup -------------------------------------------------------------------

    /// Flags (or unflags) a VID's retrieve queue for cleanup.
    async fn set_cleanup_flag(&self, vid: &str, flag: bool, now: Timestamp) -> Result<()>;

    /// VIDs whose retrieve queue is flagged for cleanup, sorted.
    async fn cleanup_flagged(&self) -> Result<Vec<String>>;

    /// Moves every queued request of the VID to the router's choice (or fails it) and clears the
    /// flag.
    async fn drain_retrieve_queue(&self, vid: &str, now: Timestamp, router: &dyn RetrieveRouter)
        -> Result<DrainReport>;

    // --- leases -------------------------------------------------------------------------------

    /// Takes or renews the lease `name` for `holder` until `until`: granted (`true`) when the
    /// lease is free, expired (its `until` is at or before `now`) or already held by `holder`
    /// (renewed: its `until` becomes `until`); refused (`false`) while another holder's runs.
    /// Atomic: of two instances asking at once, at most one is granted. Maintenance loops take
    /// one each, so that several instances do not do a pass twice.
    async fn try_lease(&self, name: &str, holder: &str, until: Timestamp, now: Timestamp) -> Result<bool>;

    /// Gives the lease `name` up if `holder` holds it (another holder's lease, or none: nothing).
    async fn release_lease(&self, name: &str, holder: &str) -> Result<()>;

    // --- listings -----------------------------------------------------------------------------

    /// Queued jobs of one queue (pool or VID) in queue order, or of every queue sorted by queue
    /// name then queue order.
    async fn list_pending(&self, kind: JobKind, queue: Option<&str>) -> Result<Vec<PendingJob>>;

    /// Archive file ids of failed requests, ascending.
    async fn list_failed(&self, kind: JobKind) -> Result<Vec<u64>>;

    // --- repack -------------------------------------------------------------------------------
    //
    // Repack subrequests are ordinary requests carrying a `RepackLink`: retrieves queue in the
    // repacked tape's queue, archives in their pools' ArchiveForRepack queues, and every rule of
    // `crate::rules` applies to them. They never appear in `reports_due` or `list_failed`: their
    // outcome goes to their repack through `repack_reports_due` / `repack_reports_processed`.

    /// Stores a new repack request. A repack of the same VID already stored: `conflict`.
    async fn queue_repack(&self, request: RepackRequest, now: Timestamp) -> Result<()>;

    /// Every repack request, sorted by VID.
    async fn repacks(&self) -> Result<Vec<RepackRequest>>;

    /// The repack request of `vid`, if any.
    async fn repack(&self, vid: &str) -> Result<Option<RepackRequest>> {
        Ok(self.repacks().await?.into_iter().find(|r| r.vid == vid))
    }

    /// Applies `update` to the repack of `vid` atomically ([`RepackUpdate::apply`], which
    /// refuses with `conflict` when the request is no longer in `update.expected_status`) and
    /// returns the request as stored. No repack of `vid`: `not_found`.
    async fn update_repack(&self, vid: &str, update: &RepackUpdate, now: Timestamp) -> Result<RepackRequest>;

    /// Stores and queues one expansion pass of the repack of `vid`: the retrieve subrequests
    /// (each in the queue of its `active_vid` if `ToTransfer`, or due to its repack if already
    /// `ToReportForTransfer`: a file an operator provided) and `update` (the new cursor and
    /// counters), all or nothing: after a crash either all of it is there or none of it is
    /// visible (the collector removes what an unfinished pass left). No repack of `vid`:
    /// `not_found`.
    async fn queue_repack_subrequests(
        &self,
        vid: &str,
        subrequests: Vec<RetrieveRequest>,
        update: &RepackUpdate,
        now: Timestamp,
    ) -> Result<()>;

    /// Up to `max` repack subrequests whose outcome is due to their repack, in canonical order
    /// ([`RepackReport::order_key`]): retrieves in `ToReportForTransfer` / `ToReportForFailure`,
    /// archive requests with a job in `ToReportForTransfer` / `ToReportForFailure`.
    async fn repack_reports_due(&self, max: u64, now: Timestamp) -> Result<Vec<RepackReport>>;

    /// Applies what processing repack reports decided ([`RepackReportBatch`]), all or nothing.
    async fn repack_reports_processed(&self, batch: &RepackReportBatch, now: Timestamp) -> Result<()>;

    /// Deletes the repack of `vid` and every one of its subrequests, retrieve or archive,
    /// wherever they are (queued, held by a mount, due to the repack); returns how many
    /// subrequests. A mount holding one later reports on it in vain (ignored). No repack of
    /// `vid`: `not_found`.
    async fn cancel_repack(&self, vid: &str, now: Timestamp) -> Result<u64>;

    // --- full state (migration between backends) ------------------------------------------------
    //
    // See `crate::state`. The defaults refuse: a backend that cannot describe its state whole
    // (a wrapper) says so instead of answering with a partial one.

    /// Up to `limit` items of the backend's state whose key is after `after` (all if `None`), in
    /// key order ([`StateKey`]'s `Ord`). Paging on with the last key returned reads everything.
    async fn export_state(&self, after: Option<&StateKey>, limit: usize) -> Result<Vec<StateItem>> {
        let _ = (after, limit);
        Err(crate::Error::invalid(format!("backend {} cannot export its state", self.name())))
    }

    /// How many items [`SchedulerDb::export_state`] would give now, if the backend can tell
    /// cheaply (progress estimates).
    async fn state_len(&self) -> Result<Option<u64>> {
        Ok(None)
    }

    /// The items of `keys` as stored now (absent ones are left out), in key order.
    async fn read_state(&self, keys: &[StateKey]) -> Result<Vec<StateItem>> {
        let _ = keys;
        Err(crate::Error::invalid(format!("backend {} cannot read its state", self.name())))
    }

    /// Writes items so that the backend behaves as if it had received them through its normal
    /// operations: queued jobs join their queues (in `position` order within a queue), held jobs
    /// their mounts, summaries follow. An item already stored and the same
    /// ([`StateItem::same`]) is left alone; one stored and different is replaced.
    async fn import_state(&self, items: Vec<StateItem>, now: Timestamp) -> Result<()> {
        let _ = (items, now);
        Err(crate::Error::invalid(format!("backend {} cannot import state", self.name())))
    }

    /// Deletes the items of `keys` wherever they are (absent ones are ignored); a mount is
    /// deleted only when it holds nothing.
    async fn delete_state(&self, keys: &[StateKey], now: Timestamp) -> Result<()> {
        let _ = (keys, now);
        Err(crate::Error::invalid(format!("backend {} cannot delete state", self.name())))
    }
}

/// Per-drive reservations of disk-system space, bytes, as the catalogue keeps them.
pub type Reservations = BTreeMap<(String, String), u64>;

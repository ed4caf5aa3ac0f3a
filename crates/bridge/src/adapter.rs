//! The `SchedulerDb` implementation of [`BridgeDb`]: each method is a write (mirrored), a read
//! (compared in shadow and live) or, for mount decisions and pops, an operation of `mounts.rs`.
//!
//! The full-state methods (migration tools) follow the same split: `export_state`, `state_len`
//! and `read_state` answer from the authoritative side (never compared: verify compares the two
//! sides itself), `import_state` and `delete_state` are writes, mirrored in the stages that
//! mirror writes.

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use tapesched_scheduler::clock::Timestamp;
use tapesched_scheduler::db::*;
use tapesched_scheduler::repack::{RepackReport, RepackReportBatch, RepackRequest, RepackUpdate};
use tapesched_scheduler::state::{StateItem, StateKey};
use tapesched_scheduler::types::*;
use tapesched_scheduler::{Error, Result};

use crate::db::{read_op, timed, write_op, BridgeDb};
use crate::divergence::{Answer, Concern};

/// A batch write's future, as a `SchedulerDb` batch method returns it.
type BatchFuture<'a> = Pin<Box<dyn Future<Output = Vec<Result<()>>> + Send + 'a>>;

impl BridgeDb {
    /// A batch of new requests (`queue_archives`, `queue_retrieves`) written by `call` to both
    /// sides at once, the batch one call per side and each request's answer one comparison of
    /// `op` (a request named by `concerns` in a divergence).
    async fn queue_batch<R: Clone + Send + Sync>(
        &self,
        op: &str,
        requests: Vec<R>,
        now: Timestamp,
        concerns: impl Fn(&R) -> Vec<Concern>,
        call: impl for<'a> Fn(&'a dyn SchedulerDb, Vec<R>) -> BatchFuture<'a>,
    ) -> Vec<Result<()>> {
        let route = match self.route(Some(now)).await {
            Ok(r) => r,
            Err(e) => return requests.iter().map(|_| Err(e.clone())).collect(),
        };
        let Some(other) = route.other else { return call(route.auth, requests).await };
        let named: Vec<Vec<Concern>> = requests.iter().map(concerns).collect();
        if crate::failpoint::armed(crate::failpoint::AFTER_AUTHORITY_WRITE) {
            let _ = call(route.auth, requests.clone()).await;
            crate::failpoint::fire(crate::failpoint::AFTER_AUTHORITY_WRITE);
        }
        let n = requests.len();
        let ((a, la), (o, lo)) = tokio::join!(
            timed(call(route.auth, requests.clone())),
            timed(self.bounded_batch(call(other, requests), n))
        );
        self.log.answered(op, route.authority, la, a.iter().any(Result::is_err));
        self.log.answered(op, route.authority.other(), lo, o.iter().any(Result::is_err));
        for (i, concerns) in named.into_iter().enumerate() {
            self.log.count_call(op);
            let answer = |all: &[Result<()>]| {
                all.get(i).cloned().unwrap_or_else(|| Err(Error::internal("no answer for this request")))
            };
            let (x, y) = (answer(&a), answer(&o));
            if crate::db::same(&x, &y) && a.len() == o.len() {
                self.log.matched(op);
            } else {
                let note =
                    (a.len() != o.len()).then(|| format!("answered {} and {} requests for {n}", a.len(), o.len()));
                self.diverge(&route, op, concerns, Answer::of(&x), Answer::of(&y), note);
            }
        }
        a
    }
}

fn jobs_of(mount: MountId, jobs: impl IntoIterator<Item = JobId>) -> Vec<Concern> {
    std::iter::once(Concern::Mount(mount)).chain(jobs.into_iter().map(Concern::Job)).collect()
}

fn requests(ids: &[RequestId]) -> Vec<Concern> {
    ids.iter().copied().map(Concern::Request).collect()
}

/// What a state key names, as a divergence's concern.
fn of_key(key: &StateKey) -> Concern {
    match key {
        StateKey::Mount(m) => Concern::Mount(*m),
        StateKey::Repack(v) => Concern::Repack(v.clone()),
        StateKey::Archive(a) => Concern::Request(RequestId::Archive(*a)),
        StateKey::RepackArchive(s) => Concern::Request(RequestId::RepackArchive(*s)),
        StateKey::Retrieve(r) => Concern::Request(RequestId::Retrieve(*r)),
        StateKey::Marker(v) => Concern::Queue(v.clone()),
    }
}

#[async_trait]
impl SchedulerDb for BridgeDb {
    fn name(&self) -> String {
        self.describe()
    }

    async fn ping(&self) -> Result<()> {
        write_op!(self, "ping", None, Vec::new(), |db| db.ping())
    }

    async fn queue_archive(&self, request: ArchiveRequest, now: Timestamp) -> Result<()> {
        let id = request.id();
        write_op!(self, "queue_archive", Some(now), vec![Concern::Request(id)], |db| db
            .queue_archive(request.clone(), now))
    }

    async fn queue_archives(&self, requests: Vec<ArchiveRequest>, now: Timestamp) -> Vec<Result<()>> {
        let concerns = |r: &ArchiveRequest| vec![Concern::Request(r.id())];
        self.queue_batch("queue_archive", requests, now, concerns, |db: &dyn SchedulerDb, rs| {
            db.queue_archives(rs, now)
        })
        .await
    }

    async fn queue_retrieve(&self, request: RetrieveRequest, now: Timestamp) -> Result<()> {
        let id = RequestId::Retrieve(request.request_id);
        write_op!(
            self,
            "queue_retrieve",
            Some(now),
            vec![Concern::Request(id), Concern::Queue(request.active_vid.clone())],
            |db| db.queue_retrieve(request.clone(), now)
        )
    }

    async fn queue_retrieves(&self, requests: Vec<RetrieveRequest>, now: Timestamp) -> Vec<Result<()>> {
        let concerns = |r: &RetrieveRequest| {
            vec![Concern::Request(RequestId::Retrieve(r.request_id)), Concern::Queue(r.active_vid.clone())]
        };
        self.queue_batch("queue_retrieve", requests, now, concerns, |db: &dyn SchedulerDb, rs| {
            db.queue_retrieves(rs, now)
        })
        .await
    }

    async fn retrieve_queue_stats(&self, vids: &[String]) -> Result<Vec<QueueStats>> {
        read_op!(self, "retrieve_queue_stats", None, vids.iter().cloned().map(Concern::Queue).collect(), |db| db
            .retrieve_queue_stats(vids))
    }

    async fn cancel_archive(&self, archive_file_id: u64, now: Timestamp) -> Result<()> {
        write_op!(self, "cancel_archive", Some(now), vec![Concern::ArchiveFile(archive_file_id)], |db| db
            .cancel_archive(archive_file_id, now))
    }

    async fn cancel_retrieve(&self, archive_file_id: u64, dst_url: Option<&str>, now: Timestamp) -> Result<u64> {
        write_op!(self, "cancel_retrieve", Some(now), vec![Concern::ArchiveFile(archive_file_id)], |db| db
            .cancel_retrieve(archive_file_id, dst_url, now))
    }

    async fn mount_info(&self, now: Timestamp) -> Result<MountInfo> {
        read_op!(self, "mount_info", Some(now), Vec::new(), |db| db.mount_info(now))
    }

    async fn next_mount(
        &self,
        logical_library: &str,
        now: Timestamp,
        decide: &DecideFn<'_>,
    ) -> Result<Option<(MountId, MountSpec)>> {
        self.next_mount_op(logical_library, now, decide).await
    }

    async fn open_mount(&self, mount: MountId, spec: &MountSpec, now: Timestamp) -> Result<()> {
        write_op!(
            self,
            "open_mount",
            Some(now),
            vec![Concern::Mount(mount), Concern::Drive(spec.drive.clone())],
            |db| db.open_mount(mount, spec, now)
        )
    }

    async fn pop_jobs(&self, mount: MountId, max_files: u64, max_bytes: u64, now: Timestamp) -> Result<Vec<MountJob>> {
        self.pop_jobs_op(mount, max_files, max_bytes, now).await
    }

    async fn claim_jobs(&self, mount: MountId, jobs: &[JobId], now: Timestamp) -> Result<Vec<MountJob>> {
        write_op!(self, "claim_jobs", Some(now), jobs_of(mount, jobs.iter().copied()), |db| db
            .claim_jobs(mount, jobs, now))
    }

    async fn transfers_succeeded(&self, mount: MountId, jobs: &[TransferSuccess], now: Timestamp) -> Result<()> {
        write_op!(self, "transfers_succeeded", Some(now), jobs_of(mount, jobs.iter().map(|j| j.job)), |db| db
            .transfers_succeeded(mount, jobs, now))
    }

    async fn transfers_failed(
        &self,
        mount: MountId,
        jobs: &[JobId],
        reason: &str,
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<()> {
        write_op!(self, "transfers_failed", Some(now), jobs_of(mount, jobs.iter().copied()), |db| db
            .transfers_failed(mount, jobs, reason, now, router))
    }

    async fn requeue_jobs(
        &self,
        mount: MountId,
        jobs: &[JobId],
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<u64> {
        write_op!(self, "requeue_jobs", Some(now), jobs_of(mount, jobs.iter().copied()), |db| db
            .requeue_jobs(mount, jobs, now, router))
    }

    async fn end_mount(&self, mount: MountId, now: Timestamp, router: &dyn RetrieveRouter) -> Result<u64> {
        write_op!(self, "end_mount", Some(now), vec![Concern::Mount(mount)], |db| db.end_mount(mount, now, router))
    }

    async fn abandon_mount(&self, mount: MountId, now: Timestamp) -> Result<()> {
        write_op!(self, "abandon_mount", Some(now), vec![Concern::Mount(mount)], |db| db.abandon_mount(mount, now))
    }

    async fn heartbeat(&self, mount: Option<MountId>, now: Timestamp) -> Result<()> {
        write_op!(self, "heartbeat", Some(now), mount.map(Concern::Mount).into_iter().collect(), |db| db
            .heartbeat(mount, now))
    }

    async fn heartbeat_mounts(&self, mounts: &[MountId], now: Timestamp) -> Result<()> {
        let concerns = mounts.iter().copied().map(Concern::Mount).collect();
        write_op!(self, "heartbeat", Some(now), concerns, |db| db.heartbeat_mounts(mounts, now))
    }

    async fn garbage_collect(&self, now: Timestamp, router: &dyn RetrieveRouter) -> Result<u64> {
        write_op!(self, "garbage_collect", Some(now), Vec::new(), |db| db.garbage_collect(now, router))
    }

    async fn sleep_retrieve_queue(&self, vid: &str, sleep: QueueSleep, now: Timestamp) -> Result<()> {
        write_op!(self, "sleep_retrieve_queue", Some(now), vec![Concern::Queue(vid.to_string())], |db| db
            .sleep_retrieve_queue(vid, sleep.clone(), now))
    }

    async fn reports_due(&self, filter: ReportFilter, max: u64, now: Timestamp) -> Result<Vec<ReportJob>> {
        let due = read_op!(self, "reports_due", Some(now), Vec::new(), |db| db.reports_due(filter, max, now))?;
        self.due_on_both_sides(due, now).await
    }

    async fn reports_delivered(&self, reports: &[RequestId], now: Timestamp) -> Result<()> {
        write_op!(self, "reports_delivered", Some(now), requests(reports), |db| db.reports_delivered(reports, now))
    }

    async fn reports_failed(&self, reports: &[RequestId], reason: &str, now: Timestamp) -> Result<()> {
        write_op!(self, "reports_failed", Some(now), requests(reports), |db| db.reports_failed(reports, reason, now))
    }

    async fn set_cleanup_flag(&self, vid: &str, flag: bool, now: Timestamp) -> Result<()> {
        write_op!(self, "set_cleanup_flag", Some(now), vec![Concern::Queue(vid.to_string())], |db| db
            .set_cleanup_flag(vid, flag, now))
    }

    async fn cleanup_flagged(&self) -> Result<Vec<String>> {
        read_op!(self, "cleanup_flagged", None, Vec::new(), |db| db.cleanup_flagged())
    }

    // Leases are not mirrored: they coordinate processes for a while, not scheduling state, so
    // they live on the authoritative side of the stage (a stage change may grant a lease a
    // second time, once: a maintenance pass runs twice at most, and passes are idempotent).
    async fn try_lease(&self, name: &str, holder: &str, until: Timestamp, now: Timestamp) -> Result<bool> {
        self.route(Some(now)).await?.auth.try_lease(name, holder, until, now).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.route(None).await?.auth.release_lease(name, holder).await
    }

    async fn drain_retrieve_queue(
        &self,
        vid: &str,
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<DrainReport> {
        write_op!(self, "drain_retrieve_queue", Some(now), vec![Concern::Queue(vid.to_string())], |db| db
            .drain_retrieve_queue(vid, now, router))
    }

    async fn list_pending(&self, kind: JobKind, queue: Option<&str>) -> Result<Vec<PendingJob>> {
        read_op!(self, "list_pending", None, queue.map(|q| Concern::Queue(q.to_string())).into_iter().collect(), |db| {
            db.list_pending(kind, queue)
        })
    }

    async fn list_failed(&self, kind: JobKind) -> Result<Vec<u64>> {
        read_op!(self, "list_failed", None, Vec::new(), |db| db.list_failed(kind))
    }

    async fn queue_repack(&self, request: RepackRequest, now: Timestamp) -> Result<()> {
        let vid = request.vid.clone();
        write_op!(self, "queue_repack", Some(now), vec![Concern::Repack(vid)], |db| db
            .queue_repack(request.clone(), now))
    }

    async fn repacks(&self) -> Result<Vec<RepackRequest>> {
        read_op!(self, "repacks", None, Vec::new(), |db| db.repacks())
    }

    async fn repack(&self, vid: &str) -> Result<Option<RepackRequest>> {
        read_op!(self, "repack", None, vec![Concern::Repack(vid.to_string())], |db| db.repack(vid))
    }

    async fn update_repack(&self, vid: &str, update: &RepackUpdate, now: Timestamp) -> Result<RepackRequest> {
        write_op!(self, "update_repack", Some(now), vec![Concern::Repack(vid.to_string())], |db| db
            .update_repack(vid, update, now))
    }

    async fn queue_repack_subrequests(
        &self,
        vid: &str,
        subrequests: Vec<RetrieveRequest>,
        update: &RepackUpdate,
        now: Timestamp,
    ) -> Result<()> {
        let concerns = std::iter::once(Concern::Repack(vid.to_string()))
            .chain(subrequests.iter().map(|r| Concern::Request(RequestId::Retrieve(r.request_id))))
            .collect();
        write_op!(self, "queue_repack_subrequests", Some(now), concerns, |db| db.queue_repack_subrequests(
            vid,
            subrequests.clone(),
            update,
            now
        ))
    }

    async fn repack_reports_due(&self, max: u64, now: Timestamp) -> Result<Vec<RepackReport>> {
        read_op!(self, "repack_reports_due", Some(now), Vec::new(), |db| db.repack_reports_due(max, now))
    }

    async fn repack_reports_processed(&self, batch: &RepackReportBatch, now: Timestamp) -> Result<()> {
        let concerns = batch
            .updates
            .iter()
            .map(|(vid, _)| Concern::Repack(vid.clone()))
            .chain(batch.retrieves.iter().map(|id| Concern::Request(RequestId::Retrieve(*id))))
            .chain(batch.archives.iter().map(|r| Concern::Request(r.id())))
            .chain(batch.archive_jobs.iter().copied().map(Concern::Job))
            .collect();
        write_op!(self, "repack_reports_processed", Some(now), concerns, |db| db.repack_reports_processed(batch, now))
    }

    async fn cancel_repack(&self, vid: &str, now: Timestamp) -> Result<u64> {
        write_op!(self, "cancel_repack", Some(now), vec![Concern::Repack(vid.to_string())], |db| db
            .cancel_repack(vid, now))
    }

    async fn export_state(&self, after: Option<&StateKey>, limit: usize) -> Result<Vec<StateItem>> {
        self.route(None).await?.auth.export_state(after, limit).await
    }

    async fn state_len(&self) -> Result<Option<u64>> {
        self.route(None).await?.auth.state_len().await
    }

    async fn read_state(&self, keys: &[StateKey]) -> Result<Vec<StateItem>> {
        self.route(None).await?.auth.read_state(keys).await
    }

    async fn import_state(&self, items: Vec<StateItem>, now: Timestamp) -> Result<()> {
        let concerns = items.iter().map(|i| of_key(&i.key())).collect();
        write_op!(self, "import_state", Some(now), concerns, |db| db.import_state(items.clone(), now))
    }

    async fn delete_state(&self, keys: &[StateKey], now: Timestamp) -> Result<()> {
        write_op!(self, "delete_state", Some(now), keys.iter().map(of_key).collect(), |db| db.delete_state(keys, now))
    }
}

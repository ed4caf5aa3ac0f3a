//! The thin `SchedulerDb` adapter: each trait method calls the operation of the same name
//! (`*_op`) in the module of its area.

use tapesched_scheduler::repack::{RepackReport, RepackReportBatch, RepackRequest, RepackUpdate};
use tapesched_scheduler::state::{StateItem, StateKey};

use super::*;

#[async_trait]
impl SchedulerDb for ObjectstoreDb {
    fn name(&self) -> String {
        format!("objectstore-{}", self.objs.store().describe())
    }

    async fn ping(&self) -> Result<()> {
        self.ping_op().await
    }

    async fn queue_archive(&self, request: ArchiveRequest, now: Timestamp) -> Result<()> {
        self.queue_archive_op(request, now).await
    }

    async fn queue_archives(&self, requests: Vec<ArchiveRequest>, now: Timestamp) -> Vec<Result<()>> {
        self.queue_archives_op(requests, now).await
    }

    async fn queue_retrieve(&self, request: RetrieveRequest, now: Timestamp) -> Result<()> {
        self.queue_retrieve_op(request, now).await
    }

    async fn queue_retrieves(&self, requests: Vec<RetrieveRequest>, now: Timestamp) -> Vec<Result<()>> {
        self.queue_retrieves_op(requests, now).await
    }

    async fn retrieve_queue_stats(&self, vids: &[String]) -> Result<Vec<QueueStats>> {
        self.retrieve_queue_stats_op(vids).await
    }

    async fn cancel_archive(&self, archive_file_id: u64, now: Timestamp) -> Result<()> {
        self.cancel_archive_op(archive_file_id, now).await
    }

    async fn cancel_retrieve(&self, archive_file_id: u64, dst_url: Option<&str>, now: Timestamp) -> Result<u64> {
        self.cancel_retrieve_op(archive_file_id, dst_url, now).await
    }

    async fn mount_info(&self, _now: Timestamp) -> Result<MountInfo> {
        self.mount_info_op(_now).await
    }

    async fn next_mount(
        &self,
        _logical_library: &str,
        now: Timestamp,
        decide: &DecideFn<'_>,
    ) -> Result<Option<(MountId, MountSpec)>> {
        self.next_mount_op(_logical_library, now, decide).await
    }

    async fn open_mount(&self, mount: MountId, spec: &MountSpec, now: Timestamp) -> Result<()> {
        self.open_mount_op(mount, spec, now).await
    }

    async fn pop_jobs(&self, mount: MountId, max_files: u64, max_bytes: u64, now: Timestamp) -> Result<Vec<MountJob>> {
        self.pop_jobs_op(mount, max_files, max_bytes, now).await
    }

    async fn claim_jobs(&self, mount: MountId, jobs: &[JobId], now: Timestamp) -> Result<Vec<MountJob>> {
        self.claim_jobs_op(mount, jobs, now).await
    }

    async fn transfers_succeeded(&self, mount: MountId, jobs: &[TransferSuccess], now: Timestamp) -> Result<()> {
        self.transfers_succeeded_op(mount, jobs, now).await
    }

    async fn transfers_failed(
        &self,
        mount: MountId,
        jobs: &[JobId],
        reason: &str,
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<()> {
        self.transfers_failed_op(mount, jobs, reason, now, router).await
    }

    async fn requeue_jobs(
        &self,
        mount: MountId,
        jobs: &[JobId],
        now: Timestamp,
        _router: &dyn RetrieveRouter,
    ) -> Result<u64> {
        self.requeue_jobs_op(mount, jobs, now, _router).await
    }

    async fn end_mount(&self, mount: MountId, now: Timestamp, router: &dyn RetrieveRouter) -> Result<u64> {
        self.end_mount_op(mount, now, router).await
    }

    async fn abandon_mount(&self, mount: MountId, now: Timestamp) -> Result<()> {
        self.abandon_mount_op(mount, now).await
    }

    async fn heartbeat(&self, mount: Option<MountId>, now: Timestamp) -> Result<()> {
        self.heartbeat_op(mount, now).await
    }

    async fn heartbeat_mounts(&self, mounts: &[MountId], now: Timestamp) -> Result<()> {
        self.heartbeat_mounts_op(mounts, now).await
    }

    async fn garbage_collect(&self, now: Timestamp, router: &dyn RetrieveRouter) -> Result<u64> {
        self.garbage_collect_op(now, router).await
    }

    async fn sleep_retrieve_queue(&self, vid: &str, sleep: QueueSleep, now: Timestamp) -> Result<()> {
        self.sleep_retrieve_queue_op(vid, sleep, now).await
    }

    async fn reports_due(&self, filter: ReportFilter, max: u64, _now: Timestamp) -> Result<Vec<ReportJob>> {
        self.reports_due_op(filter, max, _now).await
    }

    async fn reports_delivered(&self, reports: &[RequestId], now: Timestamp) -> Result<()> {
        self.reports_delivered_op(reports, now).await
    }

    async fn reports_failed(&self, reports: &[RequestId], reason: &str, now: Timestamp) -> Result<()> {
        self.reports_failed_op(reports, reason, now).await
    }

    async fn set_cleanup_flag(&self, vid: &str, flag: bool, now: Timestamp) -> Result<()> {
        self.set_cleanup_flag_op(vid, flag, now).await
    }

    async fn cleanup_flagged(&self) -> Result<Vec<String>> {
        self.cleanup_flagged_op().await
    }

    async fn try_lease(&self, name: &str, holder: &str, until: Timestamp, now: Timestamp) -> Result<bool> {
        self.try_lease_op(name, holder, until, now).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        self.release_lease_op(name, holder).await
    }

    async fn drain_retrieve_queue(
        &self,
        vid: &str,
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<DrainReport> {
        self.drain_retrieve_queue_op(vid, now, router).await
    }

    async fn list_pending(&self, kind: JobKind, queue: Option<&str>) -> Result<Vec<PendingJob>> {
        self.list_pending_op(kind, queue).await
    }

    async fn list_failed(&self, kind: JobKind) -> Result<Vec<u64>> {
        self.list_failed_op(kind).await
    }

    async fn queue_repack(&self, request: RepackRequest, now: Timestamp) -> Result<()> {
        self.queue_repack_op(request, now).await
    }

    async fn repacks(&self) -> Result<Vec<RepackRequest>> {
        self.repacks_op().await
    }

    async fn repack(&self, vid: &str) -> Result<Option<RepackRequest>> {
        self.repack_op(vid).await
    }

    async fn update_repack(&self, vid: &str, update: &RepackUpdate, now: Timestamp) -> Result<RepackRequest> {
        self.update_repack_op(vid, update, now).await
    }

    async fn queue_repack_subrequests(
        &self,
        vid: &str,
        subrequests: Vec<RetrieveRequest>,
        update: &RepackUpdate,
        now: Timestamp,
    ) -> Result<()> {
        self.queue_repack_subrequests_op(vid, subrequests, update, now).await
    }

    async fn repack_reports_due(&self, max: u64, now: Timestamp) -> Result<Vec<RepackReport>> {
        self.repack_reports_due_op(max, now).await
    }

    async fn repack_reports_processed(&self, batch: &RepackReportBatch, now: Timestamp) -> Result<()> {
        self.repack_reports_processed_op(batch, now).await
    }

    async fn cancel_repack(&self, vid: &str, now: Timestamp) -> Result<u64> {
        self.cancel_repack_op(vid, now).await
    }

    async fn export_state(&self, after: Option<&StateKey>, limit: usize) -> Result<Vec<StateItem>> {
        self.export_state_op(after, limit).await
    }

    async fn read_state(&self, keys: &[StateKey]) -> Result<Vec<StateItem>> {
        self.read_state_op(keys).await
    }

    async fn import_state(&self, items: Vec<StateItem>, now: Timestamp) -> Result<()> {
        self.import_state_op(items, now).await
    }

    async fn delete_state(&self, keys: &[StateKey], now: Timestamp) -> Result<()> {
        self.delete_state_op(keys, now).await
    }

    async fn state_len(&self) -> Result<Option<u64>> {
        self.state_len_op().await.map(Some)
    }
}

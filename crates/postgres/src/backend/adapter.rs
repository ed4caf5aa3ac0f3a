//! The thin `SchedulerDb` adapter: each trait method runs its `*_once` operation through the
//! retry loop ([`crate::error::retry`]).

use tapesched_scheduler::state::{StateItem, StateKey};

use super::*;

#[async_trait]
impl SchedulerDb for PgSchedulerDb {
    fn name(&self) -> String {
        "postgres".into()
    }

    async fn ping(&self) -> Result<()> {
        retry(self.config.max_attempts, || async move {
            let mut conn = self.pool.acquire().await?;
            sqlx::query("SELECT 1 FROM queue_summary LIMIT 1").execute(&mut *conn).await?;
            Ok(())
        })
        .await
    }

    async fn queue_archive(&self, request: ArchiveRequest, now: Timestamp) -> Result<()> {
        self.queue_archive_batch(std::slice::from_ref(&request), now).await?.pop().unwrap_or(Ok(()))
    }

    async fn queue_archives(&self, requests: Vec<ArchiveRequest>, now: Timestamp) -> Vec<Result<()>> {
        match self.queue_archive_batch(&requests, now).await {
            Ok(answers) => answers,
            Err(e) => requests.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    async fn queue_retrieve(&self, request: RetrieveRequest, now: Timestamp) -> Result<()> {
        if request.active_copy().is_none() {
            return Err(Error::invalid(format!(
                "retrieve request {} targets tape {:?}, which holds none of its copies",
                request.request_id, request.active_vid
            )));
        }
        retry(self.config.max_attempts, || self.queue_retrieve_once(&request, now)).await
    }

    async fn queue_retrieves(&self, requests: Vec<RetrieveRequest>, now: Timestamp) -> Vec<Result<()>> {
        match self.queue_retrieve_batch(&requests, now).await {
            Ok(answers) => answers,
            Err(e) => requests.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    async fn retrieve_queue_stats(&self, vids: &[String]) -> Result<Vec<QueueStats>> {
        retry(self.config.max_attempts, || async move {
            let mut tx = self.begin().await?;
            let mut view = StatsView::default();
            view.load(&mut tx, vids).await?;
            tx.rollback().await.ok();
            Ok(view.stats(vids))
        })
        .await
    }

    async fn cancel_archive(&self, archive_file_id: u64, now: Timestamp) -> Result<()> {
        retry(self.config.max_attempts, || self.cancel_archive_once(archive_file_id, now)).await
    }

    async fn cancel_retrieve(&self, archive_file_id: u64, dst_url: Option<&str>, now: Timestamp) -> Result<u64> {
        retry(self.config.max_attempts, || self.cancel_retrieve_once(archive_file_id, dst_url, now)).await
    }

    async fn mount_info(&self, _now: Timestamp) -> Result<MountInfo> {
        retry(self.config.max_attempts, || async move {
            let mut conn = self.pool.acquire().await?;
            self.read_mount_info(&mut conn).await
        })
        .await
    }

    async fn next_mount(
        &self,
        logical_library: &str,
        now: Timestamp,
        decide: &DecideFn<'_>,
    ) -> Result<Option<(MountId, MountSpec)>> {
        retry(self.config.max_attempts, || self.next_mount_once(logical_library, now, decide)).await
    }

    async fn open_mount(&self, mount: MountId, spec: &MountSpec, now: Timestamp) -> Result<()> {
        retry(self.config.max_attempts, || self.open_mount_once(mount, spec, now)).await
    }

    async fn pop_jobs(&self, mount: MountId, max_files: u64, max_bytes: u64, now: Timestamp) -> Result<Vec<MountJob>> {
        retry(self.config.max_attempts, || self.pop_once(mount, max_files, max_bytes, now)).await
    }

    async fn claim_jobs(&self, mount: MountId, jobs: &[JobId], now: Timestamp) -> Result<Vec<MountJob>> {
        retry(self.config.max_attempts, || self.claim_once(mount, jobs, now)).await
    }

    async fn transfers_succeeded(&self, mount: MountId, jobs: &[TransferSuccess], now: Timestamp) -> Result<()> {
        retry(self.config.max_attempts, || self.succeeded_once(mount, jobs, now)).await
    }

    async fn transfers_failed(
        &self,
        mount: MountId,
        jobs: &[JobId],
        reason: &str,
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<()> {
        retry(self.config.max_attempts, || self.failed_once(mount, jobs, reason, now, router)).await
    }

    async fn requeue_jobs(
        &self,
        mount: MountId,
        jobs: &[JobId],
        now: Timestamp,
        _router: &dyn RetrieveRouter,
    ) -> Result<u64> {
        retry(self.config.max_attempts, || self.requeue_once(mount, jobs, now)).await
    }

    async fn end_mount(&self, mount: MountId, now: Timestamp, router: &dyn RetrieveRouter) -> Result<u64> {
        retry(self.config.max_attempts, || self.end_mount_once(mount, now, router)).await
    }

    async fn abandon_mount(&self, mount: MountId, now: Timestamp) -> Result<()> {
        retry(self.config.max_attempts, || async move {
            let mut tx = self.begin().await?;
            let n = sqlx::query(
                "UPDATE mount SET abandoned = true, heartbeat = greatest(heartbeat, $2) WHERE mount_id = $1",
            )
            .bind(mount as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(Fail::Fatal(Error::not_found(format!("mount {mount} does not exist or has ended"))));
            }
            Self::commit(tx).await
        })
        .await
    }

    async fn heartbeat(&self, mount: Option<MountId>, now: Timestamp) -> Result<()> {
        let Some(mount) = mount else { return Ok(()) };
        // One statement, committed on its own: the same row change as `touch_mount` in a
        // transaction, in one round trip instead of three (idempotent, so tried again safely).
        retry(self.config.max_attempts, || async move {
            let found: Option<i64> = sqlx::query_scalar(
                "UPDATE mount SET heartbeat = greatest(heartbeat, $2) WHERE mount_id = $1 RETURNING mount_id",
            )
            .bind(mount as i64)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
            match found {
                Some(_) => Ok(()),
                None => Err(Fail::Fatal(Error::not_found(format!("mount {mount} does not exist or has ended")))),
            }
        })
        .await
    }

    async fn heartbeat_mounts(&self, mounts: &[MountId], now: Timestamp) -> Result<()> {
        if mounts.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = mounts.iter().map(|m| *m as i64).collect();
        // One statement for every mount (only mounts beat here), idempotent like `heartbeat`.
        let found: Vec<i64> = retry(self.config.max_attempts, || async {
            Ok(sqlx::query_scalar(
                "UPDATE mount SET heartbeat = greatest(heartbeat, $2) WHERE mount_id = ANY($1) RETURNING mount_id",
            )
            .bind(&ids)
            .bind(now)
            .fetch_all(&self.pool)
            .await?)
        })
        .await?;
        match mounts.iter().find(|m| !found.contains(&(**m as i64))) {
            Some(m) => Err(Error::not_found(format!("mount {m} does not exist or has ended"))),
            None => Ok(()),
        }
    }

    async fn garbage_collect(&self, now: Timestamp, router: &dyn RetrieveRouter) -> Result<u64> {
        let requeued = retry(self.config.max_attempts, || self.gc_once(now, router)).await?;
        retry(self.config.max_attempts, || self.prune_summary_tombstones()).await?;
        Ok(requeued)
    }

    async fn sleep_retrieve_queue(&self, vid: &str, sleep: QueueSleep, now: Timestamp) -> Result<()> {
        retry(self.config.max_attempts, || self.marker_once(vid, None, Some(&sleep), now)).await
    }

    async fn reports_due(&self, filter: ReportFilter, max: u64, _now: Timestamp) -> Result<Vec<ReportJob>> {
        retry(self.config.max_attempts, || self.reports_due_once(filter, max)).await
    }

    async fn reports_delivered(&self, reports: &[RequestId], now: Timestamp) -> Result<()> {
        retry(self.config.max_attempts, || self.reports_once(reports, None, now)).await
    }

    async fn reports_failed(&self, reports: &[RequestId], reason: &str, now: Timestamp) -> Result<()> {
        retry(self.config.max_attempts, || self.reports_once(reports, Some(reason), now)).await
    }

    async fn set_cleanup_flag(&self, vid: &str, flag: bool, now: Timestamp) -> Result<()> {
        retry(self.config.max_attempts, || self.marker_once(vid, Some(flag), None, now)).await
    }

    async fn cleanup_flagged(&self) -> Result<Vec<String>> {
        retry(self.config.max_attempts, || async move {
            let mut conn = self.pool.acquire().await?;
            let v: Vec<String> =
                sqlx::query_scalar("SELECT container FROM queue_summary WHERE kind = 2 AND cleanup ORDER BY container")
                    .fetch_all(&mut *conn)
                    .await?;
            Ok(v)
        })
        .await
    }

    async fn try_lease(&self, name: &str, holder: &str, until: Timestamp, now: Timestamp) -> Result<bool> {
        if holder.is_empty() {
            return Err(Error::invalid("a lease holder has a name"));
        }
        retry(self.config.max_attempts, || async move {
            let mut conn = self.pool.acquire().await?;
            let granted: Option<String> = sqlx::query_scalar(
                "INSERT INTO lease (name, holder, until) VALUES ($1, $2, $3) \
                 ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, until = EXCLUDED.until \
                 WHERE lease.holder = EXCLUDED.holder OR lease.until <= $4 RETURNING holder",
            )
            .bind(name)
            .bind(holder)
            .bind(until)
            .bind(now)
            .fetch_optional(&mut *conn)
            .await?;
            Ok(granted.is_some())
        })
        .await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<()> {
        retry(self.config.max_attempts, || async move {
            let mut conn = self.pool.acquire().await?;
            sqlx::query("DELETE FROM lease WHERE name = $1 AND holder = $2")
                .bind(name)
                .bind(holder)
                .execute(&mut *conn)
                .await?;
            Ok(())
        })
        .await
    }

    async fn drain_retrieve_queue(
        &self,
        vid: &str,
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<DrainReport> {
        retry(self.config.max_attempts, || self.drain_once(vid, now, router)).await
    }

    async fn list_pending(&self, kind: JobKind, queue: Option<&str>) -> Result<Vec<PendingJob>> {
        retry(self.config.max_attempts, || self.list_pending_once(kind, queue)).await
    }

    async fn list_failed(&self, kind: JobKind) -> Result<Vec<u64>> {
        retry(self.config.max_attempts, || async move {
            let mut conn = self.pool.acquire().await?;
            let ids: Vec<i64> = match kind {
                JobKind::Archive => {
                    sqlx::query_scalar("SELECT DISTINCT archive_file_id FROM archive_job WHERE status = 4 AND archive_file_id >= 0 ORDER BY 1",)
                        .fetch_all(&mut *conn)
                        .await?
                }
                JobKind::Retrieve => {
                    sqlx::query_scalar(
                        "SELECT DISTINCT archive_file_id FROM retrieve_request WHERE status = 3 AND repack_vid IS NULL ORDER BY 1",
                    )
                    .fetch_all(&mut *conn)
                    .await?
                }
            };
            Ok(ids.into_iter().map(|i| i as u64).collect())
        })
        .await
    }

    async fn queue_repack(&self, request: RepackRequest, _now: Timestamp) -> Result<()> {
        retry(self.config.max_attempts, || self.queue_repack_once(&request)).await
    }

    async fn repacks(&self) -> Result<Vec<RepackRequest>> {
        retry(self.config.max_attempts, || self.repacks_once(None)).await
    }

    async fn repack(&self, vid: &str) -> Result<Option<RepackRequest>> {
        Ok(retry(self.config.max_attempts, || self.repacks_once(Some(vid))).await?.pop())
    }

    async fn update_repack(&self, vid: &str, update: &RepackUpdate, _now: Timestamp) -> Result<RepackRequest> {
        retry(self.config.max_attempts, || self.update_repack_once(vid, update)).await
    }

    async fn queue_repack_subrequests(
        &self,
        vid: &str,
        subrequests: Vec<RetrieveRequest>,
        update: &RepackUpdate,
        now: Timestamp,
    ) -> Result<()> {
        retry(self.config.max_attempts, || self.queue_repack_subrequests_once(vid, &subrequests, update, now)).await
    }

    async fn repack_reports_due(&self, max: u64, _now: Timestamp) -> Result<Vec<RepackReport>> {
        retry(self.config.max_attempts, || self.repack_reports_due_once(max)).await
    }

    async fn repack_reports_processed(&self, batch: &RepackReportBatch, now: Timestamp) -> Result<()> {
        retry(self.config.max_attempts, || self.repack_reports_processed_once(batch, now)).await
    }

    async fn cancel_repack(&self, vid: &str, now: Timestamp) -> Result<u64> {
        retry(self.config.max_attempts, || self.cancel_repack_once(vid, now)).await
    }

    async fn export_state(&self, after: Option<&StateKey>, limit: usize) -> Result<Vec<StateItem>> {
        retry(self.config.max_attempts, || self.export_state_once(after, limit)).await
    }

    async fn read_state(&self, keys: &[StateKey]) -> Result<Vec<StateItem>> {
        retry(self.config.max_attempts, || self.read_state_once(keys)).await
    }

    async fn import_state(&self, items: Vec<StateItem>, now: Timestamp) -> Result<()> {
        retry(self.config.max_attempts, || self.import_state_once(&items, now)).await
    }

    async fn delete_state(&self, keys: &[StateKey], now: Timestamp) -> Result<()> {
        retry(self.config.max_attempts, || self.delete_state_once(keys, now)).await
    }

    async fn state_len(&self) -> Result<Option<u64>> {
        let n: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM mount) + (SELECT count(*) FROM repack_request)
                    + (SELECT count(*) FROM archive_request) + (SELECT count(*) FROM retrieve_request)
                    + (SELECT count(*) FROM queue_summary WHERE kind = 2 AND (cleanup OR sleep_until IS NOT NULL))",
        )
        .fetch_one(self.pool())
        .await
        .map_err(|e| Error::unavailable(format!("cannot count the state: {e}")).caused_by(e))?;
        Ok(Some(n as u64))
    }
}

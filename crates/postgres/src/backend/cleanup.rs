//! Collection and cleanup: summary tombstones, dead mounts, cancellations, queue markers (sleep,
//! cleanup flag) and draining a retrieve queue.

use super::*;

impl PgSchedulerDb {
    /// Keeps the newest [`KEPT_TOMBSTONES`] tombstones of deleted queue summaries; a reader that
    /// last read before the pruned ones reads every summary again.
    pub(super) async fn prune_summary_tombstones(&self) -> Result<(), Fail> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "WITH cut AS (
                 SELECT writer FROM queue_summary_gone ORDER BY writer DESC OFFSET $1 LIMIT 1
             ), pruned AS (
                 UPDATE queue_summary_pruned p SET upto = cut.writer FROM cut WHERE cut.writer > p.upto
                 RETURNING p.upto
             )
             DELETE FROM queue_summary_gone g USING pruned WHERE g.writer < pruned.upto",
        )
        .bind(KEPT_TOMBSTONES)
        .execute(&mut *tx)
        .await?;
        Self::commit(tx).await
    }

    pub(super) async fn gc_once(&self, now: Timestamp, router: &dyn RetrieveRouter) -> Result<u64, Fail> {
        let mut tx = self.begin().await?;
        let dead: Vec<i64> = sqlx::query_scalar(
            "SELECT mount_id FROM mount
             WHERE abandoned OR ($1::int8 IS NOT NULL AND $2 - heartbeat > $1)
             ORDER BY reg_seq
             FOR UPDATE SKIP LOCKED",
        )
        .bind(self.config.mount_timeout)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        if dead.is_empty() {
            tx.rollback().await.ok();
            return Ok(0);
        }
        let mut w = Work::default();
        let mut view = StatsView::default();
        let mut n = 0;
        for m in &dead {
            tracing::info!(mount = m, "collecting a dead mount");
            n += Self::requeue_held(&mut tx, &mut w, &mut view, *m as u64, router).await?;
        }
        w.write(&mut tx, now).await?;
        sqlx::query("DELETE FROM mount WHERE mount_id = ANY($1)").bind(&dead).execute(&mut *tx).await?;
        Self::commit(tx).await?;
        Ok(n)
    }

    pub(super) async fn cancel_archive_once(&self, afid: u64, now: Timestamp) -> Result<(), Fail> {
        let mut tx = self.begin().await?;
        let mut w = Work::default();
        w.load_archives(&mut tx, &[afid]).await?;
        let Some(st) = w.archives.get(&afid) else {
            return Err(Fail::Fatal(Error::not_found(format!("no archive request for archive file {afid}"))));
        };
        if st.request.jobs.iter().all(|j| j.status == ArchiveJobStatus::Failed) {
            tx.rollback().await.ok();
            return Ok(());
        }
        let st = st.clone();
        for (i, j) in st.request.jobs.iter().enumerate() {
            if st.locs[i].queue_seq.is_some() {
                w.delta.remove(KIND_ARCHIVE, &j.tape_pool, st.facts());
            }
        }
        w.delete_archives.insert(afid);
        w.write(&mut tx, now).await?;
        Self::commit(tx).await
    }

    pub(super) async fn cancel_retrieve_once(
        &self,
        afid: u64,
        dst_url: Option<&str>,
        now: Timestamp,
    ) -> Result<u64, Fail> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(concat!(
            "DELETE FROM retrieve_request r
             WHERE r.archive_file_id = $1 AND r.queue_seq IS NOT NULL AND r.repack_vid IS NULL
               AND ($2::text IS NULL OR r.dst_url = $2)
             RETURNING ",
            rr_cols!()
        ))
        .bind(checked_i64("archive file id", afid)?)
        .bind(dst_url)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Err(Fail::Fatal(Error::not_found(format!(
                "no queued retrieve request for archive file {afid}{}",
                dst_url.map(|d| format!(" to {d:?}")).unwrap_or_default()
            ))));
        }
        let mut delta = Delta::default();
        for row in &rows {
            let st = retrieve_of(row)?;
            delta.remove(KIND_RETRIEVE, &st.request.active_vid, st.facts());
        }
        delta.apply(&mut tx, now).await?;
        Self::commit(tx).await?;
        Ok(rows.len() as u64)
    }

    pub(super) async fn marker_once(
        &self,
        vid: &str,
        cleanup: Option<bool>,
        sleep: Option<&QueueSleep>,
        now: Timestamp,
    ) -> Result<(), Fail> {
        let mut tx = self.begin().await?;
        let mut delta = Delta::default();
        if let Some(flag) = cleanup {
            if !flag {
                let exists: Option<i16> =
                    sqlx::query_scalar("SELECT kind FROM queue_summary WHERE kind = 2 AND container = $1")
                        .bind(vid)
                        .fetch_optional(&mut *tx)
                        .await?;
                if exists.is_none() {
                    tx.rollback().await.ok();
                    return Ok(());
                }
            }
            delta.set_cleanup(vid, flag);
        }
        if let Some(s) = sleep {
            delta.set_sleep(vid, &s.disk_system, s.until);
        }
        delta.apply(&mut tx, now).await?;
        Self::commit(tx).await
    }

    pub(super) async fn drain_once(
        &self,
        vid: &str,
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<DrainReport, Fail> {
        let mut tx = self.begin().await?;
        let exists: Option<i16> =
            sqlx::query_scalar("SELECT kind FROM queue_summary WHERE kind = 2 AND container = $1")
                .bind(vid)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            tx.rollback().await.ok();
            return Ok(DrainReport::default());
        }
        let rows = sqlx::query(concat!(
            "SELECT ",
            rr_cols!(),
            " FROM retrieve_request r WHERE r.active_vid = $1 AND r.queue_seq IS NOT NULL
              ORDER BY r.active_fseq, r.queue_seq FOR UPDATE SKIP LOCKED"
        ))
        .bind(vid)
        .fetch_all(&mut *tx)
        .await?;
        let mut w = Work::default();
        let mut order = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut st = retrieve_of(row)?;
            w.delta.remove(KIND_RETRIEVE, vid, st.facts());
            st.loc = Loc::idle();
            st.dirty = true;
            order.push(st.request.request_id);
            w.retrieves.insert(st.request.request_id, st);
        }
        w.delta.set_cleanup(vid, false);
        // Each move is visible to the next routing decision, as in the objectstore's drain.
        let mut view = StatsView::default();
        view.set_empty(vid);
        let mut report = DrainReport::default();
        for id in order {
            let request = w.retrieves[&id].request.clone();
            let chosen = view.route(&mut tx, &request, router).await?.filter(|v| v != vid);
            let st = w.retrieves.get_mut(&id).expect("loaded");
            match chosen {
                Some(v) => {
                    view.add(&v, request.size, request.policy.priority);
                    st.request.active_vid = v;
                    w.enqueue_retrieve(id);
                    report.requeued += 1;
                }
                None => {
                    st.request.status = RetrieveStatus::ToReportForFailure;
                    st.request
                        .failure_reasons
                        .push(format!("tape {vid:?} left service and no other copy can be recalled"));
                    report.failed += 1;
                }
            }
        }
        w.write(&mut tx, now).await?;
        Self::commit(tx).await?;
        Ok(report)
    }
}

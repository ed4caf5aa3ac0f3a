//! Reports and listings: due reports in canonical order, delivered/failed reports, and the
//! pending jobs of a queue.

use super::*;

impl PgSchedulerDb {
    pub(super) async fn reports_due_once(&self, filter: ReportFilter, max: u64) -> Result<Vec<ReportJob>, Fail> {
        let mut tx = self.begin().await?;
        // The report indexes keep an entry for every report ever due until a vacuum removes the
        // delivered ones, and those are at the front of the scan (ids grow). A bitmap scan, the
        // planner's choice, fetches the heap page of every such entry on every call; a plain
        // index scan marks the entries of deleted rows dead in the index the first time it meets
        // them and skips them afterwards (25 ms against 3 ms per call after 170 000 reports
        // without a vacuum, as CI's server runs).
        sqlx::raw_sql("SET LOCAL enable_bitmapscan = off").execute(&mut *tx).await?;
        let limit = max.min(i64::MAX as u64) as i64;
        let rows = sqlx::query(
            "SELECT afid, kind, id, status, url FROM (
                 SELECT DISTINCT ON (j.archive_file_id) j.archive_file_id AS afid, 0 AS kind, j.archive_file_id AS id,
                        j.status, CASE WHEN j.status = 1 THEN r.report_url ELSE r.error_report_url END AS url
                 FROM archive_job j JOIN archive_request r ON r.archive_file_id = j.archive_file_id
                 WHERE j.status IN (1, 2) AND j.archive_file_id >= 0 AND $1
                 ORDER BY j.archive_file_id, j.position
             ) a
             UNION ALL
             SELECT archive_file_id, 1, request_id, status,
                    CASE WHEN status = 1 THEN report_url ELSE error_report_url END
             FROM retrieve_request WHERE status IN (1, 2) AND repack_vid IS NULL AND $2
             ORDER BY afid, kind, id
             LIMIT $3",
        )
        .bind(filter != ReportFilter::Retrieve)
        .bind(filter != ReportFilter::Archive)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        tx.rollback().await.ok();
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let afid = row.try_get::<i64, _>("afid")? as u64;
            let id = row.try_get::<i64, _>("id")? as u64;
            let kind: i32 = row.try_get("kind")?;
            out.push(ReportJob {
                request: if kind == 0 { RequestId::Archive(id) } else { RequestId::Retrieve(id) },
                archive_file_id: afid,
                outcome: if row.try_get::<i16, _>("status")? == 1 { Outcome::Success } else { Outcome::Failure },
                url: row.try_get("url")?,
            });
        }
        Ok(out)
    }

    pub(super) async fn reports_once(
        &self,
        reports: &[RequestId],
        failed: Option<&str>,
        now: Timestamp,
    ) -> Result<(), Fail> {
        let mut tx = self.begin().await?;
        let mut w = Work::default();
        let afids: Vec<u64> = reports
            .iter()
            .filter_map(|r| match r {
                RequestId::Archive(a) => Some(*a),
                _ => None,
            })
            .collect();
        let rids: Vec<u64> = reports
            .iter()
            .filter_map(|r| match r {
                RequestId::Retrieve(i) => Some(*i),
                _ => None,
            })
            .collect();
        w.load_archives(&mut tx, &afids).await?;
        w.load_retrieves(&mut tx, &rids).await?;
        for r in reports {
            match *r {
                // Repack subrequests report to their repack (`repack_reports_processed`).
                RequestId::RepackArchive(_) => continue,
                RequestId::Archive(afid) => {
                    if w.delete_archives.contains(&afid) {
                        continue;
                    }
                    let Some(st) = w.archives.get_mut(&afid) else { continue };
                    let Some(i) = st.request.jobs.iter().position(|j| {
                        matches!(j.status, ArchiveJobStatus::ToReportForTransfer | ArchiveJobStatus::ToReportForFailure)
                    }) else {
                        continue;
                    };
                    match failed {
                        None => {
                            if st.request.jobs[i].status == ArchiveJobStatus::ToReportForTransfer {
                                w.delete_archives.insert(afid);
                            } else {
                                st.request.jobs[i].status = ArchiveJobStatus::Failed;
                                st.dirty_jobs.insert(i);
                            }
                        }
                        Some(reason) => {
                            let job = &mut st.request.jobs[i];
                            job.failure_reasons.push(format!("report failed: {reason}"));
                            if rules::on_report_failure(&mut job.retries) {
                                job.status = ArchiveJobStatus::Failed;
                            }
                            st.dirty_jobs.insert(i);
                        }
                    }
                }
                RequestId::Retrieve(id) => {
                    if w.delete_retrieves.contains(&id) {
                        continue;
                    }
                    let Some(st) = w.retrieves.get_mut(&id) else { continue };
                    if st.request.repack.is_some() {
                        continue;
                    }
                    if !matches!(
                        st.request.status,
                        RetrieveStatus::ToReportForTransfer | RetrieveStatus::ToReportForFailure
                    ) {
                        continue;
                    }
                    match failed {
                        // A delivered report, success or failure, ends a retrieve request (as in
                        // CTA); only archive failures are kept in the failed list.
                        None => {
                            w.delete_retrieves.insert(id);
                        }
                        Some(reason) => {
                            st.request.failure_reasons.push(format!("report failed: {reason}"));
                            let give_up = match st.request.active_copy_mut() {
                                Some(c) => rules::on_report_failure(&mut c.retries),
                                None => true,
                            };
                            if give_up {
                                st.request.status = RetrieveStatus::Failed;
                            }
                            st.dirty = true;
                        }
                    }
                }
            }
        }
        w.write(&mut tx, now).await?;
        Self::commit(tx).await
    }

    pub(super) async fn list_pending_once(&self, kind: JobKind, queue: Option<&str>) -> Result<Vec<PendingJob>, Fail> {
        let mut conn = self.pool.acquire().await?;
        let rows =
            match kind {
                JobKind::Archive => {
                    // A repack's archive shows its real archive file id (`file_id`, migration 8);
                    // a pool's user queue comes before its repack queue.
                    sqlx::query(
                        "SELECT CASE WHEN j.archive_file_id < 0
                                     THEN (SELECT r.file_id FROM archive_request r
                                           WHERE r.archive_file_id = j.archive_file_id)
                                     ELSE j.archive_file_id END AS afid,
                                j.archive_file_id AS id, j.copy_nb, j.tape_pool AS queue, j.size
                         FROM archive_job j WHERE j.queue_seq IS NOT NULL AND ($1::text IS NULL OR j.tape_pool = $1)
                         ORDER BY j.tape_pool, j.archive_file_id < 0, j.queue_seq",
                    )
                    .bind(queue)
                    .fetch_all(&mut *conn)
                    .await?
                }
                JobKind::Retrieve => sqlx::query(
                    "SELECT archive_file_id AS afid, request_id AS id, active_copy_nb AS copy_nb, active_vid AS queue,
                            size
                     FROM retrieve_request WHERE queue_seq IS NOT NULL AND ($1::text IS NULL OR active_vid = $1)
                     ORDER BY active_vid, active_fseq, queue_seq",
                )
                .bind(queue)
                .fetch_all(&mut *conn)
                .await?,
            };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row.try_get::<i64, _>("id")? as u64;
            out.push(PendingJob {
                job: JobId {
                    request: match kind {
                        JobKind::Archive => archive_id_of_key(id),
                        JobKind::Retrieve => RequestId::Retrieve(id),
                    },
                    copy_nb: row.try_get::<i32, _>("copy_nb")? as u32,
                },
                archive_file_id: row.try_get::<i64, _>("afid")? as u64,
                queue: row.try_get("queue")?,
                size: row.try_get::<i64, _>("size")? as u64,
            });
        }
        Ok(out)
    }
}

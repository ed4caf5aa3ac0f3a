//! The end of transfers and mounts: successes, failures (with the retry rules), requeues, and
//! requeueing everything a mount holds when it ends.

use super::*;

impl PgSchedulerDb {
    pub(super) async fn succeeded_once(
        &self,
        mount: MountId,
        jobs: &[TransferSuccess],
        now: Timestamp,
    ) -> Result<(), Fail> {
        let mut tx = self.begin().await?;
        Self::touch_mount(&mut tx, mount, now).await?;
        let mut w = Work::default();
        let afids: Vec<u64> = jobs.iter().filter_map(|s| archive_key(s.job.request)).collect();
        let rids: Vec<u64> = jobs
            .iter()
            .filter_map(|s| match s.job.request {
                RequestId::Retrieve(r) => Some(r),
                _ => None,
            })
            .collect();
        w.load_archives(&mut tx, &afids).await?;
        w.load_retrieves(&mut tx, &rids).await?;
        for s in jobs {
            match s.job.request {
                RequestId::Archive(_) | RequestId::RepackArchive(_) => {
                    let key = archive_key(s.job.request).expect("an archive id");
                    let Some(st) = w.archives.get_mut(&key) else { continue };
                    let Some(i) = st.index(s.job.copy_nb) else { continue };
                    if !st.locs[i].held_by(mount) {
                        continue;
                    }
                    let decided = st.request.report_decided;
                    rules::on_archive_success(&mut st.request, s.job.copy_nb, s.tape_file.clone());
                    st.locs[i] = Loc::idle();
                    st.dirty_jobs.insert(i);
                    st.dirty_request |= decided != st.request.report_decided;
                }
                RequestId::Retrieve(id) => {
                    let Some(st) = w.retrieves.get_mut(&id) else { continue };
                    if !st.loc.held_by(mount) {
                        continue;
                    }
                    match rules::on_retrieve_success(&mut st.request) {
                        rules::RetrieveSuccessOutcome::Delete => {
                            w.delete_retrieves.insert(id);
                        }
                        rules::RetrieveSuccessOutcome::Report => {
                            st.loc = Loc::idle();
                            st.dirty = true;
                        }
                    }
                }
            }
        }
        w.write(&mut tx, now).await?;
        Self::commit(tx).await
    }

    pub(super) async fn failed_once(
        &self,
        mount: MountId,
        jobs: &[JobId],
        reason: &str,
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<(), Fail> {
        let mut tx = self.begin().await?;
        Self::touch_mount(&mut tx, mount, now).await?;
        let mut w = Work::default();
        let afids: Vec<u64> = jobs.iter().filter_map(|j| archive_key(j.request)).collect();
        let rids: Vec<u64> = jobs
            .iter()
            .filter_map(|j| match j.request {
                RequestId::Retrieve(r) => Some(r),
                _ => None,
            })
            .collect();
        w.load_archives(&mut tx, &afids).await?;
        w.load_retrieves(&mut tx, &rids).await?;
        // Routes see the queues as they were before this call (the objectstore adds the moved
        // jobs to their queues only at its end).
        let mut view = StatsView::default();
        for id in jobs {
            match id.request {
                RequestId::Archive(_) | RequestId::RepackArchive(_) => {
                    let afid = archive_key(id.request).expect("an archive id");
                    let Some(st) = w.archives.get_mut(&afid) else { continue };
                    let Some(i) = st.index(id.copy_nb) else { continue };
                    if !st.locs[i].held_by(mount) {
                        continue;
                    }
                    let decided = st.request.report_decided;
                    let outcome = rules::on_archive_failure(&mut st.request, id.copy_nb, mount, reason);
                    st.dirty_jobs.insert(i);
                    st.dirty_request |= decided != st.request.report_decided;
                    match outcome {
                        FailureOutcome::HoldInMount => {}
                        FailureOutcome::Requeue => w.enqueue_archive(afid, i),
                        FailureOutcome::ReportFailure | FailureOutcome::Failed => st.locs[i] = Loc::idle(),
                    }
                }
                RequestId::Retrieve(rid) => {
                    let Some(st) = w.retrieves.get_mut(&rid) else { continue };
                    if !st.loc.held_by(mount) {
                        continue;
                    }
                    let mut outcome = rules::on_retrieve_failure(&mut st.request, mount, reason);
                    st.dirty = true;
                    if outcome == FailureOutcome::Requeue {
                        let request = st.request.clone();
                        match view.route(&mut tx, &request, router).await? {
                            Some(vid) => w.retrieves.get_mut(&rid).expect("loaded").request.active_vid = vid,
                            None => {
                                outcome = FailureOutcome::ReportFailure;
                                w.retrieves.get_mut(&rid).expect("loaded").request.status =
                                    RetrieveStatus::ToReportForFailure;
                            }
                        }
                    }
                    match outcome {
                        FailureOutcome::HoldInMount => {}
                        FailureOutcome::Requeue => w.enqueue_retrieve(rid),
                        _ => w.retrieves.get_mut(&rid).expect("loaded").loc = Loc::idle(),
                    }
                }
            }
        }
        w.write(&mut tx, now).await?;
        Self::commit(tx).await
    }

    pub(super) async fn requeue_once(&self, mount: MountId, jobs: &[JobId], now: Timestamp) -> Result<u64, Fail> {
        let mut tx = self.begin().await?;
        Self::touch_mount(&mut tx, mount, now).await?;
        let mut w = Work::default();
        let afids: Vec<u64> = jobs.iter().filter_map(|j| archive_key(j.request)).collect();
        let rids: Vec<u64> = jobs
            .iter()
            .filter_map(|j| match j.request {
                RequestId::Retrieve(r) => Some(r),
                _ => None,
            })
            .collect();
        w.load_archives(&mut tx, &afids).await?;
        w.load_retrieves(&mut tx, &rids).await?;
        let mut n = 0;
        for id in jobs {
            match id.request {
                RequestId::Archive(_) | RequestId::RepackArchive(_) => {
                    let afid = archive_key(id.request).expect("an archive id");
                    let Some(st) = w.archives.get_mut(&afid) else { continue };
                    let Some(i) = st.index(id.copy_nb) else { continue };
                    if !st.locs[i].held_by(mount) {
                        continue;
                    }
                    match st.request.jobs[i].status {
                        ArchiveJobStatus::Complete => continue,
                        ArchiveJobStatus::ToTransfer => w.enqueue_archive(afid, i),
                        _ => {
                            st.locs[i] = Loc::idle();
                            st.dirty_jobs.insert(i);
                        }
                    }
                    n += 1;
                }
                RequestId::Retrieve(rid) => {
                    let Some(st) = w.retrieves.get_mut(&rid) else { continue };
                    if !st.loc.held_by(mount) {
                        continue;
                    }
                    if st.request.status == RetrieveStatus::ToTransfer {
                        w.enqueue_retrieve(rid);
                    } else {
                        st.loc = Loc::idle();
                        st.dirty = true;
                    }
                    n += 1;
                }
            }
        }
        w.write(&mut tx, now).await?;
        Self::commit(tx).await?;
        Ok(n)
    }

    /// Requeues everything `mount` holds, in the order it took it; retrieves go to the router's
    /// choice made on `view`, whose additions become visible only after the whole mount. Returns
    /// how many jobs went back to a transfer queue.
    pub(super) async fn requeue_held(
        tx: &mut Tx,
        w: &mut Work,
        view: &mut StatsView,
        mount: MountId,
        router: &dyn RetrieveRouter,
    ) -> Result<u64, Fail> {
        let mut order: Vec<(i64, i32, Enqueue)> = Vec::new();
        let held = sqlx::query(
            "SELECT DISTINCT j.archive_file_id, j.copy_nb, j.owned_op, j.owned_rank
                 FROM mount_claim c CROSS JOIN LATERAL unnest(c.archive_ids, c.archive_copies) AS u(afid, copy_nb)
                 JOIN archive_job j ON j.archive_file_id = u.afid AND j.copy_nb = u.copy_nb
                 WHERE c.mount_id = $1 AND j.mount_id = $1",
        )
        .bind(mount as i64)
        .fetch_all(&mut **tx)
        .await?;
        let afids: Vec<u64> = held.iter().map(|r| r.get::<i64, _>("archive_file_id") as u64).collect();
        w.load_archives(tx, &afids).await?;
        for row in &held {
            let afid = row.try_get::<i64, _>("archive_file_id")? as u64;
            let copy = row.try_get::<i32, _>("copy_nb")? as u32;
            let Some(st) = w.archives.get(&afid) else { continue };
            let Some(i) = st.index(copy) else { continue };
            order.push((
                row.try_get::<Option<i64>, _>("owned_op")?.unwrap_or(0),
                row.try_get::<Option<i32>, _>("owned_rank")?.unwrap_or(0),
                Enqueue::Archive(afid, i),
            ));
        }
        let held = sqlx::query(
            "SELECT DISTINCT r.request_id, r.owned_op, r.owned_rank
             FROM mount_claim c CROSS JOIN LATERAL unnest(c.retrieve_ids) AS u(id)
             JOIN retrieve_request r ON r.request_id = u.id
             WHERE c.mount_id = $1 AND r.mount_id = $1",
        )
        .bind(mount as i64)
        .fetch_all(&mut **tx)
        .await?;
        let rids: Vec<u64> = held.iter().map(|r| r.get::<i64, _>("request_id") as u64).collect();
        w.load_retrieves(tx, &rids).await?;
        for row in &held {
            order.push((
                row.try_get::<Option<i64>, _>("owned_op")?.unwrap_or(0),
                row.try_get::<Option<i32>, _>("owned_rank")?.unwrap_or(0),
                Enqueue::Retrieve(row.try_get::<i64, _>("request_id")? as u64),
            ));
        }
        order.sort_by_key(|(op, rank, _)| (*op, *rank));
        let mut n = 0;
        let mut visible: Vec<(String, u64, u64)> = Vec::new();
        for (_, _, what) in order {
            match what {
                Enqueue::Archive(afid, i) => {
                    let Some(st) = w.archives.get_mut(&afid) else { continue };
                    if !st.locs[i].held_by(mount) {
                        continue;
                    }
                    match st.request.jobs[i].status {
                        ArchiveJobStatus::ToTransfer => {
                            w.enqueue_archive(afid, i);
                            n += 1;
                        }
                        _ => {
                            st.locs[i] = Loc::idle();
                            st.dirty_jobs.insert(i);
                        }
                    }
                }
                Enqueue::Retrieve(rid) => {
                    let Some(st) = w.retrieves.get(&rid) else { continue };
                    if !st.loc.held_by(mount) {
                        continue;
                    }
                    if st.request.status != RetrieveStatus::ToTransfer {
                        let st = w.retrieves.get_mut(&rid).expect("loaded");
                        st.loc = Loc::idle();
                        st.dirty = true;
                        continue;
                    }
                    let request = st.request.clone();
                    let chosen = view.route(tx, &request, router).await?;
                    let st = w.retrieves.get_mut(&rid).expect("loaded");
                    match chosen {
                        Some(vid) => {
                            visible.push((vid.clone(), request.size, request.policy.priority));
                            st.request.active_vid = vid;
                            w.enqueue_retrieve(rid);
                            n += 1;
                        }
                        None => {
                            st.request.status = RetrieveStatus::ToReportForFailure;
                            st.request.failure_reasons.push("no tape copy can be recalled any more".into());
                            st.loc = Loc::idle();
                            st.dirty = true;
                        }
                    }
                }
            }
        }
        for (vid, size, priority) in visible {
            view.add(&vid, size, priority);
        }
        Ok(n)
    }

    pub(super) async fn end_mount_once(
        &self,
        mount: MountId,
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<u64, Fail> {
        let mut tx = self.begin().await?;
        Self::touch_mount(&mut tx, mount, now).await?;
        let mut w = Work::default();
        let mut view = StatsView::default();
        let n = Self::requeue_held(&mut tx, &mut w, &mut view, mount, router).await?;
        w.write(&mut tx, now).await?;
        sqlx::query("DELETE FROM mount WHERE mount_id = $1").bind(mount as i64).execute(&mut *tx).await?;
        Self::commit(tx).await?;
        Ok(n)
    }
}

//! Processed repack reports (`repack_reports_processed`), made crash-safe by a journal.
//!
//! The batch touches many objects (retrieve subrequests deleted, archive requests created, archive
//! jobs ended, several repacks' counters), which no single write can change together. So the
//! whole batch is first written as one `RepackBatchJournal` object, listed in the agent's log:
//! once it exists the batch *will* be applied, by this process or, if it dies, by the collector
//! of its agent (or by `recover`), which runs the same steps again. Every step is idempotent:
//! an archive already stored is left alone, a job already ended or a request already deleted is
//! skipped, and each repack records the batch's token with the counters it added, so a batch
//! applied again never counts twice. Before the journal is written nothing has changed, and an
//! update that would conflict is refused then.

use tapesched_scheduler::repack::RepackReportBatch;
use tapesched_scheduler::ErrorKind;

use super::*;

impl ObjectstoreDb {
    pub(super) async fn repack_reports_processed_op(&self, batch: &RepackReportBatch, now: Timestamp) -> Result<()> {
        self.ready().await?;
        if batch.is_empty() {
            return Ok(());
        }
        for a in &batch.archives {
            if a.repack.is_none() || a.jobs.is_empty() {
                return Err(Error::invalid(format!(
                    "archive request {} is not a repack archive with copies to write",
                    a.archive_file_id
                )));
            }
        }
        if let Some(j) = batch.archive_jobs.iter().find(|j| !matches!(j.request, RequestId::RepackArchive(_))) {
            return Err(Error::invalid(format!("job {:?} is not a repack archive job", j.request)));
        }
        for (vid, update) in &batch.updates {
            if let Some(s) = self.objs.read::<StoredRepack>(&repack_name(vid)).await? {
                update.apply(&mut s.request.clone())?;
            }
        }
        let token = unique_token();
        let name = repack_batch_name(token);
        self.log_own(std::slice::from_ref(&name), true, now).await?;
        let journal = RepackBatchJournal { token, batch: batch.clone() };
        if let Err(e) = self.objs.create(&name, &journal).await {
            if e.kind != ErrorKind::Unavailable {
                self.log_own(std::slice::from_ref(&name), false, now).await?;
            }
            return Err(e);
        }
        self.apply_repack_batch(token, batch, false, now).await?;
        self.delete_requests(vec![(name.clone(), vec![])], now).await?;
        self.log_own(&[name], false, now).await
    }

    /// Applies the rest of the journaled batch `name` (found in a dead or recovering agent's
    /// log) and deletes the journal.
    pub(super) async fn finish_repack_batch(&self, name: &str, now: Timestamp) -> Result<()> {
        let Some(journal) = self.objs.read::<RepackBatchJournal>(name).await? else { return Ok(()) };
        self.apply_repack_batch(journal.token, &journal.batch, true, now).await?;
        self.delete_requests(vec![(name.to_string(), vec![])], now).await
    }

    /// The steps of a batch, each idempotent (`resume`: a run after a crash, which also adds
    /// the pointers an archive created by the first run may lack).
    async fn apply_repack_batch(
        &self,
        token: u64,
        batch: &RepackReportBatch,
        resume: bool,
        now: Timestamp,
    ) -> Result<()> {
        // Archives of a repack that no longer exists (cancelled meanwhile) are not stored.
        let vids: BTreeSet<&str> =
            batch.archives.iter().filter_map(|a| a.repack.as_ref().map(|l| l.vid.as_str())).collect();
        let vids: Vec<&str> = vids.into_iter().collect();
        let names: Vec<String> = vids.iter().map(|v| repack_name(v)).collect();
        let live: BTreeSet<&str> = vids
            .iter()
            .zip(self.objs.read_many::<StoredRepack>(&names).await?)
            .filter(|(_, r)| r.is_some())
            .map(|(v, _)| *v)
            .collect();
        let archives: Vec<&ArchiveRequest> = batch
            .archives
            .iter()
            .filter(|a| a.repack.as_ref().is_some_and(|l| live.contains(l.vid.as_str())))
            .collect();
        let created = join_all(archives.iter().map(|a| async move {
            let owners = a
                .jobs
                .iter()
                .map(|j| (j.copy_nb, archive_home(a, j).map_or(Owner::Nobody, |(k, _)| Owner::Queue(k))))
                .collect();
            let name = request_name(a.id());
            match self.objs.create(&name, &StoredArchive { request: (*a).clone(), owners }).await {
                Ok(()) => Ok(Some(false)),
                Err(e) if e.kind == ErrorKind::Conflict => Ok(resume.then_some(true)),
                Err(e) => Err(e),
            }
        }))
        .await;
        let (mut moves, mut ensure) = (Moves::new(), Moves::new());
        for (a, c) in archives.iter().zip(created) {
            let Some(existed) = c? else { continue };
            let target = if existed { &mut ensure } else { &mut moves };
            for j in &a.jobs {
                if let Some((key, outcome)) = archive_home(a, j) {
                    target.entry(key).or_default().push(archive_pointer(a, j.copy_nb, outcome));
                }
            }
        }
        self.add_pointers(moves, now).await?;
        if !ensure.is_empty() {
            // Only where the stored request still names the queue (it may have moved on).
            let mut confirmed = Moves::new();
            for (key, pointers) in ensure {
                let names: Vec<String> = pointers.iter().map(|p| p.address.clone()).collect();
                let stored = self.objs.read_many::<StoredArchive>(&names).await?;
                let owner = Owner::Queue(key.clone());
                let keep: Vec<JobPointer> = pointers
                    .into_iter()
                    .zip(stored)
                    .filter(|(p, s)| s.as_ref().is_some_and(|s| s.owners.get(&p.copy_nb) == Some(&owner)))
                    .map(|(p, _)| p)
                    .collect();
                confirmed.insert(key, keep);
            }
            self.ensure_pointers(confirmed, now).await?;
        }
        self.end_repack_archive_jobs(&batch.archive_jobs, now).await?;
        // Retrieve subrequests accounted for.
        let names: Vec<String> = batch.retrieves.iter().map(|i| retrieve_request_name(*i)).collect();
        let mut items = Vec::new();
        for (name, r) in names.iter().zip(self.objs.read_many::<StoredRetrieve>(&names).await?) {
            if let Some(r) = r.filter(|r| r.request.repack.is_some()) {
                let copy = r.request.active_copy().map_or(0, |c| c.copy_nb);
                items.push((name.clone(), queue_owners([(copy, &r.owner)])));
            }
        }
        self.delete_requests(items, now).await?;
        // Counters last, once per repack and batch.
        for (vid, update) in &batch.updates {
            self.objs
                .update::<StoredRepack, _>(&repack_name(vid), |s| {
                    if s.applied.contains(&token) {
                        return Ok(((), Write::Keep));
                    }
                    if let Err(e) = update.apply(&mut s.request) {
                        tracing::warn!(vid = %vid, error = %e, "a repack changed under a batch of its reports");
                        return Ok(((), Write::Keep));
                    }
                    s.applied.push(token);
                    let extra = s.applied.len().saturating_sub(REPACK_APPLIED_KEPT);
                    s.applied.drain(..extra);
                    Ok(((), Write::Commit))
                })
                .await?;
        }
        Ok(())
    }

    /// Ends the named repack archive jobs: a written one becomes Complete, a failed one Failed,
    /// and leaves its report queue; a request with no job left to transfer or to account for
    /// is deleted. Jobs not due (already ended, or gone) are skipped.
    async fn end_repack_archive_jobs(&self, jobs: &[JobId], now: Timestamp) -> Result<()> {
        let mut copies: BTreeMap<RequestId, Vec<u32>> = BTreeMap::new();
        for j in jobs {
            copies.entry(j.request).or_default().push(j.copy_nb);
        }
        let ids: Vec<RequestId> = copies.keys().copied().collect();
        let names: Vec<String> = ids.iter().map(|i| request_name(*i)).collect();
        let copies: Vec<Vec<u32>> = copies.into_values().collect();
        let ended = self
            .objs
            .update_many::<StoredArchive, _>(&names, |i, st| {
                let mut left = Vec::new();
                for copy in &copies[i] {
                    let Some(job) = st.request.job_mut(*copy) else { continue };
                    job.status = match job.status {
                        ArchiveJobStatus::ToReportForTransfer => ArchiveJobStatus::Complete,
                        ArchiveJobStatus::ToReportForFailure => ArchiveJobStatus::Failed,
                        _ => continue,
                    };
                    if let Some(Owner::Queue(k)) = st.owners.insert(*copy, Owner::Nobody) {
                        left.push((k, *copy));
                    }
                }
                let over = st.request.jobs.iter().all(|j| tapesched_scheduler::repack::archive_job_ended(j.status));
                let write = if over { Write::Delete } else { Write::Commit };
                Ok((left, write))
            })
            .await?;
        let mut by_queue: BTreeMap<QueueKey, Vec<(String, u32)>> = BTreeMap::new();
        for (name, left) in names.iter().zip(ended) {
            for (key, copy) in left.unwrap_or_default() {
                by_queue.entry(key).or_default().push((name.clone(), copy));
            }
        }
        for (key, targets) in by_queue {
            self.remove_pointers(&key, &targets, now).await?;
        }
        Ok(())
    }
}

//! Claims: taking jobs from the front of a queue for a mount (`pop_jobs`, cut by
//! `rules::BatchCut`, the one batch rule) or by name (`claim_jobs`), the owner moving to the
//! mount's agent.

use super::*;

impl ObjectstoreDb {
    /// Makes `agent` the owner of the jobs the pointers of queue `key` name, where the queue
    /// still owns them (`None` for a stale pointer). The requests are read in one batch and
    /// switched by compare-and-swap (one changed or locked meanwhile is switched under its
    /// lock). Answers in the order of `pointers`.
    pub(super) async fn take_many_from_queue(
        &self,
        pointers: &[JobPointer],
        key: &QueueKey,
        agent: &str,
    ) -> Result<Vec<Option<MountJob>>> {
        let (me, qk) = (Owner::Agent(agent.to_string()), Owner::Queue(key.clone()));
        let ids: Vec<RequestId> = pointers.iter().map(|p| p.request).collect();
        let switched = self
            .update_requests(
                &ids,
                |i, s| {
                    let copy_nb = pointers[i].copy_nb;
                    if s.owners.get(&copy_nb) != Some(&qk) {
                        return Ok((None, Write::Keep));
                    }
                    s.owners.insert(copy_nb, me.clone());
                    Ok((Some(MountJob::Archive { request: s.request.clone(), copy_nb }), Write::Commit))
                },
                |_, s| {
                    if s.owner != qk || s.request.status != RetrieveStatus::ToTransfer {
                        return Ok((None, Write::Keep));
                    }
                    s.owner = me.clone();
                    Ok((Some(MountJob::Retrieve { request: s.request.clone() }), Write::Commit))
                },
            )
            .await?;
        Ok(switched.into_iter().map(Option::flatten).collect())
    }

    pub(super) async fn pop_jobs_op(
        &self,
        mount: MountId,
        max_files: u64,
        max_bytes: u64,
        now: Timestamp,
    ) -> Result<Vec<MountJob>> {
        self.ready().await?;
        let (agent, _, record) = self.mount_agent(mount).await?;
        let key = match record.spec.mount_type {
            MountType::Retrieve => QueueKey::new(QueueKind::RetrieveToTransfer, &record.spec.vid),
            t => QueueKey::new(archive_queue_kind(t), &record.spec.tape_pool),
        };
        let Some(mut q) = self.open(&key, false).await? else { return Ok(vec![]) };
        let result = async {
            let mut cut = rules::BatchCut::new(max_files, max_bytes);
            q.prefetch(&self.objs, max_files).await?;
            let taken = q.take_front(&self.objs, |j| cut.admit(j.size).then_some(true)).await?;
            let names: Vec<String> = taken.iter().map(|p| p.address.clone()).collect();
            self.log(&agent, &names, true, now).await?;
            let claimed = self.take_many_from_queue(&taken, &key, &agent).await?;
            let mut jobs = Vec::with_capacity(taken.len());
            let mut stale = Vec::new();
            let mut kept = HashSet::new();
            for (p, job) in taken.iter().zip(claimed) {
                match job {
                    Some(j) => {
                        kept.insert(p.address.as_str());
                        jobs.push(j);
                    }
                    None => stale.push(p.address.clone()),
                }
            }
            // A second pointer to a job claimed through the first is stale, but the job's name
            // must stay in the session's log.
            stale.retain(|name| !kept.contains(name.as_str()));
            Ok::<_, Error>((jobs, stale))
        }
        .await;
        match result {
            Ok((jobs, stale)) => {
                self.close(q, now).await?;
                self.log(&agent, &stale, false, now).await?;
                Ok(jobs)
            }
            Err(e) => {
                self.objs.unlock(q.lock).await;
                Err(e)
            }
        }
    }

    /// Claims the named jobs that a transfer queue still owns, in one batch: the names are
    /// logged in the mount's agent first, the requests switched to the agent by
    /// compare-and-swap (one read and one write round trip for the whole batch, as `pop_jobs`),
    /// then the pointers removed from each queue they were in, and the names not claimed taken
    /// out of the agent's log. Answers in the order of `jobs` (duplicates once).
    pub(super) async fn claim_jobs_op(&self, mount: MountId, jobs: &[JobId], now: Timestamp) -> Result<Vec<MountJob>> {
        self.ready().await?;
        let (agent, _, _) = self.mount_agent(mount).await?;
        let me = Owner::Agent(agent.clone());
        let mut seen = HashSet::new();
        let jobs: Vec<JobId> = jobs.iter().copied().filter(|j| seen.insert(*j)).collect();
        if jobs.is_empty() {
            return Ok(vec![]);
        }
        let names: Vec<String> = jobs.iter().map(|j| request_name(j.request)).collect();
        self.log(&agent, &names, true, now).await?;
        let ids: Vec<RequestId> = jobs.iter().map(|j| j.request).collect();
        let from_transfer_queue = |owner: Option<&Owner>| match owner {
            Some(Owner::Queue(key)) if key.kind.is_transfer() => Some(key.clone()),
            _ => None,
        };
        let switched = self
            .update_requests(
                &ids,
                |i, s| {
                    let copy_nb = jobs[i].copy_nb;
                    let queued = s.request.job(copy_nb).is_some_and(|j| j.status == ArchiveJobStatus::ToTransfer);
                    let Some(key) = from_transfer_queue(s.owners.get(&copy_nb)).filter(|_| queued) else {
                        return Ok((None, Write::Keep));
                    };
                    s.owners.insert(copy_nb, me.clone());
                    Ok((Some((MountJob::Archive { request: s.request.clone(), copy_nb }, key)), Write::Commit))
                },
                |_, s| {
                    let Some(key) =
                        from_transfer_queue(Some(&s.owner)).filter(|_| s.request.status == RetrieveStatus::ToTransfer)
                    else {
                        return Ok((None, Write::Keep));
                    };
                    s.owner = me.clone();
                    Ok((Some((MountJob::Retrieve { request: s.request.clone() }, key)), Write::Commit))
                },
            )
            .await?;
        let mut out = Vec::with_capacity(jobs.len());
        let mut from: BTreeMap<QueueKey, Vec<(String, u32)>> = BTreeMap::new();
        let mut unclaimed = Vec::new();
        for ((id, name), got) in jobs.iter().zip(names).zip(switched) {
            match got.flatten() {
                Some((job, key)) => {
                    from.entry(key).or_default().push((name, id.copy_nb.max(job.id().copy_nb)));
                    out.push(job);
                }
                None => unclaimed.push(name),
            }
        }
        for (key, targets) in from {
            self.remove_pointers(&key, &targets, now).await?;
        }
        self.log(&agent, &unclaimed, false, now).await?;
        Ok(out)
    }
}

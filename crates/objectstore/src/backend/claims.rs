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

    pub(super) async fn claim_jobs_op(&self, mount: MountId, jobs: &[JobId], now: Timestamp) -> Result<Vec<MountJob>> {
        self.ready().await?;
        let (agent, _, _) = self.mount_agent(mount).await?;
        let me = Owner::Agent(agent.clone());
        let mut out = Vec::new();
        for id in jobs {
            let (name, owner) = match id.request {
                RequestId::Archive(_) | RequestId::RepackArchive(_) => {
                    let name = request_name(id.request);
                    let Some(s) = self.objs.read::<StoredArchive>(&name).await? else { continue };
                    let Some(job) = s.request.job(id.copy_nb) else { continue };
                    if job.status != ArchiveJobStatus::ToTransfer {
                        continue;
                    }
                    (name, s.owners.get(&id.copy_nb).cloned())
                }
                RequestId::Retrieve(rid) => {
                    let name = retrieve_request_name(rid);
                    let Some(s) = self.objs.read::<StoredRetrieve>(&name).await? else { continue };
                    if s.request.status != RetrieveStatus::ToTransfer {
                        continue;
                    }
                    (name, Some(s.owner))
                }
            };
            let Some(Owner::Queue(key)) = owner else { continue };
            if !key.kind.is_transfer() {
                continue;
            }
            self.log(&agent, std::slice::from_ref(&name), true, now).await?;
            let (qk, me2) = (Owner::Queue(key.clone()), me.clone());
            let job = match id.request {
                RequestId::Archive(_) | RequestId::RepackArchive(_) => self
                    .update_archive(&name, |s| {
                        if s.owners.get(&id.copy_nb) != Some(&qk) {
                            return Ok((None, Write::Keep));
                        }
                        s.owners.insert(id.copy_nb, me2);
                        Ok((Some(MountJob::Archive { request: s.request.clone(), copy_nb: id.copy_nb }), Write::Commit))
                    })
                    .await?
                    .flatten(),
                RequestId::Retrieve(rid) => self
                    .update_retrieve(rid, |s| {
                        if s.owner != qk {
                            return Ok((None, Write::Keep));
                        }
                        s.owner = me2;
                        Ok((Some(MountJob::Retrieve { request: s.request.clone() }), Write::Commit))
                    })
                    .await?
                    .flatten(),
            };
            match job {
                Some(j) => {
                    self.remove_pointers(&key, &[(name, id.copy_nb.max(j.id().copy_nb))], now).await?;
                    out.push(j);
                }
                None => self.log(&agent, &[name], false, now).await?,
            }
        }
        Ok(out)
    }
}

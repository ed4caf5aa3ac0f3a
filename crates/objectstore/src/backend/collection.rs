//! Collection and queue maintenance: requeueing what a (dead) agent owned in the order it took
//! it, the garbage collector, `recover`, drains, queue sleep and the cleanup flag.

use super::*;

impl ObjectstoreDb {
    /// Chooses the VID a retrieve goes back to; `None`: no copy can take it.
    pub(super) async fn route(&self, request: &RetrieveRequest, router: &dyn RetrieveRouter) -> Result<Option<String>> {
        let candidates = router.candidates(request);
        if candidates.is_empty() {
            return Ok(None);
        }
        let stats = self.retrieve_queue_stats(&candidates).await?;
        Ok(router.choose(request, &stats))
    }

    /// Puts every job that `agent` owns back where it belongs: jobs to transfer into transfer
    /// queues (retrieves to the router's VID), the others into their report or failed queues, and
    /// objects already owned by a queue into that queue if they are missing from it. Returns how
    /// many jobs went back to a transfer queue.
    pub(super) async fn requeue_owned(
        &self,
        agent_name: &str,
        agent: &Agent,
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<u64> {
        let me = Owner::Agent(agent_name.to_string());
        // Journals of processed repack reports first: finishing one may create the archive
        // requests it names (it is the only name such an operation logs).
        for name in agent.owned.iter().filter(|n| n.starts_with(REPACK_BATCH_PREFIX)) {
            self.finish_repack_batch(name, now).await?;
        }
        let found = join_all(
            agent
                .owned
                .iter()
                .filter(|n| !n.starts_with(REPACK_BATCH_PREFIX))
                .map(|name| self.requeue_one(name, &me, router, now)),
        )
        .await;
        let mut requeued = 0;
        let mut moves = Moves::new();
        let mut ensure = Moves::new();
        for item in found {
            for (mine, key, ptr, to_transfer) in item? {
                if mine {
                    requeued += to_transfer as u64;
                    moves.entry(key).or_default().push(ptr);
                } else {
                    ensure.entry(key).or_default().push(ptr);
                }
            }
        }
        self.add_pointers_rechecked(moves, now).await?;
        self.ensure_pointers(ensure, now).await?;
        Ok(requeued)
    }

    /// Puts one object of a dead (or ending) agent where its owner record says: the pointers to
    /// add (`true`: the agent's job, moved now) or to ensure (`false`: owned by a queue that may
    /// lack the pointer), and whether each went back to a transfer queue.
    pub(super) async fn requeue_one(
        &self,
        name: &str,
        me: &Owner,
        router: &dyn RetrieveRouter,
        now: Timestamp,
    ) -> Result<Vec<(bool, QueueKey, JobPointer, bool)>> {
        let mut out = Vec::new();
        if name.starts_with(REPACK_PASS_PREFIX) {
            self.drop_uncommitted_pass(name).await?;
        } else if name.starts_with("ArchiveRequest-") || name.starts_with("RepackArchiveRequest-") {
            let Some(stored) = self.objs.read::<StoredArchive>(name).await? else { return Ok(out) };
            if let Some(link) = &stored.request.repack {
                if self.objs.read::<StoredRepack>(&repack_name(&link.vid)).await?.is_none() {
                    // Its repack was cancelled: the subrequest goes with it.
                    let queues = queue_owners(stored.owners.iter().map(|(c, o)| (*c, o)));
                    self.delete_requests(vec![(name.to_string(), queues)], now).await?;
                    return Ok(out);
                }
            }
            let me2 = me.clone();
            let moved = self
                .update_archive(name, move |s| {
                    let mut out = Vec::new();
                    for job in s.request.jobs.clone() {
                        let owner = s.owners.get(&job.copy_nb).cloned().unwrap_or(Owner::Nobody);
                        match owner {
                            o if o == me2 => match archive_home(&s.request, &job) {
                                Some((key, outcome)) => {
                                    s.owners.insert(job.copy_nb, Owner::Queue(key.clone()));
                                    out.push((
                                        true,
                                        key,
                                        archive_pointer(&s.request, job.copy_nb, outcome),
                                        job.status,
                                    ));
                                }
                                None => {
                                    s.owners.insert(job.copy_nb, Owner::Nobody);
                                }
                            },
                            Owner::Queue(key) => {
                                let outcome = archive_home(&s.request, &job).and_then(|(_, o)| o);
                                out.push((false, key, archive_pointer(&s.request, job.copy_nb, outcome), job.status));
                            }
                            _ => {}
                        }
                    }
                    Ok((out, Write::Commit))
                })
                .await?
                .unwrap_or_default();
            for (mine, key, ptr, status) in moved {
                out.push((mine, key, ptr, status == ArchiveJobStatus::ToTransfer));
            }
        } else if name.starts_with("RetrieveRequest-") {
            let Some(stored) = self.objs.read::<StoredRetrieve>(name).await? else { return Ok(out) };
            if !self.repack_subrequest_committed(&stored).await? {
                // Left by an expansion pass that never committed, or its repack was cancelled.
                let queues = queue_owners([(stored.request.active_copy().map_or(0, |c| c.copy_nb), &stored.owner)]);
                self.delete_requests(vec![(name.to_string(), queues)], now).await?;
                return Ok(out);
            }
            let mut request = stored.request.clone();
            if stored.owner == *me && request.status == RetrieveStatus::ToTransfer {
                match self.route(&request, router).await? {
                    Some(vid) => request.active_vid = vid,
                    None => {
                        request.status = RetrieveStatus::ToReportForFailure;
                        request.failure_reasons.push("no tape copy can be recalled any more".into());
                    }
                }
            }
            let me2 = me.clone();
            let moved = self
                .update_retrieve(request.request_id, move |s| {
                    if s.owner == me2 {
                        s.request.active_vid = request.active_vid.clone();
                        s.request.status = request.status;
                        s.request.failure_reasons = request.failure_reasons.clone();
                        let (key, outcome) = retrieve_home(&s.request);
                        s.owner = Owner::Queue(key.clone());
                        Ok((Some((true, key, retrieve_pointer(&s.request, outcome), s.request.status)), Write::Commit))
                    } else if let Owner::Queue(key) = &s.owner {
                        let outcome = retrieve_home(&s.request).1;
                        Ok((
                            Some((false, key.clone(), retrieve_pointer(&s.request, outcome), s.request.status)),
                            Write::Keep,
                        ))
                    } else {
                        Ok((None, Write::Keep))
                    }
                })
                .await?
                .flatten();
            if let Some((mine, key, ptr, status)) = moved {
                out.push((mine, key, ptr, status == RetrieveStatus::ToTransfer));
            }
        }
        Ok(out)
    }

    /// Repairs what this process was doing when the store became unavailable: every object its
    /// own agent (and, with `mount`, that session's agent) lists goes back where its owner
    /// record says — jobs a session held go back to their transfer queues, objects already owned
    /// by a queue are put in that queue if missing — and the logs are emptied. Call it after an
    /// `unavailable` error, once the store answers again; returns how many jobs were requeued.
    pub async fn recover(&self, mount: Option<MountId>, now: Timestamp, router: &dyn RetrieveRouter) -> Result<u64> {
        self.ready().await?;
        let mut agents = Vec::new();
        if self.agent_ready.initialized() {
            agents.push(self.agent.clone());
        }
        agents.extend(mount.map(mount_agent_name));
        let mut requeued = 0;
        for name in agents {
            let Some(agent) = self.objs.read::<Agent>(&name).await? else { continue };
            requeued += self.requeue_owned(&name, &agent, now, router).await?;
            self.log(&name, &agent.owned, false, now).await?;
        }
        Ok(requeued)
    }

    pub(super) async fn garbage_collect_op(&self, now: Timestamp, router: &dyn RetrieveRouter) -> Result<u64> {
        self.ready().await?;
        let register = self.objs.read::<AgentRegister>(AGENT_REGISTER).await?.unwrap_or_default();
        let names: Vec<String> = register.agents.into_iter().filter(|n| *n != self.agent).collect();
        // Every agent in one read (a pass runs every minute over every process's and every
        // mount's agent); one that looks dead is read again just before it is collected.
        let agents = self.objs.read_many::<Agent>(&names).await?;
        let mut requeued = 0;
        for (name, agent) in names.into_iter().zip(agents) {
            let looks_dead = match &agent {
                Some(agent) => self.is_dead(agent, now).await,
                None => true,
            };
            if !looks_dead {
                continue;
            }
            // Listed without its object: one half deregistered (agents are created before they
            // are listed). Only the name goes; nothing of that name is removed.
            let Some(agent) = self.objs.read::<Agent>(&name).await? else {
                self.unlist_agent(&name).await?;
                continue;
            };
            if !self.is_dead(&agent, now).await {
                continue;
            }
            tracing::info!(agent = %name, owned = agent.owned.len(), "collecting a dead agent");
            requeued += self.requeue_owned(&name, &agent, now, router).await?;
            self.deregister_agent(&name).await?;
        }
        Ok(requeued)
    }

    pub(super) async fn drain_retrieve_queue_op(
        &self,
        vid: &str,
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<DrainReport> {
        self.ready().await?;
        let key = QueueKey::new(QueueKind::RetrieveToTransfer, vid);
        let Some(mut q) = self.open(&key, false).await? else { return Ok(DrainReport::default()) };
        let taken = match q.remove(&self.objs, |_| true).await {
            Ok(t) => t,
            Err(e) => {
                self.objs.unlock(q.lock).await;
                return Err(e);
            }
        };
        let names: Vec<String> = taken.iter().map(|p| p.address.clone()).collect();
        // The pointers leave the queue only once the requests are in this agent's log.
        if let Err(e) = self.log_own(&names, true, now).await {
            self.objs.unlock(q.lock).await;
            return Err(e);
        }
        q.queue.cleanup = false;
        self.close(q, now).await?;
        let me = Owner::Agent(self.agent.clone());
        let qk = Owner::Queue(key.clone());
        let mut report = DrainReport::default();
        for p in &taken {
            let RequestId::Retrieve(id) = p.request else { continue };
            // Take ownership from the queue first, so the request is ours while it is routed.
            let (me2, qk2) = (me.clone(), qk.clone());
            let owned = self
                .update_retrieve(id, |st| {
                    if st.owner != qk2 {
                        return Ok((None, Write::Keep));
                    }
                    st.owner = me2;
                    Ok((Some(st.request.clone()), Write::Commit))
                })
                .await?
                .flatten();
            let Some(mut request) = owned else { continue };
            match self.route(&request, router).await?.filter(|v| v != vid) {
                Some(v) => {
                    request.active_vid = v;
                    report.requeued += 1;
                }
                None => {
                    request.status = RetrieveStatus::ToReportForFailure;
                    request
                        .failure_reasons
                        .push(format!("tape {vid:?} left service and no other copy can be recalled"));
                    report.failed += 1;
                }
            }
            let me2 = me.clone();
            let moved = self
                .update_retrieve(id, move |st| {
                    if st.owner != me2 {
                        return Ok((None, Write::Keep));
                    }
                    st.request = request;
                    let (k, o) = retrieve_home(&st.request);
                    st.owner = Owner::Queue(k.clone());
                    Ok((Some((k, retrieve_pointer(&st.request, o))), Write::Commit))
                })
                .await?
                .flatten();
            if let Some((k, ptr)) = moved {
                self.add_pointers(Moves::from([(k, vec![ptr])]), now).await?;
            }
        }
        self.log_own(&names, false, now).await?;
        Ok(report)
    }

    pub(super) async fn sleep_retrieve_queue_op(&self, vid: &str, sleep: QueueSleep, now: Timestamp) -> Result<()> {
        self.ready().await?;
        let key = QueueKey::new(QueueKind::RetrieveToTransfer, vid);
        let mut q = self.open(&key, true).await?.expect("created");
        q.queue.sleep = Some(sleep);
        self.close(q, now).await
    }

    pub(super) async fn set_cleanup_flag_op(&self, vid: &str, flag: bool, now: Timestamp) -> Result<()> {
        self.ready().await?;
        let key = QueueKey::new(QueueKind::RetrieveToTransfer, vid);
        let Some(mut q) = self.open(&key, flag).await? else { return Ok(()) };
        q.queue.cleanup = flag;
        self.close(q, now).await
    }

    pub(super) async fn cleanup_flagged_op(&self) -> Result<Vec<String>> {
        self.ready().await?;
        let (keys, addresses): (Vec<QueueKey>, Vec<String>) =
            self.queues_of(&[QueueKind::RetrieveToTransfer]).await?.into_iter().unzip();
        let queues = self.objs.read_many::<Queue>(&addresses).await?;
        let mut out: Vec<String> = keys
            .into_iter()
            .zip(queues)
            .filter(|(_, q)| q.as_ref().is_some_and(|q| q.cleanup))
            .map(|(key, _)| key.container)
            .collect();
        out.sort();
        Ok(out)
    }
}

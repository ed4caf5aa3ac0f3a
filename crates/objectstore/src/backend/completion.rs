//! The end of transfers and mounts: successes (the last copy reports), failures with the retry
//! rules, requeues, ending or abandoning a mount, heartbeats.

use super::*;

impl ObjectstoreDb {
    pub(super) async fn transfers_succeeded_op(
        &self,
        mount: MountId,
        jobs: &[TransferSuccess],
        now: Timestamp,
    ) -> Result<()> {
        self.ready().await?;
        let (agent, _, _) = self.mount_agent(mount).await?;
        let me = Owner::Agent(agent.clone());
        let me = &me;
        // The requests are read in one batch and changed by compare-and-swap (see
        // `Objects::update_many`); each is changed only if this session still owns the job.
        let ids: Vec<RequestId> = jobs.iter().map(|s| s.job.request).collect();
        let moved = self
            .update_requests(
                &ids,
                |i, st| {
                    let s = &jobs[i];
                    if st.owners.get(&s.job.copy_nb) != Some(me) {
                        return Ok((None, Write::Keep));
                    }
                    let outcome = rules::on_archive_success(&mut st.request, s.job.copy_nb, s.tape_file.clone());
                    let job = st.request.job(s.job.copy_nb).cloned();
                    let home = match (outcome, job) {
                        (ArchiveSuccessOutcome::Report, Some(job)) => archive_home(&st.request, &job),
                        _ => None,
                    };
                    match home {
                        Some((key, outcome)) => {
                            st.owners.insert(s.job.copy_nb, Owner::Queue(key.clone()));
                            let ptr = archive_pointer(&st.request, s.job.copy_nb, outcome);
                            Ok((Some((key, ptr)), Write::Commit))
                        }
                        None => {
                            st.owners.insert(s.job.copy_nb, Owner::Nobody);
                            Ok((None, Write::Commit))
                        }
                    }
                },
                |_, st| {
                    if st.owner != *me {
                        return Ok((None, Write::Keep));
                    }
                    let mut request = st.request.clone();
                    if rules::on_retrieve_success(&mut request) == RetrieveSuccessOutcome::Delete {
                        return Ok((None, Write::Delete));
                    }
                    st.request = request;
                    let (key, outcome) = retrieve_home(&st.request);
                    st.owner = Owner::Queue(key.clone());
                    Ok((Some((key, retrieve_pointer(&st.request, outcome))), Write::Commit))
                },
            )
            .await?;
        let mut moves = Moves::new();
        for (key, ptr) in moved.into_iter().flatten().flatten() {
            moves.entry(key).or_default().push(ptr);
        }
        let done: Vec<String> = ids.iter().map(|id| request_name(*id)).collect();
        self.add_pointers(moves, now).await?;
        self.log(&agent, &done, false, now).await
    }

    pub(super) async fn transfers_failed_op(
        &self,
        mount: MountId,
        jobs: &[JobId],
        reason: &str,
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<()> {
        self.ready().await?;
        let (agent, _, _) = self.mount_agent(mount).await?;
        let me = Owner::Agent(agent.clone());
        let mut moves = Moves::new();
        let mut released = Vec::new();
        for id in jobs {
            match id.request {
                RequestId::Archive(_) | RequestId::RepackArchive(_) => {
                    let name = request_name(id.request);
                    let me2 = me.clone();
                    let moved = self
                        .update_archive(&name, |st| {
                            if st.owners.get(&id.copy_nb) != Some(&me2) {
                                return Ok((None, Write::Keep));
                            }
                            let outcome = rules::on_archive_failure(&mut st.request, id.copy_nb, mount, reason);
                            if outcome == FailureOutcome::HoldInMount {
                                return Ok((Some(None), Write::Commit));
                            }
                            let job = st.request.job(id.copy_nb).cloned();
                            match job.and_then(|j| archive_home(&st.request, &j)) {
                                Some((key, outcome)) => {
                                    st.owners.insert(id.copy_nb, Owner::Queue(key.clone()));
                                    Ok((
                                        Some(Some((key, archive_pointer(&st.request, id.copy_nb, outcome)))),
                                        Write::Commit,
                                    ))
                                }
                                None => Ok((Some(None), Write::Commit)),
                            }
                        })
                        .await?
                        .flatten();
                    if let Some(m) = moved {
                        if let Some((key, ptr)) = m {
                            moves.entry(key).or_default().push(ptr);
                            released.push(name);
                        }
                    } else {
                        released.push(name);
                    }
                }
                RequestId::Retrieve(rid) => {
                    let name = retrieve_request_name(rid);
                    let Some(current) = self.objs.read::<StoredRetrieve>(&name).await? else {
                        released.push(name);
                        continue;
                    };
                    if current.owner != me {
                        released.push(name);
                        continue;
                    }
                    // Decide on a copy of the request, then route it, then apply under the lock.
                    let mut request = current.request.clone();
                    let mut outcome = rules::on_retrieve_failure(&mut request, mount, reason);
                    if outcome == FailureOutcome::Requeue {
                        match self.route(&request, router).await? {
                            Some(vid) => request.active_vid = vid,
                            None => {
                                outcome = FailureOutcome::ReportFailure;
                                request.status = RetrieveStatus::ToReportForFailure;
                            }
                        }
                    }
                    let me2 = me.clone();
                    let moved = self
                        .update_retrieve(rid, move |st| {
                            if st.owner != me2 {
                                return Ok((None, Write::Keep));
                            }
                            st.request = request;
                            if outcome == FailureOutcome::HoldInMount {
                                return Ok((Some(None), Write::Commit));
                            }
                            let (key, o) = retrieve_home(&st.request);
                            st.owner = Owner::Queue(key.clone());
                            Ok((Some(Some((key, retrieve_pointer(&st.request, o)))), Write::Commit))
                        })
                        .await?
                        .flatten();
                    match moved {
                        Some(Some((key, ptr))) => {
                            moves.entry(key).or_default().push(ptr);
                            released.push(name);
                        }
                        Some(None) => {}
                        None => released.push(name),
                    }
                }
            }
        }
        self.add_pointers_rechecked(moves, now).await?;
        self.log(&agent, &released, false, now).await
    }

    pub(super) async fn requeue_jobs_op(
        &self,
        mount: MountId,
        jobs: &[JobId],
        now: Timestamp,
        _router: &dyn RetrieveRouter,
    ) -> Result<u64> {
        self.ready().await?;
        let (agent, _, _) = self.mount_agent(mount).await?;
        let me = Owner::Agent(agent.clone());
        let mut moves = Moves::new();
        let mut released = Vec::new();
        for id in jobs {
            let me2 = me.clone();
            let moved = match id.request {
                RequestId::Archive(_) | RequestId::RepackArchive(_) => self
                    .update_archive(&request_name(id.request), |st| {
                        if st.owners.get(&id.copy_nb) != Some(&me2) {
                            return Ok((None, Write::Keep));
                        }
                        let job = st.request.job(id.copy_nb).cloned();
                        match job.and_then(|j| archive_home(&st.request, &j)) {
                            Some((key, o)) => {
                                st.owners.insert(id.copy_nb, Owner::Queue(key.clone()));
                                Ok((Some((key, archive_pointer(&st.request, id.copy_nb, o))), Write::Commit))
                            }
                            None => Ok((None, Write::Keep)),
                        }
                    })
                    .await?
                    .flatten()
                    .map(|m| (request_name(id.request), m)),
                RequestId::Retrieve(rid) => self
                    .update_retrieve(rid, |st| {
                        if st.owner != me2 {
                            return Ok((None, Write::Keep));
                        }
                        let (key, o) = retrieve_home(&st.request);
                        st.owner = Owner::Queue(key.clone());
                        Ok((Some((key, retrieve_pointer(&st.request, o))), Write::Commit))
                    })
                    .await?
                    .flatten()
                    .map(|m| (retrieve_request_name(rid), m)),
            };
            if let Some((name, (key, ptr))) = moved {
                moves.entry(key).or_default().push(ptr);
                released.push(name);
            }
        }
        let n = released.len() as u64;
        self.add_pointers_rechecked(moves, now).await?;
        self.log(&agent, &released, false, now).await?;
        Ok(n)
    }

    pub(super) async fn end_mount_op(
        &self,
        mount: MountId,
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<u64> {
        self.ready().await?;
        let (name, agent, _) = self.mount_agent(mount).await?;
        let n = self.requeue_owned(&name, &agent, now, router).await?;
        self.deregister_agent(&name).await?;
        Ok(n)
    }

    pub(super) async fn abandon_mount_op(&self, mount: MountId, now: Timestamp) -> Result<()> {
        self.ready().await?;
        let name = mount_agent_name(mount);
        self.objs
            .update::<Agent, _>(&name, |a| {
                a.gc_needed = true;
                a.heartbeat = a.heartbeat.max(now);
                Ok(((), Write::Commit))
            })
            .await?
            .ok_or_else(|| Error::not_found(format!("mount {mount} does not exist or has ended")))
    }

    pub(super) async fn heartbeat_op(&self, mount: Option<MountId>, now: Timestamp) -> Result<()> {
        self.ready().await?;
        if self.agent_ready.initialized() {
            match self.touch(&self.agent, now).await {
                // Collected while this process lived: it registers again (see `log_own`).
                Err(e) if e.kind == tapesched_scheduler::ErrorKind::NotFound => self.register_own(now).await?,
                r => r?,
            }
        }
        if let Some(m) = mount {
            self.touch(&mount_agent_name(m), now).await?;
        }
        Ok(())
    }

    /// The process's agent touched once, then every mount's agent, side by side; the first
    /// mount whose agent is gone is the error (the others are touched all the same).
    pub(super) async fn heartbeat_mounts_op(&self, mounts: &[MountId], now: Timestamp) -> Result<()> {
        self.heartbeat_op(None, now).await?;
        let names: Vec<String> = mounts.iter().map(|m| mount_agent_name(*m)).collect();
        let touched = futures::future::join_all(names.iter().map(|n| self.touch(n, now))).await;
        for (m, t) in mounts.iter().zip(touched) {
            match t {
                Err(e) if e.kind == tapesched_scheduler::ErrorKind::NotFound => {
                    return Err(Error::not_found(format!("mount {m} does not exist or has ended")))
                }
                Err(e) => return Err(e),
                Ok(()) => {}
            }
        }
        Ok(())
    }
}

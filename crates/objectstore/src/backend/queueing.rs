//! Writes of new requests: archive batches (all or nothing per request), retrieve requests routed
//! to a VID's queue (alone or in batches), cancellations, and the retrieve-queue statistics
//! routing reads.

use super::*;

impl ObjectstoreDb {
    /// Queues archive requests together: one intent-log update for the batch, the request
    /// objects created concurrently, one queue update per pool. Each request is all or nothing.
    pub(super) async fn queue_archive_batch(
        &self,
        requests: Vec<ArchiveRequest>,
        now: Timestamp,
    ) -> Result<Vec<Result<()>>> {
        self.ready().await?;
        let names: Vec<String> = requests.iter().map(|r| request_name(r.id())).collect();
        // Requests still in our log were being queued by an attempt that failed midway (the
        // store became unavailable): a retry resumes them instead of calling them duplicates.
        let in_flight = self.in_flight().await?;
        self.log_own(&names, true, now).await?;
        let in_flight = &in_flight;
        let created = join_all(requests.iter().zip(&names).map(|(request, name)| {
            // Created owned by its queues, then pointed to: a crash in between leaves the
            // request in this agent's log, and the collector (or `recover`, or a retry of this
            // batch) adds the pointers its owners call for.
            let stored = StoredArchive {
                owners: request
                    .jobs
                    .iter()
                    .map(|j| (j.copy_nb, archive_home(request, j).map_or(Owner::Nobody, |(k, _)| Owner::Queue(k))))
                    .collect(),
                request: request.clone(),
            };
            async move {
                if request.jobs.is_empty() {
                    return Err(Error::invalid(format!(
                        "archive request {} has no copy to write",
                        request.archive_file_id
                    )));
                }
                match self.objs.create(name, &stored).await {
                    Ok(()) => Ok(false),
                    Err(e) if e.kind == tapesched_scheduler::ErrorKind::Conflict => {
                        let resumable = in_flight.contains(name)
                            && self.objs.read::<StoredArchive>(name).await?.is_some_and(|s| s.request == *request);
                        if resumable {
                            Ok(true)
                        } else {
                            Err(Error::conflict(format!(
                                "archive request {} is already queued",
                                request.archive_file_id
                            )))
                        }
                    }
                    Err(e) => Err(e),
                }
            }
        }))
        .await;
        let mut moves = Moves::new();
        let mut resumed = Moves::new();
        for (request, ok) in requests.iter().zip(&created) {
            let Ok(resume) = ok else { continue };
            for job in &request.jobs {
                let target = if *resume { &mut resumed } else { &mut moves };
                if let Some((key, outcome)) = archive_home(request, job) {
                    target.entry(key).or_default().push(archive_pointer(request, job.copy_nb, outcome));
                }
            }
        }
        self.add_pointers(moves, now).await?;
        self.ensure_pointers(resumed, now).await?;
        // A request whose creation failed with `unavailable` may exist all the same (the answer
        // was lost): it stays in the log, so that a retry resumes it and a collector finds it.
        let settled: Vec<String> = names
            .into_iter()
            .zip(&created)
            .filter(|(_, r)| !matches!(r, Err(e) if e.kind == tapesched_scheduler::ErrorKind::Unavailable))
            .map(|(n, _)| n)
            .collect();
        self.log_own(&settled, false, now).await?;
        Ok(created.into_iter().map(|r| r.map(|_| ())).collect())
    }

    pub(super) async fn queue_archive_op(&self, request: ArchiveRequest, now: Timestamp) -> Result<()> {
        self.queue_archives(vec![request], now).await.pop().unwrap_or(Ok(()))
    }

    pub(super) async fn queue_archives_op(&self, requests: Vec<ArchiveRequest>, now: Timestamp) -> Vec<Result<()>> {
        // One answer per request, as the trait says, even when the whole batch failed.
        let n = requests.len();
        match self.queue_archive_batch(requests, now).await {
            Ok(answers) => answers,
            Err(e) => vec![Err(e); n],
        }
    }

    /// Queues retrieve requests together, as [`ObjectstoreDb::queue_archive_batch`] does
    /// archives: one intent-log update for the batch, the request objects created concurrently,
    /// one queue update per VID (its pointers in the order of the batch). Each request is all or
    /// nothing, answered as [`ObjectstoreDb::queue_retrieve_op`] answers it alone; a request id
    /// repeated in the batch is a `conflict` after its first.
    pub(super) async fn queue_retrieve_batch(
        &self,
        requests: &[RetrieveRequest],
        now: Timestamp,
    ) -> Result<Vec<Result<()>>> {
        self.ready().await?;
        let mut seen = HashSet::new();
        let refused: Vec<Option<Error>> = requests
            .iter()
            .map(|r| {
                if r.active_copy().is_none() {
                    Some(Error::invalid(format!(
                        "retrieve request {} targets tape {:?}, which holds none of its copies",
                        r.request_id, r.active_vid
                    )))
                } else if !seen.insert(r.request_id) {
                    Some(Error::conflict(format!("retrieve request {} is already queued", r.request_id)))
                } else {
                    None
                }
            })
            .collect();
        let names: Vec<String> = requests.iter().map(|r| retrieve_request_name(r.request_id)).collect();
        let logged: Vec<String> =
            names.iter().zip(&refused).filter(|(_, e)| e.is_none()).map(|(n, _)| n.clone()).collect();
        // Still in our log: an earlier attempt failed midway (the store became unavailable);
        // this one resumes it instead of calling it a duplicate.
        let in_flight = self.in_flight().await?;
        self.log_own(&logged, true, now).await?;
        let in_flight = &in_flight;
        /// What the batch does next for a request it stored or found.
        enum Next {
            /// Created here: add its pointer.
            Point,
            /// Created by a failed attempt and still owned by its queue: make sure of its pointer.
            Ensure,
            /// Created by a failed attempt and moved on since (or gone): nothing left to do.
            Nothing,
        }
        let created =
            join_all(requests.iter().zip(&names).zip(&refused).map(|((request, name), refused)| async move {
                if let Some(e) = refused {
                    return Err(e.clone());
                }
                let owner = Owner::Queue(QueueKey::new(QueueKind::RetrieveToTransfer, &request.active_vid));
                let stored = StoredRetrieve { request: request.clone(), owner: owner.clone(), pass: None };
                match self.objs.create(name, &stored).await {
                    Ok(()) => Ok(Next::Point),
                    Err(e) if e.kind == tapesched_scheduler::ErrorKind::Conflict && in_flight.contains(name) => {
                        let mine = self.objs.read::<StoredRetrieve>(name).await?.is_some_and(|s| s.owner == owner);
                        Ok(if mine { Next::Ensure } else { Next::Nothing })
                    }
                    Err(e) if e.kind == tapesched_scheduler::ErrorKind::Conflict => {
                        Err(Error::conflict(format!("retrieve request {} is already queued", request.request_id)))
                    }
                    Err(e) => Err(e),
                }
            }))
            .await;
        let (mut moves, mut resumed) = (Moves::new(), Moves::new());
        for (request, next) in requests.iter().zip(&created) {
            let target = match next {
                Ok(Next::Point) => &mut moves,
                Ok(Next::Ensure) => &mut resumed,
                Ok(Next::Nothing) | Err(_) => continue,
            };
            let key = QueueKey::new(QueueKind::RetrieveToTransfer, &request.active_vid);
            target.entry(key).or_default().push(retrieve_pointer(request, None));
        }
        self.add_pointers(moves, now).await?;
        self.ensure_pointers(resumed, now).await?;
        // After `unavailable` a request may exist all the same, and one an earlier attempt left
        // in the log stays there after any other error: a retry or the collector finds them.
        let settled: Vec<String> = names
            .into_iter()
            .zip(&created)
            .zip(&refused)
            .filter(|((name, r), refused)| {
                refused.is_none()
                    && match r {
                        Ok(_) => true,
                        Err(e) if e.kind == tapesched_scheduler::ErrorKind::Unavailable => false,
                        Err(e) => e.kind == tapesched_scheduler::ErrorKind::Conflict || !in_flight.contains(name),
                    }
            })
            .map(|((n, _), _)| n)
            .collect();
        self.log_own(&settled, false, now).await?;
        Ok(created.into_iter().map(|r| r.map(|_| ())).collect())
    }

    pub(super) async fn queue_retrieves_op(&self, requests: Vec<RetrieveRequest>, now: Timestamp) -> Vec<Result<()>> {
        // One answer per request, as the trait says, even when the whole batch failed.
        match self.queue_retrieve_batch(&requests, now).await {
            Ok(answers) => answers,
            Err(e) => vec![Err(e); requests.len()],
        }
    }

    pub(super) async fn queue_retrieve_op(&self, request: RetrieveRequest, now: Timestamp) -> Result<()> {
        self.ready().await?;
        if request.active_copy().is_none() {
            return Err(Error::invalid(format!(
                "retrieve request {} targets tape {:?}, which holds none of its copies",
                request.request_id, request.active_vid
            )));
        }
        let name = retrieve_request_name(request.request_id);
        let key = QueueKey::new(QueueKind::RetrieveToTransfer, &request.active_vid);
        // Still in our log: an earlier attempt failed midway (the store became unavailable);
        // this one resumes it instead of calling it a duplicate.
        let in_flight = self.in_flight().await?.contains(&name);
        self.log_own(std::slice::from_ref(&name), true, now).await?;
        let owner = Owner::Queue(key.clone());
        let stored = StoredRetrieve { request: request.clone(), owner: owner.clone(), pass: None };
        let pointer = Moves::from([(key, vec![retrieve_pointer(&request, None)])]);
        match self.objs.create(&name, &stored).await {
            Ok(()) => self.add_pointers(pointer, now).await?,
            Err(e) if e.kind == tapesched_scheduler::ErrorKind::Conflict && in_flight => {
                // Created by the failed attempt; its pointer may be missing (if the request has
                // moved on since, or is gone, there is nothing left to do).
                if self.objs.read::<StoredRetrieve>(&name).await?.is_some_and(|s| s.owner == owner) {
                    self.ensure_pointers(pointer, now).await?;
                }
            }
            Err(e) if e.kind == tapesched_scheduler::ErrorKind::Conflict => {
                self.log_own(std::slice::from_ref(&name), false, now).await?;
                return Err(Error::conflict(format!("retrieve request {} is already queued", request.request_id)));
            }
            Err(e) => {
                // After `unavailable` the request may exist all the same: it stays in the log.
                if !in_flight && e.kind != tapesched_scheduler::ErrorKind::Unavailable {
                    self.log_own(std::slice::from_ref(&name), false, now).await?;
                }
                return Err(e);
            }
        }
        self.log_own(&[name], false, now).await
    }

    pub(super) async fn retrieve_queue_stats_op(&self, vids: &[String]) -> Result<Vec<QueueStats>> {
        self.ready().await?;
        let root = self.root().await?;
        let mut out = Vec::with_capacity(vids.len());
        for vid in vids {
            let key = QueueKey::new(QueueKind::RetrieveToTransfer, vid);
            let queue = match root.queue(&key) {
                Some(a) => self.objs.read::<Queue>(a).await?,
                None => None,
            };
            let s = queue.map(|q| q.summary).unwrap_or_default();
            out.push(QueueStats {
                vid: vid.clone(),
                files_queued: s.count,
                bytes_queued: s.bytes_queued(),
                priority: s.priorities.keys().next_back().copied().unwrap_or(0),
            });
        }
        Ok(out)
    }

    pub(super) async fn cancel_archive_op(&self, archive_file_id: u64, now: Timestamp) -> Result<()> {
        self.ready().await?;
        let name = archive_request_name(archive_file_id);
        let stored = self
            .objs
            .read::<StoredArchive>(&name)
            .await?
            .ok_or_else(|| Error::not_found(format!("no archive request for archive file {archive_file_id}")))?;
        if stored.request.jobs.iter().all(|j| j.status == ArchiveJobStatus::Failed) {
            return Ok(());
        }
        self.log_own(std::slice::from_ref(&name), true, now).await?;
        for (copy, owner) in &stored.owners {
            if let Owner::Queue(key) = owner {
                self.remove_pointers(key, &[(name.clone(), *copy)], now).await?;
            }
        }
        if let Some(lock) = self.objs.lock(&name).await? {
            let r = self.objs.remove(&name, &lock).await;
            self.objs.unlock(lock).await;
            r?;
        }
        self.log_own(&[name], false, now).await
    }

    pub(super) async fn cancel_retrieve_op(
        &self,
        archive_file_id: u64,
        dst_url: Option<&str>,
        now: Timestamp,
    ) -> Result<u64> {
        self.ready().await?;
        let mut cancelled = 0;
        for (key, address) in self.queues_of(&[QueueKind::RetrieveToTransfer]).await? {
            let Some((_, jobs)) = self.read_queue_jobs(&address).await? else { continue };
            for p in jobs.iter().filter(|p| p.archive_file_id == archive_file_id) {
                let Some(stored) = self.objs.read::<StoredRetrieve>(&p.address).await? else { continue };
                // A repack's recall of the same file is not the user's to cancel.
                if dst_url.is_some_and(|d| d != stored.request.dst_url)
                    || stored.owner != Owner::Queue(key.clone())
                    || stored.request.repack.is_some()
                {
                    continue;
                }
                self.remove_pointers(&key, &[(p.address.clone(), p.copy_nb)], now).await?;
                if let Some(lock) = self.objs.lock(&p.address).await? {
                    let r = self.objs.remove(&p.address, &lock).await;
                    self.objs.unlock(lock).await;
                    r?;
                }
                cancelled += 1;
            }
        }
        if cancelled == 0 {
            return Err(Error::not_found(format!(
                "no queued retrieve request for archive file {archive_file_id}{}",
                dst_url.map(|d| format!(" to {d:?}")).unwrap_or_default()
            )));
        }
        Ok(cancelled)
    }
}

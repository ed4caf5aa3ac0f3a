//! Repack in the objectstore: repack requests (one object per VID and an index of VIDs),
//! expansion passes, the repack report queues, and cancellation.
//!
//! A repack's subrequests are ordinary request objects carrying a `RepackLink`: retrieves queue
//! in the VID's ordinary retrieve queue (shared with user recalls, as in CTA), repack archive
//! requests (named by their subrequest id) in their pools' ArchiveForRepack queues, and both
//! report to the `RepackToReport` queue of the repacked VID, never to the user report queues.
//!
//! **Expansion passes are committed by the repack object.** A pass lists its subrequests in its
//! agent's log, writes a `RepackPass` object (the pass's token and subrequest ids), creates the
//! subrequests owned by their home queues but not yet pointed to by them (so no mount sees
//! them), then applies the cursor/counter update to the repack and records the pass's token in
//! it, in one locked write: the commit point. Only then are the pointers added. The collector of
//! a dead agent deletes a repack subrequest whose pass the repack does not record (or whose
//! repack is gone) instead of requeueing it, so an unfinished pass leaves nothing. (The token is
//! a sharper form of "fSeq above the repack's cursor": a pass re-run by another process after a
//! crash moves the cursor past the orphans of the dead one, but never records their token.)
//!
//! **Finding a repack's subrequests** (cancel) goes through its pass objects: one per committed
//! pass, written once per pass, so a tape of a million files needs a few hundred objects and no
//! object ever lists a million names (CTA's RepackRequest did), and no queue shared with other
//! requests (user recalls, other repacks) is scanned. A repack archive request is keyed by its
//! subrequest id, so the same ids find the retrieves and the archives made from them.

use tapesched_scheduler::repack::{RepackReport, RepackRequest, RepackUpdate};
use tapesched_scheduler::ErrorKind;

use super::*;

fn no_repack(vid: &str) -> Error {
    Error::not_found(format!("no repack request for tape {vid:?}"))
}

impl ObjectstoreDb {
    pub(super) async fn queue_repack_op(&self, request: RepackRequest, now: Timestamp) -> Result<()> {
        self.ready().await?;
        let _ = now;
        let vid = request.vid.clone();
        // Listed first, created second: a VID listed without its object (a creation cut short)
        // is skipped by readers.
        self.objs.ensure(REPACK_INDEX, &RepackIndex::default()).await?;
        let v = vid.clone();
        self.objs
            .update::<RepackIndex, _>(REPACK_INDEX, move |ix| {
                if ix.vids.contains(&v) {
                    return Ok(((), Write::Keep));
                }
                ix.vids.push(v);
                Ok(((), Write::Commit))
            })
            .await?;
        let stored = StoredRepack { request, passes: vec![], applied: vec![] };
        match self.objs.create(&repack_name(&vid), &stored).await {
            Err(e) if e.kind == ErrorKind::Conflict => {
                Err(Error::conflict(format!("a repack of tape {vid:?} is already queued")))
            }
            other => other,
        }
    }

    pub(super) async fn repacks_op(&self) -> Result<Vec<RepackRequest>> {
        self.ready().await?;
        let index = self.objs.read::<RepackIndex>(REPACK_INDEX).await?.unwrap_or_default();
        let names: Vec<String> = index.vids.iter().map(|v| repack_name(v)).collect();
        let mut out: Vec<RepackRequest> =
            self.objs.read_many::<StoredRepack>(&names).await?.into_iter().flatten().map(|s| s.request).collect();
        out.sort_by(|a, b| a.vid.cmp(&b.vid));
        Ok(out)
    }

    pub(super) async fn repack_op(&self, vid: &str) -> Result<Option<RepackRequest>> {
        self.ready().await?;
        Ok(self.objs.read::<StoredRepack>(&repack_name(vid)).await?.map(|s| s.request))
    }

    pub(super) async fn update_repack_op(
        &self,
        vid: &str,
        update: &RepackUpdate,
        _now: Timestamp,
    ) -> Result<RepackRequest> {
        self.ready().await?;
        self.objs
            .update::<StoredRepack, _>(&repack_name(vid), |s| {
                update.apply(&mut s.request)?;
                Ok((s.request.clone(), Write::Commit))
            })
            .await?
            .ok_or_else(|| no_repack(vid))
    }

    /// Whether a retrieve request still belongs where its owner record says: always for a
    /// user's; for a repack subrequest, only if its repack exists and records its pass as
    /// committed (a subrequest without a pass token: if its fSeq is within the repack's cursor).
    pub(super) async fn repack_subrequest_committed(&self, stored: &StoredRetrieve) -> Result<bool> {
        let Some(link) = &stored.request.repack else { return Ok(true) };
        let Some(repack) = self.objs.read::<StoredRepack>(&repack_name(&link.vid)).await? else { return Ok(false) };
        Ok(match stored.pass {
            Some(token) => repack.passes.contains(&token),
            None => link.fseq <= repack.request.last_expanded_fseq,
        })
    }

    /// Deletes the pass object `name` (from a dead agent's log) unless its repack committed it.
    pub(super) async fn drop_uncommitted_pass(&self, name: &str) -> Result<()> {
        let Some(pass) = self.objs.read::<RepackPass>(name).await? else { return Ok(()) };
        let repack = self.objs.read::<StoredRepack>(&repack_name(&pass.vid)).await?;
        if repack.is_some_and(|r| r.passes.contains(&pass.token)) {
            return Ok(());
        }
        self.delete_requests(vec![(name.to_string(), vec![])], 0).await
    }

    /// Deletes objects (request objects, or other leaves), first removing their pointers from
    /// the queues given with each (one update per queue), then the objects concurrently.
    pub(super) async fn delete_requests(
        &self,
        items: Vec<(String, Vec<(QueueKey, u32)>)>,
        now: Timestamp,
    ) -> Result<()> {
        let mut by_queue: BTreeMap<QueueKey, Vec<(String, u32)>> = BTreeMap::new();
        for (name, queues) in &items {
            for (key, copy) in queues {
                by_queue.entry(key.clone()).or_default().push((name.clone(), *copy));
            }
        }
        for (key, targets) in by_queue {
            self.remove_pointers(&key, &targets, now).await?;
        }
        let removed = join_all(items.iter().map(|(name, _)| async move {
            match self.objs.lock(name).await? {
                Some(lock) => {
                    let r = self.objs.remove(name, &lock).await;
                    self.objs.unlock(lock).await;
                    r
                }
                None => Ok(()),
            }
        }))
        .await;
        removed.into_iter().collect()
    }

    pub(super) async fn queue_repack_subrequests_op(
        &self,
        vid: &str,
        subrequests: Vec<RetrieveRequest>,
        update: &RepackUpdate,
        now: Timestamp,
    ) -> Result<()> {
        self.ready().await?;
        let repack_object = repack_name(vid);
        let repack = self.objs.read::<StoredRepack>(&repack_object).await?.ok_or_else(|| no_repack(vid))?;
        for r in &subrequests {
            let Some(link) = &r.repack else {
                return Err(Error::invalid(format!("retrieve request {} is not a repack subrequest", r.request_id)));
            };
            if link.vid != vid || link.subrequest_id != r.request_id {
                return Err(Error::invalid(format!(
                    "subrequest {} belongs to the repack of {:?} (subrequest {}), not to this one of {vid:?}",
                    r.request_id, link.vid, link.subrequest_id
                )));
            }
            let ok = match r.status {
                RetrieveStatus::ToTransfer => r.active_copy().is_some(),
                RetrieveStatus::ToReportForTransfer => true,
                _ => false,
            };
            if !ok {
                return Err(Error::invalid(format!(
                    "subrequest {} must be to transfer from a tape holding a copy, or already recalled",
                    r.request_id
                )));
            }
        }
        // An update that would conflict is refused before anything is written.
        update.apply(&mut repack.request.clone())?;
        let names: Vec<String> = subrequests.iter().map(|r| retrieve_request_name(r.request_id)).collect();
        // Subrequests still in our log were created by an attempt that failed midway (store
        // unavailable): this one carries on with that attempt's pass.
        let in_flight = self.in_flight().await?;
        let resumable: Vec<String> = names.iter().filter(|n| in_flight.contains(*n)).cloned().collect();
        let earlier =
            self.objs.read_many::<StoredRetrieve>(&resumable).await?.into_iter().flatten().find_map(|s| s.pass);
        let token = earlier.unwrap_or_else(unique_token);
        let pass_name = repack_pass_name(vid, token);
        let mut logged = names.clone();
        logged.push(pass_name.clone());
        let homes: Vec<QueueKey> = subrequests.iter().map(|r| retrieve_home(r).0).collect();
        if repack.passes.contains(&token) {
            // That attempt committed; only pointers may be missing.
            self.ensure_pointers(subrequest_pointers(&subrequests, &homes), now).await?;
            return self.log_own(&logged, false, now).await;
        }
        self.log_own(&logged, true, now).await?;
        let pass =
            RepackPass { token, vid: vid.to_string(), subrequests: subrequests.iter().map(|r| r.request_id).collect() };
        self.objs.ensure(&pass_name, &pass).await?;
        let in_flight = &in_flight;
        let created = join_all(subrequests.iter().zip(&names).zip(&homes).map(|((request, name), home)| async move {
            let stored =
                StoredRetrieve { request: request.clone(), owner: Owner::Queue(home.clone()), pass: Some(token) };
            match self.objs.create(name, &stored).await {
                Ok(()) => Ok(false),
                Err(e) if e.kind == ErrorKind::Conflict => {
                    let resumed = in_flight.contains(name)
                        && self
                            .objs
                            .read::<StoredRetrieve>(name)
                            .await?
                            .is_some_and(|s| s.pass == Some(token) && s.request == *request);
                    if resumed {
                        Ok(true)
                    } else {
                        Err(Error::conflict(format!("retrieve request {} is already queued", request.request_id)))
                    }
                }
                Err(e) => Err(e),
            }
        }))
        .await;
        let failed = created.iter().filter_map(|r| r.as_ref().err()).cloned().collect::<Vec<_>>();
        let resumed = created.iter().any(|r| matches!(r, Ok(true)));
        if let Some(e) = failed.iter().find(|e| e.kind == ErrorKind::Unavailable).or(failed.first()) {
            return Err(self.undo_pass(e.clone(), &names, &created, &pass_name, &logged, now).await);
        }
        // The commit point: the update and the pass's token, in one write of the repack.
        let committed = self
            .objs
            .update::<StoredRepack, _>(&repack_object, |s| {
                update.apply(&mut s.request)?;
                s.passes.push(token);
                Ok(((), Write::Commit))
            })
            .await;
        match committed {
            Ok(Some(())) => {}
            Ok(None) => return Err(self.undo_pass(no_repack(vid), &names, &created, &pass_name, &logged, now).await),
            Err(e) => return Err(self.undo_pass(e, &names, &created, &pass_name, &logged, now).await),
        }
        let pointers = subrequest_pointers(&subrequests, &homes);
        if resumed {
            self.ensure_pointers(pointers, now).await?;
        } else {
            self.add_pointers(pointers, now).await?;
        }
        self.log_own(&logged, false, now).await
    }

    /// Removes what a pass that cannot commit created (nothing of it is visible yet), and
    /// returns the error to report. After `unavailable` the outcome is unknown: everything stays
    /// in the log for a retry, `recover` or the collector, which decide by the repack's record.
    async fn undo_pass(
        &self,
        error: Error,
        names: &[String],
        created: &[Result<bool>],
        pass_name: &str,
        logged: &[String],
        now: Timestamp,
    ) -> Error {
        if error.kind == ErrorKind::Unavailable {
            return error;
        }
        let mut items: Vec<(String, Vec<(QueueKey, u32)>)> =
            names.iter().zip(created).filter(|(_, c)| c.is_ok()).map(|(n, _)| (n.clone(), vec![])).collect();
        items.push((pass_name.to_string(), vec![]));
        if let Err(e) = self.delete_requests(items, now).await {
            return e;
        }
        match self.log_own(logged, false, now).await {
            Ok(()) => error,
            Err(e) => e,
        }
    }

    pub(super) async fn repack_reports_due_op(&self, max: u64, _now: Timestamp) -> Result<Vec<RepackReport>> {
        self.ready().await?;
        let mut pointers: Vec<(QueueKey, JobPointer)> = Vec::new();
        for (key, address) in self.queues_of(&[QueueKind::RepackToReport]).await? {
            let Some((_, jobs)) = self.read_queue_jobs(&address).await? else { continue };
            pointers.extend(jobs.into_iter().filter(|p| p.outcome.is_some()).map(|p| (key.clone(), p)));
        }
        pointers.sort_by_key(|(_, p)| ReportJob::order_of(p.archive_file_id, p.request));
        pointers.dedup_by_key(|(_, p)| p.request);
        let max = max.min(usize::MAX as u64) as usize;
        let mut due = Vec::new();
        // Each pointer is confirmed by its request (others are stale hints), in order.
        for chunk in pointers.chunks(512) {
            if due.len() >= max {
                break;
            }
            let names: Vec<String> = chunk.iter().map(|(_, p)| p.address.clone()).collect();
            let raw = self.objs.store().read_many(&names).await.map_err(store_error)?;
            for ((key, p), bytes) in chunk.iter().zip(raw) {
                let Some(bytes) = bytes else { continue };
                if due.len() >= max {
                    break;
                }
                let owner = Owner::Queue(key.clone());
                let due_status = |s: RetrieveStatus| {
                    matches!(s, RetrieveStatus::ToReportForTransfer | RetrieveStatus::ToReportForFailure)
                };
                match p.request {
                    RequestId::Retrieve(_) => {
                        let s: StoredRetrieve = self.objs.decode_named(&p.address, &bytes)?;
                        if s.owner == owner && s.request.repack.is_some() && due_status(s.request.status) {
                            due.push(RepackReport::Retrieve(s.request));
                        }
                    }
                    RequestId::Archive(_) | RequestId::RepackArchive(_) => {
                        let s: StoredArchive = self.objs.decode_named(&p.address, &bytes)?;
                        let reporting = s.request.jobs.iter().any(|j| {
                            matches!(
                                j.status,
                                ArchiveJobStatus::ToReportForTransfer | ArchiveJobStatus::ToReportForFailure
                            ) && s.owners.get(&j.copy_nb) == Some(&owner)
                        });
                        if reporting && s.request.repack.is_some() {
                            due.push(RepackReport::Archive(s.request));
                        }
                    }
                }
            }
        }
        Ok(due)
    }

    pub(super) async fn cancel_repack_op(&self, vid: &str, now: Timestamp) -> Result<u64> {
        self.ready().await?;
        let repack_object = repack_name(vid);
        let repack = self.objs.read::<StoredRepack>(&repack_object).await?.ok_or_else(|| no_repack(vid))?;
        let pass_names: Vec<String> = repack.passes.iter().map(|t| repack_pass_name(vid, *t)).collect();
        let mut ids: Vec<u64> = Vec::new();
        for chunk in pass_names.chunks(64) {
            for pass in self.objs.read_many::<RepackPass>(chunk).await?.into_iter().flatten() {
                ids.extend(pass.subrequests);
            }
        }
        // Subrequests first, the repack last: a cancel cut short is finished by running it again.
        let mut cancelled = 0u64;
        for chunk in ids.chunks(1000) {
            let retrieves: Vec<String> = chunk.iter().map(|i| retrieve_request_name(*i)).collect();
            let archives: Vec<String> = chunk.iter().map(|i| repack_archive_request_name(*i)).collect();
            let rs = self.objs.read_many::<StoredRetrieve>(&retrieves).await?;
            let as_ = self.objs.read_many::<StoredArchive>(&archives).await?;
            let mut items = Vec::new();
            for ((rn, r), (an, a)) in retrieves.into_iter().zip(rs).zip(archives.into_iter().zip(as_)) {
                let mut found = false;
                if let Some(r) = r.filter(|r| r.request.repack.as_ref().is_some_and(|l| l.vid == vid)) {
                    let copy = r.request.active_copy().map_or(0, |c| c.copy_nb);
                    items.push((rn, queue_owners([(copy, &r.owner)])));
                    found = true;
                }
                if let Some(a) = a.filter(|a| a.request.repack.as_ref().is_some_and(|l| l.vid == vid)) {
                    items.push((an, queue_owners(a.owners.iter().map(|(c, o)| (*c, o)))));
                    found = true;
                }
                cancelled += found as u64;
            }
            self.delete_requests(items, now).await?;
        }
        let mut leaves: Vec<(String, Vec<(QueueKey, u32)>)> = pass_names.into_iter().map(|n| (n, vec![])).collect();
        leaves.push((repack_object, vec![]));
        self.delete_requests(leaves, now).await?;
        let v = vid.to_string();
        self.objs
            .update::<RepackIndex, _>(REPACK_INDEX, move |ix| {
                ix.vids.retain(|x| *x != v);
                Ok(((), Write::Commit))
            })
            .await?;
        Ok(cancelled)
    }
}

/// The pointers of new subrequests, grouped by their home queues.
fn subrequest_pointers(subrequests: &[RetrieveRequest], homes: &[QueueKey]) -> Moves {
    let mut moves = Moves::new();
    for (r, home) in subrequests.iter().zip(homes) {
        moves.entry(home.clone()).or_default().push(retrieve_pointer(r, retrieve_home(r).1));
    }
    moves
}

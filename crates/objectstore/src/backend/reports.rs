//! Reports and listings: due reports in canonical order, delivered and failed reports, pending
//! and failed jobs; and `ping`, the store check.

use super::*;

impl ObjectstoreDb {
    pub(super) async fn ping_op(&self) -> Result<()> {
        self.ready().await?;
        self.root().await.map(|_| ())
    }

    pub(super) async fn reports_due_op(
        &self,
        filter: ReportFilter,
        max: u64,
        _now: Timestamp,
    ) -> Result<Vec<ReportJob>> {
        self.ready().await?;
        let kinds: &[QueueKind] = match filter {
            ReportFilter::Archive => &[QueueKind::ArchiveToReport],
            ReportFilter::Retrieve => &[QueueKind::RetrieveToReport],
            ReportFilter::All => &[QueueKind::ArchiveToReport, QueueKind::RetrieveToReport],
        };
        let mut pointers: Vec<(QueueKey, JobPointer, Outcome)> = Vec::new();
        for (key, address) in self.queues_of(kinds).await? {
            let Some((_, jobs)) = self.read_queue_jobs(&address).await? else { continue };
            pointers.extend(jobs.into_iter().filter_map(|p| p.outcome.map(|o| (key.clone(), p, o))));
        }
        let order = |p: &JobPointer| ReportJob::order_of(p.archive_file_id, p.request);
        pointers.sort_by_key(|(_, p, _)| order(p));
        pointers.dedup_by_key(|(_, p, _)| p.request);
        // Confirm each pointer with its request (others are stale hints), in order, reading the
        // requests in chunks until `max` reports are found.
        let max = max.min(usize::MAX as u64) as usize;
        let mut due = Vec::new();
        for chunk in pointers.chunks(512) {
            if due.len() >= max {
                break;
            }
            let names: Vec<String> = chunk.iter().map(|(_, p, _)| p.address.clone()).collect();
            let raw = self.objs.store().read_many(&names).await.map_err(store_error)?;
            for ((key, p, outcome), bytes) in chunk.iter().zip(raw) {
                let Some(bytes) = bytes else { continue };
                let owner = Owner::Queue(key.clone());
                // Repack subrequests report to their repack (`repack_reports_due`), never here.
                let (owned, report_url, error_url) = match p.request {
                    RequestId::Archive(_) | RequestId::RepackArchive(_) => {
                        let s: StoredArchive = self.objs.decode_named(&p.address, &bytes)?;
                        let owned = s.owners.get(&p.copy_nb) == Some(&owner) && s.request.repack.is_none();
                        (owned, s.request.report_url, s.request.error_report_url)
                    }
                    RequestId::Retrieve(_) => {
                        let s: StoredRetrieve = self.objs.decode_named(&p.address, &bytes)?;
                        (
                            s.owner == owner && s.request.repack.is_none(),
                            s.request.report_url,
                            s.request.error_report_url,
                        )
                    }
                };
                if !owned || due.len() >= max {
                    continue;
                }
                let url = if *outcome == Outcome::Success { report_url } else { error_url };
                due.push(ReportJob { request: p.request, archive_file_id: p.archive_file_id, outcome: *outcome, url });
            }
        }
        Ok(due)
    }

    pub(super) async fn reports_delivered_op(&self, reports: &[RequestId], now: Timestamp) -> Result<()> {
        self.ready().await?;
        let mut moves = Moves::new();
        let mut removals: BTreeMap<QueueKey, Vec<(String, u32)>> = BTreeMap::new();
        let names: Vec<String> = reports.iter().map(|r| request_name(*r)).collect();
        self.log_own(&names, true, now).await?;
        // Every request switched in one batch (one read and one compare-and-swap round trip; one
        // changed or locked meanwhile is updated under its lock).
        let mut seen = HashSet::new();
        let ids: Vec<RequestId> = reports.iter().copied().filter(|r| seen.insert(*r)).collect();
        let changed = self
            .update_requests(
                &ids,
                |_, st| {
                    if st.request.repack.is_some() {
                        // A repack's archive reports to its repack, not through here.
                        return Ok((None, Write::Keep));
                    }
                    let Some(job) = st.request.jobs.iter().find(|j| {
                        matches!(j.status, ArchiveJobStatus::ToReportForTransfer | ArchiveJobStatus::ToReportForFailure)
                    }) else {
                        return Ok((None, Write::Keep));
                    };
                    let copy = job.copy_nb;
                    let Some(Owner::Queue(from)) = st.owners.get(&copy).cloned() else {
                        return Ok((None, Write::Keep));
                    };
                    if job.status == ArchiveJobStatus::ToReportForTransfer {
                        return Ok((Some((from, copy, None)), Write::Delete));
                    }
                    let job = st.request.job_mut(copy).expect("found");
                    job.status = ArchiveJobStatus::Failed;
                    let job = job.clone();
                    let home = archive_home(&st.request, &job).expect("failed jobs have a queue");
                    st.owners.insert(copy, Owner::Queue(home.0.clone()));
                    Ok((Some((from, copy, Some((home.0, archive_pointer(&st.request, copy, None))))), Write::Commit))
                },
                |_, st| {
                    let Owner::Queue(from) = st.owner.clone() else { return Ok((None, Write::Keep)) };
                    if from.kind != QueueKind::RetrieveToReport {
                        return Ok((None, Write::Keep));
                    }
                    // A delivered report ends the request, success or failure (as CTA does); only
                    // archive failures are kept in the failed list.
                    let copy = st.request.active_copy().map_or(0, |c| c.copy_nb);
                    Ok((Some((from, copy, None)), Write::Delete))
                },
            )
            .await?;
        for (r, changed) in ids.iter().zip(changed) {
            if let Some((from, copy, to)) = changed.flatten() {
                removals.entry(from).or_default().push((request_name(*r), copy));
                if let Some((key, ptr)) = to {
                    moves.entry(key).or_default().push(ptr);
                }
            }
        }
        self.add_pointers(moves, now).await?;
        // One report queue after the other. Side by side (`join_all`), the stress day's report
        // delivery took 381 s instead of 73 (measured on 2026-12-05): a queue emptied by the
        // removal is taken out of the root entry, which every such queue then updates at once.
        for (key, targets) in &removals {
            self.remove_pointers(key, targets, now).await?;
        }
        self.log_own(&names, false, now).await
    }

    pub(super) async fn reports_failed_op(&self, reports: &[RequestId], reason: &str, now: Timestamp) -> Result<()> {
        self.ready().await?;
        let mut moves = Moves::new();
        let mut removals: BTreeMap<QueueKey, Vec<(String, u32)>> = BTreeMap::new();
        let names: Vec<String> = reports.iter().map(|r| request_name(*r)).collect();
        self.log_own(&names, true, now).await?;
        for (r, name) in reports.iter().zip(&names) {
            match *r {
                RequestId::Archive(_) | RequestId::RepackArchive(_) => {
                    let out = self
                        .update_archive(name, |st| {
                            if st.request.repack.is_some() {
                                return Ok((None, Write::Keep));
                            }
                            let Some(job) = st.request.jobs.iter_mut().find(|j| {
                                matches!(
                                    j.status,
                                    ArchiveJobStatus::ToReportForTransfer | ArchiveJobStatus::ToReportForFailure
                                )
                            }) else {
                                return Ok((None, Write::Keep));
                            };
                            job.failure_reasons.push(format!("report failed: {reason}"));
                            if !rules::on_report_failure(&mut job.retries) {
                                return Ok((None, Write::Commit));
                            }
                            job.status = ArchiveJobStatus::Failed;
                            let (copy, job) = (job.copy_nb, job.clone());
                            let Some(Owner::Queue(from)) = st.owners.get(&copy).cloned() else {
                                return Ok((None, Write::Commit));
                            };
                            let home = archive_home(&st.request, &job).expect("failed jobs have a queue");
                            st.owners.insert(copy, Owner::Queue(home.0.clone()));
                            Ok((Some((from, copy, home.0, archive_pointer(&st.request, copy, None))), Write::Commit))
                        })
                        .await?
                        .flatten();
                    if let Some((from, copy, key, ptr)) = out {
                        removals.entry(from).or_default().push((name.clone(), copy));
                        moves.entry(key).or_default().push(ptr);
                    }
                }
                RequestId::Retrieve(id) => {
                    let out = self
                        .update_retrieve(id, |st| {
                            let Owner::Queue(from) = st.owner.clone() else { return Ok((None, Write::Keep)) };
                            if from.kind != QueueKind::RetrieveToReport {
                                return Ok((None, Write::Keep));
                            }
                            st.request.failure_reasons.push(format!("report failed: {reason}"));
                            let give_up = match st.request.active_copy_mut() {
                                Some(c) => rules::on_report_failure(&mut c.retries),
                                None => true,
                            };
                            if !give_up {
                                return Ok((None, Write::Commit));
                            }
                            st.request.status = RetrieveStatus::Failed;
                            let (key, o) = retrieve_home(&st.request);
                            st.owner = Owner::Queue(key.clone());
                            let ptr = retrieve_pointer(&st.request, o);
                            Ok((Some((from, ptr.copy_nb, key, ptr)), Write::Commit))
                        })
                        .await?
                        .flatten();
                    if let Some((from, copy, key, ptr)) = out {
                        removals.entry(from).or_default().push((name.clone(), copy));
                        moves.entry(key).or_default().push(ptr);
                    }
                }
            }
        }
        self.add_pointers(moves, now).await?;
        for (key, targets) in removals {
            self.remove_pointers(&key, &targets, now).await?;
        }
        self.log_own(&names, false, now).await
    }

    pub(super) async fn list_pending_op(&self, kind: JobKind, queue: Option<&str>) -> Result<Vec<PendingJob>> {
        self.ready().await?;
        // A pool's user queue comes before its repack queue (a repack's archive jobs are pending
        // in the pool too); queues in name order.
        let kinds: &[QueueKind] = match kind {
            JobKind::Archive => &[QueueKind::ArchiveToTransferForUser, QueueKind::ArchiveToTransferForRepack],
            JobKind::Retrieve => &[QueueKind::RetrieveToTransfer],
        };
        let mut queues = self.queues_of(kinds).await?;
        queues.sort_by(|(a, _), (b, _)| {
            let rank = |k: &QueueKind| kinds.iter().position(|x| x == k);
            (&a.container, rank(&a.kind)).cmp(&(&b.container, rank(&b.kind)))
        });
        let mut out = Vec::new();
        for (key, address) in queues {
            if queue.is_some_and(|q| q != key.container) {
                continue;
            }
            let Some((_, jobs)) = self.read_queue_jobs(&address).await? else { continue };
            out.extend(jobs.into_iter().map(|p| PendingJob {
                job: JobId { request: p.request, copy_nb: p.copy_nb },
                archive_file_id: p.archive_file_id,
                queue: key.container.clone(),
                size: p.size,
            }));
        }
        Ok(out)
    }

    pub(super) async fn list_failed_op(&self, kind: JobKind) -> Result<Vec<u64>> {
        self.ready().await?;
        let qkind = match kind {
            JobKind::Archive => QueueKind::ArchiveFailed,
            JobKind::Retrieve => QueueKind::RetrieveFailed,
        };
        let mut ids = Vec::new();
        for (_, address) in self.queues_of(&[qkind]).await? {
            if let Some((_, jobs)) = self.read_queue_jobs(&address).await? {
                ids.extend(jobs.iter().map(|p| p.archive_file_id));
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }
}

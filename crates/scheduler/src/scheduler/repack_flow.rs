//! The repack workflow of the [`Scheduler`]: queueing a repack, promotion and expansion of the
//! tape's files into retrieve subrequests, processing what the subrequests report (a recall
//! becomes an `ArchiveForRepack` archive request, a written copy is counted), cancellation and
//! listing.
//!
//! The rules (what a file needs, how counters decide the status) are in [`crate::repack`]; the
//! backend stores and applies them atomically.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Scheduler;
use crate::bounds;
use crate::db::{Outcome, ReportFilter, ReportJob};
use crate::error::{Error, Result};
use crate::names::{check_name, check_text, MAX_TEXT};
use crate::repack::*;
use crate::resolve;
use crate::types::*;

/// The outcome of writing a pass: written (true), or refused because another process expanded
/// the same repack from the same cursor first (false: it goes on with it); other errors stay.
fn lost_race(written: Result<()>) -> Result<bool> {
    match written {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.kind, crate::ErrorKind::Conflict | crate::ErrorKind::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A repack as an operator submits it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepackSubmission {
    /// The tape (must be REPACKING).
    pub vid: String,
    /// What to do with its files.
    pub repack_type: RepackType,
    /// Mount policy of the recalls and re-archives.
    pub mount_policy: String,
    /// Base URL of the disk buffer (default: the scheduler's `repack_buffer_url`).
    pub buffer_url: Option<String>,
    /// Recall nothing: archive only the files already in the tape's buffer folder.
    pub no_recall: bool,
    /// Select at most this many files.
    pub max_files: Option<u64>,
    /// Select only files of this storage class.
    pub storage_class: Option<String>,
}

/// The requester recorded on a repack's subrequests.
pub fn repack_requester() -> Requester {
    Requester { name: "repack".into(), group: "repack".into() }
}

/// Checks a buffer URL: `scheme://...` with a known shape, no blanks.
fn check_buffer_url(u: &str) -> Result<()> {
    check_text("buffer url", u, MAX_TEXT)?;
    match url::Url::parse(u) {
        Ok(parsed) if !parsed.cannot_be_a_base() && u.contains("://") => Ok(()),
        Ok(_) => Err(Error::invalid(format!("buffer url {u:?} is not a hierarchical URL (scheme://host/path)"))),
        Err(e) => Err(Error::invalid(format!("buffer url {u:?} is not a URL: {e}"))),
    }
}

impl Scheduler {
    /// Queues a repack of a REPACKING tape. Everything is checked before anything is stored: the
    /// tape, its state, the policy, the storage-class filter, the buffer URL (and with
    /// `no_recall`, that the tape's buffer folder exists), and that every copy on the tape has
    /// the archive routes the repack needs.
    pub async fn queue_repack(&self, sub: RepackSubmission) -> Result<()> {
        check_name("vid", &sub.vid)?;
        check_name("mount policy", &sub.mount_policy)?;
        bounds::check_opt("max_files", sub.max_files)?;
        if sub.max_files == Some(0) {
            return Err(Error::invalid("max_files must be positive (omit it to select every file)"));
        }
        let now = self.now();
        let snap = self.catalogue.snapshot().await?;
        let tape =
            snap.tapes.get(&sub.vid).ok_or_else(|| Error::not_found(format!("tape {:?} does not exist", sub.vid)))?;
        if tape.state != TapeState::Repacking {
            return Err(Error::invalid(format!(
                "tape {:?} is {}: only a REPACKING tape can be repacked (change its state to REPACKING first)",
                sub.vid, tape.state
            )));
        }
        let policy = snap
            .mount_policies
            .get(&sub.mount_policy)
            .ok_or_else(|| Error::invalid(format!("mount policy {:?} does not exist", sub.mount_policy)))?;
        if let Some(sc) = &sub.storage_class {
            check_name("storage class", sc)?;
            if !snap.storage_classes.contains_key(sc) {
                return Err(Error::invalid(format!("storage class {sc:?} does not exist")));
            }
        }
        let buffer_url = sub.buffer_url.clone().unwrap_or_else(|| self.config.repack_buffer_url.clone());
        check_buffer_url(&buffer_url)?;
        if self.db.repack(&sub.vid).await?.is_some() {
            return Err(Error::conflict(format!("tape {:?} already has a repack request", sub.vid)));
        }
        if sub.no_recall {
            let dir = buffer_dir(&buffer_url, &sub.vid);
            if !self.buffer.dir_exists(&dir).await? {
                return Err(Error::not_found(format!(
                    "repack buffer folder {dir:?} does not exist: no_recall only archives files already there"
                )));
            }
        }
        let mut classes = self.catalogue.tape_copy_classes(&sub.vid).await?;
        if let Some(sc) = &sub.storage_class {
            classes.retain(|(c, _)| c == sc);
        }
        check_routes(&snap, sub.repack_type, &classes)?;
        let seq = self.catalogue.next_request_id().await?;
        let request = RepackRequest {
            no_recall: sub.no_recall,
            max_files: sub.max_files,
            storage_class: sub.storage_class,
            ..RepackRequest::new(&sub.vid, seq, sub.repack_type, policy, &buffer_url, now)
        };
        self.db.queue_repack(request, now).await
    }

    /// The maintenance pass of repack expansion: promotes Pending requests (oldest first) while
    /// fewer than `max_requests` (default [`crate::decision::SchedulerConfig::repack_max_to_expand`])
    /// are being expanded, then expands every request being expanded, oldest first:
    /// `repack_passes_per_call` passes (1 by default) of at most `repack_files_per_pass` files
    /// each, or fewer when the tape ends. Returns the VIDs a pass ran for.
    pub async fn expand_repacks(&self, max_requests: Option<u64>) -> Result<Vec<String>> {
        bounds::check_opt("max_requests", max_requests)?;
        let now = self.now();
        let target = max_requests.unwrap_or(self.config.repack_max_to_expand);
        let mut all = self.db.repacks().await?;
        all.sort_by_key(|r| r.seq);
        let expanding = |r: &RepackRequest| {
            r.status == RepackStatus::ToExpand || (r.expansion_started && !r.expansion_done && !r.status.is_final())
        };
        let mut in_flight = all.iter().filter(|r| expanding(r)).count() as u64;
        for r in all.iter_mut().filter(|r| r.status == RepackStatus::Pending) {
            if in_flight >= target {
                break;
            }
            let promote = RepackUpdate {
                expected_status: Some(RepackStatus::Pending),
                status: Some(RepackStatus::ToExpand),
                ..Default::default()
            };
            match self.db.update_repack(&r.vid, &promote, now).await {
                Ok(stored) => {
                    *r = stored;
                    in_flight += 1;
                }
                // Another maintenance process promoted or cancelled it.
                Err(e) if matches!(e.kind, crate::ErrorKind::Conflict | crate::ErrorKind::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        let mut expanded = Vec::new();
        for r in all.iter().filter(|r| expanding(r)) {
            if self.expansion_pass(r).await? {
                expanded.push(r.vid.clone());
            }
        }
        Ok(expanded)
    }

    /// Expansion of `r` for one call: up to `repack_passes_per_call` passes, each the next files
    /// of the tape after the cursor turned into retrieve subrequests and stored with the new
    /// cursor and counters in one backend call. Passes are pipelined: the next pass is read from
    /// the catalogue while the current one is written (the cursor it starts from is known once
    /// the current one is planned); a pass is only written after the one before it committed, so
    /// the stored cursor always covers exactly what is stored. Returns false when another
    /// process had already started the expansion.
    async fn expansion_pass(&self, r: &RepackRequest) -> Result<bool> {
        let now = self.now();
        let mut r = r.clone();
        if !r.expansion_started {
            let start = RepackUpdate {
                expected_status: Some(RepackStatus::ToExpand),
                status: Some(RepackStatus::Starting),
                expansion_started: true,
                ..Default::default()
            };
            r = match self.db.update_repack(&r.vid, &start, now).await {
                Ok(stored) => stored,
                Err(e) if matches!(e.kind, crate::ErrorKind::Conflict | crate::ErrorKind::NotFound) => {
                    return Ok(false)
                }
                Err(e) => return Err(e),
            };
        }
        let mut planned = self.plan_pass(&r).await;
        let mut left = self.config.repack_passes_per_call.max(1);
        loop {
            let (subrequests, update) = match planned {
                Ok(p) => p,
                Err(e) if e.kind == crate::ErrorKind::InvalidArgument || e.kind == crate::ErrorKind::NotFound => {
                    // The repack cannot go on (a route or the buffer folder went away): it
                    // fails, and what earlier passes queued runs to its end.
                    let fail = RepackUpdate {
                        expansion_done: true,
                        failure: Some(format!("expansion failed: {}", e.message)),
                        ..Default::default()
                    };
                    self.db.update_repack(&r.vid, &fail, now).await?;
                    return Ok(true);
                }
                Err(e) => return Err(e),
            };
            left -= 1;
            let done = update.expansion_done;
            // What the request will be once this pass is stored: the next pass starts there.
            let mut after = r.clone();
            update.apply(&mut after)?;
            let write = self.db.queue_repack_subrequests(&r.vid, subrequests, &update, now);
            if done || left == 0 {
                return lost_race(write.await);
            }
            let (written, next) = tokio::join!(write, self.plan_pass(&after));
            if !lost_race(written)? {
                return Ok(false);
            }
            r = after;
            planned = next;
        }
    }

    /// Reads the next files of the tape and builds the pass's subrequests and update.
    async fn plan_pass(&self, r: &RepackRequest) -> Result<(Vec<RetrieveRequest>, RepackUpdate)> {
        let now = self.now();
        let snap = self.catalogue.snapshot().await?;
        let dir = r.buffer_dir();
        if r.no_recall {
            if !self.buffer.dir_exists(&dir).await? {
                return Err(Error::not_found(format!("repack buffer folder {dir:?} does not exist")));
            }
        } else {
            self.buffer.create_dir(&dir).await?;
        }
        let per_pass = self.config.repack_files_per_pass.max(1);
        let files = self.catalogue.tape_files(&r.vid, r.last_expanded_fseq, per_pass).await?;
        let mut update = RepackUpdate::default();
        let mut cursor = r.last_expanded_fseq;
        let mut chosen: Vec<(ArchiveFile, TapeFile, Vec<CopyRoute>)> = Vec::new();
        for file in &files {
            let Some(copy) = file.copies.iter().find(|c| c.vid == r.vid).cloned() else { continue };
            cursor = cursor.max(copy.fseq);
            update.counters.files_on_tape += 1;
            update.counters.bytes_on_tape = update.counters.bytes_on_tape.saturating_add(file.size);
            if r.storage_class.as_ref().is_some_and(|sc| *sc != file.storage_class) {
                update.some_file_skipped = true;
                continue;
            }
            let copies = plan_file(&snap, r.repack_type, &r.vid, file)?;
            if copies.is_empty() {
                update.some_file_skipped = true;
                continue;
            }
            chosen.push((file.clone(), copy, copies));
        }
        let names: Vec<String> = chosen.iter().map(|(_, c, _)| format!("{:09}", c.fseq)).collect();
        let sizes = self.buffer.sizes(&dir, &names).await?;
        // `max_files` counts the files selected, after every filter (no_recall included); once it
        // is reached the expansion is done (the cursor past the page does not matter then).
        let mut selected = r.counters.files_to_retrieve;
        let mut reached_max = false;
        let mut keep = Vec::with_capacity(chosen.len());
        for ((file, copy, copies), size) in chosen.into_iter().zip(sizes) {
            let provided = size == Some(file.size);
            if r.no_recall && !provided {
                update.some_file_skipped = true;
                continue;
            }
            if r.max_files.is_some_and(|m| selected >= m) {
                reached_max = true;
                break;
            }
            selected += 1;
            keep.push((file, copy, copies, provided));
        }
        let ids = self.catalogue.next_request_ids(keep.len() as u64).await?;
        let mut subrequests = Vec::with_capacity(keep.len());
        for ((file, copy, copies, provided), id) in keep.into_iter().zip(ids) {
            let c = &mut update.counters;
            c.files_to_retrieve += 1;
            c.bytes_to_retrieve = c.bytes_to_retrieve.saturating_add(file.size);
            c.files_to_archive = c.files_to_archive.saturating_add(copies.len() as u64);
            c.bytes_to_archive = c.bytes_to_archive.saturating_add(file.size.saturating_mul(copies.len() as u64));
            if provided {
                c.user_provided_files += 1;
                c.user_provided_bytes = c.user_provided_bytes.saturating_add(file.size);
            }
            let dst = buffer_file(&r.buffer_url, &r.vid, copy.fseq);
            subrequests.push(RetrieveRequest {
                request_id: id,
                archive_file_id: file.archive_file_id,
                disk_instance: file.disk_instance.clone(),
                requester: repack_requester(),
                size: file.size,
                disk_system: resolve::disk_system(&snap, &dst),
                dst_url: dst.clone(),
                report_url: None,
                error_report_url: None,
                created_at: now,
                activity: None,
                verify_only: false,
                policy: r.retrieve_policy.clone(),
                copies: vec![RetrieveCopy {
                    copy_nb: copy.copy_nb,
                    vid: copy.vid.clone(),
                    fseq: copy.fseq,
                    block_id: copy.block_id,
                    retries: RetryCounters::default(),
                }],
                active_vid: r.vid.clone(),
                status: if provided { RetrieveStatus::ToReportForTransfer } else { RetrieveStatus::ToTransfer },
                failure_reasons: vec![],
                repack: Some(RepackLink {
                    vid: r.vid.clone(),
                    subrequest_id: id,
                    fseq: copy.fseq,
                    disk_file_id: file.disk_file_id.clone(),
                    storage_class: file.storage_class.clone(),
                    buffer_file: dst,
                    archive_copies: copies,
                    user_provided: provided,
                }),
            });
        }
        update.last_expanded_fseq = Some(cursor);
        update.expected_last_expanded_fseq = Some(r.last_expanded_fseq);
        // The tape is done when a pass comes back short, or the file limit is reached.
        update.expansion_done = reached_max || (files.len() as u64) < per_pass;
        Ok((subrequests, update))
    }

    /// Processes up to `max` repack reports: a recalled file becomes an archive request for its
    /// copies (queued as `ArchiveForRepack`), a failed recall and its copies are counted as
    /// failed, a written or failed copy is counted (and once a file's copies have all ended, its
    /// buffer file is removed). Returns what was processed as reports, in canonical order.
    pub async fn process_repack_reports(&self, max: Option<u64>) -> Result<Vec<ReportJob>> {
        bounds::check_opt("max", max)?;
        let now = self.now();
        let due = self.db.repack_reports_due(max.unwrap_or(bounds::MAX), now).await?;
        if due.is_empty() {
            return Ok(vec![]);
        }
        let repacks: BTreeMap<String, RepackRequest> =
            self.db.repacks().await?.into_iter().map(|r| (r.vid.clone(), r)).collect();
        let mut batch = RepackReportBatch::default();
        let mut updates: BTreeMap<String, RepackUpdate> = BTreeMap::new();
        let mut reports = Vec::new();
        let mut finished_files = Vec::new();
        for item in due {
            match item {
                RepackReport::Retrieve(r) => {
                    let Some(link) = r.repack.clone() else { continue };
                    batch.retrieves.push(r.request_id);
                    let u = updates.entry(link.vid.clone()).or_default();
                    let success = r.status == RetrieveStatus::ToReportForTransfer;
                    if success {
                        u.counters.files_retrieved += 1;
                        u.counters.bytes_retrieved = u.counters.bytes_retrieved.saturating_add(r.size);
                        if let Some(repack) = repacks.get(&link.vid) {
                            batch.archives.push(ArchiveRequest {
                                archive_file_id: r.archive_file_id,
                                disk_instance: r.disk_instance.clone(),
                                disk_file_id: link.disk_file_id.clone(),
                                requester: r.requester.clone(),
                                storage_class: link.storage_class.clone(),
                                size: r.size,
                                created_at: now,
                                report_url: None,
                                error_report_url: None,
                                policy: repack.archive_policy.clone(),
                                jobs: link
                                    .archive_copies
                                    .iter()
                                    .map(|c| ArchiveJob::new(c.copy_nb, c.tape_pool.clone()))
                                    .collect(),
                                report_decided: false,
                                repack: Some(link.clone()),
                            });
                        }
                    } else {
                        u.counters.files_failed_retrieve += 1;
                        u.counters.bytes_failed_retrieve = u.counters.bytes_failed_retrieve.saturating_add(r.size);
                        u.counters.archives_abandoned += link.archive_copies.len() as u64;
                    }
                    reports.push(ReportJob {
                        request: r.id(),
                        archive_file_id: r.archive_file_id,
                        outcome: if success { Outcome::Success } else { Outcome::Failure },
                        url: None,
                    });
                }
                RepackReport::Archive(a) => {
                    let Some(link) = a.repack.clone() else { continue };
                    let u = updates.entry(link.vid.clone()).or_default();
                    for job in &a.jobs {
                        let outcome = match job.status {
                            ArchiveJobStatus::ToReportForTransfer => {
                                u.counters.files_archived += 1;
                                u.counters.bytes_archived = u.counters.bytes_archived.saturating_add(a.size);
                                Outcome::Success
                            }
                            ArchiveJobStatus::ToReportForFailure => {
                                u.counters.files_failed_archive += 1;
                                u.counters.bytes_failed_archive =
                                    u.counters.bytes_failed_archive.saturating_add(a.size);
                                Outcome::Failure
                            }
                            _ => continue,
                        };
                        batch.archive_jobs.push(JobId { request: a.id(), copy_nb: job.copy_nb });
                        reports.push(ReportJob {
                            request: a.id(),
                            archive_file_id: a.archive_file_id,
                            outcome,
                            url: None,
                        });
                    }
                    let all_ended = a.jobs.iter().all(|j| {
                        archive_job_ended(j.status)
                            || matches!(
                                j.status,
                                ArchiveJobStatus::ToReportForTransfer | ArchiveJobStatus::ToReportForFailure
                            )
                    });
                    if all_ended {
                        finished_files.push(link.buffer_file.clone());
                    }
                }
            }
        }
        batch.updates = updates.into_iter().filter(|(_, u)| !u.is_empty()).collect();
        self.db.repack_reports_processed(&batch, now).await?;
        for f in finished_files {
            self.buffer.remove(&f).await?;
        }
        reports.sort_by_key(|r| (r.order_key(), r.outcome));
        Ok(reports)
    }

    /// Cancels the repack of `vid`: the request and every subrequest of it, retrieve or archive,
    /// are deleted (files already in the buffer stay there). Returns how many subrequests.
    pub async fn cancel_repack(&self, vid: &str) -> Result<u64> {
        check_name("vid", vid)?;
        self.db.cancel_repack(vid, self.now()).await
    }

    /// Every repack request, by VID.
    pub async fn show_repacks(&self) -> Result<Vec<RepackRequest>> {
        let mut all = self.db.repacks().await?;
        all.sort_by(|a, b| a.vid.cmp(&b.vid));
        Ok(all)
    }

    /// Reports of `filter` delivered to the disk side, then (when delivering) repack reports
    /// processed, up to `max` together: what `report kind: all` does.
    pub async fn report_all(&self, max: Option<u64>, deliver: bool) -> Result<Vec<ReportJob>> {
        let mut out = self.report(ReportFilter::All, max, deliver).await?;
        if deliver {
            let left = max.map(|m| m.saturating_sub(out.len() as u64));
            if left != Some(0) {
                out.extend(self.process_repack_reports(left).await?);
            }
        }
        out.sort_by_key(|r| (r.order_key(), r.outcome));
        Ok(out)
    }
}

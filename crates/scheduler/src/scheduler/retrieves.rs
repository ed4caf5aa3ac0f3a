//! Queueing retrieve requests in the [`Scheduler`]: checking a submission against the
//! catalogue, routing it to the best tape copy from the retrieve queues' statistics, alone or in
//! batches routed as one call each would route them.

use std::collections::{BTreeMap, BTreeSet};

use super::{check_who, opt_text, RetrieveSubmission, Scheduler};
use crate::bounds;
use crate::catalogue::CatalogueSnapshot;
use crate::clock::Timestamp;
use crate::db::*;
use crate::error::{Error, Result};
use crate::names::check_name;
use crate::resolve::{self, CatalogueRouter};
use crate::types::*;

impl Scheduler {
    /// Queues a retrieve request on the best tape copy; returns the request id and the VID.
    pub async fn queue_retrieve(&self, sub: RetrieveSubmission) -> Result<(u64, String)> {
        let now = self.now();
        let snap = self.catalogue.snapshot().await?;
        let router = CatalogueRouter::new(&snap, now);
        let (mut request, candidates) = self.prepare_retrieve(&snap, &router, sub, now).await?;
        let stats = self.db.retrieve_queue_stats(&candidates).await?;
        let vid = route_retrieve(&snap, &router, &mut request, &stats)?;
        request.request_id = self.catalogue.next_request_id().await?;
        let id = request.request_id;
        self.db.queue_retrieve(request, now).await?;
        Ok((id, vid))
    }

    /// Queues several retrieve requests (as a frontend does with the requests that arrived
    /// together), each routed and queued as [`Scheduler::queue_retrieve`] would one after the
    /// other: the queue statistics are read once for every tape a request may go to, and each
    /// request routed on them as the ones before it in the batch left them. Answers with the
    /// request id and VID, or the error, of each, in order. (A request the backend refuses after
    /// routing, which ids from the catalogue make a `conflict` only in theory, still counts in
    /// the statistics the requests after it were routed on.)
    pub async fn queue_retrieves(&self, subs: Vec<RetrieveSubmission>) -> Result<Vec<Result<(u64, String)>>> {
        let now = self.now();
        let snap = self.catalogue.snapshot().await?;
        let router = CatalogueRouter::new(&snap, now);
        let mut prepared = Vec::with_capacity(subs.len());
        for sub in subs {
            prepared.push(self.prepare_retrieve(&snap, &router, sub, now).await);
        }
        let vids: Vec<String> = prepared
            .iter()
            .filter_map(|p| p.as_ref().ok())
            .flat_map(|(_, candidates)| candidates.iter().cloned())
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        let mut stats: BTreeMap<String, QueueStats> = if vids.is_empty() {
            BTreeMap::new()
        } else {
            self.db.retrieve_queue_stats(&vids).await?.into_iter().map(|s| (s.vid.clone(), s)).collect()
        };
        let empty = |vid: &str| QueueStats { vid: vid.to_string(), files_queued: 0, bytes_queued: 0, priority: 0 };
        let mut routed = Vec::new();
        let mut answers: Vec<Result<String>> = Vec::with_capacity(prepared.len());
        for p in prepared {
            let routing = p.and_then(|(mut request, candidates)| {
                let seen: Vec<QueueStats> =
                    candidates.iter().map(|v| stats.get(v).cloned().unwrap_or_else(|| empty(v))).collect();
                let vid = route_retrieve(&snap, &router, &mut request, &seen)?;
                // What queueing it does to its queue's statistics, as the backends count them.
                let s = stats.entry(vid.clone()).or_insert_with(|| empty(&vid));
                s.files_queued += 1;
                s.bytes_queued = bounds::clamp(u128::from(s.bytes_queued) + u128::from(request.size));
                s.priority = s.priority.max(request.policy.priority);
                routed.push(request);
                Ok(vid)
            });
            answers.push(routing);
        }
        let mut queued: Vec<(u64, Result<()>)> = Vec::with_capacity(routed.len());
        if !routed.is_empty() {
            let ids = self.catalogue.next_request_ids(routed.len() as u64).await?;
            if ids.len() != routed.len() {
                return Err(Error::internal(format!(
                    "the catalogue gave {} request ids for {} requests",
                    ids.len(),
                    routed.len()
                )));
            }
            for (request, id) in routed.iter_mut().zip(&ids) {
                request.request_id = *id;
            }
            queued.extend(ids.into_iter().zip(self.db.queue_retrieves(routed, now).await));
        }
        let mut queued = queued.into_iter();
        Ok(answers
            .into_iter()
            .map(|a| {
                let vid = a?;
                let (id, result) = queued.next().ok_or_else(|| Error::internal("no answer for a routed retrieve"))?;
                result.map(|()| (id, vid))
            })
            .collect())
    }

    /// Checks a retrieve submission against the catalogue and builds the request on every copy
    /// it may be read from (no tape chosen yet, no id); answers it with the tapes it may go to.
    async fn prepare_retrieve(
        &self,
        snap: &CatalogueSnapshot,
        router: &CatalogueRouter,
        sub: RetrieveSubmission,
        now: Timestamp,
    ) -> Result<(RetrieveRequest, Vec<String>)> {
        bounds::check("archive_file_id", sub.archive_file_id)?;
        let who = sub.requester.clone().ok_or_else(|| Error::invalid("a retrieve request needs a requester"))?;
        check_who(&who)?;
        opt_text("activity", &sub.activity)?;
        opt_text("dst url", &sub.dst_url)?;
        opt_text("report url", &sub.report_url)?;
        opt_text("error report url", &sub.error_report_url)?;
        if let Some(p) = &sub.mount_policy {
            check_name("mount policy", p)?;
        }
        if let Some(v) = &sub.vid {
            check_name("vid", v)?;
        }
        let file = self
            .catalogue
            .archive_file(sub.archive_file_id)
            .await?
            .ok_or_else(|| Error::not_found(format!("archive file {} does not exist", sub.archive_file_id)))?;
        if let Some(i) = &sub.disk_instance {
            check_name("disk instance", i)?;
            if *i != file.disk_instance {
                return Err(Error::invalid(format!(
                    "archive file {} belongs to disk instance {:?}, not {i:?}",
                    file.archive_file_id, file.disk_instance
                )));
            }
        }
        let policy = resolve::retrieve_policy(
            snap,
            &file.disk_instance,
            &who,
            sub.activity.as_deref(),
            sub.mount_policy.as_deref(),
        )?;
        let mut copies: Vec<&TapeFile> = file.copies.iter().collect();
        if let Some(v) = &sub.vid {
            copies.retain(|c| c.vid == *v);
            if copies.is_empty() {
                return Err(Error::not_found(format!(
                    "archive file {} has no copy on tape {v:?}",
                    file.archive_file_id
                )));
            }
        }
        let request = RetrieveRequest {
            request_id: 0,
            archive_file_id: file.archive_file_id,
            disk_instance: file.disk_instance.clone(),
            requester: who,
            size: file.size,
            dst_url: sub
                .dst_url
                .clone()
                .unwrap_or_else(|| format!("root://{}/{}", file.disk_instance, file.disk_file_id)),
            report_url: sub.report_url.clone(),
            error_report_url: sub.error_report_url.clone(),
            created_at: sub.created_at.unwrap_or(now),
            activity: sub.activity.clone(),
            verify_only: sub.verify_only,
            disk_system: None,
            policy: QueuedPolicy {
                name: policy.name.clone(),
                priority: policy.retrieve_priority,
                min_request_age: policy.retrieve_min_request_age,
            },
            copies: copies
                .iter()
                .map(|c| RetrieveCopy {
                    copy_nb: c.copy_nb,
                    vid: c.vid.clone(),
                    fseq: c.fseq,
                    block_id: c.block_id,
                    retries: RetryCounters::default(),
                })
                .collect(),
            active_vid: String::new(),
            status: RetrieveStatus::ToTransfer,
            failure_reasons: vec![],
            repack: None,
        };
        let candidates = router.candidates(&request);
        if candidates.is_empty() {
            return Err(Error::no_tape(format!(
                "archive file {} has no copy on an ACTIVE or DISABLED tape",
                file.archive_file_id
            )));
        }
        Ok((request, candidates))
    }
}

/// Chooses the tape of a prepared retrieve from the statistics of its candidate queues and
/// completes the request for it (active VID, disk system); answers the VID.
fn route_retrieve(
    snap: &CatalogueSnapshot,
    router: &CatalogueRouter,
    request: &mut RetrieveRequest,
    stats: &[QueueStats],
) -> Result<String> {
    let vid = router.choose(request, stats).ok_or_else(|| {
        Error::no_tape(format!("no copy of archive file {} can be recalled", request.archive_file_id))
    })?;
    request.disk_system = resolve::disk_system(snap, &request.dst_url);
    request.active_vid = vid.clone();
    Ok(vid)
}

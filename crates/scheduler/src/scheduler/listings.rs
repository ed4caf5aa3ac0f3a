//! Reports and listings of the [`Scheduler`]: delivering due reports, the queue summaries an
//! operator reads (`show_queues`), and the pending and failed requests per queue.

use std::collections::BTreeMap;

use super::{QueueSummary, Scheduler};
use crate::bounds;
use crate::db::*;
use crate::error::{Error, Result};
use crate::names::check_name;
use crate::types::*;

impl Scheduler {
    /// Delivers (or, with `deliver == false`, fails to deliver) up to `max` due reports.
    pub async fn report(&self, filter: ReportFilter, max: Option<u64>, deliver: bool) -> Result<Vec<ReportJob>> {
        bounds::check_opt("max", max)?;
        let now = self.now();
        let reports = self.db.reports_due(filter, max.unwrap_or(bounds::MAX), now).await?;
        let ids: Vec<RequestId> = reports.iter().map(|r| r.request).collect();
        if ids.is_empty() {
            return Ok(reports);
        }
        if deliver {
            self.db.reports_delivered(&ids, now).await?;
        } else {
            self.db.reports_failed(&ids, "the disk side refused the report", now).await?;
        }
        Ok(reports)
    }

    /// One summary per non-empty transfer queue and per queue with a current mount.
    pub async fn show_queues(&self) -> Result<Vec<QueueSummary>> {
        let now = self.now();
        let snap = self.catalogue.snapshot().await?;
        let info = self.db.mount_info(now).await?;
        let mut mounts: BTreeMap<(MountType, Option<String>, Option<String>), u64> = BTreeMap::new();
        for d in snap.drives.values() {
            if d.scheduler_backend.as_deref() != Some(self.config.backend_name.as_str())
                || !d.status.has_current_mount()
            {
                continue;
            }
            let Some(t) = d.mount_type else { continue };
            let key = if t == MountType::Retrieve { (t, None, d.vid.clone()) } else { (t, d.tape_pool.clone(), None) };
            *mounts.entry(key).or_default() += 1;
        }
        let pool_of = |vid: &Option<String>| vid.as_ref().and_then(|v| snap.tapes.get(v)).map(|t| t.tape_pool.clone());
        let mut out = Vec::new();
        for pm in &info.potential_mounts {
            let key = if pm.mount_type == MountType::Retrieve {
                (pm.mount_type, None, pm.vid.clone())
            } else {
                (pm.mount_type, pm.tape_pool.clone(), None)
            };
            let current = mounts.remove(&key).unwrap_or(0);
            let retrieve = pm.mount_type == MountType::Retrieve;
            out.push(QueueSummary {
                mount_type: pm.mount_type,
                tape_pool: if retrieve { pool_of(&pm.vid) } else { pm.tape_pool.clone() },
                vid: pm.vid.clone(),
                files_queued: pm.files_queued,
                bytes_queued: pm.bytes_queued,
                current_mounts: current,
                oldest_job_age: Some(now.saturating_sub(pm.oldest_job_start).max(0) as u64),
                sleeping: retrieve.then(|| pm.sleep.as_ref().is_some_and(|s| now < s.until)),
            });
        }
        for ((t, pool, vid), n) in mounts {
            let retrieve = t == MountType::Retrieve;
            out.push(QueueSummary {
                mount_type: t,
                tape_pool: if retrieve { pool_of(&vid) } else { pool },
                vid,
                files_queued: 0,
                bytes_queued: 0,
                current_mounts: n,
                oldest_job_age: None,
                sleeping: retrieve.then_some(false),
            });
        }
        Ok(out)
    }

    /// Archive file ids of the queued jobs of one pool (archive) or VID (retrieve), in queue order;
    /// of every queue when neither is given.
    pub async fn list_pending(&self, kind: JobKind, tape_pool: Option<&str>, vid: Option<&str>) -> Result<Vec<u64>> {
        let snap = self.catalogue.snapshot().await?;
        let queue = match (kind, tape_pool, vid) {
            (JobKind::Archive, Some(p), None) => {
                check_name("tape pool", p)?;
                if !snap.tape_pools.contains_key(p) {
                    return Err(Error::not_found(format!("tape pool {p:?} does not exist")));
                }
                Some(p)
            }
            (JobKind::Retrieve, None, Some(v)) => {
                check_name("vid", v)?;
                if !snap.tapes.contains_key(v) {
                    return Err(Error::not_found(format!("tape {v:?} does not exist")));
                }
                Some(v)
            }
            (_, None, None) => None,
            (JobKind::Archive, _, Some(_)) => {
                return Err(Error::invalid("archive queues are listed by tape_pool, not vid"))
            }
            (JobKind::Retrieve, Some(_), _) => {
                return Err(Error::invalid("retrieve queues are listed by vid, not tape_pool"))
            }
        };
        Ok(self.db.list_pending(kind, queue).await?.into_iter().map(|j| j.archive_file_id).collect())
    }

    /// Archive file ids of failed requests, ascending.
    pub async fn list_failed(&self, kind: JobKind) -> Result<Vec<u64>> {
        self.db.list_failed(kind).await
    }
}

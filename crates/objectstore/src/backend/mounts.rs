//! Mount decisions under the global scheduler lock: the mount information read from queue
//! summaries, `next_mount`, and recording an opened mount.

use super::*;

impl ObjectstoreDb {
    pub(super) async fn mount_info_op(&self, _now: Timestamp) -> Result<MountInfo> {
        self.ready().await?;
        let mut info = MountInfo::default();
        let kinds =
            [QueueKind::ArchiveToTransferForUser, QueueKind::ArchiveToTransferForRepack, QueueKind::RetrieveToTransfer];
        let queues = self.queues_of(&kinds).await?;
        let addresses: Vec<String> = queues.iter().map(|(_, a)| a.clone()).collect();
        let objects = self.objs.read_many::<Queue>(&addresses).await?;
        for ((key, _), q) in queues.into_iter().zip(objects) {
            let Some(q) = q else { continue };
            if q.summary.count == 0 {
                continue;
            }
            let (mount_type, tape_pool, vid) = match key.kind {
                QueueKind::ArchiveToTransferForUser => (MountType::ArchiveForUser, Some(key.container.clone()), None),
                QueueKind::ArchiveToTransferForRepack => {
                    (MountType::ArchiveForRepack, Some(key.container.clone()), None)
                }
                _ => (MountType::Retrieve, None, Some(key.container.clone())),
            };
            info.potential_mounts.push(Arc::new(PotentialMount {
                mount_type,
                tape_pool,
                vid,
                files_queued: q.summary.count,
                bytes_queued: q.summary.bytes_queued(),
                oldest_job_start: q.oldest().unwrap_or(0),
                youngest_job_start: q.youngest().unwrap_or(0),
                priority: q.summary.priorities.keys().next_back().copied().unwrap_or(0),
                min_request_age: q.summary.min_ages.keys().next().copied().unwrap_or(0),
                policy_counts: q.summary.policies.clone(),
                sleep: q.sleep.clone(),
            }));
        }
        info.sort();
        Ok(info)
    }

    pub(super) async fn next_mount_op(
        &self,
        _logical_library: &str,
        now: Timestamp,
        decide: &DecideFn<'_>,
    ) -> Result<Option<(MountId, MountSpec)>> {
        self.ready().await?;
        let Some((lock, mut global)) = self.objs.lock_read::<GlobalLock>(GLOBAL_LOCK).await? else {
            return Err(Error::internal("the global scheduler lock object is missing"));
        };
        let result = async {
            let info = self.mount_info(now).await?;
            let Some(spec) = decide(&info) else { return Ok(None) };
            let id = global.next_mount_id;
            global.next_mount_id += 1;
            self.objs.write(GLOBAL_LOCK, &global, &lock).await?;
            let agent = Agent {
                description: format!("drive session of {} on {}", spec.drive, spec.vid),
                heartbeat: now,
                mount: Some(MountRecord { id, spec: spec.clone() }),
                ..Agent::default()
            };
            self.register_agent(&mount_agent_name(id), agent, false).await?;
            Ok(Some((id, spec)))
        }
        .await;
        self.objs.unlock(lock).await;
        result
    }

    pub(super) async fn open_mount_op(&self, mount: MountId, spec: &MountSpec, now: Timestamp) -> Result<()> {
        self.ready().await?;
        self.objs
            .update::<GlobalLock, _>(GLOBAL_LOCK, |g| {
                g.next_mount_id = g.next_mount_id.max(mount + 1);
                Ok(((), Write::Commit))
            })
            .await?;
        let agent = Agent {
            description: format!("drive session of {} on {}", spec.drive, spec.vid),
            heartbeat: now,
            mount: Some(MountRecord { id: mount, spec: spec.clone() }),
            ..Agent::default()
        };
        self.register_agent(&mount_agent_name(mount), agent, false).await.map_err(|e| match e.kind {
            tapesched_scheduler::ErrorKind::Conflict => Error::conflict(format!("mount {mount} already exists")),
            _ => e,
        })
    }
}

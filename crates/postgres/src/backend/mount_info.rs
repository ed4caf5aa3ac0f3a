//! The summaries cache and mount decisions: `read_mount_info` catches up with the summaries
//! written since its previous read, `next_mount` decides under the library's advisory lock, and
//! `open_mount` records a mount.

use super::*;

/// How many mount ids `next_mount` tries before giving up: each failed try means another
/// process recorded a mount under the id just drawn, which moves the sequence past it.
const MOUNT_ID_TRIES: usize = 16;

impl PgSchedulerDb {
    /// The mount information: every queue summary with jobs. Summaries are kept in memory
    /// between calls and only those written since the previous read are read again (see
    /// `migrations/0003_summary_changes.sql`); the answer is what one statement's snapshot sees.
    pub(super) async fn read_mount_info(&self, ex: &mut sqlx::PgConnection) -> Result<MountInfo, Fail> {
        // Held across the read so that two reads of this process apply in snapshot order.
        let mut cache = self.summaries.lock().await;
        // The value-count maps travel as text and their extremes are taken here: cheaper than
        // expanding every map's keys on the server for each of thousands of queues. A full read
        // and a read of what changed are separate branches, so that the latter can use the
        // `writer` index (migration 6) instead of scanning every summary.
        let rows = sqlx::query(
            "WITH h AS (
                 SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin,
                        ($1::int8 IS NULL OR $1::int8::text::xid8 < (SELECT upto FROM queue_summary_pruned)) AS full_read
             )
             SELECT 0::int2 AS what, h.xmin::text::int8 AS horizon, h.full_read, NULL::int2 AS kind,
                    NULL::text AS container, NULL::int8 AS files, NULL::int8 AS bytes, NULL::text AS policies,
                    NULL::int8 AS oldest, NULL::int8 AS youngest, NULL::text AS sleep_disk_system,
                    NULL::int8 AS sleep_until, NULL::text AS priorities, NULL::text AS min_ages
             FROM h
             UNION ALL
             SELECT 1::int2, NULL, NULL, s.kind, s.container, s.files, least(s.bytes, 9223372036854775807)::int8, s.policies::text, s.oldest, s.youngest,
                    s.sleep_disk_system, s.sleep_until, s.priorities::text, s.min_ages::text
             FROM (SELECT q.* FROM h, queue_summary q WHERE h.full_read
                   UNION ALL
                   SELECT q.* FROM h, queue_summary q WHERE NOT h.full_read AND q.writer >= $1::int8::text::xid8) s
             UNION ALL
             SELECT 2::int2, NULL, NULL, g.kind, g.container, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
             FROM queue_summary_gone g, h
             WHERE NOT h.full_read AND g.writer >= $1::int8::text::xid8",
        )
        .bind(cache.horizon)
        .fetch_all(&mut *ex)
        .await?;
        let keys = |text: &str| -> Result<Vec<u64>, Fail> {
            let map: std::collections::BTreeMap<String, serde_json::Value> = serde_json::from_str(text)
                .map_err(|e| Error::internal(format!("a stored value-count map is not readable: {e}")).caused_by(e))?;
            Ok(map.keys().filter_map(|k| k.parse::<u64>().ok()).collect())
        };
        // Tombstones first: a row this snapshot sees exists, whatever was deleted before it.
        let mut horizon = None;
        let mut live = Vec::with_capacity(rows.len());
        for row in &rows {
            match row.try_get::<i16, _>("what")? {
                0 => {
                    horizon = Some(row.try_get::<i64, _>("horizon")?);
                    if row.try_get::<bool, _>("full_read")? {
                        // Should this read fail part-way, the next one starts from scratch too.
                        cache.horizon = None;
                        cache.queues.clear();
                    }
                }
                1 => live.push(row),
                _ => {
                    cache.queues.remove(&(row.try_get::<i16, _>("kind")?, row.try_get::<String, _>("container")?));
                }
            }
        }
        for row in live {
            let kind: i16 = row.try_get("kind")?;
            let container: String = row.try_get("container")?;
            let files = row.try_get::<i64, _>("files")?;
            if files <= 0 {
                cache.queues.remove(&(kind, container));
                continue;
            }
            let (mount_type, tape_pool, vid) = match kind {
                KIND_ARCHIVE => (MountType::ArchiveForUser, Some(container.clone()), None),
                KIND_REPACK => (MountType::ArchiveForRepack, Some(container.clone()), None),
                _ => (MountType::Retrieve, None, Some(container.clone())),
            };
            let sleep = match (
                row.try_get::<Option<String>, _>("sleep_disk_system")?,
                row.try_get::<Option<i64>, _>("sleep_until")?,
            ) {
                (Some(disk_system), Some(until)) => Some(QueueSleep { disk_system, until }),
                _ => None,
            };
            let policies: &str = row.try_get("policies")?;
            let policy_counts: PolicyCounts = serde_json::from_str(policies)
                .map_err(|e| Error::internal(format!("a stored policy map is not readable: {e}")).caused_by(e))?;
            let mount = PotentialMount {
                mount_type,
                tape_pool,
                vid,
                files_queued: files as u64,
                bytes_queued: row.try_get::<i64, _>("bytes")? as u64,
                oldest_job_start: row.try_get::<Option<i64>, _>("oldest")?.unwrap_or(0),
                youngest_job_start: row.try_get::<Option<i64>, _>("youngest")?.unwrap_or(0),
                priority: keys(row.try_get("priorities")?)?.into_iter().max().unwrap_or(0),
                min_request_age: keys(row.try_get("min_ages")?)?.into_iter().min().unwrap_or(0),
                policy_counts,
                sleep,
            };
            cache.queues.insert((kind, container), Arc::new(mount));
        }
        cache.horizon = Some(horizon.ok_or_else(|| Error::internal("the summary read returned no snapshot row"))?);
        // The cache's key order, (kind code, container), is the canonical order of potential
        // mounts (mount type, then pool for archive queues or VID for retrieve queues): kind codes
        // follow `MountType`'s order and containers compare byte-wise, as `String`s do. No sort.
        let info = MountInfo { potential_mounts: cache.queues.values().cloned().collect() };
        debug_assert!(info
            .potential_mounts
            .is_sorted_by(|a, b| { (a.mount_type, &a.tape_pool, &a.vid) <= (b.mount_type, &b.tape_pool, &b.vid) }));
        Ok(info)
    }

    pub(super) async fn next_mount_once(
        &self,
        logical_library: &str,
        now: Timestamp,
        decide: &DecideFn<'_>,
    ) -> Result<Option<(MountId, MountSpec)>, Fail> {
        let mut tx = self.begin().await?;
        let timeout_ms = self.config.lock_timeout.as_millis().clamp(1, i32::MAX as u128) as i64;
        // The lock timeout is set before the lock is asked for: one statement, two steps in
        // order (a scalar subquery in FROM runs before the target list).
        sqlx::query("SELECT pg_advisory_xact_lock($2) FROM (SELECT set_config('lock_timeout', $1, true)) AS t")
            .bind(format!("{timeout_ms}ms"))
            .bind(advisory_key(&self.config.schema, "mount-decision", logical_library))
            .execute(&mut *tx)
            .await?;
        let info = self.read_mount_info(&mut tx).await?;
        let Some(spec) = decide(&info) else {
            tx.rollback().await.ok();
            return Ok(None);
        };
        // An id given to `open_mount` by another process (the migration bridge records the other
        // side's mounts under their ids) can be taken between `nextval` and the insert: such an
        // insert does nothing (after that process commits or rolls back), and the next value is
        // taken, which `open_mount` has moved past the id it recorded.
        for _ in 0..MOUNT_ID_TRIES {
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO mount (mount_id, mount_type, vid, tape_pool, vo, drive, logical_library, created_at, heartbeat)
                 VALUES (nextval('mount_id_seq'), $1, $2, $3, $4, $5, $6, $7, $7)
                 ON CONFLICT (mount_id) DO NOTHING RETURNING mount_id",
            )
            .bind(spec.mount_type.as_str())
            .bind(&spec.vid)
            .bind(&spec.tape_pool)
            .bind(&spec.vo)
            .bind(&spec.drive)
            .bind(&spec.logical_library)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(id) = id {
                Self::commit(tx).await?;
                return Ok(Some((id as u64, spec)));
            }
        }
        tx.rollback().await.ok();
        Err(Fail::Fatal(Error::conflict(format!(
            "no free mount id after {MOUNT_ID_TRIES} tries (every one was taken by a mount recorded under its id)"
        ))))
    }

    pub(super) async fn open_mount_once(&self, mount: MountId, spec: &MountSpec, now: Timestamp) -> Result<(), Fail> {
        let mut tx = self.begin().await?;
        let id = checked_i64("mount id", mount)?;
        // Later mount ids must not collide with this one: moved first, so that a `nextval` after
        // this point cannot give it out (one before it is the race `next_mount` retries).
        sqlx::query(
            "SELECT setval('mount_id_seq', $1) FROM mount_id_seq
             WHERE $1 > CASE WHEN is_called THEN last_value ELSE last_value - 1 END",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let n = sqlx::query(
            "INSERT INTO mount (mount_id, mount_type, vid, tape_pool, vo, drive, logical_library, created_at, heartbeat)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) ON CONFLICT (mount_id) DO NOTHING",
        )
        .bind(id)
        .bind(spec.mount_type.as_str())
        .bind(&spec.vid)
        .bind(&spec.tape_pool)
        .bind(&spec.vo)
        .bind(&spec.drive)
        .bind(&spec.logical_library)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(Fail::Fatal(Error::conflict(format!("mount {mount} already exists"))));
        }
        Self::commit(tx).await
    }
}

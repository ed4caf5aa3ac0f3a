//! Incremental per-queue summaries.
//!
//! Every operation that adds jobs to, or removes jobs from, a transfer queue records the change
//! in a [`Delta`] and applies it at the end of its transaction with [`Delta::apply`]: the summary
//! rows are locked in key order (so concurrent operations cannot deadlock on them), the totals
//! and value-count maps are adjusted, the oldest/youngest creation times of queues that lost jobs
//! are kept when no removed job was at a bound and read again from the `*_queue_age` indexes
//! otherwise, and queues left empty without a marker are removed. Because the summary changes in
//! the same transaction as the jobs, a committed summary always describes the committed jobs. The
//! byte total is exact (`numeric`, migration 7: a sum of sizes may pass 2^63-1) and read as
//! `least(bytes, 2^63-1)`, so it never wraps and never fails.

use std::collections::BTreeMap;

use sqlx::{Postgres, Transaction};
use tapesched_scheduler::clock::Timestamp;

/// Queue kind code of user archive queues (per tape pool).
pub const KIND_ARCHIVE: i16 = 0;
/// Queue kind code of repack archive queues (per tape pool).
pub const KIND_REPACK: i16 = 1;
/// Queue kind code of retrieve queues (per VID).
pub const KIND_RETRIEVE: i16 = 2;

/// The change to one queue's summary.
#[derive(Debug, Default, Clone)]
pub struct QueueDelta {
    files: i64,
    /// Exact change of the byte total (sizes are at most 2^63-1, so their sum may pass an i64;
    /// the column is numeric: migration 7).
    bytes: i128,
    priorities: BTreeMap<u64, i64>,
    min_ages: BTreeMap<u64, i64>,
    policies: BTreeMap<String, i64>,
    oldest: Option<i64>,
    youngest: Option<i64>,
    /// Oldest and youngest creation time among the jobs removed (set when any was).
    removed: Option<(i64, i64)>,
    cleanup: Option<bool>,
    sleep: Option<(String, i64)>,
}

/// What a job contributes to its queue's summary.
#[derive(Debug, Clone, Copy)]
pub struct JobFacts<'a> {
    /// Size in bytes.
    pub size: u64,
    /// Creation time.
    pub created_at: i64,
    /// Priority at queueing time.
    pub priority: u64,
    /// Minimum request age at queueing time.
    pub min_age: u64,
    /// Mount policy name.
    pub policy: &'a str,
}

/// Summary changes of one transaction, by (kind, container) in key order.
#[derive(Debug, Default, Clone)]
pub struct Delta {
    queues: BTreeMap<i16, BTreeMap<String, QueueDelta>>,
}

fn bump<K: Ord>(map: &mut BTreeMap<K, i64>, key: K, by: i64) {
    let v = map.entry(key).or_insert(0);
    *v += by;
}

/// The value of a string key, inserted as the default if absent: the key is copied only then
/// (`entry` would copy it on every call, once per job).
fn slot<'m, V: Default>(map: &'m mut BTreeMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_string(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

fn counts_json<K: ToString>(map: &BTreeMap<K, i64>) -> String {
    let obj: serde_json::Map<String, serde_json::Value> =
        map.iter().filter(|(_, v)| **v != 0).map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect();
    serde_json::Value::Object(obj).to_string()
}

impl Delta {
    fn entry(&mut self, kind: i16, container: &str) -> &mut QueueDelta {
        slot(self.queues.entry(kind).or_default(), container)
    }

    /// Every queue changed, in key order.
    fn iter(&self) -> impl Iterator<Item = (i16, &String, &QueueDelta)> {
        self.queues.iter().flat_map(|(kind, qs)| qs.iter().map(move |(c, q)| (*kind, c, q)))
    }

    /// A job joins a queue.
    pub fn add(&mut self, kind: i16, container: &str, job: JobFacts<'_>) {
        let q = self.entry(kind, container);
        q.files += 1;
        q.bytes += i128::from(job.size);
        bump(&mut q.priorities, job.priority, 1);
        bump(&mut q.min_ages, job.min_age, 1);
        *slot(&mut q.policies, job.policy) += 1;
        q.oldest = Some(q.oldest.map_or(job.created_at, |o| o.min(job.created_at)));
        q.youngest = Some(q.youngest.map_or(job.created_at, |y| y.max(job.created_at)));
    }

    /// A job leaves a queue.
    pub fn remove(&mut self, kind: i16, container: &str, job: JobFacts<'_>) {
        let q = self.entry(kind, container);
        q.files -= 1;
        q.bytes -= i128::from(job.size);
        bump(&mut q.priorities, job.priority, -1);
        bump(&mut q.min_ages, job.min_age, -1);
        *slot(&mut q.policies, job.policy) -= 1;
        q.removed = Some(
            q.removed
                .map_or((job.created_at, job.created_at), |(lo, hi)| (lo.min(job.created_at), hi.max(job.created_at))),
        );
    }

    /// Sets or clears a retrieve queue's cleanup flag (creating the queue when setting it).
    pub fn set_cleanup(&mut self, vid: &str, flag: bool) {
        self.entry(KIND_RETRIEVE, vid).cleanup = Some(flag);
    }

    /// Puts a retrieve queue to sleep (creating the queue if needed).
    pub fn set_sleep(&mut self, vid: &str, disk_system: &str, until: i64) {
        self.entry(KIND_RETRIEVE, vid).sleep = Some((disk_system.to_string(), until));
    }

    /// Applies the changes in the transaction (see the module documentation).
    pub async fn apply(self, tx: &mut Transaction<'static, Postgres>, now: Timestamp) -> Result<(), sqlx::Error> {
        if self.queues.is_empty() {
            return Ok(());
        }
        let n = self.iter().count();
        let mut kinds = Vec::with_capacity(n);
        let mut containers = Vec::with_capacity(n);
        let mut files = Vec::with_capacity(n);
        let mut bytes = Vec::with_capacity(n);
        let mut priorities = Vec::with_capacity(n);
        let mut min_ages = Vec::with_capacity(n);
        let mut policies = Vec::with_capacity(n);
        let mut oldest = Vec::with_capacity(n);
        let mut youngest = Vec::with_capacity(n);
        let mut cleanup: Vec<Option<bool>> = Vec::with_capacity(n);
        let mut sleep_ds: Vec<Option<String>> = Vec::with_capacity(n);
        let mut sleep_until: Vec<Option<i64>> = Vec::with_capacity(n);
        let (mut removed_kinds, mut removed_containers) = (Vec::new(), Vec::new());
        let (mut removed_lo, mut removed_hi) = (Vec::new(), Vec::new());
        for (kind, container, q) in self.iter() {
            kinds.push(kind);
            containers.push(container.clone());
            files.push(q.files);
            bytes.push(q.bytes.to_string());
            priorities.push(counts_json(&q.priorities));
            min_ages.push(counts_json(&q.min_ages));
            policies.push(counts_json(&q.policies));
            oldest.push(q.oldest);
            youngest.push(q.youngest);
            cleanup.push(q.cleanup);
            sleep_ds.push(q.sleep.as_ref().map(|s| s.0.clone()));
            sleep_until.push(q.sleep.as_ref().map(|s| s.1));
            if let Some((lo, hi)) = q.removed {
                removed_kinds.push(kind);
                removed_containers.push(container.clone());
                removed_lo.push(lo);
                removed_hi.push(hi);
            }
        }
        // 1. Lock the existing rows in key order.
        sqlx::query(
            "SELECT 1 FROM queue_summary s
             JOIN unnest($1::int2[], $2::text[]) AS k(kind, container)
               ON s.kind = k.kind AND s.container = k.container
             ORDER BY s.kind, s.container
             FOR UPDATE OF s",
        )
        .bind(&kinds)
        .bind(&containers)
        .execute(&mut **tx)
        .await?;
        // 2. Totals, maps, markers; new queues are created in key order.
        sqlx::query(
            "INSERT INTO queue_summary AS s
                 (kind, container, files, bytes, priorities, min_ages, policies, oldest, youngest, cleanup,
                  sleep_disk_system, sleep_until)
             SELECT kind, container, files, bytes, pr::jsonb, ma::jsonb, po::jsonb, oldest, youngest,
                    coalesce(cleanup, false), sleep_ds, sleep_until
             FROM unnest($1::int2[], $2::text[], $3::int8[], $4::text[]::numeric[], $5::text[], $6::text[], $7::text[],
                         $8::int8[], $9::int8[], $10::bool[], $11::text[], $12::int8[])
                  WITH ORDINALITY AS d(kind, container, files, bytes, pr, ma, po, oldest, youngest, cleanup,
                                       sleep_ds, sleep_until, ord)
             ORDER BY ord
             ON CONFLICT (kind, container) DO UPDATE SET
                 files = s.files + excluded.files,
                 bytes = s.bytes + excluded.bytes,
                 priorities = merge_counts(s.priorities, excluded.priorities),
                 min_ages = merge_counts(s.min_ages, excluded.min_ages),
                 policies = merge_counts(s.policies, excluded.policies),
                 oldest = least(s.oldest, excluded.oldest),
                 youngest = greatest(s.youngest, excluded.youngest),
                 sleep_disk_system = coalesce(excluded.sleep_disk_system, s.sleep_disk_system),
                 sleep_until = coalesce(excluded.sleep_until, s.sleep_until)",
        )
        .bind(&kinds)
        .bind(&containers)
        .bind(&files)
        .bind(&bytes)
        .bind(&priorities)
        .bind(&min_ages)
        .bind(&policies)
        .bind(&oldest)
        .bind(&youngest)
        .bind(&cleanup)
        .bind(&sleep_ds)
        .bind(&sleep_until)
        .execute(&mut **tx)
        .await?;
        let (set_kinds, set_containers, set_flags): (Vec<i16>, Vec<String>, Vec<bool>) = {
            let mut k = Vec::new();
            let mut c = Vec::new();
            let mut f = Vec::new();
            for (kind, container, q) in self.iter() {
                if let Some(flag) = q.cleanup {
                    k.push(kind);
                    c.push(container.clone());
                    f.push(flag);
                }
            }
            (k, c, f)
        };
        if !set_kinds.is_empty() {
            sqlx::query(
                "UPDATE queue_summary s SET cleanup = u.flag
                 FROM unnest($1::int2[], $2::text[], $3::bool[]) AS u(kind, container, flag)
                 WHERE s.kind = u.kind AND s.container = u.container",
            )
            .bind(&set_kinds)
            .bind(&set_containers)
            .bind(&set_flags)
            .execute(&mut **tx)
            .await?;
        }
        // 3. Oldest/youngest of queues that lost jobs. The stored values are exact (every writer of
        //    a queue keeps them so, one at a time: the rows are locked), so a bound survives when
        //    every removed job was strictly inside it, and an empty queue has neither; otherwise
        //    it is read again from the `*_queue_age` index (this statement sees every committed
        //    change: the rows are locked, so other writers of these queues are done). Reading it
        //    again only when needed matters: a queue that has just lost its oldest jobs has their
        //    dead index entries first, which every such read walks until they are vacuumed.
        if !removed_kinds.is_empty() {
            sqlx::query(
                "UPDATE queue_summary s
                 SET oldest = CASE
                         WHEN s.files <= 0 THEN NULL
                         WHEN k.lo > s.oldest THEN s.oldest
                         WHEN k.kind = 2 THEN (SELECT min(r.created_at) FROM retrieve_request r
                                               WHERE r.active_vid = k.container AND r.queue_seq IS NOT NULL)
                         WHEN k.kind = 1 THEN (SELECT min(a.created_at) FROM archive_job a
                                               WHERE a.tape_pool = k.container AND a.queue_seq IS NOT NULL
                                                 AND a.archive_file_id < 0)
                         ELSE (SELECT min(a.created_at) FROM archive_job a
                               WHERE a.tape_pool = k.container AND a.queue_seq IS NOT NULL
                                 AND a.archive_file_id >= 0) END,
                     youngest = CASE
                         WHEN s.files <= 0 THEN NULL
                         WHEN k.hi < s.youngest THEN s.youngest
                         WHEN k.kind = 2 THEN (SELECT max(r.created_at) FROM retrieve_request r
                                               WHERE r.active_vid = k.container AND r.queue_seq IS NOT NULL)
                         WHEN k.kind = 1 THEN (SELECT max(a.created_at) FROM archive_job a
                                               WHERE a.tape_pool = k.container AND a.queue_seq IS NOT NULL
                                                 AND a.archive_file_id < 0)
                         ELSE (SELECT max(a.created_at) FROM archive_job a
                               WHERE a.tape_pool = k.container AND a.queue_seq IS NOT NULL
                                 AND a.archive_file_id >= 0) END
                 FROM unnest($1::int2[], $2::text[], $3::int8[], $4::int8[]) AS k(kind, container, lo, hi)
                 WHERE s.kind = k.kind AND s.container = k.container",
            )
            .bind(&removed_kinds)
            .bind(&removed_containers)
            .bind(&removed_lo)
            .bind(&removed_hi)
            .execute(&mut **tx)
            .await?;
        }
        // 4. Trim empty queues that carry no marker in force.
        sqlx::query(
            "DELETE FROM queue_summary s
             USING unnest($1::int2[], $2::text[]) AS k(kind, container)
             WHERE s.kind = k.kind AND s.container = k.container AND s.files <= 0 AND NOT s.cleanup
               AND (s.sleep_until IS NULL OR s.sleep_until <= $3)",
        )
        .bind(&kinds)
        .bind(&containers)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

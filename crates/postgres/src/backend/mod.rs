//! `PgSchedulerDb`: the `SchedulerDb` implementation on PostgreSQL.
//!
//! Every operation is one transaction ([`crate::error::retry`] runs it again after a
//! serialization failure, a deadlock or a connection lost before `COMMIT`). The observable
//! behaviour is the canonical one of `ObjectstoreDb` (`compat/README.md`):
//!
//! - archive queues are FIFO by queueing order (`queue_seq`, a global sequence), retrieve queues
//!   are ordered by (fSeq of the active copy, arrival); a requeued job gets a new position at the
//!   tail and keeps its creation time;
//! - a claim locks the candidates of the mount's queue with `FOR UPDATE SKIP LOCKED` and cuts the
//!   batch with a running byte total in the same statement: jobs while fewer than `max_files` are
//!   taken and the next still fits in `max_bytes`, a single first job may exceed the budget;
//! - a mount holds its jobs in the order it took them (`owned_op`, `owned_rank`); ending or
//!   collecting it requeues them in that order, retrieves to the router's choice made with the
//!   queue statistics as they were before the operation (a drain sees each move it makes, as the
//!   objectstore's does);
//! - state changes that need a rule (retries, multi-copy success, report retries) load the
//!   request under a row lock (`FOR UPDATE`, in id order), apply `tapesched_scheduler::rules` in
//!   memory and write the changed rows back, so concurrent completions of sibling copies see each
//!   other;
//! - mount decisions hold a transaction-scoped advisory lock keyed by the logical library.
//!
//! This module holds the backend's settings, its handle and the transaction helpers; the work is
//! in the submodules: `codec` (row codecs), `stats` (queue statistics for routing), `work` (the
//! loaded state of one transaction and its write-back), `queueing`, `mount_info` (the summaries
//! cache and mount decisions), `claims`, `completion`, `cleanup` (collection, cancellation,
//! markers, drains), `reports`, `state` and `state_import` (the full state: export, import,
//! deletion, for migrations), and `adapter` (the `SchedulerDb` trait).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::types::Json;
use sqlx::{Column, Postgres, Row, Transaction};
use tapesched_scheduler::clock::Timestamp;
use tapesched_scheduler::db::*;
use tapesched_scheduler::repack::{RepackLink, RepackReport, RepackReportBatch, RepackRequest, RepackUpdate};
use tapesched_scheduler::rules::{self, FailureOutcome};
use tapesched_scheduler::types::*;
use tapesched_scheduler::{Error, Result};

use crate::error::{commit_fail, retry, Fail};
use crate::schema::{advisory_key, connect_pool, ensure_schema, MigrationReport};
use crate::summary::{Delta, JobFacts, KIND_ARCHIVE, KIND_REPACK, KIND_RETRIEVE};

/// Settings of the PostgreSQL backend.
#[derive(Debug, Clone)]
pub struct PgConfig {
    /// Server URL (`postgres://user@host:port/db`).
    pub url: String,
    /// The schema holding this instance (validated, created if missing).
    pub schema: String,
    /// Pool size.
    pub max_connections: u32,
    /// How long an operation waits for a pooled connection.
    pub acquire_timeout: Duration,
    /// How long a mount decision waits for its library's lock (`lock_timeout`).
    pub lock_timeout: Duration,
    /// A mount whose last heartbeat is older than this many seconds (on the caller's clock) is
    /// dead; `None`: only abandoned mounts are collected (the objectstore's default).
    pub mount_timeout: Option<i64>,
    /// Attempts of an operation that hits a serialization failure, a deadlock or a lost
    /// connection before committing.
    pub max_attempts: u32,
}

impl PgConfig {
    /// Defaults for `url` and `schema`: 8 connections, 30 s waits, no heartbeat time-out, 8 attempts.
    pub fn new(url: impl Into<String>, schema: impl Into<String>) -> Self {
        PgConfig {
            url: url.into(),
            schema: schema.into(),
            max_connections: 8,
            acquire_timeout: Duration::from_secs(30),
            lock_timeout: Duration::from_secs(30),
            mount_timeout: None,
            max_attempts: 8,
        }
    }
}

/// The PostgreSQL backend.
pub struct PgSchedulerDb {
    pool: PgPool,
    config: PgConfig,
    migration: MigrationReport,
    summaries: tokio::sync::Mutex<SummaryCache>,
}

/// The queue summaries as this process last read them (see `read_mount_info`).
#[derive(Default)]
struct SummaryCache {
    /// The `xmin` of the snapshot of the last read; `None` before the first.
    horizon: Option<i64>,
    /// Queues with jobs, by (kind, container).
    queues: BTreeMap<(i16, String), Arc<PotentialMount>>,
}

type Tx = Transaction<'static, Postgres>;

/// Tombstones of deleted queue summaries kept for readers catching up (see
/// `migrations/0003_summary_changes.sql`).
const KEPT_TOMBSTONES: i64 = 10_000;

// --- column lists (defined before the submodules, which use them) -----------------------------

macro_rules! aj_cols {
    () => {
        "j.archive_file_id, j.copy_nb, j.position, j.tape_pool, j.status, j.queue_seq, j.mount_id, j.owned_op, \
         j.owned_rank, j.retries_within_mount, j.total_retries, j.last_mount_with_failure, j.report_retries, \
         j.failure_reasons, j.written_copy_nb, j.written_vid, j.written_fseq, j.written_block_id"
    };
}

macro_rules! ar_cols {
    () => {
        "r.archive_file_id AS r_afid, r.disk_instance AS r_disk_instance, r.disk_file_id AS r_disk_file_id, \
         r.requester_name AS r_requester_name, r.requester_group AS r_requester_group, \
         r.storage_class AS r_storage_class, r.size AS r_size, r.created_at AS r_created_at, \
         r.report_url AS r_report_url, r.error_report_url AS r_error_report_url, r.policy_name AS r_policy_name, \
         r.priority AS r_priority, r.min_request_age AS r_min_request_age, r.report_decided AS r_report_decided, \
         r.copies AS r_copies, r.file_id AS r_file_id, r.repack AS r_repack"
    };
}

macro_rules! rr_cols {
    () => {
        "r.request_id, r.archive_file_id, r.disk_instance, r.requester_name, r.requester_group, r.size, r.dst_url, \
         r.report_url, r.error_report_url, r.created_at, r.activity, r.verify_only, r.disk_system, r.policy_name, \
         r.priority, r.min_request_age, r.copy_nbs, r.vids, r.fseqs, r.block_ids, r.retries_within_mount, \
         r.total_retries, r.last_mount_with_failure, r.report_retries, r.active_vid, r.status, r.failure_reasons, \
         r.queue_seq, r.mount_id, r.owned_op, r.owned_rank, r.repack"
    };
}

mod adapter;
mod claims;
mod cleanup;
mod codec;
mod completion;
mod mount_info;
mod queueing;
mod repack;
mod reports;
mod state;
mod state_import;
mod stats;
mod work;

use codec::*;
use stats::*;
use work::*;

// --- the backend ---------------------------------------------------------------------------------

impl PgSchedulerDb {
    /// Connects, creates the schema if needed and applies the migrations (a newer schema than
    /// this build knows is an error).
    pub async fn connect(config: PgConfig) -> Result<Self> {
        let pool = connect_pool(&config.url, &config.schema, config.max_connections, config.acquire_timeout).await?;
        let migration = match ensure_schema(&pool, &config.schema).await {
            Ok(m) => m,
            Err(e) => {
                pool.close().await;
                return Err(e);
            }
        };
        Ok(PgSchedulerDb { pool, config, migration, summaries: Default::default() })
    }

    /// The connection pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The settings.
    pub fn config(&self) -> &PgConfig {
        &self.config
    }

    /// The schema.
    pub fn schema(&self) -> &str {
        &self.config.schema
    }

    /// What the start-up migration did.
    pub fn migration(&self) -> &MigrationReport {
        &self.migration
    }

    /// Closes the pool and drops the schema with everything in it.
    pub async fn drop_namespace(&self) -> Result<()> {
        self.pool.close().await;
        crate::schema::drop_schema(&self.config.url, &self.config.schema).await
    }

    /// Recomputes every queue summary from the job rows (a repair and verification tool; bulk
    /// loads that bypass the backend use it too). Markers (cleanup flag, sleep) are kept.
    pub async fn rebuild_summaries(&self, now: Timestamp) -> Result<()> {
        retry(self.config.max_attempts, || async move {
            let mut tx = self.begin().await?;
            sqlx::query("LOCK TABLE queue_summary IN EXCLUSIVE MODE").execute(&mut *tx).await?;
            sqlx::query(
                "WITH j AS (
                     SELECT (CASE WHEN a.archive_file_id < 0 THEN 1 ELSE 0 END)::int2 AS kind, a.tape_pool AS c, a.size, a.created_at, r.priority, r.min_request_age,
                            r.policy_name
                     FROM archive_job a JOIN archive_request r ON r.archive_file_id = a.archive_file_id
                     WHERE a.queue_seq IS NOT NULL
                     UNION ALL
                     SELECT 2::int2, active_vid, size, created_at, priority, min_request_age, policy_name
                     FROM retrieve_request WHERE queue_seq IS NOT NULL
                 ), tot AS (
                     SELECT kind, c, count(*) AS files, sum(size) AS bytes, min(created_at) AS lo,
                            max(created_at) AS hi
                     FROM j GROUP BY kind, c
                 ), pr AS (
                     SELECT kind, c, jsonb_object_agg(v::text, n) AS m
                     FROM (SELECT kind, c, priority AS v, count(*) AS n FROM j GROUP BY 1, 2, 3) x GROUP BY 1, 2
                 ), ma AS (
                     SELECT kind, c, jsonb_object_agg(v::text, n) AS m
                     FROM (SELECT kind, c, min_request_age AS v, count(*) AS n FROM j GROUP BY 1, 2, 3) x GROUP BY 1, 2
                 ), po AS (
                     SELECT kind, c, jsonb_object_agg(v, n) AS m
                     FROM (SELECT kind, c, policy_name AS v, count(*) AS n FROM j GROUP BY 1, 2, 3) x GROUP BY 1, 2
                 ), fresh AS (
                     SELECT tot.kind, tot.c, tot.files, tot.bytes, pr.m AS pm, ma.m AS mm, po.m AS om, tot.lo, tot.hi
                     FROM tot JOIN pr USING (kind, c) JOIN ma USING (kind, c) JOIN po USING (kind, c)
                 ), cleared AS (
                     UPDATE queue_summary s SET files = 0, bytes = 0, priorities = '{}', min_ages = '{}',
                         policies = '{}', oldest = NULL, youngest = NULL
                     WHERE NOT EXISTS (SELECT 1 FROM fresh f WHERE f.kind = s.kind AND f.c = s.container)
                 )
                 INSERT INTO queue_summary AS s (kind, container, files, bytes, priorities, min_ages, policies,
                                                 oldest, youngest)
                 SELECT kind, c, files, bytes, pm, mm, om, lo, hi FROM fresh ORDER BY kind, c
                 ON CONFLICT (kind, container) DO UPDATE SET files = excluded.files, bytes = excluded.bytes,
                     priorities = excluded.priorities, min_ages = excluded.min_ages, policies = excluded.policies,
                     oldest = excluded.oldest, youngest = excluded.youngest",
            )
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "DELETE FROM queue_summary WHERE files <= 0 AND NOT cleanup AND (sleep_until IS NULL OR sleep_until <= $1)",
            )
            .bind(now)
            .execute(&mut *tx)
            .await?;
            Self::commit(tx).await
        })
        .await
    }

    async fn begin(&self) -> Result<Tx, Fail> {
        Ok(self.pool.begin().await?)
    }

    async fn commit(tx: Tx) -> Result<(), Fail> {
        tx.commit().await.map_err(commit_fail)
    }

    /// Locks the mount's row and refreshes its heartbeat; `not_found` once it ended.
    async fn touch_mount(tx: &mut Tx, mount: MountId, now: Timestamp) -> Result<(MountType, String, String), Fail> {
        let row = sqlx::query(
            "UPDATE mount SET heartbeat = greatest(heartbeat, $2) WHERE mount_id = $1
             RETURNING mount_type, vid, tape_pool",
        )
        .bind(mount as i64)
        .bind(now)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or_else(|| Error::not_found(format!("mount {mount} does not exist or has ended")))?;
        let t: String = row.try_get("mount_type")?;
        Ok((
            t.parse::<MountType>().map_err(|e| Error::internal(e.message))?,
            row.try_get("vid")?,
            row.try_get("tape_pool")?,
        ))
    }
}

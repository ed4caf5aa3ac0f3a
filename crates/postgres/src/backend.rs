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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Column, Postgres, Row, Transaction};
use tapesched_scheduler::clock::Timestamp;
use tapesched_scheduler::db::*;
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

// --- codes ------------------------------------------------------------------------------------

fn archive_code(s: ArchiveJobStatus) -> i16 {
    match s {
        ArchiveJobStatus::ToTransfer => 0,
        ArchiveJobStatus::ToReportForTransfer => 1,
        ArchiveJobStatus::ToReportForFailure => 2,
        ArchiveJobStatus::Complete => 3,
        ArchiveJobStatus::Failed => 4,
    }
}

fn archive_status(c: i16) -> Result<ArchiveJobStatus, Fail> {
    Ok(match c {
        0 => ArchiveJobStatus::ToTransfer,
        1 => ArchiveJobStatus::ToReportForTransfer,
        2 => ArchiveJobStatus::ToReportForFailure,
        3 => ArchiveJobStatus::Complete,
        4 => ArchiveJobStatus::Failed,
        other => return Err(Fail::Fatal(Error::internal(format!("stored archive job status {other} is unknown")))),
    })
}

fn retrieve_code(s: RetrieveStatus) -> i16 {
    match s {
        RetrieveStatus::ToTransfer => 0,
        RetrieveStatus::ToReportForTransfer => 1,
        RetrieveStatus::ToReportForFailure => 2,
        RetrieveStatus::Failed => 3,
    }
}

fn retrieve_status(c: i16) -> Result<RetrieveStatus, Fail> {
    Ok(match c {
        0 => RetrieveStatus::ToTransfer,
        1 => RetrieveStatus::ToReportForTransfer,
        2 => RetrieveStatus::ToReportForFailure,
        3 => RetrieveStatus::Failed,
        other => return Err(Fail::Fatal(Error::internal(format!("stored retrieve status {other} is unknown")))),
    })
}

fn json_strings(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn too_big(what: &str, v: u64) -> Fail {
    // Not a limit of this backend: the scheduler core refuses such values before any backend.
    Fail::Fatal(Error::internal(format!("{what} {v} passed the scheduler core's bound of 2^63-1")))
}

fn checked_i64(what: &str, v: u64) -> Result<i64, Fail> {
    i64::try_from(v).map_err(|_| too_big(what, v))
}

// --- column lists -----------------------------------------------------------------------------

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
         r.copies AS r_copies"
    };
}

/// Output names of `aj_cols!`, in order.
const AJ_NAMES: [&str; 18] = [
    "archive_file_id",
    "copy_nb",
    "position",
    "tape_pool",
    "status",
    "queue_seq",
    "mount_id",
    "owned_op",
    "owned_rank",
    "retries_within_mount",
    "total_retries",
    "last_mount_with_failure",
    "report_retries",
    "failure_reasons",
    "written_copy_nb",
    "written_vid",
    "written_fseq",
    "written_block_id",
];

/// Output names of `ar_cols!`, in order.
const AR_NAMES: [&str; 15] = [
    "r_afid",
    "r_disk_instance",
    "r_disk_file_id",
    "r_requester_name",
    "r_requester_group",
    "r_storage_class",
    "r_size",
    "r_created_at",
    "r_report_url",
    "r_error_report_url",
    "r_policy_name",
    "r_priority",
    "r_min_request_age",
    "r_report_decided",
    "r_copies",
];

/// Where the columns `names` (one of the lists above) start in the rows of a result set. Found
/// by name and checked once per result set; the rows are then decoded by position (sqlx looks
/// a column name up on every access, which was a tenth of a claim's client time).
fn columns_at(row: &PgRow, names: &[&str]) -> Result<usize, Fail> {
    let cols = row.columns();
    let base = cols
        .iter()
        .position(|c| c.name() == names[0])
        .ok_or_else(|| Error::internal(format!("result has no column {:?}", names[0])))?;
    for (i, name) in names.iter().enumerate() {
        if cols.get(base + i).map(|c| c.name()) != Some(*name) {
            return Err(Fail::Fatal(Error::internal(format!("result column {} is not {name:?}", base + i))));
        }
    }
    Ok(base)
}

macro_rules! rr_cols {
    () => {
        "r.request_id, r.archive_file_id, r.disk_instance, r.requester_name, r.requester_group, r.size, r.dst_url, \
         r.report_url, r.error_report_url, r.created_at, r.activity, r.verify_only, r.disk_system, r.policy_name, \
         r.priority, r.min_request_age, r.copy_nbs, r.vids, r.fseqs, r.block_ids, r.retries_within_mount, \
         r.total_retries, r.last_mount_with_failure, r.report_retries, r.active_vid, r.status, r.failure_reasons, \
         r.queue_seq, r.mount_id, r.owned_op, r.owned_rank"
    };
}

// --- in-memory state of loaded rows -------------------------------------------------------------

/// Where a job is: queued, held by a mount, or neither (report, failed, complete).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Loc {
    queue_seq: Option<i64>,
    mount_id: Option<u64>,
    owned_op: Option<i64>,
    owned_rank: Option<i32>,
}

impl Loc {
    fn held_by(&self, mount: MountId) -> bool {
        self.mount_id == Some(mount)
    }
    fn idle() -> Loc {
        Loc::default()
    }
}

fn loc_of(row: &PgRow) -> Result<Loc, Fail> {
    Ok(Loc {
        queue_seq: row.try_get("queue_seq")?,
        mount_id: row.try_get::<Option<i64>, _>("mount_id")?.map(|m| m as u64),
        owned_op: row.try_get("owned_op")?,
        owned_rank: row.try_get("owned_rank")?,
    })
}

/// An archive request with the location of each of its jobs.
#[derive(Debug, Clone)]
struct ArchiveState {
    request: ArchiveRequest,
    locs: Vec<Loc>,
    positions: Vec<i32>,
    dirty_jobs: BTreeSet<usize>,
    dirty_request: bool,
}

impl ArchiveState {
    fn index(&self, copy_nb: u32) -> Option<usize> {
        self.request.jobs.iter().position(|j| j.copy_nb == copy_nb)
    }
    fn facts(&self) -> JobFacts<'_> {
        archive_facts(&self.request)
    }
}

/// What a queue summary counts of an archive request's job.
fn archive_facts(request: &ArchiveRequest) -> JobFacts<'_> {
    JobFacts {
        size: request.size,
        created_at: request.created_at,
        priority: request.policy.priority,
        min_age: request.policy.min_request_age,
        policy: &request.policy.name,
    }
}

/// The archive request of a row whose `ar_cols!` start at column `b`.
fn archive_request_at(row: &PgRow, b: usize) -> Result<ArchiveRequest, Fail> {
    Ok(ArchiveRequest {
        archive_file_id: row.try_get::<i64, _>(b)? as u64,
        disk_instance: row.try_get(b + 1)?,
        disk_file_id: row.try_get(b + 2)?,
        requester: Requester { name: row.try_get(b + 3)?, group: row.try_get(b + 4)? },
        storage_class: row.try_get(b + 5)?,
        size: row.try_get::<i64, _>(b + 6)? as u64,
        created_at: row.try_get(b + 7)?,
        report_url: row.try_get(b + 8)?,
        error_report_url: row.try_get(b + 9)?,
        policy: QueuedPolicy {
            name: row.try_get(b + 10)?,
            priority: row.try_get::<i64, _>(b + 11)? as u64,
            min_request_age: row.try_get::<i64, _>(b + 12)? as u64,
        },
        jobs: vec![],
        report_decided: row.try_get(b + 13)?,
    })
}

/// The archive job (with its position and location) of a row whose `aj_cols!` start at `b`.
fn archive_job_at(row: &PgRow, b: usize) -> Result<(ArchiveJob, i32, Loc), Fail> {
    let written = match row.try_get::<Option<String>, _>(b + 15)? {
        Some(vid) => Some(TapeFile {
            copy_nb: row.try_get::<Option<i32>, _>(b + 14)?.unwrap_or(0) as u32,
            vid,
            fseq: row.try_get::<Option<i64>, _>(b + 16)?.unwrap_or(0) as u64,
            block_id: row.try_get::<Option<i64>, _>(b + 17)?.unwrap_or(0) as u64,
        }),
        None => None,
    };
    let job = ArchiveJob {
        copy_nb: row.try_get::<i32, _>(b + 1)? as u32,
        tape_pool: row.try_get(b + 3)?,
        status: archive_status(row.try_get(b + 4)?)?,
        retries: RetryCounters {
            retries_within_mount: row.try_get::<i32, _>(b + 9)? as u32,
            total_retries: row.try_get::<i32, _>(b + 10)? as u32,
            last_mount_with_failure: row.try_get::<Option<i64>, _>(b + 11)?.map(|m| m as u64),
            report_retries: row.try_get::<i32, _>(b + 12)? as u32,
        },
        failure_reasons: row.try_get(b + 13)?,
        written,
    };
    let loc = Loc {
        queue_seq: row.try_get(b + 5)?,
        mount_id: row.try_get::<Option<i64>, _>(b + 6)?.map(|m| m as u64),
        owned_op: row.try_get(b + 7)?,
        owned_rank: row.try_get(b + 8)?,
    };
    Ok((job, row.try_get(b + 2)?, loc))
}

/// A retrieve request with its location.
#[derive(Debug, Clone)]
struct RetrieveState {
    request: RetrieveRequest,
    loc: Loc,
    dirty: bool,
}

impl RetrieveState {
    fn facts(&self) -> JobFacts<'_> {
        JobFacts {
            size: self.request.size,
            created_at: self.request.created_at,
            priority: self.request.policy.priority,
            min_age: self.request.policy.min_request_age,
            policy: &self.request.policy.name,
        }
    }
}

fn retrieve_of(row: &PgRow) -> Result<RetrieveState, Fail> {
    let copy_nbs: Vec<i32> = row.try_get("copy_nbs")?;
    let vids: Vec<String> = row.try_get("vids")?;
    let fseqs: Vec<i64> = row.try_get("fseqs")?;
    let block_ids: Vec<i64> = row.try_get("block_ids")?;
    let rwm: Vec<i32> = row.try_get("retries_within_mount")?;
    let tr: Vec<i32> = row.try_get("total_retries")?;
    let lm: Vec<Option<i64>> = row.try_get("last_mount_with_failure")?;
    let rr: Vec<i32> = row.try_get("report_retries")?;
    let n = copy_nbs.len();
    if [vids.len(), fseqs.len(), block_ids.len(), rwm.len(), tr.len(), lm.len(), rr.len()].iter().any(|l| *l != n) {
        return Err(Fail::Fatal(Error::internal("a stored retrieve request has copy arrays of different lengths")));
    }
    let copies = (0..n)
        .map(|i| RetrieveCopy {
            copy_nb: copy_nbs[i] as u32,
            vid: vids[i].clone(),
            fseq: fseqs[i] as u64,
            block_id: block_ids[i] as u64,
            retries: RetryCounters {
                retries_within_mount: rwm[i] as u32,
                total_retries: tr[i] as u32,
                last_mount_with_failure: lm[i].map(|m| m as u64),
                report_retries: rr[i] as u32,
            },
        })
        .collect();
    let request = RetrieveRequest {
        request_id: row.try_get::<i64, _>("request_id")? as u64,
        archive_file_id: row.try_get::<i64, _>("archive_file_id")? as u64,
        disk_instance: row.try_get("disk_instance")?,
        requester: Requester { name: row.try_get("requester_name")?, group: row.try_get("requester_group")? },
        size: row.try_get::<i64, _>("size")? as u64,
        dst_url: row.try_get("dst_url")?,
        report_url: row.try_get("report_url")?,
        error_report_url: row.try_get("error_report_url")?,
        created_at: row.try_get("created_at")?,
        activity: row.try_get("activity")?,
        verify_only: row.try_get("verify_only")?,
        disk_system: row.try_get("disk_system")?,
        policy: QueuedPolicy {
            name: row.try_get("policy_name")?,
            priority: row.try_get::<i64, _>("priority")? as u64,
            min_request_age: row.try_get::<i64, _>("min_request_age")? as u64,
        },
        copies,
        active_vid: row.try_get("active_vid")?,
        status: retrieve_status(row.try_get("status")?)?,
        failure_reasons: row.try_get("failure_reasons")?,
    };
    Ok(RetrieveState { request, loc: loc_of(row)?, dirty: false })
}

fn active_copy_nb(r: &RetrieveRequest) -> u32 {
    r.active_copy().map_or(0, |c| c.copy_nb)
}

fn active_fseq(r: &RetrieveRequest) -> u64 {
    r.active_copy().map_or(0, |c| c.fseq)
}

// --- queue statistics for routing ----------------------------------------------------------------

#[derive(Debug, Default, Clone)]
struct VidStats {
    loaded: bool,
    files: u64,
    bytes: u64,
    priorities: BTreeMap<u64, u64>,
}

/// Retrieve-queue statistics as an operation's router sees them: the committed summaries plus
/// the additions the operation chose to make visible.
#[derive(Debug, Default)]
struct StatsView {
    vids: HashMap<String, VidStats>,
}

fn parse_counts(v: &serde_json::Value) -> BTreeMap<String, u64> {
    v.as_object()
        .map(|o| o.iter().filter_map(|(k, n)| n.as_i64().filter(|n| *n > 0).map(|n| (k.clone(), n as u64))).collect())
        .unwrap_or_default()
}

fn parse_u64_counts(v: &serde_json::Value) -> BTreeMap<u64, u64> {
    parse_counts(v).into_iter().filter_map(|(k, n)| k.parse::<u64>().ok().map(|k| (k, n))).collect()
}

impl StatsView {
    async fn load(&mut self, tx: &mut Tx, vids: &[String]) -> Result<(), Fail> {
        let missing: Vec<String> = vids
            .iter()
            .filter(|v| !self.vids.get(*v).is_some_and(|s| s.loaded))
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let rows = sqlx::query(
            "SELECT container, files, least(bytes, 9223372036854775807)::int8 AS bytes, priorities FROM queue_summary
             WHERE kind = 2 AND container = ANY($1)",
        )
        .bind(&missing)
        .fetch_all(&mut **tx)
        .await?;
        for v in &missing {
            self.vids.entry(v.clone()).or_default().loaded = true;
        }
        for row in rows {
            let vid: String = row.try_get("container")?;
            let s = self.vids.entry(vid).or_default();
            s.files += row.try_get::<i64, _>("files")?.max(0) as u64;
            s.bytes = s.bytes.saturating_add(row.try_get::<i64, _>("bytes")?.max(0) as u64);
            for (p, n) in parse_u64_counts(&row.try_get::<serde_json::Value, _>("priorities")?) {
                *s.priorities.entry(p).or_default() += n;
            }
        }
        Ok(())
    }

    fn stats(&self, vids: &[String]) -> Vec<QueueStats> {
        vids.iter()
            .map(|v| {
                let s = self.vids.get(v).cloned().unwrap_or_default();
                QueueStats {
                    vid: v.clone(),
                    files_queued: s.files,
                    bytes_queued: s.bytes,
                    priority: s.priorities.keys().next_back().copied().unwrap_or(0),
                }
            })
            .collect()
    }

    fn add(&mut self, vid: &str, size: u64, priority: u64) {
        let s = self.vids.entry(vid.to_string()).or_default();
        s.files += 1;
        s.bytes = s.bytes.saturating_add(size);
        *s.priorities.entry(priority).or_default() += 1;
    }

    fn set_empty(&mut self, vid: &str) {
        self.vids.insert(vid.to_string(), VidStats { loaded: true, ..VidStats::default() });
    }

    async fn route(
        &mut self,
        tx: &mut Tx,
        request: &RetrieveRequest,
        router: &dyn RetrieveRouter,
    ) -> Result<Option<String>, Fail> {
        let candidates = router.candidates(request);
        if candidates.is_empty() {
            return Ok(None);
        }
        self.load(tx, &candidates).await?;
        Ok(router.choose(request, &self.stats(&candidates)))
    }
}

// --- the work of one transaction ----------------------------------------------------------------

/// A job to put at the tail of its transfer queue (positions are given in this order).
#[derive(Debug, Clone, Copy)]
enum Enqueue {
    Archive(u64, usize),
    Retrieve(u64),
}

/// Loaded requests, their changes and the queue moves of one operation.
#[derive(Default)]
struct Work {
    archives: BTreeMap<u64, ArchiveState>,
    retrieves: BTreeMap<u64, RetrieveState>,
    enqueue: Vec<Enqueue>,
    delta: Delta,
    delete_archives: BTreeSet<u64>,
    delete_retrieves: BTreeSet<u64>,
}

impl Work {
    /// Loads (and locks, in id order) archive requests with all their jobs.
    async fn load_archives(&mut self, tx: &mut Tx, ids: &[u64]) -> Result<(), Fail> {
        let ids: Vec<i64> = ids
            .iter()
            .filter(|i| !self.archives.contains_key(i))
            .map(|i| *i as i64)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let reqs = sqlx::query(concat!(
            "SELECT ",
            ar_cols!(),
            " FROM archive_request r WHERE r.archive_file_id = ANY($1) ORDER BY r.archive_file_id FOR UPDATE"
        ))
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?;
        let jobs = sqlx::query(concat!(
            "SELECT ",
            aj_cols!(),
            " FROM archive_job j WHERE j.archive_file_id = ANY($1) ORDER BY j.archive_file_id, j.position"
        ))
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?;
        let ar = match reqs.first() {
            Some(row) => columns_at(row, &AR_NAMES)?,
            None => 0,
        };
        for row in &reqs {
            let request = archive_request_at(row, ar)?;
            self.archives.insert(
                request.archive_file_id,
                ArchiveState {
                    request,
                    locs: vec![],
                    positions: vec![],
                    dirty_jobs: BTreeSet::new(),
                    dirty_request: false,
                },
            );
        }
        let aj = match jobs.first() {
            Some(row) => columns_at(row, &AJ_NAMES)?,
            None => 0,
        };
        for row in &jobs {
            let afid = row.try_get::<i64, _>(aj)? as u64;
            let (job, position, loc) = archive_job_at(row, aj)?;
            if let Some(st) = self.archives.get_mut(&afid) {
                st.request.jobs.push(job);
                st.positions.push(position);
                st.locs.push(loc);
            }
        }
        Ok(())
    }

    /// Loads (and locks, in id order) retrieve requests.
    async fn load_retrieves(&mut self, tx: &mut Tx, ids: &[u64]) -> Result<(), Fail> {
        let ids: Vec<i64> = ids
            .iter()
            .filter(|i| !self.retrieves.contains_key(i))
            .map(|i| *i as i64)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let rows = sqlx::query(concat!(
            "SELECT ",
            rr_cols!(),
            " FROM retrieve_request r WHERE r.request_id = ANY($1) ORDER BY r.request_id FOR UPDATE"
        ))
        .bind(&ids)
        .fetch_all(&mut **tx)
        .await?;
        for row in &rows {
            let st = retrieve_of(row)?;
            self.retrieves.insert(st.request.request_id, st);
        }
        Ok(())
    }

    /// Moves an archive job to the tail of its pool's queue.
    fn enqueue_archive(&mut self, afid: u64, index: usize) {
        let st = self.archives.get_mut(&afid).expect("loaded");
        st.locs[index] = Loc::idle();
        st.dirty_jobs.insert(index);
        let pool = st.request.jobs[index].tape_pool.clone();
        self.delta.add(KIND_ARCHIVE, &pool, st.facts());
        self.enqueue.push(Enqueue::Archive(afid, index));
    }

    /// Moves a retrieve request to the tail of its active VID's queue.
    fn enqueue_retrieve(&mut self, id: u64) {
        let st = self.retrieves.get_mut(&id).expect("loaded");
        st.loc = Loc::idle();
        st.dirty = true;
        let vid = st.request.active_vid.clone();
        self.delta.add(KIND_RETRIEVE, &vid, st.facts());
        self.enqueue.push(Enqueue::Retrieve(id));
    }

    /// Writes every change: queue positions, changed jobs and requests, deletions, summaries.
    async fn write(mut self, tx: &mut Tx, now: Timestamp) -> Result<(), Fail> {
        if !self.enqueue.is_empty() {
            let seqs: Vec<i64> = sqlx::query_scalar("SELECT nextval('queue_seq') FROM generate_series(1, $1)")
                .bind(self.enqueue.len() as i64)
                .fetch_all(&mut **tx)
                .await?;
            let mut seqs = seqs;
            seqs.sort_unstable();
            for (e, seq) in self.enqueue.iter().zip(seqs) {
                match *e {
                    Enqueue::Archive(afid, i) => {
                        if let Some(st) = self.archives.get_mut(&afid) {
                            st.locs[i].queue_seq = Some(seq);
                        }
                    }
                    Enqueue::Retrieve(id) => {
                        if let Some(st) = self.retrieves.get_mut(&id) {
                            st.loc.queue_seq = Some(seq);
                        }
                    }
                }
            }
        }
        write_archives(tx, &self.archives, &self.delete_archives).await?;
        write_retrieves(tx, &self.retrieves, &self.delete_retrieves).await?;
        if !self.delete_archives.is_empty() {
            let ids: Vec<i64> = self.delete_archives.iter().map(|i| *i as i64).collect();
            sqlx::query("DELETE FROM archive_job WHERE archive_file_id = ANY($1)")
                .bind(&ids)
                .execute(&mut **tx)
                .await?;
            sqlx::query("DELETE FROM archive_request WHERE archive_file_id = ANY($1)")
                .bind(&ids)
                .execute(&mut **tx)
                .await?;
        }
        if !self.delete_retrieves.is_empty() {
            let ids: Vec<i64> = self.delete_retrieves.iter().map(|i| *i as i64).collect();
            sqlx::query("DELETE FROM retrieve_request WHERE request_id = ANY($1)")
                .bind(&ids)
                .execute(&mut **tx)
                .await?;
        }
        std::mem::take(&mut self.delta).apply(tx, now).await?;
        Ok(())
    }
}

async fn write_archives(tx: &mut Tx, states: &BTreeMap<u64, ArchiveState>, skip: &BTreeSet<u64>) -> Result<(), Fail> {
    let mut afid = Vec::new();
    let mut copy = Vec::new();
    let mut status = Vec::new();
    let mut rwm = Vec::new();
    let mut tr = Vec::new();
    let mut lm: Vec<Option<i64>> = Vec::new();
    let mut rr = Vec::new();
    let mut reasons = Vec::new();
    let mut w_copy: Vec<Option<i32>> = Vec::new();
    let mut w_vid: Vec<Option<String>> = Vec::new();
    let mut w_fseq: Vec<Option<i64>> = Vec::new();
    let mut w_block: Vec<Option<i64>> = Vec::new();
    let mut qseq: Vec<Option<i64>> = Vec::new();
    let mut mount: Vec<Option<i64>> = Vec::new();
    let mut op: Vec<Option<i64>> = Vec::new();
    let mut rank: Vec<Option<i32>> = Vec::new();
    let (mut req_ids, mut req_decided) = (Vec::new(), Vec::new());
    for (id, st) in states {
        if skip.contains(id) {
            continue;
        }
        if st.dirty_request {
            req_ids.push(*id as i64);
            req_decided.push(st.request.report_decided);
        }
        for &i in &st.dirty_jobs {
            let j = &st.request.jobs[i];
            let loc = st.locs[i];
            afid.push(*id as i64);
            copy.push(j.copy_nb as i32);
            status.push(archive_code(j.status));
            rwm.push(j.retries.retries_within_mount as i32);
            tr.push(j.retries.total_retries as i32);
            lm.push(j.retries.last_mount_with_failure.map(|m| m as i64));
            rr.push(j.retries.report_retries as i32);
            reasons.push(json_strings(&j.failure_reasons));
            w_copy.push(j.written.as_ref().map(|w| w.copy_nb as i32));
            w_vid.push(j.written.as_ref().map(|w| w.vid.clone()));
            w_fseq.push(j.written.as_ref().map(|w| w.fseq as i64));
            w_block.push(j.written.as_ref().map(|w| w.block_id as i64));
            qseq.push(loc.queue_seq);
            mount.push(loc.mount_id.map(|m| m as i64));
            op.push(loc.owned_op);
            rank.push(loc.owned_rank);
        }
    }
    if !afid.is_empty() {
        sqlx::query(
            "UPDATE archive_job j SET
                 status = u.status, retries_within_mount = u.rwm, total_retries = u.tr,
                 last_mount_with_failure = u.lm, report_retries = u.rr,
                 failure_reasons = ARRAY(SELECT e FROM jsonb_array_elements_text(u.reasons::jsonb)
                                         WITH ORDINALITY AS x(e, n) ORDER BY n),
                 written_copy_nb = u.w_copy, written_vid = u.w_vid, written_fseq = u.w_fseq,
                 written_block_id = u.w_block, queue_seq = u.qseq, mount_id = u.mount, owned_op = u.op,
                 owned_rank = u.rank
             FROM unnest($1::int8[], $2::int4[], $3::int2[], $4::int4[], $5::int4[], $6::int8[], $7::int4[],
                         $8::text[], $9::int4[], $10::text[], $11::int8[], $12::int8[], $13::int8[], $14::int8[],
                         $15::int8[], $16::int4[])
                  AS u(afid, copy_nb, status, rwm, tr, lm, rr, reasons, w_copy, w_vid, w_fseq, w_block, qseq,
                       mount, op, rank)
             WHERE j.archive_file_id = u.afid AND j.copy_nb = u.copy_nb",
        )
        .bind(&afid)
        .bind(&copy)
        .bind(&status)
        .bind(&rwm)
        .bind(&tr)
        .bind(&lm)
        .bind(&rr)
        .bind(&reasons)
        .bind(&w_copy)
        .bind(&w_vid)
        .bind(&w_fseq)
        .bind(&w_block)
        .bind(&qseq)
        .bind(&mount)
        .bind(&op)
        .bind(&rank)
        .execute(&mut **tx)
        .await?;
    }
    if !req_ids.is_empty() {
        sqlx::query(
            "UPDATE archive_request r SET report_decided = u.decided
             FROM unnest($1::int8[], $2::bool[]) AS u(id, decided) WHERE r.archive_file_id = u.id",
        )
        .bind(&req_ids)
        .bind(&req_decided)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

async fn write_retrieves(tx: &mut Tx, states: &BTreeMap<u64, RetrieveState>, skip: &BTreeSet<u64>) -> Result<(), Fail> {
    let mut ids = Vec::new();
    let mut status = Vec::new();
    let mut vid = Vec::new();
    let mut copy_nb = Vec::new();
    let mut fseq = Vec::new();
    let mut counters = Vec::new();
    let mut reasons = Vec::new();
    let mut qseq: Vec<Option<i64>> = Vec::new();
    let mut mount: Vec<Option<i64>> = Vec::new();
    let mut op: Vec<Option<i64>> = Vec::new();
    let mut rank: Vec<Option<i32>> = Vec::new();
    for (id, st) in states {
        if !st.dirty || skip.contains(id) {
            continue;
        }
        let r = &st.request;
        ids.push(*id as i64);
        status.push(retrieve_code(r.status));
        vid.push(r.active_vid.clone());
        copy_nb.push(active_copy_nb(r) as i32);
        fseq.push(active_fseq(r) as i64);
        let c: Vec<serde_json::Value> = r
            .copies
            .iter()
            .map(|c| {
                serde_json::json!([
                    c.retries.retries_within_mount,
                    c.retries.total_retries,
                    c.retries.last_mount_with_failure.map(|m| m as i64),
                    c.retries.report_retries
                ])
            })
            .collect();
        counters.push(serde_json::Value::Array(c).to_string());
        reasons.push(json_strings(&r.failure_reasons));
        qseq.push(st.loc.queue_seq);
        mount.push(st.loc.mount_id.map(|m| m as i64));
        op.push(st.loc.owned_op);
        rank.push(st.loc.owned_rank);
    }
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "UPDATE retrieve_request r SET
             status = u.status, active_vid = u.vid, active_copy_nb = u.copy_nb, active_fseq = u.fseq,
             retries_within_mount = ARRAY(SELECT (e->>0)::int4 FROM jsonb_array_elements(u.counters::jsonb)
                                          WITH ORDINALITY AS x(e, n) ORDER BY n),
             total_retries = ARRAY(SELECT (e->>1)::int4 FROM jsonb_array_elements(u.counters::jsonb)
                                   WITH ORDINALITY AS x(e, n) ORDER BY n),
             last_mount_with_failure = ARRAY(SELECT (e->>2)::int8 FROM jsonb_array_elements(u.counters::jsonb)
                                             WITH ORDINALITY AS x(e, n) ORDER BY n),
             report_retries = ARRAY(SELECT (e->>3)::int4 FROM jsonb_array_elements(u.counters::jsonb)
                                    WITH ORDINALITY AS x(e, n) ORDER BY n),
             failure_reasons = ARRAY(SELECT e FROM jsonb_array_elements_text(u.reasons::jsonb)
                                     WITH ORDINALITY AS x(e, n) ORDER BY n),
             queue_seq = u.qseq, mount_id = u.mount, owned_op = u.op, owned_rank = u.rank
         FROM unnest($1::int8[], $2::int2[], $3::text[], $4::int4[], $5::int8[], $6::text[], $7::text[],
                     $8::int8[], $9::int8[], $10::int8[], $11::int4[])
              AS u(id, status, vid, copy_nb, fseq, counters, reasons, qseq, mount, op, rank)
         WHERE r.request_id = u.id",
    )
    .bind(&ids)
    .bind(&status)
    .bind(&vid)
    .bind(&copy_nb)
    .bind(&fseq)
    .bind(&counters)
    .bind(&reasons)
    .bind(&qseq)
    .bind(&mount)
    .bind(&op)
    .bind(&rank)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Builds the archive requests of claimed rows: single-copy requests from the claim's own row,
/// others with their sibling jobs read in the same transaction.
/// The mount jobs of the rows a claim returned (`aj_cols!, ar_cols!, rank`), with the
/// siblings of multi-copy requests read in one more query; records each job in `claim` and its
/// removal from its queue in `delta`.
async fn archive_jobs_of_claim(
    tx: &mut Tx,
    rows: &[PgRow],
    claim: &mut Claim,
    delta: &mut Delta,
) -> Result<Vec<(i32, MountJob)>, Fail> {
    let Some(first) = rows.first() else { return Ok(vec![]) };
    let (aj, ar) = (columns_at(first, &AJ_NAMES)?, columns_at(first, &AR_NAMES)?);
    let rank = ar + AR_NAMES.len();
    if first.columns().get(rank).map(|c| c.name()) != Some("rank") {
        return Err(Fail::Fatal(Error::internal("claim result has no rank after the request columns")));
    }
    let mut claimed = Vec::with_capacity(rows.len());
    let mut multi: Vec<i64> = Vec::new();
    for row in rows {
        let request = archive_request_at(row, ar)?;
        let (job, _, loc) = archive_job_at(row, aj)?;
        let afid = checked_i64("archive file id", request.archive_file_id)?;
        if row.try_get::<i32, _>(ar + 14)? > 1 {
            multi.push(afid);
        }
        claim.archive(afid, job.copy_nb, loc.owned_op);
        delta.remove(KIND_ARCHIVE, &job.tape_pool, archive_facts(&request));
        claimed.push((row.try_get::<i32, _>(rank)?, request, job));
    }
    let mut siblings: HashMap<u64, Vec<ArchiveJob>> = HashMap::new();
    if !multi.is_empty() {
        multi.sort_unstable();
        multi.dedup();
        let jobs = sqlx::query(concat!(
            "SELECT ",
            aj_cols!(),
            " FROM archive_job j WHERE j.archive_file_id = ANY($1) ORDER BY j.archive_file_id, j.position"
        ))
        .bind(&multi)
        .fetch_all(&mut **tx)
        .await?;
        if let Some(first) = jobs.first() {
            let aj = columns_at(first, &AJ_NAMES)?;
            for row in &jobs {
                let afid = row.try_get::<i64, _>(aj)? as u64;
                siblings.entry(afid).or_default().push(archive_job_at(row, aj)?.0);
            }
        }
    }
    Ok(claimed
        .into_iter()
        .map(|(rank, mut request, job)| {
            let copy_nb = job.copy_nb;
            request.jobs = match siblings.get(&request.archive_file_id) {
                Some(all) => all.clone(),
                None => vec![job],
            };
            (rank, MountJob::Archive { request, copy_nb })
        })
        .collect())
}

/// The jobs one claim gave a mount, recorded in `mount_claim` (see migration 4) so that the
/// mount's holdings can be found when it ends or dies.
#[derive(Default)]
struct Claim {
    op: Option<i64>,
    archive_ids: Vec<i64>,
    archive_copies: Vec<i32>,
    retrieve_ids: Vec<i64>,
}

impl Claim {
    fn archive(&mut self, archive_file_id: i64, copy_nb: u32, op: Option<i64>) {
        self.op = self.op.or(op);
        self.archive_ids.push(archive_file_id);
        self.archive_copies.push(copy_nb as i32);
    }

    fn retrieve(&mut self, st: &RetrieveState) -> Result<(), Fail> {
        self.op = self.op.or(st.loc.owned_op);
        self.retrieve_ids.push(checked_i64("request id", st.request.request_id)?);
        Ok(())
    }

    async fn record(self, tx: &mut Tx, mount: MountId) -> Result<(), Fail> {
        let Some(op) = self.op else { return Ok(()) };
        sqlx::query(
            "INSERT INTO mount_claim (mount_id, op, archive_ids, archive_copies, retrieve_ids)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(mount as i64)
        .bind(op)
        .bind(&self.archive_ids)
        .bind(&self.archive_copies)
        .bind(&self.retrieve_ids)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

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
                     SELECT 0::int2 AS kind, a.tape_pool AS c, a.size, a.created_at, r.priority, r.min_request_age,
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

    /// Stores archive requests in one transaction (bulk `UNNEST` inserts) and answers for each
    /// in order: a request is stored whole or not at all; one whose id is already stored, or
    /// repeated earlier in the batch, is a `conflict`.
    pub async fn queue_archive_batch(&self, requests: &[ArchiveRequest], now: Timestamp) -> Result<Vec<Result<()>>> {
        let mut answers: Vec<Option<Error>> = vec![None; requests.len()];
        let mut seen = BTreeSet::new();
        for (i, r) in requests.iter().enumerate() {
            if r.jobs.is_empty() {
                answers[i] =
                    Some(Error::invalid(format!("archive request {} has no copy to write", r.archive_file_id)));
            } else if !seen.insert(r.archive_file_id) {
                answers[i] = Some(Error::conflict(format!("archive request {} is already queued", r.archive_file_id)));
            }
        }
        let candidates: Vec<&ArchiveRequest> =
            requests.iter().zip(&answers).filter(|(_, a)| a.is_none()).map(|(r, _)| r).collect();
        let stored = retry(self.config.max_attempts, || self.queue_archive_once(&candidates, now)).await?;
        Ok(requests
            .iter()
            .zip(answers)
            .map(|(r, a)| match a {
                Some(e) => Err(e),
                None if stored.contains(&r.archive_file_id) => Ok(()),
                None => Err(Error::conflict(format!("archive request {} is already queued", r.archive_file_id))),
            })
            .collect())
    }

    /// Inserts the requests that are not stored yet; returns the ids of those it stored.
    async fn queue_archive_once(&self, requests: &[&ArchiveRequest], now: Timestamp) -> Result<BTreeSet<u64>, Fail> {
        if requests.is_empty() {
            return Ok(BTreeSet::new());
        }
        let n = requests.len();
        let mut afid = Vec::with_capacity(n);
        let mut instance = Vec::with_capacity(n);
        let mut disk_file = Vec::with_capacity(n);
        let mut rname = Vec::with_capacity(n);
        let mut rgroup = Vec::with_capacity(n);
        let mut sc = Vec::with_capacity(n);
        let mut size = Vec::with_capacity(n);
        let mut created = Vec::with_capacity(n);
        let mut rurl = Vec::with_capacity(n);
        let mut eurl = Vec::with_capacity(n);
        let mut pname = Vec::with_capacity(n);
        let mut prio = Vec::with_capacity(n);
        let mut age = Vec::with_capacity(n);
        let mut decided = Vec::with_capacity(n);
        let mut copies = Vec::with_capacity(n);
        for r in requests {
            afid.push(checked_i64("archive file id", r.archive_file_id)?);
            instance.push(r.disk_instance.as_str());
            disk_file.push(r.disk_file_id.as_str());
            rname.push(r.requester.name.as_str());
            rgroup.push(r.requester.group.as_str());
            sc.push(r.storage_class.as_str());
            size.push(checked_i64("size", r.size)?);
            created.push(r.created_at);
            rurl.push(r.report_url.as_deref());
            eurl.push(r.error_report_url.as_deref());
            pname.push(r.policy.name.as_str());
            prio.push(r.policy.priority as i64);
            age.push(r.policy.min_request_age as i64);
            decided.push(r.report_decided);
            copies.push(r.jobs.len() as i32);
        }
        let mut tx = self.begin().await?;
        let inserted: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO archive_request (archive_file_id, disk_instance, disk_file_id, requester_name,
                 requester_group, storage_class, size, created_at, report_url, error_report_url, policy_name,
                 priority, min_request_age, report_decided, copies)
             SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                 $7::int8[], $8::int8[], $9::text[], $10::text[], $11::text[], $12::int8[], $13::int8[],
                 $14::bool[], $15::int4[])
             ON CONFLICT (archive_file_id) DO NOTHING
             RETURNING archive_file_id",
        )
        .bind(&afid)
        .bind(&instance)
        .bind(&disk_file)
        .bind(&rname)
        .bind(&rgroup)
        .bind(&sc)
        .bind(&size)
        .bind(&created)
        .bind(&rurl)
        .bind(&eurl)
        .bind(&pname)
        .bind(&prio)
        .bind(&age)
        .bind(&decided)
        .bind(&copies)
        .fetch_all(&mut *tx)
        .await?;
        let stored: BTreeSet<u64> = inserted.into_iter().map(|i| i as u64).collect();
        let (mut j_afid, mut j_copy, mut j_pos, mut j_pool, mut j_status, mut j_size, mut j_created) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut queued = Vec::new();
        let (mut j_rwm, mut j_tr, mut j_lm, mut j_rr, mut j_reasons) =
            (Vec::new(), Vec::new(), Vec::<Option<i64>>::new(), Vec::new(), Vec::new());
        let mut delta = Delta::default();
        for r in requests.iter().filter(|r| stored.contains(&r.archive_file_id)) {
            let facts = JobFacts {
                size: r.size,
                created_at: r.created_at,
                priority: r.policy.priority,
                min_age: r.policy.min_request_age,
                policy: &r.policy.name,
            };
            for (pos, j) in r.jobs.iter().enumerate() {
                j_afid.push(r.archive_file_id as i64);
                j_copy.push(j.copy_nb as i32);
                j_pos.push(pos as i32);
                j_pool.push(j.tape_pool.as_str());
                j_status.push(archive_code(j.status));
                j_size.push(r.size as i64);
                j_created.push(r.created_at);
                j_rwm.push(j.retries.retries_within_mount as i32);
                j_tr.push(j.retries.total_retries as i32);
                j_lm.push(j.retries.last_mount_with_failure.map(|m| m as i64));
                j_rr.push(j.retries.report_retries as i32);
                j_reasons.push(json_strings(&j.failure_reasons));
                let q = j.status == ArchiveJobStatus::ToTransfer;
                queued.push(q);
                if q {
                    delta.add(KIND_ARCHIVE, &j.tape_pool, facts);
                }
            }
        }
        if !j_afid.is_empty() {
            // Queue positions follow the order of the jobs in the batch.
            sqlx::query(
                "INSERT INTO archive_job (archive_file_id, copy_nb, position, tape_pool, status, size, created_at,
                     queue_seq, retries_within_mount, total_retries, last_mount_with_failure, report_retries,
                     failure_reasons)
                 SELECT afid, copy_nb, pos, pool, status, size, created, CASE WHEN queued THEN nextval('queue_seq') END,
                        rwm, tr, lm, rr,
                        CASE WHEN reasons = '[]' THEN '{}'::text[]
                             ELSE ARRAY(SELECT e FROM jsonb_array_elements_text(reasons::jsonb)
                                        WITH ORDINALITY AS x(e, n) ORDER BY n) END
                 FROM unnest($1::int8[], $2::int4[], $3::int4[], $4::text[], $5::int2[], $6::int8[], $7::int8[],
                             $8::bool[], $9::int4[], $10::int4[], $11::int8[], $12::int4[], $13::text[])
                      WITH ORDINALITY AS u(afid, copy_nb, pos, pool, status, size, created, queued, rwm, tr, lm, rr,
                                           reasons, ord)
                 ORDER BY ord",
            )
            .bind(&j_afid)
            .bind(&j_copy)
            .bind(&j_pos)
            .bind(&j_pool)
            .bind(&j_status)
            .bind(&j_size)
            .bind(&j_created)
            .bind(&queued)
            .bind(&j_rwm)
            .bind(&j_tr)
            .bind(&j_lm)
            .bind(&j_rr)
            .bind(&j_reasons)
            .execute(&mut *tx)
            .await?;
        }
        delta.apply(&mut tx, now).await?;
        Self::commit(tx).await?;
        Ok(stored)
    }

    async fn queue_retrieve_once(&self, r: &RetrieveRequest, now: Timestamp) -> Result<(), Fail> {
        let mut tx = self.begin().await?;
        let copy_nbs: Vec<i32> = r.copies.iter().map(|c| c.copy_nb as i32).collect();
        let vids: Vec<&str> = r.copies.iter().map(|c| c.vid.as_str()).collect();
        let fseqs: Vec<i64> = r.copies.iter().map(|c| c.fseq as i64).collect();
        let blocks: Vec<i64> = r.copies.iter().map(|c| c.block_id as i64).collect();
        let rwm: Vec<i32> = r.copies.iter().map(|c| c.retries.retries_within_mount as i32).collect();
        let tr: Vec<i32> = r.copies.iter().map(|c| c.retries.total_retries as i32).collect();
        let lm: Vec<Option<i64>> =
            r.copies.iter().map(|c| c.retries.last_mount_with_failure.map(|m| m as i64)).collect();
        let rr: Vec<i32> = r.copies.iter().map(|c| c.retries.report_retries as i32).collect();
        let queued = r.status == RetrieveStatus::ToTransfer;
        let inserted = sqlx::query(
            "INSERT INTO retrieve_request (request_id, archive_file_id, disk_instance, requester_name, requester_group,
                 size, dst_url, report_url, error_report_url, created_at, activity, verify_only, disk_system,
                 policy_name, priority, min_request_age, copy_nbs, vids, fseqs, block_ids, retries_within_mount,
                 total_retries, last_mount_with_failure, report_retries, active_vid, active_copy_nb, active_fseq,
                 status, failure_reasons, queue_seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21,
                 $22, $23, $24, $25, $26, $27, $28, $29, CASE WHEN $30 THEN nextval('queue_seq') END)
             ON CONFLICT (request_id) DO NOTHING",
        )
        .bind(checked_i64("request id", r.request_id)?)
        .bind(checked_i64("archive file id", r.archive_file_id)?)
        .bind(&r.disk_instance)
        .bind(&r.requester.name)
        .bind(&r.requester.group)
        .bind(checked_i64("size", r.size)?)
        .bind(&r.dst_url)
        .bind(&r.report_url)
        .bind(&r.error_report_url)
        .bind(r.created_at)
        .bind(&r.activity)
        .bind(r.verify_only)
        .bind(&r.disk_system)
        .bind(&r.policy.name)
        .bind(r.policy.priority as i64)
        .bind(r.policy.min_request_age as i64)
        .bind(&copy_nbs)
        .bind(&vids)
        .bind(&fseqs)
        .bind(&blocks)
        .bind(&rwm)
        .bind(&tr)
        .bind(&lm)
        .bind(&rr)
        .bind(&r.active_vid)
        .bind(active_copy_nb(r) as i32)
        .bind(active_fseq(r) as i64)
        .bind(retrieve_code(r.status))
        .bind(&r.failure_reasons)
        .bind(queued)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(Fail::Fatal(Error::conflict(format!("retrieve request {} is already queued", r.request_id))));
        }
        if queued {
            let mut delta = Delta::default();
            delta.add(
                KIND_RETRIEVE,
                &r.active_vid,
                JobFacts {
                    size: r.size,
                    created_at: r.created_at,
                    priority: r.policy.priority,
                    min_age: r.policy.min_request_age,
                    policy: &r.policy.name,
                },
            );
            delta.apply(&mut tx, now).await?;
        }
        Self::commit(tx).await
    }

    /// The mount information: every queue summary with jobs. Summaries are kept in memory
    /// between calls and only those written since the previous read are read again (see
    /// `migrations/0003_summary_changes.sql`); the answer is what one statement's snapshot sees.
    async fn read_mount_info(&self, ex: &mut sqlx::PgConnection) -> Result<MountInfo, Fail> {
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
             SELECT 1::int2, NULL, NULL, s.kind, s.container, s.files, least(s.bytes, 9223372036854775807)::int8,
                    s.policies::text, s.oldest, s.youngest, s.sleep_disk_system, s.sleep_until, s.priorities::text, s.min_ages::text
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
                .map_err(|e| Error::internal(format!("a stored value-count map is not readable: {e}")))?;
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
                .map_err(|e| Error::internal(format!("a stored policy map is not readable: {e}")))?;
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

    async fn next_mount_once(
        &self,
        logical_library: &str,
        now: Timestamp,
        decide: &DecideFn<'_>,
    ) -> Result<Option<(MountId, MountSpec)>, Fail> {
        let mut tx = self.begin().await?;
        let timeout_ms = self.config.lock_timeout.as_millis().clamp(1, i32::MAX as u128) as i64;
        sqlx::query("SELECT set_config('lock_timeout', $1, true)")
            .bind(format!("{timeout_ms}ms"))
            .execute(&mut *tx)
            .await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(advisory_key(&self.config.schema, "mount-decision", logical_library))
            .execute(&mut *tx)
            .await?;
        let info = self.read_mount_info(&mut tx).await?;
        let Some(spec) = decide(&info) else {
            tx.rollback().await.ok();
            return Ok(None);
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO mount (mount_id, mount_type, vid, tape_pool, vo, drive, logical_library, created_at, heartbeat)
             VALUES (nextval('mount_id_seq'), $1, $2, $3, $4, $5, $6, $7, $7) RETURNING mount_id",
        )
        .bind(spec.mount_type.as_str())
        .bind(&spec.vid)
        .bind(&spec.tape_pool)
        .bind(&spec.vo)
        .bind(&spec.drive)
        .bind(&spec.logical_library)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        Self::commit(tx).await?;
        Ok(Some((id as u64, spec)))
    }

    async fn open_mount_once(&self, mount: MountId, spec: &MountSpec, now: Timestamp) -> Result<(), Fail> {
        let mut tx = self.begin().await?;
        let id = checked_i64("mount id", mount)?;
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
        // Later mount ids must not collide with this one.
        sqlx::query(
            "SELECT setval('mount_id_seq', $1) FROM mount_id_seq
             WHERE $1 > CASE WHEN is_called THEN last_value ELSE last_value - 1 END",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        Self::commit(tx).await
    }

    async fn pop_once(
        &self,
        mount: MountId,
        max_files: u64,
        max_bytes: u64,
        now: Timestamp,
    ) -> Result<Vec<MountJob>, Fail> {
        let mut tx = self.begin().await?;
        let (mount_type, vid, pool) = Self::touch_mount(&mut tx, mount, now).await?;
        let (kind, queue) = match mount_type {
            MountType::Retrieve => (KIND_RETRIEVE, &vid),
            MountType::ArchiveForRepack => (KIND_REPACK, &pool),
            _ => (KIND_ARCHIVE, &pool),
        };
        // A queue with nothing queued (no summary row, or no file) is answered without reading its
        // index, where the jobs just taken still have entries until they are vacuumed. The
        // summary is not locked: claims of one queue run side by side, each passing over the
        // rows the others hold (SKIP LOCKED), and only wait for each other to update it at the end.
        let files: Option<i64> =
            sqlx::query_scalar("SELECT files FROM queue_summary WHERE kind = $1 AND container = $2")
                .bind(kind)
                .bind(queue)
                .fetch_optional(&mut *tx)
                .await?;
        if files.unwrap_or(0) <= 0 {
            Self::commit(tx).await?;
            return Ok(Vec::new());
        }
        // The claim must walk its queue index in order and stop after `limit` rows. Without
        // statistics (a new table, no autovacuum yet) the planner may instead fetch every queued
        // row of the queue and sort it, which is as slow as the queue is long: leave it only the
        // ordered index scan, for this transaction.
        sqlx::raw_sql("SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off").execute(&mut *tx).await?;
        let limit = max_files.min(i64::MAX as u64) as i64;
        let budget = max_bytes.min(i64::MAX as u64) as i64;
        let mut delta = Delta::default();
        let mut jobs: Vec<(i32, MountJob)> = Vec::new();
        match mount_type {
            MountType::Retrieve => {
                let rows = sqlx::query(concat!(
                    "WITH cand AS (
                         SELECT request_id, size, active_fseq, queue_seq FROM retrieve_request
                         WHERE active_vid = $1 AND queue_seq IS NOT NULL
                         ORDER BY active_fseq, queue_seq
                         LIMIT $2
                         FOR UPDATE SKIP LOCKED
                     ), win AS (
                         SELECT request_id, row_number() OVER w AS rn, sum(size) OVER w AS cum
                         FROM cand WINDOW w AS (ORDER BY active_fseq, queue_seq)
                     ), op AS (SELECT nextval('op_seq') AS op)
                     UPDATE retrieve_request r
                     SET queue_seq = NULL, mount_id = $4, owned_op = op.op, owned_rank = win.rn::int4,
                         times_claimed = r.times_claimed + 1
                     FROM win, op
                     WHERE r.request_id = win.request_id AND (win.rn = 1 OR win.cum <= $3)
                     RETURNING ",
                    rr_cols!(),
                    ", win.rn::int4 AS rank"
                ))
                .bind(&vid)
                .bind(limit)
                .bind(budget)
                .bind(mount as i64)
                .fetch_all(&mut *tx)
                .await?;
                let mut claim = Claim::default();
                for row in &rows {
                    let st = retrieve_of(row)?;
                    claim.retrieve(&st)?;
                    delta.remove(KIND_RETRIEVE, &vid, st.facts());
                    jobs.push((row.try_get("rank")?, MountJob::Retrieve { request: st.request }));
                }
                claim.record(&mut tx, mount).await?;
            }
            MountType::ArchiveForRepack => {}
            _ => {
                let rows = sqlx::query(concat!(
                    "WITH cand AS (
                         SELECT ctid AS row_tid, size, queue_seq FROM archive_job
                         WHERE tape_pool = $1 AND queue_seq IS NOT NULL
                         ORDER BY queue_seq
                         LIMIT $2
                         FOR UPDATE SKIP LOCKED
                     ), win AS (
                         SELECT row_tid, row_number() OVER w AS rn, sum(size) OVER w AS cum
                         FROM cand WINDOW w AS (ORDER BY queue_seq)
                     ), op AS (SELECT nextval('op_seq') AS op)
                     UPDATE archive_job j
                     SET queue_seq = NULL, mount_id = $4, owned_op = op.op, owned_rank = win.rn::int4,
                         times_claimed = j.times_claimed + 1
                     FROM win, op, archive_request r
                     WHERE j.ctid = win.row_tid
                       AND r.archive_file_id = j.archive_file_id AND (win.rn = 1 OR win.cum <= $3)
                     RETURNING ",
                    aj_cols!(),
                    ", ",
                    ar_cols!(),
                    ", win.rn::int4 AS rank"
                ))
                .bind(&pool)
                .bind(limit)
                .bind(budget)
                .bind(mount as i64)
                .fetch_all(&mut *tx)
                .await?;
                let mut claim = Claim::default();
                jobs = archive_jobs_of_claim(&mut tx, &rows, &mut claim, &mut delta).await?;
                claim.record(&mut tx, mount).await?;
            }
        }
        delta.apply(&mut tx, now).await?;
        Self::commit(tx).await?;
        jobs.sort_by_key(|(rank, _)| *rank);
        Ok(jobs.into_iter().map(|(_, j)| j).collect())
    }

    async fn claim_once(&self, mount: MountId, ids: &[JobId], now: Timestamp) -> Result<Vec<MountJob>, Fail> {
        let mut tx = self.begin().await?;
        Self::touch_mount(&mut tx, mount, now).await?;
        let mut seen = BTreeSet::new();
        let (mut a_ids, mut a_copies, mut a_ord, mut r_ids, mut r_ord) = (vec![], vec![], vec![], vec![], vec![]);
        for (i, id) in ids.iter().enumerate() {
            let key = match id.request {
                RequestId::Archive(a) => (0u8, a, id.copy_nb),
                RequestId::Retrieve(r) => (1u8, r, 0),
            };
            if !seen.insert(key) {
                continue;
            }
            match id.request {
                RequestId::Archive(a) => {
                    a_ids.push(a as i64);
                    a_copies.push(id.copy_nb as i32);
                    a_ord.push(i as i32);
                }
                RequestId::Retrieve(r) => {
                    r_ids.push(r as i64);
                    r_ord.push(i as i32);
                }
            }
        }
        let op: i64 = sqlx::query_scalar("SELECT nextval('op_seq')").fetch_one(&mut *tx).await?;
        let mut delta = Delta::default();
        let mut claim = Claim::default();
        let mut jobs: Vec<(i32, MountJob)> = Vec::new();
        if !a_ids.is_empty() {
            let rows = sqlx::query(concat!(
                "WITH want AS (
                     SELECT * FROM unnest($1::int8[], $2::int4[], $3::int4[]) AS w(afid, copy_nb, ord)
                 ), cand AS (
                     SELECT j.archive_file_id, j.copy_nb, want.ord FROM archive_job j
                     JOIN want ON j.archive_file_id = want.afid AND j.copy_nb = want.copy_nb
                     WHERE j.queue_seq IS NOT NULL AND j.status = 0
                     ORDER BY j.archive_file_id, j.copy_nb
                     FOR UPDATE OF j SKIP LOCKED
                 )
                 UPDATE archive_job j
                 SET queue_seq = NULL, mount_id = $4, owned_op = $5, owned_rank = cand.ord,
                     times_claimed = j.times_claimed + 1
                 FROM cand, archive_request r
                 WHERE j.archive_file_id = cand.archive_file_id AND j.copy_nb = cand.copy_nb
                   AND r.archive_file_id = j.archive_file_id
                 RETURNING ",
                aj_cols!(),
                ", ",
                ar_cols!(),
                ", cand.ord AS rank"
            ))
            .bind(&a_ids)
            .bind(&a_copies)
            .bind(&a_ord)
            .bind(mount as i64)
            .bind(op)
            .fetch_all(&mut *tx)
            .await?;
            jobs.extend(archive_jobs_of_claim(&mut tx, &rows, &mut claim, &mut delta).await?);
        }
        if !r_ids.is_empty() {
            let rows = sqlx::query(concat!(
                "WITH want AS (
                     SELECT * FROM unnest($1::int8[], $2::int4[]) AS w(id, ord)
                 ), cand AS (
                     SELECT r.request_id, want.ord FROM retrieve_request r
                     JOIN want ON r.request_id = want.id
                     WHERE r.queue_seq IS NOT NULL AND r.status = 0
                     ORDER BY r.request_id
                     FOR UPDATE OF r SKIP LOCKED
                 )
                 UPDATE retrieve_request r
                 SET queue_seq = NULL, mount_id = $3, owned_op = $4, owned_rank = cand.ord,
                     times_claimed = r.times_claimed + 1
                 FROM cand
                 WHERE r.request_id = cand.request_id
                 RETURNING ",
                rr_cols!(),
                ", cand.ord AS rank"
            ))
            .bind(&r_ids)
            .bind(&r_ord)
            .bind(mount as i64)
            .bind(op)
            .fetch_all(&mut *tx)
            .await?;
            for row in &rows {
                let st = retrieve_of(row)?;
                claim.retrieve(&st)?;
                delta.remove(KIND_RETRIEVE, &st.request.active_vid, st.facts());
                jobs.push((row.try_get("rank")?, MountJob::Retrieve { request: st.request }));
            }
        }
        claim.record(&mut tx, mount).await?;
        delta.apply(&mut tx, now).await?;
        Self::commit(tx).await?;
        jobs.sort_by_key(|(rank, _)| *rank);
        Ok(jobs.into_iter().map(|(_, j)| j).collect())
    }

    async fn succeeded_once(&self, mount: MountId, jobs: &[TransferSuccess], now: Timestamp) -> Result<(), Fail> {
        let mut tx = self.begin().await?;
        Self::touch_mount(&mut tx, mount, now).await?;
        let mut w = Work::default();
        let afids: Vec<u64> = jobs
            .iter()
            .filter_map(|s| match s.job.request {
                RequestId::Archive(a) => Some(a),
                _ => None,
            })
            .collect();
        let rids: Vec<u64> = jobs
            .iter()
            .filter_map(|s| match s.job.request {
                RequestId::Retrieve(r) => Some(r),
                _ => None,
            })
            .collect();
        w.load_archives(&mut tx, &afids).await?;
        w.load_retrieves(&mut tx, &rids).await?;
        for s in jobs {
            match s.job.request {
                RequestId::Archive(afid) => {
                    let Some(st) = w.archives.get_mut(&afid) else { continue };
                    let Some(i) = st.index(s.job.copy_nb) else { continue };
                    if !st.locs[i].held_by(mount) {
                        continue;
                    }
                    let decided = st.request.report_decided;
                    rules::on_archive_success(&mut st.request, s.job.copy_nb, s.tape_file.clone());
                    st.locs[i] = Loc::idle();
                    st.dirty_jobs.insert(i);
                    st.dirty_request |= decided != st.request.report_decided;
                }
                RequestId::Retrieve(id) => {
                    let Some(st) = w.retrieves.get_mut(&id) else { continue };
                    if !st.loc.held_by(mount) {
                        continue;
                    }
                    if st.request.report_url.is_none() {
                        w.delete_retrieves.insert(id);
                        continue;
                    }
                    st.request.status = RetrieveStatus::ToReportForTransfer;
                    st.loc = Loc::idle();
                    st.dirty = true;
                }
            }
        }
        w.write(&mut tx, now).await?;
        Self::commit(tx).await
    }

    async fn failed_once(
        &self,
        mount: MountId,
        jobs: &[JobId],
        reason: &str,
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<(), Fail> {
        let mut tx = self.begin().await?;
        Self::touch_mount(&mut tx, mount, now).await?;
        let mut w = Work::default();
        let afids: Vec<u64> = jobs
            .iter()
            .filter_map(|j| match j.request {
                RequestId::Archive(a) => Some(a),
                _ => None,
            })
            .collect();
        let rids: Vec<u64> = jobs
            .iter()
            .filter_map(|j| match j.request {
                RequestId::Retrieve(r) => Some(r),
                _ => None,
            })
            .collect();
        w.load_archives(&mut tx, &afids).await?;
        w.load_retrieves(&mut tx, &rids).await?;
        // Routes see the queues as they were before this call (the objectstore adds the moved
        // jobs to their queues only at its end).
        let mut view = StatsView::default();
        for id in jobs {
            match id.request {
                RequestId::Archive(afid) => {
                    let Some(st) = w.archives.get_mut(&afid) else { continue };
                    let Some(i) = st.index(id.copy_nb) else { continue };
                    if !st.locs[i].held_by(mount) {
                        continue;
                    }
                    let decided = st.request.report_decided;
                    let outcome = rules::on_archive_failure(&mut st.request, id.copy_nb, mount, reason);
                    st.dirty_jobs.insert(i);
                    st.dirty_request |= decided != st.request.report_decided;
                    match outcome {
                        FailureOutcome::HoldInMount => {}
                        FailureOutcome::Requeue => w.enqueue_archive(afid, i),
                        FailureOutcome::ReportFailure | FailureOutcome::Failed => st.locs[i] = Loc::idle(),
                    }
                }
                RequestId::Retrieve(rid) => {
                    let Some(st) = w.retrieves.get_mut(&rid) else { continue };
                    if !st.loc.held_by(mount) {
                        continue;
                    }
                    let mut outcome = rules::on_retrieve_failure(&mut st.request, mount, reason);
                    st.dirty = true;
                    if outcome == FailureOutcome::Requeue {
                        let request = st.request.clone();
                        match view.route(&mut tx, &request, router).await? {
                            Some(vid) => w.retrieves.get_mut(&rid).expect("loaded").request.active_vid = vid,
                            None => {
                                outcome = FailureOutcome::ReportFailure;
                                w.retrieves.get_mut(&rid).expect("loaded").request.status =
                                    RetrieveStatus::ToReportForFailure;
                            }
                        }
                    }
                    match outcome {
                        FailureOutcome::HoldInMount => {}
                        FailureOutcome::Requeue => w.enqueue_retrieve(rid),
                        _ => w.retrieves.get_mut(&rid).expect("loaded").loc = Loc::idle(),
                    }
                }
            }
        }
        w.write(&mut tx, now).await?;
        Self::commit(tx).await
    }

    async fn requeue_once(&self, mount: MountId, jobs: &[JobId], now: Timestamp) -> Result<u64, Fail> {
        let mut tx = self.begin().await?;
        Self::touch_mount(&mut tx, mount, now).await?;
        let mut w = Work::default();
        let afids: Vec<u64> = jobs
            .iter()
            .filter_map(|j| match j.request {
                RequestId::Archive(a) => Some(a),
                _ => None,
            })
            .collect();
        let rids: Vec<u64> = jobs
            .iter()
            .filter_map(|j| match j.request {
                RequestId::Retrieve(r) => Some(r),
                _ => None,
            })
            .collect();
        w.load_archives(&mut tx, &afids).await?;
        w.load_retrieves(&mut tx, &rids).await?;
        let mut n = 0;
        for id in jobs {
            match id.request {
                RequestId::Archive(afid) => {
                    let Some(st) = w.archives.get_mut(&afid) else { continue };
                    let Some(i) = st.index(id.copy_nb) else { continue };
                    if !st.locs[i].held_by(mount) {
                        continue;
                    }
                    match st.request.jobs[i].status {
                        ArchiveJobStatus::Complete => continue,
                        ArchiveJobStatus::ToTransfer => w.enqueue_archive(afid, i),
                        _ => {
                            st.locs[i] = Loc::idle();
                            st.dirty_jobs.insert(i);
                        }
                    }
                    n += 1;
                }
                RequestId::Retrieve(rid) => {
                    let Some(st) = w.retrieves.get_mut(&rid) else { continue };
                    if !st.loc.held_by(mount) {
                        continue;
                    }
                    if st.request.status == RetrieveStatus::ToTransfer {
                        w.enqueue_retrieve(rid);
                    } else {
                        st.loc = Loc::idle();
                        st.dirty = true;
                    }
                    n += 1;
                }
            }
        }
        w.write(&mut tx, now).await?;
        Self::commit(tx).await?;
        Ok(n)
    }

    /// Requeues everything `mount` holds, in the order it took it; retrieves go to the router's
    /// choice made on `view`, whose additions become visible only after the whole mount. Returns
    /// how many jobs went back to a transfer queue.
    async fn requeue_held(
        tx: &mut Tx,
        w: &mut Work,
        view: &mut StatsView,
        mount: MountId,
        router: &dyn RetrieveRouter,
    ) -> Result<u64, Fail> {
        let mut order: Vec<(i64, i32, Enqueue)> = Vec::new();
        let held = sqlx::query(
            "SELECT DISTINCT j.archive_file_id, j.copy_nb, j.owned_op, j.owned_rank
                 FROM mount_claim c CROSS JOIN LATERAL unnest(c.archive_ids, c.archive_copies) AS u(afid, copy_nb)
                 JOIN archive_job j ON j.archive_file_id = u.afid AND j.copy_nb = u.copy_nb
                 WHERE c.mount_id = $1 AND j.mount_id = $1",
        )
        .bind(mount as i64)
        .fetch_all(&mut **tx)
        .await?;
        let afids: Vec<u64> = held.iter().map(|r| r.get::<i64, _>("archive_file_id") as u64).collect();
        w.load_archives(tx, &afids).await?;
        for row in &held {
            let afid = row.try_get::<i64, _>("archive_file_id")? as u64;
            let copy = row.try_get::<i32, _>("copy_nb")? as u32;
            let Some(st) = w.archives.get(&afid) else { continue };
            let Some(i) = st.index(copy) else { continue };
            order.push((
                row.try_get::<Option<i64>, _>("owned_op")?.unwrap_or(0),
                row.try_get::<Option<i32>, _>("owned_rank")?.unwrap_or(0),
                Enqueue::Archive(afid, i),
            ));
        }
        let held = sqlx::query(
            "SELECT DISTINCT r.request_id, r.owned_op, r.owned_rank
             FROM mount_claim c CROSS JOIN LATERAL unnest(c.retrieve_ids) AS u(id)
             JOIN retrieve_request r ON r.request_id = u.id
             WHERE c.mount_id = $1 AND r.mount_id = $1",
        )
        .bind(mount as i64)
        .fetch_all(&mut **tx)
        .await?;
        let rids: Vec<u64> = held.iter().map(|r| r.get::<i64, _>("request_id") as u64).collect();
        w.load_retrieves(tx, &rids).await?;
        for row in &held {
            order.push((
                row.try_get::<Option<i64>, _>("owned_op")?.unwrap_or(0),
                row.try_get::<Option<i32>, _>("owned_rank")?.unwrap_or(0),
                Enqueue::Retrieve(row.try_get::<i64, _>("request_id")? as u64),
            ));
        }
        order.sort_by_key(|(op, rank, _)| (*op, *rank));
        let mut n = 0;
        let mut visible: Vec<(String, u64, u64)> = Vec::new();
        for (_, _, what) in order {
            match what {
                Enqueue::Archive(afid, i) => {
                    let Some(st) = w.archives.get_mut(&afid) else { continue };
                    if !st.locs[i].held_by(mount) {
                        continue;
                    }
                    match st.request.jobs[i].status {
                        ArchiveJobStatus::ToTransfer => {
                            w.enqueue_archive(afid, i);
                            n += 1;
                        }
                        _ => {
                            st.locs[i] = Loc::idle();
                            st.dirty_jobs.insert(i);
                        }
                    }
                }
                Enqueue::Retrieve(rid) => {
                    let Some(st) = w.retrieves.get(&rid) else { continue };
                    if !st.loc.held_by(mount) {
                        continue;
                    }
                    if st.request.status != RetrieveStatus::ToTransfer {
                        let st = w.retrieves.get_mut(&rid).expect("loaded");
                        st.loc = Loc::idle();
                        st.dirty = true;
                        continue;
                    }
                    let request = st.request.clone();
                    let chosen = view.route(tx, &request, router).await?;
                    let st = w.retrieves.get_mut(&rid).expect("loaded");
                    match chosen {
                        Some(vid) => {
                            visible.push((vid.clone(), request.size, request.policy.priority));
                            st.request.active_vid = vid;
                            w.enqueue_retrieve(rid);
                            n += 1;
                        }
                        None => {
                            st.request.status = RetrieveStatus::ToReportForFailure;
                            st.request.failure_reasons.push("no tape copy can be recalled any more".into());
                            st.loc = Loc::idle();
                            st.dirty = true;
                        }
                    }
                }
            }
        }
        for (vid, size, priority) in visible {
            view.add(&vid, size, priority);
        }
        Ok(n)
    }

    async fn end_mount_once(&self, mount: MountId, now: Timestamp, router: &dyn RetrieveRouter) -> Result<u64, Fail> {
        let mut tx = self.begin().await?;
        Self::touch_mount(&mut tx, mount, now).await?;
        let mut w = Work::default();
        let mut view = StatsView::default();
        let n = Self::requeue_held(&mut tx, &mut w, &mut view, mount, router).await?;
        w.write(&mut tx, now).await?;
        sqlx::query("DELETE FROM mount WHERE mount_id = $1").bind(mount as i64).execute(&mut *tx).await?;
        Self::commit(tx).await?;
        Ok(n)
    }

    /// Keeps the newest [`KEPT_TOMBSTONES`] tombstones of deleted queue summaries; a reader that
    /// last read before the pruned ones reads every summary again.
    async fn prune_summary_tombstones(&self) -> Result<(), Fail> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "WITH cut AS (
                 SELECT writer FROM queue_summary_gone ORDER BY writer DESC OFFSET $1 LIMIT 1
             ), pruned AS (
                 UPDATE queue_summary_pruned p SET upto = cut.writer FROM cut WHERE cut.writer > p.upto
                 RETURNING p.upto
             )
             DELETE FROM queue_summary_gone g USING pruned WHERE g.writer < pruned.upto",
        )
        .bind(KEPT_TOMBSTONES)
        .execute(&mut *tx)
        .await?;
        Self::commit(tx).await
    }

    async fn gc_once(&self, now: Timestamp, router: &dyn RetrieveRouter) -> Result<u64, Fail> {
        let mut tx = self.begin().await?;
        let dead: Vec<i64> = sqlx::query_scalar(
            "SELECT mount_id FROM mount
             WHERE abandoned OR ($1::int8 IS NOT NULL AND $2 - heartbeat > $1)
             ORDER BY reg_seq
             FOR UPDATE SKIP LOCKED",
        )
        .bind(self.config.mount_timeout)
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        if dead.is_empty() {
            tx.rollback().await.ok();
            return Ok(0);
        }
        let mut w = Work::default();
        let mut view = StatsView::default();
        let mut n = 0;
        for m in &dead {
            tracing::info!(mount = m, "collecting a dead mount");
            n += Self::requeue_held(&mut tx, &mut w, &mut view, *m as u64, router).await?;
        }
        w.write(&mut tx, now).await?;
        sqlx::query("DELETE FROM mount WHERE mount_id = ANY($1)").bind(&dead).execute(&mut *tx).await?;
        Self::commit(tx).await?;
        Ok(n)
    }

    async fn cancel_archive_once(&self, afid: u64, now: Timestamp) -> Result<(), Fail> {
        let mut tx = self.begin().await?;
        let mut w = Work::default();
        w.load_archives(&mut tx, &[afid]).await?;
        let Some(st) = w.archives.get(&afid) else {
            return Err(Fail::Fatal(Error::not_found(format!("no archive request for archive file {afid}"))));
        };
        if st.request.jobs.iter().all(|j| j.status == ArchiveJobStatus::Failed) {
            tx.rollback().await.ok();
            return Ok(());
        }
        let st = st.clone();
        for (i, j) in st.request.jobs.iter().enumerate() {
            if st.locs[i].queue_seq.is_some() {
                w.delta.remove(KIND_ARCHIVE, &j.tape_pool, st.facts());
            }
        }
        w.delete_archives.insert(afid);
        w.write(&mut tx, now).await?;
        Self::commit(tx).await
    }

    async fn cancel_retrieve_once(&self, afid: u64, dst_url: Option<&str>, now: Timestamp) -> Result<u64, Fail> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query(concat!(
            "DELETE FROM retrieve_request r
             WHERE r.archive_file_id = $1 AND r.queue_seq IS NOT NULL AND ($2::text IS NULL OR r.dst_url = $2)
             RETURNING ",
            rr_cols!()
        ))
        .bind(checked_i64("archive file id", afid)?)
        .bind(dst_url)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Err(Fail::Fatal(Error::not_found(format!(
                "no queued retrieve request for archive file {afid}{}",
                dst_url.map(|d| format!(" to {d:?}")).unwrap_or_default()
            ))));
        }
        let mut delta = Delta::default();
        for row in &rows {
            let st = retrieve_of(row)?;
            delta.remove(KIND_RETRIEVE, &st.request.active_vid, st.facts());
        }
        delta.apply(&mut tx, now).await?;
        Self::commit(tx).await?;
        Ok(rows.len() as u64)
    }

    async fn marker_once(
        &self,
        vid: &str,
        cleanup: Option<bool>,
        sleep: Option<&QueueSleep>,
        now: Timestamp,
    ) -> Result<(), Fail> {
        let mut tx = self.begin().await?;
        let mut delta = Delta::default();
        if let Some(flag) = cleanup {
            if !flag {
                let exists: Option<i16> =
                    sqlx::query_scalar("SELECT kind FROM queue_summary WHERE kind = 2 AND container = $1")
                        .bind(vid)
                        .fetch_optional(&mut *tx)
                        .await?;
                if exists.is_none() {
                    tx.rollback().await.ok();
                    return Ok(());
                }
            }
            delta.set_cleanup(vid, flag);
        }
        if let Some(s) = sleep {
            delta.set_sleep(vid, &s.disk_system, s.until);
        }
        delta.apply(&mut tx, now).await?;
        Self::commit(tx).await
    }

    async fn drain_once(&self, vid: &str, now: Timestamp, router: &dyn RetrieveRouter) -> Result<DrainReport, Fail> {
        let mut tx = self.begin().await?;
        let exists: Option<i16> =
            sqlx::query_scalar("SELECT kind FROM queue_summary WHERE kind = 2 AND container = $1")
                .bind(vid)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            tx.rollback().await.ok();
            return Ok(DrainReport::default());
        }
        let rows = sqlx::query(concat!(
            "SELECT ",
            rr_cols!(),
            " FROM retrieve_request r WHERE r.active_vid = $1 AND r.queue_seq IS NOT NULL
              ORDER BY r.active_fseq, r.queue_seq FOR UPDATE SKIP LOCKED"
        ))
        .bind(vid)
        .fetch_all(&mut *tx)
        .await?;
        let mut w = Work::default();
        let mut order = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut st = retrieve_of(row)?;
            w.delta.remove(KIND_RETRIEVE, vid, st.facts());
            st.loc = Loc::idle();
            st.dirty = true;
            order.push(st.request.request_id);
            w.retrieves.insert(st.request.request_id, st);
        }
        w.delta.set_cleanup(vid, false);
        // Each move is visible to the next routing decision, as in the objectstore's drain.
        let mut view = StatsView::default();
        view.set_empty(vid);
        let mut report = DrainReport::default();
        for id in order {
            let request = w.retrieves[&id].request.clone();
            let chosen = view.route(&mut tx, &request, router).await?.filter(|v| v != vid);
            let st = w.retrieves.get_mut(&id).expect("loaded");
            match chosen {
                Some(v) => {
                    view.add(&v, request.size, request.policy.priority);
                    st.request.active_vid = v;
                    w.enqueue_retrieve(id);
                    report.requeued += 1;
                }
                None => {
                    st.request.status = RetrieveStatus::ToReportForFailure;
                    st.request
                        .failure_reasons
                        .push(format!("tape {vid:?} left service and no other copy can be recalled"));
                    report.failed += 1;
                }
            }
        }
        w.write(&mut tx, now).await?;
        Self::commit(tx).await?;
        Ok(report)
    }

    async fn reports_due_once(&self, filter: ReportFilter, max: u64) -> Result<Vec<ReportJob>, Fail> {
        let mut conn = self.pool.acquire().await?;
        let limit = max.min(i64::MAX as u64) as i64;
        let rows = sqlx::query(
            "SELECT afid, kind, id, status, url FROM (
                 SELECT DISTINCT ON (j.archive_file_id) j.archive_file_id AS afid, 0 AS kind, j.archive_file_id AS id,
                        j.status, CASE WHEN j.status = 1 THEN r.report_url ELSE r.error_report_url END AS url
                 FROM archive_job j JOIN archive_request r ON r.archive_file_id = j.archive_file_id
                 WHERE j.status IN (1, 2) AND $1
                 ORDER BY j.archive_file_id, j.position
             ) a
             UNION ALL
             SELECT archive_file_id, 1, request_id, status,
                    CASE WHEN status = 1 THEN report_url ELSE error_report_url END
             FROM retrieve_request WHERE status IN (1, 2) AND $2
             ORDER BY afid, kind, id
             LIMIT $3",
        )
        .bind(filter != ReportFilter::Retrieve)
        .bind(filter != ReportFilter::Archive)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let afid = row.try_get::<i64, _>("afid")? as u64;
            let id = row.try_get::<i64, _>("id")? as u64;
            let kind: i32 = row.try_get("kind")?;
            out.push(ReportJob {
                request: if kind == 0 { RequestId::Archive(id) } else { RequestId::Retrieve(id) },
                archive_file_id: afid,
                outcome: if row.try_get::<i16, _>("status")? == 1 { Outcome::Success } else { Outcome::Failure },
                url: row.try_get("url")?,
            });
        }
        Ok(out)
    }

    async fn reports_once(&self, reports: &[RequestId], failed: Option<&str>, now: Timestamp) -> Result<(), Fail> {
        let mut tx = self.begin().await?;
        let mut w = Work::default();
        let afids: Vec<u64> = reports
            .iter()
            .filter_map(|r| match r {
                RequestId::Archive(a) => Some(*a),
                _ => None,
            })
            .collect();
        let rids: Vec<u64> = reports
            .iter()
            .filter_map(|r| match r {
                RequestId::Retrieve(i) => Some(*i),
                _ => None,
            })
            .collect();
        w.load_archives(&mut tx, &afids).await?;
        w.load_retrieves(&mut tx, &rids).await?;
        for r in reports {
            match *r {
                RequestId::Archive(afid) => {
                    if w.delete_archives.contains(&afid) {
                        continue;
                    }
                    let Some(st) = w.archives.get_mut(&afid) else { continue };
                    let Some(i) = st.request.jobs.iter().position(|j| {
                        matches!(j.status, ArchiveJobStatus::ToReportForTransfer | ArchiveJobStatus::ToReportForFailure)
                    }) else {
                        continue;
                    };
                    match failed {
                        None => {
                            if st.request.jobs[i].status == ArchiveJobStatus::ToReportForTransfer {
                                w.delete_archives.insert(afid);
                            } else {
                                st.request.jobs[i].status = ArchiveJobStatus::Failed;
                                st.dirty_jobs.insert(i);
                            }
                        }
                        Some(reason) => {
                            let job = &mut st.request.jobs[i];
                            job.failure_reasons.push(format!("report failed: {reason}"));
                            if rules::on_report_failure(&mut job.retries) {
                                job.status = ArchiveJobStatus::Failed;
                            }
                            st.dirty_jobs.insert(i);
                        }
                    }
                }
                RequestId::Retrieve(id) => {
                    if w.delete_retrieves.contains(&id) {
                        continue;
                    }
                    let Some(st) = w.retrieves.get_mut(&id) else { continue };
                    if !matches!(
                        st.request.status,
                        RetrieveStatus::ToReportForTransfer | RetrieveStatus::ToReportForFailure
                    ) {
                        continue;
                    }
                    match failed {
                        None if st.request.status == RetrieveStatus::ToReportForFailure => {
                            // A delivered failure report keeps the request in the failed list.
                            st.request.status = RetrieveStatus::Failed;
                            st.dirty = true;
                        }
                        None => {
                            w.delete_retrieves.insert(id);
                        }
                        Some(reason) => {
                            st.request.failure_reasons.push(format!("report failed: {reason}"));
                            let give_up = match st.request.active_copy_mut() {
                                Some(c) => rules::on_report_failure(&mut c.retries),
                                None => true,
                            };
                            if give_up {
                                st.request.status = RetrieveStatus::Failed;
                            }
                            st.dirty = true;
                        }
                    }
                }
            }
        }
        w.write(&mut tx, now).await?;
        Self::commit(tx).await
    }

    async fn list_pending_once(&self, kind: JobKind, queue: Option<&str>) -> Result<Vec<PendingJob>, Fail> {
        let mut conn = self.pool.acquire().await?;
        let rows =
            match kind {
                JobKind::Archive => {
                    sqlx::query(
                        "SELECT archive_file_id AS afid, archive_file_id AS id, copy_nb, tape_pool AS queue, size
                     FROM archive_job WHERE queue_seq IS NOT NULL AND ($1::text IS NULL OR tape_pool = $1)
                     ORDER BY tape_pool, queue_seq",
                    )
                    .bind(queue)
                    .fetch_all(&mut *conn)
                    .await?
                }
                JobKind::Retrieve => sqlx::query(
                    "SELECT archive_file_id AS afid, request_id AS id, active_copy_nb AS copy_nb, active_vid AS queue,
                            size
                     FROM retrieve_request WHERE queue_seq IS NOT NULL AND ($1::text IS NULL OR active_vid = $1)
                     ORDER BY active_vid, active_fseq, queue_seq",
                )
                .bind(queue)
                .fetch_all(&mut *conn)
                .await?,
            };
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row.try_get::<i64, _>("id")? as u64;
            out.push(PendingJob {
                job: JobId {
                    request: match kind {
                        JobKind::Archive => RequestId::Archive(id),
                        JobKind::Retrieve => RequestId::Retrieve(id),
                    },
                    copy_nb: row.try_get::<i32, _>("copy_nb")? as u32,
                },
                archive_file_id: row.try_get::<i64, _>("afid")? as u64,
                queue: row.try_get("queue")?,
                size: row.try_get::<i64, _>("size")? as u64,
            });
        }
        Ok(out)
    }
}

#[async_trait]
impl SchedulerDb for PgSchedulerDb {
    fn name(&self) -> String {
        "postgres".into()
    }

    async fn ping(&self) -> Result<()> {
        retry(self.config.max_attempts, || async move {
            let mut conn = self.pool.acquire().await?;
            sqlx::query("SELECT 1 FROM queue_summary LIMIT 1").execute(&mut *conn).await?;
            Ok(())
        })
        .await
    }

    async fn queue_archive(&self, request: ArchiveRequest, now: Timestamp) -> Result<()> {
        self.queue_archive_batch(std::slice::from_ref(&request), now).await?.pop().unwrap_or(Ok(()))
    }

    async fn queue_archives(&self, requests: Vec<ArchiveRequest>, now: Timestamp) -> Vec<Result<()>> {
        match self.queue_archive_batch(&requests, now).await {
            Ok(answers) => answers,
            Err(e) => requests.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    async fn queue_retrieve(&self, request: RetrieveRequest, now: Timestamp) -> Result<()> {
        if request.active_copy().is_none() {
            return Err(Error::invalid(format!(
                "retrieve request {} targets tape {:?}, which holds none of its copies",
                request.request_id, request.active_vid
            )));
        }
        retry(self.config.max_attempts, || self.queue_retrieve_once(&request, now)).await
    }

    async fn retrieve_queue_stats(&self, vids: &[String]) -> Result<Vec<QueueStats>> {
        retry(self.config.max_attempts, || async move {
            let mut tx = self.begin().await?;
            let mut view = StatsView::default();
            view.load(&mut tx, vids).await?;
            tx.rollback().await.ok();
            Ok(view.stats(vids))
        })
        .await
    }

    async fn cancel_archive(&self, archive_file_id: u64, now: Timestamp) -> Result<()> {
        retry(self.config.max_attempts, || self.cancel_archive_once(archive_file_id, now)).await
    }

    async fn cancel_retrieve(&self, archive_file_id: u64, dst_url: Option<&str>, now: Timestamp) -> Result<u64> {
        retry(self.config.max_attempts, || self.cancel_retrieve_once(archive_file_id, dst_url, now)).await
    }

    async fn mount_info(&self, _now: Timestamp) -> Result<MountInfo> {
        retry(self.config.max_attempts, || async move {
            let mut conn = self.pool.acquire().await?;
            self.read_mount_info(&mut conn).await
        })
        .await
    }

    async fn next_mount(
        &self,
        logical_library: &str,
        now: Timestamp,
        decide: &DecideFn<'_>,
    ) -> Result<Option<(MountId, MountSpec)>> {
        retry(self.config.max_attempts, || self.next_mount_once(logical_library, now, decide)).await
    }

    async fn open_mount(&self, mount: MountId, spec: &MountSpec, now: Timestamp) -> Result<()> {
        retry(self.config.max_attempts, || self.open_mount_once(mount, spec, now)).await
    }

    async fn pop_jobs(&self, mount: MountId, max_files: u64, max_bytes: u64, now: Timestamp) -> Result<Vec<MountJob>> {
        retry(self.config.max_attempts, || self.pop_once(mount, max_files, max_bytes, now)).await
    }

    async fn claim_jobs(&self, mount: MountId, jobs: &[JobId], now: Timestamp) -> Result<Vec<MountJob>> {
        retry(self.config.max_attempts, || self.claim_once(mount, jobs, now)).await
    }

    async fn transfers_succeeded(&self, mount: MountId, jobs: &[TransferSuccess], now: Timestamp) -> Result<()> {
        retry(self.config.max_attempts, || self.succeeded_once(mount, jobs, now)).await
    }

    async fn transfers_failed(
        &self,
        mount: MountId,
        jobs: &[JobId],
        reason: &str,
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<()> {
        retry(self.config.max_attempts, || self.failed_once(mount, jobs, reason, now, router)).await
    }

    async fn requeue_jobs(
        &self,
        mount: MountId,
        jobs: &[JobId],
        now: Timestamp,
        _router: &dyn RetrieveRouter,
    ) -> Result<u64> {
        retry(self.config.max_attempts, || self.requeue_once(mount, jobs, now)).await
    }

    async fn end_mount(&self, mount: MountId, now: Timestamp, router: &dyn RetrieveRouter) -> Result<u64> {
        retry(self.config.max_attempts, || self.end_mount_once(mount, now, router)).await
    }

    async fn abandon_mount(&self, mount: MountId, now: Timestamp) -> Result<()> {
        retry(self.config.max_attempts, || async move {
            let mut tx = self.begin().await?;
            let n = sqlx::query(
                "UPDATE mount SET abandoned = true, heartbeat = greatest(heartbeat, $2) WHERE mount_id = $1",
            )
            .bind(mount as i64)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Err(Fail::Fatal(Error::not_found(format!("mount {mount} does not exist or has ended"))));
            }
            Self::commit(tx).await
        })
        .await
    }

    async fn heartbeat(&self, mount: Option<MountId>, now: Timestamp) -> Result<()> {
        let Some(mount) = mount else { return Ok(()) };
        retry(self.config.max_attempts, || async move {
            let mut tx = self.begin().await?;
            Self::touch_mount(&mut tx, mount, now).await?;
            Self::commit(tx).await
        })
        .await
    }

    async fn garbage_collect(&self, now: Timestamp, router: &dyn RetrieveRouter) -> Result<u64> {
        let requeued = retry(self.config.max_attempts, || self.gc_once(now, router)).await?;
        retry(self.config.max_attempts, || self.prune_summary_tombstones()).await?;
        Ok(requeued)
    }

    async fn sleep_retrieve_queue(&self, vid: &str, sleep: QueueSleep, now: Timestamp) -> Result<()> {
        retry(self.config.max_attempts, || self.marker_once(vid, None, Some(&sleep), now)).await
    }

    async fn reports_due(&self, filter: ReportFilter, max: u64, _now: Timestamp) -> Result<Vec<ReportJob>> {
        retry(self.config.max_attempts, || self.reports_due_once(filter, max)).await
    }

    async fn reports_delivered(&self, reports: &[RequestId], now: Timestamp) -> Result<()> {
        retry(self.config.max_attempts, || self.reports_once(reports, None, now)).await
    }

    async fn reports_failed(&self, reports: &[RequestId], reason: &str, now: Timestamp) -> Result<()> {
        retry(self.config.max_attempts, || self.reports_once(reports, Some(reason), now)).await
    }

    async fn set_cleanup_flag(&self, vid: &str, flag: bool, now: Timestamp) -> Result<()> {
        retry(self.config.max_attempts, || self.marker_once(vid, Some(flag), None, now)).await
    }

    async fn cleanup_flagged(&self) -> Result<Vec<String>> {
        retry(self.config.max_attempts, || async move {
            let mut conn = self.pool.acquire().await?;
            let v: Vec<String> =
                sqlx::query_scalar("SELECT container FROM queue_summary WHERE kind = 2 AND cleanup ORDER BY container")
                    .fetch_all(&mut *conn)
                    .await?;
            Ok(v)
        })
        .await
    }

    async fn drain_retrieve_queue(
        &self,
        vid: &str,
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<DrainReport> {
        retry(self.config.max_attempts, || self.drain_once(vid, now, router)).await
    }

    async fn list_pending(&self, kind: JobKind, queue: Option<&str>) -> Result<Vec<PendingJob>> {
        retry(self.config.max_attempts, || self.list_pending_once(kind, queue)).await
    }

    async fn list_failed(&self, kind: JobKind) -> Result<Vec<u64>> {
        retry(self.config.max_attempts, || async move {
            let mut conn = self.pool.acquire().await?;
            let ids: Vec<i64> = match kind {
                JobKind::Archive => {
                    sqlx::query_scalar("SELECT DISTINCT archive_file_id FROM archive_job WHERE status = 4 ORDER BY 1")
                        .fetch_all(&mut *conn)
                        .await?
                }
                JobKind::Retrieve => {
                    sqlx::query_scalar(
                        "SELECT DISTINCT archive_file_id FROM retrieve_request WHERE status = 3 ORDER BY 1",
                    )
                    .fetch_all(&mut *conn)
                    .await?
                }
            };
            Ok(ids.into_iter().map(|i| i as u64).collect())
        })
        .await
    }
}

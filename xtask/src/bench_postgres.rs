//! `cargo xtask bench --backend postgres`: throughput and latency of the PostgreSQL backend,
//! each beside the substrate limit measured in the same run, printed as JSON on stdout.
//!
//! Runs on the server the project's service discovery finds (`TAPESCHED_DATABASE_URL`, else
//! 127.0.0.1:5432, else a throw-away cluster), in schemas of its own that are dropped at the end
//! (on failure and on SIGINT/SIGTERM too), with the server's durability settings (reported:
//! `synchronous_commit`, `fsync`).
//!
//! - queueing: concurrent producers store archive requests with `queue_archives` (1000 per
//!   call); substrate: the same rows (request + job) written by the same number of producers with
//!   `COPY` and with multi-row `INSERT` into plain tables of the same shape (no index, no key);
//! - claiming: drive sessions pop 4000-job batches (`pop_jobs`, the mount's opening included),
//!   each session emptying queues no other session works on (as drives sent to different
//!   queues), then once more with every session working through every queue (sessions meet on
//!   the same queue); substrate: the same number of sessions updating the same number of job
//!   rows by key (`UPDATE ... FROM unnest(ids)`, the columns a claim sets) in 4000-row
//!   transactions, in a table of the job table's shape (its indexes included); `COPY` of the
//!   job rows (same sessions, no index) stays as a second reference;
//! - dead-mount requeue: the sessions are abandoned and one collection pass puts every held job
//!   back (`garbage_collect`); substrates as for claims. Claiming, requeueing and the update
//!   substrate run `rounds` rounds over the same rows; the medians are reported with every round
//!   (on a server without autovacuum, a `VACUUM` between rounds stands in for it);
//! - mount decision: see [`crate::decision_postgres`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tapesched_postgres::sqlx::{self, Row};
use tapesched_postgres::{PgConfig, PgSchedulerDb};
use tapesched_scheduler::db::{QueueStats, RetrieveRouter, SchedulerDb};
use tapesched_scheduler::types::*;

use crate::decision_set::DecisionSet;
use crate::measure::{median, rate, ratio};
use crate::repack_decision::RepackWork;
use crate::repack_expansion::{Expansion, Target};
use tapesched_testkit::workload::archive_mount;

/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Queueing, claiming and requeueing are measured (`--scale` measures the decision only).
    pub throughput: bool,
    /// Requests queued (and then claimed, then requeued).
    pub requests: u64,
    /// Concurrent producers.
    pub producers: u64,
    /// Requests per `queue_archives` call.
    pub producer_batch: u64,
    /// Concurrent drive sessions while claiming.
    pub sessions: u64,
    /// Jobs per claim.
    pub claim_batch: u64,
    /// Rounds of claiming, requeueing and the update substrate.
    pub rounds: u64,
    /// The decision data set.
    pub decision: DecisionSet,
    /// Timed decisions (and as many of the breakdown and of the substrate).
    pub decision_samples: usize,
    /// Repack work queued beside the decision set for a second timed run of the decisions.
    pub repack_work: Option<RepackWork>,
    /// The repack expansion benchmark ([`crate::repack_expansion`]).
    pub expansion: Option<Expansion>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            throughput: true,
            requests: 200_000,
            producers: 8,
            producer_batch: 1000,
            sessions: 4,
            claim_batch: 4000,
            rounds: 3,
            decision: DecisionSet::DEFAULT,
            decision_samples: 200,
            repack_work: Some(RepackWork::DEFAULT),
            expansion: Some(Expansion::DEFAULT),
        }
    }
}

impl Options {
    /// `--quick`: a small run through every measured path (a smoke test, not a measurement).
    pub fn quick() -> Self {
        Options {
            requests: 16_000,
            rounds: 2,
            decision: DecisionSet::QUICK,
            decision_samples: 20,
            repack_work: Some(RepackWork::QUICK),
            expansion: Some(Expansion::QUICK),
            ..Options::default()
        }
    }
    /// `--scale`: the decision alone, at 10 M queued jobs.
    pub fn scale() -> Self {
        Options {
            throughput: false,
            decision: DecisionSet::SCALE,
            decision_samples: 100,
            repack_work: None,
            expansion: None,
            ..Options::default()
        }
    }
}

/// Creation times count from here.
pub const T0: i64 = 1_700_000_000;
/// Tape pools the requests go to.
pub const POOLS: u64 = 16;

struct NoRoute;
impl RetrieveRouter for NoRoute {
    fn candidates(&self, r: &RetrieveRequest) -> Vec<String> {
        vec![r.active_vid.clone()]
    }
    fn choose(&self, r: &RetrieveRequest, _: &[QueueStats]) -> Option<String> {
        Some(r.active_vid.clone())
    }
}

/// Queues requests `1..=n` ([`request`]), `batch` per `queue_archives` call, with one producer
/// task per handle in `producers` (producer `p` takes the ids equal to `p` modulo their number).
pub async fn queue_requests(producers: Vec<Arc<dyn SchedulerDb>>, n: u64, batch: u64) -> Result<()> {
    let count = producers.len() as u64;
    let mut tasks = Vec::new();
    for (p, db) in producers.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            let mine: Vec<u64> = (1..=n).filter(|id| id % count == p as u64).collect();
            for chunk in mine.chunks(batch as usize) {
                for a in db.queue_archives(chunk.iter().map(|id| request(*id)).collect(), T0).await {
                    a?;
                }
            }
            Ok::<(), tapesched_scheduler::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Pops batches of `batch` jobs for `mount` until its queue is empty; returns the jobs popped.
pub async fn pop_all(db: &dyn SchedulerDb, mount: MountId, batch: u64) -> tapesched_scheduler::Result<u64> {
    let mut popped = 0;
    loop {
        let got = db.pop_jobs(mount, batch, u64::MAX, T0).await?.len() as u64;
        if got == 0 {
            return Ok(popped);
        }
        popped += got;
    }
}

/// Archive request `id` of the throughput benchmarks (pool `id % POOLS`; the bridge's too).
pub fn request(id: u64) -> ArchiveRequest {
    ArchiveRequest {
        archive_file_id: id,
        disk_instance: "eos".into(),
        disk_file_id: format!("{id:#x}"),
        requester: Requester { name: "user".into(), group: "group".into() },
        storage_class: "sc".into(),
        size: 1_000_000 + id % 1000,
        created_at: T0 + (id % 3600) as i64,
        report_url: Some(format!("eos://instance/report/{id}")),
        error_report_url: Some("eos://instance/error".into()),
        policy: QueuedPolicy { name: format!("policy{}", id % 4), priority: id % 4, min_request_age: 60 },
        jobs: vec![ArchiveJob::new(1, format!("pool{}", id % POOLS))],
        report_decided: false,
        repack: None,
    }
}

fn escape_copy(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\t', "\\t").replace('\n', "\\n")
}

/// Text `COPY` lines of a request row and its job row, in the plain tables' column order.
fn copy_lines(id: u64) -> (String, String) {
    let r = request(id);
    let j = &r.jobs[0];
    let req = format!(
        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\tf\t1\n",
        id,
        r.disk_instance,
        escape_copy(&r.disk_file_id),
        r.requester.name,
        r.requester.group,
        r.storage_class,
        r.size,
        r.created_at,
        escape_copy(r.report_url.as_deref().unwrap_or("")),
        escape_copy(r.error_report_url.as_deref().unwrap_or("")),
        r.policy.name,
        r.policy.priority,
        r.policy.min_request_age
    );
    let job = format!("{}\t1\t0\t{}\t0\t{}\t{}\t{}\n", id, j.tape_pool, r.size, r.created_at, id);
    (req, job)
}

const PLAIN_REQUEST_COLS: &str = "archive_file_id, disk_instance, disk_file_id, requester_name, requester_group, \
    storage_class, size, created_at, report_url, error_report_url, policy_name, priority, min_request_age, \
    report_decided, copies";
const PLAIN_JOB_COLS: &str = "archive_file_id, copy_nb, position, tape_pool, status, size, created_at, queue_seq";

/// Writes rows of `ids` with COPY (`copy`) or multi-row INSERT, `producers` at a time, one
/// transaction per batch; `with_requests`: request and job rows, else job rows only.
async fn substrate(
    db: &PgSchedulerDb,
    ids: u64,
    producers: u64,
    batch: u64,
    copy: bool,
    with_requests: bool,
) -> Result<Duration> {
    sqlx::query("TRUNCATE plain_request, plain_job").execute(db.pool()).await?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let pool = db.pool().clone();
        tasks.push(tokio::spawn(async move {
            let mine: Vec<u64> = (1..=ids).filter(|id| id % producers == p).collect();
            for chunk in mine.chunks(batch as usize) {
                let mut tx = pool.begin().await?;
                if copy {
                    let (mut reqs, mut jobs) = (String::new(), String::new());
                    for id in chunk {
                        let (r, j) = copy_lines(*id);
                        reqs.push_str(&r);
                        jobs.push_str(&j);
                    }
                    if with_requests {
                        let mut c = tx
                            .copy_in_raw(
                                "COPY plain_request (archive_file_id, disk_instance, disk_file_id, requester_name, \
                                 requester_group, storage_class, size, created_at, report_url, error_report_url, \
                                 policy_name, priority, min_request_age, report_decided, copies) FROM STDIN",
                            )
                            .await?;
                        c.send(reqs.into_bytes()).await?;
                        c.finish().await?;
                    }
                    let mut c = tx
                        .copy_in_raw(
                            "COPY plain_job (archive_file_id, copy_nb, position, tape_pool, status, size, created_at, \
                             queue_seq) FROM STDIN",
                        )
                        .await?;
                    c.send(jobs.into_bytes()).await?;
                    c.finish().await?;
                } else {
                    let reqs: Vec<ArchiveRequest> = chunk.iter().map(|id| request(*id)).collect();
                    if with_requests {
                        let mut qb =
                            sqlx::QueryBuilder::new(format!("INSERT INTO plain_request ({PLAIN_REQUEST_COLS}) "));
                        qb.push_values(&reqs, |mut b, r| {
                            b.push_bind(r.archive_file_id as i64)
                                .push_bind(r.disk_instance.clone())
                                .push_bind(r.disk_file_id.clone())
                                .push_bind(r.requester.name.clone())
                                .push_bind(r.requester.group.clone())
                                .push_bind(r.storage_class.clone())
                                .push_bind(r.size as i64)
                                .push_bind(r.created_at)
                                .push_bind(r.report_url.clone())
                                .push_bind(r.error_report_url.clone())
                                .push_bind(r.policy.name.clone())
                                .push_bind(r.policy.priority as i64)
                                .push_bind(r.policy.min_request_age as i64)
                                .push_bind(false)
                                .push_bind(1i32);
                        });
                        qb.build().execute(&mut *tx).await?;
                    }
                    let mut qb = sqlx::QueryBuilder::new(format!("INSERT INTO plain_job ({PLAIN_JOB_COLS}) "));
                    qb.push_values(&reqs, |mut b, r| {
                        b.push_bind(r.archive_file_id as i64)
                            .push_bind(1i32)
                            .push_bind(0i32)
                            .push_bind(r.jobs[0].tape_pool.clone())
                            .push_bind(0i16)
                            .push_bind(r.size as i64)
                            .push_bind(r.created_at)
                            .push_bind(r.archive_file_id as i64);
                    });
                    qb.build().execute(&mut *tx).await?;
                }
                tx.commit().await?;
            }
            Ok::<(), sqlx::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(start.elapsed())
}

async fn show(db: &PgSchedulerDb, setting: &'static str) -> Result<String> {
    let row = sqlx::query("SELECT current_setting($1) AS v").bind(setting).fetch_one(db.pool()).await?;
    Ok(row.get("v"))
}

/// The update-by-key substrate of claims and requeues: `opts.sessions` sessions set the columns
/// a claim sets on `n` job rows, chosen by key (`UPDATE ... FROM unnest(ids)`), one transaction
/// per `opts.claim_batch` rows, each session working through the pools no other session works
/// on (as claiming sessions do). The table has the job table's shape: its columns, fill factor,
/// checks, primary key and indexes (so the same index entries change), filled from `plain_job`
/// (queued rows). Between rounds the rows are put back as a requeue leaves them (not timed;
/// then `VACUUM` on a server without autovacuum), so that each round starts from the state a
/// claiming round starts from. Returns the rate of each round.
async fn update_substrate(db: &Arc<PgSchedulerDb>, opts: &Options, autovacuum: bool) -> Result<Vec<f64>> {
    let n = opts.requests;
    sqlx::raw_sql(
        "CREATE TABLE keyed_job (LIKE archive_job INCLUDING ALL) WITH (fillfactor = 90);
         INSERT INTO keyed_job SELECT * FROM plain_job",
    )
    .execute(db.pool())
    .await?;
    sqlx::query("VACUUM ANALYZE keyed_job").execute(db.pool()).await?;
    let mut rates = Vec::new();
    for round in 0..opts.rounds {
        eprintln!(
            "substrate: updating {n} job rows by key ({} sessions, batches of {})",
            opts.sessions, opts.claim_batch
        );
        let start = Instant::now();
        let mut tasks = Vec::new();
        for s in 0..opts.sessions {
            let (pool, sessions, batch) = (db.pool().clone(), opts.sessions, opts.claim_batch as usize);
            tasks.push(tokio::spawn(async move {
                let mut updated = 0u64;
                for p in (0..POOLS).filter(|p| p % sessions == s) {
                    let ids: Vec<i64> = (1..=n).filter(|id| id % POOLS == p).map(|id| id as i64).collect();
                    for (k, chunk) in ids.chunks(batch).enumerate() {
                        let mut tx = pool.begin().await?;
                        updated += sqlx::query(
                            "UPDATE keyed_job j
                             SET queue_seq = NULL, mount_id = $2, owned_op = $3, owned_rank = w.rank::int4,
                                 times_claimed = j.times_claimed + 1
                             FROM unnest($1::int8[]) WITH ORDINALITY AS w(id, rank)
                             WHERE j.archive_file_id = w.id AND j.copy_nb = 1",
                        )
                        .bind(chunk)
                        .bind((round * 1000 + s) as i64)
                        .bind(k as i64)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                        tx.commit().await?;
                    }
                }
                Ok::<u64, sqlx::Error>(updated)
            }));
        }
        let mut updated = 0;
        for t in tasks {
            updated += t.await??;
        }
        rates.push(rate(updated, start.elapsed()));
        anyhow::ensure!(updated == n, "updated {updated} of {n} rows");
        sqlx::query(
            "UPDATE keyed_job SET mount_id = NULL, owned_op = NULL, owned_rank = NULL, queue_seq = archive_file_id",
        )
        .execute(db.pool())
        .await?;
        if !autovacuum {
            sqlx::query("VACUUM ANALYZE keyed_job").execute(db.pool()).await?;
        }
    }
    sqlx::query("DROP TABLE keyed_job").execute(db.pool()).await?;
    Ok(rates)
}

/// The schemas of a run, all new and dropped by the caller.
pub struct Schemas<'a> {
    /// Queueing, claiming, requeueing.
    pub throughput: &'a str,
    /// The mount decision (and the repack work beside it).
    pub decision: &'a str,
    /// The repack expansion's catalogue.
    pub repack_catalogue: &'a str,
    /// The repack expansion's scheduler tables.
    pub repack: &'a str,
    /// A second copy of the decision data set, with the repack work queued beside it.
    pub decision_with_repack: &'a str,
}

/// Runs the benchmark in `schemas`; the JSON document it returns is what `cargo xtask bench`
/// prints.
pub async fn run(url: &str, schemas: Schemas<'_>, opts: Options) -> Result<Value> {
    let (schema, decision_schema) = (schemas.throughput, schemas.decision);
    let mut report = json!({"backend": "postgres"});
    {
        let db = PgSchedulerDb::connect(PgConfig::new(url, schema)).await.context("connecting")?;
        let version: String = sqlx::query_scalar("SELECT version()").fetch_one(db.pool()).await?;
        let settings = json!({
            "synchronous_commit": show(&db, "synchronous_commit").await?,
            "fsync": show(&db, "fsync").await?,
            "autovacuum": show(&db, "autovacuum").await?,
            "shared_buffers": show(&db, "shared_buffers").await?,
        });
        report["server"] = json!(version);
        report["settings"] = settings;
        db.pool().close().await;
    }
    if opts.throughput {
        let throughput = throughput(url, schema, &opts).await?;
        for (k, v) in throughput.as_object().expect("an object") {
            report[k] = v.clone();
        }
    }
    report["mount_decision"] = crate::decision_postgres::run(
        url,
        [decision_schema, schemas.decision_with_repack],
        opts.decision,
        opts.decision_samples,
        opts.repack_work,
    )
    .await?;
    if let Some(size) = opts.expansion {
        let target = Target::Postgres { url, schema: schemas.repack };
        report["repack_expansion"] = crate::repack_expansion::run(url, schemas.repack_catalogue, target, size).await?;
    }
    Ok(report)
}

/// Queueing, claiming and requeueing with their substrates.
async fn throughput(url: &str, schema: &str, opts: &Options) -> Result<Value> {
    let connections = (opts.producers.max(opts.sessions) + 2) as u32;
    let config = PgConfig { max_connections: connections, ..PgConfig::new(url, schema) };
    let db = Arc::new(PgSchedulerDb::connect(config).await.context("connecting")?);
    let autovacuum = show(&db, "autovacuum").await? == "on";
    sqlx::query("CREATE TABLE plain_request (LIKE archive_request INCLUDING DEFAULTS)").execute(db.pool()).await?;
    sqlx::query("CREATE TABLE plain_job (LIKE archive_job INCLUDING DEFAULTS)").execute(db.pool()).await?;
    let n = opts.requests;

    // Substrates: the same rows, the same producers and batches, no scheduler logic.
    eprintln!("substrate: COPY and multi-row INSERT of {n} request rows and job rows");
    let copy_both = substrate(&db, n, opts.producers, opts.producer_batch, true, true).await?;
    let insert_both = substrate(&db, n, opts.producers, opts.producer_batch, false, true).await?;
    eprintln!("substrate: COPY of {n} job rows");
    let copy_jobs = substrate(&db, n, opts.sessions, opts.claim_batch, true, false).await?;
    let update_rates = update_substrate(&db, opts, autovacuum).await?;
    sqlx::query("DROP TABLE plain_request, plain_job").execute(db.pool()).await?;
    let (copy_both, insert_both, copy_jobs) = (rate(n, copy_both), rate(n, insert_both), rate(n, copy_jobs));
    let update = median(&update_rates);

    // Queueing.
    eprintln!("queueing {n} archive requests with {} producers", opts.producers);
    let producers = (0..opts.producers).map(|_| db.clone() as Arc<dyn SchedulerDb>).collect();
    let start = Instant::now();
    queue_requests(producers, n, opts.producer_batch).await?;
    let queued = start.elapsed();
    let queued_rate = rate(n, queued);

    // Claiming, then dead-mount requeue, `rounds` times over the same jobs (the requeue puts
    // them back): the medians are reported, with every round's rate. Then one more claiming
    // round with every session on every queue.
    let (mut claim_rates, mut requeue_rates) = (Vec::new(), Vec::new());
    let mut mounts = 0;
    for round in 0..opts.rounds {
        claim_rates.push(claim_round(&db, opts, round, Sharing::OwnQueues).await?);
        let (rate, m) = requeue_round(&db, n).await?;
        requeue_rates.push(rate);
        mounts = m;
        // Each round leaves two dead versions of every job row; a server that runs autovacuum
        // clears them between rounds of this size. This one may not: vacuum here (not timed).
        if !autovacuum {
            sqlx::query("VACUUM (ANALYZE) archive_job, archive_request, queue_summary, mount_claim")
                .execute(db.pool())
                .await?;
        }
    }
    let same_queues_rate = claim_round(&db, opts, opts.rounds, Sharing::SameQueues).await?;
    db.pool().close().await;

    let claim_rate = median(&claim_rates);
    let requeue_rate = median(&requeue_rates);
    let jobs_substrate = json!({
        "update_by_key_per_s": update, "update_by_key_rounds_per_s": update_rates, "copy_per_s": copy_jobs,
        "sessions": opts.sessions, "batch": opts.claim_batch,
    });
    Ok(json!({
        "queueing": {
            "requests": n, "producers": opts.producers, "batch": opts.producer_batch,
            "seconds": queued.as_secs_f64(), "requests_per_s": queued_rate, "target_per_s": 50_000,
            "substrate_request_and_job_rows": {"copy_per_s": copy_both, "multirow_insert_per_s": insert_both},
            "ratio_to_copy": ratio(queued_rate, copy_both),
            "ratio_to_multirow_insert": ratio(queued_rate, insert_both),
        },
        "claiming": {
            "jobs": n, "sessions": opts.sessions, "batch": opts.claim_batch,
            "sessions_share_queues": false,
            "rounds_jobs_per_s": claim_rates, "jobs_per_s": claim_rate, "target_per_s": 100_000,
            "substrate_job_rows": jobs_substrate,
            "ratio_to_update_by_key": ratio(claim_rate, update),
            "ratio_to_copy": ratio(claim_rate, copy_jobs),
            "every_session_on_every_queue": {
                "jobs": n, "sessions": opts.sessions, "batch": opts.claim_batch, "rounds": 1,
                "jobs_per_s": same_queues_rate,
                "ratio_to_update_by_key": ratio(same_queues_rate, update),
                "ratio_to_copy": ratio(same_queues_rate, copy_jobs),
            },
        },
        "dead_mount_requeue": {
            "jobs": n, "mounts": mounts,
            "rounds_jobs_per_s": requeue_rates, "jobs_per_s": requeue_rate, "target_per_s": 10_000,
            "substrate_job_rows": "as for claiming",
            "ratio_to_update_by_key": ratio(requeue_rate, update),
            "ratio_to_copy": ratio(requeue_rate, copy_jobs),
        },
    }))
}

/// How the drive sessions of a claiming round share the queues.
#[derive(Debug, Clone, Copy)]
enum Sharing {
    /// Each session takes the next queue no session has taken yet and empties it, as drives
    /// that the scheduler sends to different queues.
    OwnQueues,
    /// Every session works through every queue, starting at its own: sessions catch up with
    /// each other and claim from the same queue at the same time (each claim passes over the
    /// rows the others have locked), and find queues that others have emptied.
    SameQueues,
}

/// One claiming round, 4000-job batches until every queue is empty, one mount per session and
/// queue. Returns jobs claimed per second.
async fn claim_round(db: &Arc<PgSchedulerDb>, opts: &Options, round: u64, sharing: Sharing) -> Result<f64> {
    let n = opts.requests;
    eprintln!(
        "claiming (round {}, {sharing:?}) with {} sessions in batches of {}",
        round + 1,
        opts.sessions,
        opts.claim_batch
    );
    let next_queue = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..opts.sessions {
        let (db, batch, next_queue) = (db.clone(), opts.claim_batch, next_queue.clone());
        tasks.push(tokio::spawn(async move {
            let mut claimed = 0u64;
            for k in 0..POOLS {
                let pool = match sharing {
                    Sharing::OwnQueues => match next_queue.fetch_add(1, Ordering::Relaxed) {
                        p if p < POOLS => p,
                        _ => break,
                    },
                    Sharing::SameQueues => (s + k) % POOLS,
                };
                let id = ((round * 1000 + s) * 100) + pool + 1;
                let spec = archive_mount(format!("B{s}"), format!("pool{pool}"), format!("d{s}"));
                db.open_mount(id, &spec, T0).await?;
                claimed += pop_all(db.as_ref(), id, batch).await?;
            }
            Ok::<u64, tapesched_scheduler::Error>(claimed)
        }));
    }
    let mut claimed = 0;
    for t in tasks {
        claimed += t.await??;
    }
    let elapsed = start.elapsed();
    anyhow::ensure!(claimed == n, "claimed {claimed} of {n} jobs");
    Ok(rate(claimed, elapsed))
}

/// One dead-mount requeue: every session dies; one collection pass. Returns jobs per second and
/// the number of mounts collected.
async fn requeue_round(db: &Arc<PgSchedulerDb>, n: u64) -> Result<(f64, u64)> {
    eprintln!("requeueing {n} held jobs of dead mounts");
    let ids: Vec<i64> = sqlx::query_scalar("SELECT mount_id FROM mount").fetch_all(db.pool()).await?;
    let mount_count = ids.len() as u64;
    for id in ids {
        db.abandon_mount(id as u64, T0).await?;
    }
    let start = Instant::now();
    let requeued = db.garbage_collect(T0, &NoRoute).await?;
    let elapsed = start.elapsed();
    anyhow::ensure!(requeued == n, "requeued {requeued} of {n} jobs");
    Ok((rate(requeued, elapsed), mount_count))
}

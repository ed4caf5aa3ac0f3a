//! The mount decision on PostgreSQL, on the shared data set ([`crate::decision_set`]).
//!
//! Loading: the rows are generated on the server (`INSERT ... SELECT FROM generate_series`, the
//! three tables side by side), with the secondary indexes dropped during the load and created
//! again afterwards from the server's own definitions; then `ANALYZE`, the backend's
//! `rebuild_summaries`, and a `CHECKPOINT` (the load's WAL is not left to be written out during
//! the timed decisions). Before anything is timed, a fresh process's `mount_info` must equal
//! the data set's expected mount information.
//!
//! Timed, each after the same `ARRIVALS` archive requests queued by another process (a
//! frontend, so the deciding process has to catch up with them from the database):
//! - `next_mount_ms`: the whole `next_mount` (scheduling lock, summary catch-up, decision,
//!   recording the mount, commit);
//! - breakdown, in rounds of their own: `mount_info` (the summary catch-up) and `choose`;
//! - substrate: one transaction that takes an advisory lock, reads the summary rows of the
//!   queues that changed (by key) and inserts one mount row into a plain table: what a decision
//!   that caches summaries must do at least.

use std::time::Instant;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tapesched_postgres::sqlx::{self, Row};
use tapesched_postgres::{PgConfig, PgSchedulerDb};
use tapesched_scheduler::db::SchedulerDb;
use tapesched_scheduler::decision::{self, SchedulerConfig};

use crate::decision_set::{time_decisions, Arrivals, DecisionSet, TimedDecisions, ARRIVALS, DRIVE, LIBRARY, NOW, T0};
use crate::measure::{self, ratio, Samples};
use crate::repack_decision::RepackWork;

/// Tables the loader writes.
const TABLES: [&str; 3] = ["archive_request", "archive_job", "retrieve_request"];

/// `url` with session settings for the loader's connections (sorts of index builds and the
/// summary rebuild in memory).
fn loader_url(url: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-c%20maintenance_work_mem%3D512MB%20-c%20work_mem%3D256MB")
}

/// Loads the data set into `schema` (which must be new). Returns what the load took.
async fn load(url: &str, schema: &str, set: DecisionSet) -> Result<Value> {
    let db = PgSchedulerDb::connect(PgConfig { max_connections: 4, ..PgConfig::new(loader_url(url), schema) })
        .await
        .context("connecting the loader")?;
    let pool = db.pool();
    let start = Instant::now();
    // Secondary indexes go during the load (primary keys stay: their keys arrive in order).
    let indexes: Vec<(String, String)> = sqlx::query(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i
         WHERE i.schemaname = $1 AND i.tablename = ANY($2)
           AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                           WHERE c.connamespace = $1::regnamespace AND c.conname = i.indexname)",
    )
    .bind(schema)
    .bind(&TABLES[..])
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| Ok((r.try_get("indexname")?, r.try_get("indexdef")?)))
    .collect::<Result<_, sqlx::Error>>()?;
    for (name, _) in &indexes {
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX \"{schema}\".\"{name}\""))).execute(pool).await?;
    }
    let (half, rest) = (set.archive_jobs() as i64, set.retrieve_jobs() as i64);
    let requests = sqlx::query(
        "INSERT INTO archive_request (archive_file_id, disk_instance, disk_file_id, requester_name, requester_group,
             storage_class, size, created_at, report_url, error_report_url, policy_name, priority, min_request_age,
             report_decided, copies)
         SELECT g, 'eos', g::text, 'user', 'group', 'sc', 1000000 + g % 1000, $2 + g % 3600, 'eos://r', NULL,
                'policy' || (g % 4), g % 4, 60, false, 1
         FROM generate_series(1, $1) g",
    )
    .bind(half)
    .bind(T0)
    .execute(pool);
    let jobs = sqlx::query(
        "INSERT INTO archive_job (archive_file_id, copy_nb, position, tape_pool, status, size, created_at, queue_seq)
         SELECT g, 1, 0, 'dp' || (g % $2), 0, 1000000 + g % 1000, $3 + g % 3600, nextval('queue_seq')
         FROM generate_series(1, $1) g",
    )
    .bind(half)
    .bind(set.pools as i64)
    .bind(T0)
    .execute(pool);
    let retrieves = sqlx::query(
        "INSERT INTO retrieve_request (request_id, archive_file_id, disk_instance, requester_name, requester_group,
             size, dst_url, report_url, error_report_url, created_at, activity, verify_only, disk_system, policy_name,
             priority, min_request_age, copy_nbs, vids, fseqs, block_ids, retries_within_mount, total_retries,
             last_mount_with_failure, report_retries, active_vid, active_copy_nb, active_fseq, status, queue_seq)
         SELECT g, g, 'eos', 'user', 'group', 1000000 + g % 1000, 'root://eos/' || g, NULL, NULL, $2 + g % 3600,
                NULL, false, NULL, 'policy' || (g % 4), g % 4, 60, '{1}', ARRAY[v], ARRAY[g], '{0}', '{0}', '{0}',
                '{NULL}', '{0}', v, 1, g, 0, nextval('queue_seq')
         FROM (SELECT g, 'DV' || lpad((g % $3)::text, 6, '0') AS v FROM generate_series(1, $1) g) x",
    )
    .bind(rest)
    .bind(T0)
    .bind(set.vids as i64)
    .execute(pool);
    let (a, b, c) = tokio::join!(requests, jobs, retrieves);
    a?;
    b?;
    c?;
    let inserted = start.elapsed();
    let t = Instant::now();
    let builds = indexes.iter().map(|(_, def)| sqlx::query(sqlx::AssertSqlSafe(def.clone())).execute(pool));
    for r in futures::future::join_all(builds).await {
        r?;
    }
    let indexed = t.elapsed();
    let t = Instant::now();
    sqlx::query("ANALYZE").execute(pool).await?;
    db.rebuild_summaries(NOW).await?;
    let summarised = t.elapsed();
    // The load wrote gigabytes of WAL, which starts a checkpoint that would otherwise write it
    // out during the timed decisions (slowing their commits): take it now. Needs a superuser or
    // `pg_checkpoint`; without them the run goes on and says so.
    let checkpointed = sqlx::query("CHECKPOINT").execute(pool).await.is_ok();
    let seconds = start.elapsed().as_secs_f64();
    let rows = (2 * half + rest) as u64;
    let size: i64 = sqlx::query_scalar(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::int8 FROM pg_class c
         WHERE c.relnamespace = $1::regnamespace AND c.relkind = 'r'",
    )
    .bind(schema)
    .fetch_one(pool)
    .await?;
    db.pool().close().await;
    Ok(json!({
        "seconds": seconds, "rows": rows, "rows_per_s": (rows as f64 / seconds).round(),
        "insert_s": inserted.as_secs_f64(), "index_build_s": indexed.as_secs_f64(),
        "analyze_and_summaries_s": summarised.as_secs_f64(), "checkpoint_after_load": checkpointed,
        "schema_mib": (size as f64 / 1048576.0).round(),
        "how": "INSERT ... SELECT FROM generate_series on the server, 3 tables side by side, secondary \
                indexes built after the load",
    }))
}

/// Loads the data set into `schema` (new); returns what the load took.
pub async fn load_set(url: &str, schema: &str, set: DecisionSet) -> Result<Value> {
    load(url, schema, set).await
}

/// Runs the decision benchmark in `schemas[0]` (new, dropped by the caller's guard); with
/// `repack`, loads a second copy of the data set in `schemas[1]`, queues the repack work there
/// and times decisions on the two copies in alternation ([`crate::repack_decision`]).
pub async fn run(
    url: &str,
    schemas: [&str; 2],
    set: DecisionSet,
    samples: usize,
    repack: Option<RepackWork>,
) -> Result<Value> {
    let schema = schemas[0];
    eprintln!("decision data set: {} pools, {} VIDs, {} queued jobs (bulk load)", set.pools, set.vids, set.jobs);
    let loaded = load(url, schema, set).await?;
    let queues: i64 = {
        let db = PgSchedulerDb::connect(PgConfig::new(url, schema)).await?;
        let n = sqlx::query_scalar("SELECT count(*) FROM queue_summary").fetch_one(db.pool()).await?;
        db.pool().close().await;
        n
    };
    eprintln!("loaded: {loaded}");

    // A process's first read (nothing cached: every summary row), which must see the data set.
    let mut cold = Samples::default();
    for i in 0..5 {
        let fresh = PgSchedulerDb::connect(PgConfig::new(url, schema)).await?;
        let t = Instant::now();
        let info = fresh.mount_info(NOW).await?;
        cold.push(t.elapsed());
        if i == 0 {
            set.check(&info).context("checking the loaded data set")?;
        }
        fresh.pool().close().await;
    }
    let peak_before = measure::peak_rss_mib();
    let reset = measure::reset_peak_rss();

    let db = PgSchedulerDb::connect(PgConfig::new(url, schema)).await?;
    let frontend = PgSchedulerDb::connect(PgConfig::new(url, schema)).await?;
    sqlx::query("CREATE TABLE plain_mount (LIKE mount INCLUDING DEFAULTS INCLUDING INDEXES)")
        .execute(db.pool())
        .await?;
    let snap = set.catalogue();
    let config = SchedulerConfig::default();
    let decide = |info: &_| decision::choose(info, &snap, DRIVE, NOW, &config);
    let mut arrivals = Arrivals::new(&frontend, set);
    // The deciding process's cache starts from a full read, as after its first decision.
    db.mount_info(NOW).await?;

    let TimedDecisions { whole, read, choose, first_choice } =
        time_decisions(&db, &mut arrivals, &decide, samples).await?;

    eprintln!("{samples} substrate transactions (lock, changed summary rows by key, one insert)");
    let mut substrate = Samples::default();
    for i in 0..samples {
        let first = arrivals.arrive().await?;
        let mut changed = set.arrival_pools(first);
        changed.sort();
        changed.dedup();
        let t = Instant::now();
        let mut tx = db.pool().begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock(4242)").execute(&mut *tx).await?;
        let rows = sqlx::query(
            "SELECT kind, container, files, bytes, policies::text, oldest, youngest, sleep_disk_system, sleep_until,
                    priorities::text, min_ages::text
             FROM queue_summary WHERE kind = 0 AND container = ANY($1)",
        )
        .bind(&changed)
        .fetch_all(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO plain_mount (mount_id, mount_type, vid, tape_pool, vo, drive, logical_library, created_at,
                                      heartbeat)
             VALUES ($1, 'ArchiveForUser', 'DV000000', 'dp0', 'vo', $2, $3, $4, $4)",
        )
        .bind(i as i64)
        .bind(DRIVE)
        .bind(LIBRARY)
        .bind(NOW)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        substrate.push(t.elapsed());
        anyhow::ensure!(rows.len() == changed.len(), "read {} of {} changed summaries", rows.len(), changed.len());
    }
    eprintln!("substrate ms: {}", substrate.json());
    let memory = measure::memory_json(peak_before, reset);

    let with_repack = match repack {
        None => Value::Null,
        Some(work) => {
            // A second copy of the data set; a maintenance process queues the repack work there;
            // then decisions on the two copies in alternation, each after its own arrivals.
            let schema_b = schemas[1];
            load(url, schema_b, set).await?;
            let db_b = PgSchedulerDb::connect(PgConfig::new(url, schema_b)).await?;
            let frontend_b = PgSchedulerDb::connect(PgConfig::new(url, schema_b)).await?;
            let maintenance = PgSchedulerDb::connect(PgConfig::new(url, schema_b)).await?;
            let before = db_b.mount_info(NOW).await?;
            let queued = work.queue(&maintenance, &set).await?;
            let after = db_b.mount_info(NOW).await?;
            work.check(&set, &before, &after).context("checking the queued repack work")?;
            // As after the data set's load: statistics, and no checkpoint left for the decisions.
            sqlx::query("ANALYZE").execute(maintenance.pool()).await?;
            let _ = sqlx::query("CHECKPOINT").execute(maintenance.pool()).await;
            maintenance.pool().close().await;
            db_b.mount_info(NOW).await?;
            let mut a = crate::repack_decision::Side { db: &db, arrivals };
            let mut b = crate::repack_decision::Side { db: &db_b, arrivals: Arrivals::new(&frontend_b, set) };
            eprintln!("{samples} decisions on each copy, in alternation (without / with repack work)");
            let (without, with) = crate::repack_decision::interleaved(&mut a, &mut b, &decide, samples).await?;
            eprintln!("next_mount ms without: {}, with: {}", without.json(), with.json());
            db_b.pool().close().await;
            frontend_b.pool().close().await;
            let extra = after.potential_mounts.len() - before.potential_mounts.len();
            crate::repack_decision::report_interleaved(queued, extra, &without, &with)
        }
    };
    db.pool().close().await;
    frontend.pool().close().await;

    Ok(json!({
        "with_repack_work": with_repack,
        "pools": set.pools, "vids": set.vids, "queued_jobs": set.jobs, "queues": queues,
        "samples": samples, "arrivals_between_decisions": ARRIVALS, "load": loaded,
        "first_mount_chosen": first_choice,
        "next_mount_ms": whole.json(),
        "substrate_ms": substrate.json(),
        "ratio_substrate_to_next_mount": {
            "p50": ratio(substrate.pct(0.5), whole.pct(0.5)), "p99": ratio(substrate.pct(0.99), whole.pct(0.99)),
        },
        "breakdown_in_rounds_of_their_own": {
            "mount_info_read_ms": read.json(),
            "choose_in_memory_ms": choose.json(),
        },
        "first_mount_info_read_of_a_process_ms": cold.json_max(),
        "memory": memory,
        "target_p99_ms": 20,
        "what": "next_mount_ms: the whole next_mount (lock, catch-up with the summaries the arrivals changed, \
                 choose, recording the mount, commit), right after the arrivals; substrate_ms: one \
                 transaction taking an advisory lock, reading the changed summary rows by key and inserting \
                 one mount row; ratio: substrate time / next_mount time",
    }))
}

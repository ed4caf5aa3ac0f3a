//! `cargo xtask bench --backend postgres|objectstore-redis --taped`: a simulated day of the tape
//! daemon ([`tapesched_taped::simday`]: 100 LTO-9 drives, 400 tapes, 1 000 000 files of 2 GB
//! queued up front, 24 simulated hours, then a drain) on the backend, beside a substrate measured
//! in the same run.
//!
//! Reported: the wall time of queueing and of the day (the disk side's report pumping inside it),
//! the time split of the drives' calls ([`tapesched_taped::timing`]), this process's CPU per file
//! (the daemon runs in it; the server's CPU is not counted), mounts and files archived, the
//! machine's busy share (`/proc/stat`: this process, the server and whatever else runs), and the
//! substrate: the raw statements of the same shape on the same server, one at a time as the
//! daemon runs them:
//!
//! - PostgreSQL: the requests inserted into a plain keyed table in 10 000-row `UNNEST` inserts,
//!   then per batch of the day's size two transactions updating the batch's rows by key (the
//!   claim and the completion), then the rows deleted in 10 000-row statements (the reports);
//! - Redis: the requests written with pipelined `SET`s of 1000, then per batch two pipelines of
//!   the batch's `SET`s, then pipelined `DEL`s.
//!
//! The per-batch part is timed on a sample of batches (all of them up to 2000) and scaled to the
//! day's number of batches; the ratio is the substrate's time over the day's (queueing + run).

use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tapesched_backends::{Backend, Target};
use tapesched_postgres::sqlx;
use tapesched_taped::simday::{self, SimDay};

use crate::measure::{busy, cpu_ticks, ratio};

/// Batches of the per-batch substrate actually timed (at most).
const SAMPLE_BATCHES: u64 = 2000;

/// The size of one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The simulated day.
    pub day: SimDay,
}

impl Options {
    /// The day: 100 drives, 1 000 000 files.
    pub fn full() -> Self {
        Options { day: SimDay::hundred_drives(1_000_000) }
    }

    /// A smoke test: 10 drives, 20 tapes, 2000 files, 6 hours.
    pub fn quick() -> Self {
        Options { day: SimDay { drives: 10, tapes: 20, files: 2000, hours: 6, ..SimDay::hundred_drives(2000) } }
    }
}

/// Where the run works: the backend and its namespace (a schema, or a Redis key prefix).
pub struct Place<'a> {
    /// PostgreSQL or the objectstore on Redis.
    pub backend: Backend,
    /// The server.
    pub url: &'a str,
    /// The schema (postgres) or key prefix (Redis) of the run.
    pub namespace: &'a str,
}

/// Files per batch of the day: the daemon's default batch limits (4000 files, 80 GB).
fn batch_files(day: &SimDay) -> u64 {
    let by_bytes = tapesched_taped::config::DEFAULT_BATCH_BYTES / day.file_size.max(1);
    by_bytes.clamp(1, tapesched_taped::config::DEFAULT_BATCH_FILES)
}

/// Runs the day and its substrate; the JSON report.
pub async fn run(place: Place<'_>, opts: Options) -> Result<Value> {
    let day = opts.day;
    let target = match place.backend {
        Backend::Postgres => Target {
            database_url: Some(place.url.to_string()),
            schema: place.namespace.to_string(),
            max_connections: 4,
            process_label: "taped-bench".into(),
            ..Target::new(Backend::Postgres)
        },
        Backend::ObjectstoreRedis => Target {
            redis_url: Some(place.url.to_string()),
            redis_prefix: place.namespace.to_string(),
            process_label: "taped-bench".into(),
            ..Target::new(Backend::ObjectstoreRedis)
        },
        other => bail!("the taped benchmark runs on postgres or objectstore-redis, not {}", other.name()),
    };
    let db = tapesched_backends::open(&target).await.context("opening the backend")?;
    let dir = std::env::temp_dir().join(format!("xtask-taped-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    eprintln!(
        "taped: {} drives, {} tapes, {} files of {} bytes, {} h on {}",
        day.drives,
        day.tapes,
        day.files,
        day.file_size,
        day.hours,
        place.backend.name()
    );
    let ticks0 = cpu_ticks();
    let day_run = simday::run(&day, &place.backend.name(), db, &dir, &|l| eprintln!("taped: {l}")).await;
    let machine_busy = busy(ticks0, cpu_ticks());
    let _ = std::fs::remove_dir_all(&dir);
    let r = day_run.map_err(|e| anyhow::anyhow!("simulated day: {e}"))?;
    if !r.every_file_once {
        bail!("the simulated day did not archive every file exactly once: {r:?}");
    }
    let batch = batch_files(&day);
    let batches = (day.files as u64).div_ceil(batch);
    eprintln!("taped: substrate ({batches} batches of {batch}, {} timed)", batches.min(SAMPLE_BATCHES));
    let sub = match place.backend {
        Backend::Postgres => pg_substrate(place.url, place.namespace, day.files as u64, batch).await?,
        _ => redis_substrate(place.url, place.namespace, day.files as u64, batch).await?,
    };
    let day_seconds = r.queue_seconds + r.run_seconds;
    let sub_seconds = sub.queue + sub.per_batch * batches as f64 + sub.delete;
    let split: Vec<Value> = r
        .split
        .iter()
        .map(|l| {
            json!({
                "op": l.op, "calls": l.calls, "seconds": round3(l.seconds),
                "us_per_call": if l.calls > 0 { (l.seconds * 1e6 / l.calls as f64).round() } else { 0.0 },
            })
        })
        .collect();
    Ok(json!({
        "backend": place.backend.name(),
        "taped": {
            "drives": day.drives, "tapes": day.tapes, "files": day.files, "file_size": day.file_size,
            "simulated_hours": day.hours, "idle_ms": day.idle_ms, "batch_files": batch,
            "wall_seconds": round3(day_seconds),
            "queue_seconds": round3(r.queue_seconds),
            "run_seconds": round3(r.run_seconds),
            "report_pump_seconds": round3(r.pump_seconds),
            "cpu_per_file_us": r.cpu_per_file_us.round(),
            "run_cpu_seconds": round3(r.run_cpu_seconds),
            "queue_cpu_seconds": round3(r.queue_cpu_seconds),
            "mounts": r.mounts,
            "archived": r.archived,
            "every_file_once": r.every_file_once,
            "split": split,
            "machine_busy_share": machine_busy,
            "target_seconds": 300,
            "substrate": {
                "what": sub.what,
                "queue_seconds": round3(sub.queue),
                "per_batch_ms": round3(sub.per_batch * 1000.0),
                "batches_timed": batches.min(SAMPLE_BATCHES),
                "delete_seconds": round3(sub.delete),
                "day_seconds": round3(sub_seconds),
            },
            "ratio_substrate_to_day": ratio(sub_seconds, day_seconds),
        },
    }))
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A substrate's times: queueing (seconds), one batch (seconds), the final deletion (seconds).
struct Substrate {
    what: &'static str,
    queue: f64,
    per_batch: f64,
    delete: f64,
}

async fn pg_substrate(url: &str, schema: &str, files: u64, batch: u64) -> Result<Substrate> {
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(url).await?;
    let table = format!("\"{schema}\".taped_substrate");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE {table} (id int8 PRIMARY KEY, state int2 NOT NULL, mount int8, size int8 NOT NULL, \
         pool text NOT NULL, disk_file_id text NOT NULL)"
    )))
    .execute(&pool)
    .await?;
    let t0 = Instant::now();
    for chunk in (1..=files as i64).collect::<Vec<_>>().chunks(10_000) {
        let ids: Vec<i64> = chunk.to_vec();
        let names: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (id, state, size, pool, disk_file_id) \
             SELECT i, 0, 2000000000, 'pool_a', d FROM unnest($1::int8[], $2::text[]) AS u(i, d)"
        )))
        .bind(&ids)
        .bind(&names)
        .execute(&pool)
        .await?;
    }
    let queue = t0.elapsed().as_secs_f64();
    let timed = files.div_ceil(batch).min(SAMPLE_BATCHES);
    let t1 = Instant::now();
    for b in 0..timed {
        let ids: Vec<i64> = (b * batch + 1..=((b + 1) * batch).min(files)).map(|i| i as i64).collect();
        for (state, mount) in [(1i16, Some(b as i64)), (2, None)] {
            let mut tx = pool.begin().await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("UPDATE {table} SET state = $1, mount = $2 WHERE id = ANY($3)")))
                .bind(state)
                .bind(mount)
                .bind(&ids)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
    }
    let per_batch = t1.elapsed().as_secs_f64() / timed.max(1) as f64;
    let t2 = Instant::now();
    for start in (1..=files as i64).step_by(10_000) {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE id >= $1 AND id < $2")))
            .bind(start)
            .bind(start + 10_000)
            .execute(&pool)
            .await?;
    }
    let delete = t2.elapsed().as_secs_f64();
    sqlx::query(sqlx::AssertSqlSafe(format!("DROP TABLE {table}"))).execute(&pool).await?;
    pool.close().await;
    Ok(Substrate {
        what: "plain keyed table: 10 000-row UNNEST inserts, per batch two update-by-key transactions, \
               10 000-row deletes; one connection",
        queue,
        per_batch,
        delete,
    })
}

async fn redis_substrate(url: &str, prefix: &str, files: u64, batch: u64) -> Result<Substrate> {
    let mut con = crate::decision_objectstore::raw_connection(url).await?;
    let value = vec![b'x'; 400];
    let key = |i: u64| format!("{prefix}taped_substrate:{i}");
    let t0 = Instant::now();
    for chunk in (1..=files).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.set(key(*i), &value).ignore();
        }
        let _: Vec<redis::Value> = pipe.query_async(&mut con).await?;
    }
    let queue = t0.elapsed().as_secs_f64();
    let timed = files.div_ceil(batch).min(SAMPLE_BATCHES);
    let t1 = Instant::now();
    for b in 0..timed {
        for _ in 0..2 {
            let mut pipe = redis::pipe();
            for i in b * batch + 1..=((b + 1) * batch).min(files) {
                pipe.set(key(i), &value).ignore();
            }
            let _: Vec<redis::Value> = pipe.query_async(&mut con).await?;
        }
    }
    let per_batch = t1.elapsed().as_secs_f64() / timed.max(1) as f64;
    let t2 = Instant::now();
    for chunk in (1..=files).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.del(key(*i)).ignore();
        }
        let _: Vec<redis::Value> = pipe.query_async(&mut con).await?;
    }
    let delete = t2.elapsed().as_secs_f64();
    Ok(Substrate {
        what: "400-byte values: pipelined SETs of 1000, per batch two pipelines of the batch's SETs, \
               pipelined DELs of 1000; one connection",
        queue,
        per_batch,
        delete,
    })
}

//! Repack expansion of one large tape, through the [`Scheduler`], into the backend under test.
//!
//! The catalogue is a [`PgCatalogue`] in a schema of its own (for both backends: it is the shared
//! catalogue). Its rows are generated on the server (`INSERT ... SELECT FROM generate_series`):
//! `files` archive files of one storage class with one copy each, all on one REPACKING tape at
//! fSeqs `1..=files`, plus the catalogue rows a repack needs (a VO and the repack VO, a library,
//! a source and a destination pool, a REPACK route to the destination, a mount policy).
//!
//! Timed as a whole: `queue_repack` then `expand_repacks(None)` until the request says
//! `expansion_done` (each call runs one pass of `files_per_pass` files: a catalogue page, the
//! subrequest ids, one `queue_repack_subrequests`). The process's peak RSS is measured over
//! the expansion alone: the tape is streamed a pass at a time, so it stays bounded. Afterwards
//! the backend must hold exactly `files` queued retrieves on the tape (`retrieve_queue_stats`).
//!
//! Beside it, in the same run on the same servers: the catalogue read alone (`tape_files` pages
//! over the whole tape) and the subrequest ids alone (`next_request_ids` of a pass), to show
//! where time goes, and the substrate of the backend: for PostgreSQL, as many rows of the
//! subrequests' width inserted by `UNNEST` in one transaction per pass into a plain table; for
//! Redis, as many keys of a stored subrequest's size written by pipelined `SET`s of a pass each.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use tapesched_objectstore::redis_store::{RedisSettings, RedisStore};
use tapesched_objectstore::{ObjectstoreConfig, ObjectstoreDb};
use tapesched_postgres::sqlx;
use tapesched_postgres::{PgCatalogue, PgConfig, PgSchedulerDb};
use tapesched_scheduler::catalogue::{Catalogue, CatalogueSnapshot};
use tapesched_scheduler::clock::ManualClock;
use tapesched_scheduler::db::SchedulerDb;
use tapesched_scheduler::decision::SchedulerConfig;
use tapesched_scheduler::repack::{RepackLink, RepackType};
use tapesched_scheduler::scheduler::{RepackSubmission, Scheduler};
use tapesched_scheduler::types::*;

use crate::measure::{self, rate, ratio, Samples};

const T0: i64 = 1_700_000_000;
/// The repacked tape.
pub const VID: &str = "RP0001";

/// The size of the expansion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expansion {
    /// Files on the tape.
    pub files: u64,
    /// `SchedulerConfig::repack_files_per_pass`.
    pub files_per_pass: u64,
}

impl Expansion {
    /// The default: a 1 000 000-file tape, passes of 10 000.
    pub const DEFAULT: Expansion = Expansion { files: 1_000_000, files_per_pass: 10_000 };
    /// `--quick`: 20 000 files, passes of 2000.
    pub const QUICK: Expansion = Expansion { files: 20_000, files_per_pass: 2_000 };
}

/// Where the subrequests go.
pub enum Target<'a> {
    /// A `PgSchedulerDb` in `schema` (new; dropped by the caller).
    Postgres {
        /// Server.
        url: &'a str,
        /// Schema.
        schema: &'a str,
    },
    /// The objectstore backend on Redis under `prefix` (empty; cleared by the caller).
    Redis {
        /// Server.
        url: &'a str,
        /// Key prefix.
        prefix: &'a str,
    },
}

fn snapshot(files: u64) -> CatalogueSnapshot {
    let mut s = CatalogueSnapshot::default();
    s.disk_instances.insert("eos".into());
    for (name, repack) in [("vo", false), ("repack_vo", true)] {
        s.vos.insert(
            name.into(),
            VirtualOrganization {
                name: name.into(),
                read_max_drives: 10,
                write_max_drives: 10,
                is_repack_vo: repack,
                disk_instance: None,
            },
        );
    }
    s.logical_libraries
        .insert("lib".into(), LogicalLibrary { name: "lib".into(), disabled: false, physical_library: None });
    for pool in ["src", "dst"] {
        s.tape_pools.insert(pool.into(), TapePool { name: pool.into(), vo: "vo".into() });
    }
    s.storage_classes.insert("sc".into(), StorageClass { name: "sc".into(), nb_copies: 1, vo: "vo".into() });
    for (pool, route_type) in [("src", ArchiveRouteType::Default), ("dst", ArchiveRouteType::Repack)] {
        s.archive_routes.push(ArchiveRoute {
            storage_class: "sc".into(),
            copy_nb: 1,
            tape_pool: pool.into(),
            route_type,
        });
    }
    s.mount_policies.insert(
        "repack".into(),
        MountPolicy {
            name: "repack".into(),
            archive_priority: 2,
            archive_min_request_age: 0,
            retrieve_priority: 2,
            retrieve_min_request_age: 0,
        },
    );
    for (vid, pool, state, n) in [(VID, "src", TapeState::Repacking, files), ("DS0001", "dst", TapeState::Active, 0)] {
        s.tapes.insert(
            vid.into(),
            Tape {
                vid: vid.into(),
                tape_pool: pool.into(),
                logical_library: "lib".into(),
                capacity_bytes: 20_000_000_000_000,
                data_on_tape_bytes: n * 1_000_500,
                last_fseq: n,
                full: n > 0,
                state,
                state_reason: (state == TapeState::Repacking).then(|| "repack benchmark".into()),
                media_type: "LTO9".into(),
                vendor: None,
            },
        );
    }
    s
}

/// Loads the catalogue into `schema`; returns it and what the load took.
async fn load_catalogue(url: &str, schema: &str, files: u64) -> Result<(Arc<PgCatalogue>, Value)> {
    let loader = PgSchedulerDb::connect(PgConfig { max_connections: 4, ..PgConfig::new(url, schema) })
        .await
        .context("connecting the catalogue")?;
    let catalogue = Arc::new(PgCatalogue::with_pool(loader.pool().clone(), schema));
    let start = Instant::now();
    catalogue.load(snapshot(files), vec![]).await?;
    let pool = loader.pool();
    sqlx::query(
        "INSERT INTO cat_archive_file (archive_file_id, disk_instance, disk_file_id, size, storage_class)
         SELECT g, 'eos', to_hex(g), 1000000 + g % 1000, 'sc' FROM generate_series(1, $1) g",
    )
    .bind(files as i64)
    .execute(pool)
    .await?;
    sqlx::query(
        "INSERT INTO cat_tape_file (archive_file_id, copy_nb, vid, fseq, block_id)
         SELECT g, 1, $2, g, g * 4 FROM generate_series(1, $1) g",
    )
    .bind(files as i64)
    .bind(VID)
    .execute(pool)
    .await?;
    sqlx::query("UPDATE cat_meta SET next_archive_file_id = greatest(next_archive_file_id, $1::int8 + 1)")
        .bind(files as i64)
        .execute(pool)
        .await?;
    sqlx::query("ANALYZE cat_archive_file, cat_tape_file").execute(pool).await?;
    let _ = sqlx::query("CHECKPOINT").execute(pool).await;
    let seconds = start.elapsed().as_secs_f64();
    Ok((
        catalogue,
        json!({
            "files": files, "seconds": seconds,
            "how": "INSERT ... SELECT FROM generate_series on the server (archive files, tape files), ANALYZE",
        }),
    ))
}

/// A stored subrequest's repack link, as the expansion writes it (the substrate rows' width).
fn sample_link(fseq: u64) -> RepackLink {
    RepackLink {
        vid: VID.into(),
        subrequest_id: fseq + 1,
        fseq,
        disk_file_id: format!("{fseq:x}"),
        storage_class: "sc".into(),
        buffer_file: tapesched_scheduler::repack::buffer_file("file:///var/tmp/tapesched-repack", VID, fseq),
        archive_copies: vec![tapesched_scheduler::repack::CopyRoute { copy_nb: 1, tape_pool: "dst".into() }],
        user_provided: false,
    }
}

/// PostgreSQL substrate: `files` rows of a subrequest's columns inserted by `UNNEST`, one
/// transaction per `per_pass` rows, one session, into a plain table (no key, no index).
/// Returns the rate and the average row width of both tables.
async fn pg_substrate(db: &PgSchedulerDb, files: u64, per_pass: u64) -> Result<Value> {
    sqlx::raw_sql(
        "CREATE TABLE plain_subrequest (
             request_id int8, archive_file_id int8, disk_instance text, requester_name text, requester_group text,
             size int8, dst_url text, created_at int8, policy_name text, priority int8, min_request_age int8,
             copy_nb int4, vid text, fseq int8, block_id int8, status int2, queue_seq int8, repack jsonb)",
    )
    .execute(db.pool())
    .await?;
    eprintln!("substrate: {files} rows by UNNEST, {per_pass} per transaction");
    let start = Instant::now();
    let mut first = 1;
    while first <= files {
        let last = (first + per_pass - 1).min(files);
        let ids: Vec<i64> = (first as i64..=last as i64).collect();
        let urls: Vec<String> = ids.iter().map(|g| sample_link(*g as u64).buffer_file).collect();
        let links: Vec<String> =
            ids.iter().map(|g| serde_json::to_string(&sample_link(*g as u64))).collect::<Result<_, _>>()?;
        let mut tx = db.pool().begin().await?;
        sqlx::query(
            "INSERT INTO plain_subrequest
             SELECT i + 1, i, 'eos', 'repack', 'repack', 1000000 + i % 1000, u, $3, 'repack', 2, 0, 1, $4, i, i * 4,
                    0, i, l::jsonb
             FROM unnest($1::int8[], $2::text[], $5::text[]) AS x(i, u, l)",
        )
        .bind(&ids)
        .bind(&urls)
        .bind(T0)
        .bind(VID)
        .bind(&links)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        first = last + 1;
    }
    let took = start.elapsed();
    let width = |table: &str| {
        sqlx::query_scalar::<_, f64>(sqlx::AssertSqlSafe(format!(
            "SELECT coalesce(avg(pg_column_size(t.*)), 0)::float8 FROM (SELECT * FROM {table} LIMIT 10000) t"
        )))
        .fetch_one(db.pool())
    };
    let (plain, real) = (width("plain_subrequest").await?, width("retrieve_request").await?);
    sqlx::query("DROP TABLE plain_subrequest").execute(db.pool()).await?;
    Ok(json!({
        "rows_per_s": rate(files, took), "seconds": took.as_secs_f64(),
        "row_bytes": plain.round(), "retrieve_request_row_bytes": real.round(),
        "what": format!("{files} rows of a subrequest's columns (repack link as jsonb) inserted by UNNEST, \
                         {per_pass} per transaction, one session, into a plain table (no key, no index)"),
    }))
}

/// Redis substrate: `files` keys of `size` bytes written by pipelined SETs of `per_pass`, one
/// connection, one pipeline at a time.
async fn redis_substrate(url: &str, prefix: &str, files: u64, per_pass: u64, size: usize) -> Result<Value> {
    eprintln!("substrate: {files} SETs of {size} bytes, pipelines of {per_pass}");
    let mut con = crate::decision_objectstore::raw_connection(url).await?;
    let value = vec![b'x'; size];
    let start = Instant::now();
    let mut first = 1;
    while first <= files {
        let last = (first + per_pass - 1).min(files);
        let mut pipe = redis::pipe();
        for i in first..=last {
            pipe.set(format!("{prefix}substrate:{{RetrieveRequest-{i}}}:o"), &value).ignore();
        }
        let () = pipe.query_async(&mut con).await?;
        first = last + 1;
    }
    let took = start.elapsed();
    Ok(json!({
        "sets_per_s": rate(files, took), "seconds": took.as_secs_f64(), "value_bytes": size,
        "what": format!("{files} keys of a stored subrequest's size written by pipelined SETs of {per_pass}, \
                         one connection, one pipeline at a time"),
    }))
}

/// The stored size of one subrequest object under `prefix` (found with SCAN).
async fn stored_subrequest_bytes(url: &str, prefix: &str) -> Result<usize> {
    let mut con = crate::decision_objectstore::raw_connection(url).await?;
    let pattern = format!("{prefix}{{RetrieveRequest-*}}:o");
    let key: Option<String> = {
        use redis::AsyncCommands;
        let mut keys = con.scan_match::<_, String>(&pattern).await?;
        keys.next_item().await.transpose()?
    };
    let key = key.with_context(|| format!("no stored subrequest found under {prefix:?}"))?;
    Ok(redis::cmd("STRLEN").arg(&key).query_async(&mut con).await?)
}

/// Runs the expansion benchmark with the catalogue in `cat_schema` on `pg_url` (new; dropped
/// by the caller) into `target`.
pub async fn run(pg_url: &str, cat_schema: &str, target: Target<'_>, size: Expansion) -> Result<Value> {
    eprintln!("repack expansion: catalogue of {} files on one tape (bulk load)", size.files);
    let (catalogue, loaded) = load_catalogue(pg_url, cat_schema, size.files).await?;
    let (db, pg): (Arc<dyn SchedulerDb>, Option<Arc<PgSchedulerDb>>) = match &target {
        Target::Postgres { url, schema } => {
            let db = Arc::new(PgSchedulerDb::connect(PgConfig::new(*url, *schema)).await?);
            (db.clone(), Some(db))
        }
        Target::Redis { url, prefix } => {
            let store = RedisStore::new(RedisSettings::new(*url, *prefix)).context("redis store")?;
            let config = ObjectstoreConfig {
                lock_timeout: Duration::from_secs(120),
                process_label: "maintd".into(),
                ..ObjectstoreConfig::default()
            };
            (Arc::new(ObjectstoreDb::new(Arc::new(store), config)), None)
        }
    };
    // Every pass in one call, so reading the next page overlaps writing the current one.
    let config = SchedulerConfig {
        repack_files_per_pass: size.files_per_pass,
        repack_passes_per_call: u64::MAX,
        ..SchedulerConfig::default()
    };
    let clock = Arc::new(ManualClock::new(T0));
    let scheduler = Scheduler::new(db.clone(), catalogue.clone(), clock, config);

    eprintln!("expanding the repack of {VID} ({} files per pass)", size.files_per_pass);
    let peak_before = measure::peak_rss_mib();
    let reset = measure::reset_peak_rss();
    let start = Instant::now();
    scheduler
        .queue_repack(RepackSubmission {
            vid: VID.into(),
            repack_type: RepackType::Move,
            mount_policy: "repack".into(),
            buffer_url: None,
            no_recall: false,
            max_files: None,
            storage_class: None,
        })
        .await?;
    // One call runs every pass (pipelined); `calls` counts the calls, `passes` the passes.
    let (mut calls, mut pass_ms) = (0u64, Samples::default());
    let max_passes = size.files / size.files_per_pass + 3;
    let request = loop {
        let t = Instant::now();
        let ran = scheduler.expand_repacks(None).await?;
        pass_ms.push(t.elapsed());
        calls += 1;
        let r = db.repack(VID).await?.context("the repack request vanished")?;
        if r.expansion_done {
            break r;
        }
        ensure!(ran.contains(&VID.to_string()), "an expansion pass did not run for {VID}");
        ensure!(calls < max_passes, "the expansion did not end after {calls} calls");
    };
    let passes = size.files / size.files_per_pass + 1;
    let took = start.elapsed();
    let memory = json!({
        "peak_rss_mib_during_expansion": if reset { measure::peak_rss_mib() } else { None },
        "peak_rss_mib_before": peak_before,
        "rss_mib_at_end": measure::rss_mib(),
        "note": "this benchmark process only (VmHWM of /proc/self/status, reset before the expansion)",
    });
    let files_per_s = rate(size.files, took);
    eprintln!(
        "expanded {} files in {passes} passes ({calls} calls), {:.1} s: {files_per_s} files/s",
        size.files,
        took.as_secs_f64()
    );

    // The backend must hold exactly every file of the tape, queued for recall.
    let stats = db.retrieve_queue_stats(&[VID.to_string()]).await?;
    let queued = stats.first().map_or(0, |s| s.files_queued);
    ensure!(queued == size.files, "the backend holds {queued} queued retrieves on {VID}, expected {}", size.files);
    ensure!(
        request.counters.files_to_retrieve == size.files,
        "the repack counts {} files to retrieve, expected {}",
        request.counters.files_to_retrieve,
        size.files
    );

    // Where time goes: the catalogue pages and the request ids alone.
    eprintln!("catalogue read alone: tape_files pages of {}", size.files_per_pass);
    let (start, mut after, mut read) = (Instant::now(), 0u64, 0u64);
    loop {
        let page = catalogue.tape_files(VID, after, size.files_per_pass).await?;
        read += page.len() as u64;
        match page.last().and_then(|f| f.copies.iter().find(|c| c.vid == VID)) {
            Some(c) if page.len() as u64 == size.files_per_pass => after = c.fseq,
            _ => break,
        }
    }
    let catalogue_took = start.elapsed();
    ensure!(read == size.files, "the catalogue read {read} files of {}", size.files);
    let start = Instant::now();
    for _ in 0..passes.saturating_sub(1).max(1) {
        catalogue.next_request_ids(size.files_per_pass).await?;
    }
    let ids_took = start.elapsed();
    let ids = passes.saturating_sub(1).max(1) * size.files_per_pass;

    let (substrate, substrate_rate, target_rate) = match (&target, &pg) {
        (Target::Postgres { .. }, Some(pg)) => {
            let s = pg_substrate(pg, size.files, size.files_per_pass).await?;
            let r = s["rows_per_s"].as_f64().unwrap_or(0.0);
            (s, r, 50_000)
        }
        (Target::Redis { url, prefix }, _) => {
            let bytes = stored_subrequest_bytes(url, prefix).await?;
            let s = redis_substrate(url, prefix, size.files, size.files_per_pass, bytes).await?;
            let r = s["sets_per_s"].as_f64().unwrap_or(0.0);
            (s, r, 20_000)
        }
        _ => unreachable!("a Postgres target has its handle"),
    };
    if let Some(pg) = pg {
        pg.pool().close().await;
    }
    Ok(json!({
        "vid": VID, "files": size.files, "files_per_pass": size.files_per_pass, "passes": passes, "calls": calls,
        "seconds": took.as_secs_f64(), "files_per_s": files_per_s, "target_per_s": target_rate,
        "call_ms": pass_ms.json_max(),
        "substrate": substrate,
        "ratio_to_substrate": ratio(files_per_s, substrate_rate),
        "queued_retrieves_on_vid": queued,
        "catalogue_read_alone": {
            "files_per_s": rate(read, catalogue_took), "seconds": catalogue_took.as_secs_f64(),
            "pages": read.div_ceil(size.files_per_pass),
        },
        "request_ids_alone": {"ids_per_s": rate(ids, ids_took), "seconds": ids_took.as_secs_f64()},
        "memory": memory,
        "catalogue_load": loaded,
        "what": "queue_repack + expand_repacks(None) until expansion_done, timed whole (catalogue pages, request \
                 ids, queue_repack_subrequests per pass); ratio: files/s over the substrate's rows (keys)/s",
    }))
}

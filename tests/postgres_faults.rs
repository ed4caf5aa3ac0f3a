//! Faults under the PostgreSQL backend: a connection dropped in the middle of a transaction, and
//! the server stopped dead (`pg_ctl stop -m immediate`, as a crash) and started again mid-run.
//!
//! Both tests make the interruption land inside a transaction, not by timing: the test holds row
//! locks the operation needs, waits until the operation's connection is seen waiting for them in
//! `pg_stat_activity` (so it has begun and written what comes first), and only then terminates
//! that connection or kills the server. The operation must then either succeed through the
//! backend's retry (a failure before `COMMIT` leaves nothing behind) or fail with `unavailable`,
//! and in the end every request is in the database exactly once: none lost, none half-applied
//! (the incrementally kept queue summaries equal a rebuild from the job rows), none done twice.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use tapesched_postgres::sqlx::{self, Connection, PgConnection};
use tapesched_postgres::{PgConfig, PgSchedulerDb, SchemaGuard};
use tapesched_scheduler::db::{JobKind, ReportFilter, SchedulerDb, StayRouter};
use tapesched_scheduler::types::*;
use tapesched_testkit::workload::{archive_mount, archive_request, produce_through_outage, transient, written};
use tokio::sync::watch;

const T: i64 = 1_700_000_000;
const POOL: &str = "pool_f";

fn request(id: u64) -> ArchiveRequest {
    ArchiveRequest {
        size: 1000 + id,
        policy: QueuedPolicy { name: "mp".into(), priority: id % 3, min_request_age: 0 },
        ..archive_request(id, POOL, T - 1000 + (id % 100) as i64)
    }
}

/// Archive ids of the queued jobs, checked distinct.
async fn pending(db: &PgSchedulerDb) -> BTreeSet<u64> {
    let jobs = db.list_pending(JobKind::Archive, None).await.unwrap();
    let ids: BTreeSet<u64> = jobs.iter().map(|j| j.archive_file_id).collect();
    assert_eq!(ids.len(), jobs.len(), "a job queued twice");
    ids
}

/// Archive ids of the due success reports, checked distinct.
async fn reported(db: &PgSchedulerDb) -> BTreeSet<u64> {
    let reports = db.reports_due(ReportFilter::All, u64::MAX, T).await.unwrap();
    let ids: BTreeSet<u64> = reports.iter().map(|r| r.archive_file_id).collect();
    assert_eq!(ids.len(), reports.len(), "a request reported twice");
    ids
}

/// The summaries the backend kept incrementally equal a rebuild from the job rows.
async fn assert_summaries_whole(db: &PgSchedulerDb) {
    let incremental = db.mount_info(T).await.unwrap();
    db.rebuild_summaries(T).await.unwrap();
    assert_eq!(db.mount_info(T).await.unwrap(), incremental, "summaries of a half-applied change");
}

/// A transaction of a connection of the test's own, holding the locks of the rows `lock_sql`
/// selects (`FOR UPDATE`, in the backend's schema).
async fn hold(url: &str, schema: &str, lock_sql: &'static str) -> PgConnection {
    let mut holder = PgConnection::connect(url).await.expect("connect");
    sqlx::raw_sql("BEGIN").execute(&mut holder).await.expect("begin");
    sqlx::query("SELECT set_config('search_path', $1, true)").bind(schema).execute(&mut holder).await.expect("schema");
    sqlx::raw_sql(lock_sql).execute(&mut holder).await.expect("lock");
    holder
}

/// Returns, once a connection of the backend's schema waits for a lock, its process id: an
/// operation is then inside its transaction, stopped at the rows the test holds.
async fn waiting_backend(url: &str, schema: &str) -> i32 {
    let mut watcher = PgConnection::connect(url).await.expect("connect");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pid: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity
             WHERE application_name = left('tapesched:' || $1, 63) AND wait_event_type = 'Lock'
             LIMIT 1",
        )
        .bind(schema)
        .fetch_optional(&mut watcher)
        .await
        .expect("pg_stat_activity");
        if let Some(pid) = pid {
            return pid;
        }
        assert!(Instant::now() < deadline, "no operation of schema {schema} waited for the rows the test holds");
        tokio::task::yield_now().await;
    }
}

/// Runs `op` while the rows of `lock_sql` are locked; once `op` waits for them, terminates its
/// connection (`pg_terminate_backend`) and releases them. Returns what `op` returned.
async fn with_connection_dropped<T>(url: &str, schema: &str, lock_sql: &'static str, op: impl Future<Output = T>) -> T {
    let mut holder = hold(url, schema, lock_sql).await;
    let interrupt = async {
        let pid = waiting_backend(url, schema).await;
        let terminated: bool =
            sqlx::query_scalar("SELECT pg_terminate_backend($1)").bind(pid).fetch_one(&mut holder).await.unwrap();
        assert!(terminated, "backend {pid} terminated");
        sqlx::raw_sql("ROLLBACK").execute(&mut holder).await.expect("release");
    };
    let (out, ()) = tokio::join!(op, interrupt);
    out
}

const LOCK_SUMMARIES: &str = "SELECT 1 FROM queue_summary FOR UPDATE";
const LOCK_JOBS: &str = "SELECT 1 FROM archive_job FOR UPDATE";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_mid_transaction_is_retried_and_applied_once() {
    let url = tapesched_testkit::postgres_url().expect("a PostgreSQL server");
    let schema = tapesched_testkit::unique_name("pgf");
    let _guard = SchemaGuard::new(url.clone(), schema.clone());
    let db = PgSchedulerDb::connect(PgConfig { max_connections: 2, ..PgConfig::new(url.clone(), schema.clone()) })
        .await
        .expect("backend");
    // A first request makes the pool's summary row, which the next batch then waits for.
    db.queue_archive(request(1), T).await.unwrap();

    // Queueing: the batch's rows are written, then it waits to add them to the summary.
    let answers =
        with_connection_dropped(&url, &schema, LOCK_SUMMARIES, db.queue_archives((2..=101).map(request).collect(), T))
            .await;
    for a in &answers {
        a.as_ref().expect("the batch is queued by the retry");
    }
    assert_eq!(pending(&db).await, (1..=101).collect());
    assert_summaries_whole(&db).await;

    // Claiming: the rows are taken, then the claim waits to take them off the summary.
    db.open_mount(1, &archive_mount("V1", POOL, "d1"), T).await.unwrap();
    let popped = with_connection_dropped(&url, &schema, LOCK_SUMMARIES, db.pop_jobs(1, 40, u64::MAX, T))
        .await
        .expect("the claim is made by the retry");
    assert_eq!(popped.len(), 40);
    let taken: BTreeSet<u64> = popped.iter().map(|j| j.archive_file_id()).collect();
    assert_eq!(taken.len(), 40, "a job handed out twice");
    let queued = pending(&db).await;
    assert!(queued.is_disjoint(&taken), "a claimed job still queued");
    assert_eq!(queued.len(), 61);
    assert_summaries_whole(&db).await;

    // Success: the mount's heartbeat is written, then the jobs' rows are waited for.
    with_connection_dropped(&url, &schema, LOCK_JOBS, db.transfers_succeeded(1, &written(&popped, "V1", 1), T))
        .await
        .expect("the successes are recorded by the retry");
    assert_eq!(reported(&db).await, taken);

    // End of mount: what it still holds goes back to its queue, then the summary is waited for.
    let held = db.pop_jobs(1, 30, u64::MAX, T).await.unwrap();
    assert_eq!(held.len(), 30);
    let requeued = with_connection_dropped(&url, &schema, LOCK_SUMMARIES, db.end_mount(1, T, &StayRouter))
        .await
        .expect("the mount is ended by the retry");
    assert_eq!(requeued, 30, "requeued once, not twice");
    let expected: BTreeSet<u64> = (1..=101).filter(|id| !taken.contains(id)).collect();
    assert_eq!(pending(&db).await, expected);
    assert_summaries_whole(&db).await;
}

/// When the server's postmaster started (microseconds since the epoch, as the server says).
async fn postmaster_start(url: &str) -> i64 {
    let mut conn = PgConnection::connect(url).await.expect("the server answers");
    let t: i64 = sqlx::query_scalar("SELECT (extract(epoch FROM pg_postmaster_start_time()) * 1000000)::bigint")
        .fetch_one(&mut conn)
        .await
        .expect("start time");
    t
}

const REQUESTS: u64 = 3000;
const BATCH: usize = 50;
const BATCHES: u64 = REQUESTS / BATCH as u64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_mid_run_loses_nothing() {
    // A server of the test's own: the shared one must not be stopped under other tests.
    let mut server = tapesched_testkit::PostgresServer::start().expect("a PostgreSQL server of the test's own");
    let url = server.url();
    let schema = "restart";
    let open = || PgSchedulerDb::connect(PgConfig { max_connections: 2, ..PgConfig::new(url.clone(), schema) });
    let (producer_db, drive_db) = (open().await.expect("backend"), open().await.expect("backend"));
    let (up_tx, up) = watch::channel(true);
    let (progress_tx, mut progress) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let (produced_tx, produced) = watch::channel(0u64);

    let requests = (1..=REQUESTS).map(request).collect();
    let up1 = up.clone();
    let producer = tokio::spawn(async move {
        produce_through_outage(&producer_db, requests, BATCH, T, up1, progress_tx, produced_tx).await
    });

    let mut up2 = up.clone();
    let mut produced = produced.clone();
    let drive = tokio::spawn(async move {
        let mount = 1;
        while let Err(e) = drive_db.open_mount(mount, &archive_mount("V1", POOL, "d1"), T).await {
            assert!(transient(e.kind), "{e}");
            up2.wait_for(|u| *u).await.expect("server comes back");
        }
        let (mut fseq, mut failures) = (1u64, 0u64);
        loop {
            let produced_before = *produced.borrow_and_update();
            let step = async {
                let jobs = drive_db.pop_jobs(mount, 20, u64::MAX, T).await?;
                drive_db.transfers_succeeded(mount, &written(&jobs, "V1", fseq), T).await?;
                fseq += jobs.len() as u64;
                Ok::<_, tapesched_scheduler::Error>(jobs.len())
            };
            match step.await {
                Ok(0) if produced_before == BATCHES => break,
                Ok(0) => produced.changed().await.expect("producer alive"),
                Ok(_) => {}
                // A claim or a success whose commit's outcome is unknown: the jobs are either
                // done or still held by this mount, and ending the mount puts those back.
                Err(e) => {
                    assert!(transient(e.kind), "unexpected error {e}");
                    failures += 1;
                    up2.wait_for(|u| *u).await.expect("server comes back");
                }
            }
        }
        let requeued = loop {
            match drive_db.end_mount(mount, T, &StayRouter).await {
                Ok(n) => break n,
                Err(e) => assert!(transient(e.kind), "{e}"),
            }
        };
        (failures, requeued)
    });

    // Once a third of the batches are in, stop the next operation at the summary's lock, kill
    // the server under it, and start it again on the same data.
    let started_before = postmaster_start(&url).await;
    let mut outage = None;
    while let Some(n) = progress.recv().await {
        if n == BATCHES / 3 {
            let holder = hold(&url, schema, LOCK_SUMMARIES).await;
            let pid = waiting_backend(&url, schema).await;
            up_tx.send_replace(false);
            server = tokio::task::spawn_blocking(move || {
                server.kill().expect("stop");
                server.restart().expect("restart");
                server
            })
            .await
            .expect("restarted");
            up_tx.send_replace(true);
            drop(holder);
            println!("server killed while backend {pid} was inside a transaction");
            outage = Some(pid);
            break;
        }
    }
    let producer_failures = producer.await.expect("producer");
    let (drive_failures, requeued) = drive.await.expect("drive");
    // The outage this test is about happened: the server was killed with an operation of the
    // run inside a transaction, and what answers now is a new server process. (Clients may see
    // no error: an operation cut before its COMMIT is retried inside the backend.)
    let held = outage.expect("the server was killed mid-run (the producer reached a third of its batches)");
    let started_after = postmaster_start(&url).await;
    assert!(
        started_after > started_before,
        "the server was restarted under backend {held} ({started_before} -> {started_after})"
    );

    // Drain what ending the first mount put back, with a mount of the checker's own.
    let checker = open().await.expect("backend");
    checker.open_mount(2, &archive_mount("V2", POOL, "d2"), T).await.unwrap();
    let mut fseq = 1;
    loop {
        let jobs = checker.pop_jobs(2, 500, u64::MAX, T).await.unwrap();
        if jobs.is_empty() {
            break;
        }
        checker.transfers_succeeded(2, &written(&jobs, "V2", fseq), T).await.unwrap();
        fseq += jobs.len() as u64;
    }
    assert_eq!(checker.end_mount(2, T, &StayRouter).await.unwrap(), 0);
    assert!(pending(&checker).await.is_empty(), "jobs left queued");
    assert_eq!(reported(&checker).await, (1..=REQUESTS).collect(), "every request done exactly once");
    assert_summaries_whole(&checker).await;
    println!(
        "failures seen by the producer: {producer_failures}, by the drive session: {drive_failures}; \
         jobs put back at the end of its mount: {requeued}"
    );
    drop(server); // stopped only now: it served the checks
}

//! Redis restarted mid-run: a server of the test's own (durable settings: `appendonly yes`,
//! `appendfsync always`) is killed with SIGKILL while a producer queues and a drive session pops
//! and completes, then started again on the same files. Operations fail with `unavailable` while
//! it is down; the clients retry once it is back (the session first puts back what it held), and
//! in the end every request is reported exactly once: nothing lost, nothing twice.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tapesched_objectstore::objects::QueueKind;
use tapesched_objectstore::redis_store::{RedisSettings, RedisStore};
use tapesched_objectstore::{ObjectstoreConfig, ObjectstoreDb};
use tapesched_scheduler::db::{ReportFilter, SchedulerDb, StayRouter};
use tapesched_testkit::workload::{archive_mount, archive_request, produce_through_outage, transient, written};
use tokio::sync::watch;

const T: i64 = 1_700_000_000;
const REQUESTS: u64 = 3000;
const BATCH: usize = 50;
const POOL: &str = "p";
const BATCHES: u64 = REQUESTS / BATCH as u64;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_loses_nothing() {
    let mut server = tapesched_testkit::RedisServer::start(true).expect("redis-server");
    let mut settings = RedisSettings::new(server.url(), "restart:");
    settings.lock_lease = Duration::from_millis(500);
    settings.response_timeout = Duration::from_secs(2);
    let open = || {
        let store = Arc::new(RedisStore::new(settings.clone()).unwrap());
        Arc::new(ObjectstoreDb::new(store, ObjectstoreConfig::default()))
    };
    let (producer_db, drive_db) = (open(), open());
    // `up` is false while the server is down; clients that see `unavailable` wait for it.
    let (up_tx, up) = watch::channel(true);
    let (progress_tx, mut progress) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let (produced_tx, produced) = watch::channel(0u64);

    let requests = (1..=REQUESTS).map(|id| archive_request(id, POOL, T)).collect();
    let up1 = up.clone();
    let producer = tokio::spawn(async move {
        produce_through_outage(&*producer_db, requests, BATCH, T, up1, progress_tx, produced_tx).await
    });

    let mut up2 = up.clone();
    let mut produced = produced.clone();
    let drive = tokio::spawn(async move {
        let spec = archive_mount("V1", POOL, "d");
        let mount = 1;
        while let Err(e) = drive_db.open_mount(mount, &spec, T).await {
            assert!(transient(e.kind), "{e}");
            up2.wait_for(|u| *u).await.expect("server comes back");
        }
        let (mut fseq, mut failures) = (1u64, 0u64);
        loop {
            // Note how far the producer is before popping, so an empty pop can wait for more.
            let produced_before = *produced.borrow_and_update();
            let step = async {
                let jobs = drive_db.pop_jobs(mount, 20, u64::MAX, T).await?;
                drive_db.transfers_succeeded(mount, &written(&jobs, "V1", fseq), T).await?;
                fseq += jobs.len() as u64;
                Ok::<_, tapesched_scheduler::Error>(jobs.len())
            };
            match step.await {
                Ok(0) if produced_before == BATCHES => break,
                Ok(0) => {
                    produced.changed().await.expect("producer alive");
                }
                Ok(_) => {}
                Err(e) => {
                    assert!(transient(e.kind), "unexpected error {e}");
                    failures += 1;
                    up2.wait_for(|u| *u).await.expect("server comes back");
                    // Put back what the session held when the store went away, then go on.
                    while let Err(e) = drive_db.recover(Some(mount), T, &StayRouter).await {
                        assert!(transient(e.kind), "{e}");
                    }
                }
            }
        }
        failures
    });

    // Kill the server once a third of the batches are in, start it again on the same files.
    while let Some(n) = progress.recv().await {
        if n as usize == REQUESTS as usize / BATCH / 3 {
            up_tx.send_replace(false);
            server = tokio::task::spawn_blocking(move || {
                server.kill();
                server.restart().expect("restart");
                server
            })
            .await
            .expect("restarted");
            up_tx.send_replace(true);
            break;
        }
    }
    let producer_failures = producer.await.expect("producer");
    let drive_failures = drive.await.expect("drive");

    let checker = open();
    // Drain what is left: jobs a recovery put back after the session had stopped.
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
    checker.end_mount(2, T, &StayRouter).await.unwrap();
    let mut pointers = 0;
    for (key, jobs) in checker.dump_queues().await.unwrap() {
        if key.kind == QueueKind::ArchiveToReport {
            let distinct: BTreeSet<u64> = jobs.iter().map(|j| j.archive_file_id).collect();
            assert_eq!(distinct.len(), jobs.len(), "a job reported twice in {key:?}");
            pointers += jobs.len() as u64;
        } else {
            assert!(jobs.is_empty(), "{} jobs left in {key:?}", jobs.len());
        }
    }
    let reports = checker.reports_due(ReportFilter::All, u64::MAX, T).await.unwrap();
    let reported: BTreeSet<u64> = reports.iter().map(|r| r.archive_file_id).collect();
    assert_eq!(reported, (1..=REQUESTS).collect::<BTreeSet<_>>(), "every request reported");
    assert_eq!(pointers, REQUESTS, "exactly once");
    assert!(producer_failures + drive_failures > 0, "the restart was seen by a client");
    println!("restart seen by the producer {producer_failures} times and by the session {drive_failures} times");
    drop(server); // stopped only now: it served the checks
}

//! Redis restarted mid-run: a server of the test's own (durable settings: `appendonly yes`,
//! `appendfsync always`) is killed with SIGKILL while a producer queues and a drive session pops
//! and completes, then started again on the same files. Operations fail with `unavailable` while
//! it is down; the clients retry once it is back (the session first puts back what it held), and
//! in the end every request is reported exactly once: nothing lost, nothing twice.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tapesched_objectstore::objects::QueueKind;
use tapesched_objectstore::redis_store::{RedisSettings, RedisStore};
use tapesched_objectstore::{ObjectstoreConfig, ObjectstoreDb};
use tapesched_scheduler::db::{MountJob, MountSpec, ReportFilter, SchedulerDb, StayRouter, TransferSuccess};
use tapesched_scheduler::types::*;
use tapesched_scheduler::ErrorKind;
use tokio::sync::watch;

const T: i64 = 1_700_000_000;
const REQUESTS: u64 = 3000;
const BATCH: usize = 50;
const POOL: &str = "p";
const BATCHES: u64 = REQUESTS / BATCH as u64;

fn request(id: u64) -> ArchiveRequest {
    common::archive_request(id, POOL, T)
}

fn retryable(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Unavailable | ErrorKind::Conflict)
}

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

    let mut up1 = up.clone();
    let producer = tokio::spawn(async move {
        let mut failures = 0;
        for (n, chunk) in (1..=REQUESTS).collect::<Vec<_>>().chunks(BATCH).enumerate() {
            loop {
                let answers = producer_db.queue_archives(chunk.iter().map(|i| request(*i)).collect(), T).await;
                let failed: Vec<_> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
                if failed.is_empty() {
                    break;
                }
                for e in &failed {
                    assert!(retryable(e.kind), "unexpected error {e}");
                }
                // A batch the previous attempt completed but whose answer was lost reads as
                // "already queued": those requests are there, which the final check confirms.
                if failed.iter().all(|e| e.kind == ErrorKind::Conflict && e.message.contains("already queued")) {
                    break;
                }
                failures += 1;
                up1.wait_for(|u| *u).await.expect("server comes back");
            }
            let _ = progress_tx.send(n as u64);
            produced_tx.send_replace(n as u64 + 1);
        }
        failures
    });

    let mut up2 = up.clone();
    let mut produced = produced.clone();
    let drive = tokio::spawn(async move {
        let spec = MountSpec {
            mount_type: MountType::ArchiveForUser,
            vid: "V1".into(),
            tape_pool: POOL.into(),
            vo: "vo".into(),
            drive: "d".into(),
            logical_library: "lib".into(),
        };
        let mount = 1;
        while let Err(e) = drive_db.open_mount(mount, &spec, T).await {
            assert!(retryable(e.kind), "{e}");
            up2.wait_for(|u| *u).await.expect("server comes back");
        }
        let (mut fseq, mut failures) = (0u64, 0u64);
        loop {
            // Note how far the producer is before popping, so an empty pop can wait for more.
            let produced_before = *produced.borrow_and_update();
            let step = async {
                let jobs = drive_db.pop_jobs(mount, 20, u64::MAX, T).await?;
                let written: Vec<TransferSuccess> = jobs
                    .iter()
                    .map(|j: &MountJob| {
                        fseq += 1;
                        TransferSuccess {
                            job: j.id(),
                            tape_file: Some(TapeFile { copy_nb: 1, vid: "V1".into(), fseq, block_id: fseq }),
                        }
                    })
                    .collect();
                drive_db.transfers_succeeded(mount, &written, T).await?;
                Ok::<_, tapesched_scheduler::Error>(jobs.len())
            };
            match step.await {
                Ok(0) if produced_before == BATCHES => break,
                Ok(0) => {
                    produced.changed().await.expect("producer alive");
                }
                Ok(_) => {}
                Err(e) => {
                    assert!(retryable(e.kind), "unexpected error {e}");
                    failures += 1;
                    up2.wait_for(|u| *u).await.expect("server comes back");
                    // Put back what the session held when the store went away, then go on.
                    while let Err(e) = drive_db.recover(Some(mount), T, &StayRouter).await {
                        assert!(retryable(e.kind), "{e}");
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
    let spec = MountSpec {
        mount_type: MountType::ArchiveForUser,
        vid: "V2".into(),
        tape_pool: POOL.into(),
        vo: "vo".into(),
        drive: "d2".into(),
        logical_library: "lib".into(),
    };
    checker.open_mount(2, &spec, T).await.unwrap();
    loop {
        let jobs = checker.pop_jobs(2, 500, u64::MAX, T).await.unwrap();
        if jobs.is_empty() {
            break;
        }
        let written: Vec<TransferSuccess> = jobs
            .iter()
            .map(|j| TransferSuccess {
                job: j.id(),
                tape_file: Some(TapeFile { copy_nb: 1, vid: "V2".into(), fseq: 1, block_id: 1 }),
            })
            .collect();
        checker.transfers_succeeded(2, &written, T).await.unwrap();
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

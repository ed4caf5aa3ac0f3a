//! SIGKILL test of the PostgreSQL backend with real processes: `tapesched worker drive` sessions
//! are killed at random points (seeded), the dead-mount cleanup puts their jobs back, and in the
//! end the database shows every job completed exactly once: none lost, none completed twice.
//!
//! Three slots each run one worker at a time on the same tape pool; a worker is killed with
//! SIGKILL after a seeded number of its progress lines (`open`, `popped`, `completed`), so kills
//! land before the mount exists, while a batch is held, and between batches, and (since a line
//! is printed after each commit and the next transaction starts at once) during transactions.
//! After each kill the slot marks the mount abandoned, as a drive daemon would, and runs one
//! collection pass. Clean workers then drain what is left.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tapesched_postgres::{PgConfig, PgSchedulerDb, SchemaGuard};
use tapesched_scheduler::db::{JobKind, ReportFilter, SchedulerDb, StayRouter};
use tapesched_scheduler::types::*;
use tapesched_testkit::workload::archive_request;

const JOBS: u64 = 4000;
const KILLS: u64 = 60;
const SLOTS: u64 = 3;
const BATCH: &str = "10";
const POOL: &str = "pool_k";

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

fn request(id: u64) -> ArchiveRequest {
    ArchiveRequest {
        size: 1000 + id,
        report_url: Some(format!("eos://done/{id}")),
        ..archive_request(id, POOL, 1_700_000_000 + id as i64)
    }
}

fn worker(url: &str, schema: &str, mount: u64) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tapesched"))
        .args(["worker", "drive", "--backend", "postgres", "--database-url", url, "--schema", schema])
        .args(["--drive", &format!("drive{mount}"), "--mount-id", &mount.to_string(), "--tape-pool", POOL])
        .args(["--vid", &format!("V{mount}"), "--batch-files", BATCH])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .stdin(Stdio::null())
        .spawn()
        .expect("tapesched runs")
}

/// Archive file ids on the `completed` lines of a worker's output.
fn completed(lines: &[String]) -> Vec<u64> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("completed "))
        .flat_map(|rest| rest.split_once(' ').map(|(_, ids)| ids.to_string()))
        .flat_map(|ids| ids.split(',').filter_map(|i| i.parse().ok()).collect::<Vec<u64>>())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkilled_sessions_lose_no_job_and_complete_none_twice() {
    let url = tapesched_testkit::postgres_url().expect("a PostgreSQL server");
    let schema = tapesched_testkit::unique_name("kill");
    let _guard = SchemaGuard::new(url.clone(), schema.clone());
    let db = Arc::new(
        PgSchedulerDb::connect(PgConfig { mount_timeout: Some(60), ..PgConfig::new(url.clone(), schema.clone()) })
            .await
            .expect("backend"),
    );
    for chunk in (1..=JOBS).collect::<Vec<_>>().chunks(1000) {
        let answers = db.queue_archives(chunk.iter().map(|id| request(*id)).collect(), now()).await;
        assert!(answers.iter().all(|a| a.is_ok()));
    }

    let kills = Arc::new(AtomicU64::new(0));
    let next_mount = Arc::new(AtomicU64::new(1));
    let outputs: Arc<Mutex<BTreeMap<u64, Vec<String>>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let handle = tokio::runtime::Handle::current();
    let mut slots = Vec::new();
    for slot in 0..SLOTS {
        let (url, schema, db) = (url.clone(), schema.clone(), db.clone());
        let (kills, next_mount, outputs, handle) = (kills.clone(), next_mount.clone(), outputs.clone(), handle.clone());
        slots.push(tokio::task::spawn_blocking(move || {
            let mut rng = tapesched_testkit::SeededRng(0x5eed_0000 + slot);
            while kills.load(Ordering::SeqCst) < KILLS {
                let mount = next_mount.fetch_add(1, Ordering::SeqCst);
                let mut child = worker(&url, &schema, mount);
                let stop_after = (rng.next_u64() % 7) as usize;
                let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
                let mut seen = Vec::new();
                let mut exited = false;
                while seen.len() < stop_after {
                    match lines.next() {
                        Some(Ok(l)) => seen.push(l),
                        _ => {
                            exited = true;
                            break;
                        }
                    }
                }
                child.kill().expect("SIGKILL");
                let status = child.wait().expect("reaped");
                outputs.lock().unwrap().insert(mount, seen.clone());
                if exited && status.success() {
                    // The queue ran dry before the kill point.
                    break;
                }
                kills.fetch_add(1, Ordering::SeqCst);
                // The drive daemon notices its session died; the next cleanup pass collects it.
                handle.block_on(async {
                    match db.abandon_mount(mount, now()).await {
                        Ok(()) => {}
                        Err(e) => assert_eq!(e.kind, tapesched_scheduler::ErrorKind::NotFound, "{e}"),
                    }
                    db.garbage_collect(now(), &StayRouter).await.expect("collection");
                });
            }
        }));
    }
    for s in slots {
        s.await.expect("slot");
    }
    let kills = kills.load(Ordering::SeqCst);
    assert!(kills >= 50, "only {kills} kills");

    // Clean sessions drain the rest; a final pass collects any mount whose heartbeat is stale.
    loop {
        let collected = db.garbage_collect(now() + 3600, &StayRouter).await.expect("collection");
        let pending = db.list_pending(JobKind::Archive, Some(POOL)).await.expect("pending").len();
        if pending == 0 && collected == 0 {
            break;
        }
        let mount = next_mount.fetch_add(1, Ordering::SeqCst);
        let out = worker(&url, &schema, mount).wait_with_output().expect("worker");
        assert!(out.status.success(), "a clean worker failed");
        let lines: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect();
        outputs.lock().unwrap().insert(mount, lines);
    }

    // From the database: every job completed once, nothing queued, held or open.
    let pool = db.pool();
    let one = |sql: &'static str| async move { sqlx_count(pool, sql).await };
    assert_eq!(one("SELECT count(*) FROM archive_job").await, JOBS as i64);
    assert_eq!(one("SELECT count(*) FROM archive_job WHERE status = 1 AND written_vid IS NOT NULL").await, JOBS as i64);
    assert_eq!(one("SELECT count(*) FROM archive_job WHERE queue_seq IS NOT NULL OR mount_id IS NOT NULL").await, 0);
    assert_eq!(one("SELECT count(*) FROM mount").await, 0);
    assert_eq!(one("SELECT count(*) FROM queue_summary WHERE files <> 0").await, 0);
    let reclaimed = one("SELECT count(*) FROM archive_job WHERE times_claimed > 1").await;
    assert!(reclaimed > 0, "no kill hit a session holding jobs");
    let reports = db.reports_due(ReportFilter::All, u64::MAX, now()).await.expect("reports");
    let reported: BTreeSet<u64> = reports.iter().map(|r| r.archive_file_id).collect();
    assert_eq!(reports.len() as u64, JOBS, "one success report per job");
    assert_eq!(reported, (1..=JOBS).collect::<BTreeSet<_>>());
    // From the processes: no job was reported completed by two sessions.
    let mut by_job: BTreeMap<u64, u64> = BTreeMap::new();
    for lines in outputs.lock().unwrap().values() {
        for id in completed(lines) {
            *by_job.entry(id).or_default() += 1;
        }
    }
    let twice: Vec<_> = by_job.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "jobs completed by two sessions: {twice:?}");
    println!("{kills} kills, {reclaimed} jobs claimed again after a kill");
}

async fn sqlx_count(pool: &tapesched_postgres::sqlx::PgPool, sql: &'static str) -> i64 {
    tapesched_postgres::sqlx::query_scalar(sql).fetch_one(pool).await.expect("count")
}

//! Concurrency test of the PostgreSQL backend: 8 producers queue 100 000 archive requests (a
//! quarter of them with two copies, on two pools) while 8 drive sessions (4 per pool) pop and
//! complete batches. Afterwards the database must show every job written exactly once (none
//! lost, none claimed twice), exactly one success report per request (multi-copy completion
//! under concurrency), and empty queue summaries.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tapesched_postgres::sqlx;
use tapesched_postgres::{PgConfig, PgSchedulerDb, SchemaGuard};
use tapesched_scheduler::db::{MountJob, SchedulerDb, TransferSuccess};
use tapesched_scheduler::types::*;
use tapesched_testkit::workload::{archive_mount, archive_request};

const REQUESTS: u64 = 100_000;
const PRODUCERS: u64 = 8;
const SESSIONS: u64 = 8;
const PRODUCER_BATCH: u64 = 250;
const POP_FILES: u64 = 500;
const POOLS: [&str; 2] = ["pool_a", "pool_b"];

fn job(copy_nb: u32, pool: &str) -> ArchiveJob {
    ArchiveJob::new(copy_nb, pool)
}

fn request(id: u64) -> ArchiveRequest {
    let jobs = if id.is_multiple_of(4) {
        vec![job(1, POOLS[0]), job(2, POOLS[1])]
    } else {
        vec![job(1, POOLS[(id % 2) as usize])]
    };
    ArchiveRequest {
        size: 1 + id % 1000,
        policy: QueuedPolicy { name: format!("mp{}", id % 3), priority: id % 3, min_request_age: 0 },
        jobs,
        ..archive_request(id, POOLS[0], 1_700_000_000 + (id % 977) as i64)
    }
}

async fn count(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn producers_and_drive_sessions_lose_nothing_and_share_nothing() {
    let url = tapesched_testkit::postgres_url().expect("a PostgreSQL server");
    let schema = tapesched_testkit::unique_name("conc");
    let _guard = SchemaGuard::new(url.clone(), schema.clone());
    let config = PgConfig { max_connections: (PRODUCERS + SESSIONS) as u32, ..PgConfig::new(url, schema) };
    let db = Arc::new(PgSchedulerDb::connect(config).await.expect("backend"));
    let t0 = 1_700_000_000;
    let producing = Arc::new(AtomicBool::new(true));

    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let db = db.clone();
        producers.push(tokio::spawn(async move {
            let ids: Vec<u64> = (1..=REQUESTS).filter(|id| id % PRODUCERS == p).collect();
            for chunk in ids.chunks(PRODUCER_BATCH as usize) {
                let answers = db.queue_archives(chunk.iter().map(|id| request(*id)).collect(), t0).await;
                for a in answers {
                    a.expect("queued");
                }
            }
        }));
    }
    let mut sessions = Vec::new();
    for s in 0..SESSIONS {
        let (db, producing) = (db.clone(), producing.clone());
        sessions.push(tokio::spawn(async move {
            let pool = POOLS[(s % 2) as usize];
            let mount = 1000 + s;
            let spec = archive_mount(format!("V{s}"), pool, format!("d{s}"));
            db.open_mount(mount, &spec, t0).await.expect("mount");
            let mut taken: Vec<(u64, u32)> = Vec::new();
            let mut fseq = 0;
            loop {
                let done_producing = !producing.load(Ordering::SeqCst);
                let jobs = db.pop_jobs(mount, POP_FILES, u64::MAX, t0).await.expect("pop");
                if jobs.is_empty() {
                    if done_producing {
                        break;
                    }
                    tokio::task::yield_now().await;
                    continue;
                }
                let done: Vec<TransferSuccess> = jobs
                    .iter()
                    .map(|j| {
                        fseq += 1;
                        let MountJob::Archive { copy_nb, .. } = j else { panic!("an archive mount got a retrieve") };
                        TransferSuccess {
                            job: j.id(),
                            tape_file: Some(TapeFile { copy_nb: *copy_nb, vid: spec.vid.clone(), fseq, block_id: 0 }),
                        }
                    })
                    .collect();
                taken.extend(jobs.iter().map(|j| (j.archive_file_id(), j.id().copy_nb)));
                db.transfers_succeeded(mount, &done, t0).await.expect("succeeded");
            }
            assert_eq!(db.end_mount(mount, t0, &NoRoute).await.expect("end"), 0);
            taken
        }));
    }
    for p in producers {
        p.await.expect("producer");
    }
    producing.store(false, Ordering::SeqCst);
    let mut all = BTreeSet::new();
    let mut total = 0usize;
    for s in sessions {
        let taken = s.await.expect("session");
        total += taken.len();
        all.extend(taken);
    }
    let jobs = REQUESTS + REQUESTS / 4;
    assert_eq!(total, all.len(), "a job was handed to two sessions");
    assert_eq!(all.len() as u64, jobs, "every job was handed out");

    let pool = db.pool();
    assert_eq!(count(pool, "SELECT count(*) FROM archive_request").await, REQUESTS as i64);
    assert_eq!(count(pool, "SELECT count(*) FROM archive_job").await, jobs as i64);
    assert_eq!(count(pool, "SELECT count(*) FROM archive_job WHERE times_claimed <> 1").await, 0, "claimed twice");
    assert_eq!(count(pool, "SELECT count(*) FROM archive_job WHERE written_vid IS NULL").await, 0, "lost");
    assert_eq!(
        count(pool, "SELECT count(*) FROM archive_job WHERE queue_seq IS NOT NULL OR mount_id IS NOT NULL").await,
        0
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM (SELECT archive_file_id FROM archive_job GROUP BY archive_file_id
                 HAVING count(*) FILTER (WHERE status = 1) <> 1
                     OR count(*) FILTER (WHERE status = 3) <> count(*) - 1) x"
        )
        .await,
        0,
        "one success report per request, the other copies complete"
    );
    assert_eq!(count(pool, "SELECT count(*) FROM archive_request WHERE NOT report_decided").await, 0);
    assert_eq!(count(pool, "SELECT count(*) FROM queue_summary WHERE files <> 0 OR bytes <> 0").await, 0);
}

struct NoRoute;
impl tapesched_scheduler::db::RetrieveRouter for NoRoute {
    fn candidates(&self, _: &RetrieveRequest) -> Vec<String> {
        vec![]
    }
    fn choose(&self, _: &RetrieveRequest, _: &[tapesched_scheduler::db::QueueStats]) -> Option<String> {
        None
    }
}

//! A job going back to its queue while another process claims it by name (`claim_jobs`, what
//! the migration bridge does when two processes see different authorities during a stage
//! change) must not leave a stale pointer behind: the queue's summary, which mount decisions
//! read, counts exactly the jobs its queue owns.
//!
//! Two `ObjectstoreDb` handles (two processes' agents) on one key prefix of the CI machine's
//! Redis. Each round, session A pops the queue's front job and puts it back while session B
//! tries to claim it by name until A is done, so B's claim lands at every point of A's move
//! over the rounds, the one between A's owner switch and its pointer's addition included.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tapesched_objectstore::redis_store::{ClearOnDrop, RedisSettings, RedisStore};
use tapesched_objectstore::{ObjectstoreConfig, ObjectstoreDb};
use tapesched_scheduler::db::{MountInfo, SchedulerDb, StayRouter};
use tapesched_testkit::workload::{archive_mount, archive_request};

const T0: i64 = 1_700_000_000;
const ROUNDS: u64 = 150;
const POOL: &str = "pool";

fn settings(prefix: &str) -> RedisSettings {
    RedisSettings::new(tapesched_testkit::redis_url().expect("a Redis server"), prefix)
}

fn open(prefix: &str) -> ObjectstoreDb {
    ObjectstoreDb::new(Arc::new(RedisStore::new(settings(prefix)).expect("redis")), ObjectstoreConfig::default())
}

async fn queued_in_pool(db: &ObjectstoreDb) -> u64 {
    let info = db.mount_info(T0).await.expect("mount info");
    info.potential_mounts.iter().filter(|m| m.tape_pool.as_deref() == Some(POOL)).map(|m| m.files_queued).sum()
}

async fn mount(db: &ObjectstoreDb, vid: &str, drive: &str) -> u64 {
    let decide = |_: &MountInfo| Some(archive_mount(vid, POOL, drive));
    db.next_mount("lib", T0, &decide).await.expect("decide").expect("a mount").0
}

#[tokio::test]
async fn a_requeue_racing_a_claim_by_name_leaves_no_stale_pointer() {
    let prefix = format!("{}:", tapesched_testkit::unique_name("requeue-race"));
    let _cleanup = ClearOnDrop(settings(&prefix));
    let (a, b) = (open(&prefix), open(&prefix));
    let requests = (1..=ROUNDS).map(|id| archive_request(id, POOL, T0)).collect();
    assert!(a.queue_archives(requests, T0).await.iter().all(Result::is_ok));
    let ma = mount(&a, "VA", "da").await;
    let mb = mount(&b, "VB", "db").await;

    let mut claimed = 0u64;
    for round in 1..=ROUNDS {
        let popped = a.pop_jobs(ma, 1, u64::MAX, T0).await.expect("pop");
        let [job] = popped.as_slice() else { panic!("round {round}: one job popped, got {}", popped.len()) };
        let job = job.id();
        let done = AtomicBool::new(false);
        let requeue = async {
            let n = a.requeue_jobs(ma, &[job], T0, &StayRouter).await.expect("requeue");
            done.store(true, Ordering::SeqCst);
            n
        };
        let claim = async {
            loop {
                let finished = done.load(Ordering::SeqCst);
                if !b.claim_jobs(mb, &[job], T0).await.expect("claim").is_empty() {
                    return true;
                }
                if finished {
                    return false;
                }
            }
        };
        let (requeued, got) = tokio::join!(requeue, claim);
        assert_eq!(requeued, 1, "round {round}: A held the job, so A put it back");
        claimed += u64::from(got);
        assert_eq!(
            queued_in_pool(&a).await,
            ROUNDS - claimed,
            "round {round}: the queue counts every job it owns and no other (B claimed {claimed} so far)"
        );
    }
    assert!(claimed > 0, "B's claim never landed after A's owner switch: the race was not exercised");
}

//! A process idle for longer than the agent timeout (a producer between two bursts) is taken
//! for dead by a collector with a timeout: its agent is collected. The process then lives on:
//! its next operations must register its agent again and work, not fail on an agent that no
//! longer exists. On the CI machine's Redis, a key prefix per test.

use std::sync::Arc;

use tapesched_objectstore::redis_store::{ClearOnDrop, RedisSettings, RedisStore};
use tapesched_objectstore::{ObjectstoreConfig, ObjectstoreDb};
use tapesched_scheduler::db::{SchedulerDb, StayRouter};
use tapesched_testkit::workload::archive_request;

const T0: i64 = 1_700_000_000;
const POOL: &str = "pool";

fn settings(prefix: &str) -> RedisSettings {
    RedisSettings::new(tapesched_testkit::redis_url().expect("a Redis server"), prefix)
}

fn open(prefix: &str, agent_timeout: Option<i64>) -> ObjectstoreDb {
    let config = ObjectstoreConfig { agent_timeout, ..ObjectstoreConfig::default() };
    ObjectstoreDb::new(Arc::new(RedisStore::new(settings(prefix)).expect("redis")), config)
}

async fn queued(db: &ObjectstoreDb, now: i64) -> u64 {
    let info = db.mount_info(now).await.expect("mount info");
    info.potential_mounts.iter().filter(|m| m.tape_pool.as_deref() == Some(POOL)).map(|m| m.files_queued).sum()
}

#[tokio::test]
async fn a_process_whose_agent_was_collected_while_idle_registers_it_again() {
    let prefix = format!("{}:", tapesched_testkit::unique_name("agent-timeout"));
    let _cleanup = ClearOnDrop(settings(&prefix));
    let producer = open(&prefix, None);
    let collector = open(&prefix, Some(900));
    let answers = producer.queue_archives(vec![archive_request(1, POOL, T0)], T0).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    // An hour later, the producer's agent has not beaten for longer than the timeout.
    let later = T0 + 3600;
    assert_eq!(collector.garbage_collect(later, &StayRouter).await.expect("collect"), 0, "it owned nothing");
    // The producer lives on: it heartbeats and queues again.
    producer.heartbeat(None, later + 1).await.expect("a heartbeat registers the agent again");
    let answers = producer.queue_archives(vec![archive_request(2, POOL, later + 2)], later + 2).await;
    assert!(answers.iter().all(Result::is_ok), "the collected agent is registered again: {answers:?}");
    assert_eq!(queued(&collector, later + 3).await, 2);
    // Collected again after another idle hour, the producer's next write registers it again too.
    let much_later = later + 7200;
    assert_eq!(collector.garbage_collect(much_later, &StayRouter).await.expect("collect"), 0);
    let answers = producer.queue_archives(vec![archive_request(3, POOL, much_later)], much_later).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert_eq!(queued(&collector, much_later).await, 3);
    // A live agent is left alone.
    assert_eq!(collector.garbage_collect(much_later + 60, &StayRouter).await.expect("collect"), 0);
    assert_eq!(queued(&collector, much_later + 60).await, 3);
}

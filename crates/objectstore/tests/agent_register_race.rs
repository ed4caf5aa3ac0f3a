//! A collector pass that runs while a drive session's agent is being registered must leave the
//! new mount alone: the agent's object is created before its name is listed in the agent
//! register, so the collector either does not see it yet or sees it whole. (Listed first, the
//! collector found the name without its object, unlisted it, and the live mount's jobs would not
//! have gone back had its process died; created just as the collector locked the name, the object
//! was removed and the mount's next step failed with "does not exist or has ended".)
//!
//! The pass runs at the exact moment through a store that runs it when the session creates the
//! mount's agent object, on the memory store and on a key prefix of the CI machine's Redis.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use tapesched_objectstore::objects::mount_agent_name;
use tapesched_objectstore::redis_store::{ClearOnDrop, RedisSettings, RedisStore};
use tapesched_objectstore::store::{Lock, LockMode, MemoryStore, ObjectStore, StoreResult, Swap};
use tapesched_objectstore::{ObjectstoreConfig, ObjectstoreDb};
use tapesched_scheduler::db::{MountInfo, SchedulerDb, StayRouter};
use tapesched_testkit::workload::{archive_mount, archive_request};

const T0: i64 = 1_700_000_000;
const POOL: &str = "pool";

/// `inner`, which runs a collector pass (of a process of its own, straight on `inner`) just
/// before the first mount agent's object is created.
struct CollectOnMountAgent {
    inner: Arc<dyn ObjectStore>,
    collector: OnceLock<Arc<ObjectstoreDb>>,
    fired: AtomicBool,
}

#[async_trait]
impl ObjectStore for CollectOnMountAgent {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn create(&self, name: &str, value: Vec<u8>) -> StoreResult<()> {
        if name.starts_with("Agent-mount-") && !self.fired.swap(true, Ordering::SeqCst) {
            let collector = self.collector.get().expect("a collector").clone();
            collector.garbage_collect(T0, &StayRouter).await.expect("the collector's pass");
        }
        self.inner.create(name, value).await
    }
    async fn read(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        self.inner.read(name).await
    }
    async fn read_many(&self, names: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        self.inner.read_many(names).await
    }
    async fn lock(&self, name: &str, mode: LockMode, timeout: Duration) -> StoreResult<Lock> {
        self.inner.lock(name, mode, timeout).await
    }
    async fn unlock(&self, lock: &Lock) -> StoreResult<()> {
        self.inner.unlock(lock).await
    }
    async fn lock_and_read(&self, name: &str, mode: LockMode, timeout: Duration) -> StoreResult<(Lock, Vec<u8>)> {
        self.inner.lock_and_read(name, mode, timeout).await
    }
    async fn write_and_unlock(&self, name: &str, value: Vec<u8>, lock: &Lock) -> StoreResult<()> {
        self.inner.write_and_unlock(name, value, lock).await
    }
    async fn overwrite(&self, name: &str, value: Vec<u8>, fence: &Lock, create: bool) -> StoreResult<()> {
        self.inner.overwrite(name, value, fence, create).await
    }
    async fn swap(&self, name: &str, expected: &[u8], value: Vec<u8>) -> StoreResult<bool> {
        self.inner.swap(name, expected, value).await
    }
    async fn swap_many(&self, swaps: &[Swap]) -> StoreResult<Vec<bool>> {
        self.inner.swap_many(swaps).await
    }
    async fn remove(&self, name: &str, fence: &Lock) -> StoreResult<()> {
        self.inner.remove(name, fence).await
    }
    async fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        self.inner.list(prefix).await
    }
}

async fn a_collector_pass_during_a_mounts_registration_leaves_it_whole(inner: Arc<dyn ObjectStore>) {
    let store = Arc::new(CollectOnMountAgent { inner: inner.clone(), collector: OnceLock::new(), fired: false.into() });
    let collector = ObjectstoreConfig { agent_timeout: Some(900), ..ObjectstoreConfig::default() };
    let collector = Arc::new(ObjectstoreDb::new(inner, collector));
    assert!(store.collector.set(collector.clone()).is_ok());
    let session = ObjectstoreDb::new(store.clone(), ObjectstoreConfig::default());
    let requests = (1..=3).map(|id| archive_request(id, POOL, T0)).collect();
    assert!(session.queue_archives(requests, T0).await.iter().all(Result::is_ok));

    let decide = |_: &MountInfo| Some(archive_mount("V1", POOL, "d1"));
    let mount = session.next_mount("lib", T0, &decide).await.expect("decide").expect("a mount").0;
    assert!(store.fired.load(Ordering::SeqCst), "the collector ran as the mount's agent was created");
    let agents = collector.agents().await.unwrap();
    assert!(agents.contains(&mount_agent_name(mount)), "the new mount's agent is listed: {agents:?}");
    assert_eq!(session.pop_jobs(mount, 10, u64::MAX, T0).await.expect("the mount works").len(), 3);
    // Its process dies: the collector finds the mount and puts its jobs back.
    session.abandon_mount(mount, T0).await.unwrap();
    assert_eq!(collector.garbage_collect(T0, &StayRouter).await.unwrap(), 3, "the mount's jobs go back");
}

#[tokio::test]
async fn on_the_memory_store() {
    a_collector_pass_during_a_mounts_registration_leaves_it_whole(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn on_redis() {
    let prefix = format!("{}:", tapesched_testkit::unique_name("agent-register-race"));
    let settings = RedisSettings::new(tapesched_testkit::redis_url().expect("a Redis server"), &prefix);
    let _cleanup = ClearOnDrop(settings.clone());
    a_collector_pass_during_a_mounts_registration_leaves_it_whole(Arc::new(RedisStore::new(settings).expect("redis")))
        .await;
}

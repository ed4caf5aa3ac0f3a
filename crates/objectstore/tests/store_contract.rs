//! The `ObjectStore` contract, checked on every store: the in-memory one and Redis (the CI
//! machine's server, or one found or started by `tapesched-testkit`), each test under its own
//! key prefix, removed afterwards.

use std::sync::Arc;
use std::time::Duration;

use tapesched_objectstore::redis_store::{RedisSettings, RedisStore};
use tapesched_objectstore::store::{LockMode, MemoryStore, ObjectStore, StoreError, Swap};

const T: Duration = Duration::from_millis(100);

async fn create_is_exclusive_and_writes_are_fenced(s: Arc<dyn ObjectStore>) {
    s.create("a", b"1".to_vec()).await.unwrap();
    assert_eq!(s.create("a", b"2".to_vec()).await, Err(StoreError::AlreadyExists("a".into())));
    let l = s.lock("a", LockMode::Exclusive, T).await.unwrap();
    assert_eq!(s.lock("a", LockMode::Shared, T).await, Err(StoreError::LockTimeout("a".into())));
    s.overwrite("a", b"3".to_vec(), &l, false).await.unwrap();
    s.unlock(&l).await.unwrap();
    assert_eq!(s.overwrite("a", b"4".to_vec(), &l, false).await, Err(StoreError::LockLost("a".into())));
    assert_eq!(s.read("a").await.unwrap(), Some(b"3".to_vec()));
    assert_eq!(s.lock("b", LockMode::Exclusive, T).await, Err(StoreError::NoSuchObject("b".into())));
    assert_eq!(s.read("b").await.unwrap(), None);
}

async fn shared_locks_coexist_and_block_writers(s: Arc<dyn ObjectStore>) {
    s.create("a", vec![1]).await.unwrap();
    let r1 = s.lock("a", LockMode::Shared, T).await.unwrap();
    let r2 = s.lock("a", LockMode::Shared, T).await.unwrap();
    assert!(s.lock("a", LockMode::Exclusive, T).await.is_err());
    s.unlock(&r1).await.unwrap();
    s.unlock(&r2).await.unwrap();
    let w = s.lock("a", LockMode::Exclusive, T).await.unwrap();
    s.remove("a", &w).await.unwrap();
    assert_eq!(s.read("a").await.unwrap(), None);
}

async fn sub_objects_are_written_under_the_parent_lock(s: Arc<dyn ObjectStore>) {
    s.create("q", vec![0]).await.unwrap();
    let l = s.lock("q", LockMode::Exclusive, T).await.unwrap();
    s.overwrite("q-s0", vec![7], &l, true).await.unwrap();
    assert_eq!(s.read("q-s0").await.unwrap(), Some(vec![7]));
    s.remove("q-s0", &l).await.unwrap();
    s.unlock(&l).await.unwrap();
    assert_eq!(s.read("q-s0").await.unwrap(), None);
    assert_eq!(s.overwrite("q-s1", vec![1], &l, true).await, Err(StoreError::LockLost("q".into())));
}

async fn a_waiter_gets_the_lock_when_it_is_released(s: Arc<dyn ObjectStore>) {
    s.create("a", vec![1]).await.unwrap();
    let held = s.lock("a", LockMode::Exclusive, T).await.unwrap();
    let s2 = s.clone();
    let waiter = tokio::spawn(async move { s2.lock("a", LockMode::Exclusive, Duration::from_secs(30)).await });
    tokio::task::yield_now().await;
    s.unlock(&held).await.unwrap();
    assert!(waiter.await.unwrap().is_ok());
}

async fn hostile_names_stay_inside_their_object(s: Arc<dyn ObjectStore>) {
    // Object names are escaped by the backend; the store itself must still keep odd names apart.
    for (i, name) in ["a:b", "a%7Bb%7D", "x\u{e9}y", "a*", "a?b"].iter().enumerate() {
        s.create(name, vec![i as u8]).await.unwrap();
    }
    assert_eq!(s.read("a:b").await.unwrap(), Some(vec![0]));
    assert_eq!(s.read("a").await.unwrap(), None);
    let listed = s.list("a").await.unwrap();
    assert_eq!(listed, vec!["a%7Bb%7D".to_string(), "a*".into(), "a:b".into(), "a?b".into()]);
}

async fn swap_changes_only_an_unlocked_unchanged_object(s: Arc<dyn ObjectStore>) {
    s.create("a", b"1".to_vec()).await.unwrap();
    assert!(s.swap("a", b"1", b"2".to_vec()).await.unwrap());
    assert!(!s.swap("a", b"1", b"3".to_vec()).await.unwrap(), "changed since it was read");
    let l = s.lock("a", LockMode::Exclusive, T).await.unwrap();
    assert!(!s.swap("a", b"2", b"4".to_vec()).await.unwrap(), "locked");
    s.unlock(&l).await.unwrap();
    let r = s.lock("a", LockMode::Shared, T).await.unwrap();
    assert!(!s.swap("a", b"2", b"5".to_vec()).await.unwrap(), "share-locked");
    s.unlock(&r).await.unwrap();
    assert_eq!(s.read("a").await.unwrap(), Some(b"2".to_vec()));
    assert!(!s.swap("b", b"", b"6".to_vec()).await.unwrap(), "absent");
    assert_eq!(s.read("b").await.unwrap(), None);
    // `expected` is a prefix of the value (a write stamp, for the objects layer).
    s.create("c", b"s1:abc".to_vec()).await.unwrap();
    assert!(!s.swap("c", b"s2:", b"s3:x".to_vec()).await.unwrap(), "another write's stamp");
    assert!(!s.swap("c", b"s1:abcd", b"s3:x".to_vec()).await.unwrap(), "longer than the value");
    assert!(s.swap("c", b"s1:", b"s2:def".to_vec()).await.unwrap());
    assert!(s.swap("c", b"", b"s3:ghi".to_vec()).await.unwrap(), "an empty prefix: any value");
    assert_eq!(s.read("c").await.unwrap(), Some(b"s3:ghi".to_vec()));
}

async fn swap_many_answers_each_object_in_order(s: Arc<dyn ObjectStore>) {
    let swap = |name: &str, expected: &[u8], value: &[u8]| Swap {
        name: name.to_string(),
        expected: expected.to_vec(),
        value: value.to_vec(),
    };
    // More objects than one Redis call takes, so the chunks must come back in order.
    let n = 600;
    for i in 0..n {
        s.create(&format!("o{i}"), vec![0]).await.unwrap();
    }
    let l = s.lock("o7", LockMode::Exclusive, T).await.unwrap();
    let mut swaps: Vec<Swap> = (0..n).map(|i| swap(&format!("o{i}"), &[0], &[1])).collect();
    swaps[3].expected = vec![9]; // changed since it was read
    swaps.push(swap("absent", &[0], &[1]));
    swaps.push(swap("o5", &[0], &[2])); // the same object twice: the first swap changed it
    let done = s.swap_many(&swaps).await.unwrap();
    let expected: Vec<bool> = (0..n).map(|i| i != 3 && i != 7).chain([false, false]).collect();
    assert_eq!(done, expected);
    assert_eq!(s.read("o3").await.unwrap(), Some(vec![0]));
    assert_eq!(s.read("o5").await.unwrap(), Some(vec![1]));
    assert_eq!(s.read("o7").await.unwrap(), Some(vec![0]), "locked");
    assert_eq!(s.read("o599").await.unwrap(), Some(vec![1]));
    assert_eq!(s.read("absent").await.unwrap(), None);
    s.unlock(&l).await.unwrap();
    assert_eq!(s.swap_many(&[]).await.unwrap(), Vec::<bool>::new());
}

async fn list_many_lists_each_prefix_as_list_does(s: Arc<dyn ObjectStore>) {
    // Names of several kinds, one a prefix of another's ("Ab" and "AbC"), a locked one (its lock
    // is a key of the store's, not a name) and one with a glob character.
    for name in ["Ab-2", "Ab-1", "AbC-1", "Ba-1", "Zz*", "Ab-10"] {
        s.create(name, vec![1]).await.unwrap();
    }
    let l = s.lock("Ab-1", LockMode::Exclusive, T).await.unwrap();
    let prefixes = ["Ab", "AbC", "Ba", "Q", "Zz*"];
    let many = s.list_many(&prefixes).await.unwrap();
    let each: Vec<Vec<String>> =
        futures::future::join_all(prefixes.iter().map(|p| s.list(p))).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(many, each);
    let ab: Vec<&str> = many[0].iter().map(String::as_str).collect();
    assert_eq!(ab, ["Ab-1", "Ab-10", "Ab-2", "AbC-1"]);
    assert_eq!((many[1].len(), many[2].len(), many[3].len(), many[4].len()), (1, 1, 0, 1));
    s.unlock(&l).await.unwrap();
    assert_eq!(s.list_many(&[]).await.unwrap(), Vec::<Vec<String>>::new());
}

fn redis(prefix: &str) -> Arc<RedisStore> {
    let url = tapesched_testkit::redis_url().expect("a Redis server");
    Arc::new(RedisStore::new(RedisSettings::new(url, prefix)).unwrap())
}

macro_rules! contract {
    ($($case:ident),*) => {
        mod memory {
            $(#[tokio::test] async fn $case() { super::$case(std::sync::Arc::new(super::MemoryStore::new())).await; })*
        }
        mod redis {
            $(#[tokio::test] async fn $case() {
                let store = super::redis(&format!("{}:", tapesched_testkit::unique_name("store")));
                super::$case(store.clone()).await;
                store.clear().await.unwrap();
                assert_eq!(store.clear().await.unwrap(), 0, "nothing left behind");
            })*
        }
    };
}

contract!(
    create_is_exclusive_and_writes_are_fenced,
    shared_locks_coexist_and_block_writers,
    sub_objects_are_written_under_the_parent_lock,
    a_waiter_gets_the_lock_when_it_is_released,
    hostile_names_stay_inside_their_object,
    swap_changes_only_an_unlocked_unchanged_object,
    swap_many_answers_each_object_in_order,
    list_many_lists_each_prefix_as_list_does
);

#[tokio::test]
async fn a_lock_held_by_a_dead_process_expires_with_its_lease() {
    let url = tapesched_testkit::redis_url().expect("a Redis server");
    let mut settings = RedisSettings::new(url, format!("{}:", tapesched_testkit::unique_name("lease")));
    settings.lock_lease = Duration::from_millis(200);
    let dead = RedisStore::new(settings.clone()).unwrap();
    dead.create("a", vec![1]).await.unwrap();
    let lost = dead.lock("a", LockMode::Exclusive, T).await.unwrap();
    drop(dead); // the holder is gone without unlocking
    let alive = RedisStore::new(settings).unwrap();
    let l = alive.lock("a", LockMode::Exclusive, Duration::from_secs(10)).await.expect("the lease ends");
    assert_eq!(alive.overwrite("a", vec![9], &lost, false).await, Err(StoreError::LockLost("a".into())), "fenced");
    alive.overwrite("a", vec![2], &l, false).await.unwrap();
    alive.unlock(&l).await.unwrap();
    alive.clear().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let port = tapesched_testkit::free_port().unwrap();
    let s = RedisStore::new(RedisSettings::new(format!("redis://127.0.0.1:{port}"), "x:")).unwrap();
    assert!(matches!(s.read("a").await, Err(StoreError::Unavailable(..))));
    assert!(RedisStore::new(RedisSettings::new("redis://127.0.0.1:1", "a{b}:")).is_err(), "braces refused");
}

//! The `ObjectStore` contract the legacy backend is written against, and its in-memory
//! implementation.
//!
//! The contract is CTA's object-store backend contract with one improvement: every write names
//! the lock that guards it (a *fence*) and the store refuses the write when that lock is no
//! longer held with that token, so a process that lost its lock can never overwrite newer data.
//!
//! - `create` is exclusive (fails when the name exists);
//! - `read` is lock-free and returns a whole value, never a torn one;
//! - `lock` takes a shared or exclusive lock on an existing object, waiting up to a timeout;
//! - `overwrite` and `remove` succeed only while the fence lock is held.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use tokio::sync::Notify;

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The object does not exist.
    #[error("object {0:?} does not exist")]
    NoSuchObject(String),
    /// Exclusive creation of an object that exists.
    #[error("object {0:?} already exists")]
    AlreadyExists(String),
    /// A lock could not be taken in time.
    #[error("timed out waiting for the lock of {0:?}")]
    LockTimeout(String),
    /// A write was fenced off: its lock is no longer held with the caller's token.
    #[error("the lock guarding {0:?} is no longer held")]
    LockLost(String),
    /// The store cannot be reached (with the client's error, when there is one).
    #[error("object store unavailable: {0}")]
    Unavailable(String, #[source] Option<Cause>),
}

/// The underlying error of a [`StoreError`] (a client library's), shared so that store errors
/// stay `Clone`. Store errors are compared on their variant and message; two causes are equal
/// when they read the same.
#[derive(Debug, Clone)]
pub struct Cause(pub Arc<dyn std::error::Error + Send + Sync + 'static>);

impl Cause {
    /// Wraps a client's error.
    pub fn new(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Cause(Arc::new(e))
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for Cause {}

/// Result of a store operation.
pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// Shared (readers) or exclusive (writer) lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Several holders, no exclusive holder.
    Shared,
    /// One holder.
    Exclusive,
}

/// A held lock: the object and the token that proves the holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// The locked object.
    pub object: String,
    /// The holder's token.
    pub token: String,
    /// Shared or exclusive.
    pub mode: LockMode,
}

/// The storage contract of the objectstore backend.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// A short description for logs (`memory`, `redis://...`).
    fn describe(&self) -> String;
    /// Creates an object; fails with [`StoreError::AlreadyExists`] when the name is taken.
    async fn create(&self, name: &str, value: Vec<u8>) -> StoreResult<()>;
    /// Reads a whole object without locking; `None` when absent.
    async fn read(&self, name: &str) -> StoreResult<Option<Vec<u8>>>;
    /// Reads several objects without locking (each one whole), in the order of `names`.
    async fn read_many(&self, names: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(names.len());
        for n in names {
            out.push(self.read(n).await?);
        }
        Ok(out)
    }
    /// Locks an existing object, waiting up to `timeout`.
    async fn lock(&self, name: &str, mode: LockMode, timeout: Duration) -> StoreResult<Lock>;
    /// Releases a lock; releasing a lock that expired or was never held is not an error.
    async fn unlock(&self, lock: &Lock) -> StoreResult<()>;
    /// Locks an existing object and reads it, in one round trip where the store can.
    async fn lock_and_read(&self, name: &str, mode: LockMode, timeout: Duration) -> StoreResult<(Lock, Vec<u8>)> {
        let lock = self.lock(name, mode, timeout).await?;
        match self.read(name).await {
            Ok(Some(v)) => Ok((lock, v)),
            Ok(None) => {
                let _ = self.unlock(&lock).await;
                Err(StoreError::NoSuchObject(name.to_string()))
            }
            Err(e) => {
                let _ = self.unlock(&lock).await;
                Err(e)
            }
        }
    }
    /// Replaces an object's value and releases its own exclusive lock, in one round trip where
    /// the store can.
    async fn write_and_unlock(&self, name: &str, value: Vec<u8>, lock: &Lock) -> StoreResult<()> {
        let written = self.overwrite(name, value, lock, false).await;
        let _ = self.unlock(lock).await;
        written
    }
    /// Replaces the whole value of `name` while `fence` (an exclusive lock on `name` or on its
    /// parent object) is held. Creates the object when `create` is set and it is absent.
    async fn overwrite(&self, name: &str, value: Vec<u8>, fence: &Lock, create: bool) -> StoreResult<()>;
    /// Replaces the value of `name` with `value` if it still begins with `expected` and nobody
    /// holds a lock on it, in one atomic step: an update without a lock of its own, after a
    /// lock-free read. `expected` is a prefix so that a caller whose values start with a stamp
    /// unique to each write (as [`crate::objects::Objects`] does) compares the stamp alone;
    /// passing a whole value compares the whole value. `false`: the object changed, is locked or
    /// is gone (the caller falls back to a locked update). The default takes the lock without
    /// waiting.
    async fn swap(&self, name: &str, expected: &[u8], value: Vec<u8>) -> StoreResult<bool> {
        let lock = match self.lock(name, LockMode::Exclusive, Duration::ZERO).await {
            Ok(lock) => lock,
            Err(StoreError::NoSuchObject(_) | StoreError::LockTimeout(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        let swapped = match self.read(name).await {
            Ok(Some(v)) if v.starts_with(expected) => self.overwrite(name, value, &lock, false).await.map(|_| true),
            Ok(_) => Ok(false),
            Err(e) => Err(e),
        };
        let _ = self.unlock(&lock).await;
        swapped
    }
    /// [`swap`](Self::swap) of many objects, each on its own (a batch is not atomic as a
    /// whole); answers in the order of `swaps`. Stores override it to save round trips.
    async fn swap_many(&self, swaps: &[Swap]) -> StoreResult<Vec<bool>> {
        let answers = join_all(swaps.iter().map(|s| self.swap(&s.name, &s.expected, s.value.clone()))).await;
        answers.into_iter().collect()
    }
    /// Deletes `name` while `fence` is held; deleting an absent object is not an error.
    async fn remove(&self, name: &str, fence: &Lock) -> StoreResult<()>;
    /// Names starting with `prefix`, sorted (tools and tests only).
    async fn list(&self, prefix: &str) -> StoreResult<Vec<String>>;
    /// [`list`](Self::list) of each of `prefixes`, one sorted list per prefix in their order
    /// (a name is in the list of every prefix it starts with). Stores whose listing walks every
    /// name override it to walk them once.
    async fn list_many(&self, prefixes: &[&str]) -> StoreResult<Vec<Vec<String>>> {
        let mut out = Vec::with_capacity(prefixes.len());
        for p in prefixes {
            out.push(self.list(p).await?);
        }
        Ok(out)
    }
}

/// One compare-and-swap of [`ObjectStore::swap_many`].
#[derive(Debug, Clone)]
pub struct Swap {
    /// The object.
    pub name: String,
    /// What its value must still begin with.
    pub expected: Vec<u8>,
    /// Its new value.
    pub value: Vec<u8>,
}

#[derive(Default)]
struct Entry {
    value: Vec<u8>,
    exclusive: Option<String>,
    shared: HashSet<String>,
}

/// An object store in process memory (tests, scenarios, the embedded default).
///
/// Locks have no lease: a holder can only disappear with the whole process, and with it the
/// store.
#[derive(Default)]
pub struct MemoryStore {
    objects: Mutex<HashMap<String, Entry>>,
    released: Notify,
    tokens: AtomicU64,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn objects(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.objects.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn try_lock(&self, name: &str, mode: LockMode, token: &str) -> StoreResult<bool> {
        let mut objects = self.objects();
        let entry = objects.get_mut(name).ok_or_else(|| StoreError::NoSuchObject(name.to_string()))?;
        if entry.exclusive.is_some() {
            return Ok(false);
        }
        match mode {
            LockMode::Exclusive if !entry.shared.is_empty() => Ok(false),
            LockMode::Exclusive => {
                entry.exclusive = Some(token.to_string());
                Ok(true)
            }
            LockMode::Shared => {
                entry.shared.insert(token.to_string());
                Ok(true)
            }
        }
    }

    fn check_fence(objects: &HashMap<String, Entry>, fence: &Lock) -> StoreResult<()> {
        let held = objects.get(&fence.object).and_then(|e| e.exclusive.as_deref()) == Some(fence.token.as_str());
        if held && fence.mode == LockMode::Exclusive {
            Ok(())
        } else {
            Err(StoreError::LockLost(fence.object.clone()))
        }
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    fn describe(&self) -> String {
        "memory".into()
    }

    async fn create(&self, name: &str, value: Vec<u8>) -> StoreResult<()> {
        let mut objects = self.objects();
        if objects.contains_key(name) {
            return Err(StoreError::AlreadyExists(name.to_string()));
        }
        objects.insert(name.to_string(), Entry { value, ..Entry::default() });
        Ok(())
    }

    async fn read(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        Ok(self.objects().get(name).map(|e| e.value.clone()))
    }

    async fn lock(&self, name: &str, mode: LockMode, timeout: Duration) -> StoreResult<Lock> {
        let token = format!("t{}", self.tokens.fetch_add(1, Ordering::Relaxed));
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if self.try_lock(name, mode, &token)? {
                return Ok(Lock { object: name.to_string(), token, mode });
            }
            if tokio::time::timeout_at(deadline, released).await.is_err() {
                return Err(StoreError::LockTimeout(name.to_string()));
            }
        }
    }

    async fn unlock(&self, lock: &Lock) -> StoreResult<()> {
        {
            let mut objects = self.objects();
            if let Some(entry) = objects.get_mut(&lock.object) {
                match lock.mode {
                    LockMode::Exclusive => {
                        if entry.exclusive.as_deref() == Some(lock.token.as_str()) {
                            entry.exclusive = None;
                        }
                    }
                    LockMode::Shared => {
                        entry.shared.remove(&lock.token);
                    }
                }
            }
        }
        self.released.notify_waiters();
        Ok(())
    }

    async fn overwrite(&self, name: &str, value: Vec<u8>, fence: &Lock, create: bool) -> StoreResult<()> {
        let mut objects = self.objects();
        Self::check_fence(&objects, fence)?;
        match objects.get_mut(name) {
            Some(e) => e.value = value,
            None if create => {
                objects.insert(name.to_string(), Entry { value, ..Entry::default() });
            }
            None => return Err(StoreError::NoSuchObject(name.to_string())),
        }
        Ok(())
    }

    async fn swap(&self, name: &str, expected: &[u8], value: Vec<u8>) -> StoreResult<bool> {
        let mut objects = self.objects();
        match objects.get_mut(name) {
            Some(e) if e.exclusive.is_none() && e.shared.is_empty() && e.value.starts_with(expected) => {
                e.value = value;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn remove(&self, name: &str, fence: &Lock) -> StoreResult<()> {
        {
            let mut objects = self.objects();
            Self::check_fence(&objects, fence)?;
            objects.remove(name);
        }
        self.released.notify_waiters();
        Ok(())
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let mut names: Vec<String> = self.objects().keys().filter(|k| k.starts_with(prefix)).cloned().collect();
        names.sort();
        Ok(names)
    }
}

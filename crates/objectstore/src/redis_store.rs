//! The Redis [`ObjectStore`]: the production store of the legacy backend.
//!
//! Keys, under a prefix per deployment (and per test): `PREFIX{NAME}:o` holds the value,
//! `PREFIX{NAME}:x` the exclusive lock token (with a lease, `PX`), `PREFIX{NAME}:s` the shared
//! lock tokens (a sorted set scored by lease expiry). Object names never contain braces (names
//! from requests are escaped by [`crate::objects::escape`]), so the hash tag keeps the three
//! keys of one object in one slot and a name can never reach another object's keys.
//!
//! Locks are leases taken by Lua scripts on the server's clock; a process that dies holding a
//! lock loses it when the lease ends. Every overwrite and delete is a Lua script that first
//! checks that the fence lock is still held with the writer's token, so a process that lost
//! its lease can never overwrite newer data. Waiting for a busy lock backs off exponentially
//! with jitter up to a cap, and gives up at the caller's timeout.
//!
//! Durability: run Redis with `appendonly yes` and `appendfsync always` (see README).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Script};

use crate::store::{Cause, Lock, LockMode, ObjectStore, StoreError, StoreResult, Swap};

/// `MGET`s of one [`ObjectStore::read_many`] in flight at once.
const READS_IN_FLIGHT: usize = 4;

/// One `MGET` of `keys` (full Redis keys) on `con`.
async fn mget((keys, mut con): (Vec<String>, ConnectionManager)) -> StoreResult<Vec<Option<Vec<u8>>>> {
    redis::cmd("MGET").arg(keys).query_async(&mut con).await.map_err(unavailable)
}

const LOCK_X: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, ''} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('ZCARD', KEYS[3]) > 0 then return {0, ''} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {1, ''}
"#;

const LOCK_S: &str = r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1, ''} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {0, ''} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return {1, ''}
"#;

const LOCK_X_READ: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then return {-1, ''} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('EXISTS', KEYS[2]) == 1 or redis.call('ZCARD', KEYS[3]) > 0 then return {0, ''} end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
return {1, v}
"#;

const WRITE_UNLOCK: &str = r#"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -2 end
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('DEL', KEYS[2]) return -1 end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[2])
return 1
"#;

/// Compare-and-swap of many objects (a single `swap` is a batch of one): KEYS are the (value,
/// exclusive lock, shared locks) triples, ARGV the (expected prefix, new value) pairs; answers one
/// 0 or 1 per object. No lock may be held (an empty shared-lock set is deleted by Redis, so EXISTS
/// counts both kinds). The common case costs two commands per object: the lock check, and a SET
/// that returns the old value, which is put back when it turns out to be another write's (Lua
/// scripts run atomically: nobody sees it).
const SWAP_MANY: &str = r#"
local out = {}
for i = 1, #KEYS / 3 do
  local o, e = KEYS[3 * i - 2], ARGV[2 * i - 1]
  out[i] = 0
  if redis.call('EXISTS', KEYS[3 * i - 1], KEYS[3 * i]) == 0 then
    local old = redis.call('SET', o, ARGV[2 * i], 'GET')
    if not old then
      redis.call('DEL', o)
    elseif string.sub(old, 1, #e) == e then
      out[i] = 1
    else
      redis.call('SET', o, old)
    end
  end
end
return out
"#;

/// Objects per SWAP_MANY call: bounds how long one call keeps the server busy.
const SWAP_CHUNK: usize = 256;

const UNLOCK_X: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"#;

const WRITE: &str = r#"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -2 end
if ARGV[3] == '0' and redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
redis.call('SET', KEYS[1], ARGV[2])
return 1
"#;

const REMOVE: &str = r#"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -2 end
redis.call('DEL', KEYS[1])
if ARGV[2] == '1' then redis.call('DEL', KEYS[2], KEYS[3]) end
return 1
"#;

/// Settings of the Redis store.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// Server URL (`redis://host:port/db`).
    pub url: String,
    /// Key prefix of this deployment; must not contain `{` or `}`.
    pub prefix: String,
    /// Lock lease: a lock not released within it expires (its holder is presumed dead).
    pub lock_lease: Duration,
    /// Longest pause between two attempts at a busy lock.
    pub max_backoff: Duration,
    /// How long one command may take before it counts as a failure (`unavailable`).
    pub response_timeout: Duration,
}

impl RedisSettings {
    /// Settings for `url` and `prefix` with the default lease (30 s), backoff cap (50 ms) and
    /// response timeout (5 s).
    pub fn new(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        RedisSettings {
            url: url.into(),
            prefix: prefix.into(),
            lock_lease: Duration::from_secs(30),
            max_backoff: Duration::from_millis(50),
            response_timeout: Duration::from_secs(5),
        }
    }
}

struct Scripts {
    lock_x_read: Script,
    write_unlock: Script,
    lock_x: Script,
    lock_s: Script,
    unlock_x: Script,
    write: Script,
    remove: Script,
    swap_many: Script,
}

/// An [`ObjectStore`] on a Redis server.
pub struct RedisStore {
    settings: RedisSettings,
    con: ConnectionManager,
    scripts: Scripts,
    instance: u64,
    tokens: AtomicU64,
    jitter: RandomState,
}

fn unavailable(e: redis::RedisError) -> StoreError {
    StoreError::Unavailable(format!("redis: {e}"), Some(Cause::new(e)))
}

impl RedisStore {
    /// A store on `settings.url` under `settings.prefix`. The connection is made lazily and
    /// re-made after failures; an unreachable server makes operations fail with
    /// [`StoreError::Unavailable`].
    pub fn new(settings: RedisSettings) -> StoreResult<Self> {
        if settings.prefix.contains(['{', '}']) {
            return Err(StoreError::Unavailable(
                format!("invalid key prefix {:?}: braces are reserved", settings.prefix),
                None,
            ));
        }
        let client = redis::Client::open(settings.url.as_str()).map_err(|e| {
            StoreError::Unavailable(format!("invalid redis URL {:?}: {e}", settings.url), Some(Cause::new(e)))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(settings.response_timeout))
            .set_connection_timeout(Some(settings.response_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(200));
        let con = ConnectionManager::new_lazy_with_config(client, config).map_err(unavailable)?;
        let scripts = Scripts {
            lock_x_read: Script::new(LOCK_X_READ),
            write_unlock: Script::new(WRITE_UNLOCK),
            lock_x: Script::new(LOCK_X),
            lock_s: Script::new(LOCK_S),
            unlock_x: Script::new(UNLOCK_X),
            write: Script::new(WRITE),
            remove: Script::new(REMOVE),
            swap_many: Script::new(SWAP_MANY),
        };
        let jitter = RandomState::new();
        let instance = jitter.hash_one(std::process::id());
        Ok(RedisStore { settings, con, scripts, instance, tokens: AtomicU64::new(0), jitter })
    }

    fn key(&self, name: &str, suffix: &str) -> String {
        // `prefix{name}:suffix`, without the formatting machinery: claims build three per job.
        let prefix = &self.settings.prefix;
        let mut key = String::with_capacity(prefix.len() + name.len() + suffix.len() + 3);
        key.push_str(prefix);
        key.push('{');
        key.push_str(name);
        key.push_str("}:");
        key.push_str(suffix);
        key
    }

    fn con(&self) -> ConnectionManager {
        self.con.clone()
    }

    /// Deletes every key of this prefix (tests and scenario runs remove their namespace), a
    /// thousand at a time as the scan finds them.
    pub async fn clear(&self) -> StoreResult<u64> {
        let (mut scan, mut del) = (self.con(), self.con());
        let pattern = format!("{}*", glob_escape(&self.settings.prefix));
        let mut keys = scan.scan_options::<String>(scan_options(&pattern)).await.map_err(unavailable)?;
        let (mut batch, mut deleted) = (Vec::with_capacity(1000), 0);
        loop {
            let next = keys.next_item().await.transpose().map_err(unavailable)?;
            let done = next.is_none();
            batch.extend(next);
            if batch.len() >= 1000 || (done && !batch.is_empty()) {
                deleted += batch.len() as u64;
                let _: () = del.unlink(std::mem::take(&mut batch)).await.map_err(unavailable)?;
            }
            if done {
                return Ok(deleted);
            }
        }
    }

    /// Runs a lock script until it grants the lock (backing off between attempts) or the
    /// timeout passes; the script answers {1, value} (granted), {0, _} (busy) or {-1, _} (no such
    /// object).
    async fn acquire(
        &self,
        script: &Script,
        name: &str,
        mode: LockMode,
        timeout: Duration,
    ) -> StoreResult<(Lock, Vec<u8>)> {
        let token = format!("{:x}-{}", self.instance, self.tokens.fetch_add(1, Ordering::Relaxed));
        let deadline = tokio::time::Instant::now() + timeout;
        let mut attempt = 0;
        loop {
            let mut con = self.con();
            let (status, value): (i64, Vec<u8>) = script
                .key(self.key(name, "o"))
                .key(self.key(name, "x"))
                .key(self.key(name, "s"))
                .arg(&token)
                .arg(self.settings.lock_lease.as_millis() as u64)
                .invoke_async(&mut con)
                .await
                .map_err(unavailable)?;
            match status {
                1 => return Ok((Lock { object: name.to_string(), token, mode }, value)),
                -1 => return Err(StoreError::NoSuchObject(name.to_string())),
                _ => {}
            }
            let pause = self.backoff(attempt);
            if tokio::time::Instant::now() + pause > deadline {
                return Err(StoreError::LockTimeout(name.to_string()));
            }
            tokio::time::sleep(pause).await;
            attempt += 1;
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let base = Duration::from_micros(200).saturating_mul(1 << attempt.min(12)).min(self.settings.max_backoff);
        let jitter =
            (self.jitter.hash_one((self.instance, attempt, self.tokens.load(Ordering::Relaxed))) % 1000) as u32;
        base + base.mul_f64(jitter as f64 / 1000.0)
    }
}

/// Removes a prefix's keys when dropped (tests: nothing is left behind, even after a panic).
/// The removal runs on a thread of its own with its own connection.
pub struct ClearOnDrop(pub RedisSettings);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        let settings = self.0.clone();
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async { RedisStore::new(settings).ok()?.clear().await.ok() })
        });
        let _ = done.join();
    }
}

/// Keys SCAN examines per call: a walk of 250 000 keys in calls of 10 000 took 0.10 s against
/// 0.18 s in calls of 1000 (fewer round trips; each call holds the server a millisecond or two).
const SCAN_COUNT: usize = 10_000;

/// SCAN options of every key walk here: the pattern, [`SCAN_COUNT`] keys per round trip.
fn scan_options(pattern: &str) -> redis::ScanOptions {
    redis::ScanOptions::default().with_pattern(pattern).with_count(SCAN_COUNT)
}

/// Every key matching `pattern` (a glob; escape literal parts with [`glob_escape`]), walking the
/// keyspace once with SCAN.
pub async fn scan_keys<C>(con: &mut C, pattern: &str) -> redis::RedisResult<Vec<String>>
where
    C: redis::aio::ConnectionLike + Send + Sync,
{
    let mut iter = con.scan_options::<String>(scan_options(pattern)).await?;
    let mut keys = Vec::new();
    while let Some(key) = iter.next_item().await {
        keys.push(key?);
    }
    Ok(keys)
}

fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[async_trait]
impl ObjectStore for RedisStore {
    fn describe(&self) -> String {
        "redis".into()
    }

    async fn create(&self, name: &str, value: Vec<u8>) -> StoreResult<()> {
        let mut con = self.con();
        let created: bool = redis::cmd("SET")
            .arg(self.key(name, "o"))
            .arg(value)
            .arg("NX")
            .query_async::<Option<String>>(&mut con)
            .await
            .map_err(unavailable)?
            .is_some();
        if created {
            Ok(())
        } else {
            Err(StoreError::AlreadyExists(name.to_string()))
        }
    }

    async fn read(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        let mut con = self.con();
        con.get(self.key(name, "o")).await.map_err(unavailable)
    }

    /// An `MGET` per thousand names, up to [`READS_IN_FLIGHT`] of them sent at once on the
    /// multiplexed connection: the server answers the next while this side takes in the last
    /// (a page of ten thousand is not ten round trips end to end).
    async fn read_many(&self, names: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        let requests: Vec<(Vec<String>, ConnectionManager)> =
            names.chunks(1000).map(|chunk| (chunk.iter().map(|n| self.key(n, "o")).collect(), self.con())).collect();
        let mut answers = futures::stream::iter(requests).map(mget).buffered(READS_IN_FLIGHT);
        let mut out = Vec::with_capacity(names.len());
        while let Some(values) = answers.next().await {
            out.extend(values?);
        }
        Ok(out)
    }

    async fn lock(&self, name: &str, mode: LockMode, timeout: Duration) -> StoreResult<Lock> {
        let script = match mode {
            LockMode::Exclusive => &self.scripts.lock_x,
            LockMode::Shared => &self.scripts.lock_s,
        };
        self.acquire(script, name, mode, timeout).await.map(|(lock, _)| lock)
    }

    async fn lock_and_read(&self, name: &str, mode: LockMode, timeout: Duration) -> StoreResult<(Lock, Vec<u8>)> {
        if mode == LockMode::Shared {
            let lock = self.lock(name, mode, timeout).await?;
            return match self.read(name).await? {
                Some(v) => Ok((lock, v)),
                None => {
                    self.unlock(&lock).await?;
                    Err(StoreError::NoSuchObject(name.to_string()))
                }
            };
        }
        self.acquire(&self.scripts.lock_x_read, name, mode, timeout).await
    }

    async fn write_and_unlock(&self, name: &str, value: Vec<u8>, lock: &Lock) -> StoreResult<()> {
        let mut con = self.con();
        let r: i64 = self
            .scripts
            .write_unlock
            .key(self.key(name, "o"))
            .key(self.key(&lock.object, "x"))
            .arg(&lock.token)
            .arg(value)
            .invoke_async(&mut con)
            .await
            .map_err(unavailable)?;
        match r {
            1 => Ok(()),
            -1 => Err(StoreError::NoSuchObject(name.to_string())),
            _ => Err(StoreError::LockLost(lock.object.clone())),
        }
    }

    async fn unlock(&self, lock: &Lock) -> StoreResult<()> {
        let mut con = self.con();
        match lock.mode {
            LockMode::Exclusive => {
                let _: i64 = self
                    .scripts
                    .unlock_x
                    .key(self.key(&lock.object, "x"))
                    .arg(&lock.token)
                    .invoke_async(&mut con)
                    .await
                    .map_err(unavailable)?;
            }
            LockMode::Shared => {
                let _: i64 = con.zrem(self.key(&lock.object, "s"), &lock.token).await.map_err(unavailable)?;
            }
        }
        Ok(())
    }

    async fn overwrite(&self, name: &str, value: Vec<u8>, fence: &Lock, create: bool) -> StoreResult<()> {
        let mut con = self.con();
        let r: i64 = self
            .scripts
            .write
            .key(self.key(name, "o"))
            .key(self.key(&fence.object, "x"))
            .arg(&fence.token)
            .arg(value)
            .arg(if create { "1" } else { "0" })
            .invoke_async(&mut con)
            .await
            .map_err(unavailable)?;
        match r {
            1 => Ok(()),
            -1 => Err(StoreError::NoSuchObject(name.to_string())),
            _ => Err(StoreError::LockLost(fence.object.clone())),
        }
    }

    async fn swap(&self, name: &str, expected: &[u8], value: Vec<u8>) -> StoreResult<bool> {
        let swap = Swap { name: name.to_string(), expected: expected.to_vec(), value };
        Ok(self.swap_many(std::slice::from_ref(&swap)).await?.first() == Some(&true))
    }

    async fn swap_many(&self, swaps: &[Swap]) -> StoreResult<Vec<bool>> {
        let calls = swaps.chunks(SWAP_CHUNK).map(|chunk| async move {
            let mut invocation = self.scripts.swap_many.prepare_invoke();
            for s in chunk {
                invocation.key(self.key(&s.name, "o")).key(self.key(&s.name, "x")).key(self.key(&s.name, "s"));
                invocation.arg(&s.expected).arg(&s.value);
            }
            let answers: Vec<i64> = invocation.invoke_async(&mut self.con()).await.map_err(unavailable)?;
            if answers.len() != chunk.len() {
                return Err(StoreError::Unavailable(
                    format!("swap of {} objects answered {} times", chunk.len(), answers.len()),
                    None,
                ));
            }
            Ok(answers.into_iter().map(|a| a == 1).collect::<Vec<bool>>())
        });
        let mut out = Vec::with_capacity(swaps.len());
        for answers in join_all(calls).await {
            out.extend(answers?);
        }
        Ok(out)
    }

    async fn remove(&self, name: &str, fence: &Lock) -> StoreResult<()> {
        let mut con = self.con();
        let own = fence.object == name;
        let r: i64 = self
            .scripts
            .remove
            .key(self.key(name, "o"))
            .key(self.key(&fence.object, "x"))
            .key(self.key(name, "s"))
            .arg(&fence.token)
            .arg(if own { "1" } else { "0" })
            .invoke_async(&mut con)
            .await
            .map_err(unavailable)?;
        if r == 1 {
            Ok(())
        } else {
            Err(StoreError::LockLost(fence.object.clone()))
        }
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        let mut con = self.con();
        let pattern = format!("{}{{{}*", glob_escape(&self.settings.prefix), glob_escape(prefix));
        let strip = self.settings.prefix.len() + 1;
        let mut names: Vec<String> = scan_keys(&mut con, &pattern)
            .await
            .map_err(unavailable)?
            .into_iter()
            .filter_map(|k| k.strip_suffix("}:o").map(|n| n[strip..].to_string()))
            .collect();
        names.sort();
        Ok(names)
    }

    /// One walk of this store's keys (SCAN walks the whole keyspace whatever its pattern: a walk
    /// per prefix cost the export a walk of 200 000 keys each), the names sorted into `prefixes`.
    async fn list_many(&self, prefixes: &[&str]) -> StoreResult<Vec<Vec<String>>> {
        let mut con = self.con();
        let pattern = format!("{}{{*", glob_escape(&self.settings.prefix));
        let strip = self.settings.prefix.len() + 1;
        let mut out = vec![Vec::new(); prefixes.len()];
        for key in scan_keys(&mut con, &pattern).await.map_err(unavailable)? {
            let Some(name) = key.strip_suffix("}:o").and_then(|n| n.get(strip..)) else { continue };
            for (p, names) in prefixes.iter().zip(&mut out) {
                if name.starts_with(p) {
                    names.push(name.to_string());
                }
            }
        }
        for names in &mut out {
            names.sort();
        }
        Ok(out)
    }
}

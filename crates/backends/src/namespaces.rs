//! The namespaces of scenario runs (a Postgres schema, a Redis key prefix), marked with their
//! owner, and the removal of those whose owner died.
//!
//! A run's namespace is named `tapesched_run_<pid>_<n>_<random>` and carries an owner mark,
//! written when the namespace is created and before anything else is in it: the schema's comment
//! (created with it in one transaction), or the key `<prefix>run-owner`. The mark reads
//! `tapesched run: host=H pid=P started=T`, where T is the process's start time in clock ticks
//! since boot (`/proc/<pid>/stat`), so a pid reused by another process is not taken for the
//! owner. [`collect_dead_runs`] removes the namespaces whose owner ran on this host and is gone;
//! namespaces of live runs and of other hosts are left alone.

use std::time::Duration;

use tapesched_objectstore::redis_store::{RedisSettings, RedisStore};
use tapesched_scheduler::{Error, Result};

/// What every run namespace's name starts with.
pub const RUN_PREFIX: &str = "tapesched_run_";

/// The Redis key, under a run's prefix, holding its owner mark.
pub const REDIS_OWNER_KEY: &str = "run-owner";

/// A fresh run namespace name (a schema name, or a key prefix without its trailing `:`).
pub fn run_name() -> String {
    tapesched_services::unique_name(RUN_PREFIX.trim_end_matches('_'))
}

/// The process that owns a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Start time of the process, in clock ticks since boot (`None` where unknown).
    pub started: Option<u64>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty() && !h.contains(char::is_whitespace))
        .unwrap_or_else(|| "unknown".into())
}

/// The start time of process `pid` (field 22 of `/proc/<pid>/stat`); `None` if it does not exist.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl Owner {
    /// This process.
    pub fn current() -> Owner {
        let pid = std::process::id();
        Owner { host: hostname(), pid, started: start_time(pid) }
    }

    /// Parses a mark; `None` if `text` is not one.
    pub fn parse(text: &str) -> Option<Owner> {
        let fields = text.strip_prefix("tapesched run: ")?;
        let (mut host, mut pid, mut started) = (None, None, None);
        for field in fields.split_whitespace() {
            match field.split_once('=')? {
                ("host", h) => host = Some(h.to_string()),
                ("pid", p) => pid = p.parse().ok(),
                ("started", "?") => {}
                ("started", t) => started = Some(t.parse().ok()?),
                _ => {}
            }
        }
        Some(Owner { host: host?, pid: pid?, started })
    }

    /// Whether the owner is known to be gone: it ran on this host and no process with its pid
    /// and start time exists. An owner on another host, or on a system without `/proc`, is never
    /// known to be gone.
    pub fn is_gone(&self) -> bool {
        if self.host != hostname() || !std::path::Path::new("/proc/self/stat").exists() {
            return false;
        }
        match (start_time(self.pid), self.started) {
            (None, _) => true,
            (Some(now), Some(then)) => now != then,
            (Some(_), None) => false,
        }
    }
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tapesched run: host={} pid={} started=", self.host, self.pid)?;
        match self.started {
            Some(t) => write!(f, "{t}"),
            None => f.write_str("?"),
        }
    }
}

/// Creates `schema` marked with this process as its owner.
pub async fn mark_postgres(url: &str, schema: &str) -> Result<()> {
    mark_postgres_as(url, schema, &Owner::current()).await
}

/// Creates `schema` marked with `owner` (tests make namespaces of dead runs with it).
pub async fn mark_postgres_as(url: &str, schema: &str, owner: &Owner) -> Result<()> {
    tapesched_postgres::create_schema_with_comment(url, schema, &owner.to_string()).await
}

async fn redis_connection(url: &str) -> Result<redis::aio::MultiplexedConnection> {
    let unavailable = |e: String| Error::unavailable(format!("cannot connect to Redis at {url}: {e}"));
    let client = redis::Client::open(url).map_err(|e| Error::invalid(format!("invalid Redis URL {url:?}: {e}")))?;
    match tokio::time::timeout(Duration::from_secs(10), client.get_multiplexed_async_connection()).await {
        Ok(Ok(con)) => Ok(con),
        Ok(Err(e)) => Err(unavailable(e.to_string())),
        Err(_) => Err(unavailable("no answer within 10 s".into())),
    }
}

/// Writes this process's owner mark under the key prefix `prefix`.
pub async fn mark_redis(url: &str, prefix: &str) -> Result<()> {
    mark_redis_as(url, prefix, &Owner::current()).await
}

/// Writes `owner`'s mark under the key prefix `prefix`.
pub async fn mark_redis_as(url: &str, prefix: &str, owner: &Owner) -> Result<()> {
    let mut con = redis_connection(url).await?;
    redis::cmd("SET")
        .arg(format!("{prefix}{REDIS_OWNER_KEY}"))
        .arg(owner.to_string())
        .query_async::<()>(&mut con)
        .await
        .map_err(|e| Error::unavailable(format!("redis: {e}")))
}

/// Removes every key under `prefix` (the owner mark included).
pub async fn clear_redis(url: &str, prefix: &str) -> Result<u64> {
    let store = RedisStore::new(RedisSettings::new(url, prefix)).map_err(|e| Error::unavailable(e.to_string()))?;
    store.clear().await.map_err(|e| Error::unavailable(e.to_string()))
}

/// What [`collect_dead_runs`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Collected {
    /// Namespaces removed (`postgres schema S`, `redis prefix P`) with their owner.
    pub removed: Vec<(String, Owner)>,
    /// Namespaces left alone: their owner is alive, or ran on another host.
    pub kept: Vec<(String, Owner)>,
}

/// Removes the run namespaces whose owner is gone ([`Owner::is_gone`]) from the PostgreSQL
/// server at `database_url` and the Redis server at `redis_url` (each optional).
pub async fn collect_dead_runs(database_url: Option<&str>, redis_url: Option<&str>) -> Result<Collected> {
    let mut out = Collected::default();
    if let Some(url) = database_url {
        for (schema, comment) in tapesched_postgres::schemas_with_prefix(url, RUN_PREFIX).await? {
            let Some(owner) = comment.as_deref().and_then(Owner::parse) else { continue };
            let name = format!("postgres schema {schema}");
            if owner.is_gone() {
                tapesched_postgres::drop_schema(url, &schema).await?;
                out.removed.push((name, owner));
            } else {
                out.kept.push((name, owner));
            }
        }
    }
    if let Some(url) = redis_url {
        let mut con = redis_connection(url).await?;
        let pattern = format!("{RUN_PREFIX}*:{REDIS_OWNER_KEY}");
        let mut marks = tapesched_objectstore::redis_store::scan_keys(&mut con, &pattern)
            .await
            .map_err(|e| Error::unavailable(format!("redis: {e}")))?;
        marks.sort();
        for key in marks {
            let prefix = key[..key.len() - REDIS_OWNER_KEY.len()].to_string();
            let mark: Option<String> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut con)
                .await
                .map_err(|e| Error::unavailable(format!("redis: {e}")))?;
            let Some(owner) = mark.as_deref().and_then(Owner::parse) else { continue };
            let name = format!("redis prefix {prefix}");
            if owner.is_gone() {
                clear_redis(url, &prefix).await?;
                out.removed.push((name, owner));
            } else {
                out.kept.push((name, owner));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip() {
        let me = Owner::current();
        assert_eq!(Owner::parse(&me.to_string()), Some(me.clone()));
        assert!(me.started.is_some(), "Linux: /proc/self/stat has the start time");
        assert!(!me.is_gone(), "this process is alive");
        assert_eq!(Owner::parse("something else"), None);
        let unknown = Owner { started: None, ..me };
        assert_eq!(Owner::parse(&unknown.to_string()), Some(unknown));
    }

    #[test]
    fn an_exited_process_and_a_reused_pid_are_gone_another_host_never() {
        let mut child = std::process::Command::new("true").spawn().expect("true runs");
        let pid = child.id();
        child.wait().expect("exits");
        let me = Owner::current();
        assert!(Owner { pid, started: Some(1), ..me.clone() }.is_gone());
        assert!(Owner { started: me.started.map(|t| t + 1), ..me.clone() }.is_gone(), "same pid, other process");
        assert!(!Owner { host: format!("not-{}", me.host), pid, ..me }.is_gone());
    }

    #[test]
    fn run_names_are_usable_schema_names() {
        let name = run_name();
        assert!(name.starts_with(RUN_PREFIX), "{name}");
        assert!(tapesched_postgres::check_schema_name(&name).is_ok(), "{name}");
    }
}

//! Scheduler backends by name: the one place that builds them, for every binary.
//!
//! - [`Backend`]: the backends that exist (`objectstore-memory`, `objectstore-redis`,
//!   `postgres`), by command-line name, and the migration bridge over two of them
//!   (`bridge:LEGACY:TARGET:STAGE`, [`BridgeSpec`]);
//! - [`database_url`] / [`redis_url`]: where a server is, in one order for every command (the URL
//!   given on the command line, then `TAPESCHED_DATABASE_URL` / `TAPESCHED_REDIS_URL`, then the
//!   standard local port, then an ephemeral server: `tapesched-services`);
//! - [`open`]: a backend from a [`Target`] (name, URLs, schema or key prefix), as long-lived
//!   processes use it (`tapesched worker drive`, `db collect`); [`open_postgres`] and
//!   [`redis_store`] are the only places the two server backends are connected;
//! - [`Backend::open`]: a fresh, empty instance in a namespace of its own (a scenario run, a
//!   test), marked with its owner and removed by [`OpenBackend::close`] or on drop (a bridge
//!   opens both of its sides so, and [`OpenBackend::divergences`] gives what they disagreed on);
//!   [`namespaces`] finds and removes the namespaces of runs whose process died.
//!
//! Every error is a [`tapesched_scheduler::Error`]: `invalid_argument` for a name or URL that
//! cannot be used, `unavailable` for a server that cannot be reached.

#![warn(missing_docs)]

pub mod buffer;
pub mod namespaces;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tapesched_objectstore::redis_store::{RedisSettings, RedisStore};
use tapesched_objectstore::{ObjectstoreConfig, ObjectstoreDb};
use tapesched_postgres::{PgConfig, PgSchedulerDb};
use tapesched_scheduler::db::SchedulerDb;
use tapesched_scheduler::{Error, Result};

pub use tapesched_bridge as bridge;
use tapesched_bridge::{BridgeDb, Divergence, DivergenceLog, Stage};
pub use tapesched_services::{DATABASE_URL_VAR, REDIS_URL_VAR};

/// A scheduler backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The objectstore backend on an in-process memory store.
    ObjectstoreMemory,
    /// The objectstore backend on Redis.
    ObjectstoreRedis,
    /// The PostgreSQL backend.
    Postgres,
    /// The migration bridge over two of the others, in one stage (`bridge:LEGACY:TARGET:STAGE`).
    Bridge(BridgeSpec),
}

/// The two sides and the stage of a bridge backend. The sides are backends of
/// [`Backend::ALL`] (never bridges).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BridgeSpec {
    legacy: &'static Backend,
    target: &'static Backend,
    /// The stage every operation of a run goes through.
    pub stage: Stage,
}

impl BridgeSpec {
    /// The legacy side.
    pub fn legacy(&self) -> Backend {
        *self.legacy
    }
    /// The target side.
    pub fn target(&self) -> Backend {
        *self.target
    }
}

/// The expected form of a bridge backend's name, for messages.
pub const BRIDGE_FORM: &str = "bridge:LEGACY:TARGET:STAGE";

impl Backend {
    /// Every backend that stores the scheduler's state itself, in the order of the contract (a
    /// bridge is built over two of them).
    pub const ALL: &'static [Backend] = &[Backend::ObjectstoreMemory, Backend::ObjectstoreRedis, Backend::Postgres];

    /// The backend's command-line name (`bridge:objectstore-memory:postgres:shadow` for a
    /// bridge).
    pub fn name(self) -> String {
        match self {
            Backend::ObjectstoreMemory => "objectstore-memory".into(),
            Backend::ObjectstoreRedis => "objectstore-redis".into(),
            Backend::Postgres => "postgres".into(),
            Backend::Bridge(b) => format!("bridge:{}:{}:{}", b.legacy.name(), b.target.name(), b.stage),
        }
    }

    /// The names of every backend, comma-separated, and the bridge's form (for help texts and
    /// messages).
    pub fn names() -> String {
        let mut names: Vec<String> = Backend::ALL.iter().map(|b| b.name()).collect();
        names.push(BRIDGE_FORM.into());
        names.join(", ")
    }

    /// The backend of a command-line name; an unknown name is an `invalid_argument` error listing
    /// the known ones, a malformed bridge name one naming the expected form.
    pub fn from_name(name: &str) -> Result<Backend> {
        if let Some(rest) = name.strip_prefix("bridge") {
            return Backend::bridge_from(name, rest);
        }
        Backend::plain(name).copied().ok_or_else(|| {
            Error::invalid(format!("unknown backend {:?}; known backends: {}", clip(name, 100), Backend::names()))
        })
    }

    fn plain(name: &str) -> Option<&'static Backend> {
        Backend::ALL.iter().find(|b| b.name() == name)
    }

    /// `bridge:LEGACY:TARGET:STAGE` (`rest` is what follows `bridge`).
    fn bridge_from(name: &str, rest: &str) -> Result<Backend> {
        let malformed = |why: String| {
            let plain: Vec<String> = Backend::ALL.iter().map(|b| b.name()).collect();
            Error::invalid(format!(
                "bad bridge backend {:?}: {why}; expected {BRIDGE_FORM}, LEGACY and TARGET two different backends of {}, STAGE one of {}",
                clip(name, 100),
                plain.join(", "),
                Stage::names()
            ))
        };
        let parts: Vec<&str> = match rest.strip_prefix(':') {
            Some(r) => r.split(':').collect(),
            None => return Err(malformed("no sides and stage".into())),
        };
        let [legacy, target, stage] = parts[..] else {
            return Err(malformed(format!("{} parts after \"bridge:\", not 3", parts.len())));
        };
        let side = |n: &str, what: &str| {
            Backend::plain(n).ok_or_else(|| malformed(format!("unknown {what} backend {:?}", clip(n, 100))))
        };
        let (legacy, target) = (side(legacy, "legacy")?, side(target, "target")?);
        if legacy == target {
            return Err(malformed(format!("both sides are {legacy}")));
        }
        let stage = Stage::parse(stage).map_err(|e| malformed(e.message))?;
        Ok(Backend::Bridge(BridgeSpec { legacy, target, stage }))
    }

    /// The backends that store state in this one: itself, or a bridge's two sides.
    pub fn stores(self) -> Vec<Backend> {
        match self {
            Backend::Bridge(b) => vec![b.legacy(), b.target()],
            plain => vec![plain],
        }
    }

    /// Parses a comma-separated list of names (`compare --backends a,b`).
    pub fn parse_list(names: &str) -> Result<Vec<Backend>> {
        names.split(',').map(str::trim).filter(|n| !n.is_empty()).map(Backend::from_name).collect()
    }

    /// Checks that the backend's server can be found (see [`database_url`]), without opening it.
    pub fn check_available(self) -> Result<()> {
        match self {
            Backend::ObjectstoreMemory => Ok(()),
            Backend::ObjectstoreRedis => redis_url(None).map(|_| ()),
            Backend::Postgres => database_url(None).map(|_| ()),
            Backend::Bridge(b) => b.legacy().check_available().and_then(|()| b.target().check_available()),
        }
    }

    /// A fresh, empty instance of the backend in a namespace of its own (a Postgres schema, a
    /// Redis key prefix, named `tapesched_run_<pid>_...`), marked with this process as its owner
    /// ([`namespaces`]) and removed by [`OpenBackend::close`] or when the instance is dropped.
    ///
    /// A bridge opens both of its sides so (both namespaces are removed at close) and records
    /// its divergences for [`OpenBackend::divergences`].
    pub async fn open(self) -> Result<OpenBackend> {
        if let Backend::Bridge(spec) = self {
            return Backend::open_bridge(spec).await;
        }
        let in_context = |e: Error| {
            let message = format!("backend {}: {}", self.name(), e.message);
            let kind = e.kind;
            e.rephrased(kind, message)
        };
        let (db, cleanup, namespace): (Arc<dyn SchedulerDb>, Option<Cleanup>, Option<String>) = match self {
            Backend::ObjectstoreMemory => {
                (tapesched_objectstore::memory_backend(ObjectstoreConfig::default()), None, None)
            }
            Backend::ObjectstoreRedis => {
                let url = redis_url(None).map_err(in_context)?;
                let prefix = format!("{}:", namespaces::run_name());
                let settings = RedisSettings::new(url.clone(), prefix.clone());
                namespaces::mark_redis(&url, &prefix).await.map_err(in_context)?;
                // The cleanup may run on another runtime (at drop): it opens its own connection.
                let cleanup: Cleanup = Box::new(move || {
                    Box::pin(async move {
                        if let Err(e) = namespaces::clear_redis(&settings.url, &settings.prefix).await {
                            tracing::warn!(error = %e, "could not remove a scenario run's Redis keys");
                        }
                    })
                });
                let db = match redis_store(RedisSettings::new(url, prefix.clone())) {
                    Ok(store) => ObjectstoreDb::new(Arc::new(store), ObjectstoreConfig::default()),
                    Err(e) => {
                        cleanup().await;
                        return Err(in_context(e));
                    }
                };
                if let Err(e) = db.ping().await {
                    cleanup().await;
                    return Err(in_context(e));
                }
                (Arc::new(db), Some(cleanup), Some(prefix))
            }
            Backend::Postgres => {
                let url = database_url(None).map_err(in_context)?;
                let schema = namespaces::run_name();
                namespaces::mark_postgres(&url, &schema).await.map_err(in_context)?;
                let (drop_url, drop_as) = (url.clone(), schema.clone());
                let cleanup: Cleanup = Box::new(move || {
                    Box::pin(async move {
                        if let Err(e) = tapesched_postgres::drop_schema(&drop_url, &drop_as).await {
                            tracing::warn!(error = %e, "could not drop a scenario run's Postgres schema");
                        }
                    })
                });
                let config = PgConfig { max_connections: 2, ..PgConfig::new(url, schema.clone()) };
                match open_postgres(config).await {
                    Ok(db) => (Arc::new(db), Some(cleanup), Some(schema)),
                    Err(e) => {
                        cleanup().await;
                        return Err(in_context(e));
                    }
                }
            }
            Backend::Bridge(_) => unreachable!("bridges are opened by open_bridge"),
        };
        if let Some(ns) = &namespace {
            tracing::info!(backend = %self, namespace = %ns, "opened a run namespace");
        }
        Ok(OpenBackend { backend: self, db, namespace, cleanup, divergences: None })
    }

    async fn open_bridge(spec: BridgeSpec) -> Result<OpenBackend> {
        let backend = Backend::Bridge(spec);
        let mut legacy = Box::pin(spec.legacy().open()).await?;
        // On failure `legacy` is dropped, which removes its namespace.
        let mut target = Box::pin(spec.target().open()).await?;
        let db = BridgeDb::fixed(legacy.db.clone(), target.db.clone(), spec.stage);
        let log = db.log().clone();
        let namespace = match (legacy.namespace(), target.namespace()) {
            (None, None) => None,
            (l, t) => Some(format!("{}+{}", l.unwrap_or("memory"), t.unwrap_or("memory"))),
        };
        let (l, t) = (legacy.cleanup.take(), target.cleanup.take());
        let cleanup: Option<Cleanup> = (l.is_some() || t.is_some()).then(|| -> Cleanup {
            Box::new(move || {
                Box::pin(async move {
                    for c in [l, t].into_iter().flatten() {
                        c().await;
                    }
                })
            })
        });
        Ok(OpenBackend { backend, db: Arc::new(db), namespace, cleanup, divergences: Some(log) })
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl std::str::FromStr for Backend {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Backend::from_name(s)
    }
}

/// Removes a backend instance's namespace (Redis keys, Postgres schema).
pub type Cleanup = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A backend instance in a namespace of its own. The namespace is removed by
/// [`OpenBackend::close`], or, if the instance is dropped without being closed (a panicking test,
/// a run interrupted by a signal), on a helper thread at drop.
pub struct OpenBackend {
    backend: Backend,
    /// The scheduler's storage.
    pub db: Arc<dyn SchedulerDb>,
    namespace: Option<String>,
    cleanup: Option<Cleanup>,
    divergences: Option<Arc<DivergenceLog>>,
}

impl Drop for OpenBackend {
    fn drop(&mut self) {
        if let Some(cleanup) = self.cleanup.take() {
            let done = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    rt.block_on(cleanup());
                }
            });
            let _ = done.join();
        }
    }
}

impl OpenBackend {
    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// What the two sides of a bridge disagreed on so far (empty for other backends).
    pub fn divergences(&self) -> Vec<Divergence> {
        self.divergences.as_ref().map(|l| l.divergences()).unwrap_or_default()
    }

    /// The divergence log of a bridge (counters and divergences), `None` for other backends.
    pub fn divergence_log(&self) -> Option<&Arc<DivergenceLog>> {
        self.divergences.as_ref()
    }

    /// The Postgres schema or Redis key prefix of the instance (none for the memory backend;
    /// `LEGACY+TARGET` for a bridge, `memory` standing for a side without one).
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    /// Releases the instance (and, for server backends, removes its namespace).
    pub async fn close(mut self) {
        if let Some(cleanup) = self.cleanup.take() {
            cleanup().await;
        }
    }
}

/// The PostgreSQL server to use: `explicit` (a `--database-url`), else the order of
/// `tapesched-services` (`TAPESCHED_DATABASE_URL`, 127.0.0.1:5432, an ephemeral server, a
/// container). Not finding one is `unavailable`.
pub fn database_url(explicit: Option<&str>) -> Result<String> {
    match explicit {
        Some(url) => Ok(url.to_string()),
        None => tapesched_services::postgres_url().map_err(|e| Error::unavailable(format!("{e:#}"))),
    }
}

/// The Redis server to use: `explicit` (a `--redis-url`), else the order of
/// `tapesched-services` (`TAPESCHED_REDIS_URL`, 127.0.0.1:6379, an ephemeral server, a
/// container). Not finding one is `unavailable`.
pub fn redis_url(explicit: Option<&str>) -> Result<String> {
    match explicit {
        Some(url) => Ok(url.to_string()),
        None => tapesched_services::redis_url().map_err(|e| Error::unavailable(format!("{e:#}"))),
    }
}

/// Connects the PostgreSQL backend (schema created and migrated if needed). An unreachable
/// server fails at once with its cause (one connection is tried before the pool is built).
pub async fn open_postgres(config: PgConfig) -> Result<PgSchedulerDb> {
    PgSchedulerDb::connect(config).await
}

/// A Redis object store (the connection is made lazily; see [`ObjectstoreDb::ping`]).
pub fn redis_store(settings: RedisSettings) -> Result<RedisStore> {
    RedisStore::new(settings).map_err(|e| Error::unavailable(e.to_string()))
}

/// Where a long-lived process's backend is: a fixed namespace (not a fresh one), given by the
/// operator.
#[derive(Debug, Clone)]
pub struct Target {
    /// Which backend.
    pub backend: Backend,
    /// PostgreSQL server (postgres); `None`: see [`database_url`].
    pub database_url: Option<String>,
    /// Schema of the instance (postgres).
    pub schema: String,
    /// Redis server (objectstore-redis); `None`: see [`redis_url`].
    pub redis_url: Option<String>,
    /// Key prefix of the deployment (objectstore-redis).
    pub redis_prefix: String,
    /// Lock lease (objectstore-redis): how long a lock of a dead process blocks others.
    pub lock_lease: Option<Duration>,
    /// Pool size (postgres).
    pub max_connections: u32,
    /// Mounts whose heartbeat is older than this many seconds are dead (postgres).
    pub mount_timeout: Option<i64>,
    /// What the process is, in its agent's name (objectstore).
    pub process_label: String,
}

impl Target {
    /// The defaults: schema `tapesched`, key prefix `tapesched:`, URLs found as
    /// [`database_url`] / [`redis_url`] say, 2 connections.
    pub fn new(backend: Backend) -> Target {
        Target {
            backend,
            database_url: None,
            schema: "tapesched".into(),
            redis_url: None,
            redis_prefix: "tapesched:".into(),
            lock_lease: None,
            max_connections: 2,
            mount_timeout: None,
            process_label: "frontend".into(),
        }
    }

    /// The PostgreSQL settings of this target (URL resolved).
    pub fn postgres_config(&self) -> Result<PgConfig> {
        let url = database_url(self.database_url.as_deref())?;
        Ok(PgConfig {
            max_connections: self.max_connections,
            mount_timeout: self.mount_timeout,
            ..PgConfig::new(url, self.schema.clone())
        })
    }
}

/// Opens the backend a [`Target`] names. The memory backend is refused: it holds nothing another
/// process could see.
pub async fn open(target: &Target) -> Result<Arc<dyn SchedulerDb>> {
    match target.backend {
        Backend::Postgres => Ok(Arc::new(open_postgres(target.postgres_config()?).await?)),
        Backend::ObjectstoreRedis => {
            let url = redis_url(target.redis_url.as_deref())?;
            let mut settings = RedisSettings::new(url, target.redis_prefix.clone());
            if let Some(lease) = target.lock_lease {
                settings.lock_lease = lease;
            }
            let config = ObjectstoreConfig {
                process_label: target.process_label.clone(),
                agent_timeout: target.mount_timeout,
                ..ObjectstoreConfig::default()
            };
            let db = ObjectstoreDb::new(Arc::new(redis_store(settings)?), config);
            db.ping().await?;
            Ok(Arc::new(db))
        }
        Backend::ObjectstoreMemory => Err(Error::invalid(
            "backend objectstore-memory lives inside one process: a separate process needs postgres or objectstore-redis",
        )),
        Backend::Bridge(_) => Err(Error::invalid(
            "a bridge backend is for scenario runs and tests only so far: a separate process needs postgres or objectstore-redis",
        )),
    }
}

/// `text` cut to at most `max` bytes (at a character boundary), with how much was cut: quoted
/// input in messages stays short however long the input is.
pub fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} more bytes)", &text[..end], text.len() - end).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in Backend::ALL {
            assert_eq!(Backend::from_name(&b.name()).ok(), Some(*b));
        }
    }

    #[test]
    fn unknown_name_lists_the_known_ones_only() {
        let e = Backend::from_name("mysql").expect_err("unknown");
        assert_eq!(e.kind, tapesched_scheduler::ErrorKind::InvalidArgument);
        assert_eq!(
            e.message,
            "unknown backend \"mysql\"; known backends: objectstore-memory, objectstore-redis, postgres, bridge:LEGACY:TARGET:STAGE"
        );
    }

    #[test]
    fn bridge_names_round_trip_and_malformed_ones_name_the_form() {
        let b = Backend::from_name("bridge:objectstore-memory:postgres:shadow").expect("bridge");
        let Backend::Bridge(spec) = b else { panic!("{b:?}") };
        assert_eq!(
            (spec.legacy(), spec.target(), spec.stage),
            (Backend::ObjectstoreMemory, Backend::Postgres, Stage::Shadow)
        );
        assert_eq!(b.name(), "bridge:objectstore-memory:postgres:shadow");
        assert_eq!(b.stores(), vec![Backend::ObjectstoreMemory, Backend::Postgres]);
        for stage in Stage::ALL {
            let name = format!("bridge:objectstore-redis:postgres:{stage}");
            assert_eq!(Backend::from_name(&name).map(Backend::name).ok(), Some(name));
        }
        for (bad, why) in [
            ("bridge", "no sides and stage"),
            ("bridge:postgres", "1 parts after \"bridge:\", not 3"),
            ("bridge:objectstore-memory:postgres:live:x", "4 parts"),
            ("bridge:mysql:postgres:live", "unknown legacy backend \"mysql\""),
            ("bridge:postgres:bridge:live", "unknown target backend \"bridge\""),
            ("bridge:postgres:postgres:live", "both sides are postgres"),
            ("bridge:objectstore-memory:postgres:dualwrite", "unknown migration stage \"dualwrite\""),
        ] {
            let e = Backend::from_name(bad).expect_err(bad);
            assert_eq!(e.kind, tapesched_scheduler::ErrorKind::InvalidArgument);
            assert!(e.message.contains(why), "{bad}: {}", e.message);
            assert!(e.message.contains("expected bridge:LEGACY:TARGET:STAGE"), "{bad}: {}", e.message);
        }
    }

    #[test]
    fn lists() {
        assert_eq!(
            Backend::parse_list("objectstore-memory, postgres").ok(),
            Some(vec![Backend::ObjectstoreMemory, Backend::Postgres])
        );
        assert!(Backend::parse_list("objectstore-memory,nope").is_err());
    }

    #[test]
    fn clip_keeps_short_text_and_cuts_long_text_at_a_character() {
        assert_eq!(clip("abc", 10), "abc");
        assert_eq!(clip("aé", 2), "a... (2 more bytes)");
        let long = "x".repeat(50_000_000);
        assert_eq!(clip(&long, 300).len(), 300 + " ... (49999700 more bytes)".len() - 1);
    }

    #[tokio::test]
    async fn memory_is_not_a_target_for_another_process() {
        let e = open(&Target::new(Backend::ObjectstoreMemory)).await.err().expect("refused");
        assert_eq!(e.kind, tapesched_scheduler::ErrorKind::InvalidArgument);
    }
}

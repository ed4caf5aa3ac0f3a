//! Scheduler backends by name: the one place that knows how to build each of them.
//!
//! Every scenario run gets a fresh backend from [`Backend::open`] and gives it back with
//! [`OpenBackend::close`], so backends with a server (Redis key prefix, Postgres schema) can use
//! a namespace of their own per run and remove it afterwards.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tapesched_objectstore::redis_store::{RedisSettings, RedisStore};
use tapesched_objectstore::{ObjectstoreConfig, ObjectstoreDb};
use tapesched_scheduler::db::SchedulerDb;

use crate::error::ScenarioError;

/// A scheduler backend a scenario can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// The objectstore backend on an in-process memory store.
    ObjectstoreMemory,
    /// The objectstore backend on Redis (`TAPESCHED_REDIS_URL`).
    ObjectstoreRedis,
    /// The Postgres backend (`TAPESCHED_DATABASE_URL`).
    Postgres,
    /// The migration bridge.
    Bridge,
}

impl Backend {
    /// Every backend, in the order of the contract.
    pub const ALL: &'static [Backend] =
        &[Backend::ObjectstoreMemory, Backend::ObjectstoreRedis, Backend::Postgres, Backend::Bridge];

    /// The backend's command-line name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::ObjectstoreMemory => "objectstore-memory",
            Backend::ObjectstoreRedis => "objectstore-redis",
            Backend::Postgres => "postgres",
            Backend::Bridge => "bridge",
        }
    }

    /// The backend of a command-line name; an unknown name is an error listing the known ones.
    pub fn from_name(name: &str) -> Result<Backend, ScenarioError> {
        Backend::ALL.iter().copied().find(|b| b.name() == name).ok_or_else(|| ScenarioError::UnknownBackend {
            name: name.to_string(),
            known: Backend::ALL.iter().map(|b| b.name().to_string()).collect(),
        })
    }

    /// Parses a comma-separated list of names (`compare --backends a,b`).
    pub fn parse_list(names: &str) -> Result<Vec<Backend>, ScenarioError> {
        names.split(',').map(str::trim).filter(|n| !n.is_empty()).map(Backend::from_name).collect()
    }

    /// Checks that the backend can be opened in this build and environment, without opening it.
    pub fn check_available(self) -> Result<(), ScenarioError> {
        match self {
            Backend::ObjectstoreMemory => Ok(()),
            Backend::ObjectstoreRedis => tapesched_testkit::redis_url()
                .map(|_| ())
                .map_err(|e| ScenarioError::BackendUnavailable(format!("backend objectstore-redis: {e}"))),
            Backend::Postgres => tapesched_testkit::postgres_url()
                .map(|_| ())
                .map_err(|e| ScenarioError::BackendUnavailable(format!("backend postgres: {e}"))),
            other => Err(ScenarioError::BackendUnavailable(format!(
                "backend {} is not available in this build yet",
                other.name()
            ))),
        }
    }

    /// A fresh, empty instance of the backend.
    pub async fn open(self) -> Result<OpenBackend, ScenarioError> {
        self.check_available()?;
        let mut cleanup: Option<Cleanup> = None;
        let db: Arc<dyn SchedulerDb> = match self {
            Backend::ObjectstoreMemory => {
                tapesched_objectstore::memory_backend(tapesched_objectstore::ObjectstoreConfig::default())
            }
            Backend::ObjectstoreRedis => {
                let url = tapesched_testkit::redis_url()
                    .map_err(|e| ScenarioError::BackendUnavailable(format!("backend objectstore-redis: {e}")))?;
                let prefix = format!("{}:", tapesched_testkit::unique_name("tapesched_run"));
                let settings = RedisSettings::new(url, prefix);
                let store = Arc::new(
                    RedisStore::new(settings.clone())
                        .map_err(|e| ScenarioError::BackendUnavailable(format!("backend objectstore-redis: {e}")))?,
                );
                let db = ObjectstoreDb::new(store.clone(), ObjectstoreConfig::default());
                db.ping()
                    .await
                    .map_err(|e| ScenarioError::BackendUnavailable(format!("backend objectstore-redis: {e}")))?;
                // The cleanup may run on another runtime (at drop): it opens its own connection.
                cleanup = Some(Box::new(move || {
                    Box::pin(async move {
                        let cleared = match RedisStore::new(settings) {
                            Ok(store) => store.clear().await,
                            Err(e) => Err(e),
                        };
                        if let Err(e) = cleared {
                            tracing::warn!(error = %e, "could not remove a scenario run's Redis keys");
                        }
                    })
                }));
                Arc::new(db)
            }
            Backend::Postgres => {
                let unavailable = |e: String| ScenarioError::BackendUnavailable(format!("backend postgres: {e}"));
                let url = tapesched_testkit::postgres_url().map_err(|e| unavailable(e.to_string()))?;
                // A schema of its own per run, dropped by the cleanup (on another runtime at drop).
                let schema = tapesched_testkit::unique_name("tapesched_run");
                let config = tapesched_postgres::PgConfig {
                    max_connections: 2,
                    ..tapesched_postgres::PgConfig::new(url.clone(), schema.clone())
                };
                let db = match tapesched_postgres::PgSchedulerDb::connect(config).await {
                    Ok(db) => db,
                    Err(e) => {
                        let _ = tapesched_postgres::drop_schema(&url, &schema).await;
                        return Err(unavailable(e.to_string()));
                    }
                };
                cleanup = Some(Box::new(move || {
                    Box::pin(async move {
                        if let Err(e) = tapesched_postgres::drop_schema(&url, &schema).await {
                            tracing::warn!(error = %e, "could not drop a scenario run's Postgres schema");
                        }
                    })
                }));
                Arc::new(db)
            }
            other => {
                return Err(ScenarioError::BackendUnavailable(format!(
                    "backend {} is not available in this build yet",
                    other.name()
                )))
            }
        };
        Ok(OpenBackend { backend: self, db, cleanup })
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Backend {
    type Err = ScenarioError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Backend::from_name(s)
    }
}

/// Removes a backend instance's namespace (Redis keys, Postgres schema).
pub type Cleanup = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A backend instance for one scenario run. Its namespace is removed by [`OpenBackend::close`],
/// or, if it is dropped without being closed (a panicking test), on a helper thread at drop.
pub struct OpenBackend {
    backend: Backend,
    /// The scheduler's storage.
    pub db: Arc<dyn SchedulerDb>,
    cleanup: Option<Cleanup>,
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

    /// Releases the instance (and, for server backends, removes its namespace).
    pub async fn close(mut self) -> Result<(), ScenarioError> {
        if let Some(cleanup) = self.cleanup.take() {
            cleanup().await;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for b in Backend::ALL {
            assert_eq!(Backend::from_name(b.name()).ok(), Some(*b));
        }
    }

    #[test]
    fn unknown_name_lists_known_ones() {
        let e = Backend::from_name("oracle").expect_err("unknown");
        let msg = e.to_string();
        assert!(msg.contains("unknown backend \"oracle\""), "{msg}");
        assert!(msg.contains("objectstore-memory, objectstore-redis, postgres, bridge"), "{msg}");
    }

    #[test]
    fn unavailable_backends_say_so() {
        let e = Backend::Bridge.check_available().expect_err("not built");
        assert_eq!(e.to_string(), "backend bridge is not available in this build yet");
        assert!(Backend::ObjectstoreMemory.check_available().is_ok());
    }

    #[test]
    fn lists() {
        assert_eq!(
            Backend::parse_list("objectstore-memory, postgres").ok(),
            Some(vec![Backend::ObjectstoreMemory, Backend::Postgres])
        );
        assert!(Backend::parse_list("objectstore-memory,nope").is_err());
    }
}

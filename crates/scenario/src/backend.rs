//! Scheduler backends by name: the one place that knows how to build each of them.
//!
//! Every scenario run gets a fresh backend from [`Backend::open`] and gives it back with
//! [`OpenBackend::close`], so backends with a server (Redis key prefix, Postgres schema) can use
//! a namespace of their own per run and remove it afterwards.

use std::fmt;
use std::sync::Arc;

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
            other => Err(ScenarioError::BackendUnavailable(format!(
                "backend {} is not available in this build yet",
                other.name()
            ))),
        }
    }

    /// A fresh, empty instance of the backend.
    pub async fn open(self) -> Result<OpenBackend, ScenarioError> {
        self.check_available()?;
        let db: Arc<dyn SchedulerDb> = match self {
            Backend::ObjectstoreMemory => {
                tapesched_objectstore::memory_backend(tapesched_objectstore::ObjectstoreConfig::default())
            }
            other => {
                return Err(ScenarioError::BackendUnavailable(format!(
                    "backend {} is not available in this build yet",
                    other.name()
                )))
            }
        };
        Ok(OpenBackend { backend: self, db })
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

/// A backend instance for one scenario run.
pub struct OpenBackend {
    backend: Backend,
    /// The scheduler's storage.
    pub db: Arc<dyn SchedulerDb>,
}

impl OpenBackend {
    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Releases the instance (and, for server backends, removes its namespace).
    pub async fn close(self) -> Result<(), ScenarioError> {
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
        let e = Backend::Postgres.check_available().expect_err("not built");
        assert_eq!(e.to_string(), "backend postgres is not available in this build yet");
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

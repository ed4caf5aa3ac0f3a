//! The legacy objectstore scheduler backend: CTA's OStoreDB design (owned objects, locks, agents,
//! a garbage collector, queues per tape pool and per VID split into shards, a global scheduler
//! lock) over a pluggable [`store::ObjectStore`].
//!
//! - [`store`]: the object-store contract and the in-memory store;
//! - [`redis_store`]: the Redis store (production);
//! - [`objects`]: the stored object types, their names and typed access;
//! - [`queue`]: a locked queue and its shards;
//! - [`backend`]: [`ObjectstoreDb`], the `SchedulerDb` implementation.

#![warn(missing_docs)]

pub mod backend;
pub mod objects;
pub mod queue;
pub mod redis_store;
pub mod store;

use std::sync::Arc;

pub use backend::{ObjectstoreConfig, ObjectstoreDb};
use tapesched_scheduler::db::SchedulerDb;

/// The objectstore backend on a fresh in-memory object store.
pub fn memory_backend(config: ObjectstoreConfig) -> Arc<dyn SchedulerDb> {
    Arc::new(ObjectstoreDb::new(Arc::new(store::MemoryStore::new()), config))
}

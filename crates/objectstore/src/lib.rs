//! The legacy objectstore backend (skeleton; being written).
use std::sync::Arc;
use tapesched_scheduler::db::SchedulerDb;

/// Settings of the objectstore backend.
#[derive(Debug, Clone, Default)]
pub struct ObjectstoreConfig {}

/// Builds the objectstore backend on a fresh in-memory object store.
pub fn memory_backend(_config: ObjectstoreConfig) -> Arc<dyn SchedulerDb> {
    todo!("objectstore backend being written")
}

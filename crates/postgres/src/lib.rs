//! The PostgreSQL scheduler backend and shared catalogue.
//!
//! - [`schema`]: schema names, connection pools, the embedded migrations (`migrations/` at the
//!   repository root) and dropping a namespace;
//! - [`backend`]: [`PgSchedulerDb`], the `SchedulerDb` implementation;
//! - [`catalogue`]: [`PgCatalogue`], the `Catalogue` implementation several processes share;
//! - [`error`]: how database failures map onto the scheduler's error kinds, and the retry loop.
//!
//! Design in short (see `migrations/0001_scheduler_queues.sql` for the tables):
//!
//! - one PostgreSQL schema per backend instance; every connection of the pool has its
//!   `search_path` set to it at connection start-up, so the SQL text never names a schema and is
//!   constant (`&'static str`, prepared once per connection);
//! - one transaction per operation; claims lock candidate rows with `FOR UPDATE SKIP LOCKED` and
//!   cut the batch with a window function in the same statement; id lists are bound as arrays;
//! - per-queue summaries (totals, value-count maps, oldest/youngest) are changed in the same
//!   transaction as the jobs, so a mount decision reads one row per queue;
//! - mount decisions take a transaction-scoped advisory lock per logical library, with a stable
//!   64-bit FNV-1a key of the schema and library names ([`schema::advisory_key`]);
//! - every time comes from the caller; no scheduling policy lives here: retries, batches and VID
//!   choices come from `tapesched_scheduler::rules` and the caller's router.

#![warn(missing_docs)]

pub mod backend;
pub mod catalogue;
pub mod error;
pub mod schema;
mod summary;

pub use backend::{PgConfig, PgSchedulerDb};
pub use catalogue::PgCatalogue;
pub use schema::{
    check_connection, check_schema_name, connect_once, create_schema_with_comment, drop_schema, drop_schema_blocking,
    has_table, migrate, schemas_with_prefix, MigrationReport, SchemaGuard,
};
/// The sqlx version this crate uses (tests and benchmarks query the schema with it).
pub use sqlx;

//! Schemas, connection pools and migrations.
//!
//! Every backend instance lives in one PostgreSQL schema named by the caller. The name is
//! validated here ([`check_schema_name`]: lowercase ASCII letters, digits and `_`, at most 63
//! bytes, not `pg_*`), which is what makes the only two dynamic SQL statements of the crate
//! (`CREATE SCHEMA` and `DROP SCHEMA`) safe. Each pooled connection gets the schema as its
//! `search_path` in the start-up packet, before any statement runs, so the migrations, the
//! `_sqlx_migrations` bookkeeping table and every query resolve inside the schema.
//!
//! Migrations are the plain SQL files of `migrations/` at the repository root, embedded at build
//! time and applied with sqlx's migrator ([`migrate`]); applying them again is a no-op. A schema
//! holding a migration this binary does not know (migrated by a newer tapesched) is refused with
//! a clear error instead of being used.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, Connection, Executor, Row};
use tapesched_scheduler::{Error, Result};

use crate::error::fatal;

/// The migrations of this build (the SQL files of `migrations/`).
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// Checks that `name` can be used as a schema name without quoting.
pub fn check_schema_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.starts_with("pg_");
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "schema name {name:?} is not usable: use 1 to 63 lowercase ASCII letters, digits or '_', starting with a \
             letter or '_' and not with 'pg_'"
        )))
    }
}

/// A stable 64-bit advisory-lock key for `name` in `purpose` within `schema`: FNV-1a over the
/// three strings separated by NUL bytes. FNV-1a is fixed by its definition, so every build and
/// every server version computes the same key (unlike `std::hash` or PostgreSQL's `hashtext`),
/// and the schema and purpose in the input keep namespaces and lock kinds apart.
pub fn advisory_key(schema: &str, purpose: &str, name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in ["tapesched", purpose, schema, name] {
        for b in part.bytes().chain(std::iter::once(0u8)) {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h as i64
}

/// Connection options for `url` with `search_path` set to `schema` at start-up, and no parallel
/// query: the scheduler's statements touch a few rows each, and starting parallel workers for
/// one (which the planner does when a table has no statistics yet) costs milliseconds.
pub fn connect_options(url: &str, schema: &str) -> Result<PgConnectOptions> {
    check_schema_name(schema)?;
    let options = PgConnectOptions::from_str(url)
        .map_err(|e| Error::invalid(format!("database URL is not usable: {e}")).caused_by(e))?
        .options([("search_path", schema), ("max_parallel_workers_per_gather", "0")])
        .application_name(&format!("tapesched:{schema}"));
    Ok(options)
}

/// Opens one connection within `timeout`; a failure names the server and says why (connection
/// refused, unknown host, authentication failed, no such database, no answer in time).
pub async fn connect_once(options: &PgConnectOptions, timeout: Duration) -> Result<sqlx::postgres::PgConnection> {
    let target = format!("{}:{}", options.get_host(), options.get_port());
    match tokio::time::timeout(timeout, sqlx::postgres::PgConnection::connect_with(options)).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => {
            let e = fatal(e);
            let message = format!("cannot connect to PostgreSQL at {target}: {}", e.message);
            let kind = e.kind;
            Err(e.rephrased(kind, message))
        }
        Err(_) => Err(Error::unavailable(format!(
            "cannot connect to PostgreSQL at {target}: no answer within {} s",
            timeout.as_secs_f64()
        ))),
    }
}

/// Opens one connection and closes it ([`connect_once`]): the server's own answer comes back at
/// once, where a pool would retry until its acquire timeout and then say only that it timed out.
pub async fn check_connection(options: &PgConnectOptions, timeout: Duration) -> Result<()> {
    let conn = connect_once(options, timeout).await?;
    let _ = conn.close().await;
    Ok(())
}

/// A pool of connections to `url` whose `search_path` is `schema`. One connection is opened
/// first ([`check_connection`]), so an unreachable server fails at once with its cause.
pub async fn connect_pool(url: &str, schema: &str, max_connections: u32, acquire_timeout: Duration) -> Result<PgPool> {
    let options = connect_options(url, schema)?;
    check_connection(&options, acquire_timeout).await?;
    PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .min_connections(0)
        .acquire_timeout(acquire_timeout)
        .connect_with(options)
        .await
        .map_err(fatal)
}

/// What [`migrate`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The schema.
    pub schema: String,
    /// Versions applied by this call.
    pub applied: Vec<i64>,
    /// Versions that were already applied.
    pub already_applied: Vec<i64>,
}

/// Creates `schema` if needed and applies the migrations of this build to it (a no-op when they
/// are all applied). A schema holding a migration unknown to this build is an `internal` error
/// saying so.
pub async fn ensure_schema(pool: &PgPool, schema: &str) -> Result<MigrationReport> {
    check_schema_name(schema)?;
    let create = format!("CREATE SCHEMA IF NOT EXISTS {schema}");
    if let Err(e) = pool.execute(AssertSqlSafe(create)).await {
        // Two processes creating the same schema at once: the loser sees a duplicate.
        if !matches!(crate::error::sqlstate(&e).as_deref(), Some("23505") | Some("42P06")) {
            return Err(fatal(e));
        }
    }
    let before = applied_versions(pool).await?;
    let known: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
    if let Some(unknown) = before.iter().find(|v| !known.contains(v)) {
        return Err(newer_schema(schema, *unknown, &known));
    }
    MIGRATOR.run(pool).await.map_err(|e| migrate_error(schema, e, &known))?;
    let after = applied_versions(pool).await?;
    Ok(MigrationReport {
        schema: schema.to_string(),
        applied: after.iter().filter(|v| !before.contains(v)).copied().collect(),
        already_applied: before,
    })
}

async fn applied_versions(pool: &PgPool) -> Result<Vec<i64>> {
    let exists: bool = sqlx::query("SELECT to_regclass('_sqlx_migrations') IS NOT NULL AS e")
        .fetch_one(pool)
        .await
        .map_err(fatal)?
        .get("e");
    if !exists {
        return Ok(vec![]);
    }
    let rows = sqlx::query("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
        .map_err(fatal)?;
    Ok(rows.iter().map(|r| r.get::<i64, _>("version")).collect())
}

fn newer_schema(schema: &str, version: i64, known: &[i64]) -> Error {
    Error::internal(format!(
        "schema {schema:?} was migrated by a newer tapesched: it has migration {version}, which this build does not know \
         (this build knows migrations up to {}); upgrade tapesched before using this database",
        known.iter().max().copied().unwrap_or(0)
    ))
}

fn migrate_error(schema: &str, e: MigrateError, known: &[i64]) -> Error {
    match e {
        MigrateError::VersionMissing(v) => newer_schema(schema, v, known),
        MigrateError::VersionMismatch(v) => Error::internal(format!(
            "schema {schema:?}: migration {v} differs from the one applied to the database (edited after release?)"
        )),
        MigrateError::Dirty(v) => {
            Error::internal(format!("schema {schema:?}: migration {v} failed part-way earlier; repair it by hand"))
        }
        MigrateError::Execute(e) => fatal(e),
        other => Error::internal(format!("schema {schema:?}: migration failed: {other}")).caused_by(other),
    }
}

/// Applies the migrations of this build to `schema` on the server at `url` (`tapesched db
/// migrate`).
pub async fn migrate(url: &str, schema: &str) -> Result<MigrationReport> {
    let pool = connect_pool(url, schema, 1, Duration::from_secs(30)).await?;
    let report = ensure_schema(&pool, schema).await;
    pool.close().await;
    report
}

/// Drops `schema` and everything in it (a no-op if it does not exist), ending the connections
/// of this program still open on it.
pub async fn drop_schema(url: &str, schema: &str) -> Result<()> {
    check_schema_name(schema)?;
    let options =
        PgConnectOptions::from_str(url).map_err(|e| Error::invalid(format!("database URL: {e}")).caused_by(e))?;
    let mut conn = sqlx::postgres::PgConnection::connect_with(&options).await.map_err(fatal)?;
    // Connections still working in the schema (a test that failed with a transaction open) would
    // block the drop forever: end them first (they are named after their schema).
    let _ = sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE application_name = left('tapesched:' || $1, 63) AND pid <> pg_backend_pid()",
    )
    .bind(schema)
    .execute(&mut conn)
    .await;
    let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
    let r = conn.execute(AssertSqlSafe(drop)).await.map(|_| ()).map_err(fatal);
    let _ = conn.close().await;
    r
}

/// Creates `schema` (it must not exist) with `comment` on it, in one transaction: a schema is
/// never seen without its comment. Scenario runs mark their schemas with their owner this way
/// (`tapesched-backends`' namespaces), so what a dead run left can be told from a live run's.
pub async fn create_schema_with_comment(url: &str, schema: &str, comment: &str) -> Result<()> {
    check_schema_name(schema)?;
    let options = PgConnectOptions::from_str(url).map_err(|e| Error::invalid(format!("database URL: {e}")))?;
    let mut conn = connect_once(&options, Duration::from_secs(30)).await?;
    let r = async {
        let mut tx = conn.begin().await?;
        tx.execute(AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).await?;
        // COMMENT takes no bind parameters: the comment goes in as a dollar-quoted literal whose
        // tag cannot occur in it.
        let tag = "tapesched_comment";
        if comment.contains(tag) {
            return Err(sqlx::Error::Protocol(format!("a schema comment may not contain {tag:?}")));
        }
        tx.execute(AssertSqlSafe(format!("COMMENT ON SCHEMA {schema} IS ${tag}${comment}${tag}$"))).await?;
        tx.commit().await
    }
    .await
    .map_err(fatal);
    let _ = conn.close().await;
    r
}

/// The schemas whose name starts with `prefix`, with their comments.
pub async fn schemas_with_prefix(url: &str, prefix: &str) -> Result<Vec<(String, Option<String>)>> {
    let options = PgConnectOptions::from_str(url).map_err(|e| Error::invalid(format!("database URL: {e}")))?;
    let mut conn = connect_once(&options, Duration::from_secs(30)).await?;
    let rows = sqlx::query(
        "SELECT nspname, obj_description(oid, 'pg_namespace') AS comment FROM pg_namespace
         WHERE left(nspname, length($1)) = $1 ORDER BY nspname",
    )
    .bind(prefix)
    .fetch_all(&mut conn)
    .await
    .map_err(fatal);
    let _ = conn.close().await;
    Ok(rows?.iter().map(|r| (r.get::<String, _>("nspname"), r.get::<Option<String>, _>("comment"))).collect())
}

/// Whether `schema` holds a table named `table` (without creating or migrating anything: a
/// command that must not set an instance up asks this first).
pub async fn has_table(url: &str, schema: &str, table: &str) -> Result<bool> {
    let options = PgConnectOptions::from_str(url).map_err(|e| Error::invalid(format!("database URL: {e}")))?;
    let mut conn = connect_once(&options, Duration::from_secs(30)).await?;
    let found = sqlx::query_scalar::<_, bool>(
        "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2)",
    )
    .bind(schema)
    .bind(table)
    .fetch_one(&mut conn)
    .await
    .map_err(fatal);
    let _ = conn.close().await;
    found
}

/// [`drop_schema`] from synchronous code (a `Drop` implementation, a test's end): runs on a
/// thread of its own with its own runtime, so it works inside or outside an async runtime.
pub fn drop_schema_blocking(url: &str, schema: &str) -> Result<()> {
    let (url, schema) = (url.to_string(), schema.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::internal(format!("cannot start a runtime to drop a schema: {e}")).caused_by(e))?;
        rt.block_on(drop_schema(&url, &schema))
    })
    .join()
    .map_err(|_| Error::internal("the thread dropping a schema panicked"))?
}

/// Drops a schema when dropped (tests, scenario runs): nothing is left behind.
#[derive(Debug)]
pub struct SchemaGuard {
    url: String,
    schema: String,
}

impl SchemaGuard {
    /// A guard for `schema` on the server at `url`.
    pub fn new(url: impl Into<String>, schema: impl Into<String>) -> Self {
        SchemaGuard { url: url.into(), schema: schema.into() }
    }
    /// The schema.
    pub fn schema(&self) -> &str {
        &self.schema
    }
    /// The server.
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        if let Err(e) = drop_schema_blocking(&self.url, &self.schema) {
            tracing::warn!(schema = %self.schema, error = %e, "could not drop a schema");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names() {
        for ok in ["t", "_x", "t_123_ab", &"a".repeat(63)] {
            assert!(check_schema_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "T", "1a", "a-b", "a\"b", "pg_x", "a b", &"a".repeat(64), "é"] {
            assert!(check_schema_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn advisory_keys_are_stable_and_namespaced() {
        // Fixed by FNV-1a's definition: the same on every build.
        assert_eq!(advisory_key("s", "mount", "lib"), advisory_key("s", "mount", "lib"));
        assert_ne!(advisory_key("s", "mount", "lib"), advisory_key("t", "mount", "lib"));
        assert_ne!(advisory_key("s", "mount", "lib"), advisory_key("s", "other", "lib"));
        assert_ne!(advisory_key("s", "mount", "ab"), advisory_key("s", "mounta", "b"));
        assert_eq!(advisory_key("", "", ""), 0xd802_5a13_4a6e_4e78_u64 as i64);
    }
}

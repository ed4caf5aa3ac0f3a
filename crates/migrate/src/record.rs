//! The migration's record: its stage and history, the results of verify runs, the backfill
//! checkpoint and the lock that keeps backfills apart; the gate of `live`'s settings; and (in
//! `record_log.rs`) the bridge's counters and divergences flushed by every process.
//!
//! In PostgreSQL (the target database, `migrations/0009_migration.sql` and
//! `0010_migration_log.sql`) the record is shared by
//! every process; the backfill lock is a session advisory lock held on a connection of its own
//! (closed, it is released, so a killed backfill never keeps it). For a target that is not
//! PostgreSQL (tests, a memory backend) the record lives in this process ([`Record::memory`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Connection, Row};
use tapesched_postgres::schema::{advisory_key, connect_once, connect_options};
use tapesched_scheduler::state::StateKey;
use tapesched_scheduler::{Error, Result};

use crate::record_log::MemoryLog;
use crate::stage::{check_transition, GateConfig, LiveEvidence, Stage, StageChange};

/// Where a backfill is: the last key copied and what was copied so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// The last key copied (`None`: nothing yet).
    pub last_key: Option<StateKey>,
    /// Items copied.
    pub items: u64,
    /// Jobs copied (an archive request's copies, one per retrieve).
    pub jobs: u64,
    /// The backfill reached the end.
    pub done: bool,
}

/// A verify run as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyRecord {
    /// When (epoch seconds).
    pub at: i64,
    /// Items compared.
    pub items: u64,
    /// Differences found (after re-checking).
    pub differences: u64,
    /// What differed, per queue (one line each).
    pub summary: String,
}

#[derive(Default)]
pub(crate) struct MemoryRecord {
    stage: Option<Stage>,
    history: Vec<StageChange>,
    verifies: Vec<VerifyRecord>,
    checkpoint: Checkpoint,
    gate: GateConfig,
    pub(crate) log: MemoryLog,
}

pub(crate) enum Place {
    Postgres { pool: PgPool, url: String, schema: String },
    Memory(Mutex<MemoryRecord>),
}

/// The migration's record (see the module documentation).
#[derive(Clone)]
pub struct Record {
    pub(crate) place: Arc<Place>,
    memory_lock: Arc<AtomicBool>,
}

/// The backfill lock, held until dropped.
pub struct BackfillLock {
    _conn: Option<PgConnection>,
    memory: Option<Arc<AtomicBool>>,
}

impl Drop for BackfillLock {
    fn drop(&mut self) {
        if let Some(flag) = &self.memory {
            flag.store(false, Ordering::SeqCst);
        }
    }
}

pub(crate) fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

pub(crate) fn db_error(e: sqlx::Error) -> Error {
    let message = format!("migration record: {e}");
    match &e {
        sqlx::Error::Database(_) => Error::internal(message).caused_by(e),
        _ => Error::unavailable(message).caused_by(e),
    }
}

const BACKFILL: &str = "backfill";

impl Record {
    /// The record in the PostgreSQL schema of `pool` (migrated: `PgSchedulerDb::connect` did it),
    /// on the server at `url`.
    pub fn postgres(pool: PgPool, url: impl Into<String>, schema: impl Into<String>) -> Record {
        Record {
            place: Arc::new(Place::Postgres { pool, url: url.into(), schema: schema.into() }),
            memory_lock: Arc::default(),
        }
    }

    /// The record of the target `db` (its schema).
    pub fn of_postgres(db: &tapesched_postgres::backend::PgSchedulerDb) -> Record {
        Record::postgres(db.pool().clone(), db.config().url.clone(), db.schema())
    }

    /// The record in `schema` on the server at `url` over a pool of its own of at most
    /// `max_connections` (waiting at most `acquire_timeout` for one): a process's stage reads and
    /// log flushes then never queue behind the target's own operations when the target is slow
    /// (see `stage_source.rs`). The schema must be migrated already.
    pub async fn connect(url: &str, schema: &str, max_connections: u32, acquire_timeout: Duration) -> Result<Record> {
        let pool = tapesched_postgres::schema::connect_pool(url, schema, max_connections, acquire_timeout).await?;
        Ok(Record::postgres(pool, url, schema))
    }

    /// A record kept in this process.
    pub fn memory() -> Record {
        Record { place: Arc::new(Place::Memory(Mutex::default())), memory_lock: Arc::default() }
    }

    pub(crate) fn mem(&self) -> Option<std::sync::MutexGuard<'_, MemoryRecord>> {
        match &*self.place {
            Place::Memory(m) => Some(m.lock().expect("record lock")),
            Place::Postgres { .. } => None,
        }
    }

    /// Sets the migration up at stage `off` (a no-op when it already is); answers the stage.
    pub async fn init(&self, who: &str) -> Result<Stage> {
        if let Some(mut m) = self.mem() {
            if m.stage.is_none() {
                m.stage = Some(Stage::Off);
                m.history.push(StageChange::new(Stage::Off, None, who, "migration set up", false));
            }
            return Ok(m.stage.expect("set"));
        }
        let Place::Postgres { pool, .. } = &*self.place else { unreachable!("memory handled above") };
        let mut tx = pool.begin().await.map_err(db_error)?;
        let inserted = sqlx::query(
            "INSERT INTO migration_stage (stage, changed_at) VALUES ('off', $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(now_secs())
        .execute(&mut *tx)
        .await
        .map_err(db_error)?
        .rows_affected();
        if inserted == 1 {
            sqlx::query(
                "INSERT INTO migration_stage_history (stage, previous, who, at, reason, forced)
                 VALUES ('off', NULL, $1, $2, 'migration set up', false)",
            )
            .bind(who)
            .bind(now_secs())
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        self.read_stage().await
    }

    /// The current stage. A database never set up for a migration is an error naming
    /// `tapesched migrate init`.
    pub async fn read_stage(&self) -> Result<Stage> {
        // The memory record's guard is dropped before any await (the future stays `Send`).
        let in_memory = self.mem().map(|m| m.stage);
        let stage = if let Some(stage) = in_memory {
            stage
        } else {
            let Place::Postgres { pool, .. } = &*self.place else { unreachable!("memory handled above") };
            let s: Option<String> =
                sqlx::query_scalar("SELECT stage FROM migration_stage").fetch_optional(pool).await.map_err(db_error)?;
            s.map(|s| s.parse()).transpose()?
        };
        stage.ok_or_else(not_set_up)
    }

    /// What the gate of `live` looks at now: the last verify, the gate's settings and the
    /// counters of every process over the window.
    pub async fn live_evidence(&self) -> Result<LiveEvidence> {
        let last_verify = self.last_verify().await?;
        let config = self.gate_config().await?;
        // The window starts no earlier than the last verify: what differed before it was
        // verified (and repaired) is left out, with every flush window ending in the second the
        // verify ended (whole seconds: such a window may hold comparisons made before it).
        let since = (now_secs() - config.window_secs).max(last_verify.as_ref().map_or(i64::MIN, |v| v.at));
        let window = self.counters(Some(since)).await?;
        let mut e = LiveEvidence { last_verify, config, ..LiveEvidence::default() };
        for c in window.values() {
            e.matched += c.matched;
            e.mismatched += c.mismatched;
            e.ignored += c.ignored_total();
        }
        Ok(e)
    }

    /// The gate's settings (the defaults before `init` set any).
    pub async fn gate_config(&self) -> Result<GateConfig> {
        if let Some(m) = self.mem() {
            m.stage.ok_or_else(not_set_up)?;
            return Ok(m.gate);
        }
        let Place::Postgres { pool, .. } = &*self.place else { unreachable!("memory handled above") };
        let row = sqlx::query("SELECT max_mismatch_rate, gate_window FROM migration_stage")
            .fetch_optional(pool)
            .await
            .map_err(db_error)?
            .ok_or_else(not_set_up)?;
        Ok(GateConfig {
            max_mismatch_rate: row.try_get("max_mismatch_rate").map_err(db_error)?,
            window_secs: row.try_get("gate_window").map_err(db_error)?,
        })
    }

    /// Changes the gate's settings (those given); answers the settings now in force.
    pub async fn set_gate_config(
        &self,
        max_mismatch_rate: Option<f64>,
        window_secs: Option<i64>,
    ) -> Result<GateConfig> {
        let mut config = self.gate_config().await?;
        config.max_mismatch_rate = max_mismatch_rate.unwrap_or(config.max_mismatch_rate);
        config.window_secs = window_secs.unwrap_or(config.window_secs);
        config.check()?;
        if let Some(mut m) = self.mem() {
            m.gate = config;
            return Ok(config);
        }
        let Place::Postgres { pool, .. } = &*self.place else { unreachable!("memory handled above") };
        sqlx::query("UPDATE migration_stage SET max_mismatch_rate = $1, gate_window = $2")
            .bind(config.max_mismatch_rate)
            .bind(config.window_secs)
            .execute(pool)
            .await
            .map_err(db_error)?;
        Ok(config)
    }

    /// Changes the stage (see [`check_transition`]); `force` overrides the refusals of `live`
    /// (no clean verify, a mismatch rate above the maximum, no evidence), and is recorded.
    /// Answers the change recorded.
    pub async fn set_stage(&self, to: Stage, who: &str, reason: &str, force: bool) -> Result<StageChange> {
        if reason.trim().is_empty() {
            return Err(Error::invalid("a stage change needs a reason (--reason)"));
        }
        self.read_stage().await?;
        let evidence = if to == Stage::Live && !force { self.live_evidence().await? } else { LiveEvidence::default() };
        if let Some(mut m) = self.mem() {
            let from = m.stage.ok_or_else(not_set_up)?;
            check_transition(from, to, &evidence, force)?;
            let change = StageChange::new(to, Some(from), who, reason, force);
            m.stage = Some(to);
            m.history.push(change.clone());
            if to == Stage::Off {
                m.checkpoint = Checkpoint::default();
            }
            return Ok(change);
        }
        let Place::Postgres { pool, .. } = &*self.place else { unreachable!("memory handled above") };
        let mut tx = pool.begin().await.map_err(db_error)?;
        let from: Option<String> = sqlx::query_scalar("SELECT stage FROM migration_stage FOR UPDATE")
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_error)?;
        let from: Stage = from.ok_or_else(not_set_up)?.parse()?;
        check_transition(from, to, &evidence, force)?;
        let change = StageChange::new(to, Some(from), who, reason, force);
        sqlx::query("UPDATE migration_stage SET stage = $1, changed_at = $2")
            .bind(to.as_str())
            .bind(change.at)
            .execute(&mut *tx)
            .await
            .map_err(db_error)?;
        sqlx::query(
            "INSERT INTO migration_stage_history (stage, previous, who, at, reason, forced)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(to.as_str())
        .bind(from.as_str())
        .bind(who)
        .bind(change.at)
        .bind(reason)
        .bind(force)
        .execute(&mut *tx)
        .await
        .map_err(db_error)?;
        // Back in `off`, writes are no longer mirrored: the target's copy is incomplete from now
        // on, and the next dual-write needs a backfill from the start.
        if to == Stage::Off {
            sqlx::query("DELETE FROM migration_checkpoint WHERE name = $1")
                .bind(BACKFILL)
                .execute(&mut *tx)
                .await
                .map_err(db_error)?;
        }
        tx.commit().await.map_err(db_error)?;
        Ok(change)
    }

    /// Every stage change, oldest first.
    pub async fn history(&self) -> Result<Vec<StageChange>> {
        if let Some(m) = self.mem() {
            return Ok(m.history.clone());
        }
        let Place::Postgres { pool, .. } = &*self.place else { unreachable!("memory handled above") };
        let rows =
            sqlx::query("SELECT stage, previous, who, at, reason, forced FROM migration_stage_history ORDER BY seq")
                .fetch_all(pool)
                .await
                .map_err(db_error)?;
        rows.iter()
            .map(|r| {
                let stage: String = r.try_get("stage").map_err(db_error)?;
                let previous: Option<String> = r.try_get("previous").map_err(db_error)?;
                Ok(StageChange {
                    stage: stage.parse()?,
                    previous: previous.map(|p| p.parse()).transpose()?,
                    who: r.try_get("who").map_err(db_error)?,
                    at: r.try_get("at").map_err(db_error)?,
                    reason: r.try_get("reason").map_err(db_error)?,
                    forced: r.try_get("forced").map_err(db_error)?,
                })
            })
            .collect()
    }

    /// Records a verify run.
    pub async fn record_verify(&self, items: u64, differences: u64, summary: &str) -> Result<()> {
        let record = VerifyRecord { at: now_secs(), items, differences, summary: summary.to_string() };
        if let Some(mut m) = self.mem() {
            m.verifies.push(record);
            return Ok(());
        }
        let Place::Postgres { pool, .. } = &*self.place else { unreachable!("memory handled above") };
        sqlx::query("INSERT INTO migration_verify (at, items, differences, summary) VALUES ($1, $2, $3, $4)")
            .bind(record.at)
            .bind(items as i64)
            .bind(differences as i64)
            .bind(summary)
            .execute(pool)
            .await
            .map_err(db_error)?;
        Ok(())
    }

    /// The last verify run recorded.
    pub async fn last_verify(&self) -> Result<Option<VerifyRecord>> {
        if let Some(m) = self.mem() {
            return Ok(m.verifies.last().cloned());
        }
        let Place::Postgres { pool, .. } = &*self.place else { unreachable!("memory handled above") };
        let row = sqlx::query("SELECT at, items, differences, summary FROM migration_verify ORDER BY seq DESC LIMIT 1")
            .fetch_optional(pool)
            .await
            .map_err(db_error)?;
        row.map(|r| {
            Ok(VerifyRecord {
                at: r.try_get("at").map_err(db_error)?,
                items: r.try_get::<i64, _>("items").map_err(db_error)? as u64,
                differences: r.try_get::<i64, _>("differences").map_err(db_error)? as u64,
                summary: r.try_get("summary").map_err(db_error)?,
            })
        })
        .transpose()
    }

    /// The backfill's checkpoint (empty before the first).
    pub async fn checkpoint(&self) -> Result<Checkpoint> {
        if let Some(m) = self.mem() {
            return Ok(m.checkpoint.clone());
        }
        let Place::Postgres { pool, .. } = &*self.place else { unreachable!("memory handled above") };
        let row = sqlx::query("SELECT last_key, items, jobs, done FROM migration_checkpoint WHERE name = $1")
            .bind(BACKFILL)
            .fetch_optional(pool)
            .await
            .map_err(db_error)?;
        let Some(r) = row else { return Ok(Checkpoint::default()) };
        let key: Option<sqlx::types::Json<StateKey>> = r.try_get("last_key").map_err(db_error)?;
        Ok(Checkpoint {
            last_key: key.map(|k| k.0),
            items: r.try_get::<i64, _>("items").map_err(db_error)? as u64,
            jobs: r.try_get::<i64, _>("jobs").map_err(db_error)? as u64,
            done: r.try_get("done").map_err(db_error)?,
        })
    }

    /// Saves the backfill's checkpoint.
    pub async fn save_checkpoint(&self, c: &Checkpoint) -> Result<()> {
        if let Some(mut m) = self.mem() {
            m.checkpoint = c.clone();
            return Ok(());
        }
        let Place::Postgres { pool, .. } = &*self.place else { unreachable!("memory handled above") };
        sqlx::query(
            "INSERT INTO migration_checkpoint (name, last_key, items, jobs, done, updated) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO UPDATE SET last_key = excluded.last_key, items = excluded.items,
                 jobs = excluded.jobs, done = excluded.done, updated = excluded.updated",
        )
        .bind(BACKFILL)
        .bind(c.last_key.as_ref().map(sqlx::types::Json))
        .bind(c.items as i64)
        .bind(c.jobs as i64)
        .bind(c.done)
        .bind(now_secs())
        .execute(pool)
        .await
        .map_err(db_error)?;
        Ok(())
    }

    /// Takes the backfill lock, or fails at once with `conflict` when another backfill holds it.
    pub async fn lock_backfill(&self) -> Result<BackfillLock> {
        let busy = || {
            Error::conflict(
                "another backfill is running against this target (it holds the backfill lock); wait for it to \
                 finish, or stop it: a stopped backfill resumes from its checkpoint",
            )
        };
        match &*self.place {
            Place::Memory(_) => {
                if self.memory_lock.swap(true, Ordering::SeqCst) {
                    return Err(busy());
                }
                Ok(BackfillLock { _conn: None, memory: Some(self.memory_lock.clone()) })
            }
            Place::Postgres { url, schema, .. } => {
                let options = connect_options(url, schema)?;
                let mut conn = connect_once(&options, std::time::Duration::from_secs(30)).await?;
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(advisory_key(schema, "migrate", BACKFILL))
                    .fetch_one(&mut conn)
                    .await
                    .map_err(db_error)?;
                if !got {
                    let _ = conn.close().await;
                    return Err(busy());
                }
                Ok(BackfillLock { _conn: Some(conn), memory: None })
            }
        }
    }
}

fn not_set_up() -> Error {
    Error::not_found(
        "this database was never set up for a migration (no stage recorded): run `tapesched migrate init` first",
    )
}

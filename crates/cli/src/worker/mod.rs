//! `tapesched worker drive|produce|report`: the processes that put work through a scheduler
//! backend, one operating-system process each, printing one line per step on stdout so that an
//! operator (or a test) can follow them and stop or kill them at a chosen point.
//!
//! Every worker opens its backend the same way ([`BackendArgs`]): `postgres`,
//! `objectstore-redis`, or `bridge:objectstore-redis:postgres`, the migration bridge of a real
//! migration, whose stage is read from the migration record in the target database
//! (`tapesched migrate stage` changes it; every worker follows within `--stage-refresh-ms`).
//! A bridge worker prints `stage STAGE` whenever the stage it routes by changes. It reads the
//! stage and flushes its divergence log over two PostgreSQL connections of its own, apart from
//! the target's pool, and keeps routing by the last stage read while the record cannot be read,
//! for at most `tapesched_migrate::DEFAULT_STALE_LIMIT` (60 s; a warning on stderr per failed
//! read): a slow or stopped target costs callers at most `--other-timeout-ms` per operation and
//! never fails them within that bound.

mod drive;
mod produce;
mod report;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use tapesched_backends::{Backend, Target};
use tapesched_bridge::{fence_rule, in_flight_rule, BridgeDb, DivergenceLog, Sampling, StageSource};
use tapesched_migrate::{LogFlusher, Record, RecordStage, Stage, DEFAULT_FLUSH_INTERVAL};
use tapesched_postgres::backend::PgSchedulerDb;
use tapesched_scheduler::db::SchedulerDb;
use tapesched_scheduler::Error;

pub use drive::{drive, DriveArgs};
pub use produce::{produce, ProduceArgs};
pub use report::{report, ReportArgs};

/// The form of the bridge backend for workers: the stage comes from the migration record.
pub const WORKER_BRIDGE: &str = "bridge:objectstore-redis:postgres";

/// Which backend a worker uses, and where its servers are.
#[derive(Debug, Args)]
pub struct BackendArgs {
    /// Backend: postgres, objectstore-redis, or bridge:objectstore-redis:postgres (the migration
    /// bridge; its stage is read from the migration record of the PostgreSQL schema).
    #[arg(long, default_value = "postgres")]
    pub backend: String,
    /// Redis server (objectstore-redis, bridge; default: $TAPESCHED_REDIS_URL, else 127.0.0.1:6379).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Key prefix of the objectstore deployment (objectstore-redis, bridge).
    #[arg(long, default_value = "tapesched:")]
    pub redis_prefix: String,
    /// Lock lease in milliseconds (objectstore-redis, bridge): how long a lock of a dead process blocks.
    #[arg(long, default_value_t = 30_000)]
    pub lock_lease_ms: u64,
    /// PostgreSQL server (postgres, bridge; default: $TAPESCHED_DATABASE_URL, else 127.0.0.1:5432).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Schema of the scheduler instance (postgres; for the bridge, the target's, holding the
    /// migration record).
    #[arg(long, default_value = "tapesched")]
    pub schema: String,
    /// Bridge: the stage is read again from the migration record at most this often (the bound
    /// within which this process follows a stage change).
    #[arg(long, default_value_t = 5_000, value_name = "MS")]
    pub stage_refresh_ms: u64,
    /// Bridge: the non-authoritative side's answer is waited for at most this long; later, it is
    /// recorded as a divergence of unknown outcome and the caller goes on.
    #[arg(long, default_value_t = 2_000, value_name = "MS")]
    pub other_timeout_ms: u64,
}

/// A worker's open backend, and for the bridge the stage it follows.
pub(crate) struct Opened {
    pub db: Arc<dyn SchedulerDb>,
    stage: Option<Arc<RecordStage>>,
    said: Mutex<Option<Stage>>,
    /// The bridge's counters and divergences, written to the migration record every second.
    flusher: Option<LogFlusher>,
}

impl Opened {
    /// Prints `stage STAGE` when the stage the bridge last routed by differs from the one last
    /// printed.
    pub fn say_stage(&self) {
        let Some(source) = &self.stage else { return };
        let now = source.last_known();
        let mut said = self.said.lock().unwrap_or_else(|p| p.into_inner());
        if *said != Some(now) {
            *said = Some(now);
            say(format!("stage {now}"));
        }
    }
}

impl Opened {
    /// Ends the worker's use of its backend: the bridge's last counters and divergences are
    /// written to the migration record (a failure is said on stderr, never fatal).
    pub async fn close(self) {
        if let Some(flusher) = self.flusher {
            if let Err(e) = flusher.shutdown().await {
                eprintln!("warning: the bridge's last counters could not be recorded: {e}");
            }
        }
    }

    /// The bridge's stage source, if the backend is the bridge.
    pub fn stage_source(&self) -> Option<&Arc<RecordStage>> {
        self.stage.as_ref()
    }

    /// Reads the stage (when its refresh is due) and prints it if it changed: a worker waiting
    /// for input still shows when it follows a stage change.
    pub async fn refresh_stage(&self) -> Result<(), Error> {
        if let Some(source) = &self.stage {
            source.stage().await?;
            self.say_stage();
        }
        Ok(())
    }
}

/// A signal asking the worker to stop (SIGINT or SIGTERM).
pub(crate) type Stop = std::pin::Pin<Box<dyn std::future::Future<Output = &'static str> + Send>>;

/// Whether `stop` has fired, without waiting. Once true, `stop` must not be polled again.
pub(crate) fn fired(stop: &mut Stop) -> bool {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    stop.as_mut().poll(&mut cx).is_ready()
}

/// One line on stdout, flushed (tests and operators follow it as it comes).
pub(crate) fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Opens the backend `args` name.
pub(crate) async fn open(args: &BackendArgs, label: &str) -> Result<Opened, Error> {
    if args.backend.starts_with("bridge") {
        return open_bridge(args, label).await;
    }
    let backend = Backend::from_name(&args.backend)?;
    if matches!(backend, Backend::ObjectstoreMemory) {
        return Err(Error::invalid(format!(
            "backend {backend} is not supported by workers (supported: postgres, objectstore-redis, {WORKER_BRIDGE})"
        )));
    }
    let db = tapesched_backends::open(&plain_target(args, backend, label)).await?;
    Ok(Opened { db, stage: None, said: Mutex::new(None), flusher: None })
}

fn plain_target(args: &BackendArgs, backend: Backend, label: &str) -> Target {
    Target {
        database_url: args.database_url.clone(),
        schema: args.schema.clone(),
        redis_url: args.redis_url.clone(),
        redis_prefix: args.redis_prefix.clone(),
        lock_lease: Some(Duration::from_millis(args.lock_lease_ms)),
        process_label: label.into(),
        ..Target::new(backend)
    }
}

/// The bridge of a real migration: legacy Redis objectstore, target PostgreSQL, stage from the
/// target's migration record.
async fn open_bridge(args: &BackendArgs, label: &str) -> Result<Opened, Error> {
    if args.backend != WORKER_BRIDGE {
        return Err(Error::invalid(format!(
            "bad worker backend {:?}: a worker's bridge is {WORKER_BRIDGE} (its stage comes from the migration \
             record; a fixed stage is for scenario runs)",
            args.backend.chars().take(100).collect::<String>()
        )));
    }
    let url = tapesched_backends::database_url(args.database_url.as_deref())?;
    if !tapesched_postgres::has_table(&url, &args.schema, "migration_stage").await? {
        return Err(Error::not_found(format!(
            "schema {:?} was never set up for a migration: run `tapesched migrate init --schema {}` first",
            args.schema, args.schema
        )));
    }
    // The target's pool is a plain worker's (2 connections): an operation given up on after
    // `--other-timeout-ms` keeps its connection until the server answers it (a statement queued
    // behind a lock waits for it), so a stopped target holds at most this many of its server's
    // connections per worker, never one more per timed-out call.
    let target = PgSchedulerDb::connect(plain_target(args, Backend::Postgres, label).postgres_config()?).await?;
    let legacy = tapesched_backends::open(&plain_target(args, Backend::ObjectstoreRedis, label)).await?;
    // The stage and the log go over two connections of their own: a slow or stopped target
    // (its operations queued behind a lock, its pool taken) never holds the stage read up, and
    // the last stage read is served while the record cannot be read (`RecordStage`).
    let record = Record::connect(&url, &args.schema, 2, Duration::from_secs(2)).await?;
    let stage = Arc::new(RecordStage::new(record.clone(), Duration::from_millis(args.stage_refresh_ms)));
    // Refuse to start without a readable stage: authority would be unknown.
    stage.stage().await?;
    let log = Arc::new(DivergenceLog::with(Sampling::default(), vec![fence_rule(), in_flight_rule()]));
    let process = format!("{label}:{}:{}", hostname(), std::process::id());
    let flusher = LogFlusher::spawn(record, log.clone(), process, DEFAULT_FLUSH_INTERVAL);
    let bridge = BridgeDb::new(legacy, Arc::new(target), stage.clone(), log)
        .with_other_timeout(Some(Duration::from_millis(args.other_timeout_ms)));
    let opened = Opened { db: Arc::new(bridge), stage: Some(stage), said: Mutex::new(None), flusher: Some(flusher) };
    opened.say_stage();
    Ok(opened)
}

/// This host's name (for the record's process names), `unknown` when it cannot be read.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

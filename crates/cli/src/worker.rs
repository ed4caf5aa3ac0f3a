//! `tapesched worker drive`: one drive session as an operating-system process.
//!
//! The worker opens a scheduler backend by name (`postgres` or `objectstore-redis`, see
//! [`open_backend`]), records its mount under the id it is given (`open_mount`, as the
//! migration bridge does), then loops: heartbeat, pop a batch, "write" it (no tape: a synthetic
//! tape file per archive job, fSeq counting up), report the batch as transferred. It ends its
//! mount and exits 0 once a pop comes back empty (or after `--max-batches`).
//!
//! Each step prints one line on stdout so a test can follow it and kill the process at a chosen
//! point: `open <mount>`, `popped <mount> <ids>`, `completed <mount> <ids>`, `end <mount>
//! requeued <n>` (ids are archive file ids, comma-separated).

use std::io::Write;
use std::sync::Arc;

use clap::Args;
use tapesched_scheduler::clock::{Clock, SystemClock};
use tapesched_scheduler::db::{MountJob, MountSpec, SchedulerDb, StayRouter, TransferSuccess};
use tapesched_scheduler::types::{MountType, TapeFile};

/// Arguments of `worker drive`.
#[derive(Debug, Args)]
pub struct DriveArgs {
    /// Backend: postgres or objectstore-redis.
    #[arg(long, default_value = "postgres")]
    pub backend: String,
    /// Redis server (objectstore-redis; default: $TAPESCHED_REDIS_URL).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Key prefix of the objectstore deployment (objectstore-redis).
    #[arg(long, default_value = "tapesched:")]
    pub redis_prefix: String,
    /// Lock lease in milliseconds (objectstore-redis): how long a lock of a dead process blocks.
    #[arg(long, default_value_t = 30_000)]
    pub lock_lease_ms: u64,
    /// PostgreSQL server (default: $TAPESCHED_DATABASE_URL).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Schema of the scheduler instance.
    #[arg(long, default_value = "tapesched")]
    pub schema: String,
    /// The drive.
    #[arg(long)]
    pub drive: String,
    /// The mount id to record this session under (unique per session).
    #[arg(long)]
    pub mount_id: u64,
    /// Mount type: ArchiveForUser or Retrieve.
    #[arg(long, default_value = "ArchiveForUser")]
    pub mount_type: String,
    /// The pool the session writes to (archive) or the tape's pool (retrieve).
    #[arg(long)]
    pub tape_pool: String,
    /// The mounted tape.
    #[arg(long)]
    pub vid: String,
    /// VO charged for the mount.
    #[arg(long, default_value = "vo")]
    pub vo: String,
    /// The drive's logical library.
    #[arg(long, default_value = "lib")]
    pub logical_library: String,
    /// Jobs per batch.
    #[arg(long, default_value_t = 100)]
    pub batch_files: u64,
    /// Bytes per batch.
    #[arg(long, default_value_t = u64::MAX)]
    pub batch_bytes: u64,
    /// Stop after this many batches (default: until the queue is empty).
    #[arg(long)]
    pub max_batches: Option<u64>,
}

/// Where a worker's backend lives.
pub struct BackendTarget<'a> {
    /// Backend name.
    pub name: &'a str,
    /// PostgreSQL URL (postgres).
    pub database_url: Option<&'a str>,
    /// PostgreSQL schema (postgres).
    pub schema: &'a str,
    /// Redis URL (objectstore-redis).
    pub redis_url: Option<&'a str>,
    /// Redis key prefix (objectstore-redis).
    pub redis_prefix: &'a str,
    /// Lock lease (objectstore-redis).
    pub lock_lease: std::time::Duration,
}

/// Opens a scheduler backend by name for a worker process.
pub async fn open_backend(target: &BackendTarget<'_>) -> Result<Arc<dyn SchedulerDb>, String> {
    match target.name {
        "postgres" => {
            let url = target
                .database_url
                .map(String::from)
                .or_else(|| std::env::var("TAPESCHED_DATABASE_URL").ok())
                .ok_or("postgres needs --database-url or TAPESCHED_DATABASE_URL")?;
            let config = tapesched_postgres::PgConfig {
                max_connections: 2,
                ..tapesched_postgres::PgConfig::new(url, target.schema)
            };
            let db = tapesched_postgres::PgSchedulerDb::connect(config).await.map_err(|e| e.to_string())?;
            Ok(Arc::new(db))
        }
        "objectstore-redis" => {
            use tapesched_objectstore::redis_store::{RedisSettings, RedisStore};
            let url = target
                .redis_url
                .map(String::from)
                .or_else(|| std::env::var("TAPESCHED_REDIS_URL").ok())
                .ok_or("objectstore-redis needs --redis-url or TAPESCHED_REDIS_URL")?;
            let mut settings = RedisSettings::new(url, target.redis_prefix);
            settings.lock_lease = target.lock_lease;
            let store = RedisStore::new(settings).map_err(|e| e.to_string())?;
            let config = tapesched_objectstore::ObjectstoreConfig {
                process_label: "worker".into(),
                ..tapesched_objectstore::ObjectstoreConfig::default()
            };
            Ok(Arc::new(tapesched_objectstore::ObjectstoreDb::new(Arc::new(store), config)))
        }
        other => Err(format!("backend {other:?} is not supported by workers (supported: postgres, objectstore-redis)")),
    }
}

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn ids(jobs: &[MountJob]) -> String {
    jobs.iter().map(|j| j.archive_file_id().to_string()).collect::<Vec<_>>().join(",")
}

/// `worker drive`: exit 0 when the session ended cleanly, 1 on a backend error, 2 on bad input.
pub async fn drive(args: DriveArgs) -> u8 {
    match run(args).await {
        Ok(()) => 0,
        Err((code, e)) => {
            eprintln!("error: {e}");
            code
        }
    }
}

async fn run(args: DriveArgs) -> Result<(), (u8, String)> {
    let mount_type: MountType = args.mount_type.parse().map_err(|e: tapesched_scheduler::Error| (2, e.to_string()))?;
    let target = BackendTarget {
        name: &args.backend,
        database_url: args.database_url.as_deref(),
        schema: &args.schema,
        redis_url: args.redis_url.as_deref(),
        redis_prefix: &args.redis_prefix,
        lock_lease: std::time::Duration::from_millis(args.lock_lease_ms),
    };
    let db = open_backend(&target).await.map_err(|e| (2, e))?;
    let clock = SystemClock;
    let fail = |e: tapesched_scheduler::Error| (1u8, e.to_string());
    let spec = MountSpec {
        mount_type,
        vid: args.vid.clone(),
        tape_pool: args.tape_pool.clone(),
        vo: args.vo.clone(),
        drive: args.drive.clone(),
        logical_library: args.logical_library.clone(),
    };
    let mount = args.mount_id;
    db.open_mount(mount, &spec, clock.now()).await.map_err(fail)?;
    say(format!("open {mount}"));
    let mut fseq = 0u64;
    let mut batches = 0u64;
    while args.max_batches.is_none_or(|m| batches < m) {
        db.heartbeat(Some(mount), clock.now()).await.map_err(fail)?;
        let jobs = db.pop_jobs(mount, args.batch_files, args.batch_bytes, clock.now()).await.map_err(fail)?;
        if jobs.is_empty() {
            break;
        }
        batches += 1;
        say(format!("popped {mount} {}", ids(&jobs)));
        let done: Vec<TransferSuccess> = jobs
            .iter()
            .map(|j| {
                let tape_file = match j {
                    MountJob::Archive { copy_nb, .. } => {
                        fseq += 1;
                        Some(TapeFile { copy_nb: *copy_nb, vid: args.vid.clone(), fseq, block_id: fseq })
                    }
                    MountJob::Retrieve { .. } => None,
                };
                TransferSuccess { job: j.id(), tape_file }
            })
            .collect();
        db.transfers_succeeded(mount, &done, clock.now()).await.map_err(fail)?;
        say(format!("completed {mount} {}", ids(&jobs)));
    }
    let requeued = db.end_mount(mount, clock.now(), &StayRouter).await.map_err(fail)?;
    say(format!("end {mount} requeued {requeued}"));
    Ok(())
}

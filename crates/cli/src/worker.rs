//! `tapesched worker drive`: one drive session as an operating-system process.
//!
//! The worker opens a scheduler backend by name (`postgres` or `objectstore-redis`, through
//! `tapesched_backends::open`, servers found as for every command), records its mount under the id it is given (`open_mount`, as the
//! migration bridge does), then loops: heartbeat, pop a batch, "write" it (no tape: a synthetic
//! tape file per archive job, fSeq counting up), report the batch as transferred. It ends its
//! mount and exits 0 once a pop comes back empty (or after `--max-batches`).
//!
//! Each step prints one line on stdout so a test can follow it and kill the process at a chosen
//! point: `open <mount>`, `popped <mount> <ids>`, `completed <mount> <ids>`, `end <mount>
//! requeued <n>` (ids are archive file ids, comma-separated).

use std::io::Write;
use std::time::Duration;

use clap::Args;
use tapesched_backends::{Backend, Target};
use tapesched_scheduler::clock::{Clock, SystemClock};
use tapesched_scheduler::db::{MountJob, MountSpec, StayRouter, TransferSuccess};
use tapesched_scheduler::types::{MountType, TapeFile};

/// Arguments of `worker drive`.
#[derive(Debug, Args)]
pub struct DriveArgs {
    /// Backend: postgres or objectstore-redis.
    #[arg(long, default_value = "postgres")]
    pub backend: String,
    /// Redis server (objectstore-redis; default: $TAPESCHED_REDIS_URL, else 127.0.0.1:6379).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Key prefix of the objectstore deployment (objectstore-redis).
    #[arg(long, default_value = "tapesched:")]
    pub redis_prefix: String,
    /// Lock lease in milliseconds (objectstore-redis): how long a lock of a dead process blocks.
    #[arg(long, default_value_t = 30_000)]
    pub lock_lease_ms: u64,
    /// PostgreSQL server (postgres; default: $TAPESCHED_DATABASE_URL, else 127.0.0.1:5432).
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

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn ids(jobs: &[MountJob]) -> String {
    jobs.iter().map(|j| j.archive_file_id().to_string()).collect::<Vec<_>>().join(",")
}

/// `worker drive`: exit 0 when the session ended cleanly, 2 on bad input or an unreachable
/// backend, 1 on another backend error.
pub async fn drive(args: DriveArgs) -> u8 {
    match run(args).await {
        Ok(()) => 0,
        Err(e) => crate::fail(crate::exit::code_of(e.kind), e.into()),
    }
}

async fn run(args: DriveArgs) -> Result<(), tapesched_scheduler::Error> {
    let mount_type: MountType = args.mount_type.parse()?;
    let backend = Backend::from_name(&args.backend)?;
    if matches!(backend, Backend::ObjectstoreMemory | Backend::Bridge(_)) {
        return Err(tapesched_scheduler::Error::invalid(format!(
            "backend {backend} is not supported by workers (supported: postgres, objectstore-redis)"
        )));
    }
    let target = Target {
        database_url: args.database_url.clone(),
        schema: args.schema.clone(),
        redis_url: args.redis_url.clone(),
        redis_prefix: args.redis_prefix.clone(),
        lock_lease: Some(Duration::from_millis(args.lock_lease_ms)),
        process_label: "worker".into(),
        ..Target::new(backend)
    };
    let db = tapesched_backends::open(&target).await?;
    let clock = SystemClock;
    let spec = MountSpec {
        mount_type,
        vid: args.vid.clone(),
        tape_pool: args.tape_pool.clone(),
        vo: args.vo.clone(),
        drive: args.drive.clone(),
        logical_library: args.logical_library.clone(),
    };
    let mount = args.mount_id;
    db.open_mount(mount, &spec, clock.now()).await?;
    say(format!("open {mount}"));
    let mut fseq = 0u64;
    let mut batches = 0u64;
    while args.max_batches.is_none_or(|m| batches < m) {
        db.heartbeat(Some(mount), clock.now()).await?;
        let jobs = db.pop_jobs(mount, args.batch_files, args.batch_bytes, clock.now()).await?;
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
        db.transfers_succeeded(mount, &done, clock.now()).await?;
        say(format!("completed {mount} {}", ids(&jobs)));
    }
    let requeued = db.end_mount(mount, clock.now(), &StayRouter).await?;
    say(format!("end {mount} requeued {requeued}"));
    Ok(())
}

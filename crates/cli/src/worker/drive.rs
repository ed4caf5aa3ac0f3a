//! `tapesched worker drive`: drive sessions as an operating-system process.
//!
//! With `--mount-id`, the worker records its mount under that id (`open_mount`, as the migration
//! bridge does) and runs one session. Without it, it asks the scheduler for a mount
//! (`next_mount`, taking this drive's spec when the mount info shows work queued for its tape
//! pool); with `--forever` it keeps asking, pausing `--idle-ms` when there is nothing to do,
//! until SIGINT or SIGTERM, which end the current session cleanly after its batch.
//!
//! A session loops: heartbeat, pop a batch, "write" it (no tape: a synthetic tape file per
//! archive job, fSeq counting up), report the batch as transferred; it ends its mount once a pop
//! comes back empty (or after `--max-batches`). Each step prints one line on stdout: `open
//! <mount>`, `popped <mount> <ids>`, `completed <mount> <ids>`, `end <mount> requeued <n>`, `idle`
//! (ids are archive file ids, comma-separated), and for the bridge `stage <stage>` on a change.

use std::time::Duration;

use clap::Args;
use tapesched_scheduler::clock::{Clock, SystemClock};
use tapesched_scheduler::db::{MountInfo, MountJob, MountSpec, StayRouter, TransferSuccess};
use tapesched_scheduler::types::{MountId, MountType, TapeFile};
use tapesched_scheduler::Error;

use super::{fired, open, say, BackendArgs, Opened, Stop};

/// Arguments of `worker drive`.
#[derive(Debug, Args)]
pub struct DriveArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// The drive.
    #[arg(long)]
    pub drive: String,
    /// Records the session under this mount id (unique per session) instead of asking the
    /// scheduler for a mount.
    #[arg(long)]
    pub mount_id: Option<u64>,
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
    /// Stop a session after this many batches (default: until its queue is empty).
    #[arg(long)]
    pub max_batches: Option<u64>,
    /// Keep asking for mounts until SIGINT or SIGTERM (without --mount-id).
    #[arg(long, conflicts_with = "mount_id")]
    pub forever: bool,
    /// With --forever: the pause after finding nothing to do, in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    pub idle_ms: u64,
}

fn ids(jobs: &[MountJob]) -> String {
    jobs.iter().map(|j| j.archive_file_id().to_string()).collect::<Vec<_>>().join(",")
}

/// `worker drive`: exit 0 when the sessions ended cleanly (or a signal stopped them), 2 on bad
/// input or an unreachable backend, 1 on another backend error.
pub async fn drive(args: DriveArgs) -> u8 {
    let stop: Stop = match crate::exit::interrupted() {
        Ok(s) => Box::pin(s),
        Err(e) => return crate::fail(crate::EXIT_FAILED, e.context("cannot listen for signals")),
    };
    match run(args, stop).await {
        Ok(()) => 0,
        Err(e) => crate::fail(crate::exit::code_of(e.kind), e.into()),
    }
}

async fn run(args: DriveArgs, mut stop: Stop) -> Result<(), Error> {
    let mount_type: MountType = args.mount_type.parse()?;
    let opened = open(&args.backend, "drive").await?;
    let outcome = sessions(&opened, &args, mount_type, &mut stop).await;
    opened.close().await;
    outcome
}

async fn sessions(opened: &Opened, args: &DriveArgs, mount_type: MountType, stop: &mut Stop) -> Result<(), Error> {
    let clock = SystemClock;
    let spec = MountSpec {
        mount_type,
        vid: args.vid.clone(),
        tape_pool: args.tape_pool.clone(),
        vo: args.vo.clone(),
        drive: args.drive.clone(),
        logical_library: args.logical_library.clone(),
    };
    let mut fseq = 0u64;
    if let Some(mount) = args.mount_id {
        opened.db.open_mount(mount, &spec, clock.now()).await?;
        say(format!("open {mount}"));
        return session(opened, args, mount, &mut fseq, stop).await.map(|_| ());
    }
    let wanted = |info: &MountInfo| {
        info.potential_mounts
            .iter()
            .any(|m| m.mount_type == spec.mount_type && m.tape_pool.as_deref() == Some(spec.tape_pool.as_str()))
            .then(|| spec.clone())
    };
    loop {
        let next = opened.db.next_mount(&args.logical_library, clock.now(), &wanted).await?;
        opened.say_stage();
        let stopped = match next {
            Some((mount, _)) => {
                say(format!("open {mount}"));
                session(opened, args, mount, &mut fseq, stop).await?
            }
            None if args.forever => {
                say("idle".into());
                tokio::select! {
                    _ = &mut *stop => true,
                    () = tokio::time::sleep(Duration::from_millis(args.idle_ms)) => false,
                }
            }
            None => true,
        };
        if stopped || !args.forever {
            return Ok(());
        }
    }
}

/// One session on `mount`; true when a signal asked the worker to stop.
async fn session(
    opened: &Opened,
    args: &DriveArgs,
    mount: MountId,
    fseq: &mut u64,
    stop: &mut Stop,
) -> Result<bool, Error> {
    let clock = SystemClock;
    let db = &opened.db;
    let mut batches = 0u64;
    let mut stopped = false;
    while args.max_batches.is_none_or(|m| batches < m) && !stopped {
        db.heartbeat(Some(mount), clock.now()).await?;
        let jobs = db.pop_jobs(mount, args.batch_files, args.batch_bytes, clock.now()).await?;
        opened.say_stage();
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
                        *fseq += 1;
                        Some(TapeFile { copy_nb: *copy_nb, vid: args.vid.clone(), fseq: *fseq, block_id: *fseq })
                    }
                    MountJob::Retrieve { .. } => None,
                };
                TransferSuccess { job: j.id(), tape_file }
            })
            .collect();
        db.transfers_succeeded(mount, &done, clock.now()).await?;
        say(format!("completed {mount} {}", ids(&jobs)));
        // A signal ends the session after the batch in hand, never in the middle of it.
        stopped = fired(stop);
    }
    let requeued = db.end_mount(mount, clock.now(), &StayRouter).await?;
    say(format!("end {mount} requeued {requeued}"));
    Ok(stopped)
}

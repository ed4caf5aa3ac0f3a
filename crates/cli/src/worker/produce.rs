//! `tapesched worker produce`: a disk system's archive requests as an operating-system process.
//!
//! Queues archive requests for one tape pool, archive file ids counting up from `--from`, in
//! batches of `--batch` (`queue_archives`). Without `--on-stdin` it queues `--count` requests
//! and exits; with it, it queues one batch per line read on standard input and exits at end of
//! input (a test or an operator paces it); a bridge producer follows the stage while it waits. After each batch it prints `queued <ids>` (the ids
//! the backend accepted) and, per refused request, `refused <id> <kind>: <message>`.

use std::io::BufRead;
use std::time::Duration;

use clap::Args;
use tapesched_scheduler::clock::{Clock, SystemClock};
use tapesched_scheduler::types::{ArchiveJob, ArchiveRequest, QueuedPolicy, Requester};
use tapesched_scheduler::Error;

use super::{open, say, BackendArgs, Opened};

/// Arguments of `worker produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// The tape pool the requests are archived to (one copy).
    #[arg(long)]
    pub tape_pool: String,
    /// The first archive file id.
    #[arg(long, default_value_t = 1)]
    pub from: u64,
    /// How many requests (without --on-stdin).
    #[arg(long, default_value_t = 100)]
    pub count: u64,
    /// Requests per batch.
    #[arg(long, default_value_t = 100)]
    pub batch: u64,
    /// Queue one batch per line of standard input, until its end.
    #[arg(long)]
    pub on_stdin: bool,
    /// Each file's size in bytes.
    #[arg(long, default_value_t = 1_000_000)]
    pub size: u64,
    /// The mount policy the requests are queued with (priority 1, no minimum age).
    #[arg(long, default_value = "default")]
    pub policy: String,
    /// The disk instance the requests come from (their report URLs name it).
    #[arg(long, default_value = "eos")]
    pub disk_instance: String,
}

/// `worker produce`: exit 0 when every batch was queued (refusals are printed, not fatal), 2 on
/// bad input or an unreachable backend, 1 on another backend error.
pub async fn produce(args: ProduceArgs) -> u8 {
    match run(args).await {
        Ok(()) => 0,
        Err(e) => crate::fail(crate::exit::code_of(e.kind), e.into()),
    }
}

fn request(args: &ProduceArgs, id: u64, now: i64) -> ArchiveRequest {
    ArchiveRequest {
        archive_file_id: id,
        disk_instance: args.disk_instance.clone(),
        disk_file_id: id.to_string(),
        requester: Requester { name: "producer".into(), group: "producers".into() },
        storage_class: "default".into(),
        size: args.size,
        created_at: now,
        report_url: Some(format!("{}://done/{id}", args.disk_instance)),
        error_report_url: Some(format!("{}://failed/{id}", args.disk_instance)),
        policy: QueuedPolicy { name: args.policy.clone(), priority: 1, min_request_age: 0 },
        jobs: vec![ArchiveJob::new(1, args.tape_pool.clone())],
        report_decided: false,
        repack: None,
    }
}

async fn run(args: ProduceArgs) -> Result<(), Error> {
    if args.batch == 0 || args.size == 0 {
        return Err(Error::invalid("--batch and --size must be at least 1"));
    }
    let opened = open(&args.backend, "producer").await?;
    let outcome = queue_all(&opened, &args).await;
    opened.close().await;
    outcome
}

async fn queue_all(opened: &Opened, args: &ProduceArgs) -> Result<(), Error> {
    let mut next = args.from;
    if args.on_stdin {
        // Standard input is read on a thread of its own; while no line comes, a bridge worker
        // keeps following the stage (and says when it changes).
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(16);
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                if line.is_err() || tx.blocking_send(()).is_err() {
                    break;
                }
            }
        });
        let every = Duration::from_millis(args.backend.stage_refresh_ms.max(10));
        loop {
            tokio::select! {
                line = rx.recv() => match line {
                    Some(()) => next = batch(opened, args, next, args.batch).await?,
                    None => return Ok(()),
                },
                () = tokio::time::sleep(every), if opened.stage_source().is_some() => opened.refresh_stage().await?,
            }
        }
    }
    let end = args.from.checked_add(args.count).ok_or_else(|| Error::invalid("--from + --count overflows"))?;
    while next < end {
        next = batch(opened, args, next, args.batch.min(end - next)).await?;
    }
    Ok(())
}

/// Queues `n` requests from id `first`; answers the next id.
async fn batch(opened: &Opened, args: &ProduceArgs, first: u64, n: u64) -> Result<u64, Error> {
    let now = SystemClock.now();
    let last = first.checked_add(n).ok_or_else(|| Error::invalid("archive file ids overflow"))?;
    let requests: Vec<ArchiveRequest> = (first..last).map(|id| request(args, id, now)).collect();
    let answers = opened.db.queue_archives(requests, now).await;
    opened.say_stage();
    let mut queued = Vec::new();
    for (id, answer) in (first..last).zip(answers) {
        match answer {
            Ok(()) => queued.push(id.to_string()),
            Err(e) => say(format!("refused {id} {}: {}", e.kind, e.message)),
        }
    }
    say(format!("queued {}", queued.join(",")));
    Ok(last)
}

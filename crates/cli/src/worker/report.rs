//! `tapesched worker report`: the reporter of a scheduler instance as an operating-system
//! process.
//!
//! Loops: take up to `--max` due reports (`reports_due`), "deliver" them (no disk system: a line
//! on stdout), record them delivered (`reports_delivered`). Prints `reported <reports>` per batch,
//! each report as `KIND:ARCHIVE_FILE_ID:OUTCOME` (`archive:42:success`), comma-separated. Without
//! `--forever` it exits once nothing is due; with it, it pauses `--idle-ms` and asks again until
//! SIGINT or SIGTERM. Run one reporter per instance: due reports are read, not claimed.

use std::time::Duration;

use clap::Args;
use tapesched_scheduler::clock::{Clock, SystemClock};
use tapesched_scheduler::db::{ReportFilter, ReportJob};
use tapesched_scheduler::types::RequestId;
use tapesched_scheduler::Error;

use super::{fired, open, say, BackendArgs, Opened, Stop};

/// Arguments of `worker report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub backend: BackendArgs,
    /// Reports per batch.
    #[arg(long, default_value_t = 500)]
    pub max: u64,
    /// Keep reporting until SIGINT or SIGTERM.
    #[arg(long)]
    pub forever: bool,
    /// With --forever: the pause after finding nothing due, in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    pub idle_ms: u64,
}

/// `worker report`: exit 0 when done (or stopped by a signal), 2 on bad input or an unreachable
/// backend, 1 on another backend error.
pub async fn report(args: ReportArgs) -> u8 {
    let stop: Stop = match crate::exit::interrupted() {
        Ok(s) => Box::pin(s),
        Err(e) => return crate::fail(crate::EXIT_FAILED, e.context("cannot listen for signals")),
    };
    match run(args, stop).await {
        Ok(()) => 0,
        Err(e) => crate::fail(crate::exit::code_of(e.kind), e.into()),
    }
}

fn name(r: &ReportJob) -> String {
    let kind = match r.request {
        RequestId::Archive(_) => "archive",
        RequestId::RepackArchive(_) => "repack-archive",
        RequestId::Retrieve(_) => "retrieve",
    };
    let outcome = serde_json::to_value(r.outcome).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    format!("{kind}:{}:{outcome}", r.archive_file_id)
}

async fn run(args: ReportArgs, mut stop: Stop) -> Result<(), Error> {
    if args.max == 0 {
        return Err(Error::invalid("--max must be at least 1"));
    }
    let opened = open(&args.backend, "reporter").await?;
    let outcome = deliver(&opened, &args, &mut stop).await;
    opened.close().await;
    outcome
}

async fn deliver(opened: &Opened, args: &ReportArgs, stop: &mut Stop) -> Result<(), Error> {
    loop {
        let due = opened.db.reports_due(ReportFilter::All, args.max, SystemClock.now()).await?;
        opened.say_stage();
        if due.is_empty() {
            if !args.forever {
                return Ok(());
            }
            tokio::select! {
                _ = &mut *stop => return Ok(()),
                () = tokio::time::sleep(Duration::from_millis(args.idle_ms)) => continue,
            }
        }
        let ids: Vec<RequestId> = due.iter().map(|r| r.request).collect();
        opened.db.reports_delivered(&ids, SystemClock.now()).await?;
        say(format!("reported {}", due.iter().map(name).collect::<Vec<_>>().join(",")));
        // A signal ends the reporter between batches, never between delivery and its record.
        if fired(stop) {
            return Ok(());
        }
    }
}

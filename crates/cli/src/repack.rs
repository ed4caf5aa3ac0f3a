//! `tapesched repack`: repack requests of a PostgreSQL scheduler instance (one schema, with its
//! shared catalogue), on the wall clock, with the repack buffer on the file system (`file://`).
//!
//! - `repack add VID --type T --mount-policy P [--buffer-url URL] [--no-recall] [--max-files N]
//!   [--storage-class SC]` queues a repack of a REPACKING tape;
//! - `repack ls` lists the repacks with their counters;
//! - `repack rm VID` cancels a repack (or removes a finished one) with every subrequest;
//! - `repack expand [--max-requests N] [--files-per-pass N] [--passes N]` promotes and expands
//!   (the maintenance process runs it in a loop);
//! - `repack report [--max N]` processes the reports of repack subrequests (recalls become
//!   re-archives, copies are counted).

use std::sync::Arc;

use clap::{Args, Subcommand};
use tapesched_backends::buffer::FsBuffer;
use tapesched_postgres::PgCatalogue;
use tapesched_scheduler::clock::SystemClock;
use tapesched_scheduler::decision::SchedulerConfig;
use tapesched_scheduler::repack::RepackType;
use tapesched_scheduler::scheduler::{RepackSubmission, Scheduler};
use tapesched_scheduler::Error;

use crate::database::Target;
use crate::exit::code_of;
use crate::fail;
use crate::table;

/// `repack` subcommands.
#[derive(Debug, Subcommand)]
pub enum RepackCommand {
    /// Queues a repack of a REPACKING tape.
    Add(AddArgs),
    /// Lists the repacks and their counters.
    Ls(TargetArgs),
    /// Cancels a repack, or removes a finished one, with every subrequest it still has.
    Rm(RmArgs),
    /// One maintenance run: promotes Pending repacks and expands some passes of each.
    Expand(ExpandArgs),
    /// Processes repack reports: recalled files become re-archives, written copies are counted.
    Report(ReportArgs),
}

/// Where the instance is.
#[derive(Debug, Args)]
pub struct TargetArgs {
    #[command(flatten)]
    target: Target,
}

/// Arguments of `repack add`.
#[derive(Debug, Args)]
pub struct AddArgs {
    /// The tape (must be REPACKING).
    pub vid: String,
    /// move, add_copies or move_and_add_copies.
    #[arg(long = "type", value_name = "TYPE")]
    pub repack_type: String,
    /// Mount policy of the recalls and re-archives.
    #[arg(long)]
    pub mount_policy: String,
    /// Base URL of the buffer (file:///...); the tape's files go to <URL>/<VID>/.
    #[arg(long, value_name = "URL")]
    pub buffer_url: Option<String>,
    /// Recall nothing: archive only the files already in the tape's buffer folder.
    #[arg(long)]
    pub no_recall: bool,
    /// Select at most N files.
    #[arg(long, value_name = "N")]
    pub max_files: Option<u64>,
    /// Select only files of this storage class.
    #[arg(long, value_name = "SC")]
    pub storage_class: Option<String>,
    #[command(flatten)]
    target: Target,
}

/// Arguments of `repack rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// The tape.
    pub vid: String,
    #[command(flatten)]
    target: Target,
}

/// Arguments of `repack expand`.
#[derive(Debug, Args)]
pub struct ExpandArgs {
    /// Repacks expanded at once (Pending ones are promoted up to this many).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub max_requests: u64,
    /// Files read from the catalogue per pass.
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub files_per_pass: u64,
    /// Passes per repack in this run (pipelined: a pass is read while the one before is written).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub passes: u64,
    #[command(flatten)]
    target: Target,
}

/// Arguments of `repack report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// At most N reports.
    #[arg(long, value_name = "N")]
    pub max: Option<u64>,
    #[command(flatten)]
    target: Target,
}

fn failed(e: Error) -> u8 {
    fail(code_of(e.kind), e.into())
}

async fn scheduler(target: &Target, config: SchedulerConfig) -> Result<Scheduler, Error> {
    let pg = target.backend(None).postgres_config()?;
    let schema = pg.schema.clone();
    let db = tapesched_backends::open_postgres(pg).await?;
    let catalogue = PgCatalogue::with_pool(db.pool().clone(), &schema);
    Ok(Scheduler::new(Arc::new(db), Arc::new(catalogue), Arc::new(SystemClock), config).with_buffer(Arc::new(FsBuffer)))
}

/// Runs a `repack` subcommand; exit 0, 2 on bad input or an unreachable server, 1 otherwise.
pub async fn run(command: RepackCommand) -> u8 {
    match command {
        RepackCommand::Add(a) => {
            let Ok(repack_type) = a.repack_type.parse::<RepackType>() else {
                return failed(Error::invalid(format!(
                    "--type {:?}: expected move, add_copies or move_and_add_copies",
                    a.repack_type
                )));
            };
            let s = match scheduler(&a.target, SchedulerConfig::default()).await {
                Ok(s) => s,
                Err(e) => return failed(e),
            };
            let sub = RepackSubmission {
                vid: a.vid.clone(),
                repack_type,
                mount_policy: a.mount_policy,
                buffer_url: a.buffer_url,
                no_recall: a.no_recall,
                max_files: a.max_files,
                storage_class: a.storage_class,
            };
            match s.queue_repack(sub).await {
                Ok(()) => {
                    println!("queued a {} repack of {}", repack_type, a.vid);
                    0
                }
                Err(e) => failed(e),
            }
        }
        RepackCommand::Ls(t) => {
            let s = match scheduler(&t.target, SchedulerConfig::default()).await {
                Ok(s) => s,
                Err(e) => return failed(e),
            };
            match s.show_repacks().await {
                Ok(all) => {
                    let header = [
                        "VID",
                        "TYPE",
                        "STATUS",
                        "TO RETRIEVE",
                        "RETRIEVED",
                        "TO ARCHIVE",
                        "ARCHIVED",
                        "FAILED",
                        "PROVIDED",
                    ];
                    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|h| h.to_string()).collect()];
                    rows.extend(all.iter().map(|r| {
                        let c = &r.counters;
                        vec![
                            r.vid.clone(),
                            r.repack_type.to_string(),
                            r.status.to_string(),
                            c.files_to_retrieve.to_string(),
                            c.files_retrieved.to_string(),
                            c.files_to_archive.to_string(),
                            c.files_archived.to_string(),
                            c.files_failed().to_string(),
                            c.user_provided_files.to_string(),
                        ]
                    }));
                    print!("{}", table::render(&rows, 0));
                    0
                }
                Err(e) => failed(e),
            }
        }
        RepackCommand::Rm(a) => {
            let s = match scheduler(&a.target, SchedulerConfig::default()).await {
                Ok(s) => s,
                Err(e) => return failed(e),
            };
            match s.cancel_repack(&a.vid).await {
                Ok(n) => {
                    println!(
                        "removed the repack of {} and {}",
                        a.vid,
                        crate::scenario::plural(n as usize, "subrequest")
                    );
                    0
                }
                Err(e) => failed(e),
            }
        }
        RepackCommand::Expand(a) => {
            if a.files_per_pass == 0 || a.passes == 0 {
                return failed(Error::invalid("--files-per-pass and --passes must be positive"));
            }
            let config = SchedulerConfig {
                repack_files_per_pass: a.files_per_pass,
                repack_passes_per_call: a.passes,
                ..SchedulerConfig::default()
            };
            let s = match scheduler(&a.target, config).await {
                Ok(s) => s,
                Err(e) => return failed(e),
            };
            match s.expand_repacks(Some(a.max_requests)).await {
                Ok(v) if v.is_empty() => {
                    println!("nothing to expand");
                    0
                }
                Ok(v) => {
                    println!("expanded {}", v.join(", "));
                    0
                }
                Err(e) => failed(e),
            }
        }
        RepackCommand::Report(a) => {
            let s = match scheduler(&a.target, SchedulerConfig::default()).await {
                Ok(s) => s,
                Err(e) => return failed(e),
            };
            match s.process_repack_reports(a.max).await {
                Ok(r) => {
                    println!("processed {}", crate::scenario::plural(r.len(), "repack report"));
                    0
                }
                Err(e) => failed(e),
            }
        }
    }
}

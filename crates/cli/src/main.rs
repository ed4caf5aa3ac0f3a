//! `tapesched`: the command line of the tape-archive scheduler.
//!
//! - `tapesched scenario run FILE_OR_DIR... --backend B [--trace OUT.jsonl]` plays scenarios and
//!   checks their expectations (exit 0: all passed, 1: an expectation failed, 2: invalid file or
//!   unavailable backend);
//! - `tapesched scenario compare FILE_OR_DIR... --backends B1,B2` plays them on several backends
//!   and stops at the first step whose traces differ (exit 1);
//! - `tapesched explain (--scenario FILE [--after-step N] | --catalogue FILE) --drive D [--json]`
//!   shows why a drive gets, or does not get, a mount;
//! - `tapesched db migrate|collect` and `tapesched catalogue load FILE` administer a PostgreSQL
//!   instance (`database.rs`); `tapesched worker drive` runs one drive session as a process
//!   (`worker.rs`).

#![warn(missing_docs)]

mod database;
mod explain;
mod scenario;
mod table;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Exit status for invalid input (files, arguments, backends).
pub const EXIT_INVALID: u8 = 2;

#[derive(Debug, Parser)]
#[command(name = "tapesched", version, about = "Tape-archive scheduler tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Scheduling scenarios: run them, compare backends on them.
    #[command(subcommand)]
    Scenario(ScenarioCommand),
    /// Explains the mount decision of a drive.
    Explain(ExplainArgs),
    /// PostgreSQL instance administration.
    #[command(subcommand)]
    Db(DbCommand),
    /// The shared catalogue.
    #[command(subcommand)]
    Catalogue(CatalogueCommand),
    /// Processes that run scheduler work.
    #[command(subcommand)]
    Worker(WorkerCommand),
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Applies the schema migrations (a no-op when up to date).
    Migrate(database::MigrateArgs),
    /// Dead-mount cleanup: one pass, or with --every a pass at that interval until stopped.
    Collect(database::CollectArgs),
}

#[derive(Debug, Subcommand)]
enum CatalogueCommand {
    /// Replaces the shared catalogue with a YAML catalogue.
    Load(database::LoadArgs),
}

#[derive(Debug, Subcommand)]
enum WorkerCommand {
    /// Runs one drive session: pops batches and completes them until the queue is empty.
    Drive(worker::DriveArgs),
}

#[derive(Debug, Subcommand)]
enum ScenarioCommand {
    /// Plays scenario files and checks their expectations.
    Run(RunArgs),
    /// Plays scenario files on several backends and diffs the traces step by step.
    Compare(CompareArgs),
}

/// Arguments of `scenario run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Scenario files, or directories searched recursively for `*.yaml`.
    #[arg(required = true, value_name = "FILE_OR_DIR")]
    pub paths: Vec<PathBuf>,
    /// Backend: objectstore-memory, objectstore-redis, postgres, bridge.
    #[arg(long, default_value = "objectstore-memory")]
    pub backend: String,
    /// Writes the trace (one JSON object per step) to this file.
    #[arg(long, value_name = "OUT.jsonl")]
    pub trace: Option<PathBuf>,
}

/// Arguments of `scenario compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Scenario files, or directories searched recursively for `*.yaml`.
    #[arg(required = true, value_name = "FILE_OR_DIR")]
    pub paths: Vec<PathBuf>,
    /// Comma-separated backends, at least two.
    #[arg(long, required = true, value_name = "B1,B2[,...]")]
    pub backends: String,
}

/// Arguments of `explain`.
#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// A scenario whose steps are played first.
    #[arg(long, value_name = "FILE", required_unless_present = "catalogue", conflicts_with = "catalogue")]
    pub scenario: Option<PathBuf>,
    /// A file holding only a catalogue mapping; explains against empty queues.
    #[arg(long, value_name = "FILE")]
    pub catalogue: Option<PathBuf>,
    /// The drive asking for a mount.
    #[arg(long)]
    pub drive: String,
    /// Plays only the first N steps of the scenario.
    #[arg(long, value_name = "N", requires = "scenario")]
    pub after_step: Option<usize>,
    /// Backend.
    #[arg(long, default_value = "objectstore-memory")]
    pub backend: String,
    /// Prints JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Scenario(ScenarioCommand::Run(args)) => scenario::run(args).await,
            Command::Scenario(ScenarioCommand::Compare(args)) => scenario::compare(args).await,
            Command::Explain(args) => explain::explain(args).await,
            Command::Db(DbCommand::Migrate(args)) => database::migrate(args).await,
            Command::Db(DbCommand::Collect(args)) => database::collect(args).await,
            Command::Catalogue(CatalogueCommand::Load(args)) => database::load(args).await,
            Command::Worker(WorkerCommand::Drive(args)) => worker::drive(args).await,
        }
    });
    ExitCode::from(code)
}

//! `tapesched`: the command line of the tape-archive scheduler.
//!
//! - `tapesched scenario run FILE_OR_DIR... --backend B [--trace OUT.jsonl]` plays scenarios and
//!   checks their expectations;
//! - `tapesched scenario compare FILE_OR_DIR... --backends B1,B2` plays them on several backends
//!   and stops at the first step whose traces differ;
//! - `tapesched explain (--scenario FILE [--after-step N] | --catalogue FILE) --drive D [--json]`
//!   shows why a drive gets, or does not get, a mount;
//! - `tapesched db migrate|collect|gc-runs` and `tapesched catalogue load FILE` administer a
//!   PostgreSQL instance and the namespaces of scenario runs (`database.rs`); `tapesched worker
//!   drive` runs one drive session as a process (`worker.rs`);
//! - `tapesched taped --config FILE [--simulate-for DURATION]` runs the drives of a tape server
//!   and `tapesched config check FILE` checks its configuration (`taped.rs`);
//! - `tapesched maintenance --config FILE [--once] [--clock START,ORIGIN,FACTOR]` runs the
//!   maintenance loops (`maintenance.rs`);
//! - `tapesched produce --config FILE --events FILE.jsonl --clock START,ORIGIN,FACTOR` replays
//!   arrivals on a scaled clock (`produce.rs`; with `taped --clock` and `maintenance --clock`,
//!   the processes mode of the end-to-end harness);
//! - `tapesched migrate init|status|config|stage|backfill|verify|repair|report` moves a
//!   scheduler from the legacy objectstore to PostgreSQL (`migrate.rs`, `migrate_status.rs`,
//!   `migrate_report.rs`).
//!
//! Every command exits with the same codes ([`EXIT_FAILED`], [`EXIT_INVALID`],
//! [`EXIT_INTERRUPTED`]); errors are printed as `error: ` and their chain of causes.

#![warn(missing_docs)]

mod compare_report;
mod database;
mod exit;
mod explain;
mod maintenance;
mod migrate;
mod migrate_report;
mod migrate_status;
mod produce;
mod repack;
mod scenario;
mod table;
mod taped;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

pub use exit::{fail, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INVALID};

#[derive(Debug, Parser)]
#[command(
    name = "tapesched",
    version,
    about = "Tape-archive scheduler tools",
    after_help = "Exit status, the same for every command: 0 done; 1 the command ran and failed (a scenario \
                  expectation failed, backends diverged, the database refused an operation); 2 invalid input or \
                  usage, or a backend that cannot be reached; 130 interrupted by SIGINT or SIGTERM (the run's \
                  namespaces are removed first; `maintenance` and `db collect --every` stop with 0)."
)]
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
    /// Database administration: PostgreSQL instances, and what dead scenario runs left behind.
    #[command(subcommand)]
    Db(DbCommand),
    /// The shared catalogue.
    #[command(subcommand)]
    Catalogue(CatalogueCommand),
    /// Repack requests of a PostgreSQL instance: add, list, remove, expand, process reports.
    #[command(subcommand)]
    Repack(repack::RepackCommand),
    /// Processes that run scheduler work.
    #[command(subcommand)]
    Worker(WorkerCommand),
    /// Migration from the legacy objectstore (Redis) to PostgreSQL: stage, backfill, verify, repair.
    #[command(subcommand)]
    Migrate(migrate::MigrateCommand),
    /// The tape daemon of one tape server: runs its drives (on the simulated library for
    /// --simulate-for of virtual time, or with --clock in real time on a scaled clock until
    /// SIGINT/SIGTERM; on mhVTL until SIGINT/SIGTERM), draining them on a signal.
    Taped(taped::TapedArgs),
    /// Tape server configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// The maintenance daemon: report delivery, garbage collection, retrieve-queue cleanup and
    /// repack loops at their intervals until SIGINT/SIGTERM (or one pass each with --once).
    Maintenance(maintenance::MaintenanceArgs),
    /// A producer on a scaled clock: replays arrivals (JSON lines: queue archives, queue
    /// retrieves, tape state changes, each at its simulated time) through the scheduler, one JSON
    /// line per applied event (the processes mode of the end-to-end harness).
    Produce(produce::ProduceArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Checks a tape server configuration: keys, the library files, drives and cartridges
    /// against the library and the catalogue (the scheduler backend is not opened; a Postgres
    /// catalogue is read).
    Check(taped::CheckArgs),
}

#[derive(Debug, Subcommand)]
enum DbCommand {
    /// Applies the schema migrations (a no-op when up to date).
    Migrate(database::MigrateArgs),
    /// Dead-mount cleanup: one pass, or with --every a pass at that interval until stopped.
    Collect(database::CollectArgs),
    /// Removes the namespaces (Postgres schemas, Redis key prefixes) of scenario runs whose
    /// process is gone (killed, crashed); those of live runs and of other hosts are kept.
    GcRuns(database::GcRunsArgs),
}

#[derive(Debug, Subcommand)]
enum CatalogueCommand {
    /// Replaces the shared catalogue with a YAML catalogue.
    Load(database::LoadArgs),
}

#[derive(Debug, Subcommand)]
enum WorkerCommand {
    /// Runs drive sessions: pops batches and completes them until the queue is empty (or, with
    /// --forever, keeps asking for mounts until stopped).
    Drive(worker::DriveArgs),
    /// Queues archive requests (a disk system's part), in batches.
    Produce(worker::ProduceArgs),
    /// Delivers due reports (a reporter's part) and records them delivered.
    Report(worker::ReportArgs),
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
    /// Backend: objectstore-memory, objectstore-redis, postgres, or the migration bridge
    /// bridge:LEGACY:TARGET:STAGE (e.g. bridge:objectstore-redis:postgres:shadow; stages off,
    /// dual-write, shadow, live, rampdown, complete), whose run fails if its two sides diverge.
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
    /// Comma-separated backends, at least two (objectstore-memory, objectstore-redis, postgres,
    /// bridge:LEGACY:TARGET:STAGE).
    #[arg(long, required = true, value_name = "B1,B2[,...]")]
    pub backends: String,
    /// Also writes DIR/report.md and DIR/report.html (created if needed): match rates per step
    /// kind, each backend's latency per step kind, mismatched steps over scenario time and both
    /// answers of each (with each backend's explanation for a decision step). Every file is then
    /// run on every backend, even after a divergent step; the exit status is unchanged.
    #[arg(long, value_name = "DIR")]
    pub report: Option<PathBuf>,
}

/// Arguments of `explain`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("input").required(true).args(["scenario", "catalogue"])))]
pub struct ExplainArgs {
    /// A scenario whose steps are played first: by default up to its first drive operation
    /// (next_mount without dry_run, pop_jobs, complete_jobs, end_mount, crash_drive), so the
    /// queues are as the first drive found them; --after-step N chooses another point.
    #[arg(long, value_name = "FILE", conflicts_with = "catalogue")]
    pub scenario: Option<PathBuf>,
    /// A catalogue file, or a scenario file whose catalogue is used (its steps are not played):
    /// explains against empty queues.
    #[arg(long, value_name = "FILE")]
    pub catalogue: Option<PathBuf>,
    /// The drive asking for a mount.
    #[arg(long)]
    pub drive: String,
    /// Plays the first N steps of the scenario (0: none; the number of steps: all of them).
    #[arg(long, value_name = "N", requires = "scenario")]
    pub after_step: Option<usize>,
    /// Backend: objectstore-memory, objectstore-redis, postgres or bridge:LEGACY:TARGET:STAGE.
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
    // Output piped into a reader that stops early (`tapesched repack ls | head`) ends the
    // process quietly, as other Unix tools do, rather than a `println!` panic on a closed pipe.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            return ExitCode::from(fail(EXIT_FAILED, anyhow::Error::new(e).context("cannot start the async runtime")))
        }
    };
    let code = runtime.block_on(async {
        match cli.command {
            Command::Scenario(ScenarioCommand::Run(args)) => scenario::run(args).await,
            Command::Scenario(ScenarioCommand::Compare(args)) => scenario::compare(args).await,
            Command::Explain(args) => explain::explain(args).await,
            Command::Db(DbCommand::Migrate(args)) => database::migrate(args).await,
            Command::Db(DbCommand::Collect(args)) => database::collect(args).await,
            Command::Db(DbCommand::GcRuns(args)) => database::gc_runs(args).await,
            Command::Catalogue(CatalogueCommand::Load(args)) => database::load(args).await,
            Command::Worker(WorkerCommand::Drive(args)) => worker::drive(args).await,
            Command::Worker(WorkerCommand::Produce(args)) => worker::produce(args).await,
            Command::Worker(WorkerCommand::Report(args)) => worker::report(args).await,
            Command::Repack(c) => repack::run(c).await,
            Command::Migrate(c) => migrate::run(c).await,
            Command::Taped(args) => taped::taped(args).await,
            Command::Config(ConfigCommand::Check(args)) => taped::check(args).await,
            Command::Maintenance(args) => maintenance::maintenance(args).await,
            Command::Produce(args) => produce::produce(args).await,
        }
    });
    drop(runtime);
    // Servers started as fallbacks (no server found) stop with the command.
    tapesched_services::stop_started();
    ExitCode::from(code)
}

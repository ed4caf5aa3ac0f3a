//! `tapesched migrate init|status|stage|backfill|verify|repair`: moving a scheduler from the
//! legacy objectstore (Redis) to PostgreSQL (issue 12; the library is `tapesched-migrate`).
//!
//! The stage, its history, verify results and the backfill checkpoint live in the target
//! database (`migrations/0009_migration.sql`). Servers are found as every command finds them
//! (`tapesched_backends::database_url` / `redis_url`).

use std::time::Duration;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use tapesched_backends::Backend;
use tapesched_migrate::{BackfillOptions, Record, Stage, VerifyOptions, VerifyReport};
use tapesched_postgres::backend::{PgConfig, PgSchedulerDb};
use tapesched_scheduler::clock::{Clock, SystemClock};
use tapesched_scheduler::db::SchedulerDb;
use tapesched_scheduler::state::StateKey;
use tapesched_scheduler::{Error, ErrorKind};

use crate::exit::code_of;
use crate::{fail, EXIT_FAILED};

/// `tapesched migrate ...`.
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Sets the target database up for a migration (stage `off`).
    Init(TargetArgs),
    /// Shows the stage, its history, the last verify and the backfill checkpoint.
    Status(TargetArgs),
    /// Changes the stage: forward one at a time, back to any earlier one until `complete`.
    Stage(StageArgs),
    /// Copies the legacy state into the target (resumable; refused in stage `off`).
    Backfill(BackfillArgs),
    /// Compares legacy and target in full and records the result.
    Verify(VerifyArgs),
    /// Makes the non-authoritative side equal to the authoritative one where they differ.
    Repair(VerifyArgs),
}

/// The target database.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// PostgreSQL server of the target (default: $TAPESCHED_DATABASE_URL, else 127.0.0.1:5432).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Schema of the target instance.
    #[arg(long, default_value = "tapesched")]
    pub schema: String,
    /// Who runs the command, for the history (default: $USER).
    #[arg(long)]
    pub who: Option<String>,
}

/// Both sides.
#[derive(Debug, Args)]
pub struct SidesArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Redis server of the legacy objectstore (default: $TAPESCHED_REDIS_URL, else 127.0.0.1:6379).
    #[arg(long, value_name = "URL")]
    legacy_redis_url: Option<String>,
    /// Key prefix of the legacy deployment.
    #[arg(long, default_value = "tapesched:")]
    legacy_prefix: String,
}

/// Arguments of `migrate stage`.
#[derive(Debug, Args)]
pub struct StageArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// The new stage: off, dual-write, shadow, live, rampdown or complete.
    stage: String,
    /// Why (recorded in the history).
    #[arg(long)]
    reason: String,
    /// Overrides the refusal of `live` without a clean verify (recorded).
    #[arg(long)]
    force: bool,
}

/// Arguments of `migrate backfill`.
#[derive(Debug, Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    sides: SidesArgs,
    /// Items per page.
    #[arg(long, default_value_t = 5000)]
    page: usize,
    /// Starts from the beginning instead of the checkpoint.
    #[arg(long)]
    restart: bool,
}

/// Arguments of `migrate verify` and `migrate repair`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    sides: SidesArgs,
    /// Items per page.
    #[arg(long, default_value_t = 10_000)]
    page: usize,
    /// Times a difference is read again before it is reported.
    #[arg(long, default_value_t = 3)]
    rechecks: u32,
}

fn failed(e: Error) -> u8 {
    fail(code_of(e.kind), e.into())
}

fn who(t: &TargetArgs) -> String {
    t.who.clone().or_else(|| std::env::var("USER").ok()).unwrap_or_else(|| "operator".into())
}

/// The target instance. Only `init` may set a schema up: every other command first checks that
/// the migration record exists, so pointing it at a wrong schema changes nothing.
async fn open_target(t: &TargetArgs, init: bool) -> Result<PgSchedulerDb, Error> {
    let url = tapesched_backends::database_url(t.database_url.as_deref())?;
    if !init
        && !tapesched_postgres::has_table(&url, &t.schema, "migration_stage")
            .await
            .map_err(|e| in_side("target (PostgreSQL)", e))?
    {
        return Err(Error::not_found(format!(
            "schema {:?} was never set up for a migration: run `tapesched migrate init --schema {}` first",
            t.schema, t.schema
        )));
    }
    PgSchedulerDb::connect(PgConfig { max_connections: 4, ..PgConfig::new(url, t.schema.clone()) })
        .await
        .map_err(|e| in_side("target (PostgreSQL)", e))
}

async fn open_legacy(s: &SidesArgs) -> Result<std::sync::Arc<dyn SchedulerDb>, Error> {
    let target = tapesched_backends::Target {
        redis_url: s.legacy_redis_url.clone(),
        redis_prefix: s.legacy_prefix.clone(),
        process_label: "migrate".into(),
        ..tapesched_backends::Target::new(Backend::ObjectstoreRedis)
    };
    tapesched_backends::open(&target).await.map_err(|e| in_side("legacy (Redis objectstore)", e))
}

fn in_side(side: &str, e: Error) -> Error {
    let message = format!("{side}: {}", e.message);
    let kind = e.kind;
    e.rephrased(kind, message)
}

/// Runs a `migrate` command; answers the exit status.
pub async fn run(command: MigrateCommand) -> u8 {
    let r = match command {
        MigrateCommand::Init(t) => init(t).await,
        MigrateCommand::Status(t) => status(t).await,
        MigrateCommand::Stage(a) => stage(a).await,
        MigrateCommand::Backfill(a) => backfill(a).await,
        MigrateCommand::Verify(a) => verify(a, false).await,
        MigrateCommand::Repair(a) => verify(a, true).await,
    };
    r.unwrap_or_else(failed)
}

async fn init(t: TargetArgs) -> Result<u8, Error> {
    let db = open_target(&t, true).await?;
    let stage = Record::of_postgres(&db).init(&who(&t)).await?;
    println!("schema {}: migration set up, stage {stage}", t.schema);
    Ok(0)
}

async fn status(t: TargetArgs) -> Result<u8, Error> {
    let db = open_target(&t, false).await?;
    let record = Record::of_postgres(&db);
    let stage = record.read_stage().await?;
    println!("stage: {stage}");
    println!("history:");
    for c in record.history().await? {
        let from = c.previous.map_or("-".to_string(), |p| p.to_string());
        let forced = if c.forced { " (forced)" } else { "" };
        println!("  {} {from} -> {}{forced} by {}: {}", c.at, c.stage, c.who, c.reason);
    }
    match record.last_verify().await? {
        None => println!("last verify: none"),
        Some(v) => {
            println!("last verify: at {}, {} items, {} difference(s)", v.at, v.items, v.differences);
            for line in v.summary.lines() {
                println!("  {line}");
            }
        }
    }
    let cp = record.checkpoint().await?;
    let state = if cp.done {
        "done"
    } else if cp.last_key.is_some() {
        "stopped"
    } else {
        "not started"
    };
    let after = cp.last_key.map_or(String::new(), |k| format!(", last {k}"));
    println!("backfill: {state}, {} items, {} jobs{after}", cp.items, cp.jobs);
    Ok(0)
}

async fn stage(a: StageArgs) -> Result<u8, Error> {
    let to: Stage = a.stage.parse()?;
    let db = open_target(&a.target, false).await?;
    let change = Record::of_postgres(&db).set_stage(to, &who(&a.target), &a.reason, a.force).await?;
    let forced = if change.forced { " (forced, recorded)" } else { "" };
    println!("stage {} -> {}{forced}", change.previous.map_or("-".into(), |p| p.to_string()), change.stage);
    Ok(0)
}

async fn backfill(a: BackfillArgs) -> Result<u8, Error> {
    let target = open_target(&a.sides.target, false).await?;
    let record = Record::of_postgres(&target);
    let stage = record.read_stage().await?;
    if stage == Stage::Off {
        return Err(Error::new(
            ErrorKind::StateTransitionRefused,
            "backfill refused in stage off: start dual-write first (`tapesched migrate stage dual-write --reason \
             ...`), so that what changes during the copy reaches the target too",
        ));
    }
    if stage >= Stage::Live {
        return Err(Error::new(
            ErrorKind::StateTransitionRefused,
            format!("backfill refused in stage {stage}: the target is authoritative; use `tapesched migrate repair`"),
        ));
    }
    let legacy = open_legacy(&a.sides).await?;
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} items  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let options = BackfillOptions { page: a.page, stop_after: None, restart: a.restart };
    let now = SystemClock.now();
    let report = tapesched_migrate::backfill(&*legacy, &target, &record, &options, now, &mut |p| {
        if let Some(t) = p.total {
            bar.set_length(t.max(p.items));
        }
        bar.set_position(p.items);
        let eta = p.eta.map_or("ETA -".to_string(), |e| format!("ETA {}", human(e)));
        bar.set_message(format!(
            "{} jobs, {:.0} jobs/s, {:.0} items/s, {eta}",
            p.jobs, p.jobs_per_sec, p.items_per_sec
        ));
    })
    .await;
    bar.finish();
    let report = report?;
    let p = report.progress;
    if let Some(from) = report.resumed_from {
        println!("resumed after {} items", from.items);
    }
    println!(
        "backfill {}: {} items ({} jobs) in total, {} this run in {:.1} s ({:.0} jobs/s)",
        if report.complete { "complete" } else { "stopped" },
        p.items,
        p.jobs,
        p.items_this_run,
        p.elapsed.as_secs_f64(),
        p.jobs_per_sec
    );
    Ok(0)
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

async fn verify(a: VerifyArgs, repair: bool) -> Result<u8, Error> {
    let target = open_target(&a.sides.target, false).await?;
    let record = Record::of_postgres(&target);
    let stage = record.read_stage().await?;
    let legacy = open_legacy(&a.sides).await?;
    let options = VerifyOptions { page: a.page, rechecks: a.rechecks };
    let report = tapesched_migrate::verify(&*legacy, &target, &options).await?;
    print_report(&report);
    if !repair {
        record.record_verify(report.items_a, report.differences.len() as u64, &report.summary()).await?;
        return Ok(if report.is_clean() { 0 } else { EXIT_FAILED });
    }
    let keys: Vec<StateKey> = report.differences.iter().map(|d| d.key.clone()).collect();
    let now = SystemClock.now();
    let fixed = if stage >= Stage::Live {
        println!("repairing legacy from the target (authoritative in stage {stage})");
        tapesched_migrate::repair(&target, &*legacy, &keys, now).await?
    } else {
        println!("repairing the target from legacy (authoritative in stage {stage})");
        tapesched_migrate::repair(&*legacy, &target, &keys, now).await?
    };
    println!(
        "repair: {} item(s) written, {} deleted; run `tapesched migrate verify` to check",
        fixed.written, fixed.deleted
    );
    Ok(0)
}

fn print_report(r: &VerifyReport) {
    println!(
        "verify: legacy {} items ({} jobs), target {} items, in {:.1} s ({:.0} jobs/s); {} settled on re-check",
        r.items_a,
        r.jobs_a,
        r.items_b,
        r.elapsed.as_secs_f64(),
        r.jobs_per_sec(),
        r.settled
    );
    if r.is_clean() {
        println!("no differences");
        return;
    }
    println!("{} difference(s) (missing/extra: on legacy only / on target only):", r.differences.len());
    for ((queue, kind), n) in r.per_queue() {
        println!("  {queue}: {n} {}", kind.as_str());
    }
    for d in r.differences.iter().take(50) {
        println!("  {} {}", d.kind.as_str(), d.key);
    }
    if r.differences.len() > 50 {
        println!("  ... {} more", r.differences.len() - 50);
    }
}

//! `tapesched migrate init|status|config|stage|backfill|verify|repair|report`: moving a scheduler from
//! the legacy objectstore (Redis) to PostgreSQL (issue 12; the library is `tapesched-migrate`).
//!
//! The stage, its history, verify results, the backfill checkpoint, the gate of `live`'s
//! settings and the bridge's counters and divergences of every process live in the target
//! database (`migrations/0009_migration.sql`, `0010_migration_log.sql`); `status` is in
//! `migrate_status.rs`, `report` in `migrate_report.rs`. Servers are found as every command finds them
//! (`tapesched_backends::database_url` / `redis_url`).

use std::sync::Arc;
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
    /// Sets the target database up for a migration (stage `off`), with the gate's settings.
    Init(ConfigArgs),
    /// Shows the stage, its history, the last verify, the backfill checkpoint, the bridge's
    /// counters (in total and over the gate's window) and the unrepaired divergences.
    Status(StatusArgs),
    /// Shows or changes the gate of `live`: the highest mismatch rate over a window.
    Config(ConfigArgs),
    /// Changes the stage: forward one at a time, back to any earlier one until `complete`.
    Stage(StageArgs),
    /// Copies the legacy state into the target (resumable; refused in stage `off`).
    Backfill(BackfillArgs),
    /// Compares legacy and target in full and records the result.
    Verify(VerifyArgs),
    /// Makes the non-authoritative side equal to the authoritative one where a fresh verify finds
    /// differences and for what the unrepaired divergences name.
    Repair(RepairArgs),
    /// Writes the migration's comparison report (report.md, report.html; window/ for the gate's
    /// window) from the counters and divergences every process stored.
    Report(crate::migrate_report::ReportArgs),
}

/// Arguments of `migrate init` and `migrate config`.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// The highest mismatch rate (mismatched / compared, ignored left out) over the window that
    /// still allows `live` (0 to 1; default 0: any mismatch refuses).
    #[arg(long, value_name = "R")]
    max_mismatch_rate: Option<f64>,
    /// The gate's window, seconds back from the stage change (default 600).
    #[arg(long, value_name = "SECS")]
    window: Option<i64>,
}

/// Arguments of `migrate status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub(crate) target: TargetArgs,
    /// How many of the latest unrepaired divergences to show.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub(crate) divergences: usize,
}

/// Arguments of `migrate repair`.
#[derive(Debug, Args)]
pub struct RepairArgs {
    #[command(flatten)]
    verify: VerifyArgs,
    /// Repairs only what the unrepaired divergences name (no full verify first).
    #[arg(long)]
    divergences_only: bool,
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
    /// Overrides the refusals of `live` (no clean verify, a mismatch rate above the maximum, no
    /// evidence in the window); recorded in the history.
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
pub(crate) async fn open_target(t: &TargetArgs, init: bool) -> Result<PgSchedulerDb, Error> {
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
    // A backfill writes up to IN_FLIGHT pages at once and saves its checkpoint beside them: a
    // connection each, so that none waits for one (a page too long to write would otherwise
    // make the others time out waiting).
    let connections = tapesched_migrate::IN_FLIGHT as u32 + 2;
    PgSchedulerDb::connect(PgConfig { max_connections: connections, ..PgConfig::new(url, t.schema.clone()) })
        .await
        .map_err(|e| in_side("target (PostgreSQL)", e))
}

async fn open_legacy(s: &SidesArgs) -> Result<Arc<dyn SchedulerDb>, Error> {
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
        MigrateCommand::Init(a) => init(a).await,
        MigrateCommand::Status(a) => crate::migrate_status::status(a).await,
        MigrateCommand::Config(a) => config(a).await,
        MigrateCommand::Stage(a) => stage(a).await,
        MigrateCommand::Backfill(a) => backfill(a).await,
        MigrateCommand::Verify(a) => verify(a).await,
        MigrateCommand::Repair(a) => repair(a).await,
        MigrateCommand::Report(a) => crate::migrate_report::run(a).await,
    };
    r.unwrap_or_else(failed)
}

async fn init(a: ConfigArgs) -> Result<u8, Error> {
    let db = open_target(&a.target, true).await?;
    let record = Record::of_postgres(&db);
    let stage = record.init(&who(&a.target)).await?;
    let gate = record.set_gate_config(a.max_mismatch_rate, a.window).await?;
    println!("schema {}: migration set up, stage {stage}", a.target.schema);
    println!("{}", crate::migrate_status::gate_line(&gate));
    Ok(0)
}

async fn config(a: ConfigArgs) -> Result<u8, Error> {
    let db = open_target(&a.target, false).await?;
    let gate = Record::of_postgres(&db).set_gate_config(a.max_mismatch_rate, a.window).await?;
    println!("{}", crate::migrate_status::gate_line(&gate));
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

async fn verify(a: VerifyArgs) -> Result<u8, Error> {
    let target = Arc::new(open_target(&a.sides.target, false).await?);
    let record = Record::of_postgres(&target);
    record.read_stage().await?;
    let legacy = open_legacy(&a.sides).await?;
    let options = VerifyOptions { page: a.page, rechecks: a.rechecks };
    let report = tapesched_migrate::verify(legacy.clone(), target.clone(), &options).await?;
    print_report(&report);
    record.record_verify(report.items_a, report.differences.len() as u64, &report.summary()).await?;
    Ok(if report.is_clean() { 0 } else { EXIT_FAILED })
}

async fn repair(a: RepairArgs) -> Result<u8, Error> {
    let sides = &a.verify.sides;
    let target = Arc::new(open_target(&sides.target, false).await?);
    let record = Record::of_postgres(&target);
    let stage = record.read_stage().await?;
    let legacy = open_legacy(sides).await?;
    let (authoritative, other): (&dyn SchedulerDb, &dyn SchedulerDb) = if stage >= Stage::Live {
        println!("repairing legacy from the target (authoritative in stage {stage})");
        (&*target, &*legacy)
    } else {
        println!("repairing the target from legacy (authoritative in stage {stage})");
        (&*legacy, &*target)
    };
    let now = SystemClock.now();
    if !a.divergences_only {
        let options = VerifyOptions { page: a.verify.page, rechecks: a.verify.rechecks };
        let report = tapesched_migrate::verify(legacy.clone(), target.clone(), &options).await?;
        print_report(&report);
        let keys: Vec<StateKey> = report.differences.iter().map(|d| d.key.clone()).collect();
        let fixed = tapesched_migrate::repair(authoritative, other, &keys, now).await?;
        println!("repair of the differences: {} item(s) written, {} deleted", fixed.written, fixed.deleted);
    }
    let r = tapesched_migrate::repair_divergences(&record, authoritative, other, now, 1000).await?;
    println!(
        "repair of the divergences: {} unrepaired divergence(s) naming {} item(s), {} still different: {} \
         written, {} deleted; {} named nothing repairable (marked with why)",
        r.divergences, r.keys, r.differing, r.repair.written, r.repair.deleted, r.unrepairable
    );
    println!("run `tapesched migrate verify` to check");
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

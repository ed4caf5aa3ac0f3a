//! `tapesched db migrate`, `tapesched db collect` and `tapesched catalogue load`: administration
//! of a PostgreSQL scheduler instance (one schema).
//!
//! - `db migrate` applies the migrations of this build (a no-op when they are applied; a schema
//!   migrated by a newer tapesched is refused);
//! - `db collect` is one pass of the dead-mount cleanup: jobs of mounts abandoned, or whose
//!   heartbeat is older than `--mount-timeout` seconds, go back to their queues; with `--every`
//!   it runs a pass at that interval until SIGINT or SIGTERM (the maintenance loop);
//! - `catalogue load FILE` replaces the shared catalogue with a YAML catalogue (a catalogue-only
//!   file, or the `catalogue:` section of a scenario file).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use tapesched_postgres::{PgCatalogue, PgConfig, PgSchedulerDb};
use tapesched_scheduler::catalogue::Catalogue;
use tapesched_scheduler::clock::{Clock, SystemClock};
use tapesched_scheduler::db::SchedulerDb;
use tapesched_scheduler::scheduler::CatalogueRouter;
use tapesched_scheduler::{Error, ErrorKind};
use tokio::signal::unix::{signal, SignalKind};
use tokio::time::MissedTickBehavior;

use crate::EXIT_INVALID;

/// Where the instance is.
#[derive(Debug, Args)]
pub struct Target {
    /// PostgreSQL server (default: $TAPESCHED_DATABASE_URL).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Schema of the instance.
    #[arg(long, default_value = "tapesched")]
    pub schema: String,
}

impl Target {
    fn url(&self) -> Result<String, String> {
        self.database_url
            .clone()
            .or_else(|| std::env::var("TAPESCHED_DATABASE_URL").ok())
            .ok_or_else(|| "no database: give --database-url or set TAPESCHED_DATABASE_URL".to_string())
    }
}

/// Arguments of `db migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    target: Target,
}

/// Arguments of `db collect`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    #[command(flatten)]
    target: Target,
    /// Mounts whose last heartbeat is older than this many seconds are dead.
    #[arg(long, value_name = "SECS")]
    pub mount_timeout: Option<i64>,
    /// Keep running: a pass every SECS seconds, the first at once, until SIGINT or SIGTERM (a pass
    /// under way is finished first). A pass that finds the database unavailable is reported and
    /// the next one runs on time.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub every: Option<u64>,
}

/// Arguments of `catalogue load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// A YAML catalogue, or a scenario file whose `catalogue:` section is loaded.
    pub file: PathBuf,
    #[command(flatten)]
    target: Target,
    /// Scheduler backend name given to drives that name none.
    #[arg(long, default_value = "default")]
    pub backend_name: String,
}

fn fail(code: u8, e: impl std::fmt::Display) -> u8 {
    eprintln!("error: {e}");
    code
}

/// `db migrate`: exit 0 when the schema is up to date, 1 on a database error, 2 on bad input.
pub async fn migrate(args: MigrateArgs) -> u8 {
    let url = match args.target.url() {
        Ok(u) => u,
        Err(e) => return fail(EXIT_INVALID, e),
    };
    match tapesched_postgres::migrate(&url, &args.target.schema).await {
        Ok(r) if r.applied.is_empty() => {
            println!("schema {}: up to date (migrations {:?})", r.schema, r.already_applied);
            0
        }
        Ok(r) => {
            println!("schema {}: applied migrations {:?}", r.schema, r.applied);
            0
        }
        Err(e) => fail(if e.kind == tapesched_scheduler::ErrorKind::InvalidArgument { EXIT_INVALID } else { 1 }, e),
    }
}

/// `db collect`: one dead-mount cleanup pass, or one every `--every` seconds until SIGINT or
/// SIGTERM; prints how many jobs each pass put back in their queues. Exit 0 when done (or
/// stopped by a signal), 1 on a database error (in the loop: one other than `unavailable` or a
/// conflict), 2 on bad input.
pub async fn collect(args: CollectArgs) -> u8 {
    let url = match args.target.url() {
        Ok(u) => u,
        Err(e) => return fail(EXIT_INVALID, e),
    };
    let config =
        PgConfig { mount_timeout: args.mount_timeout, max_connections: 2, ..PgConfig::new(&url, &args.target.schema) };
    let db = match PgSchedulerDb::connect(config).await {
        Ok(db) => db,
        Err(e) => return fail(1, e),
    };
    let catalogue = PgCatalogue::with_pool(db.pool().clone(), &args.target.schema);
    let Some(every) = args.every else {
        return match collect_pass(&db, &catalogue).await {
            Ok(n) => {
                println!("requeued {n}");
                0
            }
            Err(e) => fail(1, e),
        };
    };
    // Registered before the first pass, so a signal during it is not missed.
    let (mut terminate, mut interrupt) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(t), Ok(i)) => (t, i),
        (Err(e), _) | (_, Err(e)) => return fail(1, format!("cannot listen for signals: {e}")),
    };
    let mut ticks = tokio::time::interval(Duration::from_secs(every));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = terminate.recv() => return 0,
            _ = interrupt.recv() => return 0,
            _ = ticks.tick() => {}
        }
        match collect_pass(&db, &catalogue).await {
            Ok(n) => println!("requeued {n}"),
            Err(e) if matches!(e.kind, ErrorKind::Unavailable | ErrorKind::Conflict) => {
                eprintln!("error: {e} (next pass in {every} s)")
            }
            Err(e) => return fail(1, e),
        }
    }
}

/// One cleanup pass on the wall clock, retrieves routed by the catalogue as it is now.
async fn collect_pass(db: &PgSchedulerDb, catalogue: &PgCatalogue) -> Result<u64, Error> {
    let now = SystemClock.now();
    let snapshot = catalogue.snapshot().await?;
    let router = CatalogueRouter::new(&snapshot, now);
    db.garbage_collect(now, &router).await
}

/// `catalogue load`: exit 0 when loaded, 1 on a database error, 2 on an invalid file.
pub async fn load(args: LoadArgs) -> u8 {
    let url = match args.target.url() {
        Ok(u) => u,
        Err(e) => return fail(EXIT_INVALID, e),
    };
    let spec = match tapesched_scenario::load_catalogue(&args.file) {
        Ok(spec) => spec,
        Err(catalogue_error) => match tapesched_scenario::load_scenario(&args.file) {
            Ok(scenario) => scenario.catalogue,
            Err(_) => return fail(EXIT_INVALID, catalogue_error),
        },
    };
    let (snapshot, files) = match tapesched_scenario::catalogue::build(&spec, &args.backend_name) {
        Ok(x) => x,
        Err(e) => return fail(EXIT_INVALID, format!("{}: {e}", args.file.display())),
    };
    let catalogue = match PgCatalogue::connect(&url, &args.target.schema).await {
        Ok(c) => c,
        Err(e) => return fail(1, e),
    };
    let (tapes, drives, nfiles) = (snapshot.tapes.len(), snapshot.drives.len(), files.len());
    match catalogue.load(snapshot, files).await {
        Ok(()) => {
            println!(
                "schema {}: loaded {tapes} tapes, {drives} drives and {nfiles} files from {}",
                args.target.schema,
                args.file.display()
            );
            0
        }
        Err(e) => fail(if e.kind == tapesched_scheduler::ErrorKind::Unavailable { 1 } else { EXIT_INVALID }, e),
    }
}

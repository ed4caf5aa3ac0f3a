//! `tapesched db migrate`, `db collect`, `db gc-runs` and `tapesched catalogue load`:
//! administration of a PostgreSQL scheduler instance (one schema) and of the namespaces scenario
//! runs leave.
//!
//! - `db migrate` applies the migrations of this build (a no-op when they are applied; a schema
//!   migrated by a newer tapesched is refused);
//! - `db collect` is one pass of the dead-mount cleanup: jobs of mounts abandoned, or whose
//!   heartbeat is older than `--mount-timeout` seconds, go back to their queues; with `--every`
//!   it runs a pass at that interval until SIGINT or SIGTERM (the maintenance loop), connecting
//!   again at each pass while the server cannot be reached;
//! - `db gc-runs` removes the namespaces of scenario runs whose process is gone;
//! - `catalogue load FILE` replaces the shared catalogue with a YAML catalogue (a catalogue-only
//!   file, or the `catalogue:` section of a scenario file).
//!
//! Servers are found in the order of every command (`tapesched_backends::database_url`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use tapesched_backends::namespaces::collect_dead_runs;
use tapesched_backends::Backend;
use tapesched_postgres::{PgCatalogue, PgSchedulerDb};
use tapesched_scheduler::catalogue::Catalogue;
use tapesched_scheduler::clock::{Clock, SystemClock};
use tapesched_scheduler::db::SchedulerDb;
use tapesched_scheduler::scheduler::CatalogueRouter;
use tapesched_scheduler::{Error, ErrorKind};
use tokio::time::MissedTickBehavior;

use crate::exit::{code_of, interrupted};
use crate::scenario::plural;
use crate::{fail, EXIT_FAILED, EXIT_INVALID};

/// Where the instance is.
#[derive(Debug, Args)]
pub struct Target {
    /// PostgreSQL server (default: $TAPESCHED_DATABASE_URL, else 127.0.0.1:5432, else an
    /// ephemeral server: see README "Services").
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Schema of the instance.
    #[arg(long, default_value = "tapesched")]
    pub schema: String,
}

impl Target {
    fn url(&self) -> Result<String, Error> {
        tapesched_backends::database_url(self.database_url.as_deref())
    }

    /// The backend target of the instance.
    pub fn backend(&self, mount_timeout: Option<i64>) -> tapesched_backends::Target {
        tapesched_backends::Target {
            database_url: self.database_url.clone(),
            schema: self.schema.clone(),
            mount_timeout,
            process_label: "maintd".into(),
            ..tapesched_backends::Target::new(Backend::Postgres)
        }
    }
}

/// A scheduler error, exited with the status of its kind.
fn failed(e: Error) -> u8 {
    fail(code_of(e.kind), e.into())
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
    /// under way is finished first). A pass that finds the database unavailable (at start-up
    /// too) is reported and the next one runs on time.
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

/// Arguments of `db gc-runs`.
#[derive(Debug, Args)]
pub struct GcRunsArgs {
    /// PostgreSQL server (default: found as for every command).
    #[arg(long, value_name = "URL")]
    pub database_url: Option<String>,
    /// Redis server (default: $TAPESCHED_REDIS_URL, else 127.0.0.1:6379, else an ephemeral server).
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
    /// Only PostgreSQL.
    #[arg(long, conflicts_with = "redis_only")]
    pub postgres_only: bool,
    /// Only Redis.
    #[arg(long)]
    pub redis_only: bool,
}

/// `db migrate`: exit 0 when the schema is up to date, 2 on bad input or an unreachable server,
/// 1 on another database error.
pub async fn migrate(args: MigrateArgs) -> u8 {
    let url = match args.target.url() {
        Ok(u) => u,
        Err(e) => return failed(e),
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
        Err(e) => failed(e),
    }
}

/// The backend and catalogue a cleanup pass works on.
struct Collector {
    db: PgSchedulerDb,
    catalogue: PgCatalogue,
}

async fn connect_collector(target: &Target, mount_timeout: Option<i64>) -> Result<Collector, Error> {
    let config = target.backend(mount_timeout).postgres_config()?;
    let db = tapesched_backends::open_postgres(config).await?;
    let catalogue = PgCatalogue::with_pool(db.pool().clone(), &target.schema);
    Ok(Collector { db, catalogue })
}

/// `db collect`: one dead-mount cleanup pass, or one every `--every` seconds until SIGINT or
/// SIGTERM; prints how many jobs each pass put back in their queues. Exit 0 when done (or
/// stopped by a signal), 2 on bad input or (one pass) an unreachable server, 1 on another
/// database error (in the loop: one other than `unavailable` or a conflict).
pub async fn collect(args: CollectArgs) -> u8 {
    let Some(every) = args.every else {
        let collector = match connect_collector(&args.target, args.mount_timeout).await {
            Ok(c) => c,
            Err(e) => return failed(e),
        };
        return match collect_pass(&collector).await {
            Ok(n) => {
                println!("requeued {n}");
                0
            }
            Err(e) => failed(e),
        };
    };
    // Registered before the first pass, so a signal during it is not missed.
    let stop = match interrupted() {
        Ok(s) => s,
        Err(e) => return fail(EXIT_FAILED, e.context("cannot listen for signals")),
    };
    tokio::pin!(stop);
    let mut ticks = tokio::time::interval(Duration::from_secs(every));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut collector: Option<Collector> = None;
    loop {
        tokio::select! {
            _ = &mut stop => return 0,
            _ = ticks.tick() => {}
        }
        // Connect (again) while the server cannot be reached: reported, retried at the next pass.
        let pass = async {
            if collector.is_none() {
                collector = Some(connect_collector(&args.target, args.mount_timeout).await?);
            }
            match &collector {
                Some(c) => collect_pass(c).await,
                None => Ok(0),
            }
        };
        let outcome = tokio::select! {
            _ = &mut stop => return 0,
            outcome = pass => outcome,
        };
        match outcome {
            Ok(n) => println!("requeued {n}"),
            Err(e) if matches!(e.kind, ErrorKind::Unavailable | ErrorKind::Conflict) => {
                eprintln!("error: {e} (next pass in {every} s)")
            }
            Err(e) => return failed(e),
        }
    }
}

/// `db gc-runs`: removes the namespaces of dead scenario runs, one line each; exit 0, 2 when a
/// server cannot be reached.
pub async fn gc_runs(args: GcRunsArgs) -> u8 {
    let mut removed = 0;
    let mut kept = 0;
    let servers = [
        (!args.redis_only).then(|| ("postgres", tapesched_backends::database_url(args.database_url.as_deref()))),
        (!args.postgres_only).then(|| ("redis", tapesched_backends::redis_url(args.redis_url.as_deref()))),
    ];
    for (which, url) in servers.into_iter().flatten() {
        let url = match url {
            Ok(u) => u,
            Err(e) => return failed(e),
        };
        let collected = if which == "postgres" {
            collect_dead_runs(Some(&url), None).await
        } else {
            collect_dead_runs(None, Some(&url)).await
        };
        match collected {
            Ok(c) => {
                for (name, owner) in &c.removed {
                    println!("removed {name} (run of pid {} on {}, gone)", owner.pid, owner.host);
                }
                removed += c.removed.len();
                kept += c.kept.len();
            }
            Err(e) => return failed(e),
        }
    }
    println!("{} removed, {} of live runs or other hosts kept", plural(removed, "namespace"), kept);
    0
}

/// One cleanup pass on the wall clock, retrieves routed by the catalogue as it is now.
async fn collect_pass(c: &Collector) -> Result<u64, Error> {
    let now = SystemClock.now();
    let snapshot = c.catalogue.snapshot().await?;
    let router = CatalogueRouter::new(&snapshot, now);
    c.db.garbage_collect(now, &router).await
}

/// `catalogue load`: exit 0 when loaded, 2 on an invalid file or an unreachable server, 1 on
/// another database error.
pub async fn load(args: LoadArgs) -> u8 {
    let spec = match tapesched_scenario::load_catalogue_file(&args.file) {
        Ok(file) => file.catalogue().clone(),
        Err(e) => return fail(EXIT_INVALID, anyhow!("{e}")),
    };
    let (snapshot, files) = match tapesched_scenario::catalogue::build(&spec, &args.backend_name) {
        Ok(x) => x,
        Err(e) => return fail(EXIT_INVALID, anyhow!("{}: {e}", args.file.display())),
    };
    let url = match args.target.url() {
        Ok(u) => u,
        Err(e) => return failed(e),
    };
    let catalogue = match PgCatalogue::connect(&url, &args.target.schema).await {
        Ok(c) => c,
        Err(e) => return failed(e),
    };
    let (tapes, drives, nfiles) = (snapshot.tapes.len(), snapshot.drives.len(), files.len());
    match catalogue.load(snapshot, files).await {
        Ok(()) => {
            println!(
                "schema {}: loaded {}, {} and {} from {}",
                args.target.schema,
                plural(tapes, "tape"),
                plural(drives, "drive"),
                plural(nfiles, "file"),
                args.file.display()
            );
            0
        }
        // A catalogue the server refuses (references, duplicates) is invalid input.
        Err(e) if e.kind != ErrorKind::Unavailable && e.kind != ErrorKind::Internal => {
            fail(EXIT_INVALID, anyhow::Error::new(e).context(format!("{}", args.file.display())))
        }
        Err(e) => failed(e),
    }
}

//! `cargo xtask bench --backend bridge`: the migration bridge beside the two backends it joins,
//! measured side by side in one run, printed as JSON on stdout.
//!
//! Runs on the servers the project's service discovery finds, under a Redis key prefix and in
//! PostgreSQL schemas of its own, removed at the end (on failure and on SIGINT/SIGTERM too).
//!
//! - queueing and claims: the same archive requests (`queue_archives`, 1000 per call, several
//!   producers, each its own backend instance: its own agent on Redis) then the same claims
//!   (drive sessions opening a mount per pool and popping 4000-job batches until the pool is
//!   empty), on four configurations in turn, each on empty namespaces of its own: Redis alone,
//!   PostgreSQL alone, the bridge in `dual-write` (Redis authoritative, writes mirrored to
//!   PostgreSQL) and in `live` (PostgreSQL authoritative, writes mirrored to Redis). The ratio
//!   is the bridge's rate over the slower backend alone (target: at least 0.8);
//! - backfill and verify: the requests Redis alone holds after queueing, copied into an empty
//!   PostgreSQL schema (`tapesched_migrate::backfill`, the migration record and its checkpoints
//!   included), then compared in full (`tapesched_migrate::verify`); substrate: reading the same
//!   items from Redis alone (`export_state`, the same pages), which both must do;
//! - shadow decisions: the mount-decision data set ([`crate::decision_set`], 1 M jobs by
//!   default) loaded into Redis and into PostgreSQL; `next_mount` timed on Redis alone and
//!   through the bridge in `shadow` comparing every decision (100 % sampling), in alternation,
//!   the same arrivals (through the bridge, so both sides hold them) before each. A mount chosen
//!   by Redis alone is recorded on PostgreSQL too (untimed), as the bridge would, so that the two
//!   sides stay equal. Target: the bridge's p99 at most 1.2x Redis alone's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use tapesched_bridge::{BridgeDb, DivergenceLog, FixedStage, Stage};
use tapesched_migrate::{BackfillOptions, Record, VerifyOptions};
use tapesched_objectstore::redis_store::{RedisSettings, RedisStore};
use tapesched_objectstore::{ObjectstoreConfig, ObjectstoreDb};
use tapesched_postgres::{PgConfig, PgSchedulerDb};
use tapesched_scheduler::db::{MountInfo, SchedulerDb};
use tapesched_scheduler::decision::{self, SchedulerConfig};
use tapesched_testkit::workload::archive_mount;

use crate::cpu_budget::CpuBudget;
use crate::decision_set::{Arrivals, DecisionSet, DRIVE, LIBRARY, NOW};
use crate::measure::{busy, cpu_ticks, rate, ratio, Samples};

/// Sizes of one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Requests queued (then claimed) on each configuration.
    pub requests: u64,
    /// Concurrent producers.
    pub producers: u64,
    /// Requests per `queue_archives` call.
    pub producer_batch: u64,
    /// Concurrent drive sessions.
    pub sessions: u64,
    /// Jobs per claim.
    pub claim_batch: u64,
    /// The decision data set.
    pub decision: DecisionSet,
    /// Timed decisions on each side.
    pub decision_samples: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            requests: 200_000,
            producers: 8,
            producer_batch: 1000,
            sessions: 4,
            claim_batch: 4000,
            decision: DecisionSet::DEFAULT,
            // A p99 of 100 samples is their second largest: one stall of the machine decides it.
            decision_samples: 300,
        }
    }
}

impl Options {
    /// `--quick`: every measured path on a small data set (a smoke test, not a measurement).
    pub fn quick() -> Self {
        Options { requests: 8_000, decision: DecisionSet::QUICK, decision_samples: 10, ..Options::default() }
    }
}

/// The namespaces of one run: a Redis key prefix (everything under it is removed by the
/// caller's guard) and PostgreSQL schemas (each dropped by a guard of the caller's).
pub struct Namespaces<'a> {
    /// Redis key prefix, ending in `:`.
    pub prefix: &'a str,
    /// PostgreSQL alone's queueing and claims.
    pub postgres_alone: &'a str,
    /// The target of the bridge in dual-write.
    pub dual_write: &'a str,
    /// The target of the bridge in live.
    pub live: &'a str,
    /// The backfill's target (and its migration record).
    pub backfill: &'a str,
    /// The decision data set's PostgreSQL copy.
    pub decision: &'a str,
}

use crate::bench_postgres::{pop_all, queue_requests, POOLS, T0};

fn objectstore(url: &str, prefix: &str, label: &str) -> Result<Arc<ObjectstoreDb>> {
    let store = RedisStore::new(RedisSettings::new(url, prefix)).context("redis store")?;
    let config = ObjectstoreConfig {
        process_label: label.into(),
        lock_timeout: Duration::from_secs(120),
        ..ObjectstoreConfig::default()
    };
    Ok(Arc::new(ObjectstoreDb::new(Arc::new(store), config)))
}

async fn postgres(url: &str, schema: &str, connections: u32) -> Result<Arc<PgSchedulerDb>> {
    let config = PgConfig { max_connections: connections, ..PgConfig::new(url, schema) };
    Ok(Arc::new(PgSchedulerDb::connect(config).await.with_context(|| format!("connecting to schema {schema}"))?))
}

/// Opens a handle on a configuration for a process of the given label.
type Opener = Box<dyn Fn(&str) -> Result<Arc<dyn SchedulerDb>> + Send + Sync>;

/// One configuration under test: a fresh handle per producer and per drive session (a process
/// of its own on Redis), and the bridge's log when there is a bridge.
struct Config {
    name: &'static str,
    open: Opener,
    log: Option<Arc<DivergenceLog>>,
}

impl Config {
    fn redis(url: &str, prefix: String) -> Config {
        let url = url.to_string();
        Config {
            name: "objectstore-redis alone",
            open: Box::new(move |label| Ok(objectstore(&url, &prefix, label)? as Arc<dyn SchedulerDb>)),
            log: None,
        }
    }

    fn postgres(db: Arc<PgSchedulerDb>) -> Config {
        Config { name: "postgres alone", open: Box::new(move |_| Ok(db.clone() as Arc<dyn SchedulerDb>)), log: None }
    }

    fn bridge(name: &'static str, url: &str, prefix: String, target: Arc<PgSchedulerDb>, stage: Stage) -> Config {
        let (url, log) = (url.to_string(), Arc::new(DivergenceLog::new()));
        let shared = log.clone();
        Config {
            name,
            open: Box::new(move |label| {
                let legacy = objectstore(&url, &prefix, label)?;
                let bridge = BridgeDb::new(legacy, target.clone(), Arc::new(FixedStage(stage)), shared.clone());
                Ok(Arc::new(bridge) as Arc<dyn SchedulerDb>)
            }),
            log: Some(log),
        }
    }
}

/// Queues `opts.requests` archive requests with `opts.producers` producers; returns the rate.
async fn queue(config: &Config, opts: &Options) -> Result<f64> {
    let n = opts.requests;
    let start = Instant::now();
    let producers = (0..opts.producers).map(|p| (config.open)(&format!("producer{p}"))).collect::<Result<_>>()?;
    queue_requests(producers, n, opts.producer_batch).await?;
    Ok(rate(n, start.elapsed()))
}

/// Claims every queued job: `opts.sessions` drive sessions take the pools one by one (each
/// pool to one session), open a mount on it and pop batches until it is empty. Returns the rate.
async fn claim(config: &Config, opts: &Options) -> Result<f64> {
    let next_pool = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..opts.sessions {
        let (db, batch, next_pool) = ((config.open)(&format!("drive{s}"))?, opts.claim_batch, next_pool.clone());
        tasks.push(tokio::spawn(async move {
            let mut claimed = 0u64;
            loop {
                let pool = next_pool.fetch_add(1, Ordering::Relaxed);
                if pool >= POOLS {
                    break;
                }
                let spec = archive_mount(format!("B{pool:05}"), format!("pool{pool}"), format!("d{s}"));
                db.open_mount(pool + 1, &spec, T0).await?;
                claimed += pop_all(db.as_ref(), pool + 1, batch).await?;
            }
            Ok::<u64, tapesched_scheduler::Error>(claimed)
        }));
    }
    let mut claimed = 0;
    for t in tasks {
        claimed += t.await??;
    }
    ensure!(claimed == opts.requests, "{}: claimed {claimed} of {} jobs", config.name, opts.requests);
    Ok(rate(claimed, start.elapsed()))
}

/// The bridge's comparison counters (calls, matched, mismatched, errors per side) as JSON.
fn counters(log: &DivergenceLog) -> Value {
    let stats = log.stats();
    let mut out = serde_json::Map::new();
    for (op, s) in stats {
        out.insert(
            op,
            json!({
                "calls": s.calls, "compared": s.compared, "matched": s.matched, "mismatched": s.mismatched,
                "ignored": s.ignored, "legacy_errors": s.legacy_errors, "target_errors": s.target_errors,
                "legacy_mean_ms": mean_ms(&s.legacy_latency), "target_mean_ms": mean_ms(&s.target_latency),
            }),
        );
    }
    json!({"per_operation": out, "divergences": log.divergences().len(), "mismatches": log.mismatches()})
}

/// The mean of a side's answers to an operation, milliseconds (`None` before the first).
fn mean_ms(l: &tapesched_bridge::Latency) -> Option<f64> {
    (l.count > 0).then(|| l.total_micros as f64 / l.count as f64 / 1000.0)
}

/// What one configuration measured.
struct Rates {
    queued: f64,
    claimed: f64,
    /// The machine's CPU busy share while queueing and while claiming.
    busy: [Option<f64>; 2],
}

impl Rates {
    fn json(&self) -> Value {
        json!({
            "queued_per_s": self.queued, "claimed_per_s": self.claimed,
            "cpu_busy_queueing": self.busy[0], "cpu_busy_claiming": self.busy[1],
        })
    }
}

/// Queueing and claims on one configuration.
async fn throughput_of(config: &Config, opts: &Options) -> Result<Rates> {
    eprintln!("{}: queueing {} archive requests with {} producers", config.name, opts.requests, opts.producers);
    let t0 = cpu_ticks();
    let queued = queue(config, opts).await?;
    let t1 = cpu_ticks();
    eprintln!("{}: claiming with {} sessions in batches of {}", config.name, opts.sessions, opts.claim_batch);
    let claimed = claim(config, opts).await?;
    let t2 = cpu_ticks();
    eprintln!("{}: {queued:.0} requests/s queued, {claimed:.0} jobs/s claimed", config.name);
    if let Some(log) = &config.log {
        ensure!(
            log.divergences().is_empty(),
            "{}: the bridge recorded divergences: {:?}",
            config.name,
            log.divergences().first()
        );
    }
    Ok(Rates { queued, claimed, busy: [busy(t0, t1), busy(t1, t2)] })
}

/// The rate of doing the work of two configurations one after the other on the same machine
/// (`1 / (1/a + 1/b)`): what a bridge doing both sides' work reaches when the machine's CPUs
/// are the limit of each side alone (client and both servers share them here).
fn serial(a: f64, b: f64) -> f64 {
    if a <= 0.0 || b <= 0.0 {
        return 0.0;
    }
    1.0 / (1.0 / a + 1.0 / b)
}

/// Runs the benchmark in `ns` (see the module documentation).
pub async fn run(redis_url: &str, pg_url: &str, ns: Namespaces<'_>, opts: Options) -> Result<Value> {
    let connections = (opts.producers.max(opts.sessions) + 2) as u32;
    let mut report = json!({"backend": "bridge", "legacy": "objectstore-redis", "target": "postgres"});

    // Redis alone, then backfill and verify of what it holds, then its claims.
    let redis = Config::redis(redis_url, format!("{}alone:", ns.prefix));
    eprintln!("{}: queueing {} archive requests with {} producers", redis.name, opts.requests, opts.producers);
    let t0 = cpu_ticks();
    let redis_queued = queue(&redis, &opts).await?;
    let t1 = cpu_ticks();
    let copy = backfill_and_verify(&redis, pg_url, ns.backfill, opts.requests).await?;
    let t2 = cpu_ticks();
    let redis_claimed = claim(&redis, &opts).await?;
    let t3 = cpu_ticks();
    eprintln!("{}: {redis_queued:.0} requests/s queued, {redis_claimed:.0} jobs/s claimed", redis.name);
    let redis_rates = Rates { queued: redis_queued, claimed: redis_claimed, busy: [busy(t0, t1), busy(t2, t3)] };

    let pg = Config::postgres(postgres(pg_url, ns.postgres_alone, connections).await?);
    let pg_rates = throughput_of(&pg, &opts).await?;
    let schemas = [ns.dual_write, ns.live];
    report["queueing_and_claims"] =
        bridges(redis_url, pg_url, ns.prefix, schemas, &opts, redis_rates, pg_rates, connections).await?;
    report["backfill_and_verify"] = copy;

    let prefix = format!("{}decision:", ns.prefix);
    report["shadow_decisions"] =
        shadow_decisions(redis_url, pg_url, &prefix, ns.decision, opts.decision, opts.decision_samples).await?;
    Ok(report)
}

/// The bridge in dual-write and in live, each on empty namespaces of its own (`prefix` + `dual:`
/// / `live:` on Redis, `schemas` on PostgreSQL), beside the two backends alone's rates: the
/// `queueing_and_claims` section of the report.
#[allow(clippy::too_many_arguments)]
async fn bridges(
    redis_url: &str,
    pg_url: &str,
    prefix: &str,
    schemas: [&str; 2],
    opts: &Options,
    redis_rates: Rates,
    pg_rates: Rates,
    connections: u32,
) -> Result<Value> {
    let mut rows = serde_json::Map::new();
    let slower_queued = redis_rates.queued.min(pg_rates.queued);
    let slower_claimed = redis_rates.claimed.min(pg_rates.claimed);
    let serial_queued = serial(redis_rates.queued, pg_rates.queued);
    let serial_claimed = serial(redis_rates.claimed, pg_rates.claimed);
    rows.insert("objectstore-redis alone".into(), redis_rates.json());
    rows.insert("postgres alone".into(), pg_rates.json());
    for ((name, stage, sub), schema) in
        [("bridge dual-write", Stage::DualWrite, "dual:"), ("bridge live", Stage::Live, "live:")]
            .into_iter()
            .zip(schemas)
    {
        let target = postgres(pg_url, schema, connections).await?;
        let config = Config::bridge(name, redis_url, format!("{prefix}{sub}"), target, stage);
        let rates = throughput_of(&config, opts).await?;
        let mut row = rates.json();
        row["ratio_queued_to_slower_alone"] = json!(ratio(rates.queued, slower_queued));
        row["ratio_claimed_to_slower_alone"] = json!(ratio(rates.claimed, slower_claimed));
        row["ratio_queued_to_both_one_after_the_other"] = json!(ratio(rates.queued, serial_queued));
        row["ratio_claimed_to_both_one_after_the_other"] = json!(ratio(rates.claimed, serial_claimed));
        row["comparisons"] = counters(config.log.as_deref().expect("a bridge has a log"));
        rows.insert(name.into(), row);
    }
    Ok(json!({
        "requests": opts.requests, "producers": opts.producers, "producer_batch": opts.producer_batch,
        "sessions": opts.sessions, "claim_batch": opts.claim_batch, "pools": POOLS,
        "configurations": rows, "target_ratio": 0.8,
        "both_one_after_the_other": {"queued_per_s": serial_queued, "claimed_per_s": serial_claimed},
        "what": "requests queued per second and jobs claimed per second (mount openings included) on each \
                 configuration; ratio: the bridge's rate over the slower backend alone's; both one after the other: \
                 1/(1/redis + 1/postgres), the rate of doing both sides' work in turn, the ceiling of a bridge \
                 when the machine's CPUs (shared by the benchmark and both servers) limit each side alone (see \
                 cpu_busy_*)",
    }))
}

/// Queueing and claims again with the servers apart: a Redis server and a PostgreSQL cluster
/// started for this run, each in a control group of its own allowed `cores` CPUs
/// ([`CpuBudget`]), as when each server has a machine of its own and the bridge's processes
/// others. The same four configurations as the shared run; besides their rates, the share of
/// scheduler periods in which each server used its whole budget (near 1: that server was the
/// limit).
pub async fn apart(opts: &Options, cores: f64) -> Result<Value> {
    use tapesched_services::{PostgresServer, RedisServer};
    eprintln!("servers apart: starting a Redis server and a PostgreSQL cluster, each allowed {cores} CPU(s)");
    /// The servers, then their groups: fields drop in this order (also when the run is
    /// interrupted), so each group is empty, its server stopped, when it is removed.
    struct Apart {
        redis: RedisServer,
        postgres: PostgresServer,
        budgets: Vec<CpuBudget>,
    }
    let mut apart = Apart { redis: RedisServer::start(false)?, postgres: PostgresServer::start()?, budgets: vec![] };
    let tag = std::process::id();
    apart.budgets.push(CpuBudget::new(&format!("tapesched_bench_redis_{tag}"), cores)?);
    apart.budgets[0].add(&[apart.redis.pid().context("the Redis server is not running")?])?;
    apart.budgets.push(CpuBudget::new(&format!("tapesched_bench_postgres_{tag}"), cores)?);
    apart.budgets[1].add(&apart.postgres.pids()?)?;
    let (redis_budget, pg_budget) = (&apart.budgets[0], &apart.budgets[1]);
    let (redis_url, pg_url) = (apart.redis.url(), apart.postgres.url());
    let connections = (opts.producers.max(opts.sessions) + 2) as u32;
    let mut throttled = serde_json::Map::new();
    let mut note = |phase: &str, before: [Option<(u64, u64)>; 2], after: [Option<(u64, u64)>; 2]| {
        let share = |b: Option<(u64, u64)>, a: Option<(u64, u64)>| match (b, a) {
            (Some(b), Some(a)) if a.0 > b.0 => json!((a.1 - b.1) as f64 / (a.0 - b.0) as f64),
            _ => Value::Null,
        };
        throttled
            .insert(phase.into(), json!({"redis": share(before[0], after[0]), "postgres": share(before[1], after[1])}));
    };
    let periods = || [redis_budget.periods(), pg_budget.periods()];

    let redis = Config::redis(&redis_url, "apart:alone:".into());
    let p0 = periods();
    let redis_rates = throughput_of(&redis, opts).await?;
    note("objectstore-redis alone", p0, periods());
    let pg = Config::postgres(postgres(&pg_url, "apart_alone", connections).await?);
    let p0 = periods();
    let pg_rates = throughput_of(&pg, opts).await?;
    note("postgres alone", p0, periods());
    let p0 = periods();
    let mut section =
        bridges(&redis_url, &pg_url, "apart:", ["apart_dual", "apart_live"], opts, redis_rates, pg_rates, connections)
            .await?;
    note("both bridges", p0, periods());
    section["cores_per_server"] = json!(cores);
    section["throttled_share"] = Value::Object(throttled);
    section["what"] = json!(format!(
        "as queueing_and_claims, on a Redis server and a PostgreSQL cluster (fsync off) started for this run, each in \
         a control group allowed {cores} CPU(s) (the benchmark's process is not limited); throttled_share: the share \
         of scheduler periods in which a server used its whole budget"
    ));
    Ok(section)
}

/// Reads `db`'s whole export in pages of `page` (it must hold `jobs` jobs); the jobs per second.
async fn export_alone(db: &dyn SchedulerDb, page: usize, jobs: u64) -> Result<f64> {
    let start = Instant::now();
    let (mut after, mut exported) = (None, 0u64);
    loop {
        let items = db.export_state(after.as_ref(), page).await?;
        let Some(last) = items.last() else { break };
        after = Some(last.key());
        exported += items.iter().map(|i| i.jobs()).sum::<u64>();
    }
    ensure!(exported == jobs, "exported {exported} of {jobs} jobs");
    Ok(rate(exported, start.elapsed()))
}

/// Backfill of what `legacy` holds (`jobs` jobs) into the new schema `schema`, then verify, with
/// the export of the same items alone as the substrate.
async fn backfill_and_verify(legacy: &Config, pg_url: &str, schema: &str, jobs: u64) -> Result<Value> {
    let legacy = (legacy.open)("migrate")?;
    let target = postgres(pg_url, schema, 8).await?;
    let record = Record::of_postgres(&target);
    record.init("bench").await?;
    let page = BackfillOptions::default().page;

    eprintln!("substrate: reading {jobs} queued requests from Redis alone (export_state, pages of {page})");
    let export_rate = export_alone(legacy.as_ref(), page, jobs).await.context("Redis")?;

    eprintln!("backfill: {jobs} queued jobs from Redis to PostgreSQL");
    // Timed whole: the backfill's lock, its checkpoint reads and writes and its end included.
    let start = Instant::now();
    let copied = tapesched_migrate::backfill(
        legacy.as_ref(),
        target.as_ref(),
        &record,
        &BackfillOptions::default(),
        T0,
        &mut |_| {},
    )
    .await?;
    ensure!(copied.complete && copied.progress.jobs == jobs, "backfill copied {} of {jobs} jobs", copied.progress.jobs);
    let backfill_rate = rate(copied.progress.jobs, start.elapsed());

    // Verify reads both sides: each one's export alone, at the verify's page size, bounds it.
    let verify_page = VerifyOptions::default().page;
    let mut alone = Vec::new();
    for (side, db) in [("Redis", legacy.as_ref()), ("PostgreSQL", target.as_ref() as &dyn SchedulerDb)] {
        eprintln!("substrate: reading the {jobs} jobs from {side} alone (export_state, pages of {verify_page})");
        alone.push(export_alone(db, verify_page, jobs).await.context(side)?);
    }
    let slower_alone = alone.iter().copied().fold(f64::INFINITY, f64::min);

    eprintln!("verify: Redis against PostgreSQL in full");
    let start = Instant::now();
    let verified = tapesched_migrate::verify(legacy.clone(), target.clone(), &VerifyOptions::default()).await?;
    ensure!(verified.is_clean(), "verify after backfill found differences: {}", verified.summary());
    ensure!(verified.jobs_a == jobs, "verify read {} of {jobs} jobs", verified.jobs_a);
    let verify_rate = rate(verified.jobs_a, start.elapsed());
    eprintln!(
        "backfill {backfill_rate:.0} jobs/s, verify {verify_rate:.0} jobs/s, export alone {export_rate:.0} jobs/s \
         (at the verify's page: Redis {:.0}, PostgreSQL {:.0})",
        alone[0], alone[1]
    );
    Ok(json!({
        "jobs": jobs, "items": copied.progress.items, "page": page,
        "backfill_jobs_per_s": backfill_rate, "backfill_target_per_s": 50_000,
        "verify_jobs_per_s": verify_rate, "verify_target_per_s": 100_000,
        "substrate_export_alone_jobs_per_s": export_rate,
        "ratio_backfill_to_export": ratio(backfill_rate, export_rate),
        "ratio_verify_to_export": ratio(verify_rate, export_rate),
        "verify_page": verify_page,
        "substrate_redis_export_at_verify_page_jobs_per_s": alone[0],
        "substrate_postgres_export_at_verify_page_jobs_per_s": alone[1],
        "ratio_verify_to_slower_export": ratio(verify_rate, slower_alone),
        "what": "queued archive requests (one job each) copied from Redis into an empty PostgreSQL schema with \
                 checkpoints in the migration record, then both sides read and compared in full; substrate: the \
                 same pages read from Redis alone (and, for verify, each side's export alone at its page size: the \
                 slower one bounds it)",
    }))
}

/// `next_mount` on Redis alone and through the bridge in shadow, in alternation, on the decision
/// data set loaded on both sides.
async fn shadow_decisions(
    redis_url: &str,
    pg_url: &str,
    prefix: &str,
    schema: &str,
    set: DecisionSet,
    samples: usize,
) -> Result<Value> {
    eprintln!("decision data set on both sides: {} pools, {} VIDs, {} queued jobs", set.pools, set.vids, set.jobs);
    let loaded_redis = crate::decision_objectstore::load_set(redis_url, prefix, set).await?;
    let loaded_pg = crate::decision_postgres::load_set(pg_url, schema, set).await?;
    let legacy = objectstore(redis_url, prefix, "scheduler")?;
    let target = postgres(pg_url, schema, 4).await?;
    set.check(&legacy.mount_info(NOW).await?).context("checking the data set on Redis")?;
    set.check(&target.mount_info(NOW).await?).context("checking the data set on PostgreSQL")?;
    // Every decision compared: a fresh log compares every call of every operation.
    let log = Arc::new(DivergenceLog::new());
    let stage = Arc::new(FixedStage(Stage::Shadow));
    let bridge = BridgeDb::new(legacy.clone(), target.clone(), stage.clone(), log.clone());
    // Arrivals through a bridge of their own (a frontend process): both sides hold them.
    let frontend = BridgeDb::new(objectstore(redis_url, prefix, "frontend")?, target.clone(), stage, log.clone());
    let mut arrivals = Arrivals::new(&frontend, set);

    let snap = set.catalogue();
    let config = SchedulerConfig::default();
    let decide = |info: &MountInfo| decision::choose(info, &snap, DRIVE, NOW, &config);
    eprintln!("{samples} decisions on Redis alone and {samples} through the bridge in shadow, in alternation");
    let (mut alone, mut shadow) = (Samples::default(), Samples::default());
    for _ in 0..samples {
        arrivals.arrive().await?;
        let t = Instant::now();
        let chosen = legacy.next_mount(LIBRARY, NOW, &decide).await?;
        alone.push(t.elapsed());
        let (id, spec) = chosen.context("Redis alone chose no mount")?;
        target.open_mount(id, &spec, NOW).await?;

        arrivals.arrive().await?;
        let t = Instant::now();
        let chosen = bridge.next_mount(LIBRARY, NOW, &decide).await?;
        shadow.push(t.elapsed());
        chosen.context("the bridge chose no mount")?;
    }
    eprintln!("next_mount ms, Redis alone: {}, bridge in shadow: {}", alone.json(), shadow.json());
    let compared = log.stats().get("next_mount").cloned().unwrap_or_default();
    ensure!(
        compared.matched as usize == samples,
        "the bridge matched {} of {samples} decisions: {:?}",
        compared.matched,
        log.divergences().first()
    );
    Ok(json!({
        "pools": set.pools, "vids": set.vids, "queued_jobs": set.jobs, "samples": samples,
        "load": {"redis": loaded_redis, "postgres": loaded_pg},
        "next_mount_ms_redis_alone": alone.json(),
        "next_mount_ms_bridge_shadow": shadow.json(),
        "ratio_p50": ratio(shadow.pct(0.5), alone.pct(0.5)),
        "ratio_p99": ratio(shadow.pct(0.99), alone.pct(0.99)),
        "target_ratio_p99": 1.2,
        "decisions_compared": {"calls": compared.calls, "compared": compared.compared, "matched": compared.matched, "mismatched": compared.mismatched},
        "what": "next_mount on Redis alone and through the bridge in shadow (Redis authoritative; PostgreSQL's \
                 mount info read, its decision computed and compared candidate by candidate, the mount recorded \
                 there under the same id), alternating, each after the same arrivals",
    }))
}

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
            decision_samples: 100,
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
            }),
        );
    }
    json!({"per_operation": out, "divergences": log.divergences().len(), "mismatches": log.mismatches()})
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

    let mut rows = serde_json::Map::new();
    let slower_queued = redis_rates.queued.min(pg_rates.queued);
    let slower_claimed = redis_rates.claimed.min(pg_rates.claimed);
    let serial_queued = serial(redis_rates.queued, pg_rates.queued);
    let serial_claimed = serial(redis_rates.claimed, pg_rates.claimed);
    rows.insert(redis.name.into(), redis_rates.json());
    rows.insert(pg.name.into(), pg_rates.json());
    for (name, stage, prefix, schema) in [
        ("bridge dual-write", Stage::DualWrite, "dual:", ns.dual_write),
        ("bridge live", Stage::Live, "live:", ns.live),
    ] {
        let target = postgres(pg_url, schema, connections).await?;
        let config = Config::bridge(name, redis_url, format!("{}{prefix}", ns.prefix), target, stage);
        let rates = throughput_of(&config, &opts).await?;
        let mut row = rates.json();
        row["ratio_queued_to_slower_alone"] = json!(ratio(rates.queued, slower_queued));
        row["ratio_claimed_to_slower_alone"] = json!(ratio(rates.claimed, slower_claimed));
        row["ratio_queued_to_both_one_after_the_other"] = json!(ratio(rates.queued, serial_queued));
        row["ratio_claimed_to_both_one_after_the_other"] = json!(ratio(rates.claimed, serial_claimed));
        row["comparisons"] = counters(config.log.as_deref().expect("a bridge has a log"));
        rows.insert(name.into(), row);
    }
    report["queueing_and_claims"] = json!({
        "requests": opts.requests, "producers": opts.producers, "producer_batch": opts.producer_batch,
        "sessions": opts.sessions, "claim_batch": opts.claim_batch, "pools": POOLS,
        "configurations": rows, "target_ratio": 0.8,
        "both_one_after_the_other": {"queued_per_s": serial_queued, "claimed_per_s": serial_claimed},
        "what": "requests queued per second and jobs claimed per second (mount openings included) on each \
                 configuration; ratio: the bridge's rate over the slower backend alone's; both one after the other: \
                 1/(1/redis + 1/postgres), the rate of doing both sides' work in turn, the ceiling of a bridge \
                 when the machine's CPUs (shared by the benchmark and both servers) limit each side alone (see \
                 cpu_busy_*)",
    });
    report["backfill_and_verify"] = copy;

    let prefix = format!("{}decision:", ns.prefix);
    report["shadow_decisions"] =
        shadow_decisions(redis_url, pg_url, &prefix, ns.decision, opts.decision, opts.decision_samples).await?;
    Ok(report)
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
    let start = Instant::now();
    let (mut after, mut exported) = (None, 0u64);
    loop {
        let items = legacy.export_state(after.as_ref(), page).await?;
        let Some(last) = items.last() else { break };
        after = Some(last.key());
        exported += items.iter().map(|i| i.jobs()).sum::<u64>();
    }
    let export_rate = rate(exported, start.elapsed());
    ensure!(exported == jobs, "exported {exported} of {jobs} jobs");

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

    eprintln!("verify: Redis against PostgreSQL in full");
    let start = Instant::now();
    let verified = tapesched_migrate::verify(legacy.as_ref(), target.as_ref(), &VerifyOptions::default()).await?;
    ensure!(verified.is_clean(), "verify after backfill found differences: {}", verified.summary());
    ensure!(verified.jobs_a == jobs, "verify read {} of {jobs} jobs", verified.jobs_a);
    let verify_rate = rate(verified.jobs_a, start.elapsed());
    eprintln!(
        "backfill {backfill_rate:.0} jobs/s, verify {verify_rate:.0} jobs/s, export alone {export_rate:.0} jobs/s"
    );
    Ok(json!({
        "jobs": jobs, "items": copied.progress.items, "page": page,
        "backfill_jobs_per_s": backfill_rate, "backfill_target_per_s": 50_000,
        "verify_jobs_per_s": verify_rate, "verify_target_per_s": 100_000,
        "substrate_export_alone_jobs_per_s": export_rate,
        "ratio_backfill_to_export": ratio(backfill_rate, export_rate),
        "ratio_verify_to_export": ratio(verify_rate, export_rate),
        "what": "queued archive requests (one job each) copied from Redis into an empty PostgreSQL schema with \
                 checkpoints in the migration record, then both sides read and compared in full; substrate: the \
                 same pages read from Redis alone",
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

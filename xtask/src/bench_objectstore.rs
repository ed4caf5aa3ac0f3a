//! `cargo xtask bench --backend objectstore-redis`: throughput and latency of the objectstore
//! backend on Redis, each beside the substrate limit measured in the same run on the same server
//! (pipelined raw SET and GET of values of the size of a request object).
//!
//! Measured: archive requests queued per second (concurrent producers, each its own agent, as
//! separate frontends), jobs claimed per second (4000-job batches, concurrent drive sessions,
//! the mounts' opening included), the garbage collector's requeue rate for the jobs of dead
//! drive sessions, and the mount decision on the data set the Postgres benchmark uses (see
//! [`crate::decision_objectstore`]). Claiming and collecting run `rounds` rounds over the same
//! jobs; the medians are reported with every round. Everything runs under a key prefix of its
//! own, removed at the end (on failure and on SIGINT/SIGTERM too).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tapesched_objectstore::redis_store::{RedisSettings, RedisStore};
use tapesched_objectstore::{ObjectstoreConfig, ObjectstoreDb};
use tapesched_scheduler::catalogue::memory::MemoryCatalogue;
use tapesched_scheduler::catalogue::CatalogueSnapshot;
use tapesched_scheduler::clock::ManualClock;
use tapesched_scheduler::db::SchedulerDb;
use tapesched_scheduler::decision::SchedulerConfig;
use tapesched_scheduler::scheduler::{ArchiveSubmission, CatalogueRouter, Scheduler};
use tapesched_scheduler::types::*;

use crate::decision_set::DecisionSet;
use crate::measure::{median, rate, ratio};
use crate::repack_decision::RepackWork;
use crate::repack_expansion::{Expansion, Target};
use tapesched_testkit::workload::archive_mount;

const T0: i64 = 1_700_000_000;
/// Size of one of this benchmark's archive request objects as stored (binary format, measured
/// with `STRLEN`: 116 to 118 bytes).
const OBJECT_BYTES: usize = 120;

/// What to measure, and how much.
#[derive(Debug, Clone)]
pub struct Options {
    /// Queueing, claiming and collection are measured (`--scale` measures the decision only).
    pub throughput: bool,
    /// Requests queued (then claimed, then requeued by the collector).
    pub requests: u64,
    /// Concurrent producers.
    pub producers: u64,
    /// Requests per `queue_archives` call.
    pub producer_batch: u64,
    /// Pools the requests are spread over.
    pub pools: u64,
    /// Concurrent drive sessions while claiming.
    pub sessions: u64,
    /// Jobs per claim.
    pub claim_batch: u64,
    /// Rounds of claiming and collection.
    pub rounds: u64,
    /// The decision data set.
    pub decision: DecisionSet,
    /// Timed decisions (and as many of the breakdown and of the substrate).
    pub decision_samples: usize,
    /// Operations of each substrate measurement.
    pub substrate_ops: u64,
    /// Repack work queued beside the decision set for a second timed run of the decisions.
    pub repack_work: Option<RepackWork>,
    /// The repack expansion benchmark ([`crate::repack_expansion`]).
    pub expansion: Option<Expansion>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            throughput: true,
            requests: 200_000,
            producers: 8,
            producer_batch: 1000,
            pools: 16,
            sessions: 8,
            claim_batch: 4000,
            rounds: 3,
            decision: DecisionSet::DEFAULT,
            decision_samples: 200,
            substrate_ops: 400_000,
            repack_work: Some(RepackWork::DEFAULT),
            expansion: Some(Expansion::DEFAULT),
        }
    }
}

impl Options {
    /// `--quick`: a small run through every measured path (a smoke test, not a measurement).
    pub fn quick() -> Self {
        Options {
            requests: 16_000,
            rounds: 2,
            decision: DecisionSet::QUICK,
            decision_samples: 20,
            substrate_ops: 50_000,
            repack_work: Some(RepackWork::QUICK),
            expansion: Some(Expansion::QUICK),
            ..Options::default()
        }
    }
    /// `--scale`: the decision alone, at 10 M queued jobs.
    pub fn scale() -> Self {
        Options {
            throughput: false,
            decision: DecisionSet::SCALE,
            decision_samples: 50,
            repack_work: None,
            expansion: None,
            ..Options::default()
        }
    }
}

fn store(url: &str, prefix: &str) -> Result<Arc<RedisStore>> {
    Ok(Arc::new(RedisStore::new(RedisSettings::new(url, prefix)).context("redis store")?))
}

/// Pipelined raw SET then GET of `ops` values of `size` bytes over `conns` connections.
async fn substrate(url: &str, prefix: &str, ops: u64, size: usize, conns: u64) -> Result<(f64, f64)> {
    let value = vec![b'x'; size];
    let per = ops / conns;
    let mut timings = Vec::new();
    for get in [false, true] {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..conns {
            let mut con = crate::decision_objectstore::raw_connection(url).await?;
            let (value, prefix) = (value.clone(), prefix.to_string());
            tasks.push(tokio::spawn(async move {
                for chunk in (0..per).collect::<Vec<_>>().chunks(1000) {
                    let mut pipe = redis::pipe();
                    for i in chunk {
                        let key = format!("{prefix}substrate:{c}:{i}");
                        if get {
                            pipe.get(key);
                        } else {
                            pipe.set(key, &value).ignore();
                        }
                    }
                    let _: Vec<redis::Value> = pipe.query_async(&mut con).await?;
                }
                Ok::<_, redis::RedisError>(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        timings.push(rate(per * conns, start.elapsed()));
    }
    Ok((timings[0], timings[1]))
}

fn catalogue(pools: u64, vids: u64, drives: u64) -> CatalogueSnapshot {
    let mut s = CatalogueSnapshot::default();
    s.disk_instances.insert("eos".into());
    s.vos.insert(
        "vo".into(),
        VirtualOrganization {
            name: "vo".into(),
            read_max_drives: 1000,
            write_max_drives: 1000,
            is_repack_vo: false,
            disk_instance: None,
        },
    );
    s.logical_libraries
        .insert("lib".into(), LogicalLibrary { name: "lib".into(), disabled: false, physical_library: None });
    s.mount_policies.insert(
        "mp".into(),
        MountPolicy {
            name: "mp".into(),
            archive_priority: 1,
            archive_min_request_age: 0,
            retrieve_priority: 1,
            retrieve_min_request_age: 0,
        },
    );
    s.mount_rules = vec![MountRule {
        kind: MountRuleKind::Requester,
        disk_instance: "eos".into(),
        name: "default".into(),
        mount_policy: "mp".into(),
    }];
    for p in 0..pools {
        let pool = format!("pool{p:04}");
        s.tape_pools.insert(pool.clone(), TapePool { name: pool.clone(), vo: "vo".into() });
        let sc = format!("sc{p:04}");
        s.storage_classes.insert(sc.clone(), StorageClass { name: sc.clone(), nb_copies: 1, vo: "vo".into() });
        s.archive_routes.push(ArchiveRoute {
            storage_class: sc,
            copy_nb: 1,
            tape_pool: pool,
            route_type: ArchiveRouteType::Default,
        });
    }
    for v in 0..vids {
        let vid = format!("V{v:05}");
        s.tapes.insert(
            vid.clone(),
            Tape {
                vid,
                tape_pool: format!("pool{:04}", v % pools),
                logical_library: "lib".into(),
                capacity_bytes: 1 << 50,
                data_on_tape_bytes: v,
                last_fseq: 0,
                full: false,
                state: TapeState::Active,
                state_reason: None,
                media_type: "LTO8".into(),
                vendor: None,
            },
        );
    }
    for d in 0..drives {
        let name = format!("drive{d:03}");
        s.drives.insert(
            name.clone(),
            DriveState {
                name,
                logical_library: "lib".into(),
                scheduler_backend: Some("default".into()),
                status: DriveStatus::Up,
                mount_type: None,
                vid: None,
                tape_pool: None,
                next_mount_type: None,
                next_vid: None,
                next_tape_pool: None,
                reason: None,
            },
        );
    }
    s
}

/// Queues, claims and collects `opts.requests` archive requests; returns the queueing rate and
/// the claim and collection rates of each round.
async fn throughput(url: &str, prefix: &str, opts: &Options) -> Result<(f64, Vec<f64>, Vec<f64>)> {
    let snap = catalogue(opts.pools, opts.pools * 2, opts.sessions);
    let cat = Arc::new(MemoryCatalogue::new(snap, vec![])?);
    let clock = Arc::new(ManualClock::new(T0));
    let config = ObjectstoreConfig { lock_timeout: Duration::from_secs(120), ..ObjectstoreConfig::default() };
    let open =
        || -> Result<Arc<ObjectstoreDb>> { Ok(Arc::new(ObjectstoreDb::new(store(url, prefix)?, config.clone()))) };

    // Queueing: each producer is a frontend with its own agent.
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..opts.producers {
        let s = Scheduler::new(open()?, cat.clone(), clock.clone(), SchedulerConfig::default());
        let opts = opts.clone();
        tasks.push(tokio::spawn(async move {
            let ids: Vec<u64> = (0..opts.requests).filter(|i| i % opts.producers == p).collect();
            for chunk in ids.chunks(opts.producer_batch as usize) {
                let subs = chunk
                    .iter()
                    .map(|i| ArchiveSubmission {
                        archive_file_id: Some(1 + i),
                        disk_instance: Some("eos".into()),
                        disk_file_id: None,
                        requester: Requester { name: "bench".into(), group: "bench".into() },
                        storage_class: format!("sc{:04}", i % opts.pools),
                        size: 1_000_000,
                        created_at: Some(T0 - 60),
                        report_url: Some("eos://report".into()),
                        error_report_url: None,
                    })
                    .collect();
                for r in s.queue_archives(subs).await? {
                    r?;
                }
            }
            Ok::<_, tapesched_scheduler::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let queued = rate(opts.requests, start.elapsed());

    // Claiming, then collection, `rounds` times over the same jobs (the collector puts them
    // back): the medians are reported, with every round's rate.
    let (mut claim_rates, mut gc_rates) = (Vec::new(), Vec::new());
    for round in 0..opts.rounds {
        let (rate, mounts) = claim_round(&open, opts, round).await?;
        claim_rates.push(rate);
        gc_rates.push(collect_round(&open, opts, &mounts).await?);
    }
    Ok((queued, claim_rates, gc_rates))
}

/// One claiming round: each session drains its share of the pools in batches of
/// `claim_batch`. Returns jobs claimed per second and the mounts used.
async fn claim_round(
    open: &impl Fn() -> Result<Arc<ObjectstoreDb>>,
    opts: &Options,
    round: u64,
) -> Result<(f64, Vec<MountId>)> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    let mut mounts = Vec::new();
    for s in 0..opts.sessions {
        let db = open()?;
        let pools: Vec<u64> = (0..opts.pools).filter(|p| p % opts.sessions == s).collect();
        let mut ids = Vec::new();
        for p in &pools {
            let id = 1_000_000 * (round + 1) + p;
            let spec = archive_mount(format!("V{p:05}"), format!("pool{p:04}"), format!("drive{s:03}"));
            db.open_mount(id, &spec, T0).await?;
            ids.push(id);
        }
        mounts.extend(ids.clone());
        let batch = opts.claim_batch;
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            for id in ids {
                n += crate::bench_postgres::pop_all(db.as_ref(), id, batch).await?;
            }
            Ok::<_, tapesched_scheduler::Error>(n)
        }));
    }
    let mut claimed = 0;
    for t in tasks {
        claimed += t.await??;
    }
    let claim_rate = rate(claimed, start.elapsed());
    anyhow::ensure!(claimed == opts.requests, "claimed {claimed} of {} jobs", opts.requests);
    Ok((claim_rate, mounts))
}

/// One collection: every session dies holding its jobs; one collector requeues them all.
/// Returns jobs requeued per second.
async fn collect_round(
    open: &impl Fn() -> Result<Arc<ObjectstoreDb>>,
    opts: &Options,
    mounts: &[MountId],
) -> Result<f64> {
    let collector = open()?;
    for id in mounts {
        collector.abandon_mount(*id, T0).await?;
    }
    let router = CatalogueRouter::new(&catalogue(1, 1, 0), T0);
    let start = Instant::now();
    let requeued = collector.garbage_collect(T0, &router).await?;
    let gc_rate = rate(requeued, start.elapsed());
    anyhow::ensure!(requeued == opts.requests, "requeued {requeued} of {} jobs", opts.requests);
    Ok(gc_rate)
}

/// Runs the benchmark under `prefix` (empty, removed by the caller) and returns its report. The
/// repack expansion's catalogue goes to `repack_catalogue` (a new schema on the PostgreSQL server
/// `pg_url`, dropped by the caller).
pub async fn run(url: &str, prefix: &str, pg_url: &str, repack_catalogue: &str, opts: Options) -> Result<Value> {
    let mut report = json!({
        "backend": "objectstore-redis",
        "redis": url,
        "settings": {
            "requests": opts.requests, "producers": opts.producers, "producer_batch": opts.producer_batch,
            "pools": opts.pools, "sessions": opts.sessions, "claim_batch": opts.claim_batch, "rounds": opts.rounds,
        },
    });
    if opts.throughput {
        eprintln!("substrate: pipelined SET and GET of {} values of {OBJECT_BYTES} bytes", opts.substrate_ops);
        let (set, get) = substrate(url, prefix, opts.substrate_ops, OBJECT_BYTES, opts.producers).await?;
        eprintln!("queueing, claiming and collecting {} requests", opts.requests);
        let (queued, claim_rounds, gc_rounds) = throughput(url, prefix, &opts).await?;
        let (claimed, requeued) = (median(&claim_rounds), median(&gc_rounds));
        store(url, prefix)?.clear().await?;
        report["substrate"] = json!({
            "pipelined_set_per_s": set, "pipelined_get_per_s": get,
            "note": format!(
                "raw SET/GET of {OBJECT_BYTES}-byte values (a stored request object of this benchmark), \
                 pipelines of 1000 over {} connections, same server, same run",
                opts.producers
            ),
        });
        report["archive_requests_queued_per_s"] =
            json!({"value": queued, "target": 20000, "ratio_to_set": ratio(queued, set)});
        report["jobs_claimed_per_s"] = json!({
            "value": claimed, "rounds": claim_rounds, "target": 100000, "ratio_to_get": ratio(claimed, get),
        });
        report["gc_requeue_jobs_per_s"] = json!({
            "value": requeued, "rounds": gc_rounds, "target": 10000, "reference_cta": 88,
            "ratio_to_set": ratio(requeued, set),
        });
    }
    let decision_prefix = format!("{prefix}decision:");
    report["mount_decision"] =
        crate::decision_objectstore::run(url, &decision_prefix, opts.decision, opts.decision_samples, opts.repack_work)
            .await?;
    if let Some(size) = opts.expansion {
        let repack_prefix = format!("{prefix}repack:");
        let target = Target::Redis { url, prefix: &repack_prefix };
        report["repack_expansion"] = crate::repack_expansion::run(pg_url, repack_catalogue, target, size).await?;
    }
    Ok(report)
}

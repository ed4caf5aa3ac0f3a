//! The mount decision of the objectstore backend on Redis, on the shared data set
//! ([`crate::decision_set`]).
//!
//! Loading: the data set is written directly as queue objects and their shards (the decision
//! reads queues, not requests; no request object is written), encoded by the backend's own
//! `Objects` (into a memory store) and sent to Redis in pipelines of raw `SET`s, several in
//! flight. Before anything is timed, `mount_info` must equal the data set's expected mount
//! information.
//!
//! Timed, each after the same `ARRIVALS` archive requests queued by another process (a frontend
//! with its own agent):
//! - `next_mount_ms`: the whole `next_mount` (global lock, root and every queue object read,
//!   decision, recording the mount: its drive-session agent, the agent register, the counter);
//! - breakdown, in rounds of their own: `mount_info` (root and queue objects) and `choose`;
//! - substrate: raw `GET` of the root and `MGET`s of every queue object's value (one pipeline)
//!   and one `SET`: reading what this design reads, without locks, decoding or decision.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::{json, Value};
use tapesched_objectstore::objects::{
    archive_request_name, retrieve_request_name, JobPointer, Objects, Queue, QueueKey, QueueKind, Root, Shard,
    ShardPointer, ROOT,
};
use tapesched_objectstore::redis_store::{RedisSettings, RedisStore};
use tapesched_objectstore::store::{MemoryStore, ObjectStore};
use tapesched_objectstore::{ObjectstoreConfig, ObjectstoreDb};
use tapesched_scheduler::db::{MountInfo, SchedulerDb};
use tapesched_scheduler::decision::{self, SchedulerConfig};
use tapesched_scheduler::types::RequestId;

use crate::decision_set::{time_decisions, Arrivals, DecisionSet, Job, TimedDecisions, ARRIVALS, DRIVE, MIN_AGE, NOW};
use crate::measure::{self, ratio, Samples};
use crate::repack_decision::RepackWork;

/// Queues encoded and sent per pipeline.
const QUEUES_PER_BATCH: u64 = 250;
/// Pipelines in flight while the next batch is encoded.
const IN_FLIGHT: usize = 3;

/// A raw connection for the load and the substrate, whose large pipelines may take longer than
/// the client's default response time-out (500 ms) on a busy machine.
pub async fn raw_connection(url: &str) -> Result<redis::aio::MultiplexedConnection> {
    let config = redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(120)));
    Ok(redis::Client::open(url)?.get_multiplexed_async_connection_with_config(&config).await?)
}

/// The Redis key of an object's value, as `redis_store.rs` documents it (`PREFIX{NAME}:o`).
/// The load checks it: the backend must then read what was written.
fn value_key(prefix: &str, name: &str) -> String {
    format!("{prefix}{{{name}}}:o")
}

/// The jobs of archive pool `p` or retrieve VID `p`, in queue order (their numbers ascending:
/// archive FIFO order, and retrieve (fSeq, arrival) order since the fSeq is the number).
fn queue_jobs(set: &DecisionSet, retrieve: bool, q: u64) -> impl Iterator<Item = (u64, Job)> + '_ {
    let (step, last) = if retrieve { (set.vids, set.retrieve_jobs()) } else { (set.pools, set.archive_jobs()) };
    let first = if q == 0 { step } else { q };
    (first..=last)
        .step_by(step as usize)
        .map(move |g| (g, if retrieve { set.retrieve_job(g) } else { set.archive_job(g) }))
}

/// The queue object and shards of queue `q` (pools first, then VIDs).
fn build_queue(set: &DecisionSet, q: u64, shard_size: usize) -> (QueueKey, String, Queue, Vec<(String, Shard)>) {
    let retrieve = q >= set.pools;
    let key = if retrieve {
        QueueKey::new(QueueKind::RetrieveToTransfer, DecisionSet::vid(q - set.pools))
    } else {
        QueueKey::new(QueueKind::ArchiveToTransferForUser, DecisionSet::pool(q))
    };
    let name = key.object_name();
    let mut queue = Queue::new(key.clone());
    let pointers: Vec<JobPointer> = queue_jobs(set, retrieve, if retrieve { q - set.pools } else { q })
        .enumerate()
        .map(|(seq, (g, j))| JobPointer {
            request: if retrieve { RequestId::Retrieve(g) } else { RequestId::Archive(g) },
            address: if retrieve { retrieve_request_name(g) } else { archive_request_name(g) },
            copy_nb: 1,
            archive_file_id: g,
            size: j.size,
            priority: j.policy,
            min_age: MIN_AGE,
            policy: DecisionSet::policy(j.policy),
            created_at: j.created_at,
            fseq: if retrieve { g } else { 0 },
            seq: seq as u64,
            outcome: None,
        })
        .collect();
    let mut shards = Vec::new();
    for (k, chunk) in pointers.chunks(shard_size).enumerate() {
        let address = format!("{name}-s{k}");
        for p in chunk {
            queue.summary.account(p, true);
        }
        queue.shards.push(ShardPointer {
            address: address.clone(),
            count: chunk.len() as u64,
            bytes: chunk.iter().map(|p| p.size).sum(),
            oldest: chunk.iter().map(|p| p.created_at).min().unwrap_or(0),
            youngest: chunk.iter().map(|p| p.created_at).max().unwrap_or(0),
            min_key: chunk.iter().map(JobPointer::retrieve_key).min().unwrap_or((0, 0)),
            max_key: chunk.iter().map(JobPointer::retrieve_key).max().unwrap_or((0, 0)),
        });
        shards.push((address, Shard { jobs: chunk.to_vec() }));
    }
    queue.next_shard = shards.len() as u64;
    queue.next_seq = pointers.len() as u64;
    (key, name, queue, shards)
}

/// Encodes objects with the backend's own encoder: returns (name, stored bytes).
async fn encode<T: tapesched_objectstore::objects::Stored>(objects: &[(String, T)]) -> Result<Vec<(String, Vec<u8>)>> {
    let memory = Arc::new(MemoryStore::new());
    let objs = Objects::new(memory.clone(), Duration::from_secs(1));
    let mut out = Vec::with_capacity(objects.len());
    for (name, value) in objects {
        objs.create(name, value).await?;
        out.push((name.clone(), memory.read(name).await?.context("an encoded object vanished")?));
    }
    Ok(out)
}

/// Writes the data set under `prefix`; returns what the load took and the queue objects' names.
async fn load(url: &str, prefix: &str, set: DecisionSet, shard_size: usize) -> Result<(Value, Vec<String>)> {
    let con = raw_connection(url).await?;
    let start = Instant::now();
    let mut root = Root::default();
    let (mut bytes, mut objects) = (0u64, 0u64);
    let mut in_flight: VecDeque<tokio::task::JoinHandle<Result<()>>> = VecDeque::new();
    let mut send = |batch: Vec<(String, Vec<u8>)>, in_flight: &mut VecDeque<_>| {
        bytes += batch.iter().map(|(_, v)| v.len() as u64).sum::<u64>();
        objects += batch.len() as u64;
        let (mut con, prefix) = (con.clone(), prefix.to_string());
        in_flight.push_back(tokio::spawn(async move {
            let mut pipe = redis::pipe();
            for (name, value) in batch {
                pipe.set(value_key(&prefix, &name), value).ignore();
            }
            let () = pipe.query_async(&mut con).await?;
            Ok(())
        }));
    };
    let mut q = 0;
    while q < set.queues() {
        let end = (q + QUEUES_PER_BATCH).min(set.queues());
        let (mut queues, mut shards) = (Vec::new(), Vec::new());
        for i in q..end {
            let (key, name, queue, s) = build_queue(&set, i, shard_size);
            root.queues.push((key, name.clone()));
            queues.push((name, queue));
            shards.extend(s);
        }
        // Shards before their queue, as the backend writes them.
        let mut batch = encode(&shards).await?;
        batch.extend(encode(&queues).await?);
        while in_flight.len() >= IN_FLIGHT {
            in_flight.pop_front().expect("not empty").await??;
        }
        send(batch, &mut in_flight);
        q = end;
    }
    let queue_names: Vec<String> = root.queues.iter().map(|(_, n)| n.clone()).collect();
    send(encode(&[(ROOT.to_string(), root)]).await?, &mut in_flight);
    for t in in_flight {
        t.await??;
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok((
        json!({
            "seconds": seconds, "objects": objects, "mib": (bytes as f64 / 1048576.0).round(),
            "jobs_per_s": (set.jobs as f64 / seconds).round(),
            "how": format!(
                "queue objects and shards of {shard_size} pointers encoded by the backend's Objects, raw SETs \
                 in pipelines of {QUEUES_PER_BATCH} queues, {IN_FLIGHT} in flight; no request objects"
            ),
        }),
        queue_names,
    ))
}

/// Writes the data set under `prefix` with the backend's default shard size; returns what the
/// load took (the bridge's benchmark loads both sides with this and [`crate::decision_postgres`]).
pub async fn load_set(url: &str, prefix: &str, set: DecisionSet) -> Result<Value> {
    Ok(load(url, prefix, set, ObjectstoreConfig::default().shard_size).await?.0)
}

/// Runs the decision benchmark under `prefix` (empty; cleared by the caller's guard); with
/// `repack`, then queues that repack work and times the decisions again
/// ([`crate::repack_decision`]).
pub async fn run(
    url: &str,
    prefix: &str,
    set: DecisionSet,
    samples: usize,
    repack: Option<RepackWork>,
) -> Result<Value> {
    eprintln!("decision data set: {} pools, {} VIDs, {} queued jobs (pipelined load)", set.pools, set.vids, set.jobs);
    let config = ObjectstoreConfig::default();
    let (loaded, queue_names) = load(url, prefix, set, config.shard_size).await?;
    eprintln!("loaded: {loaded}");
    let open = |label: &str| -> Result<ObjectstoreDb> {
        let store = RedisStore::new(RedisSettings::new(url, prefix)).context("redis store")?;
        let config = ObjectstoreConfig { process_label: label.into(), ..config.clone() };
        Ok(ObjectstoreDb::new(Arc::new(store), config))
    };
    let db = open("scheduler")?;
    let frontend = open("frontend")?;
    set.check(&db.mount_info(NOW).await?).context("checking the loaded data set")?;
    let peak_before = measure::peak_rss_mib();
    let reset = measure::reset_peak_rss();

    let snap = set.catalogue();
    let sched = SchedulerConfig::default();
    let decide = |info: &MountInfo| decision::choose(info, &snap, DRIVE, NOW, &sched);
    let mut arrivals = Arrivals::new(&frontend, set);

    let TimedDecisions { whole, read, choose, first_choice } =
        time_decisions(&db, &mut arrivals, &decide, samples).await?;

    eprintln!("{samples} substrate reads (GET root, MGET every queue object, one SET)");
    let mut con = raw_connection(url).await?;
    let keys: Vec<String> = queue_names.iter().map(|n| value_key(prefix, n)).collect();
    let (root_key, record_key) = (value_key(prefix, ROOT), value_key(prefix, "bench-substrate-mount"));
    let record = vec![b'x'; 200];
    let mut substrate = Samples::default();
    for _ in 0..samples {
        arrivals.arrive().await?;
        let t = Instant::now();
        let mut pipe = redis::pipe();
        pipe.get(&root_key);
        for chunk in keys.chunks(1000) {
            pipe.cmd("MGET").arg(chunk);
        }
        let read: Vec<redis::Value> = pipe.query_async(&mut con).await?;
        let () = redis::cmd("SET").arg(&record_key).arg(&record).query_async(&mut con).await?;
        substrate.push(t.elapsed());
        anyhow::ensure!(read.len() == 1 + keys.len().div_ceil(1000), "short substrate read");
    }
    eprintln!("substrate ms: {}", substrate.json());
    let memory = measure::memory_json(peak_before, reset);

    let with_repack = match repack {
        None => Value::Null,
        Some(work) => {
            // A second copy of the data set under its own prefix (inside the guarded one), the
            // repack work queued there by a maintenance process (its own agent); then decisions
            // on the two copies in alternation.
            let prefix_b = format!("{prefix}b:");
            load(url, &prefix_b, set, config.shard_size).await?;
            let open_b = |label: &str| -> Result<ObjectstoreDb> {
                let store = RedisStore::new(RedisSettings::new(url, &prefix_b)).context("redis store")?;
                let config = ObjectstoreConfig { process_label: label.into(), ..config.clone() };
                Ok(ObjectstoreDb::new(Arc::new(store), config))
            };
            let (db_b, frontend_b, maintenance) = (open_b("scheduler")?, open_b("frontend")?, open_b("maintd")?);
            let before = db_b.mount_info(NOW).await?;
            let queued = work.queue(&maintenance, &set).await?;
            let after = db_b.mount_info(NOW).await?;
            work.check(&set, &before, &after).context("checking the queued repack work")?;
            let mut a = crate::repack_decision::Side { db: &db, arrivals };
            let mut b = crate::repack_decision::Side { db: &db_b, arrivals: Arrivals::new(&frontend_b, set) };
            eprintln!("{samples} decisions on each copy, in alternation (without / with repack work)");
            let (without, with) = crate::repack_decision::interleaved(&mut a, &mut b, &decide, samples).await?;
            eprintln!("next_mount ms without: {}, with: {}", without.json(), with.json());
            let extra = after.potential_mounts.len() - before.potential_mounts.len();
            crate::repack_decision::report_interleaved(queued, extra, &without, &with)
        }
    };

    Ok(json!({
        "with_repack_work": with_repack,
        "pools": set.pools, "vids": set.vids, "queued_jobs": set.jobs, "queues": set.queues(),
        "samples": samples, "arrivals_between_decisions": ARRIVALS, "load": loaded,
        "first_mount_chosen": first_choice,
        "next_mount_ms": whole.json(),
        "substrate_ms": substrate.json(),
        "ratio_substrate_to_next_mount": {
            "p50": ratio(substrate.pct(0.5), whole.pct(0.5)), "p99": ratio(substrate.pct(0.99), whole.pct(0.99)),
        },
        "breakdown_in_rounds_of_their_own": {
            "mount_info_read_ms": read.json(),
            "choose_in_memory_ms": choose.json(),
        },
        "memory": memory,
        "what": "next_mount_ms: the whole next_mount (global lock, root and every queue object read and decoded, \
                 choose, recording the mount: agent, register, counter), right after the arrivals; substrate_ms: \
                 raw GET of the root, MGET of every queue object (one pipeline) and one SET; ratio: substrate \
                 time / next_mount time",
    }))
}

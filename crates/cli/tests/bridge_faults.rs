//! Faults under the migration bridge with real processes on real Redis and PostgreSQL: the
//! non-authoritative side (the PostgreSQL target) slowed and stopped under a producer, a drive
//! and a reporter running as `tapesched worker` processes, in dual-write and in shadow; and
//! processes killed between the two sides' writes of a mirrored write.
//!
//! How the faults are made, each test in a schema and a Redis prefix of its own (removed at the
//! end, also when the test fails):
//! - **target stopped**: the test holds `LOCK TABLE ... IN ACCESS EXCLUSIVE MODE` on the
//!   scheduler tables of its own schema in an open transaction, so that every operation of the
//!   target on them waits (past `--other-timeout-ms`) until the test rolls back. The migration
//!   record's tables (the stage, the log) are not locked: the workers read the stage and flush
//!   their divergences over connections of their own meanwhile.
//! - **target slowed**: the same lock, held until PostgreSQL shows an operation of the target
//!   waiting on it (polled in `pg_locks`), then released: the operation lands, late but within
//!   the timeout.
//! - **killed between the two writes**: `TAPESCHED_FAILPOINT=bridge.after_authority_write` in a
//!   worker's environment; it kills itself with SIGKILL in its first mirrored write, after the
//!   legacy side's write and before the target's (`crates/bridge/src/failpoint.rs`).
//!
//! Then: callers were never failed (every worker exits 0, every request queued is written and
//! reported exactly once), the divergences are in the migration record, `migrate verify` finds
//! exactly what the target misses, `migrate repair` mends it and `verify` is clean afterwards.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tapesched_bridge::{Answer, Concern};
use tapesched_migrate::{DivergenceQuery, Record};
use tapesched_objectstore::redis_store::{ClearOnDrop, RedisSettings};
use tapesched_postgres::schema::{connect_once, connect_options};
use tapesched_postgres::sqlx::{self, Connection, PgConnection};
use tapesched_postgres::SchemaGuard;
use tapesched_scheduler::types::RequestId;
use tapesched_scheduler::ErrorKind;

mod common;
use common::{counts, ids_after, Outputs};

const WAIT: Duration = Duration::from_secs(120);
/// The workers' bound on the target (`--other-timeout-ms`).
const OTHER_TIMEOUT_MS: u64 = 1500;
const BATCH: u64 = 10;
/// The pool drive d1 serves from the start.
const POOL: &str = "pool_f";
/// A pool no drive serves until the end: what is queued there stays queued, for verify to see.
const PARKED: &str = "pool_parked";
/// Stops the target: the scheduler tables of the test's schema (not the migration record's)
/// locked, in a transaction left open. A lock wait is bounded by `lock_timeout`, so the test's
/// lock never deadlocks with an operation of the target (it gives up and is taken again).
const STOP: &str = "BEGIN; SET LOCAL lock_timeout = '200ms'; LOCK TABLE mount, mount_claim, archive_request, \
                    archive_job, retrieve_request, queue_summary, repack_request IN ACCESS EXCLUSIVE MODE";

/// One test's migration: its namespaces, its worker processes and their output. Dropped, it
/// kills its processes, ends the test's lock on the target, then removes its namespaces.
struct Setup {
    redis_url: String,
    prefix: String,
    pg_url: String,
    schema: String,
    outputs: Arc<Outputs>,
    children: Vec<(String, Child)>,
    stdins: BTreeMap<String, ChildStdin>,
    /// Batches asked of each producer.
    asked: BTreeMap<String, usize>,
    /// The connection holding the lock that stops the target (in a transaction while it does).
    lock: Option<PgConnection>,
    _redis: ClearOnDrop,
    _schema: SchemaGuard,
    rt: tokio::runtime::Runtime,
}

impl Drop for Setup {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(conn) = self.lock.take() {
            let _ = self.rt.block_on(async { tokio::time::timeout(Duration::from_secs(5), conn.close()).await });
        }
    }
}

impl Setup {
    /// Fresh namespaces, the migration set up in dual-write with the (empty) legacy side
    /// backfilled.
    fn new(tag: &str) -> Setup {
        let redis_url = tapesched_testkit::redis_url().expect("a Redis server");
        let pg_url = tapesched_testkit::postgres_url().expect("a PostgreSQL server");
        let name = tapesched_testkit::unique_name(tag);
        let prefix = format!("{name}:");
        let s = Setup {
            _redis: ClearOnDrop(RedisSettings::new(redis_url.clone(), prefix.clone())),
            _schema: SchemaGuard::new(pg_url.clone(), name.clone()),
            redis_url,
            prefix,
            pg_url,
            schema: name,
            outputs: Outputs::new(WAIT),
            children: Vec::new(),
            stdins: BTreeMap::new(),
            asked: BTreeMap::new(),
            lock: None,
            rt: tokio::runtime::Runtime::new().expect("runtime"),
        };
        s.ok(&["init"], false);
        s.stage("dual-write");
        s.ok(&["backfill"], true);
        s
    }

    fn migrate(&self, args: &[&str], with_legacy: bool) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tapesched"));
        cmd.arg("migrate").args(args).args(["--database-url", &self.pg_url, "--schema", &self.schema]);
        if with_legacy {
            cmd.args(["--legacy-redis-url", &self.redis_url, "--legacy-prefix", &self.prefix]);
        }
        cmd.output().expect("tapesched runs")
    }

    /// `migrate ARGS`, which must succeed; its stdout.
    fn ok(&self, args: &[&str], with_legacy: bool) -> String {
        let out = self.migrate(args, with_legacy);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "migrate {args:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        stdout
    }

    fn stage(&self, to: &str) {
        self.ok(&["stage", to, "--reason", "fault test", "--who", "test"], false);
    }

    /// `migrate verify`: the differences it reports (`missing archive 12`, ...), none when clean.
    fn verify(&self) -> BTreeSet<String> {
        let out = self.migrate(&["verify"], true);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        let code = out.status.code();
        assert!(code == Some(0) || code == Some(1), "verify: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        let differences: BTreeSet<String> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("  "))
            .filter(|l| ["missing ", "extra ", "different "].iter().any(|k| l.starts_with(k)))
            .map(String::from)
            .collect();
        assert_eq!(code == Some(0), differences.is_empty(), "verify's status and report agree: {stdout}");
        differences
    }

    /// Verify finds exactly `want`; repair mends it; verify is clean afterwards.
    fn verify_repair_verify(&self, want: &BTreeSet<String>) {
        assert_eq!(&self.verify(), want, "what verify finds");
        let repaired = self.ok(&["repair"], true);
        assert!(repaired.contains("repairing the target from legacy"), "{repaired}");
        assert_eq!(self.verify(), BTreeSet::new(), "verify after repair");
    }

    /// A `tapesched worker` command over the bridge of this test.
    fn worker(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tapesched"));
        cmd.arg("worker")
            .args(args)
            .args(["--backend", "bridge:objectstore-redis:postgres", "--redis-url", &self.redis_url])
            .args(["--redis-prefix", &self.prefix, "--database-url", &self.pg_url, "--schema", &self.schema])
            .args(["--stage-refresh-ms", "200", "--lock-lease-ms", "2000"])
            .args(["--other-timeout-ms", &OTHER_TIMEOUT_MS.to_string()])
            // Every divergence is a warning on stderr: too many to read here (the test reads
            // them from the migration record).
            .env("RUST_LOG", "error");
        cmd
    }

    /// Starts a long-running worker whose stdout lines are collected under `name`.
    fn spawn(&mut self, name: &str, args: &[&str]) {
        let mut child = self
            .worker(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("tapesched runs");
        let stdout = child.stdout.take().expect("stdout");
        self.stdins.insert(name.to_string(), child.stdin.take().expect("stdin"));
        self.outputs.collect(name, stdout);
        self.children.push((name.to_string(), child));
    }

    /// Starts a producer of `pool`'s requests from id `from`, a batch per line it is sent.
    fn spawn_producer(&mut self, name: &str, pool: &str, from: u64) {
        let (from, batch) = (from.to_string(), BATCH.to_string());
        self.spawn(name, &["produce", "--tape-pool", pool, "--from", &from, "--batch", &batch, "--on-stdin"]);
    }

    /// Starts a drive serving `pool` until stopped.
    fn spawn_drive(&mut self, name: &str, vid: &str, pool: &str) {
        let args = ["drive", "--drive", name, "--vid", vid, "--tape-pool", pool, "--batch-files", "7"];
        self.spawn(name, &[&args[..], &["--forever", "--idle-ms", "50"]].concat());
    }

    /// Asks `producer` for `n` more batches, without waiting for them.
    fn ask(&mut self, producer: &str, n: usize) {
        let stdin = self.stdins.get_mut(producer).expect("a producer");
        for _ in 0..n {
            writeln!(stdin, "batch").expect("the producer reads");
        }
        stdin.flush().expect("the producer reads");
        *self.asked.entry(producer.to_string()).or_default() += n;
    }

    /// Waits until `producer` answered every batch asked of it; the ids of its last `n` batches.
    fn answered(&self, producer: &str, n: usize) -> BTreeSet<u64> {
        let want = self.asked[producer];
        self.outputs.wait(&format!("{producer}'s batches"), |l| {
            l[producer].iter().filter(|x| x.starts_with("queued ")).count() >= want
        });
        let lines = self.outputs.of(producer);
        let queued: Vec<String> = lines.into_iter().filter(|x| x.starts_with("queued ")).collect();
        ids_after(&queued[queued.len() - n..], "queued").into_iter().collect()
    }

    /// Every id `producers` queued.
    fn queued(&self, producers: &[&str]) -> BTreeSet<u64> {
        producers.iter().flat_map(|p| ids_after(&self.outputs.of(p), "queued")).collect()
    }

    /// Waits until every id in `want` was reported.
    fn settle(&self, want: &BTreeSet<u64>) {
        self.outputs.wait(&format!("{} requests reported", want.len()), |l| {
            let reported: BTreeSet<u64> = ids_after(&l["reporter"], "reported").into_iter().collect();
            want.is_subset(&reported)
        });
    }

    /// Waits until every worker routes by `stage`.
    fn all_in(&self, stage: &str) {
        let line = format!("stage {stage}");
        self.outputs.wait(&format!("every worker in {stage}"), |l| {
            l.values().all(|lines| lines.iter().rev().find(|x| x.starts_with("stage ")) == Some(&line))
        });
    }

    /// Ends the workers: producers at the end of their input, the others by SIGTERM; each must
    /// exit 0.
    fn stop_workers(&mut self) {
        self.stdins.clear();
        for (name, child) in &mut self.children {
            if !name.starts_with("producer") {
                let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            }
        }
        for (name, child) in &mut self.children {
            let status = child.wait().expect("reaped");
            assert!(status.success(), "{name} exited with {status}");
        }
        self.children.clear();
    }

    /// Stops the target: takes the lock on its scheduler tables (retried while another
    /// transaction holds one of them: a lock wait bounded by `lock_timeout`, so the test's lock
    /// never deadlocks with the target's operations).
    fn stop_target(&mut self) {
        let options = connect_options(&self.pg_url, &self.schema).expect("options");
        let deadline = Instant::now() + WAIT;
        self.lock = Some(self.rt.block_on(async {
            let mut conn = connect_once(&options, Duration::from_secs(10)).await.expect("a connection");
            loop {
                match sqlx::raw_sql(STOP).execute(&mut conn).await {
                    Ok(_) => return conn,
                    Err(e) => {
                        sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.expect("rollback");
                        assert!(Instant::now() < deadline, "cannot lock the target's tables: {e}");
                    }
                }
            }
        }));
    }

    /// Waits until the target's write of queued archive requests waits on the test's lock.
    fn wait_for_a_waiter(&mut self) {
        let schema = self.schema.clone();
        let conn = self.lock.as_mut().expect("the target is stopped");
        let deadline = Instant::now() + WAIT;
        self.rt.block_on(async {
            loop {
                // The lock's connection polls inside its transaction, where PostgreSQL keeps the
                // first read of pg_stat_activity until the transaction ends: without this, a poll
                // made before the target's write began saw that moment's queries ever after.
                sqlx::raw_sql("SELECT pg_stat_clear_snapshot()").execute(&mut *conn).await.expect("clear snapshot");
                let waiting: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                     JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_stat_activity a ON a.pid = l.pid \
                     WHERE NOT l.granted AND n.nspname = $1 AND a.query LIKE 'INSERT INTO archive_request%'",
                )
                .bind(&schema)
                .fetch_one(&mut *conn)
                .await
                .expect("pg_locks");
                if waiting > 0 {
                    return;
                }
                if Instant::now() >= deadline {
                    // What every connection of the schema was doing, to tell why none waited.
                    let activity: Vec<(String, String, Option<String>, bool)> = sqlx::query_as(
                        "SELECT a.state, left(a.query, 120), a.wait_event_type, \
                         EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted) \
                         FROM pg_stat_activity a WHERE a.application_name = left('tapesched:' || $1, 63) \
                         AND a.pid <> pg_backend_pid()",
                    )
                    .bind(&schema)
                    .fetch_all(&mut *conn)
                    .await
                    .expect("pg_stat_activity");
                    panic!("no operation of the target waited on the lock; the schema's connections: {activity:#?}");
                }
                tokio::time::sleep(Duration::from_millis(5)).await; // polling pace, not a wait
            }
        });
    }

    /// Starts the target again: rolls the lock's transaction back.
    fn start_target(&mut self) {
        let mut conn = self.lock.take().expect("the target is stopped");
        self.rt.block_on(async {
            sqlx::raw_sql("ROLLBACK").execute(&mut conn).await.expect("rollback");
            conn.close().await.expect("closed");
        });
    }

    /// Waits until the migration record holds a `queue_archive` divergence for each of `ids`;
    /// answers the target's answer in every `queue_archive` divergence stored, by request.
    fn wait_for_divergences(&self, ids: &BTreeSet<u64>) -> BTreeMap<u64, Answer> {
        let deadline = Instant::now() + WAIT;
        self.rt.block_on(async {
            let record = Record::connect(&self.pg_url, &self.schema, 1, Duration::from_secs(10)).await.expect("record");
            loop {
                let q = DivergenceQuery { op: Some("queue_archive".into()), limit: 100_000, ..Default::default() };
                let mut found = BTreeMap::new();
                for d in record.divergences(&q).await.expect("divergences") {
                    for c in &d.divergence.concerns {
                        if let Concern::Request(RequestId::Archive(id)) = c {
                            found.insert(*id, d.divergence.target.clone());
                        }
                    }
                }
                if ids.iter().all(|i| found.contains_key(i)) {
                    return found;
                }
                let missing: Vec<_> = ids.iter().filter(|i| !found.contains_key(i)).collect();
                assert!(Instant::now() < deadline, "no divergence recorded for {missing:?}");
                tokio::time::sleep(Duration::from_millis(50)).await; // polling pace, not a wait
            }
        })
    }
}

/// Exits of a one-shot worker: its status, stdout and stderr.
fn run(mut cmd: Command) -> (std::process::ExitStatus, String, String) {
    let out = cmd.output().expect("tapesched runs");
    (out.status, String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn processes_killed_between_the_two_writes_leave_what_verify_finds_and_repair_mends() {
    let s = Setup::new("fault_kill");
    let produce = |from: &str| {
        let mut cmd = s.worker(&["produce", "--tape-pool", POOL, "--from", from, "--count", "10", "--batch", "10"]);
        cmd.stdin(Stdio::null());
        cmd
    };
    let (status, out, err) = run(produce("1"));
    assert!(status.success(), "{out}{err}");
    assert_eq!(ids_after(&out.lines().map(String::from).collect::<Vec<_>>(), "queued"), (1..=10).collect::<Vec<_>>());

    // A producer killed after legacy queued its batch, before the target did.
    let mut killed = produce("11");
    killed.env("TAPESCHED_FAILPOINT", "bridge.after_authority_write");
    let (status, out, err) = run(killed);
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status} {out}{err}");
    assert!(!out.contains("queued"), "killed before answering: {out}");
    assert!(err.contains("failpoint bridge.after_authority_write"), "{err}");

    // A drive killed after legacy recorded its mount, before the target did.
    let mut drive = s.worker(&["drive", "--drive", "d0", "--vid", "V0", "--tape-pool", POOL]);
    drive.env("TAPESCHED_FAILPOINT", "bridge.after_authority_write").stdin(Stdio::null());
    let (status, out, err) = run(drive);
    assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status} {out}{err}");
    assert!(!out.contains("open "), "killed before its session: {out}");

    let mut want: BTreeSet<String> = (11..=20).map(|id| format!("missing archive {id}")).collect();
    want.insert("missing mount 1".into());
    s.verify_repair_verify(&want);

    // Every request is then written and reported once through the bridge.
    let mut drive = s.worker(&["drive", "--drive", "d1", "--vid", "V1", "--tape-pool", POOL, "--batch-files", "7"]);
    drive.stdin(Stdio::null());
    let (status, out, err) = run(drive);
    assert!(status.success(), "{out}{err}");
    let lines: Vec<String> = out.lines().map(String::from).collect();
    assert_eq!(counts(ids_after(&lines, "completed")), counts(1..=20), "{out}");
    let mut reporter = s.worker(&["report"]);
    reporter.stdin(Stdio::null());
    let (status, out, err) = run(reporter);
    assert!(status.success(), "{out}{err}");
    let lines: Vec<String> = out.lines().map(String::from).collect();
    assert_eq!(counts(ids_after(&lines, "reported")), counts(1..=20), "{out}");
    assert_eq!(s.verify(), BTreeSet::new(), "verify at the end");
}

/// The target slowed, then stopped, under a producer of each pool, a drive and a reporter, in
/// `stage`; then started again, verified and repaired, and the parked pool drained.
fn a_slowed_then_stopped_target_never_fails_callers(stage: &str) {
    let mut s = Setup::new(&format!("fault_stop_{}", stage.replace('-', "_")));
    if stage == "shadow" {
        s.stage("shadow");
    }
    s.spawn_producer("producer", POOL, 1);
    s.spawn_producer("producer_parked", PARKED, 100_001);
    s.spawn_drive("d1", "V1", POOL);
    s.spawn("reporter", &["report", "--forever", "--idle-ms", "50", "--max", "50"]);
    s.all_in(stage);
    s.ask("producer", 1);
    let healthy = s.answered("producer", 1);
    s.settle(&healthy);

    // Slowed: the parked batch's target write waits on the lock, which is released then: the
    // write lands late, within the bound.
    s.stop_target();
    s.ask("producer_parked", 1);
    s.wait_for_a_waiter();
    s.start_target();
    let slowed = s.answered("producer_parked", 1);

    // Stopped: batches of both producers go through, the drive writes and the reporter reports
    // the pool's, every target operation timing out meanwhile.
    let started = Instant::now();
    s.stop_target();
    s.ask("producer", 2);
    s.ask("producer_parked", 2);
    let stopped_pool = s.answered("producer", 2);
    let stopped_parked = s.answered("producer_parked", 2);
    s.settle(&stopped_pool);
    let stopped: BTreeSet<u64> = stopped_pool.union(&stopped_parked).copied().collect();
    // Their divergences are flushed to the record while the target's tables are still locked.
    let diverged = s.wait_for_divergences(&stopped);
    for id in &stopped {
        let unavailable = matches!(&diverged[id], Answer::Error { kind: ErrorKind::Unavailable, message }
            if message.contains(&format!("no answer within {OTHER_TIMEOUT_MS} ms")));
        assert!(unavailable, "request {id}: the target's answer {:?}", diverged[id]);
    }
    let late: Vec<&u64> = slowed.iter().filter(|id| diverged.contains_key(id)).collect();
    assert!(late.is_empty(), "the slowed batch landed within the bound: {late:?}");
    s.start_target();
    eprintln!("{stage}: the target was stopped for {:?}", started.elapsed());

    // What the target missed is what is still queued on legacy: the parked batches.
    let want: BTreeSet<String> = stopped_parked.iter().map(|id| format!("missing archive {id}")).collect();
    s.verify_repair_verify(&want);

    // Everything drains: each request written and reported once, nothing left to repair.
    s.spawn_drive("d2", "V2", PARKED);
    s.ask("producer", 1);
    s.ask("producer_parked", 1);
    s.answered("producer", 1);
    s.answered("producer_parked", 1);
    let queued = s.queued(&["producer", "producer_parked"]);
    assert_eq!(queued.len() as u64, 8 * BATCH);
    s.settle(&queued);
    assert_eq!(s.verify(), BTreeSet::new(), "verify at the end");
    s.stop_workers();
    for producer in ["producer", "producer_parked"] {
        let refused: Vec<String> = s.outputs.of(producer).into_iter().filter(|l| l.starts_with("refused")).collect();
        assert!(refused.is_empty(), "{producer}: {refused:?}");
    }
    let reported = counts(ids_after(&s.outputs.of("reporter"), "reported"));
    assert_eq!(reported, counts(queued.iter().copied()), "every request reported exactly once");
    let completed = counts(["d1", "d2"].iter().flat_map(|d| ids_after(&s.outputs.of(d), "completed")));
    assert_eq!(completed, counts(queued.iter().copied()), "every request written exactly once");
}

#[test]
fn a_slowed_then_stopped_target_in_dual_write_never_fails_callers() {
    a_slowed_then_stopped_target_never_fails_callers("dual-write");
}

#[test]
fn a_slowed_then_stopped_target_in_shadow_never_fails_callers() {
    a_slowed_then_stopped_target_never_fails_callers("shadow");
}

//! The whole migration with real processes: a legacy objectstore on Redis holding queued and
//! held work is moved to PostgreSQL through every stage (`off -> dual-write -> off ->
//! dual-write -> backfill -> verify/repair -> shadow -> dual-write -> shadow -> live -> shadow
//! -> live -> rampdown -> dual-write -> shadow -> live -> rampdown -> complete`) while a producer,
//! two drive sessions and a reporter run throughout as separate `tapesched worker` processes
//! over the bridge, each following the stage from the migration record on its own (stage
//! changes reach them at different moments, authority flips included, with work in flight).
//!
//! Afterwards every request was written once (no job held by two mounts: each archive file id
//! completed exactly once across the drives) and reported exactly once, and nothing is left
//! queued on the target.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tapesched_bridge::{BridgeDb, DivergenceLog};
use tapesched_migrate::{Record, RecordStage};
use tapesched_objectstore::redis_store::{ClearOnDrop, RedisSettings, RedisStore};
use tapesched_objectstore::{ObjectstoreConfig, ObjectstoreDb};
use tapesched_postgres::{PgConfig, PgSchedulerDb, SchemaGuard};
use tapesched_scheduler::db::{JobKind, MountInfo, ReportFilter, SchedulerDb, StayRouter};
use tapesched_testkit::workload::{archive_mount, archive_request};

mod common;
use common::{ids_after, Outputs};

const POOL: &str = "pool_m";
const LEGACY_JOBS: u64 = 200;
const HELD: u64 = 20;
const BATCH: u64 = 20;
const WAIT: Duration = Duration::from_secs(60);
/// How many windows with a mismatch `go_live` repairs before it gives up.
const MISMATCH_WINDOWS: usize = 2;

struct Migration {
    redis_url: String,
    prefix: String,
    pg_url: String,
    schema: String,
    outputs: Arc<Outputs>,
    children: Vec<(String, Child)>,
    producer: Option<ChildStdin>,
    produced: u64,
}

impl Migration {
    fn sides(&self) -> Vec<String> {
        ["--database-url", &self.pg_url, "--schema", &self.schema, "--legacy-redis-url", &self.redis_url]
            .into_iter()
            .map(String::from)
            .chain(["--legacy-prefix".to_string(), self.prefix.clone()])
            .collect()
    }

    fn migrate(&self, args: &[&str], with_legacy: bool) -> std::process::Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tapesched"));
        cmd.arg("migrate").args(args);
        if with_legacy {
            cmd.args(self.sides());
        } else {
            cmd.args(["--database-url", &self.pg_url, "--schema", &self.schema]);
        }
        cmd.output().expect("tapesched runs")
    }

    fn stage(&self, to: &str) {
        let out = self.migrate(&["stage", to, "--reason", "migration test", "--who", "test"], false);
        if !out.status.success() {
            let status = self.migrate(&["status", "--divergences", "8"], false);
            // What each side holds now, item by item (the verify is recorded, but the test ends).
            let verify = self.migrate(&["verify"], true);
            panic!(
                "migrate stage {to}: {}\n{}\nmigrate verify:\n{}{}",
                String::from_utf8_lossy(&out.stderr),
                String::from_utf8_lossy(&status.stdout),
                String::from_utf8_lossy(&verify.stdout),
                String::from_utf8_lossy(&verify.stderr)
            );
        }
    }

    fn spawn(&mut self, name: &str, args: &[&str]) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tapesched"))
            .arg("worker")
            .args(args)
            .args(["--backend", "bridge:objectstore-redis:postgres", "--redis-url", &self.redis_url])
            .args(["--redis-prefix", &self.prefix, "--database-url", &self.pg_url, "--schema", &self.schema])
            .args(["--stage-refresh-ms", "200", "--lock-lease-ms", "2000"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("tapesched runs");
        let stdout = child.stdout.take().expect("stdout");
        if name == "producer" {
            self.producer = child.stdin.take();
        }
        self.outputs.collect(name, stdout);
        self.children.push((name.to_string(), child));
    }

    /// Asks the producer for `n` batches and waits until they are queued.
    fn produce(&mut self, n: u64) {
        let stdin = self.producer.as_mut().expect("producer");
        for _ in 0..n {
            writeln!(stdin, "batch").expect("producer reads");
        }
        stdin.flush().expect("producer reads");
        self.produced += n;
        let want = self.produced as usize;
        self.outputs.wait("the producer's batches", |l| {
            l["producer"].iter().filter(|x| x.starts_with("queued ")).count() >= want
        });
    }

    /// Changes the stage with batches in flight, then waits until every process routes by it.
    fn flip(&mut self, to: &str) {
        self.produce(2);
        self.stage(to);
        self.produce(1);
        let line = format!("stage {to}");
        self.outputs.wait(&format!("every process in {to}"), |l| {
            l.values().all(|lines| lines.iter().rev().find(|x| x.starts_with("stage ")) == Some(&line))
        });
    }

    fn queued(&self) -> BTreeSet<u64> {
        let producer = ids_after(&self.outputs.snapshot()["producer"], "queued");
        (1..=LEGACY_JOBS).chain(producer).collect()
    }

    /// Waits until every request queued so far, but `except`, has been reported.
    fn settle(&self, except: &BTreeSet<u64>) {
        let want: BTreeSet<u64> = self.queued().difference(except).copied().collect();
        let unreported = |l: &BTreeMap<String, Vec<String>>| {
            let reported: BTreeSet<u64> = ids_after(&l["reporter"], "reported").into_iter().collect();
            want.difference(&reported).copied().collect::<Vec<u64>>()
        };
        self.outputs.wait_or(
            "every queued request reported",
            |l| unreported(l).is_empty(),
            |l| format!("(not yet: {:?})", unreported(l)),
        );
    }

    /// Moves to live once the gate lets it, as the runbook says: after a clean verify the gate
    /// wants comparisons flushed since, so batches go through shadow until it does; a window
    /// with a mismatch (a mirrored write that timed out on a loaded machine) is repaired and
    /// verified again, at most [`MISMATCH_WINDOWS`] times, each printed.
    fn go_live(&mut self) {
        let deadline = Instant::now() + WAIT;
        let mut mismatch_windows = 0;
        loop {
            self.produce(1);
            self.settle(&BTreeSet::new());
            let out = self.migrate(&["stage", "live", "--reason", "migration test", "--who", "test"], false);
            if out.status.success() {
                break;
            }
            let why = String::from_utf8_lossy(&out.stderr).to_string();
            if why.contains("mismatch rate") && mismatch_windows < MISMATCH_WINDOWS {
                mismatch_windows += 1;
                let status = self.migrate(&["status", "--divergences", "8"], false);
                eprintln!("live refused ({why}); repairing:\n{}", String::from_utf8_lossy(&status.stdout));
                self.verify_and_repair();
                continue;
            }
            if !why.contains("nothing was compared") || Instant::now() > deadline {
                self.stage("live"); // fails, printing the status
            }
        }
        self.produce(1);
        self.outputs.wait("every process in live", |l| {
            l.values()
                .all(|lines| lines.iter().rev().find(|x| x.starts_with("stage ")).is_some_and(|x| x == "stage live"))
        });
    }

    fn verify_and_repair(&self) {
        let out = self.migrate(&["verify"], true);
        if !out.status.success() {
            let repaired = self.migrate(&["repair"], true);
            assert!(repaired.status.success(), "repair: {}", String::from_utf8_lossy(&repaired.stderr));
            let again = self.migrate(&["verify"], true);
            assert!(
                again.status.success(),
                "verify after repair: {}{}",
                String::from_utf8_lossy(&again.stdout),
                String::from_utf8_lossy(&again.stderr)
            );
        }
    }
}

impl Drop for Migration {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn a_live_archive_moves_to_postgres_and_back_and_forth_with_every_request_reported_once() {
    let redis_url = tapesched_testkit::redis_url().expect("a Redis server");
    let pg_url = tapesched_testkit::postgres_url().expect("a PostgreSQL server");
    let name = tapesched_testkit::unique_name("migration");
    let prefix = format!("{name}:");
    let _redis = ClearOnDrop(RedisSettings::new(redis_url.clone(), prefix.clone()));
    let _schema = SchemaGuard::new(pg_url.clone(), name.clone());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let _in_runtime = rt.enter();

    // The legacy deployment before the migration: queued work, and a session holding jobs.
    let legacy: Arc<dyn SchedulerDb> = Arc::new(ObjectstoreDb::new(
        Arc::new(RedisStore::new(RedisSettings::new(redis_url.clone(), prefix.clone())).expect("redis")),
        ObjectstoreConfig::default(),
    ));
    let t0 = tapesched_scheduler::clock::Clock::now(&tapesched_scheduler::clock::SystemClock);
    let (dead, held): (u64, BTreeSet<u64>) = rt.block_on(async {
        let requests = (1..=LEGACY_JOBS).map(|id| archive_request(id, POOL, t0)).collect();
        assert!(legacy.queue_archives(requests, t0).await.iter().all(Result::is_ok));
        let decide = |_: &MountInfo| Some(archive_mount("V0", POOL, "d0"));
        let (mount, _) = legacy.next_mount("lib", t0, &decide).await.expect("decide").expect("a mount");
        let jobs = legacy.pop_jobs(mount, HELD, u64::MAX, t0).await.expect("pop");
        (mount, jobs.iter().map(|j| j.archive_file_id()).collect())
    });
    assert_eq!(held.len() as u64, HELD);

    let mut m = Migration {
        redis_url,
        prefix,
        pg_url,
        schema: name.clone(),
        outputs: Outputs::new(WAIT),
        children: Vec::new(),
        producer: None,
        produced: 0,
    };
    let init = m.migrate(&["init"], false);
    assert!(init.status.success(), "migrate init: {}", String::from_utf8_lossy(&init.stderr));

    let batch = BATCH.to_string();
    m.spawn("producer", &["produce", "--tape-pool", POOL, "--from", "1001", "--batch", &batch, "--on-stdin"]);
    for (drive, vid) in [("d1", "V1"), ("d2", "V2")] {
        let args = ["drive", "--drive", drive, "--vid", vid, "--tape-pool", POOL, "--batch-files", "7"];
        m.spawn(drive, &[&args[..], &["--forever", "--idle-ms", "50"]].concat());
    }
    m.spawn("reporter", &["report", "--forever", "--idle-ms", "50", "--max", "50"]);
    m.produce(1);
    m.settle(&held);

    // Dual-write, and back to off before any copy: nothing is lost either way.
    m.flip("dual-write");
    m.flip("off");
    m.flip("dual-write");
    m.settle(&held);

    // Copy what predates dual-write; the dead session's jobs go back to their queue on both sides.
    let out = m.migrate(&["backfill"], true);
    assert!(out.status.success(), "backfill: {}", String::from_utf8_lossy(&out.stderr));
    rt.block_on(async {
        let target =
            Arc::new(PgSchedulerDb::connect(PgConfig::new(m.pg_url.clone(), m.schema.clone())).await.expect("target"));
        let stage = Arc::new(RecordStage::new(Record::of_postgres(&target), Duration::ZERO));
        let bridge = BridgeDb::new(legacy.clone(), target, stage, Arc::new(DivergenceLog::new()));
        bridge.abandon_mount(dead, t0).await.expect("abandon the dead session");
        bridge.garbage_collect(t0, &StayRouter).await.expect("collect");
    });
    m.settle(&BTreeSet::new());
    m.verify_and_repair();

    // Shadow, back to dual-write, shadow again; live (authority flips to the target) and back.
    m.flip("shadow");
    m.flip("dual-write");
    m.flip("shadow");
    m.settle(&BTreeSet::new());
    m.verify_and_repair();
    m.go_live();
    m.flip("shadow");
    m.flip("live");
    m.flip("rampdown");
    m.flip("dual-write");
    m.flip("shadow");
    m.settle(&BTreeSet::new());
    m.verify_and_repair();
    m.go_live();
    m.flip("rampdown");
    m.flip("complete");
    m.settle(&BTreeSet::new());

    // Stop the workers cleanly: the producer at the end of its input, the others by SIGTERM.
    drop(m.producer.take());
    for (name, child) in &mut m.children {
        if name != "producer" {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        }
    }
    for (name, child) in &mut m.children {
        let status = child.wait().expect("reaped");
        assert!(status.success(), "{name} exited with {status}");
    }
    m.children.clear();

    let lines = m.outputs.snapshot();
    let queued = m.queued();
    let mut reported: BTreeMap<u64, usize> = BTreeMap::new();
    for id in ids_after(&lines["reporter"], "reported") {
        *reported.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = reported.iter().filter(|(_, n)| **n > 1).collect();
    if let Some((id, _)) = twice.first() {
        let needle = id.to_string();
        for (who, ls) in &lines {
            for l in ls.iter().filter(|l| l.starts_with("stage") || l.split([' ', ',', ':']).any(|w| w == needle)) {
                eprintln!("{who}: {}", l.chars().take(200).collect::<String>());
            }
        }
    }
    assert!(twice.is_empty(), "reported more than once: {twice:?}");
    assert_eq!(reported.keys().copied().collect::<BTreeSet<_>>(), queued, "every request reported");
    let mut completed: BTreeMap<u64, usize> = BTreeMap::new();
    for drive in ["d1", "d2"] {
        for id in ids_after(&lines[drive], "completed") {
            *completed.entry(id).or_default() += 1;
        }
    }
    let twice: Vec<_> = completed.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "written by two sessions: {twice:?}");
    let written: BTreeSet<u64> = completed.keys().copied().collect();
    assert_eq!(written, queued, "every job written once (the dead session's after their requeue)");
    assert!(queued.len() as u64 > LEGACY_JOBS + 20 * BATCH, "{} requests", queued.len());

    rt.block_on(async {
        let target = PgSchedulerDb::connect(PgConfig::new(m.pg_url.clone(), m.schema.clone())).await.expect("target");
        assert!(target.list_pending(JobKind::Archive, None).await.expect("pending").is_empty());
        assert!(target.reports_due(ReportFilter::All, 10, t0).await.expect("due").is_empty());
    });
}

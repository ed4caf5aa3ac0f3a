//! `tapesched migrate` against a real PostgreSQL (a schema of the test's own) and Redis (an empty
//! key prefix of its own): the gate of `live` refuses without evidence and above the configured
//! mismatch rate, `--force` is recorded, `migrate config` changes the gate, `status` shows the
//! bridge's counters, the unrepaired divergences and UTC dates, and `report` writes the
//! migration's report from the record.

use std::process::{Command, Output};
use tapesched_objectstore::redis_store::{ClearOnDrop, RedisSettings};

use tapesched_migrate::{Answer, Concern, Divergence, FlushBatch, LogDelta, OpCounts, PendingDivergence, Record};
use tapesched_postgres::{PgConfig, PgSchedulerDb, SchemaGuard};
use tapesched_scheduler::types::RequestId;

fn tapesched(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tapesched")).args(args).output().expect("the binary runs")
}

fn text(o: &Output) -> String {
    format!("stdout:\n{}\nstderr:\n{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn wall() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_gate_refuses_without_evidence_and_above_the_rate_and_force_is_recorded() {
    let url = tapesched_testkit::postgres_url().expect("a PostgreSQL server");
    let redis = tapesched_testkit::redis_url().expect("a Redis server");
    let schema = tapesched_testkit::unique_name("cligate");
    let _guard = SchemaGuard::new(url.clone(), schema.clone());
    let prefix = format!("{schema}:");
    let _redis = ClearOnDrop(RedisSettings::new(redis.clone(), prefix.clone()));
    let target: &[&str] = &["--database-url", &url, "--schema", &schema];
    let sides: Vec<&str> =
        target.iter().copied().chain(["--legacy-redis-url", &redis, "--legacy-prefix", &prefix]).collect();
    let run = |args: &[&str], extra: &[&str]| {
        let all: Vec<&str> = ["migrate"].iter().chain(args).chain(extra).copied().collect();
        tapesched(&all)
    };

    let out = run(&["init", "--max-mismatch-rate", "0.05", "--window", "300"], target);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("a mismatch rate of at most 0.05 over the last 300 s"), "{}", text(&out));
    for stage in ["dual-write", "shadow"] {
        let out = run(&["stage", stage, "--reason", "next"], target);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    }
    let out = run(&["verify"], &sides);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // A clean verify, but no comparison in the window: refused, saying there is no evidence.
    let out = run(&["stage", "live", "--reason", "flip"], target);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("nothing was compared in the last 300 s (no evidence"), "{}", text(&out));

    // A process of the bridge flushed 10 mismatches of 100 comparisons (and 5 ignored).
    let db = PgSchedulerDb::connect(PgConfig { max_connections: 1, ..PgConfig::new(url.clone(), schema.clone()) })
        .await
        .expect("target");
    let record = Record::of_postgres(&db);
    let mut delta = LogDelta::default();
    let mut counts = OpCounts { calls: 105, compared: 105, matched: 90, mismatched: 10, ..OpCounts::default() };
    counts.ignored.insert("mount-order".into(), 5);
    counts.target_latency.add(1500);
    delta.stats.insert("next_mount".into(), counts);
    let mut d = Divergence::new(
        "next_mount",
        vec![Concern::Request(RequestId::Archive(7))],
        Answer::value(&1),
        Answer::value(&2),
        1_700_000_000,
    );
    d.seq = 1;
    delta.divergences.push(PendingDivergence { recorded_at: wall(), divergence: d });
    let batch = FlushBatch {
        process: "bridge-1".into(),
        instance: "bridge-1/1".into(),
        batch: 1,
        // Flushed after the verify (the gate's window starts when the last verify ended).
        window_start: wall(),
        window_end: wall() + 1,
        delta,
    };
    record.write_log(&batch).await.expect("flushed");

    let out = run(&["stage", "live", "--reason", "flip"], target);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out)
            .contains("mismatch rate of the last 300 s is 0.1000 (10 mismatched of 100 compared, 5 ignored apart)"),
        "{}",
        text(&out)
    );

    let out = run(&["status"], target);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let status = text(&out);
    assert!(status.contains("stage: shadow"), "{status}");
    assert!(status.contains("mismatch rate: 0.1000 (10 of 100, ignored left out), maximum 0.05"), "{status}");
    assert!(status.contains("ignored by rule (neither matched nor mismatched): mount-order 5"), "{status}");
    assert!(status.contains("divergences: 1 unrepaired"), "{status}");
    assert!(status.contains("next_mount by bridge-1") && status.contains("request archive 7"), "{status}");
    let row = status.lines().find(|l| l.trim_start().starts_with("next_mount ")).expect("a counters row");
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[..7], ["next_mount", "105", "105", "90", "10", "5", "0/0"], "{status}");
    assert!(status.contains(" UTC  - -> off by"), "dates, not epoch seconds: {status}");

    // The report from the record: the whole migration and the gate's window.
    let dir = std::env::temp_dir().join(format!("{schema}-report"));
    let dir_arg = dir.to_string_lossy().into_owned();
    let out = run(&["report", "--out", &dir_arg], target);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    for file in ["report.md", "report.html", "window/report.md", "window/report.html"] {
        assert!(dir.join(file).is_file(), "{file}: {}", text(&out));
    }
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(md.contains("next_mount") && md.contains("request archive 7") && md.contains("by bridge-1"), "{md}");
    assert!(md.contains("mount-order"), "ignored apart, by rule: {md}");
    let html = std::fs::read_to_string(dir.join("window/report.html")).unwrap();
    assert!(html.contains("<svg") && !html.contains("<script"), "self-contained");
    std::fs::remove_dir_all(&dir).unwrap();

    let out = run(&["stage", "live", "--reason", "flip anyway", "--force"], target);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("(forced, recorded)"), "{}", text(&out));
    let out = run(&["stage", "shadow", "--reason", "back"], target);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // A maximum above the window's rate lets live through.
    let out = run(&["config", "--max-mismatch-rate", "0.2"], target);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("at most 0.2 over the last 300 s"), "{}", text(&out));
    let out = run(&["config", "--max-mismatch-rate", "7"], target);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = run(&["stage", "live", "--reason", "flip"], target);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = run(&["status"], target);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let history: Vec<&str> = stdout.lines().filter(|l| l.contains(" -> ") && l.contains(" by ")).collect();
    assert_eq!(history.len(), 6, "{history:?}");
    assert!(history[3].contains("shadow -> live (forced) by"), "{history:?}");
    assert!(!history[5].contains("forced"), "{history:?}");
    drop(db);
}

/// A request queued on legacy only (the target refused it during dual-write) and named by a
/// stored divergence: `migrate repair --divergences-only` writes it to the target, marks the
/// divergence repaired, and `migrate verify` is clean after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_divergences_only_fixes_what_the_stored_divergences_name() {
    use std::sync::Arc;
    use tapesched_objectstore::redis_store::{RedisSettings, RedisStore};
    use tapesched_objectstore::{ObjectstoreConfig, ObjectstoreDb};
    use tapesched_scheduler::db::SchedulerDb;

    let url = tapesched_testkit::postgres_url().expect("a PostgreSQL server");
    let redis = tapesched_testkit::redis_url().expect("a Redis server");
    let schema = tapesched_testkit::unique_name("clirepair");
    let _guard = SchemaGuard::new(url.clone(), schema.clone());
    let prefix = format!("{schema}:");
    let target: &[&str] = &["--database-url", &url, "--schema", &schema];
    let sides: Vec<&str> =
        target.iter().copied().chain(["--legacy-redis-url", &redis, "--legacy-prefix", &prefix]).collect();
    let run = |args: &[&str], extra: &[&str]| {
        let all: Vec<&str> = ["migrate"].iter().chain(args).chain(extra).copied().collect();
        tapesched(&all)
    };
    assert_eq!(run(&["init"], target).status.code(), Some(0));
    assert_eq!(run(&["stage", "dual-write", "--reason", "mirror"], target).status.code(), Some(0));

    let settings = RedisSettings::new(redis.clone(), prefix.clone());
    let store = Arc::new(RedisStore::new(settings).expect("store"));
    let legacy = ObjectstoreDb::new(store.clone(), ObjectstoreConfig::default());
    legacy.queue_archive(tapesched_testkit::workload::archive_request(1, "p1", 1_000), 1_000).await.expect("queued");
    let db = PgSchedulerDb::connect(PgConfig { max_connections: 1, ..PgConfig::new(url.clone(), schema.clone()) })
        .await
        .expect("target");
    let record = Record::of_postgres(&db);
    let mut delta = LogDelta::default();
    delta
        .stats
        .insert("queue_archive".into(), OpCounts { calls: 1, compared: 1, mismatched: 1, ..OpCounts::default() });
    let error = Answer::Error { kind: tapesched_scheduler::ErrorKind::Internal, message: "refused".into() };
    let mut d = Divergence::new(
        "queue_archive",
        vec![Concern::Request(RequestId::Archive(1))],
        Answer::value(&()),
        error,
        1_000,
    );
    d.seq = 1;
    delta.divergences.push(PendingDivergence { recorded_at: wall(), divergence: d });
    let batch = FlushBatch {
        process: "p".into(),
        instance: "p/1".into(),
        batch: 1,
        window_start: wall(),
        window_end: wall(),
        delta,
    };
    record.write_log(&batch).await.expect("flushed");

    let out = run(&["verify"], &sides);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let out = run(&["repair", "--divergences-only"], &sides);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("1 unrepaired divergence(s) naming 1 item(s), 1 still different: 1 written, 0 deleted"),
        "{}",
        text(&out)
    );
    assert!(!text(&out).contains("verify:"), "no full verify: {}", text(&out));
    let out = run(&["verify"], &sides);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(record.count_divergences(true).await.expect("count"), 0);
    let out = run(&["status"], target);
    assert!(text(&out).contains("divergences: 0 unrepaired (1 stored"), "{}", text(&out));
    drop(db);
    store.clear().await.expect("cleared");
}

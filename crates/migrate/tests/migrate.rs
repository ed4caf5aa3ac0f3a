//! Backfill, verify, repair and the stage record against real Redis and PostgreSQL servers
//! (each test its own schema and key prefix).

use std::sync::Arc;

use tapesched_migrate::*;
use tapesched_objectstore::redis_store::{RedisSettings, RedisStore};
use tapesched_objectstore::{ObjectstoreConfig, ObjectstoreDb};
use tapesched_postgres::backend::{PgConfig, PgSchedulerDb};
use tapesched_scheduler::db::*;
use tapesched_scheduler::state::{StateItem, StateKey};
use tapesched_scheduler::types::*;
use tapesched_scheduler::ErrorKind;
use tapesched_testkit::workload::{archive_mount, archive_request};

const NOW: i64 = 1_000_000;

async fn pg(tag: &str) -> Arc<PgSchedulerDb> {
    let url = tapesched_backends::database_url(None).expect("a PostgreSQL server");
    let schema = tapesched_testkit::unique_name(tag);
    Arc::new(PgSchedulerDb::connect(PgConfig { max_connections: 4, ..PgConfig::new(url, schema) }).await.unwrap())
}

fn redis(tag: &str) -> (Arc<ObjectstoreDb>, RedisSettings) {
    let url = tapesched_backends::redis_url(None).expect("a Redis server");
    let settings = RedisSettings::new(url, format!("{}:", tapesched_testkit::unique_name(tag)));
    let store = RedisStore::new(settings.clone()).unwrap();
    (Arc::new(ObjectstoreDb::new(Arc::new(store), ObjectstoreConfig::default())), settings)
}

fn memory() -> Arc<ObjectstoreDb> {
    let store = tapesched_objectstore::store::MemoryStore::new();
    Arc::new(ObjectstoreDb::new(Arc::new(store), ObjectstoreConfig::default()))
}

async fn clear(settings: RedisSettings) {
    RedisStore::new(settings).unwrap().clear().await.unwrap();
}

fn retrieve(id: u64, vid: &str, fseq: u64) -> RetrieveRequest {
    RetrieveRequest {
        request_id: id,
        archive_file_id: 10_000 + id,
        disk_instance: "eos".into(),
        requester: Requester { name: "u".into(), group: "g".into() },
        size: 1000 + id,
        dst_url: format!("eos://dst/{id}"),
        report_url: Some("eos://r".into()),
        error_report_url: Some("eos://e".into()),
        created_at: NOW - 100 + id as i64,
        activity: None,
        verify_only: false,
        disk_system: None,
        policy: QueuedPolicy { name: "mp".into(), priority: 2, min_request_age: 0 },
        copies: vec![RetrieveCopy { copy_nb: 1, vid: vid.into(), fseq, block_id: fseq, retries: Default::default() }],
        active_vid: vid.into(),
        status: RetrieveStatus::ToTransfer,
        failure_reasons: vec![],
        repack: None,
    }
}

/// Queued archives (two pools, some with two copies), retrieves on two tapes (fSeq order not
/// arrival order), a mount holding jobs, reports due, a cleanup flag and a sleep.
async fn populate(db: &dyn SchedulerDb, archives: u64) {
    let requests: Vec<ArchiveRequest> = (1..=archives)
        .map(|i| {
            let mut r = archive_request(i, if i.is_multiple_of(3) { "p2" } else { "p1" }, NOW - 500 + i as i64);
            if i.is_multiple_of(5) {
                r.jobs.push(ArchiveJob::new(2, "p2"));
            }
            r
        })
        .collect();
    for chunk in requests.chunks(500) {
        for r in db.queue_archives(chunk.to_vec(), NOW).await {
            r.unwrap();
        }
    }
    for i in 1..=30u64 {
        let vid = if i.is_multiple_of(2) { "V1" } else { "V2" };
        db.queue_retrieve(retrieve(i, vid, 100 - i), NOW).await.unwrap();
    }
    let spec = archive_mount("T1", "p1", "d1");
    let decided = spec.clone();
    let (mount, _) = db.next_mount("lib", NOW, &move |_| Some(decided.clone())).await.unwrap().unwrap();
    let jobs = db.pop_jobs(mount, 12, u64::MAX, NOW).await.unwrap();
    assert_eq!(jobs.len(), 12);
    let done = tapesched_testkit::workload::written(&jobs[..3], "T1", 1);
    db.transfers_succeeded(mount, &done, NOW).await.unwrap();
    db.set_cleanup_flag("V1", true, NOW).await.unwrap();
    db.sleep_retrieve_queue("V2", QueueSleep { disk_system: "ds".into(), until: NOW + 60 }, NOW).await.unwrap();
}

async fn export_all(db: &dyn SchedulerDb) -> Vec<StateItem> {
    let mut out: Vec<StateItem> = Vec::new();
    loop {
        let page = db.export_state(out.last().map(StateItem::key).as_ref(), 97).await.unwrap();
        if page.is_empty() {
            return out;
        }
        out.extend(page);
    }
}

/// What two backends must agree on: normalized exports, mount info, listings, reports.
async fn assert_same(a: &dyn SchedulerDb, b: &dyn SchedulerDb) {
    let (ea, eb) = (export_all(a).await, export_all(b).await);
    assert_eq!(ea.len(), eb.len(), "{} vs {}", a.name(), b.name());
    for (x, y) in ea.iter().zip(&eb) {
        assert_eq!(x.normalized(), y.normalized());
    }
    assert_eq!(a.mount_info(NOW).await.unwrap(), b.mount_info(NOW).await.unwrap());
    for kind in [JobKind::Archive, JobKind::Retrieve] {
        assert_eq!(a.list_pending(kind, None).await.unwrap(), b.list_pending(kind, None).await.unwrap());
    }
    assert_eq!(
        a.reports_due(ReportFilter::All, 1000, NOW).await.unwrap(),
        b.reports_due(ReportFilter::All, 1000, NOW).await.unwrap()
    );
    assert_eq!(a.cleanup_flagged().await.unwrap(), b.cleanup_flagged().await.unwrap());
}

async fn copy_all(from: &dyn SchedulerDb, to: &dyn SchedulerDb) {
    let items = export_all(from).await;
    for chunk in items.chunks(150) {
        to.import_state(chunk.to_vec(), NOW).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_objectstore_postgres_objectstore() {
    let (legacy, settings) = redis("mgrt");
    populate(&*legacy, 400).await;
    let target = pg("mgrt").await;
    copy_all(&*legacy, &*target).await;
    assert_same(&*legacy, &*target).await;
    // Importing again changes nothing.
    copy_all(&*legacy, &*target).await;
    assert_same(&*legacy, &*target).await;
    // And back, into a fresh objectstore (memory) from PostgreSQL.
    let back = memory();
    copy_all(&*target, &*back).await;
    assert_same(&*target, &*back).await;
    // The copies behave as the original: the mount ends and its jobs go back in the same order.
    let mount = match &export_all(&*legacy).await[0] {
        StateItem::Mount { id, .. } => *id,
        other => panic!("expected a mount first, got {other:?}"),
    };
    for db in [&*legacy as &dyn SchedulerDb, &*target, &*back] {
        assert_eq!(db.end_mount(mount, NOW + 1, &StayRouter).await.unwrap(), 9);
    }
    assert_same(&*legacy, &*target).await;
    assert_same(&*target, &*back).await;
    target.drop_namespace().await.unwrap();
    clear(settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_resumes_after_an_interruption_and_copies_everything_once() {
    let (legacy, settings) = redis("mgbf");
    populate(&*legacy, 1000).await;
    let target = pg("mgbf").await;
    let record = Record::of_postgres(&target);
    let total = export_all(&*legacy).await.len() as u64;
    let options = BackfillOptions { page: 100, stop_after: Some(300), restart: false };
    let mut seen = Vec::new();
    let first = backfill(&*legacy, &*target, &record, &options, NOW, &mut |p| seen.push(p.clone())).await.unwrap();
    assert!(!first.complete);
    assert_eq!(first.progress.items, 300);
    assert_eq!(first.progress.total, Some(total));
    assert!(seen.last().unwrap().eta.is_some());
    let checkpoint = record.checkpoint().await.unwrap();
    assert_eq!(checkpoint.items, 300);
    assert!(!checkpoint.done);
    // Only what was copied is there.
    assert_eq!(export_all(&*target).await.len(), 300);
    // Two backfills at once: refused.
    let held = record.lock_backfill().await.unwrap();
    let e = backfill(&*legacy, &*target, &record, &BackfillOptions::default(), NOW, &mut |_| {}).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict);
    assert!(e.message.contains("another backfill"), "{}", e.message);
    drop(held);
    let resume = BackfillOptions { page: 100, stop_after: None, restart: false };
    let second = backfill(&*legacy, &*target, &record, &resume, NOW, &mut |_| {}).await.unwrap();
    assert!(second.complete);
    assert_eq!(second.resumed_from.unwrap().items, 300);
    assert_eq!(first.progress.items_this_run + second.progress.items_this_run, total);
    assert_eq!(second.progress.items, total);
    assert!(record.checkpoint().await.unwrap().done);
    assert_same(&*legacy, &*target).await;
    target.drop_namespace().await.unwrap();
    clear(settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_deleted_and_changed_items_and_repair_fixes_them() {
    let (legacy, settings) = redis("mgvf");
    populate(&*legacy, 300).await;
    let target = pg("mgvf").await;
    copy_all(&*legacy, &*target).await;
    let options = VerifyOptions { page: 64, rechecks: 2 };
    assert!(verify(legacy.clone(), target.clone(), &options).await.unwrap().is_clean());
    // One deleted on the target, one changed there, one extra there.
    target.delete_state(&[StateKey::Archive(7)], NOW).await.unwrap();
    let mut changed = target.read_state(&[StateKey::Retrieve(4)]).await.unwrap();
    if let StateItem::Retrieve { request, .. } = &mut changed[0] {
        request.dst_url = "eos://elsewhere".into();
    }
    target.import_state(changed, NOW).await.unwrap();
    target.queue_archive(archive_request(5000, "p1", NOW), NOW).await.unwrap();
    let report = verify(legacy.clone(), target.clone(), &options).await.unwrap();
    let found: Vec<(StateKey, DiffKind)> = report.differences.iter().map(|d| (d.key.clone(), d.kind)).collect();
    assert_eq!(
        found,
        vec![
            (StateKey::Archive(7), DiffKind::Missing),
            (StateKey::Archive(5000), DiffKind::Extra),
            (StateKey::Retrieve(4), DiffKind::Different),
        ]
    );
    assert_eq!(report.summary(), "archive p1: 1 missing\narchive p1: 1 extra\nretrieve V1: 1 different\n");
    let keys: Vec<StateKey> = report.differences.iter().map(|d| d.key.clone()).collect();
    let fixed = repair(&*legacy, &*target, &keys, NOW).await.unwrap();
    assert_eq!(fixed, RepairReport { written: 2, deleted: 1 });
    assert!(verify(legacy.clone(), target.clone(), &options).await.unwrap().is_clean());
    assert_same(&*legacy, &*target).await;
    target.drop_namespace().await.unwrap();
    clear(settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_reports_nothing_while_writes_are_in_flight() {
    let (legacy, settings) = redis("mgfl");
    populate(&*legacy, 300).await;
    let target = pg("mgfl").await;
    copy_all(&*legacy, &*target).await;
    // A write that has reached the legacy side only when the scan reads it...
    legacy.queue_archive(archive_request(9000, "p1", NOW), NOW).await.unwrap();
    // ... and a producer mirroring writes to both sides throughout.
    let (l, t) = (legacy.clone(), target.clone());
    let producer = tokio::spawn(async move {
        for batch in 0..20u64 {
            let rs: Vec<ArchiveRequest> =
                (0..25).map(|i| archive_request(20_000 + batch * 25 + i, "p2", NOW)).collect();
            for r in l.queue_archives(rs.clone(), NOW).await {
                r.unwrap();
            }
            for r in t.queue_archives(rs, NOW).await {
                r.unwrap();
            }
        }
    });
    let s = scan(legacy.clone(), target.clone(), 50).await.unwrap();
    assert!(s.candidates.contains(&StateKey::Archive(9000)));
    // The in-flight write lands on the target, the producer finishes: the re-check settles all.
    target.queue_archive(archive_request(9000, "p1", NOW), NOW).await.unwrap();
    producer.await.unwrap();
    let found = s.candidates.len() as u64;
    let report = confirm(&*legacy, &*target, s, 2).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.differences);
    assert_eq!(report.settled, found);
    target.drop_namespace().await.unwrap();
    clear(settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stages_advance_one_at_a_time_and_live_needs_a_clean_verify() {
    let target = pg("mgst").await;
    let record = Record::of_postgres(&target);
    let e = record.read_stage().await.unwrap_err();
    assert!(e.message.contains("tapesched migrate init"), "{}", e.message);
    let e = record.set_stage(Stage::DualWrite, "op", "go", false).await.unwrap_err();
    assert!(e.message.contains("tapesched migrate init"), "{}", e.message);
    assert_eq!(record.init("op").await.unwrap(), Stage::Off);
    assert_eq!(record.init("op").await.unwrap(), Stage::Off);
    let refused = record.set_stage(Stage::Shadow, "op", "skip", false).await.unwrap_err();
    assert_eq!(refused.kind, ErrorKind::StateTransitionRefused);
    record.set_stage(Stage::DualWrite, "op", "start mirroring", false).await.unwrap();
    record.set_stage(Stage::Shadow, "op", "compare reads", false).await.unwrap();
    let e = record.set_stage(Stage::Live, "op", "flip", false).await.unwrap_err();
    assert!(e.message.contains("verify"), "{}", e.message);
    record.record_verify(10, 2, "archive p1: 2 missing\n").await.unwrap();
    let e = record.set_stage(Stage::Live, "op", "flip", false).await.unwrap_err();
    assert!(e.message.contains("2 difference"), "{}", e.message);
    record.record_verify(10, 0, "").await.unwrap();
    // A clean verify, but nothing compared by the bridge in the window: no evidence.
    let e = record.set_stage(Stage::Live, "op", "flip", false).await.unwrap_err();
    assert!(e.message.contains("nothing was compared in the last 600 s"), "{}", e.message);
    // A window with one mismatch: above the default maximum (0).
    let mut delta = LogDelta::default();
    delta
        .stats
        .insert("next_mount".into(), OpCounts { compared: 10, matched: 9, mismatched: 1, ..OpCounts::default() });
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let batch = FlushBatch {
        process: "p".into(),
        instance: "p/1".into(),
        batch: 1,
        // Flushed after the verify (the gate's window starts when the last verify ended).
        window_start: now,
        window_end: now + 1,
        delta,
    };
    assert!(record.write_log(&batch).await.unwrap());
    assert!(!record.write_log(&batch).await.unwrap(), "a batch is written once");
    let e = record.set_stage(Stage::Live, "op", "flip", false).await.unwrap_err();
    assert!(e.message.contains("mismatch rate of the last 600 s is 0.1000 (1 mismatched of 10"), "{}", e.message);
    assert_eq!(
        record.set_gate_config(Some(0.1), Some(60)).await.unwrap(),
        GateConfig { max_mismatch_rate: 0.1, window_secs: 60 }
    );
    assert_eq!(record.set_gate_config(Some(2.0), None).await.unwrap_err().kind, ErrorKind::InvalidArgument);
    record.set_stage(Stage::Live, "op", "flip", false).await.unwrap();
    record.set_stage(Stage::DualWrite, "op", "back", false).await.unwrap();
    record.record_verify(10, 1, "x").await.unwrap();
    record.set_stage(Stage::Shadow, "op", "again", false).await.unwrap();
    let forced = record.set_stage(Stage::Live, "op", "forced flip", true).await.unwrap();
    assert!(forced.forced);
    record.set_stage(Stage::Rampdown, "op", "r", false).await.unwrap();
    record.set_stage(Stage::Complete, "op", "done", false).await.unwrap();
    let e = record.set_stage(Stage::Rampdown, "op", "undo", true).await.unwrap_err();
    assert!(e.message.contains("final"), "{}", e.message);
    let history = record.history().await.unwrap();
    let stages: Vec<&str> = history.iter().map(|c| c.stage.as_str()).collect();
    assert_eq!(stages, ["off", "dual-write", "shadow", "live", "dual-write", "shadow", "live", "rampdown", "complete"]);
    assert_eq!(history.iter().filter(|c| c.forced).count(), 1);
    assert_eq!(record.read_stage().await.unwrap(), Stage::Complete);
    target.drop_namespace().await.unwrap();
}

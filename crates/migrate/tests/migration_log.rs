//! The bridge's log in the shared record, against real Redis and PostgreSQL servers (each test
//! its own schema and key prefix): flushes from several processes add up and a failed flush
//! loses nothing; divergences of a target whose writes fail are stored, repaired from the
//! record, and verify is clean after; the bridge forwards the state methods; a repack goes
//! through backfill and verifies clean.

use std::sync::Arc;
use std::time::Duration;

use tapesched_bridge::{Answer, BridgeDb, Concern, Divergence, FixedStage, Sampling, Side, Stage as BStage};
use tapesched_migrate::*;
use tapesched_objectstore::redis_store::{RedisSettings, RedisStore};
use tapesched_objectstore::{ObjectstoreConfig, ObjectstoreDb};
use tapesched_postgres::backend::{PgConfig, PgSchedulerDb};
use tapesched_scheduler::db::*;
use tapesched_scheduler::repack::*;
use tapesched_scheduler::state::{StateItem, StateKey};
use tapesched_scheduler::types::*;
use tapesched_testkit::workload::archive_request;

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

async fn clear(settings: RedisSettings) {
    RedisStore::new(settings).unwrap().clear().await.unwrap();
}

async fn sql(db: &PgSchedulerDb, statement: &str) {
    tapesched_postgres::sqlx::query(tapesched_postgres::sqlx::AssertSqlSafe(statement.to_string()))
        .execute(db.pool())
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// Makes every write of `table` in the schema of `db` fail (until `DROP TRIGGER refuse ON table`).
async fn refuse_writes(db: &PgSchedulerDb, table: &str) {
    sql(
        db,
        "CREATE OR REPLACE FUNCTION refuse_writes() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'writes refused (test)'; END $$",
    )
    .await;
    sql(
        db,
        &format!("CREATE TRIGGER refuse BEFORE INSERT OR UPDATE OR DELETE ON {table} FOR EACH STATEMENT EXECUTE FUNCTION refuse_writes()"),
    )
    .await;
}

fn wall() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushes_of_two_processes_add_up_and_a_failed_flush_loses_nothing() {
    let target = pg("mglog").await;
    let record = Record::of_postgres(&target);
    record.init("op").await.unwrap();
    let (a, b) = (Arc::new(DivergenceLog::new()), Arc::new(DivergenceLog::new()));
    let hour = Duration::from_secs(3600);
    let fa = LogFlusher::spawn(record.clone(), a.clone(), "proc-a".into(), hour);
    let fb = LogFlusher::spawn(record.clone(), b.clone(), "proc-b".into(), hour);
    for (i, log) in [&a, &b].into_iter().enumerate() {
        for n in 0..10u64 {
            log.count_call("queue_archive");
            log.answered("queue_archive", Side::Legacy, Duration::from_micros(100 + n), false);
            log.answered("queue_archive", Side::Target, Duration::from_micros(1000 * (i as u64 + 1)), n == 0);
            log.matched("queue_archive");
        }
    }
    let d = Divergence::new(
        "queue_archive",
        vec![Concern::Request(RequestId::Archive(5))],
        Answer::value(&()),
        Answer::Error { kind: tapesched_scheduler::ErrorKind::Internal, message: "down".into() },
        NOW,
    );
    a.record(d.clone());
    fa.flush().await.unwrap();
    // b's write fails (a trigger refuses it): the delta stays with the flusher.
    refuse_writes(&target, "migration_log_batch").await;
    assert!(fb.flush().await.is_err());
    assert_eq!(fb.status().failures, 1);
    b.count_call("pop_jobs");
    b.record(Divergence { op: "pop_jobs".into(), ..d.clone() });
    assert!(fb.flush().await.is_err(), "still away");
    sql(&target, "DROP TRIGGER refuse ON migration_log_batch").await;
    fb.flush().await.unwrap();
    assert_eq!(fb.status().waiting, 0);

    let total = record.counters(None).await.unwrap();
    let qa = &total["queue_archive"];
    assert_eq!((qa.calls, qa.compared, qa.matched, qa.mismatched), (20, 21, 20, 1));
    assert_eq!((qa.legacy_errors, qa.target_errors), (0, 2));
    assert_eq!(qa.target_latency.count, 20);
    assert_eq!(qa.legacy_latency.max_micros, 109);
    // From the merged buckets: 1000 us lies in 896..=1023, 2000 us is the maximum.
    assert_eq!(qa.target_latency.percentile(50.0), Some(1023));
    assert_eq!(qa.target_latency.percentile(99.0), Some(2000));
    assert_eq!((total["pop_jobs"].calls, total["pop_jobs"].mismatched), (1, 1));
    // The window: every flush ended within it; nothing ends after now.
    assert_eq!(record.counters(Some(wall() - 600)).await.unwrap(), total);
    assert!(record.counters(Some(wall() + 10)).await.unwrap().is_empty());
    let stored = record.divergences(&DivergenceQuery::default()).await.unwrap();
    let named: Vec<(&str, &str)> = stored.iter().map(|s| (s.process.as_str(), s.divergence.op.as_str())).collect();
    assert_eq!(named, vec![("proc-a", "queue_archive"), ("proc-b", "pop_jobs")]);
    assert_eq!(stored[0].divergence, Divergence { seq: 1, ..d });
    let only = DivergenceQuery { op: Some("pop_jobs".into()), ..DivergenceQuery::default() };
    assert_eq!(record.divergences(&only).await.unwrap().len(), 1);
    assert_eq!(record.mark_repaired(&[stored[1].id], Some("checked")).await.unwrap(), 1);
    let open = DivergenceQuery { unrepaired: true, ..DivergenceQuery::default() };
    assert_eq!(record.divergences(&open).await.unwrap().len(), 1);
    let timeline = record.divergence_timeline(60).await.unwrap();
    assert_eq!(timeline.iter().map(|t| t.2).sum::<u64>(), 2, "{timeline:?}");
    assert!(timeline.iter().all(|t| t.0 % 60 == 0));
    let (first, last) = record.divergence_span().await.unwrap().unwrap();
    assert!(first <= last && last <= wall());
    // The live gate sees the window's counters of both processes.
    let e = record.live_evidence().await.unwrap();
    assert_eq!((e.matched, e.mismatched), (20, 2));
    fa.shutdown().await.unwrap();
    fb.shutdown().await.unwrap();
    target.drop_namespace().await.unwrap();
}

/// The target's writes fail (a trigger refuses every write of its archive requests) during
/// dual-write: callers are unaffected, the divergences reach the record, verify finds the
/// difference, repair from the record fixes it and marks the divergences repaired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn divergences_of_a_failing_target_are_stored_and_repair_fixes_what_they_name() {
    let (legacy, settings) = redis("mgrl");
    let target = pg("mgrl").await;
    let record = Record::of_postgres(&target);
    record.init("op").await.unwrap();
    record.set_stage(Stage::DualWrite, "op", "mirror", false).await.unwrap();
    let stage = Arc::new(RecordStage::new(record.clone(), DEFAULT_REFRESH));
    let log = Arc::new(DivergenceLog::with(Sampling::default(), vec![]));
    let bridge = BridgeDb::new(legacy.clone(), target.clone(), stage, log.clone());
    let flusher = LogFlusher::spawn(record.clone(), log.clone(), "test".into(), DEFAULT_FLUSH_INTERVAL);

    for r in bridge.queue_archives((1..=10).map(|i| archive_request(i, "p1", NOW)).collect(), NOW).await {
        r.unwrap();
    }
    refuse_writes(&target, "archive_request").await;
    for r in bridge.queue_archives((11..=14).map(|i| archive_request(i, "p1", NOW)).collect(), NOW).await {
        r.expect("legacy answers");
    }
    bridge.cancel_archive(3, NOW).await.expect("legacy answers");
    // One divergence naming nothing repairable.
    log.record(Divergence::new(
        "heartbeat",
        vec![Concern::Drive("d1".into())],
        Answer::NotAsked,
        Answer::NotAsked,
        NOW,
    ));
    sql(&target, "DROP TRIGGER refuse ON archive_request").await;
    flusher.flush().await.unwrap();

    assert_eq!(record.count_divergences(true).await.unwrap(), 6, "4 queued, 1 cancelled, 1 heartbeat");
    let options = VerifyOptions { page: 100, rechecks: 2 };
    let before = verify(legacy.clone(), target.clone(), &options).await.unwrap();
    let found: Vec<(StateKey, DiffKind)> = before.differences.iter().map(|d| (d.key.clone(), d.kind)).collect();
    assert_eq!(
        found,
        vec![
            (StateKey::Archive(3), DiffKind::Extra),
            (StateKey::Archive(11), DiffKind::Missing),
            (StateKey::Archive(12), DiffKind::Missing),
            (StateKey::Archive(13), DiffKind::Missing),
            (StateKey::Archive(14), DiffKind::Missing),
        ]
    );
    let report = repair_divergences(&record, &*legacy, &*target, NOW, 2).await.unwrap();
    assert_eq!(report.divergences, 6);
    assert_eq!(report.unrepairable, 1);
    assert_eq!(report.differing, 5);
    assert_eq!(report.repair, RepairReport { written: 4, deleted: 1 });
    assert!(verify(legacy.clone(), target.clone(), &options).await.unwrap().is_clean());
    assert_eq!(record.count_divergences(true).await.unwrap(), 0);
    let all = record.divergences(&DivergenceQuery::default()).await.unwrap();
    let heartbeat = all.iter().find(|s| s.divergence.op == "heartbeat").unwrap();
    assert!(heartbeat.repair_note.as_deref().unwrap().contains("nothing repairable (drive d1)"), "{heartbeat:?}");
    // Nothing left: a second repair does nothing.
    assert_eq!(repair_divergences(&record, &*legacy, &*target, NOW, 2).await.unwrap().divergences, 0);
    flusher.shutdown().await.unwrap();
    target.drop_namespace().await.unwrap();
    clear(settings).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bridge_reads_state_from_the_authoritative_side_and_mirrors_imports() {
    let (legacy, settings) = redis("mgbs");
    let target = pg("mgbs").await;
    legacy.queue_archive(archive_request(1, "p1", NOW), NOW).await.unwrap();
    let dual = BridgeDb::new(legacy.clone(), target.clone(), Arc::new(FixedStage(BStage::DualWrite)), Arc::default());
    let exported = dual.export_state(None, 100).await.unwrap();
    assert_eq!(exported, legacy.export_state(None, 100).await.unwrap(), "legacy answers in dual-write");
    assert_eq!(dual.state_len().await.unwrap(), legacy.state_len().await.unwrap());
    // An import through the bridge lands on both sides.
    dual.import_state(exported.clone(), NOW).await.unwrap();
    assert!(verify(legacy.clone(), target.clone(), &VerifyOptions::default()).await.unwrap().is_clean());
    assert_eq!(dual.log().stats()["import_state"].matched, 1);
    // In live the target answers: an item only it holds is read through the bridge.
    target.queue_archive(archive_request(2, "p1", NOW), NOW).await.unwrap();
    let live = BridgeDb::new(legacy.clone(), target.clone(), Arc::new(FixedStage(BStage::Live)), Arc::default());
    let keys = [StateKey::Archive(1), StateKey::Archive(2)];
    assert_eq!(live.read_state(&keys).await.unwrap().len(), 2);
    assert_eq!(dual.read_state(&keys).await.unwrap().len(), 1);
    // A deletion through the bridge is mirrored.
    live.delete_state(&[StateKey::Archive(1)], NOW).await.unwrap();
    assert!(legacy.read_state(&keys[..1]).await.unwrap().is_empty());
    assert!(target.read_state(&keys[..1]).await.unwrap().is_empty());
    target.drop_namespace().await.unwrap();
    clear(settings).await;
}

fn repack(vid: &str) -> RepackRequest {
    let policy = MountPolicy {
        name: "mp".into(),
        archive_priority: 1,
        archive_min_request_age: 0,
        retrieve_priority: 1,
        retrieve_min_request_age: 0,
    };
    RepackRequest::new(vid, 1, RepackType::Move, &policy, "file:///buffer", NOW)
}

/// Retrieve subrequest `id` of the repack of `vid` for file `afid` at `fseq`; provided files
/// are due at once.
fn sub(vid: &str, id: u64, afid: u64, fseq: u64, provided: bool) -> RetrieveRequest {
    let link = RepackLink {
        vid: vid.into(),
        subrequest_id: id,
        fseq,
        disk_file_id: format!("d{id}"),
        storage_class: "sc1".into(),
        buffer_file: buffer_file("file:///buffer", vid, fseq),
        archive_copies: vec![CopyRoute { copy_nb: 1, tape_pool: "p1".into() }],
        user_provided: provided,
    };
    RetrieveRequest {
        request_id: id,
        archive_file_id: afid,
        disk_instance: "eos".into(),
        requester: Requester { name: "repack".into(), group: "repack".into() },
        size: 10 + afid,
        dst_url: link.buffer_file.clone(),
        report_url: None,
        error_report_url: None,
        created_at: NOW - 10 + id as i64,
        activity: None,
        verify_only: false,
        disk_system: None,
        policy: QueuedPolicy { name: "mp".into(), priority: 1, min_request_age: 0 },
        copies: vec![RetrieveCopy {
            copy_nb: 1,
            vid: vid.into(),
            fseq,
            block_id: fseq * 2,
            retries: Default::default(),
        }],
        active_vid: vid.into(),
        status: if provided { RetrieveStatus::ToReportForTransfer } else { RetrieveStatus::ToTransfer },
        failure_reasons: vec![],
        repack: Some(link),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repack_and_its_subrequests_go_through_backfill_and_verify_clean() {
    let (legacy, settings) = redis("mgrp");
    legacy.queue_repack(repack("V1"), NOW).await.unwrap();
    legacy.queue_repack(repack("V2"), NOW).await.unwrap();
    let update = RepackUpdate {
        expansion_started: true,
        status: Some(RepackStatus::Starting),
        last_expanded_fseq: Some(3),
        counters: RepackCounters { files_to_retrieve: 3, files_to_archive: 3, ..Default::default() },
        ..Default::default()
    };
    let subs = vec![sub("V1", 11, 3, 1, false), sub("V1", 12, 1, 2, false), sub("V1", 13, 2, 3, true)];
    legacy.queue_repack_subrequests("V1", subs, &update, NOW).await.unwrap();
    legacy.queue_archive(archive_request(900, "p1", NOW), NOW).await.unwrap();
    let target = pg("mgrp").await;
    let record = Record::of_postgres(&target);
    record.init("op").await.unwrap();
    record.set_stage(Stage::DualWrite, "op", "mirror", false).await.unwrap();
    let done = backfill(&*legacy, &*target, &record, &BackfillOptions::default(), NOW, &mut |_| {}).await.unwrap();
    assert!(done.complete);
    let items = legacy.export_state(None, 100).await.unwrap();
    let kinds: Vec<&str> = items.iter().map(|i| i.key().kind()).collect();
    assert_eq!(kinds, ["repack", "repack", "archive", "retrieve", "retrieve", "retrieve"]);
    let report = verify(legacy.clone(), target.clone(), &VerifyOptions { page: 2, rechecks: 2 }).await.unwrap();
    assert!(report.is_clean(), "{:?}", report.differences);
    assert_eq!(report.items_b, 6);
    assert_eq!(target.repack("V1").await.unwrap(), legacy.repack("V1").await.unwrap());
    assert_eq!(target.repack_reports_due(10, NOW).await.unwrap(), legacy.repack_reports_due(10, NOW).await.unwrap());
    assert!(matches!(&target.read_state(&[StateKey::Retrieve(13)]).await.unwrap()[..], [StateItem::Retrieve { .. }]));
    assert_eq!(
        target.list_pending(JobKind::Retrieve, None).await.unwrap(),
        legacy.list_pending(JobKind::Retrieve, None).await.unwrap()
    );
    target.drop_namespace().await.unwrap();
    clear(settings).await;
}

//! Two scheduler processes on one objectstore (Redis) and one shared catalogue (PostgreSQL):
//! each has its own agent and its own catalogue connection, as separate frontends and tape
//! servers would. A mount one of them starts, and the tape it fills, are seen by the other's
//! decisions.

use std::sync::Arc;

use tapesched_objectstore::redis_store::{ClearOnDrop, RedisSettings, RedisStore};
use tapesched_objectstore::{ObjectstoreConfig, ObjectstoreDb};
use tapesched_postgres::{PgCatalogue, SchemaGuard};
use tapesched_scheduler::clock::ManualClock;
use tapesched_scheduler::db::Outcome;
use tapesched_scheduler::decision::{RejectReason, SchedulerConfig};
use tapesched_scheduler::scheduler::{ArchiveSubmission, Scheduler};
use tapesched_scheduler::types::*;
use tapesched_tests::{catalogue, T0};

async fn process(redis: &RedisSettings, url: &str, schema: &str, clock: &Arc<ManualClock>) -> Scheduler {
    let store = Arc::new(RedisStore::new(redis.clone()).unwrap());
    let db = Arc::new(ObjectstoreDb::new(store, ObjectstoreConfig::default()));
    let cat = Arc::new(PgCatalogue::connect(url, schema).await.expect("catalogue"));
    Scheduler::new(db, cat, clock.clone(), SchedulerConfig::default())
}

#[tokio::test]
async fn drive_states_and_tape_fill_are_shared_between_processes() {
    let url = tapesched_testkit::postgres_url().expect("a PostgreSQL server");
    let schema = tapesched_testkit::unique_name("shared");
    let _schema = SchemaGuard::new(url.clone(), schema.clone());
    let redis = RedisSettings::new(
        tapesched_testkit::redis_url().expect("a Redis server"),
        format!("{}:", tapesched_testkit::unique_name("shared")),
    );
    let _keys = ClearOnDrop(redis.clone());
    let (snapshot, files) = catalogue();
    PgCatalogue::connect(&url, &schema).await.unwrap().load(snapshot, files).await.unwrap();
    let clock = Arc::new(ManualClock::new(T0));
    let a = process(&redis, &url, &schema, &clock).await;
    let b = process(&redis, &url, &schema, &clock).await;

    for id in 1..=3 {
        let sub = ArchiveSubmission {
            archive_file_id: Some(id),
            disk_instance: Some("eos".into()),
            disk_file_id: None,
            requester: Requester { name: "alice".into(), group: "it".into() },
            storage_class: "sc1".into(),
            size: 10,
            created_at: Some(T0 - 100),
            report_url: None,
            error_report_url: None,
        };
        // Requests arrive through either frontend.
        if id % 2 == 0 { a.queue_archive(sub).await } else { b.queue_archive(sub).await }.unwrap();
    }
    let mut session = a.next_mount("d0", true).await.unwrap().expect("process A mounts");
    assert_eq!(session.spec.vid, "T1", "the fullest writable tape of p1");

    // Process B sees A's drive Starting on p1: the age criterion no longer applies and 3 files
    // halved do not warrant a second mount.
    let explained = b.explain_mount("d1").await.unwrap();
    let rejected: Vec<_> = explained.rejected.iter().map(|r| (r.tape_pool.as_deref(), r.reason)).collect();
    assert_eq!(rejected, vec![(Some("p1"), RejectReason::CriteriaNotMet)]);
    assert!(b.next_mount("d1", true).await.unwrap().is_none());

    // A writes the files: B's catalogue view shows the tape filled.
    let before = b.catalogue().snapshot().await.unwrap().tapes["T1"].clone();
    assert_eq!(a.pop_jobs(&mut session, 10, 1_000_000).await.unwrap().len(), 3);
    a.complete_jobs(&mut session, None, Outcome::Success, None).await.unwrap();
    let after = b.catalogue().snapshot().await.unwrap().tapes["T1"].clone();
    assert_eq!((after.last_fseq, after.data_on_tape_bytes), (before.last_fseq + 3, before.data_on_tape_bytes + 30));
    assert_eq!(b.catalogue().archive_file(2).await.unwrap().expect("recorded").copies[0].vid, "T1");
    a.end_mount(session).await.unwrap();
    let reports = b.report(tapesched_scheduler::db::ReportFilter::All, None, true).await.unwrap();
    assert_eq!(reports.iter().map(|r| r.archive_file_id).collect::<Vec<_>>(), vec![1, 2, 3]);
}

//! The migration bridge over real backends: mount ids stay unique when authority flips, the
//! fence of an authority flip (a mount id or jobs taken on the other side by a process in the
//! other authority) on memory and Redis legacy sides, the non-authoritative side failing (a PostgreSQL schema dropped under it, a Redis server that
//! cannot be reached) never fails callers and leaves divergences naming what it concerned, and
//! sampling and ignore rules count comparisons as documented.

use std::sync::Arc;

use tapesched_backends::bridge::{
    Answer, BridgeDb, Concern, DivergenceLog, FixedStage, IgnoreRule, ManualStage, Sampling, Stage,
};
use tapesched_backends::{database_url, redis_store};
use tapesched_bridge::{fence_rule, FENCE_MOUNT, FENCE_POP};
use tapesched_objectstore::redis_store::RedisSettings;
use tapesched_objectstore::{ObjectstoreConfig, ObjectstoreDb};
use tapesched_scenario::backend::OpenBackend;
use tapesched_scheduler::db::*;
use tapesched_scheduler::state::{StateItem, StateKey};
use tapesched_scheduler::types::*;
use tapesched_scheduler::ErrorKind;
use tapesched_testkit::workload::{archive_mount, archive_request, written};
use tapesched_tests::backend;

const T: i64 = 1_700_000_000;
const POOL: &str = "p1";

/// Mounts tape V1 for the first queue, if any.
fn first_queue(info: &MountInfo) -> Option<MountSpec> {
    info.potential_mounts.first().map(|_| archive_mount("V1", POOL, "d0"))
}

fn archives(ids: std::ops::RangeInclusive<u64>) -> Vec<ArchiveRequest> {
    ids.map(|i| archive_request(i, POOL, T)).collect()
}

#[tokio::test]
async fn open_mount_moves_the_id_allocator_of_every_backend() {
    for name in ["objectstore-memory", "objectstore-redis", "postgres"] {
        let open = backend(name).await;
        open.db.open_mount(41, &archive_mount("V1", POOL, "d0"), T).await.expect("open_mount");
        let decide = |_: &MountInfo| Some(archive_mount("V2", POOL, "d1"));
        let (id, _) = open.db.next_mount("lib", T, &decide).await.expect("next_mount").expect("a mount");
        assert_eq!(id, 42, "{name}: the next id is past the one opened");
        let e = open.db.open_mount(42, &archive_mount("V3", POOL, "d2"), T).await.expect_err("taken");
        assert_eq!(e.kind, ErrorKind::Conflict, "{name}");
        open.close().await;
    }
}

/// Drives one mount through the bridge: decide, pop `n` jobs, write them, end.
async fn one_mount(bridge: &BridgeDb, n: u64, fseq: u64) -> MountId {
    let (mount, _) = bridge.next_mount("lib", T, &first_queue).await.expect("next_mount").expect("a mount");
    let jobs = bridge.pop_jobs(mount, n, 1_000_000, T).await.expect("pop");
    assert_eq!(jobs.len() as u64, n);
    bridge.transfers_succeeded(mount, &written(&jobs, "V1", fseq), T).await.expect("succeeded");
    assert_eq!(bridge.end_mount(mount, T, &StayRouter).await.expect("end"), 0);
    mount
}

#[tokio::test]
async fn authority_flips_and_back_without_reusing_a_mount_id_or_diverging() {
    let (legacy, target) = (backend("objectstore-memory").await, backend("postgres").await);
    let stage = Arc::new(ManualStage::new(Stage::DualWrite));
    let log = Arc::new(DivergenceLog::new());
    let bridge = BridgeDb::new(legacy.db.clone(), target.db.clone(), stage.clone(), log.clone());
    assert!(bridge.queue_archives(archives(1..=6), T).await.iter().all(Result::is_ok));

    assert_eq!(one_mount(&bridge, 2, 1).await, 1, "dual-write: legacy decides");
    stage.set(Stage::Shadow).expect("shadow");
    assert_eq!(stage.set(Stage::Rampdown).expect_err("skips live").kind, ErrorKind::StateTransitionRefused);
    stage.set(Stage::Live).expect("live");
    assert_eq!(one_mount(&bridge, 2, 3).await, 2, "live: the target decides, past the mirrored id 1");
    stage.set(Stage::Shadow).expect("back to shadow");
    assert_eq!(one_mount(&bridge, 2, 5).await, 3, "shadow again: legacy decides, past the mirrored id 2");

    let due = bridge.reports_due(ReportFilter::All, 100, T).await.expect("reports");
    assert_eq!(due.len(), 6);
    let ids: Vec<RequestId> = due.iter().map(|r| r.request).collect();
    bridge.reports_delivered(&ids, T).await.expect("delivered");
    assert!(bridge.list_pending(JobKind::Archive, None).await.expect("pending").is_empty());
    for db in [&legacy.db, &target.db] {
        assert!(db.reports_due(ReportFilter::All, 100, T).await.expect("reports").is_empty(), "{}", db.name());
    }

    assert_eq!(log.divergences(), vec![], "no divergence");
    let stats = log.stats();
    assert_eq!(stats["open_mount"].matched, 3);
    assert_eq!(stats["pop_jobs"].matched, 3);
    assert_eq!(stats["next_mount"].compared, 2, "compared in live and shadow, not in dual-write");
    assert_eq!(stats["reports_due"].matched, 1);
    assert!(stats["queue_archive"].legacy_latency.count > 0 && stats["queue_archive"].target_latency.count > 0);
    legacy.close().await;
    target.close().await;
}

#[tokio::test]
async fn a_target_whose_schema_was_dropped_never_fails_callers() {
    let (legacy, target) = (backend("objectstore-memory").await, backend("postgres").await);
    let schema = target.namespace().expect("a schema").to_string();
    let url = database_url(None).expect("a server");
    tapesched_postgres::drop_schema(&url, &schema).await.expect("dropped");
    let bridge = BridgeDb::fixed(legacy.db.clone(), target.db.clone(), Stage::DualWrite);
    let log = bridge.log().clone();

    for r in archives(1..=3) {
        bridge.queue_archive(r, T).await.expect("legacy answers");
    }
    let (mount, _) = bridge.next_mount("lib", T, &first_queue).await.expect("next_mount").expect("a mount");
    let jobs = bridge.pop_jobs(mount, 10, 1_000_000, T).await.expect("pop");
    assert_eq!(jobs.len(), 3);
    bridge.transfers_succeeded(mount, &written(&jobs, "V1", 1), T).await.expect("succeeded");
    assert_eq!(bridge.reports_due(ReportFilter::All, 10, T).await.expect("reports").len(), 3);

    let ds = log.divergences();
    let failed_on_target = |op: &str, concern: &Concern| {
        ds.iter().any(|d| {
            d.op == op
                && d.concerns.contains(concern)
                && matches!(d.legacy, Answer::Value(_))
                && matches!(d.target, Answer::Error { .. })
                && d.stage == Stage::DualWrite
                && d.at == T
        })
    };
    for id in 1..=3 {
        assert!(failed_on_target("queue_archive", &Concern::Request(RequestId::Archive(id))), "request {id}: {ds:#?}");
        let job = Concern::Job(JobId { request: RequestId::Archive(id), copy_nb: 1 });
        assert!(failed_on_target("pop_jobs", &job), "job {id}: {ds:#?}");
        assert!(failed_on_target("transfers_succeeded", &job), "job {id}: {ds:#?}");
    }
    assert!(failed_on_target("open_mount", &Concern::Mount(mount)), "{ds:#?}");
    let stats = log.stats();
    assert_eq!((stats["queue_archive"].mismatched, stats["queue_archive"].target_errors), (3, 3));
    assert_eq!(stats["queue_archive"].legacy_errors, 0);
    assert!(!stats.contains_key("reports_due"), "reads are not compared in dual-write");
    legacy.close().await;
    target.close().await;
}

#[tokio::test]
async fn an_unreachable_legacy_never_fails_callers_in_live() {
    let store =
        redis_store(RedisSettings::new("redis://127.0.0.1:1/", "tapesched_bridge_unreachable:")).expect("store");
    let legacy: Arc<dyn SchedulerDb> = Arc::new(ObjectstoreDb::new(Arc::new(store), ObjectstoreConfig::default()));
    let target = backend("postgres").await;
    let bridge = BridgeDb::fixed(legacy, target.db.clone(), Stage::Live);
    let log = bridge.log().clone();

    let answers = bridge.queue_archives(archives(1..=2), T).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    let (mount, _) = bridge.next_mount("lib", T, &first_queue).await.expect("next_mount").expect("a mount");
    assert_eq!(bridge.pop_jobs(mount, 10, 1_000_000, T).await.expect("pop").len(), 2);
    assert_eq!(bridge.list_pending(JobKind::Archive, None).await.expect("pending"), vec![]);

    let ds = log.divergences();
    let failed_on_legacy = |op: &str, concern: &Concern| {
        ds.iter().any(|d| {
            d.op == op
                && d.concerns.contains(concern)
                && matches!(d.target, Answer::Value(_))
                && matches!(d.legacy, Answer::Error { kind: ErrorKind::Unavailable, .. })
        })
    };
    for id in 1..=2 {
        assert!(failed_on_legacy("queue_archive", &Concern::Request(RequestId::Archive(id))), "{ds:#?}");
    }
    assert!(failed_on_legacy("next_mount", &Concern::Mount(mount)), "{ds:#?}");
    assert!(failed_on_legacy("open_mount", &Concern::Mount(mount)), "{ds:#?}");
    assert!(failed_on_legacy("pop_jobs", &Concern::Mount(mount)), "{ds:#?}");
    assert!(ds.iter().any(|d| d.op == "list_pending"), "{ds:#?}");
    target.close().await;
}

#[tokio::test]
async fn sampling_and_ignore_rules_count_apart_from_matches() {
    let (legacy, target) = (
        tapesched_objectstore::memory_backend(ObjectstoreConfig::default()),
        tapesched_objectstore::memory_backend(ObjectstoreConfig::default()),
    );
    // A request the legacy side never saw: the target's listing differs.
    target.queue_archive(archive_request(99, POOL, T), T).await.expect("queued");
    let rule = IgnoreRule::new("extra-on-target", "the target holds a request queued before the test", |d| {
        d.op == "list_pending"
    });
    let log = Arc::new(DivergenceLog::with(Sampling::default().with("list_pending", 2), vec![rule]));
    let bridge = BridgeDb::new(legacy, target, Arc::new(FixedStage(Stage::Shadow)), log.clone());
    for _ in 0..4 {
        assert_eq!(bridge.list_pending(JobKind::Archive, None).await.expect("legacy's"), vec![]);
    }
    assert!(bridge.list_failed(JobKind::Archive).await.expect("failed").is_empty());
    let stats = log.stats();
    let lp = &stats["list_pending"];
    assert_eq!((lp.calls, lp.compared, lp.matched, lp.mismatched), (4, 2, 0, 0));
    assert_eq!(lp.ignored.get("extra-on-target"), Some(&2));
    assert_eq!(stats["list_failed"].matched, 1);
    assert_eq!(log.divergences(), vec![]);
    assert_eq!(log.ignored().len(), 2);
    assert_eq!(bridge.name(), "bridge(objectstore-memory->objectstore-memory, shadow)");
}

#[tokio::test]
async fn a_hung_legacy_delays_callers_by_the_timeout_at_most() {
    // A server that accepts connections (the kernel's backlog) and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("redis://{}/", silent.local_addr().expect("address"));
    let store = redis_store(RedisSettings::new(url, "tapesched_bridge_hung:")).expect("store");
    let legacy: Arc<dyn SchedulerDb> = Arc::new(ObjectstoreDb::new(Arc::new(store), ObjectstoreConfig::default()));
    let target = backend("postgres").await;
    let bridge = BridgeDb::fixed(legacy, target.db.clone(), Stage::Live)
        .with_other_timeout(Some(std::time::Duration::from_millis(200)));
    bridge.queue_archive(archive_request(1, POOL, T), T).await.expect("the target answers");
    let ds = bridge.log().divergences();
    assert_eq!(ds.len(), 1, "{ds:#?}");
    assert_eq!(ds[0].concerns, vec![Concern::Request(RequestId::Archive(1))]);
    assert!(
        matches!(&ds[0].legacy, Answer::Error { kind: ErrorKind::Unavailable, message } if message.contains("no answer within 200 ms")),
        "{ds:#?}"
    );
    target.close().await;
}

/// A bridge with legacy authoritative (dual-write) over `legacy_name` and PostgreSQL, logging
/// with the fence's ignore rule as the workers do; and both sides.
async fn fenced(legacy_name: &str) -> (BridgeDb, Arc<DivergenceLog>, OpenBackend, OpenBackend) {
    let (legacy, target) = (backend(legacy_name).await, backend("postgres").await);
    let log = Arc::new(DivergenceLog::with(Sampling::default(), vec![fence_rule()]));
    let stage = Arc::new(FixedStage(Stage::DualWrite));
    (BridgeDb::new(legacy.db.clone(), target.db.clone(), stage, log.clone()), log, legacy, target)
}

#[tokio::test]
async fn a_mount_id_taken_on_the_other_side_ends_the_mount_unused() {
    for name in ["objectstore-memory", "objectstore-redis"] {
        let (bridge, log, legacy, target) = fenced(name).await;
        assert!(bridge.queue_archives(archives(1..=3), T).await.iter().all(Result::is_ok));
        // A process that already sees the target as authoritative took mount 1 there.
        let theirs = archive_mount("V9", POOL, "d9");
        target.db.open_mount(1, &theirs, T).await.expect("mount 1 on the target");

        let fenced = bridge.next_mount("lib", T, &first_queue).await.expect("next_mount");
        assert_eq!(fenced, None, "{name}: the drive asks again");
        let ignored = log.ignored();
        assert_eq!(ignored.len(), 1, "{name}: {ignored:#?}");
        let d = &ignored[0];
        assert_eq!(d.op, FENCE_MOUNT);
        assert_eq!(d.concerns, vec![Concern::Mount(1), Concern::Drive("d0".into())], "{name}");
        assert!(matches!(&d.target, Answer::Error { kind: ErrorKind::Conflict, .. }), "{name}: {d:#?}");
        assert_eq!(d.ignored_by.as_deref(), Some("authority-flip-fence"), "{name}");
        assert_eq!(log.divergences(), vec![], "{name}: no mismatch");
        assert_eq!(log.stats()[FENCE_MOUNT].ignored.get("authority-flip-fence"), Some(&1), "{name}");

        // Legacy's mount 1 was ended unused; the target's is theirs; the next mount is past both.
        let on_legacy = legacy.db.read_state(&[StateKey::Mount(1)]).await.expect("legacy's mounts");
        assert!(on_legacy.is_empty(), "{name}: {on_legacy:?}");
        let on_target = target.db.read_state(&[StateKey::Mount(1)]).await.expect("the target's mounts");
        assert!(matches!(on_target.as_slice(), [StateItem::Mount { spec, .. }] if *spec == theirs), "{name}");
        assert_eq!(one_mount(&bridge, 3, 1).await, 2, "{name}");
        assert_eq!(log.ignored().len(), 1, "{name}: fenced once");
        assert_eq!(log.divergences(), vec![], "{name}");
        legacy.close().await;
        target.close().await;
    }
}

#[tokio::test]
async fn jobs_held_by_another_mount_on_the_other_side_go_back_to_their_queue() {
    for name in ["objectstore-memory", "objectstore-redis"] {
        let (bridge, log, legacy, target) = fenced(name).await;
        assert!(bridge.queue_archives(archives(1..=4), T).await.iter().all(Result::is_ok));
        // A process that already sees the target as authoritative gave jobs 1 and 2 to its mount.
        let job = |id: u64| JobId { request: RequestId::Archive(id), copy_nb: 1 };
        target.db.open_mount(50, &archive_mount("V9", POOL, "d9"), T).await.expect("mount 50 on the target");
        let theirs = target.db.claim_jobs(50, &[job(1), job(2)], T).await.expect("claimed on the target");
        assert_eq!(theirs.len(), 2, "{name}");

        let (mount, _) = bridge.next_mount("lib", T, &first_queue).await.expect("next_mount").expect("a mount");
        let popped = bridge.pop_jobs(mount, 10, u64::MAX, T).await.expect("pop");
        let ids: Vec<u64> = popped.iter().map(MountJob::archive_file_id).collect();
        assert_eq!(ids, vec![3, 4], "{name}: only the jobs no other mount holds are handed out");
        let ignored = log.ignored();
        assert_eq!(ignored.len(), 1, "{name}: {ignored:#?}");
        let d = &ignored[0];
        assert_eq!(d.op, FENCE_POP);
        assert_eq!(d.concerns, vec![Concern::Mount(mount), Concern::Job(job(1)), Concern::Job(job(2))], "{name}");
        assert_eq!(d.ignored_by.as_deref(), Some("authority-flip-fence"), "{name}");
        assert_eq!(log.divergences(), vec![], "{name}: no mismatch");
        assert_eq!(log.stats()[FENCE_POP].ignored.get("authority-flip-fence"), Some(&1), "{name}");

        // On legacy they are queued again, not held by this mount.
        let pending = legacy.db.list_pending(JobKind::Archive, None).await.expect("pending");
        let queued: Vec<u64> = pending.iter().map(|p| p.archive_file_id).collect();
        assert_eq!(queued, vec![1, 2], "{name}: {pending:?}");
        legacy.close().await;
        target.close().await;
    }
}

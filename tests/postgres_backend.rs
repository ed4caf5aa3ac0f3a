//! PostgreSQL backend tests beyond the conformance suite:
//!
//! - a differential test: seeded random workloads (repack included) played through the
//!   `Scheduler` on `objectstore-memory`, `postgres` and `objectstore-redis` must give identical
//!   answers at every step (errors compared on their kind);
//! - the incrementally kept queue summaries equal a rebuild from the job rows, after a whole
//!   workload and after each claim (oldest/youngest kept or read again as jobs leave);
//! - a process's cached summaries follow every change other processes commit, in whatever order
//!   they commit, and after tombstones were pruned;
//! - hostile names (quotes, backslashes, unicode, 10 kB) are plain bound values;
//! - migrations are idempotent, a schema from a newer build is refused, and an unreachable server
//!   is `unavailable`.

use std::sync::Arc;

use tapesched_postgres::{PgConfig, PgSchedulerDb, SchemaGuard};
use tapesched_scheduler::catalogue::memory::MemoryCatalogue;
use tapesched_scheduler::clock::{Clock, ManualClock};
use tapesched_scheduler::db::{JobKind, MountJob, Outcome, ReportFilter, SchedulerDb};
use tapesched_scheduler::decision::SchedulerConfig;
use tapesched_scheduler::repack::RepackType;
use tapesched_scheduler::scheduler::Scheduler;
use tapesched_scheduler::scheduler::{
    ArchiveSubmission, RepackSubmission, RetrieveSubmission, StateChangeMode, TapeSession,
};
use tapesched_scheduler::types::*;
use tapesched_scheduler::ErrorKind;
use tapesched_tests::Fixture;

/// The drives' sessions of one side of the differential test.
struct Side {
    f: Fixture,
    sessions: [Option<TapeSession>; 3],
}

fn ids(jobs: &[MountJob]) -> Vec<u64> {
    jobs.iter().map(MountJob::archive_file_id).collect()
}

/// An answer as the sides are compared on it: the value, or only the error's kind (each backend
/// words its messages, and keeps its own underlying errors, as it likes).
fn shown<T: std::fmt::Debug>(r: tapesched_scheduler::Result<T>) -> String {
    format!("{:?}", r.map_err(|e| e.kind))
}

/// Plays op number `op` (drawn by the caller) on a side and describes what came out.
async fn play(side: &mut Side, op: u64, a: u64, b: u64, next_id: u64) -> String {
    let s = &side.f.scheduler;
    let drive = (a % 3) as usize;
    match op {
        0..=3 => {
            let sc = if b.is_multiple_of(3) { "sc2" } else { "sc1" };
            let sub = ArchiveSubmission {
                archive_file_id: Some(next_id),
                disk_instance: Some("eos".into()),
                disk_file_id: None,
                requester: Requester { name: "alice".into(), group: "it".into() },
                storage_class: sc.into(),
                size: 1 + b % 500,
                created_at: Some(side.f.clock.now() - (b % 100) as i64),
                report_url: Some("eos://ok".into()),
                error_report_url: b.is_multiple_of(2).then(|| "eos://err".to_string()),
            };
            shown(s.queue_archive(sub).await)
        }
        4 | 5 => {
            let sub = RetrieveSubmission {
                archive_file_id: 100 + b % 6,
                requester: Some(Requester { name: "bob".into(), group: "it".into() }),
                report_url: b.is_multiple_of(2).then(|| "eos://done".to_string()),
                error_report_url: Some("eos://err".into()),
                ..RetrieveSubmission::default()
            };
            shown(s.queue_retrieve(sub).await.map(|(_, vid)| vid))
        }
        6 | 7 => {
            if side.sessions[drive].as_ref().is_some_and(|x| !x.popped.is_empty()) {
                return "busy".into();
            }
            if let Some(old) = side.sessions[drive].take() {
                s.end_mount(old).await.expect("end");
            }
            let got = s.next_mount(&format!("d{drive}"), true).await;
            let shown = format!(
                "{:?}",
                got.as_ref().map(|m| m.as_ref().map(|m| (m.spec.mount_type, m.spec.vid.clone()))).map_err(|e| e.kind)
            );
            side.sessions[drive] = got.ok().flatten();
            shown
        }
        8..=10 => match side.sessions[drive].as_mut() {
            Some(sess) => shown(s.pop_jobs(sess, 1 + b % 4, 50 + b % 700).await.map(|j| ids(&j))),
            None => "no session".into(),
        },
        11..=13 => match side.sessions[drive].as_mut() {
            Some(sess) if !sess.popped.is_empty() => {
                let outcome = if b.is_multiple_of(3) { Outcome::Failure } else { Outcome::Success };
                let first = [sess.popped[0].archive_file_id()];
                let which = b.is_multiple_of(2).then_some(&first[..]);
                shown(s.complete_jobs(sess, which, outcome, Some("write error")).await)
            }
            _ => "nothing popped".into(),
        },
        14 => match side.sessions[drive].take() {
            Some(sess) => shown(s.end_mount(sess).await),
            None => "no session".into(),
        },
        15 => match side.sessions[drive].take() {
            Some(sess) => format!("{} {}", shown(s.crash_session(sess).await), shown(s.garbage_collect().await)),
            None => shown(s.garbage_collect().await),
        },
        16 => {
            let deliver = !b.is_multiple_of(3);
            let reports = s.report(ReportFilter::All, Some(1 + b % 3), deliver).await;
            shown(reports.map(|r| r.iter().map(|r| (r.archive_file_id, r.outcome)).collect::<Vec<_>>()))
        }
        17 => format!(
            "{} {} {} {}",
            shown(s.list_pending(JobKind::Archive, None, None).await),
            shown(s.list_pending(JobKind::Retrieve, None, None).await),
            shown(s.list_failed(JobKind::Archive).await),
            shown(s.list_failed(JobKind::Retrieve).await)
        ),
        18 => shown(s.show_queues().await),
        19 => shown(s.cancel_archive(1 + b % next_id.max(1)).await),
        20 => shown(s.cancel_retrieve(100 + b % 6, None).await),
        21 => {
            side.f.clock.set(side.f.clock.now() + (b % 50) as i64);
            shown(s.explain_mount(&format!("d{drive}")).await.map(|d| d.chosen))
        }
        // Repack of T1 (files 101-105 only there, file 100's copy 1): REPACKING, then queued.
        22 => {
            let state = s.change_tape_state("T1", TapeState::Repacking, Some("repack"), StateChangeMode::All).await;
            let cleaned = s.cleanup_queues().await;
            let sub = RepackSubmission {
                vid: "T1".into(),
                repack_type: if b.is_multiple_of(2) { RepackType::Move } else { RepackType::MoveAndAddCopies },
                mount_policy: "repack".into(),
                buffer_url: Some("file:///buffer".into()),
                no_recall: false,
                max_files: b.is_multiple_of(3).then_some(1 + b % 4),
                storage_class: None,
            };
            format!("{} {} {}", shown(state.map(|c| c.state)), shown(cleaned), shown(s.queue_repack(sub).await))
        }
        23 => {
            // Time passes, so the subrequests grow old enough to warrant a mount.
            side.f.clock.set(side.f.clock.now() + 1 + (b % 20) as i64);
            shown(s.expand_repacks(Some(1 + b % 2)).await)
        }
        24 => {
            let done = s.process_repack_reports(Some(1 + b % 4)).await;
            shown(done.map(|r| r.iter().map(|r| (r.archive_file_id, r.kind(), r.outcome)).collect::<Vec<_>>()))
        }
        // Cancelled one time in five (else the repack seldom lives long enough to report).
        25 if b.is_multiple_of(5) => {
            let cancelled = s.cancel_repack("T1").await;
            let state = s.change_tape_state("T1", TapeState::Active, None, StateChangeMode::All).await;
            format!("{} {}", shown(cancelled), shown(state.map(|c| c.state)))
        }
        _ => {
            let repacks = s.show_repacks().await;
            shown(repacks.map(|all| {
                all.iter().map(|r| (r.vid.clone(), r.status, r.counters, r.last_expanded_fseq)).collect::<Vec<_>>()
            }))
        }
    }
}

/// What a workload really did, counted from the reference side's answers: a run whose every
/// step erred would give identical (error) answers everywhere and prove nothing.
#[derive(Debug, Default, Clone, Copy)]
struct Work {
    queued: u64,
    mounted: u64,
    claimed: u64,
    completed: u64,
    failed: u64,
    reported: u64,
    repacks: u64,
    repack_reports: u64,
}

impl Work {
    fn count(&mut self, op: u64, b: u64, answer: &str) {
        match op {
            0..=3 if answer.starts_with("Ok(") => self.queued += 1,
            6 | 7 if answer.starts_with("Ok(Some(") => self.mounted += 1,
            8..=10 if answer.starts_with("Ok([") && answer != "Ok([])" => self.claimed += 1,
            11..=13 if answer == "Ok(())" && b.is_multiple_of(3) => self.failed += 1,
            11..=13 if answer == "Ok(())" => self.completed += 1,
            16 if answer.starts_with("Ok([(") => self.reported += 1,
            22 if answer.ends_with("Ok(())") => self.repacks += 1,
            24 if answer.starts_with("Ok([(") => self.repack_reports += 1,
            _ => {}
        }
    }

    fn add(&mut self, o: Work) {
        self.queued += o.queued;
        self.mounted += o.mounted;
        self.claimed += o.claimed;
        self.completed += o.completed;
        self.failed += o.failed;
        self.reported += o.reported;
        self.repacks += o.repacks;
        self.repack_reports += o.repack_reports;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_workloads_give_identical_answers_on_every_backend() {
    let mut total = Work::default();
    for seed in 1..=6u64 {
        let mut work = Work::default();
        let mut sides = Vec::new();
        for backend in ["objectstore-memory", "postgres", "objectstore-redis"] {
            // Repack passes of two files, so expansion takes several.
            let config = SchedulerConfig { repack_files_per_pass: 2, ..SchedulerConfig::default() };
            sides
                .push((backend, Side { f: Fixture::with_config(backend, config).await, sessions: [None, None, None] }));
        }
        let mut rng = tapesched_testkit::SeededRng(seed);
        let mut next_id = 1;
        for step in 0..250 {
            let (op, a, b) = (rng.below(27), rng.next_u64(), rng.next_u64());
            let mut answers = Vec::new();
            for (backend, side) in sides.iter_mut() {
                answers.push((*backend, play(side, op, a, b, next_id).await));
            }
            for (backend, answer) in &answers[1..] {
                assert_eq!(
                    &answers[0].1, answer,
                    "seed {seed}, step {step}, op {op}: {} (left) and {backend} (right) differ",
                    answers[0].0
                );
            }
            work.count(op, b, &answers[0].1);
            if op <= 3 {
                next_id += 1;
            }
        }
        println!("seed {seed}: {work:?}");
        assert!(work.queued > 0 && work.claimed > 0, "seed {seed}: nothing queued or claimed: {work:?}");
        total.add(work);
        let reference = sides[0].1.f.db.mount_info(0).await.unwrap();
        for (backend, side) in &sides[1..] {
            assert_eq!(reference, side.f.db.mount_info(0).await.unwrap(), "seed {seed}, {backend}");
        }
    }
    let Work { queued, mounted, claimed, completed, failed, reported, repacks, repack_reports } = total;
    assert!(
        [queued, mounted, claimed, completed, failed, reported, repacks, repack_reports].iter().all(|n| *n > 0),
        "the workloads did too little real work to compare: {total:?}"
    );
}

async fn fresh() -> (PgSchedulerDb, SchemaGuard) {
    let (db, guard, _) = fresh_named().await;
    (db, guard)
}

async fn fresh_named() -> (PgSchedulerDb, SchemaGuard, String) {
    let url = tapesched_testkit::postgres_url().expect("a PostgreSQL server");
    let schema = tapesched_testkit::unique_name("pgb");
    let guard = SchemaGuard::new(url.clone(), schema.clone());
    let db = PgSchedulerDb::connect(PgConfig { max_connections: 2, ..PgConfig::new(url, schema.clone()) })
        .await
        .expect("backend");
    (db, guard, schema)
}

fn hostile_request(id: u64, pool: &str) -> ArchiveRequest {
    ArchiveRequest {
        archive_file_id: id,
        disk_instance: "in'st\"ance\\".into(),
        disk_file_id: "x".repeat(10_240),
        requester: Requester { name: "'; DROP TABLE archive_job; --".into(), group: "grüppe ✓ \\N".into() },
        storage_class: "sc$1".into(),
        size: 10,
        created_at: 5,
        report_url: Some("%s %n {} $$ \\\\".into()),
        error_report_url: None,
        policy: QueuedPolicy { name: "pol\"icy".into(), priority: u64::MAX, min_request_age: 3 },
        jobs: vec![ArchiveJob {
            copy_nb: 1,
            tape_pool: pool.into(),
            status: ArchiveJobStatus::ToTransfer,
            retries: RetryCounters::default(),
            failure_reasons: vec!["a\\b".into(), "é".into()],
            written: None,
        }],
        report_decided: false,
        repack: None,
    }
}

#[tokio::test]
async fn hostile_names_are_plain_values() {
    let (db, _guard) = fresh().await;
    let pool = "p'o\"o\\l-ü-✓";
    let req = hostile_request(1, pool);
    db.queue_archive(req.clone(), 10).await.expect("queued");
    let info = db.mount_info(10).await.expect("info");
    assert_eq!(info.potential_mounts.len(), 1);
    assert_eq!(info.potential_mounts[0].tape_pool.as_deref(), Some(pool));
    assert_eq!(info.potential_mounts[0].priority, u64::MAX);
    assert_eq!(info.potential_mounts[0].policy_counts.get("pol\"icy"), Some(&1));
    let pending = db.list_pending(JobKind::Archive, Some(pool)).await.expect("pending");
    assert_eq!(pending.len(), 1);
    let spec = tapesched_scheduler::db::MountSpec {
        mount_type: MountType::ArchiveForUser,
        vid: "V'1".into(),
        tape_pool: pool.into(),
        vo: "v\"o".into(),
        drive: "d\\0".into(),
        logical_library: "l'ib".into(),
    };
    db.open_mount(7, &spec, 10).await.expect("mount");
    let jobs = db.pop_jobs(7, 10, 100, 10).await.expect("pop");
    let MountJob::Archive { request, .. } = &jobs[0] else { panic!("archive") };
    assert_eq!(*request, req, "every hostile value comes back unchanged");
    let e = db.queue_archive(hostile_request(1, pool), 10).await.expect_err("duplicate");
    assert_eq!(e.kind, ErrorKind::Conflict);
    let mut nul = hostile_request(2, pool);
    nul.requester.name = "nul\0byte".into();
    let e = db.queue_archive(nul, 10).await.expect_err("NUL");
    assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
    assert_eq!(db.list_pending(JobKind::Archive, None).await.unwrap().len(), 0, "nothing half-applied");
}

#[tokio::test]
async fn summaries_kept_incrementally_equal_a_rebuild() {
    let (db, _guard) = fresh().await;
    let db = Arc::new(db);
    let (snapshot, files) = tapesched_tests::catalogue();
    let catalogue = Arc::new(MemoryCatalogue::new(snapshot, files).unwrap());
    let clock = Arc::new(ManualClock::new(tapesched_tests::T0));
    let scheduler = Scheduler::new(db.clone(), catalogue, clock, SchedulerConfig::default());
    let f = FixtureLike { scheduler, db: db.clone() };
    let mut rng = tapesched_testkit::SeededRng(42);
    for id in 1..=60u64 {
        let sub = ArchiveSubmission {
            archive_file_id: Some(id),
            disk_instance: Some("eos".into()),
            disk_file_id: None,
            requester: Requester { name: "alice".into(), group: "it".into() },
            storage_class: if id.is_multiple_of(3) { "sc2".into() } else { "sc1".into() },
            size: 1 + rng.below(100),
            created_at: Some(1_700_000_000 - rng.below(1000) as i64),
            report_url: None,
            error_report_url: None,
        };
        f.scheduler.queue_archive(sub).await.unwrap();
    }
    for id in 100..=105 {
        let sub = RetrieveSubmission {
            archive_file_id: id,
            requester: Some(Requester { name: "bob".into(), group: "it".into() }),
            ..RetrieveSubmission::default()
        };
        f.scheduler.queue_retrieve(sub).await.unwrap();
    }
    let mut s = f.scheduler.next_mount("d0", true).await.unwrap().expect("mount");
    f.scheduler.pop_jobs(&mut s, 7, 1_000_000).await.unwrap();
    f.scheduler.complete_jobs(&mut s, None, Outcome::Failure, Some("x")).await.unwrap();
    f.scheduler.pop_jobs(&mut s, 5, 1_000_000).await.unwrap();
    f.scheduler.crash_session(s).await.unwrap();
    f.scheduler.garbage_collect().await.unwrap();
    f.scheduler.cancel_archive(9).await.unwrap();
    let incremental = f.db.mount_info(0).await.unwrap();
    assert!(!incremental.potential_mounts.is_empty());
    db.rebuild_summaries(1_700_000_000).await.unwrap();
    assert_eq!(db.mount_info(0).await.unwrap(), incremental);
}

fn plain_request(id: u64, pool: &str) -> ArchiveRequest {
    let mut r = hostile_request(id, pool);
    r.disk_instance = "eos".into();
    r.disk_file_id = id.to_string();
    r.requester = Requester { name: "u".into(), group: "g".into() };
    r.policy = QueuedPolicy { name: format!("mp{}", id % 3), priority: id % 5, min_request_age: id % 7 };
    r.size = 10 + id;
    r.created_at = 1000 + (id as i64 * 7) % 50;
    r
}

#[tokio::test]
async fn cached_summaries_follow_every_change_of_other_processes() {
    let (reader, _guard, schema) = fresh_named().await;
    let url = tapesched_testkit::postgres_url().unwrap();
    let open = || PgSchedulerDb::connect(PgConfig { max_connections: 2, ..PgConfig::new(&url, &schema) });
    let writer = open().await.unwrap();
    // What a process that never read before sees.
    let fresh_view = || async { open().await.unwrap().mount_info(0).await.unwrap() };
    assert!(reader.mount_info(0).await.unwrap().potential_mounts.is_empty());
    let spec = |pool: &str| tapesched_scheduler::db::MountSpec {
        mount_type: MountType::ArchiveForUser,
        vid: "V1".into(),
        tape_pool: pool.into(),
        vo: "vo".into(),
        drive: "d".into(),
        logical_library: "lib".into(),
    };
    let mut id = 0;
    for round in 0..4u64 {
        // Queue on four pools, empty one (its summary row is deleted), and requeue on another.
        for pool in ["p0", "p1", "p2", "p3"] {
            for _ in 0..3 + round {
                id += 1;
                writer.queue_archive(plain_request(id, pool), 1000).await.unwrap();
            }
        }
        let mount = 10 + round;
        writer.open_mount(mount, &spec(&format!("p{}", round % 4)), 1000).await.unwrap();
        assert!(!writer.pop_jobs(mount, 1000, u64::MAX, 1000).await.unwrap().is_empty());
        assert_eq!(reader.mount_info(0).await.unwrap(), fresh_view().await, "round {round}, after emptying a pool");
        writer.end_mount(mount, 1000, &tapesched_scheduler::db::StayRouter).await.unwrap();
        assert_eq!(reader.mount_info(0).await.unwrap(), fresh_view().await, "round {round}, after requeueing");
    }

    // Two transactions commit in the opposite order of their start: the reader's read in between
    // sees the second; its next read must see the first too.
    let mut first = writer.pool().begin().await.unwrap();
    tapesched_postgres::sqlx::query("UPDATE queue_summary SET bytes = bytes + 1 WHERE container = 'p1'")
        .execute(&mut *first)
        .await
        .unwrap();
    let mut second = writer.pool().begin().await.unwrap();
    tapesched_postgres::sqlx::query("UPDATE queue_summary SET bytes = bytes + 2 WHERE container = 'p2'")
        .execute(&mut *second)
        .await
        .unwrap();
    second.commit().await.unwrap();
    let between = reader.mount_info(0).await.unwrap();
    let bytes = |info: &tapesched_scheduler::db::MountInfo, pool: &str| {
        info.potential_mounts.iter().find(|m| m.tape_pool.as_deref() == Some(pool)).map(|m| m.bytes_queued)
    };
    first.commit().await.unwrap();
    let after = reader.mount_info(0).await.unwrap();
    assert_eq!(bytes(&after, "p1"), bytes(&between, "p1").map(|b| b + 1), "the earlier-started commit is seen");
    assert_eq!(after, fresh_view().await);

    // Tombstones pruned past the reader's last read: it reads everything again.
    writer.open_mount(99, &spec("p3"), 1000).await.unwrap();
    writer.pop_jobs(99, 1000, u64::MAX, 1000).await.unwrap();
    tapesched_postgres::sqlx::query("DELETE FROM queue_summary_gone").execute(writer.pool()).await.unwrap();
    tapesched_postgres::sqlx::query("UPDATE queue_summary_pruned SET upto = pg_current_xact_id()")
        .execute(writer.pool())
        .await
        .unwrap();
    let pruned = reader.mount_info(0).await.unwrap();
    assert!(pruned.potential_mounts.iter().all(|m| m.tape_pool.as_deref() != Some("p3")), "p3 was emptied");
    assert_eq!(pruned, fresh_view().await);
}

struct FixtureLike {
    scheduler: Scheduler,
    db: Arc<PgSchedulerDb>,
}

#[tokio::test]
async fn migrations_are_idempotent_and_newer_schemas_are_refused() {
    let url = tapesched_testkit::postgres_url().unwrap();
    let schema = tapesched_testkit::unique_name("mig");
    let _guard = SchemaGuard::new(url.clone(), schema.clone());
    let first = tapesched_postgres::migrate(&url, &schema).await.unwrap();
    assert_eq!(first.applied, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    let second = tapesched_postgres::migrate(&url, &schema).await.unwrap();
    assert!(second.applied.is_empty());
    assert_eq!(second.already_applied, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    let db = PgSchedulerDb::connect(PgConfig::new(url.clone(), schema.clone())).await.unwrap();
    tapesched_postgres::sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (999, 'from the future', true, '\\x00', 0)",
    )
    .execute(db.pool())
    .await
    .unwrap();
    let e = tapesched_postgres::migrate(&url, &schema).await.expect_err("newer schema");
    assert!(e.message.contains("newer tapesched") && e.message.contains("999"), "{e}");
    assert!(PgSchedulerDb::connect(PgConfig::new(url, schema)).await.is_err());
    assert_eq!(tapesched_postgres::check_schema_name("a\"; DROP").unwrap_err().kind, ErrorKind::InvalidArgument);
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let port = tapesched_testkit::free_port().unwrap();
    let config = PgConfig {
        acquire_timeout: std::time::Duration::from_secs(2),
        ..PgConfig::new(format!("postgres://postgres@127.0.0.1:{port}/postgres"), "nowhere")
    };
    let e = PgSchedulerDb::connect(config).await.err().expect("no server");
    assert_eq!(e.kind, ErrorKind::Unavailable, "{e}");
}

/// A schema at version 3 whose mount holds jobs (recorded by `mount_id` on the job rows) keeps
/// them through the upgrade to version 4 (recorded per claim) and later ones: ending the mount
/// requeues them.
#[tokio::test]
async fn an_upgrade_keeps_what_mounts_hold() {
    use tapesched_postgres::sqlx;
    let url = tapesched_testkit::postgres_url().unwrap();
    let schema = tapesched_testkit::unique_name("upg");
    let _guard = SchemaGuard::new(url.clone(), schema.clone());
    {
        let pool = tapesched_postgres::schema::connect_pool(&url, &schema, 1, std::time::Duration::from_secs(30))
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}"))).execute(&pool).await.unwrap();
        tapesched_postgres::schema::MIGRATOR.run_to(3, &pool).await.unwrap();
        for statement in [
            "INSERT INTO mount (mount_id, mount_type, vid, tape_pool, vo, drive, logical_library, created_at, heartbeat)
             VALUES (7, 'ArchiveForUser', 'V1', 'p1', 'vo', 'd1', 'lib', 100, 100)",
            "INSERT INTO archive_request (archive_file_id, disk_instance, disk_file_id, requester_name, requester_group,
                 storage_class, size, created_at, policy_name, priority, min_request_age, copies)
             SELECT i, 'eos', i::text, 'u', 'g', 'sc', 10, 100, 'pol', 1, 0, 1 FROM generate_series(1, 3) i",
            // Jobs 1 and 2 held by mount 7 (taken by two claims), job 3 by a mount that is gone.
            "INSERT INTO archive_job (archive_file_id, copy_nb, position, tape_pool, status, size, created_at,
                 mount_id, owned_op, owned_rank)
             VALUES (1, 1, 0, 'p1', 0, 10, 100, 7, 5, 1), (2, 1, 0, 'p1', 0, 10, 100, 7, 4, 1),
                    (3, 1, 0, 'p1', 0, 10, 100, 8, 6, 1)",
        ] {
            sqlx::query(statement).execute(&pool).await.unwrap();
        }
    }
    let report = tapesched_postgres::migrate(&url, &schema).await.unwrap();
    assert_eq!(report.applied, vec![4, 5, 6, 7, 8, 9, 10, 11, 12]);
    let db = PgSchedulerDb::connect(PgConfig::new(url, schema)).await.unwrap();
    let claims: Vec<(i64, i64, Vec<i64>)> =
        sqlx::query_as("SELECT mount_id, op, archive_ids FROM mount_claim ORDER BY mount_id, op")
            .fetch_all(db.pool())
            .await
            .unwrap();
    assert_eq!(claims, vec![(7, 4, vec![2]), (7, 5, vec![1])]);
    let requeued = db.end_mount(7, 200, &tapesched_scheduler::db::StayRouter).await.unwrap();
    assert_eq!(requeued, 2);
    let pending = db.list_pending(JobKind::Archive, Some("p1")).await.unwrap();
    let order: Vec<u64> = pending.iter().map(|p| p.archive_file_id).collect();
    assert_eq!(order, vec![2, 1], "requeued in the order the mount took them");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM mount_claim").fetch_one(db.pool()).await.unwrap();
    assert_eq!(left, 0, "claims go with their mount");
}

/// A queue's oldest and youngest creation times after each claim equal a rebuild from the job
/// rows: a claim that takes only jobs strictly inside the bounds keeps them, one that takes a job
/// at a bound (unique or shared with jobs left behind) makes them be read again, and an emptied
/// queue has none.
#[tokio::test]
async fn oldest_and_youngest_follow_every_claim() {
    let (db, _guard) = fresh().await;
    // Arrival (claim) order is not creation order; 1000 and 1090 are each held by one job, 1040
    // by two.
    let created = [1040, 1050, 1000, 1060, 1040, 1020, 1090, 1030, 1070, 1010];
    for (i, at) in created.iter().enumerate() {
        let mut r = plain_request(i as u64 + 1, "p");
        r.created_at = *at;
        db.queue_archive(r, 2000).await.unwrap();
    }
    let spec = tapesched_scheduler::db::MountSpec {
        mount_type: MountType::ArchiveForUser,
        vid: "V1".into(),
        tape_pool: "p".into(),
        vo: "vo".into(),
        drive: "d".into(),
        logical_library: "lib".into(),
    };
    db.open_mount(1, &spec, 2000).await.unwrap();
    let mut seen = Vec::new();
    for take in [1, 1, 2, 1, 3, 2] {
        let got = db.pop_jobs(1, take, u64::MAX, 2000).await.unwrap();
        assert_eq!(got.len() as u64, take);
        let incremental = db.mount_info(2000).await.unwrap();
        db.rebuild_summaries(2000).await.unwrap();
        let rebuilt = db.mount_info(2000).await.unwrap();
        assert_eq!(incremental, rebuilt, "after claiming {take} more");
        seen.push(incremental.potential_mounts.first().map(|m| (m.oldest_job_start, m.youngest_job_start)));
    }
    // 1040 | 1050 | 1000 1060 | 1040 | 1020 1090 1030 | 1070 1010: the bounds move as the
    // jobs at them leave, and the last claim empties the queue.
    assert_eq!(
        seen,
        vec![Some((1000, 1090)), Some((1000, 1090)), Some((1010, 1090)), Some((1010, 1090)), Some((1010, 1070)), None]
    );
}

/// A mount recorded under its id by another process (the migration bridge's `open_mount`) while
/// `next_mount` draws that same id from the sequence: the decision takes the next free id
/// instead of failing on the duplicate, whether the other insert is still open or committed.
#[tokio::test]
async fn next_mount_skips_an_id_another_process_is_recording() {
    let (db, _guard) = fresh().await;
    let db = Arc::new(db);
    db.queue_archive(plain_request(1, "p1"), 1000).await.expect("queued");
    let spec = |drive: &str| tapesched_scheduler::db::MountSpec {
        mount_type: MountType::ArchiveForUser,
        vid: "V1".into(),
        tape_pool: "p1".into(),
        vo: "vo".into(),
        drive: drive.into(),
        logical_library: "lib".into(),
    };
    // The id the sequence gives next, inserted in an open transaction and without moving the
    // sequence: the moment between another process's insert and its commit.
    let mut other = db.pool().begin().await.expect("begin");
    tapesched_postgres::sqlx::query(
        "INSERT INTO mount (mount_id, mount_type, vid, tape_pool, vo, drive, logical_library, created_at, heartbeat)
         VALUES (1, 'ArchiveForUser', 'V9', 'p1', 'vo', 'other', 'lib', 1000, 1000)",
    )
    .execute(&mut *other)
    .await
    .expect("insert");
    let deciding = tokio::spawn({
        let db = db.clone();
        let chosen = spec("d1");
        async move { db.next_mount("lib", 1000, &|_| Some(chosen.clone())).await }
    });
    other.commit().await.expect("commit");
    let (id, _) = deciding.await.expect("task").expect("no duplicate-key failure").expect("a mount");
    assert_eq!(id, 2, "the id taken by the other process is skipped");
    let (again, _) = db.next_mount("lib", 1000, &|_| Some(spec("d2"))).await.expect("next").expect("a mount");
    assert_eq!(again, 3);
}

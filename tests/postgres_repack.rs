//! Repack storage in PostgreSQL: the backend's repack methods and the catalogue's tape listings.
//!
//! - repack requests: stored once per tape, updated under their row lock (`conflict` on an
//!   unexpected status, `not_found` on an unknown tape);
//! - a repack from expansion to the end: retrieve subrequests (queued, or due at once when the
//!   file was provided), recalls succeeding and failing, the archives made from them in their
//!   ArchiveForRepack queue (apart from the user archives of the same pool), the copies written
//!   and accounted for; repack subrequests never reach user reports nor the failed lists;
//! - cancelling a repack deletes every subrequest wherever it is, and a mount reporting on one
//!   later is ignored;
//! - an expansion pass is all or nothing: a duplicate id, or a connection terminated inside the
//!   pass's transaction, leaves nothing of it;
//! - a delivered retrieve failure report deletes the request;
//! - the catalogue lists a tape's files by fSeq with every copy, as the memory catalogue does.
//!
//! Throughputs of an expansion pass and of `tape_files` are printed (`--nocapture`), not asserted.

use std::time::{Duration, Instant};

use tapesched_postgres::sqlx::{self, Connection, PgConnection};
use tapesched_postgres::{PgCatalogue, PgConfig, PgSchedulerDb, SchemaGuard};
use tapesched_scheduler::catalogue::memory::MemoryCatalogue;
use tapesched_scheduler::catalogue::Catalogue;
use tapesched_scheduler::db::*;
use tapesched_scheduler::repack::*;
use tapesched_scheduler::types::*;
use tapesched_scheduler::ErrorKind;
use tapesched_testkit::workload::archive_request;

const T: i64 = 1_700_000_000;
const V: &str = "V1";
const POOL: &str = "p1";

async fn fresh_with(max_attempts: u32) -> (PgSchedulerDb, SchemaGuard, String, String) {
    let url = tapesched_testkit::postgres_url().expect("a PostgreSQL server");
    let schema = tapesched_testkit::unique_name("pgrepack");
    let guard = SchemaGuard::new(url.clone(), schema.clone());
    let db = PgSchedulerDb::connect(PgConfig {
        max_connections: 2,
        max_attempts,
        ..PgConfig::new(url.clone(), schema.clone())
    })
    .await
    .expect("backend");
    (db, guard, url, schema)
}

async fn fresh() -> (PgSchedulerDb, SchemaGuard) {
    let (db, guard, _, _) = fresh_with(8).await;
    (db, guard)
}

fn repack(vid: &str) -> RepackRequest {
    let policy = QueuedPolicy { name: "mp".into(), priority: 1, min_request_age: 0 };
    RepackRequest {
        vid: vid.into(),
        seq: 1,
        repack_type: RepackType::Move,
        mount_policy: "mp".into(),
        archive_policy: policy.clone(),
        retrieve_policy: policy,
        buffer_url: "file:///buffer".into(),
        no_recall: false,
        max_files: None,
        storage_class: None,
        status: RepackStatus::Pending,
        created_at: T,
        expansion_started: false,
        expansion_done: false,
        last_expanded_fseq: 0,
        all_files_selected: true,
        counters: RepackCounters::default(),
        failure: None,
    }
}

fn link(vid: &str, id: u64, fseq: u64, user_provided: bool) -> RepackLink {
    RepackLink {
        vid: vid.into(),
        subrequest_id: id,
        fseq,
        disk_file_id: format!("d{id}"),
        storage_class: "sc1".into(),
        buffer_file: buffer_file("file:///buffer", vid, fseq),
        archive_copies: vec![CopyRoute { copy_nb: 1, tape_pool: POOL.into() }],
        user_provided,
    }
}

/// Retrieve subrequest `id` of the repack of `vid` for archive file `afid` at `fseq` (a copy 2
/// on another tape too); provided files are due at once.
fn sub(vid: &str, id: u64, afid: u64, fseq: u64, provided: bool) -> RetrieveRequest {
    let l = link(vid, id, fseq, provided);
    RetrieveRequest {
        request_id: id,
        archive_file_id: afid,
        disk_instance: "eos".into(),
        requester: Requester { name: "repack".into(), group: "repack".into() },
        size: 10 + afid,
        dst_url: l.buffer_file.clone(),
        report_url: None,
        error_report_url: None,
        created_at: T - 10 + (id % 7) as i64,
        activity: None,
        verify_only: false,
        disk_system: None,
        policy: QueuedPolicy { name: "mp".into(), priority: 1, min_request_age: 0 },
        copies: vec![
            RetrieveCopy {
                copy_nb: 1,
                vid: vid.into(),
                fseq,
                block_id: fseq * 2,
                retries: RetryCounters::default(),
            },
            RetrieveCopy { copy_nb: 2, vid: "OTHER".into(), fseq: 7, block_id: 9, retries: RetryCounters::default() },
        ],
        active_vid: vid.into(),
        status: if provided { RetrieveStatus::ToReportForTransfer } else { RetrieveStatus::ToTransfer },
        failure_reasons: vec![],
        repack: Some(l),
    }
}

/// The archive request made from a recalled subrequest.
fn archive_of(r: &RetrieveRequest) -> ArchiveRequest {
    ArchiveRequest {
        size: r.size,
        storage_class: "sc1".into(),
        report_url: None,
        repack: r.repack.clone(),
        ..archive_request(r.archive_file_id, POOL, T)
    }
}

fn mount(t: MountType, vid: &str) -> MountSpec {
    MountSpec {
        mount_type: t,
        vid: vid.into(),
        tape_pool: POOL.into(),
        vo: "vo".into(),
        drive: "d1".into(),
        logical_library: "lib".into(),
    }
}

fn counted(files: u64) -> RepackUpdate {
    RepackUpdate {
        last_expanded_fseq: Some(files),
        counters: RepackCounters { files_to_retrieve: files, files_to_archive: files, ..Default::default() },
        ..Default::default()
    }
}

/// The summaries kept incrementally equal a rebuild from the job rows.
async fn assert_summaries_whole(db: &PgSchedulerDb) {
    let incremental = db.mount_info(T).await.unwrap();
    db.rebuild_summaries(T).await.unwrap();
    assert_eq!(db.mount_info(T).await.unwrap(), incremental, "summaries kept incrementally");
}

fn queues(info: &MountInfo) -> Vec<(MountType, String, u64)> {
    info.potential_mounts
        .iter()
        .map(|m| (m.mount_type, m.tape_pool.clone().or(m.vid.clone()).unwrap_or_default(), m.files_queued))
        .collect()
}

#[tokio::test]
async fn repack_requests_are_stored_once_and_updated_under_lock() {
    let (db, _g) = fresh().await;
    db.queue_repack(repack("V2"), T).await.unwrap();
    db.queue_repack(repack(V), T).await.unwrap();
    assert_eq!(db.queue_repack(repack(V), T).await.unwrap_err().kind, ErrorKind::Conflict);
    let all: Vec<String> = db.repacks().await.unwrap().into_iter().map(|r| r.vid).collect();
    assert_eq!(all, vec![V.to_string(), "V2".to_string()]);
    assert_eq!(db.repack(V).await.unwrap(), Some(repack(V)));
    assert_eq!(db.repack("none").await.unwrap(), None);

    let promote = RepackUpdate {
        expected_status: Some(RepackStatus::Pending),
        status: Some(RepackStatus::ToExpand),
        ..Default::default()
    };
    let r = db.update_repack(V, &promote, T).await.unwrap();
    assert_eq!(r.status, RepackStatus::ToExpand);
    assert_eq!(db.repack(V).await.unwrap(), Some(r.clone()));
    // A second promotion loses: nothing changes.
    assert_eq!(db.update_repack(V, &promote, T).await.unwrap_err().kind, ErrorKind::Conflict);
    assert_eq!(db.repack(V).await.unwrap(), Some(r));
    assert_eq!(db.update_repack("none", &promote, T).await.unwrap_err().kind, ErrorKind::NotFound);
    assert_eq!(db.cancel_repack("none", T).await.unwrap_err().kind, ErrorKind::NotFound);
    assert_eq!(db.cancel_repack("V2", T).await.unwrap(), 0);
    assert_eq!(db.repack("V2").await.unwrap(), None);
}

#[tokio::test]
async fn a_repack_goes_from_expansion_to_written_copies() {
    let (db, _g) = fresh().await;
    db.queue_repack(repack(V), T).await.unwrap();
    // A user's archive in the same pool: its queue stays apart from the repack's.
    db.queue_archive(archive_request(900, POOL, T), T).await.unwrap();
    let start = RepackUpdate { expansion_started: true, status: Some(RepackStatus::Starting), ..counted(3) };
    let subs = vec![sub(V, 11, 3, 1, false), sub(V, 12, 1, 2, false), sub(V, 13, 2, 3, true)];
    db.queue_repack_subrequests(V, subs.clone(), &start, T).await.unwrap();
    assert_eq!(db.repack(V).await.unwrap().unwrap().counters.files_to_retrieve, 3);
    let pending = db.list_pending(JobKind::Retrieve, None).await.unwrap();
    assert_eq!(pending.iter().map(|p| p.job.request).collect::<Vec<_>>(), vec![
        RequestId::Retrieve(11),
        RequestId::Retrieve(12)
    ]);
    assert_eq!(queues(&db.mount_info(T).await.unwrap()), vec![
        (MountType::ArchiveForUser, POOL.into(), 1),
        (MountType::Retrieve, V.into(), 2)
    ]);
    // The provided file is due to its repack at once, never to a user.
    let due = db.repack_reports_due(100, T).await.unwrap();
    assert_eq!(due, vec![RepackReport::Retrieve(subs[2].clone())]);
    assert!(db.reports_due(ReportFilter::All, 100, T).await.unwrap().is_empty());

    // Recall: one succeeds, one fails for good at once (repack limits).
    db.open_mount(1, &mount(MountType::Retrieve, V), T).await.unwrap();
    let popped = db.pop_jobs(1, 10, u64::MAX, T).await.unwrap();
    assert_eq!(popped.iter().map(MountJob::archive_file_id).collect::<Vec<_>>(), vec![3, 1]);
    assert_eq!(popped[0], MountJob::Retrieve { request: subs[0].clone() });
    db.transfers_succeeded(1, &[TransferSuccess { job: popped[0].id(), tape_file: None }], T).await.unwrap();
    db.transfers_failed(1, &[popped[1].id()], "read error", T, &StayRouter).await.unwrap();
    db.end_mount(1, T, &StayRouter).await.unwrap();
    let due = db.repack_reports_due(100, T).await.unwrap();
    let keys: Vec<_> = due.iter().map(RepackReport::order_key).collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted, "canonical order");
    let statuses: Vec<(u64, RetrieveStatus)> = due
        .iter()
        .map(|r| match r {
            RepackReport::Retrieve(r) => (r.request_id, r.status),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(statuses, vec![
        (12, RetrieveStatus::ToReportForFailure),
        (13, RetrieveStatus::ToReportForTransfer),
        (11, RetrieveStatus::ToReportForTransfer)
    ]);
    assert_eq!(db.repack_reports_due(2, T).await.unwrap(), due[..2].to_vec());
    assert!(db.reports_due(ReportFilter::All, 100, T).await.unwrap().is_empty());
    assert!(db.list_failed(JobKind::Retrieve).await.unwrap().is_empty());

    // The reports are processed: recalled files become archive requests.
    let archives = vec![archive_of(&subs[0]), archive_of(&subs[2])];
    let retrieved = RepackUpdate {
        counters: RepackCounters { files_retrieved: 2, files_failed_retrieve: 1, archives_abandoned: 1, ..Default::default() },
        ..Default::default()
    };
    let batch = RepackReportBatch {
        retrieves: vec![11, 12, 13],
        archives: archives.clone(),
        archive_jobs: vec![],
        updates: vec![(V.into(), retrieved), ("gone".into(), RepackUpdate::default())],
    };
    db.repack_reports_processed(&batch, T).await.unwrap();
    // Processing the same archives again leaves them as they are.
    let again = RepackReportBatch { archives: archives.clone(), ..Default::default() };
    db.repack_reports_processed(&again, T).await.unwrap();
    assert_eq!(db.repack(V).await.unwrap().unwrap().status, RepackStatus::Running);
    assert!(db.repack_reports_due(100, T).await.unwrap().is_empty());
    let pending = db.list_pending(JobKind::Archive, None).await.unwrap();
    let shown: Vec<(RequestId, u64)> = pending.iter().map(|p| (p.job.request, p.archive_file_id)).collect();
    assert_eq!(shown, vec![
        (RequestId::Archive(900), 900),
        (RequestId::RepackArchive(11), 3),
        (RequestId::RepackArchive(13), 2)
    ]);
    assert_eq!(queues(&db.mount_info(T).await.unwrap()), vec![
        (MountType::ArchiveForUser, POOL.into(), 1),
        (MountType::ArchiveForRepack, POOL.into(), 2)
    ]);
    assert_summaries_whole(&db).await;

    // A repack archive mount takes only the repack's jobs; every copy reports to the repack.
    db.open_mount(2, &mount(MountType::ArchiveForRepack, "W1"), T).await.unwrap();
    let popped = db.pop_jobs(2, 10, u64::MAX, T).await.unwrap();
    assert_eq!(popped.iter().map(MountJob::id).collect::<Vec<_>>(), vec![
        JobId { request: RequestId::RepackArchive(11), copy_nb: 1 },
        JobId { request: RequestId::RepackArchive(13), copy_nb: 1 }
    ]);
    assert!(db.pop_jobs(2, 10, u64::MAX, T).await.unwrap().is_empty());
    db.transfers_succeeded(2, &tapesched_testkit::workload::written(&popped, "W1", 1), T).await.unwrap();
    db.end_mount(2, T, &StayRouter).await.unwrap();
    assert!(db.reports_due(ReportFilter::All, 100, T).await.unwrap().is_empty());
    let due = db.repack_reports_due(100, T).await.unwrap();
    let RepackReport::Archive(first) = &due[0] else { panic!("{due:?}") };
    assert_eq!(first.id(), RequestId::RepackArchive(13), "file 2 before file 3");
    assert_eq!(first.repack, subs[2].repack);
    assert_eq!(first.jobs[0].status, ArchiveJobStatus::ToReportForTransfer);
    assert_eq!(first.jobs[0].written.as_ref().map(|w| w.vid.as_str()), Some("W1"));
    let batch = RepackReportBatch {
        archive_jobs: popped.iter().map(MountJob::id).collect(),
        updates: vec![(
            V.into(),
            RepackUpdate {
                expansion_done: true,
                counters: RepackCounters { files_archived: 2, ..Default::default() },
                ..Default::default()
            },
        )],
        ..Default::default()
    };
    db.repack_reports_processed(&batch, T).await.unwrap();
    assert_eq!(db.repack(V).await.unwrap().unwrap().status, RepackStatus::Failed);
    assert!(db.repack_reports_due(100, T).await.unwrap().is_empty());
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM archive_request WHERE repack IS NOT NULL")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(left, 0, "accounted archives are deleted");
    assert_eq!(db.list_pending(JobKind::Archive, None).await.unwrap().len(), 1);
    assert!(db.list_failed(JobKind::Archive).await.unwrap().is_empty());
    assert_summaries_whole(&db).await;
}

#[tokio::test]
async fn cancelling_a_repack_deletes_every_subrequest() {
    let (db, _g) = fresh().await;
    db.queue_repack(repack(V), T).await.unwrap();
    db.queue_repack(repack("V2"), T).await.unwrap();
    let subs: Vec<RetrieveRequest> = (1..=6).map(|i| sub(V, i, 100 + i, i, i == 6)).collect();
    db.queue_repack_subrequests(V, subs.clone(), &counted(6), T).await.unwrap();
    db.queue_repack_subrequests("V2", vec![sub("V2", 50, 150, 1, false)], &counted(1), T).await.unwrap();
    // 1 and 2 held by a mount; 3 recalled and made an archive (queued); 4 and 5 queued; 6 due.
    db.open_mount(1, &mount(MountType::Retrieve, V), T).await.unwrap();
    let held = db.pop_jobs(1, 3, u64::MAX, T).await.unwrap();
    db.transfers_succeeded(1, &[TransferSuccess { job: held[2].id(), tape_file: None }], T).await.unwrap();
    let batch = RepackReportBatch { retrieves: vec![3], archives: vec![archive_of(&subs[2])], ..Default::default() };
    db.repack_reports_processed(&batch, T).await.unwrap();

    assert_eq!(db.cancel_repack(V, T).await.unwrap(), 6);
    assert_eq!(db.repack(V).await.unwrap(), None);
    // The mount reports on subrequests that are gone: ignored.
    db.transfers_succeeded(1, &[TransferSuccess { job: held[0].id(), tape_file: None }], T).await.unwrap();
    db.transfers_failed(1, &[held[1].id()], "late", T, &StayRouter).await.unwrap();
    assert_eq!(db.end_mount(1, T, &StayRouter).await.unwrap(), 0);
    assert!(db.repack_reports_due(100, T).await.unwrap().is_empty());
    assert!(db.list_pending(JobKind::Archive, None).await.unwrap().is_empty());
    let pending = db.list_pending(JobKind::Retrieve, None).await.unwrap();
    assert_eq!(pending.iter().map(|p| p.job.request).collect::<Vec<_>>(), vec![RequestId::Retrieve(50)]);
    assert_summaries_whole(&db).await;
    assert_eq!(queues(&db.mount_info(T).await.unwrap()), vec![(MountType::Retrieve, "V2".into(), 1)]);
    assert_eq!(db.cancel_repack(V, T).await.unwrap_err().kind, ErrorKind::NotFound);
}

#[tokio::test]
async fn an_expansion_pass_is_all_or_nothing() {
    let (db, _g) = fresh().await;
    assert_eq!(
        db.queue_repack_subrequests(V, vec![sub(V, 1, 1, 1, false)], &counted(1), T).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    db.queue_repack(repack(V), T).await.unwrap();
    db.queue_repack_subrequests(V, vec![sub(V, 1, 1, 1, false)], &counted(1), T).await.unwrap();
    // A pass repeating a stored id: nothing of it is stored.
    let pass: Vec<RetrieveRequest> = (2..=5).chain([1]).map(|i| sub(V, i, i, i, false)).collect();
    assert_eq!(db.queue_repack_subrequests(V, pass, &counted(5), T).await.unwrap_err().kind, ErrorKind::Conflict);
    // A subrequest of another repack, or one not on its tape, is refused before anything is written.
    let stray = vec![sub("V9", 7, 7, 7, false)];
    assert_eq!(db.queue_repack_subrequests(V, stray, &counted(1), T).await.unwrap_err().kind, ErrorKind::InvalidArgument);
    let r = db.repack(V).await.unwrap().unwrap();
    assert_eq!((r.counters.files_to_retrieve, r.last_expanded_fseq), (1, 1));
    assert_eq!(db.list_pending(JobKind::Retrieve, None).await.unwrap().len(), 1);
    // An unexpected status refuses the pass.
    let stale = RepackUpdate { expected_status: Some(RepackStatus::ToExpand), ..counted(1) };
    let err = db.queue_repack_subrequests(V, vec![sub(V, 8, 8, 8, false)], &stale, T).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert_eq!(db.list_pending(JobKind::Retrieve, None).await.unwrap().len(), 1);
    assert_summaries_whole(&db).await;
}

/// Returns, once a connection of the backend's schema waits for a lock, its process id.
async fn waiting_backend(url: &str, schema: &str) -> i32 {
    let mut watcher = PgConnection::connect(url).await.expect("connect");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pid: Option<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity
             WHERE application_name = left('tapesched:' || $1, 63) AND wait_event_type = 'Lock' LIMIT 1",
        )
        .bind(schema)
        .fetch_optional(&mut watcher)
        .await
        .expect("pg_stat_activity");
        if let Some(pid) = pid {
            return pid;
        }
        assert!(Instant::now() < deadline, "no operation waited for the rows the test holds");
        tokio::task::yield_now().await;
    }
}

/// A pass whose connection is terminated inside its transaction (its rows inserted, waiting for
/// the queue summary the test holds) leaves nothing: no subrequest, no counter, no summary change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_killed_mid_transaction_leaves_nothing() {
    let (db, _g, url, schema) = fresh_with(1).await;
    db.queue_repack(repack(V), T).await.unwrap();
    db.queue_repack_subrequests(V, vec![sub(V, 1, 1, 1, false)], &counted(1), T).await.unwrap();
    let before = db.mount_info(T).await.unwrap();

    let mut holder = PgConnection::connect(&url).await.expect("connect");
    sqlx::raw_sql("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("SELECT set_config('search_path', $1, true)").bind(&schema).execute(&mut holder).await.unwrap();
    sqlx::raw_sql("SELECT 1 FROM queue_summary FOR UPDATE").execute(&mut holder).await.unwrap();
    let pass: Vec<RetrieveRequest> = (2..=2001).map(|i| sub(V, i, i, i, false)).collect();
    let interrupt = async {
        let pid = waiting_backend(&url, &schema).await;
        let killed: bool =
            sqlx::query_scalar("SELECT pg_terminate_backend($1)").bind(pid).fetch_one(&mut holder).await.unwrap();
        assert!(killed);
        sqlx::raw_sql("ROLLBACK").execute(&mut holder).await.unwrap();
    };
    let update = counted(2000);
    let (out, ()) = tokio::join!(db.queue_repack_subrequests(V, pass.clone(), &update, T), interrupt);
    assert_eq!(out.unwrap_err().kind, ErrorKind::Unavailable, "one attempt only");
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM retrieve_request").fetch_one(db.pool()).await.unwrap();
    assert_eq!(stored, 1, "nothing of the pass");
    assert_eq!(db.repack(V).await.unwrap().unwrap().counters.files_to_retrieve, 1);
    assert_eq!(db.mount_info(T).await.unwrap(), before);
    // The pass again, whole.
    db.queue_repack_subrequests(V, pass, &counted(2000), T).await.unwrap();
    assert_eq!(db.repack(V).await.unwrap().unwrap().counters.files_to_retrieve, 2001);
    assert_eq!(db.list_pending(JobKind::Retrieve, Some(V)).await.unwrap().len(), 2001);
    assert_summaries_whole(&db).await;
}

/// Expansion passes of 5000 subrequests: the rate is printed (no timed assertion).
#[tokio::test]
async fn expansion_passes_throughput() {
    let (db, _g) = fresh().await;
    db.queue_repack(repack(V), T).await.unwrap();
    let (passes, per_pass) = (4u64, 5000u64);
    let all: Vec<Vec<RetrieveRequest>> = (0..passes)
        .map(|p| (1..=per_pass).map(|i| sub(V, p * per_pass + i, p * per_pass + i, p * per_pass + i, i % 50 == 0)).collect())
        .collect();
    let start = Instant::now();
    for pass in all {
        db.queue_repack_subrequests(V, pass, &counted(per_pass), T).await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "queue_repack_subrequests: {} subrequests in {secs:.3} s = {:.0}/s (passes of {per_pass})",
        passes * per_pass,
        (passes * per_pass) as f64 / secs
    );
    assert_eq!(db.repack(V).await.unwrap().unwrap().counters.files_to_retrieve, passes * per_pass);
    assert_eq!(db.repack_reports_due(u64::MAX, T).await.unwrap().len() as u64, passes * per_pass / 50);
    assert_summaries_whole(&db).await;
}

#[tokio::test]
async fn a_delivered_retrieve_failure_report_deletes_the_request() {
    let (db, _g) = fresh().await;
    let mut r = sub(V, 5, 5, 5, false);
    r.repack = None;
    r.error_report_url = Some("eos://err".into());
    db.queue_retrieve(r, T).await.unwrap();
    db.open_mount(1, &mount(MountType::Retrieve, V), T).await.unwrap();
    let job = db.pop_jobs(1, 1, u64::MAX, T).await.unwrap()[0].id();
    for _ in 0..10 {
        db.transfers_failed(1, &[job], "bad", T, &StayRouter).await.unwrap();
        if !db.reports_due(ReportFilter::All, 10, T).await.unwrap().is_empty() {
            break;
        }
        db.end_mount(1, T, &StayRouter).await.unwrap();
        db.open_mount(1, &mount(MountType::Retrieve, V), T).await.unwrap();
        db.claim_jobs(1, &[job], T).await.unwrap();
    }
    let due = db.reports_due(ReportFilter::All, 10, T).await.unwrap();
    assert_eq!(due.iter().map(|r| (r.request, r.outcome)).collect::<Vec<_>>(), vec![(job.request, Outcome::Failure)]);
    db.reports_delivered(&[job.request], T).await.unwrap();
    assert!(db.list_failed(JobKind::Retrieve).await.unwrap().is_empty());
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM retrieve_request").fetch_one(db.pool()).await.unwrap();
    assert_eq!(left, 0);
}

// --- catalogue -----------------------------------------------------------------------------------

async fn catalogue_with(files: Vec<ArchiveFile>) -> (PgCatalogue, MemoryCatalogue, SchemaGuard) {
    let url = tapesched_testkit::postgres_url().expect("a PostgreSQL server");
    let schema = tapesched_testkit::unique_name("pgrepackcat");
    let guard = SchemaGuard::new(url.clone(), schema.clone());
    let pg = PgCatalogue::connect(&url, &schema).await.expect("catalogue");
    let (snapshot, _) = tapesched_tests::catalogue();
    pg.load(snapshot.clone(), files.clone()).await.unwrap();
    (pg, MemoryCatalogue::new(snapshot, files).unwrap(), guard)
}

/// File `id`: copy 1 on T1 at fSeq 3 * id (so fSeqs have gaps), copy 2 on T2 for even ids.
fn file(id: u64) -> ArchiveFile {
    let mut copies = vec![TapeFile { copy_nb: 1, vid: "T1".into(), fseq: 3 * id, block_id: id }];
    if id.is_multiple_of(2) {
        copies.push(TapeFile { copy_nb: 2, vid: "T2".into(), fseq: 100_000 - id, block_id: id });
    }
    ArchiveFile {
        archive_file_id: id,
        disk_instance: "eos".into(),
        disk_file_id: format!("f{id}"),
        size: 100 + id,
        storage_class: if copies.len() == 2 { "sc2".into() } else { "sc1".into() },
        copies,
    }
}

#[tokio::test]
async fn tape_files_list_a_tape_by_fseq_with_every_copy() {
    let (pg, mem, _g) = catalogue_with((1..=40).map(file).collect()).await;
    for (vid, after, limit) in [("T1", 0, 7), ("T1", 3, 7), ("T1", 10, 100), ("T1", 120, 5), ("T2", 0, 9), ("T2", 99_980, 3)] {
        let got = pg.tape_files(vid, after, limit).await.unwrap();
        assert_eq!(got, mem.tape_files(vid, after, limit).await.unwrap(), "{vid} after {after} limit {limit}");
    }
    // Paging through T1 gives every file once, in fSeq order.
    let (mut after, mut seen) = (0, vec![]);
    loop {
        let page = pg.tape_files("T1", after, 6).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.copies.iter().find(|c| c.vid == "T1").unwrap().fseq;
        seen.extend(page.iter().map(|f| f.archive_file_id));
    }
    assert_eq!(seen, (1..=40).collect::<Vec<_>>());
    assert!(pg.tape_files("T1", u64::MAX, 10).await.unwrap().is_empty());
    assert!(pg.tape_files("T1", 0, 0).await.unwrap().is_empty());
    assert!(pg.tape_files("none", 0, 10).await.unwrap().is_empty());
    for vid in ["T1", "T2", "none"] {
        assert_eq!(pg.tape_copy_classes(vid).await.unwrap(), mem.tape_copy_classes(vid).await.unwrap(), "{vid}");
    }
    assert_eq!(pg.tape_copy_classes("T1").await.unwrap(), vec![("sc1".into(), 1), ("sc2".into(), 1)]);
    let first = pg.next_request_ids(3).await.unwrap();
    assert_eq!(first.len(), 3);
    assert!(first.windows(2).all(|w| w[0] < w[1]));
    let next = pg.next_request_id().await.unwrap();
    assert!(next > first[2]);
    assert!(pg.next_request_ids(0).await.unwrap().is_empty());
}

/// 10 000 files of one tape read in pages of 2000: the rate is printed (no timed assertion).
#[tokio::test]
async fn tape_files_throughput() {
    let (pg, _mem, _g) = catalogue_with((1..=10_000).map(file).collect()).await;
    let start = Instant::now();
    let (mut after, mut n) = (0, 0);
    loop {
        let page = pg.tape_files("T1", after, 2000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.copies[0].fseq;
        n += page.len();
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!("tape_files: {n} files in {secs:.3} s = {:.0}/s (pages of 2000)", n as f64 / secs);
    assert_eq!(n, 10_000);
}

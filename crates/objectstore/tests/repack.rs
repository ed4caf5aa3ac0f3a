//! Repack in the objectstore backend, on the memory store and on Redis (each test under its own
//! key prefix): repack requests, expansion passes, recalls and re-archives reporting to their
//! repack (never to users), processed batches, cancellation, and crashes in the middle of an
//! expansion pass or of a processed batch, collected by another process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tapesched_objectstore::redis_store::{ClearOnDrop, RedisSettings, RedisStore};
use tapesched_objectstore::store::{Lock, LockMode, MemoryStore, ObjectStore, StoreError, StoreResult};
use tapesched_objectstore::{ObjectstoreConfig, ObjectstoreDb};
use tapesched_scheduler::db::{JobKind, MountJob, MountSpec, ReportFilter, SchedulerDb, StayRouter, TransferSuccess};
use tapesched_scheduler::repack::*;
use tapesched_scheduler::types::*;
use tapesched_scheduler::ErrorKind;

const T: i64 = 1_700_000_000;
const VID: &str = "V1";

// --- stores --------------------------------------------------------------------------------------

/// A store that can be made to fail (as `unavailable`, the write not done) the first write of an
/// object whose name starts with `prefix`, once armed: a process dying at that write.
struct CutStore {
    inner: Arc<dyn ObjectStore>,
    prefix: std::sync::Mutex<Option<String>>,
    cut: AtomicBool,
}

impl CutStore {
    fn new(inner: Arc<dyn ObjectStore>) -> Arc<Self> {
        Arc::new(CutStore { inner, prefix: std::sync::Mutex::new(None), cut: AtomicBool::new(false) })
    }
    fn arm(&self, prefix: &str) {
        *self.prefix.lock().unwrap() = Some(prefix.to_string());
    }
    fn hit(&self, name: &str) -> StoreResult<()> {
        let mut p = self.prefix.lock().unwrap();
        if p.as_deref().is_some_and(|p| name.starts_with(p)) {
            *p = None;
            self.cut.store(true, Ordering::SeqCst);
            return Err(StoreError::Unavailable(format!("injected failure writing {name}"), None));
        }
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for CutStore {
    fn describe(&self) -> String {
        "cut".into()
    }
    async fn create(&self, name: &str, value: Vec<u8>) -> StoreResult<()> {
        self.hit(name)?;
        self.inner.create(name, value).await
    }
    async fn read(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        self.inner.read(name).await
    }
    async fn read_many(&self, names: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>> {
        self.inner.read_many(names).await
    }
    async fn lock(&self, name: &str, mode: LockMode, timeout: Duration) -> StoreResult<Lock> {
        self.inner.lock(name, mode, timeout).await
    }
    async fn unlock(&self, lock: &Lock) -> StoreResult<()> {
        self.inner.unlock(lock).await
    }
    async fn write_and_unlock(&self, name: &str, value: Vec<u8>, lock: &Lock) -> StoreResult<()> {
        if let Err(e) = self.hit(name) {
            let _ = self.inner.unlock(lock).await;
            return Err(e);
        }
        self.inner.write_and_unlock(name, value, lock).await
    }
    async fn overwrite(&self, name: &str, value: Vec<u8>, fence: &Lock, create: bool) -> StoreResult<()> {
        self.hit(name)?;
        self.inner.overwrite(name, value, fence, create).await
    }
    async fn remove(&self, name: &str, fence: &Lock) -> StoreResult<()> {
        self.hit(name)?;
        self.inner.remove(name, fence).await
    }
    async fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        self.inner.list(prefix).await
    }
}

/// A fresh store of the named kind, and what removes it afterwards.
fn store(kind: &str, test: &str) -> (Arc<dyn ObjectStore>, Option<ClearOnDrop>) {
    match kind {
        "memory" => (Arc::new(MemoryStore::new()), None),
        _ => {
            let url = tapesched_testkit::redis_url().expect("a Redis server");
            let settings = RedisSettings::new(url, format!("{}:", tapesched_testkit::unique_name(test)));
            (Arc::new(RedisStore::new(settings.clone()).unwrap()), Some(ClearOnDrop(settings)))
        }
    }
}

fn db(store: Arc<dyn ObjectStore>) -> ObjectstoreDb {
    ObjectstoreDb::new(store, ObjectstoreConfig { agent_timeout: Some(60), ..ObjectstoreConfig::default() })
}

// --- values --------------------------------------------------------------------------------------

fn policy() -> QueuedPolicy {
    QueuedPolicy { name: "mp".into(), priority: 1, min_request_age: 0 }
}

fn repack_request(vid: &str) -> RepackRequest {
    RepackRequest {
        vid: vid.into(),
        seq: 1,
        repack_type: RepackType::Move,
        mount_policy: "mp".into(),
        archive_policy: policy(),
        retrieve_policy: policy(),
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
        storage_class: "sc".into(),
        buffer_file: buffer_file("file:///buffer", vid, fseq),
        archive_copies: vec![CopyRoute { copy_nb: 1, tape_pool: "pool".into() }],
        user_provided,
    }
}

/// Subrequest `id` recalling fSeq `fseq` of `vid` (archive file `1000 + fseq`).
fn subrequest(vid: &str, id: u64, fseq: u64, user_provided: bool) -> RetrieveRequest {
    let l = link(vid, id, fseq, user_provided);
    RetrieveRequest {
        request_id: id,
        archive_file_id: 1000 + fseq,
        disk_instance: "eos".into(),
        requester: Requester { name: "repack".into(), group: "repack".into() },
        size: 10,
        dst_url: l.buffer_file.clone(),
        report_url: None,
        error_report_url: None,
        created_at: T,
        activity: None,
        verify_only: false,
        disk_system: None,
        policy: policy(),
        copies: vec![RetrieveCopy {
            copy_nb: 1,
            vid: vid.into(),
            fseq,
            block_id: fseq,
            retries: RetryCounters::default(),
        }],
        active_vid: vid.into(),
        status: if user_provided { RetrieveStatus::ToReportForTransfer } else { RetrieveStatus::ToTransfer },
        failure_reasons: vec![],
        repack: Some(l),
    }
}

/// The archive request made from a recalled subrequest.
fn rearchive(r: &RetrieveRequest) -> ArchiveRequest {
    let l = r.repack.clone().unwrap();
    ArchiveRequest {
        archive_file_id: r.archive_file_id,
        disk_instance: "eos".into(),
        disk_file_id: l.disk_file_id.clone(),
        requester: r.requester.clone(),
        storage_class: l.storage_class.clone(),
        size: r.size,
        created_at: T,
        report_url: None,
        error_report_url: None,
        policy: policy(),
        jobs: l.archive_copies.iter().map(|c| ArchiveJob::new(c.copy_nb, c.tape_pool.clone())).collect(),
        report_decided: false,
        repack: Some(l),
    }
}

fn pass_update(last_fseq: u64, files: u64) -> RepackUpdate {
    RepackUpdate {
        last_expanded_fseq: Some(last_fseq),
        counters: RepackCounters { files_to_retrieve: files, files_to_archive: files, ..Default::default() },
        ..Default::default()
    }
}

fn mount(mount_type: MountType, vid: &str, pool: &str) -> MountSpec {
    MountSpec {
        mount_type,
        vid: vid.into(),
        tape_pool: pool.into(),
        vo: "vo".into(),
        drive: "d1".into(),
        logical_library: "lib".into(),
    }
}

async fn pending_retrieves(db: &ObjectstoreDb, vid: &str) -> usize {
    db.list_pending(JobKind::Retrieve, Some(vid)).await.unwrap().len()
}

/// No user report and no failed request: repack subrequests report only to their repack.
async fn nothing_for_users(db: &ObjectstoreDb) {
    assert!(db.reports_due(ReportFilter::All, 1000, T).await.unwrap().is_empty());
    assert!(db.list_failed(JobKind::Archive).await.unwrap().is_empty());
    assert!(db.list_failed(JobKind::Retrieve).await.unwrap().is_empty());
}

// --- the cases -----------------------------------------------------------------------------------

async fn requests_are_stored_once_and_updated_atomically(store: Arc<dyn ObjectStore>) {
    let db = db(store);
    assert_eq!(db.repacks().await.unwrap(), vec![]);
    db.queue_repack(repack_request("V2"), T).await.unwrap();
    db.queue_repack(repack_request(VID), T).await.unwrap();
    assert_eq!(db.queue_repack(repack_request(VID), T).await.unwrap_err().kind, ErrorKind::Conflict);
    let vids: Vec<String> = db.repacks().await.unwrap().into_iter().map(|r| r.vid).collect();
    assert_eq!(vids, ["V1", "V2"]);
    let promote = RepackUpdate {
        expected_status: Some(RepackStatus::Pending),
        status: Some(RepackStatus::ToExpand),
        ..Default::default()
    };
    let r = db.update_repack(VID, &promote, T).await.unwrap();
    assert_eq!(r.status, RepackStatus::ToExpand);
    assert_eq!(db.repack(VID).await.unwrap(), Some(r));
    assert_eq!(db.update_repack(VID, &promote, T).await.unwrap_err().kind, ErrorKind::Conflict, "promoted once");
    assert_eq!(db.update_repack("V9", &promote, T).await.unwrap_err().kind, ErrorKind::NotFound);
    assert_eq!(db.repack("V9").await.unwrap(), None);
    let err = db.queue_repack_subrequests("V9", vec![], &RepackUpdate::default(), T).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound);
    assert_eq!(db.cancel_repack("V9", T).await.unwrap_err().kind, ErrorKind::NotFound);
    assert_eq!(db.cancel_repack("V2", T).await.unwrap(), 0);
    assert_eq!(db.repacks().await.unwrap().len(), 1);
}

async fn recalls_and_rearchives_report_to_their_repack(store: Arc<dyn ObjectStore>) {
    let db = db(store);
    db.queue_repack(repack_request(VID), T).await.unwrap();
    // fSeqs 1 and 2 to recall, 3 already in the buffer.
    let subs = vec![subrequest(VID, 11, 1, false), subrequest(VID, 12, 2, false), subrequest(VID, 13, 3, true)];
    db.queue_repack_subrequests(VID, subs.clone(), &pass_update(3, 3), T).await.unwrap();
    let r = db.repack(VID).await.unwrap().unwrap();
    assert_eq!((r.last_expanded_fseq, r.counters.files_to_retrieve), (3, 3));
    assert_eq!(pending_retrieves(&db, VID).await, 2);
    let due = db.repack_reports_due(100, T).await.unwrap();
    assert_eq!(due, vec![RepackReport::Retrieve(subs[2].clone())], "the provided file is due at once");

    // One recall succeeds, the other fails once: a repack's recall is not retried.
    db.open_mount(1, &mount(MountType::Retrieve, VID, "rp"), T).await.unwrap();
    let jobs = db.pop_jobs(1, 10, u64::MAX, T).await.unwrap();
    assert_eq!(jobs.len(), 2);
    let ok = TransferSuccess { job: jobs[0].id(), tape_file: None };
    db.transfers_succeeded(1, &[ok], T).await.unwrap();
    db.transfers_failed(1, &[jobs[1].id()], "read error", T, &StayRouter).await.unwrap();
    assert_eq!(db.end_mount(1, T, &StayRouter).await.unwrap(), 0);
    nothing_for_users(&db).await;
    let due = db.repack_reports_due(100, T).await.unwrap();
    let order: Vec<_> = due.iter().map(RepackReport::order_key).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted, "canonical order");
    assert_eq!(due.len(), 3);
    assert_eq!(db.repack_reports_due(2, T).await.unwrap(), due[..2].to_vec(), "up to max");
    let RepackReport::Retrieve(failed) = &due[1] else { panic!("{due:?}") };
    assert_eq!(failed.status, RetrieveStatus::ToReportForFailure);

    // Processing: the recalled and provided files become archive requests.
    let batch = RepackReportBatch {
        retrieves: vec![11, 12, 13],
        archives: vec![rearchive(&subs[0]), rearchive(&subs[2])],
        archive_jobs: vec![],
        updates: vec![(
            VID.into(),
            RepackUpdate {
                counters: RepackCounters { files_retrieved: 2, files_failed_retrieve: 1, ..Default::default() },
                ..Default::default()
            },
        )],
    };
    db.repack_reports_processed(&batch, T).await.unwrap();
    assert!(db.repack_reports_due(100, T).await.unwrap().is_empty());
    assert_eq!(db.repack(VID).await.unwrap().unwrap().counters.files_retrieved, 2);
    let info = db.mount_info(T).await.unwrap();
    assert_eq!(info.potential_mounts.len(), 1);
    assert_eq!(info.potential_mounts[0].mount_type, MountType::ArchiveForRepack);
    assert_eq!(info.potential_mounts[0].files_queued, 2);

    // One copy written, the other fails twice (the archive limits): both due to the repack.
    db.open_mount(2, &mount(MountType::ArchiveForRepack, "W1", "pool"), T).await.unwrap();
    let jobs = db.pop_jobs(2, 10, u64::MAX, T).await.unwrap();
    assert_eq!(
        jobs.iter().map(|j| j.id().request).collect::<Vec<_>>(),
        [RequestId::RepackArchive(11), RequestId::RepackArchive(13)]
    );
    let written = TapeFile { copy_nb: 1, vid: "W1".into(), fseq: 1, block_id: 1 };
    db.transfers_succeeded(2, &[TransferSuccess { job: jobs[0].id(), tape_file: Some(written) }], T).await.unwrap();
    db.transfers_failed(2, &[jobs[1].id()], "write error", T, &StayRouter).await.unwrap();
    let again = db.claim_jobs(2, &[jobs[1].id()], T).await.unwrap();
    assert_eq!(again.len(), 1, "requeued, claimed by id");
    db.transfers_failed(2, &[jobs[1].id()], "write error", T, &StayRouter).await.unwrap();
    db.end_mount(2, T, &StayRouter).await.unwrap();
    nothing_for_users(&db).await;
    let due = db.repack_reports_due(100, T).await.unwrap();
    assert_eq!(due.len(), 2);
    let statuses: Vec<ArchiveJobStatus> = due
        .iter()
        .map(|r| match r {
            RepackReport::Archive(a) => a.jobs[0].status,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(statuses, [ArchiveJobStatus::ToReportForTransfer, ArchiveJobStatus::ToReportForFailure]);
    let batch = RepackReportBatch {
        archive_jobs: jobs.iter().map(MountJob::id).collect(),
        updates: vec![(
            VID.into(),
            RepackUpdate {
                expansion_started: true,
                expansion_done: true,
                counters: RepackCounters { files_archived: 1, files_failed_archive: 1, ..Default::default() },
                ..Default::default()
            },
        )],
        ..Default::default()
    };
    db.repack_reports_processed(&batch, T).await.unwrap();
    // Processed again (a retry): nothing is counted twice, nothing fails.
    let r = db.repack(VID).await.unwrap().unwrap();
    assert_eq!((r.counters.files_archived, r.counters.files_failed_archive), (1, 1));
    assert!(db.repack_reports_due(100, T).await.unwrap().is_empty());
    assert!(db.dump_queues().await.unwrap().is_empty(), "every request ended and left its queue");
    nothing_for_users(&db).await;
}

async fn cancel_removes_every_subrequest(store: Arc<dyn ObjectStore>) {
    let db = db(store);
    db.queue_repack(repack_request(VID), T).await.unwrap();
    db.queue_repack(repack_request("V2"), T).await.unwrap();
    let subs: Vec<RetrieveRequest> = (1..=6).map(|f| subrequest(VID, 100 + f, f, f == 6)).collect();
    db.queue_repack_subrequests(VID, subs[..3].to_vec(), &pass_update(3, 3), T).await.unwrap();
    db.queue_repack_subrequests(VID, subs[3..].to_vec(), &pass_update(6, 3), T).await.unwrap();
    // Another repack's subrequest and a user's recall share the queue: they stay.
    db.queue_repack_subrequests("V2", vec![subrequest("V2", 200, 1, false)], &pass_update(1, 1), T).await.unwrap();
    let mut user = subrequest(VID, 300, 9, false);
    user.repack = None;
    db.queue_retrieve(user, T).await.unwrap();
    // A mount holds two; one recall ends and is processed into an archive request.
    db.open_mount(1, &mount(MountType::Retrieve, VID, "rp"), T).await.unwrap();
    let jobs = db.pop_jobs(1, 2, u64::MAX, T).await.unwrap();
    assert_eq!(jobs.len(), 2);
    db.transfers_succeeded(1, &[TransferSuccess { job: jobs[0].id(), tape_file: None }], T).await.unwrap();
    let batch = RepackReportBatch { retrieves: vec![101], archives: vec![rearchive(&subs[0])], ..Default::default() };
    db.repack_reports_processed(&batch, T).await.unwrap();

    assert_eq!(db.cancel_repack(VID, T).await.unwrap(), 6);
    assert_eq!(db.repack(VID).await.unwrap(), None);
    assert_eq!(db.cancel_repack(VID, T).await.unwrap_err().kind, ErrorKind::NotFound);
    assert_eq!(pending_retrieves(&db, VID).await, 1, "the user's recall stays");
    assert!(db.repack_reports_due(100, T).await.unwrap().is_empty());
    // The mount reports on what it held, in vain and without error.
    db.transfers_succeeded(1, &[TransferSuccess { job: jobs[1].id(), tape_file: None }], T).await.unwrap();
    db.transfers_failed(1, &[jobs[1].id()], "x", T, &StayRouter).await.unwrap();
    assert_eq!(db.end_mount(1, T, &StayRouter).await.unwrap(), 0);
    let queues = db.dump_queues().await.unwrap();
    let left: Vec<(String, usize)> = queues.iter().map(|(k, j)| (k.container.clone(), j.len())).collect();
    assert_eq!(left, [("V1".to_string(), 1), ("V2".to_string(), 1)], "{queues:?}");
    let store = db.objects().store();
    for prefix in ["RepackArchiveRequest-", "RepackPass-V1", "RepackRequest-V1", "RetrieveRequest-10"] {
        assert_eq!(store.list(prefix).await.unwrap(), Vec::<String>::new(), "{prefix}");
    }
    assert_eq!(db.repacks().await.unwrap().len(), 1);
}

/// An expansion pass cut short before its commit (the repack's write): the collector of the
/// dead process removes what it created; a pass cut short after it: the collector queues it.
async fn a_pass_cut_short_is_removed_or_finished(inner: Arc<dyn ObjectStore>) {
    let cut = CutStore::new(inner.clone());
    let dying = db(cut.clone());
    let collector = db(inner);
    collector.queue_repack(repack_request(VID), T).await.unwrap();
    let first: Vec<RetrieveRequest> = (1..=40).map(|f| subrequest(VID, f, f, f % 10 == 0)).collect();
    cut.arm("RepackRequest-");
    let err = dying.queue_repack_subrequests(VID, first, &pass_update(40, 40), T).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert_eq!(inner_names(&collector, "RetrieveRequest-").await, 40, "created, not yet committed");
    assert_eq!(pending_retrieves(&collector, VID).await, 0, "invisible to mounts");
    assert_eq!(collector.garbage_collect(T + 3600, &StayRouter).await.unwrap(), 0);
    assert_eq!(inner_names(&collector, "RetrieveRequest-").await, 0, "the unfinished pass is gone");
    assert_eq!(inner_names(&collector, "RepackPass-").await, 0);
    assert_eq!(collector.repack(VID).await.unwrap().unwrap().last_expanded_fseq, 0);
    assert!(collector.repack_reports_due(100, T).await.unwrap().is_empty());

    // Expanded again by another process, cut short after the commit (at the queue's write).
    let cut = CutStore::new(collector.objects().store().clone());
    let dying = db(cut.clone());
    let again: Vec<RetrieveRequest> = (1..=40).map(|f| subrequest(VID, 100 + f, f, f % 10 == 0)).collect();
    cut.arm("Queue-");
    let err = dying.queue_repack_subrequests(VID, again, &pass_update(40, 40), T).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert_eq!(collector.repack(VID).await.unwrap().unwrap().counters.files_to_retrieve, 40, "committed");
    // Owned by their queues already: the collector adds the missing pointers.
    collector.garbage_collect(T + 3600, &StayRouter).await.unwrap();
    assert_eq!(pending_retrieves(&collector, VID).await, 36);
    assert_eq!(collector.repack_reports_due(100, T).await.unwrap().len(), 4, "the provided files");
    nothing_for_users(&collector).await;
}

/// A processed batch cut short after its journal: the collector applies the rest, once.
async fn a_processed_batch_cut_short_is_finished(inner: Arc<dyn ObjectStore>) {
    let cut = CutStore::new(inner.clone());
    let dying = db(cut.clone());
    let collector = db(inner);
    collector.queue_repack(repack_request(VID), T).await.unwrap();
    let subs: Vec<RetrieveRequest> = (1..=5).map(|f| subrequest(VID, f, f, true)).collect();
    collector.queue_repack_subrequests(VID, subs.clone(), &pass_update(5, 5), T).await.unwrap();
    let batch = RepackReportBatch {
        retrieves: (1..=5).collect(),
        archives: subs.iter().map(rearchive).collect(),
        archive_jobs: vec![],
        updates: vec![(
            VID.into(),
            RepackUpdate {
                counters: RepackCounters { files_retrieved: 5, ..Default::default() },
                ..Default::default()
            },
        )],
    };
    cut.arm("RepackRequest-");
    let err = dying.repack_reports_processed(&batch, T).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unavailable);
    assert_eq!(collector.repack(VID).await.unwrap().unwrap().counters.files_retrieved, 0, "not counted yet");
    collector.garbage_collect(T + 3600, &StayRouter).await.unwrap();
    let r = collector.repack(VID).await.unwrap().unwrap();
    assert_eq!(r.counters.files_retrieved, 5, "counted once");
    assert!(collector.repack_reports_due(100, T).await.unwrap().is_empty());
    assert_eq!(inner_names(&collector, "RepackBatch-").await, 0);
    let info = collector.mount_info(T).await.unwrap();
    assert_eq!(info.potential_mounts[0].files_queued, 5);
}

/// The bug fixed with repack: a delivered retrieve failure report ends the request; it is not
/// kept in the failed list.
async fn a_delivered_retrieve_failure_is_deleted(store: Arc<dyn ObjectStore>) {
    let db = db(store);
    let mut r = subrequest(VID, 1, 1, false);
    r.repack = None;
    r.error_report_url = Some("eos://err".into());
    db.queue_retrieve(r.clone(), T).await.unwrap();
    let job = JobId { request: r.id(), copy_nb: 1 };
    for m in 1..=6 {
        db.open_mount(m, &mount(MountType::Retrieve, VID, "rp"), T).await.unwrap();
        assert_eq!(db.claim_jobs(m, &[job], T).await.unwrap().len(), 1);
        db.transfers_failed(m, &[job], "x", T, &StayRouter).await.unwrap();
        db.end_mount(m, T, &StayRouter).await.unwrap();
    }
    let due = db.reports_due(ReportFilter::Retrieve, 10, T).await.unwrap();
    assert_eq!(due.len(), 1, "{due:?}");
    db.reports_delivered(&[r.id()], T).await.unwrap();
    assert!(db.list_failed(JobKind::Retrieve).await.unwrap().is_empty());
    assert!(db.dump_queues().await.unwrap().is_empty());
}

async fn inner_names(db: &ObjectstoreDb, prefix: &str) -> usize {
    db.objects().store().list(prefix).await.unwrap().len()
}

// --- on each store -------------------------------------------------------------------------------

macro_rules! on_each_store {
    ($($case:ident),* $(,)?) => {
        mod memory {
            $( #[tokio::test] async fn $case() { super::$case(super::store("memory", "").0).await } )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $case() {
                    let (s, _clear) = super::store("redis", stringify!($case));
                    super::$case(s).await
                }
            )*
        }
    };
}

on_each_store!(
    requests_are_stored_once_and_updated_atomically,
    recalls_and_rearchives_report_to_their_repack,
    cancel_removes_every_subrequest,
    a_pass_cut_short_is_removed_or_finished,
    a_processed_batch_cut_short_is_finished,
    a_delivered_retrieve_failure_is_deleted,
);

/// Expansion throughput on Redis: passes of 5 000 subrequests into one VID queue (sizes from
/// `TAPESCHED_REPACK_PASSES` and `TAPESCHED_REPACK_PER_PASS`). Prints the rate (no timed assertion). `cargo test -p tapesched-objectstore --release --test repack -- --ignored
/// --nocapture expansion_throughput`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn expansion_throughput() {
    let (s, _clear) = store("redis", "throughput");
    let db = db(s);
    db.queue_repack(repack_request(VID), T).await.unwrap();
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (passes, per_pass) = (env("TAPESCHED_REPACK_PASSES", 10), env("TAPESCHED_REPACK_PER_PASS", 5000));
    let start = std::time::Instant::now();
    for p in 0..passes {
        let subs: Vec<RetrieveRequest> =
            (1..=per_pass).map(|i| subrequest(VID, p * per_pass + i, p * per_pass + i, false)).collect();
        db.queue_repack_subrequests(VID, subs, &pass_update((p + 1) * per_pass, per_pass), T).await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    let n = passes * per_pass;
    println!("queue_repack_subrequests: {n} subrequests in {secs:.2} s = {:.0}/s", n as f64 / secs);
    assert_eq!(pending_retrieves(&db, VID).await as u64, n);
}

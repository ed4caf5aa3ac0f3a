//! Every write cut short, one at a time: a store wrapper makes the k-th create, write or delete fail
//! with `unavailable`, either before it happens (the write is lost) or after (the write is done
//! but its answer is lost), for every k of a small archive run — a producer queueing in
//! batches, a drive session popping and completing, each retrying and repairing with
//! `recover` as a client does after a store outage. Whatever k, every request must end up
//! reported exactly once and no job may be left behind. Retrieves are part of the run too, queued
//! out of fSeq order so that their queue's shards split. This covers, deterministically, what
//! a Redis restart can do at any instant (a queue's shards written but not the queue itself,
//! an emptied shard not yet deleted...).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tapesched_objectstore::objects::QueueKind;
use tapesched_objectstore::store::{Lock, LockMode, MemoryStore, ObjectStore, StoreError, StoreResult};
use tapesched_objectstore::{ObjectstoreConfig, ObjectstoreDb};
use tapesched_scheduler::db::{MountJob, MountSpec, ReportFilter, SchedulerDb, StayRouter, TransferSuccess};
use tapesched_scheduler::types::*;
use tapesched_scheduler::{Error, ErrorKind};
use tapesched_testkit::workload::{archive_mount, archive_request};

const T: i64 = 1_700_000_000;
const REQUESTS: u64 = 60;
const BATCH: usize = 12;
const RETRIEVES: u64 = 24;
/// Archive file ids of the retrieved files (and their request ids).
const RETRIEVE_BASE: u64 = 1000;

/// Where the injected failure happens relative to the write it hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// The write does not happen.
    Before,
    /// The write happens, the caller is told it failed.
    After,
}

/// A memory store whose `fail_at`-th create, write or delete (counting from 1) fails once; 0:
/// none.
struct CutStore {
    inner: MemoryStore,
    writes: AtomicU64,
    fail_at: AtomicU64,
    cut: Cut,
}

impl CutStore {
    fn new(fail_at: u64, cut: Cut) -> Self {
        CutStore { inner: MemoryStore::new(), writes: AtomicU64::new(0), fail_at: AtomicU64::new(fail_at), cut }
    }

    /// Runs a write, failing it when it is the chosen one.
    async fn write<F: std::future::Future<Output = StoreResult<()>>>(&self, name: &str, op: F) -> StoreResult<()> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst) + 1;
        if n != self.fail_at.load(Ordering::SeqCst) {
            return op.await;
        }
        if self.cut == Cut::After {
            op.await?;
        }
        let message = format!("injected failure of write {n} ({name}, {:?})", self.cut);
        eprintln!("{message}");
        Err(StoreError::Unavailable(message, None))
    }
}

#[async_trait]
impl ObjectStore for CutStore {
    fn describe(&self) -> String {
        "cut".into()
    }
    async fn create(&self, name: &str, value: Vec<u8>) -> StoreResult<()> {
        self.write(name, self.inner.create(name, value)).await
    }
    async fn read(&self, name: &str) -> StoreResult<Option<Vec<u8>>> {
        self.inner.read(name).await
    }
    async fn lock(&self, name: &str, mode: LockMode, timeout: Duration) -> StoreResult<Lock> {
        self.inner.lock(name, mode, timeout).await
    }
    async fn unlock(&self, lock: &Lock) -> StoreResult<()> {
        self.inner.unlock(lock).await
    }
    async fn overwrite(&self, name: &str, value: Vec<u8>, fence: &Lock, create: bool) -> StoreResult<()> {
        self.write(name, self.inner.overwrite(name, value, fence, create)).await
    }
    async fn remove(&self, name: &str, fence: &Lock) -> StoreResult<()> {
        self.write(name, self.inner.remove(name, fence)).await
    }
    async fn list(&self, prefix: &str) -> StoreResult<Vec<String>> {
        self.inner.list(prefix).await
    }
}

fn request(id: u64) -> ArchiveRequest {
    let mut r = archive_request(id, "p", T);
    r.size = 100 + id;
    r.policy = QueuedPolicy { name: "mp".into(), priority: 1 + id % 3, min_request_age: id % 2 };
    r
}

fn retrieve(k: u64) -> RetrieveRequest {
    let id = RETRIEVE_BASE + k;
    RetrieveRequest {
        request_id: id,
        archive_file_id: id,
        disk_instance: "eos".into(),
        requester: Requester { name: "u".into(), group: "g".into() },
        size: 10 + k,
        dst_url: format!("root://eos/{id}"),
        report_url: Some("eos://done".into()),
        error_report_url: None,
        created_at: T,
        activity: None,
        verify_only: false,
        disk_system: None,
        policy: QueuedPolicy { name: "mp".into(), priority: 1, min_request_age: 0 },
        copies: vec![RetrieveCopy {
            copy_nb: 1,
            vid: "R1".into(),
            fseq: (k * 7) % RETRIEVES + 1,
            block_id: k,
            retries: RetryCounters::default(),
        }],
        active_vid: "R1".into(),
        status: RetrieveStatus::ToTransfer,
        failure_reasons: vec![],
        repack: None,
    }
}

fn spec(vid: &str, drive: &str) -> MountSpec {
    archive_mount(vid, "p", drive)
}

/// Retries `op` while it fails with `unavailable` (the one injected failure); anything else is
/// a bug.
async fn retried<R, F: std::future::Future<Output = Result<R, Error>>>(context: &str, mut op: impl FnMut() -> F) -> R {
    for _ in 0..3 {
        match op().await {
            Ok(r) => return r,
            Err(e) => assert_eq!(e.kind, ErrorKind::Unavailable, "{context}: unexpected error: {e}"),
        }
    }
    panic!("{context}: one injected failure cannot fail an operation three times");
}

/// Runs `op` once more after `unavailable` (the injected failure); on that second run, `done`
/// (what the first run, landed but unanswered, leaves behind) also counts as success.
async fn once_more<R, F: std::future::Future<Output = Result<R, Error>>>(
    context: &str,
    done: ErrorKind,
    mut op: impl FnMut() -> F,
) {
    match op().await {
        Ok(_) => {}
        Err(e) if e.kind == ErrorKind::Unavailable => match op().await {
            Ok(_) => {}
            Err(e) => assert_eq!(e.kind, done, "{context}: {e}"),
        },
        Err(e) => panic!("{context}: {e}"),
    }
}

/// A drive session: pop 7, write them, report success; after a failure, repair and go on; end
/// the mount once the queue is empty.
async fn session(db: &ObjectstoreDb, mount: u64, spec: &MountSpec, context: &str) {
    // Retrying an open whose answer was lost says the mount exists.
    once_more(context, ErrorKind::Conflict, || db.open_mount(mount, spec, T)).await;
    let mut fseq = 0;
    let mut empty_pops = 0;
    while empty_pops < 2 {
        let step = async {
            let jobs = db.pop_jobs(mount, 7, u64::MAX, T).await?;
            let done: Vec<TransferSuccess> = jobs
                .iter()
                .map(|j| {
                    fseq += 1;
                    let written = TapeFile { copy_nb: 1, vid: spec.vid.clone(), fseq, block_id: fseq };
                    TransferSuccess { job: j.id(), tape_file: matches!(j, MountJob::Archive { .. }).then_some(written) }
                })
                .collect();
            db.transfers_succeeded(mount, &done, T).await?;
            Ok::<_, Error>(jobs.len())
        };
        match step.await {
            Ok(0) => empty_pops += 1,
            Ok(_) => empty_pops = 0,
            Err(e) => {
                assert_eq!(e.kind, ErrorKind::Unavailable, "{context}: {e}");
                retried(context, || db.recover(Some(mount), T, &StayRouter)).await;
                empty_pops = 0;
            }
        }
    }
    // Retrying an end that removed the session's agent before failing says the mount has ended.
    once_more(context, ErrorKind::NotFound, || db.end_mount(mount, T, &StayRouter)).await;
}

/// Runs the workload on a store that fails its `fail_at`-th write; returns how many writes the
/// run made.
async fn run(fail_at: u64, cut: Cut) -> u64 {
    let store = Arc::new(CutStore::new(fail_at, cut));
    let config = ObjectstoreConfig { shard_size: 5, lock_timeout: Duration::from_secs(5), ..Default::default() };
    let db = ObjectstoreDb::new(store.clone(), config.clone());
    let context = format!("failure at write {fail_at} ({cut:?})");

    // Producer: a batch that failed is sent again; "already queued" means an earlier attempt
    // stored it and only the answer was lost.
    for chunk in (1..=REQUESTS).collect::<Vec<_>>().chunks(BATCH) {
        for attempt in 0.. {
            assert!(attempt < 3, "{context}: batch never queued");
            let answers = db.queue_archives(chunk.iter().map(|i| request(*i)).collect(), T).await;
            let failed: Vec<&Error> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
            if failed.iter().all(|e| e.kind == ErrorKind::Conflict && e.message.contains("already queued")) {
                break;
            }
            for e in failed {
                assert!(matches!(e.kind, ErrorKind::Unavailable | ErrorKind::Conflict), "{context}: {e}");
            }
        }
    }

    // Retrieves on one tape, queued out of fSeq order so that its queue's shards split.
    for k in 0..RETRIEVES {
        let r = retrieve(k);
        for attempt in 0.. {
            assert!(attempt < 3, "{context}: retrieve never queued");
            match db.queue_retrieve(r.clone(), T).await {
                Ok(()) => break,
                Err(e) if e.kind == ErrorKind::Conflict && e.message.contains("already queued") => break,
                Err(e) => assert_eq!(e.kind, ErrorKind::Unavailable, "{context}: {e}"),
            }
        }
    }

    session(&db, 1, &spec("V1", "d1"), &context).await;
    let recall = MountSpec { mount_type: MountType::Retrieve, vid: "R1".into(), ..spec("R1", "d3") };
    session(&db, 3, &recall, &context).await;

    // A second process checks: nothing left to transfer, every request reported exactly once.
    let writes = store.writes.load(Ordering::SeqCst);
    store.fail_at.store(0, Ordering::SeqCst);
    let checker = ObjectstoreDb::new(store.clone(), config);
    checker.open_mount(2, &spec("V2", "d2"), T).await.unwrap();
    let leftover = checker.pop_jobs(2, 1000, u64::MAX, T).await.unwrap();
    assert!(leftover.is_empty(), "{context}: {} jobs left to transfer", leftover.len());
    let mut pointers = 0;
    for (key, jobs) in checker.dump_queues().await.unwrap() {
        match key.kind {
            QueueKind::ArchiveToReport | QueueKind::RetrieveToReport => {
                let distinct: BTreeSet<u64> = jobs.iter().map(|j| j.archive_file_id).collect();
                assert_eq!(distinct.len(), jobs.len(), "{context}: a job twice in {key:?}");
                pointers += jobs.len() as u64;
            }
            _ => assert!(jobs.is_empty(), "{context}: {} jobs left in {key:?}", jobs.len()),
        }
    }
    let reports = checker.reports_due(ReportFilter::All, u64::MAX, T).await.unwrap();
    let reported: BTreeSet<u64> = reports.iter().map(|r| r.archive_file_id).collect();
    let expected: BTreeSet<u64> = (1..=REQUESTS).chain((0..RETRIEVES).map(|k| RETRIEVE_BASE + k)).collect();
    assert_eq!(reported, expected, "{context}: every request reported");
    assert_eq!(pointers, REQUESTS + RETRIEVES, "{context}: exactly one report pointer per request");
    // The mount decision reads the queue summaries: they must add up to what the shards hold.
    let info = checker.mount_info(T).await.unwrap();
    assert!(info.potential_mounts.is_empty(), "{context}: the summaries still count jobs: {info:?}");
    writes
}

#[tokio::test]
async fn every_write_cut_short_loses_nothing_and_reports_once() {
    let writes = run(0, Cut::Before).await;
    assert!(writes > 50, "the workload writes enough to be worth cutting ({writes})");
    for k in 1..=writes {
        for cut in [Cut::Before, Cut::After] {
            run(k, cut).await;
        }
    }
}

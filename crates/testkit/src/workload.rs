//! Workload pieces the crates' tests share: request and mount builders, the successes a drive
//! reports for the jobs it wrote, and the producer of the server-restart tests, which queues
//! through an outage.

use tapesched_scheduler::clock::Timestamp;
use tapesched_scheduler::db::{MountJob, MountSpec, SchedulerDb, TransferSuccess};
use tapesched_scheduler::types::*;
use tapesched_scheduler::ErrorKind;
use tokio::sync::{mpsc, watch};

/// A one-copy archive request of 100 bytes for `pool`, created at `created_at` (tests change the
/// fields they care about with struct update syntax).
pub fn archive_request(id: u64, pool: &str, created_at: i64) -> ArchiveRequest {
    ArchiveRequest {
        archive_file_id: id,
        disk_instance: "eos".into(),
        disk_file_id: format!("{id}"),
        requester: Requester { name: "u".into(), group: "g".into() },
        storage_class: "sc".into(),
        size: 100,
        created_at,
        report_url: Some("eos://r".into()),
        error_report_url: None,
        policy: QueuedPolicy { name: "mp".into(), priority: 1, min_request_age: 0 },
        jobs: vec![ArchiveJob::new(1, pool)],
        report_decided: false,
        repack: None,
    }
}

/// An archive mount of `pool` on tape `vid` by `drive`, VO `vo`, library `lib`.
pub fn archive_mount(vid: impl Into<String>, pool: impl Into<String>, drive: impl Into<String>) -> MountSpec {
    MountSpec {
        mount_type: MountType::ArchiveForUser,
        vid: vid.into(),
        tape_pool: pool.into(),
        vo: "vo".into(),
        drive: drive.into(),
        logical_library: "lib".into(),
    }
}

/// The successes of `jobs` written in order to copy 1 on `vid`, from tape file `first_fseq` on.
pub fn written(jobs: &[MountJob], vid: &str, first_fseq: u64) -> Vec<TransferSuccess> {
    (first_fseq..)
        .zip(jobs)
        .map(|(fseq, j)| TransferSuccess {
            job: j.id(),
            tape_file: Some(TapeFile { copy_nb: 1, vid: vid.into(), fseq, block_id: fseq }),
        })
        .collect()
}

/// Whether a client of a restarting server may see this error: `unavailable` (the server is
/// gone, or went while committing) or a conflict (an attempt whose commit landed although its
/// answer was lost, retried).
pub fn transient(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::Unavailable | ErrorKind::Conflict)
}

/// The producer of a restart test: queues `requests` in batches of `batch`; a batch that fails
/// is queued again once `up` says the server is back. After each batch it sends the batch's
/// index on `progress` and the number of batches done on `produced`. Panics on an error that is
/// not [`transient`]; returns how many attempts failed.
///
/// A batch whose earlier attempt committed although its answer was lost answers `already queued`
/// for every request: those requests are there, which the tests' final checks confirm.
pub async fn produce_through_outage<D: SchedulerDb + ?Sized>(
    db: &D,
    requests: Vec<ArchiveRequest>,
    batch: usize,
    now: Timestamp,
    mut up: watch::Receiver<bool>,
    progress: mpsc::UnboundedSender<u64>,
    produced: watch::Sender<u64>,
) -> u64 {
    let mut failures = 0;
    for (n, chunk) in requests.chunks(batch).enumerate() {
        loop {
            let answers = db.queue_archives(chunk.to_vec(), now).await;
            let failed: Vec<_> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
            if failed.is_empty() {
                break;
            }
            for e in &failed {
                assert!(transient(e.kind), "unexpected error {e}");
            }
            if failed.iter().all(|e| e.kind == ErrorKind::Conflict && e.message.contains("already queued")) {
                break;
            }
            failures += 1;
            up.wait_for(|u| *u).await.expect("the server comes back");
        }
        let _ = progress.send(n as u64);
        produced.send_replace(n as u64 + 1);
    }
    failures
}

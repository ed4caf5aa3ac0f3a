//! The `SchedulerDb` conformance suite: the same cases run against every backend, each on a
//! fresh namespace. A backend passes when it gives the canonical answers through the
//! `Scheduler` (queue contents, batches, ownership across crashes, reports, claims by id).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use tapesched_scheduler::catalogue::{Catalogue, CatalogueEdit, NewTapeFile};
use tapesched_scheduler::db::{JobKind, MountJob, Outcome, ReportFilter};
use tapesched_scheduler::decision::SchedulerConfig;
use tapesched_scheduler::repack::{RepackCounters, RepackStatus, RepackType, RepackUpdate};
use tapesched_scheduler::scheduler::{
    ArchiveSubmission, RepackSubmission, RetrieveSubmission, Scheduler, StateChangeMode,
};
use tapesched_scheduler::types::*;
use tapesched_scheduler::ErrorKind;
use tapesched_testkit::catalogue::{BeforeApply, HookedCatalogue};
use tapesched_tests::{Fixture, T0};

fn archive(id: u64, sc: &str, size: u64) -> ArchiveSubmission {
    ArchiveSubmission {
        archive_file_id: Some(id),
        disk_instance: Some("eos".into()),
        disk_file_id: None,
        requester: Requester { name: "alice".into(), group: "it".into() },
        storage_class: sc.into(),
        size,
        created_at: None,
        report_url: Some(format!("eos://report/{id}")),
        error_report_url: None,
    }
}

fn retrieve(id: u64) -> RetrieveSubmission {
    RetrieveSubmission {
        archive_file_id: id,
        requester: Some(Requester { name: "bob".into(), group: "it".into() }),
        report_url: Some("eos://done".into()),
        ..RetrieveSubmission::default()
    }
}

fn ids(jobs: &[MountJob]) -> Vec<u64> {
    jobs.iter().map(MountJob::archive_file_id).collect()
}

async fn mount_info_summarises_each_queue(f: Fixture) {
    f.at(-50);
    f.scheduler
        .queue_archive(ArchiveSubmission { created_at: Some(T0 - 100), ..archive(1, "sc1", 300) })
        .await
        .unwrap();
    f.at(0);
    f.scheduler.queue_archive(archive(2, "sc2", 700)).await.unwrap();
    let info = f.db.mount_info(T0).await.unwrap();
    let shape: Vec<_> = info
        .potential_mounts
        .iter()
        .map(|m| {
            (
                m.mount_type,
                m.tape_pool.clone(),
                m.files_queued,
                m.bytes_queued,
                m.oldest_job_start,
                m.youngest_job_start,
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (MountType::ArchiveForUser, Some("p1".into()), 2, 1000, T0 - 100, T0),
            (MountType::ArchiveForUser, Some("p:{2}".into()), 1, 700, T0, T0),
        ]
    );
    assert_eq!(info.potential_mounts[0].policy_counts.get("mp"), Some(&2));
    assert_eq!(info.potential_mounts[0].priority, 1);
}

async fn batches_are_fifo_and_bounded(f: Fixture) {
    for (id, size) in [(1, 100), (2, 100), (3, 5000), (4, 1)] {
        f.scheduler.queue_archive(archive(id, "sc1", size)).await.unwrap();
    }
    f.at(10);
    let mut s = f.scheduler.next_mount("d0", true).await.unwrap().expect("a mount");
    assert_eq!((s.spec.mount_type, s.spec.vid.as_str()), (MountType::ArchiveForUser, "T1"));
    let a = f.scheduler.pop_jobs(&mut s, 10, 250).await.unwrap();
    assert_eq!(ids(&a), vec![1, 2], "stops at the first job that does not fit");
    let b = f.scheduler.pop_jobs(&mut s, 1, 10).await.unwrap();
    assert_eq!(ids(&b), vec![3], "a single oversize first job goes alone");
    assert_eq!(f.scheduler.list_pending(JobKind::Archive, Some("p1"), None).await.unwrap(), vec![4]);
    assert_eq!(f.scheduler.end_mount(s).await.unwrap(), 3, "uncompleted popped jobs go back");
    assert_eq!(f.scheduler.list_pending(JobKind::Archive, Some("p1"), None).await.unwrap(), vec![4, 1, 2, 3]);
}

async fn duplicates_and_bad_input_change_nothing(f: Fixture) {
    f.scheduler.queue_archive(archive(7, "sc2", 10)).await.unwrap();
    let e = f.scheduler.queue_archive(archive(7, "sc1", 10)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Conflict, "{e}");
    let e = f.scheduler.queue_archive(archive(8, "nope", 10)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
    let e = f.scheduler.queue_archive(archive(9, "sc1", 0)).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidArgument, "{e}");
    let mut hostile = archive(10, "sc1", 1);
    hostile.requester.name = "x\u{0}y".into();
    assert_eq!(f.scheduler.queue_archive(hostile).await.unwrap_err().kind, ErrorKind::InvalidArgument);
    assert_eq!(f.scheduler.list_pending(JobKind::Archive, None, None).await.unwrap(), vec![7, 7]);
    let q = f.scheduler.show_queues().await.unwrap();
    assert_eq!(q.iter().map(|q| q.files_queued).sum::<u64>(), 2);
}

async fn crashed_sessions_are_collected(f: Fixture) {
    for id in 1..=3 {
        f.scheduler.queue_archive(archive(id, "sc1", 10)).await.unwrap();
    }
    f.at(10);
    let mut s = f.scheduler.next_mount("d0", true).await.unwrap().expect("a mount");
    assert_eq!(ids(&f.scheduler.pop_jobs(&mut s, 2, 1000).await.unwrap()), vec![1, 2]);
    f.scheduler.crash_session(s).await.unwrap();
    assert_eq!(f.scheduler.list_pending(JobKind::Archive, Some("p1"), None).await.unwrap(), vec![3]);
    assert_eq!(f.scheduler.garbage_collect().await.unwrap(), 2);
    assert_eq!(f.scheduler.garbage_collect().await.unwrap(), 0, "collected once");
    assert_eq!(f.scheduler.list_pending(JobKind::Archive, Some("p1"), None).await.unwrap(), vec![3, 1, 2]);
    let mut s = f.scheduler.next_mount("d1", true).await.unwrap().expect("a mount");
    assert_eq!(ids(&f.scheduler.pop_jobs(&mut s, 10, 1000).await.unwrap()), vec![3, 1, 2]);
    f.scheduler.complete_jobs(&mut s, None, Outcome::Success, None).await.unwrap();
    f.scheduler.end_mount(s).await.unwrap();
    let reports = f.scheduler.report(ReportFilter::All, None, true).await.unwrap();
    assert_eq!(reports.iter().map(|r| r.archive_file_id).collect::<Vec<_>>(), vec![1, 2, 3], "each reported once");
    assert!(f.scheduler.report(ReportFilter::All, None, true).await.unwrap().is_empty());
}

async fn retrieves_go_to_the_best_tape_and_pop_by_fseq(f: Fixture) {
    for id in [101, 105, 103] {
        let (_, vid) = f.scheduler.queue_retrieve(retrieve(id)).await.unwrap();
        assert_eq!(vid, "T1");
    }
    // File 100 has copies on T1 (3 jobs queued) and T3 (none): the fuller queue wins.
    assert_eq!(f.scheduler.queue_retrieve(retrieve(100)).await.unwrap().1, "T1");
    let stats = f.db.retrieve_queue_stats(&["T1".into(), "T3".into()]).await.unwrap();
    assert_eq!((stats[0].files_queued, stats[0].bytes_queued, stats[1].files_queued), (4, 1030, 0));
    f.at(10);
    let mut s = f.scheduler.next_mount("d0", true).await.unwrap().expect("a mount");
    assert_eq!(s.spec.vid, "T1");
    let jobs = f.scheduler.pop_jobs(&mut s, 10, 1_000_000).await.unwrap();
    assert_eq!(ids(&jobs), vec![105, 100, 103, 101], "fSeq 5, 5, 7, 9 (ties by arrival)");
    f.scheduler.complete_jobs(&mut s, None, Outcome::Success, None).await.unwrap();
    f.scheduler.end_mount(s).await.unwrap();
    assert_eq!(f.scheduler.report(ReportFilter::Retrieve, Some(2), true).await.unwrap().len(), 2);
    assert_eq!(f.scheduler.report(ReportFilter::Retrieve, None, true).await.unwrap().len(), 2);
}

async fn claims_by_id_take_exactly_the_named_jobs(f: Fixture) {
    for id in 1..=4 {
        f.scheduler.queue_archive(archive(id, "sc1", 10)).await.unwrap();
    }
    f.at(10);
    let s = f.scheduler.next_mount("d0", true).await.unwrap().expect("a mount");
    let job = |id| JobId { request: RequestId::Archive(id), copy_nb: 1 };
    let got = f.db.claim_jobs(s.mount_id, &[job(3), job(1), job(9)], T0).await.unwrap();
    assert_eq!(ids(&got), vec![3, 1], "unknown jobs are left out");
    let again = f.db.claim_jobs(s.mount_id, &[job(3)], T0).await.unwrap();
    assert!(again.is_empty(), "a claimed job cannot be claimed twice");
    assert_eq!(f.scheduler.list_pending(JobKind::Archive, Some("p1"), None).await.unwrap(), vec![2, 4]);
}

async fn failures_retry_then_report_then_fail(f: Fixture) {
    f.scheduler.queue_archive(archive(1, "sc1", 10)).await.unwrap();
    f.scheduler.queue_archive(archive(2, "sc1", 10)).await.unwrap();
    f.at(10);
    let mut s = f.scheduler.next_mount("d0", true).await.unwrap().expect("a mount");
    f.scheduler.pop_jobs(&mut s, 1, 100).await.unwrap();
    f.scheduler.complete_jobs(&mut s, None, Outcome::Failure, Some("write error")).await.unwrap();
    assert_eq!(f.scheduler.list_pending(JobKind::Archive, Some("p1"), None).await.unwrap(), vec![2, 1], "to the tail");
    assert_eq!(ids(&f.scheduler.pop_jobs(&mut s, 2, 100).await.unwrap()), vec![2, 1]);
    f.scheduler.complete_jobs(&mut s, Some(&[1]), Outcome::Failure, Some("write error")).await.unwrap();
    f.scheduler.complete_jobs(&mut s, Some(&[2]), Outcome::Success, None).await.unwrap();
    let r = f.scheduler.report(ReportFilter::Archive, None, false).await.unwrap();
    assert_eq!(
        r.iter().map(|r| (r.archive_file_id, r.outcome)).collect::<Vec<_>>(),
        vec![(1, Outcome::Failure), (2, Outcome::Success)]
    );
    assert!(f.scheduler.list_failed(JobKind::Archive).await.unwrap().is_empty(), "one failed delivery is retried");
    f.scheduler.report(ReportFilter::Archive, None, false).await.unwrap();
    assert_eq!(f.scheduler.list_failed(JobKind::Archive).await.unwrap(), vec![1, 2], "two failed deliveries give up");
    assert!(f.scheduler.report(ReportFilter::All, None, true).await.unwrap().is_empty());
}

async fn tape_leaving_service_drains_its_queue(f: Fixture) {
    // With both queues empty, the daily rotation picks the second of (T1, T3) on day T0/86400.
    assert_eq!(f.scheduler.queue_retrieve(retrieve(100)).await.unwrap().1, "T3");
    f.scheduler.queue_retrieve(retrieve(101)).await.unwrap();
    let change =
        f.scheduler.change_tape_state("T3", TapeState::Broken, Some("dropped"), Default::default()).await.unwrap();
    assert_eq!((change.state, change.cleanup_requested), (TapeState::BrokenPending, true));
    assert_eq!(f.scheduler.cleanup_queues().await.unwrap(), vec!["T3".to_string()]);
    assert_eq!(
        f.scheduler.list_pending(JobKind::Retrieve, None, Some("T1")).await.unwrap(),
        vec![100, 101],
        "fSeq order"
    );
    assert!(f.scheduler.list_pending(JobKind::Retrieve, None, Some("T3")).await.unwrap().is_empty());
    // T1 leaves too: 100 has no other copy left, 101 never had one: both fail.
    f.scheduler.change_tape_state("T1", TapeState::Exported, Some("vault"), Default::default()).await.unwrap();
    assert_eq!(f.scheduler.cleanup_queues().await.unwrap(), vec!["T1".to_string()]);
    let r = f.scheduler.report(ReportFilter::Retrieve, None, true).await.unwrap();
    let got: Vec<_> = r.iter().map(|r| (r.archive_file_id, r.outcome)).collect();
    assert_eq!(got, vec![(100, Outcome::Failure), (101, Outcome::Failure)]);
}

async fn cancel_removes_queued_work(f: Fixture) {
    f.scheduler.queue_archive(archive(1, "sc2", 10)).await.unwrap();
    f.scheduler.queue_retrieve(retrieve(101)).await.unwrap();
    f.scheduler.cancel_archive(1).await.unwrap();
    assert_eq!(f.scheduler.cancel_archive(1).await.unwrap_err().kind, ErrorKind::NotFound);
    assert_eq!(f.scheduler.cancel_retrieve(101, None).await.unwrap(), 1);
    assert!(f.scheduler.show_queues().await.unwrap().is_empty());
    assert!(f.db.mount_info(T0).await.unwrap().potential_mounts.is_empty());
}

/// Writes `n` one-copy files of class sc1 on T3 (after its fSeq 10), makes T3 REPACKING and
/// queues a move repack of its sc1 files (file 100's copy 2 on T3 is of class sc2: left out).
async fn repack_t3(f: &Fixture, n: u64) -> Vec<u64> {
    let cat = f.scheduler.catalogue();
    let mut ids = Vec::new();
    for i in 0..n {
        let id = 1000 + i;
        cat.record_tape_file(NewTapeFile {
            archive_file_id: id,
            disk_instance: "eos".into(),
            disk_file_id: format!("{id}"),
            size: 10,
            storage_class: "sc1".into(),
            copy_nb: 1,
            vid: "T3".into(),
        })
        .await
        .unwrap();
        ids.push(id);
    }
    f.scheduler.change_tape_state("T3", TapeState::Repacking, Some("repack"), StateChangeMode::All).await.unwrap();
    f.scheduler.cleanup_queues().await.unwrap();
    f.scheduler
        .queue_repack(RepackSubmission {
            vid: "T3".into(),
            repack_type: RepackType::Move,
            mount_policy: "mp".into(),
            buffer_url: Some("file:///buffer".into()),
            no_recall: false,
            max_files: None,
            storage_class: Some("sc1".into()),
        })
        .await
        .unwrap();
    ids
}

/// A repack expands a pass at a time; a second scheduler over the same backend (a restarted
/// maintenance process) carries on from the cursor without duplicates; recalls become re-archives
/// to the copy's route (p1), and the repack ends Complete with the copies moved in the catalogue.
async fn repack_expands_by_passes_and_completes(f: Fixture) {
    let files = repack_t3(&f, 5).await;
    assert_eq!(f.scheduler.expand_repacks(None).await.unwrap(), vec!["T3".to_string()]);
    let r = f.db.repack("T3").await.unwrap().expect("stored");
    // The first pass read fSeq 3 (file 100, class sc2: not selected) and 11 (file 1000).
    assert_eq!((r.status, r.counters.files_to_retrieve, r.expansion_done), (RepackStatus::Starting, 1, false));
    // A restarted process: same backend and catalogue, a new scheduler, which runs its passes
    // pipelined (the next page read while the current one is written): one call finishes.
    let config = SchedulerConfig { repack_passes_per_call: 10, ..f.scheduler.config().clone() };
    let again = Scheduler::new(f.db.clone(), f.scheduler.catalogue().clone(), f.clock.clone(), config);
    assert_eq!(again.expand_repacks(None).await.unwrap(), vec!["T3".to_string()]);
    assert!(again.expand_repacks(None).await.unwrap().is_empty());
    let r = f.db.repack("T3").await.unwrap().expect("stored");
    assert_eq!((r.counters.files_to_retrieve, r.counters.files_to_archive, r.expansion_done), (5, 5, true));
    assert_eq!(f.scheduler.list_pending(JobKind::Retrieve, None, Some("T3")).await.unwrap(), files);
    f.at(10);
    let mut s = f.scheduler.next_mount("d0", true).await.unwrap().expect("a recall mount");
    assert_eq!((s.spec.mount_type, s.spec.vid.as_str()), (MountType::Retrieve, "T3"));
    assert_eq!(ids(&f.scheduler.pop_jobs(&mut s, 100, 1 << 40).await.unwrap()), files);
    f.scheduler.complete_jobs(&mut s, None, Outcome::Success, None).await.unwrap();
    f.scheduler.end_mount(s).await.unwrap();
    assert!(f.scheduler.report(ReportFilter::All, None, true).await.unwrap().is_empty(), "no user report");
    let processed = f.scheduler.process_repack_reports(None).await.unwrap();
    assert_eq!(processed.len(), 5);
    assert!(processed.iter().all(|r| r.kind() == JobKind::Retrieve && r.outcome == Outcome::Success));
    assert_eq!(f.scheduler.list_pending(JobKind::Archive, Some("p1"), None).await.unwrap(), files);
    f.at(20);
    let mut s = f.scheduler.next_mount("d0", true).await.unwrap().expect("a re-archive mount");
    assert_eq!((s.spec.mount_type, s.spec.tape_pool.as_str()), (MountType::ArchiveForRepack, "p1"));
    let vid = s.spec.vid.clone();
    assert_eq!(ids(&f.scheduler.pop_jobs(&mut s, 100, 1 << 40).await.unwrap()), files);
    f.scheduler.complete_jobs(&mut s, None, Outcome::Success, None).await.unwrap();
    f.scheduler.end_mount(s).await.unwrap();
    assert_eq!(f.scheduler.process_repack_reports(None).await.unwrap().len(), 5);
    let r = f.db.repack("T3").await.unwrap().expect("stored");
    assert_eq!((r.status, r.counters.files_archived, r.counters.files_failed()), (RepackStatus::Complete, 5, 0));
    let moved = f.scheduler.catalogue().archive_file(1000).await.unwrap().expect("file");
    assert_eq!(moved.copies.iter().map(|c| c.vid.as_str()).collect::<Vec<_>>(), vec![vid.as_str()]);
    assert!(f.db.repack_reports_due(100, T0 + 20).await.unwrap().is_empty());
    assert!(f.db.mount_info(T0 + 20).await.unwrap().potential_mounts.is_empty());
}

/// A pass planned from a cursor another process has moved since is refused (`conflict`) and
/// changes nothing: two maintenance processes cannot queue the same files twice.
async fn a_stale_expansion_pass_is_refused(f: Fixture) {
    let files = repack_t3(&f, 3).await;
    assert_eq!(f.scheduler.expand_repacks(None).await.unwrap(), vec!["T3".to_string()]);
    let before = f.db.repack("T3").await.unwrap().expect("stored");
    assert!(before.last_expanded_fseq > 0);
    let stale = RepackUpdate {
        expected_last_expanded_fseq: Some(0),
        last_expanded_fseq: Some(before.last_expanded_fseq),
        counters: RepackCounters { files_to_retrieve: 1, ..RepackCounters::default() },
        ..RepackUpdate::default()
    };
    let err = f.db.queue_repack_subrequests("T3", vec![], &stale, T0).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Conflict, "{err}");
    assert_eq!(f.db.repack("T3").await.unwrap().expect("stored"), before);
    while !f.scheduler.expand_repacks(None).await.unwrap().is_empty() {}
    assert_eq!(f.scheduler.list_pending(JobKind::Retrieve, None, Some("T3")).await.unwrap(), files);
}

/// Cancelling a repack deletes its queued and its mounted subrequests; what the mount reports
/// afterwards on them is ignored; a second cancel is not_found.
async fn cancel_repack_removes_every_subrequest(f: Fixture) {
    repack_t3(&f, 3).await;
    while !f.scheduler.expand_repacks(None).await.unwrap().is_empty() {}
    f.at(10);
    let mut s = f.scheduler.next_mount("d0", true).await.unwrap().expect("a recall mount");
    assert_eq!(f.scheduler.pop_jobs(&mut s, 1, 1 << 40).await.unwrap().len(), 1);
    assert_eq!(f.scheduler.cancel_repack("T3").await.unwrap(), 3);
    assert!(f.db.mount_info(T0 + 10).await.unwrap().potential_mounts.is_empty());
    f.scheduler.complete_jobs(&mut s, None, Outcome::Success, None).await.unwrap();
    assert_eq!(f.scheduler.end_mount(s).await.unwrap(), 0);
    assert!(f.db.repack_reports_due(100, T0 + 10).await.unwrap().is_empty());
    assert!(f.scheduler.show_repacks().await.unwrap().is_empty());
    assert_eq!(f.scheduler.cancel_repack("T3").await.unwrap_err().kind, ErrorKind::NotFound);
    assert!(f.scheduler.list_pending(JobKind::Retrieve, None, Some("T3")).await.unwrap().is_empty());
}

/// Leases: granted when free, refused to another holder while they run, renewed by their
/// holder, granted to another once expired, and free again once released.
async fn leases_grant_refuse_renew_expire_release(f: Fixture) {
    let db = &f.db;
    assert!(db.try_lease("reports", "a", T0 + 30, T0).await.unwrap(), "free: granted");
    assert!(!db.try_lease("reports", "b", T0 + 30, T0 + 1).await.unwrap(), "held by a: refused");
    assert!(db.try_lease("collect", "b", T0 + 30, T0 + 1).await.unwrap(), "another lease: granted");
    assert!(db.try_lease("reports", "a", T0 + 60, T0 + 20).await.unwrap(), "renewed by its holder");
    assert!(!db.try_lease("reports", "b", T0 + 90, T0 + 45).await.unwrap(), "the renewal runs to T0 + 60");
    assert!(db.try_lease("reports", "b", T0 + 90, T0 + 60).await.unwrap(), "expired: granted to b");
    assert!(!db.try_lease("reports", "a", T0 + 120, T0 + 61).await.unwrap(), "a lost it");
    db.release_lease("reports", "a").await.unwrap();
    assert!(!db.try_lease("reports", "a", T0 + 120, T0 + 62).await.unwrap(), "a cannot release b's lease");
    db.release_lease("reports", "b").await.unwrap();
    assert!(db.try_lease("reports", "a", T0 + 120, T0 + 63).await.unwrap(), "released: granted");
    db.release_lease("nothing", "a").await.unwrap();
}

/// A tape server's heartbeat beats all its mounts in one call; a mount that has ended is named
/// in a not-found error, and the live ones are beaten all the same.
async fn one_heartbeat_for_every_mount(f: Fixture) {
    for id in 1..=2 {
        f.scheduler.queue_archive(archive(id, "sc1", 10)).await.unwrap();
        f.scheduler.queue_archive(archive(10 + id, "sc2", 10)).await.unwrap();
    }
    f.at(10);
    let a = f.scheduler.next_mount("d0", true).await.unwrap().expect("a mount");
    let b = f.scheduler.next_mount("d1", true).await.unwrap().expect("a second mount");
    assert_ne!(a.mount_id, b.mount_id);
    f.db.heartbeat_mounts(&[], T0 + 20).await.unwrap();
    f.db.heartbeat_mounts(&[a.mount_id, b.mount_id], T0 + 20).await.unwrap();
    let (a_id, b_id) = (a.mount_id, b.mount_id);
    f.scheduler.end_mount(a).await.unwrap();
    let e = f.db.heartbeat_mounts(&[a_id, b_id], T0 + 30).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert!(e.message.contains(&format!("mount {a_id}")), "names the ended mount: {e}");
    f.db.heartbeat_mounts(&[b_id], T0 + 40).await.unwrap();
    f.scheduler.end_mount(b).await.unwrap();
}

/// A batch whose cut lies far from what the queue's mean file size suggests (many small files
/// before a few huge ones) is still exactly the queue's front up to the limits, for archives
/// and for retrieves (the PostgreSQL backend takes such a batch in several parts).
async fn a_batch_cut_far_from_the_queue_mean_is_exact(f: Fixture) {
    let huge = 1_000_000_000;
    for id in 1..=70 {
        let size = if id <= 60 { 1 } else { huge };
        f.scheduler.queue_archive(archive(id, "sc1", size)).await.unwrap();
    }
    f.at(10);
    let mut s = f.scheduler.next_mount("d0", true).await.unwrap().expect("a mount");
    assert_eq!(s.spec.mount_type, MountType::ArchiveForUser);
    let a = f.scheduler.pop_jobs(&mut s, 1000, 50).await.unwrap();
    assert_eq!(ids(&a), (1..=50).collect::<Vec<_>>(), "50 one-byte files in a 50-byte batch");
    let b = f.scheduler.pop_jobs(&mut s, 20, i64::MAX as u64).await.unwrap();
    assert_eq!(ids(&b), (51..=70).collect::<Vec<_>>(), "20 files, bounded by the count");
    f.scheduler.complete_jobs(&mut s, None, Outcome::Success, None).await.unwrap();
    assert_eq!(f.scheduler.end_mount(s).await.unwrap(), 0);

    // Retrieves: 60 small files then 10 huge ones on T3, popped in fSeq order.
    let cat = f.scheduler.catalogue();
    for i in 0..70u64 {
        let id = 2000 + i;
        let size = if i < 60 { 1 } else { huge };
        let file = NewTapeFile {
            archive_file_id: id,
            disk_instance: "eos".into(),
            disk_file_id: format!("{id}"),
            size,
            storage_class: "sc1".into(),
            copy_nb: 1,
            vid: "T3".into(),
        };
        cat.record_tape_file(file).await.unwrap();
        assert_eq!(f.scheduler.queue_retrieve(retrieve(id)).await.unwrap().1, "T3");
    }
    f.at(20);
    let mut s = f.scheduler.next_mount("d1", true).await.unwrap().expect("a mount");
    assert_eq!((s.spec.mount_type, s.spec.vid.as_str()), (MountType::Retrieve, "T3"));
    let r = f.scheduler.pop_jobs(&mut s, 1000, 45).await.unwrap();
    assert_eq!(ids(&r), (2000..2045).collect::<Vec<_>>(), "45 one-byte files in a 45-byte batch");
    let r = f.scheduler.pop_jobs(&mut s, 1000, 2 * huge).await.unwrap();
    assert_eq!(ids(&r), (2045..=2060).collect::<Vec<_>>(), "the small rest and one huge file (two pass the budget)");
}

/// Retrieves queued in one batch are routed and queued as they would be one call each: each
/// routed on the queues as the requests before it in the batch left them, the refused ones
/// answered in place, and the queue ordered by fSeq then arrival, repeats of a file included.
/// At the backend, a batch answers each request as `queue_retrieve` would.
async fn a_retrieve_batch_queues_as_one_call_each(f: Fixture) {
    let batch = [101, 105, 999, 103, 100, 105].map(retrieve).to_vec();
    let answers = f.scheduler.queue_retrieves(batch).await.unwrap();
    assert_eq!(answers.len(), 6);
    assert_eq!(answers[2].as_ref().unwrap_err().kind, ErrorKind::NotFound, "file 999 does not exist");
    let queued: Vec<(u64, String)> = answers.iter().filter_map(|a| a.as_ref().ok().cloned()).collect();
    // File 100 has copies on T1 and T3: T1, fuller with the batch's first three, wins.
    assert!(queued.iter().all(|(_, vid)| vid == "T1"), "{queued:?}");
    let request_ids: Vec<u64> = queued.iter().map(|(id, _)| *id).collect();
    assert!(request_ids.windows(2).all(|w| w[0] < w[1]), "fresh ids in order: {request_ids:?}");
    let stats = f.db.retrieve_queue_stats(&["T1".into(), "T3".into()]).await.unwrap();
    assert_eq!((stats[0].files_queued, stats[1].files_queued), (5, 0));
    f.at(10);
    let mut s = f.scheduler.next_mount("d0", true).await.unwrap().expect("a mount");
    assert_eq!(s.spec.vid, "T1");
    let jobs = f.scheduler.pop_jobs(&mut s, 10, 1_000_000).await.unwrap();
    assert_eq!(ids(&jobs), vec![105, 100, 105, 103, 101], "fSeq 5, 5, 5, 7, 9 (ties by arrival)");

    // At the backend: a stored id, a repeated id and a tape without a copy are refused in place.
    let MountJob::Retrieve { request } = &jobs[0] else { panic!("a retrieve job") };
    let mut fresh = request.clone();
    fresh.request_id = 9_000_001;
    let mut elsewhere = fresh.clone();
    elsewhere.request_id = 9_000_002;
    elsewhere.active_vid = "T9".into();
    let answers = f.db.queue_retrieves(vec![request.clone(), fresh.clone(), fresh, elsewhere], T0 + 20).await;
    let kinds: Vec<Option<ErrorKind>> = answers.iter().map(|a| a.as_ref().err().map(|e| e.kind)).collect();
    assert_eq!(
        kinds,
        vec![Some(ErrorKind::Conflict), None, Some(ErrorKind::Conflict), Some(ErrorKind::InvalidArgument)]
    );
    let stats = f.db.retrieve_queue_stats(&["T1".into()]).await.unwrap();
    assert_eq!(stats[0].files_queued, 1, "only the fresh request is queued");
    f.scheduler.complete_jobs(&mut s, None, Outcome::Success, None).await.unwrap();
    f.scheduler.end_mount(s).await.unwrap();
}

/// Another cleanup pass that finalises `vid` between this pass's snapshot and its write (it
/// applies the same edit first), as a second process would: a [`HookedCatalogue`]'s hook.
struct RacedBy {
    vid: &'static str,
    raced: AtomicBool,
}

#[async_trait]
impl BeforeApply for RacedBy {
    async fn before_apply(&self, inner: &dyn Catalogue, edit: &CatalogueEdit) -> tapesched_scheduler::Result<()> {
        if let CatalogueEdit::SetTapeState { vid, expected: Some(_), .. } = edit {
            if vid == self.vid && !self.raced.swap(true, Ordering::SeqCst) {
                inner.apply(edit.clone()).await?;
            }
        }
        Ok(())
    }
}

/// Two cleanup passes at once (the maintenance daemon's loop and an operator starting a repack,
/// who runs one too): the pass that loses the race to finalise a tape is not an error (before, it
/// failed with a conflict, and the operator's repack was never queued), and it goes on with the
/// other tapes.
async fn a_cleanup_pass_raced_by_another_goes_on(f: Fixture) {
    f.scheduler.queue_retrieve(retrieve(101)).await.unwrap();
    for (vid, state) in [("T2", TapeState::Repacking), ("T3", TapeState::Broken)] {
        let change = f.scheduler.change_tape_state(vid, state, Some("leaving"), StateChangeMode::All).await.unwrap();
        assert!(change.state.is_pending(), "{vid}: {change:?}");
    }
    let raced = Arc::new(HookedCatalogue {
        inner: f.scheduler.catalogue().clone(),
        hook: RacedBy { vid: "T2", raced: AtomicBool::new(false) },
    });
    let second = Scheduler::new(f.db.clone(), raced.clone(), f.clock.clone(), SchedulerConfig::default());
    assert_eq!(second.cleanup_queues().await.unwrap(), vec!["T3".to_string()], "T2 was the other pass's");
    assert!(raced.hook.raced.load(Ordering::SeqCst), "the other pass finalised T2 first");
    let snap = f.scheduler.catalogue().snapshot().await.unwrap();
    assert_eq!((snap.tapes["T2"].state, snap.tapes["T3"].state), (TapeState::Repacking, TapeState::Broken));
    assert!(f.scheduler.cleanup_queues().await.unwrap().is_empty(), "nothing left to finalise");
    // The operator's repack goes on from there.
    f.scheduler
        .queue_repack(RepackSubmission {
            vid: "T2".into(),
            repack_type: RepackType::Move,
            mount_policy: "mp".into(),
            buffer_url: None,
            no_recall: false,
            max_files: None,
            storage_class: None,
        })
        .await
        .unwrap();
}

macro_rules! conformance {
    ($module:ident, $backend:literal, $($case:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $case() {
                    // Repack passes of two files, so a five-file tape takes three.
                    let config = super::SchedulerConfig { repack_files_per_pass: 2, ..super::SchedulerConfig::default() };
                    super::$case(tapesched_tests::Fixture::with_config($backend, config).await).await;
                }
            )*
        }
    };
}

/// The cases, listed once: every backend runs all of them (a case added here cannot be forgotten
/// for one backend).
macro_rules! every_case {
    ($module:ident, $backend:literal) => {
        conformance!(
            $module,
            $backend,
            mount_info_summarises_each_queue,
            batches_are_fifo_and_bounded,
            duplicates_and_bad_input_change_nothing,
            crashed_sessions_are_collected,
            retrieves_go_to_the_best_tape_and_pop_by_fseq,
            claims_by_id_take_exactly_the_named_jobs,
            failures_retry_then_report_then_fail,
            tape_leaving_service_drains_its_queue,
            cancel_removes_queued_work,
            repack_expands_by_passes_and_completes,
            cancel_repack_removes_every_subrequest,
            a_stale_expansion_pass_is_refused,
            leases_grant_refuse_renew_expire_release,
            a_batch_cut_far_from_the_queue_mean_is_exact,
            one_heartbeat_for_every_mount,
            a_retrieve_batch_queues_as_one_call_each,
            a_cleanup_pass_raced_by_another_goes_on,
        );
    };
}

every_case!(objectstore_memory, "objectstore-memory");
every_case!(objectstore_redis, "objectstore-redis");
every_case!(postgres, "postgres");

//! Rules the Postgres backend applies in SQL, checked against their one Rust definition in
//! `tapesched_scheduler::rules` on generated cases (seeded, so every run plays the same cases).
//!
//! - the batch cut of a claim (`pop_jobs`: `LIMIT` and the window's running byte total in the
//!   claim statement) equals [`rules::batch_len`] over the queue in order, for archive (FIFO) and
//!   retrieve (by fSeq) queues, with sizes from 0 to a whole queue of `i64::MAX` bytes and budgets
//!   from 0 to `u64::MAX`;
//! - due reports come in [`ReportJob::order_key`]'s order (archive file id, kind, request id),
//!   for each filter and limit, as reports are delivered.

use tapesched_postgres::{PgConfig, PgSchedulerDb, SchemaGuard};
use tapesched_scheduler::db::{MountJob, MountSpec, ReportFilter, ReportJob, SchedulerDb, TransferSuccess};
use tapesched_scheduler::rules;
use tapesched_scheduler::types::*;
use tapesched_testkit::workload::{archive_mount, archive_request, written};
use tapesched_testkit::SeededRng;

const NOW: i64 = 1_000_000;

async fn fresh() -> (PgSchedulerDb, SchemaGuard) {
    let url = tapesched_testkit::postgres_url().expect("a PostgreSQL server");
    let schema = tapesched_testkit::unique_name("pgrules");
    let guard = SchemaGuard::new(url.clone(), schema.clone());
    let db =
        PgSchedulerDb::connect(PgConfig { max_connections: 2, ..PgConfig::new(url, schema) }).await.expect("backend");
    (db, guard)
}

/// Job sizes of one queue: zeros, ones, small values and values up to what is left of the
/// largest total a queue can hold (its summary counts bytes in a `bigint`), so a queue often
/// ends within a few bytes of `i64::MAX`.
fn sizes(rng: &mut SeededRng) -> Vec<u64> {
    let n = rng.below(12) as usize;
    let mut left = i64::MAX as u64;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let size = match rng.below(6) {
            0 => 0,
            1 => 1,
            2 => rng.below(1000),
            3 => left - rng.below(3).min(left),
            _ => rng.below(left + 1),
        }
        .min(left);
        left -= size;
        out.push(size);
    }
    out
}

/// A budget (max files, max bytes) for a queue of `sizes`: none, one, around the queue's length,
/// unbounded; bytes at, just below and just above a running total, random, and at the limits of
/// `i64` and `u64`.
fn budget(rng: &mut SeededRng, sizes: &[u64]) -> (u64, u64) {
    let n = sizes.len() as u64;
    let files = match rng.below(5) {
        0 => 0,
        1 => 1,
        2 => u64::MAX,
        _ => rng.below(n + 2),
    };
    let prefix: u64 = sizes.iter().take(rng.below(n + 1) as usize).sum();
    let bytes = match rng.below(9) {
        0 => 0,
        1 => 1,
        2 => prefix,
        3 => prefix.saturating_sub(1),
        4 => prefix.saturating_add(1),
        5 => rng.below(i64::MAX as u64),
        6 => i64::MAX as u64,
        7 => i64::MAX as u64 + 1,
        _ => u64::MAX,
    };
    (files, bytes)
}

fn retrieve_request(id: u64, vid: &str, size: u64, fseq: u64) -> RetrieveRequest {
    RetrieveRequest {
        request_id: id,
        archive_file_id: id,
        disk_instance: "eos".into(),
        requester: Requester { name: "u".into(), group: "g".into() },
        size,
        dst_url: format!("root://eos/{id}"),
        report_url: None,
        error_report_url: None,
        created_at: NOW,
        activity: None,
        verify_only: false,
        disk_system: None,
        policy: QueuedPolicy { name: "mp".into(), priority: 1, min_request_age: 0 },
        copies: vec![RetrieveCopy { copy_nb: 1, vid: vid.into(), fseq, block_id: fseq, retries: Default::default() }],
        active_vid: vid.into(),
        status: RetrieveStatus::ToTransfer,
        failure_reasons: vec![],
        repack: None,
    }
}

/// Queues a fresh queue of `sizes` (archive: in this order; retrieve: in a shuffled arrival order
/// with fSeqs that put the queue back in this order), claims once with `budget`, and answers
/// (the ids claimed, the ids `rules::batch_len` says a claim takes).
async fn claim_case(
    db: &PgSchedulerDb,
    case: u64,
    retrieve: bool,
    sizes: &[u64],
    budget: (u64, u64),
    rng: &mut SeededRng,
) -> (Vec<u64>, Vec<u64>) {
    let base = case * 100 + 1;
    let ids: Vec<u64> = (base..base + sizes.len() as u64).collect();
    let (queue, mount) = (format!("q{case}"), case + 1);
    let spec = if retrieve {
        let mut arrival: Vec<usize> = (0..sizes.len()).collect();
        for i in (1..arrival.len()).rev() {
            arrival.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for i in arrival {
            db.queue_retrieve(retrieve_request(ids[i], &queue, sizes[i], i as u64 + 1), NOW)
                .await
                .expect("queue retrieve");
        }
        MountSpec { mount_type: MountType::Retrieve, ..archive_mount(&queue, "", "d") }
    } else {
        let requests = ids
            .iter()
            .zip(sizes)
            .map(|(&id, &size)| ArchiveRequest { size, ..archive_request(id, &queue, NOW) })
            .collect();
        for answer in db.queue_archives(requests, NOW).await {
            answer.expect("queue archive");
        }
        archive_mount("V", &queue, "d")
    };
    db.open_mount(mount, &spec, NOW).await.expect("mount");
    let got = db.pop_jobs(mount, budget.0, budget.1, NOW).await.expect("claim");
    let got = got.iter().map(MountJob::archive_file_id).collect();
    let want = ids[..rules::batch_len(sizes.iter().copied(), budget.0, budget.1)].to_vec();
    (got, want)
}

/// A claim takes exactly the jobs `rules::batch_len` says, on archive and retrieve queues.
#[tokio::test]
async fn the_claim_statements_cut_batches_as_the_batch_rule_does() {
    let (db, _guard) = fresh().await;
    let mut rng = SeededRng(0x5eed_ba7c);
    let mut cut_short = 0;
    for case in 0..240 {
        let sizes = sizes(&mut rng);
        let budget = budget(&mut rng, &sizes);
        let retrieve = case % 2 == 1;
        let (got, want) = claim_case(&db, case, retrieve, &sizes, budget, &mut rng).await;
        assert_eq!(got, want, "case {case}: retrieve {retrieve}, sizes {sizes:?}, budget (files, bytes) {budget:?}");
        cut_short += usize::from(want.len() < sizes.len() && want.len() as u64 != budget.0);
    }
    // The cases did reach the byte budget, not only the file count or the queue's end.
    assert!(cut_short >= 40, "only {cut_short} cases were cut by bytes");
}

/// Due reports come in `ReportJob::order_key`'s order: archive and retrieve reports of the same
/// archive file side by side, several retrieves of one file by request id whatever their arrival.
#[tokio::test]
async fn due_reports_come_in_the_canonical_order() {
    let (db, _guard) = fresh().await;
    let mut rng = SeededRng(0x00dd_e4e5);
    // Archive files 1..=60, a random half of them archived (in a random order); retrieves of
    // random files of the same range, several per file, with random distinct request ids from
    // the same range (so ordering by id before kind, or by id alone, would differ).
    let mut afids: Vec<u64> = (1..=60).filter(|_| rng.below(2) == 0).collect();
    for i in (1..afids.len()).rev() {
        afids.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let requests = afids.iter().map(|&id| archive_request(id, "p", NOW)).collect();
    for answer in db.queue_archives(requests, NOW).await {
        answer.expect("queue archive");
    }
    let mut request_ids: Vec<u64> = (1..=80).collect();
    for i in (1..request_ids.len()).rev() {
        request_ids.swap(i, rng.below(i as u64 + 1) as usize);
    }
    for (fseq, &rid) in (1..).zip(&request_ids) {
        let mut r = retrieve_request(rid, "R", 10, fseq);
        r.archive_file_id = 1 + rng.below(60);
        r.report_url = Some(format!("eos://done/{rid}"));
        db.queue_retrieve(r, NOW).await.expect("queue retrieve");
    }
    let retrieve_mount = MountSpec { mount_type: MountType::Retrieve, ..archive_mount("R", "", "d") };
    for (mount, spec) in [(1, archive_mount("V", "p", "d")), (2, retrieve_mount)] {
        db.open_mount(mount, &spec, NOW).await.expect("mount");
        let jobs = db.pop_jobs(mount, u64::MAX, u64::MAX, NOW).await.expect("claim");
        let done: Vec<TransferSuccess> = if mount == 1 {
            written(&jobs, "V", 1)
        } else {
            jobs.iter().map(|j| TransferSuccess { job: j.id(), tape_file: None }).collect()
        };
        db.transfers_succeeded(mount, &done, NOW).await.expect("success");
    }
    let mut due = db.reports_due(ReportFilter::All, u64::MAX, NOW).await.expect("reports");
    assert_eq!(due.len(), afids.len() + request_ids.len(), "every transfer is reported");
    due.sort_by_key(ReportJob::order_key);
    while !due.is_empty() {
        for filter in [ReportFilter::All, ReportFilter::Archive, ReportFilter::Retrieve] {
            let wanted: Vec<&ReportJob> = due
                .iter()
                .filter(|r| match filter {
                    ReportFilter::All => true,
                    ReportFilter::Archive => r.kind() == tapesched_scheduler::db::JobKind::Archive,
                    ReportFilter::Retrieve => r.kind() == tapesched_scheduler::db::JobKind::Retrieve,
                })
                .collect();
            for max in [0, 1, rng.below(wanted.len() as u64 + 1), u64::MAX] {
                let got = db.reports_due(filter, max, NOW).await.expect("reports");
                let want: Vec<ReportJob> = wanted.iter().take(max.min(1000) as usize).map(|r| (*r).clone()).collect();
                assert_eq!(got, want, "{filter:?}, at most {max}");
            }
        }
        // Deliver a random few (not the first ones only) and look again.
        let delivered: Vec<_> = due.iter().filter(|_| rng.below(4) == 0).map(|r| r.request).collect();
        let delivered = if delivered.is_empty() { vec![due[0].request] } else { delivered };
        db.reports_delivered(&delivered, NOW).await.expect("delivered");
        due.retain(|r| !delivered.contains(&r.request));
    }
}

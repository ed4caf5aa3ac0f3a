//! Integer bounds and totals, property-tested across backends: seeded random workloads whose ids,
//! sizes, fSeqs, counts and limits are drawn around 2^63-1 (below, at, above, up to 2^64-1) are
//! played through the `Scheduler` on `objectstore-memory`, `objectstore-redis` and `postgres`;
//! every answer (the result, or the kind of the error) must be the same on the three, and so must
//! the mount info at the end. Values above 2^63-1 must be `invalid_argument` before any backend
//! sees them; totals must show 2^63-1 when they would pass it.

use std::sync::Arc;

use tapesched_scenario::backend::OpenBackend;
use tapesched_scheduler::bounds::MAX;
use tapesched_scheduler::catalogue::memory::MemoryCatalogue;
use tapesched_scheduler::catalogue::CatalogueEdit;
use tapesched_scheduler::clock::{Clock, ManualClock};
use tapesched_scheduler::db::{JobKind, MountJob, Outcome, ReportFilter, SchedulerDb};
use tapesched_scheduler::decision::SchedulerConfig;
use tapesched_scheduler::scheduler::{ArchiveSubmission, RetrieveSubmission, Scheduler, TapeSession};
use tapesched_scheduler::types::*;
use tapesched_scheduler::{ErrorKind, Result};
use tapesched_testkit::SeededRng;
use tapesched_tests::{backend, catalogue, T0};

const BACKENDS: [&str; 3] = ["objectstore-memory", "objectstore-redis", "postgres"];

/// A value around the bounds: small, 2^62-ish, just below or at 2^63-1, just above it, near
/// 2^64-1, or anything.
fn large(rng: &mut SeededRng) -> u64 {
    match rng.below(7) {
        0 => 1 + rng.below(1000),
        1 => (1 << 62) + rng.below(1000),
        2 | 3 => MAX - rng.below(3),
        4 => MAX + 1 + rng.below(3),
        5 => u64::MAX - rng.below(3),
        _ => rng.next_u64(),
    }
}

/// A size or id that is usually within the bounds (so that queues fill up with large values).
fn mostly_bounded(rng: &mut SeededRng) -> u64 {
    let v = large(rng);
    if rng.below(4) == 0 {
        v
    } else {
        v.clamp(1, MAX)
    }
}

struct Side {
    scheduler: Scheduler,
    clock: Arc<ManualClock>,
    db: Arc<dyn SchedulerDb>,
    sessions: [Option<TapeSession>; 2],
    _namespace: OpenBackend,
}

impl Side {
    async fn new(name: &str) -> Side {
        let open = backend(name).await;
        let db = open.db.clone();
        let (snapshot, mut files) = catalogue();
        // Files of the largest sizes, at the largest fSeqs, on T1 and T2.
        for (i, id) in (200..206u64).enumerate() {
            let i = i as u64;
            files.push(ArchiveFile {
                archive_file_id: id,
                disk_instance: "eos".into(),
                disk_file_id: format!("{id}"),
                size: MAX - i % 2,
                storage_class: "sc1".into(),
                copies: vec![TapeFile {
                    copy_nb: 1,
                    vid: if i < 3 { "T1" } else { "T2" }.into(),
                    fseq: MAX - i * (1 << 40),
                    block_id: MAX - i,
                }],
            });
        }
        let catalogue = Arc::new(MemoryCatalogue::new(snapshot, files).expect("valid catalogue"));
        let clock = Arc::new(ManualClock::new(T0));
        let scheduler = Scheduler::new(db.clone(), catalogue, clock.clone(), SchedulerConfig::default());
        Side { scheduler, clock, db, sessions: [None, None], _namespace: open }
    }
}

/// The answer as compared: the value, or only the kind of the error (messages may name
/// backend-specific things such as mount ids).
fn shown<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Ok(v) => format!("ok {v:?}"),
        Err(e) => format!("error {}", e.kind),
    }
}

fn ids(jobs: &[MountJob]) -> Vec<(u64, u64)> {
    jobs.iter().map(|j| (j.archive_file_id(), j.size())).collect()
}

/// One operation, drawn by the caller (`op`, and `v` with the values it uses).
async fn play(side: &mut Side, op: u64, v: &[u64]) -> String {
    let s = &side.scheduler;
    let drive = (v[0] % 2) as usize;
    let who = Requester { name: "alice".into(), group: "it".into() };
    match op {
        0..=4 => {
            let sub = ArchiveSubmission {
                archive_file_id: (!v[1].is_multiple_of(3)).then_some(v[2]),
                disk_instance: Some("eos".into()),
                disk_file_id: None,
                requester: who,
                storage_class: if v[3].is_multiple_of(3) { "sc2" } else { "sc1" }.into(),
                size: v[4],
                created_at: Some(side.clock.now() - (v[5] % 1000) as i64),
                report_url: Some("eos://ok".into()),
                error_report_url: None,
            };
            shown(s.queue_archive(sub).await)
        }
        5 | 6 => {
            let afid = match v[1] % 4 {
                0 => v[2],
                1 => 100 + v[2] % 6,
                _ => 200 + v[2] % 6,
            };
            let sub = RetrieveSubmission {
                archive_file_id: afid,
                requester: Some(who),
                report_url: Some("eos://done".into()),
                created_at: Some(side.clock.now() - 10_000),
                ..RetrieveSubmission::default()
            };
            shown(s.queue_retrieve(sub).await.map(|(_, vid)| vid))
        }
        7 | 8 => {
            if side.sessions[drive].as_ref().is_some_and(|x| !x.popped.is_empty()) {
                return "busy".into();
            }
            if let Some(old) = side.sessions[drive].take() {
                s.end_mount(old).await.expect("end");
            }
            let got = s.next_mount(&format!("d{drive}"), true).await;
            let answer = shown(
                got.as_ref().map(|m| m.as_ref().map(|m| (m.spec.mount_type, m.spec.vid.clone()))).map_err(Clone::clone),
            );
            side.sessions[drive] = got.ok().flatten();
            answer
        }
        9..=11 => match side.sessions[drive].as_mut() {
            Some(sess) => shown(s.pop_jobs(sess, 1 + v[1] % 3, v[2]).await.map(|j| ids(&j))),
            None => "no session".into(),
        },
        12 | 13 => match side.sessions[drive].as_mut() {
            Some(sess) if !sess.popped.is_empty() => {
                let outcome = if v[1].is_multiple_of(4) { Outcome::Failure } else { Outcome::Success };
                let which = match v[2] % 3 {
                    0 => None,
                    1 => Some(vec![sess.popped[0].archive_file_id()]),
                    _ => Some(vec![v[3]]),
                };
                shown(s.complete_jobs(sess, which.as_deref(), outcome, Some("write error")).await)
            }
            _ => "nothing popped".into(),
        },
        14 => match side.sessions[drive].take() {
            Some(sess) => shown(s.end_mount(sess).await),
            None => "no session".into(),
        },
        15 => {
            let reports =
                s.report(ReportFilter::All, v[1].is_multiple_of(2).then_some(v[2]), !v[3].is_multiple_of(3)).await;
            shown(reports.map(|r| r.iter().map(|r| (r.archive_file_id, r.outcome)).collect::<Vec<_>>()))
        }
        16 => format!(
            "{} {} {}",
            shown(s.list_pending(JobKind::Archive, None, None).await),
            shown(s.list_pending(JobKind::Retrieve, None, None).await),
            shown(s.list_failed(JobKind::Archive).await),
        ),
        17 => shown(s.show_queues().await),
        18 => shown(s.cancel_archive(v[1]).await),
        19 => shown(s.cancel_retrieve(if v[2].is_multiple_of(2) { v[1] } else { 200 + v[1] % 6 }, None).await),
        20 => shown(
            s.edit_catalogue(CatalogueEdit::SetMountPolicy {
                name: "mp".into(),
                archive_priority: Some(v[1]),
                archive_min_request_age: None,
                retrieve_priority: Some(v[2]),
                retrieve_min_request_age: Some(v[3] % 100),
            })
            .await,
        ),
        21 => shown(
            s.edit_catalogue(CatalogueEdit::EditTape {
                vid: if v[2].is_multiple_of(2) { "T1" } else { "T2" }.into(),
                state: None,
                state_reason: None,
                full: Some(false),
                data_on_tape_bytes: Some(v[1]),
                last_fseq: Some(v[3]),
                logical_library: None,
                tape_pool: None,
            })
            .await,
        ),
        _ => {
            side.clock.set(side.clock.now() + (v[1] % 500) as i64);
            shown(s.explain_mount(&format!("d{drive}")).await.map(|d| d.chosen))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_give_identical_answers_on_every_backend() {
    let mut refused_above = 0;
    let mut saturated = 0;
    for seed in 1..=4u64 {
        let mut sides = Vec::new();
        for name in BACKENDS {
            sides.push((name, Side::new(name).await));
        }
        let mut rng = SeededRng(seed * 7919);
        for step in 0..150 {
            let op = rng.below(23);
            let v: Vec<u64> = (0..6)
                .map(|i| match i {
                    0 => rng.next_u64(),
                    2 | 4 => mostly_bounded(&mut rng),
                    _ => large(&mut rng),
                })
                .collect();
            let mut answers = Vec::new();
            for (name, side) in sides.iter_mut() {
                answers.push((*name, play(side, op, &v).await));
            }
            for (name, answer) in &answers[1..] {
                assert_eq!(
                    &answers[0].1, answer,
                    "seed {seed}, step {step}, op {op}, values {v:?}: {} (left) and {name} (right) differ",
                    answers[0].0
                );
            }
            let answer = &answers[0].1;
            if answer.contains(&format!("error {}", ErrorKind::InvalidArgument)) && v.iter().any(|x| *x > MAX) {
                refused_above += 1;
            }
            if answer.contains(&format!("bytes_queued: {MAX}")) {
                saturated += 1;
            }
        }
        let reference = sides[0].1.db.mount_info(0).await.expect("mount info");
        for (name, side) in &sides[1..] {
            assert_eq!(reference, side.db.mount_info(0).await.expect("mount info"), "seed {seed}, {name}");
        }
    }
    // The workloads did reach the bounds: values above them refused, totals shown saturated.
    assert!(refused_above > 10, "only {refused_above} refusals of values above 2^63-1");
    assert!(saturated > 0, "no total reached 2^63-1");
}

/// Each entry point refuses a value above 2^63-1 with `invalid_argument` naming the field, before
/// the backend is asked (the same on every backend), and accepts 2^63-1.
#[tokio::test]
async fn every_entry_point_refuses_values_above_the_bound() {
    for name in BACKENDS {
        let mut side = Side::new(name).await;
        let s = &side.scheduler;
        let who = Requester { name: "alice".into(), group: "it".into() };
        let sub = |id: Option<u64>, size: u64| ArchiveSubmission {
            archive_file_id: id,
            disk_instance: None,
            disk_file_id: None,
            requester: who.clone(),
            storage_class: "sc1".into(),
            size,
            created_at: None,
            report_url: None,
            error_report_url: None,
        };
        let refused = |r: Result<String>, field: &str| {
            let e = r.expect_err(field);
            assert_eq!(e.kind, ErrorKind::InvalidArgument, "{name}: {field}: {e}");
            assert!(e.message.contains(field), "{name}: {e} does not name {field}");
        };
        refused(s.queue_archive(sub(Some(MAX + 1), 1)).await.map(|v| v.to_string()), "archive_file_id");
        refused(s.queue_archive(sub(Some(1), u64::MAX)).await.map(|v| v.to_string()), "size");
        let batch = s.queue_archives(vec![sub(Some(2), MAX + 1), sub(Some(3), MAX)]).await.expect("batch");
        assert_eq!(batch[0].as_ref().expect_err("size").kind, ErrorKind::InvalidArgument, "{name}");
        assert_eq!(*batch[1].as_ref().expect("at the bound"), 3, "{name}");
        assert_eq!(s.queue_archive(sub(Some(MAX), MAX)).await.expect("at the bound"), MAX, "{name}");
        let retrieve = RetrieveSubmission {
            archive_file_id: MAX + 1,
            requester: Some(who.clone()),
            ..RetrieveSubmission::default()
        };
        refused(s.queue_retrieve(retrieve).await.map(|v| v.1), "archive_file_id");
        refused(s.cancel_archive(MAX + 1).await.map(|()| String::new()), "archive_file_id");
        refused(s.cancel_retrieve(u64::MAX, None).await.map(|n| n.to_string()), "archive_file_id");
        refused(s.report(ReportFilter::All, Some(MAX + 1), true).await.map(|_| String::new()), "max");
        let edit = CatalogueEdit::SetVo { name: "vo".into(), read_max_drives: Some(MAX + 1), write_max_drives: None };
        refused(s.edit_catalogue(edit).await.map(|()| String::new()), "read_max_drives");
        let edit = CatalogueEdit::SetDiskSystem {
            name: "none".into(),
            free_space_bytes: None,
            target_free_space_bytes: None,
            sleep_time: Some(MAX + 1),
        };
        refused(s.edit_catalogue(edit).await.map(|()| String::new()), "sleep_time");
        let mut tape = s.catalogue().snapshot().await.expect("snapshot").tapes["T2"].clone();
        tape.vid = "T9".into();
        tape.last_fseq = MAX + 1;
        refused(s.edit_catalogue(CatalogueEdit::AddTape(tape)).await.map(|()| String::new()), "last_fseq");
        let mut session = s.next_mount("d0", true).await.expect("mount").expect("a mount");
        let pop = s.pop_jobs(&mut session, MAX + 1, 10).await.map(|j| format!("{j:?}"));
        refused(pop, "max_files");
        let pop = s.pop_jobs(&mut session, 10, u64::MAX).await.map(|j| format!("{j:?}"));
        refused(pop, "max_bytes");
        let jobs = s.pop_jobs(&mut session, MAX, MAX).await.expect("pop at the bounds");
        assert_eq!(ids(&jobs), vec![(3, MAX)], "{name}: the batch stops where the total would pass 2^63-1");
        let done = s.complete_jobs(&mut session, Some(&[MAX + 1]), Outcome::Success, None).await;
        refused(done.map(|()| String::new()), "archive_file_id");
        side.sessions[0] = Some(session);
    }
}

//! The tape daemon and the producer's replay on a [`Pacer`] (the processes mode's drivers), with a
//! pacer that jumps instead of sleeping: with no lag the paced daemon does exactly what the
//! discrete-event loop does; with lag (steps later than due, as on a busy machine) the simulated
//! clock follows the pacer and every request is still done once; the replay applies each event
//! at its time, records refused requests, and stops when cancelled.

mod common;

use std::sync::Arc;

use common::*;
use tapesched_backends::Backend;
use tapesched_scheduler::clock::{Clock, ManualClock};
use tapesched_scheduler::scheduler::Scheduler;
use tapesched_scheduler::types::TapeState;
use tapesched_taped::daemon::{RunEnd, Summary};
use tapesched_taped::pace::Pacer;
use tapesched_taped::replay::{parse_events, replay, Applied, ReplayEnd};
use tapesched_taped::workload::DiskSide;

const LTO9: &[&str] = &["ULT11", "ULT12", "ULT13", "ULT14", "ULT15", "ULT16"];

/// Six LTO-9 drives, 300 archives of 5 GB queued at the start; the daemon run until four
/// simulated hours (paced with `lag_ms`, or discrete-event when `None`), then drained.
async fn four_hours(lag_ms: Option<i64>) -> (Summary, DiskSide, i64) {
    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", LTO9, "");
    let (mut built, open, _events) = daemon(Backend::ObjectstoreMemory, &text).await;
    let s = built.scheduler.clone();
    let queued = queue_archives(&s, "sc_pool_a", &[5_000_000_000; 300], |_| None).await;
    let stop = START * 1000 + 4 * HOUR_MS;
    let sim = built.sim.clone().expect("a simulated library");
    match lag_ms {
        None => {
            assert_eq!(built.daemon.run_until(stop, None).await.unwrap(), RunEnd::Reached);
            built.daemon.drain().await.unwrap();
        }
        Some(lag) => {
            let (pacer, mut rx) = JumpPacer::new(START * 1000, lag, stop);
            assert_eq!(built.daemon.run_paced(&*pacer, &mut rx).await, RunEnd::Cancelled);
            // The simulated clock never ran ahead of the pacer, nor past the stop.
            assert!(sim.clock().now_ms() <= pacer.now_ms() && pacer.now_ms() <= stop + lag);
            let waits = pacer.waits.lock().unwrap().clone();
            assert!(waits.windows(2).all(|w| w[0] <= w[1] + lag), "waits go forward: {waits:?}");
            // The drain starts at the stop, as the discrete-event loop's does.
            let (drain, _rx) = JumpPacer::new(pacer.now_ms().max(stop), lag, i64::MAX);
            built.daemon.drain_paced(&*drain).await;
            assert_eq!(sim.clock().now_ms(), drain.now_ms());
        }
    }
    let mut disk = DiskSide::new(false);
    disk.pump(&s).await.unwrap();
    assert_eq!(disk.archived.iter().copied().collect::<Vec<_>>(), queued, "every archive reported");
    assert_eq!((disk.duplicates, disk.failures.len()), (0, 0));
    let end = sim.clock().now_ms();
    open.close().await;
    (built.daemon.summary(), disk, end)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_without_lag_is_the_discrete_event_run() {
    let (events, _, _) = four_hours(None).await;
    let (paced, _, _) = four_hours(Some(0)).await;
    assert_eq!(paced, events);
    assert_eq!(paced.total().archived, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_steps_follow_the_pacer_and_lose_nothing() {
    let (summary, disk, _) = four_hours(Some(1_500)).await;
    assert_eq!((summary.total().archived, disk.archived.len()), (300, 300));
    assert_eq!(summary.total().failed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_applies_each_event_at_its_time_and_records_refusals() {
    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", LTO9, "");
    let cfg = config(&text);
    let open = Backend::ObjectstoreMemory.open().await.unwrap();
    let clock = Arc::new(ManualClock::new(START));
    let catalogue = tapesched_taped::setup::catalogue(&cfg).await.unwrap();
    let s = Scheduler::new(open.db.clone(), catalogue, clock.clone(), Default::default());
    let lines = [
        format!("{{\"at\":{},\"op\":\"queue_archive\",\"storage_class\":\"sc_pool_a\",\"size\":1000,\"count\":3}}", START + 10),
        format!("{{\"at\":{},\"op\":\"queue_archive\",\"storage_class\":\"no_such_class\",\"size\":1000}}", START + 20),
        format!("{{\"at\":{},\"op\":\"change_tape_state\",\"vid\":\"V00109\",\"state\":\"DISABLED\",\"reason\":\"test\"}}", START + 20),
        format!("{{\"at\":{},\"op\":\"mark_tape_full\",\"vid\":\"V00101\"}}", START + 30),
        format!("{{\"at\":{},\"op\":\"queue_repack\",\"vid\":\"V00102\",\"mount_policy\":\"mp\"}}", START + 30),
        format!("{{\"at\":{},\"op\":\"queue_repack\",\"vid\":\"V00103\",\"mount_policy\":\"nope\"}}", START + 30),
        format!("{{\"at\":{},\"op\":\"queue_archive\",\"storage_class\":\"sc_pool_b\",\"size\":7,\"first_archive_file_id\":500}}", START + 3_600),
        format!("{{\"at\":{},\"op\":\"queue_archive\",\"storage_class\":\"sc_pool_b\",\"size\":7}}", START + 7_200),
    ];
    let events = parse_events(&lines.join("\n"), "events.jsonl").unwrap();
    let (mut pacer, mut rx) = JumpPacer::new(START * 1000, 0, (START + 3_600) * 1000);
    Arc::get_mut(&mut pacer).unwrap().also = Some(clock.clone());
    let mut applied: Vec<Applied> = Vec::new();
    let end = replay(&s, &*pacer, &events, &mut rx, &mut |a| applied.push(a)).await;
    // The last event is due after the stop: cancelled before it, nothing of it applied.
    assert_eq!(end, ReplayEnd::Cancelled);
    assert_eq!(applied.len(), 7);
    assert_eq!(
        applied.iter().map(|a| (a.at, a.time)).collect::<Vec<_>>(),
        vec![
            (START + 10, START + 10),
            (START + 20, START + 20),
            (START + 20, START + 20),
            (START + 30, START + 30),
            (START + 30, START + 30),
            (START + 30, START + 30),
            (START + 3_600, START + 3_600)
        ]
    );
    assert_eq!(applied[0].requests.len(), 3);
    assert!(applied[0].requests.iter().all(|r| r.starts_with("archive:")) && applied[0].errors.is_empty());
    assert!(applied[1].requests.is_empty());
    assert!(applied[1].errors[0].contains("no_such_class"), "{:?}", applied[1].errors);
    assert_eq!((applied[2].op.as_str(), applied[2].errors.len()), ("change_tape_state", 0));
    assert_eq!((applied[3].op.as_str(), applied[3].errors.len()), ("mark_tape_full", 0));
    assert_eq!((applied[4].op.as_str(), applied[4].errors.clone()), ("queue_repack", vec![]));
    assert_eq!(applied[5].op, "queue_repack");
    assert!(applied[5].errors[0].contains("nope"), "an unknown mount policy is refused: {:?}", applied[5].errors);
    assert_eq!(applied[6].requests, vec!["archive:500".to_string()]);
    let snap = s.catalogue().snapshot().await.unwrap();
    assert_eq!(snap.tapes["V00109"].state, TapeState::Disabled);
    assert!(snap.tapes["V00101"].full);
    assert_eq!(snap.tapes["V00102"].state, TapeState::Repacking);
    let repacks = s.show_repacks().await.unwrap();
    assert_eq!(repacks.iter().map(|r| r.vid.as_str()).collect::<Vec<_>>(), ["V00102"]);
    assert_eq!(clock.now(), START + 3_600);
    let queued: u64 = s.show_queues().await.unwrap().iter().map(|q| q.files_queued).sum();
    assert_eq!(queued, 4);
    open.close().await;
}

#[test]
fn bad_event_lines_name_the_line_and_the_problem() {
    let err = |text: &str| parse_events(text, "e.jsonl").unwrap_err();
    assert!(err("{\"op\":\"queue_archive\"}").contains("e.jsonl:1: missing field `at`"));
    assert!(
        err("\n{\"at\":1,\"op\":\"fly\"}").starts_with("e.jsonl:2: unknown variant `fly`"),
        "{}",
        err("\n{\"at\":1,\"op\":\"fly\"}")
    );
    let e = err("{\"at\":1,\"op\":\"queue_retrieve\",\"archive_file_id\":1,\"colour\":\"red\"}");
    assert!(e.contains("unknown field `colour`"), "{e}");
    assert!(err("{\"at\":1.5,\"op\":\"queue_retrieve\",\"archive_file_id\":1}").contains("`at` must be whole seconds"));
    assert!(err("{\"at\":1,\"op\":\"queue_archive\",\"storage_class\":\"a\",\"size\":1,\"count\":0}")
        .contains("`count` must be at least 1"));
    let e = err("{\"at\":5,\"op\":\"queue_retrieve\",\"archive_file_id\":1}\n{\"at\":4,\"op\":\"queue_retrieve\",\"archive_file_id\":2}");
    assert!(e.contains("e.jsonl:2: at 4 is before the previous event's 5"), "{e}");
    assert!(err("[1]").contains("expected a JSON object"));
    let ok = parse_events("{\"at\":5,\"op\":\"queue_retrieve\",\"archive_file_id\":1}", "e").unwrap();
    assert_eq!(parse_events(&ok[0].to_line(), "e").unwrap(), ok);
}

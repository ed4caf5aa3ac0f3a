//! What the drive register sees of a drive session, through a catalogue that records every drive
//! status written to it (and can refuse one): the statuses of a mount from the probe to the
//! unload and of a drive error, and a drive whose step fails because the catalogue does not
//! answer, on virtual and on scaled time. Simulated library and PostgreSQL; no sleep.

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use common::*;
use tapesched_backends::Backend;
use tapesched_library::sim::Fault;
use tapesched_library::Library;
use tapesched_scheduler::catalogue::{Catalogue, CatalogueEdit};
use tapesched_scheduler::scheduler::Scheduler;
use tapesched_scheduler::types::DriveStatus;
use tapesched_scheduler::{Error, Result};
use tapesched_taped::daemon::RunEnd;
use tapesched_taped::pace::Pacer;
use tapesched_taped::session::Timeline;
use tapesched_taped::workload::DiskSide;
use tapesched_taped::Daemon;
use tapesched_testkit::catalogue::{BeforeApply, HookedCatalogue};

/// Records the drive statuses written to the catalogue and refuses the next write of status
/// `fail_on` once armed: a [`HookedCatalogue`]'s hook.
#[derive(Default)]
struct Recording {
    statuses: Mutex<Vec<(String, DriveStatus, Option<String>)>>,
    fail_on: Mutex<Option<DriveStatus>>,
}

impl Recording {
    fn of(&self, drive: &str) -> Vec<DriveStatus> {
        let mut out: Vec<DriveStatus> = Vec::new();
        for (d, s, _) in self.statuses.lock().unwrap().iter() {
            // The register's changes: a status written again is no change.
            if d == drive && out.last() != Some(s) {
                out.push(*s);
            }
        }
        out
    }
}

#[async_trait]
impl BeforeApply for Recording {
    async fn before_apply(&self, _inner: &dyn Catalogue, edit: &CatalogueEdit) -> Result<()> {
        if let CatalogueEdit::SetDrive(state) = edit {
            let mut fail = self.fail_on.lock().unwrap();
            if *fail == Some(state.status) {
                *fail = None;
                return Err(Error::unavailable(format!("catalogue unreachable (status {:?})", state.status)));
            }
            self.statuses.lock().unwrap().push((state.name.clone(), state.status, state.reason.clone()));
        }
        Ok(())
    }
}

/// The catalogue the recorded daemon's scheduler writes through.
type Recorded = HookedCatalogue<Recording>;

/// A daemon of one drive (ULT11 of `compat/mhvtl/lto9`) on PostgreSQL whose scheduler writes
/// through a [`Recorded`] catalogue; its events collected.
async fn recorded_daemon() -> (Daemon, Arc<Scheduler>, Arc<Recorded>, tapesched_backends::OpenBackend, Events) {
    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", &["ULT11"], "");
    let (built, open, events) = daemon(Backend::Postgres, &text).await;
    let sim = built.sim.clone().unwrap();
    let rec = Arc::new(HookedCatalogue { inner: built.scheduler.catalogue().clone(), hook: Recording::default() });
    let s =
        Arc::new(Scheduler::new(open.db.clone(), rec.clone(), sim.clock().clone(), built.scheduler.config().clone()));
    let shared = sim_shared(s.clone(), &sim, built.daemon.shared().barcodes.clone());
    let mut d = Daemon::new(shared, &["ULT11".to_string()]);
    let sink = events.clone();
    d.set_on_event(Arc::new(move |l: &str| sink.lock().unwrap().push(l.to_string())));
    (d, s, rec, open, events)
}

type Events = Arc<Mutex<Vec<String>>>;

/// A mount from the probe to the unload writes each of its statuses to the register in order;
/// a drive error then writes CleaningUp and Down with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_register_sees_each_status_of_a_mount_and_of_a_drive_error() {
    let (mut d, s, rec, open, _events) = recorded_daemon().await;
    queue_archives(&s, "sc_pool_a", &[10_000_000_000; 10], |_| None).await;
    d.run_until(START * 1000 + 2 * HOUR_MS, None).await.unwrap();
    use DriveStatus::*;
    assert_eq!(rec.hook.of("ULT11"), vec![Probing, Up, Starting, Mounting, Transferring, Unloading, Up]);
    assert_eq!(d.summary().total().archived, 10);

    queue_archives(&s, "sc_pool_a", &[10_000_000_000; 10], |_| None).await;
    let mut t = START * 1000 + 2 * HOUR_MS;
    while d.drives()[0].status() != Transferring {
        t += 10_000;
        assert!(t < START * 1000 + 4 * HOUR_MS, "the drive transfers again");
        d.run_until(t, None).await.unwrap();
    }
    let sim = match &d.shared().timeline {
        Timeline::Sim(lib) => lib.clone(),
        Timeline::Wall => unreachable!(),
    };
    sim.inject(Fault::DriveError { drive: "ULT11".into(), message: "write error: medium error 3/0C00".into() })
        .unwrap();
    d.run_until(START * 1000 + 6 * HOUR_MS, None).await.unwrap();
    let after: Vec<DriveStatus> = rec.hook.of("ULT11").into_iter().skip(7).collect();
    assert_eq!(&after[..3], &[Starting, Mounting, Transferring], "{after:?}");
    // Ending the failed mount keeps the drive CleaningUp: it is never shown Up before Down.
    assert_eq!(&after[3..], &[CleaningUp, Down], "{after:?}");
    let last = rec.hook.statuses.lock().unwrap().last().cloned().unwrap();
    assert!(last.2.as_deref().unwrap_or_default().contains("medium error 3/0C00"), "{last:?}");
    open.close().await;
}

/// Every one of `ids` archived and reported exactly once, none failed, the drive shut down.
async fn each_archived_once_and_shut_down(d: &Daemon, s: &Scheduler, ids: &[u64]) {
    let mut disk = DiskSide::new(false);
    disk.pump(s).await.unwrap();
    assert_eq!(disk.archived, ids.iter().copied().collect::<BTreeSet<_>>());
    assert_eq!((disk.duplicates, disk.failures.len()), (0, 0));
    assert_eq!(d.summary().drives[0].status, DriveStatus::Shutdown);
}

/// The catalogue does not answer when the drive reports Transferring (its batch popped, the
/// cartridge in the drive): the step fails; the drive leaves its mount to the collector (out of
/// the daemon's heartbeat, abandoned) and probes again after the idle pause, taking the cartridge
/// out; once the collector has handed the batch back, every file is archived exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_hands_its_mount_to_the_collector_and_the_drive_goes_on() {
    let (mut d, s, rec, open, events) = recorded_daemon().await;
    let ids = queue_archives(&s, "sc_pool_a", &[10_000_000_000; 40], |_| None).await;
    *rec.hook.fail_on.lock().unwrap() = Some(DriveStatus::Transferring);
    let e = d.run_until(START * 1000 + 600_000, None).await.unwrap_err();
    assert!(e.to_string().contains("catalogue unreachable"), "{e}");
    assert!(d.shared().mounts.held().is_empty(), "the failed mount is no longer beaten");
    assert!(!d.drives()[0].finished(), "the drive goes on");
    let failed_at = d.shared().timeline.now_ms();
    assert_eq!(d.drives()[0].next_at_ms(), failed_at + 60_000, "it probes again after idle_ms");
    let sim = match &d.shared().timeline {
        Timeline::Sim(lib) => lib.clone(),
        Timeline::Wall => unreachable!(),
    };
    assert!(sim.status("ULT11").await.unwrap().barcode.is_some(), "the cartridge is still in the drive");

    // The collector (another process) hands the abandoned mount's batch back.
    let collector = pg_collector(&open, 900, &s, s.catalogue().clone(), sim.clock().clone()).await;
    assert!(collector.garbage_collect().await.unwrap() > 0, "the abandoned mount's jobs go back");
    d.run_until(START * 1000 + 8 * HOUR_MS, None).await.unwrap();
    d.drain().await.unwrap();
    let lines = events.lock().unwrap().clone();
    assert!(lines.iter().any(|l| l.contains("abandoned to the collector")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("ULT11 cleaned up V00")), "{lines:#?}");
    each_archived_once_and_shut_down(&d, &s, &ids).await;
    open.close().await;
}

/// The same failure on the scaled clock (the processes mode, `taped --clock`): the run does not
/// end with it (before, the daemon exited and its mounts waited for the collector with nobody to
/// drive them); the failure is an event line, the drive probes again after the idle pause, and once
/// the collector has handed the batch back every file is archived exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_step_on_the_scaled_clock_is_said_and_the_run_goes_on() {
    let (mut d, s, rec, open, events) = recorded_daemon().await;
    let ids = queue_archives(&s, "sc_pool_a", &[10_000_000_000; 40], |_| None).await;
    *rec.hook.fail_on.lock().unwrap() = Some(DriveStatus::Transferring);
    let (pacer, mut rx) = JumpPacer::new(START * 1000, 0, START * 1000 + 600_000);
    assert_eq!(d.run_paced(&*pacer, &mut rx).await, RunEnd::Cancelled, "the run ends only when cancelled");
    let lines = events.lock().unwrap().clone();
    assert!(
        lines.iter().any(|l| l.contains("ULT11 step failed: ") && l.contains("catalogue unreachable")),
        "{lines:#?}"
    );
    let abandoned: u64 = lines
        .iter()
        .find_map(|l| l.split("step failed: mount ").nth(1)?.strip_suffix(" abandoned to the collector")?.parse().ok())
        .unwrap_or_else(|| panic!("a mount abandoned: {lines:#?}"));
    assert!(!d.shared().mounts.held().contains(&abandoned), "the failed mount is no longer beaten");
    assert!(!d.drives()[0].finished(), "the drive goes on");
    let sim = match &d.shared().timeline {
        Timeline::Sim(lib) => lib.clone(),
        Timeline::Wall => unreachable!(),
    };
    let collector = pg_collector(&open, 900, &s, s.catalogue().clone(), sim.clock().clone()).await;
    assert!(collector.garbage_collect().await.unwrap() > 0, "the abandoned mount's jobs go back");

    let (pacer, mut rx) = JumpPacer::new(pacer.now_ms(), 0, START * 1000 + 8 * HOUR_MS);
    assert_eq!(d.run_paced(&*pacer, &mut rx).await, RunEnd::Cancelled);
    let (drain, _rx) = JumpPacer::new(pacer.now_ms(), 0, i64::MAX);
    d.drain_paced(&*drain).await;
    each_archived_once_and_shut_down(&d, &s, &ids).await;
    open.close().await;
}

/// A step that fails while the daemon drains (SIGTERM) stops the drive at once: no probe again,
/// which could wait forever for a backend that does not come back. Its mount, if any, is left to
/// the collector, as for any failed step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_failed_while_draining_stops_the_drive() {
    let (mut d, s, rec, open, events) = recorded_daemon().await;
    queue_archives(&s, "sc_pool_a", &[10_000_000_000; 4], |_| None).await;
    d.run_until(START * 1000 + HOUR_MS, None).await.unwrap();
    *rec.hook.fail_on.lock().unwrap() = Some(DriveStatus::Shutdown);
    let before = rec.hook.of("ULT11").len();
    let (drain, _rx) = JumpPacer::new(START * 1000 + HOUR_MS, 0, i64::MAX);
    d.drain_paced(&*drain).await;
    assert!(d.drives()[0].finished(), "the drive stopped");
    let lines = events.lock().unwrap().clone();
    assert!(lines.iter().any(|l| l.contains("ULT11 stopped: a step failed while draining")), "{lines:#?}");
    let after = rec.hook.of("ULT11")[before..].to_vec();
    assert!(!after.contains(&DriveStatus::Probing), "no probe after the failure: {after:?}");
    open.close().await;
}

//! The tape daemon on the simulated library against real PostgreSQL and Redis (a namespace per
//! test): a simulated day on ten drives, a full tape, a drive error, a drain. Everything runs in
//! virtual time: no sleep, no wall-clock assertion, fixed seeds.

mod common;

use std::collections::BTreeSet;

use common::*;
use tapesched_backends::Backend;
use tapesched_library::sim::Fault;
use tapesched_scheduler::types::DriveStatus;
use tapesched_taped::daemon::RunEnd;
use tapesched_taped::workload::DiskSide;

const TEN: &[&str] = &["ULT31", "ULT32", "ULT33", "ULT34", "ULT35", "ULT36", "ULT37", "ULT38", "ULT39", "ULT40"];

async fn day_on_ten_drives(backend: Backend) {
    let text = config_text("compat/mhvtl/lto9x10", 30, "compat/taped/lto9x10.yml", TEN, "");
    let (mut built, open, _events) = daemon(backend, &text).await;
    let s = built.scheduler.clone();
    let mut disk = DiskSide::new(true);
    let mut rng = Rng(13);
    let mut queued = BTreeSet::new();
    // 16 hourly waves of 150 archives (1 to 8 GB) alternating between the two pools; each file is
    // retrieved once its archive is reported; the rest of the day drains the queues.
    for hour in 0..24 {
        if hour < 16 {
            let sizes: Vec<u64> = (0..150).map(|_| (1 + rng.below(8)) * 1_000_000_000).collect();
            let class = if hour % 2 == 0 { "sc_pool_a" } else { "sc_pool_b" };
            queued.extend(queue_archives(&s, class, &sizes, |_| None).await);
        }
        for quarter in 1..=4 {
            let until = START * 1000 + hour * HOUR_MS + quarter * HOUR_MS / 4;
            assert_eq!(built.daemon.run_until(until, None).await.unwrap(), RunEnd::Reached);
            disk.pump(&s).await.unwrap();
        }
    }
    built.daemon.drain().await.unwrap();
    disk.pump(&s).await.unwrap();
    let summary = built.daemon.summary();
    println!("{}", summary.render());
    let total = summary.total();
    assert_eq!(queued.len(), 2400);
    assert_eq!(disk.archived, queued, "every archive reported once");
    assert_eq!(disk.retrieved, queued, "every file retrieved once");
    assert_eq!((disk.duplicates, disk.failures.len()), (0, 0));
    assert_eq!((total.archived, total.retrieved, total.failed, total.drive_errors), (2400, 2400, 0, 0));
    assert!(summary.drives.iter().all(|d| d.stats.mounts > 0), "every drive worked: {summary:?}");
    assert!(s.show_queues().await.unwrap().is_empty());
    let snap = s.catalogue().snapshot().await.unwrap();
    for d in TEN {
        assert_eq!(snap.drives[*d].status, DriveStatus::Shutdown, "{d}");
    }
    open.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn day_on_ten_drives_postgres() {
    day_on_ten_drives(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn day_on_ten_drives_redis() {
    day_on_ten_drives(Backend::ObjectstoreRedis).await;
}

/// Files of 5 TB on 18 TB LTO-9 tapes: the fourth does not fit, the tape is marked full, the
/// mount ends, and the next decision takes the pool's next tape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_tape_then_the_pools_next_tape() {
    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", &["ULT11"], "");
    let (mut built, open, events) = daemon(Backend::Postgres, &text).await;
    let s = built.scheduler.clone();
    let ids = queue_archives(&s, "sc_pool_a", &[5_000_000_000_000; 7], |_| None).await;
    let mut disk = DiskSide::new(false);
    // Seven files of 3.5 hours each at 400 MB/s.
    built.daemon.run_until(START * 1000 + 36 * HOUR_MS, None).await.unwrap();
    disk.pump(&s).await.unwrap();
    let summary = built.daemon.summary();
    assert_eq!(disk.archived, ids.iter().copied().collect::<BTreeSet<_>>());
    assert_eq!(summary.total().tapes_full, 2, "{summary:?}");
    assert_eq!(summary.total().mounts, 3);
    let snap = s.catalogue().snapshot().await.unwrap();
    let mut vids = BTreeSet::new();
    for id in &ids {
        let f = s.catalogue().archive_file(*id).await.unwrap().unwrap();
        vids.insert(f.copies[0].vid.clone());
    }
    assert_eq!(vids.len(), 3, "three tapes used: {vids:?}");
    assert_eq!(vids.iter().filter(|v| snap.tapes[*v].full).count(), 2);
    assert!(events.lock().unwrap().iter().any(|l| l.contains("tape full")));
    assert_eq!(built.daemon.drives()[0].status(), DriveStatus::Up);
    open.close().await;
}

/// A drive error in the middle of a batch: the drive goes Down with the reason, its jobs go back
/// to the queue, the other drive writes them; every file archived exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drive_error_puts_the_drive_down_and_loses_no_job() {
    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", &["ULT11", "ULT12"], "");
    let (mut built, open, _events) = daemon(Backend::ObjectstoreRedis, &text).await;
    let s = built.scheduler.clone();
    let ids = queue_archives(&s, "sc_pool_a", &[10_000_000_000; 300], |_| None).await;
    // Past the minimum request age (300 s) and the mount (robot move + load): both drives write.
    built.daemon.run_until(START * 1000 + 600_000, None).await.unwrap();
    let writing: Vec<_> = built.daemon.drives().iter().filter(|d| d.status() == DriveStatus::Transferring).collect();
    assert!(!writing.is_empty(), "a drive is transferring");
    let victim = writing[0].name().to_string();
    let sim = built.sim.clone().unwrap();
    sim.inject(Fault::DriveError { drive: victim.clone(), message: "write error: medium error 3/0C00".into() })
        .unwrap();
    built.daemon.run_until(START * 1000 + 24 * HOUR_MS, None).await.unwrap();
    let mut disk = DiskSide::new(false);
    disk.pump(&s).await.unwrap();
    assert_eq!(disk.archived, ids.iter().copied().collect::<BTreeSet<_>>());
    assert_eq!((disk.duplicates, disk.failures.len()), (0, 0));
    let summary = built.daemon.summary();
    let down = summary.drives.iter().find(|d| d.name == victim).unwrap();
    assert_eq!(down.status, DriveStatus::Down);
    assert!(down.down_reason.as_deref().unwrap().contains("medium error"), "{down:?}");
    assert!(down.stats.handed_back > 0);
    assert_eq!(summary.total().drive_errors, 1);
    let snap = s.catalogue().snapshot().await.unwrap();
    assert_eq!(snap.drives[&victim].status, DriveStatus::Down);
    let reason = snap.drives[&victim].reason.clone().unwrap_or_default();
    assert!(reason.contains("medium error 3/0C00"), "the register keeps why the drive is Down: {reason:?}");
    open.close().await;
}

/// A fault of the configuration (`[[library.faults]]`) is injected when the library's clock
/// reaches its time: its drive goes Down with the fault's message, kept in the drive register;
/// the other drive writes everything, each file once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_fault_puts_its_drive_down_at_its_time() {
    let at = START + 900;
    let extra = format!("\n[[library.faults]]\nat = {at}\ndrive = \"ULT11\"\nmessage = \"configured: medium error\"\n");
    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", &["ULT11", "ULT12"], &extra);
    let (mut built, open, events) = daemon(Backend::Postgres, &text).await;
    let s = built.scheduler.clone();
    let ids = queue_archives(&s, "sc_pool_a", &[10_000_000_000; 80], |_| None).await;
    built.daemon.run_until(at * 1000 - 1, None).await.unwrap();
    assert!(built.daemon.drives().iter().all(|d| d.status() != DriveStatus::Down), "nothing Down before");
    built.daemon.run_until(START * 1000 + 24 * HOUR_MS, None).await.unwrap();
    let mut disk = DiskSide::new(false);
    disk.pump(&s).await.unwrap();
    assert_eq!(disk.archived, ids.iter().copied().collect::<BTreeSet<_>>());
    assert_eq!((disk.duplicates, disk.failures.len()), (0, 0));
    let down = &built.daemon.drives()[0];
    assert_eq!((down.name(), down.status()), ("ULT11", DriveStatus::Down));
    let snap = s.catalogue().snapshot().await.unwrap();
    assert_eq!(snap.drives["ULT11"].reason.as_deref(), Some("drive ULT11 error: configured: medium error"));
    let lines = events.lock().unwrap().clone();
    let line = lines.iter().find(|l| l.contains("ULT11 down")).expect("a line says the drive went Down");
    let t: i64 = line.trim_start_matches("t=").split_whitespace().next().unwrap().parse().unwrap();
    assert!(t >= at, "Down at {t}, not before the fault's time {at}: {line}");
    open.close().await;
}

/// A cartridge stuck in its drive (`stuck_on_unload`): the drive goes Down after a second
/// attempt to take it out, and the tape leaves service (DISABLED, with why) so that no other
/// drive goes Down trying to mount it; the other drive writes everything, each file once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_cartridge_takes_its_drive_down_and_its_tape_out_of_service() {
    let extra = format!("\n[[library.faults]]\nat = {}\ndrive = \"ULT11\"\nkind = \"stuck_on_unload\"\n", START + 60);
    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", &["ULT11", "ULT12"], &extra);
    let (mut built, open, events) = daemon(Backend::Postgres, &text).await;
    let s = built.scheduler.clone();
    let ids = queue_archives(&s, "sc_pool_a", &[10_000_000_000; 80], |_| None).await;
    built.daemon.run_until(START * 1000 + 24 * HOUR_MS, None).await.unwrap();
    let mut disk = DiskSide::new(false);
    disk.pump(&s).await.unwrap();
    assert_eq!(disk.archived, ids.iter().copied().collect::<BTreeSet<_>>());
    assert_eq!((disk.duplicates, disk.failures.len()), (0, 0));
    let lines = events.lock().unwrap().clone();
    let down = &built.daemon.drives()[0];
    assert_eq!((down.name(), down.status()), ("ULT11", DriveStatus::Down), "{lines:#?}");
    assert!(down.down_reason().unwrap().contains("could not be taken out"), "{:?}", down.down_reason());
    let line = lines.iter().find(|l| l.contains("ULT11 tape ") && l.contains(" disabled: ")).expect("a tape disabled");
    let vid = line.split_whitespace().nth(3).unwrap().to_string();
    let snap = s.catalogue().snapshot().await.unwrap();
    let tape = &snap.tapes[&vid];
    assert_eq!(tape.state, tapesched_scheduler::types::TapeState::Disabled, "{tape:?}");
    assert!(tape.state_reason.as_deref().unwrap_or_default().contains("cartridge left in drive ULT11"), "{tape:?}");
    assert!(lines.iter().all(|l| !l.contains("ULT12 down")), "{lines:#?}");
    open.close().await;
}

/// A tape the catalogue gains after the daemon read the library's inventory, with no cartridge
/// in the library: the drive given its mount ends it and takes the tape out of service
/// (DISABLED, with why) instead of going Down, so that the drives do not go Down one after the
/// other; once a tape with a cartridge can be written, every file is archived once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tape_without_a_cartridge_leaves_service_and_no_drive_goes_down() {
    use tapesched_scheduler::catalogue::CatalogueEdit;
    use tapesched_scheduler::types::TapeState;
    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", &["ULT11", "ULT12"], "");
    let (mut built, open, events) = daemon(Backend::Postgres, &text).await;
    let s = built.scheduler.clone();
    let full = |vid: &str, full: bool| {
        let mut edit = CatalogueEdit::tape_full(vid);
        if let CatalogueEdit::EditTape { full: f, .. } = &mut edit {
            *f = Some(full);
        }
        edit
    };
    // pool_a's tapes are all full; V00199 joins it, empty, with no cartridge in library 10.
    for n in 101..=108 {
        s.edit_catalogue(full(&format!("V00{n}"), true)).await.unwrap();
    }
    // A copy of V00101, renamed, empty and not full.
    let mut tape = s.catalogue().snapshot().await.unwrap().tapes["V00101"].clone();
    (tape.vid, tape.full, tape.data_on_tape_bytes, tape.last_fseq) = ("V00199".into(), false, 0, 0);
    s.edit_catalogue(CatalogueEdit::AddTape(tape)).await.unwrap();
    let ids = queue_archives(&s, "sc_pool_a", &[10_000_000_000; 20], |_| None).await;
    built.daemon.run_until(START * 1000 + 4 * HOUR_MS, None).await.unwrap();
    let lines = events.lock().unwrap().clone();
    assert!(lines.iter().all(|l| !l.contains(" down: ")), "{lines:#?}");
    assert!(built.daemon.drives().iter().all(|d| d.status() != DriveStatus::Down), "{lines:#?}");
    let snap = s.catalogue().snapshot().await.unwrap();
    let t = &snap.tapes["V00199"];
    assert_eq!(t.state, TapeState::Disabled, "{t:?}");
    assert!(t.state_reason.as_deref().unwrap_or_default().contains("no cartridge in the library"), "{t:?}");
    // Nothing could be written meanwhile; with V00101 writable again, everything is, once.
    let mut disk = DiskSide::new(false);
    disk.pump(&s).await.unwrap();
    assert!(disk.archived.is_empty(), "{:?}", disk.archived);
    s.edit_catalogue(full("V00101", false)).await.unwrap();
    built.daemon.run_until(START * 1000 + 24 * HOUR_MS, None).await.unwrap();
    disk.pump(&s).await.unwrap();
    assert_eq!(disk.archived, ids.iter().copied().collect::<BTreeSet<_>>());
    assert_eq!((disk.duplicates, disk.failures.len()), (0, 0));
    open.close().await;
}

/// A fault for a drive the server does not run is refused with its line.
#[test]
fn a_fault_for_a_drive_not_run_is_refused_with_its_line() {
    let extra = "\n[[library.faults]]\nat = 1\ndrive = \"ULT99\"\n";
    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", &["ULT11"], extra);
    let e = tapesched_taped::Config::parse(&text, &root().join("t.toml")).unwrap_err();
    assert_eq!(e.line, Some(text.lines().count()), "{e}");
    assert!(e.message.contains("drive ULT99 is not one of [[drives]]"), "{e}");
}

/// A drain (SIGTERM) in the middle of a batch: the file in flight is finished and reported, the
/// rest of the batch goes back to the queue, the cartridge is unloaded, the drive is Shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_finishes_the_file_in_flight_and_hands_back_the_rest() {
    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", &["ULT11"], "");
    let (mut built, open, _events) = daemon(Backend::Postgres, &text).await;
    let s = built.scheduler.clone();
    let ids = queue_archives(&s, "sc_pool_a", &[10_000_000_000; 100], |_| None).await;
    let (tx, rx) = tokio::sync::watch::channel(false);
    built.daemon.run_until(START * 1000 + 600_000, Some(&rx)).await.unwrap();
    assert_eq!(built.daemon.drives()[0].status(), DriveStatus::Transferring);
    tx.send(true).unwrap();
    assert_eq!(built.daemon.run_until(START * 1000 + HOUR_MS, Some(&rx)).await.unwrap(), RunEnd::Cancelled);
    built.daemon.drain().await.unwrap();
    let summary = built.daemon.summary();
    let st = &summary.drives[0].stats;
    assert!(st.archived > 0 && st.archived < 100, "{st:?}");
    assert!(st.handed_back < 8, "at most the rest of one batch of 80 GB: {st:?}");
    let queued: u64 = s.show_queues().await.unwrap().iter().map(|q| q.files_queued).sum();
    assert_eq!(queued, 100 - st.archived);
    let mut disk = DiskSide::new(false);
    disk.pump(&s).await.unwrap();
    assert_eq!(disk.archived.len() as u64, st.archived);
    assert!(disk.archived.iter().all(|id| ids.contains(id)));
    assert_eq!(summary.drives[0].status, DriveStatus::Shutdown);
    let sim = built.sim.clone().unwrap();
    use tapesched_library::Library;
    assert_eq!(sim.status("ULT11").await.unwrap().barcode, None, "unloaded and put back");
    open.close().await;
}

/// The daemon's heartbeat keeps its mounts alive between pops: with batches of eight 10 GB files
/// (about 200 s between pops) and a collector whose time-out is 120 s, the running daemon's
/// mount is never collected; once the daemon stops running, it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_daemon_keeps_its_mounts_alive_between_pops() {
    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", &["ULT11"], "");
    let (mut built, open, _events) = daemon(Backend::Postgres, &text).await;
    let s = built.scheduler.clone();
    queue_archives(&s, "sc_pool_a", &[10_000_000_000; 300], |_| None).await;
    let sim = built.sim.clone().unwrap();
    let collector = pg_collector(&open, 120, &s, s.catalogue().clone(), sim.clock().clone()).await;
    // Every 50 simulated seconds for an hour, the collector finds nothing dead.
    for k in 1..=72 {
        built.daemon.run_until(START * 1000 + 600_000 + k * 50_000, None).await.unwrap();
        assert_eq!(collector.garbage_collect().await.unwrap(), 0, "at +{} s", 600 + k * 50);
    }
    assert_eq!(built.daemon.drives()[0].status(), DriveStatus::Transferring);
    let (beats, _) = built.daemon.shared().times.get(tapesched_taped::timing::Op::Heartbeat);
    assert!((60..=80).contains(&beats), "one heartbeat a minute: {beats}");
    // The daemon stops running: three minutes later its mount is dead and collected.
    sim.clock().advance_to_ms(START * 1000 + 600_000 + 72 * 50_000 + 180_000);
    assert!(collector.garbage_collect().await.unwrap() > 0, "the silent mount's jobs go back");
    open.close().await;
}

/// A daemon killed in the middle of a mount (dropped: no drain, no end of mount): the collector
/// of dead mounts (`db collect --mount-timeout`) hands its jobs back once its heartbeat is old
/// enough, and a restarted daemon probes its drive, finds the cartridge left in it, takes it out
/// (CleaningUp), does not append to the tape that holds unreported files, and archives everything
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_daemon_is_collected_and_a_restarted_one_starts_cleanly() {
    use std::sync::Arc;
    use tapesched_library::Library;
    use tapesched_taped::Daemon;

    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", &["ULT11"], "");
    let (mut built, open, events) = daemon(Backend::Postgres, &text).await;
    let s = built.scheduler.clone();
    let ids = queue_archives(&s, "sc_pool_a", &[10_000_000_000; 40], |_| None).await;
    built.daemon.run_until(START * 1000 + 600_000, None).await.unwrap();
    assert_eq!(built.daemon.drives()[0].status(), DriveStatus::Transferring);
    let sim = built.sim.clone().unwrap();
    let catalogue = s.catalogue().clone();
    let barcodes = built.daemon.shared().barcodes.clone();
    drop(built); // killed: the mount stays recorded, the cartridge stays in the drive
    assert!(sim.status("ULT11").await.unwrap().barcode.is_some());

    // The collector, with a 10-minute heartbeat time-out, an hour later on the simulated clock.
    sim.clock().advance_to_ms(START * 1000 + HOUR_MS);
    let s2 = Arc::new(pg_collector(&open, 600, &s, catalogue, sim.clock().clone()).await);
    let requeued = s2.garbage_collect().await.unwrap();
    assert!(requeued > 0, "the dead mount's jobs go back");

    // The restarted daemon.
    let shared = sim_shared(s2.clone(), &sim, barcodes);
    let mut d = Daemon::new(shared, &["ULT11".to_string()]);
    let sink = events.clone();
    d.set_on_event(Arc::new(move |l: &str| sink.lock().unwrap().push(l.to_string())));
    d.run_until(START * 1000 + 6 * HOUR_MS, None).await.unwrap();
    d.drain().await.unwrap();
    assert!(events.lock().unwrap().iter().any(|l| l.contains("ULT11 cleaned up V00")), "{:?}", events.lock().unwrap());
    // The killed mount wrote files it never reported: that tape is not written again.
    assert!(events.lock().unwrap().iter().any(|l| l.contains("the catalogue knows 16: marked full, not written")));
    let mut disk = DiskSide::new(false);
    disk.pump(&s2).await.unwrap();
    assert_eq!(disk.archived, ids.iter().copied().collect::<BTreeSet<_>>());
    assert_eq!(disk.duplicates, 0);
    assert_eq!(d.summary().drives[0].status, DriveStatus::Shutdown);
    open.close().await;
}

/// The wall-clock driver (mhVTL's), here over the simulated library: cancelled from the start, every
/// drive probes and stops (Shutdown) without mounting, and the run returns its summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wall_clock_driver_stops_its_drives_on_cancel() {
    use tapesched_taped::data::DataPath;
    use tapesched_taped::session::{Shared, Timeline};
    use tapesched_taped::Daemon;

    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", &["ULT11", "ULT12"], "");
    let (built, open, _events) = daemon(Backend::Postgres, &text).await;
    let sim = built.sim.clone().unwrap();
    let shared = Shared {
        scheduler: built.scheduler.clone(),
        library: sim.clone(),
        timeline: Timeline::Wall,
        data: DataPath::Sizes,
        batch_files: 10,
        batch_bytes: 1 << 40,
        idle_ms: 60_000,
        heartbeat_ms: 60_000,
        barcodes: built.daemon.shared().barcodes.clone(),
        on_event: None,
        times: Default::default(),
        mounts: Default::default(),
    };
    let d = Daemon::new(shared, &["ULT11".to_string(), "ULT12".to_string()]);
    let (_tx, rx) = tokio::sync::watch::channel(true);
    let summary = d.run_realtime(rx).await;
    assert_eq!(summary.drives.len(), 2);
    assert!(summary.drives.iter().all(|d| d.status == DriveStatus::Shutdown && d.stats.mounts == 0), "{summary:?}");
    let snap = built.scheduler.catalogue().snapshot().await.unwrap();
    assert_eq!(snap.drives["ULT12"].status, DriveStatus::Shutdown);
    open.close().await;
}

/// What a run left behind, for comparing two runs: the event lines, the summary, every file's
/// copies (tape, fSeq), the library as `mtx status` shows it, and how many steps it took.
async fn outcome(multi_file_steps: bool) -> (Vec<String>, String, Vec<String>, String, u64) {
    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", &["ULT11", "ULT12"], "");
    let (mut built, open, events) = daemon(Backend::ObjectstoreMemory, &text).await;
    built.daemon.set_multi_file_steps(multi_file_steps);
    let s = built.scheduler.clone();
    let mut rng = Rng(7);
    // First 600 files of 1 to 8 GB (seconds each: several per step), then files of 3 to 5 TB
    // (hours each): an 18 TB tape fills up in about 12 hours. Retrieves follow the reports.
    let small: Vec<u64> = (0..600).map(|_| (1 + rng.below(8)) * 1_000_000_000).collect();
    let mut ids = queue_archives(&s, "sc_pool_a", &small, |_| None).await;
    let sizes: Vec<u64> = (0..24).map(|_| (3 + rng.below(3)) * 1_000_000_000_000).collect();
    ids.extend(queue_archives(&s, "sc_pool_a", &sizes, |_| None).await);
    let mut disk = DiskSide::new(true);
    let sim = built.sim.clone().unwrap();
    for quarter in 1..=80 {
        built.daemon.run_until(START * 1000 + quarter * HOUR_MS / 4, None).await.unwrap();
        disk.pump(&s).await.unwrap();
        if quarter == 1 {
            // A drive error on ULT12's next operation, whatever it is.
            sim.inject(Fault::DriveError { drive: "ULT12".into(), message: "medium error 3/0C00".into() }).unwrap();
        }
    }
    // A drain at a quarter hour, mid-batch for a writing drive.
    built.daemon.drain().await.unwrap();
    disk.pump(&s).await.unwrap();
    let mut copies = Vec::new();
    for id in &ids {
        let f = s.catalogue().archive_file(*id).await.unwrap();
        copies.push(format!(
            "{id}: {:?}",
            f.map(|f| f.copies.iter().map(|c| (c.vid.clone(), c.fseq)).collect::<Vec<_>>())
        ));
    }
    let lines = events.lock().unwrap().clone();
    let steps = built.daemon.shared().times.get(tapesched_taped::timing::Op::Step).0;
    let out = (lines, built.daemon.summary().render(), copies, sim.mtx_status("/dev/sg0"), steps);
    open.close().await;
    out
}

/// Several files per step (the default) and one file per step give the same run: the same event
/// lines at the same simulated times (mounts, full tapes, the drive error, ends of mounts, the
/// drain), the same summary, every file at the same tape and fSeq, the same library.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_files_per_step_change_nothing() {
    let (events_a, summary_a, copies_a, mtx_a, steps_a) = outcome(true).await;
    let (events_b, summary_b, copies_b, mtx_b, steps_b) = outcome(false).await;
    assert!(steps_a < steps_b, "fewer steps: {steps_a} against {steps_b}");
    assert!(events_a.iter().any(|l| l.contains("tape full")), "{events_a:?}");
    assert!(events_a.iter().any(|l| l.contains("down: ") && l.contains("medium error")), "{events_a:?}");
    assert!(summary_a.contains("ULT11"), "{summary_a}");
    assert_eq!(events_a, events_b);
    assert_eq!(summary_a, summary_b);
    assert_eq!(copies_a, copies_b);
    assert_eq!(mtx_a, mtx_b);
}

/// A daemon started beside a catalogue that already records files on a tape finds them on the
/// simulated cartridge (the library is preloaded from the catalogue), so their recalls succeed
/// and the tape is written on after its last file, not marked inconsistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_recorded_before_the_start_are_on_the_simulated_tape() {
    use tapesched_taped::workload::retrieve_of;

    let dir = std::env::temp_dir().join(format!("taped-preload-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cat = std::fs::read_to_string(root().join("compat/taped/lto9.yml")).unwrap();
    cat = cat.replace(
        "  - {vid: V00101, tape_pool: pool_a, logical_library: lib, capacity_bytes: 18000000000000}",
        "  - {vid: V00101, tape_pool: pool_a, logical_library: lib, capacity_bytes: 18000000000000, last_fseq: 3}",
    );
    cat.push_str("files:\n");
    for (i, id) in [7001u64, 7002, 7003].iter().enumerate() {
        cat.push_str(&format!(
            "  - {{archive_file_id: {id}, disk_instance: eos, disk_file_id: f{id}, size: 3000000000, storage_class: sc_pool_a, \
             copies: [{{copy_nb: 1, vid: V00101, fseq: {}, block_id: 0}}]}}\n",
            i + 1
        ));
    }
    let file = dir.join("catalogue.yml");
    std::fs::write(&file, cat).unwrap();
    let text = config_text("compat/mhvtl/lto9", 10, "compat/taped/lto9.yml", &["ULT11"], "")
        .replace(&root().join("compat/taped/lto9.yml").display().to_string(), &file.display().to_string());
    let (mut built, open, events) = daemon(Backend::Postgres, &text).await;
    let sim = built.sim.clone().unwrap();
    let barcode = built.daemon.shared().barcodes["V00101"].clone();
    assert_eq!(sim.cartridge(&barcode).unwrap().3, 3, "the recorded files are on the cartridge");
    let s = built.scheduler.clone();
    for id in [7001, 7002, 7003] {
        s.queue_retrieve(retrieve_of(id)).await.unwrap();
    }
    built.daemon.run_until(START * 1000 + HOUR_MS, None).await.unwrap();
    built.daemon.drain().await.unwrap();
    let mut disk = DiskSide::new(false);
    disk.pump(&s).await.unwrap();
    assert!(disk.failures.is_empty(), "{:?} {:?}", disk.failures, events.lock().unwrap());
    assert_eq!(disk.retrieved, [7001, 7002, 7003].into_iter().collect::<BTreeSet<_>>());
    open.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

//! The simulated library: timing from the profiles, parallel drives on a driver's clock, tapes
//! filling up, injected faults, errors naming what they are about, and a day of activity.
//! Every assertion is on simulated quantities; nothing sleeps or reads the wall clock.

use std::path::PathBuf;
use std::sync::Arc;
use tapesched_library::media::DriveProfile;
use tapesched_library::sim::{Fault, SimClock, SimLibrary, ROBOT_MOVE_MS};
use tapesched_library::{DriveState, Element, FileMeta, Library, LibraryError};
use tapesched_scheduler::clock::Clock;

const GB: u64 = 1_000_000_000;
const TB: u64 = 1_000 * GB;
const T0: i64 = 1_700_000_000;

fn lib(name: &str) -> SimLibrary {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../compat/mhvtl").join(name);
    let id = if name == "lto9" { 10 } else { 20 };
    SimLibrary::from_dir(&dir, id, Arc::new(SimClock::new(T0))).unwrap()
}

fn elapsed(l: &SimLibrary) -> i64 {
    l.clock().now_ms() - T0 * 1000
}

#[tokio::test]
async fn mount_locate_write_unload_take_the_profile_times() {
    let l = lib("lto9");
    let p = DriveProfile::lto9_full_height();
    l.mount("V00101L9", "ULT11").await.unwrap();
    assert_eq!(elapsed(&l), ROBOT_MOVE_MS + 17_000);
    assert_eq!(l.locate("ULT11", 1).await.unwrap().block, 0);
    assert_eq!(elapsed(&l), 29_000, "a locate that does not move the tape is free");

    let n = 10;
    for i in 0..n {
        let pos = l.write_file("ULT11", 4 * GB, i as u32).await.unwrap();
        assert_eq!((pos.fseq, pos.block), (i + 1, i * 4 * GB));
    }
    // 4 GB at 400 MB/s = 10 s, plus 1 s per file.
    assert_eq!(elapsed(&l), 29_000 + 10 * 11_000);
    assert_eq!(p.transfer_ms(4 * GB, p.rate), 11_000);

    l.dismount("ULT11").await.unwrap();
    // Rewind from 40 GB: 2 s + 40 GB / 18 TB * 2 * 55 s (rounded up to the ms), then unload and robot.
    let rewind = 2_000 + (40 * GB as i64 * 2 * 55_000).div_euclid(18 * TB as i64) + 1;
    assert_eq!(rewind, p.travel_ms(40 * GB, 18 * TB, p.avg_rewind_ms));
    let after_dismount = 139_000 + rewind + 30_000 + ROBOT_MOVE_MS;
    assert_eq!(elapsed(&l), after_dismount);
    assert_eq!(l.inventory().await.unwrap().locate("V00101L9"), Some(Element::Slot(1)));

    // Back in, straight to file 6 (20 GB from BOT): 2 s + 20/18000 * 2 * 45 s = 2.1 s.
    l.mount("V00101L9", "ULT12").await.unwrap();
    // The files on it, from the simulator's records: no time passes.
    assert_eq!(l.files_on_tape("ULT12").await.unwrap(), n);
    let e = l.files_on_tape("ULT11").await.unwrap_err();
    assert!(e.to_string().contains("ULT11"), "{e}");
    let pos = l.locate("ULT12", 6).await.unwrap();
    assert_eq!((pos.fseq, pos.block), (6, 20 * GB));
    assert_eq!(elapsed(&l), after_dismount + 29_000 + 2_100);
    assert_eq!(l.read_file("ULT12", 6).await.unwrap(), FileMeta { size: 4 * GB, checksum: 5 });
    assert_eq!(elapsed(&l), after_dismount + 29_000 + 2_100 + 11_000);
    // The next read is where the head is: no locate.
    l.read_file("ULT12", 7).await.unwrap();
    assert_eq!(elapsed(&l), after_dismount + 29_000 + 2_100 + 22_000);
    // A write goes to the end of data: from file 8 (28 GB) to 40 GB, then streams.
    let pos = l.write_file("ULT12", 0, 0).await.unwrap();
    assert_eq!((pos.fseq, pos.block), (11, 40 * GB));
    assert_eq!(elapsed(&l), after_dismount + 29_000 + 2_100 + 22_000 + p.travel_ms(12 * GB, 18 * TB, 45_000) + 1_000);
    assert_eq!(l.cartridge("V00101L9").unwrap().3, 11);
    let log = l.take_log();
    assert_eq!(log.len(), 1 + 1 + 10 + 2 + 1 + 1 + 2 + 1);
    assert!(log[0].what.contains("mount V00101L9 from slot 1 into drive ULT11"), "{:?}", log[0]);
}

#[tokio::test]
async fn erase_leaves_no_file_and_the_next_write_is_the_first() {
    let l = lib("lto9");
    let p = DriveProfile::lto9_full_height();
    l.mount("V00101L9", "ULT11").await.unwrap();
    for i in 0..3 {
        l.write_file("ULT11", 4 * GB, i).await.unwrap();
    }
    let before = elapsed(&l);
    l.erase("ULT11").await.unwrap();
    // The rewind from the end of the 12 GB written.
    assert_eq!(elapsed(&l) - before, p.travel_ms(12 * GB, 18 * TB, p.avg_locate_ms));
    let e = l.read_file("ULT11", 1).await.unwrap_err();
    assert!(matches!(e, LibraryError::NoSuchFile { files: 0, .. }), "{e}");
    let pos = l.write_file("ULT11", GB, 9).await.unwrap();
    assert_eq!((pos.fseq, pos.block), (1, 0));
    assert_eq!(l.read_file("ULT11", 1).await.unwrap(), FileMeta { size: GB, checksum: 9 });
    // Without a cartridge loaded there is nothing to erase.
    let e = l.erase("ULT12").await.unwrap_err();
    assert!(e.to_string().contains("ULT12"), "{e}");
}

#[tokio::test]
async fn lto8_drives_use_their_own_profile_and_media_rates() {
    let l = lib("mixed");
    l.mount("V00201L8", "ULT21").await.unwrap();
    assert_eq!(elapsed(&l), ROBOT_MOVE_MS + 15_000);
    l.write_file("ULT21", 3_600_000_000, 1).await.unwrap();
    assert_eq!(elapsed(&l), 27_000 + 10_000 + 1_000);
    l.unload("ULT21").await.unwrap();
    let p = DriveProfile::lto8_full_height();
    assert_eq!(elapsed(&l), 38_000 + p.travel_ms(3_600_000_000, 12 * TB, 55_000) + 24_000);

    // An LTO-8 cartridge in an LTO-9 drive streams at LTO-8 speed.
    l.mount("V00202L8", "ULT23").await.unwrap();
    let before = elapsed(&l);
    l.write_file("ULT23", 3_600_000_000, 1).await.unwrap();
    assert_eq!(elapsed(&l) - before, 11_000);
}

#[tokio::test]
async fn parallel_drives_on_a_drivers_clock() {
    let l = lib("lto9").with_auto_advance(false);
    l.mount("V00101L9", "ULT11").await.unwrap();
    l.mount("V00102L9", "ULT12").await.unwrap();
    assert_eq!(elapsed(&l), 0, "the driver moves the clock");
    // One robot: the second mount waits for the first move.
    assert_eq!(l.drive_free_at_ms("ULT11").unwrap() - T0 * 1000, 12_000 + 17_000);
    assert_eq!(l.drive_free_at_ms("ULT12").unwrap() - T0 * 1000, 24_000 + 17_000);
    assert_eq!(l.robot_free_at_ms() - T0 * 1000, 24_000);
    // Writes queue on each drive's own timeline and overlap across drives.
    l.write_file("ULT11", 400_000_000, 1).await.unwrap();
    l.write_file("ULT12", 400_000_000, 1).await.unwrap();
    assert_eq!(l.drive_free_at_ms("ULT11").unwrap() - T0 * 1000, 29_000 + 2_000);
    assert_eq!(l.drive_free_at_ms("ULT12").unwrap() - T0 * 1000, 41_000 + 2_000);
    let end = l.drive_free_at_ms("ULT12").unwrap();
    l.clock().advance_to_ms(end);
    assert_eq!(l.clock().now(), T0 + 43);
}

#[tokio::test]
async fn tapes_fill_up() {
    let l = lib("mixed");
    l.mount("V00203L8", "ULT22").await.unwrap();
    l.write_file("ULT22", 11 * TB, 1).await.unwrap();
    let before = elapsed(&l);
    let e = l.write_file("ULT22", 2 * TB, 2).await.unwrap_err();
    assert!(matches!(e, LibraryError::TapeFull { used, capacity, requested, .. }
        if used == 11 * TB && capacity == 12 * TB && requested == 2 * TB));
    assert_eq!(
        e.to_string(),
        "tape full: V00203L8 in drive ULT22 has 11000000000000 of 12000000000000 bytes used, \
         a file of 2000000000000 bytes does not fit"
    );
    assert_eq!(elapsed(&l), before, "a refused write takes no time");
    l.write_file("ULT22", TB, 2).await.unwrap();
    assert!(matches!(l.write_file("ULT22", 1, 3).await, Err(LibraryError::TapeFull { .. })));
    assert_eq!(l.cartridge("V00203L8").unwrap().2, 12 * TB);
    // Filling 12 TB at 360 MB/s takes over nine simulated hours.
    assert!(elapsed(&l) > 9 * 3600 * 1000);
}

#[tokio::test]
async fn a_drive_error_fails_the_next_operation_only() {
    let l = lib("lto9");
    l.inject(Fault::DriveError { drive: "ULT13".into(), message: "hardware error 0x44".into() }).unwrap();
    let e = l.mount("V00104L9", "ULT13").await.unwrap_err();
    assert_eq!(e.to_string(), "drive ULT13 error: hardware error 0x44");
    assert_eq!(l.inventory().await.unwrap().locate("V00104L9"), Some(Element::Slot(4)), "nothing moved");
    l.mount("V00104L9", "ULT13").await.unwrap();
    l.inject(Fault::DriveError { drive: "ULT13".into(), message: "medium error".into() }).unwrap();
    assert!(matches!(l.write_file("ULT13", 10, 1).await, Err(LibraryError::DriveError { .. })));
    assert_eq!(l.write_file("ULT13", 10, 1).await.unwrap().fseq, 1);
    assert_eq!(l.status("ULT13").await.unwrap().state, DriveState::Ready);
    assert!(matches!(
        l.inject(Fault::DriveError { drive: "ULT99".into(), message: String::new() }),
        Err(LibraryError::UnknownDrive { .. })
    ));
}

#[tokio::test]
async fn a_stuck_cartridge_keeps_the_drive_down_until_repaired() {
    let l = lib("lto9");
    l.mount("V00105L9", "ULT14").await.unwrap();
    l.inject(Fault::StuckOnUnload { drive: "ULT14".into() }).unwrap();
    let e = l.dismount("ULT14").await.unwrap_err();
    assert_eq!(e.to_string(), "cartridge V00105L9 is stuck in drive ULT14");
    let status = l.status("ULT14").await.unwrap();
    assert_eq!((status.state, status.barcode.as_deref()), (DriveState::Failed, Some("V00105L9")));
    assert!(matches!(l.read_file("ULT14", 1).await, Err(LibraryError::StuckCartridge { .. })));
    assert!(matches!(l.load("ULT14").await, Err(LibraryError::StuckCartridge { .. })));
    let e = l.move_cartridge(Element::Drive("ULT14".into()), Element::Slot(5)).await.unwrap_err();
    assert!(matches!(e, LibraryError::StuckCartridge { .. }), "{e}");
    l.repair("ULT14").unwrap();
    assert_eq!(l.status("ULT14").await.unwrap().state, DriveState::Unloaded);
    l.dismount("ULT14").await.unwrap();
    assert_eq!(l.inventory().await.unwrap().locate("V00105L9"), Some(Element::Slot(5)));
}

#[tokio::test]
async fn a_bad_file_fails_every_read_of_it() {
    let l = lib("lto9");
    l.mount("V00106L9", "ULT15").await.unwrap();
    for i in 0..3 {
        l.write_file("ULT15", GB, 100 + i).await.unwrap();
    }
    l.inject(Fault::BadFile { barcode: "V00106L9".into(), fseq: 2 }).unwrap();
    assert_eq!(l.read_file("ULT15", 1).await.unwrap().checksum, 100);
    for _ in 0..2 {
        let e = l.read_file("ULT15", 2).await.unwrap_err();
        assert_eq!(e.to_string(), "bad file: fseq 2 on V00106L9 in drive ULT15 cannot be read");
    }
    assert_eq!(l.read_file("ULT15", 3).await.unwrap().checksum, 102);
    assert!(matches!(
        l.inject(Fault::BadFile { barcode: "NOPE01L9".into(), fseq: 1 }),
        Err(LibraryError::UnknownBarcode { .. })
    ));
}

#[tokio::test]
async fn errors_name_the_drive_barcode_and_slot() {
    let l = lib("mixed");
    let msg = |e: LibraryError| e.to_string();
    assert_eq!(msg(l.status("ULT99").await.unwrap_err()), "unknown drive ULT99");
    assert_eq!(
        msg(l.mount("X00001L9", "ULT21").await.unwrap_err()),
        "unknown barcode X00001L9: no such cartridge in the library"
    );
    let to = |d: &str| Element::Drive(d.into());
    assert_eq!(msg(l.move_cartridge(Element::Slot(16), to("ULT21")).await.unwrap_err()), "slot 16 is empty");
    assert_eq!(msg(l.move_cartridge(Element::Slot(99), to("ULT21")).await.unwrap_err()), "no slot 99 in the library");
    assert_eq!(
        msg(l.mount("V00301L9", "ULT21").await.unwrap_err()),
        "drive ULT21 cannot use cartridge V00301L9: an LTO-8 FH drive reads and writes LTO-8 and LTO-7 only, not LTO-9"
    );
    assert_eq!(
        msg(l.mount("CLN201L8", "ULT21").await.unwrap_err()),
        "drive ULT21 cannot use cartridge CLN201L8: a cleaning cartridge holds no data"
    );
    l.move_cartridge(Element::ImportExport(1), to("ULT23")).await.unwrap();
    assert_eq!(msg(l.mount("V00301L9", "ULT23").await.unwrap_err()), "drive ULT23 is occupied: it holds V00307L9");
    assert_eq!(msg(l.mount("V00307L9", "ULT24").await.unwrap_err()), "cartridge V00307L9 is in drive ULT23");
    assert_eq!(
        msg(l.move_cartridge(to("ULT23"), Element::Slot(16)).await.unwrap_err()),
        "drive ULT23 still has V00307L9 loaded: unload it before moving it out"
    );
    assert_eq!(
        msg(l.locate("ULT23", 2).await.unwrap_err()),
        "no file fseq 2 on V00307L9 in drive ULT23: the tape holds 0 files"
    );
    l.unload("ULT23").await.unwrap();
    assert_eq!(
        msg(l.write_file("ULT23", 1, 1).await.unwrap_err()),
        "drive ULT23 holds V00307L9 unloaded: load it first"
    );
    assert_eq!(
        msg(l.move_cartridge(to("ULT23"), Element::Slot(1)).await.unwrap_err()),
        "slot 1 is full: it holds V00201L8"
    );
    assert_eq!(msg(l.unload("ULT24").await.unwrap_err()), "drive ULT24 is empty");
    assert_eq!(
        msg(l.move_cartridge(to("ULT23"), to("ULT24")).await.unwrap_err()),
        "cannot move a cartridge from drive ULT23 to drive ULT24"
    );
    // Reload without the robot, then back to the import/export slot it came from.
    l.load("ULT23").await.unwrap();
    l.unload("ULT23").await.unwrap();
    l.move_cartridge(to("ULT23"), Element::ImportExport(1)).await.unwrap();
    l.move_cartridge(Element::ImportExport(1), Element::Slot(16)).await.unwrap();
    assert_eq!(l.inventory().await.unwrap().locate("V00307L9"), Some(Element::Slot(16)));
}

#[tokio::test]
async fn a_simulated_day_of_mounts_and_writes() {
    let l = lib("lto9");
    let drives = l.drive_names();
    let tapes: Vec<String> = (1..=16).map(|i| format!("V001{i:02}L9")).collect();
    let (files_per_mount, file_size) = (20u64, 10 * GB);
    let p = DriveProfile::lto9_full_height();
    let (mut cycles, mut expected_ms) = (0u64, 0i64);
    while elapsed(&l) < 24 * 3600 * 1000 {
        let drive = &drives[(cycles % 6) as usize];
        let tape = &tapes[(cycles % 16) as usize];
        l.mount(tape, drive).await.unwrap();
        for f in 0..files_per_mount {
            l.write_file(drive, file_size, f as u32).await.unwrap();
        }
        l.dismount(drive).await.unwrap();
        // Mount, a locate from BOT to the end of what earlier mounts wrote, the files, a rewind
        // from the new end of data, unload, robot back.
        let before = (cycles / 16) * files_per_mount * file_size;
        expected_ms += ROBOT_MOVE_MS
            + p.load_ms
            + p.travel_ms(before, 18 * TB, p.avg_locate_ms)
            + files_per_mount as i64 * p.transfer_ms(file_size, p.rate)
            + p.travel_ms(before + files_per_mount * file_size, 18 * TB, p.avg_rewind_ms)
            + p.unload_ms
            + ROBOT_MOVE_MS;
        cycles += 1;
    }
    // About ten minutes per cycle: 143 in a day, each tape mounted 9 times.
    assert_eq!(cycles, 143);
    assert_eq!(elapsed(&l), expected_ms);
    let log = l.take_log();
    assert_eq!(log.len() as u64, cycles * (1 + files_per_mount + 2));
    assert!(log.windows(2).all(|w| w[0].end_ms <= w[1].start_ms), "a sequential driver never overlaps");
    let written: u64 = tapes.iter().map(|t| l.cartridge(t).unwrap().2).sum();
    assert_eq!(written, cycles * files_per_mount * file_size);
    let inv = l.inventory().await.unwrap();
    assert!(inv.drives.iter().all(|d| d.barcode.is_none()));
    assert_eq!(inv.locate("V00116L9"), Some(Element::Slot(16)));
}

/// `write_would_succeed` / `read_would_succeed` say what the next write or read will do, without
/// doing it: no cartridge, a pending drive error, a full tape, a missing or bad file all say no.
#[tokio::test]
async fn would_succeed_predicts_the_next_write_and_read() {
    let l = lib("mixed");
    assert!(!l.write_would_succeed("ULT22", GB), "no cartridge");
    assert!(!l.write_would_succeed("NOPE", GB), "no such drive");
    l.mount("V00203L8", "ULT22").await.unwrap();
    assert!(l.write_would_succeed("ULT22", 12 * TB));
    assert!(!l.write_would_succeed("ULT22", 12 * TB + 1), "does not fit");
    l.write_file("ULT22", 11 * TB, 1).await.unwrap();
    let t = elapsed(&l);
    assert!(!l.write_would_succeed("ULT22", 2 * TB));
    assert!(matches!(l.write_file("ULT22", 2 * TB, 2).await, Err(LibraryError::TapeFull { .. })));
    assert!(l.write_would_succeed("ULT22", TB));
    assert!(!l.write_would_succeed("ULT22", u64::MAX), "no overflow");
    assert!(l.read_would_succeed("ULT22", 1));
    assert!(!l.read_would_succeed("ULT22", 0) && !l.read_would_succeed("ULT22", 2), "no such file");
    l.inject(Fault::BadFile { barcode: "V00203L8".into(), fseq: 1 }).unwrap();
    assert!(!l.read_would_succeed("ULT22", 1), "bad file");
    l.inject(Fault::DriveError { drive: "ULT22".into(), message: "medium error".into() }).unwrap();
    assert!(!l.write_would_succeed("ULT22", GB), "a drive error is pending");
    assert_eq!(elapsed(&l), t, "asking takes no time");
    assert!(l.write_file("ULT22", GB, 2).await.is_err());
    assert!(l.write_would_succeed("ULT22", GB), "the error was taken");
    assert_eq!(l.write_file("ULT22", GB, 2).await.unwrap().fseq, 2);
}

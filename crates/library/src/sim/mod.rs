//! The simulated library: a [`Library`] built from mhVTL's `device.conf` and
//! `library_contents.<id>`, on virtual time.
//!
//! # Design
//!
//! No bytes move and nothing sleeps. The state is what a real library knows — which cartridge is
//! in which slot or drive, which drive is loaded, where each drive's head is — plus, per
//! cartridge, the list of files written (start, size, checksum) so that positions, reads and
//! the filling of the tape are exact.
//!
//! Each operation computes its duration from the drive's [`DriveProfile`] and the cartridge's
//! capacity ([`crate::media`]): a mount is a robot move plus load-to-ready, a locate costs a fixed
//! part plus a part proportional to the distance travelled (so that the average locate from the
//! beginning of tape is the published figure), a write or read streams at the slower of drive
//! and media plus a per-file cost, an unload is a rewind (proportional to the position) plus the
//! unload time.
//!
//! Time is kept in milliseconds on timelines: each drive and the robot (one picker, so robot
//! moves serialise) has a "busy until". An operation starts at the latest of the clock's now and
//! the timelines it needs, and sets them to its end. Then:
//!
//! * with auto-advance (the default) the [`SimClock`] is moved to the end of the operation, as if
//!   the caller had waited for it: a sequential driver needs nothing else;
//! * without it ([`SimLibrary::with_auto_advance`]) the clock is left alone, and a driver (the
//!   daemon's event loop) moves it, for example to [`SimLibrary::drive_free_at_ms`] of the drive
//!   it waits for, so that several drives work in parallel on one timeline.
//!
//! An operation is thus a few arithmetic steps under one mutex: a day of library activity (some
//! thousands of operations) runs in milliseconds of CPU. Every operation is appended to a log
//! ([`OpRecord`], [`SimLibrary::take_log`], [`SimLibrary::with_log`]).
//!
//! Checks come before changes: an operation that fails (unknown drive, empty slot, occupied
//! drive, incompatible media — checked before the robot moves —, tape full...) leaves the state
//! and the clock as they were, except a read of a bad file, which costs its locate, and a stuck
//! unload, which costs the rewind and unload it attempted.
//!
//! Faults ([`Fault`]) are injected by tests or a workload: a drive error on the next operation of
//! a drive, a cartridge that sticks at the next unload (the drive is then out of service until
//! [`SimLibrary::repair`]), a bad file at a given fSeq of a cartridge.

mod clock;
mod mtx;

pub use clock::SimClock;

use crate::config::{DeviceConf, LibraryContents};
use crate::error::{ConfigError, LibraryError};
use crate::media::{DriveProfile, Media};
use crate::{DriveInfo, DriveState, DriveStatus, Element, FileMeta, FilePosition, Inventory, Library, SlotInfo};
use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// Default duration of one robot move (one leg, slot to drive or back): the 10-15 s an SL8500
/// accessor needs, without jitter so that runs are deterministic.
pub const ROBOT_MOVE_MS: i64 = 12_000;

/// A fault to inject into the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The next operation on the drive (a mount into it, load, locate, write, read or unload;
    /// not [`Library::status`]) fails with [`LibraryError::DriveError`] and this message, taking
    /// no time; the drive's state is unchanged.
    DriveError {
        /// The drive.
        drive: String,
        /// What the drive reports.
        message: String,
    },
    /// The next unload of the drive fails with [`LibraryError::StuckCartridge`]; the drive is
    /// [`DriveState::Failed`] until [`SimLibrary::repair`].
    StuckOnUnload {
        /// The drive.
        drive: String,
    },
    /// Reading file `fseq` of the cartridge fails with [`LibraryError::BadFile`], every time,
    /// after the locate to it (which takes its time).
    BadFile {
        /// The cartridge.
        barcode: String,
        /// The file.
        fseq: u64,
    },
}

/// One timed operation of the simulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpRecord {
    /// What was done (`mount V00101L9 from slot 1 into ULT11`, `write fseq 3 (10 bytes) on ULT11`).
    pub what: String,
    /// Start, in milliseconds of the [`SimClock`].
    pub start_ms: i64,
    /// End, in milliseconds of the [`SimClock`].
    pub end_ms: i64,
}

#[derive(Debug, Clone, Copy)]
struct TapeFile {
    start: u64,
    size: u64,
    checksum: u32,
}

#[derive(Debug)]
struct Tape {
    media: Media,
    capacity: u64,
    files: Vec<TapeFile>,
    bad: HashSet<u64>,
}

impl Tape {
    fn used(&self) -> u64 {
        self.files.last().map_or(0, |f| f.start + f.size)
    }
    /// Byte position of the start of `fseq` (end of data for files + 1).
    fn position(&self, fseq: u64) -> u64 {
        match self.files.get(fseq.saturating_sub(1) as usize) {
            Some(f) => f.start,
            None => self.used(),
        }
    }
}

#[derive(Debug)]
struct SimDrive {
    name: String,
    ordinal: u32,
    product: String,
    profile: DriveProfile,
    state: DriveState,
    cartridge: Option<String>,
    source: Option<Element>,
    /// The file the head is at (1-based; files + 1 is end of data).
    head: u64,
    free_ms: i64,
    fail_next: Option<String>,
    stuck_on_unload: bool,
}

#[derive(Debug)]
struct State {
    slots: Vec<Option<String>>,
    maps: Vec<Option<String>>,
    drives: Vec<SimDrive>,
    tapes: HashMap<String, Tape>,
    robot_free_ms: i64,
    robot_move_ms: i64,
    auto_advance: bool,
    keep_log: bool,
    log: Vec<OpRecord>,
}

/// A simulated tape library on virtual time (see the module documentation).
#[derive(Debug)]
pub struct SimLibrary {
    id: u32,
    serial: String,
    product: String,
    state: Mutex<State>,
    clock: Arc<SimClock>,
}

impl SimLibrary {
    /// Builds library `library_id` of `conf` with the contents `contents`, on `clock`.
    ///
    /// Its drives are the `Drive:` records bound to it (`Library ID: <id> Slot: <n>`), named by
    /// their unit serial number, ordinal `n - 1`. Fails, naming the file and line, when the
    /// library is missing, a drive has no serial, no slot, a duplicate slot or a product without
    /// a timing profile, or `library_contents` names another drive serial for a slot.
    pub fn new(
        conf: &DeviceConf,
        contents: &LibraryContents,
        library_id: u32,
        clock: Arc<SimClock>,
    ) -> Result<Self, ConfigError> {
        let lib = conf
            .library(library_id)
            .ok_or_else(|| ConfigError::new(&conf.source, 0, format!("no `Library: {library_id}` record")))?;
        let mut drives: Vec<SimDrive> = Vec::new();
        for rec in conf.drives_of(library_id) {
            let err = |m: String| ConfigError::new(&conf.source, rec.line, m);
            let slot = rec.slot.ok_or_else(|| err(format!("drive {} has no slot", rec.id)))?;
            if rec.serial.is_empty() {
                return Err(err(format!("drive {} has no `Unit serial number`", rec.id)));
            }
            if drives.iter().any(|d| d.ordinal == slot - 1) {
                return Err(err(format!("drive slot {slot} of library {library_id} is taken twice")));
            }
            if drives.iter().any(|d| d.name == rec.serial) {
                return Err(err(format!("drive serial {} is used twice", rec.serial)));
            }
            let profile = DriveProfile::for_product(&rec.product).ok_or_else(|| {
                err(format!(
                    "drive {} (`{}`): no timing profile for this drive type (LTO-8 and LTO-9 are modelled)",
                    rec.serial, rec.product
                ))
            })?;
            drives.push(SimDrive {
                name: rec.serial.clone(),
                ordinal: slot - 1,
                product: rec.product.clone(),
                profile,
                state: DriveState::Empty,
                cartridge: None,
                source: None,
                head: 1,
                free_ms: i64::MIN,
                fail_next: None,
                stuck_on_unload: false,
            });
        }
        for (i, serial) in contents.drives.iter().enumerate() {
            let Some(serial) = serial else { continue };
            match drives.iter().find(|d| d.ordinal == i as u32) {
                Some(d) if &d.name == serial => {}
                Some(d) => {
                    return Err(ConfigError::new(
                        &contents.source,
                        0,
                        format!("Drive {}: {serial}, but device.conf puts drive {} in that slot", i + 1, d.name),
                    ))
                }
                None => {
                    return Err(ConfigError::new(
                        &contents.source,
                        0,
                        format!(
                            "Drive {}: {serial} has no Drive: record bound to library {library_id} in device.conf",
                            i + 1
                        ),
                    ))
                }
            }
        }
        let tapes = contents
            .barcodes()
            .map(|b| {
                let media = Media::from_barcode(b);
                let capacity = media.capacity().unwrap_or(0);
                let tape = Tape { media, capacity, files: Vec::new(), bad: HashSet::new() };
                (b.to_string(), tape)
            })
            .collect();
        let state = State {
            slots: contents.slots.clone(),
            maps: contents.maps.clone(),
            drives,
            tapes,
            robot_free_ms: i64::MIN,
            robot_move_ms: ROBOT_MOVE_MS,
            auto_advance: true,
            keep_log: true,
            log: Vec::new(),
        };
        Ok(SimLibrary {
            id: library_id,
            serial: lib.serial.clone(),
            product: lib.product.clone(),
            state: Mutex::new(state),
            clock,
        })
    }

    /// Reads `dir/device.conf` and `dir/library_contents.<library_id>` and builds the library.
    pub fn from_dir(dir: &Path, library_id: u32, clock: Arc<SimClock>) -> Result<Self, ConfigError> {
        let conf = DeviceConf::read(&dir.join("device.conf"))?;
        let contents = LibraryContents::read(&dir.join(format!("library_contents.{library_id}")))?;
        SimLibrary::new(&conf, &contents, library_id, clock)
    }

    /// Sets the duration of one robot move.
    pub fn with_robot_move_ms(self, ms: i64) -> Self {
        self.lock().robot_move_ms = ms.max(0);
        self
    }

    /// Whether each operation moves the clock to its end (the default) or leaves the clock to a
    /// driver.
    pub fn with_auto_advance(self, auto: bool) -> Self {
        self.lock().auto_advance = auto;
        self
    }

    /// Whether operations are logged (the default); a long run that never calls
    /// [`SimLibrary::take_log`] should turn the log off.
    pub fn with_log(self, keep: bool) -> Self {
        self.lock().keep_log = keep;
        self
    }

    /// The clock the library runs on.
    pub fn clock(&self) -> &Arc<SimClock> {
        &self.clock
    }

    /// The library id (`Library: <id>` of `device.conf`).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The library's unit serial number and product identification.
    pub fn identity(&self) -> (&str, &str) {
        (&self.serial, &self.product)
    }

    /// The drive names in ordinal order.
    pub fn drive_names(&self) -> Vec<String> {
        self.lock().drives.iter().map(|d| d.name.clone()).collect()
    }

    /// The timing profile of a drive.
    pub fn drive_profile(&self, drive: &str) -> Result<DriveProfile, LibraryError> {
        let mut st = self.lock();
        Ok(st.drive(drive)?.profile.clone())
    }

    /// When the drive finishes its last operation, in milliseconds of the clock.
    pub fn drive_free_at_ms(&self, drive: &str) -> Result<i64, LibraryError> {
        let mut st = self.lock();
        let d = st.drive(drive)?;
        Ok(d.free_ms.max(self.clock.now_ms()))
    }

    /// When the robot finishes its last move, in milliseconds of the clock.
    pub fn robot_free_at_ms(&self) -> i64 {
        self.lock().robot_free_ms.max(self.clock.now_ms())
    }

    /// The media, capacity, bytes used and number of files of a cartridge.
    pub fn cartridge(&self, barcode: &str) -> Result<(Media, u64, u64, u64), LibraryError> {
        let st = self.lock();
        let t = st.tapes.get(barcode).ok_or_else(|| unknown_barcode(barcode))?;
        Ok((t.media.clone(), t.capacity, t.used(), t.files.len() as u64))
    }

    /// Puts files on a cartridge as if written before the run (files a catalogue already has on
    /// tape), each `(size, checksum)` after the cartridge's last file, taking no time; returns
    /// the cartridge's file count. Fails when the cartridge is unknown or the files do not fit.
    pub fn preload(&self, barcode: &str, files: &[(u64, u32)]) -> Result<u64, LibraryError> {
        let mut st = self.lock();
        let t = st.tapes.get_mut(barcode).ok_or_else(|| unknown_barcode(barcode))?;
        let mut used = t.used();
        let requested = files.iter().fold(0u64, |a, f| a.saturating_add(f.0));
        if used.saturating_add(requested) > t.capacity {
            return Err(LibraryError::TapeFull {
                drive: String::new(),
                barcode: barcode.into(),
                capacity: t.capacity,
                used,
                requested,
            });
        }
        for &(size, checksum) in files {
            t.files.push(TapeFile { start: used, size, checksum });
            used += size;
        }
        Ok(t.files.len() as u64)
    }

    /// True when writing a file of `size` bytes on `drive` now would succeed: the drive is ready
    /// with a cartridge, no drive error is pending for it and the file fits on the tape. A driver
    /// uses it to run several transfers at once only when none of them can fail.
    pub fn write_would_succeed(&self, drive: &str, size: u64) -> bool {
        let st = self.lock();
        let Some((_, t)) = st.quiet_drive(drive) else { return false };
        t.used().checked_add(size).is_some_and(|end| end <= t.capacity)
    }

    /// True when reading file `fseq` on `drive` now would succeed: the drive is ready with a
    /// cartridge, no drive error is pending for it, the file exists and is not bad.
    pub fn read_would_succeed(&self, drive: &str, fseq: u64) -> bool {
        let st = self.lock();
        let Some((_, t)) = st.quiet_drive(drive) else { return false };
        fseq >= 1 && fseq <= t.files.len() as u64 && !t.bad.contains(&fseq)
    }

    /// Injects a fault; fails when it names an unknown drive or cartridge.
    pub fn inject(&self, fault: Fault) -> Result<(), LibraryError> {
        let mut st = self.lock();
        match fault {
            Fault::DriveError { drive, message } => st.drive(&drive)?.fail_next = Some(message),
            Fault::StuckOnUnload { drive } => st.drive(&drive)?.stuck_on_unload = true,
            Fault::BadFile { barcode, fseq } => {
                let t = st.tapes.get_mut(&barcode).ok_or_else(|| unknown_barcode(&barcode))?;
                t.bad.insert(fseq);
            }
        }
        Ok(())
    }

    /// An operator frees a failed drive: the stuck cartridge is now unloaded in it, ready for
    /// the robot, and pending faults of the drive are cleared.
    pub fn repair(&self, drive: &str) -> Result<(), LibraryError> {
        let mut st = self.lock();
        let d = st.drive(drive)?;
        if d.state == DriveState::Failed {
            d.state = DriveState::Unloaded;
        }
        d.fail_next = None;
        d.stuck_on_unload = false;
        Ok(())
    }

    /// Takes the log of operations done since the last call.
    pub fn take_log(&self) -> Vec<OpRecord> {
        std::mem::take(&mut self.lock().log)
    }

    /// The library as `mtx -f <device> status` would print it.
    pub fn mtx_status(&self, device: &str) -> String {
        mtx::status(&self.lock(), device)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every operation checks before
        // it changes anything), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one operation: `f` checks, changes the state and returns its result and the
    /// timelines it used; the log and the clock are updated here.
    fn run<T>(
        &self,
        f: impl FnOnce(&mut State, i64) -> Result<(T, Option<OpRecord>), LibraryError>,
    ) -> Result<T, LibraryError> {
        let mut st = self.lock();
        let now = self.clock.now_ms();
        let (value, record) = f(&mut st, now)?;
        if let Some(r) = record {
            if st.auto_advance {
                self.clock.advance_to_ms(r.end_ms);
            }
            if st.keep_log {
                st.log.push(r);
            }
        }
        Ok(value)
    }
}

fn unknown_barcode(barcode: &str) -> LibraryError {
    LibraryError::UnknownBarcode { barcode: barcode.to_string() }
}

impl State {
    fn drive(&mut self, name: &str) -> Result<&mut SimDrive, LibraryError> {
        self.drives
            .iter_mut()
            .find(|d| d.name == name)
            .ok_or_else(|| LibraryError::UnknownDrive { drive: name.to_string() })
    }

    /// A ready drive with a cartridge and no pending drive error, and its tape.
    fn quiet_drive(&self, name: &str) -> Option<(&SimDrive, &Tape)> {
        let d = self.drives.iter().find(|d| d.name == name)?;
        if d.fail_next.is_some() || check_ready(d).is_err() {
            return None;
        }
        Some((d, self.tapes.get(d.cartridge.as_deref()?)?))
    }

    /// A drive about to work on its cartridge: its injected fault taken, ready with a cartridge;
    /// the drive, the cartridge's barcode and its tape.
    fn loaded(&mut self, name: &str) -> Result<(&mut SimDrive, String, &mut Tape), LibraryError> {
        let State { drives, tapes, .. } = self;
        let d = drives.iter_mut().find(|d| d.name == name);
        let d = d.ok_or_else(|| LibraryError::UnknownDrive { drive: name.into() })?;
        take_fault(d)?;
        check_ready(d)?;
        let barcode = d.cartridge.clone().unwrap_or_default();
        let t = tapes.get_mut(&barcode).ok_or_else(|| unknown_barcode(&barcode))?;
        Ok((d, barcode, t))
    }

    fn slot_mut(&mut self, element: &Element) -> Result<&mut Option<String>, LibraryError> {
        let (list, n) = match element {
            Element::Slot(n) => (&mut self.slots, *n),
            Element::ImportExport(n) => (&mut self.maps, *n),
            Element::Drive(_) => unreachable!("slot_mut is called on slots only"),
        };
        let missing = || LibraryError::NoSuchElement { element: element.clone() };
        list.get_mut((n as usize).checked_sub(1).ok_or_else(missing)?).ok_or_else(missing)
    }

    fn slot_to_drive(&mut self, now: i64, from: Element, name: &str) -> Result<OpRecord, LibraryError> {
        let barcode = self.slot_mut(&from)?.clone().ok_or(LibraryError::EmptySlot { element: from.clone() })?;
        let robot = self.robot_free_ms;
        let move_ms = self.robot_move_ms;
        let media = self.tapes.get(&barcode).map(|t| t.media.clone());
        let d = self.drive(name)?;
        if let Some(b) = &d.cartridge {
            return Err(LibraryError::DriveOccupied { drive: name.into(), barcode: b.clone() });
        }
        let media = media.unwrap_or_else(|| Media::from_barcode(&barcode));
        d.profile.accepts(&media).map_err(|reason| LibraryError::IncompatibleMedia {
            drive: name.into(),
            barcode: barcode.clone(),
            reason,
        })?;
        take_fault(d)?;
        let start = now.max(robot).max(d.free_ms);
        let robot_end = start + move_ms;
        let end = robot_end + d.profile.load_ms;
        d.state = DriveState::Ready;
        d.cartridge = Some(barcode.clone());
        d.source = Some(from.clone());
        d.head = 1;
        d.free_ms = end;
        self.robot_free_ms = robot_end;
        *self.slot_mut(&from)? = None;
        Ok(OpRecord { what: format!("mount {barcode} from {from} into drive {name}"), start_ms: start, end_ms: end })
    }

    fn drive_to_slot(&mut self, now: i64, name: &str, to: Element) -> Result<OpRecord, LibraryError> {
        if let Some(b) = self.slot_mut(&to)?.clone() {
            return Err(LibraryError::SlotOccupied { element: to, barcode: b });
        }
        let robot = self.robot_free_ms;
        let move_ms = self.robot_move_ms;
        let d = self.drive(name)?;
        let barcode = d.cartridge.clone().ok_or(LibraryError::DriveEmpty { drive: name.into() })?;
        match d.state {
            DriveState::Ready => return Err(LibraryError::NotUnloaded { drive: name.into(), barcode }),
            DriveState::Failed => return Err(LibraryError::StuckCartridge { drive: name.into(), barcode }),
            _ => {}
        }
        let start = now.max(robot).max(d.free_ms);
        let end = start + move_ms;
        d.state = DriveState::Empty;
        d.cartridge = None;
        d.source = None;
        d.free_ms = end;
        self.robot_free_ms = end;
        *self.slot_mut(&to)? = Some(barcode.clone());
        Ok(OpRecord { what: format!("dismount {barcode} from drive {name} into {to}"), start_ms: start, end_ms: end })
    }

    fn slot_to_slot(&mut self, now: i64, from: Element, to: Element) -> Result<OpRecord, LibraryError> {
        let barcode = self.slot_mut(&from)?.clone().ok_or(LibraryError::EmptySlot { element: from.clone() })?;
        if let Some(b) = self.slot_mut(&to)?.clone() {
            return Err(LibraryError::SlotOccupied { element: to, barcode: b });
        }
        let start = now.max(self.robot_free_ms);
        let end = start + self.robot_move_ms;
        self.robot_free_ms = end;
        *self.slot_mut(&from)? = None;
        *self.slot_mut(&to)? = Some(barcode.clone());
        Ok(OpRecord { what: format!("move {barcode} from {from} to {to}"), start_ms: start, end_ms: end })
    }
}

/// Consumes a pending drive error.
fn take_fault(d: &mut SimDrive) -> Result<(), LibraryError> {
    match d.fail_next.take() {
        Some(message) => Err(LibraryError::DriveError { drive: d.name.clone(), message }),
        None => Ok(()),
    }
}

fn check_ready(d: &SimDrive) -> Result<(), LibraryError> {
    let drive = d.name.clone();
    match (&d.state, &d.cartridge) {
        (DriveState::Ready, Some(_)) => Ok(()),
        (DriveState::Failed, Some(b)) => Err(LibraryError::StuckCartridge { drive, barcode: b.clone() }),
        (_, Some(b)) => Err(LibraryError::NotLoaded { drive, barcode: b.clone() }),
        (_, None) => Err(LibraryError::DriveEmpty { drive }),
    }
}

fn record(what: String, start_ms: i64, dur: i64) -> Option<OpRecord> {
    Some(OpRecord { what, start_ms, end_ms: start_ms + dur })
}

#[async_trait]
impl Library for SimLibrary {
    async fn inventory(&self) -> Result<Inventory, LibraryError> {
        let st = self.lock();
        let slots = st
            .slots
            .iter()
            .enumerate()
            .map(|(i, b)| SlotInfo { element: Element::Slot(i as u32 + 1), barcode: b.clone() });
        let maps = st
            .maps
            .iter()
            .enumerate()
            .map(|(i, b)| SlotInfo { element: Element::ImportExport(i as u32 + 1), barcode: b.clone() });
        let drives = st.drives.iter().map(|d| DriveInfo {
            name: d.name.clone(),
            ordinal: d.ordinal,
            product: d.product.clone(),
            barcode: d.cartridge.clone(),
            source_slot: match d.source {
                Some(Element::Slot(n)) => Some(n),
                _ => None,
            },
        });
        Ok(Inventory { slots: slots.chain(maps).collect(), drives: drives.collect() })
    }

    async fn move_cartridge(&self, from: Element, to: Element) -> Result<(), LibraryError> {
        self.run(|st, now| {
            let r = match (&from, &to) {
                (Element::Drive(_), Element::Drive(_)) => {
                    return Err(LibraryError::InvalidMove { from: from.clone(), to: to.clone() })
                }
                _ if from == to => return Err(LibraryError::InvalidMove { from: from.clone(), to: to.clone() }),
                (_, Element::Drive(d)) => st.slot_to_drive(now, from.clone(), d)?,
                (Element::Drive(d), _) => st.drive_to_slot(now, d, to.clone())?,
                _ => st.slot_to_slot(now, from.clone(), to.clone())?,
            };
            Ok(((), Some(r)))
        })
    }

    async fn load(&self, drive: &str) -> Result<(), LibraryError> {
        self.run(|st, now| {
            let d = st.drive(drive)?;
            take_fault(d)?;
            match (&d.state, &d.cartridge) {
                (DriveState::Ready, _) => return Ok(((), None)),
                (DriveState::Failed, Some(b)) => {
                    return Err(LibraryError::StuckCartridge { drive: drive.into(), barcode: b.clone() })
                }
                (_, None) => return Err(LibraryError::DriveEmpty { drive: drive.into() }),
                _ => {}
            }
            let start = now.max(d.free_ms);
            d.free_ms = start + d.profile.load_ms;
            d.state = DriveState::Ready;
            d.head = 1;
            Ok(((), record(format!("load drive {drive}"), start, d.profile.load_ms)))
        })
    }

    async fn locate(&self, drive: &str, fseq: u64) -> Result<FilePosition, LibraryError> {
        self.run(|st, now| {
            let (d, barcode, t) = st.loaded(drive)?;
            let files = t.files.len() as u64;
            if fseq == 0 || fseq > files + 1 {
                return Err(LibraryError::NoSuchFile { drive: drive.into(), barcode, fseq, files });
            }
            let (from, to) = (t.position(d.head), t.position(fseq));
            let dur = d.profile.travel_ms(from.abs_diff(to), t.capacity, d.profile.avg_locate_ms);
            let start = now.max(d.free_ms);
            d.free_ms = start + dur;
            d.head = fseq;
            let r = record(format!("locate fseq {fseq} on {barcode} in drive {drive}"), start, dur);
            Ok((FilePosition { fseq, block: to }, r))
        })
    }

    async fn write_file(&self, drive: &str, size: u64, checksum: u32) -> Result<FilePosition, LibraryError> {
        self.run(|st, now| {
            let (d, barcode, t) = st.loaded(drive)?;
            let used = t.used();
            if used.saturating_add(size) > t.capacity {
                return Err(LibraryError::TapeFull {
                    drive: drive.into(),
                    barcode,
                    capacity: t.capacity,
                    used,
                    requested: size,
                });
            }
            let seek = d.profile.travel_ms(t.position(d.head).abs_diff(used), t.capacity, d.profile.avg_locate_ms);
            let dur = seek + d.profile.transfer_ms(size, d.profile.rate_on(&t.media));
            t.files.push(TapeFile { start: used, size, checksum });
            let fseq = t.files.len() as u64;
            let start = now.max(d.free_ms);
            d.free_ms = start + dur;
            d.head = fseq + 1;
            let r = record(format!("write fseq {fseq} ({size} bytes) on {barcode} in drive {drive}"), start, dur);
            Ok((FilePosition { fseq, block: used }, r))
        })
    }

    async fn read_file(&self, drive: &str, fseq: u64) -> Result<FileMeta, LibraryError> {
        // A bad file costs its locate: the clock moves, then the error is returned.
        let mut failure = None;
        let meta = self.run(|st, now| {
            let (d, barcode, t) = st.loaded(drive)?;
            let files = t.files.len() as u64;
            if fseq == 0 || fseq > files {
                return Err(LibraryError::NoSuchFile { drive: drive.into(), barcode, fseq, files });
            }
            let file = t.files[fseq as usize - 1];
            let seek =
                d.profile.travel_ms(t.position(d.head).abs_diff(file.start), t.capacity, d.profile.avg_locate_ms);
            let start = now.max(d.free_ms);
            if t.bad.contains(&fseq) {
                d.free_ms = start + seek;
                d.head = fseq;
                failure = Some(LibraryError::BadFile { drive: drive.into(), barcode: barcode.clone(), fseq });
                return Ok((
                    None,
                    record(format!("read fseq {fseq} on {barcode} in drive {drive}: bad file"), start, seek),
                ));
            }
            let dur = seek + d.profile.transfer_ms(file.size, d.profile.rate_on(&t.media));
            d.free_ms = start + dur;
            d.head = fseq + 1;
            let r = record(format!("read fseq {fseq} on {barcode} in drive {drive}"), start, dur);
            Ok((Some(FileMeta { size: file.size, checksum: file.checksum }), r))
        })?;
        match (meta, failure) {
            (Some(m), _) => Ok(m),
            (None, Some(e)) => Err(e),
            (None, None) => unreachable!("a read returns its file or its failure"),
        }
    }

    async fn erase(&self, drive: &str) -> Result<(), LibraryError> {
        self.run(|st, now| {
            let (d, barcode, t) = st.loaded(drive)?;
            // The rewind to the beginning; the erase itself is instant in the model.
            let dur = d.profile.travel_ms(t.position(d.head), t.capacity, d.profile.avg_locate_ms);
            let start = now.max(d.free_ms);
            d.free_ms = start + dur;
            d.head = 1;
            t.files.clear();
            t.bad.clear();
            Ok(((), record(format!("erase {barcode} in drive {drive}"), start, dur)))
        })
    }

    async fn unload(&self, drive: &str) -> Result<(), LibraryError> {
        let mut failure = None;
        self.run(|st, now| {
            let State { drives, tapes, .. } = st;
            let d = drives.iter_mut().find(|d| d.name == drive);
            let d = d.ok_or_else(|| LibraryError::UnknownDrive { drive: drive.into() })?;
            take_fault(d)?;
            if d.state == DriveState::Unloaded {
                return Ok(((), None));
            }
            check_ready(d)?;
            let barcode = d.cartridge.clone().unwrap_or_default();
            let t = tapes.get(&barcode).ok_or_else(|| unknown_barcode(&barcode))?;
            let rewind = d.profile.travel_ms(t.position(d.head), t.capacity, d.profile.avg_rewind_ms);
            let dur = rewind + d.profile.unload_ms;
            let start = now.max(d.free_ms);
            d.free_ms = start + dur;
            d.head = 1;
            if std::mem::take(&mut d.stuck_on_unload) {
                d.state = DriveState::Failed;
                failure = Some(LibraryError::StuckCartridge { drive: drive.into(), barcode: barcode.clone() });
                return Ok(((), record(format!("unload {barcode} from drive {drive}: stuck"), start, dur)));
            }
            d.state = DriveState::Unloaded;
            Ok(((), record(format!("unload {barcode} from drive {drive}"), start, dur)))
        })?;
        failure.map_or(Ok(()), Err)
    }

    async fn files_on_tape(&self, drive: &str) -> Result<u64, LibraryError> {
        // From the simulator's records: no time passes and no pending fault fires.
        let mut st = self.lock();
        let d = st.drive(drive)?;
        let Some(barcode) = d.cartridge.clone().filter(|_| d.state == DriveState::Ready) else {
            return Err(LibraryError::DriveEmpty { drive: drive.into() });
        };
        let t = st.tapes.get(&barcode).ok_or_else(|| unknown_barcode(&barcode))?;
        Ok(t.files.len() as u64)
    }

    async fn status(&self, drive: &str) -> Result<DriveStatus, LibraryError> {
        let mut st = self.lock();
        let d = st.drive(drive)?;
        Ok(DriveStatus {
            drive: d.name.clone(),
            state: d.state,
            barcode: d.cartridge.clone(),
            fseq: (d.state == DriveState::Ready).then_some(d.head),
        })
    }
}

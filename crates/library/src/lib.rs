//! Tape libraries for the tape daemon: one [`Library`] trait, two implementations.
//!
//! * [`sim::SimLibrary`] — a simulated library built from mhVTL's own configuration files
//!   (`device.conf` + `library_contents.<id>`, parsed by [`config`]). No bytes move: every
//!   operation computes how long it would take on the real hardware ([`media`] holds the
//!   per-drive timing profiles and per-media capacities) and moves a virtual clock
//!   ([`sim::SimClock`]), so an hour of library activity costs microseconds of CPU.
//! * [`mhvtl::MhvtlLibrary`] — the real devices of an mhVTL host (or any SCSI library): the
//!   changer is driven with `mtx`, the drives with `mt` and the non-rewinding `st` device.
//!
//! The trait speaks in the library's own terms: storage slots and import/export slots numbered
//! from 1 as in `library_contents` and `mtx status`, drives named (the unit serial number of
//! `device.conf` in the simulator, the `nstN` device on a real host), cartridges by barcode, files
//! on a tape by their fSeq (1-based, as in CTA).

#![warn(missing_docs)]

pub mod config;
pub mod error;
pub mod media;
pub mod mhvtl;
pub mod sim;

use async_trait::async_trait;
use std::fmt;

pub use error::LibraryError;

/// Where a cartridge can be in a library.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Element {
    /// Storage slot `n` (1-based, `Slot n:` in `library_contents`, `Storage Element n` in mtx).
    Slot(u32),
    /// Import/export (mail) slot `n` (1-based, `MAP n:` in `library_contents`).
    ImportExport(u32),
    /// The drive of that name.
    Drive(String),
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Element::Slot(n) => write!(f, "slot {n}"),
            Element::ImportExport(n) => write!(f, "import/export slot {n}"),
            Element::Drive(d) => write!(f, "drive {d}"),
        }
    }
}

/// What a drive is doing, as [`Library::status`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveState {
    /// No cartridge in the drive.
    Empty,
    /// A cartridge sits in the drive, unloaded (ejected): the robot may take it, or
    /// [`Library::load`] threads it again.
    Unloaded,
    /// A cartridge is loaded and ready for positioning and I/O.
    Ready,
    /// The drive is out of service (a stuck cartridge) until an operator repairs it.
    Failed,
}

/// The state of one drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveStatus {
    /// The drive's name.
    pub drive: String,
    /// What the drive is doing.
    pub state: DriveState,
    /// The cartridge in the drive, loaded or not.
    pub barcode: Option<String>,
    /// The file the head is at (the next file to read or write, 1-based fSeq) when loaded.
    pub fseq: Option<u64>,
}

/// One slot (storage or import/export) in an [`Inventory`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    /// The slot: [`Element::Slot`] or [`Element::ImportExport`].
    pub element: Element,
    /// The cartridge in it.
    pub barcode: Option<String>,
}

/// One drive in an [`Inventory`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveInfo {
    /// The drive's name.
    pub name: String,
    /// Position among the library's drives (0-based: mtx's data transfer element, CTA's `smcN`).
    pub ordinal: u32,
    /// The drive's product identification (`ULT3580-TD9`), empty when unknown.
    pub product: String,
    /// The cartridge in the drive, loaded or not.
    pub barcode: Option<String>,
    /// The storage slot the cartridge came from, when the library knows it.
    pub source_slot: Option<u32>,
}

/// Which cartridge is where: what the robot reports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Inventory {
    /// Storage slots in order, then import/export slots in order.
    pub slots: Vec<SlotInfo>,
    /// Drives in ordinal order.
    pub drives: Vec<DriveInfo>,
}

impl Inventory {
    /// Where the cartridge with this barcode is, if anywhere.
    pub fn locate(&self, barcode: &str) -> Option<Element> {
        if let Some(s) = self.slots.iter().find(|s| s.barcode.as_deref() == Some(barcode)) {
            return Some(s.element.clone());
        }
        self.drives.iter().find(|d| d.barcode.as_deref() == Some(barcode)).map(|d| Element::Drive(d.name.clone()))
    }

    /// The storage slots (not import/export) that hold no cartridge.
    pub fn empty_slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().filter_map(|s| match (&s.element, &s.barcode) {
            (Element::Slot(n), None) => Some(*n),
            _ => None,
        })
    }

    /// Every cartridge barcode in the library (slots then drives).
    pub fn barcodes(&self) -> Vec<String> {
        let slots = self.slots.iter().filter_map(|s| s.barcode.clone());
        slots.chain(self.drives.iter().filter_map(|d| d.barcode.clone())).collect()
    }
}

/// Where a file starts on a tape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilePosition {
    /// The file's sequence number on the tape (1-based).
    pub fseq: u64,
    /// The logical position of its start: bytes from the beginning of tape in the simulator,
    /// the logical block number on a real drive.
    pub block: u64,
}

/// What [`Library::read_file`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileMeta {
    /// Size in bytes.
    pub size: u64,
    /// The checksum the file was written with (adler32 in CTA).
    pub checksum: u32,
}

/// A tape library: a robot moving cartridges between slots and drives, and drives that
/// position, write and read files. Every method names the drive or element it works on and
/// fails with a [`LibraryError`] that names them too.
#[async_trait]
pub trait Library: Send + Sync {
    /// Which cartridge is in which slot and drive.
    async fn inventory(&self) -> Result<Inventory, LibraryError>;

    /// Moves a cartridge with the robot. Slot (or import/export slot) to drive is a mount: the
    /// robot move plus the drive's load, the drive is [`DriveState::Ready`] when it returns.
    /// Drive to slot needs the drive [`DriveState::Unloaded`] first ([`Library::unload`]).
    /// Slot to slot is a plain transfer.
    async fn move_cartridge(&self, from: Element, to: Element) -> Result<(), LibraryError>;

    /// Threads the cartridge that sits unloaded in the drive (a reload without a robot move).
    async fn load(&self, drive: &str) -> Result<(), LibraryError>;

    /// Positions the head at the start of file `fseq`; `fseq` = number of files + 1 is the end of
    /// data, where the next write goes.
    async fn locate(&self, drive: &str, fseq: u64) -> Result<FilePosition, LibraryError>;

    /// Appends one file of `size` bytes after the last file on the tape (positioning at the end
    /// of data first if needed) and returns where it starts.
    async fn write_file(&self, drive: &str, size: u64, checksum: u32) -> Result<FilePosition, LibraryError>;

    /// Reads file `fseq` (positioning first if needed); the head ends at the next file.
    async fn read_file(&self, drive: &str, fseq: u64) -> Result<FileMeta, LibraryError>;

    /// How many files the loaded tape holds: what a tape server checks against the catalogue
    /// before it appends. On a real drive the head is spaced to the end of data (where the next
    /// write goes) and its file number read; the simulator answers from its records.
    async fn files_on_tape(&self, drive: &str) -> Result<u64, LibraryError>;

    /// Rewinds the loaded tape and erases it: no file is left on it and the next write is fSeq 1
    /// (an operator's `mt erase` before a tape is reused; the head ends at the beginning).
    async fn erase(&self, drive: &str) -> Result<(), LibraryError>;
    /// Rewinds and unloads (ejects) the cartridge; it stays in the drive for the robot.
    async fn unload(&self, drive: &str) -> Result<(), LibraryError>;

    /// The drive's state.
    async fn status(&self, drive: &str) -> Result<DriveStatus, LibraryError>;

    /// Mounts a cartridge: finds it in a slot and moves it into `drive` (robot move + load).
    async fn mount(&self, barcode: &str, drive: &str) -> Result<(), LibraryError> {
        let inventory = self.inventory().await?;
        match inventory.locate(barcode) {
            Some(Element::Drive(d)) => Err(LibraryError::CartridgeInDrive { barcode: barcode.to_string(), drive: d }),
            Some(from) => self.move_cartridge(from, Element::Drive(drive.to_string())).await,
            None => Err(LibraryError::UnknownBarcode { barcode: barcode.to_string() }),
        }
    }

    /// Dismounts: unloads the drive if needed and moves the cartridge back to the slot it came
    /// from (or the first empty storage slot when the library does not know it).
    async fn dismount(&self, drive: &str) -> Result<(), LibraryError> {
        let status = self.status(drive).await?;
        match status.state {
            DriveState::Empty => return Err(LibraryError::DriveEmpty { drive: drive.to_string() }),
            DriveState::Ready | DriveState::Failed => self.unload(drive).await?,
            DriveState::Unloaded => {}
        }
        let inventory = self.inventory().await?;
        let info = inventory.drives.iter().find(|d| d.name == drive);
        let slot = info
            .and_then(|d| d.source_slot)
            .filter(|s| inventory.empty_slots().any(|e| e == *s))
            .or_else(|| inventory.empty_slots().next())
            .ok_or(LibraryError::NoEmptySlot)?;
        self.move_cartridge(Element::Drive(drive.to_string()), Element::Slot(slot)).await
    }
}

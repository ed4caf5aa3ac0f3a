//! The errors of library operations ([`LibraryError`]) and of configuration files
//! ([`ConfigError`]). Every message names the drive, barcode, slot, file or line it is about.

use crate::Element;

/// A malformed configuration file or tool output: where and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}: {message}")]
pub struct ConfigError {
    /// The file (or command) the text came from.
    pub source_name: String,
    /// The 1-based line number, 0 when the error is about the whole text.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    /// An error at `line` of `source_name`.
    pub fn new(source_name: &str, line: usize, message: impl Into<String>) -> Self {
        ConfigError { source_name: source_name.to_string(), line, message: message.into() }
    }
}

/// Why a library operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    /// No drive of that name in the library.
    #[error("unknown drive {drive}")]
    UnknownDrive {
        /// The name asked for.
        drive: String,
    },
    /// No cartridge with that barcode in the library.
    #[error("unknown barcode {barcode}: no such cartridge in the library")]
    UnknownBarcode {
        /// The barcode asked for.
        barcode: String,
    },
    /// A slot number outside the library.
    #[error("no {element} in the library")]
    NoSuchElement {
        /// The element asked for.
        element: Element,
    },
    /// A move from a slot that holds no cartridge.
    #[error("{element} is empty")]
    EmptySlot {
        /// The empty source.
        element: Element,
    },
    /// A move into a slot that already holds a cartridge.
    #[error("{element} is full: it holds {barcode}")]
    SlotOccupied {
        /// The full destination.
        element: Element,
        /// The cartridge already there.
        barcode: String,
    },
    /// A move into a drive that already holds a cartridge.
    #[error("drive {drive} is occupied: it holds {barcode}")]
    DriveOccupied {
        /// The drive.
        drive: String,
        /// The cartridge already there.
        barcode: String,
    },
    /// A drive operation that needs a cartridge, on an empty drive.
    #[error("drive {drive} is empty")]
    DriveEmpty {
        /// The drive.
        drive: String,
    },
    /// A drive operation that needs the cartridge loaded, on an unloaded one.
    #[error("drive {drive} holds {barcode} unloaded: load it first")]
    NotLoaded {
        /// The drive.
        drive: String,
        /// The cartridge in it.
        barcode: String,
    },
    /// A robot move out of a drive whose cartridge is still loaded.
    #[error("drive {drive} still has {barcode} loaded: unload it before moving it out")]
    NotUnloaded {
        /// The drive.
        drive: String,
        /// The cartridge in it.
        barcode: String,
    },
    /// A mount of a cartridge that is in a drive already.
    #[error("cartridge {barcode} is in drive {drive}")]
    CartridgeInDrive {
        /// The cartridge.
        barcode: String,
        /// The drive holding it.
        drive: String,
    },
    /// A robot move the library cannot do (drive to drive, an element to itself).
    #[error("cannot move a cartridge from {from} to {to}")]
    InvalidMove {
        /// The source.
        from: Element,
        /// The destination.
        to: Element,
    },
    /// No empty storage slot to put a cartridge back into.
    #[error("no empty storage slot in the library")]
    NoEmptySlot,
    /// A cartridge the drive cannot use (another generation, a cleaning cartridge...).
    #[error("drive {drive} cannot use cartridge {barcode}: {reason}")]
    IncompatibleMedia {
        /// The drive.
        drive: String,
        /// The cartridge.
        barcode: String,
        /// Why.
        reason: String,
    },
    /// The drive reported a hardware or medium error.
    #[error("drive {drive} error: {message}")]
    DriveError {
        /// The drive.
        drive: String,
        /// What it reported.
        message: String,
    },
    /// The cartridge would not come out of the drive; the drive is out of service.
    #[error("cartridge {barcode} is stuck in drive {drive}")]
    StuckCartridge {
        /// The drive.
        drive: String,
        /// The stuck cartridge.
        barcode: String,
    },
    /// A file that cannot be read back.
    #[error("bad file: fseq {fseq} on {barcode} in drive {drive} cannot be read")]
    BadFile {
        /// The drive.
        drive: String,
        /// The cartridge.
        barcode: String,
        /// The file.
        fseq: u64,
    },
    /// A locate or read past the end of data.
    #[error("no file fseq {fseq} on {barcode} in drive {drive}: the tape holds {files} files")]
    NoSuchFile {
        /// The drive.
        drive: String,
        /// The cartridge.
        barcode: String,
        /// The file asked for.
        fseq: u64,
        /// How many files the tape holds.
        files: u64,
    },
    /// A write that does not fit on the tape.
    #[error(
        "tape full: {barcode} in drive {drive} has {used} of {capacity} bytes used, \
         a file of {requested} bytes does not fit"
    )]
    TapeFull {
        /// The drive.
        drive: String,
        /// The cartridge.
        barcode: String,
        /// The cartridge's capacity in bytes.
        capacity: u64,
        /// Bytes already written.
        used: u64,
        /// The size of the refused file.
        requested: u64,
    },
    /// No mhVTL (or other SCSI library) on this host.
    #[error("mhVTL not found: {0}")]
    MhvtlNotFound(String),
    /// An external command (mtx, mt, lsscsi) failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr (and stdout when stderr was empty).
        stderr: String,
    },
    /// Reading or writing a device failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the device.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A configuration file or a tool's output could not be parsed.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

//! The real devices: a [`Library`] over an mhVTL host (or any Linux SCSI library), driven by the
//! same tools an operator uses.
//!
//! * Discovery ([`MhvtlLibrary::discover`]): the first medium changer (`mediumx`) of `lsscsi -g`
//!   (or of sysfs's SCSI devices where `lsscsi` is not installed) and, as its drives, the `tape`
//!   devices on the same SCSI host and channel in lsscsi order — drive ordinal `i` (mtx's data
//!   transfer element `i`) is the `i`-th of them, the assumption
//!   CTA's CI scripts make too. A drive is named by its non-rewinding node (`nst0`).
//! * The robot: `mtx -f /dev/sgN status | load <slot> <drive> | unload <slot> <drive> | transfer`.
//! * The drives: `mt -f /dev/nstN status | tell | asf <n> | eod | load | offline`, and files are
//!   written and read through the `st` device itself. A file is one header block
//!   (`tapesched-file v1 size=<n> checksum=<hex>`) followed by `size` bytes of zeros in 256 KiB
//!   blocks and the file mark `st` writes on close; reading checks the byte count against the
//!   header and returns the header's checksum (no real data moves, as in the simulator).
//!
//! Commands run through a [`Runner`] ([`SystemRunner`] by default) so that the command sequences
//! are testable without a library; the blocking work runs on tokio's blocking pool.

pub mod parse;

use crate::error::LibraryError;
use crate::{DriveInfo, DriveState, DriveStatus, Element, FileMeta, FilePosition, Inventory, Library, SlotInfo};
use async_trait::async_trait;
use parse::{parse_lsscsi, parse_mt_status, parse_mt_tell, parse_mtx_status, MtxStatus, ScsiDevice};
use std::io::{Read, Write};
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where sysfs lists the host's SCSI devices (read when `lsscsi` is not installed).
pub const SYSFS_SCSI: &str = "/sys/bus/scsi/devices";

/// Where mhVTL's kernel module shows up in sysfs (one of them, by kernel version).
pub const MHVTL_SYSFS: &[&str] = &["/sys/bus/pseudo9/drivers/mhvtl", "/sys/bus/pseudo/drivers/mhvtl", "/sys/bus/mhvtl"];

/// How long a drive may take to become ready after a load (CTA's `TapeLoadTimeout`).
pub const LOAD_TIMEOUT: Duration = Duration::from_secs(300);

const BLOCK: usize = 256 * 1024;

/// Runs an external command.
pub trait Runner: Send + Sync {
    /// Runs `program` with `args` and returns its output (whatever its exit status).
    fn run(&self, program: &str, args: &[String]) -> std::io::Result<Output>;
}

/// Runs commands with [`std::process::Command`].
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemRunner;

impl Runner for SystemRunner {
    fn run(&self, program: &str, args: &[String]) -> std::io::Result<Output> {
        std::process::Command::new(program).args(args).output()
    }
}

/// One drive of the library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MhvtlDrive {
    /// The drive's name: its non-rewinding node without `/dev/` (`nst0`).
    pub name: String,
    /// The non-rewinding device (`/dev/nst0`).
    pub device: String,
    /// Ordinal in the library (mtx's data transfer element).
    pub ordinal: u32,
    /// Product identification from lsscsi.
    pub product: String,
}

struct Inner {
    changer: String,
    drives: Vec<MhvtlDrive>,
    runner: Arc<dyn Runner>,
}

/// A library of real SCSI devices driven with mtx and mt (see the module documentation).
pub struct MhvtlLibrary {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MhvtlLibrary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MhvtlLibrary")
            .field("changer", &self.inner.changer)
            .field("drives", &self.inner.drives)
            .finish()
    }
}

fn looked_for() -> String {
    let sysfs: Vec<&str> = MHVTL_SYSFS.iter().copied().filter(|p| std::path::Path::new(p).exists()).collect();
    let module = if sysfs.is_empty() {
        format!("the mhvtl kernel module is not loaded (none of {} exists)", MHVTL_SYSFS.join(", "))
    } else {
        format!("the mhvtl kernel module is loaded ({})", sysfs.join(", "))
    };
    format!("looked for a SCSI medium changer (a `mediumx` line with an sg device) and its `tape` drives in `lsscsi -g`; {module}")
}

impl MhvtlLibrary {
    /// Finds the library on this host with `lsscsi -g`.
    pub fn discover() -> Result<Self, LibraryError> {
        MhvtlLibrary::discover_with(Arc::new(SystemRunner))
    }

    /// Finds the library with `lsscsi -g` run by `runner`, or, where `lsscsi` is not installed,
    /// from sysfs ([`SYSFS_SCSI`]). Without a changer, fails with
    /// [`LibraryError::MhvtlNotFound`] saying what was looked for.
    pub fn discover_with(runner: Arc<dyn Runner>) -> Result<Self, LibraryError> {
        MhvtlLibrary::discover_in(runner, std::path::Path::new(SYSFS_SCSI))
    }

    /// [`MhvtlLibrary::discover_with`], reading sysfs's SCSI devices under `sysfs` when `lsscsi`
    /// is not installed.
    pub fn discover_in(runner: Arc<dyn Runner>, sysfs: &std::path::Path) -> Result<Self, LibraryError> {
        let args = ["-g".to_string()];
        let out = match runner.run("lsscsi", &args) {
            Ok(out) => out,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let devices = parse::scan_sysfs(sysfs).unwrap_or_default();
                if devices.iter().any(|d| d.kind == "mediumx" && d.sg.is_some()) {
                    return MhvtlLibrary::from_devices(&devices, runner);
                }
                return Err(LibraryError::MhvtlNotFound(format!(
                    "`lsscsi` is not installed (apt-get install lsscsi), and {} shows no medium changer with an \
                     sg device among {} SCSI devices; {}",
                    sysfs.display(),
                    devices.len(),
                    looked_for()
                )));
            }
            Err(e) => return Err(LibraryError::Io { context: "running `lsscsi -g`".into(), source: e }),
        };
        let text = checked("lsscsi -g", out)?;
        MhvtlLibrary::from_lsscsi(&text, runner)
    }

    /// Builds the library from `lsscsi -g` output.
    pub fn from_lsscsi(text: &str, runner: Arc<dyn Runner>) -> Result<Self, LibraryError> {
        MhvtlLibrary::from_devices(&parse_lsscsi(text)?, runner)
    }

    /// Builds the library from the SCSI devices of this host (as `lsscsi -g` lists them).
    pub fn from_devices(devices: &[ScsiDevice], runner: Arc<dyn Runner>) -> Result<Self, LibraryError> {
        let Some(changer) = devices.iter().find(|d| d.kind == "mediumx" && d.sg.is_some()) else {
            return Err(LibraryError::MhvtlNotFound(format!(
                "no medium changer among the {} SCSI devices; {}",
                devices.len(),
                looked_for()
            )));
        };
        let drives = devices
            .iter()
            .filter(|d| d.kind == "tape" && d.host == changer.host && d.channel == changer.channel)
            .filter_map(|d: &ScsiDevice| {
                let st = d.device.as_deref()?.strip_prefix("/dev/st")?;
                Some((format!("nst{st}"), d.model.clone()))
            })
            .enumerate()
            .map(|(i, (name, product))| MhvtlDrive { device: format!("/dev/{name}"), name, ordinal: i as u32, product })
            .collect();
        let changer = changer.sg.clone().unwrap_or_default();
        Ok(MhvtlLibrary { inner: Arc::new(Inner { changer, drives, runner }) })
    }

    /// The changer's generic SCSI device (`/dev/sg1`).
    pub fn changer(&self) -> &str {
        &self.inner.changer
    }

    /// The drives in ordinal order.
    pub fn drives(&self) -> &[MhvtlDrive] {
        &self.inner.drives
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, LibraryError> + Send + 'static,
    ) -> Result<T, LibraryError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner)).await.map_err(|e| LibraryError::Io {
            context: "mhVTL operation task".into(),
            source: std::io::Error::other(e),
        })?
    }
}

/// The command's stdout when it succeeded, its failure otherwise.
fn checked(command: &str, out: Output) -> Result<String, LibraryError> {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(LibraryError::Command {
        command: command.to_string(),
        status: out.status.to_string(),
        stderr: if stderr.is_empty() { stdout.trim().to_string() } else { stderr },
    })
}

impl Inner {
    fn run(&self, program: &str, args: &[String]) -> Result<String, LibraryError> {
        let command = format!("{program} {}", args.join(" "));
        let out = self
            .runner
            .run(program, args)
            .map_err(|e| LibraryError::Io { context: format!("running `{command}`"), source: e })?;
        checked(&command, out)
    }

    fn mtx(&self, args: &[String]) -> Result<String, LibraryError> {
        let mut all = vec!["-f".to_string(), self.changer.clone()];
        all.extend_from_slice(args);
        self.run("mtx", &all)
    }

    fn mt(&self, drive: &MhvtlDrive, args: &[&str]) -> Result<String, LibraryError> {
        let mut all = vec!["-f".to_string(), drive.device.clone()];
        all.extend(args.iter().map(|a| a.to_string()));
        self.run("mt", &all)
    }

    fn drive(&self, name: &str) -> Result<&MhvtlDrive, LibraryError> {
        self.drives
            .iter()
            .find(|d| d.name == name)
            .ok_or_else(|| LibraryError::UnknownDrive { drive: name.to_string() })
    }

    fn status(&self) -> Result<MtxStatus, LibraryError> {
        Ok(parse_mtx_status(&self.mtx(&["status".into()])?)?)
    }

    /// mtx's storage element number of a slot.
    fn element(&self, status: &MtxStatus, e: &Element) -> Result<u32, LibraryError> {
        let storage = status.storage_count();
        let n = match e {
            Element::Slot(n) if (1..=storage).contains(n) => *n,
            Element::ImportExport(n) if *n >= 1 && storage + n <= status.slots.len() as u32 => storage + n,
            _ => return Err(LibraryError::NoSuchElement { element: e.clone() }),
        };
        Ok(n)
    }

    fn inventory(&self) -> Result<Inventory, LibraryError> {
        let status = self.status()?;
        let storage = status.storage_count();
        let slots = status
            .slots
            .iter()
            .map(|s| SlotInfo {
                element: if s.import_export {
                    Element::ImportExport(s.index - storage)
                } else {
                    Element::Slot(s.index)
                },
                barcode: s.barcode.clone(),
            })
            .collect();
        let drives = status
            .drives
            .iter()
            .map(|d| {
                let known = self.drives.iter().find(|k| k.ordinal == d.index);
                DriveInfo {
                    name: known.map_or_else(|| format!("dte{}", d.index), |k| k.name.clone()),
                    ordinal: d.index,
                    product: known.map_or_else(String::new, |k| k.product.clone()),
                    barcode: d.barcode.clone(),
                    source_slot: d.source.filter(|s| *s <= storage),
                }
            })
            .collect();
        Ok(Inventory { slots, drives })
    }

    fn move_cartridge(&self, from: &Element, to: &Element) -> Result<(), LibraryError> {
        let status = self.status()?;
        match (from, to) {
            (Element::Drive(_), Element::Drive(_)) => {
                Err(LibraryError::InvalidMove { from: from.clone(), to: to.clone() })
            }
            (_, Element::Drive(name)) => {
                let d = self.drive(name)?.clone();
                let slot = self.element(&status, from)?;
                self.mtx(&["load".into(), slot.to_string(), d.ordinal.to_string()])?;
                self.wait_ready(&d)
            }
            (Element::Drive(name), _) => {
                let d = self.drive(name)?;
                let slot = self.element(&status, to)?;
                self.mtx(&["unload".into(), slot.to_string(), d.ordinal.to_string()]).map(drop)
            }
            _ => {
                let (a, b) = (self.element(&status, from)?, self.element(&status, to)?);
                self.mtx(&["transfer".into(), a.to_string(), b.to_string()]).map(drop)
            }
        }
    }

    /// Polls `mt status` until the drive is online (real devices take seconds to thread).
    fn wait_ready(&self, d: &MhvtlDrive) -> Result<(), LibraryError> {
        let start = Instant::now();
        loop {
            let last = self.mt(d, &["status"]).and_then(|t| Ok(parse_mt_status(&t)?));
            if let Ok(s) = &last {
                if s.online() {
                    return Ok(());
                }
            }
            if start.elapsed() > LOAD_TIMEOUT {
                let why = match last {
                    Ok(s) => format!("flags {}", s.flags.join(" ")),
                    Err(e) => e.to_string(),
                };
                return Err(LibraryError::DriveError {
                    drive: d.name.clone(),
                    message: format!("not ready {}s after the load: {why}", LOAD_TIMEOUT.as_secs()),
                });
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    fn position(&self, d: &MhvtlDrive) -> Result<FilePosition, LibraryError> {
        let st = parse_mt_status(&self.mt(d, &["status"])?)?;
        let file = st.file_number.ok_or_else(|| LibraryError::DriveError {
            drive: d.name.clone(),
            message: "position unknown (file number -1)".into(),
        })?;
        let block = parse_mt_tell(&self.mt(d, &["tell"])?)?;
        Ok(FilePosition { fseq: file + 1, block })
    }

    fn write_file(&self, d: &MhvtlDrive, size: u64, checksum: u32) -> Result<FilePosition, LibraryError> {
        self.mt(d, &["eod"])?;
        let pos = self.position(d)?;
        let io = |e| LibraryError::Io { context: format!("writing fseq {} on {}", pos.fseq, d.device), source: e };
        let mut dev = std::fs::OpenOptions::new().write(true).open(&d.device).map_err(io)?;
        dev.write_all(format!("tapesched-file v1 size={size} checksum={checksum:08x}\n").as_bytes()).map_err(io)?;
        let zeros = vec![0u8; BLOCK];
        let mut left = size;
        while left > 0 {
            let n = left.min(BLOCK as u64) as usize;
            dev.write_all(&zeros[..n]).map_err(io)?;
            left -= n as u64;
        }
        // Closing the non-rewinding device after a write writes the file mark.
        drop(dev);
        Ok(pos)
    }

    fn read_file(&self, d: &MhvtlDrive, fseq: u64) -> Result<FileMeta, LibraryError> {
        self.mt(d, &["asf", &(fseq.saturating_sub(1)).to_string()])?;
        let barcode = self.status()?.drives.iter().find(|x| x.index == d.ordinal).and_then(|x| x.barcode.clone());
        let bad =
            || LibraryError::BadFile { drive: d.name.clone(), barcode: barcode.clone().unwrap_or_default(), fseq };
        let io = |e| LibraryError::Io { context: format!("reading fseq {fseq} on {}", d.device), source: e };
        let mut dev = std::fs::File::open(&d.device).map_err(io)?;
        let mut buf = vec![0u8; BLOCK];
        let n = dev.read(&mut buf).map_err(io)?;
        let header = String::from_utf8_lossy(&buf[..n]).into_owned();
        let mut words = header.trim().strip_prefix("tapesched-file v1 ").ok_or_else(bad)?.split_whitespace();
        let size: u64 = words.next().and_then(|w| w.strip_prefix("size=")?.parse().ok()).ok_or_else(bad)?;
        let checksum =
            words.next().and_then(|w| u32::from_str_radix(w.strip_prefix("checksum=")?, 16).ok()).ok_or_else(bad)?;
        let mut read = 0u64;
        loop {
            // Each read returns one block; 0 is the file mark.
            let n = dev.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            read += n as u64;
        }
        if read != size {
            return Err(bad());
        }
        Ok(FileMeta { size, checksum })
    }

    fn drive_status(&self, d: &MhvtlDrive) -> Result<DriveStatus, LibraryError> {
        let changer = self.status()?;
        let slot = changer.drives.iter().find(|x| x.index == d.ordinal);
        let barcode = slot.and_then(|x| x.barcode.clone());
        let full = slot.is_some_and(|x| x.full);
        let mt = parse_mt_status(&self.mt(d, &["status"])?)?;
        let state = match (full, mt.online()) {
            (_, true) => DriveState::Ready,
            (true, false) => DriveState::Unloaded,
            (false, false) => DriveState::Empty,
        };
        let fseq = mt.file_number.filter(|_| state == DriveState::Ready).map(|f| f + 1);
        Ok(DriveStatus { drive: d.name.clone(), state, barcode, fseq })
    }
}

#[async_trait]
impl Library for MhvtlLibrary {
    async fn inventory(&self) -> Result<Inventory, LibraryError> {
        self.blocking(|i| i.inventory()).await
    }

    async fn move_cartridge(&self, from: Element, to: Element) -> Result<(), LibraryError> {
        self.blocking(move |i| i.move_cartridge(&from, &to)).await
    }

    async fn load(&self, drive: &str) -> Result<(), LibraryError> {
        let drive = drive.to_string();
        self.blocking(move |i| {
            let d = i.drive(&drive)?;
            i.mt(d, &["load"])?;
            i.wait_ready(d)
        })
        .await
    }

    async fn locate(&self, drive: &str, fseq: u64) -> Result<FilePosition, LibraryError> {
        let drive = drive.to_string();
        self.blocking(move |i| {
            let d = i.drive(&drive)?;
            i.mt(d, &["asf", &fseq.saturating_sub(1).to_string()])?;
            i.position(d)
        })
        .await
    }

    async fn write_file(&self, drive: &str, size: u64, checksum: u32) -> Result<FilePosition, LibraryError> {
        let drive = drive.to_string();
        self.blocking(move |i| i.write_file(i.drive(&drive)?, size, checksum)).await
    }

    async fn read_file(&self, drive: &str, fseq: u64) -> Result<FileMeta, LibraryError> {
        let drive = drive.to_string();
        self.blocking(move |i| i.read_file(i.drive(&drive)?, fseq)).await
    }

    async fn files_on_tape(&self, drive: &str) -> Result<u64, LibraryError> {
        let drive = drive.to_string();
        self.blocking(move |i| {
            let d = i.drive(&drive)?;
            i.mt(d, &["eod"])?;
            // At the end of data the head is at the file mark after the last file: file number =
            // files on tape (0-based), the fSeq of the next write minus one.
            Ok(i.position(d)?.fseq - 1)
        })
        .await
    }

    async fn erase(&self, drive: &str) -> Result<(), LibraryError> {
        let drive = drive.to_string();
        self.blocking(move |i| {
            let d = i.drive(&drive)?;
            i.mt(d, &["rewind"])?;
            // st's MTERASE from the beginning of tape: nothing is left after it.
            i.mt(d, &["erase"])?;
            i.mt(d, &["rewind"]).map(drop)
        })
        .await
    }

    async fn unload(&self, drive: &str) -> Result<(), LibraryError> {
        let drive = drive.to_string();
        self.blocking(move |i| i.mt(i.drive(&drive)?, &["offline"]).map(drop)).await
    }

    async fn status(&self, drive: &str) -> Result<DriveStatus, LibraryError> {
        let drive = drive.to_string();
        self.blocking(move |i| i.drive_status(i.drive(&drive)?)).await
    }
}

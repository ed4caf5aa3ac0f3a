//! The catalogue of an end-to-end run, built from the library's configuration and the workload:
//! drives from `device.conf` (the library's `Drive:` records), tapes from the barcodes of
//! `library_contents.<id>` given to pools as the workload's `tapes:` says (files already on some
//! of them), and the rest (VOs, pools, storage classes, routes, mount policies and rules) from
//! the workload's `catalogue:` section.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use tapesched_library::config::{DeviceConf, LibraryContents};
use tapesched_library::sim::{SimClock, SimLibrary};
use tapesched_scenario::model::{CatalogueSpec, CopySpec, DriveSpec, FileSpec, LogicalLibrarySpec, TapeSpec};
use tapesched_scheduler::catalogue::memory::MemoryCatalogue;
use tapesched_taped::config::vid_of;

use crate::workload::Workload;
use crate::E2eError;

/// A tape of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedTape {
    /// Its VID (the barcode without its media suffix).
    pub vid: String,
    /// The cartridge's barcode.
    pub barcode: String,
    /// Its pool.
    pub tape_pool: String,
    /// Capacity, bytes (the simulator's, from the media).
    pub capacity: u64,
    /// Files already on it: their archive file ids, each of `prefill_size` bytes.
    pub prefilled: Range<u64>,
    /// Size of each prefilled file.
    pub prefill_size: u64,
    /// Storage class of the prefilled files.
    pub prefill_class: String,
}

/// The library's drives and the tapes of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Drive names (unit serial numbers), in the simulator's order.
    pub drives: Vec<String>,
    /// The tapes given to pools, in barcode order.
    pub tapes: Vec<PlannedTape>,
    /// Tapes of the library left out of the catalogue.
    pub unused_tapes: usize,
}

/// The checksum the tape daemon's `sizes` data path expects of an archive file: the adler32 of
/// its id's little-endian bytes.
pub fn sizes_checksum(archive_file_id: u64) -> u32 {
    tapesched_taped::data::adler32(&archive_file_id.to_le_bytes())
}

impl Plan {
    /// Reads `dir/device.conf` and `dir/library_contents.<library_id>` and gives the workload's
    /// pools their tapes. Fails naming the file (and line) of a bad configuration, or the
    /// workload field asking for more tapes than the library has.
    pub fn new(dir: &Path, w: &Workload) -> Result<Plan, E2eError> {
        let conf_path = dir.join("device.conf");
        if !conf_path.is_file() {
            return Err(E2eError::Config(format!(
                "{}: no device.conf in this directory (an mhVTL configuration, e.g. compat/mhvtl/lto9/)",
                dir.display()
            )));
        }
        let contents_path = dir.join(format!("library_contents.{}", w.library_id));
        if !contents_path.is_file() {
            return Err(E2eError::Config(format!(
                "{}: no library_contents.{} (the workload's library_id)",
                dir.display(),
                w.library_id
            )));
        }
        let conf = DeviceConf::read(&conf_path).map_err(|e| E2eError::Config(e.to_string()))?;
        let contents = LibraryContents::read(&contents_path).map_err(|e| E2eError::Config(e.to_string()))?;
        let lib = SimLibrary::new(&conf, &contents, w.library_id, Arc::new(SimClock::new(0)))
            .map_err(|e| E2eError::Config(e.to_string()))?;
        let drives = lib.drive_names();
        if drives.is_empty() {
            return Err(E2eError::Config(format!("{}: library {} has no drives", conf_path.display(), w.library_id)));
        }
        // Cleaning cartridges (CLN...) are not data tapes.
        let barcodes: Vec<String> = contents.barcodes().filter(|b| !b.starts_with("CLN")).map(str::to_string).collect();
        let wanted: u64 = w.tapes.iter().map(|g| u64::from(g.count)).sum();
        if wanted > barcodes.len() as u64 {
            return Err(E2eError::Workload(format!(
                "tapes: the groups ask for {wanted} tapes, library {} of {} has {}",
                w.library_id,
                dir.display(),
                barcodes.len()
            )));
        }
        let mut tapes = Vec::new();
        let mut next_id = 1u64;
        let mut it = barcodes.iter();
        for (gi, g) in w.tapes.iter().enumerate() {
            for _ in 0..g.count {
                let barcode = it.next().cloned().unwrap_or_default();
                let capacity = lib.cartridge(&barcode).map_err(|e| E2eError::Config(e.to_string()))?.1;
                let (files, size, class) =
                    g.prefill.as_ref().map_or((0, 0, String::new()), |p| (p.files, p.size, p.storage_class.clone()));
                if files.saturating_mul(size) > capacity {
                    return Err(E2eError::Workload(format!(
                        "tapes[{gi}].prefill: {files} files of {size} bytes do not fit on {barcode} ({capacity} bytes)"
                    )));
                }
                tapes.push(PlannedTape {
                    vid: vid_of(&barcode).to_string(),
                    barcode,
                    tape_pool: g.tape_pool.clone(),
                    capacity,
                    prefilled: next_id..next_id + files,
                    prefill_size: size,
                    prefill_class: class,
                });
                next_id += files;
            }
        }
        Ok(Plan { drives, unused_tapes: barcodes.len() - tapes.len(), tapes })
    }

    /// The archive file ids prefilled on the tapes of `pool`.
    pub fn files_of_pool(&self, pool: &str) -> Vec<Range<u64>> {
        self.tapes
            .iter()
            .filter(|t| t.tape_pool == pool && !t.prefilled.is_empty())
            .map(|t| t.prefilled.clone())
            .collect()
    }

    /// Files prefilled over every tape.
    pub fn prefilled_files(&self) -> u64 {
        self.tapes.iter().map(|t| t.prefilled.end - t.prefilled.start).sum()
    }

    /// The catalogue section: the workload's, plus the logical library, the tapes, the drives
    /// and the prefilled files.
    pub fn catalogue_spec(&self, w: &Workload) -> CatalogueSpec {
        let mut spec = w.catalogue.clone();
        if !spec.logical_libraries.iter().any(|l| l.name == w.logical_library) {
            spec.logical_libraries.push(LogicalLibrarySpec {
                name: w.logical_library.clone(),
                disabled: false,
                physical_library: None,
            });
        }
        for t in &self.tapes {
            let files = t.prefilled.end - t.prefilled.start;
            spec.tapes.push(TapeSpec {
                vid: t.vid.clone(),
                tape_pool: t.tape_pool.clone(),
                logical_library: w.logical_library.clone(),
                capacity_bytes: t.capacity,
                data_on_tape_bytes: files * t.prefill_size,
                last_fseq: files,
                full: false,
                state: None,
                state_reason: None,
                media_type: None,
                vendor: None,
            });
            for (i, id) in t.prefilled.clone().enumerate() {
                spec.files.push(FileSpec {
                    archive_file_id: id,
                    disk_instance: None,
                    disk_file_id: None,
                    size: t.prefill_size,
                    storage_class: t.prefill_class.clone(),
                    copies: vec![CopySpec { copy_nb: 1, vid: t.vid.clone(), fseq: i as u64 + 1, block_id: 0 }],
                });
            }
        }
        for d in &self.drives {
            spec.drives.push(DriveSpec {
                name: d.clone(),
                logical_library: w.logical_library.clone(),
                scheduler_backend: None,
            });
        }
        spec
    }

    /// A fresh in-memory catalogue of the run, its drives configured for `backend_name`.
    pub fn catalogue(&self, w: &Workload, backend_name: &str) -> Result<MemoryCatalogue, E2eError> {
        let (snapshot, files) = tapesched_scenario::catalogue::build(&self.catalogue_spec(w), backend_name)
            .map_err(|e| E2eError::Workload(format!("catalogue: {e}")))?;
        MemoryCatalogue::new(snapshot, files).map_err(|e| E2eError::Workload(format!("catalogue: {}", e.message)))
    }

    /// A fresh simulated library of the run on `clock`, driven by the run's loop (no
    /// auto-advance, no log), its prefilled tapes holding their files.
    pub fn sim_library(&self, dir: &Path, library_id: u32, clock: Arc<SimClock>) -> Result<SimLibrary, E2eError> {
        let lib = SimLibrary::from_dir(dir, library_id, clock)
            .map_err(|e| E2eError::Config(e.to_string()))?
            .with_auto_advance(false)
            .with_log(false);
        for t in &self.tapes {
            if t.prefilled.is_empty() {
                continue;
            }
            let files: Vec<(u64, u32)> = t.prefilled.clone().map(|id| (t.prefill_size, sizes_checksum(id))).collect();
            lib.preload(&t.barcode, &files).map_err(|e| E2eError::Config(e.to_string()))?;
        }
        Ok(lib)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_is_adler32() {
        // adler32 of eight zero bytes: a = 1, b = 8.
        assert_eq!(sizes_checksum(0), (8 << 16) | 1);
    }
}

//! The catalogue: tapes, pools, VOs, storage classes, routes, policies, rules, libraries, disk
//! systems, archive files, the drive register and disk-space reservations.
//!
//! [`CatalogueSnapshot`] is the read side every decision works from; [`CatalogueEdit`] is the
//! write side, validated by [`CatalogueSnapshot::apply`] so every implementation refuses the same
//! edits with the same error kinds. [`memory::MemoryCatalogue`] is the embedded implementation.

pub mod memory;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::bounds::{self, check as check_bound, check_opt as check_bound_opt};
use crate::db::Reservations;
use crate::error::{Error, Result};
use crate::names::{check_name, check_text, MAX_TEXT};
use crate::types::*;

/// Everything the scheduler reads from the catalogue, except archive files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogueSnapshot {
    /// Known disk instances.
    pub disk_instances: BTreeSet<String>,
    /// VOs by name.
    pub vos: BTreeMap<String, VirtualOrganization>,
    /// Physical libraries by name.
    pub physical_libraries: BTreeMap<String, PhysicalLibrary>,
    /// Logical libraries by name.
    pub logical_libraries: BTreeMap<String, LogicalLibrary>,
    /// Pools by name.
    pub tape_pools: BTreeMap<String, TapePool>,
    /// Storage classes by name.
    pub storage_classes: BTreeMap<String, StorageClass>,
    /// Archive routes.
    pub archive_routes: Vec<ArchiveRoute>,
    /// Mount policies by name.
    pub mount_policies: BTreeMap<String, MountPolicy>,
    /// Mount rules, in definition order.
    pub mount_rules: Vec<MountRule>,
    /// Disk systems by name.
    pub disk_systems: BTreeMap<String, DiskSystem>,
    /// Tapes by VID.
    pub tapes: BTreeMap<String, Tape>,
    /// The drive register by drive name.
    pub drives: BTreeMap<String, DriveState>,
    /// Disk-space reservations by (drive, disk system).
    pub reservations: Reservations,
}

/// A change to the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogueEdit {
    /// Changes a VO's quotas.
    SetVo {
        /// VO.
        name: String,
        /// New read quota.
        read_max_drives: Option<u64>,
        /// New write quota.
        write_max_drives: Option<u64>,
    },
    /// Creates or changes a mount policy (creation needs all four values).
    SetMountPolicy {
        /// Policy.
        name: String,
        /// Archive priority.
        archive_priority: Option<u64>,
        /// Archive minimum request age.
        archive_min_request_age: Option<u64>,
        /// Retrieve priority.
        retrieve_priority: Option<u64>,
        /// Retrieve minimum request age.
        retrieve_min_request_age: Option<u64>,
    },
    /// Deletes a mount policy no rule uses.
    DeleteMountPolicy {
        /// Policy.
        name: String,
    },
    /// Enables or disables a logical library.
    SetLogicalLibrary {
        /// Library.
        name: String,
        /// Disabled flag.
        disabled: bool,
    },
    /// Enables or disables a physical library.
    SetPhysicalLibrary {
        /// Library.
        name: String,
        /// Disabled flag.
        disabled: bool,
    },
    /// Adds a tape.
    AddTape(Tape),
    /// A plain edit of tape fields (no workflow).
    EditTape {
        /// Tape.
        vid: String,
        /// New state.
        state: Option<TapeState>,
        /// New state reason.
        state_reason: Option<String>,
        /// New full flag.
        full: Option<bool>,
        /// New data on tape.
        data_on_tape_bytes: Option<u64>,
        /// New last fSeq.
        last_fseq: Option<u64>,
        /// New logical library.
        logical_library: Option<String>,
        /// New pool.
        tape_pool: Option<String>,
    },
    /// Sets a tape's state, optionally only if it is still in `expected`.
    SetTapeState {
        /// Tape.
        vid: String,
        /// New state.
        state: TapeState,
        /// New reason (`None` keeps the old one).
        reason: Option<String>,
        /// Required current state.
        expected: Option<TapeState>,
    },
    /// Changes a disk system's free-space settings.
    SetDiskSystem {
        /// Disk system.
        name: String,
        /// Free space.
        free_space_bytes: Option<u64>,
        /// Target free space.
        target_free_space_bytes: Option<u64>,
        /// Sleep time.
        sleep_time: Option<u64>,
    },
    /// Writes a drive's register entry (the drive must be known).
    SetDrive(DriveState),
    /// Adds (positive) or releases (negative) a drive's reservation on a disk system.
    Reserve {
        /// Drive.
        drive: String,
        /// Disk system.
        disk_system: String,
        /// Bytes to add (or remove when negative).
        delta: i64,
    },
}

impl CatalogueEdit {
    /// Marks tape `vid` full (a tape daemon found no room left on it): nothing else changes.
    pub fn tape_full(vid: &str) -> CatalogueEdit {
        CatalogueEdit::EditTape {
            vid: vid.to_string(),
            state: None,
            state_reason: None,
            full: Some(true),
            data_on_tape_bytes: None,
            last_fseq: None,
            logical_library: None,
            tape_pool: None,
        }
    }
}

/// The fields of a tape copy to record after a successful archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTapeFile {
    /// Archive file id.
    pub archive_file_id: u64,
    /// Disk instance.
    pub disk_instance: String,
    /// Disk file id.
    pub disk_file_id: String,
    /// Size.
    pub size: u64,
    /// Storage class.
    pub storage_class: String,
    /// Copy number written.
    pub copy_nb: u32,
    /// Tape written.
    pub vid: String,
}

fn missing(what: &str, name: &str) -> Error {
    Error::not_found(format!("{what} {name:?} does not exist"))
}

/// Every state but ACTIVE needs a reason: refused with the same message when a tape is added and
/// when a catalogue is loaded.
fn check_state_reason(t: &Tape) -> Result<()> {
    if t.state != TapeState::Active && t.state_reason.as_deref().unwrap_or("").is_empty() {
        return Err(Error::invalid(format!("tape {:?} in state {} needs a state reason", t.vid, t.state)));
    }
    Ok(())
}

fn check_vo_quotas(vo: &VirtualOrganization) -> Result<()> {
    check_bound("read_max_drives", vo.read_max_drives)?;
    check_bound("write_max_drives", vo.write_max_drives)
}

fn check_policy_values(p: &MountPolicy) -> Result<()> {
    check_bound("archive_priority", p.archive_priority)?;
    check_bound("archive_min_request_age", p.archive_min_request_age)?;
    check_bound("retrieve_priority", p.retrieve_priority)?;
    check_bound("retrieve_min_request_age", p.retrieve_min_request_age)
}

fn check_disk_system_values(d: &DiskSystem) -> Result<()> {
    check_bound("free_space_bytes", d.free_space_bytes)?;
    check_bound("target_free_space_bytes", d.target_free_space_bytes)?;
    check_bound("sleep_time", d.sleep_time)
}

/// Checks the integers of an archive file of the catalogue (id, size, fSeqs, block ids) against
/// [`bounds::MAX`]; every catalogue implementation calls it before storing a file.
pub fn check_archive_file(f: &ArchiveFile) -> Result<()> {
    check_bound("archive_file_id", f.archive_file_id)?;
    check_bound(&format!("archive file {} size", f.archive_file_id), f.size)?;
    for c in &f.copies {
        check_bound(&format!("archive file {} copy {} fseq", f.archive_file_id, c.copy_nb), c.fseq)?;
        check_bound(&format!("archive file {} copy {} block_id", f.archive_file_id, c.copy_nb), c.block_id)?;
    }
    Ok(())
}

/// The next archive file id after `id` is handed out (ids go up to [`bounds::MAX`]); `None` when
/// `id` is the last one.
pub fn after_archive_file_id(id: u64) -> Option<u64> {
    id.checked_add(1).filter(|n| *n <= bounds::MAX)
}

/// The error of an archive file id requested when every id up to [`bounds::MAX`] was handed out.
pub fn archive_file_ids_exhausted() -> Error {
    Error::invalid(format!(
        "archive_file_id: no id is left to assign (the largest, 2^63-1 = {}, was handed out)",
        bounds::MAX
    ))
}

impl CatalogueSnapshot {
    /// The VO of a pool.
    pub fn pool_vo(&self, pool: &str) -> Option<&VirtualOrganization> {
        self.tape_pools.get(pool).and_then(|p| self.vos.get(&p.vo))
    }

    /// The default repack VO, if one is flagged.
    pub fn repack_vo(&self) -> Option<&VirtualOrganization> {
        self.vos.values().find(|v| v.is_repack_vo)
    }

    /// Checks the references of a whole catalogue (used when loading one).
    pub fn validate(&self) -> Result<()> {
        for i in &self.disk_instances {
            check_name("disk instance", i)?;
        }
        let mut repack_vos = 0;
        for vo in self.vos.values() {
            check_name("virtual organization", &vo.name)?;
            check_vo_quotas(vo)?;
            repack_vos += vo.is_repack_vo as u32;
        }
        if repack_vos > 1 {
            return Err(Error::invalid("more than one virtual organization is flagged is_repack_vo"));
        }
        for l in self.physical_libraries.values() {
            check_name("physical library", &l.name)?;
        }
        for l in self.logical_libraries.values() {
            check_name("logical library", &l.name)?;
            if let Some(p) = &l.physical_library {
                if !self.physical_libraries.contains_key(p) {
                    return Err(missing("physical library", p));
                }
            }
        }
        for p in self.tape_pools.values() {
            check_name("tape pool", &p.name)?;
            if !self.vos.contains_key(&p.vo) {
                return Err(missing("virtual organization", &p.vo));
            }
        }
        for sc in self.storage_classes.values() {
            check_name("storage class", &sc.name)?;
            if !self.vos.contains_key(&sc.vo) {
                return Err(missing("virtual organization", &sc.vo));
            }
            if sc.nb_copies == 0 {
                return Err(Error::invalid(format!("storage class {:?} has nb_copies 0", sc.name)));
            }
        }
        let mut seen = BTreeSet::new();
        for r in &self.archive_routes {
            if !self.storage_classes.contains_key(&r.storage_class) {
                return Err(missing("storage class", &r.storage_class));
            }
            if !self.tape_pools.contains_key(&r.tape_pool) {
                return Err(missing("tape pool", &r.tape_pool));
            }
            if !seen.insert((&r.storage_class, r.copy_nb, r.route_type as u8)) {
                return Err(Error::conflict(format!(
                    "storage class {:?} has two routes for copy {}",
                    r.storage_class, r.copy_nb
                )));
            }
        }
        for p in self.mount_policies.values() {
            check_name("mount policy", &p.name)?;
            check_policy_values(p)?;
        }
        for r in &self.mount_rules {
            if !self.mount_policies.contains_key(&r.mount_policy) {
                return Err(missing("mount policy", &r.mount_policy));
            }
            if r.kind == MountRuleKind::Activity {
                regex::Regex::new(&r.name).map_err(|e| {
                    Error::invalid(format!("activity rule {:?} is not a regular expression: {e}", r.name))
                })?;
            }
        }
        for d in self.disk_systems.values() {
            check_name("disk system", &d.name)?;
            check_disk_system_values(d)?;
            regex::Regex::new(&d.file_regexp).map_err(|e| {
                Error::invalid(format!("disk system {:?} file_regexp is not a regular expression: {e}", d.name))
            })?;
        }
        for t in self.tapes.values() {
            self.check_tape(t)?;
            check_state_reason(t)?;
        }
        for ((drive, ds), bytes) in &self.reservations {
            check_bound(&format!("reservation of drive {drive:?} on disk system {ds:?}"), *bytes)?;
        }
        for d in self.drives.values() {
            check_name("drive", &d.name)?;
            if !self.logical_libraries.contains_key(&d.logical_library) {
                return Err(missing("logical library", &d.logical_library));
            }
        }
        Ok(())
    }

    fn check_tape(&self, t: &Tape) -> Result<()> {
        check_name("vid", &t.vid)?;
        if !self.tape_pools.contains_key(&t.tape_pool) {
            return Err(missing("tape pool", &t.tape_pool));
        }
        if !self.logical_libraries.contains_key(&t.logical_library) {
            return Err(missing("logical library", &t.logical_library));
        }
        if let Some(r) = &t.state_reason {
            check_text("state reason", r, MAX_TEXT)?;
        }
        check_bound("capacity_bytes", t.capacity_bytes)?;
        check_bound("data_on_tape_bytes", t.data_on_tape_bytes)?;
        check_bound("last_fseq", t.last_fseq)
    }

    /// Records a copy written on tape `file.vid`: its fSeq is the tape's next, its block id
    /// follows the data on tape, the tape's data grows by the file's size (shown as
    /// [`bounds::MAX`] when it would pass it) and the tape is full once it reaches its capacity or
    /// its last fSeq, [`bounds::MAX`]; a tape at that fSeq takes no more files (`invalid_argument`,
    /// should a writer still hold a mount on it). Every
    /// catalogue implementation records tape files through this. On an error nothing has changed.
    pub fn write_tape_file(&mut self, file: &NewTapeFile, block_size: u64) -> Result<TapeFile> {
        let tape = self.tapes.get_mut(&file.vid).ok_or_else(|| Error::not_found(format!("tape {:?}", file.vid)))?;
        let fseq = tape.last_fseq.checked_add(1).filter(|f| *f <= bounds::MAX).ok_or_else(|| {
            Error::invalid(format!(
                "tape {:?}: last_fseq {} is the largest fSeq (2^63-1); no file can be written after it",
                file.vid, tape.last_fseq
            ))
        })?;
        let written = TapeFile {
            copy_nb: file.copy_nb,
            vid: file.vid.clone(),
            fseq,
            block_id: tape.data_on_tape_bytes / block_size.max(1),
        };
        tape.last_fseq = fseq;
        tape.data_on_tape_bytes = bounds::total([tape.data_on_tape_bytes, file.size]);
        // Full at its capacity, or with no fSeq left.
        if (tape.capacity_bytes > 0 && tape.data_on_tape_bytes >= tape.capacity_bytes) || fseq == bounds::MAX {
            tape.full = true;
        }
        Ok(written)
    }

    /// Validates and applies one edit. Every check comes before the first change: on an error
    /// the snapshot is left as it was (the in-memory catalogue edits its snapshot in place on
    /// that promise).
    pub fn apply(&mut self, edit: CatalogueEdit) -> Result<()> {
        match edit {
            CatalogueEdit::SetVo { name, read_max_drives, write_max_drives } => {
                check_name("virtual organization", &name)?;
                check_bound_opt("read_max_drives", read_max_drives)?;
                check_bound_opt("write_max_drives", write_max_drives)?;
                let vo = self.vos.get_mut(&name).ok_or_else(|| missing("virtual organization", &name))?;
                if let Some(r) = read_max_drives {
                    vo.read_max_drives = r;
                }
                if let Some(w) = write_max_drives {
                    vo.write_max_drives = w;
                }
            }
            CatalogueEdit::SetMountPolicy {
                name,
                archive_priority,
                archive_min_request_age,
                retrieve_priority,
                retrieve_min_request_age,
            } => {
                check_name("mount policy", &name)?;
                check_bound_opt("archive_priority", archive_priority)?;
                check_bound_opt("archive_min_request_age", archive_min_request_age)?;
                check_bound_opt("retrieve_priority", retrieve_priority)?;
                check_bound_opt("retrieve_min_request_age", retrieve_min_request_age)?;
                match self.mount_policies.get_mut(&name) {
                    Some(p) => {
                        if let Some(v) = archive_priority {
                            p.archive_priority = v;
                        }
                        if let Some(v) = archive_min_request_age {
                            p.archive_min_request_age = v;
                        }
                        if let Some(v) = retrieve_priority {
                            p.retrieve_priority = v;
                        }
                        if let Some(v) = retrieve_min_request_age {
                            p.retrieve_min_request_age = v;
                        }
                    }
                    None => {
                        let (Some(ap), Some(aa), Some(rp), Some(ra)) =
                            (archive_priority, archive_min_request_age, retrieve_priority, retrieve_min_request_age)
                        else {
                            return Err(Error::invalid(format!(
                                "mount policy {name:?} does not exist; creating it needs archive_priority, \
                                 archive_min_request_age, retrieve_priority and retrieve_min_request_age"
                            )));
                        };
                        self.mount_policies.insert(
                            name.clone(),
                            MountPolicy {
                                name,
                                archive_priority: ap,
                                archive_min_request_age: aa,
                                retrieve_priority: rp,
                                retrieve_min_request_age: ra,
                            },
                        );
                    }
                }
            }
            CatalogueEdit::DeleteMountPolicy { name } => {
                check_name("mount policy", &name)?;
                if !self.mount_policies.contains_key(&name) {
                    return Err(missing("mount policy", &name));
                }
                if let Some(rule) = self.mount_rules.iter().find(|r| r.mount_policy == name) {
                    return Err(Error::conflict(format!(
                        "mount policy {name:?} is used by the {:?} mount rule {:?}",
                        rule.kind, rule.name
                    )));
                }
                self.mount_policies.remove(&name);
            }
            CatalogueEdit::SetLogicalLibrary { name, disabled } => {
                check_name("logical library", &name)?;
                self.logical_libraries.get_mut(&name).ok_or_else(|| missing("logical library", &name))?.disabled =
                    disabled;
            }
            CatalogueEdit::SetPhysicalLibrary { name, disabled } => {
                check_name("physical library", &name)?;
                self.physical_libraries.get_mut(&name).ok_or_else(|| missing("physical library", &name))?.disabled =
                    disabled;
            }
            CatalogueEdit::AddTape(tape) => {
                self.check_tape(&tape)?;
                if self.tapes.contains_key(&tape.vid) {
                    return Err(Error::conflict(format!("tape {:?} already exists", tape.vid)));
                }
                check_state_reason(&tape)?;
                self.tapes.insert(tape.vid.clone(), tape);
            }
            CatalogueEdit::EditTape {
                vid,
                state,
                state_reason,
                full,
                data_on_tape_bytes,
                last_fseq,
                logical_library,
                tape_pool,
            } => {
                check_name("vid", &vid)?;
                let mut tape = self.tapes.get(&vid).cloned().ok_or_else(|| missing("tape", &vid))?;
                if let Some(s) = state {
                    tape.state = s;
                }
                if let Some(r) = state_reason {
                    tape.state_reason = Some(r);
                }
                if let Some(f) = full {
                    tape.full = f;
                }
                if let Some(d) = data_on_tape_bytes {
                    tape.data_on_tape_bytes = d;
                }
                if let Some(l) = last_fseq {
                    tape.last_fseq = l;
                }
                if let Some(l) = logical_library {
                    check_name("logical library", &l)?;
                    tape.logical_library = l;
                }
                if let Some(p) = tape_pool {
                    check_name("tape pool", &p)?;
                    tape.tape_pool = p;
                }
                self.check_tape(&tape)?;
                self.tapes.insert(vid, tape);
            }
            CatalogueEdit::SetTapeState { vid, state, reason, expected } => {
                check_name("vid", &vid)?;
                if let Some(r) = &reason {
                    check_text("reason", r, MAX_TEXT)?;
                }
                let tape = self.tapes.get_mut(&vid).ok_or_else(|| missing("tape", &vid))?;
                if let Some(e) = expected {
                    if tape.state != e {
                        return Err(Error::conflict(format!("tape {vid:?} is {} and no longer {e}", tape.state)));
                    }
                }
                let new_reason = reason.filter(|r| !r.is_empty()).or_else(|| tape.state_reason.clone());
                if state != TapeState::Active && new_reason.as_deref().unwrap_or("").is_empty() {
                    return Err(Error::invalid(format!("tape {vid:?}: state {state} needs a reason")));
                }
                tape.state = state;
                tape.state_reason = new_reason;
            }
            CatalogueEdit::SetDiskSystem { name, free_space_bytes, target_free_space_bytes, sleep_time } => {
                check_name("disk system", &name)?;
                check_bound_opt("free_space_bytes", free_space_bytes)?;
                check_bound_opt("target_free_space_bytes", target_free_space_bytes)?;
                check_bound_opt("sleep_time", sleep_time)?;
                let ds = self.disk_systems.get_mut(&name).ok_or_else(|| missing("disk system", &name))?;
                if let Some(v) = free_space_bytes {
                    ds.free_space_bytes = v;
                }
                if let Some(v) = target_free_space_bytes {
                    ds.target_free_space_bytes = v;
                }
                if let Some(v) = sleep_time {
                    ds.sleep_time = v;
                }
            }
            CatalogueEdit::SetDrive(state) => {
                check_name("drive", &state.name)?;
                for v in [&state.vid, &state.next_vid].into_iter().flatten() {
                    check_name("vid", v)?;
                }
                for p in [&state.tape_pool, &state.next_tape_pool].into_iter().flatten() {
                    check_name("tape pool", p)?;
                }
                if let Some(b) = &state.scheduler_backend {
                    check_name("scheduler backend", b)?;
                }
                if !self.drives.contains_key(&state.name) {
                    return Err(missing("drive", &state.name));
                }
                self.drives.insert(state.name.clone(), state);
            }
            CatalogueEdit::Reserve { drive, disk_system, delta } => {
                // A reservation is a total: kept within [0, 2^63-1], never wrapped.
                let entry = self.reservations.entry((drive.clone(), disk_system.clone())).or_insert(0);
                *entry = (*entry as i128 + delta as i128).clamp(0, bounds::MAX as i128) as u64;
                if *entry == 0 {
                    self.reservations.remove(&(drive, disk_system));
                }
            }
        }
        Ok(())
    }
}

/// The catalogue interface.
#[async_trait]
pub trait Catalogue: Send + Sync {
    /// The current state, without archive files.
    async fn snapshot(&self) -> Result<Arc<CatalogueSnapshot>>;
    /// Validates and applies an edit.
    async fn apply(&self, edit: CatalogueEdit) -> Result<()>;
    /// An archive file by id.
    async fn archive_file(&self, archive_file_id: u64) -> Result<Option<ArchiveFile>>;
    /// Reserves an archive file id: the requested one (a `conflict` if a file has it) or the next
    /// free one. Ids handed out are never handed out again.
    async fn reserve_archive_file_id(&self, requested: Option<u64>) -> Result<u64>;
    /// A fresh retrieve request id.
    async fn next_request_id(&self) -> Result<u64>;
    /// Records a copy written on tape: next fSeq, block id, tape fill, the file's copy list.
    async fn record_tape_file(&self, file: NewTapeFile) -> Result<TapeFile>;
    /// Records copies written on tape, in order, as many [`Catalogue::record_tape_file`] calls
    /// would one after the other; answers their copies in the same order. An implementation may
    /// write them at once (one snapshot change, one transaction); on an error the files before
    /// the failing one may or may not be recorded, as with the calls one by one.
    async fn record_tape_files(&self, files: Vec<NewTapeFile>) -> Result<Vec<TapeFile>> {
        let mut out = Vec::with_capacity(files.len());
        for file in files {
            out.push(self.record_tape_file(file).await?);
        }
        Ok(out)
    }
    /// `n` fresh retrieve request ids (repack expansion takes one per file, a pass at a time).
    async fn next_request_ids(&self, n: u64) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(n.min(1 << 16) as usize);
        for _ in 0..n {
            out.push(self.next_request_id().await?);
        }
        Ok(out)
    }
    /// Up to `limit` files with a copy on `vid` at an fSeq above `after_fseq`, by that fSeq,
    /// each with all its copies (repack expansion reads a tape this way, a pass at a time).
    async fn tape_files(&self, vid: &str, after_fseq: u64, limit: u64) -> Result<Vec<ArchiveFile>>;
    /// The distinct (storage class, copy number) pairs of the copies on `vid`, sorted (repack
    /// checks its routes against them before queueing anything).
    async fn tape_copy_classes(&self, vid: &str) -> Result<Vec<(String, u32)>>;
}

//! The mount decision: one pure function from (mount info, catalogue snapshot, drive, now) to the
//! chosen mount, with an explanation of every candidate considered and every one rejected.
//!
//! The steps follow CTA's `getNextMount` (library gate, retrieve eligibility, priorities re-read
//! from the catalogue, existing mounts from the drive register, thresholds, VO quotas, sleep,
//! sort, tape choice) with the corrections listed in `compat/README.md`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::catalogue::CatalogueSnapshot;
use crate::clock::Timestamp;
use crate::db::{MountInfo, MountSpec, PotentialMount};
use crate::types::*;

/// Scheduler settings that shape decisions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerConfig {
    /// Files that warrant a mount on their own.
    pub min_files_to_warrant_mount: u64,
    /// Bytes that warrant a mount on their own.
    pub min_bytes_to_warrant_mount: u64,
    /// This scheduler's backend name; drives configured with another are invisible.
    pub backend_name: String,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            min_files_to_warrant_mount: 5,
            min_bytes_to_warrant_mount: 2_000_000,
            backend_name: "default".into(),
        }
    }
}

/// Why a potential mount was filtered out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The drive's logical library (or its physical library) is disabled or unknown.
    LibraryDisabled,
    /// The retrieve VID is not in the catalogue.
    TapeNotFound,
    /// The retrieve VID is in another logical library.
    TapeInOtherLibrary,
    /// The retrieve VID's state is neither ACTIVE nor REPACKING.
    TapeNotMountable,
    /// The candidate's pool is not in the catalogue (its VO cannot be resolved).
    UnknownTapePool,
    /// Repack work without a repack VO.
    NoRepackVo,
    /// Neither bytes, files nor age warrant a mount.
    CriteriaNotMet,
    /// The VO already has as many mounts of this kind as allowed.
    VoQuotaReached,
    /// The retrieve queue sleeps for a full disk system.
    Sleeping,
}

impl RejectReason {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::LibraryDisabled => "library_disabled",
            RejectReason::TapeNotFound => "tape_not_found",
            RejectReason::TapeInOtherLibrary => "tape_in_other_library",
            RejectReason::TapeNotMountable => "tape_not_mountable",
            RejectReason::UnknownTapePool => "unknown_tape_pool",
            RejectReason::NoRepackVo => "no_repack_vo",
            RejectReason::CriteriaNotMet => "criteria_not_met",
            RejectReason::VoQuotaReached => "vo_quota_reached",
            RejectReason::Sleeping => "sleeping",
        }
    }
}

/// Why a candidate that passed every filter was passed over when choosing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// No ACTIVE, non-full tape of the pool in the drive's library.
    NoWritableTape,
    /// The tape (or every writable tape of the pool) is used by another drive.
    TapeInUse,
}

impl SkipReason {
    /// The contract's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::NoWritableTape => "no_writable_tape",
            SkipReason::TapeInUse => "tape_in_use",
        }
    }
}

/// A potential mount that passed every filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Candidate {
    /// Mount type.
    pub mount_type: MountType,
    /// Pool (for retrieves, the tape's pool).
    pub tape_pool: String,
    /// VID (retrieve), or the tape chosen for a selected archive candidate.
    pub vid: Option<String>,
    /// Priority after re-reading the catalogue.
    pub priority: u64,
    /// Minimum request age after re-reading the catalogue.
    pub min_request_age: u64,
    /// Files queued.
    pub files_queued: u64,
    /// Bytes queued.
    pub bytes_queued: u64,
    /// Oldest queued job's creation time.
    pub oldest_job_start: Timestamp,
    /// The VO charged.
    pub vo: String,
    /// The one a real decision returns.
    pub selected: bool,
    /// Why it was passed over.
    pub skip_reason: Option<SkipReason>,
}

/// A potential mount that was filtered out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// Mount type.
    pub mount_type: MountType,
    /// Pool, when known.
    pub tape_pool: Option<String>,
    /// VID (retrieves).
    pub vid: Option<String>,
    /// Why.
    pub reason: RejectReason,
}

/// The decision with its explanation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// The mount to create, if any.
    pub chosen: Option<MountSpec>,
    /// Candidates in decision order.
    pub candidates: Vec<Candidate>,
    /// Filtered-out potential mounts, in mount-info order.
    pub rejected: Vec<Rejected>,
}

/// A current or next mount of another drive, as counted for the decision.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ExistingMount {
    mount_type: MountType,
    tape_pool: String,
    vid: Option<String>,
}

/// Existing mounts visible to `drive`: other drives of this scheduler backend, current mounts of
/// drives in an active status and next mounts of any drive.
fn existing_mounts(cat: &CatalogueSnapshot, drive: &str, config: &SchedulerConfig) -> Vec<ExistingMount> {
    let mut out = Vec::new();
    for d in cat.drives.values() {
        if d.name == drive || d.scheduler_backend.as_deref() != Some(config.backend_name.as_str()) {
            continue;
        }
        if d.status.has_current_mount() {
            if let (Some(t), Some(p)) = (d.mount_type, d.tape_pool.as_ref().filter(|p| !p.is_empty())) {
                out.push(ExistingMount { mount_type: t, tape_pool: p.clone(), vid: d.vid.clone() });
            }
        }
        if let (Some(t), Some(p)) = (d.next_mount_type, d.next_tape_pool.as_ref().filter(|p| !p.is_empty())) {
            out.push(ExistingMount { mount_type: t, tape_pool: p.clone(), vid: d.next_vid.clone() });
        }
    }
    out
}

/// True when the drive's library may schedule: it exists, is enabled, and so is its physical
/// library if it has one.
pub fn library_enabled(cat: &CatalogueSnapshot, library: &str) -> bool {
    match cat.logical_libraries.get(library) {
        None => false,
        Some(l) if l.disabled => false,
        Some(l) => match &l.physical_library {
            None => true,
            Some(p) => cat.physical_libraries.get(p).is_some_and(|p| !p.disabled),
        },
    }
}

/// The catalogue's current priority and minimum age for a queue's policies (archive or retrieve
/// values); the queue's own values when none of its policies exists any more.
pub fn refreshed_policy(cat: &CatalogueSnapshot, pm: &PotentialMount) -> (u64, u64) {
    let archive = pm.mount_type.is_archive();
    let mut live = pm.policy_counts.keys().filter_map(|n| cat.mount_policies.get(n)).map(|p| {
        if archive {
            (p.archive_priority, p.archive_min_request_age)
        } else {
            (p.retrieve_priority, p.retrieve_min_request_age)
        }
    });
    match live.next() {
        None => (pm.priority, pm.min_request_age),
        Some(first) => live.fold(first, |(prio, age), (p, a)| (prio.max(p), age.min(a))),
    }
}

/// Decision order: most urgent first.
fn urgency(a: &Candidate, b: &Candidate) -> Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| {
            let au = a.mount_type == MountType::ArchiveForUser;
            let bu = b.mount_type == MountType::ArchiveForUser;
            bu.cmp(&au)
        })
        .then_with(|| a.oldest_job_start.cmp(&b.oldest_job_start))
        .then_with(|| a.vid.as_deref().unwrap_or("").cmp(b.vid.as_deref().unwrap_or("")))
        .then_with(|| a.tape_pool.as_bytes().cmp(b.tape_pool.as_bytes()))
        .then_with(|| a.mount_type.cmp(&b.mount_type))
}

/// Decides what `drive` should mount now.
pub fn decide(
    info: &MountInfo,
    cat: &CatalogueSnapshot,
    drive: &str,
    now: Timestamp,
    config: &SchedulerConfig,
) -> Decision {
    let mut decision = Decision::default();
    let library = cat.drives.get(drive).map(|d| d.logical_library.clone()).unwrap_or_default();
    let reject = |d: &mut Decision, pm: &PotentialMount, pool: Option<String>, reason| {
        d.rejected.push(Rejected {
            mount_type: pm.mount_type,
            tape_pool: pool.or_else(|| pm.tape_pool.clone()),
            vid: pm.vid.clone(),
            reason,
        })
    };

    // Step 0: library gate.
    if !library_enabled(cat, &library) {
        for pm in &info.potential_mounts {
            let pool = pm.vid.as_ref().and_then(|v| cat.tapes.get(v)).map(|t| t.tape_pool.clone());
            reject(&mut decision, pm, pool, RejectReason::LibraryDisabled);
        }
        return decision;
    }

    // Existing and next mounts of other drives.
    let repacking: BTreeSet<&str> =
        cat.tapes.values().filter(|t| t.state == TapeState::Repacking).map(|t| t.vid.as_str()).collect();
    let repack_vo = cat.repack_vo();
    let existing = existing_mounts(cat, drive, config);
    let mut per_pool: BTreeMap<(&str, MountType), u64> = BTreeMap::new();
    let mut per_vo: BTreeMap<(&str, BasicMountType), u64> = BTreeMap::new();
    let mut in_use: BTreeSet<&str> = BTreeSet::new();
    for m in &existing {
        let is_repack = m.mount_type == MountType::ArchiveForRepack
            || (m.mount_type == MountType::Retrieve && m.vid.as_deref().is_some_and(|v| repacking.contains(v)));
        let vo = if is_repack {
            match repack_vo {
                Some(v) => Some(v.name.as_str()),
                None => continue,
            }
        } else {
            cat.pool_vo(&m.tape_pool).map(|v| v.name.as_str())
        };
        *per_pool.entry((m.tape_pool.as_str(), m.mount_type)).or_default() += 1;
        if let Some(vo) = vo {
            *per_vo.entry((vo, m.mount_type.basic())).or_default() += 1;
        }
        if let Some(v) = m.vid.as_deref().filter(|v| !v.is_empty()) {
            in_use.insert(v);
        }
    }

    // Steps a-h: eligibility, VO, thresholds, quota, sleep.
    for pm in &info.potential_mounts {
        let (pool, is_repack) = match pm.mount_type {
            MountType::Retrieve => {
                let Some(tape) = cat.tapes.get(pm.vid.as_deref().unwrap_or_default()) else {
                    reject(&mut decision, pm, None, RejectReason::TapeNotFound);
                    continue;
                };
                let pool = Some(tape.tape_pool.clone());
                if tape.logical_library != library {
                    reject(&mut decision, pm, pool, RejectReason::TapeInOtherLibrary);
                    continue;
                }
                if !matches!(tape.state, TapeState::Active | TapeState::Repacking) {
                    reject(&mut decision, pm, pool, RejectReason::TapeNotMountable);
                    continue;
                }
                (tape.tape_pool.clone(), tape.state == TapeState::Repacking)
            }
            MountType::ArchiveForUser => (pm.tape_pool.clone().unwrap_or_default(), false),
            MountType::ArchiveForRepack => (pm.tape_pool.clone().unwrap_or_default(), true),
            MountType::Label => continue,
        };
        let vo = if is_repack {
            match cat.repack_vo() {
                Some(v) => v,
                None => {
                    reject(&mut decision, pm, Some(pool), RejectReason::NoRepackVo);
                    continue;
                }
            }
        } else {
            match cat.pool_vo(&pool) {
                Some(v) => v,
                None => {
                    reject(&mut decision, pm, Some(pool), RejectReason::UnknownTapePool);
                    continue;
                }
            }
        };
        let (priority, min_age) = refreshed_policy(cat, pm);
        let existing = if pm.mount_type.is_archive() {
            per_pool.get(&(pool.as_str(), pm.mount_type)).copied().unwrap_or(0)
        } else {
            0
        };
        let factor = if pm.mount_type == MountType::ArchiveForRepack { 2 } else { 1 };
        let min_bytes = config.min_bytes_to_warrant_mount.saturating_mul(factor);
        let min_files = config.min_files_to_warrant_mount.saturating_mul(factor);
        let by_bytes = pm.bytes_queued / (1 + existing) >= min_bytes;
        let by_files = pm.files_queued / (1 + existing) >= min_files;
        let by_age = existing == 0 && now - pm.oldest_job_start > min_age as i64;
        if !(by_bytes || by_files || by_age) {
            reject(&mut decision, pm, Some(pool), RejectReason::CriteriaNotMet);
            continue;
        }
        let max_drives = if pm.mount_type == MountType::Retrieve { vo.read_max_drives } else { vo.write_max_drives };
        if per_vo.get(&(vo.name.as_str(), pm.mount_type.basic())).copied().unwrap_or(0) >= max_drives {
            reject(&mut decision, pm, Some(pool), RejectReason::VoQuotaReached);
            continue;
        }
        if pm.sleep.as_ref().is_some_and(|s| now < s.until) {
            reject(&mut decision, pm, Some(pool), RejectReason::Sleeping);
            continue;
        }
        decision.candidates.push(Candidate {
            mount_type: pm.mount_type,
            tape_pool: pool,
            vid: pm.vid.clone(),
            priority,
            min_request_age: min_age,
            files_queued: pm.files_queued,
            bytes_queued: pm.bytes_queued,
            oldest_job_start: pm.oldest_job_start,
            vo: vo.name.clone(),
            selected: false,
            skip_reason: None,
        });
    }

    // Step i: sort. Steps j-k: tapes for writing, most data first, not in use.
    decision.candidates.sort_by(urgency);
    let mut writable: Vec<&Tape> = cat
        .tapes
        .values()
        .filter(|t| t.state == TapeState::Active && !t.full && t.logical_library == library)
        .collect();
    writable.sort_by(|a, b| b.data_on_tape_bytes.cmp(&a.data_on_tape_bytes).then_with(|| a.vid.cmp(&b.vid)));

    // Step 6: choose.
    for c in decision.candidates.iter_mut() {
        if c.mount_type.is_archive() {
            let mut of_pool = writable.iter().filter(|t| t.tape_pool == c.tape_pool).peekable();
            if of_pool.peek().is_none() {
                c.skip_reason = Some(SkipReason::NoWritableTape);
                continue;
            }
            match of_pool.find(|t| !in_use.contains(t.vid.as_str())) {
                Some(tape) => {
                    c.selected = true;
                    c.vid = Some(tape.vid.clone());
                    decision.chosen = Some(MountSpec {
                        mount_type: c.mount_type,
                        vid: tape.vid.clone(),
                        tape_pool: c.tape_pool.clone(),
                        vo: c.vo.clone(),
                        drive: drive.to_string(),
                        logical_library: library.clone(),
                    });
                    break;
                }
                None => c.skip_reason = Some(SkipReason::TapeInUse),
            }
        } else {
            let vid = c.vid.clone().unwrap_or_default();
            if in_use.contains(vid.as_str()) {
                c.skip_reason = Some(SkipReason::TapeInUse);
                continue;
            }
            c.selected = true;
            decision.chosen = Some(MountSpec {
                mount_type: c.mount_type,
                vid,
                tape_pool: c.tape_pool.clone(),
                vo: c.vo.clone(),
                drive: drive.to_string(),
                logical_library: library.clone(),
            });
            break;
        }
    }
    decision
}

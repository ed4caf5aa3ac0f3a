//! The mount decision: pure functions from (mount info, catalogue snapshot, drive, now) to the
//! chosen mount: [`decide`] with an explanation of every candidate considered and every one
//! rejected, [`choose`] (what `next_mount` runs) with the same filters and tape choice but no
//! explanation to build.
//!
//! The steps follow CTA's `getNextMount` (library gate, retrieve eligibility, priorities re-read
//! from the catalogue, existing mounts from the drive register, thresholds, VO quotas, sleep,
//! sort, tape choice) with the corrections listed in `compat/README.md`.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

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
    /// Files one repack expansion pass reads from the catalogue (and queues) per request.
    pub repack_files_per_pass: u64,
    /// Expansion passes one `expand_repacks` call runs per request (pipelined: the next pass is
    /// read while the current one is written).
    pub repack_passes_per_call: u64,
    /// Repack requests expanded at once (Pending ones are promoted up to this many).
    pub repack_max_to_expand: u64,
    /// Base URL of the repack buffer when a repack names none.
    pub repack_buffer_url: String,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            min_files_to_warrant_mount: 5,
            min_bytes_to_warrant_mount: 2_000_000,
            backend_name: "default".into(),
            repack_files_per_pass: 500,
            repack_passes_per_call: 1,
            repack_max_to_expand: 2,
            repack_buffer_url: "file:///var/tmp/tapesched-repack".into(),
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ExistingMount<'a> {
    mount_type: MountType,
    tape_pool: &'a str,
    vid: Option<&'a str>,
}

/// Existing mounts visible to `drive`: other drives of this scheduler backend, current mounts of
/// drives in an active status and next mounts of any drive.
fn existing_mounts<'a>(cat: &'a CatalogueSnapshot, drive: &str, config: &SchedulerConfig) -> Vec<ExistingMount<'a>> {
    let mut out = Vec::new();
    for d in cat.drives.values() {
        if d.name == drive || d.scheduler_backend.as_deref() != Some(config.backend_name.as_str()) {
            continue;
        }
        if d.status.has_current_mount() {
            if let (Some(t), Some(p)) = (d.mount_type, d.tape_pool.as_ref().filter(|p| !p.is_empty())) {
                out.push(ExistingMount { mount_type: t, tape_pool: p, vid: d.vid.as_deref() });
            }
        }
        if let (Some(t), Some(p)) = (d.next_mount_type, d.next_tape_pool.as_ref().filter(|p| !p.is_empty())) {
            out.push(ExistingMount { mount_type: t, tape_pool: p, vid: d.next_vid.as_deref() });
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

/// A candidate while deciding: it borrows its names from the mount info and the catalogue, so
/// that a decision that needs only its choice ([`choose`]) copies none of them.
#[derive(Debug, Clone, Copy)]
struct Cand<'a> {
    mount_type: MountType,
    tape_pool: &'a str,
    vid: Option<&'a str>,
    priority: u64,
    min_request_age: u64,
    files_queued: u64,
    bytes_queued: u64,
    oldest_job_start: Timestamp,
    vo: &'a str,
}

/// Decision order: most urgent first. A total order on distinct queues (the last keys are the
/// queue's own), so sorting and picking the most urgent one by one visit candidates alike.
fn urgency(a: &Cand, b: &Cand) -> Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| {
            let au = a.mount_type == MountType::ArchiveForUser;
            let bu = b.mount_type == MountType::ArchiveForUser;
            bu.cmp(&au)
        })
        .then_with(|| a.oldest_job_start.cmp(&b.oldest_job_start))
        .then_with(|| a.vid.unwrap_or("").cmp(b.vid.unwrap_or("")))
        .then_with(|| a.tape_pool.as_bytes().cmp(b.tape_pool.as_bytes()))
        .then_with(|| a.mount_type.cmp(&b.mount_type))
}

/// What the filters leave: the candidates (in mount-info order) and what choosing needs.
struct Evaluation<'a> {
    library: &'a str,
    candidates: Vec<Cand<'a>>,
    in_use: BTreeSet<&'a str>,
}

/// Steps 0 and a-h: the library gate, then eligibility, VO, thresholds, quota and sleep of every
/// potential mount. Rejections are recorded when `rejected` is given. `None`: the library may
/// not schedule.
fn evaluate<'a>(
    info: &'a MountInfo,
    cat: &'a CatalogueSnapshot,
    drive: &str,
    now: Timestamp,
    config: &SchedulerConfig,
    mut rejected: Option<&mut Vec<Rejected>>,
) -> Option<Evaluation<'a>> {
    let library = cat.drives.get(drive).map(|d| d.logical_library.as_str()).unwrap_or_default();
    let mut reject = |pm: &PotentialMount, pool: Option<&str>, reason| {
        if let Some(out) = rejected.as_deref_mut() {
            out.push(Rejected {
                mount_type: pm.mount_type,
                tape_pool: pool.map(str::to_string).or_else(|| pm.tape_pool.clone()),
                vid: pm.vid.clone(),
                reason,
            })
        }
    };

    // Step 0: library gate.
    if !library_enabled(cat, library) {
        for pm in &info.potential_mounts {
            let pool = pm.vid.as_ref().and_then(|v| cat.tapes.get(v)).map(|t| t.tape_pool.as_str());
            reject(pm, pool, RejectReason::LibraryDisabled);
        }
        return None;
    }

    // Existing and next mounts of other drives.
    let repacking: BTreeSet<&str> =
        cat.tapes.values().filter(|t| t.state == TapeState::Repacking).map(|t| t.vid.as_str()).collect();
    let repack_vo = cat.repack_vo();
    let mut per_pool: BTreeMap<(&str, MountType), u64> = BTreeMap::new();
    let mut per_vo: BTreeMap<(&str, BasicMountType), u64> = BTreeMap::new();
    let mut in_use: BTreeSet<&str> = BTreeSet::new();
    for m in existing_mounts(cat, drive, config) {
        let is_repack = m.mount_type == MountType::ArchiveForRepack
            || (m.mount_type == MountType::Retrieve && m.vid.is_some_and(|v| repacking.contains(v)));
        let vo = if is_repack {
            match repack_vo {
                Some(v) => Some(v.name.as_str()),
                None => continue,
            }
        } else {
            cat.pool_vo(m.tape_pool).map(|v| v.name.as_str())
        };
        *per_pool.entry((m.tape_pool, m.mount_type)).or_default() += 1;
        if let Some(vo) = vo {
            *per_vo.entry((vo, m.mount_type.basic())).or_default() += 1;
        }
        if let Some(v) = m.vid.filter(|v| !v.is_empty()) {
            in_use.insert(v);
        }
    }

    // Steps a-h: eligibility, VO, thresholds, quota, sleep.
    let mut candidates = Vec::with_capacity(info.potential_mounts.len());
    let mut pool_vos: HashMap<&str, Option<&VirtualOrganization>> = HashMap::new();
    for pm in &info.potential_mounts {
        let (pool, is_repack) = match pm.mount_type {
            MountType::Retrieve => {
                let Some(tape) = cat.tapes.get(pm.vid.as_deref().unwrap_or_default()) else {
                    reject(pm, None, RejectReason::TapeNotFound);
                    continue;
                };
                let pool = tape.tape_pool.as_str();
                if tape.logical_library != library {
                    reject(pm, Some(pool), RejectReason::TapeInOtherLibrary);
                    continue;
                }
                if !matches!(tape.state, TapeState::Active | TapeState::Repacking) {
                    reject(pm, Some(pool), RejectReason::TapeNotMountable);
                    continue;
                }
                (pool, tape.state == TapeState::Repacking)
            }
            MountType::ArchiveForUser => (pm.tape_pool.as_deref().unwrap_or_default(), false),
            MountType::ArchiveForRepack => (pm.tape_pool.as_deref().unwrap_or_default(), true),
            MountType::Label => continue,
        };
        let vo = if is_repack {
            match repack_vo {
                Some(v) => v,
                None => {
                    reject(pm, Some(pool), RejectReason::NoRepackVo);
                    continue;
                }
            }
        } else {
            // Thousands of queues share a few hundred pools: look each pool up once.
            let vo = *pool_vos.entry(pool).or_insert_with(|| cat.pool_vo(pool));
            match vo {
                Some(v) => v,
                None => {
                    reject(pm, Some(pool), RejectReason::UnknownTapePool);
                    continue;
                }
            }
        };
        let (priority, min_age) = refreshed_policy(cat, pm);
        let existing =
            if pm.mount_type.is_archive() { per_pool.get(&(pool, pm.mount_type)).copied().unwrap_or(0) } else { 0 };
        let factor = if pm.mount_type == MountType::ArchiveForRepack { 2 } else { 1 };
        let min_bytes = config.min_bytes_to_warrant_mount.saturating_mul(factor);
        let min_files = config.min_files_to_warrant_mount.saturating_mul(factor);
        let by_bytes = pm.bytes_queued / (1 + existing) >= min_bytes;
        let by_files = pm.files_queued / (1 + existing) >= min_files;
        let by_age = existing == 0 && now.saturating_sub(pm.oldest_job_start) > min_age as i64;
        if !(by_bytes || by_files || by_age) {
            reject(pm, Some(pool), RejectReason::CriteriaNotMet);
            continue;
        }
        let max_drives = if pm.mount_type == MountType::Retrieve { vo.read_max_drives } else { vo.write_max_drives };
        if per_vo.get(&(vo.name.as_str(), pm.mount_type.basic())).copied().unwrap_or(0) >= max_drives {
            reject(pm, Some(pool), RejectReason::VoQuotaReached);
            continue;
        }
        if pm.sleep.as_ref().is_some_and(|s| now < s.until) {
            reject(pm, Some(pool), RejectReason::Sleeping);
            continue;
        }
        candidates.push(Cand {
            mount_type: pm.mount_type,
            tape_pool: pool,
            vid: pm.vid.as_deref(),
            priority,
            min_request_age: min_age,
            files_queued: pm.files_queued,
            bytes_queued: pm.bytes_queued,
            oldest_job_start: pm.oldest_job_start,
            vo: vo.name.as_str(),
        });
    }
    Some(Evaluation { library, candidates, in_use })
}

/// Steps j-k and 6: visits candidates in decision order (`order` yields their indices) until one
/// gets a tape: an archive candidate the fullest ACTIVE, non-full tape of its pool in the library
/// that no other drive uses, a retrieve candidate its own tape unless in use. `skipped` hears of
/// every candidate passed over. Returns the chosen candidate's index and tape.
fn pick<'a>(
    eval: &Evaluation<'a>,
    cat: &'a CatalogueSnapshot,
    order: impl Iterator<Item = usize>,
    mut skipped: impl FnMut(usize, SkipReason),
) -> Option<(usize, &'a str)> {
    // Tapes for writing, most data first; built when an archive candidate first needs them.
    let mut writable: Option<Vec<&Tape>> = None;
    for i in order {
        let c = &eval.candidates[i];
        if c.mount_type.is_archive() {
            let writable = writable.get_or_insert_with(|| {
                let mut w: Vec<&Tape> = cat
                    .tapes
                    .values()
                    .filter(|t| t.state == TapeState::Active && !t.full && t.logical_library == eval.library)
                    .collect();
                w.sort_by(|a, b| b.data_on_tape_bytes.cmp(&a.data_on_tape_bytes).then_with(|| a.vid.cmp(&b.vid)));
                w
            });
            let mut of_pool = writable.iter().filter(|t| t.tape_pool == c.tape_pool).peekable();
            if of_pool.peek().is_none() {
                skipped(i, SkipReason::NoWritableTape);
                continue;
            }
            match of_pool.find(|t| !eval.in_use.contains(t.vid.as_str())) {
                Some(tape) => return Some((i, tape.vid.as_str())),
                None => skipped(i, SkipReason::TapeInUse),
            }
        } else {
            let vid = c.vid.unwrap_or_default();
            if eval.in_use.contains(vid) {
                skipped(i, SkipReason::TapeInUse);
                continue;
            }
            return Some((i, vid));
        }
    }
    None
}

fn spec_of(c: &Cand, vid: &str, drive: &str, library: &str) -> MountSpec {
    MountSpec {
        mount_type: c.mount_type,
        vid: vid.to_string(),
        tape_pool: c.tape_pool.to_string(),
        vo: c.vo.to_string(),
        drive: drive.to_string(),
        logical_library: library.to_string(),
    }
}

/// Decides what `drive` should mount now, explaining every candidate (in decision order) and
/// every rejected potential mount.
pub fn decide(
    info: &MountInfo,
    cat: &CatalogueSnapshot,
    drive: &str,
    now: Timestamp,
    config: &SchedulerConfig,
) -> Decision {
    let mut decision = Decision::default();
    let Some(mut eval) = evaluate(info, cat, drive, now, config, Some(&mut decision.rejected)) else {
        return decision;
    };
    // Step i: sort.
    eval.candidates.sort_by(urgency);
    let mut skips: Vec<Option<SkipReason>> = vec![None; eval.candidates.len()];
    let chosen = pick(&eval, cat, 0..eval.candidates.len(), |i, why| skips[i] = Some(why));
    decision.chosen = chosen.map(|(i, vid)| spec_of(&eval.candidates[i], vid, drive, eval.library));
    decision.candidates = eval
        .candidates
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let selected = chosen.is_some_and(|(k, _)| k == i);
            Candidate {
                mount_type: c.mount_type,
                tape_pool: c.tape_pool.to_string(),
                vid: if selected { chosen.map(|(_, v)| v.to_string()) } else { c.vid.map(str::to_string) },
                priority: c.priority,
                min_request_age: c.min_request_age,
                files_queued: c.files_queued,
                bytes_queued: c.bytes_queued,
                oldest_job_start: c.oldest_job_start,
                vo: c.vo.to_string(),
                selected,
                skip_reason: skips[i],
            }
        })
        .collect();
    decision
}

/// The mount [`decide`] would choose, without its explanation: the same filters, then the most
/// urgent candidates taken one by one from a heap instead of sorting them all. What the
/// scheduler's `next_mount` uses; `decide` serves explanations and traces.
pub fn choose(
    info: &MountInfo,
    cat: &CatalogueSnapshot,
    drive: &str,
    now: Timestamp,
    config: &SchedulerConfig,
) -> Option<MountSpec> {
    let eval = evaluate(info, cat, drive, now, config, None)?;
    let mut heap: BinaryHeap<MostUrgent> =
        (0..eval.candidates.len()).map(|i| MostUrgent(i, &eval.candidates)).collect();
    let order = std::iter::from_fn(|| heap.pop().map(|m| m.0));
    let (i, vid) = pick(&eval, cat, order, |_, _| {})?;
    Some(spec_of(&eval.candidates[i], vid, drive, eval.library))
}

/// A candidate's index, ordered so that a max-heap yields the most urgent first.
struct MostUrgent<'b, 'a>(usize, &'b [Cand<'a>]);

impl PartialEq for MostUrgent<'_, '_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for MostUrgent<'_, '_> {}
impl PartialOrd for MostUrgent<'_, '_> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for MostUrgent<'_, '_> {
    fn cmp(&self, other: &Self) -> Ordering {
        // `urgency` says Less for the more urgent; the heap pops the greatest.
        urgency(&other.1[other.0], &self.1[self.0]).then_with(|| other.0.cmp(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::QueueSleep;

    /// A small deterministic generator (xorshift), enough to vary the inputs.
    struct Gen(u64);
    impl Gen {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    fn world(g: &mut Gen) -> (MountInfo, CatalogueSnapshot) {
        let mut cat = CatalogueSnapshot::default();
        for vo in ["vo0", "vo1"] {
            cat.vos.insert(
                vo.into(),
                VirtualOrganization {
                    name: vo.into(),
                    read_max_drives: 1 + g.below(3),
                    write_max_drives: 1 + g.below(3),
                    is_repack_vo: vo == "vo1" && g.below(2) == 0,
                    disk_instance: None,
                },
            );
        }
        for lib in ["lib", "other"] {
            cat.logical_libraries
                .insert(lib.into(), LogicalLibrary { name: lib.into(), disabled: false, physical_library: None });
        }
        for p in 0..4 {
            let name = format!("p{p}");
            cat.tape_pools.insert(name.clone(), TapePool { name, vo: format!("vo{}", p % 2) });
        }
        for name in ["a", "b"] {
            cat.mount_policies.insert(
                name.into(),
                MountPolicy {
                    name: name.into(),
                    archive_priority: g.below(3),
                    archive_min_request_age: g.below(100),
                    retrieve_priority: g.below(3),
                    retrieve_min_request_age: g.below(100),
                },
            );
        }
        let states = [TapeState::Active, TapeState::Active, TapeState::Repacking, TapeState::Disabled];
        for t in 0..12 {
            let vid = format!("V{t:02}");
            cat.tapes.insert(
                vid.clone(),
                Tape {
                    vid,
                    tape_pool: format!("p{}", g.below(5)),
                    logical_library: if g.below(6) == 0 { "other".into() } else { "lib".into() },
                    capacity_bytes: 1000,
                    data_on_tape_bytes: g.below(4) * 100,
                    last_fseq: 0,
                    full: g.below(5) == 0,
                    state: states[g.below(4) as usize],
                    state_reason: None,
                    media_type: "LTO".into(),
                    vendor: None,
                },
            );
        }
        for d in 0..4 {
            let name = format!("d{d}");
            let busy = g.below(2) == 0;
            cat.drives.insert(
                name.clone(),
                DriveState {
                    name,
                    logical_library: "lib".into(),
                    scheduler_backend: Some("default".into()),
                    status: if busy { DriveStatus::Transferring } else { DriveStatus::Up },
                    mount_type: busy.then_some(if g.below(2) == 0 {
                        MountType::Retrieve
                    } else {
                        MountType::ArchiveForUser
                    }),
                    vid: busy.then(|| format!("V{:02}", g.below(12))),
                    tape_pool: busy.then(|| format!("p{}", g.below(4))),
                    next_mount_type: None,
                    next_vid: None,
                    next_tape_pool: None,
                    reason: None,
                },
            );
        }
        let mut info = MountInfo::default();
        for _ in 0..g.below(20) {
            let mount_type =
                [MountType::ArchiveForUser, MountType::ArchiveForRepack, MountType::Retrieve][g.below(3) as usize];
            let (tape_pool, vid) = if mount_type == MountType::Retrieve {
                (None, Some(format!("V{:02}", g.below(14))))
            } else {
                (Some(format!("p{}", g.below(5))), None)
            };
            if info
                .potential_mounts
                .iter()
                .any(|m| m.mount_type == mount_type && m.tape_pool == tape_pool && m.vid == vid)
            {
                continue;
            }
            let policy = ["a", "b", "gone"][g.below(3) as usize];
            info.potential_mounts.push(std::sync::Arc::new(PotentialMount {
                mount_type,
                tape_pool,
                vid,
                files_queued: 1 + g.below(10),
                bytes_queued: g.below(4_000_000),
                oldest_job_start: g.below(200) as i64,
                youngest_job_start: 200,
                priority: g.below(3),
                min_request_age: g.below(100),
                policy_counts: [(policy.to_string(), 1)].into_iter().collect(),
                sleep: (g.below(8) == 0).then(|| QueueSleep { disk_system: "ds".into(), until: 300 }),
            }));
        }
        info.sort();
        (info, cat)
    }

    #[test]
    fn choose_picks_what_decide_explains() {
        let mut g = Gen(0x9E37_79B9_7F4A_7C15);
        let config = SchedulerConfig::default();
        let mut chosen = 0;
        for _ in 0..3000 {
            let (info, cat) = world(&mut g);
            let drive = format!("d{}", g.below(5));
            let now = 150 + g.below(300) as i64;
            let explained = decide(&info, &cat, &drive, now, &config);
            assert_eq!(choose(&info, &cat, &drive, now, &config), explained.chosen, "{info:?}");
            assert!(explained.candidates.windows(2).all(|w| {
                let key = |c: &Candidate| {
                    (std::cmp::Reverse(c.priority), c.mount_type != MountType::ArchiveForUser, c.oldest_job_start)
                };
                key(&w[0]) <= key(&w[1])
            }));
            chosen += explained.chosen.is_some() as usize;
        }
        assert!(chosen > 300 && chosen < 2700, "the generated cases both choose and refuse ({chosen})");
    }
}

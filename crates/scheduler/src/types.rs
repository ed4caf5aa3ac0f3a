//! Domain value types: mount types, tape and drive states, catalogue records, requests and jobs.
//!
//! These are plain values shared by the scheduler, the catalogue and every backend; backends store
//! them and hand them back, so two backends' answers can be compared field by field.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;
use crate::error::Error;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum $name { $($(#[$vm])* #[serde(rename = $s)] $v),* }
        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$v),*];
            /// The contract's spelling.
            pub fn as_str(self) -> &'static str { match self { $($name::$v => $s),* } }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                match s { $($s => Ok($name::$v),)* _ => Err(Error::invalid(format!(
                    concat!("unknown ", stringify!($name), " {:?}"), s))) }
            }
        }
    };
}
pub(crate) use string_enum;

string_enum!(
    /// The kind of a tape mount.
    MountType {
        /// Writing user files.
        ArchiveForUser = "ArchiveForUser",
        /// Writing files moved by a repack.
        ArchiveForRepack = "ArchiveForRepack",
        /// Reading files back.
        Retrieve = "Retrieve",
        /// Labelling a tape (never chosen by the scheduler).
        Label = "Label",
    }
);

impl MountType {
    /// True for both archive kinds.
    pub fn is_archive(self) -> bool {
        matches!(self, MountType::ArchiveForUser | MountType::ArchiveForRepack)
    }
    /// The quota class: all archives share one, retrieves another.
    pub fn basic(self) -> BasicMountType {
        match self {
            MountType::ArchiveForUser | MountType::ArchiveForRepack => BasicMountType::Archive,
            MountType::Retrieve => BasicMountType::Retrieve,
            MountType::Label => BasicMountType::Label,
        }
    }
}

/// Mount types folded the way VO quotas count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BasicMountType {
    /// ArchiveForUser and ArchiveForRepack.
    Archive,
    /// Retrieve.
    Retrieve,
    /// Label.
    Label,
}

string_enum!(
    /// The state of a tape in the catalogue.
    TapeState {
        /// In service.
        Active = "ACTIVE",
        /// Temporarily out of service; never mounted, a fallback for queueing.
        Disabled = "DISABLED",
        /// Being repacked.
        Repacking = "REPACKING",
        /// Being repacked but temporarily out of service.
        RepackingDisabled = "REPACKING_DISABLED",
        /// Broken.
        Broken = "BROKEN",
        /// Exported out of the library.
        Exported = "EXPORTED",
        /// Going to REPACKING once its retrieve queue is cleaned up.
        RepackingPending = "REPACKING_PENDING",
        /// Going to BROKEN once its retrieve queue is cleaned up.
        BrokenPending = "BROKEN_PENDING",
        /// Going to EXPORTED once its retrieve queue is cleaned up.
        ExportedPending = "EXPORTED_PENDING",
    }
);

impl TapeState {
    /// True for the three transitional `*_PENDING` states.
    pub fn is_pending(self) -> bool {
        matches!(self, TapeState::RepackingPending | TapeState::BrokenPending | TapeState::ExportedPending)
    }
    /// The final state a `*_PENDING` state leads to.
    pub fn pending_target(self) -> Option<TapeState> {
        match self {
            TapeState::RepackingPending => Some(TapeState::Repacking),
            TapeState::BrokenPending => Some(TapeState::Broken),
            TapeState::ExportedPending => Some(TapeState::Exported),
            _ => None,
        }
    }
}

string_enum!(
    /// The status a tape drive reports in the drive register.
    DriveStatus {
        /// Down.
        Down = "Down",
        /// Up and idle.
        Up = "Up",
        /// Probing.
        Probing = "Probing",
        /// Starting a session.
        Starting = "Starting",
        /// Mounting a tape.
        Mounting = "Mounting",
        /// Transferring.
        Transferring = "Transferring",
        /// Unloading.
        Unloading = "Unloading",
        /// Unmounting.
        Unmounting = "Unmounting",
        /// Draining to disk.
        DrainingToDisk = "DrainingToDisk",
        /// Cleaning up.
        CleaningUp = "CleaningUp",
        /// Shut down.
        Shutdown = "Shutdown",
    }
);

impl DriveStatus {
    /// True for the statuses in which a drive holds a current mount for scheduling purposes.
    pub fn has_current_mount(self) -> bool {
        matches!(
            self,
            DriveStatus::Starting
                | DriveStatus::Mounting
                | DriveStatus::Transferring
                | DriveStatus::Unloading
                | DriveStatus::Unmounting
                | DriveStatus::DrainingToDisk
        )
    }
}

/// The disk-side user of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requester {
    /// User name.
    pub name: String,
    /// Group name.
    pub group: String,
}

/// A virtual organisation and its drive quotas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VirtualOrganization {
    /// Name.
    pub name: String,
    /// Maximum concurrent retrieve mounts.
    pub read_max_drives: u64,
    /// Maximum concurrent archive mounts (user and repack together).
    pub write_max_drives: u64,
    /// The default repack VO (at most one).
    pub is_repack_vo: bool,
    /// Optional disk instance.
    pub disk_instance: Option<String>,
}

/// A tape pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapePool {
    /// Name.
    pub name: String,
    /// Owning VO.
    pub vo: String,
}

/// A storage class: how many copies, which VO.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageClass {
    /// Name.
    pub name: String,
    /// Number of copies.
    pub nb_copies: u32,
    /// VO.
    pub vo: String,
}

/// Whether an archive route serves user archives or repack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveRouteType {
    /// Used by user archives (and by repack when no repack route exists).
    #[default]
    Default,
    /// Used by repack only, overriding the default route of the same copy.
    Repack,
}

/// Where copy `copy_nb` of a storage class goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveRoute {
    /// Storage class.
    pub storage_class: String,
    /// Copy number (1-based).
    pub copy_nb: u32,
    /// Destination pool.
    pub tape_pool: String,
    /// Route type.
    pub route_type: ArchiveRouteType,
}

/// A mount policy: priorities and minimum request ages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPolicy {
    /// Name.
    pub name: String,
    /// Archive priority (larger is more urgent).
    pub archive_priority: u64,
    /// Archive minimum request age, seconds.
    pub archive_min_request_age: u64,
    /// Retrieve priority.
    pub retrieve_priority: u64,
    /// Retrieve minimum request age, seconds.
    pub retrieve_min_request_age: u64,
}

/// What a mount rule matches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MountRuleKind {
    /// Requester user name.
    Requester,
    /// Requester group.
    Group,
    /// Retrieve activity (name is a regular expression).
    Activity,
}

/// Maps requesters, groups or activities of a disk instance to a mount policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountRule {
    /// Kind.
    pub kind: MountRuleKind,
    /// Disk instance.
    pub disk_instance: String,
    /// User, group, or activity regular expression.
    pub name: String,
    /// Policy name.
    pub mount_policy: String,
}

/// A logical library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogicalLibrary {
    /// Name.
    pub name: String,
    /// Disabled flag.
    pub disabled: bool,
    /// Optional physical library.
    pub physical_library: Option<String>,
}

/// A physical library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhysicalLibrary {
    /// Name.
    pub name: String,
    /// Disabled flag.
    pub disabled: bool,
}

/// A destination disk system and its free-space back-pressure settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskSystem {
    /// Name.
    pub name: String,
    /// Regular expression matched against retrieve destination URLs.
    pub file_regexp: String,
    /// Free space on the disk system, bytes.
    pub free_space_bytes: u64,
    /// Free space to keep, bytes.
    pub target_free_space_bytes: u64,
    /// How long a queue sleeps when the disk system is full, seconds.
    pub sleep_time: u64,
}

/// A tape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tape {
    /// Volume id.
    pub vid: String,
    /// Pool.
    pub tape_pool: String,
    /// Logical library.
    pub logical_library: String,
    /// Capacity, bytes.
    pub capacity_bytes: u64,
    /// Data written, bytes.
    pub data_on_tape_bytes: u64,
    /// Last file sequence number written.
    pub last_fseq: u64,
    /// Full flag.
    pub full: bool,
    /// State.
    pub state: TapeState,
    /// Reason for the state.
    pub state_reason: Option<String>,
    /// Media type.
    pub media_type: String,
    /// Vendor.
    pub vendor: Option<String>,
}

/// Drive configuration: where a drive is and which scheduler backend it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveConfig {
    /// Drive name.
    pub name: String,
    /// Logical library.
    pub logical_library: String,
}

/// A drive register entry, as tape servers write it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DriveState {
    /// Drive name.
    pub name: String,
    /// Logical library.
    pub logical_library: String,
    /// Scheduler backend name the drive is configured with (`None`: not configured).
    pub scheduler_backend: Option<String>,
    /// Reported status.
    pub status: DriveStatus,
    /// Current mount type.
    pub mount_type: Option<MountType>,
    /// Current VID.
    pub vid: Option<String>,
    /// Current pool.
    pub tape_pool: Option<String>,
    /// Next mount type.
    pub next_mount_type: Option<MountType>,
    /// Next VID.
    pub next_vid: Option<String>,
    /// Next pool.
    pub next_tape_pool: Option<String>,
    /// Why the drive is Down, as its tape daemon reported it (a drive error, a stuck
    /// cartridge...); None otherwise, and when no reason was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One copy of a file on tape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TapeFile {
    /// Copy number.
    pub copy_nb: u32,
    /// Tape.
    pub vid: String,
    /// File sequence number on the tape.
    pub fseq: u64,
    /// Block id.
    pub block_id: u64,
}

/// A file known to the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveFile {
    /// Archive file id.
    pub archive_file_id: u64,
    /// Disk instance.
    pub disk_instance: String,
    /// Disk file id.
    pub disk_file_id: String,
    /// Size in bytes.
    pub size: u64,
    /// Storage class.
    pub storage_class: String,
    /// Copies on tape, by copy number.
    pub copies: Vec<TapeFile>,
}

/// The mount-policy values a job was queued with (kept if the policy is later deleted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueuedPolicy {
    /// Policy name.
    pub name: String,
    /// Priority for this job's direction (archive or retrieve).
    pub priority: u64,
    /// Minimum request age for this job's direction.
    pub min_request_age: u64,
}

/// Retry bookkeeping of one job (one copy).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryCounters {
    /// Failures within the mount of the last failure.
    pub retries_within_mount: u32,
    /// Failures in total.
    pub total_retries: u32,
    /// The mount of the last failure.
    pub last_mount_with_failure: Option<u64>,
    /// Failed report deliveries.
    pub report_retries: u32,
}

/// Where an archive job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ArchiveJobStatus {
    /// Waiting in (or popped from) its pool's transfer queue.
    ToTransfer,
    /// Written; the success report is due.
    ToReportForTransfer,
    /// Failed for good; the failure report is due.
    ToReportForFailure,
    /// Written; another copy carries the report.
    Complete,
    /// Failed for good and reported, or failed after the report was decided.
    Failed,
}

/// One copy of an archive request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveJob {
    /// Copy number.
    pub copy_nb: u32,
    /// Destination pool.
    pub tape_pool: String,
    /// Status.
    pub status: ArchiveJobStatus,
    /// Retry bookkeeping.
    pub retries: RetryCounters,
    /// Failure messages, oldest first.
    pub failure_reasons: Vec<String>,
    /// The tape copy written, once successful.
    pub written: Option<TapeFile>,
}

impl ArchiveJob {
    /// A new job for copy `copy_nb` to `tape_pool`, waiting for its transfer.
    pub fn new(copy_nb: u32, tape_pool: impl Into<String>) -> Self {
        ArchiveJob {
            copy_nb,
            tape_pool: tape_pool.into(),
            status: ArchiveJobStatus::ToTransfer,
            retries: RetryCounters::default(),
            failure_reasons: vec![],
            written: None,
        }
    }
}

/// An archive request with one job per copy. Its identity is its archive file id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveRequest {
    /// Archive file id (also the request id).
    pub archive_file_id: u64,
    /// Disk instance.
    pub disk_instance: String,
    /// Disk file id.
    pub disk_file_id: String,
    /// Requester.
    pub requester: Requester,
    /// Storage class.
    pub storage_class: String,
    /// Size in bytes.
    pub size: u64,
    /// Creation time (the age of the request counts from here).
    pub created_at: Timestamp,
    /// Where success is reported.
    pub report_url: Option<String>,
    /// Where failure is reported.
    pub error_report_url: Option<String>,
    /// Policy values at queueing time.
    pub policy: QueuedPolicy,
    /// Jobs, one per copy.
    pub jobs: Vec<ArchiveJob>,
    /// A report (success or failure) has been decided for the request.
    pub report_decided: bool,
    /// The repack this request re-archives a file for (`None`: a user's archive).
    #[serde(default)]
    pub repack: Option<crate::repack::RepackLink>,
}

impl ArchiveRequest {
    /// The request's identity: its archive file id, or for a repack's archive, its subrequest id.
    pub fn id(&self) -> RequestId {
        match &self.repack {
            Some(link) => RequestId::RepackArchive(link.subrequest_id),
            None => RequestId::Archive(self.archive_file_id),
        }
    }
    /// The job of copy `copy_nb`.
    pub fn job(&self, copy_nb: u32) -> Option<&ArchiveJob> {
        self.jobs.iter().find(|j| j.copy_nb == copy_nb)
    }
    /// The job of copy `copy_nb`, mutable.
    pub fn job_mut(&mut self, copy_nb: u32) -> Option<&mut ArchiveJob> {
        self.jobs.iter_mut().find(|j| j.copy_nb == copy_nb)
    }
}

/// Where a retrieve request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetrieveStatus {
    /// Waiting in (or popped from) the queue of its active VID.
    ToTransfer,
    /// Recalled; the success report is due.
    ToReportForTransfer,
    /// Failed for good; the failure report is due.
    ToReportForFailure,
    /// Failed and reported (or report delivery gave up).
    Failed,
}

/// One tape copy a retrieve may read, with its own retry counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetrieveCopy {
    /// Copy number.
    pub copy_nb: u32,
    /// Tape.
    pub vid: String,
    /// File sequence number.
    pub fseq: u64,
    /// Block id.
    pub block_id: u64,
    /// Retry bookkeeping of this copy.
    pub retries: RetryCounters,
}

/// A retrieve request. Its identity is a request id allocated by the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetrieveRequest {
    /// Request id.
    pub request_id: u64,
    /// Archive file id.
    pub archive_file_id: u64,
    /// Disk instance.
    pub disk_instance: String,
    /// Requester.
    pub requester: Requester,
    /// Size in bytes.
    pub size: u64,
    /// Destination URL.
    pub dst_url: String,
    /// Where success is reported (none: no success report).
    pub report_url: Option<String>,
    /// Where failure is reported.
    pub error_report_url: Option<String>,
    /// Creation time.
    pub created_at: Timestamp,
    /// Activity.
    pub activity: Option<String>,
    /// Verification only (never retried).
    pub verify_only: bool,
    /// Destination disk system, matched from `dst_url`.
    pub disk_system: Option<String>,
    /// Policy values at queueing time.
    pub policy: QueuedPolicy,
    /// Copies that may be read.
    pub copies: Vec<RetrieveCopy>,
    /// The VID whose queue holds the request.
    pub active_vid: String,
    /// Status.
    pub status: RetrieveStatus,
    /// Failure messages, oldest first.
    pub failure_reasons: Vec<String>,
    /// The repack this request recalls a file for (`None`: a user's retrieve).
    #[serde(default)]
    pub repack: Option<crate::repack::RepackLink>,
}

impl RetrieveRequest {
    /// The request's identity.
    pub fn id(&self) -> RequestId {
        RequestId::Retrieve(self.request_id)
    }
    /// The copy on the active VID.
    pub fn active_copy(&self) -> Option<&RetrieveCopy> {
        self.copies.iter().find(|c| c.vid == self.active_vid)
    }
    /// The copy on the active VID, mutable.
    pub fn active_copy_mut(&mut self) -> Option<&mut RetrieveCopy> {
        let vid = self.active_vid.clone();
        self.copies.iter_mut().find(|c| c.vid == vid)
    }
}

/// A request's identity, stable across backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum RequestId {
    /// An archive request, by archive file id.
    Archive(u64),
    /// A retrieve request, by request id.
    Retrieve(u64),
    /// A repack's archive request, by the id of the repack subrequest it was made from (two
    /// repacks may re-archive the same file at once, so the archive file id cannot be its key).
    RepackArchive(u64),
}

/// A job's identity: request and copy number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct JobId {
    /// The request.
    pub request: RequestId,
    /// The copy.
    pub copy_nb: u32,
}

/// Opaque mount identity (backend-specific number).
pub type MountId = u64;

/// Values of a set of mount policies counted by name.
pub type PolicyCounts = BTreeMap<String, u64>;

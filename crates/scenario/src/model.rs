//! The typed form of a scenario file: header, catalogue section and steps.
//!
//! These structs mirror `scenario.schema.json`. Files are validated against the schema first
//! ([`crate::validate`]), so deserialization into these types only fails on what the schema cannot
//! express (numbers out of range, for instance).

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use tapesched_scheduler::types::{ArchiveRouteType, DriveStatus, MountRuleKind, MountType, TapeState};

/// Default `start_time` of a scenario (a Unix time).
pub const DEFAULT_START_TIME: i64 = 1_700_000_000;

/// Media type of a tape that gives none.
pub const DEFAULT_MEDIA_TYPE: &str = "LTO8";

/// A whole scenario file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Format version (always 1).
    pub version: u32,
    /// Short name.
    pub name: String,
    /// What the scenario probes.
    #[serde(default)]
    pub description: Option<String>,
    /// Unix time of offset 0 (default [`DEFAULT_START_TIME`]).
    #[serde(default)]
    pub start_time: Option<i64>,
    /// Scheduler settings.
    #[serde(default)]
    pub scheduler: SchedulerHeader,
    /// The initial catalogue.
    pub catalogue: CatalogueSpec,
    /// The timeline.
    pub steps: Vec<Step>,
}

impl Scenario {
    /// The Unix time of offset 0.
    pub fn start_time(&self) -> i64 {
        self.start_time.unwrap_or(DEFAULT_START_TIME)
    }
}

/// The `scheduler:` header; omitted values take the scheduler's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerHeader {
    /// Files that warrant a mount on their own.
    #[serde(default)]
    pub min_files_to_warrant_mount: Option<u64>,
    /// Bytes that warrant a mount on their own.
    #[serde(default)]
    pub min_bytes_to_warrant_mount: Option<u64>,
    /// This scheduler's backend name.
    #[serde(default)]
    pub backend_name: Option<String>,
}

/// The `catalogue:` section (also the content of a catalogue-only file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CatalogueSpec {
    /// Disk instances.
    pub disk_instances: Vec<String>,
    /// Virtual organisations.
    pub virtual_organizations: Vec<VoSpec>,
    /// Physical libraries.
    pub physical_libraries: Vec<PhysicalLibrarySpec>,
    /// Logical libraries.
    pub logical_libraries: Vec<LogicalLibrarySpec>,
    /// Tape pools.
    pub tape_pools: Vec<TapePoolSpec>,
    /// Storage classes.
    pub storage_classes: Vec<StorageClassSpec>,
    /// Archive routes.
    pub archive_routes: Vec<ArchiveRouteSpec>,
    /// Mount policies.
    pub mount_policies: Vec<MountPolicySpec>,
    /// Mount rules.
    pub mount_rules: Vec<MountRuleSpec>,
    /// Disk systems.
    pub disk_systems: Vec<DiskSystemSpec>,
    /// Tapes.
    pub tapes: Vec<TapeSpec>,
    /// Drives.
    pub drives: Vec<DriveSpec>,
    /// Archive files already on tape.
    pub files: Vec<FileSpec>,
}

/// A virtual organisation.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoSpec {
    /// Name.
    pub name: String,
    /// Read quota.
    pub read_max_drives: u64,
    /// Write quota.
    pub write_max_drives: u64,
    /// The repack VO.
    #[serde(default)]
    pub is_repack_vo: bool,
    /// Optional disk instance.
    #[serde(default)]
    pub disk_instance: Option<String>,
}

/// A physical library.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhysicalLibrarySpec {
    /// Name.
    pub name: String,
    /// Disabled flag (default false).
    #[serde(default)]
    pub disabled: bool,
}

/// A logical library.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogicalLibrarySpec {
    /// Name.
    pub name: String,
    /// Disabled flag (default false).
    #[serde(default)]
    pub disabled: bool,
    /// Optional physical library.
    #[serde(default)]
    pub physical_library: Option<String>,
}

/// A tape pool.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TapePoolSpec {
    /// Name.
    pub name: String,
    /// VO.
    pub vo: String,
}

/// A storage class.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageClassSpec {
    /// Name.
    pub name: String,
    /// Number of copies.
    pub nb_copies: u32,
    /// VO.
    pub vo: String,
}

/// An archive route.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveRouteSpec {
    /// Storage class.
    pub storage_class: String,
    /// Copy number.
    pub copy_nb: u32,
    /// Destination pool.
    pub tape_pool: String,
    /// Route type (default `default`).
    #[serde(default, rename = "type")]
    pub route_type: ArchiveRouteType,
}

/// A mount policy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountPolicySpec {
    /// Name.
    pub name: String,
    /// Archive priority.
    pub archive_priority: u64,
    /// Archive minimum request age.
    pub archive_min_request_age: u64,
    /// Retrieve priority.
    pub retrieve_priority: u64,
    /// Retrieve minimum request age.
    pub retrieve_min_request_age: u64,
}

/// A mount rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MountRuleSpec {
    /// What the rule matches on.
    pub kind: MountRuleKind,
    /// Disk instance.
    pub disk_instance: String,
    /// User, group or activity regular expression.
    pub name: String,
    /// Policy.
    pub mount_policy: String,
}

/// A disk system. Omitted values: 2^63-1 bytes free (the largest value), no target, no sleep.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiskSystemSpec {
    /// Name.
    pub name: String,
    /// Regular expression on destination URLs.
    pub file_regexp: String,
    /// Free space, bytes.
    #[serde(default)]
    pub free_space_bytes: Option<u64>,
    /// Free space to keep, bytes.
    #[serde(default)]
    pub target_free_space_bytes: Option<u64>,
    /// Sleep time when full, seconds.
    #[serde(default)]
    pub sleep_time: Option<u64>,
}

/// A tape (in the catalogue section and in `add_tape`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TapeSpec {
    /// VID.
    pub vid: String,
    /// Pool.
    pub tape_pool: String,
    /// Logical library.
    pub logical_library: String,
    /// Capacity.
    pub capacity_bytes: u64,
    /// Data on tape (default 0).
    #[serde(default)]
    pub data_on_tape_bytes: u64,
    /// Last fSeq (default 0).
    #[serde(default)]
    pub last_fseq: u64,
    /// Full flag (default false).
    #[serde(default)]
    pub full: bool,
    /// State (default ACTIVE).
    #[serde(default)]
    pub state: Option<TapeState>,
    /// State reason.
    #[serde(default)]
    pub state_reason: Option<String>,
    /// Media type (default [`DEFAULT_MEDIA_TYPE`]).
    #[serde(default)]
    pub media_type: Option<String>,
    /// Vendor.
    #[serde(default)]
    pub vendor: Option<String>,
}

/// A drive of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriveSpec {
    /// Name.
    pub name: String,
    /// Logical library.
    pub logical_library: String,
    /// Scheduler backend name (default: the scheduler's).
    #[serde(default)]
    pub scheduler_backend: Option<String>,
}

/// An archive file already on tape.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Archive file id.
    pub archive_file_id: u64,
    /// Disk instance (default: the catalogue's first).
    #[serde(default)]
    pub disk_instance: Option<String>,
    /// Disk file id (default: the archive file id in decimal).
    #[serde(default)]
    pub disk_file_id: Option<String>,
    /// Size.
    pub size: u64,
    /// Storage class.
    pub storage_class: String,
    /// Copies on tape.
    pub copies: Vec<CopySpec>,
}

/// One tape copy of a file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopySpec {
    /// Copy number.
    pub copy_nb: u32,
    /// Tape.
    pub vid: String,
    /// fSeq.
    pub fseq: u64,
    /// Block id (default 0).
    #[serde(default)]
    pub block_id: u64,
}

/// One step of the timeline: when, what, and what must come out.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// Offset on the scenario clock (omitted: the previous step's).
    pub at: Option<u64>,
    /// Free comment.
    pub comment: Option<String>,
    /// Expectations, kept as JSON: only the keys given are checked ([`crate::expect`]).
    pub expect: Option<Map<String, Value>>,
    /// The operation.
    pub op: Op,
}

impl<'de> Deserialize<'de> for Step {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        let mut map = Map::<String, Value>::deserialize(d)?;
        let at = match map.remove("at") {
            None | Some(Value::Null) => None,
            Some(v) => Some(serde_json::from_value(v).map_err(|e| D::Error::custom(format!("at: {e}")))?),
        };
        let comment = match map.remove("comment") {
            None | Some(Value::Null) => None,
            Some(v) => Some(serde_json::from_value(v).map_err(|e| D::Error::custom(format!("comment: {e}")))?),
        };
        let expect = match map.remove("expect") {
            None => None,
            Some(Value::Object(m)) => Some(m),
            Some(other) => return Err(D::Error::custom(format!("expect: {other} is not a mapping"))),
        };
        let op = serde_json::from_value(Value::Object(map)).map_err(D::Error::custom)?;
        Ok(Step { at, comment, expect, op })
    }
}

/// Deserializes a field that distinguishes "absent" (`None`, via `#[serde(default)]`) from an
/// explicit `null` (`Some(None)`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

/// A requester as written in a request.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequesterSpec {
    /// User name.
    pub name: String,
    /// Group.
    pub group: String,
}

/// `change_tape_state` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModeSpec {
    /// No restriction (default).
    #[default]
    All,
    /// A user.
    User,
    /// Repack.
    Repack,
}

/// `report` kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// Archive reports.
    Archive,
    /// Retrieve reports.
    Retrieve,
    /// Repack reports.
    Repack,
    /// Everything (default).
    #[default]
    All,
}

/// `report` delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// The disk side accepts the reports (default).
    #[default]
    Ok,
    /// The disk side refuses them.
    Fail,
}

/// Job kinds of the listing ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KindSpec {
    /// Archive.
    Archive,
    /// Retrieve.
    Retrieve,
}

/// Transfer outcomes of `complete_jobs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeSpec {
    /// Success.
    Success,
    /// Failure.
    Failure,
}

/// Repack types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RepackType {
    /// Move.
    Move,
    /// Add copies.
    AddCopies,
    /// Both.
    MoveAndAddCopies,
}

/// Every operation of the contract, with its fields.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Changes a VO's quotas.
    SetVo {
        /// VO.
        name: String,
        /// Read quota.
        #[serde(default)]
        read_max_drives: Option<u64>,
        /// Write quota.
        #[serde(default)]
        write_max_drives: Option<u64>,
    },
    /// Creates or changes a mount policy.
    SetMountPolicy {
        /// Policy.
        name: String,
        /// Archive priority.
        #[serde(default)]
        archive_priority: Option<u64>,
        /// Archive minimum request age.
        #[serde(default)]
        archive_min_request_age: Option<u64>,
        /// Retrieve priority.
        #[serde(default)]
        retrieve_priority: Option<u64>,
        /// Retrieve minimum request age.
        #[serde(default)]
        retrieve_min_request_age: Option<u64>,
    },
    /// Deletes a mount policy.
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
    AddTape(TapeSpec),
    /// A plain edit of tape fields.
    SetTape {
        /// Tape.
        vid: String,
        /// State.
        #[serde(default)]
        state: Option<TapeState>,
        /// State reason.
        #[serde(default)]
        state_reason: Option<String>,
        /// Full flag.
        #[serde(default)]
        full: Option<bool>,
        /// Data on tape.
        #[serde(default)]
        data_on_tape_bytes: Option<u64>,
        /// Last fSeq.
        #[serde(default)]
        last_fseq: Option<u64>,
        /// Logical library.
        #[serde(default)]
        logical_library: Option<String>,
        /// Pool.
        #[serde(default)]
        tape_pool: Option<String>,
    },
    /// The tape-state workflow.
    ChangeTapeState {
        /// Tape.
        vid: String,
        /// Wanted state.
        state: TapeState,
        /// Reason.
        #[serde(default)]
        reason: Option<String>,
        /// Mode (default all).
        #[serde(default)]
        mode: ModeSpec,
    },
    /// The queue-cleanup maintenance pass.
    CleanupQueues {},
    /// Writes a drive register entry as another tape server would.
    SetDrive {
        /// Drive.
        drive: String,
        /// Status.
        status: DriveStatus,
        /// Current mount type.
        #[serde(default)]
        mount_type: Option<MountType>,
        /// Current VID.
        #[serde(default)]
        vid: Option<String>,
        /// Current pool.
        #[serde(default)]
        tape_pool: Option<String>,
        /// Backend name: absent = the scheduler's, `null` = none configured.
        #[serde(default, deserialize_with = "present")]
        scheduler_backend: Option<Option<String>>,
        /// Next mount type.
        #[serde(default)]
        next_mount_type: Option<MountType>,
        /// Next VID.
        #[serde(default)]
        next_vid: Option<String>,
        /// Next pool.
        #[serde(default)]
        next_tape_pool: Option<String>,
    },
    /// Changes a disk system's settings.
    SetDiskSystem {
        /// Disk system.
        name: String,
        /// Free space.
        #[serde(default)]
        free_space_bytes: Option<u64>,
        /// Target free space.
        #[serde(default)]
        target_free_space_bytes: Option<u64>,
        /// Sleep time.
        #[serde(default)]
        sleep_time: Option<u64>,
    },
    /// Queues an archive request.
    QueueArchive {
        /// Archive file id (else assigned).
        #[serde(default)]
        archive_file_id: Option<u64>,
        /// Disk instance.
        #[serde(default)]
        disk_instance: Option<String>,
        /// Disk file id.
        #[serde(default)]
        disk_file_id: Option<String>,
        /// Requester.
        requester: RequesterSpec,
        /// Storage class.
        storage_class: String,
        /// Size.
        size: u64,
        /// Creation time offset (default: the step's time).
        #[serde(default)]
        created_at: Option<i64>,
        /// Success report URL.
        #[serde(default)]
        report_url: Option<String>,
        /// Failure report URL.
        #[serde(default)]
        error_report_url: Option<String>,
    },
    /// Queues a retrieve request.
    QueueRetrieve {
        /// The file.
        archive_file_id: u64,
        /// Disk instance.
        #[serde(default)]
        disk_instance: Option<String>,
        /// Requester.
        requester: RequesterSpec,
        /// Restrict to the copy on this tape.
        #[serde(default)]
        vid: Option<String>,
        /// Activity.
        #[serde(default)]
        activity: Option<String>,
        /// Explicit mount policy.
        #[serde(default)]
        mount_policy: Option<String>,
        /// Destination URL.
        #[serde(default)]
        dst_url: Option<String>,
        /// Success report URL.
        #[serde(default)]
        report_url: Option<String>,
        /// Failure report URL.
        #[serde(default)]
        error_report_url: Option<String>,
        /// Creation time offset (default: the step's time).
        #[serde(default)]
        created_at: Option<i64>,
        /// Verification only.
        #[serde(default)]
        verify_only: bool,
    },
    /// Cancels an archive request.
    CancelArchive {
        /// The file.
        archive_file_id: u64,
    },
    /// Cancels retrieve requests.
    CancelRetrieve {
        /// The file.
        archive_file_id: u64,
        /// Only for this destination.
        #[serde(default)]
        dst_url: Option<String>,
    },
    /// Queues a repack request (not supported by this build yet).
    QueueRepack {
        /// Tape.
        vid: String,
        /// Repack type.
        #[serde(rename = "type")]
        repack_type: RepackType,
        /// Mount policy.
        mount_policy: String,
        /// Buffer URL.
        #[serde(default)]
        buffer_url: Option<String>,
        /// Do not recall.
        #[serde(default)]
        no_recall: Option<bool>,
        /// Maximum files.
        #[serde(default)]
        max_files: Option<u64>,
        /// Only files of this class.
        #[serde(default)]
        storage_class: Option<String>,
    },
    /// Expands pending repack requests (not supported by this build yet).
    ExpandRepack {
        /// Maximum requests expanded.
        #[serde(default)]
        max_requests: Option<u64>,
    },
    /// Cancels a repack (not supported by this build yet).
    CancelRepack {
        /// Tape.
        vid: String,
    },
    /// Lists repacks (not supported by this build yet).
    ShowRepacks {},
    /// Asks for the drive's next mount.
    NextMount {
        /// Drive.
        drive: String,
        /// Only say whether a mount would be returned.
        #[serde(default)]
        dry_run: bool,
        /// Report the drive Starting on the mount (default true).
        #[serde(default = "yes")]
        report_starting: bool,
    },
    /// Explains the drive's mount decision.
    ExplainMount {
        /// Drive.
        drive: String,
    },
    /// Pops jobs for the drive's session.
    PopJobs {
        /// Drive.
        drive: String,
        /// File budget.
        max_files: u64,
        /// Byte budget.
        max_bytes: u64,
    },
    /// Completes popped jobs.
    CompleteJobs {
        /// Drive.
        drive: String,
        /// Jobs (default: every popped job not yet completed).
        #[serde(default)]
        archive_file_ids: Option<Vec<u64>>,
        /// Outcome.
        outcome: OutcomeSpec,
        /// Failure reason.
        #[serde(default)]
        reason: Option<String>,
    },
    /// Ends the drive's session cleanly.
    EndMount {
        /// Drive.
        drive: String,
    },
    /// The drive's process dies.
    CrashDrive {
        /// Drive.
        drive: String,
    },
    /// The dead-process collector runs.
    GarbageCollect {},
    /// Delivers reports.
    Report {
        /// Which reports (default all).
        #[serde(default)]
        kind: ReportKind,
        /// At most this many.
        #[serde(default)]
        max: Option<u64>,
        /// Whether the disk side accepts them.
        #[serde(default)]
        delivery: Delivery,
    },
    /// Lists the queues.
    ShowQueues {},
    /// Lists queued jobs.
    ListPending {
        /// Archive or retrieve.
        kind: KindSpec,
        /// Pool (archive).
        #[serde(default)]
        tape_pool: Option<String>,
        /// VID (retrieve).
        #[serde(default)]
        vid: Option<String>,
    },
    /// Lists failed requests.
    ListFailed {
        /// Archive or retrieve.
        kind: KindSpec,
    },
}

fn yes() -> bool {
    true
}

impl Op {
    /// The op's name as written in files and traces.
    pub fn name(&self) -> &'static str {
        match self {
            Op::SetVo { .. } => "set_vo",
            Op::SetMountPolicy { .. } => "set_mount_policy",
            Op::DeleteMountPolicy { .. } => "delete_mount_policy",
            Op::SetLogicalLibrary { .. } => "set_logical_library",
            Op::SetPhysicalLibrary { .. } => "set_physical_library",
            Op::AddTape(_) => "add_tape",
            Op::SetTape { .. } => "set_tape",
            Op::ChangeTapeState { .. } => "change_tape_state",
            Op::CleanupQueues {} => "cleanup_queues",
            Op::SetDrive { .. } => "set_drive",
            Op::SetDiskSystem { .. } => "set_disk_system",
            Op::QueueArchive { .. } => "queue_archive",
            Op::QueueRetrieve { .. } => "queue_retrieve",
            Op::CancelArchive { .. } => "cancel_archive",
            Op::CancelRetrieve { .. } => "cancel_retrieve",
            Op::QueueRepack { .. } => "queue_repack",
            Op::ExpandRepack { .. } => "expand_repack",
            Op::CancelRepack { .. } => "cancel_repack",
            Op::ShowRepacks {} => "show_repacks",
            Op::NextMount { .. } => "next_mount",
            Op::ExplainMount { .. } => "explain_mount",
            Op::PopJobs { .. } => "pop_jobs",
            Op::CompleteJobs { .. } => "complete_jobs",
            Op::EndMount { .. } => "end_mount",
            Op::CrashDrive { .. } => "crash_drive",
            Op::GarbageCollect {} => "garbage_collect",
            Op::Report { .. } => "report",
            Op::ShowQueues {} => "show_queues",
            Op::ListPending { .. } => "list_pending",
            Op::ListFailed { .. } => "list_failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::load::parse_scenario;
    use crate::validate::known_ops;

    /// One step per op with every field the schema allows.
    const EVERY_OP: &str = r#"
version: 1
name: every-op
description: every op with every field
start_time: 1000
scheduler: {min_files_to_warrant_mount: 1, min_bytes_to_warrant_mount: 1, backend_name: b}
catalogue:
  disk_instances: [eos]
  virtual_organizations: [{name: vo, read_max_drives: 1, write_max_drives: 1, is_repack_vo: true, disk_instance: eos}]
  physical_libraries: [{name: pl, disabled: false}]
  logical_libraries: [{name: lib, disabled: false, physical_library: pl}]
  tape_pools: [{name: pool, vo: vo}]
  storage_classes: [{name: sc, nb_copies: 1, vo: vo}]
  archive_routes: [{storage_class: sc, copy_nb: 1, tape_pool: pool, type: default}]
  mount_policies: [{name: mp, archive_priority: 1, archive_min_request_age: 0, retrieve_priority: 1, retrieve_min_request_age: 0}]
  mount_rules: [{kind: activity, disk_instance: eos, name: "a.*", mount_policy: mp}]
  disk_systems: [{name: ds, file_regexp: "^root", free_space_bytes: 1, target_free_space_bytes: 0, sleep_time: 10}]
  tapes: [{vid: V1, tape_pool: pool, logical_library: lib, capacity_bytes: 1, data_on_tape_bytes: 0, last_fseq: 0,
           full: false, state: DISABLED, state_reason: r, media_type: LTO9, vendor: x}]
  drives: [{name: d, logical_library: lib, scheduler_backend: b}]
  files: [{archive_file_id: 1, disk_instance: eos, disk_file_id: "1", size: 1, storage_class: sc,
           copies: [{copy_nb: 1, vid: V1, fseq: 1, block_id: 0}]}]
steps:
  - {op: set_vo, at: 0, comment: c, name: vo, read_max_drives: 1, write_max_drives: 1, expect: {error: any}}
  - {op: set_mount_policy, name: mp, archive_priority: 1, archive_min_request_age: 1, retrieve_priority: 1, retrieve_min_request_age: 1}
  - {op: delete_mount_policy, name: mp}
  - {op: set_logical_library, name: lib, disabled: false}
  - {op: set_physical_library, name: pl, disabled: false}
  - {op: add_tape, vid: V2, tape_pool: pool, logical_library: lib, capacity_bytes: 1, data_on_tape_bytes: 0,
     last_fseq: 0, full: false, state: ACTIVE, state_reason: r, media_type: LTO8, vendor: v}
  - {op: set_tape, vid: V2, state: ACTIVE, state_reason: r, full: true, data_on_tape_bytes: 1, last_fseq: 1,
     logical_library: lib, tape_pool: pool}
  - {op: change_tape_state, vid: V1, state: ACTIVE, reason: r, mode: user, expect: {state: ACTIVE, cleanup_requested: false}}
  - {op: cleanup_queues, expect: {finalized: []}}
  - {op: set_drive, drive: d, status: Transferring, mount_type: Retrieve, vid: V1, tape_pool: pool,
     scheduler_backend: null, next_mount_type: ArchiveForUser, next_vid: V2, next_tape_pool: pool}
  - {op: set_disk_system, name: ds, free_space_bytes: 1, target_free_space_bytes: 1, sleep_time: 1}
  - {op: queue_archive, archive_file_id: 5, disk_instance: eos, disk_file_id: x, requester: {name: a, group: g},
     storage_class: sc, size: 1, created_at: -5, report_url: u, error_report_url: e, expect: {archive_file_id: 5}}
  - {op: queue_retrieve, archive_file_id: 1, disk_instance: eos, requester: {name: a, group: g}, vid: V1,
     activity: act, mount_policy: mp, dst_url: root://x, report_url: u, error_report_url: e, created_at: 3,
     verify_only: false, expect: {vid: V1}}
  - {op: cancel_archive, archive_file_id: 5}
  - {op: cancel_retrieve, archive_file_id: 1, dst_url: root://x}
  - {op: queue_repack, vid: V1, type: move_and_add_copies, mount_policy: mp, buffer_url: b, no_recall: true,
     max_files: 3, storage_class: sc, expect: {error: invalid_argument}}
  - {op: expand_repack, max_requests: 1, expect: {expanded: [V1]}}
  - {op: cancel_repack, vid: V1}
  - {op: show_repacks, expect: {repacks: [{vid: V1, status: Running, files_to_retrieve: 1, files_to_archive: 1,
     files_retrieved: 0, files_archived: 0, files_failed: 0}], subset: true}}
  - {op: next_mount, drive: d, dry_run: false, report_starting: false, expect: {mount: {type: Retrieve, vid: V1, tape_pool: pool}}}
  - {op: next_mount, drive: d, dry_run: true, expect: {would_mount: true}}
  - op: explain_mount
    drive: d
    expect:
      candidates: [{type: Retrieve, tape_pool: pool, vid: V1, priority: 1, files_queued: 1, bytes_queued: 1,
                    selected: false, skip_reason: tape_in_use}]
      rejected: [{type: ArchiveForUser, tape_pool: pool, vid: V2, reason: criteria_not_met}]
  - {op: pop_jobs, drive: d, max_files: 1, max_bytes: 1, expect: {count: 1, bytes: 1, archive_file_ids: [1]}}
  - {op: complete_jobs, drive: d, archive_file_ids: [1], outcome: failure, reason: r}
  - {op: end_mount, drive: d, expect: {requeued: 0}}
  - {op: crash_drive, drive: d}
  - {op: garbage_collect, expect: {requeued: 1}}
  - {op: report, kind: repack, max: 1, delivery: fail, expect: {reports: [{archive_file_id: 1, kind: retrieve, outcome: failure}]}}
  - {op: show_queues, expect: {queues: [{mount_type: Retrieve, tape_pool: pool, vid: V1, files_queued: 1, bytes_queued: 1,
     current_mounts: 0, oldest_job_age: 1, sleeping: false}], subset: false}}
  - {op: list_pending, kind: retrieve, tape_pool: pool, vid: V1, expect: {archive_file_ids: [1]}}
  - {op: list_failed, kind: archive, expect: {archive_file_ids: []}}
"#;

    #[test]
    fn every_op_with_every_field_deserializes() {
        let s = parse_scenario(EVERY_OP, Path::new("every-op.yaml")).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = s.steps.iter().map(|st| st.op.name()).collect();
        let mut seen: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        seen.sort();
        seen.dedup();
        let mut known = known_ops();
        known.sort();
        assert_eq!(seen, known, "the file covers every op of the schema and names match");
        assert_eq!(s.start_time(), 1000);
        assert_eq!(s.steps[0].comment.as_deref(), Some("c"));
    }
}

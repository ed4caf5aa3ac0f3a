//! Row codecs: status codes, the column lists of the job and request tables and the in-memory
//! state a transaction loads from them (`Loc`, `ArchiveState`, `RetrieveState`).

use super::*;

// --- codes ------------------------------------------------------------------------------------

pub(super) fn archive_code(s: ArchiveJobStatus) -> i16 {
    match s {
        ArchiveJobStatus::ToTransfer => 0,
        ArchiveJobStatus::ToReportForTransfer => 1,
        ArchiveJobStatus::ToReportForFailure => 2,
        ArchiveJobStatus::Complete => 3,
        ArchiveJobStatus::Failed => 4,
    }
}

pub(super) fn archive_status(c: i16) -> Result<ArchiveJobStatus, Fail> {
    Ok(match c {
        0 => ArchiveJobStatus::ToTransfer,
        1 => ArchiveJobStatus::ToReportForTransfer,
        2 => ArchiveJobStatus::ToReportForFailure,
        3 => ArchiveJobStatus::Complete,
        4 => ArchiveJobStatus::Failed,
        other => return Err(Fail::Fatal(Error::internal(format!("stored archive job status {other} is unknown")))),
    })
}

pub(super) fn retrieve_code(s: RetrieveStatus) -> i16 {
    match s {
        RetrieveStatus::ToTransfer => 0,
        RetrieveStatus::ToReportForTransfer => 1,
        RetrieveStatus::ToReportForFailure => 2,
        RetrieveStatus::Failed => 3,
    }
}

pub(super) fn retrieve_status(c: i16) -> Result<RetrieveStatus, Fail> {
    Ok(match c {
        0 => RetrieveStatus::ToTransfer,
        1 => RetrieveStatus::ToReportForTransfer,
        2 => RetrieveStatus::ToReportForFailure,
        3 => RetrieveStatus::Failed,
        other => return Err(Fail::Fatal(Error::internal(format!("stored retrieve status {other} is unknown")))),
    })
}

// --- archive request keys ----------------------------------------------------------------------

/// The key of an archive request in `archive_request.archive_file_id` and `archive_job`, as u64
/// (stored bit-cast): a user's archive file id, or `u64::MAX - subrequest_id` for a repack's
/// archive (stored as -(subrequest_id + 1): migration 8). `None` for a retrieve.
pub(super) fn archive_key(id: RequestId) -> Option<u64> {
    match id {
        RequestId::Archive(afid) => Some(afid),
        RequestId::RepackArchive(sid) => Some(u64::MAX - sid),
        RequestId::Retrieve(_) => None,
    }
}

/// The key of an archive request (see [`archive_key`]).
pub(super) fn key_of(request: &ArchiveRequest) -> u64 {
    archive_key(request.id()).expect("an archive request's id")
}

/// The request id of an archive key (the inverse of [`archive_key`]).
pub(super) fn archive_id_of_key(key: u64) -> RequestId {
    if key > i64::MAX as u64 {
        RequestId::RepackArchive(u64::MAX - key)
    } else {
        RequestId::Archive(key)
    }
}

/// The summary kind of an archive request's queues: ArchiveForUser or ArchiveForRepack.
pub(super) fn archive_kind(request: &ArchiveRequest) -> i16 {
    if request.repack.is_some() {
        KIND_REPACK
    } else {
        KIND_ARCHIVE
    }
}

pub(super) fn json_strings(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

pub(super) fn too_big(what: &str, v: u64) -> Fail {
    // Not a limit of this backend: the scheduler core refuses such values before any backend.
    Fail::Fatal(Error::internal(format!("{what} {v} passed the scheduler core's bound of 2^63-1")))
}

pub(super) fn checked_i64(what: &str, v: u64) -> Result<i64, Fail> {
    i64::try_from(v).map_err(|_| too_big(what, v))
}

/// Output names of `aj_cols!`, in order.
pub(super) const AJ_NAMES: [&str; 18] = [
    "archive_file_id",
    "copy_nb",
    "position",
    "tape_pool",
    "status",
    "queue_seq",
    "mount_id",
    "owned_op",
    "owned_rank",
    "retries_within_mount",
    "total_retries",
    "last_mount_with_failure",
    "report_retries",
    "failure_reasons",
    "written_copy_nb",
    "written_vid",
    "written_fseq",
    "written_block_id",
];

/// Output names of `ar_cols!`, in order.
pub(super) const AR_NAMES: [&str; 17] = [
    "r_afid",
    "r_disk_instance",
    "r_disk_file_id",
    "r_requester_name",
    "r_requester_group",
    "r_storage_class",
    "r_size",
    "r_created_at",
    "r_report_url",
    "r_error_report_url",
    "r_policy_name",
    "r_priority",
    "r_min_request_age",
    "r_report_decided",
    "r_copies",
    "r_file_id",
    "r_repack",
];

/// Where the columns `names` (one of the lists above) start in the rows of a result set. Found
/// by name and checked once per result set; the rows are then decoded by position (sqlx looks
/// a column name up on every access, which was a tenth of a claim's client time).
pub(super) fn columns_at(row: &PgRow, names: &[&str]) -> Result<usize, Fail> {
    let cols = row.columns();
    let base = cols
        .iter()
        .position(|c| c.name() == names[0])
        .ok_or_else(|| Error::internal(format!("result has no column {:?}", names[0])))?;
    for (i, name) in names.iter().enumerate() {
        if cols.get(base + i).map(|c| c.name()) != Some(*name) {
            return Err(Fail::Fatal(Error::internal(format!("result column {} is not {name:?}", base + i))));
        }
    }
    Ok(base)
}
// --- in-memory state of loaded rows -------------------------------------------------------------

/// Where a job is: queued, held by a mount, or neither (report, failed, complete).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Loc {
    pub(super) queue_seq: Option<i64>,
    pub(super) mount_id: Option<u64>,
    pub(super) owned_op: Option<i64>,
    pub(super) owned_rank: Option<i32>,
}

impl Loc {
    pub(super) fn held_by(&self, mount: MountId) -> bool {
        self.mount_id == Some(mount)
    }
    pub(super) fn idle() -> Loc {
        Loc::default()
    }
}

pub(super) fn loc_of(row: &PgRow) -> Result<Loc, Fail> {
    Ok(Loc {
        queue_seq: row.try_get("queue_seq")?,
        mount_id: row.try_get::<Option<i64>, _>("mount_id")?.map(|m| m as u64),
        owned_op: row.try_get("owned_op")?,
        owned_rank: row.try_get("owned_rank")?,
    })
}

/// An archive request with the location of each of its jobs.
#[derive(Debug, Clone)]
pub(super) struct ArchiveState {
    pub(super) request: ArchiveRequest,
    pub(super) locs: Vec<Loc>,
    pub(super) positions: Vec<i32>,
    pub(super) dirty_jobs: BTreeSet<usize>,
    pub(super) dirty_request: bool,
}

impl ArchiveState {
    pub(super) fn index(&self, copy_nb: u32) -> Option<usize> {
        self.request.jobs.iter().position(|j| j.copy_nb == copy_nb)
    }
    pub(super) fn facts(&self) -> JobFacts<'_> {
        archive_facts(&self.request)
    }
}

/// What a queue summary counts of an archive request's job.
pub(super) fn archive_facts(request: &ArchiveRequest) -> JobFacts<'_> {
    JobFacts {
        size: request.size,
        created_at: request.created_at,
        priority: request.policy.priority,
        min_age: request.policy.min_request_age,
        policy: &request.policy.name,
    }
}

/// The archive request of a row whose `ar_cols!` start at column `b`.
pub(super) fn archive_request_at(row: &PgRow, b: usize) -> Result<ArchiveRequest, Fail> {
    let key = row.try_get::<i64, _>(b)? as u64;
    let file_id: Option<i64> = row.try_get(b + 15)?;
    let repack: Option<Json<RepackLink>> = row.try_get(b + 16)?;
    Ok(ArchiveRequest {
        archive_file_id: file_id.map_or(key, |f| f as u64),
        disk_instance: row.try_get(b + 1)?,
        disk_file_id: row.try_get(b + 2)?,
        requester: Requester { name: row.try_get(b + 3)?, group: row.try_get(b + 4)? },
        storage_class: row.try_get(b + 5)?,
        size: row.try_get::<i64, _>(b + 6)? as u64,
        created_at: row.try_get(b + 7)?,
        report_url: row.try_get(b + 8)?,
        error_report_url: row.try_get(b + 9)?,
        policy: QueuedPolicy {
            name: row.try_get(b + 10)?,
            priority: row.try_get::<i64, _>(b + 11)? as u64,
            min_request_age: row.try_get::<i64, _>(b + 12)? as u64,
        },
        jobs: vec![],
        report_decided: row.try_get(b + 13)?,
        repack: repack.map(|j| j.0),
    })
}

/// The archive job (with its position and location) of a row whose `aj_cols!` start at `b`.
pub(super) fn archive_job_at(row: &PgRow, b: usize) -> Result<(ArchiveJob, i32, Loc), Fail> {
    let written = match row.try_get::<Option<String>, _>(b + 15)? {
        Some(vid) => Some(TapeFile {
            copy_nb: row.try_get::<Option<i32>, _>(b + 14)?.unwrap_or(0) as u32,
            vid,
            fseq: row.try_get::<Option<i64>, _>(b + 16)?.unwrap_or(0) as u64,
            block_id: row.try_get::<Option<i64>, _>(b + 17)?.unwrap_or(0) as u64,
        }),
        None => None,
    };
    let job = ArchiveJob {
        copy_nb: row.try_get::<i32, _>(b + 1)? as u32,
        tape_pool: row.try_get(b + 3)?,
        status: archive_status(row.try_get(b + 4)?)?,
        retries: RetryCounters {
            retries_within_mount: row.try_get::<i32, _>(b + 9)? as u32,
            total_retries: row.try_get::<i32, _>(b + 10)? as u32,
            last_mount_with_failure: row.try_get::<Option<i64>, _>(b + 11)?.map(|m| m as u64),
            report_retries: row.try_get::<i32, _>(b + 12)? as u32,
        },
        failure_reasons: row.try_get(b + 13)?,
        written,
    };
    let loc = Loc {
        queue_seq: row.try_get(b + 5)?,
        mount_id: row.try_get::<Option<i64>, _>(b + 6)?.map(|m| m as u64),
        owned_op: row.try_get(b + 7)?,
        owned_rank: row.try_get(b + 8)?,
    };
    Ok((job, row.try_get(b + 2)?, loc))
}

/// A retrieve request with its location.
#[derive(Debug, Clone)]
pub(super) struct RetrieveState {
    pub(super) request: RetrieveRequest,
    pub(super) loc: Loc,
    pub(super) dirty: bool,
}

impl RetrieveState {
    pub(super) fn facts(&self) -> JobFacts<'_> {
        JobFacts {
            size: self.request.size,
            created_at: self.request.created_at,
            priority: self.request.policy.priority,
            min_age: self.request.policy.min_request_age,
            policy: &self.request.policy.name,
        }
    }
}

pub(super) fn retrieve_of(row: &PgRow) -> Result<RetrieveState, Fail> {
    let copy_nbs: Vec<i32> = row.try_get("copy_nbs")?;
    let vids: Vec<String> = row.try_get("vids")?;
    let fseqs: Vec<i64> = row.try_get("fseqs")?;
    let block_ids: Vec<i64> = row.try_get("block_ids")?;
    let rwm: Vec<i32> = row.try_get("retries_within_mount")?;
    let tr: Vec<i32> = row.try_get("total_retries")?;
    let lm: Vec<Option<i64>> = row.try_get("last_mount_with_failure")?;
    let rr: Vec<i32> = row.try_get("report_retries")?;
    let n = copy_nbs.len();
    if [vids.len(), fseqs.len(), block_ids.len(), rwm.len(), tr.len(), lm.len(), rr.len()].iter().any(|l| *l != n) {
        return Err(Fail::Fatal(Error::internal("a stored retrieve request has copy arrays of different lengths")));
    }
    let copies = (0..n)
        .map(|i| RetrieveCopy {
            copy_nb: copy_nbs[i] as u32,
            vid: vids[i].clone(),
            fseq: fseqs[i] as u64,
            block_id: block_ids[i] as u64,
            retries: RetryCounters {
                retries_within_mount: rwm[i] as u32,
                total_retries: tr[i] as u32,
                last_mount_with_failure: lm[i].map(|m| m as u64),
                report_retries: rr[i] as u32,
            },
        })
        .collect();
    let request = RetrieveRequest {
        request_id: row.try_get::<i64, _>("request_id")? as u64,
        archive_file_id: row.try_get::<i64, _>("archive_file_id")? as u64,
        disk_instance: row.try_get("disk_instance")?,
        requester: Requester { name: row.try_get("requester_name")?, group: row.try_get("requester_group")? },
        size: row.try_get::<i64, _>("size")? as u64,
        dst_url: row.try_get("dst_url")?,
        report_url: row.try_get("report_url")?,
        error_report_url: row.try_get("error_report_url")?,
        created_at: row.try_get("created_at")?,
        activity: row.try_get("activity")?,
        verify_only: row.try_get("verify_only")?,
        disk_system: row.try_get("disk_system")?,
        policy: QueuedPolicy {
            name: row.try_get("policy_name")?,
            priority: row.try_get::<i64, _>("priority")? as u64,
            min_request_age: row.try_get::<i64, _>("min_request_age")? as u64,
        },
        copies,
        active_vid: row.try_get("active_vid")?,
        status: retrieve_status(row.try_get("status")?)?,
        failure_reasons: row.try_get("failure_reasons")?,
        repack: row.try_get::<Option<Json<RepackLink>>, _>("repack")?.map(|j| j.0),
    };
    Ok(RetrieveState { request, loc: loc_of(row)?, dirty: false })
}

pub(super) fn active_copy_nb(r: &RetrieveRequest) -> u32 {
    r.active_copy().map_or(0, |c| c.copy_nb)
}

pub(super) fn active_fseq(r: &RetrieveRequest) -> u64 {
    r.active_copy().map_or(0, |c| c.fseq)
}

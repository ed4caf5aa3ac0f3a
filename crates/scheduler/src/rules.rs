//! Job rules shared by every backend: batch sizes, retry limits, report retries, success
//! bookkeeping and the best-VID choice for retrieves.
//!
//! These are pure functions on request values. Backends call them inside their own atomic
//! section so the policy exists exactly once.

use std::collections::HashMap;

use crate::clock::Timestamp;
use crate::db::QueueStats;
use crate::types::*;

/// Retry limits of one kind of job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryLimits {
    /// Failures allowed within one mount before the mount stops retrying the job.
    pub max_retries_within_mount: u32,
    /// Failures allowed in total.
    pub max_total_retries: u32,
    /// Failed report deliveries allowed.
    pub max_report_retries: u32,
}

/// Archive jobs (user and repack): 2 per mount, 2 in total, 2 report retries.
pub const ARCHIVE_LIMITS: RetryLimits =
    RetryLimits { max_retries_within_mount: 2, max_total_retries: 2, max_report_retries: 2 };

/// User retrieves: 3 per mount, 6 in total, 2 report retries.
pub const USER_RETRIEVE_LIMITS: RetryLimits =
    RetryLimits { max_retries_within_mount: 3, max_total_retries: 6, max_report_retries: 2 };

/// Repack retrieves: 1 per mount, 1 in total, 2 report retries (a recall that fails once fails).
pub const REPACK_RETRIEVE_LIMITS: RetryLimits =
    RetryLimits { max_retries_within_mount: 1, max_total_retries: 1, max_report_retries: 2 };

/// The retry limits of a retrieve request: a repack's or a user's.
pub fn retrieve_limits(request: &RetrieveRequest) -> RetryLimits {
    if request.repack.is_some() {
        REPACK_RETRIEVE_LIMITS
    } else {
        USER_RETRIEVE_LIMITS
    }
}

/// How many jobs of a queue, taken in order with the given sizes, make a batch: while fewer than
/// `max_files` are taken and the next job still fits in `max_bytes`. A single first job larger
/// than the budget is taken alone, so a non-empty queue always yields at least one job (unless
/// `max_files` is 0). Bytes are added with saturation (a total at `u64::MAX` stays there).
///
/// The Postgres backend cuts the batch in its claim statement instead; a property test
/// (`tests/postgres_rules.rs`) checks that its cut equals this one.
pub fn batch_len(sizes: impl IntoIterator<Item = u64>, max_files: u64, max_bytes: u64) -> usize {
    let mut cut = BatchCut::new(max_files, max_bytes);
    sizes.into_iter().take_while(|&size| cut.admit(size)).count()
}

/// [`batch_len`] one job at a time, for a backend that scans its queue without collecting the
/// sizes first: `admit` says whether the next job still belongs to the batch; once it answers
/// `false` the batch is complete.
#[derive(Debug, Clone, Copy)]
pub struct BatchCut {
    max_files: u64,
    max_bytes: u64,
    count: u64,
    bytes: u64,
}

impl BatchCut {
    /// An empty batch with the budget `max_files`, `max_bytes`.
    pub fn new(max_files: u64, max_bytes: u64) -> Self {
        BatchCut { max_files, max_bytes, count: 0, bytes: 0 }
    }

    /// Whether the next job, of `size` bytes, is part of the batch (it is then counted).
    pub fn admit(&mut self, size: u64) -> bool {
        if self.count >= self.max_files {
            return false;
        }
        if self.count > 0 && self.bytes.saturating_add(size) > self.max_bytes {
            return false;
        }
        self.bytes = self.bytes.saturating_add(size);
        self.count += 1;
        true
    }
}

/// What happens to a job after a failed transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureOutcome {
    /// Back to the end of a transfer queue now (the same mount may take it again).
    Requeue,
    /// Kept by the mount, not handed out again by it; requeued when the mount ends.
    HoldInMount,
    /// Failed for good; the failure report is due.
    ReportFailure,
    /// Failed for good after a report was already decided: straight to the failed list.
    Failed,
}

fn count_failure(retries: &mut RetryCounters, mount: MountId) {
    if retries.last_mount_with_failure == Some(mount) {
        retries.retries_within_mount += 1;
    } else {
        retries.retries_within_mount = 1;
        retries.last_mount_with_failure = Some(mount);
    }
    retries.total_retries += 1;
}

fn decide(retries: &RetryCounters, limits: RetryLimits) -> FailureOutcome {
    if retries.total_retries >= limits.max_total_retries {
        FailureOutcome::ReportFailure
    } else if retries.retries_within_mount >= limits.max_retries_within_mount {
        FailureOutcome::HoldInMount
    } else {
        FailureOutcome::Requeue
    }
}

/// Applies a failed transfer of copy `copy_nb` in `mount` to an archive request and says where
/// the job goes. The request's job status is updated accordingly.
///
/// A repack's archive reports each copy to its repack on its own: a copy failing for good is
/// always `ReportFailure`, whatever the other copies did.
pub fn on_archive_failure(request: &mut ArchiveRequest, copy_nb: u32, mount: MountId, reason: &str) -> FailureOutcome {
    let decided = request.report_decided && request.repack.is_none();
    let Some(job) = request.job_mut(copy_nb) else { return FailureOutcome::Failed };
    count_failure(&mut job.retries, mount);
    job.failure_reasons.push(reason.to_string());
    let outcome = match decide(&job.retries, ARCHIVE_LIMITS) {
        FailureOutcome::ReportFailure if decided => FailureOutcome::Failed,
        other => other,
    };
    job.status = match outcome {
        FailureOutcome::Requeue | FailureOutcome::HoldInMount => ArchiveJobStatus::ToTransfer,
        FailureOutcome::ReportFailure => ArchiveJobStatus::ToReportForFailure,
        FailureOutcome::Failed => ArchiveJobStatus::Failed,
    };
    if outcome == FailureOutcome::ReportFailure {
        request.report_decided = true;
    }
    outcome
}

/// What happens to an archive request after one copy was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveSuccessOutcome {
    /// The last copy: the success report is due (the job carries it).
    Report,
    /// Another copy is still to transfer, or a report was already decided: nothing to report.
    Complete,
}

/// Applies a successful write of copy `copy_nb` to an archive request. A user's request reports
/// once, with its last copy; a repack's archive reports every copy to its repack.
pub fn on_archive_success(
    request: &mut ArchiveRequest,
    copy_nb: u32,
    written: Option<TapeFile>,
) -> ArchiveSuccessOutcome {
    if request.repack.is_some() {
        if let Some(job) = request.job_mut(copy_nb) {
            job.written = written;
            job.status = ArchiveJobStatus::ToReportForTransfer;
        }
        return ArchiveSuccessOutcome::Report;
    }
    let others_pending = request.jobs.iter().any(|j| j.copy_nb != copy_nb && j.status == ArchiveJobStatus::ToTransfer);
    let report = !others_pending && !request.report_decided;
    if let Some(job) = request.job_mut(copy_nb) {
        job.written = written;
        job.status = if report { ArchiveJobStatus::ToReportForTransfer } else { ArchiveJobStatus::Complete };
    }
    if report {
        request.report_decided = true;
        ArchiveSuccessOutcome::Report
    } else {
        ArchiveSuccessOutcome::Complete
    }
}

/// What happens to a retrieve request after its recall succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetrieveSuccessOutcome {
    /// The success report is due (to the disk side, or to the repack for a repack's recall).
    Report,
    /// No report is wanted (a user's retrieve without a report URL): the request is deleted.
    Delete,
}

/// Applies a successful recall to a retrieve request. A repack's recall always reports to its
/// repack; a user's retrieve without `report_url` is deleted without a report.
pub fn on_retrieve_success(request: &mut RetrieveRequest) -> RetrieveSuccessOutcome {
    if request.repack.is_none() && request.report_url.is_none() {
        return RetrieveSuccessOutcome::Delete;
    }
    request.status = RetrieveStatus::ToReportForTransfer;
    RetrieveSuccessOutcome::Report
}

/// Applies a failed recall in `mount` to a retrieve request (counters of its active copy, with
/// the limits of [`retrieve_limits`]). Verify-only requests never retry.
pub fn on_retrieve_failure(request: &mut RetrieveRequest, mount: MountId, reason: &str) -> FailureOutcome {
    request.failure_reasons.push(reason.to_string());
    let verify_only = request.verify_only;
    let limits = retrieve_limits(request);
    let outcome = match request.active_copy_mut() {
        Some(copy) => {
            count_failure(&mut copy.retries, mount);
            if verify_only {
                FailureOutcome::ReportFailure
            } else {
                decide(&copy.retries, limits)
            }
        }
        None => FailureOutcome::ReportFailure,
    };
    request.status = match outcome {
        FailureOutcome::ReportFailure => RetrieveStatus::ToReportForFailure,
        FailureOutcome::Failed => RetrieveStatus::Failed,
        _ => RetrieveStatus::ToTransfer,
    };
    outcome
}

/// Counts a failed report delivery; true when the request must move to the failed list.
pub fn on_report_failure(retries: &mut RetryCounters) -> bool {
    retries.report_retries += 1;
    retries.report_retries >= ARCHIVE_LIMITS.max_report_retries
}

/// Which tape states a retrieve may be queued on: preferred states first, fallback second.
pub fn retrieve_states(repack: bool) -> (&'static [TapeState], &'static [TapeState]) {
    if repack {
        (&[TapeState::Repacking], &[TapeState::RepackingDisabled])
    } else {
        (&[TapeState::Active], &[TapeState::Disabled])
    }
}

/// The best VID for a retrieve among `stats` (one entry per candidate VID, with its tape state):
/// preferred states over fallback ones, then most bytes queued, then highest queued priority; a
/// full tie is broken by sorting the VIDs and taking element `floor(now / 86400) mod n`.
pub fn best_vid(
    stats: &[QueueStats],
    states: &HashMap<String, TapeState>,
    repack: bool,
    now: Timestamp,
) -> Option<String> {
    let (preferred, fallback) = retrieve_states(repack);
    let pick = |allowed: &[TapeState]| -> Vec<&QueueStats> {
        stats.iter().filter(|s| states.get(&s.vid).is_some_and(|st| allowed.contains(st))).collect()
    };
    let mut pool = pick(preferred);
    if pool.is_empty() {
        pool = pick(fallback);
    }
    let best = pool.iter().map(|s| (s.bytes_queued, s.priority)).max()?;
    let mut tied: Vec<&str> =
        pool.iter().filter(|s| (s.bytes_queued, s.priority) == best).map(|s| s.vid.as_str()).collect();
    tied.sort_unstable();
    tied.dedup();
    let day = now.div_euclid(86_400) as u64;
    Some(tied[(day % tied.len() as u64) as usize].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_respects_files_and_bytes() {
        assert_eq!(batch_len([10, 10, 10], 2, 100), 2);
        assert_eq!(batch_len([10, 10, 10], 10, 25), 2);
        assert_eq!(batch_len([10, 10, 10], 10, 20), 2);
        assert_eq!(batch_len([50, 1], 10, 20), 1, "an oversize first job goes alone");
        assert_eq!(batch_len([5, 50, 1], 10, 20), 1, "stops at the first job that does not fit");
        assert_eq!(batch_len(Vec::<u64>::new(), 10, 20), 0);
        assert_eq!(batch_len([1, 1], 0, 20), 0, "no file allowed, no job");
        assert_eq!(batch_len([u64::MAX, u64::MAX, 0], 10, u64::MAX), 3, "byte totals saturate");
        assert_eq!(batch_len([0, 0, 0, 5], 10, 0), 3, "empty files fit a zero budget");
    }

    fn stats(vid: &str, bytes: u64, prio: u64) -> QueueStats {
        QueueStats { vid: vid.into(), files_queued: 1, bytes_queued: bytes, priority: prio }
    }

    #[test]
    fn best_vid_prefers_active_then_bytes_then_day() {
        let states: HashMap<String, TapeState> = [
            ("A".to_string(), TapeState::Active),
            ("B".to_string(), TapeState::Active),
            ("D".to_string(), TapeState::Disabled),
        ]
        .into();
        let all = [stats("A", 10, 1), stats("B", 20, 1), stats("D", 99, 9)];
        assert_eq!(best_vid(&all, &states, false, 0).as_deref(), Some("B"));
        let tie = [stats("A", 10, 1), stats("B", 10, 1)];
        assert_eq!(best_vid(&tie, &states, false, 0).as_deref(), Some("A"));
        assert_eq!(best_vid(&tie, &states, false, 86_400).as_deref(), Some("B"));
        assert_eq!(best_vid(&[stats("D", 0, 0)], &states, false, 0).as_deref(), Some("D"));
        assert_eq!(best_vid(&[stats("X", 0, 0)], &states, false, 0), None);
    }

    fn archive_request(copies: u32) -> ArchiveRequest {
        ArchiveRequest {
            archive_file_id: 1,
            disk_instance: "eos".into(),
            disk_file_id: "1".into(),
            requester: Requester { name: "u".into(), group: "g".into() },
            storage_class: "sc".into(),
            size: 1,
            created_at: 0,
            report_url: None,
            error_report_url: None,
            policy: QueuedPolicy { name: "p".into(), priority: 1, min_request_age: 0 },
            jobs: (1..=copies).map(|c| ArchiveJob::new(c, format!("pool{c}"))).collect(),
            report_decided: false,
            repack: None,
        }
    }

    #[test]
    fn archive_second_failure_reports_and_later_copies_fail() {
        let mut r = archive_request(2);
        assert_eq!(on_archive_failure(&mut r, 1, 7, "x"), FailureOutcome::Requeue);
        assert_eq!(on_archive_failure(&mut r, 1, 7, "x"), FailureOutcome::ReportFailure);
        assert_eq!(on_archive_failure(&mut r, 2, 8, "x"), FailureOutcome::Requeue);
        assert_eq!(on_archive_failure(&mut r, 2, 9, "x"), FailureOutcome::Failed);
    }

    #[test]
    fn only_last_copy_reports_success() {
        let mut r = archive_request(2);
        assert_eq!(on_archive_success(&mut r, 1, None), ArchiveSuccessOutcome::Complete);
        assert_eq!(on_archive_success(&mut r, 2, None), ArchiveSuccessOutcome::Report);
    }
}

//! The disk side of a simulated run: delivers the due reports in-process and counts them, and
//! queues the retrieve of each file whose archive was reported (`[workload] retrieve = true`).
//! It stands in for the maintenance daemon and the disk system in `taped --simulate-for` and in
//! the tests; it is no part of a tape server.

use std::collections::BTreeSet;

use tapesched_scheduler::db::{JobKind, Outcome, ReportFilter, ReportJob};
use tapesched_scheduler::scheduler::{RetrieveSubmission, Scheduler};
use tapesched_scheduler::types::Requester;
use tapesched_scheduler::Result;

/// What the disk side saw of a simulated run.
#[derive(Debug, Default)]
pub struct DiskSide {
    /// Queue a retrieve of every file whose archive success is reported.
    pub retrieve: bool,
    /// Archive files whose archive success was reported.
    pub archived: BTreeSet<u64>,
    /// Archive files whose retrieve success was reported.
    pub retrieved: BTreeSet<u64>,
    /// Success reports received a second time for the same file and kind.
    pub duplicates: u64,
    /// Failure reports.
    pub failures: Vec<ReportJob>,
    /// Retrieves queued.
    pub retrieves_queued: u64,
}

impl DiskSide {
    /// A disk side that retrieves every archived file once when `retrieve`.
    pub fn new(retrieve: bool) -> Self {
        DiskSide { retrieve, ..DiskSide::default() }
    }

    /// Delivers every due report and reacts to them; returns how many were delivered.
    pub async fn pump(&mut self, scheduler: &Scheduler) -> Result<usize> {
        let reports = scheduler.report(ReportFilter::All, None, true).await?;
        for r in &reports {
            match (r.kind(), r.outcome) {
                (JobKind::Archive, Outcome::Success) => {
                    if !self.archived.insert(r.archive_file_id) {
                        self.duplicates += 1;
                    } else if self.retrieve {
                        scheduler.queue_retrieve(retrieve_of(r.archive_file_id)).await?;
                        self.retrieves_queued += 1;
                    }
                }
                (JobKind::Retrieve, Outcome::Success) => {
                    if !self.retrieved.insert(r.archive_file_id) {
                        self.duplicates += 1;
                    }
                }
                _ => self.failures.push(r.clone()),
            }
        }
        Ok(reports.len())
    }
}

/// The retrieve a simulated disk side asks for: to `file:///var/tmp/taped-sim/<id>` (never
/// written in `sizes` mode), with a success report.
pub fn retrieve_of(archive_file_id: u64) -> RetrieveSubmission {
    RetrieveSubmission {
        archive_file_id,
        requester: Some(Requester { name: "taped-sim".into(), group: "sim".into() }),
        dst_url: Some(format!("file:///var/tmp/taped-sim/{archive_file_id}")),
        report_url: Some("file:///dev/null".into()),
        ..RetrieveSubmission::default()
    }
}

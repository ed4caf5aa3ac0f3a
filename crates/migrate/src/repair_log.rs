//! Repair of what the stored divergences name.
//!
//! A divergence names what its operation concerned ([`Concern`]); each such concern maps to the
//! state items it may have left different on the two sides ([`keys_of`]): a request (or a job:
//! its request) to its request's key, a mount, a repack, a retrieve queue's markers (a queue
//! concern, by VID), a user archive request by its archive file. A drive or a library names
//! nothing that can be repaired, and a divergence naming only such things is marked repaired
//! with a note saying so. [`repair_divergences`] reads the named items again on both sides (at
//! once), makes the non-authoritative side equal to the authoritative one for those that still
//! differ ([`crate::verify::repair`]: imports what the authoritative side has, deletes what it
//! lacks), then marks the divergences repaired.

use std::collections::BTreeSet;

use tapesched_bridge::{Concern, Divergence};
use tapesched_scheduler::clock::Timestamp;
use tapesched_scheduler::db::SchedulerDb;
use tapesched_scheduler::state::StateKey;
use tapesched_scheduler::Result;

use crate::record::Record;
use crate::record_log::DivergenceQuery;
use crate::verify::{recheck, repair, RepairReport};

/// The state keys a divergence's concerns name, and the concerns that name none.
pub fn keys_of(d: &Divergence) -> (Vec<StateKey>, Vec<String>) {
    let (mut keys, mut none) = (Vec::new(), Vec::new());
    for c in &d.concerns {
        match c {
            Concern::Request(id) => keys.push(StateKey::of_request(*id)),
            Concern::Job(j) => keys.push(StateKey::of_request(j.request)),
            Concern::Mount(m) => keys.push(StateKey::Mount(*m)),
            Concern::Repack(vid) => keys.push(StateKey::Repack(vid.clone())),
            Concern::Queue(vid) => keys.push(StateKey::Marker(vid.clone())),
            Concern::ArchiveFile(id) => keys.push(StateKey::Archive(*id)),
            Concern::Drive(_) | Concern::Library(_) => none.push(c.to_string()),
        }
    }
    (keys, none)
}

/// What [`repair_divergences`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DivergenceRepairReport {
    /// Unrepaired divergences read.
    pub divergences: u64,
    /// Distinct state keys they named.
    pub keys: u64,
    /// Keys that still differed when read again (and were repaired).
    pub differing: u64,
    /// What the repair wrote and deleted.
    pub repair: RepairReport,
    /// Divergences that named nothing repairable (marked with why).
    pub unrepairable: u64,
}

/// Repairs what the unrepaired divergences stored up to now name (see the module
/// documentation), `page` divergences at a time, and marks them repaired.
pub async fn repair_divergences(
    record: &Record,
    authoritative: &dyn SchedulerDb,
    other: &dyn SchedulerDb,
    now: Timestamp,
    page: usize,
) -> Result<DivergenceRepairReport> {
    let mut report = DivergenceRepairReport::default();
    // Divergences stored while this runs wait for the next repair.
    let newest = DivergenceQuery { newest_first: true, limit: 1, ..DivergenceQuery::default() };
    let Some(last) = record.divergences(&newest).await?.first().map(|d| d.id) else { return Ok(report) };
    let mut after = None;
    loop {
        let q = DivergenceQuery { unrepaired: true, limit: page.max(1), after_id: after, ..DivergenceQuery::default() };
        let batch: Vec<_> = record.divergences(&q).await?.into_iter().filter(|s| s.id <= last).collect();
        let Some(end) = batch.last().map(|s| s.id) else { break };
        after = Some(end);
        let mut keys = BTreeSet::new();
        let mut repairable = Vec::new();
        for s in &batch {
            report.divergences += 1;
            let (named, none) = keys_of(&s.divergence);
            if named.is_empty() {
                report.unrepairable += 1;
                let why = if none.is_empty() {
                    "names nothing (an operation without concerns): run a full `migrate verify`".to_string()
                } else {
                    format!("names nothing repairable ({}): run a full `migrate verify`", none.join(", "))
                };
                record.mark_repaired(&[s.id], Some(&why)).await?;
            } else {
                keys.extend(named);
                repairable.push(s.id);
            }
        }
        report.keys += keys.len() as u64;
        // Read again on both sides right before writing: only what still differs is written.
        let differing: Vec<StateKey> =
            recheck(authoritative, other, keys.into_iter().collect()).await?.into_iter().map(|d| d.key).collect();
        report.differing += differing.len() as u64;
        let done = repair(authoritative, other, &differing, now).await?;
        report.repair.written += done.written;
        report.repair.deleted += done.deleted;
        record.mark_repaired(&repairable, None).await?;
        if batch.len() < page.max(1) {
            break;
        }
    }
    Ok(report)
}

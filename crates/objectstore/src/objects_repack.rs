//! Stored objects of repack: the index of repack requests, a repack request with its committed
//! passes and applied report batches, the subrequest list of an expansion pass, the journal of a
//! processed batch of repack reports; and their names.

use serde::{Deserialize, Serialize};

use super::{escape, write_stamp, Kind, Stored};

/// Name of a repack's archive request (by the subrequest it was made from).
pub fn repack_archive_request_name(subrequest_id: u64) -> String {
    format!("RepackArchiveRequest-{subrequest_id}")
}

/// First characters of the name of every [`RepackPass`] object.
pub const REPACK_PASS_PREFIX: &str = "RepackPass-";
/// First characters of the name of every [`RepackBatchJournal`] object.
pub const REPACK_BATCH_PREFIX: &str = "RepackBatch-";

/// Name of the index of repack requests.
pub const REPACK_INDEX: &str = "RepackIndex";

/// Name of the repack request of `vid`.
pub fn repack_name(vid: &str) -> String {
    format!("RepackRequest-{}", escape(vid))
}

/// Name of the pass index `token` of the repack of `vid`.
pub fn repack_pass_name(vid: &str, token: u64) -> String {
    format!("RepackPass-{}-{token:016x}", escape(vid))
}

/// Name of the journal of a batch of processed repack reports.
pub fn repack_batch_name(token: u64) -> String {
    format!("RepackBatch-{token:016x}")
}

/// A token unique to one expansion pass or one batch of repack reports (random per process,
/// then counted).
pub fn unique_token() -> u64 {
    write_stamp()
}

/// The index of repack requests: the VIDs that have one (a VID listed without its object is
/// skipped: a creation cut short).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RepackIndex {
    /// VIDs, in the order they were queued.
    pub vids: Vec<String>,
}
impl Stored for RepackIndex {
    const KIND: Kind = Kind::RepackIndex;
}

/// A repack request as stored, with what the backend needs to make its changes crash-safe.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredRepack {
    /// The request.
    pub request: tapesched_scheduler::repack::RepackRequest,
    /// Tokens of the committed expansion passes, in order: each names a [`RepackPass`] object
    /// listing its subrequests, and a subrequest whose pass is not listed here was never
    /// committed.
    pub passes: Vec<u64>,
    /// Tokens of the last batches of repack reports applied to the counters, so that a batch
    /// finished again after a crash is not counted twice (the newest [`REPACK_APPLIED_KEPT`]).
    pub applied: Vec<u64>,
}
impl Stored for StoredRepack {
    const KIND: Kind = Kind::RepackRequest;
}

/// How many applied batch tokens a repack keeps: a batch journal is finished by its own process
/// or by the collector long before this many later batches were applied.
pub const REPACK_APPLIED_KEPT: usize = 256;

/// The subrequests of one expansion pass of a repack.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RepackPass {
    /// The pass's token.
    pub token: u64,
    /// The repacked VID.
    pub vid: String,
    /// Subrequest ids (a retrieve request, or later the repack archive request made from it).
    pub subrequests: Vec<u64>,
}
impl Stored for RepackPass {
    const KIND: Kind = Kind::RepackPass;
}

/// A batch of processed repack reports, written before any of it is applied: whoever finds it
/// (its process, or the collector of that process's agent) applies the rest of it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RepackBatchJournal {
    /// The batch's token (also recorded by each repack it updated).
    pub token: u64,
    /// The batch.
    pub batch: tapesched_scheduler::repack::RepackReportBatch,
}
impl Stored for RepackBatchJournal {
    const KIND: Kind = Kind::RepackBatch;
}

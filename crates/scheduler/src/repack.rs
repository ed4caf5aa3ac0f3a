//! Repack: moving a tape's files to other tapes, or adding their missing copies.
//!
//! A [`RepackRequest`] names the tape and what to do; expansion turns the tape's files into retrieve
//! *subrequests* (ordinary [`RetrieveRequest`]s carrying a [`RepackLink`]) that recall each file into
//! a disk buffer; a processed recall becomes an archive request (an [`ArchiveRequest`] with the same
//! link, queued as `ArchiveForRepack`) that writes the copies. Counters in the request follow every
//! subrequest to its end, and [`RepackRequest::recompute_status`] derives the status from them.
//!
//! Everything here is pure: what a file needs ([`plan_file`]), how counters move
//! ([`RepackUpdate::apply`]) and when a repack is over. Backends store the values and apply updates
//! inside their own atomic section; the workflow itself is in `scheduler/repack_flow.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::catalogue::CatalogueSnapshot;
use crate::clock::Timestamp;
use crate::error::{Error, Result};
use crate::types::string_enum;
use crate::types::*;

string_enum!(
    /// What a repack does with the tape's files.
    RepackType {
        /// Re-archive every copy living on the tape (the tape is emptied).
        Move = "move",
        /// Only write the copies the storage class wants and the file lacks.
        AddCopies = "add_copies",
        /// Both.
        MoveAndAddCopies = "move_and_add_copies",
    }
);

impl RepackType {
    /// Whether the copies on the tape are re-archived.
    pub fn moves(self) -> bool {
        matches!(self, RepackType::Move | RepackType::MoveAndAddCopies)
    }
    /// Whether missing copies are added.
    pub fn adds_copies(self) -> bool {
        matches!(self, RepackType::AddCopies | RepackType::MoveAndAddCopies)
    }
}

string_enum!(
    /// Where a repack request stands.
    RepackStatus {
        /// Queued, waiting for promotion.
        Pending = "Pending",
        /// Promoted, waiting for its expansion to start.
        ToExpand = "ToExpand",
        /// Expansion started; no subrequest has ended yet.
        Starting = "Starting",
        /// Subrequests are ending.
        Running = "Running",
        /// Every file accounted for, none failed.
        Complete = "Complete",
        /// Every file accounted for, some failed (or the expansion itself failed).
        Failed = "Failed",
    }
);

impl RepackStatus {
    /// Complete or Failed: the status no longer changes.
    pub fn is_final(self) -> bool {
        matches!(self, RepackStatus::Complete | RepackStatus::Failed)
    }
}

/// A copy to write: copy number and destination pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyRoute {
    /// Copy number.
    pub copy_nb: u32,
    /// Destination pool (a REPACK route where one exists, else the DEFAULT route).
    pub tape_pool: String,
}

/// What ties a subrequest (a retrieve, later the archive made from it) to its repack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepackLink {
    /// The tape being repacked (the repack request's key).
    pub vid: String,
    /// The subrequest's id: the retrieve's request id, kept by the archive made from it.
    pub subrequest_id: u64,
    /// The file's fSeq on the repacked tape.
    pub fseq: u64,
    /// The file's disk file id.
    pub disk_file_id: String,
    /// The file's storage class.
    pub storage_class: String,
    /// The file in the repack buffer (`<buffer>/<vid>/<fseq, 9 digits>`).
    pub buffer_file: String,
    /// The copies to write once the file is in the buffer.
    pub archive_copies: Vec<CopyRoute>,
    /// The file was already in the buffer (provided by an operator): nothing was recalled.
    pub user_provided: bool,
}

/// Files and bytes counted by a repack. Every field only grows; [`RepackUpdate`] adds to them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepackCounters {
    /// Files of the tape seen by the expansion so far.
    pub files_on_tape: u64,
    /// Their bytes.
    pub bytes_on_tape: u64,
    /// Files selected: one retrieve subrequest each.
    pub files_to_retrieve: u64,
    /// Their bytes.
    pub bytes_to_retrieve: u64,
    /// Copies to write (a file needing two copies counts twice).
    pub files_to_archive: u64,
    /// Their bytes.
    pub bytes_to_archive: u64,
    /// Selected files that were already in the buffer (counted in `files_to_retrieve` too).
    pub user_provided_files: u64,
    /// Their bytes.
    pub user_provided_bytes: u64,
    /// Retrieve subrequests ended with the file in the buffer.
    pub files_retrieved: u64,
    /// Their bytes.
    pub bytes_retrieved: u64,
    /// Retrieve subrequests failed for good.
    pub files_failed_retrieve: u64,
    /// Their bytes.
    pub bytes_failed_retrieve: u64,
    /// Copies written.
    pub files_archived: u64,
    /// Their bytes.
    pub bytes_archived: u64,
    /// Copies failed for good.
    pub files_failed_archive: u64,
    /// Their bytes.
    pub bytes_failed_archive: u64,
    /// Copies never attempted because their recall failed.
    pub archives_abandoned: u64,
}

impl RepackCounters {
    /// Adds `other` field by field (saturating: counters never wrap).
    pub fn add(&mut self, o: &RepackCounters) {
        macro_rules! add {
            ($($f:ident),*) => { $( self.$f = self.$f.saturating_add(o.$f); )* };
        }
        add!(
            files_on_tape,
            bytes_on_tape,
            files_to_retrieve,
            bytes_to_retrieve,
            files_to_archive,
            bytes_to_archive,
            user_provided_files,
            user_provided_bytes,
            files_retrieved,
            bytes_retrieved,
            files_failed_retrieve,
            bytes_failed_retrieve,
            files_archived,
            bytes_archived,
            files_failed_archive,
            bytes_failed_archive,
            archives_abandoned
        );
    }
    /// Files failed for good, retrieves and copies together (what `show_repacks` calls failed).
    pub fn files_failed(&self) -> u64 {
        self.files_failed_retrieve.saturating_add(self.files_failed_archive)
    }
}

/// A repack request. Its identity is the VID: at most one repack per tape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepackRequest {
    /// The tape.
    pub vid: String,
    /// Queue order (promotion is first in, first out): an id from the catalogue's request ids.
    pub seq: u64,
    /// What to do.
    pub repack_type: RepackType,
    /// Mount policy name; its values at queueing time are kept below.
    pub mount_policy: String,
    /// Archive priority and age of the policy, for the re-archives.
    pub archive_policy: QueuedPolicy,
    /// Retrieve priority and age of the policy, for the recalls.
    pub retrieve_policy: QueuedPolicy,
    /// Base URL of the disk buffer; the tape's files go to `<buffer_url>/<vid>/`.
    pub buffer_url: String,
    /// Recall nothing: only files already in the buffer are archived.
    pub no_recall: bool,
    /// Select at most this many files (`None`: all).
    pub max_files: Option<u64>,
    /// Select only files of this storage class.
    pub storage_class: Option<String>,
    /// Status.
    pub status: RepackStatus,
    /// Creation time.
    pub created_at: Timestamp,
    /// Expansion has started.
    pub expansion_started: bool,
    /// Expansion has gone through the whole tape (or reached `max_files`).
    pub expansion_done: bool,
    /// The highest fSeq expansion has gone past: the next pass starts after it.
    pub last_expanded_fseq: u64,
    /// Every file seen so far was selected.
    pub all_files_selected: bool,
    /// Counters.
    pub counters: RepackCounters,
    /// Why the repack failed, when it failed outside its subrequests (expansion).
    pub failure: Option<String>,
}

impl RepackRequest {
    /// A Pending request of `repack_type` for `vid`, with `policy`'s values, created at `now`,
    /// selecting every file (callers set `no_recall`, `max_files`, `storage_class`).
    pub fn new(
        vid: &str,
        seq: u64,
        repack_type: RepackType,
        policy: &MountPolicy,
        buffer_url: &str,
        now: Timestamp,
    ) -> Self {
        let queued = |priority, min_request_age| QueuedPolicy { name: policy.name.clone(), priority, min_request_age };
        RepackRequest {
            vid: vid.to_string(),
            seq,
            repack_type,
            mount_policy: policy.name.clone(),
            archive_policy: queued(policy.archive_priority, policy.archive_min_request_age),
            retrieve_policy: queued(policy.retrieve_priority, policy.retrieve_min_request_age),
            buffer_url: buffer_url.to_string(),
            no_recall: false,
            max_files: None,
            storage_class: None,
            status: RepackStatus::Pending,
            created_at: now,
            expansion_started: false,
            expansion_done: false,
            last_expanded_fseq: 0,
            all_files_selected: true,
            counters: RepackCounters::default(),
            failure: None,
        }
    }

    /// The buffer folder of the tape: `<buffer_url>/<vid>/`.
    pub fn buffer_dir(&self) -> String {
        buffer_dir(&self.buffer_url, &self.vid)
    }

    /// The status the counters say, for a request whose expansion started. A final status stays.
    /// Complete or Failed once expansion is done and every selected file and every copy is
    /// accounted for (Failed if any failed); else Running once anything ended; else Starting.
    pub fn recompute_status(&mut self) {
        if self.status.is_final() || !self.expansion_started {
            return;
        }
        let c = &self.counters;
        let retrieves_done = c.files_retrieved.saturating_add(c.files_failed_retrieve) >= c.files_to_retrieve;
        let archives_done =
            c.files_archived.saturating_add(c.files_failed_archive).saturating_add(c.archives_abandoned)
                >= c.files_to_archive;
        let failed = c.files_failed() > 0;
        self.status = if self.expansion_done && retrieves_done && archives_done {
            if failed {
                RepackStatus::Failed
            } else {
                RepackStatus::Complete
            }
        } else if c.files_retrieved > 0 || c.files_archived > 0 || failed {
            RepackStatus::Running
        } else {
            RepackStatus::Starting
        };
    }
}

/// The buffer folder of `vid` under `buffer_url`.
pub fn buffer_dir(buffer_url: &str, vid: &str) -> String {
    format!("{}/{vid}/", buffer_url.trim_end_matches('/'))
}

/// The buffer file of fSeq `fseq`: the fSeq zero-padded to 9 digits, in the tape's folder.
pub fn buffer_file(buffer_url: &str, vid: &str, fseq: u64) -> String {
    format!("{}{fseq:09}", buffer_dir(buffer_url, vid))
}

/// A change to a repack request, applied atomically by a backend with [`RepackUpdate::apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepackUpdate {
    /// Refuse (`conflict`) unless the request is in this status: two maintenance processes
    /// promoting or expanding the same request, one loses.
    pub expected_status: Option<RepackStatus>,
    /// Set this status (before counters are looked at).
    pub status: Option<RepackStatus>,
    /// Mark expansion started.
    pub expansion_started: bool,
    /// Mark expansion done.
    pub expansion_done: bool,
    /// New expansion cursor (kept if lower than the current one).
    pub last_expanded_fseq: Option<u64>,
    /// A file was passed over by the selection.
    pub some_file_skipped: bool,
    /// Counters to add.
    pub counters: RepackCounters,
    /// Fail the repack with this reason.
    pub failure: Option<String>,
    /// Refuse (`conflict`) unless the request's cursor is still here: an expansion pass is
    /// planned from the cursor it read, and a second process that planned the same pass loses
    /// instead of queueing the same files again.
    pub expected_last_expanded_fseq: Option<u64>,
}

impl RepackUpdate {
    /// Applies the update and recomputes the status (a final status stays, except that a
    /// failure reason fails a request that has not ended). `conflict`, changing nothing, when the
    /// request is not in `expected_status`.
    pub fn apply(&self, r: &mut RepackRequest) -> Result<()> {
        if let Some(e) = self.expected_status {
            if r.status != e {
                return Err(Error::conflict(format!(
                    "repack of {:?} is {}, not {e}: another process changed it",
                    r.vid, r.status
                )));
            }
        }
        if let Some(e) = self.expected_last_expanded_fseq {
            if r.last_expanded_fseq != e {
                return Err(Error::conflict(format!(
                    "repack of {:?} was expanded past fSeq {e} (to {}) by another process",
                    r.vid, r.last_expanded_fseq
                )));
            }
        }
        if let Some(s) = self.status {
            if !r.status.is_final() {
                r.status = s;
            }
        }
        r.expansion_started |= self.expansion_started;
        r.expansion_done |= self.expansion_done;
        if let Some(f) = self.last_expanded_fseq {
            r.last_expanded_fseq = r.last_expanded_fseq.max(f);
        }
        if self.some_file_skipped {
            r.all_files_selected = false;
        }
        r.counters.add(&self.counters);
        if let Some(why) = &self.failure {
            if !r.status.is_final() {
                r.failure = Some(why.clone());
                r.status = RepackStatus::Failed;
            }
        }
        r.recompute_status();
        Ok(())
    }

    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == RepackUpdate::default()
    }
}

/// A repack subrequest whose outcome is due to its repack (a recall ended, a copy ended).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RepackReport {
    /// A retrieve subrequest: recalled (or provided by an operator), or failed for good.
    Retrieve(RetrieveRequest),
    /// A repack archive request with at least one job written or failed for good.
    Archive(ArchiveRequest),
}

impl RepackReport {
    /// The canonical order of repack reports: archive file id, kind, request id.
    pub fn order_key(&self) -> (u64, crate::db::JobKind, RequestId) {
        match self {
            RepackReport::Retrieve(r) => crate::db::ReportJob::order_of(r.archive_file_id, r.id()),
            RepackReport::Archive(a) => crate::db::ReportJob::order_of(a.archive_file_id, a.id()),
        }
    }
}

/// What processing a batch of repack reports changes, applied by a backend all or nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepackReportBatch {
    /// Retrieve subrequests accounted for: deleted.
    pub retrieves: Vec<u64>,
    /// Archive requests made from recalled files: stored and queued in their pools'
    /// ArchiveForRepack queues (one already stored under the same id is left as it is).
    pub archives: Vec<ArchiveRequest>,
    /// Archive jobs accounted for: a written job becomes Complete, a failed one Failed; a request
    /// with no job left to transfer or to account for is deleted.
    pub archive_jobs: Vec<JobId>,
    /// Counter changes, per repack VID (a repack that no longer exists is skipped).
    pub updates: Vec<(String, RepackUpdate)>,
}

impl RepackReportBatch {
    /// Whether the batch changes nothing.
    pub fn is_empty(&self) -> bool {
        self.retrieves.is_empty() && self.archives.is_empty() && self.archive_jobs.is_empty() && self.updates.is_empty()
    }
}

/// Whether an archive job counts as ended for its repack (written or failed, and accounted for).
pub fn archive_job_ended(status: ArchiveJobStatus) -> bool {
    matches!(status, ArchiveJobStatus::Complete | ArchiveJobStatus::Failed)
}

// --- planning ------------------------------------------------------------------------------------

/// The archive route of copy `copy_nb` of `storage_class` for repack: the REPACK route where one
/// exists, else the DEFAULT one.
pub fn repack_route(cat: &CatalogueSnapshot, storage_class: &str, copy_nb: u32) -> Option<String> {
    let find = |t: ArchiveRouteType| {
        cat.archive_routes
            .iter()
            .find(|r| r.storage_class == storage_class && r.copy_nb == copy_nb && r.route_type == t)
            .map(|r| r.tape_pool.clone())
    };
    find(ArchiveRouteType::Repack).or_else(|| find(ArchiveRouteType::Default))
}

/// Checks, before anything is queued, that every (storage class, copy number) living on the tape
/// has the routes a repack of type `t` needs: the copy's own route to move it, and routes for
/// every copy of the class to add missing ones. `invalid_argument` naming the class and copy.
pub fn check_routes(cat: &CatalogueSnapshot, t: RepackType, classes_on_tape: &[(String, u32)]) -> Result<()> {
    let mut classes: BTreeSet<&str> = BTreeSet::new();
    for (sc, copy_nb) in classes_on_tape {
        classes.insert(sc);
        if t.moves() && repack_route(cat, sc, *copy_nb).is_none() {
            return Err(Error::invalid(format!(
                "storage class {sc:?} has no archive route for copy {copy_nb}: the files of this copy cannot be moved"
            )));
        }
    }
    if t.adds_copies() {
        for sc in classes {
            let Some(class) = cat.storage_classes.get(sc) else {
                return Err(Error::invalid(format!("storage class {sc:?} does not exist")));
            };
            for copy_nb in 1..=class.nb_copies {
                if repack_route(cat, sc, copy_nb).is_none() {
                    return Err(Error::invalid(format!(
                        "storage class {sc:?} wants {} copies but has no archive route for copy {copy_nb}",
                        class.nb_copies
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The copies a repack of type `t` writes for `file` (whose copy on the repacked tape is `vid`):
/// its copies on the tape (moves) and the copies its class wants and it lacks (adds), in copy
/// order. Empty: the file needs nothing (an add-copies repack of a complete file). An error when
/// a route is missing (the routes changed since the repack was queued).
pub fn plan_file(cat: &CatalogueSnapshot, t: RepackType, vid: &str, file: &ArchiveFile) -> Result<Vec<CopyRoute>> {
    let mut out: BTreeMap<u32, String> = BTreeMap::new();
    let route = |copy_nb: u32| {
        repack_route(cat, &file.storage_class, copy_nb).ok_or_else(|| {
            Error::invalid(format!(
                "storage class {:?} has no archive route for copy {copy_nb} (archive file {})",
                file.storage_class, file.archive_file_id
            ))
        })
    };
    if t.moves() {
        for c in file.copies.iter().filter(|c| c.vid == vid) {
            out.insert(c.copy_nb, route(c.copy_nb)?);
        }
    }
    if t.adds_copies() {
        let wanted = cat.storage_classes.get(&file.storage_class).map_or(0, |s| s.nb_copies);
        for copy_nb in 1..=wanted {
            if !file.copies.iter().any(|c| c.copy_nb == copy_nb) {
                out.insert(copy_nb, route(copy_nb)?);
            }
        }
    }
    Ok(out.into_iter().map(|(copy_nb, tape_pool)| CopyRoute { copy_nb, tape_pool }).collect())
}

// --- the buffer ----------------------------------------------------------------------------------

/// The disk buffer repacked files pass through. Repack only needs to know which files are there
/// (and their sizes), to create the tape's folder and to remove a file once its copies are
/// written; the data itself is moved by the tape daemon.
#[async_trait]
pub trait RepackBuffer: Send + Sync {
    /// Whether the folder `dir` exists.
    async fn dir_exists(&self, dir: &str) -> Result<bool>;
    /// Creates the folder `dir` (no error if it exists).
    async fn create_dir(&self, dir: &str) -> Result<()>;
    /// The sizes of the named files of folder `dir` (`None` for a missing file), in order.
    async fn sizes(&self, dir: &str, names: &[String]) -> Result<Vec<Option<u64>>>;
    /// Writes (or replaces) the file `url` of `size` bytes; its folder must exist.
    async fn put(&self, url: &str, size: u64) -> Result<()>;
    /// Removes the file `url` (no error if it is missing).
    async fn remove(&self, url: &str) -> Result<()>;
}

/// A buffer in process memory: scenarios and tests (a folder is the text up to its last `/`).
#[derive(Debug, Default)]
pub struct MemoryBuffer {
    dirs: Mutex<BTreeMap<String, BTreeMap<String, u64>>>,
}

fn split(url: &str) -> (&str, &str) {
    match url.rfind('/') {
        Some(i) => (&url[..=i], &url[i + 1..]),
        None => ("", url),
    }
}

impl MemoryBuffer {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeMap<String, u64>>> {
        self.dirs.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Every file, `(url, size)`, sorted (for tests).
    pub fn files(&self) -> Vec<(String, u64)> {
        self.lock().iter().flat_map(|(d, f)| f.iter().map(move |(n, s)| (format!("{d}{n}"), *s))).collect()
    }
}

#[async_trait]
impl RepackBuffer for MemoryBuffer {
    async fn dir_exists(&self, dir: &str) -> Result<bool> {
        Ok(self.lock().contains_key(dir))
    }
    async fn create_dir(&self, dir: &str) -> Result<()> {
        self.lock().entry(dir.to_string()).or_default();
        Ok(())
    }
    async fn sizes(&self, dir: &str, names: &[String]) -> Result<Vec<Option<u64>>> {
        let dirs = self.lock();
        let files = dirs.get(dir);
        Ok(names.iter().map(|n| files.and_then(|f| f.get(n).copied())).collect())
    }
    async fn put(&self, url: &str, size: u64) -> Result<()> {
        let (dir, name) = split(url);
        let mut dirs = self.lock();
        let files =
            dirs.get_mut(dir).ok_or_else(|| Error::not_found(format!("buffer folder {dir:?} does not exist")))?;
        files.insert(name.to_string(), size);
        Ok(())
    }
    async fn remove(&self, url: &str) -> Result<()> {
        let (dir, name) = split(url);
        if let Some(files) = self.lock().get_mut(dir) {
            files.remove(name);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RepackRequest {
        let policy = MountPolicy {
            name: "mp".into(),
            archive_priority: 1,
            archive_min_request_age: 0,
            retrieve_priority: 1,
            retrieve_min_request_age: 0,
        };
        RepackRequest::new("V1", 1, RepackType::Move, &policy, "file:///b/", 0)
    }

    #[test]
    fn status_follows_the_counters() {
        let mut r = request();
        let start = RepackUpdate {
            status: Some(RepackStatus::Starting),
            expansion_started: true,
            counters: RepackCounters { files_to_retrieve: 2, files_to_archive: 3, ..Default::default() },
            ..Default::default()
        };
        start.apply(&mut r).unwrap();
        assert_eq!(r.status, RepackStatus::Starting);
        RepackUpdate { expansion_done: true, ..Default::default() }.apply(&mut r).unwrap();
        assert_eq!(r.status, RepackStatus::Starting);
        let one = RepackUpdate {
            counters: RepackCounters { files_retrieved: 1, ..Default::default() },
            ..Default::default()
        };
        one.apply(&mut r).unwrap();
        assert_eq!(r.status, RepackStatus::Running);
        // The second recall fails: its two copies are abandoned; one copy of the first is written.
        RepackUpdate {
            counters: RepackCounters {
                files_failed_retrieve: 1,
                archives_abandoned: 2,
                files_archived: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .apply(&mut r)
        .unwrap();
        assert_eq!(r.status, RepackStatus::Failed);
        // Final: nothing moves it.
        one.apply(&mut r).unwrap();
        assert_eq!(r.status, RepackStatus::Failed);
    }

    #[test]
    fn a_pass_planned_from_an_old_cursor_is_refused() {
        let mut r = request();
        let pass = |from, to| RepackUpdate {
            expected_last_expanded_fseq: Some(from),
            last_expanded_fseq: Some(to),
            counters: RepackCounters { files_to_retrieve: 2, ..Default::default() },
            ..Default::default()
        };
        pass(0, 2).apply(&mut r).unwrap();
        let before = r.clone();
        assert_eq!(pass(0, 2).apply(&mut r).unwrap_err().kind, crate::ErrorKind::Conflict);
        assert_eq!(r, before, "a refused update changes nothing");
        pass(2, 4).apply(&mut r).unwrap();
        assert_eq!((r.last_expanded_fseq, r.counters.files_to_retrieve), (4, 4));
    }

    #[test]
    fn an_empty_expansion_completes() {
        let mut r = request();
        RepackUpdate { expansion_started: true, expansion_done: true, ..Default::default() }.apply(&mut r).unwrap();
        assert_eq!(r.status, RepackStatus::Complete);
    }

    #[test]
    fn buffer_names() {
        assert_eq!(buffer_file("file:///b/", "V1", 7), "file:///b/V1/000000007");
        assert_eq!(buffer_dir("root://eos//r", "V1"), "root://eos//r/V1/");
    }
}

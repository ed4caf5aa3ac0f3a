//! A backend-neutral description of everything a scheduler backend holds, for copying state
//! between backends (backfill), comparing two backends in full (verify) and making one equal to
//! the other (repair).
//!
//! The state is a set of [`StateItem`]s, each identified by a [`StateKey`]. Keys have one total
//! order (`Ord`: mounts, repack requests, user archive requests, repack archive requests, retrieve
//! requests, retrieve-queue markers; within a kind by id or name, byte-wise), and every backend's
//! [`crate::db::SchedulerDb::export_state`] returns items in that order, resumable after any key.
//! Two backends' exports can therefore be merged and compared in one streaming pass.
//!
//! An item records where each job is ([`JobPlace`]). The order values it carries (a queue
//! position, the order in which a mount took its jobs) are each backend's own: they order items
//! within one export and one queue or mount, and are not comparable between backends, so
//! [`StateItem::same`] compares items with them left out.

use serde::{Deserialize, Serialize};

use crate::db::{MountSpec, QueueSleep};
use crate::repack::RepackRequest;
use crate::types::*;

/// The identity of one item of a backend's state, in the canonical export order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum StateKey {
    /// A mount (drive session), by id.
    Mount(MountId),
    /// A repack request, by VID.
    Repack(String),
    /// A user's archive request, by archive file id.
    Archive(u64),
    /// A repack's archive request, by subrequest id.
    RepackArchive(u64),
    /// A retrieve request (a user's or a repack subrequest), by request id.
    Retrieve(u64),
    /// The markers (cleanup flag, sleep) of a VID's retrieve queue.
    Marker(String),
}

impl StateKey {
    /// The key of an archive request id ([`RequestId::Archive`] or [`RequestId::RepackArchive`])
    /// or of a retrieve request id.
    pub fn of_request(id: RequestId) -> StateKey {
        match id {
            RequestId::Archive(a) => StateKey::Archive(a),
            RequestId::RepackArchive(s) => StateKey::RepackArchive(s),
            RequestId::Retrieve(r) => StateKey::Retrieve(r),
        }
    }

    /// The kind of item as a word (`mount`, `repack`, `archive`, `repack-archive`, `retrieve`,
    /// `marker`), for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            StateKey::Mount(_) => "mount",
            StateKey::Repack(_) => "repack",
            StateKey::Archive(_) => "archive",
            StateKey::RepackArchive(_) => "repack-archive",
            StateKey::Retrieve(_) => "retrieve",
            StateKey::Marker(_) => "marker",
        }
    }
}

impl std::fmt::Display for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateKey::Mount(m) => write!(f, "mount {m}"),
            StateKey::Repack(v) => write!(f, "repack {v}"),
            StateKey::Archive(a) => write!(f, "archive {a}"),
            StateKey::RepackArchive(s) => write!(f, "repack-archive {s}"),
            StateKey::Retrieve(r) => write!(f, "retrieve {r}"),
            StateKey::Marker(v) => write!(f, "marker {v}"),
        }
    }
}

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobPlace {
    /// Queued in its transfer queue (an archive job: its pool's user or repack queue; a
    /// retrieve: its active VID's queue). `position` orders the queue's jobs within one export
    /// (a retrieve queue is ordered by the active copy's fSeq first, then by position).
    Queued {
        /// The backend's own arrival order value.
        position: i64,
    },
    /// Held by a mount. `order` is the order in which the mount took it, within one export.
    Held {
        /// The mount.
        mount: MountId,
        /// The backend's own order value (claim, rank within the claim).
        order: (i64, i64),
    },
    /// Its report is due (to the disk side, or to its repack).
    Report,
    /// Failed, kept for operators.
    Failed,
    /// Nothing left to do (an archive copy done while a sibling carries the report, or a repack
    /// archive job accounted for).
    Done,
}

impl JobPlace {
    /// The place with its backend-specific order values set to zero.
    pub fn normalized(self) -> JobPlace {
        match self {
            JobPlace::Queued { .. } => JobPlace::Queued { position: 0 },
            JobPlace::Held { mount, .. } => JobPlace::Held { mount, order: (0, 0) },
            other => other,
        }
    }

    /// The place a job not queued and not held is in, by its archive job status.
    pub fn of_archive_status(s: ArchiveJobStatus) -> JobPlace {
        match s {
            ArchiveJobStatus::ToReportForTransfer | ArchiveJobStatus::ToReportForFailure => JobPlace::Report,
            ArchiveJobStatus::Failed => JobPlace::Failed,
            // A job to transfer that is neither queued nor held is on its way back to its queue.
            ArchiveJobStatus::ToTransfer => JobPlace::Queued { position: i64::MAX },
            ArchiveJobStatus::Complete => JobPlace::Done,
        }
    }

    /// The place a retrieve request not queued and not held is in, by its status.
    pub fn of_retrieve_status(s: RetrieveStatus) -> JobPlace {
        match s {
            RetrieveStatus::ToReportForTransfer | RetrieveStatus::ToReportForFailure => JobPlace::Report,
            RetrieveStatus::Failed => JobPlace::Failed,
            RetrieveStatus::ToTransfer => JobPlace::Queued { position: i64::MAX },
        }
    }
}

/// One item of a backend's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StateItem {
    /// A mount that has not ended.
    Mount {
        /// Its id.
        id: MountId,
        /// What it mounts.
        spec: MountSpec,
        /// Marked dead (its jobs wait for the collector).
        abandoned: bool,
    },
    /// A repack request.
    Repack(RepackRequest),
    /// An archive request (a user's or a repack's) and where each of its jobs is, in the order of
    /// `request.jobs`.
    Archive {
        /// The whole request.
        request: ArchiveRequest,
        /// One place per job.
        places: Vec<JobPlace>,
    },
    /// A retrieve request and where it is.
    Retrieve {
        /// The whole request.
        request: RetrieveRequest,
        /// Where it is.
        place: JobPlace,
    },
    /// A retrieve queue's markers (present only when one is set).
    Marker {
        /// The VID.
        vid: String,
        /// Flagged for cleanup.
        cleanup: bool,
        /// Asleep for a full disk system.
        sleep: Option<QueueSleep>,
    },
}

impl StateItem {
    /// The item's key.
    pub fn key(&self) -> StateKey {
        match self {
            StateItem::Mount { id, .. } => StateKey::Mount(*id),
            StateItem::Repack(r) => StateKey::Repack(r.vid.clone()),
            StateItem::Archive { request, .. } => StateKey::of_request(request.id()),
            StateItem::Retrieve { request, .. } => StateKey::Retrieve(request.request_id),
            StateItem::Marker { vid, .. } => StateKey::Marker(vid.clone()),
        }
    }

    /// Jobs the item stands for (an archive request's copies, one for a retrieve, none for the
    /// other kinds): what rates are counted in.
    pub fn jobs(&self) -> u64 {
        match self {
            StateItem::Archive { request, .. } => request.jobs.len() as u64,
            StateItem::Retrieve { .. } => 1,
            _ => 0,
        }
    }

    /// The item with its backend-specific order values set to zero.
    pub fn normalized(&self) -> StateItem {
        let mut c = self.clone();
        match &mut c {
            StateItem::Archive { places, .. } => places.iter_mut().for_each(|p| *p = p.normalized()),
            StateItem::Retrieve { place, .. } => *place = place.normalized(),
            _ => {}
        }
        c
    }

    /// Whether two items describe the same state (order values left out).
    pub fn same(&self, other: &StateItem) -> bool {
        match (self, other) {
            (StateItem::Archive { request: r1, places: p1 }, StateItem::Archive { request: r2, places: p2 }) => {
                r1 == r2 && p1.len() == p2.len() && p1.iter().zip(p2).all(|(a, b)| a.normalized() == b.normalized())
            }
            (StateItem::Retrieve { request: r1, place: p1 }, StateItem::Retrieve { request: r2, place: p2 }) => {
                r1 == r2 && p1.normalized() == p2.normalized()
            }
            (a, b) => a == b,
        }
    }

    /// The queue the item belongs to for reports: `archive POOL`, `repack-archive POOL`,
    /// `retrieve VID`, `mount ID`, `repack VID` or `marker VID`.
    pub fn queue(&self) -> String {
        match self {
            StateItem::Archive { request, .. } => {
                let pool = request.jobs.first().map_or("", |j| j.tape_pool.as_str());
                if request.repack.is_some() {
                    format!("repack-archive {pool}")
                } else {
                    format!("archive {pool}")
                }
            }
            StateItem::Retrieve { request, .. } => format!("retrieve {}", request.active_vid),
            other => other.key().to_string(),
        }
    }
}

/// Sorts items into the canonical order of their keys.
pub fn sort_items(items: &mut [StateItem]) {
    items.sort_by_cached_key(|i| i.key());
}

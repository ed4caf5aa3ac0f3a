//! `ObjectstoreDb`: the legacy scheduler backend, CTA's OStoreDB design over an [`ObjectStore`].
//!
//! Structure (see ARCHITECTURE.md for the invariants):
//! - the root entry indexes the queues; queues are created on demand and trimmed when empty;
//! - each request is one object recording the owner of each job (an agent or a queue);
//! - every process has an agent whose intent log lists what it owns or is about to own; a mount
//!   (drive session) has its own agent; the collector requeues what dead agents owned;
//! - mount decisions run under the global scheduler lock, which also counts mount ids.
//!
//! Ownership protocol for a move (pop, requeue, report): the mover first lists the object in its
//! agent's log, then changes the owner recorded in the object, then adds the pointer to the new
//! queue, then drops the object from its log. The collector of a dead agent therefore finds every
//! object the agent was moving, and "ensures" that an object owned by a queue is in that queue,
//! so no crash point loses a job. No policy lives here: retries, batches and VID choice come from
//! `tapesched_scheduler::rules` and the caller's [`RetrieveRouter`].
//!
//! This module holds the settings, the handle and the pointer helpers; the operations are in the
//! submodules: `agents` (agents and intent logs), `queues` (queue access and locked request
//! updates), `queueing`, `mounts` (mount decisions), `claims`, `completion`, `collection`
//! (requeueing what agents owned, the collector, drains, markers), `reports`, `repack` (repack
//! requests, expansion passes, repack reports, cancellation), `repack_batch` (processed repack
//! reports, journaled), `state` and `state_import` (the full state: export, import, deletion,
//! for migrations), and `adapter` (the `SchedulerDb` trait, each method calling its `*_op`).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use tapesched_scheduler::clock::Timestamp;
use tapesched_scheduler::db::*;
use tapesched_scheduler::rules::{self, ArchiveSuccessOutcome, FailureOutcome, RetrieveSuccessOutcome};
use tapesched_scheduler::types::*;
use tapesched_scheduler::{Error, Result};
use tokio::sync::OnceCell;

use crate::objects::*;
use crate::queue::OpenQueue;
use crate::store::ObjectStore;

/// Settings of the objectstore backend.
#[derive(Debug, Clone)]
pub struct ObjectstoreConfig {
    /// How long an operation waits for an object lock (the global scheduler lock included).
    pub lock_timeout: Duration,
    /// Jobs per queue shard. CTA uses 25 000; a shard is rewritten whole on every change, so
    /// smaller shards make each change cheaper at the price of more shard objects. Queue order
    /// does not depend on it.
    pub shard_size: usize,
    /// An agent whose heartbeat is older than this many seconds (on the caller's clock) is dead;
    /// `None`: only agents flagged as exited are collected.
    pub agent_timeout: Option<i64>,
    /// What this process is, used in its agent's name (`frontend`, `maintd`...).
    pub process_label: String,
}

impl Default for ObjectstoreConfig {
    fn default() -> Self {
        ObjectstoreConfig {
            lock_timeout: Duration::from_secs(30),
            shard_size: 250,
            agent_timeout: None,
            process_label: "frontend".into(),
        }
    }
}

static AGENTS: AtomicU64 = AtomicU64::new(0);

/// The objectstore backend.
pub struct ObjectstoreDb {
    objs: Objects,
    config: ObjectstoreConfig,
    agent: String,
    ready: OnceCell<()>,
    agent_ready: OnceCell<()>,
    /// The listing a state export pages through (`state`).
    export_cursor: std::sync::Mutex<Option<state::ExportCursor>>,
}

fn archive_queue_kind(t: MountType) -> QueueKind {
    if t == MountType::ArchiveForRepack {
        QueueKind::ArchiveToTransferForRepack
    } else {
        QueueKind::ArchiveToTransferForUser
    }
}

fn archive_pointer(r: &ArchiveRequest, copy_nb: u32, outcome: Option<Outcome>) -> JobPointer {
    JobPointer {
        request: r.id(),
        address: request_name(r.id()),
        copy_nb,
        archive_file_id: r.archive_file_id,
        size: r.size,
        priority: r.policy.priority,
        min_age: r.policy.min_request_age,
        policy: r.policy.name.clone(),
        created_at: r.created_at,
        fseq: 0,
        seq: 0,
        outcome,
    }
}

fn retrieve_pointer(r: &RetrieveRequest, outcome: Option<Outcome>) -> JobPointer {
    let copy = r.active_copy();
    JobPointer {
        request: RequestId::Retrieve(r.request_id),
        address: retrieve_request_name(r.request_id),
        copy_nb: copy.map_or(0, |c| c.copy_nb),
        archive_file_id: r.archive_file_id,
        size: r.size,
        priority: r.policy.priority,
        min_age: r.policy.min_request_age,
        policy: r.policy.name.clone(),
        created_at: r.created_at,
        fseq: copy.map_or(0, |c| c.fseq),
        seq: 0,
        outcome,
    }
}

/// The queue an archive job belongs in, given its status. A repack's archive job is written from
/// its pool's ArchiveForRepack queue and reports to its repack's report queue; once accounted
/// for (Complete or Failed) it belongs nowhere.
fn archive_home(r: &ArchiveRequest, job: &ArchiveJob) -> Option<(QueueKey, Option<Outcome>)> {
    if let Some(link) = &r.repack {
        return match job.status {
            ArchiveJobStatus::ToTransfer => {
                Some((QueueKey::new(QueueKind::ArchiveToTransferForRepack, &job.tape_pool), None))
            }
            ArchiveJobStatus::ToReportForTransfer => {
                Some((QueueKey::new(QueueKind::RepackToReport, &link.vid), Some(Outcome::Success)))
            }
            ArchiveJobStatus::ToReportForFailure => {
                Some((QueueKey::new(QueueKind::RepackToReport, &link.vid), Some(Outcome::Failure)))
            }
            ArchiveJobStatus::Complete | ArchiveJobStatus::Failed => None,
        };
    }
    match job.status {
        ArchiveJobStatus::ToTransfer => {
            Some((QueueKey::new(QueueKind::ArchiveToTransferForUser, &job.tape_pool), None))
        }
        ArchiveJobStatus::ToReportForTransfer => {
            let vid = job.written.as_ref().map(|w| w.vid.clone()).unwrap_or_else(|| job.tape_pool.clone());
            Some((QueueKey::new(QueueKind::ArchiveToReport, vid), Some(Outcome::Success)))
        }
        ArchiveJobStatus::ToReportForFailure => {
            Some((QueueKey::new(QueueKind::ArchiveToReport, &job.tape_pool), Some(Outcome::Failure)))
        }
        ArchiveJobStatus::Failed => Some((QueueKey::new(QueueKind::ArchiveFailed, &job.tape_pool), None)),
        ArchiveJobStatus::Complete => {
            let _ = r;
            None
        }
    }
}

/// The queue a retrieve request belongs in, given its status (transfers use its active VID). A
/// repack's retrieve shares the VID's transfer queue with user recalls and reports to its
/// repack's report queue.
fn retrieve_home(r: &RetrieveRequest) -> (QueueKey, Option<Outcome>) {
    if let (Some(link), false) = (&r.repack, r.status == RetrieveStatus::ToTransfer) {
        let outcome = if r.status == RetrieveStatus::ToReportForTransfer { Outcome::Success } else { Outcome::Failure };
        return (QueueKey::new(QueueKind::RepackToReport, &link.vid), Some(outcome));
    }
    match r.status {
        RetrieveStatus::ToTransfer => (QueueKey::new(QueueKind::RetrieveToTransfer, &r.active_vid), None),
        RetrieveStatus::ToReportForTransfer => {
            (QueueKey::new(QueueKind::RetrieveToReport, &r.active_vid), Some(Outcome::Success))
        }
        RetrieveStatus::ToReportForFailure => {
            (QueueKey::new(QueueKind::RetrieveToReport, &r.active_vid), Some(Outcome::Failure))
        }
        RetrieveStatus::Failed => (QueueKey::new(QueueKind::RetrieveFailed, &r.active_vid), None),
    }
}

/// The queues among the owners of a request's jobs, with the copy each holds (what must leave
/// those queues when the request is deleted).
fn queue_owners<'a>(owners: impl IntoIterator<Item = (u32, &'a Owner)>) -> Vec<(QueueKey, u32)> {
    owners
        .into_iter()
        .filter_map(|(copy, o)| match o {
            Owner::Queue(k) => Some((k.clone(), copy)),
            _ => None,
        })
        .collect()
}

/// Pointers to add, grouped by queue.
type Moves = BTreeMap<QueueKey, Vec<JobPointer>>;

mod adapter;
mod agents;
mod claims;
mod collection;
mod completion;
mod leases;
mod mounts;
mod queueing;
mod queues;
mod repack;
mod repack_batch;
mod reports;
mod state;
mod state_import;

impl ObjectstoreDb {
    /// The backend over `store`. Nothing is written until the first operation.
    pub fn new(store: Arc<dyn ObjectStore>, config: ObjectstoreConfig) -> Self {
        let agent = format!(
            "Agent-{}-{}-{}",
            escape(&config.process_label),
            std::process::id(),
            AGENTS.fetch_add(1, Ordering::Relaxed)
        );
        ObjectstoreDb {
            objs: Objects::new(store, config.lock_timeout),
            config,
            agent,
            ready: OnceCell::new(),
            agent_ready: OnceCell::new(),
            export_cursor: std::sync::Mutex::new(None),
        }
    }

    /// This process's agent name.
    pub fn agent_name(&self) -> &str {
        &self.agent
    }

    /// The typed object access (tools and tests).
    pub fn objects(&self) -> &Objects {
        &self.objs
    }

    async fn ready(&self) -> Result<()> {
        self.ready
            .get_or_try_init(|| async {
                self.objs.ensure(ROOT, &Root::default()).await?;
                self.objs.ensure(AGENT_REGISTER, &AgentRegister::default()).await?;
                self.objs.ensure(GLOBAL_LOCK, &GlobalLock { next_mount_id: 1 }).await
            })
            .await
            .map(|_| ())
    }
}

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

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::future::join_all;
use tapesched_scheduler::clock::Timestamp;
use tapesched_scheduler::db::*;
use tapesched_scheduler::rules::{self, ArchiveSuccessOutcome, FailureOutcome};
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
        request: RequestId::Archive(r.archive_file_id),
        address: archive_request_name(r.archive_file_id),
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

/// The queue an archive job belongs in, given its status.
fn archive_home(r: &ArchiveRequest, job: &ArchiveJob) -> Option<(QueueKey, Option<Outcome>)> {
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

/// The queue a retrieve request belongs in, given its status (transfers use its active VID).
fn retrieve_home(r: &RetrieveRequest) -> (QueueKey, Option<Outcome>) {
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

/// Pointers to add, grouped by queue.
type Moves = BTreeMap<QueueKey, Vec<JobPointer>>;

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

    /// Adds to (`add`) or removes from this process's own agent log, registering the agent on
    /// first use (a process that only runs drive sessions never registers one).
    async fn log_own(&self, names: &[String], add: bool, now: Timestamp) -> Result<()> {
        self.agent_ready
            .get_or_try_init(|| async {
                let agent =
                    Agent { description: self.config.process_label.clone(), heartbeat: now, ..Agent::default() };
                // The name is this process's own: an agent already there was created by an
                // attempt whose answer was lost.
                self.register_agent(&self.agent, agent, true).await
            })
            .await?;
        self.log(&self.agent, names, add, now).await
    }

    /// What this process's own log still lists: objects an earlier attempt was moving when it
    /// failed (empty before the first logged operation).
    async fn in_flight(&self) -> Result<BTreeSet<String>> {
        if !self.agent_ready.initialized() {
            return Ok(BTreeSet::new());
        }
        Ok(self.objs.read::<Agent>(&self.agent).await?.map(|a| a.owned.into_iter().collect()).unwrap_or_default())
    }

    /// Lists an agent in the register and creates it (`mine`: an existing one is this
    /// process's, left by an earlier attempt; otherwise it is a conflict).
    async fn register_agent(&self, name: &str, agent: Agent, mine: bool) -> Result<()> {
        let name = name.to_string();
        self.objs
            .update::<AgentRegister, _>(AGENT_REGISTER, |reg| {
                if !reg.agents.contains(&name) {
                    reg.agents.push(name.clone());
                }
                Ok(((), Write::Commit))
            })
            .await?;
        if mine {
            self.objs.ensure(&name, &agent).await
        } else {
            self.objs.create(&name, &agent).await
        }
    }

    async fn deregister_agent(&self, name: &str) -> Result<()> {
        if let Some(lock) = self.objs.lock(name).await? {
            let r = self.objs.remove(name, &lock).await;
            self.objs.unlock(lock).await;
            r?;
        }
        let name = name.to_string();
        self.objs
            .update::<AgentRegister, _>(AGENT_REGISTER, |reg| {
                reg.agents.retain(|a| *a != name);
                Ok(((), Write::Commit))
            })
            .await?;
        Ok(())
    }

    /// Adds (`add`) or removes names from an agent's intent log and refreshes its heartbeat.
    async fn log(&self, agent: &str, names: &[String], add: bool, now: Timestamp) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let found = self
            .objs
            .update::<Agent, _>(agent, |a| {
                if add {
                    let mut present: HashSet<&str> = a.owned.iter().map(String::as_str).collect();
                    let fresh: Vec<String> = names.iter().filter(|n| present.insert(n.as_str())).cloned().collect();
                    a.owned.extend(fresh);
                } else {
                    let gone: HashSet<&str> = names.iter().map(String::as_str).collect();
                    a.owned.retain(|n| !gone.contains(n.as_str()));
                }
                a.heartbeat = a.heartbeat.max(now);
                Ok(((), Write::Commit))
            })
            .await?;
        found.ok_or_else(|| Error::not_found(format!("agent {agent:?} does not exist")))
    }

    /// Refreshes an agent's heartbeat.
    async fn touch(&self, agent: &str, now: Timestamp) -> Result<()> {
        self.objs
            .update::<Agent, _>(agent, |a| {
                a.heartbeat = a.heartbeat.max(now);
                Ok(((), Write::Commit))
            })
            .await?
            .ok_or_else(|| Error::not_found(format!("agent {agent:?} does not exist")))
    }

    async fn mount_agent(&self, mount: MountId) -> Result<(String, Agent, MountRecord)> {
        let name = mount_agent_name(mount);
        let agent = self
            .objs
            .read::<Agent>(&name)
            .await?
            .ok_or_else(|| Error::not_found(format!("mount {mount} does not exist or has ended")))?;
        let record = agent.mount.clone().ok_or_else(|| Error::internal(format!("agent {name:?} records no mount")))?;
        Ok((name, agent, record))
    }

    // --- queues --------------------------------------------------------------------------------

    async fn root(&self) -> Result<Root> {
        Ok(self.objs.read::<Root>(ROOT).await?.unwrap_or_default())
    }

    /// Opens (locks and reads) a queue, creating it when `create` is set.
    async fn open(&self, key: &QueueKey, create: bool) -> Result<Option<OpenQueue>> {
        let name = key.object_name();
        for _ in 0..8 {
            let listed = self.root().await?.queue(key).is_some();
            if !listed {
                if !create {
                    return Ok(None);
                }
                self.objs.ensure(&name, &Queue::new(key.clone())).await?;
                let (k, n) = (key.clone(), name.clone());
                self.objs
                    .update::<Root, _>(ROOT, move |root| {
                        if root.queue(&k).is_some() {
                            return Ok(((), Write::Keep));
                        }
                        root.queues.push((k, n));
                        Ok(((), Write::Commit))
                    })
                    .await?;
            }
            match self.objs.lock_read::<Queue>(&name).await? {
                Some((lock, queue)) => return Ok(Some(OpenQueue::new(name, lock, queue, self.config.shard_size))),
                None => {
                    // Listed but gone: a trim removed it after we read the root, or a crash
                    // left a dangling pointer. Drop the pointer if it still dangles and retry.
                    self.unlist_if_gone(key, &name).await?;
                }
            }
        }
        Err(Error::unavailable(format!("queue {name:?} kept vanishing while being opened")))
    }

    /// Removes the root's pointer to queue `key` if its object does not exist. The existence
    /// check is made under the root's lock: a queue is created before it is listed and unlisted
    /// before it is deleted, so a pointer added meanwhile by another process always names an
    /// existing object and is kept.
    async fn unlist_if_gone(&self, key: &QueueKey, name: &str) -> Result<()> {
        let Some((lock, mut root)) = self.objs.lock_read::<Root>(ROOT).await? else { return Ok(()) };
        let result = async {
            if root.queue(key).is_none() || self.objs.read::<Queue>(name).await?.is_some() {
                return Ok(false);
            }
            root.queues.retain(|(q, _)| q != key);
            self.objs.write(ROOT, &root, &lock).await.map(|_| true)
        }
        .await;
        self.objs.unlock(lock).await;
        result.map(|_| ())
    }

    /// Saves and unlocks a queue, trimming it when it is empty, not flagged for cleanup and not
    /// asleep.
    async fn close(&self, mut q: OpenQueue, now: Timestamp) -> Result<()> {
        let result = async {
            q.save(&self.objs).await?;
            let asleep = q.queue.sleep.as_ref().is_some_and(|s| now < s.until);
            if q.is_empty() && !q.queue.cleanup && !asleep {
                let key = q.queue.key.clone();
                self.objs
                    .update::<Root, _>(ROOT, move |root| {
                        root.queues.retain(|(k, _)| *k != key);
                        Ok(((), Write::Commit))
                    })
                    .await?;
                self.objs.remove(&q.name, &q.lock).await?;
            }
            Ok(())
        }
        .await;
        self.objs.unlock(q.lock).await;
        result
    }

    /// Adds pointers to their queues, each queue under its own lock; queues are updated
    /// concurrently (a task never holds two queue locks, so they cannot deadlock).
    async fn add_pointers(&self, moves: Moves, now: Timestamp) -> Result<()> {
        let updates = moves.into_iter().map(|(key, pointers)| async move {
            let mut q = self.open(&key, true).await?.expect("created");
            match q.add(&self.objs, pointers).await {
                Ok(()) => self.close(q, now).await,
                Err(e) => {
                    self.objs.unlock(q.lock).await;
                    Err(e)
                }
            }
        });
        join_all(updates).await.into_iter().collect()
    }

    /// Adds pointers that are missing from their queues (collector and repair paths).
    async fn ensure_pointers(&self, moves: Moves, now: Timestamp) -> Result<()> {
        for (key, pointers) in moves {
            let mut q = self.open(&key, true).await?.expect("created");
            let r = async {
                q.load_all(&self.objs).await?;
                let present: Vec<(String, u32)> = q.jobs().iter().map(|j| (j.address.clone(), j.copy_nb)).collect();
                let missing: Vec<JobPointer> =
                    pointers.into_iter().filter(|p| !present.contains(&(p.address.clone(), p.copy_nb))).collect();
                q.add(&self.objs, missing).await
            }
            .await;
            match r {
                Ok(()) => self.close(q, now).await?,
                Err(e) => {
                    self.objs.unlock(q.lock).await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    async fn remove_pointers(&self, key: &QueueKey, targets: &[(String, u32)], now: Timestamp) -> Result<()> {
        let Some(mut q) = self.open(key, false).await? else { return Ok(()) };
        let r = q.remove(&self.objs, |j| targets.iter().any(|(a, c)| *a == j.address && *c == j.copy_nb)).await;
        match r {
            Ok(_) => self.close(q, now).await,
            Err(e) => {
                self.objs.unlock(q.lock).await;
                Err(e)
            }
        }
    }

    async fn read_queue_jobs(&self, address: &str) -> Result<Option<(Queue, Vec<JobPointer>)>> {
        let Some(queue) = self.objs.read::<Queue>(address).await? else { return Ok(None) };
        let mut jobs = Vec::with_capacity(queue.summary.count as usize);
        let shards: Vec<String> = queue.shards.iter().map(|s| s.address.clone()).collect();
        for shard in self.objs.read_many::<Shard>(&shards).await?.into_iter().flatten() {
            jobs.extend(shard.jobs);
        }
        Ok(Some((queue, jobs)))
    }

    async fn queues_of(&self, kinds: &[QueueKind]) -> Result<Vec<(QueueKey, String)>> {
        let mut qs: Vec<(QueueKey, String)> =
            self.root().await?.queues.into_iter().filter(|(k, _)| kinds.contains(&k.kind)).collect();
        qs.sort();
        Ok(qs)
    }

    // --- moving jobs -----------------------------------------------------------------------------

    /// Sets the owner of archive jobs and applies `change` to the request under its lock; returns
    /// the request after the change, or `None` if it vanished.
    async fn update_archive<R>(
        &self,
        afid: u64,
        change: impl FnOnce(&mut StoredArchive) -> Result<(R, Write)>,
    ) -> Result<Option<R>> {
        self.objs.update::<StoredArchive, R>(&archive_request_name(afid), change).await
    }

    async fn update_retrieve<R>(
        &self,
        id: u64,
        change: impl FnOnce(&mut StoredRetrieve) -> Result<(R, Write)>,
    ) -> Result<Option<R>> {
        self.objs.update::<StoredRetrieve, R>(&retrieve_request_name(id), change).await
    }

    /// Chooses the VID a retrieve goes back to; `None`: no copy can take it.
    async fn route(&self, request: &RetrieveRequest, router: &dyn RetrieveRouter) -> Result<Option<String>> {
        let candidates = router.candidates(request);
        if candidates.is_empty() {
            return Ok(None);
        }
        let stats = self.retrieve_queue_stats(&candidates).await?;
        Ok(router.choose(request, &stats))
    }

    /// Puts every job that `agent` owns back where it belongs: jobs to transfer into transfer
    /// queues (retrieves to the router's VID), the others into their report or failed queues, and
    /// objects already owned by a queue into that queue if they are missing from it. Returns how
    /// many jobs went back to a transfer queue.
    async fn requeue_owned(
        &self,
        agent_name: &str,
        agent: &Agent,
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<u64> {
        let me = Owner::Agent(agent_name.to_string());
        let found = join_all(agent.owned.iter().map(|name| self.requeue_one(name, &me, router))).await;
        let mut requeued = 0;
        let mut moves = Moves::new();
        let mut ensure = Moves::new();
        for item in found {
            for (mine, key, ptr, to_transfer) in item? {
                if mine {
                    requeued += to_transfer as u64;
                    moves.entry(key).or_default().push(ptr);
                } else {
                    ensure.entry(key).or_default().push(ptr);
                }
            }
        }
        self.add_pointers(moves, now).await?;
        self.ensure_pointers(ensure, now).await?;
        Ok(requeued)
    }

    /// Puts one object of a dead (or ending) agent where its owner record says: the pointers to
    /// add (`true`: the agent's job, moved now) or to ensure (`false`: owned by a queue that may
    /// lack the pointer), and whether each went back to a transfer queue.
    async fn requeue_one(
        &self,
        name: &str,
        me: &Owner,
        router: &dyn RetrieveRouter,
    ) -> Result<Vec<(bool, QueueKey, JobPointer, bool)>> {
        let mut out = Vec::new();
        if name.starts_with("ArchiveRequest-") {
            let Some(stored) = self.objs.read::<StoredArchive>(name).await? else { return Ok(out) };
            let afid = stored.request.archive_file_id;
            let me2 = me.clone();
            let moved = self
                .update_archive(afid, move |s| {
                    let mut out = Vec::new();
                    for job in s.request.jobs.clone() {
                        let owner = s.owners.get(&job.copy_nb).cloned().unwrap_or(Owner::Nobody);
                        match owner {
                            o if o == me2 => match archive_home(&s.request, &job) {
                                Some((key, outcome)) => {
                                    s.owners.insert(job.copy_nb, Owner::Queue(key.clone()));
                                    out.push((
                                        true,
                                        key,
                                        archive_pointer(&s.request, job.copy_nb, outcome),
                                        job.status,
                                    ));
                                }
                                None => {
                                    s.owners.insert(job.copy_nb, Owner::Nobody);
                                }
                            },
                            Owner::Queue(key) => {
                                let outcome = archive_home(&s.request, &job).and_then(|(_, o)| o);
                                out.push((false, key, archive_pointer(&s.request, job.copy_nb, outcome), job.status));
                            }
                            _ => {}
                        }
                    }
                    Ok((out, Write::Commit))
                })
                .await?
                .unwrap_or_default();
            for (mine, key, ptr, status) in moved {
                out.push((mine, key, ptr, status == ArchiveJobStatus::ToTransfer));
            }
        } else if name.starts_with("RetrieveRequest-") {
            let Some(stored) = self.objs.read::<StoredRetrieve>(name).await? else { return Ok(out) };
            let mut request = stored.request.clone();
            if stored.owner == *me && request.status == RetrieveStatus::ToTransfer {
                match self.route(&request, router).await? {
                    Some(vid) => request.active_vid = vid,
                    None => {
                        request.status = RetrieveStatus::ToReportForFailure;
                        request.failure_reasons.push("no tape copy can be recalled any more".into());
                    }
                }
            }
            let me2 = me.clone();
            let moved = self
                .update_retrieve(request.request_id, move |s| {
                    if s.owner == me2 {
                        s.request.active_vid = request.active_vid.clone();
                        s.request.status = request.status;
                        s.request.failure_reasons = request.failure_reasons.clone();
                        let (key, outcome) = retrieve_home(&s.request);
                        s.owner = Owner::Queue(key.clone());
                        Ok((Some((true, key, retrieve_pointer(&s.request, outcome), s.request.status)), Write::Commit))
                    } else if let Owner::Queue(key) = &s.owner {
                        let outcome = retrieve_home(&s.request).1;
                        Ok((
                            Some((false, key.clone(), retrieve_pointer(&s.request, outcome), s.request.status)),
                            Write::Keep,
                        ))
                    } else {
                        Ok((None, Write::Keep))
                    }
                })
                .await?
                .flatten();
            if let Some((mine, key, ptr, status)) = moved {
                out.push((mine, key, ptr, status == RetrieveStatus::ToTransfer));
            }
        }
        Ok(out)
    }

    /// Queues archive requests together: one intent-log update for the batch, the request
    /// objects created concurrently, one queue update per pool. Each request is all or nothing.
    async fn queue_archive_batch(&self, requests: Vec<ArchiveRequest>, now: Timestamp) -> Result<Vec<Result<()>>> {
        self.ready().await?;
        let names: Vec<String> = requests.iter().map(|r| archive_request_name(r.archive_file_id)).collect();
        // Requests still in our log were being queued by an attempt that failed midway (the
        // store became unavailable): a retry resumes them instead of calling them duplicates.
        let in_flight = self.in_flight().await?;
        self.log_own(&names, true, now).await?;
        let in_flight = &in_flight;
        let created = join_all(requests.iter().zip(&names).map(|(request, name)| {
            // Created owned by its queues, then pointed to: a crash in between leaves the
            // request in this agent's log, and the collector (or `recover`, or a retry of this
            // batch) adds the pointers its owners call for.
            let stored = StoredArchive {
                owners: request
                    .jobs
                    .iter()
                    .map(|j| {
                        (j.copy_nb, Owner::Queue(QueueKey::new(QueueKind::ArchiveToTransferForUser, &j.tape_pool)))
                    })
                    .collect(),
                request: request.clone(),
            };
            async move {
                if request.jobs.is_empty() {
                    return Err(Error::invalid(format!(
                        "archive request {} has no copy to write",
                        request.archive_file_id
                    )));
                }
                match self.objs.create(name, &stored).await {
                    Ok(()) => Ok(false),
                    Err(e) if e.kind == tapesched_scheduler::ErrorKind::Conflict => {
                        let resumable = in_flight.contains(name)
                            && self.objs.read::<StoredArchive>(name).await?.is_some_and(|s| s.request == *request);
                        if resumable {
                            Ok(true)
                        } else {
                            Err(Error::conflict(format!(
                                "archive request {} is already queued",
                                request.archive_file_id
                            )))
                        }
                    }
                    Err(e) => Err(e),
                }
            }
        }))
        .await;
        let mut moves = Moves::new();
        let mut resumed = Moves::new();
        for (request, ok) in requests.iter().zip(&created) {
            let Ok(resume) = ok else { continue };
            for job in &request.jobs {
                let target = if *resume { &mut resumed } else { &mut moves };
                target
                    .entry(QueueKey::new(QueueKind::ArchiveToTransferForUser, &job.tape_pool))
                    .or_default()
                    .push(archive_pointer(request, job.copy_nb, None));
            }
        }
        self.add_pointers(moves, now).await?;
        self.ensure_pointers(resumed, now).await?;
        // A request whose creation failed with `unavailable` may exist all the same (the answer
        // was lost): it stays in the log, so that a retry resumes it and a collector finds it.
        let settled: Vec<String> = names
            .into_iter()
            .zip(&created)
            .filter(|(_, r)| !matches!(r, Err(e) if e.kind == tapesched_scheduler::ErrorKind::Unavailable))
            .map(|(n, _)| n)
            .collect();
        self.log_own(&settled, false, now).await?;
        Ok(created.into_iter().map(|r| r.map(|_| ())).collect())
    }

    /// Applies [`Objects::update_many`] to the request objects of `ids`: `archive` to archive
    /// requests, `retrieve` to retrieve requests, each given the position of its id in `ids`.
    /// Answers in the order of `ids`; `None`: the request is gone.
    async fn update_requests<R>(
        &self,
        ids: &[RequestId],
        archive: impl Fn(usize, &mut StoredArchive) -> Result<(R, Write)>,
        retrieve: impl Fn(usize, &mut StoredRetrieve) -> Result<(R, Write)>,
    ) -> Result<Vec<Option<R>>> {
        let (archives, retrieves): (Vec<usize>, Vec<usize>) =
            (0..ids.len()).partition(|i| matches!(ids[*i], RequestId::Archive(_)));
        let names = |of: &[usize]| -> Vec<String> { of.iter().map(|i| request_name(ids[*i])).collect() };
        let archived = self.objs.update_many(&names(&archives), |k, s| archive(archives[k], s)).await?;
        let retrieved = self.objs.update_many(&names(&retrieves), |k, s| retrieve(retrieves[k], s)).await?;
        let mut out: Vec<Option<R>> = (0..ids.len()).map(|_| None).collect();
        for (i, r) in archives.into_iter().zip(archived).chain(retrieves.into_iter().zip(retrieved)) {
            out[i] = r;
        }
        Ok(out)
    }

    /// Makes `agent` the owner of the jobs the pointers of queue `key` name, where the queue
    /// still owns them (`None` for a stale pointer). The requests are read in one batch and
    /// switched by compare-and-swap (one changed or locked meanwhile is switched under its
    /// lock). Answers in the order of `pointers`.
    async fn take_many_from_queue(
        &self,
        pointers: &[JobPointer],
        key: &QueueKey,
        agent: &str,
    ) -> Result<Vec<Option<MountJob>>> {
        let (me, qk) = (Owner::Agent(agent.to_string()), Owner::Queue(key.clone()));
        let ids: Vec<RequestId> = pointers.iter().map(|p| p.request).collect();
        let switched = self
            .update_requests(
                &ids,
                |i, s| {
                    let copy_nb = pointers[i].copy_nb;
                    if s.owners.get(&copy_nb) != Some(&qk) {
                        return Ok((None, Write::Keep));
                    }
                    s.owners.insert(copy_nb, me.clone());
                    Ok((Some(MountJob::Archive { request: s.request.clone(), copy_nb }), Write::Commit))
                },
                |_, s| {
                    if s.owner != qk || s.request.status != RetrieveStatus::ToTransfer {
                        return Ok((None, Write::Keep));
                    }
                    s.owner = me.clone();
                    Ok((Some(MountJob::Retrieve { request: s.request.clone() }), Write::Commit))
                },
            )
            .await?;
        Ok(switched.into_iter().map(Option::flatten).collect())
    }

    /// Repairs what this process was doing when the store became unavailable: every object its
    /// own agent (and, with `mount`, that session's agent) lists goes back where its owner
    /// record says — jobs a session held go back to their transfer queues, objects already owned
    /// by a queue are put in that queue if missing — and the logs are emptied. Call it after an
    /// `unavailable` error, once the store answers again; returns how many jobs were requeued.
    pub async fn recover(&self, mount: Option<MountId>, now: Timestamp, router: &dyn RetrieveRouter) -> Result<u64> {
        self.ready().await?;
        let mut agents = Vec::new();
        if self.agent_ready.initialized() {
            agents.push(self.agent.clone());
        }
        agents.extend(mount.map(mount_agent_name));
        let mut requeued = 0;
        for name in agents {
            let Some(agent) = self.objs.read::<Agent>(&name).await? else { continue };
            requeued += self.requeue_owned(&name, &agent, now, router).await?;
            self.log(&name, &agent.owned, false, now).await?;
        }
        Ok(requeued)
    }

    /// Every queue and its job pointers, in queue order (tools and tests: a dump of the store).
    pub async fn dump_queues(&self) -> Result<Vec<(QueueKey, Vec<JobPointer>)>> {
        self.ready().await?;
        let mut out = Vec::new();
        for (key, address) in self.root().await?.queues {
            if let Some((_, jobs)) = self.read_queue_jobs(&address).await? {
                out.push((key, jobs));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Names of the registered agents.
    pub async fn agents(&self) -> Result<Vec<String>> {
        self.ready().await?;
        Ok(self.objs.read::<AgentRegister>(AGENT_REGISTER).await?.unwrap_or_default().agents)
    }

    async fn is_dead(&self, agent: &Agent, now: Timestamp) -> bool {
        agent.gc_needed || self.config.agent_timeout.is_some_and(|t| now - agent.heartbeat > t)
    }
}

#[async_trait]
impl SchedulerDb for ObjectstoreDb {
    fn name(&self) -> String {
        format!("objectstore-{}", self.objs.store().describe())
    }

    async fn ping(&self) -> Result<()> {
        self.ready().await?;
        self.root().await.map(|_| ())
    }

    async fn queue_archive(&self, request: ArchiveRequest, now: Timestamp) -> Result<()> {
        self.queue_archives(vec![request], now).await.pop().unwrap_or(Ok(()))
    }

    async fn queue_archives(&self, requests: Vec<ArchiveRequest>, now: Timestamp) -> Vec<Result<()>> {
        match self.queue_archive_batch(requests, now).await {
            Ok(answers) => answers,
            Err(e) => vec![Err(e)],
        }
    }

    async fn queue_retrieve(&self, request: RetrieveRequest, now: Timestamp) -> Result<()> {
        self.ready().await?;
        if request.active_copy().is_none() {
            return Err(Error::invalid(format!(
                "retrieve request {} targets tape {:?}, which holds none of its copies",
                request.request_id, request.active_vid
            )));
        }
        let name = retrieve_request_name(request.request_id);
        let key = QueueKey::new(QueueKind::RetrieveToTransfer, &request.active_vid);
        // Still in our log: an earlier attempt failed midway (the store became unavailable);
        // this one resumes it instead of calling it a duplicate.
        let in_flight = self.in_flight().await?.contains(&name);
        self.log_own(std::slice::from_ref(&name), true, now).await?;
        let owner = Owner::Queue(key.clone());
        let stored = StoredRetrieve { request: request.clone(), owner: owner.clone() };
        let pointer = Moves::from([(key, vec![retrieve_pointer(&request, None)])]);
        match self.objs.create(&name, &stored).await {
            Ok(()) => self.add_pointers(pointer, now).await?,
            Err(e) if e.kind == tapesched_scheduler::ErrorKind::Conflict && in_flight => {
                // Created by the failed attempt; its pointer may be missing (if the request has
                // moved on since, or is gone, there is nothing left to do).
                if self.objs.read::<StoredRetrieve>(&name).await?.is_some_and(|s| s.owner == owner) {
                    self.ensure_pointers(pointer, now).await?;
                }
            }
            Err(e) if e.kind == tapesched_scheduler::ErrorKind::Conflict => {
                self.log_own(std::slice::from_ref(&name), false, now).await?;
                return Err(Error::conflict(format!("retrieve request {} is already queued", request.request_id)));
            }
            Err(e) => {
                // After `unavailable` the request may exist all the same: it stays in the log.
                if !in_flight && e.kind != tapesched_scheduler::ErrorKind::Unavailable {
                    self.log_own(std::slice::from_ref(&name), false, now).await?;
                }
                return Err(e);
            }
        }
        self.log_own(&[name], false, now).await
    }

    async fn retrieve_queue_stats(&self, vids: &[String]) -> Result<Vec<QueueStats>> {
        self.ready().await?;
        let root = self.root().await?;
        let mut out = Vec::with_capacity(vids.len());
        for vid in vids {
            let key = QueueKey::new(QueueKind::RetrieveToTransfer, vid);
            let queue = match root.queue(&key) {
                Some(a) => self.objs.read::<Queue>(a).await?,
                None => None,
            };
            let s = queue.map(|q| q.summary).unwrap_or_default();
            out.push(QueueStats {
                vid: vid.clone(),
                files_queued: s.count,
                bytes_queued: s.bytes_queued(),
                priority: s.priorities.keys().next_back().copied().unwrap_or(0),
            });
        }
        Ok(out)
    }

    async fn cancel_archive(&self, archive_file_id: u64, now: Timestamp) -> Result<()> {
        self.ready().await?;
        let name = archive_request_name(archive_file_id);
        let stored = self
            .objs
            .read::<StoredArchive>(&name)
            .await?
            .ok_or_else(|| Error::not_found(format!("no archive request for archive file {archive_file_id}")))?;
        if stored.request.jobs.iter().all(|j| j.status == ArchiveJobStatus::Failed) {
            return Ok(());
        }
        self.log_own(std::slice::from_ref(&name), true, now).await?;
        for (copy, owner) in &stored.owners {
            if let Owner::Queue(key) = owner {
                self.remove_pointers(key, &[(name.clone(), *copy)], now).await?;
            }
        }
        if let Some(lock) = self.objs.lock(&name).await? {
            let r = self.objs.remove(&name, &lock).await;
            self.objs.unlock(lock).await;
            r?;
        }
        self.log_own(&[name], false, now).await
    }

    async fn cancel_retrieve(&self, archive_file_id: u64, dst_url: Option<&str>, now: Timestamp) -> Result<u64> {
        self.ready().await?;
        let mut cancelled = 0;
        for (key, address) in self.queues_of(&[QueueKind::RetrieveToTransfer]).await? {
            let Some((_, jobs)) = self.read_queue_jobs(&address).await? else { continue };
            for p in jobs.iter().filter(|p| p.archive_file_id == archive_file_id) {
                let Some(stored) = self.objs.read::<StoredRetrieve>(&p.address).await? else { continue };
                if dst_url.is_some_and(|d| d != stored.request.dst_url) || stored.owner != Owner::Queue(key.clone()) {
                    continue;
                }
                self.remove_pointers(&key, &[(p.address.clone(), p.copy_nb)], now).await?;
                if let Some(lock) = self.objs.lock(&p.address).await? {
                    let r = self.objs.remove(&p.address, &lock).await;
                    self.objs.unlock(lock).await;
                    r?;
                }
                cancelled += 1;
            }
        }
        if cancelled == 0 {
            return Err(Error::not_found(format!(
                "no queued retrieve request for archive file {archive_file_id}{}",
                dst_url.map(|d| format!(" to {d:?}")).unwrap_or_default()
            )));
        }
        Ok(cancelled)
    }

    async fn mount_info(&self, _now: Timestamp) -> Result<MountInfo> {
        self.ready().await?;
        let mut info = MountInfo::default();
        let kinds =
            [QueueKind::ArchiveToTransferForUser, QueueKind::ArchiveToTransferForRepack, QueueKind::RetrieveToTransfer];
        let queues = self.queues_of(&kinds).await?;
        let addresses: Vec<String> = queues.iter().map(|(_, a)| a.clone()).collect();
        let objects = self.objs.read_many::<Queue>(&addresses).await?;
        for ((key, _), q) in queues.into_iter().zip(objects) {
            let Some(q) = q else { continue };
            if q.summary.count == 0 {
                continue;
            }
            let (mount_type, tape_pool, vid) = match key.kind {
                QueueKind::ArchiveToTransferForUser => (MountType::ArchiveForUser, Some(key.container.clone()), None),
                QueueKind::ArchiveToTransferForRepack => {
                    (MountType::ArchiveForRepack, Some(key.container.clone()), None)
                }
                _ => (MountType::Retrieve, None, Some(key.container.clone())),
            };
            info.potential_mounts.push(Arc::new(PotentialMount {
                mount_type,
                tape_pool,
                vid,
                files_queued: q.summary.count,
                bytes_queued: q.summary.bytes_queued(),
                oldest_job_start: q.oldest().unwrap_or(0),
                youngest_job_start: q.youngest().unwrap_or(0),
                priority: q.summary.priorities.keys().next_back().copied().unwrap_or(0),
                min_request_age: q.summary.min_ages.keys().next().copied().unwrap_or(0),
                policy_counts: q.summary.policies.clone(),
                sleep: q.sleep.clone(),
            }));
        }
        info.sort();
        Ok(info)
    }

    async fn next_mount(
        &self,
        _logical_library: &str,
        now: Timestamp,
        decide: &DecideFn<'_>,
    ) -> Result<Option<(MountId, MountSpec)>> {
        self.ready().await?;
        let Some((lock, mut global)) = self.objs.lock_read::<GlobalLock>(GLOBAL_LOCK).await? else {
            return Err(Error::internal("the global scheduler lock object is missing"));
        };
        let result = async {
            let info = self.mount_info(now).await?;
            let Some(spec) = decide(&info) else { return Ok(None) };
            let id = global.next_mount_id;
            global.next_mount_id += 1;
            self.objs.write(GLOBAL_LOCK, &global, &lock).await?;
            let agent = Agent {
                description: format!("drive session of {} on {}", spec.drive, spec.vid),
                heartbeat: now,
                mount: Some(MountRecord { id, spec: spec.clone() }),
                ..Agent::default()
            };
            self.register_agent(&mount_agent_name(id), agent, false).await?;
            Ok(Some((id, spec)))
        }
        .await;
        self.objs.unlock(lock).await;
        result
    }

    async fn open_mount(&self, mount: MountId, spec: &MountSpec, now: Timestamp) -> Result<()> {
        self.ready().await?;
        self.objs
            .update::<GlobalLock, _>(GLOBAL_LOCK, |g| {
                g.next_mount_id = g.next_mount_id.max(mount + 1);
                Ok(((), Write::Commit))
            })
            .await?;
        let agent = Agent {
            description: format!("drive session of {} on {}", spec.drive, spec.vid),
            heartbeat: now,
            mount: Some(MountRecord { id: mount, spec: spec.clone() }),
            ..Agent::default()
        };
        self.register_agent(&mount_agent_name(mount), agent, false).await.map_err(|e| match e.kind {
            tapesched_scheduler::ErrorKind::Conflict => Error::conflict(format!("mount {mount} already exists")),
            _ => e,
        })
    }

    async fn pop_jobs(&self, mount: MountId, max_files: u64, max_bytes: u64, now: Timestamp) -> Result<Vec<MountJob>> {
        self.ready().await?;
        let (agent, _, record) = self.mount_agent(mount).await?;
        let key = match record.spec.mount_type {
            MountType::Retrieve => QueueKey::new(QueueKind::RetrieveToTransfer, &record.spec.vid),
            t => QueueKey::new(archive_queue_kind(t), &record.spec.tape_pool),
        };
        let Some(mut q) = self.open(&key, false).await? else { return Ok(vec![]) };
        let result = async {
            let (mut count, mut bytes) = (0u64, 0u64);
            q.prefetch(&self.objs, max_files).await?;
            let taken = q
                .take_front(&self.objs, |j| {
                    let fits = count < max_files && (count == 0 || bytes.saturating_add(j.size) <= max_bytes);
                    if !fits {
                        return None;
                    }
                    count += 1;
                    bytes = bytes.saturating_add(j.size);
                    Some(true)
                })
                .await?;
            let names: Vec<String> = taken.iter().map(|p| p.address.clone()).collect();
            self.log(&agent, &names, true, now).await?;
            let claimed = self.take_many_from_queue(&taken, &key, &agent).await?;
            let mut jobs = Vec::with_capacity(taken.len());
            let mut stale = Vec::new();
            let mut kept = HashSet::new();
            for (p, job) in taken.iter().zip(claimed) {
                match job {
                    Some(j) => {
                        kept.insert(p.address.as_str());
                        jobs.push(j);
                    }
                    None => stale.push(p.address.clone()),
                }
            }
            // A second pointer to a job claimed through the first is stale, but the job's name
            // must stay in the session's log.
            stale.retain(|name| !kept.contains(name.as_str()));
            Ok::<_, Error>((jobs, stale))
        }
        .await;
        match result {
            Ok((jobs, stale)) => {
                self.close(q, now).await?;
                self.log(&agent, &stale, false, now).await?;
                Ok(jobs)
            }
            Err(e) => {
                self.objs.unlock(q.lock).await;
                Err(e)
            }
        }
    }

    async fn claim_jobs(&self, mount: MountId, jobs: &[JobId], now: Timestamp) -> Result<Vec<MountJob>> {
        self.ready().await?;
        let (agent, _, _) = self.mount_agent(mount).await?;
        let me = Owner::Agent(agent.clone());
        let mut out = Vec::new();
        for id in jobs {
            let (name, owner) = match id.request {
                RequestId::Archive(afid) => {
                    let name = archive_request_name(afid);
                    let Some(s) = self.objs.read::<StoredArchive>(&name).await? else { continue };
                    let Some(job) = s.request.job(id.copy_nb) else { continue };
                    if job.status != ArchiveJobStatus::ToTransfer {
                        continue;
                    }
                    (name, s.owners.get(&id.copy_nb).cloned())
                }
                RequestId::Retrieve(rid) => {
                    let name = retrieve_request_name(rid);
                    let Some(s) = self.objs.read::<StoredRetrieve>(&name).await? else { continue };
                    if s.request.status != RetrieveStatus::ToTransfer {
                        continue;
                    }
                    (name, Some(s.owner))
                }
            };
            let Some(Owner::Queue(key)) = owner else { continue };
            if !key.kind.is_transfer() {
                continue;
            }
            self.log(&agent, std::slice::from_ref(&name), true, now).await?;
            let (qk, me2) = (Owner::Queue(key.clone()), me.clone());
            let job = match id.request {
                RequestId::Archive(afid) => self
                    .update_archive(afid, |s| {
                        if s.owners.get(&id.copy_nb) != Some(&qk) {
                            return Ok((None, Write::Keep));
                        }
                        s.owners.insert(id.copy_nb, me2);
                        Ok((Some(MountJob::Archive { request: s.request.clone(), copy_nb: id.copy_nb }), Write::Commit))
                    })
                    .await?
                    .flatten(),
                RequestId::Retrieve(rid) => self
                    .update_retrieve(rid, |s| {
                        if s.owner != qk {
                            return Ok((None, Write::Keep));
                        }
                        s.owner = me2;
                        Ok((Some(MountJob::Retrieve { request: s.request.clone() }), Write::Commit))
                    })
                    .await?
                    .flatten(),
            };
            match job {
                Some(j) => {
                    self.remove_pointers(&key, &[(name, id.copy_nb.max(j.id().copy_nb))], now).await?;
                    out.push(j);
                }
                None => self.log(&agent, &[name], false, now).await?,
            }
        }
        Ok(out)
    }

    async fn transfers_succeeded(&self, mount: MountId, jobs: &[TransferSuccess], now: Timestamp) -> Result<()> {
        self.ready().await?;
        let (agent, _, _) = self.mount_agent(mount).await?;
        let me = Owner::Agent(agent.clone());
        let me = &me;
        // The requests are read in one batch and changed by compare-and-swap (see
        // `Objects::update_many`); each is changed only if this session still owns the job.
        let ids: Vec<RequestId> = jobs.iter().map(|s| s.job.request).collect();
        let moved = self
            .update_requests(
                &ids,
                |i, st| {
                    let s = &jobs[i];
                    if st.owners.get(&s.job.copy_nb) != Some(me) {
                        return Ok((None, Write::Keep));
                    }
                    let outcome = rules::on_archive_success(&mut st.request, s.job.copy_nb, s.tape_file.clone());
                    let job = st.request.job(s.job.copy_nb).cloned();
                    let home = match (outcome, job) {
                        (ArchiveSuccessOutcome::Report, Some(job)) => archive_home(&st.request, &job),
                        _ => None,
                    };
                    match home {
                        Some((key, outcome)) => {
                            st.owners.insert(s.job.copy_nb, Owner::Queue(key.clone()));
                            let ptr = archive_pointer(&st.request, s.job.copy_nb, outcome);
                            Ok((Some((key, ptr)), Write::Commit))
                        }
                        None => {
                            st.owners.insert(s.job.copy_nb, Owner::Nobody);
                            Ok((None, Write::Commit))
                        }
                    }
                },
                |_, st| {
                    if st.owner != *me {
                        return Ok((None, Write::Keep));
                    }
                    if st.request.report_url.is_none() {
                        return Ok((None, Write::Delete));
                    }
                    st.request.status = RetrieveStatus::ToReportForTransfer;
                    let (key, outcome) = retrieve_home(&st.request);
                    st.owner = Owner::Queue(key.clone());
                    Ok((Some((key, retrieve_pointer(&st.request, outcome))), Write::Commit))
                },
            )
            .await?;
        let mut moves = Moves::new();
        for (key, ptr) in moved.into_iter().flatten().flatten() {
            moves.entry(key).or_default().push(ptr);
        }
        let done: Vec<String> = ids.iter().map(|id| request_name(*id)).collect();
        self.add_pointers(moves, now).await?;
        self.log(&agent, &done, false, now).await
    }

    async fn transfers_failed(
        &self,
        mount: MountId,
        jobs: &[JobId],
        reason: &str,
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<()> {
        self.ready().await?;
        let (agent, _, _) = self.mount_agent(mount).await?;
        let me = Owner::Agent(agent.clone());
        let mut moves = Moves::new();
        let mut released = Vec::new();
        for id in jobs {
            match id.request {
                RequestId::Archive(afid) => {
                    let me2 = me.clone();
                    let moved = self
                        .update_archive(afid, |st| {
                            if st.owners.get(&id.copy_nb) != Some(&me2) {
                                return Ok((None, Write::Keep));
                            }
                            let outcome = rules::on_archive_failure(&mut st.request, id.copy_nb, mount, reason);
                            if outcome == FailureOutcome::HoldInMount {
                                return Ok((Some(None), Write::Commit));
                            }
                            let job = st.request.job(id.copy_nb).cloned();
                            match job.and_then(|j| archive_home(&st.request, &j)) {
                                Some((key, outcome)) => {
                                    st.owners.insert(id.copy_nb, Owner::Queue(key.clone()));
                                    Ok((
                                        Some(Some((key, archive_pointer(&st.request, id.copy_nb, outcome)))),
                                        Write::Commit,
                                    ))
                                }
                                None => Ok((Some(None), Write::Commit)),
                            }
                        })
                        .await?
                        .flatten();
                    if let Some(m) = moved {
                        if let Some((key, ptr)) = m {
                            moves.entry(key).or_default().push(ptr);
                            released.push(archive_request_name(afid));
                        }
                    } else {
                        released.push(archive_request_name(afid));
                    }
                }
                RequestId::Retrieve(rid) => {
                    let name = retrieve_request_name(rid);
                    let Some(current) = self.objs.read::<StoredRetrieve>(&name).await? else {
                        released.push(name);
                        continue;
                    };
                    if current.owner != me {
                        released.push(name);
                        continue;
                    }
                    // Decide on a copy of the request, then route it, then apply under the lock.
                    let mut request = current.request.clone();
                    let mut outcome = rules::on_retrieve_failure(&mut request, mount, reason);
                    if outcome == FailureOutcome::Requeue {
                        match self.route(&request, router).await? {
                            Some(vid) => request.active_vid = vid,
                            None => {
                                outcome = FailureOutcome::ReportFailure;
                                request.status = RetrieveStatus::ToReportForFailure;
                            }
                        }
                    }
                    let me2 = me.clone();
                    let moved = self
                        .update_retrieve(rid, move |st| {
                            if st.owner != me2 {
                                return Ok((None, Write::Keep));
                            }
                            st.request = request;
                            if outcome == FailureOutcome::HoldInMount {
                                return Ok((Some(None), Write::Commit));
                            }
                            let (key, o) = retrieve_home(&st.request);
                            st.owner = Owner::Queue(key.clone());
                            Ok((Some(Some((key, retrieve_pointer(&st.request, o)))), Write::Commit))
                        })
                        .await?
                        .flatten();
                    match moved {
                        Some(Some((key, ptr))) => {
                            moves.entry(key).or_default().push(ptr);
                            released.push(name);
                        }
                        Some(None) => {}
                        None => released.push(name),
                    }
                }
            }
        }
        self.add_pointers(moves, now).await?;
        self.log(&agent, &released, false, now).await
    }

    async fn requeue_jobs(
        &self,
        mount: MountId,
        jobs: &[JobId],
        now: Timestamp,
        _router: &dyn RetrieveRouter,
    ) -> Result<u64> {
        self.ready().await?;
        let (agent, _, _) = self.mount_agent(mount).await?;
        let me = Owner::Agent(agent.clone());
        let mut moves = Moves::new();
        let mut released = Vec::new();
        for id in jobs {
            let me2 = me.clone();
            let moved = match id.request {
                RequestId::Archive(afid) => self
                    .update_archive(afid, |st| {
                        if st.owners.get(&id.copy_nb) != Some(&me2) {
                            return Ok((None, Write::Keep));
                        }
                        let job = st.request.job(id.copy_nb).cloned();
                        match job.and_then(|j| archive_home(&st.request, &j)) {
                            Some((key, o)) => {
                                st.owners.insert(id.copy_nb, Owner::Queue(key.clone()));
                                Ok((Some((key, archive_pointer(&st.request, id.copy_nb, o))), Write::Commit))
                            }
                            None => Ok((None, Write::Keep)),
                        }
                    })
                    .await?
                    .flatten()
                    .map(|m| (archive_request_name(afid), m)),
                RequestId::Retrieve(rid) => self
                    .update_retrieve(rid, |st| {
                        if st.owner != me2 {
                            return Ok((None, Write::Keep));
                        }
                        let (key, o) = retrieve_home(&st.request);
                        st.owner = Owner::Queue(key.clone());
                        Ok((Some((key, retrieve_pointer(&st.request, o))), Write::Commit))
                    })
                    .await?
                    .flatten()
                    .map(|m| (retrieve_request_name(rid), m)),
            };
            if let Some((name, (key, ptr))) = moved {
                moves.entry(key).or_default().push(ptr);
                released.push(name);
            }
        }
        let n = released.len() as u64;
        self.add_pointers(moves, now).await?;
        self.log(&agent, &released, false, now).await?;
        Ok(n)
    }

    async fn end_mount(&self, mount: MountId, now: Timestamp, router: &dyn RetrieveRouter) -> Result<u64> {
        self.ready().await?;
        let (name, agent, _) = self.mount_agent(mount).await?;
        let n = self.requeue_owned(&name, &agent, now, router).await?;
        self.deregister_agent(&name).await?;
        Ok(n)
    }

    async fn abandon_mount(&self, mount: MountId, now: Timestamp) -> Result<()> {
        self.ready().await?;
        let name = mount_agent_name(mount);
        self.objs
            .update::<Agent, _>(&name, |a| {
                a.gc_needed = true;
                a.heartbeat = a.heartbeat.max(now);
                Ok(((), Write::Commit))
            })
            .await?
            .ok_or_else(|| Error::not_found(format!("mount {mount} does not exist or has ended")))
    }

    async fn heartbeat(&self, mount: Option<MountId>, now: Timestamp) -> Result<()> {
        self.ready().await?;
        if self.agent_ready.initialized() {
            self.touch(&self.agent, now).await?;
        }
        if let Some(m) = mount {
            self.touch(&mount_agent_name(m), now).await?;
        }
        Ok(())
    }

    async fn garbage_collect(&self, now: Timestamp, router: &dyn RetrieveRouter) -> Result<u64> {
        self.ready().await?;
        let register = self.objs.read::<AgentRegister>(AGENT_REGISTER).await?.unwrap_or_default();
        let mut requeued = 0;
        for name in register.agents {
            if name == self.agent {
                continue;
            }
            let Some(agent) = self.objs.read::<Agent>(&name).await? else {
                self.deregister_agent(&name).await?;
                continue;
            };
            if !self.is_dead(&agent, now).await {
                continue;
            }
            tracing::info!(agent = %name, owned = agent.owned.len(), "collecting a dead agent");
            requeued += self.requeue_owned(&name, &agent, now, router).await?;
            self.deregister_agent(&name).await?;
        }
        Ok(requeued)
    }

    async fn sleep_retrieve_queue(&self, vid: &str, sleep: QueueSleep, now: Timestamp) -> Result<()> {
        self.ready().await?;
        let key = QueueKey::new(QueueKind::RetrieveToTransfer, vid);
        let mut q = self.open(&key, true).await?.expect("created");
        q.queue.sleep = Some(sleep);
        self.close(q, now).await
    }

    async fn reports_due(&self, filter: ReportFilter, max: u64, _now: Timestamp) -> Result<Vec<ReportJob>> {
        self.ready().await?;
        let kinds: &[QueueKind] = match filter {
            ReportFilter::Archive => &[QueueKind::ArchiveToReport],
            ReportFilter::Retrieve => &[QueueKind::RetrieveToReport],
            ReportFilter::All => &[QueueKind::ArchiveToReport, QueueKind::RetrieveToReport],
        };
        let mut pointers: Vec<(QueueKey, JobPointer, Outcome)> = Vec::new();
        for (key, address) in self.queues_of(kinds).await? {
            let Some((_, jobs)) = self.read_queue_jobs(&address).await? else { continue };
            pointers.extend(jobs.into_iter().filter_map(|p| p.outcome.map(|o| (key.clone(), p, o))));
        }
        let order = |p: &JobPointer| (p.archive_file_id, matches!(p.request, RequestId::Retrieve(_)), p.request);
        pointers.sort_by_key(|(_, p, _)| order(p));
        pointers.dedup_by_key(|(_, p, _)| p.request);
        // Confirm each pointer with its request (others are stale hints), in order, reading the
        // requests in chunks until `max` reports are found.
        let max = max.min(usize::MAX as u64) as usize;
        let mut due = Vec::new();
        for chunk in pointers.chunks(512) {
            if due.len() >= max {
                break;
            }
            let names: Vec<String> = chunk.iter().map(|(_, p, _)| p.address.clone()).collect();
            let raw = self.objs.store().read_many(&names).await.map_err(store_error)?;
            for ((key, p, outcome), bytes) in chunk.iter().zip(raw) {
                let Some(bytes) = bytes else { continue };
                let owner = Owner::Queue(key.clone());
                let (owned, report_url, error_url) = match p.request {
                    RequestId::Archive(_) => {
                        let s: StoredArchive = self.objs.decode_named(&p.address, &bytes)?;
                        (s.owners.get(&p.copy_nb) == Some(&owner), s.request.report_url, s.request.error_report_url)
                    }
                    RequestId::Retrieve(_) => {
                        let s: StoredRetrieve = self.objs.decode_named(&p.address, &bytes)?;
                        (s.owner == owner, s.request.report_url, s.request.error_report_url)
                    }
                };
                if !owned || due.len() >= max {
                    continue;
                }
                let url = if *outcome == Outcome::Success { report_url } else { error_url };
                due.push(ReportJob { request: p.request, archive_file_id: p.archive_file_id, outcome: *outcome, url });
            }
        }
        Ok(due)
    }

    async fn reports_delivered(&self, reports: &[RequestId], now: Timestamp) -> Result<()> {
        self.ready().await?;
        let mut moves = Moves::new();
        let mut removals: BTreeMap<QueueKey, Vec<(String, u32)>> = BTreeMap::new();
        let names: Vec<String> = reports
            .iter()
            .map(|r| match r {
                RequestId::Archive(a) => archive_request_name(*a),
                RequestId::Retrieve(i) => retrieve_request_name(*i),
            })
            .collect();
        self.log_own(&names, true, now).await?;
        let outcomes = join_all(reports.iter().zip(&names).map(|(r, name)| async move {
            let out = match *r {
                RequestId::Archive(afid) => {
                    let out = self
                        .update_archive(afid, |st| {
                            let Some(job) = st.request.jobs.iter().find(|j| {
                                matches!(
                                    j.status,
                                    ArchiveJobStatus::ToReportForTransfer | ArchiveJobStatus::ToReportForFailure
                                )
                            }) else {
                                return Ok((None, Write::Keep));
                            };
                            let copy = job.copy_nb;
                            let Some(Owner::Queue(from)) = st.owners.get(&copy).cloned() else {
                                return Ok((None, Write::Keep));
                            };
                            if job.status == ArchiveJobStatus::ToReportForTransfer {
                                return Ok((Some((from, copy, None)), Write::Delete));
                            }
                            let job = st.request.job_mut(copy).expect("found");
                            job.status = ArchiveJobStatus::Failed;
                            let job = job.clone();
                            let home = archive_home(&st.request, &job).expect("failed jobs have a queue");
                            st.owners.insert(copy, Owner::Queue(home.0.clone()));
                            Ok((
                                Some((from, copy, Some((home.0, archive_pointer(&st.request, copy, None))))),
                                Write::Commit,
                            ))
                        })
                        .await?
                        .flatten();
                    out
                }
                RequestId::Retrieve(id) => {
                    let out = self
                        .update_retrieve(id, |st| {
                            let Owner::Queue(from) = st.owner.clone() else { return Ok((None, Write::Keep)) };
                            if from.kind != QueueKind::RetrieveToReport {
                                return Ok((None, Write::Keep));
                            }
                            let copy = st.request.active_copy().map_or(0, |c| c.copy_nb);
                            if st.request.status != RetrieveStatus::ToReportForFailure {
                                return Ok((Some((from, copy, None)), Write::Delete));
                            }
                            // A delivered failure report keeps the request in the failed list.
                            st.request.status = RetrieveStatus::Failed;
                            let (key, o) = retrieve_home(&st.request);
                            st.owner = Owner::Queue(key.clone());
                            Ok((Some((from, copy, Some((key, retrieve_pointer(&st.request, o))))), Write::Commit))
                        })
                        .await?
                        .flatten();
                    out
                }
            };
            Ok::<_, Error>(out.map(|(from, copy, to)| (from, (name.clone(), copy), to)))
        }))
        .await;
        for o in outcomes {
            if let Some((from, target, to)) = o? {
                removals.entry(from).or_default().push(target);
                if let Some((key, ptr)) = to {
                    moves.entry(key).or_default().push(ptr);
                }
            }
        }
        self.add_pointers(moves, now).await?;
        for (key, targets) in removals {
            self.remove_pointers(&key, &targets, now).await?;
        }
        self.log_own(&names, false, now).await
    }

    async fn reports_failed(&self, reports: &[RequestId], reason: &str, now: Timestamp) -> Result<()> {
        self.ready().await?;
        let mut moves = Moves::new();
        let mut removals: BTreeMap<QueueKey, Vec<(String, u32)>> = BTreeMap::new();
        let names: Vec<String> = reports
            .iter()
            .map(|r| match r {
                RequestId::Archive(a) => archive_request_name(*a),
                RequestId::Retrieve(i) => retrieve_request_name(*i),
            })
            .collect();
        self.log_own(&names, true, now).await?;
        for (r, name) in reports.iter().zip(&names) {
            match *r {
                RequestId::Archive(afid) => {
                    let out = self
                        .update_archive(afid, |st| {
                            let Some(job) = st.request.jobs.iter_mut().find(|j| {
                                matches!(
                                    j.status,
                                    ArchiveJobStatus::ToReportForTransfer | ArchiveJobStatus::ToReportForFailure
                                )
                            }) else {
                                return Ok((None, Write::Keep));
                            };
                            job.failure_reasons.push(format!("report failed: {reason}"));
                            if !rules::on_report_failure(&mut job.retries) {
                                return Ok((None, Write::Commit));
                            }
                            job.status = ArchiveJobStatus::Failed;
                            let (copy, job) = (job.copy_nb, job.clone());
                            let Some(Owner::Queue(from)) = st.owners.get(&copy).cloned() else {
                                return Ok((None, Write::Commit));
                            };
                            let home = archive_home(&st.request, &job).expect("failed jobs have a queue");
                            st.owners.insert(copy, Owner::Queue(home.0.clone()));
                            Ok((Some((from, copy, home.0, archive_pointer(&st.request, copy, None))), Write::Commit))
                        })
                        .await?
                        .flatten();
                    if let Some((from, copy, key, ptr)) = out {
                        removals.entry(from).or_default().push((name.clone(), copy));
                        moves.entry(key).or_default().push(ptr);
                    }
                }
                RequestId::Retrieve(id) => {
                    let out = self
                        .update_retrieve(id, |st| {
                            let Owner::Queue(from) = st.owner.clone() else { return Ok((None, Write::Keep)) };
                            if from.kind != QueueKind::RetrieveToReport {
                                return Ok((None, Write::Keep));
                            }
                            st.request.failure_reasons.push(format!("report failed: {reason}"));
                            let give_up = match st.request.active_copy_mut() {
                                Some(c) => rules::on_report_failure(&mut c.retries),
                                None => true,
                            };
                            if !give_up {
                                return Ok((None, Write::Commit));
                            }
                            st.request.status = RetrieveStatus::Failed;
                            let (key, o) = retrieve_home(&st.request);
                            st.owner = Owner::Queue(key.clone());
                            let ptr = retrieve_pointer(&st.request, o);
                            Ok((Some((from, ptr.copy_nb, key, ptr)), Write::Commit))
                        })
                        .await?
                        .flatten();
                    if let Some((from, copy, key, ptr)) = out {
                        removals.entry(from).or_default().push((name.clone(), copy));
                        moves.entry(key).or_default().push(ptr);
                    }
                }
            }
        }
        self.add_pointers(moves, now).await?;
        for (key, targets) in removals {
            self.remove_pointers(&key, &targets, now).await?;
        }
        self.log_own(&names, false, now).await
    }

    async fn set_cleanup_flag(&self, vid: &str, flag: bool, now: Timestamp) -> Result<()> {
        self.ready().await?;
        let key = QueueKey::new(QueueKind::RetrieveToTransfer, vid);
        let Some(mut q) = self.open(&key, flag).await? else { return Ok(()) };
        q.queue.cleanup = flag;
        self.close(q, now).await
    }

    async fn cleanup_flagged(&self) -> Result<Vec<String>> {
        self.ready().await?;
        let mut out = Vec::new();
        for (key, address) in self.queues_of(&[QueueKind::RetrieveToTransfer]).await? {
            if self.objs.read::<Queue>(&address).await?.is_some_and(|q| q.cleanup) {
                out.push(key.container);
            }
        }
        out.sort();
        Ok(out)
    }

    async fn drain_retrieve_queue(
        &self,
        vid: &str,
        now: Timestamp,
        router: &dyn RetrieveRouter,
    ) -> Result<DrainReport> {
        self.ready().await?;
        let key = QueueKey::new(QueueKind::RetrieveToTransfer, vid);
        let Some(mut q) = self.open(&key, false).await? else { return Ok(DrainReport::default()) };
        let taken = match q.remove(&self.objs, |_| true).await {
            Ok(t) => t,
            Err(e) => {
                self.objs.unlock(q.lock).await;
                return Err(e);
            }
        };
        let names: Vec<String> = taken.iter().map(|p| p.address.clone()).collect();
        // The pointers leave the queue only once the requests are in this agent's log.
        if let Err(e) = self.log_own(&names, true, now).await {
            self.objs.unlock(q.lock).await;
            return Err(e);
        }
        q.queue.cleanup = false;
        self.close(q, now).await?;
        let me = Owner::Agent(self.agent.clone());
        let qk = Owner::Queue(key.clone());
        let mut report = DrainReport::default();
        for p in &taken {
            let RequestId::Retrieve(id) = p.request else { continue };
            // Take ownership from the queue first, so the request is ours while it is routed.
            let (me2, qk2) = (me.clone(), qk.clone());
            let owned = self
                .update_retrieve(id, |st| {
                    if st.owner != qk2 {
                        return Ok((None, Write::Keep));
                    }
                    st.owner = me2;
                    Ok((Some(st.request.clone()), Write::Commit))
                })
                .await?
                .flatten();
            let Some(mut request) = owned else { continue };
            match self.route(&request, router).await?.filter(|v| v != vid) {
                Some(v) => {
                    request.active_vid = v;
                    report.requeued += 1;
                }
                None => {
                    request.status = RetrieveStatus::ToReportForFailure;
                    request
                        .failure_reasons
                        .push(format!("tape {vid:?} left service and no other copy can be recalled"));
                    report.failed += 1;
                }
            }
            let me2 = me.clone();
            let moved = self
                .update_retrieve(id, move |st| {
                    if st.owner != me2 {
                        return Ok((None, Write::Keep));
                    }
                    st.request = request;
                    let (k, o) = retrieve_home(&st.request);
                    st.owner = Owner::Queue(k.clone());
                    Ok((Some((k, retrieve_pointer(&st.request, o))), Write::Commit))
                })
                .await?
                .flatten();
            if let Some((k, ptr)) = moved {
                self.add_pointers(Moves::from([(k, vec![ptr])]), now).await?;
            }
        }
        self.log_own(&names, false, now).await?;
        Ok(report)
    }

    async fn list_pending(&self, kind: JobKind, queue: Option<&str>) -> Result<Vec<PendingJob>> {
        self.ready().await?;
        let qkind = match kind {
            JobKind::Archive => QueueKind::ArchiveToTransferForUser,
            JobKind::Retrieve => QueueKind::RetrieveToTransfer,
        };
        let mut out = Vec::new();
        for (key, address) in self.queues_of(&[qkind]).await? {
            if queue.is_some_and(|q| q != key.container) {
                continue;
            }
            let Some((_, jobs)) = self.read_queue_jobs(&address).await? else { continue };
            out.extend(jobs.into_iter().map(|p| PendingJob {
                job: JobId { request: p.request, copy_nb: p.copy_nb },
                archive_file_id: p.archive_file_id,
                queue: key.container.clone(),
                size: p.size,
            }));
        }
        Ok(out)
    }

    async fn list_failed(&self, kind: JobKind) -> Result<Vec<u64>> {
        self.ready().await?;
        let qkind = match kind {
            JobKind::Archive => QueueKind::ArchiveFailed,
            JobKind::Retrieve => QueueKind::RetrieveFailed,
        };
        let mut ids = Vec::new();
        for (_, address) in self.queues_of(&[qkind]).await? {
            if let Some((_, jobs)) = self.read_queue_jobs(&address).await? {
                ids.extend(jobs.iter().map(|p| p.archive_file_id));
            }
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }
}

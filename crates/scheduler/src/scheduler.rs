//! The `Scheduler`: every workflow of the tape archive, from a request arriving to its report,
//! written once against the [`Catalogue`] and [`SchedulerDb`] traits.
//!
//! A tape daemon's side of a mount is a [`TapeSession`]; the scheduler hands it jobs, records the
//! tape side's results in the catalogue and the backend, and reports the drive's status.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::bounds;
use crate::catalogue::{Catalogue, CatalogueEdit, CatalogueSnapshot, NewTapeFile};
use crate::clock::{Clock, Timestamp};
use crate::db::*;
use crate::decision::{self, Decision, SchedulerConfig};
use crate::error::{Error, Result};
use crate::names::{check_name, check_requester, check_text, MAX_TEXT};
use crate::repack::{MemoryBuffer, RepackBuffer};
use crate::resolve;
pub use crate::resolve::CatalogueRouter;

mod listings;
mod repack_flow;
mod retrieves;
use crate::types::*;
pub use repack_flow::{repack_requester, RepackSubmission};

/// An archive request as a disk system submits it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveSubmission {
    /// Requested archive file id (else the catalogue assigns one).
    pub archive_file_id: Option<u64>,
    /// Disk instance (default: the catalogue's first).
    pub disk_instance: Option<String>,
    /// Disk file id (default: the archive file id).
    pub disk_file_id: Option<String>,
    /// Requester.
    pub requester: Requester,
    /// Storage class.
    pub storage_class: String,
    /// Size in bytes (> 0).
    pub size: u64,
    /// Creation time (default: now).
    pub created_at: Option<Timestamp>,
    /// Success report URL.
    pub report_url: Option<String>,
    /// Failure report URL.
    pub error_report_url: Option<String>,
}

/// A retrieve request as a disk system submits it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetrieveSubmission {
    /// The file.
    pub archive_file_id: u64,
    /// Disk instance (must be the file's).
    pub disk_instance: Option<String>,
    /// Requester.
    pub requester: Option<Requester>,
    /// Restrict to the copy on this tape.
    pub vid: Option<String>,
    /// Activity.
    pub activity: Option<String>,
    /// Explicit mount policy.
    pub mount_policy: Option<String>,
    /// Destination URL.
    pub dst_url: Option<String>,
    /// Success report URL (none: no success report).
    pub report_url: Option<String>,
    /// Failure report URL.
    pub error_report_url: Option<String>,
    /// Creation time (default: now).
    pub created_at: Option<Timestamp>,
    /// Verification only.
    pub verify_only: bool,
}

/// Who asks for a tape state change: the operating modes of the reference workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StateChangeMode {
    /// No restriction.
    #[default]
    All,
    /// A user: may not touch tapes being repacked.
    User,
    /// Repack: may not move tapes into REPACKING, BROKEN or EXPORTED from outside repack.
    Repack,
}

/// The result of a tape state change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChange {
    /// The state after the change.
    pub state: TapeState,
    /// The tape's retrieve queue is flagged for cleanup.
    pub cleanup_requested: bool,
}

/// One line of `show_queues`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueSummary {
    /// Mount type.
    pub mount_type: MountType,
    /// Pool (for retrieves, the tape's pool when known).
    pub tape_pool: Option<String>,
    /// VID (retrieves).
    pub vid: Option<String>,
    /// Jobs queued.
    pub files_queued: u64,
    /// Bytes queued.
    pub bytes_queued: u64,
    /// Drives with a current mount on this queue.
    pub current_mounts: u64,
    /// Age of the oldest queued job (absent for an empty queue).
    pub oldest_job_age: Option<u64>,
    /// Sleeping for a full disk system (retrieves).
    pub sleeping: Option<bool>,
}

/// A tape daemon's side of a mount: the mount and the jobs popped and not yet completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapeSession {
    /// Backend mount id.
    pub mount_id: MountId,
    /// What is mounted.
    pub spec: MountSpec,
    /// Jobs popped and not completed, in pop order.
    pub popped: Vec<MountJob>,
    /// Disk-space reservations held for popped retrieve jobs: job, disk system, bytes.
    pub reserved: Vec<(JobId, String, u64)>,
}

/// The scheduler.
pub struct Scheduler {
    db: Arc<dyn SchedulerDb>,
    catalogue: Arc<dyn Catalogue>,
    clock: Arc<dyn Clock>,
    config: SchedulerConfig,
    buffer: Arc<dyn RepackBuffer>,
    observer: Option<DecisionObserver>,
}

/// Receives every mount decision [`Scheduler::next_mount`] makes, with its explanation: the drive
/// and the [`Decision`] (`decision::decide` on the mount info the backend read under its
/// scheduling lock). The end-to-end harness compares them between backends.
pub type DecisionObserver = Arc<dyn Fn(&str, &Decision) + Send + Sync>;

fn opt_text(field: &str, v: &Option<String>) -> Result<()> {
    v.as_deref().map_or(Ok(()), |s| check_text(field, s, MAX_TEXT))
}

fn check_who(who: &Requester) -> Result<()> {
    check_requester("requester name", &who.name)?;
    check_requester("requester group", &who.group)
}

impl Scheduler {
    /// A scheduler over a backend and a catalogue, reading "now" from `clock`.
    pub fn new(
        db: Arc<dyn SchedulerDb>,
        catalogue: Arc<dyn Catalogue>,
        clock: Arc<dyn Clock>,
        config: SchedulerConfig,
    ) -> Self {
        Scheduler { db, catalogue, clock, config, buffer: Arc::new(MemoryBuffer::default()), observer: None }
    }

    /// The same scheduler sending every decision of [`Scheduler::next_mount`] to `observer`. Each
    /// decision is then computed with its explanation (`decision::decide`, which sorts every
    /// candidate) instead of `decision::choose`; the chosen mount is the same.
    pub fn with_decision_observer(mut self, observer: DecisionObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The same scheduler with `buffer` as the repack buffer (default: one in memory).
    pub fn with_buffer(mut self, buffer: Arc<dyn RepackBuffer>) -> Self {
        self.buffer = buffer;
        self
    }

    /// The repack buffer.
    pub fn buffer(&self) -> &Arc<dyn RepackBuffer> {
        &self.buffer
    }

    /// The backend.
    pub fn db(&self) -> &Arc<dyn SchedulerDb> {
        &self.db
    }
    /// The catalogue.
    pub fn catalogue(&self) -> &Arc<dyn Catalogue> {
        &self.catalogue
    }
    /// The settings.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }
    fn now(&self) -> Timestamp {
        self.clock.now()
    }
    async fn router(&self) -> Result<CatalogueRouter> {
        Ok(CatalogueRouter::new(&*self.catalogue.snapshot().await?, self.now()))
    }

    // --- administration --------------------------------------------------------------------

    /// Applies a plain catalogue edit.
    pub async fn edit_catalogue(&self, edit: CatalogueEdit) -> Result<()> {
        self.catalogue.apply(edit).await
    }

    /// Writes a drive's register entry as its tape server would; the drive keeps its library.
    pub async fn report_drive(&self, mut state: DriveState) -> Result<()> {
        check_name("drive", &state.name)?;
        let snap = self.catalogue.snapshot().await?;
        let known = snap
            .drives
            .get(&state.name)
            .ok_or_else(|| Error::not_found(format!("drive {:?} does not exist", state.name)))?;
        state.logical_library = known.logical_library.clone();
        self.catalogue.apply(CatalogueEdit::SetDrive(state)).await
    }

    /// Records a drive's status in the drive register as its tape daemon reports it during a
    /// session (`Mounting`, `Transferring`, `Unloading`, `CleaningUp`, `Down`...), with the mount
    /// it works on; the drive keeps its library and configuration. `next_mount` (`Starting`),
    /// `end_mount` (`Up`) and `crash_session` (`Down`) report their own statuses.
    pub async fn report_drive_status(&self, drive: &str, status: DriveStatus, mount: Option<&MountSpec>) -> Result<()> {
        check_name("drive", drive)?;
        self.set_drive_status(drive, status, mount).await
    }

    /// Records a drive Down in the drive register with the reason its tape daemon gives (a drive
    /// error, a stuck cartridge...), where operators read it; any other status clears it.
    pub async fn report_drive_down(&self, drive: &str, reason: &str) -> Result<()> {
        check_name("drive", drive)?;
        self.set_drive(drive, DriveStatus::Down, None, Some(reason.to_string())).await
    }

    async fn set_drive_status(&self, drive: &str, status: DriveStatus, mount: Option<&MountSpec>) -> Result<()> {
        self.set_drive(drive, status, mount, None).await
    }

    async fn set_drive(
        &self,
        drive: &str,
        status: DriveStatus,
        mount: Option<&MountSpec>,
        reason: Option<String>,
    ) -> Result<()> {
        let snap = self.catalogue.snapshot().await?;
        let Some(cur) = snap.drives.get(drive) else { return Err(Error::not_found(format!("drive {drive:?}"))) };
        let state = DriveState {
            status,
            mount_type: mount.map(|m| m.mount_type),
            vid: mount.map(|m| m.vid.clone()),
            tape_pool: mount.map(|m| m.tape_pool.clone()),
            next_mount_type: None,
            next_vid: None,
            next_tape_pool: None,
            reason,
            ..cur.clone()
        };
        self.catalogue.apply(CatalogueEdit::SetDrive(state)).await
    }

    // --- requests ---------------------------------------------------------------------------

    /// Queues an archive request: one job per copy of the storage class, all or nothing.
    /// Returns the archive file id.
    pub async fn queue_archive(&self, sub: ArchiveSubmission) -> Result<u64> {
        let now = self.now();
        let snap = self.catalogue.snapshot().await?;
        let request = self.prepare_archive(&snap, sub, now).await?;
        let id = request.archive_file_id;
        self.db.queue_archive(request, now).await?;
        Ok(id)
    }

    /// Queues several archive requests, each all or nothing (as a frontend does with the requests
    /// that arrived together); answers with the archive file id or the error of each, in order.
    pub async fn queue_archives(&self, subs: Vec<ArchiveSubmission>) -> Result<Vec<Result<u64>>> {
        let now = self.now();
        let snap = self.catalogue.snapshot().await?;
        let mut answers: Vec<Result<u64>> = Vec::with_capacity(subs.len());
        let mut requests = Vec::with_capacity(subs.len());
        for sub in subs {
            match self.prepare_archive(&snap, sub, now).await {
                Ok(r) => {
                    answers.push(Ok(r.archive_file_id));
                    requests.push(r);
                }
                Err(e) => answers.push(Err(e)),
            }
        }
        let mut queued = self.db.queue_archives(requests, now).await.into_iter();
        for answer in answers.iter_mut().filter(|a| a.is_ok()) {
            if let Some(Err(e)) = queued.next() {
                *answer = Err(e);
            }
        }
        Ok(answers)
    }

    /// Checks a submission against the catalogue and builds the request with its jobs.
    async fn prepare_archive(
        &self,
        snap: &CatalogueSnapshot,
        sub: ArchiveSubmission,
        now: Timestamp,
    ) -> Result<ArchiveRequest> {
        bounds::check_opt("archive_file_id", sub.archive_file_id)?;
        bounds::check("size", sub.size)?;
        check_who(&sub.requester)?;
        check_name("storage class", &sub.storage_class)?;
        opt_text("disk file id", &sub.disk_file_id)?;
        opt_text("report url", &sub.report_url)?;
        opt_text("error report url", &sub.error_report_url)?;
        if sub.size == 0 {
            return Err(Error::invalid("archive request of size 0: zero-length files are not archived"));
        }
        let instance = match &sub.disk_instance {
            Some(i) => {
                check_name("disk instance", i)?;
                if !snap.disk_instances.contains(i) {
                    return Err(Error::invalid(format!("disk instance {i:?} does not exist")));
                }
                i.clone()
            }
            None => snap
                .disk_instances
                .iter()
                .next()
                .cloned()
                .ok_or_else(|| Error::invalid("no disk instance given and the catalogue has none"))?,
        };
        let routes = resolve::archive_routes(snap, &sub.storage_class)?;
        let policy = resolve::archive_policy(snap, &instance, &sub.requester)?;
        let id = self.catalogue.reserve_archive_file_id(sub.archive_file_id).await?;
        Ok(ArchiveRequest {
            archive_file_id: id,
            disk_instance: instance,
            disk_file_id: sub.disk_file_id.clone().unwrap_or_else(|| id.to_string()),
            requester: sub.requester.clone(),
            storage_class: sub.storage_class.clone(),
            size: sub.size,
            created_at: sub.created_at.unwrap_or(now),
            report_url: sub.report_url.clone(),
            error_report_url: sub.error_report_url.clone(),
            policy: QueuedPolicy {
                name: policy.name.clone(),
                priority: policy.archive_priority,
                min_request_age: policy.archive_min_request_age,
            },
            jobs: routes.into_iter().map(|(copy_nb, tape_pool)| ArchiveJob::new(copy_nb, tape_pool)).collect(),
            report_decided: false,
            repack: None,
        })
    }

    /// Cancels a queued archive request.
    pub async fn cancel_archive(&self, archive_file_id: u64) -> Result<()> {
        bounds::check("archive_file_id", archive_file_id)?;
        self.db.cancel_archive(archive_file_id, self.now()).await
    }

    /// Cancels the queued retrieves of a file (for one destination if given); returns how many.
    pub async fn cancel_retrieve(&self, archive_file_id: u64, dst_url: Option<&str>) -> Result<u64> {
        bounds::check("archive_file_id", archive_file_id)?;
        if let Some(d) = dst_url {
            check_text("dst url", d, MAX_TEXT)?;
        }
        self.db.cancel_retrieve(archive_file_id, dst_url, self.now()).await
    }

    // --- tape states ------------------------------------------------------------------------

    /// The tape-state workflow: checks the transition, sets `*_PENDING` states where the queue
    /// must be cleaned up first, and flags the retrieve queue for cleanup.
    pub async fn change_tape_state(
        &self,
        vid: &str,
        wanted: TapeState,
        reason: Option<&str>,
        mode: StateChangeMode,
    ) -> Result<StateChange> {
        use TapeState::*;
        check_name("vid", vid)?;
        if let Some(r) = reason {
            check_text("reason", r, MAX_TEXT)?;
        }
        let now = self.now();
        let snap = self.catalogue.snapshot().await?;
        let tape = snap.tapes.get(vid).ok_or_else(|| Error::not_found(format!("tape {vid:?} does not exist")))?;
        let current = tape.state;
        let flagged =
            |db: Arc<dyn SchedulerDb>| async move { db.cleanup_flagged().await.map(|f| f.iter().any(|v| v == vid)) };
        if wanted.is_pending() {
            return Err(Error::refused(format!("{wanted} is an internal state and cannot be requested")));
        }
        if wanted == current {
            if let Some(r) = reason.filter(|r| Some(*r) != tape.state_reason.as_deref() && !r.is_empty()) {
                self.catalogue
                    .apply(CatalogueEdit::SetTapeState {
                        vid: vid.into(),
                        state: current,
                        reason: Some(r.into()),
                        expected: Some(current),
                    })
                    .await?;
            }
            return Ok(StateChange { state: current, cleanup_requested: flagged(self.db.clone()).await? });
        }
        let refuse = |why: &str| Err(Error::refused(format!("tape {vid:?}: {current} -> {wanted} refused: {why}")));
        match mode {
            StateChangeMode::Repack
                if matches!(current, Active | Disabled | RepackingPending | BrokenPending | ExportedPending)
                    && matches!(wanted, Repacking | Broken | Exported) =>
            {
                return refuse("not allowed in repack mode");
            }
            StateChangeMode::User
                if matches!(current, Repacking | RepackingDisabled)
                    && matches!(wanted, Active | Disabled | Repacking | Broken | Exported) =>
            {
                return refuse("the tape is being repacked");
            }
            _ => {}
        }
        if let Some(target) = current.pending_target() {
            if wanted != target {
                return refuse(&format!("from {current} only {target} may be requested"));
            }
        }
        if wanted == RepackingDisabled && current != Repacking {
            return refuse("REPACKING_DISABLED is only reachable from REPACKING");
        }
        if current == RepackingDisabled && !matches!(wanted, Repacking | Broken | Exported) {
            return refuse("from REPACKING_DISABLED only REPACKING, BROKEN or EXPORTED");
        }
        let from_repack = matches!(current, Repacking | RepackingDisabled);
        if from_repack && !matches!(wanted, Repacking | RepackingDisabled) && self.db.repack(vid).await?.is_some() {
            return refuse("a repack request exists for the tape (cancel it, or let it finish and remove it, first)");
        }
        let applied = match wanted {
            Broken if !from_repack => BrokenPending,
            Exported if !from_repack => ExportedPending,
            Repacking if current != RepackingDisabled => RepackingPending,
            other => other,
        };
        self.catalogue
            .apply(CatalogueEdit::SetTapeState {
                vid: vid.into(),
                state: applied,
                reason: reason.map(String::from),
                expected: Some(current),
            })
            .await?;
        if applied.is_pending() {
            self.db.set_cleanup_flag(vid, true, now).await?;
        }
        Ok(StateChange { state: applied, cleanup_requested: flagged(self.db.clone()).await? })
    }

    /// The queue-cleanup maintenance pass: drains the retrieve queues of tapes in a `*_PENDING`
    /// state (or flagged for cleanup) to other copies or to failure, then moves those tapes to
    /// their final state. Returns the VIDs this pass finalised, sorted.
    ///
    /// Passes may run at once (the maintenance daemon's loop, an operator starting a repack, a
    /// second maintenance instance): a tape whose state another pass (or an operator) changed
    /// between this pass's snapshot and its write is left as the other made it, not an error,
    /// and the pass goes on with the other tapes.
    pub async fn cleanup_queues(&self) -> Result<Vec<String>> {
        let now = self.now();
        let snap = self.catalogue.snapshot().await?;
        let mut vids: BTreeSet<String> = self.db.cleanup_flagged().await?.into_iter().collect();
        vids.extend(snap.tapes.values().filter(|t| t.state.is_pending()).map(|t| t.vid.clone()));
        let router = CatalogueRouter::new(&snap, now);
        let mut finalized = Vec::new();
        for vid in vids {
            let pending = snap.tapes.get(&vid).map(|t| t.state).filter(|s| s.is_pending());
            match pending {
                Some(state) => {
                    self.db.drain_retrieve_queue(&vid, now, &router).await?;
                    let target = state.pending_target().unwrap_or(state);
                    let edit = CatalogueEdit::SetTapeState {
                        vid: vid.clone(),
                        state: target,
                        reason: None,
                        expected: Some(state),
                    };
                    match self.catalogue.apply(edit).await {
                        Ok(()) => finalized.push(vid),
                        // No longer in `state`: another pass finalised it, or an operator moved it.
                        Err(e) if e.kind == crate::ErrorKind::Conflict => {}
                        Err(e) => return Err(e),
                    }
                }
                None => self.db.set_cleanup_flag(&vid, false, now).await?,
            }
        }
        Ok(finalized)
    }

    // --- mounts -----------------------------------------------------------------------------

    async fn drive_library(&self, snap: &CatalogueSnapshot, drive: &str) -> Result<String> {
        check_name("drive", drive)?;
        snap.drives
            .get(drive)
            .map(|d| d.logical_library.clone())
            .ok_or_else(|| Error::not_found(format!("drive {drive:?} does not exist")))
    }

    /// The decision a drive would get now, with its explanation (no lock, nothing recorded).
    pub async fn explain_mount(&self, drive: &str) -> Result<Decision> {
        let snap = self.catalogue.snapshot().await?;
        self.drive_library(&snap, drive).await?;
        let now = self.now();
        let info = self.db.mount_info(now).await?;
        Ok(decision::decide(&info, &snap, drive, now, &self.config))
    }

    /// True when a real [`Scheduler::next_mount`] would return a mount now.
    pub async fn next_mount_dry_run(&self, drive: &str) -> Result<bool> {
        Ok(self.explain_mount(drive).await?.chosen.is_some())
    }

    /// Decides and creates the drive's next mount under the backend's scheduling lock. With
    /// `report_starting`, the drive is then reported `Starting` on it, as a tape daemon does.
    pub async fn next_mount(&self, drive: &str, report_starting: bool) -> Result<Option<TapeSession>> {
        let snap = self.catalogue.snapshot().await?;
        let library = self.drive_library(&snap, drive).await?;
        if !decision::library_enabled(&snap, &library) {
            if let Some(observe) = &self.observer {
                observe(drive, &Decision::default());
            }
            return Ok(None);
        }
        let now = self.now();
        let config = self.config.clone();
        let decided = match &self.observer {
            None => {
                let decide = |info: &MountInfo| decision::choose(info, &snap, drive, now, &config);
                self.db.next_mount(&library, now, &decide).await?
            }
            Some(observe) => {
                // The backend may run `decide` more than once (a transaction tried again): the
                // last run is the one whose mount it recorded.
                let last = std::sync::Mutex::new(Decision::default());
                let decide = |info: &MountInfo| {
                    let d = decision::decide(info, &snap, drive, now, &config);
                    let chosen = d.chosen.clone();
                    *last.lock().unwrap_or_else(|e| e.into_inner()) = d;
                    chosen
                };
                let decided = self.db.next_mount(&library, now, &decide).await?;
                observe(drive, &last.into_inner().unwrap_or_else(|e| e.into_inner()));
                decided
            }
        };
        let Some((mount_id, spec)) = decided else { return Ok(None) };
        if report_starting {
            self.set_drive_status(drive, DriveStatus::Starting, Some(&spec)).await?;
        }
        Ok(Some(TapeSession { mount_id, spec, popped: vec![], reserved: vec![] }))
    }

    /// Pops the next batch of jobs for the session. For retrieves, reserves space on the
    /// destination disk systems; a disk system without room keeps its jobs queued and puts the
    /// queue to sleep for its `sleep_time`.
    pub async fn pop_jobs(&self, session: &mut TapeSession, max_files: u64, max_bytes: u64) -> Result<Vec<MountJob>> {
        bounds::check("max_files", max_files)?;
        bounds::check("max_bytes", max_bytes)?;
        if max_files == 0 || max_bytes == 0 {
            return Err(Error::invalid("max_files and max_bytes must be positive"));
        }
        let now = self.now();
        let mut jobs = self.db.pop_jobs(session.mount_id, max_files, max_bytes, now).await?;
        if session.spec.mount_type == MountType::Retrieve {
            let snap = self.catalogue.snapshot().await?;
            let mut per_ds: BTreeMap<String, u128> = BTreeMap::new();
            for j in &jobs {
                if let MountJob::Retrieve { request } = j {
                    if let Some(ds) = &request.disk_system {
                        *per_ds.entry(ds.clone()).or_default() += u128::from(request.size);
                    }
                }
            }
            let mut full: BTreeSet<String> = BTreeSet::new();
            for (ds, bytes) in &per_ds {
                let Some(cfg) = snap.disk_systems.get(ds) else { continue };
                // Exact sums: every term is at most 2^63-1, their sum fits in u128.
                let reserved: u128 =
                    snap.reservations.iter().filter(|((_, d), _)| d == ds).map(|(_, b)| u128::from(*b)).sum();
                if u128::from(cfg.free_space_bytes) < reserved + *bytes + u128::from(cfg.target_free_space_bytes) {
                    full.insert(ds.clone());
                    self.db
                        .sleep_retrieve_queue(
                            &session.spec.vid,
                            QueueSleep { disk_system: ds.clone(), until: now.saturating_add_unsigned(cfg.sleep_time) },
                            now,
                        )
                        .await?;
                } else {
                    self.catalogue
                        .apply(CatalogueEdit::Reserve {
                            drive: session.spec.drive.clone(),
                            disk_system: ds.clone(),
                            delta: bounds::clamp(*bytes) as i64,
                        })
                        .await?;
                }
            }
            if !full.is_empty() {
                let (back, keep): (Vec<MountJob>, Vec<MountJob>) = jobs.into_iter().partition(|j| match j {
                    MountJob::Retrieve { request } => request.disk_system.as_ref().is_some_and(|d| full.contains(d)),
                    _ => false,
                });
                let ids: Vec<JobId> = back.iter().map(MountJob::id).collect();
                self.db.requeue_jobs(session.mount_id, &ids, now, &self.router().await?).await?;
                jobs = keep;
            }
            for j in &jobs {
                if let MountJob::Retrieve { request } = j {
                    if let Some(ds) = &request.disk_system {
                        if snap.disk_systems.contains_key(ds) {
                            session.reserved.push((j.id(), ds.clone(), request.size));
                        }
                    }
                }
            }
        }
        session.popped.extend(jobs.iter().cloned());
        Ok(jobs)
    }

    async fn release(&self, session: &mut TapeSession, jobs: &[JobId]) -> Result<()> {
        let mut per_ds: BTreeMap<String, u128> = BTreeMap::new();
        session.reserved.retain(|(j, ds, b)| {
            if jobs.contains(j) {
                *per_ds.entry(ds.clone()).or_default() += u128::from(*b);
                false
            } else {
                true
            }
        });
        for (ds, b) in per_ds {
            self.catalogue
                .apply(CatalogueEdit::Reserve {
                    drive: session.spec.drive.clone(),
                    disk_system: ds,
                    delta: -(bounds::clamp(b) as i64),
                })
                .await?;
        }
        Ok(())
    }

    /// Completes popped jobs (those of `archive_file_ids`, or all) with the tape side's outcome.
    /// Archive successes are written to the catalogue first (next fSeq, tape fill), then recorded
    /// in the backend; failures go through the retry rules.
    pub async fn complete_jobs(
        &self,
        session: &mut TapeSession,
        archive_file_ids: Option<&[u64]>,
        outcome: Outcome,
        reason: Option<&str>,
    ) -> Result<()> {
        if let Some(ids) = archive_file_ids {
            for id in ids {
                bounds::check("archive_file_id", *id)?;
            }
        }
        let now = self.now();
        if let Some(ids) = archive_file_ids {
            for id in ids {
                if !session.popped.iter().any(|j| j.archive_file_id() == *id) {
                    return Err(Error::not_found(format!(
                        "archive file {id} has no job popped and not completed on drive {:?}",
                        session.spec.drive
                    )));
                }
            }
        }
        let (done, rest): (Vec<MountJob>, Vec<MountJob>) = std::mem::take(&mut session.popped)
            .into_iter()
            .partition(|j| archive_file_ids.is_none_or(|ids| ids.contains(&j.archive_file_id())));
        session.popped = rest;
        self.complete_popped(session, done, outcome, reason, now).await
    }

    /// Completes the popped jobs `jobs` (by job identity: two retrieves of the same file in one
    /// batch are told apart) with the tape side's outcome, as [`Scheduler::complete_jobs`] does.
    pub async fn complete_job_ids(
        &self,
        session: &mut TapeSession,
        jobs: &[JobId],
        outcome: Outcome,
        reason: Option<&str>,
    ) -> Result<()> {
        let now = self.now();
        for id in jobs {
            if !session.popped.iter().any(|j| j.id() == *id) {
                return Err(Error::not_found(format!(
                    "job {id:?} is not popped and not completed on drive {:?}",
                    session.spec.drive
                )));
            }
        }
        let (done, rest): (Vec<MountJob>, Vec<MountJob>) =
            std::mem::take(&mut session.popped).into_iter().partition(|j| jobs.contains(&j.id()));
        session.popped = rest;
        self.complete_popped(session, done, outcome, reason, now).await
    }

    async fn complete_popped(
        &self,
        session: &mut TapeSession,
        done: Vec<MountJob>,
        outcome: Outcome,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<()> {
        let ids: Vec<JobId> = done.iter().map(MountJob::id).collect();
        match outcome {
            Outcome::Success => {
                // The archive copies go to the catalogue in one call, in the batch's order.
                let files: Vec<NewTapeFile> = done
                    .iter()
                    .filter_map(|job| match job {
                        MountJob::Archive { request, copy_nb } => Some(NewTapeFile {
                            archive_file_id: request.archive_file_id,
                            disk_instance: request.disk_instance.clone(),
                            disk_file_id: request.disk_file_id.clone(),
                            size: request.size,
                            storage_class: request.storage_class.clone(),
                            copy_nb: *copy_nb,
                            vid: session.spec.vid.clone(),
                        }),
                        MountJob::Retrieve { .. } => None,
                    })
                    .collect();
                let mut written =
                    if files.is_empty() { vec![] } else { self.catalogue.record_tape_files(files).await? }.into_iter();
                let mut successes = Vec::with_capacity(done.len());
                for job in &done {
                    let tape_file = match job {
                        MountJob::Archive { .. } => Some(written.next().ok_or_else(|| {
                            Error::internal("the catalogue recorded fewer tape files than it was given")
                        })?),
                        MountJob::Retrieve { .. } => None,
                    };
                    successes.push(TransferSuccess { job: job.id(), tape_file });
                }
                self.db.transfers_succeeded(session.mount_id, &successes, now).await?;
            }
            Outcome::Failure => {
                let reason = reason.unwrap_or("transfer failed");
                check_text("reason", reason, MAX_TEXT)?;
                let router = self.router().await?;
                self.db.transfers_failed(session.mount_id, &ids, reason, now, &router).await?;
            }
        }
        self.release(session, &ids).await
    }

    /// Ends the session cleanly: every job it still holds is requeued and the drive reports Up.
    /// Returns how many jobs were requeued.
    pub async fn end_mount(&self, session: TapeSession) -> Result<u64> {
        self.end_mount_as(session, DriveStatus::Up).await
    }

    /// [`Scheduler::end_mount`], the drive then reported `status` (without a mount) instead of
    /// Up: a tape server ending the mount of a failed drive keeps it `CleaningUp` until it goes
    /// Down, so that the register never shows it Up in between.
    pub async fn end_mount_as(&self, mut session: TapeSession, status: DriveStatus) -> Result<u64> {
        let now = self.now();
        let n = self.db.end_mount(session.mount_id, now, &self.router().await?).await?;
        let all: Vec<JobId> = session.reserved.iter().map(|(j, _, _)| *j).collect();
        self.release(&mut session, &all).await?;
        self.set_drive_status(&session.spec.drive, status, None).await?;
        Ok(n)
    }

    /// The session's process dies: the backend keeps its jobs owned until garbage collection, the
    /// drive daemon reports the drive Down.
    pub async fn crash_session(&self, mut session: TapeSession) -> Result<()> {
        self.db.abandon_mount(session.mount_id, self.now()).await?;
        let all: Vec<JobId> = session.reserved.iter().map(|(j, _, _)| *j).collect();
        self.release(&mut session, &all).await?;
        self.set_drive_status(&session.spec.drive, DriveStatus::Down, None).await
    }

    /// Reports a drive Down (its daemon died without a session).
    pub async fn drive_down(&self, drive: &str) -> Result<()> {
        self.set_drive_status(drive, DriveStatus::Down, None).await
    }

    /// Runs the dead-owner collector; returns how many jobs were requeued.
    pub async fn garbage_collect(&self) -> Result<u64> {
        let router = self.router().await?;
        self.db.garbage_collect(self.now(), &router).await
    }
}

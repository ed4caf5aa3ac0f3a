//! One drive's session loop, as CTA's tape daemon runs it, written as a state machine that moves
//! one step at a time so that a driver ([`crate::daemon`]) can run many drives on one virtual
//! timeline.
//!
//! A drive goes Probing (what does the library say? a cartridge left by a killed daemon is
//! dismounted, CleaningUp) -> Up -> when free, `Scheduler::next_mount` (Starting) -> the tape
//! mounted through the [`Library`] (Mounting) -> batches popped with `Scheduler::pop_jobs`
//! (Transferring), each job's data moved ([`crate::data`]), one file per step, the batch's
//! successes and failures reported with `Scheduler::complete_jobs` -> when the queue is empty, the
//! tape full or the daemon draining: Unloading (the cartridge dismounted), then
//! `Scheduler::end_mount` hands back what the mount still holds and reports Up.
//!
//! A drive error (the library failing a mount, write, read or unload) puts the drive CleaningUp,
//! hands the mount's jobs back (`end_mount`: no job lost, none counted as failed), tries to take
//! the cartridge out (once more after a failed unload) and puts the drive Down; the reason is
//! kept ([`DriveSession::down_reason`], and in the drive register) and said in the daemon's event
//! lines. A cartridge that stays in the drive takes its tape out of service (DISABLED, with why),
//! and a drive whose mount fails because another drive holds the cartridge stays Up. A full tape
//! is marked full in the catalogue, so that the next decision chooses the pool's next tape. A
//! drain finishes the file in flight, reports, hands the rest back, unloads and puts the drive in
//! Shutdown.
//!
//! Each step returns after at most one timed library operation: [`DriveSession::next_at_ms`] is
//! when the drive is free again (the simulator's "free at"), or when an idle drive asks again.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use tapesched_library::sim::SimLibrary;
use tapesched_library::Library;
use tapesched_library::LibraryError;
use tapesched_scheduler::catalogue::CatalogueEdit;
use tapesched_scheduler::db::{MountJob, Outcome};
use tapesched_scheduler::failpoint;
use tapesched_scheduler::scheduler::{Scheduler, StateChangeMode, TapeSession};
use tapesched_scheduler::types::{DriveStatus, JobId, MountId, MountType, TapeState};
use tapesched_scheduler::{ErrorKind, Result};

use crate::data::{self, DataPath, Transfer};
use crate::timing::{Op, OpTimes};

/// Where time comes from: the simulator's clock and "free at", or the wall clock.
#[derive(Clone)]
pub enum Timeline {
    /// The simulated library: its [`tapesched_library::sim::SimClock`] and drive timelines.
    Sim(Arc<SimLibrary>),
    /// Real devices: operations take their real time.
    Wall,
}

impl Timeline {
    /// Now, in milliseconds.
    pub fn now_ms(&self) -> i64 {
        match self {
            Timeline::Sim(lib) => lib.clock().now_ms(),
            Timeline::Wall => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        }
    }

    /// When the drive is free (its last operation done), in milliseconds.
    pub fn free_ms(&self, drive: &str) -> i64 {
        match self {
            Timeline::Sim(lib) => lib.drive_free_at_ms(drive).unwrap_or_else(|_| self.now_ms()),
            Timeline::Wall => self.now_ms(),
        }
    }
}

/// Where a daemon sends its event lines.
pub type EventSink = Arc<dyn Fn(&str) + Send + Sync>;

/// What every drive session of a daemon shares.
pub struct Shared {
    /// The scheduler (its clock is the timeline's).
    pub scheduler: Arc<Scheduler>,
    /// The library.
    pub library: Arc<dyn Library>,
    /// Where time comes from.
    pub timeline: Timeline,
    /// How data moves.
    pub data: DataPath,
    /// Files per batch.
    pub batch_files: u64,
    /// Bytes per batch.
    pub batch_bytes: u64,
    /// Pause of an idle drive, ms.
    pub idle_ms: u64,
    /// Interval between the daemon's heartbeats (of the process and every mount it runs), ms.
    pub heartbeat_ms: u64,
    /// The library's barcode of each catalogue VID.
    pub barcodes: BTreeMap<String, String>,
    /// Receives one line per event (mounts, ends, errors), if set.
    pub on_event: Option<EventSink>,
    /// Where the drives' time goes (calls and wall time per kind).
    pub times: OpTimes,
    /// The mounts the drives hold (from `next_mount` to `end_mount`), which the daemon's
    /// heartbeat keeps alive.
    pub mounts: MountRegistry,
}

/// The mounts a daemon's drives hold, for the daemon's heartbeat ([`Shared::beat`]).
#[derive(Debug, Default)]
pub struct MountRegistry(std::sync::Mutex<BTreeSet<MountId>>);

impl MountRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<MountId>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn open(&self, mount: MountId) {
        self.lock().insert(mount);
    }
    fn end(&self, mount: MountId) {
        self.lock().remove(&mount);
    }
    /// The mounts held now, in id order.
    pub fn held(&self) -> Vec<MountId> {
        self.lock().iter().copied().collect()
    }
}

impl Shared {
    /// The daemon's heartbeat: this process and every mount its drives hold are alive now (one
    /// call, [`tapesched_scheduler::db::SchedulerDb::heartbeat_mounts`]). The daemon calls it
    /// every `heartbeat_ms`; the drives never beat on their own.
    pub async fn beat(&self) -> Result<()> {
        let mounts = self.mounts.held();
        let now = self.timeline.now_ms() / 1000;
        self.times.time(Op::Heartbeat, self.scheduler.db().heartbeat_mounts(&mounts, now)).await
    }

    pub(crate) fn say(&self, line: String) {
        if let Some(f) = &self.on_event {
            f(&format!("t={} {line}", self.timeline.now_ms() / 1000));
        }
    }
}

/// What a drive did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DriveStats {
    /// Mounts done.
    pub mounts: u64,
    /// Archive jobs written and reported.
    pub archived: u64,
    /// Retrieve jobs read and reported.
    pub retrieved: u64,
    /// Jobs reported failed.
    pub failed: u64,
    /// Bytes moved by successful jobs.
    pub bytes: u64,
    /// Jobs handed back to their queues at the end of mounts.
    pub handed_back: u64,
    /// Mounts ended by a full tape.
    pub tapes_full: u64,
    /// Drive errors.
    pub drive_errors: u64,
}

/// Why a mount ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    QueueEmpty,
    TapeFull,
    Drain,
    DriveError(String),
}

struct Mount {
    session: TapeSession,
    batch: VecDeque<MountJob>,
    in_flight: Option<(MountJob, Transfer)>,
    done: Vec<MountJob>,
    failed: Vec<(MountJob, String)>,
    end: Option<End>,
    transferring: bool,
}

enum Phase {
    Probe,
    Up,
    Idle,
    Transferring(Box<Mount>),
    Unloading(Box<Mount>),
    Down,
    Stopped,
}

/// One drive's session loop.
pub struct DriveSession {
    name: String,
    phase: Phase,
    next_at_ms: i64,
    draining: bool,
    status: DriveStatus,
    down_reason: Option<String>,
    stats: DriveStats,
    /// The mount the drive holds, from `next_mount` to `end_mount`.
    mount: Option<MountId>,
}

/// A failpoint ([`tapesched_scheduler::failpoint`]): a file is on tape, not reported yet (the
/// mount holds the rest of its batch). A process killed here leaves a mount for the collector and
/// a tape holding a file the catalogue does not know.
pub const AFTER_FILE_WRITTEN: &str = "taped.after_file_written";

/// The `next_at_ms` of a drive with nothing more to do (Down or stopped).
pub const NEVER: i64 = i64::MAX;

impl DriveSession {
    /// A drive about to probe, at `now_ms`.
    pub fn new(name: &str, now_ms: i64) -> Self {
        DriveSession {
            name: name.to_string(),
            phase: Phase::Probe,
            next_at_ms: now_ms,
            draining: false,
            status: DriveStatus::Down,
            down_reason: None,
            stats: DriveStats::default(),
            mount: None,
        }
    }

    /// The drive's name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// When the drive's next step is due ([`NEVER`]: Down or stopped).
    pub fn next_at_ms(&self) -> i64 {
        self.next_at_ms
    }
    /// The status last reported.
    pub fn status(&self) -> DriveStatus {
        self.status
    }
    /// Why the drive is Down.
    pub fn down_reason(&self) -> Option<&str> {
        self.down_reason.as_deref()
    }
    /// What the drive did.
    pub fn stats(&self) -> &DriveStats {
        &self.stats
    }
    /// True once the drive has nothing more to do (Down or stopped).
    pub fn finished(&self) -> bool {
        matches!(self.phase, Phase::Down | Phase::Stopped)
    }

    /// Asks the drive to drain: finish the file in flight, report, hand the rest back, unload and
    /// stop. An idle drive stops at `now_ms`.
    pub fn drain(&mut self, now_ms: i64) {
        self.draining = true;
        if matches!(self.phase, Phase::Probe | Phase::Up | Phase::Idle) {
            self.next_at_ms = self.next_at_ms.min(now_ms);
        }
    }

    async fn set_status(&mut self, sh: &Shared, status: DriveStatus, session: Option<&TapeSession>) -> Result<()> {
        let spec = session.map(|s| &s.spec);
        sh.times.time(Op::DriveStatus, sh.scheduler.report_drive_status(&self.name, status, spec)).await?;
        self.status = status;
        Ok(())
    }

    /// A cartridge that could not be taken out of drive `holder`: its tape leaves service
    /// (ACTIVE -> DISABLED, REPACKING -> REPACKING_DISABLED, with why), so that other drives do not
    /// go Down one after the other trying to mount it; its queued retrieves go to other copies at
    /// the next queue cleanup. A tape already out of service (another drive or an operator saw to
    /// it) keeps its state and reason. An operator enables it again once the cartridge is out.
    async fn cartridge_left(&self, sh: &Shared, vid: &str, holder: &str, why: &str) -> Result<()> {
        self.out_of_service(sh, vid, format!("cartridge left in drive {holder}: {why}")).await
    }

    /// A tape the drive cannot mount through no fault of its own (its cartridge is not in the
    /// library, or is held by another drive) leaves service with `reason`, as in
    /// [`DriveSession::cartridge_left`]; the drive stays Up for other mounts.
    async fn out_of_service(&self, sh: &Shared, vid: &str, reason: String) -> Result<()> {
        let snap = sh.scheduler.catalogue().snapshot().await?;
        let wanted = match snap.tapes.get(vid).map(|t| t.state) {
            Some(TapeState::Active) => TapeState::Disabled,
            Some(TapeState::Repacking) => TapeState::RepackingDisabled,
            _ => return Ok(()),
        };
        sh.say(format!("{} tape {vid} {}: {reason}", self.name, wanted.as_str().to_lowercase()));
        match sh.scheduler.change_tape_state(vid, wanted, Some(&reason), StateChangeMode::All).await {
            Ok(_) => Ok(()),
            // Changed meanwhile by someone else: theirs stands.
            Err(e) if e.kind == ErrorKind::StateTransitionRefused => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A mount that failed through no fault of this drive (its mount already ended): the tape
    /// leaves service ([`DriveSession::out_of_service`]) so that no drive tries it again, and
    /// this drive stays Up for the next decision.
    async fn stay_up_without(&mut self, sh: &Shared, vid: &str, what: &str, reason: String) -> Result<()> {
        sh.say(format!("{} mount of {what}", self.name));
        self.out_of_service(sh, vid, reason).await?;
        self.phase = Phase::Up;
        self.next_at_ms = sh.timeline.free_ms(&self.name);
        Ok(())
    }

    async fn go_down(&mut self, sh: &Shared, reason: String) -> Result<()> {
        sh.say(format!("{} down: {reason}", self.name));
        // Kept before the report, so that a drive whose report fails stays Down.
        self.down_reason = Some(reason.clone());
        sh.times.time(Op::DriveStatus, sh.scheduler.report_drive_down(&self.name, &reason)).await?;
        self.status = DriveStatus::Down;
        self.phase = Phase::Down;
        self.next_at_ms = NEVER;
        Ok(())
    }

    /// Ends the mount (`Scheduler::end_mount`: what it still holds goes back to its queues) and
    /// takes it out of the daemon's heartbeat; returns how many jobs went back. The drive is
    /// reported Up, or, while it is `CleaningUp` after an error, stays so.
    async fn end_mount(&mut self, sh: &Shared, session: TapeSession) -> Result<u64> {
        let mount = session.mount_id;
        let after = if self.status == DriveStatus::CleaningUp { DriveStatus::CleaningUp } else { DriveStatus::Up };
        let ended = sh.times.time(Op::EndMount, sh.scheduler.end_mount_as(session, after)).await;
        sh.mounts.end(mount);
        self.mount = None;
        let n = ended?;
        self.stats.handed_back += n;
        Ok(n)
    }

    /// Runs the drive's next step at the timeline's now.
    pub async fn step(&mut self, sh: &Shared) -> Result<()> {
        self.step_until(sh, i64::MIN).await
    }

    /// Runs the drive's next step at the timeline's now; on the simulated library, a transferring
    /// drive goes on with the next files of its batch in the same step as long as nothing can
    /// happen in between that another drive or the scheduler would see: each next file starts at
    /// or before `horizon_ms` (the driver's stopping time, where a drain or a fault may come),
    /// the library says it will succeed (no tape full, no pending fault, no bad file), and the
    /// batch still holds it (reports and pops stay steps of their own, at their time). Every call
    /// the scheduler sees is thus made at the same simulated time and in the same order as with
    /// one file per step (the daemon's heartbeats, which only refresh liveness, excepted).
    ///
    /// A step that fails (the backend or the catalogue did not answer) returns the error and
    /// leaves the drive to probe again after `idle_ms` (a drive going Down stays Down, a draining
    /// drive stops without retrying): the mount it held, if any, leaves the daemon's heartbeat and
    /// is marked abandoned (`SchedulerDb::abandon_mount`, when the backend answers), so that the
    /// collector hands its jobs back as it does a killed daemon's; the probe takes out a
    /// cartridge left in the drive.
    pub async fn step_until(&mut self, sh: &Shared, horizon_ms: i64) -> Result<()> {
        let r = self.step_inner(sh, horizon_ms).await;
        if r.is_err() {
            self.recover(sh).await;
        }
        r
    }

    /// After a failed step: see [`DriveSession::step_until`].
    async fn recover(&mut self, sh: &Shared) {
        if let Some(mount) = self.mount.take() {
            sh.mounts.end(mount);
            let now = sh.timeline.now_ms() / 1000;
            match sh.scheduler.db().abandon_mount(mount, now).await {
                Ok(()) => sh.say(format!("{} step failed: mount {mount} abandoned to the collector", self.name)),
                Err(e) => sh.say(format!(
                    "{} step failed: mount {mount} left to the collector (its heartbeat stops; abandoning it failed: {e})",
                    self.name
                )),
            }
        }
        if self.down_reason.is_some() {
            // It was going Down: it stays Down (the register may not say so).
            self.phase = Phase::Down;
            self.next_at_ms = NEVER;
        } else if self.draining {
            // Draining (the daemon is stopping): no retry, which could wait for a backend that
            // does not come back; the next start's probe takes out a cartridge left in the drive.
            self.phase = Phase::Stopped;
            self.next_at_ms = NEVER;
            sh.say(format!("{} stopped: a step failed while draining", self.name));
        } else {
            self.phase = Phase::Probe;
            self.next_at_ms = sh.timeline.now_ms().saturating_add(sh.idle_ms as i64);
        }
    }

    async fn step_inner(&mut self, sh: &Shared, horizon_ms: i64) -> Result<()> {
        let phase = std::mem::replace(&mut self.phase, Phase::Down);
        match phase {
            Phase::Probe => self.probe(sh).await,
            Phase::Up => {
                self.set_status(sh, DriveStatus::Up, None).await?;
                self.phase = Phase::Idle;
                self.next_at_ms = sh.timeline.now_ms();
                Ok(())
            }
            Phase::Idle => self.idle(sh).await,
            Phase::Transferring(m) => self.transfer(sh, m, horizon_ms).await,
            Phase::Unloading(m) => {
                let n = self.end_mount(sh, m.session).await?;
                self.status = DriveStatus::Up;
                sh.say(format!("{} unloaded, handed back {n}", self.name));
                self.phase = Phase::Idle;
                self.next_at_ms = sh.timeline.now_ms();
                Ok(())
            }
            Phase::Down => {
                self.phase = Phase::Down;
                self.next_at_ms = NEVER;
                Ok(())
            }
            Phase::Stopped => {
                self.phase = Phase::Stopped;
                self.next_at_ms = NEVER;
                Ok(())
            }
        }
    }

    async fn probe(&mut self, sh: &Shared) -> Result<()> {
        self.set_status(sh, DriveStatus::Probing, None).await?;
        match sh.times.time(Op::Library, sh.library.status(&self.name)).await {
            Err(e) => return self.go_down(sh, format!("probe: {e}")).await,
            Ok(st) if st.barcode.is_some() => {
                // A cartridge left in the drive (a daemon killed mid-mount): take it out first.
                self.set_status(sh, DriveStatus::CleaningUp, None).await?;
                if let Err(e) = sh.times.time(Op::Library, sh.library.dismount(&self.name)).await {
                    return self.go_down(sh, format!("cleaning up a cartridge left in the drive: {e}")).await;
                }
                sh.say(format!("{} cleaned up {}", self.name, st.barcode.unwrap_or_default()));
            }
            Ok(_) => {}
        }
        self.phase = Phase::Up;
        self.next_at_ms = sh.timeline.free_ms(&self.name);
        Ok(())
    }

    async fn idle(&mut self, sh: &Shared) -> Result<()> {
        if self.draining {
            self.set_status(sh, DriveStatus::Shutdown, None).await?;
            self.phase = Phase::Stopped;
            self.next_at_ms = NEVER;
            return Ok(());
        }
        let ask = sh.scheduler.next_mount(&self.name, true);
        let Some(session) = sh.times.time(Op::NextMount, ask).await? else {
            self.phase = Phase::Idle;
            self.next_at_ms = sh.timeline.now_ms() + sh.idle_ms as i64;
            return Ok(());
        };
        sh.mounts.open(session.mount_id);
        self.mount = Some(session.mount_id);
        self.status = DriveStatus::Starting;
        let spec = session.spec.clone();
        sh.say(format!("{} mount {} {} for {}", self.name, spec.vid, spec.mount_type, spec.tape_pool));
        let Some(barcode) = sh.barcodes.get(&spec.vid).cloned() else {
            // A tape the catalogue gained after the daemon read the library's inventory: not
            // this drive's fault. The tape leaves service so that the drives do not go Down one
            // after the other trying to mount it; this one stays Up.
            self.end_mount(sh, session).await?;
            let reason = format!("no cartridge in the library of drive {} (checked at its start)", self.name);
            return self.stay_up_without(sh, &spec.vid, &format!("no cartridge for {}", spec.vid), reason).await;
        };
        self.set_status(sh, DriveStatus::Mounting, Some(&session)).await?;
        if let Err(e) = sh.times.time(Op::Library, sh.library.mount(&barcode, &self.name)).await {
            self.end_mount(sh, session).await?;
            let not_ours = match &e {
                // The tape is held by another drive (one that went Down with it).
                LibraryError::CartridgeInDrive { drive, .. } if *drive != self.name => {
                    Some(format!("cartridge left in drive {drive}: {e}"))
                }
                // The cartridge left the library (exported) since the daemon started.
                LibraryError::UnknownBarcode { .. } => Some(format!("not in the library: {e}")),
                _ => None,
            };
            if let Some(reason) = not_ours {
                return self.stay_up_without(sh, &spec.vid, &format!("{barcode}: {e}"), reason).await;
            }
            self.stats.drive_errors += 1;
            return self.go_down(sh, format!("mount of {barcode}: {e}")).await;
        }
        self.stats.mounts += 1;
        let end = self.check_end_of_data(sh, &session, &barcode).await?;
        let mount = Mount {
            session,
            batch: VecDeque::new(),
            in_flight: None,
            done: vec![],
            failed: vec![],
            end,
            transferring: false,
        };
        self.phase = Phase::Transferring(Box::new(mount));
        self.next_at_ms = sh.timeline.free_ms(&self.name);
        Ok(())
    }

    /// Before writing, the tape's files must be those the catalogue knows: a daemon killed after
    /// writing files it never reported leaves more files on the tape than the catalogue's last
    /// fSeq, and the next file would get another fSeq on tape than in the catalogue. Such a tape is
    /// marked full (no more writes; its reported files stay readable) and the mount ends. The
    /// simulator answers from its records; a real drive spaces to the end of data
    /// ([`Library::files_on_tape`]), which its first write does anyway.
    async fn check_end_of_data(&mut self, sh: &Shared, session: &TapeSession, barcode: &str) -> Result<Option<End>> {
        if session.spec.mount_type == MountType::Retrieve {
            return Ok(None);
        }
        let on_tape = match sh.times.time(Op::Library, sh.library.files_on_tape(&self.name)).await {
            Ok(n) => n,
            // A drive that cannot tell where the end of data is must not write.
            Err(e) => return Ok(Some(End::DriveError(format!("finding the end of data on {barcode}: {e}")))),
        };
        let snap = sh.scheduler.catalogue().snapshot().await?;
        let known = snap.tapes.get(&session.spec.vid).map_or(0, |t| t.last_fseq);
        if on_tape == known {
            return Ok(None);
        }
        let vid = &session.spec.vid;
        sh.say(format!(
            "{} tape {vid} holds {on_tape} files, the catalogue knows {known}: marked full, not written",
            self.name
        ));
        sh.scheduler.edit_catalogue(CatalogueEdit::tape_full(vid)).await?;
        Ok(Some(End::TapeFull))
    }

    async fn transfer(&mut self, sh: &Shared, mut m: Box<Mount>, horizon_ms: i64) -> Result<()> {
        loop {
            if let Some((job, t)) = m.in_flight.take() {
                match t {
                    Transfer::Done => {
                        failpoint::hit(AFTER_FILE_WRITTEN);
                        m.done.push(job)
                    }
                    Transfer::Failed(reason) => m.failed.push((job, reason)),
                    // Never in flight: they end the mount at once.
                    Transfer::TapeFull(_) | Transfer::DriveFailed(_) => {}
                }
            }
            if m.end.is_none() && self.draining {
                m.end = Some(End::Drain);
            }
            if let Some(end) = m.end.clone() {
                return self.finish(sh, m, end).await;
            }
            if m.batch.is_empty() {
                self.report(sh, &mut m).await?;
                let pop = sh.scheduler.pop_jobs(&mut m.session, sh.batch_files, sh.batch_bytes);
                let jobs = sh.times.time(Op::PopJobs, pop).await?;
                if jobs.is_empty() {
                    m.end = Some(End::QueueEmpty);
                    continue;
                }
                if !m.transferring {
                    self.set_status(sh, DriveStatus::Transferring, Some(&m.session)).await?;
                    m.transferring = true;
                }
                m.batch.extend(jobs);
            }
            let Some(job) = m.batch.pop_front() else { continue };
            let vid = m.session.spec.vid.clone();
            let moved = data::transfer(&sh.data, &*sh.library, &self.name, &vid, &job);
            match sh.times.time(Op::Library, moved).await {
                Transfer::TapeFull(reason) => {
                    sh.say(format!("{} {reason}", self.name));
                    self.stats.tapes_full += 1;
                    sh.times.time(Op::DriveStatus, sh.scheduler.edit_catalogue(CatalogueEdit::tape_full(&vid))).await?;
                    m.end = Some(End::TapeFull);
                }
                Transfer::DriveFailed(reason) => m.end = Some(End::DriveError(reason)),
                t => {
                    m.in_flight = Some((job, t));
                    self.next_at_ms = sh.timeline.free_ms(&self.name);
                    if self.goes_on(sh, &m, horizon_ms) {
                        continue;
                    }
                    self.phase = Phase::Transferring(m);
                    return Ok(());
                }
            }
        }
    }

    /// True when the step may go on with the batch's next file at `self.next_at_ms` (see
    /// [`DriveSession::step_until`]): simulated library and sizes only, the file starts by the
    /// horizon, no drain, no end, and the library will not fail it.
    fn goes_on(&self, sh: &Shared, m: &Mount, horizon_ms: i64) -> bool {
        let (Timeline::Sim(lib), DataPath::Sizes) = (&sh.timeline, &sh.data) else { return false };
        let next = self.next_at_ms;
        if next > horizon_ms || self.draining || m.end.is_some() {
            return false;
        }
        match m.batch.front() {
            Some(MountJob::Archive { request, .. }) => lib.write_would_succeed(&self.name, request.size),
            Some(MountJob::Retrieve { request }) => {
                request.active_copy().is_some_and(|c| lib.read_would_succeed(&self.name, c.fseq))
            }
            None => false,
        }
    }

    /// Reports the results gathered since the last report: successes in one call, failures in
    /// one call per reason.
    async fn report(&mut self, sh: &Shared, m: &mut Mount) -> Result<()> {
        if !m.done.is_empty() {
            let done = std::mem::take(&mut m.done);
            let ids: Vec<JobId> = done.iter().map(MountJob::id).collect();
            let complete = sh.scheduler.complete_job_ids(&mut m.session, &ids, Outcome::Success, None);
            sh.times.time(Op::Complete, complete).await?;
            for job in &done {
                match job {
                    MountJob::Archive { request, .. } => {
                        self.stats.archived += 1;
                        self.stats.bytes += request.size;
                    }
                    MountJob::Retrieve { request } => {
                        self.stats.retrieved += 1;
                        self.stats.bytes += request.size;
                    }
                }
            }
        }
        let mut by_reason: BTreeMap<String, Vec<JobId>> = BTreeMap::new();
        for (job, reason) in std::mem::take(&mut m.failed) {
            by_reason.entry(reason).or_default().push(job.id());
        }
        for (reason, ids) in by_reason {
            sh.say(format!("{} failed {} job(s): {reason}", self.name, ids.len()));
            self.stats.failed += ids.len() as u64;
            let reason: String = reason.chars().take(1000).collect();
            let complete = sh.scheduler.complete_job_ids(&mut m.session, &ids, Outcome::Failure, Some(&reason));
            sh.times.time(Op::Complete, complete).await?;
        }
        Ok(())
    }

    async fn finish(&mut self, sh: &Shared, mut m: Box<Mount>, end: End) -> Result<()> {
        self.report(sh, &mut m).await?;
        match end {
            End::DriveError(reason) => {
                self.stats.drive_errors += 1;
                self.set_status(sh, DriveStatus::CleaningUp, Some(&m.session)).await?;
                let vid = m.session.spec.vid.clone();
                self.end_mount(sh, m.session).await?;
                let left = match sh.times.time(Op::Library, sh.library.dismount(&self.name)).await {
                    Ok(()) => String::new(),
                    Err(e) => {
                        self.cartridge_left(sh, &vid, &self.name, &e.to_string()).await?;
                        format!("; the cartridge could not be taken out: {e}")
                    }
                };
                self.go_down(sh, format!("{reason}{left}")).await
            }
            _ => {
                let what = match end {
                    End::QueueEmpty => "queue empty",
                    End::TapeFull => "tape full",
                    _ => "draining",
                };
                sh.say(format!("{} end of mount {} ({what})", self.name, m.session.spec.vid));
                self.set_status(sh, DriveStatus::Unloading, Some(&m.session)).await?;
                if let Err(e) = sh.times.time(Op::Library, sh.library.dismount(&self.name)).await {
                    // As CTA's cleaner session: the drive is cleaned up (one more attempt to take
                    // the cartridge out) and goes Down either way.
                    self.stats.drive_errors += 1;
                    self.set_status(sh, DriveStatus::CleaningUp, Some(&m.session)).await?;
                    let vid = m.session.spec.vid.clone();
                    self.end_mount(sh, m.session).await?;
                    let left = match sh.times.time(Op::Library, sh.library.dismount(&self.name)).await {
                        Ok(()) => String::from("; the cartridge was taken out on the second attempt"),
                        Err(e2) => {
                            self.cartridge_left(sh, &vid, &self.name, &e2.to_string()).await?;
                            format!("; the cartridge could not be taken out: {e2}")
                        }
                    };
                    return self.go_down(sh, format!("unload: {e}{left}")).await;
                }
                self.phase = Phase::Unloading(m);
                self.next_at_ms = sh.timeline.free_ms(&self.name);
                Ok(())
            }
        }
    }
}

//! The lockstep runner: every backend in this process on simulated time, fed exactly the same
//! events, every mount decision compared.
//!
//! Per backend: a fresh instance of the backend (its own namespace), an in-memory catalogue built
//! from the library's configuration, its own [`SimLibrary`] and [`SimClock`], a [`Scheduler`]
//! that sends each decision with its explanation to the runner, the tape daemon's [`Daemon`]
//! over the library's drives, the maintenance passes (collect, cleanup, repack) and a disk side
//! that takes the due reports.
//!
//! One global loop advances every backend together. The next instant is the earliest of the next
//! workload event, the next timer (reports, maintenance passes, samples) and every backend's next
//! drive step. At each instant, in this order and on every backend: the clock moves there, the
//! instant's events are applied (their answers compared: request ids, errors), the due timers
//! run, then the drives' steps due by then run (`Daemon::run_until`). The decisions each backend
//! made at the instant are then compared in order (drive, chosen mount, ordered candidates,
//! rejected mounts); the first difference stops the run with every backend's explanation side by
//! side. The run ends when every request is reported and the arrivals are over, or at the
//! workload's tail; the drives are then drained and the invariants checked.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tapesched_backends::{Backend, OpenBackend};
use tapesched_library::sim::{Fault, SimClock, SimLibrary};
use tapesched_report::e2e::{BackendRun, Divergence, E2eRecord, InvariantCheck, Sample, Totals};
use tapesched_report::explain::decision_text;
use tapesched_scheduler::catalogue::CatalogueEdit;
use tapesched_scheduler::clock::Clock;
use tapesched_scheduler::db::{JobKind, Outcome, ReportFilter};
use tapesched_scheduler::decision::{Decision, SchedulerConfig};
use tapesched_scheduler::scheduler::{ArchiveSubmission, RetrieveSubmission, Scheduler, StateChangeMode};
use tapesched_scheduler::state::StateItem;
use tapesched_scheduler::types::{DriveStatus, RequestId, Requester, TapeState};
use tapesched_taped::data::DataPath;
use tapesched_taped::maintenance::{Loop, Maintenance, MaintenanceSection};
use tapesched_taped::session::{Shared, Timeline, NEVER};
use tapesched_taped::Daemon;

use crate::catalogue::Plan;
use crate::generate::{events, Event, EventKind};
use crate::record::{add_drive, add_queued, latency_summary};
use crate::workload::{FlowKind, IncidentKind, Workload};
use crate::E2eError;

/// One backend of a run: which, its label in the record, and its scheduler settings.
#[derive(Debug, Clone)]
pub struct BackendSpec {
    /// The backend.
    pub backend: Backend,
    /// Its name in the record (default: the backend's name).
    pub label: String,
    /// The scheduler's settings (default: [`SchedulerConfig::default`]); a test gives one side
    /// other settings to make it diverge.
    pub config: SchedulerConfig,
}

impl BackendSpec {
    /// A backend with the default settings, labelled by its name.
    pub fn new(backend: Backend) -> Self {
        BackendSpec { backend, label: backend.name(), config: SchedulerConfig::default() }
    }
}

/// What a run needs.
pub struct RunOptions {
    /// The workload.
    pub workload: Workload,
    /// The workload file, as given (the record names it).
    pub workload_file: String,
    /// The library's mhVTL configuration directory.
    pub config_dir: PathBuf,
    /// The backends, in the record's order.
    pub backends: Vec<BackendSpec>,
    /// Context lines for the record (command line, machine...).
    pub context: Vec<String>,
}

/// Where a run is, for a progress bar.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Simulated seconds since the start.
    pub sim_s: i64,
    /// Simulated seconds the arrivals last.
    pub duration_s: i64,
    /// Requests queued (first backend).
    pub queued: u64,
    /// Requests reported done (first backend).
    pub done: u64,
    /// Mounts made (first backend).
    pub mounts: u64,
}

type Decisions = Arc<Mutex<Vec<(String, Decision)>>>;

/// Wall time per part of the work.
#[derive(Default)]
struct Split(BTreeMap<&'static str, Duration>);

impl Split {
    fn add(&mut self, part: &'static str, since: Instant) {
        *self.0.entry(part).or_default() += since.elapsed();
    }
}

struct Side {
    label: String,
    open: Option<OpenBackend>,
    scheduler: Arc<Scheduler>,
    lib: Arc<SimLibrary>,
    clock: Arc<SimClock>,
    daemon: Daemon,
    maintenance: Maintenance,
    decisions: Decisions,
    /// Queued and not yet reported: request -> queued at (ms).
    outstanding: HashMap<RequestId, (JobKind, i64)>,
    reported: HashSet<RequestId>,
    archive_latency: Vec<f64>,
    retrieve_latency: Vec<f64>,
    totals: Totals,
    unexpected_reports: u64,
    samples: Vec<Sample>,
    split: Split,
    wall: Duration,
}

fn backend_err(label: &str) -> impl Fn(tapesched_scheduler::Error) -> E2eError + '_ {
    move |error| E2eError::Backend { backend: label.to_string(), error }
}

impl Side {
    async fn open(spec: &BackendSpec, w: &Workload, plan: &Plan, opts: &RunOptions) -> Result<Side, E2eError> {
        let err = backend_err(&spec.label);
        let open = spec.backend.open().await.map_err(&err)?;
        let start_ms = w.start * 1000;
        let clock = Arc::new(SimClock::new(w.start));
        let lib = Arc::new(plan.sim_library(&opts.config_dir, w.library_id, clock.clone())?);
        let catalogue = Arc::new(plan.catalogue(w, &spec.config.backend_name)?);
        let decisions: Decisions = Arc::default();
        let sink = decisions.clone();
        let scheduler = Arc::new(
            Scheduler::new(open.db.clone(), catalogue, clock.clone(), spec.config.clone()).with_decision_observer(
                Arc::new(move |drive: &str, d: &Decision| {
                    sink.lock().unwrap_or_else(|e| e.into_inner()).push((drive.to_string(), d.clone()))
                }),
            ),
        );
        let barcodes = plan.tapes.iter().map(|t| (t.vid.clone(), t.barcode.clone())).collect();
        let shared = Shared {
            scheduler: scheduler.clone(),
            library: lib.clone(),
            timeline: Timeline::Sim(lib.clone()),
            data: DataPath::Sizes,
            batch_files: w.batch.max_files,
            batch_bytes: w.batch.max_bytes,
            idle_ms: w.intervals.idle_ms,
            heartbeat_ms: w.intervals.heartbeat_ms,
            barcodes,
            on_event: None,
            times: Default::default(),
            mounts: Default::default(),
        };
        let daemon = Daemon::new(shared, &plan.drives);
        let clock_dyn: Arc<dyn Clock> = clock.clone();
        let maintenance = Maintenance::new(scheduler.clone(), clock_dyn, MaintenanceSection::default())
            .with_holder(format!("e2e-{}", spec.label));
        clock.advance_to_ms(start_ms);
        Ok(Side {
            label: spec.label.clone(),
            open: Some(open),
            scheduler,
            lib,
            clock,
            daemon,
            maintenance,
            decisions,
            outstanding: HashMap::new(),
            reported: HashSet::new(),
            archive_latency: Vec::new(),
            retrieve_latency: Vec::new(),
            totals: Totals::default(),
            unexpected_reports: 0,
            samples: Vec::new(),
            split: Split::default(),
            wall: Duration::ZERO,
        })
    }

    fn next_drive_ms(&self) -> i64 {
        self.daemon.drives().iter().map(|d| d.next_at_ms()).min().unwrap_or(NEVER)
    }

    /// Applies one instant's events; returns each event's answer (compared between backends).
    async fn apply(&mut self, w: &Workload, evs: &[Event], t_ms: i64) -> Result<Vec<String>, E2eError> {
        let s = self.scheduler.clone();
        let mut answers = Vec::with_capacity(evs.len());
        let mut archives: Vec<ArchiveSubmission> = Vec::new();
        let flush = |archives: &mut Vec<ArchiveSubmission>| std::mem::take(archives);
        let mut i = 0;
        while i < evs.len() {
            // Consecutive archives are queued in one call.
            while let Some(Event { kind: EventKind::Archive { flow, size }, .. }) = evs.get(i) {
                let f = &w.flows[*flow];
                archives.push(ArchiveSubmission {
                    archive_file_id: None,
                    disk_instance: None,
                    disk_file_id: None,
                    requester: requester(f.requester.as_ref()),
                    storage_class: f.storage_class.clone().unwrap_or_default(),
                    size: *size,
                    created_at: None,
                    report_url: None,
                    error_report_url: None,
                });
                i += 1;
            }
            let batch = flush(&mut archives);
            if !batch.is_empty() {
                let results = s.queue_archives(batch).await.map_err(backend_err(&self.label))?;
                for r in results {
                    match r {
                        Ok(id) => {
                            self.outstanding.insert(RequestId::Archive(id), (JobKind::Archive, t_ms));
                            self.totals.archives_queued += 1;
                            answers.push(format!("archive {id}"));
                        }
                        Err(e) => answers.push(format!("archive refused: {e}")),
                    }
                }
            }
            // Consecutive retrieves are queued in one call too.
            let mut retrieves: Vec<(u64, RetrieveSubmission)> = Vec::new();
            while let Some(Event { kind: EventKind::Retrieve { flow, archive_file_id }, .. }) = evs.get(i) {
                let f = &w.flows[*flow];
                debug_assert_eq!(f.kind, FlowKind::Retrieve);
                let n = self.totals.retrieves_queued + retrieves.len() as u64;
                retrieves.push((
                    *archive_file_id,
                    RetrieveSubmission {
                        archive_file_id: *archive_file_id,
                        requester: Some(requester(f.requester.as_ref())),
                        dst_url: Some(format!("file:///e2e/{}/{archive_file_id}.{n}", f.name)),
                        report_url: Some("file:///dev/null".into()),
                        error_report_url: Some("file:///dev/null".into()),
                        ..RetrieveSubmission::default()
                    },
                ));
                i += 1;
            }
            if !retrieves.is_empty() {
                let (files, subs): (Vec<u64>, Vec<RetrieveSubmission>) = retrieves.into_iter().unzip();
                let results = s.queue_retrieves(subs).await.map_err(backend_err(&self.label))?;
                for (archive_file_id, r) in files.into_iter().zip(results) {
                    match r {
                        Ok((id, vid)) => {
                            self.outstanding.insert(RequestId::Retrieve(id), (JobKind::Retrieve, t_ms));
                            self.totals.retrieves_queued += 1;
                            answers.push(format!("retrieve {id} of {archive_file_id} on {vid}"));
                        }
                        Err(e) => answers.push(format!("retrieve of {archive_file_id} refused: {e}")),
                    }
                }
            }
            let Some(ev) = evs.get(i) else { break };
            if !matches!(ev.kind, EventKind::Incident(_)) {
                continue; // more archives or retrieves: queued above
            }
            i += 1;
            match &ev.kind {
                EventKind::Archive { .. } | EventKind::Retrieve { .. } => {
                    unreachable!("archives and retrieves are queued above")
                }
                EventKind::Incident(inc) => answers.push(self.incident(inc).await),
            }
        }
        Ok(answers)
    }

    async fn incident(&mut self, inc: &IncidentKind) -> String {
        let s = &self.scheduler;
        match inc {
            IncidentKind::DriveDown(drive) => {
                let fault = Fault::DriveError { drive: drive.clone(), message: "e2e incident: drive down".into() };
                match self.lib.inject(fault) {
                    Ok(()) => format!("drive {drive}: fails at its next operation"),
                    Err(e) => format!("drive {drive}: {e}"),
                }
            }
            IncidentKind::TapeDisabled(vid) => {
                match s.change_tape_state(vid, TapeState::Disabled, Some("e2e incident"), StateChangeMode::All).await {
                    Ok(_) => format!("tape {vid} disabled"),
                    Err(e) => format!("tape {vid} not disabled: {e}"),
                }
            }
            IncidentKind::TapeFull(vid) => match s.edit_catalogue(CatalogueEdit::tape_full(vid)).await {
                Ok(()) => format!("tape {vid} full"),
                Err(e) => format!("tape {vid} not marked full: {e}"),
            },
            IncidentKind::Repack { vid, mount_policy } => {
                let r = tapesched_taped::replay::start_repack(s, vid, mount_policy, "e2e incident").await;
                match r {
                    Ok(()) => {
                        self.totals.repacks_queued += 1;
                        format!("repack of {vid} queued")
                    }
                    Err(e) => format!("repack of {vid} refused: {e}"),
                }
            }
        }
    }

    /// Takes the due reports (the disk side), measuring each request's latency.
    async fn pump(&mut self, now_ms: i64) -> Result<(), E2eError> {
        let reports = self.scheduler.report(ReportFilter::All, None, true).await.map_err(backend_err(&self.label))?;
        for r in reports {
            match r.outcome {
                Outcome::Success => match self.outstanding.remove(&r.request) {
                    Some((kind, at)) => {
                        let lat = (now_ms - at) as f64 / 1000.0;
                        self.reported.insert(r.request);
                        match kind {
                            JobKind::Archive => {
                                self.totals.archived += 1;
                                self.archive_latency.push(lat);
                            }
                            JobKind::Retrieve => {
                                self.totals.retrieved += 1;
                                self.retrieve_latency.push(lat);
                            }
                        }
                    }
                    None if self.reported.contains(&r.request) => self.totals.duplicates += 1,
                    None => self.unexpected_reports += 1,
                },
                Outcome::Failure => {
                    self.totals.failed += 1;
                    self.outstanding.remove(&r.request);
                    self.reported.insert(r.request);
                }
            }
        }
        Ok(())
    }

    async fn sample(&mut self, t_ms: i64) -> Result<(), E2eError> {
        let info = self.scheduler.db().mount_info(t_ms / 1000).await.map_err(backend_err(&self.label))?;
        let mut s = Sample { t_s: t_ms / 1000, ..Sample::default() };
        add_queued(&mut s, &info);
        for d in self.daemon.drives() {
            add_drive(&mut s, d.status(), d.finished());
            s.mounts += d.stats().mounts;
        }
        s.done = self.totals.archived + self.totals.retrieved;
        self.samples.push(s);
        Ok(())
    }

    fn mounts(&self) -> u64 {
        self.daemon.drives().iter().map(|d| d.stats().mounts).sum()
    }

    fn take_decisions(&self) -> Vec<(String, Decision)> {
        std::mem::take(&mut *self.decisions.lock().unwrap_or_else(|e| e.into_inner()))
    }

    async fn invariants(&mut self) -> Result<Vec<InvariantCheck>, E2eError> {
        let err = backend_err(&self.label);
        let mut out = Vec::new();
        let queued = self.totals.archives_queued + self.totals.retrieves_queued;
        let done = self.totals.archived + self.totals.retrieved + self.totals.failed;
        let mut left: Vec<&RequestId> = self.outstanding.keys().collect();
        left.sort();
        out.push(InvariantCheck {
            name: "every request reported done exactly once".into(),
            ok: self.outstanding.is_empty() && self.totals.duplicates == 0,
            detail: format!(
                "{queued} queued, {done} reported ({} failed), {} duplicate(s), {} outstanding{}",
                self.totals.failed,
                self.totals.duplicates,
                self.outstanding.len(),
                left.first().map(|r| format!(", first {r:?}")).unwrap_or_default()
            ),
        });
        // Every outstanding request is still in the backend (queued or failed), none lost.
        let mut known: HashSet<RequestId> = HashSet::new();
        let mut mounts = 0u64;
        let mut after = None;
        loop {
            let page = self.scheduler.db().export_state(after.as_ref(), 10_000).await.map_err(&err)?;
            let Some(last) = page.last() else { break };
            after = Some(last.key());
            for item in &page {
                match item {
                    StateItem::Mount { .. } => mounts += 1,
                    StateItem::Archive { request, .. } => {
                        known.insert(RequestId::Archive(request.archive_file_id));
                    }
                    StateItem::Retrieve { request, .. } => {
                        known.insert(RequestId::Retrieve(request.request_id));
                    }
                    _ => {}
                }
            }
        }
        let lost: Vec<&&RequestId> = left.iter().filter(|r| !known.contains(r)).collect();
        out.push(InvariantCheck {
            name: "no request lost".into(),
            ok: lost.is_empty(),
            detail: format!(
                "{} outstanding, {} of them not in the backend{}",
                left.len(),
                lost.len(),
                lost.first().map(|r| format!(", first {r:?}")).unwrap_or_default()
            ),
        });
        out.push(InvariantCheck {
            name: "no mount (and no job held) after the drain".into(),
            ok: mounts == 0,
            detail: format!("{mounts} mount(s) left"),
        });
        let due = self.scheduler.report(ReportFilter::All, None, false).await.map_err(&err)?;
        out.push(InvariantCheck {
            name: "every report delivered".into(),
            ok: due.is_empty() && self.unexpected_reports == 0,
            detail: format!("{} report(s) still due, {} unexpected report(s)", due.len(), self.unexpected_reports),
        });
        let stopped = self.daemon.drives().iter().all(|d| d.finished());
        out.push(InvariantCheck {
            name: "every drive stopped or down after the drain".into(),
            ok: stopped,
            detail: self
                .daemon
                .drives()
                .iter()
                .filter(|d| d.status() == DriveStatus::Down)
                .map(|d| format!("{} down: {}", d.name(), d.down_reason().unwrap_or("?")))
                .collect::<Vec<_>>()
                .join("; "),
        });
        Ok(out)
    }

    /// The loop's parts, with the drives' part split by kind of call (the daemon's own timing:
    /// `drives: next_mount`, `drives: pop_jobs`... and `drives: other`, the rest of the steps
    /// and of the event loop around them).
    fn time_split(&self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for (k, v) in &self.split.0 {
            if *k != "drives" {
                out.push((k.to_string(), v.as_secs_f64()));
                continue;
            }
            let mut inside = 0.0;
            for l in self.daemon.shared().times.split() {
                if l.op == "step" || l.op == "other" || l.calls == 0 {
                    continue;
                }
                inside += l.seconds;
                out.push((format!("drives: {}", l.op), l.seconds));
            }
            out.push(("drives: other".to_string(), (v.as_secs_f64() - inside).max(0.0)));
        }
        out
    }

    fn into_run(mut self, invariants: Vec<InvariantCheck>) -> (BackendRun, Option<OpenBackend>) {
        self.totals.mounts = self.mounts();
        self.totals.bytes = self.daemon.drives().iter().map(|d| d.stats().bytes).sum();
        let run = BackendRun {
            backend: self.label.clone(),
            wall_s: self.wall.as_secs_f64(),
            time_split: self.time_split(),
            totals: self.totals.clone(),
            samples: std::mem::take(&mut self.samples),
            archive_latency: latency_summary(&mut self.archive_latency),
            retrieve_latency: latency_summary(&mut self.retrieve_latency),
            invariants,
        };
        (run, self.open.take())
    }
}

fn requester(r: Option<&crate::workload::RequesterSpec>) -> Requester {
    r.map_or_else(
        || Requester { name: "e2e".into(), group: "e2e".into() },
        |r| Requester { name: r.name.clone(), group: r.group.clone() },
    )
}

/// Periodic work of the run, the same instants on every backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Reports,
    Collect,
    Cleanup,
    Repack,
    Sample,
}

/// The first difference between the backends' answers at one instant, if any: its index.
fn first_difference<T: PartialEq>(lists: &[Vec<T>]) -> Option<usize> {
    let first = &lists[0];
    let longest = lists.iter().map(Vec::len).max().unwrap_or(0);
    (0..longest).find(|&i| lists.iter().any(|l| l.get(i) != first.get(i)))
}

/// Runs the workload in lockstep on every backend and returns the record (a divergence is in
/// it, not an error). `progress` is called at most once per simulated minute.
pub async fn run(opts: RunOptions, mut progress: impl FnMut(&Progress)) -> Result<E2eRecord, E2eError> {
    let w = &opts.workload;
    if opts.backends.is_empty() {
        return Err(E2eError::Workload("no backend to run on".into()));
    }
    let plan = Plan::new(&opts.config_dir, w)?;
    let evs = events(w, &plan);
    let mut sides = Vec::new();
    for spec in &opts.backends {
        sides.push(Side::open(spec, w, &plan, &opts).await?);
    }
    let mut record = E2eRecord {
        workload: w.name.clone(),
        workload_file: opts.workload_file.clone(),
        seed: w.seed,
        mode: "lockstep".into(),
        library: format!("sim {}", opts.config_dir.display()),
        drives: plan.drives.len() as u32,
        tapes: plan.tapes.len() as u32,
        start_s: w.start,
        end_s: w.start,
        context: opts.context.clone(),
        ..E2eRecord::default()
    };
    record.context.push(format!(
        "{} events, {} files prefilled on {} tape(s), {} cartridge(s) of the library unused",
        evs.len(),
        plan.prefilled_files(),
        plan.tapes.iter().filter(|t| !t.prefilled.is_empty()).count(),
        plan.unused_tapes
    ));
    let result = lockstep(w, &evs, &mut sides, &mut record, &mut progress).await;
    let mut opened = Vec::new();
    for side in sides {
        let (run, open) = side.into_run(Vec::new());
        record.backends.push(run);
        opened.extend(open);
    }
    for o in opened {
        o.close().await;
    }
    let checks = result?;
    if let Some(checks) = checks {
        for (b, c) in record.backends.iter_mut().zip(checks) {
            b.invariants = c;
        }
    }
    Ok(record)
}

/// Whether every repack queued on every side has ended (Complete or Failed); true at once
/// where none was queued.
async fn repacks_over(sides: &[Side]) -> bool {
    for side in sides.iter().filter(|s| s.totals.repacks_queued > 0) {
        match side.scheduler.show_repacks().await {
            Ok(r) if r.len() as u64 >= side.totals.repacks_queued && r.iter().all(|x| x.status.is_final()) => {}
            _ => return false,
        }
    }
    true
}

/// The loop; returns the invariants of every side, or `None` when a divergence stopped the run.
async fn lockstep(
    w: &Workload,
    evs: &[Event],
    sides: &mut [Side],
    record: &mut E2eRecord,
    progress: &mut impl FnMut(&Progress),
) -> Result<Option<Vec<Vec<InvariantCheck>>>, E2eError> {
    let start_ms = w.start * 1000;
    let arrivals_end = start_ms + (w.duration * 1000) as i64;
    let hard_end = arrivals_end + (w.tail * 1000) as i64;
    let iv = &w.intervals;
    let mut timers: Vec<(Timer, i64, i64)> = vec![
        (Timer::Reports, iv.reports_ms as i64, start_ms),
        (Timer::Collect, iv.collect_ms as i64, start_ms),
        (Timer::Cleanup, iv.cleanup_ms as i64, start_ms),
        (Timer::Repack, iv.repack_ms as i64, start_ms),
        (Timer::Sample, (w.sample_every * 1000) as i64, start_ms),
    ];
    let mut ei = 0usize;
    let mut last_progress = start_ms - 60_000;
    let mut t;
    loop {
        let t_event = evs.get(ei).map_or(NEVER, |e| start_ms + e.t_ms);
        let t_drive = sides.iter().map(Side::next_drive_ms).min().unwrap_or(NEVER);
        let t_timer = timers.iter().map(|x| x.2).min().unwrap_or(NEVER);
        t = t_event.min(t_drive).min(t_timer);
        if t > hard_end {
            t = hard_end;
            break;
        }
        let mut n = ei;
        while evs.get(n).is_some_and(|e| start_ms + e.t_ms == t) {
            n += 1;
        }
        let now_evs = &evs[ei..n];
        ei = n;
        // The instant's events, on every backend; their answers must agree.
        let mut answers = Vec::with_capacity(sides.len());
        for side in sides.iter_mut() {
            let wall = Instant::now();
            side.clock.advance_to_ms(t);
            if !now_evs.is_empty() {
                answers.push(side.apply(w, now_evs, t).await?);
                side.split.add("queueing", wall);
            }
            side.wall += wall.elapsed();
        }
        if !now_evs.is_empty() {
            if let Some(i) = first_difference(&answers) {
                record.divergences.push(Divergence {
                    t_s: t / 1000,
                    concerns: format!("event {} of the instant", i + 1),
                    what: "the backends answered an event differently".into(),
                    answers: answers
                        .iter()
                        .map(|a| a.get(i).cloned().unwrap_or_else(|| "(no answer)".into()))
                        .collect(),
                });
                record.end_s = t / 1000;
                return Ok(None);
            }
        }
        // Due timers.
        let due: Vec<Timer> = timers.iter().filter(|x| x.2 == t).map(|x| x.0).collect();
        for x in timers.iter_mut().filter(|x| x.2 == t) {
            x.2 += x.1;
        }
        for timer in &due {
            for side in sides.iter_mut() {
                let wall = Instant::now();
                let (part, r) = match timer {
                    Timer::Reports => ("reports", side.pump(t).await),
                    Timer::Collect => ("maintenance", pass(side, Loop::Collect).await),
                    Timer::Cleanup => ("maintenance", pass(side, Loop::Cleanup).await),
                    Timer::Repack => ("maintenance", pass(side, Loop::Repack).await),
                    Timer::Sample => ("sampling", side.sample(t).await),
                };
                r?;
                side.split.add(part, wall);
                side.wall += wall.elapsed();
            }
        }
        // The drives' steps due by now.
        for side in sides.iter_mut() {
            let wall = Instant::now();
            side.daemon.run_until(t, None).await.map_err(backend_err(&side.label))?;
            side.split.add("drives", wall);
            side.wall += wall.elapsed();
        }
        // The decisions made at this instant, in order.
        let decided: Vec<Vec<(String, Decision)>> = sides.iter().map(Side::take_decisions).collect();
        let count = decided[0].len();
        if let Some(i) = first_difference(&decided) {
            record.decisions.compared += i as u64 + 1;
            record.decisions.matched += i as u64;
            record.decisions.mounts_chosen += decided[0][..i].iter().filter(|d| d.1.chosen.is_some()).count() as u64;
            let drive = decided.iter().find_map(|d| d.get(i).map(|x| x.0.clone())).unwrap_or_default();
            record.divergences.push(Divergence {
                t_s: t / 1000,
                concerns: format!("drive {drive}"),
                what: format!("decision {} of the instant differs (chosen mount or candidates)", i + 1),
                answers: decided
                    .iter()
                    .map(|d| match d.get(i) {
                        Some((drive, dec)) => format!("drive {drive}\n{}", decision_text(dec)),
                        None => "(no decision)".into(),
                    })
                    .collect(),
            });
            record.end_s = t / 1000;
            return Ok(None);
        }
        record.decisions.compared += count as u64;
        record.decisions.matched += count as u64;
        record.decisions.mounts_chosen += decided[0].iter().filter(|d| d.1.chosen.is_some()).count() as u64;
        if t - last_progress >= 60_000 {
            last_progress = t;
            let s = &sides[0];
            progress(&Progress {
                sim_s: (t - start_ms) / 1000,
                duration_s: (w.duration) as i64,
                queued: s.totals.archives_queued + s.totals.retrieves_queued,
                done: s.totals.archived + s.totals.retrieved,
                mounts: s.mounts(),
            });
        }
        if ei == evs.len()
            && t >= arrivals_end
            && sides.iter().all(|s| s.outstanding.is_empty())
            && repacks_over(sides).await
        {
            break;
        }
    }
    record.end_s = t / 1000;
    // Drain, take the last reports, check.
    let mut checks = Vec::new();
    for side in sides.iter_mut() {
        let wall = Instant::now();
        side.clock.advance_to_ms(t);
        side.daemon.drain().await.map_err(backend_err(&side.label))?;
        let end = side.clock.now_ms();
        side.pump(end).await?;
        side.split.add("drain", wall);
        side.wall += wall.elapsed();
        let wall = Instant::now();
        let mut side_checks = side.invariants().await?;
        let repacks = side.scheduler.show_repacks().await.map_err(backend_err(&side.label))?;
        side.totals.repacks_done =
            repacks.iter().filter(|r| r.status == tapesched_scheduler::repack::RepackStatus::Complete).count() as u64;
        if side.totals.repacks_queued > 0 {
            side_checks.push(InvariantCheck {
                name: "every repack queued completed".into(),
                ok: side.totals.repacks_done == side.totals.repacks_queued,
                detail: repacks
                    .iter()
                    .map(|r| {
                        let c = &r.counters;
                        let why = r.failure.as_deref().map(|f| format!(", {f}")).unwrap_or_default();
                        format!(
                            "{} {}: {}/{} retrieved, {}/{} archived, {} failed{why}",
                            r.vid,
                            r.status,
                            c.files_retrieved,
                            c.files_to_retrieve,
                            c.files_archived,
                            c.files_to_archive,
                            c.files_failed_retrieve + c.files_failed_archive
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        checks.push(side_checks);
        side.split.add("checks", wall);
    }
    let s = &sides[0];
    progress(&Progress {
        sim_s: (t - start_ms) / 1000,
        duration_s: w.duration as i64,
        queued: s.totals.archives_queued + s.totals.retrieves_queued,
        done: s.totals.archived + s.totals.retrieved,
        mounts: s.mounts(),
    });
    Ok(Some(checks))
}

async fn pass(side: &Side, l: Loop) -> Result<(), E2eError> {
    side.maintenance.pass(l).await.map(|_| ()).map_err(backend_err(&side.label))
}

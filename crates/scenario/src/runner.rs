//! The runner: plays a scenario's steps against a [`Scheduler`] on the scenario clock, acting as
//! the tape daemon of every drive (it holds each drive's [`TapeSession`]), and records what every
//! op did.
//!
//! The runner only translates ops into scheduler calls and results into JSON; every scheduling
//! rule lives in `tapesched-scheduler`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};
use tapesched_scheduler::catalogue::memory::MemoryCatalogue;
use tapesched_scheduler::catalogue::CatalogueEdit;
use tapesched_scheduler::clock::ManualClock;
use tapesched_scheduler::db::{JobKind, MountJob, Outcome, ReportFilter, SchedulerDb};
use tapesched_scheduler::decision::{Decision, SchedulerConfig};
use tapesched_scheduler::scheduler::{
    ArchiveSubmission, RepackSubmission, RetrieveSubmission, Scheduler, StateChangeMode, TapeSession,
};
use tapesched_scheduler::types::{DriveState, Requester};
use tapesched_scheduler::{Error, Result};

use crate::backend::Backend;
use crate::catalogue;
use crate::error::ScenarioError;
use crate::expect::{check, Observed};
use crate::load::{created_at, step_times};
use crate::model::*;
use crate::trace::StepRecord;
use tapesched_backends::bridge::Divergence;

/// The scheduler settings of a `scheduler:` header.
pub fn scheduler_config(header: &SchedulerHeader) -> SchedulerConfig {
    let d = SchedulerConfig::default();
    SchedulerConfig {
        min_files_to_warrant_mount: header.min_files_to_warrant_mount.unwrap_or(d.min_files_to_warrant_mount),
        min_bytes_to_warrant_mount: header.min_bytes_to_warrant_mount.unwrap_or(d.min_bytes_to_warrant_mount),
        backend_name: header.backend_name.clone().unwrap_or(d.backend_name),
        ..d
    }
}

/// A scheduler with its catalogue, clock and drive sessions, ready to play ops.
pub struct Runner {
    scheduler: Scheduler,
    clock: Arc<ManualClock>,
    start_time: i64,
    at: u64,
    sessions: BTreeMap<String, TapeSession>,
}

impl Runner {
    /// A runner on a fresh catalogue built from `spec`, over the backend `db`.
    pub fn new(
        spec: &CatalogueSpec,
        header: &SchedulerHeader,
        start_time: i64,
        db: Arc<dyn SchedulerDb>,
    ) -> std::result::Result<Runner, String> {
        let config = scheduler_config(header);
        let (snapshot, files) = catalogue::build(spec, &config.backend_name)?;
        let catalogue = MemoryCatalogue::new(snapshot, files).map_err(|e| format!("catalogue: {}", e.message))?;
        let clock = Arc::new(ManualClock::new(start_time));
        let scheduler = Scheduler::new(db, Arc::new(catalogue), clock.clone(), config);
        Ok(Runner { scheduler, clock, start_time, at: 0, sessions: BTreeMap::new() })
    }

    /// A runner for a scenario's header and catalogue.
    pub fn for_scenario(scenario: &Scenario, db: Arc<dyn SchedulerDb>) -> std::result::Result<Runner, String> {
        Runner::new(&scenario.catalogue, &scenario.scheduler, scenario.start_time(), db)
    }

    /// The scheduler.
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// The current offset on the scenario clock.
    pub fn at(&self) -> u64 {
        self.at
    }

    /// The current Unix time on the scenario clock.
    pub fn now(&self) -> i64 {
        self.start_time.saturating_add_unsigned(self.at)
    }

    /// Moves the clock to `start_time + at`.
    pub fn set_time(&mut self, at: u64) {
        self.at = at;
        self.clock.set(self.start_time.saturating_add_unsigned(at));
    }

    /// The mount decision the drive would get now, with its explanation.
    pub async fn explain(&self, drive: &str) -> Result<Decision> {
        self.scheduler.explain_mount(drive).await
    }

    /// Plays one op at offset `at`.
    pub async fn play(&mut self, op: &Op, at: u64) -> Observed {
        self.set_time(at);
        match self.apply(op, at).await {
            Ok(v) => Observed::Ok(v),
            Err(e) => Observed::Err { kind: e.kind.as_str().to_string(), message: e.message },
        }
    }

    async fn edit(&self, edit: CatalogueEdit) -> Result<Value> {
        self.scheduler.edit_catalogue(edit).await.map(|()| json!({}))
    }

    /// Translates one op into scheduler calls; the JSON result has the shape of the op's `expect`.
    async fn apply(&mut self, op: &Op, at: u64) -> Result<Value> {
        let s = &self.scheduler;
        match op {
            Op::SetVo { name, read_max_drives, write_max_drives } => {
                self.edit(CatalogueEdit::SetVo {
                    name: name.clone(),
                    read_max_drives: *read_max_drives,
                    write_max_drives: *write_max_drives,
                })
                .await
            }
            Op::SetMountPolicy {
                name,
                archive_priority,
                archive_min_request_age,
                retrieve_priority,
                retrieve_min_request_age,
            } => {
                self.edit(CatalogueEdit::SetMountPolicy {
                    name: name.clone(),
                    archive_priority: *archive_priority,
                    archive_min_request_age: *archive_min_request_age,
                    retrieve_priority: *retrieve_priority,
                    retrieve_min_request_age: *retrieve_min_request_age,
                })
                .await
            }
            Op::DeleteMountPolicy { name } => self.edit(CatalogueEdit::DeleteMountPolicy { name: name.clone() }).await,
            Op::SetLogicalLibrary { name, disabled } => {
                self.edit(CatalogueEdit::SetLogicalLibrary { name: name.clone(), disabled: *disabled }).await
            }
            Op::SetPhysicalLibrary { name, disabled } => {
                self.edit(CatalogueEdit::SetPhysicalLibrary { name: name.clone(), disabled: *disabled }).await
            }
            Op::AddTape(tape) => self.edit(CatalogueEdit::AddTape(catalogue::tape(tape))).await,
            Op::SetTape {
                vid,
                state,
                state_reason,
                full,
                data_on_tape_bytes,
                last_fseq,
                logical_library,
                tape_pool,
            } => {
                self.edit(CatalogueEdit::EditTape {
                    vid: vid.clone(),
                    state: *state,
                    state_reason: state_reason.clone(),
                    full: *full,
                    data_on_tape_bytes: *data_on_tape_bytes,
                    last_fseq: *last_fseq,
                    logical_library: logical_library.clone(),
                    tape_pool: tape_pool.clone(),
                })
                .await
            }
            Op::ChangeTapeState { vid, state, reason, mode } => {
                let mode = match mode {
                    ModeSpec::All => StateChangeMode::All,
                    ModeSpec::User => StateChangeMode::User,
                    ModeSpec::Repack => StateChangeMode::Repack,
                };
                let change = s.change_tape_state(vid, *state, reason.as_deref(), mode).await?;
                Ok(json!({"state": change.state.as_str(), "cleanup_requested": change.cleanup_requested}))
            }
            Op::CleanupQueues {} => Ok(json!({"finalized": s.cleanup_queues().await?})),
            Op::SetDrive {
                drive,
                status,
                mount_type,
                vid,
                tape_pool,
                scheduler_backend,
                next_mount_type,
                next_vid,
                next_tape_pool,
            } => {
                let backend = match scheduler_backend {
                    None => Some(s.config().backend_name.clone()),
                    Some(b) => b.clone(),
                };
                s.report_drive(DriveState {
                    name: drive.clone(),
                    // The scheduler keeps the drive's configured library.
                    logical_library: String::new(),
                    scheduler_backend: backend,
                    status: *status,
                    mount_type: *mount_type,
                    vid: vid.clone(),
                    tape_pool: tape_pool.clone(),
                    next_mount_type: *next_mount_type,
                    next_vid: next_vid.clone(),
                    next_tape_pool: next_tape_pool.clone(),
                    reason: None,
                })
                .await?;
                Ok(json!({}))
            }
            Op::SetDiskSystem { name, free_space_bytes, target_free_space_bytes, sleep_time } => {
                self.edit(CatalogueEdit::SetDiskSystem {
                    name: name.clone(),
                    free_space_bytes: *free_space_bytes,
                    target_free_space_bytes: *target_free_space_bytes,
                    sleep_time: *sleep_time,
                })
                .await
            }
            Op::QueueArchive {
                archive_file_id,
                disk_instance,
                disk_file_id,
                requester,
                storage_class,
                size,
                created_at: created,
                report_url,
                error_report_url,
            } => {
                let id = s
                    .queue_archive(ArchiveSubmission {
                        archive_file_id: *archive_file_id,
                        disk_instance: disk_instance.clone(),
                        disk_file_id: disk_file_id.clone(),
                        requester: requester_of(requester),
                        storage_class: storage_class.clone(),
                        size: *size,
                        created_at: Some(created_at(self.start_time, at, *created)),
                        report_url: report_url.clone(),
                        error_report_url: error_report_url.clone(),
                    })
                    .await?;
                Ok(json!({"archive_file_id": id}))
            }
            Op::QueueRetrieve {
                archive_file_id,
                disk_instance,
                requester,
                vid,
                activity,
                mount_policy,
                dst_url,
                report_url,
                error_report_url,
                created_at: created,
                verify_only,
            } => {
                let (_, vid) = s
                    .queue_retrieve(RetrieveSubmission {
                        archive_file_id: *archive_file_id,
                        disk_instance: disk_instance.clone(),
                        requester: Some(requester_of(requester)),
                        vid: vid.clone(),
                        activity: activity.clone(),
                        mount_policy: mount_policy.clone(),
                        dst_url: dst_url.clone(),
                        report_url: report_url.clone(),
                        error_report_url: error_report_url.clone(),
                        created_at: Some(created_at(self.start_time, at, *created)),
                        verify_only: *verify_only,
                    })
                    .await?;
                Ok(json!({"vid": vid}))
            }
            Op::CancelArchive { archive_file_id } => s.cancel_archive(*archive_file_id).await.map(|()| json!({})),
            Op::CancelRetrieve { archive_file_id, dst_url } => {
                s.cancel_retrieve(*archive_file_id, dst_url.as_deref()).await.map(|_| json!({}))
            }
            Op::QueueRepack { vid, repack_type, mount_policy, buffer_url, no_recall, max_files, storage_class } => {
                s.queue_repack(RepackSubmission {
                    vid: vid.clone(),
                    repack_type: match repack_type {
                        RepackType::Move => tapesched_scheduler::repack::RepackType::Move,
                        RepackType::AddCopies => tapesched_scheduler::repack::RepackType::AddCopies,
                        RepackType::MoveAndAddCopies => tapesched_scheduler::repack::RepackType::MoveAndAddCopies,
                    },
                    mount_policy: mount_policy.clone(),
                    buffer_url: buffer_url.clone(),
                    no_recall: no_recall.unwrap_or(false),
                    max_files: *max_files,
                    storage_class: storage_class.clone(),
                })
                .await?;
                Ok(json!({}))
            }
            Op::ExpandRepack { max_requests } => Ok(json!({"expanded": s.expand_repacks(*max_requests).await?})),
            Op::CancelRepack { vid } => s.cancel_repack(vid).await.map(|_| json!({})),
            Op::ShowRepacks {} => {
                let repacks: Vec<Value> = s
                    .show_repacks()
                    .await?
                    .iter()
                    .map(|r| {
                        let c = &r.counters;
                        json!({
                            "vid": r.vid,
                            "status": r.status.as_str(),
                            "files_to_retrieve": c.files_to_retrieve,
                            "files_to_archive": c.files_to_archive,
                            "files_retrieved": c.files_retrieved,
                            "files_archived": c.files_archived,
                            "files_failed": c.files_failed(),
                        })
                    })
                    .collect();
                Ok(json!({"repacks": repacks}))
            }
            Op::NextMount { drive, dry_run: true, .. } => {
                Ok(json!({"would_mount": s.next_mount_dry_run(drive).await?}))
            }
            Op::NextMount { drive, dry_run: false, report_starting } => {
                // Asking again replaces an idle session (the reference hands out the same mount
                // again); a session still holding jobs must be ended or crashed first.
                if let Some(held) = self.sessions.get(drive).filter(|h| !h.popped.is_empty()) {
                    return Err(Error::invalid(format!(
                        "drive {drive:?} still holds {} popped jobs: complete them, end_mount or crash_drive first",
                        held.popped.len()
                    )));
                }
                let session = s.next_mount(drive, *report_starting).await?;
                let mount = session.as_ref().map(
                    |m| json!({"type": m.spec.mount_type.as_str(), "vid": m.spec.vid, "tape_pool": m.spec.tape_pool}),
                );
                if let Some(m) = session {
                    self.sessions.insert(drive.clone(), m);
                }
                Ok(json!({"mount": mount}))
            }
            Op::ExplainMount { drive } => Ok(decision_json(&s.explain_mount(drive).await?)),
            Op::PopJobs { drive, max_files, max_bytes } => {
                let session = self.sessions.get_mut(drive).ok_or_else(|| no_session(drive))?;
                let jobs = self.scheduler.pop_jobs(session, *max_files, *max_bytes).await?;
                let ids: Vec<u64> = jobs.iter().map(|j| j.archive_file_id()).collect();
                let bytes = tapesched_scheduler::bounds::total(jobs.iter().map(|j| j.size()));
                Ok(json!({"count": jobs.len(), "bytes": bytes, "archive_file_ids": ids}))
            }
            Op::CompleteJobs { drive, archive_file_ids, outcome, reason } => {
                let outcome = match outcome {
                    OutcomeSpec::Success => Outcome::Success,
                    OutcomeSpec::Failure => Outcome::Failure,
                };
                let session = self.sessions.get_mut(drive).ok_or_else(|| no_session(drive))?;
                // Playing the tape daemon: a repack's recall that succeeds leaves its file in the
                // repack buffer.
                let recalled: Vec<(String, u64)> = match outcome {
                    Outcome::Success => session
                        .popped
                        .iter()
                        .filter(|j| archive_file_ids.as_ref().is_none_or(|ids| ids.contains(&j.archive_file_id())))
                        .filter_map(|j| match j {
                            MountJob::Retrieve { request } if request.repack.is_some() => {
                                Some((request.dst_url.clone(), request.size))
                            }
                            _ => None,
                        })
                        .collect(),
                    Outcome::Failure => vec![],
                };
                self.scheduler.complete_jobs(session, archive_file_ids.as_deref(), outcome, reason.as_deref()).await?;
                for (url, size) in recalled {
                    self.scheduler.buffer().put(&url, size).await?;
                }
                Ok(json!({}))
            }
            Op::EndMount { drive } => {
                let session = self.sessions.remove(drive).ok_or_else(|| no_session(drive))?;
                Ok(json!({"requeued": self.scheduler.end_mount(session).await?}))
            }
            Op::CrashDrive { drive } => {
                match self.sessions.remove(drive) {
                    Some(session) => s.crash_session(session).await?,
                    None => s.drive_down(drive).await?,
                }
                Ok(json!({}))
            }
            Op::GarbageCollect {} => Ok(json!({"requeued": s.garbage_collect().await?})),
            Op::Report { kind, max, delivery } => {
                let deliver = *delivery == Delivery::Ok;
                let done = match kind {
                    ReportKind::Archive => s.report(ReportFilter::Archive, *max, deliver).await?,
                    ReportKind::Retrieve => s.report(ReportFilter::Retrieve, *max, deliver).await?,
                    ReportKind::All => s.report_all(*max, deliver).await?,
                    ReportKind::Repack if !deliver => {
                        return Err(Error::invalid(
                            "repack reports are processed by the scheduler, not delivered to a disk side: \
                             delivery: fail applies to archive and retrieve reports",
                        ))
                    }
                    ReportKind::Repack => s.process_repack_reports(*max).await?,
                };
                let mut reports: Vec<(u64, JobKind, Outcome)> =
                    done.iter().map(|r| (r.archive_file_id, r.kind(), r.outcome)).collect();
                reports.sort();
                let reports: Vec<Value> = reports
                    .into_iter()
                    .map(|(id, kind, outcome)| {
                        json!({"archive_file_id": id, "kind": kind_str(kind), "outcome": outcome_str(outcome)})
                    })
                    .collect();
                Ok(json!({"reports": reports}))
            }
            Op::ShowQueues {} => {
                let mut queues = s.show_queues().await?;
                queues.sort_by(|a, b| (a.mount_type, &a.tape_pool, &a.vid).cmp(&(b.mount_type, &b.tape_pool, &b.vid)));
                let queues: Vec<Value> = queues
                    .iter()
                    .map(|q| {
                        let mut m = Map::new();
                        m.insert("mount_type".into(), q.mount_type.as_str().into());
                        if let Some(p) = &q.tape_pool {
                            m.insert("tape_pool".into(), p.clone().into());
                        }
                        if let Some(v) = &q.vid {
                            m.insert("vid".into(), v.clone().into());
                        }
                        m.insert("files_queued".into(), q.files_queued.into());
                        m.insert("bytes_queued".into(), q.bytes_queued.into());
                        m.insert("current_mounts".into(), q.current_mounts.into());
                        if let Some(a) = q.oldest_job_age {
                            m.insert("oldest_job_age".into(), a.into());
                        }
                        if let Some(z) = q.sleeping {
                            m.insert("sleeping".into(), z.into());
                        }
                        Value::Object(m)
                    })
                    .collect();
                Ok(json!({"queues": queues}))
            }
            Op::ListPending { kind, tape_pool, vid } => {
                let ids = s.list_pending(job_kind(*kind), tape_pool.as_deref(), vid.as_deref()).await?;
                Ok(json!({"archive_file_ids": ids}))
            }
            Op::ListFailed { kind } => Ok(json!({"archive_file_ids": s.list_failed(job_kind(*kind)).await?})),
        }
    }
}

fn no_session(drive: &str) -> Error {
    Error::not_found(format!("drive {drive:?} holds no mount (no next_mount returned one, or it ended)"))
}

fn requester_of(r: &RequesterSpec) -> Requester {
    Requester { name: r.name.clone(), group: r.group.clone() }
}

fn job_kind(k: KindSpec) -> JobKind {
    match k {
        KindSpec::Archive => JobKind::Archive,
        KindSpec::Retrieve => JobKind::Retrieve,
    }
}

fn kind_str(k: JobKind) -> &'static str {
    match k {
        JobKind::Archive => "archive",
        JobKind::Retrieve => "retrieve",
    }
}

fn outcome_str(o: Outcome) -> &'static str {
    match o {
        Outcome::Success => "success",
        Outcome::Failure => "failure",
    }
}

/// The `explain_mount` result of a decision: `{candidates: [...], rejected: [...]}`.
pub fn decision_json(d: &Decision) -> Value {
    let candidates: Vec<Value> = d
        .candidates
        .iter()
        .map(|c| {
            let mut m = Map::new();
            m.insert("type".into(), c.mount_type.as_str().into());
            m.insert("tape_pool".into(), c.tape_pool.clone().into());
            if let Some(v) = &c.vid {
                m.insert("vid".into(), v.clone().into());
            }
            m.insert("priority".into(), c.priority.into());
            m.insert("files_queued".into(), c.files_queued.into());
            m.insert("bytes_queued".into(), c.bytes_queued.into());
            m.insert("selected".into(), c.selected.into());
            if let Some(r) = c.skip_reason {
                m.insert("skip_reason".into(), r.as_str().into());
            }
            Value::Object(m)
        })
        .collect();
    let rejected: Vec<Value> = d
        .rejected
        .iter()
        .map(|r| {
            let mut m = Map::new();
            m.insert("type".into(), r.mount_type.as_str().into());
            if let Some(p) = &r.tape_pool {
                m.insert("tape_pool".into(), p.clone().into());
            }
            if let Some(v) = &r.vid {
                m.insert("vid".into(), v.clone().into());
            }
            m.insert("reason".into(), r.reason.as_str().into());
            Value::Object(m)
        })
        .collect();
    json!({"candidates": candidates, "rejected": rejected})
}

/// What a scenario run did, step by step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunReport {
    /// One record per step, in file order.
    pub records: Vec<StepRecord>,
    /// What the two sides of a bridge backend disagreed on (always empty for other backends).
    /// A run with any divergence fails, whatever its steps did.
    pub divergences: Vec<Divergence>,
    /// How long each step's op took on the backend (wall time, `std::time::Instant`), one per
    /// record: measured for reports, never used to decide or to compare.
    pub durations: Vec<Duration>,
}

impl RunReport {
    /// Steps that carry an `expect` and passed.
    pub fn passed(&self) -> usize {
        self.records.iter().filter(|r| r.checked && r.ok).count()
    }

    /// Steps that failed: an expectation did not hold, or an op failed without `expect.error`.
    pub fn failed(&self) -> usize {
        self.records.iter().filter(|r| r.failed()).count()
    }

    /// The failed steps as readable lines: `FILE: step N (op): expected X, got Y`.
    pub fn failure_lines(&self, file: &str) -> Vec<String> {
        self.records
            .iter()
            .filter(|r| r.failed())
            .flat_map(|r| {
                r.mismatch
                    .iter()
                    .flat_map(|m| m.split("; "))
                    .map(move |m| format!("{file}: step {} ({}): {m}", r.step, r.op))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// Plays every step of a scenario, checking expectations; `upto` limits it to the first steps.
pub async fn play_steps(
    runner: &mut Runner,
    scenario: &Scenario,
    upto: Option<usize>,
) -> std::result::Result<Vec<StepRecord>, String> {
    play_steps_timed(runner, scenario, upto).await.map(|(records, _)| records)
}

/// [`play_steps`], with how long each step's op took (wall time, one per record).
pub async fn play_steps_timed(
    runner: &mut Runner,
    scenario: &Scenario,
    upto: Option<usize>,
) -> std::result::Result<(Vec<StepRecord>, Vec<Duration>), String> {
    let times = step_times(scenario)?;
    let mut records = Vec::new();
    let mut durations = Vec::new();
    for (i, (step, at)) in scenario.steps.iter().zip(times).enumerate().take(upto.unwrap_or(usize::MAX)) {
        let started = Instant::now();
        let observed = runner.play(&step.op, at).await;
        durations.push(started.elapsed());
        let empty = Map::new();
        let mismatches = check(step.op.name(), step.expect.as_ref().unwrap_or(&empty), &observed);
        let (result, message) = match observed {
            Observed::Ok(v) => (v, None),
            Observed::Err { kind, message } => (json!({"error": kind}), Some(message)),
        };
        records.push(StepRecord {
            step: i + 1,
            at,
            op: step.op.name().to_string(),
            result,
            ok: mismatches.is_empty(),
            mismatch: (!mismatches.is_empty()).then(|| mismatches.join("; ")),
            message,
            checked: step.expect.is_some(),
        });
    }
    Ok((records, durations))
}

/// Runs a scenario on a fresh instance of `backend`; `path` names the file in errors.
pub async fn run_scenario(
    path: &Path,
    scenario: &Scenario,
    backend: Backend,
) -> std::result::Result<RunReport, ScenarioError> {
    let open = backend.open().await.map_err(|e| ScenarioError::BackendUnavailable(e.message))?;
    let invalid = |message: String| ScenarioError::Invalid { path: path.to_path_buf(), message };
    let mut runner = Runner::for_scenario(scenario, open.db.clone()).map_err(invalid)?;
    let (records, durations) = play_steps_timed(&mut runner, scenario, None).await.map_err(invalid)?;
    drop(runner);
    let divergences = open.divergences();
    open.close().await;
    Ok(RunReport { records, divergences, durations })
}

/// The decision `drive` gets after the first `steps` steps of a scenario, played on a fresh
/// instance of `backend` (what `tapesched explain --after-step STEPS` shows); expectations are
/// not checked.
pub async fn explain_after(
    path: &Path,
    scenario: &Scenario,
    backend: Backend,
    steps: usize,
    drive: &str,
) -> std::result::Result<Decision, ScenarioError> {
    let open = backend.open().await.map_err(|e| ScenarioError::BackendUnavailable(e.message))?;
    let invalid = |message: String| ScenarioError::Invalid { path: path.to_path_buf(), message };
    let mut runner = Runner::for_scenario(scenario, open.db.clone()).map_err(invalid)?;
    play_steps(&mut runner, scenario, Some(steps)).await.map_err(invalid)?;
    let decision = runner.explain(drive).await;
    drop(runner);
    open.close().await;
    decision.map_err(|e| invalid(format!("explain {drive:?} after step {steps}: {}", e.message)))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::load::parse_scenario;

    const SCENARIO: &str = "version: 1
name: runner
start_time: 1000
catalogue:
  disk_instances: [eos]
  virtual_organizations: [{name: vo, read_max_drives: 1, write_max_drives: 1}]
  logical_libraries: [{name: lib}]
  tape_pools: [{name: pool, vo: vo}]
  storage_classes: [{name: sc, nb_copies: 1, vo: vo}]
  archive_routes: [{storage_class: sc, copy_nb: 1, tape_pool: pool}]
  mount_policies:
    - {name: mp, archive_priority: 1, archive_min_request_age: 0, retrieve_priority: 1, retrieve_min_request_age: 0}
  mount_rules: [{kind: requester, disk_instance: eos, name: default, mount_policy: mp}]
  tapes: [{vid: V1, tape_pool: pool, logical_library: lib, capacity_bytes: 1000000}]
  drives: [{name: drive0, logical_library: lib}]
steps:
  - {op: queue_repack, vid: V1, type: move, mount_policy: mp, expect: {error: invalid_argument}}
  - {op: pop_jobs, drive: drive0, max_files: 1, max_bytes: 1, expect: {error: not_found}}
  - {op: end_mount, drive: drive0, expect: {error: not_found}}
  - {op: crash_drive, drive: drive0}
  - {op: crash_drive, drive: nope, expect: {error: not_found}}
  - {op: set_drive, drive: drive0, status: Up}
  - {at: 10, op: queue_archive, requester: {name: a, group: g}, storage_class: sc, size: 10, created_at: -100}
  - {op: show_queues, expect: {queues: [{mount_type: ArchiveForUser, tape_pool: pool, oldest_job_age: 110}]}}
  - {op: next_mount, drive: drive0, expect: {mount: {type: ArchiveForUser, vid: V1}}}
  - {op: pop_jobs, drive: drive0, max_files: 5, max_bytes: 100, expect: {count: 1, bytes: 10}}
  - {op: next_mount, drive: drive0, expect: {error: invalid_argument}}
  - {op: report, kind: repack, expect: {reports: []}}
  - {op: cancel_repack, vid: V1}
";

    #[tokio::test]
    async fn drives_the_scheduler_like_a_tape_daemon() {
        let scenario = parse_scenario(SCENARIO, Path::new("runner.yaml")).unwrap_or_else(|e| panic!("{e}"));
        let report = run_scenario(Path::new("runner.yaml"), &scenario, Backend::ObjectstoreMemory)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let lines = report.failure_lines("runner.yaml");
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("runner.yaml: step 13 (cancel_repack): expected success, got error not_found"));
        // An ACTIVE tape cannot be repacked; the message says why.
        let first = &report.records[0];
        assert_eq!(first.result, json!({"error": "invalid_argument"}));
        assert!(first.message.as_deref().is_some_and(|m| m.contains("only a REPACKING tape")), "{first:?}");
        assert_eq!(report.records[11].result, json!({"reports": []}));
        // A step without expect whose op fails counts as failed.
        let last = report.records.last().expect("records");
        assert!(!last.ok && !last.checked);
        assert_eq!(report.failed(), 1);
        assert_eq!(report.passed(), 9);
        assert_eq!(report.records[6].at, 10);
        assert_eq!(report.records[7].at, 10);
        assert_eq!(report.durations.len(), report.records.len());
        // The decision drive0 got at step 9, explained again on a fresh instance.
        let d = explain_after(Path::new("runner.yaml"), &scenario, Backend::ObjectstoreMemory, 8, "drive0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.chosen.map(|m| m.vid), Some("V1".to_string()));
        assert_eq!(d.candidates.len(), 1);
    }
}

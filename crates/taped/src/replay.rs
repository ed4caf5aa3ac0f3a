//! A producer's arrivals, replayed on a clock: the disk side of the processes mode of the
//! end-to-end harness (`tapesched produce --events FILE.jsonl --clock ...`).
//!
//! The harness converts its generated workload into [`Event`]s: a simulated time (`at`, seconds
//! since the Unix epoch, on the run's scaled clock) and an [`Action`] (queue archives, queue a
//! retrieve, mark a tape full, start a repack, change a tape's state). One event is one JSON
//! object per line, its action's fields beside `at` and `op`:
//!
//! ```text
//! {"at":1767225600,"op":"queue_archive","storage_class":"sc_pool_a","size":5000000000,"count":100,"report_url":"file:///tmp/r.jsonl"}
//! {"at":1767225900,"op":"queue_retrieve","archive_file_id":7,"report_url":"file:///tmp/r.jsonl"}
//! {"at":1767229200,"op":"change_tape_state","vid":"V00103","state":"DISABLED","reason":"maintenance"}
//! {"at":1767229800,"op":"mark_tape_full","vid":"V00101"}
//! {"at":1767230400,"op":"queue_repack","vid":"V00110","mount_policy":"production"}
//! ```
//!
//! [`replay`] waits on a [`Pacer`] until each event's time and applies it through the
//! [`Scheduler`] (whose clock is the same scaled time), in file order (times must not go back).
//! Each applied event gives an [`Applied`] record, the producer's output line: when it was
//! applied and the requests it queued (`archive:ID`, `retrieve:ID`, as in the report lines), from
//! which [`crate::outcome`] computes queue latencies.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tapesched_scheduler::catalogue::CatalogueEdit;
use tapesched_scheduler::clock::Timestamp;
use tapesched_scheduler::repack::RepackType;
use tapesched_scheduler::scheduler::{
    ArchiveSubmission, RepackSubmission, RetrieveSubmission, Scheduler, StateChangeMode,
};
use tapesched_scheduler::types::{Requester, TapeState};
use tapesched_scheduler::Result;
use tokio::sync::watch;

use crate::pace::Pacer;

/// One arrival: what happens, and when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// When, simulated seconds since the Unix epoch.
    pub at: Timestamp,
    /// What.
    #[serde(flatten)]
    pub action: Action,
}

/// What a producer does at an [`Event`]'s time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// Queues `count` archive requests of one storage class and size, together (as a frontend
    /// queues the requests that arrived at once).
    QueueArchive {
        /// Storage class.
        storage_class: String,
        /// Size of each file, bytes.
        size: u64,
        /// How many requests (default 1).
        #[serde(default = "one")]
        count: u64,
        /// The archive file id of the first (the others follow it); default: the catalogue's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        first_archive_file_id: Option<u64>,
        /// Requester (default [`default_requester`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        requester: Option<Requester>,
        /// Success report URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        report_url: Option<String>,
        /// Failure report URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_report_url: Option<String>,
    },
    /// Queues the retrieve of one file.
    QueueRetrieve {
        /// The file.
        archive_file_id: u64,
        /// Requester (default [`default_requester`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        requester: Option<Requester>,
        /// Destination URL (default `file:///var/tmp/tapesched-produce/<id>`, never written in
        /// `sizes` mode).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dst_url: Option<String>,
        /// Success report URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        report_url: Option<String>,
        /// Failure report URL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error_report_url: Option<String>,
    },
    /// Marks a tape full in the catalogue (the next mount of its pool takes another tape).
    MarkTapeFull {
        /// The tape.
        vid: String,
    },
    /// Starts the repack of a tape ([`start_repack`]): REPACKING, then a `move` repack queued.
    QueueRepack {
        /// The tape.
        vid: String,
        /// The mount policy of its recalls and re-archives.
        mount_policy: String,
    },
    /// Changes a tape's state (an operator's `tape ch --state`).
    ChangeTapeState {
        /// The tape.
        vid: String,
        /// The state wanted.
        state: TapeState,
        /// Why.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

fn one() -> u64 {
    1
}

/// The requester of requests that name none.
pub fn default_requester() -> Requester {
    Requester { name: "producer".into(), group: "e2e".into() }
}

impl Action {
    /// Its `op` name.
    pub fn op(&self) -> &'static str {
        match self {
            Action::QueueArchive { .. } => "queue_archive",
            Action::QueueRetrieve { .. } => "queue_retrieve",
            Action::MarkTapeFull { .. } => "mark_tape_full",
            Action::QueueRepack { .. } => "queue_repack",
            Action::ChangeTapeState { .. } => "change_tape_state",
        }
    }
}

impl Event {
    /// Parses one line: a JSON object with `at`, `op` and the action's fields; the error says
    /// what is wrong.
    pub fn parse_line(line: &str) -> Result<Event, String> {
        let mut value: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
        let obj = value.as_object_mut().ok_or("expected a JSON object")?;
        let at = obj.remove("at").ok_or("missing field `at` (simulated seconds since the epoch)")?;
        let at = at.as_i64().ok_or_else(|| format!("`at` must be whole seconds since the epoch, not {at}"))?;
        let action = Action::deserialize(value).map_err(|e| e.to_string())?;
        if let Action::QueueArchive { count: 0, .. } = action {
            return Err("`count` must be at least 1".into());
        }
        Ok(Event { at, action })
    }

    /// The event as one line of JSON.
    pub fn to_line(&self) -> String {
        serde_json::to_string(self).expect("an event serializes")
    }
}

/// Parses an events file's text: one event per line (blank lines skipped), times never going
/// back; an error names `source`, the line and what is wrong.
pub fn parse_events(text: &str, source: &str) -> Result<Vec<Event>, String> {
    let mut events: Vec<Event> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let e = Event::parse_line(line).map_err(|m| format!("{source}:{}: {m}", i + 1))?;
        if let Some(prev) = events.last() {
            if e.at < prev.at {
                return Err(format!("{source}:{}: at {} is before the previous event's {}", i + 1, e.at, prev.at));
            }
        }
        events.push(e);
    }
    Ok(events)
}

/// Reads and parses an events file ([`parse_events`]).
pub fn read_events(path: &Path) -> Result<Vec<Event>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    parse_events(&text, &path.display().to_string())
}

/// What applying one event did: the producer's output line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// The event's index in the list (0-based).
    pub event: usize,
    /// Its `op`.
    pub op: String,
    /// The time it was due, simulated seconds.
    pub at: Timestamp,
    /// The time it was applied (the pacer's now when it started), simulated seconds.
    pub time: Timestamp,
    /// Requests queued (`archive:ID`, `retrieve:ID`).
    pub requests: Vec<String>,
    /// Errors: the whole action's, or each refused request's.
    pub errors: Vec<String>,
}

/// Why [`replay`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayEnd {
    /// Every event was applied.
    Done,
    /// The cancellation fired first.
    Cancelled,
}

/// Applies one action through `scheduler`.
pub async fn apply(scheduler: &Scheduler, action: &Action) -> (Vec<String>, Vec<String>) {
    let (mut requests, mut errors) = (Vec::new(), Vec::new());
    match action {
        Action::QueueArchive {
            storage_class,
            size,
            count,
            first_archive_file_id,
            requester,
            report_url,
            error_report_url,
        } => {
            let subs = (0..*count)
                .map(|i| ArchiveSubmission {
                    archive_file_id: first_archive_file_id.map(|f| f.saturating_add(i)),
                    disk_instance: None,
                    disk_file_id: None,
                    requester: requester.clone().unwrap_or_else(default_requester),
                    storage_class: storage_class.clone(),
                    size: *size,
                    created_at: None,
                    report_url: report_url.clone(),
                    error_report_url: error_report_url.clone(),
                })
                .collect();
            match scheduler.queue_archives(subs).await {
                Ok(answers) => {
                    for a in answers {
                        match a {
                            Ok(id) => requests.push(format!("archive:{id}")),
                            Err(e) => errors.push(e.to_string()),
                        }
                    }
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        Action::QueueRetrieve { archive_file_id, requester, dst_url, report_url, error_report_url } => {
            let sub = RetrieveSubmission {
                archive_file_id: *archive_file_id,
                requester: Some(requester.clone().unwrap_or_else(default_requester)),
                dst_url: Some(
                    dst_url.clone().unwrap_or_else(|| format!("file:///var/tmp/tapesched-produce/{archive_file_id}")),
                ),
                report_url: report_url.clone(),
                error_report_url: error_report_url.clone(),
                ..RetrieveSubmission::default()
            };
            match scheduler.queue_retrieve(sub).await {
                Ok((id, _vid)) => requests.push(format!("retrieve:{id}")),
                Err(e) => errors.push(e.to_string()),
            }
        }
        Action::MarkTapeFull { vid } => {
            if let Err(e) = scheduler.edit_catalogue(CatalogueEdit::tape_full(vid)).await {
                errors.push(e.to_string());
            }
        }
        Action::QueueRepack { vid, mount_policy } => {
            if let Err(e) = start_repack(scheduler, vid, mount_policy, "repack started by a producer").await {
                errors.push(e.to_string());
            }
        }
        Action::ChangeTapeState { vid, state, reason } => {
            if let Err(e) = scheduler.change_tape_state(vid, *state, reason.as_deref(), StateChangeMode::All).await {
                errors.push(e.to_string());
            }
        }
    }
    (requests, errors)
}

/// Starts the repack of tape `vid` as an operator does: the tape goes to REPACKING (`reason`),
/// the retrieve queues of tapes leaving service are cleaned up, and a `move` repack of it is
/// queued with `mount_policy` (the maintenance daemon's repack loop expands it).
pub async fn start_repack(scheduler: &Scheduler, vid: &str, mount_policy: &str, reason: &str) -> Result<()> {
    scheduler.change_tape_state(vid, TapeState::Repacking, Some(reason), StateChangeMode::All).await?;
    scheduler.cleanup_queues().await?;
    scheduler
        .queue_repack(RepackSubmission {
            vid: vid.to_string(),
            repack_type: RepackType::Move,
            mount_policy: mount_policy.to_string(),
            buffer_url: None,
            no_recall: false,
            max_files: None,
            storage_class: None,
        })
        .await
}

/// Replays `events` in order: waits on `pacer` until each one's time, applies it through
/// `scheduler` (whose clock should be the pacer's time) and gives its [`Applied`] to `out`.
/// Stops before the next event when `cancel` turns true (a wait in progress is cancelled).
/// An action that fails is recorded in its [`Applied::errors`] and the replay goes on.
pub async fn replay(
    scheduler: &Scheduler,
    pacer: &dyn Pacer,
    events: &[Event],
    cancel: &mut watch::Receiver<bool>,
    out: &mut (dyn FnMut(Applied) + Send),
) -> ReplayEnd {
    for (i, e) in events.iter().enumerate() {
        if *cancel.borrow() {
            return ReplayEnd::Cancelled;
        }
        let due = e.at.saturating_mul(1000);
        if pacer.now_ms() < due {
            let stop = async {
                if cancel.changed().await.is_err() {
                    std::future::pending::<()>().await
                }
            };
            tokio::select! {
                _ = pacer.wait_until_ms(due) => {}
                _ = stop => return ReplayEnd::Cancelled,
            }
        }
        let time = pacer.now_ms().div_euclid(1000);
        let (requests, errors) = apply(scheduler, &e.action).await;
        out(Applied { event: i, op: e.action.op().into(), at: e.at, time, requests, errors });
    }
    ReplayEnd::Done
}
